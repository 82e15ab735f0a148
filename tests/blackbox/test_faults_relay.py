"""Faults of the relay (FAULTS.md F8-F10, F16, F18 and the start-up check of
the limits), through the real binary: one host holding connections open,
running out of fds or threads, Envoy bodies held unfinished, refusal counts.
Every connection stays on 127.0.0.0/8; limits are set with prlimit."""
import os
import re
import selectors
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import SLOW, am_root, echo_handler, recv_all, wait_for
from test_relay import RelayTest

NOBODY = 65534


def connect_from(d, source, listener="deye"):
    return socket.create_connection(("127.0.0.1", d.port(listener)),
                                    timeout=10 * SLOW,
                                    source_address=(source, 0))


def prlimit(pid, *limits):
    subprocess.run(["prlimit", "--pid", str(pid)] + list(limits), check=True)


def tasks_of(uid):
    """Threads of every process whose real uid is uid (RLIMIT_NPROC's count)."""
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/status" % p) as f:
                st = f.read()
        except OSError:
            continue
        uid_line = re.search(r"(?m)^Uid:\s+(\d+)", st)
        threads = re.search(r"(?m)^Threads:\s+(\d+)", st)
        if uid_line and threads and int(uid_line.group(1)) == uid:
            n += int(threads.group(1))
    return n


class SelectEchoServer:
    """An echo server on 127.0.0.1 in one thread, however many connections
    it has; passes EOF on like echo_handler."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.wake_r, self.wake_w = socket.socketpair()
        self.sel.register(self.wake_r, selectors.EVENT_READ)
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while True:
            for key, _ in self.sel.select():
                s = key.fileobj
                if s is self.wake_r:
                    for k in list(self.sel.get_map().values()):
                        k.fileobj.close()
                    self.sel.close()
                    return
                if s is self.sock:
                    try:
                        c, _ = s.accept()
                    except OSError:
                        continue
                    c.setblocking(True)
                    self.sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    b = s.recv(65536)
                    if b:
                        s.sendall(b)
                    else:
                        s.shutdown(socket.SHUT_WR)
                except OSError:
                    b = b""
                if not b:
                    self.sel.unregister(s)
                    s.close()

    def close(self):
        self.wake_w.send(b"x")
        self.t.join(5)
        self.wake_w.close()


class FaultTest(RelayTest):
    def echoes(self, s, data=b"ping"):
        s.sendall(data)
        self.assertEqual(recv_all(s, len(data)), data)

    def user_opts(self):
        """The options that make the daemon run as another user than root,
        whose RLIMIT_NPROC then holds: as root, user = nobody and a
        state_dir nobody can write; else it already is (the user running
        the tests) and keeps the Daemon's own state_dir."""
        if not am_root():
            return ()
        t = tempfile.mkdtemp(prefix="deye-nobody-")
        self.addCleanup(subprocess.run, ["rm", "-rf", t])
        os.chown(t, NOBODY, NOBODY)
        return ("user=nobody", "state_dir=" + t)

    def wrapped(self, *limits):
        """Run the next daemons under prlimit with these limits."""
        w = tempfile.NamedTemporaryFile("w", prefix="deye-prlimit-",
                                        suffix=".sh", delete=False)
        self.addCleanup(os.unlink, w.name)
        w.write('#!/bin/sh\nexec prlimit %s -- %s "$@"\n' % (
            " ".join(limits), harness.BIN))
        w.close()
        os.chmod(w.name, stat.S_IRWXU)
        old = harness.BIN
        harness.BIN = w.name
        self.addCleanup(setattr, harness, "BIN", old)

    def resource_lines(self, d):
        return re.findall(r"(?m)^.*closed as relay:resources.*$", d.log())

    def resource_total(self, d):
        """Resource failures the log accounts for: lines and their counts."""
        log = d.log()
        lines = len(re.findall(r"\]: [^\n]*closed as relay:resources", log))
        more = sum(int(n) for n in re.findall(
            r"closed as relay:resources \((\d+) more not logged\)", log))
        flushed = sum(int(n) for n in re.findall(
            r"(\d+) more connection\(s\) closed as relay:resources", log))
        return lines + more + flushed


