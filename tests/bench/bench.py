#!/usr/bin/env python3
"""deye-mitm benchmark (make bench): the relay against socat and HAProxy,
the Solarman and Envoy decoders, the Envoy tap end to end, and delivery to
Splunk HEC.

HAProxy (tcp mode, its default thread per CPU, a config generated in the
log directory: 127.0.0.1 in front of the same upstream) runs beside socat
in the bulk, rate and memory stages; the table's last ratio column is
deye-mitm / HAProxy, the median of the per-round ratios.  The targets
against it: throughput (solarman tap) >= 1.0x, connection rate with the
tap >= 1.0x, its p99 <= 1.0x, <= 16 KiB RSS per held connection and
<= 8 MiB idle RSS (deye-mitm in the memory stage: the solarman tap on and
HEC configured).

Runs deye-mitm and `socat -b 65536 TCP-LISTEN:P,reuseaddr,fork,backlog=1024
TCP:127.0.0.1:UP` side by side on 127.0.0.1 in front of the same upstream,
interleaves their runs (the order alternates every round: A B, B A, ...),
takes the median of each and prints one table of deye-mitm/socat ratios:

  decoder   first, before anything else runs: the bench-decoder program
            (tests/bench/bench_decoder.c, linked with the daemon's objects,
            pinned to one CPU, in memory): MB/s of solarman_stream_feed over
            the fixture frames (tests/data/solarman-frames.txt, the blocks
            that verify OK) repeated to 64 MiB, over pseudo-random garbage
            and over garbage without 0xA5; data and heartbeat frames to JSON
            per second (solarman_event + json_dumps, as the daemon does).
            Best of BENCH_DECODER_REPS; it checks its counts and fails
            rather than report a broken decoder as fast.  With the envoy
            stage, its Envoy rows too: a keep-alive stream of performance_
            report POSTs fed to the HTTP parser in 1460-byte pieces (MB/s),
            a generated report of a few hundred devices, intervals,
            readings and events (tests/blackbox/envoy_peers.py, fixed seed)
            and the 4.6.0 fixture to JSON events (events/s), and all the
            writer thread does with a POST's body but the spool files
            (inflate, form field, events: POSTs/s).
  bulk      iperf3 client -> relay -> iperf3 server, both directions (-R for
            the server sending); `-O 1` omits each run's first second, the
            warm-up.  A third relay, deye-mitm with the solarman tap on
            (protocol = solarman; the others are protocol = raw), runs in
            the same rounds: iperf3's bytes are not V5, and the tap decodes
            them all the same (only a TLS start makes it give up), a false
            start at every 0xA5, one in 256 bytes.  Target: at least
            HAProxy's throughput; its ratio to the raw listener is shown.
  v5        the tap's worst case: tools/bench_v5 pushes the fixture frames,
            repeated, over one connection through each relay (raw, solarman
            tap, socat) to a sink (tools/bench_v5 sink) for BENCH_V5_SECS,
            then waits for the EOF back; MB/s.  Target: the tap at least
            0.95 times the raw listener.
  rate      tools/bench_connrate: one connection at a time: connect, 100-byte
            echo through the relay to tools/bench_echo (epoll), shutdown,
            wait for the EOF, close; connections per second and the p99 of
            that per-connection latency.  deye-mitm runs with -q (warn
            level); the same exchange against deye-mitm at info level (one
            log line per connection, to a file) is shown for information.
            Then the same again with the relays, the echo server and the
            client pinned to one CPU (information only): no cross-CPU
            wake-ups, which are slow in a VM, so mostly each relay's own
            cost per connection.  The relays' CPU time per connection (and
            per GB in bulk) comes from /proc/PID/stat (socat: with its
            children).
  memory    a fresh relay each round: RSS right after start, then 1000
            connections held at once (each did one echo, so it is connected
            upstream, then idles); (held - idle) / 1000.  deye-mitm is one
            process: VmRSS.  socat forks a process per connection: the RSS
            row sums VmRSS over the parent and its children (counts shared
            pages once per process, so it overstates socat); the PSS row
            sums Pss from smaps_rollup for both, which splits shared pages
            among the processes sharing them: the fair comparison.  While
            the 1000 idle, the relays' wake-ups and CPU time are counted
            (/proc/PID/task/*/schedstat), and deye-mitm's growth is split
            into thread stacks and malloc heaps, its idle RSS into the
            program and libraries, the outbox ring and the rest
            (/proc/PID/smaps).
  cost      deye-mitm (as in memory) and HAProxy under valgrind's callgrind,
            instrumentation turned on once each listens: the user-space
            instructions per connection over BENCH_COST_CONNS (2000) of the
            rate stage's exchanges, one at a time; deye-mitm's split by the
            thread that ran them: accept, the connection's threads
            (controller and pumps), the outbox writer (which builds and
            journals each connection's "connection" event).  The kernel's
            share is not counted (no hardware counters in most VMs).
  hec       deye-mitm (solarman, upstream = none, events = none) delivering
            to tools/bench_hec, a C receiver that counts envelopes and
            answers 200 at once: BENCH_HEC_EVENTS heartbeats sent over 4
            connections, never more than 3000 ahead of what the receiver
            has counted (deye-mitm's event queue holds 4096 and drops the
            rest: without the window most events would be dropped, not
            delivered); events per second from the first frame sent to the
            last event received, hec.batch_max_events 1000 (the target
            row) and 100 (the default), hec.flush_interval 100ms, rounds
            interleaved.  For comparison, 4000 heartbeats at once to the
            black-box tests' Python HecReceiver (tests/blackbox/
            hec_receiver.py, run by hec_rx.py in a process of its own so
            that its GIL competes with nothing in bench.py), as it is and
            with TCP_NODELAY: as it is, each reply on a kept-alive
            connection waits about 40 ms for a delayed ACK, so it cannot
            measure deye-mitm.
  latency   one heartbeat frame each way per exchange (tools/bench_v5 rtt,
            BENCH_LAT_RATE exchanges a second on a fixed schedule, the
            latency counted from when each was due) through deye-mitm
            (solarman, so every exchange makes two events) to the echo
            server, with HEC (tools/bench_hec) healthy and hanging (every
            request read and never answered) in turn, in one deye-mitm
            process: the hang is then the only thing that changes, as it
            would for a running daemon.  Before a healthy run the backlog
            of the hanging one is delivered and counted (nothing may be
            lost).  Many short rounds, and the p99 of all the round trips
            of a condition pooled: a p99 of one short run mostly tells
            when another tenant's burst hit it.  Target: p99 hanging / p99
            healthy <= 1.10.

  envoy     tools/bench_v5 envoy-post: BENCH_ENVOY_POSTS deflated POSTs of
            a site's report (24 microinverters, 129 events) over
            BENCH_ENVOY_CONNS keep-alive connections, one exchange at a
            time on each, through deye-mitm (protocol = envoy, spool_dir and
            an events file in the log directory), socat and deye-mitm
            (protocol = raw) to tools/bench_v5 envoy-upstream (C, answers
            like Enphase); both ends check every byte.  POSTs per second
            and the p99 of one exchange; the events the tap delivered per
            second, from the first POST to the last line in the events file
            (each run's events all arrive before the next run starts, and
            in the end every event, every envoy_report and three spool
            files a POST must be there: none lost), how long after the
            last answer that was, and deye-mitm's peak RSS (VmHWM).

  metrics   the [metrics] endpoint: BENCH_METRICS_SCRAPES scrapes of
            /metrics (a new connection each) with the relay idle, then
            with BENCH_HOLD connections held open (each did one echo);
            p50 and p99 of a scrape, its size, and the active count it
            shows (must be BENCH_HOLD).  Then the rate row with two
            deye-mitm (both with metrics.listen), one scraped every 100 ms
            by a thread of this script while it is measured, the other
            not, BENCH_METRICS_ROUNDS interleaved rounds: scraped/not
            scraped ratio per round, against the spread of the unscraped
            rounds (the noise).  Target: the median ratio within that
            noise (or 0.95).
  mqtt      deye-mitm (solarman, upstream = none) delivering to a real
            mosquitto (tests/blackbox/broker.py) at QoS 1: BENCH_MQTT_EVENTS
            heartbeats at once (tools/bench_v5 heartbeats), events per
            second from the first frame sent to the last message that
            mosquitto_sub (QoS 1) counted; then the latency stage's round
            trips (heartbeats through deye-mitm to the echo server) with
            the broker healthy and hanging (SIGSTOP) in turn, in one
            deye-mitm process; the hanging round's backlog is delivered
            after SIGCONT.  Target: >= 20000 events/s, p99 hanging /
            healthy <= 1.10.

Every deye-mitm journals into a state_dir of its own in the temporary log
directory, with events = none (the envoy stage's tap: an events file), and
has an upstream on 127.0.0.1 (or none).

The machine should be otherwise idle; how busy it was before the start is
printed, with a warning above 15 %.  Only side-by-side ratios mean much:
absolute loopback numbers vary a lot between runs.

Everything listens on and connects to 127.0.0.1 only.  Exit status 0 when
the measurements ran, whatever they show; 1 when something broke (a relay
failed to start, died, dropped or corrupted an exchange, an event did not
reach the HEC receiver, the decoder's counts were wrong, or deye-mitm did not
exit 0 on SIGTERM); 2 on bad usage or a missing tool.

Environment: DEYE_MITM (the binary), DEYE_TOOLS (directory of the built
tests/tools), DEYE_BENCH_DECODER (the bench-decoder program), and
optionally BENCH_ROUNDS (rate rounds, default 5), BENCH_BULK_ROUNDS (5),
BENCH_BULK_SECS (1, plus the omitted second), BENCH_RATE_SECS (2),
BENCH_PIN_ROUNDS (one-CPU rate rounds, 3; 0 skips), BENCH_MEM_ROUNDS (2),
BENCH_HOLD (1000), BENCH_DECODER_REPS (5), BENCH_DECODER_EVENTS (frames to
JSON per repetition, 20000), BENCH_V5_ROUNDS (3), BENCH_V5_SECS (2),
BENCH_HEC_ROUNDS (2), BENCH_HEC_EVENTS (200000), BENCH_LAT_ROUNDS (10),
BENCH_LAT_MS (1500, per run), BENCH_LAT_RATE (1000 exchanges/s),
BENCH_METRICS_SCRAPES (50), BENCH_METRICS_ROUNDS (4),
BENCH_ENVOY_ROUNDS (3), BENCH_ENVOY_POSTS (1000 per run; more than 2000 at
once would overflow the tap's queue of 4096 jobs, two a POST, while the
writer lags), BENCH_ENVOY_CONNS (4), BENCH_ENVOY_REPORTS (the decoder's
reports per repetition, 20), BENCH_ONLY (a comma-separated list of the
stages to run: decoder, bulk, v5, rate, memory, metrics, hec, latency,
envoy, mqtt; all by default), BENCH_KEEP_LOGS=1 (keep the log directory),
BENCH_MQTT_ROUNDS (3), BENCH_MQTT_EVENTS (4000, at once: fewer than the
queue holds), BENCH_MQTT_LAT_ROUNDS (3).
"""
import ctypes
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib

LOOPBACK = "127.0.0.1"


def env_int(name, default, lo=1):
    try:
        v = int(os.environ.get(name, default))
    except ValueError:
        sys.exit("bench: %s must be an integer" % name)
    if v < lo:
        sys.exit("bench: %s must be at least %d" % (name, lo))
    return v


