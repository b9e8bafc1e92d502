/*
 * test_engine.c: the sync engine (spro_sync_push, spro_sync_pull) and the
 * record types table, against a real data directory.
 *
 * Pushes are built by hand as the decoder would make them (values with
 * their raw msgpack), so the engine is tested without the codec; the codec
 * is used only to encode answers, to compare retried answers byte for byte
 * and to measure pull answers against max_bytes.  Scenarios: creation and
 * pull across organisations, conflicts and their resolution, concurrent
 * edits of different fields, retries, scope refusals that leak nothing,
 * rejects and quarantine, the sibling and field limits without partial
 * writes, clock clamping, scope granted by an enrolment, fields local to an
 * organisation, personal values never stored in clear, wrapped data keys,
 * pull paging by limit and by size; referrals and transfers between
 * organisations (the referral record alone to the receiver, scope on
 * acceptance, removal events to the sender of a transfer, local notes that
 * stay behind, who may move a referral's status and in what order);
 * duplicates (detected by INE or name and birth date, seen by supervisors
 * alone) and merges (by supervisors only, the merged beneficiary's records
 * moved, later ops naming it re-pointed to the one kept).
 */
#include "check.h"
#include "sync/group.h"
#include "sync/store.h"
#include "sync/sync.h"

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOW_MS INT64_C(1700000000000)
#define DRIFT_MS 60000
#define ARENA_CAP (2u << 20)

static char tmp[256];
static char dir[300];
static struct spro_datadir *dd;

static const struct spro_device dev_a = {.id = "aaaaaaaa-0000-4000-8000-00000000000a",
                                         .user = "ua",
                                         .org = "org1",
                                         .role = "counsellor"};
static const struct spro_device dev_b = {.id = "bbbbbbbb-0000-4000-8000-00000000000b",
                                         .user = "ub",
                                         .org = "org1",
                                         .role = "supervisor"};
static const struct spro_device dev_c = {.id = "cccccccc-0000-4000-8000-00000000000c",
                                         .user = "uc",
                                         .org = "org2",
                                         .role = "counsellor"};
static const struct spro_device dev_d = {.id = "dddddddd-0000-4000-8000-00000000000d",
                                         .user = "ud",
                                         .org = "org3",
                                         .role = "counsellor"};
static const struct spro_device dev_e = {.id = "eeeeeeee-0000-4000-8000-00000000000e",
                                         .user = "ue",
                                         .org = "org4",
                                         .role = "counsellor"};

/* ---- Memory of the test: a bump pool, and arenas freed at the end ---- */

static uint8_t pool[8u << 20];
static size_t pool_used;

static void *palloc(size_t n)
{
    size_t at = (pool_used + 15) & ~(size_t)15;
    if (at + n > sizeof pool)
        abort();
    pool_used = at + n;
    memset(pool + at, 0, n);
    return pool + at;
}

static struct spro_arena *arenas[256];
static size_t narenas;

static struct spro_arena *new_arena(size_t cap)
{
    struct spro_arena *a = malloc(sizeof *a);
    if (a == NULL || narenas == sizeof arenas / sizeof arenas[0] ||
        (a->base = malloc(cap ? cap : 1)) == NULL)
        abort();
    a->len = 0;
    a->cap = cap;
    arenas[narenas++] = a;
    return a;
}

static struct spro_bytes B(const char *s) {
    return (struct spro_bytes){(const uint8_t *)s, strlen(s)};
}

/* A fresh record id: a lowercase UUID. */
static const char *
uuid(void)
{
    static unsigned n;
    char *s = palloc(37);
    n++;
    snprintf(s, 37, "%08x-1111-4111-8111-%012x", n, n * 7919u);
    return s;
}

/* A device hlc at NOW_MS, increasing. */
static uint64_t tick(void)
{
    static unsigned t;
    return ((uint64_t)NOW_MS << 16) + ++t;
}

/* ---- Values, as the decoder makes them: raw is their msgpack ---- */

static struct spro_value vstr(const char *s)
{
    size_t n = strlen(s), h = n < 32 ? 1 : n < 256 ? 2 : 3;
    uint8_t *raw = palloc(h + n);
    if (n < 32) {
        raw[0] = (uint8_t)(0xa0 | n);
    } else if (n < 256) {
        raw[0] = 0xd9, raw[1] = (uint8_t)n;
    } else {
        raw[0] = 0xda, raw[1] = (uint8_t)(n >> 8), raw[2] = (uint8_t)n;
    }
    memcpy(raw + h, s, n);
    return (struct spro_value){.kind = SPRO_VALUE_STR, .s = {raw + h, n}, .raw = {raw, h + n}};
}

static struct spro_value vint(int64_t i)
{
    uint8_t *raw = palloc(9);
    size_t len = 1;
    if (i >= 0 && i < 128) {
        raw[0] = (uint8_t)i;
    } else {
        raw[0] = 0xd3;
        for (int k = 0; k < 8; k++)
            raw[1 + k] = (uint8_t)((uint64_t)i >> (56 - 8 * k));
        len = 9;
    }
    return (struct spro_value){.kind = SPRO_VALUE_INT, .i = i, .raw = {raw, len}};
}

static struct spro_value vbool(bool b)
{
    uint8_t *raw = palloc(1);
    raw[0] = b ? 0xc3 : 0xc2;
    return (struct spro_value){.kind = SPRO_VALUE_BOOL, .b = b, .raw = {raw, 1}};
}

static struct spro_value vnil(void)
{
    uint8_t *raw = palloc(1);
    raw[0] = 0xc0;
    return (struct spro_value){.kind = SPRO_VALUE_NIL, .raw = {raw, 1}};
}

/* ---- Ops ---- */

#define SET_CAP (SPRO_SYNC_MAX_FIELDS + 2)

static struct spro_wire_op *op_new(uint64_t seq, const char *rtype, const char *rid,
                                   const char *ben, uint64_t hlc)
{
    struct spro_wire_op *op = palloc(sizeof *op);
    *op = (struct spro_wire_op){.seq = seq,
                                .rtype = B(rtype),
                                .rid = B(rid),
                                .ben = B(ben),
                                .schema = 1,
                                .hlc = hlc,
                                .set = palloc(SET_CAP * sizeof(struct spro_wire_edit))};
    return op;
}

static struct spro_wire_version ver(uint64_t hlc, const char *origin)
{
    return (struct spro_wire_version){hlc, B(origin)};
}

/* Adds the edit name = v, seen from base[0..nbase), to op. */
static void op_set(struct spro_wire_op *op, const char *name, struct spro_value v,
                   const struct spro_wire_version *base, size_t nbase)
{
    if (op->nset == SET_CAP)
        abort();
    struct spro_wire_version *b = palloc(nbase * sizeof *b + 1);
    if (nbase > 0)
        memcpy(b, base, nbase * sizeof *b);
    ((struct spro_wire_edit *)op->set)[op->nset++] =
        (struct spro_wire_edit){.name = B(name), .val = v, .base = b, .nbase = nbase};
}

static uint64_t seqs[6]; /* each device's last seq (by the first letter of its id) */

static uint64_t next_seq(const struct spro_device *d)
{
    return ++seqs[d->id[0] - 'a'];
}

static int push_at(const struct spro_device *d, struct spro_wire_op *const *ops, size_t n,
                   int64_t now_ms, struct spro_arena *a, struct spro_msg_push_reply *out)
{
    struct spro_wire_op *arr = palloc(n * sizeof *arr);
    for (size_t i = 0; i < n; i++)
        arr[i] = *ops[i];
    struct spro_msg_push p = {arr, n};
    return spro_sync_push(dd, d, &p, now_ms, DRIFT_MS, a, out);
}

static int push(const struct spro_device *d, struct spro_wire_op *const *ops, size_t n,
                struct spro_msg_push_reply *out)
{
    return push_at(d, ops, n, NOW_MS, new_arena(ARENA_CAP), out);
}

static int push1(const struct spro_device *d, struct spro_wire_op *op,
                 struct spro_msg_push_reply *out)
{
    return push(d, &op, 1, out);
}

/* A new beneficiary of d with one field; returns its id. */
static const char *new_ben(const struct spro_device *d, const char *name, struct spro_value v)
{
    const char *ben = uuid();
    struct spro_wire_op *op = op_new(next_seq(d), "beneficiary", ben, ben, tick());
    op_set(op, name, v, NULL, 0);
    struct spro_msg_push_reply r;
    if (push1(d, op, &r) != 0 || r.nresults != 1 || r.results[0].status != SPRO_RESULT_ACK)
        abort();
    return ben;
}

/* ---- Reading answers ---- */

static int bytes_is(struct spro_bytes b, const char *s)
{
    return b.len == strlen(s) && (b.len == 0 || memcmp(b.p, s, b.len) == 0);
}

static const struct spro_wire_field *field_of(const struct spro_wire_field *f, size_t n,
                                              const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (bytes_is(f[i].name, name))
            return &f[i];
    return NULL;
}

static int sib_str(const struct spro_wire_sibling *s, const char *str)
{
    return s->val.kind == SPRO_VALUE_STR && bytes_is(s->val.s, str);
}

static int pull_at(const struct spro_device *d, struct spro_bytes cursor, uint32_t limit,
                   size_t max_bytes, struct spro_msg_pull_reply *out)
{
    struct spro_msg_pull p = {cursor, limit};
    return spro_sync_pull(dd, d, &p, max_bytes, new_arena(SPRO_SYNC_PULL_ARENA_BYTES(max_bytes)),
                          out);
}

/* Everything in d's scope, from the start, in one answer. */
static int pull_all(const struct spro_device *d, struct spro_msg_pull_reply *out)
{
    return pull_at(d, (struct spro_bytes){NULL, 0}, SPRO_SYNC_MAX_RECORDS, 256u << 10, out);
}

static const struct spro_wire_record *record_of(const struct spro_msg_pull_reply *r,
                                                const char *rid)
{
    for (size_t i = 0; i < r->nrecords; i++)
        if (bytes_is(r->records[i].rid, rid))
            return &r->records[i];
    return NULL;
}

static const struct spro_wire_field *rec_field(const struct spro_wire_record *r, const char *name)
{
    return r ? field_of(r->fields, r->nfields, name) : NULL;
}

/* ---- Looking into the files ---- */

static char *path_of(const char *name)
{
    char *p = palloc(400);
    snprintf(p, 400, "%s/%s", dir, name);
    return p;
}

/* The first integer column of sql's first row on data.db (-1 if none);
 * ?1 is bound to arg when not NULL. */
static int64_t query_int(const char *sql, const char *arg)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_open_v2(path_of("data.db"), &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (arg != NULL)
            sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The answers kept for op (?1, %llu): in ops (conflicts, rejects) or in
 * a row of op_acks whose seqs span it. */
#define KEPT_ANSWER_SQL                                                                            \
    "SELECT (SELECT count(*) FROM ops WHERE device_id = ?1 AND seq = %1$llu) +"                    \
    " (SELECT count(*) FROM op_acks WHERE device_id = ?1 AND first <= %1$llu AND last >= %1$llu)"

static int64_t change_seq(void)
{
    return query_int("SELECT change_seq FROM sync_state", NULL);
}

/* The first blob column of sql's first row on file into out (cap bytes);
 * its length, or -1. */
static long query_blob(const char *file, const char *sql, const char *a1, const char *a2,
                       uint8_t *out, size_t cap, int64_t *second)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_open_v2(path_of(file), &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, a1, -1, SQLITE_STATIC);
        if (a2 != NULL)
            sqlite3_bind_text(st, 2, a2, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) <= cap) {
            n = sqlite3_column_bytes(st, 0);
            memcpy(out, sqlite3_column_blob(st, 0), (size_t)n);
            if (second != NULL)
                *second = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The siblings of record (rtype, rid), of field name or of every field
 * (NULL), wherever they are kept (rec_siblings, the sealed field set), as
 * spro_sync__record_each() reads them: *sealed (may be NULL) counts those
 * kept sealed.  -1 if the record cannot be read. */
struct sib_count {
    const char *rtype, *rid, *name;
    struct spro_sync__opener *o;
    int64_t n, sealed;
};

static int sib_count_one(const struct spro_stored_sibling *s, void *arg)
{
    struct sib_count *c = arg;
    if (c->name == NULL || strcmp(s->name, c->name) == 0) {
        c->n++;
        c->sealed += s->sealed != 0;
    }
    return 0;
}

static int sib_count_tx(struct spro_db *db, void *arg)
{
    struct sib_count *c = arg;
    struct spro_stored_record r;
    int rc = spro_store__record_get(db, c->rtype, c->rid, &r);
    return rc != 0 ? rc : spro_sync__record_each(c->o, db, &r, sib_count_one, c);
}

static int64_t siblings_count(const char *rtype, const char *rid, const char *name, int64_t *sealed)
{
    struct sib_count c = {rtype, rid, name, spro_sync__opener_new(dd), 0, 0};
    int rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_READ, sib_count_tx, &c);
    spro_sync__opener_free(c.o);
    if (sealed != NULL)
        *sealed = rc == 0 ? c.sealed : -1;
    return rc == 0 ? c.n : -1;
}

/* Whole content of dir/name, or NULL if absent (malloc'd). */
static uint8_t *slurp(const char *name, size_t *len)
{
    FILE *f = fopen(path_of(name), "rb");
    *len = 0;
    if (f == NULL)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n;
    do {
        cap += 1u << 20;
        if ((buf = realloc(buf, cap)) == NULL)
            abort();
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
    } while (*len == cap);
    fclose(f);
    return buf;
}

/* Whether needle occurs in any file of the databases. */
static int on_disk(const void *needle, size_t n)
{
    static const char *const files[] = {"data.db", "data.db-wal", "keys.db", "keys.db-wal"};
    int found = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len;
        uint8_t *buf = slurp(files[i], &len);
        if (buf != NULL)
            found |= memmem(buf, len, needle, n) != NULL;
        free(buf);
    }
    return found;
}

/* ---- Tests ---- */

static void test_schema_versions(void)
{
    CHECK_EQ(SPRO_DATA_SCHEMA, 13);
    CHECK_EQ(SPRO_KEYS_SCHEMA, 4);
    CHECK_EQ(spro_datadir_schema(dd), SPRO_DATA_SCHEMA);
    CHECK_EQ(change_seq(), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM sqlite_schema WHERE name IN ('records', 'siblings',"
                       " 'scope', 'blind_index', 'clamps', 'ops', 'op_siblings', 'quarantine',"
                       " 'scope_record', 'scope_removed', 'device_sync')",
                       NULL),
             11);
    CHECK_EQ(query_int("SELECT purged_seq FROM sync_state", NULL), 0);
}

