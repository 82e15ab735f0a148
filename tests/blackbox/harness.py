"""Black-box harness: the real deye-mitm binary between test clients and test
servers, all on 127.0.0.1.

Daemon starts ./deye-mitm (or $DEYE_MITM) with listen port 0 and reads the
bound port from its log; servers are small threaded TCP servers written here.
Every daemon is stopped with SIGTERM and must exit 0 with no sanitizer report.
"""
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("DEYE_MITM", os.path.join(ROOT, "deye-mitm"))
SANITIZED = bool(os.environ.get("DEYE_SANITIZE"))
# Sanitized builds are slower: stretch every wait.
SLOW = 4.0 if SANITIZED else 1.0

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "WARNING: ThreadSanitizer", "runtime error:",
                   "ERROR: ThreadSanitizer")


def bin_for_others():
    """BIN, or a copy of it that any user can run: tests that start it as
    nobody fail on a tree under a private directory (/root/deye-mitm, the
    first command's place in a root shell)."""
    global _shared_bin
    path = os.path.abspath(BIN)
    d = path
    while d != "/":
        if not os.stat(d).st_mode & 0o001:
            break
        d = os.path.dirname(d)
    else:
        return path
    if _shared_bin is None:
        tmp = tempfile.mkdtemp(prefix="deye-bin-")
        os.chmod(tmp, 0o755)
        _shared_bin = os.path.join(tmp, os.path.basename(path))
        subprocess.run(["cp", path, _shared_bin], check=True)
        os.chmod(_shared_bin, 0o755)
        atexit.register(subprocess.run, ["rm", "-rf", tmp])
    return _shared_bin


_shared_bin = None


def am_root():
    return os.geteuid() == 0


def sudo_prefix():
    """What goes before a command that needs root: nothing for root, else
    sudo -n (cached credentials or NOPASSWD; it never asks)."""
    return [] if am_root() else ["sudo", "-n"]


