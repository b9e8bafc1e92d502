/*
 * erase.c: people's rights (sync.h, "People's rights"; docs/SYNC.md,
 * "Erasure and retention"): the export of everything held about a
 * beneficiary, its erasure, the retention rules that anonymise closed
 * beneficiaries, and the check that every sealed value opens.
 *
 * Erasure is crypto-shredding in four steps, each durable before the next:
 * (1) one data.db transaction marks the beneficiary erased and deletes its
 * personal values, blind indexes, quarantined ops and kept conflict
 * answers, takes it out of every scope and logs removal events for the
 * organisations' devices; (2) its data key is deleted from keys.db; (3)
 * both WALs are checkpointed (TRUNCATE), so that no old page holding the
 * key or a sealed value stays in a WAL; (4) the erasure is marked done.  A
 * crash after (1) leaves it "pending" (erased.done = 0): the next open of
 * the data directory finishes (2)-(4), which are idempotent.  A crash
 * before (1) commits leaves nothing.  Every copy of data.db, backups
 * included, then holds the beneficiary's values sealed under a key that no
 * longer exists.
 *
 * Test hook: when the environment variable SPRO_FAILPOINT names one of
 * "erase-before-commit" (step 1 written, not committed), "erase-after-data"
 * (after step 1) or "erase-after-key" (after step 2), the process kills
 * itself (SIGKILL) there: the end-to-end crash tests (tests/e2e/
 * test_erasure.c) use it.  Nothing else reads it.
 *
 * Every SQL statement is in store.c; values are opened through engine.c
 * (spro_sync__open_sibling), which knows the key hierarchy.
 */
#include "store.h"
#include "sync.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define UUID_CHARS 36
#define MAX_CHAIN 64 /* beneficiaries erased or exported together (merged into one) */
#define NOTE_MAX 1024
#define NOTE_CTX "erasure_" /* master subkey of the sealed operator's note, id 1 */
#define NOTE_AD "spro-sync erasure note v1"
#define EXPORT_FORMAT "spro-sync subject export v1"

/* ---- Helpers ---- */

static void failpoint(const char *name)
{
    const char *fp = getenv("SPRO_FAILPOINT");
    if (fp != NULL && strcmp(fp, name) == 0)
        kill(getpid(), SIGKILL);
}

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen, const char *fmt,
                                                      ...)
{
    if (why == NULL || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static int is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != UUID_CHARS)
        return 0;
    for (size_t i = 0; i < UUID_CHARS; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23
                ? c != '-'
                : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

/* ISO 8601 UTC of ms since the Unix epoch. */
static void iso_ms(char out[32], int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)ms);
}

static int64_t hlc_ms(uint64_t hlc)
{
    return (int64_t)(hlc >> 16);
}

/* The beneficiary ben and those merged into it, transitively, into set;
 * *n of them.  SPRO_ETOOLONG when they may not all fit (MAX_CHAIN - 1 at
 * most are merged into ben): an erasure or export never leaves one out. */
static int chain(struct spro_db *db, const char *ben, char (*set)[SPRO_ID_MAX + 1], size_t *n)
{
    snprintf(set[0], sizeof set[0], "%s", ben);
    *n = 1;
    for (size_t i = 0; i < *n; i++) {
        size_t got = 0, room = MAX_CHAIN - *n;
        int rc = spro_store__merged_from(db, set[i], set + *n, room, &got);
        if (rc != 0)
            return rc;
        if (got == room) /* perhaps more than fit: refuse, never skip some */
            return SPRO_ETOOLONG;
        *n += got;
    }
    return 0;
}

/* spro_store__closed_each() callback: the closing's date into *arg. */
static int closing_of(const char *ben, int64_t closed_ms, void *arg)
{
    (void)ben;
    *(int64_t *)arg = closed_ms;
    return 0;
}

/* SPRO_ENOENT, explained, if ben was merged into another beneficiary:
 * that one holds the person's records now (moved and sealed under its
 * key), so an erasure or export must name it. */
static int merged_away(struct spro_db *db, const char *ben, char *why, size_t whylen)
{
    char keep[SPRO_ID_MAX + 1];
    int rc = spro_store__merged_get(db, ben, keep);
    if (rc == SPRO_ENOENT)
        return 0;
    if (rc == 0) {
        say(why, whylen, "beneficiary %s was merged into %s, which holds its records now: name %s",
            ben, keep, keep);
        rc = SPRO_ENOENT;
    }
    return rc;
}

/* The audit log's object for a beneficiary: "beneficiary:UUID". */
static void ben_object(char out[SPRO_ID_MAX + 16], const char *ben)
{
    snprintf(out, SPRO_ID_MAX + 16, SPRO_RTYPE_BENEFICIARY ":%s", ben);
}

/* ---- Erasure ---- */

struct erase_tx {
    struct spro_datadir *dd;
    const char *ben, *reason, *note;
    int64_t now_ms;
    int64_t closed_ms; /* retention: the closing found due, checked again; 0: none */
    char set[MAX_CHAIN][SPRO_ID_MAX + 1];
    size_t n;
    struct spro_store_erased prior; /* ben's row, when it was erased already */
    int already;
    size_t removals;
    char *why;
    size_t whylen;
};

