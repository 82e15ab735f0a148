/*
 * solarman_event.c - Solarman V5 frames to events.
 *
 * Every field is read through span.h at the payload offsets of
 * docs/solarman-v5.md; a payload too short for its layout is reported raw
 * and flagged, never read past.  Scaled values are one division of the raw
 * integer, so the JSON shows 88.1, not 88.10000000000001.
 */
#include "proto/solarman_event.h"

#include <stdio.h>
#include <string.h>

#include "proto/solarman.h"

#define DATA_REALTIME_MIN 251 /* up to meta.current_time at 245..250 */
#define PV_MAX 4
#define LOGGER_EPOCH_MIN 946684800 /* 2000-01-01: earlier is an unset clock */

static const struct {
	uint8_t type;
	const char *name;
} types[] = {
	{0x41, "handshake"}, {0x42, "data"}, {0x43, "wifi"},
	{0x47, "heartbeat"}, {0x48, "report"},
	/* the server's answers: request type - 0x30 */
	{0x11, "reply"}, {0x12, "reply"}, {0x13, "reply"}, {0x15, "reply"},
	{0x17, "reply"}, {0x18, "reply"},
};

static const char *
type_name(uint8_t t)
{
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (types[i].type == t)
			return types[i].name;
	return "unknown";
}

const char *
solarman_event_type(uint8_t type)
{
	return type_name(type);
}

const char *const *
solarman_event_types(void)
{
	static const char *const names[] = {"handshake", "data", "wifi",
	    "heartbeat", "report", "reply", "unknown", NULL};

	return names;
}

bool
solarman_is_reply(uint8_t type)
{
	return type >= 0x11 && type <= 0x18 && strcmp(type_name(type), "reply") == 0;
}

/* raw / div: one correctly rounded division is the double nearest the
 * decimal value (881 / 10 is 88.1); round(v / scale) * scale is not
 * (88.10000000000001), which shows with more than 15 digits. */
static json_t *
scaled(int64_t raw, int div)
{
	return json_real((double)raw / div);
}

/* ASCII text of a fixed-size field: up to the first NUL, blanks trimmed,
 * anything unprintable shown as '?'. */
static void
set_ascii(json_t *ev, const char *key, struct span p, size_t off, size_t n)
{
	struct span f = span_sub(p, off, n);
	char s[64];
	size_t len = 0;

	if (f.p == NULL || n >= sizeof s)
		return;
	for (size_t i = 0; i < f.n && f.p[i] != '\0'; i++)
		s[len++] = f.p[i] >= 0x20 && f.p[i] < 0x7f ? (char)f.p[i] : '?';
	while (len > 0 && s[len - 1] == ' ')
		len--;
	s[len] = '\0';
	json_object_set_new(ev, key, json_string(s));
}

static void
set_u8(json_t *ev, const char *key, struct span p, size_t off)
{
	uint8_t v;

	if (span_u8(p, off, &v))
		json_object_set_new(ev, key, json_integer(v));
}

/* The common prefix: total working time, power-on time, offset time. */
static bool
set_prefix(json_t *ev, struct span p, size_t off, int64_t *time_ms)
{
	uint32_t total, power_on, offset;
	char t[32];

	if (!span_u32le(p, off, &total) || !span_u32le(p, off + 4, &power_on) ||
	    !span_u32le(p, off + 8, &offset))
		return false;
	/* A logger that never got a time reply counts from 1970: no time. */
	if ((int64_t)total + offset >= LOGGER_EPOCH_MIN) {
		*time_ms = ((int64_t)total + offset) * 1000;
		event_format_time(*time_ms, false, t, sizeof t);
		json_object_set_new(ev, "record.time", json_string(t));
	}
	json_object_set_new(ev, "logger.total_working_s", json_integer(total));
	json_object_set_new(ev, "logger.power_on_s", json_integer(power_on));
	return true;
}

