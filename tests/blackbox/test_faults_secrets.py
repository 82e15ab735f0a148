"""Secrets and configuration text (FAULTS.md F13, F14, F15, F18 parser part):
what other users of the machine can see of the HEC token and a URL password
(argv, logs, -n output, core dumps), secrets with control characters, file
modes, text that must be UTF-8, and the parser's odd bytes."""
import os
import signal
import subprocess
import tempfile
import unittest

from harness import (BIN, SLOW, bin_for_others, Daemon, am_root, free_port,
                     privileged, run, wait_for)
from test_relay import RelayTest

TOKEN = "ARGVTOKEN-5f2b1e8c"
URLPW = "URLPW-SECRET-77"
NOBODY = 65534


class SecretsTest(RelayTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="deye-secrets-")
        self.addCleanup(self.tmp.cleanup)

    def file(self, name, text, mode):
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
        os.chmod(path, mode)
        return path

    def check(self, *args, env=None):
        """deye-mitm -n ARGS: (exit status, stdout, stderr) as text."""
        r = run(["-n"] + list(args), env=env)
        return (r.returncode, r.stdout.decode("utf-8", "replace"),
                r.stderr.decode("utf-8", "replace"))


class TestArgvAndLog(SecretsTest):
    def test_token_and_url_password_wiped_from_argv_and_never_logged(self):
        port = free_port()
        url = "http://user:%s@127.0.0.1:%d" % (URLPW, port)
        d = self.daemon("events=none", "deye.upstream=none", "hec.url=" + url,
                        "hec.token=" + TOKEN, "hec.flush_interval=10ms",
                        "hec.timeout=200ms")
        # ps and every user read /proc/PID/cmdline (mode 0444).
        with open("/proc/%d/cmdline" % d.proc.pid, "rb") as f:
            cmdline = f.read()
        self.assertNotIn(TOKEN.encode(), cmdline)
        self.assertNotIn(URLPW.encode(), cmdline)
        self.assertIn(b"hec.token=" + b"*" * len(TOKEN) + b"\0", cmdline)
        self.assertIn(("hec.url=http://user:%s@127.0.0.1:%d\0" % (
            "*" * len(URLPW), port)).encode(), cmdline)
        # An event to deliver to the closed port, so that a warning with the
        # URL is logged.
        s = d.connect()
        s.close()
        d.wait_log(r"(warn|error): hec: .*127\.0\.0\.1:%d" % port)
        log = d.log()
        self.assertIn("hec: delivering to http://user:***@127.0.0.1:%d/" % port,
                      log)
        self.assertNotIn(URLPW, log)
        self.assertNotIn(TOKEN, log)

    def test_n_masks_the_url_password_however_it_is_given(self):
        url = "https://user:%s@splunk.example:8088" % URLPW
        conf = self.file("hec.conf", "[hec]\nurl = %s\n" % url, 0o600)
        for args, env in ((["-o", "hec.url=" + url], None),
                          (["-f", conf], None),
                          ([], {"DEYE_SPLUNK_HEC_URL": url})):
            rc, out, err = self.check(*args, env=env)
            self.assertEqual(rc, 0, err)
            self.assertIn("\nurl = https://user:***@splunk.example:8088\n", out)
            self.assertNotIn(URLPW, out + err)
        # Nor in an error about the URL.
        rc, out, err = self.check("-o", "hec.url=ftp://user:%s@h" % URLPW)
        self.assertEqual(rc, 78)
        self.assertEqual(err, "-o hec.url: 'ftp://user:***@h': the scheme "
                              "must be https or http\n")


class TestControlCharacters(SecretsTest):
    def test_token_with_crlf_refused_wherever_it_comes_from(self):
        bad = "abc\r\nX-Injected: yes"
        tf = self.file("token", bad + "\n", 0o600)
        conf = self.file("c.conf", "[hec]\ntoken = abc\rX-Injected: yes\n", 0o600)
        cases = [
            (["-o", "hec.token=" + bad], None,
             "-o hec.token: the token contains a control character\n"),
            ([], {"DEYE_SPLUNK_HEC_TOKEN": bad},
             "environment (DEYE_SPLUNK_HEC_TOKEN): the token contains a "
             "control character\n"),
            (["-f", conf], None,
             conf + ":2: the token contains a control character\n"),
            (["-o", "hec.url=http://u:a\r\nb@h"], None,
             "-o hec.url: the URL contains a control character\n"),
        ]
        for args, env, msg in cases:
            rc, out, err = self.check(*args, env=env)
            self.assertEqual((rc, err), (78, msg))
            self.assertNotIn("Injected", out + err)
        # A token file's first line ends at the LF; a CR inside it is refused.
        rc, out, err = self.check("-o", "hec.token_file=" + tf)
        self.assertEqual(rc, 0, err)
        tf2 = self.file("token2", "abc\rX-Injected: yes\n", 0o600)
        rc, out, err = self.check("-o", "hec.token_file=" + tf2)
        self.assertEqual((rc, err), (78, "-o hec.token_file: '%s': the token "
                                         "contains a control character\n" % tf2))


