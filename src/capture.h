/* capture.h - each connection's raw bytes, per direction, to capture_dir. */
#ifndef DEYE_CAPTURE_H
#define DEYE_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct capture;

struct capture *capture_open(const char *dir, const char *listener,
    uint64_t conn_id, time_t start);
void capture_write(struct capture *cap, int dir, const uint8_t *buf, size_t n);
void capture_close(struct capture *cap);

#endif