static void
decode_handshake(json_t *ev, struct span p, int64_t *time_ms)
{
	struct span mac = span_sub(p, 59, 6);

	set_prefix(ev, p, 1, time_ms);
	set_u8(ev, "logger.upload_interval_min", p, 13);
	set_u8(ev, "logger.acquisition_interval_s", p, 14);
	set_u8(ev, "logger.heartbeat_interval_s", p, 15);
	set_u8(ev, "wifi.signal_pct", p, 17);
	set_ascii(ev, "logger.fw", p, 19, 40);
	if (mac.p != NULL) {
		char s[18];
		snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", mac.p[0],
		    mac.p[1], mac.p[2], mac.p[3], mac.p[4], mac.p[5]);
		json_object_set_new(ev, "logger.mac", json_string(s));
	}
	set_ascii(ev, "logger.ip", p, 65, 16);
}

static void
decode_wifi(json_t *ev, struct span p, int64_t *time_ms)
{
	uint8_t sig;

	set_prefix(ev, p, 1, time_ms);
	set_ascii(ev, "wifi.ssid", p, 15, 30);
	if (span_u8(p, 45, &sig) && sig <= 100)
		json_object_set_new(ev, "wifi.signal_pct", json_integer(sig));
}

static void
decode_report(json_t *ev, struct span p, int64_t *time_ms)
{
	set_prefix(ev, p, 1, time_ms);
	event_set_hex(ev, "payload.hex", p.p, p.n);
}

/*
 * Data payloads by sensor type (docs/solarman-v5.md, section 7): each known
 * type is a list of fields, read in order, so that the keys come out in
 * the same order every time.  A field with a stride is read once per PV
 * input, stride bytes apart, its key ending in the input's number.
 */
enum kind {
	K_U16LE, K_S16LE, K_U32LE, K_U16BE, K_U32BE, K_U8,
	K_ASCII,     /* len bytes */
	K_VI_POWER,  /* u16 LE volts /10 at off, amps /10 at off + 2: W */
	K_TIME_U8,   /* 6 x u8: YY MM DD hh mm ss */
	K_TIME_U16LE /* 6 x u16 LE: the same */
};

struct field {
	const char *key;
	uint16_t off;
	uint8_t stride; /* per PV input; 0: read once */
	uint8_t kind;
	uint8_t len;    /* K_ASCII */
	uint16_t div;   /* raw / div as a real; 0: the raw integer */
};

struct sensor {
	uint16_t mask, value; /* (type & mask) == value */
	size_t min_len;       /* a shorter real-time payload is "short" */
	bool historic_layout; /* historic records keep the real-time layout */
	int pv_count_off;     /* the u8 giving the PV inputs, or -1... */
	unsigned pv_inputs;   /* ...a fixed count (at most PV_MAX) */
	const struct field *fields;
	size_t nfields;
};

/* The width of a field in bytes. */
static size_t
field_width(const struct field *f)
{
	switch (f->kind) {
	case K_U8: return 1;
	case K_U16LE: case K_S16LE: case K_U16BE: return 2;
	case K_U32LE: case K_U32BE: case K_VI_POWER: return 4;
	case K_ASCII: return f->len;
	case K_TIME_U8: return 6;
	case K_TIME_U16LE: return 12;
	}
	return 0;
}