/* The operator's note sealed for ben under the master subkey NOTE_CTX. */
static uint8_t *seal_note(struct spro_datadir *dd, const char *ben, const char *note, size_t *len)
{
    size_t n = strlen(note), adlen = sizeof NOTE_AD + strlen(ben);
    uint8_t *out = malloc(n + SPRO_SEAL_OVERHEAD), ad[sizeof NOTE_AD + SPRO_ID_MAX];
    uint8_t *key = spro_secret_alloc(SPRO_KEY_BYTES);
    if (out == NULL)
        SPRO_BUG("out of memory");
    memcpy(ad, NOTE_AD, sizeof NOTE_AD); /* with its NUL: the separator */
    memcpy(ad + sizeof NOTE_AD, ben, strlen(ben));
    spro_crypto_derive(key, spro_datadir__master(dd), 1, NOTE_CTX);
    spro_crypto_seal(out, (const uint8_t *)note, n, ad, adlen, key);
    spro_secret_free(key);
    *len = n + SPRO_SEAL_OVERHEAD;
    return out;
}

static int erase_tx(struct spro_db *db, void *arg)
{
    struct erase_tx *e = arg;
    struct spro_stored_record r;
    int rc = spro_store__erased_get(db, e->ben, &e->prior);
    if (rc == 0) {
        e->already = 1;
        snprintf(e->set[0], sizeof e->set[0], "%s", e->ben);
        e->n = 1;
        return 0;
    }
    if (rc != SPRO_ENOENT)
        return rc;
    if ((rc = spro_store__record_get(db, SPRO_RTYPE_BENEFICIARY, e->ben, &r)) != 0) {
        if (rc == SPRO_ENOENT)
            say(e->why, e->whylen, "no beneficiary %s on this server", e->ben);
        return rc;
    }
    if ((rc = merged_away(db, e->ben, e->why, e->whylen)) != 0)
        return rc;
    if (e->closed_ms != 0) {
        /* Retention decided on an earlier read: still closed since then? */
        int64_t now_closed = 0;
        if ((rc = spro_store__closed_each(db, e->ben, closing_of, &now_closed)) != 0)
            return rc;
        if (now_closed != e->closed_ms) {
            say(e->why, e->whylen,
                "beneficiary %s is no longer due: reopened, merged or closed again meanwhile",
                e->ben);
            return SPRO_ERANGE;
        }
    }
    char all[MAX_CHAIN][SPRO_ID_MAX + 1];
    size_t n_all;
    if ((rc = chain(db, e->ben, all, &n_all)) != 0)
        return rc;
    uint64_t hlc;
    int64_t seq, before;
    if ((rc = spro_store__sync_state_get(db, &hlc, &seq)) != 0)
        return rc;
    before = seq;
    e->n = 0;
    for (size_t i = 0; rc == 0 && i < n_all; i++) {
        int yes = 0;
        if ((rc = spro_store__erased_has(db, all[i], &yes)) != 0 || yes)
            continue; /* merged into ben but erased on its own before */
        size_t notelen = 0;
        uint8_t *note = e->note ? seal_note(e->dd, all[i], e->note, &notelen) : NULL;
        int64_t seq0 = seq;
        rc = spro_store__erase_data(db, all[i], e->now_ms, e->reason, note, notelen, &seq);
        free(note);
        /* Its audit entry, in the same transaction: no erasure without it. */
        char object[SPRO_ID_MAX + 16], detail[96];
        ben_object(object, all[i]);
        snprintf(detail, sizeof detail, "reason=%s removals=%lld%s", e->reason,
                 (long long)(seq - seq0), i > 0 ? " merged_into_erased=1" : "");
        struct spro_audit_note an = {spro_datadir__audit_key(e->dd),   e->now_ms, "subject.erase",
                                     spro_datadir__audit_actor(e->dd), object,    detail};
        if (rc == 0)
            rc = spro_store__audit_append(db, &an);
        if (rc == 0)
            snprintf(e->set[e->n++], sizeof e->set[0], "%s", all[i]);
    }
    e->removals = (size_t)(seq - before);
    if (rc == 0 && (rc = spro_store__sync_state_put(db, hlc, seq)) == 0)
        failpoint("erase-before-commit"); /* step 1 written, not committed */
    return rc;
}

struct done_tx {
    char (*set)[SPRO_ID_MAX + 1];
    size_t n;
};

static int done_tx(struct spro_db *db, void *arg)
{
    struct done_tx *d = arg;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < d->n; i++)
        rc = spro_store__erased_done(db, d->set[i]);
    return rc;
}

/* Steps 2 to 4 for the beneficiaries in set: 0, or SPRO_ESTORE (pending
 * still: a failed checkpoint leaves it so, to be tried again). */
static int finish(struct spro_datadir *dd, char (*set)[SPRO_ID_MAX + 1], size_t n)
{
    struct spro_db *keys = spro_datadir__keys(dd), *data = spro_datadir__data(dd);
    int rc = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = spro_store__data_key_delete(keys, set[i], now_ms);
    if (rc != 0)
        return rc;
    failpoint("erase-after-key");
    if ((rc = spro_store__checkpoint(keys)) != 0 || (rc = spro_store__checkpoint(data)) != 0)
        return rc;
    struct done_tx d = {set, n};
    return spro_store__transaction(data, SPRO_TX_WRITE, done_tx, &d);
}

