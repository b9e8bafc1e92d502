/*
 * test_keys.c: key-encryption-key epochs (sync/keyring.c, docs/CRYPTO.md
 * "Key rotation"): wrapped KEKs, rotation, re-wrapping in bounded batches,
 * destruction only once unused, an unknown epoch as an integrity error,
 * keys.db migration 3 of a directory made before it (epoch 1 derived), and
 * the recovery of a change of the master key interrupted at each step.
 */
#include "check.h"
#include "sync/store.h"
#include "sync/sync.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static const char *path(const char *name)
{
    static char p[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", tmp, name);
    return p[i];
}

static void uuid(char out[37], uint32_t a)
{
    snprintf(out, 37, "%08x-0000-4000-8000-%012x", a, a * 7u);
}

/* Adds n data keys (beneficiaries base..base+n-1) under the active epoch;
 * their data keys in dks (n * 32 bytes) if not NULL. */
static int add_keys(struct spro_datadir *dd, uint32_t base, size_t n, uint8_t *dks)
{
    uint8_t kek[SPRO_KEY_BYTES], dk[SPRO_KEY_BYTES];
    uint32_t epoch;
    int rc = spro_keyring__current(dd, &epoch, kek);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char ben[37];
        uint8_t w[SPRO_WRAPPED_KEY_BYTES];
        uuid(ben, base + (uint32_t)i);
        spro_field_key_new(dk);
        if (dks != NULL)
            memcpy(dks + i * SPRO_KEY_BYTES, dk, SPRO_KEY_BYTES);
        if ((rc = spro_field_key_wrap(w, dk, kek, epoch, ben)) == 0)
            rc = spro_store__data_key_add(spro_datadir__keys(dd), ben, w);
    }
    return rc;
}

/* The data key of ben through the keyring, as the engine opens it. */
static int open_key(struct spro_datadir *dd, const char *ben, uint8_t dk[SPRO_KEY_BYTES])
{
    uint8_t w[SPRO_WRAPPED_KEY_BYTES], kek[SPRO_KEY_BYTES];
    int rc = spro_store__data_key_get(spro_datadir__keys(dd), ben, w);
    uint32_t epoch = spro_field_key_epoch(w, sizeof w);
    if (rc == 0)
        rc = spro_keyring__kek(dd, epoch, kek);
    if (rc == 0)
        rc = spro_field_key_unwrap(dk, w, sizeof w, kek, epoch, ben);
    return rc;
}

static uint64_t count(struct spro_datadir *dd, uint32_t epoch, const char **state)
{
    struct spro_key_epoch e[16];
    size_t n;
    if (spro_keys_status(dd, e, 16, &n) != 0)
        return UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (e[i].epoch == epoch) {
            if (state)
                *state = e[i].state;
            return e[i].data_keys;
        }
    if (state)
        *state = "absent";
    return 0;
}

static void test_wrapped_kek(void)
{
    uint8_t wk[32], kek[32], back[32], w[SPRO_WRAPPED_KEK_BYTES];
    spro_crypto_random(wk, sizeof wk);
    spro_crypto_random(kek, sizeof kek);
    CHECK_EQ(spro_field_kek_wrap(w, kek, wk, 7), 0);
    CHECK_EQ(w[0], 1);
    CHECK_EQ(spro_field_kek_unwrap(back, w, sizeof w, wk, 7), 0);
    CHECK_BYTES(back, 32, kek, 32);
    CHECK_EQ(spro_field_kek_unwrap(back, w, sizeof w, wk, 8), SPRO_EINTEGRITY); /* another epoch */
    CHECK_EQ(spro_field_kek_unwrap(back, w, sizeof w - 1, wk, 7), SPRO_EINTEGRITY);
    w[40] ^= 1;
    CHECK_EQ(spro_field_kek_unwrap(back, w, sizeof w, wk, 7), SPRO_EINTEGRITY);
    CHECK_EQ(spro_field_kek_wrap(w, kek, wk, 0), SPRO_ERANGE);
    spro_field_root_wrap(w, kek, wk);
    CHECK_EQ(spro_field_root_unwrap(back, w, sizeof w, wk), 0);
    CHECK_BYTES(back, 32, kek, 32);
    CHECK_EQ(spro_field_kek_unwrap(back, w, sizeof w, wk, 1), SPRO_EINTEGRITY); /* not a KEK */
    /* Every purpose has its own context. */
    const char *ctx[] = {SPRO_KDF_CTX_KEY_WRAP, SPRO_KDF_CTX_SERVER_KEYS, SPRO_KDF_CTX_KEK,
                         SPRO_KDF_CTX_BLIND,    SPRO_KDF_CTX_QUARANTINE,  SPRO_KDF_CTX_ENROL,
                         SPRO_KDF_CTX_AUDIT};
    for (size_t i = 0; i < sizeof ctx / sizeof ctx[0]; i++) {
        CHECK_EQ(strlen(ctx[i]), 8);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(ctx[i], ctx[j]) != 0);
    }
}

