/* sink_jsonl.h - the `events` sink: one JSON object per line, read from
 * the journal by its own thread with its own cursor. */
#ifndef DEYE_SINK_JSONL_H
#define DEYE_SINK_JSONL_H

#include <stdbool.h>
#include <stdint.h>

/* where: "stdout" or a file path (appended to, created 0640). */
int sink_jsonl_start(const char *where);
/* Open the file again by its name, soon (SIGHUP, after a rotation). */
void sink_jsonl_reopen(void);
/* Write out everything journalled so far, then stop; false if the output
 * stayed blocked for grace_ms (the thread is then left behind). */
bool sink_jsonl_stop(int64_t grace_ms);

#endif