/* spro_subject_erase(), and for retention (closed_ms not 0) only while
 * ben's closing is still the one found due (SPRO_ERANGE otherwise). */
static int erase_one(struct spro_datadir *dd, const char *ben, const char *reason, const char *note,
                     int64_t closed_ms, int64_t now_ms, struct spro_erasure *out, char *why,
                     size_t whylen)
{
    if (dd == NULL || ben == NULL || reason == NULL)
        SPRO_BUG("spro_subject_erase: NULL argument");
    struct spro_erasure dummy;
    if (out == NULL)
        out = &dummy;
    memset(out, 0, sizeof *out);
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (!is_uuid(ben)) {
        say(why, whylen, "'%s' is not a beneficiary id (a lowercase UUID)", ben);
        return SPRO_ECONFIG;
    }
    if (strcmp(reason, "request") != 0 && strcmp(reason, "retention") != 0)
        SPRO_BUG("spro_subject_erase: reason is neither request nor retention");
    if (note != NULL && strlen(note) > NOTE_MAX) {
        say(why, whylen, "the reason is longer than %d bytes", NOTE_MAX);
        return SPRO_ECONFIG;
    }
    struct erase_tx *e = calloc(1, sizeof *e);
    if (e == NULL)
        SPRO_BUG("out of memory");
    *e = (struct erase_tx){.dd = dd,
                           .ben = ben,
                           .reason = reason,
                           .note = note,
                           .now_ms = now_ms,
                           .closed_ms = closed_ms,
                           .why = why,
                           .whylen = whylen};
    int rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_WRITE, erase_tx, e);
    if (rc == 0 && e->already && e->prior.done) {
        char at[32];
        iso_ms(at, e->prior.at_ms);
        say(why, whylen, "beneficiary %s was already erased on %s", ben, at);
        out->at_ms = e->prior.at_ms;
        rc = SPRO_EEXISTS;
    } else if (rc == 0) {
        failpoint("erase-after-data");
        out->at_ms = e->already ? e->prior.at_ms : now_ms;
        out->resumed = e->already;
        out->erased = e->n;
        out->removals = e->removals;
        if (finish(dd, e->set, e->n) != 0) {
            out->pending = 1; /* the next open or erase_pending finishes it */
            say(why, whylen,
                "beneficiary %s is erased, but a database was busy: the key deletion or WAL "
                "checkpoint will be finished at the next run",
                ben);
        }
    }
    spro_memzero(e, sizeof *e);
    free(e);
    return rc;
}

int spro_subject_erase(struct spro_datadir *dd, const char *ben, const char *reason,
                       const char *note, int64_t now_ms, struct spro_erasure *out, char *why,
                       size_t whylen)
{
    return erase_one(dd, ben, reason, note, 0, now_ms, out, why, whylen);
}

int spro_retention_erase(struct spro_datadir *dd, const char *ben, int64_t closed_ms,
                         int64_t now_ms, char *why, size_t whylen)
{
    if (closed_ms <= 0)
        SPRO_BUG("spro_retention_erase: no closing date");
    return erase_one(dd, ben, "retention", NULL, closed_ms, now_ms, NULL, why, whylen);
}

struct pending_tx {
    char (*set)[SPRO_ID_MAX + 1];
    size_t n;
};

static int pending_tx(struct spro_db *db, void *arg)
{
    struct pending_tx *p = arg;
    return spro_store__erased_pending(db, &p->set, &p->n);
}

int spro_subject_erase_pending(struct spro_datadir *dd, size_t *finished)
{
    struct pending_tx p = {NULL, 0};
    int rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_READ, pending_tx, &p);
    if (rc == 0 && p.n > 0)
        rc = finish(dd, p.set, p.n);
    if (finished != NULL)
        *finished = rc == 0 ? p.n : 0;
    free(p.set);
    return rc;
}

/* A data.db older than some erasures (restored from a backup, or copied)
 * still holds those beneficiaries, whose keys keys.db no longer has: they
 * are erased again, so that no pull fails on them and no device receives
 * them.  keys.db's erased_keys says who; the original reason is gone with
 * the newer data.db, so the erasure is recorded as a request with a note
 * saying why. */
