"""Delivery to Splunk HEC (our test receiver on 127.0.0.1): envelopes,
batching, keep-alive, faults of every kind, restarts, TLS."""
import json
import os
import signal
import tempfile
import time
import unittest

from harness import SLOW, echo_handler, recv_all, wait_for
from hec_receiver import HecReceiver, make_test_ca
from test_journal import JournalTest, heartbeat, read_events
from test_solarman import FRAMES

DATA = FRAMES["deye-m80g3-data-0x42"]


class HecTest(JournalTest):
    def receiver(self, **kw):
        rx = HecReceiver(**kw)
        self.addCleanup(rx.close)
        return rx

    def hec_daemon(self, rx, *opts, token=None):
        return self.run_daemon("events=none", "hec.url=" + rx.url,
                               "hec.token=" + (token or rx.token),
                               "hec.flush_interval=100ms", *opts)

    def seqs(self, rx):
        return [e["event"]["frame.seq"] for e in rx.events
                if e["event"]["type"] == "heartbeat"]


class TestDelivery(HecTest):
    def test_events_delivered_in_order_with_envelopes(self):
        rx = self.receiver()
        d = self.hec_daemon(rx, "hec.index=solar", "hec.host=box1",
                            "hec.sourcetype=deye:json")
        self.send(d, [heartbeat(i) for i in range(30)] + [DATA])
        # Each frame is answered locally (upstream = none): a reply event
        # follows each one.
        evs = rx.wait_events(2 * 31 + 1, 5)
        self.assertEqual(self.seqs(rx), ["f5 %02x" % i for i in range(30)])
        types = [e["event"]["type"] for e in evs]
        self.assertEqual(types[:4], ["heartbeat", "reply", "heartbeat", "reply"])
        self.assertEqual(types[60:], ["data", "reply", "connection"])
        for e in evs:
            self.assertEqual(set(e), {"time", "host", "source", "sourcetype",
                                      "index", "event"})
            self.assertEqual((e["host"], e["source"], e["sourcetype"], e["index"]),
                             ("box1", "deye-mitm", "deye:json", "solar"))
        # The data record's own time, not the time it was received.
        self.assertEqual(evs[60]["time"], 1712596443.0)
        self.assertAlmostEqual(evs[0]["time"], time.time(), delta=30)
        req = rx.requests[0]
        self.assertEqual(req["path"], "/services/collector/event")
        self.assertEqual(req["headers"]["Authorization"], "Splunk " + rx.token)
        # Batched and kept alive: fewer requests than events, one connection.
        self.assertLess(len(rx.requests), 20)
        self.assertEqual(rx.connections, 1)
        self.assertNotIn(rx.token, d.log())

    def test_hec_down_at_start_then_up(self):
        rx = self.receiver()
        rx.down = True
        d = self.hec_daemon(rx)
        self.send(d, [heartbeat(i) for i in range(5)])
        d.wait_log(r"hec: .* answered 503 .*events are kept and retried")
        time.sleep(1)
        self.assertEqual(rx.events, [])
        rx.down = False
        rx.wait_events(6, 10)
        self.assertEqual(self.seqs(rx), ["f5 %02x" % i for i in range(5)])
        d.wait_log(r"hec: delivering again after \d+ failed attempt")

    def test_503_storm_and_retry_after(self):
        rx = self.receiver()
        rx.script([("status", 503)] * 3 + [("status", 503, {"retry_after": 2})])
        d = self.hec_daemon(rx)
        self.send(d, [heartbeat(1)])
        evs = rx.wait_events(3, 15)
        self.assertEqual([e["event"]["type"] for e in evs],
                         ["heartbeat", "reply", "connection"])
        times = [r["time"] for r in rx.requests]
        self.assertGreaterEqual(len(times), 5)
        # Backoff grows, and Retry-After: 2 is honoured.
        self.assertGreaterEqual(times[4] - times[3], 1.9)
        self.assertGreater(times[3] - times[2], times[1] - times[0])

    def test_one_bad_event_is_dead_lettered_the_rest_delivered(self):
        # Whether Splunk indexed the events before the bad one or not,
        # every other event arrives (a repeat carries the same id).
        for kept in (True, False):
            with self.subTest(index_before_bad=kept):
                self.state = tempfile.mkdtemp(dir=self.tmp.name)
                rx = self.receiver(index_before_bad=kept)
                # Events: heartbeat 0, its reply, heartbeat 1, its reply,
                # heartbeat 2 (number 4)...
                rx.script([("bad_event", 4)])
                d = self.hec_daemon(rx, "hec.flush_interval=500ms")
                self.send(d, [heartbeat(i) for i in range(6)])
                wait_for(lambda: len(set(self.seqs(rx))) >= 5, 10)
                self.assertEqual(sorted(set(self.seqs(rx))),
                                 ["f5 %02x" % i for i in (0, 1, 3, 4, 5)])
                ids = rx.event_ids()
                self.assertEqual(len(ids) - len(set(ids)), 4 if kept else 0)
                dead = os.listdir(os.path.join(self.state, "dead"))
                self.assertEqual(len(dead), 1)
                with open(os.path.join(self.state, "dead", dead[0])) as f:
                    letter = json.load(f)
                self.assertEqual(letter["status"], 400)
                self.assertEqual(letter["event"]["frame.seq"], "f5 02")
                self.assertIn("invalid-event-number", letter["reply"])
                d.wait_log(r"hec: event \S+ rejected \(400\): moved to ")
                self.stop_clean(d)

    def test_wrong_index_keeps_events_instead_of_dead_letters(self):
        # Splunk answers a wrong index with 400 (code 7): the setup is at
        # fault, not the events, so none may go to dead/.
        rx = self.receiver(indexes={"solar"})
        d = self.hec_daemon(rx, "hec.index=solr")
        self.send(d, [heartbeat(i) for i in range(3)])
        wait_for(lambda: len(rx.requests) >= 4, 15)
        self.assertEqual(rx.events, [])
        self.assertFalse(os.path.exists(os.path.join(self.state, "dead")))
        d.wait_log(r"hec: .* answered 400 .*events are kept and retried")
        self.stop_clean(d)
        d = self.hec_daemon(rx, "hec.index=solar")
        wait_for(lambda: len(self.seqs(rx)) >= 3, 10)
        self.assertEqual(self.seqs(rx), ["f5 %02x" % i for i in range(3)])

    def test_backlog_survives_a_restart_without_hec(self):
        rx = self.receiver()
        rx.down = True
        d = self.hec_daemon(rx)
        self.send(d, [heartbeat(i) for i in range(5)])
        wait_for(lambda: rx.requests, 10)
        self.stop_clean(d)
        # Started without a token (say the environment file was missing),
        # with the events sink on: HEC's events must not be deleted.
        d = self.run_daemon()
        d.wait_log(r"journal: sink 'hec' is not configured but has a cursor")
        self.send(d, [heartbeat(i) for i in range(5, 7)])
        wait_for(lambda: len(read_events(self.events)) >= 10, 5)
        self.stop_clean(d)
        rx.down = False
        d = self.hec_daemon(rx)
        wait_for(lambda: len(self.seqs(rx)) >= 7, 10)
        self.assertEqual(self.seqs(rx), ["f5 %02x" % i for i in range(7)])

    def test_wrong_token_keeps_events_and_says_so_once(self):
        rx = self.receiver()
        d = self.hec_daemon(rx, token="wrong-token")
        self.send(d, [heartbeat(i) for i in range(3)])
        wait_for(lambda: len(rx.requests) >= 3, 10)
        self.assertEqual(rx.events, [])
        self.assertEqual(d.log().count("rejected the token"), 1, d.log())
        self.assertNotIn("wrong-token", d.log())
        self.stop_clean(d)
        # The events were kept: with the right token they all arrive.
        d = self.hec_daemon(rx)
        wait_for(lambda: len(self.seqs(rx)) >= 3, 10)
        self.assertEqual(self.seqs(rx), ["f5 %02x" % i for i in range(3)])

    def test_sigkill_mid_delivery_and_restart_keeps_ids(self):
        rx = self.receiver()
        rx.hang_all = 30
        d = self.hec_daemon(rx, "hec.timeout=20s")
        self.send(d, [heartbeat(i) for i in range(10)])
        wait_for(lambda: rx.requests, 10)
        dec, body, hung = json.JSONDecoder(), rx.requests[0]["body"].decode(), []
        while body:
            env, end = dec.raw_decode(body)
            hung.append(env["event"]["id"])
            body = body[end:]
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        self.daemons.remove(d)
        d.err.close()
        d.dir.cleanup()
        rx.hang_all = 0
        d = self.hec_daemon(rx)
        wait_for(lambda: len(self.seqs(rx)) >= 10, 10)
        self.assertEqual(self.seqs(rx), ["f5 %02x" % i for i in range(10)])
        ids = rx.event_ids()
        self.assertEqual(ids[:len(hung)], hung)   # resent with the same ids

    def test_hanging_hec_neither_slows_the_relay_nor_grows(self):
        rx = self.receiver()
        rx.hang_all = 60

        up = self.server(echo_handler)
        d = self.daemon("state_dir=" + self.state, "events=none",
                        "hec.url=" + rx.url, "hec.token=" + rx.token,
                        "hec.timeout=1s", "hec.flush_interval=100ms",
                        upstream=up.addr)
        s = d.connect()
        rtts = []
        threads = []
        for i in range(200):
            t0 = time.monotonic()
            s.sendall(heartbeat(i))
            self.assertEqual(recv_all(s, len(HEARTBEAT_LEN)), heartbeat(i))
            rtts.append(time.monotonic() - t0)
            if i % 50 == 0:
                threads.append(d.threads())
            time.sleep(0.01)
        rtts.sort()
        self.assertLess(rtts[int(len(rtts) * 0.99)], 0.05 * SLOW, rtts[-5:])
        self.assertLessEqual(max(threads), min(threads))
        self.assertGreaterEqual(len(rx.requests), 2)   # timed out, retried
        self.assertEqual(rx.events, [])
        s.close()
        d.wait_log(r"hec: .*(Timeout|timed out)")

    def test_sigterm_while_hec_hangs_exits_promptly(self):
        rx = self.receiver()
        rx.hang_all = 60
        d = self.hec_daemon(rx, "hec.timeout=30s")
        self.send(d, [heartbeat(1)])
        wait_for(lambda: rx.requests, 5)
        self.daemons.remove(d)
        rc, took = d.stop()
        d.dir.cleanup()
        self.assertEqual(rc, 0)
        self.assertLess(took, 6)


