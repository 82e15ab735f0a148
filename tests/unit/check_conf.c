/*
 * check_conf.c - unit tests of conf.c against the configuration contract
 * of deye-mitm.conf(5): values with units, every way of setting a key
 * (file, environment, -o) and their precedence, conf_finish, the HEC token
 * and URL,
 * the handling of secrets (masking, argv wiping, file modes, control
 * characters), and the file format.
 *
 * The file format is tested data-first, like jansson's test suite:
 *   data/conf/valid/NAME.conf    loads, and conf_print gives NAME.expected;
 *   data/conf/invalid/NAME.conf  fails with the message on its first line,
 *                                "# error: invalid/NAME.conf:LINE: ...".
 * Adding a file adds a case.  Paths are relative to tests/, where make unit
 * runs the binary.
 *
 * Values are checked through conf_print where that is what a user sees
 * (deye-mitm -n), so a test fails whether the parse or the print is wrong.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "conf.h"
#include "log.h"
#include "modules.h"
#include "suites.h"
#include "sinks/hec.h"
#include "sinks/sink.h"

#define NELEM(a) (sizeof (a) / sizeof (a)[0])
#define DATA "data/conf"

/* ---- helpers ---- */

static const char *const hec_env[] = {
	"DEYE_SPLUNK_HEC_URL", "DEYE_SPLUNK_HEC_TOKEN", "DEYE_SPLUNK_HEC_INDEX",
	"DEYE_SPLUNK_HEC_SOURCETYPE", "DEYE_SPLUNK_HEC_CA_FILE",
	"DEYE_SPLUNK_HEC_INSECURE",
};

/*
 * The environment of the machine running the tests must not leak in.  The
 * warnings on world-readable secrets (data/ holds some) would only be noise.
 */
static void
clear_env(void)
{
	for (size_t i = 0; i < NELEM(hec_env); i++)
		unsetenv(hec_env[i]);
	log_set_level(LOG_ERROR);
}

static void
restore(void)
{
	clear_env();
	log_set_level(LOG_INFO);
}

/* The [hec] section of c. */
#define HEC(c) ((struct hec_conf *)conf_section_get((c), &sink_hec_section))

/*
 * A module's own section, as a sink would declare one: a secret and a URL
 * (no check) with an environment variable, to see that the engine treats
 * any section's keys like [hec]'s.
 */
struct plug_conf {
	char *url;
	char *password;
	long count;
};

static const struct conf_key plug_keys[] = {
	{.name = "url", .type = CONF_URL,
	    .off = offsetof(struct plug_conf, url), .env = "DEYE_TEST_PLUG_URL"},
	{.name = "password", .type = CONF_SECRET,
	    .off = offsetof(struct plug_conf, password)},
	{.name = "count", .type = CONF_LONG,
	    .off = offsetof(struct plug_conf, count), .def = "3", .min = 1,
	    .max = 9},
};

static const struct conf_section plug_section = {
	.name = "plug",
	.keys = plug_keys,
	.nkeys = sizeof plug_keys / sizeof plug_keys[0],
	.size = sizeof(struct plug_conf),
};

static const struct conf_section *const with_plug[] = {
	&sink_hec_section, &plug_section, NULL
};

static struct conf *
new_conf(void)
{
	struct conf *c = conf_new(modules_sections());

	ck_assert_ptr_nonnull(c);
	return c;
}

/* conf_print into a string (free it). */
static char *
print_conf(const struct conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	conf_print(c, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(buf);
	return buf;
}

/*
 * The value conf_print shows for key in section ("" global, "hec", or a
 * listener's name), or NULL when there is no such line.
 */
static char *
printed_value(const struct conf *c, const char *section, const char *key)
{
	char *text = print_conf(c), *line, *save = NULL, *found = NULL;
	char cur[64] = "";
	size_t kl = strlen(key);

	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		size_t n = strlen(line);
		if (line[0] == '[' && line[n - 1] == ']') {
			snprintf(cur, sizeof cur, "%.*s", (int)(n - 2), line + 1);
		} else if (strcmp(cur, section) == 0 && strncmp(line, key, kl) == 0 &&
		    strncmp(line + kl, " = ", 3) == 0) {
			found = strdup(line + kl + 3);
			break;
		}
	}
	free(text);
	return found;
}

/* Assert that conf_print shows want for section/key. */
static void
assert_printed(const struct conf *c, const char *section, const char *key,
    const char *want)
{
	char *got = printed_value(c, section, key);
	char copy[1024];

	ck_assert_msg(got != NULL, "no '%s' in [%s] of conf_print", key, section);
	snprintf(copy, sizeof copy, "%s", got);
	free(got);
	ck_assert_msg(strcmp(copy, want) == 0, "[%s] %s: printed '%s', expected '%s'",
	    section, key, copy, want);
}

