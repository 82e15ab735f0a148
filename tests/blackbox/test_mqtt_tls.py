"""The MQTT sink over TLS (mqtts://) against a real mosquitto with a test CA
made here by openssl: verified with ca_file; refused without it, or when
the certificate names another host (one clear log line, events kept and
delivered once the setting is right); accepted with insecure = yes (and
the warning); a client certificate for a broker that requires one."""
import json
import os
import subprocess
import tempfile
import unittest

from broker import retained
from harness import wait_for
from hec_receiver import make_test_ca
from test_journal import heartbeat
from test_mqtt import P, MqttTest


def client_cert(directory, ca, ca_key):
    """A client certificate (clientAuth) signed by the CA in directory."""
    p = lambda f: os.path.join(directory, f)
    with open(p("client.ext"), "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = clientAuth\n")

    def run(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True,
                           cwd=directory, timeout=30)
        if r.returncode != 0:
            raise AssertionError("openssl %s: %s" % (args[0], r.stderr))
    run("genpkey", "-algorithm", "EC", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-out", p("client.key"))
    run("req", "-new", "-key", p("client.key"), "-subj", "/CN=deye-mitm",
        "-out", p("client.csr"))
    run("x509", "-req", "-in", p("client.csr"), "-CA", ca, "-CAkey", ca_key,
        "-set_serial", "7", "-days", "2", "-sha256", "-extfile",
        p("client.ext"), "-out", p("client.pem"))
    return p("client.pem"), p("client.key")


class TlsTest(MqttTest):
    def setUp(self):
        super().setUp()
        self.certs = tempfile.TemporaryDirectory(prefix="deye-mqtt-ca-")
        self.addCleanup(self.certs.cleanup)
        self.ca, self.crt, self.key = make_test_ca(
            os.path.join(self.certs.name, "good"))

    def tls_daemon(self, b, *opts, **kw):
        return self.run_daemon("events=none", "mqtt.url=" + b.tls_url,
                               *opts, **kw)

    def tls_attempts(self, b):
        return b.log().count("on port %d" % b.tls_port)

    def assert_delivered(self, b, seqs, *opts):
        """A daemon with opts delivers the heartbeats kept in the journal
        (the state_dir is the test's)."""
        sub = self.client(b, [P + "/+/heartbeat"])
        d = self.tls_daemon(b, *opts)
        ms = sub.wait(lambda ms: len(ms) >= len(seqs), 10)
        self.assertEqual([json.loads(m.payload)["frame.seq"] for m in ms],
                         seqs)
        return d

    def assert_refused_once(self, b, d, pattern):
        d.wait_log(pattern)
        # Backoff from 0.5 s: three attempts within a few seconds, one line.
        self.assertTrue(wait_for(lambda: self.tls_attempts(b) >= 3, 10),
                        b.log())
        self.assertEqual(d.log().count("TLS handshake failed"), 1, d.log())
        self.assertNotIn(P + "/status", retained(b.port, P + "/#"))


class TestTls(TlsTest):
    def test_verified_with_ca_file(self):
        b = self.broker(tls=(self.ca, self.crt, self.key))
        sub = self.client(b, [P + "/#"])
        d = self.tls_daemon(b, "mqtt.ca_file=" + self.ca)
        d.wait_log(r"mqtt: connected to mqtts://127\.0\.0\.1:%d" % b.tls_port)
        self.send(d, [heartbeat(1)])
        ms = sub.wait(lambda ms: any(m.topic.endswith("/heartbeat")
                                     for m in ms), 10)
        self.assertEqual(sub.last(P + "/status"), "online")
        self.assertTrue(any(json.loads(m.payload).get("frame.seq") == "f5 01"
                            for m in ms if m.topic.endswith("/heartbeat")))
        self.assertNotIn("NOT verified", d.log())

    def test_refused_without_ca_file_events_kept(self):
        b = self.broker(tls=(self.ca, self.crt, self.key))
        d = self.tls_daemon(b)
        self.send(d, [heartbeat(1), heartbeat(2)])
        self.assert_refused_once(
            b, d, r"mqtt: cannot connect to mqtts://127\.0\.0\.1:\d+: TLS "
            r"handshake failed: certificate verify failed \(a certificate "
            r"not signed by a CA of the system store, or not for "
            r"127\.0\.0\.1\?\); events are kept and retried")
        self.stop_clean(d)
        self.assert_delivered(b, ["f5 01", "f5 02"], "mqtt.ca_file=" + self.ca)

    def test_insecure_accepts_with_a_warning(self):
        b = self.broker(tls=(self.ca, self.crt, self.key))
        sub = self.client(b, [P + "/+/heartbeat"])
        d = self.tls_daemon(b, "mqtt.insecure=yes")
        d.wait_log(r"warn: mqtt: insecure = yes: the TLS certificate of "
                   r"mqtts://127\.0\.0\.1:\d+ is NOT verified")
        self.send(d, [heartbeat(3)])
        ms = sub.wait(lambda ms: len(ms) >= 1, 10)
        self.assertEqual(json.loads(ms[0].payload)["frame.seq"], "f5 03")

    def test_a_certificate_for_another_name_is_refused(self):
        ca, crt, key = make_test_ca(os.path.join(self.certs.name, "other"),
                                    san=("DNS:broker.example",))
        b = self.broker(tls=(ca, crt, key))
        d = self.tls_daemon(b, "mqtt.ca_file=" + ca)
        self.send(d, [heartbeat(4)])
        self.assert_refused_once(
            b, d, r"mqtt: cannot connect to mqtts://127\.0\.0\.1:\d+: TLS "
            r"handshake failed: .*not for 127\.0\.0\.1")
        self.assertIn("signed by a CA of %s" % ca, d.log())

    def test_client_certificate_for_a_broker_that_requires_one(self):
        b = self.broker(tls=(self.ca, self.crt, self.key),
                        require_certificate=True)
        cert, key = client_cert(os.path.join(self.certs.name, "good"),
                                self.ca, os.path.join(self.certs.name,
                                                      "good", "ca.key"))
        # Without it the broker refuses the handshake.
        d = self.tls_daemon(b, "mqtt.ca_file=" + self.ca)
        self.send(d, [heartbeat(5)])
        d.wait_log(r"mqtt: cannot connect to mqtts://127\.0\.0\.1:\d+")
        self.stop_clean(d)
        self.assert_delivered(b, ["f5 05"], "mqtt.ca_file=" + self.ca,
                              "mqtt.cert_file=" + cert, "mqtt.key_file=" + key)


if __name__ == "__main__":
    unittest.main()
