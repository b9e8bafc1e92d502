/*
 * store.h: internal interface of the SQLite store (sync/ only, and tests).
 *
 * store.c is the one file of the project that includes sqlite3.h: every
 * SQLite call and every SQLite error code translation lives there.
 *
 * Threading: one struct spro_db may be shared by threads.  Each function
 * below holds the handle's mutex for its whole run (those that run inside
 * spro_store__transaction() through the transaction's), so a transaction
 * of one thread never takes in another thread's statements (SQLite's
 * serialised mode alone serialises calls, not transactions).  Writers of other
 * processes are waited for up to 5 s (busy timeout), then SPRO_ESTORE.
 */
#ifndef SPRO_SYNC_STORE_H
#define SPRO_SYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "fieldset.h"
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
struct sqlite3;

/* For the store files (store.c, backup.c), which hold a raw SQLite handle:
 * puts "path: what: SQLite's message" (or "out of memory" when db is NULL)
 * into why (may be NULL) and returns SPRO_ESTORE. */
int spro_store__fail(struct sqlite3 *db, const char *path, const char *what, char *why,
                     size_t whylen);

/* Runs the SQL text sql (any number of statements) on db: 0 or SPRO_ESTORE. */
int spro_store__exec(struct sqlite3 *db, const char *sql);

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
 * message for SPRO_ESTORE naming the database and SQLite's complaint.
 * `note` (may be NULL): an audit entry appended in the same transaction
 * when the function changes something (see "the audit log" below). */

struct spro_audit_note;

/* SPRO_EEXISTS if the id is taken. */
SPRO_MUST_CHECK int spro_store__org_insert(struct spro_db *db, const char *id, const char *name,
                                           const char *kind, int64_t now,
                                           const struct spro_audit_note *note, char *why,
                                           size_t whylen);

/* SPRO_ENOENT if the organisation does not exist, SPRO_EEXISTS if the user
 * id is taken. */
SPRO_MUST_CHECK int spro_store__user_insert(struct spro_db *db, const char *id, const char *org_id,
                                            const char *role, int64_t now,
                                            const struct spro_audit_note *note, char *why,
                                            size_t whylen);

/* Stores a new ticket (never its secret: mac is its keyed hash).
 * SPRO_ENOENT if the user does not exist, SPRO_EEXISTS if the ticket id is
 * taken (the caller draws another). */
SPRO_MUST_CHECK int
spro_store__ticket_insert(struct spro_db *db, const char *id, const char *user_id,
                          const uint8_t mac[SPRO_MAC_BYTES], int64_t now, int64_t expires_at,
                          const struct spro_audit_note *note, char *why, size_t whylen);

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
                                              const struct spro_audit_note *note,
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
                                                  enum spro_device_state *prev,
                                                  const struct spro_audit_note *note, char *why,
                                                  size_t whylen);

/* Every device, in enrolment order, read in one snapshot: *rows is
 * malloc'd (the caller frees it; NULL when *n is 0). */
SPRO_MUST_CHECK int spro_store__device_list(struct spro_db *db, struct spro_device **rows,
                                            size_t *n);

/* ---- Transactions of the sync engine (sync/engine.c) ----
 *
 * spro_store__transaction() runs a callback inside one transaction that
 * holds the handle's mutex throughout.  The functions of the sections
 * "inside a transaction" below run only from such a callback, on the
 * thread that runs it: they do not take the mutex (a call outside is a
 * bug: SPRO_BUG).  The callback must not call the functions of the other
 * sections, which take the mutex, on the same handle (a deadlock); it may
 * use another database's handle.  Lock order: data.db, then keys.db.
 * Their statements are prepared once per handle and kept.
 */

enum spro_tx {
    SPRO_TX_READ,  /* BEGIN: one snapshot, from the first read on */
    SPRO_TX_WRITE, /* BEGIN IMMEDIATE: no other writer until the end */
};

/* Takes the mutex, begins a transaction of the given kind, calls
 * fn(db, arg), then commits if fn returned 0 (a read transaction just
 * ends) or rolls back if it did not, and releases the mutex.  Returns fn's
 * result; or SPRO_ESTORE if the transaction could not begin (fn not
 * called) or commit.  A failed commit is rolled back, but if it failed on
 * an I/O error its outcome is unknown: the pages may be on disk. */
SPRO_MUST_CHECK int spro_store__transaction(struct spro_db *db, enum spro_tx kind,
                                            int (*fn)(struct spro_db *db, void *arg), void *arg);

/* Inside a transaction: calls fn(db, arg) in a savepoint, kept if fn
 * returns 0, rolled back (all that fn wrote undone) otherwise.  Returns
 * fn's result, or SPRO_ESTORE (the enclosing transaction must then be
 * rolled back). */
SPRO_MUST_CHECK int spro_store__savepoint(struct spro_db *db,
                                          int (*fn)(struct spro_db *db, void *arg), void *arg);

/* ---- data.db, inside a transaction: records, fields, scope ----
 * Strings are NUL-terminated; the engine validated them.  Reads fail with
 * SPRO_EINTEGRITY for a row that cannot be what the schema says. */

