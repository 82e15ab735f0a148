#!/usr/bin/env python3
"""make-corpus.py - (re)generate the seed corpora of the fuzz harnesses.

    python3 tests/fuzz/make-corpus.py        # from the top of the tree

Every input is one plan byte (see fuzz_solarman.c: low three bits = largest
chunk class, high five bits = PRNG seed) followed by the data.

Writes tests/fuzz/corpus/solarman/ from tests/data/solarman-frames.txt:

  frame-<id>        one file per fixture block, good and damaged alike
  stream-*          several frames back to back, with garbage, TLS, etc.
  stray-*           a stray 0xA5 whose claimed length covers real frames
  split-<plan>-*    one stream under each chunk-size class
  synth-*           frames built here (checksum computed) for the event
                    decoders and the size bound

and tests/fuzz/corpus/envoy/ from tests/data/envoy/ (see fuzz_envoy.c):

  http-*            the sample request and answer, alone, twice on one
                    connection, chunked, with 100-continue, cut, damaged,
                    a head or trailer just over 32 KiB
  report-*, ids-*   the report and answer XML, and ones built here (one
                    with too many elements)
  form-*, zlib-*    a form body, and a deflated one

Deterministic: same fixtures, same files.  Stale files are removed.
"""
import hashlib
import os
import re
import sys
import urllib.parse
import zlib

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", ".."))
FIXTURES = os.path.join(TOP, "tests", "data", "solarman-frames.txt")
CORPUS = os.path.join(TOP, "tests", "fuzz", "corpus")
ENVOY = os.path.join(TOP, "tests", "data", "envoy")
FRAME_MAX = 4096
OVERHEAD = 13


def read_fixtures(path):
    """[(id, bytes)] in file order."""
    blocks, ident = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("# id:"):
                ident = line[len("# id:"):].strip()
            elif line and not line.startswith("#"):
                if ident is None:
                    sys.exit("%s: hex line without '# id:'" % path)
                blocks.append((ident, bytes.fromhex(line)))
                ident = None
    return blocks


def checksum(frame):
    return sum(frame[1:-2]) & 0xFF


def valid(frame):
    return (len(frame) >= OVERHEAD and frame[0] == 0xA5 and frame[-1] == 0x15
            and len(frame) == (frame[1] | frame[2] << 8) + OVERHEAD
            and checksum(frame) == frame[-2])


def build(ftype, payload, seq=(0x01, 0x02), serial=2718610869):
    """A valid frame around payload."""
    head = bytes([0xA5, len(payload) & 0xFF, len(payload) >> 8, 0x10, ftype,
                  seq[0], seq[1]]) + serial.to_bytes(4, "little")
    body = head + payload
    return body + bytes([sum(body[1:]) & 0xFF, 0x15])


def noise(tag, n):
    """n deterministic pseudo-random bytes with no 0xA5 in them."""
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(("%s/%d" % (tag, i)).encode()).digest()
        i += 1
    return out[:n].replace(b"\xa5", b"\x5a")


