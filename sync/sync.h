/*
 * sync: the data directory and the store behind spro-server and spro-admin.
 *
 * A data directory holds:
 *   master.key  32 random bytes, mode 0600: the master key (refused if group
 *               or others can read it); or, instead,
 *   master.salt the Argon2id salt and costs that make the master key from a
 *               passphrase (text, mode 0600; docs/CRYPTO.md);
 *   data.db     SQLite (WAL): the data, schema version SPRO_DATA_SCHEMA;
 *   keys.db     SQLite (WAL): wrapped keys, apart from the data so that their
 *               backups can have different retentions; holds the server's
 *               Noise static key (X25519) and Ed25519 signing key, sealed
 *               under a subkey of the master key, and one data key per
 *               beneficiary, wrapped under a key-encryption key.
 * Each database carries its schema version in PRAGMA user_version and is
 * migrated forward on open; a database newer than this program is refused.
 *
 * Threading: a struct spro_datadir may be used from several threads at
 * once: each call below that runs SQL holds the handle's lock for its whole
 * transaction (one connection per database, SQLite in serialised mode).
 * spro-server calls the store only from its worker threads (never from the
 * event-loop thread).  Other processes (spro-admin) may use the same
 * directory meanwhile: their writes are waited for up to 5 s.
 */
#ifndef SPRO_SYNC_SYNC_H
#define SPRO_SYNC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "proto/errors.h"
#include "proto/proto.h"

#define SPRO_DATA_SCHEMA 13 /* schema version of data.db this program writes */
#define SPRO_KEYS_SCHEMA 4  /* schema version of keys.db this program writes */

struct spro_datadir;

/* Creates a new data directory at dir: master key, both databases at their
 * current schema, fresh server keys.  The directory is built beside dir and
 * renamed into place, so a crash leaves either nothing or a complete one.
 * Returns 0; SPRO_EEXISTS if dir exists and is not empty (nothing touched);
 * or another negative code (nothing left behind).  `why` (may be NULL)
 * receives a human explanation naming the file at fault. */
SPRO_MUST_CHECK int spro_datadir_init(const char *dir, char *why, size_t whylen);

/* Opens an existing data directory: checks and loads the master key,
 * opens and migrates both databases, unseals the server keys.  On success
 * *out owns everything; on failure *out is NULL and nothing was changed
 * (SPRO_ENOENT if dir is not a data directory, SPRO_EPERM for a key file
 * others can read, SPRO_ESCHEMA_NEWER, SPRO_EINTEGRITY if the server keys
 * do not open under this master key).  `why` (may be NULL) receives a
 * human explanation naming the file at fault. */
SPRO_MUST_CHECK int spro_datadir_open(const char *dir, struct spro_datadir **out, char *why,
                                      size_t whylen);

/* Where the master key of a data directory comes from, besides its own
 * master.key.  Zero-initialise it and set what applies; the caller owns
 * every pointer, which must outlive the call it is given to. */
struct spro_datadir_options {
    /* The passphrase of a directory with master.salt, from the first of
     * these that is set: */
    const char *passphrase; /* passphrase_len bytes (1..SPRO_PASSPHRASE_MAX) */
    size_t passphrase_len;
    const char *passphrase_file; /* the first line of this file */
    int passphrase_fd;           /* the first line read from this descriptor, */
    int has_passphrase_fd;       /* if this is non-zero */
    /* spro_datadir_init_ex() with a passphrase: Argon2id costs, 0 for the
     * defaults (SPRO_PWHASH_OPS_DEFAULT passes, SPRO_PWHASH_MEM_DEFAULT
     * bytes), within SPRO_PWHASH_{OPS,MEM}_{MIN,MAX}. */
    uint64_t kdf_ops;
    uint64_t kdf_mem;
};

/* Whether o names a passphrase (any of its three sources).  o may be NULL. */
int spro_datadir_options_have_passphrase(const struct spro_datadir_options *o);

/* Reads a passphrase from the file `file` (if not NULL) or else from the
 * descriptor fd: its first line, without the line end (LF or CRLF), 1 to
 * SPRO_PASSPHRASE_MAX bytes.  A regular file that group or others may read
 * is refused (SPRO_EPERM), like a key file.  On success *out is guarded
 * memory (free it with spro_secret_free(), which wipes it) holding *len
 * bytes and a NUL.  Returns 0; SPRO_ECONFIG for an empty or too long
 * passphrase; SPRO_EPERM; or -errno; `why` names the source. */
SPRO_MUST_CHECK int spro_passphrase_read(const char *file, int fd, char **out, size_t *len,
                                         char *why, size_t whylen);

/* spro_datadir_init() with a master key made from o's passphrase, if o
 * names one: then dir gets master.salt (fresh random salt, o's costs)
 * instead of master.key.  SPRO_ERANGE for costs out of bounds; otherwise
 * as spro_datadir_init(). */
SPRO_MUST_CHECK int spro_datadir_init_ex(const char *dir, const struct spro_datadir_options *o,
                                         char *why, size_t whylen);

/* spro_datadir_open() with o (may be NULL) giving the passphrase of a
 * directory with master.salt.  Also fails, changing nothing, with
 * SPRO_ECONFIG when dir has master.salt and o names no passphrase, or has
 * master.key and o names one, or has both files; and with SPRO_EINTEGRITY
 * for a wrong passphrase (the server keys do not open: checked before
 * either database is opened for writing, so nothing in dir changes; when
 * another process has keys.db open the check is made after the normal
 * open, which still writes nothing but SQLite's own bookkeeping).  A
 * passphrase read from o's file or descriptor is wiped before the call
 * returns. */
