"""Peers for the Envoy tap's black-box tests (issue 6, /work/envoy-design.md):
perf_report builders with the events deye-mitm should make of them, the
Envoy's HTTP/1.1 encoding, a test Envoy client and a test Enphase upstream.

Reports

    fixture_2012(), fixture_460(), generated(seed, ...) -> Report
    Report.xml                 the report XML, the bytes the .xml spool file holds
    Report.expected(target)    [{"type": ..., key: value, ...}, ...] in the
                               order deye-mitm emits them (envoy_report first,
                               then device/interval/reading/event elements in
                               document order); "_time" is each one's own
                               Unix time (the HEC envelope time)
    Report.event_ids           the <event id=...> values, as strings

Expected values follow the design: ints are ints, scaled columns floats,
eqids and serials strings.  The generator keeps the attribute values it
wrote and the expectations are made from those; the XML itself is written
with random quoting, attribute order, whitespace, entity and character
references, comments and empty-element or start/end tag forms, which the
decoder must not care about.

Wire

    form_body(xml, plus=False, before=(), after=())   b"body=<percent-encoded>"
    request(target, payload, ...) -> Message            an Envoy's POST
    Message.wire / .head / .body / .headers / .start_line

Peers

    EnvoyClient(sock, rnd=None)   sends (in random pieces with rnd), reads
                                  responses; .sent, .got: every byte each way
    Enphase(...)                  a harness.Server handler answering like
                                  reports.enphaseenergy.com; .conns: one
                                  UpstreamConn per connection with .received,
                                  .sent, .requests, .done
"""
import base64
import json
import os
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zlib

from harness import SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "data", "envoy")

HOST = "reports.enphaseenergy.com:443"
PERF_TARGET = "/emu_reports/performance_report?webcomm_version=%s"
TASK_TARGET = "/emu_reports/task_complete"
DEFLATE_CT = "application/x-deflate"
RESPONSE_CT = "application/x-deflate; charset=utf-8"

KNOWN_CODES = {101: "grid instability", 509: "power-on reset",
               512: "DC power too low",
               10000: "microinverter failed to report",
               10009: "microinverter sleeping"}
STATE_NAMES = {2: "raised", 1: "cleared", 0: "one-shot"}


def fixture(name):
    """A fixture's bytes; the provenance line of a *.txt is stripped."""
    with open(os.path.join(FIXTURES, name), "rb") as f:
        data = f.read()
    if name.endswith(".txt"):
        data = data.split(b"\n", 1)[1]
    return data


def iso(unix):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


# -- what deye-mitm should make of a report -----------------------------------

DEVICE_INTS = ("device_type", "admin_state", "image_bits", "condition_flags",
               "observed_flags", "control_bits")
CHANNEL_INTS = ("channel_type", "condition_flags", "observed_flags",
                "control_bits")


def _inverter(eqid):
    serial, dot, ch = eqid.partition(".")
    d = {"inverter.serial": serial}
    if dot:
        d["inverter.channel"] = int(ch)
    return d


