"""The command line and the configuration as a user meets them: exit codes,
file:line errors, -n output, secrets, the example config (the README's
first commands: test_first.py)."""
import os
import re
import tempfile
import unittest

from harness import ROOT, Daemon, am_root, privileged, run, wait_for


class TestCommandLine(unittest.TestCase):
    def conf(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_help_version_usage(self):
        r = run(["-h"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage: deye-mitm", r.stdout)
        r = run(["-V"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, rb"^deye-mitm \d+\.\d+\.\d+\n$")
        self.assertEqual(run(["--no-such-option"]).returncode, 2)
        self.assertEqual(run(["stray-argument"]).returncode, 2)

    def test_config_errors_name_file_and_line(self):
        cases = [
            ("log_level = info\nlisen = 0.0.0.0:1\n", r":2: unknown key 'lisen'"),
            ("[deye]\nidle_timeout = 10\n", r":2: '10': a duration needs a unit"),
            ("[deye]\nlisten = 0.0.0.0:10000\n\n[envoy]\nlisten = 0.0.0.0:10000\n",
             r":4: \[envoy\] listens on the same port as \[deye\]"),
            ("[hec]\nurl = ftp://splunk:8088\n", r":2: 'ftp://splunk:8088': the scheme"),
            ("[deye]\nstate_dir = /tmp/x\n", r":2: 'state_dir' is a global key"),
        ]
        for text, msg in cases:
            path = self.conf(text)
            r = run(["-f", path, "-n"])
            self.assertEqual(r.returncode, 78, text)
            self.assertRegex(r.stderr.decode(), "^" + re.escape(path) + msg)
            self.assertEqual(r.stdout, b"")

    def test_option_and_environment_errors(self):
        r = run(["-n", "-o", "deye.connect_timeout=1y"])
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr.decode(), r"^-o deye\.connect_timeout: '1y': unknown unit")
        r = run(["-n"], env={"DEYE_SPLUNK_HEC_URL": "not a url"})
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr.decode(), r"^environment \(DEYE_SPLUNK_HEC_URL\): ")
        self.assertEqual(run(["-f", "/nonexistent/deye.conf"]).returncode, 78)

    def test_precedence_option_over_environment_over_file(self):
        path = self.conf("[hec]\nindex = from_file\nsourcetype = st_file\n"
                         "source = src_file\n")
        env = {"DEYE_SPLUNK_HEC_INDEX": "from_env",
               "DEYE_SPLUNK_HEC_SOURCETYPE": "st_env"}
        out = run(["-n", "-f", path, "-o", "hec.index=from_opt"], env=env).stdout.decode()
        self.assertIn("index = from_opt\n", out)
        self.assertIn("sourcetype = st_env\n", out)
        self.assertIn("source = src_file\n", out)

    def test_secrets_never_printed(self):
        secret = "5f2b1e8c-token-never-shown"
        tf = self.conf(secret + "\n")
        for args, env in ((["-n"], {"DEYE_SPLUNK_HEC_TOKEN": secret,
                                    "DEYE_SPLUNK_HEC_URL": "https://127.0.0.1:8088"}),
                          (["-n", "-o", "hec.token_file=" + tf], {}),
                          (["-n", "-o", "hec.token=" + secret], {})):
            r = run(args, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn(secret.encode(), r.stdout + r.stderr)
            self.assertIn(b"token = ***\n", r.stdout)

    def test_example_config_is_valid_and_complete(self):
        example = os.path.join(ROOT, "deye-mitm.conf.example")
        r = run(["-n", "-f", example])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"configuration OK\n")
        # Its effective configuration is the built-in defaults: every key in
        # it is shown with its default value.
        self.assertEqual(r.stdout, run(["-n"]).stdout)
        with open(example) as f:
            text = f.read()
        for line in run(["-n"]).stdout.decode().splitlines():
            m = re.match(r"^(\w+) = ", line)
            if m:
                self.assertRegex(text, r"(?m)^#? ?%s = " % m.group(1))

    def test_user_drops_privileges(self):
        # Started as root (through sudo -n when the tests are not root),
        # it runs as the user.  The state directory must belong to them.
        state = tempfile.mkdtemp(prefix="deye-user-")
        self.addCleanup(privileged, ["rm", "-rf", state])
        os.chmod(state, 0o755)
        os.mkdir(os.path.join(state, "s"))
        privileged(["chown", "65534:65534", os.path.join(state, "s")])
        d = Daemon("user=nobody", "state_dir=" + os.path.join(state, "s"),
                   upstream="127.0.0.1:9", as_root=True)
        try:
            d.port()
            pid = d.pid()
            uid = wait_for(lambda: self._uid(pid) != 0, 2)
            self.assertTrue(uid)
            self.assertEqual(self._uid(pid), 65534)
            self.assertIn("running as nobody", d.log())
        finally:
            rc, _ = d.stop()
            d.dir.cleanup()
        self.assertEqual(rc, 0)

    def test_user_not_needed_when_not_root(self):
        # Started as another user than root, it stays who it is.
        state = tempfile.mkdtemp(prefix="deye-user-")
        self.addCleanup(privileged, ["rm", "-rf", state])
        os.chmod(state, 0o777)
        argv = ["setpriv", "--reuid=65534", "--regid=65534",
                "--clear-groups"] if am_root() else []
        d = Daemon("user=nobody", "state_dir=" + os.path.join(state, "s"),
                   upstream="127.0.0.1:9", wrap=argv)
        try:
            d.port()
            self.assertIn("not started as root: user = nobody not needed",
                          d.log())
            self.assertEqual(self._uid(d.proc.pid),
                             65534 if am_root() else os.geteuid())
        finally:
            rc, _ = d.stop()
            d.dir.cleanup()
        self.assertEqual(rc, 0)

    @staticmethod
    def _uid(pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[2])
        return None


if __name__ == "__main__":
    unittest.main()