RATE_ROUNDS = env_int("BENCH_ROUNDS", 5)
BULK_ROUNDS = env_int("BENCH_BULK_ROUNDS", 5)
BULK_SECS = env_int("BENCH_BULK_SECS", 1)
RATE_SECS = env_int("BENCH_RATE_SECS", 2)
MEM_ROUNDS = env_int("BENCH_MEM_ROUNDS", 2)
PIN_ROUNDS = env_int("BENCH_PIN_ROUNDS", 3, lo=0)
HOLD = env_int("BENCH_HOLD", 1000)
DEC_REPS = env_int("BENCH_DECODER_REPS", 5)
DEC_EVENTS = env_int("BENCH_DECODER_EVENTS", 20000)
V5_ROUNDS = env_int("BENCH_V5_ROUNDS", 3)
V5_SECS = env_int("BENCH_V5_SECS", 2)
HEC_ROUNDS = env_int("BENCH_HEC_ROUNDS", 2)
HEC_EVENTS = env_int("BENCH_HEC_EVENTS", 200000)
LAT_ROUNDS = env_int("BENCH_LAT_ROUNDS", 10)
LAT_MS = env_int("BENCH_LAT_MS", 1500)
LAT_RATE = env_int("BENCH_LAT_RATE", 1000)
ENVOY_ROUNDS = env_int("BENCH_ENVOY_ROUNDS", 3)
ENVOY_POSTS = env_int("BENCH_ENVOY_POSTS", 1000)
ENVOY_CONNS = env_int("BENCH_ENVOY_CONNS", 4)
ENVOY_REPORTS = env_int("BENCH_ENVOY_REPORTS", 20)
METRICS_SCRAPES = env_int("BENCH_METRICS_SCRAPES", 50)
METRICS_ROUNDS = env_int("BENCH_METRICS_ROUNDS", 4)
MQTT_ROUNDS = env_int("BENCH_MQTT_ROUNDS", 3)
MQTT_EVENTS = env_int("BENCH_MQTT_EVENTS", 4000)
MQTT_LAT_ROUNDS = env_int("BENCH_MQTT_LAT_ROUNDS", 3)
COST_CONNS = env_int("BENCH_COST_CONNS", 2000)
STAGES = ("decoder", "bulk", "v5", "rate", "memory", "cost", "metrics", "hec",
          "latency", "envoy", "mqtt")
ONLY = [x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",")
        if x.strip()] or list(STAGES)
if set(ONLY) - set(STAGES):
    sys.exit("bench: BENCH_ONLY: unknown stage(s) %s (of %s)"
             % (", ".join(sorted(set(ONLY) - set(STAGES))), ", ".join(STAGES)))
TAP = "deye-mitm (solarman tap)"
HEC_RX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hec_rx.py")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "data", "solarman-frames.txt")
SOLIS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                     "data", "solis", "frames.txt")
BLACKBOX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "blackbox")
ENVOY_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                             "data", "envoy",
                             "SYNTHETIC_perf_report_4.6.0.xml")
ENVOY_SEED = 2024
# The decoder's report: a few hundred elements of each kind.
ENVOY_BIG = {"devices": 12, "intervals": 300, "readings": 300, "events": 120}
# End to end: a site of 24 microinverters, two intervals and two readings
# each (ten minutes), a few events.
ENVOY_SITE = {"devices": 24, "intervals": 48, "readings": 48, "events": 8}
ENVOY_WARMUP = 100       # POSTs through each relay before the rounds
HEC_CONNS = 4            # connections sending heartbeats at once
HEC_WINDOW = 3000        # frames ahead of the receiver: below the 4096
                         # events deye-mitm's queue (src/outbox.c) holds
HEC_BURST = 64           # heartbeats per send()
HEC_FLUSH_MS = 100       # hec.flush_interval: bounds the last batch's wait
PY_HEC_EVENTS = 4000     # to the Python receiver, at once (< 4096)
RATE_WARMUP = 100        # exchanges before every rate run, not counted
IDLE_WATCH_S = 2.0       # how long the held connections are watched idle
MSG_SIZE = 100
# HAProxy in tcp mode, one process with a thread per CPU (its default), the
# relay's timeouts; no log, no stats.
HAPROXY_CFG = """global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend relay
    bind %(addr)s:%(port)d
    maxconn 4000
    default_backend up
backend up
    server up %(addr)s:%(up)d
"""
HA = "haproxy"
WATCHDOG_S = 600         # the whole run, whatever happens


class Broken(Exception):
    """Something failed that a benchmark cannot measure around."""


# ---------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup():
    # Die with the benchmark even if it is SIGKILLed (socat's fork children
    # do not inherit this, but they end when their connections close).
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def proc_stat(pid):
    """(state, ppid, pgrp) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return f[0], int(f[1]), int(f[2])


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def group_members(pgid):
    """Live (non-zombie) processes of a process group."""
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[2] == pgid and st[0] != "Z":
            out.append(pid)
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads) and of its children
    that it has waited for."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0.0
    f = s[s.rindex(")") + 2:].split()
    return sum(int(x) for x in f[11:15]) / CLK_TCK


def sched_totals(pids):
    """(on-CPU seconds, times scheduled in) summed over every thread of
    pids, from /proc/PID/task/TID/schedstat."""
    cpu = runs = 0
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    v = f.read().split()
            except OSError:
                continue
            cpu += int(v[0])
            runs += int(v[2])
    return cpu / 1e9, runs


def children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return [p for p in all_pids() if (proc_stat(p) or (0, 0))[1] == pid]


class Proc:
    """A child in its own session and process group, logged to a file."""

    live = []   # started, not yet stopped
    done = []   # stopped: checked for leftovers at the end

    def __init__(self, name, argv, logdir, stdout=None, stdin=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, "%s.%d.log" % (
            name, len(Proc.live) + len(Proc.done)))
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=self.log if stdout is None else stdout, stderr=self.log,
            start_new_session=True, preexec_fn=_child_setup)
        self.pid = self.p.pid
        Proc.live.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0, group=True):
        """Signal, wait, then SIGKILL what is left; the exit status."""
        try:
            if self.alive():
                if group:
                    os.killpg(self.pid, sig)
                else:
                    os.kill(self.pid, sig)
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        except ProcessLookupError:
            rc = self.p.wait(timeout)
        # The rest of the group (socat's fork children).
        deadline = time.monotonic() + 2.0
        while group_members(self.pid):
            if time.monotonic() > deadline:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            time.sleep(0.02)
        if rc is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
        self.log.close()
        for f in (self.p.stdout, self.p.stdin):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass  # a pipe to a process that is gone
        if self in Proc.live:
            Proc.live.remove(self)
            Proc.done.append(self)
        return rc

    def log_tail(self, n=10):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + x for x in lines[-n:])

    @classmethod
    def stop_all(cls):
        for pr in reversed(list(cls.live)):
            try:
                pr.stop(signal.SIGTERM, timeout=3.0)
            except Exception as e:  # keep cleaning up the others
                print("bench: stopping %s: %s" % (pr.name, e), file=sys.stderr)


def port_proc(name, argv, logdir):
    """A server that prints "PORT <n>" once listening: (Proc, n)."""
    pr = Proc(name, argv, logdir, stdout=subprocess.PIPE)
    line = pr.p.stdout.readline().decode()
    if not line.startswith("PORT "):
        raise Broken("%s did not start:\n%s" % (name, pr.log_tail()))
    return pr, int(line.split()[1])


def leftovers():
    """Live processes in the groups we created: there should be none."""
    left = []
    for pr in Proc.done + Proc.live:
        left += group_members(pr.pid)
    return left


# ---------------------------------------------------------------- ports

def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_used_ports = set()


def free_port():
    """A port below the ephemeral range (so that no outgoing connection can
    hold it) that nothing is bound to, not even a TIME_WAIT."""
    hi = min(ephemeral_low(), 65536) - 1
    lo = 20000 if hi > 21000 else 1024
    for _ in range(200):
        port = random.randint(lo, hi)
        if port in _used_ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(port)
        return port
    raise Broken("no free port found")


def listening(port):
    """Whether something listens on 127.0.0.1:port or *:port (from
    /proc/net/tcp, without connecting: a probe connection would be
    relayed upstream)."""
    want = {"0100007F:%04X" % port, "00000000:%04X" % port}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                x = line.split()
                if x[3] == "0A" and x[1] in want:
                    return True
    except OSError:
        pass
    return False


def wait_listening(pr, port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pr.alive():
            return False
        if listening(port):
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------- /proc

def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise Broken("no %s for pid %d" % (key, pid))


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise Broken("no Pss for pid %d" % pid)


def rss_breakdown(pid):
    """Resident KiB of a process by kind of mapping, from /proc/PID/smaps:
    "stacks" (anonymous rw mappings right above a one-page PROT_NONE guard:
    the thread stacks glibc maps), their number, "heap" (the other
    anonymous rw mappings: [heap] and malloc's per-thread arenas),
    "outbox" (deye-mitm's ring file, state_dir/outbox), "libs" (shared
    libraries and the program) and "other" (the main stack, ...)."""
    out = {"stacks": 0, "nstacks": 0, "heap": 0, "outbox": 0, "libs": 0,
           "other": 0}
    page = os.sysconf("SC_PAGE_SIZE")
    prev_end, prev_guard = None, False
    kind = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 6)
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                anon = len(head) < 6 or head[5].strip() == "[heap]"
                if anon and head[1].startswith("rw"):
                    kind = ("stacks" if prev_guard and prev_end == lo
                            else "heap")
                    if kind == "stacks":
                        out["nstacks"] += 1
                elif len(head) > 5 and head[5].strip().endswith("/outbox"):
                    kind = "outbox"
                elif len(head) > 5 and head[5].startswith("/"):
                    kind = "libs"
                else:
                    kind = "other"
                prev_guard = (len(head) < 6 and head[1].startswith("---")
                              and hi - lo == page)
                prev_end = hi
            elif head[0] == "Rss:":
                out[kind] += int(head[1])
    return out


def cpu_stolen():
    """(steal, total) jiffies of all CPUs so far, from /proc/stat: the time
    the hypervisor gave to other guests (a shared machine)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0), sum(v[:8])


