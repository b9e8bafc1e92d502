/*
 * audit.c: the audit log of a data directory (sync.h, "The audit log";
 * docs/CRYPTO.md, "Audit log"): appending entries that have no transaction
 * of their own, signing checkpoints, verifying the whole log, listing it.
 *
 * Entries that record a change are appended by the code that makes the
 * change, in its transaction (store.c: spro_store__audit_append() and the
 * notes of the device functions; engine.c: one entry per pushed op).  The
 * hashes are computed by crypto/audit.c; every statement is in store.c.
 */
#include "store.h"
#include "sync.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECKPOINT_CHUNK 4096 /* entries verified per read transaction by a checkpoint */
#define STOP 1                /* ends a walk early (not an error) */
/* The messages of a broken log, each naming the first bad seq. */
#define CHAIN_BROKEN "audit: entry %lld does not chain (edited, inserted, deleted or reordered)"
#define TAIL_TRUNCATED                                                                             \
    "audit: checkpoint at seq %lld covers entries that are missing (tail truncated)"
#define BAD_SIGNATURE "audit: checkpoint at seq %lld has a bad signature"
#define CP_MISMATCH                                                                                \
    "audit: checkpoint at seq %lld does not match the chain (entries edited, deleted or replaced)"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int printable(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || n == max)
            return 0;
    return n >= min;
}

int spro_audit_check(const char *kind, const char *actor, const char *object, const char *detail)
{
    if (kind == NULL || object == NULL || detail == NULL ||
        !printable(kind, 1, SPRO_AUDIT_KIND_MAX) ||
        (actor != NULL && !printable(actor, 1, SPRO_AUDIT_FIELD_MAX)) ||
        !printable(object, 0, SPRO_AUDIT_FIELD_MAX) || !printable(detail, 0, SPRO_AUDIT_FIELD_MAX))
        return SPRO_ERANGE;
    for (const char *p = kind; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'))
            return SPRO_ERANGE;
    return 0;
}

struct append {
    const struct spro_audit_note *note;
};

static int append_tx(struct spro_db *db, void *arg)
{
    return spro_store__audit_append(db, ((struct append *)arg)->note);
}

int spro_audit_append(struct spro_datadir *dd, const char *kind, const char *actor,
                      const char *object, const char *detail)
{
    if (dd == NULL)
        SPRO_BUG("spro_audit_append: NULL data directory");
    int rc = spro_audit_check(kind, actor, object, detail);
    if (rc != 0)
        return rc;
    struct spro_audit_note note = {spro_datadir__audit_key(dd),
                                   now_ms(),
                                   kind,
                                   actor ? actor : spro_datadir__audit_actor(dd),
                                   object,
                                   detail};
    struct append a = {&note};
    return spro_store__transaction(spro_datadir__data(dd), SPRO_TX_WRITE, append_tx, &a);
}

/* ---- Walking the chain ---- */

/* A checkpoint, copied out of its row. */
struct checkpoint {
    int64_t seq, time_ms;
    uint8_t hash[SPRO_AUDIT_HASH_BYTES];
    uint8_t sig[SPRO_AUDIT_SIG_BYTES];
    int malformed; /* hash or signature of the wrong length */
};

/* The state of a walk along the chain. */
struct walk {
    const uint8_t *key;                  /* audit key */
    const uint8_t *pk;                   /* server's Ed25519 public key */
    int64_t seq;                         /* last entry verified (0: none, the genesis) */
    uint8_t hash[SPRO_AUDIT_HASH_BYTES]; /* its hash */
    struct checkpoint *cps;              /* checkpoints to match, in seq order */
    size_t ncps, ncap, next;             /* next: the first not yet matched */
    int64_t entries;                     /* entries read */
    int64_t budget;                      /* entries left in this read (< 0: no limit) */
    int64_t bad;                         /* first bad seq, 0 if none */
    char why[256];
};

static int cp_signed(const struct walk *w, const struct checkpoint *c)
{
    return !c->malformed &&
           spro_audit_checkpoint_verify(c->sig, w->pk, c->seq, c->hash, c->time_ms) == 0;
}

/* Records the first problem: its seq and a message (fmt takes the seq as
 * a long long). */
__attribute__((format(printf, 3, 4))) static int broken(struct walk *w, int64_t seq,
                                                        const char *fmt, ...)
{
    w->bad = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, sizeof w->why, fmt, ap);
    va_end(ap);
    return SPRO_EINTEGRITY;
}

