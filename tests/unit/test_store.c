/*
 * test_store.c: the migration mechanism and the data directory.
 *
 * Migrations: a database of an older version is migrated forward; a
 * database newer than the program is refused and left unchanged; a failing
 * migration leaves the database at its old version.  Data directory: init
 * refuses an existing one, open refuses loose key permissions, a wrong
 * master key, a missing file, and never changes what it refuses.
 * data.db migration 7 (re-keyed by records.id): a version-6 database with
 * rows in every sync table keeps them all, read back through the store API,
 * and one whose rows cannot be re-keyed stays at version 6.
 */
#include "check.h"
#include "tmpmain.h"
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

/* ---- data.db migration 7 ---- */

#define B1 "11111111-1111-4111-8111-111111111111"
#define B2 "22222222-2222-4222-8222-222222222222"
#define B3 "33333333-3333-4333-8333-333333333333" /* merged into B1 */
#define I1 "44444444-4444-4444-8444-444444444444" /* interaction of B1 */
#define R1 "55555555-5555-4555-8555-555555555555" /* referral of B1, to org2 */
#define D1 "66666666-6666-4666-8666-666666666666" /* duplicate {B1, B2}, of B2 */
#define B4 "77777777-7777-4777-8777-777777777777" /* created after migrating */
#define I2 "88888888-8888-4888-8888-888888888888"
#define NOBODY "99999999-9999-4999-8999-999999999999"
#define DEV "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
#define DEV2 "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
#define BLIND_A "x'0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a'"
#define BLIND_B "x'0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b'"

/* Rows in every table of a version-6 data.db, as that version's store
 * wrote them (foreign keys on). */
static const char v6_rows[] =
    "INSERT INTO organisations(id, name, kind, created_at) VALUES"
    " ('org1', 'One', 'other', 1), ('org2', 'Two', 'other', 1);"
    "UPDATE sync_state SET hlc = 600, change_seq = 7, purged_seq = 3;"
    "INSERT INTO records(rtype, rid, ben, created_by_org, created_at, changed_seq) VALUES"
    " ('beneficiary', '" B1 "', '" B1 "', 'org1', 10, 1),"
    " ('beneficiary', '" B2 "', '" B2 "', 'org2', 11, 2),"
    " ('beneficiary', '" B3 "', '" B3 "', 'org1', 12, 3),"
    " ('interaction', '" I1 "', '" B1 "', 'org1', 13, 5),"
    " ('referral', '" R1 "', '" B1 "', 'org1', 14, 6),"
    " ('duplicate', '" D1 "', '" B2 "', 'org1', 15, 7);"
    "INSERT INTO siblings(rtype, rid, name, hlc, origin, author, schema, sealed, val) VALUES"
    " ('beneficiary', '" B1 "', 'given_name', 100, '" DEV "', 'u1', 1, 1, x'01'),"
    " ('beneficiary', '" B1 "', 'family_name', 101, '" DEV2 "', 'u2', 2, 1, x'03'),"
    " ('beneficiary', '" B1 "', 'family_name', 101, '" DEV "', 'u1', 1, 1, x'02'),"
    " ('beneficiary', '" B2 "', 'given_name', 102, '" DEV2 "', 'u2', 1, 1, x'04'),"
    " ('interaction', '" I1 "', 'note', 103, '" DEV "', 'u1', 1, 0, x'a26869'),"
    " ('referral', '" R1 "', 'to_org', 104, '" DEV "', 'u1', 1, 0, x'a46f726732'),"
    " ('duplicate', '" D1 "', 'rule', 105, 'server', 'server', 1, 0, x'a3696e65');"
    "INSERT INTO scope(ben, org) VALUES ('" B1 "', 'org1'), ('" B2 "', 'org2'),"
    " ('" B2 "', 'org1'), ('" B3 "', 'org1');"
    "INSERT INTO scope_record(rtype, rid, org) VALUES ('referral', '" R1 "', 'org2');"
    "INSERT INTO scope_removed(seq, org, rtype, rid, ben) VALUES"
    " (4, 'org2', 'interaction', '" I1 "', '" B1 "');"
    "INSERT INTO blind_index(rtype, rid, name, ben, value) VALUES"
    " ('beneficiary', '" B1 "', 'dedup', '" B1 "', " BLIND_A "),"
    " ('beneficiary', '" B2 "', 'dedup', '" B2 "', " BLIND_A "),"
    " ('beneficiary', '" B3 "', 'dedup', '" B3 "', " BLIND_A "),"
    " ('beneficiary', '" B1 "', 'ine', '" B1 "', " BLIND_B ");"
    "INSERT INTO clamps(device_id, hlc, ver_hlc) VALUES ('" DEV "', 500, 400);"
    "INSERT INTO ops(device_id, seq, status, hlc, origin, code, rtype, rid, ben, at) VALUES"
    " ('" DEV "', 1, 'ack', 100, '" DEV "', NULL, NULL, NULL, NULL, 1000),"
    " ('" DEV "', 2, 'conflict', 101, '" DEV "', NULL, 'beneficiary', '" B1 "', '" B1 "', 1001),"
    " ('" DEV "', 3, 'reject', NULL, NULL, 'not_found', NULL, NULL, NULL, 1002);"
    "INSERT INTO op_siblings(device_id, seq, fidx, name, hlc, origin, author, schema, sealed,"
    " val) VALUES"
    " ('" DEV "', 2, 0, 'family_name', 101, '" DEV "', 'u1', 1, 1, x'02'),"
    " ('" DEV "', 2, 0, 'family_name', 101, '" DEV2 "', 'u2', 2, 1, x'03');"
    "INSERT INTO quarantine(device_id, seq, ben, code, at, op) VALUES"
    " ('" DEV "', 3, '" NOBODY "', 'not_found', 1002, x'0102');"
    "INSERT INTO device_sync(device_id, acked_seq, acked_at) VALUES ('" DEV "', 7, 1500);"
    "INSERT INTO duplicates(a, b, rid) VALUES ('" B1 "', '" B2 "', '" D1 "');"
    "INSERT INTO merged(ben, keep) VALUES ('" B3 "', '" B1 "');";

