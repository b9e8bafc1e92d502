/*
 * test_store.c: the migration mechanism and the data directory.
 *
 * Migrations: a database of an older version is migrated forward; a
 * database newer than the program is refused and left unchanged; a failing
 * migration leaves the database at its old version.  Data directory: init
 * refuses an existing one, open refuses loose key permissions, a wrong
 * master key, a missing file, and never changes what it refuses.
 */
#include "check.h"
#include "sync/store.h"
#include "sync/sync.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static const char *path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    return p;
}

static int version_of(const char *file)
{
    sqlite3 *db;
    int v = -1;
    if (sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static int has_table(const char *file, const char *table)
{
    sqlite3 *db;
    int found = 0;
    if (sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE name = ?1", -1, &st, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
            found = sqlite3_step(st) == SQLITE_ROW;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return found;
}

static void set_version(const char *file, int v)
{
    sqlite3 *db;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
    if (sqlite3_open(file, &db) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        abort();
    sqlite3_close(db);
}

static const struct spro_migration v1[] = {{1, "CREATE TABLE a (x INTEGER);"}};
static const struct spro_migration v3[] = {
    {1, "CREATE TABLE a (x INTEGER);"},
    {2, "CREATE TABLE b (y INTEGER);"},
    {3, "ALTER TABLE a ADD COLUMN z TEXT;"},
};
static const struct spro_migration v2_broken[] = {
    {1, "CREATE TABLE a (x INTEGER);"},
    {2, "CREATE TABLE c (y INTEGER); THIS IS NOT SQL;"},
};

static void test_fresh_database_gets_every_migration(void)
{
    struct spro_db *db;
    int v = 0;
    CHECK_EQ(spro_store__open(path("fresh.db"), 1, v3, 3, &db, &v, NULL, 0), 0);
    spro_store__close(db);
    CHECK_EQ(v, 3);
    CHECK_EQ(version_of(path("fresh.db")), 3);
    CHECK(has_table(path("fresh.db"), "b"));
}

static void test_older_database_is_migrated(void)
{
    struct spro_db *db;
    int v = 0;
    CHECK_EQ(spro_store__open(path("old.db"), 1, v1, 1, &db, &v, NULL, 0), 0);
    spro_store__close(db);
    CHECK_EQ(version_of(path("old.db")), 1);
    CHECK(!has_table(path("old.db"), "b"));
    CHECK_EQ(spro_store__open(path("old.db"), 0, v3, 3, &db, &v, NULL, 0), 0);
    spro_store__close(db);
    CHECK_EQ(v, 3);
    CHECK_EQ(version_of(path("old.db")), 3);
    CHECK(has_table(path("old.db"), "b"));
}

static void test_newer_database_is_refused(void)
{
    struct spro_db *db;
    int v = 0;
    char why[256] = "";
    CHECK_EQ(spro_store__open(path("new.db"), 1, v1, 1, &db, &v, NULL, 0), 0);
    spro_store__close(db);
    set_version(path("new.db"), 7);
    CHECK_EQ(spro_store__open(path("new.db"), 0, v3, 3, &db, &v, why, sizeof why),
             SPRO_ESCHEMA_NEWER);
    CHECK(db == NULL);
    CHECK(strstr(why, "schema version 7 is newer") != NULL);
    CHECK(strstr(why, "new.db") != NULL);
    CHECK_EQ(version_of(path("new.db")), 7);
    CHECK(!has_table(path("new.db"), "b"));
}

static void test_failed_migration_changes_nothing(void)
{
    struct spro_db *db;
    int v = 0;
    CHECK_EQ(spro_store__open(path("broken.db"), 1, v1, 1, &db, &v, NULL, 0), 0);
    spro_store__close(db);
    CHECK_EQ(spro_store__open(path("broken.db"), 0, v2_broken, 2, &db, &v, NULL, 0), SPRO_ESTORE);
    CHECK_EQ(version_of(path("broken.db")), 1);
    CHECK(!has_table(path("broken.db"), "c"));
}

static void test_missing_database_is_not_created(void)
{
    struct spro_db *db;
    int v = 0;
    CHECK_EQ(spro_store__open(path("absent.db"), 0, v1, 1, &db, &v, NULL, 0), SPRO_ENOENT);
    CHECK(access(path("absent.db"), F_OK) != 0);
}

static void test_datadir_init_and_open(void)
{
    char why[512];
    CHECK_EQ(spro_datadir_init(path("dd"), why, sizeof why), 0);
    struct stat st;
    CHECK_EQ(stat(path("dd/master.key"), &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(st.st_size, 32);
    CHECK_EQ(version_of(path("dd/data.db")), SPRO_DATA_SCHEMA);
    CHECK_EQ(version_of(path("dd/keys.db")), SPRO_KEYS_SCHEMA);
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_open(path("dd"), &dd, why, sizeof why), 0);
    CHECK_EQ(spro_datadir_schema(dd), SPRO_DATA_SCHEMA);
    CHECK_EQ(spro_datadir_ping(dd), 0);
    uint8_t zero[SPRO_KEY_BYTES] = {0};
    CHECK(memcmp(spro_datadir_noise_public(dd), zero, sizeof zero) != 0);
    CHECK(memcmp(spro_datadir_sign_public(dd), zero, sizeof zero) != 0);
    spro_datadir_close(dd);
}

static void test_datadir_init_refuses_existing(void)
{
    char why[512];
    CHECK_EQ(spro_datadir_init(path("dd2"), why, sizeof why), 0);
    struct stat before, after;
    CHECK_EQ(stat(path("dd2/master.key"), &before), 0);
    CHECK_EQ(spro_datadir_init(path("dd2"), why, sizeof why), SPRO_EEXISTS);
    CHECK(strstr(why, "refusing to overwrite") != NULL);
    CHECK_EQ(stat(path("dd2/master.key"), &after), 0);
    CHECK_EQ(before.st_ino, after.st_ino);
    /* An existing empty directory is fine. */
    CHECK_EQ(mkdir(path("empty"), 0700), 0);
    CHECK_EQ(spro_datadir_init(path("empty"), why, sizeof why), 0);
    CHECK_EQ(access(path("empty/keys.db"), F_OK), 0);
    /* A file in the way is not. */
    FILE *f = fopen(path("afile"), "w");
    CHECK(f != NULL);
    fclose(f);
    CHECK_EQ(spro_datadir_init(path("afile"), why, sizeof why), SPRO_EEXISTS);
}

static void test_datadir_refuses_loose_key(void)
{
    char why[512];
    CHECK_EQ(spro_datadir_init(path("dd3"), why, sizeof why), 0);
    CHECK_EQ(chmod(path("dd3/master.key"), 0640), 0);
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_open(path("dd3"), &dd, why, sizeof why), SPRO_EPERM);
    CHECK(dd == NULL);
    CHECK(strstr(why, "master.key") != NULL);
    CHECK_EQ(chmod(path("dd3/master.key"), 0600), 0);
    CHECK_EQ(spro_datadir_open(path("dd3"), &dd, why, sizeof why), 0);
    spro_datadir_close(dd);
}

static void test_datadir_refuses_wrong_master(void)
{
    char why[512];
    CHECK_EQ(spro_datadir_init(path("dd4"), why, sizeof why), 0);
    FILE *f = fopen(path("dd4/master.key"), "r+");
    CHECK(f != NULL);
    int first = fgetc(f);
    CHECK(first != EOF);
    rewind(f);
    fputc(first ^ 0xff, f); /* another master key (a fixed byte could be the same one) */
    fclose(f);
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_open(path("dd4"), &dd, why, sizeof why), SPRO_EINTEGRITY);
    CHECK(strstr(why, "do not open under this master key") != NULL);
    /* A short key file is refused too. */
    CHECK_EQ(truncate(path("dd4/master.key"), 31), 0);
    CHECK_EQ(spro_datadir_open(path("dd4"), &dd, why, sizeof why), SPRO_EINTEGRITY);
    CHECK(strstr(why, "exactly 32 bytes") != NULL);
}

static void test_datadir_refuses_missing_file(void)
{
    char why[512];
    CHECK_EQ(spro_datadir_init(path("dd5"), why, sizeof why), 0);
    CHECK_EQ(unlink(path("dd5/keys.db")), 0);
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_open(path("dd5"), &dd, why, sizeof why), SPRO_ENOENT);
    CHECK(strstr(why, "keys.db") != NULL);
    CHECK(access(path("dd5/keys.db"), F_OK) != 0); /* not recreated */
    CHECK_EQ(spro_datadir_open(path("nothing-here"), &dd, why, sizeof why), SPRO_ENOENT);
    CHECK(strstr(why, "spro-admin --data DIR init") != NULL);
}

static const struct check_test tests[] = {
    {"fresh_database_gets_every_migration", test_fresh_database_gets_every_migration},
    {"older_database_is_migrated", test_older_database_is_migrated},
    {"newer_database_is_refused", test_newer_database_is_refused},
    {"failed_migration_changes_nothing", test_failed_migration_changes_nothing},
    {"missing_database_is_not_created", test_missing_database_is_not_created},
    {"datadir_init_and_open", test_datadir_init_and_open},
    {"datadir_init_refuses_existing", test_datadir_init_refuses_existing},
    {"datadir_refuses_loose_key", test_datadir_refuses_loose_key},
    {"datadir_refuses_wrong_master", test_datadir_refuses_wrong_master},
    {"datadir_refuses_missing_file", test_datadir_refuses_missing_file},
};

int main(int argc, char **argv)
{
    snprintf(tmp, sizeof tmp, "%s/spro-store-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp) == NULL || spro_crypto_init() != 0)
        return 1;
    umask(077);
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return rc;
}
