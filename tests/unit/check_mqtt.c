/*
 * check_mqtt.c - unit tests of what the MQTT sink publishes for an event
 * (sinks/mqtt_topics.c): topics, retain flags, availability, Home
 * Assistant discovery and the lifetime-total guard.
 *
 * The events are real: the golden frames of data/solarman/golden/ decoded
 * by the project's own solarman_event(), and variants of the Deye data
 * frame (4 PV inputs, another logger serial, a lower lifetime total) made
 * by patching its payload and checksum.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "event.h"
#include "suites.h"
#include "proto/solarman_event.h"
#include "sinks/mqtt_topics.h"

#define GOLDEN "data/solarman/golden"
#define SERIAL "3939932716"
#define NOW 1700000000000LL
#define PAYLOAD 11 /* frame offset of the payload */

struct frame {
	uint8_t b[1024];
	size_t n;
};

/* The one hex line of a golden .hex file. */
static struct frame
golden(const char *name)
{
	char path[256], line[4096];
	struct frame f = {.n = 0};
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s.hex", GOLDEN, name);
	fp = fopen(path, "r");
	ck_assert_msg(fp != NULL, "cannot open %s", path);
	while (fgets(line, sizeof line, fp) != NULL) {
		if (line[0] == '#')
			continue;
		for (char *p = line; isxdigit((unsigned char)p[0]) &&
		    isxdigit((unsigned char)p[1]); p += 2) {
			unsigned v;
			sscanf(p, "%2x", &v);
			ck_assert(f.n < sizeof f.b);
			f.b[f.n++] = (uint8_t)v;
		}
	}
	fclose(fp);
	ck_assert_uint_gt(f.n, 13);
	return f;
}

static void
fix_checksum(struct frame *f)
{
	uint8_t sum = 0;

	for (size_t i = 1; i < f->n - 2; i++)
		sum += f->b[i];
	f->b[f->n - 2] = sum;
}

static void
put_u16le(struct frame *f, size_t off, unsigned v)
{
	f->b[PAYLOAD + off] = (uint8_t)v;
	f->b[PAYLOAD + off + 1] = (uint8_t)(v >> 8);
}

