"""The relay: bytes exact both ways, half-close, upstream failures, timeouts,
refusals, shutdown and thread accounting, all through the real binary."""
import hashlib
import os
import random
import socket
import re
import struct
import tempfile
import threading
import time
import unittest

from harness import (Daemon, Server, SLOW, echo_handler, recv_all, wait_for)


class RelayTest(unittest.TestCase):
    def setUp(self):
        self.daemons = []
        self.servers = []
        # tearDown is not run when a subclass's setUp fails after starting
        # a daemon (a server that did not start): this cleanup, run last,
        # stops what is still running then.
        self.addCleanup(self.stop_all)

    def tearDown(self):
        self.stop_all()

    def stop_all(self):
        servers, self.servers = self.servers, []
        daemons, self.daemons = self.daemons, []
        for s in servers:
            s.close()
        # Every daemon stopped before the first complaint.
        ended = [(d, d.stop()[0]) for d in daemons]
        for d, rc in ended:
            log = d.log()
            d.dir.cleanup()
            self.assertEqual(rc, 0, "deye-mitm exit status; log:\n" + log)
            self.assertFalse(any(m in log for m in (
                "AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                "runtime error:")), "sanitizer report:\n" + log)

    def daemon(self, *opts, **kw):
        d = Daemon(*opts, **kw)
        self.daemons.append(d)
        d.port()
        return d

    def server(self, handler, **kw):
        s = Server(handler, **kw)
        self.servers.append(s)
        return s

    def assert_closed_soon(self, s, within):
        """The relay closes s (EOF or reset) within `within` seconds."""
        s.settimeout(within * SLOW + 1)
        t0 = time.monotonic()
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            self.fail("connection still open after %.1fs" % (within * SLOW + 1))
        return time.monotonic() - t0


class TestTransfer(RelayTest):
    def test_bytes_exact_both_ways_concurrently(self):
        up = self.server(echo_handler)
        n_conns = 40
        # All from 127.0.0.1: more than max_connections_per_peer's default.
        d = self.daemon("max_connections_per_peer=%d" % n_conns,
                        upstream=up.addr)
        results = [None] * n_conns

        def client(i):
            rnd = random.Random(i)
            data = rnd.randbytes(rnd.randint(1, 600_000))
            s = d.connect()
            got = []

            def reader():
                got.append(recv_all(s))
            t = threading.Thread(target=reader)
            t.start()
            off = 0
            while off < len(data):
                n = rnd.choice((1, 7, 100, 1460, 4096, 65536, 200_000))
                s.sendall(data[off:off + n])
                off += n
                if rnd.random() < 0.05:
                    time.sleep(0.001)
            s.shutdown(socket.SHUT_WR)
            t.join()
            s.close()
            results[i] = (hashlib.sha256(data).hexdigest(), len(data),
                          hashlib.sha256(got[0]).hexdigest(), len(got[0]))

        ts = [threading.Thread(target=client, args=(i,)) for i in range(n_conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60 * SLOW)
        for i, r in enumerate(results):
            self.assertIsNotNone(r, "client %d did not finish" % i)
            self.assertEqual(r[0:2], r[2:4], "client %d: bytes differ" % i)
        self.assertEqual(up.errors, [])
        # One line per connection, with the byte counts of both directions.
        d.wait_count("closed conn=", n_conns, 10)
        for h, size, _, _ in results:
            self.assertRegex(d.log(), r"up=%d down=%d end=client:eof" % (size, size))

    def test_half_close_answer_after_eof(self):
        answer = random.Random(7).randbytes(1_500_000)

        def after_eof(c):
            recv_all(c)          # the request, until the client's EOF
            c.sendall(answer)
            c.shutdown(socket.SHUT_WR)
        up = self.server(after_eof)
        d = self.daemon(upstream=up.addr)
        s = d.connect()
        s.sendall(b"request" * 1000)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        self.assertEqual(len(got), len(answer))
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(answer).digest())
        d.wait_log(r"closed conn=1 .* up=7000 down=1500000 end=client:eof")

    def test_fin_timeout_closes_a_silent_half_closed_connection(self):
        def never_answers(c):
            recv_all(c)
            time.sleep(10 * SLOW)
        up = self.server(never_answers)
        d = self.daemon("deye.fin_timeout=500ms", upstream=up.addr)
        s = d.connect()
        s.sendall(b"x")
        s.shutdown(socket.SHUT_WR)
        took = self.assert_closed_soon(s, 3)
        self.assertGreaterEqual(took, 0.4)
        d.wait_log(r"closed conn=1 .*end=client:eof\+relay:fin-timeout")

    def test_capture_dir_keeps_both_directions(self):
        up = self.server(echo_handler)
        tmp = tempfile.TemporaryDirectory(prefix="deye-cap-")
        self.addCleanup(tmp.cleanup)
        cap = os.path.join(tmp.name, "cap")   # created by the daemon
        d = self.daemon("deye.capture_dir=" + cap, upstream=up.addr)
        s = d.connect()
        s.sendall(b"\xa5hello")
        self.assertEqual(recv_all(s, 6), b"\xa5hello")
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()
        d.wait_log(r"closed conn=1 ")

        def files():
            """{name: bytes}: the capture writer runs on its own thread."""
            out = {}
            for n in os.listdir(cap):
                with open(os.path.join(cap, n), "rb") as f:
                    out[n] = f.read()
            return out
        wait_for(lambda: len(files()) == 2 and
                 all(v == b"\xa5hello" for v in files().values()), 5)
        got = files()
        names = sorted(got)
        self.assertEqual(len(names), 2, names)
        self.assertRegex(names[0], r"^\d{8}T\d{6}Z-deye-1-down\.bin$")
        self.assertRegex(names[1], r"^\d{8}T\d{6}Z-deye-1-up\.bin$")
        for n in names:
            self.assertEqual(got[n], b"\xa5hello")


class TestIPv6(RelayTest):
    def test_dual_stack_listener_and_ipv6_upstream(self):
        srv = socket.socket(socket.AF_INET6)
        srv.bind(("::1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]

        def loop():
            c, _ = srv.accept()
            with c:
                echo_handler(c)
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        d = self.daemon(listen="[::]:0", upstream="[::1]:%d" % port)
        d.wait_log(r"\[deye\] listening on \[::\]:\d+")
        # An IPv4 peer on the dual-stack listener matches 127.0.0.0/8 and
        # is logged as IPv4.
        s = socket.create_connection(("127.0.0.1", d.port()), timeout=5)
        s.sendall(b"six")
        self.assertEqual(recv_all(s, 3), b"six")
        s.close()
        d.wait_log(r"closed conn=1 .*peer=127\.0\.0\.1:\d+ upstream=\[::1\]:%d " % port)
        srv.close()


class TestUpstreamFailures(RelayTest):
    def test_upstream_refused(self):
        s0 = socket.socket()
        s0.bind(("127.0.0.1", 0))      # bound, never listening: refused
        port = s0.getsockname()[1]
        try:
            d = self.daemon(upstream="127.0.0.1:%d" % port)
            s = d.connect()
            took = self.assert_closed_soon(s, 2)
            self.assertLess(took, 2 * SLOW)
            d.wait_log(r"closed conn=1 .*upstream=- .*end=upstream:connect-failed")
            d.wait_log(r"upstream 127\.0\.0\.1:%d: .*Connection refused" % port)
        finally:
            s0.close()

    def test_upstream_never_answers_connect(self):
        # A listener whose accept queue is full drops further SYNs, so a
        # connect to it hangs: a black hole on loopback.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        port = hole.getsockname()[1]
        fillers = []
        while True:
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
            _, w, _ = __import__("select").select([], [f], [], 0.3)
            if not w:
                break
            self.assertLess(len(fillers), 64, "could not fill the backlog")
        try:
            d = self.daemon("deye.connect_timeout=700ms",
                            upstream="127.0.0.1:%d" % port)
            s = d.connect()
            took = self.assert_closed_soon(s, 4)
            self.assertGreaterEqual(took, 0.6)
            d.wait_log(r"closed conn=1 .*end=upstream:connect-timeout")
        finally:
            for f in fillers:
                f.close()
            hole.close()

    def test_upstream_reset_mid_stream(self):
        got_some = threading.Event()

        def resetter(c):
            c.recv(10)
            got_some.set()
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        up = self.server(resetter)
        d = self.daemon(upstream=up.addr)
        s = d.connect()
        s.sendall(b"0123456789")
        self.assertTrue(got_some.wait(5 * SLOW))
        self.assert_closed_soon(s, 3)
        d.wait_log(r"closed conn=1 .*end=upstream:reset")

    def test_refuses_to_connect_to_itself(self):
        # A DNS override that also catches the relay would make it dial
        # itself; here the upstream is our own listener, bound to that very
        # address or to the wildcard.
        for bind in ("127.0.0.1", "0.0.0.0"):
            s0 = socket.socket()
            s0.bind(("127.0.0.1", 0))
            port = s0.getsockname()[1]
            s0.close()
            d = self.daemon(listen="%s:%d" % (bind, port),
                            upstream="127.0.0.1:%d" % port)
            s = d.connect()
            self.assert_closed_soon(s, 2)
            d.wait_log(r"own listeners: refusing to loop")
            d.wait_log(r"closed conn=1 .*end=upstream:connect-failed")
            self.assertNotRegex(d.log(), r"closed conn=2 ")


class TestTimeoutsAndLimits(RelayTest):
    def test_idle_client_is_closed(self):
        up = self.server(echo_handler)
        d = self.daemon("deye.idle_timeout=800ms", upstream=up.addr)
        s = d.connect()
        took = self.assert_closed_soon(s, 3)
        self.assertGreaterEqual(took, 0.7)
        d.wait_log(r"closed conn=1 .*end=relay:idle-timeout")

    def test_traffic_keeps_a_connection_alive(self):
        up = self.server(echo_handler)
        d = self.daemon("deye.idle_timeout=600ms", upstream=up.addr)
        s = d.connect()
        for _ in range(8):          # 8 x 250 ms: longer than idle_timeout
            s.sendall(b"ping")
            self.assertEqual(recv_all(s, 4), b"ping")
            time.sleep(0.25)
        self.assertNotIn("closed conn=1", d.log())
        s.close()

    def test_max_connections(self):
        up = self.server(echo_handler)
        d = self.daemon("max_connections=2", upstream=up.addr)
        a, b = d.connect(), d.connect()
        for s in (a, b):
            s.sendall(b"hi")
            self.assertEqual(recv_all(s, 2), b"hi")
        c = d.connect()
        self.assert_closed_soon(c, 1)
        d.wait_log(r"refused 127\.0\.0\.1:\d+: max_connections reached")
        a.close()
        d.wait_log(r"closed conn=1 ")

        # The slot is free a moment after the "closed" line is queued
        # (the count drops once the line is out): a connect in between
        # is still refused.
        def a_slot_is_free():
            e = d.connect()
            try:
                e.sendall(b"ok")
                return recv_all(e, 2) == b"ok"
            except OSError:
                return False
            finally:
                e.close()
        self.assertTrue(wait_for(a_slot_is_free, 5), d.log())

    def test_allow_list_refusal(self):
        up = self.server(echo_handler)
        d = self.daemon("allow=10.0.0.0/8, 192.168.0.0/16", upstream=up.addr)
        s = d.connect()
        self.assert_closed_soon(s, 1)
        d.wait_log(r"refused 127\.0\.0\.1:\d+: not in allow")
        self.assertEqual(up.accepted, 0)

    def test_refusal_log_is_rate_limited(self):
        d = self.daemon("allow=10.0.0.0/8", upstream="127.0.0.1:9")
        for _ in range(30):
            s = d.connect()
            recv_all(s)
            s.close()
        time.sleep(1.1)
        s = d.connect()
        recv_all(s)
        # 31 refusals: the first logged, the next ones counted, and the
        # count logged once its second is over (or with the next line).
        def accounted():
            log = d.log()
            plain = len(re.findall(r"refused 127\.0\.0\.1:\d+: not in allow",
                                   log))
            more = sum(int(n) for n in re.findall(
                r"not in allow \((\d+) more not logged\)", log))
            flushed = sum(int(n) for n in re.findall(
                r"refused (\d+) more connection\(s\): not in allow", log))
            return plain + more + flushed
        wait_for(lambda: accounted() == 31, 5)
        self.assertEqual(accounted(), 31, d.log())
        self.assertLessEqual(d.log().count("not in allow"), 4, d.log())
        self.assertNotIn("(0 more not logged)", d.log())


class TestLifecycle(RelayTest):
    def test_sigterm_with_live_connections(self):
        up = self.server(echo_handler)
        d = self.daemon(upstream=up.addr)
        socks = [d.connect() for _ in range(5)]
        for s in socks:
            s.sendall(b"x")
            self.assertEqual(recv_all(s, 1), b"x")
        self.daemons.remove(d)
        rc, took = d.stop()
        log = d.log()
        d.dir.cleanup()
        self.assertEqual(rc, 0, log)
        self.assertLess(took, 4)
        for s in socks:
            self.assert_closed_soon(s, 1)
        self.assertEqual(log.count("end=relay:shutdown"), 5, log)
        self.assertIn("stopped", log)

    def test_threads_back_to_baseline(self):
        up = self.server(echo_handler)
        d = self.daemon("max_connections_per_peer=64", "log_level=debug",
                        upstream=up.addr)
        # Baseline after one connection has come and gone and its threads,
        # parked for reuse, were ended after a second idle.
        w = d.connect()
        w.sendall(b"w")
        self.assertEqual(recv_all(w, 1), b"w")
        w.close()
        d.wait_log(r"closed conn=1 ")
        d.wait_log(r"idle relay thread\(s\) ended, 0 left")
        base = d.threads()
        socks = [d.connect() for _ in range(30)]
        for s in socks:
            s.sendall(b"y")
            self.assertEqual(recv_all(s, 1), b"y")
        self.assertGreaterEqual(d.threads(), base + 30 * 3)
        for s in socks:
            s.close()
        self.assertTrue(wait_for(lambda: d.threads() == base, 5),
                        "threads: %d, baseline %d" % (d.threads(), base))
        d.wait_count("closed conn=", 31)

    def test_sighup_is_logged_not_fatal(self):
        up = self.server(echo_handler)
        d = self.daemon(upstream=up.addr)
        d.proc.send_signal(1)
        d.wait_log(r"SIGHUP")
        s = d.connect()
        s.sendall(b"z")
        self.assertEqual(recv_all(s, 1), b"z")


if __name__ == "__main__":
    unittest.main()