def _json_or_text(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def expect_element(name, a, children, common):
    """(expected event, its time) of one device/interval/reading/event
    element, from its attributes a (decoded) and children
    [(name, attrs, text)]."""
    if name == "device":
        d = dict(common, type="envoy_device")
        d["device.eqid"] = a["eqid"]
        d["device.part_num"] = a["part_num"]
        for k in DEVICE_INTS:
            if k in a:
                d["device." + k] = int(a[k])
        chans = []
        for cname, ca, _ in children:
            if cname != "channel":
                continue
            c = {"eqid": ca["eqid"]}
            for k in CHANNEL_INTS:
                if k in ca:
                    c[k] = int(ca[k])
            chans.append(c)
        d["device.channels"] = chans
        return d, None
    if name == "interval":
        end = int(a["end_date"])
        d = dict(common, type="envoy_interval")
        d["interval.id"] = int(a["id"])
        d["interval.eqid"] = a["eqid"]
        d.update(_inverter(a["eqid"]))
        d["interval.end_time"] = iso(end)
        d["interval.end_unix"] = end
        d["interval.duration_s"] = int(a["interval_duration"])
        d["interval.stat_duration_s"] = int(a["stat_duration"])
        d["interval.stats"] = a["stats"]
        if re.fullmatch(r"[0-9]+", a["stats"]):
            d["interval.energy_ws"] = int(a["stats"])
        return d, end
    if name == "reading":
        t = int(a["date"])
        d = dict(common, type="envoy_reading")
        d["reading.id"] = int(a["id"])
        d["reading.eqid"] = a["eqid"]
        d.update(_inverter(a["eqid"]))
        d["reading.time"] = iso(t)
        d["reading.unix"] = t
        d["reading.duration_s"] = int(a["duration"])
        d["reading.flags"] = int(a["flags"])
        d["reading.stats"] = a["stats"]
        c = [int(x) for x in a["stats"].split(",")]
        d["reading.ac_v"] = c[0] / 1000
        d["reading.ac_hz"] = c[1] / 1000
        d["reading.dc_v"] = c[2] / 1000
        d["reading.dc_a"] = c[3] / 1000
        d["reading.degc"] = c[4]
        d["reading.unknown_6"] = c[5]
        d["reading.unknown_7"] = c[6]
        if len(c) >= 8:
            d["reading.energy_ws"] = c[7]
        return d, t
    if name == "event":
        t = int(a["event_date"])
        code, state = int(a["event_code"]), int(a["event_state"])
        d = dict(common, type="envoy_event")
        d["event.id"] = int(a["id"])
        d["event.code"] = code
        d["event.state"] = state
        d["event.state_name"] = STATE_NAMES[state]
        if code in KNOWN_CODES:
            d["event.name"] = KNOWN_CODES[code]
        d["event.time"] = iso(t)
        d["event.unix"] = t
        d["event.eqid"] = a["eqid"]
        if "correlation_id" in a:
            d["event.correlation_id"] = int(a["correlation_id"])
        if "serial_num" in a:
            d["event.serial_num"] = a["serial_num"]
        if "message_key" in a:
            d["event.message_key"] = a["message_key"]
        for cname, _, text in children:
            if cname == "message_params":
                d["event.message_params"] = _json_or_text(text)
        return d, t
    raise ValueError(name)


class Report:
    """A perf_report: its XML and what deye-mitm should make of it.

    root: attributes of perf_report; envoy: of the envoy element (or None);
    elements: [(name, attrs, children)] of device/interval/reading/event in
    document order, attribute values decoded."""

    def __init__(self, xml, root, envoy, elements, query_version=None):
        self.xml = xml
        self.root = root
        self.envoy = envoy
        self.elements = elements
        self.query_version = query_version
        self.event_ids = [a["id"] for n, a, _ in elements if n == "event"]

    @classmethod
    def parse(cls, xml, query_version=None):
        """Attributes read with a reference XML parser (fixtures)."""
        top = ET.fromstring(xml)
        assert top.tag == "perf_report", top.tag
        envoy, elements = None, []
        for el in top:
            if el.tag == "envoy":
                envoy = dict(el.attrib)
            elif el.tag in ("device", "interval", "reading", "event"):
                kids = [(k.tag, dict(k.attrib), k.text or "") for k in el]
                elements.append((el.tag, dict(el.attrib), kids))
        return cls(xml, dict(top.attrib), envoy, elements, query_version)

    def count(self, name):
        return sum(1 for n, _, _ in self.elements if n == name)

    def expected(self, target):
        ts = int(self.root["report_timestamp"])
        common = {"report.time": iso(ts)}
        if self.envoy and "serial_num" in self.envoy:
            common["envoy.serial"] = self.envoy["serial_num"]
        rep = dict(common, type="envoy_report")
        rep["report.unix"] = ts
        version = self.root.get("webcomm_version", self.query_version)
        if version is not None:
            rep["report.webcomm_version"] = version
        rep["http.target"] = target
        for k, v in (self.envoy or {}).items():
            if k == "serial_num":
                continue
            rep["envoy." + k] = float(v) if k in ("latitude", "longitude") else v
        rep["count.devices"] = self.count("device")
        rep["count.intervals"] = self.count("interval")
        rep["count.readings"] = self.count("reading")
        rep["count.events"] = self.count("event")
        rep["_time"] = ts
        out = [rep]
        for name, a, kids in self.elements:
            d, t = expect_element(name, a, kids, common)
            d["_time"] = ts if t is None else t
            out.append(d)
        return out


def fixture_2012():
    """The real 2012 report (webcomm 3.0): 20 devices, 8 events."""
    return Report.parse(fixture("REAL_oddbit_2012_perf_report_webcomm3.0.xml.txt"),
                        query_version="3.0")


def fixture_460():
    """The synthetic 4.6.0 report: 1 interval, 1 reading, 4 events."""
    return Report.parse(fixture("SYNTHETIC_perf_report_4.6.0.xml"),
                        query_version="4.6.0")


# -- a generated report -------------------------------------------------------

_WS = (" ", "  ", "\n  ", "\t", "\r\n    ", " \n")


def _escape(v, q, rnd):
    out = []
    for ch in v:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append(rnd.choice((">", "&gt;")))
        elif ch == q:
            out.append("&apos;" if q == "'" else "&quot;")
        elif ch == "/" and rnd.random() < 0.5:
            out.append(rnd.choice(("&#47;", "&#x2F;", "&#x2f;")))
        else:
            out.append(ch)
    return "".join(out)


def _tag(name, attrs, rnd, inner=None):
    items = list(attrs.items())
    rnd.shuffle(items)
    s = "<" + name
    for k, v in items:
        q = rnd.choice("'\"")
        s += (rnd.choice(_WS) + k + rnd.choice(("", "", " ")) + "=" +
              rnd.choice(("", "", " ", "\n")) + q + _escape(v, q, rnd) + q)
    s += rnd.choice(("", "", " ", "\n  "))
    if inner is None and rnd.random() < 0.75:
        return s + "/>"
    return s + ">" + (inner or "") + "</" + name + rnd.choice(("", "", " ", "\n")) + ">"


def _between(rnd):
    r = rnd.random()
    if r < 0.1:
        return "\n  <!-- %d -->\n  " % rnd.randint(0, 999)
    return rnd.choice(("", "\n", "\n  ", "\n\t", "  "))


def generated(seed, intervals=300, readings=300, events=120, devices=12,
              root_version="4.6.0", query_version="4.6.0"):
    """A report with the given numbers of elements, random but seeded;
    elements interleaved at random.  root_version None: no
    webcomm_version attribute on perf_report."""
    rnd = random.Random(seed)
    ts = rnd.randint(1_400_000_000, 1_700_000_000)
    envoy_serial = "1214%08d" % rnd.randint(0, 10**8 - 1)
    root = {"report_timestamp": str(ts)}
    if root_version is not None:
        root["webcomm_version"] = root_version
    envoy = {
        "serial_num": envoy_serial,
        "ip_addr": "192.0.2.%d" % rnd.randint(1, 254),
        "mac_addr": ":".join("%02X" % rnd.randint(0, 255) for _ in range(6)),
        "timezone": "Europe/Zürich",
        "part_num": "800-00069-r05",
        "sw_version": "R3.9.%d (%06x)" % (rnd.randint(1, 40), rnd.getrandbits(24)),
        "latitude": "%.4f" % rnd.uniform(-60, 60),
        "longitude": "%.4f" % rnd.uniform(-170, 170),
        "emu_region": "EU",
        "site_name": "Joe's \"roof\" & <shed>",
    }
    serials = ["1217%08d" % rnd.randint(0, 10**8 - 1) for _ in range(devices)]
    elements = []
    for s in serials:
        kids = []
        for ch in range(1, rnd.choice((1, 1, 2)) + 1):
            kids.append(("channel", {
                "channel_type": "1", "eqid": "%s.%d" % (s, ch),
                "condition_flags": str(rnd.choice((0, 16))),
                "observed_flags": "0", "control_bits": str(rnd.randint(0, 3))}, ""))
        elements.append(("device", {
            "eqid": s, "part_num": "800-00103-r05", "device_type": "1",
            "admin_state": str(rnd.randint(1, 2)),
            "image_bits": str(rnd.choice((131072, 65536))),
            "condition_flags": str(rnd.choice((2359296, 2097152, 0))),
            "observed_flags": "0", "control_bits": "0"}, kids))

    def eqid():
        s = rnd.choice(serials)
        return s if rnd.random() < 0.1 else "%s.%d" % (s, rnd.randint(1, 2))

    base = rnd.randint(1, 9_000_000)
    for i in range(intervals):
        if rnd.random() < 0.6:
            stats = str(rnd.randint(0, 300_000))
        else:
            stats = ",".join(str(rnd.randint(0, 99_999))
                             for _ in range(rnd.randint(2, 6)))
        elements.append(("interval", {
            "id": str(base + i), "eqid": eqid(),
            "end_date": str(ts - 300 * rnd.randint(0, 2000)),
            "interval_duration": rnd.choice(("300", "900")),
            "stat_duration": str(rnd.randint(280, 900)), "stats": stats}, []))
    base = rnd.randint(1, 9_000_000)
    for i in range(readings):
        hz = rnd.choice((50_000, 60_000)) + rnd.randint(-150, 150)
        cols = [rnd.randint(200_000, 260_000), hz, rnd.randint(15_000, 48_000),
                rnd.randint(0, 11_000), rnd.randint(-20, 75),
                rnd.randint(0, 3), rnd.randint(0, 3), rnd.randint(0, 120_000)]
        if rnd.random() < 0.3:
            cols = cols[:7]               # 4.1.0: no watt-seconds column
        elements.append(("reading", {
            "id": str(base + i), "eqid": eqid(),
            "date": str(ts - rnd.randint(0, 600_000)),
            "duration": str(rnd.randint(250, 950)),
            "flags": str(rnd.choice((0, 0, 1, 4))),
            "stats": ",".join(map(str, cols))}, []))
    base = rnd.randint(1, 9_000_000)
    for i in range(events):
        a = {"id": str(base + i),
             "event_code": str(rnd.choice((101, 509, 512, 10000, 10009,
                                           10031, 7, 20002))),
             "event_state": str(rnd.randint(0, 2)),
             "event_date": str(ts - rnd.randint(0, 600_000)),
             "eqid": rnd.choice((eqid(), envoy_serial))}
        if rnd.random() < 0.5:
            a["correlation_id"] = str(rnd.randint(1, 9_999_999))
        if rnd.random() < 0.3:
            a["serial_num"] = a["eqid"].split(".")[0]
        kids = []
        if rnd.random() < 0.3:
            a["message_key"] = str(rnd.randint(1, 40))
            kids = [("message_params", {}, rnd.choice((
                json.dumps({"value": "true"}, separators=(",", ":")),
                json.dumps({"v": rnd.randint(0, 999), "w": [1, 2.5, "x"],
                            "nested": {"ok": True, "none": None}}),
                json.dumps(["a", rnd.randint(0, 9)]),
                "not json: %d < 10 & done" % rnd.randint(0, 9))))]
        elements.append(("event", a, kids))
    rnd.shuffle(elements)

    parts = ["%s\n" % rnd.choice(("<?xml version='1.0' encoding='utf-8'?>",
                                  '<?xml version="1.0" encoding="UTF-8"?>'))]
    body = [_between(rnd), _tag("envoy", envoy, rnd)]
    for name, a, kids in elements:
        inner = None
        if kids:
            inner = ""
            for kname, ka, text in kids:
                inner += _between(rnd)
                if kname == "message_params":
                    inner += "<message_params><![CDATA[%s]]></message_params>" % text
                else:
                    inner += _tag(kname, ka, rnd)
            inner += _between(rnd)
        body.append(_between(rnd))
        body.append(_tag(name, a, rnd, inner=inner))
    body.append("\n")
    parts.append(_tag("perf_report", root, rnd, inner="".join(body)))
    parts.append("\n")
    xml = "".join(parts).encode("utf-8")
    rep = Report(xml, root, envoy, elements, query_version)
    # The XML says what the generator meant (a reference parser agrees).
    check = Report.parse(xml, query_version)
    assert check.root == root and check.envoy == envoy
    assert [(n, a) for n, a, _ in check.elements] == [(n, a) for n, a, _ in elements]
    return rep


# -- the Envoy's HTTP ----------------------------------------------------------

def form_body(xml, plus=False, before=(), after=()):
    """Form data with the report in field `body`, percent-encoded as the
    Envoy does (quote, safe=''), or with + for spaces (quote_plus)."""
    q = urllib.parse.quote_plus if plus else urllib.parse.quote
    fields = ["%s=%s" % kv for kv in before]
    fields.append("body=" + q(xml, safe=""))
    fields += ["%s=%s" % kv for kv in after]
    return "&".join(fields).encode("ascii")


def chunk(body, rnd, ext=False, trailer=()):
    """body in chunked transfer coding: random sizes, hex in either case,
    chunk extensions when ext, trailer fields [(name, value)]."""
    out, off = bytearray(), 0
    while off < len(body):
        n = min(len(body) - off, rnd.choice((1, 3, 17, 100, 1000, 4096, 20000)))
        size = "%x" % n
        if rnd.random() < 0.5:
            size = size.upper()
        if ext and rnd.random() < 0.3:
            size += rnd.choice((";name=value", " ;x", ";q=\"a b\""))
        out += size.encode() + b"\r\n" + body[off:off + n] + b"\r\n"
        off += n
    out += b"0\r\n"
    for k, v in trailer:
        out += ("%s: %s\r\n" % (k, v)).encode()
    out += b"\r\n"
    return bytes(out)


class Message:
    """An HTTP message: start line, headers [(name, value)], body (the
    message body, de-chunked: for the Envoy the zlib stream) and wire (every
    byte, as sent)."""

    def __init__(self, start_line, headers, body, wire, head_len):
        self.start_line = start_line
        self.headers = headers
        self.body = body
        self.wire = wire
        self.head = wire[:head_len]
        self.rest = wire[head_len:]

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def status(self):
        return int(self.start_line.split()[1])

    @property
    def target(self):
        return self.start_line.split()[1]


def build(start_line, headers, body, wire_body=None):
    head = (start_line + "\r\n" +
            "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n").encode("latin-1")
    wire = head + (body if wire_body is None else wire_body)
    return Message(start_line, list(headers), body, wire, len(head))


def request(target, payload, deflate=True, content_type=DEFLATE_CT,
            connection="close", chunked=None, expect=False, method="POST",
            extra=(), trailer=(), level=-1):
    """An Envoy's request: payload (form data) zlib-compressed when
    deflate; Content-Length, or chunked when chunked is a random.Random;
    the real Envoy's headers in its order (Connection None: no header)."""
    body = zlib.compress(payload, level) if deflate else payload
    headers = [("Accept", "*/*")]
    if connection is not None:
        headers.append(("Connection", connection))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(len(body))))
    if expect:
        headers.append(("Expect", "100-continue"))
    headers.append(("Host", HOST))
    headers += list(extra)
    wire_body = chunk(body, chunked, ext=True, trailer=trailer) if chunked else None
    return build("%s %s HTTP/1.1" % (method, target), headers, body, wire_body)