SPRO_MUST_CHECK int spro_datadir_open_ex(const char *dir, const struct spro_datadir_options *o,
                                         struct spro_datadir **out, char *why, size_t whylen);

/* Closes the databases (checkpointing the WAL) and wipes the keys.
 * Accepts NULL. */
void spro_datadir_close(struct spro_datadir *dd);

/* ---- Key-encryption keys: rotation and re-wrapping (sync/keyring.c;
 * docs/CRYPTO.md, "Key rotation") ----
 * Each call is one or a few keys.db transactions; any of them may run in
 * another process (spro-admin) while spro-server serves. */

#define SPRO_KEYS_EPOCHS_MAX 256 /* KEK epochs a directory may ever have */
#define SPRO_KEYS_LIVE_MAX 8     /* epochs not yet destroyed, at most */
#define SPRO_KEYS_BATCH_MAX 100000

/* One KEK epoch as spro-admin key status shows it. */
struct spro_key_epoch {
    uint32_t epoch;
    const char *state; /* "active" (new data keys), "retired" or "destroyed" (static) */
    int derived;       /* derived from the root key, not stored (epoch 1 of old directories) */
    int64_t created_at, destroyed_at; /* s since the Unix epoch; destroyed_at 0 if not */
    uint64_t data_keys;               /* data keys wrapped under it */
};

/* Adds a new KEK epoch (one above the highest ever), random, wrapped under
 * the master key, as the active one; the previous one is retired (its data
 * keys are re-wrapped by spro_keys_rewrap()).  *epoch: the new one.
 * Returns 0; SPRO_ETOOLONG when SPRO_KEYS_LIVE_MAX - 1 epochs are still
 * live (why says so); SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_keys_rotate(struct spro_datadir *dd, int64_t now, uint32_t *epoch,
                                     char *why, size_t whylen);

/* What one spro_keys_rewrap() call did. */
struct spro_rewrap_result {
    size_t rewrapped;                       /* data keys moved to the active epoch */
    size_t ndestroyed;                      /* epochs destroyed */
    uint32_t destroyed[SPRO_KEYS_LIVE_MAX]; /* which */
    int done;                               /* no data key and no epoch left to move or destroy */
    char ben[65]; /* the data key that did not open, on SPRO_EINTEGRITY (SPRO_ID_MAX + 1) */
};

/* One bounded step of re-wrapping: up to batch (1..SPRO_KEYS_BATCH_MAX)
 * data keys of epochs older than the active one are unwrapped and wrapped
 * again under it, in one keys.db transaction; when none is left, every
 * retired epoch that no data key names is destroyed (its wrapped KEK
 * overwritten, the WAL truncated).  Call it until res->done.  Returns 0;
 * SPRO_EINTEGRITY for a data key that does not open (res->ben names it:
 * nothing of the batch changed); SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_keys_rewrap(struct spro_datadir *dd, size_t batch, int64_t now,
                                     struct spro_rewrap_result *res);

/* The epochs, oldest first (at most cap), each with its count of data
 * keys.  Returns 0 or SPRO_ESTORE, SPRO_EINTEGRITY. */
SPRO_MUST_CHECK int spro_keys_status(struct spro_datadir *dd, struct spro_key_epoch *out,
                                     size_t cap, size_t *n);

/* The new master key of spro_datadir_change_master(): exactly one of
 * key_file (a new random key is written there, and installed) and
 * passphrase (a new salt is drawn; kdf_ops, kdf_mem as for init). */
struct spro_new_master {
    const char *key_file; /* must not exist; written mode 0600 */
    const char *passphrase;
    size_t passphrase_len;
    uint64_t kdf_ops, kdf_mem;
};

/* Changes the master key of the data directory dir (opened with o, the
 * old key's options): every live KEK, the root key and the server's keys
 * are wrapped again under the new key in one keys.db transaction, then
 * the new master file replaces the old one, which is kept as
 * master.key.old (or master.salt.old).  Crash-safe: an interrupted change
 * is completed, or found not to have happened, by the next open (see
 * docs/CRYPTO.md, "Changing the master key").  Refuses (SPRO_EEXISTS)
 * while another process has keys.db open (spro-server: stop it first).
 * A key-file directory takes a new key file, a passphrase directory a new
 * passphrase (SPRO_ECONFIG otherwise). */
SPRO_MUST_CHECK int spro_datadir_change_master(const char *dir,
                                               const struct spro_datadir_options *o,
                                               const struct spro_new_master *n, char *why,
                                               size_t whylen);

/* ---- Backup, restore and check (sync/backup.c) ---- */

#define SPRO_BACKUP_DATA 1u /* data.db */
#define SPRO_BACKUP_KEYS 2u /* keys.db */

/* Bytes written by spro_datadir_backup(), per file (0: not backed up). */
struct spro_backup_result {
    uint64_t data_bytes;
    uint64_t keys_bytes;
};

/* Copies data.db and/or keys.db (`what`: SPRO_BACKUP_DATA |
 * SPRO_BACKUP_KEYS) of the data directory dir into dest/data.db and
 * dest/keys.db, each a consistent snapshot made with SQLite's online
 * backup API in bounded steps, while other processes (spro-server) keep
 * writing: data.db first, then keys.db, so that every data key a
 * backed-up field needs is in the keys.db taken after it.  Needs no key:
 * it copies sealed data, and never copies master.key or master.salt.
 * dest must not exist (it is made, mode 0700) or be an empty directory.
 * Each file is written under a temporary name (mode 0600) in rollback-
 * journal mode (a single self-contained file), fsync'd, renamed, and dest
 * fsync'd.  Returns 0 and fills *res (may be NULL); SPRO_EEXISTS if dest
 * is not empty, SPRO_ENOENT if a database is missing in dir, SPRO_ESTORE,
 * or -errno; on failure nothing is left in dest (and a dest it made is
 * removed). */