/* A row of records. */
struct spro_stored_record {
    char rtype[SPRO_ID_MAX + 1];
    char rid[SPRO_ID_MAX + 1];
    char ben[SPRO_ID_MAX + 1];
    char created_by_org[SPRO_ID_MAX + 1]; /* "" in a removal event */
    int64_t changed_seq; /* change number of its last change (of the removal event), >= 1 */
    int removed;         /* spro_store__changes_each(): a removal event, not the record */
    /* records.id, the key of the functions of its fields, blind indexes
     * and change number: from spro_store__record_get(), _record_insert(),
     * _ben_records() and _changes_each() (0 for a removal event); valid
     * in the transaction (and savepoint) that read it. */
    int64_t id;
    /* Its sealed field set (records.sealed) and the schema version bound
     * into it, and its other fields (records.plain), from
     * spro_store__changes_each() (valid during the callback) and
     * spro_store__record_get_for() (in the buffers it was given); NULL
     * when the record has no sealed set, or (plain) when its fields are
     * still rows of rec_siblings (before the conversion of migration 13),
     * and from the other reads. */
    const uint8_t *sealed;
    size_t sealed_len;
    uint32_t sealed_schema;
    const uint8_t *plain;
    size_t plain_len;
};

/* A row of siblings (or op_siblings).  From a read, the pointers are valid
 * during the callback only. */
struct spro_stored_sibling {
    const char *name;   /* the field */
    size_t fidx;        /* op_siblings: position of the field in the answer */
    uint64_t hlc;       /* 1..2^63-1 */
    const char *origin; /* 1..SPRO_ID_MAX bytes */
    const char *author; /* 1..SPRO_ID_MAX bytes */
    uint32_t schema;    /* schema version of the op that wrote it */
    int sealed;         /* val is sealed (1) or the value's msgpack (0) */
    const uint8_t *val;
    size_t val_len;
};

/* The clock and change counter of the server (sync_state). */
SPRO_MUST_CHECK int spro_store__sync_state_get(struct spro_db *db, uint64_t *hlc, int64_t *seq);
SPRO_MUST_CHECK int spro_store__sync_state_put(struct spro_db *db, uint64_t hlc, int64_t seq);

/* The sync horizon (docs/SYNC.md, "Horizon and purge").  *purged: the
 * purge point, sync_state.purged_seq (removal events numbered up to it may
 * be gone). */
SPRO_MUST_CHECK int spro_store__purged_get(struct spro_db *db, int64_t *purged);
/* Records that device holds every change up to seq (clamped to the change
 * counter), at at_ms: writes only if the acknowledged number differs from
 * the stored one or the stored time is refresh_ms old or more; *written
 * says whether it wrote. */
SPRO_MUST_CHECK int spro_store__device_ack(struct spro_db *db, const char *device, int64_t seq,
                                           int64_t at_ms, int64_t refresh_ms, int *written);
/* Deletes the removal events numbered up to the horizon: the lowest
 * acknowledged number of the active devices that acknowledged at or after
 * since_ms (the change counter if none did), and raises the purge point to
 * the highest number deleted.  *purged: the events deleted. */
SPRO_MUST_CHECK int spro_store__purge(struct spro_db *db, int64_t since_ms, size_t *purged);

/* The record (rtype, rid): 0, SPRO_ENOENT. */
SPRO_MUST_CHECK int spro_store__record_get(struct spro_db *db, const char *rtype, const char *rid,
                                           struct spro_stored_record *out);
/* spro_store__record_get(), and in the same read: *in_scope, whether org's
 * devices receive the records of the record's beneficiary
 * (spro_store__scope_has), *erased, whether that beneficiary was erased
 * (spro_store__erased_has), and the record's fields, copied into *sealed
 * and *plain (out->sealed and out->plain point into them). */
SPRO_MUST_CHECK int spro_store__record_get_for(struct spro_db *db, const char *rtype,
                                               const char *rid, const char *org,
                                               struct spro_stored_record *out, int *in_scope,
                                               int *erased, struct spro_buf *sealed,
                                               struct spro_buf *plain);
/* The fields of the record rec (records.plain), copied into *plain
 * (cleared first); *has = 0 while they are rows of rec_siblings. */
SPRO_MUST_CHECK int spro_store__record_plain_get(struct spro_db *db, int64_t rec,
                                                 struct spro_buf *plain, int *has);
/* The sealed field set of the record rec, copied into *sealed (cleared
 * first); *has = 0 when it has none. */
SPRO_MUST_CHECK int spro_store__record_sealed_get(struct spro_db *db, int64_t rec,
                                                  struct spro_buf *sealed, int *has,
                                                  uint32_t *schema);
/* Sets the fields of the record rec: plain (plen bytes; NULL: unchanged),
 * when set_sealed the sealed set (NULL: none) and its schema, and when
 * seq > 0 its change number. */
SPRO_MUST_CHECK int spro_store__record_fields_put(struct spro_db *db, int64_t rec,
                                                  const uint8_t *plain, size_t plen, int set_sealed,
                                                  const uint8_t *sealed, size_t slen,
                                                  uint32_t schema, int64_t seq);
/* The ids (at most cap, ascending, above after) of records whose fields
 * are still rows of rec_siblings (records.plain NULL), into ids; *n. */
SPRO_MUST_CHECK int spro_store__legacy_records(struct spro_db *db, int64_t after, int64_t *ids,
                                               size_t cap, size_t *n);
/* Deletes the rec_siblings rows of the record rec. */
SPRO_MUST_CHECK int spro_store__legacy_delete(struct spro_db *db, int64_t rec);
/* state_seen: the server saw the value (hlc, origin) of `state` of the
 * record rec first at at_ms (kept if it is there), closed: whether it is
 * "closed"; or forgets it. */
SPRO_MUST_CHECK int spro_store__state_seen_put(struct spro_db *db, int64_t rec, uint64_t hlc,
                                               const char *origin, int64_t at_ms, int closed);
SPRO_MUST_CHECK int spro_store__state_seen_delete(struct spro_db *db, int64_t rec, uint64_t hlc,
                                                  const char *origin);
/* tx: calls fn for each record with a sealed field set or its other fields
 * in its row (r->sealed, r->plain, valid during the call), in id order;
 * stops at fn's non-zero return. */
