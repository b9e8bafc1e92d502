/*
 * test_keys.c: end-to-end tests of key rotation with real processes
 * (docs/CRYPTO.md, "Key rotation"): `spro-admin key rotate` while a device
 * pushes and pulls through a running spro-server, which re-wraps the data
 * keys in the background and destroys the old epoch (`key status`); a
 * `key rewrap` process and then the server itself killed (SIGKILL) in the
 * middle of a re-wrap, after which a restart completes it and every
 * beneficiary still pulls with its values; `key change-master`, after
 * which the server starts with the new key and refuses the old one.
 *
 * usage: test_e2e_keys SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "device.h"
#include "sync/store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NBENS 120   /* beneficiaries pushed through the server */
#define NBARE 40000 /* data keys added directly, to make a re-wrap last */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void value_of(char out[32], int i)
{
    snprintf(out, 32, "Prenom-%d", i);
}

static void ben_of(char out[37], int i)
{
    dv_uuid(out, 0x6b000000u + (uint32_t)i, 0x1234u * (uint32_t)(i + 1));
}

/* For dv_pull_all: counts in *good the beneficiaries 0..NBENS-1 whose
 * given_name came back as pushed. */
static void count_good(const struct spro_wire_record *rec, void *arg)
{
    int *good = arg;
    for (int k = 0; k < NBENS; k++) {
        char ben[37], val[32];
        ben_of(ben, k);
        value_of(val, k);
        if (!dv_bytes_is(rec->rid, ben))
            continue;
        for (size_t f = 0; f < rec->nfields; f++)
            if (dv_bytes_is(rec->fields[f].name, "given_name") && rec->fields[f].nsiblings == 1 &&
                dv_bytes_is(rec->fields[f].siblings[0].val.s, val))
                (*good)++;
    }
}

/* Pulls everything; counts the beneficiaries 0..NBENS-1 whose given_name
 * came back as pushed. */
static int pull_check(struct dv_env *e, struct dv_dev *d, int *good)
{
    *good = 0;
    return dv_pull_all(e, d, 100, count_good, good);
}

/* From `key status --json`: the current epoch, data keys in all and
 * under it, and whether epoch `gone` is destroyed. */
static int status(const char *dir, unsigned *current, long *total, long *under, unsigned gone,
                  int *destroyed)
{
    static char out[65536];
    if (h_admin(out, sizeof out, "--data", dir, "key", "status", "--json", NULL) != 0) {
        fprintf(stderr, "key status failed: %s\n", out);
        return -1;
    }
    if (sscanf(out, "{\"current\": %u, \"data_keys\": %ld, \"rewrapped\": %ld", current, total,
               under) != 3)
        return -1;
    char want[64];
    snprintf(want, sizeof want, "{\"epoch\": %u, \"state\": \"destroyed\"", gone);
    *destroyed = strstr(out, want) != NULL;
    return 0;
}

/* The data keys wrapped under epoch, read straight from DIR/keys.db (much
 * faster than a `key status` process: the kill below must land while a
 * re-wrap runs); -1 if it cannot be read. */
