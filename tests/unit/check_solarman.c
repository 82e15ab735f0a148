/*
 * check_solarman.c - unit and golden tests of the Solarman V5 stream decoder
 * (solarman.c) and of the events made from its frames (solarman_event.c),
 * against docs/solarman-v5.md and docs/events.md.
 *
 *   fixtures  every block of data/solarman-frames.txt, fed as a stream of
 *             its own: what fixture_expect[] (keyed by id) says, and the
 *             table must agree with the block's own "# verify:" lines.
 *   golden    data/solarman/golden/NAME.hex (one frame; "# direction:" and
 *             "# time_ms:" header lines) gives the event NAME.json, written
 *             by hand from docs/solarman-v5.md, minus the volatile
 *             "id".  Adding a pair adds a case.
 *   variants  the Deye data frame with fields changed and the checksum
 *             recomputed: signed temperature, four inputs, large totals,
 *             historic, short and raw records, the logger clock.
 *   chunking  the same frames, rejects and counters whether a stream is fed
 *             whole, byte by byte or cut at random points, with garbage,
 *             TLS, absurd lengths and stray 0xA5 bytes around the frames.
 *   replies   the two time-reply oracles of docs/solarman-v5.md, section 9.
 *
 * Paths are relative to tests/, where make unit runs the binary.  Every
 * chunk is fed from its own heap copy of exactly its size, so a read past a
 * chunk is a memory error under ASan or valgrind.  What a test allocates is
 * held by a fixture and released in its teardown, so a failed assertion
 * leaks nothing even with CK_FORK=no.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "event.h"
#include "suites.h"
#include "proto/solarman.h"
#include "proto/solarman_event.h"

#define NELEM(a) (sizeof (a) / sizeof (a)[0])
#define FIXTURES "data/solarman-frames.txt"
#define GOLDEN "data/solarman/golden"
#define DEYE_DATA "deye-m80g3-data-0x42"
/* received_ms of every event made here: 2025-06-15T15:06:40.123Z */
#define RECEIVED_MS INT64_C(1750000000123)
/* The Deye data frame's record time: 6755845 + 1705840598 s. */
#define DEYE_TIME_MS INT64_C(1712596443000)

/* ---- what a test holds, released by the teardown ---- */

#define HELD_MAX 32
static struct {
	void *p;
	void (*release)(void *);
} held[HELD_MAX];
static size_t nheld;

static void *
hold(void *p, void (*release)(void *))
{
	ck_assert_msg(nheld < HELD_MAX, "test holds too much");
	held[nheld].p = p;
	held[nheld].release = release;
	nheld++;
	return p;
}

static void
release_json(void *p)
{
	json_decref(p);
}

static json_t *
hold_json(json_t *j)
{
	return hold(j, release_json);
}

static void
release_held(void)
{
	while (nheld > 0) {
		nheld--;
		if (held[nheld].p != NULL)
			held[nheld].release(held[nheld].p);
		held[nheld].p = NULL;
	}
}

/* ---- byte strings ---- */

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void
bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *np;

		while (cap < b->n + n)
			cap *= 2;
		/* No ck_assert: load_fixtures runs outside any test. */
		if ((np = realloc(b->p, cap)) == NULL)
			abort();
		b->p = np;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void
bytes_byte(struct bytes *b, uint8_t c)
{
	bytes_add(b, &c, 1);
}

