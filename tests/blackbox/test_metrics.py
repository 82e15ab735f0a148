"""The [metrics] endpoint through the real binary: known traffic (data
frames of three real loggers, a TLS ClientHello, a peer outside allow, an
upstream that refuses), then every count read back from GET /metrics by a
strict parser of the Prometheus text format written here; /healthz as a
HEC receiver goes away and comes back; 404, 405; a slowloris client cut
off while a scrape still answers; no secret in the output."""
import http.client
import math
import os
import re
import socket
import time
import unittest

from harness import SLOW, free_port, read_events, recv_all, wait_for
from hec_receiver import HecReceiver
from test_relay import RelayTest
from test_solarman import FRAMES, TLS

LOGGERS = {  # serial -> its real data frame
    "3939932716": FRAMES["deye-m80g3-data-0x42"],   # real-time data
    "719180488": FRAMES["solis-data-0x42-a"],       # real-time data
    "1902440284": FRAMES["ginlong-eth-data-0x02"],  # older: type unknown
}
TRUNCATED = FRAMES["lsw5ble-data-0x42"]  # cut short in capture: rejected
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)


def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


def parse(text):
    """{(name, ((label, value), ...)): float} of a text-format 0.0.4
    document, failing on anything the format does not allow or that we
    promise not to do: a sample without its family's TYPE before it, a
    family split or typed twice, a counter not named _total (or a gauge
    so named), a series twice, a bad label or value."""
    assert text.endswith("\n"), "no final newline"
    types, helps, out = {}, set(), {}
    current, done = None, set()
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(NAME, name) and name not in helps, line
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name not in types, "TYPE twice: " + line
            assert typ in ("counter", "gauge"), line
            assert name.endswith("_total") == (typ == "counter"), line
            assert name in helps, "TYPE before HELP: " + line
            if current is not None:
                done.add(current)
            types[name], current = typ, name
            continue
        assert not line.startswith("#") and line, "stray line %r" % line
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels, value = m.groups()
        assert name == current and name not in done, \
            "%s without its TYPE just before" % name
        pairs = []
        if labels is not None:
            rest = labels
            while rest:
                lm = LABEL.match(rest)
                assert lm, "bad labels in %r" % line
                pairs.append((lm.group(1), unescape(lm.group(2))))
                rest = rest[lm.end():]
                if rest:
                    assert rest[0] == ",", line
                    rest = rest[1:]
            assert len({k for k, _ in pairs}) == len(pairs), line
        v = float(value)
        assert not math.isnan(v), line
        key = (name, tuple(sorted(pairs)))
        assert key not in out, "series twice: " + line
        out[key] = v
    return out


