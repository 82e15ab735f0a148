"""on_upstream_failure = answer when the cloud hangs up after a TLS
logger's first message: deye-mitm cannot answer TLS, and the logger waits
for the cloud's answer before it sends more, so the connection is closed
at once (end=relay:cannot-answer), not held until idle_timeout."""
import socket
import struct
import threading
import time
import unittest

from harness import SLOW
from test_relay import RelayTest
from test_solarman import FRAMES

TLS = FRAMES["tls-clienthello-prefix-NEGATIVE"]


class TestCloudHangsUpOnTls(RelayTest):
    def cloud(self, how):
        """A cloud that reads the logger's first message, then ends the
        connection: "eof" (FIN) or "reset" (RST)."""
        got = threading.Event()

        def handler(c):
            c.settimeout(10 * SLOW)
            if c.recv(65536):
                got.set()
            if how == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
            c.close()
        return self.server(handler), got

    def check(self, how):
        cloud, got = self.cloud(how)
        d = self.daemon("deye.on_upstream_failure=answer",
                        "deye.idle_timeout=10m", upstream=cloud.addr)
        s = d.connect()
        s.sendall(TLS)
        self.assertTrue(got.wait(5 * SLOW))
        t0 = time.monotonic()
        took = self.assert_closed_soon(s, 5)
        s.close()
        m = d.wait_log(r"closed conn=1 .*end=(\S+)(.*)")
        self.assertEqual(m.group(1), "relay:cannot-answer", d.log())
        self.assertLess(took, 5 * SLOW, time.monotonic() - t0)

    def test_cloud_eof(self):
        self.check("eof")

    def test_cloud_reset(self):
        self.check("reset")


if __name__ == "__main__":
    unittest.main()