/* memcmp, but for empty strings too (memcmp(NULL, NULL, 0) is undefined). */
static bool
mem_eq(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

static void
bytes_free(struct bytes *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

static void
release_bytes(void *p)
{
	bytes_free(p);
	free(p);
}

static struct bytes *
new_bytes(void)
{
	struct bytes *b = calloc(1, sizeof *b);

	ck_assert_ptr_nonnull(b);
	return hold(b, release_bytes);
}

static int
hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Append the bytes of hex text (blanks allowed); false if it is not that. */
static bool
hex_add(struct bytes *b, const char *s)
{
	int hi = -1;

	for (; *s != '\0'; s++) {
		int d = hexdigit((unsigned char)*s);

		if (isspace((unsigned char)*s))
			continue;
		if (d < 0)
			return false;
		if (hi < 0) {
			hi = d;
		} else {
			bytes_byte(b, (uint8_t)(hi << 4 | d));
			hi = -1;
		}
	}
	return hi < 0;
}

static void
hex_bytes(struct bytes *b, const char *s)
{
	ck_assert_msg(hex_add(b, s), "test table: bad hex '%.40s...'", s);
}

/* Lower-case hex of n bytes, into a held string. */
static char *
to_hex(const uint8_t *p, size_t n)
{
	char *s = malloc(2 * n + 1);

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", p[i]);
	s[2 * n] = '\0';
	return hold(s, free);
}

/* A whole file, NUL-terminated, into a held buffer; NULL if unreadable. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct bytes b = {NULL, 0, 0};
	char buf[4096];
	size_t n;

	if (f == NULL)
		return NULL;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		bytes_add(&b, buf, n);
	fclose(f);
	bytes_byte(&b, '\0');
	return hold(b.p, free);
}

/* ---- frames built by the test (docs/solarman-v5.md, section 2) ---- */

static uint16_t
get_len(const uint8_t *frame)
{
	return (uint16_t)(frame[1] | frame[2] << 8);
}

/* Bytes 1 .. len-3, mod 256: written here, not taken from solarman.c. */
static uint8_t
sum_of(const uint8_t *frame, size_t len)
{
	unsigned sum = 0;

	for (size_t i = 1; i < len - 2; i++)
		sum += frame[i];
	return (uint8_t)(sum & 0xff);
}

/* Set the length field, end byte and checksum for payload length plen. */
static void
seal(struct bytes *f, size_t plen)
{
	ck_assert_uint_le(plen, 0xffff);
	f->n = 11 + plen + 2;
	ck_assert_uint_le(f->n, f->cap);
	f->p[1] = (uint8_t)(plen & 0xff);
	f->p[2] = (uint8_t)(plen >> 8);
	f->p[f->n - 1] = 0x15;
	f->p[f->n - 2] = sum_of(f->p, f->n);
}

/* A frame of type with a payload of plen bytes, all fill. */
static void
make_frame(struct bytes *f, uint8_t type, size_t plen, uint8_t fill)
{
	static const uint8_t head[] = {0xa5, 0, 0, 0x10, 0, 0x01, 0x02,
	    0x2c, 0x9a, 0xd6, 0xea};

	f->n = 0;
	bytes_add(f, head, sizeof head);
	f->p[4] = type;
	for (size_t i = 0; i < plen + 2; i++)
		bytes_byte(f, fill);
	seal(f, plen);
}

/* ---- the fixture file ---- */

struct fixture {
	char *id;
	char *verify;      /* its "# verify:" lines, joined by '\n' */
	unsigned nverify;
	char *result;      /* its "# verify-result:" */
	struct bytes bytes;
	int line;          /* of the hex line */
};

static struct {
	struct fixture *v;
	size_t n;
	bool opened;
	char error[160];
} fixtures;

static char *
dup_str(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

static void
chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* Parsed before the tests run, so that the loop knows its length. */
static void
load_fixtures(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int lineno = 0;
	struct fixture *cur = NULL;

	fixtures.opened = f != NULL;
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		chomp(line);
		if (strncmp(line, "# id:", 5) == 0) {
			struct fixture *nv = realloc(fixtures.v,
			    (fixtures.n + 1) * sizeof *nv);
			if (nv == NULL)
				abort();
			fixtures.v = nv;
			cur = &fixtures.v[fixtures.n++];
			memset(cur, 0, sizeof *cur);
			cur->id = dup_str(line + 5 + strspn(line + 5, " "));
			cur->verify = dup_str("");
			cur->result = dup_str("");
		} else if (cur != NULL && strncmp(line, "# verify:", 9) == 0) {
			size_t n = strlen(cur->verify) + strlen(line) + 2;
			char *v = malloc(n);
			if (v == NULL)
				abort();
			snprintf(v, n, "%s%s\n", cur->verify, line + 9);
			free(cur->verify);
			cur->verify = v;
			cur->nverify++;
		} else if (cur != NULL && strncmp(line, "# verify-result:", 16) == 0) {
			free(cur->result);
			cur->result = dup_str(line + 16 + strspn(line + 16, " "));
		} else if (line[0] != '#' && line[0] != '\0') {
			if (cur == NULL || cur->bytes.n > 0 ||
			    !hex_add(&cur->bytes, line)) {
				snprintf(fixtures.error, sizeof fixtures.error,
				    "%s:%d: not the one hex line of a block", path,
				    lineno);
				break;
			}
			cur->line = lineno;
		}
	}
	fclose(f);
}

static const struct fixture *
fixture_get(const char *id)
{
	for (size_t i = 0; i < fixtures.n; i++)
		if (strcmp(fixtures.v[i].id, id) == 0)
			return &fixtures.v[i];
	ck_abort_msg("%s: no fixture '%s'", FIXTURES, id);
	return NULL;
}

/* ---- running a stream ---- */

#define SEEN_MAX 256
#define REJECTS_MAX 8192

/* What the handler saw, in order. */
struct seen {
	struct bytes frames;   /* the frames, back to back */
	size_t len[SEEN_MAX];
	size_t nframes;
	enum solarman_reject why[REJECTS_MAX];
	size_t nrejects;
};

struct outcome {
	struct seen seen;
	struct solarman_stats stats;
	struct solarman_stats before_finish;
	size_t frames_before_finish, rejects_before_finish;
};

static void
on_frame(void *ctx, const uint8_t *frame, size_t len)
{
	struct seen *s = ctx;

	if (s->nframes == SEEN_MAX || len < SOLARMAN_OVERHEAD)
		ck_abort_msg("frame %zu of %zu bytes: too many or too short",
		    s->nframes, len);
	s->len[s->nframes++] = len;
	bytes_add(&s->frames, frame, len);
}

static void
on_reject(void *ctx, enum solarman_reject why)
{
	struct seen *s = ctx;

	if (s->nrejects == REJECTS_MAX || why >= SOLARMAN_REJECT_KINDS)
		ck_abort_msg("reject %zu of kind %d: too many or unknown",
		    s->nrejects, (int)why);
	s->why[s->nrejects++] = why;
}

static void
release_outcome(void *p)
{
	struct outcome *o = p;

	bytes_free(&o->seen.frames);
	free(o);
}

static struct outcome *
new_outcome(void)
{
	struct outcome *o = calloc(1, sizeof *o);

	ck_assert_ptr_nonnull(o);
	return hold(o, release_outcome);
}

static uint32_t
rng_next(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

enum feed_mode { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

/* A stream on the heap, ready; abort()s without memory, as feed_copy. */
static struct solarman_stream *
new_stream(void)
{
	struct solarman_stream *st = malloc(sizeof *st);

	if (st == NULL)
		abort();
	solarman_stream_init(st);
	return st;
}

static void
release_stream(void *p)
{
	solarman_stream_free(p);
	free(p);
}

/* Feed n bytes as one chunk of its own heap copy. */
static void
feed_copy(struct solarman_stream *st, const uint8_t *p, size_t n,
    const struct solarman_handler *h)
{
	uint8_t *c = malloc(n ? n : 1);

	/* Not ck_assert: each passing one is a write to Check's pipe, and this
	 * runs a million times under valgrind. */
	if (c == NULL)
		abort();
	memcpy(c, p, n);
	solarman_stream_feed(st, c, n, h);
	free(c);
}

/*
 * Decode in[0..n) fed whole, byte by byte, or in random chunks (seeded; from
 * empty chunks up to chunks larger than a frame), then finish.
 */
static struct outcome *
decode_stream(const uint8_t *in, size_t n, enum feed_mode mode, uint32_t seed)
{
	static const size_t caps[] = {2, 7, 16, 64, 300, 5000};
	struct outcome *o = new_outcome();
	struct solarman_stream *st = hold(new_stream(), release_stream);
	struct solarman_handler h = {on_frame, on_reject, &o->seen};
	uint32_t r = seed * 2654435761u | 1;
	size_t cap = caps[seed % NELEM(caps)];

	if (mode == FEED_WHOLE) {
		feed_copy(st, in, n, &h);
	} else {
		for (size_t off = 0; off < n;) {
			size_t k = mode == FEED_BYTES ? 1 : rng_next(&r) % (cap + 1);

			if (k > n - off)
				k = n - off;
			feed_copy(st, in + off, k, &h);
			off += k;
		}
	}
	o->before_finish = st->stats;
	o->frames_before_finish = o->seen.nframes;
	o->rejects_before_finish = o->seen.nrejects;
	solarman_stream_finish(st, &h);
	o->stats = st->stats;
	return o;
}

static const char *const reject_kind[] = {
	"SOLARMAN_BAD_LENGTH", "SOLARMAN_BAD_CHECKSUM", "SOLARMAN_BAD_END",
	"SOLARMAN_TRUNCATED",
};

static uint64_t
frame_bytes(const struct outcome *o)
{
	return o->seen.frames.n;
}

/* The counters agree with what the handler saw, and account for every byte. */
static void
check_stats(const struct outcome *o, size_t n, const char *what)
{
	uint64_t rejects = 0;

	ck_assert_msg(o->stats.bytes == n, "%s: stats.bytes %" PRIu64 ", fed %zu",
	    what, o->stats.bytes, n);
	ck_assert_msg(o->stats.frames == o->seen.nframes,
	    "%s: stats.frames %" PRIu64 ", delivered %zu", what, o->stats.frames,
	    o->seen.nframes);
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++) {
		uint64_t seen = 0;

		for (size_t i = 0; i < o->seen.nrejects; i++)
			seen += o->seen.why[i] == (enum solarman_reject)k;
		ck_assert_msg(o->stats.rejects[k] == seen,
		    "%s: stats.rejects[%s] %" PRIu64 ", handler saw %" PRIu64, what,
		    reject_kind[k], o->stats.rejects[k], seen);
		rejects += seen;
	}
	ck_assert_uint_eq(rejects, o->seen.nrejects);
	ck_assert_msg(o->stats.skipped + frame_bytes(o) == n,
	    "%s: skipped %" PRIu64 " + frame bytes %" PRIu64 " != %zu fed", what,
	    o->stats.skipped, frame_bytes(o), n);
}

/* ---- fixtures: every block as its own stream ---- */

enum fx_kind {
	FX_OK,        /* valid frame(s) */
	FX_TRUNCATED, /* the length claims more bytes than present */
	FX_TOO_LONG,  /* one byte too many: the end byte falls elsewhere */
	FX_CHECKSUM,  /* checksum MISMATCH */
	FX_NO_START,  /* not 0xA5: no candidate at all */
	FX_UNCLEAR,   /* the verify lines say nothing the test understands */
};

static const char *const fx_name[] = {
	"OK", "truncated", "too long", "checksum", "no start", "unclear",
};

/*
 * Every block of the fixture file, by id: what decoding it alone must give.
 * The "why" column quotes the block's verify line; test_fixture_verify
 * checks that the kind follows from it.
 */
static const struct fixture_expect {
	const char *id;
	enum fx_kind kind;
	unsigned frames;
	const char *why;
} fixture_expect[] = {
	{"deye-m80g3-data-0x42", FX_OK, 1, "343 bytes, checksum 0x0c ok"},
	{"deye-micro-heartbeat-0x47", FX_OK, 1, "14 bytes ok"},
	{"deye-micro-heartbeat-reply-MALFORMED", FX_TRUNCATED, 0,
	    "expect 23 bytes, have 22: truncated at finish"},
	{"deye-m80g3-local-modbus-reply-0x15", FX_OK, 1, "29 bytes ok"},
	{"dongle-heartbeat-0x47", FX_OK, 1, "14 bytes ok"},
	{"server-heartbeat-reply-0x17", FX_OK, 1, "23 bytes ok"},
	{"solis-handshake-0x41", FX_OK, 1, "99 bytes ok"},
	{"solis-data-0x42-a", FX_OK, 1, "246 bytes ok"},
	{"solis-data-0x42-b", FX_TOO_LONG, 0,
	    "expect 246 bytes, have 247: byte 245 is the checksum, not 0x15"},
	{"solis-wifi-0x43", FX_OK, 1, "60 bytes ok"},
	{"solis-ping-0x47", FX_OK, 1, "14 bytes ok"},
	{"solis-report-0x48", FX_OK, 1, "73 bytes ok"},
	{"lsw5-handshake-0x41-1", FX_TRUNCATED, 0,
	    "expect 143 bytes, have 139: truncated at finish"},
	{"lsw5-handshake-0x41-2", FX_TRUNCATED, 0,
	    "expect 143 bytes, have 139: truncated at finish"},
	{"lsw5-handshake-0x41-3", FX_OK, 1, "143 bytes ok"},
	{"lsw5ble-data-0x42", FX_TRUNCATED, 0,
	    "expect 273 bytes, have 269: truncated at finish"},
	{"ginlong-eth-heartbeat-0x47", FX_OK, 1, "14 bytes ok"},
	{"ginlong-eth-data-0x02", FX_OK, 1, "132 bytes ok"},
	{"local-request-0x45", FX_OK, 1, "36 bytes ok"},
	{"local-reply-0x15", FX_OK, 1, "34 bytes ok"},
	{"local-heartbeat-0x47", FX_OK, 1, "14 bytes ok"},
	{"local-stream-3-frames", FX_OK, 3, "29 + 14 + 29 bytes, all ok"},
	{"pysolarmanv5-test-heartbeat", FX_OK, 1, "14 bytes ok"},
	{"pysolarmanv5-decoder-doc-request", FX_OK, 1, "36 bytes ok"},
	{"dante-keepalive-0x47", FX_CHECKSUM, 0, "checksum 0xa4 vs 0xf5"},
	{"dante-modbus-reply-0x15", FX_CHECKSUM, 0, "checksum 0x96 vs 0xe7"},
	{"tls-clienthello-prefix-NEGATIVE", FX_NO_START, 0,
	    "start=0x16: no 0xA5 anywhere, every byte skipped"},
};

static const struct fixture_expect *
expect_for(const char *id)
{
	for (size_t i = 0; i < NELEM(fixture_expect); i++)
		if (strcmp(fixture_expect[i].id, id) == 0)
			return &fixture_expect[i];
	return NULL;
}

/* What a block's verify lines say (the file's own provenance). */
static enum fx_kind
derive_kind(const struct fixture *f, unsigned *frames)
{
	const char *v = f->verify, *p;
	unsigned expect, have;

	*frames = 0;
	if (strcmp(f->result, "OK") == 0 || strcmp(f->result, "ALL FRAMES OK") == 0) {
		if (strstr(v, "MISMATCH") != NULL || strstr(v, "BAD") != NULL)
			return FX_UNCLEAR;
		*frames = f->nverify;
		return FX_OK;
	}
	if (strncmp(f->result, "FAIL", 4) != 0 || f->nverify != 1)
		return FX_UNCLEAR;
	if (strstr(v, "start=0xa5(ok)") == NULL)
		return FX_NO_START;
	if ((p = strstr(v, "expect ")) != NULL &&
	    sscanf(p, "expect %u bytes, have %u", &expect, &have) == 2) {
		if (have < expect)
			return FX_TRUNCATED;
		if (have > expect)
			return FX_TOO_LONG;
	}
	if ((p = strstr(v, "checksum")) != NULL && strstr(p, "(MISMATCH)") != NULL)
		return FX_CHECKSUM;
	return FX_UNCLEAR;
}

/* Running from the wrong directory, the loops would have nothing to do. */
START_TEST(test_fixture_file)
{
	ck_assert_msg(fixtures.opened, FIXTURES " not found: run from tests/");
	ck_assert_msg(fixtures.error[0] == '\0', "%s", fixtures.error);
	ck_assert_uint_eq(fixtures.n, NELEM(fixture_expect));
}
END_TEST

/* Every row of the table names a block, once. */
START_TEST(test_fixture_table)
{
	const char *id = fixture_expect[_i].id;
	int found = 0;

	for (size_t i = 0; i < fixtures.n; i++)
		found += strcmp(fixtures.v[i].id, id) == 0;
	ck_assert_msg(found == 1, "%s: %d blocks with this id in " FIXTURES, id,
	    found);
}
END_TEST

/* The table agrees with the block's own verify lines. */
START_TEST(test_fixture_verify)
{
	const struct fixture *f = &fixtures.v[_i];
	const struct fixture_expect *x = expect_for(f->id);
	unsigned frames;
	enum fx_kind k;

	ck_assert_msg(x != NULL, "%s (line %d): no row in fixture_expect[]",
	    f->id, f->line);
	ck_assert_msg(f->bytes.n > 0, "%s: no hex line", f->id);
	k = derive_kind(f, &frames);
	ck_assert_msg(k == x->kind && frames == x->frames,
	    "%s: table says %s/%u frames, verify lines say %s/%u:\n%s", f->id,
	    fx_name[x->kind], x->frames, fx_name[k], frames, f->verify);
}
END_TEST

/* The type a frame's event has, from the frame types of
 * docs/solarman-v5.md, section 3 (0x45 and 0x02 have none: "unknown"). */
static const char *
type_of(uint8_t t)
{
	static const struct {
		uint8_t t;
		const char *name;
	} types[] = {
		{0x41, "handshake"}, {0x42, "data"}, {0x43, "wifi"},
		{0x47, "heartbeat"}, {0x48, "report"},
		{0x11, "reply"}, {0x12, "reply"}, {0x13, "reply"},
		{0x15, "reply"}, {0x17, "reply"}, {0x18, "reply"},
	};

	for (size_t i = 0; i < NELEM(types); i++)
		if (types[i].t == t)
			return types[i].name;
	return "unknown";
}

static struct event_meta
test_meta(int direction)
{
	struct event_meta m = {
		.listener = "test", .conn_id = 7, .peer = "192.0.2.1:4000",
		.direction = direction, .received_ms = RECEIVED_MS,
	};

	event_id_new(&m);
	return m;
}

START_TEST(test_fixture_decode)
{
	const struct fixture *f = &fixtures.v[_i];
	const struct fixture_expect *x = expect_for(f->id);
	const struct outcome *o;
	size_t n = f->bytes.n;

	ck_assert_msg(x != NULL, "%s: no row in fixture_expect[]", f->id);
	o = decode_stream(f->bytes.p, n, FEED_WHOLE, 0);
	check_stats(o, n, f->id);
	if (x->kind == FX_OK) {
		ck_assert_msg(o->seen.nframes == x->frames,
		    "%s: %zu frames, not %u", f->id, o->seen.nframes, x->frames);
		ck_assert_msg(o->frames_before_finish == x->frames,
		    "%s: frames held back until finish", f->id);
		ck_assert_msg(o->seen.nrejects == 0, "%s: %zu rejects, first %s",
		    f->id, o->seen.nrejects, reject_kind[o->seen.why[0]]);
		ck_assert_uint_eq(o->stats.skipped, 0);
		ck_assert_msg(o->seen.frames.n == n &&
		    mem_eq(o->seen.frames.p, f->bytes.p, n),
		    "%s: the frames are not the input bytes", f->id);
		/* And each makes an event of its type. */
		for (size_t i = 0, off = 0; i < o->seen.nframes; off += o->seen.len[i++]) {
			const uint8_t *fr = o->seen.frames.p + off;
			struct event_meta m = test_meta(0);
			int64_t t;
			json_t *ev = hold_json(solarman_event(fr, o->seen.len[i], &m, &t));
			uint32_t serial = (uint32_t)fr[7] | (uint32_t)fr[8] << 8 |
			    (uint32_t)fr[9] << 16 | (uint32_t)fr[10] << 24;

			ck_assert_ptr_nonnull(ev);
			ck_assert_uint_eq(o->seen.len[i], get_len(fr) + 13u);
			ck_assert_str_eq(json_string_value(json_object_get(ev, "type")),
			    type_of(fr[4]));
			ck_assert_int_eq(json_integer_value(
			    json_object_get(ev, "logger.serial")), serial);
		}
		return;
	}
	ck_assert_msg(o->seen.nframes == 0, "%s: %zu frames from a damaged block",
	    f->id, o->seen.nframes);
	ck_assert_uint_eq(o->stats.skipped, n);
	switch (x->kind) {
	case FX_TRUNCATED:
		ck_assert_msg(o->rejects_before_finish == 0,
		    "%s: rejected (%s) before the stream ended", f->id,
		    reject_kind[o->seen.why[0]]);
		ck_assert_msg(o->seen.nrejects >= 1 &&
		    o->seen.why[0] == SOLARMAN_TRUNCATED,
		    "%s: first reject %s, not SOLARMAN_TRUNCATED", f->id,
		    o->seen.nrejects ? reject_kind[o->seen.why[0]] : "none");
		break;
	case FX_TOO_LONG:
		ck_assert_msg(o->rejects_before_finish >= 1 &&
		    (o->seen.why[0] == SOLARMAN_BAD_END ||
		    o->seen.why[0] == SOLARMAN_BAD_CHECKSUM),
		    "%s: first reject %s, not end or checksum while fed", f->id,
		    o->seen.nrejects ? reject_kind[o->seen.why[0]] : "none");
		break;
	case FX_CHECKSUM:
		ck_assert_msg(o->rejects_before_finish >= 1 &&
		    o->seen.why[0] == SOLARMAN_BAD_CHECKSUM,
		    "%s: first reject %s, not SOLARMAN_BAD_CHECKSUM while fed", f->id,
		    o->seen.nrejects ? reject_kind[o->seen.why[0]] : "none");
		break;
	case FX_NO_START:
		ck_assert_msg(o->seen.nrejects == 0, "%s: %zu rejects, first %s",
		    f->id, o->seen.nrejects, reject_kind[o->seen.why[0]]);
		ck_assert_msg(o->before_finish.skipped == n,
		    "%s: %" PRIu64 " of %zu bytes skipped before finish: held?",
		    f->id, o->before_finish.skipped, n);
		break;
	default:
		ck_abort_msg("%s: kind %s", f->id, fx_name[x->kind]);
	}
}
END_TEST

/* ---- golden files ---- */

struct names {
	char **v;
	size_t n;
	bool opened;
};

static struct names golden_hex, golden_json;

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The NAME of every NAME.ext in dir, sorted. */
static void
list_names(const char *dir, const char *ext, struct names *out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t elen = strlen(ext);

	out->v = NULL;
	out->n = 0;
	out->opened = d != NULL;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char **nv;

		if (n <= elen || strcmp(e->d_name + n - elen, ext) != 0)
			continue;
		if ((nv = realloc(out->v, (out->n + 1) * sizeof *nv)) == NULL)
			break;
		out->v = nv;
		if ((out->v[out->n] = strndup(e->d_name, n - elen)) == NULL)
			break;
		out->n++;
	}
	closedir(d);
	if (out->n > 0)
		qsort(out->v, out->n, sizeof *out->v, cmp_names);
}

static void
free_names(struct names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		free(nm->v[i]);
	free(nm->v);
	nm->v = NULL;
	nm->n = 0;
}

struct golden {
	struct bytes *frame;
	int direction;
	int64_t time_ms;
};

/* NAME.hex: '#' lines, of which "# direction: up|down" and "# time_ms: N"
 * are required, then the frame as hex. */
static void
read_golden_hex(const char *name, struct golden *g)
{
	char path[512], *text, *line, *save = NULL;
	bool have_dir = false, have_time = false;

	snprintf(path, sizeof path, GOLDEN "/%s.hex", name);
	ck_assert_msg((text = slurp(path)) != NULL, "%s: %s", path, strerror(errno));
	g->frame = new_bytes();
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *end;

		if (strncmp(line, "# direction:", 12) == 0) {
			const char *d = line + 12 + strspn(line + 12, " ");
			ck_assert_msg(strcmp(d, "up") == 0 || strcmp(d, "down") == 0,
			    "%s: direction '%s'", path, d);
			g->direction = strcmp(d, "down") == 0;
			have_dir = true;
		} else if (strncmp(line, "# time_ms:", 10) == 0) {
			errno = 0;
			g->time_ms = strtoll(line + 10, &end, 10);
			ck_assert_msg(errno == 0 && end != line + 10 && *end == '\0',
			    "%s: time_ms '%s'", path, line + 10);
			have_time = true;
		} else if (line[0] != '#') {
			ck_assert_msg(hex_add(g->frame, line), "%s: not hex: %s",
			    path, line);
		}
	}
	ck_assert_msg(have_dir && have_time,
	    "%s: needs '# direction:' and '# time_ms:' lines", path);
	ck_assert_msg(g->frame->n > 0, "%s: no frame", path);
}

static const char *
dump_value(json_t *v)
{
	char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)) : NULL;

	return s ? hold(s, free) : "(none)";
}

