/*
 * span.h - untrusted bytes are read only through these bounds-checked
 * helpers (dropbear's buffer.h habit): every read names an offset, and a
 * read past the end fails instead of touching memory.
 */
#ifndef DEYE_SPAN_H
#define DEYE_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct span {
	const uint8_t *p;
	size_t n;
};

static inline bool
span_has(struct span s, size_t off, size_t len)
{
	return off <= s.n && len <= s.n - off;
}

static inline bool
span_u8(struct span s, size_t off, uint8_t *v)
{
	if (!span_has(s, off, 1))
		return false;
	*v = s.p[off];
	return true;
}

static inline bool
span_u16le(struct span s, size_t off, uint16_t *v)
{
	if (!span_has(s, off, 2))
		return false;
	*v = (uint16_t)(s.p[off] | s.p[off + 1] << 8);
	return true;
}

static inline bool
span_u16be(struct span s, size_t off, uint16_t *v)
{
	if (!span_has(s, off, 2))
		return false;
	*v = (uint16_t)(s.p[off] << 8 | s.p[off + 1]);
	return true;
}

static inline bool
span_u32le(struct span s, size_t off, uint32_t *v)
{
	if (!span_has(s, off, 4))
		return false;
	*v = (uint32_t)s.p[off] | (uint32_t)s.p[off + 1] << 8 |
	    (uint32_t)s.p[off + 2] << 16 | (uint32_t)s.p[off + 3] << 24;
	return true;
}

static inline bool
span_u32be(struct span s, size_t off, uint32_t *v)
{
	if (!span_has(s, off, 4))
		return false;
	*v = (uint32_t)s.p[off] << 24 | (uint32_t)s.p[off + 1] << 16 |
	    (uint32_t)s.p[off + 2] << 8 | (uint32_t)s.p[off + 3];
	return true;
}

/* A sub-span; empty when out of range. */
static inline struct span
span_sub(struct span s, size_t off, size_t len)
{
	struct span r = {NULL, 0};

	if (span_has(s, off, len)) {
		r.p = s.p + off;
		r.n = len;
	}
	return r;
}

#endif