SPRO_MUST_CHECK int
spro_store__fields_each(struct spro_db *db,
                        int (*fn)(const struct spro_stored_record *r, void *arg), void *arg);
/* The record whose records.id is rec: 0, SPRO_ENOENT (no sealed set read). */
SPRO_MUST_CHECK int spro_store__record_by_id(struct spro_db *db, int64_t rec,
                                             struct spro_stored_record *out);
/* A new record (r->id unused), its id in r->id; SPRO_EEXISTS if (rtype,
 * rid) or its change number is taken. */
SPRO_MUST_CHECK int spro_store__record_insert(struct spro_db *db, struct spro_stored_record *r,
                                              int64_t now_ms);
/* Sets the change number of the record rec (records.id). */
SPRO_MUST_CHECK int spro_store__record_touch(struct spro_db *db, int64_t rec, int64_t seq);
/* Gives every record of ben a new change number, *seq + 1 and on, in
 * their change order; *seq receives the last one given. */
SPRO_MUST_CHECK int spro_store__ben_touch(struct spro_db *db, const char *ben, int64_t *seq);

/* *yes = whether the organisation exists. */
SPRO_MUST_CHECK int spro_store__org_exists(struct spro_db *db, const char *org, int *yes);
/* *yes = whether org's devices receive ben's records. */
SPRO_MUST_CHECK int spro_store__scope_has(struct spro_db *db, const char *ben, const char *org,
                                          int *yes);
/* Adds (ben, org) to scope; *added = 0 if it was there already. */
SPRO_MUST_CHECK int spro_store__scope_add(struct spro_db *db, const char *ben, const char *org,
                                          int *added);
/* Removes (ben, org) from scope, and org's scope_record rows on records of
 * ben (the org sees nothing of ben afterwards); *removed = 0 if (ben, org)
 * was not in scope. */
SPRO_MUST_CHECK int spro_store__scope_remove(struct spro_db *db, const char *ben, const char *org,
                                             int *removed);
/* Logs a removal event for org of every record of ben (scope_removed),
 * numbered *seq + 1 and on in the records' change order; *seq receives the
 * last number given (unchanged when ben has no record). */
SPRO_MUST_CHECK int spro_store__removal_log(struct spro_db *db, const char *ben, const char *org,
                                            int64_t *seq);

/* *yes = whether org's devices receive the record (rtype, rid) alone
 * (scope_record). */
SPRO_MUST_CHECK int spro_store__record_scope_has(struct spro_db *db, const char *rtype,
                                                 const char *rid, const char *org, int *yes);
/* Adds (rtype, rid, org) to scope_record (nothing if it is there); the
 * record must exist (SPRO_ENOENT otherwise). */
SPRO_MUST_CHECK int spro_store__record_scope_add(struct spro_db *db, const char *rtype,
                                                 const char *rid, const char *org);
/* Removes (rtype, rid, org) from scope_record, if it is there. */
SPRO_MUST_CHECK int spro_store__record_scope_remove(struct spro_db *db, const char *rtype,
                                                    const char *rid, const char *org);

/* Calls fn for each sibling of the field name of the record rec
 * (records.id), or of every field when name is NULL, ordered by name, hlc,
 * origin; stops at fn's non-zero return and returns it. */
SPRO_MUST_CHECK int
spro_store__siblings_each(struct spro_db *db, int64_t rec, const char *name,
                          int (*fn)(const struct spro_stored_sibling *s, void *arg), void *arg);

/* Sets the blind index `index` of the record rec to value (16 bytes), or
 * removes it when value is NULL. */
SPRO_MUST_CHECK int spro_store__blind_put(struct spro_db *db, int64_t rec, const char *index,
                                          const uint8_t *value);

/* Calls fn for each record in scope of org (its beneficiary in scope, or
 * the record itself in scope_record) with a change number above after,
 * and, when after > 0, for each removal event of org numbered above after
 * (r->removed set, created_by_org ""), all in change order, at most limit;
 * records (and removal events) of type duplicate only when duplicates is
 * non-zero.  Stops at fn's non-zero return and returns it. */
SPRO_MUST_CHECK int
spro_store__changes_each(struct spro_db *db, const char *org, int duplicates, int64_t after,
                         size_t limit, int (*fn)(const struct spro_stored_record *r, void *arg),
                         void *arg);

/* ---- data.db, inside a transaction: duplicates and merge ---- */

/* The rids (at most cap, in out, *n of them) of the other records of rtype
 * whose blind index `index` has the value that (rtype, rid) has, leaving
 * out beneficiaries merged into another. */
SPRO_MUST_CHECK int spro_store__blind_matches(struct spro_db *db, const char *rtype,
                                              const char *rid, const char *index,
                                              char (*out)[SPRO_ID_MAX + 1], size_t cap, size_t *n);
/* Records that the pair {x, y} has the duplicate record rid; *added = 0
 * (nothing written) if the pair has one already. */
SPRO_MUST_CHECK int spro_store__duplicate_add(struct spro_db *db, const char *x, const char *y,
                                              const char *rid, int *added);
/* Gives the record (rtype, rid) of beneficiary ben, through scope_record,
 * to the organisations that have other in scope and not ben. */
SPRO_MUST_CHECK int spro_store__duplicate_scope(struct spro_db *db, const char *rtype,
                                                const char *rid, const char *ben,
                                                const char *other);
/* The beneficiary ben was merged into: 0 and keep, or SPRO_ENOENT. */
SPRO_MUST_CHECK int spro_store__merged_get(struct spro_db *db, const char *ben,
                                           char keep[SPRO_ID_MAX + 1]);
