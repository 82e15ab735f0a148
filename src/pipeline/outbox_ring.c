/*
 * outbox_ring.c - the outbox's byte ring in a shared file mapping.
 *
 * Layout of state_dir/outbox: a 4 KiB header page, then the data area.
 *
 *	header: "DMOUTBX1" | u64 size of the data area | u64 head | u64 tail |
 *	        u64 head_seq | u64 tail_seq
 *	record: u32 length (all of it) | u32 crc32 of the rest | u64 seq |
 *	        u64 conn_id | i64 time (ms) | u8 kind | u8 dir |
 *	        u16 listener length | u16 peer length | u16 builder | id[40] |
 *	        listener NUL | peer NUL | body
 *
 * builder numbers the outbox's event builder of a BYTES record (a protocol's
 * number; 0, Solarman's, in files of older versions, where it was a zero).
 * head and tail count bytes since the file was made (a record starts at
 * head % size and may wrap); seq numbers the records.  Native byte order:
 * the file never leaves this host.  A producer writes the whole record
 * before it moves head, and a SIGKILL stops a process between two of its
 * stores, never inside one, so the next start finds every record below
 * head whole; the checksum and sequence catch anything else (a power cut,
 * a damaged file) and recovery stops at the first bad record.
 *
 * The file is filled with zeros when made (fallocated first, only to fail
 * early on a full disk), so that its blocks are allocated and written: a
 * store through the mapping then never makes the file system allocate or
 * convert a block.  The
 * mapping is locked in memory when the limits allow, so that a page is
 * never read back from disk under a pump.
 */
#include "pipeline/outbox_ring.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#define HDR_BYTES 4096
#define MAGIC "DMOUTBX1"
#define SIZE_MIN (64 << 10)
#define SIZE_LIMIT (1ULL << 30)

struct ring_hdr {
	char magic[8];
	uint64_t size;
	uint64_t head, tail;
	uint64_t head_seq, tail_seq;
};

struct rec_hdr {
	uint32_t len;
	uint32_t crc;
	uint64_t seq;
	uint64_t conn_id;
	int64_t time_ms;
	uint8_t kind, dir;
	uint16_t listener_len, peer_len, builder;
	char id[EVENT_ID_MAX];
};

#define CRC_SKIP offsetof(struct rec_hdr, seq)

static void
copy_in(struct ring *r, uint64_t pos, const void *p, size_t n)
{
	size_t off = (size_t)(pos % r->size), first = r->size - off;

	if (n <= first) {
		memcpy(r->data + off, p, n);
	} else {
		memcpy(r->data + off, p, first);
		memcpy(r->data, (const uint8_t *)p + first, n - first);
	}
}

static void
copy_out(const struct ring *r, uint64_t pos, void *p, size_t n)
{
	size_t off = (size_t)(pos % r->size), first = r->size - off;

	if (n <= first) {
		memcpy(p, r->data + off, n);
	} else {
		memcpy(p, r->data + off, first);
		memcpy((uint8_t *)p + first, r->data, n - first);
	}
}

static bool
hdr_valid(const struct ring_hdr *h, off_t file_size)
{
	return memcmp(h->magic, MAGIC, sizeof h->magic) == 0 &&
	    h->size >= SIZE_MIN && h->size <= SIZE_LIMIT &&
	    (uint64_t)file_size == HDR_BYTES + h->size &&
	    h->tail <= h->head && h->head - h->tail <= h->size &&
	    h->tail_seq <= h->head_seq;
}

/* A new file of zeros with an empty ring, put in place by rename. */
static int
make_file(const char *path, char *why, size_t whylen)
{
	static const uint8_t zeros[64 << 10];
	struct ring_hdr h = {.size = RING_SIZE};
	char tmp[4096];
	uint64_t left = HDR_BYTES + (uint64_t)RING_SIZE;
	int fd;

	memcpy(h.magic, MAGIC, sizeof h.magic);
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		snprintf(why, whylen, "%s: path too long", path);
		return -1;
	}
	if ((fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		goto fail;
	/* Fail at once on a full disk, rather than after filling it. */
	if ((errno = posix_fallocate(fd, 0, (off_t)left)) != 0 &&
	    errno != EOPNOTSUPP && errno != EINVAL)
		goto fail;
	while (left > 0) {
		ssize_t w = write(fd, zeros, left < sizeof zeros ? left :
		    sizeof zeros);
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0)
			errno = EIO;
		if (w <= 0)
			goto fail;
		left -= (uint64_t)w;
	}
	if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
	    fdatasync(fd) != 0 || rename(tmp, path) != 0)
		goto fail;
	return fd;
fail:
	snprintf(why, whylen, "%s: %s", path, strerror(errno));
	if (fd >= 0) {
		close(fd);
		(void)unlink(tmp);
	}
	return -1;
}

/* The existing file if it holds a valid ring; else -1, why set unless
 * there is no file. */
static int
open_file(const char *path, char *why, size_t whylen)
{
	struct ring_hdr h;
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0 && errno == ENOENT)
		return -1;
	if (fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &h, sizeof h, 0) ==
	    (ssize_t)sizeof h && hdr_valid(&h, st.st_size))
		return fd;
	snprintf(why, whylen, "%s: unreadable or not an outbox file: made "
	    "anew, what it held is lost", path);
	if (fd >= 0)
		close(fd);
	return -1;
}

