"""Self-tests of the HEC test receiver (hec_receiver.py): the replies a
sender will see, the events it keeps, and each scripted fault, talked to
with http.client and raw sockets on 127.0.0.1."""
import gzip
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from hec_receiver import HecReceiver, make_test_ca, parse_envelopes

PATH = "/services/collector/event"


def envelopes(*ids, **fields):
    """Concatenated envelopes for the given event ids (fields go in each event)."""
    return b"".join(json.dumps({"time": 1712596443.512, "event": dict(
        {"id": i, "type": "data"}, **fields)}).encode() for i in ids)


class ReceiverTest(unittest.TestCase):
    def setUp(self):
        self.rxs = []

    def tearDown(self):
        for rx in self.rxs:
            rx.close()
            self.assertEqual(rx.errors, [], "receiver handler errors")

    def receiver(self, **kw):
        rx = HecReceiver(**kw)
        self.rxs.append(rx)
        return rx

    def conn(self, rx, timeout=5.0):
        return http.client.HTTPConnection("127.0.0.1", rx.port, timeout=timeout)

    def post(self, rx, body, token="test-token", path=PATH, headers=None,
             conn=None, auth=None):
        """POST body; returns (status, parsed JSON reply, response headers)."""
        c = conn or self.conn(rx)
        h = {}
        if auth is not None:
            h["Authorization"] = auth
        elif token is not None:
            h["Authorization"] = "Splunk " + token
        h.update(headers or {})
        c.request("POST", path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        self.assertEqual(r.getheader("Content-Length"), str(len(data)))
        return r.status, json.loads(data), r


class TestAuthAndRouting(ReceiverTest):
    def test_token_missing_malformed_wrong(self):
        rx = self.receiver()
        st, body, r = self.post(rx, envelopes("a"), token=None)
        self.assertEqual((st, body), (401, {"text": "Token is required", "code": 2}))
        for bad in ("Bearer test-token", "Splunk", "test-token", "Splunk   "):
            st, body, _ = self.post(rx, envelopes("a"), auth=bad)
            self.assertEqual((st, body), (401, {"text": "Invalid authorization",
                                                "code": 3}), bad)
        st, body, _ = self.post(rx, envelopes("a"), token="other")
        self.assertEqual((st, body), (403, {"text": "Invalid token", "code": 4}))
        self.assertEqual(rx.events, [])
        self.assertEqual([q["status"] for q in rx.requests],
                         [401, 401, 401, 401, 401, 403])

    def test_header_and_scheme_case_insensitive(self):
        rx = self.receiver(token="s3cret")
        c = self.conn(rx)
        body = envelopes("a")
        c.putrequest("POST", PATH)
        c.putheader("authorization", "splunk s3cret")
        c.putheader("content-length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())),
                         (200, {"text": "Success", "code": 0}))
        c.close()
        self.assertEqual(rx.event_ids(), ["a"])
        self.assertEqual(rx.requests[0]["headers"]["Authorization"], "splunk s3cret")

    def test_endpoints_health_and_404(self):
        rx = self.receiver()
        for i, p in enumerate(("/services/collector", "/services/collector/event",
                               "/services/collector/event/1.0",
                               "/services/collector/event?channel=x")):
            st, body, _ = self.post(rx, envelopes(str(i)), path=p)
            self.assertEqual(st, 200, p)
        self.assertEqual(rx.event_ids(), ["0", "1", "2", "3"])
        for p in ("/services/collector/raw", "/", "/services/collectorx"):
            st, body, _ = self.post(rx, envelopes("x"), path=p)
            self.assertEqual((st, body), (404, {
                "text": "The requested URL was not found on this server.",
                "code": 404}), p)
        c = self.conn(rx)
        c.request("GET", "/services/collector/health")
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())),
                         (200, {"text": "HEC is healthy", "code": 17}))
        rx.down = True
        c.request("GET", "/services/collector/health")
        r = c.getresponse()
        self.assertEqual(r.status, 503)
        self.assertEqual(json.loads(r.read())["code"], 18)
        c.close()
        self.assertEqual(rx.event_ids(), ["0", "1", "2", "3"])