class TestFileModes(SecretsTest):
    def test_token_file_others_can_write_refused(self):
        for mode in (0o666, 0o622, 0o602):
            tf = self.file("token", TOKEN + "\n", mode)
            rc, out, err = self.check("-o", "hec.token_file=" + tf)
            self.assertEqual((rc, err), (78, (
                "-o hec.token_file: '%s': other users can change it (mode %04o): "
                "chmod go-w %s\n") % (tf, mode, tf)))
            self.assertNotIn(TOKEN, out + err)

    def test_token_file_others_can_read_warned(self):
        tf = self.file("token", TOKEN + "\n", 0o644)
        rc, out, err = self.check("-o", "hec.token_file=" + tf)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"warn: %s: every user can read this token file "
                              r"\(mode 0644\): chmod 600 %s" % (tf, tf))
        self.assertTrue(err.endswith("configuration OK\n"), err)
        self.assertNotIn(TOKEN, out + err)
        # Readable by its group only (root:deye-mitm 0640) or by root only:
        # nothing to say.
        for mode in (0o640, 0o600, 0o400):
            os.chmod(tf, mode)
            self.assertEqual(self.check("-o", "hec.token_file=" + tf)[0::2],
                             (0, "configuration OK\n"))

    def test_config_file_modes(self):
        secret = "[hec]\nurl = http://127.0.0.1:8088\ntoken = %s\n" % TOKEN
        plain = "[hec]\nindex = solar\n"
        conf = self.file("c.conf", secret, 0o666)
        self.assertEqual(self.check("-f", conf)[0::2], (78, (
            "%s: other users can change it (mode 0666): chmod go-w %s\n")
            % (conf, conf)))
        # Group-writable: refused for a shared group (users), not for the
        # owner's own group (umask 002 on Debian and Ubuntu).
        # The owner is root when the tests run as root, else the user
        # running them (the other owner the rule accepts): root's 0620
        # file is not for another user to read.
        os.chmod(conf, 0o620)
        privileged(["chown", "%d:100" % os.geteuid(), conf])
        self.assertEqual(self.check("-f", conf)[0::2], (78, (
            "%s: other users can change it (mode 0620): chmod go-w %s\n")
            % (conf, conf)))
        privileged(["chown", "%d:%d" % (os.geteuid(), os.getegid()), conf])
        os.chmod(conf, 0o664)
        self.assertEqual(self.check("-f", conf)[0], 0)
        # Readable by all: a warning, only when it holds a secret (a token
        # or a URL password), as most configuration files are 0644.
        for text, warned in ((secret, True), (plain, False),
                             ("[hec]\nurl = http://u:pw@h\n", True)):
            conf = self.file("c.conf", text, 0o644)
            rc, out, err = self.check("-f", conf)
            self.assertEqual(rc, 0, err)
            if warned:
                self.assertRegex(err, r"warn: %s: every user can read this file "
                                      r"with a secret \(mode 0644\): chmod 600"
                                 % conf)
            else:
                self.assertEqual(err, "configuration OK\n")
            self.assertNotIn(TOKEN, out + err)

    def test_file_of_another_user_refused(self):
        conf = self.file("c.conf", "log_level = info\n", 0o644)
        other = 1001 if os.geteuid() == 1000 else 1000
        privileged(["chown", "%d:%d" % (other, other), conf])
        self.assertEqual(self.check("-f", conf)[0::2], (78, (
            "%s: belongs to uid %d, who can change it: it must belong to "
            "root or to the user running deye-mitm\n") % (conf, other)))
        # Root's file (the other owner the rule accepts), readable by all.
        privileged(["chown", "0:0", conf])
        self.assertEqual(self.check("-f", conf)[0::2], (0, "configuration OK\n"))


