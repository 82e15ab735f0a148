"""A real MQTT broker for the black-box tests, and a small client to read it.

Broker starts Debian's `mosquitto` on a free 127.0.0.1 port with a config
file of its own in a temporary directory (anonymous, or a password file;
persistence only when a test needs sessions to outlive a restart; TLS with
given certificate files), waits until it accepts connections (bounded, no
sleeps), and can be stopped and started again on the same port.

    b = Broker()                     # Broker(users={"u": "pw"}), persistence=True
    self.addCleanup(b.close)
    sub = Client(b.port, ["deye-mitm/#"])      # or clean=False, client_id=...
    sub.wait(lambda ms: len(ms) >= 3, 5)
    retained(b.port, "homeassistant/#")        # {topic: payload} retained now

Client is a minimal MQTT 3.1.1 client over a plain socket, written here
because PyPI is out of reach: CONNECT (clean session or not, credentials),
SUBSCRIBE (QoS 1 by default), PUBLISH received at QoS 0 or 1 (answered with PUBACK),
PUBLISH sent at QoS 0 or 1.  A reader thread keeps every message in order as a
Msg(topic, payload, retain, qos).  Keep-alive is 0 (off): a test client
never idles long enough to matter.
"""
import collections
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading

from harness import free_port, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

Msg = collections.namedtuple("Msg", "topic payload retain qos")


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Broker:
    """mosquitto on 127.0.0.1:port.  users: {name: password} (then no
    anonymous access); tls: (cafile, certfile, keyfile) for a second
    listener, TLS, on tls_port (the plain port stays, for the test
    clients); require_certificate: that listener wants a client
    certificate signed by cafile; persistence: keep sessions and queued
    messages across stop/start."""

    def __init__(self, users=None, tls=None, persistence=False,
                 require_certificate=False, port=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="deye-mqtt-")
        self.port = port or free_port()
        self.tls_port = free_port() if tls else None
        self.logpath = os.path.join(self.dir, "mosquitto.log")
        # Started as root, mosquitto would switch to the user mosquitto,
        # who cannot write in our directory: stay who we are.
        conf = ["user %s" % pwd.getpwuid(os.geteuid()).pw_name,
                "listener %d 127.0.0.1" % self.port,
                "log_dest file %s" % self.logpath,
                "log_type all",
                "persistence %s" % ("true" if persistence else "false")]
        if persistence:
            conf += ["persistence_location %s/" % self.dir,
                     "autosave_interval 0"]
        if users:
            pwfile = os.path.join(self.dir, "passwd")
            with open(pwfile, "w") as f:
                for name in users:
                    f.write("%s:x\n" % name)
            os.chmod(pwfile, 0o600)
            for name, pw in users.items():
                subprocess.run(["mosquitto_passwd", "-b", pwfile, name, pw],
                               check=True, capture_output=True)
            conf += ["allow_anonymous false", "password_file %s" % pwfile]
        else:
            conf += ["allow_anonymous true"]
        if tls:
            conf += ["listener %d 127.0.0.1" % self.tls_port,
                     "cafile %s" % tls[0], "certfile %s" % tls[1],
                     "keyfile %s" % tls[2],
                     "require_certificate %s" % (
                         "true" if require_certificate else "false")]
        conf += list(extra)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None
        self.start()

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port

    @property
    def tls_url(self):
        return "mqtts://127.0.0.1:%d" % self.tls_port

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        ok = wait_for(lambda: self.proc.poll() is not None or
                      (_accepts(self.port) and (self.tls_port is None or
                                                _accepts(self.tls_port))), 10)
        if not ok or self.proc.poll() is not None:
            raise AssertionError("mosquitto did not start on port %d:\n%s"
                                 % (self.port, self.log()))

    def stop(self):
        """SIGTERM (it saves its database when persistent) and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(first, body):
    n, rl = len(body), bytearray()
    while True:
        d, n = n % 128, n // 128
        rl.append(d | (0x80 if n else 0))
        if not n:
            break
    return bytes([first]) + bytes(rl) + body


class Client:
    """Connects at once and subscribes to topics (QoS 1).  messages is the
    list of every PUBLISH received, in order."""

    def __init__(self, port, topics=(), client_id=None, clean=True,
                 username=None, password=None, qos=1, timeout=10):
        self.messages = []
        self.lock = threading.Lock()
        self.closed = False
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""
        flags = 0x02 if clean else 0
        payload = _string(client_id or "bb-%d-%d" % (os.getpid(),
                                                     id(self) % 100000))
        if username is not None:
            flags |= 0x80
            payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
        self.sock.sendall(_packet(0x10, _string("MQTT") + bytes([4, flags])
                                  + struct.pack("!H", 0) + payload))
        first, body = self._read()
        if first >> 4 != 2 or body[1] != 0:
            raise ConnectionError("CONNACK %r" % body)
        self.session_present = bool(body[0] & 1)
        self.pongs = 0
        self.pid = 1
        if topics:
            sub = b"".join(_string(t) + bytes([qos]) for t in topics)
            self.sock.sendall(_packet(0x82, struct.pack("!H", self.pid) + sub))
            first, body = self._read()
            if first >> 4 != 9:
                raise ConnectionError("no SUBACK: %r" % first)
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _read(self):
        def need(n):
            while len(self.buf) < n:
                d = self.sock.recv(65536)
                if not d:
                    raise EOFError
                self.buf += d
        need(2)
        n, mult, i = 0, 1, 1
        while True:
            need(i + 1)
            d = self.buf[i]
            n += (d & 0x7F) * mult
            mult *= 128
            i += 1
            if not d & 0x80:
                break
        need(i + n)
        first, body = self.buf[0], self.buf[i:i + n]
        self.buf = self.buf[i + n:]
        return first, body

    def _loop(self):
        try:
            while True:
                first, body = self._read()
                if first >> 4 == 13:
                    with self.lock:
                        self.pongs += 1
                if first >> 4 != 3:
                    continue
                qos = (first >> 1) & 3
                tl = struct.unpack("!H", body[:2])[0]
                topic = body[2:2 + tl].decode()
                off = 2 + tl
                if qos:
                    pid = body[off:off + 2]
                    off += 2
                    self.sock.sendall(b"\x40\x02" + pid)
                with self.lock:
                    self.messages.append(Msg(topic, body[off:].decode(
                        "utf-8", "replace"), bool(first & 1), qos))
        except (OSError, EOFError, ValueError):
            pass

    def publish(self, topic, payload, retain=False, qos=0):
        """QoS 1 is sent and not waited for (sync() after it does)."""
        pid = b""
        if qos:
            self.pid += 1
            pid = struct.pack("!H", self.pid)
        self.sock.sendall(_packet(0x30 | qos << 1 | (1 if retain else 0),
                                  _string(topic) + pid + payload.encode()))

    def sync(self, timeout=5.0):
        """PINGREQ and wait for its PINGRESP: what the broker sent before
        it is in messages."""
        with self.lock:
            want = self.pongs + 1
        self.sock.sendall(b"\xc0\x00")
        if not wait_for(lambda: self.pongs >= want, timeout):
            raise AssertionError("no PINGRESP")

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait(self, pred, timeout=5.0):
        """Wait until pred(messages) is true; return the messages."""
        if not wait_for(lambda: pred(self.snapshot()), timeout):
            raise AssertionError("MQTT messages never matched; got:\n%s" %
                                 "\n".join("%s %s" % (m.topic, m.payload[:200])
                                           for m in self.snapshot()))
        return self.snapshot()

    def on(self, topic):
        return [m for m in self.snapshot() if m.topic == topic]

    def last(self, topic):
        ms = self.on(topic)
        return ms[-1].payload if ms else None

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def retained(port, filt):
    """The retained messages under filter filt now, as {topic: payload}: a
    new client subscribes at QoS 0 (no in-flight limit holds any back) and
    pings; the broker sends them all before its PINGRESP."""
    c = Client(port, [filt], qos=0)
    try:
        c.sync()
        return {m.topic: m.payload for m in c.snapshot() if m.retain}
    finally:
        c.close()
