/*
 * check_envoy.c - unit tests of the Envoy decoders (envoy.c) and of the
 * spool files (spool.c), against docs/envoy.md and the samples in data/envoy/.
 *
 * Expected values come from the samples' text, not from running the code:
 * element counts and dates are found in the XML by plain string search,
 * reading columns are written as docs/envoy.md scales them (250102 mV is
 * 250102 / 1000.0 V), times as `date -u -d @N` prints them.  The REAL_
 * samples start with a provenance line that is not part of the payload.
 * Paths are relative to tests/, where make unit runs the binary.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>
#include <zlib.h>

#include "event.h"
#include "suites.h"
#include "proto/envoy.h"
#include "proto/envoy_spool.h"

#define NELEM(a) (sizeof (a) / sizeof (a)[0])
#define DATA "data/envoy/"
#define REPORT_2012 DATA "REAL_oddbit_2012_perf_report_webcomm3.0.xml.txt"
#define RESPONSE_2012 DATA "REAL_oddbit_2012_perf_report_response.xml.txt"
#define REPORT_460 DATA "SYNTHETIC_perf_report_4.6.0.xml"
#define REQUEST_460 DATA "SYNTHETIC_request_performance_report.http.bin"
#define RESPONSE_460 DATA "SYNTHETIC_response_performance_report.http.bin"
#define RECEIVED_MS INT64_C(1750000000123)
#define TARGET_30 "/emu_reports/performance_report?webcomm_version=3.0"

/* ---- files ---- */

struct file {
	char *p;   /* NUL-terminated */
	size_t n;
};

static struct file
slurp(const char *path)
{
	struct file f = {NULL, 0};
	FILE *in = fopen(path, "rb");
	long len;

	ck_assert_msg(in != NULL, "%s: %s (run from tests/)", path,
	    strerror(errno));
	ck_assert(fseek(in, 0, SEEK_END) == 0 && (len = ftell(in)) >= 0);
	rewind(in);
	f.n = (size_t)len;
	f.p = malloc(f.n + 1);
	ck_assert_ptr_nonnull(f.p);
	ck_assert_uint_eq(fread(f.p, 1, f.n, in), f.n);
	f.p[f.n] = '\0';
	fclose(in);
	return f;
}

/* A REAL_ sample without its provenance line. */
static struct file
slurp_real(const char *path)
{
	struct file f = slurp(path);
	char *nl = strchr(f.p, '\n');

	ck_assert(strncmp(f.p, "# PROVENANCE", 12) == 0 && nl != NULL);
	f.n -= (size_t)(nl + 1 - f.p);
	memmove(f.p, nl + 1, f.n + 1);
	return f;
}

/* The body of an HTTP message in a sample, after its empty line. */
static const uint8_t *
http_body(const struct file *f, size_t *n)
{
	const char *end = strstr(f->p, "\r\n\r\n");

	ck_assert_ptr_nonnull(end);
	*n = f->n - (size_t)(end + 4 - f->p);
	return (const uint8_t *)end + 4;
}

/* How many times s occurs in text. */
static size_t
count_of(const char *text, const char *s)
{
	size_t k = 0;

	for (const char *p = text; (p = strstr(p, s)) != NULL; p++)
		k++;
	return k;
}

/* ---- envoy_inflate ---- */

/*
 * The sample request's body inflates to form data whose body field is the
 * 4.6.0 report, byte for byte; so the sample pair checks inflate and the
 * form decoding together.
 */
START_TEST(test_inflate_sample)
{
	struct file req = slurp(REQUEST_460), xml = slurp(REPORT_460);
	size_t n, outlen, flen;
	const uint8_t *body = http_body(&req, &n);
	uint8_t *out, *field;
	bool over = true;

	ck_assert_ptr_nonnull(strstr(req.p, "Content-Length: 545\r\n"));
	ck_assert_uint_eq(n, 545);
	ck_assert_int_eq(envoy_inflate(body, n, 1 << 20, &out, &outlen, &over), 0);
	ck_assert(!over);
	ck_assert_uint_eq(out[outlen], '\0');
	ck_assert(strncmp((char *)out, "body=%3C%3Fxml%20", 17) == 0);
	ck_assert_int_eq(envoy_form_field(out, outlen, "body", &field, &flen), 0);
	ck_assert_uint_eq(flen, xml.n);
	ck_assert(memcmp(field, xml.p, xml.n) == 0);
	free(field);
	free(out);

	/* Every shorter prefix is a truncated stream. */
	for (size_t k = 0; k < n; k++) {
		over = true;
		ck_assert_int_eq(envoy_inflate(body, k, 1 << 20, &out, &outlen,
		    &over), -1);
		ck_assert(!over);
		ck_assert_ptr_null(out);
	}
	free(req.p);
	free(xml.p);
}
END_TEST

/* Compressed here, with zlib's own compress(). */
static uint8_t *
deflated(const void *p, size_t n, size_t *zn)
{
	uLongf len = compressBound((uLong)n);
	uint8_t *z = malloc(len);

	ck_assert_ptr_nonnull(z);
	ck_assert_int_eq(compress(z, &len, p, (uLong)n), Z_OK);
	*zn = len;
	return z;
}

/* Sizes around the inflater's first buffer (4096) and its doublings. */
static const size_t round_trip_sizes[] = {
	0, 1, 4095, 4096, 4097, 100000, 1 << 20
};

START_TEST(test_inflate_round_trip)
{
	size_t n = round_trip_sizes[_i], zn, outlen;
	uint8_t *data = malloc(n + 1), *z, *out;
	uint32_t x = 12345;
	bool over;

	ck_assert_ptr_nonnull(data);
	/* Half noise, half runs: both stored and well-compressed blocks. */
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (i / 1000) % 2 ? (uint8_t)(x >> 16) : (uint8_t)'r';
	}
	z = deflated(data, n, &zn);

	ck_assert_int_eq(envoy_inflate(z, zn, n, &out, &outlen, &over), 0);
	ck_assert(!over);
	ck_assert_uint_eq(outlen, n);
	ck_assert(n == 0 || memcmp(out, data, n) == 0);
	ck_assert_uint_eq(out[n], '\0');
	free(out);

	if (n > 0) {
		ck_assert_int_eq(envoy_inflate(z, zn, n - 1, &out, &outlen,
		    &over), -1);
		ck_assert(over);
		ck_assert_ptr_null(out);
		ck_assert_uint_eq(outlen, 0);

		/* The Adler-32 at the end, damaged. */
		z[zn - 1] ^= 0x01;
		ck_assert_int_eq(envoy_inflate(z, zn, n, &out, &outlen, &over),
		    -1);
		ck_assert(!over);
		/* The end cut off. */
		ck_assert_int_eq(envoy_inflate(z, zn - 5, n, &out, &outlen,
		    &over), -1);
		ck_assert(!over);
	}
	free(z);
	free(data);
}
END_TEST

