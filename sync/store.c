/*
 * store.c: every SQLite call of the project.
 *
 * Opens databases in WAL mode with synchronous=FULL (a committed
 * transaction is on disk before the call returns), applies forward-only
 * migrations, and translates SQLite result codes into SPRO_E* codes: the
 * SQLite message is put into the caller's `why` buffer or logged by the
 * caller, never passed to a client.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

struct spro_db {
    sqlite3 *db;
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
    if (h == NULL)
        SPRO_BUG("out of memory");
    h->db = db;
    *out = h;
    return 0;
}

void spro_store__close(struct spro_db *db)
{
    if (db == NULL)
        return;
    sqlite3_close_v2(db->db);
    free(db);
}

int spro_store__ping(struct spro_db *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM meta", -1, &st, NULL) != SQLITE_OK)
        return SPRO_ESTORE;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : SPRO_ESTORE;
}

int spro_store__meta_put(struct spro_db *db, const char *key, const char *value)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", -1,
                           &st, NULL) != SQLITE_OK)
        return SPRO_ESTORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : SPRO_ESTORE;
}

int spro_store__server_key_put(struct spro_db *db, const char *name, const uint8_t *pub,
                               size_t publen, const uint8_t *sealed, size_t sealedlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db,
                           "INSERT INTO server_keys(name, public, sealed) VALUES (?1, ?2, ?3)", -1,
                           &st, NULL) != SQLITE_OK)
        return SPRO_ESTORE;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, pub, (int)publen, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, sealed, (int)sealedlen, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : SPRO_ESTORE;
}

int spro_store__server_key_get(struct spro_db *db, const char *name, uint8_t *pub, size_t publen,
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
