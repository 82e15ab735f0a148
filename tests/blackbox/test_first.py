"""What a new user meets first: the README's two commands, the one script
that installs the dependencies (contrib/install-deps, run here against a
fake apt-get and sudo: nothing is installed), .ci/run reading the README
itself, and the systemd unit that make install writes."""
import os
import re
import stat
import subprocess
import tempfile
import unittest

import harness
from harness import ROOT, privileged

INSTALL_DEPS = os.path.join(ROOT, "contrib", "install-deps")


def readme_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        return [b.strip() for b in re.findall(r"```sh\n(.*?)\n```", f.read(), re.S)]


class TestReadme(unittest.TestCase):
    def test_first_screen_commands(self):
        blocks = readme_commands()
        self.assertEqual(blocks[0], "contrib/install-deps && make && ./deye-mitm")
        self.assertEqual(blocks[1], "make check")

    def test_ci_runs_the_readme_not_a_copy(self):
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            ci = "\n".join(l for l in f.read().splitlines()
                           if not l.lstrip().startswith("#"))
        # .ci/run reads README.md's first two blocks; it names no package,
        # calls no apt-get and has no command of its own to drift.
        self.assertIn("README.md", ci)
        self.assertNotIn("apt-get", ci)
        self.assertNotIn("make check", ci)
        self.assertNotIn("install-deps", ci)
        # Its awk extraction gives what the README shows.
        awk = re.search(r"awk '(.*?)' README.md", ci, re.S).group(1)
        for n, want in ((1, readme_commands()[0]), (2, readme_commands()[1])):
            prog = awk.replace("'\"$1\"'", str(n))
            out = subprocess.run(["awk", prog, "README.md"], cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            self.assertEqual(out.stdout.strip(), want)

    def test_the_packages(self):
        def names(*args):
            r = subprocess.run([INSTALL_DEPS, "--list", *args],
                               capture_output=True, text=True, check=True)
            return r.stdout.split()
        default, build, bench = names(), names("--build"), names("--bench")
        self.assertTrue(set(build) < set(default) < set(bench))
        for p in ("build-essential", "pkg-config", "libcurl4-openssl-dev",
                  "libjansson-dev", "zlib1g-dev", "libexpat1-dev",
                  "libmosquitto-dev"):
            self.assertIn(p, build)
        for p in ("check", "python3", "openssl", "curl", "socat", "stunnel4",
                  "mosquitto", "mosquitto-clients"):
            self.assertIn(p, default)
            self.assertNotIn(p, build)
        # iperf3 asks a question at install time: never in the first command.
        for p in ("iperf3", "haproxy", "valgrind"):
            self.assertNotIn(p, default)
            self.assertIn(p, bench)


class TestTryingItSafely(unittest.TestCase):
    """The README's "Trying it safely" blocks, each pasted whole into bash:
    in a network namespace of its own (its fixed ports 10000 and 19000 are
    then free), in a directory where ./deye-mitm is the binary under test.
    No mount namespace (unshare cannot make one in a chroot): the block's
    /tmp/deye-try is removed after it, unless it was there before."""

    def paste(self, marker):
        block = [b for b in readme_commands() if marker in b]
        self.assertEqual(len(block), 1, marker)
        with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "build")) as d:
            os.symlink(os.environ["DEYE_MITM"], os.path.join(d, "deye-mitm"))
            with open(os.path.join(d, "block.sh"), "w") as f:
                f.write(block[0] + "\nwait\n")
            mine = not os.path.exists("/tmp/deye-try")
            r = privileged(["unshare", "--net", "sh", "-c",
                            "cd '%s' && ip link set lo up && "
                            "timeout 20 bash block.sh" % d], check=False)
            if mine:
                privileged(["rm", "-rf", "/tmp/deye-try"])
            # The block ran through sudo when we are not root: what the
            # relay made in the directory is root's.
            privileged(["rm", "-rf", os.path.join(d, "deye-mitm-state")])
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        return out.splitlines()

    def test_relay_to_a_local_echo_server(self):
        out = self.paste("TCP-LISTEN:19000")
        self.assertIn("hello", out)

    def test_fully_local_heartbeat(self):
        out = self.paste("deye.upstream=none")
        # The relay's events share the terminal with the reply Python
        # prints: a line of one may run into the other's.
        self.assertRegex("\n".join(out),
                         r"(^|[}\n])a50a001017f685579af6a50001[0-9a-f]{18}15")


