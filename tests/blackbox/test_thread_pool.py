"""The relay's threads are reused: a connection's controller and its two
pumps run on parked threads when there are some, each live connection
still has three threads of its own, and after an idle second the parked
ones end, so the thread count returns to its baseline, and so does the
memory of their stacks."""
import os
import socket
import unittest

from harness import echo_handler, recv_all, wait_for
from test_relay import RelayTest


def tids(pid):
    return set(os.listdir("/proc/%d/task" % pid))


def stacks_kib(pid):
    """Resident KiB of the thread stacks: the anonymous read-write mappings
    right above a one-page PROT_NONE guard (/proc/PID/smaps)."""
    page = os.sysconf("SC_PAGE_SIZE") // 1024
    total, in_stack, prev_guard_end = 0, False, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                in_stack = (len(head) == 5 and head[1].startswith("rw")
                            and prev_guard_end == lo)
                prev_guard_end = (hi if len(head) == 5 and
                                  head[1].startswith("---") and
                                  (hi - lo) // 1024 == page else None)
            elif head[0] == "Rss:" and in_stack:
                total += int(head[1])
    return total


class TestThreadPool(RelayTest):
    def echo(self, s, msg):
        s.sendall(msg)
        self.assertEqual(recv_all(s, len(msg)), msg)

    def test_threads_are_reused_never_shared_and_trimmed_when_idle(self):
        up = self.server(echo_handler)
        d = self.daemon("max_connections_per_peer=100", "log_level=debug",
                        upstream=up.addr)
        pid = d.pid()
        # The baseline after a connection has come and gone (threads
        # started lazily, a sanitizer's say, are in it) and its three
        # threads, parked, were ended after a second idle.
        s = d.connect()
        self.echo(s, b"first")
        s.close()
        d.wait_log(r"idle relay thread\(s\) ended, 0 left")
        base = tids(pid)
        # Sequential churn: every connection finds the threads the one
        # before it parked.  Without reuse each would bring three new ones.
        # (A thread parks just after its connection's "closed" line: the
        # next may come a moment too early and start one more.)
        seen = set()
        for i in range(40):
            s = d.connect()
            self.echo(s, b"seq %d" % i)
            seen |= tids(pid) - base
            s.close()
            d.wait_log(r"closed conn=%d " % (i + 2))
        self.assertLessEqual(len(seen), 30, "threads seen: %d" % len(seen))
        # Bursts of live connections: each has its own controller and two
        # pumps, reused threads or not, and all echo at once.
        for burst in range(3):
            socks = [d.connect() for _ in range(30)]
            for i, s in enumerate(socks):
                s.sendall(b"burst %d %d" % (burst, i))
            for i, s in enumerate(socks):
                msg = b"burst %d %d" % (burst, i)
                self.assertEqual(recv_all(s, len(msg)), msg)
            self.assertGreaterEqual(len(tids(pid)), len(base) + 30 * 3)
            for s in socks:
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_all(s), b"")
                s.close()
        d.wait_count("closed conn=", 1 + 40 + 90)
        # Idle: the parked threads end, down to the baseline.
        self.assertTrue(wait_for(lambda: len(tids(pid)) <= len(base), 5),
                        "threads %d, baseline %d" % (len(tids(pid)),
                                                     len(base)))
        # And the relay goes on.
        s = d.connect()
        self.echo(s, b"after")
        s.close()

    def test_stacks_given_back_after_a_burst(self):
        """900 threads end after a burst; their stacks must not stay
        resident (glibc keeps up to 40 MiB of ended threads' stacks, with
        their top pages in memory: 5 MiB and more)."""
        n = 300
        up = self.server(echo_handler)
        d = self.daemon("max_connections_per_peer=%d" % n,
                        "log_level=debug", upstream=up.addr)
        pid = d.pid()
        s = d.connect()
        self.echo(s, b"first")
        s.close()
        d.wait_log(r"idle relay thread\(s\) ended, 0 left")
        base, base_kib = tids(pid), stacks_kib(pid)
        socks = [d.connect() for _ in range(n)]
        for i, s in enumerate(socks):
            self.echo(s, b"burst %d" % i)
        self.assertGreaterEqual(len(tids(pid)), len(base) + 3 * n)
        held_kib = stacks_kib(pid)
        for s in socks:
            s.close()
        self.assertTrue(wait_for(lambda: len(tids(pid)) <= len(base), 10),
                        "threads %d, baseline %d" % (len(tids(pid)),
                                                     len(base)))
        # Ended threads are joined and unmapped on the next tick.
        after = wait_for(lambda: stacks_kib(pid) <= base_kib + 128 and
                         stacks_kib(pid), 5) or stacks_kib(pid)
        self.assertLessEqual(after, base_kib + 128,
                             "stacks %d KiB after the burst, %d before it, "
                             "%d while held" % (after, base_kib, held_kib))


class TestResolver(RelayTest):
    def test_a_name_upstream_is_looked_up_off_the_controllers(self):
        # "localhost" goes to the resolver thread; connections asking at
        # once share a queued lookup.  (A numeric upstream is parsed in
        # place: every other test.)
        up = self.server(echo_handler)
        d = self.daemon("max_connections_per_peer=100",
                        upstream="localhost:%d" % up.port)
        socks = [d.connect() for _ in range(20)]
        for i, s in enumerate(socks):
            s.sendall(b"name %d" % i)
        for i, s in enumerate(socks):
            msg = b"name %d" % i
            self.assertEqual(recv_all(s, len(msg)), msg)
            s.close()
        d.wait_count("closed conn=", 20)
        self.assertNotIn("connect-failed", d.log())


if __name__ == "__main__":
    unittest.main()
