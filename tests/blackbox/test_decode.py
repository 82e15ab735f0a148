"""deye-mitm --decode as a user runs it: the fixture file (hex lines with
comments), a raw capture, standard input; events on stdout, rejects and
bad lines on stderr as file:line, the exit status.

Expected values come from the data table of docs/solarman-v5.md, not from
running the code; the fixture file's own blocks say which frames are
valid."""
import json
import os
import re
import tempfile
import unittest

from harness import ROOT, SANITIZER_MARKS
from harness import run as harness_run

FIXTURES = os.path.join(ROOT, "tests", "data", "solarman-frames.txt")
# Real Solis frames with the Solis cloud's own values for each data frame
# (tests/data/solis/README.md).
SOLIS = os.path.join(ROOT, "tests", "data", "solis", "frames.txt")

# docs/solarman-v5.md, section 7: the capture column, and the Solarman
# keys of docs/events.md, for the Deye data frame (id deye-m80g3-data-0x42).
DEYE_DATA = {
    "type": "data",
    "logger.serial": 3939932716,
    "frame.control": "0x4210",
    "frame.seq": "15 16",
    "record.time": "2024-04-08T17:14:03Z",
    "inv.serial.ascii": "2305107146",
    "grid.kWh_today": 0.90,
    "grid.kWh_total": 177.5,
    "grid.v": 232.0,
    "grid.i": 0.0,
    "grid.hz": 50.10,
    "grid.active_power_w": 4,
    "inv.degc": 27.70,
    "pv.v.1": 27.1, "pv.v.2": 27.8,
    "pv.i.1": 0.0, "pv.i.2": 0.0,
    "pv.w.1": 0.0, "pv.w.2": 0.0,
    "meta.protocol_ver": "V0.2.0.1",
    "meta.dc_master_fw_ver": "V0.1.1.7",
    "meta.ac_fw_ver": "V1.2.1.8",
    "meta.rated_power_w": 800.0,
    "meta.mppt_count": 2,
    "meta.phases": 1,
    "pv.kWh_today.1": 0.4, "pv.kWh_today.2": 0.4,
    "pv.kWh_total.1": 80.7, "pv.kWh_total.2": 88.1,
    "meta.current_time": "2024-04-08:17:09:01",
}
COMMON_KEYS = ("id", "type", "received", "listener", "conn.id", "conn.peer",
               "direction")
REPLY_TYPES = {0x11, 0x12, 0x13, 0x15, 0x17, 0x18}
REJECT = re.compile(r"warn: (.+?)(?::(\d+))?: frame rejected: "
                    r"(length|checksum|end|truncated)$")
NOT_HEX = re.compile(r"warn: (.+?):(\d+): not a line of hex bytes$")


def run(args, input=None):
    """deye-mitm, with no sanitizer report on its stderr."""
    r = harness_run(args, input=input)
    err = r.stderr.decode("utf-8", "replace")
    for mark in SANITIZER_MARKS:
        if mark in err:
            raise AssertionError("sanitizer report:\n" + err)
    return r


def fixture_blocks():
    """[(id, ok, line number, bytes)] of the fixture file, in order."""
    blocks, cur = [], None
    with open(FIXTURES) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line.startswith("# id:"):
                cur = {"id": line[5:].strip()}
            elif line.startswith("# verify-result:"):
                r = line[16:].strip()
                cur["ok"] = r == "OK" or r == "ALL FRAMES OK"
            elif line and not line.startswith("#"):
                blocks.append((cur["id"], cur["ok"], n, bytes.fromhex(line)))
    return blocks


def split_frames(b):
    """Valid frames back to back, split by their length fields."""
    out = []
    while b:
        n = (b[1] | b[2] << 8) + 13
        out.append(b[:n])
        b = b[n:]
    return out


def events(stdout):
    return [json.loads(line) for line in stdout.decode().splitlines()]