class TestBodies(ReceiverTest):
    def test_concatenated_envelopes(self):
        rx = self.receiver()
        body = envelopes("a") + b"\n" + envelopes("b") + b" \r\n\t" + \
            envelopes("c") + envelopes("d") + b"\n"
        st, reply, r = self.post(rx, body)
        self.assertEqual((st, reply), (200, {"text": "Success", "code": 0}))
        self.assertTrue(r.getheader("Content-Type").startswith("application/json"))
        self.assertEqual(rx.event_ids(), ["a", "b", "c", "d"])
        self.assertEqual(rx.events[0]["time"], 1712596443.512)
        q = rx.requests[0]
        self.assertEqual((q["method"], q["path"], q["body"], q["status"]),
                         ("POST", PATH, body, 200))

    def test_gzip(self):
        rx = self.receiver()
        body = envelopes("g1", "g2", "g3")
        st, reply, _ = self.post(rx, gzip.compress(body),
                                 headers={"Content-Encoding": "gzip"})
        self.assertEqual((st, reply["code"]), (200, 0))
        self.assertEqual(rx.event_ids(), ["g1", "g2", "g3"])
        self.assertEqual(rx.requests[0]["body"], body)  # stored decompressed
        st, reply, _ = self.post(rx, b"not gzip at all",
                                 headers={"Content-Encoding": "gzip"})
        self.assertEqual((st, reply), (400, {"text": "Invalid data format", "code": 6,
                                             "invalid-event-number": 0}))
        st, reply, _ = self.post(rx, gzip.compress(b""),
                                 headers={"Content-Encoding": "gzip"})
        self.assertEqual((st, reply["code"]), (400, 5))

    def test_no_data(self):
        rx = self.receiver()
        for body in (b"", b"  \n\r\n"):
            st, reply, _ = self.post(rx, body)
            self.assertEqual((st, reply), (400, {"text": "No data", "code": 5}))

    def test_invalid_json_keeps_prefix(self):
        rx = self.receiver()
        st, reply, _ = self.post(rx, envelopes("a", "b") + b'{"event": {"id": "c"')
        self.assertEqual((st, reply), (400, {"text": "Invalid data format",
                                             "code": 6, "invalid-event-number": 2}))
        self.assertEqual(rx.event_ids(), ["a", "b"])
        st, reply, _ = self.post(rx, envelopes("d") + b"garbage" + envelopes("e"))
        self.assertEqual(reply["invalid-event-number"], 1)
        self.assertEqual(rx.event_ids(), ["a", "b", "d"])

    def test_invalid_json_keeps_nothing_when_told(self):
        rx = self.receiver(index_before_bad=False)
        st, reply, _ = self.post(rx, envelopes("a", "b") + b"[1]")
        self.assertEqual((st, reply["code"], reply["invalid-event-number"]), (400, 6, 2))
        self.assertEqual(rx.events, [])

    def test_event_field_required_and_blank(self):
        rx = self.receiver()
        st, reply, _ = self.post(rx, envelopes("a") + b'{"time": 1, "host": "h"}')
        self.assertEqual((st, reply), (400, {"text": "Event field is required",
                                             "code": 12, "invalid-event-number": 1}))
        for blank in (b'""', b"{}", b"null"):
            st, reply, _ = self.post(rx, b'{"event": %s}' % blank)
            self.assertEqual((st, reply), (400, {
                "text": "Event field cannot be blank", "code": 13,
                "invalid-event-number": 0}), blank)
        self.assertEqual(rx.event_ids(), ["a"])

    def test_envelope_checks(self):
        cases = [
            (b'{"event": "x", "time": "soon"}', 6),
            (b'{"event": "x", "time": true}', 6),
            (b'{"event": "x", "time": NaN}', 6),
            (b'{"event": "x", "fields": {"a": {"b": 1}}}', 15),
            (b'{"event": "x", "fields": [1]}', 15),
            (b'{"event": "x", "index": "other"}', 7),
            (b'"just a string"', 6),
            (b'{"event": "caf\xc3', 6),
        ]
        for body, code in cases:
            good, err = parse_envelopes(envelopes("a") + body, indexes={"main"})
            self.assertEqual(([e["event"]["id"] for e in good], err),
                             (["a"], (code, 1)), body)
        good, err = parse_envelopes(b'{"event": "x", "time": "17.5", "index": '
                                    b'"main", "fields": {"k": ["v", "w"]}}'
                                    b'{"event": 5}', indexes={"main"})
        self.assertEqual((len(good), err), (2, None))


