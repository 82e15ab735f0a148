/* sink_hec.h - delivery to Splunk's HTTP Event Collector, from the
 * journal, by one poster thread with one libcurl handle. */
#ifndef DEYE_SINK_HEC_H
#define DEYE_SINK_HEC_H

#include <stdint.h>

#include "conf.h"

int sink_hec_start(const struct conf *c);
/* Deliver what can be delivered within grace_ms, then stop; the rest stays
 * in the journal for the next start. */
void sink_hec_stop(int64_t grace_ms);

#endif
