/*
 * outbox_ring.h - the outbox's queue as a byte ring of records in a shared
 * mapping of a file (state_dir/outbox).  The kernel keeps what a process
 * stored in such a mapping when the process dies, so a record put before a
 * SIGKILL is found by the next start.  Not for power cuts: nothing is
 * forced to disk.
 *
 * No locking here: the caller serialises ring_put() and ring_commit()
 * (outbox.c's mutex).  One reader reads [tail, head) with ring_read() while
 * producers append past head; it frees what it has dealt with by
 * ring_commit().
 */
#ifndef DEYE_OUTBOX_RING_H
#define DEYE_OUTBOX_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define RING_SIZE (4 << 20)      /* the data area of a new file */
#define RING_RECORD_MAX (128 << 10)

enum ring_kind {
	RING_EVENT = 1, /* body: the event's JSON */
	RING_BYTES,     /* body: a protocol's frame; its event is made later,
			 * by the outbox builder numbered builder */
	RING_JOB        /* no body: an in-memory job's place in the queue */
};

/* A record as put, or as read back (then its pointers are into scratch). */
struct ring_rec {
	enum ring_kind kind;
	unsigned builder;         /* BYTES */
	int dir;
	uint64_t conn_id;
	int64_t time_ms;          /* EVENT: the record time; BYTES: received */
	char id[EVENT_ID_MAX];    /* BYTES: the event's id, given at put */
	const char *listener;     /* BYTES */
	const char *peer;         /* BYTES */
	const uint8_t *body;
	size_t len;
};

struct ring_hdr;

struct ring {
	struct ring_hdr *hdr;     /* in the mapping */
	uint8_t *data;
	uint64_t size;
	size_t map_len;
	bool in_memory;           /* no file: a SIGKILL loses what it holds */
	bool locked;              /* mlock()ed: no page is read back from disk */
};

/*
 * Map path, made (filled with zeros, so that no write through the mapping
 * needs a block allocated) when missing or not a valid ring.  With no file
 * to be had, the ring lives in memory only; either way 0, and *why says
 * what went wrong with the file (empty when nothing).  -1 only when even
 * memory cannot be mapped.
 */
int ring_open(struct ring *r, const char *path, char *why, size_t whylen);
void ring_close(struct ring *r);

/* Append rec; false when it does not fit (or is over RING_RECORD_MAX). */
bool ring_put(struct ring *r, const struct ring_rec *rec);
bool ring_empty(const struct ring *r);
/* Bytes free for records (each also takes a header). */
uint64_t ring_room(const struct ring *r);
/* Where the reader is, and where producers have got to. */
void ring_tail(const struct ring *r, uint64_t *pos, uint64_t *seq);
void ring_head(const struct ring *r, uint64_t *pos, uint64_t *seq);
/*
 * The record at pos, which must be number seq and end by end (a head seen
 * under the caller's lock), copied to scratch (at least RING_RECORD_MAX
 * bytes); its length in the ring, or 0 when it is damaged (length,
 * checksum, sequence or strings wrong).
 */
size_t ring_read(const struct ring *r, uint64_t pos, uint64_t end,
    uint64_t seq, struct ring_rec *rec, uint8_t *scratch);
/* Everything before pos (record seq) has been dealt with. */
void ring_commit(struct ring *r, uint64_t pos, uint64_t seq);
/* Forget what was put from pos (record seq) on: a damaged record there. */
void ring_cut(struct ring *r, uint64_t pos, uint64_t seq);

#endif