/* Records that ben is merged into keep, or, keep NULL, that it is not. */
SPRO_MUST_CHECK int spro_store__merged_set(struct spro_db *db, const char *ben, const char *keep);
/* The records of ben other than its beneficiary record, in change order,
 * in *out (malloc'd, the caller frees it; NULL when *n is 0). */
SPRO_MUST_CHECK int spro_store__ben_records(struct spro_db *db, const char *ben,
                                            struct spro_stored_record **out, size_t *n);
/* Moves (rtype, rid) to beneficiary ben, with change number seq. */
SPRO_MUST_CHECK int spro_store__record_move(struct spro_db *db, const char *rtype, const char *rid,
                                            const char *ben, int64_t seq);
/* Gives `to` in scope to every organisation that has `from`; *added says
 * whether one did not have it. */
SPRO_MUST_CHECK int spro_store__scope_copy(struct spro_db *db, const char *from, const char *to,
                                           int *added);

/* ---- data.db, inside a transaction: answered ops, clamps, quarantine ---- */

/* The answer given to an op (ops).  Strings are "" where they do not apply. */
struct spro_stored_op {
    enum spro_result_status status;
    uint64_t hlc;                 /* ack, conflict */
    char origin[SPRO_ID_MAX + 1]; /* ack, conflict */
    char code[SPRO_ID_MAX + 1];   /* reject */
    char rtype[SPRO_ID_MAX + 1];  /* conflict: the record of its op_siblings */
    char rid[SPRO_ID_MAX + 1];
    char ben[SPRO_ID_MAX + 1];
};

/* The answer to (device, seq): 0, SPRO_ENOENT. */
SPRO_MUST_CHECK int spro_store__op_get(struct spro_db *db, const char *device, uint64_t seq,
                                       struct spro_stored_op *out);
/* Stores the answer to (device, seq); SPRO_EEXISTS if there is one. */
SPRO_MUST_CHECK int spro_store__op_put(struct spro_db *db, const char *device, uint64_t seq,
                                       const struct spro_stored_op *op, int64_t at_ms);
/* The acks given to a push's ops: n pairs (seq, hlc), 16 bytes each
 * big-endian, by ascending seq (acks[0..16n)), kept in one row. */
SPRO_MUST_CHECK int spro_store__op_acks_put(struct spro_db *db, const char *device,
                                            const uint8_t *acks, size_t n, int64_t at_ms);
/* The ack given to (device, seq), kept by spro_store__op_acks_put(): 0 and
 * *hlc the version's hlc, SPRO_ENOENT. */
SPRO_MUST_CHECK int spro_store__op_ack_get(struct spro_db *db, const char *device, uint64_t seq,
                                           uint64_t *hlc);
/* *max = the highest seq of device's ops whose answer is kept (0: none). */
SPRO_MUST_CHECK int spro_store__answered_max(struct spro_db *db, const char *device, uint64_t *max);
/* tx: forgets the answers kept for device's ops below seq that were given
 * before at_ms (and their kept conflict siblings): the device holds them
 * (it sends its outbox in order, so a push starting at seq means every op
 * below it was answered and stored) and no copy of an older request can
 * still arrive.  *n (may be NULL): answers forgotten. */
SPRO_MUST_CHECK int spro_store__ops_prune(struct spro_db *db, const char *device, uint64_t seq,
                                          int64_t at_ms, size_t *n);
/* Adds the sibling s to the answer to (device, seq), as field number
 * fidx (a sibling of the sealed field set, sealed alone by the caller). */
SPRO_MUST_CHECK int spro_store__op_sibling_put(struct spro_db *db, const char *device, uint64_t seq,
                                               size_t fidx, const struct spro_stored_sibling *s);
/* Calls fn for each sibling of the answer to (device, seq), ordered by
 * fidx, hlc, origin; stops at fn's non-zero return and returns it. */
SPRO_MUST_CHECK int
spro_store__op_siblings_each(struct spro_db *db, const char *device, uint64_t seq,
                             int (*fn)(const struct spro_stored_sibling *s, void *arg), void *arg);

/* *yes = whether the server ever clamped an op of device. */
SPRO_MUST_CHECK int spro_store__clamp_any(struct spro_db *db, const char *device, int *yes);
/* Records that device's write at hlc got the version ver_hlc (kept if one
 * is recorded already). */
SPRO_MUST_CHECK int spro_store__clamp_put(struct spro_db *db, const char *device, uint64_t hlc,
                                          uint64_t ver_hlc);
/* The version device's write at hlc got: 0, SPRO_ENOENT. */
SPRO_MUST_CHECK int spro_store__clamp_get(struct spro_db *db, const char *device, uint64_t hlc,
                                          uint64_t *ver_hlc);

/* Quarantines the rejected op (device, seq): op is its sealed encoding. */
SPRO_MUST_CHECK int spro_store__quarantine_put(struct spro_db *db, const char *device, uint64_t seq,
                                               const char *ben, const char *code, int64_t at_ms,
                                               const uint8_t *op, size_t oplen);

/* Every quarantined op, oldest first, without its sealed content: one short
 * read, mutex taken.  *rows is malloc'd (free it), *n rows. */
SPRO_MUST_CHECK int spro_store__quarantine_list(struct spro_db *db, struct spro_quarantined **rows,
                                                size_t *n);

/* ---- data.db: the audit log (sync/audit.c; docs/CRYPTO.md, "Audit log") ----
 *
 * An entry is appended in the transaction of the change it records: inside
 * spro_store__transaction() with spro_store__audit_append(), or, for the
 * short transactions of the functions above that take a note (org, user,
 * ticket, device state), by passing the note to them.  The chain's last
 * hash is read inside that write transaction, so appends of several
 * processes chain one after the other.  Kept statements: no prepare per
 * entry. */