/* "SECTION.KEY" or "KEY" into its two parts. */
static void
split_name(const char *name, char *section, size_t slen, const char **key)
{
	const char *dot = strchr(name, '.');

	if (dot == NULL) {
		section[0] = '\0';
		*key = name;
	} else {
		snprintf(section, slen, "%.*s", (int)(dot - name), name);
		*key = dot + 1;
	}
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;
	FILE *out;
	int ch;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	out = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(out);
	while ((ch = getc(f)) != EOF)
		putc(ch, out);
	fclose(f);
	fclose(out);
	return buf;
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* ---- durations ---- */

static const struct {
	const char *in;
	int64_t ms;
} duration_ok[] = {
	{"500ms", 500},
	{"5s", 5000},
	{"10m", 600000},
	{"1h", 3600000},
	{"1d", 86400000},
	{"0s", 0},
	{"0ms", 0},
	{"100ms", 100},
	{"90s", 90000},
	{"36h", 129600000},
	{"7d", 604800000},
	{"9223372036854775807ms", INT64_MAX},
	{"106751991167d", INT64_C(106751991167) * 86400000},
};

START_TEST(test_duration_ok)
{
	char err[CONF_ERR_MAX] = "";
	int64_t ms = -1;

	ck_assert_msg(conf_parse_duration(duration_ok[_i].in, &ms, err,
	    sizeof err) == 0, "'%s': %s", duration_ok[_i].in, err);
	ck_assert_int_eq(ms, duration_ok[_i].ms);
}
END_TEST

#define NOT_DURATION "': not a duration (a whole number and a unit: 500ms, 5s, 10m, 1h, 1d)"
#define USE_UNITS " (use ms, s, m, h or d)"

static const struct {
	const char *in;
	const char *err; /* NULL: any message that quotes the input */
} duration_bad[] = {
	{"5", "'5': a duration needs a unit" USE_UNITS},
	{"0", "'0': a duration needs a unit" USE_UNITS},
	{"5x", "'5x': unknown unit" USE_UNITS},
	{"5S", "'5S': unknown unit" USE_UNITS},
	{"5 s", "'5 s': unknown unit" USE_UNITS},
	{"5s ", "'5s ': unknown unit" USE_UNITS},
	{"1.5s", "'1.5s': unknown unit" USE_UNITS},
	{"5sec", "'5sec': unknown unit" USE_UNITS},
	{"5min", "'5min': unknown unit" USE_UNITS},
	{"-5s", "'-5s" NOT_DURATION},
	{" 5s", "' 5s" NOT_DURATION},
	{"+5s", "'+5s" NOT_DURATION},
	{"", "'" NOT_DURATION},
	{"s", "'s" NOT_DURATION},
	{"ms", "'ms" NOT_DURATION},
	{"106751991168d", "'106751991168d': too large"},
	{"2562047788015216h", "'2562047788015216h': too large"},
	{"9223372036854775808ms", NULL},
	{"99999999999999999999s", NULL},
};

START_TEST(test_duration_bad)
{
	char err[CONF_ERR_MAX] = "", quoted[64];
	int64_t ms = -1;

	ck_assert_msg(conf_parse_duration(duration_bad[_i].in, &ms, err,
	    sizeof err) == -1, "'%s' accepted as %lld ms", duration_bad[_i].in,
	    (long long)ms);
	if (duration_bad[_i].err != NULL) {
		ck_assert_str_eq(err, duration_bad[_i].err);
	} else {
		snprintf(quoted, sizeof quoted, "'%s': ", duration_bad[_i].in);
		ck_assert_msg(strncmp(err, quoted, strlen(quoted)) == 0,
		    "message '%s' does not quote the input", err);
	}
}
END_TEST

/* What -n prints, and that it reads back as the same value. */
static const struct {
	int64_t ms;
	const char *text;
} duration_fmt[] = {
	{0, "0s"},
	{1, "1ms"},
	{500, "500ms"},
	{999, "999ms"},
	{1000, "1s"},
	{1500, "1500ms"},
	{5000, "5s"},
	{59000, "59s"},
	{60000, "1m"},
	{90000, "90s"},
	{600000, "10m"},
	{3600000, "1h"},
	{5400000, "90m"},
	{86400000, "1d"},
	{129600000, "36h"},
	{604800000, "7d"},
	{86400001, "86400001ms"},
};

START_TEST(test_duration_format)
{
	char buf[32], err[CONF_ERR_MAX] = "";
	int64_t back = -1;

	memset(buf, 'x', sizeof buf);
	conf_format_duration(duration_fmt[_i].ms, buf, sizeof buf);
	ck_assert_str_eq(buf, duration_fmt[_i].text);
	ck_assert_msg(conf_parse_duration(buf, &back, err, sizeof err) == 0,
	    "'%s': %s", buf, err);
	ck_assert_int_eq(back, duration_fmt[_i].ms);
}
END_TEST

/* ---- sizes ---- */

static const struct {
	const char *in;
	int64_t bytes;
} size_ok[] = {
	{"512K", 524288},
	{"64k", 65536},
	{"64K", 65536},
	{"64KB", 65536},
	{"64kB", 65536},
	{"64KiB", 65536},
	{"1M", 1048576},
	{"1m", 1048576},
	{"1MB", 1048576},
	{"1MiB", 1048576},
	{"1G", 1073741824},
	{"1GiB", 1073741824},
	{"256M", INT64_C(256) << 20},
	{"1T", INT64_C(1) << 40},
	{"4096", 4096},
	{"1", 1},
	{"0", 0},
	{"0K", 0},
	{"9223372036854775807", INT64_MAX},
	{"8388607T", INT64_C(8388607) << 40},
};

START_TEST(test_size_ok)
{
	char err[CONF_ERR_MAX] = "";
	int64_t b = -1;

	ck_assert_msg(conf_parse_size(size_ok[_i].in, &b, err, sizeof err) == 0,
	    "'%s': %s", size_ok[_i].in, err);
	ck_assert_int_eq(b, size_ok[_i].bytes);
}
END_TEST

#define NOT_SIZE "': not a size (a whole number, then K, M or G)"
#define SIZE_UNIT "': unknown unit (use K, M or G)"

static const struct {
	const char *in;
	const char *err; /* NULL: any message that quotes the input */
} size_bad[] = {
	{"", "'" NOT_SIZE},
	{"K", "'K" NOT_SIZE},
	{"-1K", "'-1K" NOT_SIZE},
	{" 1K", "' 1K" NOT_SIZE},
	{"+1K", "'+1K" NOT_SIZE},
	{"1X", "'1X" SIZE_UNIT},
	{"1 K", "'1 K" SIZE_UNIT},
	{"1K ", "'1K " SIZE_UNIT},
	{"1.5M", "'1.5M" SIZE_UNIT},
	{"1KBB", "'1KBB" SIZE_UNIT},
	{"1KiBB", "'1KiBB" SIZE_UNIT},
	{"1Kfoo", "'1Kfoo" SIZE_UNIT},
	{"8388608T", "'8388608T': too large"},
	{"8796093022208M", "'8796093022208M': too large"},
	{"9223372036854775808", NULL},
};

START_TEST(test_size_bad)
{
	char err[CONF_ERR_MAX] = "", quoted[64];
	int64_t b = -1;

	ck_assert_msg(conf_parse_size(size_bad[_i].in, &b, err, sizeof err) == -1,
	    "'%s' accepted as %lld bytes", size_bad[_i].in, (long long)b);
	if (size_bad[_i].err != NULL) {
		ck_assert_str_eq(err, size_bad[_i].err);
	} else {
		snprintf(quoted, sizeof quoted, "'%s': ", size_bad[_i].in);
		ck_assert_msg(strncmp(err, quoted, strlen(quoted)) == 0,
		    "message '%s' does not quote the input", err);
	}
}
END_TEST

static const struct {
	int64_t bytes;
	const char *text;
} size_fmt[] = {
	{0, "0"},
	{1, "1"},
	{1023, "1023"},
	{1024, "1K"},
	{1536, "1536"},
	{1025 * 1024, "1025K"},
	{65536, "64K"},
	{524288, "512K"},
	{INT64_C(1) << 20, "1M"},
	{INT64_C(3) << 20, "3M"},
	{INT64_C(256) << 20, "256M"},
	{INT64_C(1) << 30, "1G"},
	{INT64_C(1) << 40, "1T"},
	{INT64_C(1) << 50, "1024T"},
};

START_TEST(test_size_format)
{
	char buf[32], err[CONF_ERR_MAX] = "";
	int64_t back = -1;

	memset(buf, 'x', sizeof buf);
	conf_format_size(size_fmt[_i].bytes, buf, sizeof buf);
	ck_assert_str_eq(buf, size_fmt[_i].text);
	ck_assert_msg(conf_parse_size(buf, &back, err, sizeof err) == 0,
	    "'%s': %s", buf, err);
	ck_assert_int_eq(back, size_fmt[_i].bytes);
}
END_TEST

/* ---- -o KEY=VALUE ---- */

static const struct {
	const char *opt;
	const char *name; /* [SECTION.]KEY as printed */
	const char *printed;
} option_ok[] = {
	{"log_level=debug", "log_level", "debug"},
	{"log_level=error", "log_level", "error"},
	{"state_dir=/var/lib/deye-mitm", "state_dir", "/var/lib/deye-mitm"},
	{"events=none", "events", "none"},
	{"events=/var/log/deye.jsonl", "events", "/var/log/deye.jsonl"},
	{"max_connections=1", "max_connections", "1"},
	{"max_connections=10000", "max_connections", "10000"},
	{"max_connections_per_peer=1", "max_connections_per_peer", "1"},
	{"allow=10.0.0.0/8 ::1", "allow", "10.0.0.0/8, ::1/128"},
	{"allow=192.168.1.7/24", "allow", "192.168.1.0/24"},
	{"user=nobody", "user", "nobody"},
	{"user=", "user", ""},
	{"hec.url=https://splunk.example:8088", "hec.url", "https://splunk.example:8088"},
	{"hec.index=solar", "hec.index", "solar"},
	/* UTF-8 goes into the envelope as it is */
	{"hec.index=s\xc3\xb6lar", "hec.index", "s\xc3\xb6lar"},
	{"hec.source=\xe2\x98\x80", "hec.source", "\xe2\x98\x80"},
	{"hec.host=\xf0\x9f\x8c\x9e-\xef\xbf\xbf", "hec.host", "\xf0\x9f\x8c\x9e-\xef\xbf\xbf"},
	{"hec.sourcetype=\xf4\x8f\xbf\xbf", "hec.sourcetype", "\xf4\x8f\xbf\xbf"},
	/* a URL's password is a secret */
	{"hec.url=http://user:pw@127.0.0.1:8088", "hec.url", "http://user:***@127.0.0.1:8088"},
	{"hec.index=a=b", "hec.index", "a=b"},
	{"hec.sourcetype=deye:json", "hec.sourcetype", "deye:json"},
	{"hec.host=box1", "hec.host", "box1"},
	{"hec.ca_file=/etc/ca.pem", "hec.ca_file", "/etc/ca.pem"},
	{"hec.insecure=yes", "hec.insecure", "yes"},
	{"hec.insecure=TRUE", "hec.insecure", "yes"},
	{"hec.insecure=on", "hec.insecure", "yes"},
	{"hec.insecure=1", "hec.insecure", "yes"},
	{"hec.insecure=No", "hec.insecure", "no"},
	{"hec.insecure=false", "hec.insecure", "no"},
	{"hec.insecure=off", "hec.insecure", "no"},
	{"hec.insecure=0", "hec.insecure", "no"},
	{"hec.batch_max_events=1", "hec.batch_max_events", "1"},
	{"hec.batch_max_events=100000", "hec.batch_max_events", "100000"},
	{"hec.batch_max_bytes=64KiB", "hec.batch_max_bytes", "64K"},
	{"hec.batch_max_bytes=1K", "hec.batch_max_bytes", "1K"},
	{"hec.batch_max_bytes=512M", "hec.batch_max_bytes", "512M"},
	{"hec.batch_max_bytes=1048576", "hec.batch_max_bytes", "1M"},
	{"hec.flush_interval=10ms", "hec.flush_interval", "10ms"},
	{"hec.flush_interval=1h", "hec.flush_interval", "1h"},
	{"hec.timeout=100ms", "hec.timeout", "100ms"},
	{"hec.timeout=600s", "hec.timeout", "10m"},
	{"spool_max=64K", "spool_max", "64K"},
	{"spool_max=1T", "spool_max", "1T"},
	{"spool_max=1024G", "spool_max", "1T"},
	{"deye.protocol=raw", "deye.protocol", "raw"},
	{"deye.protocol=envoy", "deye.protocol", "envoy"},
	{"deye.listen=127.0.0.1:19000", "deye.listen", "127.0.0.1:19000"},
	{"deye.listen=[::]:10000", "deye.listen", "[::]:10000"},
	{"deye.listen=[::1]:0", "deye.listen", "[::1]:0"},
	{"deye.upstream=none", "deye.upstream", "none"},
	{"deye.upstream=cloud.example:443", "deye.upstream", "cloud.example:443"},
	{"deye.upstream=[2001:db8::1]:10000", "deye.upstream", "[2001:db8::1]:10000"},
	{"deye.connect_timeout=100ms", "deye.connect_timeout", "100ms"},
	{"deye.connect_timeout=5m", "deye.connect_timeout", "5m"},
	{"deye.idle_timeout=7d", "deye.idle_timeout", "7d"},
	{"deye.fin_timeout=1h", "deye.fin_timeout", "1h"},
	{"deye.on_upstream_failure=answer", "deye.on_upstream_failure", "answer"},
	{"deye.tz_offset=auto", "deye.tz_offset", "auto"},
	{"deye.tz_offset=0", "deye.tz_offset", "0"},
	{"deye.tz_offset=-720", "deye.tz_offset", "-720"},
	{"deye.tz_offset=840", "deye.tz_offset", "840"},
	{"deye.tz_offset=330", "deye.tz_offset", "330"},
	{"deye.tz_offset=+120", "deye.tz_offset", "120"},
	{"deye.tz_offset=15", "deye.tz_offset", "15"},
	{"deye.tz_offset=-15", "deye.tz_offset", "-15"},
	{"deye.tz_offset=2h", "deye.tz_offset", "120"},
	{"deye.tz_offset=+2h", "deye.tz_offset", "120"},
	{"deye.tz_offset=-5h", "deye.tz_offset", "-300"},
	{"deye.tz_offset=1h", "deye.tz_offset", "60"},
	{"deye.tz_offset=120m", "deye.tz_offset", "120"},
	{"deye.tz_offset=2m", "deye.tz_offset", "2"},
	{"deye.tz_offset=+02:00", "deye.tz_offset", "120"},
	{"deye.tz_offset=-09:30", "deye.tz_offset", "-570"},
	{"deye.tz_offset=05:45", "deye.tz_offset", "345"},
	{"deye.tz_offset=+14:00", "deye.tz_offset", "840"},
	{"deye.tz_offset=-12:00", "deye.tz_offset", "-720"},
	{"deye.capture_dir=/tmp/cap", "deye.capture_dir", "/tmp/cap"},
	{"deye.spool_dir=/srv/envoy", "deye.spool_dir", "/srv/envoy"},
	{"My-Logger_2.listen=127.0.0.1:1", "My-Logger_2.listen", "127.0.0.1:1"},
	{"a234567890123456789012345678901.protocol=raw",
	    "a234567890123456789012345678901.protocol", "raw"},
};

/* spool_max is global; [hec], its old place, is still read, not both. */
START_TEST(test_spool_max_old_place)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_int_eq(c->spool_max, 256 << 20);
	conf_free(c);
	c = new_conf();
	ck_assert_int_eq(conf_set_option(c, "hec.spool_max=1M", err,
	    sizeof err), 0);
	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_int_eq(c->spool_max, 1 << 20);
	assert_printed(c, "", "spool_max", "1M");
	ck_assert_ptr_null(printed_value(c, "hec", "spool_max"));
	ck_assert_int_eq(conf_set_option(c, "spool_max=2M", err, sizeof err), 0);
	ck_assert_int_eq(conf_finish(c, err, sizeof err), -1);
	ck_assert_str_eq(err, "spool_max is set both as a global key and in "
	    "[hec] (its old place): keep the global one");
	conf_free(c);
}
END_TEST

