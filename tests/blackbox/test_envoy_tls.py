"""The Envoy tap behind real stunnels, set up from the shipped configurations
(contrib/stunnel-envoy-server.conf, contrib/stunnel-envoy-client.conf) with
only addresses and file names replaced: a TLS client posting like a legacy
Envoy, stunnel in server mode, deye-mitm's envoy listener, and a plain
HTTP upstream answering like Enphase; then the client side's stunnel
verifying "Enphase's" certificate.  All on 127.0.0.1.

stunnel (Debian's stunnel4) and openssl must be installed: .ci/run installs
them, and their absence is a failure, not a skip.  The request and response
are the synthetic 4.6.0 vectors of ../shared/fixtures/envoy, copied to
tests/data/envoy.
"""
import datetime
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import unittest
import urllib.parse
import warnings
import zlib

from harness import (ROOT, SLOW, Daemon, am_root, free_port, read_events,
                     wait_for)
from test_relay import RelayTest

DATA = os.path.join(ROOT, "tests", "data", "envoy")
SERVER_CONF = os.path.join(ROOT, "contrib", "stunnel-envoy-server.conf")
CLIENT_CONF = os.path.join(ROOT, "contrib", "stunnel-envoy-client.conf")
ENPHASE = "reports.enphaseenergy.com"


def _read(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


REQUEST = _read("SYNTHETIC_request_performance_report.http.bin")
RESPONSE = _read("SYNTHETIC_response_performance_report.http.bin")


def split_message(msg):
    """(head lines without CRLF, body) of one HTTP message."""
    head, body = msg.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n"), body


def spool_text(msg, body):
    """What a spool file holds for msg: start line, "Name = value" headers,
    a blank line, then body."""
    lines, _ = split_message(msg)
    out = [lines[0]]
    for h in lines[1:]:
        name, value = h.split(b":", 1)
        out.append(name + b" = " + value.strip())
    return b"\n".join(out) + b"\n\n" + body


def form_field(form, name):
    """The percent-decoded ("%XX", "+" a space) value of field name."""
    for part in form.split(b"&"):
        k, _, v = part.partition(b"=")
        if k == name:
            return urllib.parse.unquote_to_bytes(v.replace(b"+", b" "))
    raise KeyError(name)


def iso(unix):
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def listening(port):
    """Whether something listens on 127.0.0.1:port (from /proc/net/tcp,
    without connecting: a probe would be a failed handshake in the log)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        return any(l.split()[1] == want and l.split()[3] == "0A"
                   for l in list(f)[1:])


def stunnel_binary():
    return shutil.which("stunnel4") or shutil.which("stunnel")


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True,
                       timeout=60 * SLOW)
    if r.returncode:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))


def shipped_conf(path, **values):
    """The configuration file at path with the value of each key in values
    replaced (None: the line dropped).  Each key must be in the file, so a
    change in the shipped file that the test would miss fails here."""
    with open(path) as f:
        lines = f.read().split("\n")
    out, seen = [], set()
    for line in lines:
        m = re.match(r"^\s*(\w+)\s*=", line)
        if m and m.group(1) in values:
            seen.add(m.group(1))
            if values[m.group(1)] is None:
                continue
            line = "%s = %s" % (m.group(1), values[m.group(1)])
        out.append(line)
    missing = set(values) - seen
    if missing:
        raise AssertionError("%s has no %s" % (path, ", ".join(sorted(missing))))
    return "\n".join(out)


def tls_exchange(ctx, port, data, server_hostname=ENPHASE):
    """Connect over TLS, send data, read until the server closes; returns
    (bytes received, the TLS version used)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
    with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
        version = s.version()
        s.sendall(data)
        got = bytearray()
        while True:
            try:
                b = s.recv(65536)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError,
                    ConnectionResetError):
                break
            if not b:
                break
            got += b
    return bytes(got), version


def envoy_context(legacy=False):
    """A TLS client like the Envoy's: no certificate check at all; with
    legacy, TLS 1.0 and a suite of its time only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("AES128-SHA:@SECLEVEL=0")
    return ctx


def read_request(c):
    """One HTTP request with a Content-Length body from socket c."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = c.recv(65536)
        if not b:
            return data
        data += b
    head = data.split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    want = len(head) + 4 + (int(m.group(1)) if m else 0)
    while len(data) < want:
        b = c.recv(65536)
        if not b:
            break
        data += b
    return data