class TestSlowloris(FaultTest):
    def test_one_peer_cannot_take_every_slot(self):
        # F8: slow clients from 127.0.0.2 hold their 4 slots of 10; more
        # from it are refused; a logger from 127.0.0.1 is served at once.
        up = self.server(echo_handler)
        d = self.daemon("max_connections=10", "max_connections_per_peer=4",
                        upstream=up.addr)
        slow = [connect_from(d, "127.0.0.2") for _ in range(4)]
        for s in slow:
            self.echoes(s, b"x")  # one byte now and then keeps a slot
        for _ in range(3):
            s = connect_from(d, "127.0.0.2")
            self.assert_closed_soon(s, 2)
            s.close()
        t0 = time.monotonic()
        logger = d.connect()
        self.echoes(logger, b"heartbeat")
        self.assertLess(time.monotonic() - t0, 2 * SLOW)
        self.assertEqual(up.accepted, 5)
        d.wait_log(r"refused 127\.0\.0\.2:\d+: max_connections_per_peer "
                   r"reached\n")
        # F18: the two held back are reported once their second is over,
        # though no refusal follows; never "(0 more not logged)".
        d.wait_log(r"\[deye\] refused 2 more connection\(s\): "
                   r"max_connections_per_peer reached", 4)
        self.assertNotIn("0 more not logged", d.log())
        self.assertEqual(d.log().count("max_connections_per_peer reached"),
                         2, d.log())
        # A slot freed is a slot for that peer again.
        slow.pop().close()
        d.wait_log(r"closed conn=\d+ listener=deye peer=127\.0\.0\.2")
        s = connect_from(d, "127.0.0.2")
        self.echoes(s)
        for s in slow + [logger]:
            s.close()

    def test_ipv4_mapped_peers_count_as_ipv4(self):
        up = self.server(echo_handler)
        d = self.daemon("max_connections_per_peer=2", upstream=up.addr,
                        listen="[::]:0")
        a, b = connect_from(d, "127.0.0.3"), connect_from(d, "127.0.0.3")
        for s in (a, b):
            self.echoes(s)
        c = connect_from(d, "127.0.0.3")
        self.assert_closed_soon(c, 2)
        d.wait_log(r"refused 127\.0\.0\.3:\d+: max_connections_per_peer")
        self.echoes(connect_from(d, "127.0.0.4"))


class TestRefusalCounts(FaultTest):
    def test_short_burst_count_reported_without_another_refusal(self):
        # F18: 7 refusals in well under a second: one line, then the 6
        # others once the second is over.
        d = self.daemon("allow=127.0.0.1/32", upstream="127.0.0.1:9")
        for _ in range(7):
            s = connect_from(d, "127.0.0.2")
            recv_all(s)
            s.close()
        d.wait_log(r"\[deye\] refused 6 more connection\(s\): not in allow", 4)
        log = d.log()
        self.assertEqual(len(re.findall(
            r"refused 127\.0\.0\.2:\d+: not in allow\n", log)), 1, log)
        self.assertNotIn("more not logged", log)


