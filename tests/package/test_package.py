"""The Debian package, built from this tree by scripts/package.sh: lintian finds no error, the
units pass systemd-analyze (verify, and an exposure of at most 2.0 in `security`), and the
package installed with dpkg into a throw-away root (its postinst included, with DPKG_ROOT) has the
memsync user, /var/lib/memsync at 0700, the conffile and hardened units; the binary runs from
there: `memsync --version`, `memsync config`."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("MEMSYNC_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("MEMSYNC_PKG_BUILD_DIR", os.path.join(SRC, "build-pkg"))

HARDENING = ["UMask=0077", "ProtectSystem=strict", "ReadWritePaths=/var/lib/memsync",
             "NoNewPrivileges=yes", "PrivateTmp=yes", "LimitCORE=0", "CapabilityBoundingSet=",
             "User=memsync"]


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        p = subprocess.run([os.path.join(SRC, "scripts", "package.sh"), BUILD], cwd=SRC,
                           capture_output=True, timeout=900)
        cls.build_err = p.stderr.decode("utf-8", "replace")
        if p.returncode != 0:
            raise AssertionError("scripts/package.sh failed:\n" + cls.build_err[-4000:])
        cls.deb = os.path.join(SRC, p.stdout.decode().strip().splitlines()[-1])
        cls.tmp = tempfile.mkdtemp(prefix="memsync-pkg-")
        cls.root = os.path.join(cls.tmp, "root")
        cls.installed_with_dpkg = os.geteuid() == 0
        if cls.installed_with_dpkg:
            # dpkg proper, maintainer scripts included, into an empty root: they honour
            # DPKG_ROOT, so nothing outside it changes. The libraries come from this system.
            for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
                os.makedirs(os.path.join(cls.root, d))
            open(os.path.join(cls.root, "var/lib/dpkg/status"), "w").close()
            p = subprocess.run(["dpkg", "--root=" + cls.root, "--force-script-chrootless",
                                "--force-depends", "--force-not-root", "--log=/dev/null", "-i",
                                cls.deb], capture_output=True, timeout=120)
            if p.returncode != 0:
                raise AssertionError("dpkg -i: " + p.stderr.decode("utf-8", "replace"))
        else:
            subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def read(self, p):
        with open(self.path(p)) as f:
            return f.read()

    def test_lintian_and_name(self):
        self.assertTrue(os.path.basename(self.deb).startswith("memsync_"), self.deb)
        self.assertTrue(self.deb.endswith("_amd64.deb") or "_" in os.path.basename(self.deb))
        self.assertNotIn("\nE: ", "\n" + self.build_err, self.build_err)
        if shutil.which("lintian"):
            self.assertNotIn("not checked", self.build_err)

    def test_control_conffile_and_depends(self):
        ctrl = os.path.join(self.tmp, "control")
        subprocess.run(["dpkg-deb", "-e", self.deb, ctrl], check=True)
        with open(os.path.join(ctrl, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/memsync/memsync.conf"])
        with open(os.path.join(ctrl, "control")) as f:
            control = f.read()
        self.assertIn("Package: memsync\n", control)
        self.assertIn("libc6", control)
        self.assertIn("libsqlite3", control)
        for script in ("postinst", "postrm"):
            self.assertTrue(os.access(os.path.join(ctrl, script), os.X_OK), script)

    def test_files_and_modes(self):
        st = os.stat(self.path("/usr/bin/memsync"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o755)
        self.assertIn("db = /var/lib/memsync/memsync.db", self.read("/etc/memsync/memsync.conf"))
        self.assertIn("u memsync", self.read("/usr/lib/sysusers.d/memsync.conf"))
        self.assertIn("d /var/lib/memsync 0700 memsync memsync",
                      self.read("/usr/lib/tmpfiles.d/memsync.conf"))
        self.assertTrue(os.path.exists(self.path("/usr/share/doc/memsync/copyright")))
        self.assertTrue(os.path.exists(self.path("/usr/share/doc/memsync/changelog.gz")))
        self.assertTrue(os.path.exists(self.path("/usr/share/doc/memsync/docs/DEPLOY.md")))
        self.assertTrue(os.path.exists(self.path("/usr/share/doc/memsync/docs/alerts.yml")))
        for page in ("/usr/share/man/man1/memsync.1.gz", "/usr/share/man/man5/memsync.conf.5.gz"):
            self.assertTrue(os.path.exists(self.path(page)), page)
        self.assertIn("complete -F _memsync memsync",
                      self.read("/usr/share/bash-completion/completions/memsync"))
        if self.installed_with_dpkg:
            users = [l.split(":") for l in self.read("/etc/passwd").splitlines()]
            mine = [u for u in users if u[0] == "memsync"]
            self.assertEqual(len(mine), 1, users)
            self.assertEqual(mine[0][6], "/usr/sbin/nologin")
            st = os.stat(self.path("/var/lib/memsync"))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
            self.assertEqual(st.st_uid, int(mine[0][2]))

    def test_units_are_hardened(self):
        for unit in ("memsync.service", "memsync-worker@.service"):
            text = self.read("/usr/lib/systemd/system/" + unit)
            lines = text.splitlines()
            for want in HARDENING:
                self.assertIn(want, lines, unit)
            self.assertIn("ExecStart=/usr/bin/memsync " +
                          ("serve" if unit == "memsync.service" else "worker"), lines)
            self.assertIn("Environment=MEMSYNC_CONFIG=/etc/memsync/memsync.conf", lines)
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed")
        unit = os.path.join(self.tmp, "memsync.service")
        with open(unit, "w") as f:
            f.write(self.read("/usr/lib/systemd/system/memsync.service").replace(
                "ExecStart=/usr/bin/memsync", "ExecStart=" + self.path("/usr/bin/memsync")))
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, b""))
        # Exposure on systemd's 0-100 scale (shown as 0.0-10.0): at most 2.0 ("OK").
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                            unit], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode()[-3000:])

    def test_binary_runs_from_the_package(self):
        env = {"PATH": "/usr/bin:/bin", "MEMSYNC_CONFIG": self.path("/etc/memsync/memsync.conf")}
        p = subprocess.run([self.path("/usr/bin/memsync"), "--version"], capture_output=True,
                           env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout.decode(), r"^memsync \d+\.\d+\.\d+\n$")
        p = subprocess.run([self.path("/usr/bin/memsync"), "config"], capture_output=True,
                           env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("db = /var/lib/memsync/memsync.db\n", out)
        self.assertIn("listen = 127.0.0.1:8080\n", out)
        # And it works: a database in a scratch place, backed up.
        db = os.path.join(self.tmp, "memsync.db")
        p = subprocess.run([self.path("/usr/bin/memsync"), "--db", db, "status"],
                           capture_output=True, env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([self.path("/usr/bin/memsync"), "--db", db, "backup",
                            os.path.join(self.tmp, "backup.db")], capture_output=True, env=env,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
