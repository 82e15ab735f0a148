/*
 * journal.c - append-only segment files with a cursor per sink.
 *
 * Layout: state_dir/journal/<segment number, 20 digits>.seg, and one
 * <sink>.cursor per sink holding "segment offset".  A record is
 *
 *	u32 length of the JSON | u32 crc32 of the next 8+length bytes |
 *	i64 event time (ms) | the event as JSON
 *
 * all little-endian.  state_dir/lock, flock()ed for the life of the
 * process, keeps a second instance out: two writers would interleave
 * records and delete each other's segments.
 *
 * Damage: a crash can tear only the last record of the last segment;
 * journal_open() cuts that off and says "torn".  A bad record anywhere
 * else (disk damage) costs only itself: readers and journal_open()
 * resynchronise on the next record whose length is sane, whose CRC
 * matches and which is followed by another valid record or the end, so a
 * false match inside the JSON text would need two CRCs to agree.  The
 * damaged segment is copied to state_dir/damaged/ first, once, and the
 * skipped bytes and records are logged and counted.
 *
 * Resources: a reader that cannot open or read a segment for want of fds
 * or memory retries (logged once a second with a count); it never skips.
 *
 * Full disk: an event that cannot be written is lost, counted and logged
 * (the running count at most every 10 s, the outage's total when appends
 * work again).  The active segment would keep its space for ever, since
 * the last segment is never deleted; so when an append fails and every
 * reader has passed its end, it is emptied (which frees its blocks at
 * once, even while a reader still has it open) and a new segment starts.
 *
 * Locking: one mutex guards the segment list, the published end, the
 * readers' cursors and the counters.  The writer appends outside the lock
 * (readers never read past the published end) and publishes after each
 * batch; readers read, resynchronise, copy and save their cursors outside
 * it too, so a slow disk under a reader never holds up the writer.
 */
#include "pipeline/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
#define SCAN_CHUNK (64 << 10)
#define RETRY_MS 100           /* a reader's wait before it tries again */
#define RETRY_LOG_MS 1000
#define LOSS_LOG_MS 10000
#define CURSOR_LOG_MS 60000
#define REC_GUESS 1024 /* record size assumed when none was seen */

/* read_record() results besides a record's size. */
#define REC_END 0      /* off is the end */
#define REC_BAD (-1)   /* complete, but not a record */
#define REC_SHORT (-2) /* runs past the end: torn, or a damaged length */
#define REC_AGAIN (-3) /* out of memory or a read error: try again */

struct segment {
	uint64_t no;
	uint64_t size;
	uint64_t recs; /* records in it: counted, or estimated (last run's) */
};

