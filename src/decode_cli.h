/* decode_cli.h - deye-mitm --decode: frames from a file to JSON events. */
#ifndef DEYE_DECODE_CLI_H
#define DEYE_DECODE_CLI_H

#include <stdio.h>

/* Hex lines (# comments allowed) or raw binary in, one event per line
 * out.  Returns an exit status. */
int decode_run(FILE *in, const char *name, FILE *out);

#endif
