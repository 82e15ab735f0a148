#!/usr/bin/env python3
"""Fault soak (make soak): frames flow through a real deye-mitm while its
disk, its sinks, its fd limit and the process itself fail at random; at the
end every frame the upstream received is matched against the events that
reached the sinks.

    SOAK_SECS=300 SOAK_SEED=1 make soak

Parts, all on 127.0.0.1:
  senders   SOAK_SENDERS threads, each on its own connection through the
            relay, sending the real 343-byte 0x42 data frame with a unique
            logger.serial (checksum fixed) every few ms; a connection that
            dies is opened again.
  upstream  reads every connection and records the serial of each whole,
            valid data frame it received: that is what was relayed.
  sinks     a HEC receiver (tests/blackbox/hec_receiver.py) and the events
            file (outside the small disk).
  state     state_dir on a tmpfs of SOAK_DISK bytes (mounted here: needs
            root, or runs itself again under `unshare -Urm`).

Faults, one every 0.5-3 s, chosen at random (seeded):
  kill      SIGKILL, restart at once on the same state_dir and port
  hec-down  HEC answers 503 for 1-4 s
  hec-flap  HEC alternates 503 and 200 for 2-4 s
  disk-full a filler file takes the rest of the tmpfs for 1-3 s
  fds       the daemon's soft fd limit is cut to its open fds + 2 for 1-3 s
            (prlimit --pid), so accepts, segment opens and connects fail

Then the faults stop, HEC stays up, and the soak waits (bounded) until
every relayed frame has an event in both sinks.  It prints frames, kills,
faults, lost, duplicates (same id) and wrong duplicates (another id), and
the lines of the events file that are not whole JSON; exit status 1 when
anything was lost, duplicated under another id or torn.
"""
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blackbox"))

from harness import BIN, wait_for  # noqa: E402
from hec_receiver import HecReceiver  # noqa: E402
from test_solarman import DATA  # noqa: E402

