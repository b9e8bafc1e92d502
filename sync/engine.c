/*
 * engine.c: push and pull, the sync engine (sync.h; docs/SYNC.md, "Engine").
 *
 * spro_sync_push() applies a device's ops in one write transaction of
 * data.db: for each op, the answer kept from an earlier delivery if there
 * is one; otherwise the checks (record type, values, scope), the op's
 * version (clamped by the server's clock), then each field merged by
 * spro_merge_apply() inside a savepoint, so that a refused field undoes the
 * whole op; referrals add their own rules and change scope ("Push:
 * referrals").  spro_sync_pull() reads, in one read transaction, the
 * records changed after a cursor within the device's scope, and the
 * removal events of records that left it.
 *
 * A record's fields are in its row: the siblings of its personal fields
 * as one set sealed with the beneficiary's data key (keys.db, wrapped
 * under the KEK of an epoch, docs/CRYPTO.md), the others as a plain array
 * ("Sealed field sets"); an op reads the row once and writes it once.  The
 * merge works on plaintext, so the sealed set is opened first, in memory
 * that is wiped after use.  Nothing personal is written in clear: blind
 * indexes are keyed hashes, the answers kept for retries seal each
 * personal sibling alone, and quarantined ops are sealed under the
 * quarantine subkey of the master key.
 *
 * Every SQL statement is in store.c.  No global state: keys, clock and
 * counters come from the data directory for each call.
 */
#include "fieldset.h"
#include "group.h"
#include "merge.h"
#include "store.h"
#include "sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID_CHARS 36
/* Answers kept for retries at least this long (ms): 8 days, above the
 * longest session (--session-ttl at most 7 days) and request timeout. */
#define ANSWERS_KEPT_MS (UINT64_C(8) * 24 * 3600 * 1000)
#define KEY_CACHE 8 /* data keys kept during one call */
#define QUARANTINE_CTX "quaranti"
#define QUARANTINE_AD "spro-sync quarantine v1"
#define VALUE_MAX SPRO_FSET_VALUE_MAX /* bytes of a value's msgpack, at most */
#define SEALED_MAX SPRO_FIELD_SEALED_BYTES(VALUE_MAX)
/* Stops a walk of the store early (not an error). */
#define STOP 1

/* ---- Keys: KEK, blind-index key, quarantine key, data keys ---- */

enum { K_KEK, K_BLIND, K_QUARANTINE, K_DATA };

/* Keys derived or unwrapped during one call, in memory wiped at the end. */
struct keys {
    struct spro_datadir *dd;
    uint8_t *mem;       /* (K_DATA + KEY_CACHE) keys of SPRO_KEY_BYTES */
    uint32_t kek_epoch; /* epoch of the KEK held, 0: none */
    int have_blind, have_quarantine;
    char ben[KEY_CACHE][UUID_CHARS + 1]; /* whose data key each slot holds */
    size_t next;                         /* slot replaced next */
    /* keys.db's reader connection in a read transaction of this thread
     * (pulls), read first; NULL: every lookup is its own read. */
    struct spro_db *snap;
    /* The wrapped keys a push group read or made before its transaction
     * (keys_for_new_beneficiaries), sorted by ben, read first; NULL: none. */
    const struct prekey *pre;
    size_t npre;
};

/* A beneficiary's wrapped data key, as keys.db held it (or was given it)
 * just before a push group's transaction. */
struct prekey {
    char ben[UUID_CHARS + 1];
    uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES];
};

static int prekey_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prekey *)a)->ben, ((const struct prekey *)b)->ben);
}

/* ben's wrapped key from the table read before the transaction: 0 and
 * wrapped filled, or SPRO_ENOENT. */
static int prekey_get(const struct keys *k, const char *ben,
                      uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES])
{
    struct prekey want;
    if (k->pre == NULL || strlen(ben) != UUID_CHARS)
        return SPRO_ENOENT;
    memcpy(want.ben, ben, UUID_CHARS + 1);
    const struct prekey *e = bsearch(&want, k->pre, k->npre, sizeof *k->pre, prekey_cmp);
    if (e == NULL)
        return SPRO_ENOENT;
    memcpy(wrapped, e->wrapped, SPRO_WRAPPED_KEY_BYTES);
    return 0;
}

#define KEYS_BYTES ((K_DATA + KEY_CACHE) * SPRO_KEY_BYTES)

static void keys_init(struct keys *k, struct spro_datadir *dd)
{
    memset(k, 0, sizeof *k);
    k->dd = dd;
    k->mem = spro_crypto_state_alloc(KEYS_BYTES);
    memset(k->mem, 0, KEYS_BYTES);
}

static void keys_free(struct keys *k)
{
    spro_crypto_state_free(k->mem, KEYS_BYTES);
    k->mem = NULL;
}

static uint8_t *key_slot(struct keys *k, size_t i)
{
    return k->mem + i * SPRO_KEY_BYTES;
}

/* The KEK of epoch in *out (owned by k), from the data directory's
 * keyring: an epoch it does not hold live is SPRO_EINTEGRITY. */
static int kek(struct keys *k, uint32_t epoch, const uint8_t **out)
{
    if (k->kek_epoch != epoch || epoch == 0) {
        k->kek_epoch = 0;
        int rc = spro_keyring__kek(k->dd, epoch, key_slot(k, K_KEK));
        if (rc != 0)
            return rc;
        k->kek_epoch = epoch;
    }
    *out = key_slot(k, K_KEK);
    return 0;
}

/* The active epoch and its KEK (in *out, owned by k). */
static int current_kek(struct keys *k, uint32_t *epoch, const uint8_t **out)
{
    k->kek_epoch = 0;
    int rc = spro_keyring__current(k->dd, epoch, key_slot(k, K_KEK));
    if (rc != 0)
        return rc;
    k->kek_epoch = *epoch;
    *out = key_slot(k, K_KEK);
    return 0;
}

/* Stores n new data keys, wrapping each dks[i] under the active epoch;
 * when a rotation committed since the keyring was read (-EAGAIN), reloads
 * it and wraps again, once. */
static int data_keys_store(struct keys *k, const char *const *bens, const uint8_t *dks, size_t n,
                           uint8_t (*wrapped)[SPRO_WRAPPED_KEY_BYTES])
{
    int rc = -EAGAIN;
    for (int attempt = 0; rc == -EAGAIN && attempt < 2; attempt++) {
        if (attempt > 0)
            spro_keyring__invalidate(k->dd);
        uint32_t epoch;
        const uint8_t *kk;
        rc = current_kek(k, &epoch, &kk);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = spro_field_key_wrap(wrapped[i], dks + i * SPRO_KEY_BYTES, kk, epoch, bens[i]);
        if (rc == 0)
            rc = spro_store__data_keys_add(spro_datadir__keys(k->dd), bens,
                                           (const uint8_t(*)[SPRO_WRAPPED_KEY_BYTES])wrapped, n);
    }
    return rc == -EAGAIN ? SPRO_ESTORE : rc;
}

static const uint8_t *blind_key(struct keys *k)
{
    if (!k->have_blind++)
        spro_blind_key_derive(key_slot(k, K_BLIND), spro_datadir__master(k->dd));
    return key_slot(k, K_BLIND);
}

static const uint8_t *quarantine_key(struct keys *k)
{
    if (!k->have_quarantine++)
        spro_crypto_derive(key_slot(k, K_QUARANTINE), spro_datadir__master(k->dd), 1,
                           QUARANTINE_CTX);
    return key_slot(k, K_QUARANTINE);
}

/* Makes, wraps and stores a data key for ben unless one exists. */
static int data_key_create(struct keys *k, const char *ben)
{
    uint8_t dk[SPRO_KEY_BYTES], wrapped[1][SPRO_WRAPPED_KEY_BYTES];
    spro_field_key_new(dk);
    int rc = data_keys_store(k, &ben, dk, 1, wrapped);
    spro_memzero(dk, sizeof dk);
    return rc;
}

static int is_uuid(const struct spro_bytes *b);

/* ben's data key in *dk (owned by k, valid until KEY_CACHE other keys were
 * asked for).  With create, a beneficiary without one gets one (committed
 * to keys.db at once: a data.db transaction that then fails leaves an
 * unused key, never data without its key).  Without create a missing key
 * is SPRO_EINTEGRITY: sealed data whose key is gone. */
static int data_key(struct keys *k, const char *ben, int create, const uint8_t **dk)
{
    for (size_t i = 0; i < KEY_CACHE; i++)
        if (strcmp(k->ben[i], ben) == 0) {
            *dk = key_slot(k, K_DATA + i);
            return 0;
        }
    struct spro_db *keys = spro_datadir__keys(k->dd);
    uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES];
    /* From what the push group read before its transaction, or the
     * pull's snapshot of keys.db if there is one; a key they do not hold
     * (made since) is read again, fresh. */
    int rc = prekey_get(k, ben, wrapped);
    if (rc == SPRO_ENOENT && k->snap != NULL)
        rc = spro_store__data_key_get_tx(k->snap, ben, wrapped);
    if (rc == SPRO_ENOENT)
        rc = spro_store__data_key_get(keys, ben, wrapped);
    if (rc == SPRO_ENOENT && create && (rc = data_key_create(k, ben)) == 0)
        rc = spro_store__data_key_get(keys, ben, wrapped);
    if (rc == SPRO_ENOENT)
        return SPRO_EINTEGRITY;
    if (rc != 0)
        return rc;
    size_t slot = k->next;
    uint32_t epoch = spro_field_key_epoch(wrapped, sizeof wrapped);
    k->ben[slot][0] = '\0';
    const uint8_t *kk = NULL;
    /* An epoch the keyring does not hold: a re-wrap may have moved the key
     * and destroyed its epoch since the read; read it once more. */
    if ((rc = kek(k, epoch, &kk)) == SPRO_EINTEGRITY &&
        (rc = spro_store__data_key_get(keys, ben, wrapped)) == 0) {
        epoch = spro_field_key_epoch(wrapped, sizeof wrapped);
        rc = kek(k, epoch, &kk);
    }
    if (rc == SPRO_ENOENT)
        return SPRO_EINTEGRITY;
    if (rc != 0)
        return rc;
    if (spro_field_key_unwrap(key_slot(k, K_DATA + slot), wrapped, sizeof wrapped, kk, epoch,
                              ben) != 0)
        return SPRO_EINTEGRITY;
    memcpy(k->ben[slot], ben, UUID_CHARS + 1);
    k->next = (slot + 1) % KEY_CACHE;
    *dk = key_slot(k, K_DATA + slot);
    return 0;
}

/* ---- Small helpers ---- */

static int is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int hexval(uint8_t c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* A lowercase UUID: 8-4-4-4-12 hex digits. */
static int is_uuid(const struct spro_bytes *b)
{
    if (b->len != UUID_CHARS)
        return 0;
    for (size_t i = 0; i < UUID_CHARS; i++)
        if (i == 8 || i == 13 || i == 18 || i == 23 ? b->p[i] != '-' : !is_hex(b->p[i]))
            return 0;
    return 1;
}

/* The 16 raw bytes of a UUID (is_uuid): the key id of its data key. */
static void uuid_bytes(const char *uuid, uint8_t out[SPRO_FIELD_KEY_ID_BYTES])
{
    size_t n = 0;
    for (size_t i = 0; i < UUID_CHARS; i += uuid[i] == '-' ? 1 : 2)
        if (uuid[i] != '-')
            out[n++] = (uint8_t)(hexval((uint8_t)uuid[i]) << 4 | hexval((uint8_t)uuid[i + 1]));
}

/* Copies b into dst (cap bytes with the NUL); 0 if it does not fit or
 * holds a NUL. */
static int to_cstr(char *dst, size_t cap, const struct spro_bytes *b)
{
    if (b->len >= cap || (b->len > 0 && memchr(b->p, '\0', b->len) != NULL))
        return 0;
    if (b->len > 0)
        memcpy(dst, b->p, b->len);
    dst[b->len] = '\0';
    return 1;
}

static void *arena_copy(struct spro_arena *a, const void *p, size_t n)
{
    uint8_t *q = spro_arena_alloc(a, n ? n : 1, 1);
    if (q != NULL && n > 0)
        memcpy(q, p, n);
    return q;
}

/* The bytes of a NUL-terminated string, copied into the arena (p NULL if
 * full). */
static struct spro_bytes arena_str(struct spro_arena *a, const char *s)
{
    size_t n = strlen(s);
    return (struct spro_bytes){arena_copy(a, s, n), n};
}

/* Decodes one value (nil, bool, int64, str) that is exactly raw[0..len),
 * pointing into raw.  0 or SPRO_EINTEGRITY. */
static int value_decode(const uint8_t *raw, size_t len, struct spro_value *v)
{
    struct spro_mp_reader r;
    const char *s;
    memset(v, 0, sizeof *v);
    spro_mp_reader_init(&r, raw, len);
    if (spro_mp_read_nil(&r) == 0)
        v->kind = SPRO_VALUE_NIL;
    else if (spro_mp_read_bool(&r, &v->b) == 0)
        v->kind = SPRO_VALUE_BOOL;
    else if (spro_mp_read_int(&r, INT64_MIN, INT64_MAX, &v->i) == 0)
        v->kind = SPRO_VALUE_INT;
    else if (spro_mp_read_str(&r, SPRO_SYNC_MAX_VALUE, &s, &v->s.len) == 0)
        v->kind = SPRO_VALUE_STR, v->s.p = (const uint8_t *)s;
    else
        return SPRO_EINTEGRITY;
    v->raw = (struct spro_bytes){raw, len};
    return spro_mp_finish(&r) == 0 ? 0 : SPRO_EINTEGRITY;
}

/* Whether a received value's raw bytes say what its decoded fields say. */
static int value_consistent(const struct spro_value *v)
{
    struct spro_value d;
    if (v->raw.p == NULL || value_decode(v->raw.p, v->raw.len, &d) != 0 || d.kind != v->kind)
        return 0;
    switch (v->kind) {
    case SPRO_VALUE_NIL:
        return 1;
    case SPRO_VALUE_BOOL:
        return d.b == v->b;
    case SPRO_VALUE_INT:
        return d.i == v->i;
    case SPRO_VALUE_STR:
        return d.s.len == v->s.len && (d.s.len == 0 || memcmp(d.s.p, v->s.p, d.s.len) == 0);
    }
    return 0;
}

/* A sibling of the merge, copied into the arena for an answer. */
static int wire_sibling(struct spro_arena *a, const struct spro_sibling *s,
                        struct spro_wire_sibling *w)
{
    const uint8_t *raw = arena_copy(a, s->value, s->value_len);
    w->ver.hlc = s->v.hlc;
    w->ver.origin = arena_str(a, s->v.origin);
    w->by = arena_str(a, s->author);
    if (raw == NULL || w->ver.origin.p == NULL || w->by.p == NULL)
        return SPRO_ENOMEM;
    return value_decode(raw, s->value_len, &w->val);
}

/* ---- A field's siblings in memory ---- */

/* The siblings of one field, opened: the merge's input.  Heap memory,
 * wiped after each use (it holds plaintext). */
struct field {
    struct spro_sibling s[SPRO_MERGE_MAX_SIBLINGS];
    char author[SPRO_MERGE_MAX_SIBLINGS][SPRO_ID_MAX + 1];
    uint8_t val[SPRO_MERGE_MAX_SIBLINGS][VALUE_MAX];
    size_t n;
};

static struct field *field_new(void)
{
    struct field *f = calloc(1, sizeof *f);
    if (f == NULL)
        SPRO_BUG("out of memory");
    return f;
}

/* Wipes the values that were loaded (not the whole buffer: it is large). */
static void field_clear(struct field *f)
{
    for (size_t i = 0; i < f->n; i++)
        spro_memzero(f->val[i], f->s[i].value_len);
    memset(f->s, 0, sizeof f->s);
    f->n = 0;
}

static void field_free(struct field *f)
{
    if (f == NULL)
        return;
    spro_memzero(f, sizeof *f);
    free(f);
}

/* What opening a stored sibling needs: its record and the data key. */
struct opener {
    struct keys *keys;
    const char *rtype, *rid, *ben;
    int create; /* create the data key if missing (push) */
};

/* Opens (or copies) the value of a stored sibling into out (VALUE_MAX). */
static int open_value(const struct opener *o, const struct spro_stored_sibling *s, uint8_t *out,
                      size_t *len)
{
    if (!s->sealed) {
        if (s->val_len > VALUE_MAX)
            return SPRO_EINTEGRITY;
        memcpy(out, s->val, s->val_len);
        *len = s->val_len;
        return 0;
    }
    const uint8_t *dk;
    uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES];
    int rc = data_key(o->keys, o->ben, o->create, &dk);
    if (rc != 0)
        return rc;
    uuid_bytes(o->ben, key_id);
    struct spro_field_context ctx = {o->rtype, o->rid, s->name, s->schema};
    rc = spro_field_open(out, VALUE_MAX, len, s->val, s->val_len, &ctx, key_id, dk);
    return rc == 0 ? 0 : SPRO_EINTEGRITY;
}