SPRO_MUST_CHECK int spro_datadir_backup(const char *dir, const char *dest, unsigned what,
                                        struct spro_backup_result *res, char *why, size_t whylen);

/* Restores a backup: src/data.db and src/keys.db, with the master key file
 * master_key_file (copied to dir/master.key) or else master_salt_file
 * (copied to dir/master.salt, the passphrase then from o) into a new data
 * directory dir (which must not exist or be empty).  Builds it beside dir,
 * opens it the normal way (migrations, server keys) and renames it into
 * place only if that succeeded, so dir ends complete or untouched.  The
 * source is only read.  Returns 0; SPRO_ENOENT if src lacks a database
 * (named in why); SPRO_EEXISTS if dir is not empty; SPRO_EINTEGRITY if the
 * server keys do not open under the given master key; SPRO_ECONFIG for no
 * (or both) master files; or an error of spro_datadir_open_ex(). */
SPRO_MUST_CHECK int spro_datadir_restore(const char *src, const char *dir,
                                         const char *master_key_file, const char *master_salt_file,
                                         const struct spro_datadir_options *o, char *why,
                                         size_t whylen);

/* Runs every check of a data directory, in order, calling report() once
 * per check with its name (e.g. "data.db integrity"), 0 or a negative code,
 * and a one-line detail (what was found, or the first problem).  The
 * checks: PRAGMA integrity_check and foreign_key_check of each database,
 * then that the server keys open under the master key (o as for
 * spro_datadir_open_ex()).  Changes nothing but what opening the
 * directory does.  Returns the number of checks that failed. */
int spro_datadir_check(const char *dir, const struct spro_datadir_options *o,
                       void (*report)(const char *name, int rc, const char *detail, void *arg),
                       void *arg);

/* The server's Noise static public key (X25519), 32 bytes, owned by dd. */
const uint8_t *spro_datadir_noise_public(const struct spro_datadir *dd);

/* The server's Ed25519 public key, 32 bytes, owned by dd. */
const uint8_t *spro_datadir_sign_public(const struct spro_datadir *dd);

/* Schema version of data.db after opening. */
int spro_datadir_schema(const struct spro_datadir *dd);

/* A cheap read of data.db proving it answers (health checks).  Runs SQL:
 * call it off the event loop.  Returns 0 or SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_datadir_ping(struct spro_datadir *dd);

/* ---- Organisations, counsellors, devices, enrolment tickets ----
 *
 * Identifiers chosen by administrators (organisation and user ids) are
 * 1..64 bytes of [A-Za-z0-9._-]; anything else is SPRO_ECONFIG.  Device ids
 * are random UUIDs (36 characters) made by the server.  Times are seconds
 * since the Unix epoch unless named _ms.  Every function here runs SQL: call
 * it off the event loop.  `why` (may be NULL) receives a human explanation.
 */

#define SPRO_ID_MAX 64
#define SPRO_TICKET_ID_CHARS 16 /* lowercase hex */
#define SPRO_TICKET_SECRET_BYTES 32
#define SPRO_TICKET_MAX_FAILURES 5 /* wrong secrets before a ticket is dead */
#define SPRO_TICKET_DEFAULT_TTL 900
#define SPRO_TICKET_MIN_TTL 60    /* seconds a ticket may live: 1 minute .. */
#define SPRO_TICKET_MAX_TTL 86400 /* .. 1 day */

/* kind: cio, mission-locale, france-travail, cap-emploi, psad, region, other.
 * SPRO_EEXISTS if the id is taken. */
SPRO_MUST_CHECK int spro_org_add(struct spro_datadir *dd, const char *id, const char *name,
                                 const char *kind, char *why, size_t whylen);

/* role: counsellor, supervisor or admin.  SPRO_ENOENT if the organisation
 * does not exist, SPRO_EEXISTS if the user id is taken. */
SPRO_MUST_CHECK int spro_user_add(struct spro_datadir *dd, const char *id, const char *org_id,
                                  const char *role, char *why, size_t whylen);

struct spro_ticket {
    char id[SPRO_TICKET_ID_CHARS + 1];        /* random, lowercase hex */
    uint8_t secret[SPRO_TICKET_SECRET_BYTES]; /* random; only its keyed hash is stored */
    int64_t expires_at;
};

/* Issues a one-time ticket bound to user_id, valid ttl seconds from now
 * (SPRO_TICKET_MIN_TTL..SPRO_TICKET_MAX_TTL, else SPRO_ECONFIG).
 * Stores only BLAKE2b(key = enrolment subkey of the master key, id||secret);
 * the caller owns out->secret and wipes it after showing it once.
 * SPRO_ENOENT if the user does not exist; *out is zeroed on failure. */
SPRO_MUST_CHECK int spro_ticket_issue(struct spro_datadir *dd, const char *user_id, int64_t now,
                                      int64_t ttl, struct spro_ticket *out, char *why,
                                      size_t whylen);

enum spro_device_state {
    SPRO_DEVICE_ACTIVE,
    SPRO_DEVICE_REVOKED,
    SPRO_DEVICE_WIPE_PENDING, /* the wipe order goes out at the next handshake */
    SPRO_DEVICE_WIPED,        /* wipe order delivered; as revoked from then on */
};

