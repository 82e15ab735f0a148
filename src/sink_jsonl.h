/* sink_jsonl.h - the `events` sink: one JSON object per line, read from
 * the journal by its own thread with its own cursor. */
#ifndef DEYE_SINK_JSONL_H
#define DEYE_SINK_JSONL_H

/* where: "stdout" or a file path (appended to, created 0640). */
int sink_jsonl_start(const char *where);
/* Write out everything journalled so far, then stop. */
void sink_jsonl_stop(void);

#endif
