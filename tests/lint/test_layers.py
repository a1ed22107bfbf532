"""scripts/layers.py passes on the tree and refuses an upward include, an include from a layer
beside (the simulator using the client), an internal header (*_int.h) used outside its folder,
and an import circle."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "layers.py")
LAYERS = ["core", "ms", "store", "sync", "view", "serve", "sim", "cli"]


def run(root=None):
    p = subprocess.run([sys.executable, SCRIPT] + ([root] if root else []),
                       capture_output=True, text=True)
    return p.returncode, p.stdout


class Layers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        for l in LAYERS:
            os.mkdir(os.path.join(self.dir, l))
        self.put("core/err.h", "")
        self.put("ms/graph.h", '#include "err.h"\n')
        self.put("serve/api.c", '#include "graph.h"\n')

    def tearDown(self):
        shutil.rmtree(self.dir)

    def put(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def test_tree(self):
        rc, out = run()
        self.assertEqual(rc, 0, out)

    def test_clean_fixture(self):
        self.assertEqual(run(self.dir), (0, "1 passed, 0 failed\n"))

    def test_upward(self):
        self.put("core/err.c", '#include "api.h"\n')
        self.put("serve/api.h", "")
        rc, out = run(self.dir)
        self.assertEqual(rc, 1)
        self.assertIn("src/core/err.c includes api.h from src/serve", out)

    def test_subfolder(self):
        os.mkdir(os.path.join(self.dir, "store", "sqlite"))
        self.put("store/sqlite/schema.c", '#include "api.h"\n')
        self.put("serve/api.h", "")
        rc, out = run(self.dir)
        self.assertEqual(rc, 1)
        self.assertIn("src/store/sqlite/schema.c includes api.h from src/serve", out)

    def test_sim_uses_client(self):
        self.put("sim/sim.c", '#include "graph.h"\n')
        rc, out = run(self.dir)
        self.assertEqual(rc, 1)
        self.assertIn("sim may use only core, sim", out)

    def test_internal_header(self):
        os.makedirs(os.path.join(self.dir, "store", "sqlite"))
        self.put("store/store_int.h", "")
        self.put("store/sqlite/sqlite_int.h", '#include "store_int.h"\n')
        self.put("store/store.c", '#include "store_int.h"\n')
        self.put("store/sqlite/sqlite_schema.c", '#include "sqlite_int.h"\n')
        self.assertEqual(run(self.dir), (0, "1 passed, 0 failed\n"))
        self.put("store/reconcile.h", '#include "store_int.h"\n')
        self.put("store/reconcile.c", '#include "reconcile.h"\n')
        self.assertEqual(run(self.dir), (0, "1 passed, 0 failed\n"))
        self.put("serve/api.c", '#include "store_int.h"\n')
        self.put("sync/sync.c", '#include "reconcile.h"\n')
        self.put("store/backup.c", '#include "sqlite_int.h"\n')
        rc, out = run(self.dir)
        self.assertEqual(rc, 1)
        self.assertIn("src/serve/api.c includes store_int.h: an internal header, for src/store only",
                      out)
        self.assertIn("src/store/backup.c includes sqlite_int.h: an internal header, for "
                      "src/store/sqlite only", out)
        self.assertIn("src/sync/sync.c includes reconcile.h: an internal header, for src/store "
                      "only", out)

    def test_circle(self):
        self.put("ms/graph.c", '#include "report.h"\n')
        self.put("ms/report.c", '#include "graph.h"\n')
        self.put("ms/report.h", "")
        rc, out = run(self.dir)
        self.assertEqual(rc, 1)
        self.assertIn("import circle: graph -> report -> graph", out)


if __name__ == "__main__":
    unittest.main()