static void reapply_erasures(struct spro_datadir *dd)
{
    char(*bens)[SPRO_ID_MAX + 1] = NULL;
    size_t n = 0;
    if (spro_store__erased_keys(spro_datadir__keys(dd), &bens, &n) != 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (size_t i = 0; i < n; i++) {
        int erased = 0;
        if (spro_store__erased_lookup(spro_datadir__data(dd), bens[i], &erased) != 0)
            break; /* busy: the next open tries again */
        if (erased)
            continue;
        int rc = erase_one(dd, bens[i], "request",
                           "erased again: its data key was erased after this data.db was copied", 0,
                           now_ms, NULL, NULL, 0);
        if (rc != 0 && rc != SPRO_ENOENT) /* ENOENT: not held here, or merged away */
            break;
    }
    free(bens);
}

void spro_subject__finish_pending(struct spro_datadir *dd)
{
    size_t n;
    if (spro_subject_erase_pending(dd, &n) != 0)
        return; /* a database is busy: left pending for the next call */
    reapply_erasures(dd);
}

/* ---- JSON ---- */

/* Appends p[0..n) to b.  The export holds decrypted values: when b must
 * grow, the old block is wiped before it is freed (a plain realloc would
 * leave personal data in freed memory). */
static void j_put(struct spro_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *mem = malloc(cap);
        if (mem == NULL)
            SPRO_BUG("out of memory");
        if (b->len > 0)
            memcpy(mem, b->data, b->len);
        if (b->data != NULL)
            spro_memzero(b->data, b->cap);
        free(b->data);
        b->data = mem;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void j_raw(struct spro_buf *b, const char *s)
{
    j_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void j_fmt(struct spro_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        j_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string of p[0..n): escapes quotes, backslashes and control
 * characters; other bytes (UTF-8) as they are. */
static void j_str(struct spro_buf *b, const char *p, size_t n)
{
    j_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            j_put(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            j_fmt(b, "\\u%04x", c);
        } else {
            j_put(b, &p[i], 1);
        }
    }
    j_put(b, "\"", 1);
}

static void j_cstr(struct spro_buf *b, const char *s)
{
    if (s == NULL)
        j_raw(b, "null");
    else
        j_str(b, s, strlen(s));
}

static void j_time(struct spro_buf *b, int64_t ms)
{
    char t[32];
    iso_ms(t, ms);
    j_cstr(b, t);
}

/* The JSON of a value's msgpack (nil, bool, int64, str); 0 or
 * SPRO_EINTEGRITY. */
static int j_value(struct spro_buf *b, const uint8_t *raw, size_t len)
{
    struct spro_mp_reader r;
    const char *s;
    size_t n;
    bool v;
    int64_t i;
    spro_mp_reader_init(&r, raw, len);
    if (spro_mp_read_nil(&r) == 0)
        j_raw(b, "null");
    else if (spro_mp_read_bool(&r, &v) == 0)
        j_raw(b, v ? "true" : "false");
    else if (spro_mp_read_int(&r, INT64_MIN, INT64_MAX, &i) == 0)
        j_fmt(b, "%lld", (long long)i);
    else if (spro_mp_read_str(&r, SPRO_SYNC_MAX_VALUE, &s, &n) == 0)
        j_str(b, s, n);
    else
        return SPRO_EINTEGRITY;
    return spro_mp_finish(&r) == 0 ? 0 : SPRO_EINTEGRITY;
}

/* ---- Export ---- */

struct export
{
    struct spro_datadir *dd;
    const char *ben;
    int64_t now_ms;
    struct spro_buf *out;
    struct spro_sync__opener *opener;
    const struct spro_stored_record *rec; /* the record being written */
    const char *field;                    /* its field being written ("" before the first) */
    size_t nsib;
    int first; /* the next item of a list is its first */
    /* The audit log's objects of the exported records ("rtype:rid"). */
    char(*objects)[2 * SPRO_ID_MAX + 2];
    size_t nobjects, capobjects;
    char *why;
    size_t whylen;
};

static void j_sep(struct export *x)
{
    j_raw(x->out, x->first ? "\n" : ",\n");
    x->first = 0;
}

/* One sibling of the record being written (its value in clear). */
static int export_sibling(const struct spro_stored_sibling *s, void *arg)
{
    struct export *x = arg;
    struct spro_buf *b = x->out;
    int rc;
    if (strcmp(x->field, s->name) != 0) {
        if (x->field[0] != '\0')
            j_raw(b, "\n          ]\n        }");
        j_raw(b, x->field[0] != '\0' ? ",\n        " : "\n        ");
        j_cstr(b, s->name);
        j_raw(b, ": {\"personal\": ");
        j_raw(b, s->sealed ? "true" : "false");
        j_raw(b, ", \"siblings\": [\n");
        x->field = s->name; /* valid until the next row: compared only below */
        x->nsib = 0;
    } else {
        j_raw(b, ",\n");
    }
    j_raw(b, "            {\"value\": ");
    if ((rc = j_value(b, s->val, s->val_len)) != 0)
        return rc;
    j_raw(b, ", \"by\": ");
    j_cstr(b, s->author);
    j_fmt(b, ", \"version\": {\"hlc\": %llu, \"origin\": ", (unsigned long long)s->hlc);
    j_cstr(b, s->origin);
    j_raw(b, ", \"time\": ");
    j_time(b, hlc_ms(s->hlc));
    j_raw(b, "}}");
    x->nsib++;
    return 0;
}

/* Field names read from a row are valid during the callback only: a copy
 * of the current one is kept here. */
struct export_rec {
    struct export *x;
    char field[SPRO_ID_MAX + 1];
};

static int export_sibling_copy(const struct spro_stored_sibling *s, void *arg)
{
    struct export_rec *e = arg;
    e->x->field = e->field;
    int rc = export_sibling(s, e->x);
    if (rc == 0)
        snprintf(e->field, sizeof e->field, "%s", s->name);
    e->x->field = e->field;
    return rc;
}

struct scope_list {
    struct export *x;
    const char *rtype, *rid; /* NULL: the beneficiary's scope */
    int first;
};

static int scope_one(const char *rtype, const char *rid, const char *org, void *arg)
{
    struct scope_list *l = arg;
    int whole = rtype == NULL;
    if (whole != (l->rtype == NULL) ||
        (!whole && (strcmp(rtype, l->rtype) != 0 || strcmp(rid, l->rid) != 0)))
        return 0;
    j_raw(l->x->out, l->first ? "" : ", ");
    j_cstr(l->x->out, org);
    l->first = 0;
    return 0;
}

/* One device that may hold, or have held, a copy. */
static int recipient_one(const char *device, const char *user, const char *org, const char *state,
                         int64_t pulled_at, void *arg)
{
    struct export *x = arg;
    struct spro_buf *b = x->out;
    j_raw(b, x->first ? "\n    {\"device\": " : ",\n    {\"device\": ");
    x->first = 0;
    j_cstr(b, device);
    j_raw(b, ", \"user\": ");
    j_cstr(b, user);
    j_raw(b, ", \"organisation\": ");
    j_cstr(b, org);
    j_raw(b, ", \"state\": ");
    j_cstr(b, state);
    j_raw(b, ", \"last_pull\": ");
    j_time(b, pulled_at);
    j_raw(b, "}");
    return 0;
}

static int export_record(struct spro_db *db, struct export *x, const struct spro_stored_record *r)
{
    struct spro_buf *b = x->out;
    struct export_rec e = {x, ""};
    if (x->nobjects == x->capobjects &&
        (x->objects = realloc(x->objects, (x->capobjects = x->capobjects ? 2 * x->capobjects : 16) *
                                              sizeof *x->objects)) == NULL)
        SPRO_BUG("out of memory");
    snprintf(x->objects[x->nobjects++], sizeof *x->objects, "%s:%s", r->rtype, r->rid);
    j_sep(x);
    j_raw(b, "    {\"type\": ");
    j_cstr(b, r->rtype);
    j_raw(b, ", \"id\": ");
    j_cstr(b, r->rid);
    j_raw(b, ", \"beneficiary\": ");
    j_cstr(b, r->ben);
    j_raw(b, ", \"created_by_org\": ");
    j_cstr(b, r->created_by_org);
    j_raw(b, ",\n      \"received_alone_by\": [");
    struct scope_list l = {x, r->rtype, r->rid, 1};
    int rc = spro_store__scope_each(db, r->ben, scope_one, &l);
    j_raw(b, "],\n      \"fields\": {");
    x->rec = r;
    x->field = e.field;
    if (rc == 0)
        rc = spro_sync__record_each(x->opener, db, r, export_sibling_copy, &e);
    if (rc == SPRO_ENOENT || rc == SPRO_EINTEGRITY) {
        if (rc == SPRO_ENOENT)
            say(x->why, x->whylen,
                "cannot decrypt the data of beneficiary %s: its data key is gone (erased); "
                "this data.db is older than the erasure (record %s)",
                r->ben, r->rid);
        else
            say(x->why, x->whylen,
                "a sealed value of beneficiary %s does not open (record %s): wrong key or "
                "damaged data (see spro-admin check)",
                r->ben, r->rid);
        rc = SPRO_EINTEGRITY;
    }
    if (rc == 0)
        j_raw(b, e.field[0] != '\0' ? "\n          ]\n        }\n      }}" : "}}");
    x->field = "";
    x->rec = NULL;
    return rc;
}

static int export_quarantined(const struct spro_quarantined *q, void *arg)
{
    struct export *x = arg;
    j_sep(x);
    j_raw(x->out, "    {\"device\": ");
    j_cstr(x->out, q->device);
    j_fmt(x->out, ", \"seq\": %llu, \"code\": ", (unsigned long long)q->seq);
    j_cstr(x->out, q->code);
    j_raw(x->out, ", \"at\": ");
    j_time(x->out, q->at_ms);
    j_raw(x->out, "}");
    return 0;
}

static int object_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int export_audit(const struct spro_audit_row *r, void *arg)
{
    struct export *x = arg;
    if (x->nobjects == 0 ||
        bsearch(r->object, x->objects, x->nobjects, sizeof *x->objects, object_cmp) == NULL)
        return 0;
    j_sep(x);
    j_fmt(x->out, "    {\"seq\": %lld, \"time\": ", (long long)r->seq);
    j_time(x->out, r->time_ms);
    j_raw(x->out, ", \"kind\": ");
    j_cstr(x->out, r->kind);
    j_raw(x->out, ", \"actor\": ");
    j_cstr(x->out, r->actor);
    j_raw(x->out, ", \"object\": ");
    j_cstr(x->out, r->object);
    j_raw(x->out, ", \"detail\": ");
    j_cstr(x->out, r->detail);
    j_raw(x->out, "}");
    return 0;
}

static int export_tx(struct spro_db *db, void *arg)
{
    struct export *x = arg;
    struct spro_buf *b = x->out;
    struct spro_store_erased er;
    struct spro_stored_record r;
    char set[MAX_CHAIN][SPRO_ID_MAX + 1];
    size_t n = 0;
    int rc = spro_store__erased_get(db, x->ben, &er);
    if (rc == 0) {
        char at[32];
        iso_ms(at, er.at_ms);
        say(x->why, x->whylen, "beneficiary %s was erased on %s: nothing is left to export", x->ben,
            at);
        return SPRO_ENOENT;
    }
    if (rc != SPRO_ENOENT)
        return rc;
    if ((rc = spro_store__record_get(db, SPRO_RTYPE_BENEFICIARY, x->ben, &r)) != 0) {
        if (rc == SPRO_ENOENT)
            say(x->why, x->whylen, "no beneficiary %s on this server", x->ben);
        return rc;
    }
    if ((rc = merged_away(db, x->ben, x->why, x->whylen)) != 0 ||
        (rc = chain(db, x->ben, set, &n)) != 0)
        return rc;
    j_raw(b, "{\n  \"format\": \"" EXPORT_FORMAT "\",\n  \"beneficiary\": ");
    j_cstr(b, x->ben);
    j_raw(b, ",\n  \"exported_at\": ");
    j_time(b, x->now_ms);
    j_raw(b, ",\n  \"merged_into_it\": [");
    for (size_t i = 1; i < n; i++) {
        j_raw(b, i > 1 ? ", " : "");
        j_cstr(b, set[i]);
    }
    j_raw(b, "],\n  \"organisations\": [");
    struct scope_list l = {x, NULL, NULL, 1};
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = spro_store__scope_each(db, set[i], scope_one, &l);
    /* Who received it: the devices of those organisations (and of those
     * that had it before a transfer) that pulled since it was created. */
    j_raw(b, "],\n  \"devices_that_pulled\": [");
    x->first = 1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = spro_store__recipients_each(db, set[i], recipient_one, x);
    j_raw(b, x->first ? "]" : "\n  ]");
    j_raw(b, ",\n  \"records\": [");
    x->first = 1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct spro_stored_record *recs = NULL, self;
        size_t nrecs = 0;
        if ((rc = spro_store__record_get(db, SPRO_RTYPE_BENEFICIARY, set[i], &self)) == 0 &&
            (rc = export_record(db, x, &self)) == 0 &&
            (rc = spro_store__ben_records(db, set[i], &recs, &nrecs)) == 0)
            for (size_t k = 0; rc == 0 && k < nrecs; k++)
                rc = export_record(db, x, &recs[k]);
        free(recs);
    }
    if (rc != 0)
        return rc;
    j_raw(b, "\n  ],\n  \"quarantined_ops\": [");
    x->first = 1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = spro_store__quarantine_each(db, set[i], export_quarantined, x);
    j_raw(b, x->first ? "],\n" : "\n  ],\n");
    if (rc != 0)
        return rc;
    /* The audit trail: every entry whose object is one of its records
     * (ops pushed by devices, erasures and exports name "rtype:rid"; a
     * beneficiary's own record is "beneficiary:UUID"). */
    qsort(x->objects, x->nobjects, sizeof *x->objects, object_cmp);
    j_raw(b, "  \"audit\": [");
    x->first = 1;
    rc = spro_store__audit_each(db, 0, INT64_MIN, export_audit, x);
    j_raw(b, x->first ? "],\n" : "\n  ],\n");
    j_raw(b, "  \"history\": \"each sibling's author and version time say who wrote each value "
             "and when; values superseded by a later edit are not kept, the audit entries say "
             "which device sent each change\"\n}\n");
    return rc;
}

int spro_subject_export(struct spro_datadir *dd, const char *ben, int64_t now_ms,
                        struct spro_buf *out, char *why, size_t whylen)
{
    if (dd == NULL || ben == NULL || out == NULL)
        SPRO_BUG("spro_subject_export: NULL argument");
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (!is_uuid(ben)) {
        say(why, whylen, "'%s' is not a beneficiary id (a lowercase UUID)", ben);
        return SPRO_ECONFIG;
    }
    struct spro_buf b = {0};
    struct export x = {.dd = dd,
                       .ben = ben,
                       .now_ms = now_ms,
                       .out = &b,
                       .opener = spro_sync__opener_new(dd),
                       .why = why,
                       .whylen = whylen};
    int rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_READ, export_tx, &x);
    spro_sync__opener_free(x.opener);
    free(x.objects);
    char object[SPRO_ID_MAX + 16];
    ben_object(object, ben);
    /* Logged before anything is handed out: no export without its entry. */
    if (rc == 0 && (rc = spro_audit_append(dd, "subject.export", NULL, object, "")) != 0)
        say(why, whylen, "cannot write the audit entry of the export: %s", spro_strerror(rc));
    if (rc == 0)
        spro_buf_append(out, b.data, b.len);
    if (b.data != NULL)
        spro_memzero(b.data, b.cap);
    spro_buf_free(&b);
    return rc;
}

/* ---- Retention ---- */

int spro_retention_parse(const char *spec, struct spro_retention_rule *out)
{
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    memset(out, 0, sizeof *out);
    if (colon == NULL || colon == spec || (size_t)(colon - spec) > SPRO_ID_MAX)
        return SPRO_ECONFIG;
    size_t n = (size_t)(colon - spec);
    for (size_t i = 0; i < n; i++) {
        char c = spec[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || (c == '*' && n == 1)))
            return SPRO_ECONFIG;
    }
    char *end;
    const char *y = colon + 1;
    if (*y < '0' || *y > '9')
        return SPRO_ECONFIG;
    unsigned long v = strtoul(y, &end, 10);
    if (*end != '\0' || v > 200)
        return SPRO_ECONFIG;
    memcpy(out->programme, spec, n);
    out->years = (unsigned)v;
    return 0;
}