struct spro_device {
    int64_t rowid;
    char id[SPRO_ID_MAX + 1];   /* device id (UUID) */
    char user[SPRO_ID_MAX + 1]; /* counsellor */
    char org[SPRO_ID_MAX + 1];  /* the counsellor's organisation */
    char role[16];
    enum spro_device_state state;
    int64_t enrolled_at;
    int64_t last_seen;  /* last accepted handshake; 0 if none */
    int64_t last_ts_ms; /* last accepted handshake timestamp (device clock) */
};

/* Redeems a ticket for a new device with static key device_pk, in one
 * transaction: the ticket must exist, be unexpired, unused, under
 * SPRO_TICKET_MAX_FAILURES failures, and its secret must match (compared in
 * constant time); it is then consumed and the device created (state
 * active, last_ts_ms = ts_ms).  Exactly one of two concurrent redemptions
 * of one ticket succeeds.  A wrong secret counts one failure against the
 * ticket.  Every refusal is the same SPRO_ETICKET (no oracle); a device_pk
 * already enrolled is SPRO_EEXISTS.  Fills *out on success. */
SPRO_MUST_CHECK int spro_ticket_redeem(struct spro_datadir *dd, const char *ticket_id,
                                       const uint8_t secret[SPRO_TICKET_SECRET_BYTES],
                                       const uint8_t device_pk[SPRO_KEY_BYTES], int64_t ts_ms,
                                       int64_t now, struct spro_device *out);

/* Finds a device by its static public key, or by row id.  SPRO_ENOENT. */
SPRO_MUST_CHECK int spro_device_by_key(struct spro_datadir *dd,
                                       const uint8_t device_pk[SPRO_KEY_BYTES],
                                       struct spro_device *out);
SPRO_MUST_CHECK int spro_device_by_rowid(struct spro_datadir *dd, int64_t rowid,
                                         struct spro_device *out);

/* Accepts a handshake timestamp: SPRO_EREPLAY unless ts_ms > last_ts_ms
 * (nothing written then); otherwise stores it and last_seen = now, in one
 * statement (a concurrent replay cannot slip between check and write). */
SPRO_MUST_CHECK int spro_device_accept_ts(struct spro_datadir *dd, int64_t rowid, int64_t ts_ms,
                                          int64_t now);

/* Sets a device's state by id: SPRO_DEVICE_REVOKED or SPRO_DEVICE_WIPE_PENDING
 * (from active; revoking a wipe-pending device is allowed).  SPRO_ENOENT.
 * Nothing changes when it fails: SPRO_EEXISTS if the device is already in
 * that state (or wiped, for a revocation: wiped counts as revoked), so that
 * callers can treat a repeated order as done; SPRO_EREVOKED for a wipe
 * order to a revoked or wiped device.  Any other state is a bug. */
SPRO_MUST_CHECK int spro_device_set_state(struct spro_datadir *dd, const char *device_id,
                                          enum spro_device_state state, char *why, size_t whylen);

/* Marks a delivered wipe order: WIPE_PENDING -> WIPED.  0 also if it was
 * already wiped; SPRO_ENOENT; SPRO_EREVOKED if it is not wipe-pending any
 * more (revoked meanwhile: it stays revoked). */
SPRO_MUST_CHECK int spro_device_wiped(struct spro_datadir *dd, int64_t rowid);

/* Calls fn for every device, in enrolment order, from one snapshot read
 * before the first call (fn may call this API); stops at fn's non-zero
 * return and returns it. */
SPRO_MUST_CHECK int spro_device_list(struct spro_datadir *dd,
                                     int (*fn)(const struct spro_device *d, void *arg), void *arg);

/* "active", "revoked", "wipe_pending" or "wiped". */
const char *spro_device_state_name(enum spro_device_state s);

/* A counter that every committed change of a device's state (by any
 * process: spro_device_set_state) increases, kept in DIR/devices.gen and
 * shared through a memory mapping.  Reading it is one memory load, no I/O:
 * the server's event loop calls it at every sealed request and goes to the
 * database only when it moved. */
uint64_t spro_datadir_devices_generation(const struct spro_datadir *dd);

/* The server's Noise static secret key (X25519), 32 bytes, owned by dd. */
const uint8_t *spro_datadir_noise_secret(const struct spro_datadir *dd);

/* ---- Record types (records.c; docs/SYNC.md, "Record types") ----
 *
 * The one table of record types and their fields.  The engine is generic
 * over it: adding a field is a change of that table, not of the engine.
 */

enum spro_ftype {
    SPRO_FTYPE_ANY,  /* a field the table does not know: any value */
    SPRO_FTYPE_STR,  /* str (0..SPRO_SYNC_MAX_VALUE bytes) */
    SPRO_FTYPE_INT,  /* int64 */
    SPRO_FTYPE_BOOL, /* bool */
    SPRO_FTYPE_DATE, /* str "YYYY-MM-DD", a real calendar date */
    SPRO_FTYPE_TIME, /* str "YYYY-MM-DDTHH:MM:SSZ" (UTC) */
    SPRO_FTYPE_ENUM, /* str, one of the field's choices */
};

#define SPRO_FFLAG_PERSONAL 1u   /* sealed at rest with the beneficiary's data key */
#define SPRO_FFLAG_SEARCHABLE 2u /* a blind index of its normalised value is kept */
#define SPRO_FFLAG_LOCAL 4u      /* never leaves the organisation that created the record */
#define SPRO_FFLAG_SCOPE 8u      /* names an organisation that receives the beneficiary */

