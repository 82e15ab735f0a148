/*
 * capture.h - each connection's raw bytes, per direction, to capture_dir,
 * written by a thread of their own: a pump only copies them.
 */
#ifndef DEYE_CAPTURE_H
#define DEYE_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct capture;

/* NULL when out of memory or when the writer thread cannot start. */
struct capture *capture_open(const char *dir, const char *listener,
    uint64_t conn_id, time_t start);
/* Queue a copy of buf for the writer; never waits. */
void capture_write(struct capture *cap, int dir, const uint8_t *buf, size_t n);
/* The writer closes the files and frees cap once it has written the rest. */
void capture_close(struct capture *cap);
/* Let the writer finish what is queued, for at most grace_ms. */
void capture_stop(int64_t grace_ms);

#endif