class StunnelTest(RelayTest):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="deye-tls-")
        cls.tmp = cls.tmpdir.name

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def stunnel(self, conf_text):
        """Start stunnel in the foreground with this configuration; stopped
        at the end of the test.  Returns the path of its log."""
        binary = stunnel_binary()
        if not binary:
            self.fail("stunnel is not installed (Debian package stunnel4, "
                      "installed by .ci/run)")
        d = tempfile.mkdtemp(prefix="stunnel-", dir=self.tmp)
        path = os.path.join(d, "stunnel.conf")
        with open(path, "w") as f:
            f.write(conf_text)
        logpath = os.path.join(d, "stunnel.log")
        log = open(logpath, "wb")
        p = subprocess.Popen([binary, path], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log)

        def stop():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5 * SLOW)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()
        self.addCleanup(stop)
        self.stunnel_log = logpath
        return p, logpath

    def wait_listening(self, p, port, logpath):
        wait_for(lambda: listening(port) or p.poll() is not None, 10)
        if not listening(port):
            with open(logpath, "rb") as f:
                self.fail("stunnel is not listening on %d (exit %s):\n%s" % (
                    port, p.poll(), f.read().decode("utf-8", "replace")))

    def stunnel_log_text(self):
        with open(self.stunnel_log, "rb") as f:
            return f.read().decode("utf-8", "replace")