struct spro_field_def {
    const char *name;           /* 1..SPRO_ID_MAX bytes of [a-z0-9_] */
    enum spro_ftype type;       /* nil is a valid value of every type */
    unsigned flags;             /* SPRO_FFLAG_* */
    const char *const *choices; /* SPRO_FTYPE_ENUM: the allowed strings, NULL-terminated */
    const char *index;          /* SPRO_FFLAG_SEARCHABLE: name of its blind index */
};

struct spro_record_def {
    const char *name; /* record type, 1..32 bytes of [a-z_] */
    const struct spro_field_def *fields;
    size_t nfields;
    /* Fields whose provisional values make the duplicate-detection key of
     * the record (family name, given name, birth date), or NULLs. */
    const char *dedup[3];
};

/* The name of the record type of beneficiaries: its rid is its ben, and
 * only a record of this type creates a beneficiary. */
#define SPRO_RTYPE_BENEFICIARY "beneficiary"

/* The record type of referrals and transfers between organisations
 * (docs/SYNC.md, "Referrals and transfers"), and the fields the engine
 * reads to apply its rules: who refers (from_org) to whom (to_org), its
 * status (proposed, then accepted or refused, then done) and its kind
 * (referral, the default, or transfer). */
#define SPRO_RTYPE_REFERRAL "referral"
#define SPRO_REFERRAL_FROM "from_org"
#define SPRO_REFERRAL_TO "to_org"
#define SPRO_REFERRAL_STATUS "status"
#define SPRO_REFERRAL_KIND "kind"

/* Duplicates and merge (docs/SYNC.md, "Duplicates and merge"): the record
 * type the server writes for two beneficiaries that look like one person,
 * its fields, and the beneficiary fields a merge writes. */
#define SPRO_RTYPE_DUPLICATE "duplicate"
#define SPRO_DUPLICATE_STATUS "status"
#define SPRO_BEN_STATE "state"
#define SPRO_BEN_MERGED_INTO "merged_into"
/* The origin of the versions the server writes (one server per Region). */
#define SPRO_SERVER_ORIGIN "srv:0"
#define SPRO_SERVER_AUTHOR "server"

/* The record type named by name[0..len), or NULL if there is none. */
const struct spro_record_def *spro_sync_record_type(const uint8_t *name, size_t len);

/* The field named name[0..len) of type t.  A name the table does not know
 * but that is well formed (1..SPRO_ID_MAX bytes of [a-z0-9_]) gets the
 * definition of unknown fields: SPRO_FTYPE_ANY, personal, shareable.  NULL
 * for a malformed name. */
const struct spro_field_def *spro_sync_record_field(const struct spro_record_def *t,
                                                    const uint8_t *name, size_t len);

/* Whether v is a valid value of field f: 0, or SPRO_ERANGE (wrong kind,
 * malformed date or time, not one of the choices). */
SPRO_MUST_CHECK int spro_sync_value_check(const struct spro_field_def *f,
                                          const struct spro_value *v);

/* The record types, for listing: *n receives their count. */
const struct spro_record_def *spro_sync_record_types(size_t *n);

/* ---- Push and pull (engine.c; docs/SYNC.md, "Engine") ----
 *
 * Both run SQL and cryptography: call them off the event loop.  Answers
 * point into the arena (reject codes: static strings), never into the
 * request; personal values in them are plaintext: wipe the arena after
 * encoding.  Neither keeps state between calls: keys, clock and change
 * counter come from dd each time.
 */

/* Reject codes of push results (docs/PROTOCOL.md, "Sync"). */
#define SPRO_REJECT_UNKNOWN_TYPE "unknown_type"
#define SPRO_REJECT_BAD_VALUE "bad_value"
#define SPRO_REJECT_NOT_FOUND "not_found"
#define SPRO_REJECT_TOO_MANY_SIBLINGS "too_many_siblings"
#define SPRO_REJECT_TOO_MANY_FIELDS "too_many_fields"
#define SPRO_REJECT_VERSION_REUSED "version_reused"
#define SPRO_REJECT_BAD_TRANSITION "bad_transition" /* a referral's status out of order */

/* Applies a push of device dev (its org, user, id) in ONE write
 * transaction (referrals change scope in it: docs/SYNC.md, "Referrals and
 * transfers"), committed (synchronous=FULL) before returning, and fills
 * *out with one result per op, in order (arrays and strings from arena).
 * now_ms: the server's wall clock, ms since the Unix epoch.  max_drift_ms:
 * the clock clamp: an op whose hlc has a physical part beyond now_ms +
 * max_drift_ms gets a version made by the server's clock instead (within
 * the drift; the result's ver says which).
 *
 * An op already answered (same device, same seq) gets its stored result
 * again and changes nothing.  Rejected ops are quarantined (sealed) and
 * their result stored, in the same transaction.
 *
 * Returns 0; or a negative code, and then *out is empty and nothing was
 * applied: SPRO_ENOMEM if the arena cannot hold the results,
 * SPRO_EINTEGRITY for stored data that does not open or decode (damaged
 * data.db, a missing data key), SPRO_ESTORE for a database error.
 * Exception: SPRO_ESTORE from a COMMIT that failed with an I/O error has an
 * UNKNOWN outcome (the commit may have reached the disk); the server then
 * stops taking pushes (fail-stop) and restarts, and the device retries the
 * same ops, which idempotency answers either way. */
SPRO_MUST_CHECK int spro_sync_push(struct spro_datadir *dd, const struct spro_device *dev,
                                   const struct spro_msg_push *push, int64_t now_ms,
                                   int64_t max_drift_ms, struct spro_arena *arena,
                                   struct spro_msg_push_reply *out);