def privileged(cmd, check=True):
    """Run cmd (a list) as root: directly when root, else through sudo -n.
    With check, a failure raises AssertionError saying what failed; returns
    the CompletedProcess."""
    r = subprocess.run(sudo_prefix() + list(cmd), capture_output=True,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(
            "%s failed (exit %d): %s%s" % (
                " ".join(cmd), r.returncode,
                r.stderr.decode("utf-8", "replace").strip(),
                "" if am_root() else
                "\nthis test needs root, or sudo that works without asking "
                "(sudo -n: cached credentials or NOPASSWD)"))
    return r


def mount_tmpfs(dir, size):
    """A tmpfs of `size` (as in size=1m) on the directory dir, its root
    owned by the user running the tests (mode 0755).  Returns the function
    that unmounts it, for addCleanup."""
    privileged(["mount", "-t", "tmpfs", "-o", "size=%s,uid=%d,gid=%d,"
                "mode=0755" % (size, os.geteuid(), os.getegid()),
                "tmpfs", dir])

    def unmount():
        r = privileged(["umount", dir], check=False)
        if r.returncode != 0:
            # Something still holds it open: detach it all the same, so
            # no mount outlives the run, and say so.
            privileged(["umount", "-l", dir])
            raise AssertionError("umount %s: %s" % (
                dir, r.stderr.decode("utf-8", "replace").strip()))
    return unmount


def free_port():
    """A loopback port nobody listens on now: a connection there is refused
    (until somebody takes it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, step=0.02):
    """Poll pred() until it is true or timeout seconds passed."""
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# Every Daemon not yet stopped.  A test whose setUp fails after starting a
# daemon (one of its servers did not start) never reaches tearDown: what
# is still here when the tests end is stopped, and run.py fails the run.
LIVE = set()


def stop_leftovers():
    """Stop the daemons no test stopped; returns how many were still
    running (a test may have killed one itself)."""
    left = [d for d in LIVE if d.proc.poll() is None]
    for d in list(LIVE):
        d.stop()
    return len(left)


atexit.register(stop_leftovers)


class Daemon:
    """One deye-mitm process; options are -o KEY=VALUE strings.

    as_root starts it as root (for user = ...): through sudo -n when the
    tests are not root; proc is then sudo, which passes SIGTERM on and
    exits with the daemon's status.  wrap is a command put before it
    (setpriv to run it as another user)."""

    def __init__(self, *opts, config=None, env=None, upstream=None,
                 listen="127.0.0.1:0", extra_args=(), as_root=False,
                 wrap=()):
        self.dir = tempfile.TemporaryDirectory(prefix="deye-bb-")
        args = [BIN]
        if config is not None:
            path = os.path.join(self.dir.name, "test.conf")
            with open(path, "w") as f:
                f.write(config)
            args += ["-f", path]
        args += ["-o", "state_dir=" + os.path.join(self.dir.name, "state")]
        if listen is not None:
            args += ["-o", "deye.listen=" + listen]
        if upstream is not None:
            args += ["-o", "deye.upstream=" + upstream]
        for o in opts:
            args += ["-o", o]
        args += list(extra_args)
        self.errpath = os.path.join(self.dir.name, "stderr.log")
        self.err = open(self.errpath, "wb")
        e = dict(os.environ)
        e.pop("JOURNAL_STREAM", None)
        for k in list(e):
            if k.startswith(("DEYE_SPLUNK_", "DEYE_MQTT_")):
                del e[k]
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        e.setdefault("TSAN_OPTIONS", "halt_on_error=0 second_deadlock_stack=1")
        e.update(env or {})
        if as_root and not am_root():
            # sudo resets the environment: pass ours on explicitly.
            args = sudo_prefix() + ["env"] + [
                "%s=%s" % kv for kv in sorted(e.items())
                if kv[0].endswith("SAN_OPTIONS") or kv[0].startswith("DEYE_")
            ] + args
        if wrap:
            # A command that runs it as another user, who must get in.
            os.chmod(self.dir.name, 0o755)
            args = list(wrap) + args
        self.sudo = as_root and not am_root()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=self.err, env=e, cwd=self.dir.name)
        self.ports = {}
        self.stopped = False
        LIVE.add(self)

    def log(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=5.0):
        """Wait until the log matches pattern; return the match."""
        rx = re.compile(pattern)
        m = wait_for(lambda: rx.search(self.log()), timeout)
        if not m:
            raise AssertionError("log never matched %r:\n%s" % (pattern, self.log()))
        return m

    def wait_count(self, text, n, timeout=5.0):
        """Wait until text occurs at least n times in the log."""
        if not wait_for(lambda: self.log().count(text) >= n, timeout):
            raise AssertionError("%r seen %d times, not %d:\n%s" % (
                text, self.log().count(text), n, self.log()))

    def port(self, listener="deye"):
        if listener not in self.ports:
            m = self.wait_log(r"\[%s\] listening on [^ ]*:(\d+)" % re.escape(listener))
            self.ports[listener] = int(m.group(1))
        return self.ports[listener]

    def connect(self, listener="deye", timeout=10.0):
        s = socket.create_connection(("127.0.0.1", self.port(listener)),
                                     timeout=timeout * SLOW)
        return s

    def pid(self):
        """The daemon's pid: proc's, or under sudo, that of the deye-mitm
        sudo started (sudo may run it under a monitor process)."""
        if not self.sudo:
            return self.proc.pid

        def find(pid):
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == os.path.basename(BIN)[:15]:
                    return pid
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    for c in f.read().split():
                        found = find(int(c))
                        if found:
                            return found
            return None
        pid = wait_for(lambda: find(self.proc.pid), 5)
        if not pid:
            raise AssertionError("no deye-mitm under sudo (pid %d)"
                                 % self.proc.pid)
        return pid

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.pid()))

    def stop(self, timeout=5.0):
        """SIGTERM; returns (exit status, seconds taken)."""
        if self.stopped:
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "hung"
        self.stopped = True
        LIVE.discard(self)
        self.err.close()
        return rc, time.monotonic() - t0

    def sanitizer_report(self):
        log = self.log()
        return any(m in log for m in SANITIZER_MARKS)

    def close(self):
        self.stop()
        self.dir.cleanup()


def run(args, env=None, input=None):
    """Run deye-mitm to completion (for -n, -h, config errors)."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith(("DEYE_SPLUNK_", "DEYE_MQTT_")):
            del e[k]
    e.update(env or {})
    return subprocess.run([BIN] + args, capture_output=True, env=e,
                          input=input, timeout=30 * SLOW)


class Server:
    """A threaded TCP server on 127.0.0.1; handler(conn) runs per connection."""

    def __init__(self, handler, backlog=128):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.handler = handler
        self.accepted = 0
        self.errors = []
        self.threads = []
        self.lock = threading.Lock()
        self.closing = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.closing:
                c.close()
                return
            with self.lock:
                self.accepted += 1
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, c):
        try:
            self.handler(c)
        except Exception as e:  # recorded, asserted by tests that care
            self.errors.append(e)
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def recv_all(s, limit=None):
    """Read until EOF (or limit bytes); returns bytes."""
    out = bytearray()
    while limit is None or len(out) < limit:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return bytes(out)


def echo_handler(c):
    """Echo until EOF, then pass the EOF on."""
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.shutdown(socket.SHUT_WR)
    recv_all(c)


def read_events(path):
    """The whole lines of a JSON-lines file (the sink may be in the middle
    of writing the last one)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(l) for l in text.split("\n")[:-1]]