START_TEST(test_option_ok)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", section[64];
	const char *key;

	ck_assert_msg(conf_set_option(c, option_ok[_i].opt, err, sizeof err) == 0,
	    "-o %s: %s", option_ok[_i].opt, err);
	split_name(option_ok[_i].name, section, sizeof section, &key);
	assert_printed(c, section, key, option_ok[_i].printed);
	/* Only a listener key makes a listener. */
	ck_assert_uint_eq(c->nlisteners,
	    section[0] != '\0' && strcmp(section, "hec") != 0 ? 1 : 0);
	conf_free(c);
}
END_TEST

#define EXPECT_KV ": expected KEY=VALUE or SECTION.KEY=VALUE"
#define GLOBAL_HINT "' is a global key: set it before the first [section]"
#define LISTENER_HINT "' belongs in a listener section such as [deye]"
#define HEC_HINT "' belongs in the [hec] section"
#define TZ_RANGE "': expected auto, minutes east of UTC (-720 to 840), 120m, 2h or +02:00"
#define NOT_UTF8(key) "'" key "' is not valid UTF-8"
#define CONTROL "the token contains a control character"

static const struct {
	const char *opt;
	const char *err;
} option_bad[] = {
	/* malformed */
	{"", "-o " EXPECT_KV},
	{"=x", "-o =x" EXPECT_KV},
	{"max_connections", "-o max_connections" EXPECT_KV},
	{"hec.index", "-o hec.index" EXPECT_KV},
	{".listen=x", "-o .listen: bad section name ''"},
	{"bad name.listen=x", "-o bad name.listen: bad section name 'bad name'"},
	{"deye!.listen=x", "-o deye!.listen: bad section name 'deye!'"},
	{"a2345678901234567890123456789012.protocol=raw",
	    "-o a2345678901234567890123456789012.protocol: "
	    "bad section name 'a2345678901234567890123456789012'"},
	{"deye.=x", "-o deye.: unknown key ''"},
	/* values checked when set */
	{"hec.source=", "-o hec.source: 'source' needs a value"},
	{"hec.sourcetype=", "-o hec.sourcetype: 'sourcetype' needs a value"},
	{"user=no-such-user-here", "-o user: user 'no-such-user-here' does not exist"},
	/* unknown keys and wrong scopes */
	{"lisen=0.0.0.0:1", "-o lisen: unknown key 'lisen'"},
	{"deye.lisen=0.0.0.0:1", "-o deye.lisen: unknown key 'lisen'"},
	{"hec.lisen=x", "-o hec.lisen: unknown key 'lisen'"},
	{"Log_Level=info", "-o Log_Level: unknown key 'Log_Level'"},
	{"listen=0.0.0.0:1", "-o listen: 'listen" LISTENER_HINT},
	{"hec.listen=0.0.0.0:1", "-o hec.listen: 'listen" LISTENER_HINT},
	{"hec.protocol=raw", "-o hec.protocol: 'protocol" LISTENER_HINT},
	{"url=https://h:8088", "-o url: 'url" HEC_HINT},
	{"token=x", "-o token: 'token" HEC_HINT},
	{"deye.url=https://h:8088", "-o deye.url: 'url" HEC_HINT},
	{"deye.index=x", "-o deye.index: 'index" HEC_HINT},
	{"deye.max_connections=5", "-o deye.max_connections: 'max_connections" GLOBAL_HINT},
	{"hec.allow=10.0.0.0/8", "-o hec.allow: 'allow" GLOBAL_HINT},
	{"hec.log_level=debug", "-o hec.log_level: 'log_level" GLOBAL_HINT},
	/* numbers and their bounds, naming the key */
	{"max_connections=0", "-o max_connections: max_connections '0' out of range (1 to 10000)"},
	{"max_connections=10001",
	    "-o max_connections: max_connections '10001' out of range (1 to 10000)"},
	{"max_connections=-1", "-o max_connections: '-1': not a whole number"},
	{"max_connections=12abc", "-o max_connections: '12abc': not a whole number"},
	{"max_connections_per_peer=0", "-o max_connections_per_peer: "
	    "max_connections_per_peer '0' out of range (1 to 10000)"},
	{"max_connections= 5", "-o max_connections: ' 5': not a whole number"},
	{"max_connections=", "-o max_connections: '': not a whole number"},
	{"max_connections=99999999999999999999",
	    "-o max_connections: '99999999999999999999': not a whole number"},
	{"hec.batch_max_events=0",
	    "-o hec.batch_max_events: batch_max_events '0' out of range (1 to 100000)"},
	{"hec.batch_max_events=100001",
	    "-o hec.batch_max_events: batch_max_events '100001' out of range (1 to 100000)"},
	{"hec.batch_max_bytes=1023",
	    "-o hec.batch_max_bytes: batch_max_bytes '1023' out of range (1K to 512M)"},
	{"hec.batch_max_bytes=513M",
	    "-o hec.batch_max_bytes: batch_max_bytes '513M' out of range (1K to 512M)"},
	{"hec.spool_max=63K", "-o hec.spool_max: spool_max '63K' out of range (64K to 1T)"},
	{"hec.spool_max=2T", "-o hec.spool_max: spool_max '2T' out of range (64K to 1T)"},
	{"hec.spool_max=lots", "-o hec.spool_max: 'lots" NOT_SIZE},
	{"hec.flush_interval=9ms",
	    "-o hec.flush_interval: flush_interval '9ms' out of range (10ms to 1h)"},
	{"hec.flush_interval=3601s",
	    "-o hec.flush_interval: flush_interval '3601s' out of range (10ms to 1h)"},
	{"hec.timeout=99ms", "-o hec.timeout: timeout '99ms' out of range (100ms to 10m)"},
	{"hec.timeout=11m", "-o hec.timeout: timeout '11m' out of range (100ms to 10m)"},
	{"deye.connect_timeout=0s",
	    "-o deye.connect_timeout: connect_timeout '0s' out of range (100ms to 5m)"},
	{"deye.connect_timeout=301s",
	    "-o deye.connect_timeout: connect_timeout '301s' out of range (100ms to 5m)"},
	{"deye.idle_timeout=8d",
	    "-o deye.idle_timeout: idle_timeout '8d' out of range (100ms to 7d)"},
	{"deye.fin_timeout=61m",
	    "-o deye.fin_timeout: fin_timeout '61m' out of range (100ms to 1h)"},
	{"deye.fin_timeout=5", "-o deye.fin_timeout: '5': a duration needs a unit" USE_UNITS},
	/* bools and enums */
	{"hec.insecure=maybe", "-o hec.insecure: 'maybe': expected yes or no"},
	{"hec.insecure=", "-o hec.insecure: '': expected yes or no"},
	{"hec.insecure=y", "-o hec.insecure: 'y': expected yes or no"},
	{"log_level=verbose",
	    "-o log_level: log_level 'verbose': expected one of error, warn, info, debug"},
	{"log_level=", "-o log_level: log_level '': expected one of error, warn, info, debug"},
	{"deye.protocol=modbus",
	    "-o deye.protocol: protocol 'modbus': expected one of solarman, envoy, raw"},
	{"deye.on_upstream_failure=retry",
	    "-o deye.on_upstream_failure: on_upstream_failure 'retry': "
	    "expected one of close, answer"},
	/* paths that must not be empty */
	{"state_dir=", "-o state_dir: 'state_dir' needs a value"},
	{"events=", "-o events: 'events' needs a value"},
	{"deye.spool_dir=", "-o deye.spool_dir: 'spool_dir' needs a value"},
	/* addresses */
	{"deye.listen=localhost:10000",
	    "-o deye.listen: 'localhost': not a numeric IPv4 address (IPv6: [address]:port)"},
	{"deye.listen=:::10000",
	    "-o deye.listen: ':::10000': write IPv6 addresses as [address]:port"},
	{"deye.listen=0.0.0.0:65536",
	    "-o deye.listen: '65536': port must be a number from 0 to 65535"},
	{"deye.listen=0.0.0.0", "-o deye.listen: '0.0.0.0': expected host:port"},
	{"deye.upstream=cloud.example",
	    "-o deye.upstream: 'cloud.example': expected host:port"},
	{"deye.upstream=cloud.example:0",
	    "-o deye.upstream: '0': port must be a number from 1 to 65535"},
	{"deye.upstream=", "-o deye.upstream: '': expected host:port"},
	{"deye.upstream=http://cloud.example:10000",
	    "-o deye.upstream: 'http://cloud.example:10000': expected host:port, "
	    "without a scheme (://)"},
	{"deye.upstream=2001:db8::1:10000",
	    "-o deye.upstream: '2001:db8::1:10000': write IPv6 addresses as [address]:port"},
	{"allow=", "-o allow: empty list: nobody could connect"},
	{"allow=10.0.0.0/33", "-o allow: '10.0.0.0/33': prefix length must be 0 to 32"},
	/* tz_offset */
	{"deye.tz_offset=841", "-o deye.tz_offset: tz_offset '841" TZ_RANGE},
	{"deye.tz_offset=-721", "-o deye.tz_offset: tz_offset '-721" TZ_RANGE},
	{"deye.tz_offset=15h", "-o deye.tz_offset: tz_offset '15h" TZ_RANGE},
	{"deye.tz_offset=+14:01", "-o deye.tz_offset: tz_offset '+14:01" TZ_RANGE},
	{"deye.tz_offset=+02:60", "-o deye.tz_offset: tz_offset '+02:60" TZ_RANGE},
	{"deye.tz_offset=2:00", "-o deye.tz_offset: tz_offset '2:00" TZ_RANGE},
	{"deye.tz_offset=2 h", "-o deye.tz_offset: tz_offset '2 h" TZ_RANGE},
	{"deye.tz_offset=2H", "-o deye.tz_offset: tz_offset '2H" TZ_RANGE},
	{"deye.tz_offset=+", "-o deye.tz_offset: tz_offset '+" TZ_RANGE},
	{"deye.tz_offset=h", "-o deye.tz_offset: tz_offset 'h" TZ_RANGE},
	/* A bare 1 to 14 is hours in the user's mind: refused with a hint. */
	{"deye.tz_offset=+2", "-o deye.tz_offset: tz_offset '+2': that is 2 "
	    "minute(s) east of UTC; for hours write 2h or +02:00"},
	{"deye.tz_offset=14", "-o deye.tz_offset: tz_offset '14': that is 14 "
	    "minute(s) east of UTC; for hours write 14h or +14:00"},
	{"deye.tz_offset=-5", "-o deye.tz_offset: tz_offset '-5': that is -5 "
	    "minute(s) east of UTC; for hours write -5h or -05:00"},
	{"deye.tz_offset=", "-o deye.tz_offset: tz_offset '" TZ_RANGE},
	{"deye.tz_offset= 60", "-o deye.tz_offset: tz_offset ' 60" TZ_RANGE},
	{"deye.tz_offset=AUTO", "-o deye.tz_offset: tz_offset 'AUTO" TZ_RANGE},
	{"deye.tz_offset=99999999999999999999",
	    "-o deye.tz_offset: tz_offset '99999999999999999999" TZ_RANGE},
	/* token_file */
	{"hec.token_file=" DATA "/no-such-token",
	    "-o hec.token_file: '" DATA "/no-such-token': No such file or directory"},
	/* text that goes into an envelope: jansson would drop it */
	{"hec.index=sol\xe9" "ar", "-o hec.index: " NOT_UTF8("index")},
	{"hec.index=\x80", "-o hec.index: " NOT_UTF8("index")},           /* lone continuation */
	{"hec.source=\xc0\xaf", "-o hec.source: " NOT_UTF8("source")},     /* overlong */
	{"hec.source=\xe0\x80\xaf", "-o hec.source: " NOT_UTF8("source")}, /* overlong */
	{"hec.host=\xed\xa0\x80", "-o hec.host: " NOT_UTF8("host")},      /* surrogate */
	{"hec.host=\xf4\x90\x80\x80", "-o hec.host: " NOT_UTF8("host")}, /* past U+10FFFF */
	{"hec.sourcetype=\xe2\x98", "-o hec.sourcetype: " NOT_UTF8("sourcetype")}, /* cut */
	{"hec.sourcetype=\xf8\x88\x80\x80\x80", "-o hec.sourcetype: " NOT_UTF8("sourcetype")},
	/* a control character in a secret: a CR/LF would inject a header */
	{"hec.token=abc\r\nX-Injected: yes", "-o hec.token: " CONTROL},
	{"hec.token=abc\n", "-o hec.token: " CONTROL},
	{"hec.token=a\tb", "-o hec.token: " CONTROL},
	{"hec.token=\x1b[2J", "-o hec.token: " CONTROL},
	{"hec.token=abc\x7f", "-o hec.token: " CONTROL},
	{"hec.url=http://u:pw\r\nX: y@splunk.example",
	    "-o hec.url: the URL contains a control character"},
};