static void test_rotate_rewrap_destroy(void)
{
    char why[512];
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_init(path("rot"), why, sizeof why), 0);
    CHECK_EQ(spro_datadir_open(path("rot"), &dd, why, sizeof why), 0);
    const char *state;
    CHECK_EQ(count(dd, 1, &state), 0);
    CHECK_STR(state, "active");
    uint8_t dks[25 * 32], dk[32];
    CHECK_EQ(add_keys(dd, 1, 25, dks), 0);
    CHECK_EQ(count(dd, 1, NULL), 25);
    uint32_t epoch;
    CHECK_EQ(spro_keys_rotate(dd, 1000, &epoch, why, sizeof why), 0);
    CHECK_EQ(epoch, 2);
    CHECK_EQ(count(dd, 1, &state), 25);
    CHECK_STR(state, "retired");
    /* A key wrapped under the retired epoch is refused, not stored. */
    {
        uint8_t kek1[32], w[SPRO_WRAPPED_KEY_BYTES];
        char ben[37];
        uuid(ben, 999);
        CHECK_EQ(spro_keyring__kek(dd, 1, kek1), 0);
        CHECK_EQ(spro_field_key_wrap(w, dks, kek1, 1, ben), 0);
        CHECK_EQ(spro_store__data_key_add(spro_datadir__keys(dd), ben, w), -EAGAIN);
    }
    CHECK_EQ(add_keys(dd, 100, 5, NULL), 0); /* new keys under epoch 2 */
    CHECK_EQ(count(dd, 2, NULL), 5);
    /* Bounded batches: 10, 10, 5, then the destruction. */
    struct spro_rewrap_result r;
    CHECK_EQ(spro_keys_rewrap(dd, 10, 2000, &r), 0);
    CHECK_EQ(r.rewrapped, 10);
    CHECK_EQ(r.ndestroyed, 0);
    CHECK(!r.done);
    CHECK_EQ(count(dd, 1, NULL), 15);
    /* Not destroyed while a data key names it. */
    int destroyed;
    CHECK_EQ(spro_store__kek_destroy(spro_datadir__keys(dd), 1, 2000, &destroyed), 0);
    CHECK(!destroyed);
    CHECK_EQ(spro_keys_rewrap(dd, 10, 2000, &r), 0);
    CHECK_EQ(r.rewrapped, 10);
    CHECK_EQ(spro_keys_rewrap(dd, 10, 2000, &r), 0);
    CHECK_EQ(r.rewrapped, 5);
    CHECK_EQ(r.ndestroyed, 0);
    CHECK_EQ(spro_keys_rewrap(dd, 10, 2000, &r), 0);
    CHECK_EQ(r.rewrapped, 0);
    CHECK_EQ(r.ndestroyed, 1);
    CHECK_EQ(r.destroyed[0], 1);
    CHECK(r.done);
    CHECK_EQ(count(dd, 1, &state), 0);
    CHECK_STR(state, "destroyed");
    CHECK_EQ(count(dd, 2, NULL), 30);
    /* Every data key is the same key, under the new epoch. */
    for (uint32_t i = 0; i < 25; i++) {
        char ben[37];
        uuid(ben, 1 + i);
        CHECK_EQ(open_key(dd, ben, dk), 0);
        CHECK_BYTES(dk, 32, dks + i * 32, 32);
    }
    /* A destroyed or unknown epoch: an integrity error, never a guess. */
    uint8_t kek[32];
    CHECK_EQ(spro_keyring__kek(dd, 1, kek), SPRO_EINTEGRITY);
    CHECK_EQ(spro_keyring__kek(dd, 77, kek), SPRO_EINTEGRITY);
    CHECK_EQ(spro_keyring__kek(dd, 0, kek), SPRO_EINTEGRITY);
    /* keys.db itself refuses a data key under a destroyed epoch. */
    {
        sqlite3 *db;
        CHECK_EQ(sqlite3_open(path("rot/keys.db"), &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        CHECK(sqlite3_exec(db,
                           "UPDATE data_keys SET epoch = 1 WHERE ben = (SELECT min(ben) FROM "
                           "data_keys)",
                           NULL, NULL, NULL) != SQLITE_OK);
        CHECK(sqlite3_exec(db, "DELETE FROM keks WHERE epoch = 1", NULL, NULL, NULL) != SQLITE_OK);
        sqlite3_close(db);
    }
    /* Another process's rotation: seen through the keys generation. */
    struct spro_datadir *other;
    CHECK_EQ(spro_datadir_open(path("rot"), &other, why, sizeof why), 0);
    CHECK_EQ(spro_keys_rotate(other, 3000, &epoch, why, sizeof why), 0);
    CHECK_EQ(epoch, 3);
    uint32_t cur;
    CHECK_EQ(spro_keyring__current(dd, &cur, kek), 0);
    CHECK_EQ(cur, 3);
    spro_datadir_close(other);
    spro_datadir_close(dd);
}

/* A keys.db made before migration 3: data keys under epoch 1, derived. */
static void test_migration_derived_epoch(void)
{
    char why[512];
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_init(path("old"), why, sizeof why), 0);
    /* Rebuild keys.db at version 2 with its server keys. */
    sqlite3 *db;
    CHECK_EQ(sqlite3_open(path("old/keys2.db"), &db), SQLITE_OK);
    CHECK_EQ(sqlite3_exec(db, spro_store__keys_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
    CHECK_EQ(sqlite3_exec(db, spro_store__keys_migrations[1].sql, NULL, NULL, NULL), SQLITE_OK);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "ATTACH '%s' AS cur; INSERT INTO server_keys SELECT * FROM cur.server_keys;"
             "DETACH cur; PRAGMA user_version = 2;",
             path("old/keys.db"));
    CHECK_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    /* Two data keys wrapped as before: the KEK of epoch 1 derived. */
    uint8_t master[32], kek[32], dk[32], w[SPRO_WRAPPED_KEY_BYTES];
    FILE *f = fopen(path("old/master.key"), "rb");
    CHECK(f != NULL && fread(master, 1, 32, f) == 32);
    fclose(f);
    CHECK_EQ(spro_field_kek_derive(kek, master, 1), 0);
    sqlite3_stmt *st;
    CHECK_EQ(sqlite3_prepare_v2(db, "INSERT INTO data_keys(ben, wrapped) VALUES (?1, ?2)", -1, &st,
                                NULL),
             SQLITE_OK);
    uint8_t dks[2][32];
    for (int i = 0; i < 2; i++) {
        char ben[37];
        uuid(ben, 500 + (uint32_t)i);
        spro_field_key_new(dks[i]);
        CHECK_EQ(spro_field_key_wrap(w, dks[i], kek, 1, ben), 0);
        sqlite3_bind_text(st, 1, ben, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, w, sizeof w, SQLITE_TRANSIENT);
        CHECK_EQ(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK_EQ(rename(path("old/keys2.db"), path("old/keys.db")), 0);
    unlink(path("old/keys.db-wal"));
    unlink(path("old/keys.db-shm"));

    CHECK_EQ(spro_datadir_open(path("old"), &dd, why, sizeof why), 0);
    struct spro_key_epoch e[4];
    size_t n;
    CHECK_EQ(spro_keys_status(dd, e, 4, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(e[0].derived, 1);
    CHECK_EQ(e[0].data_keys, 2); /* the epoch column read from the blobs */
    char ben[37];
    uuid(ben, 501);
    CHECK_EQ(open_key(dd, ben, dk), 0);
    CHECK_BYTES(dk, 32, dks[1], 32);
    uint32_t epoch;
    struct spro_rewrap_result r;
    CHECK_EQ(spro_keys_rotate(dd, 10, &epoch, why, sizeof why), 0);
    CHECK_EQ(spro_keys_rewrap(dd, 1000, 10, &r), 0);
    CHECK_EQ(r.rewrapped, 2);
    CHECK_EQ(spro_keys_rewrap(dd, 1000, 10, &r), 0);
    CHECK(r.done);
    CHECK_EQ(r.ndestroyed, 1);
    CHECK_EQ(open_key(dd, ben, dk), 0);
    CHECK_BYTES(dk, 32, dks[1], 32);
    spro_datadir_close(dd);
}

static int copy(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s'", from, to);
    return system(cmd);
}

/* A change of the master key cut at each step is finished or undone by
 * the next open. */
static void test_change_master_recovery(void)
{
    char why[512];
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_init(path("cm"), why, sizeof why), 0);
    CHECK_EQ(spro_datadir_open(path("cm"), &dd, why, sizeof why), 0);
    uint8_t dks[3 * 32], dk[32];
    CHECK_EQ(add_keys(dd, 1, 3, dks), 0);
    spro_datadir_close(dd);
    CHECK_EQ(copy(path("cm/master.key"), path("key-a")), 0);
    CHECK_EQ(copy(path("cm/keys.db"), path("keys-a.db")), 0);

    /* A whole change. */
    struct spro_new_master nm = {.key_file = path("key-b")};
    CHECK_EQ(spro_datadir_change_master(path("cm"), NULL, &nm, why, sizeof why), 0);
    CHECK_EQ(access(path("cm/master.key.old"), F_OK), 0);
    CHECK_EQ(access(path("cm/master.key.new"), F_OK), -1);
    CHECK_EQ(copy(path("cm/keys.db"), path("keys-b.db")), 0);
    CHECK_EQ(spro_datadir_open(path("cm"), &dd, why, sizeof why), 0);
    char ben[37];
    uuid(ben, 3);
    CHECK_EQ(open_key(dd, ben, dk), 0);
    CHECK_BYTES(dk, 32, dks + 2 * 32, 32);
    spro_datadir_close(dd);

    /* Cut after step 1: master.key (old) and master.key.new, keys.db
     * under the old key: the change did not happen. */
    CHECK_EQ(copy(path("key-a"), path("cm/master.key")), 0);
    CHECK_EQ(copy(path("key-b"), path("cm/master.key.new")), 0);
    CHECK_EQ(copy(path("keys-a.db"), path("cm/keys.db")), 0);
    CHECK_EQ(spro_datadir_open(path("cm"), &dd, why, sizeof why), 0);
    spro_datadir_close(dd);
    CHECK_EQ(access(path("cm/master.key.new"), F_OK), -1);

    /* Cut after step 2 committed: keys.db under the new key, files not
     * renamed: the open completes the change. */
    CHECK_EQ(copy(path("key-b"), path("cm/master.key.new")), 0);
    CHECK_EQ(copy(path("keys-b.db"), path("cm/keys.db")), 0);
    unlink(path("cm/master.key.old"));
    CHECK_EQ(spro_datadir_open(path("cm"), &dd, why, sizeof why), 0);
    CHECK_EQ(open_key(dd, ben, dk), 0);
    CHECK_BYTES(dk, 32, dks + 2 * 32, 32);
    spro_datadir_close(dd);
    CHECK_EQ(access(path("cm/master.key.new"), F_OK), -1);
    CHECK_EQ(access(path("cm/master.key.old"), F_OK), 0);

    /* Cut between the two renames of step 3. */
    CHECK_EQ(rename(path("cm/master.key"), path("cm/master.key.new")), 0);
    CHECK_EQ(spro_datadir_open(path("cm"), &dd, why, sizeof why), 0);
    spro_datadir_close(dd);
    CHECK_EQ(access(path("cm/master.key"), F_OK), 0);

    /* The old key alone no longer opens it. */
    CHECK_EQ(copy(path("key-a"), path("cm/master.key")), 0);
    CHECK_EQ(spro_datadir_open(path("cm"), &dd, why, sizeof why), SPRO_EINTEGRITY);
    CHECK(dd == NULL);
}

static const struct check_test tests[] = {
    {"wrapped_kek", test_wrapped_kek},
    {"rotate_rewrap_destroy", test_rotate_rewrap_destroy},
    {"migration_derived_epoch", test_migration_derived_epoch},
    {"change_master_recovery", test_change_master_recovery},
};

int main(int argc, char **argv)
{
    if (spro_crypto_init() != 0)
        return 1;
    snprintf(tmp, sizeof tmp, "%s/spro-keys-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp) == NULL)
        return 1;
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        return 1;
    return rc;
}