START_TEST(test_inflate_not_zlib)
{
	static const struct {
		const char *p;
		size_t n;
	} bad[] = {
		{"", 0},
		{"x", 1},
		{"hello, world", 12},
		{"<?xml version='1.0'?><perf_report/>", 36},
		{"\x1f\x8b\x08\x00\x00\x00\x00\x00", 8}, /* gzip, not zlib */
		{"\x78\x9c", 2},                          /* a header alone */
	};
	uint8_t *out;
	size_t outlen;
	bool over;

	for (size_t i = 0; i < NELEM(bad); i++) {
		over = true;
		ck_assert_int_eq(envoy_inflate((const uint8_t *)bad[i].p,
		    bad[i].n, 4096, &out, &outlen, &over), -1);
		ck_assert_msg(!over, "row %zu", i);
		ck_assert_ptr_null(out);
	}
}
END_TEST

/* ---- envoy_form_field ---- */

static const struct {
	const char *form, *name;
	const char *want; /* NULL: no such field */
	size_t want_len;
} form_rows[] = {
	{"a=1&body=two&c=3", "a", "1", 1},
	{"a=1&body=two&c=3", "body", "two", 3},
	{"a=1&body=two&c=3", "c", "3", 1},
	{"a=1&body=two&c=3", "d", NULL, 0},
	{"a=1&body=two&c=3", "bod", NULL, 0},
	{"", "body", NULL, 0},
	{"body", "body", NULL, 0},
	{"body&x=1", "body", NULL, 0},
	{"body=", "body", "", 0},
	{"xbody=1&body=2", "body", "2", 1},
	{"bodyx=1&body=2", "body", "2", 1},
	{"x=body%3D1&body=2", "body", "2", 1},
	{"body=%41%62%7e", "body", "Ab~", 3},
	{"body=%3c%3C", "body", "<<", 2},
	{"body=a+b++c", "body", "a b  c", 6},
	{"body=%2B%26x%3D1", "body", "+&x=1", 5},
	{"body=a%00b", "body", "a\0b", 3},
	/* Not an escape: kept as sent, as a browser's form decoding does. */
	{"body=%zz", "body", "%zz", 3},
	{"body=1%4", "body", "1%4", 3},
	{"body=1%", "body", "1%", 2},
	{"body=%4&x=1", "body", "%4", 2},
	{"body=%%41", "body", "%A", 2},
	{"a=1&body=first&body=second", "body", "first", 5},
};

START_TEST(test_form_field)
{
	const char *form = form_rows[_i].form;
	uint8_t *copy = malloc(strlen(form) + 1), *out = NULL;
	size_t len = 12345;
	int r;

	/* A heap copy without its NUL: a read past the form is an error. */
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, form, strlen(form));
	r = envoy_form_field(copy, strlen(form), form_rows[_i].name, &out, &len);
	if (form_rows[_i].want == NULL) {
		ck_assert_int_eq(r, -1);
	} else {
		ck_assert_int_eq(r, 0);
		ck_assert_uint_eq(len, form_rows[_i].want_len);
		ck_assert(memcmp(out, form_rows[_i].want, len) == 0);
		ck_assert_uint_eq(out[len], '\0');
		free(out);
	}
	free(copy);
}
END_TEST

/* ---- envoy_report_events ---- */

struct emitted {
	json_t *events;   /* each event, with "time_ms" added */
};

static void
collect(void *arg, json_t *ev, int64_t time_ms)
{
	struct emitted *e = arg;

	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_null(json_object_get(ev, "time_ms"));
	json_object_set_new(ev, "time_ms", json_integer(time_ms));
	json_array_append_new(e->events, ev);
}

static struct envoy_report_ctx
report_ctx(const char *target)
{
	struct envoy_report_ctx ctx = {
		.meta = {.listener = "envoy", .conn_id = 7, .peer = "192.0.2.10",
		    .direction = 0, .received_ms = RECEIVED_MS},
		.target = target,
	};

	return ctx;
}

/* The events of a report (a new array), or NULL with err. */
static json_t *
report_events(const char *xml, size_t n, const char *target, int *r,
    char *err, size_t errlen)
{
	struct envoy_report_ctx ctx = report_ctx(target);
	struct emitted e = {json_array()};

	ck_assert_ptr_nonnull(e.events);
	err[0] = '\0';
	*r = envoy_report_events(xml, n, &ctx, collect, &e, err, errlen);
	return e.events;
}

/* The events of a report that must be good. */
static json_t *
good_events(const char *xml, size_t n, const char *target)
{
	char err[256];
	int r;
	json_t *events = report_events(xml, n, target, &r, err, sizeof err);

	ck_assert_msg(r >= 0, "%s", err);
	ck_assert_uint_eq((size_t)r, json_array_size(events));
	return events;
}

/* The value of key in ev, which must be of type t. */
static json_t *
typed(json_t *ev, const char *key, json_type t)
{
	json_t *v = json_object_get(ev, key);

	ck_assert_msg(v != NULL && json_typeof(v) == t,
	    "%s: missing or of type %d, not %d", key,
	    v != NULL ? (int)json_typeof(v) : -1, (int)t);
	return v;
}

static const char *
str_of(json_t *ev, const char *key)
{
	return json_string_value(typed(ev, key, JSON_STRING));
}

static json_int_t
int_of(json_t *ev, const char *key)
{
	return json_integer_value(typed(ev, key, JSON_INTEGER));
}

static double
real_of(json_t *ev, const char *key)
{
	return json_real_value(typed(ev, key, JSON_REAL));
}

struct key_int {
	const char *key;
	json_int_t v;
};

/* Integer values of ev, each as the sample writes it. */
static void
check_ints(json_t *ev, const struct key_int *kv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(int_of(ev, kv[i].key) == kv[i].v, "%s", kv[i].key);
}

static size_t
count_type(json_t *events, const char *type)
{
	size_t i, k = 0;
	json_t *ev;

	json_array_foreach(events, i, ev)
		k += strcmp(str_of(ev, "type"), type) == 0;
	return k;
}