START_TEST(test_option_bad)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";
	int rc = conf_set_option(c, option_bad[_i].opt, err, sizeof err);

	conf_free(c);
	ck_assert_msg(rc == -1, "-o %s accepted", option_bad[_i].opt);
	ck_assert_str_eq(err, option_bad[_i].err);
}
END_TEST

/* A name too long to be a key is cut in the message, not overrun. */
START_TEST(test_option_long_name)
{
	struct conf *c = new_conf();
	char opt[200], err[CONF_ERR_MAX] = "", want[CONF_ERR_MAX];

	memset(opt, 'k', 150);
	snprintf(opt + 150, sizeof opt - 150, "=1");
	ck_assert_int_eq(conf_set_option(c, opt, err, sizeof err), -1);
	snprintf(want, sizeof want, "-o %.60s" EXPECT_KV, opt);
	ck_assert_str_eq(err, want);
	conf_free(c);
}
END_TEST

/* -o NAME.KEY creates listener NAME, with every default, once. */
START_TEST(test_option_creates_listener)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_uint_eq(c->nlisteners, 0);
	ck_assert_int_eq(conf_set_option(c, "envoy.protocol=envoy", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "envoy.listen=127.0.0.1:8080", err,
	    sizeof err), 0);
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(c->listeners[0].name, "envoy");
	ck_assert_str_eq(c->listeners[0].where, "-o envoy.protocol");
	ck_assert_int_eq(c->listeners[0].protocol, PROTO_ENVOY);
	assert_printed(c, "envoy", "listen", "127.0.0.1:8080");
	assert_printed(c, "envoy", "upstream", "5406.deviceaccess.host:10000");
	assert_printed(c, "envoy", "idle_timeout", "10m");
	assert_printed(c, "envoy", "spool_dir", "/var/spool/envoy");
	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(c->listeners[0].name, "envoy");
	conf_free(c);
}
END_TEST

/* A key that does not exist makes no listener. */
START_TEST(test_option_unknown_makes_no_listener)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_set_option(c, "deye.lisen=1.2.3.4:5", err, sizeof err), -1);
	ck_assert_int_eq(conf_set_option(c, "deye.url=https://h:8088", err,
	    sizeof err), -1);
	ck_assert_uint_eq(c->nlisteners, 0);
	conf_free(c);
}
END_TEST

/* -o is repeatable, the last one wins. */
START_TEST(test_option_last_wins)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_set_option(c, "hec.index=first", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "hec.index=second", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "deye.listen=127.0.0.1:1", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "deye.listen=127.0.0.1:2", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "allow=10.0.0.0/8", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "allow=::1", err, sizeof err), 0);
	assert_printed(c, "hec", "index", "second");
	assert_printed(c, "deye", "listen", "127.0.0.1:2");
	assert_printed(c, "", "allow", "::1/128");
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(HEC(c)->index, "second");
	conf_free(c);
}
END_TEST

/* ---- precedence: file < environment < -o ---- */

static const struct {
	const char *env;
	const char *key;     /* in [hec] */
	const char *in_file; /* as data/conf/precedence.conf sets it */
	const char *in_env;
	const char *in_opt;
} precedence[] = {
	{"DEYE_SPLUNK_HEC_URL", "url", "https://file.example:8088",
	    "https://env.example:8088", "https://opt.example:8088"},
	{"DEYE_SPLUNK_HEC_TOKEN", "token", "file-token", "env-token", "opt-token"},
	{"DEYE_SPLUNK_HEC_INDEX", "index", "file_index", "env_index", "opt_index"},
	{"DEYE_SPLUNK_HEC_SOURCETYPE", "sourcetype", "file:st", "env:st", "opt:st"},
	{"DEYE_SPLUNK_HEC_CA_FILE", "ca_file", "/file/ca.pem", "/env/ca.pem",
	    "/opt/ca.pem"},
	{"DEYE_SPLUNK_HEC_INSECURE", "insecure", "yes", "no", "yes"},
};

/* The effective value; the token from the struct, as -n hides it. */
static void
assert_hec(const struct conf *c, const char *key, const char *want)
{
	if (strcmp(key, "token") == 0) {
		ck_assert_ptr_nonnull(HEC(c)->token);
		ck_assert_str_eq(HEC(c)->token, want);
	} else {
		assert_printed(c, "hec", key, want);
	}
}

START_TEST(test_precedence)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", opt[128];

	ck_assert_msg(conf_load_file(c, DATA "/precedence.conf", err, sizeof err) == 0,
	    "%s", err);
	assert_hec(c, precedence[_i].key, precedence[_i].in_file);

	ck_assert_int_eq(setenv(precedence[_i].env, precedence[_i].in_env, 1), 0);
	ck_assert_msg(conf_load_env(c, err, sizeof err) == 0, "%s", err);
	assert_hec(c, precedence[_i].key, precedence[_i].in_env);

	snprintf(opt, sizeof opt, "hec.%s=%s", precedence[_i].key,
	    precedence[_i].in_opt);
	ck_assert_msg(conf_set_option(c, opt, err, sizeof err) == 0, "%s", err);
	assert_hec(c, precedence[_i].key, precedence[_i].in_opt);
	conf_free(c);
}
END_TEST

/* An empty variable is as if unset: the file's value stays. */
START_TEST(test_env_empty)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_msg(conf_load_file(c, DATA "/precedence.conf", err, sizeof err) == 0,
	    "%s", err);
	ck_assert_int_eq(setenv(precedence[_i].env, "", 1), 0);
	ck_assert_msg(conf_load_env(c, err, sizeof err) == 0, "%s", err);
	assert_hec(c, precedence[_i].key, precedence[_i].in_file);
	conf_free(c);
}
END_TEST

/* The environment over the defaults, without a file. */
START_TEST(test_env_over_default)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(setenv(precedence[_i].env, precedence[_i].in_env, 1), 0);
	ck_assert_msg(conf_load_env(c, err, sizeof err) == 0, "%s", err);
	assert_hec(c, precedence[_i].key, precedence[_i].in_env);
	conf_free(c);
}
END_TEST

/* No variable set: conf_load_env changes nothing. */
START_TEST(test_env_none)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", *before, *after;

	ck_assert_int_eq(conf_load_file(c, DATA "/precedence.conf", err, sizeof err), 0);
	before = print_conf(c);
	ck_assert_int_eq(conf_load_env(c, err, sizeof err), 0);
	after = print_conf(c);
	ck_assert_str_eq(after, before);
	ck_assert_str_eq(HEC(c)->token, "file-token");
	free(before);
	free(after);
	conf_free(c);
}
END_TEST