static long keys_under(const char *dir, unsigned epoch)
{
    char path[600];
    snprintf(path, sizeof path, "%s/keys.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM data_keys WHERE epoch = ?1", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_bind_int64(st, 1, epoch) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Waits (up to 60 s) until every data key is under the current epoch and
 * epoch `gone` is destroyed. */
static int wait_rewrapped(const char *dir, unsigned gone, long expect_total)
{
    for (int i = 0; i < 600; i++) {
        unsigned cur;
        long total, under;
        int destroyed;
        if (status(dir, &cur, &total, &under, gone, &destroyed) != 0)
            return -1;
        if (total != expect_total) {
            fprintf(stderr, "data keys: %ld, expected %ld\n", total, expect_total);
            return -1;
        }
        if (under == total && destroyed)
            return 0;
        sleep_ms(100);
    }
    return -1;
}

static int push_range(struct dv_env *e, struct dv_dev *d, int from, int to)
{
    for (int i = from; i < to; i++) {
        char ben[37], val[32];
        ben_of(ben, i);
        value_of(val, i);
        uint64_t seq = (uint64_t)i + 1;
        if (dv_push_ben(e, d, seq, ben, val, ((uint64_t)time(NULL) * 1000) << 16 | seq) != 0)
            return -1;
    }
    return 0;
}

static void test_rotate_while_pushing(void)
{
    struct dv_env e;
    struct dv_dev d;
    char out[4096];
    CHECK_EQ(dv_env_start(&e, "rotate", NULL), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/rotate", h_tmpdir());
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(push_range(&e, &d, 0, NBENS / 2), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "key", "rotate", NULL), 0);
    CHECK(strstr(out, "KEK epoch 2 is now active") != NULL);
    /* Pushes and pulls go on while the server re-wraps. */
    CHECK_EQ(push_range(&e, &d, NBENS / 2, NBENS), 0);
    int good;
    CHECK_EQ(pull_check(&e, &d, &good), 0);
    CHECK_EQ(good, NBENS);
    CHECK_EQ(wait_rewrapped(dir, 1, NBENS), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "key", "status", NULL), 0);
    CHECK(strstr(out, "current epoch 2: 120 of 120 data keys") != NULL);
    CHECK(strstr(out, "destroyed") != NULL);
    /* A new session: the server reads every key again, now under epoch 2. */
    dv_dev_end_session(&d);
    struct h_response r;
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    CHECK_EQ(pull_check(&e, &d, &good), 0);
    CHECK_EQ(good, NBENS);
    char *log = h_server_log(&e.srv);
    CHECK(strstr(log, "\"key_epoch_destroyed\"") != NULL);
    free(log);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

/* Adds n bare data keys (no record) under the active epoch, as pushes of
 * new beneficiaries would. */
static int add_bare_keys(struct spro_datadir *dd, int n)
{
    uint8_t kek[SPRO_KEY_BYTES], dk[SPRO_KEY_BYTES];
    uint32_t epoch;
    if (spro_keyring__current(dd, &epoch, kek) != 0)
        return -1;
    enum { B = 1000 };
    static char names[B][37];
    static uint8_t wrapped[B][SPRO_WRAPPED_KEY_BYTES];
    const char *bens[B];
    for (int i = 0; i < n; i += B) {
        int m = n - i < B ? n - i : B;
        for (int k = 0; k < m; k++) {
            dv_uuid(names[k], 0x7a000000u + (uint32_t)(i + k), 0x77u * (uint32_t)(i + k + 1));
            spro_field_key_new(dk);
            if (spro_field_key_wrap(wrapped[k], dk, kek, epoch, names[k]) != 0)
                return -1;
            bens[k] = names[k];
        }
        if (spro_store__data_keys_add(spro_datadir__keys(dd), bens,
                                      (const uint8_t(*)[SPRO_WRAPPED_KEY_BYTES])wrapped,
                                      (size_t)m) != 0)
            return -1;
    }
    spro_memzero(kek, sizeof kek);
    spro_memzero(dk, sizeof dk);
    return 0;
}

static pid_t spawn(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void test_kill_mid_rewrap(void)
{
    struct dv_env e;
    struct dv_dev d;
    char out[4096], dir[512];
    CHECK_EQ(dv_env_start(&e, "crash", NULL), 0);
    snprintf(dir, sizeof dir, "%s/crash", h_tmpdir());
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(push_range(&e, &d, 0, NBENS), 0);
    CHECK_EQ(add_bare_keys(e.dd, NBARE), 0);
    long total = NBENS + NBARE;
    CHECK_EQ(dv_env_stop(&e), 0); /* closes the test's own handle too */

    /* 1. A `key rewrap` process killed mid-way, no server running. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "key", "rotate", NULL), 0);
    /* Batches of 10, each its own fsync: thousands of commits, so that the
     * kill lands mid-way however fast the machine. */
    const char *argv[] = {h_admin_bin, "--data", dir, "key", "rewrap", "--batch", "10", NULL};
    pid_t pid = spawn(argv);
    CHECK(pid > 0);
    unsigned cur;
    long all, under = 0;
    int destroyed = 0;
    for (int i = 0; i < 20000 && under <= 0; i++) {
        sleep_ms(1);
        under = keys_under(dir, 2);
    }
    kill(pid, SIGKILL);
    int ws;
    waitpid(pid, &ws, 0);
    CHECK(WIFSIGNALED(ws)); /* killed, not finished */
    CHECK_EQ(status(dir, &cur, &all, &under, 1, &destroyed), 0);
    CHECK_EQ(cur, 2);
    CHECK_EQ(all, total); /* no key lost or doubled: each batch whole or absent */
    if (under == 0 || under == total)
        fprintf(stderr, "note: the kill came at %ld of %ld keys\n", under, total);
    CHECK(under < total);
    CHECK(!destroyed);

    /* 2. The server resumes it; killed in the middle, restarted, it ends it. */
    CHECK_EQ(h_server_start(&e.srv, dir, NULL), 0);
    for (int i = 0; i < 100; i++) {
        sleep_ms(20);
        CHECK_EQ(status(dir, &cur, &all, &under, 1, &destroyed), 0);
        if (under > total / 2)
            break;
    }
    h_server_kill(&e.srv);
    CHECK_EQ(status(dir, &cur, &all, &under, 1, &destroyed), 0);
    CHECK_EQ(all, total);
    CHECK_EQ(h_server_start(&e.srv, dir, NULL), 0);
    CHECK_EQ(wait_rewrapped(dir, 1, total), 0);

    /* Every beneficiary still pulls with its value (new session: the
     * server restarted). */
    struct h_response r;
    dv_dev_end_session(&d);
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    int good;
    CHECK_EQ(pull_check(&e, &d, &good), 0);
    CHECK_EQ(good, NBENS);

    /* 3. Once more, the server killed while the re-wrap it runs itself is
     * under way (rotation with the server up). */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "key", "rotate", NULL), 0);
    sleep_ms(1300);
    h_server_kill(&e.srv);
    CHECK_EQ(status(dir, &cur, &all, &under, 2, &destroyed), 0);
    CHECK_EQ(cur, 3);
    CHECK_EQ(all, total);
    CHECK_EQ(h_server_start(&e.srv, dir, NULL), 0);
    CHECK_EQ(wait_rewrapped(dir, 2, total), 0);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    CHECK_EQ(pull_check(&e, &d, &good), 0);
    CHECK_EQ(good, NBENS);
    dv_dev_end_session(&d);
    CHECK_EQ(h_server_stop(&e.srv, 5000), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "check", NULL), 0);
}

