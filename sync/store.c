/*
 * store.c: every SQLite call of the project.
 *
 * Opens databases in WAL mode with synchronous=FULL (a committed
 * transaction is on disk before the call returns), applies forward-only
 * migrations, and translates SQLite result codes into SPRO_E* codes: the
 * SQLite message is put into the caller's `why` buffer or logged by the
 * caller, never passed to a client.
 *
 * Every public function takes the handle's mutex (see store.h), except
 * those of the sync engine, which run inside spro_store__transaction() and
 * find it held; the static helpers below expect it held.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#define STMT_CACHE 128 /* kept statements (sync engine, data keys), prepared once per handle */

struct spro_db {
    sqlite3 *db;
    char *path;         /* for messages */
    pthread_mutex_t mu; /* held for each call, whole transactions included */
    /* Inside spro_store__transaction(): set, with the thread running it. */
    int in_tx;
    pthread_t tx_thread;
    /* Prepared statements, keyed by the address of their SQL text (a
     * string literal of this file). */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    size_t ncache;
};

int spro_store__fail(sqlite3 *db, const char *path, const char *what, char *why, size_t whylen)
{
    if (why != NULL)
        snprintf(why, whylen, "%s: %s: %s", path, what, db ? sqlite3_errmsg(db) : "out of memory");
    return SPRO_ESTORE;
}

int spro_store__exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SPRO_ESTORE;
}

static int user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return SPRO_ESTORE;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : SPRO_ESTORE;
}

/* Applies every migration above the current version, all in one
 * transaction: the database ends fully migrated or untouched.  The version
 * is read inside that write transaction, so two processes opening the same
 * old database never both migrate it. */
static int migrate(sqlite3 *db, const char *path, const struct spro_migration *m, size_t count,
                   int *version, char *why, size_t whylen)
{
    for (size_t i = 0; i < count; i++)
        if (m[i].version != (int)i + 1)
            SPRO_BUG("migration list is not contiguous from 1");
    if (spro_store__exec(db, "BEGIN IMMEDIATE") != 0)
        return spro_store__fail(db, path, "cannot lock for migration", why, whylen);
    int v, rc = 0;
    if (user_version(db, &v) != 0) {
        rc = spro_store__fail(db, path, "cannot read schema version", why, whylen);
    } else if (v < 0 || v > (int)count) {
        if (why != NULL)
            snprintf(why, whylen,
                     "%s: schema version %d is newer than this program's %zu; "
                     "upgrade spro-sync (the database was not changed)",
                     path, v, count);
        rc = SPRO_ESCHEMA_NEWER;
    } else {
        for (size_t i = (size_t)v; i < count && rc == 0; i++)
            if (spro_store__exec(db, m[i].sql) != 0)
                rc = spro_store__fail(db, path, "migration failed", why, whylen);
        char pragma[48];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %zu", count);
        if (rc == 0 && spro_store__exec(db, pragma) != 0)
            rc = spro_store__fail(db, path, "cannot set schema version", why, whylen);
        if (rc == 0 && spro_store__exec(db, "COMMIT") != 0)
            rc = spro_store__fail(db, path, "migration commit failed", why, whylen);
    }
    if (rc != 0) {
        spro_store__exec(db, "ROLLBACK");
        return rc;
    }
    *version = (int)count;
    return 0;
}

static pthread_once_t configure_once = PTHREAD_ONCE_INIT;

/* Before SQLite's first use in the process: no memory statistics (each
 * allocation would take a global mutex for them).  Fails harmlessly
 * (SQLITE_MISUSE) if SQLite was initialised already. */
static void configure(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int spro_store__open(const char *path, int create, const struct spro_migration *migrations,
                     size_t count, struct spro_db **out, int *version, char *why, size_t whylen)
{
    *out = NULL;
    if (!create && access(path, F_OK) != 0) {
        if (why != NULL)
            snprintf(why, whylen, "%s: no such database", path);
        return SPRO_ENOENT;
    }
    pthread_once(&configure_once, configure);
    sqlite3 *db = NULL;
    /* NOMUTEX: every call on the connection holds the handle's own mutex
     * (h->mu, whole transactions included), so SQLite's per-call mutex
     * would only be taken and released again, about 10% of a push. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        int rc = spro_store__fail(db, path, "cannot open", why, whylen);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 1);
    if (spro_store__exec(db, "PRAGMA journal_mode = WAL") != 0 ||
        spro_store__exec(db, "PRAGMA synchronous = FULL") != 0 ||
        spro_store__exec(db, "PRAGMA foreign_keys = ON") != 0 ||
        spro_store__exec(db, "PRAGMA secure_delete = ON") != 0 ||
        /* 64 MiB of page cache, and reads through a memory map: a region's
         * records outgrow SQLite's 2 MiB default cache quickly. */
        spro_store__exec(db, "PRAGMA cache_size = -65536") != 0 ||
        spro_store__exec(db, "PRAGMA mmap_size = 1073741824") != 0 ||
        spro_store__exec(db, "PRAGMA wal_autocheckpoint = 8192") != 0) {
        int rc = spro_store__fail(db, path, "cannot configure", why, whylen);
        sqlite3_close(db);
        return rc;
    }
    int rc = migrate(db, path, migrations, count, version, why, whylen);
    /* Savepoint journals in memory, after the migrations (whose large
     * sorts may spill to files): by default one spills to a temporary
     * file past 64 KiB and then, until the transaction ends, every page
     * an op's savepoint changes is written there, several times the
     * WAL's writes for a push. */
    if (rc == 0 && spro_store__exec(db, "PRAGMA temp_store = MEMORY") != 0)
        rc = spro_store__fail(db, path, "cannot configure", why, whylen);
    if (rc != 0) {
        sqlite3_close(db);
        return rc;
    }
    struct spro_db *h = calloc(1, sizeof *h);
    if (h == NULL || (h->path = strdup(path)) == NULL)
        SPRO_BUG("out of memory");
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        SPRO_BUG("cannot initialise a mutex");
    h->db = db;
    *out = h;
    return 0;
}

void spro_store__close(struct spro_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < db->ncache; i++)
        sqlite3_finalize(db->cache[i].st);
    sqlite3_close_v2(db->db);
    pthread_mutex_destroy(&db->mu);
    free(db->path);
    free(db);
}

static void lock(struct spro_db *h)
{
    if (pthread_mutex_lock(&h->mu) != 0)
        SPRO_BUG("cannot lock the store mutex");
}

static void unlock(struct spro_db *h)
{
    pthread_mutex_unlock(&h->mu);
}

/* Puts "path: what: SQLite's message" into why; returns SPRO_ESTORE. */
static int store_fail(struct spro_db *h, const char *what, char *why, size_t whylen)
{
    return spro_store__fail(h->db, h->path, what, why, whylen);
}

int spro_store__ping(struct spro_db *db)
{
    sqlite3_stmt *st;
    lock(db);
    int rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM meta", -1, &st, NULL) == SQLITE_OK) {
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    unlock(db);
    return rc == SQLITE_ROW ? 0 : SPRO_ESTORE;
}

int spro_store__meta_put(struct spro_db *db, const char *key, const char *value)
{
    sqlite3_stmt *st;
    lock(db);
    int rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    unlock(db);
    return rc == SQLITE_DONE ? 0 : SPRO_ESTORE;
}

int spro_store__server_key_put(struct spro_db *db, const char *name, const uint8_t *pub,
                               size_t publen, const uint8_t *sealed, size_t sealedlen)
{
    sqlite3_stmt *st;
    lock(db);
    int rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db->db,
                           "INSERT INTO server_keys(name, public, sealed) VALUES (?1, ?2, ?3)", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, pub, (int)publen, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, sealed, (int)sealedlen, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    unlock(db);
    return rc == SQLITE_DONE ? 0 : SPRO_ESTORE;
}

static int server_key_get(struct spro_db *db, const char *name, uint8_t *pub, size_t publen,
                          uint8_t *sealed, size_t sealedlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT public, sealed FROM server_keys WHERE name = ?1", -1,
                           &st, NULL) != SQLITE_OK)
        return SPRO_ESTORE;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_DONE) {
        ret = SPRO_ENOENT;
    } else if (rc != SQLITE_ROW) {
        ret = SPRO_ESTORE;
    } else if ((size_t)sqlite3_column_bytes(st, 0) != publen ||
               (size_t)sqlite3_column_bytes(st, 1) != sealedlen) {
        ret = SPRO_EINTEGRITY;
    } else {
        memcpy(pub, sqlite3_column_blob(st, 0), publen);
        memcpy(sealed, sqlite3_column_blob(st, 1), sealedlen);
        ret = 0;
    }
    sqlite3_finalize(st);
    return ret;
}

int spro_store__server_key_get(struct spro_db *db, const char *name, uint8_t *pub, size_t publen,
                               uint8_t *sealed, size_t sealedlen)
{
    lock(db);
    int rc = server_key_get(db, name, pub, publen, sealed, sealedlen);
    unlock(db);
    return rc;
}

/* ---- data.db: organisations, users, devices, tickets ---- */

static int prepare(struct spro_db *h, const char *sql, sqlite3_stmt **st, char *why, size_t whylen)
{
    if (sqlite3_prepare_v2(h->db, sql, -1, st, NULL) == SQLITE_OK)
        return 0;
    *st = NULL;
    return store_fail(h, "cannot prepare a statement", why, whylen);
}

/* Takes the mutex and opens a write transaction at once, so that its reads
 * and writes see no other writer in between; on failure the mutex is
 * released. */
static int begin(struct spro_db *h, char *why, size_t whylen)
{
    lock(h);
    if (spro_store__exec(h->db, "BEGIN IMMEDIATE") == 0)
        return 0;
    int rc = store_fail(h, "cannot begin a transaction", why, whylen);
    unlock(h);
    return rc;
}

/* Commits (commit != 0) or rolls back the transaction of begin(), releases
 * the mutex and returns rc, or SPRO_ESTORE if the commit failed (rolled
 * back then). */
static int finish(struct spro_db *h, int commit, int rc, char *why, size_t whylen)
{
    if (commit && spro_store__exec(h->db, "COMMIT") != 0) {
        rc = store_fail(h, "cannot commit", why, whylen);
        commit = 0;
    }
    if (!commit)
        spro_store__exec(h->db, "ROLLBACK");
    unlock(h);
    return rc;
}

/* Steps a write statement and finalizes it: 0, SPRO_EEXISTS for a taken
 * key, SPRO_ENOENT for a missing referenced row, else SPRO_ESTORE. */
static int step_write(struct spro_db *h, sqlite3_stmt *st, char *why, size_t whylen)
{
    int src = sqlite3_step(st), rc;
    if (src == SQLITE_DONE)
        rc = 0;
    else if (src == SQLITE_CONSTRAINT_PRIMARYKEY || src == SQLITE_CONSTRAINT_UNIQUE)
        rc = SPRO_EEXISTS;
    else if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = SPRO_ENOENT;
    else
        rc = store_fail(h, "write failed", why, whylen);
    sqlite3_finalize(st);
    return rc;
}

/* Copies a TEXT column into dst (cap bytes with the NUL): SPRO_EINTEGRITY if
 * it is NULL, not text, or too long. */
static int copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) != SQLITE_TEXT)
        return SPRO_EINTEGRITY;
    const unsigned char *p = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (p == NULL || n >= cap)
        return SPRO_EINTEGRITY;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

static int parse_state(sqlite3_stmt *st, int col, enum spro_device_state *out)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    for (int i = SPRO_DEVICE_ACTIVE; s != NULL && i <= SPRO_DEVICE_WIPED; i++)
        if (strcmp(s, spro_device_state_name((enum spro_device_state)i)) == 0) {
            *out = (enum spro_device_state)i;
            return 0;
        }
    return SPRO_EINTEGRITY;
}

/* The columns read_device() expects, and the join that provides them. */
#define DEVICE_SELECT                                                                              \
    "SELECT d.rowid, d.id, d.user_id, u.org_id, u.role, d.state, d.enrolled_at, d.last_seen,"      \
    " d.last_ts_ms FROM devices AS d JOIN users AS u ON u.id = d.user_id "

static int read_device(sqlite3_stmt *st, struct spro_device *d)
{
    memset(d, 0, sizeof *d);
    int rc;
    if ((rc = copy_text(d->id, sizeof d->id, st, 1)) != 0 ||
        (rc = copy_text(d->user, sizeof d->user, st, 2)) != 0 ||
        (rc = copy_text(d->org, sizeof d->org, st, 3)) != 0 ||
        (rc = copy_text(d->role, sizeof d->role, st, 4)) != 0 ||
        (rc = parse_state(st, 5, &d->state)) != 0)
        return rc;
    d->rowid = sqlite3_column_int64(st, 0);
    d->enrolled_at = sqlite3_column_int64(st, 6);
    d->last_seen = sqlite3_column_int64(st, 7);
    d->last_ts_ms = sqlite3_column_int64(st, 8);
    return 0;
}

/* Runs a prepared DEVICE_SELECT expecting at most one row; finalizes it. */
static int one_device(struct spro_db *h, sqlite3_stmt *st, struct spro_device *out)
{
    int src = sqlite3_step(st), rc;
    if (src == SQLITE_ROW)
        rc = read_device(st, out);
    else if (src == SQLITE_DONE)
        rc = SPRO_ENOENT;
    else
        rc = store_fail(h, "cannot read a device", NULL, 0);
    sqlite3_finalize(st);
    return rc;
}

/* Appends note (if not NULL) to the audit log inside the transaction of
 * begin(): 0, or an error (the caller rolls back). */
static int audit_note(struct spro_db *h, const struct spro_audit_note *note, char *why,
                      size_t whylen);

int spro_store__org_insert(struct spro_db *db, const char *id, const char *name, const char *kind,
                           int64_t now, const struct spro_audit_note *note, char *why,
                           size_t whylen)
{
    sqlite3_stmt *st;
    int rc = begin(db, why, whylen);
    if (rc != 0)
        return rc;
    rc =
        prepare(db, "INSERT INTO organisations(id, name, kind, created_at) VALUES (?1, ?2, ?3, ?4)",
                &st, why, whylen);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        rc = step_write(db, st, why, whylen);
    }
    if (rc == 0)
        rc = audit_note(db, note, why, whylen);
    return finish(db, rc == 0, rc, why, whylen);
}

