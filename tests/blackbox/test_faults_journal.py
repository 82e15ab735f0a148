"""The journal under faults (FAULTS.md F1, F2, F5, F7, F11): no free fd,
a full disk, damaged records, a second instance on one state_dir."""
import errno
import glob
import json
import os
import pwd
import resource
import socket
import struct
import tempfile
import threading
import unittest
import zlib

from harness import (Daemon, echo_handler, mount_tmpfs, privileged,
                     read_events, recv_all, run, wait_for)
from hec_receiver import HecReceiver
from test_relay import RelayTest
from test_solarman import FRAMES

HEARTBEAT = FRAMES["dongle-heartbeat-0x47"]
DATA = FRAMES["deye-m80g3-data-0x42"]


def with_serial(frame, serial):
    """frame with logger.serial set to serial, checksum fixed."""
    b = bytearray(frame)
    b[7:11] = struct.pack("<I", serial)
    b[-2] = sum(b[1:-2]) & 0xff
    return bytes(b)


def records(path):
    """[(offset, size, event)] of a segment's valid records, in order,
    stopping at the first bad one (the test knows where it put damage)."""
    out, off = [], 0
    with open(path, "rb") as f:
        b = f.read()
    while off + 16 <= len(b):
        n, crc = struct.unpack_from("<II", b, off)
        body = b[off + 8:off + 16 + n]
        if len(body) != 8 + n or zlib.crc32(body) != crc:
            break
        out.append((off, 16 + n, json.loads(body[8:])))
        off += 16 + n
    return out


def data_serials(events):
    return {e["logger.serial"] for e in events if e.get("type") == "data"}


class FaultsJournalTest(RelayTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="deye-faults-j-")
        self.addCleanup(self.tmp.cleanup)
        self.state = os.path.join(self.tmp.name, "state")
        self.serial = 5000

    def mount_tmpfs(self, size):
        """state_dir's parent on a tmpfs of `size`; unmounted in cleanup."""
        mnt = os.path.join(self.tmp.name, "mnt")
        os.mkdir(mnt)
        self.addCleanup(mount_tmpfs(mnt, size))
        self.state = os.path.join(mnt, "state")

    def assert_space_back(self, old):
        """The full segment old is gone and its blocks are free: what the
        tmpfs holds is what its files hold (none kept by an open fd).  The
        new segment may hold a backlog the writer had queued meanwhile."""
        self.assertFalse(os.path.exists(old))
        st = os.statvfs(os.path.dirname(self.state))
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        files = 0
        for root, _, names in os.walk(self.state):
            for f in names:
                files += os.path.getsize(os.path.join(root, f))
        self.assertLess(used, files + 64 * 1024, (used, files))

    def disk_used(self):
        st = os.statvfs(os.path.dirname(self.state))
        return 1 - st.f_bfree / st.f_blocks

    def send_data(self, d, n):
        """n data frames with fresh serials on one connection; returns the
        serials.  upstream=none: the relay answers each."""
        serials = list(range(self.serial + 1, self.serial + 1 + n))
        self.serial += n
        s = d.connect()
        s.sendall(b"".join(with_serial(DATA, x) for x in serials))
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()
        return serials

    def one_arrives(self, d, delivered):
        """Send a frame every 0.1 s until one of them is delivered."""
        sent = set()

        def arrived():
            sent.update(self.send_data(d, 1))
            return sent & delivered()
        return wait_for(arrived, 10, step=0.1)

    def stop(self, d):
        rc, _ = d.stop(15)
        self.daemons.remove(d)
        log = d.log()
        d.dir.cleanup()
        self.assertEqual(rc, 0, log)
        return log


class TestNoFreeFd(FaultsJournalTest):
    def test_reader_retries_a_segment_it_cannot_open(self):
        # F1: the events reader opens its segment lazily, at the first
        # record.  With no fd free then it must wait, not skip.
        up = self.server(echo_handler)
        events = os.path.join(self.tmp.name, "events.jsonl")
        d = self.daemon("state_dir=" + self.state, "events=" + events,
                        upstream=up.addr)
        fds = "/proc/%d/fd" % d.proc.pid
        s = d.connect()
        # Client and upstream sockets in place (the journal's, the sinks'
        # and the outbox's were opened before the listener accepts): then
        # no fd is left.
        self.assertTrue(wait_for(lambda: up.accepted >= 1, 5))
        used = {int(x) for x in os.listdir(fds)}
        free = min(set(range(len(used) + 1)) - used)
        old = resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (free, old[1]))
        serials = list(range(100, 110))
        try:
            for x in serials[:5]:
                s.sendall(with_serial(HEARTBEAT, x))
                self.assertEqual(len(recv_all(s, len(HEARTBEAT))),
                                 len(HEARTBEAT))
            d.wait_log(r"journal: sink 'events' cannot read segment 1: "
                       r"Too many open files; retrying")
        finally:
            resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
        for x in serials[5:]:
            s.sendall(with_serial(HEARTBEAT, x))
            recv_all(s, len(HEARTBEAT))
        s.close()

        def heartbeats():
            return [e for e in read_events(events) if e["type"] == "heartbeat"]
        # Each heartbeat twice: up, and its echo down.
        self.assertTrue(wait_for(lambda: len(heartbeats()) >= 20, 5),
                        d.log())
        d.wait_log(r"journal: sink 'events' reading again after \d+ failed")
        log = self.stop(d)
        self.assertEqual(sorted(e["logger.serial"] for e in heartbeats()),
                         sorted(serials * 2), log)
        self.assertNotIn("skipped", log)