class TestDecode(unittest.TestCase):
    def tmpfile(self, data, suffix):
        f = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
        f.write(data)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def check_event_keys(self, evs):
        for ev in evs:
            for k in COMMON_KEYS:
                self.assertIn(k, ev, ev)
            self.assertEqual(ev["listener"], "decode")
            self.assertRegex(ev["id"], r"^[0-9a-f]{16}-[0-9]+$")
            self.assertRegex(ev["received"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            reply = int(ev["frame.control"], 16) >> 8 in REPLY_TYPES
            self.assertEqual(ev["direction"], "down" if reply else "up", ev)
        self.assertEqual(len({ev["id"] for ev in evs}), len(evs), "ids repeat")

    def check_deye_data(self, ev):
        for k, v in DEYE_DATA.items():
            self.assertIn(k, ev)
            self.assertEqual(ev[k], v, k)
            self.assertIs(type(ev[k]), type(v), k)

    def test_fixture_file(self):
        blocks = fixture_blocks()
        valid = [fr for _, ok, _, b in blocks if ok for fr in split_frames(b)]
        r = run(["--decode", FIXTURES])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        evs = events(r.stdout)
        self.assertEqual(len(evs), len(valid))
        self.assertEqual(len(evs), 21)
        self.assertEqual([ev["frame.control"] for ev in evs],
                         ["0x%02x10" % fr[4] for fr in valid])
        self.assertEqual([ev["logger.serial"] for ev in evs],
                         [int.from_bytes(fr[7:11], "little") for fr in valid])
        self.check_event_keys(evs)
        data = [ev for ev in evs if ev["frame.control"] == "0x4210"
                and ev["logger.serial"] == 3939932716]
        self.assertEqual(len(data), 1)
        self.check_deye_data(data[0])
        historic = [ev for ev in evs if ev.get("data.historic")]
        self.assertEqual(len(historic), 1)
        # A Solis buffered record keeps the real-time layout: decoded.
        self.assertEqual(historic[0]["data.sensor"], "0x0507")
        self.assertEqual(historic[0]["grid.kWh_total"], 602.0)
        self.assertNotIn("payload.hex", historic[0])

    def test_solis_fixture_gives_the_clouds_values(self):
        """Every value of every '# expect:' line of the Solis fixture (the
        Solis cloud's own export, under our keys), from --decode of the
        whole file; real-time frames current, historic ones flagged."""
        expect, kinds = {}, {}
        cur = None
        with open(SOLIS) as f:
            for line in f:
                line = line.strip()
                if line.startswith("# id:"):
                    cur = line[5:].strip()
                elif line.startswith("# expect"):
                    pairs = re.findall(r'([\w.]+)=("[^"]*"|[-\d.]+)',
                                       line.split(":", 1)[1])
                    expect[cur] = {k: json.loads(v) for k, v in pairs}
                elif line and not line.startswith("#"):
                    kinds[cur] = bytes.fromhex(line)
        self.assertEqual(len(expect), 5)
        r = run(["--decode", SOLIS])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        evs = events(r.stdout)
        self.assertEqual(len(evs), 22)
        by_seq = {(ev["frame.control"], ev["frame.seq"]): ev for ev in evs}
        for name, values in expect.items():
            fr = kinds[name]
            ev = by_seq[("0x%02x10" % fr[4], "%02x %02x" % (fr[5], fr[6]))]
            with self.subTest(frame=name):
                self.assertEqual(ev["data.sensor"], "0x0507")
                for k, v in values.items():
                    self.assertIn(k, ev)
                    self.assertEqual(ev[k], v, k)
                    self.assertEqual(isinstance(ev[k], str), isinstance(v, str), k)
                self.assertEqual(ev.get("data.historic", False),
                                 "historic" in name)
                self.assertNotIn("payload.hex", ev)
        data = [ev for ev in evs if ev["type"] == "data"]
        self.assertEqual(len(data), 6)
        clockless = [ev for ev in data if "record.time" not in ev]
        self.assertEqual(len(clockless), 1)
        self.assertTrue(clockless[0]["data.historic"])
        replies = [ev for ev in evs if ev["type"] == "reply"]
        self.assertEqual(len(replies), 11)
        self.assertEqual({ev["reply.tz_offset_min"] for ev in replies}, {0})

    def test_fixture_file_rejects(self):
        """Rejects are on stderr as file:line, and the line is the damaged
        block's: never the line of a valid frame."""
        blocks = fixture_blocks()
        r = run(["--decode", FIXTURES])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        rejects = [REJECT.search(line) for line in err.splitlines()]
        rejects = [m for m in rejects if m]
        self.assertTrue(rejects, err)
        for m in rejects:
            self.assertEqual(m.group(1), FIXTURES)
            self.assertIsNotNone(m.group(2), m.group(0))
        named = {int(m.group(2)) for m in rejects}
        valid_lines = {n for _, ok, n, _ in blocks if ok}
        damaged = {n: i for i, ok, n, b in blocks if not ok and b[0] == 0xa5}
        self.assertFalse(named & valid_lines,
                         "a reject names the line of a valid frame: %s\n%s" % (
                             sorted(named & valid_lines), err))
        self.assertFalse(set(damaged) - named,
                         "damaged blocks not named: %s\n%s" % (
                             sorted("%d (%s)" % (n, damaged[n])
                                    for n in set(damaged) - named), err))

    def test_reject_lines(self):
        """The line a reject names is where its candidate starts; a frame may
        span lines."""
        hb = "a501001047f585579af6a5005e15"
        malformed = "a50a00101703cbea91e60001fe2b6567000000005615"  # 22 of 23
        # (what, lines, [(line, reason)], events)
        cases = [
            ("absurd length, first line", ["a5ffff" + hb], [(1, "length")], 1),
            ("truncated, then a frame", [hb, "# comment", malformed, hb],
             [(3, "end")], 2),
            ("frame across lines", [hb[:10], "", hb[10:]], [], 1),
            ("a header at the end", [hb, "# x", "a50a00"], [(3, "truncated")], 1),
        ]
        for what, lines, want, n in cases:
            with self.subTest(what):
                path = self.tmpfile(("\n".join(lines) + "\n").encode(), ".hex")
                r = run(["--decode", path])
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 0, err)
                got = [(int(m.group(2)), m.group(3))
                       for m in map(REJECT.search, err.splitlines()) if m]
                self.assertEqual(got, want, err)
                self.assertEqual(len(events(r.stdout)), n, err)

    def test_raw_binary(self):
        blocks = {i: b for i, _, _, b in fixture_blocks()}
        data = blocks["deye-m80g3-data-0x42"]
        hb = blocks["dongle-heartbeat-0x47"]
        raw = (b"\x00\x01garbage\xff" + data + b"\x16\x03\x03\x00\x7f" +
               b"\xa5\xff\xff" + hb + b"\x13\x37")
        self.assertNotIn(raw[0], b"0123456789abcdef# \n")
        path = self.tmpfile(raw, ".bin")
        r = run(["--decode", path])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        evs = events(r.stdout)
        self.assertEqual([ev["type"] for ev in evs], ["data", "heartbeat"])
        self.check_event_keys(evs)
        self.check_deye_data(evs[0])
        self.assertEqual(evs[1]["frame.seq"], "f5 85")
        rejects = [m for m in map(REJECT.search, err.splitlines()) if m]
        self.assertEqual([(m.group(1), m.group(3)) for m in rejects],
                         [(path, "length")], err)

    def test_stdin(self):
        with open(FIXTURES, "rb") as f:
            text = f.read()
        r = run(["--decode", "-"], input=text)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        evs = events(r.stdout)
        self.assertEqual(len(evs), 21)
        self.check_event_keys(evs)
        self.check_deye_data([ev for ev in evs if ev["frame.seq"] == "15 16"][0])
        rejects = [m for m in map(REJECT.search, err.splitlines()) if m]
        self.assertTrue(rejects, err)
        for m in rejects:
            self.assertEqual(m.group(1), "stdin")
            self.assertIsNotNone(m.group(2))

        blocks = {i: b for i, _, _, b in fixture_blocks()}
        raw = b"\xff" + blocks["server-heartbeat-reply-0x17"] + b"\xa5"
        r = run(["--decode", "-"], input=raw)
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = events(r.stdout)
        self.assertEqual([ev["type"] for ev in evs], ["reply"])
        self.assertEqual(evs[0]["direction"], "down")
        self.assertEqual(evs[0]["reply.unix"], 1750496427)
        self.assertEqual(evs[0]["reply.tz_offset_min"], 120)
        self.assertEqual(evs[0]["reply.time"], "2025-06-21T09:00:27Z")
        rejects = [m for m in map(REJECT.search, r.stderr.decode().splitlines()) if m]
        self.assertEqual([(m.group(1), m.group(3)) for m in rejects],
                         [("stdin", "truncated")])

    def test_not_hex(self):
        with open(FIXTURES, "rb") as f:
            fixture = f.read()
        hb = b"a501001047f585579af6a5005e15\n"
        ping = b"a501001047000cc8d2dd2a000515\n"
        # (what, text, line of the bad line, events)
        cases = [
            ("after the first 4 KiB", fixture + b"a5 01 00 zz\n" + hb,
             fixture.count(b"\n") + 1, 22),
            ("a typo early on", b"# two heartbeats\n" + hb + b"a501001047g0\n" +
             ping, 3, 2),
            ("a word", hb + b"hello\n" + ping, 2, 2),
            ("odd number of digits", hb + b"a50\n" + ping, 2, 2),
            ("last line, no newline", hb + ping + b"zz", 3, 2),
        ]
        for what, text, line, n in cases:
            with self.subTest(what):
                path = self.tmpfile(text, ".hex")
                r = run(["--decode", path])
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 1, err)
                bad = [m for m in map(NOT_HEX.search, err.splitlines()) if m]
                self.assertEqual([(m.group(1), int(m.group(2))) for m in bad],
                                 [(path, line)], err)
                self.assertEqual(len(events(r.stdout)), n, err)


if __name__ == "__main__":
    unittest.main()