/* ms + years calendar years (UTC; 29 February gives 1 March). */
static int64_t add_years(int64_t ms, unsigned years)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return INT64_MAX;
    tm.tm_year += (int)years;
    time_t u = timegm(&tm);
    return u == (time_t)-1 ? INT64_MAX : (int64_t)u * 1000 + ms % 1000;
}

struct candidate {
    char ben[SPRO_ID_MAX + 1];
    int64_t closed_ms;
};

struct retention {
    const struct spro_retention_rule *rules;
    size_t nrules;
    int64_t now_ms;
    struct candidate *c;
    size_t n, cap;
    struct spro_retention_due *due;
    size_t ndue;
    /* The beneficiary being looked at. */
    const struct spro_retention_rule *rule; /* the longest that applies */
    int blocked;                            /* a programme without a rule */
};

static int closed_one(const char *ben, int64_t closed_ms, void *arg)
{
    struct retention *t = arg;
    if (t->n == t->cap &&
        (t->c = realloc(t->c, (t->cap = t->cap ? 2 * t->cap : 64) * sizeof *t->c)) == NULL)
        SPRO_BUG("out of memory");
    snprintf(t->c[t->n].ben, sizeof t->c[t->n].ben, "%s", ben);
    t->c[t->n++].closed_ms = closed_ms;
    return 0;
}