/* The Deye micro-inverter (0x5408, and the other types of schema 0x08). */
static const struct field deye_micro[] = {
	{"inv.serial.ascii", 21, 0, K_ASCII, 10, 0},
	{"grid.kWh_today", 33, 0, K_U32LE, 0, 100},
	{"grid.kWh_total", 37, 0, K_U32LE, 0, 10},
	{"grid.v", 45, 0, K_U16LE, 0, 10},
	{"grid.i", 51, 0, K_U16LE, 0, 10},
	{"grid.hz", 57, 0, K_U16LE, 0, 100},
	{"grid.active_power_w", 59, 0, K_U32LE, 0, 0},
	{"inv.degc", 63, 0, K_S16LE, 0, 100},
	{"meta.protocol_ver", 101, 0, K_ASCII, 8, 0},
	{"meta.dc_master_fw_ver", 109, 0, K_ASCII, 8, 0},
	{"meta.ac_fw_ver", 117, 0, K_ASCII, 8, 0},
	{"meta.rated_power_w", 129, 0, K_U16BE, 0, 10},
	{"meta.mppt_count", 131, 0, K_U8, 0, 0},
	{"meta.phases", 132, 0, K_U8, 0, 0},
	{"pv.v.", 85, 4, K_U16LE, 0, 10},
	{"pv.i.", 87, 4, K_U16LE, 0, 10},
	{"pv.w.", 85, 4, K_VI_POWER, 0, 10},
	{"pv.kWh_today.", 135, 2, K_U16BE, 0, 10},
	{"pv.kWh_total.", 143, 4, K_U32BE, 0, 10},
	{"meta.current_time", 245, 0, K_TIME_U8, 0, 0},
};

/* Solis (0x0507): the field map of tests/data/solis, checked against the
 * Solis cloud's own values on 1,868 frames. */
static const struct field solis[] = {
	{"inv.serial.ascii", 21, 0, K_ASCII, 16, 0},
	{"inv.degc", 37, 0, K_S16LE, 0, 10},
	{"pv.v.1", 39, 0, K_U16LE, 0, 10},
	{"pv.i.1", 43, 0, K_U16LE, 0, 10},
	{"grid.i", 51, 0, K_U16LE, 0, 10},
	{"grid.v", 57, 0, K_U16LE, 0, 10},
	{"grid.hz", 59, 0, K_U16LE, 0, 100},
	{"grid.kWh_today", 65, 0, K_U32LE, 0, 100},
	{"grid.kWh_total", 69, 0, K_U32LE, 0, 10},
	{"pv.w.1", 105, 0, K_U32LE, 0, 0},
	{"grid.kWh_yesterday", 117, 0, K_U16LE, 0, 10},
	{"grid.apparent_power_va", 131, 0, K_U16LE, 0, 0},
	{"meta.current_time", 135, 0, K_TIME_U16LE, 0, 0},
};

/* Sofar KTL-X (0x2701): only the fields at the offsets it shares with the
 * Solis template (a public field table; no capture with values).  It is
 * three-phase: the Solis single phase is its phase 3. */
static const struct field sofar_ktlx[] = {
	{"inv.serial.ascii", 21, 0, K_ASCII, 16, 0},
	{"inv.degc", 37, 0, K_S16LE, 0, 10},
	{"pv.v.1", 39, 0, K_U16LE, 0, 10},
	{"pv.i.1", 43, 0, K_U16LE, 0, 10},
	{"grid.i.3", 51, 0, K_U16LE, 0, 10},
	{"grid.v.3", 57, 0, K_U16LE, 0, 10},
	{"grid.hz", 59, 0, K_U16LE, 0, 100},
	{"grid.kWh_today", 65, 0, K_U32LE, 0, 100},
	{"grid.kWh_total", 69, 0, K_U32LE, 0, 10},
};

#define N(a) (sizeof a / sizeof a[0])

static const struct sensor sensors[] = {
	{0x00ff, 0x0008, DATA_REALTIME_MIN, false, 131, 0, deye_micro,
	    N(deye_micro)},
	{0xffff, 0x0507, 147, true, -1, 1, solis, N(solis)},
	{0xffff, 0x2701, 73, false, -1, 1, sofar_ktlx, N(sofar_ktlx)},
};

static const struct sensor *
sensor_find(uint16_t type)
{
	for (size_t i = 0; i < N(sensors); i++)
		if ((type & sensors[i].mask) == sensors[i].value)
			return &sensors[i];
	return NULL;
}