def cpu_busy(interval=1.0):
    """Fraction of all CPU time that was busy over interval."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle
    t0, i0 = read()
    time.sleep(interval)
    t1, i1 = read()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


# ---------------------------------------------------------------- relays

class Relay:
    """One relay under test, in front of upstream port `up` (deye-mitm:
    None for upstream = none).  Every deye-mitm journals into a state_dir of
    its own under logdir and writes no events file (events = none); opts
    are more -o KEY=VALUE; warnings matching one of expect_warn are part of
    the test and not reported."""

    _n = 0

    def __init__(self, kind, up, logdir, label=None, loglevel="-q",
                 protocol="raw", opts=(), expect_warn=()):
        self.kind = kind
        self.label = label or kind
        self.up = up
        self.logdir = logdir
        self.loglevel = loglevel
        self.protocol = protocol
        self.opts = list(opts)
        self.expect_warn = tuple(expect_warn) + (
            () if up is not None else ("local mode",))
        self.proc = None
        self.port = None
        self.log_path = None
        Relay._n += 1
        self.state_dir = os.path.join(logdir, "state-%d" % Relay._n)

    def argv(self, port):
        if self.kind == "deye-mitm":
            up = ("none" if self.up is None
                  else "%s:%d" % (LOOPBACK, self.up))
            a = [os.environ["DEYE_MITM"],
                 "-o", "deye.listen=%s:%d" % (LOOPBACK, port),
                 "-o", "deye.upstream=" + up,
                 "-o", "deye.protocol=" + self.protocol,
                 "-o", "state_dir=" + self.state_dir,
                 "-o", "events=none",
                 "-o", "max_connections=2000",
                 # Every bench client is 127.0.0.1, like no real logger.
                 "-o", "max_connections_per_peer=2000"]
            for o in self.opts:
                a += ["-o", o]
            return a + ([self.loglevel] if self.loglevel else [])
        if self.kind == "haproxy":
            cfg = os.path.join(self.logdir, "haproxy-%d.cfg" % port)
            with open(cfg, "w") as f:
                f.write(HAPROXY_CFG % {"addr": LOOPBACK, "port": port,
                                       "up": self.up})
            return ["haproxy", "-db", "-f", cfg]
        return ["socat", "-b", "65536",
                "TCP-LISTEN:%d,bind=%s,reuseaddr,fork,backlog=1024"
                % (port, LOOPBACK),
                "TCP:%s:%d" % (LOOPBACK, self.up)]

    def start(self, wrap=(), timeout=5.0):
        """wrap: a command that runs the relay (valgrind ...)."""
        for _ in range(5):
            port = free_port()
            pr = Proc(self.label.replace(" ", "_"),
                      list(wrap) + self.argv(port), self.logdir)
            if wait_listening(pr, port, timeout):
                self.proc, self.port = pr, port
                self.log_path = pr.log_path
                return self
            rc = pr.stop()
            tail = pr.log_tail()
            if rc not in (None, 0, -signal.SIGTERM) and "in use" not in tail:
                raise Broken("%s did not start (exit %s):\n%s"
                             % (self.label, rc, tail))
        raise Broken("%s did not start listening" % self.label)

    def check_alive(self):
        if not self.proc.alive():
            raise Broken("%s died (exit %s):\n%s" % (
                self.label, self.proc.p.returncode, self.proc.log_tail()))

    def stop(self):
        if self.proc is None:
            return
        pr, self.proc = self.proc, None
        if self.kind == "deye-mitm":
            was_alive = pr.alive()
            rc = pr.stop(signal.SIGTERM, timeout=6.0, group=False)
            if was_alive and rc != 0:
                raise Broken("%s exited %s on SIGTERM:\n%s"
                             % (self.label, rc, pr.log_tail()))
            bad = [x for x in open(pr.log_path, errors="replace")
                   if (" warn: " in x or " error: " in x)
                   and not any(w in x for w in self.expect_warn)]
            if bad:
                print("bench: %s logged %d warning(s)/error(s), e.g.:\n  %s"
                      % (self.label, len(bad), bad[0].rstrip()))
        else:
            pr.stop(signal.SIGTERM, timeout=3.0)

    def pids(self):
        if self.kind in ("deye-mitm", "haproxy"):
            return [self.proc.pid]
        return [self.proc.pid] + children_of(self.proc.pid)

    def cpu(self):
        """CPU seconds used so far by the relay (socat: with its children,
        the ended ones through cutime/cstime)."""
        return sum(cpu_seconds(p) for p in self.pids())

    def memory(self):
        """(rss KiB summed, pss KiB summed, processes, threads)."""
        rss = pss = threads = n = 0
        for pid in self.pids():
            try:
                rss += status_kib(pid, "VmRSS")
                pss += pss_kib(pid)
                threads += status_kib(pid, "Threads")
                n += 1
            except (OSError, Broken):
                pass  # a socat child that just ended
        return rss, pss, n, threads


# ---------------------------------------------------------------- runs

def run_json(argv, timeout, cpus=None):
    def setup():
        _child_setup()
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout,
                           preexec_fn=setup)
    except subprocess.TimeoutExpired:
        raise Broken("timed out: %s" % " ".join(argv))
    try:
        return r.returncode, json.loads(r.stdout.decode())
    except ValueError:
        raise Broken("%s: exit %d, no JSON output:\n%s" % (
            " ".join(argv), r.returncode,
            (r.stderr or r.stdout).decode(errors="replace")[-800:]))


def iperf(port, reverse, relay=None):
    """Gbit/s received, and the relay's CPU seconds per GB relayed (the
    omitted first second counted at the measured rate)."""
    argv = ["iperf3", "-c", LOOPBACK, "-p", str(port), "-t", str(BULK_SECS),
            "-O", "1", "-J"] + (["-R"] if reverse else [])
    for attempt in range(4):
        c0 = relay.cpu() if relay else 0.0
        rc, d = run_json(argv, BULK_SECS + 30)
        cpu = (relay.cpu() if relay else 0.0) - c0
        err = d.get("error")
        if err is None and rc == 0:
            gbps = d["end"]["sum_received"]["bits_per_second"] / 1e9
            gbytes = gbps / 8 * (BULK_SECS + 1)
            return gbps, cpu / gbytes if gbytes else float("nan")
        if err and "busy" in err and attempt < 3:
            time.sleep(0.5)  # the server is still finishing the last test
            continue
        raise Broken("iperf3 through port %d: %s" % (port, err or rc))


def connrate(tools, port, secs, warmup, relay=None, cpus=None):
    """bench_connrate's results, plus the relay's CPU microseconds per
    connection (the warm-up exchanges counted too)."""
    c0 = relay.cpu() if relay else 0.0
    rc, d = run_json([os.path.join(tools, "bench_connrate"), "-p", str(port),
                      "-t", str(secs), "-s", str(MSG_SIZE),
                      "-w", str(warmup)], secs + 60, cpus)
    if rc != 0:
        raise Broken("bench_connrate exit %d" % rc)
    n = d["n"] + d["errors"] + d["warmup_errors"] + warmup
    if relay:
        time.sleep(0.05)  # socat reaps its last children
        d["cpu_us"] = (relay.cpu() - c0) * 1e6 / max(n, 1)
    return d


def hold(relay, n):
    """Open n connections through relay, one echo each; the sockets."""
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection((LOOPBACK, relay.port), timeout=10)
            msg = b"hold%06d" % i
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                b = s.recv(len(msg) - len(got))
                if not b:
                    break
                got += b
            socks.append(s)
            if got != msg:
                raise Broken("%s: connection %d: echo %r, sent %r"
                             % (relay.label, i, got, msg))
    except OSError as e:
        for s in socks:
            s.close()
        raise Broken("%s: holding connection %d of %d: %s"
                     % (relay.label, len(socks) + 1, n, e))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def release(relay, socks, idle_threads, timeout=10.0):
    """Close the held sockets and wait until the relay has let go of them."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    for s in socks:
        s.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if relay.kind == "deye-mitm":
            if status_kib(relay.proc.pid, "Threads") <= idle_threads:
                return True
        elif not children_of(relay.proc.pid):
            return True
        time.sleep(0.05)
    return False


def interleave(rnd, items):
    """A B C in even rounds, C B A in odd ones."""
    return list(items) if rnd % 2 == 0 else list(reversed(items))


def bulk_stage(relays, log):
    res = {r.label: {"up": [], "down": [], "up_cpu": [], "down_cpu": []}
           for r in relays}
    for rnd in range(BULK_ROUNDS):
        for reverse in (False, True):
            dirn = "down" if reverse else "up"
            for r in interleave(rnd, relays):
                gbps, cpu = iperf(r.port, reverse, r)
                r.check_alive()
                res[r.label][dirn].append(gbps)
                res[r.label][dirn + "_cpu"].append(cpu)
                log("  bulk round %d %-4s %-10s %7.2f Gbit/s  relay CPU "
                    "%.2f s/GB" % (rnd + 1, dirn, r.label, gbps, cpu))
    return res


def pin(pids, cpus):
    """Set the CPU affinity of every thread of pids (threads and processes
    created later inherit it from their creator)."""
    for pid in pids:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass  # a thread that just ended


def rate_stage(relays, tools, log, rounds, cpus=None, tag=""):
    res = {r.label: [] for r in relays}
    for rnd in range(rounds):
        for r in interleave(rnd, relays):
            d = connrate(tools, r.port, RATE_SECS, RATE_WARMUP, r, cpus)
            r.check_alive()
            res[r.label].append(d)
            errs = d["errors"] + d["warmup_errors"]
            log("  rate%s round %d %-20s %6.0f conn/s  p50 %5d us  p99 %5d us"
                "  relay CPU %4.0f us/conn%s"
                % (tag, rnd + 1, r.label, d["rate"], d["total"]["p50"],
                   d["total"]["p99"], d["cpu_us"],
                   "  ERRORS %d (%s)" % (errs, d["error"]) if errs else ""))
    return res


def memory_relay(kind, up, logdir):
    """deye-mitm as a logger's relay runs: the solarman tap on and HEC
    configured (to a port where nothing listens: only the held
    connections' "connection" events, at the end, try to go there)."""
    if kind != "deye-mitm":
        return Relay(kind, up, logdir)
    return Relay(kind, up, logdir, protocol="solarman",
                 opts=["hec.url=http://%s:%d/services/collector"
                       % (LOOPBACK, free_port()), "hec.token=bench"],
                 expect_warn=("hec",))


def memory_stage(kinds, up, logdir, log):
    res = {k: [] for k in kinds}
    for rnd in range(MEM_ROUNDS):
        for kind in interleave(rnd, kinds):
            relay = memory_relay(kind, up, logdir).start()
            socks = []
            try:
                time.sleep(0.3)
                idle = relay.memory()
                anon = status_kib(relay.proc.pid, "RssAnon")
                bd0 = rss_breakdown(relay.proc.pid)
                socks = hold(relay, HOLD)
                time.sleep(0.5)   # let every thread / child settle
                relay.check_alive()
                held = relay.memory()
                bd1 = rss_breakdown(relay.proc.pid)
                # While the connections idle: how often the relay wakes.
                s0 = sched_totals(relay.pids())
                time.sleep(IDLE_WATCH_S)
                s1 = sched_totals(relay.pids())
                procs = held[2]
                if kind == "socat" and procs != HOLD + 1:
                    raise Broken("socat has %d processes for %d connections"
                                 % (procs, HOLD))
                if kind == "deye-mitm" and held[3] < idle[3] + 3 * HOLD:
                    raise Broken("deye-mitm has %d threads for %d "
                                 "connections" % (held[3], HOLD))
                drained = release(relay, socks, idle[3])
                socks = []
                time.sleep(0.2)
                after = relay.memory()
            finally:
                for s in socks:
                    s.close()
                relay.stop()
            m = {"idle_rss": idle[0], "idle_pss": idle[1], "idle_anon": anon,
                 "held_rss": held[0], "held_pss": held[1],
                 "per_rss": (held[0] - idle[0]) / HOLD,
                 "per_pss": (held[1] - idle[1]) / HOLD,
                 "procs": held[2], "threads": held[3],
                 "after_rss": after[0], "drained": drained,
                 "idle_cpu_ms": (s1[0] - s0[0]) * 1e3 / IDLE_WATCH_S,
                 "idle_wakeups": (s1[1] - s0[1]) / IDLE_WATCH_S,
                 "per_kind": {k: (bd1[k] - bd0[k]) / HOLD for k in bd0},
                 "idle_kind": bd0}
            res[kind].append(m)
            log("  memory round %d %-10s idle %6d KiB  held %7d KiB  "
                "%5.1f KiB/conn RSS  %5.1f KiB/conn PSS  (%d procs, "
                "%d threads); idle: %.0f wakeups/s, %.1f ms CPU/s%s"
                % (rnd + 1, kind, m["idle_rss"], m["held_rss"], m["per_rss"],
                   m["per_pss"], m["procs"], m["threads"], m["idle_wakeups"],
                   m["idle_cpu_ms"], "" if drained else "  NOT DRAINED"))
    return res


# ---------------------------------------------------------------- metrics

def scrape(port, path="/metrics"):
    """(seconds, body) of one GET on a new connection; Broken if not 200."""
    t0 = time.perf_counter()
    data = b""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=5) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: bench\r\n"
                      b"Connection: close\r\n\r\n" % path.encode())
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError as e:
        raise Broken("scrape of %s on port %d: %s" % (path, port, e))
    dt = time.perf_counter() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise Broken("scrape of %s: %r" % (path, head[:80]))
    return dt, body.decode()


def metrics_relay(up, logdir, label):
    """A deye-mitm (raw) with its metrics endpoint; .mport is its port."""
    for _ in range(5):
        mport = free_port()
        r = Relay("deye-mitm", up, logdir, label=label,
                  opts=["metrics.listen=%s:%d" % (LOOPBACK, mport)])
        try:
            r.start()
        except Broken:
            continue  # the metrics port was taken meanwhile
        r.mport = mport
        if wait_listening(r.proc, mport):
            return r
        r.stop()
    raise Broken("%s: the metrics endpoint did not start" % label)


class Scraper:
    """A thread scraping port .target (None: nobody) every 100 ms."""

    def __init__(self):
        self.target = None
        self.count = 0
        self.errors = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.1):
            port = self.target
            if port is None:
                continue
            try:
                scrape(port)
                self.count += 1
            except Broken as e:
                self.errors.append(str(e))

    def stop(self):
        self._stop.set()
        self._t.join(5)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


# deye-mitm's threads in the cost stage, by the function each starts in.
COST_THREADS = (("accept", "master_run"),
                ("connection threads", "worker_main"),
                ("outbox writer", "writer_run"))


