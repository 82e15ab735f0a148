/*
 * check_addr.c - unit tests of addr.c: host:port splitting, numeric listen
 * addresses, printing and comparing socket addresses, CIDR ranges and the
 * allow list.
 *
 * Everything here is numbers in sockaddrs: nothing is resolved, bound or
 * contacted.  Each group is a table walked by tcase_add_loop_test, so a new
 * case is one more row.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <check.h>

#include "addr.h"
#include "conf.h"
#include "suites.h"
#include "sinks/sink.h"

#define NELEM(a) (sizeof (a) / sizeof (a)[0])

/*
 * A sockaddr from text: "1.2.3.4" is AF_INET, anything with a ':' AF_INET6
 * ("::ffff:1.2.3.4" being the IPv4-mapped form a dual-stack socket reports),
 * "unix" an AF_UNIX address.
 */
static const struct sockaddr *
mk_sa(struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	memset(ss, 0, sizeof *ss);
	if (strcmp(addr, "unix") == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof sun->sun_path, "/tmp/x.sock");
	} else if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		ck_assert_msg(inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1,
		    "test table: bad IPv6 '%s'", addr);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		ck_assert_msg(inet_pton(AF_INET, addr, &sin->sin_addr) == 1,
		    "test table: bad IPv4 '%s'", addr);
	}
	return (const struct sockaddr *)ss;
}

/* ---- addr_split ---- */

static const struct {
	const char *in;
	bool allow_zero;
	const char *host;
	unsigned port;
} split_ok[] = {
	{"example.com:10000", false, "example.com", 10000},
	{"5406.deviceaccess.host:10000", false, "5406.deviceaccess.host", 10000},
	{"1.2.3.4:1", false, "1.2.3.4", 1},
	{"h:65535", false, "h", 65535},
	{"h:0", true, "h", 0},
	{"[::1]:8080", false, "::1", 8080},
	{"[::]:10000", false, "::", 10000},
	{"[fe80::1]:80", false, "fe80::1", 80},
	{"[2001:db8::1]:65535", false, "2001:db8::1", 65535},
	{"[::ffff:192.0.2.1]:443", false, "::ffff:192.0.2.1", 443},
};

START_TEST(test_split_ok)
{
	char host[ADDR_HOST_MAX] = "", err[CONF_ERR_MAX] = "";
	uint16_t port = 12345;
	int rc = addr_split(split_ok[_i].in, host, sizeof host, &port,
	    split_ok[_i].allow_zero, err, sizeof err);

	ck_assert_msg(rc == 0, "'%s': %s", split_ok[_i].in, err);
	ck_assert_str_eq(host, split_ok[_i].host);
	ck_assert_uint_eq(port, split_ok[_i].port);
}
END_TEST

static const struct {
	const char *in;
	bool allow_zero;
	const char *err;
} split_bad[] = {
	{"example.com", false, "'example.com': expected host:port"},
	{"", false, "'': expected host:port"},
	{"example.com:", false, "'': port must be a number from 1 to 65535"},
	{":80", false, "':80': missing host"},
	{"::1:80", false, "'::1:80': write IPv6 addresses as [address]:port"},
	{"fe80::1:80", false, "'fe80::1:80': write IPv6 addresses as [address]:port"},
	{"[::1]", false, "'[::1]': expected [address]:port"},
	{"[::1]80", false, "'[::1]80': expected [address]:port"},
	{"[::1:80", false, "'[::1:80': expected [address]:port"},
	{"[::1]:", false, "'': port must be a number from 1 to 65535"},
	/* The input is quoted as written, brackets included. */
	{"[]:80", false, "'[]:80': missing host"},
	{"h:0", false, "'0': port must be a number from 1 to 65535"},
	{"h:65536", false, "'65536': port must be a number from 1 to 65535"},
	{"h:65536", true, "'65536': port must be a number from 0 to 65535"},
	{"h:-1", true, "'-1': port must be a number from 0 to 65535"},
	{"h:+80", false, "'+80': port must be a number from 1 to 65535"},
	{"h: 80", false, "' 80': port must be a number from 1 to 65535"},
	/* Any blank before the port, not only a space. */
	{"h:\t80", false, "'\t80': port must be a number from 1 to 65535"},
	{"h:\n80", false, "'\n80': port must be a number from 1 to 65535"},
	{"h:80x", false, "'80x': port must be a number from 1 to 65535"},
	{"h:80 ", false, "'80 ': port must be a number from 1 to 65535"},
	{"h:0x50", false, "'0x50': port must be a number from 1 to 65535"},
	{"h:99999999999999999999", false,
	    "'99999999999999999999': port must be a number from 1 to 65535"},
};