static const struct {
	const char *env, *value, *err;
} env_bad[] = {
	{"DEYE_SPLUNK_HEC_INSECURE", "maybe",
	    "environment (DEYE_SPLUNK_HEC_INSECURE): 'maybe': expected yes or no"},
	{"DEYE_SPLUNK_HEC_URL", "ftp://splunk.example/",
	    "environment (DEYE_SPLUNK_HEC_URL): 'ftp://splunk.example/': "
	    "the scheme must be https or http"},
	{"DEYE_SPLUNK_HEC_URL", "splunk.example:8088",
	    "environment (DEYE_SPLUNK_HEC_URL): 'splunk.example:8088': "
	    "not a URL (https://host:8088)"},
	{"DEYE_SPLUNK_HEC_URL", "ftp://user:S3CRETPW@splunk.example",
	    "environment (DEYE_SPLUNK_HEC_URL): 'ftp://user:***@splunk.example': "
	    "the scheme must be https or http"},
	{"DEYE_SPLUNK_HEC_TOKEN", "abc\r\nX-Injected: yes",
	    "environment (DEYE_SPLUNK_HEC_TOKEN): " CONTROL},
	{"DEYE_SPLUNK_HEC_INDEX", "sol\xe9" "ar",
	    "environment (DEYE_SPLUNK_HEC_INDEX): " NOT_UTF8("index")},
	{"DEYE_SPLUNK_HEC_SOURCETYPE", "\xc0\xaf",
	    "environment (DEYE_SPLUNK_HEC_SOURCETYPE): " NOT_UTF8("sourcetype")},
};

START_TEST(test_env_bad)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";
	int rc;

	ck_assert_int_eq(setenv(env_bad[_i].env, env_bad[_i].value, 1), 0);
	rc = conf_load_env(c, err, sizeof err);
	conf_free(c);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(err, env_bad[_i].err);
}
END_TEST

/* -o over the file for global and listener keys too. */
START_TEST(test_option_over_file)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_load_file(c, DATA "/precedence.conf", err, sizeof err), 0);
	assert_printed(c, "", "max_connections", "7");
	assert_printed(c, "deye", "listen", "127.0.0.1:10001");
	ck_assert_int_eq(conf_set_option(c, "max_connections=8", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "deye.listen=127.0.0.1:10002", err,
	    sizeof err), 0);
	assert_printed(c, "", "max_connections", "8");
	assert_printed(c, "deye", "listen", "127.0.0.1:10002");
	ck_assert_uint_eq(c->nlisteners, 1);
	conf_free(c);
}
END_TEST

/* ---- conf_finish ---- */

START_TEST(test_finish_implicit_listener)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(c->listeners[0].name, "deye");
	ck_assert_int_eq(c->listeners[0].protocol, PROTO_SOLARMAN);
	assert_printed(c, "deye", "listen", "0.0.0.0:10000");
	assert_printed(c, "deye", "upstream", "5406.deviceaccess.host:10000");
	conf_free(c);
}
END_TEST

/* A [hec] section alone is not a listener: deye is still implied. */
START_TEST(test_finish_hec_only)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_set_option(c, "hec.index=x", err, sizeof err), 0);
	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(c->listeners[0].name, "deye");
	conf_free(c);
}
END_TEST

static const struct {
	const char *opts[3];
	const char *err; /* NULL: no conflict */
} ports[] = {
	{{"a.listen=127.0.0.1:9000", "b.listen=127.0.0.1:9000", NULL},
	    "-o b.listen: [b] listens on the same port as [a]"},
	{{"a.listen=0.0.0.0:9000", "b.listen=127.0.0.1:9000", NULL},
	    "-o b.listen: [b] listens on the same port as [a]"},
	{{"a.listen=127.0.0.1:9000", "b.listen=0.0.0.0:9000", NULL},
	    "-o b.listen: [b] listens on the same port as [a]"},
	{{"a.listen=[::]:9000", "b.listen=127.0.0.1:9000", NULL},
	    "-o b.listen: [b] listens on the same port as [a]"},
	{{"a.listen=[::1]:9000", "b.listen=[::1]:9000", NULL},
	    "-o b.listen: [b] listens on the same port as [a]"},
	{{"a.listen=[::ffff:127.0.0.1]:9000", "b.listen=127.0.0.1:9000", NULL},
	    "-o b.listen: [b] listens on the same port as [a]"},
	/* Both on the default 0.0.0.0:10000. */
	{{"a.protocol=raw", "b.protocol=envoy", NULL},
	    "-o b.protocol: [b] listens on the same port as [a]"},
	/* The second clash is the one named. */
	{{"a.listen=127.0.0.1:1", "b.listen=127.0.0.1:2", "c.listen=127.0.0.1:2"},
	    "-o c.listen: [c] listens on the same port as [b]"},
	{{"a.listen=127.0.0.1:9000", "b.listen=127.0.0.1:9001", NULL}, NULL},
	{{"a.listen=127.0.0.1:9000", "b.listen=127.0.0.2:9000", NULL}, NULL},
	{{"a.listen=127.0.0.1:9000", "b.listen=[::1]:9000", NULL}, NULL},
	{{"a.listen=0.0.0.0:0", "b.listen=0.0.0.0:0", "c.listen=[::]:0"}, NULL},
	{{"a.listen=127.0.0.1:1", "b.listen=127.0.0.1:2", "c.listen=127.0.0.1:3"}, NULL},
};

START_TEST(test_finish_ports)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";
	int rc;

	for (size_t i = 0; i < 3 && ports[_i].opts[i] != NULL; i++)
		ck_assert_msg(conf_set_option(c, ports[_i].opts[i], err, sizeof err) == 0,
		    "-o %s: %s", ports[_i].opts[i], err);
	rc = conf_finish(c, err, sizeof err);
	if (ports[_i].err == NULL) {
		ck_assert_msg(rc == 0, "%s", err);
		ck_assert_uint_ge(c->nlisteners, 2);
		ck_assert_str_eq(c->listeners[0].name, "a");
	} else {
		ck_assert_msg(rc == -1, "no clash found");
		ck_assert_str_eq(err, ports[_i].err);
	}
	conf_free(c);
}
END_TEST

/* hec.host defaults to this host's name; a set one is kept. */
START_TEST(test_finish_host)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", h[256];

	ck_assert_ptr_null(HEC(c)->host);
	ck_assert_int_eq(gethostname(h, sizeof h), 0);
	h[sizeof h - 1] = '\0';
	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_ptr_nonnull(HEC(c)->host);
	ck_assert_str_eq(HEC(c)->host, h);
	conf_free(c);

	c = new_conf();
	ck_assert_int_eq(conf_set_option(c, "hec.host=golden-host", err, sizeof err), 0);
	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_str_eq(HEC(c)->host, "golden-host");
	conf_free(c);
}
END_TEST

/* ---- the HEC token ---- */

static const struct {
	const char *file;
	const char *token;
} token_files[] = {
	{DATA "/token.txt", "s3cr3t-t0ken-1234"},         /* first line only */
	{DATA "/token-crlf.txt", "crlf-t0ken-5678"},      /* CRLF, trailing blanks */
	{DATA "/token-noeol.txt", "noeol-t0ken-9012"},    /* no line end */
};

START_TEST(test_token_file)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", opt[128], *out;

	snprintf(opt, sizeof opt, "hec.token_file=%s", token_files[_i].file);
	ck_assert_msg(conf_set_option(c, opt, err, sizeof err) == 0, "%s", err);
	ck_assert_ptr_nonnull(HEC(c)->token);
	ck_assert_str_eq(HEC(c)->token, token_files[_i].token);
	ck_assert_str_eq(HEC(c)->token_file, token_files[_i].file);
	assert_printed(c, "hec", "token", "***");
	assert_printed(c, "hec", "token_file", token_files[_i].file);
	out = print_conf(c);
	ck_assert_msg(strstr(out, "t0ken") == NULL, "the token is in -n output:\n%s",
	    out);
	free(out);
	conf_free(c);
}
END_TEST

static const struct {
	const char *file;
	const char *err;
} token_file_bad[] = {
	{DATA "/no-such-token",
	    "-o hec.token_file: '" DATA "/no-such-token': No such file or directory"},
	{DATA "/token-empty.txt",
	    "-o hec.token_file: '" DATA "/token-empty.txt': the token file is empty"},
	{DATA "/token-blank.txt",
	    "-o hec.token_file: '" DATA "/token-blank.txt': the token file is empty"},
	/* A read error is reported as such, not as an empty file. */
	{DATA, "-o hec.token_file: '" DATA "': Is a directory"},
};

START_TEST(test_token_file_bad)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", opt[128];
	int rc;

	snprintf(opt, sizeof opt, "hec.token_file=%s", token_file_bad[_i].file);
	rc = conf_set_option(c, opt, err, sizeof err);
	conf_free(c);
	ck_assert_msg(rc == -1, "-o %s accepted", opt);
	ck_assert_str_eq(err, token_file_bad[_i].err);
}
END_TEST

/* The file's token replaces one set before it. */
START_TEST(test_token_file_replaces_token)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_set_option(c, "hec.token=earlier", err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "hec.token_file=" DATA "/token.txt", err,
	    sizeof err), 0);
	ck_assert_str_eq(HEC(c)->token, "s3cr3t-t0ken-1234");
	conf_free(c);
}
END_TEST

/* However the token is set, -n shows *** and never the token. */
enum { BY_OPTION, BY_ENV, BY_FILE };
static const int token_ways[] = {BY_OPTION, BY_ENV, BY_FILE};