/* ---- Sealed field sets (docs/CRYPTO.md, "Sealed field sets") ----
 *
 * The siblings of a record's personal fields (and unknown fields) are kept
 * together in records.sealed, sealed once under the beneficiary's data key
 * with associated data naming the record and the field set SET_NAME (no
 * field name has a '*').  The plaintext is the array of fieldset.h. */

#define SET_NAME "*personal"
#define SET_MAX SPRO_FIELD_MAX_PLAINTEXT /* bytes of a set's plaintext, at most */
#define SPRO_FSET_ENTRIES (SPRO_SYNC_MAX_FIELDS * SPRO_MERGE_MAX_SIBLINGS)

/* The associated data of a record's set. */
static struct spro_field_context set_context(const char *rtype, const char *rid, uint32_t schema)
{
    return (struct spro_field_context){rtype, rid, SET_NAME, schema};
}

/* Opens the sealed set of record (rtype, rid) of beneficiary ben into ps;
 * an empty set when sealed is NULL. */
static int fset_open(struct spro_fset *ps, struct keys *k, const char *rtype, const char *rid,
                     const char *ben, const uint8_t *sealed, size_t len, uint32_t schema)
{
    spro_fset_clear(ps);
    if (sealed == NULL)
        return 0;
    if (len < SPRO_FIELD_OVERHEAD || len - SPRO_FIELD_OVERHEAD > SET_MAX ||
        strlen(ben) != UUID_CHARS)
        return SPRO_EINTEGRITY;
    const uint8_t *dk;
    uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES];
    int rc = data_key(k, ben, 0, &dk);
    if (rc != 0)
        return rc;
    uuid_bytes(ben, key_id);
    size_t cap = len - SPRO_FIELD_OVERHEAD, ptlen = 0;
    if (cap > ps->ptcap) {
        free(ps->pt);
        if ((ps->pt = malloc(cap)) == NULL)
            SPRO_BUG("out of memory");
        ps->ptcap = cap;
    }
    struct spro_field_context ctx = set_context(rtype, rid, schema);
    rc = spro_field_open(ps->pt, cap, &ptlen, sealed, len, &ctx, key_id, dk) == 0
             ? spro_fset_decode(ps, ps->pt, ptlen)
             : SPRO_EINTEGRITY;
    if (rc != 0)
        spro_fset_clear(ps);
    return rc;
}

/* Seals ps for record (rtype, rid) of beneficiary ben into out (cleared
 * first); an empty set seals to nothing (out->len 0). */
static int fset_seal(const struct spro_fset *ps, struct keys *k, const char *rtype, const char *rid,
                     const char *ben, uint32_t schema, struct spro_buf *out)
{
    out->len = 0;
    if (ps->n == 0)
        return 0;
    struct spro_buf pt = {0};
    spro_fset_encode(ps, &pt);
    const uint8_t *dk;
    uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES];
    int rc = pt.len > SET_MAX ? SPRO_ETOOLONG : data_key(k, ben, 1, &dk);
    if (rc == 0) {
        uuid_bytes(ben, key_id);
        struct spro_field_context ctx = set_context(rtype, rid, schema);
        spro_buf_reserve(out, SPRO_FIELD_SEALED_BYTES(pt.len));
        size_t n = 0;
        rc = spro_field_seal(out->data, out->cap, &n, pt.data, pt.len, &ctx, key_id, dk);
        out->len = rc == 0 ? n : 0;
    }
    if (pt.data != NULL)
        spro_memzero(pt.data, pt.cap);
    spro_buf_free(&pt);
    return rc;
}

/* The siblings of field name in ps into f (sorted by version). */
static void fset_field(const struct spro_fset *ps, const char *name, struct field *f)
{
    field_clear(f);
    for (size_t i = 0; i < ps->n && f->n < SPRO_MERGE_MAX_SIBLINGS; i++) {
        const struct spro_fset_entry *e = &ps->e[i];
        if (strcmp(e->name, name) != 0)
            continue;
        struct spro_sibling *x = &f->s[f->n];
        memcpy(f->val[f->n], e->val, e->len);
        x->value = f->val[f->n];
        x->value_len = e->len;
        x->v.hlc = e->hlc;
        strcpy(x->v.origin, e->origin);
        strcpy(f->author[f->n], e->author);
        x->author = f->author[f->n];
        f->n++;
    }
}

/* ---- Push ---- */

struct push {
    struct spro_db *db;
    const struct spro_device *dev;
    const struct spro_msg_push *msg;
    uint64_t now_ms, drift_ms;
    struct spro_arena *arena;
    size_t arena_mark; /* arena->len once results were taken */
    struct spro_wire_result *results;
    struct keys keys;
    struct field *field;
    struct spro_hlc clock;
    int64_t seq;                   /* the last change number given */
    int clamps;                    /* whether the device has clamped versions */
    struct spro_bytes origin;      /* dev->id, in the arena */
    struct spro_audit_head *audit; /* the audit chain's last entry, in the group's transaction */
    /* The personal siblings of the op being applied (op_pset), and the
     * sealed set read with its record and written back. */
    struct spro_fset ps;
    struct spro_buf sealed_in, sealed_out;
    /* Its other fields' siblings (op_plain), and records.plain read with
     * its record and written back. */
    struct spro_fset plain;
    struct spro_buf plain_in, plain_out;
    /* The acks of this push, kept in one row at its end (answer()): pairs
     * (seq, hlc), 16 bytes each. */
    struct spro_buf acks;
    /* Its seqs ascend and are all above every answered one: no op of it
     * can be a retry, and none is looked up (replay()). */
    int fresh;
};

/* What an op does to a referral (see "Push: referrals"). */
enum referral_step {
    REF_NONE,    /* not a referral, or none of its rules applies */
    REF_PROPOSE, /* creates it: to_org receives the referral record */
    REF_ACCEPT,  /* proposed -> accepted: to_org receives the beneficiary */
    REF_REFUSE,  /* proposed -> refused */
    REF_DONE,    /* accepted -> done */
};

/* One op being applied. */
struct op {
    struct push *p;
    const struct spro_wire_op *w;
    struct spro_wire_result *res;
    const struct spro_record_def *type;
    const struct spro_field_def *defs[SPRO_SYNC_MAX_FIELDS];
    char names[SPRO_SYNC_MAX_FIELDS][SPRO_ID_MAX + 1];
    char rid[UUID_CHARS + 1], ben[UUID_CHARS + 1];
    struct spro_stored_record rec; /* the record; created when is_new */
    int is_new, new_ben;
    struct spro_version ver; /* the version of the op's edits */
    int clamped;
    const char *reject;                     /* set: the op is refused with this code */
    size_t conflicts[SPRO_SYNC_MAX_FIELDS]; /* edits whose field ends in conflict */
    size_t nconflicts;
    struct spro_wire_field *fields; /* their answer, in the arena */
    int changed, scope_added, dedup;
    int indexed;      /* an edit changed a searchable or dedup field: its blind indexes may move */
    int new_field;    /* an edit added a field the record did not have */
    int ps_loaded;    /* p->ps holds the record's personal siblings */
    int plain_loaded; /* p->plain holds its other fields' siblings */
    int ps_dirty;     /* an edit changed p->ps: written back at the end of the op */
    int plain_dirty;  /* an edit changed p->plain: likewise */
    int record_only;  /* the device's organisation has the record in scope, not its ben */
    enum referral_step step;
    char ref_from[SPRO_ID_MAX + 1], ref_to[SPRO_ID_MAX + 1]; /* the referral's organisations */
    int ref_transfer;                                        /* its kind is transfer */
    /* Duplicates and merge (see "Push: duplicates and merge"). */
    int repointed;                   /* ben (and a beneficiary's rid) re-pointed to the keeper */
    char merge_keep[UUID_CHARS + 1]; /* this op merges the beneficiary into it; "" if not */
    int unmerge;                     /* this op undoes the merge of the beneficiary */
};

/* Whether name is one of the record type's duplicate-detection fields. */
static int is_dedup_field(const struct spro_record_def *t, const char *name)
{
    for (int i = 0; i < 3; i++)
        if (t->dedup[i] != NULL && strcmp(t->dedup[i], name) == 0)
            return 1;
    return 0;
}

/* A scope field's value must be nil or an existing organisation. */
static int check_scope_value(struct op *o, const struct spro_value *v, int *ok)
{
    char org[SPRO_ID_MAX + 1];
    *ok = v->kind == SPRO_VALUE_NIL;
    if (v->kind != SPRO_VALUE_STR || !to_cstr(org, sizeof org, &v->s))
        return 0;
    return spro_store__org_exists(o->p->db, org, ok);
}

/* The op's type, ids, field names and values; sets o->reject. */
static int check_shape(struct op *o)
{
    const struct spro_wire_op *w = o->w;
    if (is_uuid(&w->ben))
        to_cstr(o->ben, sizeof o->ben, &w->ben);
    o->type = spro_sync_record_type(w->rtype.p, w->rtype.len);
    if (o->type == NULL) {
        o->reject = SPRO_REJECT_UNKNOWN_TYPE;
        return 0;
    }
    o->reject = SPRO_REJECT_BAD_VALUE;
    if (!is_uuid(&w->rid) || !is_uuid(&w->ben) || w->nset == 0 || w->nset > SPRO_SYNC_MAX_FIELDS)
        return 0;
    to_cstr(o->rid, sizeof o->rid, &w->rid);
    if (strcmp(o->type->name, SPRO_RTYPE_BENEFICIARY) == 0 && strcmp(o->rid, o->ben) != 0)
        return 0;
    for (size_t j = 0; j < w->nset; j++) {
        const struct spro_wire_edit *e = &w->set[j];
        const struct spro_field_def *d = spro_sync_record_field(o->type, e->name.p, e->name.len);
        if (d == NULL || !value_consistent(&e->val) || spro_sync_value_check(d, &e->val) != 0 ||
            e->nbase > SPRO_SYNC_MAX_SIBLINGS)
            return 0;
        for (size_t b = 0; b < e->nbase; b++)
            if (e->base[b].origin.len == 0 || e->base[b].origin.len > SPRO_ORIGIN_MAX ||
                memchr(e->base[b].origin.p, '\0', e->base[b].origin.len) != NULL)
                return 0;
        to_cstr(o->names[j], sizeof o->names[j], &e->name);
        for (size_t i = 0; i < j; i++)
            if (strcmp(o->names[i], o->names[j]) == 0)
                return 0;
        int ok = 1, rc;
        if ((d->flags & SPRO_FFLAG_SCOPE) && (rc = check_scope_value(o, &e->val, &ok)) != 0)
            return rc;
        if (!ok)
            return 0;
        o->defs[j] = d;
    }
    o->reject = NULL;
    return 0;
}

/* Whether the device may write this op's record: an existing record of
 * the same beneficiary in scope of its organisation (local fields only by
 * the organisation that created it) or, failing that, a record in scope of
 * its organisation alone (o->record_only: what it may write of it is for
 * the rules of its type to say, see check_referral()), or a new record of a
 * beneficiary in scope, or a new beneficiary.  Anything else is not_found,
 * whether or not it exists.  Sets o->reject. */
static int repoint(struct op *o);

static int value_is(const struct spro_value *v, const char *s);

static int is_personal(const struct spro_record_def *t, const char *name)
{
    const struct spro_field_def *d = spro_sync_record_field(t, (const uint8_t *)name, strlen(name));
    return d == NULL || (d->flags & SPRO_FFLAG_PERSONAL) != 0;
}

/* The personal siblings of the op's record, in p->ps (read and opened
 * once per op).  A record whose fields are still rows of rec_siblings (one
 * the conversion at open could not move: docs/SYNC.md, "Store") is not
 * written: SPRO_EINTEGRITY. */
static int op_pset(struct op *o)
{
    struct push *p = o->p;
    if (o->ps_loaded)
        return 0;
    int rc = 0;
    spro_fset_clear(&p->ps);
    if (!o->is_new && o->rec.plain == NULL)
        rc = SPRO_EINTEGRITY;
    else if (!o->is_new && o->rec.sealed != NULL)
        rc = fset_open(&p->ps, &p->keys, o->type->name, o->rid, o->ben, o->rec.sealed,
                       o->rec.sealed_len, o->rec.sealed_schema);
    o->ps_loaded = rc == 0;
    return rc;
}

/* The other fields' siblings of the op's record, in p->plain (read once
 * per op; they point into p->plain_in). */
static int op_plain(struct op *o)
{
    struct push *p = o->p;
    if (o->plain_loaded)
        return 0;
    int rc = 0;
    spro_fset_clear(&p->plain);
    if (!o->is_new && o->rec.plain == NULL)
        rc = SPRO_EINTEGRITY;
    else if (!o->is_new)
        rc = spro_fset_decode(&p->plain, o->rec.plain, o->rec.plain_len);
    if (rc != 0)
        spro_fset_clear(&p->plain);
    o->plain_loaded = rc == 0;
    return rc;
}

/* Loads the current siblings of field name of the op's record into f. */
static int op_field_load(struct op *o, const char *name, struct field *f)
{
    int personal = is_personal(o->type, name);
    int rc = personal ? op_pset(o) : op_plain(o);
    if (rc == 0)
        fset_field(personal ? &o->p->ps : &o->p->plain, name, f);
    return rc;
}

/* Writes the op's changed siblings back (the personal ones sealed), with
 * the change number seq (0: unchanged). */
