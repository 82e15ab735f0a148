/* addr.h - host:port strings, CIDR ranges and the allow list.  Pure. */
#ifndef DEYE_ADDR_H
#define DEYE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_HOST_MAX 256
#define ADDR_STR_MAX 64 /* "[v6%scope]:port" */

/* Split "host:port" or "[v6]:port"; port 0..65535 (0 only if allow_zero). */
int addr_split(const char *s, char *host, size_t hostlen, uint16_t *port,
    bool allow_zero, char *err, size_t errlen);
/* A numeric address (listen = ...) into a sockaddr. */
int addr_parse_numeric(const char *s, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen);
/* "1.2.3.4:5", "[::1]:5"; an IPv4-mapped IPv6 address prints as IPv4. */
void addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* Same address (IPv4-mapped IPv6 equals its IPv4), ports compared when
 * with_port. */
bool addr_equal(const struct sockaddr *a, const struct sockaddr *b,
    bool with_port);
bool addr_is_wildcard(const struct sockaddr *sa);
bool addr_is_loopback(const struct sockaddr *sa);
uint16_t addr_port(const struct sockaddr *sa);

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct allow_list {
	struct cidr *v;
	size_t n;
};

int cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen);
void cidr_format(const struct cidr *c, char *buf, size_t len);
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* A list separated by commas and/or blanks. */
int allow_parse(const char *s, struct allow_list *al, char *err, size_t errlen);
bool allow_match(const struct allow_list *al, const struct sockaddr *sa);
void allow_free(struct allow_list *al);

#endif
