/*
 * test_server_units.c: the pure parts of server/: the key table behind
 * connection counts and sessions (checked against a simple reference model
 * under random operations) and option parsing (defaults, config file, command line,
 * and every kind of bad value).
 */
#include "check.h"
#include "server/keytab.h"
#include "server/server.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- keytab against a reference: an array of values per key. ---- */

#define NKEYS 40

static void key_of(int i, uint8_t a[16])
{
    memset(a, 0, 16);
    a[10] = a[11] = 0xff;
    a[12] = 10, a[13] = (uint8_t)(i >> 8), a[14] = (uint8_t)i, a[15] = (uint8_t)(i * 7);
}

static void test_keytab_matches_reference(void)
{
    /* A small table (16 slots for 8 keys) forces long probe runs,
     * wrap-around and backward shifts. */
    struct spro_keytab *t = spro_keytab_create(8);
    uint64_t ref[NKEYS] = {0};
    size_t present = 0;
    srand(12345);
    for (int step = 0; step < 200000; step++) {
        int i = rand() % NKEYS;
        uint8_t k[16];
        key_of(i, k);
        uint64_t v = rand() % 3 == 0 ? 0 : (uint64_t)rand() + 1;
        int rc = spro_keytab_set(t, k, v);
        bool fits = ref[i] != 0 || v == 0 || present < 8;
        if (fits != (rc == 0)) {
            spro_keytab_destroy(t);
            CHECK__FAIL("step %d: set returned %d with %zu present", step, rc, present);
        }
        if (rc == 0) {
            present += (ref[i] == 0 && v != 0) - (ref[i] != 0 && v == 0);
            ref[i] = v;
        }
        if (spro_keytab_count(t) != present) {
            spro_keytab_destroy(t);
            CHECK__FAIL("step %d: count %zu, reference %zu", step, spro_keytab_count(t), present);
        }
        if (step % 97 == 0) {
            for (int j = 0; j < NKEYS; j++) {
                key_of(j, k);
                if (spro_keytab_get(t, k) != ref[j]) {
                    spro_keytab_destroy(t);
                    CHECK__FAIL("step %d: key %d differs from the reference", step, j);
                }
            }
        }
    }
    spro_keytab_destroy(t);
}

/* ---- options ---- */

static int load(struct spro_server_config *c, const char **args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "spro-server";
    for (; args[argc - 1] != NULL; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    return spro_server_config_load(c, argc, argv);
}

static void test_config_defaults(void)
{
    struct spro_server_config c;
    const char *args[] = {NULL};
    CHECK_EQ(load(&c, args), 0);
    CHECK_STR(c.data_dir, "./var");
    CHECK_STR(c.listen_host, "127.0.0.1");
    CHECK_EQ(c.listen_port, 8080);
    CHECK_EQ(c.max_body, 8 << 20);
    CHECK(!c.http2);
    CHECK(!c.bench);
    CHECK_EQ(c.max_connections, 1024);
    CHECK_EQ(c.max_conn_per_addr, 64);
    CHECK_EQ(c.rewrap_budget, 250);
    CHECK_EQ(c.audit_checkpoint_interval, 300);
}

static void test_config_flags(void)
{
    struct spro_server_config c;
    const char *args[] = {"--data",
                          "/srv/x",
                          "--listen=[::1]:0",
                          "--http2",
                          "--max-body",
                          "2M",
                          "--max-connections=10",
                          "--log-level",
                          "debug",
                          "--rewrap-budget",
                          "0",
                          NULL};
    CHECK_EQ(load(&c, args), 0);
    CHECK_EQ(c.rewrap_budget, 0);
    CHECK_STR(c.data_dir, "/srv/x");
    CHECK_STR(c.listen_host, "::1");
    CHECK_EQ(c.listen_port, 0);
    CHECK(c.http2);
    CHECK_EQ(c.max_body, 2 << 20);
    CHECK_EQ(c.max_connections, 10);
    CHECK_EQ(c.log_level, SPRO_LOG_DEBUG);
}

static void test_config_file_and_precedence(void)
{
    char path[] = "/tmp/spro-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "# comment\n"
                       "data = /from/file   # trailing comment\n"
                       "max-connections = 7\n"
                       "http2\n"
                       "\n"
                       "bench = false\n"
                       "request-timeout = 3\n";
    CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct spro_server_config c;
    const char *args[] = {"--max-connections", "9", "--config", path, NULL};
    int rc = load(&c, args);
    unlink(path);
    CHECK_EQ(rc, 0);
    CHECK_STR(c.data_dir, "/from/file");
    CHECK_EQ(c.max_connections, 9); /* the command line wins, wherever it stands */
    CHECK(c.http2);
    CHECK(!c.bench);
    CHECK_EQ(c.request_timeout, 3);
}

static void test_config_rejects_bad_input(void)
{
    static const char *const bad[][4] = {
        {"--max-body", "12Q", NULL},
        {"--max-body", "10", NULL}, /* below 1 KiB */
        {"--max-connections", "0", NULL},
        {"--max-connections", "-1", NULL},
        {"--max-connections", "99999999999999", NULL},
        {"--listen", "127.0.0.1", NULL}, /* no port */
        {"--listen", "127.0.0.1:70000", NULL},
        {"--listen", "[::1:80", NULL},
        {"--log-level", "loud", NULL},
        {"--rewrap-budget", "1001", NULL}, /* more than a second a second */
        {"--http2=maybe", NULL},
        {"--workers", NULL}, /* missing value */
        {"--nope", NULL},
        {"stray", NULL},
        {"--tls-cert", "c.pem", NULL}, /* without --tls-key */
        {"--config", "/nonexistent/spro.conf", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct spro_server_config c;
        if (load(&c, (const char **)bad[i]) != SPRO_ECONFIG)
            CHECK__FAIL("accepted: %s %s", bad[i][0], bad[i][1] ? bad[i][1] : "");
    }
}

static void test_config_file_errors_name_the_line(void)
{
    char path[] = "/tmp/spro-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "data = /x\nmax-body = huge\n";
    CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    /* stderr names path:2; here we only check the refusal itself. */
    struct spro_server_config c;
    const char *args[] = {"--config", path, NULL};
    int rc = load(&c, args);
    unlink(path);
    CHECK_EQ(rc, SPRO_ECONFIG);
}

static const struct check_test tests[] = {
    {"keytab_matches_reference", test_keytab_matches_reference},
    {"config_defaults", test_config_defaults},
    {"config_flags", test_config_flags},
    {"config_file_and_precedence", test_config_file_and_precedence},
    {"config_rejects_bad_input", test_config_rejects_bad_input},
    {"config_file_errors_name_the_line", test_config_file_errors_name_the_line},
};

CHECK_MAIN(tests)
