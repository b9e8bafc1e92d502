/*
 * local.h: the device's local store (spro-client, and tests): what a device
 * holds of the records in its scope, its own unsynced edits and the outbox
 * of ops that carry them to the server (docs/PROTOCOL.md, "Sync";
 * docs/SYNC.md for versions, siblings and the merge rule).
 *
 * A device directory DIR holds:
 *   DIR/local.key  32 random bytes, mode 0600: the device-local key that
 *                  seals every string value at rest (XChaCha20-Poly1305,
 *                  associated data rtype 0x00 rid 0x00 field name), and the
 *                  outbox and quarantine ops whole;
 *   DIR/local.db   SQLite (WAL, synchronous=FULL), mode 0600:
 *     records(rtype, rid, ben)          every record the device knows;
 *     fields(rtype, rid, name, nsiblings, siblings)
 *                                       the server's siblings of a field as
 *                                       last heard of (pull, or the answer to
 *                                       this device's own op);
 *     pending(rtype, rid, name, val, base, op_seq, hlc)
 *                                       the device's own edits not yet
 *                                       answered, one per field (the latest);
 *     outbox(seq, op)                   ops not yet answered, in seq order;
 *     quarantine(seq, code, at, op)     ops the server rejected;
 *     meta(key, value)                  device, next_seq, hlc, cursor.
 *
 * Crash safety: every function that writes runs one transaction.  An edit
 * writes its pending fields and its outbox op together; a push answer drops
 * exactly the ops it answers; a pull answer stores its records and its
 * cursor together.  A sync cut at any point resumes where it stopped: an
 * op leaves the outbox only once its result is stored, and is sent again
 * until then (the server answers a retried op as the first time).
 *
 * Display rule: a field shows its pending value when it has one, else the
 * provisional sibling (spro_merge_provisional: the highest version); a
 * field with two or more siblings and no pending edit is in conflict.
 *
 * A struct spro_local is used by one thread at a time; the caller keeps
 * other processes out of DIR (spro-client locks it).  Functions that fail
 * put one human sentence in `why` (whylen bytes; why may be NULL).
 */
#ifndef SPRO_SYNC_LOCAL_H
#define SPRO_SYNC_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"
#include "proto/proto.h"

#define SPRO_LOCAL_UUID_CHARS 36          /* lowercase 8-4-4-4-12 form, without NUL */
#define SPRO_LOCAL_RTYPE_MAX 32           /* bytes of a record type name */
#define SPRO_LOCAL_NAME_MAX 64            /* bytes of a field name; also of ids (device, user) */
#define SPRO_LOCAL_PUSH_MAX (1024 * 1024) /* bytes of one push's plaintext */

struct spro_local; /* opaque */

/* Who writes through this store. */
struct spro_local_identity {
    const char *device; /* the device id: origin of its versions, 1..64 bytes */
    const char *user;   /* the counsellor's user id: author of its edits, 1..64 bytes */
    uint32_t schema;    /* data schema version the device writes with, 1..2^31-1 */
};

/* Opens DIR/local.db and DIR/local.key, creating either when absent (a
 * new key only together with a new database: a database without its key
 * cannot be read).  Returns 0 and sets *out; otherwise *out is NULL and:
 * SPRO_ENOENT (DIR missing), SPRO_EPERM (local.key readable by group or
 * others), SPRO_ECONFIG (local.db without local.key, a key file of the
 * wrong size, or a database made for another device), SPRO_ESCHEMA_NEWER,
 * SPRO_ESTORE, or -errno.  Close with spro_local_close(). */
SPRO_MUST_CHECK int spro_local_open(struct spro_local **out, const char *dir,
                                    const struct spro_local_identity *id, char *why, size_t whylen);

/* Closes the database and wipes the key; accepts NULL. */
void spro_local_close(struct spro_local *l);

/* A new random UUID (version 4), lowercase, NUL-terminated. */
void spro_local_uuid(char out[SPRO_LOCAL_UUID_CHARS + 1]);

/* Whether s is a UUID in lowercase 8-4-4-4-12 form (any version). */
bool spro_local_uuid_ok(const char *s);

/* ---- Edits ---- */

/* One field assignment. */
struct spro_local_set {
    const char *name;      /* 1..64 bytes of [A-Za-z0-9_-], NUL-terminated */
    struct spro_value val; /* kind and b, i or s (s: 0..SPRO_SYNC_MAX_VALUE bytes of UTF-8);
                              raw is ignored */
};