/* Pushes run by this process on dd since it was opened (*pushes), and the
 * write transactions they took (*commits): pushes that arrive while
 * another group commits are applied together in the next transaction, one
 * commit and fsync for all (group commit, docs/SYNC.md). */
void spro_sync_push_stats(struct spro_datadir *dd, uint64_t *pushes, uint64_t *commits);

/* Bytes of msgpack a pull_reply takes besides its records (envelope keys,
 * the array header, the cursor and more), counted generously. */
#define SPRO_SYNC_PULL_ENVELOPE 128

/* Arena bytes that always suffice for a pull answer of at most max_bytes:
 * the decoded structs and their strings take at most 6 times the bytes of
 * their encoding. */
#define SPRO_SYNC_PULL_ARENA_BYTES(max_bytes) (6 * (size_t)(max_bytes) + 4096)

/* The changes after pull->cursor within dev's scope, in one read
 * transaction: the full current state of each record changed after the
 * cursor whose beneficiary is in scope of dev->org (or that is in scope of
 * dev->org alone: a referral proposed to it), and, after a non-empty
 * cursor, a removed state (ids, no field) for each record that left the
 * scope of dev->org after the cursor (a transfer), all in change order, at
 * most pull->limit records and at most max_bytes of encoded pull_reply
 * (sizes are counted conservatively; max_bytes must be at least
 * SPRO_SYNC_PULL_ENVELOPE).  Personal fields are opened with the
 * beneficiary's data key; fields local to an organisation (SPRO_FFLAG_LOCAL)
 * are given only to devices of the organisation that created the record.
 * out->cursor (8 bytes, big-endian change number, from arena) is the
 * cursor for the next pull (when nothing remains, at least the change
 * counter read in the same snapshot); out->more whether more changes
 * remain.  A
 * non-empty cursor below the purge point (see "The sync horizon") gets
 * out->reset, no record and an empty cursor: removal events it would need
 * are gone, so the device must start again from a snapshot.
 *
 * Returns 0; SPRO_ERANGE for a cursor this server did not make (its
 * length is not 0 or 8); SPRO_ETOOLONG if the first record to send does
 * not fit in max_bytes or the arena (it cannot be sent: the device is
 * stuck on it until it shrinks); SPRO_EINTEGRITY for stored data that does
 * not open or decode; SPRO_ESTORE. *out is empty on failure. */
SPRO_MUST_CHECK int spro_sync_pull(struct spro_datadir *dd, const struct spro_device *dev,
                                   const struct spro_msg_pull *pull, size_t max_bytes,
                                   struct spro_arena *arena, struct spro_msg_pull_reply *out);

/* ---- The sync horizon (engine.c; docs/SYNC.md, "Horizon and purge") ----
 *
 * A device acknowledges a cursor by sending it in a pull: it holds every
 * change up to it.  The horizon is the lowest cursor acknowledged by the
 * active devices that pulled within the last idle_ms (idle_ms <= 0: every
 * active device that ever pulled); revoked and wiped devices, devices that
 * never pulled and, with idle_ms > 0, devices idle longer do not hold it.
 * Removal events (the tombstones of transfers) at or below the horizon
 * are purged; a later pull from a non-empty cursor below the highest
 * event purged is answered reset (spro_sync_pull()).
 */

/* An unchanged acknowledgement is written again at most this often (ms),
 * or every idle_ms / 2 when that is shorter. */
#define SPRO_SYNC_ACK_REFRESH_MS 60000

/* Records, in one short write transaction, that dev acknowledged
 * pull->cursor at now_ms (ms since the Unix epoch): written only when the
 * cursor moved or the stored acknowledgement is SPRO_SYNC_ACK_REFRESH_MS
 * old; when written, purges the removal events at or below the horizon
 * (idle_ms as above) in the same transaction.  *purged (may be NULL): the
 * events deleted.  Call it after a pull of dev succeeded.  Returns 0;
 * SPRO_ERANGE for a cursor that is not 0 or 8 bytes; SPRO_ESTORE (nothing
 * written). */
SPRO_MUST_CHECK int spro_sync_ack(struct spro_datadir *dd, const struct spro_device *dev,
                                  const struct spro_msg_pull *pull, int64_t now_ms, int64_t idle_ms,
                                  size_t *purged);

/* Purges the removal events at or below the horizon now (as
 * spro_sync_ack() does), in one write transaction: for a horizon that
 * moved without a pull (a device revoked or gone idle).  Returns 0 or
 * SPRO_ESTORE; *purged (may be NULL) the events deleted. */
SPRO_MUST_CHECK int spro_sync_purge(struct spro_datadir *dd, int64_t now_ms, int64_t idle_ms,
                                    size_t *purged);

/* ---- Quarantine ---- */

/* A rejected op, as an administrator may see it: who sent it, which
 * beneficiary it named (a pseudonymous id), why it was refused, when.  The
 * op itself stays sealed: it may hold personal data. */
struct spro_quarantined {
    char device[SPRO_ID_MAX + 1];
    uint64_t seq;
    char ben[SPRO_ID_MAX + 1];
    char code[SPRO_ID_MAX + 1];
    int64_t at_ms;
};

/* Calls fn for every quarantined op, oldest first; stops at fn's non-zero
 * return and returns it. */
SPRO_MUST_CHECK int
spro_sync_quarantine_list(struct spro_datadir *dd,
                          int (*fn)(const struct spro_quarantined *q, void *arg), void *arg);

