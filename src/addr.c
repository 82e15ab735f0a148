/*
 * addr.c - parsing and printing of the addresses the configuration names:
 * "host:port" upstreams, numeric listen addresses, CIDR ranges and the allow
 * list checked at accept.  No I/O: every function is a pure transformation,
 * and errors are returned as text for the caller to place (file:line).
 *
 * A peer that reaches a dual-stack [::] listener over IPv4 appears as an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d); it is treated as the IPv4
 * address everywhere here, so "192.168.0.0/16" matches it.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int
addr_split(const char *s, char *host, size_t hostlen, uint16_t *port,
    bool allow_zero, char *err, size_t errlen)
{
	const char *in = s, *p, *colon;
	size_t hl;
	char *end;
	long v;

	if (s[0] == '[') {
		p = strchr(s, ']');
		if (p == NULL || p[1] != ':') {
			snprintf(err, errlen, "'%s': expected [address]:port", s);
			return -1;
		}
		hl = (size_t)(p - s - 1);
		s++;
		colon = p + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "'%s': expected host:port", s);
			return -1;
		}
		if (strstr(s, "://") != NULL) {
			snprintf(err, errlen,
			    "'%s': expected host:port, without a scheme (://)", s);
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			snprintf(err, errlen,
			    "'%s': write IPv6 addresses as [address]:port", s);
			return -1;
		}
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen) {
		snprintf(err, errlen, "'%s': %s host", in,
		    hl == 0 ? "missing" : "overlong");
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	/* Digits only: strtol() alone would skip blanks and take a sign. */
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno != 0 ||
	    v > 65535 || (v == 0 && !allow_zero)) {
		snprintf(err, errlen, "'%s': port must be a number from %d to 65535",
		    colon + 1, allow_zero ? 0 : 1);
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

int
addr_parse_numeric(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	char host[ADDR_HOST_MAX];
	uint16_t port;

	if (addr_split(s, host, sizeof host, &port, true, err, errlen) != 0)
		return -1;
	memset(ss, 0, sizeof *ss);
	if (s[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			snprintf(err, errlen,
			    "'%s': not a numeric IPv4 address (IPv6: [address]:port)",
			    host);
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(err, errlen, "'%s': not a numeric IPv6 address",
			    host);
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof *sin6;
	}
	return 0;
}

/* The address bytes, with IPv4-mapped IPv6 folded to IPv4. */
static int
addr_bytes(const struct sockaddr *sa, const uint8_t **bytes)
{
	if (sa->sa_family == AF_INET) {
		*bytes = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b =
		    ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(b, v4mapped_prefix, 12) == 0) {
			*bytes = b + 12;
			return AF_INET;
		}
		*bytes = b;
		return AF_INET6;
	}
	return -1;
}

uint16_t
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

void
addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char h[INET6_ADDRSTRLEN];
	const uint8_t *b = NULL;
	int fam = addr_bytes(sa, &b);

	if (fam < 0 || inet_ntop(fam, b, h, sizeof h) == NULL) {
		snprintf(buf, len, "?");
		return;
	}
	if (fam == AF_INET)
		snprintf(buf, len, "%s:%u", h, addr_port(sa));
	else
		snprintf(buf, len, "[%s]:%u", h, addr_port(sa));
}

bool
addr_equal(const struct sockaddr *a, const struct sockaddr *b, bool with_port)
{
	const uint8_t *ab = NULL, *bb = NULL;
	int af = addr_bytes(a, &ab), bf = addr_bytes(b, &bb);

	if (af < 0 || af != bf)
		return false;
	if (memcmp(ab, bb, af == AF_INET ? 4 : 16) != 0)
		return false;
	return !with_port || addr_port(a) == addr_port(b);
}

bool
addr_is_wildcard(const struct sockaddr *sa)
{
	static const uint8_t zero[16];
	const uint8_t *b = NULL;
	int fam = addr_bytes(sa, &b);

	if (sa->sa_family == AF_INET6 && fam == AF_INET6)
		return memcmp(b, zero, 16) == 0;
	return fam == AF_INET && memcmp(b, zero, 4) == 0;
}

bool
addr_is_loopback(const struct sockaddr *sa)
{
	static const uint8_t one[16] = {[15] = 1};
	const uint8_t *b = NULL;
	int fam = addr_bytes(sa, &b);

	if (fam == AF_INET)
		return b[0] == 127;
	return fam == AF_INET6 && memcmp(b, one, 16) == 0;
}

int
cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max;

	memset(c, 0, sizeof *c);
	if (hl == 0 || hl >= sizeof host) {
		snprintf(err, errlen, "'%s': not an address/prefix", s);
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
		if (memcmp(c->addr, v4mapped_prefix, 12) == 0) {
			snprintf(err, errlen,
			    "'%s': write IPv4-mapped ranges as IPv4", s);
			return -1;
		}
	} else {
		snprintf(err, errlen, "'%s': not a numeric IP address", host);
		return -1;
	}
	c->prefix = max;
	if (slash != NULL) {
		char *end;
		long v;

		errno = 0;
		v = strtol(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
		    errno != 0 || v < 0 || v > (long)max) {
			snprintf(err, errlen, "'%s': prefix length must be 0 to %u",
			    s, max);
			return -1;
		}
		c->prefix = (unsigned)v;
	}
	/* Keep only the network part, so printing shows what is matched. */
	for (unsigned i = 0; i < max / 8; i++) {
		unsigned keep = c->prefix > i * 8 ? c->prefix - i * 8 : 0;
		if (keep < 8)
			c->addr[i] &= (uint8_t)(0xff00u >> keep);
	}
	return 0;
}

void
cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char h[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, h, sizeof h) == NULL)
		snprintf(h, sizeof h, "?");
	snprintf(buf, len, "%s/%u", h, c->prefix);
}

bool
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t *b = NULL;
	unsigned full, rest;

	if (addr_bytes(sa, &b) != c->family)
		return false;
	full = c->prefix / 8;
	rest = c->prefix % 8;
	if (memcmp(b, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((b[full] ^ c->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

int
allow_parse(const char *s, struct allow_list *al, char *err, size_t errlen)
{
	struct allow_list out = {NULL, 0};
	const char *p = s;

	while (*p != '\0') {
		char item[INET6_ADDRSTRLEN + 8];
		size_t n = strcspn(p, ", \t");
		struct cidr *v;

		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof item) {
			snprintf(err, errlen, "'%.*s': not an address/prefix",
			    (int)(n > 60 ? 60 : n), p);
			goto fail;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		p += n;
		v = realloc(out.v, (out.n + 1) * sizeof *v);
		if (v == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		out.v = v;
		if (cidr_parse(item, &out.v[out.n], err, errlen) != 0)
			goto fail;
		out.n++;
	}
	if (out.n == 0) {
		snprintf(err, errlen, "empty list: nobody could connect");
		goto fail;
	}
	*al = out;
	return 0;
fail:
	free(out.v);
	return -1;
}

bool
allow_match(const struct allow_list *al, const struct sockaddr *sa)
{
	for (size_t i = 0; i < al->n; i++)
		if (cidr_match(&al->v[i], sa))
			return true;
	return false;
}

void
allow_free(struct allow_list *al)
{
	free(al->v);
	al->v = NULL;
	al->n = 0;
}