def main():
    blocks = read_fixtures(FIXTURES)
    byid = dict(blocks)
    good = [b for _, b in blocks if valid(b)]
    files = {}

    for i, (ident, data) in enumerate(blocks):
        name = "frame-" + re.sub(r"[^A-Za-z0-9_.-]", "_", ident)
        files[name] = bytes([(i * 0x29 + 7) & 0xFF]) + data

    ping = byid["solis-ping-0x47"]
    data = byid["deye-m80g3-data-0x42"]
    tls = byid["tls-clienthello-prefix-NEGATIVE"]
    three = byid["local-stream-3-frames"]
    reply = byid["server-heartbeat-reply-0x17"]

    files["stream-good-frames"] = b"\x05" + b"".join(good)
    files["stream-every-fixture"] = b"\x66" + b"".join(b for _, b in blocks)
    files["stream-garbage-between"] = b"\x0b" + noise("g0", 37) + ping + \
        noise("g1", 5) + data + noise("g2", 200) + reply + noise("g3", 3)
    files["stream-tls-then-frames"] = b"\x0c" + tls + ping + data + reply
    files["stream-a5-runs"] = b"\x21" + b"\xa5" * 20 + ping + b"\xa5\xa5" + \
        reply + b"\xa5"
    files["stream-ends-a5"] = b"\x0e" + ping + b"\xa5"
    files["stream-ends-a5-len"] = b"\x0f" + ping + b"\xa5\x01"
    files["stream-ends-header"] = b"\x10" + ping + ping[:11]
    files["stream-ends-before-end"] = b"\x11" + ping + data[:-1]

    # A stray 0xA5 claiming more than the bound: dropped at once.
    files["stray-too-long"] = b"\x12" + b"\xa5\xff\xff" + ping + data
    files["stray-just-too-long"] = b"\x13" + b"\xa5" + \
        (FRAME_MAX - OVERHEAD + 1).to_bytes(2, "little") + ping + data
    # Claims 4000 bytes, the stream ends first: finish must rescan and
    # still find the frames it held.
    files["stray-covers-rest"] = b"\x14" + b"\xa5\x93\x0f\x10" + ping + \
        data + reply
    # Claims 300 bytes that hold real frames, more stream after: rejected
    # on its end byte, then the frames inside are found.
    files["stray-covers-some"] = b"\x15" + b"\xa5\x1f\x01\x10" + ping + \
        reply + noise("s", 300) + data
    # Claims 20 bytes; its last byte (where its end byte should be) is
    # the start of a real frame: the rescan must look at every held byte.
    files["stray-ends-on-frame-start"] = b"\x00" + b"\xa5\x07\x00" + \
        noise("e", 16) + ping
    files["stray-nested"] = b"\x16" + b"\xa5\x40\x00" + b"\xa5\x20\x00" + \
        ping + noise("n", 90) + reply

    for plan in range(8):
        files["split-%d-three" % plan] = bytes([plan * 0x21 & 0xFF | plan]) \
            + three + ping + three
    files["split-0-data"] = b"\x00" + data
    files["split-1-data-plus"] = b"\x41" + data + data[:5]

    # Frames built here: every decoder branch and the size bound.
    pay = bytearray(data[11:-2])
    hist = bytearray(pay)
    hist[0] = 0x81
    hybrid = bytearray(pay)
    hybrid[1] = 0x11
    many_mppt = bytearray(pay)
    many_mppt[131] = 9
    files["synth-data-historic"] = b"\x07" + build(0x42, bytes(hist))
    files["synth-data-hybrid"] = b"\x17" + build(0x42, bytes(hybrid))
    files["synth-data-short"] = b"\x27" + build(0x42, bytes(pay[:250]))
    files["synth-data-9-mppt"] = b"\x37" + build(0x42, bytes(many_mppt))
    files["synth-data-empty"] = b"\x47" + build(0x42, b"")
    files["synth-handshake-empty"] = b"\x57" + build(0x41, b"")
    files["synth-wifi-short"] = b"\x67" + build(0x43, b"\x00" * 20)
    files["synth-reply-9"] = b"\x77" + build(0x12, b"\x01" * 9)
    files["synth-unknown-type"] = b"\x87" + build(0x99, b"\x00\x01\x02")
    files["synth-max-frame"] = b"\x06" + \
        build(0x48, noise("max", FRAME_MAX - OVERHEAD))
    # The largest frame cut by chunks, more stream behind it: the held
    # buffer fills to the last byte.
    files["synth-max-frame-then-more"] = b"\x06" + ping + \
        build(0x48, noise("max2", FRAME_MAX - OVERHEAD)) + ping
    files["synth-over-max"] = b"\x96" + \
        build(0x48, noise("over", FRAME_MAX - OVERHEAD + 1)) + ping

    write("solarman", files)


def envoy_file(name):
    """A sample, without a REAL_ file's provenance line."""
    with open(os.path.join(ENVOY, name), "rb") as f:
        data = f.read()
    if data.startswith(b"# PROVENANCE"):
        data = data.split(b"\n", 1)[1]
    return data


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\nX-Trailer: 1\r\n\r\n"


