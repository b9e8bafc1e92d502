/*
 * store.c: every SQLite call of the project.
 *
 * Opens databases in WAL mode with synchronous=FULL (a committed
 * transaction is on disk before the call returns), applies forward-only
 * migrations, and translates SQLite result codes into SPRO_E* codes: the
 * SQLite message is put into the caller's `why` buffer or logged by the
 * caller, never passed to a client.
 *
 * Every public function takes the handle's mutex (see store.h); the static
 * helpers below expect it held.
 */
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

struct spro_db {
    sqlite3 *db;
    char *path;         /* for messages */
    pthread_mutex_t mu; /* held for each call, whole transactions included */
};

static int fail(sqlite3 *db, const char *path, const char *what, char *why, size_t whylen)
{
    if (why != NULL)
        snprintf(why, whylen, "%s: %s: %s", path, what, db ? sqlite3_errmsg(db) : "out of memory");
    return SPRO_ESTORE;
}

static int exec(sqlite3 *db, const char *sql)
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
    if (exec(db, "BEGIN IMMEDIATE") != 0)
        return fail(db, path, "cannot lock for migration", why, whylen);
    int v, rc = 0;
    if (user_version(db, &v) != 0) {
        rc = fail(db, path, "cannot read schema version", why, whylen);
    } else if (v < 0 || v > (int)count) {
        if (why != NULL)
            snprintf(why, whylen,
                     "%s: schema version %d is newer than this program's %zu; "
                     "upgrade spro-sync (the database was not changed)",
                     path, v, count);
        rc = SPRO_ESCHEMA_NEWER;
    } else {
        for (size_t i = (size_t)v; i < count && rc == 0; i++)
            if (exec(db, m[i].sql) != 0)
                rc = fail(db, path, "migration failed", why, whylen);
        char pragma[48];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %zu", count);
        if (rc == 0 && exec(db, pragma) != 0)
            rc = fail(db, path, "cannot set schema version", why, whylen);
        if (rc == 0 && exec(db, "COMMIT") != 0)
            rc = fail(db, path, "migration commit failed", why, whylen);
    }
    if (rc != 0) {
        exec(db, "ROLLBACK");
        return rc;
    }
    *version = (int)count;
    return 0;
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
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        int rc = fail(db, path, "cannot open", why, whylen);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 1);
    if (exec(db, "PRAGMA journal_mode = WAL") != 0 || exec(db, "PRAGMA synchronous = FULL") != 0 ||
        exec(db, "PRAGMA foreign_keys = ON") != 0 || exec(db, "PRAGMA secure_delete = ON") != 0) {
        int rc = fail(db, path, "cannot configure", why, whylen);
        sqlite3_close(db);
        return rc;
    }
    int rc = migrate(db, path, migrations, count, version, why, whylen);
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
    return fail(h->db, h->path, what, why, whylen);
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
    if (exec(h->db, "BEGIN IMMEDIATE") == 0)
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
    if (commit && exec(h->db, "COMMIT") != 0) {
        rc = store_fail(h, "cannot commit", why, whylen);
        commit = 0;
    }
    if (!commit)
        exec(h->db, "ROLLBACK");
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

int spro_store__org_insert(struct spro_db *db, const char *id, const char *name, const char *kind,
                           int64_t now, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    lock(db);
    int rc =
        prepare(db, "INSERT INTO organisations(id, name, kind, created_at) VALUES (?1, ?2, ?3, ?4)",
                &st, why, whylen);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        rc = step_write(db, st, why, whylen);
    }
    unlock(db);
    return rc;
}

int spro_store__user_insert(struct spro_db *db, const char *id, const char *org_id,
                            const char *role, int64_t now, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    lock(db);
    int rc = prepare(db, "INSERT INTO users(id, org_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
                     &st, why, whylen);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, org_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        rc = step_write(db, st, why, whylen);
    }
    unlock(db);
    return rc;
}

int spro_store__ticket_insert(struct spro_db *db, const char *id, const char *user_id,
                              const uint8_t mac[SPRO_MAC_BYTES], int64_t now, int64_t expires_at,
                              char *why, size_t whylen)
{
    sqlite3_stmt *st;
    lock(db);
    int rc = prepare(db,
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
    unlock(db);
    return rc;
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
                              int64_t ts_ms, int64_t now, struct spro_device *out)
{
    int rc = begin(db, NULL, 0);
    if (rc != 0)
        return rc;
    int commit = 0;
    rc = redeem(db, ticket_id, mac, max_failures, device_pk, device_id, ts_ms, now, out, &commit);
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
                                  enum spro_device_state *prev, char *why, size_t whylen)
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