class TestOutOfFds(FaultTest):
    def test_fd_shortage_is_resources_never_answered_locally(self):
        # F9: with on_upstream_failure = answer, a socket() that fails for
        # want of fds must neither blame the upstream nor answer the logger.
        up = self.server(echo_handler)
        d = self.daemon("deye.on_upstream_failure=answer", "events=none",
                        upstream=up.addr)
        self.echoes(d.connect())
        d.wait_log(r"closed conn=1 ")
        fds = len(os.listdir("/proc/%d/fd" % d.proc.pid))
        # Room for the accepted socket, none for the upstream one.
        prlimit(d.proc.pid, "--nofile=%d:" % (fds + 1))  # soft only
        n = 20
        t0 = time.monotonic()
        for _ in range(n):
            s = d.connect()
            self.assert_closed_soon(s, 3)
            s.close()
        took = time.monotonic() - t0
        d.wait_count("end=relay:resources", n, 5)
        log = d.log()
        self.assertNotIn("carrying on locally", log)
        self.assertNotIn("answered=locally", log)
        self.assertNotIn("connect-failed", log)
        self.assertEqual(up.accepted, 1)
        # At most a line a second, and every failure counted.
        self.assertLessEqual(len(self.resource_lines(d)), took + 3, log)
        self.assertTrue(wait_for(lambda: self.resource_total(d) == n, 4),
                        "%d of %d accounted:\n%s" % (self.resource_total(d),
                                                     n, d.log()))
        self.assertIn("Too many open files", log)
        # Once fds are back, connections are relayed again.
        prlimit(d.proc.pid, "--nofile=4096:")
        self.echoes(d.connect())
        self.assertEqual(up.accepted, 2)


class TestOutOfThreads(FaultTest):
    def test_thread_shortage_is_resources_rate_limited_and_recovers(self):
        # F10: pthread_create fails (RLIMIT_NPROC of the user the daemon
        # runs as; root ignores it, and a nobody's limit can only be set
        # from the start): refused or ended as resources, a line a second,
        # served again once threads are free.  The upstream uses no thread
        # per connection: when the daemon runs as the user running the
        # tests, those threads would count against its limit too.
        up = SelectEchoServer()
        self.addCleanup(up.close)
        user = NOBODY if am_root() else os.geteuid()
        running = r"running as nobody" if am_root() else r"listening on"
        opts = ("events=none",)
        p = self.daemon(*opts, "log_level=debug", *self.user_opts(),
                        upstream=up.addr)
        p.wait_log(running)
        self.echoes(p.connect())
        p.wait_log(r"closed conn=1 ")
        # Its threads park, and end after a second idle.
        p.wait_log(r"idle relay thread\(s\) ended, 0 left")
        base = p.threads()
        self.assertEqual(p.stop()[0], 0)
        # Room for the daemon, one connection (3 threads) and one more.
        limit = tasks_of(user) + base + 3 + 1
        self.wrapped("--nproc=%d:%d" % (limit, limit))
        d = self.daemon(*opts, *self.user_opts(), upstream=up.addr)
        d.wait_log(running)
        held = d.connect()
        self.echoes(held)
        n = 20
        t0 = time.monotonic()
        for _ in range(n):
            s = d.connect()
            self.assert_closed_soon(s, 3)
            s.close()
        took = time.monotonic() - t0

        def total():
            log = d.log()
            return log.count("end=relay:resources") + len(re.findall(
                r"refused 127\.0\.0\.1:\d+: out of resources", log)) + sum(
                int(k) for k in re.findall(
                    r"out of resources: [^\n]*\((\d+) more not logged\)",
                    log)) + sum(int(k) for k in re.findall(
                        r"refused (\d+) more connection\(s\): out of "
                        r"resources", log))
        self.assertTrue(wait_for(lambda: total() == n, 4),
                        "%d of %d accounted:\n%s" % (total(), n, d.log()))
        log = d.log()
        self.assertIn("cannot start a pump thread: Resource temporarily "
                      "unavailable, closed as relay:resources", log)
        self.assertNotIn("no-thread", log)
        self.assertNotIn("cannot start a connection thread", log)
        warns = re.findall(r"(?m)^.* warn: .*(?:out of resources|"
                           r"relay:resources).*$", log)
        self.assertLessEqual(len(warns), 2 * took + 4, log)
        # Threads free again: served.
        held.close()
        d.wait_log(r"closed conn=1 ")
        self.assertTrue(wait_for(lambda: d.threads() == base, 3))
        self.echoes(d.connect())