/* One line per key that differs: "-" missing, "+" extra, "~" different. */
static void
json_diff(json_t *want, json_t *got, char *buf, size_t len)
{
	const char *key;
	json_t *v;
	size_t used = 0;

	buf[0] = '\0';
#define DIFF_LINE(...) do { \
	if (used < len) \
		used += (size_t)snprintf(buf + used, len - used, __VA_ARGS__); \
} while (0)
	json_object_foreach(want, key, v) {
		json_t *g = json_object_get(got, key);

		if (g == NULL)
			DIFF_LINE("  - %s: %s (missing)\n", key, dump_value(v));
		else if (!json_equal(v, g))
			DIFF_LINE("  ~ %s: want %s, got %s\n", key, dump_value(v),
			    dump_value(g));
	}
	json_object_foreach(got, key, v) {
		if (json_object_get(want, key) == NULL)
			DIFF_LINE("  + %s: %s (not expected)\n", key, dump_value(v));
	}
#undef DIFF_LINE
}

static const char id_pattern[] = "^[0-9a-f]{16}-[0-9]+$";

static void
release_regex(void *p)
{
	regfree(p);
	free(p);
}

static void
check_id(json_t *ev, const struct event_meta *m, const char *what)
{
	regex_t *rx = malloc(sizeof *rx);
	const char *id = json_string_value(json_object_get(ev, "id"));

	ck_assert_ptr_nonnull(rx);
	ck_assert_int_eq(regcomp(rx, id_pattern, REG_EXTENDED | REG_NOSUB), 0);
	hold(rx, release_regex);
	ck_assert_msg(id != NULL, "%s: no string id", what);
	ck_assert_msg(regexec(rx, id, 0, NULL, 0) == 0, "%s: id '%s' is not %s",
	    what, id, id_pattern);
	ck_assert_str_eq(id, m->id);
}

START_TEST(test_golden_present)
{
	ck_assert_msg(golden_hex.opened, GOLDEN " not found: run from tests/");
	ck_assert_uint_ge(golden_hex.n, 12);
	/* NAME.hex and NAME.json come in pairs. */
	ck_assert_uint_eq(golden_hex.n, golden_json.n);
	for (size_t i = 0; i < golden_hex.n; i++)
		ck_assert_str_eq(golden_hex.v[i], golden_json.v[i]);
}
END_TEST

START_TEST(test_golden)
{
	const char *name = golden_hex.v[_i];
	struct golden g = {NULL, 0, 0};
	char path[512];
	static char diff[16384];
	json_error_t err;
	json_t *want, *ev;
	struct event_meta m;
	const struct outcome *o;
	int64_t t = -1;

	read_golden_hex(name, &g);
	snprintf(path, sizeof path, GOLDEN "/%s.json", name);
	want = hold_json(json_load_file(path, JSON_REJECT_DUPLICATES, &err));
	ck_assert_msg(want != NULL, "%s:%d: %s", path, err.line, err.text);
	ck_assert_msg(json_is_object(want), "%s: not an object", path);
	ck_assert_msg(json_object_get(want, "id") == NULL,
	    "%s: leave the volatile 'id' out", path);

	/* The golden frame is one valid frame. */
	o = decode_stream(g.frame->p, g.frame->n, FEED_WHOLE, 0);
	ck_assert_msg(o->seen.nframes == 1 && o->seen.nrejects == 0 &&
	    o->stats.skipped == 0 && o->seen.frames.n == g.frame->n,
	    "%s.hex: %zu frames, %zu rejects: not one valid frame", name,
	    o->seen.nframes, o->seen.nrejects);

	event_ids_init();
	m = test_meta(g.direction);
	ev = hold_json(solarman_event(o->seen.frames.p, o->seen.frames.n, &m, &t));
	ck_assert_msg(ev != NULL, "%s: no event", name);
	check_id(ev, &m, name);
	json_object_del(ev, "id");
	json_diff(want, ev, diff, sizeof diff);
	ck_assert_msg(json_equal(want, ev), "%s: the event differs from %s:\n%s",
	    name, path, diff);
	ck_assert_msg(t == g.time_ms, "%s: time_ms %" PRId64 ", want %" PRId64,
	    name, t, g.time_ms);
}
END_TEST

