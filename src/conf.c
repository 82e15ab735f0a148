/*
 * conf.c - configuration from defaults, file, environment and -o options.
 *
 * Every key is one row of the tables below: its scope (global, [hec], or a
 * listener section), its type, where it lives in the structs, its default
 * as text and its bounds.  Defaults are applied by parsing that text, so the
 * table is the only place a default is written, and -n prints every key
 * from the same rows.  A value is parsed and checked when it is set; the
 * error names where it came from ("file:line", "environment (NAME)" or
 * "-o NAME.KEY") so that main can print it and exit 78.
 *
 * Secrets (deye-mitm.conf(5), Syntax and HEC KEYS): the token, and a
 * password in a URL's userinfo, are printed as *** and never put in an
 * error message; a secret with a control character is refused (it would
 * end up in an HTTP header); main
 * wipes the secrets of -o from argv with conf_wipe_option.  Files: a config
 * or token file that another user can write is refused (the OpenSSH rule:
 * owned by root or by us, not group- or world-writable), and one that every
 * user can read gets a warning when it holds a secret.  Group read is left
 * alone: root:deye-mitm 0640 is how a group is given a file on purpose.
 * Text that goes into an HEC envelope must be valid UTF-8, as jansson drops
 * a string that is not.
 */
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "log.h"

enum scope { S_GLOBAL, S_HEC, S_LISTENER };

enum type {
	T_STR,      /* char *; "" unsets an optional string */
	T_NONEMPTY, /* char *, never empty */
	T_TEXT,     /* T_STR that goes into events: valid UTF-8 */
	T_NONEMPTY_TEXT, /* T_NONEMPTY that goes into events: valid UTF-8 */
	T_USER,     /* a user name that exists here */
	T_SECRET,   /* char *, printed as *** */
	T_SECRETFILE, /* path whose first line becomes the token */
	T_URL,      /* HEC URL */
	T_LONG,
	T_DURATION, /* int64_t milliseconds */
	T_SIZE,     /* int64_t bytes */
	T_BOOL,
	T_ENUM,
	T_LISTEN,
	T_UPSTREAM,
	T_TZ,
	T_ALLOW,
};

struct key {
	enum scope scope;
	const char *name;
	enum type type;
	size_t off;
	const char *def;     /* NULL: unset */
	int64_t min, max;    /* T_LONG, T_DURATION, T_SIZE */
	const char *const *names; /* T_ENUM */
	const char *env;     /* environment variable, or NULL */
};

static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const proto_names[] = {"solarman", "envoy", "raw", NULL};
static const char *const failure_names[] = {"close", "answer", NULL};

#define DEFAULT_ALLOW \
	"127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, " \
	"169.254.0.0/16, ::1/128, fc00::/7, fe80::/10"

#define MS(x) ((int64_t)(x))
#define SEC(x) ((int64_t)(x) * 1000)
#define KI(x) ((int64_t)(x) << 10)
#define MI(x) ((int64_t)(x) << 20)
#define GI(x) ((int64_t)(x) << 30)

#define G(f) offsetof(struct conf, f)
#define H(f) offsetof(struct hec_conf, f)
#define L(f) offsetof(struct listener_conf, f)

