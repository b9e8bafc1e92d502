/* tmpmain.c: see tmpmain.h. */
#include "tmpmain.h"

#include "crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int spro_test_main_in_tmp(const char *prefix, char *tmp, size_t cap, const struct check_test *tests,
                          size_t n, int argc, char **argv)
{
    snprintf(tmp, cap, "%s/%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", prefix);
    if (mkdtemp(tmp) == NULL || spro_crypto_init() != 0)
        return 1;
    umask(077);
    int rc = check_run(tests, n, argc, argv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return rc;
}
