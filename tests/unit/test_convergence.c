/*
 * test_convergence.c: a randomized convergence test of the whole sync
 * path, checked against a simple reference model.
 *
 * One data directory (sync.h) with one organisation; 3 to 5 devices
 * enrolled with tickets, each with its own local store (sync/local.h), as
 * spro-client keeps it.  Device 0 creates a few beneficiary records, every
 * device pulls them, then random rounds: a random device either edits
 * offline (1 or 2 fields of a random record: personal and clear strings, a
 * boolean, a field the server's schema does not know; sometimes a value
 * the schema refuses; sometimes the resolution of a field in conflict,
 * whose base is then all its siblings), or syncs.  A sync sends the next
 * push built from the outbox and pulls pages of 1 to 3 records, every
 * message passing through the real codec both ways (spro_proto_encode, then
 * spro_proto_decode_sync as the server and the device do).  Faults: a push
 * cut to a prefix of its ops (possibly none), an answer lost on the way
 * back (the device never stores it and sends the same ops again), a pull
 * stopped between pages or a page lost (the device keeps what it stored,
 * cursor included).  Device 0's clock runs 10 minutes ahead, beyond the
 * server's drift: its versions are clamped.
 *
 * As spro-client does, a device does not pull while an op the server has
 * answered waits for its answer to be stored (the sync stops at a lost
 * answer and resends first); see "Known bugs" below for what happens
 * otherwise.
 *
 * The reference model keeps every edit ever made: its device, op seq,
 * record, field, value, the base it was sent with, the answer the server
 * gave its op, and whether an applied edit listed its version in its base
 * ("superseded").  Checked:
 *   - each new op is answered as the model predicts: an ack leaves its
 *     fields with its edit alone, a conflict lists exactly the fields the
 *     model has with two or more siblings, with those siblings; a reject is
 *     bad_value exactly for the ops carrying a value the schema refuses;
 *   - an op sent again is byte for byte the op sent first, and its answer
 *     byte for byte the first answer;
 *   - every 50 rounds and at the end, the server's state, read by a pull
 *     from a fresh device, is exactly the model's: each field's siblings
 *     are its applied edits that no applied edit superseded (version,
 *     author, value bytes);
 *   - at the end, after every device pushed until its outbox was empty and
 *     pulled until nothing more came: every replica equals the server
 *     (records, fields, siblings, the value shown, conflicts), no edit is
 *     pending, every op's answer was stored exactly once by its device, and
 *     every edit is the field's value, a sibling kept in a conflict,
 *     superseded by an applied edit that had seen it, or quarantined with
 *     its reason on the server and on the device: none vanished.
 * Seeds are fixed; the counts are printed.
 *
 * Regressions: two reproductions of a bug this test found (a replayed push
 * answer stored after a newer pull overwrote the pulled state), fixed in
 * the device store and kept as tests.
 */
#include "check.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "proto/proto.h"
#include "sync/local.h"
#include "sync/sync.h"

#define NOW_MS INT64_C(1700000000000)
#define NOW_S (NOW_MS / 1000)
#define DRIFT_MS 60000 /* the server's --max-clock-drift */
/* The server's largest pull answer: one sealed frame, less room for the
 * envelope (as server/channel.c asks of the engine). */
#define ANSWER_MAX (SPRO_NOISE_MAX_MESSAGE - SPRO_NOISE_TAG_BYTES - 512)
#define VIEW_MAX (1u << 20) /* pull answer of the server's whole state */
#define ARENA_CAP (8u << 20)
#define ORG "org1"
#define RTYPE "beneficiary"

#define MAX_DEVICES 5
#define NRECORDS 4
#define NFIELDS 5
#define MAX_SIBS 32
#define VAL_MAX 320

enum ftype { F_STR, F_BOOL, F_ANY };

/* The fields edited: personal and clear strings, a boolean, and a field
 * the server's schema does not know (kept as any value, personal). */
static const struct {
    const char *name;
    enum ftype type;
} fields[NFIELDS] = {
    {"given_name", F_STR}, {"family_name", F_STR}, {"situation", F_STR},
    {"dropout", F_BOOL},   {"future_note", F_ANY},
};

struct sim_config {
    const char *name;
    uint64_t seed;
    size_t devices, rounds;
    unsigned edit_pct;      /* a round is an edit, else a sync */
    unsigned resolve_pct;   /* an edit resolves a conflict when the device has one */
    unsigned bad_pct;       /* an edit carries a value the schema refuses */
    unsigned cut_pct;       /* a push reaches the server cut to a prefix of its ops */
    unsigned lost_pct;      /* a push's answer is lost on the way back */
    unsigned page_cut_pct;  /* a pull stops between pages */
    unsigned page_lost_pct; /* a page's answer is lost on the way back */
    bool pull_after_lost;   /* pull even while an answered op waits for its answer */
};

/* A field value as written by a device. */
struct val {
    enum spro_value_kind kind;
    bool b;
    int64_t i;
    char s[VAL_MAX];
    size_t slen;
};

enum op_state { OP_UNSENT, OP_APPLIED, OP_REJECTED };

/* One op of one device: 1 or 2 edits. */
struct op_rec {
    size_t dev;
    uint64_t seq;
    size_t first, n; /* its edits: [first, first + n) */
    bool bad;        /* carries a value the schema refuses */
    enum op_state state;
    uint64_t op_hlc;  /* the device's hlc, as sent */
    uint64_t ver_hlc; /* the version its edits got (applied) */
    char code[SPRO_PROTO_MAX_CODE + 1];
    struct spro_buf sent;   /* the op as first sent: a one-op push */
    struct spro_buf answer; /* its first answer: a one-result push_reply */
    unsigned stored;        /* answers the device stored */
    unsigned quarantined;   /* rejections the device reported */
    size_t pulls;           /* pull answers its device had stored when it was applied */
    bool sent_once;         /* its device built a push with it */
    size_t sent_pulls;      /* pull answers its device had stored then, the first time */
};

struct base_ver {
    uint64_t hlc;
    size_t origin; /* device index */
};

/* One field written by one op. */
struct edit_rec {
    size_t op, rec, field;
    bool resolve;
    struct val v;
    uint8_t raw[VAL_MAX + 8]; /* the value's msgpack, as sent */
    size_t rawlen;
    struct base_ver base[MAX_SIBS + 1];
    size_t nbase;
    bool superseded; /* an applied edit listed its version in its base */
};

struct device {
    struct spro_device dev;
    char dir[340];
    struct spro_local *l;
    int64_t skew_ms;
    uint64_t nops;      /* ops written: seqs 1..nops */
    size_t *op_of_seq;  /* index 1..nops: the op's index in sim.ops */
    uint64_t server_hw; /* highest seq the server has answered */
    size_t pulls;       /* pull answers stored */
    bool *gone;         /* by edit: superseded by a version this device stored */
};

struct sim_counts {
    size_t rounds, ops, edits, resolutions, bad_values;
    size_t acks, conflicts, rejects; /* first answers */
    size_t pushes, cut_pushes, lost_answers, retried_ops, clamped;
    size_t pages, cut_pulls, lost_pages, skipped_pulls;
    /* at the end, each edit is one of */
    size_t current, kept_sibling, superseded, quarantined;
};

struct sim {
    const struct sim_config *cfg;
    uint64_t rng;
    int64_t now_ms;
    char dir[300];
    struct spro_datadir *dd;
    struct device dev[MAX_DEVICES];
    struct spro_device observer; /* a fresh device that only reads */
    char rid[NRECORDS][SPRO_LOCAL_UUID_CHARS + 1];
    struct op_rec *ops;
    size_t nops, capops;
    struct edit_rec *edits;
    size_t nedits, capedits;
    struct spro_arena srv, devar, viewar; /* server side, device side, the view */
    struct spro_buf view_buf;
    struct spro_msg_pull_reply view; /* the server's state, into view_buf */
    /* Scratch, reused (and freed by sim_destroy, also after a failed check):
     * encoded requests and answers, the batch being pushed. */
    struct spro_buf req, ans, one_op, one_answer;
    struct spro_local_batch *batch;
    struct sim_counts c;
};

