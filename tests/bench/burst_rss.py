#!/usr/bin/env python3
"""RSS of deye-mitm after bursts of connections (FAULTS.md F17).

Each burst opens N connections through the relay to an echo upstream, has
each one echo a few bytes (so both pumps of every connection have run),
closes them all, waits until the daemon has no connection left, and prints
the daemon's RSS.  Everything stays on 127.0.0.1.

    python3 tests/bench/burst_rss.py [--bin ./deye-mitm] [--bursts 12] [--conns 3000]
"""
import argparse
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time


def echo_server():
    """A one-thread non-blocking echo server; returns (port, stop)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    done = threading.Event()

    def loop():
        while not done.is_set():
            for key, _ in sel.select(0.2):
                s = key.fileobj
                if s is ls:
                    try:
                        c, _ = ls.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    b = s.recv(65536)
                except OSError:
                    b = b""
                if b:
                    try:
                        s.send(b)
                    except OSError:
                        pass
                else:
                    sel.unregister(s)
                    s.close()
    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1], done.set


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__),
                                                  "..", "..", "deye-mitm"))
    ap.add_argument("--bursts", type=int, default=12)
    ap.add_argument("--conns", type=int, default=3000)
    ap.add_argument("--protocol", default="solarman")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    port, stop_echo = echo_server()
    tmp = tempfile.TemporaryDirectory(prefix="burst-rss-")
    errpath = os.path.join(tmp.name, "stderr.log")
    err = open(errpath, "wb")
    n = "%d" % (a.conns + 10)
    opts = ["-o", "max_connections=" + n]
    # Older builds do not know the key.
    if subprocess.run([a.bin, "-n", "-o", "max_connections_per_peer=" + n],
                      capture_output=True).returncode == 0:
        opts += ["-o", "max_connections_per_peer=" + n]
    d = subprocess.Popen([a.bin, "-o", "state_dir=" + tmp.name + "/state",
                          "-o", "events=none", "-o", "log_level=warn"] + opts + [
                          "-o", "deye.protocol=" + a.protocol,
                          "-o", "deye.listen=127.0.0.1:0",
                          "-o", "deye.upstream=127.0.0.1:%d" % port,
                          "-v"], stderr=err)
    lport = None
    for _ in range(100):
        m = re.search(r"listening on [^ ]*:(\d+)", open(errpath).read())
        if m:
            lport = int(m.group(1))
            break
        time.sleep(0.05)
    if lport is None:
        sys.exit("daemon did not start")
    print("idle: %d kB" % rss_kb(d.pid))
    try:
        for b in range(a.bursts):
            socks = []
            for _ in range(a.conns):
                s = socket.create_connection(("127.0.0.1", lport), timeout=30)
                s.sendall(b"x" * 100)
                socks.append(s)
            for s in socks:
                got = 0
                while got < 100:
                    got += len(s.recv(100 - got))
            peak = rss_kb(d.pid)
            for s in socks:
                s.close()
            end = time.monotonic() + 60
            while time.monotonic() < end:
                if len(os.listdir("/proc/%d/task" % d.pid)) <= 4:
                    break
                time.sleep(0.1)
            time.sleep(1.5)  # a reap tick
            print("burst %2d: peak %6d kB, after %6d kB, threads %d" % (
                b + 1, peak, rss_kb(d.pid),
                len(os.listdir("/proc/%d/task" % d.pid))), flush=True)
    finally:
        d.terminate()
        d.wait(30)
        stop_echo()
        err.close()
        tmp.cleanup()


if __name__ == "__main__":
    main()
