/* sink_jsonl.h - the `events` sink: one JSON object per line. */
#ifndef DEYE_SINK_JSONL_H
#define DEYE_SINK_JSONL_H

#include <jansson.h>

/* "stdout", "none", or a file path (appended to, created 0640). */
int sink_jsonl_open(const char *where);
void sink_jsonl_write(json_t *ev);
void sink_jsonl_flush(void);
void sink_jsonl_close(void);

#endif
