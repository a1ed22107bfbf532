#!/usr/bin/python3
"""The integration form: each value links to where the setup guide (served at /help/setup) says
to find it; after a failed check the values that passed stay filled (a key only when its own
check passed) and the failing one is marked; the result says how many customer tenants were
sampled. Standard library only; memsync serve and memsync sim on 127.0.0.1 port 0."""
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Memsync, Sim  # noqa: E402
from test_api import FAILS, Serve, api, apikey, check, csrf_of, integration_body, login, \
    req  # noqa: E402

FIELDS = ("partner_tenant_id", "partner_app_id", "partner_app_secret", "sync_app_id",
          "sync_app_secret")


def field_html(page, name):
    m = re.search(r'<label[^>]*>(?:(?!</label>).)*name="%s"(?:(?!</label>).)*</label>' % name,
                  page, re.S)
    return m.group(0) if m else ""


def main():
    sim = Sim("--tenants", "3", "--devices", "4", "--apps-per-device", "1", "--seed", "9")
    ms = Memsync(sim)
    ms.env["MEMSYNC_VALIDATE_SAMPLE"] = "1"
    srv = Serve(ms)
    pw = re.search(r'created user "admin" with password (\S+)', srv.stdout()).group(1)
    _, token, _ = login(srv, "admin", pw)
    cookie = {"Cookie": "memsync_session=" + token}
    headers = dict(cookie, **{"Content-Type": "application/x-www-form-urlencoded",
                              "Origin": srv.url})

    st, page, _ = req("GET", srv.url + "/integrations", headers=cookie)
    for name, anchor in (("partner_tenant_id", "microsoft-partner-account-id"),
                         ("partner_app_id", "microsoft-partner-app-id"),
                         ("partner_app_secret", "microsoft-partner-app-key"),
                         ("sync_app_id", "microsoft-sync-app-id"),
                         ("sync_app_secret", "microsoft-sync-app-key")):
        check('href="/help/setup#%s"' % anchor in field_html(page, name),
              "%s links to where to find it" % name)
    st, help_page, _ = req("GET", srv.url + "/help/setup", headers=cookie)
    check(st == 200 and all('id="%s"' % a in help_page for a in
                            ("microsoft-partner-account-id", "microsoft-sync-app-key",
                             "national-clouds")), "the help page has every anchor (%s)" % st)
    check("<h1" in help_page and "adminconsent" in help_page, "the help page is the setup guide")

    # A wrong Sync App Key: the partner values passed and stay filled, the key is marked.
    body = integration_body(sim, sync_app_secret="not-the-sync-key")
    form = urllib.parse.urlencode(dict(body, csrf=csrf_of(srv, token))).encode()
    st, page, _ = req("POST", srv.url + "/integrations", form, headers)
    check(st == 422, "a failed check is refused (%s)" % st)
    bad = field_html(page, "sync_app_secret")
    check('class="invalid"' in bad and 'aria-invalid="true"' in bad and 'value=""' in bad,
          "the failing key is marked and empty: %s" % bad[:300])
    good = field_html(page, "partner_app_secret")
    check('value="%s"' % body["partner_app_secret"] in good and "invalid" not in good,
          "the key that passed stays filled")
    for name in ("partner_tenant_id", "partner_app_id", "sync_app_id"):
        f = field_html(page, name)
        check('value="%s"' % body[name] in f and "invalid" not in f, "%s stays filled" % name)

    # A wrong Partner App ID format: that field is marked, the keys are not kept.
    form = urllib.parse.urlencode(dict(integration_body(sim, partner_app_id="nope"),
                                       csrf=csrf_of(srv, token))).encode()
    st, page, _ = req("POST", srv.url + "/integrations", form, headers)
    check('aria-invalid="true"' in field_html(page, "partner_app_id"),
          "a malformed id is marked")
    check('value=""' in field_html(page, "partner_app_secret"),
          "a key whose check did not run is not kept")

    # The API says which field failed and how many tenants were sampled.
    key = apikey(ms, "admin")
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations", key,
                          integration_body(sim, sync_app_secret="not-the-sync-key"))
    checks = {c["id"]: c for c in (js or {}).get("validation", {}).get("checks", [])}
    check(st == 422 and checks.get("sync_token", {}).get("field") == "sync_app_secret",
          "the API names the failing field (%s %s)" % (st, text[:300]))

    # Every check passes: the answer says how many tenants were tried, not "every check".
    form = urllib.parse.urlencode(dict(integration_body(sim), csrf=csrf_of(srv, token))).encode()
    st, page, _ = req("POST", srv.url + "/integrations", form, headers)
    check(st == 200 and "Checked 1 of 3 customer tenants" in page, "the result says the sample")
    check("Every check passed" not in page, "the result does not claim every check")
    srv.stop()
    sim.stop()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
