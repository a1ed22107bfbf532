#!/usr/bin/env python3
"""A `memsync serve` whose pool threads cannot open the database: each answers 503 with
Retry-After (the API's error envelope with code "unavailable", the UI a page), /healthz its own
503, and the next request after the database is back is answered normally (a thread opens its
store again). SQLite only: the file is swapped for one that is not a database after the server
started and before any request reached a pool thread."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Memsync  # noqa: E402
from test_api import FAILS, Serve, api, apikey, check, hget  # noqa: E402


def main():
    ms = Memsync()
    if ms.db.startswith("postgresql://"):
        print("ok (SQLite only)")
        return
    key = apikey(ms, "admin")
    srv = Serve(ms)
    away = ms.db + ".away"
    os.rename(ms.db, away)
    with open(ms.db, "wb") as f:
        f.write(b"this is not a database" * 300)

    for _ in range(3):  # whichever pool thread answers
        st, js, text, hdrs = api(srv, "GET", "/api/v1/clients", key)
        check(st == 503 and js and js["errors"][0]["code"] == "unavailable",
              "API without a database: 503 unavailable (%s %s)" % (st, text[:200]))
        check(hget(hdrs, "Retry-After") == ["5"], "the 503 has Retry-After (%s)" % hdrs)
    st, js, text, _ = api(srv, "GET", "/healthz")
    check(st == 503 and js == {"status": "database unavailable"}, "/healthz: %s %s" % (st, text))
    st, text, hdrs = harness.http("GET", srv.url + "/assets", None, {})
    check(st == 503 and "cannot be opened" in text, "UI without a database: 503 (%s)" % st)
    check(hdrs.get("Retry-After") == "5", "the UI's 503 has Retry-After (%s)" % hdrs)

    os.rename(away, ms.db)
    st, js, text, _ = api(srv, "GET", "/api/v1/clients", key)
    check(st == 200, "the database back: 200 (%s %s)" % (st, text[:200]))
    check("cannot open the database" in srv.stderr(), "the failed open is logged")
    srv.stop()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