class TestFullDisk(FaultsJournalTest):
    def test_full_disk_recovers_once_the_sink_caught_up(self):
        # F2, F11: the events sink writes to a FIFO nobody reads, so it
        # delivers nothing while the journal fills the tmpfs.
        self.mount_tmpfs("1m")
        fifo = os.path.join(self.tmp.name, "events.fifo")
        os.mkfifo(fifo)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, rfd)
        d = self.daemon("state_dir=" + self.state, "events=" + fifo,
                        "deye.upstream=none")
        journaled = []
        for _ in range(40):
            journaled += self.send_data(d, 50)
            if "journal: No space left on device" in d.log():
                break
        d.wait_log(r"error: journal: No space left on device \(1 failed "
                   r"attempt\(s\)\); events wait in the outbox, the relay "
                   r"goes on")
        self.assertGreater(self.disk_used(), 0.9)
        seg = sorted(glob.glob(os.path.join(self.state, "journal", "*.seg")))
        self.assertEqual(len(seg), 1)
        kept = data_serials(e for _, _, e in records(seg[0]))
        self.assertGreater(len(kept), 100)

        # The sink catches up.
        lines, buf = [], bytearray()
        done = threading.Event()

        def drain():
            os.set_blocking(rfd, True)
            while True:
                b = os.read(rfd, 65536)
                if not b:
                    break
                buf.extend(b)
                *whole, rest = buf.split(b"\n")
                lines.extend(json.loads(x) for x in whole)
                buf[:] = rest
            done.set()
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        self.assertTrue(wait_for(lambda: kept <= data_serials(lines), 10))

        # New frames are journaled and delivered again, without a restart.
        self.assertTrue(self.one_arrives(d, lambda: data_serials(lines)),
                        d.log())
        later = self.send_data(d, 50)
        self.assertTrue(wait_for(
            lambda: set(later) <= data_serials(lines), 10), d.log())
        # Nothing was lost: what the disk refused waited in the outbox.
        self.assertTrue(wait_for(
            lambda: set(journaled) <= data_serials(lines), 10), d.log())
        self.assert_space_back(seg[0])
        d.wait_log(r"info: journal: appending again")
        log = self.stop(d)
        self.assertTrue(done.wait(10))
        # F11: the cursor's failures are not logged at every commit and
        # leave no .tmp behind.
        self.assertLessEqual(log.count("warn: journal cursor"), 1, log)
        self.assertEqual(glob.glob(os.path.join(self.state, "journal",
                                                "*.tmp")), [])
        # The running count: at once, then at most every 10 s.
        self.assertLessEqual(log.count("events wait in the outbox"), 3, log)

    def test_full_disk_recovers_after_a_restart(self):
        # F2, the restart path: the disk is still full when deye-mitm
        # starts again, and HEC is back.
        self.mount_tmpfs("1m")
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        self.addCleanup(hole.close)
        d = self.daemon("state_dir=" + self.state, "events=none",
                        "deye.upstream=none", "hec.token=t",
                        "hec.url=http://127.0.0.1:%d" % hole.getsockname()[1])
        for _ in range(40):
            self.send_data(d, 50)
            if "journal: No space left on device" in d.log():
                break
        d.wait_log(r"No space left on device")
        self.stop(d)
        seg = sorted(glob.glob(os.path.join(self.state, "journal", "*.seg")))
        kept = data_serials(e for _, _, e in records(seg[-1]))
        self.assertGreater(len(kept), 100)
        self.assertGreater(self.disk_used(), 0.9)

        rx = HecReceiver()
        self.addCleanup(rx.close)
        d = self.daemon("state_dir=" + self.state, "events=none",
                        "deye.upstream=none", "hec.token=" + rx.token,
                        "hec.url=" + rx.url)

        def got():
            with rx.lock:
                return data_serials(e["event"] for e in rx.events)
        self.assertTrue(wait_for(lambda: kept <= got(), 10), d.log())
        self.assertTrue(self.one_arrives(d, got), d.log())
        later = self.send_data(d, 50)
        self.assertTrue(wait_for(lambda: set(later) <= got(), 10), d.log())
        self.assert_space_back(seg[-1])
        self.stop(d)