static const struct spro_retention_rule *rule_for(const struct retention *t, const char *p,
                                                  size_t n)
{
    const struct spro_retention_rule *any = NULL;
    for (size_t i = 0; i < t->nrules; i++) {
        if (strcmp(t->rules[i].programme, "*") == 0)
            any = &t->rules[i];
        else if (strlen(t->rules[i].programme) == n && memcmp(t->rules[i].programme, p, n) == 0)
            return &t->rules[i];
    }
    return any;
}

static void apply_rule(struct retention *t, const struct spro_retention_rule *r)
{
    if (r == NULL)
        t->blocked = 1;
    else if (t->rule == NULL || r->years > t->rule->years)
        t->rule = r;
}

/* One programme value of an enrolment. */
static int programme_one(const struct spro_stored_sibling *s, void *arg)
{
    struct retention *t = arg;
    struct spro_mp_reader r;
    const char *p;
    size_t n;
    spro_mp_reader_init(&r, s->val, s->val_len);
    if (s->sealed || spro_mp_read_str(&r, SPRO_SYNC_MAX_VALUE, &p, &n) != 0) {
        t->blocked = 1; /* no programme, or not one a rule can name: keep */
        return 0;
    }
    apply_rule(t, rule_for(t, p, n));
    return 0;
}

