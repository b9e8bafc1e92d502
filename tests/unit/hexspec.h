/*
 * hexspec.h: byte strings written as hex for the proto tests: pairs of hex
 * digits, whitespace ignored, "XX*N" for N copies of byte XX and "(...)*N"
 * for N copies of a group (groups do not nest).  A bad spec is a bug of the
 * test (SPRO_BUG).
 */
#ifndef SPRO_TESTS_HEXSPEC_H
#define SPRO_TESTS_HEXSPEC_H

#include <stddef.h>

#include "proto/proto.h"

/* Appends the bytes of s[0..n) to b. */
void spro_test_hex(const char *s, size_t n, struct spro_buf *b);

#endif
