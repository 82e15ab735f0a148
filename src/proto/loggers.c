/*
 * loggers.c - the table of loggers heard since start: serial -> the time of
 * its last valid frame, for the metrics.
 *
 * The protocols call loggers_heard() from the pumps (the Solarman tap at
 * most once a second per connection) and the Envoy worker; the metrics
 * read it with loggers_each().  One mutex guards a small open-addressing
 * hash table of LOGGERS_MAX entries (twice as many slots, linear probing,
 * so a lookup is a few string compares).  When it is full a new serial
 * takes the place of the one silent longest: one scan, only then, and
 * counted, so a flood of made-up serials costs memory never and time only
 * once per new serial.
 */
#include "proto/loggers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define SLOTS (2 * LOGGERS_MAX)

struct logger {
	char serial[LOGGER_SERIAL_MAX + 1]; /* "" when the slot is free */
	int64_t ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct logger slots[SLOTS];
static size_t nused;
static uint64_t dropped;

static size_t
hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % SLOTS;
}

/* The slot holding serial, or the free one where it would go. */
static size_t
find(const char *serial)
{
	size_t i = hash(serial);

	while (slots[i].serial[0] != '\0' && strcmp(slots[i].serial, serial) != 0)
		i = (i + 1) % SLOTS;
	return i;
}

/* Empty slot i, moving back the entries of its probe run behind it so
 * that every entry stays reachable from its home slot. */
static void
remove_at(size_t i)
{
	size_t j = i;

	slots[i].serial[0] = '\0';
	for (;;) {
		size_t home;

		j = (j + 1) % SLOTS;
		if (slots[j].serial[0] == '\0')
			break;
		home = hash(slots[j].serial);
		/* Stays if its home lies cyclically in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		slots[i] = slots[j];
		slots[j].serial[0] = '\0';
		i = j;
	}
	nused--;
}

void
loggers_heard(const char *serial, int64_t ms)
{
	char key[LOGGER_SERIAL_MAX + 1];
	size_t i;

	snprintf(key, sizeof key, "%s", serial);
	if (key[0] == '\0')
		return;
	pthread_mutex_lock(&lock);
	i = find(key);
	if (slots[i].serial[0] == '\0' && nused == LOGGERS_MAX) {
		size_t old = SLOTS;

		for (size_t k = 0; k < SLOTS; k++)
			if (slots[k].serial[0] != '\0' &&
			    (old == SLOTS || slots[k].ms < slots[old].ms))
				old = k;
		remove_at(old);
		dropped++;
		i = find(key);
	}
	if (slots[i].serial[0] == '\0') {
		memcpy(slots[i].serial, key, sizeof key);
		slots[i].ms = ms;
		nused++;
	} else if (ms > slots[i].ms) {
		slots[i].ms = ms;
	}
	pthread_mutex_unlock(&lock);
}

size_t
loggers_each(loggers_fn *fn, void *arg)
{
	size_t n = 0;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < SLOTS; i++) {
		if (slots[i].serial[0] != '\0') {
			fn(arg, slots[i].serial, slots[i].ms);
			n++;
		}
	}
	pthread_mutex_unlock(&lock);
	return n;
}

uint64_t
loggers_dropped(void)
{
	uint64_t n;

	pthread_mutex_lock(&lock);
	n = dropped;
	pthread_mutex_unlock(&lock);
	return n;
}