static void test_value_checks(void)
{
    static const struct {
        const char *rtype, *field;
        int kind; /* 0 str, 1 int, 2 bool, 3 nil */
        const char *s;
        int64_t i;
        int ok;
    } cases[] = {
        {"beneficiary", "family_name", 0, "Lefèvre", 0, 1},
        {"beneficiary", "family_name", 1, NULL, 3, 0},
        {"beneficiary", "family_name", 3, NULL, 0, 1},
        {"beneficiary", "birth_date", 0, "2008-02-29", 0, 1},
        {"beneficiary", "birth_date", 0, "2007-02-29", 0, 0},
        {"beneficiary", "birth_date", 0, "2007-13-01", 0, 0},
        {"beneficiary", "birth_date", 0, "2007-1-01", 0, 0},
        {"beneficiary", "birth_date", 0, "14/03/2007", 0, 0},
        {"beneficiary", "dropout", 2, NULL, 1, 1},
        {"beneficiary", "dropout", 0, "yes", 0, 0},
        {"beneficiary", "state", 0, "closed", 0, 1},
        {"beneficiary", "state", 0, "deleted", 0, 0},
        {"consent", "notice_version", 1, NULL, 3, 1},
        {"consent", "notice_version", 0, "3", 0, 0},
        {"consent", "given_by", 0, "guardian", 0, 1},
        {"appointment", "at", 0, "2024-01-31T09:30:00Z", 0, 1},
        {"appointment", "at", 0, "2024-01-31T24:00:00Z", 0, 0},
        {"appointment", "at", 0, "2024-01-31 09:30:00", 0, 0},
        {"referral", "status", 0, "accepted", 0, 1},
        {"referral", "status", 0, "Accepted", 0, 0},
        {"enrolment", "future_field", 1, NULL, -5, 1},
        {"enrolment", "future_field", 0, "anything", 0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct spro_record_def *t =
            spro_sync_record_type((const uint8_t *)cases[k].rtype, strlen(cases[k].rtype));
        CHECK(t != NULL);
        const struct spro_field_def *f =
            spro_sync_record_field(t, (const uint8_t *)cases[k].field, strlen(cases[k].field));
        CHECK(f != NULL);
        struct spro_value v = cases[k].kind == 0   ? vstr(cases[k].s)
                              : cases[k].kind == 1 ? vint(cases[k].i)
                              : cases[k].kind == 2 ? vbool(cases[k].i != 0)
                                                   : vnil();
        if ((spro_sync_value_check(f, &v) == 0) != cases[k].ok)
            CHECK__FAIL("case %zu: %s.%s", k, cases[k].rtype, cases[k].field);
    }
    CHECK(spro_sync_record_type((const uint8_t *)"spaceship", 9) == NULL);
    const struct spro_record_def *t = spro_sync_record_type((const uint8_t *)"interaction", 11);
    CHECK(t != NULL);
    CHECK(spro_sync_record_field(t, (const uint8_t *)"Note", 4) == NULL);
    CHECK(spro_sync_record_field(t, (const uint8_t *)"", 0) == NULL);
    const struct spro_field_def *note = spro_sync_record_field(t, (const uint8_t *)"note", 4);
    CHECK(note != NULL && (note->flags & SPRO_FFLAG_LOCAL) && (note->flags & SPRO_FFLAG_PERSONAL));
    const struct spro_field_def *unk = spro_sync_record_field(t, (const uint8_t *)"zz_9", 4);
    CHECK(unk != NULL && unk->type == SPRO_FTYPE_ANY && unk->flags == SPRO_FFLAG_PERSONAL);
    size_t n;
    CHECK(spro_sync_record_types(&n) != NULL && n == 7);
}

static void test_create_and_pull(void)
{
    const char *ben = uuid(), *enr = uuid();
    struct spro_wire_op *ops[2];
    uint64_t h0 = tick(), h1 = tick();
    ops[0] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h0);
    op_set(ops[0], "family_name", vstr("Lefèvre"), NULL, 0);
    op_set(ops[0], "given_name", vstr("Élodie"), NULL, 0);
    op_set(ops[0], "birth_date", vstr("2007-03-14"), NULL, 0);
    op_set(ops[0], "ine", vstr("12345-67890-a"), NULL, 0);
    op_set(ops[0], "home_region", vstr("53"), NULL, 0);
    op_set(ops[0], "dropout", vbool(true), NULL, 0);
    ops[1] = op_new(next_seq(&dev_a), "enrolment", enr, ben, h1);
    op_set(ops[1], "programme", vstr("spro"), NULL, 0);
    op_set(ops[1], "owner_org", vstr("org1"), NULL, 0);
    int64_t before = change_seq();
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_a, ops, 2, &r), 0);
    CHECK_EQ(r.nresults, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(r.results[i].seq, ops[i]->seq);
        CHECK_EQ(r.results[i].status, SPRO_RESULT_ACK);
        CHECK_EQ(r.results[i].ver.hlc, i == 0 ? h0 : h1);
        CHECK(bytes_is(r.results[i].ver.origin, dev_a.id));
        CHECK_EQ(r.results[i].nfields, 0);
    }
    CHECK_EQ(change_seq(), before + 2);
    /* Blind indexes: the INE and the duplicate-detection key. */
    CHECK_EQ(query_int("SELECT count(*) FROM blind_index WHERE rid = ?1", ben), 2);

    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_b, &p), 0);
    const struct spro_wire_record *b = record_of(&p, ben), *e = record_of(&p, enr);
    CHECK(b != NULL && e != NULL);
    CHECK(bytes_is(b->rtype, "beneficiary") && bytes_is(b->ben, ben) && !b->removed);
    CHECK(bytes_is(e->rtype, "enrolment") && bytes_is(e->ben, ben));
    CHECK_EQ(b->nfields, 6);
    CHECK_EQ(e->nfields, 2);
    const struct spro_wire_field *f = rec_field(b, "family_name");
    CHECK(f != NULL && f->nsiblings == 1 && sib_str(&f->siblings[0], "Lefèvre"));
    CHECK_EQ(f->siblings[0].ver.hlc, h0);
    CHECK(bytes_is(f->siblings[0].ver.origin, dev_a.id) && bytes_is(f->siblings[0].by, "ua"));
    CHECK((f = rec_field(b, "ine")) != NULL && sib_str(&f->siblings[0], "12345-67890-a"));
    CHECK((f = rec_field(b, "given_name")) != NULL && sib_str(&f->siblings[0], "Élodie"));
    CHECK((f = rec_field(b, "dropout")) != NULL);
    CHECK(f->siblings[0].val.kind == SPRO_VALUE_BOOL && f->siblings[0].val.b);
    CHECK((f = rec_field(e, "owner_org")) != NULL && sib_str(&f->siblings[0], "org1"));
    CHECK_EQ(p.cursor.len, 8);
    CHECK(!p.more);

    /* The answer encodes and fits where it said. */
    struct spro_msg m = {.type = SPRO_MSG_PULL_REPLY, .u.pull_reply = p};
    struct spro_buf enc = {0};
    CHECK_EQ(spro_proto_encode(&m, &enc), 0);
    spro_buf_free(&enc);

    /* Another organisation sees none of it. */
    CHECK_EQ(pull_all(&dev_c, &p), 0);
    CHECK(record_of(&p, ben) == NULL && record_of(&p, enr) == NULL);
}

static void test_conflict_then_resolve(void)
{
    const char *ben = uuid();
    uint64_t h0 = tick(), h1 = tick(), h2 = tick(), h3 = tick();
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h0);
    op_set(op, "family_name", vstr("Martin"), NULL, 0);
    struct spro_msg_push_reply r;
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    struct spro_wire_version v0 = ver(h0, dev_a.id);

    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h1);
    op_set(op, "family_name", vstr("Martine"), &v0, 1);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);

    /* Same base from another device of the organisation: both kept. */
    op = op_new(next_seq(&dev_b), "beneficiary", ben, ben, h2);
    op_set(op, "family_name", vstr("Martinez"), &v0, 1);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_CONFLICT);
    CHECK_EQ(r.results[0].ver.hlc, h2);
    CHECK(bytes_is(r.results[0].ver.origin, dev_b.id));
    CHECK_EQ(r.results[0].nfields, 1);
    const struct spro_wire_field *f = &r.results[0].fields[0];
    CHECK(bytes_is(f->name, "family_name") && f->nsiblings == 2);
    CHECK(sib_str(&f->siblings[0], "Martine") && f->siblings[0].ver.hlc == h1);
    CHECK(bytes_is(f->siblings[0].by, "ua"));
    CHECK(sib_str(&f->siblings[1], "Martinez") && f->siblings[1].ver.hlc == h2);
    CHECK(bytes_is(f->siblings[1].by, "ub"));

    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_a, &p), 0);
    CHECK((f = rec_field(record_of(&p, ben), "family_name")) != NULL && f->nsiblings == 2);

    /* A base that covers both siblings resolves. */
    struct spro_wire_version both[2] = {ver(h1, dev_a.id), ver(h2, dev_b.id)};
    op = op_new(next_seq(&dev_b), "beneficiary", ben, ben, h3);
    op_set(op, "family_name", vstr("Martin-Lopez"), both, 2);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(pull_all(&dev_a, &p), 0);
    CHECK((f = rec_field(record_of(&p, ben), "family_name")) != NULL && f->nsiblings == 1);
    CHECK(sib_str(&f->siblings[0], "Martin-Lopez") && f->siblings[0].ver.hlc == h3);
    CHECK(bytes_is(f->siblings[0].ver.origin, dev_b.id));
}

static void test_different_fields_merge(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Durand"));
    struct spro_msg_push_reply r;
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "phone", vstr("0600000000"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    op = op_new(next_seq(&dev_b), "beneficiary", ben, ben, tick());
    op_set(op, "email", vstr("d@example.org"), NULL, 0);
    op_set(op, "situation", vstr("student"), NULL, 0);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_b, &p), 0);
    const struct spro_wire_record *rec = record_of(&p, ben);
    CHECK(rec != NULL && rec->nfields == 4);
    static const char *const names[] = {"family_name", "phone", "email", "situation"};
    for (int i = 0; i < 4; i++) {
        const struct spro_wire_field *f = rec_field(rec, names[i]);
        CHECK(f != NULL && f->nsiblings == 1);
    }
}

/* Encodes a push reply (answers compared byte for byte). */
static int encode_reply(const struct spro_msg_push_reply *r, struct spro_buf *out)
{
    struct spro_msg m = {.type = SPRO_MSG_PUSH_REPLY, .u.push_reply = *r};
    return spro_proto_encode(&m, out);
}

/* Whether two push answers encode byte for byte alike (a message on
 * stderr if not). */
static int same_reply(const struct spro_msg_push_reply *a, const struct spro_msg_push_reply *b)
{
    struct spro_buf e1 = {0}, e2 = {0};
    int same = encode_reply(a, &e1) == 0 && encode_reply(b, &e2) == 0 && e1.len == e2.len &&
               memcmp(e1.data, e2.data, e1.len) == 0;
    if (!same)
        fprintf(stderr, "the answers differ (%zu and %zu bytes)\n", e1.len, e2.len);
    spro_buf_free(&e1);
    spro_buf_free(&e2);
    return same;
}

static void test_retry_is_identical(void)
{
    const char *ben = uuid();
    uint64_t h0 = tick(), h1 = tick(), h2 = tick(), h3 = tick();
    struct spro_wire_op *ops[3];
    ops[0] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h0);
    op_set(ops[0], "family_name", vstr("Petit"), NULL, 0);
    op_set(ops[0], "given_name", vstr("Léa"), NULL, 0);
    struct spro_wire_version v0 = ver(h0, dev_a.id);
    ops[1] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h1);
    op_set(ops[1], "family_name", vstr("Petit-Jean"), &v0, 1);
    ops[2] = op_new(next_seq(&dev_a), "spaceship", ben, ben, h2);
    op_set(ops[2], "x", vint(1), NULL, 0);
    struct spro_msg_push_reply r1, r2;
    CHECK_EQ(push(&dev_a, ops, 3, &r1), 0);
    int64_t seq = change_seq();
    int64_t nq = query_int("SELECT count(*) FROM quarantine", NULL);
    CHECK_EQ(push(&dev_a, ops, 3, &r2), 0);
    CHECK_EQ(change_seq(), seq);
    CHECK_EQ(query_int("SELECT count(*) FROM quarantine", NULL), nq);
    CHECK(same_reply(&r1, &r2));

    /* A conflict answer is kept as given, even once the conflict is
     * resolved: the retry does not bring the superseded write back. */
    struct spro_wire_op *c = op_new(next_seq(&dev_b), "beneficiary", ben, ben, h3);
    op_set(c, "family_name", vstr("Petitjean"), &v0, 1);
    struct spro_msg_push_reply rc1, rc2, rr;
    CHECK_EQ(push1(&dev_b, c, &rc1), 0);
    CHECK_EQ(rc1.results[0].status, SPRO_RESULT_CONFLICT);
    struct spro_wire_version both[2] = {ver(h1, dev_a.id), ver(h3, dev_b.id)};
    struct spro_wire_op *fix = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(fix, "family_name", vstr("Petit"), both, 2);
    CHECK_EQ(push1(&dev_a, fix, &rr), 0);
    CHECK_EQ(rr.results[0].status, SPRO_RESULT_ACK);
    seq = change_seq();
    CHECK_EQ(push1(&dev_b, c, &rc2), 0);
    CHECK_EQ(change_seq(), seq);
    CHECK(same_reply(&rc1, &rc2));
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_a, &p), 0);
    const struct spro_wire_field *f = rec_field(record_of(&p, ben), "family_name");
    CHECK(f != NULL && f->nsiblings == 1 && sib_str(&f->siblings[0], "Petit"));
}

/* Whether two answers are the same but for seq. */
static int same_answer(const struct spro_wire_result *a, const struct spro_wire_result *b)
{
    return a->status == b->status && a->code.len == b->code.len &&
           memcmp(a->code.p, b->code.p, a->code.len) == 0 && a->ver.hlc == b->ver.hlc &&
           a->ver.origin.len == b->ver.origin.len && a->nfields == b->nfields;
}

/* A push's acks are kept in one row; ops whose seqs do not ascend (here
 * descending, and one op twice) are looked up one by one: the op sent
 * twice is applied once and answered alike, and a retry of the push gets
 * the same answers and changes nothing. */
static void test_acks_kept_per_push(void)
{
    const char *b1 = uuid(), *b2 = uuid();
    uint64_t s1 = next_seq(&dev_c), s2 = next_seq(&dev_c);
    struct spro_wire_op *ops[3];
    ops[0] = op_new(s2, "beneficiary", b2, b2, tick());
    op_set(ops[0], "family_name", vstr("Second"), NULL, 0);
    ops[1] = op_new(s1, "beneficiary", b1, b1, tick());
    op_set(ops[1], "family_name", vstr("First"), NULL, 0);
    ops[2] = ops[1];
    struct spro_msg_push_reply r1, r2;
    CHECK_EQ(push(&dev_c, ops, 3, &r1), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r1.results[i].status, SPRO_RESULT_ACK);
    CHECK_EQ(r1.results[2].ver.hlc, r1.results[1].ver.hlc);
    CHECK_EQ(siblings_count("beneficiary", b1, "family_name", NULL), 1);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM op_acks WHERE device_id = ?1 AND first = %llu AND last = %llu"
             " AND length(acks) = 32",
             (unsigned long long)s1, (unsigned long long)s2);
    CHECK_EQ(query_int(sql, dev_c.id), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ops WHERE device_id = ?1 AND seq >= %llu",
             (unsigned long long)s1);
    CHECK_EQ(query_int(sql, dev_c.id), 0);
    int64_t seq = change_seq();
    CHECK_EQ(push(&dev_c, ops, 3, &r2), 0);
    CHECK_EQ(change_seq(), seq);
    CHECK(same_reply(&r1, &r2));
    /* The next op, alone: above every answered seq, applied. */
    struct spro_wire_op *op = op_new(next_seq(&dev_c), "beneficiary", b1, b1, tick());
    struct spro_wire_version v = r1.results[1].ver;
    op_set(op, "family_name", vstr("First-Again"), &v, 1);
    CHECK_EQ(push1(&dev_c, op, &r2), 0);
    CHECK_EQ(r2.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(change_seq(), seq + 1);
}