int spro_store__user_insert(struct spro_db *db, const char *id, const char *org_id,
                            const char *role, int64_t now, const struct spro_audit_note *note,
                            char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = begin(db, why, whylen);
    if (rc != 0)
        return rc;
    rc = prepare(db, "INSERT INTO users(id, org_id, role, created_at) VALUES (?1, ?2, ?3, ?4)", &st,
                 why, whylen);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, org_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        rc = step_write(db, st, why, whylen);
    }
    if (rc == 0)
        rc = audit_note(db, note, why, whylen);
    return finish(db, rc == 0, rc, why, whylen);
}

int spro_store__ticket_insert(struct spro_db *db, const char *id, const char *user_id,
                              const uint8_t mac[SPRO_MAC_BYTES], int64_t now, int64_t expires_at,
                              const struct spro_audit_note *note, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = begin(db, why, whylen);
    if (rc != 0)
        return rc;
    rc = prepare(db,
                 "INSERT INTO tickets(id, user_id, mac, created_at, expires_at)"
                 " VALUES (?1, ?2, ?3, ?4, ?5)",
                 &st, why, whylen);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, user_id, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, mac, SPRO_MAC_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_int64(st, 5, expires_at);
        rc = step_write(db, st, why, whylen);
    }
    if (rc == 0)
        rc = audit_note(db, note, why, whylen);
    return finish(db, rc == 0, rc, why, whylen);
}

/* The steps of spro_store__ticket_redeem() inside its transaction.  Sets
 * *commit when what was written must be kept although the result is a
 * refusal (a counted failure). */
static int redeem(struct spro_db *h, const char *ticket_id, const uint8_t mac[SPRO_MAC_BYTES],
                  int max_failures, const uint8_t device_pk[SPRO_KEY_BYTES], const char *device_id,
                  int64_t ts_ms, int64_t now, struct spro_device *out, int *commit)
{
    sqlite3_stmt *st;
    char user[SPRO_ID_MAX + 1];
    int rc = prepare(h,
                     "SELECT mac, expires_at, consumed_at IS NOT NULL, failures, user_id"
                     " FROM tickets WHERE id = ?1",
                     &st, NULL, 0);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, ticket_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = SPRO_ETICKET;
    } else if (src != SQLITE_ROW) {
        rc = store_fail(h, "cannot read a ticket", NULL, 0);
    } else if (sqlite3_column_bytes(st, 0) != SPRO_MAC_BYTES ||
               copy_text(user, sizeof user, st, 4) != 0) {
        rc = SPRO_EINTEGRITY;
    } else if (now >= sqlite3_column_int64(st, 1) || sqlite3_column_int(st, 2) != 0 ||
               sqlite3_column_int64(st, 3) >= max_failures) {
        rc = SPRO_ETICKET;
    } else if (!spro_crypto_equal(sqlite3_column_blob(st, 0), mac, SPRO_MAC_BYTES)) {
        rc = SPRO_ETICKET;
        *commit = 1; /* the failure counts, whatever the result */
    }
    sqlite3_finalize(st);
    if (*commit) {
        if ((rc = prepare(h, "UPDATE tickets SET failures = failures + 1 WHERE id = ?1", &st, NULL,
                          0)) != 0)
            return rc;
        sqlite3_bind_text(st, 1, ticket_id, -1, SQLITE_STATIC);
        return (rc = step_write(h, st, NULL, 0)) != 0 ? rc : SPRO_ETICKET;
    }
    if (rc != 0)
        return rc;

    if ((rc = prepare(h, "SELECT 1 FROM devices WHERE static_pk = ?1", &st, NULL, 0)) != 0)
        return rc;
    sqlite3_bind_blob(st, 1, device_pk, SPRO_KEY_BYTES, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src == SQLITE_ROW)
        return SPRO_EEXISTS;
    if (src != SQLITE_DONE)
        return store_fail(h, "cannot read devices", NULL, 0);

    if ((rc = prepare(h,
                      "UPDATE tickets SET consumed_at = ?2, device_id = ?3"
                      " WHERE id = ?1 AND consumed_at IS NULL",
                      &st, NULL, 0)) != 0)
        return rc;
    sqlite3_bind_text(st, 1, ticket_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, device_id, -1, SQLITE_STATIC);
    if ((rc = step_write(h, st, NULL, 0)) != 0)
        return rc;
    if (sqlite3_changes(h->db) != 1)
        return SPRO_ETICKET; /* consumed since it was read: cannot happen under the lock */

    if ((rc = prepare(h,
                      "INSERT INTO devices(id, user_id, static_pk, state, enrolled_at, last_seen,"
                      " last_ts_ms) VALUES (?1, ?2, ?3, 'active', ?4, ?4, ?5)",
                      &st, NULL, 0)) != 0)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, device_pk, SPRO_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, ts_ms);
    if ((rc = step_write(h, st, NULL, 0)) != 0)
        return rc == SPRO_EEXISTS ? SPRO_ESTORE : rc; /* a UUID collision */
    int64_t rowid = sqlite3_last_insert_rowid(h->db);

    if ((rc = prepare(h, DEVICE_SELECT "WHERE d.rowid = ?1", &st, NULL, 0)) != 0)
        return rc;
    sqlite3_bind_int64(st, 1, rowid);
    if ((rc = one_device(h, st, out)) != 0)
        return rc;
    *commit = 1;
    return 0;
}

int spro_store__ticket_redeem(struct spro_db *db, const char *ticket_id,
                              const uint8_t mac[SPRO_MAC_BYTES], int max_failures,
                              const uint8_t device_pk[SPRO_KEY_BYTES], const char *device_id,
                              int64_t ts_ms, int64_t now, const struct spro_audit_note *note,
                              struct spro_device *out)
{
    int rc = begin(db, NULL, 0);
    if (rc != 0)
        return rc;
    int commit = 0;
    rc = redeem(db, ticket_id, mac, max_failures, device_pk, device_id, ts_ms, now, out, &commit);
    if (rc == 0 && (rc = audit_note(db, note, NULL, 0)) != 0)
        commit = 0;
    return finish(db, commit, rc, NULL, 0);
}

int spro_store__device_get(struct spro_db *db, const uint8_t pk[SPRO_KEY_BYTES], int64_t rowid,
                           struct spro_device *out)
{
    sqlite3_stmt *st;
    lock(db);
    int rc = prepare(
        db, pk ? DEVICE_SELECT "WHERE d.static_pk = ?1" : DEVICE_SELECT "WHERE d.rowid = ?1", &st,
        NULL, 0);
    if (rc == 0) {
        if (pk != NULL)
            sqlite3_bind_blob(st, 1, pk, SPRO_KEY_BYTES, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, 1, rowid);
        rc = one_device(db, st, out);
    }
    unlock(db);
    return rc;
}

int spro_store__device_accept_ts(struct spro_db *db, int64_t rowid, int64_t ts_ms, int64_t now)
{
    sqlite3_stmt *st;
    lock(db);
    int rc = prepare(db,
                     "UPDATE devices SET last_ts_ms = ?2, last_seen = ?3"
                     " WHERE rowid = ?1 AND last_ts_ms < ?2",
                     &st, NULL, 0);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, rowid);
        sqlite3_bind_int64(st, 2, ts_ms);
        sqlite3_bind_int64(st, 3, now);
        rc = step_write(db, st, NULL, 0);
    }
    if (rc == 0 && sqlite3_changes(db->db) != 1 &&
        (rc = prepare(db, "SELECT 1 FROM devices WHERE rowid = ?1", &st, NULL, 0)) == 0) {
        sqlite3_bind_int64(st, 1, rowid);
        int src = sqlite3_step(st);
        rc = src == SQLITE_ROW    ? SPRO_EREPLAY
             : src == SQLITE_DONE ? SPRO_ENOENT
                                  : store_fail(db, "cannot read a device", NULL, 0);
        sqlite3_finalize(st);
    }
    unlock(db);
    return rc;
}

int spro_store__device_transition(struct spro_db *db, const char *id, int64_t rowid,
                                  unsigned from_mask, enum spro_device_state to,
                                  enum spro_device_state *prev, const struct spro_audit_note *note,
                                  char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = begin(db, why, whylen);
    if (rc != 0)
        return rc;
    if ((rc = prepare(db,
                      id ? "SELECT rowid, state FROM devices WHERE id = ?1"
                         : "SELECT rowid, state FROM devices WHERE rowid = ?1",
                      &st, why, whylen)) != 0)
        return finish(db, 0, rc, why, whylen);
    if (id != NULL)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, rowid);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        rowid = sqlite3_column_int64(st, 0);
        rc = parse_state(st, 1, prev);
    } else {
        rc = src == SQLITE_DONE ? SPRO_ENOENT : store_fail(db, "cannot read a device", why, whylen);
    }
    sqlite3_finalize(st);
    if (rc != 0 || (from_mask & (1u << *prev)) == 0)
        return finish(db, 0, rc, why, whylen);
    if ((rc = prepare(db, "UPDATE devices SET state = ?2 WHERE rowid = ?1", &st, why, whylen)) ==
        0) {
        sqlite3_bind_int64(st, 1, rowid);
        sqlite3_bind_text(st, 2, spro_device_state_name(to), -1, SQLITE_STATIC);
        rc = step_write(db, st, why, whylen);
    }
    /* A revoked or wiped device never pushes again: the answers kept for
     * its retries (and its clamped versions) go.  Its quarantined ops stay
     * for the administrators. */
    static const char *const forget[] = {
        "DELETE FROM op_siblings WHERE device_id = (SELECT id FROM devices WHERE rowid = ?1)",
        "DELETE FROM ops WHERE device_id = (SELECT id FROM devices WHERE rowid = ?1)",
        "DELETE FROM op_acks WHERE device_id = (SELECT id FROM devices WHERE rowid = ?1)",
        "DELETE FROM clamps WHERE device_id = (SELECT id FROM devices WHERE rowid = ?1)",
    };
    for (size_t i = 0; rc == 0 && (to == SPRO_DEVICE_REVOKED || to == SPRO_DEVICE_WIPED) &&
                       i < sizeof forget / sizeof forget[0];
         i++)
        if ((rc = prepare(db, forget[i], &st, why, whylen)) == 0) {
            sqlite3_bind_int64(st, 1, rowid);
            rc = step_write(db, st, why, whylen);
        }
    if (rc == 0)
        rc = audit_note(db, note, why, whylen);
    return finish(db, rc == 0, rc, why, whylen);
}

int spro_store__device_list(struct spro_db *db, struct spro_device **rows, size_t *n)
{
    sqlite3_stmt *st;
    struct spro_device *v = NULL;
    size_t len = 0, cap = 0;
    *rows = NULL;
    *n = 0;
    lock(db);
    int rc = prepare(db, DEVICE_SELECT "ORDER BY d.rowid", &st, NULL, 0), src = SQLITE_DONE;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? 2 * cap : 16;
            if ((v = realloc(v, cap * sizeof *v)) == NULL)
                SPRO_BUG("out of memory");
        }
        rc = read_device(st, &v[len++]);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = store_fail(db, "cannot list devices", NULL, 0);
    sqlite3_finalize(st);
    unlock(db);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *rows = v;
    *n = len;
    return 0;
}

int spro_store__quarantine_list(struct spro_db *db, struct spro_quarantined **rows, size_t *n)
{
    sqlite3_stmt *st;
    struct spro_quarantined *v = NULL;
    size_t len = 0, cap = 0;
    *rows = NULL;
    *n = 0;
    lock(db);
    int rc = prepare(db,
                     "SELECT device_id, seq, ben, code, at FROM quarantine "
                     "ORDER BY at, device_id, seq",
                     &st, NULL, 0),
        src = SQLITE_DONE;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? 2 * cap : 16;
            if ((v = realloc(v, cap * sizeof *v)) == NULL)
                SPRO_BUG("out of memory");
        }
        struct spro_quarantined *q = &v[len++];
        memset(q, 0, sizeof *q);
        snprintf(q->device, sizeof q->device, "%s", (const char *)sqlite3_column_text(st, 0));
        q->seq = (uint64_t)sqlite3_column_int64(st, 1);
        snprintf(q->ben, sizeof q->ben, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(q->code, sizeof q->code, "%s", (const char *)sqlite3_column_text(st, 3));
        q->at_ms = sqlite3_column_int64(st, 4);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = store_fail(db, "cannot list the quarantine", NULL, 0);
    sqlite3_finalize(st);
    unlock(db);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *rows = v;
    *n = len;
    return 0;
}

/* ---- Transactions of the sync engine ---- */

int spro_store__transaction(struct spro_db *db, enum spro_tx kind,
                            int (*fn)(struct spro_db *db, void *arg), void *arg)
{
    lock(db);
    if (spro_store__exec(db->db, kind == SPRO_TX_WRITE ? "BEGIN IMMEDIATE" : "BEGIN") != 0) {
        unlock(db);
        return SPRO_ESTORE;
    }
    db->in_tx = 1;
    db->tx_thread = pthread_self();
    int rc = fn(db, arg);
    db->in_tx = 0;
    if (rc == 0 && kind == SPRO_TX_WRITE && spro_store__exec(db->db, "COMMIT") != 0)
        rc = SPRO_ESTORE;
    if (rc != 0 || kind == SPRO_TX_READ)
        spro_store__exec(db->db, "ROLLBACK");
    unlock(db);
    return rc;
}

/* The statement for sql, prepared once and kept; NULL if it cannot be
 * prepared.  The mutex must be held; the statement must be reset (tx_done)
 * before the mutex is released. */
static sqlite3_stmt *kept_stmt(struct spro_db *h, const char *sql)
{
    for (size_t i = 0; i < h->ncache; i++)
        if (h->cache[i].sql == sql)
            return h->cache[i].st;
    if (h->ncache == STMT_CACHE)
        SPRO_BUG("store: statement cache full (raise STMT_CACHE)");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return NULL;
    h->cache[h->ncache].sql = sql;
    h->cache[h->ncache++].st = st;
    return st;
}

/* kept_stmt(), only inside a transaction of this thread. */
static sqlite3_stmt *tx_stmt(struct spro_db *h, const char *sql)
{
    if (!h->in_tx || !pthread_equal(h->tx_thread, pthread_self()))
        SPRO_BUG("store: a transaction function called outside spro_store__transaction()");
    return kept_stmt(h, sql);
}

/* Makes a kept statement ready for its next use. */
static void tx_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* The code of a write statement's step result src: 0 when done,
 * SPRO_EEXISTS for a taken key, SPRO_ENOENT for a missing referenced row,
 * else SPRO_ESTORE. */
