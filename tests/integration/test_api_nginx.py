"""docs/nginx.conf in front of `memsync serve`, with Debian's nginx and a throwaway certificate:
TLS works, the session cookie becomes Secure, nginx stops large bodies, and CSV exports stream
through.

The documented file is used as is; only its addresses, ports and certificate paths are
rewritten for the test.
"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Memsync, Sim  # noqa: E402
from test_api import Serve, apikey, check, FAILS  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SRC = os.environ.get("MEMSYNC_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def main():
    if not os.path.exists(NGINX):
        print("nginx is not installed (scripts/deps.sh test installs nginx-light)")
        sys.exit(1)
    work = tempfile.mkdtemp(prefix="memsync-nginx-")
    crt, key = os.path.join(work, "tls.crt"), os.path.join(work, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    sim = Sim("--tenants", "1", "--devices", "5")
    ms = Memsync(sim)
    srv = Serve(ms)
    upstream = srv.url.split("//", 1)[1]
    admin_key = apikey(ms, "read")
    pw = re.search(r"with password (\S+)", srv.stdout()).group(1)

    with open(os.path.join(SRC, "docs", "nginx.conf")) as f:
        conf = f.read()
    https_port, http_port = free_port(), free_port()
    conf = conf.replace("server 127.0.0.1:8080;", "server %s;" % upstream)
    conf = conf.replace("listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % https_port)
    conf = conf.replace("listen 80;", "listen 127.0.0.1:%d;" % http_port)
    conf = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", conf)
    conf = conf.replace("/etc/ssl/certs/memsync.crt", crt)
    conf = conf.replace("/etc/ssl/private/memsync.key", key)
    check(conf.count(str(https_port)) == 1 and crt in conf, "the documented config was adapted")
    for d in ("tmp", "logs"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
    main_conf = os.path.join(work, "nginx.conf")
    with open(main_conf, "w") as f:
        f.write("%sworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/logs/error.log;\n"
                "events { worker_connections 64; }\nhttp {\n"
                "  access_log %s/logs/access.log;\n  client_body_temp_path %s/tmp;\n"
                "  proxy_temp_path %s/tmp;\n  fastcgi_temp_path %s/tmp;\n"
                "  uwsgi_temp_path %s/tmp;\n  scgi_temp_path %s/tmp;\n%s\n}\n" %
                ("user root;\n" if os.geteuid() == 0 else "", work, work, work, work, work, work,
                 work, work, conf))
    t = subprocess.run([NGINX, "-t", "-p", work, "-c", main_conf], capture_output=True)
    check(t.returncode == 0, "nginx -t accepts the config: " + t.stderr.decode()[-400:])
    ng = subprocess.Popen([NGINX, "-p", work, "-c", main_conf, "-g", "daemon off;"],
                          stderr=subprocess.PIPE)
    harness._procs.append(ng)
    base = "https://127.0.0.1:%d" % https_port
    ctx = ssl.create_default_context(cafile=crt)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)

    def req(method, path, body=None, headers=None, from_serve=True):
        r = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
        try:
            with opener.open(r, timeout=30) as resp:
                ans = resp.status, resp.read().decode("utf-8", "replace"), resp.getheaders()
        except urllib.error.HTTPError as e:
            ans = e.code, e.read().decode("utf-8", "replace"), list(e.headers.items())
        # Through nginx too, each API answer matches the document serve itself publishes
        # (answers nginx makes itself are not serve's).
        if from_serve:
            harness.api_check(method, srv.url + path, *ans)
        return ans

    for _ in range(200):
        try:
            st, body, _ = req("GET", "/healthz")
            break
        except (urllib.error.URLError, ConnectionError, ssl.SSLError):
            time.sleep(0.05)
    check(st == 200 and '"ok"' in body, "healthz through nginx over TLS")
    st, body, hdrs = req("GET", "/api/v1/clients", headers={"x-api-key": admin_key})
    check(st == 200, "API through nginx")
    check(any(k.lower() == "strict-transport-security" for k, _ in hdrs), "HSTS from nginx")
    form = urllib.parse.urlencode({"name": "admin", "password": pw}).encode()
    st, body, hdrs = req("POST", "/login", form,
                         {"Content-Type": "application/x-www-form-urlencoded", "Origin": base})
    cookies = [v for k, v in hdrs if k.lower() == "set-cookie"]
    check(st == 303 and cookies and "Secure" in cookies[0],
          "behind TLS the session cookie is Secure (%s %s)" % (st, cookies))
    st, body, _ = req("POST", "/api/v1/integrations", b"x" * 100000,
                      {"x-api-key": admin_key, "Content-Type": "application/json"},
                      from_serve=False)
    check(st == 413, "nginx refuses bodies over 64 KiB (%s)" % st)
    st, body, hdrs = req("GET", "/api/v1/assets/hardware.csv", headers={"x-api-key": admin_key})
    check(st == 200 and body.startswith("id,"), "CSV export through nginx")
    ng.terminate()
    ng.wait(timeout=10)
    srv.stop()
    sim.stop()
    shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