static void
put_u32le(struct frame *f, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		f->b[PAYLOAD + off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void
put_u32be(struct frame *f, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		f->b[PAYLOAD + off + (size_t)i] = (uint8_t)(v >> (24 - 8 * i));
}

/* The Deye data frame with 4 PV inputs (PV3, PV4 made up). */
static struct frame
four_inputs(void)
{
	struct frame f = golden("deye-data");

	f.b[PAYLOAD + 131] = 4;
	put_u16le(&f, 85 + 8, 301);   /* PV3 30.1 V */
	put_u16le(&f, 87 + 8, 12);    /* 1.2 A */
	put_u16le(&f, 85 + 12, 302);
	put_u16le(&f, 87 + 12, 13);
	put_u32be(&f, 143 + 8, 555);  /* PV3 55.5 kWh total */
	put_u32be(&f, 143 + 12, 666);
	fix_checksum(&f);
	return f;
}

struct ev {
	json_t *ev;
	char *text;
};

static struct ev
decode(const struct frame *f)
{
	struct event_meta m = {
		.listener = "deye", .conn_id = 3, .peer = "192.0.2.1:4000",
		.direction = 0, .received_ms = NOW,
	};
	struct ev e;
	int64_t t;

	snprintf(m.id, sizeof m.id, "test-1");
	e.ev = solarman_event(f->b, f->n, &m, &t);
	ck_assert_ptr_nonnull(e.ev);
	e.text = json_dumps(e.ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
	ck_assert_ptr_nonnull(e.text);
	return e;
}

static void
ev_free(struct ev *e)
{
	json_decref(e->ev);
	free(e->text);
}

static struct mqtt_topics *
topics(bool discovery)
{
	struct mqtt_topics_conf c = {
		.prefix = "dm", .discovery_prefix = discovery ? "ha" : NULL,
		.expire_after_s = 600,
	};
	struct mqtt_topics *t = mqtt_topics_new(&c);

	ck_assert_ptr_nonnull(t);
	return t;
}

static void
feed(struct mqtt_topics *t, const struct frame *f, int64_t now,
    struct mqtt_out *out)
{
	struct ev e = decode(f);

	ck_assert_int_eq(mqtt_topics_event(t, e.ev, e.text, strlen(e.text), now,
	    out), 0);
	ev_free(&e);
}

static size_t
count_prefix(const struct mqtt_out *out, const char *prefix)
{
	size_t k = 0;

	for (size_t i = 0; i < out->n; i++)
		if (strncmp(out->v[i].topic, prefix, strlen(prefix)) == 0)
			k++;
	return k;
}

static const struct mqtt_msg *
find(const struct mqtt_out *out, const char *topic)
{
	for (size_t i = 0; i < out->n; i++)
		if (strcmp(out->v[i].topic, topic) == 0)
			return &out->v[i];
	return NULL;
}

/* The payload on topic, which must be there. */
static const char *
payload_of(const struct mqtt_out *out, const char *topic)
{
	for (size_t i = 0; i < out->n; i++)
		if (strcmp(out->v[i].topic, topic) == 0)
			return out->v[i].payload;
	ck_abort_msg("nothing on %s", topic);
	return "";
}

static json_t *
parse(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	ck_assert_msg(j != NULL, "not JSON: %s", s);
	return j;
}

/* The first real-time frame of a logger: online, 7 + 2 x 5 configs, the
 * state; in that order. */
START_TEST(test_data_first)
{
	struct mqtt_topics *t = topics(true);
	struct frame f = golden("deye-data");
	struct mqtt_out out = {0};

	feed(t, &f, NOW, &out);
	ck_assert_uint_eq(out.n, 1 + 17 + 1);
	ck_assert_str_eq(out.v[0].topic, "dm/" SERIAL "/availability");
	ck_assert_str_eq(out.v[0].payload, "online");
	ck_assert(out.v[0].retain);
	ck_assert_uint_eq(count_prefix(&out, "ha/sensor/deye_mitm_" SERIAL "/"),
	    17);
	ck_assert_str_eq(out.v[18].topic, "dm/" SERIAL "/data");
	ck_assert(out.v[18].retain);
	ck_assert_str_eq(out.note, "");
	for (size_t i = 1; i < 18; i++) {
		ck_assert(out.v[i].retain);
		ck_assert_msg(strstr(out.v[i].topic, "/config") != NULL,
		    "%s", out.v[i].topic);
	}
	ck_assert_ptr_nonnull(find(&out,
	    "ha/sensor/deye_mitm_" SERIAL "/pv2_energy_total/config"));
	ck_assert_ptr_null(find(&out,
	    "ha/sensor/deye_mitm_" SERIAL "/pv3_v/config"));

	/* The state is the event as it came. */
	json_t *st = parse(out.v[18].payload);
	ck_assert_str_eq(json_string_value(json_object_get(st, "type")), "data");
	ck_assert(json_real_value(json_object_get(st, "grid.v")) == 232.0);
	json_decref(st);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* Every field SPEC names, on one config. */
START_TEST(test_discovery_fields)
{
	struct mqtt_topics *t = topics(true);
	struct frame f = golden("deye-data");
	struct mqtt_out out = {0};
	json_t *c, *d, *a;

	feed(t, &f, NOW, &out);
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_" SERIAL
	    "/grid_v/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c, "unique_id")),
	    "deye_mitm_" SERIAL "_grid_v");
	ck_assert_str_eq(json_string_value(json_object_get(c, "object_id")),
	    "deye_mitm_" SERIAL "_grid_v");
	ck_assert_str_eq(json_string_value(json_object_get(c, "state_topic")),
	    "dm/" SERIAL "/data");
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "value_template")), "{{ value_json['grid.v'] }}");
	ck_assert_str_eq(json_string_value(json_object_get(c, "device_class")),
	    "voltage");
	ck_assert_str_eq(json_string_value(json_object_get(c, "state_class")),
	    "measurement");
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "unit_of_measurement")), "V");
	ck_assert_int_eq(json_integer_value(json_object_get(c, "expire_after")),
	    600);
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "availability_mode")), "all");
	a = json_object_get(c, "availability");
	ck_assert_uint_eq(json_array_size(a), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0),
	    "topic")), "dm/status");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 1),
	    "topic")), "dm/" SERIAL "/availability");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c,
	    "origin"), "name")), "deye-mitm");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c,
	    "origin"), "sw_version")), DEYE_VERSION);
	d = json_object_get(c, "device");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(d,
	    "identifiers"), 0)), "deye_mitm_" SERIAL);
	ck_assert_str_eq(json_string_value(json_object_get(d, "manufacturer")),
	    "Deye");
	ck_assert_str_eq(json_string_value(json_object_get(d, "model")),
	    "micro-inverter 800 W");
	ck_assert_str_eq(json_string_value(json_object_get(d, "serial_number")),
	    "2305107146");
	ck_assert_str_eq(json_string_value(json_object_get(d, "sw_version")),
	    "AC V1.2.1.8, DC V0.1.1.7");
	json_decref(c);

	/* kWh: energy, total_increasing; the temperature in UTF-8 degrees. */
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_" SERIAL
	    "/pv1_energy_today/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c, "device_class")),
	    "energy");
	ck_assert_str_eq(json_string_value(json_object_get(c, "state_class")),
	    "total_increasing");
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "value_template")), "{{ value_json['pv.kWh_today.1'] }}");
	json_decref(c);
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_" SERIAL
	    "/inverter_temperature/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "unit_of_measurement")), "\xc2\xb0" "C");
	json_decref(c);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* The same logger again: the state only.  4 inputs: 7 + 4 x 5 configs. */
