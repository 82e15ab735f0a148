/*
 * mqtt_topics.c - from one event to the MQTT messages that carry it.
 *
 * Topics (P = topic_prefix, S = logger.serial, E = envoy.serial):
 *
 *   P/status                 online / offline (the will), retained
 *   P/S/availability         online on a logger's first frame, offline when
 *                            its connection ends or it is silent for
 *                            expire_after, retained, sent on changes only
 *   P/S/data                 the latest real-time data event, retained
 *   P/S/historic             historic data events (never on P/S/data)
 *   P/S/<type>               every other Solarman event
 *   P/envoy/E/<type>         Envoy events; readings and intervals also
 *                            retained at P/envoy/E/<inverter serial>/<type>
 *   P/<type>                 events with no serial (undecodable, connection)
 *
 * Home Assistant discovery: one retained config per value of a real-time
 * data event, at <discovery_prefix>/sensor/deye_mitm_S/<object>/config,
 * sent when a logger first shows a set of values (a new logger, or a new
 * PV input count), and again on every (re)connect and Home Assistant
 * birth.  Each config reads its value from P/S/data with a template, so
 * the state is one retained message per logger, not one per value.
 *
 * Lifetime totals (grid.kWh_total, pv.kWh_total.N) are kept per logger: a
 * value below the last one published is a glitch that Home Assistant's
 * total_increasing would take for a meter reset, so it is left out of that
 * message (the note says so); the day totals may fall to 0 each night.
 *
 * Pure: the caller passes the time, publishes, and logs the note.
 */
#include "sinks/mqtt_topics.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PV_MAX 4
#define LOGGERS_MAX 1024 /* beyond it, no availability or discovery */
#define LISTENER_MAX 64

/* A value Home Assistant gets an entity for; %u is the PV input.  dc_*:
 * the same value in Hypfer's dummycloud (NULL: it has none): its topic
 * under deye-dummycloud/S/, its config topic's object (after "S_"), its
 * unique id (after "deye_dummycloud_S_") and its name. */
struct value {
	const char *key, *object, *name, *unit, *dclass;
	bool energy;   /* kWh: total_increasing, else measurement */
	bool lifetime; /* never published going down */
	const char *dc_topic, *dc_object, *dc_id, *dc_name;
	bool no_class; /* no state_class: neither a meter nor a measurement */
};

static const struct value grid_values[] = {
	{"grid.v", "grid_v", "Grid voltage", "V", "voltage", false, false,
	    "grid/v", "grid_v", "grid_v", "Grid Voltage", false},
	{"grid.i", "grid_i", "Grid current", "A", "current", false, false,
	    NULL, NULL, NULL, NULL, false},
	{"grid.hz", "grid_hz", "Grid frequency", "Hz", "frequency", false,
	    false, "grid/hz", "grid_hz", "grid_hz", "Grid Frequency", false},
	{"grid.active_power_w", "grid_power", "Grid power", "W", "power",
	    false, false, "grid/active_power_w", "grid_active_power_w",
	    "grid_active_power_w", "Grid Power (Active)", false},
	{"grid.kWh_today", "grid_energy_today", "Energy today", "kWh",
	    "energy", true, false, "grid/kWh_today", "grid_kWh_today",
	    "grid_energy_today", "Grid Energy Today", false},
	{"grid.kWh_total", "grid_energy_total", "Energy total", "kWh",
	    "energy", true, true, "grid/kWh_total", "grid_kWh_total",
	    "grid_energy_total", "Grid Energy Total", false},
	/* Solis (sensor type 0x0507): yesterday's total changes once a
	 * day and may go down; as total_increasing Home Assistant would
	 * count each change as energy, so it is a plain energy value with
	 * no state class (no long-term statistics). */
	{"grid.kWh_yesterday", "grid_energy_yesterday", "Energy yesterday",
	    "kWh", "energy", true, false, NULL, NULL, NULL, NULL, true},
	{"grid.apparent_power_va", "grid_apparent_power", "Grid apparent power",
	    "VA", "apparent_power", false, false, NULL, NULL, NULL, NULL,
	    false},
	/* Three phases (Sofar): grid.v and grid.i are the first. */
	{"grid.v.2", "grid_v2", "Grid voltage L2", "V", "voltage", false,
	    false, NULL, NULL, NULL, NULL, false},
	{"grid.i.2", "grid_i2", "Grid current L2", "A", "current", false,
	    false, NULL, NULL, NULL, NULL, false},
	{"grid.v.3", "grid_v3", "Grid voltage L3", "V", "voltage", false,
	    false, NULL, NULL, NULL, NULL, false},
	{"grid.i.3", "grid_i3", "Grid current L3", "A", "current", false,
	    false, NULL, NULL, NULL, NULL, false},
	{"inv.degc", "inverter_temperature", "Inverter temperature",
	    "\xc2\xb0" "C", "temperature", false, false,
	    "inverter/radiator_temperature", "inverter_radiator_temperature",
	    "inverter_radiator_temperature", "Radiator Temperature", false},
};
static const struct value pv_values[] = {
	{"pv.v.%u", "pv%u_v", "PV%u voltage", "V", "voltage", false, false,
	    "pv/%u/v", "pv%u_v", "pv_%u_v", "PV %u Voltage", false},
	{"pv.i.%u", "pv%u_i", "PV%u current", "A", "current", false, false,
	    "pv/%u/i", "pv%u_i", "pv_%u_i", "PV %u Current", false},
	{"pv.w.%u", "pv%u_power", "PV%u power", "W", "power", false, false,
	    "pv/%u/w", "pv%u_w", "pv_%u_w", "PV %u Power", false},
	{"pv.kWh_today.%u", "pv%u_energy_today", "PV%u energy today", "kWh",
	    "energy", true, false, "pv/%u/kWh_today", "pv%u_kWh_today",
	    "pv_%u_kWh_today", "PV %u Energy Today", false},
	{"pv.kWh_total.%u", "pv%u_energy_total", "PV%u energy total", "kWh",
	    "energy", true, true, "pv/%u/kWh_total", "pv%u_kWh_total",
	    "pv_%u_kWh_total", "PV %u Energy Total", false},
};
#define NGRID (sizeof grid_values / sizeof grid_values[0])
#define NPV (sizeof pv_values / sizeof pv_values[0])
#define NVALUES (NGRID + PV_MAX * NPV)
_Static_assert(NVALUES <= 64, "a logger's values are a 64-bit mask");
#define DC_PREFIX "deye-dummycloud"
#define DC_EXPIRE_S 360 /* dummycloud's, on its measurements */
#define GRID_POWER 3    /* grid_values[3]: dummycloud's efficiency needs it */
_Static_assert(GRID_POWER < NGRID, "grid power is a grid value");

