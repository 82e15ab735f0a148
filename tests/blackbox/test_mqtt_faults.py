"""The MQTT sink when the broker fails: nothing listening (connection
refused), a server that accepts and never sends CONNACK, one that never
sends PUBACK (fake servers here), a real mosquitto restarted.  Each: one
log line (at most one a minute), events kept in the journal and delivered
once a broker answers, reconnection with backoff, and the relay's own
replies as fast as ever while the sink waits."""
import json
import re
import socket
import threading
import time
import unittest

from broker import retained
from harness import wait_for
from test_journal import heartbeat
from test_mqtt import P, MqttTest

FAST_MS = 200  # a reply through the relay, generously


class FakeBroker:
    """A TCP server on 127.0.0.1 that reads everything and answers
    nothing (connack=False), or only the CONNACK (connack=True: no
    PUBACK, no PINGRESP ever).  accepts counts connections."""

    def __init__(self, connack):
        self.connack = connack
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = "mqtt://127.0.0.1:%d" % self.port
        self.accepts = 0
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepts += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        answered = False
        try:
            while c.recv(65536):
                if self.connack and not answered:
                    c.sendall(b"\x20\x02\x00\x00")
                    answered = True
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class FaultTest(MqttTest):
    def fake(self, connack):
        f = FakeBroker(connack)
        self.addCleanup(f.close)
        return f

    def daemon_to(self, url, *opts):
        return self.run_daemon("events=none", "mqtt.url=" + url,
                               "mqtt.keepalive=5s", *opts)

    def round_trips(self, d, n=20):
        """n heartbeats on one connection, each answered by deye-mitm
        itself (no upstream): the slowest reply, in ms."""
        s = d.connect()
        worst = 0.0
        try:
            for i in range(n):
                t0 = time.monotonic()
                s.sendall(heartbeat(100 + i))
                buf = b""
                while len(buf) < 3 or len(buf) < 13 + int.from_bytes(
                        buf[1:3], "little"):
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "the relay closed")
                    buf += chunk
                worst = max(worst, (time.monotonic() - t0) * 1000)
        finally:
            s.close()
        return worst

    def deliver_to_a_real_broker(self, seqs):
        """The journal's heartbeats reach a real broker once one answers
        (a new daemon on the same state_dir)."""
        b = self.broker()
        sub = self.client(b, [P + "/+/heartbeat"])
        self.daemon_to(b.url)
        ms = sub.wait(lambda ms: len(ms) >= len(seqs), 10)
        got = [json.loads(m.payload)["frame.seq"] for m in ms]
        for s in seqs:
            self.assertIn(s, got)


class TestFaults(FaultTest):
    def test_connection_refused_one_line_then_delivered(self):
        # A session that keeps what is published while nothing listens.
        b = self.broker(persistence=True)
        self.client(b, [P + "/+/heartbeat"], client_id="keep",
                    clean=False).close()
        b.stop()
        d = self.daemon_to(b.url)
        self.send(d, [heartbeat(1), heartbeat(2)])
        d.wait_log(r"mqtt: cannot connect to mqtt://127\.0\.0\.1:%d: "
                   r"Connection refused; events are kept and retried"
                   % b.port)
        self.assertLess(self.round_trips(d), FAST_MS)
        # The broker comes back on that port: the backoff finds it.
        b.start()
        d.wait_log(r"mqtt: delivering again after \d+ failed "
                   r"attempt\(s\)", 10)
        self.assertEqual(d.log().count("cannot connect"), 1, d.log())
        sub = self.client(b, [], client_id="keep", clean=False)
        ms = sub.wait(lambda ms: len(ms) >= 2, 10)
        self.assertEqual([json.loads(x.payload)["frame.seq"]
                          for x in ms[:2]], ["f5 01", "f5 02"])

    def test_no_connack_one_line_relay_fast_events_kept(self):
        f = self.fake(connack=False)
        d = self.daemon_to(f.url)
        self.send(d, [heartbeat(3)])
        # keepalive 5 s: no CONNACK within 2.5 s is a failure.
        d.wait_log(r"mqtt: no answer \(CONNACK\) from mqtt://127\.0\.0\.1:%d "
                   r"in 2\.5 s; events are kept and retried" % f.port, 10)
        self.assertLess(self.round_trips(d), FAST_MS)
        self.assertTrue(wait_for(lambda: f.accepts >= 3, 15), f.accepts)
        self.assertEqual(d.log().count("no answer (CONNACK)"), 1, d.log())
        self.stop_clean(d)
        self.deliver_to_a_real_broker(["f5 03"])

    def test_no_puback_one_line_relay_fast_events_kept(self):
        f = self.fake(connack=True)
        d = self.daemon_to(f.url)
        self.send(d, [heartbeat(4)])
        d.wait_log(r"mqtt: mqtt://127\.0\.0\.1:%d acknowledged nothing for "
                   r"2\.5 s \(\d+ message\(s\) waiting\); events are kept "
                   r"and retried" % f.port, 10)
        self.assertLess(self.round_trips(d), FAST_MS)
        self.assertTrue(wait_for(lambda: f.accepts >= 3, 15), f.accepts)
        self.assertEqual(d.log().count("acknowledged nothing"), 1, d.log())
        self.stop_clean(d)
        self.deliver_to_a_real_broker(["f5 04"])

    def test_broker_restarted_reconnects_and_delivers(self):
        b = self.broker(persistence=True)
        self.client(b, [P + "/+/heartbeat"], client_id="keep",
                    clean=False).close()
        d = self.daemon_to(b.url)
        wait_for(lambda: retained(b.port, P + "/status").get(P + "/status")
                 == "online", 10)
        b.stop()
        self.send(d, [heartbeat(5), heartbeat(6)])
        self.assertLess(self.round_trips(d), FAST_MS)
        d.wait_log(r"mqtt: .*mqtt://127\.0\.0\.1:%d.*events are kept"
                   % b.port)
        b.start()
        sub = self.client(b, [], client_id="keep", clean=False)
        ms = sub.wait(lambda ms: len(ms) >= 2, 15)
        self.assertEqual([json.loads(x.payload)["frame.seq"] for x in ms[:2]],
                         ["f5 05", "f5 06"])
        self.assertEqual(retained(b.port, P + "/status")[P + "/status"],
                         "online")
        self.assertEqual(len(re.findall(r"warn: mqtt: ", d.log())), 1,
                         d.log())

if __name__ == "__main__":
    unittest.main()