START_TEST(test_data_again_and_more_inputs)
{
	struct mqtt_topics *t = topics(true);
	struct frame f = golden("deye-data"), f4 = four_inputs();
	struct mqtt_out out = {0};

	feed(t, &f, NOW, &out);
	mqtt_out_clear(&out);
	feed(t, &f, NOW + 1000, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_str_eq(out.v[0].topic, "dm/" SERIAL "/data");
	mqtt_out_clear(&out);

	feed(t, &f4, NOW + 2000, &out);
	ck_assert_uint_eq(out.n, 27 + 1);
	ck_assert_uint_eq(count_prefix(&out, "ha/sensor/"), 27);
	ck_assert_ptr_nonnull(find(&out,
	    "ha/sensor/deye_mitm_" SERIAL "/pv4_energy_total/config"));
	ck_assert_ptr_nonnull(find(&out,
	    "ha/sensor/deye_mitm_" SERIAL "/pv3_power/config"));
	mqtt_out_clear(&out);

	/* (Re)connected: status, availability, then every config. */
	ck_assert_int_eq(mqtt_topics_connected(t, &out), 0);
	ck_assert_uint_eq(out.n, 2 + 27);
	ck_assert_str_eq(out.v[0].topic, "dm/status");
	ck_assert_str_eq(out.v[0].payload, "online");
	ck_assert_str_eq(out.v[1].topic, "dm/" SERIAL "/availability");
	mqtt_out_clear(&out);
	ck_assert_int_eq(mqtt_topics_discovery(t, &out), 0);
	ck_assert_uint_eq(out.n, 27);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* A lifetime total going down is left out and noted; a day total may
 * fall to 0. */
START_TEST(test_lifetime_total_guard)
{
	struct mqtt_topics *t = topics(true);
	struct frame f = golden("deye-data"), g = golden("deye-data");
	struct mqtt_out out = {0};
	json_t *st;

	put_u32le(&g, 37, 1700);     /* grid.kWh_total 170.0 < 177.5 */
	put_u32le(&g, 33, 0);        /* grid.kWh_today 0 */
	fix_checksum(&g);
	feed(t, &f, NOW, &out);
	mqtt_out_clear(&out);
	feed(t, &g, NOW + 1000, &out);
	ck_assert_uint_eq(out.n, 1);
	st = parse(out.v[0].payload);
	ck_assert_ptr_null(json_object_get(st, "grid.kWh_total"));
	ck_assert(json_number_value(json_object_get(st, "grid.kWh_today")) == 0);
	ck_assert(json_number_value(json_object_get(st, "pv.kWh_total.1")) ==
	    80.7);
	json_decref(st);
	ck_assert_msg(strstr(out.note, "grid.kWh_total 170 is below the 177.5")
	    != NULL, "%s", out.note);
	mqtt_out_clear(&out);

	/* The one published before still holds: 177.5 again is fine. */
	feed(t, &f, NOW + 2000, &out);
	ck_assert_str_eq(out.note, "");
	st = parse(out.v[0].payload);
	ck_assert(json_number_value(json_object_get(st, "grid.kWh_total")) ==
	    177.5);
	json_decref(st);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* Historic records go to P/S/historic, never retained, no discovery. */
START_TEST(test_historic_and_others)
{
	struct mqtt_topics *t = topics(true);
	struct frame h = golden("historic"), hb = golden("heartbeat");
	struct mqtt_out out = {0};

	feed(t, &h, NOW, &out);
	ck_assert_uint_eq(out.n, 2);
	ck_assert_str_eq(out.v[0].payload, "online");
	ck_assert(strstr(out.v[1].topic, "/historic") != NULL);
	ck_assert(!out.v[1].retain);
	ck_assert_uint_eq(count_prefix(&out, "ha/"), 0);
	mqtt_out_clear(&out);

	feed(t, &hb, NOW, &out);
	ck_assert_str_eq(out.v[out.n - 1].topic + strlen(out.v[out.n - 1].topic)
	    - strlen("/heartbeat"), "/heartbeat");
	ck_assert(!out.v[out.n - 1].retain);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* offline when the logger's connection ends, or after expire_after. */
START_TEST(test_availability)
{
	struct mqtt_topics *t = topics(true);
	struct frame f = golden("deye-data");
	struct mqtt_out out = {0};
	json_t *conn = json_pack("{s:s,s:s,s:s,s:I}", "id", "x-2", "type",
	    "connection", "listener", "deye", "conn.id", (json_int_t)3);
	const char *text = "{\"type\":\"connection\"}";

	feed(t, &f, NOW, &out);
	ck_assert_int_eq(mqtt_topics_next_expiry(t), NOW + 600000);
	mqtt_out_clear(&out);
	ck_assert_int_eq(mqtt_topics_expire(t, NOW + 599999, &out), 0);
	ck_assert_uint_eq(out.n, 0);
	ck_assert_int_eq(mqtt_topics_expire(t, NOW + 600000, &out), 0);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_str_eq(out.v[0].topic, "dm/" SERIAL "/availability");
	ck_assert_str_eq(out.v[0].payload, "offline");
	ck_assert_int_eq(mqtt_topics_next_expiry(t), INT64_MAX);
	mqtt_out_clear(&out);

	feed(t, &f, NOW + 700000, &out);
	ck_assert_str_eq(out.v[0].payload, "online");
	ck_assert_uint_eq(out.n, 2); /* no new discovery */
	mqtt_out_clear(&out);
	ck_assert_int_eq(mqtt_topics_event(t, conn, text, strlen(text),
	    NOW + 700001, &out), 0);
	ck_assert_uint_eq(out.n, 2);
	ck_assert_str_eq(out.v[0].topic, "dm/" SERIAL "/availability");
	ck_assert_str_eq(out.v[0].payload, "offline");
	ck_assert_str_eq(out.v[1].topic, "dm/connection");
	ck_assert_str_eq(out.v[1].payload, text);
	ck_assert(!out.v[1].retain);
	json_decref(conn);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

START_TEST(test_no_discovery)
{
	struct mqtt_topics *t = topics(false);
	struct frame f = golden("deye-data");
	struct mqtt_out out = {0};

	ck_assert_ptr_null(mqtt_topics_ha_status(t));
	ck_assert_str_eq(mqtt_topics_status(t), "dm/status");
	feed(t, &f, NOW, &out);
	ck_assert_uint_eq(out.n, 2);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* Envoy events under P/envoy/E; a reading also retained per device; a
 * serial cannot make a wildcard or another level. */
START_TEST(test_envoy)
{
	struct mqtt_topics *t = topics(true);
	struct mqtt_out out = {0};
	json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "type", "envoy_reading",
	    "envoy.serial", "1234/+#", "inverter.serial", "999999100001",
	    "listener", "envoy");
	const char *text = "{}";

	ck_assert_int_eq(mqtt_topics_event(t, ev, text, 2, NOW, &out), 0);
	ck_assert_uint_eq(out.n, 2);
	ck_assert_str_eq(out.v[0].topic, "dm/envoy/1234___/envoy_reading");
	ck_assert(!out.v[0].retain);
	ck_assert_str_eq(out.v[1].topic,
	    "dm/envoy/1234___/999999100001/envoy_reading");
	ck_assert(out.v[1].retain);
	json_decref(ev);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* A Solis real-time event (sensor type 0x0507; the keys the Solis decoder
 * writes, made by hand here): its own entity list, yesterday's energy
 * with no state class, apparent power in VA, a Solis device. */
START_TEST(test_solis_entities)
{
	struct mqtt_topics *t = topics(true);
	struct mqtt_out out = {0};
	json_t *ev = json_pack("{s:s,s:s,s:i,s:I,s:s,s:s,s:f,s:f,s:f,s:f,"
	    "s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:s}",
	    "type", "data", "listener", "solis", "conn.id", 4,
	    "logger.serial", (json_int_t)4040681666LL, "data.schema", "0x07",
	    "inv.serial.ascii", "060E31208070023", "inv.degc", 36.6,
	    "pv.v.1", 138.2, "pv.i.1", 3.1, "pv.w.1", 428.4, "grid.i", 1.8,
	    "grid.v", 231.0, "grid.hz", 49.98, "grid.kWh_today", 6.6,
	    "grid.kWh_total", 2100.0, "grid.kWh_yesterday", 5.0,
	    "grid.apparent_power_va", 419.0, "meta.current_time",
	    "21-03-12 14:45:37");
	char *text = json_dumps(ev, JSON_COMPACT);
	static const char *const objects[] = {"grid_v", "grid_i", "grid_hz",
	    "grid_energy_today", "grid_energy_total", "grid_energy_yesterday",
	    "grid_apparent_power", "inverter_temperature", "pv1_v", "pv1_i",
	    "pv1_power"};
	const char *pre = "ha/sensor/deye_mitm_4040681666/";
	json_t *c, *dev;

	ck_assert_int_eq(mqtt_topics_event(t, ev, text, strlen(text), NOW,
	    &out), 0);
	ck_assert_uint_eq(count_prefix(&out, pre), 11);
	for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
		char topic[128];

		snprintf(topic, sizeof topic, "%s%s/config", pre, objects[i]);
		ck_assert_msg(find(&out, topic) != NULL, "no %s", topic);
	}
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_4040681666/"
	    "grid_energy_yesterday/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c, "device_class")),
	    "energy");
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "unit_of_measurement")), "kWh");
	ck_assert_ptr_null(json_object_get(c, "state_class"));
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "value_template")), "{{ value_json['grid.kWh_yesterday'] }}");
	dev = json_object_get(c, "device");
	ck_assert_str_eq(json_string_value(json_object_get(dev,
	    "manufacturer")), "Solis");
	ck_assert_str_eq(json_string_value(json_object_get(dev, "name")),
	    "Solis 060E31208070023");
	ck_assert_str_eq(json_string_value(json_object_get(dev, "model")),
	    "inverter");
	ck_assert_str_eq(json_string_value(json_object_get(dev,
	    "serial_number")), "060E31208070023");
	json_decref(c);
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_4040681666/"
	    "grid_apparent_power/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c, "device_class")),
	    "apparent_power");
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "unit_of_measurement")), "VA");
	ck_assert_str_eq(json_string_value(json_object_get(c, "state_class")),
	    "measurement");
	json_decref(c);
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_4040681666/"
	    "grid_energy_total/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c, "state_class")),
	    "total_increasing");
	json_decref(c);
	ck_assert_str_eq(out.v[out.n - 1].topic, "dm/4040681666/data");
	free(text);
	json_decref(ev);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* Three phases: L2 and L3 get entities of their own. */