class TestDamage(FaultsJournalTest):
    def test_a_damaged_record_costs_only_itself(self):
        # F5: damage in the middle of the first and of the last segment.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        self.addCleanup(hole.close)
        common = ("state_dir=" + self.state, "deye.upstream=none",
                  "hec.spool_max=512K")             # 64 KiB segments
        d = self.daemon(*common, "events=none", "hec.token=t",
                        "hec.url=http://127.0.0.1:%d" % hole.getsockname()[1])
        sent = self.send_data(d, 200)
        d.wait_log(r"closed conn=1 ")
        self.stop(d)
        segs = sorted(glob.glob(os.path.join(self.state, "journal", "*.seg")))
        self.assertGreaterEqual(len(segs), 3)
        lost = set()
        for path in (segs[0], segs[-1]):
            recs = records(path)
            # Across the end of one record and the start of the next.
            off, size, ev = recs[len(recs) // 2]
            with open(path, "r+b") as f:
                f.seek(off + size - 4)
                f.write(bytes.fromhex("ffffffffdeadbeef"))
            lost |= data_serials(e for _, _, e in recs[len(recs) // 2:
                                                       len(recs) // 2 + 2])
        events = os.path.join(self.tmp.name, "events.jsonl")
        d = self.daemon(*common, "events=" + events)
        want = set(sent) - lost
        self.assertTrue(wait_for(
            lambda: want <= data_serials(read_events(events)), 10), d.log())
        log = self.stop(d)
        self.assertEqual(data_serials(read_events(events)), want)
        n1, nlast = (int(os.path.basename(p)[:20]) for p in (segs[0], segs[-1]))
        self.assertRegex(log, r"error: journal %s: 2 damaged record\(s\) in 1 "
                         r"place\(s\), \d+ bytes, skipped" % segs[-1])
        for n in (n1, nlast):
            self.assertRegex(log, r"error: journal: sink 'events': damaged "
                             r"record\(s\) in segment %d at offset \d+: 2 "
                             r"record\(s\), \d+ bytes skipped" % n)
            copy = os.path.join(self.state, "damaged", "%020d.seg" % n)
            self.assertTrue(os.path.exists(copy))
        self.assertNotIn("cut off", log)


class TestLock(FaultsJournalTest):
    def test_second_instance_on_one_state_dir_exits_1(self):
        # F7
        d = self.daemon("state_dir=" + self.state, "events=none",
                        "deye.upstream=none")
        port = d.port()  # it runs: the lock is taken
        # On another port, and on the same one (as two copies of one
        # configuration would be): the lock is taken before binding.
        for listen in ("127.0.0.1:0", "127.0.0.1:%d" % port):
            r = run(["-o", "state_dir=" + self.state, "-o", "events=none",
                     "-o", "deye.upstream=none", "-o", "deye.listen=" + listen])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("state_dir %s is in use by another deye-mitm "
                          "(pid %d)" % (self.state, d.proc.pid),
                          r.stderr.decode())
        with open(os.path.join(self.state, "lock")) as f:
            self.assertEqual(f.read().strip(), str(d.proc.pid))
        self.stop(d)
        # Released at exit.
        d = self.daemon("state_dir=" + self.state, "events=none",
                        "deye.upstream=none")
        self.stop(d)

    def test_state_dir_made_before_the_drop_belongs_to_the_user(self):
        # The lock is taken as root, before binding: a state_dir made then
        # is the user's, so the daemon can write it after the drop.
        os.chmod(self.tmp.name, 0o755)
        # Made by root, nobody's: only root can remove it.
        self.addCleanup(privileged, ["rm", "-rf", self.state])
        d = self.daemon("state_dir=" + self.state, "events=none",
                        "deye.upstream=none", "user=nobody", as_root=True)
        d.port()
        d.wait_log(r"running as nobody")
        def owner(p):
            """p's uid, or None; nobody's 0700 state_dir is root's to see
            into when we are not root."""
            r = privileged(["stat", "-c", "%u", p], check=False)
            return int(r.stdout) if r.returncode == 0 else None
        for p in (self.state, os.path.join(self.state, "lock"),
                  os.path.join(self.state, "journal")):
            self.assertTrue(wait_for(lambda: owner(p) is not None, 5), p)
            self.assertEqual(owner(p), pwd.getpwnam("nobody").pw_uid, p)
        self.stop(d)


if __name__ == "__main__":
    unittest.main()
