/* hec.h - delivery to Splunk's HTTP Event Collector, from the
 * journal (cursor "hec"), by the sink runner with one libcurl handle. */
#ifndef DEYE_SINK_HEC_H
#define DEYE_SINK_HEC_H

#include "sinks/sink.h"

extern const struct sink_ops sink_hec_ops;

#endif
