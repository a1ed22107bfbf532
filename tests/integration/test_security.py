"""Findings of the security review of `memsync serve`, each with its fix: bounded list query
parameters (no memory growth from repeats), the sign-in redirect accepting only local paths,
the sign-in limiter, and the request-head deadline against byte-trickling clients.

Standard library only. serve listens on 127.0.0.1 port 0; no simulator is needed.
"""
import os
import re
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Memsync  # noqa: E402
from test_api import Serve, api, apikey, hget, login, req, user_add  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raw_get(srv, path):
    """One GET on a fresh socket (keeps the test fast: no urllib per request)."""
    u = urllib.parse.urlsplit(srv.url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    try:
        s.sendall(path.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d+)", data)
    return int(m.group(1)) if m else 0


def test_query_params(srv, read_key):
    # A repeated single-valued parameter is refused, and so are too many parameters.
    for q in ("search=a&search=b", "cursor=x&cursor=y", "page_size=5&page_size=6",
              "sort=name&sort=-name"):
        st, js, text, _ = api(srv, "GET", "/api/v1/assets/hardware?" + q, read_key)
        check(st == 400 and "more than once" in text, "%s answers 400 (%s %s)" % (q, st, text[:200]))
    many = "&".join("x%d=1" % i for i in range(65))
    st, _, text, _ = api(srv, "GET", "/api/v1/clients?" + many, read_key)
    check(st == 400 and "query parameters" in text, "65 parameters answer 400 (%s)" % st)
    st, _, _, _ = api(srv, "GET", "/api/v1/clients?" + "&".join("x%d=1" % i for i in range(60)),
                      read_key)
    check(st == 200, "60 unknown parameters are still accepted (%s)" % st)

    # Repeats used to keep ~60 KB each per request: RSS must stay bounded over 4,000 of them.
    big = "a" * 200
    q = "&".join(["search=" + big] * 30 + ["cursor=" + "b" * 2000] * 30)
    head = ("GET /api/v1/assets/hardware?%s HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n"
            "Connection: close\r\n\r\n" % (q, read_key))
    for _ in range(200):  # warm up the allocator and the thread pool
        raw_get(srv, head)
    before = rss_kb(srv.proc.pid)
    codes = set()
    for _ in range(4000):
        codes.add(raw_get(srv, head))
    after = rss_kb(srv.proc.pid)
    print("rss before %d KB after %d KB" % (before, after), flush=True)
    check(codes == {400}, "repeated parameters always answer 400 (%s)" % codes)
    check(after - before < 20000, "RSS grew by %d KB over 4,000 requests" % (after - before))


def test_safe_next(srv):
    evil = ["/%09/evil.example", "/\t/evil.example", "//evil.example", "/\\evil.example",
            "/%2f%2fevil.example", "/%0d%0aSet-Cookie:x=1", "/%5cevil.example",
            "/a/..//evil.example", "https://evil.example", "/ok\x7f"]
    for n in evil:
        form = urllib.parse.urlencode({"name": "admin", "password": PW, "next": n})
        st, _, hdrs = req("POST", srv.url + "/login", form.encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"})
        loc = (hget(hdrs, "Location") or [""])[0]
        check(st == 303 and loc == "/assets", "next=%r redirects to /assets (%s %s)" % (n, st, loc))
    for n in ("/assets?page_size=10&sort=-name", "/integrations", "/assets/hardware/12"):
        form = urllib.parse.urlencode({"name": "admin", "password": PW, "next": n})
        st, _, hdrs = req("POST", srv.url + "/login", form.encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"})
        loc = (hget(hdrs, "Location") or [""])[0]
        check(st == 303 and loc == n, "next=%r is kept (%s %s)" % (n, st, loc))


def test_trickle(srv):
    """A client sending a byte every 2 s used to keep its connection for ever: the idle timeout
    restarted on each byte. The request head now has 10 s in all."""
    u = urllib.parse.urlsplit(srv.url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    closed_at = None
    while time.time() - t0 < 25:
        try:
            s.sendall(b"X")
            s.settimeout(2)
            data = s.recv(1024)
            if data == b"" or data.startswith(b"HTTP/"):
                closed_at = time.time() - t0
                break
        except socket.timeout:
            continue
        except OSError:
            closed_at = time.time() - t0
            break
    s.close()
    print("trickling connection closed after %s s" % closed_at, flush=True)
    check(closed_at is not None and 8 <= closed_at <= 14,
          "a trickled request head is cut off after about 10 s (%s)" % closed_at)


def test_per_client_behind_proxy(srv):
    """Behind nginx every client is 127.0.0.1: the per-address budget is per X-Real-IP."""
    u = urllib.parse.urlsplit(srv.url)
    held = []
    for _ in range(64):
        s = socket.create_connection((u.hostname, u.port), timeout=10)
        s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nX-Real-IP: 203.0.113.1\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
        held.append(s)
    time.sleep(0.5)
    st_a = raw_get(srv, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Real-IP: 203.0.113.1\r\n"
                        "Connection: close\r\n\r\n")
    try:
        st_b = raw_get(srv, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Real-IP: 203.0.113.2\r\n"
                            "Connection: close\r\n\r\n")
    except OSError as e:
        st_b = str(e)
    for s in held:
        s.close()
    check(st_a == 429, "a 65th connection of one client behind the proxy answers 429 (%s)" % st_a)
    check(st_b == 200, "another client behind the same proxy is served (%s)" % st_b)


def test_not_dumpable(srv):
    """serve marks itself not dumpable: its /proc files then belong to root, not to its user."""
    if os.getuid() == 0:
        print("running as root: the owner of /proc/PID cannot show dumpability; skipped")
        return
    st = os.stat("/proc/%d/environ" % srv.proc.pid)
    check(st.st_uid == 0, "serve is not dumpable (its /proc/PID/environ belongs to root)")


PW = "admin-password-1"


def main():
    ms = Memsync()
    srv = Serve(ms)
    m = re.search(r'created user "admin" with password (\S+)', srv.stdout())
    global PW
    PW = m.group(1) if m else PW
    read_key = apikey(ms, "read")
    user_add(ms, "victor", "viewer", "viewer-password-1")

    test_query_params(srv, read_key)
    test_safe_next(srv)
    test_per_client_behind_proxy(srv)
    test_trickle(srv)
    test_not_dumpable(srv)

    srv.stop()
    ms.cleanup()
    if FAILS:
        print("%d failures" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