START_TEST(test_three_phases)
{
	struct mqtt_topics *t = topics(true);
	struct mqtt_out out = {0};
	json_t *ev = json_pack("{s:s,s:I,s:f,s:f,s:f,s:f,s:f,s:f}", "type",
	    "data", "logger.serial", (json_int_t)17, "grid.v", 230.1,
	    "grid.i", 1.0, "grid.v.2", 230.2, "grid.i.2", 1.1, "grid.v.3",
	    230.3, "grid.i.3", 1.2);
	char *text = json_dumps(ev, JSON_COMPACT);
	json_t *c;

	ck_assert_int_eq(mqtt_topics_event(t, ev, text, strlen(text), NOW,
	    &out), 0);
	ck_assert_uint_eq(count_prefix(&out, "ha/sensor/deye_mitm_17/"), 6);
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_17/grid_v3/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c,
	    "value_template")), "{{ value_json['grid.v.3'] }}");
	ck_assert_str_eq(json_string_value(json_object_get(c, "name")),
	    "Grid voltage L3");
	json_decref(c);
	ck_assert_ptr_nonnull(find(&out, "ha/sensor/deye_mitm_17/grid_i2/config"));
	free(text);
	json_decref(ev);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* An Envoy reading: one device per microinverter, its entities once (and
 * again on a reconnect), the power from energy over duration. */