START_TEST(test_split_bad)
{
	char host[ADDR_HOST_MAX] = "", err[CONF_ERR_MAX] = "";
	uint16_t port = 0;
	int rc = addr_split(split_bad[_i].in, host, sizeof host, &port,
	    split_bad[_i].allow_zero, err, sizeof err);

	ck_assert_msg(rc == -1, "'%s' accepted as host '%s' port %u",
	    split_bad[_i].in, host, port);
	ck_assert_str_eq(err, split_bad[_i].err);
}
END_TEST

/* The host buffer's size is the limit: 255 characters fit in 256. */
START_TEST(test_split_host_length)
{
	char in[ADDR_HOST_MAX + 16], host[ADDR_HOST_MAX], err[CONF_ERR_MAX];
	char want[CONF_ERR_MAX];
	uint16_t port = 0;

	memset(in, 'a', ADDR_HOST_MAX - 1);
	snprintf(in + ADDR_HOST_MAX - 1, 16, ":80");
	ck_assert_int_eq(addr_split(in, host, sizeof host, &port, false, err,
	    sizeof err), 0);
	ck_assert_uint_eq(strlen(host), ADDR_HOST_MAX - 1);
	ck_assert_uint_eq(port, 80);

	memset(in, 'a', ADDR_HOST_MAX);
	snprintf(in + ADDR_HOST_MAX, 16, ":80");
	ck_assert_int_eq(addr_split(in, host, sizeof host, &port, false, err,
	    sizeof err), -1);
	snprintf(want, sizeof want, "'%s': overlong host", in);
	ck_assert_str_eq(err, want);

	/* A smaller buffer moves the limit with it. */
	ck_assert_int_eq(addr_split("abcd:1", host, 5, &port, false, err,
	    sizeof err), 0);
	ck_assert_str_eq(host, "abcd");
	ck_assert_int_eq(addr_split("abcde:1", host, 5, &port, false, err,
	    sizeof err), -1);
	ck_assert_str_eq(err, "'abcde:1': overlong host");
}
END_TEST

/* ---- addr_parse_numeric, addr_format ---- */

static const struct {
	const char *in;
	int family;
	unsigned port;
	const char *printed;
} numeric_ok[] = {
	{"0.0.0.0:10000", AF_INET, 10000, "0.0.0.0:10000"},
	{"127.0.0.1:19000", AF_INET, 19000, "127.0.0.1:19000"},
	{"127.0.0.1:0", AF_INET, 0, "127.0.0.1:0"},
	{"255.255.255.255:65535", AF_INET, 65535, "255.255.255.255:65535"},
	{"[::]:10000", AF_INET6, 10000, "[::]:10000"},
	{"[::1]:8080", AF_INET6, 8080, "[::1]:8080"},
	{"[2001:DB8:0:0::1]:443", AF_INET6, 443, "[2001:db8::1]:443"},
	/* Stays an IPv6 socket address, prints as the IPv4 it carries. */
	{"[::ffff:192.0.2.1]:80", AF_INET6, 80, "192.0.2.1:80"},
};

