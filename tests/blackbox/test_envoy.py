"""The Envoy tap (issue 6, envoy-design.md) through the real binary: a test
Envoy posts deflated performance reports to a `protocol = envoy` listener,
a test Enphase answers; the bytes must arrive unchanged both ways, and the
spool files, the events and the log must say what the design says."""
import base64
import calendar
import os
import random
import re
import socket
import stat
import tempfile
import threading
import time
import unittest
import zlib

import envoy_peers as ep
from harness import SLOW, read_events, wait_for
from hec_receiver import HecReceiver
from test_relay import RelayTest

SPOOL_NAME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-[0-9a-f]{8})"
                        r"\.(request|response|xml)$")
BASE_KEYS = {"id", "type", "received", "listener", "conn.id", "conn.peer",
             "direction"}
RECEIVED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
ACK = r"conn %d \[envoy\]: Enphase acknowledged (\d+) event\(s\):([^\n]*)"
MALFORMED = (r"conn %d \[envoy\] %s: malformed HTTP \(([^)\n]+)\) at byte "
             r"(\d+), relayed without decoding")


def match(a, w, path):
    """Problems of actual value a against wanted w: ints must be ints,
    floats numbers within 1e-9, strings strings; lists and objects alike."""
    if isinstance(w, bool) or w is None:
        return [] if a is w else ["%s: %r, want %r" % (path, a, w)]
    if isinstance(w, float):
        if isinstance(a, bool) or not isinstance(a, (int, float)) \
                or abs(a - w) > 1e-9 * max(1.0, abs(w)):
            return ["%s: %r, want %r" % (path, a, w)]
        return []
    if isinstance(w, int):
        if type(a) is not int or a != w:
            return ["%s: %r, want int %r" % (path, a, w)]
        return []
    if isinstance(w, str):
        return [] if a == w else ["%s: %r, want %r" % (path, a, w)]
    if isinstance(w, list):
        if not isinstance(a, list) or len(a) != len(w):
            return ["%s: %r, want %r" % (path, a, w)]
        out = []
        for i, (x, y) in enumerate(zip(a, w)):
            out += match(x, y, "%s[%d]" % (path, i))
        return out
    if isinstance(w, dict):
        if not isinstance(a, dict) or set(a) != set(w):
            return ["%s: %r, want %r" % (path, a, w)]
        out = []
        for k in w:
            out += match(a[k], w[k], "%s.%s" % (path, k))
        return out
    raise TypeError(w)


def first_diff(a, b):
    n = min(len(a), len(b))
    i = next((i for i in range(n) if a[i] != b[i]), n)
    return "lengths %d and %d, first difference at byte %d: %r vs %r" % (
        len(a), len(b), i, a[max(0, i - 40):i + 40], b[max(0, i - 40):i + 40])