static const struct key keys[] = {
	{S_GLOBAL, "log_level", T_ENUM, G(log_level), "info", 0, 0, level_names, NULL},
	{S_GLOBAL, "state_dir", T_NONEMPTY, G(state_dir), "./deye-mitm-state", 0, 0, NULL, NULL},
	{S_GLOBAL, "journal_fsync", T_DURATION, G(journal_fsync_ms), "1s", 0, SEC(3600), NULL, NULL},
	{S_GLOBAL, "events", T_NONEMPTY, G(events), "stdout", 0, 0, NULL, NULL},
	{S_GLOBAL, "spool_max", T_SIZE, G(spool_max), NULL, KI(64), GI(1024), NULL, NULL},
	{S_GLOBAL, "max_connections", T_LONG, G(max_connections), "512", 1, 10000, NULL, NULL},
	{S_GLOBAL, "max_connections_per_peer", T_LONG, G(max_connections_per_peer), "16", 1, 10000, NULL, NULL},
	{S_GLOBAL, "allow", T_ALLOW, G(allow), DEFAULT_ALLOW, 0, 0, NULL, NULL},
	{S_GLOBAL, "user", T_USER, G(user), NULL, 0, 0, NULL, NULL},

	{S_HEC, "url", T_URL, H(url), NULL, 0, 0, NULL, "DEYE_SPLUNK_HEC_URL"},
	{S_HEC, "token", T_SECRET, H(token), NULL, 0, 0, NULL, "DEYE_SPLUNK_HEC_TOKEN"},
	{S_HEC, "token_file", T_SECRETFILE, H(token_file), NULL, 0, 0, NULL, NULL},
	{S_HEC, "index", T_TEXT, H(index), NULL, 0, 0, NULL, "DEYE_SPLUNK_HEC_INDEX"},
	{S_HEC, "sourcetype", T_NONEMPTY_TEXT, H(sourcetype), "_json", 0, 0, NULL, "DEYE_SPLUNK_HEC_SOURCETYPE"},
	{S_HEC, "source", T_NONEMPTY_TEXT, H(source), "deye-mitm", 0, 0, NULL, NULL},
	{S_HEC, "host", T_TEXT, H(host), NULL, 0, 0, NULL, NULL},
	{S_HEC, "ca_file", T_STR, H(ca_file), NULL, 0, 0, NULL, "DEYE_SPLUNK_HEC_CA_FILE"},
	{S_HEC, "insecure", T_BOOL, H(insecure), "no", 0, 0, NULL, "DEYE_SPLUNK_HEC_INSECURE"},
	{S_HEC, "batch_max_events", T_LONG, H(batch_max_events), "100", 1, 100000, NULL, NULL},
	{S_HEC, "batch_max_bytes", T_SIZE, H(batch_max_bytes), "512K", KI(1), MI(512), NULL, NULL},
	{S_HEC, "flush_interval", T_DURATION, H(flush_interval_ms), "1s", MS(10), SEC(3600), NULL, NULL},
	{S_HEC, "timeout", T_DURATION, H(timeout_ms), "10s", MS(100), SEC(600), NULL, NULL},
	/* The old place of the global spool_max, still read (not printed). */
	{S_HEC, "spool_max", T_SIZE, H(spool_max), NULL, KI(64), GI(1024), NULL, NULL},

	{S_LISTENER, "protocol", T_ENUM, L(protocol), "solarman", 0, 0, proto_names, NULL},
	{S_LISTENER, "listen", T_LISTEN, L(listen), "0.0.0.0:10000", 0, 0, NULL, NULL},
	{S_LISTENER, "upstream", T_UPSTREAM, L(upstream), "5406.deviceaccess.host:10000", 0, 0, NULL, NULL},
	{S_LISTENER, "connect_timeout", T_DURATION, L(connect_timeout_ms), "5s", MS(100), SEC(300), NULL, NULL},
	{S_LISTENER, "idle_timeout", T_DURATION, L(idle_timeout_ms), "10m", MS(100), SEC(7 * 86400), NULL, NULL},
	{S_LISTENER, "fin_timeout", T_DURATION, L(fin_timeout_ms), "10s", MS(100), SEC(3600), NULL, NULL},
	{S_LISTENER, "on_upstream_failure", T_ENUM, L(on_upstream_failure), "close", 0, 0, failure_names, NULL},
	{S_LISTENER, "tz_offset", T_TZ, L(tz_offset), "auto", 0, 0, NULL, NULL},
	{S_LISTENER, "capture_dir", T_STR, L(capture_dir), NULL, 0, 0, NULL, NULL},
	{S_LISTENER, "spool_dir", T_NONEMPTY, L(spool_dir), "/var/spool/envoy", 0, 0, NULL, NULL},
	{S_LISTENER, "max_body", T_SIZE, L(max_body), "8M", KI(1), MI(64), NULL, NULL},
};
#define NKEYS (sizeof keys / sizeof keys[0])

const char *
conf_proto_name(int p)
{
	return p >= 0 && p < 3 ? proto_names[p] : "?";
}

/* ---- values with units ---- */

/* A whole number followed by the rest of the string in *unit. */
static int
parse_count(const char *s, int64_t *v, const char **unit)
{
	char *end;
	long long n;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || n < 0)
		return -1;
	*v = n;
	*unit = end;
	return 0;
}

int
conf_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
	    {"d", 86400000}};
	const char *unit;
	int64_t n;

	if (parse_count(s, &n, &unit) != 0) {
		snprintf(err, errlen,
		    "'%s': not a duration (a whole number and a unit: 500ms, 5s, 10m, 1h, 1d)",
		    s);
		return -1;
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			if (n > INT64_MAX / units[i].ms) {
				snprintf(err, errlen, "'%s': too large", s);
				return -1;
			}
			*ms = n * units[i].ms;
			return 0;
		}
	}
	snprintf(err, errlen, "'%s': %s (use ms, s, m, h or d)", s,
	    *unit == '\0' ? "a duration needs a unit" : "unknown unit");
	return -1;
}