START_TEST(test_numeric_ok)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char err[CONF_ERR_MAX] = "", buf[ADDR_STR_MAX];

	memset(&ss, 0xa5, sizeof ss);
	ck_assert_msg(addr_parse_numeric(numeric_ok[_i].in, &ss, &len, err,
	    sizeof err) == 0, "'%s': %s", numeric_ok[_i].in, err);
	ck_assert_int_eq(ss.ss_family, numeric_ok[_i].family);
	ck_assert_uint_eq(len, numeric_ok[_i].family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(addr_port((struct sockaddr *)&ss), numeric_ok[_i].port);
	addr_format((struct sockaddr *)&ss, buf, sizeof buf);
	ck_assert_str_eq(buf, numeric_ok[_i].printed);
	if (numeric_ok[_i].family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		/* No stale bytes in what bind() will read. */
		ck_assert_uint_eq(sin6->sin6_flowinfo, 0);
		ck_assert_uint_eq(sin6->sin6_scope_id, 0);
	} else {
		const struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		static const char zero[sizeof sin->sin_zero];
		ck_assert_mem_eq(sin->sin_zero, zero, sizeof zero);
	}
}
END_TEST

static const struct {
	const char *in;
	const char *err;
} numeric_bad[] = {
	{"localhost:10000",
	    "'localhost': not a numeric IPv4 address (IPv6: [address]:port)"},
	{"1.2.3:80", "'1.2.3': not a numeric IPv4 address (IPv6: [address]:port)"},
	{"256.0.0.1:80",
	    "'256.0.0.1': not a numeric IPv4 address (IPv6: [address]:port)"},
	{"[localhost]:1", "'localhost': not a numeric IPv6 address"},
	{"[1.2.3.4]:1", "'1.2.3.4': not a numeric IPv6 address"},
	{"[fe80::1%eth0]:80", "'fe80::1%eth0': not a numeric IPv6 address"},
	{":::10000", "':::10000': write IPv6 addresses as [address]:port"},
	{"0.0.0.0", "'0.0.0.0': expected host:port"},
	{"0.0.0.0:65536", "'65536': port must be a number from 0 to 65535"},
	{"0.0.0.0:-1", "'-1': port must be a number from 0 to 65535"},
};

START_TEST(test_numeric_bad)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char err[CONF_ERR_MAX] = "";

	ck_assert_msg(addr_parse_numeric(numeric_bad[_i].in, &ss, &len, err,
	    sizeof err) == -1, "'%s' accepted", numeric_bad[_i].in);
	ck_assert_str_eq(err, numeric_bad[_i].err);
}
END_TEST

static const struct {
	const char *addr;
	uint16_t port;
	const char *printed;
} format_cases[] = {
	{"192.168.1.100", 43122, "192.168.1.100:43122"},
	{"0.0.0.0", 0, "0.0.0.0:0"},
	{"2001:db8::1", 443, "[2001:db8::1]:443"},
	{"::", 10000, "[::]:10000"},
	{"::ffff:192.168.1.100", 43122, "192.168.1.100:43122"},
	{"::ffff:0.0.0.0", 1, "0.0.0.0:1"},
	/* Only ::ffff:0:0/96 is IPv4-mapped, not its neighbours. */
	{"::fffe:c0a8:164", 1, "[::fffe:c0a8:164]:1"},
	{"::1:ffff:c0a8:164", 1, "[::1:ffff:c0a8:164]:1"},
	{"unix", 0, "?"},
};

START_TEST(test_format)
{
	struct sockaddr_storage ss;
	char buf[ADDR_STR_MAX];

	memset(buf, 'x', sizeof buf);
	addr_format(mk_sa(&ss, format_cases[_i].addr, format_cases[_i].port),
	    buf, sizeof buf);
	ck_assert_str_eq(buf, format_cases[_i].printed);
}
END_TEST

/* A short buffer is truncated and terminated, never overrun. */
START_TEST(test_format_truncates)
{
	struct sockaddr_storage ss;
	char buf[16];

	memset(buf, 'x', sizeof buf);
	addr_format(mk_sa(&ss, "192.168.1.100", 43122), buf, 8);
	ck_assert_str_eq(buf, "192.168");
	ck_assert_int_eq(buf[8], 'x');
}
END_TEST

/* ---- addr_equal, addr_is_wildcard, addr_is_loopback, addr_port ---- */