HEARTBEAT_LEN = heartbeat(0)


class TestTLS(HecTest):
    def setUp(self):
        super().setUp()
        self.ca, cert, key = make_test_ca(os.path.join(self.tmp.name, "ca"))
        self.rx = self.receiver(tls=(cert, key))

    def test_verified_with_ca_file(self):
        d = self.hec_daemon(self.rx, "hec.ca_file=" + self.ca)
        self.send(d, [heartbeat(1)])
        wait_for(lambda: self.seqs(self.rx), 10)
        self.assertEqual(self.seqs(self.rx), ["f5 01"])
        self.assertNotIn("NOT verified", d.log())

    def test_refused_without_ca_file(self):
        d = self.hec_daemon(self.rx)
        self.send(d, [heartbeat(1)])
        d.wait_log(r"hec: https://127\.0\.0\.1:\d+/services/collector/event: "
                   r".*(certificate|SSL)", 10)
        self.assertEqual(self.rx.events, [])

    def test_accepted_with_insecure_and_warned(self):
        d = self.hec_daemon(self.rx, "hec.insecure=yes")
        self.send(d, [heartbeat(1)])
        self.rx.wait_events(2, 10)
        d.wait_log(r"warn: hec: insecure = yes: the TLS certificate of .* NOT verified")


if __name__ == "__main__":
    unittest.main()