/* An entry to append: the audit key (SPRO_KEY_BYTES, from
 * spro_datadir__audit_key()), its time and its fields (strings of printable
 * ASCII, lengths as struct spro_audit_entry says; checked by
 * spro_audit_note_check()). */
struct spro_audit_note {
    const uint8_t *key;
    int64_t time_ms;
    const char *kind;
    const char *actor;
    const char *object;
    const char *detail;
};

/* The last entry of the chain: its seq (0: the chain is empty) and hash
 * (SPRO_AUDIT_GENESIS when empty). */
struct spro_audit_head {
    int64_t seq;
    uint8_t hash[SPRO_AUDIT_HASH_BYTES];
};

/* Inside a transaction: the chain's last entry.  SPRO_EINTEGRITY if its
 * hash is not SPRO_AUDIT_HASH_BYTES long. */
SPRO_MUST_CHECK int spro_store__audit_head(struct spro_db *db, struct spro_audit_head *head);
/* Inside a write transaction: appends note as entry head->seq + 1, chained
 * from head->hash, and moves *head to it.  head must be the chain's last
 * entry in this transaction (from spro_store__audit_head() or the previous
 * call).  Errors of spro_audit_hash() for a malformed note (nothing
 * written), SPRO_EEXISTS (head was not the last entry), SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_store__audit_append_at(struct spro_db *db, struct spro_audit_head *head,
                                                const struct spro_audit_note *note);
/* Inside a write transaction: spro_store__audit_head() then
 * spro_store__audit_append_at(): one entry after the last. */
SPRO_MUST_CHECK int spro_store__audit_append(struct spro_db *db,
                                             const struct spro_audit_note *note);

/* A stored entry or checkpoint, as read: pointers valid during the
 * callback only; lengths as stored (a tampered row may have others). */
struct spro_audit_row {
    int64_t seq;
    int64_t time_ms;
    const char *kind, *actor, *object, *detail; /* entries; never NULL ("" if not text) */
    int malformed; /* entries: 1 if a text column is not TEXT or holds a NUL (tampered) */
    const uint8_t *hash;
    size_t hash_len;
    const uint8_t *sig; /* checkpoints */
    size_t sig_len;
};

/* Inside a transaction: calls fn for each entry with seq > after and
 * time >= since_ms, in seq order; stops at fn's non-zero return and
 * returns it. */
SPRO_MUST_CHECK int spro_store__audit_each(struct spro_db *db, int64_t after, int64_t since_ms,
                                           int (*fn)(const struct spro_audit_row *r, void *arg),
                                           void *arg);
/* Inside a transaction: calls fn for each checkpoint with seq > after, in
 * seq order; stops at fn's non-zero return and returns it. */
SPRO_MUST_CHECK int
spro_store__audit_checkpoints_each(struct spro_db *db, int64_t after,
                                   int (*fn)(const struct spro_audit_row *r, void *arg), void *arg);
/* Inside a write transaction: stores a checkpoint.  SPRO_EEXISTS if seq
 * has one. */
SPRO_MUST_CHECK int spro_store__audit_checkpoint_put(struct spro_db *db, int64_t seq,
                                                     const uint8_t hash[SPRO_AUDIT_HASH_BYTES],
                                                     int64_t time_ms,
                                                     const uint8_t sig[SPRO_AUDIT_SIG_BYTES]);

/* ---- keys.db: data keys (one short transaction each, mutex taken) ---- */

/* The wrapped data key of ben: 0, SPRO_ENOENT, SPRO_EINTEGRITY (not
 * SPRO_WRAPPED_KEY_BYTES long). */
SPRO_MUST_CHECK int spro_store__data_key_get(struct spro_db *db, const char *ben,
                                             uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES]);
/* spro_store__data_key_get() inside a transaction of db (this thread's). */
SPRO_MUST_CHECK int spro_store__data_key_get_tx(struct spro_db *db, const char *ben,
                                                uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES]);
/* Stores ben's wrapped data key unless ben has one already (then nothing
 * changes: a concurrent creator won; read the key back). */
/* Stores n data keys at once, in one transaction (one fsync), each unless
 * its beneficiary has one already. */
SPRO_MUST_CHECK int spro_store__data_keys_add(struct spro_db *db, const char *const *bens,
                                              const uint8_t (*wrapped)[SPRO_WRAPPED_KEY_BYTES],
                                              size_t n);
SPRO_MUST_CHECK int spro_store__data_key_add(struct spro_db *db, const char *ben,
                                             const uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES]);

/* ---- Erasure and retention (sync/erase.c; docs/SYNC.md, "Erasure and
 * retention") ----
 * The functions below marked "tx" run inside spro_store__transaction() of
 * data.db, like those above; the keys.db ones take the mutex.  Erasure is
 * rare: its statements are prepared for each call, not kept. */

/* A row of erased. */
struct spro_store_erased {
    char ben[SPRO_ID_MAX + 1];
    int64_t at_ms;
    char reason[16]; /* "request" or "retention" */
    int done;        /* the data key is gone and both WALs were checkpointed */
};

/* tx: the erased row of ben: 0, SPRO_ENOENT. */
SPRO_MUST_CHECK int spro_store__erased_get(struct spro_db *db, const char *ben,
                                           struct spro_store_erased *out);
