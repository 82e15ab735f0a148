"""SIGKILL while frames flow: every frame the relay passed on has its event
after the restart (deye-mitm(8), Journal; FAULTS.md F3).

The daemon is killed at the worst moment for it: as soon as the upstream
has taken a burst of new frames, while the writer is still behind (it
fdatasyncs after every batch, journal_fsync = 0).  Each run restarts on the
same state_dir and events file.  Lost means: the upstream received the
frame (or the logger its echo) and no event for it ever reached the events
file.  A frame may have two events (journaled, then recovered again), but
only with the same id.
"""
import json
import re
import os
import signal
import socket
import struct
import tempfile
import threading
import time
import unittest

from harness import (Daemon, SANITIZER_MARKS, SLOW, Server, mount_tmpfs,
                     wait_for)
from test_solarman import FRAMES

DATA = FRAMES["deye-m80g3-data-0x42"]
KILLS = 6
BURST = 40          # frames per sendall
KILL_AFTER = 150    # frames the upstream takes in a run before the kill


def data_frame(serial):
    """The fixture data frame with logger serial `serial`, checksum fixed."""
    b = bytearray(DATA)
    b[7:11] = struct.pack("<I", serial)
    b[-2] = sum(b[1:-2]) & 0xff
    return bytes(b)


def frames_in(buf):
    """Cut whole V5 frames off the front of buf; returns (serials, rest)."""
    serials = []
    while True:
        i = buf.find(b"\xa5")
        if i < 0:
            return serials, b""
        buf = buf[i:]
        if len(buf) < 11:
            return serials, buf
        n = 13 + (buf[1] | buf[2] << 8)
        if len(buf) < n:
            return serials, buf
        serials.append(struct.unpack("<I", buf[7:11])[0])
        buf = buf[n:]


def lenient_events(path):
    """The events in the file; a line cut by a kill (and anything glued to
    it) is read as the whole events it still holds."""
    out = []
    with open(path) as f:
        for line in f:
            for piece in line.replace('{"id":', '\n{"id":').split("\n"):
                try:
                    out.append(json.loads(piece))
                except ValueError:
                    pass
    return out


class TestSigkill(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="deye-kill-")
        self.addCleanup(tmp.cleanup)
        self.state = os.path.join(tmp.name, "state")
        self.events = os.path.join(tmp.name, "events.jsonl")
        self.lock = threading.Lock()
        self.up_got = set()      # serials the upstream received
        self.down_got = set()    # serials whose echo the logger received
        self.since = 0           # frames the upstream took in this run
        self.victim = None       # the daemon to kill once since >= KILL_AFTER
        self.kills = 0

    def upstream(self, c):
        """Echo every byte; count whole frames; kill when it is time."""
        buf = b""
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                return
            if not b:
                return
            serials, buf = frames_in(buf + b)
            with self.lock:
                self.up_got.update(serials)
                self.since += len(serials)
                d = self.victim
                if d is not None and self.since >= KILL_AFTER:
                    # The frames just arrived: their events are at best in
                    # the writer's hands now.
                    d.proc.send_signal(signal.SIGKILL)
                    self.victim = None
                    self.kills += 1
            try:
                c.sendall(b)
            except OSError:
                return

    def logger(self, d, serial):
        """Send bursts of new frames to d until it dies; read the echoes."""
        try:
            s = socket.create_connection(("127.0.0.1", d.port()), 10 * SLOW)
        except OSError:
            return serial

        def reader():
            buf = b""
            while True:
                try:
                    b = s.recv(65536)
                except OSError:
                    return
                if not b:
                    return
                serials, buf = frames_in(buf + b)
                with self.lock:
                    self.down_got.update(serials)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            while d.proc.poll() is None and serial < 10**6:
                s.sendall(b"".join(data_frame(serial + i)
                                   for i in range(BURST)))
                serial += BURST
                # A beat, so the kill falls between bursts, not after all.
                time.sleep(0.002)
        except OSError:
            pass
        finally:
            s.close()
            t.join(5 * SLOW)
        return serial

    def daemon(self, upstream):
        return Daemon("state_dir=" + self.state, "events=" + self.events,
                      "journal_fsync=0s",
                      upstream=upstream)

    def test_no_relayed_frame_loses_its_event(self):
        up = Server(self.upstream)
        self.addCleanup(up.close)
        serial = 1
        logs = []
        for _ in range(KILLS):
            d = self.daemon(up.addr)
            self.addCleanup(d.close)
            d.port()
            with self.lock:
                self.since = 0
                self.victim = d
            serial = self.logger(d, serial)
            self.assertTrue(wait_for(lambda: d.proc.poll() is not None, 10),
                            "never killed:\n" + d.log())
            d.proc.wait()
            logs.append(d.log())
        self.assertEqual(self.kills, KILLS)

        # A last run that is not killed delivers what the others left.
        d = self.daemon(up.addr)
        self.addCleanup(d.close)
        d.port()

        def missing():
            have = {(e["logger.serial"], e["direction"])
                    for e in lenient_events(self.events)
                    if e.get("type") == "data"}
            with self.lock:
                want = ({(s, "up") for s in self.up_got} |
                        {(s, "down") for s in self.down_got})
            return want - have
        wait_for(lambda: not missing(), 10)
        rc, _ = d.stop()
        logs.append(d.log())
        self.assertEqual(rc, 0, logs[-1])
        for log in logs:
            self.assertFalse(any(m in log for m in SANITIZER_MARKS), log)

        lost = missing()
        ids = {}
        for e in lenient_events(self.events):
            if e.get("type") == "data":
                ids.setdefault((e["logger.serial"], e["direction"]),
                               set()).add(e["id"])
        twice = {k: v for k, v in ids.items() if len(v) > 1}
        self.assertGreaterEqual(len(self.up_got), KILLS * KILL_AFTER)
        self.assertEqual(sorted(lost)[:20], [],
                         "%d of %d relayed frames have no event" % (
                             len(lost), len(self.up_got) + len(self.down_got)))
        self.assertEqual(twice, {}, "one frame, two ids")
        # The kills did catch events on their way to the journal (hundreds
        # in a run here): the path under test was taken.
        self.assertTrue(any(re.search(r"outbox: recovered \d+ event", log)
                            for log in logs), "\n".join(logs))

    def test_no_room_for_the_outbox_file(self):
        # state_dir on a tmpfs too small for state_dir/outbox: the queue
        # lives in memory, with a warning, and events flow as before.
        mnt = os.path.join(os.path.dirname(self.state), "mnt")
        os.mkdir(mnt)
        self.addCleanup(mount_tmpfs(mnt, "1m"))
        self.state = os.path.join(mnt, "state")
        up = Server(self.upstream)
        self.addCleanup(up.close)
        d = self.daemon(up.addr)
        self.addCleanup(d.close)
        s = socket.create_connection(("127.0.0.1", d.port()), 10 * SLOW)
        s.sendall(b"".join(data_frame(i) for i in range(1, 11)))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        s.close()
        d.wait_log(r"warn: outbox .*/outbox: No space left on device: "
                   r"events wait in memory only")
        self.assertTrue(wait_for(lambda: len([
            e for e in lenient_events(self.events)
            if e.get("type") == "data"]) == 20, 10), d.log())
        self.assertFalse({"outbox", "outbox.tmp"} & set(os.listdir(self.state)))
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())


if __name__ == "__main__":
    unittest.main()