def cost_stage(up, tools, logdir, log):
    """User-space instructions per connection under callgrind, for
    deye-mitm (as in the memory stage) and HAProxy: each is started with
    instrumentation off, turned on once it listens, then BENCH_COST_CONNS
    of the rate stage's exchanges one at a time, then a dump.  deye-mitm's
    are split by the function its threads start in (inclusive)."""
    res = {}
    for kind in ("deye-mitm", HA):
        out = os.path.join(logdir, "callgrind-%s.out" % kind)
        relay = memory_relay(kind, up, logdir)
        relay.start(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                     "--max-threads=1000", "--log-file=" + out + ".log",
                     "--callgrind-out-file=" + out], timeout=120.0)
        try:
            ctl = ["callgrind_control", str(relay.proc.pid)]
            if subprocess.run(ctl[:1] + ["-i", "on"] + ctl[1:],
                              capture_output=True, timeout=60).returncode:
                raise Broken("callgrind_control -i on %s failed" % kind)
            rc, d = run_json([os.path.join(tools, "bench_connrate"),
                              "-p", str(relay.port), "-n", str(COST_CONNS),
                              "-t", "600", "-s", str(MSG_SIZE)], 900)
            if rc != 0 or d["errors"] or d["n"] != COST_CONNS:
                raise Broken("%s under callgrind: %d of %d exchanges, %d "
                             "failed (%s)" % (kind, d.get("n", 0), COST_CONNS,
                                              d.get("errors", 0),
                                              d.get("error")))
            time.sleep(0.5)  # the last connection's end, off the client's
            if subprocess.run(ctl[:1] + ["-d"] + ctl[1:], capture_output=True,
                              timeout=120).returncode:
                raise Broken("callgrind_control -d %s failed" % kind)
        finally:
            relay.stop()
        dump = out + ".1"
        with open(dump) as f:
            total = next(int(x.split()[1]) for x in f
                         if x.startswith("summary:"))
        r = {"total": total / COST_CONNS, "threads": {}}
        if kind == "deye-mitm":
            ann = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                                  "--auto=no", "--threshold=100", dump],
                                 capture_output=True, text=True,
                                 timeout=120).stdout
            for name, fn in COST_THREADS:
                m = re.search(r"^\s*([\d,]+) .*:%s \[" % fn, ann, re.M)
                if m is None:
                    raise Broken("callgrind_annotate: no %s" % fn)
                r["threads"][name] = (int(m.group(1).replace(",", ""))
                                      / COST_CONNS)
        res[kind] = r
        log("  cost %-10s %7.0f instructions per connection%s"
            % (kind, r["total"], "".join(
                "; %s %.0f" % kv for kv in r["threads"].items())))
    return res


def metrics_stage(up, tools, logdir, log, problems):
    res = {}
    relay = metrics_relay(up, logdir, "deye-mitm (metrics)")
    socks = []
    try:
        idle = [scrape(relay.mport)[0] for _ in range(METRICS_SCRAPES)]
        size = len(scrape(relay.mport)[1])
        threads = status_kib(relay.proc.pid, "Threads")
        socks = hold(relay, HOLD)
        time.sleep(0.3)
        held = []
        for _ in range(METRICS_SCRAPES):
            dt, body = scrape(relay.mport)
            held.append(dt)
        want = 'deye_mitm_connections_active{listener="deye"} %d\n' % HOLD
        if want not in body:
            problems.append("metrics: the scrape while %d connections were "
                            "held does not say %r" % (HOLD, want.strip()))
        relay.check_alive()
        release(relay, socks, threads)
        socks = []
    finally:
        for s in socks:
            s.close()
        relay.stop()
    res["idle"], res["held"], res["bytes"] = idle, held, size
    log("  metrics scrape idle: p50 %.2f ms p99 %.2f ms; with %d held: p50 "
        "%.2f ms p99 %.2f ms (%d bytes)"
        % (percentile(idle, 50) * 1e3, percentile(idle, 99) * 1e3, HOLD,
           percentile(held, 50) * 1e3, percentile(held, 99) * 1e3, size))

    relays = [metrics_relay(up, logdir, "deye-mitm (scraped)"),
              metrics_relay(up, logdir, "deye-mitm (not scraped)")]
    scraper = Scraper()
    rate = {r.label: [] for r in relays}
    try:
        for rnd in range(METRICS_ROUNDS):
            for r in interleave(rnd, relays):
                scraper.target = r.mport if r is relays[0] else None
                n0 = scraper.count
                try:
                    d = connrate(tools, r.port, RATE_SECS, RATE_WARMUP, r)
                finally:
                    scraper.target = None
                r.check_alive()
                rate[r.label].append(d)
                log("  metrics rate round %d %-24s %6.0f conn/s  p99 %5d us"
                    "  (%d scrapes)" % (rnd + 1, r.label, d["rate"],
                                        d["total"]["p99"],
                                        scraper.count - n0))
    finally:
        scraper.stop()
        for r in relays:
            r.stop()
    if scraper.errors:
        problems.append("metrics: %d failed scrapes (first: %s)"
                        % (len(scraper.errors), scraper.errors[0]))
    res["rate"] = rate
    res["scrapes"] = scraper.count
    return res


# ---------------------------------------------------------------- solarman

def decoder_stage(log, envoy=None):
    """bench-decoder's results (one CPU, in memory; see its header): the
    Solarman rows when the decoder stage runs, the Envoy rows with envoy
    (envoy_files())."""
    argv = [os.environ["DEYE_BENCH_DECODER"], "-f", FIXTURES, "-s", SOLIS,
            "-r", str(DEC_REPS), "-n", str(DEC_EVENTS)]
    if "decoder" not in ONLY:
        argv.append("-S")
    if envoy:
        argv += ["-E", envoy["big"], "-e", str(envoy["big_events"]),
                 "-X", ENVOY_FIXTURE, "-x", str(envoy["fixture_events"]),
                 "-k", str(ENVOY_REPORTS)]
    rc, d = run_json(argv, 600)
    if rc != 0:
        raise Broken("bench-decoder exit %d" % rc)
    if "stream" in d:
        log("  decoder on CPU %d, best of %d: real frames %.0f MB/s (%.0f "
            "frames/s), garbage %.0f MB/s, garbage without 0xA5 %.0f MB/s; "
            "to JSON: data %.0f frames/s, heartbeat %.0f frames/s, Solis "
            "data %.0f frames/s"
            % (d["cpu"], DEC_REPS, d["stream"]["mbps_best"],
               d["stream"]["fps_best"], d["garbage"]["mbps_best"],
               d["garbage_no_a5"]["mbps_best"], d["json_data"]["fps_best"],
               d["json_heartbeat"]["fps_best"], d["json_solis"]["fps_best"]))
    if envoy:
        log("  decoder on CPU %d, best of %d: Envoy HTTP stream %.0f MB/s "
            "(%.0f POSTs/s); report to events %.0f events/s (%d a report), "
            "4.6.0 fixture %.0f events/s; a POST's body to events %.0f "
            "POSTs/s"
            % (d["cpu"], DEC_REPS, d["envoy_http"]["mbps_best"],
               d["envoy_http"]["fps_best"], d["envoy_report"]["fps_best"],
               d["envoy_report_events"], d["envoy_report_460"]["fps_best"],
               d["envoy_post"]["fps_best"]))
    return d


def v5_stage(relays, tools, log):
    """tools/bench_v5 stream through each relay to a sink: MB/s, and the
    relay's CPU seconds per GB."""
    res = {r.label: {"mbps": [], "cpu": []} for r in relays}
    for rnd in range(V5_ROUNDS):
        for r in interleave(rnd, relays):
            c0 = r.cpu()
            rc, d = run_json([os.path.join(tools, "bench_v5"), "stream",
                              "-p", str(r.port), "-f", FIXTURES,
                              "-t", str(V5_SECS)], V5_SECS + 120)
            if rc != 0:
                raise Broken("bench_v5 stream through %s: exit %d"
                             % (r.label, rc))
            if r.kind == "socat":
                time.sleep(0.05)  # socat reaps its child
            cpu = (r.cpu() - c0) / (d["bytes"] / 1e9)
            r.check_alive()
            res[r.label]["mbps"].append(d["mbps"])
            res[r.label]["cpu"].append(cpu)
            log("  v5 round %d %-26s %7.1f MB/s  relay CPU %6.2f s/GB"
                % (rnd + 1, r.label, d["mbps"], cpu))
    return res


def dropped_events(relay):
    """Events deye-mitm's queue dropped, from its log ("queue full")."""
    n = 0
    try:
        with open(relay.log_path, errors="replace") as f:
            for x in f:
                m = re.search(r"queue full, (\d+) event\(s\) dropped", x)
                if m:
                    n += int(m.group(1))
    except OSError:
        pass
    return n


# ---------------------------------------------------------------- HEC

class HecSink:
    """A HEC receiver in its own process, driven by lines on its stdin:
    tools/bench_hec (C: counts envelopes, answers 200 in one write) or
    hec_rx.py (the black-box tests' Python HecReceiver)."""

    def __init__(self, name, argv, logdir):
        self.proc = Proc(name, argv, logdir, stdout=subprocess.PIPE,
                         stdin=subprocess.PIPE)
        self.buf = b""
        line = self._line(10.0)
        if not line or line[0] != "PORT":
            raise Broken("%s did not start:\n%s"
                         % (name, self.proc.log_tail()))
        self.port = int(line[1])
        self.url = "http://%s:%d" % (LOOPBACK, self.port)

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise Broken("%s did not answer within %.0f s"
                             % (self.proc.name, timeout))
            b = os.read(fd, 4096)
            if not b:
                raise Broken("%s exited:\n%s" % (self.proc.name,
                                                 self.proc.log_tail()))
            self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().split()

    def cmd(self, line, timeout=10.0):
        try:
            self.proc.p.stdin.write((line + "\n").encode())
            self.proc.p.stdin.flush()
        except OSError as e:
            raise Broken("%s: %s" % (self.proc.name, e))
        return self._line(timeout)

    def count(self):
        """(envelopes, requests, monotonic time of the last, largest
        batch)."""
        f = self.cmd("count")
        return int(f[1]), int(f[2]), float(f[3]), int(f[4])

    def wait_count(self, want, stall=5.0, limit=120.0):
        """Poll until want envelopes arrived, or none for stall seconds;
        the last count."""
        end = time.monotonic() + limit
        c = self.count()
        seen, seen_t = c[0], time.monotonic()
        while c[0] < want and time.monotonic() < end:
            time.sleep(0.01)
            c = self.count()
            if c[0] != seen:
                seen, seen_t = c[0], time.monotonic()
            elif time.monotonic() - seen_t > stall:
                break
        return c

    def stop(self):
        try:
            self.proc.p.stdin.close()
        except OSError:
            pass
        self.proc.stop(signal.SIGTERM, timeout=5.0)


def hec_relay(logdir, sink, batch, label, up=None, expect_warn=()):
    return Relay("deye-mitm", up, logdir, label=label, protocol="solarman",
                 opts=["hec.url=" + sink.url, "hec.token=test-token",
                       "hec.batch_max_events=%d" % batch,
                       "hec.flush_interval=%dms" % HEC_FLUSH_MS],
                 expect_warn=expect_warn)


def hec_rate(relay, sink, problems):
    """HEC_EVENTS heartbeats over HEC_CONNS connections to relay (no
    upstream), at most HEC_WINDOW ahead of what sink has counted; events
    per second from the first frame sent to the last event received."""
    c0 = sink.count()
    f = sink.cmd("send %d %d %d %d %d" % (relay.port, HEC_EVENTS, HEC_CONNS,
                                          HEC_WINDOW, HEC_BURST), 600.0)
    if f[0] != "SENT":
        raise Broken("bench_hec send: %s" % " ".join(f))
    t_first, sent, stalled = float(f[1]), int(f[3]), f[4] == "1"
    # One event per heartbeat, and one per connection when it closes.
    want = HEC_EVENTS + HEC_CONNS
    c = sink.wait_count(c0[0] + want)
    relay.check_alive()
    got = c[0] - c0[0]
    if stalled or got < want:
        problems.append("%s: %d of %d events reached the HEC receiver "
                        "(%d frames sent%s; %d dropped by deye-mitm's queue)"
                        % (relay.label, got, want, sent,
                           ", the window stalled" if stalled else "",
                           dropped_events(relay)))
    return {"rate": got / (c[2] - t_first), "events": got,
            "requests": c[1] - c0[1], "secs": c[2] - t_first,
            "max_batch": c[3]}


def hec_rate_python(relay, sink, tools, problems):
    """PY_HEC_EVENTS heartbeats at once (fewer than deye-mitm's queue
    holds, so none can be dropped) to relay, delivered to the Python
    receiver: events per second."""
    c0 = sink.count()
    rc, d = run_json([os.path.join(tools, "bench_v5"), "heartbeats",
                      "-p", str(relay.port), "-n", str(PY_HEC_EVENTS)], 60)
    if rc != 0:
        raise Broken("bench_v5 heartbeats: exit %d" % rc)
    want = PY_HEC_EVENTS + 1
    c = sink.wait_count(c0[0] + want)
    relay.check_alive()
    got = c[0] - c0[0]
    if got < want:
        problems.append("%s: %d of %d events reached the Python HEC "
                        "receiver" % (relay.label, got, want))
    return {"rate": got / (c[2] - d["t_first"]), "events": got,
            "requests": c[1] - c0[1], "secs": c[2] - d["t_first"]}