/* Ids: the format, and a new one per event. */
START_TEST(test_event_ids)
{
	struct event_meta a, b;
	int64_t t;
	json_t *ea, *eb;
	const struct fixture *f = fixture_get("dongle-heartbeat-0x47");

	event_ids_init();
	a = test_meta(0);
	b = test_meta(0);
	ea = hold_json(solarman_event(f->bytes.p, f->bytes.n, &a, &t));
	eb = hold_json(solarman_event(f->bytes.p, f->bytes.n, &b, &t));
	ck_assert_ptr_nonnull(ea);
	ck_assert_ptr_nonnull(eb);
	check_id(ea, &a, "first");
	check_id(eb, &b, "second");
	ck_assert_str_ne(a.id, b.id);
	/* Same run, same prefix. */
	ck_assert_int_eq(strncmp(a.id, b.id, 17), 0);
}
END_TEST

/* ---- variants of the Deye data frame ---- */

struct patch {
	unsigned off; /* payload offset */
	unsigned n;   /* 0 ends the list */
	uint8_t b[4];
};

enum want_kind { W_NONE, W_REAL, W_INT, W_STR, W_TRUE, W_PAYLOAD_HEX };

struct want {
	const char *key;
	enum want_kind kind;
	double real;
	json_int_t integer;
	const char *str;
};

#define REAL(k, v) {k, W_REAL, v, 0, NULL}
#define INT(k, v) {k, W_INT, 0, v, NULL}
#define STR(k, v) {k, W_STR, 0, 0, v}
#define TRUE_(k) {k, W_TRUE, 0, 0, NULL}
#define PAYLOAD_HEX {"payload.hex", W_PAYLOAD_HEX, 0, 0, NULL}
#define RECEIVED (-1)

/* The real-time keys: those of the data table of docs/solarman-v5.md,
 * section 7. */
static const char *const realtime_prefixes[] = {"inv.", "grid.", "pv.", "meta."};

static const struct variant {
	const char *name;
	struct patch patch[12];
	int payload_len;   /* >= 0: cut the payload to this many bytes */
	bool raw;          /* none of the real-time keys */
	int64_t time_ms;   /* RECEIVED: m->received_ms */
	struct want want[24];
	const char *absent[8];
} variants[] = {
	{"temperature -12.34", {{63, 2, {0x2e, 0xfb}}}, -1, false, DEYE_TIME_MS,
	    {REAL("inv.degc", -12.34), REAL("grid.v", 232.0)}, {NULL}},
	{"temperature -0.01", {{63, 2, {0xff, 0xff}}}, -1, false, DEYE_TIME_MS,
	    {REAL("inv.degc", -0.01)}, {NULL}},
	{"temperature -327.68", {{63, 2, {0x00, 0x80}}}, -1, false, DEYE_TIME_MS,
	    {REAL("inv.degc", -327.68)}, {NULL}},
	{"temperature 327.67", {{63, 2, {0xff, 0x7f}}}, -1, false, DEYE_TIME_MS,
	    {REAL("inv.degc", 327.67)}, {NULL}},
#define FOUR_INPUTS \
	{{131, 1, {4}}, \
	 {87, 2, {31, 0}},                    /* pv.i.1 3.1 A */ \
	 {91, 2, {6, 0}},                     /* pv.i.2 0.6 A */ \
	 {93, 4, {0x4d, 0x01, 27, 0}},        /* pv.3: 33.3 V 2.7 A */ \
	 {97, 4, {0xa1, 0x01, 19, 0}},        /* pv.4: 41.7 V 1.9 A */ \
	 {139, 4, {0x00, 12, 0x00, 25}},      /* today 1.2, 2.5 kWh */ \
	 {151, 4, {0x00, 0x00, 0x04, 0xd2}},  /* total.3 123.4 kWh */ \
	 {155, 4, {0x00, 0x00, 0xdd, 0xd5}}}  /* total.4 5678.9 kWh */
	/* Two rows for one frame, so that one wrong value does not hide
	 * the other half. */
	{"four inputs: v, i, kWh", FOUR_INPUTS, -1, false, DEYE_TIME_MS,
	    {INT("meta.mppt_count", 4),
	     REAL("pv.v.1", 27.1), REAL("pv.i.1", 3.1),
	     REAL("pv.v.2", 27.8), REAL("pv.i.2", 0.6),
	     REAL("pv.v.3", 33.3), REAL("pv.i.3", 2.7),
	     REAL("pv.v.4", 41.7), REAL("pv.i.4", 1.9),
	     REAL("pv.kWh_today.1", 0.4), REAL("pv.kWh_today.2", 0.4),
	     REAL("pv.kWh_today.3", 1.2), REAL("pv.kWh_today.4", 2.5),
	     REAL("pv.kWh_total.1", 80.7), REAL("pv.kWh_total.3", 123.4),
	     REAL("pv.kWh_total.4", 5678.9)},
	    {"pv.v.5", "pv.kWh_total.5"}},
	/* v x i rounded to 0.1 W: 84.01, 16.68, 89.91, 79.23 (no ties). */
	{"four inputs: power", FOUR_INPUTS, -1, false, DEYE_TIME_MS,
	    {REAL("pv.w.1", 84.0), REAL("pv.w.2", 16.7), REAL("pv.w.3", 89.9),
	     REAL("pv.w.4", 79.2)},
	    {"pv.w.5"}},
	{"five inputs claimed: at most four", {{131, 1, {5}}}, -1, false,
	    DEYE_TIME_MS,
	    {INT("meta.mppt_count", 5), REAL("pv.v.4", 0.0), REAL("pv.w.4", 0.0),
	     REAL("pv.kWh_total.4", 0.0)},
	    {"pv.v.5", "pv.i.5", "pv.w.5", "pv.kWh_today.5", "pv.kWh_total.5"}},
	{"one input", {{131, 1, {1}}}, -1, false, DEYE_TIME_MS,
	    {INT("meta.mppt_count", 1), REAL("pv.v.1", 27.1),
	     REAL("pv.kWh_total.1", 80.7)},
	    {"pv.v.2", "pv.i.2", "pv.w.2", "pv.kWh_today.2", "pv.kWh_total.2"}},
	{"no input", {{131, 1, {0}}}, -1, false, DEYE_TIME_MS,
	    {INT("meta.mppt_count", 0), REAL("grid.v", 232.0)},
	    {"pv.v.1", "pv.i.1", "pv.w.1", "pv.kWh_today.1", "pv.kWh_total.1"}},
	{"large totals",
	    {{33, 4, {0xff, 0xff, 0xff, 0xff}},
	     {37, 4, {0xff, 0xff, 0xff, 0xff}},
	     {59, 4, {0xff, 0xff, 0xff, 0xff}},
	     {143, 4, {0xff, 0xff, 0xff, 0xff}},
	     {147, 4, {0xff, 0xff, 0xff, 0xfe}}},
	    -1, false, DEYE_TIME_MS,
	    {REAL("grid.kWh_today", 42949672.95),
	     REAL("grid.kWh_total", 429496729.5),
	     INT("grid.active_power_w", 4294967295),
	     REAL("pv.kWh_total.1", 429496729.5),
	     REAL("pv.kWh_total.2", 429496729.4)},
	    {NULL}},
	{"u16 fields are unsigned",
	    {{45, 2, {0xff, 0xff}}, {51, 2, {0xff, 0xff}}, {57, 2, {0xff, 0xff}},
	     {85, 2, {0xff, 0xff}}, {129, 2, {0xff, 0xff}},
	     {135, 2, {0xff, 0xff}}},
	    -1, false, DEYE_TIME_MS,
	    {REAL("grid.v", 6553.5), REAL("grid.i", 6553.5),
	     REAL("grid.hz", 655.35), REAL("pv.v.1", 6553.5),
	     REAL("meta.rated_power_w", 6553.5),
	     REAL("pv.kWh_today.1", 6553.5)},
	    {NULL}},
	{"total + offset past 2^32 s",
	    {{3, 4, {0xff, 0xff, 0xff, 0xff}}, {11, 4, {0xff, 0xff, 0xff, 0xff}}},
	    -1, false, INT64_C(8589934590000),
	    {STR("record.time", "2242-03-16T12:56:30Z"),
	     INT("logger.total_working_s", 4294967295)},
	    {NULL}},
	{"historic record", {{0, 1, {0x81}}}, -1, true, RECEIVED,
	    {TRUE_("data.historic"), PAYLOAD_HEX, STR("data.schema", "0x08")},
	    {"data.short", "data.raw"}},
	{"short: 250 bytes", {{0, 0, {0}}}, 250, true, DEYE_TIME_MS,
	    {TRUE_("data.short"), PAYLOAD_HEX,
	     STR("record.time", "2024-04-08T17:14:03Z")},
	    {"data.historic", "data.raw"}},
	{"short: the prefix only", {{0, 0, {0}}}, 15, true, DEYE_TIME_MS,
	    {TRUE_("data.short"), PAYLOAD_HEX,
	     STR("record.time", "2024-04-08T17:14:03Z")},
	    {"data.historic", "data.raw"}},
	{"short: less than the prefix", {{0, 0, {0}}}, 14, true, RECEIVED,
	    {TRUE_("data.short"), PAYLOAD_HEX}, {"record.time"}},
	{"251 bytes: long enough", {{0, 0, {0}}}, 251, false, DEYE_TIME_MS,
	    {STR("meta.current_time", "2024-04-08:17:09:01"),
	     REAL("pv.kWh_total.1", 80.7)},
	    {"data.short", "payload.hex"}},
	{"schema 0x11", {{1, 1, {0x11}}}, -1, true, DEYE_TIME_MS,
	    {TRUE_("data.raw"), PAYLOAD_HEX, STR("data.schema", "0x11")},
	    {"data.historic", "data.short"}},
	{"schema 0x13", {{1, 1, {0x13}}}, -1, true, DEYE_TIME_MS,
	    {TRUE_("data.raw"), PAYLOAD_HEX, STR("data.schema", "0x13")},
	    {"data.historic", "data.short"}},
	{"logger clock unset", {{11, 4, {0, 0, 0, 0}}}, -1, false, RECEIVED,
	    {INT("logger.total_working_s", 6755845), REAL("grid.v", 232.0)},
	    {"record.time"}},
	{"logger clock 2000-01-01",
	    {{3, 4, {0, 0, 0, 0}}, {11, 4, {0x80, 0x43, 0x6d, 0x38}}}, -1, false,
	    INT64_C(946684800000),
	    {STR("record.time", "2000-01-01T00:00:00Z")}, {NULL}},
	{"logger clock a second before 2000",
	    {{3, 4, {0, 0, 0, 0}}, {11, 4, {0x7f, 0x43, 0x6d, 0x38}}}, -1, false,
	    RECEIVED, {INT("logger.total_working_s", 0)}, {"record.time"}},
};