static void test_not_found_leaks_nothing(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Bernard"));
    const char *other = new_ben(&dev_a, "family_name", vstr("Thomas"));
    const char *enr = uuid();
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "enrolment", enr, ben, tick());
    op_set(op, "status", vstr("open"), NULL, 0);
    struct spro_msg_push_reply r;
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    int64_t seq = change_seq();

    /* From another organisation: an existing enrolment, a new record of an
     * existing beneficiary, the beneficiary itself, and the same for a
     * beneficiary that does not exist: one answer. */
    const char *ghost = uuid();
    struct spro_wire_op *ops[6];
    ops[0] = op_new(next_seq(&dev_c), "enrolment", enr, ben, tick());
    ops[1] = op_new(next_seq(&dev_c), "enrolment", uuid(), ghost, tick());
    ops[2] = op_new(next_seq(&dev_c), "interaction", uuid(), ben, tick());
    ops[3] = op_new(next_seq(&dev_c), "interaction", uuid(), ghost, tick());
    ops[4] = op_new(next_seq(&dev_c), "beneficiary", ben, ben, tick());
    ops[5] = op_new(next_seq(&dev_c), "consent", uuid(), ghost, tick());
    static const char *const fields[6] = {"status", "status",      "kind",
                                          "kind",   "family_name", "purpose"};
    for (int i = 0; i < 6; i++)
        op_set(ops[i], fields[i], vstr("x"), NULL, 0);
    CHECK_EQ(push(&dev_c, ops, 6, &r), 0);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(r.results[i].status, SPRO_RESULT_REJECT);
        CHECK(bytes_is(r.results[i].code, SPRO_REJECT_NOT_FOUND));
        CHECK(same_answer(&r.results[i], &r.results[0]));
    }
    CHECK_EQ(change_seq(), seq);
    CHECK_EQ(query_int("SELECT count(*) FROM quarantine WHERE device_id = ?1", dev_c.id), 6);

    /* A record's beneficiary is fixed at creation. */
    op = op_new(next_seq(&dev_a), "enrolment", enr, other, tick());
    op_set(op, "status", vstr("moved"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_REJECT);
    CHECK(bytes_is(r.results[0].code, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(change_seq(), seq);
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_b, &p), 0);
    const struct spro_wire_field *f = rec_field(record_of(&p, enr), "status");
    CHECK(f != NULL && f->nsiblings == 1 && sib_str(&f->siblings[0], "open"));
    const struct spro_wire_record *rec = record_of(&p, enr);
    CHECK(rec != NULL && bytes_is(rec->ben, ben));
}

static void test_rejects_are_quarantined(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Robert"));
    struct spro_value inconsistent = vstr("abc");
    inconsistent.kind = SPRO_VALUE_INT; /* raw says str */
    static const char upper[] = "ABCDEF00-1111-4111-8111-000000000001";
    const struct {
        const char *rtype, *rid, *ben, *field;
        struct spro_value v;
        const char *code;
    } cases[] = {
        {"spaceship", NULL, ben, "family_name", vstr("x"), SPRO_REJECT_UNKNOWN_TYPE},
        {"Beneficiary", ben, ben, "family_name", vstr("x"), SPRO_REJECT_UNKNOWN_TYPE},
        {"beneficiary", ben, ben, "birth_date", vstr("2007-02-30"), SPRO_REJECT_BAD_VALUE},
        {"beneficiary", ben, ben, "birth_date", vstr("14/03/2007"), SPRO_REJECT_BAD_VALUE},
        {"beneficiary", ben, ben, "dropout", vstr("yes"), SPRO_REJECT_BAD_VALUE},
        {"beneficiary", ben, ben, "state", vstr("deleted"), SPRO_REJECT_BAD_VALUE},
        {"beneficiary", ben, ben, "Family-Name", vstr("x"), SPRO_REJECT_BAD_VALUE},
        {"beneficiary", ben, ben, "family_name", vint(7), SPRO_REJECT_BAD_VALUE},
        {"beneficiary", ben, ben, "family_name", inconsistent, SPRO_REJECT_BAD_VALUE},
        {"beneficiary", NULL, NULL, "family_name", vstr("x"), SPRO_REJECT_BAD_VALUE},
        {"beneficiary", upper, upper, "family_name", vstr("x"), SPRO_REJECT_BAD_VALUE},
        {"consent", NULL, ben, "notice_version", vstr("3"), SPRO_REJECT_BAD_VALUE},
        {"appointment", NULL, ben, "at", vstr("2024-01-31 09:30"), SPRO_REJECT_BAD_VALUE},
        {"enrolment", NULL, ben, "owner_org", vstr("no-such-org"), SPRO_REJECT_BAD_VALUE},
    };
    size_t n = sizeof cases / sizeof cases[0];
    struct spro_wire_op **ops = palloc(n * sizeof *ops);
    for (size_t k = 0; k < n; k++) {
        /* NULL rid: a new one; NULL ben: a beneficiary whose rid is not its ben. */
        const char *rid = cases[k].rid ? cases[k].rid : uuid();
        ops[k] = op_new(next_seq(&dev_a), cases[k].rtype, rid, cases[k].ben ? cases[k].ben : ben,
                        tick());
        op_set(ops[k], cases[k].field, cases[k].v, NULL, 0);
    }
    int64_t seq = change_seq();
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_a, ops, n, &r), 0);
    CHECK_EQ(r.nresults, n);
    for (size_t k = 0; k < n; k++) {
        if (r.results[k].status != SPRO_RESULT_REJECT ||
            !bytes_is(r.results[k].code, cases[k].code))
            CHECK__FAIL("case %zu: status %d, code %.*s", k, (int)r.results[k].status,
                        (int)r.results[k].code.len, (const char *)r.results[k].code.p);
        char seqs_s[32];
        snprintf(seqs_s, sizeof seqs_s, "%" PRIu64, ops[k]->seq);
        CHECK_EQ(query_int("SELECT count(*) FROM quarantine WHERE device_id = '"
                           "aaaaaaaa-0000-4000-8000-00000000000a' AND seq = ?1",
                           seqs_s),
                 1);
    }
    CHECK_EQ(change_seq(), seq);

    /* Two edits of one field in one op are refused too. */
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "phone", vstr("1"), NULL, 0);
    op_set(op, "phone", vstr("2"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK(bytes_is(r.results[0].code, SPRO_REJECT_BAD_VALUE));

    /* Unknown fields of a known type are kept, sealed, and passed on. */
    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "future_field", vint(-123456789), NULL, 0);
    op_set(op, "birth_date", vnil(), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    int64_t sealed;
    CHECK_EQ(siblings_count("beneficiary", ben, "future_field", &sealed), 1);
    CHECK_EQ(sealed, 1); /* in the record's sealed field set */
    CHECK_EQ(query_int("SELECT count(*) FROM siblings WHERE rid = ?1", ben), 0);
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_b, &p), 0);
    const struct spro_wire_field *f = rec_field(record_of(&p, ben), "future_field");
    CHECK(f != NULL && f->siblings[0].val.kind == SPRO_VALUE_INT);
    CHECK_EQ(f->siblings[0].val.i, -123456789);
    CHECK((f = rec_field(record_of(&p, ben), "birth_date")) != NULL);
    CHECK(f->siblings[0].val.kind == SPRO_VALUE_NIL);
}

static void test_too_many_siblings_no_partial_write(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("v0"));
    struct spro_wire_op *ops[SPRO_SYNC_MAX_SIBLINGS];
    char name[16];
    /* 31 edits that saw nothing: 32 siblings. */
    for (int i = 0; i < SPRO_SYNC_MAX_SIBLINGS - 1; i++) {
        snprintf(name, sizeof name, "v%d", i + 1);
        ops[i] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
        op_set(ops[i], "family_name", vstr(name), NULL, 0);
    }
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_a, ops, SPRO_SYNC_MAX_SIBLINGS - 1, &r), 0);
    for (int i = 0; i < SPRO_SYNC_MAX_SIBLINGS - 1; i++)
        CHECK_EQ(r.results[i].status, SPRO_RESULT_CONFLICT);
    CHECK_EQ(r.results[SPRO_SYNC_MAX_SIBLINGS - 2].fields[0].nsiblings, SPRO_SYNC_MAX_SIBLINGS);

    /* One more: refused whole, its other field included. */
    int64_t seq = change_seq();
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "phone", vstr("0611111111"), NULL, 0);
    op_set(op, "family_name", vstr("v32"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_REJECT);
    CHECK(bytes_is(r.results[0].code, SPRO_REJECT_TOO_MANY_SIBLINGS));
    CHECK_EQ(change_seq(), seq);
    CHECK_EQ(siblings_count("beneficiary", ben, "phone", NULL), 0);
    CHECK_EQ(siblings_count("beneficiary", ben, NULL, NULL), SPRO_SYNC_MAX_SIBLINGS);
    CHECK_EQ(query_int("SELECT count(*) FROM quarantine WHERE code = 'too_many_siblings'", NULL),
             1);

    /* An edit whose base covers them all resolves. */
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_a, &p), 0);
    const struct spro_wire_field *f = rec_field(record_of(&p, ben), "family_name");
    CHECK(f != NULL && f->nsiblings == SPRO_SYNC_MAX_SIBLINGS);
    struct spro_wire_version base[SPRO_SYNC_MAX_SIBLINGS];
    for (size_t i = 0; i < f->nsiblings; i++)
        base[i] = f->siblings[i].ver;
    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "family_name", vstr("Final"), base, f->nsiblings);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(siblings_count("beneficiary", ben, NULL, NULL), 1);
}

static void test_too_many_fields(void)
{
    const char *ben = uuid();
    char *names = palloc(SPRO_SYNC_MAX_FIELDS * 8);
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    for (int i = 0; i < SPRO_SYNC_MAX_FIELDS; i++) {
        snprintf(names + 8 * i, 8, "f%02d", i);
        op_set(op, names + 8 * i, vint(i), NULL, 0);
    }
    struct spro_msg_push_reply r;
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "f99", vint(1), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK(bytes_is(r.results[0].code, SPRO_REJECT_TOO_MANY_FIELDS));
    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "f00", vint(100), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_CONFLICT); /* it saw nothing */
}

static void test_version_reused(void)
{
    const char *ben = uuid();
    uint64_t h = tick();
    struct spro_wire_op *ops[3];
    ops[0] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h);
    op_set(ops[0], "family_name", vstr("Once"), NULL, 0);
    ops[1] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h);
    op_set(ops[1], "family_name", vstr("Twice"), NULL, 0);
    ops[2] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h);
    op_set(ops[2], "family_name", vstr("Once"), NULL, 0);
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_a, ops, 3, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(r.results[1].status, SPRO_RESULT_REJECT);
    CHECK(bytes_is(r.results[1].code, SPRO_REJECT_VERSION_REUSED));
    CHECK_EQ(r.results[2].status, SPRO_RESULT_ACK); /* the same write: a duplicate */
    CHECK_EQ(siblings_count("beneficiary", ben, NULL, NULL), 1);
}

static void test_clock_clamped(void)
{
    const char *ben = uuid();
    uint64_t ahead = (uint64_t)(NOW_MS + 3600 * 1000) << 16;
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, ahead);
    op_set(op, "family_name", vstr("Early"), NULL, 0);
    struct spro_msg_push_reply r;
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    uint64_t v1 = r.results[0].ver.hlc;
    CHECK(v1 != ahead);
    CHECK_INT(v1 >> 16, >=, NOW_MS + DRIFT_MS);
    CHECK_INT(v1 >> 16, <=, NOW_MS + DRIFT_MS + 1);
    CHECK(bytes_is(r.results[0].ver.origin, dev_a.id));

    /* The device goes on from its own view of its write. */
    struct spro_wire_version own = ver(ahead, dev_a.id);
    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, ahead + 1);
    op_set(op, "family_name", vstr("Later"), &own, 1);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    uint64_t v2 = r.results[0].ver.hlc;
    CHECK_INT(v2, >, v1);
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_b, &p), 0);
    const struct spro_wire_field *f = rec_field(record_of(&p, ben), "family_name");
    CHECK(f != NULL && f->nsiblings == 1 && sib_str(&f->siblings[0], "Later"));
    CHECK_EQ(f->siblings[0].ver.hlc, v2);

    /* Within the drift, the device's hlc is the version. */
    uint64_t near = (uint64_t)(NOW_MS + 30 * 1000) << 16;
    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, near);
    op_set(op, "phone", vstr("0622222222"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].ver.hlc, near);
}