def latency_stage(relay, sink, tools, log, problems):
    """Request/response of one heartbeat through relay (solarman, in front
    of the echo server, HEC to sink), LAT_RATE exchanges a second on a
    fixed schedule, with HEC healthy and hanging in turn; one warm-up
    round (healthy) first, not counted.  Before a healthy round every event
    so far must have arrived (the backlog of the hanging round is
    delivered first), so that the round measures steady delivery."""
    res = {"healthy": [], "hanging": []}
    secs = "%.3f" % (LAT_MS / 1000.0)
    expected = sink.count()[0]
    interval = int(1e6 / LAT_RATE)
    rounds = [["healthy"]] + [interleave(r, ["healthy", "hanging"])
                              for r in range(LAT_ROUNDS)]
    try:
        for rnd, conds in enumerate(rounds):
            for cond in conds:
                drain = 0.0
                if cond == "healthy":
                    sink.cmd("hang 0")
                    t0 = time.monotonic()
                    c = sink.wait_count(expected, stall=15.0)
                    drain = time.monotonic() - t0
                    if c[0] < expected:
                        raise Broken("%s: %d of %d events reached the HEC "
                                     "receiver (%d dropped by deye-mitm's "
                                     "queue)" % (relay.label, c[0], expected,
                                                 dropped_events(relay)))
                else:
                    sink.cmd("hang 1")
                rc, d = run_json([os.path.join(tools, "bench_v5"), "rtt",
                                  "-p", str(relay.port), "-t", secs,
                                  "-w", "200", "-i", str(interval), "-l"],
                                 LAT_MS / 1000.0 + 60)
                if rc != 0:
                    raise Broken("bench_v5 rtt through %s: exit %d"
                                 % (relay.label, rc))
                relay.check_alive()
                # An event each way per exchange, one for the connection.
                expected += 2 * (d["n"] + d["warmup"]) + 1
                if rnd > 0:
                    res[cond].append(d)
                log("  latency %s %-7s p50 %5d us  p99 %6d us  p99.9 %6d us"
                    "  (%d exchanges, %.0f/s%s)"
                    % ("round %d" % rnd if rnd else "warm-up", cond,
                       d["p50"], d["p99"], d["p999"], d["n"], d["rate"],
                       ", backlog delivered in %.1f s" % drain
                       if drain >= 0.05 else ""))
    finally:
        sink.cmd("hang 0")
    c = sink.wait_count(expected, stall=15.0)
    if c[0] < expected:
        problems.append("%s: %d of %d events reached the HEC receiver"
                        % (relay.label, c[0], expected))
    return res


# ---------------------------------------------------------------- MQTT

def mqtt_suback(broker):
    return broker.log().count("Sending SUBACK")


def mqtt_stage(tools, logdir, echo_port, log, problems):
    """The MQTT sink against a real mosquitto: events per second end to end
    at QoS 1, then relay round trips with the broker healthy and hanging
    (SIGSTOP)."""
    sys.path.insert(0, BLACKBOX)
    from broker import Broker
    # No cap on a slow subscriber's queue: count every message.
    b = Broker(extra=["max_queued_messages 0"])
    res = {"rate": [], "healthy": [], "hanging": []}
    try:
        relay = Relay("deye-mitm", None, logdir, label="deye-mitm (mqtt)",
                      protocol="solarman", opts=["mqtt.url=" + b.url])
        relay.start()
        try:
            for rnd in range(MQTT_ROUNDS):
                subs = mqtt_suback(b)
                sub = subprocess.Popen(
                    ["mosquitto_sub", "-h", LOOPBACK, "-p", str(b.port),
                     "-q", "1", "-t", "deye-mitm/+/heartbeat",
                     "-C", str(MQTT_EVENTS)], stdout=subprocess.DEVNULL)
                end = time.monotonic() + 10
                while mqtt_suback(b) == subs and time.monotonic() < end:
                    time.sleep(0.01)
                rc, d = run_json([os.path.join(tools, "bench_v5"),
                                  "heartbeats", "-p", str(relay.port), "-n",
                                  str(MQTT_EVENTS)], 60)
                if rc != 0:
                    sub.kill()
                    raise Broken("bench_v5 heartbeats: exit %d" % rc)
                try:
                    sub.wait(60)
                except subprocess.TimeoutExpired:
                    sub.kill()
                    sub.wait()
                    problems.append("mqtt: fewer than %d heartbeats reached "
                                    "mosquitto_sub in 60 s" % MQTT_EVENTS)
                    break
                secs = time.monotonic() - d["t_first"]
                relay.check_alive()
                res["rate"].append(MQTT_EVENTS / secs)
                log("  mqtt round %d: %d events in %.2f s, %.0f/s"
                    % (rnd, MQTT_EVENTS, secs, MQTT_EVENTS / secs))
        finally:
            relay.stop()
        relay = Relay("deye-mitm", echo_port, logdir,
                      label="deye-mitm (mqtt latency)", protocol="solarman",
                      opts=["mqtt.url=" + b.url], expect_warn=("mqtt: ",))
        relay.start()
        secs = "%.3f" % (LAT_MS / 1000.0)
        interval = int(1e6 / LAT_RATE)
        try:
            rounds = [["healthy"]] + [interleave(r, ["healthy", "hanging"])
                                      for r in range(MQTT_LAT_ROUNDS)]
            for rnd, conds in enumerate(rounds):
                for cond in conds:
                    if cond == "hanging":
                        os.kill(b.proc.pid, signal.SIGSTOP)
                    try:
                        rc, d = run_json(
                            [os.path.join(tools, "bench_v5"), "rtt", "-p",
                             str(relay.port), "-t", secs, "-w", "200", "-i",
                             str(interval), "-l"], LAT_MS / 1000.0 + 60)
                    finally:
                        os.kill(b.proc.pid, signal.SIGCONT)
                    if rc != 0:
                        raise Broken("bench_v5 rtt through %s: exit %d"
                                     % (relay.label, rc))
                    relay.check_alive()
                    if rnd > 0:
                        res[cond].append(d)
                    log("  mqtt latency %s %-7s p50 %5d us  p99 %6d us"
                        % ("round %d" % rnd if rnd else "warm-up", cond,
                           d["p50"], d["p99"]))
        finally:
            relay.stop()
    finally:
        b.close()
    return res


# ---------------------------------------------------------------- Envoy

def envoy_files(logdir):
    """The Envoy stage's files, from the black-box tests' peers: a
    keep-alive POST of a big generated report (the decoder's), one of a
    site's report (end to end), Enphase's answer to it; and how many
    events each report makes."""
    sys.path.insert(0, BLACKBOX)
    import envoy_peers as ep
    out = {}
    for name, kw in (("big", ENVOY_BIG), ("site", ENVOY_SITE)):
        rep = ep.generated(ENVOY_SEED, **kw)
        m = ep.perf_request(rep, connection="keep-alive")
        out[name] = os.path.join(logdir, "envoy-%s.http" % name)
        with open(out[name], "wb") as f:
            f.write(m.wire)
        out[name + "_events"] = len(rep.expected(m.target))
        out[name + "_bytes"] = len(m.wire)
        if name == "site":
            body = zlib.compress(ep.perf_response_xml(rep.event_ids))
            a = ep.build("HTTP/1.1 200 OK",
                         [("Content-Type", ep.RESPONSE_CT),
                          ("Content-Length", str(len(body)))], body)
            out["answer"] = os.path.join(logdir, "envoy-answer.http")
            with open(out["answer"], "wb") as f:
                f.write(a.wire)
    out["fixture_events"] = len(ep.fixture_460().expected(
        ep.PERF_TARGET % "4.6.0"))
    return out