START_TEST(test_token_never_printed)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", *out;

	switch (token_ways[_i]) {
	case BY_OPTION:
		ck_assert_int_eq(conf_set_option(c, "hec.token=Sup3rS3cretT0ken", err,
		    sizeof err), 0);
		break;
	case BY_ENV:
		ck_assert_int_eq(setenv("DEYE_SPLUNK_HEC_TOKEN", "Sup3rS3cretT0ken", 1), 0);
		ck_assert_int_eq(conf_load_env(c, err, sizeof err), 0);
		break;
	case BY_FILE:
		ck_assert_int_eq(conf_load_file(c, DATA "/secret.conf", err, sizeof err), 0);
		break;
	}
	ck_assert_int_eq(conf_finish(c, err, sizeof err), 0);
	ck_assert_str_eq(HEC(c)->token, "Sup3rS3cretT0ken");
	out = print_conf(c);
	ck_assert_msg(strstr(out, "Sup3rS3cret") == NULL, "the token is in -n output:\n%s",
	    out);
	ck_assert_msg(strstr(out, "\ntoken = ***\n") != NULL, "no 'token = ***' in:\n%s",
	    out);
	free(out);
	conf_free(c);
}
END_TEST

START_TEST(test_token_unset_printed_empty)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	assert_printed(c, "hec", "token", "");
	ck_assert_int_eq(conf_set_option(c, "hec.token=x", err, sizeof err), 0);
	assert_printed(c, "hec", "token", "***");
	ck_assert_int_eq(conf_set_option(c, "hec.token=", err, sizeof err), 0);
	assert_printed(c, "hec", "token", "");
	ck_assert_ptr_null(HEC(c)->token);
	conf_free(c);
}
END_TEST

/* HEC is on when url and a token are set. */
static const struct {
	const char *opts[2];
	bool enabled;
} hec_enabled[] = {
	{{NULL, NULL}, false},
	{{"hec.url=https://splunk.example:8088", NULL}, false},
	{{"hec.token=t", NULL}, false},
	{{"hec.url=https://splunk.example:8088", "hec.token=t"}, true},
	{{"hec.url=https://splunk.example:8088", "hec.token_file=" DATA "/token.txt"}, true},
};

START_TEST(test_hec_enabled)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";
	bool on;

	for (size_t i = 0; i < 2 && hec_enabled[_i].opts[i] != NULL; i++)
		ck_assert_msg(conf_set_option(c, hec_enabled[_i].opts[i], err,
		    sizeof err) == 0, "%s", err);
	on = sink_hec_ops.wanted(c);
	conf_free(c);
	ck_assert(on == hec_enabled[_i].enabled);
}
END_TEST

/* ---- the HEC URL ---- */

static const char *const url_ok[] = {
	"https://splunk.example:8088",
	"http://splunk.example:8088",
	"https://splunk.example:8088/",
	"https://splunk.example",
	"https://splunk.example:8088/services/collector",
	"https://splunk.example:8088/services/collector/event",
	"http://127.0.0.1:8088/services/collector/raw",
	"http://[::1]:8088",
};

START_TEST(test_url_ok)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", opt[256];

	snprintf(opt, sizeof opt, "hec.url=%s", url_ok[_i]);
	ck_assert_msg(conf_set_option(c, opt, err, sizeof err) == 0, "%s", err);
	assert_printed(c, "hec", "url", url_ok[_i]);
	conf_free(c);
}
END_TEST

#define SCHEME "': the scheme must be https or http"
#define PATH "': the path must be empty or /services/collector..."
#define NOT_URL "': not a URL (https://host:8088)"

static const struct {
	const char *url, *err;
} url_bad[] = {
	{"ftp://splunk.example/", "'ftp://splunk.example/" SCHEME},
	{"ftp://splunk.example:8088", "'ftp://splunk.example:8088" SCHEME},
	{"https://splunk.example:8088/foo", "'https://splunk.example:8088/foo" PATH},
	{"https://splunk.example:8088/services", "'https://splunk.example:8088/services" PATH},
	{"https://splunk.example:8088/collector", "'https://splunk.example:8088/collector" PATH},
	{"splunk.example:8088", "'splunk.example:8088" NOT_URL},
	{"not a url", "'not a url" NOT_URL},
	{"https://", "'https://" NOT_URL},
};

START_TEST(test_url_bad)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "", opt[256];
	int rc;

	snprintf(opt, sizeof opt, "hec.url=%s", url_bad[_i].url);
	rc = conf_set_option(c, opt, err, sizeof err);
	ck_assert_ptr_null(HEC(c)->url);
	conf_free(c);
	ck_assert_msg(rc == -1, "-o %s accepted", opt);
	ck_assert_msg(strncmp(err, "-o hec.url: ", 12) == 0, "%s", err);
	ck_assert_str_eq(err + 12, url_bad[_i].err);
}
END_TEST

/* ---- secrets ---- */

/* The password of a URL's userinfo, and nothing else, becomes ***. */
static const struct {
	const char *url, *shown;
} redact[] = {
	{"http://user:pw@127.0.0.1:8088", "http://user:***@127.0.0.1:8088"},
	{"https://u:@splunk.example", "https://u:***@splunk.example"},
	{"https://x:tok@splunk.example:8088/services/collector/event",
	    "https://x:***@splunk.example:8088/services/collector/event"},
	{"https://a:b@c@splunk.example/", "https://a:***@splunk.example/"},
	{"https://a:b:c@[::1]:8088", "https://a:***@[::1]:8088"},
	{"user:pw@splunk.example", "user:***@splunk.example"}, /* no scheme */
	/* no password: nothing to hide */
	{"https://splunk.example:8088", "https://splunk.example:8088"},
	{"https://user@splunk.example:8088", "https://user@splunk.example:8088"},
	{"https://h/services/collector?u=a:b@c", "https://h/services/collector?u=a:b@c"},
	{"https://h#a:b@c", "https://h#a:b@c"},
	{"", ""},
};

START_TEST(test_url_redact)
{
	char *got = conf_url_redact(redact[_i].url);

	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, redact[_i].shown);
	free(got);
}
END_TEST

/* What main leaves of each -o argument in argv. */
static const struct {
	const char *arg, *left;
} wipe[] = {
	{"hec.token=ARGVTOKEN", "hec.token=*********"},
	{"hec.token=", "hec.token="},
	{"plug.password=pw", "plug.password=**"},
	{"hec.url=http://user:URLPW@127.0.0.1:8088", "hec.url=http://user:*****@127.0.0.1:8088"},
	{"plug.url=mqtt://u:p@broker", "plug.url=mqtt://u:*@broker"},
	{"plug.count=7", "plug.count=7"},
	{"deye.password=pw", "deye.password=pw"},
	{"hec.url=https://splunk.example:8088", "hec.url=https://splunk.example:8088"},
	{"hec.token_file=/etc/tok", "hec.token_file=/etc/tok"},
	{"hec.tokens=x", "hec.tokens=x"},
	{"ec.token=x", "ec.token=x"},
	{"token=x", "token=x"},
	{"hec.index=a=b", "hec.index=a=b"},
	{"hec.token", "hec.token"},
};

START_TEST(test_wipe_option)
{
	char arg[128];

	struct conf *c = conf_new(with_plug);

	ck_assert_ptr_nonnull(c);
	snprintf(arg, sizeof arg, "%s", wipe[_i].arg);
	conf_wipe_option(c, arg);
	conf_free(c);
	ck_assert_str_eq(arg, wipe[_i].left);
}
END_TEST

/* main makes the process non-dumpable when this is true. */
static const struct {
	const char *opt;
	bool secret;
} holds[] = {
	{NULL, false},
	{"hec.url=https://splunk.example:8088", false},
	{"hec.url=https://user@splunk.example:8088", false},
	{"hec.url=https://user:pw@splunk.example:8088", true},
	{"hec.token=t", true},
	{"hec.token_file=" DATA "/token.txt", true},
};

START_TEST(test_has_secret)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";
	bool got;

	if (holds[_i].opt != NULL)
		ck_assert_msg(conf_set_option(c, holds[_i].opt, err, sizeof err) == 0,
		    "%s", err);
	got = conf_has_secret(c);
	conf_free(c);
	ck_assert(got == holds[_i].secret);
}
END_TEST

/*
 * A section a module declares is a section like [hec]: its defaults, its
 * keys from a file, the environment and -o, its place in -n (after [hec],
 * before the listeners), the hint for a key set in the wrong section, and
 * its secrets.
 */
START_TEST(test_plugin_section)
{
	struct conf *c = conf_new(with_plug);
	const struct plug_conf *p;
	char err[CONF_ERR_MAX] = "", *text, *v;
	const char *hec, *plug, *deye;

	ck_assert_ptr_nonnull(c);
	p = conf_section_get(c, &plug_section);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->count, 3);
	ck_assert(!conf_has_secret(c));

	setenv("DEYE_TEST_PLUG_URL", "mqtt://broker", 1);
	ck_assert_msg(conf_load_env(c, err, sizeof err) == 0, "%s", err);
	unsetenv("DEYE_TEST_PLUG_URL");
	ck_assert_str_eq(p->url, "mqtt://broker");

	ck_assert_int_eq(conf_set_option(c, "plug.count=10", err, sizeof err), -1);
	ck_assert_str_eq(err, "-o plug.count: count '10' out of range (1 to 9)");
	ck_assert_int_eq(conf_set_option(c, "deye.count=2", err, sizeof err), -1);
	ck_assert_str_eq(err, "-o deye.count: 'count' belongs in the [plug] section");
	ck_assert_int_eq(conf_set_option(c, "plug.listen=127.0.0.1:1", err,
	    sizeof err), -1);
	ck_assert_str_eq(err, "-o plug.listen: 'listen' belongs in a listener "
	    "section such as [deye]");
	ck_assert_msg(conf_set_option(c, "plug.password=pw", err, sizeof err) == 0,
	    "%s", err);
	ck_assert(conf_has_secret(c));
	ck_assert_msg(conf_finish(c, err, sizeof err) == 0, "%s", err);

	v = printed_value(c, "plug", "password");
	ck_assert_str_eq(v, "***");
	free(v);
	text = print_conf(c);
	hec = strstr(text, "\n[hec]\n");
	plug = strstr(text, "\n[plug]\n");
	deye = strstr(text, "\n[deye]\n");
	ck_assert(hec != NULL && plug != NULL && deye != NULL);
	ck_assert(hec < plug && plug < deye);
	ck_assert_ptr_null(strstr(text, "pw"));
	free(text);
	conf_free(c);
}
END_TEST

