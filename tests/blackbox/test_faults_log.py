"""Faults around the daemon's own output: a stderr nobody reads (F6), torn
lines in the events file after SIGKILL or a full disk (F4), and the HEC
failure warnings under a flapping receiver (F12)."""
import fcntl
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BIN, SLOW, Server, echo_handler, wait_for

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
LISTENING = re.compile(rb"\[deye\] listening on [^ ]*:(\d+)")
DROPPED = re.compile(rb"warn: (\d+) log line\(s\) dropped: stderr was not "
                     rb"taking them \((\d+) since start\)\n")


class StalledStderr(unittest.TestCase):
    """deye-mitm -v with its stderr on a FIFO whose reader opened it (non-
    blocking, its buffer cut to one page) and reads only when told to."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="deye-log-")
        self.addCleanup(tmp.cleanup)
        self.up = Server(echo_handler)
        self.addCleanup(self.up.close)
        fifo = os.path.join(tmp.name, "stderr")
        os.mkfifo(fifo)
        self.rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, self.rfd)
        fcntl.fcntl(self.rfd, F_SETPIPE_SZ, 4096)
        with open(fifo, "wb") as w:
            self.proc = subprocess.Popen(
                [BIN, "-v", "-o", "state_dir=" + os.path.join(tmp.name, "st"),
                 "-o", "deye.listen=127.0.0.1:0",
                 "-o", "deye.upstream=" + self.up.addr, "-o", "events=none"],
                stdout=subprocess.DEVNULL, stderr=w, cwd=tmp.name)
        self.addCleanup(self.kill)
        self.log = b""
        m = wait_for(lambda: self.read() or LISTENING.search(self.log), 5)
        self.assertTrue(m, self.log)
        self.port = int(m.group(1))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def read(self):
        """What the FIFO holds now, appended to self.log."""
        try:
            while True:
                b = os.read(self.rfd, 65536)
                if not b:
                    break
                self.log += b
        except BlockingIOError:
            pass
        return False

    def echo(self, n):
        """n connections, each one round trip through the relay, each
        within a few seconds (the old code stopped relaying at ~30)."""
        for i in range(n):
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=3 * SLOW) as s:
                s.sendall(b"ping %d" % i)
                got = b""
                try:
                    while len(got) < len(b"ping %d" % i):
                        b = s.recv(64)
                        self.assertTrue(b, "connection %d closed" % i)
                        got += b
                except socket.timeout:
                    self.fail("the relay stopped after %d connections" % i)
                self.assertEqual(got, b"ping %d" % i)

    def sigterm(self):
        """SIGTERM; the exit status and how long it took."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(5 * SLOW)
        except subprocess.TimeoutExpired:
            rc = "hung"
        return rc, time.monotonic() - t0

    def test_relay_and_sigterm_go_on_while_nobody_reads(self):
        # About 350 bytes of log a connection: 400 are 140 KB, far past
        # the pipe (4 KiB) and the log queue.
        self.echo(400)
        rc, took = self.sigterm()
        self.assertEqual(rc, 0)
        self.assertLess(took, 4 * SLOW)
        self.read()
        # What got through is whole lines.
        self.assertTrue(self.log.endswith(b"\n"), self.log[-200:])
        for line in self.log.split(b"\n")[:-1]:
            self.assertRegex(line, rb"^\d{4}-\d\d-\d\dT[\d:.]+Z \w+: ")

    def test_dropped_lines_are_counted_once_stderr_drains(self):
        self.echo(400)
        self.assertFalse(DROPPED.search(self.log))
        # Drain: the writer gets through and says how many were dropped.
        m = wait_for(lambda: self.read() or DROPPED.search(self.log), 5)
        self.assertTrue(m, self.log[-2000:])
        lost, total = int(m.group(1)), int(m.group(2))
        self.assertGreater(lost, 0)
        self.assertEqual(lost, total)
        # Every line is either written or counted: 3 a connection.
        self.echo(1)  # and the relay logs normally again

        def conn_lines():
            self.read()
            return len(re.findall(rb" conn[= ]\d+ ", self.log))
        wait_for(lambda: conn_lines() + lost >= 3 * 401, 5)
        self.assertEqual(conn_lines() + lost, 3 * 401)
        rc, _ = self.sigterm()
        self.assertEqual(rc, 0)
        self.read()
        self.assertIn(b"info: stopped\n", self.log)


if __name__ == "__main__":
    unittest.main()