static int collect_cp(const struct spro_audit_row *r, void *arg)
{
    struct walk *w = arg;
    if (w->ncps == w->ncap) {
        w->ncap = w->ncap ? 2 * w->ncap : 16;
        if ((w->cps = realloc(w->cps, w->ncap * sizeof *w->cps)) == NULL)
            SPRO_BUG("out of memory");
    }
    struct checkpoint *c = &w->cps[w->ncps++];
    memset(c, 0, sizeof *c);
    c->seq = r->seq;
    c->time_ms = r->time_ms;
    c->malformed = r->hash_len != SPRO_AUDIT_HASH_BYTES || r->sig_len != SPRO_AUDIT_SIG_BYTES;
    if (!c->malformed) {
        memcpy(c->hash, r->hash, SPRO_AUDIT_HASH_BYTES);
        memcpy(c->sig, r->sig, SPRO_AUDIT_SIG_BYTES);
    }
    return 0;
}

/* One entry: it must come next, and its stored hash must be the one
 * recomputed from the previous hash; then the checkpoints at its seq must
 * hold that hash and be signed. */
static int walk_entry(const struct spro_audit_row *r, void *arg)
{
    struct walk *w = arg;
    if (w->budget == 0)
        return STOP;
    if (w->budget > 0)
        w->budget--;
    w->entries++;
    if (r->seq != w->seq + 1)
        return broken(w, w->seq + 1, CHAIN_BROKEN, (long long)(w->seq + 1));
    struct spro_audit_entry e = {r->seq, r->time_ms, r->kind, r->actor, r->object, r->detail};
    uint8_t h[SPRO_AUDIT_HASH_BYTES];
    if (r->malformed || spro_audit_hash(h, w->key, w->hash, &e) != 0 ||
        r->hash_len != SPRO_AUDIT_HASH_BYTES ||
        !spro_crypto_equal(h, r->hash, SPRO_AUDIT_HASH_BYTES))
        return broken(w, r->seq, CHAIN_BROKEN, (long long)r->seq);
    w->seq = r->seq;
    memcpy(w->hash, h, sizeof h);
    for (; w->next < w->ncps && w->cps[w->next].seq <= r->seq; w->next++) {
        const struct checkpoint *c = &w->cps[w->next];
        if (!cp_signed(w, c))
            return broken(w, c->seq, BAD_SIGNATURE, (long long)c->seq);
        if (c->seq != r->seq || !spro_crypto_equal(c->hash, h, SPRO_AUDIT_HASH_BYTES))
            return broken(w, c->seq, CP_MISMATCH, (long long)c->seq);
    }
    return 0;
}

/* After the last entry: a checkpoint beyond it covers missing entries. */
static int walk_end(struct walk *w)
{
    if (w->next == w->ncps)
        return 0;
    const struct checkpoint *c = &w->cps[w->next];
    if (!cp_signed(w, c))
        return broken(w, c->seq, BAD_SIGNATURE, (long long)c->seq);
    return broken(w, c->seq, TAIL_TRUNCATED, (long long)c->seq);
}

static int verify_tx(struct spro_db *db, void *arg)
{
    struct walk *w = arg;
    int rc = spro_store__audit_checkpoints_each(db, 0, collect_cp, w);
    if (rc == 0)
        rc = spro_store__audit_each(db, 0, 0, walk_entry, w);
    return rc == 0 ? walk_end(w) : rc;
}

int spro_audit_verify(struct spro_datadir *dd, struct spro_audit_report *r)
{
    memset(r, 0, sizeof *r);
    struct walk w = {
        .key = spro_datadir__audit_key(dd), .pk = spro_datadir_sign_public(dd), .budget = -1};
    int rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_READ, verify_tx, &w);
    r->entries = w.entries;
    r->checkpoints = (int64_t)w.ncps;
    r->last_seq = w.seq;
    if (w.ncps > 0) {
        const struct checkpoint *c = &w.cps[w.ncps - 1];
        r->last_checkpoint = c->seq;
        r->last_checkpoint_ms = c->time_ms;
        memcpy(r->last_checkpoint_hash, c->hash, SPRO_AUDIT_HASH_BYTES);
    }
    r->bad_seq = w.bad;
    snprintf(r->why, sizeof r->why, "%s", w.why);
    if (rc == SPRO_ESTORE)
        snprintf(r->why, sizeof r->why, "audit: cannot read data.db");
    free(w.cps);
    return rc;
}

/* ---- Checkpoints ---- */

/* The last checkpoint, into w->cps[0] (w->ncps 0 or 1). */
static int last_cp(const struct spro_audit_row *r, void *arg)
{
    struct walk *w = arg;
    w->ncps = 0;
    return collect_cp(r, w);
}

