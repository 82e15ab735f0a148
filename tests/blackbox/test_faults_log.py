"""Faults around the daemon's own output: a stderr nobody reads (F6), torn
lines in the events file after SIGKILL or a full disk (F4), and the HEC
failure warnings under a flapping receiver (F12)."""
import fcntl
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (BIN, SANITIZER_MARKS, SLOW, Server, echo_handler,
                     mount_tmpfs, read_events, recv_all, wait_for)
from hec_receiver import HecReceiver
from test_hec import HecTest
from test_journal import JournalTest, heartbeat
from test_solarman import FRAMES

DATA = FRAMES["deye-m80g3-data-0x42"]

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
        # Every line is either written or counted: 4 a connection (open,
        # closed, and each direction's decoder summary: "ping" is skipped).
        self.echo(1)  # and the relay logs normally again

        def conn_lines():
            self.read()
            return len(re.findall(rb" conn[= ]\d+ ", self.log))
        wait_for(lambda: conn_lines() + lost >= 4 * 401, 5)
        self.assertEqual(conn_lines() + lost, 4 * 401)
        rc, _ = self.sigterm()
        self.assertEqual(rc, 0)
        self.read()
        self.assertIn(b"info: stopped\n", self.log)
        for m in SANITIZER_MARKS:
            self.assertNotIn(m.encode(), self.log)


class EventsFile(JournalTest):
    """The events file holds whole lines only, whatever happened while it
    was being written."""

    def whole_lines(self):
        """The events, every line parsed; fails on a line that is not."""
        with open(self.events, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"), data[-300:])
        evs = []
        for i, line in enumerate(data.split(b"\n")[:-1]):
            try:
                evs.append(json.loads(line))
            except ValueError:
                self.fail("line %d is not JSON: %r" % (i + 1, line[:300]))
        return evs

    def kill(self, d):
        d.proc.kill()
        d.proc.wait()
        self.daemons.remove(d)
        d.err.close()
        d.dir.cleanup()

    def test_partial_last_line_is_cut_off_at_start(self):
        d = self.run_daemon()
        self.send(d, [heartbeat(1)])
        wait_for(lambda: len(read_events(self.events)) >= 3, 5)
        self.stop_clean(d)
        with open(self.events, "ab") as f:  # what a SIGKILL mid-write leaves
            f.write(b'{"id":"0123456789abcdef-9","type":"heartb')
        d = self.run_daemon()
        d.wait_log(r"events .*: partial last line cut off")
        self.send(d, [heartbeat(2)])
        wait_for(lambda: len(read_events(self.events)) >= 6, 5)
        self.stop_clean(d)
        seqs = [e["frame.seq"] for e in self.whole_lines()
                if e["type"] == "heartbeat"]
        self.assertEqual(seqs, ["f5 01", "f5 02"])

    def test_sigkill_while_writing_leaves_whole_lines_and_loses_nothing(self):
        rnd = random.Random(4)
        for _ in range(8):
            d = self.run_daemon()
            s = d.connect()
            drain = threading.Thread(target=recv_all, args=(s,))
            drain.start()
            try:
                self.assertTrue(wait_for(lambda: os.path.exists(self.events),
                                         5))
                size = os.path.getsize(self.events)
                grown = size + rnd.randint(20, 200) * 1000
                # About 1,000 frames a second until the file has grown.
                for _ in range(int(500 * SLOW)):
                    s.sendall(DATA * 10)
                    if os.path.getsize(self.events) >= grown:
                        break
                    time.sleep(0.01)
                self.kill(d)
            finally:
                try:  # the kill may have reset it already
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                drain.join()
                s.close()
        d = self.run_daemon()
        self.send(d, [heartbeat(7)])  # journalled after all the rest

        def done():
            return any(e["type"] == "heartbeat"
                       for e in read_events(self.events))
        self.assertTrue(wait_for(done, 10), d.log())
        self.stop_clean(d)
        runs = {}
        for e in self.whole_lines():
            prefix, n = e["id"].rsplit("-", 1)
            runs.setdefault(prefix, set()).add(int(n))
        self.assertEqual(len(runs), 9)
        for prefix, ns in runs.items():
            # Events still in memory at the kill may be lost (never in
            # the journal); none that the events sink had read.
            missing = set(range(1, max(ns) + 1)) - ns
            self.assertFalse([n for n in missing if n < max(ns) - 200],
                             "run %s lost events" % prefix)

    def test_full_disk_under_the_events_file_then_space(self):
        mnt = tempfile.mkdtemp(prefix="deye-full-")
        self.addCleanup(os.rmdir, mnt)
        self.addCleanup(mount_tmpfs(mnt, "64k"))
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"x" * (56 * 1024))  # 8 KiB left
        self.events = os.path.join(mnt, "events.jsonl")
        d = self.run_daemon()
        self.send(d, [heartbeat(i) for i in range(40)])  # ~25 KB of events
        d.wait_log(r"events: write failed, will retry: No space left on device")
        with open(self.events, "rb") as f:
            data = f.read()
        self.assertTrue(data == b"" or data.endswith(b"\n"), data[-300:])
        os.remove(filler)
        wait_for(lambda: len(read_events(self.events)) >= 81, 5)
        self.assertEqual(d.log().count("write failed"), 1)
        self.stop_clean(d)
        evs = self.whole_lines()
        seqs = [e["frame.seq"] for e in evs if e["type"] == "heartbeat"]
        self.assertEqual(seqs, ["f5 %02x" % i for i in range(40)])
        self.assertEqual(len({e["id"] for e in evs}), 81)