static int op_fields_save(struct op *o, int64_t seq)
{
    struct push *p = o->p;
    int rc = 0;
    if (o->ps_dirty)
        rc = fset_seal(&p->ps, &p->keys, o->type->name, o->rid, o->ben, o->w->schema,
                       &p->sealed_out);
    p->plain_out.len = 0;
    if (rc == 0 && o->plain_dirty)
        spro_fset_encode(&p->plain, &p->plain_out);
    if (rc != 0)
        return rc;
    return spro_store__record_fields_put(
        p->db, o->rec.id, o->plain_dirty ? p->plain_out.data : NULL, p->plain_out.len, o->ps_dirty,
        p->sealed_out.len ? p->sealed_out.data : NULL, p->sealed_out.len, o->w->schema, seq);
}

static int check_scope(struct op *o)
{
    struct push *p = o->p;
    int rc = repoint(o), yes = 0;
    if (rc != 0)
        return rc;
    int erased = 0;
    rc = spro_store__record_get_for(p->db, o->type->name, o->rid, p->dev->org, &o->rec, &yes,
                                    &erased, &p->sealed_in, &p->plain_in);
    o->reject = SPRO_REJECT_NOT_FOUND;
    if (rc == SPRO_ENOENT) {
        o->is_new = 1;
        o->new_ben = strcmp(o->type->name, SPRO_RTYPE_BENEFICIARY) == 0;
        if (o->new_ben) {
            o->reject = NULL;
            return 0;
        }
        /* A new record of a beneficiary that exists (or not). */
        if ((rc = spro_store__scope_has(p->db, o->ben, p->dev->org, &yes)) != 0 ||
            (rc = spro_store__erased_has(p->db, o->ben, &erased)) != 0)
            return rc;
    } else if (rc != 0) {
        return rc;
    } else if (strcmp(o->rec.ben, o->ben) != 0) {
        return 0;
    }
    if (!yes && !o->is_new) {
        rc = spro_store__record_scope_has(p->db, o->type->name, o->rid, p->dev->org, &yes);
        o->record_only = yes;
    }
    if (rc != 0 || !yes)
        return rc;
    for (size_t j = 0; !o->is_new && j < o->w->nset; j++)
        if ((o->defs[j]->flags & SPRO_FFLAG_LOCAL) &&
            strcmp(o->rec.created_by_org, p->dev->org) != 0)
            return 0;
    /* An erased beneficiary is in nobody's scope any more; this check
     * keeps it so whatever scope row a later change might bring back. */
    if (!erased)
        o->reject = NULL;
    return 0;
}

/* The op's base of edit e as merge versions; a version of this device
 * that the server clamped is named by the device with its own hlc. */
static int base_versions(struct op *o, const struct spro_wire_edit *e,
                         struct spro_version base[SPRO_MERGE_MAX_SIBLINGS])
{
    struct push *p = o->p;
    for (size_t b = 0; b < e->nbase; b++) {
        base[b].hlc = e->base[b].hlc;
        to_cstr(base[b].origin, sizeof base[b].origin, &e->base[b].origin);
        if (!p->clamps || strcmp(base[b].origin, p->dev->id) != 0)
            continue;
        int rc = spro_store__clamp_get(p->db, p->dev->id, base[b].hlc, &base[b].hlc);
        if (rc != 0 && rc != SPRO_ENOENT)
            return rc;
    }
    return 0;
}

/* Writes the merge's result: removes the siblings it superseded, adds the
 * edit. */
static int store_merge(struct op *o, size_t j, const struct spro_sibling *edit,
                       const struct spro_sibling *out, size_t nout)
{
    struct push *p = o->p;
    if (o->defs[j]->flags & SPRO_FFLAG_PERSONAL) {
        spro_fset_merge(&p->ps, o->names[j], edit, out, nout, o->w->schema);
        o->ps_dirty = 1;
        return 0;
    }
    spro_fset_merge(&p->plain, o->names[j], edit, out, nout, o->w->schema);
    o->plain_dirty = 1;
    if (strcmp(o->names[j], SPRO_BEN_STATE) != 0)
        return 0;
    /* state_seen: when the server first saw each value of `state` (the
     * superseded ones forgotten), and whether it is "closed" (retention). */
    struct field *f = p->field;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < f->n; i++)
        if (!spro_merge_in(&f->s[i].v, out, nout))
            rc = spro_store__state_seen_delete(p->db, o->rec.id, f->s[i].v.hlc, f->s[i].v.origin);
    struct spro_value v;
    int closed = value_decode(edit->value, edit->value_len, &v) == 0 && value_is(&v, "closed");
    return rc != 0 ? rc
                   : spro_store__state_seen_put(p->db, o->rec.id, edit->v.hlc, edit->v.origin,
                                                (int64_t)p->now_ms, closed);
}

/* The answer's entry for a field in conflict, from the merge's result. */
static int conflict_field(struct op *o, size_t j, const struct spro_sibling *out, size_t nout)
{
    struct spro_arena *a = o->p->arena;
    struct spro_wire_field *wf = &o->fields[o->nconflicts];
    struct spro_wire_sibling *ws = spro_arena_alloc(a, nout * sizeof *ws, 16);
    wf->name = arena_str(a, o->names[j]);
    if (ws == NULL || wf->name.p == NULL)
        return SPRO_ENOMEM;
    for (size_t i = 0; i < nout; i++) {
        int rc = wire_sibling(a, &out[i], &ws[i]);
        if (rc != 0)
            return rc;
    }
    wf->siblings = ws;
    wf->nsiblings = nout;
    o->conflicts[o->nconflicts++] = j;
    return 0;
}

/* The blind index of a value: "ine" over the normalised INE, any other
 * index over the normalised name.  0 if the value has none (not a string,
 * or not normalisable). */
static int index_value(struct keys *k, const char *index, const struct spro_value *v,
                       uint8_t out[SPRO_BLIND_INDEX_BYTES])
{
    char in[SPRO_SYNC_MAX_VALUE + 1], norm[SPRO_SYNC_MAX_VALUE + 1];
    int n = -1;
    if (v->kind == SPRO_VALUE_STR && to_cstr(in, sizeof in, &v->s))
        n = strcmp(index, "ine") == 0 ? spro_normalize_ine(in, norm, sizeof norm)
                                      : spro_normalize_name(in, norm, sizeof norm);
    if (n > 0)
        spro_blind_index(out, blind_key(k), index, norm, (size_t)n);
    spro_memzero(in, sizeof in);
    spro_memzero(norm, sizeof norm);
    return n > 0;
}

/* Keeps the blind index of a searchable field over its provisional value. */
static int index_field(struct op *o, size_t j, const struct spro_sibling *shown)
{
    struct spro_value v;
    uint8_t idx[SPRO_BLIND_INDEX_BYTES];
    const char *index = o->defs[j]->index;
    int rc = value_decode(shown->value, shown->value_len, &v);
    if (rc != 0)
        return rc;
    int has = index_value(&o->p->keys, index, &v, idx);
    return spro_store__blind_put(o->p->db, o->rec.id, index, has ? idx : NULL);
}

/* Grants scope to the organisation a scope field names. */
static int grant_scope(struct op *o, const struct spro_value *v)
{
    char org[SPRO_ID_MAX + 1];
    int added = 0;
    if (v->kind != SPRO_VALUE_STR || !to_cstr(org, sizeof org, &v->s))
        return 0;
    int rc = spro_store__scope_add(o->p->db, o->ben, org, &added);
    o->scope_added |= added;
    return rc;
}

/* Merges edit j of the op into its field and stores the result. */
static int apply_field(struct op *o, size_t j)
{
    struct push *p = o->p;
    const struct spro_wire_edit *e = &o->w->set[j];
    struct spro_version base[SPRO_MERGE_MAX_SIBLINGS];
    struct spro_sibling out[SPRO_MERGE_MAX_SIBLINGS];
    size_t nout;
    enum spro_merge_outcome outcome;
    int rc;
    /* A record this op creates has no sibling yet: nothing to read. */
    if ((rc = base_versions(o, e, base)) != 0 ||
        (o->is_new ? (field_clear(p->field), 0) : (rc = op_field_load(o, o->names[j], p->field))) !=
            0)
        return rc;
    if (o->is_new && !o->ps_loaded) { /* its fields start empty */
        spro_fset_clear(&p->ps);
        spro_fset_clear(&p->plain);
        o->ps_loaded = o->plain_loaded = 1;
    }
    struct spro_sibling edit = {o->ver, e->val.raw.p, e->val.raw.len, p->dev->user};
    rc = spro_merge_apply(p->field->s, p->field->n, &edit, base, e->nbase, out, &nout, &outcome);
    if (rc == SPRO_ETOOLONG || rc == SPRO_EEXISTS) {
        o->reject =
            rc == SPRO_ETOOLONG ? SPRO_REJECT_TOO_MANY_SIBLINGS : SPRO_REJECT_VERSION_REUSED;
        return SPRO_ERANGE; /* undoes the op's savepoint */
    }
    if (rc != 0)
        return rc;
    if (outcome != SPRO_MERGE_DUPLICATE) {
        o->changed = 1;
        o->dedup |= is_dedup_field(o->type, o->names[j]);
        o->indexed |= o->dedup || (o->defs[j]->flags & SPRO_FFLAG_SEARCHABLE);
        o->new_field |= p->field->n == 0;
        if ((rc = store_merge(o, j, &edit, out, nout)) != 0 ||
            ((o->defs[j]->flags & SPRO_FFLAG_SCOPE) && (rc = grant_scope(o, &e->val)) != 0))
            return rc;
    }
    if (nout >= 2 && (rc = conflict_field(o, j, out, nout)) != 0)
        return rc;
    if (o->defs[j]->flags & SPRO_FFLAG_SEARCHABLE)
        return index_field(o, j, &out[nout - 1]);
    return 0;
}

/* The provisional value of field name of the op's record, as a C string
 * in out (SPRO_SYNC_MAX_VALUE + 1 bytes); "" if it is not a string. */
static const struct spro_wire_edit *op_edit(const struct op *o, const char *name);

static int provisional_str(struct op *o, const char *name, char *out)
{
    out[0] = '\0';
    if (o->is_new) { /* each field's one sibling is the op's edit */
        const struct spro_wire_edit *e = op_edit(o, name);
        if (e != NULL && e->val.kind == SPRO_VALUE_STR &&
            !to_cstr(out, SPRO_SYNC_MAX_VALUE + 1, &e->val.s))
            out[0] = '\0';
        return 0;
    }
    struct field *f = o->p->field;
    struct spro_value v;
    int rc = op_field_load(o, name, f);
    if (rc != 0 || f->n == 0)
        return rc;
    const struct spro_sibling *s = &f->s[spro_merge_provisional(f->s, f->n)];
    if ((rc = value_decode(s->value, s->value_len, &v)) == 0 && v.kind == SPRO_VALUE_STR &&
        !to_cstr(out, SPRO_SYNC_MAX_VALUE + 1, &v.s))
        out[0] = '\0';
    return rc;
}

/* Keeps the duplicate-detection index of the record over the provisional
 * values of its dedup fields, when all three make a key. */
static int index_dedup(struct op *o)
{
    char(*v)[SPRO_SYNC_MAX_VALUE + 1] = malloc(3 * sizeof *v);
    char key[SPRO_DEDUP_KEY_MAX + 1];
    uint8_t idx[SPRO_BLIND_INDEX_BYTES];
    int rc = 0, n = -1;
    if (v == NULL)
        SPRO_BUG("out of memory");
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = provisional_str(o, o->type->dedup[i], v[i]);
    if (rc == 0)
        n = spro_dedup_key(v[0], v[1], v[2], key, sizeof key);
    if (n > 0)
        spro_blind_index(idx, blind_key(&o->p->keys), "dedup", key, (size_t)n);
    if (rc == 0)
        rc = spro_store__blind_put(o->p->db, o->rec.id, "dedup", n > 0 ? idx : NULL);
    spro_memzero(v, 3 * sizeof *v);
    spro_memzero(key, sizeof key);
    free(v);
    return rc;
}

/* ---- Push: referrals ----
 *
 * A referral record hands a beneficiary from one organisation to another
 * (docs/SYNC.md, "Referrals and transfers").  Its fields merge like any
 * other; on top, the engine checks who may write what (check_referral(),
 * before the op's savepoint) and changes scope when its status moves
 * (referral_apply(), inside it):
 *   proposed  (creation, by a device of from_org): to_org's devices receive
 *             the referral record alone (scope_record);
 *   accepted  (by a device of to_org): to_org gets the beneficiary in
 *             scope; a transfer also takes it from from_org, whose devices
 *             then receive a removal event per record of the beneficiary;
 *   refused   (by a device of to_org), done (from accepted, by a device of
 *             either): no scope change.
 */

/* The edit of field name in the op, or NULL. */
static const struct spro_wire_edit *op_edit(const struct op *o, const char *name)
{
    for (size_t j = 0; j < o->w->nset; j++)
        if (strcmp(o->names[j], name) == 0)
            return &o->w->set[j];
    return NULL;
}

/* Whether v is the string s. */
static int value_is(const struct spro_value *v, const char *s)
{
    size_t n = strlen(s);
    return v->kind == SPRO_VALUE_STR && v->s.len == n && memcmp(v->s.p, s, n) == 0;
}

/* The provisional value of field name of the op's record into out (cap
 * bytes): "" unless it is a string shorter than cap.  Leaves the field's
 * siblings loaded in o->p->field. */
static int provisional_id(struct op *o, const char *name, char *out, size_t cap)
{
    char *v = malloc(SPRO_SYNC_MAX_VALUE + 1);
    if (v == NULL)
        SPRO_BUG("out of memory");
    int rc = provisional_str(o, name, v);
    size_t n = strlen(v);
    out[0] = '\0';
    if (rc == 0 && n < cap)
        memcpy(out, v, n + 1);
    free(v);
    return rc;
}

/* *yes = whether the base of edit e lists every sibling of its field as
 * loaded in o->p->field: the writer decided on the current value. */
static int base_covers(struct op *o, const struct spro_wire_edit *e, int *yes)
{
    struct spro_version base[SPRO_MERGE_MAX_SIBLINGS];
    const struct field *f = o->p->field;
    int rc = base_versions(o, e, base);
    *yes = 0;
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < f->n; i++) {
        int listed = 0;
        for (size_t b = 0; b < e->nbase; b++)
            listed |= spro_merge_version_cmp(&f->s[i].v, &base[b]) == 0;
        if (!listed)
            return 0;
    }
    *yes = 1;
    return 0;
}

/* A new referral: from_org must be the device's organisation, to_org
 * another organisation that exists, status proposed (kind is optional:
 * nil or absent is a referral); anything else is bad_value. */
static int referral_propose(struct op *o)
{
    struct push *p = o->p;
    const struct spro_wire_edit *from = op_edit(o, SPRO_REFERRAL_FROM),
                                *to = op_edit(o, SPRO_REFERRAL_TO),
                                *status = op_edit(o, SPRO_REFERRAL_STATUS),
                                *kind = op_edit(o, SPRO_REFERRAL_KIND);
    int exists = 0, rc;
    o->reject = SPRO_REJECT_BAD_VALUE;
    if (from == NULL || to == NULL || status == NULL || !value_is(&from->val, p->dev->org) ||
        !value_is(&status->val, "proposed") || to->val.kind != SPRO_VALUE_STR ||
        !to_cstr(o->ref_to, sizeof o->ref_to, &to->val.s) || strcmp(o->ref_to, p->dev->org) == 0)
        return 0;
    if ((rc = spro_store__org_exists(p->db, o->ref_to, &exists)) != 0 || !exists)
        return rc;
    snprintf(o->ref_from, sizeof o->ref_from, "%s", p->dev->org);
    o->ref_transfer = kind != NULL && value_is(&kind->val, "transfer");
    o->step = REF_PROPOSE;
    o->reject = NULL;
    return 0;
}