/* tx, kept statement (the push's hot path): *yes = whether ben was erased. */
SPRO_MUST_CHECK int spro_store__erased_has(struct spro_db *db, const char *ben, int *yes);
/* The same outside a transaction: mutex taken, one short read. */
SPRO_MUST_CHECK int spro_store__erased_lookup(struct spro_db *db, const char *ben, int *yes);
/* tx: step 1 of an erasure, for the beneficiary ben (its record exists):
 * logs a removal event (numbered *seq + 1 and on; *seq receives the last)
 * of each of its records for each organisation that receives it (scope)
 * or that record (scope_record); removes those scope rows; deletes every
 * sealed sibling of its records, their blind indexes, the quarantined ops
 * naming it, and the kept conflict answers about it (their ops answered
 * not_found from then on); inserts its erased row (done 0, note sealed by
 * the caller, may be NULL). */
SPRO_MUST_CHECK int spro_store__erase_data(struct spro_db *db, const char *ben, int64_t at_ms,
                                           const char *reason, const uint8_t *note, size_t notelen,
                                           int64_t *seq);
/* tx: marks the erasure of ben done. */
SPRO_MUST_CHECK int spro_store__erased_done(struct spro_db *db, const char *ben);
/* tx: the beneficiaries of erasures not done, in *out (malloc'd, the
 * caller frees it; NULL when *n is 0). */
SPRO_MUST_CHECK int spro_store__erased_pending(struct spro_db *db, char (**out)[SPRO_ID_MAX + 1],
                                               size_t *n);
/* tx: the beneficiaries merged into keep (merged.keep = keep), at most
 * cap, into out. */
SPRO_MUST_CHECK int spro_store__merged_from(struct spro_db *db, const char *keep,
                                            char (*out)[SPRO_ID_MAX + 1], size_t cap, size_t *n);
/* tx: calls fn(device, user, org, state, pulled_at, arg) for each device of
 * an organisation that receives ben or one of its records, or received
 * them before a transfer (scope_removed), that pulled after ben was created
 * (its last pull: pulled_at, ms): the devices that may hold, or have held,
 * a copy.  In order of last pull; stops at fn's non-zero return. */
SPRO_MUST_CHECK int spro_store__recipients_each(struct spro_db *db, const char *ben,
                                                int (*fn)(const char *device, const char *user,
                                                          const char *org, const char *state,
                                                          int64_t pulled_at, void *arg),
                                                void *arg);
/* tx: calls fn(rtype, rid, org, arg) for each organisation receiving ben
 * (rtype and rid NULL: the scope of the whole beneficiary) or one of its
 * records alone (scope_record); stops at fn's non-zero return. */
SPRO_MUST_CHECK int spro_store__scope_each(struct spro_db *db, const char *ben,
                                           int (*fn)(const char *rtype, const char *rid,
                                                     const char *org, void *arg),
                                           void *arg);
/* tx: calls fn for each quarantined op naming ben (without its sealed
 * content); stops at fn's non-zero return. */
SPRO_MUST_CHECK int
spro_store__quarantine_each(struct spro_db *db, const char *ben,
                            int (*fn)(const struct spro_quarantined *q, void *arg), void *arg);
/* tx: calls fn(ben, closed_ms, arg) for each beneficiary (only that one,
 * when only is not NULL) whose state field has one sibling, the string
 * "closed", and that is neither erased nor merged; closed_ms is the later
 * of that version's clock and the time the server stored it (ms since the
 * Unix epoch): a device's clock alone never dates a closing.  Stops at
 * fn's non-zero return. */
SPRO_MUST_CHECK int
spro_store__closed_each(struct spro_db *db, const char *only,
                        int (*fn)(const char *ben, int64_t closed_ms, void *arg), void *arg);
/* tx: calls fn for every sealed sibling of data.db with its record's
 * (rtype, rid, ben); stops at fn's non-zero return. */
SPRO_MUST_CHECK int spro_store__sealed_each(struct spro_db *db,
                                            int (*fn)(const struct spro_stored_record *r,
                                                      const struct spro_stored_sibling *s,
                                                      void *arg),
                                            void *arg);
/* keys.db: deletes ben's data key (secure_delete zeroes its bytes in the
 * page) and records that it was erased at at_ms (erased_keys), in one
 * transaction; 0 whether or not there was one, or SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_store__data_key_delete(struct spro_db *db, const char *ben, int64_t at_ms);
/* keys.db: the beneficiaries whose data key an erasure deleted, oldest
 * first, into *bens (malloc'd; free it), *n of them.  0 or SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_store__erased_keys(struct spro_db *db, char (**bens)[SPRO_ID_MAX + 1],
                                            size_t *n);
/* PRAGMA wal_checkpoint(TRUNCATE) of db, mutex taken: every page of the
 * WAL copied into the database and the WAL emptied.  0; SPRO_ESTORE when a
 * reader kept it from completing (old pages may still be in the WAL:
 * retry later). */
SPRO_MUST_CHECK int spro_store__checkpoint(struct spro_db *db);

/* engine.c: opening stored values for the other files of sync/ (export,
 * check).  An opener caches data keys; it holds them in guarded memory,
 * wiped by spro_sync__opener_free() (accepts NULL). */
struct spro_sync__opener;
struct spro_sync__opener *spro_sync__opener_new(struct spro_datadir *dd);
void spro_sync__opener_free(struct spro_sync__opener *o);
/* Opens (or copies, when not sealed) the value of sibling s of record
 * (rtype, rid) of beneficiary ben into out (SPRO_FSET_VALUE_MAX bytes):
 * 0 and *len; SPRO_ENOENT if it is sealed and ben has no data key (erased,
 * or keys.db from another time); SPRO_EINTEGRITY if it does not open (wrong
 * key, altered bytes); SPRO_ESTORE.  May run inside a data.db transaction. */
SPRO_MUST_CHECK int spro_sync__open_sibling(struct spro_sync__opener *o, const char *rtype,
                                            const char *rid, const char *ben,
                                            const struct spro_stored_sibling *s, uint8_t *out,
                                            size_t *len);