/* The Deye data frame with v's changes, sealed again. */
static struct bytes *
build_variant(const struct variant *v)
{
	const struct fixture *f = fixture_get(DEYE_DATA);
	struct bytes *b = new_bytes();
	size_t plen = get_len(f->bytes.p);

	bytes_add(b, f->bytes.p, f->bytes.n);
	for (const struct patch *p = v->patch; p->n > 0; p++) {
		ck_assert_uint_le(p->off + p->n, plen);
		memcpy(b->p + 11 + p->off, p->b, p->n);
	}
	if (v->payload_len >= 0) {
		ck_assert_uint_le((size_t)v->payload_len, plen);
		plen = (size_t)v->payload_len;
	}
	seal(b, plen);
	return b;
}

START_TEST(test_variant)
{
	const struct variant *v = &variants[_i];
	struct bytes *b = build_variant(v);
	const struct outcome *o = decode_stream(b->p, b->n, FEED_WHOLE, 0);
	struct event_meta m = test_meta(0);
	int64_t t = 0;
	const char *key;
	json_t *ev, *val;
	char bad[2048] = "";
	size_t used = 0;

	ck_assert_msg(o->seen.nframes == 1 && o->seen.frames.n == b->n,
	    "%s: the built frame does not decode", v->name);
	ev = hold_json(solarman_event(b->p, b->n, &m, &t));
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), "data");
	/* Every wrong key is listed, not only the first. */
	for (const struct want *w = v->want; w->key != NULL; w++) {
		json_t *j = json_object_get(ev, w->key);
		char want[96];
		bool ok;

		switch (w->kind) {
		case W_REAL:
			ok = json_is_real(j) && json_real_value(j) == w->real;
			snprintf(want, sizeof want, "%.17g", w->real);
			break;
		case W_INT:
			ok = json_is_integer(j) && json_integer_value(j) == w->integer;
			snprintf(want, sizeof want, "%" JSON_INTEGER_FORMAT, w->integer);
			break;
		case W_STR:
			ok = json_is_string(j) && strcmp(json_string_value(j), w->str) == 0;
			snprintf(want, sizeof want, "\"%s\"", w->str);
			break;
		case W_TRUE:
			ok = json_is_true(j);
			snprintf(want, sizeof want, "true");
			break;
		case W_PAYLOAD_HEX:
			ok = json_is_string(j) && strcmp(json_string_value(j),
			    to_hex(b->p + 11, b->n - SOLARMAN_OVERHEAD)) == 0;
			snprintf(want, sizeof want, "the payload's hex");
			break;
		default:
			ck_abort_msg("%s: test table", v->name);
		}
		if (!ok && used < sizeof bad)
			used += (size_t)snprintf(bad + used, sizeof bad - used,
			    "\n  %s is %s, want %s", w->key, dump_value(j), want);
	}
	ck_assert_msg(used == 0, "%s:%s", v->name, bad);
	for (size_t i = 0; i < NELEM(v->absent) && v->absent[i] != NULL; i++)
		ck_assert_msg(json_object_get(ev, v->absent[i]) == NULL,
		    "%s: %s is present: %s", v->name, v->absent[i],
		    dump_value(json_object_get(ev, v->absent[i])));
	if (v->raw) {
		json_object_foreach(ev, key, val) {
			for (size_t i = 0; i < NELEM(realtime_prefixes); i++)
				ck_assert_msg(strncmp(key, realtime_prefixes[i],
				    strlen(realtime_prefixes[i])) != 0,
				    "%s: real-time key %s in a raw record", v->name, key);
		}
	} else {
		/* Every key of the data table is there (inputs per mppt_count). */
		static const char *const table[] = {
			"inv.serial.ascii", "grid.kWh_today", "grid.kWh_total",
			"grid.v", "grid.i", "grid.hz", "grid.active_power_w",
			"inv.degc", "meta.protocol_ver", "meta.dc_master_fw_ver",
			"meta.ac_fw_ver", "meta.rated_power_w", "meta.mppt_count",
			"meta.phases", "meta.current_time",
		};
		for (size_t i = 0; i < NELEM(table); i++)
			ck_assert_msg(json_object_get(ev, table[i]) != NULL,
			    "%s: no %s", v->name, table[i]);
	}
	ck_assert_msg(t == (v->time_ms == RECEIVED ? RECEIVED_MS : v->time_ms),
	    "%s: time_ms %" PRId64 ", want %" PRId64, v->name, t,
	    v->time_ms == RECEIVED ? RECEIVED_MS : v->time_ms);
}
END_TEST

/* Wi-Fi signal quality (docs/solarman-v5.md, section 5: leave out values
 * over 100), in the Solis wifi frame; -1: no wifi.signal_pct. */
static const struct {
	uint8_t raw;
	int pct;
} wifi_signal[] = {
	{0, 0}, {55, 55}, {100, 100}, {101, -1}, {255, -1},
};

/* ---- sensor types ---- */

/* The Solis real-time golden frame, its sensor type set to type and its
 * payload cut to plen (< 0: as it is), sealed again; its event. */
static json_t *
solis_variant(uint16_t type, uint8_t kind, long plen)
{
	struct golden g = {NULL, 0, 0};
	struct event_meta m = test_meta(0);
	struct bytes *b = new_bytes();
	size_t n;
	int64_t t;

	read_golden_hex("solis-data-rt-663w", &g);
	bytes_add(b, g.frame->p, g.frame->n);
	n = get_len(b->p);
	b->p[11] = kind;
	b->p[12] = (uint8_t)(type & 0xff);
	b->p[13] = (uint8_t)(type >> 8);
	if (plen >= 0) {
		ck_assert_uint_le((size_t)plen, n);
		n = (size_t)plen;
	}
	seal(b, n);
	return hold_json(solarman_event(b->p, 13 + n, &m, &t));
}

static void
assert_keys(json_t *ev, const char *const *have, const char *const *lack)
{
	ck_assert_ptr_nonnull(ev);
	for (; have != NULL && *have != NULL; have++)
		ck_assert_msg(json_object_get(ev, *have) != NULL, "no %s", *have);
	for (; lack != NULL && *lack != NULL; lack++)
		ck_assert_msg(json_object_get(ev, *lack) == NULL, "%s is there",
		    *lack);
}

START_TEST(test_sensor_table_fits)
{
	ck_assert(solarman_sensors_fit());
}
END_TEST

/* Sofar KTL-X: the fields it shares with Solis, phase 3 named as such,
 * and nothing Solis has beyond them. */
START_TEST(test_sensor_sofar)
{
	json_t *ev = solis_variant(0x2701, 0x01, -1);
	static const char *const have[] = {"inv.serial.ascii", "inv.degc",
	    "pv.v.1", "pv.i.1", "grid.v.3", "grid.i.3", "grid.hz",
	    "grid.kWh_today", "grid.kWh_total", "record.time", NULL};
	static const char *const lack[] = {"grid.v", "grid.i", "pv.w.1",
	    "grid.kWh_yesterday", "grid.apparent_power_va", "meta.current_time",
	    "data.raw", "payload.hex", NULL};

	assert_keys(ev, have, lack);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "data.sensor")),
	    "0x2701");
	ck_assert(json_real_value(json_object_get(ev, "grid.v.3")) == 235.8);
	ck_assert(json_real_value(json_object_get(ev, "inv.degc")) == 36.6);
}
END_TEST

/* An unknown type: the header, data.sensor, the payload raw. */
START_TEST(test_sensor_unknown)
{
	json_t *ev = solis_variant(0x1234, 0x01, -1);
	static const char *const have[] = {"record.time", "data.raw",
	    "payload.hex", "logger.total_working_s", NULL};
	static const char *const lack[] = {"grid.v", "inv.degc",
	    "data.historic", NULL};

	assert_keys(ev, have, lack);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "data.sensor")),
	    "0x1234");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "data.schema")),
	    "0x34");
}
END_TEST

/* Solis payloads too short for the layout, real-time and historic; and
 * one too short for a sensor type at all. */
START_TEST(test_sensor_short)
{
	static const char *const rt_have[] = {"data.short", "payload.hex",
	    "record.time", NULL};
	static const char *const hist_have[] = {"data.historic", "payload.hex",
	    NULL};
	static const char *const lack[] = {"grid.v", "inv.serial.ascii", NULL};
	static const char *const hist_lack[] = {"grid.v", "data.short",
	    "record.time", NULL};
	static const char *const fits[] = {"meta.current_time", "grid.v", NULL};
	static const char *const whole[] = {"data.short", "payload.hex", NULL};
	json_t *ev;

	assert_keys(solis_variant(0x0507, 0x01, 146), rt_have, lack);
	assert_keys(solis_variant(0x0507, 0x81, 146), hist_have, hist_lack);
	assert_keys(solis_variant(0x0507, 0x01, 147), fits, whole);
	ev = solis_variant(0x0507, 0x01, 2);
	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_null(json_object_get(ev, "data.sensor"));
	ck_assert_str_eq(json_string_value(json_object_get(ev, "data.schema")),
	    "0x07");
}
END_TEST

/* A negative temperature: Solis reads it signed. */
START_TEST(test_sensor_solis_signed)
{
	struct golden g = {NULL, 0, 0};
	struct event_meta m = test_meta(0);
	struct bytes *b = new_bytes();
	int64_t t;
	json_t *ev;

	read_golden_hex("solis-data-rt-663w", &g);
	bytes_add(b, g.frame->p, g.frame->n);
	b->p[11 + 37] = 0x9c; /* -100: -10.0 degrees */
	b->p[11 + 38] = 0xff;
	seal(b, get_len(b->p));
	ev = hold_json(solarman_event(b->p, b->n, &m, &t));
	ck_assert_ptr_nonnull(ev);
	ck_assert(json_real_value(json_object_get(ev, "inv.degc")) == -10.0);
}
END_TEST