struct journal_reader {
	char name[32];
	struct journal_pos read;   /* next record to hand out */
	struct journal_pos commit; /* delivered up to here */
	int fd;
	uint64_t fd_seg;
	char *buf;
	size_t cap;
	/* The reader thread's own: */
	struct {
		uint64_t seg, from, to;
	} bad;                     /* the damage skipped last, not logged twice */
	unsigned retries;          /* failed opens or reads in a row */
	int64_t retry_log_ms;
	unsigned save_failures;    /* cursor saves failed since the last line */
	int64_t save_log_ms;       /* the last failure line, 0: none yet */
	bool save_logged;          /* a failure line awaits its recovery line */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t grown;
static char sdir[4096];       /* state_dir */
static char dir[4200];        /* state_dir/journal */
static int lock_fd = -1;
static struct segment *segs;
static size_t nsegs;
static int wfd = -1;          /* the active (last) segment */
static uint64_t wseg, wsize;  /* its number and size, the writer's own */
static uint64_t wrecs;        /* and its records */
static uint64_t seg_max, spool_max;
static int64_t fsync_ms, last_sync_ms;
static bool dirty, woken;
static struct journal_reader *readers[READERS_MAX];
static size_t nreaders;
static struct journal_stats stats;
static uint64_t outage_failures; /* the writer's: since the last line */
static bool outage_logged;        /* a failure line awaits its recovery */
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

/* A pread() that failed for a reason worth another try. */
static bool
transient(int e)
{
	return e == EINTR || e == EAGAIN || e == ENOMEM || e == ENOBUFS;
}

/*
 * Read the record at off of fd into *buf.  Returns its total size, or one
 * of the REC_ values above.
 */
static long
read_record(int fd, uint64_t off, uint64_t size, char **buf, size_t *cap,
    int64_t *time_ms, size_t *len)
{
	uint8_t h[HDR];
	ssize_t got;
	uint32_t n;

	if (off == size)
		return REC_END;
	if (size - off < HDR)
		return REC_SHORT;
	if ((got = pread(fd, h, HDR, (off_t)off)) != HDR)
		return got < 0 && transient(errno) ? REC_AGAIN : REC_BAD;
	n = get_u32(h);
	if (n > RECORD_MAX)
		return REC_BAD;
	if (size - off - HDR < n)
		return REC_SHORT;
	if (*cap < (size_t)n + 1) {
		char *nb = realloc(*buf, (size_t)n + 1);
		if (nb == NULL)
			return REC_AGAIN;
		*buf = nb;
		*cap = (size_t)n + 1;
	}
	if ((got = pread(fd, *buf, n, (off_t)(off + HDR))) != (ssize_t)n)
		return got < 0 && transient(errno) ? REC_AGAIN : REC_BAD;
	if (record_crc(h + 8, *buf, n) != get_u32(h + 4))
		return REC_BAD;
	(*buf)[n] = '\0';
	*time_ms = (int64_t)((uint64_t)get_u32(h + 8) |
	    (uint64_t)get_u32(h + 12) << 32);
	*len = n;
	return HDR + (long)n;
}

/*
 * The next record after a bad one at off: *at is set to its offset, or to
 * size if there is none.  A candidate needs a sane length, a matching CRC,
 * and after it another valid record, the end, or a record cut off by the
 * end.  Returns -1 when reading failed for want of memory (try again).
 */
static int
resync(int fd, uint64_t off, uint64_t size, char **buf, size_t *cap,
    uint64_t *at)
{
	uint8_t *win = malloc(SCAN_CHUNK + 4);
	uint64_t p = off + 1;
	int64_t t;
	size_t len;

	if (win == NULL)
		return -1;
	while (p + HDR <= size) {
		size_t want = size - p < SCAN_CHUNK + 4 ? (size_t)(size - p) :
		    SCAN_CHUNK + 4;
		ssize_t got = pread(fd, win, want, (off_t)p);
		size_t last;

		if (got < 0 && transient(errno)) {
			free(win);
			return -1;
		}
		if (got < 4) { /* unreadable here: look further on */
			p += SCAN_CHUNK;
			continue;
		}
		last = (size_t)got - 4;
		for (size_t q = 0; q <= last && q < SCAN_CHUNK; q++) {
			uint32_t n = get_u32(win + q);
			uint64_t at_q = p + q;
			long r, next;

			/* Most bytes fail here: JSON text makes huge lengths. */
			if (n == 0 || n > RECORD_MAX || size - at_q < HDR + (uint64_t)n)
				continue;
			r = read_record(fd, at_q, size, buf, cap, &t, &len);
			if (r == REC_AGAIN) {
				free(win);
				return -1;
			}
			if (r <= 0)
				continue;
			next = read_record(fd, at_q + (uint64_t)r, size, buf, cap,
			    &t, &len);
			if (next == REC_AGAIN) {
				free(win);
				return -1;
			}
			if (next >= 0 || next == REC_SHORT) {
				free(win);
				*at = at_q;
				return 0;
			}
		}
		p += SCAN_CHUNK;
	}
	free(win);
	*at = size;
	return 0;
}

/*
 * How many records the damage from..to took: follow the lengths from the
 * first header for as long as they stay inside (a damaged payload leaves
 * its header intact); at least one.
 */
static uint64_t
count_damaged(int fd, uint64_t from, uint64_t to)
{
	uint64_t n = 0;
	uint8_t h[4];

	while (from < to) {
		uint32_t len;

		n++;
		if (pread(fd, h, 4, (off_t)from) != 4)
			break;
		len = get_u32(h);
		if (len == 0 || len > RECORD_MAX || to - from < HDR + (uint64_t)len)
			break;
		from += HDR + len;
	}
	return n > 0 ? n : 1;
}

/*
 * Keep a copy of a damaged segment in state_dir/damaged/, once: a copy
 * already there (from another reader or an earlier run) is kept.  Says in
 * where[] what became of it, for the log line.
 */
static void
copy_damaged(int src, uint64_t no, char *where, size_t len)
{
	char path[4300], *b = NULL;
	int dst = -1, e = 0;
	off_t off = 0;
	ssize_t n;

	snprintf(path, sizeof path, "%s/damaged", sdir);
	if (mkdir(path, 0750) != 0 && errno != EEXIST)
		goto fail;
	snprintf(path, sizeof path, "%s/damaged/%020" PRIu64 ".seg", sdir, no);
	if ((dst = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0640)) < 0) {
		if (errno == EEXIST) {
			snprintf(where, len, "a copy is in %s", path);
			return;
		}
		goto fail;
	}
	if ((b = malloc(SCAN_CHUNK)) == NULL)
		goto fail;
	while ((n = pread(src, b, SCAN_CHUNK, off)) > 0) {
		for (ssize_t w, done = 0; done < n; done += w)
			if ((w = write(dst, b + done, (size_t)(n - done))) < 0)
				goto fail;
		off += n;
	}
	if (n < 0 || fsync(dst) != 0 || close(dst) != 0) {
		dst = -1;
		goto fail;
	}
	free(b);
	snprintf(where, len, "copied to %s", path);
	return;
fail:
	e = errno;
	free(b);
	if (dst >= 0) {
		close(dst);
		unlink(path);
	}
	snprintf(where, len, "not copied to %s/damaged: %s", sdir, strerror(e));
}