/* One record's edit; it becomes one op. */
struct spro_local_edit {
    const char *rtype;                /* 1..32 bytes of [a-z0-9_] */
    const char *rid;                  /* UUID (spro_local_uuid_ok) */
    const char *ben;                  /* create: the beneficiary's UUID; otherwise ignored */
    bool create;                      /* a new record (it must not exist) */
    const struct spro_local_set *set; /* 1..SPRO_SYNC_MAX_FIELDS distinct names */
    size_t nset;
};

/*
 * Writes edits e[0..n) in one transaction: for each, an op with the next
 * seq and a new HLC value (clock at wall_ms) goes to the outbox, and each
 * of its fields becomes the field's pending value.  The base of a field is
 * the versions of its siblings as last heard of, plus the version of the
 * device's own earlier edit of it still waiting for an answer.  seqs (may
 * be NULL) receives the ops' seqs.  Returns 0; or, nothing written:
 * SPRO_ERANGE (a malformed name, id or value, a repeated field name, no
 * field), SPRO_ENOENT (an edited record unknown here), SPRO_EEXISTS (a
 * created record exists), SPRO_ETOOLONG (an op would not fit in one push,
 * or a field's base would list more than SPRO_SYNC_MAX_SIBLINGS versions),
 * SPRO_EBADUTF8 (a string value that is not UTF-8: the encoder's check),
 * SPRO_ESTORE.
 */
SPRO_MUST_CHECK int spro_local_write(struct spro_local *l, const struct spro_local_edit *e,
                                     size_t n, uint64_t wall_ms, uint64_t *seqs, char *why,
                                     size_t whylen);

/* ---- Reading ---- */

struct spro_local_sibling {
    struct spro_value val;                /* points into the record's memory */
    uint64_t hlc;                         /* version: hlc ... */
    char origin[SPRO_LOCAL_NAME_MAX + 1]; /* ... and origin (the writing replica) */
    char by[SPRO_LOCAL_NAME_MAX + 1];     /* author's user id */
};

struct spro_local_field {
    char name[SPRO_LOCAL_NAME_MAX + 1];
    struct spro_local_sibling *siblings; /* 0..32, sorted by version ascending */
    size_t nsiblings;
    bool pending;                   /* the device's own edit waits for its answer */
    struct spro_value pending_val;  /* when pending */
    const struct spro_value *shown; /* the value to display: pending_val or the
                                       provisional sibling's (NULL only for a
                                       damaged field with neither) */
    bool conflict;                  /* nsiblings >= 2 and not pending */
};

struct spro_local_record {
    char rtype[SPRO_LOCAL_RTYPE_MAX + 1];
    char rid[SPRO_LOCAL_UUID_CHARS + 1];
    char ben[SPRO_LOCAL_UUID_CHARS + 1];
    struct spro_local_field *fields; /* sorted by name */
    size_t nfields;
    void *mem; /* private: the opened values (wiped when freed) */
};

/* The type and beneficiary of record rid (rtype, ben: NUL-terminated).
 * Returns 0; SPRO_ENOENT if no record has that id; SPRO_EEXISTS if
 * records of several types do; SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_local_find(struct spro_local *l, const char *rid,
                                    char rtype[SPRO_LOCAL_RTYPE_MAX + 1],
                                    char ben[SPRO_LOCAL_UUID_CHARS + 1], char *why, size_t whylen);

/* Loads record (rtype, rid) with every field, values opened.  Returns 0
 * and *out (free with spro_local_record_free()); SPRO_ENOENT; SPRO_EINTEGRITY
 * (a value does not open under local.key or is damaged); SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_local_get(struct spro_local *l, const char *rtype, const char *rid,
                                   struct spro_local_record **out, char *why, size_t whylen);

/* Wipes the opened values and frees; accepts NULL. */
void spro_local_record_free(struct spro_local_record *r);

/* Calls cb for every record (of type rtype, or all when NULL), by type
 * then id, with its beneficiary's display name ("given family", from the
 * shown values of its beneficiary record) or NULL when unknown.  A non-zero
 * return of cb stops the walk and is returned.  Returns 0, or an error of
 * spro_local_get(). */
typedef int (*spro_local_list_cb)(void *arg, const char *rtype, const char *rid, const char *ben,
                                  const char *name);
SPRO_MUST_CHECK int spro_local_list(struct spro_local *l, const char *rtype, spro_local_list_cb cb,
                                    void *arg, char *why, size_t whylen);

/* Calls cb for every field in conflict, by type, id, then field name, with
 * its record loaded.  A non-zero return of cb stops the walk and is
 * returned.  Returns 0, or an error of spro_local_get(). */