class TestNotDumpable(SecretsTest):
    """While it holds a secret, the process is not dumpable (no core file,
    no ptrace by its own user).  Seen from outside: /proc/PID/ of a
    non-dumpable process belongs to root.  So the daemon runs as another
    user than root (nobody when the tests are root, else the user running
    them), and the owner of its /proc/PID/status is that user, or root."""

    # Whom the daemon runs as.
    USER = NOBODY if am_root() else os.geteuid()

    def start_as_user(self, *opts):
        self.runs = getattr(self, "runs", 0) + 1
        state = os.path.join(self.tmp.name, "state-%d" % self.runs)
        os.makedirs(state)
        os.chmod(self.tmp.name, 0o755)
        errpath = os.path.join(self.tmp.name, "stderr-%d.log" % self.runs)
        err = open(errpath, "wb")
        self.addCleanup(err.close)
        args = [bin_for_others(), "-o", "state_dir=" + state, "-o", "events=none",
                "-o", "deye.listen=127.0.0.1:0", "-o", "deye.upstream=none"]
        for o in opts:
            args += ["-o", o]

        def drop():
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        if am_root():
            os.chown(state, NOBODY, NOBODY)
        else:
            drop = None
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DEYE_SPLUNK_") and k != "JOURNAL_STREAM"}
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err,
                             env=env, cwd=state, preexec_fn=drop)

        def log():
            with open(errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(5 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.addCleanup(stop)
        self.assertTrue(wait_for(lambda: "listening on" in log(), 5), log())
        return p, log, stop

    def status_owner(self, p):
        return os.stat("/proc/%d/status" % p.pid).st_uid

    def test_not_dumpable_with_a_token(self):
        url = "hec.url=http://127.0.0.1:%d" % free_port()
        # Without a secret it stays dumpable: the check can tell them apart.
        p, log, stop = self.start_as_user(url)
        self.assertEqual(self.status_owner(p), self.USER)
        stop()
        self.assertEqual(p.returncode, 0, log())
        for secret in ("hec.token=" + TOKEN,
                       "hec.url=http://u:%s@127.0.0.1:%d" % (URLPW, free_port())):
            p, log, stop = self.start_as_user(url, secret)
            self.assertEqual(self.status_owner(p), 0, log())
            stop()
            self.assertEqual(p.returncode, 0, log())


class TestParser(SecretsTest):
    def test_second_f_is_a_usage_error(self):
        good = self.file("good.conf", "log_level = info\n", 0o600)
        bad = self.file("bad.conf", "no_such_key = 1\n", 0o600)
        for args in (["-f", bad, "-f", good], ["-f", good, "--config", good]):
            r = run(["-n"] + args)
            self.assertEqual(r.returncode, 2)
            self.assertTrue(r.stderr.startswith(b"deye-mitm: -f given twice\n"),
                            r.stderr)

    def test_nul_byte_bom_and_longest_line(self):
        nul = self.file("nul.conf", b"log_level = info\n[hec]\nindex = a\0b\n",
                        0o600)
        self.assertEqual(self.check("-f", nul)[0::2], (78, (
            "%s:3: NUL byte (not a text file?)\n" % nul)))
        bom = self.file("bom.conf", b"\xef\xbb\xbflog_level = debug\n", 0o600)
        rc, out, err = self.check("-f", bom)
        self.assertEqual((rc, err), (0, "configuration OK\n"))
        self.assertIn("log_level = debug\n", out)
        # deye-mitm.conf(5): at most 4095 bytes before the line end.
        for n, rc in ((4095, 0), (4096, 78)):
            f = self.file("long.conf", "#" * n + "\n", 0o600)
            self.assertEqual(self.check("-f", f)[0], rc, n)

    def test_envelope_text_must_be_utf8(self):
        # jansson leaves a string that is not UTF-8 out of the envelope:
        # the events would go to the token's default index without a word.
        for key, env in (("index", "DEYE_SPLUNK_HEC_INDEX"), ("source", None),
                         ("host", None), ("sourcetype", "DEYE_SPLUNK_HEC_SOURCETYPE")):
            r = run(["-n", "-o", b"hec.%s=sol\xe9ar" % key.encode()])
            self.assertEqual((r.returncode, r.stderr), (78, (
                "-o hec.%s: '%s' is not valid UTF-8\n" % (key, key)).encode()))
            conf = self.file("u.conf", b"[hec]\n%s = sol\xe9ar\n" % key.encode(),
                             0o600)
            self.assertEqual(self.check("-f", conf)[0::2], (78, (
                "%s:2: '%s' is not valid UTF-8\n" % (conf, key))))
            if env:
                r = run(["-n"], env={env: os.fsdecode(b"sol\xe9ar")})
                self.assertEqual(r.returncode, 78)
                self.assertEqual(r.stderr, ("environment (%s): '%s' is not "
                                            "valid UTF-8\n" % (env, key)).encode())
        rc, out, err = self.check("-o", "hec.index=s\u00f6lar")
        self.assertEqual(rc, 0, err)
        self.assertIn("index = s\u00f6lar\n", out)


if __name__ == "__main__":
    unittest.main()
