/*
 * proto.c - the table of protocols, indexed by conf.c's enum proto.
 *
 * The index is also the id of a protocol's event builder in outbox
 * records, which outlive the process: append, never renumber.
 */
#include "proto/proto.h"

#include <stddef.h>

extern const struct proto_ops proto_solarman; /* solarman_tap.c */
extern const struct proto_ops proto_envoy;    /* envoy_tap.c */
extern const struct proto_ops proto_raw;      /* below */

/* Relayed as it is: nothing to decode (capture still works). */
const struct proto_ops proto_raw = {.name = "raw"};

static const struct proto_ops *const protos[] = {
	[PROTO_SOLARMAN] = &proto_solarman,
	[PROTO_ENVOY] = &proto_envoy,
	[PROTO_RAW] = &proto_raw,
};

#define NPROTOS (sizeof protos / sizeof protos[0])

const struct proto_ops *
proto_get(int protocol)
{
	if (protocol < 0 || (size_t)protocol >= NPROTOS)
		return &proto_raw;
	return protos[protocol];
}

int
proto_count(void)
{
	return (int)NPROTOS;
}

void
proto_register_builders(void)
{
	for (size_t i = 0; i < NPROTOS; i++)
		if (protos[i]->build != NULL)
			outbox_register((unsigned)i, protos[i]->build);
	outbox_register(PROTO_BUILDER_CONNECTION, tap_connection_build);
}