static void test_change_master(void)
{
    struct dv_env e;
    struct dv_dev d;
    char out[4096], dir[512], newkey[600], path[600], saved[600];
    CHECK_EQ(dv_env_start(&e, "master", NULL), 0);
    snprintf(dir, sizeof dir, "%s/master", h_tmpdir());
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(push_range(&e, &d, 0, NBENS), 0);
    /* Refused while the server (and this process) hold keys.db. */
    snprintf(newkey, sizeof newkey, "%s/new-master.key", h_tmpdir());
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "key", "change-master", "--new-master-key",
                     newkey, NULL),
             1);
    CHECK(strstr(out, "stop spro-server first") != NULL);
    CHECK_EQ(dv_env_stop(&e), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "key", "change-master", "--new-master-key",
                     newkey, NULL),
             0);
    struct stat st;
    CHECK_EQ(stat(newkey, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    /* The server starts with the new key; the device's data still pulls. */
    CHECK_EQ(h_server_start(&e.srv, dir, NULL), 0);
    struct h_response r;
    dv_dev_end_session(&d);
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    int good;
    CHECK_EQ(pull_check(&e, &d, &good), 0);
    CHECK_EQ(good, NBENS);
    dv_dev_end_session(&d);
    CHECK_EQ(h_server_stop(&e.srv, 5000), 0);
    /* The old key is refused. */
    snprintf(path, sizeof path, "%s/master.key", dir);
    snprintf(saved, sizeof saved, "%s/master.key.keep", h_tmpdir());
    CHECK_EQ(rename(path, saved), 0);
    snprintf(newkey, sizeof newkey, "%s/master.key.old", dir);
    CHECK_EQ(rename(newkey, path), 0);
    CHECK_EQ(h_server_start(&e.srv, dir, NULL), -1);
    char *log = h_server_log(&e.srv);
    CHECK(strstr(log, "data_dir_open_failed") != NULL);
    free(log);
    CHECK_EQ(rename(saved, path), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "check", NULL), 0);
}

static const struct check_test tests[] = {
    {"rotate_while_pushing", test_rotate_while_pushing},
    {"kill_mid_rewrap", test_kill_mid_rewrap},
    {"change_master", test_change_master},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
