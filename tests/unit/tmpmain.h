/*
 * tmpmain.h: main() of a unit test program whose tests work in a
 * temporary directory of their own (test_store.c, test_audit.c).
 */
#ifndef SPRO_TESTS_TMPMAIN_H
#define SPRO_TESTS_TMPMAIN_H

#include <stddef.h>

#include "check.h"

/* Creates the directory $TMPDIR/<prefix>-XXXXXX (/tmp when TMPDIR is not
 * set), its path into tmp (cap bytes), initialises the crypto library and
 * sets umask 077, runs the tests with check_run(tests, n, argc, argv), then
 * removes the directory (a failure to remove it is reported on stderr, not
 * in the status).  Returns check_run's exit status, or 1 without running
 * any test if the directory or the crypto library could not be set up. */
int spro_test_main_in_tmp(const char *prefix, char *tmp, size_t cap, const struct check_test *tests,
                          size_t n, int argc, char **argv);

#endif
