/* jsonl.h - the `events` sink: one JSON object per line, to a file or
 * stdout, read from the journal by the sink runner (cursor "events"). */
#ifndef DEYE_SINK_JSONL_H
#define DEYE_SINK_JSONL_H

#include "sinks/sink.h"

extern const struct sink_ops sink_jsonl_ops;

#endif