static const struct {
	const char *a;
	uint16_t ap;
	const char *b;
	uint16_t bp;
	bool with_port;
	bool equal;
} equal_cases[] = {
	{"1.2.3.4", 1, "1.2.3.4", 1, true, true},
	{"1.2.3.4", 1, "1.2.3.4", 2, false, true},
	{"1.2.3.4", 1, "1.2.3.4", 2, true, false},
	{"1.2.3.4", 1, "1.2.3.5", 1, false, false},
	{"1.2.3.4", 1, "::ffff:1.2.3.4", 1, true, true},
	{"::ffff:1.2.3.4", 7, "1.2.3.4", 7, true, true},
	{"::ffff:1.2.3.4", 7, "1.2.3.4", 8, true, false},
	{"::ffff:1.2.3.4", 7, "::ffff:1.2.3.5", 7, false, false},
	{"::1", 5, "::1", 5, true, true},
	{"::1", 5, "::2", 5, false, false},
	{"::1", 5, "0.0.0.1", 5, false, false},
	{"::", 5, "0.0.0.0", 5, false, false},
	{"2001:db8::1", 5, "2001:db8::1:0", 5, false, false},
	{"unix", 0, "unix", 0, false, false},
	{"unix", 0, "0.0.0.0", 0, false, false},
};

START_TEST(test_equal)
{
	struct sockaddr_storage a, b;
	bool eq = addr_equal(mk_sa(&a, equal_cases[_i].a, equal_cases[_i].ap),
	    mk_sa(&b, equal_cases[_i].b, equal_cases[_i].bp),
	    equal_cases[_i].with_port);

	ck_assert_msg(eq == equal_cases[_i].equal, "%s:%u vs %s:%u (ports %s): %s",
	    equal_cases[_i].a, equal_cases[_i].ap, equal_cases[_i].b,
	    equal_cases[_i].bp, equal_cases[_i].with_port ? "compared" : "ignored",
	    eq ? "equal" : "different");
	/* Symmetric. */
	eq = addr_equal((const struct sockaddr *)&b, (const struct sockaddr *)&a,
	    equal_cases[_i].with_port);
	ck_assert(eq == equal_cases[_i].equal);
}
END_TEST

static const struct {
	const char *addr;
	bool wildcard, loopback;
} kind_cases[] = {
	{"0.0.0.0", true, false},
	{"::", true, false},
	{"::ffff:0.0.0.0", true, false},
	{"0.0.0.1", false, false},
	{"::1", false, true},
	{"::2", false, false},
	{"1.2.3.4", false, false},
	{"127.0.0.1", false, true},
	{"127.0.0.0", false, true},
	{"127.255.255.254", false, true},
	{"126.255.255.255", false, false},
	{"128.0.0.1", false, false},
	{"::ffff:127.0.0.1", false, true},
	{"::ffff:10.0.0.1", false, false},
	/* The IPv4-compatible ::127.0.0.1 is an IPv6 address, not loopback. */
	{"::127.0.0.1", false, false},
	{"fe80::1", false, false},
	{"unix", false, false},
};

START_TEST(test_wildcard_loopback)
{
	struct sockaddr_storage ss;
	const struct sockaddr *sa = mk_sa(&ss, kind_cases[_i].addr, 10000);

	ck_assert_msg(addr_is_wildcard(sa) == kind_cases[_i].wildcard,
	    "addr_is_wildcard(%s)", kind_cases[_i].addr);
	ck_assert_msg(addr_is_loopback(sa) == kind_cases[_i].loopback,
	    "addr_is_loopback(%s)", kind_cases[_i].addr);
}
END_TEST

START_TEST(test_port)
{
	struct sockaddr_storage ss;

	ck_assert_uint_eq(addr_port(mk_sa(&ss, "1.2.3.4", 10000)), 10000);
	ck_assert_uint_eq(addr_port(mk_sa(&ss, "::1", 65535)), 65535);
	ck_assert_uint_eq(addr_port(mk_sa(&ss, "::ffff:1.2.3.4", 258)), 258);
	ck_assert_uint_eq(addr_port(mk_sa(&ss, "unix", 0)), 0);
}
END_TEST

/* ---- cidr_parse, cidr_format ---- */