/* ---- The audit log (audit.c; docs/CRYPTO.md, "Audit log") ----
 *
 * Append-only, in data.db: one entry per recorded event, each chained to
 * the one before by keyed BLAKE2b (the audit key, a subkey of the master
 * key), and checkpoints {seq, hash, time} signed with the server's Ed25519
 * key.  Entries hold pseudonymous ids (device, record, organisation, user
 * ids) and codes, never personal data.  Every function runs SQL: call it
 * off the event loop.
 *
 * Fields of an entry are printable ASCII (0x20..0x7e): kind 1..32 bytes of
 * [a-z0-9._] (e.g. "device.revoke"), actor 1..SPRO_AUDIT_FIELD_MAX bytes
 * (who: "admin:uid=0", "server", "device:UUID"), object and detail 0..
 * SPRO_AUDIT_FIELD_MAX bytes (what: "device:UUID", "beneficiary:UUID";
 * how: "ack op=12", "count=3").  The kinds written are listed in
 * docs/CRYPTO.md.
 *
 * To record a change in its own transaction (so that a crash cannot keep
 * the change without its entry), other files of sync/ call
 * spro_store__audit_append() inside spro_store__transaction() (store.h)
 * with the key of spro_datadir__audit_key().
 */

#define SPRO_AUDIT_KIND_MAX 32

/* The actor named by the entries dd's own functions write (org_add,
 * user_add, ticket_issue, device_set_state, and spro_audit_append() with a
 * NULL actor): "server" until set.  spro-admin sets "admin:uid=N".
 * actor is copied (at most SPRO_ID_MAX bytes; longer is a bug). */
void spro_audit_set_actor(struct spro_datadir *dd, const char *actor);

/* 0 if the fields make a valid entry (see above; actor NULL is allowed and
 * means dd's actor), else SPRO_ERANGE. */
SPRO_MUST_CHECK int spro_audit_check(const char *kind, const char *actor, const char *object,
                                     const char *detail);

/* Appends one entry, at the current time, in a write transaction of its
 * own (for events that change nothing in data.db: an export, a backup, a
 * check, refused requests).  actor NULL: dd's actor.  Returns 0;
 * SPRO_ERANGE for invalid fields (nothing written); SPRO_EINTEGRITY if the
 * chain's last stored hash is malformed; SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_audit_append(struct spro_datadir *dd, const char *kind, const char *actor,
                                      const char *object, const char *detail);

/* Signs a checkpoint of the chain at now_ms, if entries were appended
 * since the last checkpoint: first verifies, in read transactions of at
 * most a few thousand entries each, every entry after the last checkpoint
 * (whose signature it checks), then stores the checkpoint of the last
 * entry verified.  *seq (may be NULL): the entry it covers, 0 if none was
 * needed.  Returns 0; SPRO_EINTEGRITY if the chain is broken (nothing is
 * signed; spro_audit_verify() names where); SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_audit_checkpoint(struct spro_datadir *dd, int64_t now_ms, int64_t *seq);

/* What spro_audit_verify() found. */
struct spro_audit_report {
    int64_t entries;         /* entries read */
    int64_t checkpoints;     /* checkpoints read */
    int64_t last_seq;        /* seq of the last entry, 0 if none */
    int64_t last_checkpoint; /* seq of the last checkpoint, 0 if none */
    uint8_t last_checkpoint_hash[SPRO_AUDIT_HASH_BYTES];
    int64_t last_checkpoint_ms;
    int64_t bad_seq; /* the first bad seq (an entry's, or a checkpoint's), 0 if none */
    char why[256];   /* "audit: entry 12 does not chain (...)", "" when good */
};

/* Checks the whole log in one read transaction: walks the chain from the
 * genesis value, recomputing each entry's hash (seq numbers must run 1, 2,
 * 3 ... without gap); checks every checkpoint's signature under the
 * server's public key and that its hash is the chain's at its seq; and that
 * no checkpoint lies beyond the last entry (a truncated tail).  Returns 0
 * (log intact), SPRO_EINTEGRITY (r->bad_seq and r->why name the first
 * problem, in seq order), or SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_audit_verify(struct spro_datadir *dd, struct spro_audit_report *r);

/* A stored entry, for listing (pointers valid during the callback). */
struct spro_audit_record {
    int64_t seq;
    int64_t time_ms;
    const char *kind, *actor, *object, *detail;
    const uint8_t *hash; /* hash_len bytes (SPRO_AUDIT_HASH_BYTES unless tampered) */
    size_t hash_len;
};

/* Calls fn for each entry with seq > after and time >= since_ms, in seq
 * order, from one read transaction; stops at fn's non-zero return and
 * returns it. */
SPRO_MUST_CHECK int spro_audit_each(struct spro_datadir *dd, int64_t after, int64_t since_ms,
                                    int (*fn)(const struct spro_audit_record *e, void *arg),
                                    void *arg);

/* ---- People's rights: export, erasure, retention (erase.c; docs/SYNC.md,
 * "Erasure and retention") ----
 *
 * Each call runs SQL and cryptography: call it off the event loop.  `why`
 * (may be NULL) receives a human explanation of a failure, naming the
 * beneficiary by its id (pseudonymous), never by its data.
 */

/* What an erasure did. */
struct spro_erasure {
    int64_t at_ms;   /* when it was decided (step 1), ms since the Unix epoch */
    size_t erased;   /* beneficiaries erased: ben and those merged into it */
    size_t removals; /* removal events logged for devices */
    int resumed;     /* ben was already erased, its erasure pending: finished now */
    int pending;     /* the key is gone but a WAL could not be checkpointed: the
                        next open or erase_pending finishes it */
};