/* ---- Random numbers (splitmix64) ---- */

static uint64_t rnd(struct sim *S)
{
    uint64_t z = (S->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t below(struct sim *S, size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd(S) % n);
}

static bool chance(struct sim *S, unsigned pct)
{
    return rnd(S) % 100 < pct;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return p;
}

/* ---- Small helpers ---- */

static bool bytes_is(const struct spro_bytes *b, const char *s)
{
    size_t n = strlen(s);
    return b->len == n && (n == 0 || memcmp(b->p, s, n) == 0);
}

static bool bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int64_t wall_of(const struct sim *S, size_t d)
{
    return S->now_ms + S->dev[d].skew_ms;
}

/* The device whose id is b, or SIZE_MAX. */
static size_t device_of(const struct sim *S, const struct spro_bytes *b)
{
    for (size_t d = 0; d < S->cfg->devices; d++)
        if (bytes_is(b, S->dev[d].dev.id))
            return d;
    return SIZE_MAX;
}

static size_t record_of(const struct sim *S, const struct spro_bytes *b)
{
    for (size_t r = 0; r < NRECORDS; r++)
        if (bytes_is(b, S->rid[r]))
            return r;
    return SIZE_MAX;
}

static size_t field_index(const struct spro_bytes *b)
{
    for (size_t f = 0; f < NFIELDS; f++)
        if (bytes_is(b, fields[f].name))
            return f;
    return SIZE_MAX;
}

static struct op_rec *op_of(struct sim *S, size_t d, uint64_t seq)
{
    const struct device *D = &S->dev[d];
    return seq >= 1 && seq <= D->nops ? &S->ops[D->op_of_seq[seq]] : NULL;
}

/* Whether a value as received equals one as written. */
static bool value_is(const struct spro_value *w, const struct val *v)
{
    if (w->kind != v->kind)
        return false;
    switch (v->kind) {
    case SPRO_VALUE_BOOL:
        return w->b == v->b;
    case SPRO_VALUE_INT:
        return w->i == v->i;
    case SPRO_VALUE_STR:
        return bytes_eq(w->s.p, w->s.len, v->s, v->slen);
    default:
        return true;
    }
}

static struct spro_value value_of(const struct val *v)
{
    return (struct spro_value){
        .kind = v->kind, .b = v->b, .i = v->i, .s = {(const uint8_t *)v->s, v->slen}};
}

/* Encodes m, decodes it back into arena a as the other side does: *out
 * points into *buf and a. */
static void through_codec(const struct spro_msg *m, struct spro_buf *buf, struct spro_arena *a,
                          struct spro_msg *out)
{
    buf->len = 0;
    CHECK_EQ(spro_proto_encode(m, buf), 0);
    a->len = 0;
    CHECK_EQ(spro_proto_decode_sync(buf->data, buf->len, a, out), 0);
    CHECK_EQ(out->type, m->type);
}

/* ---- The reference model ---- */

/* Versions order: hlc, then origin (the device id, as strcmp). */
static int ver_cmp(const struct sim *S, uint64_t ha, size_t oa, uint64_t hb, size_t ob)
{
    if (ha != hb)
        return ha < hb ? -1 : 1;
    return strcmp(S->dev[oa].dev.id, S->dev[ob].dev.id);
}

static int edit_ver_cmp(const struct sim *S, size_t a, size_t b)
{
    const struct op_rec *x = &S->ops[S->edits[a].op], *y = &S->ops[S->edits[b].op];
    return ver_cmp(S, x->ver_hlc, x->dev, y->ver_hlc, y->dev);
}

/* The siblings the model expects of (rec, field): its applied edits that
 * no applied edit superseded, sorted by version.  *n may exceed MAX_SIBS
 * (out holds 2 * MAX_SIBS). */
static void expected(const struct sim *S, size_t rec, size_t field, size_t out[2 * MAX_SIBS],
                     size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < S->nedits && *n < 2 * MAX_SIBS; i++) {
        const struct edit_rec *e = &S->edits[i];
        if (e->rec != rec || e->field != field || e->superseded ||
            S->ops[e->op].state != OP_APPLIED)
            continue;
        size_t k = (*n)++;
        for (; k > 0 && edit_ver_cmp(S, out[k - 1], i) > 0; k--)
            out[k] = out[k - 1];
        out[k] = i;
    }
}

/* Whether the wire siblings s[0..n) are exactly the model's edits
 * want[0..nwant): versions, authors and value bytes, in order. */
static bool siblings_match(const struct sim *S, const struct spro_wire_sibling *s, size_t n,
                           const size_t *want, size_t nwant)
{
    if (n != nwant)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct edit_rec *e = &S->edits[want[i]];
        const struct op_rec *o = &S->ops[e->op];
        const struct device *D = &S->dev[o->dev];
        if (s[i].ver.hlc != o->ver_hlc || !bytes_is(&s[i].ver.origin, D->dev.id) ||
            !bytes_is(&s[i].by, D->dev.user) ||
            !bytes_eq(s[i].val.raw.p, s[i].val.raw.len, e->raw, e->rawlen) ||
            !value_is(&s[i].val, &e->v))
            return false;
    }
    return true;
}