struct logger {
	uint64_t serial;
	bool online;
	int64_t last_ms;
	char listener[LISTENER_MAX]; /* the connection it was last seen on */
	uint64_t conn_id;
	uint64_t values;             /* bit i: value i has an entity */
	json_t *device;              /* for discovery; NULL: none yet */
	char ip[64];                 /* the logger's address, for dummycloud */
	double total[NVALUES];       /* lifetime totals published */
	uint64_t has_total;
};

/* An Envoy microinverter that sent a reading: a device of its own. */
struct envoy_dev {
	char envoy[128], serial[128]; /* topic levels */
	uint32_t values;            /* bit i: envoy_values[i] has an entity */
};

struct mqtt_topics {
	char *prefix, *disc_prefix;
	char *status, *ha_status;
	int64_t expire_ms;
	bool dummycloud;
	struct logger *v;
	size_t n, cap;
	struct envoy_dev *ev;
	size_t nev, capev;
};

/* The entities of an Envoy microinverter, from its envoy_reading events
 * (docs/events.md); power is the reading's energy over its duration. */
static const struct envoy_value {
	const char *key, *object, *name, *unit, *dclass, *tmpl;
} envoy_values[] = {
	{"reading.ac_v", "ac_v", "AC voltage", "V", "voltage", NULL},
	{"reading.ac_hz", "ac_hz", "AC frequency", "Hz", "frequency", NULL},
	{"reading.dc_v", "dc_v", "DC voltage", "V", "voltage", NULL},
	{"reading.dc_a", "dc_i", "DC current", "A", "current", NULL},
	{"reading.degc", "temperature", "Temperature", "\xc2\xb0" "C",
	    "temperature", NULL},
	{"reading.energy_ws", "power", "Power", "W", "power",
	    "{{ (value_json['reading.energy_ws'] / "
	    "value_json['reading.duration_s']) | round(1) "
	    "if value_json['reading.duration_s'] > 0 else None }}"},
};
#define NENVOY (sizeof envoy_values / sizeof envoy_values[0])

/* Value i of the table (grid values first, then PV 1..4): its strings,
 * formatted into the buffers; pv is its PV input, 0 for the others. */
struct value_text {
	char key[32], object[40], name[40];
	char dc_topic[48], dc_object[48], dc_id[48], dc_name[40];
	unsigned pv;
	const struct value *v;
};