class TestScript(ReceiverTest):
    def test_bad_event_keeps_prefix_then_normal(self):
        rx = self.receiver()
        rx.script([("bad_event", 2)])
        st, reply, _ = self.post(rx, envelopes("a", "b", "c", "d"))
        self.assertEqual((st, reply), (400, {"text": "Invalid data format",
                                             "code": 6, "invalid-event-number": 2}))
        self.assertEqual(rx.event_ids(), ["a", "b"])
        self.assertEqual(rx.requests[0]["action"], "bad_event")
        st, reply, _ = self.post(rx, envelopes("c", "d"))
        self.assertEqual(st, 200)
        self.assertEqual(rx.event_ids(), ["a", "b", "c", "d"])

    def test_bad_event_without_prefix(self):
        rx = self.receiver(index_before_bad=False)
        rx.script([("bad_event", 1)])
        st, reply, _ = self.post(rx, envelopes("a", "b"))
        self.assertEqual((st, reply["invalid-event-number"]), (400, 1))
        self.assertEqual(rx.events, [])

    def test_statuses_and_retry_after(self):
        rx = self.receiver()
        rx.script([("status", 503, {"retry_after": 2}), ("status", 503),
                   ("status", 500), ("status", 429), ("status", 408),
                   ("status", 413), ("status", 502, {"body": b"<html>bad gateway"})])
        c = self.conn(rx)
        st, reply, r = self.post(rx, envelopes("a"), conn=c)
        self.assertEqual((st, reply), (503, {"text": "Server is busy", "code": 9}))
        self.assertEqual(r.getheader("Retry-After"), "2")
        st, reply, r = self.post(rx, envelopes("a"), conn=c)
        self.assertEqual((st, r.getheader("Retry-After")), (503, None))
        st, reply, _ = self.post(rx, envelopes("a"), conn=c)
        self.assertEqual((st, reply), (500, {"text": "Internal server error", "code": 8}))
        st, reply, _ = self.post(rx, envelopes("a"), conn=c)
        self.assertEqual((st, reply["code"]), (429, 9))
        st, reply, r = self.post(rx, envelopes("a"), conn=c)
        self.assertEqual((st, r.getheader("Connection")), (408, "close"))
        c.close()
        st, reply, r = self.post(rx, envelopes("a"))
        self.assertEqual((st, reply["text"], r.getheader("Connection")),
                         (413, "Content length too large", "close"))
        c = self.conn(rx)
        c.request("POST", PATH, body=envelopes("a"),
                  headers={"Authorization": "Splunk test-token"})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (502, b"<html>bad gateway"))
        c.close()
        self.assertEqual(rx.events, [])
        self.assertEqual(rx.pending_script(), [])
        st, reply, _ = self.post(rx, envelopes("ok"))
        self.assertEqual(st, 200)
        self.assertEqual(rx.event_ids(), ["ok"])
        self.assertEqual([q["status"] for q in rx.requests],
                         [503, 503, 500, 429, 408, 413, 502, 200])

    def test_script_applies_before_auth_and_not_to_health(self):
        rx = self.receiver()
        rx.script([("status", 503)])
        c = self.conn(rx)
        c.request("GET", "/services/collector/health")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        c.close()
        st, _, _ = self.post(rx, envelopes("a"), token="wrong")
        self.assertEqual(st, 503)
        st, _, _ = self.post(rx, envelopes("a"), token="wrong")
        self.assertEqual(st, 403)

    def test_down_mode(self):
        rx = self.receiver()
        rx.down = True
        for _ in range(3):
            st, reply, _ = self.post(rx, envelopes("a"))
            self.assertEqual((st, reply["code"]), (503, 9))
        rx.down = False
        st, _, _ = self.post(rx, envelopes("a"))
        self.assertEqual(st, 200)
        self.assertEqual(rx.event_ids(), ["a"])

    def test_hang_does_not_block_others(self):
        rx = self.receiver()
        rx.script([("hang", 2.0)])
        c1 = self.conn(rx, timeout=0.5)
        t0 = time.monotonic()
        with self.assertRaises(socket.timeout):
            self.post(rx, envelopes("h"), conn=c1)
        c1.close()
        self.assertLess(time.monotonic() - t0, 1.5)
        st, _, _ = self.post(rx, envelopes("x"))  # served while 1 still hangs
        self.assertEqual(st, 200)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(rx.event_ids(), ["x"])
        self.assertEqual(rx.connections, 2)
        self.assertEqual([(q["action"], q["status"]) for q in rx.requests],
                         [("hang", None), (None, 200)])
        self.assertEqual(rx.requests[0]["body"], envelopes("h"))

    def test_hang_then_closed(self):
        rx = self.receiver()
        rx.script([("hang", 0.3)])
        s = socket.create_connection(("127.0.0.1", rx.port), timeout=3)
        body = envelopes("h")
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Splunk test-token"
                  b"\r\nContent-Length: %d\r\n\r\n%s" % (PATH.encode(), len(body), body))
        t0 = time.monotonic()
        self.assertEqual(s.recv(100), b"")  # EOF, no reply at all
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        s.close()

    def test_hang_all(self):
        rx = self.receiver()
        rx.hang_all = 5
        c = self.conn(rx, timeout=0.3)
        with self.assertRaises(socket.timeout):
            self.post(rx, envelopes("a"), conn=c)
        c.close()
        rx.hang_all = 0
        st, _, _ = self.post(rx, envelopes("b"))
        self.assertEqual(st, 200)
        self.assertEqual(rx.event_ids(), ["b"])

    def test_reset(self):
        rx = self.receiver()
        rx.script([("reset",), ("reset",)])
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            self.post(rx, envelopes("a"))
        # On a raw socket it is a real RST, not a FIN.
        s = socket.create_connection(("127.0.0.1", rx.port), timeout=3)
        body = envelopes("b")
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (PATH.encode(), len(body), body))
        with self.assertRaises(ConnectionResetError):
            s.recv(100)
        s.close()
        self.assertEqual(rx.events, [])
        self.assertEqual([q["action"] for q in rx.requests], ["reset", "reset"])
        st, _, _ = self.post(rx, envelopes("c"))
        self.assertEqual(st, 200)

    def test_unknown_action_refused(self):
        rx = self.receiver()
        with self.assertRaises(ValueError):
            rx.script([("explode",)])


