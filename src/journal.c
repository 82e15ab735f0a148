/*
 * journal.c - append-only segment files with a cursor per sink.
 *
 * Layout: state_dir/journal/<segment number, 20 digits>.seg, and one
 * <sink>.cursor per sink holding "segment offset".  A record is
 *
 *	u32 length of the JSON | u32 crc32 of the next 8+length bytes |
 *	i64 event time (ms) | the event as JSON
 *
 * all little-endian.  A crash can tear only the last record of the last
 * segment: journal_open() finds it by length and checksum, logs it and cuts
 * it off.  A bad record inside a segment (disk damage) makes readers skip
 * the rest of that segment, loudly.
 *
 * Locking: one mutex guards the segment list, the published end, the
 * readers' cursors and the counters.  The writer appends outside the lock
 * (readers never read past the published end) and publishes after each
 * batch; readers read their files outside the lock too.
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <zlib.h>

#include "clock.h"
#include "log.h"

#define HDR 16
#define RECORD_MAX (1 << 20)
#define SEG_MAX (4 << 20)
#define SEG_MIN (16 << 10)
#define READERS_MAX 4

struct segment {
	uint64_t no;
	uint64_t size;
};

struct journal_reader {
	char name[32];
	struct journal_pos read;   /* next record to hand out */
	struct journal_pos commit; /* delivered up to here */
	int fd;
	uint64_t fd_seg;
	char *buf;
	size_t cap;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t grown;
static char dir[4096];
static struct segment *segs;
static size_t nsegs;
static int wfd = -1;          /* the active (last) segment */
static uint64_t wseg, wsize;  /* its number and size, the writer's own */
static uint64_t seg_max, spool_max;
static int64_t fsync_ms, last_sync_ms;
static bool dirty, woken;
static struct journal_reader *readers[READERS_MAX];
static size_t nreaders;
static struct {
	uint64_t appended, dropped, torn, write_errors;
	uint64_t bytes; /* on disk */
} stats;
static int64_t last_error_log_ms;
static bool deleting; /* off until every sink has opened its reader */

static void
seg_path(uint64_t no, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%020" PRIu64 ".seg", dir, no);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint32_t
record_crc(const uint8_t *time8, const char *json, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	crc = crc32(crc, time8, 8);
	crc = crc32(crc, (const Bytef *)json, (uInt)len);
	return (uint32_t)crc;
}

static int
cmp_seg(const void *a, const void *b)
{
	uint64_t x = ((const struct segment *)a)->no;
	uint64_t y = ((const struct segment *)b)->no;

	return x < y ? -1 : x > y;
}

/*
 * Read the record at off of fd into *buf.  Returns its total size, 0 at a
 * clean end (off == size), or -1 for a bad or incomplete record.
 */
static long
read_record(int fd, uint64_t off, uint64_t size, char **buf, size_t *cap,
    int64_t *time_ms, size_t *len)
{
	uint8_t h[HDR];
	uint32_t n;

	if (off == size)
		return 0;
	if (size - off < HDR || pread(fd, h, HDR, (off_t)off) != HDR)
		return -1;
	n = get_u32(h);
	if (n > RECORD_MAX || size - off - HDR < n)
		return -1;
	if (*cap < (size_t)n + 1) {
		char *nb = realloc(*buf, (size_t)n + 1);
		if (nb == NULL)
			return -1;
		*buf = nb;
		*cap = (size_t)n + 1;
	}
	if (pread(fd, *buf, n, (off_t)(off + HDR)) != (ssize_t)n ||
	    record_crc(h + 8, *buf, n) != get_u32(h + 4))
		return -1;
	(*buf)[n] = '\0';
	*time_ms = (int64_t)((uint64_t)get_u32(h + 8) |
	    (uint64_t)get_u32(h + 12) << 32);
	*len = n;
	return HDR + (long)n;
}

/* Find the end of the last segment, cutting off a torn last record. */
static int
recover_last(const char *path, uint64_t *size)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	uint64_t off = 0;
	char *buf = NULL;
	size_t cap = 0, len;
	int64_t t;
	long r;

	if (fd < 0 || fstat(fd, &st) != 0) {
		log_error("journal %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((r = read_record(fd, off, (uint64_t)st.st_size, &buf, &cap, &t,
	    &len)) > 0)
		off += (uint64_t)r;
	free(buf);
	if (r < 0) {
		log_warnx("journal %s: torn or damaged record at offset %" PRIu64
		    " (%" PRIu64 " bytes): cut off", path, off,
		    (uint64_t)st.st_size - off);
		stats.torn++;
		if (ftruncate(fd, (off_t)off) != 0)
			log_warn("journal %s: truncate", path);
	}
	close(fd);
	*size = off;
	return 0;
}