static void
value_text(size_t i, struct value_text *t)
{
	unsigned pv = 0;

	if (i < NGRID)
		t->v = &grid_values[i];
	else {
		pv = (unsigned)((i - NGRID) / NPV) + 1;
		t->v = &pv_values[(i - NGRID) % NPV];
	}
	t->pv = pv;
	/* The grid formats have no %u: the extra argument is ignored. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
	snprintf(t->key, sizeof t->key, t->v->key, pv);
	snprintf(t->object, sizeof t->object, t->v->object, pv);
	snprintf(t->name, sizeof t->name, t->v->name, pv);
	t->dc_topic[0] = t->dc_object[0] = t->dc_id[0] = t->dc_name[0] = '\0';
	if (t->v->dc_topic != NULL) {
		snprintf(t->dc_topic, sizeof t->dc_topic, t->v->dc_topic, pv);
		snprintf(t->dc_object, sizeof t->dc_object, t->v->dc_object, pv);
		snprintf(t->dc_id, sizeof t->dc_id, t->v->dc_id, pv);
		snprintf(t->dc_name, sizeof t->dc_name, t->v->dc_name, pv);
	}
#pragma GCC diagnostic pop
}

static char *
dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
dup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

void
mqtt_out_clear(struct mqtt_out *out)
{
	for (size_t i = 0; i < out->n; i++) {
		free(out->v[i].topic);
		free(out->v[i].payload);
	}
	out->n = 0;
	out->note[0] = '\0';
}

void
mqtt_out_free(struct mqtt_out *out)
{
	mqtt_out_clear(out);
	free(out->v);
	out->v = NULL;
	out->cap = 0;
}

/* Takes topic and payload (freed on failure). */
static int
out_add(struct mqtt_out *out, char *topic, char *payload, bool retain)
{
	if (topic == NULL || payload == NULL)
		goto fail;
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 16;
		struct mqtt_msg *v = realloc(out->v, cap * sizeof *v);

		if (v == NULL)
			goto fail;
		out->v = v;
		out->cap = cap;
	}
	out->v[out->n].topic = topic;
	out->v[out->n].payload = payload;
	out->v[out->n].retain = retain;
	out->n++;
	return 0;
fail:
	free(topic);
	free(payload);
	return -1;
}

static void
note_add(struct mqtt_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note_add(struct mqtt_out *out, const char *fmt, ...)
{
	size_t n = strlen(out->note);
	va_list ap;

	if (n >= sizeof out->note - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(out->note + n, sizeof out->note - n, fmt, ap);
	va_end(ap);
}

/* A topic level from text the event brings (an Envoy serial): anything
 * but letters, digits, '-', '_' and '.' becomes '_', so that it can hold
 * no '/', '+', '#' or invalid UTF-8. */
static void
level(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
		buf[i] = ok ? c : '_';
	}
	buf[i] = '\0';
	if (i == 0)
		snprintf(buf, len, "_");
}

struct mqtt_topics *
mqtt_topics_new(const struct mqtt_topics_conf *c)
{
	struct mqtt_topics *t = calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->expire_ms = c->expire_after_s * 1000;
	t->dummycloud = c->dummycloud;
	if ((t->prefix = strdup(c->prefix)) == NULL ||
	    (t->status = dup_printf("%s/status", c->prefix)) == NULL)
		goto fail;
	if (c->discovery_prefix != NULL &&
	    ((t->disc_prefix = strdup(c->discovery_prefix)) == NULL ||
	    (t->ha_status = dup_printf("%s/status", c->discovery_prefix)) ==
	    NULL))
		goto fail;
	return t;
fail:
	mqtt_topics_free(t);
	return NULL;
}

void
mqtt_topics_free(struct mqtt_topics *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		json_decref(t->v[i].device);
	free(t->v);
	free(t->ev);
	free(t->prefix);
	free(t->disc_prefix);
	free(t->status);
	free(t->ha_status);
	free(t);
}

const char *
mqtt_topics_status(const struct mqtt_topics *t)
{
	return t->status;
}

const char *
mqtt_topics_ha_status(const struct mqtt_topics *t)
{
	return t->ha_status;
}

static struct logger *
logger_get(struct mqtt_topics *t, uint64_t serial)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].serial == serial)
			return &t->v[i];
	if (t->n == LOGGERS_MAX)
		return NULL;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;
		struct logger *v = realloc(t->v, cap * sizeof *v);

		if (v == NULL)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	memset(&t->v[t->n], 0, sizeof t->v[t->n]);
	t->v[t->n].serial = serial;
	return &t->v[t->n++];
}

static int
availability(struct mqtt_topics *t, const struct logger *l,
    struct mqtt_out *out)
{
	return out_add(out, dup_printf("%s/%" PRIu64 "/availability",
	    t->prefix, l->serial), strdup(l->online ? "online" : "offline"),
	    true);
}

