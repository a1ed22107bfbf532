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


if __name__ == "__main__":
    unittest.main()