static void test_scope_grant_and_local_fields(void)
{
    /* org2's device has read everything it may. */
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_all(&dev_c, &p), 0);
    CHECK(!p.more);
    struct spro_bytes cursor = p.cursor;

    const char *ben = new_ben(&dev_a, "family_name", vstr("Garcia"));
    const char *inter = uuid(), *enr = uuid();
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "interaction", inter, ben, tick());
    op_set(op, "kind", vstr("visit"), NULL, 0);
    op_set(op, "note", vstr("Local note of org1"), NULL, 0);
    struct spro_msg_push_reply r;
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(pull_at(&dev_c, cursor, 100, 60000, &p), 0);
    CHECK_EQ(p.nrecords, 0);

    /* An enrolment owned by org2 brings the beneficiary to org2, records
     * written before included, whatever org2's cursor. */
    op = op_new(next_seq(&dev_a), "enrolment", enr, ben, tick());
    op_set(op, "owner_org", vstr("org2"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(pull_at(&dev_c, cursor, 100, 60000, &p), 0);
    CHECK_EQ(p.nrecords, 3);
    const struct spro_wire_record *rec = record_of(&p, inter);
    CHECK(rec != NULL && record_of(&p, ben) != NULL && record_of(&p, enr) != NULL);
    CHECK(rec_field(rec, "kind") != NULL);
    CHECK(rec_field(rec, "note") == NULL);

    CHECK_EQ(pull_all(&dev_b, &p), 0);
    const struct spro_wire_field *f = rec_field(record_of(&p, inter), "note");
    CHECK(f != NULL && sib_str(&f->siblings[0], "Local note of org1"));

    /* org2 may edit shared fields, not org1's local ones. */
    op = op_new(next_seq(&dev_c), "interaction", inter, ben, tick());
    op_set(op, "note", vstr("org2 writes"), NULL, 0);
    CHECK_EQ(push1(&dev_c, op, &r), 0);
    CHECK(bytes_is(r.results[0].code, SPRO_REJECT_NOT_FOUND));
    op = op_new(next_seq(&dev_c), "interaction", inter, ben, tick());
    op_set(op, "outcome_codes", vstr("A1"), NULL, 0);
    CHECK_EQ(push1(&dev_c, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
}

static void test_personal_never_in_clear(void)
{
    static const char *const secret[] = {
        "SENTINEL-FAMILY-9d2f",     "SENTINEL-GIVEN-9d2f",   "SENTINEL-NOTE-9d2f",
        "SENTINEL-UNKNOWN-9d2f",    "SENTINEL-QUARANT-9d2f", "SENTINEL-CONFLICT-A-9d2f",
        "SENTINEL-CONFLICT-B-9d2f", "SENT1NEL9D2",           "SENTINEL-REASON-9d2f",
    };
    const char *ben = uuid(), *inter = uuid();
    uint64_t h0 = tick();
    struct spro_wire_op *ops[4];
    ops[0] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, h0);
    op_set(ops[0], "family_name", vstr(secret[0]), NULL, 0);
    op_set(ops[0], "given_name", vstr(secret[1]), NULL, 0);
    op_set(ops[0], "future_field", vstr(secret[3]), NULL, 0);
    op_set(ops[0], "ine", vstr(secret[7]), NULL, 0);
    op_set(ops[0], "home_region", vstr("CLEAR-CONTROL-9d2f"), NULL, 0);
    ops[1] = op_new(next_seq(&dev_a), "interaction", inter, ben, tick());
    op_set(ops[1], "note", vstr(secret[2]), NULL, 0);
    ops[2] = op_new(next_seq(&dev_a), "dossier", uuid(), ben, tick());
    op_set(ops[2], "family_name", vstr(secret[4]), NULL, 0);
    struct spro_wire_version v0 = ver(h0, dev_a.id);
    ops[3] = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(ops[3], "given_name", vstr(secret[5]), &v0, 1);
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_a, ops, 4, &r), 0);
    CHECK_EQ(r.results[2].status, SPRO_RESULT_REJECT);
    struct spro_wire_op *op = op_new(next_seq(&dev_b), "beneficiary", ben, ben, tick());
    op_set(op, "given_name", vstr(secret[6]), &v0, 1);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_CONFLICT); /* copied to op_siblings, sealed */
    /* A referral's free-text reason may name the person: personal too. */
    op = op_new(next_seq(&dev_a), "referral", uuid(), ben, tick());
    op_set(op, "from_org", vstr(dev_a.org), NULL, 0);
    op_set(op, "to_org", vstr(dev_c.org), NULL, 0);
    op_set(op, "reason", vstr(secret[8]), NULL, 0);
    op_set(op, "status", vstr("proposed"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(query_int("SELECT count(*) FROM op_siblings WHERE device_id = ?1 AND"
                       " seq = (SELECT max(seq) FROM op_siblings WHERE device_id = ?1)",
                       dev_b.id),
             2);

    CHECK(on_disk("CLEAR-CONTROL-9d2f", 18)); /* the scan sees what is in clear */
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        if (on_disk(secret[i], strlen(secret[i])))
            CHECK__FAIL("%s is on disk in clear", secret[i]);
}

/* ben's data key unwrapped by hand from keys.db and the master key file
 * (KEK epoch 1, random, wrapped under the master key's subkey), and its key
 * id: 0, or -1 (and a message) if a step fails. */
static int unwrap_data_key(const char *ben, uint8_t dk[SPRO_KEY_BYTES],
                           uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES])
{
    uint8_t wrapped[SPRO_WRAPPED_KEY_BYTES + 8], master[SPRO_KEY_BYTES], kek[SPRO_KEY_BYTES];
    uint8_t wkek[SPRO_WRAPPED_KEK_BYTES + 8], kwk[SPRO_KEY_BYTES];
    size_t mlen;
    uint8_t *m = slurp("master.key", &mlen);
    int ok = m != NULL && mlen == SPRO_KEY_BYTES &&
             query_blob("keys.db", "SELECT wrapped FROM data_keys WHERE ben = ?1", ben, NULL,
                        wrapped, sizeof wrapped, NULL) == SPRO_WRAPPED_KEY_BYTES &&
             spro_field_key_epoch(wrapped, SPRO_WRAPPED_KEY_BYTES) == 1 &&
             query_blob("keys.db", "SELECT wrapped FROM keks WHERE epoch = ?1", "1", NULL, wkek,
                        sizeof wkek, NULL) == SPRO_WRAPPED_KEK_BYTES;
    if (ok) {
        memcpy(master, m, SPRO_KEY_BYTES);
        spro_crypto_derive(kwk, master, 1, SPRO_KDF_CTX_KEY_WRAP);
        ok = spro_field_kek_unwrap(kek, wkek, SPRO_WRAPPED_KEK_BYTES, kwk, 1) == 0 &&
             spro_field_key_unwrap(dk, wrapped, SPRO_WRAPPED_KEY_BYTES, kek, 1, ben) == 0;
    }
    free(m);
    for (int i = 0, j = 0; i < 16; i++, j += 2) {
        j += ben[j] == '-';
        key_id[i] = (uint8_t)(check_hexval(ben[j]) << 4 | check_hexval(ben[j + 1]));
    }
    if (!ok)
        fprintf(stderr, "cannot unwrap the data key of %s\n", ben);
    return ok ? 0 : -1;
}

static void test_data_key_wrapped(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Wrapped-Key-Name"));
    uint8_t dk[SPRO_KEY_BYTES], key_id[SPRO_FIELD_KEY_ID_BYTES];
    CHECK_EQ(unwrap_data_key(ben, dk, key_id), 0);
    CHECK(!on_disk(dk, sizeof dk));

    /* The record's sealed field set opens with it, for its record, the
     * set's name and schema. */
    uint8_t sealed[256], plain[256];
    int64_t schema = -1;
    long n = query_blob("data.db",
                        "SELECT sealed, sealed_schema FROM records WHERE rtype = 'beneficiary'"
                        " AND rid = ?1",
                        ben, NULL, sealed, sizeof sealed, &schema);
    CHECK_INT(n, >, SPRO_FIELD_OVERHEAD);
    CHECK_EQ(schema, 1);
    struct spro_field_context ctx = {"beneficiary", ben, "*personal", 1};
    size_t plen;
    CHECK_EQ(spro_field_open(plain, sizeof plain, &plen, sealed, (size_t)n, &ctx, key_id, dk), 0);
    /* [[name, hlc, origin, author, schema, value (bin of the msgpack)]] */
    struct spro_value v = vstr("Wrapped-Key-Name");
    struct spro_mp_reader rd;
    uint32_t count, six;
    const char *name;
    const uint8_t *val;
    size_t nlen, vlen;
    uint64_t u;
    spro_mp_reader_init(&rd, plain, plen);
    CHECK_EQ(spro_mp_read_array(&rd, 10, &count), 0);
    CHECK_EQ(count, 1);
    CHECK_EQ(spro_mp_read_array(&rd, 10, &six), 0);
    CHECK_EQ(six, 6);
    CHECK_EQ(spro_mp_read_str(&rd, 64, &name, &nlen), 0);
    CHECK_BYTES(name, nlen, "family_name", 11);
    CHECK_EQ(spro_mp_read_uint(&rd, 1, UINT64_MAX, &u), 0);
    CHECK_EQ(spro_mp_read_str(&rd, 64, &name, &nlen), 0);
    CHECK_BYTES(name, nlen, dev_a.id, strlen(dev_a.id));  /* origin */
    CHECK_EQ(spro_mp_read_str(&rd, 64, &name, &nlen), 0); /* author */
    CHECK_EQ(spro_mp_read_uint(&rd, 0, UINT32_MAX, &u), 0);
    CHECK_EQ(u, 1); /* schema */
    CHECK_EQ(spro_mp_read_bin(&rd, 4096, &val, &vlen), 0);
    CHECK_BYTES(val, vlen, v.raw.p, v.raw.len);
    CHECK_EQ(spro_mp_finish(&rd), 0);
    /* Not as a field of the record, nor as the set of another record. */
    ctx.field_name = "family_name";
    CHECK_EQ(spro_field_open(plain, sizeof plain, &plen, sealed, (size_t)n, &ctx, key_id, dk),
             SPRO_EINTEGRITY);
    ctx.field_name = "*personal";
    ctx.record_type = "interaction";
    CHECK_EQ(spro_field_open(plain, sizeof plain, &plen, sealed, (size_t)n, &ctx, key_id, dk),
             SPRO_EINTEGRITY);
}

static void test_pull_paging(void)
{
    const char *bens[5];
    struct spro_wire_op *ops[5];
    for (int i = 0; i < 5; i++) {
        bens[i] = uuid();
        ops[i] = op_new(next_seq(&dev_d), "beneficiary", bens[i], bens[i], tick());
        op_set(ops[i], "qualification", vstr(i % 2 ? "V" : "IV"), NULL, 0);
    }
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_d, ops, 5, &r), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(r.results[i].status, SPRO_RESULT_ACK);
    struct spro_msg_pull_reply p;
    struct spro_bytes cursor = {NULL, 0};
    static const size_t pages[] = {2, 2, 1};
    int seen = 0;
    for (size_t k = 0; k < 3; k++) {
        CHECK_EQ(pull_at(&dev_d, cursor, 2, 60000, &p), 0);
        CHECK_EQ(p.nrecords, pages[k]);
        CHECK_EQ(p.more, k < 2);
        for (size_t i = 0; i < p.nrecords; i++)
            CHECK(bytes_is(p.records[i].rid, bens[seen++]));
        CHECK_EQ(p.cursor.len, 8);
        cursor = p.cursor;
    }
    CHECK_EQ(pull_at(&dev_d, cursor, 2, 60000, &p), 0);
    CHECK_EQ(p.nrecords, 0);
    CHECK(!p.more);
    CHECK_BYTES(p.cursor.p, p.cursor.len, cursor.p, cursor.len);

    /* An edit brings its record again, at the end. */
    struct spro_wire_op *op = op_new(next_seq(&dev_d), "beneficiary", bens[0], bens[0], tick());
    op_set(op, "qualification", vstr("III"), NULL, 0);
    CHECK_EQ(push1(&dev_d, op, &r), 0);
    CHECK_EQ(pull_at(&dev_d, cursor, 2, 60000, &p), 0);
    CHECK_EQ(p.nrecords, 1);
    CHECK(bytes_is(p.records[0].rid, bens[0]));

    /* Cursors this server did not make. */
    static const uint8_t three[3] = {0, 0, 1}, big[8] = {0x80, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(pull_at(&dev_d, (struct spro_bytes){three, 3}, 2, 60000, &p), SPRO_ERANGE);
    CHECK_EQ(pull_at(&dev_d, (struct spro_bytes){big, 8}, 2, 60000, &p), SPRO_ERANGE);
}

static void test_pull_max_bytes(void)
{
    char *big = palloc(2001);
    memset(big, 'x', 2000);
    struct spro_wire_op *ops[6];
    for (int i = 0; i < 6; i++) {
        const char *ben = uuid();
        big[0] = (char)('a' + i);
        ops[i] = op_new(next_seq(&dev_e), "beneficiary", ben, ben, tick());
        op_set(ops[i], "address", vstr(big), NULL, 0);
        op_set(ops[i], "home_region", vstr("53"), NULL, 0);
    }
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_e, ops, 6, &r), 0);
    struct spro_bytes cursor = {NULL, 0};
    size_t total = 0, pages = 0;
    struct spro_msg_pull_reply p;
    do {
        CHECK_EQ(pull_at(&dev_e, cursor, 1000, 5000, &p), 0);
        CHECK_INT(p.nrecords, >=, 1);
        struct spro_msg m = {.type = SPRO_MSG_PULL_REPLY, .u.pull_reply = p};
        struct spro_buf enc = {0};
        CHECK_EQ(spro_proto_encode(&m, &enc), 0);
        CHECK_INT(enc.len, <=, 5000);
        CHECK_INT(enc.len, >, 2000 * p.nrecords);
        spro_buf_free(&enc);
        total += p.nrecords;
        pages++;
        cursor = p.cursor;
    } while (p.more);
    CHECK_EQ(total, 6);
    CHECK_INT(pages, >=, 3);

    /* A record larger than the answer may be cannot be sent. */
    CHECK_EQ(pull_at(&dev_e, (struct spro_bytes){NULL, 0}, 1000, 1500, &p), SPRO_ETOOLONG);
    CHECK_EQ(p.nrecords, 0);
}

static void test_push_arena_too_small(void)
{
    const char *ben = uuid();
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "family_name", vstr("Small"), NULL, 0);
    int64_t seq = change_seq();
    struct spro_msg_push_reply r;
    struct spro_arena *a = new_arena(16);
    CHECK_EQ(push_at(&dev_a, &op, 1, NOW_MS, a, &r), SPRO_ENOMEM);
    CHECK_EQ(r.nresults, 0);
    CHECK_EQ(a->len, 0);
    CHECK_EQ(change_seq(), seq);
    CHECK_EQ(query_int("SELECT count(*) FROM records WHERE rid = ?1", ben), 0);
}

struct pusher {
    const struct spro_device *dev;
    struct spro_msg_push push;
    struct spro_arena *arena;
    struct spro_msg_push_reply reply;
    int rc;
};

static void *pusher_run(void *arg)
{
    struct pusher *w = arg;
    w->rc = spro_sync_push(dd, w->dev, &w->push, NOW_MS, DRIFT_MS, w->arena, &w->reply);
    return NULL;
}

static void test_concurrent_pushes(void)
{
    enum { OPS = 40 };
    const char *ben = new_ben(&dev_a, "family_name", vstr("Concurrent"));
    struct pusher w[2] = {{.dev = &dev_a}, {.dev = &dev_b}};
    for (int t = 0; t < 2; t++) {
        struct spro_wire_op *ops = palloc(OPS * sizeof *ops);
        for (int i = 0; i < OPS; i++) {
            struct spro_wire_op *op =
                op_new(next_seq(w[t].dev), "interaction", uuid(), ben, tick());
            op_set(op, "kind", vstr(t ? "call" : "visit"), NULL, 0);
            ops[i] = *op;
        }
        w[t].push = (struct spro_msg_push){ops, OPS};
        w[t].arena = new_arena(ARENA_CAP);
    }
    int64_t seq = change_seq();
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, pusher_run, &w[t]), 0);
    for (int t = 0; t < 2; t++)
        CHECK_EQ(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < 2; t++) {
        CHECK_EQ(w[t].rc, 0);
        CHECK_EQ(w[t].reply.nresults, OPS);
        for (int i = 0; i < OPS; i++)
            CHECK_EQ(w[t].reply.results[i].status, SPRO_RESULT_ACK);
    }
    CHECK_EQ(change_seq(), seq + 2 * OPS);
    CHECK_EQ(
        query_int("SELECT count(*) FROM records WHERE rtype = 'interaction' AND ben = ?1", ben),
        2 * OPS);
}

/* Two pushes forced into one group (the group is held busy until both
 * are queued): one fails inside the transaction (its arena holds its
 * answers but not its fields), the other is applied and acknowledged all
 * the same, and the failed one leaves nothing behind. */