/* Calls fn for each sibling of record r (its id read; db in a transaction):
 * those of rec_siblings and those of its sealed field set, in order of
 * name, hlc, origin, each with its value's msgpack in clear (wiped after
 * the call) and sealed set when the field is kept sealed.  Stops at fn's
 * non-zero return and returns it; SPRO_ENOENT if the record has sealed
 * values and ben no data key; SPRO_EINTEGRITY if they do not open. */
SPRO_MUST_CHECK int
spro_sync__record_each(struct spro_sync__opener *o, struct spro_db *db,
                       const struct spro_stored_record *r,
                       int (*fn)(const struct spro_stored_sibling *s, void *arg), void *arg);
/* data.db migrations 11 and 13, their part that needs the data keys: the
 * rows of rec_siblings of every record whose records.plain is NULL become
 * its plain field set and (for rows sealed one by one) its sealed field
 * set, a batch of records a transaction.  A record whose rows do not open
 * (no key, altered) keeps them: *left counts those, *done the records
 * converted.  Run by spro_datadir_open(). */
SPRO_MUST_CHECK int spro_sync__convert_fields(struct spro_datadir *dd, size_t *done, size_t *left);
/* Calls fn for each sibling of the fields of the record rec that are not
 * personal, of field name or of every field (NULL), in order of name, hlc,
 * origin (db in a transaction); stops at fn's non-zero return. */
SPRO_MUST_CHECK int spro_sync__plain_each(struct spro_db *db, int64_t rec, const char *name,
                                          int (*fn)(const struct spro_stored_sibling *s, void *arg),
                                          void *arg);
/* Opens the sealed field set of r (r->sealed, from
 * spro_store__fields_each): 0 and *n its siblings, SPRO_ENOENT (no data
 * key), SPRO_EINTEGRITY (does not open). */
SPRO_MUST_CHECK int spro_sync__open_set(struct spro_sync__opener *o,
                                        const struct spro_stored_record *r, size_t *n);
/* Reads r's other fields (r->plain, from spro_store__fields_each): 0 and
 * *n their siblings, SPRO_EINTEGRITY (not a well-formed array). */
SPRO_MUST_CHECK int spro_sync__read_plain(const struct spro_stored_record *r, size_t *n);

/* erase.c: finishes the erasures that a crash left pending (spro_subject_
 * erase_pending, sync.h); called when a data directory opens.  A failure is
 * left for the next call. */
void spro_subject__finish_pending(struct spro_datadir *dd);
/* erase.c: the check "every sealed field decrypts" of spro_datadir_check()
 * (backup.c): 0, or SPRO_EINTEGRITY naming the first sealed value that
 * does not open under its key; values whose data key is gone are counted
 * apart in detail. */
int spro_subject__check_sealed(struct spro_datadir *dd, char *detail, size_t cap);

/* ---- keys.db: KEK epochs, the root key, re-wrapping (sync/keyring.c) ----
 * Each function is one transaction of its own (mutex taken).  Data keys
 * are added only under the active epoch: spro_store__data_key(s)_add()
 * return -EAGAIN, storing nothing, when the epoch their keys name is not
 * the active one any more (a rotation committed meanwhile). */

enum spro_kek_state { SPRO_KEK_ACTIVE, SPRO_KEK_RETIRED, SPRO_KEK_DESTROYED };

struct spro_kek_row {
    uint32_t epoch; /* 1.. */
    enum spro_kek_state state;
    int derived; /* no wrapped KEK: derived from the root key (epoch 1 of old directories) */
    uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES]; /* unless derived or destroyed */
    int64_t created_at, destroyed_at;        /* s since the Unix epoch; destroyed_at 0 if not */
    uint64_t data_keys;                      /* data keys under the epoch (with_counts) */
};

/* The epochs, oldest first, at most cap (SPRO_ETOOLONG beyond); with
 * with_counts, each with its number of data keys (one scan of the epoch
 * index).  SPRO_EINTEGRITY for a row that cannot be one. */
SPRO_MUST_CHECK int spro_store__keks_list(struct spro_db *db, struct spro_kek_row *rows, size_t cap,
                                          size_t *n, int with_counts);
/* Adds epoch, active, wrapped; the active epoch becomes retired.  epoch
 * must be one above the highest: else SPRO_EEXISTS, nothing changed. */
SPRO_MUST_CHECK int spro_store__kek_add(struct spro_db *db, uint32_t epoch,
                                        const uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES], int64_t now);
/* Gives a derived epoch its wrapped KEK (a new directory's epoch 1).
 * SPRO_ENOENT if epoch is not a live derived epoch. */
SPRO_MUST_CHECK int spro_store__kek_set_wrapped(struct spro_db *db, uint32_t epoch,
                                                const uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES]);

struct spro_data_key_row {
    char ben[SPRO_ID_MAX + 1];
    uint32_t epoch;
    uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES];
};

/* At most limit data keys under an epoch below current, oldest epoch
 * first (through the epoch index). */
SPRO_MUST_CHECK int spro_store__data_keys_old(struct spro_db *db, uint32_t current, size_t limit,
                                              struct spro_data_key_row *rows, size_t *n);
/* In one transaction: each old[i] still stored as read gets wrapped[i]
 * under epoch, which must be active (-EAGAIN otherwise, nothing changed).
 * A key changed or deleted since it was read (erased, re-wrapped by
 * another process) is left alone.  *replaced: the rows changed. */