START_TEST(test_wifi_signal)
{
	const struct fixture *f = fixture_get("solis-wifi-0x43");
	struct bytes *b = new_bytes();
	struct event_meta m = test_meta(0);
	int64_t t;
	json_t *ev, *sig;

	bytes_add(b, f->bytes.p, f->bytes.n);
	b->p[11 + 45] = wifi_signal[_i].raw;
	seal(b, get_len(b->p));
	ev = hold_json(solarman_event(b->p, b->n, &m, &t));
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "wifi.ssid")),
	    "Hazes");
	sig = json_object_get(ev, "wifi.signal_pct");
	if (wifi_signal[_i].pct < 0) {
		ck_assert_msg(sig == NULL, "signal byte %u: wifi.signal_pct %s",
		    wifi_signal[_i].raw, dump_value(sig));
	} else {
		ck_assert_msg(json_is_integer(sig), "signal byte %u: %s",
		    wifi_signal[_i].raw, dump_value(sig));
		ck_assert_int_eq(json_integer_value(sig), wifi_signal[_i].pct);
	}
}
END_TEST

/* ---- chunking ---- */

/* The frames in b, split by their length fields (b holds whole frames). */
static void
expect_frames(struct seen *x, const uint8_t *p, size_t n)
{
	for (size_t off = 0; off < n;) {
		size_t len = get_len(p + off) + 13u;

		ck_assert_uint_le(off + len, n);
		on_frame(x, p + off, len);
		off += len;
	}
}

/* Bytes with no 0xA5 among them (so no candidate starts there). */
static void
add_garbage(struct bytes *b, size_t n, uint32_t seed)
{
	uint32_t r = seed | 1;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(rng_next(&r) >> 24);
		bytes_byte(b, c == 0xa5 ? 0x5a : c);
	}
}

static void
add_fixture(struct bytes *b, struct seen *x, const char *id)
{
	const struct fixture *f = fixture_get(id);

	bytes_add(b, f->bytes.p, f->bytes.n);
	if (x != NULL)
		expect_frames(x, f->bytes.p, f->bytes.n);
}

/*
 * A stream and what decoding it gives.  rejects[k] < 0: not fixed by the
 * recipe (only the same under every chunking).
 */
struct recipe_out {
	struct bytes *in;
	struct seen *want;
	long rejects[SOLARMAN_REJECT_KINDS];
	long frames_before_finish; /* < 0: not fixed */
};

static void
release_seen(void *p)
{
	struct seen *s = p;

	bytes_free(&s->frames);
	free(s);
}

static const uint8_t absurd[] = {
	0xa5, 0xff, 0xff, 0xa5, 0xff, 0xff, 0x10, 0x42, /* 65535 + 13 */
	0xa5, 0xf4, 0x0f,                               /* 4084 + 13: one too many */
	0xa5, 0x00, 0x10,                               /* 4096 + 13 */
};
#define ABSURD_REJECTS 4

static void
recipe_frames(struct recipe_out *r)
{
	/* Every valid fixture frame back to back, several in one chunk. */
	for (size_t i = 0; i < fixtures.n; i++)
		if (expect_for(fixtures.v[i].id) != NULL &&
		    expect_for(fixtures.v[i].id)->kind == FX_OK)
			add_fixture(r->in, r->want, fixtures.v[i].id);
	memset(r->rejects, 0, sizeof r->rejects);
	r->frames_before_finish = (long)r->want->nframes;
}

static void
recipe_file(struct recipe_out *r)
{
	/* The whole fixture file as one stream, damaged blocks and all:
	 * exactly its valid frames come out. */
	for (size_t i = 0; i < fixtures.n; i++) {
		const struct fixture_expect *x = expect_for(fixtures.v[i].id);
		add_fixture(r->in, x && x->kind == FX_OK ? r->want : NULL,
		    fixtures.v[i].id);
	}
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		r->rejects[k] = -1;
	r->frames_before_finish = (long)r->want->nframes;
}

static void
recipe_garbage(struct recipe_out *r)
{
	/* Garbage, a TLS ClientHello and absurd lengths before valid frames,
	 * garbage between and after them. */
	add_garbage(r->in, 700, 1);
	add_fixture(r->in, NULL, "tls-clienthello-prefix-NEGATIVE");
	bytes_add(r->in, absurd, sizeof absurd);
	add_fixture(r->in, r->want, DEYE_DATA);
	add_garbage(r->in, 3, 2);
	add_fixture(r->in, r->want, "dongle-heartbeat-0x47");
	add_fixture(r->in, r->want, "server-heartbeat-reply-0x17");
	bytes_add(r->in, absurd, sizeof absurd);
	add_fixture(r->in, r->want, "local-stream-3-frames");
	add_garbage(r->in, 50, 3);
	memset(r->rejects, 0, sizeof r->rejects);
	r->rejects[SOLARMAN_BAD_LENGTH] = 2 * ABSURD_REJECTS;
	r->frames_before_finish = (long)r->want->nframes;
}

static void
recipe_stray_end(struct recipe_out *r)
{
	/* A stray 0xA5 claiming 525 bytes covers the real frames behind it,
	 * and the stream ends first: they come out at finish. */
	static const uint8_t stray[] = {0xa5, 0x00, 0x02, 0x10, 0x42};

	add_garbage(r->in, 10, 4);
	bytes_add(r->in, stray, sizeof stray);
	add_fixture(r->in, r->want, "dongle-heartbeat-0x47");
	add_fixture(r->in, r->want, "server-heartbeat-reply-0x17");
	add_fixture(r->in, r->want, "solis-wifi-0x43");
	add_fixture(r->in, r->want, "solis-handshake-0x41");
	ck_assert_uint_lt(r->in->n, 10 + 525);
	memset(r->rejects, 0, sizeof r->rejects);
	r->rejects[SOLARMAN_TRUNCATED] = 1;
	r->frames_before_finish = 0;
}

static void
recipe_stray_mid(struct recipe_out *r)
{
	/* The same stray 0xA5, but the stream goes on past the 525 bytes it
	 * claims: its end byte is wrong, and the frames it covered are found
	 * without waiting for the end. */
	static const uint8_t stray[] = {0xa5, 0x00, 0x02, 0x10, 0x42};

	bytes_add(r->in, stray, sizeof stray);
	add_fixture(r->in, r->want, "dongle-heartbeat-0x47");
	add_fixture(r->in, r->want, "server-heartbeat-reply-0x17");
	add_fixture(r->in, r->want, "solis-wifi-0x43");
	add_fixture(r->in, r->want, DEYE_DATA);
	add_fixture(r->in, r->want, "solis-handshake-0x41");
	ck_assert_uint_gt(r->in->n, 525);
	ck_assert_uint_ne(r->in->p[524], 0x15);
	memset(r->rejects, 0, sizeof r->rejects);
	r->rejects[SOLARMAN_BAD_END] = 1;
	r->frames_before_finish = (long)r->want->nframes;
}

static void
recipe_damaged(struct recipe_out *r)
{
	/* Damaged frames right before valid ones: a truncated one swallows the
	 * start of the next frame, which must still be found. */
	add_fixture(r->in, NULL, "lsw5-handshake-0x41-1");
	add_fixture(r->in, r->want, "lsw5-handshake-0x41-3");
	add_fixture(r->in, NULL, "deye-micro-heartbeat-reply-MALFORMED");
	add_fixture(r->in, r->want, "deye-micro-heartbeat-0x47");
	add_fixture(r->in, NULL, "dante-keepalive-0x47");
	add_fixture(r->in, r->want, "solis-ping-0x47");
	add_fixture(r->in, NULL, "solis-data-0x42-b");
	add_fixture(r->in, r->want, "solis-data-0x42-a");
	add_fixture(r->in, NULL, "lsw5ble-data-0x42");
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		r->rejects[k] = -1;
	r->frames_before_finish = (long)r->want->nframes;
}

static void
recipe_max(struct recipe_out *r)
{
	/* The longest frame (SOLARMAN_FRAME_MAX bytes) between heartbeats. */
	struct bytes *big = new_bytes();

	make_frame(big, 0x48, SOLARMAN_FRAME_MAX - SOLARMAN_OVERHEAD, 0xa5);
	ck_assert_uint_eq(big->n, SOLARMAN_FRAME_MAX);
	add_fixture(r->in, r->want, "solis-ping-0x47");
	bytes_add(r->in, big->p, big->n);
	on_frame(r->want, big->p, big->n);
	add_fixture(r->in, r->want, "solis-ping-0x47");
	memset(r->rejects, 0, sizeof r->rejects);
	r->frames_before_finish = (long)r->want->nframes;
}

static void
recipe_tail(struct recipe_out *r)
{
	/* Frames, then the first bytes of one that never comes. */
	static const uint8_t tail[] = {0xa5, 0x01};

	add_fixture(r->in, r->want, "local-stream-3-frames");
	bytes_add(r->in, tail, sizeof tail);
	memset(r->rejects, 0, sizeof r->rejects);
	r->rejects[SOLARMAN_TRUNCATED] = 1;
	r->frames_before_finish = (long)r->want->nframes;
}

static void
recipe_golden(struct recipe_out *r)
{
	/* Every golden frame (Deye, Solis and the rest, data real-time and
	 * historic), a little garbage before each: each comes out whole. */
	for (size_t i = 0; i < golden_hex.n; i++) {
		struct golden g = {NULL, 0, 0};
		size_t mark = nheld;

		read_golden_hex(golden_hex.v[i], &g);
		add_garbage(r->in, 1 + i % 5, (uint32_t)i + 7);
		bytes_add(r->in, g.frame->p, g.frame->n);
		expect_frames(r->want, g.frame->p, g.frame->n);
		while (nheld > mark) { /* the copy is all this keeps */
			nheld--;
			held[nheld].release(held[nheld].p);
			held[nheld].p = NULL;
		}
	}
	ck_assert_uint_gt(r->want->nframes, 30);
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		r->rejects[k] = -1;
	r->frames_before_finish = (long)r->want->nframes;
}

static const struct {
	const char *name;
	void (*build)(struct recipe_out *);
} recipes[] = {
	{"valid frames back to back", recipe_frames},
	{"the whole fixture file", recipe_file},
	{"garbage, TLS and absurd lengths", recipe_garbage},
	{"stray 0xA5, stream ends first", recipe_stray_end},
	{"stray 0xA5, stream goes on", recipe_stray_mid},
	{"damaged frames before valid ones", recipe_damaged},
	{"a frame of SOLARMAN_FRAME_MAX bytes", recipe_max},
	{"an unfinished header at the end", recipe_tail},
	{"every golden frame, garbage between", recipe_golden},
};

#define SEEDS 256

