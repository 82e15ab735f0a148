/*
 * envoy.c - the Envoy's uploads (docs/envoy.md) as events.
 *
 * A report is read in two passes.  Expat reads the XML and keeps each
 * interesting element's attributes, by element name only, so quoting,
 * order and whitespace do not matter.  Then the events are built from
 * that, knowing the whole report: the envoy's serial goes into every event
 * and the report event, first, carries the counts.  Attribute values are
 * mapped by name through one table per element: a known name gets its key
 * and type, an unknown one is kept as a string under the element's prefix,
 * so a newer firmware loses nothing.
 */
#include "proto/envoy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>
#include <zlib.h>

/* expat 2.9 deprecates XML_GetCurrentLineNumber for a 64-bit twin that
 * older releases (Debian 12's 2.5) do not have. */
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 9)
#define envoy_xml_line(p) ((unsigned long long)XML_GetCurrentLineNumber64(p))
#else
#define envoy_xml_line(p) ((unsigned long long)XML_GetCurrentLineNumber(p))
#endif

#define ENVOY_STR_(x) #x
#define ENVOY_STR(x) ENVOY_STR_(x)

int
envoy_inflate(const uint8_t *in, size_t n, size_t max, uint8_t **out,
    size_t *outlen, bool *over)
{
	z_stream z;
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	int r;

	*over = false;
	*out = NULL;
	*outlen = 0;
	memset(&z, 0, sizeof z);
	if (inflateInit(&z) != Z_OK)
		return -1;
	z.next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const */
	do {
		size_t room;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : n < 4096 ? 4096 :
			    n > max / 4 ? max + 1 : n * 4;
			uint8_t *nb;

			if (cap >= max + 1) {
				*over = true;
				break;
			}
			if (ncap > max + 1)
				ncap = max + 1;
			if ((nb = realloc(buf, ncap + 1)) == NULL)
				break;
			buf = nb;
			cap = ncap;
		}
		/* Both counts fit zlib's uInt: feed it in slices. */
		room = cap - len < UINT32_MAX ? cap - len : UINT32_MAX;
		if (z.avail_in == 0) {
			size_t used = (size_t)(z.next_in - in);
			size_t left = n - used;
			z.avail_in = (uInt)(left < UINT32_MAX ? left : UINT32_MAX);
		}
		z.next_out = buf + len;
		z.avail_out = (uInt)room;
		r = inflate(&z, Z_NO_FLUSH);
		len += room - z.avail_out;
		if (r == Z_STREAM_END) {
			inflateEnd(&z);
			if (len > max) {
				*over = true;
				free(buf);
				return -1;
			}
			buf[len] = '\0';
			*out = buf;
			*outlen = len;
			return 0;
		}
	} while (r == Z_OK || (r == Z_BUF_ERROR && z.avail_out == 0));
	*over = len > max; /* past max, whatever was wrong after that */
	inflateEnd(&z);
	free(buf);
	return -1;
}

static int
hex_value(uint8_t c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
	    c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode p[0..n) into out (room for n + 1); returns the length. */
static size_t
form_decode(const uint8_t *p, size_t n, uint8_t *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '+') {
			out[o++] = ' ';
		} else if (p[i] == '%' && i + 2 < n && hex_value(p[i + 1]) >= 0 &&
		    hex_value(p[i + 2]) >= 0) {
			out[o++] = (uint8_t)(hex_value(p[i + 1]) * 16 +
			    hex_value(p[i + 2]));
			i += 2;
		} else {
			out[o++] = p[i]; /* a stray '%' stays as it is */
		}
	}
	out[o] = '\0';
	return o;
}

int
envoy_form_field(const uint8_t *form, size_t n, const char *name,
    uint8_t **out, size_t *outlen)
{
	size_t nlen = strlen(name), i = 0;

	while (i <= n) {
		const uint8_t *amp = memchr(form + i, '&', n - i);
		size_t end = amp ? (size_t)(amp - form) : n;

		if (end - i > nlen && memcmp(form + i, name, nlen) == 0 &&
		    form[i + nlen] == '=') {
			size_t v = i + nlen + 1;

			if ((*out = malloc(end - v + 1)) == NULL)
				return -1;
			*outlen = form_decode(form + v, end - v, *out);
			return 0;
		}
		i = end + 1;
	}
	return -1;
}