def envoy():
    req = envoy_file("SYNTHETIC_request_performance_report.http.bin")
    rsp = envoy_file("SYNTHETIC_response_performance_report.http.bin")
    report460 = envoy_file("SYNTHETIC_perf_report_4.6.0.xml")
    report30 = envoy_file("REAL_oddbit_2012_perf_report_webcomm3.0.xml.txt")
    ids30 = envoy_file("REAL_oddbit_2012_perf_report_response.xml.txt")
    head, body = req.split(b"\r\n\r\n", 1)
    rhead, rbody = rsp.split(b"\r\n\r\n", 1)
    nolen = b"\r\n".join(l for l in head.split(b"\r\n")
                          if not l.lower().startswith(b"content-length"))
    files = {}

    for plan in range(8):
        files["http-request-%d" % plan] = bytes([plan * 0x21 & 0xFF | plan]) \
            + req
    files["http-response"] = b"\x03" + rsp
    files["http-two-requests"] = b"\x04" + req.replace(
        b"Connection: close", b"Connection: keep-alive") + req
    files["http-two-responses"] = b"\x05" + rsp + rsp
    files["http-chunked"] = b"\x06" + nolen + \
        b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 100)
    files["http-continue"] = b"\x07" + \
        b"HTTP/1.1 100 Continue\r\n\r\n" + rsp
    files["http-expect"] = b"\x13" + head + \
        b"\r\nExpect: 100-continue\r\n\r\n" + body
    files["http-to-eof"] = b"\x14" + b"\r\n".join(
        l for l in rhead.split(b"\r\n")
        if not l.lower().startswith(b"content-length")) + b"\r\n\r\n" + rbody
    files["http-cut"] = b"\x15" + req[:len(req) - 7]
    files["http-bad-header"] = b"\x16" + req.replace(b"Host:", b"Ho st:", 1)
    files["http-bad-length"] = b"\x17" + req.replace(
        b"Content-Length: ", b"Content-Length: +", 1)
    files["http-bad-chunk"] = b"\x22" + nolen + \
        b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    files["http-tls"] = b"\x23" + bytes.fromhex("160301002a0100002603")
    # The head and a trailer one byte over HTTP_HEAD_MAX (32 KiB).
    files["http-head-too-big"] = b"\x24" + head + b"\r\nX-Pad: " + \
        b"p" * (32 * 1024 - len(head) - 10) + b"\r\n\r\n" + body
    files["http-trailer-too-big"] = b"\x25" + nolen + \
        b"\r\nTransfer-Encoding: gzip, chunked \r\n\r\n" + \
        b"0\r\nX-Pad: " + b"p" * (32 * 1024) + b"\r\n\r\n"
    files["http-length-list"] = b"\x26" + b"".join(
        head.replace(b"Content-Length: %d" % len(body),
                     b"Content-Length: %d, \t%d" % (len(body), len(body)))
        + b"\r\n\r\n" + body for _ in range(2))
    files["report-460"] = b"\x31" + report460
    files["report-30"] = b"\x32" + report30
    files["report-doctype"] = b"\x33" + b"<!DOCTYPE r [<!ENTITY a 'x'>]>" \
        b"<perf_report><event id='1'><message_params>&a;</message_params>" \
        b"</event></perf_report>"
    files["report-columns"] = b"\x34" + b"<perf_report report_timestamp=" \
        b"'1438706832'><envoy serial_num='1'/><device eqid='2'><channel " \
        b"eqid='2.1'/></device><interval eqid='2.1' end_date='1' stats=" \
        b"'65439'/><reading eqid='2.1' date='2' stats='250102,59979,27782," \
        b"7462,49,0,0,67535,9'/><event id='5' event_code='101' " \
        b"event_state='2'><message_params>{\"a\": 1}</message_params>" \
        b"</event></perf_report>"
    files["ids-30"] = b"\x35" + ids30
    # One element past ENVOY_ELEMENTS_MAX (20000), counted as they open:
    # never closed, the document is short enough to fit -max_len.
    files["report-too-many-elements"] = b"\x38" + b"<perf_report>" + \
        b"<a>" * 20000
    files["ids-many"] = b"\x01" + b"<perf_report_response>" + b"".join(
        b"<event id='%d'/>" % (1000000 + i) for i in range(40)) + \
        b"</perf_report_response>"
    form = b"body=" + urllib.parse.quote_plus(report460).encode()
    files["form-460"] = b"\x36" + b"a=1&" + form + b"&b=%zz%4"
    files["zlib-460"] = b"\x37" + zlib.compress(form)
    files["zlib-cut"] = b"\x40" + zlib.compress(form)[:200]
    write("envoy", files)


def write(harness, files):
    out = os.path.join(CORPUS, harness)
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        if old not in files:
            os.unlink(os.path.join(out, old))
    for name, content in sorted(files.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(content)
    print("%s: %d files, %d bytes" % (os.path.relpath(out, TOP), len(files),
                                      sum(map(len, files.values()))))


if __name__ == "__main__":
    main()
    envoy()