/*
 * What every event of a report has: the meta given, a unique id, the
 * envoy's serial and the report's time; and its own time: date ×1000 when
 * it has one, else the report's.
 */
static void
check_common(json_t *events, const char *serial, int64_t report_ms,
    const char *report_time)
{
	size_t i, j;
	json_t *ev, *other;

	ck_assert_str_eq(str_of(json_array_get(events, 0), "type"),
	    "envoy_report");
	json_array_foreach(events, i, ev) {
		const char *date_key = NULL;
		json_int_t own;

		ck_assert_str_eq(str_of(ev, "listener"), "envoy");
		ck_assert_int_eq(int_of(ev, "conn.id"), 7);
		ck_assert_str_eq(str_of(ev, "conn.peer"), "192.0.2.10");
		ck_assert_str_eq(str_of(ev, "direction"), "up");
		ck_assert_str_eq(str_of(ev, "received"), "2025-06-15T15:06:40.123Z");
		ck_assert_str_eq(str_of(ev, "envoy.serial"), serial);
		ck_assert_str_eq(str_of(ev, "report.time"), report_time);
		for (j = 0; j < i; j++) {
			other = json_array_get(events, j);
			ck_assert_str_ne(str_of(ev, "id"), str_of(other, "id"));
		}
		if (json_object_get(ev, "event.unix") != NULL)
			date_key = "event.unix";
		else if (json_object_get(ev, "reading.unix") != NULL)
			date_key = "reading.unix";
		else if (json_object_get(ev, "interval.end_unix") != NULL)
			date_key = "interval.end_unix";
		own = date_key ? int_of(ev, date_key) * 1000 : report_ms;
		ck_assert_int_eq(int_of(ev, "time_ms"), own);
	}
}

/* The numbers after each attr=' or attr=" in text, in document order. */
static size_t
dates_in(const char *text, const char *attr, long long *v, size_t max)
{
	size_t k = 0, alen = strlen(attr);

	for (const char *p = text; (p = strstr(p, attr)) != NULL; p += alen) {
		if (p[alen] != '=' || (p[alen + 1] != '\'' && p[alen + 1] != '"'))
			continue;
		ck_assert_uint_lt(k, max);
		v[k++] = strtoll(p + alen + 2, NULL, 10);
	}
	return k;
}

START_TEST(test_report_2012)
{
	static const struct key_int device_ints[] = {
		{"device.image_bits", 131072}, {"device.device_type", 1},
		{"device.admin_state", 1}, {"device.condition_flags", 2359296},
		{"device.observed_flags", 0}, {"device.control_bits", 0},
	};
	struct file xml = slurp_real(REPORT_2012);
	json_t *events, *ev, *ch;
	long long dates[16];
	size_t ndates, i, k = 0;
	size_t ndevice = count_of(xml.p, "<device "),
	    nevent = count_of(xml.p, "<event ");

	/* The sample, counted by hand and by search: 20 devices, 8 events. */
	ck_assert_uint_eq(ndevice, 20);
	ck_assert_uint_eq(nevent, 8);
	ck_assert_uint_eq(count_of(xml.p, "<channel "), 20);
	ck_assert_uint_eq(count_of(xml.p, "<interval"), 0);
	ck_assert_uint_eq(count_of(xml.p, "<reading"), 0);

	event_ids_init();
	events = good_events(xml.p, xml.n, TARGET_30);
	ck_assert_uint_eq(json_array_size(events), 1 + ndevice + nevent);
	ck_assert_uint_eq(count_type(events, "envoy_report"), 1);
	ck_assert_uint_eq(count_type(events, "envoy_device"), ndevice);
	ck_assert_uint_eq(count_type(events, "envoy_event"), nevent);
	/* report_timestamp='1329134202' */
	check_common(events, "123456115374", INT64_C(1329134202000),
	    "2012-02-13T11:56:42Z");

	ev = json_array_get(events, 0);
	ck_assert_int_eq(int_of(ev, "time_ms"), INT64_C(1329134202000));
	ck_assert_int_eq(int_of(ev, "report.unix"), 1329134202);
	ck_assert_str_eq(str_of(ev, "report.webcomm_version"), "3.0");
	ck_assert_str_eq(str_of(ev, "http.target"), TARGET_30);
	ck_assert_int_eq(int_of(ev, "count.devices"), 20);
	ck_assert_int_eq(int_of(ev, "count.events"), 8);
	ck_assert_int_eq(int_of(ev, "count.intervals"), 0);
	ck_assert_int_eq(int_of(ev, "count.readings"), 0);
	ck_assert_str_eq(str_of(ev, "envoy.ip_addr"), "192.168.1.166");
	ck_assert_str_eq(str_of(ev, "envoy.mac_addr"), "00:11:22:33:44:55");
	ck_assert_str_eq(str_of(ev, "envoy.timezone"), "US/Eastern");
	ck_assert_str_eq(str_of(ev, "envoy.part_num"), "800-00024-r04");
	ck_assert_str_eq(str_of(ev, "envoy.sw_version"), "R3.0.0 (9720d7)");

	/* The events come first in the sample, each at its own date. */
	ndates = dates_in(xml.p, "event_date", dates, NELEM(dates));
	ck_assert_uint_eq(ndates, nevent);
	for (i = 1; i <= nevent; i++) {
		ev = json_array_get(events, i);
		ck_assert_str_eq(str_of(ev, "type"), "envoy_event");
		ck_assert_int_eq(int_of(ev, "time_ms"), dates[k++] * 1000);
		ck_assert_int_eq(int_of(ev, "event.id"), 220 + (json_int_t)i);
	}
	/* <event correlation_id='161' event_state='1' id='221'
	 *  event_code='10009' eqid='123456102635' serial_num='123456102635'
	 *  event_date='1329134118' /> */
	ev = json_array_get(events, 1);
	ck_assert_int_eq(int_of(ev, "event.code"), 10009);
	ck_assert_str_eq(str_of(ev, "event.name"), "microinverter sleeping");
	ck_assert_int_eq(int_of(ev, "event.state"), 1);
	ck_assert_str_eq(str_of(ev, "event.state_name"), "cleared");
	ck_assert_int_eq(int_of(ev, "event.correlation_id"), 161);
	ck_assert_str_eq(str_of(ev, "event.eqid"), "123456102635");
	ck_assert_str_eq(str_of(ev, "event.serial_num"), "123456102635");
	ck_assert_str_eq(str_of(ev, "event.time"), "2012-02-13T11:55:18Z");
	ck_assert_int_eq(int_of(ev, "event.unix"), 1329134118);
	/* id='226' event_code='101' event_state='2' */
	ev = json_array_get(events, 6);
	ck_assert_str_eq(str_of(ev, "event.name"), "grid instability");
	ck_assert_str_eq(str_of(ev, "event.state_name"), "raised");
	ck_assert_ptr_null(json_object_get(ev, "event.correlation_id"));
	/* id='227' event_code='509' event_state='0' */
	ev = json_array_get(events, 7);
	ck_assert_str_eq(str_of(ev, "event.name"), "power-on reset");
	ck_assert_str_eq(str_of(ev, "event.state_name"), "one-shot");

	/* <device image_bits='131072' device_type='1' admin_state='1'
	 *  condition_flags='2359296' part_num='800-00103-r05'
	 *  observed_flags='0' eqid='123456105041' control_bits='0'>
	 *  <channel channel_type='1' condition_flags='16' observed_flags='0'
	 *  eqid='123456105041.1' control_bits='0' /> */
	ev = json_array_get(events, 1 + nevent);
	ck_assert_str_eq(str_of(ev, "type"), "envoy_device");
	ck_assert_int_eq(int_of(ev, "time_ms"), INT64_C(1329134202000));
	ck_assert_str_eq(str_of(ev, "device.eqid"), "123456105041");
	ck_assert_str_eq(str_of(ev, "device.part_num"), "800-00103-r05");
	check_ints(ev, device_ints, NELEM(device_ints));
	ck_assert_uint_eq(json_array_size(json_object_get(ev,
	    "device.channels")), 1);
	ch = json_array_get(json_object_get(ev, "device.channels"), 0);
	ck_assert_str_eq(str_of(ch, "eqid"), "123456105041.1");
	ck_assert_int_eq(int_of(ch, "channel_type"), 1);
	ck_assert_int_eq(int_of(ch, "condition_flags"), 16);
	ck_assert_int_eq(int_of(ch, "control_bits"), 0);
	/* Every device has its one channel, named after it. */
	for (i = 1 + nevent; i < json_array_size(events); i++) {
		ev = json_array_get(events, i);
		ch = json_array_get(json_object_get(ev, "device.channels"), 0);
		ck_assert_ptr_nonnull(ch);
		ck_assert(strncmp(str_of(ch, "eqid"), str_of(ev, "device.eqid"),
		    12) == 0);
	}
	json_decref(events);
	free(xml.p);
}
END_TEST