static const struct {
	const char *in;
	int family;
	unsigned prefix;
	const char *printed; /* host bits cleared */
} cidr_ok[] = {
	{"10.0.0.0/8", AF_INET, 8, "10.0.0.0/8"},
	{"10.1.2.3/8", AF_INET, 8, "10.0.0.0/8"},
	{"172.31.255.255/12", AF_INET, 12, "172.16.0.0/12"},
	{"255.255.255.255/12", AF_INET, 12, "255.240.0.0/12"},
	{"192.168.1.255/31", AF_INET, 31, "192.168.1.254/31"},
	{"192.168.1.255/32", AF_INET, 32, "192.168.1.255/32"},
	{"192.0.2.77", AF_INET, 32, "192.0.2.77/32"},
	{"255.255.255.255/0", AF_INET, 0, "0.0.0.0/0"},
	{"3.255.255.255/7", AF_INET, 7, "2.0.0.0/7"},
	{"10.0.0.0/08", AF_INET, 8, "10.0.0.0/8"},
	{"::1", AF_INET6, 128, "::1/128"},
	{"::1/128", AF_INET6, 128, "::1/128"},
	{"::/0", AF_INET6, 0, "::/0"},
	{"ffff::1/0", AF_INET6, 0, "::/0"},
	{"fdff:1234::1/7", AF_INET6, 7, "fc00::/7"},
	{"febf:ffff::1/10", AF_INET6, 10, "fe80::/10"},
	{"2001:db8::1/127", AF_INET6, 127, "2001:db8::/127"},
	{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/33", AF_INET6, 33,
	    "2001:db8:8000::/33"},
};

START_TEST(test_cidr_ok)
{
	struct cidr c;
	char err[CONF_ERR_MAX] = "", buf[64];

	ck_assert_msg(cidr_parse(cidr_ok[_i].in, &c, err, sizeof err) == 0,
	    "'%s': %s", cidr_ok[_i].in, err);
	ck_assert_int_eq(c.family, cidr_ok[_i].family);
	ck_assert_uint_eq(c.prefix, cidr_ok[_i].prefix);
	cidr_format(&c, buf, sizeof buf);
	ck_assert_str_eq(buf, cidr_ok[_i].printed);
}
END_TEST

static const struct {
	const char *in;
	const char *err;
} cidr_bad[] = {
	{"", "'': not an address/prefix"},
	{"/8", "'/8': not an address/prefix"},
	{"abc", "'abc': not a numeric IP address"},
	{"abc/8", "'abc': not a numeric IP address"},
	{"lan", "'lan': not a numeric IP address"},
	{"1.2.3/8", "'1.2.3': not a numeric IP address"},
	{"10.0.0.0 /8", "'10.0.0.0 ': not a numeric IP address"},
	{"1.2.3.4/33", "'1.2.3.4/33': prefix length must be 0 to 32"},
	{"1.2.3.4/", "'1.2.3.4/': prefix length must be 0 to 32"},
	{"1.2.3.4/-1", "'1.2.3.4/-1': prefix length must be 0 to 32"},
	{"1.2.3.4/+8", "'1.2.3.4/+8': prefix length must be 0 to 32"},
	{"1.2.3.4/ 8", "'1.2.3.4/ 8': prefix length must be 0 to 32"},
	{"1.2.3.4/8x", "'1.2.3.4/8x': prefix length must be 0 to 32"},
	{"1.2.3.4/8/9", "'1.2.3.4/8/9': prefix length must be 0 to 32"},
	{"1.2.3.4/99999999999999999999",
	    "'1.2.3.4/99999999999999999999': prefix length must be 0 to 32"},
	{"::/129", "'::/129': prefix length must be 0 to 128"},
	{"::1/", "'::1/': prefix length must be 0 to 128"},
	{"::ffff:10.0.0.0/104", "'::ffff:10.0.0.0/104': write IPv4-mapped ranges as IPv4"},
	{"::ffff:0:0/96", "'::ffff:0:0/96': write IPv4-mapped ranges as IPv4"},
	{"::ffff:192.168.1.1", "'::ffff:192.168.1.1': write IPv4-mapped ranges as IPv4"},
	{"fe80::1%eth0/64", "'fe80::1%eth0': not a numeric IP address"},
	/* Longer than any numeric address. */
	{"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000/8",
	    "'0000:0000:0000:0000:0000:0000:0000:0000:0000:0000/8': not an address/prefix"},
};

