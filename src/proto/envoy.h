/*
 * envoy.h - what an Enphase Envoy's uploads say (docs/envoy.md): the bodies'
 * encodings, and the report XML as events.  Pure: no I/O, no logging.
 */
#ifndef DEYE_ENVOY_H
#define DEYE_ENVOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "event.h"

/*
 * Inflate a zlib stream (RFC 1950) into a new NUL-terminated buffer of at
 * most max bytes.  0, or -1 when it is not zlib, is damaged or truncated
 * (*over false), or inflates to more than max (*over true).
 */
int envoy_inflate(const uint8_t *in, size_t n, size_t max, uint8_t **out,
    size_t *outlen, bool *over);

/*
 * The value of field name in form data (a=1&body=...), percent-decoded
 * ("%XX", and "+" as a space) into a new NUL-terminated buffer.  0, or -1
 * when there is no such field.
 */
int envoy_form_field(const uint8_t *form, size_t n, const char *name,
    uint8_t **out, size_t *outlen);

/* One event made by envoy_report_events(), with its own time. */
typedef void envoy_emit_fn(void *arg, json_t *ev, int64_t time_ms);

struct envoy_report_ctx {
	struct event_meta meta; /* each event gets a new id in meta.id */
	const char *target;     /* the request target, for webcomm_version */
	const char *spool_name; /* or NULL */
};

/*
 * The most elements, and attributes in all, a report or a response may
 * have: a real report has a few elements per inverter and a few
 * attributes per element.  With no DOCTYPE allowed (so no entities), these
 * bound the memory a document takes to a small multiple of its size.
 */
#define ENVOY_ELEMENTS_MAX 20000
#define ENVOY_ATTRS_MAX 200000

/*
 * The events of a perf_report: one envoy_report, then one event per
 * device, interval, reading and event element, in document order after
 * the report.  Returns how many were emitted, or -1 with a reason in err
 * when the XML is not well-formed, has a DOCTYPE, more than
 * ENVOY_ELEMENTS_MAX elements or ENVOY_ATTRS_MAX attributes, or is not a
 * perf_report (nothing emitted).
 */
int envoy_report_events(const char *xml, size_t n, struct envoy_report_ctx *ctx,
    envoy_emit_fn *emit, void *arg, char *err, size_t errlen);

/*
 * The ids of a perf_report_response's <event id=.../>, space-separated
 * into buf (cut short with "..." when too long).  Returns how many, or -1
 * when it is not a well-formed perf_report_response.
 */
int envoy_response_ids(const char *xml, size_t n, char *buf, size_t len);

#endif