START_TEST(test_report_460)
{
	static const struct key_int interval_ints[] = {
		{"interval.energy_ws", 65439}, {"interval.id", 1000001},
		{"interval.duration_s", 300}, {"interval.stat_duration_s", 294},
		{"interval.end_unix", 1436646900},
		{"time_ms", INT64_C(1436646900000)},
	};
	struct file xml = slurp(REPORT_460);
	json_t *events, *ev, *p;
	long long dates[8];
	size_t ndates;

	ck_assert_uint_eq(count_of(xml.p, "<interval "), 1);
	ck_assert_uint_eq(count_of(xml.p, "<reading "), 1);
	ck_assert_uint_eq(count_of(xml.p, "<event "), 4);
	ck_assert_uint_eq(count_of(xml.p, "<device "), 0);

	event_ids_init();
	/* The report's own webcomm_version wins over the target's. */
	events = good_events(xml.p, xml.n,
	    "/emu_reports/performance_report?webcomm_version=9.9");
	ck_assert_uint_eq(json_array_size(events), 7);
	ck_assert_uint_eq(count_type(events, "envoy_report"), 1);
	ck_assert_uint_eq(count_type(events, "envoy_interval"), 1);
	ck_assert_uint_eq(count_type(events, "envoy_reading"), 1);
	ck_assert_uint_eq(count_type(events, "envoy_event"), 4);
	check_common(events, "999999000001", INT64_C(1438706832000),
	    "2015-08-04T16:47:12Z");

	ev = json_array_get(events, 0);
	ck_assert_str_eq(str_of(ev, "report.webcomm_version"), "4.6.0");
	ck_assert_int_eq(int_of(ev, "count.intervals"), 1);
	ck_assert_int_eq(int_of(ev, "count.readings"), 1);
	ck_assert_int_eq(int_of(ev, "count.events"), 4);
	ck_assert_int_eq(int_of(ev, "count.devices"), 0);
	ck_assert_double_eq_tol(real_of(ev, "envoy.latitude"), 0.0, 1e-12);
	ck_assert_double_eq_tol(real_of(ev, "envoy.longitude"), 0.0, 1e-12);
	ck_assert_str_eq(str_of(ev, "envoy.emu_region"), "NA");
	ck_assert_str_eq(str_of(ev, "envoy.sw_version"), "R3.12.34 (2e8bfe)");

	/* <interval interval_duration="300" stat_duration="294"
	 *  end_date="1436646900" stats="65439" id="1000001"
	 *  eqid="999999100001.1"/> */
	ev = json_array_get(events, 1);
	ck_assert_str_eq(str_of(ev, "type"), "envoy_interval");
	check_ints(ev, interval_ints, NELEM(interval_ints));
	ck_assert_str_eq(str_of(ev, "interval.eqid"), "999999100001.1");
	ck_assert_str_eq(str_of(ev, "inverter.serial"), "999999100001");
	ck_assert_int_eq(int_of(ev, "inverter.channel"), 1);

	/* <reading duration="296" stats="250102,59979,27782,7462,49,0,0,67535"
	 *  date="1436646944" id="2000001" flags="0" eqid="999999100001.1"/>:
	 * mV, mHz, mV, mA, °C, two unknown, Ws (docs/envoy.md, section 4). */
	ev = json_array_get(events, 2);
	ck_assert_str_eq(str_of(ev, "type"), "envoy_reading");
	ck_assert_double_eq_tol(real_of(ev, "reading.ac_v"), 250102 / 1000.0,
	    1e-9);
	ck_assert_double_eq_tol(real_of(ev, "reading.ac_hz"), 59979 / 1000.0,
	    1e-9);
	ck_assert_double_eq_tol(real_of(ev, "reading.dc_v"), 27782 / 1000.0,
	    1e-9);
	ck_assert_double_eq_tol(real_of(ev, "reading.dc_a"), 7462 / 1000.0,
	    1e-9);
	ck_assert_int_eq(int_of(ev, "reading.degc"), 49);
	ck_assert_int_eq(int_of(ev, "reading.unknown_6"), 0);
	ck_assert_int_eq(int_of(ev, "reading.unknown_7"), 0);
	ck_assert_int_eq(int_of(ev, "reading.energy_ws"), 67535);
	ck_assert_int_eq(int_of(ev, "reading.duration_s"), 296);
	ck_assert_int_eq(int_of(ev, "reading.flags"), 0);
	ck_assert_int_eq(int_of(ev, "reading.id"), 2000001);
	ck_assert_str_eq(str_of(ev, "reading.stats"),
	    "250102,59979,27782,7462,49,0,0,67535");
	ck_assert_int_eq(int_of(ev, "time_ms"), INT64_C(1436646944000));
	ck_assert_str_eq(str_of(ev, "reading.time"), "2015-07-11T20:35:44Z");
	ck_assert_str_eq(str_of(ev, "inverter.serial"), "999999100001");

	/* The events, each at its own date (the last one is the earliest). */
	ndates = dates_in(xml.p, "event_date", dates, NELEM(dates));
	ck_assert_uint_eq(ndates, 4);
	for (size_t i = 0; i < ndates; i++)
		ck_assert_int_eq(int_of(json_array_get(events, 3 + i), "time_ms"),
		    dates[i] * 1000);
	ev = json_array_get(events, 4);
	ck_assert_str_eq(str_of(ev, "event.name"), "DC power too low");
	ck_assert_str_eq(str_of(ev, "event.state_name"), "raised");
	ck_assert_int_eq(int_of(ev, "event.correlation_id"), 3000003);
	/* event_code="10031" is not a known code; message_key and the
	 * message_params JSON from CDATA. */
	ev = json_array_get(events, 6);
	ck_assert_int_eq(int_of(ev, "event.code"), 10031);
	ck_assert_ptr_null(json_object_get(ev, "event.name"));
	ck_assert_str_eq(str_of(ev, "event.message_key"), "1");
	p = json_object_get(ev, "event.message_params");
	ck_assert(json_is_object(p));
	ck_assert_str_eq(str_of(p, "value"), "true");
	json_decref(events);
	free(xml.p);
}
END_TEST

