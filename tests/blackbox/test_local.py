"""deye-mitm as the cloud: time replies with no upstream, and the fallback
when the upstream cannot be reached or dies (on_upstream_failure = answer)."""
import select
import socket
import struct
import threading
import time
import unittest

from harness import SLOW, recv_all, wait_for
from test_journal import JournalTest, heartbeat, read_events
from test_solarman import FRAMES

LOGGER_FRAMES = {
    "handshake": FRAMES["solis-handshake-0x41"],
    "data": FRAMES["deye-m80g3-data-0x42"],
    "wifi": FRAMES["solis-wifi-0x43"],
    "heartbeat": FRAMES["dongle-heartbeat-0x47"],
    "report": FRAMES["solis-report-0x48"],
}
TLS = FRAMES["tls-clienthello-prefix-NEGATIVE"]


def read_replies(s, n, timeout=5.0):
    """n 23-byte time replies from s."""
    s.settimeout(timeout * SLOW)
    data = b""
    while len(data) < 23 * n:
        b = s.recv(65536)
        if not b:
            break
        data += b
    return [data[i:i + 23] for i in range(0, len(data), 23)]


class LocalTest(JournalTest):
    def check_reply(self, req, rep, tz):
        self.assertEqual(len(rep), 23, rep.hex())
        self.assertEqual(rep[:4], b"\xa5\x0a\x00\x10")
        self.assertEqual(rep[4], req[4] - 0x30)
        self.assertEqual(rep[5], (req[5] + 1) & 0xff)
        self.assertEqual(rep[6], req[6])
        self.assertEqual(rep[7:11], req[7:11])             # logger serial
        self.assertEqual(rep[11], req[11])                 # payload byte 0
        self.assertEqual(rep[12], 1)
        now, off = struct.unpack("<Ii", rep[13:21])
        self.assertAlmostEqual(now, time.time(), delta=5)
        self.assertEqual(off, tz)
        self.assertEqual(rep[21], sum(rep[1:21]) & 0xff)
        self.assertEqual(rep[22], 0x15)

    def exchange(self, s, frames):
        s.sendall(b"".join(frames))
        return read_replies(s, len(frames))


class TestNoUpstream(LocalTest):
    def test_every_logger_frame_type_is_answered(self):
        d = self.run_daemon("deye.tz_offset=330")
        s = d.connect()
        for name, f in LOGGER_FRAMES.items():
            rep = self.exchange(s, [f])
            self.assertEqual(len(rep), 1, name)
            self.check_reply(f, rep[0], 330)
        s.close()
        d.wait_log(r"closed conn=1 .*answered=locally")
        evs = wait_for(lambda: len(read_events(self.events)) >= 11
                       and read_events(self.events), 5)
        replies = [e for e in evs if e["type"] == "reply"]
        self.assertEqual(len(replies), 5)
        self.assertTrue(all(e["direction"] == "down" for e in replies))
        self.assertTrue(all(e["reply.tz_offset_min"] == 330 for e in replies))
        self.assertEqual([e["type"] for e in evs if e["type"] != "reply"],
                         list(LOGGER_FRAMES) + ["connection"])

    def test_sequence_wraps_and_a_fast_logger_is_answered_in_order(self):
        d = self.run_daemon("deye.tz_offset=0")
        s = d.connect()
        frames = []
        for i in range(60):
            b = bytearray(heartbeat(i))
            b[5] = (0xf0 + i) & 0xff        # passes 0xff
            b[-2] = sum(b[1:-2]) & 0xff
            frames.append(bytes(b))
        reps = self.exchange(s, frames)     # all sent before any is read
        self.assertEqual(len(reps), 60)
        for f, r in zip(frames, reps):
            self.check_reply(f, r, 0)
        self.assertEqual(reps[15][5], 0x00)  # 0xff + 1
        s.close()

    def test_tz_offset_auto_follows_the_hosts_zone(self):
        for tz, minutes in (("XYZ-5:30", 330), ("ABC+3", -180), ("UTC0", 0)):
            d = self.run_daemon("deye.tz_offset=auto", env={"TZ": tz})
            s = d.connect()
            rep = self.exchange(s, [LOGGER_FRAMES["heartbeat"]])
            self.check_reply(LOGGER_FRAMES["heartbeat"], rep[0], minutes)
            s.close()
            self.stop_clean(d)

    def test_garbage_gets_no_reply(self):
        d = self.run_daemon()
        s = d.connect()
        s.sendall(b"\xa5\x02\x00 not a frame " + bytes(range(200)))
        r, _, _ = select.select([s], [], [], 0.5)
        self.assertEqual(r, [])
        rep = self.exchange(s, [LOGGER_FRAMES["heartbeat"]])
        self.assertEqual(len(rep), 1)
        s.close()

    def test_tls_is_closed_not_answered(self):
        d = self.run_daemon()
        s = d.connect()
        s.sendall(TLS)
        self.assertEqual(recv_all(s), b"")
        s.close()
        d.wait_log(r"closed conn=1 .*end=relay:cannot-answer")