/* An edit of an existing referral.  from_org, to_org and kind are fixed at
 * creation (bad_value).  The status moves proposed -> accepted or refused,
 * by a device of to_org, then accepted -> done, by a device of from_org or
 * to_org; a status written by a device of any other organisation is
 * not_found (as for a record out of scope), a step out of that order, an
 * edit whose base misses the current status (decided on a status its
 * writer had not seen) and the acceptance of a beneficiary that from_org
 * no longer has are bad_transition.  A device whose organisation has the
 * referral alone in scope may write its status and nothing else
 * (not_found). */
static int referral_update(struct op *o)
{
    struct push *p = o->p;
    const struct spro_wire_edit *status = op_edit(o, SPRO_REFERRAL_STATUS);
    char cur[16], kind[16];
    int rc, ok = 0;
    o->reject = SPRO_REJECT_NOT_FOUND;
    if (o->record_only && (status == NULL || o->w->nset != 1))
        return 0;
    o->reject = SPRO_REJECT_BAD_VALUE;
    if (op_edit(o, SPRO_REFERRAL_FROM) != NULL || op_edit(o, SPRO_REFERRAL_TO) != NULL ||
        op_edit(o, SPRO_REFERRAL_KIND) != NULL)
        return 0;
    o->reject = NULL;
    if (status == NULL)
        return 0;
    /* The status last: its siblings stay loaded for base_covers(). */
    if ((rc = provisional_id(o, SPRO_REFERRAL_FROM, o->ref_from, sizeof o->ref_from)) != 0 ||
        (rc = provisional_id(o, SPRO_REFERRAL_TO, o->ref_to, sizeof o->ref_to)) != 0 ||
        (rc = provisional_id(o, SPRO_REFERRAL_KIND, kind, sizeof kind)) != 0 ||
        (rc = provisional_id(o, SPRO_REFERRAL_STATUS, cur, sizeof cur)) != 0)
        return rc;
    int is_to = strcmp(p->dev->org, o->ref_to) == 0,
        is_from = strcmp(p->dev->org, o->ref_from) == 0;
    const struct spro_value *v = &status->val;
    o->reject = SPRO_REJECT_NOT_FOUND;
    if (value_is(v, "accepted") || value_is(v, "refused")) {
        if (!is_to)
            return 0;
        o->step = value_is(v, "accepted") ? REF_ACCEPT : REF_REFUSE;
        ok = strcmp(cur, "proposed") == 0;
    } else {
        if (!is_to && !is_from)
            return 0;
        o->step = REF_DONE;
        ok = value_is(v, "done") && strcmp(cur, "accepted") == 0;
    }
    if (ok && o->step == REF_ACCEPT &&
        (rc = spro_store__scope_has(p->db, o->ben, o->ref_from, &ok)) != 0)
        return rc;
    if (ok && (rc = base_covers(o, status, &ok)) != 0)
        return rc;
    o->ref_transfer = strcmp(kind, "transfer") == 0;
    o->reject = ok ? NULL : SPRO_REJECT_BAD_TRANSITION;
    if (!ok)
        o->step = REF_NONE;
    return 0;
}

/* The rules of the op's record type beyond the schema table: those of
 * referrals; a device that has a record of another type alone in scope may
 * write nothing of it.  Sets o->reject. */
static int check_duplicate(struct op *o);
static int check_merge(struct op *o);

static int check_referral(struct op *o)
{
    if (strcmp(o->type->name, SPRO_RTYPE_DUPLICATE) == 0)
        return check_duplicate(o);
    if (strcmp(o->type->name, SPRO_RTYPE_BENEFICIARY) == 0 && !o->record_only)
        return check_merge(o);
    if (strcmp(o->type->name, SPRO_RTYPE_REFERRAL) != 0) {
        if (o->record_only)
            o->reject = SPRO_REJECT_NOT_FOUND;
        return 0;
    }
    return o->is_new ? referral_propose(o) : referral_update(o);
}

/* The scope changes of the referral step checked by check_referral(),
 * inside the op's savepoint. */
static int referral_apply(struct op *o)
{
    struct push *p = o->p;
    int added = 0, removed = 0, rc;
    switch (o->step) {
    case REF_PROPOSE:
        return spro_store__record_scope_add(p->db, o->type->name, o->rid, o->ref_to);
    case REF_ACCEPT:
        /* to_org's devices now receive the referral with the beneficiary. */
        if ((rc = spro_store__record_scope_remove(p->db, o->type->name, o->rid, o->ref_to)) != 0 ||
            (rc = spro_store__scope_add(p->db, o->ben, o->ref_to, &added)) != 0)
            return rc;
        o->scope_added |= added;
        if (o->ref_transfer &&
            (rc = spro_store__scope_remove(p->db, o->ben, o->ref_from, &removed)) == 0 && removed)
            rc = spro_store__removal_log(p->db, o->ben, o->ref_from, &p->seq);
        return rc;
    case REF_NONE:
    case REF_REFUSE:
    case REF_DONE:
        break;
    }
    return 0;
}

/* Creates the op's record (and, for a new beneficiary, its scope). */
static int create_record(struct op *o)
{
    struct push *p = o->p;
    int added, rc;
    memset(&o->rec, 0, sizeof o->rec);
    strcpy(o->rec.rtype, o->type->name);
    strcpy(o->rec.rid, o->rid);
    strcpy(o->rec.ben, o->ben);
    strcpy(o->rec.created_by_org, p->dev->org);
    o->rec.changed_seq = ++p->seq;
    if ((rc = spro_store__record_insert(p->db, &o->rec, (int64_t)p->now_ms)) != 0)
        return rc == SPRO_EEXISTS ? SPRO_EINTEGRITY : rc;
    return o->new_ben ? spro_store__scope_add(p->db, o->ben, p->dev->org, &added) : 0;
}

static int duplicates_detect(struct op *o);
static int merge_apply(struct op *o);

/* The op's writes, inside its savepoint (spro_store__savepoint callback). */
static int apply_op(struct spro_db *db, void *arg)
{
    struct op *o = arg;
    struct push *p = o->p;
    size_t nfields;
    int rc = o->is_new ? create_record(o) : 0;
    if (rc == 0 && o->clamped) {
        rc = spro_store__clamp_put(db, p->dev->id, o->w->hlc, o->ver.hlc);
        p->clamps = 1;
    }
    for (size_t j = 0; rc == 0 && j < o->w->nset; j++)
        rc = apply_field(o, j);
    /* The record's fields: the op's when it creates the record; counted
     * again only when an edit added one (the count was within bounds
     * before the op): those of rec_siblings and of the personal set. */
    if (rc == 0 && o->is_new)
        nfields = o->w->nset;
    else if (rc == 0 && o->new_field && (rc = op_pset(o)) == 0 && (rc = op_plain(o)) == 0)
        nfields = spro_fset_nfields(&p->ps) + spro_fset_nfields(&p->plain);
    else
        nfields = 0;
    if (rc == 0 && nfields > SPRO_SYNC_MAX_FIELDS) {
        o->reject = SPRO_REJECT_TOO_MANY_FIELDS;
        rc = SPRO_ERANGE;
    }
    if (rc == 0 && o->dedup && o->type->dedup[0] != NULL)
        rc = index_dedup(o);
    if (rc == 0 && (o->ps_dirty || o->plain_dirty))
        rc = op_fields_save(o, o->changed && !o->is_new ? ++p->seq : 0);
    else if (rc == 0 && o->changed && !o->is_new)
        rc = spro_store__record_touch(db, o->rec.id, ++p->seq);
    if (rc == 0 && o->step != REF_NONE)
        rc = referral_apply(o);
    if (rc == 0 && (o->merge_keep[0] != '\0' || o->unmerge))
        rc = merge_apply(o);
    else if (rc == 0 && o->indexed && strcmp(o->type->name, SPRO_RTYPE_BENEFICIARY) == 0)
        rc = duplicates_detect(o);
    /* A new organisation in scope must receive the beneficiary's records
     * whatever its devices' cursors: they all change. */
    if (rc == 0 && o->scope_added)
        rc = spro_store__ben_touch(db, o->ben, &p->seq);
    return rc;
}

/* ---- Push: quarantine ---- */

/* The op as canonical msgpack, without seq (the quarantine row's key):
 * {rtype, rid, ben, schema, hlc, set: {name: {val, base: [[hlc, origin]]}}}. */
static void encode_op(const struct spro_wire_op *w, struct spro_buf *b)
{
    spro_mpw_head(b, 0x80, 6);
    spro_mpw_key(b, "rtype"), spro_mpw_str(b, w->rtype.p, w->rtype.len);
    spro_mpw_key(b, "rid"), spro_mpw_str(b, w->rid.p, w->rid.len);
    spro_mpw_key(b, "ben"), spro_mpw_str(b, w->ben.p, w->ben.len);
    spro_mpw_key(b, "schema"), spro_mpw_uint(b, w->schema);
    spro_mpw_key(b, "hlc"), spro_mpw_uint(b, w->hlc);
    spro_mpw_key(b, "set"), spro_mpw_head(b, 0x80, w->nset);
    for (size_t j = 0; j < w->nset; j++) {
        const struct spro_wire_edit *e = &w->set[j];
        spro_mpw_str(b, e->name.p, e->name.len);
        spro_mpw_head(b, 0x80, 2);
        spro_mpw_key(b, "val");
        if (e->val.raw.p != NULL && e->val.raw.len > 0)
            spro_buf_append(b, e->val.raw.p, e->val.raw.len);
        else
            spro_buf_append(b, "\xc0", 1); /* nil */
        spro_mpw_key(b, "base"), spro_mpw_head(b, 0x90, e->nbase);
        for (size_t i = 0; i < e->nbase; i++) {
            spro_mpw_head(b, 0x90, 2);
            spro_mpw_uint(b, e->base[i].hlc);
            spro_mpw_str(b, e->base[i].origin.p, e->base[i].origin.len);
        }
    }
}

/* Quarantines the op: its encoding sealed under the quarantine subkey,
 * bound to (device, seq). */
static int quarantine(struct op *o)
{
    struct push *p = o->p;
    struct spro_buf pt = {0};
    uint8_t ad[sizeof QUARANTINE_AD + SPRO_ID_MAX + 1 + 8];
    size_t idlen = strlen(p->dev->id), adlen = sizeof QUARANTINE_AD + idlen + 1 + 8;
    memcpy(ad, QUARANTINE_AD, sizeof QUARANTINE_AD);
    memcpy(ad + sizeof QUARANTINE_AD, p->dev->id, idlen + 1);
    for (int i = 0; i < 8; i++)
        ad[adlen - 8 + i] = (uint8_t)(o->w->seq >> (56 - 8 * i));
    encode_op(o->w, &pt);
    uint8_t *sealed = malloc(pt.len + SPRO_SEAL_OVERHEAD);
    if (sealed == NULL)
        SPRO_BUG("out of memory");
    spro_crypto_seal(sealed, pt.data, pt.len, ad, adlen, quarantine_key(&p->keys));
    int rc = spro_store__quarantine_put(p->db, p->dev->id, o->w->seq, o->ben, o->reject,
                                        (int64_t)p->now_ms, sealed, pt.len + SPRO_SEAL_OVERHEAD);
    spro_memzero(pt.data, pt.cap);
    spro_buf_free(&pt);
    free(sealed);
    return rc;
}

/* ---- Push: duplicates and merge ----
 *
 * docs/SYNC.md, "Duplicates and merge".  When a beneficiary's `ine` or
 * `dedup` blind index is written and another beneficiary has the same
 * value, the server writes a `duplicate` record for the pair (once per
 * pair).  A supervisor's device merges OTHER into KEEP by writing OTHER's
 * state `merged` and merged_into KEEP: OTHER's other records move to KEEP
 * (their personal values sealed again under KEEP's data key), KEEP gets
 * OTHER's organisations, and later ops naming OTHER are re-pointed to KEEP
 * (repoint()).
 */

/* Whether the device's user may see duplicates and merge. */
static int is_supervisor(const struct spro_device *d)
{
    return strcmp(d->role, "supervisor") == 0 || strcmp(d->role, "admin") == 0;
}