/* Everything data.db holds about beneficiary ben (a lowercase UUID) and
 * the beneficiaries merged into it, decrypted, as one JSON document
 * appended to out (pretty-printed, UTF-8; format in docs/SYNC.md): every
 * record of every type with every sibling (value, author, version and its
 * time), the organisations that receive it, the quarantined ops naming it
 * and the audit trail.  One read transaction.  out then holds personal
 * data in clear: the caller wipes it (spro_memzero) before freeing it.
 * Returns 0; SPRO_ECONFIG for an id that is not a UUID; SPRO_ENOENT for an
 * unknown beneficiary or one erased (why: "erased on DATE"); SPRO_EINTEGRITY
 * when a sealed value does not open (why says whether its data key is gone,
 * as in a copy of data.db older than an erasure, or the value is damaged);
 * SPRO_ESTORE.  Nothing is appended on failure. */
SPRO_MUST_CHECK int spro_subject_export(struct spro_datadir *dd, const char *ben, int64_t now_ms,
                                        struct spro_buf *out, char *why, size_t whylen);

/* Erases beneficiary ben and the beneficiaries merged into it: (1) one
 * data.db transaction marks them erased (reason "request" or "retention";
 * note, the operator's text or NULL, kept sealed under a subkey of the
 * master key), deletes their personal values, blind indexes, quarantined
 * ops and kept conflict answers, takes them out of every organisation's
 * scope and logs a removal event per record for every organisation that
 * received it; (2) deletes their data keys from keys.db (secure_delete);
 * (3) checkpoints both WALs (TRUNCATE); (4) marks the erasure done.  A
 * crash after (1) leaves it pending: any later open of the directory, and
 * spro_subject_erase_pending(), finish it.  Non-personal fields stay.
 * Returns 0 and fills *out (may be NULL); SPRO_ECONFIG for an id that is
 * not a UUID or a bad reason; SPRO_ENOENT for no such beneficiary;
 * SPRO_EEXISTS if it was erased already and nothing was left to do (why:
 * "erased on DATE"); SPRO_ESTORE (then nothing of step 1 happened, or the
 * erasure is pending). */
SPRO_MUST_CHECK int spro_subject_erase(struct spro_datadir *dd, const char *ben, const char *reason,
                                       const char *note, int64_t now_ms, struct spro_erasure *out,
                                       char *why, size_t whylen);

/* The erasure a retention run makes of a beneficiary it found due:
 * spro_subject_erase(reason "retention"), only if ben's closing is still
 * closed_ms (spro_retention_due.closed_at_ms), checked inside the
 * erasure's transaction; SPRO_ERANGE (nothing changed, why says so) if it
 * was reopened, merged or closed again since. */
SPRO_MUST_CHECK int spro_retention_erase(struct spro_datadir *dd, const char *ben,
                                         int64_t closed_ms, int64_t now_ms, char *why,
                                         size_t whylen);

/* Finishes every pending erasure (steps 2 to 4 above).  *finished (may be
 * NULL): how many.  Returns 0 or SPRO_ESTORE (those not finished stay
 * pending). */
SPRO_MUST_CHECK int spro_subject_erase_pending(struct spro_datadir *dd, size_t *finished);

/* A retention rule: beneficiaries of programme (an enrolment's programme;
 * "*": any programme without a rule of its own) are anonymised `years`
 * years after their closing. */
struct spro_retention_rule {
    char programme[SPRO_ID_MAX + 1];
    unsigned years; /* 0..200 */
};

/* Parses "PROGRAMME:YEARS" (PROGRAMME 1..64 bytes of [A-Za-z0-9._-] or
 * "*").  0, or SPRO_ECONFIG. */
SPRO_MUST_CHECK int spro_retention_parse(const char *spec, struct spro_retention_rule *out);

/* One beneficiary found due by spro_retention_run(). */
struct spro_retention_due {
    char ben[SPRO_ID_MAX + 1];
    char programme[SPRO_ID_MAX + 1]; /* the rule that applied */
    int64_t closed_at_ms; /* its closing: the later of its state `closed`'s version and the
                           * time the server stored it (never a device's clock alone) */
    int64_t due_at_ms;    /* closed_at + years */
    int rc;               /* its erasure: 0, or an error (not run: 0) */
    int kept;             /* not erased after all: reopened, merged or closed again between
                           * the read that found it due and its erasure */
};

/* Anonymises the beneficiaries due under rules[0..n) at now_ms: closed
 * (state `closed`, one sibling; the closing date is the later of its
 * version's time and the time the server stored it),
 * not merged, not erased, and whose every enrolment's programme has a rule
 * (or "*" applies; a beneficiary without enrolment is due only under "*"),
 * due when now_ms >= closing + the longest of those rules' years.  Each is
 * erased as by spro_subject_erase(reason "retention"), unless dry_run;
 * inside the erasure's transaction its closing is checked again, and one
 * that changed meanwhile is kept (d->kept).
 * Pending erasures are finished first.  report (may be NULL) is called for
 * each beneficiary due.  *due (may be NULL): how many were due.  Returns 0
 * if every erasure succeeded, else the first error (the others were still
 * tried). */
SPRO_MUST_CHECK int
spro_retention_run(struct spro_datadir *dd, const struct spro_retention_rule *rules, size_t n,
                   int64_t now_ms, int dry_run,
                   void (*report)(const struct spro_retention_due *d, void *arg), void *arg,
                   size_t *due);

#endif