class TestHttp(ReceiverTest):
    def test_keep_alive(self):
        rx = self.receiver()
        c = self.conn(rx)
        for i in range(3):
            st, _, r = self.post(rx, envelopes(str(i)), conn=c)
            self.assertEqual(st, 200)
            self.assertIsNone(r.getheader("Connection"))
        c.close()
        self.assertEqual(rx.connections, 1)
        self.assertEqual({q["conn"] for q in rx.requests}, {1})
        self.assertEqual(rx.event_ids(), ["0", "1", "2"])

    def raw_request(self, rx, headers, body=None):
        s = socket.create_connection(("127.0.0.1", rx.port), timeout=3)
        s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Authorization: Splunk test-token\r\n%s\r\n"
                  % (PATH.encode(), b"".join(h + b"\r\n" for h in headers)))
        if body is not None:
            s.sendall(body)
        return s

    def read_response(self, s):
        f = s.makefile("rb")
        status = f.readline()
        headers = {}
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", 0)))
        f.close()
        return status, headers, body

    def test_expect_100_continue(self):
        rx = self.receiver()
        body = envelopes("e1", "e2")
        s = self.raw_request(rx, [b"Expect: 100-continue",
                                  b"Content-Length: %d" % len(body)])
        f = s.makefile("rb")
        self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
        self.assertEqual(f.readline(), b"\r\n")
        f.close()
        s.sendall(body)
        status, headers, reply = self.read_response(s)
        s.close()
        self.assertEqual(status, b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(json.loads(reply), {"text": "Success", "code": 0})
        self.assertEqual(rx.event_ids(), ["e1", "e2"])
        self.assertTrue(rx.requests[0]["expect_100"])

    def test_max_content_length(self):
        rx = self.receiver(max_content_length=100)
        body = envelopes(*map(str, range(10)))
        s = self.raw_request(rx, [b"Expect: 100-continue",
                                  b"Content-Length: %d" % len(body)])
        status, headers, reply = self.read_response(s)  # no 100 Continue
        # The reason phrase is Python's own: "Content Too Large" (RFC 9110)
        # from 3.13 on, "Request Entity Too Large" before.
        self.assertIn(status, (b"HTTP/1.1 413 Content Too Large\r\n",
                               b"HTTP/1.1 413 Request Entity Too Large\r\n"))
        self.assertEqual(headers["connection"], "close")
        self.assertEqual(s.recv(10), b"")
        s.close()
        st, reply, _ = self.post(rx, body)  # no Expect: read, then refused
        self.assertEqual(st, 413)
        st, _, _ = self.post(rx, envelopes("small"))
        self.assertEqual(st, 200)
        self.assertEqual(rx.event_ids(), ["small"])

    def test_chunked_body(self):
        rx = self.receiver()
        parts = [envelopes("c1")[:10], envelopes("c1")[10:] + envelopes("c2"),
                 envelopes("c3")]
        c = self.conn(rx)
        c.request("POST", PATH, body=iter(parts), encode_chunked=True,
                  headers={"Authorization": "Splunk test-token",
                           "Transfer-Encoding": "chunked"})
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["code"]), (200, 0))
        # The connection stays usable after a chunked body.
        st, _, _ = self.post(rx, envelopes("c4"), conn=c)
        self.assertEqual(st, 200)
        c.close()
        self.assertEqual(rx.event_ids(), ["c1", "c2", "c3", "c4"])
        self.assertEqual(rx.requests[0]["body"], b"".join(parts))
        # Chunk extensions and trailers, by hand.
        s = self.raw_request(rx, [b"Transfer-Encoding: chunked"],
                             b"5;ext=1\r\n" + envelopes("c5")[:5] + b"\r\n" +
                             b"%x\r\n" % (len(envelopes("c5")) - 5) +
                             envelopes("c5")[5:] + b"\r\n0\r\nX-T: 1\r\n\r\n")
        status, _, _ = self.read_response(s)
        s.close()
        self.assertEqual(status, b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(rx.event_ids()[-1], "c5")

    def test_wait_helpers(self):
        rx = self.receiver()
        self.assertEqual(rx.wait_events(1, 0.05), [])
        threading.Timer(0.1, lambda: self.post(rx, envelopes("w1", "w2"))).start()
        got = rx.wait_events(2, 5.0)
        self.assertEqual([e["event"]["id"] for e in got], ["w1", "w2"])
        self.assertEqual(len(rx.wait_requests(1, 1.0)), 1)

    def test_close_ends_idle_and_hanging_connections(self):
        rx = HecReceiver()
        rx.script([("hang", 30)])
        idle = self.conn(rx)
        idle.connect()
        hanging = socket.create_connection(("127.0.0.1", rx.port), timeout=5)
        body = envelopes("h")
        hanging.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                        % (PATH.encode(), len(body), body))
        rx.wait_requests(1, 5.0)
        t0 = time.monotonic()
        rx.close()
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(hanging.recv(10), b"")
        hanging.close()
        idle.close()
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", rx.port), timeout=1).close()