SECS = float(os.environ.get("SOAK_SECS", "120"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
SENDERS = int(os.environ.get("SOAK_SENDERS", "4"))
DISK = os.environ.get("SOAK_DISK", "16m")
GAP_S = float(os.environ.get("SOAK_GAP_MS", "10")) / 1000.0
DRAIN_S = float(os.environ.get("SOAK_DRAIN_SECS", "120"))


def data_frame(serial):
    b = bytearray(DATA)
    b[7:11] = struct.pack("<I", serial)
    b[-2] = sum(b[1:-2]) & 0xff
    return bytes(b)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Upstream:
    """Records the serials of whole, valid data frames it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.serials = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        buf = b""
        n = len(DATA)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                buf += b
                while len(buf) >= n:
                    f, buf = buf[:n], buf[n:]
                    if f[0] == 0xa5 and f[-1] == 0x15 and \
                            f[-2] == sum(f[1:-2]) & 0xff:
                        with self.lock:
                            self.serials.append(
                                struct.unpack("<I", f[7:11])[0])
        except OSError:
            pass
        finally:
            c.close()

    def received(self):
        with self.lock:
            return list(self.serials)


class Soak:
    def __init__(self, root):
        self.root = root
        self.state = os.path.join(root, "disk", "state")
        self.events = os.path.join(root, "events.jsonl")
        self.errlog = open(os.path.join(root, "stderr.log"), "ab")
        self.port = free_port()
        self.rnd = random.Random(SEED)
        self.up = Upstream()
        self.hec = HecReceiver()
        self.proc = None
        self.stop = threading.Event()
        self.next_serial = 1
        self.serial_lock = threading.Lock()
        self.kills = 0
        self.faults = {}
        self.sent = 0

    def start_daemon(self):
        args = [BIN, "-o", "deye.listen=127.0.0.1:%d" % self.port,
                "-o", "deye.upstream=" + self.up.addr,
                "-o", "state_dir=" + self.state,
                "-o", "events=" + self.events,
                "-o", "hec.url=" + self.hec.url,
                "-o", "hec.batch_max_events=50",
                "-o", "journal_fsync=0s",
                "-o", "hec.spool_max=64M",
                "-o", "deye.idle_timeout=30s"]
        env = dict(os.environ)
        env["DEYE_SPLUNK_HEC_TOKEN"] = self.hec.token
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=self.errlog, env=env)
        ok = wait_for(lambda: self._listening() or self.proc.poll() is not None,
                      10)
        if not ok or self.proc.poll() is not None:
            raise SystemExit("soak: deye-mitm did not start (see %s)"
                             % self.errlog.name)

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def serial(self):
        with self.serial_lock:
            s = self.next_serial
            self.next_serial += 1
            return s

    def sender(self):
        s = None
        while not self.stop.is_set():
            if s is None:
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), 1)
                    s.settimeout(2)
                except OSError:
                    time.sleep(0.05)
                    continue
            try:
                s.sendall(data_frame(self.serial()))
                self.sent += 1
            except OSError:
                s.close()
                s = None
                continue
            time.sleep(GAP_S)
        if s is not None:
            s.close()

    # -- faults ------------------------------------------------------------

    def fault_kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        self.start_daemon()

    def fault_hec_down(self):
        self.hec.down = True
        self.stop.wait(self.rnd.uniform(1, 4))
        self.hec.down = False

    def fault_hec_flap(self):
        end = time.monotonic() + self.rnd.uniform(2, 4)
        while time.monotonic() < end and not self.stop.is_set():
            self.hec.down = not self.hec.down
            self.stop.wait(0.2)
        self.hec.down = False

    def fault_disk_full(self):
        filler = os.path.join(self.root, "disk", "filler")
        try:  # the journal may have filled the disk already
            with open(filler, "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        except OSError:
            pass
        self.stop.wait(self.rnd.uniform(1, 3))
        try:
            os.unlink(filler)
        except FileNotFoundError:
            pass

    def fault_fds(self):
        pid = self.proc.pid
        try:
            n = len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            return
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (n + 2, hard))
            self.stop.wait(self.rnd.uniform(1, 3))
        except (OSError, ProcessLookupError):
            return
        finally:
            try:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            except (OSError, ProcessLookupError):
                pass

    def faults_loop(self):
        kinds = [("kill", self.fault_kill), ("hec-down", self.fault_hec_down),
                 ("hec-flap", self.fault_hec_flap),
                 ("disk-full", self.fault_disk_full), ("fds", self.fault_fds)]
        end = time.monotonic() + SECS
        while time.monotonic() < end:
            self.stop.wait(self.rnd.uniform(0.5, 3))
            name, fn = self.rnd.choice(kinds)
            self.faults[name] = self.faults.get(name, 0) + 1
            fn()

    # -- counting ----------------------------------------------------------

    def delivered(self):
        """serial -> [ids] from HEC, and the same from the events file,
        plus the events file's lines that are not whole JSON objects."""
        hec = {}
        with self.hec.lock:
            envs = list(self.hec.events)
        for e in envs:
            ev = e.get("event", {})
            if ev.get("type") == "data" and ev.get("direction") == "up":
                hec.setdefault(ev["logger.serial"], []).append(ev["id"])
        ef, torn = {}, 0
        try:
            with open(self.events, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            text = b""
        lines = text.split(b"\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                if i < len(lines) - 1:  # the last may be being written
                    torn += 1
                continue
            if ev.get("type") == "data" and ev.get("direction") == "up":
                ef.setdefault(ev["logger.serial"], []).append(ev["id"])
        return hec, ef, torn

    def run(self):
        os.makedirs(os.path.join(self.root, "disk"), exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + DISK, "tmpfs",
                        os.path.join(self.root, "disk")], check=True)
        try:
            return self._run()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            subprocess.run(["umount", "-l", os.path.join(self.root, "disk")])
            self.hec.close()

    def _run(self):
        self.start_daemon()
        senders = [threading.Thread(target=self.sender, daemon=True)
                   for _ in range(SENDERS)]
        for t in senders:
            t.start()
        t0 = time.monotonic()
        self.faults_loop()
        self.stop.set()
        for t in senders:
            t.join(10)
        # Whatever a connection had in flight reaches the upstream now.
        time.sleep(0.5)
        relayed = set(self.up.received())

        def caught_up():
            hec, ef, _ = self.delivered()
            return relayed <= set(hec) and relayed <= set(ef)
        wait_for(caught_up, DRAIN_S, step=0.5)
        hec, ef, torn = self.delivered()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            rc = "hung"
        secs = time.monotonic() - t0
        report = {"seed": SEED, "seconds": round(secs, 1),
                  "frames_sent": self.sent, "frames_relayed": len(relayed),
                  "kills": self.kills, "faults": self.faults,
                  "exit_on_sigterm": rc, "events_file_torn_lines": torn}
        bad = rc != 0 or torn > 0
        for name, got in (("hec", hec), ("events", ef)):
            lost = sorted(relayed - set(got))
            dup = sum(1 for s in relayed if len(got.get(s, [])) > 1)
            wrong = sum(1 for s in relayed if len(set(got.get(s, []))) > 1)
            report[name] = {"delivered": len(relayed & set(got)),
                            "lost": len(lost), "duplicates_same_id": dup - wrong,
                            "duplicates_other_id": wrong,
                            "lost_sample": lost[:10]}
            bad = bad or lost or wrong
        print(json.dumps(report, indent=2))
        if bad:
            print("soak: FAILED (daemon log: %s)" % self.errlog.name)
        return 1 if bad else 0


def main():
    if os.geteuid() != 0 and not os.environ.get("SOAK_IN_NS"):
        # A user namespace makes us root enough to mount a tmpfs.
        os.environ["SOAK_IN_NS"] = "1"
        os.execvp("unshare", ["unshare", "-Urm", sys.executable] + sys.argv)
    keep = os.environ.get("SOAK_KEEP")
    root = tempfile.mkdtemp(prefix="deye-soak-")
    print("soak: %s s, seed %d, %d senders, disk %s, in %s" % (
        SECS, SEED, SENDERS, DISK, root), flush=True)
    rc = Soak(root).run()
    if not keep and rc == 0:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