SPRO_MUST_CHECK int spro_store__data_keys_replace(struct spro_db *db,
                                                  const struct spro_data_key_row *old,
                                                  const uint8_t (*wrapped)[SPRO_WRAPPED_KEY_BYTES],
                                                  uint32_t epoch, size_t n, size_t *replaced);
/* Destroys a retired epoch that no data key names: its wrapped KEK is
 * overwritten (secure_delete), the state set, the WAL checkpointed and
 * truncated.  *destroyed: whether it was (0: still used, or not retired). */
SPRO_MUST_CHECK int spro_store__kek_destroy(struct spro_db *db, uint32_t epoch, int64_t now,
                                            int *destroyed);
/* The wrapped root key: 0, SPRO_ENOENT (the root key is the master key),
 * SPRO_EINTEGRITY. */
SPRO_MUST_CHECK int spro_store__root_get(struct spro_db *db,
                                         uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES]);

/* What spro_store__master_change() writes in one transaction: every live
 * epoch's KEK and every server key under the new master key, and the root
 * key. */
struct spro_sealed_server_key {
    const char *name;
    const uint8_t *sealed;
    size_t sealedlen;
};
struct spro_master_change {
    const struct spro_kek_row *keks; /* epoch and wrapped of every live epoch */
    size_t nkeks;
    const struct spro_sealed_server_key *server;
    size_t nserver;
    const uint8_t *root; /* SPRO_WRAPPED_KEK_BYTES */
    int64_t now;
};
/* SPRO_EEXISTS if a live epoch was left out (a rotation meanwhile: nothing
 * changed); SPRO_ENOENT if a row to rewrite is missing. */
SPRO_MUST_CHECK int spro_store__master_change(struct spro_db *db,
                                              const struct spro_master_change *m);

/* ---- The data directory's internals, for the other files of sync/ ---- */

/* data.db of dd (owned by dd). */
struct spro_db *spro_datadir__data(struct spro_datadir *dd);
/* Pairs of reader connections (data.db and keys.db again) for read
 * transactions that must not wait for a write transaction, nor for each
 * other (pulls): with WAL, each reads the last commit while the writer
 * writes. */
#define SPRO_DATADIR_READERS 3
/* Takes a free pair (waits until one is given back if none is; opens it
 * the first time it is taken): its connections in *data and *keys, owned
 * by dd, and its number in *pair, for spro_datadir__readers_give().
 * SPRO_ESTORE if it cannot be opened (nothing taken). */
SPRO_MUST_CHECK int spro_datadir__readers_take(struct spro_datadir *dd, struct spro_db **data,
                                               struct spro_db **keys, size_t *pair);
void spro_datadir__readers_give(struct spro_datadir *dd, size_t pair);

/* keys.db of dd (owned by dd). */
struct spro_db *spro_datadir__keys(struct spro_datadir *dd);

/* The root key of dd (spro_datadir__root(): the master key until it
 * changes; SPRO_KEY_BYTES in guarded memory, owned by dd). */
const uint8_t *spro_datadir__master(const struct spro_datadir *dd);

/* The root key of dd: what purpose subkeys (blind indexes, quarantine,
 * enrolment, audit, derived KEK epochs) derive from.  It is the
 * directory's first master key, unwrapped from keys.db's root_key once the
 * master key changed (docs/CRYPTO.md, "Key hierarchy").  Guarded memory,
 * owned by dd.  (spro_datadir__master() is this same key.) */
const uint8_t *spro_datadir__root(const struct spro_datadir *dd);

/* The key-wrapping subkey of the master key (wraps KEKs and the root key);
 * guarded memory owned by dd. */
const uint8_t *spro_datadir__key_wrapping_key(const struct spro_datadir *dd);

/* The keyring of dd (keyring.c) and the keys generation (DIR/keys.gen,
 * memory-mapped, shared by the processes using dd): bumped after every
 * change of the KEK epochs. */
struct spro_keyring;
struct spro_keyring *spro_datadir__keyring(struct spro_datadir *dd);
uint64_t spro_datadir__keys_generation(const struct spro_datadir *dd);
void spro_datadir__keys_changed(struct spro_datadir *dd);

/* keyring.c.  spro_keyring__kek() copies the KEK of epoch to out; an epoch
 * keys.db does not hold live (after one reload) is SPRO_EINTEGRITY, never
 * a guess.  spro_keyring__current() gives the active epoch and its KEK.
 * Both fail with SPRO_ESTORE, or SPRO_EINTEGRITY when a KEK does not open
 * (keys.db under another master key); out is zeroed on failure.
 * invalidate() makes the next call reload. */
struct spro_keyring *spro_keyring__create(void);
void spro_keyring__destroy(struct spro_keyring *kr);
SPRO_MUST_CHECK int spro_keyring__kek(struct spro_datadir *dd, uint32_t epoch,
                                      uint8_t out[SPRO_KEY_BYTES]);
SPRO_MUST_CHECK int spro_keyring__current(struct spro_datadir *dd, uint32_t *epoch,
                                          uint8_t out[SPRO_KEY_BYTES]);
void spro_keyring__invalidate(struct spro_datadir *dd);

/* Bumps the devices generation (see spro_datadir_devices_generation). */
void spro_datadir__devices_changed(struct spro_datadir *dd);

/* The audit key of dd (SPRO_KEY_BYTES in guarded memory, owned by dd), and
 * the actor its entries name when the caller names none
 * (spro_audit_set_actor()). */
const uint8_t *spro_datadir__audit_key(const struct spro_datadir *dd);
const char *spro_datadir__audit_actor(const struct spro_datadir *dd);

/* The server's Ed25519 secret key (SPRO_SIGN_SECRET_BYTES, owned by dd). */
const uint8_t *spro_datadir__sign_secret(const struct spro_datadir *dd);

#endif
