"""Solarman V5 frames through the running relay: the bytes arrive unchanged
and the events come out of the JSON-lines sink, however TCP cuts them."""
import os
import random
import socket
import time
import unittest

from harness import echo_handler, read_events, recv_all, wait_for
from test_relay import RelayTest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "data", "solarman-frames.txt")


def fixture_frames():
    """{id: bytes} of the fixture file's frames (one hex line per block)."""
    frames, fid = {}, None
    with open(FIXTURES) as f:
        for line in f:
            line = line.strip()
            if line.startswith("# id:"):
                fid = line.split(":", 1)[1].strip()
            elif line and not line.startswith("#") and fid:
                frames[fid] = bytes.fromhex(line)
                fid = None
    return frames


FRAMES = fixture_frames()
DATA = FRAMES["deye-m80g3-data-0x42"]
HEARTBEAT = FRAMES["dongle-heartbeat-0x47"]
REPLY = FRAMES["server-heartbeat-reply-0x17"]
TLS = FRAMES["tls-clienthello-prefix-NEGATIVE"]


def send_split(s, data, rnd):
    off = 0
    while off < len(data):
        n = rnd.randint(1, 40)
        s.sendall(data[off:off + n])
        off += n
        time.sleep(0.001 if rnd.random() < 0.3 else 0)


class TestSolarmanTap(RelayTest):
    def events(self, d):
        return read_events(os.path.join(d.dir.name, "events.jsonl"))

    def start(self, handler, *opts):
        up = self.server(handler)
        d = self.daemon("events=events.jsonl", *opts, upstream=up.addr)
        return up, d

    def test_frames_split_at_random_decode_and_relay_unchanged(self):
        received = []

        def cloud(c):
            # Answer each logger frame with the real server reply, as the
            # cloud does, and keep what arrived.
            buf = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                buf += b
                while len(buf) >= 3 and len(buf) >= buf[1] + buf[2] * 256 + 13:
                    n = buf[1] + buf[2] * 256 + 13
                    received.append(buf[:n])
                    buf = buf[n:]
                    c.sendall(REPLY)
            c.shutdown(socket.SHUT_WR)
        up, d = self.start(cloud)
        rnd = random.Random(5)
        s = d.connect()
        stream = (HEARTBEAT + DATA) * 3
        send_split(s, stream, rnd)
        got = recv_all(s, len(REPLY) * 6)
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()
        self.assertEqual(got, REPLY * 6)
        self.assertEqual(b"".join(received), stream)
        d.wait_log(r"closed conn=1 ")
        evs = wait_for(lambda: len(self.events(d)) >= 13 and self.events(d), 5)
        kinds = [(e["type"], e["direction"]) for e in evs]
        self.assertEqual(kinds.count(("heartbeat", "up")), 3)
        self.assertEqual(kinds.count(("data", "up")), 3)
        self.assertEqual(kinds.count(("reply", "down")), 6)
        self.assertEqual(kinds[-1], ("connection", "up"))
        data = [e for e in evs if e["type"] == "data"][0]
        for k, v in {"grid.v": 232.0, "grid.hz": 50.1, "grid.kWh_total": 177.5,
                     "inv.degc": 27.7, "pv.kWh_total.2": 88.1,
                     "meta.current_time": "2024-04-08:17:09:01",
                     "logger.serial": 3939932716, "frame.seq": "15 16",
                     "frame.control": "0x4210", "listener": "deye",
                     "conn.id": 1, "record.time": "2024-04-08T17:14:03Z"}.items():
            self.assertEqual(data[k], v, k)
        self.assertRegex(data["conn.peer"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(len({e["id"] for e in evs}), len(evs))
        reply = [e for e in evs if e["type"] == "reply"][0]
        self.assertEqual(reply["reply.unix"], 1750496427)
        conn = evs[-1]
        self.assertEqual(conn["conn.bytes_up"], len(stream))
        self.assertEqual(conn["conn.bytes_down"], len(REPLY) * 6)

    def test_garbage_between_frames_is_logged_relayed_and_skipped(self):
        def sink(c):
            sink.got = recv_all(c)
        up, d = self.start(sink)
        junk = b"\xa5\x01\x00garbage" + bytes(range(256))
        stream = HEARTBEAT + junk + DATA
        s = d.connect()
        s.sendall(stream)
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()
        d.wait_log(r"closed conn=1 ")
        self.assertTrue(wait_for(lambda: getattr(sink, "got", None) == stream, 3))
        evs = wait_for(lambda: len(self.events(d)) >= 3 and self.events(d), 5)
        self.assertEqual([e["type"] for e in evs], ["heartbeat", "data", "connection"])
        d.wait_log(r"conn 1 \[deye\] up: malformed frame \(\w+\) at byte %d, bytes relayed"
                   % len(HEARTBEAT))
        d.wait_log(r"conn 1 \[deye\] up: 2 frames, \d+ rejected .*, %d bytes skipped"
                   % len(junk))

    def test_tls_connection_is_undecodable_once_and_relayed(self):
        up, d = self.start(echo_handler)
        s = d.connect()
        s.sendall(TLS)
        self.assertEqual(recv_all(s, len(TLS)), TLS)
        s.sendall(DATA)                   # never decoded on this connection
        self.assertEqual(recv_all(s, len(DATA)), DATA)
        s.close()
        d.wait_log(r"closed conn=1 ")
        evs = wait_for(lambda: len(self.events(d)) >= 2 and self.events(d), 5)
        self.assertEqual([e["type"] for e in evs], ["undecodable", "connection"])
        self.assertEqual(evs[0]["reason"], "tls")
        self.assertEqual(evs[0]["head.hex"], TLS[:64].hex())
        self.assertEqual(d.log().count("not Solarman V5 (TLS)"), 1)

    def test_raw_protocol_does_not_decode(self):
        up, d = self.start(lambda c: recv_all(c), "deye.protocol=raw")
        s = d.connect()
        s.sendall(DATA)
        s.close()
        d.wait_log(r"closed conn=1 ")
        evs = wait_for(lambda: self.events(d), 5)
        self.assertEqual([e["type"] for e in evs], ["connection"])


if __name__ == "__main__":
    unittest.main()