/* A new random (version 4) lowercase UUID. */
static void uuid_new(char out[UUID_CHARS + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    size_t n = 0;
    spro_crypto_random(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        out[n++] = hex[b[i] >> 4];
        out[n++] = hex[b[i] & 15];
    }
    out[n] = '\0';
}

/* Before the scope checks: an op naming a merged beneficiary names its
 * keeper instead (following merges of the keeper, at most 8 of them).
 * A beneficiary op that writes state or merged_into is not re-pointed:
 * it is about the merged record itself (a supervisor undoing the merge). */
static int repoint(struct op *o)
{
    int is_ben = strcmp(o->type->name, SPRO_RTYPE_BENEFICIARY) == 0;
    char keep[SPRO_ID_MAX + 1];
    if (is_ben && (op_edit(o, SPRO_BEN_STATE) != NULL || op_edit(o, SPRO_BEN_MERGED_INTO) != NULL))
        return 0;
    for (int hops = 0; hops < 8; hops++) {
        int rc = spro_store__merged_get(o->p->db, o->ben, keep);
        if (rc == SPRO_ENOENT)
            break;
        if (rc != 0)
            return rc;
        if (strlen(keep) != UUID_CHARS)
            return SPRO_EINTEGRITY;
        strcpy(o->ben, keep);
        if (is_ben)
            strcpy(o->rid, keep);
        o->repointed = 1;
    }
    return 0;
}

/* A duplicate record: only devices of supervisors and administrators see
 * it (not_found for others), only the server creates one (bad_value), and
 * a device writes its status alone (bad_value). */
static int check_duplicate(struct op *o)
{
    o->reject = SPRO_REJECT_NOT_FOUND;
    if (!is_supervisor(o->p->dev))
        return 0;
    o->reject = SPRO_REJECT_BAD_VALUE;
    if (o->is_new || o->w->nset != 1 || op_edit(o, SPRO_DUPLICATE_STATUS) == NULL)
        return 0;
    o->reject = NULL;
    return 0;
}

/* A beneficiary op that writes state or merged_into.  Setting state
 * `merged` or a non-nil merged_into is a merge: only from a supervisor's
 * or administrator's device, with both fields in the op, merged_into the
 * id of another existing beneficiary in scope of the device's organisation
 * and not merged itself; anything else is bad_value.  A supervisor's op
 * setting another state on a merged beneficiary undoes the merge. */
static int check_merge(struct op *o)
{
    struct push *p = o->p;
    const struct spro_wire_edit *state = op_edit(o, SPRO_BEN_STATE),
                                *into = op_edit(o, SPRO_BEN_MERGED_INTO);
    char keep[SPRO_ID_MAX + 1];
    int merging = state != NULL && value_is(&state->val, "merged"), yes = 0, rc;
    if (state == NULL && into == NULL)
        return 0;
    o->reject = SPRO_REJECT_BAD_VALUE;
    if (!merging && (into == NULL || into->val.kind == SPRO_VALUE_NIL)) {
        /* No merge: a supervisor may undo one; others may not touch it. */
        if (o->is_new || (rc = spro_store__merged_get(p->db, o->rid, keep)) == SPRO_ENOENT) {
            o->reject = NULL;
            return 0;
        }
        if (rc != 0)
            return rc;
        o->unmerge = state != NULL && is_supervisor(p->dev);
        o->reject = o->unmerge ? NULL : SPRO_REJECT_BAD_VALUE;
        return 0;
    }
    if (!is_supervisor(p->dev) || !merging || o->is_new || into == NULL ||
        into->val.kind != SPRO_VALUE_STR || !is_uuid(&into->val.s))
        return 0;
    to_cstr(o->merge_keep, sizeof o->merge_keep, &into->val.s);
    struct spro_stored_record r;
    if (strcmp(o->merge_keep, o->rid) == 0 ||
        (rc = spro_store__record_get(p->db, SPRO_RTYPE_BENEFICIARY, o->merge_keep, &r)) ==
            SPRO_ENOENT ||
        (rc == 0 && (rc = spro_store__scope_has(p->db, o->merge_keep, p->dev->org, &yes)) == 0 &&
         !yes) ||
        (rc == 0 && (rc = spro_store__merged_get(p->db, o->merge_keep, keep)) == 0)) {
        o->merge_keep[0] = '\0';
        return 0;
    }
    if (rc != 0 && rc != SPRO_ENOENT)
        return rc;
    o->reject = NULL;
    return 0;
}

/* One personal sibling of a record being moved, opened. */
/* Seals the personal siblings of record r (of beneficiary from) again
 * under the data key of beneficiary to. */
static int reseal(struct push *p, const struct spro_stored_record *r, const char *from,
                  const char *to)
{
    struct spro_fset ps = {0};
    uint32_t schema;
    int has, rc = spro_store__record_sealed_get(p->db, r->id, &p->sealed_in, &has, &schema);
    if (rc == 0 && has)
        rc = fset_open(&ps, &p->keys, r->rtype, r->rid, from, p->sealed_in.data, p->sealed_in.len,
                       schema);
    if (rc == 0 && has)
        rc = fset_seal(&ps, &p->keys, r->rtype, r->rid, to, schema, &p->sealed_out);
    if (rc == 0 && has)
        rc = spro_store__record_fields_put(p->db, r->id, NULL, 0, 1,
                                           p->sealed_out.len ? p->sealed_out.data : NULL,
                                           p->sealed_out.len, schema, 0);
    spro_fset_free(&ps);
    return rc;
}

/* Inside the op's savepoint: records the merge of the op's beneficiary into
 * o->merge_keep (its other records move to the keeper, with new change
 * numbers, and the keeper gets its organisations), or its undoing. */
static int merge_apply(struct op *o)
{
    struct push *p = o->p;
    struct spro_stored_record *recs = NULL;
    size_t n = 0;
    int added = 0, rc;
    if (o->unmerge)
        return spro_store__merged_set(p->db, o->rid, NULL);
    if ((rc = spro_store__merged_set(p->db, o->rid, o->merge_keep)) != 0 ||
        (rc = spro_store__ben_records(p->db, o->rid, &recs, &n)) != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = reseal(p, &recs[i], o->rid, o->merge_keep)) == 0)
            rc =
                spro_store__record_move(p->db, recs[i].rtype, recs[i].rid, o->merge_keep, ++p->seq);
    free(recs);
    if (rc == 0 && (rc = spro_store__scope_copy(p->db, o->rid, o->merge_keep, &added)) == 0 &&
        added)
        rc = spro_store__ben_touch(p->db, o->merge_keep, &p->seq);
    return rc;
}

/* The duplicate record of the op's beneficiary and other (the older one,
 * which is its ben), unless the pair has one. */
static int duplicate_create(struct op *o, const char *other, const char *rule)
{
    struct push *p = o->p;
    struct spro_stored_record r = {0};
    int added, rc;
    uuid_new(r.rid);
    if ((rc = spro_store__duplicate_add(p->db, o->rid, other, r.rid, &added)) != 0 || !added)
        return rc;
    strcpy(r.rtype, SPRO_RTYPE_DUPLICATE);
    strcpy(r.ben, other);
    strcpy(r.created_by_org, p->dev->org);
    r.changed_seq = ++p->seq;
    if ((rc = spro_store__record_insert(p->db, &r, (int64_t)p->now_ms)) != 0)
        return rc == SPRO_EEXISTS ? SPRO_EINTEGRITY : rc;
    /* Its fields, str values the server writes at version (hlc,
     * SPRO_SERVER_ORIGIN), in name order. */
    uint64_t hlc = spro_hlc_tick(&p->clock, p->now_ms);
    const char *names[] = {"a", "b", "rule", SPRO_DUPLICATE_STATUS},
               *vals[] = {other, o->rid, rule, "open"};
    struct spro_fset f = {0};
    struct spro_buf b = {0}, enc = {0};
    for (size_t i = 0; i < 4; i++) {
        b.len = 0;
        spro_mpw_str(&b, vals[i], strlen(vals[i]));
        spro_fset_add(&f, names[i], hlc, SPRO_SERVER_ORIGIN, SPRO_SERVER_AUTHOR, o->w->schema,
                      b.data, b.len, 1);
    }
    spro_fset_sort(&f);
    spro_fset_encode(&f, &enc);
    rc = spro_store__record_fields_put(p->db, r.id, enc.data, enc.len, 0, NULL, 0, 0, 0);
    spro_fset_free(&f);
    spro_buf_free(&b);
    spro_buf_free(&enc);
    return rc != 0 ? rc
                   : spro_store__duplicate_scope(p->db, SPRO_RTYPE_DUPLICATE, r.rid, other, o->rid);
}

/* After a beneficiary op changed something: a duplicate record for each
 * other beneficiary with the same INE or the same dedup key (at most 8 of
 * each), unless the beneficiary is merged. */
static int duplicates_detect(struct op *o)
{
    static const struct {
        const char *index, *rule;
    } rules[] = {{"ine", "ine"}, {"dedup", "name_birth"}};
    char keep[SPRO_ID_MAX + 1];
    int rc = spro_store__merged_get(o->p->db, o->rid, keep);
    if (rc != SPRO_ENOENT)
        return rc;
    char(*m)[SPRO_ID_MAX + 1] = malloc(8 * sizeof *m);
    if (m == NULL)
        SPRO_BUG("out of memory");
    rc = 0;
    for (size_t r = 0; rc == 0 && r < 2; r++) {
        size_t n = 0;
        rc = spro_store__blind_matches(o->p->db, SPRO_RTYPE_BENEFICIARY, o->rid, rules[r].index, m,
                                       8, &n);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = strlen(m[i]) == UUID_CHARS ? duplicate_create(o, m[i], rules[r].rule)
                                            : SPRO_EINTEGRITY;
    }
    free(m);
    return rc;
}

/* ---- Push: answers ---- */

/* Refuses the op: quarantine and answer, kept for retries. */
static int reject(struct op *o)
{
    struct spro_stored_op st = {.status = SPRO_RESULT_REJECT};
    o->res->status = SPRO_RESULT_REJECT;
    o->res->code = (struct spro_bytes){(const uint8_t *)o->reject, strlen(o->reject)};
    snprintf(st.code, sizeof st.code, "%s", o->reject);
    int rc = quarantine(o);
    return rc != 0
               ? rc
               : spro_store__op_put(o->p->db, o->p->dev->id, o->w->seq, &st, (int64_t)o->p->now_ms);
}

/* Keeps the siblings of field name (the op's field number fidx in
 * conflict) with the op's answer: a personal field's each sealed alone
 * under the data key as a field of the record (docs/CRYPTO.md: context
 * rtype, rid, name and the sibling's schema), as replay() opens them. */
static int keep_siblings(struct op *o, size_t fidx, const char *name, int personal)
{
    struct push *p = o->p;
    const struct spro_fset *set = personal ? &p->ps : &p->plain;
    uint8_t sealed[SEALED_MAX], key_id[SPRO_FIELD_KEY_ID_BYTES];
    const uint8_t *dk = NULL;
    int rc = personal ? data_key(&p->keys, o->ben, 1, &dk) : 0;
    uuid_bytes(o->ben, key_id);
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const struct spro_fset_entry *e = &set->e[i];
        if (strcmp(e->name, name) != 0)
            continue;
        struct spro_stored_sibling s = {.name = e->name,
                                        .hlc = e->hlc,
                                        .origin = e->origin,
                                        .author = e->author,
                                        .schema = e->schema,
                                        .sealed = personal,
                                        .val = e->val,
                                        .val_len = e->len};
        struct spro_field_context ctx = {o->type->name, o->rid, e->name, e->schema};
        if (personal && (rc = spro_field_seal(sealed, sizeof sealed, &s.val_len, e->val, e->len,
                                              &ctx, key_id, dk)) == 0)
            s.val = sealed;
        if (rc == 0)
            rc = spro_store__op_sibling_put(p->db, p->dev->id, o->w->seq, fidx, &s);
    }
    return rc;
}

/* Answers an applied op (ack or conflict) and keeps the answer: for a
 * conflict, the fields' siblings are copied as stored (sealed or not). */
static int answer(struct op *o)
{
    struct push *p = o->p;
    struct spro_stored_op st = {.status = o->nconflicts ? SPRO_RESULT_CONFLICT : SPRO_RESULT_ACK,
                                .hlc = o->ver.hlc};
    snprintf(st.origin, sizeof st.origin, "%s", o->ver.origin);
    if (o->nconflicts) {
        strcpy(st.rtype, o->type->name);
        strcpy(st.rid, o->rid);
        strcpy(st.ben, o->ben);
    }
    o->res->status = st.status;
    o->res->ver = (struct spro_wire_version){o->ver.hlc, p->origin};
    o->res->fields = o->fields;
    o->res->nfields = o->nconflicts;
    if (st.status == SPRO_RESULT_ACK) { /* kept with the push's other acks */
        uint8_t pair[16];
        spro_store_be64(pair, o->w->seq);
        spro_store_be64(pair + 8, o->ver.hlc);
        spro_buf_append(&p->acks, pair, sizeof pair);
        return 0;
    }
    int rc = spro_store__op_put(p->db, p->dev->id, o->w->seq, &st, (int64_t)p->now_ms);
    for (size_t i = 0; rc == 0 && i < o->nconflicts; i++) {
        size_t j = o->conflicts[i];
        rc = keep_siblings(o, i, o->names[j], (o->defs[j]->flags & SPRO_FFLAG_PERSONAL) != 0);
    }
    return rc;
}

/* Rebuilding a kept conflict answer: siblings counted, then filled. */
struct replay {
    struct push *p;
    const struct spro_stored_op *st;
    struct keys *keys;
    size_t count[SPRO_SYNC_MAX_FIELDS];
    struct spro_wire_field *fields;
    struct spro_wire_sibling *sibs[SPRO_SYNC_MAX_FIELDS]; /* fields[i].siblings */
    size_t nfields;
    int fill;
};

static int replay_sibling(const struct spro_stored_sibling *s, void *arg)
{
    struct replay *r = arg;
    if (!r->fill) {
        if (++r->count[s->fidx] > SPRO_MERGE_MAX_SIBLINGS)
            return SPRO_EINTEGRITY;
        r->nfields = s->fidx + 1 > r->nfields ? s->fidx + 1 : r->nfields;
        return 0;
    }
    if (s->fidx >= r->nfields || r->fields[s->fidx].nsiblings == r->count[s->fidx])
        return SPRO_EINTEGRITY;
    struct spro_wire_field *f = &r->fields[s->fidx];
    struct opener op = {r->keys, r->st->rtype, r->st->rid, r->st->ben, 0};
    struct spro_sibling x = {.v.hlc = s->hlc, .author = s->author};
    uint8_t val[VALUE_MAX];
    if (strlen(s->origin) > SPRO_ORIGIN_MAX)
        return SPRO_EINTEGRITY;
    strcpy(x.v.origin, s->origin);
    int rc = open_value(&op, s, val, &x.value_len);
    x.value = val;
    if (rc == 0 && f->name.p == NULL && (f->name = arena_str(r->p->arena, s->name)).p == NULL)
        rc = SPRO_ENOMEM;
    if (rc == 0)
        rc = wire_sibling(r->p->arena, &x, &r->sibs[s->fidx][f->nsiblings++]);
    spro_memzero(val, sizeof val);
    return rc;
}

/* The conflict fields of a kept answer, into the arena. */
static int replay_fields(struct push *p, uint64_t seq, const struct spro_stored_op *st,
                         struct spro_wire_result *res)
{
    struct replay r = {.p = p, .st = st, .keys = &p->keys};
    int rc = spro_store__op_siblings_each(p->db, p->dev->id, seq, replay_sibling, &r);
    if (rc != 0 || r.nfields == 0)
        return rc != 0 ? rc : SPRO_EINTEGRITY;
    r.fields = spro_arena_alloc(p->arena, r.nfields * sizeof *r.fields + 1, 16);
    if (r.fields == NULL)
        return SPRO_ENOMEM;
    for (size_t i = 0; i < r.nfields; i++) {
        r.fields[i] = (struct spro_wire_field){0};
        if (r.count[i] == 0)
            return SPRO_EINTEGRITY;
        r.sibs[i] = spro_arena_alloc(p->arena, r.count[i] * sizeof *r.sibs[i], 16);
        if (r.sibs[i] == NULL)
            return SPRO_ENOMEM;
        r.fields[i].siblings = r.sibs[i];
    }
    r.fill = 1;
    if ((rc = spro_store__op_siblings_each(p->db, p->dev->id, seq, replay_sibling, &r)) != 0)
        return rc;
    res->fields = r.fields;
    res->nfields = r.nfields;
    return 0;
}

/* The kept answer to an op already answered: 0 and *res filled, or
 * SPRO_ENOENT if the op is new. */
static int replay(struct push *p, const struct spro_wire_op *w, struct spro_wire_result *res)
{
    struct spro_stored_op st;
    uint64_t hlc = 0;
    int rc = spro_store__op_get(p->db, p->dev->id, w->seq, &st);
    if (rc == SPRO_ENOENT) {
        /* An ack: kept with its push, or given earlier in this one. */
        for (size_t i = 0; i + 16 <= p->acks.len && hlc == 0; i += 16)
            if (spro_load_be64(p->acks.data + i) == w->seq)
                hlc = spro_load_be64(p->acks.data + i + 8);
        if (hlc == 0 && (rc = spro_store__op_ack_get(p->db, p->dev->id, w->seq, &hlc)) != 0)
            return rc;
        res->status = SPRO_RESULT_ACK;
        res->ver = (struct spro_wire_version){hlc, p->origin};
        return 0;
    }
    if (rc != 0)
        return rc;
    res->status = st.status;
    if (st.status == SPRO_RESULT_REJECT) {
        res->code = arena_str(p->arena, st.code);
        return res->code.p == NULL ? SPRO_ENOMEM : 0;
    }
    res->ver = (struct spro_wire_version){st.hlc, arena_str(p->arena, st.origin)};
    if (res->ver.origin.p == NULL)
        return SPRO_ENOMEM;
    return st.status == SPRO_RESULT_CONFLICT ? replay_fields(p, w->seq, &st, res) : 0;
}