/* The discovery config of value i for logger l. */
static int
discovery_one(struct mqtt_topics *t, const struct logger *l, size_t i,
    struct mqtt_out *out)
{
	struct value_text vt;
	char uid[96], tmpl[64];
	json_t *o = json_object(), *avail = json_array(), *origin;
	char *payload;

	value_text(i, &vt);
	snprintf(uid, sizeof uid, "deye_mitm_%" PRIu64 "_%s", l->serial,
	    vt.object);
	snprintf(tmpl, sizeof tmpl, "{{ value_json['%s'] }}", vt.key);
	json_object_set_new(o, "name", json_string(vt.name));
	json_object_set_new(o, "unique_id", json_string(uid));
	json_object_set_new(o, "object_id", json_string(uid));
	json_object_set_new(o, "state_topic", json_sprintf("%s/%" PRIu64
	    "/data", t->prefix, l->serial));
	json_object_set_new(o, "value_template", json_string(tmpl));
	json_object_set_new(o, "device_class", json_string(vt.v->dclass));
	if (!vt.v->no_class)
		json_object_set_new(o, "state_class", json_string(vt.v->energy ?
		    "total_increasing" : "measurement"));
	json_object_set_new(o, "unit_of_measurement", json_string(vt.v->unit));
	json_object_set_new(o, "expire_after",
	    json_integer(t->expire_ms / 1000));
	json_array_append_new(avail, json_pack("{s:s}", "topic", t->status));
	json_array_append_new(avail, json_pack("{s:o}", "topic",
	    json_sprintf("%s/%" PRIu64 "/availability", t->prefix, l->serial)));
	json_object_set_new(o, "availability", avail);
	json_object_set_new(o, "availability_mode", json_string("all"));
	json_object_set(o, "device", l->device);
	origin = json_pack("{s:s,s:s}", "name", "deye-mitm", "sw_version",
	    DEYE_VERSION);
	json_object_set_new(o, "origin", origin);
	payload = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out_add(out, dup_printf("%s/sensor/deye_mitm_%" PRIu64
	    "/%s/config", t->disc_prefix, l->serial, vt.object), payload, true);
}

/* ---- Hypfer's dummycloud: its topics, payloads and discovery ids ----
 *
 * What dummycloud/src/MqttClient.js publishes, for its users' dashboards
 * and entity history: one plain-number topic per value under
 * deye-dummycloud/S/ (the energy ones retained, a lifetime total only
 * above 0), inverter/efficiency, and one retained config per value with
 * its ids, names, device, expire_after on the measurements and
 * enabled_by_default on the PV inputs (the first two); no availability,
 * as there.  S is the logger's serial, as there. */

/* A number as JavaScript's toString writes it (232, 0.9, 27.7): the
 * shortest form that reads back the same. */
static char *
js_number(double x)
{
	char buf[32];

	if (x == 0)
		return strdup("0");
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	return strdup(buf);
}

static json_t *
dc_device(const struct logger *l)
{
	return json_pack("{s:s,s:s,s:o,s:o,s:[o]}",
	    "manufacturer", "Deye", "model", "Microinverter",
	    "name", json_sprintf("Deye Microinverter %" PRIu64, l->serial),
	    "configuration_url", json_sprintf("http://%s/index_cn.html", l->ip),
	    "identifiers", json_sprintf("deye_dummycloud_%" PRIu64, l->serial));
}

static int
dc_config(struct mqtt_topics *t, const struct logger *l, const char *object,
    json_t *o, struct mqtt_out *out)
{
	char *payload;

	json_object_set_new(o, "device", dc_device(l));
	payload = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out_add(out, dup_printf("%s/sensor/deye_dummycloud_%" PRIu64
	    "/%" PRIu64 "_%s/config", t->disc_prefix, l->serial, l->serial,
	    object), payload, true);
}

static int
dc_discovery_one(struct mqtt_topics *t, const struct logger *l,
    const struct value_text *vt, struct mqtt_out *out)
{
	json_t *o = json_object();
	char id[96];

	snprintf(id, sizeof id, "deye_dummycloud_%" PRIu64 "_%s", l->serial,
	    vt->dc_id);
	json_object_set_new(o, "state_topic", json_sprintf(DC_PREFIX
	    "/%" PRIu64 "/%s", l->serial, vt->dc_topic));
	json_object_set_new(o, "name", json_string(vt->dc_name));
	json_object_set_new(o, "unit_of_measurement", json_string(vt->v->unit));
	json_object_set_new(o, "device_class", json_string(vt->v->dclass));
	json_object_set_new(o, "state_class", json_string(vt->v->energy ?
	    "total_increasing" : "measurement"));
	json_object_set_new(o, "object_id", json_string(id));
	json_object_set_new(o, "unique_id", json_string(id));
	if (!vt->v->energy)
		json_object_set_new(o, "expire_after", json_integer(DC_EXPIRE_S));
	if (vt->pv != 0)
		json_object_set_new(o, "enabled_by_default",
		    json_boolean(vt->pv < 3));
	return dc_config(t, l, vt->dc_object, o, out);
}