/* ---- pass 1: the XML, kept by element name ---- */

enum kind { K_DEVICE, K_INTERVAL, K_READING, K_EVENT, K_KINDS };

static const char *const kind_element[K_KINDS] = {
	"device", "interval", "reading", "event"
};

struct scan {
	XML_Parser p;
	const char *root;   /* the root element it must have */
	int depth;
	json_t *root_attrs;
	json_t *envoy;      /* the envoy element's attributes */
	json_t *items;      /* [{"k": kind, "a": {attrs}, "c": [...], "p": ...}] */
	json_t *open;       /* the device or event being read */
	int open_depth;
	char *text;         /* message_params being read, or NULL */
	size_t text_len;
	size_t counts[K_KINDS];
	char *ids;          /* envoy_response_ids(): its buffer */
	size_t ids_len, ids_cap;
	size_t ids_room;    /* the end of the last id " ..." can follow */
	bool ids_cut;
	int nids;
	size_t elements, attrs;
	bool failed;        /* not the root it must have */
	const char *stop;   /* why else it stopped, or NULL */
};

static json_t *
attrs_object(const XML_Char **attr)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && attr[i] != NULL; i += 2)
		json_object_set_new(o, attr[i], json_string(attr[i + 1]));
	return o;
}

/*
 * Append an id to the list.  When one does not fit, the list goes back to
 * the last id after which " ..." fits, and ends with it.
 */
static void
add_id(struct scan *sc, const char *id)
{
	size_t n = strlen(id), sep = sc->ids_len > 0;
	int w;

	sc->nids++;
	if (sc->ids_cut)
		return;
	if (sc->ids_len + sep + n < sc->ids_cap) {
		if (sep)
			sc->ids[sc->ids_len++] = ' ';
		memcpy(sc->ids + sc->ids_len, id, n + 1);
		sc->ids_len += n;
		if (sc->ids_len + strlen(" ...") < sc->ids_cap)
			sc->ids_room = sc->ids_len;
		return;
	}
	w = snprintf(sc->ids + sc->ids_room, sc->ids_cap - sc->ids_room, "%s",
	    sc->ids_room > 0 ? " ..." : "...");
	sc->ids_len = sc->ids_room + (size_t)w;
	sc->ids_cut = true;
}

static void XMLCALL
on_start(void *arg, const XML_Char *name, const XML_Char **attr)
{
	struct scan *sc = arg;

	sc->depth++;
	if (sc->stop != NULL)
		return;
	sc->attrs += (size_t)XML_GetSpecifiedAttributeCount(sc->p) / 2;
	if (++sc->elements > ENVOY_ELEMENTS_MAX)
		sc->stop = "more than " ENVOY_STR(ENVOY_ELEMENTS_MAX) " elements";
	else if (sc->attrs > ENVOY_ATTRS_MAX)
		sc->stop = "more than " ENVOY_STR(ENVOY_ATTRS_MAX) " attributes";
	if (sc->stop != NULL) {
		XML_StopParser(sc->p, XML_FALSE);
		return;
	}
	if (sc->depth == 1) {
		if (strcmp(name, sc->root) != 0) {
			sc->failed = true;
			XML_StopParser(sc->p, XML_FALSE);
			return;
		}
		sc->root_attrs = attrs_object(attr);
		return;
	}
	if (sc->ids != NULL) { /* a perf_report_response */
		for (size_t i = 0; strcmp(name, "event") == 0 && attr[i]; i += 2)
			if (strcmp(attr[i], "id") == 0)
				add_id(sc, attr[i + 1]);
		return;
	}
	if (strcmp(name, "envoy") == 0 && sc->envoy == NULL) {
		sc->envoy = attrs_object(attr);
		return;
	}
	if (strcmp(name, "channel") == 0 && sc->open != NULL) {
		json_t *c = json_object_get(sc->open, "c");

		if (c == NULL)
			json_object_set_new(sc->open, "c", c = json_array());
		json_array_append_new(c, attrs_object(attr));
		return;
	}
	if (strcmp(name, "message_params") == 0 && sc->open != NULL) {
		free(sc->text);
		sc->text = strdup("");
		sc->text_len = 0;
		return;
	}
	for (int k = 0; k < K_KINDS; k++) {
		json_t *it;

		if (strcmp(name, kind_element[k]) != 0)
			continue;
		it = json_object();
		json_object_set_new(it, "k", json_integer(k));
		json_object_set_new(it, "a", attrs_object(attr));
		json_array_append_new(sc->items, it);
		sc->counts[k]++;
		if (k == K_DEVICE || k == K_EVENT) {
			sc->open = it;
			sc->open_depth = sc->depth;
		}
		return;
	}
}