int
conf_parse_size(const char *s, int64_t *bytes, char *err, size_t errlen)
{
	static const char *const suffixes[] = {"", "K", "M", "G", "T"};
	const char *unit;
	int64_t n;

	if (parse_count(s, &n, &unit) != 0) {
		snprintf(err, errlen, "'%s': not a size (a whole number, then K, M or G)", s);
		return -1;
	}
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		size_t ul = strlen(suffixes[i]);
		/* "64K", "64k", "64KB", "64KiB" all mean 65536 bytes. */
		if (strncasecmp(unit, suffixes[i], ul) != 0)
			continue;
		const char *rest = unit + ul;
		if (!(rest[0] == '\0' || (ul > 0 && (strcmp(rest, "B") == 0 ||
		    strcmp(rest, "iB") == 0))))
			continue;
		if (n > (INT64_MAX >> (10 * i))) {
			snprintf(err, errlen, "'%s': too large", s);
			return -1;
		}
		*bytes = n << (10 * i);
		return 0;
	}
	snprintf(err, errlen, "'%s': unknown unit (use K, M or G)", s);
	return -1;
}

void
conf_format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 86400000 == 0)
		snprintf(buf, len, "%" PRId64 "d", ms / 86400000);
	else if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%" PRId64 "h", ms / 3600000);
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%" PRId64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
}

void
conf_format_size(int64_t b, char *buf, size_t len)
{
	static const char suffix[] = "KMGT";
	int i = -1;

	while (b != 0 && b % 1024 == 0 && i < 3) {
		b /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%" PRId64, b);
	else
		snprintf(buf, len, "%" PRId64 "%c", b, suffix[i]);
}

static int
parse_bool(const char *s, bool *v)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*v = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*v = false;
			return 0;
		}
	}
	return -1;
}

/* RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool
utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s != '\0') {
		unsigned c = *s++, need, cp, min;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		for (; need > 0; need--, s++) {
			if ((*s & 0xc0) != 0x80) /* also the terminating NUL */
				return false;
			cp = cp << 6 | (*s & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/*
 * Where the password of a URL's userinfo ("scheme://user:PASSWORD@host")
 * starts and how long it is; false when there is none.  Done by hand, not
 * with libcurl, so that a URL libcurl refuses is masked in the error too.
 */
static bool
url_password(const char *url, size_t *off, size_t *len)
{
	const char *auth = strstr(url, "://"), *end, *at = NULL, *colon;

	auth = auth != NULL ? auth + 3 : url;
	end = auth + strcspn(auth, "/?#");
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL ||
	    (colon = memchr(auth, ':', (size_t)(at - auth))) == NULL)
		return false;
	*off = (size_t)(colon + 1 - url);
	*len = (size_t)(at - colon - 1);
	return true;
}

char *
conf_url_redact(const char *url)
{
	size_t off, len, n = strlen(url);
	char *r;

	if (!url_password(url, &off, &len))
		return strdup(url);
	if ((r = malloc(n - len + 4)) == NULL)
		return NULL;
	memcpy(r, url, off);
	memcpy(r + off, "***", 3);
	memcpy(r + off + 3, url + off + len, n - off - len + 1);
	return r;
}