static int
dc_discovery_efficiency(struct mqtt_topics *t, const struct logger *l,
    struct mqtt_out *out)
{
	json_t *o = json_object();
	char id[96];

	snprintf(id, sizeof id, "deye_dummycloud_%" PRIu64
	    "_inverter_efficiency", l->serial);
	json_object_set_new(o, "state_topic", json_sprintf(DC_PREFIX
	    "/%" PRIu64 "/inverter/efficiency", l->serial));
	json_object_set_new(o, "name", json_string("Inverter Efficiency"));
	json_object_set_new(o, "unit_of_measurement", json_string("%"));
	json_object_set_new(o, "entity_category", json_string("diagnostic"));
	json_object_set_new(o, "icon", json_string("mdi:cog-transfer"));
	json_object_set_new(o, "state_class", json_string("measurement"));
	json_object_set_new(o, "object_id", json_string(id));
	json_object_set_new(o, "unique_id", json_string(id));
	json_object_set_new(o, "expire_after", json_integer(DC_EXPIRE_S));
	json_object_set_new(o, "value_template", json_string("{{ value_json }}"));
	return dc_config(t, l, "inverter_efficiency", o, out);
}

/* The per-value topics of a real-time event ev (lifetime glitches
 * already left out). */
static int
dc_values(const struct logger *l, const json_t *ev, struct mqtt_out *out)
{
	double dc_w = 0, ac_w;
	json_t *j;

	for (size_t i = 0; i < NVALUES; i++) {
		struct value_text vt;
		double x;

		value_text(i, &vt);
		if (vt.dc_topic[0] == '\0' ||
		    !json_is_number(j = json_object_get(ev, vt.key)))
			continue;
		x = json_number_value(j);
		if (strncmp(vt.key, "pv.w.", 5) == 0)
			dc_w += x;
		if (vt.v->lifetime && !(x > 0))
			continue;
		if (out_add(out, dup_printf(DC_PREFIX "/%" PRIu64 "/%s",
		    l->serial, vt.dc_topic), js_number(x), vt.v->energy) != 0)
			return -1;
	}
	if (!json_is_number(j = json_object_get(ev, "grid.active_power_w")))
		return 0;
	/* AC over DC power, in %, two decimals; "null" when undefined. */
	ac_w = fabs(json_number_value(j));
	return out_add(out, dup_printf(DC_PREFIX "/%" PRIu64
	    "/inverter/efficiency", l->serial), dc_w > 0 && dc_w > ac_w ?
	    dup_printf("%.2f", ac_w / dc_w * 100) : strdup("null"), false);
}

static int
discovery_logger(struct mqtt_topics *t, const struct logger *l,
    struct mqtt_out *out)
{
	if (t->disc_prefix == NULL || l->device == NULL)
		return 0;
	for (size_t i = 0; i < NVALUES; i++)
		if ((l->values & ((uint64_t)1 << i)) &&
		    discovery_one(t, l, i, out) != 0)
			return -1;
	if (!t->dummycloud)
		return 0;
	for (size_t i = 0; i < NVALUES; i++) {
		struct value_text vt;

		value_text(i, &vt);
		if ((l->values & ((uint64_t)1 << i)) && vt.dc_topic[0] != '\0' &&
		    dc_discovery_one(t, l, &vt, out) != 0)
			return -1;
	}
	if ((l->values & ((uint64_t)1 << GRID_POWER)) &&
	    dc_discovery_efficiency(t, l, out) != 0)
		return -1;
	return 0;
}

/* ---- Envoy microinverters ---- */

/* An id level for Home Assistant: [a-zA-Z0-9_-] only. */
static void
id_level(const char *s, char *buf, size_t len)
{
	level(s, buf, len);
	for (char *p = buf; *p != '\0'; p++)
		if (*p == '.')
			*p = '_';
}