/*
 * Config and token files that another user can write are refused; what
 * they can only read is accepted (with a warning, seen in the black-box
 * tests).  Files owned by someone else are made with chown, through
 * sudo -n when the tests do not run as root.
 */
enum { CONFIG, TOKEN };
#define CHANGE(mode) "other users can change it (mode " mode "): chmod go-w "
#define OWNER "belongs to uid %u, who can change it: it must belong to root " \
	"or to the user running deye-mitm"
/* In the table: another user than the one testing (their file is ours to
 * read through our group, so that the owner is what is refused). */
#define OTHER 1000

static const struct {
	int kind;
	mode_t mode;
	uid_t uid;	/* 0: the user running the tests (root in CI); OTHER */
	gid_t gid;	/* 0: that user's own group; 100: users, shared */
	const char *err; /* after "PATH: " or "-o hec.token_file: 'PATH': " */
} modes[] = {
	{CONFIG, 0600, 0, 0, NULL},
	{CONFIG, 0640, 0, 0, NULL},
	{CONFIG, 0644, 0, 0, NULL},
	{CONFIG, 0444, 0, 0, NULL},
	{CONFIG, 0666, 0, 0, CHANGE("0666")},
	{CONFIG, 0646, 0, 0, CHANGE("0646")},
	{CONFIG, 0620, 0, 100, CHANGE("0620")},
	{CONFIG, 0664, 0, 0, NULL},
	{CONFIG, 0640, OTHER, 0, OWNER},
	{TOKEN, 0600, 0, 0, NULL},
	{TOKEN, 0640, 0, 0, NULL},
	{TOKEN, 0644, 0, 0, NULL},
	{TOKEN, 0400, 0, 0, NULL},
	{TOKEN, 0666, 0, 0, CHANGE("0666")},
	{TOKEN, 0602, 0, 0, CHANGE("0602")},
	{TOKEN, 0660, 0, 100, CHANGE("0660")},
	{TOKEN, 01622, 0, 100, CHANGE("1622")},
	{TOKEN, 0640, OTHER, 0, OWNER},
};

/*
 * chown path to uid:gid, through sudo -n unless we are root or it gives
 * nothing away (our own file to our own group).
 */
static void
chown_as_root(const char *path, uid_t uid, gid_t gid)
{
	char cmd[256];
	int rc;

	if (geteuid() == 0 || (uid == geteuid() && gid == getegid())) {
		ck_assert_msg(chown(path, uid, gid) == 0, "chown %u:%u %s: %s",
		    (unsigned)uid, (unsigned)gid, path, strerror(errno));
		return;
	}
	/* path is a mkdtemp name: nothing to quote. */
	snprintf(cmd, sizeof cmd, "sudo -n chown %u:%u %s </dev/null",
	    (unsigned)uid, (unsigned)gid, path);
	rc = system(cmd);
	ck_assert_msg(rc == 0, "%s failed (status %d): this test needs root, or "
	    "sudo that works without asking (sudo -n: cached credentials or "
	    "NOPASSWD)", cmd, rc);
}

START_TEST(test_file_modes)
{
	char dir[] = "/tmp/deye-conf-XXXXXX", path[64], opt[96], want[CONF_ERR_MAX];
	char err[CONF_ERR_MAX] = "";
	const char *text = modes[_i].kind == CONFIG ?
	    "[hec]\ntoken = t0ken\n" : "t0ken\n";
	struct conf *c = new_conf();
	int rc;

	/* Not root: the user's own file stands for root's (both are
	 * accepted), as root's 0600 file is not ours to read. */
	uid_t other = geteuid() == OTHER ? OTHER + 1 : OTHER;
	uid_t uid = modes[_i].uid == OTHER ? other : geteuid();
	gid_t gid = modes[_i].gid == 0 ? getegid() : modes[_i].gid;
	char owner[160];
	const char *msg;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/secret", dir);
	write_file(path, text, strlen(text));
	ck_assert_int_eq(chmod(path, modes[_i].mode), 0);
	chown_as_root(path, uid, gid);
	snprintf(owner, sizeof owner, OWNER, (unsigned)other);
	msg = modes[_i].err != NULL && strcmp(modes[_i].err, OWNER) == 0 ?
	    owner : modes[_i].err;
	if (modes[_i].kind == CONFIG) {
		rc = conf_load_file(c, path, err, sizeof err);
		snprintf(want, sizeof want, "%s: %s%s", path,
		    msg ? msg : "",
		    msg && strstr(msg, "chmod") ? path : "");
	} else {
		snprintf(opt, sizeof opt, "hec.token_file=%s", path);
		rc = conf_set_option(c, opt, err, sizeof err);
		snprintf(want, sizeof want, "-o hec.token_file: '%s': %s%s", path,
		    msg ? msg : "",
		    msg && strstr(msg, "chmod") ? path : "");
	}
	unlink(path);
	rmdir(dir);
	if (modes[_i].err == NULL) {
		ck_assert_msg(rc == 0, "mode %04o refused: %s", modes[_i].mode, err);
		ck_assert_str_eq(HEC(c)->token, "t0ken");
	} else {
		ck_assert_msg(rc == -1, "mode %04o uid %u accepted",
		    modes[_i].mode, (unsigned)uid);
		ck_assert_str_eq(err, want);
		ck_assert_msg(strstr(err, "t0ken") == NULL, "%s", err);
	}
	conf_free(c);
}
END_TEST

/* The token file's first line, byte by byte. */
static const struct {
	const char *text;
	size_t len;
	const char *token, *err; /* err after "-o hec.token_file: 'PATH': " */
} token_bytes[] = {
#define T(s) s, sizeof s - 1
	{T("abc\r\n"), "abc", NULL},
	{T("abc \t\r\n"), "abc", NULL},
	{T("abc\nX-Injected: yes\n"), "abc", NULL}, /* the first line only */
	{T("\xc3\xa9t\xc3\xa9\n"), "\xc3\xa9t\xc3\xa9", NULL},
	{T("abc\rX-Injected: yes\n"), NULL, "the token contains a control character"},
	{T("a\tb\n"), NULL, "the token contains a control character"},
	{T("\x01" "abc\n"), NULL, "the token contains a control character"},
	{T("abc\0def\n"), NULL, "the token contains a NUL byte"},
	{T("\0\n"), NULL, "the token contains a NUL byte"},
#undef T
};

START_TEST(test_token_bytes)
{
	char dir[] = "/tmp/deye-conf-XXXXXX", path[64], opt[96], want[CONF_ERR_MAX];
	char err[CONF_ERR_MAX] = "", token[64];
	struct conf *c = new_conf();
	int rc;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/token", dir);
	write_file(path, token_bytes[_i].text, token_bytes[_i].len);
	ck_assert_int_eq(chmod(path, 0600), 0);
	snprintf(opt, sizeof opt, "hec.token_file=%s", path);
	rc = conf_set_option(c, opt, err, sizeof err);
	unlink(path);
	rmdir(dir);
	snprintf(token, sizeof token, "%s", HEC(c)->token ? HEC(c)->token : "(unset)");
	conf_free(c);
	if (token_bytes[_i].err == NULL) {
		ck_assert_msg(rc == 0, "%s", err);
		ck_assert_str_eq(token, token_bytes[_i].token);
	} else {
		snprintf(want, sizeof want, "-o hec.token_file: '%s': %s", path,
		    token_bytes[_i].err);
		ck_assert_int_eq(rc, -1);
		ck_assert_str_eq(err, want);
	}
}
END_TEST

/* ---- files: data/conf/valid and data/conf/invalid ---- */

struct names {
	char **v;
	size_t n;
	bool opened;
};

static struct names valid_files, invalid_files;

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The NAME.conf files of dir, sorted, without ".conf". */
static void
list_conf_files(const char *dir, struct names *out)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	out->v = NULL;
	out->n = 0;
	out->opened = d != NULL;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char **nv;

		if (n <= 5 || strcmp(e->d_name + n - 5, ".conf") != 0)
			continue;
		if ((nv = realloc(out->v, (out->n + 1) * sizeof *nv)) == NULL)
			break;
		out->v = nv;
		if ((out->v[out->n] = strndup(e->d_name, n - 5)) == NULL)
			break;
		out->n++;
	}
	closedir(d);
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

void
conf_suite_cleanup(void)
{
	free_names(&valid_files);
	free_names(&invalid_files);
}

/* Run from the wrong directory, the loops below would have nothing to do. */
START_TEST(test_data_present)
{
	ck_assert_msg(valid_files.opened, DATA "/valid not found: run from tests/");
	ck_assert_msg(invalid_files.opened, DATA "/invalid not found: run from tests/");
	ck_assert_uint_ge(valid_files.n, 5);
	ck_assert_uint_ge(invalid_files.n, 40);
}
END_TEST

/*
 * Each valid file loads, and -n prints exactly NAME.expected.  That output is
 * itself a configuration meaning the same: loading it prints the same again.
 */