static int
check_hec_url(const char *s, char *err, size_t errlen)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *path = NULL, *shown;
	int rc = -1;

	/* Never echo a password, even in an error. */
	if ((shown = conf_url_redact(s)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (has_control(s)) {
		snprintf(err, errlen, "the URL contains a control character");
		goto out;
	}
	if ((u = curl_url()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen, "'%s': not a URL (https://host:8088)", shown);
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
		snprintf(err, errlen, "'%s': the scheme must be https or http", shown);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
	    strcmp(path, "/") != 0 &&
	    strncmp(path, "/services/collector", 19) != 0) {
		snprintf(err, errlen,
		    "'%s': the path must be empty or /services/collector...", shown);
		goto out;
	}
	rc = 0;
out:
	free(shown);
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

/*
 * Whether gid is uid's own group and nobody else's (Debian and Ubuntu give
 * each user one, and a umask of 002 then makes files group-writable: that
 * lets no other user write them).
 */
static bool
is_private_group(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	struct group *gr = getgrgid(gid);

	if (pw == NULL || gr == NULL || pw->pw_gid != gid ||
	    strcmp(pw->pw_name, gr->gr_name) != 0)
		return false;
	for (char **m = gr->gr_mem; *m != NULL; m++)
		if (strcmp(*m, pw->pw_name) != 0)
			return false;
	return true;
}

/*
 * Refuse a file that another user can write: it could make us read what
 * they like (or, for a token, send it where they like).  Only regular
 * files: a pipe (-f <(...)) belongs to whoever made it.
 */
static int
check_file_owner(FILE *f, const char *path, char *msg, size_t msglen)
{
	struct stat st;

	if (fstat(fileno(f), &st) != 0) {
		snprintf(msg, msglen, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(msg, msglen,
		    "belongs to uid %u, who can change it: it must belong to root "
		    "or to the user running deye-mitm", (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & S_IWOTH) != 0 || ((st.st_mode & S_IWGRP) != 0 &&
	    !is_private_group(st.st_uid, st.st_gid))) {
		snprintf(msg, msglen,
		    "other users can change it (mode %04o): chmod go-w %s",
		    (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}

/* A secret in a file every user can read is worth a warning. */
static void
warn_world_readable(FILE *f, const char *path, const char *what)
{
	struct stat st;

	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & S_IROTH) != 0)
		log_warnx("%s: every user can read this %s (mode %04o): chmod 600 "
		    "%s (or 640 for a group that needs it)", path, what,
		    (unsigned)(st.st_mode & 07777), path);
}

enum line_status { LINE_OK, LINE_EOF, LINE_LONG, LINE_NUL };

/*
 * One line of f into buf (size bytes), without its '\n'.  A NUL is refused
 * rather than read past: it would cut the line short without a word.  The
 * caller tells a read error from the end of the file with ferror().
 */
static enum line_status
read_line(FILE *f, char *buf, size_t size)
{
	size_t n = 0;
	int ch;

	while ((ch = getc(f)) != EOF && ch != '\n') {
		if (ch == '\0')
			return LINE_NUL;
		if (n + 1 >= size)
			return LINE_LONG;
		buf[n++] = (char)ch;
	}
	buf[n] = '\0';
	return ch == EOF && (n == 0 || ferror(f)) ? LINE_EOF : LINE_OK;
}

/* The first line of a secret file, without its line end. */
static char *
read_secret_file(const char *path, char *err, size_t errlen)
{
	char line[4096], msg[CONF_ERR_MAX / 2], *tok = NULL;
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "'%s': %s", path, strerror(errno));
		return NULL;
	}
	if (check_file_owner(f, path, msg, sizeof msg) != 0) {
		snprintf(err, errlen, "'%s': %s", path, msg);
		goto out;
	}
	switch (read_line(f, line, sizeof line)) {
	case LINE_LONG:
		snprintf(err, errlen, "'%s': the token is too long", path);
		goto out;
	case LINE_NUL:
		snprintf(err, errlen, "'%s': the token contains a NUL byte", path);
		goto out;
	case LINE_EOF:
		line[0] = '\0';
		break;
	case LINE_OK:
		break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "'%s': %s", path, strerror(errno));
		goto out;
	}
	n = strlen(line);
	while (n > 0 && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "'%s': the token file is empty", path);
		goto out;
	}
	/* It goes into an HTTP header: a CR or LF would start another one. */
	if (has_control(line)) {
		snprintf(err, errlen, "'%s': the token contains a control character",
		    path);
		goto out;
	}
	warn_world_readable(f, path, "token file");
	if ((tok = strdup(line)) == NULL)
		snprintf(err, errlen, "out of memory");
out:
	fclose(f);
	return tok;
}

static int
replace_str(char **field, const char *v, char *err, size_t errlen)
{
	char *copy = NULL;

	if (v != NULL && (copy = strdup(v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(*field);
	*field = copy;
	return 0;
}

/* Parse v into the field of k inside base. */
static int
key_set(const struct key *k, void *base, const char *v, char *err, size_t errlen)
{
	void *field = (char *)base + k->off;

	if ((k->type == T_TEXT || k->type == T_NONEMPTY_TEXT) && !utf8_valid(v)) {
		/* jansson would leave it out of every event without a word. */
		snprintf(err, errlen, "'%s' is not valid UTF-8", k->name);
		return -1;
	}
	switch (k->type) {
	case T_STR:
	case T_TEXT:
		return replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case T_NONEMPTY:
	case T_NONEMPTY_TEXT:
		if (v[0] == '\0') {
			snprintf(err, errlen, "'%s' needs a value", k->name);
			return -1;
		}
		return replace_str(field, v, err, errlen);
	case T_USER:
		if (v[0] != '\0' && getpwnam(v) == NULL) {
			snprintf(err, errlen, "user '%s' does not exist", v);
			return -1;
		}
		return replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case T_SECRET:
		/* It goes into a header: a CR or LF would start another one. */
		if (has_control(v)) {
			snprintf(err, errlen, "the %s contains a control character",
			    k->name);
			return -1;
		}
		return replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case T_SECRETFILE: {
		char *tok;

		if (v[0] == '\0')
			return replace_str(field, NULL, err, errlen);
		if ((tok = read_secret_file(v, err, errlen)) == NULL)
			return -1;
		/* The file's token replaces any token set before it. */
		free(((struct hec_conf *)base)->token);
		((struct hec_conf *)base)->token = tok;
		return replace_str(field, v, err, errlen);
	}
	case T_URL:
		if (v[0] != '\0' && check_hec_url(v, err, errlen) != 0)
			return -1;
		return replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case T_LONG:
	case T_DURATION:
	case T_SIZE: {
		int64_t n;

		if (k->type == T_DURATION) {
			if (conf_parse_duration(v, &n, err, errlen) != 0)
				return -1;
		} else if (k->type == T_SIZE) {
			if (conf_parse_size(v, &n, err, errlen) != 0)
				return -1;
		} else {
			const char *rest;
			if (parse_count(v, &n, &rest) != 0 || *rest != '\0') {
				snprintf(err, errlen, "'%s': not a whole number", v);
				return -1;
			}
		}
		if (n < k->min || n > k->max) {
			char lo[32], hi[32];
			if (k->type == T_DURATION) {
				conf_format_duration(k->min, lo, sizeof lo);
				conf_format_duration(k->max, hi, sizeof hi);
			} else if (k->type == T_SIZE) {
				conf_format_size(k->min, lo, sizeof lo);
				conf_format_size(k->max, hi, sizeof hi);
			} else {
				snprintf(lo, sizeof lo, "%" PRId64, k->min);
				snprintf(hi, sizeof hi, "%" PRId64, k->max);
			}
			snprintf(err, errlen, "%s '%s' out of range (%s to %s)",
			    k->name, v, lo, hi);
			return -1;
		}
		if (k->type == T_LONG)
			*(long *)field = (long)n;
		else
			*(int64_t *)field = n;
		return 0;
	}
	case T_BOOL:
		if (parse_bool(v, field) != 0) {
			snprintf(err, errlen, "'%s': expected yes or no", v);
			return -1;
		}
		return 0;
	case T_ENUM:
		for (int i = 0; k->names[i] != NULL; i++) {
			if (strcmp(v, k->names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		{
			char list[128] = "";
			size_t n = 0;
			for (int i = 0; k->names[i] != NULL && n < sizeof list; i++) {
				int r = snprintf(list + n, sizeof list - n, "%s%s",
				    i ? ", " : "", k->names[i]);
				if (r > 0)
					n += (size_t)r;
			}
			snprintf(err, errlen, "%s '%s': expected one of %s", k->name,
			    v, list);
		}
		return -1;
	case T_LISTEN: {
		struct conf_listen *l = field;
		return addr_parse_numeric(v, &l->ss, &l->len, err, errlen);
	}
	case T_UPSTREAM: {
		struct conf_upstream *u = field, nu = {0};
		if (strcmp(v, "none") == 0) {
			nu.none = true;
		} else if (addr_split(v, nu.host, sizeof nu.host, &nu.port, false,
		    err, errlen) != 0) {
			return -1;
		}
		*u = nu;
		return 0;
	}
	case T_TZ: {
		struct conf_tz *tz = field;
		char *end;
		long m;

		if (strcmp(v, "auto") == 0) {
			tz->is_auto = true;
			tz->minutes = 0;
			return 0;
		}
		errno = 0;
		m = strtol(v, &end, 10);
		if (v[0] == '\0' || isspace((unsigned char)v[0]) || *end != '\0' ||
		    errno != 0 || m < -720 || m > 840) {
			snprintf(err, errlen,
			    "tz_offset '%s': expected auto or minutes east of UTC (-720 to 840)",
			    v);
			return -1;
		}
		tz->is_auto = false;
		tz->minutes = (int)m;
		return 0;
	}
	case T_ALLOW: {
		struct allow_list *al = field, nal;
		if (allow_parse(v, &nal, err, errlen) != 0)
			return -1;
		allow_free(al);
		*al = nal;
		return 0;
	}
	}
	return -1;
}

static void
key_format(const struct key *k, const void *base, char *buf, size_t len)
{
	const void *field = (const char *)base + k->off;

	buf[0] = '\0';
	switch (k->type) {
	case T_STR:
	case T_NONEMPTY:
	case T_TEXT:
	case T_NONEMPTY_TEXT:
	case T_USER:
	case T_SECRETFILE: {
		const char *s = *(char *const *)field;
		snprintf(buf, len, "%s", s ? s : "");
		break;
	}
	case T_URL: {
		const char *s = *(char *const *)field;
		char *shown = s != NULL ? conf_url_redact(s) : NULL;
		/* Out of memory shows nothing rather than the password. */
		snprintf(buf, len, "%s", shown ? shown : "");
		free(shown);
		break;
	}
	case T_SECRET:
		snprintf(buf, len, "%s", *(char *const *)field ? "***" : "");
		break;
	case T_LONG:
		snprintf(buf, len, "%ld", *(const long *)field);
		break;
	case T_DURATION:
		conf_format_duration(*(const int64_t *)field, buf, len);
		break;
	case T_SIZE:
		conf_format_size(*(const int64_t *)field, buf, len);
		break;
	case T_BOOL:
		snprintf(buf, len, "%s", *(const bool *)field ? "yes" : "no");
		break;
	case T_ENUM:
		snprintf(buf, len, "%s", k->names[*(const int *)field]);
		break;
	case T_LISTEN:
		addr_format((const struct sockaddr *)&((const struct conf_listen *)field)->ss,
		    buf, len);
		break;
	case T_UPSTREAM: {
		const struct conf_upstream *u = field;
		if (u->none)
			snprintf(buf, len, "none");
		else if (strchr(u->host, ':') != NULL)
			snprintf(buf, len, "[%s]:%u", u->host, u->port);
		else
			snprintf(buf, len, "%s:%u", u->host, u->port);
		break;
	}
	case T_TZ: {
		const struct conf_tz *tz = field;
		if (tz->is_auto)
			snprintf(buf, len, "auto");
		else
			snprintf(buf, len, "%d", tz->minutes);
		break;
	}
	case T_ALLOW: {
		const struct allow_list *al = field;
		size_t n = 0;
		for (size_t i = 0; i < al->n && n + 1 < len; i++) {
			char c[INET6_ADDRSTRLEN + 8];
			cidr_format(&al->v[i], c, sizeof c);
			int r = snprintf(buf + n, len - n, "%s%s", i ? ", " : "", c);
			if (r > 0)
				n += (size_t)r;
		}
		break;
	}
	}
}

static const struct key *
key_find(enum scope scope, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].scope == scope && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static void
free_fields(enum scope scope, void *base)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		void *field = (char *)base + k->off;

		if (k->scope != scope)
			continue;
		switch (k->type) {
		case T_STR: case T_NONEMPTY: case T_TEXT: case T_NONEMPTY_TEXT:
		case T_USER: case T_SECRET: case T_SECRETFILE: case T_URL:
			free(*(char **)field);
			*(char **)field = NULL;
			break;
		case T_ALLOW:
			allow_free(field);
			break;
		default:
			break;
		}
	}
}

static int
apply_defaults(enum scope scope, void *base)
{
	char err[CONF_ERR_MAX];

	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].scope == scope && keys[i].def != NULL &&
		    key_set(&keys[i], base, keys[i].def, err, sizeof err) != 0)
			return -1;
	return 0;
}

/* ---- sections ---- */

static bool
valid_section_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 31)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

static struct listener_conf *
listener_find(struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return &c->listeners[i];
	return NULL;
}

static struct listener_conf *
listener_add(struct conf *c, const char *name, const char *where)
{
	struct listener_conf *v, *l;

	v = realloc(c->listeners, (c->nlisteners + 1) * sizeof *v);
	if (v == NULL)
		return NULL;
	c->listeners = v;
	l = &v[c->nlisteners];
	memset(l, 0, sizeof *l);
	if ((l->name = strdup(name)) == NULL ||
	    (l->where = strdup(where)) == NULL || apply_defaults(S_LISTENER, l) != 0) {
		free_fields(S_LISTENER, l);
		free(l->name);
		free(l->where);
		return NULL;
	}
	c->nlisteners++;
	return l;
}

struct conf *
conf_new(void)
{
	struct conf *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	if (apply_defaults(S_GLOBAL, c) != 0 || apply_defaults(S_HEC, &c->hec) != 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free_fields(S_GLOBAL, c);
	free_fields(S_HEC, &c->hec);
	for (size_t i = 0; i < c->nlisteners; i++) {
		free_fields(S_LISTENER, &c->listeners[i]);
		free(c->listeners[i].name);
		free(c->listeners[i].where);
	}
	free(c->listeners);
	free(c);
}

/*
 * Set key in section (NULL: global) from where.  A listener section that
 * does not exist yet is created when create is set (-o deye.listen=...).
 */
static int
set_key(struct conf *c, const char *section, const char *name, const char *v,
    const char *where, char *err, size_t errlen)
{
	enum scope scope = section == NULL ? S_GLOBAL :
	    strcmp(section, "hec") == 0 ? S_HEC : S_LISTENER;
	const struct key *k = key_find(scope, name);
	char msg[CONF_ERR_MAX - 64];
	void *base;

	if (k == NULL) {
		if (scope != S_GLOBAL && key_find(S_GLOBAL, name) != NULL)
			snprintf(msg, sizeof msg,
			    "'%s' is a global key: set it before the first [section]",
			    name);
		else if (scope != S_LISTENER && key_find(S_LISTENER, name) != NULL)
			snprintf(msg, sizeof msg,
			    "'%s' belongs in a listener section such as [deye]", name);
		else if (scope != S_HEC && key_find(S_HEC, name) != NULL)
			snprintf(msg, sizeof msg, "'%s' belongs in the [hec] section",
			    name);
		else
			snprintf(msg, sizeof msg, "unknown key '%s'", name);
		snprintf(err, errlen, "%s: %s", where, msg);
		return -1;
	}
	if (scope == S_GLOBAL) {
		base = c;
	} else if (scope == S_HEC) {
		base = &c->hec;
	} else {
		struct listener_conf *l = listener_find(c, section);

		if (l == NULL && (l = listener_add(c, section, where)) == NULL) {
			snprintf(err, errlen, "%s: out of memory", where);
			return -1;
		}
		base = l;
	}
	if (key_set(k, base, v, msg, sizeof msg) != 0) {
		snprintf(err, errlen, "%s: %s", where, msg);
		return -1;
	}
	return 0;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

struct seen {
	char section[64];
	const struct key *key;
	unsigned line;
};

int
conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	/* A line of up to 4095 bytes, without its '\n', and the NUL. */
	char buf[4095 + 1], section[64] = "", where[300], msg[CONF_ERR_MAX / 2];
	struct seen *seen = NULL;
	size_t nseen = 0, pw_off, pw_len;
	unsigned lineno = 0;
	bool in_section = false, has_secret = false;
	enum line_status ls;
	int rc = -1;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (check_file_owner(f, path, msg, sizeof msg) != 0) {
		snprintf(err, errlen, "%s: %s", path, msg);
		goto out;
	}
	while ((ls = read_line(f, buf, sizeof buf)) != LINE_EOF) {
		char *line = buf, *eq, *key, *val = NULL;

		lineno++;
		snprintf(where, sizeof where, "%s:%u", path, lineno);
		if (ls == LINE_LONG) {
			snprintf(err, errlen, "%s: line too long", where);
			goto out;
		}
		if (ls == LINE_NUL) {
			snprintf(err, errlen, "%s: NUL byte (not a text file?)", where);
			goto out;
		}
		/* The byte order mark some Windows editors put first. */
		if (lineno == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0)
			line += 3;
		line = trim(line);
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (line[0] == '[') {
			size_t n = strlen(line);
			char name[64];

			if (line[n - 1] != ']') {
				snprintf(err, errlen, "%s: expected [section]", where);
				goto out;
			}
			if (n - 2 < sizeof name) {
				memcpy(name, line + 1, n - 2);
				name[n - 2] = '\0';
			}
			if (n - 2 >= sizeof name || !valid_section_name(name)) {
				snprintf(err, errlen,
				    "%s: section names are 1 to 31 letters, digits, '_' or '-'",
				    where);
				goto out;
			}
			for (size_t i = 0; i < nseen; i++) {
				if (strcmp(seen[i].section, name) == 0 &&
				    seen[i].key == NULL) {
					snprintf(err, errlen,
					    "%s: section [%s] already started at line %u",
					    where, name, seen[i].line);
					goto out;
				}
			}
			snprintf(section, sizeof section, "%s", name);
			in_section = true;
			if (strcmp(name, "hec") != 0 && listener_find(c, name) == NULL &&
			    listener_add(c, name, where) == NULL) {
				snprintf(err, errlen, "%s: out of memory", where);
				goto out;
			}
			key = NULL;
		} else {
			if ((eq = strchr(line, '=')) == NULL) {
				snprintf(err, errlen, "%s: expected key = value", where);
				goto out;
			}
			*eq = '\0';
			key = trim(line);
			val = trim(eq + 1);
			size_t vl = strlen(val);
			if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
				val[vl - 1] = '\0';
				val++;
			}
			if (key[0] == '\0') {
				snprintf(err, errlen, "%s: missing key before '='", where);
				goto out;
			}
			if (set_key(c, in_section ? section : NULL, key, val, where,
			    err, errlen) != 0)
				goto out;
		}
		/* Remember what this line set, to catch a key set twice. */
		const struct key *k = key == NULL ? NULL :
		    key_find(!in_section ? S_GLOBAL :
		    strcmp(section, "hec") == 0 ? S_HEC : S_LISTENER, key);
		if (k != NULL && (k->type == T_SECRET || (k->type == T_URL &&
		    url_password(val, &pw_off, &pw_len))))
			has_secret = true;
		for (size_t i = 0; k != NULL && i < nseen; i++) {
			if (seen[i].key == k && strcmp(seen[i].section, section) == 0) {
				snprintf(err, errlen, "%s: '%s' already set at line %u",
				    where, key, seen[i].line);
				goto out;
			}
		}
		struct seen *ns = realloc(seen, (nseen + 1) * sizeof *seen);
		if (ns == NULL) {
			snprintf(err, errlen, "%s: out of memory", where);
			goto out;
		}
		seen = ns;
		snprintf(seen[nseen].section, sizeof seen[nseen].section, "%s",
		    in_section ? section : "");
		seen[nseen].key = k;
		seen[nseen].line = lineno;
		nseen++;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (has_secret)
		warn_world_readable(f, path, "file with a secret");
	rc = 0;
out:
	free(seen);
	fclose(f);
	return rc;
}

int
conf_load_env(struct conf *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *v;
		char where[64];

		if (k->env == NULL || (v = getenv(k->env)) == NULL || v[0] == '\0')
			continue;
		snprintf(where, sizeof where, "environment (%s)", k->env);
		if (set_key(c, k->scope == S_HEC ? "hec" : NULL, k->name, v, where,
		    err, errlen) != 0)
			return -1;
	}
	return 0;
}

int
conf_set_option(struct conf *c, const char *kv, char *err, size_t errlen)
{
	char name[96], where[128];
	const char *eq = strchr(kv, '=');
	const char *dot;
	size_t n;

	if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof name) {
		snprintf(err, errlen, "-o %.60s: expected KEY=VALUE or SECTION.KEY=VALUE",
		    kv);
		return -1;
	}
	n = (size_t)(eq - kv);
	memcpy(name, kv, n);
	name[n] = '\0';
	snprintf(where, sizeof where, "-o %s", name);
	if ((dot = strchr(name, '.')) == NULL)
		return set_key(c, NULL, name, eq + 1, where, err, errlen);
	name[dot - name] = '\0';
	if (!valid_section_name(name)) {
		snprintf(err, errlen, "%s: bad section name '%s'", where, name);
		return -1;
	}
	return set_key(c, name, dot + 1, eq + 1, where, err, errlen);
}

int
conf_finish(struct conf *c, char *err, size_t errlen)
{
	if (c->nlisteners == 0 && listener_add(c, "deye", "defaults") == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		for (size_t j = 0; j < i; j++) {
			const struct sockaddr *a =
			    (const struct sockaddr *)&c->listeners[i].listen.ss;
			const struct sockaddr *b =
			    (const struct sockaddr *)&c->listeners[j].listen.ss;
			if (addr_port(a) != 0 && addr_port(a) == addr_port(b) &&
			    (addr_equal(a, b, false) || addr_is_wildcard(a) ||
			    addr_is_wildcard(b))) {
				snprintf(err, errlen,
				    "%s: [%s] listens on the same port as [%s]",
				    c->listeners[i].where, c->listeners[i].name,
				    c->listeners[j].name);
				return -1;
			}
		}
	}
	if (c->spool_max != 0 && c->hec.spool_max != 0) {
		snprintf(err, errlen, "spool_max is set both as a global key and "
		    "in [hec] (its old place): keep the global one");
		return -1;
	}
	if (c->spool_max == 0)
		c->spool_max = c->hec.spool_max != 0 ? c->hec.spool_max : MI(256);
	if (c->hec.host == NULL) {
		char h[256];
		if (gethostname(h, sizeof h) != 0)
			snprintf(h, sizeof h, "localhost");
		h[sizeof h - 1] = '\0';
		if (!utf8_valid(h)) {
			snprintf(err, errlen,
			    "this host's name is not valid UTF-8: set hec.host");
			return -1;
		}
		if (replace_str(&c->hec.host, h, err, errlen) != 0)
			return -1;
	}
	return 0;
}

bool
conf_hec_enabled(const struct conf *c)
{
	return c->hec.url != NULL && c->hec.token != NULL;
}

bool
conf_has_secret(const struct conf *c)
{
	size_t off, len;

	return c->hec.token != NULL ||
	    (c->hec.url != NULL && url_password(c->hec.url, &off, &len));
}

/*
 * The -o options whose value is secret, by the name given to -o; for a URL
 * only the password of its userinfo is.  By name rather than by key type,
 * so that a secret is wiped even from an -o that was refused.
 */
static const struct {
	const char *name;
	bool url;
} secret_options[] = {
	{"hec.token", false},
	{"hec.url", true},
	{"mqtt.password", false},
	{"mqtt.url", true},
};

void
conf_wipe_option(char *kv)
{
	char *eq = strchr(kv, '='), *v;
	size_t n, off, len;

	if (eq == NULL)
		return;
	n = (size_t)(eq - kv);
	v = eq + 1;
	for (size_t i = 0; i < sizeof secret_options / sizeof secret_options[0];
	    i++) {
		if (strlen(secret_options[i].name) != n ||
		    strncmp(kv, secret_options[i].name, n) != 0)
			continue;
		if (!secret_options[i].url)
			memset(v, '*', strlen(v));
		else if (url_password(v, &off, &len))
			memset(v + off, '*', len);
		return;
	}
}

static void
print_scope(FILE *f, enum scope scope, const void *base)
{
	char v[1024];

	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].scope != scope || (keys[i].off == H(spool_max) &&
		    scope == S_HEC))
			continue;
		key_format(&keys[i], base, v, sizeof v);
		size_t n = strlen(v);
		/* Quote what would not read back the same: outer blanks, quotes. */
		if (n > 0 && (isspace((unsigned char)v[0]) ||
		    isspace((unsigned char)v[n - 1]) || v[0] == '"'))
			fprintf(f, "%s = \"%s\"\n", keys[i].name, v);
		else
			fprintf(f, "%s = %s\n", keys[i].name, v);
	}
}

void
conf_print(const struct conf *c, FILE *f)
{
	print_scope(f, S_GLOBAL, c);
	fprintf(f, "\n[hec]\n");
	print_scope(f, S_HEC, &c->hec);
	for (size_t i = 0; i < c->nlisteners; i++) {
		fprintf(f, "\n[%s]\n", c->listeners[i].name);
		print_scope(f, S_LISTENER, &c->listeners[i]);
	}
}