static void
same_outcome(const struct outcome *a, const struct outcome *b,
    const char *what, const char *mode, uint32_t seed)
{
	ck_assert_msg(a->seen.nframes == b->seen.nframes &&
	    a->seen.frames.n == b->seen.frames.n &&
	    mem_eq(a->seen.frames.p, b->seen.frames.p, a->seen.frames.n) &&
	    mem_eq(a->seen.len, b->seen.len,
	    a->seen.nframes * sizeof a->seen.len[0]),
	    "%s, %s (seed %u): frames differ from feeding it whole (%zu vs %zu)",
	    what, mode, seed, b->seen.nframes, a->seen.nframes);
	ck_assert_msg(a->seen.nrejects == b->seen.nrejects &&
	    mem_eq(a->seen.why, b->seen.why,
	    a->seen.nrejects * sizeof a->seen.why[0]),
	    "%s, %s (seed %u): rejects differ from feeding it whole (%zu vs %zu)",
	    what, mode, seed, b->seen.nrejects, a->seen.nrejects);
	ck_assert_msg(memcmp(&a->stats, &b->stats, sizeof a->stats) == 0,
	    "%s, %s (seed %u): stats differ from feeding it whole", what, mode,
	    seed);
	ck_assert_msg(a->frames_before_finish == b->frames_before_finish,
	    "%s, %s (seed %u): %zu frames before finish, whole %zu", what, mode,
	    seed, b->frames_before_finish, a->frames_before_finish);
}

START_TEST(test_chunking)
{
	const char *what = recipes[_i].name;
	struct recipe_out r = {new_bytes(), calloc(1, sizeof (struct seen)), {0}, 0};
	const struct outcome *whole, *o;

	ck_assert_ptr_nonnull(r.want);
	hold(r.want, release_seen);
	recipes[_i].build(&r);

	whole = decode_stream(r.in->p, r.in->n, FEED_WHOLE, 0);
	check_stats(whole, r.in->n, what);
	ck_assert_msg(whole->seen.nframes == r.want->nframes &&
	    whole->seen.frames.n == r.want->frames.n &&
	    mem_eq(whole->seen.frames.p, r.want->frames.p, r.want->frames.n),
	    "%s: %zu frames (%zu bytes), want %zu (%zu bytes)", what,
	    whole->seen.nframes, whole->seen.frames.n, r.want->nframes,
	    r.want->frames.n);
	ck_assert_uint_eq(whole->stats.frames, r.want->nframes);
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		ck_assert_msg(r.rejects[k] < 0 ||
		    whole->stats.rejects[k] == (uint64_t)r.rejects[k],
		    "%s: rejects[%s] %" PRIu64 ", want %ld", what, reject_kind[k],
		    whole->stats.rejects[k], r.rejects[k]);
	if (r.frames_before_finish >= 0)
		ck_assert_msg(whole->frames_before_finish ==
		    (size_t)r.frames_before_finish,
		    "%s: %zu frames before finish, want %ld", what,
		    whole->frames_before_finish, r.frames_before_finish);

	o = decode_stream(r.in->p, r.in->n, FEED_BYTES, 0);
	same_outcome(whole, o, what, "byte by byte", 0);
	for (uint32_t seed = 1; seed <= SEEDS; seed++) {
		/* Release each run's outcome before the next. */
		size_t mark = nheld;

		o = decode_stream(r.in->p, r.in->n, FEED_RANDOM, seed);
		same_outcome(whole, o, what, "random cuts", seed);
		while (nheld > mark) {
			nheld--;
			held[nheld].release(held[nheld].p);
			held[nheld].p = NULL;
		}
	}
}
END_TEST

/* Random bytes, 0xA5 included, around the frames: the frames come out
 * exactly, whatever stray candidates the garbage holds. */
START_TEST(test_chunking_random_garbage)
{
	uint32_t seed = (uint32_t)_i + 1, r = seed * 2246822519u | 1;
	struct bytes *in = new_bytes();
	struct seen *want = hold(calloc(1, sizeof *want), release_seen);
	static const char *const ids[] = {
		DEYE_DATA, "dongle-heartbeat-0x47", "server-heartbeat-reply-0x17",
		"solis-handshake-0x41", "solis-report-0x48",
	};
	const struct outcome *whole, *o;

	for (size_t i = 0; i < NELEM(ids); i++) {
		size_t n = rng_next(&r) % 200;

		for (size_t k = 0; k < n; k++)
			bytes_byte(in, (uint8_t)(rng_next(&r) >> 24));
		if (i % 2 == 0)
			bytes_byte(in, 0xa5); /* a stray start right before a frame */
		add_fixture(in, want, ids[i]);
	}
	whole = decode_stream(in->p, in->n, FEED_WHOLE, 0);
	check_stats(whole, in->n, "random garbage");
	ck_assert_msg(whole->seen.nframes == want->nframes &&
	    whole->seen.frames.n == want->frames.n &&
	    mem_eq(whole->seen.frames.p, want->frames.p, want->frames.n),
	    "seed %u: %zu frames, want %zu", seed, whole->seen.nframes,
	    want->nframes);
	o = decode_stream(in->p, in->n, FEED_BYTES, 0);
	same_outcome(whole, o, "random garbage", "byte by byte", seed);
	o = decode_stream(in->p, in->n, FEED_RANDOM, seed);
	same_outcome(whole, o, "random garbage", "random cuts", seed);
}
END_TEST

/* Frame length limits (docs/solarman-v5.md, section 2; solarman.h: 4096). */
static const struct {
	size_t plen;
	bool valid;
} limits[] = {
	{0, true},
	{1, true},
	{SOLARMAN_FRAME_MAX - SOLARMAN_OVERHEAD - 1, true},
	{SOLARMAN_FRAME_MAX - SOLARMAN_OVERHEAD, true},
	{SOLARMAN_FRAME_MAX - SOLARMAN_OVERHEAD + 1, false},
	{0xffff, false},
};

START_TEST(test_length_limits)
{
	struct bytes *f = new_bytes();
	const struct outcome *o;

	make_frame(f, 0x47, limits[_i].plen, 0x00);
	o = decode_stream(f->p, f->n, FEED_WHOLE, 0);
	check_stats(o, f->n, "limits");
	if (limits[_i].valid) {
		ck_assert_uint_eq(o->seen.nframes, 1);
		ck_assert_uint_eq(o->seen.frames.n, f->n);
		ck_assert_uint_eq(o->seen.nrejects, 0);
	} else {
		ck_assert_uint_eq(o->seen.nframes, 0);
		ck_assert_msg(o->seen.nrejects >= 1 &&
		    o->seen.why[0] == SOLARMAN_BAD_LENGTH,
		    "payload %zu: first reject %s, not SOLARMAN_BAD_LENGTH",
		    limits[_i].plen,
		    o->seen.nrejects ? reject_kind[o->seen.why[0]] : "none");
		/* Rejected on its header, before its bytes could arrive. */
		ck_assert_uint_ge(o->rejects_before_finish, 1);
	}
	o = decode_stream(f->p, f->n, FEED_BYTES, 0);
	ck_assert_uint_eq(o->seen.nframes, limits[_i].valid ? 1 : 0);
}
END_TEST

/*
 * The held bytes' buffer: none while every frame comes whole in one chunk;
 * a frame cut after its header gets a buffer as big as it claims, kept for
 * the next cut frame; a cut inside the header holds only what came.
 */
START_TEST(test_hold_buffer_sized)
{
	struct seen *s = hold(calloc(1, sizeof *s), release_seen);
	struct solarman_stream *st = hold(new_stream(), release_stream);
	struct solarman_handler h = {on_frame, on_reject, s};
	const struct fixture *f = fixture_get("solis-wifi-0x43");
	const uint8_t *p = f->bytes.p;
	size_t n = f->bytes.n;

	ck_assert_uint_gt(n, 40);
	solarman_stream_feed(st, p, n, &h);
	solarman_stream_feed(st, p, n, &h);
	ck_assert_uint_eq(s->nframes, 2);
	ck_assert_ptr_null(st->buf);
	ck_assert_uint_eq(st->cap, 0);

	solarman_stream_feed(st, p, 2, &h);       /* inside the header */
	ck_assert_uint_eq(st->cap, 2);
	solarman_stream_feed(st, p + 2, 20, &h);  /* the length is known */
	ck_assert_uint_eq(st->cap, n);
	solarman_stream_feed(st, p + 22, n - 22, &h);
	ck_assert_uint_eq(s->nframes, 3);
	ck_assert_uint_eq(st->len, 0);

	solarman_stream_feed(st, p, 30, &h);      /* cut again: no growth */
	ck_assert_uint_eq(st->cap, n);
	solarman_stream_feed(st, p + 30, n - 30, &h);
	ck_assert_uint_eq(s->nframes, 4);
	ck_assert_uint_eq(st->stats.skipped, 0);
	solarman_stream_free(st);
	ck_assert_ptr_null(st->buf);
	ck_assert_uint_eq(st->stats.frames, 4);
}
END_TEST

/* A handler without a reject callback: counted all the same. */
START_TEST(test_no_reject_callback)
{
	struct bytes *in = new_bytes();
	struct seen *s = hold(calloc(1, sizeof *s), release_seen);
	struct solarman_stream *st = hold(new_stream(), release_stream);
	struct solarman_handler h = {on_frame, NULL, s};

	add_fixture(in, NULL, "dante-keepalive-0x47");
	add_fixture(in, NULL, "solis-ping-0x47");
	add_fixture(in, NULL, "lsw5-handshake-0x41-1");
	solarman_stream_feed(st, in->p, in->n, &h);
	solarman_stream_finish(st, &h);
	ck_assert_uint_eq(s->nframes, 1);
	ck_assert_uint_eq(st->stats.rejects[SOLARMAN_BAD_CHECKSUM], 1);
	ck_assert_uint_eq(st->stats.rejects[SOLARMAN_TRUNCATED], 1);
	/* After finish the stream is empty and can start again. */
	solarman_stream_feed(st, fixture_get("solis-ping-0x47")->bytes.p,
	    fixture_get("solis-ping-0x47")->bytes.n, &h);
	ck_assert_uint_eq(s->nframes, 2);
}
END_TEST

/* ---- frame parsing, checksum, names ---- */

static const struct {
	const char *hex;
	int rc;
	uint16_t control;
	uint8_t seq0, seq1;
	uint32_t serial;
	size_t plen;
} parses[] = {
	{"a501001047f585579af6a5005e15", 0, 0x4710, 0xf5, 0x85, 2784402007u, 1},
	{"a50a001017f685579af6a50001ab745668780000008e15", 0, 0x1710, 0xf6, 0x85,
	    2784402007u, 10},
	{"a50000104200002c9ad6ead815", 0, 0x4210, 0, 0, 3939932716u, 0},
	/* Not frames: short, bad start, length field disagrees. */
	{"a50000104200002c9ad6ea00", -1, 0, 0, 0, 0, 0},
	{"a601001047000000000000000015", -1, 0, 0, 0, 0, 0},
	{"a502001047f585579af6a5005e15", -1, 0, 0, 0, 0, 0},
	{"a500001047f585579af6a5005e15", -1, 0, 0, 0, 0, 0},
	{"", -1, 0, 0, 0, 0, 0},
};