static int write_code(int src)
{
    if (src == SQLITE_DONE)
        return 0;
    if (src == SQLITE_CONSTRAINT_PRIMARYKEY || src == SQLITE_CONSTRAINT_UNIQUE)
        return SPRO_EEXISTS;
    if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
        return SPRO_ENOENT;
    return SPRO_ESTORE;
}

/* Steps a kept write statement: write_code() of the result. */
static int tx_write(sqlite3_stmt *st)
{
    int src = sqlite3_step(st);
    tx_done(st);
    return write_code(src);
}

/* Steps a kept query for whether it has a row: *yes. */
static int tx_exists(sqlite3_stmt *st, int *yes)
{
    int src = sqlite3_step(st);
    tx_done(st);
    *yes = src == SQLITE_ROW;
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : SPRO_ESTORE;
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Inside a transaction: *yes = 1 if the one-parameter query sql (a string
 * literal of this file, "SELECT 1 ... ?1") finds a row for value, else 0.
 * SPRO_ESTORE if it cannot run. */
static int tx_exists_str(struct spro_db *db, const char *sql, const char *value, int *yes)
{
    sqlite3_stmt *st = tx_stmt(db, sql);
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, value);
    return tx_exists(st, yes);
}

/* hlc values and op sequence numbers are below 2^63: they fit INTEGER. */
static void bind_u63(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static int column_u63(sqlite3_stmt *st, int col, uint64_t *v)
{
    sqlite3_int64 x = sqlite3_column_int64(st, col);
    if (sqlite3_column_type(st, col) != SQLITE_INTEGER || x <= 0)
        return SPRO_EINTEGRITY;
    *v = (uint64_t)x;
    return 0;
}

static int savepoint_exec(struct spro_db *h, const char *sql)
{
    sqlite3_stmt *st = tx_stmt(h, sql);
    return st == NULL ? SPRO_ESTORE : tx_write(st);
}

int spro_store__savepoint(struct spro_db *db, int (*fn)(struct spro_db *db, void *arg), void *arg)
{
    static const char begin_sql[] = "SAVEPOINT op";
    static const char undo_sql[] = "ROLLBACK TO op";
    static const char release_sql[] = "RELEASE op";
    int rc = savepoint_exec(db, begin_sql);
    if (rc != 0)
        return rc;
    rc = fn(db, arg);
    if (rc != 0 && savepoint_exec(db, undo_sql) != 0)
        return SPRO_ESTORE;
    int rel = savepoint_exec(db, release_sql);
    return rc != 0 ? rc : rel;
}

/* ---- data.db, inside a transaction: records, fields, scope ----
 *
 * Since migration 7 the tables of a record's fields, blind indexes and
 * scope are keyed by records.id (see sync/schema.c).  The functions of a
 * record's fields, blind indexes and change number take that id, which
 * the caller got from spro_store__record_get() or _record_insert() in the
 * same transaction (and savepoint: a rolled-back savepoint may give an id
 * again to another record).  The others take (rtype, rid) and ben strings
 * and find the ids by the subqueries of REC_ID and BEN_ID inside their
 * statements.  A key that finds no record is NULL, which a NOT NULL column
 * refuses: tx_write_key() makes that SPRO_ENOENT. */

/* The id of the record (rtype, rid), from the parameters ?RT and ?RI. */
#define REC_ID(RT, RI) "(SELECT id FROM records WHERE rtype = ?" #RT " AND rid = ?" #RI ")"
/* The id of the record of beneficiary ?B. */
#define BEN_ID(B)                                                                                  \
    "(SELECT id FROM records WHERE rtype = '" SPRO_RTYPE_BENEFICIARY "' AND rid = ?" #B ")"
/* Those of the parameters used below, by name (clang-format cannot lay
 * out a string whose pieces are macro calls). */
#define REC_ID_1_2 REC_ID(1, 2)
#define BEN_ID_1 BEN_ID(1)
#define BEN_ID_2 BEN_ID(2)
#define BEN_ID_3 BEN_ID(3)
#define BEN_ID_4 BEN_ID(4)

/* tx_write() of a statement that writes a key found by REC_ID or BEN_ID
 * into a NOT NULL column: SPRO_ENOENT if there was no such record. */
static int tx_write_key(sqlite3_stmt *st)
{
    int src = sqlite3_step(st);
    tx_done(st);
    return src == SQLITE_CONSTRAINT_NOTNULL || src == SQLITE_CONSTRAINT_FOREIGNKEY
               ? SPRO_ENOENT
               : write_code(src);
}

int spro_store__sync_state_get(struct spro_db *db, uint64_t *hlc, int64_t *seq)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT hlc, change_seq FROM sync_state WHERE id = 1");
    if (st == NULL)
        return SPRO_ESTORE;
    int src = sqlite3_step(st), rc = SPRO_ESTORE;
    if (src == SQLITE_ROW) {
        sqlite3_int64 h = sqlite3_column_int64(st, 0);
        *seq = sqlite3_column_int64(st, 1);
        *hlc = (uint64_t)h;
        rc = h < 0 || *seq < 0 ? SPRO_EINTEGRITY : 0;
    } else if (src == SQLITE_DONE) {
        rc = SPRO_EINTEGRITY;
    }
    tx_done(st);
    return rc;
}

int spro_store__sync_state_put(struct spro_db *db, uint64_t hlc, int64_t seq)
{
    sqlite3_stmt *st = tx_stmt(db, "UPDATE sync_state SET hlc = ?1, change_seq = ?2 WHERE id = 1");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_u63(st, 1, hlc);
    sqlite3_bind_int64(st, 2, seq);
    return tx_write(st);
}

/* ---- data.db, inside a transaction: the sync horizon ---- */

int spro_store__purged_get(struct spro_db *db, int64_t *purged)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT purged_seq FROM sync_state WHERE id = 1");
    if (st == NULL)
        return SPRO_ESTORE;
    int src = sqlite3_step(st), rc = SPRO_ESTORE;
    if (src == SQLITE_ROW) {
        *purged = sqlite3_column_int64(st, 0);
        rc = *purged < 0 ? SPRO_EINTEGRITY : 0;
    } else if (src == SQLITE_DONE) {
        rc = SPRO_EINTEGRITY;
    }
    tx_done(st);
    return rc;
}

int spro_store__device_ack(struct spro_db *db, const char *device, int64_t seq, int64_t at_ms,
                           int64_t refresh_ms, int *written)
{
    sqlite3_stmt *st =
        tx_stmt(db, "INSERT INTO device_sync(device_id, acked_seq, acked_at)"
                    " VALUES (?1, min(?2, (SELECT change_seq FROM sync_state WHERE id = 1)), ?3)"
                    " ON CONFLICT (device_id) DO UPDATE SET acked_seq = excluded.acked_seq,"
                    " acked_at = excluded.acked_at"
                    " WHERE acked_seq != excluded.acked_seq OR acked_at <= excluded.acked_at - ?4");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, at_ms);
    sqlite3_bind_int64(st, 4, refresh_ms);
    int rc = tx_write(st);
    *written = rc == 0 && sqlite3_changes(db->db) > 0;
    return rc;
}

int spro_store__purge(struct spro_db *db, int64_t since_ms, size_t *purged)
{
    /* The horizon: the lowest acknowledged cursor of the active devices
     * that pulled at or after since_ms, or the change counter when there
     * is none. */
    sqlite3_stmt *h = tx_stmt(db, "SELECT coalesce((SELECT min(s.acked_seq) FROM device_sync AS s"
                                  " JOIN devices AS d ON d.id = s.device_id"
                                  " WHERE d.state = 'active' AND s.acked_at >= ?1),"
                                  " (SELECT change_seq FROM sync_state WHERE id = 1))");
    if (h == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(h, 1, since_ms);
    int src = sqlite3_step(h);
    int64_t horizon = sqlite3_column_int64(h, 0);
    tx_done(h);
    if (src != SQLITE_ROW)
        return SPRO_ESTORE;
    sqlite3_stmt *mark = tx_stmt(db, "UPDATE sync_state SET purged_seq = max(purged_seq,"
                                     " (SELECT coalesce(max(seq), 0) FROM scope_removed"
                                     "  WHERE seq <= ?1)) WHERE id = 1");
    sqlite3_stmt *del = tx_stmt(db, "DELETE FROM scope_removed WHERE seq <= ?1");
    if (mark == NULL || del == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(mark, 1, horizon);
    sqlite3_bind_int64(del, 1, horizon);
    int rc = tx_write(mark);
    if (rc == 0)
        rc = tx_write(del);
    *purged = rc == 0 ? (size_t)sqlite3_changes(db->db) : 0;
    return rc;
}

static int read_record(sqlite3_stmt *st, struct spro_stored_record *r)
{
    int rc;
    if ((rc = copy_text(r->rtype, sizeof r->rtype, st, 0)) != 0 ||
        (rc = copy_text(r->rid, sizeof r->rid, st, 1)) != 0 ||
        (rc = copy_text(r->ben, sizeof r->ben, st, 2)) != 0 ||
        (rc = copy_text(r->created_by_org, sizeof r->created_by_org, st, 3)) != 0)
        return rc;
    r->changed_seq = sqlite3_column_int64(st, 4);
    r->removed = 0;
    r->id = 0; /* read by the callers that select it */
    r->sealed = NULL;
    r->sealed_len = 0;
    r->sealed_schema = 0;
    return r->changed_seq > 0 ? 0 : SPRO_EINTEGRITY;
}

int spro_store__record_get(struct spro_db *db, const char *rtype, const char *rid,
                           struct spro_stored_record *out)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT rtype, rid, ben, created_by_org, changed_seq, id"
                                   " FROM records WHERE rtype = ?1 AND rid = ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW    ? read_record(st, out)
             : src == SQLITE_DONE ? SPRO_ENOENT
                                  : SPRO_ESTORE;
    if (rc == 0)
        out->id = sqlite3_column_int64(st, 5);
    tx_done(st);
    return rc;
}

/* Reads the sealed set, its schema version and the plain fields (columns
 * col, col + 1, col + 2) into r, pointing into the statement's row. */
static int read_sealed(sqlite3_stmt *st, int col, struct spro_stored_record *r)
{
    r->sealed = NULL;
    r->sealed_len = 0;
    r->sealed_schema = 0;
    r->plain = NULL;
    r->plain_len = 0;
    if (sqlite3_column_type(st, col + 2) == SQLITE_BLOB) {
        r->plain = sqlite3_column_blob(st, col + 2);
        r->plain_len = (size_t)sqlite3_column_bytes(st, col + 2);
        if (r->plain == NULL) /* an empty blob */
            return SPRO_EINTEGRITY;
    } else if (sqlite3_column_type(st, col + 2) != SQLITE_NULL) {
        return SPRO_EINTEGRITY;
    }
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    sqlite3_int64 schema = sqlite3_column_int64(st, col + 1);
    if (sqlite3_column_type(st, col) != SQLITE_BLOB || schema < 0 || schema > UINT32_MAX)
        return SPRO_EINTEGRITY;
    r->sealed = sqlite3_column_blob(st, col);
    r->sealed_len = (size_t)sqlite3_column_bytes(st, col);
    r->sealed_schema = (uint32_t)schema;
    return r->sealed == NULL ? SPRO_EINTEGRITY : 0;
}

int spro_store__record_get_for(struct spro_db *db, const char *rtype, const char *rid,
                               const char *org, struct spro_stored_record *out, int *in_scope,
                               int *erased, struct spro_buf *sealed, struct spro_buf *plain)
{
    sqlite3_stmt *st = tx_stmt(
        db, "SELECT r.rtype, r.rid, r.ben, r.created_by_org, r.changed_seq, r.id,"
            " EXISTS (SELECT 1 FROM ben_scope AS s WHERE s.ben = r.ben_id AND s.org = ?3),"
            " EXISTS (SELECT 1 FROM erased AS e WHERE e.ben = r.ben), r.sealed, r.sealed_schema,"
            " r.plain FROM records AS r WHERE r.rtype = ?1 AND r.rid = ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    bind_str(st, 3, org);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW    ? read_record(st, out)
             : src == SQLITE_DONE ? SPRO_ENOENT
                                  : SPRO_ESTORE;
    if (rc == 0) {
        out->id = sqlite3_column_int64(st, 5);
        *in_scope = sqlite3_column_int(st, 6) != 0;
        *erased = sqlite3_column_int(st, 7) != 0;
        rc = read_sealed(st, 8, out);
    }
    sealed->len = 0;
    plain->len = 0;
    if (rc == 0 && out->sealed != NULL) {
        spro_buf_append(sealed, out->sealed, out->sealed_len);
        out->sealed = sealed->data;
    }
    if (rc == 0 && out->plain != NULL) {
        spro_buf_append(plain, out->plain, out->plain_len);
        out->plain = plain->data;
    }
    tx_done(st);
    return rc;
}

int spro_store__record_plain_get(struct spro_db *db, int64_t rec, struct spro_buf *plain, int *has)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT plain FROM records WHERE id = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW ? 0 : src == SQLITE_DONE ? SPRO_ENOENT : SPRO_ESTORE;
    plain->len = 0;
    *has = 0;
    if (rc == 0 && sqlite3_column_type(st, 0) == SQLITE_BLOB) {
        const void *b = sqlite3_column_blob(st, 0);
        if (b == NULL)
            rc = SPRO_EINTEGRITY;
        else
            spro_buf_append(plain, b, (size_t)sqlite3_column_bytes(st, 0)), *has = 1;
    } else if (rc == 0 && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        rc = SPRO_EINTEGRITY;
    }
    tx_done(st);
    return rc;
}

int spro_store__record_sealed_get(struct spro_db *db, int64_t rec, struct spro_buf *sealed,
                                  int *has, uint32_t *schema)
{
    sqlite3_stmt *st =
        tx_stmt(db, "SELECT sealed, sealed_schema, plain FROM records WHERE id = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    struct spro_stored_record r;
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW    ? read_sealed(st, 0, &r)
             : src == SQLITE_DONE ? SPRO_ENOENT
                                  : SPRO_ESTORE;
    sealed->len = 0;
    *has = rc == 0 && r.sealed != NULL;
    *schema = *has ? r.sealed_schema : 0;
    if (*has)
        spro_buf_append(sealed, r.sealed, r.sealed_len);
    tx_done(st);
    return rc;
}

int spro_store__record_fields_put(struct spro_db *db, int64_t rec, const uint8_t *plain,
                                  size_t plen, int set_sealed, const uint8_t *sealed, size_t slen,
                                  uint32_t schema, int64_t seq)
{
    sqlite3_stmt *st =
        tx_stmt(db, "UPDATE records SET plain = coalesce(?2, plain),"
                    " sealed = CASE WHEN ?6 THEN ?3 ELSE sealed END,"
                    " sealed_schema = CASE WHEN ?6 THEN ?4 ELSE sealed_schema END,"
                    " changed_seq = CASE WHEN ?5 > 0 THEN ?5 ELSE changed_seq END WHERE id = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    if (plain != NULL)
        sqlite3_bind_blob(st, 2, plen ? (const void *)plain : "", (int)plen, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    if (set_sealed && sealed != NULL) {
        sqlite3_bind_blob(st, 3, slen ? (const void *)sealed : "", (int)slen, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, schema);
    } else {
        sqlite3_bind_null(st, 3);
        sqlite3_bind_null(st, 4);
    }
    sqlite3_bind_int64(st, 5, seq);
    sqlite3_bind_int(st, 6, set_sealed != 0);
    return tx_write(st);
}

int spro_store__legacy_records(struct spro_db *db, int64_t after, int64_t *ids, size_t cap,
                               size_t *n)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT id FROM records WHERE plain IS NULL AND id > ?1"
                                   " ORDER BY id LIMIT ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)cap);
    int src = SQLITE_DONE;
    *n = 0;
    while (*n < cap && (src = sqlite3_step(st)) == SQLITE_ROW)
        ids[(*n)++] = sqlite3_column_int64(st, 0);
    tx_done(st);
    return src == SQLITE_DONE || src == SQLITE_ROW ? 0 : SPRO_ESTORE;
}

int spro_store__legacy_delete(struct spro_db *db, int64_t rec)
{
    sqlite3_stmt *st = tx_stmt(db, "DELETE FROM rec_siblings WHERE rec = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    return tx_write(st);
}

int spro_store__state_seen_put(struct spro_db *db, int64_t rec, uint64_t hlc, const char *origin,
                               int64_t at_ms, int closed)
{
    sqlite3_stmt *st = tx_stmt(db, "INSERT OR IGNORE INTO state_seen(rec, hlc, origin, at, closed)"
                                   " VALUES (?1, ?2, ?3, ?4, ?5)");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    bind_u63(st, 2, hlc);
    bind_str(st, 3, origin);
    sqlite3_bind_int64(st, 4, at_ms);
    sqlite3_bind_int(st, 5, closed != 0);
    return tx_write(st);
}

int spro_store__state_seen_delete(struct spro_db *db, int64_t rec, uint64_t hlc, const char *origin)
{
    sqlite3_stmt *st =
        tx_stmt(db, "DELETE FROM state_seen WHERE rec = ?1 AND hlc = ?2 AND origin = ?3");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    bind_u63(st, 2, hlc);
    bind_str(st, 3, origin);
    return tx_write(st);
}

int spro_store__record_by_id(struct spro_db *db, int64_t rec, struct spro_stored_record *out)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT rtype, rid, ben, created_by_org, changed_seq"
                                   " FROM records WHERE id = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW    ? read_record(st, out)
             : src == SQLITE_DONE ? SPRO_ENOENT
                                  : SPRO_ESTORE;
    if (rc == 0)
        out->id = rec;
    tx_done(st);
    return rc;
}

int spro_store__record_insert(struct spro_db *db, struct spro_stored_record *r, int64_t now_ms)
{
    /* The next id, given explicitly so that a beneficiary can name itself
     * as its ben_id; any other record names its beneficiary's record. */
    static const char sql[] =
        "INSERT INTO records(id, rtype, rid, ben, ben_id, created_by_org, created_at, changed_seq,"
        " plain)"
        " SELECT n.id, ?1, ?2, ?3,"
        " CASE WHEN ?1 = '" SPRO_RTYPE_BENEFICIARY "' AND ?2 = ?3 THEN n.id"
        " ELSE " BEN_ID_3 " END, ?4, ?5, ?6, X'90'"
        " FROM (SELECT coalesce(max(id), 0) + 1 AS id FROM records) AS n";
    sqlite3_stmt *st = tx_stmt(db, sql);
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, r->rtype);
    bind_str(st, 2, r->rid);
    bind_str(st, 3, r->ben);
    bind_str(st, 4, r->created_by_org);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int64(st, 6, r->changed_seq);
    int rc = tx_write_key(st);
    r->id = rc == 0 ? sqlite3_last_insert_rowid(db->db) : 0;
    return rc;
}

int spro_store__record_touch(struct spro_db *db, int64_t rec, int64_t seq)
{
    sqlite3_stmt *st = tx_stmt(db, "UPDATE records SET changed_seq = ?2 WHERE id = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    sqlite3_bind_int64(st, 2, seq);
    return tx_write(st);
}

int spro_store__ben_touch(struct spro_db *db, const char *ben, int64_t *seq)
{
    /* Read the keys first: updating changed_seq while walking its order
     * could visit a row twice. */
    sqlite3_stmt *st =
        tx_stmt(db, "SELECT id FROM records WHERE ben_id = " BEN_ID_1 " ORDER BY changed_seq");
    sqlite3_stmt *up = tx_stmt(db, "UPDATE records SET changed_seq = ?2 WHERE id = ?1");
    if (st == NULL || up == NULL)
        return SPRO_ESTORE;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, src;
    bind_str(st, 1, ben);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap && (ids = realloc(ids, (cap = cap ? 2 * cap : 8) * sizeof *ids)) == NULL)
            SPRO_BUG("out of memory");
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(up, 1, ids[i]);
        sqlite3_bind_int64(up, 2, ++*seq);
        rc = tx_write(up);
    }
    free(ids);
    return rc;
}

int spro_store__org_exists(struct spro_db *db, const char *org, int *yes)
{
    return tx_exists_str(db, "SELECT 1 FROM organisations WHERE id = ?1", org, yes);
}

int spro_store__scope_has(struct spro_db *db, const char *ben, const char *org, int *yes)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT 1 FROM ben_scope WHERE ben = " BEN_ID_1 " AND org = ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    bind_str(st, 2, org);
    return tx_exists(st, yes);
}

