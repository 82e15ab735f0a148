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

#include "relay/addr.h"

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

struct hec_conf {
	char *url;   /* a password in its userinfo is a secret too */
	char *token; /* secret: printed as *** */
	char *token_file;
	char *index;
	char *sourcetype;
	char *source;
	char *host;
	char *ca_file;
	bool insecure;
	long batch_max_events;
	int64_t batch_max_bytes;
	int64_t flush_interval_ms;
	int64_t timeout_ms;
	int64_t spool_max;
};

struct conf {
	int log_level;
	char *state_dir;
	int64_t journal_fsync_ms;
	int64_t spool_max;        /* the journal's bound (also read in [hec]) */
	char *events;
	long max_connections;
	long max_connections_per_peer; /* at most max_connections in effect */
	struct allow_list allow;
	char *user;
	struct hec_conf hec;
	struct listener_conf *listeners;
	size_t nlisteners;
};

/* Each returns 0, or -1 with "where: message" in err. */
struct conf *conf_new(void);
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);
int conf_load_env(struct conf *c, char *err, size_t errlen);
int conf_set_option(struct conf *c, const char *kv, char *err, size_t errlen);
int conf_finish(struct conf *c, char *err, size_t errlen);
bool conf_hec_enabled(const struct conf *c);
/* A token or a URL password is held: the process must not be dumpable. */
bool conf_has_secret(const struct conf *c);
/* Overwrite the secret in an -o KEY=VALUE argument, in place (argv). */
void conf_wipe_option(char *kv);
/* url with the password of its userinfo as ***; NULL if out of memory. */
char *conf_url_redact(const char *url);
void conf_print(const struct conf *c, FILE *f);
void conf_free(struct conf *c);

/* Values with units, exported for the tests. */
int conf_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen);
int conf_parse_size(const char *s, int64_t *bytes, char *err, size_t errlen);
void conf_format_duration(int64_t ms, char *buf, size_t len);
void conf_format_size(int64_t bytes, char *buf, size_t len);

const char *conf_proto_name(int proto);

#endif
