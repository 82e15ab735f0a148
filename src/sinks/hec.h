/* hec.h - delivery to Splunk's HTTP Event Collector, from the
 * journal (cursor "hec"), by the sink runner with one libcurl handle. */
#ifndef DEYE_SINK_HEC_H
#define DEYE_SINK_HEC_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "sinks/sink.h"

/* The [hec] section (deye-mitm.conf(5), HEC KEYS). */
struct hec_conf {
	char *url;   /* a password in its userinfo is a secret too */
	char *token; /* secret: printed as *** */
	char *token_file;
	char *index;
	char *sourcetype;
	char *source;
	char *host;  /* this host's name unless set */
	char *ca_file;
	bool insecure;
	long batch_max_events;
	int64_t batch_max_bytes;
	int64_t flush_interval_ms;
	int64_t timeout_ms;
	int64_t spool_max; /* the old place of the global key, still read */
};

extern const struct conf_section sink_hec_section;
extern const struct sink_ops sink_hec_ops;

#endif