int spro_store__scope_add(struct spro_db *db, const char *ben, const char *org, int *added)
{
    /* Not OR IGNORE, which would ignore a ben without a record too. */
    sqlite3_stmt *st = tx_stmt(db, "INSERT INTO ben_scope(ben, org) VALUES (" BEN_ID_1 ", ?2)"
                                   " ON CONFLICT (ben, org) DO NOTHING");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    bind_str(st, 2, org);
    int rc = tx_write_key(st);
    *added = rc == 0 && sqlite3_changes(db->db) == 1;
    return rc;
}

int spro_store__scope_remove(struct spro_db *db, const char *ben, const char *org, int *removed)
{
    sqlite3_stmt *st = tx_stmt(db, "DELETE FROM ben_scope WHERE ben = " BEN_ID_1 " AND org = ?2");
    sqlite3_stmt *rec = tx_stmt(db, "DELETE FROM rec_scope WHERE org = ?2 AND rec IN"
                                    " (SELECT id FROM records WHERE ben_id = " BEN_ID_1 ")");
    if (st == NULL || rec == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    bind_str(st, 2, org);
    int rc = tx_write(st);
    *removed = rc == 0 && sqlite3_changes(db->db) == 1;
    if (rc == 0) {
        bind_str(rec, 1, ben);
        bind_str(rec, 2, org);
        rc = tx_write(rec);
    }
    return rc;
}

int spro_store__removal_log(struct spro_db *db, const char *ben, const char *org, int64_t *seq)
{
    sqlite3_stmt *st =
        tx_stmt(db, "INSERT INTO scope_removed(seq, org, rtype, rid, ben)"
                    " SELECT ?3 + row_number() OVER (ORDER BY changed_seq), ?2, rtype, rid, ben"
                    " FROM records WHERE ben_id = " BEN_ID_1);
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    bind_str(st, 2, org);
    sqlite3_bind_int64(st, 3, *seq);
    int rc = tx_write(st);
    if (rc == 0)
        *seq += sqlite3_changes(db->db);
    return rc;
}

int spro_store__record_scope_has(struct spro_db *db, const char *rtype, const char *rid,
                                 const char *org, int *yes)
{
    sqlite3_stmt *st =
        tx_stmt(db, "SELECT 1 FROM rec_scope WHERE rec = " REC_ID_1_2 " AND org = ?3");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    bind_str(st, 3, org);
    return tx_exists(st, yes);
}

int spro_store__record_scope_add(struct spro_db *db, const char *rtype, const char *rid,
                                 const char *org)
{
    sqlite3_stmt *st = tx_stmt(db, "INSERT INTO rec_scope(rec, org) VALUES (" REC_ID_1_2 ", ?3)"
                                   " ON CONFLICT (rec, org) DO NOTHING");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    bind_str(st, 3, org);
    return tx_write_key(st);
}

int spro_store__record_scope_remove(struct spro_db *db, const char *rtype, const char *rid,
                                    const char *org)
{
    sqlite3_stmt *st = tx_stmt(db, "DELETE FROM rec_scope WHERE rec = " REC_ID_1_2 " AND org = ?3");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    bind_str(st, 3, org);
    return tx_write(st);
}

/* Reads a sibling row: name, hlc, origin, author, schema, sealed, val
 * from column first on (fidx before them when with_fidx). */
static int read_sibling(sqlite3_stmt *st, int with_fidx, struct spro_stored_sibling *s)
{
    int c = 0;
    memset(s, 0, sizeof *s);
    if (with_fidx) {
        sqlite3_int64 f = sqlite3_column_int64(st, c++);
        if (f < 0 || f >= SPRO_SYNC_MAX_FIELDS)
            return SPRO_EINTEGRITY;
        s->fidx = (size_t)f;
    }
    s->name = (const char *)sqlite3_column_text(st, c);
    int rc = column_u63(st, c + 1, &s->hlc);
    s->origin = (const char *)sqlite3_column_text(st, c + 2);
    s->author = (const char *)sqlite3_column_text(st, c + 3);
    sqlite3_int64 schema = sqlite3_column_int64(st, c + 4);
    s->sealed = sqlite3_column_int(st, c + 5);
    s->val = sqlite3_column_blob(st, c + 6);
    s->val_len = (size_t)sqlite3_column_bytes(st, c + 6);
    if (rc != 0 || s->name == NULL || s->origin == NULL || s->author == NULL || schema < 0 ||
        schema > UINT32_MAX || sqlite3_column_type(st, c + 6) != SQLITE_BLOB)
        return SPRO_EINTEGRITY;
    s->schema = (uint32_t)schema;
    return 0;
}

/* Steps a kept sibling query, calling fn on each row. */
static int each_sibling(sqlite3_stmt *st, int with_fidx,
                        int (*fn)(const struct spro_stored_sibling *s, void *arg), void *arg)
{
    struct spro_stored_sibling s;
    int rc = 0, src;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = read_sibling(st, with_fidx, &s)) == 0)
            rc = fn(&s, arg);
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    return rc;
}

#define SIBLING_COLUMNS "name, hlc, origin, author, schema, sealed, val"

int spro_store__siblings_each(struct spro_db *db, int64_t rec, const char *name,
                              int (*fn)(const struct spro_stored_sibling *s, void *arg), void *arg)
{
    sqlite3_stmt *st = name ? tx_stmt(db, "SELECT " SIBLING_COLUMNS " FROM rec_siblings"
                                          " WHERE rec = ?1 AND name = ?2 ORDER BY hlc, origin")
                            : tx_stmt(db, "SELECT " SIBLING_COLUMNS " FROM rec_siblings"
                                          " WHERE rec = ?1 ORDER BY name, hlc, origin");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    if (name != NULL)
        bind_str(st, 2, name);
    return each_sibling(st, 0, fn, arg);
}

int spro_store__blind_put(struct spro_db *db, int64_t rec, const char *index, const uint8_t *value)
{
    sqlite3_stmt *st =
        value ? tx_stmt(db, "INSERT INTO rec_blind(rec, name, value) VALUES (?1, ?2, ?3)"
                            " ON CONFLICT (rec, name) DO UPDATE SET value = excluded.value")
              : tx_stmt(db, "DELETE FROM rec_blind WHERE rec = ?1 AND name = ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, rec);
    bind_str(st, 2, index);
    if (value != NULL)
        sqlite3_bind_blob(st, 3, value, SPRO_BLIND_INDEX_BYTES, SQLITE_STATIC);
    return tx_write_key(st);
}

/* ---- data.db, inside a transaction: duplicates and merge ---- */

int spro_store__blind_matches(struct spro_db *db, const char *rtype, const char *rid,
                              const char *index, char (*out)[SPRO_ID_MAX + 1], size_t cap,
                              size_t *n)
{
    /* CROSS JOIN: in this order (else the planner may walk every record
     * of rtype for the ORDER BY). */
    sqlite3_stmt *st =
        tx_stmt(db, "SELECT r.rid FROM rec_blind AS i"
                    " CROSS JOIN rec_blind AS o ON o.name = i.name AND o.value = i.value"
                    " AND o.rec <> i.rec"
                    " CROSS JOIN records AS r ON r.id = o.rec AND r.rtype = ?1"
                    " WHERE i.rec = " REC_ID_1_2 " AND i.name = ?3"
                    " AND NOT EXISTS (SELECT 1 FROM merged AS m WHERE m.ben = r.rid)"
                    " ORDER BY r.rid LIMIT ?4");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    bind_str(st, 3, index);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)cap);
    int rc = 0, src;
    *n = 0;
    while (rc == 0 && *n < cap && (src = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = copy_text(out[*n], sizeof out[*n], st, 0)) == 0)
            ++*n;
    if (rc == 0 && *n < cap && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    return rc;
}

int spro_store__duplicate_add(struct spro_db *db, const char *x, const char *y, const char *rid,
                              int *added)
{
    sqlite3_stmt *st = tx_stmt(db, "INSERT OR IGNORE INTO duplicates(a, b, rid)"
                                   " VALUES (min(?1, ?2), max(?1, ?2), ?3)");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, x);
    bind_str(st, 2, y);
    bind_str(st, 3, rid);
    int rc = tx_write(st);
    *added = rc == 0 && sqlite3_changes(db->db) > 0;
    return rc;
}

