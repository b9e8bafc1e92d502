/*
 * store.h: internal interface of the SQLite store (sync/ only, and tests).
 *
 * store.c is the one file of the project that includes sqlite3.h: every
 * SQLite call and every SQLite error code translation lives there.
 */
#ifndef SPRO_SYNC_STORE_H
#define SPRO_SYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* One forward-only schema step: applying `sql` to a database at version
 * `version - 1` brings it to `version`.  Lists are contiguous from 1. */
struct spro_migration {
    int version;
    const char *sql;
};

extern const struct spro_migration spro_store__data_migrations[];
extern const size_t spro_store__data_migrations_count;
extern const struct spro_migration spro_store__keys_migrations[];
extern const size_t spro_store__keys_migrations_count;

struct spro_db;

/* Opens (or, with create, creates) the SQLite database at path in WAL mode
 * with synchronous=FULL, then applies every migration above its
 * user_version, each in its own transaction.  *version receives the
 * version after migration.  Fails with SPRO_ENOENT (missing, not created),
 * SPRO_ESCHEMA_NEWER (user_version above the last migration: nothing is
 * changed) or SPRO_ESTORE; `why` gets a message naming path. */
SPRO_MUST_CHECK int spro_store__open(const char *path, int create,
                                     const struct spro_migration *migrations, size_t count,
                                     struct spro_db **out, int *version, char *why, size_t whylen);

/* Closes; accepts NULL. */
void spro_store__close(struct spro_db *db);

/* SELECT on data.db's meta table: proves the database answers. */
SPRO_MUST_CHECK int spro_store__ping(struct spro_db *db);

/* meta(key, value) of data.db: insert or replace. */
SPRO_MUST_CHECK int spro_store__meta_put(struct spro_db *db, const char *key, const char *value);

/* server_keys(name, public, sealed) of keys.db. */
SPRO_MUST_CHECK int spro_store__server_key_put(struct spro_db *db, const char *name,
                                               const uint8_t *pub, size_t publen,
                                               const uint8_t *sealed, size_t sealedlen);
/* Copies the row's blobs; SPRO_ENOENT if absent, SPRO_EINTEGRITY if a blob
 * does not have exactly the expected length. */
SPRO_MUST_CHECK int spro_store__server_key_get(struct spro_db *db, const char *name, uint8_t *pub,
                                               size_t publen, uint8_t *sealed, size_t sealedlen);

#endif