START_TEST(test_envoy_discovery)
{
	struct mqtt_topics *t = topics(true);
	struct mqtt_out out = {0};
	json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:f,s:f,s:f,s:f,"
	    "s:i,s:i}", "type", "envoy_reading", "listener", "envoy",
	    "envoy.serial", "999999000001", "inverter.serial", "999999100001",
	    "inverter.channel", 1, "reading.duration_s", 296, "reading.ac_v",
	    250.102, "reading.ac_hz", 59.979, "reading.dc_v", 27.782,
	    "reading.dc_a", 7.462, "reading.degc", 49, "reading.energy_ws",
	    67535);
	char *text = json_dumps(ev, JSON_COMPACT);
	const char *pre = "ha/sensor/deye_mitm_envoy_999999100001/";
	json_t *c, *dev;

	ck_assert_int_eq(mqtt_topics_event(t, ev, text, strlen(text), NOW,
	    &out), 0);
	ck_assert_uint_eq(count_prefix(&out, pre), 6);
	c = parse(payload_of(&out, "ha/sensor/deye_mitm_envoy_999999100001/"
	    "dc_i/config"));
	ck_assert_str_eq(json_string_value(json_object_get(c, "state_topic")),
	    "dm/envoy/999999000001/999999100001/envoy_reading");
	ck_assert_str_eq(json_string_value(json_object_get(c, "unique_id")),
	    "deye_mitm_envoy_999999100001_dc_i");
	dev = json_object_get(c, "device");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(dev,
	    "identifiers"), 0)), "deye_mitm_envoy_999999100001");
	ck_assert_str_eq(json_string_value(json_object_get(dev,
	    "manufacturer")), "Enphase");
	json_decref(c);
	/* The same again: no new configs; after a reconnect, all again. */
	mqtt_out_clear(&out);
	ck_assert_int_eq(mqtt_topics_event(t, ev, text, strlen(text), NOW,
	    &out), 0);
	ck_assert_uint_eq(count_prefix(&out, pre), 0);
	mqtt_out_clear(&out);
	ck_assert_int_eq(mqtt_topics_connected(t, &out), 0);
	ck_assert_uint_eq(count_prefix(&out, pre), 6);
	free(text);
	json_decref(ev);
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

