/*
 * conf.h - the configuration of deye-mitm.conf(5): defaults, then the file
 * (-f), then the environment, then -o options, each overriding the one
 * before.
 */
#ifndef DEYE_CONF_H
#define DEYE_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "addr.h"

#define CONF_ERR_MAX 512
#define CONF_EXIT 78 /* EX_CONFIG */

enum proto { PROTO_SOLARMAN, PROTO_ENVOY, PROTO_RAW };
enum on_failure { ON_FAILURE_CLOSE, ON_FAILURE_ANSWER };

struct conf_listen {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct conf_upstream {
	bool none;
	char host[ADDR_HOST_MAX];
	uint16_t port;
};

struct conf_tz {
	bool is_auto;
	int minutes;
};

struct listener_conf {
	char *name;
	char *where; /* "file:line" of its [section], or the -o that made it */
	int protocol;
	struct conf_listen listen;
	struct conf_upstream upstream;
	int64_t connect_timeout_ms;
	int64_t idle_timeout_ms;
	int64_t fin_timeout_ms;
	int on_upstream_failure;
	struct conf_tz tz_offset;
	char *capture_dir;
	char *spool_dir;
	int64_t max_body;      /* envoy: a bigger message is not captured */
};

struct conf_section;

struct conf {
	int log_level;
	char *state_dir;
	int64_t journal_fsync_ms;
	int64_t spool_max;        /* the journal's bound */
	char *events;
	long max_connections;
	long max_connections_per_peer; /* at most max_connections in effect */
	struct allow_list allow;
	char *user;
	struct listener_conf *listeners;
	size_t nlisteners;
	/* The named sections other than listeners ([hec], ...), each with
	 * its keys' struct, in the order -n prints them. */
	const struct conf_section *const *sections;
	void **section_data;
	size_t nsections;
};

/*
 * A key's type says how its text is parsed, checked and printed, and what
 * the field at off is.
 */
enum conf_type {
	CONF_STR,      /* char *; "" unsets an optional string */
	CONF_NONEMPTY, /* char *, never empty */
	CONF_TEXT,     /* CONF_STR that goes into events: valid UTF-8 */
	CONF_NONEMPTY_TEXT, /* CONF_NONEMPTY that goes into events */
	CONF_USER,     /* char *, a user name that exists here */
	CONF_SECRET,   /* char *, printed as ***, wiped from argv */
	CONF_SECRETFILE, /* char *, a path whose first line fills the
			  * CONF_SECRET at .fills */
	CONF_URL,      /* char *, checked by .check; the password of its
			* userinfo is a secret */
	CONF_LONG,     /* long, min to max */
	CONF_DURATION, /* int64_t milliseconds, min to max */
	CONF_SIZE,     /* int64_t bytes, min to max */
	CONF_BOOL,     /* bool */
	CONF_ENUM,     /* int, the index of the value in .names */
	CONF_LISTEN,   /* struct conf_listen; len 0: unset ("" with no default) */
	CONF_UPSTREAM, /* struct conf_upstream */
	CONF_TZ,       /* struct conf_tz */
	CONF_ALLOW,    /* struct allow_list */
};

/* Bounds and defaults in a key table. */
#define CONF_SEC(x) ((int64_t)(x) * 1000)
#define CONF_KI(x) ((int64_t)(x) << 10)
#define CONF_MI(x) ((int64_t)(x) << 20)
#define CONF_GI(x) ((int64_t)(x) << 30)

/*
 * One key: the only place its default is written (as text, parsed like any
 * value), so -n prints every key from the same rows.
 */
struct conf_key {
	const char *name;
	enum conf_type type;
	size_t off;          /* of its field in the section's struct */
	const char *def;     /* NULL: unset */
	int64_t min, max;    /* CONF_LONG, CONF_DURATION, CONF_SIZE */
	const char *const *names; /* CONF_ENUM, NULL-terminated */
	const char *env;     /* the environment variable, or NULL */
	/* CONF_URL: 0, or -1 with err (never showing the password). */
	int (*check)(const char *v, char *err, size_t errlen);
	size_t fills;        /* CONF_SECRETFILE: the secret's offset */
	bool hidden;         /* read but not printed: an old place */
};

/*
 * A named section that a module brings ([hec] from sinks/hec.c): its keys
 * live beside the module, which reads them with conf_section_get().
 */
struct conf_section {
	const char *name;
	const struct conf_key *keys;
	size_t nkeys;
	size_t size;         /* of the struct its keys fill */
	/* After every source: derived defaults and checks against the rest
	 * of c (NULL: none).  0, or -1 with err. */
	int (*finish)(void *sec, struct conf *c, char *err, size_t errlen);
};

/* Each returns 0, or -1 with "where: message" in err. */
/* sections: NULL-terminated, borrowed for the life of the conf. */
struct conf *conf_new(const struct conf_section *const *sections);
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);
int conf_load_env(struct conf *c, char *err, size_t errlen);
int conf_set_option(struct conf *c, const char *kv, char *err, size_t errlen);
int conf_finish(struct conf *c, char *err, size_t errlen);
/* The struct of section s in c; NULL if c was made without s. */
void *conf_section_get(const struct conf *c, const struct conf_section *s);
/* A secret or a URL password is held: the process must not be dumpable. */
bool conf_has_secret(const struct conf *c);
/* Overwrite the secret of an -o KEY=VALUE argument in place (argv), by
 * the key's name, so that even a refused one is wiped. */
void conf_wipe_option(const struct conf *c, char *kv);
/*
 * For a CONF_URL key's check: a URL (curl's parser) with a host and one of
 * schemes (NULL-terminated); its path, "" for none or "/", into path.  0,
 * or -1 with err showing the URL with its password as *** and example.
 */
int conf_url_check(const char *s, const char *const *schemes,
    const char *example, char *path, size_t pathlen, char *err, size_t errlen);
/* url with the password of its userinfo as ***; NULL if out of memory. */
char *conf_url_redact(const char *url);
void conf_print(const struct conf *c, FILE *f);
void conf_free(struct conf *c);

/* Pieces for the modules' checks and finish hooks, and the tests. */
int conf_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen);
int conf_parse_size(const char *s, int64_t *bytes, char *err, size_t errlen);
void conf_format_duration(int64_t ms, char *buf, size_t len);
void conf_format_size(int64_t bytes, char *buf, size_t len);
/* RFC 3629 UTF-8 (jansson drops a string that is not). */
bool conf_utf8_valid(const char *s);
/* A control character (a CR or LF would start another header). */
bool conf_has_control(const char *s);
/* This host's name ("localhost" when it has none), for defaults. */
void conf_host_name(char *buf, size_t len);
/* Replace *field with a copy of v (NULL: unset); -1 with err. */
int conf_replace_str(char **field, const char *v, char *err, size_t errlen);

const char *conf_proto_name(int proto);

#endif
