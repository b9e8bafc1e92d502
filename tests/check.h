/*
 * check.h: the assertions of every test program.
 *
 * A failed check prints where it failed and both sides, counts the failure
 * and returns from the current test function (tests return void).  A test
 * program lists its tests in a table and calls check_run(), which runs them
 * all, prints "N passed, N failed" and returns the process exit code.
 */
#ifndef SPRO_TESTS_CHECK_H
#define SPRO_TESTS_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern int check__failed; /* failures in the current test */

#define CHECK__FAIL(...)                                                                           \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        check__failed++;                                                                           \
        return;                                                                                    \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            CHECK__FAIL("check failed: %s", #cond);                                                \
    } while (0)

#define CHECK_INT(a, op, b)                                                                        \
    do {                                                                                           \
        int64_t check__a = (int64_t)(a), check__b = (int64_t)(b);                                  \
        if (!(check__a op check__b))                                                               \
            CHECK__FAIL("check failed: %s %s %s (%" PRId64 " vs %" PRId64 ")", #a, #op, #b,        \
                        check__a, check__b);                                                       \
    } while (0)

#define CHECK_EQ(a, b) CHECK_INT(a, ==, b)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *check__a = (a), *check__b = (b);                                               \
        if (check__a == NULL || check__b == NULL || strcmp(check__a, check__b) != 0)               \
            CHECK__FAIL("check failed: %s == %s (\"%s\" vs \"%s\")", #a, #b,                       \
                        check__a ? check__a : "(null)", check__b ? check__b : "(null)");           \
    } while (0)

/* Byte-exact comparison; on mismatch prints both sides in hex. */
#define CHECK_BYTES(a, alen, b, blen)                                                              \
    do {                                                                                           \
        if (!check__bytes_equal((a), (alen), (b), (blen), #a, #b, __FILE__, __LINE__)) {           \
            check__failed++;                                                                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

int check__bytes_equal(const void *a, size_t alen, const void *b, size_t blen, const char *an,
                       const char *bn, const char *file, int line);

/* Value of one hex digit (either case), or -1. */
int check_hexval(char c);

struct check_test {
    const char *name;
    void (*fn)(void);
};

/* Runs tests[0..n), or only those named on the command line. */
int check_run(const struct check_test *tests, size_t n, int argc, char **argv);

#define CHECK_MAIN(table)                                                                          \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return check_run(table, sizeof(table) / sizeof(table[0]), argc, argv);                     \
    }

#endif