class EnvoyTest(RelayTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="deye-envoy-")
        self.addCleanup(self.tmp.cleanup)
        self.spool = os.path.join(self.tmp.name, "spool")  # the daemon makes it
        self.events = os.path.join(self.tmp.name, "events.jsonl")

    def start(self, enphase=None, *opts, upstream=None, env=None, events=None):
        """(Enphase handler, daemon) with an `envoy` listener in front of it."""
        enphase = enphase or ep.Enphase()
        if upstream is None:
            upstream = self.server(enphase).addr
        d = self.daemon("events=" + (events or self.events),
                        "envoy.protocol=envoy", "envoy.listen=127.0.0.1:0",
                        "envoy.upstream=" + upstream,
                        "envoy.spool_dir=" + self.spool, *opts,
                        upstream="none", env=env)
        d.port("envoy")
        return enphase, d

    def client(self, d, rnd=None):
        return ep.EnvoyClient(d.connect("envoy"), rnd)

    # -- relaying ---------------------------------------------------------

    def check_relay(self, client, uc):
        """Bytes exact both ways between the test Envoy and the upstream."""
        self.assertTrue(bytes(uc.received) == bytes(client.sent),
                        "upstream got other bytes than the Envoy sent: " +
                        first_diff(bytes(uc.received), bytes(client.sent)))
        self.assertTrue(bytes(client.got) == bytes(uc.sent),
                        "Envoy got other bytes than the upstream sent: " +
                        first_diff(bytes(client.got), bytes(uc.sent)))

    # -- events -----------------------------------------------------------

    def wait_events(self, n_envoy, n_conn, n_undecodable=0, path=None):
        """The events, once n_envoy envoy_*, n_conn connection and
        n_undecodable undecodable events are out (each connection's events
        come before its connection event: then the counts are checked
        exactly, and no other type may be there)."""
        path = path or self.events

        def count(evs):
            ne = sum(e["type"].startswith("envoy_") for e in evs)
            nc = sum(e["type"] == "connection" for e in evs)
            nu = sum(e["type"] == "undecodable" for e in evs)
            return ne, nc, nu, len(evs) - ne - nc - nu

        def enough():
            ne, nc, nu, _ = count(read_events(path))
            return ne >= n_envoy and nc >= n_conn and nu >= n_undecodable
        wait_for(enough, 15)
        evs = read_events(path)
        self.assertEqual(count(evs), (n_envoy, n_conn, n_undecodable, 0),
                         [(e["type"], e.get("reason")) for e in evs
                          if not e["type"].startswith("envoy_")])
        self.assertEqual(len({e["id"] for e in evs}), len(evs), "ids not unique")
        return evs

    def conn_events(self, evs, peer):
        """(conn.id, its envoy events) of the connection from peer."""
        conn = [e for e in evs if e["type"] == "connection"
                and e["conn.peer"] == peer]
        self.assertEqual(len(conn), 1, "connection events of %s" % peer)
        cid = conn[0]["conn.id"]
        return cid, [e for e in evs if e["type"].startswith("envoy_")
                     and e["conn.id"] == cid]

    def by_report(self, evs):
        groups = []
        for e in evs:
            if e["type"] == "envoy_report":
                groups.append([])
            self.assertTrue(groups, "%s before any envoy_report" % e["type"])
            groups[-1].append(e)
        return groups

    def event_problems(self, e, x, cid, peer, where):
        p = []
        for k, v in (("listener", "envoy"), ("direction", "up"),
                     ("conn.id", cid), ("conn.peer", peer)):
            if e.get(k) != v:
                p.append("%s: %s is %r, want %r" % (where, k, e.get(k), v))
        if not isinstance(e.get("id"), str) or not e["id"]:
            p.append("%s: id %r" % (where, e.get("id")))
        if not RECEIVED.match(str(e.get("received"))):
            p.append("%s: received %r" % (where, e.get("received")))
        for k, v in x.items():
            if k.startswith("_"):
                continue
            if k not in e:
                p.append("%s: no %s (want %r)" % (where, k, v))
                continue
            p += match(e[k], v, "%s %s" % (where, k))
        allowed = BASE_KEYS | set(x)
        if x["type"] == "envoy_report":
            allowed.add("spool.name")
        extra = sorted(set(e) - allowed)
        if extra:
            p.append("%s: unexpected keys %s" % (
                where, ", ".join("%s=%r" % (k, e[k]) for k in extra)))
        return p

    def check_report(self, group, report, target, cid, peer):
        """group: the events of one report; returns its spool.name."""
        exp = report.expected(target)
        self.assertEqual([e["type"] for e in group], [x["type"] for x in exp])
        problems = []
        for i, (e, x) in enumerate(zip(group, exp)):
            problems += self.event_problems(e, x, cid, peer,
                                            "event %d (%s)" % (i, x["type"]))
        self.assertEqual(problems[:25], [], "%d problem(s)" % len(problems))
        name = group[0].get("spool.name")
        self.assertIsInstance(name, str)
        return name

    # -- spool files ------------------------------------------------------

    def spool_files(self, writing=False):
        """{base: {suffix: bytes}}: every name as designed, mode 0640, no
        temporary left; with writing (while waiting for the files), the
        temporaries still being written (.NAME.SUFFIX.tmp) are passed over,
        not taken for leftovers."""
        out = {}
        for name in os.listdir(self.spool):
            if writing and name.startswith(".") and name.endswith(".tmp"):
                continue
            m = SPOOL_NAME.match(name)
            self.assertTrue(m, "unexpected file in spool_dir: %r" % name)
            path = os.path.join(self.spool, name)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640, name)
            with open(path, "rb") as f:
                out.setdefault(m.group(1), {})[m.group(2)] = f.read()
        return out

    def wait_spool(self, n):
        """The spool files once there are n of them (exactly n)."""
        def count():
            try:
                return len([f for f in os.listdir(self.spool)
                            if not f.startswith(".")])
            except FileNotFoundError:
                return 0
        wait_for(lambda: count() >= n, 10)
        files = self.spool_files()
        self.assertEqual(sum(len(v) for v in files.values()), n,
                         {b: sorted(v) for b, v in files.items()})
        return files

    def assert_spooled(self, content, msg, what):
        forms = ep.spool_forms(msg)
        if content not in forms:
            self.fail("%s spool file: %s" % (what, first_diff(content, forms[0])))

    def check_spool(self, files, req, resp, report=None):
        """One base's files: .request, .response (unless resp is None) and
        .xml (for a report)."""
        self.assertIn("request", files)
        self.assert_spooled(files["request"], req, ".request")
        if resp is None:
            self.assertNotIn("response", files)
        else:
            self.assertIn("response", files)
            self.assert_spooled(files["response"], resp, ".response")
        if report is None:
            self.assertNotIn("xml", files)
        else:
            self.assertIn("xml", files)
            self.assertTrue(files["xml"] == report.xml,
                            ".xml: " + first_diff(files["xml"], report.xml))

    def check_base_time(self, base, t0, t1, utc_offset=None):
        """The base name's time is local time between t0 and t1."""
        tm = time.strptime(base[:19], "%Y-%m-%dT%H:%M:%S")
        if utc_offset is None:
            t = time.mktime(tm)
        else:
            t = calendar.timegm(tm) - utc_offset
        self.assertGreaterEqual(t, int(t0) - 1, base)
        self.assertLessEqual(t, t1 + 1, base)

    # -- log --------------------------------------------------------------

    def check_ack(self, d, cid, ids, nth=0):
        """The nth 'Enphase acknowledged' line of connection cid lists ids
        (cut short with ... when long)."""
        rx = re.compile(ACK % cid)
        found = wait_for(lambda: len(rx.findall(d.log())) > nth
                         and rx.findall(d.log()), 5)
        self.assertTrue(found, "no acknowledgement line for conn %d:\n%s"
                        % (cid, d.log()))
        n, listed = found[nth]
        self.assertEqual(int(n), len(ids))
        listed = listed.strip()
        if listed.endswith("..."):
            shown = listed[:-3].split()
            self.assertLess(len(shown), len(ids))
            self.assertGreater(len(shown), 0)
            self.assertEqual(shown, ids[:len(shown)])
        else:
            self.assertEqual(listed.split(), ids)

    def check_report_log(self, d, cid, base, k):
        d.wait_log(r"conn %d \[envoy\]: report %s: %d event\(s\)\n"
                   % (cid, re.escape(base), k))


