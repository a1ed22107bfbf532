"""Import files for Snipe-IT and GLPI from the CLI, the API and the web UI: the columns and
members those tools document (docs/API.md "Import formats"), the same rows everywhere, filters
applied, and the CSV formula guard on for spreadsheet exports and off for import files.

Standard library only; `memsync serve` and `memsync sim` on 127.0.0.1 port 0.
"""
import csv
import io
import json
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_api import Serve, apikey, hget, login, req, user_add  # noqa: E402

# Snipe-IT "Importing Assets" (https://snipe-it.readme.io/docs/importing-assets): the header
# names its asset importer maps, matched without regard to case.
SNIPEIT_HEADERS = {
    "id", "asset tag", "name", "serial", "model name", "model number", "category", "status",
    "notes", "requestable", "warranty months", "byod", "last checkin", "manufacturer",
    "company", "location", "purchase date", "purchase cost", "supplier", "order number",
    "full name", "username", "email",
}
# Required when the importer creates an asset, and the key it updates by.
SNIPEIT_REQUIRED = {"asset tag", "model name", "category", "status"}

# GLPI's inventory format (https://github.com/glpi-project/inventory_format,
# inventory.schema.json): required members, and the members memsync writes with their types.
GLPI_TYPES = {
    "deviceid": str, "itemtype": str, "content": dict, "content.versionclient": str,
    "content.hardware": dict, "content.hardware.name": str, "content.hardware.memory": int,
    "content.hardware.lastloggeduser": str, "content.bios": dict,
    "content.bios.smanufacturer": str, "content.bios.smodel": str, "content.bios.ssn": str,
    "content.operatingsystem": dict, "content.operatingsystem.name": str,
    "content.operatingsystem.version": str, "content.operatingsystem.full_name": str,
}
GLPI_ITEMTYPES = {"Computer", "Phone", "NetworkEquipment", "Printer"}

FORMULA = "=HYPERLINK(\"http://x\",\"y\")"


def glpi_problems(doc):
    """What in one document is not the schema's: unknown members, wrong types, missing ones."""
    out = []

    def walk(o, prefix):
        for k, v in o.items():
            path = prefix + k
            want = GLPI_TYPES.get(path)
            if want is None:
                out.append("unknown member " + path)
            elif not isinstance(v, want) or isinstance(v, bool):
                out.append("%s is %s" % (path, type(v).__name__))
            if isinstance(v, dict):
                walk(v, path + ".")
    walk(doc, "")
    for req_path in ("deviceid", "content", "content.versionclient"):
        node = doc
        for part in req_path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            out.append("missing " + req_path)
    if doc.get("itemtype") not in GLPI_ITEMTYPES:
        out.append("itemtype %r" % doc.get("itemtype"))
    return out


