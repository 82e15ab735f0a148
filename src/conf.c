/*
 * conf.c - configuration from defaults, file, environment and -o options.
 *
 * Every key is one row of a table (struct conf_key): the global keys and the
 * listener keys below, and the keys of each named section, which the module
 * that owns them declares beside itself (struct conf_section: [hec] in
 * sinks/hec.c).  A row gives the key's type, where it lives in its struct,
 * its default as text and its bounds.  Defaults are applied by parsing that text, so the
 * table is the only place a default is written, and -n prints every key
 * from the same rows.  A value is parsed and checked when it is set; the
 * error names where it came from ("file:line", "environment (NAME)" or
 * "-o NAME.KEY") so that main can print it and exit 78.
 *
 * Secrets (deye-mitm.conf(5), Syntax and HEC KEYS): a CONF_SECRET key, and
 * a password in a CONF_URL's userinfo, are printed as *** and never put in
 * an error message; a secret with a control character is refused (it would
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

static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const proto_names[] = {"solarman", "envoy", "raw", NULL};
static const char *const failure_names[] = {"close", "answer", NULL};

#define DEFAULT_ALLOW \
	"127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, " \
	"169.254.0.0/16, ::1/128, fc00::/7, fe80::/10"

#define MS(x) ((int64_t)(x))
#define SEC(x) CONF_SEC(x)
#define KI(x) CONF_KI(x)
#define MI(x) CONF_MI(x)
#define GI(x) CONF_GI(x)

#define G(f) offsetof(struct conf, f)
#define L(f) offsetof(struct listener_conf, f)

static const struct conf_key global_keys[] = {
	{.name = "log_level", .type = CONF_ENUM, .off = G(log_level), .def = "info", .names = level_names},
	{.name = "state_dir", .type = CONF_NONEMPTY, .off = G(state_dir), .def = "./deye-mitm-state"},
	{.name = "journal_fsync", .type = CONF_DURATION, .off = G(journal_fsync_ms), .def = "1s", .max = SEC(3600)},
	{.name = "events", .type = CONF_NONEMPTY, .off = G(events), .def = "stdout"},
	{.name = "spool_max", .type = CONF_SIZE, .off = G(spool_max), .min = KI(64), .max = GI(1024)},
	{.name = "max_connections", .type = CONF_LONG, .off = G(max_connections), .def = "512", .min = 1, .max = 10000},
	{.name = "max_connections_per_peer", .type = CONF_LONG, .off = G(max_connections_per_peer), .def = "16", .min = 1, .max = 10000},
	{.name = "allow", .type = CONF_ALLOW, .off = G(allow), .def = DEFAULT_ALLOW},
	{.name = "user", .type = CONF_USER, .off = G(user)},
};

static const struct conf_key listener_keys[] = {
	{.name = "protocol", .type = CONF_ENUM, .off = L(protocol), .def = "solarman", .names = proto_names},
	{.name = "listen", .type = CONF_LISTEN, .off = L(listen), .def = "0.0.0.0:10000"},
	{.name = "upstream", .type = CONF_UPSTREAM, .off = L(upstream), .def = "5406.deviceaccess.host:10000"},
	{.name = "connect_timeout", .type = CONF_DURATION, .off = L(connect_timeout_ms), .def = "5s", .min = MS(100), .max = SEC(300)},
	{.name = "idle_timeout", .type = CONF_DURATION, .off = L(idle_timeout_ms), .def = "10m", .min = MS(100), .max = SEC(7 * 86400)},
	{.name = "fin_timeout", .type = CONF_DURATION, .off = L(fin_timeout_ms), .def = "10s", .min = MS(100), .max = SEC(3600)},
	{.name = "on_upstream_failure", .type = CONF_ENUM, .off = L(on_upstream_failure), .def = "close", .names = failure_names},
	{.name = "tz_offset", .type = CONF_TZ, .off = L(tz_offset), .def = "auto"},
	{.name = "capture_dir", .type = CONF_STR, .off = L(capture_dir)},
	{.name = "spool_dir", .type = CONF_NONEMPTY, .off = L(spool_dir), .def = "/var/spool/envoy"},
	{.name = "max_body", .type = CONF_SIZE, .off = L(max_body), .def = "8M", .min = KI(1), .max = MI(64)},
};
#define NGLOBAL (sizeof global_keys / sizeof global_keys[0])
#define NLISTENER (sizeof listener_keys / sizeof listener_keys[0])

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
bool
conf_utf8_valid(const char *str)
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

bool
conf_has_control(const char *s)
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

int
conf_url_check(const char *s, const char *const *schemes, const char *example,
    char *path, size_t pathlen, char *err, size_t errlen)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *p = NULL, *shown, list[64] = "";
	int rc = -1;
	bool known = false;

	/* Never echo a password, even in an error. */
	if ((shown = conf_url_redact(s)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (conf_has_control(s)) {
		snprintf(err, errlen, "the URL contains a control character");
		goto out;
	}
	if ((u = curl_url()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, s, CURLU_NON_SUPPORT_SCHEME) !=
	    CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    host[0] == '\0') {
		snprintf(err, errlen, "'%s': not a URL (%s)", shown, example);
		goto out;
	}
	for (size_t i = 0; schemes[i] != NULL; i++) {
		size_t n = strlen(list);

		known |= strcmp(scheme, schemes[i]) == 0;
		snprintf(list + n, sizeof list - n, "%s%s", i == 0 ? "" : " or ",
		    schemes[i]);
	}
	if (!known) {
		snprintf(err, errlen, "'%s': the scheme must be %s", shown, list);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PATH, &p, 0) != CURLUE_OK)
		p = NULL;
	snprintf(path, pathlen, "%s", p != NULL && strcmp(p, "/") != 0 ? p : "");
	rc = 0;
out:
	free(shown);
	curl_free(scheme);
	curl_free(host);
	curl_free(p);
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
	if (conf_has_control(line)) {
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

void
conf_host_name(char *buf, size_t len)
{
	if (gethostname(buf, len) != 0)
		snprintf(buf, len, "localhost");
	buf[len - 1] = '\0';
}

int
conf_replace_str(char **field, const char *v, char *err, size_t errlen)
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
/*
 * A tz_offset other than auto into minutes: [+-]N (minutes, as it always
 * was), [+-]Nm, [+-]Nh or [+-]HH:MM.  0, or -1 when it is none of them.
 */
static int
tz_parse(const char *v, int *minutes)
{
	int sign = 1, n = 0, digits = 0;

	if (*v == '+' || *v == '-')
		sign = *v++ == '-' ? -1 : 1;
	for (; isdigit((unsigned char)*v) && digits < 4; v++, digits++)
		n = n * 10 + (*v - '0');
	if (digits == 0)
		return -1;
	if (strcmp(v, "") == 0 || strcmp(v, "m") == 0) {
		*minutes = sign * n;
		return 0;
	}
	if (strcmp(v, "h") == 0) {
		*minutes = sign * n * 60;
		return 0;
	}
	if (digits == 2 && v[0] == ':' && isdigit((unsigned char)v[1]) &&
	    isdigit((unsigned char)v[2]) && v[3] == '\0' &&
	    (v[1] - '0') * 10 + (v[2] - '0') < 60) {
		*minutes = sign * (n * 60 + (v[1] - '0') * 10 + (v[2] - '0'));
		return 0;
	}
	return -1;
}

static int
key_set(const struct conf_key *k, void *base, const char *v, char *err, size_t errlen)
{
	void *field = (char *)base + k->off;

	if ((k->type == CONF_TEXT || k->type == CONF_NONEMPTY_TEXT) && !conf_utf8_valid(v)) {
		/* jansson would leave it out of every event without a word. */
		snprintf(err, errlen, "'%s' is not valid UTF-8", k->name);
		return -1;
	}
	switch (k->type) {
	case CONF_STR:
	case CONF_TEXT:
		return conf_replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case CONF_NONEMPTY:
	case CONF_NONEMPTY_TEXT:
		if (v[0] == '\0') {
			snprintf(err, errlen, "'%s' needs a value", k->name);
			return -1;
		}
		return conf_replace_str(field, v, err, errlen);
	case CONF_USER:
		if (v[0] != '\0' && getpwnam(v) == NULL) {
			snprintf(err, errlen, "user '%s' does not exist", v);
			return -1;
		}
		return conf_replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case CONF_SECRET:
		/* It goes into a header: a CR or LF would start another one. */
		if (conf_has_control(v)) {
			snprintf(err, errlen, "the %s contains a control character",
			    k->name);
			return -1;
		}
		return conf_replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case CONF_SECRETFILE: {
		char *tok;

		if (v[0] == '\0')
			return conf_replace_str(field, NULL, err, errlen);
		if ((tok = read_secret_file(v, err, errlen)) == NULL)
			return -1;
		/* The file's secret replaces any set before it. */
		free(*(char **)((char *)base + k->fills));
		*(char **)((char *)base + k->fills) = tok;
		return conf_replace_str(field, v, err, errlen);
	}
	case CONF_URL:
		if (v[0] != '\0' && k->check != NULL && k->check(v, err, errlen) != 0)
			return -1;
		return conf_replace_str(field, v[0] != '\0' ? v : NULL, err, errlen);
	case CONF_LONG:
	case CONF_DURATION:
	case CONF_SIZE: {
		int64_t n;

		if (k->type == CONF_DURATION) {
			if (conf_parse_duration(v, &n, err, errlen) != 0)
				return -1;
		} else if (k->type == CONF_SIZE) {
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
			if (k->type == CONF_DURATION) {
				conf_format_duration(k->min, lo, sizeof lo);
				conf_format_duration(k->max, hi, sizeof hi);
			} else if (k->type == CONF_SIZE) {
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
		if (k->type == CONF_LONG)
			*(long *)field = (long)n;
		else
			*(int64_t *)field = n;
		return 0;
	}
	case CONF_BOOL:
		if (parse_bool(v, field) != 0) {
			snprintf(err, errlen, "'%s': expected yes or no", v);
			return -1;
		}
		return 0;
	case CONF_ENUM:
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
	case CONF_LISTEN: {
		struct conf_listen *l = field;
		/* "" unsets one with no default ([metrics] listen: off). */
		if (v[0] == '\0' && k->def == NULL) {
			memset(l, 0, sizeof *l);
			return 0;
		}
		return addr_parse_numeric(v, &l->ss, &l->len, err, errlen);
	}
	case CONF_UPSTREAM: {
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
	case CONF_TZ: {
		struct conf_tz *tz = field;
		int m;

		if (strcmp(v, "auto") == 0) {
			tz->is_auto = true;
			tz->minutes = 0;
			return 0;
		}
		if (tz_parse(v, &m) != 0 || m < -720 || m > 840) {
			snprintf(err, errlen, "tz_offset '%s': expected auto, minutes "
			    "east of UTC (-720 to 840), 120m, 2h or +02:00", v);
			return -1;
		}
		/* No zone is 1 to 14 minutes off UTC: "+2" means hours. */
		if (m != 0 && m >= -14 && m <= 14 && strpbrk(v, "mh:") == NULL) {
			snprintf(err, errlen, "tz_offset '%s': that is %d minute(s) "
			    "east of UTC; for hours write %dh or %c%02d:00", v, m, m,
			    m < 0 ? '-' : '+', m < 0 ? -m : m);
			return -1;
		}
		tz->is_auto = false;
		tz->minutes = m;
		return 0;
	}
	case CONF_ALLOW: {
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
key_format(const struct conf_key *k, const void *base, char *buf, size_t len)
{
	const void *field = (const char *)base + k->off;

	buf[0] = '\0';
	switch (k->type) {
	case CONF_STR:
	case CONF_NONEMPTY:
	case CONF_TEXT:
	case CONF_NONEMPTY_TEXT:
	case CONF_USER:
	case CONF_SECRETFILE: {
		const char *s = *(char *const *)field;
		snprintf(buf, len, "%s", s ? s : "");
		break;
	}
	case CONF_URL: {
		const char *s = *(char *const *)field;
		char *shown = s != NULL ? conf_url_redact(s) : NULL;
		/* Out of memory shows nothing rather than the password. */
		snprintf(buf, len, "%s", shown ? shown : "");
		free(shown);
		break;
	}
	case CONF_SECRET:
		snprintf(buf, len, "%s", *(char *const *)field ? "***" : "");
		break;
	case CONF_LONG:
		snprintf(buf, len, "%ld", *(const long *)field);
		break;
	case CONF_DURATION:
		conf_format_duration(*(const int64_t *)field, buf, len);
		break;
	case CONF_SIZE:
		conf_format_size(*(const int64_t *)field, buf, len);
		break;
	case CONF_BOOL:
		snprintf(buf, len, "%s", *(const bool *)field ? "yes" : "no");
		break;
	case CONF_ENUM:
		snprintf(buf, len, "%s", k->names[*(const int *)field]);
		break;
	case CONF_LISTEN: {
		const struct conf_listen *l = field;
		if (l->len == 0) /* unset: [metrics] listen */
			buf[0] = '\0';
		else
			addr_format((const struct sockaddr *)&l->ss, buf, len);
		break;
	}
	case CONF_UPSTREAM: {
		const struct conf_upstream *u = field;
		if (u->none)
			snprintf(buf, len, "none");
		else if (strchr(u->host, ':') != NULL)
			snprintf(buf, len, "[%s]:%u", u->host, u->port);
		else
			snprintf(buf, len, "%s:%u", u->host, u->port);
		break;
	}
	case CONF_TZ: {
		const struct conf_tz *tz = field;
		if (tz->is_auto)
			snprintf(buf, len, "auto");
		else
			snprintf(buf, len, "%d", tz->minutes);
		break;
	}
	case CONF_ALLOW: {
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

/* ---- scopes: the global keys, a named section's, or a listener's ---- */

struct scope {
	const char *section; /* NULL: global; else its name */
	const struct conf_key *keys;
	size_t nkeys;
	void *base;          /* the struct the keys fill; NULL: none yet */
};

static const struct conf_key *
key_find(const struct conf_key *keys, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static void
free_fields(const struct conf_key *keys, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		const struct conf_key *k = &keys[i];
		void *field = (char *)base + k->off;

		switch (k->type) {
		case CONF_STR: case CONF_NONEMPTY: case CONF_TEXT:
		case CONF_NONEMPTY_TEXT: case CONF_USER: case CONF_SECRET:
		case CONF_SECRETFILE: case CONF_URL:
			free(*(char **)field);
			*(char **)field = NULL;
			break;
		case CONF_ALLOW:
			allow_free(field);
			break;
		default:
			break;
		}
	}
}

static int
apply_defaults(const struct conf_key *keys, size_t n, void *base)
{
	char err[CONF_ERR_MAX];

	for (size_t i = 0; i < n; i++)
		if (keys[i].def != NULL &&
		    key_set(&keys[i], base, keys[i].def, err, sizeof err) != 0)
			return -1;
	return 0;
}

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
	    (l->where = strdup(where)) == NULL ||
	    apply_defaults(listener_keys, NLISTENER, l) != 0) {
		free_fields(listener_keys, NLISTENER, l);
		free(l->name);
		free(l->where);
		return NULL;
	}
	c->nlisteners++;
	return l;
}

/* The named section called name; -1 if name is a listener's. */
static ssize_t
section_index(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nsections; i++)
		if (strcmp(c->sections[i]->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* The scope of section (NULL: global); base stays NULL for a listener
 * that does not exist yet. */
static struct scope
scope_of(struct conf *c, const char *section)
{
	ssize_t i;

	if (section == NULL)
		return (struct scope){NULL, global_keys, NGLOBAL, c};
	if ((i = section_index(c, section)) >= 0)
		return (struct scope){section, c->sections[i]->keys,
		    c->sections[i]->nkeys, c->section_data[i]};
	return (struct scope){section, listener_keys, NLISTENER,
	    listener_find(c, section)};
}

void *
conf_section_get(const struct conf *c, const struct conf_section *s)
{
	for (size_t i = 0; i < c->nsections; i++)
		if (c->sections[i] == s)
			return c->section_data[i];
	return NULL;
}

struct conf *
conf_new(const struct conf_section *const *sections)
{
	struct conf *c = calloc(1, sizeof *c);
	size_t n = 0;

	if (c == NULL)
		return NULL;
	while (sections != NULL && sections[n] != NULL)
		n++;
	c->sections = sections;
	if (apply_defaults(global_keys, NGLOBAL, c) != 0 ||
	    (n > 0 && (c->section_data = calloc(n, sizeof *c->section_data)) ==
	    NULL)) {
		conf_free(c);
		return NULL;
	}
	for (; c->nsections < n; c->nsections++) {
		const struct conf_section *s = sections[c->nsections];
		void *base = calloc(1, s->size);

		c->section_data[c->nsections] = base;
		if (base == NULL || apply_defaults(s->keys, s->nkeys, base) != 0) {
			c->nsections++;
			conf_free(c);
			return NULL;
		}
	}
	return c;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free_fields(global_keys, NGLOBAL, c);
	for (size_t i = 0; i < c->nsections; i++) {
		if (c->section_data[i] != NULL)
			free_fields(c->sections[i]->keys, c->sections[i]->nkeys,
			    c->section_data[i]);
		free(c->section_data[i]);
	}
	free(c->section_data);
	for (size_t i = 0; i < c->nlisteners; i++) {
		free_fields(listener_keys, NLISTENER, &c->listeners[i]);
		free(c->listeners[i].name);
		free(c->listeners[i].where);
	}
	free(c->listeners);
	free(c);
}

/* Where a key called name belongs when it is not in scope s; msg. */
static void
misplaced(const struct conf *c, const struct scope *s, const char *name,
    char *msg, size_t len)
{
	if (s->section != NULL && key_find(global_keys, NGLOBAL, name) != NULL) {
		snprintf(msg, len,
		    "'%s' is a global key: set it before the first [section]", name);
		return;
	}
	if (s->keys != listener_keys &&
	    key_find(listener_keys, NLISTENER, name) != NULL) {
		snprintf(msg, len,
		    "'%s' belongs in a listener section such as [deye]", name);
		return;
	}
	for (size_t i = 0; i < c->nsections; i++) {
		if (c->sections[i]->keys != s->keys &&
		    key_find(c->sections[i]->keys, c->sections[i]->nkeys,
		    name) != NULL) {
			snprintf(msg, len, "'%s' belongs in the [%s] section", name,
			    c->sections[i]->name);
			return;
		}
	}
	snprintf(msg, len, "unknown key '%s'", name);
}

/*
 * Set key in section (NULL: global) from where.  A listener section that
 * does not exist yet is created (-o deye.listen=...).
 */
static int
set_key(struct conf *c, const char *section, const char *name, const char *v,
    const char *where, char *err, size_t errlen)
{
	struct scope s = scope_of(c, section);
	const struct conf_key *k = key_find(s.keys, s.nkeys, name);
	char msg[CONF_ERR_MAX - 64];

	if (k == NULL) {
		misplaced(c, &s, name, msg, sizeof msg);
		snprintf(err, errlen, "%s: %s", where, msg);
		return -1;
	}
	if (s.base == NULL && (s.base = listener_add(c, section, where)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", where);
		return -1;
	}
	if (key_set(k, s.base, v, msg, sizeof msg) != 0) {
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
	const struct conf_key *key;
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
			if (section_index(c, name) < 0 && listener_find(c, name) == NULL &&
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
		struct scope sc = scope_of(c, in_section ? section : NULL);
		const struct conf_key *k = key == NULL ? NULL :
		    key_find(sc.keys, sc.nkeys, key);
		if (k != NULL && (k->type == CONF_SECRET || (k->type == CONF_URL &&
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

static int
load_env_keys(struct conf *c, const char *section, const struct conf_key *keys,
    size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct conf_key *k = &keys[i];
		const char *v;
		char where[64];

		if (k->env == NULL || (v = getenv(k->env)) == NULL || v[0] == '\0')
			continue;
		snprintf(where, sizeof where, "environment (%s)", k->env);
		if (set_key(c, section, k->name, v, where, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int
conf_load_env(struct conf *c, char *err, size_t errlen)
{
	if (load_env_keys(c, NULL, global_keys, NGLOBAL, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < c->nsections; i++)
		if (load_env_keys(c, c->sections[i]->name, c->sections[i]->keys,
		    c->sections[i]->nkeys, err, errlen) != 0)
			return -1;
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
	/* A section may take an old key's value over (spool_max in [hec]). */
	for (size_t i = 0; i < c->nsections; i++)
		if (c->sections[i]->finish != NULL &&
		    c->sections[i]->finish(c->section_data[i], c, err, errlen) != 0)
			return -1;
	if (c->spool_max == 0)
		c->spool_max = MI(256);
	return 0;
}

static bool
scope_has_secret(const struct conf_key *keys, size_t n, const void *base)
{
	size_t off, len;

	for (size_t i = 0; i < n; i++) {
		const char *v = *(char *const *)((const char *)base + keys[i].off);

		if ((keys[i].type == CONF_SECRET && v != NULL) ||
		    (keys[i].type == CONF_URL && v != NULL &&
		    url_password(v, &off, &len)))
			return true;
	}
	return false;
}

bool
conf_has_secret(const struct conf *c)
{
	for (size_t i = 0; i < c->nsections; i++)
		if (scope_has_secret(c->sections[i]->keys, c->sections[i]->nkeys,
		    c->section_data[i]))
			return true;
	return false;
}

void
conf_wipe_option(const struct conf *c, char *kv)
{
	char *eq = strchr(kv, '='), *dot;
	const struct conf_key *k = NULL;
	size_t off, len;

	if (eq == NULL || (dot = memchr(kv, '.', (size_t)(eq - kv))) == NULL)
		return; /* no global key is secret */
	for (size_t i = 0; i < c->nsections && k == NULL; i++) {
		const struct conf_section *s = c->sections[i];

		if (strlen(s->name) != (size_t)(dot - kv) ||
		    strncmp(kv, s->name, (size_t)(dot - kv)) != 0)
			continue;
		for (size_t j = 0; j < s->nkeys && k == NULL; j++)
			if (strlen(s->keys[j].name) == (size_t)(eq - dot - 1) &&
			    strncmp(dot + 1, s->keys[j].name,
			    (size_t)(eq - dot - 1)) == 0)
				k = &s->keys[j];
	}
	if (k == NULL)
		return;
	if (k->type == CONF_SECRET)
		memset(eq + 1, '*', strlen(eq + 1));
	else if (k->type == CONF_URL && url_password(eq + 1, &off, &len))
		memset(eq + 1 + off, '*', len);
}

static void
print_scope(FILE *f, const struct conf_key *keys, size_t nkeys,
    const void *base)
{
	char v[1024];

	for (size_t i = 0; i < nkeys; i++) {
		if (keys[i].hidden)
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

/* Global keys, then the named sections in their table's order, then the
 * listeners in the order they were made. */
void
conf_print(const struct conf *c, FILE *f)
{
	print_scope(f, global_keys, NGLOBAL, c);
	for (size_t i = 0; i < c->nsections; i++) {
		fprintf(f, "\n[%s]\n", c->sections[i]->name);
		print_scope(f, c->sections[i]->keys, c->sections[i]->nkeys,
		    c->section_data[i]);
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		fprintf(f, "\n[%s]\n", c->listeners[i].name);
		print_scope(f, listener_keys, NLISTENER, &c->listeners[i]);
	}
}
