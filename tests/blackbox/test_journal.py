"""The journal in state_dir: events survive restarts and crashes, a torn
last record is cut off, spool_max bounds it."""
import glob
import os
import signal
import socket
import tempfile
import unittest

from harness import echo_handler, read_events, recv_all, wait_for
from test_relay import RelayTest
from test_solarman import FRAMES

HEARTBEAT = FRAMES["dongle-heartbeat-0x47"]
DATA = FRAMES["deye-m80g3-data-0x42"]


def heartbeat(seq):
    """The fixture heartbeat with logger sequence byte seq, checksum fixed."""
    b = bytearray(HEARTBEAT)
    b[6] = seq & 0xff
    b[-2] = sum(b[1:-2]) & 0xff
    return bytes(b)


class JournalTest(RelayTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="deye-journal-")
        self.addCleanup(self.tmp.cleanup)
        self.state = os.path.join(self.tmp.name, "state")
        self.events = os.path.join(self.tmp.name, "events.jsonl")

    def run_daemon(self, *opts, **kw):
        # upstream = none: the logger's frames are decoded and answered here.
        return self.daemon("state_dir=" + self.state, "events=" + self.events,
                           "deye.upstream=none", *opts, **kw)

    def send(self, d, frames):
        s = d.connect()
        s.sendall(b"".join(frames))
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()

    def stop_clean(self, d):
        rc, _ = d.stop()
        self.daemons.remove(d)
        log = d.log()
        d.dir.cleanup()
        self.assertEqual(rc, 0, log)

    def journal_bytes(self):
        """Bytes in the segments; the daemon may delete one meanwhile."""
        total = 0
        for p in self.segments():
            try:
                total += os.path.getsize(p)
            except FileNotFoundError:
                pass
        return total

    def journal_text(self):
        """The segments' bytes, each as far as it could be read."""
        out = b""
        for p in self.segments():
            try:
                with open(p, "rb") as f:
                    out += f.read()
            except FileNotFoundError:
                pass
        return out

    def segments(self):
        return sorted(glob.glob(os.path.join(self.state, "journal", "*.seg")))


class TestJournal(JournalTest):
    def test_events_sink_resumes_after_restart_without_repeats(self):
        d = self.run_daemon()
        self.send(d, [heartbeat(i) for i in range(5)])
        wait_for(lambda: len(read_events(self.events)) >= 11, 5)
        self.stop_clean(d)
        d = self.run_daemon()
        self.send(d, [heartbeat(i) for i in range(5, 8)])
        evs = wait_for(lambda: len(read_events(self.events)) >= 18
                       and read_events(self.events), 5)
        self.stop_clean(d)
        evs = read_events(self.events)
        seqs = [e["frame.seq"] for e in evs if e["type"] == "heartbeat"]
        self.assertEqual(seqs, ["f5 %02x" % i for i in range(8)])
        self.assertEqual(len({e["id"] for e in evs}), len(evs))
        # Two runs, two id prefixes: ids stay unique across restarts.
        self.assertEqual(len({e["id"].split("-")[0] for e in evs}), 2)

    def test_sighup_after_rotation_writes_a_new_events_file(self):
        d = self.run_daemon()
        self.send(d, [heartbeat(i) for i in range(3)])
        wait_for(lambda: len(read_events(self.events)) >= 7, 5)
        rotated = self.events + ".1"
        os.rename(self.events, rotated)          # what logrotate does
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: os.path.exists(self.events), 5),
                        d.log())
        d.wait_log(r"events: .* opened again")
        self.send(d, [heartbeat(i) for i in range(3, 5)])
        wait_for(lambda: len(read_events(self.events)) >= 5, 5)
        self.stop_clean(d)
        self.assertEqual(os.stat(self.events).st_mode & 0o777, 0o640)
        old, new = read_events(rotated), read_events(self.events)
        seqs = [e["frame.seq"] for e in old + new if e["type"] == "heartbeat"]
        self.assertEqual(seqs, ["f5 %02x" % i for i in range(5)])
        self.assertEqual(len({e["id"] for e in old + new}), len(old + new))

    def test_torn_last_record_is_cut_off(self):
        d = self.run_daemon()
        self.send(d, [heartbeat(1)])
        wait_for(lambda: len(read_events(self.events)) >= 3, 5)
        self.stop_clean(d)
        last = self.segments()[-1]
        good = os.path.getsize(last)
        with open(last, "ab") as f:       # a record torn by a crash
            f.write(b"\x40\x00\x00\x00\x12\x34\x56\x78" + b"{\"id\":\"x")
        d = self.run_daemon()
        d.wait_log(r"torn last record at offset %d .*: cut off" % good)
        self.send(d, [heartbeat(2)])
        wait_for(lambda: len(read_events(self.events)) >= 6, 5)
        self.stop_clean(d)
        seqs = [e["frame.seq"] for e in read_events(self.events)
                if e["type"] == "heartbeat"]
        self.assertEqual(seqs, ["f5 01", "f5 02"])

    def test_sigkill_keeps_journalled_events(self):
        d = self.run_daemon("events=none")
        self.send(d, [heartbeat(i) for i in range(20)])
        d.wait_log(r"closed conn=1 ")
        # Every heartbeat's record in a segment (the page cache outlives
        # SIGKILL), not a fixed sleep that a busy CPU outlasts; then kill
        # without warning.
        self.assertTrue(wait_for(
            lambda: self.journal_text().count(b'"type":"heartbeat"') >= 20, 5))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        self.daemons.remove(d)
        d.err.close()
        d.dir.cleanup()
        # Events were not delivered to any sink: a new events sink gets all.
        d = self.run_daemon()
        def heartbeats():
            return [e["frame.seq"] for e in read_events(self.events)
                    if e["type"] == "heartbeat"]
        seqs = wait_for(lambda: len(heartbeats()) >= 20 and heartbeats(), 5)
        self.assertEqual(seqs, ["f5 %02x" % i for i in range(20)])

    def test_full_disk_is_logged_and_the_relay_goes_on(self):
        # The active segment is /dev/full: every append fails with ENOSPC.
        os.makedirs(os.path.join(self.state, "journal"))
        os.symlink("/dev/full", os.path.join(self.state, "journal",
                                             "%020d.seg" % 1))

        up = self.server(echo_handler)
        d = self.daemon("state_dir=" + self.state, "events=" + self.events,
                        upstream=up.addr)
        s = d.connect()
        for i in range(20):
            s.sendall(heartbeat(i))
            self.assertEqual(recv_all(s, len(heartbeat(i))), heartbeat(i))
        s.close()
        d.wait_log(r"error: journal: No space left on device \(1 failed "
                   r"attempt\(s\)\); events wait in the outbox, the relay "
                   r"goes on")
        # Logged once, not once per event.
        self.assertEqual(d.log().count("No space left on device"), 1)

    def test_spool_max_drops_the_oldest_and_says_so(self):
        # No sink reads (HEC down, never answering): the journal fills.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        port = hole.getsockname()[1]
        self.addCleanup(hole.close)
        d = self.run_daemon("events=none",
                            "hec.url=http://127.0.0.1:%d" % port,
                            "hec.token=t", "hec.spool_max=64K")
        for _ in range(4):
            self.send(d, [DATA] * 60)      # ~100 KB of events each time
        m = d.wait_log(r"spool_max reached: dropped (\d+) undelivered", 10)
        self.assertGreater(int(m.group(1)), 0)
        self.assertLessEqual(self.journal_bytes(), 64 * 1024 + 16 * 1024)


if __name__ == "__main__":
    unittest.main()