class TestStartUpLimits(FaultTest):
    def test_fd_limit_below_max_connections_is_a_warning(self):
        self.wrapped("--nofile=64:64")
        up = self.server(echo_handler)
        d = self.daemon("max_connections=512", upstream=up.addr)
        d.wait_log(r"max_connections = 512 needs about 1088 open files \(2 "
                   r"per connection[^\n]*limit is 64: raise it \(LimitNOFILE=")
        self.echoes(d.connect())  # a warning, not a refusal to start

    def test_capture_doubles_the_fds_and_threads_are_checked(self):
        self.wrapped("--nofile=800:800", "--nproc=200:200")
        cap = tempfile.mkdtemp(prefix="deye-capture-")
        self.addCleanup(subprocess.run, ["rm", "-rf", cap])
        if am_root():
            os.chown(cap, NOBODY, NOBODY)
        d = self.daemon("max_connections=200", "deye.capture_dir=" + cap,
                        "events=none", *self.user_opts(),
                        upstream="127.0.0.1:9")
        d.wait_log(r"needs about 864 open files \(4 per connection")
        d.wait_log(r"needs about 616 threads \(3 per connection\) but this "
                   r"user may run only 200")

    def test_no_warning_when_the_limits_fit(self):
        d = self.daemon("max_connections=100", upstream="127.0.0.1:9")
        d.wait_log(r"listening on")
        time.sleep(0.2)
        self.assertNotIn("needs about", d.log())


class TestEnvoyBudget(FaultTest):
    HEAD = (b"POST /emu_reports/performance_report HTTP/1.1\r\n"
            b"Host: reports.enphaseenergy.com\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n")

    def test_bodies_in_flight_are_bounded_in_total(self):
        # F16: max_body 64K makes a budget of 8 x 64K for all bodies being
        # read.  Twelve requests are held unfinished with 50,000 body bytes
        # each: eight are kept, four are refused, and all are relayed.
        got = {}
        lock = threading.Lock()

        def enphase(c):
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            n = int(re.search(rb"Content-Length: (\d+)", buf).group(1))
            body = buf.split(b"\r\n\r\n", 1)[1]
            with lock:
                got[c.getpeername()] = len(body)
            while len(body) < n:
                b = c.recv(65536)
                if not b:
                    return
                body += b
                with lock:
                    got[c.getpeername()] = len(body)
            with lock:
                got[c.getpeername()] = len(body)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            recv_all(c)

        up = self.server(enphase)
        spool = tempfile.mkdtemp(prefix="deye-spool-")
        self.addCleanup(subprocess.run, ["rm", "-rf", spool])
        d = self.daemon("envoy.protocol=envoy", "envoy.listen=127.0.0.1:0",
                        "envoy.upstream=" + up.addr, "envoy.spool_dir=" + spool,
                        "envoy.max_body=64K", "max_connections_per_peer=64",
                        upstream="none")
        n, size, first = 12, 60_000, 50_000
        body = b"body=" + b"x" * (size - 5)
        conns = []
        for i in range(n):
            s = d.connect("envoy")
            s.sendall(self.HEAD % size + body[:first])
            conns.append(s)
            self.assertTrue(wait_for(lambda: len(got) == i + 1 and all(
                v == first for v in got.values()), 5), got)
        for s in conns:
            s.sendall(body[first:])
            self.assertEqual(recv_all(s, 40)[-2:], b"ok")
        for s in conns:
            s.close()
        d.wait_count("closed conn=", n, 10)
        self.assertTrue(wait_for(lambda: len([
            f for f in os.listdir(spool) if f.endswith(".request")]) == 8, 5),
            os.listdir(spool))
        log = d.log()
        over = re.findall(r"\[envoy\] up: 1 HTTP message\(s\), 0 malformed, "
                          r"0 over max_body, 1 over the budget", log)
        self.assertEqual(len(over), 4, log)
        # Logged at most once a second (an answer racing its request's
        # release of the budget may be refused too).
        warned = re.findall(r"relayed, not captured: the Envoy bodies in "
                            r"flight are at their budget of 512 KiB", log)
        self.assertGreaterEqual(len(warned), 1, log)
        self.assertLessEqual(len(warned), 3, log)
        # Every byte relayed both ways.
        self.assertEqual(sorted(got.values()), [size] * n)


if __name__ == "__main__":
    unittest.main()
