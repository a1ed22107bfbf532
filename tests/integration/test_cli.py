"""The CLI for people: table headers in words, columns aligned by display width (a CJK device
name takes two terminal columns per character), and `config --show-origin` saying where each
setting came from.
"""
import os
import sys
import unicodedata
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def width(s):
    """Terminal columns: East Asian wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def starts(line):
    """Display columns where the cells of a table line begin."""
    out, col, prev = [], 0, "  "
    for ch in line:
        if ch != " " and prev.endswith("  ") or (ch != " " and col == 0):
            out.append(col)
        prev = (prev + ch)[-2:]
        col += width(ch)
    return out


class Cli(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "1", "--devices", "3", "--apps-per-device", "1",
                               "--seed", "3")
        self.ms = harness.Memsync(self.sim)

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def test_table_aligns_cjk_names_by_display_width(self):
        tenant = self.sim.world()["tenants"][0]["id"]
        devs = self.sim.graph_all(tenant, "/v1.0/deviceManagement/managedDevices")
        cjk = "東京本社ノートパソコン"          # 11 characters, 22 columns
        long_cjk = "大阪支店" * 12             # 48 characters, 96 columns: cut
        for d, name in ((devs[0], cjk), (devs[1], long_cjk)):
            self.sim.control({"op": "modify_device", "tenant": tenant, "id": d["id"],
                              "set": {"deviceName": name}, "touch": True})
        self.ms.add_integration("--no-sync")
        self.ms.run("sync", "--no-software", check=0)
        _, out, _ = self.ms.run("assets", "hardware", "--format", "table", check=0)
        lines = out.rstrip("\n").split("\n")
        self.assertEqual(len(lines), 4, out)
        head = lines[0]
        self.assertIn("Serial number", head)
        self.assertIn("Name", head)
        self.assertNotIn("serial_number", head)
        # Every cell starts at a display column where a header starts (cells are separated by
        # two or more spaces; values have no double spaces).
        heads = starts(head)
        self.assertGreaterEqual(len(heads), 4, head)
        for line in lines[1:]:
            self.assertTrue(set(starts(line)) <= set(heads), "misaligned: %r\n%s" % (line, out))
        cjk_line = [line for line in lines if cjk in line][0]
        self.assertGreaterEqual(len(starts(cjk_line)), len(heads) - 1, cjk_line)
        # The long name is cut with an ellipsis within 40 columns; the short one is whole.
        names = [line for line in lines if "大阪" in line]
        self.assertEqual(len(names), 1)
        cell = [c for c in names[0].split("  ") if "大阪" in c][0]
        self.assertTrue(cell.strip().endswith("…"), cell)
        self.assertLessEqual(width(cell.strip()), 40)
        self.assertTrue(any(cjk in line for line in lines), out)

    def test_config_show_origin(self):
        conf = os.path.join(self.ms.dir, "memsync.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:9999\nsync_parallel = 7\n")
        env = {"MEMSYNC_CONFIG": conf, "MEMSYNC_LOG_FORMAT": "json",
               "MEMSYNC_SYNC_PARALLEL": "9"}
        code, out, err = self.ms.run("--log-level", "warn", "config", "--show-origin", env=env)
        self.assertEqual(code, 0, err)
        lines = dict(line.split(" = ", 1) for line in out.splitlines())
        self.assertEqual(lines["listen"], "127.0.0.1:9999  # file " + conf)
        self.assertEqual(lines["sync_parallel"], "9  # environment MEMSYNC_SYNC_PARALLEL")
        self.assertEqual(lines["log_format"], "json  # environment MEMSYNC_LOG_FORMAT")
        self.assertEqual(lines["log_level"], "warn  # flag --log-level")
        self.assertEqual(lines["retire_guard_pct"], "10  # default")
        # Without the flag the output stays "key = value", which a config file can take back.
        code, out, _ = self.ms.run("config", env=env)
        self.assertNotIn("#", out)
        code, out, _ = self.ms.run("config", "--help")
        self.assertIn("--show-origin", out)



class AssetsOptions(unittest.TestCase):
    """assets hardware --os, --type, --stale-days, --sort, --columns, --no-headers, --limit."""

    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tenants", "2", "--devices", "12", "--apps-per-device", "1",
                              "--seed", "5")
        cls.ms = harness.Memsync(cls.sim)
        cls.ms.add_integration("--no-sync")
        cls.ms.run("sync", "--no-software", check=0)
        cls.all = cls.ms.json("assets", "hardware", "--format", "json")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        cls.ms.cleanup()

    def csv(self, *args):
        code, out, err = self.ms.run("assets", "hardware", "--format", "csv", *args)
        self.assertEqual(code, 0, err)
        return [line.split(",") for line in out.splitlines()]

    def test_filters(self):
        osname = self.all[0]["operating_system"]["name"]
        want = sorted(a["id"] for a in self.all if a["operating_system"]["name"] == osname)
        rows = self.ms.json("assets", "hardware", "--format", "json", "--os", osname.upper())
        self.assertEqual(sorted(a["id"] for a in rows), want)
        typ = self.all[0]["type"]
        rows = self.ms.json("assets", "hardware", "--format", "json", "--type", typ)
        self.assertEqual(sorted(a["id"] for a in rows),
                         sorted(a["id"] for a in self.all if a["type"] == typ))
        # --stale-days: the devices whose last check-in is older than N days.
        import calendar
        import time
        now = time.time()

        def age(a):
            t = a.get("last_check_in_at")
            return (now - calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))) / 86400 \
                if t else None
        ages = sorted(age(a) for a in self.all if age(a) is not None)
        days = int(ages[len(ages) // 2])  # splits the devices
        if any(abs(x - days) < 0.02 for x in ages):
            days += 1
        rows = self.ms.json("assets", "hardware", "--format", "json", "--stale-days", str(days))
        self.assertEqual(sorted(a["id"] for a in rows),
                         sorted(a["id"] for a in self.all
                                if age(a) is not None and age(a) > days))
        self.assertTrue(0 < len(rows) < len(self.all), (len(rows), days, ages))

    def test_sort_columns_limit_no_headers(self):
        rows = self.csv("--columns", "name,serial_number", "--sort", "-name", "--limit", "5")
        self.assertEqual(rows[0], ["name", "serial_number"])
        names = sorted((a["name"] for a in self.all), reverse=True)[:5]
        self.assertEqual([r[0] for r in rows[1:]], names)
        rows = self.csv("--columns", "name", "--no-headers", "--limit", "3")
        self.assertEqual(len(rows), 3)
        self.assertNotIn(["name"], rows)
        code, out, err = self.ms.run("assets", "hardware", "--columns", "name,bogus")
        self.assertEqual(code, 2)
        self.assertIn("bogus", err)
        code, out, err = self.ms.run("assets", "hardware", "--sort", "nope")
        self.assertEqual(code, 2)
        self.assertIn("nope", err)
        code, out, err = self.ms.run("assets", "hardware", "--format", "table", "--columns",
                                     "client.name,serial_number", "--limit", "2")
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertEqual(lines[0].split(), ["Client", "Serial", "number"])


def run_on_terminal(ms, *args):
    """Runs memsync with stderr on a pseudo-terminal; returns (exit code, stdout, terminal)."""
    import pty
    import subprocess
    master, slave = pty.openpty()
    env = dict(ms.env)
    env.pop("MEMSYNC_NO_PROGRESS", None)
    p = subprocess.Popen([harness.BIN] + list(args), cwd=ms.dir, env=env,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = p.stdout.read().decode()
    p.stdout.close()
    p.wait(timeout=120)
    os.close(master)
    return p.returncode, out, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


class SyncOnTerminal(unittest.TestCase):
    """`memsync sync` on a terminal: a line per tenant as it finishes (ok, or failed with its
    remedy) above a progress bar with elapsed time; logs only with -v."""

    def test_tenant_lines_and_logs_behind_v(self):
        sim = harness.Sim("--tenants", "2", "--devices", "3", "--apps-per-device", "1",
                          "--seed", "9")
        ms = harness.Memsync(sim)
        try:
            bad = sim.control({"op": "add_tenant", "name": "Unconsented Ltd", "devices": 2,
                               "consented": False})["results"][0]["tenant"]
            ms.add_integration("--no-sync")
            code, out, term = run_on_terminal(ms, "sync", "--no-software")
            self.assertEqual(code, 3, term)
            lines = [ln.split("\r")[-1].replace("\x1b[K", "") for ln in term.split("\n")]
            ok = [ln for ln in lines if ln.startswith("  ok      ")]
            failed = [ln for ln in lines if ln.startswith("  failed  ")]
            self.assertEqual(len(ok), 2, term)
            self.assertTrue(all("devices" in ln for ln in ok), ok)
            self.assertEqual(len(failed), 1, term)
            self.assertIn("Unconsented Ltd (%s): " % bad, failed[0])
            self.assertIn("consent", failed[0].lower())
            self.assertRegex(term, r"\[#+\] 3/3 tenants .* \d+:\d\d")
            self.assertNotIn("tenant failed run=", term, "logs stay behind -v")
            self.assertNotIn("sync starting", term)
            code, out, term = run_on_terminal(ms, "sync", "--no-software", "-v")
            self.assertEqual(code, 3, term)
            self.assertIn("tenant failed", term)
            self.assertEqual(len([ln for ln in term.split("\n") if "  failed  " in ln]), 1)
        finally:
            sim.stop()
            ms.cleanup()


if __name__ == "__main__":
    unittest.main()