/* A backlog delivered late: the logger was last heard of when the event
 * was received, not when it is published, so it expires at once. */
START_TEST(test_backlog_uses_received_time)
{
	struct mqtt_topics *t = topics(true);
	struct frame f = golden("deye-data");
	struct mqtt_out out = {0};

	feed(t, &f, NOW + 700000, &out); /* received at NOW */
	ck_assert_str_eq(out.v[0].payload, "online");
	ck_assert_int_eq(mqtt_topics_next_expiry(t), NOW + 600000);
	mqtt_out_clear(&out);
	ck_assert_int_eq(mqtt_topics_expire(t, NOW + 700000, &out), 0);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_str_eq(out.v[0].payload, "offline");
	mqtt_out_free(&out);
	mqtt_topics_free(t);
}
END_TEST

Suite *
mqtt_suite(void)
{
	Suite *s = suite_create("mqtt");
	TCase *tc = tcase_create("topics");

	tcase_add_test(tc, test_data_first);
	tcase_add_test(tc, test_discovery_fields);
	tcase_add_test(tc, test_data_again_and_more_inputs);
	tcase_add_test(tc, test_lifetime_total_guard);
	tcase_add_test(tc, test_historic_and_others);
	tcase_add_test(tc, test_availability);
	tcase_add_test(tc, test_no_discovery);
	tcase_add_test(tc, test_envoy);
	tcase_add_test(tc, test_solis_entities);
	tcase_add_test(tc, test_three_phases);
	tcase_add_test(tc, test_envoy_discovery);
	tcase_add_test(tc, test_backlog_uses_received_time);
	suite_add_tcase(s, tc);
	return s;
}