int spro_store__duplicate_scope(struct spro_db *db, const char *rtype, const char *rid,
                                const char *ben, const char *other)
{
    sqlite3_stmt *st =
        tx_stmt(db, "INSERT INTO rec_scope(rec, org)"
                    " SELECT " REC_ID_1_2 ", s.org FROM ben_scope AS s"
                    " WHERE s.ben = " BEN_ID_4 " AND NOT EXISTS (SELECT 1 FROM ben_scope AS t"
                    " WHERE t.ben = " BEN_ID_3 " AND t.org = s.org)"
                    " ON CONFLICT (rec, org) DO NOTHING");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    bind_str(st, 3, ben);
    bind_str(st, 4, other);
    return tx_write_key(st);
}

int spro_store__merged_get(struct spro_db *db, const char *ben, char keep[SPRO_ID_MAX + 1])
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT keep FROM merged WHERE ben = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW    ? copy_text(keep, SPRO_ID_MAX + 1, st, 0)
             : src == SQLITE_DONE ? SPRO_ENOENT
                                  : SPRO_ESTORE;
    tx_done(st);
    return rc;
}

int spro_store__merged_set(struct spro_db *db, const char *ben, const char *keep)
{
    sqlite3_stmt *st = keep != NULL
                           ? tx_stmt(db, "INSERT OR REPLACE INTO merged(ben, keep) VALUES (?1, ?2)")
                           : tx_stmt(db, "DELETE FROM merged WHERE ben = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    if (keep != NULL)
        bind_str(st, 2, keep);
    return tx_write(st);
}

int spro_store__ben_records(struct spro_db *db, const char *ben, struct spro_stored_record **out,
                            size_t *n)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT rtype, rid, ben, created_by_org, changed_seq, id"
                                   " FROM records WHERE ben_id = " BEN_ID_1 " AND rid <> ?1"
                                   " ORDER BY changed_seq");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    size_t cap = 0;
    int rc = 0, src;
    *out = NULL;
    *n = 0;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap && (*out = realloc(*out, (cap = cap ? 2 * cap : 8) * sizeof **out)) == NULL)
            SPRO_BUG("out of memory");
        if ((rc = read_record(st, &(*out)[*n])) == 0)
            (*out)[(*n)++].id = sqlite3_column_int64(st, 5);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int spro_store__record_move(struct spro_db *db, const char *rtype, const char *rid, const char *ben,
                            int64_t seq)
{
    sqlite3_stmt *st =
        tx_stmt(db, "UPDATE records SET ben = ?3, ben_id = " BEN_ID_3 ", changed_seq = ?4"
                    " WHERE rtype = ?1 AND rid = ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, rtype);
    bind_str(st, 2, rid);
    bind_str(st, 3, ben);
    sqlite3_bind_int64(st, 4, seq);
    return tx_write_key(st);
}

int spro_store__scope_copy(struct spro_db *db, const char *from, const char *to, int *added)
{
    static const char sql[] = "INSERT INTO ben_scope(ben, org)"
                              " SELECT " BEN_ID_2 ", org FROM ben_scope WHERE ben = " BEN_ID_1
                              " ON CONFLICT (ben, org) DO NOTHING";
    sqlite3_stmt *st = tx_stmt(db, sql);
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, from);
    bind_str(st, 2, to);
    int rc = tx_write_key(st);
    *added = rc == 0 && sqlite3_changes(db->db) > 0;
    return rc;
}

int spro_store__changes_each(struct spro_db *db, const char *org, int duplicates, int64_t after,
                             size_t limit, int (*fn)(const struct spro_stored_record *r, void *arg),
                             void *arg)
{
    /* A first pull (after = 0) is a snapshot: the device holds nothing
     * that a removal event could remove. */
    sqlite3_stmt *st =
        tx_stmt(db, "SELECT r.rtype, r.rid, r.ben, r.created_by_org, r.changed_seq, 0, r.id,"
                    " r.sealed, r.sealed_schema, r.plain"
                    " FROM records AS r WHERE r.changed_seq > ?2"
                    " AND (?4 OR r.rtype <> 'duplicate')"
                    " AND (EXISTS (SELECT 1 FROM ben_scope AS s"
                    " WHERE s.ben = r.ben_id AND s.org = ?1)"
                    " OR EXISTS (SELECT 1 FROM rec_scope AS k WHERE k.rec = r.id AND k.org = ?1))"
                    " UNION ALL"
                    " SELECT x.rtype, x.rid, x.ben, '', x.seq, 1, 0, NULL, NULL, NULL"
                    " FROM scope_removed AS x"
                    " WHERE ?2 > 0 AND x.org = ?1 AND x.seq > ?2"
                    " AND (?4 OR x.rtype <> 'duplicate')"
                    " ORDER BY 5 LIMIT ?3");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, org);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    sqlite3_bind_int(st, 4, duplicates != 0);
    struct spro_stored_record r;
    int rc = 0, src;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = read_record(st, &r)) == 0) {
            r.removed = sqlite3_column_int(st, 5);
            r.id = sqlite3_column_int64(st, 6);
            if ((rc = read_sealed(st, 7, &r)) == 0)
                rc = fn(&r, arg);
        }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    return rc;
}

/* ---- data.db, inside a transaction: answered ops, clamps, quarantine ---- */

static const char *const status_names[] = {[SPRO_RESULT_ACK] = "ack",
                                           [SPRO_RESULT_CONFLICT] = "conflict",
                                           [SPRO_RESULT_REJECT] = "reject"};

/* A TEXT column that may be NULL ("" then). */
static int copy_opt_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        dst[0] = '\0';
        return 0;
    }
    return copy_text(dst, cap, st, col);
}

static int read_op(sqlite3_stmt *st, struct spro_stored_op *op)
{
    const char *status = (const char *)sqlite3_column_text(st, 0);
    int rc = SPRO_EINTEGRITY;
    memset(op, 0, sizeof *op);
    for (int i = SPRO_RESULT_ACK; status != NULL && i <= SPRO_RESULT_REJECT; i++)
        if (strcmp(status, status_names[i]) == 0) {
            op->status = (enum spro_result_status)i;
            rc = 0;
        }
    if (rc == 0 && op->status != SPRO_RESULT_REJECT)
        rc = column_u63(st, 1, &op->hlc);
    if (rc != 0 || (rc = copy_opt_text(op->origin, sizeof op->origin, st, 2)) != 0 ||
        (rc = copy_opt_text(op->code, sizeof op->code, st, 3)) != 0 ||
        (rc = copy_opt_text(op->rtype, sizeof op->rtype, st, 4)) != 0 ||
        (rc = copy_opt_text(op->rid, sizeof op->rid, st, 5)) != 0)
        return rc;
    return copy_opt_text(op->ben, sizeof op->ben, st, 6);
}

int spro_store__op_get(struct spro_db *db, const char *device, uint64_t seq,
                       struct spro_stored_op *out)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT status, hlc, origin, code, rtype, rid, ben FROM ops"
                                   " WHERE device_id = ?1 AND seq = ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    bind_u63(st, 2, seq);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW ? read_op(st, out) : src == SQLITE_DONE ? SPRO_ENOENT : SPRO_ESTORE;
    tx_done(st);
    return rc;
}

/* Binds s, or NULL for "". */
static void bind_opt_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s[0] != '\0')
        bind_str(st, i, s);
}

int spro_store__op_put(struct spro_db *db, const char *device, uint64_t seq,
                       const struct spro_stored_op *op, int64_t at_ms)
{
    sqlite3_stmt *st = tx_stmt(
        db, "INSERT INTO ops(device_id, seq, status, hlc, origin, code, rtype, rid, ben, at)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (st == NULL)
        return SPRO_ESTORE;
    if (op->status > SPRO_RESULT_REJECT)
        SPRO_BUG("spro_store__op_put: invalid status");
    bind_str(st, 1, device);
    bind_u63(st, 2, seq);
    bind_str(st, 3, status_names[op->status]);
    if (op->status != SPRO_RESULT_REJECT)
        bind_u63(st, 4, op->hlc);
    bind_opt_str(st, 5, op->origin);
    bind_opt_str(st, 6, op->code);
    bind_opt_str(st, 7, op->rtype);
    bind_opt_str(st, 8, op->rid);
    bind_opt_str(st, 9, op->ben);
    sqlite3_bind_int64(st, 10, at_ms);
    return tx_write(st);
}

int spro_store__op_acks_put(struct spro_db *db, const char *device, const uint8_t *acks, size_t n,
                            int64_t at_ms)
{
    sqlite3_stmt *st = tx_stmt(db, "INSERT INTO op_acks(device_id, first, last, at, acks)"
                                   " VALUES (?1, ?2, ?3, ?4, ?5)");
    if (st == NULL)
        return SPRO_ESTORE;
    if (n == 0 || n > SIZE_MAX / 16)
        SPRO_BUG("spro_store__op_acks_put: no ack");
    bind_str(st, 1, device);
    bind_u63(st, 2, spro_load_be64(acks));
    bind_u63(st, 3, spro_load_be64(acks + 16 * (n - 1)));
    sqlite3_bind_int64(st, 4, at_ms);
    sqlite3_bind_blob(st, 5, acks, (int)(16 * n), SQLITE_STATIC);
    return tx_write(st);
}

int spro_store__op_ack_get(struct spro_db *db, const char *device, uint64_t seq, uint64_t *hlc)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT acks FROM op_acks WHERE device_id = ?1"
                                   " AND first <= ?2 AND last >= ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    bind_u63(st, 2, seq);
    int rc = SPRO_ENOENT, src;
    while (rc == SPRO_ENOENT && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *a = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0), lo = 0, hi = len / 16;
        if (a == NULL || len % 16 != 0) {
            rc = SPRO_EINTEGRITY;
            break;
        }
        while (lo < hi) { /* by ascending seq */
            size_t mid = lo + (hi - lo) / 2;
            uint64_t m = spro_load_be64(a + 16 * mid);
            if (m == seq) {
                *hlc = spro_load_be64(a + 16 * mid + 8);
                rc = *hlc > 0 && *hlc <= INT64_MAX ? 0 : SPRO_EINTEGRITY;
                break;
            }
            if (m < seq)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    if (rc == SPRO_ENOENT && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    return rc;
}

int spro_store__answered_max(struct spro_db *db, const char *device, uint64_t *max)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT max(coalesce((SELECT max(seq) FROM ops"
                                   " WHERE device_id = ?1), 0), coalesce((SELECT max(last)"
                                   " FROM op_acks WHERE device_id = ?1), 0))");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    int src = sqlite3_step(st);
    sqlite3_int64 v = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    tx_done(st);
    if (src != SQLITE_ROW)
        return SPRO_ESTORE;
    if (v < 0)
        return SPRO_EINTEGRITY;
    *max = (uint64_t)v;
    return 0;
}

int spro_store__ops_prune(struct spro_db *db, const char *device, uint64_t seq, int64_t at_ms,
                          size_t *n)
{
    /* The oldest answers first, up to the first one too recent (answers
     * are given in seq order, so their times grow with seq): bounded work
     * per push, not a scan of the device's whole history. */
    sqlite3_stmt *find = tx_stmt(db, "SELECT seq, at FROM ops WHERE device_id = ?1 AND seq < ?2"
                                     " ORDER BY seq LIMIT 1024");
    sqlite3_stmt *sib = tx_stmt(db, "DELETE FROM op_siblings WHERE device_id = ?1 AND seq < ?2");
    sqlite3_stmt *op = tx_stmt(db, "DELETE FROM ops WHERE device_id = ?1 AND seq < ?2");
    if (find == NULL || sib == NULL || op == NULL)
        return SPRO_ESTORE;
    bind_str(find, 1, device);
    bind_u63(find, 2, seq);
    uint64_t bound = 0; /* answers below it go */
    size_t count = 0;
    int src;
    while ((src = sqlite3_step(find)) == SQLITE_ROW && sqlite3_column_int64(find, 1) < at_ms) {
        bound = (uint64_t)sqlite3_column_int64(find, 0) + 1;
        count++;
    }
    tx_done(find);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return SPRO_ESTORE;
    int rc = 0;
    sqlite3_stmt *st[2] = {sib, op};
    for (int i = 0; rc == 0 && bound > 0 && i < 2; i++) {
        bind_str(st[i], 1, device);
        bind_u63(st[i], 2, bound);
        rc = tx_write(st[i]);
    }
    /* Kept acks: a row whose every seq is below seq, given before at_ms. */
    sqlite3_stmt *acks = rc == 0 ? tx_stmt(db, "DELETE FROM op_acks WHERE device_id = ?1"
                                               " AND last < ?2 AND at < ?3")
                                 : NULL;
    if (rc == 0 && acks == NULL)
        rc = SPRO_ESTORE;
    if (rc == 0) {
        bind_str(acks, 1, device);
        bind_u63(acks, 2, seq);
        sqlite3_bind_int64(acks, 3, at_ms);
        if ((rc = tx_write(acks)) == 0)
            count += (size_t)sqlite3_changes(db->db);
    }
    if (rc == 0 && n != NULL)
        *n = count;
    return rc;
}

int spro_store__op_sibling_put(struct spro_db *db, const char *device, uint64_t seq, size_t fidx,
                               const struct spro_stored_sibling *s)
{
    sqlite3_stmt *st =
        tx_stmt(db, "INSERT INTO op_siblings(device_id, seq, fidx, " SIBLING_COLUMNS ")"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    bind_u63(st, 2, seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)fidx);
    bind_str(st, 4, s->name);
    bind_u63(st, 5, s->hlc);
    bind_str(st, 6, s->origin);
    bind_str(st, 7, s->author);
    sqlite3_bind_int64(st, 8, s->schema);
    sqlite3_bind_int(st, 9, s->sealed != 0);
    sqlite3_bind_blob(st, 10, s->val_len ? (const void *)s->val : "", (int)s->val_len,
                      SQLITE_STATIC);
    return tx_write(st);
}

int spro_store__op_siblings_each(struct spro_db *db, const char *device, uint64_t seq,
                                 int (*fn)(const struct spro_stored_sibling *s, void *arg),
                                 void *arg)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT fidx, " SIBLING_COLUMNS " FROM op_siblings"
                                   " WHERE device_id = ?1 AND seq = ?2 ORDER BY fidx, hlc, origin");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    bind_u63(st, 2, seq);
    return each_sibling(st, 1, fn, arg);
}

int spro_store__clamp_any(struct spro_db *db, const char *device, int *yes)
{
    return tx_exists_str(db, "SELECT 1 FROM clamps WHERE device_id = ?1 LIMIT 1", device, yes);
}

int spro_store__clamp_put(struct spro_db *db, const char *device, uint64_t hlc, uint64_t ver_hlc)
{
    sqlite3_stmt *st = tx_stmt(db, "INSERT OR IGNORE INTO clamps(device_id, hlc, ver_hlc)"
                                   " VALUES (?1, ?2, ?3)");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    bind_u63(st, 2, hlc);
    bind_u63(st, 3, ver_hlc);
    return tx_write(st);
}

int spro_store__clamp_get(struct spro_db *db, const char *device, uint64_t hlc, uint64_t *ver_hlc)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT ver_hlc FROM clamps WHERE device_id = ?1 AND hlc = ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    bind_u63(st, 2, hlc);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW    ? column_u63(st, 0, ver_hlc)
             : src == SQLITE_DONE ? SPRO_ENOENT
                                  : SPRO_ESTORE;
    tx_done(st);
    return rc;
}

