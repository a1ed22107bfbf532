#!/usr/bin/env python3
"""HTTP of the REST API (docs/API.md): /openapi.json is public; every path answers a method it
does not take with 405 and an Allow header listing the ones it does; an unknown filter field or
operator is a 400, on CSV exports too, before any byte of CSV (also when the store refuses a
value); one error code per condition; a healthy client's error is null in the API and the CLI;
rate limits per API key with 429, Retry-After and RateLimit-* headers. Every answer here is also
checked against /openapi.json by harness.api_check."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Memsync, Sim  # noqa: E402
from test_api import FAILS, Serve, api, apikey, check, hget, integration_body, wait_run  # noqa: E402


def main():
    sim = Sim("--tenants", "2", "--devices", "6", "--apps-per-device", "2", "--seed", "5")
    ms = Memsync(sim)
    ms.env["MEMSYNC_VALIDATE_SAMPLE"] = "1"
    srv = Serve(ms)
    key = apikey(ms, "admin")

    # -- the document is public and describes what it says ---------------------------------
    st, doc, text, hdrs = api(srv, "GET", "/openapi.json")
    check(st == 200 and doc and doc["openapi"] == "3.1.0", "/openapi.json without credentials")
    st, js, _, _ = api(srv, "POST", "/api/v1/integrations", key, integration_body(sim))
    check(st == 201, "integration saved (%s)" % st)
    wait_run(srv, key, js["data"]["id"])

    # -- 405 with Allow, for every path of the document -------------------------------------
    for path, item in doc["paths"].items():
        url = path.replace("{id}", "1")
        methods = {m.upper() for m in item}
        for m in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            if m in methods:
                continue
            st, js, _, hdrs = api(srv, m, url, key, body={} if m != "GET" else None)
            allow = hget(hdrs, "Allow")
            check(st == 405 and js["errors"][0]["code"] == "method_not_allowed",
                  "%s %s -> %s" % (m, url, st))
            check(allow and {a.strip() for a in allow[0].split(",")} == methods,
                  "%s %s: Allow %s lists %s" % (m, url, allow, sorted(methods)))

    # -- 400 for unknown fields and operators, lists and exports alike ----------------------
    bad = ["filter[type]=xx:1", "filter[nope]=eq:1", "filter[name]=EQQ:x", "sort=nope"]
    for path in ("/api/v1/assets/hardware", "/api/v1/assets/hardware.csv", "/api/v1/clients",
                 "/api/v1/clients.csv", "/api/v1/assets/software.csv", "/api/v1/sync-runs"):
        for q in bad:
            if q.startswith("sort") and path.endswith(".csv"):
                continue
            if "type" in q and "hardware" not in path:
                q = "filter[name]=xx:1"
            st, js, text, hdrs = api(srv, "GET", path + "?" + q, key)
            check(st == 400 and js and js["errors"][0]["code"] == "invalid_request",
                  "%s?%s -> %s %s" % (path, q, st, text[:200]))
    # A value the store refuses (not a number) on an export with rows: a 400, never a cut CSV.
    for path in ("/api/v1/assets/hardware.csv?filter[storage.free_bytes]=lt:abc",
                 "/api/v1/clients.csv?filter[device_count]=gt:abc"):
        st, js, text, hdrs = api(srv, "GET", path, key)
        check(st == 400 and js and "not a number" in js["errors"][0]["detail"],
              "%s -> %s %s" % (path, st, text[:200]))
    # Known operators and a quoted value with a colon still work.
    for q in ("filter[type]=eq:WORKSTATION", "filter[name]=\"a:b\"", "filter[name]=like:LT",
              "filter[last_check_in_at]=lt:2099-01-01T00:00:00Z"):
        st, _, text, _ = api(srv, "GET", "/api/v1/assets/hardware?" + q, key)
        check(st == 200, "%s -> %s %s" % (q, st, text[:200]))
    st, _, text, hdrs = api(srv, "GET", "/api/v1/assets/hardware.csv?filter[type]=in:MOBILE,"
                            "WORKSTATION", key)
    check(st == 200 and text.startswith("id,") and text.count("\r\n") > 1,
          "a good export streams its rows")

    # -- one code per condition -------------------------------------------------------------
    st, js, _, _ = api(srv, "POST", "/api/v1/integrations", key, b"x" * (70 * 1024))
    check(st == 413 and js["errors"][0]["code"] == "payload_too_large", "413 payload_too_large")
    st, js, _, _ = api(srv, "GET", "/api/v1/nothing-here", key)
    check(st == 404 and js["errors"][0]["code"] == "not_found", "404 not_found")

    # -- a healthy client's error is null, API and CLI alike --------------------------------
    clients = api(srv, "GET", "/api/v1/clients", key)[1]["data"]
    check(clients and all(c["status"] == "ok" and c["error"] is None for c in clients),
          "API: healthy clients have error null (%s)" % [c.get("error") for c in clients])
    cli = ms.json("clients", "--format", "json")
    check(cli and all(c["error"] is None for c in cli),
          "CLI: healthy clients have error null (%s)" % [c.get("error") for c in cli])
    run = api(srv, "GET", "/api/v1/sync-runs?page_size=1", key)[1]["data"][0]
    check(run["error"] is None, "an ok run's error is null (%s)" % run["error"])
    srv.stop()

    # -- rate limits per API key ------------------------------------------------------------
    srv = Serve(ms, env={"MEMSYNC_API_RATE_PER_MINUTE": "60", "MEMSYNC_API_RATE_BURST": "5"})
    other = apikey(ms, "read")
    seen = []
    for i in range(5):
        st, _, _, hdrs = api(srv, "GET", "/api/v1/me", key)
        seen.append((st, hget(hdrs, "RateLimit-Limit"), hget(hdrs, "RateLimit-Remaining"),
                     hget(hdrs, "RateLimit-Reset")))
    check([s[0] for s in seen] == [200] * 5, "the burst is answered (%s)" % seen)
    check([s[1] for s in seen] == [["5"]] * 5, "RateLimit-Limit on each answer (%s)" % seen)
    check([s[2] for s in seen] == [[str(4 - i)] for i in range(5)],
          "RateLimit-Remaining counts down (%s)" % seen)
    check(all(s[3] and 1 <= int(s[3][0]) <= 5 for s in seen), "RateLimit-Reset (%s)" % seen)
    st, js, _, hdrs = api(srv, "GET", "/api/v1/assets/hardware", key)
    retry = hget(hdrs, "Retry-After")
    check(st == 429 and js["errors"][0]["code"] == "too_many_requests",
          "over the limit: 429 too_many_requests (%s)" % st)
    check(retry and 1 <= int(retry[0]) <= 2, "429 has Retry-After (%s)" % retry)
    check(hget(hdrs, "RateLimit-Remaining") == ["0"] and hget(hdrs, "RateLimit-Limit") == ["5"],
          "429 has RateLimit-* (%s)" % hdrs)
    st, _, _, hdrs = api(srv, "GET", "/api/v1/me", other)
    check(st == 200 and hget(hdrs, "RateLimit-Remaining") == ["4"], "another key has its own")
    st, _, _, hdrs = api(srv, "GET", "/healthz")
    check(st == 200 and not hget(hdrs, "RateLimit-Limit"), "no key, no limit (healthz)")
    time.sleep(int(retry[0]) if retry else 1)
    st, _, _, _ = api(srv, "GET", "/api/v1/me", key)
    check(st == 200, "after Retry-After the key is answered again (%s)" % st)
    _, text, _ = harness.http("GET", srv.url + "/metrics", None, {"x-api-key": other})
    check("memsync_http_responses_429_total 1" in text, "the 429 is counted in /metrics")
    srv.stop()

    check(harness.API_CHECKED[0] > 50, "answers checked against /openapi.json (%d)"
          % harness.API_CHECKED[0])
    sim.stop()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
