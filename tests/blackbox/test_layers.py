"""The layering rules of the source, checked from its #include lines
(transitively): the relay core knows no decoder, journal, outbox, event or
sink; the outbox and journal know no protocol; the pure decoders use no
threads, sockets, log, journal, outbox or sink; a sink knows no protocol
and no other sink; relay.c and accept.c do not include each other both
ways.  Not a run of the binary, but it guards the
shape the black-box tests rely on, and it runs in milliseconds."""
import glob
import os
import re
import unittest

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "src")


def includes():
    inc = {}
    for path in glob.glob(os.path.join(SRC, "*.[ch]")):
        with open(path, encoding="utf-8") as f:
            inc[os.path.basename(path)] = re.findall(
                r'^#include "([^"]+)"', f.read(), re.M)
    return inc


def closure(inc, name):
    seen, todo = set(), list(inc.get(name, []))
    while todo:
        h = todo.pop()
        if h not in seen:
            seen.add(h)
            todo.extend(inc.get(h, []))
    return seen


DECODERS = {"solarman.h", "solarman_event.h", "envoy.h", "http.h"}
PIPELINE = {"journal.h", "outbox.h", "event.h"}
SINKS = {"sink_hec.h", "sink_jsonl.h", "sink.h"}
PROTOCOLS = DECODERS | {"proto.h", "tap.h", "capture.h", "spool.h"}


class TestLayers(unittest.TestCase):
    def setUp(self):
        self.inc = includes()
        self.assertIn("relay.c", self.inc)

    def assert_none(self, files, banned):
        for f in files:
            with self.subTest(file=f):
                self.assertEqual(closure(self.inc, f) & banned, set())

    def test_relay_core_knows_no_decoder_journal_or_sink(self):
        self.assert_none(["accept.c", "accept.h", "relay.c", "relay.h",
                          "pump.c", "net.c", "net.h", "addr.c", "addr.h",
                          "conn.h", "tap.h"], DECODERS | PIPELINE | SINKS)

    def test_outbox_and_journal_know_no_protocol(self):
        self.assert_none(["outbox.c", "outbox.h", "outbox_ring.c",
                          "outbox_ring.h", "journal.c", "journal.h"],
                         PROTOCOLS | SINKS)

    def test_decoders_are_pure(self):
        self.assert_none(["solarman.c", "envoy.c", "http.c",
                          "solarman_event.c"],
                         {"log.h", "net.h", "worker.h", "capture.h",
                          "journal.h", "outbox.h"} | SINKS)
        for f in ["solarman.c", "envoy.c", "http.c"]:
            with open(os.path.join(SRC, f), encoding="utf-8") as fh:
                text = fh.read()
            with self.subTest(file=f):
                self.assertIsNone(re.search(
                    r"#include <(pthread|sys/socket|poll)\.h>|\blog_\w+\(",
                    text))

    def test_relay_and_accept_do_not_include_each_other(self):
        self.assertNotIn("accept.h", closure(self.inc, "relay.c"))

    def test_a_sink_knows_no_protocol_and_no_other_sink(self):
        for sink in ("sink_hec", "sink_jsonl"):
            others = {s + ".h" for s in ("sink_hec", "sink_jsonl")} - {
                sink + ".h"}
            self.assert_none([sink + ".c", sink + ".h"], PROTOCOLS | others)