START_TEST(test_frame_parse)
{
	struct bytes *b = new_bytes();
	struct solarman_frame f;

	hex_bytes(b, parses[_i].hex);
	ck_assert_int_eq(solarman_frame_parse(b->p, b->n, &f), parses[_i].rc);
	if (parses[_i].rc != 0)
		return;
	ck_assert_uint_eq(f.control, parses[_i].control);
	ck_assert_uint_eq(f.type, parses[_i].control >> 8);
	ck_assert_uint_eq(f.seq[0], parses[_i].seq0);
	ck_assert_uint_eq(f.seq[1], parses[_i].seq1);
	ck_assert_uint_eq(f.serial, parses[_i].serial);
	ck_assert_uint_eq(f.payload.n, parses[_i].plen);
	ck_assert(f.payload.n == 0 || f.payload.p == b->p + 11);
	ck_assert_uint_eq(solarman_checksum(b->p, b->n), b->p[b->n - 2]);
}
END_TEST

START_TEST(test_reject_names)
{
	static const char *const names[] = {"length", "checksum", "end", "truncated"};

	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		ck_assert_str_eq(solarman_reject_name((enum solarman_reject)k),
		    names[k]);
	ck_assert_str_eq(solarman_reject_name(SOLARMAN_REJECT_KINDS), "?");
}
END_TEST

/* A frame that is not one gives no event, and *time_ms is received_ms. */
START_TEST(test_event_not_a_frame)
{
	static const uint8_t junk[] = {0xa5, 0x05, 0x00, 0x10, 0x47};
	struct event_meta m = test_meta(0);
	int64_t t = 0;

	ck_assert_ptr_null(solarman_event(junk, sizeof junk, &m, &t));
	ck_assert_int_eq(t, RECEIVED_MS);
}
END_TEST

static const struct {
	const char *hex;
	const char *reason;
} undecodable[] = {
	{"160303007f0100007b0303", "tls"},
	{"16", "tls"},  /* a first read of one byte: the tap gives up on it */
};

START_TEST(test_undecodable)
{
	struct bytes *b = new_bytes();
	struct event_meta m = test_meta(1);
	json_t *ev;

	hex_bytes(b, undecodable[_i].hex);
	ev = hold_json(solarman_undecodable_event(b->p, b->n, &m));
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "type")),
	    "undecodable");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "protocol")),
	    "solarman");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "reason")),
	    undecodable[_i].reason);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "head.hex")),
	    undecodable[_i].hex);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "direction")),
	    "down");
}
END_TEST

/* ---- the time reply (docs/solarman-v5.md, section 9) ---- */

static const struct {
	const char *request; /* fixture id */
	const char *reply;   /* the oracle */
	uint32_t unix_time;
	int32_t tz_min;
	const char *time;
} oracles[] = {
	{"dongle-heartbeat-0x47",
	    "a50a001017f685579af6a50001ab745668780000008e15", 1750496427u, 120,
	    "2025-06-21T09:00:27Z"},
	{DEYE_DATA, "a50a00101216162c9ad6ea0101db251466000000005a15",
	    1712596443u, 0, "2024-04-08T17:14:03Z"},
};

/* The reply to req by the table of docs/solarman-v5.md, section 9, built
 * here. */
static void
build_reply(struct bytes *out, const uint8_t *req, uint32_t now, int32_t tz)
{
	uint32_t utz = (uint32_t)tz;
	const uint8_t head[] = {
		0xa5, 0x0a, 0x00, 0x10, (uint8_t)(req[4] - 0x30),
		(uint8_t)(req[5] + 1), req[6], req[7], req[8], req[9], req[10],
		req[11], 0x01,
		(uint8_t)now, (uint8_t)(now >> 8), (uint8_t)(now >> 16),
		(uint8_t)(now >> 24),
		(uint8_t)utz, (uint8_t)(utz >> 8), (uint8_t)(utz >> 16),
		(uint8_t)(utz >> 24), 0, 0x15,
	};

	out->n = 0;
	bytes_add(out, head, sizeof head);
	out->p[21] = sum_of(out->p, out->n);
}

/* The layout of docs/solarman-v5.md, section 9, gives the oracle bytes. */
START_TEST(test_reply_layout)
{
	const struct fixture *req = fixture_get(oracles[_i].request);
	struct bytes *want = new_bytes(), *got = new_bytes();

	hex_bytes(want, oracles[_i].reply);
	build_reply(got, req->bytes.p, oracles[_i].unix_time, oracles[_i].tz_min);
	ck_assert_str_eq(to_hex(got->p, got->n), oracles[_i].reply);
	ck_assert_uint_eq(solarman_checksum(want->p, want->n), want->p[21]);
	ck_assert(solarman_is_reply(want->p[4]));
	ck_assert(!solarman_is_reply(req->bytes.p[4]));
}
END_TEST

START_TEST(test_reply_decode)
{
	const struct fixture *req = fixture_get(oracles[_i].request);
	struct bytes *b = new_bytes();
	const struct outcome *o;
	struct event_meta m = test_meta(1);
	int64_t t = 0;
	char control[8], seq[8];
	json_t *ev;
	uint32_t serial = (uint32_t)req->bytes.p[7] |
	    (uint32_t)req->bytes.p[8] << 8 | (uint32_t)req->bytes.p[9] << 16 |
	    (uint32_t)req->bytes.p[10] << 24;

	hex_bytes(b, oracles[_i].reply);
	o = decode_stream(b->p, b->n, FEED_BYTES, 0);
	ck_assert_uint_eq(o->seen.nframes, 1);
	ck_assert_uint_eq(o->seen.nrejects, 0);
	ev = hold_json(solarman_event(o->seen.frames.p, o->seen.frames.n, &m, &t));
	ck_assert_ptr_nonnull(ev);
	snprintf(control, sizeof control, "0x%02x10", req->bytes.p[4] - 0x30);
	snprintf(seq, sizeof seq, "%02x %02x", (uint8_t)(req->bytes.p[5] + 1),
	    req->bytes.p[6]);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), "reply");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "frame.control")),
	    control);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "frame.seq")), seq);
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "logger.serial")),
	    serial);
	ck_assert_msg(json_is_integer(json_object_get(ev, "reply.unix")), "reply.unix");
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "reply.unix")),
	    oracles[_i].unix_time);
	ck_assert_msg(json_is_integer(json_object_get(ev, "reply.tz_offset_min")),
	    "reply.tz_offset_min");
	ck_assert_int_eq(json_integer_value(json_object_get(ev,
	    "reply.tz_offset_min")), oracles[_i].tz_min);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "reply.time")),
	    oracles[_i].time);
	ck_assert_ptr_null(json_object_get(ev, "payload.hex"));
	ck_assert_int_eq(t, (int64_t)oracles[_i].unix_time * 1000);
}
END_TEST

/* A time-zone offset west of UTC is a negative number of minutes. */
START_TEST(test_reply_negative_tz)
{
	struct bytes *b = new_bytes();
	struct event_meta m = test_meta(1);
	int64_t t = 0;
	json_t *ev;

	build_reply(b, fixture_get("dongle-heartbeat-0x47")->bytes.p,
	    1750496427u, -300);
	ev = hold_json(solarman_event(b->p, b->n, &m, &t));
	ck_assert_ptr_nonnull(ev);
	ck_assert_int_eq(json_integer_value(json_object_get(ev,
	    "reply.tz_offset_min")), -300);
}
END_TEST

/* The reply types, and only they (request type - 0x30), over all 256. */
START_TEST(test_is_reply)
{
	static const uint8_t requests[] = {0x41, 0x42, 0x43, 0x45, 0x47, 0x48};

	for (unsigned t = 0; t < 256; t++) {
		bool want = false;

		for (size_t i = 0; i < NELEM(requests); i++)
			want |= t == requests[i] - 0x30u;
		ck_assert_msg(solarman_is_reply((uint8_t)t) == want,
		    "type 0x%02x %s", t, want ? "is a reply" : "is not a reply");
	}
}
END_TEST

/* ---- the suite ---- */

void
solarman_suite_cleanup(void)
{
	for (size_t i = 0; i < fixtures.n; i++) {
		free(fixtures.v[i].id);
		free(fixtures.v[i].verify);
		free(fixtures.v[i].result);
		bytes_free(&fixtures.v[i].bytes);
	}
	free(fixtures.v);
	fixtures.v = NULL;
	fixtures.n = 0;
	free_names(&golden_hex);
	free_names(&golden_json);
}

static TCase *
tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, NULL, release_held);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *
solarman_suite(void)
{
	Suite *s = suite_create("solarman");
	TCase *tc;

	load_fixtures(FIXTURES);
	list_names(GOLDEN, ".hex", &golden_hex);
	list_names(GOLDEN, ".json", &golden_json);

	tc = tcase(s, "fixtures");
	tcase_add_test(tc, test_fixture_file);
	tcase_add_loop_test(tc, test_fixture_table, 0, NELEM(fixture_expect));
	tcase_add_loop_test(tc, test_fixture_verify, 0, (int)fixtures.n);
	tcase_add_loop_test(tc, test_fixture_decode, 0, (int)fixtures.n);

	tc = tcase(s, "golden");
	tcase_add_test(tc, test_golden_present);
	tcase_add_loop_test(tc, test_golden, 0, (int)golden_hex.n);
	tcase_add_test(tc, test_event_ids);

	tc = tcase(s, "variants");
	tcase_add_loop_test(tc, test_variant, 0, NELEM(variants));
	tcase_add_loop_test(tc, test_wifi_signal, 0, NELEM(wifi_signal));
	tcase_add_test(tc, test_sensor_table_fits);
	tcase_add_test(tc, test_sensor_sofar);
	tcase_add_test(tc, test_sensor_unknown);
	tcase_add_test(tc, test_sensor_short);
	tcase_add_test(tc, test_sensor_solis_signed);

	tc = tcase(s, "chunking");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_chunking, 0, NELEM(recipes));
	tcase_add_loop_test(tc, test_chunking_random_garbage, 0, 64);
	tcase_add_loop_test(tc, test_length_limits, 0, NELEM(limits));
	tcase_add_test(tc, test_no_reject_callback);
	tcase_add_test(tc, test_hold_buffer_sized);

	tc = tcase(s, "frame");
	tcase_add_loop_test(tc, test_frame_parse, 0, NELEM(parses));
	tcase_add_test(tc, test_reject_names);
	tcase_add_test(tc, test_event_not_a_frame);
	tcase_add_loop_test(tc, test_undecodable, 0, NELEM(undecodable));

	tc = tcase(s, "reply");
	tcase_add_loop_test(tc, test_reply_layout, 0, NELEM(oracles));
	tcase_add_loop_test(tc, test_reply_decode, 0, NELEM(oracles));
	tcase_add_test(tc, test_reply_negative_tz);
	tcase_add_test(tc, test_is_reply);

	return s;
}