START_TEST(test_valid_file)
{
	const char *name = valid_files.v[_i];
	char path[256], exp_path[256], tmp[] = "/tmp/deye-conf-XXXXXX";
	char err[CONF_ERR_MAX] = "", *want, *got, *again;
	struct conf *c = new_conf();
	int fd;

	snprintf(path, sizeof path, DATA "/valid/%s.conf", name);
	snprintf(exp_path, sizeof exp_path, DATA "/valid/%s.expected", name);
	ck_assert_msg(conf_load_file(c, path, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(conf_finish(c, err, sizeof err) == 0, "%s", err);
	got = print_conf(c);
	conf_free(c);
	want = read_file(exp_path);
	ck_assert_msg(strcmp(got, want) == 0, "%s: conf_print differs from %s:\n%s",
	    path, exp_path, got);

	fd = mkstemp(tmp);
	ck_assert_int_ge(fd, 0);
	close(fd);
	write_file(tmp, got, strlen(got));
	c = new_conf();
	err[0] = '\0';
	if (conf_load_file(c, tmp, err, sizeof err) == 0)
		conf_finish(c, err, sizeof err);
	unlink(tmp);
	ck_assert_msg(err[0] == '\0', "the output of %s does not load: %s", path, err);
	again = print_conf(c);
	conf_free(c);
	ck_assert_str_eq(again, want);
	free(again);
	free(got);
	free(want);
}
END_TEST

/*
 * Each invalid file fails, in conf_load_file or conf_finish, with the message
 * its first line gives after "# error: ", as seen from data/conf/.
 */
START_TEST(test_invalid_file)
{
	const char *name = invalid_files.v[_i];
	char path[256], want[CONF_ERR_MAX + 16], err[CONF_ERR_MAX] = "";
	char line[CONF_ERR_MAX];
	struct conf *c;
	FILE *f;
	int rc;

	snprintf(path, sizeof path, DATA "/invalid/%s.conf", name);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	if (fgets(line, sizeof line, f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	ck_assert_msg(strncmp(line, "# error: ", 9) == 0,
	    "%s: the first line must be '# error: <message>'", path);
	snprintf(want, sizeof want, DATA "/%s", line + 9);

	c = new_conf();
	rc = conf_load_file(c, path, err, sizeof err);
	if (rc == 0)
		rc = conf_finish(c, err, sizeof err);
	conf_free(c);
	ck_assert_msg(rc == -1, "%s loaded without error", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_missing)
{
	struct conf *c = new_conf();
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(conf_load_file(c, DATA "/no-such.conf", err, sizeof err), -1);
	ck_assert_str_eq(err, DATA "/no-such.conf: No such file or directory");
	ck_assert_int_eq(conf_load_file(c, DATA, err, sizeof err), -1);
	ck_assert_str_eq(err, DATA ": Is a directory");
	conf_free(c);
}
END_TEST

/*
 * Long lines, written to a temporary file rather than kept in data/: a line
 * of up to 4095 characters (without its line end) loads, a longer one is an
 * error on its line.  Line 3 proves that reading went on at the right place.
 */
static const struct {
	size_t len;   /* of line 2, without its line end */
	bool eol;     /* line 2 ends with "\n" and line 3 follows */
	bool comment; /* "#xxx..." rather than "source = xxx..." */
	unsigned err_line;
} long_lines[] = {
	{4094, true, true, 0},
	{4095, true, true, 0},
	{4095, true, false, 0},
	{4095, false, false, 0},
	{4094, true, false, 0},
	{4094, false, true, 0},
	{4094, false, false, 0},
	{4096, true, true, 2},
	{4096, true, false, 2},
	{4096, false, false, 2},
	{10000, true, false, 2},
	{100000, true, true, 2},
};

START_TEST(test_long_lines)
{
	char dir[] = "/tmp/deye-conf-XXXXXX", path[64], err[CONF_ERR_MAX] = "";
	char want[CONF_ERR_MAX];
	char index[16];
	size_t len = long_lines[_i].len, n = 0, source_len;
	char *text = malloc(len + 64);
	struct conf *c;
	int rc;

	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/long.conf", dir);
	n += (size_t)snprintf(text, len + 64, "[hec]\n");
	if (long_lines[_i].comment) {
		text[n] = '#';
		memset(text + n + 1, 'c', len - 1);
	} else {
		memcpy(text + n, "source = ", 9);
		memset(text + n + 9, 'v', len - 9);
	}
	n += len;
	if (long_lines[_i].eol)
		n += (size_t)snprintf(text + n, len + 64 - n, "\nindex = after\n");
	write_file(path, text, n);

	c = new_conf();
	rc = conf_load_file(c, path, err, sizeof err);
	unlink(path);
	rmdir(dir);
	free(text);
	/* Keep what is checked and free first: a failure leaks nothing. */
	source_len = HEC(c)->source != NULL ? strlen(HEC(c)->source) : 0;
	snprintf(index, sizeof index, "%s", HEC(c)->index ? HEC(c)->index : "(unset)");
	conf_free(c);
	if (long_lines[_i].err_line == 0) {
		ck_assert_msg(rc == 0, "a %zu-character line was refused: %s", len, err);
		if (!long_lines[_i].comment)
			ck_assert_uint_eq(source_len, len - 9);
		if (long_lines[_i].eol)
			ck_assert_str_eq(index, "after");
	} else {
		ck_assert_msg(rc == -1, "a %zu-character line was accepted", len);
		snprintf(want, sizeof want, "%s:%u: line too long", path,
		    long_lines[_i].err_line);
		ck_assert_str_eq(err, want);
	}
}
END_TEST

/*
 * A UTF-8 byte order mark before the first line is skipped (Windows
 * editors write one); anywhere else it is an ordinary byte.
 */
static const struct {
	const char *text;
	const char *err; /* after "PATH:" */
} boms[] = {
	{"\xef\xbb\xbflog_level = debug\n[hec]\nhost = h\n", NULL},
	{"\xef\xbb\xbf# a comment first\nlog_level = debug\n[hec]\nhost = h\n", NULL},
	{"\xef\xbb\xbf\nlog_level = debug\n[hec]\nhost = h\n", NULL},
	{"\xef\xbb\xbf[hec]\nhost = h\n", NULL},
	{"log_level = debug\n\xef\xbb\xbf[hec]\n", "2: expected key = value"},
	{"\xef\xbb\xbf\xef\xbb\xbflog_level = debug\n",
	    "1: unknown key '\xef\xbb\xbflog_level'"},
};

START_TEST(test_bom)
{
	char dir[] = "/tmp/deye-conf-XXXXXX", path[64], want[CONF_ERR_MAX];
	char err[CONF_ERR_MAX] = "";
	struct conf *c = new_conf();
	int rc;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/bom.conf", dir);
	write_file(path, boms[_i].text, strlen(boms[_i].text));
	rc = conf_load_file(c, path, err, sizeof err);
	unlink(path);
	rmdir(dir);
	if (boms[_i].err == NULL) {
		ck_assert_msg(rc == 0, "%s", err);
		ck_assert_str_eq(HEC(c)->host, "h");
		if (strstr(boms[_i].text, "log_level") != NULL)
			assert_printed(c, "", "log_level", "debug");
	} else {
		snprintf(want, sizeof want, "%s:%s", path, boms[_i].err);
		ck_assert_int_eq(rc, -1);
		ck_assert_str_eq(err, want);
	}
	conf_free(c);
}
END_TEST

/* ---- the suite ---- */

static TCase *
tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, clear_env, restore);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *
conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc;

	list_conf_files(DATA "/valid", &valid_files);
	list_conf_files(DATA "/invalid", &invalid_files);

	tc = tcase(s, "duration");
	tcase_add_loop_test(tc, test_duration_ok, 0, NELEM(duration_ok));
	tcase_add_loop_test(tc, test_duration_bad, 0, NELEM(duration_bad));
	tcase_add_loop_test(tc, test_duration_format, 0, NELEM(duration_fmt));

	tc = tcase(s, "size");
	tcase_add_loop_test(tc, test_size_ok, 0, NELEM(size_ok));
	tcase_add_loop_test(tc, test_size_bad, 0, NELEM(size_bad));
	tcase_add_loop_test(tc, test_size_format, 0, NELEM(size_fmt));

	tc = tcase(s, "option");
	tcase_add_test(tc, test_spool_max_old_place);
	tcase_add_loop_test(tc, test_option_ok, 0, NELEM(option_ok));
	tcase_add_loop_test(tc, test_option_bad, 0, NELEM(option_bad));
	tcase_add_test(tc, test_option_long_name);
	tcase_add_test(tc, test_option_creates_listener);
	tcase_add_test(tc, test_option_unknown_makes_no_listener);
	tcase_add_test(tc, test_option_last_wins);

	tc = tcase(s, "precedence");
	tcase_add_loop_test(tc, test_precedence, 0, NELEM(precedence));
	tcase_add_loop_test(tc, test_env_empty, 0, NELEM(precedence));
	tcase_add_loop_test(tc, test_env_over_default, 0, NELEM(precedence));
	tcase_add_test(tc, test_env_none);
	tcase_add_loop_test(tc, test_env_bad, 0, NELEM(env_bad));
	tcase_add_test(tc, test_option_over_file);

	tc = tcase(s, "finish");
	tcase_add_test(tc, test_finish_implicit_listener);
	tcase_add_test(tc, test_finish_hec_only);
	tcase_add_loop_test(tc, test_finish_ports, 0, NELEM(ports));
	tcase_add_test(tc, test_finish_host);

	tc = tcase(s, "token");
	tcase_add_loop_test(tc, test_token_file, 0, NELEM(token_files));
	tcase_add_loop_test(tc, test_token_file_bad, 0, NELEM(token_file_bad));
	tcase_add_test(tc, test_token_file_replaces_token);
	tcase_add_loop_test(tc, test_token_never_printed, 0, NELEM(token_ways));
	tcase_add_test(tc, test_token_unset_printed_empty);
	tcase_add_loop_test(tc, test_hec_enabled, 0, NELEM(hec_enabled));

	tc = tcase(s, "url");
	tcase_add_loop_test(tc, test_url_ok, 0, NELEM(url_ok));
	tcase_add_loop_test(tc, test_url_bad, 0, NELEM(url_bad));

	tc = tcase(s, "files");
	tcase_add_test(tc, test_data_present);
	tcase_add_loop_test(tc, test_valid_file, 0, (int)valid_files.n);
	tcase_add_loop_test(tc, test_invalid_file, 0, (int)invalid_files.n);
	tcase_add_test(tc, test_file_missing);
	tcase_add_loop_test(tc, test_long_lines, 0, NELEM(long_lines));
	tcase_add_loop_test(tc, test_bom, 0, NELEM(boms));

	tc = tcase(s, "secrets");
	tcase_add_loop_test(tc, test_url_redact, 0, NELEM(redact));
	tcase_add_loop_test(tc, test_wipe_option, 0, NELEM(wipe));
	tcase_add_loop_test(tc, test_has_secret, 0, NELEM(holds));
	tcase_add_test(tc, test_plugin_section);
	tcase_add_loop_test(tc, test_file_modes, 0, NELEM(modes));
	tcase_add_loop_test(tc, test_token_bytes, 0, NELEM(token_bytes));

	return s;
}