static int retention_tx(struct spro_db *db, void *arg)
{
    struct retention *t = arg;
    int rc = spro_store__closed_each(db, NULL, closed_one, t);
    if ((t->due = calloc(t->n + 1, sizeof *t->due)) == NULL)
        SPRO_BUG("out of memory");
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        struct spro_stored_record *recs = NULL;
        size_t n = 0, enrolments = 0;
        t->rule = NULL;
        t->blocked = 0;
        rc = spro_store__ben_records(db, t->c[i].ben, &recs, &n);
        for (size_t k = 0; rc == 0 && k < n; k++)
            if (strcmp(recs[k].rtype, "enrolment") == 0) {
                enrolments++;
                rc = spro_sync__plain_each(db, recs[k].id, "programme", programme_one, t);
            }
        free(recs);
        if (rc != 0)
            break;
        if (enrolments == 0)
            apply_rule(t, rule_for(t, "*", 1));
        if (t->blocked || t->rule == NULL)
            continue;
        int64_t due = add_years(t->c[i].closed_ms, t->rule->years);
        if (t->now_ms < due)
            continue;
        struct spro_retention_due *d = &t->due[t->ndue++];
        memset(d, 0, sizeof *d);
        snprintf(d->ben, sizeof d->ben, "%s", t->c[i].ben);
        snprintf(d->programme, sizeof d->programme, "%s", t->rule->programme);
        d->closed_at_ms = t->c[i].closed_ms;
        d->due_at_ms = due;
    }
    return rc;
}

