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

/* The real-time micro-inverter record; p.n >= DATA_REALTIME_MIN. */
static void
decode_microinverter(json_t *ev, struct span p)
{
	uint32_t u32;
	uint16_t u16, v, a;
	uint8_t mppt, t[6];
	char key[32], s[32];

	set_ascii(ev, "inv.serial.ascii", p, 21, 10);
	if (span_u32le(p, 33, &u32))
		json_object_set_new(ev, "grid.kWh_today", scaled(u32, 100));
	if (span_u32le(p, 37, &u32))
		json_object_set_new(ev, "grid.kWh_total", scaled(u32, 10));
	if (span_u16le(p, 45, &u16))
		json_object_set_new(ev, "grid.v", scaled(u16, 10));
	if (span_u16le(p, 51, &u16))
		json_object_set_new(ev, "grid.i", scaled(u16, 10));
	if (span_u16le(p, 57, &u16))
		json_object_set_new(ev, "grid.hz", scaled(u16, 100));
	if (span_u32le(p, 59, &u32))
		json_object_set_new(ev, "grid.active_power_w", json_integer(u32));
	if (span_u16le(p, 63, &u16))
		json_object_set_new(ev, "inv.degc",
		    scaled((int16_t)u16, 100));
	set_ascii(ev, "meta.protocol_ver", p, 101, 8);
	set_ascii(ev, "meta.dc_master_fw_ver", p, 109, 8);
	set_ascii(ev, "meta.ac_fw_ver", p, 117, 8);
	if (span_u16be(p, 129, &u16))
		json_object_set_new(ev, "meta.rated_power_w", scaled(u16, 10));
	set_u8(ev, "meta.mppt_count", p, 131);
	set_u8(ev, "meta.phases", p, 132);
	if (!span_u8(p, 131, &mppt))
		mppt = 0;
	for (unsigned k = 0; k < mppt && k < PV_MAX; k++) {
		if (span_u16le(p, 85 + 4 * k, &v) && span_u16le(p, 87 + 4 * k, &a)) {
			snprintf(key, sizeof key, "pv.v.%u", k + 1);
			json_object_set_new(ev, key, scaled(v, 10));
			snprintf(key, sizeof key, "pv.i.%u", k + 1);
			json_object_set_new(ev, key, scaled(a, 10));
			snprintf(key, sizeof key, "pv.w.%u", k + 1);
			/* 0.1 V x 0.1 A is 0.01 W: to 0.1 W, halves up */
			json_object_set_new(ev, key,
			    scaled(((int64_t)v * a + 5) / 10, 10));
		}
		if (span_u16be(p, 135 + 2 * k, &u16)) {
			snprintf(key, sizeof key, "pv.kWh_today.%u", k + 1);
			json_object_set_new(ev, key, scaled(u16, 10));
		}
		if (span_u32be(p, 143 + 4 * k, &u32)) {
			snprintf(key, sizeof key, "pv.kWh_total.%u", k + 1);
			json_object_set_new(ev, key, scaled(u32, 10));
		}
	}
	for (int i = 0; i < 6; i++)
		if (!span_u8(p, 245 + (size_t)i, &t[i]))
			return;
	snprintf(s, sizeof s, "%04d-%02d-%02d:%02d:%02d:%02d", 2000 + t[0], t[1],
	    t[2], t[3], t[4], t[5]);
	json_object_set_new(ev, "meta.current_time", json_string(s));
}

static void
decode_data(json_t *ev, struct span p, int64_t *time_ms)
{
	uint8_t kind = 0, schema = 0;
	char s[8];

	span_u8(p, 0, &kind);
	span_u8(p, 1, &schema);
	snprintf(s, sizeof s, "0x%02x", schema);
	json_object_set_new(ev, "data.schema", json_string(s));
	if (kind & 0x80) {
		/* Buffered records do not use the real-time layout. */
		json_object_set_new(ev, "data.historic", json_true());
		event_set_hex(ev, "payload.hex", p.p, p.n);
		return;
	}
	set_prefix(ev, p, 3, time_ms);
	if (schema != 0x08) {
		json_object_set_new(ev, "data.raw", json_true());
		event_set_hex(ev, "payload.hex", p.p, p.n);
		return;
	}
	if (p.n < DATA_REALTIME_MIN) {
		json_object_set_new(ev, "data.short", json_true());
		event_set_hex(ev, "payload.hex", p.p, p.n);
		return;
	}
	decode_microinverter(ev, p);
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
		if (n >= 2 && head[0] == 0x16 && head[1] == 0x03)
			json_object_set_new(ev, "reason", json_string("tls"));
		else
			json_object_set_new(ev, "reason", json_string("not-v5"));
		event_set_hex(ev, "head.hex", head, n);
	}
	return ev;
}