class TestTls(ReceiverTest):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hecrx-")
        cls.ca, cls.cert, cls.key = make_test_ca(os.path.join(cls.tmp.name, "good"))
        cls.wrong_ca = make_test_ca(os.path.join(cls.tmp.name, "wrong"))[0]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def https(self, rx, cafile, host="127.0.0.1"):
        ctx = ssl.create_default_context(cafile=cafile)
        return http.client.HTTPSConnection(host, rx.port, context=ctx, timeout=5)

    def test_verified_with_test_ca(self):
        rx = self.receiver(tls=(self.cert, self.key))
        self.assertTrue(rx.url.startswith("https://127.0.0.1:"))
        for host in ("127.0.0.1", "localhost"):
            c = self.https(rx, self.ca, host)
            st, reply, _ = self.post(rx, envelopes(host), conn=c)
            st2, _, _ = self.post(rx, envelopes(host + "2"), conn=c)
            c.close()
            self.assertEqual((st, st2, reply["code"]), (200, 200, 0))
        self.assertEqual(rx.event_ids(), ["127.0.0.1", "127.0.0.12",
                                          "localhost", "localhost2"])
        self.assertEqual(rx.connections, 2)

    def test_refused_with_wrong_ca(self):
        rx = self.receiver(tls=(self.cert, self.key))
        c = self.https(rx, self.wrong_ca)
        with self.assertRaises(ssl.SSLCertVerificationError):
            c.request("POST", PATH, body=envelopes("a"),
                      headers={"Authorization": "Splunk test-token"})
        c.close()
        # And a plain-HTTP client gets nowhere either.
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            self.post(rx, envelopes("b"), conn=self.conn(rx))
        self.assertTrue(wait_tls_errors(rx, 2))
        self.assertEqual(rx.events, [])

    def test_reset_over_tls(self):
        rx = self.receiver(tls=(self.cert, self.key))
        rx.script([("reset",)])
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected,
                                ssl.SSLError)):
            self.post(rx, envelopes("a"), conn=self.https(rx, self.ca))