int spro_retention_run(struct spro_datadir *dd, const struct spro_retention_rule *rules, size_t n,
                       int64_t now_ms, int dry_run,
                       void (*report)(const struct spro_retention_due *d, void *arg), void *arg,
                       size_t *due)
{
    if (dd == NULL || (rules == NULL && n > 0))
        SPRO_BUG("spro_retention_run: NULL argument");
    struct retention t = {.rules = rules, .nrules = n, .now_ms = now_ms};
    int rc = dry_run ? 0 : spro_subject_erase_pending(dd, NULL);
    if (rc == 0 && n > 0) {
        rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_READ, retention_tx, &t);
    }
    int first = rc;
    for (size_t i = 0; rc == 0 && i < t.ndue; i++) {
        struct spro_retention_due *d = &t.due[i];
        if (!dry_run) {
            d->rc = spro_retention_erase(dd, d->ben, d->closed_at_ms, now_ms, NULL, 0);
            if (d->rc == SPRO_EEXISTS) /* erased meanwhile */
                d->rc = 0;
            if (d->rc == SPRO_ERANGE || d->rc == SPRO_ENOENT) /* no longer due, or merged */
                d->rc = 0, d->kept = 1;
            if (d->rc != 0 && first == 0)
                first = d->rc;
        }
        if (report != NULL)
            report(d, arg);
    }
    if (due != NULL)
        *due = rc == 0 ? t.ndue : 0;
    free(t.c);
    free(t.due);
    return first;
}

/* ---- Check: every sealed field decrypts ---- */

struct check {
    struct spro_sync__opener *opener;
    uint8_t *val;
    uint64_t open, keyless, bad;
    char first_bad[200];
    char (*gone)[SPRO_ID_MAX + 1]; /* beneficiaries without a data key, distinct */
    size_t ngone, capgone;
};

/* Records c's verdict rc on what it opened (n values) of beneficiary ben. */
static int check_verdict(struct check *c, int rc, size_t n, const struct spro_stored_record *r,
                         const char *field)
{
    if (rc == 0) {
        c->open += n;
    } else if (rc == SPRO_ENOENT) {
        c->keyless++;
        if (c->ngone == 0 || strcmp(c->gone[c->ngone - 1], r->ben) != 0) {
            for (size_t i = 0; i < c->ngone; i++)
                if (strcmp(c->gone[i], r->ben) == 0)
                    return 0;
            if (c->ngone == c->capgone &&
                (c->gone = realloc(c->gone, (c->capgone = c->capgone ? 2 * c->capgone : 8) *
                                                sizeof *c->gone)) == NULL)
                SPRO_BUG("out of memory");
            snprintf(c->gone[c->ngone++], sizeof *c->gone, "%s", r->ben);
        }
    } else if (rc == SPRO_EINTEGRITY) {
        if (c->bad++ == 0)
            snprintf(c->first_bad, sizeof c->first_bad, "%s %s field %s", r->rtype, r->rid, field);
    } else {
        return rc;
    }
    return 0;
}

static int check_one(const struct spro_stored_record *r, const struct spro_stored_sibling *s,
                     void *arg)
{
    struct check *c = arg;
    size_t len = 0;
    int rc = spro_sync__open_sibling(c->opener, r->rtype, r->rid, r->ben, s, c->val, &len);
    spro_memzero(c->val, len);
    return check_verdict(c, rc, 1, r, s->name);
}

/* A record's sealed field set: every sibling in it opens; and its other
 * fields read (they are not sealed: not counted as opened). */
static int check_set(const struct spro_stored_record *r, void *arg)
{
    struct check *c = arg;
    size_t n = 0;
    int rc = r->sealed != NULL ? spro_sync__open_set(c->opener, r, &n) : 0;
    if ((rc = check_verdict(c, rc, n, r, "set *personal")) != 0 || r->plain == NULL)
        return rc;
    rc = spro_sync__read_plain(r, &n);
    return check_verdict(c, rc, 0, r, "fields not personal");
}

/* Siblings sealed one by one (records the conversion of data.db migration
 * 11 could not open), then every sealed field set. */
static int check_tx(struct spro_db *db, void *arg)
{
    int rc = spro_store__sealed_each(db, check_one, arg);
    return rc != 0 ? rc : spro_store__fields_each(db, check_set, arg);
}

int spro_subject__check_sealed(struct spro_datadir *dd, char *detail, size_t cap)
{
    struct check c = {.opener = spro_sync__opener_new(dd),
                      .val = spro_secret_alloc(SPRO_FSET_VALUE_MAX)};
    int rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_READ, check_tx, &c);
    spro_sync__opener_free(c.opener);
    spro_secret_free(c.val);
    if (rc == 0) {
        int n = snprintf(detail, cap, "%llu sealed values open under their data keys",
                         (unsigned long long)c.open);
        if (c.bad > 0) {
            n += snprintf(detail + n, cap > (size_t)n ? cap - (size_t)n : 0,
                          "; %llu do NOT open (wrong key or damaged), first: %s",
                          (unsigned long long)c.bad, c.first_bad);
            rc = SPRO_EINTEGRITY;
        }
        if (c.keyless > 0 && n >= 0 && (size_t)n < cap) {
            n += snprintf(detail + n, cap - (size_t)n,
                          "; %llu values of %zu erased beneficiaries (data key destroyed) are "
                          "unreadable:",
                          (unsigned long long)c.keyless, c.ngone);
            for (size_t i = 0; i < c.ngone && i < 8 && n >= 0 && (size_t)n < cap; i++)
                n += snprintf(detail + n, cap - (size_t)n, " %s", c.gone[i]);
            if (c.ngone > 8 && n >= 0 && (size_t)n < cap)
                snprintf(detail + n, cap - (size_t)n, " ...");
        }
    }
    free(c.gone);
    return rc;
}