/* ---- Push: one op, the whole push ---- */

/* The op's version: its own hlc, or the server clock's value when the hlc
 * runs beyond the drift (then unique and within the drift). */
static void op_version(struct op *o)
{
    struct push *p = o->p;
    bool clamped;
    uint64_t h = spro_hlc_receive(&p->clock, o->w->hlc, p->now_ms, p->drift_ms, &clamped);
    o->clamped = clamped;
    o->ver.hlc = clamped ? h : o->w->hlc;
    snprintf(o->ver.origin, sizeof o->ver.origin, "%s", p->dev->id);
}

/* The audit entry of an answered op, in the push's transaction: actor the
 * device, object the record ("rtype:rid", ids only; "?" for what the op
 * named that is not a known type or a UUID), detail the answer and the
 * op's sequence number.  Ops answered again from `ops` are not recorded a
 * second time (they change nothing). */
static int audit_op(struct op *o)
{
    struct push *p = o->p;
    const struct spro_wire_op *w = o->w;
    char actor[8 + SPRO_ID_MAX], object[SPRO_ID_MAX + UUID_CHARS + 2], detail[SPRO_ID_MAX + 40];
    char rid[UUID_CHARS + 1] = "?";
    if (is_uuid(&w->rid))
        to_cstr(rid, sizeof rid, &w->rid);
    snprintf(actor, sizeof actor, "device:%s", p->dev->id);
    snprintf(object, sizeof object, "%s:%s", o->type ? o->type->name : "?", rid);
    const char *status = o->res->status == SPRO_RESULT_ACK        ? "ack"
                         : o->res->status == SPRO_RESULT_CONFLICT ? "conflict"
                                                                  : "reject:";
    snprintf(detail, sizeof detail, "%s%s op=%llu", status,
             o->res->status == SPRO_RESULT_REJECT ? o->reject : "", (unsigned long long)w->seq);
    struct spro_audit_note n = {
        spro_datadir__audit_key(p->keys.dd), (int64_t)p->now_ms, "push", actor, object, detail};
    return spro_store__audit_append_at(p->db, p->audit, &n);
}

static int push_op(struct push *p, size_t i)
{
    struct op *o = calloc(1, sizeof *o);
    if (o == NULL)
        SPRO_BUG("out of memory");
    o->p = p;
    o->w = &p->msg->ops[i];
    o->res = &p->results[i];
    o->res->seq = o->w->seq;
    int rc = p->fresh ? SPRO_ENOENT : replay(p, o->w, o->res);
    if (rc != SPRO_ENOENT)
        goto out;
    op_version(o);
    if ((rc = check_shape(o)) != 0 || (!o->reject && (rc = check_scope(o)) != 0) ||
        (!o->reject && (rc = check_referral(o)) != 0))
        goto out;
    if (!o->reject) {
        o->fields = spro_arena_alloc(p->arena, o->w->nset * sizeof *o->fields, 16);
        if (o->fields == NULL) {
            rc = SPRO_ENOMEM;
            goto out;
        }
        int64_t seq = p->seq;
        rc = spro_store__savepoint(p->db, apply_op, o);
        if (rc != 0)
            p->seq = seq; /* the change numbers it took were undone */
        if (rc == SPRO_ERANGE && o->reject)
            rc = 0;
        else if (rc == 0)
            rc = answer(o);
    }
    if (rc == 0 && o->reject)
        rc = reject(o);
    if (rc == 0)
        rc = audit_op(o);
out:
    spro_memzero(o, sizeof *o);
    free(o);
    return rc;
}

/* What a group's transaction will find of the beneficiaries t[0..n) its
 * ops name: found[i] is PREKEY_FOUND when keys.db has a key for t[i] (then
 * in t[i].wrapped), PREKEY_ERASED when it has none because t[i] was
 * erased, PREKEY_NONE otherwise. */
enum { PREKEY_NONE, PREKEY_FOUND, PREKEY_ERASED };

struct prekey_read {
    struct prekey *t;
    size_t n;
    int *found;
};

/* keys.db, one read transaction: the keys that exist. */
static int prekey_read_tx(struct spro_db *keys, void *arg)
{
    struct prekey_read *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        int rc = spro_store__data_key_get_tx(keys, r->t[i].ben, r->t[i].wrapped);
        if (rc != 0 && rc != SPRO_ENOENT)
            return rc;
        r->found[i] = rc == 0 ? PREKEY_FOUND : PREKEY_NONE;
    }
    return 0;
}

/* data.db, one read transaction: which of those without one were erased. */
static int prekey_erased_tx(struct spro_db *db, void *arg)
{
    struct prekey_read *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        int erased = 0, rc;
        if (r->found[i] == PREKEY_FOUND)
            continue;
        if ((rc = spro_store__erased_has(db, r->t[i].ben, &erased)) != 0)
            return rc;
        r->found[i] = erased ? PREKEY_ERASED : PREKEY_NONE;
    }
    return 0;
}

/* Before a group's transaction: one data key for every beneficiary its
 * pushes create and that has none yet, all committed to keys.db in one
 * transaction (one fsync for the group, not one per beneficiary).  A push
 * whose ops are then refused leaves unused keys, never data without its
 * key.  Only beneficiary records create beneficiaries (rid == ben).
 * *pre (malloc'd, sorted by ben, *npre entries; the caller frees it): the
 * wrapped keys of the beneficiaries the ops name, found or made, so that
 * the transaction does not read them from keys.db a second time. */
static int keys_for_new_beneficiaries(struct keys *k, const struct spro_group_item *items,
                                      struct prekey **pre, size_t *npre)
{
    size_t cap = 1;
    for (const struct spro_group_item *it = items; it != NULL; it = it->next)
        cap += ((const struct push *)it->arg)->msg->nops;
    struct prekey *t = calloc(cap, sizeof *t);
    if (t == NULL)
        SPRO_BUG("out of memory");
    size_t n = 0;
    for (const struct spro_group_item *it = items; it != NULL; it = it->next) {
        const struct spro_msg_push *push = ((const struct push *)it->arg)->msg;
        for (size_t i = 0; i < push->nops; i++) {
            const struct spro_wire_op *op = &push->ops[i];
            if (!(op->rtype.len == 11 && memcmp(op->rtype.p, "beneficiary", 11) == 0) ||
                !is_uuid(&op->ben) || op->rid.len != op->ben.len ||
                memcmp(op->rid.p, op->ben.p, op->ben.len) != 0)
                continue;
            memcpy(t[n].ben, op->ben.p, UUID_CHARS);
            t[n++].ben[UUID_CHARS] = '\0';
        }
    }
    qsort(t, n, sizeof *t, prekey_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (kept == 0 || strcmp(t[kept - 1].ben, t[i].ben) != 0)
            t[kept++] = t[i];
    struct prekey_read r = {t, kept, calloc(kept + 1, sizeof *r.found)};
    if (r.found == NULL)
        SPRO_BUG("out of memory");
    int rc = spro_store__transaction(spro_datadir__keys(k->dd), SPRO_TX_READ, prekey_read_tx, &r);
    const char **bens = calloc(kept + 1, sizeof *bens);
    size_t *made = calloc(kept + 1, sizeof *made);
    uint8_t(*wrapped)[SPRO_WRAPPED_KEY_BYTES] = calloc(kept + 1, sizeof *wrapped);
    if (bens == NULL || made == NULL || wrapped == NULL)
        SPRO_BUG("out of memory");
    /* An erased beneficiary never gets a key again (its ops are answered
     * not_found). */
    if (rc == 0)
        rc = spro_store__transaction(spro_datadir__data(k->dd), SPRO_TX_READ, prekey_erased_tx, &r);
    uint8_t *dks = spro_crypto_state_alloc((kept + 1) * SPRO_KEY_BYTES);
    size_t m = 0, have = 0;
    for (size_t i = 0; rc == 0 && i < kept; i++) {
        if (r.found[i] == PREKEY_FOUND) {
            t[have++] = t[i];
            continue;
        }
        if (r.found[i] == PREKEY_ERASED)
            continue;
        spro_field_key_new(dks + m * SPRO_KEY_BYTES);
        t[have] = t[i];
        made[m] = have;
        bens[m++] = t[have++].ben;
    }
    kept = have;
    free(r.found);
    if (rc == 0 && m > 0)
        rc = data_keys_store(k, bens, dks, m, wrapped);
    for (size_t i = 0; rc == 0 && i < m; i++)
        memcpy(t[made[i]].wrapped, wrapped[i], SPRO_WRAPPED_KEY_BYTES);
    spro_crypto_state_free(dks, (r.n + 1) * SPRO_KEY_BYTES);
    free(bens);
    free(made);
    free(wrapped);
    if (rc != 0) {
        free(t);
        return rc;
    }
    *pre = t;
    *npre = kept;
    return 0;
}

/* One push of a group's transaction.  Then the answers this device no
 * longer needs are forgotten: those of ops below the push's lowest seq
 * (the device sends its outbox in order, so it stored their answers)
 * given more than ANSWERS_KEPT_MS ago (longer than any session lives, so
 * no copy of an older request can still arrive to be answered again). */
static int pair_cmp(const void *a, const void *b)
{
    uint64_t x = spro_load_be64(a), y = spro_load_be64(b);
    return x < y ? -1 : x > y;
}

static int push_one(struct spro_db *db, struct push *p)
{
    uint64_t answered = 0;
    int rc = spro_store__clamp_any(db, p->dev->id, &p->clamps);
    if (rc == 0)
        rc = spro_store__answered_max(db, p->dev->id, &answered);
    p->fresh = 1;
    for (size_t i = 0; i < p->msg->nops; i++)
        if (p->msg->ops[i].seq <= (i == 0 ? answered : p->msg->ops[i - 1].seq))
            p->fresh = 0;
    uint64_t lowest = UINT64_MAX;
    for (size_t i = 0; rc == 0 && i < p->msg->nops; i++) {
        rc = push_op(p, i);
        if (p->msg->ops[i].seq < lowest)
            lowest = p->msg->ops[i].seq;
    }
    if (rc == 0 && p->acks.len > 0) {
        if (!p->fresh)
            qsort(p->acks.data, p->acks.len / 16, 16, pair_cmp);
        rc = spro_store__op_acks_put(db, p->dev->id, p->acks.data, p->acks.len / 16,
                                     (int64_t)p->now_ms);
    }
    if (rc == 0 && p->msg->nops > 0 && p->now_ms > ANSWERS_KEPT_MS)
        rc = spro_store__ops_prune(db, p->dev->id, lowest, (int64_t)(p->now_ms - ANSWERS_KEPT_MS),
                                   NULL);
    return rc;
}

/* The transaction of a group of pushes (group.h): the server clock and the
 * change counter are read once, passed from push to push, written once;
 * the audit chain's last entry is read once and each op's entry chained
 * after the one before.
 * A push that fails ends the transaction (its rc in its item). */
static int group_tx(struct spro_db *db, void *arg)
{
    struct spro_group_item *items = arg;
    struct spro_hlc clock;
    struct spro_audit_head audit;
    int64_t seq;
    int rc = spro_store__sync_state_get(db, &clock.last, &seq);
    if (rc == 0)
        rc = spro_store__audit_head(db, &audit);
    for (struct spro_group_item *it = items; rc == 0 && it != NULL; it = it->next) {
        struct push *p = it->arg;
        p->clock = clock;
        p->seq = seq;
        p->audit = &audit;
        if ((rc = it->rc = push_one(db, p)) == 0)
            clock = p->clock, seq = p->seq;
    }
    return rc != 0 ? rc : spro_store__sync_state_put(db, clock.last, seq);
}

/* Forgets what a rolled-back attempt left in p's answers and arena. */
static void push_reset(struct push *p)
{
    p->acks.len = 0;
    memset(p->results, 0, p->msg->nops * sizeof *p->results);
    spro_memzero(p->arena->base + p->arena_mark, p->arena->len - p->arena_mark);
    p->arena->len = p->arena_mark;
}

/* Runs a group of pushes (spro_group__submit): the data keys of all the
 * beneficiaries they create in one keys.db transaction, then all the
 * pushes in one data.db transaction, one commit and fsync for the group.
 * Pushes are not isolated by savepoints (a savepoint around each push
 * halves the throughput of large pushes: SQLite then journals every op's
 * savepoint inside it); instead, when one push fails (SPRO_ENOMEM,
 * SPRO_EINTEGRITY) the group's transaction is rolled back and every push
 * is run again alone, so that only the failing one fails.  A storage
 * error fails the whole group. */
static void push_group(struct spro_group_item *items, void *ctx)
{
    struct spro_datadir *dd = ctx;
    struct spro_db *db = spro_datadir__data(dd);
    struct push *first = items->arg;
    struct prekey *pre = NULL;
    size_t npre = 0;
    int rc = keys_for_new_beneficiaries(&first->keys, items, &pre, &npre);
    for (struct spro_group_item *it = items; it != NULL; it = it->next) {
        struct push *p = it->arg;
        p->keys.pre = pre;
        p->keys.npre = npre;
    }
    if (rc == 0)
        rc = spro_store__transaction(db, SPRO_TX_WRITE, group_tx, items);
    if (rc != 0 && rc != SPRO_ESTORE && items->next != NULL) {
        for (struct spro_group_item *it = items; it != NULL; it = it->next) {
            struct spro_group_item *next = it->next;
            it->next = NULL;
            push_reset(it->arg);
            it->rc = spro_store__transaction(db, SPRO_TX_WRITE, group_tx, it);
            it->next = next;
        }
    } else {
        for (struct spro_group_item *it = items; it != NULL; it = it->next)
            it->rc = rc; /* not committed: nothing of the group stands */
    }
    for (struct spro_group_item *it = items; it != NULL; it = it->next)
        ((struct push *)it->arg)->keys.pre = NULL;
    free(pre);
}

int spro_sync_push(struct spro_datadir *dd, const struct spro_device *dev,
                   const struct spro_msg_push *push, int64_t now_ms, int64_t max_drift_ms,
                   struct spro_arena *arena, struct spro_msg_push_reply *out)
{
    if (dd == NULL || dev == NULL || push == NULL || arena == NULL || out == NULL ||
        (push->ops == NULL && push->nops > 0))
        SPRO_BUG("spro_sync_push: NULL argument");
    memset(out, 0, sizeof *out);
    size_t mark = arena->len;
    struct push p = {
        .db = spro_datadir__data(dd),
        .dev = dev,
        .msg = push,
        .now_ms = now_ms > 0 ? (uint64_t)now_ms : 0,
        .drift_ms = max_drift_ms > 0 ? (uint64_t)max_drift_ms : 0,
        .arena = arena,
    };
    p.results = spro_arena_alloc(arena, push->nops * sizeof *p.results + 1, 16);
    p.origin = arena_str(arena, dev->id);
    if (p.results == NULL || p.origin.p == NULL) {
        arena->len = mark;
        return SPRO_ENOMEM;
    }
    memset(p.results, 0, push->nops * sizeof *p.results);
    p.arena_mark = arena->len;
    keys_init(&p.keys, dd);
    p.field = field_new();
    struct spro_group_item it = {.arg = &p};
    int rc = spro_group__submit(spro_datadir__push_group(dd), &it, push_group, dd);
    keys_free(&p.keys);
    field_free(p.field);
    spro_fset_free(&p.ps);
    spro_fset_free(&p.plain);
    spro_buf_free(&p.sealed_in); /* sealed: nothing to wipe */
    spro_buf_free(&p.sealed_out);
    spro_buf_free(&p.plain_in); /* not personal */
    spro_buf_free(&p.plain_out);
    spro_buf_free(&p.acks);
    if (rc != 0) {
        spro_memzero(arena->base + mark, arena->len - mark);
        arena->len = mark;
        return rc;
    }
    out->results = p.results;
    out->nresults = push->nops;
    return 0;
}

void spro_sync_push_stats(struct spro_datadir *dd, uint64_t *pushes, uint64_t *commits)
{
    struct spro_group *g = spro_datadir__push_group(dd);
    pthread_mutex_lock(&g->mu);
    *pushes = g->items;
    *commits = g->batches;
    pthread_mutex_unlock(&g->mu);
}

/* ---- Pull ---- */

/* Bytes of the msgpack header of a str of n bytes, of an array or map of n
 * entries, of a uint. */
static size_t str_size(size_t n)
{
    return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
}

static size_t head_size(size_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

#define UINT_SIZE 9

/* One sibling read for the record being built (values opened). */
struct row {
    char name[SPRO_ID_MAX + 1];
    uint64_t hlc;
    char origin[SPRO_ORIGIN_MAX + 1];
    char author[SPRO_ID_MAX + 1];
    size_t off, len; /* the value in pull.vals */
};

struct pull {
    struct spro_datadir *dd;
    struct spro_db *db; /* the connection of the pull's read transaction */
    const struct spro_device *dev;
    struct spro_arena *arena;
    struct keys keys;
    size_t max_bytes, used, limit;
    struct spro_wire_record *recs;
    size_t n, cap;
    int64_t last;
    bool more;
    bool reset; /* the cursor is below the purge point: nothing else is read */
    /* The record being built. */
    const struct spro_stored_record *rec;
    const struct spro_record_def *type;
    struct row *rows;
    size_t nrows, rows_cap;
    struct spro_buf vals;   /* plaintext values of rows: wiped */
    struct spro_fset ps;    /* the record's personal siblings */
    struct spro_fset plain; /* its other siblings */
};

/* Whether the device of q receives field name of the record: not when it
 * is local to another organisation.  SPRO_EINTEGRITY for a bad name. */
static int row_wanted(const struct pull *q, const char *name, int *yes)
{
    const struct spro_field_def *d =
        spro_sync_record_field(q->type, (const uint8_t *)name, strlen(name));
    if (d == NULL)
        return SPRO_EINTEGRITY;
    *yes = !((d->flags & SPRO_FFLAG_LOCAL) && strcmp(q->rec->created_by_org, q->dev->org) != 0);
    return 0;
}

static struct row *row_new(struct pull *q)
{
    if (q->nrows == q->rows_cap &&
        (q->rows = realloc(q->rows, (q->rows_cap = q->rows_cap ? 2 * q->rows_cap : 64) *
                                        sizeof *q->rows)) == NULL)
        SPRO_BUG("out of memory");
    return &q->rows[q->nrows];
}

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    if (x->hlc != y->hlc)
        return x->hlc < y->hlc ? -1 : 1;
    return strcmp(x->origin, y->origin);
}

/* The siblings of set ps as rows, but those of fields local to another
 * organisation. */
static int set_rows(struct pull *q, const struct spro_fset *ps)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ps->n; i++) {
        const struct spro_fset_entry *e = &ps->e[i];
        int yes;
        if ((rc = row_wanted(q, e->name, &yes)) != 0 || !yes)
            continue;
        struct row *w = row_new(q);
        strcpy(w->name, e->name);
        strcpy(w->origin, e->origin);
        strcpy(w->author, e->author);
        w->hlc = e->hlc;
        w->off = q->vals.len;
        w->len = e->len;
        spro_buf_append(&q->vals, e->val, e->len);
        q->nrows++;
    }
    return rc;
}