/* Field f of input k (0 for a field read once) into ev, if p holds it. */
static void
set_field(json_t *ev, const struct field *f, unsigned k, struct span p)
{
	size_t off = f->off + (size_t)f->stride * k;
	uint16_t u16, v, a;
	uint32_t u32;
	int64_t raw;
	char buf[32], s[32];
	const char *key = f->stride != 0 ? buf : f->key;
	unsigned t[6];

	if (f->stride != 0)
		snprintf(buf, sizeof buf, "%s%u", f->key, k + 1);
	switch (f->kind) {
	case K_ASCII:
		set_ascii(ev, key, p, off, f->len);
		return;
	case K_VI_POWER:
		if (!span_u16le(p, off, &v) || !span_u16le(p, off + 2, &a))
			return;
		/* 0.1 V x 0.1 A is 0.01 W: to 0.1 W, halves up */
		raw = ((int64_t)v * a + 5) / 10;
		break;
	case K_TIME_U8:
	case K_TIME_U16LE:
		for (int i = 0; i < 6; i++) {
			uint8_t u8;

			if (f->kind == K_TIME_U8 ? !span_u8(p, off + (size_t)i, &u8) :
			    !span_u16le(p, off + 2 * (size_t)i, &u16))
				return;
			t[i] = f->kind == K_TIME_U8 ? u8 : u16;
		}
		snprintf(s, sizeof s, "%04u-%02u-%02u:%02u:%02u:%02u",
		    2000 + t[0], t[1], t[2], t[3], t[4], t[5]);
		json_object_set_new(ev, key, json_string(s));
		return;
	case K_U8: {
		uint8_t u8;

		if (!span_u8(p, off, &u8))
			return;
		raw = u8;
		break;
	}
	case K_U16LE:
	case K_S16LE:
		if (!span_u16le(p, off, &u16))
			return;
		raw = f->kind == K_S16LE ? (int16_t)u16 : u16;
		break;
	case K_U16BE:
		if (!span_u16be(p, off, &u16))
			return;
		raw = u16;
		break;
	case K_U32LE:
	case K_U32BE:
		if (f->kind == K_U32LE ? !span_u32le(p, off, &u32) :
		    !span_u32be(p, off, &u32))
			return;
		raw = u32;
		break;
	default:
		return;
	}
	json_object_set_new(ev, key, f->div != 0 ? scaled(raw, f->div) :
	    json_integer(raw));
}

/* The fields of sensor s; p holds s->min_len bytes at least. */
static void
decode_sensor(json_t *ev, const struct sensor *s, struct span p)
{
	unsigned inputs = s->pv_inputs;
	uint8_t u8;
	size_t i = 0;

	if (s->pv_count_off >= 0)
		inputs = span_u8(p, (size_t)s->pv_count_off, &u8) ? u8 : 0;
	if (inputs > PV_MAX)
		inputs = PV_MAX;
	while (i < s->nfields) {
		size_t j = i;

		if (s->fields[i].stride == 0) {
			set_field(ev, &s->fields[i++], 0, p);
			continue;
		}
		/* A run of per-input fields: input 1's, then input 2's... */
		while (j < s->nfields && s->fields[j].stride != 0)
			j++;
		for (unsigned k = 0; k < inputs; k++)
			for (size_t f = i; f < j; f++)
				set_field(ev, &s->fields[f], k, p);
		i = j;
	}
}

/* For the tests: whether every field of every type lies inside a payload
 * of the type's min_len, for every PV input it can have. */
bool
solarman_sensors_fit(void)
{
	for (size_t i = 0; i < N(sensors); i++) {
		const struct sensor *s = &sensors[i];
		unsigned inputs = s->pv_count_off >= 0 ? PV_MAX : s->pv_inputs;

		if (s->pv_count_off >= 0 && (size_t)s->pv_count_off >= s->min_len)
			return false;
		for (size_t j = 0; j < s->nfields; j++) {
			const struct field *f = &s->fields[j];
			size_t last = f->stride != 0 && inputs > 0 ?
			    (size_t)f->stride * (inputs - 1) : 0;

			if (f->off + last + field_width(f) > s->min_len ||
			    field_width(f) == 0)
				return false;
		}
	}
	return true;
}