class TestFallback(LocalTest):
    def fallback_daemon(self, upstream, *opts):
        return self.daemon("state_dir=" + self.state, "events=" + self.events,
                           "deye.on_upstream_failure=answer",
                           "deye.tz_offset=60", *opts, upstream=upstream)

    def test_upstream_refused(self):
        s0 = socket.socket()
        s0.bind(("127.0.0.1", 0))
        self.addCleanup(s0.close)
        d = self.fallback_daemon("127.0.0.1:%d" % s0.getsockname()[1])
        s = d.connect()
        f = LOGGER_FRAMES["data"]
        self.check_reply(f, self.exchange(s, [f])[0], 60)
        d.wait_log(r"conn 1 \[deye\]: upstream unreachable, carrying on locally")
        s.close()

    def test_upstream_never_answers_the_connect(self):
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        fillers = []
        while True:
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(hole.getsockname())
            fillers.append(f)
            if not select.select([], [f], [], 0.3)[1]:
                break
        self.addCleanup(lambda: [x.close() for x in fillers + [hole]])
        d = self.fallback_daemon("127.0.0.1:%d" % hole.getsockname()[1],
                                 "deye.connect_timeout=500ms")
        s = d.connect()
        t0 = time.monotonic()
        f = LOGGER_FRAMES["heartbeat"]
        self.check_reply(f, self.exchange(s, [f])[0], 60)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        d.wait_log(r"upstream unreachable, carrying on locally")
        s.close()

    def test_upstream_dies_mid_connection(self):
        cloud_reply = FRAMES["server-heartbeat-reply-0x17"]
        got = threading.Event()

        def cloud(c):
            c.recv(65536)
            c.sendall(cloud_reply)      # answers the first frame...
            got.wait(5)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))   # ...then dies (RST)
        up = self.server(cloud)
        d = self.fallback_daemon(up.addr)
        s = d.connect()
        s.sendall(LOGGER_FRAMES["heartbeat"])
        self.assertEqual(read_replies(s, 1)[0], cloud_reply)
        got.set()
        d.wait_log(r"conn 1 \[deye\]: upstream 127\.0\.0\.1:\d+ \(\w+\), "
                   r"carrying on locally")
        for name in ("data", "heartbeat"):
            f = LOGGER_FRAMES[name]
            self.check_reply(f, self.exchange(s, [f])[0], 60)
        s.close()
        d.wait_log(r"closed conn=1 .*answered=locally")
        self.assertEqual(d.log().count("carrying on locally"), 1)
        evs = wait_for(lambda: len(read_events(self.events)) >= 7
                       and read_events(self.events), 5)
        kinds = [(e["type"], e["direction"]) for e in evs]
        self.assertEqual(kinds.count(("reply", "down")), 3)  # cloud's + 2 ours
        self.assertIn(("data", "up"), kinds)

    def test_default_close_does_not_answer(self):
        s0 = socket.socket()
        s0.bind(("127.0.0.1", 0))
        self.addCleanup(s0.close)
        d = self.daemon("state_dir=" + self.state,
                        upstream="127.0.0.1:%d" % s0.getsockname()[1])
        s = d.connect()
        s.sendall(LOGGER_FRAMES["heartbeat"])
        self.assertEqual(recv_all(s), b"")
        s.close()


if __name__ == "__main__":
    unittest.main()