class Exports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tenants", "2", "--devices", "5", "--apps-per-device", "2",
                              "--seed", "21")
        cls.ms = harness.Memsync(cls.sim)
        tenant = cls.sim.world()["tenants"][0]["id"]
        devs = cls.sim.graph_all(tenant, "/v1.0/deviceManagement/managedDevices")
        cls.sim.control({"op": "modify_device", "tenant": tenant, "id": devs[0]["id"],
                         "set": {"deviceName": FORMULA, "model": "+Model 9"}, "touch": True})
        cls.ms.add_integration("--no-sync")
        cls.ms.run("sync", "--no-software", check=0)
        cls.hw = cls.ms.jsonl("assets", "hardware", "--format", "jsonl")
        cls.srv = Serve(cls.ms)
        cls.key = apikey(cls.ms, "read")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.sim.stop()
        cls.ms.cleanup()

    def get(self, path):
        return req("GET", self.srv.url + path, headers={"x-api-key": self.key})

    def check_snipeit(self, text):
        rows = list(csv.DictReader(io.StringIO(text)))
        head = text.split("\r\n", 1)[0].split(",")
        for h in head:
            self.assertIn(h.lower(), SNIPEIT_HEADERS, "Snipe-IT's importer knows " + h)
            self.assertEqual(h, h.strip())
        self.assertTrue(SNIPEIT_REQUIRED <= {h.lower() for h in head}, head)
        for r in rows:
            self.assertTrue(r["Asset Tag"] and r["Model Name"] and r["Category"] and
                            r["Status"], r)
        return rows

    def test_snipeit_cli(self):
        _, out, _ = self.ms.run("assets", "hardware", "--format", "snipeit", check=0)
        rows = self.check_snipeit(out)
        self.assertEqual(len(rows), len(self.hw))
        byid = {a["id"]: a for a in self.hw}
        for r in rows:
            a = byid[int(r["Asset Tag"].split("-")[1])]
            self.assertEqual(r["Name"], a["name"])
            self.assertEqual(r["Serial"], a["serial_number"] or "")
            self.assertEqual(r["Company"], a["client"]["name"])
            self.assertEqual(r["Manufacturer"], a["manufacturer"] or "")
        # an import file keeps the value as it is ...
        self.assertIn(FORMULA, [r["Name"] for r in rows])
        self.assertIn("+Model 9", [r["Model Name"] for r in rows])
        # ... and a spreadsheet export still guards it
        _, out, _ = self.ms.run("assets", "hardware", "--format", "csv", check=0)
        names = [r["name"] for r in csv.DictReader(io.StringIO(out))]
        self.assertIn("'" + FORMULA, names)
        self.assertNotIn(FORMULA, names)

    def test_glpi_cli(self):
        docs = self.ms.jsonl("assets", "hardware", "--format", "glpi")
        self.assertEqual(len(docs), len(self.hw))
        for d in docs:
            self.assertEqual(glpi_problems(d), [], d)
        serials = sorted(d["content"]["bios"].get("ssn", "") for d in docs)
        self.assertEqual(serials, sorted(a["serial_number"] or "" for a in self.hw))
        self.assertIn(FORMULA, [d["content"]["hardware"].get("name") for d in docs])
        self.assertEqual(len({d["deviceid"] for d in docs}), len(docs), "one deviceid each")

    def test_cli_refuses_columns_with_import_format(self):
        rc, _, err = self.ms.run("assets", "hardware", "--format", "snipeit", "--columns", "id")
        self.assertEqual(rc, 2, err)
        rc, _, err = self.ms.run("assets", "software", "--format", "glpi")
        self.assertEqual(rc, 2, err)

    def test_api_matches_cli(self):
        st, text, hdrs = self.get("/api/v1/assets/hardware.csv?format=snipeit")
        self.assertEqual(st, 200)
        self.assertTrue(hget(hdrs, "Content-Type")[0].startswith("text/csv"))
        self.assertIn("snipeit", hget(hdrs, "Content-Disposition")[0])
        self.check_snipeit(text)
        _, out, _ = self.ms.run("assets", "hardware", "--format", "snipeit", check=0)
        self.assertEqual(sorted(text.splitlines()), sorted(out.splitlines()))

        st, text, hdrs = self.get("/api/v1/assets/hardware.jsonl?format=glpi")
        self.assertEqual(st, 200)
        self.assertEqual(hget(hdrs, "Content-Type")[0], "application/x-ndjson")
        docs = [json.loads(l) for l in text.splitlines() if l]
        for d in docs:
            self.assertEqual(glpi_problems(d), [], d)
        cli = self.ms.jsonl("assets", "hardware", "--format", "glpi")
        key = lambda d: d["deviceid"]  # noqa: E731
        self.assertEqual(sorted(docs, key=key), sorted(cli, key=key))

        # the spreadsheet export keeps its guard
        st, text, _ = self.get("/api/v1/assets/hardware.csv")
        names = [r["name"] for r in csv.DictReader(io.StringIO(text))]
        self.assertIn("'" + FORMULA, names)
        # the plain JSON lines are the API's rows
        st, text, _ = self.get("/api/v1/assets/hardware.jsonl")
        self.assertEqual(st, 200)
        self.assertEqual(sorted(json.loads(l)["id"] for l in text.splitlines() if l),
                         sorted(a["id"] for a in self.hw))

    def test_api_filters_apply(self):
        c = self.hw[0]["client"]
        want = [a for a in self.hw if a["client"]["id"] == c["id"]]
        st, text, _ = self.get("/api/v1/assets/hardware.csv?format=snipeit&filter%%5Bclient.id"
                               "%%5D=eq:%d" % c["id"])
        rows = list(csv.DictReader(io.StringIO(text)))
        self.assertEqual(st, 200)
        self.assertEqual(len(rows), len(want))
        self.assertEqual({r["Company"] for r in rows}, {c["name"]})
        st, text, _ = self.get("/api/v1/assets/hardware.jsonl?format=glpi&search=" +
                               urllib.parse.quote(self.hw[1]["name"]))
        docs = [json.loads(l) for l in text.splitlines() if l]
        self.assertTrue(docs and all(d["content"]["hardware"]["name"] == self.hw[1]["name"]
                                     for d in docs), docs)

    def test_api_refuses_a_wrong_format_before_any_row(self):
        for path in ("/api/v1/assets/hardware.csv?format=glpi",
                     "/api/v1/assets/hardware.jsonl?format=snipeit",
                     "/api/v1/assets/hardware.csv?format=xlsx",
                     "/api/v1/assets/software.csv?format=snipeit"):
            st, text, _ = self.get(path)
            self.assertEqual(st, 400, path)
            self.assertEqual(json.loads(text)["errors"][0]["code"], "invalid_request")

    def test_ui_links(self):
        user_add(self.ms, "ivy", "viewer", "viewer-password-1")
        st, tok, _ = login(self.srv, "ivy", "viewer-password-1")
        self.assertEqual(st, 303)
        c = self.hw[0]["client"]["id"]
        st, html, _ = req("GET", self.srv.url + "/assets?client=%d" % c,
                          headers={"Cookie": "memsync_session=" + tok})
        self.assertEqual(st, 200)
        links = dict(re.findall(r'id="(export-[a-z]+)" href="([^"]+)"', html))
        self.assertIn("format=snipeit", links.get("export-snipeit", ""))
        self.assertIn("format=glpi", links.get("export-glpi", ""))
        for name in ("export-snipeit", "export-glpi"):
            href = links[name].replace("&amp;", "&")
            self.assertIn("client.id", urllib.parse.unquote(href), "the list's filters apply")
            st, body, _ = req("GET", self.srv.url + href,
                              headers={"Cookie": "memsync_session=" + tok})
            self.assertEqual(st, 200, href)
            self.assertTrue(body.strip())


if __name__ == "__main__":
    unittest.main()