/* spro_store__siblings_each() callback: one sibling of the record, unless
 * its field is local to another organisation. */
static int read_row(const struct spro_stored_sibling *s, void *arg)
{
    struct pull *q = arg;
    int yes;
    if (strlen(s->origin) > SPRO_ORIGIN_MAX || strlen(s->author) > SPRO_ID_MAX ||
        row_wanted(q, s->name, &yes) != 0)
        return SPRO_EINTEGRITY;
    if (!yes)
        return 0;
    struct row *r = row_new(q);
    struct opener op = {&q->keys, q->rec->rtype, q->rec->rid, q->rec->ben, 0};
    uint8_t val[VALUE_MAX];
    int rc = open_value(&op, s, val, &r->len);
    if (rc == 0) {
        strcpy(r->name, s->name);
        strcpy(r->origin, s->origin);
        strcpy(r->author, s->author);
        r->hlc = s->hlc;
        r->off = q->vals.len;
        spro_buf_append(&q->vals, val, r->len);
        q->nrows++;
    }
    spro_memzero(val, sizeof val);
    return rc;
}

/* The record's siblings as rows, in order of name, hlc, origin: its plain
 * fields (or its rows of rec_siblings, before the conversion of
 * migration 13), then its sealed set, opened. */
static int read_fields(struct pull *q)
{
    const struct spro_stored_record *r = q->rec;
    int rc = 0;
    if (r->plain == NULL)
        rc = spro_store__siblings_each(q->db, r->id, NULL, read_row, q);
    else if ((rc = spro_fset_decode(&q->plain, r->plain, r->plain_len)) == 0)
        rc = set_rows(q, &q->plain);
    spro_fset_clear(&q->plain);
    size_t first = q->nrows;
    if (rc == 0 && r->sealed != NULL &&
        (rc = fset_open(&q->ps, &q->keys, r->rtype, r->rid, r->ben, r->sealed, r->sealed_len,
                        r->sealed_schema)) == 0)
        rc = set_rows(q, &q->ps);
    spro_fset_clear(&q->ps);
    if (rc == 0 && first > 0 && q->nrows > first)
        qsort(q->rows, q->nrows, sizeof *q->rows, row_cmp);
    return rc;
}

/* Bytes of the record's encoding, counted generously (canonical integers
 * and headers are never longer than counted; values are their msgpack). */
static size_t record_size(const struct pull *q, size_t nfields)
{
    const struct spro_stored_record *r = q->rec;
    size_t n = 1 + str_size(5) + str_size(strlen(r->rtype)) + str_size(3) +
               str_size(strlen(r->rid)) + str_size(3) + str_size(strlen(r->ben)) + str_size(6) +
               head_size(nfields) + str_size(7) + 1;
    for (size_t i = 0; i < q->nrows; i++) {
        const struct row *w = &q->rows[i];
        if (i == 0 || strcmp(w->name, q->rows[i - 1].name) != 0)
            n += str_size(strlen(w->name)) + head_size(SPRO_MERGE_MAX_SIBLINGS);
        n += 1 + str_size(3) + w->len + str_size(3) + 1 + UINT_SIZE + str_size(strlen(w->origin)) +
             str_size(2) + str_size(strlen(w->author));
    }
    return n;
}

/* Fills the fields of the record from its rows, in the arena. */
static int build_fields(struct pull *q, struct spro_wire_record *wr, size_t nfields)
{
    struct spro_arena *a = q->arena;
    struct spro_wire_field *f = spro_arena_alloc(a, nfields * sizeof *f + 1, 16);
    struct spro_wire_sibling *s = spro_arena_alloc(a, q->nrows * sizeof *s + 1, 16);
    if (f == NULL || s == NULL)
        return SPRO_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < q->nrows; i++) {
        const struct row *w = &q->rows[i];
        if (i == 0 || strcmp(w->name, q->rows[i - 1].name) != 0) {
            f[k++] = (struct spro_wire_field){arena_str(a, w->name), &s[i], 0};
            if (f[k - 1].name.p == NULL)
                return SPRO_ENOMEM;
        }
        if (++f[k - 1].nsiblings > SPRO_MERGE_MAX_SIBLINGS)
            return SPRO_EINTEGRITY;
        /* Most siblings of a record share their origin and author: the
         * arena holds each once a run. */
        const struct row *prev = i > 0 ? &q->rows[i - 1] : NULL;
        const uint8_t *raw = arena_copy(a, q->vals.data + w->off, w->len);
        s[i].ver.hlc = w->hlc;
        s[i].ver.origin = prev != NULL && strcmp(prev->origin, w->origin) == 0
                              ? s[i - 1].ver.origin
                              : arena_str(a, w->origin);
        s[i].by = prev != NULL && strcmp(prev->author, w->author) == 0 ? s[i - 1].by
                                                                       : arena_str(a, w->author);
        if (raw == NULL || s[i].ver.origin.p == NULL || s[i].by.p == NULL)
            return SPRO_ENOMEM;
        int rc = value_decode(raw, w->len, &s[i].val);
        if (rc != 0)
            return rc;
    }
    wr->fields = f;
    wr->nfields = nfields;
    return 0;
}

/* Adds one record in its current state to the answer, or cuts the answer
 * before it when it does not fit (STOP; SPRO_ETOOLONG for the first). */
static int add_record(struct pull *q, const struct spro_stored_record *r)
{
    size_t nfields = 0, mark = q->arena->len;
    q->rec = r;
    q->nrows = 0;
    q->vals.len = 0;
    if ((q->type = spro_sync_record_type((const uint8_t *)r->rtype, strlen(r->rtype))) == NULL)
        return SPRO_EINTEGRITY;
    /* A removal event is the record's ids alone, removed. */
    int rc = r->removed ? 0 : read_fields(q);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < q->nrows; i++)
        nfields += i == 0 || strcmp(q->rows[i].name, q->rows[i - 1].name) != 0;
    if (nfields > SPRO_SYNC_MAX_FIELDS)
        return SPRO_EINTEGRITY;
    size_t size = record_size(q, nfields);
    struct spro_wire_record *wr = &q->recs[q->n];
    if (size <= q->max_bytes - q->used) {
        *wr = (struct spro_wire_record){arena_str(q->arena, r->rtype),
                                        arena_str(q->arena, r->rid),
                                        arena_str(q->arena, r->ben),
                                        NULL,
                                        0,
                                        r->removed != 0};
        rc = !(wr->rtype.p && wr->rid.p && wr->ben.p) ? SPRO_ENOMEM
             : r->removed                             ? 0
                                                      : build_fields(q, wr, nfields);
        if (rc == 0) {
            q->used += size;
            q->last = r->changed_seq;
            q->n++;
            return 0;
        }
        if (rc != SPRO_ENOMEM)
            return rc;
    }
    spro_memzero(q->arena->base + mark, q->arena->len - mark);
    q->arena->len = mark;
    q->more = true;
    return q->n == 0 ? SPRO_ETOOLONG : STOP;
}

/* spro_store__changes_each() callback. */
static int pull_record(const struct spro_stored_record *r, void *arg)
{
    struct pull *q = arg;
    if (q->n == q->limit || q->n == q->cap) {
        q->more = true;
        return STOP;
    }
    return add_record(q, r);
}

static int pull_tx(struct spro_db *db, void *arg)
{
    struct pull *q = arg;
    int64_t purged, counter;
    uint64_t hlc;
    int rc = spro_store__purged_get(db, &purged);
    if (rc == 0)
        rc = spro_store__sync_state_get(db, &hlc, &counter);
    if (rc != 0)
        return rc;
    if (q->last > 0 && q->last < purged) { /* removal events it needs may be gone */
        q->reset = true;
        return 0;
    }
    rc = spro_store__changes_each(db, q->dev->org, is_supervisor(q->dev), q->last, q->limit + 1,
                                  pull_record, q);
    if (rc == STOP)
        rc = 0;
    /* Nothing more in scope up to the change counter (one snapshot): the
     * cursor may pass it, so that a device whose scope is quiet still
     * moves the horizon. */
    if (rc == 0 && !q->more && counter > q->last)
        q->last = counter;
    return rc;
}

/* The change number a cursor names: empty is 0, else 8 bytes big-endian. */
/* The pull's keys.db read transaction, around its data.db one. */
static int pull_keys_tx(struct spro_db *keys, void *arg)
{
    struct pull *q = arg;
    q->keys.snap = keys;
    int rc = spro_store__transaction(q->db, SPRO_TX_READ, pull_tx, q);
    q->keys.snap = NULL;
    return rc;
}

static int cursor_parse(const struct spro_bytes *c, int64_t *seq)
{
    uint64_t v = 0;
    if (c->len != 0 && c->len != 8)
        return SPRO_ERANGE;
    for (size_t i = 0; i < c->len; i++)
        v = v << 8 | c->p[i];
    if (v > INT64_MAX)
        return SPRO_ERANGE;
    *seq = (int64_t)v;
    return 0;
}

/* The smallest encoding of a record (ids of 36 characters, no field). */
#define RECORD_MIN_BYTES 100

int spro_sync_pull(struct spro_datadir *dd, const struct spro_device *dev,
                   const struct spro_msg_pull *pull, size_t max_bytes, struct spro_arena *arena,
                   struct spro_msg_pull_reply *out)
{
    if (dd == NULL || dev == NULL || pull == NULL || arena == NULL || out == NULL)
        SPRO_BUG("spro_sync_pull: NULL argument");
    memset(out, 0, sizeof *out);
    struct pull q = {.dd = dd, .dev = dev, .arena = arena};
    int rc = cursor_parse(&pull->cursor, &q.last);
    if (rc != 0)
        return rc;
    if (max_bytes < SPRO_SYNC_PULL_ENVELOPE + RECORD_MIN_BYTES)
        return SPRO_ETOOLONG;
    size_t mark = arena->len;
    q.max_bytes = max_bytes - SPRO_SYNC_PULL_ENVELOPE;
    q.limit = pull->limit == 0                      ? 1
              : pull->limit > SPRO_SYNC_MAX_RECORDS ? SPRO_SYNC_MAX_RECORDS
                                                    : pull->limit;
    q.cap =
        q.limit < q.max_bytes / RECORD_MIN_BYTES + 1 ? q.limit : q.max_bytes / RECORD_MIN_BYTES + 1;
    q.recs = spro_arena_alloc(arena, q.cap * sizeof *q.recs, 16);
    uint8_t *cursor = spro_arena_alloc(arena, 8, 1);
    if (q.recs == NULL || cursor == NULL) {
        arena->len = mark;
        return SPRO_ENOMEM;
    }
    keys_init(&q.keys, dd);
    /* On a pair of reader connections: a pull never waits for a push's
     * transaction (nor a push for a pull), nor for another pull while a
     * pair is free, and its data keys come from one read transaction of
     * keys.db, not one each. */
    struct spro_db *keys;
    size_t pair;
    if ((rc = spro_datadir__readers_take(dd, &q.db, &keys, &pair)) == 0) {
        rc = spro_store__transaction(keys, SPRO_TX_READ, pull_keys_tx, &q);
        spro_datadir__readers_give(dd, pair);
    }
    keys_free(&q.keys);
    if (q.vals.data != NULL)
        spro_memzero(q.vals.data, q.vals.cap);
    spro_buf_free(&q.vals);
    spro_fset_free(&q.ps);
    spro_fset_free(&q.plain);
    free(q.rows);
    if (rc != 0) {
        spro_memzero(arena->base + mark, arena->len - mark);
        arena->len = mark;
        return rc;
    }
    if (q.reset) { /* no record, an empty cursor: start again from a snapshot */
        out->reset = true;
        out->records = q.recs;
        out->cursor = (struct spro_bytes){cursor, 0};
        return 0;
    }
    for (int i = 0; i < 8; i++)
        cursor[i] = (uint8_t)((uint64_t)q.last >> (56 - 8 * i));
    out->records = q.recs;
    out->nrecords = q.n;
    out->cursor = (struct spro_bytes){cursor, 8};
    out->more = q.more;
    return 0;
}