/* Creates file as a version-6 data.db holding v6_rows and `extra`. */
static int make_v6(const char *file, const char *extra)
{
    struct spro_db *h;
    int v = 0;
    if (spro_store__open(file, 1, spro_store__data_migrations, 6, &h, &v, NULL, 0) != 0 || v != 6)
        return -1;
    spro_store__close(h);
    sqlite3 *db;
    int rc = sqlite3_open(file, &db) == SQLITE_OK &&
                     sqlite3_exec(db, "PRAGMA foreign_keys = ON; BEGIN", NULL, NULL, NULL) ==
                         SQLITE_OK &&
                     sqlite3_exec(db, v6_rows, NULL, NULL, NULL) == SQLITE_OK &&
                     sqlite3_exec(db, extra, NULL, NULL, NULL) == SQLITE_OK &&
                     sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    if (rc != 0)
        fprintf(stderr, "make_v6: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

/* count(*) of a query on file, -1 on error. */
static int64_t count_of(const char *file, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A test body run inside spro_store__transaction() (CHECK returns from the
 * body; the transaction then commits what it wrote). */
struct body {
    void (*fn)(struct spro_db *db);
};

static int run_body(struct spro_db *db, void *arg)
{
    ((struct body *)arg)->fn(db);
    return 0;
}

/* Siblings read by siblings_each/op_siblings_each, one line each:
 * "fidx name hlc origin author schema sealed hex(val)". */
static char sib_lines[8][256];
static size_t nsib;

static int collect_sibling(const struct spro_stored_sibling *s, void *arg)
{
    (void)arg;
    if (nsib == 8)
        return -1;
    char *p = sib_lines[nsib++];
    int n = snprintf(p, sizeof sib_lines[0], "%zu %s %" PRIu64 " %s %s %" PRIu32 " %d ", s->fidx,
                     s->name, s->hlc, s->origin, s->author, s->schema, s->sealed);
    for (size_t i = 0; i < s->val_len && n < 250; i++)
        n += snprintf(p + n, 256 - (size_t)n, "%02x", s->val[i]);
    return 0;
}

/* Records read by changes_each, one line each: "rtype rid ben org seq removed". */
static char rec_lines[16][320];
static size_t nrec;

static int collect_record(const struct spro_stored_record *r, void *arg)
{
    (void)arg;
    if (nrec == 16)
        return -1;
    snprintf(rec_lines[nrec++], sizeof rec_lines[0], "%s %s %s %s %" PRId64 " %d", r->rtype, r->rid,
             r->ben, r->created_by_org, r->changed_seq, r->removed);
    return 0;
}

/* The records.id of (rtype, rid); -1 (which no function finds) when it
 * cannot be read, counted as a failure. */
static int64_t rec_id(struct spro_db *db, const char *rtype, const char *rid)
{
    struct spro_stored_record r;
    if (spro_store__record_get(db, rtype, rid, &r) != 0 || r.id < 1) {
        fprintf(stderr, "%s:%d: no record %s %s\n", __FILE__, __LINE__, rtype, rid);
        check__failed++;
        return -1;
    }
    return r.id;
}

static void check_record(struct spro_db *db, const char *rtype, const char *rid, const char *ben,
                         const char *org, int64_t seq)
{
    struct spro_stored_record r;
    CHECK_EQ(spro_store__record_get(db, rtype, rid, &r), 0);
    CHECK_STR(r.rtype, rtype);
    CHECK_STR(r.rid, rid);
    CHECK_STR(r.ben, ben);
    CHECK_STR(r.created_by_org, org);
    CHECK_EQ(r.changed_seq, seq);
}

/* Every row of v6_rows, through the store API. */
static void read_v6_rows(struct spro_db *db)
{
    uint64_t hlc;
    int64_t seq, purged;
    CHECK_EQ(spro_store__sync_state_get(db, &hlc, &seq), 0);
    CHECK_EQ(hlc, 600);
    CHECK_EQ(seq, 7);
    CHECK_EQ(spro_store__purged_get(db, &purged), 0);
    CHECK_EQ(purged, 3);

    check_record(db, "beneficiary", B1, B1, "org1", 1);
    check_record(db, "beneficiary", B2, B2, "org2", 2);
    check_record(db, "beneficiary", B3, B3, "org1", 3);
    check_record(db, "interaction", I1, B1, "org1", 5);
    check_record(db, "referral", R1, B1, "org1", 6);
    check_record(db, "duplicate", D1, B2, "org1", 7);

    nsib = 0;
    CHECK_EQ(
        spro_store__siblings_each(db, rec_id(db, "beneficiary", B1), NULL, collect_sibling, NULL),
        0);
    CHECK_EQ(nsib, 3);
    CHECK_STR(sib_lines[0], "0 family_name 101 " DEV " u1 1 1 02");
    CHECK_STR(sib_lines[1], "0 family_name 101 " DEV2 " u2 2 1 03");
    CHECK_STR(sib_lines[2], "0 given_name 100 " DEV " u1 1 1 01");
    nsib = 0;
    CHECK_EQ(spro_store__siblings_each(db, rec_id(db, "beneficiary", B2), "given_name",
                                       collect_sibling, NULL),
             0);
    CHECK_EQ(nsib, 1);
    CHECK_STR(sib_lines[0], "0 given_name 102 " DEV2 " u2 1 1 04");
    nsib = 0;
    CHECK_EQ(
        spro_store__siblings_each(db, rec_id(db, "interaction", I1), NULL, collect_sibling, NULL),
        0);
    CHECK_EQ(spro_store__siblings_each(db, rec_id(db, "referral", R1), NULL, collect_sibling, NULL),
             0);
    CHECK_EQ(
        spro_store__siblings_each(db, rec_id(db, "duplicate", D1), NULL, collect_sibling, NULL), 0);
    CHECK_EQ(nsib, 3);
    CHECK_STR(sib_lines[0], "0 note 103 " DEV " u1 1 0 a26869");
    CHECK_STR(sib_lines[1], "0 to_org 104 " DEV " u1 1 0 a46f726732");
    CHECK_STR(sib_lines[2], "0 rule 105 server server 1 0 a3696e65");
    /* Every record's fields are still rows (records.plain NULL) until the
     * data directory moves them (sync/engine.c). */
    int64_t ids[8];
    size_t n;
    CHECK_EQ(spro_store__legacy_records(db, 0, ids, 8, &n), 0);
    CHECK_EQ(n, 6);
    CHECK_EQ(ids[0], rec_id(db, "beneficiary", B1));

    int yes;
    const struct {
        const char *ben, *org;
        int yes;
    } scope[] = {{B1, "org1", 1}, {B1, "org2", 0}, {B2, "org1", 1},
                 {B2, "org2", 1}, {B3, "org1", 1}, {B3, "org2", 0}};
    for (size_t i = 0; i < sizeof scope / sizeof scope[0]; i++) {
        CHECK_EQ(spro_store__scope_has(db, scope[i].ben, scope[i].org, &yes), 0);
        CHECK_EQ(yes, scope[i].yes);
    }
    CHECK_EQ(spro_store__record_scope_has(db, "referral", R1, "org2", &yes), 0);
    CHECK_EQ(yes, 1);
    CHECK_EQ(spro_store__record_scope_has(db, "interaction", I1, "org2", &yes), 0);
    CHECK_EQ(yes, 0);

    /* org2: B2 and its duplicate by scope, R1 alone, and from cursor 3
     * the removal event of I1. */
    nrec = 0;
    CHECK_EQ(spro_store__changes_each(db, "org2", 1, 0, 100, collect_record, NULL), 0);
    CHECK_EQ(nrec, 3);
    CHECK_STR(rec_lines[0], "beneficiary " B2 " " B2 " org2 2 0");
    CHECK_STR(rec_lines[1], "referral " R1 " " B1 " org1 6 0");
    CHECK_STR(rec_lines[2], "duplicate " D1 " " B2 " org1 7 0");
    nrec = 0;
    CHECK_EQ(spro_store__changes_each(db, "org2", 0, 3, 100, collect_record, NULL), 0);
    CHECK_EQ(nrec, 2);
    CHECK_STR(rec_lines[0], "interaction " I1 " " B1 "  4 1");
    CHECK_STR(rec_lines[1], "referral " R1 " " B1 " org1 6 0");
    nrec = 0;
    CHECK_EQ(spro_store__changes_each(db, "org1", 0, 0, 100, collect_record, NULL), 0);
    CHECK_EQ(nrec, 5);

    /* Blind indexes: B3 has B1's and B2's dedup value, but is merged. */
    char m[8][SPRO_ID_MAX + 1];
    CHECK_EQ(spro_store__blind_matches(db, "beneficiary", B1, "dedup", m, 8, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_STR(m[0], B2);
    CHECK_EQ(spro_store__blind_matches(db, "beneficiary", B3, "dedup", m, 8, &n), 0);
    CHECK_EQ(n, 2);
    CHECK_STR(m[0], B1);
    CHECK_STR(m[1], B2);
    CHECK_EQ(spro_store__blind_matches(db, "beneficiary", B1, "ine", m, 8, &n), 0);
    CHECK_EQ(n, 0);

    char keep[SPRO_ID_MAX + 1];
    CHECK_EQ(spro_store__merged_get(db, B3, keep), 0);
    CHECK_STR(keep, B1);
    CHECK_EQ(spro_store__merged_get(db, B1, keep), SPRO_ENOENT);
    int added;
    CHECK_EQ(spro_store__duplicate_add(db, B2, B1, NOBODY, &added), 0);
    CHECK_EQ(added, 0);

    struct spro_stored_record *recs;
    CHECK_EQ(spro_store__ben_records(db, B1, &recs, &n), 0);
    CHECK_EQ(n, 2);
    CHECK_STR(recs[0].rid, I1);
    CHECK_STR(recs[1].rid, R1);
    free(recs);

    struct spro_stored_op op;
    CHECK_EQ(spro_store__op_get(db, DEV, 1, &op), 0);
    CHECK_EQ(op.status, SPRO_RESULT_ACK);
    CHECK_EQ(op.hlc, 100);
    CHECK_STR(op.origin, DEV);
    CHECK_EQ(spro_store__op_get(db, DEV, 2, &op), 0);
    CHECK_EQ(op.status, SPRO_RESULT_CONFLICT);
    CHECK_STR(op.rid, B1);
    CHECK_STR(op.ben, B1);
    CHECK_EQ(spro_store__op_get(db, DEV, 3, &op), 0);
    CHECK_EQ(op.status, SPRO_RESULT_REJECT);
    CHECK_STR(op.code, "not_found");
    nsib = 0;
    CHECK_EQ(spro_store__op_siblings_each(db, DEV, 2, collect_sibling, NULL), 0);
    CHECK_EQ(nsib, 2);
    CHECK_STR(sib_lines[0], "0 family_name 101 " DEV " u1 1 1 02");
    CHECK_STR(sib_lines[1], "0 family_name 101 " DEV2 " u2 2 1 03");

    uint64_t ver;
    CHECK_EQ(spro_store__clamp_any(db, DEV, &yes), 0);
    CHECK_EQ(yes, 1);
    CHECK_EQ(spro_store__clamp_get(db, DEV, 500, &ver), 0);
    CHECK_EQ(ver, 400);
    /* The same cursor, acknowledged again soon after: nothing to write. */
    int written;
    CHECK_EQ(spro_store__device_ack(db, DEV, 7, 1600, 1000, &written), 0);
    CHECK_EQ(written, 0);
}

/* Writes through the migrated tables. */
static void write_after_migration(struct spro_db *db)
{
    struct spro_stored_record b4 = {
        .rtype = "beneficiary", .rid = B4, .ben = B4, .created_by_org = "org1", .changed_seq = 8};
    struct spro_stored_record i2 = {
        .rtype = "interaction", .rid = I2, .ben = B4, .created_by_org = "org1", .changed_seq = 9};
    struct spro_stored_record lost = {.rtype = "interaction",
                                      .rid = NOBODY,
                                      .ben = NOBODY,
                                      .created_by_org = "org1",
                                      .changed_seq = 20};
    CHECK_EQ(spro_store__record_insert(db, &b4, 20), 0);
    CHECK_EQ(b4.id, rec_id(db, "beneficiary", B4));
    CHECK_EQ(spro_store__record_insert(db, &i2, 21), 0);
    CHECK_EQ(i2.id, rec_id(db, "interaction", I2));
    CHECK(i2.id != b4.id);
    CHECK_EQ(spro_store__record_insert(db, &i2, 21), SPRO_EEXISTS);
    CHECK_EQ(spro_store__record_insert(db, &lost, 22), SPRO_ENOENT); /* no such beneficiary */
    int added, removed;
    CHECK_EQ(spro_store__scope_add(db, B4, "org1", &added), 0);
    CHECK_EQ(added, 1);
    CHECK_EQ(spro_store__scope_add(db, B4, "org1", &added), 0);
    CHECK_EQ(added, 0);
    CHECK_EQ(spro_store__scope_add(db, NOBODY, "org1", &added), SPRO_ENOENT);
    CHECK_EQ(spro_store__scope_add(db, B4, "no-such-org", &added), SPRO_ENOENT);
    /* A new record starts with an empty array of fields, not as rows. */
    struct spro_buf plain = {0};
    int has = 0;
    int64_t i2id = rec_id(db, "interaction", I2);
    CHECK_EQ(spro_store__record_plain_get(db, i2id, &plain, &has), 0);
    CHECK(has && plain.len == 1 && plain.data[0] == 0x90);
    CHECK_EQ(spro_store__record_fields_put(db, i2id, (const uint8_t *)"\x91\x90", 2, 1,
                                           (const uint8_t *)"sealed", 6, 7, 0),
             0);
    CHECK_EQ(spro_store__record_plain_get(db, i2id, &plain, &has), 0);
    CHECK(has && plain.len == 2 && memcmp(plain.data, "\x91\x90", 2) == 0);
    uint32_t schema = 0;
    CHECK_EQ(spro_store__record_sealed_get(db, i2id, &plain, &has, &schema), 0);
    CHECK(has && plain.len == 6 && memcmp(plain.data, "sealed", 6) == 0 && schema == 7);
    /* plain NULL keeps it, set_sealed 0 keeps the sealed set. */
    CHECK_EQ(spro_store__record_fields_put(db, i2id, NULL, 0, 0, NULL, 0, 0, 0), 0);
    CHECK_EQ(spro_store__record_sealed_get(db, i2id, &plain, &has, &schema), 0);
    CHECK(has && plain.len == 6);
    CHECK_EQ(spro_store__record_plain_get(db, i2id, &plain, &has), 0);
    CHECK(has && plain.len == 2);
    spro_buf_free(&plain);
    /* state_seen keeps the first time a value was seen. */
    CHECK_EQ(spro_store__state_seen_put(db, i2id, 300, DEV, 1000, 1), 0);
    CHECK_EQ(spro_store__state_seen_put(db, i2id, 300, DEV, 2000, 1), 0);
    CHECK_EQ(spro_store__state_seen_delete(db, i2id, 300, DEV), 0);
    const uint8_t blind[SPRO_BLIND_INDEX_BYTES] = {0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
                                                   0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a};
    CHECK_EQ(spro_store__blind_put(db, rec_id(db, "beneficiary", B4), "dedup", blind), 0);
    CHECK_EQ(spro_store__blind_put(db, rec_id(db, "beneficiary", B4), "dedup", blind), 0);
    char m[8][SPRO_ID_MAX + 1];
    size_t n;
    CHECK_EQ(spro_store__blind_matches(db, "beneficiary", B4, "dedup", m, 8, &n), 0);
    CHECK_EQ(n, 2); /* B1, B2 (B3 merged) */
    CHECK_EQ(spro_store__record_scope_add(db, "interaction", I2, "org2"), 0);
    CHECK_EQ(spro_store__record_scope_add(db, "interaction", I2, "org2"), 0);
    CHECK_EQ(spro_store__record_scope_add(db, "interaction", NOBODY, "org2"), SPRO_ENOENT);

    int64_t seq = 9;
    CHECK_EQ(spro_store__ben_touch(db, B4, &seq), 0);
    CHECK_EQ(seq, 11);
    check_record(db, "beneficiary", B4, B4, "org1", 10);
    check_record(db, "interaction", I2, B4, "org1", 11);
    /* I2 moves to B1: it follows B1's scope, and org1's scope_record rows
     * on B1's records go when org1 leaves B1. */
    CHECK_EQ(spro_store__record_move(db, "interaction", I2, B1, 12), 0);
    check_record(db, "interaction", I2, B1, "org1", 12);
    CHECK_EQ(spro_store__record_move(db, "interaction", I2, NOBODY, 13), SPRO_ENOENT);
    struct spro_stored_record *recs;
    CHECK_EQ(spro_store__ben_records(db, B1, &recs, &n), 0);
    free(recs);
    CHECK_EQ(n, 3);
    CHECK_EQ(spro_store__scope_copy(db, B2, B4, &added), 0);
    CHECK_EQ(added, 1); /* org2 */
    CHECK_EQ(spro_store__scope_remove(db, B1, "org2", &removed), 0);
    CHECK_EQ(removed, 0);
    int yes;
    CHECK_EQ(spro_store__record_scope_has(db, "interaction", I2, "org2", &yes), 0);
    CHECK_EQ(yes, 0); /* removed with B1's other rows for org2 */
    CHECK_EQ(spro_store__record_scope_has(db, "referral", R1, "org2", &yes), 0);
    CHECK_EQ(yes, 0);
    CHECK_EQ(spro_store__scope_remove(db, B1, "org1", &removed), 0);
    CHECK_EQ(removed, 1);
    seq = 12;
    CHECK_EQ(spro_store__removal_log(db, B1, "org1", &seq), 0);
    CHECK_EQ(seq, 16); /* B1, I1, R1, I2 */
    /* I1's rows go, and it gets its array: no longer waiting. */
    int64_t i1 = rec_id(db, "interaction", I1);
    CHECK_EQ(spro_store__legacy_delete(db, i1), 0);
    CHECK_EQ(spro_store__record_fields_put(db, i1, (const uint8_t *)"\x90", 1, 0, NULL, 0, 0, 0),
             0);
    int64_t left[8];
    CHECK_EQ(spro_store__legacy_records(db, 0, left, 8, &n), 0);
    CHECK_EQ(n, 5);
    for (size_t k = 0; k < n; k++)
        CHECK(left[k] != i1);
}

static void test_migration_7_keeps_every_row(void)
{
    const char *file = path("v6.db");
    CHECK_EQ(make_v6(file, ""), 0);
    CHECK_EQ(version_of(file), 6);
    static const char *const tables[] = {"records", "siblings", "scope", "scope_record",
                                         "blind_index"};
    int64_t before[5];
    char sql[128];
    for (size_t i = 0; i < 5; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
        before[i] = count_of(file, sql);
        CHECK(before[i] > 0);
    }

    struct spro_db *db;
    int v = 0;
    char why[256] = "";
    CHECK_EQ(spro_store__open(file, 0, spro_store__data_migrations,
                              spro_store__data_migrations_count, &db, &v, why, sizeof why),
             0);
    CHECK_EQ(v, SPRO_DATA_SCHEMA);
    struct body read = {read_v6_rows}, write = {write_after_migration};
    int rc = spro_store__transaction(db, SPRO_TX_WRITE, run_body, &read);
    struct spro_quarantined *q = NULL;
    size_t nq = 0;
    if (rc == 0)
        rc = spro_store__quarantine_list(db, &q, &nq);
    if (rc == 0 && nq == 1 && strcmp(q[0].ben, NOBODY) != 0)
        rc = -1;
    free(q);
    if (rc == 0)
        rc = spro_store__transaction(db, SPRO_TX_WRITE, run_body, &write);
    spro_store__close(db);
    CHECK_EQ(rc, 0);
    CHECK_EQ(nq, 1);
    CHECK_EQ(version_of(file), SPRO_DATA_SCHEMA);
    /* The old names are views with the old rows and what was written
     * since: records B4 and I2; I1's sibling row, gone; B4's scope
     * (org1, org2) less B1's org1; I2's scope_record for org2, then it
     * and R1's gone with B1's rows for org2; B4's blind index. */
    const int64_t added[5] = {2, -1, 2 - 1, 1 - 2, 1};
    for (size_t i = 0; i < 5; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
        CHECK_EQ(count_of(file, sql), before[i] + added[i]);
    }
    CHECK_EQ(count_of(file, "SELECT count(*) FROM blind_index WHERE rid = '" B4 "' AND ben = '" B4
                            "' AND value = " BLIND_A),
             1);
    CHECK_EQ(count_of(file, "SELECT count(*) FROM sqlite_schema WHERE name = 'records_v6'"), 0);
    CHECK_EQ(count_of(file, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    CHECK_EQ(count_of(file, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check"
                            " <> 'ok'"),
             0);
}

/* A scope row naming a beneficiary without a record has no key in
 * migration 7: the migration fails and changes nothing. */
static void test_migration_7_refuses_what_it_cannot_key(void)
{
    const char *file = path("v6-orphan.db");
    CHECK_EQ(make_v6(file, "INSERT INTO scope(ben, org) VALUES ('" NOBODY "', 'org1');"), 0);
    struct spro_db *db;
    int v = 0;
    char why[256] = "";
    CHECK_EQ(spro_store__open(file, 0, spro_store__data_migrations,
                              spro_store__data_migrations_count, &db, &v, why, sizeof why),
             SPRO_ESTORE);
    CHECK(db == NULL);
    CHECK(strstr(why, "migration failed") != NULL);
    CHECK_EQ(version_of(file), 6);
    CHECK_EQ(count_of(file, "SELECT count(*) FROM scope WHERE ben = '" NOBODY "'"), 1);
    CHECK_EQ(count_of(file, "SELECT count(*) FROM sqlite_schema WHERE name = 'ben_scope'"), 0);
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
    {"migration_7_keeps_every_row", test_migration_7_keeps_every_row},
    {"migration_7_refuses_what_it_cannot_key", test_migration_7_refuses_what_it_cannot_key},
};

int main(int argc, char **argv)
{
    return spro_test_main_in_tmp("spro-store", tmp, sizeof tmp, tests,
                                 sizeof tests / sizeof tests[0], argc, argv);
}