static int
open_active(uint64_t no, char *err, size_t errlen)
{
	char path[4200];

	seg_path(no, path, sizeof path);
	wfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (wfd < 0) {
		snprintf(err, errlen, "journal %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
mkdir_p(const char *path)
{
	char tmp[4096];

	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

int
journal_open(const struct conf *c, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;

	clock_cond_init(&grown);
	snprintf(dir, sizeof dir, "%s/journal", c->state_dir);
	if (mkdir_p(dir) != 0) {
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	spool_max = (uint64_t)c->hec.spool_max;
	seg_max = spool_max / 8;
	seg_max = seg_max > SEG_MAX ? SEG_MAX : seg_max < SEG_MIN ? SEG_MIN : seg_max;
	fsync_ms = c->journal_fsync_ms;
	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long long no;
		struct stat st;
		char path[4200];

		if (strlen(de->d_name) != 24 || strcmp(de->d_name + 20, ".seg") != 0)
			continue;
		no = strtoull(de->d_name, &end, 10);
		if (end != de->d_name + 20)
			continue;
		seg_path(no, path, sizeof path);
		if (stat(path, &st) != 0)
			continue;
		struct segment *ns = realloc(segs, (nsegs + 1) * sizeof *segs);
		if (ns == NULL) {
			closedir(d);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		segs = ns;
		segs[nsegs++] = (struct segment){no, (uint64_t)st.st_size};
	}
	closedir(d);
	if (nsegs > 1)
		qsort(segs, nsegs, sizeof *segs, cmp_seg);
	if (nsegs == 0) {
		if ((segs = calloc(1, sizeof *segs)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		segs[0] = (struct segment){1, 0};
		nsegs = 1;
	} else {
		char path[4200];
		seg_path(segs[nsegs - 1].no, path, sizeof path);
		if (recover_last(path, &segs[nsegs - 1].size) != 0) {
			snprintf(err, errlen, "journal %s: cannot recover", path);
			return -1;
		}
	}
	for (size_t i = 0; i < nsegs; i++)
		stats.bytes += segs[i].size;
	wseg = segs[nsegs - 1].no;
	wsize = segs[nsegs - 1].size;
	last_sync_ms = clock_now_ms();
	if (nsegs > 1 || wsize > 0)
		log_info("journal %s: %zu segment(s), %" PRIu64 " bytes kept from "
		    "the last run", dir, nsegs, stats.bytes);
	return open_active(wseg, err, errlen);
}

/* ---- cursors ---- */

static void
cursor_path(const struct journal_reader *r, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.cursor", dir, r->name);
}

static void
cursor_save(const struct journal_reader *r)
{
	char path[4200], tmp[4210];
	FILE *f;

	cursor_path(r, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if ((f = fopen(tmp, "we")) == NULL ||
	    fprintf(f, "%" PRIu64 " %" PRIu64 "\n", r->commit.seg,
	    r->commit.off) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
		log_warn("journal cursor %s", path);
		return;
	}
}

static size_t
seg_index(uint64_t no)
{
	for (size_t i = 0; i < nsegs; i++)
		if (segs[i].no >= no)
			return i;
	return nsegs;
}

struct journal_reader *
journal_reader_open(const char *name)
{
	struct journal_reader *r = calloc(1, sizeof *r);
	char path[4200];
	unsigned long long s = 0, o = 0;
	bool had_cursor = false;
	FILE *f;

	if (r == NULL)
		return NULL;
	snprintf(r->name, sizeof r->name, "%s", name);
	r->fd = -1;
	cursor_path(r, path, sizeof path);
	pthread_mutex_lock(&lock);
	if ((f = fopen(path, "re")) != NULL) {
		had_cursor = true;
		if (fscanf(f, "%llu %llu", &s, &o) != 2)
			s = o = 0;
		fclose(f);
	}
	/* A cursor in a segment that is gone starts at the oldest one kept. */
	size_t i = seg_index(s);
	if (i == nsegs || segs[i].no != s || o > segs[i].size) {
		s = segs[0].no;
		o = 0;
	}
	r->commit = (struct journal_pos){s, o};
	r->read = r->commit;
	if (nreaders == READERS_MAX) {
		pthread_mutex_unlock(&lock);
		log_errorx("journal: too many sinks, '%s' not opened", name);
		free(r);
		return NULL;
	}
	readers[nreaders++] = r;
	/* Written at once: the sink's claim on the journal starts now. */
	if (!had_cursor)
		cursor_save(r);
	pthread_mutex_unlock(&lock);
	return r;
}

void
journal_reader_close(struct journal_reader *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nreaders; i++) {
		if (readers[i] == r) {
			readers[i] = readers[--nreaders];
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	free(r);
}

/* Delete segments every reader has passed (lock held). */
static void
delete_passed(void)
{
	uint64_t min = segs[nsegs - 1].no;
	size_t k = 0;

	if (!deleting)
		return;
	for (size_t i = 0; i < nreaders; i++)
		if (readers[i]->commit.seg < min)
			min = readers[i]->commit.seg;
	while (k + 1 < nsegs && segs[k].no < min) {
		char path[4200];
		seg_path(segs[k].no, path, sizeof path);
		if (unlink(path) != 0 && errno != ENOENT)
			log_warn("journal %s", path);
		stats.bytes -= segs[k].size;
		k++;
	}
	if (k > 0) {
		memmove(segs, segs + k, (nsegs - k) * sizeof *segs);
		nsegs -= k;
	}
}

/* Count the records of a closed segment from off on. */
static uint64_t
count_records(uint64_t no, uint64_t off, uint64_t size)
{
	char path[4200], *buf = NULL;
	size_t cap = 0, len;
	uint64_t n = 0;
	int64_t t;
	long r;
	int fd;

	seg_path(no, path, sizeof path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	while ((r = read_record(fd, off, size, &buf, &cap, &t, &len)) > 0) {
		off += (uint64_t)r;
		n++;
	}
	free(buf);
	close(fd);
	return n;
}

/* Past spool_max: drop the oldest segment, undelivered or not (lock held). */
static void
enforce_spool_max(void)
{
	while (stats.bytes > spool_max && nsegs > 1) {
		struct segment *s = &segs[0];
		uint64_t from = s->size, lost;

		for (size_t i = 0; i < nreaders; i++) {
			struct journal_reader *r = readers[i];
			if (r->commit.seg <= s->no) {
				uint64_t o = r->commit.seg == s->no ? r->commit.off : 0;
				from = o < from ? o : from;
				r->commit = (struct journal_pos){segs[1].no, 0};
				if (r->read.seg <= s->no)
					r->read = r->commit;
				cursor_save(r);
			}
		}
		lost = from < s->size ? count_records(s->no, from, s->size) : 0;
		stats.dropped += lost;
		if (lost > 0)
			log_errorx("journal: spool_max reached: dropped %" PRIu64
			    " undelivered event(s), the oldest (%" PRIu64
			    " dropped since start)", lost, stats.dropped);
		/* Readers now start after it, so it goes with the delivered. */
		delete_passed();
	}
}

/* ---- writer ---- */

static void
error_log(const char *what)
{
	int64_t now = clock_now_ms();

	pthread_mutex_lock(&lock);
	stats.write_errors++;
	pthread_mutex_unlock(&lock);
	if (now - last_error_log_ms >= 60000 || last_error_log_ms == 0) {
		log_errorx("journal: %s (%" PRIu64 " event(s) lost so far; the relay "
		    "goes on)", what, stats.write_errors);
		last_error_log_ms = now;
	}
}

static void
roll(void)
{
	char err[256];
	struct segment *ns;

	if (dirty && fdatasync(wfd) != 0)
		log_warn("journal fsync");
	dirty = false;
	close(wfd);
	wfd = -1;
	pthread_mutex_lock(&lock);
	ns = realloc(segs, (nsegs + 1) * sizeof *segs);
	if (ns != NULL) {
		segs = ns;
		segs[nsegs++] = (struct segment){wseg + 1, 0};
	}
	pthread_mutex_unlock(&lock);
	if (ns == NULL) {
		log_errorx("journal: out of memory, segment not rolled");
		return;
	}
	wseg++;
	wsize = 0;
	if (open_active(wseg, err, sizeof err) != 0)
		log_errorx("%s", err);
}

int
journal_append(int64_t time_ms, const char *json, size_t len)
{
	uint8_t h[HDR];
	struct iovec iov[2] = {{h, HDR}, {(void *)(uintptr_t)json, len}};
	ssize_t w;

	if (len > RECORD_MAX) {
		log_warnx("journal: event of %zu bytes too large, not kept", len);
		return -1;
	}
	if (wfd < 0) {
		char err[256];
		if (open_active(wseg, err, sizeof err) != 0) {
			error_log("segment");
			return -1;
		}
	}
	put_u32(h, (uint32_t)len);
	put_u32(h + 8, (uint32_t)(uint64_t)time_ms);
	put_u32(h + 12, (uint32_t)((uint64_t)time_ms >> 32));
	put_u32(h + 4, record_crc(h + 8, json, len));
	w = writev(wfd, iov, 2);
	if (w != (ssize_t)(HDR + len)) {
		/* Keep the segment whole: take a partial record back. */
		if (w > 0 && ftruncate(wfd, (off_t)wsize) != 0)
			log_warn("journal truncate");
		error_log(w < 0 ? strerror(errno) : "short write");
		return -1;
	}
	wsize += (uint64_t)w;
	dirty = true;
	pthread_mutex_lock(&lock);
	stats.appended++;
	pthread_mutex_unlock(&lock);
	if (wsize >= seg_max) {
		journal_publish();
		roll();
	}
	return 0;
}

int64_t
journal_publish(void)
{
	int64_t now = clock_now_ms(), due;

	pthread_mutex_lock(&lock);
	stats.bytes += wsize - segs[nsegs - 1].size;
	segs[nsegs - 1].size = wsize;
	if (deleting) {
		enforce_spool_max();
		delete_passed();
	}
	pthread_cond_broadcast(&grown);
	pthread_mutex_unlock(&lock);
	if (!dirty)
		return -1;
	due = last_sync_ms + fsync_ms - now;
	if (due > 0)
		return due;
	if (wfd >= 0 && fdatasync(wfd) != 0)
		log_warn("journal fsync");
	dirty = false;
	last_sync_ms = now;
	return -1;
}

void
journal_close(void)
{
	while (nreaders > 0) /* the ones nobody reads with */
		journal_reader_close(readers[nreaders - 1]);
	if (wfd >= 0) {
		if (dirty && fdatasync(wfd) != 0)
			log_warn("journal fsync");
		close(wfd);
	}
	wfd = -1;
	dirty = false;
	free(segs);
	segs = NULL;
	nsegs = 0;
	memset(&stats, 0, sizeof stats);
}

/* ---- readers ---- */

int
journal_next(struct journal_reader *r, struct journal_rec *rec,
    int64_t wait_ms)
{
	for (;;) {
		struct journal_pos pos;
		uint64_t size;
		size_t i;
		long n;

		pthread_mutex_lock(&lock);
		i = seg_index(r->read.seg);
		if (i == nsegs) { /* cannot happen: the last segment stays */
			pthread_mutex_unlock(&lock);
			return 0;
		}
		if (segs[i].no != r->read.seg)
			r->read = (struct journal_pos){segs[i].no, 0};
		if (r->read.off >= segs[i].size && i + 1 < nsegs) {
			r->read = (struct journal_pos){segs[i + 1].no, 0};
			pthread_mutex_unlock(&lock);
			continue;
		}
		if (r->read.off >= segs[i].size) {
			if (wait_ms <= 0 || woken) {
				pthread_mutex_unlock(&lock);
				return 0;
			}
			clock_cond_wait(&grown, &lock, wait_ms);
			wait_ms = 0;
			pthread_mutex_unlock(&lock);
			continue;
		}
		pos = r->read;
		size = segs[i].size;
		pthread_mutex_unlock(&lock);

		if (r->fd < 0 || r->fd_seg != pos.seg) {
			char path[4200];
			if (r->fd >= 0)
				close(r->fd);
			seg_path(pos.seg, path, sizeof path);
			r->fd = open(path, O_RDONLY | O_CLOEXEC);
			r->fd_seg = pos.seg;
			if (r->fd < 0) {
				log_warn("journal %s: skipped", path);
				goto skip_segment;
			}
		}
		n = read_record(r->fd, pos.off, size, &r->buf, &r->cap,
		    &rec->time_ms, &rec->len);
		if (n <= 0) {
			log_errorx("journal: damaged record in segment %" PRIu64
			    " at offset %" PRIu64 ": rest of the segment skipped",
			    pos.seg, pos.off);
			goto skip_segment;
		}
		rec->pos = pos;
		rec->next = (struct journal_pos){pos.seg, pos.off + (uint64_t)n};
		rec->json = r->buf;
		pthread_mutex_lock(&lock);
		/* Unless spool_max moved us on meanwhile. */
		if (r->read.seg == pos.seg && r->read.off == pos.off)
			r->read = rec->next;
		pthread_mutex_unlock(&lock);
		return 1;
skip_segment:
		pthread_mutex_lock(&lock);
		if (r->read.seg == pos.seg)
			r->read.off = size;
		pthread_mutex_unlock(&lock);
	}
}

void
journal_rewind(struct journal_reader *r)
{
	pthread_mutex_lock(&lock);
	r->read = r->commit;
	pthread_mutex_unlock(&lock);
}

void
journal_commit(struct journal_reader *r, struct journal_pos next)
{
	pthread_mutex_lock(&lock);
	/* A commit behind the cursor (spool_max moved it on) changes nothing. */
	if (next.seg > r->commit.seg ||
	    (next.seg == r->commit.seg && next.off > r->commit.off)) {
		r->commit = next;
		cursor_save(r);
		delete_passed();
	}
	pthread_mutex_unlock(&lock);
}

void
journal_start_deleting(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	/*
	 * A cursor on disk whose sink is not configured this time (a token
	 * missing from the environment, say) still holds its events: they
	 * wait, bounded by spool_max, until the sink is back or its cursor
	 * file is removed.
	 */
	while (d != NULL && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char name[32];
		bool open = false;

		if (n < 8 || n - 7 >= sizeof name ||
		    strcmp(de->d_name + n - 7, ".cursor") != 0)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)(n - 7), de->d_name);
		pthread_mutex_lock(&lock);
		for (size_t i = 0; i < nreaders; i++)
			open = open || strcmp(readers[i]->name, name) == 0;
		pthread_mutex_unlock(&lock);
		if (!open && journal_reader_open(name) != NULL)
			log_warnx("journal: sink '%s' is not configured but has a "
			    "cursor: its events are kept (up to spool_max); remove "
			    "%s/%s to let them go", name, dir, de->d_name);
	}
	if (d != NULL)
		closedir(d);
	pthread_mutex_lock(&lock);
	deleting = true;
	pthread_mutex_unlock(&lock);
}

void
journal_wake(void)
{
	pthread_mutex_lock(&lock);
	woken = true;
	pthread_cond_broadcast(&grown);
	pthread_mutex_unlock(&lock);
}