static int
discovery_envoy_one(struct mqtt_topics *t, const struct envoy_dev *e,
    size_t i, struct mqtt_out *out)
{
	const struct envoy_value *v = &envoy_values[i];
	char id[128], uid[192], tmpl[80];
	json_t *o = json_object();
	char *payload;

	id_level(e->serial, id, sizeof id);
	snprintf(uid, sizeof uid, "deye_mitm_envoy_%s_%s", id, v->object);
	snprintf(tmpl, sizeof tmpl, "{{ value_json['%s'] }}", v->key);
	json_object_set_new(o, "name", json_string(v->name));
	json_object_set_new(o, "unique_id", json_string(uid));
	json_object_set_new(o, "object_id", json_string(uid));
	json_object_set_new(o, "state_topic", json_sprintf(
	    "%s/envoy/%s/%s/envoy_reading", t->prefix, e->envoy, e->serial));
	json_object_set_new(o, "value_template", json_string(v->tmpl != NULL ?
	    v->tmpl : tmpl));
	json_object_set_new(o, "device_class", json_string(v->dclass));
	json_object_set_new(o, "state_class", json_string("measurement"));
	json_object_set_new(o, "unit_of_measurement", json_string(v->unit));
	json_object_set_new(o, "expire_after",
	    json_integer(t->expire_ms / 1000));
	/* No connection of its own to follow: the bridge's status only. */
	json_object_set_new(o, "availability", json_pack("[{s:s}]", "topic",
	    t->status));
	json_object_set_new(o, "device", json_pack("{s:[o],s:s,s:s,s:o,s:s}",
	    "identifiers", json_sprintf("deye_mitm_envoy_%s", id),
	    "manufacturer", "Enphase", "model", "microinverter",
	    "name", json_sprintf("Enphase microinverter %s", e->serial),
	    "serial_number", e->serial));
	json_object_set_new(o, "origin", json_pack("{s:s,s:s}", "name",
	    "deye-mitm", "sw_version", DEYE_VERSION));
	payload = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out_add(out, dup_printf("%s/sensor/deye_mitm_envoy_%s/%s/config",
	    t->disc_prefix, id, v->object), payload, true);
}

static int
discovery_envoy(struct mqtt_topics *t, const struct envoy_dev *e,
    struct mqtt_out *out)
{
	if (t->disc_prefix == NULL)
		return 0;
	for (size_t i = 0; i < NENVOY; i++)
		if ((e->values & (1u << i)) &&
		    discovery_envoy_one(t, e, i, out) != 0)
			return -1;
	return 0;
}

/* A reading of microinverter serial (behind Envoy envoy, both topic
 * levels): its discovery, when it or its set of values is new. */
static int
envoy_reading(struct mqtt_topics *t, const json_t *ev, const char *envoy,
    const char *serial, struct mqtt_out *out)
{
	struct envoy_dev *e = NULL;
	uint32_t values = 0;

	for (size_t i = 0; i < NENVOY; i++)
		if (json_is_number(json_object_get(ev, envoy_values[i].key)))
			values |= 1u << i;
	if (!json_is_number(json_object_get(ev, "reading.duration_s")))
		values &= ~(1u << (NENVOY - 1)); /* no power without it */
	if (values == 0)
		return 0;
	for (size_t i = 0; i < t->nev && e == NULL; i++)
		if (strcmp(t->ev[i].serial, serial) == 0 &&
		    strcmp(t->ev[i].envoy, envoy) == 0)
			e = &t->ev[i];
	if (e == NULL) {
		if (t->nev == LOGGERS_MAX)
			return 0;
		if (t->nev == t->capev) {
			size_t cap = t->capev ? t->capev * 2 : 8;
			struct envoy_dev *v = realloc(t->ev, cap * sizeof *v);

			if (v == NULL)
				return -1;
			t->ev = v;
			t->capev = cap;
		}
		e = &t->ev[t->nev++];
		memset(e, 0, sizeof *e);
		snprintf(e->envoy, sizeof e->envoy, "%s", envoy);
		snprintf(e->serial, sizeof e->serial, "%s", serial);
	}
	if (values == e->values)
		return 0;
	e->values = values;
	return discovery_envoy(t, e, out);
}

int
mqtt_topics_discovery(struct mqtt_topics *t, struct mqtt_out *out)
{
	for (size_t i = 0; i < t->n; i++)
		if (discovery_logger(t, &t->v[i], out) != 0)
			return -1;
	for (size_t i = 0; i < t->nev; i++)
		if (discovery_envoy(t, &t->ev[i], out) != 0)
			return -1;
	return 0;
}

int
mqtt_topics_connected(struct mqtt_topics *t, struct mqtt_out *out)
{
	if (out_add(out, strdup(t->status), strdup("online"), true) != 0)
		return -1;
	for (size_t i = 0; i < t->n; i++)
		if (availability(t, &t->v[i], out) != 0)
			return -1;
	return mqtt_topics_discovery(t, out);
}