int spro_store__quarantine_put(struct spro_db *db, const char *device, uint64_t seq,
                               const char *ben, const char *code, int64_t at_ms, const uint8_t *op,
                               size_t oplen)
{
    sqlite3_stmt *st = tx_stmt(db, "INSERT INTO quarantine(device_id, seq, ben, code, at, op)"
                                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, device);
    bind_u63(st, 2, seq);
    bind_str(st, 3, ben);
    bind_str(st, 4, code);
    sqlite3_bind_int64(st, 5, at_ms);
    sqlite3_bind_blob(st, 6, op, (int)oplen, SQLITE_STATIC);
    return tx_write(st);
}

/* ---- data.db: the audit log ----
 *
 * The helpers below expect the mutex held inside a write transaction:
 * spro_store__transaction()'s (checked by the public functions) or
 * begin()'s (audit_note()). */

static const char audit_head_sql[] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
static const char audit_insert_sql[] =
    "INSERT INTO audit(seq, time, kind, actor, object, detail, hash)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

static int audit_head(struct spro_db *h, struct spro_audit_head *head)
{
    sqlite3_stmt *st = kept_stmt(h, audit_head_sql);
    if (st == NULL)
        return SPRO_ESTORE;
    memset(head, 0, sizeof *head); /* SPRO_AUDIT_GENESIS */
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        head->seq = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) != SPRO_AUDIT_HASH_BYTES || head->seq < 1)
            rc = SPRO_EINTEGRITY;
        else
            memcpy(head->hash, sqlite3_column_blob(st, 1), SPRO_AUDIT_HASH_BYTES);
    } else if (src != SQLITE_DONE) {
        rc = SPRO_ESTORE;
    }
    tx_done(st);
    return rc;
}

static int audit_append_at(struct spro_db *h, struct spro_audit_head *head,
                           const struct spro_audit_note *n)
{
    struct spro_audit_entry e = {head->seq + 1, n->time_ms, n->kind,
                                 n->actor,      n->object,  n->detail};
    uint8_t hash[SPRO_AUDIT_HASH_BYTES];
    int rc = spro_audit_check(n->kind, n->actor, n->object, n->detail);
    if (rc == 0 && n->actor == NULL)
        rc = SPRO_ERANGE;
    if (rc == 0)
        rc = spro_audit_hash(hash, n->key, head->hash, &e);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = kept_stmt(h, audit_insert_sql);
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, e.seq);
    sqlite3_bind_int64(st, 2, e.time_ms);
    bind_str(st, 3, e.kind);
    bind_str(st, 4, e.actor);
    bind_str(st, 5, e.object);
    bind_str(st, 6, e.detail);
    sqlite3_bind_blob(st, 7, hash, SPRO_AUDIT_HASH_BYTES, SQLITE_STATIC);
    if ((rc = tx_write(st)) != 0)
        return rc;
    head->seq = e.seq;
    memcpy(head->hash, hash, sizeof hash);
    return 0;
}

static int audit_note(struct spro_db *h, const struct spro_audit_note *note, char *why,
                      size_t whylen)
{
    if (note == NULL)
        return 0;
    struct spro_audit_head head;
    int rc = audit_head(h, &head);
    if (rc == 0)
        rc = audit_append_at(h, &head, note);
    if (rc == SPRO_ESTORE)
        store_fail(h, "cannot append to the audit log", why, whylen);
    return rc;
}

/* SPRO_BUG unless inside spro_store__transaction() on this thread. */
static void tx_check(struct spro_db *h)
{
    if (!h->in_tx || !pthread_equal(h->tx_thread, pthread_self()))
        SPRO_BUG("store: a transaction function called outside spro_store__transaction()");
}

int spro_store__audit_head(struct spro_db *db, struct spro_audit_head *head)
{
    tx_check(db);
    return audit_head(db, head);
}

int spro_store__audit_append_at(struct spro_db *db, struct spro_audit_head *head,
                                const struct spro_audit_note *note)
{
    tx_check(db);
    return audit_append_at(db, head, note);
}

int spro_store__audit_append(struct spro_db *db, const struct spro_audit_note *note)
{
    tx_check(db);
    struct spro_audit_head head;
    int rc = audit_head(db, &head);
    return rc != 0 ? rc : audit_append_at(db, &head, note);
}

/* A TEXT column, or "" for anything else.  Sets *bad for what the log
 * never writes (a tampered row): a column that is not TEXT, or one with a
 * NUL inside, whose bytes after it a C string would hide. */
static const char *column_str(sqlite3_stmt *st, int col, int *bad)
{
    const unsigned char *p = sqlite3_column_text(st, col);
    if (sqlite3_column_type(st, col) != SQLITE_TEXT || p == NULL ||
        strlen((const char *)p) != (size_t)sqlite3_column_bytes(st, col)) {
        *bad = 1;
        return "";
    }
    return (const char *)p;
}

/* Steps st (already bound), calling fn with each row: an entry, or a
 * checkpoint (seq, time, hash, signature). */
static int audit_rows(sqlite3_stmt *st, int checkpoints,
                      int (*fn)(const struct spro_audit_row *r, void *arg), void *arg)
{
    int src = SQLITE_DONE, rc = 0;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct spro_audit_row r = {.seq = sqlite3_column_int64(st, 0),
                                   .time_ms = sqlite3_column_int64(st, 1)};
        if (checkpoints) {
            r.kind = r.actor = r.object = r.detail = "";
            r.hash = sqlite3_column_blob(st, 2);
            r.hash_len = (size_t)sqlite3_column_bytes(st, 2);
            r.sig = sqlite3_column_blob(st, 3);
            r.sig_len = (size_t)sqlite3_column_bytes(st, 3);
        } else {
            r.kind = column_str(st, 2, &r.malformed);
            r.actor = column_str(st, 3, &r.malformed);
            r.object = column_str(st, 4, &r.malformed);
            r.detail = column_str(st, 5, &r.malformed);
            r.hash = sqlite3_column_blob(st, 6);
            r.hash_len = (size_t)sqlite3_column_bytes(st, 6);
        }
        rc = fn(&r, arg);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    return rc;
}

int spro_store__audit_each(struct spro_db *db, int64_t after, int64_t since_ms,
                           int (*fn)(const struct spro_audit_row *r, void *arg), void *arg)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT seq, time, kind, actor, object, detail, hash FROM audit"
                                   " WHERE seq > ?1 AND time >= ?2 ORDER BY seq");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, since_ms);
    return audit_rows(st, 0, fn, arg);
}

int spro_store__audit_checkpoints_each(struct spro_db *db, int64_t after,
                                       int (*fn)(const struct spro_audit_row *r, void *arg),
                                       void *arg)
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT seq, time, hash, signature FROM audit_checkpoints"
                                   " WHERE seq > ?1 ORDER BY seq");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, after);
    return audit_rows(st, 1, fn, arg);
}

int spro_store__audit_checkpoint_put(struct spro_db *db, int64_t seq,
                                     const uint8_t hash[SPRO_AUDIT_HASH_BYTES], int64_t time_ms,
                                     const uint8_t sig[SPRO_AUDIT_SIG_BYTES])
{
    sqlite3_stmt *st = tx_stmt(db, "INSERT INTO audit_checkpoints(seq, hash, time, signature)"
                                   " VALUES (?1, ?2, ?3, ?4)");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_blob(st, 2, hash, SPRO_AUDIT_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, time_ms);
    sqlite3_bind_blob(st, 4, sig, SPRO_AUDIT_SIG_BYTES, SQLITE_STATIC);
    return tx_write(st);
}

/* ---- keys.db: KEK epochs, the root key, re-wrapping (sync/keyring.c) ---- */

static const char *const kek_state_names[] = {[SPRO_KEK_ACTIVE] = "active",
                                              [SPRO_KEK_RETIRED] = "retired",
                                              [SPRO_KEK_DESTROYED] = "destroyed"};

/* A transaction of this file's own on h (keys.db): fn runs with the mutex
 * held inside BEGIN IMMEDIATE (write) or BEGIN (read). */
static int keys_tx(struct spro_db *h, enum spro_tx kind, int (*fn)(struct spro_db *h, void *arg),
                   void *arg)
{
    return spro_store__transaction(h, kind, fn, arg);
}

struct keks_list {
    struct spro_kek_row *rows;
    size_t cap, n;
    int with_counts;
};

static int keks_list_tx(struct spro_db *h, void *arg)
{
    struct keks_list *l = arg;
    sqlite3_stmt *st = tx_stmt(h, "SELECT epoch, state, wrapped, created_at,"
                                  " coalesce(destroyed_at, 0) FROM keks ORDER BY epoch");
    if (st == NULL)
        return SPRO_ESTORE;
    int src, rc = 0;
    l->n = 0;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (l->n == l->cap) {
            rc = SPRO_ETOOLONG;
            break;
        }
        struct spro_kek_row *r = &l->rows[l->n];
        memset(r, 0, sizeof *r);
        sqlite3_int64 e = sqlite3_column_int64(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        int wl = sqlite3_column_bytes(st, 2);
        r->state = SPRO_KEK_DESTROYED + 1;
        for (int k = SPRO_KEK_ACTIVE; k <= SPRO_KEK_DESTROYED; k++)
            if (state != NULL && strcmp(state, kek_state_names[k]) == 0)
                r->state = (enum spro_kek_state)k;
        if (e < 1 || e > UINT32_MAX || r->state > SPRO_KEK_DESTROYED ||
            (wl != 0 && wl != SPRO_WRAPPED_KEK_BYTES)) {
            rc = SPRO_EINTEGRITY;
            break;
        }
        r->epoch = (uint32_t)e;
        r->derived = wl == 0 && r->state != SPRO_KEK_DESTROYED;
        if (wl != 0)
            memcpy(r->wrapped, sqlite3_column_blob(st, 2), SPRO_WRAPPED_KEK_BYTES);
        r->created_at = sqlite3_column_int64(st, 3);
        r->destroyed_at = sqlite3_column_int64(st, 4);
        l->n++;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    tx_done(st);
    if (rc != 0 || !l->with_counts)
        return rc;
    st = tx_stmt(h, "SELECT epoch, count(*) FROM data_keys GROUP BY epoch");
    if (st == NULL)
        return SPRO_ESTORE;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 e = sqlite3_column_int64(st, 0);
        for (size_t i = 0; i < l->n; i++)
            if (l->rows[i].epoch == e)
                l->rows[i].data_keys = (uint64_t)sqlite3_column_int64(st, 1);
    }
    tx_done(st);
    return src == SQLITE_DONE ? 0 : SPRO_ESTORE;
}

int spro_store__keks_list(struct spro_db *db, struct spro_kek_row *rows, size_t cap, size_t *n,
                          int with_counts)
{
    struct keks_list l = {rows, cap, 0, with_counts};
    int rc = keys_tx(db, SPRO_TX_READ, keks_list_tx, &l);
    *n = rc == 0 ? l.n : 0;
    return rc;
}

struct kek_add {
    uint32_t epoch;
    const uint8_t *wrapped;
    int64_t now;
};

static int kek_add_tx(struct spro_db *h, void *arg)
{
    struct kek_add *a = arg;
    sqlite3_stmt *st = tx_stmt(h, "SELECT coalesce(max(epoch), 0) FROM keks");
    if (st == NULL)
        return SPRO_ESTORE;
    int src = sqlite3_step(st);
    sqlite3_int64 max = sqlite3_column_int64(st, 0);
    tx_done(st);
    if (src != SQLITE_ROW)
        return SPRO_ESTORE;
    if (max + 1 != (sqlite3_int64)a->epoch)
        return SPRO_EEXISTS; /* another rotation came first: the caller wraps for the next */
    st = tx_stmt(h, "UPDATE keks SET state = 'retired' WHERE state = 'active'");
    int rc = st == NULL ? SPRO_ESTORE : tx_write(st);
    if (rc == 0 && (st = tx_stmt(h, "INSERT INTO keks(epoch, state, wrapped, created_at)"
                                    " VALUES (?1, 'active', ?2, ?3)")) == NULL)
        rc = SPRO_ESTORE;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, a->epoch);
        sqlite3_bind_blob(st, 2, a->wrapped, SPRO_WRAPPED_KEK_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, a->now);
        rc = tx_write(st);
    }
    return rc;
}

int spro_store__kek_add(struct spro_db *db, uint32_t epoch,
                        const uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES], int64_t now)
{
    struct kek_add a = {epoch, wrapped, now};
    return keys_tx(db, SPRO_TX_WRITE, kek_add_tx, &a);
}

static int kek_set_wrapped_tx(struct spro_db *h, void *arg)
{
    const struct kek_add *a = arg;
    sqlite3_stmt *st = tx_stmt(h, "UPDATE keks SET wrapped = ?2"
                                  " WHERE epoch = ?1 AND wrapped IS NULL AND state <> 'destroyed'");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, a->epoch);
    sqlite3_bind_blob(st, 2, a->wrapped, SPRO_WRAPPED_KEK_BYTES, SQLITE_STATIC);
    int rc = tx_write(st);
    return rc == 0 && sqlite3_changes(h->db) != 1 ? SPRO_ENOENT : rc;
}

int spro_store__kek_set_wrapped(struct spro_db *db, uint32_t epoch,
                                const uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES])
{
    struct kek_add a = {epoch, wrapped, 0};
    return keys_tx(db, SPRO_TX_WRITE, kek_set_wrapped_tx, &a);
}

struct old_keys {
    uint32_t current;
    struct spro_data_key_row *rows;
    size_t cap, n;
};