/* A DTD could declare entities that expand a few bytes into gigabytes. */
static void XMLCALL
on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int internal_subset)
{
	struct scan *sc = arg;

	(void)name, (void)sysid, (void)pubid, (void)internal_subset;
	sc->stop = "a DOCTYPE is not allowed";
	XML_StopParser(sc->p, XML_FALSE);
}

static void XMLCALL
on_end(void *arg, const XML_Char *name)
{
	struct scan *sc = arg;

	if (sc->text != NULL && strcmp(name, "message_params") == 0) {
		if (sc->open != NULL)
			json_object_set_new(sc->open, "p",
			    json_stringn(sc->text, sc->text_len));
		free(sc->text);
		sc->text = NULL;
	}
	if (sc->open != NULL && sc->depth == sc->open_depth)
		sc->open = NULL;
	sc->depth--;
}

static void XMLCALL
on_text(void *arg, const XML_Char *s, int len)
{
	struct scan *sc = arg;
	char *t;

	if (sc->text == NULL || len <= 0)
		return;
	if ((t = realloc(sc->text, sc->text_len + (size_t)len + 1)) == NULL)
		return;
	memcpy(t + sc->text_len, s, (size_t)len);
	sc->text_len += (size_t)len;
	t[sc->text_len] = '\0';
	sc->text = t;
}