int
mqtt_topics_expire(struct mqtt_topics *t, int64_t now_ms,
    struct mqtt_out *out)
{
	for (size_t i = 0; i < t->n; i++) {
		struct logger *l = &t->v[i];

		if (l->online && now_ms - l->last_ms >= t->expire_ms) {
			l->online = false;
			if (availability(t, l, out) != 0)
				return -1;
		}
	}
	return 0;
}

int64_t
mqtt_topics_next_expiry(const struct mqtt_topics *t)
{
	int64_t next = INT64_MAX;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].online && t->v[i].last_ms + t->expire_ms < next)
			next = t->v[i].last_ms + t->expire_ms;
	return next;
}

/* The host of a conn.peer ("192.0.2.7:4242", "[2001:db8::7]:4242"),
 * brackets kept: what goes between http:// and the path. */
static void
peer_host(const char *peer, char *buf, size_t len)
{
	const char *colon = peer != NULL ? strrchr(peer, ':') : NULL;
	size_t n = colon != NULL ? (size_t)(colon - peer) : 0;

	if (n >= len)
		n = len - 1;
	memcpy(buf, peer != NULL ? peer : "", n);
	buf[n] = '\0';
}

/* The device of a real-time record, for its discovery configs. */
static json_t *
device_of(const json_t *ev, uint64_t serial)
{
	const char *inv = json_string_value(json_object_get(ev,
	    "inv.serial.ascii"));
	const char *schema = json_string_value(json_object_get(ev,
	    "data.schema"));
	const char *ac = json_string_value(json_object_get(ev,
	    "meta.ac_fw_ver"));
	const char *dc = json_string_value(json_object_get(ev,
	    "meta.dc_master_fw_ver"));
	json_t *rated = json_object_get(ev, "meta.rated_power_w");
	json_t *d = json_object();
	const char *maker, *model;
	char id[64];

	snprintf(id, sizeof id, "deye_mitm_%" PRIu64, serial);
	json_object_set_new(d, "identifiers", json_pack("[s]", id));
	/* The schema is the inverter family (the sensor type's low byte):
	 * 0x08 Deye micro-inverters, 0x07 Ginlong Solis. */
	schema = schema != NULL ? schema : "";
	maker = strcmp(schema, "0x08") == 0 ? "Deye" :
	    strcmp(schema, "0x07") == 0 ? "Solis" : "Solarman";
	if (inv != NULL)
		json_object_set_new(d, "name", json_sprintf("%s %s", maker, inv));
	else
		json_object_set_new(d, "name", json_sprintf("Solarman logger %"
		    PRIu64, serial));
	json_object_set_new(d, "manufacturer", json_string(maker));
	model = strcmp(schema, "0x08") == 0 ? "micro-inverter" : "inverter";
	if (json_is_number(rated))
		json_object_set_new(d, "model", json_sprintf("%s %.0f W", model,
		    json_number_value(rated)));
	else
		json_object_set_new(d, "model", json_string(model));
	if (inv != NULL)
		json_object_set_new(d, "serial_number", json_string(inv));
	if (ac != NULL && dc != NULL)
		json_object_set_new(d, "sw_version", json_sprintf("AC %s, DC %s",
		    ac, dc));
	else if (ac != NULL)
		json_object_set_new(d, "sw_version", json_string(ac));
	return d;
}

/* A real-time data event: the lifetime guard, discovery when its set of
 * values or its device is new, then the retained state. */
static int
data_event(struct mqtt_topics *t, struct logger *l, const json_t *ev,
    const char *json, size_t len, struct mqtt_out *out)
{
	json_t *copy = NULL;
	uint64_t values = 0;
	char *payload;
	int rc;

	for (size_t i = 0; i < NVALUES; i++) {
		struct value_text vt;
		json_t *j;
		double x;

		value_text(i, &vt);
		if (!json_is_number(j = json_object_get(ev, vt.key)))
			continue;
		values |= (uint64_t)1 << i;
		if (l == NULL || !vt.v->lifetime)
			continue;
		x = json_number_value(j);
		if ((l->has_total & ((uint64_t)1 << i)) && x < l->total[i]) {
			if (copy == NULL &&
			    (copy = json_deep_copy(ev)) == NULL)
				return -1;
			json_object_del(copy, vt.key);
			note_add(out, "%slogger %" PRIu64 ": %s %g is below the "
			    "%g published before, left out", out->note[0] ?
			    "; " : "", l->serial, vt.key, x, l->total[i]);
			continue;
		}
		l->total[i] = x;
		l->has_total |= (uint64_t)1 << i;
	}
	if (l != NULL && values != 0) {
		json_t *dev = device_of(ev, l->serial);
		char ip[sizeof l->ip];

		peer_host(json_string_value(json_object_get(ev, "conn.peer")),
		    ip, sizeof ip);
		if (values != l->values || l->device == NULL ||
		    !json_equal(dev, l->device) ||
		    (t->dummycloud && strcmp(ip, l->ip) != 0)) {
			json_decref(l->device);
			l->device = dev;
			l->values = values;
			memcpy(l->ip, ip, sizeof l->ip);
			if (discovery_logger(t, l, out) != 0) {
				json_decref(copy);
				return -1;
			}
		} else
			json_decref(dev);
	}
	if (copy != NULL)
		payload = json_dumps(copy, JSON_COMPACT |
		    JSON_REAL_PRECISION(12));
	else
		payload = strndup(json, len);
	rc = out_add(out, dup_printf("%s/%" PRIu64 "/data", t->prefix,
	    l != NULL ? l->serial : (uint64_t)json_integer_value(
	    json_object_get(ev, "logger.serial"))), payload, true);
	if (rc == 0 && t->dummycloud && l != NULL)
		rc = dc_values(l, copy != NULL ? copy : ev, out);
	json_decref(copy);
	return rc;
}

