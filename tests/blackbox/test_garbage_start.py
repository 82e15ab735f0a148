"""A Solarman connection that starts with garbage (a logger's stray bytes,
a probe, a line-noise burst) is still decoded: the resynchronising decoder
skips to the first real frame.  Only a TLS start gives up on decoding."""
import os
import random
import socket
import unittest

from harness import read_events, recv_all, wait_for
from test_local import LocalTest, read_replies
from test_solarman import DATA, HEARTBEAT

GARBAGE_LEN = 3000


def garbage(seed, a5=True):
    """GARBAGE_LEN pseudo-random bytes, not a TLS start; without a5, no
    0xA5 either.  A stray 0xA5 reads as a frame's start that claims up to
    4 KiB: the decoder holds what follows until that many bytes came (or
    the connection ends), so a logger answered locally would wait for its
    reply until then."""
    b = bytearray(random.Random(seed).randbytes(GARBAGE_LEN))
    if b[0] == 0x16:
        b[0] = 0x17
    if not a5:
        b = b.replace(b"\xa5", b"\x5a")
    return bytes(b)


class TestGarbageStart(LocalTest):
    def test_frames_after_garbage_become_events_and_bytes_relay_unchanged(self):
        got = []

        def cloud(c):
            got.append(recv_all(c))
        up = self.server(cloud)
        d = self.daemon("state_dir=" + self.state, "events=" + self.events,
                        upstream=up.addr)
        junk = garbage(18)
        stream = junk + HEARTBEAT + DATA
        s = d.connect()
        s.sendall(junk)
        s.sendall(HEARTBEAT + DATA)
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()
        self.assertTrue(wait_for(lambda: got and got[0] == stream, 5))
        evs = wait_for(lambda: len(read_events(self.events)) >= 3
                       and read_events(self.events), 5)
        self.assertEqual([e["type"] for e in evs],
                         ["heartbeat", "data", "connection"])
        self.assertEqual(evs[1]["grid.v"], 232.0)
        self.assertEqual(evs[-1]["conn.bytes_up"], len(stream))
        log = d.log()
        self.assertNotIn("not Solarman V5", log)
        d.wait_log(r"conn 1 \[deye\] up: 2 frames, \d+ rejected .*, %d bytes "
                   r"skipped" % GARBAGE_LEN)

    def test_answer_mode_answers_the_frames_after_garbage_only(self):
        d = self.run_daemon("deye.tz_offset=60")
        s = d.connect()
        s.sendall(garbage(7, a5=False))
        s.sendall(HEARTBEAT)
        rep = read_replies(s, 1)
        self.assertEqual(len(rep), 1)
        self.check_reply(HEARTBEAT, rep[0], 60)
        # Garbage again, then a frame: one more reply, nothing for the rest.
        s.sendall(garbage(8, a5=False) + HEARTBEAT)
        rep = read_replies(s, 1)
        self.assertEqual(len(rep), 1)
        self.check_reply(HEARTBEAT, rep[0], 60)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"")
        s.close()
        d.wait_log(r"closed conn=1 .*down=46 end=client:eof "
                   r"answered=locally")
        evs = wait_for(lambda: len(read_events(self.events)) >= 5
                       and read_events(self.events), 5)
        self.assertEqual(sorted(e["type"] for e in evs),
                         ["connection", "heartbeat", "heartbeat", "reply",
                          "reply"])
        self.assertNotIn("cannot-answer", d.log())


if __name__ == "__main__":
    unittest.main()
