/*
 * test_admin.c: end-to-end tests of the spro-admin command line: init,
 * info, help on every command, and clear refusals of bad input.
 *
 * usage: test_e2e_admin SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int admin(char *out, size_t cap, const char *a1, const char *a2, const char *a3,
                 const char *a4)
{
    const char *argv[] = {h_admin_bin, a1, a2, a3, a4, NULL};
    return h_run(argv, out, cap);
}

static void test_init_then_info(void)
{
    char dir[600], out[4096], fp1[128] = "", fp2[128] = "";
    snprintf(dir, sizeof dir, "%s/fresh", h_tmpdir());
    CHECK_EQ(admin(out, sizeof out, "--data", dir, "init", NULL), 0);
    const char *p = strstr(out, "server key fingerprint: ");
    CHECK(p != NULL);
    sscanf(p + 24, "%127s", fp1);
    CHECK_EQ(strlen(fp1), 49);
    char key[700];
    snprintf(key, sizeof key, "%s/master.key", dir);
    struct stat st;
    CHECK_EQ(stat(key, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(admin(out, sizeof out, "--data", dir, "info", NULL), 0);
    CHECK(strstr(out, "schema: 1\n") != NULL);
    p = strstr(out, "server key fingerprint: ");
    CHECK(p != NULL);
    sscanf(p + 24, "%127s", fp2);
    CHECK_STR(fp1, fp2);
}

static void test_init_refuses_existing(void)
{
    char dir[600], out[4096], key[700];
    snprintf(dir, sizeof dir, "%s/twice", h_tmpdir());
    snprintf(key, sizeof key, "%s/master.key", dir);
    CHECK_EQ(admin(out, sizeof out, "--data", dir, "init", NULL), 0);
    struct stat before, after;
    CHECK_EQ(stat(key, &before), 0);
    CHECK_EQ(admin(out, sizeof out, "--data", dir, "init", NULL), 1);
    CHECK(strstr(out, "refusing to overwrite") != NULL);
    CHECK_EQ(stat(key, &after), 0);
    CHECK_EQ(before.st_ino, after.st_ino);
    CHECK_EQ(before.st_mtime, after.st_mtime);
}

static void test_info_refuses_missing(void)
{
    char dir[600], out[4096];
    snprintf(dir, sizeof dir, "%s/nowhere", h_tmpdir());
    CHECK_EQ(admin(out, sizeof out, "--data", dir, "info", NULL), 1);
    CHECK(strstr(out, "nowhere") != NULL);
    CHECK(access(dir, F_OK) != 0); /* not created by a read */
}

static void test_help_everywhere(void)
{
    char out[4096];
    CHECK_EQ(admin(out, sizeof out, "--help", NULL, NULL, NULL), 0);
    CHECK(strstr(out, "init") != NULL && strstr(out, "info") != NULL);
    CHECK_EQ(admin(out, sizeof out, "init", "--help", NULL, NULL), 0);
    CHECK(strstr(out, "usage: spro-admin --data DIR init") != NULL);
    CHECK_EQ(admin(out, sizeof out, "info", "--help", NULL, NULL), 0);
    CHECK(strstr(out, "usage: spro-admin --data DIR info") != NULL);
    CHECK_EQ(admin(out, sizeof out, "--version", NULL, NULL, NULL), 0);
    CHECK(strncmp(out, "spro-admin ", 11) == 0);
}

static void test_usage_errors(void)
{
    char out[4096];
    CHECK_EQ(admin(out, sizeof out, NULL, NULL, NULL, NULL), 2);
    CHECK(strstr(out, "usage:") != NULL);
    CHECK_EQ(admin(out, sizeof out, "frobnicate", NULL, NULL, NULL), 2);
    CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
    CHECK_EQ(admin(out, sizeof out, "--bogus", "init", NULL, NULL), 2);
    CHECK(strstr(out, "unknown option '--bogus'") != NULL);
    CHECK_EQ(admin(out, sizeof out, "--data", "", "init", NULL), 2);
    CHECK_EQ(admin(out, sizeof out, "init", "extra", NULL, NULL), 2);
    CHECK(strstr(out, "unexpected argument 'extra'") != NULL);
}

static const struct check_test tests[] = {
    {"init_then_info", test_init_then_info},
    {"init_refuses_existing", test_init_refuses_existing},
    {"info_refuses_missing", test_info_refuses_missing},
    {"help_everywhere", test_help_everywhere},
    {"usage_errors", test_usage_errors},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