static void test_group_push_failure_isolated(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Grouped"));
    struct pusher w[2] = {{.dev = &dev_a}, {.dev = &dev_b}};
    const char *rid[2];
    for (int t = 0; t < 2; t++) {
        struct spro_wire_op *op =
            op_new(next_seq(w[t].dev), "interaction", rid[t] = uuid(), ben, tick());
        op_set(op, "kind", vstr("visit"), NULL, 0);
        w[t].push = (struct spro_msg_push){op, 1};
    }
    w[0].arena = new_arena(ARENA_CAP);
    w[1].arena = new_arena(sizeof(struct spro_wire_result) + 64); /* answers, not fields */
    struct spro_group *g = spro_datadir__push_group(dd);
    pthread_mutex_lock(&g->mu);
    g->busy = 1; /* as if a batch ran: both pushes queue */
    pthread_mutex_unlock(&g->mu);
    uint64_t pushes0, commits0, pushes1, commits1;
    spro_sync_push_stats(dd, &pushes0, &commits0);
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, pusher_run, &w[t]), 0);
    for (size_t queued = 0; queued < 2;) {
        sched_yield();
        pthread_mutex_lock(&g->mu);
        queued = 0;
        for (struct spro_group_item *i = g->head; i != NULL; i = i->next)
            queued++;
        pthread_mutex_unlock(&g->mu);
    }
    pthread_mutex_lock(&g->mu);
    g->busy = 0;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    for (int t = 0; t < 2; t++)
        CHECK_EQ(pthread_join(th[t], NULL), 0);
    spro_sync_push_stats(dd, &pushes1, &commits1);
    CHECK_EQ(pushes1 - pushes0, 2);
    CHECK_EQ(commits1 - commits0, 1); /* one group */
    CHECK_EQ(w[0].rc, 0);
    CHECK_EQ(w[0].reply.nresults, 1);
    CHECK_EQ(w[0].reply.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(w[1].rc, SPRO_ENOMEM);
    CHECK_EQ(w[1].reply.nresults, 0);
    CHECK_EQ(query_int("SELECT count(*) FROM records WHERE rid = ?1", rid[0]), 1);
    CHECK_EQ(query_int("SELECT count(*) FROM records WHERE rid = ?1", rid[1]), 0);
    char sql[256];
    snprintf(sql, sizeof sql, KEPT_ANSWER_SQL, (unsigned long long)w[1].push.ops[0].seq);
    CHECK_EQ(query_int(sql, dev_b.id), 0);
    snprintf(sql, sizeof sql, KEPT_ANSWER_SQL, (unsigned long long)w[0].push.ops[0].seq);
    CHECK_EQ(query_int(sql, dev_a.id), 1);
}

/* ---- Referrals and transfers ---- */

/* d's cursor once it pulled everything there is (several answers if need
 * be). */
static struct spro_bytes drained(const struct spro_device *d)
{
    struct spro_bytes c = {NULL, 0};
    struct spro_msg_pull_reply p;
    do {
        if (pull_at(d, c, SPRO_SYNC_MAX_RECORDS, 256u << 10, &p) != 0)
            abort();
        c = p.cursor;
    } while (p.more);
    return c;
}

/* Everything after cursor c for d, in one answer (it must fit). */
static int pull_after(const struct spro_device *d, struct spro_bytes c,
                      struct spro_msg_pull_reply *out)
{
    int rc = pull_at(d, c, SPRO_SYNC_MAX_RECORDS, 256u << 10, out);
    return rc == 0 && out->more ? -1 : rc;
}

/* How many records of the answer belong to ben, and how many of those are
 * removal events. */
static size_t count_ben(const struct spro_msg_pull_reply *p, const char *ben, size_t *removed)
{
    size_t n = 0;
    *removed = 0;
    for (size_t i = 0; i < p->nrecords; i++)
        if (bytes_is(p->records[i].ben, ben)) {
            n++;
            *removed += p->records[i].removed;
        }
    return n;
}

/* The answer as the codec encodes it: 0 if it encodes. */
static int encodes(const struct spro_msg_pull_reply *p)
{
    struct spro_msg m = {.type = SPRO_MSG_PULL_REPLY, .u.pull_reply = *p};
    struct spro_buf enc = {0};
    int rc = spro_proto_encode(&m, &enc);
    spro_buf_free(&enc);
    return rc;
}

/* The op of d creating referral rid of ben to organisation `to`, with
 * from_org = d's organisation and status proposed (kind transfer when
 * asked; no kind field otherwise). */
static struct spro_wire_op *referral_op(const struct spro_device *d, const char *rid,
                                        const char *ben, const char *to, bool transfer)
{
    struct spro_wire_op *op = op_new(next_seq(d), "referral", rid, ben, tick());
    op_set(op, "from_org", vstr(d->org), NULL, 0);
    op_set(op, "to_org", vstr(to), NULL, 0);
    op_set(op, "reason", vstr("needs a work placement"), NULL, 0);
    op_set(op, "status", vstr("proposed"), NULL, 0);
    if (transfer)
        op_set(op, "kind", vstr("transfer"), NULL, 0);
    return op;
}

/* A referral of ben by d to `to`, acked; its id, and the version of its
 * status in *status. */
static const char *refer(const struct spro_device *d, const char *ben, const char *to,
                         bool transfer, struct spro_wire_version *status)
{
    const char *rid = uuid();
    struct spro_msg_push_reply r;
    if (push1(d, referral_op(d, rid, ben, to, transfer), &r) != 0 ||
        r.results[0].status != SPRO_RESULT_ACK)
        abort();
    *status = r.results[0].ver;
    return rid;
}

/* d sets the status of referral rid (of ben) to value, with base *base
 * (none when NULL); the answer in *r. */
static int set_status(const struct spro_device *d, const char *rid, const char *ben,
                      const char *value, const struct spro_wire_version *base,
                      struct spro_msg_push_reply *r)
{
    struct spro_wire_op *op = op_new(next_seq(d), "referral", rid, ben, tick());
    op_set(op, "status", vstr(value), base, base != NULL);
    return push1(d, op, r);
}

/* Whether the answer is a reject with code. */
static int rejected(const struct spro_msg_push_reply *r, const char *code)
{
    return r->nresults == 1 && r->results[0].status == SPRO_RESULT_REJECT &&
           bytes_is(r->results[0].code, code);
}

/* One op of d setting field = v on (rtype, rid) of ben, pushed. */
static int edit1(const struct spro_device *d, const char *rtype, const char *rid, const char *ben,
                 const char *field, struct spro_value v, struct spro_msg_push_reply *r)
{
    struct spro_wire_op *op = op_new(next_seq(d), rtype, rid, ben, tick());
    op_set(op, field, v, NULL, 0);
    return push1(d, op, r);
}