def perf_request(report, version=None, plus=False, **kw):
    """The performance_report request of report (query webcomm_version
    version, default the report's)."""
    v = version or report.query_version
    return request(PERF_TARGET % v, form_body(report.xml, plus=plus), **kw)


def perf_response_xml(ids):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<perf_report_response status="success">\n'
            '  <events_processed>\n' +
            "".join('    <event id="%s"/>\n' % i for i in ids) +
            '  </events_processed>\n'
            '</perf_report_response>\n').encode()


# -- reading HTTP from a socket ------------------------------------------------

class HttpError(Exception):
    pass


class Reader:
    """Buffered reads from a socket; every byte received is appended to
    log (whether a message used it or not)."""

    def __init__(self, sock, log):
        self.s = sock
        self.buf = bytearray()
        self.log = log

    def _fill(self):
        try:
            b = self.s.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            b = b""
        if not b:
            raise EOFError
        self.log += b
        self.buf += b

    def readline(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise HttpError("line too long")
            self._fill()

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def at_eof(self):
        if self.buf:
            return False
        try:
            self._fill()
        except EOFError:
            return True
        return False


def read_head(r, response):
    """(start line, headers, raw bytes) of the next message's head."""
    raw = bytearray()
    line = r.readline()
    raw += line
    start = line.rstrip(b"\r\n").decode("latin-1")
    parts = start.split(" ")
    if response:
        if not (len(parts) >= 2 and parts[0].startswith("HTTP/1.")
                and parts[1].isdigit()):
            raise HttpError("bad status line %r" % start[:40])
    elif not (len(parts) == 3 and parts[2].startswith("HTTP/1.")
              and parts[0].isalpha()):
        raise HttpError("bad request line %r" % start[:40])
    headers = []
    while True:
        line = r.readline()
        raw += line
        if line in (b"\r\n", b"\n"):
            break
        text = line.rstrip(b"\r\n").decode("latin-1")
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError("bad header %r" % text[:40])
        headers.append((name, value.strip()))
    return start, headers, bytes(raw)


def _length(headers):
    vals = {v for k, v in headers if k.lower() == "content-length"}
    if not vals:
        return None
    if len(vals) > 1 or not all(v.isdigit() for v in vals):
        raise HttpError("bad Content-Length")
    return int(vals.pop())


def read_body(r, headers, response=False, status=200, head=False):
    """(body, raw) of a message whose head was read (head: a response to
    a HEAD)."""
    if response and (head or 100 <= status < 200 or status in (204, 304)):
        return b"", b""
    te = [v for k, v in headers if k.lower() == "transfer-encoding"]
    if te:
        if te[-1].lower() != "chunked":
            raise HttpError("transfer coding")
        raw, body = bytearray(), bytearray()
        while True:
            line = r.readline()
            raw += line
            size = line.split(b";", 1)[0].strip()
            if not size or not re.fullmatch(rb"[0-9a-fA-F]+", size):
                raise HttpError("bad chunk size")
            n = int(size, 16)
            if n == 0:
                while True:
                    t = r.readline()
                    raw += t
                    if t in (b"\r\n", b"\n"):
                        return bytes(body), bytes(raw)
            data = r.read(n)
            raw += data
            body += data
            end = r.read(2)
            raw += end
            if end != b"\r\n":
                raise HttpError("chunk end")
    n = _length(headers)
    if n is None:
        if not response:
            return b"", b""
        data = r.read_eof()
        return data, data
    data = r.read(n)
    return data, data


def read_message(r, response, head=False):
    start, headers, raw = read_head(r, response)
    status = int(start.split()[1]) if response else 0
    body, rawb = read_body(r, headers, response, status, head)
    return Message(start, headers, body, raw + rawb, len(raw))


class _Bytes:
    def __init__(self, data):
        self.data = data

    def recv(self, n):
        out, self.data = self.data[:n], self.data[n:]
        return out


def parse_message(data, response=False):
    """The first message in data (bytes)."""
    return read_message(Reader(_Bytes(data), bytearray()), response)


# -- the test Envoy -------------------------------------------------------------

class EnvoyClient:
    """One connection of a test Envoy to the listener."""

    def __init__(self, sock, rnd=None):
        self.s = sock
        self.rnd = rnd
        self.sent = bytearray()
        self.got = bytearray()
        self.r = Reader(sock, self.got)
        self.peer = "%s:%d" % sock.getsockname()[:2]

    def send(self, data):
        """Send data; in random small pieces when the client has a rnd."""
        self.sent += data
        if self.rnd is None:
            self.s.sendall(data)
            return
        off = 0
        while off < len(data):
            n = self.rnd.choice((1, 2, 7, 50, 300, 1400, 3000))
            self.s.sendall(data[off:off + n])
            off += n
            if self.rnd.random() < 0.02:
                time.sleep(0.001)

    def response(self, head=False):
        """The next message: interim (1xx) ones included."""
        return read_message(self.r, True, head)

    def final(self, head=False):
        """The next final response, and the interim ones before it."""
        interim = []
        while True:
            m = self.response(head)
            if m.status >= 200:
                return m, interim
            interim.append(m)

    def exchange(self, req):
        self.send(req.wire)
        return self.final(req.start_line.startswith("HEAD "))[0]

    def finish(self, half_close=True):
        """Half-close (unless not half_close: TLS) and read what is left
        up to EOF."""
        if half_close:
            try:
                self.s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        rest = self.r.read_eof()
        self.s.close()
        return rest


# -- the test Enphase ------------------------------------------------------------

BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
               b"Content-Length: 12\r\nConnection: close\r\n\r\nBad Request\n")


