"""The manual pages and the bash completion: man/memsync.conf.5's SETTINGS section is what
`memsync config --man` prints from the settings table (so it cannot drift), both pages format
without groff warnings, and the completion offers commands, sub-commands and option values.

usage: test_man_completion.py MEMSYNC_BINARY
"""
import os
import shutil
import subprocess
import sys
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = None


class Man(unittest.TestCase):
    def test_settings_section_is_generated(self):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "man-settings.py"),
                            "--check", BIN], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_setting_is_in_the_page(self):
        out = subprocess.run([BIN, "config"], capture_output=True, text=True, check=True,
                             env={"PATH": os.environ.get("PATH", "")}).stdout
        with open(os.path.join(ROOT, "man", "memsync.conf.5")) as f:
            page = f.read()
        keys = [line.split(" = ")[0] for line in out.splitlines()]
        self.assertGreater(len(keys), 10)
        for k in keys:
            self.assertIn(".B %s\n" % k, page, k)
            self.assertIn(".BR MEMSYNC_%s .\n" % k.upper(), page, k)

    @unittest.skipUnless(shutil.which("groff"), "groff not installed")
    def test_pages_format_cleanly(self):
        for page in ("memsync.1", "memsync.conf.5"):
            r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8",
                                os.path.join(ROOT, "man", page)], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)


def complete(*words):
    """What the completion offers after `memsync WORDS...` (the last word is being typed)."""
    script = ('source "%s"; COMP_WORDS=(memsync %s); COMP_CWORD=%d; _memsync; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' %
              (os.path.join(ROOT, "completions", "memsync.bash"),
               " ".join("'%s'" % w for w in words), len(words)))
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, check=True)
    return [w for w in r.stdout.split("\n") if w]


@unittest.skipUnless(shutil.which("bash"), "bash not installed")
class Completion(unittest.TestCase):
    def test_commands(self):
        self.assertEqual(complete("s"), ["serve", "sim", "sync", "status"])
        self.assertEqual(complete("--db", "x.db", "ass"), ["assets"])
        self.assertIn("backup", complete(""))

    def test_subcommands_and_values(self):
        self.assertEqual(complete("assets", "h"), ["hardware"])
        self.assertEqual(complete("key", ""), ["rotate"])
        self.assertEqual(complete("clients", "--format", "j"), ["json", "jsonl"])
        self.assertEqual(complete("--log-level", "w"), ["warn"])
        self.assertIn("--incremental", complete("sync", "--"))

    def test_every_command_is_completed(self):
        usage = subprocess.run([BIN], capture_output=True, text=True).stderr
        listed = [line.split()[0] for line in usage.split("commands:")[1].split("\n\n")[0]
                  .strip().splitlines()]
        self.assertEqual(sorted(complete("")), sorted(listed))


if __name__ == "__main__":
    BIN = os.path.abspath(sys.argv.pop(1))
    unittest.main()
