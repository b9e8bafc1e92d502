/* check.c: the runner behind check.h. */
#include "check.h"

#include <stdlib.h>

int check__failed;

static void hexdump(const char *name, const unsigned char *p, size_t n)
{
    fprintf(stderr, "  %s (%zu bytes):", name, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%02x", i % 32 == 0 ? "\n    " : "", p[i]);
    fputc('\n', stderr);
}

int check__bytes_equal(const void *a, size_t alen, const void *b, size_t blen, const char *an,
                       const char *bn, const char *file, int line)
{
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0))
        return 1;
    fprintf(stderr, "%s:%d: bytes differ: %s vs %s\n", file, line, an, bn);
    hexdump(an, a, alen);
    hexdump(bn, b, blen);
    return 0;
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int check_run(const struct check_test *tests, size_t n, int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        check__failed = 0;
        tests[i].fn();
        if (check__failed) {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        } else {
            printf("ok   %s\n", tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    if (passed + failed == 0) {
        fprintf(stderr, "no test selected\n");
        return 1;
    }
    return failed ? 1 : 0;
}

int check_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