class TestReports(EnvoyTest):
    def test_2012_report_events_spool_and_ack(self):
        report = ep.fixture_2012()
        real = [tuple(l.split(": ", 1)) for l in ep.fixture(
            "REAL_oddbit_2012_response_headers.txt").decode().splitlines()
            if ": " in l and not l.startswith("HTTP/")]
        real = [(k, v) for k, v in real
                if k not in ("Content-Length", "Content-Type", "Connection")]
        enphase = ep.Enphase(headers=real, fixed_xml=ep.fixture(
            "REAL_oddbit_2012_perf_report_response.xml.txt"))
        # Spool names are in local time: UTC+5:30 here.
        _, d = self.start(enphase, env={"TZ": "XYZ-5:30"})
        self.assertEqual(stat.S_IMODE(os.stat(self.spool).st_mode), 0o750)
        req = ep.perf_request(report)
        t0 = time.time()
        c = self.client(d)
        resp = c.exchange(req)
        self.assertEqual(resp.status, 200)
        self.assertEqual(c.finish(), b"")
        t1 = time.time()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        self.assertEqual(len(uc.requests), 1)

        evs = self.wait_events(29, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        counts = {}
        for e in group:
            counts[e["type"]] = counts.get(e["type"], 0) + 1
        self.assertEqual(counts, {"envoy_report": 1, "envoy_device": 20,
                                  "envoy_event": 8})
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(3)
        self.assertEqual(list(files), [base])
        self.check_spool(files[base], req, uc.responses[0], report)
        self.check_base_time(base, t0, t1, utc_offset=5 * 3600 + 1800)
        self.assertTrue(files[base]["response"].endswith(ep.fixture(
            "REAL_oddbit_2012_perf_report_response.xml.txt")))

        # The design's words, not only the model's.
        rep = group[0]
        self.assertEqual(rep["envoy.serial"], "123456115374")
        self.assertEqual(rep["report.time"], "2012-02-13T11:56:42Z")
        self.assertEqual(rep["report.webcomm_version"], "3.0")
        self.assertEqual(rep["http.target"],
                         "/emu_reports/performance_report?webcomm_version=3.0")
        dev = next(e for e in group if e["type"] == "envoy_device")
        self.assertEqual(dev["device.eqid"], "123456105041")
        self.assertEqual(dev["device.channels"], [
            {"eqid": "123456105041.1", "channel_type": 1,
             "condition_flags": 16, "observed_flags": 0, "control_bits": 0}])
        ev = {e["event.id"]: e for e in group if e["type"] == "envoy_event"}
        self.assertEqual(sorted(ev), list(range(221, 229)))
        self.assertEqual((ev[226]["event.state_name"], ev[226]["event.name"]),
                         ("raised", "grid instability"))
        self.assertNotIn("event.correlation_id", ev[226])
        self.assertEqual((ev[227]["event.state_name"], ev[227]["event.name"]),
                         ("one-shot", "power-on reset"))
        self.assertEqual(ev[221]["event.name"], "microinverter sleeping")
        self.assertEqual(ev[221]["event.time"], "2012-02-13T11:55:18Z")
        self.assertEqual(ev[221]["event.serial_num"], "123456102635")
        self.assertTrue(all(e["envoy.serial"] == "123456115374" for e in group))

        self.check_ack(d, cid, [str(i) for i in range(221, 229)])
        self.check_report_log(d, cid, base, 29)
        self.assertIn("Enphase acknowledged 8 event(s): "
                      "221 222 223 224 225 226 227 228", d.log())
        self.assertNotIn("malformed HTTP", d.log())

    def test_460_wire_vectors_byte_exact(self):
        raw_req = ep.fixture("SYNTHETIC_request_performance_report.http.bin")
        raw_resp = ep.fixture("SYNTHETIC_response_performance_report.http.bin")
        report = ep.fixture_460()
        enphase, d = self.start(ep.Enphase(raw=raw_resp))
        c = self.client(d)
        c.send(raw_req)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        self.assertEqual(bytes(c.got), raw_resp)
        self.assertEqual(bytes(uc.received), raw_req)

        evs = self.wait_events(7, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        self.assertEqual([e["type"] for e in group],
                         ["envoy_report", "envoy_interval", "envoy_reading"] +
                         ["envoy_event"] * 4)
        req = ep.parse_message(raw_req)
        base = self.check_report(group, report, req.target, cid, c.peer)
        rd = group[2]
        self.assertEqual([rd[k] for k in (
            "reading.ac_v", "reading.ac_hz", "reading.dc_v", "reading.dc_a",
            "reading.degc", "reading.unknown_6", "reading.unknown_7",
            "reading.energy_ws")],
            [250.102, 59.979, 27.782, 7.462, 49, 0, 0, 67535])
        self.assertEqual(rd["reading.time"], "2015-07-11T20:35:44Z")
        self.assertEqual(group[1]["interval.energy_ws"], 65439)
        self.assertEqual(group[1]["interval.end_time"], "2015-07-11T20:35:00Z")
        self.assertEqual(group[0]["report.webcomm_version"], "4.6.0")
        self.assertEqual(group[0]["envoy.emu_region"], "NA")
        self.assertEqual(group[6]["event.message_params"], {"value": "true"})
        self.assertEqual(group[6]["event.message_key"], "1")
        self.assertNotIn("event.name", group[6])          # 10031: unknown code
        self.assertEqual(group[4]["event.name"], "DC power too low")

        files = self.wait_spool(3)
        self.assertEqual(list(files), [base])
        self.check_spool(files[base], req, ep.parse_message(raw_resp, True), report)
        self.assertEqual(files[base]["xml"], ep.fixture("SYNTHETIC_perf_report_4.6.0.xml"))
        self.check_ack(d, cid, ["3000001", "3000002", "3000003", "3000004"])
        self.check_report_log(d, cid, base, 7)

    def test_generated_report_in_small_pieces_both_ways(self):
        # Hundreds of intervals and readings, random formatting, the
        # version only in the query string, + for spaces; sent in random
        # pieces, answered chunked in random pieces.
        report = ep.generated(6, intervals=300, readings=300, events=120,
                              devices=12, root_version=None,
                              query_version="4.1.0")
        rnd = random.Random(61)
        enphase, d = self.start(ep.Enphase(style="chunked", rnd=random.Random(62)))
        req = ep.perf_request(report, plus=True)
        c = self.client(d, rnd)
        resp = c.exchange(req)
        self.assertEqual(resp.status, 200)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        n = 1 + 12 + 300 + 300 + 120
        evs = self.wait_events(n, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        self.assertEqual(group[0]["report.webcomm_version"], "4.1.0")
        self.assertEqual(group[0]["envoy.timezone"], "Europe/Zürich")
        self.assertEqual(group[0]["envoy.site_name"], "Joe's \"roof\" & <shed>")
        self.assertTrue(any(e.get("reading.degc", 0) < 0 for e in group))
        files = self.wait_spool(3)
        self.assertEqual(list(files), [base])
        self.check_spool(files[base], req, uc.responses[0], report)
        self.check_ack(d, cid, report.event_ids)
        self.check_report_log(d, cid, base, n)

    def test_form_field_body_among_other_fields(self):
        # Only the field named body is the report; a %26 or %3D inside
        # another field's value does not split fields.
        report = ep.fixture_460()
        payload = ep.form_body(report.xml, plus=True,
                               before=[("nobody", "1"), ("a", "b%26body%3Dx")],
                               after=[("body_", "2")])
        req = ep.request(ep.PERF_TARGET % "4.6.0", payload)
        enphase, d = self.start()
        c = self.client(d)
        c.exchange(req)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(7, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(3)
        self.check_spool(files[base], req, uc.responses[0], report)

    def test_concurrent_envoys(self):
        enphase, d = self.start(ep.Enphase(rnd=random.Random(7)))
        reports = [ep.generated(100 + i, intervals=40, readings=40, events=15,
                                devices=3) for i in range(6)]
        clients = [None] * len(reports)
        errors = []

        def post(i):
            try:
                c = self.client(d, random.Random(i))
                clients[i] = (c, ep.perf_request(reports[i]))
                c.exchange(clients[i][1])
                c.finish()
            except Exception as e:
                errors.append(e)
        ts = [threading.Thread(target=post, args=(i,)) for i in range(len(reports))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30 * SLOW)
        self.assertEqual(errors, [])
        ucs = enphase.wait(len(reports))
        n = sum(1 + 3 + 40 + 40 + 15 for _ in reports)
        evs = self.wait_events(n, len(reports))
        files = self.wait_spool(3 * len(reports))
        by_sent = {bytes(uc.received): uc for uc in ucs}
        for (c, req), report in zip(clients, reports):
            uc = by_sent[bytes(c.sent)]
            self.check_relay(c, uc)
            cid, mine = self.conn_events(evs, c.peer)
            (group,) = self.by_report(mine)
            base = self.check_report(group, report, req.target, cid, c.peer)
            self.check_spool(files[base], req, uc.responses[0], report)
            self.check_ack(d, cid, report.event_ids)
            self.check_report_log(d, cid, base, 99)


class TestHttp(EnvoyTest):
    def test_two_requests_on_one_keep_alive_connection(self):
        r1, r2 = ep.fixture_2012(), ep.fixture_460()
        q1 = ep.perf_request(r1, connection="keep-alive")
        q2 = ep.perf_request(r2, connection=None)
        enphase, d = self.start()
        c = self.client(d)
        self.assertEqual(c.exchange(q1).status, 200)
        self.assertEqual(c.exchange(q2).status, 200)
        c.finish()
        (uc,) = enphase.wait(1)
        self.assertEqual(len(uc.requests), 2)
        self.check_relay(c, uc)
        evs = self.wait_events(29 + 7, 1)
        cid, mine = self.conn_events(evs, c.peer)
        g1, g2 = self.by_report(mine)
        b1 = self.check_report(g1, r1, q1.target, cid, c.peer)
        b2 = self.check_report(g2, r2, q2.target, cid, c.peer)
        self.assertNotEqual(b1, b2)
        files = self.wait_spool(6)
        self.assertEqual(sorted(files), sorted([b1, b2]))
        self.check_spool(files[b1], q1, uc.responses[0], r1)
        self.check_spool(files[b2], q2, uc.responses[1], r2)
        self.check_ack(d, cid, r1.event_ids, 0)
        self.check_ack(d, cid, r2.event_ids, 1)
        self.check_report_log(d, cid, b1, 29)
        self.check_report_log(d, cid, b2, 7)

    def test_pipelined_requests_chunked_trailer_and_task_complete(self):
        # Three requests in one send: the tap frames each one.
        rnd = random.Random(3)
        r1 = ep.fixture_460()
        r3 = ep.generated(33, intervals=50, readings=50, events=10, devices=2)
        q1 = ep.perf_request(r1, connection="keep-alive", chunked=rnd)
        q2 = ep.request(ep.TASK_TARGET, b'{"task_id": 9, "ok": true}',
                        connection="keep-alive", chunked=rnd,
                        trailer=[("X-Checksum", "abc")])
        q3 = ep.perf_request(r3)
        enphase, d = self.start(ep.Enphase(style="chunked"))
        c = self.client(d)
        c.send(q1.wire + q2.wire + q3.wire)
        resps = [c.final()[0] for _ in range(3)]
        self.assertEqual([r.status for r in resps], [200] * 3)
        c.finish()
        (uc,) = enphase.wait(1)
        self.assertEqual(len(uc.requests), 3)
        self.check_relay(c, uc)
        evs = self.wait_events(7 + 1 + 2 + 50 + 50 + 10, 1)
        cid, mine = self.conn_events(evs, c.peer)
        g1, g3 = self.by_report(mine)
        b1 = self.check_report(g1, r1, q1.target, cid, c.peer)
        b3 = self.check_report(g3, r3, q3.target, cid, c.peer)
        files = self.wait_spool(3 + 2 + 3)
        self.check_spool(files[b1], q1, uc.responses[0], r1)
        self.check_spool(files[b3], q3, uc.responses[2], r3)
        (b2,) = set(files) - {b1, b3}
        # The task_complete: its headers and inflated body (where its
        # trailer field goes, the design does not say).
        self.assertTrue(files[b2]["request"].startswith(ep.spool_head(q2)))
        self.assertIn(ep.spool_body(q2), files[b2]["request"])
        self.assertNotIn("xml", files[b2])
        self.assert_spooled(files[b2]["response"], uc.responses[1], ".response")

    def test_head_request_then_report(self):
        # The answer to a HEAD has a Content-Length but no body: the next
        # answer on the connection is framed right all the same.
        report = ep.fixture_460()
        q1 = ep.build("HEAD /emu_reports/ping HTTP/1.1",
                      [("Host", ep.HOST), ("Accept", "*/*")], b"")
        q2 = ep.perf_request(report)
        enphase, d = self.start()
        c = self.client(d)
        r1 = c.exchange(q1)
        self.assertEqual((r1.status, r1.body), (200, b""))
        self.assertEqual(r1.header("Content-Length"), "3")
        c.exchange(q2)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(7, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, q2.target, cid, c.peer)
        files = self.wait_spool(5)
        self.check_spool(files[base], q2, uc.responses[1], report)
        (b1,) = set(files) - {base}
        self.assertEqual(files[b1]["request"], ep.spool_head(q1))
        self.assertEqual(files[b1]["response"], ep.spool_head(uc.responses[0]))
        self.check_ack(d, cid, report.event_ids)
        self.assertNotIn("malformed HTTP", d.log())

    def test_header_names_and_values_in_any_case(self):
        report = ep.fixture_2012()
        body = zlib.compress(ep.form_body(report.xml))
        headers = [("accept", "*/*"), ("CONTENT-TYPE", "Application/X-Deflate"),
                   ("transfer-encoding", "Chunked"), ("connection", "Close"),
                   ("HOST", ep.HOST)]
        req = ep.build("POST %s HTTP/1.1" % (ep.PERF_TARGET % "3.0"), headers,
                       body, ep.chunk(body, random.Random(8)))
        enphase, d = self.start(ep.Enphase(headers=[("content-encoding", "identity")]))
        c = self.client(d)
        c.exchange(req)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(29, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(3)
        self.check_spool(files[base], req, uc.responses[0], report)

    def test_chunked_request_body(self):
        report = ep.fixture_2012()
        req = ep.perf_request(report, chunked=random.Random(5))
        self.assertIn(b"Transfer-Encoding: chunked", req.head)
        # Answered without Content-Length: the body ends with the stream.
        enphase, d = self.start(ep.Enphase(style="eof"))
        c = self.client(d, random.Random(6))
        c.exchange(req)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(29, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(3)
        self.assertIn(b"\nTransfer-Encoding = chunked\n", files[base]["request"])
        self.check_spool(files[base], req, uc.responses[0], report)
        self.check_ack(d, cid, report.event_ids)

    def test_expect_100_continue(self):
        report = ep.fixture_460()
        req = ep.perf_request(report, expect=True)
        enphase, d = self.start(ep.Enphase(style="chunked"))
        c = self.client(d)
        c.send(req.head)
        interim = c.response()
        self.assertEqual(interim.wire, b"HTTP/1.1 100 Continue\r\n\r\n")
        c.send(req.rest)
        final, more = c.final()
        self.assertEqual((final.status, more), (200, []))
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(7, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(3)
        self.assertIn(b"\nExpect = 100-continue\n", files[base]["request"])
        # The final response only, not the 100.
        self.check_spool(files[base], req, uc.responses[0], report)
        self.assertTrue(files[base]["response"].startswith(b"HTTP/1.1 200 OK\n"))
        self.check_ack(d, cid, report.event_ids)

    def over_max_body(self, q, why=None):
        """q sent on a connection of a daemon with max_body 64K, then a good
        report on another: q relayed exactly, no event (but an undecodable
        one with error why, if given), one warning; the files of q returned
        ({suffix: bytes}, maybe empty)."""
        report = ep.fixture_460()
        good = ep.perf_request(report)
        enphase, d = self.start(ep.Enphase(), "envoy.max_body=64K")
        clients = []
        for i, req in enumerate((q, good)):
            c = self.client(d, random.Random(i) if len(req.wire) > 100_000 else None)
            self.assertEqual(c.exchange(req).status, 200)
            c.finish()
            clients.append(c)
            enphase.wait(i + 1)
        ucs = enphase.wait(2)
        for c, uc in zip(clients, ucs):
            self.check_relay(c, uc)
        evs = self.wait_events(7, 2, 1 if why else 0)
        bad, mine = self.conn_events(evs, clients[0].peer)
        self.assertEqual([(e["conn.id"], e["reason"], e["error"]) for e in evs
                          if e["type"] == "undecodable"],
                         [(bad, "bad-report", why)] if why else [])
        self.assertEqual(mine, [], "events from a message over max_body")
        cid, mine = self.conn_events(evs, clients[1].peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, good.target, cid, clients[1].peer)
        files = wait_for(lambda: "response" in self.spool_files(True).get(base, {})
                         and self.spool_files(True), 10)
        self.assertTrue(files, self.spool_files(True))
        self.check_spool(files[base], good, ucs[1].responses[0], report)
        # One warning line for the message over the limit.
        log = d.log()
        lines = re.findall(r"(?m)^.* warn: conn %d \[envoy\][^\n]*$" % bad, log)
        self.assertEqual(len(lines), 1, log)
        self.assertNotIn("malformed HTTP", log)
        others = [f for b, f in files.items() if b != base]
        for f in others:
            self.assertNotIn("xml", f)
        return ucs[0], [f for f in others if "request" in f]

    def test_body_over_max_body_on_the_wire(self):
        # 1 MB on the wire (stored, not compressed), max_body 64K: no
        # .request, no .xml (the answer is a message of its own: its
        # .response is not ruled out).
        report = ep.fixture_460()
        rnd = random.Random(9)
        pad = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                      for _ in range(1_000_000)).encode()
        big = ep.request(ep.PERF_TARGET % "4.6.0",
                         ep.form_body(report.xml) + b"&pad=" + pad, level=0)
        self.assertGreater(len(big.body), 1_000_000)
        _, spooled = self.over_max_body(big)
        self.assertEqual(spooled, [])

    def test_body_over_max_body_once_inflated(self):
        # A few KB on the wire, 2 MB once inflated, max_body 64K: spooled
        # with its body as received, in base64, and an undecodable event
        # says why there are no readings (deye-mitm.conf.5, max_body).
        report = ep.fixture_460()
        bomb = ep.request(ep.PERF_TARGET % "4.6.0",
                          ep.form_body(report.xml) + b"&pad=" + b"A" * 2_000_000)
        self.assertLess(len(bomb.body), 16 * 1024)
        uc, spooled = self.over_max_body(
            bomb, "body inflates to more than max_body")
        (f,) = spooled
        self.assertEqual(f["request"],
                         ep.spool_head(bomb) + base64.encodebytes(bomb.body))
        self.assert_spooled(f["response"], uc.responses[0], ".response")

    def test_response_over_max_body(self):
        # The answer is over the limit: relayed, no .response; the request
        # is captured and decoded as usual.
        report = ep.fixture_460()
        blob = random.Random(4).randbytes(300_000)
        enphase, d = self.start(ep.Enphase(reply=("application/octet-stream",
                                                  blob)), "envoy.max_body=64K")
        req = ep.perf_request(report)
        c = self.client(d)
        self.assertEqual(c.exchange(req).body, blob)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(7, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(2)
        self.check_spool(files[base], req, None, report)
        lines = re.findall(r"(?m)^.* warn: conn %d \[envoy\][^\n]*$" % cid, d.log())
        self.assertEqual(len(lines), 1, d.log())

    def check_undecodable(self, ev, cid, peer, direction, reason, head,
                          http_error=None):
        """An undecodable event of the envoy tap; returns its error.at."""
        self.assertEqual((ev["type"], ev["listener"], ev["conn.id"],
                          ev["conn.peer"], ev["direction"], ev["protocol"],
                          ev["reason"]),
                         ("undecodable", "envoy", cid, peer, direction,
                          "envoy", reason), ev)
        self.assertEqual(ev["head.hex"], head[:64].hex())
        self.assertIsInstance(ev["http.error"], str)
        if http_error is not None:
            self.assertEqual(ev["http.error"], http_error)
        self.assertIs(type(ev["error.at"]), int)
        return ev["error.at"]

    def test_malformed_requests_relayed_logged_and_survived(self):
        rnd = random.Random(11)
        body = ep.request("/x", b"body=x").body
        head = ("POST /emu_reports/performance_report?webcomm_version=3.0 HTTP/1.1"
                "\r\nContent-Type: application/x-deflate\r\n")
        chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
        # (name, bytes, the design's http.error or None, the upstream's
        # parser rejects it too, the log's words, reason)
        bad = "malformed HTTP"
        tls = r"TLS, not HTTP \(see the stunnel set-up\)"
        cases = [
            # (which error: see test_not_http_is_a_bad_start_line)
            ("garbage", bytes(rnd.getrandbits(8) for _ in range(3000)) + b"\r\n\r\n",
             None, True, bad, "malformed-http"),
            ("TLS", bytes.fromhex("16030100c4010000c00303") + rnd.randbytes(190),
             None, True, tls, "tls"),
            ("bad Content-Length",
             (head + "Content-Length: 7x9\r\n\r\n").encode() + body,
             "bad Content-Length", True, bad, "malformed-http"),
            ("two Content-Lengths",
             (head + "Content-Length: %d\r\nContent-Length: 3\r\n\r\n"
              % len(body)).encode() + body,
             "bad Content-Length", True, bad, "malformed-http"),
            ("negative Content-Length",
             (head + "Content-Length: -5\r\n\r\n").encode() + body,
             "bad Content-Length", True, bad, "malformed-http"),
            ("bad chunk size", chunked + b"zz\r\n" + body + b"\r\n0\r\n\r\n",
             "bad chunk", True, bad, "malformed-http"),
            ("chunk without CRLF",
             chunked + b"%x\r\n" % len(body) + body + b"XX0\r\n\r\n",
             "bad chunk", True, bad, "malformed-http"),
            ("header without colon", (head + "Accept */*\r\n\r\n").encode(),
             None, True, bad, "malformed-http"),
            ("head too big",
             ("POST /emu_reports/task_complete HTTP/1.1\r\nX-Long: %s\r\n"
              "Content-Length: 0\r\n\r\n" % ("a" * 40000)).encode(),
             None, False, bad, "malformed-http"),
            ("truncated body",
             (head + "Content-Length: 1000\r\n\r\n").encode() + body,
             "truncated", False, bad, "malformed-http"),
        ]
        enphase, d = self.start()
        clients = []
        for i, (name, data, _, rejects, _, _) in enumerate(cases):
            c = self.client(d)
            c.send(data)
            c.finish()
            clients.append(c)
            (uc,) = enphase.wait(i + 1)[i:]
            if rejects:
                self.assertIsNotNone(uc.error, name)
            self.check_relay(c, uc)
        report = ep.fixture_460()
        good = ep.perf_request(report)
        c = self.client(d)
        c.exchange(good)
        c.finish()
        evs = self.wait_events(7, len(cases) + 1, len(cases))
        log = d.log()
        for (name, data, err, _, words, reason), bc in zip(cases, clients):
            with self.subTest(case=name):
                cid, mine = self.conn_events(evs, bc.peer)
                self.assertEqual(mine, [])
                found = re.findall(
                    r"conn %d \[envoy\] up: %s \(([^)\n]+)\) at byte (\d+), "
                    r"relayed without decoding" % (cid, words), log)
                self.assertEqual(len(found), 1, log)
                self.assertLessEqual(int(found[0][1]), len(data))
                (ev,) = [e for e in evs if e["type"] == "undecodable"
                         and e["conn.id"] == cid]
                at = self.check_undecodable(ev, cid, bc.peer, "up", reason,
                                            data, err)
                self.assertEqual((ev["http.error"], at),
                                 (found[0][0], int(found[0][1])))
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, good.target, cid, c.peer)
        files = wait_for(lambda: "response" in self.spool_files(True).get(base, {})
                         and self.spool_files(True), 10)
        self.assertTrue(files, self.spool_files(True))
        # Nothing of the bad requests; the upstream's answers to them are
        # well-formed messages: their .response alone is not ruled out.
        self.assertEqual([b for b, f in files.items()
                          if "request" in f or "xml" in f], [base])

    def test_garbage_after_a_good_request_on_one_connection(self):
        report = ep.fixture_460()
        q1 = ep.perf_request(report, connection="keep-alive")
        garbage = b"\x00\x01GARBAGE \xff\xfe not http\r\n\r\n" * 20
        enphase, d = self.start()
        c = self.client(d)
        c.exchange(q1)
        c.send(garbage)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        self.assertEqual(len(uc.requests), 1)
        evs = self.wait_events(7, 1, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, q1.target, cid, c.peer)
        files = wait_for(lambda: "response" in self.spool_files(True).get(base, {})
                         and self.spool_files(True), 10)
        self.check_spool(files[base], q1, uc.responses[0], report)
        self.assertEqual([b for b, f in files.items()
                          if "request" in f or "xml" in f], [base])
        found = re.findall(MALFORMED % (cid, "up"), d.log())
        self.assertEqual(len(found), 1, d.log())
        self.assertGreaterEqual(int(found[0][1]), len(q1.wire))
        self.assertLessEqual(int(found[0][1]), len(q1.wire) + len(garbage))
        (ev,) = [e for e in evs if e["type"] == "undecodable"]
        at = self.check_undecodable(ev, cid, c.peer, "up", "malformed-http",
                                    q1.wire, "bad start line")
        self.assertEqual(at, int(found[0][1]))

    def test_malformed_response_relayed_request_still_captured(self):
        report = ep.fixture_460()
        garbage = b"SSH-2.0-OpenSSH_9.2\r\n" + bytes(range(256)) * 4
        enphase, d = self.start(ep.Enphase(garbage=garbage))
        req = ep.perf_request(report)
        c = self.client(d)
        c.send(req.wire)
        self.assertEqual(c.finish(), garbage)
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(7, 1, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(2)
        self.check_spool(files[base], req, None, report)
        found = re.findall(MALFORMED % (cid, "down"), d.log())
        self.assertEqual(len(found), 1, d.log())
        self.assertNotIn("Enphase acknowledged", d.log())
        (ev,) = [e for e in evs if e["type"] == "undecodable"]
        self.check_undecodable(ev, cid, c.peer, "down", "malformed-http",
                               garbage)

    def test_not_http_is_a_bad_start_line(self):
        # A stream whose first line is no request or status line is
        # "bad start line", wherever its later lines go wrong.
        banner = b"SSH-2.0-OpenSSH_9.2\r\n" + bytes(range(256))
        enphase, d = self.start(ep.Enphase(garbage=banner))
        c = self.client(d)
        c.send(banner)
        c.finish()
        c = self.client(d)
        c.send(ep.perf_request(ep.fixture_460()).wire)
        c.finish()
        enphase.wait(2)
        evs = self.wait_events(7, 2, 2)
        und = sorted((e["direction"], e["http.error"]) for e in evs
                     if e["type"] == "undecodable")
        self.assertEqual(und, [("down", "bad start line"),
                               ("up", "bad start line")])
        self.assertEqual(len(re.findall(r"malformed HTTP \(bad start line\) "
                                        r"at byte \d+", d.log())), 2, d.log())

    def bad_reports_then_good(self, bad):
        """The requests bad, then the 4.6.0 report, on one keep-alive
        connection: relayed exactly, the report decoded, one undecodable
        bad-report event per bad request in order (checked against its
        conn.id, direction and protocol).  Returns (daemon, conn.id, the
        requests, upstream conn, the undecodable events, report base)."""
        report = ep.fixture_460()
        reqs = list(bad) + [ep.perf_request(report)]
        enphase, d = self.start()
        c = self.client(d)
        for q in reqs:
            self.assertEqual(c.exchange(q).status, 200)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        evs = self.wait_events(7, 1, len(bad))
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, reqs[-1].target, cid, c.peer)
        und = [e for e in evs if e["type"] == "undecodable"]
        for ev in und:
            self.assertEqual((ev["listener"], ev["conn.id"], ev["conn.peer"],
                              ev["direction"], ev["protocol"], ev["reason"]),
                             ("envoy", cid, c.peer, "up", "envoy", "bad-report"))
            d.wait_log(r"conn %d \[envoy\]: report %s not decoded \(%s\)"
                       % (cid, re.escape(ev["spool.name"]),
                          re.escape(ev["error"])))
        self.check_report_log(d, cid, base, 7)
        return d, cid, reqs, uc, und, base

    def test_report_that_does_not_parse(self):
        # Not well-formed, and well-formed but not a perf_report: logged,
        # an undecodable event each, the files still written; the next
        # report on the connection is decoded.
        report = ep.fixture_460()
        broken = report.xml[:-40]
        other = b'<?xml version="1.0"?>\n<perf_report_response status="x"/>\n'
        bad = [ep.request(ep.PERF_TARGET % "4.6.0", ep.form_body(x),
                          connection="keep-alive") for x in (broken, other)]
        d, cid, reqs, uc, und, base = self.bad_reports_then_good(bad)
        files = self.wait_spool(9)
        self.check_spool(files[base], reqs[2], uc.responses[2], report)
        self.assertEqual(len(und), 2)
        for ev, q, x, resp in zip(und, reqs, (broken, other), uc.responses):
            self.assertIsInstance(ev["error"], str)
            name = ev["spool.name"]
            self.assertIn(name, files)
            self.check_spool(files[name], q, resp, ep.Report(x, {}, None, []))
        self.assertEqual(len({e["spool.name"] for e in und} | {base}), 3)

    def test_report_that_cannot_be_read(self):
        # Each of these makes an undecodable bad-report event naming why,
        # and its request file; a report with a DOCTYPE (entities) or
        # more elements than a real one is refused before it costs memory.
        # The good report after them is decoded.
        target = ep.PERF_TARGET % "4.6.0"
        bomb = (b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a '" +
                b"a" * 1000 + b"'>" + b"".join(
                    b"<!ENTITY a%d '%s'>" % (i + 1, (b"&a%d;" % i if i else
                                                     b"&a;") * 10)
                    for i in range(6)) +
                b"]><perf_report><envoy serial_num='1'/><event id='1'>"
                b"<message_params>&a6;</message_params></event></perf_report>")
        many = (b"<perf_report><envoy serial_num='1'/>" +
                b"<interval/>" * 20000 + b"</perf_report>")
        cases = [
            (ep.request(target, b"\x78\x9c" + b"\x00" * 40, deflate=False,
                        connection="keep-alive"),
             "body does not inflate"),
            (ep.request(target, b"report=1&other=2", connection="keep-alive"),
             "no body field"),
            (ep.request(target, ep.form_body(bomb), connection="keep-alive"),
             "a DOCTYPE is not allowed"),
            (ep.request(target, ep.form_body(many), connection="keep-alive"),
             "more than 20000 elements"),
        ]
        d, cid, reqs, uc, und, base = self.bad_reports_then_good(
            [q for q, _ in cases])
        # Request and response each, and .xml for the two with a body field.
        files = self.wait_spool(2 * len(reqs) + 3)
        self.assertEqual([e["error"] for e in und], [w for _, w in cases])
        for ev in und:
            self.assertIn("request", files[ev["spool.name"]])
        self.assertEqual(files[und[2]["spool.name"]]["xml"], bomb)

    def test_answers_after_more_than_64_requests(self):
        # 100 requests pipelined; the upstream answers once it has them
        # all.  The tap keeps at most 64 names waiting for their answer:
        # those 64 (at least) still pair up, the rest get names of their
        # own, and every message has its file.
        n = 100
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        got = []

        def upstream(conn):
            data = b""
            while data.count(b"\r\n\r\n") < n:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            got.append(data)
            conn.sendall(answer * n)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass

        up = self.server(upstream)
        reqs = b"".join(b"GET /emu_reports/ping?n=%d HTTP/1.1\r\nHost: %s\r\n"
                        b"\r\n" % (i, ep.HOST.encode()) for i in range(n))
        enphase, d = self.start(upstream=up.addr)
        s = d.connect("envoy")
        s.sendall(reqs)
        s.shutdown(socket.SHUT_WR)
        back = b""
        s.settimeout(10 * SLOW)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            back += chunk
        s.close()
        self.assertEqual(back, answer * n)
        self.assertEqual(got, [reqs])
        files = self.wait_spool(2 * n)
        pairs = [f for f in files.values() if len(f) == 2]
        self.assertGreaterEqual(len(pairs), 64, "request and response "
                                "files sharing a name")
        self.assertEqual(sum("request" in f for f in files.values()), n)
        self.assertEqual(sum("response" in f for f in files.values()), n)
        for f in pairs:
            self.assertEqual(sorted(f), ["request", "response"])

    def test_task_complete_and_other_bodies(self):
        rnd = random.Random(12)
        blob = bytes(rnd.getrandbits(8) for _ in range(300))
        reqs = [
            # Deflated, unknown content: inflated as is.
            ep.request(ep.TASK_TARGET, b'{"task_id": "42", "result": "ok"}',
                       connection="keep-alive"),
            # Binary: base64.
            ep.request(ep.TASK_TARGET, blob, deflate=False,
                       content_type="application/octet-stream",
                       connection="keep-alive"),
            # Says deflate but does not inflate: base64.
            ep.request(ep.TASK_TARGET, b"\x78\x9c" + blob, deflate=False,
                       connection="keep-alive"),
            # XML as is.
            ep.request(ep.TASK_TARGET, b"<task_complete id='7'/>",
                       deflate=False, content_type="text/xml",
                       connection="keep-alive"),
            # No Content-Type: as is.
            ep.request(ep.TASK_TARGET, b"a=1&b=2", deflate=False,
                       content_type=None, connection="keep-alive"),
            # No body at all.
            ep.build("GET /emu_reports/ping HTTP/1.1", [("Host", ep.HOST),
                     ("Connection", "close")], b""),
        ]
        enphase, d = self.start()
        c = self.client(d)
        for q in reqs:
            self.assertEqual(c.exchange(q).status, 200)
        c.finish()
        (uc,) = enphase.wait(1)
        self.check_relay(c, uc)
        self.assertEqual(len(uc.requests), len(reqs))
        evs = self.wait_events(0, 1)
        self.assertEqual([e["type"] for e in evs], ["connection"])
        files = self.wait_spool(2 * len(reqs))
        self.assertEqual(len(files), len(reqs))
        left = dict(files)
        for q, resp in zip(reqs, uc.responses):
            with self.subTest(request=q.start_line, ctype=q.header("Content-Type")):
                forms = ep.spool_forms(q)
                base = next((b for b, f in left.items()
                             if f.get("request") in forms), None)
                self.assertIsNotNone(base, "no .request file is\n%r\nfiles:\n%r"
                                     % (forms[0], [f.get("request")[:300]
                                                   for f in left.values()]))
                self.check_spool(left.pop(base), q, resp)
        b64 = base64.encodebytes(blob)
        self.assertTrue(any(b64 in f["request"] for f in files.values()))
        self.assertNotIn("malformed HTTP", d.log())
        self.assertNotIn("Enphase acknowledged", d.log())


class TestUpstreamNone(EnvoyTest):
    def test_no_answer_but_captured(self):
        # upstream = none: nobody answers; what the Envoy sent is still
        # captured (the design: "keeps reading but gives no answer").
        report = ep.fixture_460()
        _, d = self.start(upstream="none")
        req = ep.perf_request(report)
        c = self.client(d)
        c.send(req.wire)
        self.assertEqual(c.finish(), b"")
        evs = self.wait_events(7, 1)
        cid, mine = self.conn_events(evs, c.peer)
        (group,) = self.by_report(mine)
        base = self.check_report(group, report, req.target, cid, c.peer)
        files = self.wait_spool(2)
        self.check_spool(files[base], req, None, report)


class TestHec(EnvoyTest):
    def test_envoy_events_reach_hec_with_their_own_time(self):
        rx = HecReceiver()
        self.addCleanup(rx.close)
        r1, r2 = ep.fixture_2012(), ep.fixture_460()
        enphase, d = self.start(None, "hec.url=" + rx.url, "hec.token=" + rx.token,
                                "hec.flush_interval=100ms", events="none")
        q1 = ep.perf_request(r1, connection="keep-alive")
        q2 = ep.perf_request(r2)
        c = self.client(d)
        c.exchange(q1)
        c.exchange(q2)
        c.finish()
        envs = rx.wait_events(29 + 7 + 1, 10)
        envoy = [e for e in envs if e["event"]["type"].startswith("envoy_")]
        exp = r1.expected(q1.target) + r2.expected(q2.target)
        self.assertEqual([e["event"]["type"] for e in envoy],
                         [x["type"] for x in exp])
        for e, x in zip(envoy, exp):
            self.assertEqual(float(e["time"]), float(x["_time"]), x["type"])
            self.assertEqual(e["event"].get("envoy.serial"), x["envoy.serial"])
        # report and devices: report_timestamp; interval: end_date;
        # reading: date; event: event_date.
        self.assertEqual(float(envoy[9]["time"]), 1329134202)       # a device
        self.assertEqual(float(envoy[1]["time"]), 1329134118)       # event 221
        self.assertEqual([float(e["time"]) for e in envoy[29:]],
                         [1438706832, 1436646900, 1436646944, 1437837016,
                          1437837016, 1437837103, 1437836987])
        self.assertEqual(len(rx.event_ids()), len(set(rx.event_ids())))

if __name__ == "__main__":
    unittest.main()