typedef int (*spro_local_conflict_cb)(void *arg, const struct spro_local_record *r,
                                      const struct spro_local_field *f);
SPRO_MUST_CHECK int spro_local_conflicts(struct spro_local *l, spro_local_conflict_cb cb, void *arg,
                                         char *why, size_t whylen);

/* Calls fn for every op of the local quarantine (the ops the server
 * rejected), oldest first: its sequence number, the server's reason code
 * and when it was refused (seconds).  Stops at fn's non-zero return. */
SPRO_MUST_CHECK int spro_local_quarantine(struct spro_local *l,
                                          int (*fn)(uint64_t seq, const char *code, int64_t at,
                                                    void *arg),
                                          void *arg, char *why, size_t whylen);

/* Ops in the outbox, and in the quarantine.  Returns 0 or SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_local_counts(struct spro_local *l, size_t *outbox, size_t *quarantine);

/* ---- Sync ---- */

struct spro_local_batch; /* opaque: the ops of one push */

/* The next push: the first ops of the outbox in seq order, at most
 * max_ops (1..; above SPRO_SYNC_MAX_OPS counts as SPRO_SYNC_MAX_OPS), as
 * many as fit in SPRO_LOCAL_PUSH_MAX bytes encoded.  A device whose push
 * was answered `too_long` (its answer would not fit a sealed message: big
 * conflicts) sends the same ops again in smaller batches.  Returns 0 with
 * *out (NULL when the outbox is empty; free with spro_local_batch_free());
 * SPRO_EINTEGRITY (an op does not open); SPRO_ESTORE; a decoding or
 * encoding error of an op. */
SPRO_MUST_CHECK int spro_local_push_next(struct spro_local *l, size_t max_ops,
                                         struct spro_local_batch **out, char *why, size_t whylen);

/* Ops in b (1..SPRO_SYNC_MAX_OPS). */
size_t spro_local_batch_size(const struct spro_local_batch *b);

/* The push message of b (type SPRO_MSG_PUSH), valid until b is freed. */
const struct spro_msg *spro_local_batch_msg(const struct spro_local_batch *b);

/* Wipes and frees; accepts NULL. */
void spro_local_batch_free(struct spro_local_batch *b);

struct spro_local_push_stats {
    size_t acked, conflicts, rejected; /* results stored */
    size_t unknown;                    /* results naming no op of the batch (ignored) */
};

/* Called for each rejected op, after its result is stored. */
typedef void (*spro_local_reject_cb)(void *arg, const struct spro_wire_op *op,
                                     const struct spro_bytes *code);

/*
 * Stores the server's answer to batch b, in one transaction: every op a
 * result names leaves the outbox, with the pending fields it still carries;
 * an ack or a conflict also sets the siblings of its fields to the server's
 * (the op's value under the answer's version, or the conflict's siblings);
 * a reject goes to the quarantine.  Ops without a result stay in the
 * outbox.  Adds the counts to *st.  Returns 0; SPRO_ESTORE (nothing
 * stored).
 */
SPRO_MUST_CHECK int spro_local_push_done(struct spro_local *l, const struct spro_local_batch *b,
                                         const struct spro_msg_push_reply *reply, uint64_t wall_ms,
                                         struct spro_local_push_stats *st, spro_local_reject_cb cb,
                                         void *arg, char *why, size_t whylen);

/* The cursor of the next pull (empty before the first).  Returns 0 or
 * SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_local_cursor(struct spro_local *l, uint8_t cursor[SPRO_SYNC_MAX_CURSOR],
                                      size_t *len, char *why, size_t whylen);

/* Stores a pull answer in one transaction: each record replaces the local
 * copy's type, beneficiary and every field (a removed one deletes the
 * record, its fields and its pending edits), then the answer's cursor is
 * saved.  Pending edits and the outbox stay.  An answer with reset (the
 * device's cursor is beyond the server's sync horizon) instead deletes
 * every record without a pending edit, with its fields, and the cursor,
 * so that the next pull is a snapshot; the outbox, the quarantine and the
 * pending edits (and the records they are on) stay.  Returns 0;
 * SPRO_ESTORE (nothing stored). */
SPRO_MUST_CHECK int spro_local_pull_apply(struct spro_local *l,
                                          const struct spro_msg_pull_reply *reply, uint64_t wall_ms,
                                          char *why, size_t whylen);

/* ---- Internal to sync/ and tests ---- */

/* Fault injection: when set to n > 0, the n-th SQL write from then on
 * fails with SPRO_ESTORE (its transaction rolls back), and the counter
 * resets to 0. */
extern int spro_local__fail_write;

#endif
