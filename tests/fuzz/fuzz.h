/*
 * fuzz.h - the libFuzzer entry point, declared for the harnesses and for
 * replay.c, which calls it without libFuzzer.
 */
#ifndef DEYE_FUZZ_H
#define DEYE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
