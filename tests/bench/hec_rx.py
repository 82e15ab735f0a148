#!/usr/bin/env python3
"""The black-box HEC test receiver (tests/blackbox/hec_receiver.py) in a
process of its own, driven like tools/bench_hec (make bench).

    hec_rx.py [--nodelay]

Prints "PORT <n>", then answers commands on stdin, one line each:
    count     "COUNT <events kept> <requests> <time the last request was
              read, time.monotonic()> 0"
    hang 1    rx.hang_all = 3600 (every request hangs until "hang 0")
    hang 0    rx.hang_all = 0; answers "OK" to either
EOF on stdin closes the receiver.

A process of its own, so that its threads (one per connection, all under
one GIL) compete neither with bench.py nor with each other's measurements
in bench.py.  --nodelay sets TCP_NODELAY on its connections
(socketserver's disable_nagle_algorithm); without it, as in the black-box
tests, every reply on a kept-alive connection waits for the client's
delayed ACK (about 40 ms), because the reply's head and body go out in two
writes.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "blackbox"))
import hec_receiver  # noqa: E402


def main():
    if "--nodelay" in sys.argv[1:]:
        hec_receiver._Handler.disable_nagle_algorithm = True
    rx = hec_receiver.HecReceiver()
    print("PORT %d" % rx.port, flush=True)
    try:
        for line in sys.stdin:
            cmd = line.split()
            if cmd == ["count"]:
                with rx.lock:
                    n, reqs = len(rx.events), len(rx.requests)
                    last = rx.requests[-1]["time"] if reqs else 0.0
                print("COUNT %d %d %.6f 0" % (n, reqs, last), flush=True)
            elif len(cmd) == 2 and cmd[0] == "hang":
                rx.hang_all = 3600 if cmd[1] == "1" else 0
                print("OK", flush=True)
            else:
                print("ERR unknown command", flush=True)
    finally:
        rx.close()
        if rx.errors:
            print("hec_rx: receiver errors: %s" % rx.errors[:3],
                  file=sys.stderr)


if __name__ == "__main__":
    main()