static int data_keys_old_tx(struct spro_db *h, void *arg)
{
    struct old_keys *o = arg;
    sqlite3_stmt *st = tx_stmt(h, "SELECT ben, epoch, wrapped FROM data_keys WHERE epoch < ?1"
                                  " ORDER BY epoch LIMIT ?2");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, o->current);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)o->cap);
    int src, rc = 0;
    o->n = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && o->n < o->cap) {
        struct spro_data_key_row *r = &o->rows[o->n];
        sqlite3_int64 e = sqlite3_column_int64(st, 1);
        if (copy_text(r->ben, sizeof r->ben, st, 0) != 0 || e < 1 || e > UINT32_MAX ||
            sqlite3_column_bytes(st, 2) != SPRO_WRAPPED_KEY_BYTES) {
            rc = SPRO_EINTEGRITY;
            break;
        }
        r->epoch = (uint32_t)e;
        memcpy(r->wrapped, sqlite3_column_blob(st, 2), SPRO_WRAPPED_KEY_BYTES);
        o->n++;
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW)
        rc = SPRO_ESTORE;
    tx_done(st);
    return rc;
}

int spro_store__data_keys_old(struct spro_db *db, uint32_t current, size_t limit,
                              struct spro_data_key_row *rows, size_t *n)
{
    struct old_keys o = {current, rows, limit, 0};
    int rc = keys_tx(db, SPRO_TX_READ, data_keys_old_tx, &o);
    *n = rc == 0 ? o.n : 0;
    return rc;
}

/* 0 if epoch is the active epoch, -EAGAIN if it is not (any more): the
 * caller reloads the keyring and wraps again. */
static int epoch_active(struct spro_db *h, uint32_t epoch)
{
    sqlite3_stmt *st = kept_stmt(h, "SELECT 1 FROM keks WHERE epoch = ?1 AND state = 'active'");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, epoch);
    int src = sqlite3_step(st);
    tx_done(st);
    return src == SQLITE_ROW ? 0 : src == SQLITE_DONE ? -EAGAIN : SPRO_ESTORE;
}

struct replace {
    const struct spro_data_key_row *old;
    const uint8_t (*wrapped)[SPRO_WRAPPED_KEY_BYTES];
    uint32_t epoch;
    size_t n, replaced;
};

static int data_keys_replace_tx(struct spro_db *h, void *arg)
{
    struct replace *r = arg;
    int rc = epoch_active(h, r->epoch);
    sqlite3_stmt *st = rc == 0 ? tx_stmt(h, "UPDATE data_keys SET epoch = ?1, wrapped = ?2"
                                            " WHERE ben = ?3 AND wrapped = ?4")
                               : NULL;
    if (rc == 0 && st == NULL)
        rc = SPRO_ESTORE;
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        sqlite3_bind_int64(st, 1, r->epoch);
        sqlite3_bind_blob(st, 2, r->wrapped[i], SPRO_WRAPPED_KEY_BYTES, SQLITE_STATIC);
        bind_str(st, 3, r->old[i].ben);
        sqlite3_bind_blob(st, 4, r->old[i].wrapped, SPRO_WRAPPED_KEY_BYTES, SQLITE_STATIC);
        if ((rc = tx_write(st)) == 0)
            r->replaced += (size_t)sqlite3_changes(h->db);
    }
    return rc;
}

int spro_store__data_keys_replace(struct spro_db *db, const struct spro_data_key_row *old,
                                  const uint8_t (*wrapped)[SPRO_WRAPPED_KEY_BYTES], uint32_t epoch,
                                  size_t n, size_t *replaced)
{
    struct replace r = {old, wrapped, epoch, n, 0};
    int rc = keys_tx(db, SPRO_TX_WRITE, data_keys_replace_tx, &r);
    *replaced = rc == 0 ? r.replaced : 0;
    return rc;
}

struct destroy {
    uint32_t epoch;
    int64_t now;
    int destroyed;
};

static int kek_destroy_tx(struct spro_db *h, void *arg)
{
    struct destroy *d = arg;
    sqlite3_stmt *st = tx_stmt(h, "UPDATE keks SET state = 'destroyed', wrapped = NULL,"
                                  " destroyed_at = ?2"
                                  " WHERE epoch = ?1 AND state = 'retired' AND NOT EXISTS"
                                  " (SELECT 1 FROM data_keys WHERE epoch = ?1)");
    if (st == NULL)
        return SPRO_ESTORE;
    sqlite3_bind_int64(st, 1, d->epoch);
    sqlite3_bind_int64(st, 2, d->now);
    int rc = tx_write(st);
    d->destroyed = rc == 0 && sqlite3_changes(h->db) == 1;
    return rc;
}

int spro_store__kek_destroy(struct spro_db *db, uint32_t epoch, int64_t now, int *destroyed)
{
    struct destroy d = {epoch, now, 0};
    int rc = keys_tx(db, SPRO_TX_WRITE, kek_destroy_tx, &d);
    *destroyed = rc == 0 && d.destroyed;
    if (*destroyed) {
        /* The wrapped KEK is overwritten in the database file (secure_delete);
         * its older copies in the WAL go with the WAL's truncation.  A reader
         * holding an old snapshot can delay that: then the next checkpoint
         * does it. */
        lock(db);
        sqlite3_wal_checkpoint_v2(db->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        unlock(db);
    }
    return rc;
}

int spro_store__root_get(struct spro_db *db, uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES])
{
    lock(db);
    sqlite3_stmt *st;
    int rc = SPRO_ESTORE;
    if (sqlite3_prepare_v2(db->db, "SELECT wrapped FROM root_key WHERE id = 1", -1, &st, NULL) ==
        SQLITE_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            rc = SPRO_ENOENT;
        else if (src == SQLITE_ROW && sqlite3_column_bytes(st, 0) != SPRO_WRAPPED_KEK_BYTES)
            rc = SPRO_EINTEGRITY;
        else if (src == SQLITE_ROW)
            memcpy(wrapped, sqlite3_column_blob(st, 0), SPRO_WRAPPED_KEK_BYTES), rc = 0;
        sqlite3_finalize(st);
    }
    unlock(db);
    return rc;
}

static int master_change_tx(struct spro_db *h, void *arg)
{
    const struct spro_master_change *m = arg;
    sqlite3_stmt *st = tx_stmt(h, "UPDATE keks SET wrapped = ?2"
                                  " WHERE epoch = ?1 AND state <> 'destroyed'");
    int rc = st == NULL ? SPRO_ESTORE : 0;
    for (size_t i = 0; rc == 0 && i < m->nkeks; i++) {
        sqlite3_bind_int64(st, 1, m->keks[i].epoch);
        sqlite3_bind_blob(st, 2, m->keks[i].wrapped, SPRO_WRAPPED_KEK_BYTES, SQLITE_STATIC);
        if ((rc = tx_write(st)) == 0 && sqlite3_changes(h->db) != 1)
            rc = SPRO_ENOENT;
    }
    if (rc == 0 && (st = tx_stmt(h, "UPDATE server_keys SET sealed = ?2 WHERE name = ?1")) == NULL)
        rc = SPRO_ESTORE;
    for (size_t i = 0; rc == 0 && i < m->nserver; i++) {
        bind_str(st, 1, m->server[i].name);
        sqlite3_bind_blob(st, 2, m->server[i].sealed, (int)m->server[i].sealedlen, SQLITE_STATIC);
        if ((rc = tx_write(st)) == 0 && sqlite3_changes(h->db) != 1)
            rc = SPRO_ENOENT;
    }
    if (rc == 0 && (st = tx_stmt(h, "INSERT OR REPLACE INTO root_key(id, wrapped, changed_at)"
                                    " VALUES (1, ?1, ?2)")) == NULL)
        rc = SPRO_ESTORE;
    if (rc == 0) {
        sqlite3_bind_blob(st, 1, m->root, SPRO_WRAPPED_KEK_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, m->now);
        rc = tx_write(st);
    }
    /* Every live epoch must have been given: none may stay under the old key. */
    if (rc == 0 &&
        (st = tx_stmt(h, "SELECT count(*) FROM keks WHERE state <> 'destroyed'")) == NULL)
        rc = SPRO_ESTORE;
    if (rc == 0) {
        int src = sqlite3_step(st);
        sqlite3_int64 live = sqlite3_column_int64(st, 0);
        tx_done(st);
        rc = src != SQLITE_ROW ? SPRO_ESTORE : live != (sqlite3_int64)m->nkeks ? SPRO_EEXISTS : 0;
    }
    return rc;
}

int spro_store__master_change(struct spro_db *db, const struct spro_master_change *m)
{
    return keys_tx(db, SPRO_TX_WRITE, master_change_tx, (void *)m);
}

/* ---- keys.db: data keys ---- */

/* Steps st (its ?1 bound to ben here) for ben's wrapped key, and resets
 * it: 0, SPRO_ENOENT, SPRO_EINTEGRITY (a blob of the wrong size). */
static int read_wrapped(sqlite3_stmt *st, const char *ben, uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES])
{
    bind_str(st, 1, ben);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_DONE)
        rc = SPRO_ENOENT;
    else if (src != SQLITE_ROW)
        rc = SPRO_ESTORE;
    else if (sqlite3_column_bytes(st, 0) != SPRO_WRAPPED_KEY_BYTES)
        rc = SPRO_EINTEGRITY;
    else
        memcpy(wrapped, sqlite3_column_blob(st, 0), SPRO_WRAPPED_KEY_BYTES);
    tx_done(st);
    return rc;
}

int spro_store__data_key_get_tx(struct spro_db *db, const char *ben,
                                uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES])
{
    sqlite3_stmt *st = tx_stmt(db, "SELECT wrapped FROM data_keys WHERE ben = ?1");
    return st == NULL ? SPRO_ESTORE : read_wrapped(st, ben, wrapped);
}

int spro_store__data_key_get(struct spro_db *db, const char *ben,
                             uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES])
{
    lock(db);
    sqlite3_stmt *st = kept_stmt(db, "SELECT wrapped FROM data_keys WHERE ben = ?1");
    int rc = st == NULL ? SPRO_ESTORE : read_wrapped(st, ben, wrapped);
    unlock(db);
    return rc;
}

static const char data_key_add_sql[] =
    "INSERT OR IGNORE INTO data_keys(ben, epoch, wrapped) VALUES (?1, ?2, ?3)";

int spro_store__data_keys_add(struct spro_db *db, const char *const *bens,
                              const uint8_t (*wrapped)[SPRO_WRAPPED_KEY_BYTES], size_t n)
{
    lock(db);
    int rc = spro_store__exec(db->db, "BEGIN IMMEDIATE") == 0 ? 0 : SPRO_ESTORE;
    sqlite3_stmt *st = rc == 0 ? kept_stmt(db, data_key_add_sql) : NULL;
    if (rc == 0 && st == NULL)
        rc = SPRO_ESTORE;
    /* Every key of a call is wrapped under one epoch, which must still be
     * the active one (a rotation may have committed since it was read). */
    uint32_t epoch = n > 0 ? spro_field_key_epoch(wrapped[0], SPRO_WRAPPED_KEY_BYTES) : 0;
    if (rc == 0 && n > 0)
        rc = epoch_active(db, epoch);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (spro_field_key_epoch(wrapped[i], SPRO_WRAPPED_KEY_BYTES) != epoch)
            SPRO_BUG("spro_store__data_keys_add: keys of several epochs");
        bind_str(st, 1, bens[i]);
        sqlite3_bind_int64(st, 2, epoch);
        sqlite3_bind_blob(st, 3, wrapped[i], SPRO_WRAPPED_KEY_BYTES, SQLITE_STATIC);
        rc = tx_write(st);
    }
    if (rc == 0)
        rc = spro_store__exec(db->db, "COMMIT") == 0 ? 0 : SPRO_ESTORE;
    if (rc != 0)
        spro_store__exec(db->db, "ROLLBACK");
    unlock(db);
    return rc;
}

int spro_store__data_key_add(struct spro_db *db, const char *ben,
                             const uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES])
{
    return spro_store__data_keys_add(db, &ben, (const uint8_t(*)[SPRO_WRAPPED_KEY_BYTES])wrapped,
                                     1);
}

/* ---- Erasure and retention (sync/erase.c) ---- */

/* A statement prepared for one use (erasure is rare: not kept). */
static sqlite3_stmt *once_stmt(struct spro_db *h, const char *sql)
{
    if (!h->in_tx || !pthread_equal(h->tx_thread, pthread_self()))
        SPRO_BUG("store: a transaction function called outside spro_store__transaction()");
    sqlite3_stmt *st;
    return sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) == SQLITE_OK ? st : NULL;
}

/* Runs a statement of once_stmt() with ?1 = ben to its end, finalised. */
static int once_write(struct spro_db *h, const char *sql, const char *ben)
{
    sqlite3_stmt *st = once_stmt(h, sql);
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0 : SPRO_ESTORE;
}

/* The ids of the records of beneficiary ?1. */
#define BEN_RECORDS "(SELECT id FROM records WHERE ben_id = " BEN_ID_1 ")"

