/*
 * solarman.h - the Solarman V5 stream decoder (docs/solarman-v5.md).  Pure:
 * no I/O, no threads, no logging; it allocates only to hold a frame that a
 * chunk cuts off, and only as many bytes as that frame claims.
 *
 * One solarman_stream per direction of a connection takes bytes in any
 * chunking and calls back with every complete, validated frame, and with
 * every rejected candidate (the caller logs and counts).
 */
#ifndef DEYE_SOLARMAN_H
#define DEYE_SOLARMAN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/span.h"

#define SOLARMAN_START 0xa5
#define SOLARMAN_END 0x15
#define SOLARMAN_OVERHEAD 13    /* header 11, checksum, end */
#define SOLARMAN_FRAME_MAX 4096 /* anything longer is garbage */

enum solarman_reject {
	SOLARMAN_BAD_LENGTH,   /* claims more than SOLARMAN_FRAME_MAX */
	SOLARMAN_BAD_CHECKSUM,
	SOLARMAN_BAD_END,
	SOLARMAN_TRUNCATED,    /* the stream ended inside it (or no memory) */
	SOLARMAN_REJECT_KINDS
};

struct solarman_stats {
	uint64_t bytes;    /* fed */
	uint64_t frames;   /* valid frames delivered */
	uint64_t skipped;  /* bytes that were not part of a valid frame */
	uint64_t rejects[SOLARMAN_REJECT_KINDS];
};

struct solarman_handler {
	void (*frame)(void *ctx, const uint8_t *frame, size_t len);
	void (*reject)(void *ctx, enum solarman_reject why);
	void *ctx;
};

struct solarman_stream {
	struct solarman_stats stats;
	/* In a reject callback: the stream offset (0 = the first byte fed) of
	 * the rejected candidate's first byte, so a caller can say where. */
	uint64_t reject_at;
	uint64_t held_at;  /* stream offset of buf[0] */
	size_t len;        /* bytes held in buf */
	size_t cap;        /* bytes buf can hold: at most SOLARMAN_FRAME_MAX */
	uint8_t *buf;      /* an incomplete candidate frame, or NULL */
};

/* Ready to take a stream's first byte; solarman_stream_free() when done. */
void solarman_stream_init(struct solarman_stream *s);
/* Let go of the held bytes' buffer (the stats stay). */
void solarman_stream_free(struct solarman_stream *s);
void solarman_stream_feed(struct solarman_stream *s, const uint8_t *in,
    size_t n, const struct solarman_handler *h);
/* End of stream: rescan what is held, so frames inside a false candidate
 * (a stray 0xA5 claiming a long length) are still found. */
void solarman_stream_finish(struct solarman_stream *s,
    const struct solarman_handler *h);
const char *solarman_reject_name(enum solarman_reject why);

/* The header of a validated frame. */
struct solarman_frame {
	uint16_t control; /* bytes 3-4, LE: 0x4210 is data */
	uint8_t type;     /* byte 4 */
	uint8_t seq[2];   /* bytes 5 and 6 */
	uint32_t serial;  /* logger serial */
	struct span payload;
};

/* Split a frame delivered by the stream; 0, or -1 if it is not one. */
int solarman_frame_parse(const uint8_t *frame, size_t len,
    struct solarman_frame *f);
#define SOLARMAN_REPLY_LEN 23

/*
 * The time reply a cloud sends to a logger frame (docs/solarman-v5.md,
 * section 9): type - 0x30, byte 5 + 1, byte 6 echoed, the serial, payload
 * byte 0, 0x01, the Unix time and the offset in minutes.  Returns
 * SOLARMAN_REPLY_LEN, or 0 for a
 * frame that is not a logger request (handshake, data, wifi, command,
 * heartbeat, report) and gets no answer.
 */
size_t solarman_time_reply(const uint8_t *req, size_t len, uint32_t unix_time,
    int32_t tz_minutes, uint8_t out[SOLARMAN_REPLY_LEN]);

/* Checksum of frame bytes 1 .. len-3 (everything but start, sum, end). */
uint8_t solarman_checksum(const uint8_t *frame, size_t len);

#endif