class TestEnvoyBehindStunnel(StunnelTest):
    """Envoy (TLS) -> stunnel server mode -> deye-mitm [envoy] -> Enphase
    (plain HTTP test server)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # As envoy-setup.md says, but for a day and into the test's directory.
        cls.cert = os.path.join(cls.tmp, "envoy-cert.pem")
        cls.key = os.path.join(cls.tmp, "envoy-key.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=" + ENPHASE, "-keyout", cls.key, "-out", cls.cert)

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.spool = os.path.join(self.dir, "spool")
        self.events = os.path.join(self.dir, "events.jsonl")
        self.received = []
        self.enphase = self.server(self.enphase_handler)
        self.d = Daemon("envoy.protocol=envoy", "envoy.listen=127.0.0.1:0",
                        "envoy.upstream=" + self.enphase.addr,
                        "envoy.spool_dir=" + self.spool,
                        "events=" + self.events, listen=None)
        self.daemons.append(self.d)
        self.port = free_port()
        with open(SERVER_CONF) as f:
            shipped = f.read()
        # What the Debian unit needs, and what this test relies on.
        self.assertRegex(shipped, r"(?m)^foreground = yes$")
        self.assertRegex(shipped, r"(?m)^pid =$")
        self.assertNotRegex(shipped, r"(?m)^securityLevel")
        values = dict(accept="127.0.0.1:%d" % self.port,
                      connect="127.0.0.1:%d" % self.d.port("envoy"),
                      cert=self.cert, key=self.key)
        if not am_root():
            # Not root: no privileges to drop.
            values.update(setuid=None, setgid=None)
        p, log = self.stunnel(shipped_conf(SERVER_CONF, **values))
        self.wait_listening(p, self.port, log)

    def enphase_handler(self, c):
        c.settimeout(10 * SLOW)
        req = read_request(c)
        self.received.append(req)
        c.sendall(RESPONSE)     # Connection: close
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass

    def post(self, ctx):
        got, version = tls_exchange(ctx, self.port, REQUEST)
        self.assertEqual(self.received, [REQUEST],
                         "upstream got other bytes; stunnel log:\n"
                         + self.stunnel_log_text())
        self.assertEqual(got, RESPONSE)
        return version

    def spool_files(self):
        return sorted(os.listdir(self.spool)) if os.path.isdir(self.spool) else []

    def wait_spool(self):
        # Three files in place, and no hidden temporary still being written
        # (the Envoy worker writes each under a temporary name first).
        names = wait_for(lambda: len(self.spool_files()) >= 3 and
                         not any(n.startswith(".") for n in self.spool_files())
                         and self.spool_files(), 5)
        self.assertTrue(names, "spool files: %s\n%s" % (
            self.spool_files(), self.d.log()))
        return names

    def test_report_over_tls_is_relayed_spooled_and_decoded(self):
        self.post(envoy_context())

        # The spool: one base name, three files, mode 0640, no leftovers.
        names = self.wait_spool()
        bases = {n.rsplit(".", 1)[0] for n in names}
        self.assertEqual(len(bases), 1, names)
        base = bases.pop()
        self.assertRegex(base, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-[0-9a-f]{8}$")
        self.assertEqual(names, [base + ".request", base + ".response",
                                 base + ".xml"])
        for n in names:
            mode = stat.S_IMODE(os.stat(os.path.join(self.spool, n)).st_mode)
            self.assertEqual(mode, 0o640, n)

        def spooled(suffix):
            with open(os.path.join(self.spool, base + suffix), "rb") as f:
                return f.read()
        form = zlib.decompress(split_message(REQUEST)[1])
        want = spool_text(REQUEST, form)
        # "All lines end with \n": the body may get one appended.
        self.assertIn(spooled(".request"), (want, want + b"\n"))
        answer = zlib.decompress(split_message(RESPONSE)[1])
        want = spool_text(RESPONSE, answer)
        self.assertIn(spooled(".response"), (want, want + b"\n"))
        xml = form_field(form, b"body")
        self.assertTrue(xml.startswith(b"<?xml"), xml[:40])
        self.assertEqual(spooled(".xml"), xml)

        # The events, through the journal to the events file.
        def envoy_events():
            return [e for e in read_events(self.events)
                    if e["type"].startswith("envoy_")]
        evs = wait_for(lambda: len(envoy_events()) >= 7 and envoy_events(), 5)
        self.assertTrue(evs, "events: %s\nlog:\n%s" % (
            read_events(self.events), self.d.log()))
        types = [e["type"] for e in evs]
        self.assertEqual({t: types.count(t) for t in set(types)},
                         {"envoy_report": 1, "envoy_interval": 1,
                          "envoy_reading": 1, "envoy_event": 4}, types)
        for e in evs:
            self.assertEqual(e["direction"], "up")
            self.assertEqual(e["listener"], "envoy")
            self.assertEqual(e["envoy.serial"], "999999000001")
            self.assertEqual(e["report.time"], iso(1438706832))
            self.assertTrue(e["conn.peer"].startswith("127.0.0.1:"), e)
        by = {t: [e for e in evs if e["type"] == t] for t in set(types)}
        rep = by["envoy_report"][0]
        for k, v in {"report.unix": 1438706832,
                     "report.webcomm_version": "4.6.0",
                     "http.target":
                         "/emu_reports/performance_report?webcomm_version=4.6.0",
                     "spool.name": base, "envoy.ip_addr": "192.0.2.10",
                     "envoy.mac_addr": "00:00:5E:00:53:01",
                     "envoy.timezone": "US/Pacific",
                     "envoy.sw_version": "R3.12.34 (2e8bfe)",
                     "envoy.emu_region": "NA", "count.devices": 0,
                     "count.intervals": 1, "count.readings": 1,
                     "count.events": 4}.items():
            self.assertEqual(rep.get(k), v, k)
        iv = by["envoy_interval"][0]
        for k, v in {"interval.id": 1000001,
                     "interval.eqid": "999999100001.1",
                     "inverter.serial": "999999100001", "inverter.channel": 1,
                     "interval.end_time": iso(1436646900),
                     "interval.end_unix": 1436646900,
                     "interval.duration_s": 300,
                     "interval.stat_duration_s": 294,
                     "interval.stats": "65439",
                     "interval.energy_ws": 65439}.items():
            self.assertEqual(iv.get(k), v, k)
        rd = by["envoy_reading"][0]
        for k, v in {"reading.id": 2000001, "reading.time": iso(1436646944),
                     "reading.unix": 1436646944, "reading.duration_s": 296,
                     "reading.flags": 0, "reading.ac_v": 250.102,
                     "reading.ac_hz": 59.979, "reading.dc_v": 27.782,
                     "reading.dc_a": 7.462, "reading.degc": 49,
                     "reading.unknown_6": 0, "reading.unknown_7": 0,
                     "reading.energy_ws": 67535}.items():
            self.assertEqual(rd.get(k), v, k)
        ev = sorted(by["envoy_event"], key=lambda e: e["event.id"])
        self.assertEqual([(e["event.code"], e["event.state"],
                           e["event.state_name"], e.get("event.name"))
                          for e in ev],
                         [(509, 0, "one-shot", "power-on reset"),
                          (512, 2, "raised", "DC power too low"),
                          (512, 1, "cleared", "DC power too low"),
                          (10031, 0, "one-shot", None)])
        self.assertEqual([e.get("event.correlation_id") for e in ev],
                         [None, 3000003, 3000002, None])
        self.assertEqual(ev[3].get("event.message_params"), {"value": "true"})
        self.d.wait_log(r"conn \d+ \[envoy\]: Enphase acknowledged 4 event\(s\): "
                        r"3000001 3000002 3000003 3000004")

    def test_legacy_tls10_client_is_accepted(self):
        # The Envoy's TLS is of 2010: TLS 1.0 with an AES-CBC-SHA suite must
        # get through the shipped settings (sslVersionMin, @SECLEVEL=0 in
        # ciphers; no securityLevel, which the stunnel of Debian 11 and
        # Ubuntu 22.04 rejects).
        self.assertEqual(self.post(envoy_context(legacy=True)), "TLSv1")
        self.assertEqual(len([n for n in self.wait_spool()
                              if n.endswith(".xml")]), 1)


class TestStunnelClientConf(StunnelTest):
    """deye-mitm's upstream side: stunnel in client mode carries plain HTTP
    to "Enphase" (a TLS server on 127.0.0.1) and verifies its certificate
    against CAfile, for the name reports.enphaseenergy.com."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        t = cls.tmp
        cls.ca = os.path.join(t, "ca.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=deye-mitm test CA", "-keyout",
                os.path.join(t, "ca.key"), "-out", cls.ca)
        cls.certs = {}
        for name in (ENPHASE, "other.example"):
            key, csr = os.path.join(t, name + ".key"), os.path.join(t, name + ".csr")
            cert, ext = os.path.join(t, name + ".pem"), os.path.join(t, name + ".ext")
            with open(ext, "w") as f:
                f.write("subjectAltName=DNS:%s\n" % name)
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                    "-keyout", key, "-out", csr)
            openssl("x509", "-req", "-in", csr, "-CA", cls.ca, "-CAkey",
                    os.path.join(t, "ca.key"), "-CAcreateserial", "-days", "1",
                    "-out", cert, "-extfile", ext)
            cls.certs[name] = (cert, key)
        # Right name, but signed by nobody the client trusts.
        key, cert = os.path.join(t, "self.key"), os.path.join(t, "self.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=" + ENPHASE, "-addext",
                "subjectAltName=DNS:" + ENPHASE, "-keyout", key, "-out", cert)
        cls.certs["self-signed"] = (cert, key)

    def enphase(self, which):
        """A TLS server with the certificate which; records what it read and
        the SNI it was sent."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.certs[which])
        self.sni, self.received = [], []
        ctx.sni_callback = lambda s, name, c: self.sni.append(name) and None

        def handler(c):
            c.settimeout(10 * SLOW)
            with ctx.wrap_socket(c, server_side=True) as s:
                self.received.append(read_request(s))
                s.sendall(RESPONSE)
        return self.server(handler)

    def client_stunnel(self, upstream):
        self.port = free_port()
        values = dict(accept="127.0.0.1:%d" % self.port,
                      connect=upstream.addr, CAfile=self.ca)
        if not am_root():
            values.update(setuid=None, setgid=None)
        text = shipped_conf(CLIENT_CONF, **values)
        self.assertRegex(text, r"(?m)^checkHost = %s$" % re.escape(ENPHASE))
        self.assertRegex(text, r"(?m)^verifyChain = yes$")
        p, log = self.stunnel(text)
        self.wait_listening(p, self.port, log)

    def exchange(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10 * SLOW)
        s.sendall(REQUEST)
        got = bytearray()
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            got += b
        s.close()
        return bytes(got)

    def test_verified_certificate_relays_both_ways(self):
        up = self.enphase(ENPHASE)
        self.client_stunnel(up)
        self.assertEqual(self.exchange(), RESPONSE, self.stunnel_log_text())
        self.assertEqual(self.received, [REQUEST])
        self.assertEqual(self.sni, [ENPHASE])

    def test_wrong_name_or_untrusted_certificate_is_refused(self):
        for which in ("other.example", "self-signed"):
            with self.subTest(which):
                up = self.enphase(which)
                self.client_stunnel(up)
                self.assertEqual(self.exchange(), b"")
                wait_for(lambda: up.accepted >= 1, 5)
                self.assertEqual(self.received, [], self.stunnel_log_text())
                self.assertIn("Rejected by CERT", self.stunnel_log_text())


if __name__ == "__main__":
    unittest.main()