/* Run expat over the document; 0, or -1 with err. */
static int
scan_run(struct scan *sc, const char *xml, size_t n, char *err, size_t errlen)
{
	enum XML_Status st = XML_STATUS_ERROR;

	if ((sc->p = XML_ParserCreate(NULL)) == NULL ||
	    (sc->items = json_array()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	XML_SetUserData(sc->p, sc);
	XML_SetElementHandler(sc->p, on_start, on_end);
	XML_SetCharacterDataHandler(sc->p, on_text);
	XML_SetStartDoctypeDeclHandler(sc->p, on_doctype);
	if (n <= INT32_MAX)
		st = XML_Parse(sc->p, xml, (int)n, XML_TRUE);
	if (sc->stop != NULL)
		snprintf(err, errlen, "%s", sc->stop);
	else if (sc->failed)
		snprintf(err, errlen, "not a %s", sc->root);
	else if (n > INT32_MAX)
		snprintf(err, errlen, "too big");
	else if (st != XML_STATUS_OK)
		snprintf(err, errlen, "XML line %llu: %s", envoy_xml_line(sc->p),
		    XML_ErrorString(XML_GetErrorCode(sc->p)));
	else if (sc->root_attrs == NULL)
		snprintf(err, errlen, "not a %s", sc->root);
	else
		return 0;
	return -1;
}

static void
scan_free(struct scan *sc)
{
	if (sc->p != NULL)
		XML_ParserFree(sc->p);
	json_decref(sc->root_attrs);
	json_decref(sc->envoy);
	json_decref(sc->items);
	free(sc->text);
}

/* ---- pass 2: events ---- */

enum vtype {
	V_STR,
	V_INT,   /* an integer when it is one, else kept as a string */
	V_REAL,
	V_TIME,  /* Unix seconds: key gets ISO 8601, key2 the number */
	V_EQID   /* "serial.channel": also inverter.serial, inverter.channel */
};

struct attr_map {
	const char *attr, *key, *key2;
	enum vtype type;
};

struct element_map {
	const char *prefix; /* of the attributes not in the table */
	const struct attr_map *attrs;
};

static const struct attr_map envoy_attrs[] = {
	{"serial_num", "envoy.serial", NULL, V_STR},
	{"ip_addr", "envoy.ip_addr", NULL, V_STR},
	{"mac_addr", "envoy.mac_addr", NULL, V_STR},
	{"timezone", "envoy.timezone", NULL, V_STR},
	{"part_num", "envoy.part_num", NULL, V_STR},
	{"sw_version", "envoy.sw_version", NULL, V_STR},
	{"latitude", "envoy.latitude", NULL, V_REAL},
	{"longitude", "envoy.longitude", NULL, V_REAL},
	{"emu_region", "envoy.emu_region", NULL, V_STR},
	{NULL, NULL, NULL, V_STR}
};

static const struct attr_map device_attrs[] = {
	{"eqid", "device.eqid", NULL, V_STR},
	{"part_num", "device.part_num", NULL, V_STR},
	{"device_type", "device.device_type", NULL, V_INT},
	{"admin_state", "device.admin_state", NULL, V_INT},
	{"image_bits", "device.image_bits", NULL, V_INT},
	{"condition_flags", "device.condition_flags", NULL, V_INT},
	{"observed_flags", "device.observed_flags", NULL, V_INT},
	{"control_bits", "device.control_bits", NULL, V_INT},
	{NULL, NULL, NULL, V_STR}
};

static const struct attr_map channel_attrs[] = {
	{"eqid", "eqid", NULL, V_STR},
	{"channel_type", "channel_type", NULL, V_INT},
	{"condition_flags", "condition_flags", NULL, V_INT},
	{"observed_flags", "observed_flags", NULL, V_INT},
	{"control_bits", "control_bits", NULL, V_INT},
	{NULL, NULL, NULL, V_STR}
};

static const struct attr_map interval_attrs[] = {
	{"id", "interval.id", NULL, V_INT},
	{"eqid", "interval.eqid", NULL, V_EQID},
	{"end_date", "interval.end_time", "interval.end_unix", V_TIME},
	{"interval_duration", "interval.duration_s", NULL, V_INT},
	{"stat_duration", "interval.stat_duration_s", NULL, V_INT},
	{"stats", "interval.stats", NULL, V_STR},
	{NULL, NULL, NULL, V_STR}
};

static const struct attr_map reading_attrs[] = {
	{"id", "reading.id", NULL, V_INT},
	{"eqid", "reading.eqid", NULL, V_EQID},
	{"date", "reading.time", "reading.unix", V_TIME},
	{"duration", "reading.duration_s", NULL, V_INT},
	{"flags", "reading.flags", NULL, V_INT},
	{"stats", "reading.stats", NULL, V_STR},
	{NULL, NULL, NULL, V_STR}
};

static const struct attr_map event_attrs[] = {
	{"id", "event.id", NULL, V_INT},
	{"event_code", "event.code", NULL, V_INT},
	{"event_state", "event.state", NULL, V_INT},
	{"event_date", "event.time", "event.unix", V_TIME},
	{"eqid", "event.eqid", NULL, V_STR},
	{"correlation_id", "event.correlation_id", NULL, V_INT},
	{"serial_num", "event.serial_num", NULL, V_STR},
	{"message_key", "event.message_key", NULL, V_STR},
	{NULL, NULL, NULL, V_STR}
};

static const struct element_map element_maps[K_KINDS] = {
	[K_DEVICE] = {"device.", device_attrs},
	[K_INTERVAL] = {"interval.", interval_attrs},
	[K_READING] = {"reading.", reading_attrs},
	[K_EVENT] = {"event.", event_attrs},
};

static const char *const kind_type[K_KINDS] = {
	"envoy_device", "envoy_interval", "envoy_reading", "envoy_event"
};

static const struct {
	int code;
	const char *name;
} event_names[] = {
	{101, "grid instability"},
	{509, "power-on reset"},
	{512, "DC power too low"},
	{10000, "microinverter failed to report"},
	{10009, "microinverter sleeping"},
};

/* A whole base-10 integer. */
static bool
parse_int(const char *s, long long *v)
{
	char *end;

	if (*s == '\0' || *s == ' ' || *s == '\t' || *s == '\n' || *s == '+')
		return false;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* Unix seconds as milliseconds, for times from 1970 to 10000 AD. */
static bool
parse_time(const char *s, int64_t *ms)
{
	long long v;

	if (!parse_int(s, &v) || v < 0 || v > 253402300799LL)
		return false;
	*ms = (int64_t)v * 1000;
	return true;
}

static void
set_int_or_string(json_t *o, const char *key, const char *v)
{
	long long n;

	json_object_set_new(o, key, parse_int(v, &n) ?
	    json_integer((json_int_t)n) : json_string(v));
}

static void
set_time(json_t *o, const char *key, const char *key2, int64_t ms)
{
	char t[32];

	event_format_time(ms, false, t, sizeof t);
	json_object_set_new(o, key, json_string(t));
	json_object_set_new(o, key2, json_integer((json_int_t)(ms / 1000)));
}

static bool
in_table(const struct attr_map *m, const char *attr)
{
	for (; m->attr != NULL; m++)
		if (strcmp(m->attr, attr) == 0)
			return true;
	return false;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Map the attributes a into o by table m: known ones in table order, the
 * others sorted by name.  *time_ms gets the element's own time, if any.
 */
static void
map_attrs(json_t *o, json_t *a, const struct attr_map *m, const char *prefix,
    int64_t *time_ms)
{
	const struct attr_map *table = m;
	const char *name, *rest[64];
	json_t *v;
	size_t nrest = 0;

	for (; m->attr != NULL; m++) {
		const char *s = json_string_value(json_object_get(a, m->attr));
		int64_t ms;
		double d;
		char *end;

		if (s == NULL)
			continue;
		switch (m->type) {
		case V_STR:
			json_object_set_new(o, m->key, json_string(s));
			break;
		case V_INT:
			set_int_or_string(o, m->key, s);
			break;
		case V_REAL:
			errno = 0;
			d = strtod(s, &end);
			json_object_set_new(o, m->key, *s != '\0' && *end == '\0' &&
			    errno == 0 && isfinite(d) ? json_real(d) : json_string(s));
			break;
		case V_TIME:
			if (parse_time(s, &ms)) {
				set_time(o, m->key, m->key2, ms);
				if (time_ms != NULL)
					*time_ms = ms;
			} else {
				json_object_set_new(o, m->key, json_string(s));
			}
			break;
		case V_EQID: {
			const char *dot = strchr(s, '.');
			long long ch;

			json_object_set_new(o, m->key, json_string(s));
			json_object_set_new(o, "inverter.serial", dot ?
			    json_stringn(s, (size_t)(dot - s)) : json_string(s));
			if (dot != NULL && parse_int(dot + 1, &ch))
				json_object_set_new(o, "inverter.channel",
				    json_integer((json_int_t)ch));
			break;
		}
		}
	}
	json_object_foreach(a, name, v) {
		if (!in_table(table, name) &&
		    nrest < sizeof rest / sizeof rest[0])
			rest[nrest++] = name;
	}
	qsort(rest, nrest, sizeof rest[0], cmp_str);
	for (size_t i = 0; i < nrest; i++) {
		char key[160];

		snprintf(key, sizeof key, "%s%s", prefix, rest[i]);
		json_object_set(o, key, json_object_get(a, rest[i]));
	}
}

/* "webcomm_version=4.6.0" in the target's query, or NULL. */
static json_t *
query_version(const char *target)
{
	const char *q = target ? strchr(target, '?') : NULL;

	while (q != NULL) {
		q++;
		if (strncmp(q, "webcomm_version=", 16) == 0)
			return json_stringn(q + 16, strcspn(q + 16, "&"));
		q = strchr(q, '&');
	}
	return NULL;
}

/* The reading's stats columns (docs/envoy.md, section 4), when the known
 * ones are integers. */
static void
reading_columns(json_t *ev, const char *stats)
{
	static const struct {
		const char *key;
		int scale; /* divide by; 1 keeps an integer */
	} col[] = {
		{"reading.ac_v", 1000}, {"reading.ac_hz", 1000},
		{"reading.dc_v", 1000}, {"reading.dc_a", 1000},
		{"reading.degc", 1}, {"reading.unknown_6", 1},
		{"reading.unknown_7", 1}, {"reading.energy_ws", 1},
	};
	long long v[sizeof col / sizeof col[0]];
	size_t n = 0;
	const char *p = stats;

	for (;;) {
		char buf[32];
		size_t len = strcspn(p, ",");

		if (len >= sizeof buf)
			return;
		memcpy(buf, p, len);
		buf[len] = '\0';
		if (!parse_int(buf, &v[n++]))
			return;
		if (p[len] == '\0' || n == sizeof col / sizeof col[0])
			break; /* columns past the known ones: only in stats */
		p += len + 1;
	}
	for (size_t i = 0; i < n; i++)
		json_object_set_new(ev, col[i].key, col[i].scale == 1 ?
		    json_integer((json_int_t)v[i]) :
		    json_real((double)v[i] / col[i].scale));
}

/* After event.code and event.state: their meaning. */
static void
event_meaning(json_t *ev)
{
	json_t *code = json_object_get(ev, "event.code");
	json_t *state = json_object_get(ev, "event.state");
	static const char *const states[] = {"one-shot", "cleared", "raised"};

	for (size_t i = 0; json_is_integer(code) &&
	    i < sizeof event_names / sizeof event_names[0]; i++)
		if (json_integer_value(code) == event_names[i].code)
			json_object_set_new(ev, "event.name",
			    json_string(event_names[i].name));
	if (json_is_integer(state) && json_integer_value(state) >= 0 &&
	    json_integer_value(state) <= 2)
		json_object_set_new(ev, "event.state_name",
		    json_string(states[json_integer_value(state)]));
}

/* A new event with the keys every envoy event has. */
static json_t *
envoy_event_new(const char *type, struct envoy_report_ctx *ctx,
    const char *serial, const char *report_time)
{
	json_t *ev;

	event_id_new(&ctx->meta);
	if ((ev = event_new(type, &ctx->meta)) == NULL)
		return NULL;
	if (serial != NULL)
		json_object_set_new(ev, "envoy.serial", json_string(serial));
	if (report_time != NULL)
		json_object_set_new(ev, "report.time", json_string(report_time));
	return ev;
}

static json_t *
item_event(json_t *it, struct envoy_report_ctx *ctx, const char *serial,
    const char *report_time, int64_t *time_ms)
{
	int k = (int)json_integer_value(json_object_get(it, "k"));
	json_t *a = json_object_get(it, "a"), *x, *ev;
	size_t i;

	if ((ev = envoy_event_new(kind_type[k], ctx, serial, report_time)) == NULL)
		return NULL;
	map_attrs(ev, a, element_maps[k].attrs, element_maps[k].prefix, time_ms);
	switch (k) {
	case K_DEVICE: {
		json_t *list = json_array();

		json_array_foreach(json_object_get(it, "c"), i, x) {
			json_t *ch = json_object();

			map_attrs(ch, x, channel_attrs, "", NULL);
			json_array_append_new(list, ch);
		}
		json_object_set_new(ev, "device.channels", list);
		break;
	}
	case K_INTERVAL: {
		const char *stats = json_string_value(json_object_get(a, "stats"));
		long long ws;

		if (stats != NULL && parse_int(stats, &ws))
			json_object_set_new(ev, "interval.energy_ws",
			    json_integer((json_int_t)ws));
		break;
	}
	case K_READING: {
		const char *stats = json_string_value(json_object_get(a, "stats"));

		if (stats != NULL)
			reading_columns(ev, stats);
		break;
	}
	case K_EVENT: {
		const char *p = json_string_value(json_object_get(it, "p"));

		event_meaning(ev);
		if (p != NULL) {
			json_t *j = json_loads(p, JSON_DECODE_ANY, NULL);
			json_object_set_new(ev, "event.message_params",
			    j != NULL ? j : json_string(p));
		}
		break;
	}
	}
	return ev;
}

int
envoy_report_events(const char *xml, size_t n, struct envoy_report_ctx *ctx,
    envoy_emit_fn *emit, void *arg, char *err, size_t errlen)
{
	struct scan sc = {.root = "perf_report"};
	const char *serial, *ts_s;
	char report_time[32];
	bool has_time;
	int64_t report_ms = ctx->meta.received_ms, ms;
	json_t *ev, *it, *v;
	size_t i;
	int count = 0;

	if (scan_run(&sc, xml, n, err, errlen) != 0) {
		scan_free(&sc);
		return -1;
	}
	serial = json_string_value(json_object_get(sc.envoy, "serial_num"));
	ts_s = json_string_value(json_object_get(sc.root_attrs,
	    "report_timestamp"));
	has_time = ts_s != NULL && parse_time(ts_s, &ms);
	if (has_time) {
		report_ms = ms;
		event_format_time(ms, false, report_time, sizeof report_time);
	}

	ev = envoy_event_new("envoy_report", ctx, serial,
	    has_time ? report_time : NULL);
	if (ev == NULL)
		goto fail;
	if (has_time)
		json_object_set_new(ev, "report.unix",
		    json_integer((json_int_t)(report_ms / 1000)));
	else if (ts_s != NULL)
		json_object_set_new(ev, "report.timestamp", json_string(ts_s));
	v = json_object_get(sc.root_attrs, "webcomm_version");
	json_object_set_new(ev, "report.webcomm_version",
	    v != NULL ? json_incref(v) : query_version(ctx->target));
	if (ctx->target != NULL)
		json_object_set_new(ev, "http.target", json_string(ctx->target));
	if (ctx->spool_name != NULL)
		json_object_set_new(ev, "spool.name", json_string(ctx->spool_name));
	if (sc.envoy != NULL)
		map_attrs(ev, sc.envoy, envoy_attrs, "envoy.", NULL);
	json_object_set_new(ev, "count.devices",
	    json_integer((json_int_t)sc.counts[K_DEVICE]));
	json_object_set_new(ev, "count.intervals",
	    json_integer((json_int_t)sc.counts[K_INTERVAL]));
	json_object_set_new(ev, "count.readings",
	    json_integer((json_int_t)sc.counts[K_READING]));
	json_object_set_new(ev, "count.events",
	    json_integer((json_int_t)sc.counts[K_EVENT]));
	emit(arg, ev, report_ms);
	count++;

	json_array_foreach(sc.items, i, it) {
		ms = report_ms;
		if ((ev = item_event(it, ctx, serial, has_time ? report_time :
		    NULL, &ms)) == NULL)
			goto fail;
		emit(arg, ev, ms);
		count++;
	}
	scan_free(&sc);
	return count;
fail:
	snprintf(err, errlen, "out of memory");
	scan_free(&sc);
	return count > 0 ? count : -1;
}

int
envoy_response_ids(const char *xml, size_t n, char *buf, size_t len)
{
	struct scan sc = {.root = "perf_report_response"};
	char err[128];
	int r;

	if (len < 5)
		return -1;
	buf[0] = '\0';
	sc.ids = buf;
	sc.ids_cap = len;
	r = scan_run(&sc, xml, n, err, sizeof err) == 0 ? sc.nids : -1;
	scan_free(&sc);
	return r;
}
