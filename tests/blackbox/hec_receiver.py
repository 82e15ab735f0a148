"""A Splunk HTTP Event Collector (HEC) stand-in for the black-box tests.

Splunk cannot run here, so the tests point deye-mitm's [hec] sink at this
receiver instead: a threaded HTTP/1.1 server on 127.0.0.1 (port 0), plain or
TLS, that records every request and every accepted event, and can be scripted
to fail the way a real Splunk (or the network in front of it) fails.

    rx = HecReceiver()                      # or tls=(certfile, keyfile)
    rx.script([("status", 503, {"retry_after": 1}), ("hang", 3), ("reset",)])
    ... run the daemon with hec.url=rx.url, hec.token=rx.token ...
    rx.wait_events(10, 5.0); rx.event_ids(); rx.close()

Splunk behaviour modelled (from Splunk's "Troubleshoot HTTP Event Collector"
code table and "Format events for HTTP Event Collector"):

- Endpoints: POST /services/collector, /services/collector/event and
  /services/collector/event/1.0 (identical here); GET
  /services/collector/health -> 200 {"text":"HEC is healthy","code":17}
  without a token (503 code 18 while `down`). Anything else -> 404
  {"text":"The requested URL was not found on this server.","code":404}.
  The query string is ignored. /raw and /ack are not modelled (404).
- Auth: "Authorization: Splunk <token>" (header name and the "Splunk"
  scheme case-insensitive, as in HTTP). No header -> 401 code 2 "Token is
  required"; a header that is not "Splunk <token>" -> 401 code 3 "Invalid
  authorization"; an unknown token -> 403 code 4 "Invalid token". Basic auth
  and ?token= query authentication are not modelled (they get code 3 / 2).
- Body: "Content-Encoding: gzip" is decompressed (bad gzip -> 400 code 6,
  invalid-event-number 0; any other encoding than gzip/identity likewise).
  The body is JSON envelopes back to back, optionally separated by JSON
  whitespace. Empty or all-whitespace -> 400 code 5 "No data". The first bad
  envelope, counted from 0, ends parsing: 400 with "invalid-event-number":N
  and
    not JSON (incl. NaN/Infinity, bad UTF-8)  code 6  Invalid data format
    JSON but not an object                    code 6  Invalid data format
    no "event" key                            code 12 Event field is required
    "event" is "" or {} or null               code 13 Event field cannot be blank
    "time" not a number / numeric string      code 6  Invalid data format
    "fields" not a flat object                code 15 Error in handling indexed fields
    "index" outside `indexes` (if given)      code 7  Incorrect index
  Envelopes before the bad one are indexed (kept in .events) when
  index_before_bad=True, the default; with False a bad request keeps none.
- Success -> 200 {"text":"Success","code":0}; every envelope, in order, is
  appended to .events.
- Busy/failing: 503 {"text":"Server is busy","code":9}, optionally with
  Retry-After; 500 {"text":"Internal server error","code":8}.
- Over max_content_length (if given; Splunk's limits.conf [http_input]
  max_content_length): 413 before the body is read -- also instead of
  "100 Continue" -- and the connection is closed.
- Responses are application/json with Content-Length, HTTP/1.1 keep-alive,
  "Expect: 100-continue" answered with "100 Continue", chunked request
  bodies decoded.

Uncertain -- the documented code table does not settle these, so they are
our best guess and tests should not lean on the exact body:
- Whether the events before a bad one are really indexed. Splunk's docs do
  not say; field reports say they are, but a published splunkd error line
  for a 400 with invalid-event-number=75 reads events_processed=0. Hence
  index_before_bad is an option, and a sender must treat a resend of that
  prefix as a possible duplicate (which is what the event `id` is for).
- `null` and `{}` as "blank" (code 13) rather than code 6; other non-string
  events (numbers, arrays) are accepted.
- The bodies Splunk sends with 408, 413 and 429 (none is in the table):
  408 {"text":"Request timeout","code":8} + Connection: close,
  413 {"text":"Content length too large","code":6} + Connection: close,
  429 {"text":"Server is busy","code":9}. A sender should decide by the
  HTTP status, not by these codes.

Scripted faults, consumed one per POST to a collector endpoint, before any
other handling (so before auth; health checks and 404s do not consume them):
    ("status", N[, opts])  answer status N with the body above (opts:
                           "retry_after": seconds -> Retry-After header,
                           "body": dict/bytes/str to send instead,
                           "close": True -> Connection: close). No event kept.
    ("hang", seconds)      read the request, answer nothing for that long,
                           then close the connection (FIN).
    ("reset",)             read the request, then close with SO_LINGER 0 (RST).
    ("bad_event", i)       answer 400 code 6 invalid-event-number i, keeping
                           envelopes before i when index_before_bad.
Persistent modes, checked after the script: `hang_all = seconds` (every
request hangs; clearing it ends hangs in progress) and then `down = True`
(every request, health included, gets 503).
"""
import gzip
import http.server
import json
import os
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib

try:
    from harness import SLOW
except ImportError:  # used outside the black-box directory
    SLOW = 1.0

EVENT_PATHS = ("/services/collector", "/services/collector/event",
               "/services/collector/event/1.0")
HEALTH_PATHS = ("/services/collector/health", "/services/collector/health/1.0")

NOT_FOUND = {"text": "The requested URL was not found on this server.", "code": 404}
SUCCESS = {"text": "Success", "code": 0}
HEALTHY = {"text": "HEC is healthy", "code": 17}
UNHEALTHY = {"text": "HEC is unhealthy, queues are full", "code": 18}

# Splunk's text for each HEC code (the documented table).
TEXTS = {
    0: "Success", 1: "Token disabled", 2: "Token is required",
    3: "Invalid authorization", 4: "Invalid token", 5: "No data",
    6: "Invalid data format", 7: "Incorrect index", 8: "Internal server error",
    9: "Server is busy", 12: "Event field is required",
    13: "Event field cannot be blank", 15: "Error in handling indexed fields",
}

# Bodies for scripted ("status", N). 408/413/429 are guesses, see above.
STATUS_BODIES = {
    400: {"text": "Invalid data format", "code": 6},
    401: {"text": "Token is required", "code": 2},
    403: {"text": "Invalid token", "code": 4},
    404: NOT_FOUND,
    408: {"text": "Request timeout", "code": 8},
    413: {"text": "Content length too large", "code": 6},
    429: {"text": "Server is busy", "code": 9},
    500: {"text": "Internal server error", "code": 8},
    503: {"text": "Server is busy", "code": 9},
}
# Statuses after which the server drops the connection unless told otherwise.
CLOSING_STATUSES = (408, 413)


def hec_error(code, index=None):
    body = {"text": TEXTS[code], "code": code}
    if index is not None:
        body["invalid-event-number"] = index
    return body


