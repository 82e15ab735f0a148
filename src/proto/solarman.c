/*
 * solarman.c - Solarman V5 framing: find, check and deliver frames in a
 * byte stream cut anywhere by TCP.
 *
 * While nothing is held, input is scanned in place (memchr for 0xA5) and
 * complete frames are delivered straight from the caller's buffer; only the
 * beginning of a frame that a chunk cuts off is copied into buf, which is
 * allocated then, as big as that frame claims (a connection whose frames
 * never straddle two reads holds no buffer at all).  A candidate that
 * fails a check (length, checksum, end byte) costs one byte: the scan
 * resumes at the next 0xA5 after its start, so frames hidden behind a
 * stray 0xA5 are still found.
 */
#include "proto/solarman.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *const reject_names[SOLARMAN_REJECT_KINDS] = {
	"length", "checksum", "end", "truncated",
};

const char *
solarman_reject_name(enum solarman_reject why)
{
	return why < SOLARMAN_REJECT_KINDS ? reject_names[why] : "?";
}

void
solarman_stream_init(struct solarman_stream *s)
{
	memset(&s->stats, 0, sizeof s->stats);
	s->reject_at = s->held_at = 0;
	s->len = s->cap = 0;
	s->buf = NULL;
}

void
solarman_stream_free(struct solarman_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

uint8_t
solarman_checksum(const uint8_t *frame, size_t len)
{
	unsigned sum = 0;

	for (size_t i = 1; i + 2 < len; i++)
		sum += frame[i];
	return (uint8_t)sum;
}

/* The whole length a candidate claims, from its first three bytes. */
static size_t
claimed_len(const uint8_t *p)
{
	return (size_t)(p[1] | p[2] << 8) + SOLARMAN_OVERHEAD;
}

static void
reject(struct solarman_stream *s, const struct solarman_handler *h,
    enum solarman_reject why, uint64_t at)
{
	s->reject_at = at;
	s->stats.rejects[why]++;
	if (h->reject != NULL)
		h->reject(h->ctx, why);
}

/*
 * Check the candidate of n >= 3 bytes at p, stream offset at.  Returns its
 * length when it is a whole valid frame, 0 when more bytes are needed, -1
 * when it is rejected.
 */
static long
check(struct solarman_stream *s, const struct solarman_handler *h,
    const uint8_t *p, size_t n, uint64_t at)
{
	size_t flen = claimed_len(p);

	if (flen > SOLARMAN_FRAME_MAX) {
		reject(s, h, SOLARMAN_BAD_LENGTH, at);
		return -1;
	}
	if (n < flen)
		return 0;
	if (p[flen - 1] != SOLARMAN_END) {
		reject(s, h, SOLARMAN_BAD_END, at);
		return -1;
	}
	if (solarman_checksum(p, flen) != p[flen - 2]) {
		reject(s, h, SOLARMAN_BAD_CHECKSUM, at);
		return -1;
	}
	s->stats.frames++;
	h->frame(h->ctx, p, flen);
	return (long)flen;
}

/* Room in buf for need bytes; false when there is no memory for them. */
static bool
room(struct solarman_stream *s, size_t need)
{
	uint8_t *p;

	if (need <= s->cap)
		return true;
	if ((p = realloc(s->buf, need)) == NULL)
		return false;
	s->buf = p;
	s->cap = need;
	return true;
}

/* Drop bytes before the next 0xA5 after buf[0] (or all of them). */
static void
drop_held(struct solarman_stream *s)
{
	const uint8_t *next = s->len > 1 ?
	    memchr(s->buf + 1, SOLARMAN_START, s->len - 1) : NULL;
	size_t cut = next ? (size_t)(next - s->buf) : s->len;

	s->stats.skipped += cut;
	s->held_at += cut;
	memmove(s->buf, s->buf + cut, s->len - cut);
	s->len -= cut;
}

/* Work on what is held; returns false when it needs more input. */
static bool
run_held(struct solarman_stream *s, const struct solarman_handler *h)
{
	while (s->len >= 3) {
		long r = check(s, h, s->buf, s->len, s->held_at);

		if (r == 0)
			return false;
		if (r < 0) {
			drop_held(s);
			continue;
		}
		memmove(s->buf, s->buf + r, s->len - (size_t)r);
		s->len -= (size_t)r;
		s->held_at += (uint64_t)r;
		if (s->len > 0 && s->buf[0] != SOLARMAN_START)
			drop_held(s);
	}
	return s->len == 0;
}

void
solarman_stream_feed(struct solarman_stream *s, const uint8_t *in, size_t n,
    const struct solarman_handler *h)
{
	s->stats.bytes += n;
	while (n > 0) {
		if (s->len > 0) {
			/* Complete the held candidate: its header, then its body. */
			size_t want = s->len < 3 ? 3 - s->len :
			    claimed_len(s->buf) > SOLARMAN_FRAME_MAX ? 0 :
			    claimed_len(s->buf) - s->len;
			size_t take = want < n ? want : n;

			if (!room(s, s->len + want)) {
				/* No memory to hold it whole: given up as cut off. */
				reject(s, h, SOLARMAN_TRUNCATED, s->held_at);
				drop_held(s);
				continue;
			}
			memcpy(s->buf + s->len, in, take);
			s->len += take;
			in += take;
			n -= take;
			if (!run_held(s, h) && s->len >= 3)
				continue;
			if (s->len > 0)
				continue;
		}
		/* Nothing held: scan the input in place. */
		const uint8_t *a = memchr(in, SOLARMAN_START, n);
		if (a == NULL) {
			s->stats.skipped += n;
			return;
		}
		s->stats.skipped += (size_t)(a - in);
		n -= (size_t)(a - in);
		in = a;
		long r = n >= 3 ? check(s, h, in, n, s->stats.bytes - n) : 0;
		if (r > 0) {
			in += r;
			n -= (size_t)r;
		} else if (r < 0) {
			s->stats.skipped++;
			in++;
			n--;
		} else if (room(s, n < 3 ? n : claimed_len(in))) {
			/* Cut off by the chunk's end: hold it (n < frame <= max). */
			memcpy(s->buf, in, n);
			s->len = n;
			s->held_at = s->stats.bytes - n;
			return;
		} else {
			reject(s, h, SOLARMAN_TRUNCATED, s->stats.bytes - n);
			s->stats.skipped++;
			in++;
			n--;
		}
	}
}

void
solarman_stream_finish(struct solarman_stream *s,
    const struct solarman_handler *h)
{
	while (s->len > 0) {
		if (run_held(s, h))
			break;
		/* The candidate at buf[0] will never complete. */
		reject(s, h, SOLARMAN_TRUNCATED, s->held_at);
		drop_held(s);
	}
}

int
solarman_frame_parse(const uint8_t *frame, size_t len,
    struct solarman_frame *f)
{
	struct span s = {frame, len};
	uint16_t plen;
	uint8_t start;

	if (!span_u8(s, 0, &start) || start != SOLARMAN_START ||
	    !span_u16le(s, 1, &plen) || (size_t)plen + SOLARMAN_OVERHEAD != len ||
	    !span_u16le(s, 3, &f->control) || !span_u8(s, 4, &f->type) ||
	    !span_u8(s, 5, &f->seq[0]) || !span_u8(s, 6, &f->seq[1]) ||
	    !span_u32le(s, 7, &f->serial))
		return -1;
	f->payload = span_sub(s, 11, plen);
	return 0;
}

size_t
solarman_time_reply(const uint8_t *req, size_t len, uint32_t unix_time,
    int32_t tz_minutes, uint8_t out[SOLARMAN_REPLY_LEN])
{
	static const uint8_t requests[] = {0x41, 0x42, 0x43, 0x45, 0x47, 0x48};
	struct solarman_frame f;
	uint8_t first;
	uint32_t tz = (uint32_t)tz_minutes;

	if (solarman_frame_parse(req, len, &f) != 0 ||
	    memchr(requests, f.type, sizeof requests) == NULL ||
	    !span_u8(f.payload, 0, &first))
		return 0;
	out[0] = SOLARMAN_START;
	out[1] = 10;
	out[2] = 0;
	out[3] = req[3];
	out[4] = (uint8_t)(f.type - 0x30);
	out[5] = (uint8_t)(f.seq[0] + 1);
	out[6] = f.seq[1];
	memcpy(out + 7, req + 7, 4);
	out[11] = first;
	out[12] = 0x01;
	for (int i = 0; i < 4; i++) {
		out[13 + i] = (uint8_t)(unix_time >> (8 * i));
		out[17 + i] = (uint8_t)(tz >> (8 * i));
	}
	out[21] = solarman_checksum(out, SOLARMAN_REPLY_LEN);
	out[22] = SOLARMAN_END;
	return SOLARMAN_REPLY_LEN;
}