def wait_tls_errors(rx, n, timeout=3.0):
    end = time.monotonic() + timeout
    while len(rx.tls_errors) < n and time.monotonic() < end:
        time.sleep(0.02)
    return len(rx.tls_errors) >= n


@unittest.skipUnless(shutil.which("curl"), "curl not installed")
class TestCurl(ReceiverTest):
    """The real libcurl client, as the daemon will use it."""

    def curl(self, rx, body, *args):
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            r = subprocess.run(
                ["curl", "-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}",
                 "-H", "Authorization: Splunk test-token",
                 "--data-binary", "@" + f.name] + list(args) + [rx.event_url],
                capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        out, code = r.stdout.rsplit(b"\n", 1)
        return int(code), json.loads(out)

    def test_large_body_with_expect(self):
        rx = self.receiver()
        ids = ["%06d" % i for i in range(12000)]  # > 1 MiB
        body = b"\n".join(envelopes(i, pad="x" * 40) for i in ids)
        self.assertGreater(len(body), 1 << 20)
        st, reply = self.curl(rx, body)
        self.assertEqual((st, reply["code"]), (200, 0))
        self.assertEqual(rx.event_ids(), ids)
        self.assertTrue(rx.requests[0]["expect_100"])

    def test_gzip_over_tls(self):
        with tempfile.TemporaryDirectory() as d:
            ca, cert, key = make_test_ca(d)
            rx = self.receiver(tls=(cert, key))
            st, reply = self.curl(rx, gzip.compress(envelopes("t1", "t2")),
                                  "--cacert", ca, "-H", "Content-Encoding: gzip")
        self.assertEqual((st, reply["code"]), (200, 0))
        self.assertEqual(rx.event_ids(), ["t1", "t2"])


if __name__ == "__main__":
    unittest.main()