int spro_store__erased_get(struct spro_db *db, const char *ben, struct spro_store_erased *out)
{
    sqlite3_stmt *st = once_stmt(db, "SELECT ben, at, reason, done FROM erased WHERE ben = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    int src = sqlite3_step(st), rc = SPRO_ESTORE;
    if (src == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        rc = copy_text(out->ben, sizeof out->ben, st, 0);
        if (rc == 0)
            rc = copy_text(out->reason, sizeof out->reason, st, 2);
        out->at_ms = sqlite3_column_int64(st, 1);
        out->done = sqlite3_column_int(st, 3);
    } else if (src == SQLITE_DONE) {
        rc = SPRO_ENOENT;
    }
    sqlite3_finalize(st);
    return rc;
}

int spro_store__erased_has(struct spro_db *db, const char *ben, int *yes)
{
    return tx_exists_str(db, "SELECT 1 FROM erased WHERE ben = ?1", ben, yes);
}

int spro_store__erased_lookup(struct spro_db *db, const char *ben, int *yes)
{
    lock(db);
    sqlite3_stmt *st = kept_stmt(db, "SELECT 1 FROM erased WHERE ben = ?1 -- lookup");
    int rc = SPRO_ESTORE;
    if (st != NULL) {
        bind_str(st, 1, ben);
        rc = tx_exists(st, yes);
    }
    unlock(db);
    return rc;
}

int spro_store__erase_data(struct spro_db *db, const char *ben, int64_t at_ms, const char *reason,
                           const uint8_t *note, size_t notelen, int64_t *seq)
{
    /* Removal events first, while the scope rows still say who holds
     * what: every record for each organisation that has the beneficiary,
     * and a record alone for one that has that record alone. */
    static const char removals[] =
        "INSERT INTO scope_removed(seq, org, rtype, rid, ben)"
        " SELECT ?2 + row_number() OVER (ORDER BY org, changed_seq), org, rtype, rid, ben FROM ("
        "  SELECT s.org, r.rtype, r.rid, r.ben, r.changed_seq FROM ben_scope AS s"
        "   JOIN records AS r ON r.ben_id = s.ben WHERE s.ben = " BEN_ID_1 "  UNION"
        "  SELECT k.org, r.rtype, r.rid, r.ben, r.changed_seq FROM rec_scope AS k"
        "   JOIN records AS r ON r.id = k.rec WHERE r.ben_id = " BEN_ID_1 ")";
    static const char *const deletes[] = {
        "DELETE FROM ben_scope WHERE ben = " BEN_ID_1,
        "DELETE FROM rec_scope WHERE rec IN " BEN_RECORDS,
        "DELETE FROM rec_siblings WHERE sealed = 1 AND rec IN " BEN_RECORDS,
        "UPDATE records SET sealed = NULL, sealed_schema = NULL WHERE id IN " BEN_RECORDS,
        "DELETE FROM rec_blind WHERE rec IN " BEN_RECORDS,
        "DELETE FROM quarantine WHERE ben = ?1",
        "DELETE FROM op_siblings WHERE (device_id, seq) IN"
        " (SELECT device_id, seq FROM ops WHERE ben = ?1)",
        "UPDATE ops SET status = 'reject', hlc = NULL, origin = NULL, code = 'not_found',"
        " rtype = NULL, rid = NULL, ben = NULL WHERE ben = ?1",
    };
    sqlite3_stmt *st = once_stmt(db, removals);
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    sqlite3_bind_int64(st, 2, *seq);
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return SPRO_ESTORE;
    *seq += sqlite3_changes(db->db);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof deletes / sizeof deletes[0]; i++)
        rc = once_write(db, deletes[i], ben);
    if (rc != 0 || (st = once_stmt(db, "INSERT INTO erased(ben, at, reason, note, done)"
                                       " VALUES (?1, ?2, ?3, ?4, 0)")) == NULL)
        return rc != 0 ? rc : SPRO_ESTORE;
    bind_str(st, 1, ben);
    sqlite3_bind_int64(st, 2, at_ms);
    bind_str(st, 3, reason);
    if (note != NULL)
        sqlite3_bind_blob(st, 4, note, (int)notelen, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0 : (src & 0xff) == SQLITE_CONSTRAINT ? SPRO_EEXISTS : SPRO_ESTORE;
}

int spro_store__erased_done(struct spro_db *db, const char *ben)
{
    return once_write(db, "UPDATE erased SET done = 1 WHERE ben = ?1", ben);
}

/* Collects the first text column of st's rows into *out (malloc'd). */
static int collect_ids(sqlite3_stmt *st, char (**out)[SPRO_ID_MAX + 1], size_t cap_max, size_t *n)
{
    size_t cap = 0;
    int rc = 0, src;
    *n = 0;
    while (rc == 0 && *n < cap_max && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap && (*out = realloc(*out, (cap = cap ? 2 * cap : 8) * sizeof **out)) == NULL)
            SPRO_BUG("out of memory");
        if ((rc = copy_text((*out)[*n], sizeof **out, st, 0)) == 0)
            ++*n;
    }
    if (rc == 0 && *n < cap_max && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

int spro_store__erased_pending(struct spro_db *db, char (**out)[SPRO_ID_MAX + 1], size_t *n)
{
    sqlite3_stmt *st = once_stmt(db, "SELECT ben FROM erased WHERE done = 0 ORDER BY at");
    *out = NULL;
    *n = 0;
    if (st == NULL)
        return SPRO_ESTORE;
    int rc = collect_ids(st, out, SIZE_MAX, n);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int spro_store__merged_from(struct spro_db *db, const char *keep, char (*out)[SPRO_ID_MAX + 1],
                            size_t cap, size_t *n)
{
    sqlite3_stmt *st = once_stmt(db, "SELECT ben FROM merged WHERE keep = ?1 ORDER BY ben");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, keep);
    char(*ids)[SPRO_ID_MAX + 1] = NULL;
    int rc = collect_ids(st, &ids, cap, n);
    if (rc == 0 && *n > 0)
        memcpy(out, ids, *n * sizeof *ids);
    free(ids);
    return rc;
}

int spro_store__recipients_each(struct spro_db *db, const char *ben,
                                int (*fn)(const char *device, const char *user, const char *org,
                                          const char *state, int64_t pulled_at, void *arg),
                                void *arg)
{
    sqlite3_stmt *st = once_stmt(
        db, "SELECT d.id, u.id, u.org_id, d.state, s.acked_at FROM devices AS d"
            " JOIN users AS u ON u.id = d.user_id JOIN device_sync AS s ON s.device_id = d.id"
            " WHERE u.org_id IN (SELECT org FROM scope WHERE ben = ?1"
            "   UNION SELECT k.org FROM scope_record AS k JOIN records AS r"
            "     ON r.rtype = k.rtype AND r.rid = k.rid WHERE r.ben = ?1"
            "   UNION SELECT org FROM scope_removed WHERE ben = ?1)"
            " AND s.acked_at >= (SELECT created_at FROM records"
            "   WHERE rtype = '" SPRO_RTYPE_BENEFICIARY "' AND rid = ?1)"
            " ORDER BY s.acked_at, d.id");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    int rc = 0, src;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *c[4];
        for (int k = 0; k < 4; k++)
            c[k] = (const char *)sqlite3_column_text(st, k);
        rc = c[0] == NULL || c[1] == NULL || c[2] == NULL || c[3] == NULL
                 ? SPRO_EINTEGRITY
                 : fn(c[0], c[1], c[2], c[3], sqlite3_column_int64(st, 4), arg);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

int spro_store__scope_each(struct spro_db *db, const char *ben,
                           int (*fn)(const char *rtype, const char *rid, const char *org,
                                     void *arg),
                           void *arg)
{
    sqlite3_stmt *st = once_stmt(
        db, "SELECT NULL, NULL, org FROM ben_scope WHERE ben = " BEN_ID_1 " UNION ALL"
            " SELECT r.rtype, r.rid, k.org FROM rec_scope AS k JOIN records AS r ON r.id = k.rec"
            " WHERE r.ben_id = " BEN_ID_1 " ORDER BY 1, 2, 3");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    int rc = 0, src;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *org = (const char *)sqlite3_column_text(st, 2);
        if (org == NULL)
            rc = SPRO_EINTEGRITY;
        else
            rc = fn((const char *)sqlite3_column_text(st, 0),
                    (const char *)sqlite3_column_text(st, 1), org, arg);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

int spro_store__quarantine_each(struct spro_db *db, const char *ben,
                                int (*fn)(const struct spro_quarantined *q, void *arg), void *arg)
{
    sqlite3_stmt *st = once_stmt(db, "SELECT device_id, seq, ben, code, at FROM quarantine"
                                     " WHERE ben = ?1 ORDER BY at, device_id, seq");
    if (st == NULL)
        return SPRO_ESTORE;
    bind_str(st, 1, ben);
    int rc = 0, src;
    struct spro_quarantined q;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&q, 0, sizeof q);
        if ((rc = copy_text(q.device, sizeof q.device, st, 0)) != 0 ||
            (rc = copy_text(q.ben, sizeof q.ben, st, 2)) != 0 ||
            (rc = copy_text(q.code, sizeof q.code, st, 3)) != 0)
            break;
        q.seq = (uint64_t)sqlite3_column_int64(st, 1);
        q.at_ms = sqlite3_column_int64(st, 4);
        rc = fn(&q, arg);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

/* The closed beneficiaries of spro_store__closed_each(), with the
 * closing's date: the later of the version's clock and the time the server
 * stored it (state_seen, migration 10; 0 if unknown). X'a6...': the msgpack
 * of the string "closed". */
#define CLOSED_SELECT                                                                              \
    "SELECT r.rid, max(v.hlc >> 16, v.at) FROM records AS r"                                       \
    " JOIN state_seen AS v ON v.rec = r.id"                                                        \
    " WHERE r.rtype = '" SPRO_RTYPE_BENEFICIARY "' AND v.closed = 1"                               \
    " AND (SELECT count(*) FROM state_seen AS t WHERE t.rec = r.id) = 1"                           \
    " AND NOT EXISTS (SELECT 1 FROM erased AS e WHERE e.ben = r.rid)"                              \
    " AND NOT EXISTS (SELECT 1 FROM merged AS m WHERE m.ben = r.rid)"

int spro_store__closed_each(struct spro_db *db, const char *only,
                            int (*fn)(const char *ben, int64_t closed_ms, void *arg), void *arg)
{
    sqlite3_stmt *st = once_stmt(db, only == NULL ? CLOSED_SELECT " ORDER BY r.id"
                                                  : CLOSED_SELECT " AND r.rid = ?1");
    if (st == NULL)
        return SPRO_ESTORE;
    if (only != NULL)
        bind_str(st, 1, only);
    int rc = 0, src;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ben = (const char *)sqlite3_column_text(st, 0);
        int64_t ms = sqlite3_column_int64(st, 1);
        rc = ben == NULL || ms < 0 ? SPRO_EINTEGRITY : fn(ben, ms, arg);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

int spro_store__fields_each(struct spro_db *db,
                            int (*fn)(const struct spro_stored_record *r, void *arg), void *arg)
{
    sqlite3_stmt *st = once_stmt(db, "SELECT rtype, rid, ben, created_by_org, changed_seq, id,"
                                     " sealed, sealed_schema, plain FROM records"
                                     " WHERE sealed IS NOT NULL OR plain IS NOT NULL"
                                     " ORDER BY id");
    if (st == NULL)
        return SPRO_ESTORE;
    int rc = 0, src;
    struct spro_stored_record r;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = read_record(st, &r)) == 0) {
            r.id = sqlite3_column_int64(st, 5);
            if ((rc = read_sealed(st, 6, &r)) == 0)
                rc = fn(&r, arg);
        }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

int spro_store__sealed_each(struct spro_db *db,
                            int (*fn)(const struct spro_stored_record *r,
                                      const struct spro_stored_sibling *s, void *arg),
                            void *arg)
{
    sqlite3_stmt *st = once_stmt(db, "SELECT r.rtype, r.rid, r.ben, r.created_by_org,"
                                     " r.changed_seq, s.name, s.hlc, s.origin, s.author,"
                                     " s.schema, s.sealed, s.val FROM rec_siblings AS s"
                                     " JOIN records AS r ON r.id = s.rec WHERE s.sealed = 1"
                                     " ORDER BY s.rec, s.name, s.hlc, s.origin");
    if (st == NULL)
        return SPRO_ESTORE;
    int rc = 0, src;
    struct spro_stored_record r;
    struct spro_stored_sibling s;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        /* read_sibling() reads from column 0: shift by the record's 5. */
        if ((rc = read_record(st, &r)) != 0)
            break;
        memset(&s, 0, sizeof s);
        s.name = (const char *)sqlite3_column_text(st, 5);
        rc = column_u63(st, 6, &s.hlc);
        s.origin = (const char *)sqlite3_column_text(st, 7);
        s.author = (const char *)sqlite3_column_text(st, 8);
        sqlite3_int64 schema = sqlite3_column_int64(st, 9);
        s.sealed = 1;
        s.val = sqlite3_column_blob(st, 11);
        s.val_len = (size_t)sqlite3_column_bytes(st, 11);
        if (rc == 0 && (s.name == NULL || s.origin == NULL || s.author == NULL || schema < 0 ||
                        schema > UINT32_MAX))
            rc = SPRO_EINTEGRITY;
        s.schema = (uint32_t)schema;
        if (rc == 0)
            rc = fn(&r, &s, arg);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = SPRO_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

int spro_store__data_key_delete(struct spro_db *db, const char *ben, int64_t at_ms)
{
    static const char *const sql[] = {
        "DELETE FROM data_keys WHERE ben = ?1",
        "INSERT OR IGNORE INTO erased_keys(ben, at) VALUES (?1, ?2)",
    };
    lock(db);
    int rc = spro_store__exec(db->db, "BEGIN IMMEDIATE") == 0 ? 0 : SPRO_ESTORE;
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        sqlite3_stmt *st;
        rc = SPRO_ESTORE;
        if (sqlite3_prepare_v2(db->db, sql[i], -1, &st, NULL) == SQLITE_OK) {
            bind_str(st, 1, ben);
            if (i == 1)
                sqlite3_bind_int64(st, 2, at_ms);
            rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SPRO_ESTORE;
            sqlite3_finalize(st);
        }
    }
    if (rc == 0 && spro_store__exec(db->db, "COMMIT") != 0)
        rc = SPRO_ESTORE;
    if (rc != 0)
        spro_store__exec(db->db, "ROLLBACK");
    unlock(db);
    return rc;
}

int spro_store__erased_keys(struct spro_db *db, char (**bens)[SPRO_ID_MAX + 1], size_t *n)
{
    *bens = NULL;
    *n = 0;
    size_t cap = 0;
    lock(db);
    sqlite3_stmt *st;
    int rc = SPRO_ESTORE, src = SQLITE_DONE;
    if (sqlite3_prepare_v2(db->db, "SELECT ben FROM erased_keys ORDER BY at", -1, &st, NULL) ==
        SQLITE_OK) {
        rc = 0;
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            const char *b = (const char *)sqlite3_column_text(st, 0);
            if (*n == cap &&
                (*bens = realloc(*bens, (cap = cap ? 2 * cap : 16) * sizeof **bens)) == NULL)
                SPRO_BUG("out of memory");
            snprintf((*bens)[(*n)++], sizeof **bens, "%s", b ? b : "");
        }
        if (src != SQLITE_DONE)
            rc = SPRO_ESTORE;
        sqlite3_finalize(st);
    }
    unlock(db);
    if (rc != 0) {
        free(*bens);
        *bens = NULL;
        *n = 0;
    }
    return rc;
}

int spro_store__checkpoint(struct spro_db *db)
{
    lock(db);
    int log = -1, done = -1;
    int src = sqlite3_wal_checkpoint_v2(db->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    unlock(db);
    return src == SQLITE_OK && log == 0 ? 0 : SPRO_ESTORE;
}