def get(port, path, method="GET", source=None, headers=None):
    """(status, content-type, body text) of one request."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SLOW,
                                   source_address=(source, 0) if source
                                   else None)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


def swallow(c):
    """An upstream that reads to EOF and answers nothing."""
    recv_all(c)


class MetricsTest(RelayTest):
    def metrics_daemon(self, *opts, **kw):
        d = self.daemon("metrics.listen=127.0.0.1:0", "allow=127.0.0.1/32",
                        *opts, **kw)
        d.mport = d.port("metrics")
        return d

    def scrape(self, d):
        status, ctype, body = get(d.mport, "/metrics")
        self.assertEqual((status, ctype), (200, CONTENT_TYPE))
        return parse(body), body

    def converse(self, d, data, listener="deye", source=None):
        s = socket.socket()
        s.settimeout(10 * SLOW)
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", d.port(listener)))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        recv_all(s)
        s.close()


class TestMetrics(MetricsTest):
    def test_rejects_counted_while_the_connection_lives(self):
        """Malformed candidates are counted as the bytes pass, not when the
        connection ends: a bad checksum, a bad end byte and a length over
        the maximum on one open connection, then a good frame."""
        up = self.server(swallow)
        d = self.metrics_daemon(upstream=up.addr)
        good = LOGGERS["3939932716"]
        bad_sum = good[:-2] + bytes([good[-2] ^ 1]) + good[-1:]
        bad_end = good[:-1] + b"\x16"
        too_long = b"\xa5\xff\xff" + b"\x00" * 8
        s = socket.create_connection(("127.0.0.1", d.port("deye")),
                                     timeout=10 * SLOW)
        self.addCleanup(s.close)
        s.sendall(bad_sum + bad_end + too_long + good)

        def counts():
            m, _ = self.scrape(d)
            rej = {dict(k[1])["reason"]: val for k, val in m.items()
                   if k[0] == "deye_mitm_frames_rejected_total"
                   and dict(k[1])["listener"] == "deye"}
            frames = sum(val for k, val in m.items()
                         if k[0] == "deye_mitm_frames_total"
                         and dict(k[1])["listener"] == "deye")
            return frames == 1 and rej
        rej = wait_for(counts, 10)
        self.assertTrue(rej, "the good frame was never counted")
        self.assertEqual((rej["checksum"], rej["end"], rej["length"],
                          rej["truncated"]), (1, 1, 1, 0), rej)
        self.assertEqual(
            self.scrape(d)[0][("deye_mitm_connections_active",
                               (("listener", "deye"),))], 1)

    def test_counts_after_known_traffic(self):
        rx = HecReceiver()
        self.addCleanup(rx.close)
        up = self.server(swallow)
        refusing = free_port()
        t0 = time.time()
        d = self.metrics_daemon(
            "events=events.jsonl", "hec.url=" + rx.url,
            "hec.token=" + rx.token, "hec.flush_interval=100ms",
            "down.listen=127.0.0.1:0", "down.upstream=127.0.0.1:%d" % refusing,
            upstream=up.addr)
        for frame in LOGGERS.values():
            self.converse(d, frame)
        self.converse(d, TLS)
        self.converse(d, TRUNCATED)
        self.converse(d, LOGGERS["3939932716"], source="127.0.0.2")
        self.converse(d, LOGGERS["3939932716"], listener="down")
        t1 = time.time()

        def settled():
            m, _ = self.scrape(d)
            events = read_events(os.path.join(d.dir.name, "events.jsonl"))
            return (m[("deye_mitm_connections_active",
                       (("listener", "deye"),))] == 0
                    and m[("deye_mitm_connections_active",
                           (("listener", "down"),))] == 0
                    and m[("deye_mitm_sink_backlog_events",
                           (("sink", "hec"),))] == 0
                    and m[("deye_mitm_sink_backlog_events",
                           (("sink", "events"),))] == 0
                    and len(events) == m[(
                        "deye_mitm_journal_events_appended_total", ())]
                    and (m, events))
        got = wait_for(settled, 10)
        self.assertTrue(got, self.scrape(d)[1])
        m, events = got
        if os.environ.get("DEYE_SHOW_METRICS"):
            print("\n" + self.scrape(d)[1], end="")

        def v(name, **labels):
            return m[(name, tuple(sorted(labels.items())))]

        self.assertEqual(v("deye_mitm_build_info", version="0.1.0"), 1)
        self.assertTrue(t0 - 1 <= v("deye_mitm_start_time_seconds") <= t1)
        self.assertEqual(v("deye_mitm_connections_accepted_total",
                           listener="deye"), 5)
        self.assertEqual(v("deye_mitm_connections_accepted_total",
                           listener="down"), 1)
        for lst, allow in (("deye", 1), ("down", 0)):
            for reason in ("limit", "resources", "loop"):
                self.assertEqual(v("deye_mitm_connections_refused_total",
                                   listener=lst, reason=reason), 0)
            self.assertEqual(v("deye_mitm_connections_refused_total",
                               listener=lst, reason="allow"), allow)
        self.assertEqual(v("deye_mitm_upstream_connect_failures_total",
                           listener="deye"), 0)
        self.assertEqual(v("deye_mitm_upstream_connect_failures_total",
                           listener="down"), 1)
        self.assertEqual(v("deye_mitm_relayed_bytes_total", listener="deye",
                           direction="up"),
                         sum(map(len, LOGGERS.values())) + len(TLS) +
                         len(TRUNCATED))
        self.assertEqual(v("deye_mitm_relayed_bytes_total", listener="deye",
                           direction="down"), 0)
        frames = {dict(k[1])["type"]: val for k, val in m.items()
                  if k[0] == "deye_mitm_frames_total"
                  and dict(k[1])["listener"] == "deye"}
        self.assertEqual((frames["data"], frames["unknown"]), (2, 1))
        self.assertEqual(sum(frames.values()), 3, frames)
        self.assertEqual(set(frames), {"handshake", "data", "wifi",
                                       "heartbeat", "report", "reply",
                                       "unknown"})
        rejected = {dict(k[1])["reason"]: val for k, val in m.items()
                    if k[0] == "deye_mitm_frames_rejected_total"
                    and dict(k[1])["listener"] == "deye"}
        self.assertEqual(rejected["truncated"], 1)
        self.assertEqual(sum(rejected.values()), 1, rejected)
        self.assertEqual(v("deye_mitm_local_replies_total", listener="deye"),
                         0)
        seen = {dict(k[1])["serial"]: val for k, val in m.items()
                if k[0] == "deye_mitm_logger_last_frame_timestamp_seconds"}
        self.assertEqual(set(seen), set(LOGGERS))
        for serial, ts in seen.items():
            self.assertTrue(t0 - 1 <= ts <= t1 + 1, (serial, ts, t0, t1))
        self.assertEqual(v("deye_mitm_loggers_dropped_total"), 0)
        # The events, as the events sink wrote them: one per connection
        # (6, the refused one none), the frames', one for the TLS bytes.
        appended = v("deye_mitm_journal_events_appended_total")
        self.assertEqual(appended, 10)
        self.assertEqual(sorted(e["type"] for e in events),
                         ["connection"] * 6 + ["data"] * 2 +
                         ["undecodable", "unknown"])
        self.assertEqual(v("deye_mitm_journal_events_dropped_total"), 0)
        self.assertEqual(v("deye_mitm_journal_events_lost_total"), 0)
        self.assertGreater(v("deye_mitm_journal_bytes"), 0)
        self.assertEqual(len(rx.events), appended)
        for sink in ("events", "hec"):
            self.assertEqual(v("deye_mitm_sink_delivered_events_total",
                               sink=sink), appended)
            self.assertEqual(v("deye_mitm_sink_retries_total", sink=sink), 0)
            self.assertEqual(v("deye_mitm_sink_dead_letters_total",
                               sink=sink), 0)
            self.assertEqual(v("deye_mitm_sink_backlog_events", sink=sink), 0)
            self.assertTrue(t0 <= v("deye_mitm_sink_last_success_timestamp_"
                                    "seconds", sink=sink) <= time.time())
        self.assertFalse(any(k[0].startswith("deye_mitm_sink") and
                             dict(k[1])["sink"] == "mqtt" for k in m))
        self.assertEqual(get(d.mport, "/healthz")[::2], (200, "ok\n"))

    def test_healthz_follows_a_stalled_sink(self):
        rx = HecReceiver()
        self.addCleanup(rx.close)
        d = self.metrics_daemon(
            "events=none", "hec.url=" + rx.url, "hec.token=" + rx.token,
            "hec.flush_interval=100ms", "metrics.stall_after=1s",
            "deye.upstream=none")
        self.assertEqual(get(d.mport, "/healthz"), (200, "text/plain; "
                                                    "charset=utf-8", "ok\n"))
        rx.down = True
        self.converse(d, LOGGERS["3939932716"])
        got = wait_for(lambda: (lambda r: r[0] == 503 and r)(
            get(d.mport, "/healthz")), 10)
        self.assertTrue(got, get(d.mport, "/healthz"))
        self.assertRegex(got[2], r"^sink hec: \d+ events undelivered, no "
                         r"delivery for \d+s \(none since start\)\n$")
        m, _ = self.scrape(d)
        self.assertGreater(m[("deye_mitm_sink_retries_total",
                              (("sink", "hec"),))], 0)
        self.assertGreater(m[("deye_mitm_sink_backlog_events",
                              (("sink", "hec"),))], 0)
        rx.down = False
        self.assertTrue(wait_for(lambda: get(d.mport, "/healthz") ==
                                 (200, "text/plain; charset=utf-8", "ok\n"),
                                 90), get(d.mport, "/healthz"))
        m, _ = self.scrape(d)
        self.assertEqual(m[("deye_mitm_sink_backlog_events",
                            (("sink", "hec"),))], 0)

    def test_http_rules(self):
        d = self.metrics_daemon("events=none", "deye.upstream=none")
        self.assertEqual(get(d.mport, "/nothing")[0], 404)
        self.assertEqual(get(d.mport, "/")[0], 404)
        self.assertEqual(get(d.mport, "/metrics?x=1")[0], 200)
        for method in ("POST", "PUT", "DELETE", "HEAD"):
            self.assertEqual(get(d.mport, "/metrics", method)[0], 405, method)
        # A GET with a body is refused before it is read.
        self.assertEqual(get(d.mport, "/metrics", headers={
            "Content-Length": "3"})[0], 413)
        # Request headers are bounded.
        self.assertEqual(get(d.mport, "/metrics", headers={
            "X-Big": "a" * 20000})[0], 431)
        # A peer outside allow gets no answer (closed at accept).
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            get(d.mport, "/metrics", source="127.0.0.2")
        d.wait_log(r"\[metrics\] refused 127\.0\.0\.2:\d+: not in allow")
        m, _ = self.scrape(d)
        # The endpoint's refusals are not the relay's.
        self.assertEqual(m[("deye_mitm_connections_refused_total",
                            (("listener", "deye"), ("reason", "allow")))], 0)

    def test_slowloris_is_cut_off_while_scrapes_answer(self):
        d = self.metrics_daemon("events=none", "deye.upstream=none")
        slow = socket.create_connection(("127.0.0.1", d.mport))
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        idle = socket.create_connection(("127.0.0.1", d.mport))
        t0 = time.monotonic()
        for _ in range(3):
            self.assertEqual(self.scrape(d)[0][("deye_mitm_build_info", (
                ("version", "0.1.0"),))], 1)
        self.assertLess(time.monotonic() - t0, 2 * SLOW)
        for s in (slow, idle):
            s.settimeout(10 * SLOW)
            self.assertEqual(recv_all(s), b"")  # closed, nothing answered
            took = time.monotonic() - t0
            self.assertTrue(4 <= took <= 8 * SLOW, took)
            s.close()
        self.assertEqual(get(d.mport, "/healthz")[0], 200)

    def test_no_secret_in_the_output(self):
        secrets = ("hec-token-s3cr3t", "urlpass-s3cr3t", "mqtt-pass-s3cr3t")
        refusing = free_port()
        d = self.metrics_daemon(
            "events=none", "deye.upstream=none", "metrics.stall_after=1s",
            "hec.url=http://user:%s@127.0.0.1:%d" % (secrets[1], refusing),
            "hec.token=" + secrets[0],
            "mqtt.url=mqtt://127.0.0.1:%d" % refusing, "mqtt.username=u",
            "mqtt.password=" + secrets[2])
        self.converse(d, LOGGERS["3939932716"])
        # Both sinks fail: /healthz names them, the URLs nowhere.
        got = wait_for(lambda: (lambda r: r[0] == 503 and "hec" in r[2] and
                                "mqtt" in r[2] and r)(
            get(d.mport, "/healthz")), 10)
        self.assertTrue(got, get(d.mport, "/healthz"))
        _, text = self.scrape(d)
        for body in (got[2], text):
            for s in secrets + ("user:", "127.0.0.1:%d" % refusing):
                self.assertNotIn(s, body)


if __name__ == "__main__":
    unittest.main()