/*
 * The 4.6.0 report with its attributes in another order, single quotes,
 * blanks and newlines: docs/envoy.md, section 3, says these vary.
 */
static const char report_460_reworded[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<perf_report\n  webcomm_version = '4.6.0'\treport_timestamp='1438706832'"
    " >\n"
    "  <envoy serial_num='999999000001' sw_version='R3.12.34 (2e8bfe)'\n"
    "   part_num='800-00069-r05' emu_region='NA' ip_addr='192.0.2.10'\n"
    "   longitude='0.0000' latitude='0.0000' timezone='US/Pacific'\n"
    "   mac_addr='00:00:5E:00:53:01' />\n"
    "  <interval eqid=\"999999100001.1\" id='1000001' stats='65439'\n"
    "   end_date='1436646900' stat_duration='294' interval_duration='300'"
    "></interval>\n"
    "  <reading eqid='999999100001.1' flags='0' id='2000001'\n"
    "   date='1436646944' stats='250102,59979,27782,7462,49,0,0,67535'\n"
    "   duration='296' />\n"
    "  <event eqid='999999100001' id='3000001' event_date='1437837016'\n"
    "   event_code='509' event_state='0' />\n"
    "  <event correlation_id='3000003' eqid='999999100001' id='3000002'\n"
    "   event_date='1437837016' event_code='512' event_state='2'/>\n"
    "  <event correlation_id='3000002' eqid='999999100001' id='3000003'\n"
    "   event_date='1437837103' event_code='512' event_state='1'/>\n"
    "  <event message_key='1' eqid='999999000001' id='3000004'\n"
    "   event_date='1437836987' event_code='10031' event_state='0'>\n"
    "    <message_params><![CDATA[{\"value\":\"true\"}]]></message_params>\n"
    "  </event>\n"
    "</perf_report>\n";

/* Without their ids, the events are equal. */
static void
check_same_events(json_t *a, json_t *b)
{
	size_t i;
	json_t *ev;

	ck_assert_uint_eq(json_array_size(a), json_array_size(b));
	json_array_foreach(a, i, ev) {
		json_t *x = json_deep_copy(ev), *y = json_deep_copy(
		    json_array_get(b, i));
		char *xs, *ys;

		json_object_del(x, "id");
		json_object_del(y, "id");
		xs = json_dumps(x, JSON_SORT_KEYS);
		ys = json_dumps(y, JSON_SORT_KEYS);
		ck_assert_msg(json_equal(x, y), "event %zu:\n%s\n%s", i, xs, ys);
		free(xs);
		free(ys);
		json_decref(x);
		json_decref(y);
	}
}

START_TEST(test_report_reworded)
{
	struct file xml = slurp(REPORT_460);
	json_t *a, *b;

	a = good_events(xml.p, xml.n, NULL);
	b = good_events(report_460_reworded, sizeof report_460_reworded - 1,
	    NULL);
	ck_assert_uint_eq(json_array_size(a), 7);
	check_same_events(a, b);
	json_decref(a);
	json_decref(b);
	free(xml.p);
}
END_TEST

/* Attributes of a newer firmware are kept, as strings, under the prefix. */
START_TEST(test_report_unknown_attrs)
{
	static const char xml[] =
	    "<perf_report report_timestamp='1438706832' new_root='r'>"
	    "<envoy serial_num='1' new_envoy='42'/>"
	    "<device eqid='2' new_device='x'><channel eqid='2.1' "
	    "new_channel='7'/></device>"
	    "<interval eqid='2.1' new_interval='0012'/>"
	    "<reading eqid='2.1' new_reading='-1' stats='250102,59979,27782,"
	    "7462,49,0,0'/>"
	    "<event id='5' new_event='y z'/></perf_report>";
	json_t *events = good_events(xml, sizeof xml - 1, NULL), *ch;

	ck_assert_uint_eq(json_array_size(events), 5);
	ck_assert_str_eq(str_of(json_array_get(events, 0), "envoy.new_envoy"),
	    "42");
	ck_assert_str_eq(str_of(json_array_get(events, 1), "device.new_device"),
	    "x");
	ch = json_array_get(json_object_get(json_array_get(events, 1),
	    "device.channels"), 0);
	ck_assert_str_eq(str_of(ch, "new_channel"), "7");
	ck_assert_str_eq(str_of(json_array_get(events, 2),
	    "interval.new_interval"), "0012");
	ck_assert_str_eq(str_of(json_array_get(events, 3),
	    "reading.new_reading"), "-1");
	ck_assert_str_eq(str_of(json_array_get(events, 4), "event.new_event"),
	    "y z");
	/* The 7 stats columns of 4.1.0 (docs/envoy.md, section 4): no watt-seconds. */
	ck_assert_double_eq_tol(real_of(json_array_get(events, 3),
	    "reading.ac_v"), 250102 / 1000.0, 1e-9);
	ck_assert_int_eq(int_of(json_array_get(events, 3), "reading.unknown_7"),
	    0);
	ck_assert_ptr_null(json_object_get(json_array_get(events, 3),
	    "reading.energy_ws"));
	json_decref(events);
}
END_TEST

/*
 * Without a usable report_timestamp, the report's time is when it was
 * received, and a date that is not a number is kept as it was sent.
 */
START_TEST(test_report_no_time)
{
	static const char xml[] =
	    "<perf_report report_timestamp='soon'><envoy serial_num='1'/>"
	    "<event id='1' event_date='yesterday'/></perf_report>";
	json_t *events = good_events(xml, sizeof xml - 1, TARGET_30), *ev;

	ck_assert_uint_eq(json_array_size(events), 2);
	ev = json_array_get(events, 0);
	ck_assert_int_eq(int_of(ev, "time_ms"), RECEIVED_MS);
	ck_assert_str_eq(str_of(ev, "report.timestamp"), "soon");
	ck_assert_ptr_null(json_object_get(ev, "report.time"));
	ev = json_array_get(events, 1);
	ck_assert_int_eq(int_of(ev, "time_ms"), RECEIVED_MS);
	ck_assert_str_eq(str_of(ev, "event.time"), "yesterday");
	ck_assert_ptr_null(json_object_get(ev, "event.unix"));
	json_decref(events);
}
END_TEST

static const struct {
	const char *xml;
	const char *err; /* how err starts */
} bad_reports[] = {
	{"", "XML line"},
	{"perf_report", "XML line"},
	{"<perf_report><envoy serial_num='1'></perf_report>", "XML line"},
	{"<perf_report report_timestamp='1'><event id='1'/>", "XML line"},
	{"<perf_report a='1' a='2'/>", "XML line"},
	{"<perf_report><event id='1'/></perf_report><extra/>", "XML line"},
	{"<perf_report_response status='success'/>", "not a perf_report"},
	{"<reports><perf_report/></reports>", "not a perf_report"},
	/* Entities could turn a few bytes into gigabytes: no DTD at all. */
	{"<!DOCTYPE perf_report><perf_report/>", "a DOCTYPE is not allowed"},
	{"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a 'aaaaaaaa'>"
	    "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]><perf_report><event id='1'>"
	    "<message_params>&b;</message_params></event></perf_report>",
	    "a DOCTYPE is not allowed"},
};

/* A report that must be refused: -1 and no event; its reason in err. */
static void
refused(const char *xml, size_t n, char *err, size_t errlen)
{
	int r;
	json_t *events = report_events(xml, n, NULL, &r, err, errlen);

	ck_assert_int_eq(r, -1);
	ck_assert_uint_eq(json_array_size(events), 0);
	json_decref(events);
}

/* Not well-formed, or not a perf_report: -1, a reason, no event. */
START_TEST(test_report_bad)
{
	char err[256];

	refused(bad_reports[_i].xml, strlen(bad_reports[_i].xml), err,
	    sizeof err);
	ck_assert_msg(strncmp(err, bad_reports[_i].err,
	    strlen(bad_reports[_i].err)) == 0, "err: %s", err);
}
END_TEST

/* A report of n elements in all: root, envoy, then intervals. */
static char *
report_of(size_t n, size_t *len)
{
	static const char head[] = "<perf_report><envoy serial_num='1'/>";
	static const char item[] = "<interval/>";
	size_t cap = sizeof head + n * (sizeof item - 1) + 32;
	char *xml = malloc(cap), *p = xml;

	ck_assert_ptr_nonnull(xml);
	p = stpcpy(p, head);
	for (size_t i = 2; i < n; i++)
		p = stpcpy(p, item);
	p = stpcpy(p, "</perf_report>");
	*len = (size_t)(p - xml);
	return xml;
}

/*
 * ENVOY_ELEMENTS_MAX elements are read; one more and the report is
 * refused, so a small body cannot become millions of events.
 */
START_TEST(test_report_elements_limit)
{
	char err[256], *xml;
	size_t n;
	json_t *events;

	xml = report_of(ENVOY_ELEMENTS_MAX, &n);
	events = good_events(xml, n, NULL);
	ck_assert_uint_eq(json_array_size(events), 1 + ENVOY_ELEMENTS_MAX - 2);
	ck_assert_int_eq(int_of(json_array_get(events, 0), "count.intervals"),
	    ENVOY_ELEMENTS_MAX - 2);
	json_decref(events);
	free(xml);

	xml = report_of(ENVOY_ELEMENTS_MAX + 1, &n);
	refused(xml, n, err, sizeof err);
	ck_assert_str_eq(err, "more than 20000 elements");
	free(xml);
}
END_TEST

/* A report of elements with ENVOY_ATTRS_MAX attributes in all, one more
 * on the root when extra. */
static char *
attrs_report(bool extra, size_t *len)
{
	enum { PER = 100 };
	char one[PER * 12] = "";
	size_t k = 0, cap = (ENVOY_ATTRS_MAX / PER) * (PER * 12 + 8) + 64;
	char *xml = malloc(cap), *p = xml;

	for (size_t i = 0; i < PER; i++)
		k += (size_t)snprintf(one + k, sizeof one - k, " a%zu=''", i);
	ck_assert_uint_lt(k, sizeof one);
	ck_assert_ptr_nonnull(xml);
	p = stpcpy(p, extra ? "<perf_report x=''>" : "<perf_report>");
	for (size_t e = 0; e < ENVOY_ATTRS_MAX / PER; e++)
		p = stpcpy(stpcpy(stpcpy(p, "<e"), one), "/>");
	p = stpcpy(p, "</perf_report>");
	*len = (size_t)(p - xml);
	ck_assert_uint_lt(*len, cap);
	return xml;
}

/* Attributes cost memory too: ENVOY_ATTRS_MAX are read, one more is not. */
START_TEST(test_report_attrs_limit)
{
	char err[256], *xml;
	size_t n;
	json_t *events;

	xml = attrs_report(false, &n);
	events = good_events(xml, n, NULL);
	ck_assert_uint_eq(json_array_size(events), 1);
	json_decref(events);
	free(xml);

	xml = attrs_report(true, &n);
	refused(xml, n, err, sizeof err);
	ck_assert_str_eq(err, "more than 200000 attributes");
	free(xml);
}
END_TEST

/* Columns past the eight known ones stay in reading.stats only. */
START_TEST(test_reading_more_columns)
{
	static const char xml[] =
	    "<perf_report><envoy serial_num='1'/><reading eqid='2.1' "
	    "stats='250102,59979,27782,7462,49,0,0,67535,12,x'/></perf_report>";
	json_t *events = good_events(xml, sizeof xml - 1, NULL), *ev;

	ck_assert_uint_eq(json_array_size(events), 2);
	ev = json_array_get(events, 1);
	ck_assert_double_eq_tol(real_of(ev, "reading.ac_v"), 250.102, 1e-9);
	ck_assert_double_eq_tol(real_of(ev, "reading.dc_a"), 7.462, 1e-9);
	ck_assert_int_eq(int_of(ev, "reading.energy_ws"), 67535);
	ck_assert_str_eq(str_of(ev, "reading.stats"),
	    "250102,59979,27782,7462,49,0,0,67535,12,x");
	json_decref(events);
}
END_TEST

/* The 2012 sample cut anywhere: -1 and nothing, never a partial report. */
START_TEST(test_report_cut)
{
	struct file xml = slurp_real(REPORT_2012);
	char err[256];
	int r;

	for (size_t n = 0; n < xml.n - 1; n += 97) {
		json_t *events = report_events(xml.p, n, NULL, &r, err,
		    sizeof err);

		ck_assert_int_eq(r, -1);
		ck_assert_uint_eq(json_array_size(events), 0);
		ck_assert(err[0] != '\0');
		json_decref(events);
	}
	free(xml.p);
}
END_TEST

/* ---- envoy_response_ids ---- */

#define IDS_2012 "221 222 223 224 225 226 227 228"

START_TEST(test_response_ids)
{
	struct file xml = slurp_real(RESPONSE_2012), rsp = slurp(RESPONSE_460);
	char buf[128];
	size_t n, outlen;
	const uint8_t *body = http_body(&rsp, &n);
	uint8_t *out;
	bool over;

	ck_assert_uint_eq(count_of(xml.p, "<event id="), 8);
	ck_assert_int_eq(envoy_response_ids(xml.p, xml.n, buf, sizeof buf), 8);
	ck_assert_str_eq(buf, IDS_2012);

	ck_assert_ptr_nonnull(strstr(rsp.p, "Content-Length: 135\r\n"));
	ck_assert_uint_eq(n, 135);
	ck_assert_int_eq(envoy_inflate(body, n, 4096, &out, &outlen, &over), 0);
	ck_assert_uint_eq(count_of((char *)out, "<event id="), 4);
	ck_assert_int_eq(envoy_response_ids((char *)out, outlen, buf,
	    sizeof buf), 4);
	ck_assert_str_eq(buf, "3000001 3000002 3000003 3000004");
	free(out);
	free(xml.p);
	free(rsp.p);
}
END_TEST

/*
 * A short buffer: every id counted, the list cut after a whole id with
 * "...", and never past the buffer; a list that fits is never cut.
 */
START_TEST(test_response_ids_cut)
{
	struct file xml = slurp_real(RESPONSE_2012);
	char buf[64];

	ck_assert_int_eq(envoy_response_ids(xml.p, xml.n, buf, 5), 8);
	ck_assert_str_eq(buf, "...");
	ck_assert_int_eq(envoy_response_ids(xml.p, xml.n, buf, 12), 8);
	ck_assert_str_eq(buf, "221 222 ...");
	for (size_t len = 5; len <= sizeof buf; len++) {
		size_t kept;

		memset(buf, 'z', sizeof buf);
		ck_assert_int_eq(envoy_response_ids(xml.p, xml.n, buf, len), 8);
		ck_assert_uint_lt(strlen(buf), len);
		if (len >= sizeof IDS_2012) { /* the whole list fits */
			ck_assert_str_eq(buf, IDS_2012);
			continue;
		}
		kept = strlen(buf) - 3;
		ck_assert_str_eq(buf + kept, "...");
		ck_assert(kept == 0 || (buf[kept - 1] == ' ' &&
		    strncmp(buf, IDS_2012, kept) == 0 && IDS_2012[kept - 1] == ' '));
	}
	free(xml.p);
}
END_TEST

START_TEST(test_response_ids_bad)
{
	static const char *const bad[] = {
		"", "success", "<perf_report_response>",
		"<perf_report><event id='1'/></perf_report>",
		"<perf_report_response><event id='1'/>",
	};
	static const char good[] = "<perf_report_response/>";
	char buf[32];

	for (size_t i = 0; i < NELEM(bad); i++)
		ck_assert_int_eq(envoy_response_ids(bad[i], strlen(bad[i]), buf,
		    sizeof buf), -1);
	ck_assert_int_eq(envoy_response_ids(good, sizeof good - 1, buf, 4), -1);
	ck_assert_int_eq(envoy_response_ids(good, sizeof good - 1, buf,
	    sizeof buf), 0);
	ck_assert_str_eq(buf, "");
}
END_TEST

/* An answer is held to the same bounds as a report. */
START_TEST(test_response_ids_limits)
{
	static const char dtd[] = "<!DOCTYPE perf_report_response>"
	    "<perf_report_response/>";
	static const char item[] = "<event id='1'/>";
	static char xml[(ENVOY_ELEMENTS_MAX + 2) * sizeof item];
	char buf[32], *p = xml;

	ck_assert_int_eq(envoy_response_ids(dtd, sizeof dtd - 1, buf,
	    sizeof buf), -1);
	p = stpcpy(p, "<perf_report_response>");
	for (size_t i = 1; i < ENVOY_ELEMENTS_MAX; i++)
		p = stpcpy(p, item);
	strcpy(p, "</perf_report_response>");
	ck_assert_int_eq(envoy_response_ids(xml, strlen(xml), buf, sizeof buf),
	    ENVOY_ELEMENTS_MAX - 1);
	strcpy(stpcpy(p, item), "</perf_report_response>");
	ck_assert_int_eq(envoy_response_ids(xml, strlen(xml), buf, sizeof buf),
	    -1);
}
END_TEST

/* ---- spool ---- */

/* A name is "%Y-%m-%dT%H:%M:%S-" then 8 lower-case hex digits. */
static void
check_spool_name(const char *name, time_t when)
{
	struct tm tm;
	char t[32];

	ck_assert_uint_eq(strlen(name), 19 + 1 + 8);
	ck_assert_uint_lt(strlen(name), SPOOL_NAME_MAX);
	ck_assert(localtime_r(&when, &tm) != NULL);
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S-", &tm);
	ck_assert(strncmp(name, t, 20) == 0);
	for (size_t i = 20; i < 28; i++)
		ck_assert_msg((name[i] >= '0' && name[i] <= '9') ||
		    (name[i] >= 'a' && name[i] <= 'f'), "%s", name);
}

START_TEST(test_spool_name)
{
	char a[SPOOL_NAME_MAX], b[SPOOL_NAME_MAX];
	time_t when = 1750000000; /* 2025-06-15T15:06:40Z */
	const char *tz = getenv("TZ");
	char *old = tz != NULL ? strdup(tz) : NULL;

	/* A zone that needs no tzdata: UTC+5:30. */
	ck_assert_int_eq(setenv("TZ", "IST-5:30", 1), 0);
	tzset();
	envoy_spool_name(a, sizeof a, when);
	envoy_spool_name(b, sizeof b, when);
	ck_assert(strncmp(a, "2025-06-15T20:36:40-", 20) == 0);
	check_spool_name(a, when);
	check_spool_name(b, when);
	ck_assert_str_ne(a, b);

	ck_assert_int_eq(setenv("TZ", "UTC0", 1), 0);
	tzset();
	envoy_spool_name(a, sizeof a, when);
	ck_assert(strncmp(a, "2025-06-15T15:06:40-", 20) == 0);
	check_spool_name(a, when);

	/* The zone of the tests that follow, with CK_FORK=no. */
	if (old != NULL)
		setenv("TZ", old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(old);
}
END_TEST

/* The names in dir, sorted, space-separated, into buf. */
static void
list_dir(const char *dir, char *buf, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *names[16], *t;
	size_t n = 0, used = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		ck_assert_uint_lt(n, NELEM(names));
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t min = i;

		for (size_t j = i + 1; j < n; j++)
			if (strcmp(names[j], names[min]) < 0)
				min = j;
		t = names[i];
		names[i] = names[min];
		names[min] = t;
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
		    i ? " " : "", names[i]);
		ck_assert_uint_lt(used, len);
		free(names[i]);
	}
}