class UpstreamConn:
    def __init__(self):
        self.received = bytearray()   # every byte read
        self.sent = bytearray()       # every byte written
        self.requests = []            # Message
        self.responses = []           # Message (final ones)
        self.error = None             # HttpError text for unparsable input
        self.done = threading.Event()


class Enphase:
    """A handler for harness.Server answering like reports.enphaseenergy.com.

    style: how a response body is framed: "length" (Content-Length),
    "chunked", or "eof" (neither; Connection: close and the end of the
    stream).  headers: extra response headers [(name, value)], e.g. the
    real 2012 ones.  fixed_xml: answer every performance_report with this
    XML (else a perf_report_response listing the report's event ids).
    raw: answer with these bytes, as they are, whatever the request.
    rnd: send in random small pieces.  garbage: answer with these bytes
    (not HTTP) and close.  reply: (content type, body) to answer every
    request with."""

    def __init__(self, style="length", headers=(), fixed_xml=None, raw=None,
                 rnd=None, garbage=None, reply=None):
        self.reply = reply
        self.style = style
        self.headers = list(headers)
        self.fixed_xml = fixed_xml
        self.raw = raw
        self.rnd = rnd
        self.garbage = garbage
        self.conns = []
        self.lock = threading.Lock()

    def wait(self, n, timeout=10.0):
        """The first n connections, once each is over."""
        end = time.monotonic() + timeout * SLOW
        while True:
            with self.lock:
                conns = list(self.conns)
            if len(conns) >= n:
                break
            if time.monotonic() > end:
                raise AssertionError("upstream saw %d connection(s), not %d"
                                     % (len(conns), n))
            time.sleep(0.01)
        for c in conns[:n]:
            if not c.done.wait(max(0.1, end - time.monotonic())):
                raise AssertionError("upstream connection not over")
        return conns[:n]

    def _send(self, c, conn, data):
        conn.sent += data
        if self.rnd is None:
            c.sendall(data)
            return
        off = 0
        while off < len(data):
            with self.lock:
                n = self.rnd.choice((1, 5, 60, 500, 4000))
            c.sendall(data[off:off + n])
            off += n

    def answer(self, req):
        keep = (req.header("Connection") or "").lower() != "close"
        path = req.target.split("?", 1)[0]
        if self.reply is not None:
            ctype, body = self.reply
        elif path.endswith("/performance_report"):
            if self.fixed_xml is not None:
                xml = self.fixed_xml
            else:
                ids = []
                try:
                    form = zlib.decompress(req.body)
                    m = re.search(rb"(?:^|&)body=([^&]*)", form)
                    x = urllib.parse.unquote_to_bytes(m.group(1).replace(b"+", b" "))
                    ids = [e.get("id") for e in ET.fromstring(x).iter("event")]
                except Exception:
                    pass
                xml = perf_response_xml(ids)
            body, ctype = zlib.compress(xml), RESPONSE_CT
        else:
            body, ctype = b"OK\n", "text/plain; charset=utf-8"
        headers = list(self.headers) + [("Content-Type", ctype)]
        if self.style == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
            wire = chunk(body, random.Random(len(body)))
        elif self.style == "eof":
            keep = False
            wire = body
        else:
            headers.append(("Content-Length", str(len(body))))
            wire = body
        if not keep:
            headers.append(("Connection", "close"))
        if req.start_line.startswith("HEAD "):
            wire = b""       # the headers of a GET, no body
        return build("HTTP/1.1 200 OK", headers, body, wire), keep

    def __call__(self, c):
        conn = UpstreamConn()
        with self.lock:
            self.conns.append(conn)
        c.settimeout(20 * SLOW)
        r = Reader(c, conn.received)
        try:
            while not r.at_eof():
                try:
                    start, headers, raw = read_head(r, False)
                    if any(k.lower() == "expect" and v.lower() == "100-continue"
                           for k, v in headers):
                        self._send(c, conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                    body, rawb = read_body(r, headers)
                except HttpError as e:
                    conn.error = str(e)
                    r.read_eof()
                    self._send(c, conn, BAD_REQUEST)
                    break
                req = Message(start, headers, body, raw + rawb, len(raw))
                conn.requests.append(req)
                if self.garbage is not None:
                    self._send(c, conn, self.garbage)
                    keep = False
                elif self.raw is not None:
                    self._send(c, conn, self.raw)
                    keep = False
                else:
                    resp, keep = self.answer(req)
                    conn.responses.append(resp)
                    self._send(c, conn, resp.wire)
                if not keep:
                    c.shutdown(socket.SHUT_WR)
                    r.read_eof()
                    break
        except EOFError:
            pass
        finally:
            conn.done.set()


# -- what the spool files should hold --------------------------------------------

def spool_body(msg):
    """The body as a spool file writes it (the design's rules)."""
    body = msg.body
    if not body:
        return b""
    ct = (msg.header("Content-Type") or "").lower()
    if "deflate" in ct:
        try:
            return zlib.decompress(body)
        except zlib.error:
            return base64.encodebytes(body)
    if (msg.header("Content-Type") is None or ct.startswith("text/")
            or "xml" in ct or "application/x-www-form-urlencoded" in ct):
        return body
    return base64.encodebytes(body)


def spool_head(msg):
    return (msg.start_line + "\n" +
            "".join("%s = %s\n" % kv for kv in msg.headers) + "\n").encode("latin-1")


def spool_forms(msg):
    """The contents a .request/.response file may have.  The design's "All
    lines end with \\n" could mean a newline added after a body that does
    not end with one; we read it as the body byte for byte (what the
    original tool wrote, and the only form that keeps the body exact)."""
    return [spool_head(msg) + spool_body(msg)]