static void test_referral_proposed_then_accepted(void)
{
    /* org1 follows a beneficiary; org2 and org3 have read all they may. */
    const char *ben = new_ben(&dev_a, "family_name", vstr("Referred"));
    const char *inter = uuid();
    struct spro_msg_push_reply r;
    CHECK_EQ(edit1(&dev_a, "interaction", inter, ben, "note", vstr("org1's own note"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    struct spro_bytes ca = drained(&dev_a), cc = drained(&dev_c), cd = drained(&dev_d);

    /* A referral to org2: its devices receive the referral record, alone. */
    struct spro_wire_version proposed;
    const char *ref = refer(&dev_a, ben, "org2", false, &proposed);
    CHECK(bytes_is(proposed.origin, dev_a.id));
    CHECK_EQ(query_int("SELECT count(*) FROM scope_record WHERE rid = ?1", ref), 1);
    struct spro_msg_pull_reply p;
    CHECK_EQ(pull_after(&dev_c, cc, &p), 0);
    CHECK_EQ(p.nrecords, 1);
    const struct spro_wire_record *rec = record_of(&p, ref);
    CHECK(rec != NULL && bytes_is(rec->rtype, "referral") && bytes_is(rec->ben, ben));
    CHECK(!rec->removed && rec->nfields == 4);
    CHECK(sib_str(&rec_field(rec, "from_org")->siblings[0], "org1"));
    CHECK(sib_str(&rec_field(rec, "to_org")->siblings[0], "org2"));
    CHECK(sib_str(&rec_field(rec, "reason")->siblings[0], "needs a work placement"));
    CHECK(sib_str(&rec_field(rec, "status")->siblings[0], "proposed"));
    CHECK_EQ(encodes(&p), 0);
    cc = p.cursor;
    /* Nothing for an organisation it does not name. */
    CHECK_EQ(pull_after(&dev_d, cd, &p), 0);
    CHECK_EQ(p.nrecords, 0);

    /* The referral alone: org2 may write its status, nothing else of it,
     * nothing of the beneficiary. */
    CHECK_EQ(edit1(&dev_c, "referral", ref, ben, "reason", vstr("org2 rewrites"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(edit1(&dev_c, "beneficiary", ben, ben, "situation", vstr("x"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(edit1(&dev_c, "interaction", inter, ben, "kind", vstr("x"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(edit1(&dev_c, "consent", uuid(), ben, "purpose", vstr("x"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    struct spro_wire_op *two = op_new(next_seq(&dev_c), "referral", ref, ben, tick());
    op_set(two, "status", vstr("accepted"), &proposed, 1);
    op_set(two, "consent", vstr("given"), NULL, 0);
    CHECK_EQ(push1(&dev_c, two, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));

    /* Accepted by org2: its devices receive every record of the
     * beneficiary, the note of org1 left out. */
    CHECK_EQ(set_status(&dev_c, ref, ben, "accepted", &proposed, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    struct spro_wire_version accepted = r.results[0].ver;
    CHECK_EQ(query_int("SELECT count(*) FROM scope_record WHERE rid = ?1", ref), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM scope WHERE ben = ?1", ben), 2);
    CHECK_EQ(pull_after(&dev_c, cc, &p), 0);
    size_t removed;
    CHECK_EQ(count_ben(&p, ben, &removed), 3);
    CHECK_EQ(removed, 0);
    CHECK(record_of(&p, ben) != NULL && record_of(&p, inter) != NULL);
    CHECK(sib_str(&rec_field(record_of(&p, ref), "status")->siblings[0], "accepted"));
    CHECK(rec_field(record_of(&p, inter), "note") == NULL);

    /* A referral, not a transfer: org1 keeps the beneficiary, both follow
     * it; org1's devices see the new status, nothing removed. */
    CHECK_EQ(pull_after(&dev_a, ca, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), 3);
    CHECK_EQ(removed, 0);
    CHECK(sib_str(&rec_field(record_of(&p, ref), "status")->siblings[0], "accepted"));
    CHECK(rec_field(record_of(&p, inter), "note") != NULL);
    CHECK_EQ(edit1(&dev_a, "beneficiary", ben, ben, "situation", vstr("training"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(edit1(&dev_c, "beneficiary", ben, ben, "dropout", vbool(false), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    /* The note stays org1's: org2 cannot write it. */
    CHECK_EQ(edit1(&dev_c, "interaction", inter, ben, "note", vstr("org2's words"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));

    /* Done, by either side, once; never back. */
    CHECK_EQ(set_status(&dev_a, ref, ben, "done", &accepted, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    struct spro_wire_version done = r.results[0].ver;
    CHECK_EQ(set_status(&dev_c, ref, ben, "done", &done, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_TRANSITION));
    CHECK_EQ(set_status(&dev_c, ref, ben, "proposed", &done, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_TRANSITION));
    CHECK_EQ(query_int("SELECT count(*) FROM scope WHERE ben = ?1", ben), 2);
}

static void test_transfer_removes_from_sender(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Transferred"));
    const char *inter = uuid(), *enr = uuid();
    struct spro_msg_push_reply r;
    CHECK_EQ(edit1(&dev_a, "interaction", inter, ben, "note", vstr("stays with org1"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(edit1(&dev_a, "enrolment", enr, ben, "owner_org", vstr("org1"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    struct spro_bytes cb = drained(&dev_b), cd = drained(&dev_d);

    struct spro_wire_version proposed;
    const char *ref = refer(&dev_a, ben, "org3", true, &proposed);
    /* Proposed only: org1 keeps it all. */
    struct spro_msg_pull_reply p;
    size_t removed;
    CHECK_EQ(pull_after(&dev_b, cb, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), 1);
    CHECK_EQ(removed, 0);
    cb = p.cursor;
    CHECK_EQ(pull_after(&dev_d, cd, &p), 0);
    CHECK_EQ(p.nrecords, 1);
    CHECK((rec_field(record_of(&p, ref), "kind")) != NULL);
    cd = p.cursor;

    int64_t nrec = query_int("SELECT count(*) FROM records WHERE ben = ?1", ben);
    CHECK_EQ(nrec, 4);
    CHECK_EQ(set_status(&dev_d, ref, ben, "accepted", &proposed, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(query_int("SELECT count(*) FROM scope WHERE ben = ?1 AND org = 'org1'", ben), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM scope WHERE ben = ?1 AND org = 'org3'", ben), 1);
    CHECK_EQ(query_int("SELECT count(*) FROM scope_removed WHERE ben = ?1", ben), nrec);

    /* org1's devices: a removal event per record of the beneficiary, no
     * content; then nothing more of it, whatever changes. */
    CHECK_EQ(pull_after(&dev_b, cb, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), (size_t)nrec);
    CHECK_EQ(removed, (size_t)nrec);
    const char *ids[4] = {ben, inter, enr, ref};
    for (int i = 0; i < 4; i++) {
        const struct spro_wire_record *rec = record_of(&p, ids[i]);
        CHECK(rec != NULL && rec->removed && rec->nfields == 0);
    }
    CHECK_EQ(encodes(&p), 0);
    cb = p.cursor;
    CHECK_EQ(edit1(&dev_d, "beneficiary", ben, ben, "situation", vstr("apprentice"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(pull_after(&dev_b, cb, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), 0);
    /* A first pull of org1 is a snapshot: no removal events. */
    CHECK_EQ(pull_all(&dev_a, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), 0);
    /* org1 may write nothing of it any more. */
    CHECK_EQ(edit1(&dev_a, "beneficiary", ben, ben, "situation", vstr("x"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(set_status(&dev_a, ref, ben, "done", NULL, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));

    /* org3's devices: every record, without org1's note, which stays on
     * the server, readable by org1 alone. */
    CHECK_EQ(pull_after(&dev_d, cd, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), (size_t)nrec);
    CHECK_EQ(removed, 0);
    const struct spro_wire_record *rec = record_of(&p, inter);
    CHECK(rec != NULL && rec_field(rec, "note") == NULL);
    CHECK_EQ(siblings_count("interaction", inter, "note", NULL), 1);
    CHECK_EQ(edit1(&dev_d, "interaction", inter, ben, "note", vstr("org3's words"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(pull_all(&dev_d, &p), 0);
    CHECK(rec_field(record_of(&p, inter), "note") == NULL);
}

static void test_transfer_back_and_paging(void)
{
    enum { N = 9 };
    const char *ben = new_ben(&dev_a, "family_name", vstr("Many records"));
    struct spro_msg_push_reply r;
    for (int i = 0; i < N; i++) {
        CHECK_EQ(edit1(&dev_a, "appointment", uuid(), ben, "place", vstr("Lille"), &r), 0);
        CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    }
    struct spro_bytes cb = drained(&dev_b);
    struct spro_wire_version proposed;
    const char *ref = refer(&dev_a, ben, "org2", true, &proposed);
    CHECK_EQ(set_status(&dev_c, ref, ben, "accepted", &proposed, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);

    /* N + 2 removal events, 3 at a time, each once. */
    struct spro_msg_pull_reply p;
    struct spro_bytes c = cb;
    size_t total = 0, removed, pages = 0;
    do {
        CHECK_EQ(pull_at(&dev_b, c, 3, 60000, &p), 0);
        CHECK_INT(p.nrecords, <=, 3);
        size_t n = count_ben(&p, ben, &removed);
        CHECK_EQ(removed, n);
        total += n;
        c = p.cursor;
        pages++;
    } while (p.more);
    CHECK_EQ(total, N + 2);
    CHECK_INT(pages, >=, 4);

    /* org2 hands it back (a transfer again): org1's devices get the
     * referral to accept, then every record again, after the removals. */
    struct spro_wire_version back;
    const char *ref2 = refer(&dev_c, ben, "org1", true, &back);
    CHECK_EQ(pull_after(&dev_b, c, &p), 0);
    CHECK_EQ(p.nrecords, 1);
    CHECK(record_of(&p, ref2) != NULL && !record_of(&p, ref2)->removed);
    CHECK_EQ(set_status(&dev_b, ref2, ben, "accepted", &back, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    /* From before the first transfer: removals first, then the records. */
    CHECK_EQ(pull_after(&dev_b, cb, &p), 0);
    size_t first = p.nrecords, last = 0;
    for (size_t i = 0; i < p.nrecords; i++) {
        if (!bytes_is(p.records[i].ben, ben))
            continue;
        if (p.records[i].removed)
            last = i;
        else if (first == p.nrecords)
            first = i;
    }
    CHECK_INT(last, <, first);
    CHECK_EQ(count_ben(&p, ben, &removed), 2 * (N + 2) + 1);
    CHECK_EQ(removed, N + 2);
    CHECK_EQ(edit1(&dev_b, "beneficiary", ben, ben, "situation", vstr("back"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    /* And org2 lost it. */
    CHECK_EQ(edit1(&dev_c, "beneficiary", ben, ben, "situation", vstr("x"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
}

static void test_referral_authorisation(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Authorised"));
    struct spro_wire_version proposed;
    const char *ref = refer(&dev_a, ben, "org2", false, &proposed);
    struct spro_msg_push_reply r, ghost;

    /* A third organisation accepting: the answer for a record that does
     * not exist. */
    CHECK_EQ(set_status(&dev_d, uuid(), ben, "accepted", &proposed, &ghost), 0);
    CHECK(rejected(&ghost, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(set_status(&dev_d, ref, ben, "accepted", &proposed, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK(same_answer(&r.results[0], &ghost.results[0]));
    /* The sender cannot accept or refuse its own referral either. */
    CHECK_EQ(set_status(&dev_a, ref, ben, "accepted", &proposed, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(set_status(&dev_b, ref, ben, "refused", &proposed, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    /* Out of order, or decided on a status not seen. */
    CHECK_EQ(set_status(&dev_c, ref, ben, "done", &proposed, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_TRANSITION));
    CHECK_EQ(set_status(&dev_c, ref, ben, "accepted", NULL, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_TRANSITION));
    struct spro_wire_op *op = op_new(next_seq(&dev_c), "referral", ref, ben, tick());
    op_set(op, "status", vnil(), &proposed, 1);
    CHECK_EQ(push1(&dev_c, op, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_TRANSITION));
    /* Fixed at creation. */
    struct spro_msg_push_reply r2;
    CHECK_EQ(edit1(&dev_a, "referral", ref, ben, "to_org", vstr("org3"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_VALUE));
    CHECK_EQ(edit1(&dev_a, "referral", ref, ben, "kind", vstr("transfer"), &r2), 0);
    CHECK(rejected(&r2, SPRO_REJECT_BAD_VALUE));
    /* The sender may still edit the rest. */
    CHECK_EQ(edit1(&dev_a, "referral", ref, ben, "consent", vstr("given 2024-05-02"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);

    /* Refused: no scope change; org2 keeps the refused referral alone. */
    struct spro_bytes cc = drained(&dev_c);
    CHECK_EQ(set_status(&dev_c, ref, ben, "refused", &proposed, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    struct spro_wire_version refused = r.results[0].ver;
    CHECK_EQ(query_int("SELECT count(*) FROM scope WHERE ben = ?1", ben), 1);
    CHECK_EQ(query_int("SELECT count(*) FROM scope_removed WHERE ben = ?1", ben), 0);
    struct spro_msg_pull_reply p;
    size_t removed;
    CHECK_EQ(pull_after(&dev_c, cc, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), 1);
    CHECK(sib_str(&rec_field(record_of(&p, ref), "status")->siblings[0], "refused"));
    CHECK_EQ(edit1(&dev_c, "beneficiary", ben, ben, "situation", vstr("x"), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(set_status(&dev_c, ref, ben, "accepted", &refused, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_TRANSITION));
    CHECK_EQ(pull_all(&dev_a, &p), 0);
    CHECK(record_of(&p, ben) != NULL);
}

static void test_referral_creation_checks(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Checked"));
    struct spro_msg_push_reply r;
    int64_t seq = change_seq();
    struct {
        const char *field;
        struct spro_value v; /* replaces the field; nil kind: removes it */
    } bad[] = {
        {"from_org", vstr("org2")},
        {"to_org", vstr("org1")},
        {"to_org", vstr("nowhere")},
        {"to_org", vint(2)},
        {"status", vstr("accepted")},
        {"kind", vstr("handover")},
        {"to_org", {0}},
        {"from_org", {0}},
        {"status", {0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct spro_wire_op *op = referral_op(&dev_a, uuid(), ben, "org2", false);
        struct spro_wire_edit *e = (struct spro_wire_edit *)op->set;
        size_t j = 0;
        while (j < op->nset && !bytes_is(e[j].name, bad[i].field))
            j++;
        if (j == op->nset)
            op_set(op, bad[i].field, bad[i].v, NULL, 0);
        else if (bad[i].v.raw.p == NULL)
            e[j] = e[--op->nset];
        else
            e[j].val = bad[i].v;
        CHECK_EQ(push1(&dev_a, op, &r), 0);
        CHECK(rejected(&r, SPRO_REJECT_BAD_VALUE));
    }
    CHECK_EQ(change_seq(), seq);
    /* A beneficiary out of scope, or none: not_found. */
    CHECK_EQ(push1(&dev_d, referral_op(&dev_d, uuid(), ben, "org1", false), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(push1(&dev_a, referral_op(&dev_a, uuid(), uuid(), "org2", false), &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    CHECK_EQ(query_int("SELECT count(*) FROM scope_record", NULL),
             query_int("SELECT count(*) FROM scope_record AS k JOIN records AS r"
                       " ON r.rtype = k.rtype AND r.rid = k.rid",
                       NULL));

    /* Two referrals pending; once a transfer took the beneficiary from
     * org1, the other can no longer be accepted. */
    struct spro_wire_version v1, v2;
    const char *shared = refer(&dev_a, ben, "org2", false, &v1);
    const char *moved = refer(&dev_a, ben, "org3", true, &v2);
    CHECK_EQ(set_status(&dev_d, moved, ben, "accepted", &v2, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(set_status(&dev_c, shared, ben, "accepted", &v1, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_BAD_TRANSITION));
    CHECK_EQ(set_status(&dev_c, shared, ben, "refused", &v1, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(query_int("SELECT count(*) FROM scope WHERE ben = ?1", ben), 1);
}

/* ---- The sync horizon ---- */

/* Runs sql (?1 bound to arg when not NULL) on data.db: 0 or -1. */
static int exec_sql(const char *sql, const char *arg)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path_of("data.db"), &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (arg != NULL)
            sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static void enrol(const struct spro_device *d)
{
    CHECK_EQ(exec_sql("INSERT INTO devices(id, user_id, static_pk, state, enrolled_at, last_ts_ms)"
                      " VALUES (?1, 'ua', randomblob(32), 'active', 0, 0)",
                      d->id),
             0);
}

static void set_state(const struct spro_device *d, const char *state)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE devices SET state = '%s' WHERE id = ?1", state);
    CHECK_EQ(exec_sql(sql, d->id), 0);
}

/* d drains its scope and acknowledges the cursor at at_ms; the cursor. */
static struct spro_bytes drain_ack(const struct spro_device *d, int64_t at_ms)
{
    struct spro_bytes c = drained(d);
    struct spro_msg_pull p = {c, 1};
    if (spro_sync_ack(dd, d, &p, at_ms, 0, NULL) != 0)
        abort();
    return c;
}

static int64_t cursor_seq(struct spro_bytes c)
{
    int64_t v = 0;
    for (size_t i = 0; i < c.len; i++)
        v = v << 8 | c.p[i];
    return v;
}

/* A beneficiary of d (with one interaction) transferred to org3 and
 * accepted by dev_d: its id; its removal events are logged for d's org. */
static const char *transferred(const struct spro_device *d)
{
    const char *ben = new_ben(d, "family_name", vstr("Horizon"));
    struct spro_msg_push_reply r;
    if (edit1(d, "interaction", uuid(), ben, "kind", vstr("call"), &r) != 0)
        abort();
    struct spro_wire_version proposed;
    const char *ref = refer(d, ben, "org3", true, &proposed);
    if (set_status(&dev_d, ref, ben, "accepted", &proposed, &r) != 0 ||
        r.results[0].status != SPRO_RESULT_ACK ||
        query_int("SELECT count(*) FROM scope_removed WHERE ben = ?1", ben) != 3)
        abort();
    return ben;
}

/* A revoked device never pushes again: the answers kept for its retries
 * go with the revocation; its quarantined ops stay. */
static void test_revoked_device_answers_forgotten(void)
{
    static const struct spro_device dev_f = {.id = "ffffffff-0000-4000-8000-00000000000f",
                                             .user = "ua",
                                             .org = "org1",
                                             .role = "counsellor"};
    enrol(&dev_f);
    const char *ben = uuid();
    struct spro_wire_op *ops[2];
    ops[0] = op_new(next_seq(&dev_f), "beneficiary", ben, ben, tick());
    op_set(ops[0], "family_name", vstr("Revoked"), NULL, 0);
    ops[1] = op_new(next_seq(&dev_f), "beneficiary", ben, ben, tick());
    op_set(ops[1], "birth_date", vstr("2008-02-30"), NULL, 0); /* no such day */
    struct spro_msg_push_reply r;
    CHECK_EQ(push(&dev_f, ops, 2, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(r.results[1].status, SPRO_RESULT_REJECT);
    CHECK_EQ(query_int("SELECT count(*) FROM op_acks WHERE device_id = ?1", dev_f.id), 1);
    CHECK_EQ(query_int("SELECT count(*) FROM ops WHERE device_id = ?1", dev_f.id), 1);
    char why[256];
    CHECK_EQ(spro_device_set_state(dd, dev_f.id, SPRO_DEVICE_REVOKED, why, sizeof why), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM op_acks WHERE device_id = ?1", dev_f.id), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM ops WHERE device_id = ?1", dev_f.id), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM quarantine WHERE device_id = ?1", dev_f.id), 1);
    CHECK_EQ(siblings_count("beneficiary", ben, "family_name", NULL), 1); /* its work stays */
}

static void test_horizon_and_purge(void)
{
    const struct spro_device *devs[] = {&dev_a, &dev_b, &dev_c, &dev_d};
    for (size_t i = 0; i < 4; i++)
        enrol(devs[i]);
    struct spro_bytes ca = drain_ack(&dev_a, NOW_MS), cb = drain_ack(&dev_b, NOW_MS);
    drain_ack(&dev_c, NOW_MS);
    drain_ack(&dev_d, NOW_MS);
    const char *ben = transferred(&dev_b);
    const char *q = "SELECT count(*) FROM scope_removed WHERE ben = ?1";

    /* dev_a, the slowest active device, holds the horizon: dev_b got the
     * removals, the others moved on, nothing is purged. */
    struct spro_msg_pull_reply p;
    size_t removed, purged = 99;
    CHECK_EQ(pull_after(&dev_b, cb, &p), 0);
    CHECK_EQ(count_ben(&p, ben, &removed), 3);
    struct spro_bytes cb2 = p.cursor;
    struct spro_msg_pull ack = {cb2, 1};
    CHECK_EQ(spro_sync_ack(dd, &dev_b, &ack, NOW_MS, 0, &purged), 0);
    CHECK_EQ(purged, 0);
    drain_ack(&dev_c, NOW_MS);
    drain_ack(&dev_d, NOW_MS);
    CHECK_EQ(query_int(q, ben), 3);
    CHECK_EQ(query_int("SELECT acked_seq FROM device_sync WHERE device_id = ?1", dev_a.id),
             cursor_seq(ca));
    CHECK_EQ(query_int("SELECT acked_seq FROM device_sync WHERE device_id = ?1", dev_b.id),
             cursor_seq(cb2));
    /* The same cursor again writes nothing (until the refresh is due). */
    CHECK_EQ(spro_sync_ack(dd, &dev_b, &ack, NOW_MS + 1000, 0, &purged), 0);
    CHECK_EQ(query_int("SELECT acked_at FROM device_sync WHERE device_id = ?1", dev_b.id), NOW_MS);

    /* dev_a revoked: it no longer holds the horizon; the tombstones go. */
    set_state(&dev_a, "revoked");
    CHECK_EQ(spro_sync_purge(dd, NOW_MS, 0, &purged), 0);
    CHECK_INT(purged, >=, 3);
    CHECK_EQ(query_int(q, ben), 0);
    int64_t point = query_int("SELECT purged_seq FROM sync_state", NULL);
    CHECK_INT(point, >, cursor_seq(cb));
    CHECK_INT(point, <=, cursor_seq(cb2));

    /* A cursor below the purge point: reset, no record, empty cursor. */
    CHECK_EQ(pull_after(&dev_b, cb, &p), 0);
    CHECK(p.reset);
    CHECK_EQ(p.nrecords, 0);
    CHECK_EQ(p.cursor.len, 0);
    CHECK(!p.more);
    CHECK_EQ(encodes(&p), 0);
    /* At or above it: a normal answer; from empty: a snapshot. */
    CHECK_EQ(pull_after(&dev_b, cb2, &p), 0);
    CHECK(!p.reset);
    CHECK_EQ(p.cursor.len, 8);
    CHECK_EQ(pull_all(&dev_b, &p), 0);
    CHECK(!p.reset);
    CHECK_EQ(count_ben(&p, ben, &removed), 0);

    /* dev_a back, idle since NOW_MS; the others ack ten days later.  It
     * holds the horizon, unless idle devices are let go. */
    set_state(&dev_a, "active");
    int64_t later = NOW_MS + INT64_C(10) * 86400 * 1000, day = INT64_C(86400) * 1000;
    const char *ben2 = transferred(&dev_b);
    drain_ack(&dev_b, later);
    drain_ack(&dev_c, later);
    drain_ack(&dev_d, later);
    CHECK_EQ(spro_sync_purge(dd, later, 0, &purged), 0);
    CHECK_EQ(query_int(q, ben2), 3);
    CHECK_EQ(spro_sync_purge(dd, later, 30 * day, &purged), 0);
    CHECK_EQ(query_int(q, ben2), 3);
    CHECK_EQ(spro_sync_purge(dd, later, day, &purged), 0);
    CHECK_EQ(purged, 3);
    CHECK_EQ(query_int(q, ben2), 0);
    /* Returning from beyond the horizon, dev_a is told to reset. */
    CHECK_EQ(pull_after(&dev_a, ca, &p), 0);
    CHECK(p.reset);
    /* A wiped device does not hold the horizon either, nor one that never
     * pulled (dev_e). */
    set_state(&dev_a, "wiped");
    CHECK_EQ(query_int("SELECT count(*) FROM device_sync WHERE device_id = ?1", dev_e.id), 0);
    CHECK_EQ(spro_sync_purge(dd, later, 0, &purged), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM scope_removed", NULL), 0);
}

/* ---- Duplicates and merge ---- */

/* The duplicate record of d's first pull whose field a is ben, or NULL. */
static const struct spro_wire_record *duplicate_of(const struct spro_msg_pull_reply *r,
                                                   const char *ben)
{
    for (size_t i = 0; i < r->nrecords; i++) {
        const struct spro_wire_field *f = rec_field(&r->records[i], "a");
        if (bytes_is(r->records[i].rtype, "duplicate") && f != NULL &&
            sib_str(&f->siblings[0], ben))
            return &r->records[i];
    }
    return NULL;
}

static int has_duplicates(const struct spro_msg_pull_reply *r)
{
    for (size_t i = 0; i < r->nrecords; i++)
        if (bytes_is(r->records[i].rtype, "duplicate"))
            return 1;
    return 0;
}

static int field_is(const struct spro_wire_record *r, const char *name, const char *s)
{
    const struct spro_wire_field *f = rec_field(r, name);
    return f != NULL && f->nsiblings == 1 && sib_str(&f->siblings[0], s);
}

static void test_duplicates_detected(void)
{
    struct spro_msg_push_reply r;
    struct spro_msg_pull_reply pb, pa;
    /* The same INE from two devices: one duplicate record, ben the older. */
    const char *k = new_ben(&dev_a, "ine", vstr("22334-45566-b"));
    const char *o = new_ben(&dev_b, "ine", vstr("22334-45566-b"));
    CHECK_EQ(query_int("SELECT count(*) FROM duplicates WHERE a = ?1 OR b = ?1", k), 1);
    CHECK_EQ(pull_all(&dev_b, &pb), 0);
    const struct spro_wire_record *d = duplicate_of(&pb, k);
    CHECK(d != NULL && bytes_is(d->ben, k));
    CHECK(field_is(d, "b", o) && field_is(d, "rule", "ine") && field_is(d, "status", "open"));
    CHECK(d != NULL && bytes_is(rec_field(d, "status")->siblings[0].ver.origin, "srv:0"));
    /* A counsellor's device sees none, and may not write one. */
    CHECK_EQ(pull_all(&dev_a, &pa), 0);
    CHECK(!has_duplicates(&pa));
    struct spro_wire_op *op =
        op_new(next_seq(&dev_a), "duplicate", (const char *)d->rid.p, k, tick());
    op->rid.len = d->rid.len;
    op_set(op, "status", vstr("invalid"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK(r.results[0].status == SPRO_RESULT_REJECT && bytes_is(r.results[0].code, "not_found"));
    /* Writing it again changes nothing: one record per pair. */
    op = op_new(next_seq(&dev_b), "beneficiary", o, o, tick());
    op_set(op, "ine", vstr("22334-45566-b"), NULL, 0);
    op_set(op, "phone", vstr("0600000000"), NULL, 0);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM duplicates WHERE a = ?1 OR b = ?1", k), 1);

    /* Same family name, given name and birth date, another organisation:
     * rule name_birth, given to org2's supervisors by scope_record. */
    const char *n1 = uuid(), *n2 = uuid();
    op = op_new(next_seq(&dev_a), "beneficiary", n1, n1, tick());
    op_set(op, "family_name", vstr("Duplessis"), NULL, 0);
    op_set(op, "given_name", vstr("Noémie"), NULL, 0);
    op_set(op, "birth_date", vstr("2008-02-29"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    op = op_new(next_seq(&dev_c), "beneficiary", n2, n2, tick());
    op_set(op, "family_name", vstr("DUPLESSIS"), NULL, 0);
    op_set(op, "given_name", vstr("Noemie"), NULL, 0);
    op_set(op, "birth_date", vstr("2008-02-29"), NULL, 0);
    CHECK_EQ(push1(&dev_c, op, &r), 0);
    CHECK_EQ(pull_all(&dev_b, &pb), 0);
    CHECK((d = duplicate_of(&pb, n1)) != NULL && field_is(d, "b", n2) &&
          field_is(d, "rule", "name_birth"));
    CHECK_EQ(
        query_int("SELECT count(*) FROM scope_record WHERE rtype = 'duplicate'"
                  " AND org = 'org2' AND rid = (SELECT rid FROM duplicates WHERE a = ?1 OR b = ?1)",
                  n1),
        1);
    CHECK_EQ(pull_all(&dev_c, &pa), 0);
    CHECK(!has_duplicates(&pa));
}

/* Detection runs after an edit that moves a blind index (here the INE),
 * and only then: an edit of another field finds nothing new. */
static void test_duplicates_detected_on_edit(void)
{
    struct spro_msg_push_reply r;
    const char *k = new_ben(&dev_a, "ine", vstr("33445-56677-c"));
    const char *o = new_ben(&dev_a, "phone", vstr("0611111111"));
    CHECK_EQ(query_int("SELECT count(*) FROM duplicates WHERE a = ?1 OR b = ?1", k), 0);
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", o, o, tick());
    op_set(op, "situation", vstr("school"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(query_int("SELECT count(*) FROM duplicates WHERE a = ?1 OR b = ?1", k), 0);
    op = op_new(next_seq(&dev_a), "beneficiary", o, o, tick());
    op_set(op, "ine", vstr("33445-56677-c"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(query_int("SELECT count(*) FROM duplicates WHERE a = ?1 OR b = ?1", k), 1);
    CHECK_EQ(query_int("SELECT count(*) FROM duplicates WHERE a = ?1 OR b = ?1", o), 1);
}

/* ---- Retention and erasure: dates and names ---- */

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct seen_due {
    const char *ben;
    int found;
    int64_t closed_ms;
};

static void note_due(const struct spro_retention_due *d, void *arg)
{
    struct seen_due *s = arg;
    if (strcmp(d->ben, s->ben) == 0)
        s->found = 1, s->closed_ms = d->closed_at_ms;
}

/* A closing whose device clock says 2015: retention dates it from when the
 * server stored it, so a five-year rule does not find it due now. */
static void test_retention_ignores_a_backdated_clock(void)
{
    const char *ben = uuid();
    uint64_t old = (UINT64_C(1420070400000) << 16) + 1; /* 2015-01-01 */
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, old);
    op_set(op, "family_name", vstr("Backdated"), NULL, 0);
    op_set(op, "state", vstr("closed"), NULL, 0);
    struct spro_msg_push_reply r;
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    int64_t now = wall_now_ms();
    struct spro_retention_rule five, zero;
    CHECK_EQ(spro_retention_parse("*:5", &five), 0);
    CHECK_EQ(spro_retention_parse("*:0", &zero), 0);
    struct seen_due s = {.ben = ben};
    size_t due;
    CHECK_EQ(spro_retention_run(dd, &five, 1, now, 1, note_due, &s, &due), 0);
    CHECK(!s.found);
    CHECK_EQ(spro_retention_run(dd, &zero, 1, now + 1000, 1, note_due, &s, &due), 0);
    CHECK(s.found);
    CHECK_EQ(s.closed_ms, NOW_MS); /* the server's time (the push's), not 2015 */
    /* Reopened after the run found it due: its erasure keeps it. */
    op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    struct spro_wire_version base = ver(old, dev_a.id);
    op_set(op, "state", vstr("active"), &base, 1);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    char why[256] = "";
    CHECK_EQ(spro_retention_erase(dd, ben, s.closed_ms, now + 1000, why, sizeof why), SPRO_ERANGE);
    CHECK(strstr(why, "no longer due") != NULL);
    CHECK_EQ(query_int("SELECT count(*) FROM erased WHERE ben = ?1", ben), 0);
}

static void test_merge(void)
{
    struct spro_msg_push_reply r;
    struct spro_msg_pull_reply pl;
    const char *k = new_ben(&dev_a, "ine", vstr("77889-90011-c"));
    const char *o = new_ben(&dev_a, "ine", vstr("77889-90011-c"));
    /* An interaction of OTHER with a personal note. */
    const char *it = uuid();
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "interaction", it, o, tick());
    op_set(op, "note", vstr("MERGE-NOTE-5a1"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);

    /* A counsellor may not merge. */
    op = op_new(next_seq(&dev_a), "beneficiary", o, o, tick());
    op_set(op, "state", vstr("merged"), NULL, 0);
    op_set(op, "merged_into", vstr(k), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK(r.results[0].status == SPRO_RESULT_REJECT && bytes_is(r.results[0].code, "bad_value"));
    /* A supervisor may, into an existing beneficiary other than itself. */
    op = op_new(next_seq(&dev_b), "beneficiary", o, o, tick());
    op_set(op, "state", vstr("merged"), NULL, 0);
    op_set(op, "merged_into", vstr(o), NULL, 0);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK(r.results[0].status == SPRO_RESULT_REJECT && bytes_is(r.results[0].code, "bad_value"));
    op = op_new(next_seq(&dev_b), "beneficiary", o, o, tick());
    op_set(op, "state", vstr("merged"), NULL, 0);
    op_set(op, "merged_into", vstr(k), NULL, 0);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(query_int("SELECT count(*) FROM merged WHERE ben = ?1", o), 1);

    CHECK_EQ(pull_all(&dev_a, &pl), 0);
    const struct spro_wire_record *b = record_of(&pl, o), *i = record_of(&pl, it);
    CHECK(field_is(b, "state", "merged") && field_is(b, "merged_into", k));
    /* OTHER's records moved to KEEP, their personal values opened with
     * KEEP's data key. */
    CHECK(i != NULL && bytes_is(i->ben, k) && field_is(i, "note", "MERGE-NOTE-5a1"));

    /* A counsellor's device that still holds OTHER: its edits land on KEEP. */
    op = op_new(next_seq(&dev_a), "beneficiary", o, o, tick());
    op_set(op, "phone", vstr("0611223344"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    const char *it2 = uuid();
    op = op_new(next_seq(&dev_a), "interaction", it2, o, tick());
    op_set(op, "kind", vstr("call"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    op = op_new(next_seq(&dev_a), "interaction", it, o, tick());
    op_set(op, "kind", vstr("visit"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(pull_all(&dev_a, &pl), 0);
    CHECK(field_is(record_of(&pl, k), "phone", "0611223344"));
    CHECK(rec_field(record_of(&pl, o), "phone") == NULL);
    CHECK((i = record_of(&pl, it2)) != NULL && bytes_is(i->ben, k) && field_is(i, "kind", "call"));
    CHECK((i = record_of(&pl, it)) != NULL && bytes_is(i->ben, k) && field_is(i, "kind", "visit"));
    /* A counsellor may not undo it either; a supervisor may. */
    op = op_new(next_seq(&dev_a), "beneficiary", o, o, tick());
    op_set(op, "state", vstr("active"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK(r.results[0].status == SPRO_RESULT_REJECT && bytes_is(r.results[0].code, "bad_value"));
    op = op_new(next_seq(&dev_b), "beneficiary", o, o, tick());
    op_set(op, "state", vstr("active"), NULL, 0);
    op_set(op, "merged_into", vnil(), NULL, 0);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK(r.results[0].status != SPRO_RESULT_REJECT);
    CHECK_EQ(query_int("SELECT count(*) FROM merged WHERE ben = ?1", o), 0);
}

/* A beneficiary merged into another: its records live under the one kept,
 * so erasing or exporting the merged id names the keeper instead of
 * quietly doing half the work. */
/* An erased beneficiary stays out of reach even if a scope row came back
 * (here put back by hand): edits of its records and new records of it are
 * answered not_found. */
static void test_erased_stays_not_found(void)
{
    struct spro_msg_push_reply r;
    const char *ben = new_ben(&dev_a, "family_name", vstr("Effacé"));
    char why[256] = "";
    CHECK_EQ(spro_subject_erase(dd, ben, "request", NULL, NOW_MS, NULL, why, sizeof why), 0);
    CHECK_EQ(exec_sql("INSERT OR IGNORE INTO ben_scope(ben, org)"
                      " SELECT id, 'org1' FROM records WHERE rid = ?1",
                      ben),
             0);
    CHECK_EQ(query_int("SELECT count(*) FROM scope WHERE ben = ?1 AND org = 'org1'", ben), 1);
    struct spro_wire_op *op = op_new(next_seq(&dev_a), "beneficiary", ben, ben, tick());
    op_set(op, "phone", vstr("0622222222"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
    op = op_new(next_seq(&dev_a), "interaction", uuid(), ben, tick());
    op_set(op, "kind", vstr("meeting"), NULL, 0);
    CHECK_EQ(push1(&dev_a, op, &r), 0);
    CHECK(rejected(&r, SPRO_REJECT_NOT_FOUND));
}

static void test_erase_names_the_keeper_of_a_merge(void)
{
    struct spro_msg_push_reply r;
    const char *k = new_ben(&dev_a, "ine", vstr("55443-22110-m"));
    const char *o = new_ben(&dev_a, "ine", vstr("55443-22110-m"));
    struct spro_wire_op *op = op_new(next_seq(&dev_b), "beneficiary", o, o, tick());
    op_set(op, "state", vstr("merged"), NULL, 0);
    op_set(op, "merged_into", vstr(k), NULL, 0);
    CHECK_EQ(push1(&dev_b, op, &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    char why[256] = "";
    CHECK_EQ(spro_subject_erase(dd, o, "request", NULL, NOW_MS, NULL, why, sizeof why),
             SPRO_ENOENT);
    CHECK(strstr(why, "was merged into") != NULL && strstr(why, k) != NULL);
    struct spro_buf out = {0};
    why[0] = '\0';
    CHECK_EQ(spro_subject_export(dd, o, NOW_MS, &out, why, sizeof why), SPRO_ENOENT);
    CHECK(strstr(why, "was merged into") != NULL && strstr(why, k) != NULL);
    CHECK_EQ(out.len, 0);
    spro_buf_free(&out);
    CHECK_EQ(query_int("SELECT count(*) FROM erased WHERE ben = ?1", o), 0);
    /* The keeper's export holds the merged one's records too. */
    CHECK_EQ(spro_subject_export(dd, k, NOW_MS, &out, why, sizeof why), 0);
    CHECK(out.len > 0 && memmem(out.data, out.len, o, strlen(o)) != NULL);
    spro_memzero(out.data, out.len);
    spro_buf_free(&out);
}

/* Answers kept for retries are forgotten once the device has moved past
 * them and they are older than any request could be (8 days): a retry
 * within that time still gets the very same answer. */
static void test_old_answers_pruned(void)
{
    const struct spro_device *d = &dev_e;
    const int64_t day = INT64_C(24) * 3600 * 1000;
    struct spro_msg_push_reply r;
    char sql[256];
    uint64_t s1 = next_seq(d), s2, s3;
    const char *b1 = uuid();
    struct spro_wire_op *op = op_new(s1, "beneficiary", b1, b1, tick());
    op_set(op, "family_name", vstr("Pruned-One"), NULL, 0);
    CHECK_EQ(push_at(d, &op, 1, NOW_MS, new_arena(ARENA_CAP), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    /* A push two days later: the first answer is kept (too recent). */
    const char *b2 = uuid();
    struct spro_wire_op *op2 = op_new(s2 = next_seq(d), "beneficiary", b2, b2, tick());
    op_set(op2, "family_name", vstr("Pruned-Two"), NULL, 0);
    CHECK_EQ(push_at(d, &op2, 1, NOW_MS + 2 * day, new_arena(ARENA_CAP), &r), 0);
    snprintf(sql, sizeof sql, KEPT_ANSWER_SQL, (unsigned long long)s1);
    CHECK_EQ(query_int(sql, d->id), 1);
    /* Nine days after the first: forgotten; the second is kept (seven days). */
    const char *b3 = uuid();
    struct spro_wire_op *op3 = op_new(s3 = next_seq(d), "beneficiary", b3, b3, tick());
    op_set(op3, "family_name", vstr("Pruned-Three"), NULL, 0);
    CHECK_EQ(push_at(d, &op3, 1, NOW_MS + 9 * day, new_arena(ARENA_CAP), &r), 0);
    CHECK_EQ(query_int(sql, d->id), 0);
    snprintf(sql, sizeof sql, KEPT_ANSWER_SQL, (unsigned long long)s2);
    CHECK_EQ(query_int(sql, d->id), 1);
    /* The retry of the third push, the same day: its answer as given. */
    struct spro_msg_push_reply again;
    CHECK_EQ(push_at(d, &op3, 1, NOW_MS + 9 * day, new_arena(ARENA_CAP), &again), 0);
    CHECK_EQ(again.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(again.results[0].ver.hlc, r.results[0].ver.hlc);
    /* Another device's answers are never touched. */
    CHECK(query_int("SELECT count(*) FROM op_acks WHERE device_id = ?1", dev_a.id) > 0);
}

/* A transaction of kind on db held open by a thread until released, and
 * a pull run beside it (puller_run). */
struct writer_hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int holding, release, pulled, pull_rc;
    struct spro_db *db; /* NULL: data.db's writer */
    enum spro_tx kind;
};

static int hold_tx(struct spro_db *db, void *arg)
{
    (void)db;
    struct writer_hold *h = arg;
    pthread_mutex_lock(&h->mu);
    h->holding = 1;
    pthread_cond_broadcast(&h->cv);
    while (!h->release)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static void *writer_run(void *arg)
{
    struct writer_hold *h = arg;
    if (spro_store__transaction(h->db ? h->db : spro_datadir__data(dd), h->kind, hold_tx, h) != 0)
        abort();
    return NULL;
}

/* Starts the thread t holding h's transaction, once it holds it: 0, -1. */
static int hold_start(struct writer_hold *h, pthread_t *t)
{
    if (pthread_create(t, NULL, writer_run, h) != 0)
        return -1;
    pthread_mutex_lock(&h->mu);
    while (!h->holding)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

/* Lets the thread t end h's transaction, and waits for it. */
static void hold_release(struct writer_hold *h, pthread_t t)
{
    pthread_mutex_lock(&h->mu);
    h->release = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(t, NULL);
}

static void *puller_run(void *arg)
{
    struct writer_hold *h = arg;
    struct spro_msg_pull_reply pl;
    int rc = pull_all(&dev_a, &pl);
    pthread_mutex_lock(&h->mu);
    h->pulled = 1;
    h->pull_rc = rc;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Waits (seconds at most) for the puller of h to finish; returns whether
 * it did. */
static int pulled_within(struct writer_hold *h, int seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&h->mu);
    while (!h->pulled && pthread_cond_timedwait(&h->cv, &h->mu, &until) == 0)
        ;
    int pulled = h->pulled;
    pthread_mutex_unlock(&h->mu);
    return pulled;
}

/* A pull while a push's transaction holds the writer: it is answered from
 * the reader connection without waiting for the write to end. */
static void test_pull_does_not_wait_for_a_write(void)
{
    struct writer_hold h = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, -1, NULL, SPRO_TX_WRITE};
    pthread_t w, p;
    CHECK_EQ(hold_start(&h, &w), 0);
    CHECK_EQ(pthread_create(&p, NULL, puller_run, &h), 0);
    int pulled_while_held = pulled_within(&h, 10); /* the writer still held */
    hold_release(&h, w);
    pthread_join(p, NULL);
    CHECK(pulled_while_held);
    CHECK_EQ(h.pull_rc, 0);
}

/* Pulls run on pairs of reader connections: one still being read (a pair
 * taken, in a read transaction) does not hold up another pull; with every
 * pair taken a pull waits, and goes on once one is given back. */

static void test_pulls_do_not_wait_for_each_other(void)
{
    struct writer_hold r = {
        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .kind = SPRO_TX_READ};
    struct spro_db *keys, *data[SPRO_DATADIR_READERS];
    size_t pair[SPRO_DATADIR_READERS];
    CHECK_EQ(spro_datadir__readers_take(dd, &r.db, &keys, &pair[0]), 0);
    pthread_t t, p;
    CHECK_EQ(hold_start(&r, &t), 0);
    struct writer_hold h = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, -1, NULL, SPRO_TX_WRITE};
    CHECK_EQ(pthread_create(&p, NULL, puller_run, &h), 0);
    int pulled_while_read = pulled_within(&h, 10);
    if (!pulled_while_read) { /* let the pull end before failing */
        hold_release(&r, t);
        spro_datadir__readers_give(dd, pair[0]);
        pthread_join(p, NULL);
        CHECK(pulled_while_read);
    }
    pthread_join(p, NULL);
    /* Every pair taken: the next pull waits for one. */
    for (size_t i = 1; i < SPRO_DATADIR_READERS; i++)
        CHECK_EQ(spro_datadir__readers_take(dd, &data[i], &keys, &pair[i]), 0);
    struct writer_hold h2 = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, -1, NULL, SPRO_TX_WRITE};
    CHECK_EQ(pthread_create(&p, NULL, puller_run, &h2), 0);
    int pulled_without_a_pair = pulled_within(&h2, 1);
    spro_datadir__readers_give(dd, pair[SPRO_DATADIR_READERS - 1]);
    int pulled_after_give = pulled_within(&h2, 10);
    pthread_join(p, NULL);
    for (size_t i = 1; i + 1 < SPRO_DATADIR_READERS; i++)
        spro_datadir__readers_give(dd, pair[i]);
    hold_release(&r, t);
    spro_datadir__readers_give(dd, pair[0]);
    CHECK(pulled_while_read);
    CHECK_EQ(h.pull_rc, 0);
    CHECK(!pulled_without_a_pair);
    CHECK(pulled_after_give);
    CHECK_EQ(h2.pull_rc, 0);
}

/* Turns record ben (a beneficiary with one personal field) into the form
 * before data.db migrations 11 and 13: its fields as rows of rec_siblings,
 * the value sealed alone as field name (flip: one byte of it altered), and
 * a field that is not personal, situation = "legacy-plain". */
static int make_legacy(const char *ben, const char *name, const struct spro_value *v, int flip)
{
    uint8_t dk[SPRO_KEY_BYTES], key_id[SPRO_FIELD_KEY_ID_BYTES], sealed[512];
    size_t n;
    struct spro_field_context ctx = {"beneficiary", ben, name, 1};
    if (unwrap_data_key(ben, dk, key_id) != 0 ||
        spro_field_seal(sealed, sizeof sealed, &n, v->raw.p, v->raw.len, &ctx, key_id, dk) != 0)
        return -1;
    sealed[n - 1] ^= (uint8_t)flip;
    char sql[2048];
    int k = snprintf(sql, sizeof sql,
                     "INSERT INTO rec_siblings(rec, name, hlc, origin, author, schema, sealed, val)"
                     " SELECT id, '%s', 1000, 'legacy-origin', 'ua', 1, 1, X'",
                     name);
    for (size_t i = 0; i < n; i++)
        k += snprintf(sql + k, sizeof sql - (size_t)k, "%02x", sealed[i]);
    snprintf(sql + k, sizeof sql - (size_t)k, "' FROM records WHERE rid = ?1");
    return exec_sql("UPDATE records SET sealed = NULL, sealed_schema = NULL, plain = NULL"
                    " WHERE rid = ?1",
                    ben) ||
           exec_sql(sql, ben) ||
           exec_sql("INSERT INTO rec_siblings(rec, name, hlc, origin, author, schema, sealed, val)"
                    " SELECT id, 'situation', 1001, 'legacy-origin', 'ua', 1, 0,"
                    " X'ac6c65676163792d706c61696e' FROM records WHERE rid = ?1",
                    ben); /* "legacy-plain" */
}

/* Opening the data directory moves values sealed one by one (data.db
 * before migration 11) into their records' sealed field sets; a value that
 * does not open stays as it was, and its record is not written. */
static void test_sealed_rows_converted_at_open(void)
{
    const char *ben = new_ben(&dev_a, "family_name", vstr("Legacy-Name"));
    const char *bad = new_ben(&dev_a, "family_name", vstr("Damaged-Name"));
    struct spro_value v = vstr("Legacy-Name"), w = vstr("Damaged-Name");
    CHECK_EQ(make_legacy(ben, "family_name", &v, 0), 0);
    CHECK_EQ(make_legacy(bad, "family_name", &w, 1), 0);
    spro_datadir_close(dd);
    dd = NULL;
    char why[512] = "";
    CHECK_EQ(spro_datadir_open(dir, &dd, why, sizeof why), 0);
    CHECK_EQ(query_int("SELECT count(*) FROM siblings WHERE rid = ?1", ben), 0);
    CHECK_EQ(query_int("SELECT sealed IS NOT NULL FROM records WHERE rid = ?1", ben), 1);
    struct spro_msg_pull_reply p;
    struct spro_msg_push_reply r;
    CHECK_EQ(edit1(&dev_a, "beneficiary", ben, ben, "phone", vstr("0633333333"), &r), 0);
    CHECK_EQ(r.results[0].status, SPRO_RESULT_ACK);
    CHECK_EQ(query_int("SELECT count(*) FROM siblings WHERE rid = ?1 AND sealed = 1", bad), 1);
    CHECK_EQ(edit1(&dev_a, "beneficiary", bad, bad, "phone", vstr("0644444444"), &r),
             SPRO_EINTEGRITY);
    CHECK_EQ(exec_sql("DELETE FROM rec_siblings WHERE rec = (SELECT id FROM records"
                      " WHERE rid = ?1)",
                      bad),
             0);
    CHECK_EQ(pull_all(&dev_a, &p), 0);
    const struct spro_wire_field *f = rec_field(record_of(&p, ben), "family_name");
    CHECK(f != NULL && f->nsiblings == 1);
    CHECK(f->siblings[0].val.kind == SPRO_VALUE_STR &&
          bytes_is(f->siblings[0].val.s, "Legacy-Name"));
    CHECK(bytes_is(f->siblings[0].ver.origin, "legacy-origin"));
    CHECK((f = rec_field(record_of(&p, ben), "phone")) != NULL && f->nsiblings == 1);
    CHECK((f = rec_field(record_of(&p, ben), "situation")) != NULL && f->nsiblings == 1);
    CHECK(f->siblings[0].val.kind == SPRO_VALUE_STR &&
          bytes_is(f->siblings[0].val.s, "legacy-plain"));
    CHECK_EQ(f->siblings[0].ver.hlc, 1001);
    CHECK_EQ(query_int("SELECT plain IS NULL FROM records WHERE rid = ?1", bad), 1);
}

static const struct check_test tests[] = {
    {"schema_versions", test_schema_versions},
    {"value_checks", test_value_checks},
    {"create_and_pull", test_create_and_pull},
    {"conflict_then_resolve", test_conflict_then_resolve},
    {"different_fields_merge", test_different_fields_merge},
    {"retry_is_identical", test_retry_is_identical},
    {"acks_kept_per_push", test_acks_kept_per_push},
    {"not_found_leaks_nothing", test_not_found_leaks_nothing},
    {"rejects_are_quarantined", test_rejects_are_quarantined},
    {"too_many_siblings_no_partial_write", test_too_many_siblings_no_partial_write},
    {"too_many_fields", test_too_many_fields},
    {"duplicates_detected_on_edit", test_duplicates_detected_on_edit},
    {"version_reused", test_version_reused},
    {"clock_clamped", test_clock_clamped},
    {"scope_grant_and_local_fields", test_scope_grant_and_local_fields},
    {"personal_never_in_clear", test_personal_never_in_clear},
    {"data_key_wrapped", test_data_key_wrapped},
    {"sealed_rows_converted_at_open", test_sealed_rows_converted_at_open},
    {"pull_paging", test_pull_paging},
    {"pull_max_bytes", test_pull_max_bytes},
    {"push_arena_too_small", test_push_arena_too_small},
    {"concurrent_pushes", test_concurrent_pushes},
    {"group_push_failure_isolated", test_group_push_failure_isolated},
    {"referral_proposed_then_accepted", test_referral_proposed_then_accepted},
    {"transfer_removes_from_sender", test_transfer_removes_from_sender},
    {"transfer_back_and_paging", test_transfer_back_and_paging},
    {"referral_authorisation", test_referral_authorisation},
    {"referral_creation_checks", test_referral_creation_checks},
    {"horizon_and_purge", test_horizon_and_purge},
    {"duplicates_detected", test_duplicates_detected},
    {"merge", test_merge},
    {"retention_ignores_a_backdated_clock", test_retention_ignores_a_backdated_clock},
    {"erase_names_the_keeper_of_a_merge", test_erase_names_the_keeper_of_a_merge},
    {"erased_stays_not_found", test_erased_stays_not_found},
    {"old_answers_pruned", test_old_answers_pruned},
    {"revoked_device_answers_forgotten", test_revoked_device_answers_forgotten},
    {"pull_does_not_wait_for_a_write", test_pull_does_not_wait_for_a_write},
    {"pulls_do_not_wait_for_each_other", test_pulls_do_not_wait_for_each_other},
};

int main(int argc, char **argv)
{
    snprintf(tmp, sizeof tmp, "%s/spro-engine-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp) == NULL || spro_crypto_init() != 0)
        return 1;
    umask(077);
    snprintf(dir, sizeof dir, "%s/dd", tmp);
    char why[512] = "";
    if (spro_datadir_init(dir, why, sizeof why) != 0 ||
        spro_datadir_open(dir, &dd, why, sizeof why) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", dir, why);
        return 1;
    }
    static const char *const orgs[] = {"org1", "org2", "org3", "org4"};
    static const char *const users[][2] = {
        {"ua", "org1"}, {"ub", "org1"}, {"uc", "org2"}, {"ud", "org3"}, {"ue", "org4"}};
    for (size_t i = 0; i < 4; i++)
        if (spro_org_add(dd, orgs[i], "Organisation", "cio", why, sizeof why) != 0)
            return 1;
    for (size_t i = 0; i < 5; i++)
        if (spro_user_add(dd, users[i][0], users[i][1], "counsellor", why, sizeof why) != 0)
            return 1;
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    spro_datadir_close(dd);
    for (size_t i = 0; i < narenas; i++) {
        free(arenas[i]->base);
        free(arenas[i]);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return rc;
}
