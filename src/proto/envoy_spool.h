/*
 * envoy_spool.h - the Envoy spool files, as the original capture tool wrote them:
 * <local time>-<random>.request, .response and .xml in a listener's
 * spool_dir, each written whole or not at all.
 */
#ifndef DEYE_ENVOY_SPOOL_H
#define DEYE_ENVOY_SPOOL_H

#include <stddef.h>
#include <time.h>

#define SPOOL_NAME_MAX 40

/* A new base name: "2026-11-22T08:05:00-1a2b3c4d" (local time). */
void envoy_spool_name(char *buf, size_t len, time_t when);
/*
 * Write dir/name.suffix, mode 0640: under a temporary name, fsynced, then
 * renamed.  0, or -1 with errno set.
 */
int envoy_spool_write(const char *dir, const char *name, const char *suffix,
    const void *data, size_t n);

#endif