def _reject_constant(name):
    raise ValueError("not JSON: " + name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_WS = " \t\r\n"


def _check_envelope(env, indexes):
    """The HEC code for a bad envelope, or None if Splunk would take it."""
    if not isinstance(env, dict):
        return 6
    if "event" not in env:
        return 12
    ev = env["event"]
    if ev is None or ev == "" or ev == {}:
        return 13
    if "time" in env:
        t = env["time"]
        if isinstance(t, bool):
            return 6
        if isinstance(t, str):
            try:
                float(t)
            except ValueError:
                return 6
        elif not isinstance(t, (int, float)):
            return 6
    if "fields" in env:
        f = env["fields"]
        if not isinstance(f, dict) or any(isinstance(v, dict) for v in f.values()):
            return 15
    if indexes is not None and "index" in env and env["index"] not in indexes:
        return 7
    return None


def parse_envelopes(body, indexes=None):
    """Split a HEC body into envelopes the way HEC reads it.

    Returns (good, error): good is the list of valid envelopes before the
    first bad one; error is None, (5, None) for no data, or (code, index)."""
    try:
        text = body.decode("utf-8")
        tail_bad = False
    except UnicodeDecodeError as e:
        text = body[:e.start].decode("utf-8")
        tail_bad = True
    good = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            break
        try:
            env, i = _DECODER.raw_decode(text, i)
        except ValueError:
            return good, (6, len(good))
        code = _check_envelope(env, indexes)
        if code is not None:
            return good, (code, len(good))
        good.append(env)
    if tail_bad:
        return good, (6, len(good))
    if not good:
        return good, (5, None)
    return good, None


class _BadRequest(Exception):
    """The request itself is unreadable (framing, not content)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Splunkd"
    sys_version = ""

    # -- connection life ----------------------------------------------------

    def setup(self):
        rx = self.server.rx
        self.conn_no = rx._accepted()
        self.request.settimeout(rx.idle_timeout)
        if rx._tls_ctx is not None:
            raw = self.request
            try:
                self.request = rx._tls_ctx.wrap_socket(
                    raw, server_side=True, do_handshake_on_connect=False)
                self.request.do_handshake()
            except (OSError, ssl.SSLError) as e:
                with rx.lock:
                    rx.tls_errors.append(repr(e))
                self.request.close()
                raise
        rx._register(self.request)
        super().setup()

    def finish(self):
        rx = self.server.rx
        try:
            super().finish()
        except OSError:
            pass
        rx._unregister(self.request)
        if rx._tls_ctx is not None:
            # socketserver closes the raw socket, which wrap_socket detached.
            self.request.close()

    def log_message(self, format, *args):
        pass

    # -- request plumbing ---------------------------------------------------

    def handle_expect_100(self):
        rx = self.server.rx
        self.expect_100 = True
        try:
            n = self._content_length()
        except _BadRequest:
            n = None
        if rx.max_content_length is not None and n is not None \
                and n > rx.max_content_length:
            # Refuse before the body is sent, as a real server does.
            self._record(b"", 413, action="too_large")
            self._send_json(413, STATUS_BODIES[413], close=True)
            return False
        return super().handle_expect_100()

    def handle_one_request(self):
        self.expect_100 = False
        super().handle_one_request()

    def _content_length(self):
        v = self.headers.get("Content-Length")
        if v is None:
            return None
        v = v.strip()
        if not v.isdigit():
            raise _BadRequest("bad Content-Length")
        return int(v)

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te:
            if te.strip().lower() != "chunked":
                raise _BadRequest("unsupported Transfer-Encoding " + te)
            return self._read_chunked()
        n = self._content_length()
        if not n:
            return b""
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("body cut short")
        return data

    def _read_chunked(self):
        out = bytearray()
        while True:
            line = self.rfile.readline(65537)
            if not line.endswith(b"\n"):
                raise ConnectionError("chunk size line cut short")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size")
            if size < 0:
                raise _BadRequest("bad chunk size")
            if size == 0:
                while True:  # trailer fields, up to the empty line
                    t = self.rfile.readline(65537)
                    if not t.endswith(b"\n"):
                        raise ConnectionError("trailer cut short")
                    if t in (b"\r\n", b"\n"):
                        return bytes(out)
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise ConnectionError("chunk cut short")
            out += chunk
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadRequest("chunk not followed by CRLF")

    def _send_json(self, status, body, headers=(), close=False):
        if isinstance(body, dict):
            data = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = bytes(body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _record(self, body, status, action=None):
        rx = self.server.rx
        entry = {"method": self.command, "path": self.path,
                 "headers": self.headers, "body": body, "status": status,
                 "action": action, "time": time.monotonic(),
                 "conn": self.conn_no, "expect_100": self.expect_100}
        with rx.lock:
            rx.requests.append(entry)
            rx._cond.notify_all()
        return entry

    def _set(self, entry, **kw):
        with self.server.rx.lock:
            entry.update(kw)

    # -- methods ------------------------------------------------------------

    def do_GET(self):
        rx = self.server.rx
        try:
            body = self._read_body()
        except (_BadRequest, ConnectionError, OSError):
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        if path not in HEALTH_PATHS:
            self._record(body, 404)
            self._send_json(404, NOT_FOUND)
            return
        entry = self._record(body, None)
        if rx.hang_all:
            self._set(entry, action="hang")
            self._hang(rx.hang_all, persistent=True)
            return
        status, reply = (503, UNHEALTHY) if rx.down else (200, HEALTHY)
        self._set(entry, status=status)
        self._send_json(status, reply)

    def do_POST(self):
        rx = self.server.rx
        try:
            raw = self._read_body()
        except _BadRequest:
            self._record(b"", 400, action="bad_framing")
            self._send_json(400, {"text": "Bad Request", "code": 6}, close=True)
            return
        except (ConnectionError, OSError):
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        if path not in EVENT_PATHS:
            self._record(raw, 404)
            self._send_json(404, NOT_FOUND)
            return

        body, encoding_ok = raw, True
        enc = self.headers.get("Content-Encoding", "").strip().lower()
        if enc == "gzip":
            try:
                body = gzip.decompress(raw) if raw else b""
            except (OSError, EOFError, zlib.error):
                encoding_ok = False
        elif enc not in ("", "identity"):
            encoding_ok = False

        entry = self._record(body, None)
        if rx.max_content_length is not None and len(raw) > rx.max_content_length:
            # Chunked bodies: no length to refuse on before reading.
            self._finish(entry, 413, STATUS_BODIES[413], close=True,
                         action="too_large")
            return

        action = rx._next_action()
        if action is None and rx.hang_all:
            action = ("hang", rx.hang_all, "persistent")
        if action is None and rx.down:
            action = ("status", 503)
        bad_at = None
        if action is not None:
            kind = action[0]
            self._set(entry, action=kind)
            if kind == "hang":
                self._hang(action[1], persistent=len(action) > 2)
                return
            if kind == "reset":
                self._reset()
                return
            if kind == "status":
                status = action[1]
                opts = action[2] if len(action) > 2 else {}
                headers = []
                if opts.get("retry_after") is not None:
                    headers.append(("Retry-After", str(opts["retry_after"])))
                reply = opts.get("body", STATUS_BODIES.get(
                    status, {"text": self.responses.get(status, ("Error",))[0],
                             "code": 8}))
                close = opts.get("close", status in CLOSING_STATUSES)
                self._finish(entry, status, reply, headers, close)
                return
            if kind == "bad_event":
                bad_at = action[1]
            else:
                raise ValueError("unknown scripted action %r" % (action,))

        # Normal HEC handling: auth, then the body.
        auth = self.headers.get("Authorization")
        if auth is None:
            self._finish(entry, 401, hec_error(2))
            return
        parts = auth.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "splunk" or not parts[1].strip():
            self._finish(entry, 401, hec_error(3))
            return
        if parts[1].strip() != rx.token:
            self._finish(entry, 403, hec_error(4))
            return

        if not encoding_ok:
            good, err = [], (6, 0)
        else:
            good, err = parse_envelopes(body, rx.indexes)
        if bad_at is not None and (err is None or err[1] is None or err[1] > bad_at):
            good, err = good[:bad_at], (6, bad_at)
        if err is None:
            rx._keep(good)
            self._finish(entry, 200, SUCCESS)
            return
        code, index = err
        if index is not None and rx.index_before_bad:
            rx._keep(good[:index])
        self._finish(entry, 400, hec_error(code, index))

    def _finish(self, entry, status, reply, headers=(), close=False, action=None):
        with self.server.rx.lock:
            entry["status"] = status
            if action is not None:
                entry["action"] = action
        self._send_json(status, reply, headers, close)

    def _hang(self, seconds, persistent=False):
        """Answer nothing for `seconds` (less if the receiver closes or, for
        hang_all, the mode is switched off), then close the connection."""
        rx = self.server.rx
        end = time.monotonic() + seconds
        while not rx._stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or (persistent and not rx.hang_all):
                break
            rx._stop.wait(min(left, 0.05))
        self.close_connection = True

    def _reset(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.server.rx._unregister(self.request)
        self.connection.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, rx):
        self.rx = rx
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self):
        # HTTPServer.server_bind would call getfqdn(): no name lookups here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        t = threading.Thread(target=self.process_request_thread,
                             args=(request, client_address), daemon=True)
        with self.rx.lock:
            self.rx._threads.append(t)
        t.start()

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, socket.timeout, ssl.SSLError)):
            return  # the peer went away or never spoke TLS: not our bug
        with self.rx.lock:
            self.rx.errors.append(repr(e))


class HecReceiver:
    """A HEC endpoint on 127.0.0.1; see the module docstring.

    Attributes: url, port, token, events (envelopes, arrival order),
    requests (one dict per request: method, path, headers -- a
    case-insensitive http.client.HTTPMessage --, body (decompressed bytes),
    status (None for hang/reset), action, time (time.monotonic() when the
    request had been read), conn (connection number from 1), expect_100),
    connections (TCP connections accepted), tls_errors, errors, down,
    hang_all, index_before_bad, max_content_length, indexes."""

    def __init__(self, token="test-token", tls=None, index_before_bad=True,
                 max_content_length=None, indexes=None, idle_timeout=30.0):
        self.token = token
        self.index_before_bad = index_before_bad
        self.max_content_length = max_content_length
        self.indexes = None if indexes is None else set(indexes)
        self.idle_timeout = idle_timeout
        self.events = []
        self.requests = []
        self.connections = 0
        self.tls_errors = []
        self.errors = []
        self.down = False
        self.hang_all = 0
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._script = []
        self._threads = []
        self._live = set()
        self._stop = threading.Event()
        self._tls_ctx = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self._tls_ctx = ctx
        self._httpd = _Server(self)
        self.port = self._httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.event_url = self.url + "/services/collector/event"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        self._closed = False

    # -- test-facing --------------------------------------------------------

    def script(self, actions):
        """Queue fault actions, one consumed per collector POST."""
        actions = [tuple(a) for a in actions]
        for a in actions:
            if not a or a[0] not in ("status", "hang", "reset", "bad_event"):
                raise ValueError("unknown scripted action %r" % (a,))
        with self.lock:
            self._script.extend(actions)

    def pending_script(self):
        with self.lock:
            return list(self._script)

    def wait_events(self, n, timeout):
        """Wait until at least n events arrived (timeout stretched by SLOW);
        returns a copy of .events, shorter than n on timeout."""
        end = time.monotonic() + timeout * SLOW
        with self._cond:
            while len(self.events) < n:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.events)

    def wait_requests(self, n, timeout):
        """Like wait_events, for .requests."""
        end = time.monotonic() + timeout * SLOW
        with self._cond:
            while len(self.requests) < n:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.requests)

    def event_ids(self):
        """event["id"] of every kept envelope, in order (None if absent)."""
        with self.lock:
            return [e["event"].get("id") if isinstance(e.get("event"), dict)
                    else None for e in self.events]

    def close(self):
        """Stop serving: no new connections, open ones shut down, threads
        joined (hangs in progress end at once)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.lock:
            live = list(self._live)
            threads = list(self._threads)
        for s in live:
            try:  # wakes a handler blocked in recv(); close() would not
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(5.0)
        self._thread.join(5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- handler-facing -----------------------------------------------------

    def _accepted(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def _register(self, s):
        with self.lock:
            self._live.add(s)

    def _unregister(self, s):
        with self.lock:
            self._live.discard(s)

    def _next_action(self):
        with self.lock:
            return self._script.pop(0) if self._script else None

    def _keep(self, envelopes):
        with self._cond:
            self.events.extend(envelopes)
            self._cond.notify_all()


_CA_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = %(cn)s
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_srv]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = %(san)s
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def make_test_ca(directory, san=("IP:127.0.0.1", "DNS:localhost"), days=3,
                 name="deye-mitm test"):
    """Make a throw-away CA and a server certificate it signed (EC P-256),
    valid `days` from now, for the names in `san`. Each call makes a CA of
    its own, so a second call in another directory is the "wrong CA".
    Returns (ca_cert_path, server_cert_path, server_key_path)."""
    os.makedirs(directory, exist_ok=True)
    p = lambda f: os.path.join(directory, f)
    conf = p("openssl.cnf")
    with open(conf, "w") as f:
        f.write(_CA_CONF % {"cn": name + " CA", "san": ", ".join(san)})
    srv_conf = p("server.cnf")
    with open(srv_conf, "w") as f:
        f.write(_CA_CONF % {"cn": san[0].split(":", 1)[1], "san": ", ".join(san)})
    env = dict(os.environ, OPENSSL_CONF=conf)

    def run(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True,
                           env=env, cwd=directory, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (
                args[0], r.stderr.decode(errors="replace")))

    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    run("genpkey", *ec, "-out", p("ca.key"))
    run("req", "-config", conf, "-new", "-x509", "-key", p("ca.key"),
        "-days", str(days), "-sha256", "-extensions", "v3_ca",
        "-out", p("ca.pem"))
    run("genpkey", *ec, "-out", p("server.key"))
    run("req", "-config", srv_conf, "-new", "-key", p("server.key"),
        "-out", p("server.csr"))
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"),
        "-CAkey", p("ca.key"), "-set_serial",
        str(int.from_bytes(os.urandom(8), "big")), "-days", str(days),
        "-sha256", "-extfile", conf, "-extensions", "v3_srv",
        "-out", p("server.pem"))
    return p("ca.pem"), p("server.pem"), p("server.key")