static void
check_file(const char *path, const void *data, size_t n, mode_t mode)
{
	struct stat st;
	char buf[256];
	FILE *f;

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, mode);
	ck_assert_uint_eq((size_t)st.st_size, n);
	ck_assert_ptr_nonnull(f = fopen(path, "rb"));
	ck_assert_uint_eq(fread(buf, 1, sizeof buf, f), n);
	ck_assert(memcmp(buf, data, n) == 0);
	fclose(f);
}

START_TEST(test_spool_write)
{
	static const char data[] = "POST /x HTTP/1.1\r\n\r\nbinary\0\xff end";
	static const char again[] = "<perf_report/>";
	char dir[] = "/tmp/check-spool-XXXXXX", path[128], names[256];
	mode_t old = umask(0);

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(envoy_spool_write(dir, "2025-06-15T20:36:40-0a1b2c3d",
	    "request", data, sizeof data - 1), 0);
	snprintf(path, sizeof path, "%s/2025-06-15T20:36:40-0a1b2c3d.request",
	    dir);
	check_file(path, data, sizeof data - 1, 0640);

	/* Whatever the umask, and over a file of the same name. */
	umask(077);
	ck_assert_int_eq(envoy_spool_write(dir, "2025-06-15T20:36:40-0a1b2c3d", "xml",
	    data, 3), 0);
	ck_assert_int_eq(envoy_spool_write(dir, "2025-06-15T20:36:40-0a1b2c3d", "xml",
	    again, sizeof again - 1), 0);
	snprintf(path, sizeof path, "%s/2025-06-15T20:36:40-0a1b2c3d.xml", dir);
	check_file(path, again, sizeof again - 1, 0640);
	ck_assert_int_eq(envoy_spool_write(dir, "empty", "response", "", 0), 0);

	/* No temporary file left behind. */
	list_dir(dir, names, sizeof names);
	ck_assert_str_eq(names, "2025-06-15T20:36:40-0a1b2c3d.request "
	    "2025-06-15T20:36:40-0a1b2c3d.xml empty.response");

	snprintf(path, sizeof path, "%s/missing", dir);
	errno = 0;
	ck_assert_int_eq(envoy_spool_write(path, "n", "xml", data, 3), -1);
	ck_assert_int_eq(errno, ENOENT);

	snprintf(path, sizeof path, "%s/2025-06-15T20:36:40-0a1b2c3d.request",
	    dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/2025-06-15T20:36:40-0a1b2c3d.xml", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/empty.response", dir);
	unlink(path);
	ck_assert_int_eq(rmdir(dir), 0);
	umask(old);
}
END_TEST

