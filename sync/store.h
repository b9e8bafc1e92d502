/*
 * store.h: internal interface of the SQLite store (sync/ only, and tests).
 *
 * store.c is the one file of the project that includes sqlite3.h: every
 * SQLite call and every SQLite error code translation lives there.
 *
 * Threading: one struct spro_db may be shared by threads.  Each function
 * below holds the handle's mutex for its whole run, so a transaction of one
 * thread never takes in another thread's statements (SQLite's serialised
 * mode alone serialises calls, not transactions).  Writers of other
 * processes are waited for up to 5 s (busy timeout), then SPRO_ESTORE.
 */
#ifndef SPRO_SYNC_STORE_H
#define SPRO_SYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"
#include "sync.h"

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

/* ---- data.db: organisations, users, devices, tickets (sync/devices.c) ----
 * Arguments are validated by the caller.  `why` (may be NULL) receives a
 * message for SPRO_ESTORE naming the database and SQLite's complaint. */

/* SPRO_EEXISTS if the id is taken. */
SPRO_MUST_CHECK int spro_store__org_insert(struct spro_db *db, const char *id, const char *name,
                                           const char *kind, int64_t now, char *why, size_t whylen);

/* SPRO_ENOENT if the organisation does not exist, SPRO_EEXISTS if the user
 * id is taken. */
SPRO_MUST_CHECK int spro_store__user_insert(struct spro_db *db, const char *id, const char *org_id,
                                            const char *role, int64_t now, char *why,
                                            size_t whylen);

/* Stores a new ticket (never its secret: mac is its keyed hash).
 * SPRO_ENOENT if the user does not exist, SPRO_EEXISTS if the ticket id is
 * taken (the caller draws another). */
SPRO_MUST_CHECK int spro_store__ticket_insert(struct spro_db *db, const char *id,
                                              const char *user_id,
                                              const uint8_t mac[SPRO_MAC_BYTES], int64_t now,
                                              int64_t expires_at, char *why, size_t whylen);

/* The redemption transaction of spro_ticket_redeem() (see sync.h), under
 * BEGIN IMMEDIATE: checks the ticket (exists, now < expires_at, unused,
 * failures below max_failures), compares its stored mac with `mac` in
 * constant time (a mismatch counts one failure and commits), refuses a
 * device_pk already enrolled (SPRO_EEXISTS, nothing written), then
 * consumes the ticket and creates the device device_id (active,
 * last_ts_ms = ts_ms, enrolled_at = last_seen = now) and fills *out.
 * Every refusal of the ticket is SPRO_ETICKET. */
SPRO_MUST_CHECK int spro_store__ticket_redeem(struct spro_db *db, const char *ticket_id,
                                              const uint8_t mac[SPRO_MAC_BYTES], int max_failures,
                                              const uint8_t device_pk[SPRO_KEY_BYTES],
                                              const char *device_id, int64_t ts_ms, int64_t now,
                                              struct spro_device *out);

/* One device, joined with its user: by static key (pk != NULL) or else by
 * row id.  SPRO_ENOENT; SPRO_EINTEGRITY for a row that cannot be a device. */
SPRO_MUST_CHECK int spro_store__device_get(struct spro_db *db, const uint8_t pk[SPRO_KEY_BYTES],
                                           int64_t rowid, struct spro_device *out);

/* One statement: UPDATE ... WHERE rowid = rowid AND last_ts_ms < ts_ms.
 * 0 if it wrote, SPRO_EREPLAY if the device exists but ts_ms is not newer,
 * SPRO_ENOENT if it does not exist. */
SPRO_MUST_CHECK int spro_store__device_accept_ts(struct spro_db *db, int64_t rowid, int64_t ts_ms,
                                                 int64_t now);

/* In one transaction: reads the state of the device named by id (if not
 * NULL) or else by rowid into *prev, and sets it to `to` if bit *prev of
 * from_mask is set (1u << SPRO_DEVICE_ACTIVE | ...).  Returns 0 whether or
 * not it changed (the caller compares *prev with from_mask), SPRO_ENOENT if
 * there is no such device. */
SPRO_MUST_CHECK int spro_store__device_transition(struct spro_db *db, const char *id, int64_t rowid,
                                                  unsigned from_mask, enum spro_device_state to,
                                                  enum spro_device_state *prev, char *why,
                                                  size_t whylen);

/* Every device, in enrolment order, read in one snapshot: *rows is
 * malloc'd (the caller frees it; NULL when *n is 0). */
SPRO_MUST_CHECK int spro_store__device_list(struct spro_db *db, struct spro_device **rows,
                                            size_t *n);

/* ---- The data directory's internals, for the other files of sync/ ---- */

/* data.db of dd (owned by dd). */
struct spro_db *spro_datadir__data(struct spro_datadir *dd);

/* The master key of dd (SPRO_KEY_BYTES in guarded memory, owned by dd). */
const uint8_t *spro_datadir__master(const struct spro_datadir *dd);

/* Bumps the devices generation (see spro_datadir_devices_generation). */
void spro_datadir__devices_changed(struct spro_datadir *dd);

#endif
