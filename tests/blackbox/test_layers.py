"""The layering rules of the source, checked from its #include lines
(transitively): the relay core knows no decoder, journal, outbox, event or
sink; the outbox and journal know no protocol; the pure decoders use no
threads, sockets, log, journal, outbox or sink; a sink knows no protocol
and no other sink; relay.c and accept.c do not include each other both
ways; each folder of src/ includes nothing from a folder above it in the
data flow.  Not a run of the binary, but it guards the shape the black-box
tests rely on, and it runs in milliseconds."""
import glob
import os
import re
import unittest

SRC = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "src"))


def includes():
    """Every file of src/, by its path under src/, to what it includes."""
    inc = {}
    for path in glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True):
        with open(path, encoding="utf-8") as f:
            inc[os.path.relpath(path, SRC)] = re.findall(
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


def folder(inc, name):
    return sorted(f for f in inc if f.startswith(name + "/"))


DECODERS = {"proto/solarman.h", "proto/solarman_event.h", "proto/envoy.h",
            "proto/http.h"}
PIPELINE = {"pipeline/journal.h", "pipeline/outbox.h", "event.h"}
SINKS = {"sinks/hec.h", "sinks/jsonl.h", "sinks/sink.h", "sinks/mqtt.h",
         "sinks/mqtt_topics.h"}
EXPECTED_SINKS = ["sinks/hec", "sinks/jsonl", "sinks/mqtt"]
PROTOCOLS = DECODERS | {"proto/proto.h", "proto/tap.h", "proto/capture.h",
                        "proto/envoy_spool.h"}


class TestLayers(unittest.TestCase):
    def setUp(self):
        self.inc = includes()
        self.assertIn("relay/relay.c", self.inc)

    def assert_none(self, files, banned):
        self.assertTrue(files)
        for f in files:
            with self.subTest(file=f):
                self.assertIn(f, self.inc)
                self.assertEqual(closure(self.inc, f) & banned, set())

    def test_every_include_names_a_file(self):
        for f, hs in self.inc.items():
            for h in hs:
                with self.subTest(file=f, include=h):
                    self.assertIn(h, self.inc)

    def test_relay_core_knows_no_decoder_journal_or_sink(self):
        self.assert_none(folder(self.inc, "relay") + ["proto/tap.h"],
                         DECODERS | PIPELINE | SINKS)

    def test_relay_knows_of_the_protocols_only_the_tap(self):
        for f in folder(self.inc, "relay"):
            with self.subTest(file=f):
                self.assertEqual({h for h in self.inc[f]
                                  if h.startswith("proto/")} - {"proto/tap.h"},
                                 set())

    def test_outbox_and_journal_know_no_protocol(self):
        self.assert_none(folder(self.inc, "pipeline"),
                         PROTOCOLS | SINKS | {"relay/relay.h"})

    def test_decoders_are_pure(self):
        self.assert_none(["proto/solarman.c", "proto/envoy.c", "proto/http.c",
                          "proto/solarman_event.c"],
                         {"log.h", "relay/net.h", "pipeline/worker.h",
                          "proto/capture.h", "pipeline/journal.h",
                          "pipeline/outbox.h"} | SINKS)
        for f in ["proto/solarman.c", "proto/envoy.c", "proto/http.c"]:
            with open(os.path.join(SRC, f), encoding="utf-8") as fh:
                text = fh.read()
            with self.subTest(file=f):
                self.assertIsNone(re.search(
                    r"#include <(pthread|sys/socket|poll)\.h>|\blog_\w+\(",
                    text))

    def test_relay_and_accept_do_not_include_each_other(self):
        self.assertNotIn("relay/accept.h", closure(self.inc, "relay/relay.c"))

    def test_a_sink_knows_no_protocol_and_no_other_sink(self):
        # A sink's own modules, by the sink they belong to.
        parts = {"sinks/mqtt_topics": "sinks/mqtt"}
        sinks = [f[:-2] for f in folder(self.inc, "sinks")
                 if f.endswith(".c") and f != "sinks/sink.c"
                 and f[:-2] not in parts]
        self.assertEqual(sorted(sinks), EXPECTED_SINKS)
        for sink in sinks + list(parts):
            owner = parts.get(sink, sink)
            others = ({s + ".h" for s in sinks} |
                      {p + ".h" for p, o in parts.items() if o != owner}) \
                - {owner + ".h", sink + ".h"}
            self.assert_none([sink + ".c", sink + ".h"],
                             PROTOCOLS | others | {"relay/relay.h"})

    def test_the_top_level_knows_no_layer_below_it_but_main(self):
        """conf, log, clock, ratelimit and event are used by every layer:
        they include none of them (main, modules and decode_cli put
        them together)."""
        for f in self.inc:
            if "/" in f or f.startswith(("main.", "decode_cli.", "modules.")):
                continue
            with self.subTest(file=f):
                self.assertEqual([h for h in closure(self.inc, f)
                                  if h.startswith(("proto/", "pipeline/",
                                                   "sinks/"))], [])


if __name__ == "__main__":
    unittest.main()