Suite *
envoy_suite(void)
{
	Suite *s = suite_create("envoy");
	TCase *tc = tcase_create("inflate");

	tcase_add_test(tc, test_inflate_sample);
	tcase_add_loop_test(tc, test_inflate_round_trip, 0,
	    NELEM(round_trip_sizes));
	tcase_add_test(tc, test_inflate_not_zlib);
	tcase_add_loop_test(tc, test_form_field, 0, NELEM(form_rows));
	suite_add_tcase(s, tc);

	tc = tcase_create("report");
	tcase_add_test(tc, test_report_2012);
	tcase_add_test(tc, test_report_460);
	tcase_add_test(tc, test_report_reworded);
	tcase_add_test(tc, test_report_unknown_attrs);
	tcase_add_test(tc, test_report_no_time);
	tcase_add_loop_test(tc, test_report_bad, 0, NELEM(bad_reports));
	tcase_add_test(tc, test_report_cut);
	tcase_add_test(tc, test_report_elements_limit);
	tcase_add_test(tc, test_report_attrs_limit);
	tcase_add_test(tc, test_reading_more_columns);
	suite_add_tcase(s, tc);

	tc = tcase_create("response");
	tcase_add_test(tc, test_response_ids);
	tcase_add_test(tc, test_response_ids_cut);
	tcase_add_test(tc, test_response_ids_bad);
	tcase_add_test(tc, test_response_ids_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("spool");
	tcase_add_test(tc, test_spool_name);
	tcase_add_test(tc, test_spool_write);
	suite_add_tcase(s, tc);
	return s;
}