int
ring_open(struct ring *r, const char *path, char *why, size_t whylen)
{
	struct stat st;
	void *p = MAP_FAILED;
	int fd;

	why[0] = '\0';
	memset(r, 0, sizeof *r);
	if ((fd = open_file(path, why, whylen)) < 0)
		fd = make_file(path, why, whylen);
	if (fd >= 0) {
		if (fstat(fd, &st) == 0)
			p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
			    MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
		else
			r->map_len = (size_t)st.st_size;
		close(fd);
	}
	if (p == MAP_FAILED) {
		struct ring_hdr h = {.size = RING_SIZE};

		r->map_len = HDR_BYTES + RING_SIZE;
		p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -1;
		memcpy(h.magic, MAGIC, sizeof h.magic);
		memcpy(p, &h, sizeof h);
		r->in_memory = true;
	}
	r->hdr = p;
	r->data = (uint8_t *)p + HDR_BYTES;
	r->size = r->hdr->size;
	r->locked = mlock(p, r->map_len) == 0;
	return 0;
}

void
ring_close(struct ring *r)
{
	if (r->hdr != NULL)
		munmap(r->hdr, r->map_len);
	r->hdr = NULL;
}

bool
ring_put(struct ring *r, const struct ring_rec *rec)
{
	struct ring_hdr *h = r->hdr;
	struct rec_hdr rh;
	size_t ll = rec->listener ? strlen(rec->listener) + 1 : 0;
	size_t pl = rec->peer ? strlen(rec->peer) + 1 : 0;
	size_t total = sizeof rh + ll + pl + rec->len;
	uLong crc;

	if (total > RING_RECORD_MAX || ll > UINT16_MAX || pl > UINT16_MAX ||
	    h->head - h->tail + total > r->size)
		return false;
	memset(&rh, 0, sizeof rh);
	rh.len = (uint32_t)total;
	rh.seq = h->head_seq;
	rh.conn_id = rec->conn_id;
	rh.time_ms = rec->time_ms;
	rh.kind = (uint8_t)rec->kind;
	rh.dir = (uint8_t)rec->dir;
	rh.listener_len = (uint16_t)ll;
	rh.peer_len = (uint16_t)pl;
	rh.builder = (uint16_t)rec->builder;
	memcpy(rh.id, rec->id, sizeof rh.id);
	/* Not crc32() of a NULL: that is zlib's "start again". */
	crc = crc32(0, (const Bytef *)&rh + CRC_SKIP, sizeof rh - CRC_SKIP);
	if (ll > 0)
		crc = crc32(crc, (const Bytef *)rec->listener, (uInt)ll);
	if (pl > 0)
		crc = crc32(crc, (const Bytef *)rec->peer, (uInt)pl);
	if (rec->len > 0)
		crc = crc32(crc, rec->body, (uInt)rec->len);
	rh.crc = (uint32_t)crc;
	copy_in(r, h->head, &rh, sizeof rh);
	if (ll > 0)
		copy_in(r, h->head + sizeof rh, rec->listener, ll);
	if (pl > 0)
		copy_in(r, h->head + sizeof rh + ll, rec->peer, pl);
	if (rec->len > 0)
		copy_in(r, h->head + sizeof rh + ll + pl, rec->body, rec->len);
	/* Only now: what is below head is whole. */
	h->head += total;
	h->head_seq++;
	return true;
}

bool
ring_empty(const struct ring *r)
{
	return r->hdr->head == r->hdr->tail;
}

void
ring_tail(const struct ring *r, uint64_t *pos, uint64_t *seq)
{
	*pos = r->hdr->tail;
	*seq = r->hdr->tail_seq;
}

void
ring_head(const struct ring *r, uint64_t *pos, uint64_t *seq)
{
	*pos = r->hdr->head;
	*seq = r->hdr->head_seq;
}

size_t
ring_read(const struct ring *r, uint64_t pos, uint64_t end, uint64_t seq,
    struct ring_rec *rec, uint8_t *scratch)
{
	struct rec_hdr rh;
	size_t n, ll, pl;
	uLong crc;

	if (end < pos || end - pos < sizeof rh)
		return 0;
	copy_out(r, pos, &rh, sizeof rh);
	if (rh.len < sizeof rh || rh.len > RING_RECORD_MAX ||
	    rh.len > end - pos || rh.seq != seq)
		return 0;
	n = rh.len - sizeof rh;
	ll = rh.listener_len;
	pl = rh.peer_len;
	copy_out(r, pos + sizeof rh, scratch, n);
	crc = crc32(0, (const Bytef *)&rh + CRC_SKIP, sizeof rh - CRC_SKIP);
	if (n > 0)
		crc = crc32(crc, scratch, (uInt)n);
	if ((uint32_t)crc != rh.crc || ll + pl > n ||
	    (ll > 0 && scratch[ll - 1] != '\0') ||
	    (pl > 0 && scratch[ll + pl - 1] != '\0') ||
	    memchr(rh.id, '\0', sizeof rh.id) == NULL ||
	    rh.kind < RING_EVENT || rh.kind > RING_JOB)
		return 0;
	rec->kind = (enum ring_kind)rh.kind;
	rec->builder = rh.builder;
	rec->dir = rh.dir;
	rec->conn_id = rh.conn_id;
	rec->time_ms = rh.time_ms;
	memcpy(rec->id, rh.id, sizeof rec->id);
	rec->listener = ll > 0 ? (const char *)scratch : NULL;
	rec->peer = pl > 0 ? (const char *)scratch + ll : NULL;
	rec->body = scratch + ll + pl;
	rec->len = n - ll - pl;
	return rh.len;
}

void
ring_commit(struct ring *r, uint64_t pos, uint64_t seq)
{
	r->hdr->tail = pos;
	r->hdr->tail_seq = seq;
}

void
ring_cut(struct ring *r, uint64_t pos, uint64_t seq)
{
	r->hdr->head = pos;
	r->hdr->head_seq = seq;
}

uint64_t
ring_room(const struct ring *r)
{
	return r->size - (r->hdr->head - r->hdr->tail);
}