/* ---- The sync horizon (docs/SYNC.md, "Horizon and purge") ---- */

struct ack {
    const char *device;
    int64_t seq, now_ms, idle_ms;
    size_t purged;
};

/* The earliest acknowledgement time that still holds the horizon. */
static int64_t holds_since(int64_t now_ms, int64_t idle_ms)
{
    return idle_ms <= 0 || now_ms < INT64_MIN + idle_ms ? INT64_MIN : now_ms - idle_ms;
}

static int purge_tx(struct spro_db *db, void *arg)
{
    struct ack *k = arg;
    return spro_store__purge(db, holds_since(k->now_ms, k->idle_ms), &k->purged);
}

static int ack_tx(struct spro_db *db, void *arg)
{
    struct ack *k = arg;
    int64_t refresh = k->idle_ms > 0 && k->idle_ms / 2 < SPRO_SYNC_ACK_REFRESH_MS
                          ? k->idle_ms / 2
                          : SPRO_SYNC_ACK_REFRESH_MS;
    int written;
    int rc = spro_store__device_ack(db, k->device, k->seq, k->now_ms, refresh, &written);
    return rc != 0 || !written ? rc : purge_tx(db, arg);
}

int spro_sync_ack(struct spro_datadir *dd, const struct spro_device *dev,
                  const struct spro_msg_pull *pull, int64_t now_ms, int64_t idle_ms, size_t *purged)
{
    if (dd == NULL || dev == NULL || pull == NULL)
        SPRO_BUG("spro_sync_ack: NULL argument");
    struct ack k = {.device = dev->id, .now_ms = now_ms, .idle_ms = idle_ms};
    int rc = cursor_parse(&pull->cursor, &k.seq);
    if (rc == 0)
        rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_WRITE, ack_tx, &k);
    if (purged != NULL)
        *purged = rc == 0 ? k.purged : 0;
    return rc;
}

int spro_sync_purge(struct spro_datadir *dd, int64_t now_ms, int64_t idle_ms, size_t *purged)
{
    if (dd == NULL)
        SPRO_BUG("spro_sync_purge: NULL argument");
    struct ack k = {.now_ms = now_ms, .idle_ms = idle_ms};
    int rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_WRITE, purge_tx, &k);
    if (purged != NULL)
        *purged = rc == 0 ? k.purged : 0;
    return rc;
}

/* ---- Opening stored values for the other files of sync/ (store.h) ---- */

struct spro_sync__opener {
    struct keys keys;
};

struct spro_sync__opener *spro_sync__opener_new(struct spro_datadir *dd)
{
    struct spro_sync__opener *o = calloc(1, sizeof *o);
    if (o == NULL)
        SPRO_BUG("out of memory");
    keys_init(&o->keys, dd);
    return o;
}

void spro_sync__opener_free(struct spro_sync__opener *o)
{
    if (o == NULL)
        return;
    keys_free(&o->keys);
    free(o);
}

int spro_sync__open_sibling(struct spro_sync__opener *o, const char *rtype, const char *rid,
                            const char *ben, const struct spro_stored_sibling *s, uint8_t *out,
                            size_t *len)
{
    if (s->sealed) {
        /* A missing key (erased) is told apart from one that does not open. */
        uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES];
        int rc = spro_store__data_key_get(spro_datadir__keys(o->keys.dd), ben, wrapped);
        if (rc != 0)
            return rc;
        if (strlen(ben) != UUID_CHARS)
            return SPRO_EINTEGRITY;
    }
    struct opener op = {&o->keys, rtype, rid, ben, 0};
    return open_value(&op, s, out, len);
}

/* spro_store__siblings_each() callback of spro_sync__record_each(): the
 * record's rows, opened (rows sealed one by one are those of a record the
 * conversion of migration 11 could not open: they fail here as they would
 * have before). */
struct record_rows {
    struct spro_sync__opener *o;
    const struct spro_stored_record *r;
    struct spro_fset rows;
    uint8_t *sealed; /* per row of rows: whether it was sealed */
    size_t cap;
};

static int record_row(const struct spro_stored_sibling *s, void *arg)
{
    struct record_rows *c = arg;
    uint8_t val[VALUE_MAX];
    size_t len = 0;
    if (strlen(s->name) > SPRO_ID_MAX || strlen(s->origin) > SPRO_ORIGIN_MAX ||
        strlen(s->author) > SPRO_ID_MAX)
        return SPRO_EINTEGRITY;
    int rc = spro_sync__open_sibling(c->o, c->r->rtype, c->r->rid, c->r->ben, s, val, &len);
    if (rc == 0) {
        if (c->rows.n == c->cap &&
            (c->sealed = realloc(c->sealed, c->cap = 2 * c->cap + 8)) == NULL)
            SPRO_BUG("out of memory");
        c->sealed[c->rows.n] = s->sealed != 0;
        spro_fset_add(&c->rows, s->name, s->hlc, s->origin, s->author, s->schema, val, len, 1);
    }
    spro_memzero(val, sizeof val);
    return rc;
}

static int open_set(struct spro_sync__opener *o, const struct spro_stored_record *r,
                    const uint8_t *sealed, size_t len, uint32_t schema, struct spro_fset *ps)
{
    /* A missing key (erased) is told apart from a set that does not open. */
    uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES];
    int rc = spro_store__data_key_get(spro_datadir__keys(o->keys.dd), r->ben, wrapped);
    return rc != 0 ? rc : fset_open(ps, &o->keys, r->rtype, r->rid, r->ben, sealed, len, schema);
}

int spro_sync__record_each(struct spro_sync__opener *o, struct spro_db *db,
                           const struct spro_stored_record *r,
                           int (*fn)(const struct spro_stored_sibling *s, void *arg), void *arg)
{
    struct record_rows c = {.o = o, .r = r};
    struct spro_fset set = {0};
    struct spro_buf sealed = {0}, plain = {0};
    uint32_t schema;
    int has = 0, has_plain = 0;
    int rc = spro_store__record_plain_get(db, r->id, &plain, &has_plain);
    if (rc == 0 && !has_plain)
        rc = spro_store__siblings_each(db, r->id, NULL, record_row, &c);
    else if (rc == 0 && (rc = spro_fset_decode(&set, plain.data, plain.len)) == 0)
        for (size_t i = 0; i < set.n; i++) { /* owned copies: plain is freed below */
            const struct spro_fset_entry *e = &set.e[i];
            if (c.rows.n == c.cap && (c.sealed = realloc(c.sealed, c.cap = 2 * c.cap + 8)) == NULL)
                SPRO_BUG("out of memory");
            c.sealed[c.rows.n] = 0;
            spro_fset_add(&c.rows, e->name, e->hlc, e->origin, e->author, e->schema, e->val, e->len,
                          1);
        }
    spro_fset_clear(&set);
    if (rc == 0)
        rc = spro_store__record_sealed_get(db, r->id, &sealed, &has, &schema);
    if (rc == 0 && has)
        rc = open_set(o, r, sealed.data, sealed.len, schema, &set);
    /* Both lists are in order of name, hlc, origin: merged. */
    for (size_t i = 0, k = 0; rc == 0 && (i < c.rows.n || k < set.n);) {
        int from_set =
            i == c.rows.n || (k < set.n && spro_fset_entry_cmp(&set.e[k], &c.rows.e[i]) < 0);
        const struct spro_fset_entry *e = from_set ? &set.e[k++] : &c.rows.e[i++];
        struct spro_stored_sibling s = {.name = e->name,
                                        .hlc = e->hlc,
                                        .origin = e->origin,
                                        .author = e->author,
                                        .schema = e->schema,
                                        .sealed = from_set || c.sealed[i - 1],
                                        .val = e->val,
                                        .val_len = e->len};
        rc = fn(&s, arg);
    }
    spro_fset_free(&c.rows);
    spro_fset_free(&set);
    free(c.sealed);
    spro_buf_free(&sealed);
    spro_buf_free(&plain);
    return rc;
}

int spro_sync__plain_each(struct spro_db *db, int64_t rec, const char *name,
                          int (*fn)(const struct spro_stored_sibling *s, void *arg), void *arg)
{
    struct spro_buf plain = {0};
    struct spro_fset set = {0};
    int has = 0, rc = spro_store__record_plain_get(db, rec, &plain, &has);
    if (rc == 0 && !has)
        rc = spro_store__siblings_each(db, rec, name, fn, arg);
    else if (rc == 0 && (rc = spro_fset_decode(&set, plain.data, plain.len)) == 0)
        for (size_t i = 0; rc == 0 && i < set.n; i++) {
            const struct spro_fset_entry *e = &set.e[i];
            struct spro_stored_sibling s = {.name = e->name,
                                            .hlc = e->hlc,
                                            .origin = e->origin,
                                            .author = e->author,
                                            .schema = e->schema,
                                            .val = e->val,
                                            .val_len = e->len};
            if (name == NULL || strcmp(e->name, name) == 0)
                rc = fn(&s, arg);
        }
    spro_fset_free(&set);
    spro_buf_free(&plain);
    return rc;
}

int spro_sync__read_plain(const struct spro_stored_record *r, size_t *n)
{
    struct spro_fset set = {0};
    int rc = r->plain != NULL ? spro_fset_decode(&set, r->plain, r->plain_len) : 0;
    *n = rc == 0 ? set.n : 0;
    spro_fset_free(&set);
    return rc;
}

int spro_sync__open_set(struct spro_sync__opener *o, const struct spro_stored_record *r, size_t *n)
{
    struct spro_fset set = {0};
    int rc = open_set(o, r, r->sealed, r->sealed_len, r->sealed_schema, &set);
    *n = rc == 0 ? set.n : 0;
    spro_fset_free(&set);
    return rc;
}

/* ---- data.db migrations 11 and 13: rows of rec_siblings into sets ---- */

#define CONVERT_BATCH 256 /* records a transaction */

struct convert {
    struct keys keys;
    int64_t after; /* the last record seen */
    size_t done, left;
    struct spro_fset ps, plain; /* the record's personal and other siblings */
    int sealed_rows;            /* it had rows sealed alone */
    struct spro_buf sealed, encoded;
    const struct spro_stored_record *r;
    uint32_t schema;
};

/* spro_store__siblings_each() callback: a row into its set, opened if it
 * was sealed alone. */
static int convert_row(const struct spro_stored_sibling *s, void *arg)
{
    struct convert *c = arg;
    if (strlen(s->name) > SPRO_ID_MAX || strlen(s->origin) > SPRO_ORIGIN_MAX ||
        strlen(s->author) > SPRO_ID_MAX)
        return SPRO_EINTEGRITY;
    if (!s->sealed) {
        if (s->val_len > VALUE_MAX)
            return SPRO_EINTEGRITY;
        spro_fset_add(&c->plain, s->name, s->hlc, s->origin, s->author, s->schema, s->val,
                      s->val_len, 1);
        return 0;
    }
    uint8_t val[VALUE_MAX];
    size_t len = 0;
    struct opener op = {&c->keys, c->r->rtype, c->r->rid, c->r->ben, 0};
    int rc = open_value(&op, s, val, &len);
    if (rc == 0) {
        spro_fset_add(&c->ps, s->name, s->hlc, s->origin, s->author, s->schema, val, len, 1);
        c->sealed_rows = 1;
        if (s->schema > c->schema)
            c->schema = s->schema;
    }
    spro_memzero(val, sizeof val);
    return rc;
}

/* One record: its rows moved into its sets and deleted; a record whose
 * rows do not open (no key, altered) is left as it is (counted in left).
 * Its sealed set, if it has one already (migration 11's step), stays. */
static int convert_one(struct spro_db *db, struct convert *c, int64_t rec)
{
    struct spro_stored_record r;
    int has;
    uint32_t schema;
    int rc = spro_store__record_by_id(db, rec, &r);
    if (rc != 0)
        return rc == SPRO_ENOENT ? SPRO_EINTEGRITY : rc;
    c->r = &r;
    c->schema = 0;
    c->sealed_rows = 0;
    spro_fset_clear(&c->ps);
    spro_fset_clear(&c->plain);
    rc = spro_store__siblings_each(db, rec, NULL, convert_row, c);
    if (rc == 0 && c->sealed_rows &&
        (rc = spro_store__record_sealed_get(db, rec, &c->sealed, &has, &schema)) == 0 && has)
        rc = SPRO_EINTEGRITY; /* both forms: not written over */
    if (rc == SPRO_EINTEGRITY) {
        c->left++;
        return 0;
    }
    spro_fset_sort(&c->ps);
    spro_fset_sort(&c->plain);
    c->sealed.len = c->encoded.len = 0;
    if (rc == 0 && c->sealed_rows)
        rc = fset_seal(&c->ps, &c->keys, r.rtype, r.rid, r.ben, c->schema, &c->sealed);
    if (rc == 0) {
        spro_fset_encode(&c->plain, &c->encoded);
        rc = spro_store__record_fields_put(db, rec, c->encoded.data, c->encoded.len, c->sealed_rows,
                                           c->sealed.len ? c->sealed.data : NULL, c->sealed.len,
                                           c->schema, 0);
    }
    if (rc == 0)
        rc = spro_store__legacy_delete(db, rec);
    c->done += rc == 0;
    return rc;
}

static int convert_tx(struct spro_db *db, void *arg)
{
    struct convert *c = arg;
    int64_t ids[CONVERT_BATCH];
    size_t n;
    int rc = spro_store__legacy_records(db, c->after, ids, CONVERT_BATCH, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = convert_one(db, c, ids[i])) == 0)
            c->after = ids[i];
    return rc != 0 ? rc : n == 0 ? STOP : 0;
}

/* Whether a record after c->after still has its fields as rows (STOP if
 * none): a read first, so that an open finding nothing to convert never
 * waits for the writer. */
static int convert_any_tx(struct spro_db *db, void *arg)
{
    struct convert *c = arg;
    int64_t id;
    size_t n;
    int rc = spro_store__legacy_records(db, c->after, &id, 1, &n);
    return rc != 0 ? rc : n == 0 ? STOP : 0;
}

int spro_sync__convert_fields(struct spro_datadir *dd, size_t *done, size_t *left)
{
    struct convert c = {0};
    struct spro_db *db = spro_datadir__data(dd);
    keys_init(&c.keys, dd);
    int rc = spro_store__transaction(db, SPRO_TX_READ, convert_any_tx, &c);
    while (rc == 0)
        rc = spro_store__transaction(db, SPRO_TX_WRITE, convert_tx, &c);
    keys_free(&c.keys);
    spro_fset_free(&c.ps);
    spro_fset_free(&c.plain);
    spro_buf_free(&c.sealed);
    spro_buf_free(&c.encoded);
    *done = c.done;
    *left = c.left;
    return rc == STOP ? 0 : rc;
}