class TestInstallDeps(unittest.TestCase):
    """install-deps with a PATH of fakes: apt-get records its arguments,
    environment and stdin; id says who we are; sudo may be missing."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="install-deps-")
        self.bin = os.path.join(self.dir, "bin")
        os.mkdir(self.bin)
        self.log = os.path.join(self.dir, "log")
        # Only these real programs: no sudo unless a fake is written.
        for tool in ("env", "cat", "readlink", "sh"):
            for d in ("/usr/bin", "/bin"):
                if os.path.exists(os.path.join(d, tool)):
                    os.symlink(os.path.join(d, tool), os.path.join(self.bin, tool))
                    break

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.dir])

    def fake(self, name, body):
        path = os.path.join(self.bin, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, stat.S_IRWXU)

    def run_it(self, uid, stdin_closed=True):
        self.fake("id", "echo %d\n" % uid)
        self.fake("apt-get",
                  'echo "apt-get $* | DEBIAN_FRONTEND=$DEBIAN_FRONTEND'
                  ' | stdin=$(readlink /proc/self/fd/0)" >>%s\n' % self.log)
        kw = {"stdin": subprocess.DEVNULL}
        if stdin_closed:
            kw = {"pass_fds": (), "preexec_fn": lambda: os.close(0)}
        return subprocess.run(["/bin/sh", INSTALL_DEPS],
                              env={"PATH": self.bin}, capture_output=True,
                              text=True, timeout=30, **kw)

    def calls(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def test_as_root_without_sudo(self):
        r = self.run_it(0)
        self.assertEqual(r.returncode, 0, r.stderr)
        update, install = self.calls()
        self.assertTrue(update.startswith("apt-get update"))
        self.assertRegex(install, r"^apt-get install -y ")
        self.assertIn("--force-confold", install)
        for line in (update, install):
            self.assertIn("DEBIAN_FRONTEND=noninteractive", line)
            self.assertIn("stdin=/dev/null", line)

    def test_as_user_through_sudo(self):
        # sudo drops DEBIAN_FRONTEND (env_reset): the script must carry it.
        self.fake("sudo", 'echo "sudo $1" >>%s\nunset DEBIAN_FRONTEND\n'
                  'exec "$@"\n' % self.log)
        r = self.run_it(1000)
        self.assertEqual(r.returncode, 0, r.stderr)
        calls = self.calls()
        self.assertEqual(calls[0], "sudo env")
        self.assertIn("DEBIAN_FRONTEND=noninteractive", calls[1])
        self.assertEqual(calls[2], "sudo env")
        self.assertIn("DEBIAN_FRONTEND=noninteractive", calls[3])

    def test_not_root_no_sudo(self):
        r = self.run_it(1000)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not root and no sudo: run it as root", r.stderr)
        self.assertFalse(os.path.exists(self.log))


class TestInstall(unittest.TestCase):
    def test_unit_names_the_installed_binary(self):
        with tempfile.TemporaryDirectory() as d:
            for prefix in ("/usr", "/opt/deye"):
                dest = os.path.join(d, prefix.strip("/"))
                # The binary under test as it is (-o: never remade here),
                # whatever make check's own variables are.
                env = {k: v for k, v in os.environ.items()
                       if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
                binary = os.environ["DEYE_MITM"]
                subprocess.run(["make", "-s", "-o", binary, "install",
                                "PREFIX=" + prefix, "DESTDIR=" + dest,
                                "BIN=" + binary],
                               cwd=ROOT, env=env, check=True, capture_output=True)
                unit = os.path.join(dest + prefix, "share/doc/deye-mitm/deye-mitm.service")
                with open(unit) as f:
                    text = f.read()
                self.assertIn("\nExecStart=%s/bin/deye-mitm -f " % prefix, text)
                self.assertTrue(os.access(os.path.join(dest + prefix, "bin/deye-mitm"),
                                          os.X_OK))
        with open(os.path.join(ROOT, "contrib", "deye-mitm.service")) as f:
            text = f.read()
        # The unit does not say there is no ExecReload= above one.
        self.assertNotIn("No ExecReload", text)
        self.assertIn("\nExecReload=kill -HUP $MAINPID\n", text)


class TestConfigTraps(unittest.TestCase):
    def test_hec_token_without_url_is_warned(self):
        d = harness.Daemon("events=none", upstream="none",
                           env={"DEYE_SPLUNK_HEC_TOKEN": "t0ken"})
        try:
            d.wait_log(r"warn: hec: a token is set but no url: "
                       r"not delivering to HEC")
        finally:
            rc, _ = d.stop()
            d.dir.cleanup()
        self.assertEqual(rc, 0)

    def test_check_config_checks_user(self):
        # As the man page says (it used to say the opposite).
        r = harness.run(["-n", "-o", "user=no-such-user-17"])
        self.assertEqual(r.returncode, 78)
        self.assertIn(b"user 'no-such-user-17' does not exist", r.stderr)
        with open(os.path.join(ROOT, "contrib", "deye-mitm.8")) as f:
            self.assertNotIn("checked only when the daemon starts", f.read())


class TestNoDaemonLeftBehind(unittest.TestCase):
    def test_setup_that_fails_after_starting_a_daemon(self):
        # As when stunnel does not start in test_envoy_tls's setUp: the
        # daemon started before it must be stopped all the same.
        from test_relay import RelayTest
        started = []

        class Failing(RelayTest):
            def setUp(self):
                super().setUp()
                started.append(self.daemon(upstream="127.0.0.1:9"))
                self.fail("a server did not start")

            def test_nothing(self):
                pass

        result = unittest.TestResult()
        unittest.defaultTestLoader.loadTestsFromTestCase(Failing).run(result)
        self.assertEqual(len(result.failures), 1)
        d = started[0]
        self.assertIsNotNone(d.proc.poll(), "deye-mitm left running")
        self.assertNotIn(d, harness.LIVE)

    def test_leftovers_are_stopped_and_counted(self):
        d = harness.Daemon(upstream="127.0.0.1:9")
        d.port()
        self.assertGreaterEqual(harness.stop_leftovers(), 1)
        self.assertIsNotNone(d.proc.poll())
        d.dir.cleanup()


if __name__ == "__main__":
    unittest.main()