static void
decode_data(json_t *ev, struct span p, int64_t *time_ms)
{
	const struct sensor *s;
	uint8_t kind = 0, schema = 0;
	uint16_t type = 0;
	char str[8];

	span_u8(p, 0, &kind);
	span_u8(p, 1, &schema);
	snprintf(str, sizeof str, "0x%02x", schema);
	json_object_set_new(ev, "data.schema", json_string(str));
	if (span_u16le(p, 1, &type)) {
		snprintf(str, sizeof str, "0x%04x", type);
		json_object_set_new(ev, "data.sensor", json_string(str));
	}
	s = sensor_find(type);
	if (kind & 0x80) {
		json_object_set_new(ev, "data.historic", json_true());
		/* Deye's buffered records do not use the real-time layout. */
		if (s == NULL || !s->historic_layout || p.n < s->min_len) {
			event_set_hex(ev, "payload.hex", p.p, p.n);
			return;
		}
	}
	set_prefix(ev, p, 3, time_ms);
	if (s == NULL) {
		json_object_set_new(ev, "data.raw", json_true());
		event_set_hex(ev, "payload.hex", p.p, p.n);
		return;
	}
	if (p.n < s->min_len) {
		json_object_set_new(ev, "data.short", json_true());
		event_set_hex(ev, "payload.hex", p.p, p.n);
		return;
	}
	decode_sensor(ev, s, p);
}

static void
decode_reply(json_t *ev, struct span p, int64_t *time_ms)
{
	uint32_t t, tz;
	char s[32];

	if (p.n == 10 && span_u32le(p, 2, &t) && span_u32le(p, 6, &tz)) {
		*time_ms = (int64_t)t * 1000;
		event_format_time(*time_ms, false, s, sizeof s);
		json_object_set_new(ev, "reply.time", json_string(s));
		json_object_set_new(ev, "reply.unix", json_integer(t));
		json_object_set_new(ev, "reply.tz_offset_min",
		    json_integer((int32_t)tz));
		return;
	}
	event_set_hex(ev, "payload.hex", p.p, p.n);
}

json_t *
solarman_event(const uint8_t *frame, size_t len, const struct event_meta *m,
    int64_t *time_ms)
{
	struct solarman_frame f;
	json_t *ev;
	char s[16];

	*time_ms = m->received_ms;
	if (solarman_frame_parse(frame, len, &f) != 0)
		return NULL;
	if ((ev = event_new(type_name(f.type), m)) == NULL)
		return NULL;
	json_object_set_new(ev, "logger.serial", json_integer(f.serial));
	snprintf(s, sizeof s, "0x%04x", f.control);
	json_object_set_new(ev, "frame.control", json_string(s));
	snprintf(s, sizeof s, "%02x %02x", f.seq[0], f.seq[1]);
	json_object_set_new(ev, "frame.seq", json_string(s));
	switch (f.type) {
	case 0x41: decode_handshake(ev, f.payload, time_ms); break;
	case 0x42: decode_data(ev, f.payload, time_ms); break;
	case 0x43: decode_wifi(ev, f.payload, time_ms); break;
	case 0x47: break;
	case 0x48: decode_report(ev, f.payload, time_ms); break;
	default:
		if (solarman_is_reply(f.type))
			decode_reply(ev, f.payload, time_ms);
		else
			event_set_hex(ev, "payload.hex", f.payload.p, f.payload.n);
	}
	return ev;
}

json_t *
solarman_undecodable_event(const uint8_t *head, size_t n,
    const struct event_meta *m)
{
	json_t *ev = event_new("undecodable", m);

	if (ev != NULL) {
		json_object_set_new(ev, "protocol", json_string("solarman"));
		json_object_set_new(ev, "reason", json_string("tls"));
		event_set_hex(ev, "head.hex", head, n);
	}
	return ev;
}