static void print_siblings(const struct sim *S, const char *what, const struct spro_wire_sibling *s,
                           size_t n, const size_t *want, size_t nwant)
{
    fprintf(stderr, "  %s: %zu siblings:", what, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %" PRIu64 "/d%zu", s[i].ver.hlc, device_of(S, &s[i].ver.origin));
    fprintf(stderr, "\n  the model: %zu:", nwant);
    for (size_t i = 0; i < nwant; i++) {
        const struct op_rec *o = &S->ops[S->edits[want[i]].op];
        fprintf(stderr, " %" PRIu64 "/d%zu (op %zu:%" PRIu64 ")", o->ver_hlc, o->dev, o->dev,
                o->seq);
    }
    fputc('\n', stderr);
}

/* The applied edit of (rec, field) with version (hlc, origin), or
 * SIZE_MAX. */
static size_t edit_by_version(const struct sim *S, size_t rec, size_t field, uint64_t hlc,
                              size_t origin)
{
    for (size_t i = 0; i < S->nedits; i++) {
        const struct edit_rec *x = &S->edits[i];
        const struct op_rec *p = &S->ops[x->op];
        if (p->state == OP_APPLIED && p->dev == origin && p->ver_hlc == hlc && x->rec == rec &&
            x->field == field)
            return i;
    }
    return SIZE_MAX;
}

/* The edit that base version b of edit e (written by device d) names:
 * *out, or SIZE_MAX for the version of an op the server rejected (it names
 * nothing).  The engine reads a version of d's own origin whose hlc is one
 * of d's clamped ops as naming that op's version. */
static void base_edit(const struct sim *S, size_t d, const struct edit_rec *e,
                      const struct base_ver *b, size_t *out)
{
    uint64_t hlc = b->hlc;
    *out = SIZE_MAX;
    if (b->origin == d)
        for (uint64_t seq = 1; seq <= S->dev[d].nops; seq++) {
            const struct op_rec *p = &S->ops[S->dev[d].op_of_seq[seq]];
            if (p->state == OP_UNSENT || p->op_hlc != hlc)
                continue;
            if (p->state == OP_REJECTED)
                return;
            hlc = p->ver_hlc;
            break;
        }
    *out = edit_by_version(S, e->rec, e->field, hlc, b->origin);
    if (*out == SIZE_MAX)
        CHECK__FAIL("a base names %" PRIu64 "/d%zu, which no applied edit of %s wrote", b->hlc,
                    b->origin, fields[e->field].name);
}

/* An applied edit of device d lists b in its base: what b names is
 * superseded. */
static void supersede(struct sim *S, size_t d, const struct edit_rec *e, const struct base_ver *b)
{
    size_t x;
    base_edit(S, d, e, b, &x);
    if (x != SIZE_MAX)
        S->edits[x].superseded = true;
}

/* The first delivery of op o to the server, answered res: what was sent is
 * kept, the answer checked against the model, which then applies it. */
static void model_first(struct sim *S, struct op_rec *o, const struct spro_wire_op *w,
                        const struct spro_wire_result *res)
{
    struct device *D = &S->dev[o->dev];
    CHECK_EQ(w->seq, D->server_hw + 1); /* ops arrive in outbox order */
    D->server_hw = w->seq;
    o->pulls = D->pulls;
    CHECK(bytes_is(&w->rtype, RTYPE));
    CHECK_EQ(w->nset, o->n);
    o->op_hlc = w->hlc;
    for (size_t k = 0; k < w->nset; k++) {
        const struct spro_wire_edit *we = &w->set[k];
        size_t f = field_index(&we->name);
        struct edit_rec *e = NULL;
        for (size_t i = o->first; i < o->first + o->n; i++)
            if (S->edits[i].field == f)
                e = &S->edits[i];
        CHECK(e != NULL);
        CHECK(bytes_is(&w->rid, S->rid[e->rec]) && bytes_is(&w->ben, S->rid[e->rec]));
        CHECK(value_is(&we->val, &e->v));
        CHECK(we->val.raw.len <= sizeof e->raw);
        memcpy(e->raw, we->val.raw.p, we->val.raw.len);
        e->rawlen = we->val.raw.len;
        CHECK(we->nbase <= MAX_SIBS + 1);
        e->nbase = we->nbase;
        for (size_t b = 0; b < we->nbase; b++) {
            e->base[b].hlc = we->base[b].hlc;
            e->base[b].origin = device_of(S, &we->base[b].origin);
            CHECK(e->base[b].origin != SIZE_MAX);
        }
        if (e->resolve)
            CHECK_INT(e->nbase, >=, 2);
    }

    if (res->status == SPRO_RESULT_REJECT) {
        o->state = OP_REJECTED;
        CHECK(res->code.len <= SPRO_PROTO_MAX_CODE);
        memcpy(o->code, res->code.p, res->code.len);
        o->code[res->code.len] = '\0';
        CHECK_STR(o->code, o->bad ? SPRO_REJECT_BAD_VALUE : SPRO_REJECT_TOO_MANY_SIBLINGS);
        S->c.rejects++;
        return;
    }
    CHECK(!o->bad);
    CHECK(bytes_is(&res->ver.origin, D->dev.id));
    o->ver_hlc = res->ver.hlc;
    o->state = OP_APPLIED;
    S->c.clamped += o->ver_hlc != o->op_hlc;
    if (o->ver_hlc != o->op_hlc)
        CHECK_EQ(o->dev, 0); /* only device 0 runs beyond the drift */
    for (size_t i = o->first; i < o->first + o->n; i++)
        for (size_t b = 0; b < S->edits[i].nbase; b++) {
            supersede(S, o->dev, &S->edits[i], &S->edits[i].base[b]);
            if (check__failed)
                return;
        }

    /* The answer: an ack leaves each field with this edit alone; a conflict
     * lists the fields left with several siblings, all of them. */
    size_t nconf = 0;
    for (size_t i = o->first; i < o->first + o->n; i++) {
        const struct edit_rec *e = &S->edits[i];
        size_t want[2 * MAX_SIBS], n;
        expected(S, e->rec, e->field, want, &n);
        CHECK_INT(n, >=, 1);
        CHECK_INT(n, <=, MAX_SIBS);
        bool here = false;
        for (size_t k = 0; k < n; k++)
            here |= want[k] == i;
        CHECK(here);
        const struct spro_wire_field *wf = NULL;
        for (size_t k = 0; res->status == SPRO_RESULT_CONFLICT && k < res->nfields; k++)
            if (bytes_is(&res->fields[k].name, fields[e->field].name))
                wf = &res->fields[k];
        if (n == 1) {
            CHECK_EQ(want[0], i);
            CHECK(wf == NULL);
            continue;
        }
        nconf++;
        CHECK(wf != NULL);
        if (!siblings_match(S, wf->siblings, wf->nsiblings, want, n)) {
            print_siblings(S, "conflict answer", wf->siblings, wf->nsiblings, want, n);
            CHECK__FAIL("op %zu:%" PRIu64 ": the conflict answer of %s is not the model's", o->dev,
                        o->seq, fields[e->field].name);
        }
    }
    if (res->status == SPRO_RESULT_CONFLICT) {
        CHECK_EQ(res->nfields, nconf);
        S->c.conflicts++;
    } else {
        CHECK_EQ(nconf, 0);
        S->c.acks++;
    }
}

/* The server answered push p of device d with reply r. */
static void model_answers(struct sim *S, size_t d, const struct spro_msg_push *p,
                          const struct spro_msg_push_reply *r)
{
    CHECK_EQ(r->nresults, p->nops);
    struct spro_buf *ob = &S->one_op, *ab = &S->one_answer;
    for (size_t i = 0; i < p->nops; i++) {
        const struct spro_wire_op *w = &p->ops[i];
        const struct spro_wire_result *res = &r->results[i];
        CHECK_EQ(res->seq, w->seq);
        struct op_rec *o = op_of(S, d, w->seq);
        CHECK(o != NULL);
        struct spro_msg one = {.type = SPRO_MSG_PUSH};
        one.u.push = (struct spro_msg_push){w, 1};
        struct spro_msg ans = {.type = SPRO_MSG_PUSH_REPLY};
        ans.u.push_reply = (struct spro_msg_push_reply){res, 1};
        ob->len = ab->len = 0;
        CHECK_EQ(spro_proto_encode(&one, ob), 0);
        CHECK_EQ(spro_proto_encode(&ans, ab), 0);
        if (o->state == OP_UNSENT) {
            spro_buf_append(&o->sent, ob->data, ob->len);
            spro_buf_append(&o->answer, ab->data, ab->len);
            model_first(S, o, w, res);
        } else {
            /* Sent again: the same op, answered as the first time. */
            S->c.retried_ops++;
            CHECK_BYTES(ob->data, ob->len, o->sent.data, o->sent.len);
            CHECK_BYTES(ab->data, ab->len, o->answer.data, o->answer.len);
        }
        if (check__failed) {
            fprintf(stderr, "  op %zu:%" PRIu64 "\n", d, w->seq);
            return;
        }
    }
}

/* ---- Devices: edits ---- */

static void random_value(struct sim *S, enum ftype t, bool bad, size_t id, struct val *v)
{
    static const char *const words[] = {"Léa",    "Zoé",        "Noël",          "Martin",
                                        "Dubois", "décrochage", "apprentissage", "ÉPIDE"};
    memset(v, 0, sizeof *v);
    if (bad) { /* the kind the field's type refuses */
        if (t == F_BOOL) {
            v->kind = SPRO_VALUE_STR;
            v->slen = (size_t)snprintf(v->s, sizeof v->s, "oui");
        } else {
            v->kind = SPRO_VALUE_INT;
            v->i = (int64_t)id;
        }
        return;
    }
    unsigned r = (unsigned)below(S, 100);
    if (r < 8) {
        v->kind = SPRO_VALUE_NIL;
    } else if (t == F_BOOL || (t == F_ANY && r < 30)) {
        v->kind = SPRO_VALUE_BOOL;
        v->b = chance(S, 50);
    } else if (t == F_ANY && r < 60) {
        v->kind = SPRO_VALUE_INT;
        v->i = (int64_t)rnd(S) >> below(S, 64);
    } else {
        v->kind = SPRO_VALUE_STR;
        int n = snprintf(v->s, sizeof v->s, "%s #%zu", words[below(S, 8)], id);
        v->slen = (size_t)n;
        if (chance(S, 5)) { /* str 8 and str 16 forms too */
            size_t to = 40 + below(S, VAL_MAX - 41);
            while (v->slen < to)
                v->s[v->slen++] = (char)('a' + below(S, 26));
            v->s[v->slen] = '\0';
        }
    }
}

/* A field in conflict on a device, collected by spro_local_conflicts. */
struct conflicts {
    const struct sim *S;
    size_t n;
    size_t rec[NRECORDS * NFIELDS], field[NRECORDS * NFIELDS];
};

static int on_conflict(void *arg, const struct spro_local_record *r,
                       const struct spro_local_field *f)
{
    struct conflicts *c = arg;
    struct spro_bytes rid = {(const uint8_t *)r->rid, strlen(r->rid)};
    struct spro_bytes name = {(const uint8_t *)f->name, strlen(f->name)};
    size_t rec = record_of(c->S, &rid), field = field_index(&name);
    if (rec == SIZE_MAX || field == SIZE_MAX || c->n == NRECORDS * NFIELDS)
        return -1;
    c->rec[c->n] = rec;
    c->field[c->n++] = field;
    return 0;
}

/* Device d writes one op: the given fields of record rec, or new random
 * ones; create makes the record with every field. */
static void write_op(struct sim *S, size_t d, size_t rec, bool create, const size_t *fl, size_t nf,
                     bool resolve, bool bad)
{
    struct device *D = &S->dev[d];
    CHECK(S->nops < S->capops && S->nedits + nf <= S->capedits && D->nops + 1 < S->capops);
    struct op_rec *o = &S->ops[S->nops];
    memset(o, 0, sizeof *o);
    o->dev = d;
    o->first = S->nedits;
    o->n = nf;
    o->bad = bad;
    struct spro_local_set set[NFIELDS];
    for (size_t k = 0; k < nf; k++) {
        struct edit_rec *e = &S->edits[S->nedits + k];
        memset(e, 0, sizeof *e);
        e->op = S->nops;
        e->rec = rec;
        e->field = fl[k];
        e->resolve = resolve;
        random_value(S, fields[fl[k]].type, bad && k == 0, S->nedits + k, &e->v);
        set[k] = (struct spro_local_set){fields[fl[k]].name, value_of(&e->v)};
    }
    struct spro_local_edit le = {RTYPE, S->rid[rec], S->rid[rec], create, set, nf};
    char why[512] = "";
    uint64_t seq = 0;
    int rc = spro_local_write(D->l, &le, 1, (uint64_t)wall_of(S, d), &seq, why, sizeof why);
    if (rc != 0)
        CHECK__FAIL("device %zu cannot write: %s (%s)", d, why, spro_strerror(rc));
    CHECK_EQ(seq, D->nops + 1);
    o->seq = seq;
    D->op_of_seq[++D->nops] = S->nops++;
    S->nedits += nf;
    S->c.ops++;
    S->c.edits += nf;
    S->c.resolutions += resolve;
    S->c.bad_values += bad;

    /* The device shows what it wrote at once. */
    struct spro_local_record *r;
    rc = spro_local_get(D->l, RTYPE, S->rid[rec], &r, why, sizeof why);
    if (rc != 0)
        CHECK__FAIL("device %zu cannot read its record: %s", d, why);
    size_t seen = 0;
    for (size_t i = 0; i < r->nfields; i++)
        for (size_t k = 0; k < nf; k++)
            if (strcmp(r->fields[i].name, fields[fl[k]].name) == 0)
                seen += r->fields[i].pending && !r->fields[i].conflict &&
                        r->fields[i].shown == &r->fields[i].pending_val &&
                        value_is(r->fields[i].shown, &S->edits[o->first + k].v);
    spro_local_record_free(r);
    CHECK_EQ(seen, nf);
}

/* A random edit of device d. */
static void random_edit(struct sim *S, size_t d)
{
    struct device *D = &S->dev[d];
    size_t fl[2], nf = 1, rec;
    bool resolve = false;
    if (chance(S, S->cfg->resolve_pct)) {
        struct conflicts c = {.S = S};
        char why[512] = "";
        int rc = spro_local_conflicts(D->l, on_conflict, &c, why, sizeof why);
        if (rc != 0)
            CHECK__FAIL("device %zu cannot list its conflicts: %s (%d)", d, why, rc);
        if (c.n > 0) {
            size_t k = below(S, c.n);
            rec = c.rec[k];
            fl[0] = c.field[k];
            resolve = true;
        }
    }
    if (!resolve) {
        rec = below(S, NRECORDS);
        fl[0] = below(S, NFIELDS);
        if (chance(S, 20)) {
            fl[1] = (fl[0] + 1 + below(S, NFIELDS - 1)) % NFIELDS;
            nf = 2;
        }
    }
    /* A value the schema refuses: the op goes to the quarantine whole. */
    bool bad = !resolve && fields[fl[0]].type != F_ANY && chance(S, S->cfg->bad_pct);
    write_op(S, d, rec, false, fl, nf, resolve, bad);
}

/* ---- Devices: sync ---- */

struct reject_ctx {
    struct sim *S;
    size_t d;
};

/* The device reports an op the server rejected (spro_local_push_done). */
static void on_reject(void *arg, const struct spro_wire_op *w, const struct spro_bytes *code)
{
    struct reject_ctx *rc = arg;
    struct op_rec *o = op_of(rc->S, rc->d, w->seq);
    CHECK(o != NULL);
    o->quarantined++;
    CHECK(o->state == OP_REJECTED);
    CHECK(bytes_is(code, o->code));
}

/* Whether device d has an op the server answered whose answer the device
 * has not stored (lost on the way). */
static bool answer_missing(struct sim *S, size_t d)
{
    for (uint64_t seq = 1; seq <= S->dev[d].nops; seq++) {
        const struct op_rec *o = op_of(S, d, seq);
        if (o->state != OP_UNSENT && o->stored == 0)
            return true;
    }
    return false;
}

/*
 * What device d stores of the server's state: every sibling is a write the
 * server made (an applied edit of that field, its author and value bytes),
 * and knowledge never goes back: no field holds a version that a version
 * the device stored earlier, or stores beside it, had superseded (the
 * server never shows a superseded version again).  Checked after every
 * answer the device stores.
 */
static void check_knowledge(struct sim *S, size_t d)
{
    struct device *D = &S->dev[d];
    char why[512] = "";
    for (size_t rec = 0; rec < NRECORDS; rec++) {
        struct spro_local_record *r;
        int rc = spro_local_get(D->l, RTYPE, S->rid[rec], &r, why, sizeof why);
        if (rc == SPRO_ENOENT)
            continue; /* not pulled yet */
        if (rc != 0)
            CHECK__FAIL("device %zu: record %zu: %s", d, rec, why);
        size_t sib[NFIELDS][MAX_SIBS], nsib[NFIELDS] = {0};
        char bad[SPRO_LOCAL_NAME_MAX + 1] = "";
        for (size_t k = 0; k < r->nfields && bad[0] == '\0'; k++) {
            const struct spro_local_field *lf = &r->fields[k];
            struct spro_bytes name = {(const uint8_t *)lf->name, strlen(lf->name)};
            size_t f = field_index(&name);
            for (size_t i = 0; f != SIZE_MAX && i < lf->nsiblings && i < MAX_SIBS; i++) {
                const struct spro_local_sibling *ls = &lf->siblings[i];
                struct spro_bytes origin = {(const uint8_t *)ls->origin, strlen(ls->origin)};
                size_t o = device_of(S, &origin);
                size_t x = o == SIZE_MAX ? SIZE_MAX : edit_by_version(S, rec, f, ls->hlc, o);
                if (x == SIZE_MAX || strcmp(ls->by, S->dev[o].dev.user) != 0 ||
                    !bytes_eq(ls->val.raw.p, ls->val.raw.len, S->edits[x].raw,
                              S->edits[x].rawlen)) {
                    snprintf(bad, sizeof bad, "%s", lf->name);
                    break;
                }
                sib[f][nsib[f]++] = x;
            }
            if (f == SIZE_MAX || lf->nsiblings > MAX_SIBS)
                snprintf(bad, sizeof bad, "%s", lf->name);
        }
        spro_local_record_free(r);
        if (bad[0] != '\0')
            CHECK__FAIL("device %zu holds a sibling of record %zu, %s that the server never "
                        "wrote",
                        d, rec, bad);
        for (size_t f = 0; f < NFIELDS; f++)
            for (size_t i = 0; i < nsib[f]; i++) {
                const struct edit_rec *e = &S->edits[sib[f][i]];
                for (size_t b = 0; b < e->nbase; b++) {
                    size_t x;
                    base_edit(S, S->ops[e->op].dev, e, &e->base[b], &x);
                    if (check__failed)
                        return;
                    if (x != SIZE_MAX)
                        D->gone[x] = true;
                }
            }
        for (size_t f = 0; f < NFIELDS; f++)
            for (size_t i = 0; i < nsib[f]; i++)
                if (D->gone[sib[f][i]]) {
                    const struct op_rec *o = &S->ops[S->edits[sib[f][i]].op];
                    CHECK__FAIL("device %zu holds %" PRIu64 "/d%zu (op %zu:%" PRIu64
                                ") in record %zu, %s, after storing a version that "
                                "superseded it",
                                d, o->ver_hlc, o->dev, o->dev, o->seq, rec, fields[f].name);
                }
    }
}

/* Device d stored the answer r to its push: each field the answer's ops
 * wrote holds what the last of them says (an ack: the op's value alone
 * under its version; a conflict: the answer's siblings).  Not checked
 * when the device stored a pull answer since it first sent the op: it then
 * keeps the pulled state, which may be newer than the answer (the op
 * applied, its answer lost, the field changed again). */
static void check_stored_answer(struct sim *S, size_t d, const struct spro_msg_push_reply *r)
{
    struct device *D = &S->dev[d];
    char why[512] = "";
    for (size_t i = 0; i < r->nresults; i++) {
        const struct spro_wire_result *res = &r->results[i];
        const struct op_rec *o = op_of(S, d, res->seq);
        if (res->status == SPRO_RESULT_REJECT || o->sent_pulls != D->pulls)
            continue;
        for (size_t k = o->first; k < o->first + o->n; k++) {
            const struct edit_rec *e = &S->edits[k];
            bool later = false; /* a later result of this answer wrote the field */
            for (size_t j = i + 1; j < r->nresults && !later; j++) {
                const struct op_rec *p = op_of(S, d, r->results[j].seq);
                for (size_t m = p->first;
                     m < p->first + p->n && r->results[j].status != SPRO_RESULT_REJECT; m++)
                    later |= S->edits[m].rec == e->rec && S->edits[m].field == e->field;
            }
            if (later)
                continue;
            struct spro_wire_sibling one = {.ver = res->ver};
            one.val.raw = (struct spro_bytes){e->raw, e->rawlen};
            one.by = (struct spro_bytes){(const uint8_t *)D->dev.user, strlen(D->dev.user)};
            const struct spro_wire_sibling *want = &one;
            size_t nwant = 1;
            for (size_t j = 0; res->status == SPRO_RESULT_CONFLICT && j < res->nfields; j++)
                if (bytes_is(&res->fields[j].name, fields[e->field].name)) {
                    want = res->fields[j].siblings;
                    nwant = res->fields[j].nsiblings;
                }
            struct spro_local_record *lr;
            int rc = spro_local_get(D->l, RTYPE, S->rid[e->rec], &lr, why, sizeof why);
            if (rc != 0)
                CHECK__FAIL("device %zu: record %zu: %s", d, e->rec, why);
            bool same = false;
            for (size_t f = 0; f < lr->nfields; f++) {
                const struct spro_local_field *lf = &lr->fields[f];
                if (strcmp(lf->name, fields[e->field].name) != 0)
                    continue;
                same = lf->nsiblings == nwant;
                for (size_t m = 0; same && m < nwant; m++)
                    same = lf->siblings[m].hlc == want[m].ver.hlc &&
                           bytes_is(&want[m].ver.origin, lf->siblings[m].origin) &&
                           bytes_is(&want[m].by, lf->siblings[m].by) &&
                           bytes_eq(lf->siblings[m].val.raw.p, lf->siblings[m].val.raw.len,
                                    want[m].val.raw.p, want[m].val.raw.len);
            }
            spro_local_record_free(lr);
            if (!same)
                CHECK__FAIL("device %zu did not store the answer to its op %" PRIu64
                            " for record %zu, %s",
                            d, res->seq, e->rec, fields[e->field].name);
        }
    }
}

/* Device d sends its next push, if its outbox holds any op (*empty else).
 * With faults, the push may reach the server cut to a prefix of its ops
 * (none included: the connection dropped first), and the answer may be
 * lost; with lose, the answer is lost. */
static void push_once(struct sim *S, size_t d, bool faults, bool lose, bool *empty)
{
    struct device *D = &S->dev[d];
    char why[512] = "";
    *empty = false;
    spro_local_batch_free(S->batch);
    S->batch = NULL;
    int rc = spro_local_push_next(D->l, SPRO_SYNC_MAX_OPS, &S->batch, why, sizeof why);
    if (rc != 0)
        CHECK__FAIL("device %zu: the next push: %s", d, why);
    struct spro_local_batch *b = S->batch;
    if (b == NULL) {
        *empty = true;
        return;
    }
    struct spro_msg msg = *spro_local_batch_msg(b);
    CHECK_EQ(msg.type, SPRO_MSG_PUSH);
    for (size_t i = 0; i < msg.u.push.nops; i++) { /* the device notes the first sending */
        struct op_rec *o = op_of(S, d, msg.u.push.ops[i].seq);
        if (!o->sent_once)
            o->sent_once = true, o->sent_pulls = D->pulls;
    }
    if (faults && chance(S, S->cfg->cut_pct)) {
        msg.u.push.nops = below(S, msg.u.push.nops);
        S->c.cut_pushes++;
    }
    if (msg.u.push.nops == 0)
        return;
    bool lost = lose || (faults && chance(S, S->cfg->lost_pct));
    S->c.pushes++;

    /* To the server, as it decodes the body; its answer back the same way. */
    struct spro_msg in, out = {.type = SPRO_MSG_PUSH_REPLY}, back;
    through_codec(&msg, &S->req, &S->srv, &in);
    if (check__failed)
        return;
    rc =
        spro_sync_push(S->dd, &D->dev, &in.u.push, S->now_ms, DRIFT_MS, &S->srv, &out.u.push_reply);
    if (rc != 0)
        CHECK__FAIL("device %zu: push of %zu ops: %s", d, in.u.push.nops, spro_strerror(rc));
    model_answers(S, d, &in.u.push, &out.u.push_reply);
    if (check__failed)
        return;
    through_codec(&out, &S->ans, &S->devar, &back);
    if (check__failed)
        return;
    if (lost) {
        S->c.lost_answers++;
    } else {
        struct spro_local_push_stats st = {0};
        struct reject_ctx ctx = {S, d};
        rc = spro_local_push_done(D->l, b, &back.u.push_reply, (uint64_t)wall_of(S, d), &st,
                                  on_reject, &ctx, why, sizeof why);
        if (rc != 0)
            CHECK__FAIL("device %zu cannot store its answer: %s", d, why);
        CHECK_EQ(st.acked + st.conflicts + st.rejected, back.u.push_reply.nresults);
        CHECK_EQ(st.unknown, 0);
        for (size_t i = 0; i < back.u.push_reply.nresults; i++)
            op_of(S, d, back.u.push_reply.results[i].seq)->stored++;
        check_stored_answer(S, d, &back.u.push_reply);
        if (!check__failed)
            check_knowledge(S, d);
    }
}

/* Device d pulls pages of 1 to 3 records until the server has no more.
 * With faults, it may stop between pages, or lose a page's answer (and
 * stop: nothing of that page stored, cursor included). */
static void pull_pages(struct sim *S, size_t d, bool faults)
{
    struct device *D = &S->dev[d];
    char why[512] = "";
    for (size_t page = 0;; page++) {
        CHECK(page < 1000);
        uint8_t cur[SPRO_SYNC_MAX_CURSOR];
        size_t clen;
        int rc = spro_local_cursor(D->l, cur, &clen, why, sizeof why);
        if (rc != 0)
            CHECK__FAIL("device %zu: cursor: %s", d, why);
        struct spro_msg msg = {.type = SPRO_MSG_PULL}, in, out = {.type = SPRO_MSG_PULL_REPLY},
                        back;
        msg.u.pull = (struct spro_msg_pull){{cur, clen}, (uint32_t)(1 + below(S, 3))};
        through_codec(&msg, &S->req, &S->srv, &in);
        if (check__failed)
            return;
        rc = spro_sync_pull(S->dd, &D->dev, &in.u.pull, ANSWER_MAX, &S->srv, &out.u.pull_reply);
        if (rc != 0)
            CHECK__FAIL("device %zu: pull: %s", d, spro_strerror(rc));
        CHECK_INT(out.u.pull_reply.nrecords, <=, msg.u.pull.limit);
        through_codec(&out, &S->ans, &S->devar, &back);
        if (check__failed)
            return;
        CHECK_INT(S->ans.len, <=, ANSWER_MAX);
        S->c.pages++;
        bool lost = faults && chance(S, S->cfg->page_lost_pct);
        if (lost) {
            S->c.lost_pages++;
            break;
        }
        rc = spro_local_pull_apply(D->l, &back.u.pull_reply, (uint64_t)wall_of(S, d), why,
                                   sizeof why);
        if (rc != 0)
            CHECK__FAIL("device %zu cannot store a pull answer: %s", d, why);
        D->pulls++;
        check_knowledge(S, d);
        if (check__failed)
            return;
        if (!back.u.pull_reply.more)
            break;
        CHECK_INT(back.u.pull_reply.nrecords, >, 0);
        if (faults && chance(S, S->cfg->page_cut_pct)) {
            S->c.cut_pulls++;
            break;
        }
    }
}

/* A sync of device d, with faults: one push, then pages of pull.  As
 * spro-client, the device does not pull while an answer is missing. */
static void random_sync(struct sim *S, size_t d)
{
    bool empty;
    push_once(S, d, true, false, &empty);
    if (check__failed)
        return;
    if (!S->cfg->pull_after_lost && answer_missing(S, d)) {
        S->c.skipped_pulls++;
        return;
    }
    pull_pages(S, d, true);
}

/* Device d pushes until its outbox is empty, without faults. */
static void push_all(struct sim *S, size_t d)
{
    bool empty = false;
    for (size_t i = 0; !empty; i++) {
        CHECK(i < 100);
        push_once(S, d, false, false, &empty);
        if (check__failed)
            return;
    }
}

/* ---- The server's state, and the checks ---- */

/* Reads the server's whole state into S->view: a first pull of the
 * observer, through the codec. */
static void server_view(struct sim *S)
{
    struct spro_msg_pull p = {{NULL, 0}, SPRO_SYNC_MAX_RECORDS};
    struct spro_msg out = {.type = SPRO_MSG_PULL_REPLY}, back;
    S->srv.len = 0;
    int rc = spro_sync_pull(S->dd, &S->observer, &p, VIEW_MAX, &S->srv, &out.u.pull_reply);
    if (rc != 0)
        CHECK__FAIL("observer: pull: %s", spro_strerror(rc));
    CHECK(!out.u.pull_reply.more);
    through_codec(&out, &S->view_buf, &S->viewar, &back);
    if (check__failed)
        return;
    S->view = back.u.pull_reply;
}

/* The server's state is exactly the model's. */
static void check_server(struct sim *S)
{
    server_view(S);
    if (check__failed)
        return;
    CHECK_EQ(S->view.nrecords, NRECORDS);
    for (size_t i = 0; i < S->view.nrecords; i++) {
        const struct spro_wire_record *w = &S->view.records[i];
        size_t rec = record_of(S, &w->rid);
        CHECK(rec != SIZE_MAX && !w->removed);
        CHECK(bytes_is(&w->rtype, RTYPE) && bytes_is(&w->ben, S->rid[rec]));
        for (size_t k = 0; k < w->nfields; k++)
            CHECK(field_index(&w->fields[k].name) != SIZE_MAX);
        for (size_t f = 0; f < NFIELDS; f++) {
            const struct spro_wire_field *wf = NULL;
            for (size_t k = 0; k < w->nfields; k++)
                if (bytes_is(&w->fields[k].name, fields[f].name))
                    wf = &w->fields[k];
            size_t want[2 * MAX_SIBS], n;
            expected(S, rec, f, want, &n);
            const struct spro_wire_sibling *s = wf ? wf->siblings : NULL;
            size_t ns = wf ? wf->nsiblings : 0;
            if (!siblings_match(S, s, ns, want, n)) {
                print_siblings(S, "server", s, ns, want, n);
                CHECK__FAIL("record %zu, %s: the server's siblings are not the model's", rec,
                            fields[f].name);
            }
        }
    }
}

static int count_record(void *arg, const char *rtype, const char *rid, const char *ben,
                        const char *name)
{
    (void)rtype, (void)rid, (void)ben, (void)name;
    (*(size_t *)arg)++;
    return 0;
}

/* Device d's replica equals the server's state (S->view) and shows it. */
static void check_replica(struct sim *S, size_t d)
{
    struct device *D = &S->dev[d];
    char why[512] = "";
    size_t nrec = 0, outbox = 1, quarantine = 0, rejected = 0;
    CHECK_EQ(spro_local_list(D->l, NULL, count_record, &nrec, why, sizeof why), 0);
    CHECK_EQ(nrec, S->view.nrecords);
    CHECK_EQ(spro_local_counts(D->l, &outbox, &quarantine), 0);
    CHECK_EQ(outbox, 0);
    for (uint64_t seq = 1; seq <= D->nops; seq++)
        rejected += op_of(S, d, seq)->state == OP_REJECTED;
    CHECK_EQ(quarantine, rejected);
    for (size_t i = 0; i < S->view.nrecords; i++) {
        const struct spro_wire_record *w = &S->view.records[i];
        char rid[SPRO_LOCAL_UUID_CHARS + 1];
        snprintf(rid, sizeof rid, "%.*s", (int)w->rid.len, (const char *)w->rid.p);
        struct spro_local_record *r;
        int rc = spro_local_get(D->l, RTYPE, rid, &r, why, sizeof why);
        if (rc != 0)
            CHECK__FAIL("device %zu: record %s: %s", d, rid, why);
        bool same = r->nfields == w->nfields && strcmp(r->ben, rid) == 0;
        for (size_t k = 0; same && k < r->nfields; k++) {
            const struct spro_local_field *lf = &r->fields[k];
            const struct spro_wire_field *wf = NULL;
            for (size_t j = 0; j < w->nfields; j++)
                if (bytes_is(&w->fields[j].name, lf->name))
                    wf = &w->fields[j];
            same = wf != NULL && !lf->pending && lf->nsiblings == wf->nsiblings &&
                   lf->conflict == (lf->nsiblings >= 2) &&
                   lf->shown == &lf->siblings[lf->nsiblings - 1].val;
            for (size_t s = 0; same && s < lf->nsiblings; s++) {
                const struct spro_local_sibling *ls = &lf->siblings[s];
                const struct spro_wire_sibling *ws = &wf->siblings[s];
                same = ls->hlc == ws->ver.hlc && bytes_is(&ws->ver.origin, ls->origin) &&
                       bytes_is(&ws->by, ls->by) &&
                       bytes_eq(ls->val.raw.p, ls->val.raw.len, ws->val.raw.p, ws->val.raw.len);
            }
            if (!same) {
                fprintf(stderr, "  device %zu, record %s, field %s: %zu siblings here:", d, rid,
                        lf->name, lf->nsiblings);
                for (size_t s = 0; s < lf->nsiblings; s++)
                    fprintf(stderr, " %" PRIu64 "/%.8s", lf->siblings[s].hlc,
                            lf->siblings[s].origin);
                fprintf(stderr, "; on the server:");
                for (size_t s = 0; wf != NULL && s < wf->nsiblings; s++)
                    fprintf(stderr, " %" PRIu64 "/%.8s", wf->siblings[s].ver.hlc,
                            (const char *)wf->siblings[s].ver.origin.p);
                fputc('\n', stderr);
            }
        }
        spro_local_record_free(r);
        if (!same)
            CHECK__FAIL("device %zu: record %s differs from the server's", d, rid);
    }
}

/* Every edit is accounted for: none vanished. */
static void classify(struct sim *S)
{
    for (size_t i = 0; i < S->nops; i++) {
        const struct op_rec *o = &S->ops[i];
        if (o->state == OP_UNSENT)
            CHECK__FAIL("op %zu:%" PRIu64 " never reached the server", o->dev, o->seq);
        if (o->stored != 1)
            CHECK__FAIL("device %zu stored %u answers to its op %" PRIu64, o->dev, o->stored,
                        o->seq);
        CHECK_EQ(o->quarantined, o->state == OP_REJECTED);
    }
    for (size_t i = 0; i < S->nedits; i++) {
        const struct edit_rec *e = &S->edits[i];
        const struct op_rec *o = &S->ops[e->op];
        if (o->state == OP_REJECTED) {
            S->c.quarantined++;
            continue;
        }
        if (e->superseded) {
            S->c.superseded++;
            continue;
        }
        size_t want[2 * MAX_SIBS], n;
        expected(S, e->rec, e->field, want, &n);
        if (n == 1)
            S->c.current++;
        else
            S->c.kept_sibling++;
    }
    CHECK_EQ(S->c.current + S->c.kept_sibling + S->c.superseded + S->c.quarantined, S->nedits);
}

/* ---- One simulation ---- */

static void enrol(struct sim *S, const char *user, struct spro_device *out)
{
    char why[512] = "";
    struct spro_ticket t;
    uint8_t pk[SPRO_KEY_BYTES], sk[SPRO_KEY_BYTES];
    if (spro_ticket_issue(S->dd, user, NOW_S, SPRO_TICKET_DEFAULT_TTL, &t, why, sizeof why) != 0)
        CHECK__FAIL("ticket for %s: %s", user, why);
    spro_crypto_dh_keypair(pk, sk);
    CHECK_EQ(spro_ticket_redeem(S->dd, t.id, t.secret, pk, NOW_MS, NOW_S + 1, out), 0);
    spro_memzero(&t, sizeof t);
    spro_memzero(sk, sizeof sk);
    CHECK_STR(out->org, ORG);
    CHECK_STR(out->user, user);
}

static void arena_init(struct spro_arena *a)
{
    a->base = xcalloc(1, ARENA_CAP);
    a->len = 0;
    a->cap = ARENA_CAP;
}

/* A data directory with one organisation, its devices and their local
 * stores, under root. */
static void sim_setup(struct sim *S, const char *root, size_t run)
{
    char why[512] = "";
    snprintf(S->dir, sizeof S->dir, "%s/run%zu", root, run);
    CHECK_EQ(mkdir(S->dir, 0700), 0);
    char dd[320];
    snprintf(dd, sizeof dd, "%s/dd", S->dir);
    if (spro_datadir_init(dd, why, sizeof why) != 0 ||
        spro_datadir_open(dd, &S->dd, why, sizeof why) != 0)
        CHECK__FAIL("cannot create %s: %s", dd, why);
    CHECK_EQ(spro_org_add(S->dd, ORG, "CIO", "cio", why, sizeof why), 0);
    for (size_t d = 0; d <= S->cfg->devices; d++) {
        char user[16];
        snprintf(user, sizeof user, "u%zu", d);
        CHECK_EQ(spro_user_add(S->dd, user, ORG, "counsellor", why, sizeof why), 0);
        enrol(S, user, d < S->cfg->devices ? &S->dev[d].dev : &S->observer);
        if (check__failed)
            return;
    }
    for (size_t d = 0; d < S->cfg->devices; d++) {
        struct device *D = &S->dev[d];
        snprintf(D->dir, sizeof D->dir, "%s/dev%zu", S->dir, d);
        CHECK_EQ(mkdir(D->dir, 0700), 0);
        struct spro_local_identity id = {D->dev.id, D->dev.user, 1};
        if (spro_local_open(&D->l, D->dir, &id, why, sizeof why) != 0)
            CHECK__FAIL("device %zu: %s", d, why);
        /* Device 0 runs 10 minutes ahead (beyond the drift: its versions
         * are clamped), device 1 two minutes behind, the others within 3 s. */
        D->skew_ms = d == 0 ? 600000 : d == 1 ? -120000 : (int64_t)below(S, 6000) - 3000;
        D->op_of_seq = xcalloc(S->capops + 1, sizeof *D->op_of_seq);
        D->gone = xcalloc(S->capedits, sizeof *D->gone);
    }
    arena_init(&S->srv);
    arena_init(&S->devar);
    arena_init(&S->viewar);
}

static struct sim *sim_create(const struct sim_config *cfg)
{
    struct sim *S = xcalloc(1, sizeof *S);
    S->cfg = cfg;
    S->rng = cfg->seed;
    S->now_ms = NOW_MS;
    S->capops = cfg->rounds + NRECORDS + 1;
    S->capedits = 2 * S->capops + NRECORDS * NFIELDS;
    S->ops = xcalloc(S->capops, sizeof *S->ops);
    S->edits = xcalloc(S->capedits, sizeof *S->edits);
    return S;
}

static void sim_destroy(struct sim *S)
{
    if (S == NULL)
        return;
    for (size_t d = 0; d < MAX_DEVICES; d++) {
        spro_local_close(S->dev[d].l);
        free(S->dev[d].op_of_seq);
        free(S->dev[d].gone);
    }
    spro_datadir_close(S->dd);
    for (size_t i = 0; i < S->nops; i++) {
        spro_buf_free(&S->ops[i].sent);
        spro_buf_free(&S->ops[i].answer);
    }
    free(S->ops);
    free(S->edits);
    free(S->srv.base);
    free(S->devar.base);
    free(S->viewar.base);
    spro_buf_free(&S->view_buf);
    spro_buf_free(&S->req);
    spro_buf_free(&S->ans);
    spro_buf_free(&S->one_op);
    spro_buf_free(&S->one_answer);
    spro_local_batch_free(S->batch);
    free(S);
}

/* Device 0 creates the records, every field set, and syncs; then every
 * device pulls them. */
static void sim_start(struct sim *S)
{
    size_t all[NFIELDS];
    for (size_t f = 0; f < NFIELDS; f++)
        all[f] = f;
    for (size_t r = 0; r < NRECORDS; r++) {
        /* From the seed, so that a run is the same every time. */
        uint64_t a = rnd(S), b = rnd(S);
        snprintf(S->rid[r], sizeof S->rid[r], "%08x-%04x-4%03x-8%03x-%012" PRIx64,
                 (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffffu, (unsigned)a & 0xfffu,
                 (unsigned)(b >> 48) & 0xfffu, b & 0xffffffffffffu);
        CHECK(spro_local_uuid_ok(S->rid[r]));
        write_op(S, 0, r, true, all, NFIELDS, false, false);
        if (check__failed)
            return;
    }
    push_all(S, 0);
    for (size_t d = 0; d < S->cfg->devices && !check__failed; d++)
        pull_pages(S, d, false);
    if (!check__failed)
        check_server(S);
}

static void sim_run(struct sim *S)
{
    const struct sim_config *cfg = S->cfg;
    sim_start(S);
    for (size_t r = 0; r < cfg->rounds && !check__failed; r++) {
        S->c.rounds++;
        S->now_ms += (int64_t)below(S, 40);
        size_t d = below(S, cfg->devices);
        if (chance(S, cfg->edit_pct))
            random_edit(S, d);
        else
            random_sync(S, d);
        if (!check__failed && r % 50 == 49)
            check_server(S);
    }
    if (check__failed)
        return;

    /* Everyone syncs until quiet: pushes in a random order until every
     * outbox is empty, then everyone pulls until nothing more comes. */
    size_t order[MAX_DEVICES];
    for (size_t d = 0; d < cfg->devices; d++)
        order[d] = d;
    for (size_t d = cfg->devices; d > 1; d--) {
        size_t j = below(S, d), t = order[d - 1];
        order[d - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < cfg->devices && !check__failed; i++)
        push_all(S, order[i]);
    for (size_t d = 0; d < cfg->devices && !check__failed; d++)
        pull_pages(S, d, false);
    if (check__failed)
        return;
    check_server(S);
    for (size_t d = 0; d < cfg->devices && !check__failed; d++)
        check_replica(S, d);
    if (!check__failed)
        classify(S);
}

/* ---- Runs ---- */

static char tmp_root[256];

/* Adds c to *to, member by member (all are size_t). */
static void add_counts(struct sim_counts *to, const struct sim_counts *c)
{
    const size_t *from = (const size_t *)c;
    size_t *sum = (size_t *)to;
    for (size_t i = 0; i < sizeof *c / sizeof(size_t); i++)
        sum[i] += from[i];
}

static void print_counts(const char *name, size_t runs, const struct sim_counts *c)
{
    printf("  %s: %zu runs, %zu rounds, %zu ops of %zu edits (%zu resolutions, %zu values "
           "refused by the schema)\n"
           "    first answers: %zu ack, %zu conflict, %zu reject; %zu pushes (%zu cut), %zu "
           "answers lost, %zu ops sent again and answered byte for byte as the first time, %zu "
           "clamped versions\n"
           "    %zu pull pages (%zu lost, %zu pulls stopped between pages, %zu pulls held back "
           "by a missing answer)\n"
           "    at the end: %zu edits the field's value, %zu kept as siblings in a conflict, %zu "
           "superseded by an edit that had seen them, %zu quarantined with a reason; 0 "
           "vanished\n",
           name, runs, c->rounds, c->ops, c->edits, c->resolutions, c->bad_values, c->acks,
           c->conflicts, c->rejects, c->pushes, c->cut_pushes, c->lost_answers, c->retried_ops,
           c->clamped, c->pages, c->lost_pages, c->cut_pulls, c->skipped_pulls, c->current,
           c->kept_sibling, c->superseded, c->quarantined);
}

static void run_configs(const struct sim_config *cfgs, size_t n, struct sim_counts *total)
{
    static size_t run;
    memset(total, 0, sizeof *total);
    for (size_t i = 0; i < n && !check__failed; i++) {
        struct sim *S = sim_create(&cfgs[i]);
        sim_setup(S, tmp_root, run++);
        if (!check__failed)
            sim_run(S);
        add_counts(total, &S->c);
        if (check__failed)
            fprintf(stderr, "  in %s, seed %#" PRIx64 ", round %zu\n", cfgs[i].name, cfgs[i].seed,
                    S->c.rounds);
        sim_destroy(S);
    }
}

static void test_random_convergence(void)
{
    /* name, seed, devices, rounds, edit, resolve, bad, cut, lost, page cut,
     * page lost, pull after lost */
    static const struct sim_config cfgs[] = {
        {"3 devices", 0xc0de0001, 3, 300, 55, 40, 3, 20, 15, 15, 10, false},
        {"4 devices", 0xc0de0002, 4, 300, 50, 40, 3, 20, 15, 15, 10, false},
        {"5 devices", 0xc0de0003, 5, 300, 60, 30, 3, 20, 15, 15, 10, false},
    };
    struct sim_counts t;
    run_configs(cfgs, sizeof cfgs / sizeof cfgs[0], &t);
    if (check__failed)
        return;
    print_counts("convergence", sizeof cfgs / sizeof cfgs[0], &t);
    /* The runs reach every path. */
    CHECK_INT(t.acks, >, 0);
    CHECK_INT(t.conflicts, >, 0);
    CHECK_INT(t.resolutions, >, 0);
    CHECK_INT(t.rejects, >, 0);
    CHECK_INT(t.cut_pushes, >, 0);
    CHECK_INT(t.lost_answers, >, 0);
    CHECK_INT(t.retried_ops, >, 0);
    CHECK_INT(t.clamped, >, 0);
    CHECK_INT(t.lost_pages, >, 0);
    CHECK_INT(t.cut_pulls, >, 0);
    CHECK_INT(t.superseded, >, 0);
    CHECK_INT(t.quarantined, >, 0);
}

/* ---- Regressions ---- */

/*
 * A push answer stored after a pull that already brought a newer state of
 * the record: the device keeps the older state for good.
 *
 * Device 0's edit of `situation` is applied, but its answer is lost.
 * Device 1 pulls it and overwrites it (ack: the server now holds device
 * 1's value alone).  Device 0 pulls: it now shows device 1's value, and
 * its cursor is past the record.  Device 0 sends its op again: the server
 * answers as the first time (ack, version v0), and spro_local_push_done()
 * sets the field's siblings to {v0}, the state of the field when the op was
 * applied, over the newer {v1} the pull had stored.  The record does not
 * change again, so no later pull repairs it: device 0 shows its own
 * superseded value, and its next edit of the field names v0 alone in its
 * base, making a conflict with v1 that nobody made.
 *
 * spro-client does not pull while an answer is missing (its sync stops at
 * the failed push and resends first), so it does not meet this today; the
 * random test follows the same rule (pull_after_lost false).
 */
static void test_bug_replayed_answer_after_pull(void)
{
    static const struct sim_config cfg = {
        "replayed answer", 0xb0b0, 2, 8, 0, 0, 0, 0, 0, 0, 0, true};
    static size_t run = 100;
    struct sim *S = sim_create(&cfg);
    sim_setup(S, tmp_root, run++);
    if (!check__failed)
        sim_start(S);
    const size_t situation = 2;
    bool empty;
    if (!check__failed)
        write_op(S, 0, 0, false, &situation, 1, false, false);
    if (!check__failed)
        push_once(S, 0, false, true, &empty); /* applied; answer lost */
    if (!check__failed)
        pull_pages(S, 1, false);
    if (!check__failed)
        write_op(S, 1, 0, false, &situation, 1, false, false);
    if (!check__failed)
        push_all(S, 1); /* ack: device 1's value alone */
    if (!check__failed)
        pull_pages(S, 0, false); /* device 0 shows device 1's value */
    if (!check__failed)
        push_all(S, 0); /* the op again: answered ack v0, stored over {v1}; fails here */
    if (!check__failed)
        pull_pages(S, 0, false); /* nothing new: the record did not change */
    if (!check__failed)
        check_server(S);
    if (!check__failed)
        check_replica(S, 0); /* device 0 keeps {v0} */
    sim_destroy(S);
}

/* The random test with devices that pull even while an answer is missing
 * (the sync described by the issue): stale answers are stored over newer
 * pulled states, found by check_knowledge() (acks and conflict answers
 * alike; a replayed conflict answer brings back other devices' superseded
 * versions).  Most seeds fail; these fail within 150 rounds. */
static void test_bug_random_pull_after_lost(void)
{
    static const struct sim_config cfgs[] = {
        {"3 devices, pull after lost", 0xc0de0011, 3, 300, 55, 40, 3, 20, 15, 15, 10, true},
        {"4 devices, pull after lost", 0xc0de0022, 4, 300, 50, 40, 3, 20, 15, 15, 10, true},
        {"5 devices, pull after lost", 0xc0de0063, 5, 300, 60, 30, 3, 20, 15, 15, 10, true},
    };
    struct sim_counts t;
    run_configs(cfgs, sizeof cfgs / sizeof cfgs[0], &t);
    if (!check__failed)
        print_counts("pull after lost", sizeof cfgs / sizeof cfgs[0], &t);
}

static const struct check_test tests[] = {
    {"random_convergence", test_random_convergence},
    {"replayed_answer_after_pull", test_bug_replayed_answer_after_pull},
    {"random_pull_after_lost", test_bug_random_pull_after_lost},
};

int main(int argc, char **argv)
{
    snprintf(tmp_root, sizeof tmp_root, "%s/spro-convergence-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp_root) == NULL || spro_crypto_init() != 0)
        return 1;
    umask(077);
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return rc;
}