/*
 * Walk the last segment before the writer appends to it.  Damage inside
 * stays where it is (readers skip it) after a copy to damaged/.  What
 * cannot hold a record at the end is cut off: a torn last record (a crash
 * mid-append), or damage with nothing valid after it (copied first).
 */
static int
recover_last(const char *path, uint64_t *size, uint64_t *valid)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	uint64_t off = 0, end, regions = 0, records = 0, bytes = 0;
	char *buf = NULL, where[4400] = "";
	size_t cap = 0, len;
	int64_t t;
	long r;

	if (fd < 0 || fstat(fd, &st) != 0) {
		log_error("journal %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	end = (uint64_t)st.st_size;
	while ((r = read_record(fd, off, end, &buf, &cap, &t, &len)) != REC_END) {
		uint64_t at;

		if (r > 0) {
			off += (uint64_t)r;
			(*valid)++;
			continue;
		}
		if (r == REC_AGAIN || resync(fd, off, end, &buf, &cap, &at) != 0)
			goto fail;
		if (at == end && r == REC_SHORT) {
			log_warnx("journal %s: torn last record at offset %" PRIu64
			    " (%" PRIu64 " bytes, cut short by a crash): cut off",
			    path, off, end - off);
			stats.torn++;
		} else {
			if (regions++ == 0)
				copy_damaged(fd, segs[nsegs - 1].no, where,
				    sizeof where);
			records += count_damaged(fd, off, at);
			bytes += at - off;
		}
		if (at == end) {
			if (r != REC_SHORT) { /* readers will not meet it */
				log_errorx("journal %s: damaged record(s) at offset "
				    "%" PRIu64 " with nothing valid after them "
				    "(%" PRIu64 " bytes): cut off", path, off, end - off);
				stats.damaged_records += count_damaged(fd, off, at);
				stats.damaged_bytes += at - off;
			}
			if (ftruncate(fd, (off_t)off) != 0) {
				log_error("journal %s: truncate", path);
				goto fail;
			}
			break;
		}
		off = at;
	}
	if (regions > 0)
		log_errorx("journal %s: %" PRIu64 " damaged record(s) in %" PRIu64
		    " place(s), %" PRIu64 " bytes, skipped; the rest is kept; %s",
		    path, records, regions, bytes, where);
	free(buf);
	close(fd);
	*size = off;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}

static int
open_active(uint64_t no, char *err, size_t errlen)
{
	char path[4300];

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
	char tmp[4200];

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

/* state_dir/lock, held until exit; it names the holder's pid. */
int
journal_lock(const char *state_dir, uid_t owner, gid_t group, char *err,
    size_t errlen)
{
	char path[4300], pid[32];
	struct stat st;
	bool made;
	ssize_t n;
	int len;

	if (lock_fd >= 0 && strcmp(sdir, state_dir) == 0)
		return 0; /* taken before binding */
	if (lock_fd >= 0)
		close(lock_fd);
	lock_fd = -1;
	snprintf(sdir, sizeof sdir, "%s", state_dir);
	made = stat(sdir, &st) != 0;
	if (mkdir_p(sdir) != 0) {
		snprintf(err, errlen, "state_dir %s: %s", sdir, strerror(errno));
		return -1;
	}
	/* Made by root for the user it is about to become. */
	if (made && owner != (uid_t)-1 && chown(sdir, owner, group) != 0)
		log_warn("state_dir %s: chown", sdir);
	snprintf(path, sizeof path, "%s/lock", sdir);
	if ((lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0) {
		snprintf(err, errlen, "state_dir %s: lock: %s", sdir,
		    strerror(errno));
		return -1;
	}
	if (owner != (uid_t)-1 && fstat(lock_fd, &st) == 0 &&
	    st.st_uid != owner && fchown(lock_fd, owner, group) != 0)
		log_warn("state_dir %s: lock: chown", sdir);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		if (e == EWOULDBLOCK) {
			n = pread(lock_fd, pid, sizeof pid - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strspn(pid, "0123456789")] = '\0';
			snprintf(err, errlen, "state_dir %s is in use by another "
			    "deye-mitm (pid %s)", sdir, pid[0] != '\0' ? pid :
			    "unknown");
		} else {
			snprintf(err, errlen, "state_dir %s: lock: %s", sdir,
			    strerror(e));
		}
		close(lock_fd);
		lock_fd = -1;
		return -1;
	}
	len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	/* A full disk may refuse the pid; the lock holds all the same. */
	if (ftruncate(lock_fd, 0) != 0 ||
	    pwrite(lock_fd, pid, (size_t)len, 0) != len)
		log_warn("state_dir %s: lock: pid not written", sdir);
	return 0;
}

int
journal_open(const struct conf *c, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;

	clock_cond_init(&grown);
	if (journal_lock(c->state_dir, (uid_t)-1, (gid_t)-1, err, errlen) != 0)
		return -1;
	snprintf(dir, sizeof dir, "%s/journal", c->state_dir);
	if (mkdir_p(dir) != 0) {
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	spool_max = (uint64_t)c->spool_max;
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
		char path[4300];

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
		segs[nsegs++] = (struct segment){no, (uint64_t)st.st_size, 0};
	}
	closedir(d);
	if (nsegs > 1)
		qsort(segs, nsegs, sizeof *segs, cmp_seg);
	if (nsegs == 0) {
		if ((segs = calloc(1, sizeof *segs)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		segs[0] = (struct segment){1, 0, 0};
		nsegs = 1;
	} else {
		struct segment *last = &segs[nsegs - 1];
		uint64_t avg;
		char path[4300];

		seg_path(last->no, path, sizeof path);
		if (recover_last(path, &last->size, &last->recs) != 0) {
			snprintf(err, errlen, "journal %s: cannot recover", path);
			return -1;
		}
		/* Counting the others would read them all: estimated. */
		avg = last->recs > 0 ? last->size / last->recs : REC_GUESS;
		avg = avg > HDR ? avg : HDR;
		for (size_t i = 0; i + 1 < nsegs; i++)
			segs[i].recs = (segs[i].size + avg - 1) / avg;
	}
	for (size_t i = 0; i < nsegs; i++)
		stats.bytes += segs[i].size;
	wseg = segs[nsegs - 1].no;
	wsize = segs[nsegs - 1].size;
	wrecs = segs[nsegs - 1].recs;
	last_sync_ms = clock_now_ms();
	if (nsegs > 1 || wsize > 0)
		log_info("journal %s: %zu segment(s), %" PRIu64 " bytes kept from "
		    "the last run", dir, nsegs, stats.bytes);
	return open_active(wseg, err, errlen);
}

void
journal_stats(struct journal_stats *out)
{
	pthread_mutex_lock(&lock);
	*out = stats;
	pthread_mutex_unlock(&lock);
}

static size_t seg_index(uint64_t no);
static uint64_t count_records(uint64_t no, uint64_t off, uint64_t size);

bool
journal_backlog(const char *name, struct journal_backlog *out)
{
	const struct journal_reader *r = NULL;
	size_t i;

	out->events = out->bytes = 0;
	pthread_mutex_lock(&lock);
	for (i = 0; i < nreaders && r == NULL; i++)
		if (strcmp(readers[i]->name, name) == 0)
			r = readers[i];
	for (i = r != NULL ? seg_index(r->commit.seg) : nsegs; i < nsegs; i++) {
		uint64_t off = 0, idx = 0;

		if (segs[i].no == r->commit.seg) {
			off = r->commit.off;
			idx = r->commit.idx;
		}
		if (off < segs[i].size)
			out->bytes += segs[i].size - off;
		/* An estimate may fall short of a cursor: still one left. */
		if (idx < segs[i].recs)
			out->events += segs[i].recs - idx;
		else if (off < segs[i].size)
			out->events++;
	}
	pthread_mutex_unlock(&lock);
	return r != NULL;
}

/* ---- cursors ---- */

static void
cursor_path(const struct journal_reader *r, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.cursor", dir, r->name);
}

/*
 * Only the reader's own thread saves its cursor, outside the lock.  On a
 * full disk a save fails at every commit: that is logged once a minute
 * with a count, and no empty .tmp is left behind.  The stale cursor on
 * disk only means events are sent again after a restart, same ids.
 */
static void
cursor_save(struct journal_reader *r, struct journal_pos at)
{
	char path[4300], tmp[4310];
	int64_t now;
	FILE *f;
	int e;

	cursor_path(r, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if ((f = fopen(tmp, "we")) != NULL) {
		int p = fprintf(f, "%" PRIu64 " %" PRIu64 "\n", at.seg, at.off);

		if (fclose(f) == 0 && p > 0 && rename(tmp, path) == 0) {
			if (r->save_logged)
				log_info("journal cursor %s: saved again", path);
			r->save_logged = false;
			return;
		}
	}
	e = errno;
	if (f != NULL)
		unlink(tmp);
	now = clock_now_ms();
	/* Once a minute however often it fails and recovers in between. */
	r->save_failures++;
	if (r->save_log_ms == 0 || now - r->save_log_ms >= CURSOR_LOG_MS) {
		log_warnx("journal cursor %s: %s (%u failed attempt(s); delivery "
		    "goes on, a restart would send these events again)", path,
		    strerror(e), r->save_failures);
		r->save_log_ms = now;
		r->save_failures = 0;
		r->save_logged = true;
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
	char path[4300];
	unsigned long long s = 0, o = 0;
	bool had_cursor = false;
	FILE *f;

	if (r == NULL)
		return NULL;
	snprintf(r->name, sizeof r->name, "%s", name);
	r->fd = -1;
	cursor_path(r, path, sizeof path);
	if ((f = fopen(path, "re")) != NULL) {
		had_cursor = true;
		if (fscanf(f, "%llu %llu", &s, &o) != 2)
			s = o = 0;
		fclose(f);
	}
	pthread_mutex_lock(&lock);
	/* A cursor in a segment that is gone starts at the oldest one kept. */
	size_t i = seg_index(s);
	if (i == nsegs || segs[i].no != s || o > segs[i].size) {
		s = segs[0].no;
		o = 0;
	}
	/* Once per sink at start: at most one segment read. */
	r->commit = (struct journal_pos){s, o, o > 0 ? count_records(s, 0, o) : 0};
	r->read = r->commit;
	if (nreaders == READERS_MAX) {
		pthread_mutex_unlock(&lock);
		log_errorx("journal: too many sinks, '%s' not opened", name);
		free(r);
		return NULL;
	}
	readers[nreaders++] = r;
	pthread_mutex_unlock(&lock);
	/* Written at once: the sink's claim on the journal starts now. */
	if (!had_cursor)
		cursor_save(r, r->commit);
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

/* Has r delivered everything in segs[k]? */
static bool
passed(const struct journal_reader *r, size_t k)
{
	return r->commit.seg > segs[k].no ||
	    (r->commit.seg == segs[k].no && r->commit.off >= segs[k].size);
}

/* Delete the segments before the last that every reader has passed
 * (lock held). */
static void
delete_passed(void)
{
	size_t k = 0;

	if (!deleting)
		return;
	for (; k + 1 < nsegs; k++) {
		char path[4300];
		bool all = true;

		for (size_t i = 0; i < nreaders && all; i++)
			all = passed(readers[i], k);
		if (!all)
			break;
		seg_path(segs[k].no, path, sizeof path);
		if (unlink(path) != 0 && errno != ENOENT)
			log_warn("journal %s", path);
		stats.bytes -= segs[k].size;
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
	char path[4300], *buf = NULL;
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

/*
 * Past spool_max: drop the oldest segment, undelivered or not (lock held).
 * The cursors on disk are left: one in a segment that is gone starts at
 * the oldest kept, which is where they are moved here.
 */
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
				r->commit = (struct journal_pos){segs[1].no, 0, 0};
				if (r->read.seg <= s->no)
					r->read = r->commit;
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

/*
 * An append the disk refused.  The event is not lost here: the outbox
 * holds it and tries again.  Logged at once, then at most every
 * LOSS_LOG_MS while the failures go on, however often they pause.
 */
static void
append_failed(const char *why)
{
	int64_t now = clock_now_ms();

	outage_failures++;
	if (last_error_log_ms == 0 || now - last_error_log_ms >= LOSS_LOG_MS) {
		log_errorx("journal: %s (%" PRIu64 " failed attempt(s)); events "
		    "wait in the outbox, the relay goes on", why, outage_failures);
		last_error_log_ms = now;
		outage_failures = 0;
		outage_logged = true;
	}
}

/* The first append that works after a logged failure. */
static void
append_recovered(void)
{
	log_info("journal: appending again");
	outage_logged = false;
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
	/* What this segment holds, as journal_publish() would say: a roll
	 * for EFBIG comes between two publishes, and a reader moves to the
	 * next segment once it has read the listed size of this one. */
	stats.bytes += wsize - segs[nsegs - 1].size;
	segs[nsegs - 1].size = wsize;
	segs[nsegs - 1].recs = wrecs;
	ns = realloc(segs, (nsegs + 1) * sizeof *segs);
	if (ns != NULL) {
		segs = ns;
		segs[nsegs++] = (struct segment){wseg + 1, 0, 0};
		delete_passed();
		pthread_cond_broadcast(&grown); /* readers at its end move on */
	}
	pthread_mutex_unlock(&lock);
	if (ns == NULL) {
		log_errorx("journal: out of memory, segment not rolled");
		return;
	}
	wseg++;
	wsize = 0;
	wrecs = 0;
	if (open_active(wseg, err, sizeof err) != 0)
		log_errorx("%s", err);
}

/*
 * After a failed append.  When every reader has passed the end of the
 * active segment nothing in it is wanted: empty it, which gives its blocks
 * back at once (even those a reader still has open), and go on in a new
 * one; it is deleted as passed.  EFBIG: that file cannot grow, so a new
 * one starts whoever still reads it.  Returns whether to try again.
 */
static bool
reclaim(int e)
{
	bool all;

	pthread_mutex_lock(&lock);
	all = deleting && wsize > 0 && segs[nsegs - 1].size == wsize;
	for (size_t i = 0; i < nreaders && all; i++)
		all = passed(readers[i], nsegs - 1);
	pthread_mutex_unlock(&lock);
	if (!all && !(e == EFBIG && wsize > 0))
		return false;
	if (all && ftruncate(wfd, 0) != 0)
		log_warn("journal: emptying a delivered segment");
	roll();
	return wfd >= 0;
}

/* Write a whole record; a partial one is taken back.  -1 with errno. */
static int
write_record(struct iovec *iov, size_t total)
{
	size_t done = 0;

	while (done < total) {
		struct iovec rest[2];
		int k = 0;
		size_t skip = done;
		ssize_t w;

		for (int i = 0; i < 2; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			rest[k].iov_base = (char *)iov[i].iov_base + skip;
			rest[k++].iov_len = iov[i].iov_len - skip;
			skip = 0;
		}
		if ((w = writev(wfd, rest, k)) < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			if (done > 0 && ftruncate(wfd, (off_t)wsize) != 0)
				log_warn("journal truncate");
			errno = e;
			return -1;
		}
		done += (size_t)w;
	}
	return 0;
}

int
journal_append(int64_t time_ms, const char *json, size_t len)
{
	uint8_t h[HDR];
	struct iovec iov[2] = {{h, HDR}, {(void *)(uintptr_t)json, len}};

	if (len > RECORD_MAX) {
		log_warnx("journal: event of %zu bytes too large, not kept", len);
		pthread_mutex_lock(&lock);
		stats.lost++;
		pthread_mutex_unlock(&lock);
		errno = EMSGSIZE;
		return -1;
	}
	if (wfd < 0) {
		char err[256];
		if (open_active(wseg, err, sizeof err) != 0) {
			int e = errno;

			append_failed(err);
			errno = e;
			return -1;
		}
	}
	put_u32(h, (uint32_t)len);
	put_u32(h + 8, (uint32_t)(uint64_t)time_ms);
	put_u32(h + 12, (uint32_t)((uint64_t)time_ms >> 32));
	put_u32(h + 4, record_crc(h + 8, json, len));
	if (write_record(iov, HDR + len) != 0) {
		int e = errno;

		if (!reclaim(e) || write_record(iov, HDR + len) != 0) {
			append_failed(strerror(e));
			errno = e;
			return -1;
		}
	}
	wsize += HDR + len;
	wrecs++;
	dirty = true;
	pthread_mutex_lock(&lock);
	stats.appended++;
	pthread_mutex_unlock(&lock);
	if (outage_logged)
		append_recovered();
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
	segs[nsegs - 1].recs = wrecs;
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
	outage_failures = 0;
	outage_logged = false;
	last_error_log_ms = 0;
	deleting = woken = false;
	if (lock_fd >= 0)
		close(lock_fd);
	lock_fd = -1;
}

/* ---- readers ---- */

/*
 * A segment that could not be opened or read for want of fds or memory:
 * try again soon, never skip.  Logged at once, then once a second.
 */
static int
reader_retry(struct journal_reader *r, uint64_t seg, int e, int64_t wait_ms)
{
	int64_t now = clock_now_ms();

	if (r->retries++ == 0 || now - r->retry_log_ms >= RETRY_LOG_MS) {
		log_warnx("journal: sink '%s' cannot read segment %" PRIu64 ": %s; "
		    "retrying (%u attempt(s))", r->name, seg, strerror(e),
		    r->retries);
		r->retry_log_ms = now;
	}
	pthread_mutex_lock(&lock);
	if (wait_ms > 0 && !woken)
		clock_cond_wait(&grown, &lock, wait_ms < RETRY_MS ? wait_ms :
		    RETRY_MS);
	pthread_mutex_unlock(&lock);
	return 0;
}

/* Move r from pos.off on to `to`, unless spool_max moved it meanwhile;
 * count what it skips unless it skipped that before. */
static void
reader_skip(struct journal_reader *r, struct journal_pos pos, uint64_t to,
    uint64_t records, bool count)
{
	pthread_mutex_lock(&lock);
	if (r->read.seg == pos.seg && r->read.off == pos.off) {
		r->read.off = to;
		r->read.idx += records;
	}
	if (count) {
		stats.damaged_records += records;
		stats.damaged_bytes += to - pos.off;
	}
	pthread_mutex_unlock(&lock);
}

/*
 * A bad record at pos: skip to the next valid one, after a copy of the
 * segment.  The same damage met again (a rewind) is skipped silently.
 * Returns -1 to try again later (out of memory).
 */
static int
reader_damaged(struct journal_reader *r, struct journal_pos pos,
    uint64_t size)
{
	char where[4400];
	uint64_t at, records;

	if (r->bad.seg == pos.seg && r->bad.from == pos.off &&
	    r->bad.to <= size) {
		reader_skip(r, pos, r->bad.to, 0, false);
		return 0;
	}
	if (resync(r->fd, pos.off, size, &r->buf, &r->cap, &at) != 0)
		return -1;
	copy_damaged(r->fd, pos.seg, where, sizeof where);
	records = count_damaged(r->fd, pos.off, at);
	log_errorx("journal: sink '%s': damaged record(s) in segment %" PRIu64
	    " at offset %" PRIu64 ": %" PRIu64 " record(s), %" PRIu64 " bytes "
	    "skipped; %s", r->name, pos.seg, pos.off, records, at - pos.off,
	    where);
	r->bad.seg = pos.seg;
	r->bad.from = pos.off;
	r->bad.to = at;
	reader_skip(r, pos, at, records, true);
	return 0;
}

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
			r->read = (struct journal_pos){segs[i].no, 0, 0};
		if (r->read.off >= segs[i].size && i + 1 < nsegs) {
			r->read = (struct journal_pos){segs[i + 1].no, 0, 0};
			pthread_mutex_unlock(&lock);
			continue;
		}
		pos = r->read;
		size = segs[i].size;
		if (pos.off >= size && (r->fd < 0 || r->fd_seg == pos.seg)) {
			if (wait_ms <= 0 || woken) {
				pthread_mutex_unlock(&lock);
				return 0;
			}
			clock_cond_wait(&grown, &lock, wait_ms);
			wait_ms = 0;
			pthread_mutex_unlock(&lock);
			continue;
		}
		pthread_mutex_unlock(&lock);

		/* An old segment's fd would keep its blocks once deleted. */
		if (r->fd >= 0 && r->fd_seg != pos.seg) {
			close(r->fd);
			r->fd = -1;
		}
		if (pos.off >= size)
			continue;
		if (r->fd < 0) {
			char path[4300];

			seg_path(pos.seg, path, sizeof path);
			if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
				bool listed;

				if (errno != ENOENT)
					return reader_retry(r, pos.seg, errno, wait_ms);
				pthread_mutex_lock(&lock);
				i = seg_index(pos.seg);
				listed = i < nsegs && segs[i].no == pos.seg;
				pthread_mutex_unlock(&lock);
				if (listed) { /* not dropped by spool_max: lost */
					log_errorx("journal: sink '%s': %s is missing: "
					    "%" PRIu64 " bytes skipped", r->name, path,
					    size - pos.off);
					reader_skip(r, pos, size, 0, true);
				}
				continue;
			}
			r->fd_seg = pos.seg;
		}
		n = read_record(r->fd, pos.off, size, &r->buf, &r->cap,
		    &rec->time_ms, &rec->len);
		if (n == REC_AGAIN)
			return reader_retry(r, pos.seg, errno ? errno : ENOMEM,
			    wait_ms);
		if (n <= 0) {
			if (reader_damaged(r, pos, size) != 0)
				return reader_retry(r, pos.seg, ENOMEM, wait_ms);
			continue;
		}
		if (r->retries > 0) {
			log_info("journal: sink '%s' reading again after %u failed "
			    "attempt(s)", r->name, r->retries);
			r->retries = 0;
		}
		rec->pos = pos;
		rec->next = (struct journal_pos){pos.seg, pos.off + (uint64_t)n,
		    pos.idx + 1};
		rec->json = r->buf;
		pthread_mutex_lock(&lock);
		/* Unless spool_max moved us on meanwhile. */
		if (r->read.seg == pos.seg && r->read.off == pos.off)
			r->read = rec->next;
		pthread_mutex_unlock(&lock);
		return 1;
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
	bool moved = false;

	pthread_mutex_lock(&lock);
	/* A commit behind the cursor (spool_max moved it on) changes nothing. */
	if (next.seg > r->commit.seg ||
	    (next.seg == r->commit.seg && next.off > r->commit.off)) {
		r->commit = next;
		moved = true;
		delete_passed();
	}
	pthread_mutex_unlock(&lock);
	if (moved)
		cursor_save(r, next);
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