START_TEST(test_cidr_bad)
{
	struct cidr c;
	char err[CONF_ERR_MAX] = "";

	ck_assert_msg(cidr_parse(cidr_bad[_i].in, &c, err, sizeof err) == -1,
	    "'%s' accepted", cidr_bad[_i].in);
	ck_assert_str_eq(err, cidr_bad[_i].err);
}
END_TEST

/* ---- cidr_match ---- */

static const struct {
	const char *cidr;
	const char *peer;
	bool match;
} match_cases[] = {
	/* /0: everything of the same family, nothing of the other. */
	{"0.0.0.0/0", "0.0.0.0", true},
	{"0.0.0.0/0", "255.255.255.255", true},
	{"0.0.0.0/0", "::ffff:8.8.8.8", true},
	{"0.0.0.0/0", "::1", false},
	{"0.0.0.0/0", "::", false},
	{"::/0", "::", true},
	{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	{"::/0", "8.8.8.8", false},
	{"::/0", "::ffff:8.8.8.8", false},
	/* /7 */
	{"fc00::/7", "fc00::", true},
	{"fc00::/7", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	{"fc00::/7", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
	{"fc00::/7", "fe00::", false},
	{"2.0.0.0/7", "2.0.0.0", true},
	{"2.0.0.0/7", "3.255.255.255", true},
	{"2.0.0.0/7", "1.255.255.255", false},
	{"2.0.0.0/7", "4.0.0.0", false},
	/* /8 */
	{"10.0.0.0/8", "10.0.0.0", true},
	{"10.0.0.0/8", "10.255.255.255", true},
	{"10.0.0.0/8", "9.255.255.255", false},
	{"10.0.0.0/8", "11.0.0.0", false},
	{"10.0.0.0/8", "::ffff:10.1.2.3", true},
	{"10.0.0.0/8", "::ffff:11.0.0.0", false},
	{"10.0.0.0/8", "a00::", false},
	/* /10 */
	{"fe80::/10", "fe80::1", true},
	{"fe80::/10", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	{"fe80::/10", "fec0::", false},
	{"fe80::/10", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
	/* /12 */
	{"172.16.0.0/12", "172.16.0.0", true},
	{"172.16.0.0/12", "172.31.255.255", true},
	{"172.16.0.0/12", "172.15.255.255", false},
	{"172.16.0.0/12", "172.32.0.0", false},
	{"172.16.0.0/12", "::ffff:172.20.1.1", true},
	/* /31 */
	{"192.168.1.254/31", "192.168.1.254", true},
	{"192.168.1.254/31", "192.168.1.255", true},
	{"192.168.1.254/31", "192.168.1.253", false},
	{"192.168.1.254/31", "192.168.2.0", false},
	/* /32 */
	{"192.0.2.1/32", "192.0.2.1", true},
	{"192.0.2.1/32", "192.0.2.0", false},
	{"192.0.2.1/32", "192.0.2.2", false},
	{"192.0.2.1/32", "::ffff:192.0.2.1", true},
	/* /127 */
	{"2001:db8::/127", "2001:db8::", true},
	{"2001:db8::/127", "2001:db8::1", true},
	{"2001:db8::/127", "2001:db8::2", false},
	{"2001:db8::/127", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false},
	/* /128 */
	{"::1/128", "::1", true},
	{"::1/128", "::", false},
	{"::1/128", "::2", false},
	{"::1/128", "::ffff:127.0.0.1", false},
	{"::1/128", "127.0.0.1", false},
	{"::1/128", "0.0.0.1", false},
	/* Not IP at all. */
	{"0.0.0.0/0", "unix", false},
	{"::/0", "unix", false},
};

START_TEST(test_cidr_match)
{
	struct cidr c;
	struct sockaddr_storage ss;
	char err[CONF_ERR_MAX] = "";
	bool m;

	ck_assert_msg(cidr_parse(match_cases[_i].cidr, &c, err, sizeof err) == 0,
	    "'%s': %s", match_cases[_i].cidr, err);
	m = cidr_match(&c, mk_sa(&ss, match_cases[_i].peer, 4321));
	ck_assert_msg(m == match_cases[_i].match, "%s %s %s",
	    match_cases[_i].peer, m ? "matched" : "did not match",
	    match_cases[_i].cidr);
}
END_TEST

/* ---- allow_parse, allow_match ---- */

/* The default of conf.c's allow key, as conf_new(sinks_sections()) sets it. */
static const struct {
	const char *peer;
	bool allowed;
} default_allow[] = {
	{"10.1.2.3", true},
	{"10.255.255.255", true},
	{"11.0.0.1", false},
	{"172.16.0.1", true},
	{"172.31.255.255", true},
	{"172.15.255.255", false},
	{"172.32.0.0", false},
	{"192.168.1.100", true},
	{"192.169.0.1", false},
	{"169.254.1.1", true},
	{"169.255.0.1", false},
	{"127.0.0.1", true},
	{"127.255.255.254", true},
	{"100.64.0.1", false},
	{"0.0.0.0", false},
	{"8.8.8.8", false},
	{"::1", true},
	{"::", false},
	{"::2", false},
	{"fd00::1", true},
	{"fc00::1", true},
	{"fe80::1", true},
	{"fec0::1", false},
	{"2001:db8::1", false},
	{"2606:4700:4700::1111", false},
	{"::ffff:192.168.1.100", true},
	{"::ffff:127.0.0.1", true},
	{"::ffff:8.8.8.8", false},
	{"unix", false},
};

START_TEST(test_allow_default)
{
	struct conf *c = conf_new(sinks_sections());
	struct sockaddr_storage ss;
	bool m;

	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->allow.n, 8);
	m = allow_match(&c->allow, mk_sa(&ss, default_allow[_i].peer, 4321));
	conf_free(c);
	ck_assert_msg(m == default_allow[_i].allowed, "%s %s by the default allow",
	    default_allow[_i].peer, m ? "allowed" : "refused");
}
END_TEST

static const struct {
	const char *in;
	size_t n;
	const char *printed; /* the ranges, ", "-joined */
} allow_ok[] = {
	{"10.0.0.0/8", 1, "10.0.0.0/8"},
	{"1.2.3.4", 1, "1.2.3.4/32"},
	{"10.0.0.0/8,192.168.0.0/16", 2, "10.0.0.0/8, 192.168.0.0/16"},
	{"10.0.0.0/8 192.168.0.0/16", 2, "10.0.0.0/8, 192.168.0.0/16"},
	{"10.0.0.0/8\t192.168.0.0/16", 2, "10.0.0.0/8, 192.168.0.0/16"},
	{" , 10.0.0.0/8 ,,\t ::1 , ", 2, "10.0.0.0/8, ::1/128"},
	{"10.9.9.9/8, 10.0.0.0/8", 2, "10.0.0.0/8, 10.0.0.0/8"},
	{"0.0.0.0/0, ::/0", 2, "0.0.0.0/0, ::/0"},
};

START_TEST(test_allow_parse_ok)
{
	struct allow_list al = {NULL, 0};
	char err[CONF_ERR_MAX] = "", buf[256] = "", one[64];
	size_t len = 0;

	ck_assert_msg(allow_parse(allow_ok[_i].in, &al, err, sizeof err) == 0,
	    "'%s': %s", allow_ok[_i].in, err);
	for (size_t i = 0; i < al.n; i++) {
		cidr_format(&al.v[i], one, sizeof one);
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s",
		    i ? ", " : "", one);
	}
	ck_assert_uint_eq(al.n, allow_ok[_i].n);
	allow_free(&al);
	ck_assert_ptr_null(al.v);
	ck_assert_uint_eq(al.n, 0);
	ck_assert_str_eq(buf, allow_ok[_i].printed);
}
END_TEST

static const struct {
	const char *in;
	const char *err;
} allow_bad[] = {
	{"", "empty list: nobody could connect"},
	{" , \t,", "empty list: nobody could connect"},
	{"10.0.0.0/8, bogus", "'bogus': not a numeric IP address"},
	{"10.0.0.0/8, 192.168.0.0/33", "'192.168.0.0/33': prefix length must be 0 to 32"},
	{"10.0.0.0/8;192.168.0.0/16",
	    "'10.0.0.0/8;192.168.0.0/16': prefix length must be 0 to 32"},
	{"::ffff:10.0.0.0/104", "'::ffff:10.0.0.0/104': write IPv4-mapped ranges as IPv4"},
	/* An item longer than any address is cut to 60 characters. */
	{"10.0.0.0/8, 0000000000000000000000000000000000000000000000000000000000000000000001",
	    "'000000000000000000000000000000000000000000000000000000000000': "
	    "not an address/prefix"},
};

START_TEST(test_allow_parse_bad)
{
	struct cidr sentinel;
	struct allow_list al = {&sentinel, 42};
	char err[CONF_ERR_MAX] = "";

	ck_assert_msg(allow_parse(allow_bad[_i].in, &al, err, sizeof err) == -1,
	    "'%s' accepted", allow_bad[_i].in);
	ck_assert_str_eq(err, allow_bad[_i].err);
	/* A failed parse leaves the list it would have replaced alone. */
	ck_assert_ptr_eq(al.v, &sentinel);
	ck_assert_uint_eq(al.n, 42);
}
END_TEST

START_TEST(test_allow_match_custom)
{
	struct allow_list al = {NULL, 0};
	struct sockaddr_storage ss;
	char err[CONF_ERR_MAX] = "";

	ck_assert_int_eq(allow_parse("192.0.2.0/24 2001:db8::/32", &al, err,
	    sizeof err), 0);
	ck_assert(allow_match(&al, mk_sa(&ss, "192.0.2.200", 1)));
	ck_assert(allow_match(&al, mk_sa(&ss, "::ffff:192.0.2.200", 1)));
	ck_assert(allow_match(&al, mk_sa(&ss, "2001:db8:1::5", 1)));
	ck_assert(!allow_match(&al, mk_sa(&ss, "192.0.3.1", 1)));
	ck_assert(!allow_match(&al, mk_sa(&ss, "2001:db9::1", 1)));
	ck_assert(!allow_match(&al, mk_sa(&ss, "127.0.0.1", 1)));
	allow_free(&al);
	/* An empty list allows nobody. */
	ck_assert(!allow_match(&al, mk_sa(&ss, "192.0.2.200", 1)));
}
END_TEST

Suite *
addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc;

	tc = tcase_create("split");
	tcase_add_loop_test(tc, test_split_ok, 0, NELEM(split_ok));
	tcase_add_loop_test(tc, test_split_bad, 0, NELEM(split_bad));
	tcase_add_test(tc, test_split_host_length);
	suite_add_tcase(s, tc);

	tc = tcase_create("numeric");
	tcase_add_loop_test(tc, test_numeric_ok, 0, NELEM(numeric_ok));
	tcase_add_loop_test(tc, test_numeric_bad, 0, NELEM(numeric_bad));
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_loop_test(tc, test_format, 0, NELEM(format_cases));
	tcase_add_test(tc, test_format_truncates);
	suite_add_tcase(s, tc);

	tc = tcase_create("compare");
	tcase_add_loop_test(tc, test_equal, 0, NELEM(equal_cases));
	tcase_add_loop_test(tc, test_wildcard_loopback, 0, NELEM(kind_cases));
	tcase_add_test(tc, test_port);
	suite_add_tcase(s, tc);

	tc = tcase_create("cidr");
	tcase_add_loop_test(tc, test_cidr_ok, 0, NELEM(cidr_ok));
	tcase_add_loop_test(tc, test_cidr_bad, 0, NELEM(cidr_bad));
	tcase_add_loop_test(tc, test_cidr_match, 0, NELEM(match_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("allow");
	tcase_add_loop_test(tc, test_allow_default, 0, NELEM(default_allow));
	tcase_add_loop_test(tc, test_allow_parse_ok, 0, NELEM(allow_ok));
	tcase_add_loop_test(tc, test_allow_parse_bad, 0, NELEM(allow_bad));
	tcase_add_test(tc, test_allow_match_custom);
	suite_add_tcase(s, tc);

	return s;
}