class LineCounter:
    """Lines of a growing JSON-lines file, read as it grows."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.lines = 0
        self.reports = 0
        self.tail = b""

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                b = f.read()
        except FileNotFoundError:
            return self.lines
        self.off += len(b)
        b = self.tail + b
        cut = b.rfind(b"\n") + 1
        done, self.tail = b[:cut], b[cut:]
        self.lines += done.count(b"\n")
        self.reports += done.count(b'"type":"envoy_report"')
        return self.lines

    def wait(self, want, stall=15.0):
        """Poll until want lines, or none new for stall seconds; the count
        and the monotonic time it was seen."""
        seen, seen_t = self.poll(), time.monotonic()
        while seen < want:
            time.sleep(0.01)
            n = self.poll()
            if n != seen:
                seen, seen_t = n, time.monotonic()
            elif time.monotonic() - seen_t > stall:
                break
        return seen, seen_t


def envoy_post(tools, files, port, n):
    rc, d = run_json([os.path.join(tools, "bench_v5"), "envoy-post",
                      "-p", str(port), "-f", files["site"],
                      "-r", files["answer"], "-n", str(n),
                      "-c", str(ENVOY_CONNS)], 120)
    if rc != 0:
        raise Broken("bench_v5 envoy-post through port %d: exit %d"
                     % (port, rc))
    return d


def envoy_stage(files, tools, logdir, log, problems):
    """ENVOY_POSTS POSTs of the site report over ENVOY_CONNS keep-alive
    connections through deye-mitm (protocol = envoy, spool files, events
    to a JSON-lines file), socat and deye-mitm (protocol = raw) to
    tools/bench_v5 envoy-upstream, rounds interleaved; after each run of
    the tap, every event must reach the file before the next run starts."""
    up, up_port = port_proc("bench_v5-envoy-upstream",
                            [os.path.join(tools, "bench_v5"),
                             "envoy-upstream", "-f", files["site"],
                             "-r", files["answer"]], logdir)
    spool = os.path.join(logdir, "envoy-spool")
    events = os.path.join(logdir, "envoy-events.jsonl")
    os.mkdir(spool)
    D = "deye-mitm (envoy)"
    relays = [Relay("deye-mitm", up_port, logdir, label=D, protocol="envoy",
                    opts=["deye.spool_dir=" + spool, "events=" + events]),
              Relay("socat", up_port, logdir),
              Relay("deye-mitm", up_port, logdir, label="deye-mitm (raw)")]
    res = {r.label: [] for r in relays}
    drained = []
    counter = LineCounter(events)
    per_run = ENVOY_POSTS * files["site_events"] + ENVOY_CONNS
    expected = 0
    try:
        for r in relays:
            r.start()
        idle_rss = status_kib(relays[0].proc.pid, "VmRSS")
        # Warm-up, not counted: each relay once.
        for r in relays:
            envoy_post(tools, files, r.port, ENVOY_WARMUP)
        expected += ENVOY_WARMUP * files["site_events"] + ENVOY_CONNS
        for rnd in range(ENVOY_ROUNDS):
            for r in interleave(rnd, relays):
                if r.label == D:
                    # The previous run's backlog first: nothing else runs
                    # while a relay is measured.
                    got, _ = counter.wait(expected)
                    if got != expected:
                        raise Broken("%s: %d of %d events reached the "
                                     "events file" % (D, got, expected))
                d = envoy_post(tools, files, r.port, ENVOY_POSTS)
                r.check_alive()
                if r.label == D:
                    expected += per_run
                    got, t_seen = counter.wait(expected)
                    d["events"] = got - (expected - per_run)
                    d["ev_rate"] = d["events"] / (t_seen - d["t_first"])
                    d["backlog"] = t_seen - d["t_last"]
                    drained.append(d)
                res[r.label].append(d)
                log("  envoy round %d %-18s %7.0f POSTs/s  p50 %5d us  p99 "
                    "%6d us%s" % (rnd + 1, r.label, d["rate"], d["p50"],
                                  d["p99"],
                                  "  %d events, %.0f/s, all in %.1f s after "
                                  "the last answer" % (d["events"],
                                                       d["ev_rate"],
                                                       d["backlog"])
                                  if "events" in d else ""))
        peak = status_kib(relays[0].proc.pid, "VmHWM")
    finally:
        for r in relays:
            r.stop()
        up.stop()
    # The journal may deliver the last lines at the stop.
    got = counter.poll()
    posts = ENVOY_WARMUP + ENVOY_ROUNDS * ENVOY_POSTS
    spooled = len([x for x in os.listdir(spool) if not x.startswith(".")])
    if got != expected or counter.reports != posts:
        problems.append("%s: %d of %d events (%d of %d envoy_report) in the "
                        "events file" % (D, got, expected, counter.reports,
                                         posts))
    if spooled != 3 * posts:
        problems.append("%s: %d spool files for %d POSTs (want .request, "
                        ".response and .xml of each)" % (D, spooled, posts))
    return {"runs": res, "drained": drained, "peak_rss": peak,
            "idle_rss": idle_rss, "events": got, "spooled": spooled}


# ---------------------------------------------------------------- report

def pooled_pct(runs, p):
    """Nearest-rank percentile of every "lat" of runs together."""
    v = sorted(x for d in runs for x in d["lat"])
    if not v:
        return float("nan")
    return v[min(max(int(p / 100.0 * len(v) + 0.999999), 1), len(v)) - 1]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(v, unit):
    if unit in ("Gbit/s", "s/GB"):
        return "%.2f" % v
    if unit in ("KiB", "MiB", "ms/s", "MB/s", "s"):
        return "%.1f" % v
    if unit == "x":
        return "%.2f" % v
    return "%.0f" % v


def main():
    for var in ("DEYE_MITM", "DEYE_TOOLS", "DEYE_BENCH_DECODER"):
        if not os.environ.get(var):
            print("bench: %s is not set; run it with make bench" % var,
                  file=sys.stderr)
            return 2
    tools = os.environ["DEYE_TOOLS"]
    missing = [t for t in ("socat", "iperf3", "haproxy") +
               (("valgrind", "callgrind_control", "callgrind_annotate")
                if "cost" in ONLY else ())
               if shutil.which(t) is None]
    missing += [p for p in (os.environ["DEYE_MITM"],
                            os.environ["DEYE_BENCH_DECODER"],
                            os.path.join(tools, "bench_echo"),
                            os.path.join(tools, "bench_connrate"),
                            os.path.join(tools, "bench_v5"),
                            os.path.join(tools, "bench_hec"))
                if not os.access(p, os.X_OK)]
    if not os.access(FIXTURES, os.R_OK):
        missing.append(FIXTURES)
    if missing:
        print("bench: missing: %s" % ", ".join(missing), file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < HOLD + 100:
        print("bench: open file limit %d is too low for BENCH_HOLD=%d"
              % (want, HOLD), file=sys.stderr)
        return 2

    logdir = tempfile.mkdtemp(prefix="deye-bench-")
    t_start = time.monotonic()

    def log(msg):
        # A stage's first line (one leading blank) shows the load average:
        # the machine may be shared.
        if msg.startswith(" ") and not msg.startswith("  "):
            msg += " (load %.2f)" % os.getloadavg()[0]
        print("[%5.1fs]%s" % (time.monotonic() - t_start, msg), flush=True)

    load0 = os.getloadavg()[0]
    steal0 = cpu_stolen()
    busy = cpu_busy(1.0)
    ver = subprocess.run(["socat", "-V"], capture_output=True,
                         text=True).stdout
    socat_ver = next((x.split()[2] for x in ver.splitlines()
                      if x.startswith("socat version")), "?")
    print("deye-mitm benchmark: %s vs socat %s -b 65536 (fork), on %s, "
          "kernel %s, %d CPUs, load %.2f, %.0f%% CPU busy before start"
          % (os.path.basename(os.environ["DEYE_MITM"]), socat_ver, LOOPBACK,
             platform.release(), os.cpu_count() or 0, os.getloadavg()[0],
             100 * busy))
    if busy > 0.15:
        print("bench: WARNING: the machine is not idle (%.0f%% CPU busy "
              "before start); absolute numbers will be low and noisy, the "
              "interleaved ratios less so" % (100 * busy))
    ha = subprocess.run(["haproxy", "-v"], capture_output=True,
                        text=True).stdout.split()
    print("HAProxy %s, tcp mode" % (ha[2] if len(ha) > 2 else "?"))
    print("logs in %s" % logdir, flush=True)

    ok = False
    problems = []
    try:
        envoy_in = envoy_files(logdir) if "envoy" in ONLY else None
        dec = bulk = v5 = rate = rate_pinned = mem = hec = hec_py = \
            lat = envoy = echo = hec_sink = met = mq = cost = None
        if "decoder" in ONLY or envoy_in:
            # ---- 0. the decoder alone, on one CPU, before anything else runs
            log(" decoder: bench-decoder, in memory, one CPU, best of %d"
                % DEC_REPS)
            dec = decoder_stage(log, envoy_in)

        if set(ONLY) & {"rate", "memory", "cost", "metrics", "latency",
                        "mqtt"}:
            # ---- upstreams
            echo, echo_port = port_proc(
                "bench_echo", [os.path.join(tools, "bench_echo")], logdir)

        if "bulk" in ONLY:
            iperf_port = free_port()
            iperf_srv = Proc("iperf3-server", ["iperf3", "-s", "-B", LOOPBACK,
                                               "-p", str(iperf_port)], logdir)
            if not wait_listening(iperf_srv, iperf_port):
                raise Broken("iperf3 server did not start:\n%s"
                             % iperf_srv.log_tail())


            # ---- 1. bulk
            log(" bulk: iperf3 -t %d -O 1, %d rounds, up and down (-R)"
                % (BULK_SECS, BULK_ROUNDS))
            # iperf3's bytes are not V5: the tap gives up on each connection
            # after its first bytes (one warning, one event each).
            relays = [Relay("deye-mitm", iperf_port, logdir).start(),
                      Relay("socat", iperf_port, logdir).start(),
                      Relay(HA, iperf_port, logdir).start(),
                      Relay("deye-mitm", iperf_port, logdir, label=TAP,
                            protocol="solarman",
                            expect_warn=("not Solarman V5",)).start()]
            try:
                direct = {"up": iperf(iperf_port, False)[0],
                          "down": iperf(iperf_port, True)[0]}
                log("  bulk direct (no relay): up %.2f, down %.2f Gbit/s"
                    % (direct["up"], direct["down"]))
                bulk = bulk_stage(relays, log)
            finally:
                for r in relays:
                    r.stop()
            iperf_srv.stop()

        if "v5" in ONLY:
            # ---- 1b. a stream of real V5 frames: the tap's worst case
            log(" v5: the fixture frames repeated, one connection, %d s per "
                "run, %d rounds, to a sink" % (V5_SECS, V5_ROUNDS))
            sink, sink_port = port_proc(
                "bench_v5-sink", [os.path.join(tools, "bench_v5"), "sink"],
                logdir)
            # Every frame becomes an event, far more than the event queue
            # takes: its "queue full, dropped" warnings are expected here.
            relays = [Relay("deye-mitm", sink_port, logdir),
                      Relay("deye-mitm", sink_port, logdir, label=TAP,
                            protocol="solarman", expect_warn=("queue full",)),
                      Relay("socat", sink_port, logdir)]
            try:
                for r in relays:
                    r.start()
                v5 = v5_stage(relays, tools, log)
                v5_dropped = dropped_events(relays[1])
            finally:
                for r in relays:
                    r.stop()
            sink.stop()

        if "rate" in ONLY:
            # ---- 2./3. connection rate and latency
            log(" rate: sequential connect + %d-byte echo + close, %d s per "
                "run after %d warm-up exchanges, %d rounds"
                % (MSG_SIZE, RATE_SECS, RATE_WARMUP, RATE_ROUNDS))
            relays = [Relay("deye-mitm", echo_port, logdir),
                      Relay("socat", echo_port, logdir),
                      Relay("deye-mitm", echo_port, logdir,
                            label="deye-mitm (info log)", loglevel=None),
                      Relay(HA, echo_port, logdir),
                      Relay("deye-mitm", echo_port, logdir, label=TAP,
                            protocol="solarman")]
            try:
                for r in relays:
                    r.start()
                direct_rate = connrate(tools, echo_port, RATE_SECS,
                                       RATE_WARMUP)
                log("  rate direct (no relay): %.0f conn/s, p99 %d us"
                    % (direct_rate["rate"], direct_rate["total"]["p99"]))
                rate = rate_stage(relays, tools, log, RATE_ROUNDS)
                info_log = relays[2].proc.log_path
                # The same on one CPU: no cross-CPU wake-ups (slow in VMs), so
                # what remains is mostly each relay's own cost per connection.
                all_cpus = os.sched_getaffinity(0)
                if len(all_cpus) > 1 and PIN_ROUNDS > 0:
                    one = {max(all_cpus)}
                    log(" rate on one CPU (%d): relays, echo server and "
                        "client pinned, %d rounds" % (max(one), PIN_ROUNDS))
                    try:
                        pin([echo.pid] + [r.proc.pid for r in relays[:2]], one)
                        rate_pinned = rate_stage(relays[:2], tools, log,
                                                 PIN_ROUNDS, one, " 1cpu")
                    finally:
                        pin([echo.pid] + [r.proc.pid for r in relays[:2]],
                            all_cpus)
                else:
                    rate_pinned = None
            finally:
                for r in relays:
                    r.stop()
            with open(info_log, errors="replace") as f:
                closed = sum(1 for x in f if " info: closed conn=" in x)
            # One line per connection, warm-up included; at least the counted.
            expected = sum(d["n"] for d in rate["deye-mitm (info log)"])
            if closed < expected:
                problems.append("deye-mitm at info level logged %d closed "
                                "connections, expected at least %d"
                                % (closed, expected))

        if "memory" in ONLY:
            # ---- 4. memory
            log(" memory: %d idle connections held at once, fresh relay each "
                "round, %d rounds" % (HOLD, MEM_ROUNDS))
            mem = memory_stage(["deye-mitm", "socat", HA], echo_port, logdir,
                               log)

        if "cost" in ONLY:
            log(" cost: user-space instructions per connection under "
                "callgrind, %d exchanges as in the rate stage" % COST_CONNS)
            cost = cost_stage(echo_port, tools, logdir, log)

        if "metrics" in ONLY:
            log(" metrics: %d scrapes idle and with %d connections held; "
                "the rate row scraped every 100 ms or not, %d rounds"
                % (METRICS_SCRAPES, HOLD, METRICS_ROUNDS))
            met = metrics_stage(echo_port, tools, logdir, log, problems)

        if set(ONLY) & {"hec", "latency"}:
            hec_sink = HecSink("bench_hec", [os.path.join(tools, "bench_hec")],
                               logdir)

        if "hec" in ONLY:
            # ---- 5. HEC
            log(" hec: %d heartbeats over %d connections (at most %d ahead of "
                "the receiver), deye-mitm without upstream, to "
                "tools/bench_hec; %d rounds"
                % (HEC_EVENTS, HEC_CONNS, HEC_WINDOW, HEC_ROUNDS))
            relays = [hec_relay(logdir, hec_sink, 1000,
                                "deye-mitm (batch 1000)"),
                      hec_relay(logdir, hec_sink, 100,
                                "deye-mitm (batch 100)")]
            hec = {r.label: [] for r in relays}
            try:
                for r in relays:
                    r.start()
                for rnd in range(HEC_ROUNDS):
                    for r in interleave(rnd, relays):
                        d = hec_rate(r, hec_sink, problems)
                        hec[r.label].append(d)
                        log("  hec round %d %-24s %7.0f events/s  (%d "
                            "events, %d requests, %.2f s)"
                            % (rnd + 1, r.label, d["rate"], d["events"],
                               d["requests"], d["secs"]))
            finally:
                for r in relays:
                    r.stop()
            # The black-box tests' Python receiver, for comparison (info).
            hec_py = {}
            for nodelay in (False, True):
                name = "python" + (" nodelay" if nodelay else "")
                rx = HecSink("hec_rx", [sys.executable, HEC_RX] +
                             (["--nodelay"] if nodelay else []), logdir)
                r = hec_relay(logdir, rx, 100, "deye-mitm (%s)" % name)
                try:
                    r.start()
                    hec_py[name] = hec_rate_python(r, rx, tools, problems)
                finally:
                    r.stop()
                    rx.stop()
                log("  hec %-22s %7.0f events/s  (%d events at once, batch "
                    "100, %d requests, %.2f s)" % (
                        "Python HecReceiver" + (", TCP_NODELAY" if nodelay
                                                else ""),
                        hec_py[name]["rate"], hec_py[name]["events"],
                        hec_py[name]["requests"], hec_py[name]["secs"]))

        if "latency" in ONLY:
            log(" latency: one heartbeat each way per exchange through "
                "deye-mitm (solarman) to the echo server, %d/s for %.1f s, "
                "HEC healthy and hanging in turn, %d rounds"
                % (LAT_RATE, LAT_MS / 1000.0, LAT_ROUNDS))
            # A hung request that ends may be retried with a warning.
            relay = hec_relay(logdir, hec_sink, 100, "deye-mitm (hec latency)",
                              up=echo_port, expect_warn=("hec: ",))
            try:
                relay.start()
                lat = latency_stage(relay, hec_sink, tools, log, problems)
            finally:
                relay.stop()
        if "mqtt" in ONLY:
            log(" mqtt: %d heartbeats at once to a real mosquitto, QoS 1, "
                "%d rounds; relay round trips with the broker healthy and "
                "hanging (SIGSTOP), %d rounds"
                % (MQTT_EVENTS, MQTT_ROUNDS, MQTT_LAT_ROUNDS))
            mq = mqtt_stage(tools, logdir, echo_port, log, problems)
        if hec_sink:
            hec_sink.stop()
        if echo:
            echo.stop()

        # ---- 6. Envoy end to end
        if envoy_in:
            log(" envoy: %d POSTs of a %d-event report (%d bytes) over %d "
                "keep-alive connections, to bench_v5 envoy-upstream; "
                "deye-mitm (envoy: spool files, events file), socat and "
                "deye-mitm (raw), %d rounds"
                % (ENVOY_POSTS, envoy_in["site_events"],
                   envoy_in["site_bytes"], ENVOY_CONNS, ENVOY_ROUNDS))
            envoy = envoy_stage(envoy_in, tools, logdir, log, problems)

        if rate:

            for label, runs in list(rate.items()) + list(
                    (rate_pinned or {}).items()):
                errs = sum(d["errors"] + d["warmup_errors"] for d in runs)
                if errs:
                    problems.append("%s: %d failed exchanges (first: %s)" % (
                        label, errs, next(d["error"] for d in runs
                                          if d["error"])))
        if mem:
            for kind, runs in mem.items():
                if not all(m["drained"] for m in runs):
                    problems.append("%s did not let go of the held "
                                    "connections within 10 s of their "
                                    "close" % kind)
        ok = True
    except Broken as e:
        print("\nbench: BROKEN: %s" % e, file=sys.stderr)
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
    finally:
        signal.alarm(0)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # let the clean-up finish
        Proc.stop_all()
        left = leftovers()
        if left:
            print("bench: killing leftover processes %s" % left,
                  file=sys.stderr)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            problems.append("leftover processes: %s" % left)

    if not ok:
        print("bench: logs kept in %s" % logdir, file=sys.stderr)
        return 1

    # ---- the table
    D, S, I = "deye-mitm", "socat", "deye-mitm (info log)"
    # metric, unit, deye, socat, ratio, haproxy, ratio to it, target, pass
    # (None: info)
    rows = []

    def add(metric, unit, dv, sv, target=None, passed=None, hv=None,
            hr=None):
        """sv None: a row of deye-mitm alone (no socat, no ratio); hv the
        HAProxy value, hr the median of the per-round ratios to it."""
        ratio = dv / sv if sv else float("nan")
        rows.append((metric, unit, dv, sv, ratio, hv,
                     float("nan") if hr is None else hr, target or "(info)",
                     passed))

    def rr(xs, ys, f=lambda x: x):
        """The median of the per-round ratios f(x) / f(y)."""
        return med([f(x) / f(y) for x, y in zip(xs, ys) if f(y)])

    if bulk:
        # The solarman tap decodes all of a stream but a TLS one: iperf3's
        # random bytes too.  It must keep up with HAProxy; what decoding
        # them costs is the tap / raw ratio beside it.
        for dirn, name in (("up", "logger->cloud"),
                           ("down", "cloud->logger, -R")):
            dv, sv = med(bulk[D][dirn]), med(bulk[S][dirn])
            hv = med(bulk[HA][dirn])
            add("bulk throughput, %s" % name, "Gbit/s", dv, sv,
                ">= 1.10x socat", dv / sv >= 1.10, hv,
                rr(bulk[D][dirn], bulk[HA][dirn]))
            tv = med(bulk[TAP][dirn])
            hr = rr(bulk[TAP][dirn], bulk[HA][dirn])
            add("  same, solarman tap", "Gbit/s", tv, sv,
                ">= 1.00x haproxy", hr >= 1.0, hv, hr)
            add("    tap / raw, per-round median", "x",
                rr(bulk[TAP][dirn], bulk[D][dirn]),
                None)
            add("  relay CPU per GB, %s" % dirn, "s/GB",
                med(bulk[D][dirn + "_cpu"]), med(bulk[S][dirn + "_cpu"]))
    if v5:
        dv, sv, tv = (med(v5[D]["mbps"]), med(v5[S]["mbps"]),
                      med(v5[TAP]["mbps"]))
        add("V5 frame stream, protocol=raw", "MB/s", dv, sv)
        add("  same, solarman tap", "MB/s", tv, sv,
            ">= 0.95x raw's = %.2fx" % (0.95 * dv / sv), tv >= 0.95 * dv)
        add("  relay CPU per GB, V5, tap", "s/GB", med(v5[TAP]["cpu"]),
            med(v5[S]["cpu"]))
    if rate:
        dv, sv = (med([d["rate"] for d in rate[D]]),
                  med([d["rate"] for d in rate[S]]))
        def rate_f(d):
            return d["rate"]

        def p99_f(d):
            return d["total"]["p99"]
        hv = med([d["rate"] for d in rate[HA]])
        add("connection rate (sequential)", "conn/s", dv, sv, ">= 3.00x socat",
            dv / sv >= 3.0, hv, rr(rate[D], rate[HA], rate_f))
        hr = rr(rate[TAP], rate[HA], rate_f)
        add("  same, solarman tap", "conn/s", med([d["rate"] for d in
                                                    rate[TAP]]), sv,
            ">= 1.00x haproxy", hr >= 1.0, hv, hr)
        dv, sv = (med([d["total"]["p99"] for d in rate[D]]),
                  med([d["total"]["p99"] for d in rate[S]]))
        hv = med([d["total"]["p99"] for d in rate[HA]])
        add("p99 connect+echo+close", "us", dv, sv, "<= 1.00x socat", dv <= sv,
            hv, rr(rate[D], rate[HA], p99_f))
        hr = rr(rate[TAP], rate[HA], p99_f)
        add("  same, solarman tap", "us", med([d["total"]["p99"] for d in
                                                rate[TAP]]), sv,
            "<= 1.00x haproxy", hr <= 1.0, hv, hr)
        add("p50 connect+echo+close", "us",
            med([d["total"]["p50"] for d in rate[D]]),
            med([d["total"]["p50"] for d in rate[S]]), hv=med(
                [d["total"]["p50"] for d in rate[HA]]),
            hr=rr(rate[D], rate[HA], lambda d: d["total"]["p50"]))
        add("p99 connect+echo (no close)", "us",
            med([d["echo"]["p99"] for d in rate[D]]),
            med([d["echo"]["p99"] for d in rate[S]]))
        add("  relay CPU per connection", "us",
            med([d["cpu_us"] for d in rate[D]]),
            med([d["cpu_us"] for d in rate[S]]),
            hv=med([d["cpu_us"] for d in rate[HA]]),
            hr=rr(rate[D], rate[HA], lambda d: d["cpu_us"]))
        add("  same, solarman tap", "us",
            med([d["cpu_us"] for d in rate[TAP]]),
            med([d["cpu_us"] for d in rate[S]]),
            hv=med([d["cpu_us"] for d in rate[HA]]),
            hr=rr(rate[TAP], rate[HA], lambda d: d["cpu_us"]))
        if rate_pinned:
            add("conn rate, all on one CPU", "conn/s",
                med([d["rate"] for d in rate_pinned[D]]),
                med([d["rate"] for d in rate_pinned[S]]))
            add("  p99, all on one CPU", "us",
                med([d["total"]["p99"] for d in rate_pinned[D]]),
                med([d["total"]["p99"] for d in rate_pinned[S]]))
            add("  relay CPU per connection, one CPU", "us",
                med([d["cpu_us"] for d in rate_pinned[D]]),
                med([d["cpu_us"] for d in rate_pinned[S]]))
        add("conn rate, deye-mitm at info log", "conn/s",
            med([d["rate"] for d in rate[I]]),
            med([d["rate"] for d in rate[S]]))
        add("p99, deye-mitm at info log", "us",
            med([d["total"]["p99"] for d in rate[I]]),
            med([d["total"]["p99"] for d in rate[S]]))
    if mem:
        dv, sv = (med([m["per_rss"] for m in mem[D]]),
                  med([m["per_rss"] for m in mem[S]]))
        add("RSS per held conn (socat: sum)", "KiB", dv, sv, "<= 16 KiB",
            dv <= 16.0, med([m["per_rss"] for m in mem[HA]]),
            rr(mem[D], mem[HA], lambda m: m["per_rss"]))
        add("PSS per held conn (fair)", "KiB",
            med([m["per_pss"] for m in mem[D]]),
            med([m["per_pss"] for m in mem[S]]),
            hv=med([m["per_pss"] for m in mem[HA]]),
            hr=rr(mem[D], mem[HA], lambda m: m["per_pss"]))
        add("  wakeups/s, %d conns idle" % HOLD, "1/s",
            med([m["idle_wakeups"] for m in mem[D]]),
            med([m["idle_wakeups"] for m in mem[S]]))
        add("  CPU, %d conns idle" % HOLD, "ms/s",
            med([m["idle_cpu_ms"] for m in mem[D]]),
            med([m["idle_cpu_ms"] for m in mem[S]]))
        dv, sv = (med([m["idle_rss"] for m in mem[D]]) / 1024,
                  med([m["idle_rss"] for m in mem[S]]) / 1024)
        add("idle RSS after start (tap, HEC)", "MiB", dv, sv, "<= 8 MiB",
            dv <= 8.0, med([m["idle_rss"] for m in mem[HA]]) / 1024,
            rr(mem[D], mem[HA], lambda m: m["idle_rss"]))
        add("idle PSS after start", "MiB",
            med([m["idle_pss"] for m in mem[D]]) / 1024,
            med([m["idle_pss"] for m in mem[S]]) / 1024)
    if cost:
        dv, hv = cost[D]["total"], cost[HA]["total"]
        add("instructions per connection", "Ir", dv, None, hv=hv, hr=dv / hv)
        for name, v in cost[D]["threads"].items():
            add("  " + name, "Ir", v, None)

    # deye-mitm alone from here.
    if dec and "stream" in dec:
        v = dec["stream"]["mbps_best"]
        add("decoder: real frames, 64 KiB chunks", "MB/s", v, None)
        add("  frames found", "frames/s", dec["stream"]["fps_best"], None)
        v = dec["garbage"]["mbps_best"]
        add("decoder: garbage (0xA5 every ~256 B)", "MB/s", v, None,
            ">= 1000 MB/s", v >= 1000)
        add("  garbage without 0xA5 (memchr)", "MB/s",
            dec["garbage_no_a5"]["mbps_best"], None)
        v = dec["json_data"]["fps_best"]
        add("decoder: data frames to JSON", "frames/s", v, None,
            ">= 300000/s", v >= 300000)
        add("  heartbeat frames to JSON", "frames/s",
            dec["json_heartbeat"]["fps_best"], None)
        add("  Solis data frames (0x0507) to JSON", "frames/s",
            dec["json_solis"]["fps_best"], None)
    B1, B2 = "deye-mitm (batch 1000)", "deye-mitm (batch 100)"
    if hec:
        v = med([d["rate"] for d in hec[B1]])
        add("HEC end to end, batch 1000", "events/s", v, None, ">= 20000/s",
            v >= 20000)
        add("  batch 100 (the default)", "events/s",
            med([d["rate"] for d in hec[B2]]), None)
        add("  Python HecReceiver, batch 100", "events/s",
            hec_py["python"]["rate"], None)
        add("  same, its TCP_NODELAY set", "events/s",
            hec_py["python nodelay"]["rate"], None)
    if lat:
        # The p99 of every round trip of a condition, pooled over its rounds.
        hv, gv = (pooled_pct(lat["healthy"], 99),
                  pooled_pct(lat["hanging"], 99))
        lat_ratios = [g["p99"] / h["p99"]
                      for h, g in zip(lat["healthy"], lat["hanging"])]
        add("relay p99 RTT, HEC healthy", "us", hv, None)
        add("relay p99 RTT, HEC hanging", "us", gv, None)
        add("  p99 hanging / healthy", "x", gv / hv, None, "<= 1.10",
            gv / hv <= 1.10)
        add("  p50 hanging / healthy", "x", pooled_pct(lat["hanging"], 50) /
            pooled_pct(lat["healthy"], 50), None)

    if mq and mq["rate"]:
        v = med(mq["rate"])
        add("MQTT end to end, QoS 1, mosquitto", "events/s", v, None,
            ">= 20000/s", v >= 20000)
    if mq and mq["healthy"] and mq["hanging"]:
        hv, gv = pooled_pct(mq["healthy"], 99), pooled_pct(mq["hanging"], 99)
        add("relay p99 RTT, MQTT broker healthy", "us", hv, None)
        add("relay p99 RTT, MQTT broker hanging", "us", gv, None)
        add("  p99 hanging / healthy", "x", gv / hv, None, "<= 1.10",
            gv / hv <= 1.10)

    if dec and "envoy_http" in dec:
        add("envoy decoder: HTTP stream, 1460 B pieces", "MB/s",
            dec["envoy_http"]["mbps_best"], None)
        add("  POSTs parsed", "POSTs/s", dec["envoy_http"]["fps_best"], None)
        add("envoy decoder: report to JSON events", "events/s",
            dec["envoy_report"]["fps_best"], None)
        add("  4.6.0 fixture to JSON events", "events/s",
            dec["envoy_report_460"]["fps_best"], None)
        add("  POST body: inflate+form+events", "POSTs/s",
            dec["envoy_post"]["fps_best"], None)
    if envoy:
        E, runs = "deye-mitm (envoy)", envoy["runs"]
        add("Envoy POSTs, %d keep-alive conns" % ENVOY_CONNS, "POSTs/s",
            med([d["rate"] for d in runs[E]]),
            med([d["rate"] for d in runs[S]]))
        add("  same, deye-mitm protocol=raw", "POSTs/s",
            med([d["rate"] for d in runs["deye-mitm (raw)"]]),
            med([d["rate"] for d in runs[S]]))
        add("  p99 per POST", "us", med([d["p99"] for d in runs[E]]),
            med([d["p99"] for d in runs[S]]))
        add("  p99 per POST, protocol=raw", "us",
            med([d["p99"] for d in runs["deye-mitm (raw)"]]),
            med([d["p99"] for d in runs[S]]))
        add("Envoy events delivered to file", "events/s",
            med([d["ev_rate"] for d in envoy["drained"]]), None)
        add("  all delivered after the last answer", "s",
            med([d["backlog"] for d in envoy["drained"]]), None)
        add("  deye-mitm peak RSS (VmHWM)", "MiB", envoy["peak_rss"] / 1024,
            None)
    hdr = ("metric", "unit", "deye-mitm", "socat", "ratio", "haproxy",
           "ratio", "target", "result")
    table = [hdr] + [(m, u, fmt(d, u), "-" if s is None else fmt(s, u),
                      "%.2fx" % r if r == r else "-",
                      "-" if h is None else fmt(h, u),
                      "%.2fx" % hr if hr == hr else "-", t,
                      "" if p is None else ("PASS" if p else "MISS"))
                     for m, u, d, s, r, h, hr, t, p in rows]
    w = [max(len(r[i]) for r in table) for i in range(len(hdr))]
    print("\nResults: medians of interleaved rounds (bulk %d, V5 stream %d, "
          "rate %d, one CPU %d, memory %d, HEC %d, HEC latency %d, Envoy "
          "%d), the decoder's best of %d; ratio = deye-mitm / socat (of the "
          "medians), then deye-mitm / haproxy (the median of the per-round "
          "ratios); rows without socat are deye-mitm alone%s\n"
          % (BULK_ROUNDS if bulk else 0, V5_ROUNDS if v5 else 0,
             RATE_ROUNDS if rate else 0, PIN_ROUNDS if rate_pinned else 0,
             MEM_ROUNDS if mem else 0, HEC_ROUNDS if hec else 0,
             LAT_ROUNDS if lat else 0, ENVOY_ROUNDS if envoy else 0,
             DEC_REPS, "" if ONLY == list(STAGES) else
             "; BENCH_ONLY=" + ",".join(ONLY)))
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w[j]) if j in (0, 1, 7) else c.rjust(w[j])
                        for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * x for x in w))

    # ---- details
    def spread(xs, f="%.2f"):
        return "[" + ", ".join(f % x for x in xs) + "]"

    print("\nDetails:")
    if bulk:
        for dirn in ("up", "down"):
            pr = [a / b for a, b in zip(bulk[D][dirn], bulk[S][dirn])]
            print("  bulk %-4s per-round ratios %s; direct, no relay: %.2f "
                  "Gbit/s"
                  % (dirn, spread(pr), direct[dirn]))
        for dirn in ("up", "down"):
            pr = [a / b for a, b in zip(bulk[TAP][dirn], bulk[D][dirn])]
            print("  bulk %-4s solarman tap / raw per round %s" % (dirn,
                                                                 spread(pr)))
    if v5:
        pr = [a / b for a, b in zip(v5[TAP]["mbps"], v5[D]["mbps"])]
        print("  V5 stream solarman tap / raw per round %s; raw %s MB/s; the "
              "tap's event queue dropped %d events (every frame is an event)"
              % (spread(pr, "%.3f"), spread(v5[D]["mbps"], "%.0f"),
                 v5_dropped))
    if rate:
        pr = [a["rate"] / b["rate"] for a, b in zip(rate[D], rate[S])]
        print("  rate per-round ratios %s; direct, no relay: %.0f conn/s"
              % (spread(pr), direct_rate["rate"]))
    if mem:
        dm, sm = mem[D][-1], mem[S][-1]
        ik = dm["idle_kind"]
        print("  deye-mitm idle: VmRSS %d KiB: mapped files %d KiB (the "
              "program and its libraries), the outbox ring %d KiB (locked "
              "in memory), heap %d KiB, stacks %d KiB, other %d KiB "
              "(RssAnon %d KiB); held %d threads for %d connections; RSS "
              "after the %d closed: %d KiB"
              % (dm["idle_rss"], ik["libs"], ik["outbox"], ik["heap"],
                 ik["stacks"], ik["other"], dm["idle_anon"], dm["threads"],
                 HOLD, HOLD, dm["after_rss"]))
        pk = {k: med([m["per_kind"][k] for m in mem[D]])
              for k in dm["per_kind"]}
        print("  deye-mitm RSS per held connection by mapping: thread stacks "
              "%.1f KiB (%.1f stacks, %.1f KiB each), heap/malloc arenas %.1f "
              "KiB, other %.1f KiB"
              % (pk["stacks"], pk["nstacks"],
                 pk["stacks"] / pk["nstacks"] if pk["nstacks"] else 0,
                 pk["heap"], pk["other"]))
        print("  socat held: %d processes, sum VmRSS %d KiB, sum Pss %d KiB"
              % (sm["procs"], sm["held_rss"], sm["held_pss"]))
        print("  RSS rows: deye-mitm VmRSS; socat VmRSS summed over the "
              "parent and its fork children.  PSS rows: smaps_rollup Pss, "
              "summed the same way.")
    if met:
        sc, ns = (met["rate"]["deye-mitm (scraped)"],
                  met["rate"]["deye-mitm (not scraped)"])
        ratios = [a["rate"] / b["rate"] for a, b in zip(sc, ns)]
        rates = [b["rate"] for b in ns]
        noise = (max(rates) - min(rates)) / med(rates)
        print("  metrics: a scrape of /metrics (%d bytes) p50/p99 %.2f/%.2f "
              "ms idle, %.2f/%.2f ms with %d connections held; rate scraped "
              "every 100 ms / not scraped per round %s (median %.3f; the "
              "unscraped rounds spread by %.1f%%: %s), %d scrapes"
              % (met["bytes"], percentile(met["idle"], 50) * 1e3,
                 percentile(met["idle"], 99) * 1e3,
                 percentile(met["held"], 50) * 1e3,
                 percentile(met["held"], 99) * 1e3, HOLD, spread(ratios, "%.3f"),
                 med(ratios), 100 * noise,
                 "within the noise" if abs(1 - med(ratios)) <= max(noise, 0.05)
                 else "BEYOND the noise", met["scrapes"]))
    if dec and "stream" in dec:
        print("  decoder (CPU %d; median of %d): real frames %.0f MB/s, "
              "garbage %.0f MB/s, without 0xA5 %.0f MB/s, data to JSON "
              "%.0f/s (%.0f bytes each), heartbeat to JSON %.0f/s; checked: "
              "%d fixture frames x %d copies found, %d of %d 0xA5 in the "
              "garbage rejected"
              % (dec["cpu"], DEC_REPS, dec["stream"]["mbps_median"],
                 dec["garbage"]["mbps_median"],
                 dec["garbage_no_a5"]["mbps_median"],
                 dec["json_data"]["fps_median"],
                 dec["json_data"]["bytes"] / dec["json_data"]["frames"],
                 dec["json_heartbeat"]["fps_median"], dec["fixture_frames"],
                 dec["stream"]["frames"] / dec["fixture_frames"],
                 dec["garbage_rejects"], dec["garbage_a5"]))
    if hec:
        for label in (B1, B2):
            print("  HEC %s per round %s events/s, largest batch %d, %d "
                  "requests per run; %d connections, window %d, "
                  "flush_interval %d ms, tools/bench_hec"
                  % (label, spread([d["rate"] for d in hec[label]], "%.0f"),
                     max(d["max_batch"] for d in hec[label]),
                     hec[label][0]["requests"], HEC_CONNS, HEC_WINDOW,
                     HEC_FLUSH_MS))
        print("  HEC Python HecReceiver: %d events at once, %d requests in "
              "%.2f s; with TCP_NODELAY %d requests in %.2f s"
              % (hec_py["python"]["events"], hec_py["python"]["requests"],
                 hec_py["python"]["secs"],
                 hec_py["python nodelay"]["requests"],
                 hec_py["python nodelay"]["secs"]))
    if lat:
        print("  latency p99 per round: healthy %s us, hanging %s us, ratios "
              "%s (median %.2f); p50 %s / %s us; %d exchanges/s, batch 100, "
              "tools/bench_hec"
              % (spread([d["p99"] for d in lat["healthy"]], "%d"),
                 spread([d["p99"] for d in lat["hanging"]], "%d"),
                 spread(lat_ratios), med(lat_ratios),
                 spread([d["p50"] for d in lat["healthy"]], "%d"),
                 spread([d["p50"] for d in lat["hanging"]], "%d"), LAT_RATE))
    if dec and "envoy_http" in dec:
        print("  envoy decoder (CPU %d; median of %d): HTTP stream %.0f MB/s "
              "(a %d-byte POST); report of %d bytes, %d events: %.0f "
              "events/s = %.0f reports/s; 4.6.0 fixture (%d events) %.0f "
              "events/s; its POST's body (%d bytes deflated) %.0f POSTs/s"
              % (dec["cpu"], DEC_REPS, dec["envoy_http"]["mbps_median"],
                 dec["envoy_post_bytes"], dec["envoy_report_bytes"],
                 dec["envoy_report_events"],
                 dec["envoy_report"]["fps_median"],
                 dec["envoy_report"]["fps_median"] /
                 dec["envoy_report_events"], dec["envoy_fixture_events"],
                 dec["envoy_report_460"]["fps_median"],
                 dec["envoy_body_bytes"], dec["envoy_post"]["fps_median"]))
    if envoy:
        E, runs = "deye-mitm (envoy)", envoy["runs"]
        pr = [a["rate"] / b["rate"] for a, b in zip(runs[E], runs[S])]
        print("  envoy POSTs/s per-round ratios %s; deye-mitm events/s per "
              "round %s, all delivered %s s after the last answer; in all "
              "%d events and %d spool files (%d POSTs with the warm-up, one "
              "event per connection too); RSS %d KiB idle, peak %d KiB"
              % (spread(pr), spread([d["ev_rate"] for d in envoy["drained"]],
                                    "%.0f"),
                 spread([d["backlog"] for d in envoy["drained"]], "%.1f"),
                 envoy["events"], envoy["spooled"],
                 ENVOY_WARMUP + ENVOY_ROUNDS * ENVOY_POSTS,
                 envoy["idle_rss"], envoy["peak_rss"]))
    steal1 = cpu_stolen()
    print("  load average at the end %.2f (%.2f at the start); CPU time "
          "stolen by the hypervisor during the run: %.1f%%"
          % (os.getloadavg()[0], load0, 100.0 * (steal1[0] - steal0[0]) /
             max(steal1[1] - steal0[1], 1)))
    print("  total time %.0f s" % (time.monotonic() - t_start))

    if problems:
        print("\nbench: BROKEN:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        print("bench: logs kept in %s" % logdir, file=sys.stderr)
        return 1
    if os.environ.get("BENCH_KEEP_LOGS") == "1":
        print("logs kept in %s" % logdir)
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    return 0


def _on_signal(signum, frame):
    raise KeyboardInterrupt()


if __name__ == "__main__":
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, _on_signal)
    signal.alarm(WATCHDOG_S)
    sys.exit(main())