static int start_tx(struct spro_db *db, void *arg)
{
    struct walk *w = arg;
    int rc = spro_store__audit_checkpoints_each(db, 0, last_cp, w);
    if (rc != 0 || w->ncps == 0)
        return rc;
    /* Start from the last checkpoint, which must be signed and match its
     * entry: the walk then re-reads that entry, and chains on from it. */
    const struct checkpoint *c = &w->cps[0];
    if (!cp_signed(w, c))
        return broken(w, c->seq, BAD_SIGNATURE, (long long)c->seq);
    w->seq = c->seq;
    memcpy(w->hash, c->hash, SPRO_AUDIT_HASH_BYTES);
    return 0;
}

/* Checks that the entry at the starting checkpoint holds its hash. */
static int check_start(const struct spro_audit_row *r, void *arg)
{
    struct walk *w = arg;
    if (r->seq != w->seq || r->hash_len != SPRO_AUDIT_HASH_BYTES ||
        !spro_crypto_equal(r->hash, w->hash, SPRO_AUDIT_HASH_BYTES))
        return broken(w, w->seq, CP_MISMATCH, (long long)w->seq);
    w->budget = 1; /* found */
    return STOP;
}

static int chunk_tx(struct spro_db *db, void *arg)
{
    struct walk *w = arg;
    int rc = spro_store__audit_each(db, w->seq, 0, walk_entry, w);
    return rc == STOP ? 0 : rc;
}

struct sign {
    struct spro_datadir *dd;
    struct walk *w;
    int64_t time_ms;
};

static int sign_tx(struct spro_db *db, void *arg)
{
    struct sign *s = arg;
    uint8_t sig[SPRO_AUDIT_SIG_BYTES];
    spro_audit_checkpoint_sign(sig, spro_datadir__sign_secret(s->dd), s->w->seq, s->w->hash,
                               s->time_ms);
    return spro_store__audit_checkpoint_put(db, s->w->seq, s->w->hash, s->time_ms, sig);
}

static int start_entry_tx(struct spro_db *db, void *arg)
{
    struct walk *w = arg;
    w->budget = 0;
    int rc = spro_store__audit_each(db, w->seq - 1, 0, check_start, w);
    if (rc == STOP)
        return 0;
    if (rc == 0 && w->budget == 0) /* no entry at the checkpoint: truncated */
        rc = broken(w, w->seq, TAIL_TRUNCATED, (long long)w->seq);
    return rc;
}

int spro_audit_checkpoint(struct spro_datadir *dd, int64_t now, int64_t *seq)
{
    struct spro_db *db = spro_datadir__data(dd);
    struct walk w = {.key = spro_datadir__audit_key(dd), .pk = spro_datadir_sign_public(dd)};
    if (seq != NULL)
        *seq = 0;
    int rc = spro_store__transaction(db, SPRO_TX_READ, start_tx, &w);
    int64_t from = w.seq;
    free(w.cps);
    w.cps = NULL;
    w.ncps = w.ncap = 0;
    if (rc == 0 && from > 0)
        rc = spro_store__transaction(db, SPRO_TX_READ, start_entry_tx, &w);
    /* Then the entries after it, a chunk per read transaction, so that a
     * long stretch never holds the handle (and the pushes of this process)
     * for long. */
    for (int64_t before = -1; rc == 0 && w.seq != before;) {
        before = w.seq;
        w.budget = CHECKPOINT_CHUNK;
        rc = spro_store__transaction(db, SPRO_TX_READ, chunk_tx, &w);
    }
    if (rc == SPRO_EINTEGRITY)
        return rc;
    if (rc != 0 || w.seq == from)
        return rc;
    struct sign s = {dd, &w, now};
    rc = spro_store__transaction(db, SPRO_TX_WRITE, sign_tx, &s);
    if (rc == SPRO_EEXISTS) /* another process signed this seq meanwhile */
        rc = 0;
    if (rc == 0 && seq != NULL)
        *seq = w.seq;
    return rc;
}

/* ---- Listing ---- */

struct each {
    int64_t after, since;
    int (*fn)(const struct spro_audit_record *e, void *arg);
    void *arg;
};

static int each_row(const struct spro_audit_row *r, void *arg)
{
    struct each *x = arg;
    struct spro_audit_record e = {r->seq,    r->time_ms, r->kind, r->actor,
                                  r->object, r->detail,  r->hash, r->hash_len};
    return x->fn(&e, x->arg);
}

static int each_tx(struct spro_db *db, void *arg)
{
    struct each *x = arg;
    return spro_store__audit_each(db, x->after, x->since, each_row, x);
}

int spro_audit_each(struct spro_datadir *dd, int64_t after, int64_t since_ms,
                    int (*fn)(const struct spro_audit_record *e, void *arg), void *arg)
{
    struct each x = {after, since_ms, fn, arg};
    return spro_store__transaction(spro_datadir__data(dd), SPRO_TX_READ, each_tx, &x);
}