class QueueFull(JournalTest):
    def test_a_flood_is_logged_once_a_second_with_counts(self):
        # More frames at once than the outbox holds (4 MiB, about 9,000
        # data frames): the drops are counted, and logged at most once a
        # second however often the writer comes round.
        d = self.run_daemon()
        t0 = time.monotonic()
        self.send(d, [DATA] * 30000)
        m = d.wait_log(r"events: queue full, \d+ event\(s\) dropped", 10)
        self.assertTrue(m)
        rc, _ = d.stop()
        self.daemons.remove(d)
        secs = time.monotonic() - t0
        log = d.log()
        d.dir.cleanup()
        self.assertEqual(rc, 0, log)
        lines = re.findall(r"events: queue full, (\d+) event\(s\) dropped "
                           r"\((\d+) since start\)", log)
        self.assertGreater(len(lines), 0, log)
        self.assertLessEqual(len(lines), secs + 2, log)
        # The counts add up to the total, the last line included.
        self.assertEqual(sum(int(a) for a, _ in lines), int(lines[-1][1]))


class FlappingReceiver(HecReceiver):
    """Every other request to the collector gets 503 Server is busy."""
    flap = False

    def _next_action(self):
        with self.lock:
            self.flap = not self.flap
            return ("status", 503) if self.flap else None


class FlappingHec(HecTest):
    def test_flapping_receiver_gets_a_line_a_minute_and_every_event(self):
        rx = FlappingReceiver()
        self.addCleanup(rx.close)
        d = self.hec_daemon(rx)
        s = d.connect()
        drain = threading.Thread(target=recv_all, args=(s,))
        drain.start()
        n = 0
        end = time.monotonic() + 8
        while time.monotonic() < end:  # a heartbeat every 100 ms for 8 s
            s.sendall(heartbeat(n))
            n += 1
            time.sleep(0.1)
        s.shutdown(socket.SHUT_WR)
        drain.join()
        s.close()
        evs = rx.wait_events(2 * n + 1, 15)
        self.assertEqual(len({e["event"]["id"] for e in evs}), 2 * n + 1)
        busy = sum(1 for r in rx.requests if r["status"] == 503)
        self.assertGreaterEqual(busy, 5)  # it did flap
        log = d.log()
        self.assertEqual(log.count("answered 503"), 1, log)
        self.assertLessEqual(log.count("delivering again"), 1, log)


if __name__ == "__main__":
    unittest.main()