/* When deye-mitm saw the event ("received", ISO 8601 UTC with
 * milliseconds), so that a backlog delivered late still says when each
 * logger was last heard of; now_ms when it says nothing readable or a
 * time still to come. */
static int64_t
received_ms(const json_t *ev, int64_t now_ms)
{
	const char *s = json_string_value(json_object_get(ev, "received"));
	struct tm tm = {0};
	int ms = 0, end = 0;
	int64_t t;

	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n",
	    &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
	    &tm.tm_sec, &ms, &end) != 7 || s[end] != '\0')
		return now_ms;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = (int64_t)timegm(&tm) * 1000 + ms;
	return t < now_ms ? t : now_ms;
}

int
mqtt_topics_event(struct mqtt_topics *t, const json_t *ev, const char *json,
    size_t len, int64_t now_ms, struct mqtt_out *out)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *listener = json_string_value(json_object_get(ev,
	    "listener"));
	json_t *serial = json_object_get(ev, "logger.serial");
	const char *envoy = json_string_value(json_object_get(ev,
	    "envoy.serial"));
	uint64_t conn = (uint64_t)json_integer_value(json_object_get(ev,
	    "conn.id"));
	char lv[128], dev[128], ty[64];

	if (type == NULL)
		type = "unknown";
	level(type, ty, sizeof ty);
	type = ty;
	if (listener == NULL)
		listener = "";
	if (json_is_integer(serial) && json_integer_value(serial) >= 0) {
		uint64_t s = (uint64_t)json_integer_value(serial);
		struct logger *l = logger_get(t, s);

		if (l != NULL) {
			l->last_ms = received_ms(ev, now_ms);
			snprintf(l->listener, sizeof l->listener, "%s", listener);
			l->conn_id = conn;
			if (!l->online) {
				l->online = true;
				if (availability(t, l, out) != 0)
					return -1;
			}
		}
		if (strcmp(type, "data") == 0 &&
		    !json_is_true(json_object_get(ev, "data.historic")))
			return data_event(t, l, ev, json, len, out);
		return out_add(out, dup_printf("%s/%" PRIu64 "/%s", t->prefix, s,
		    strcmp(type, "data") == 0 ? "historic" : type),
		    strndup(json, len), false);
	}
	if (envoy != NULL) {
		const char *inv = json_string_value(json_object_get(ev,
		    "inverter.serial"));

		level(envoy, lv, sizeof lv);
		if (out_add(out, dup_printf("%s/envoy/%s/%s", t->prefix, lv, type),
		    strndup(json, len), false) != 0)
			return -1;
		if (inv != NULL && (strcmp(type, "envoy_reading") == 0 ||
		    strcmp(type, "envoy_interval") == 0)) {
			level(inv, dev, sizeof dev);
			if (strcmp(type, "envoy_reading") == 0 &&
			    envoy_reading(t, ev, lv, dev, out) != 0)
				return -1;
			return out_add(out, dup_printf("%s/envoy/%s/%s/%s",
			    t->prefix, lv, dev, type), strndup(json, len), true);
		}
		return 0;
	}
	if (strcmp(type, "connection") == 0) {
		/* The end of a logger's connection: it is offline. */
		for (size_t i = 0; i < t->n; i++) {
			struct logger *l = &t->v[i];

			if (l->online && l->conn_id == conn &&
			    strcmp(l->listener, listener) == 0) {
				l->online = false;
				if (availability(t, l, out) != 0)
					return -1;
			}
		}
	}
	return out_add(out, dup_printf("%s/%s", t->prefix, type),
	    strndup(json, len), false);
}
