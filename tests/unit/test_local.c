/*
 * test_local.c: the device's local store (sync/local.h) alone, without a
 * server: push answers and pull answers are built here as decoded
 * messages.
 *
 *   open_*       files, modes, the device binding, refusals
 *   write_*      an edit writes its pending fields and its outbox op in one
 *                transaction (a fault injected at every write leaves the
 *                store as it was); refusals
 *   base_*       the base of an edit: the field's siblings as last heard
 *                of, plus the device's own unanswered edit
 *   display_*    pending value, else the provisional sibling; conflicts
 *   push_*       results stored (ack, conflict, reject, missing), batches
 *                within 500 ops and 60,000 bytes, in seq order
 *   pull_*       records replaced or removed, the cursor saved with them
 *                and kept across reopening, nothing saved on a fault
 *   sealed_*     a sentinel string is nowhere in local.db's bytes; values
 *                do not open under another key
 */
#include "check.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crypto/crypto.h"
#include "sync/local.h"

#define DEV "11111111-1111-4111-8111-111111111111"
#define DEV_B "22222222-2222-4222-8222-222222222222"
#define DEV_C "33333333-3333-4333-8333-333333333333"
#define USER "u1"
#define BEN1 "0a2a57e7-eccb-456a-9999-58a0008fca1c"
#define BEN2 "0b2a57e7-eccb-456a-9999-58a0008fca1c"
#define ENR1 "0c2a57e7-eccb-456a-9999-58a0008fca1c"
#define SENTINEL "Zorglub-Sentinel-4242"
#define NOW 1700000000000ull

#define B(s) ((struct spro_bytes){(const uint8_t *)(s), strlen(s)})

static char tmp_root[64];

static const char *fresh_dir(const char *name)
{
    static char path[128];
    if (tmp_root[0] == '\0') {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/spro-local-XXXXXX");
        if (mkdtemp(tmp_root) == NULL)
            abort();
    }
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    if (mkdir(path, 0700) != 0)
        abort();
    return path;
}

static struct spro_local *open_as(const char *dir, const char *device)
{
    struct spro_local_identity id = {device, USER, 1};
    struct spro_local *l;
    char why[512];
    if (spro_local_open(&l, dir, &id, why, sizeof why) != 0) {
        fprintf(stderr, "open %s: %s\n", dir, why);
        return NULL;
    }
    return l;
}

static struct spro_value str(const char *s)
{
    return (struct spro_value){.kind = SPRO_VALUE_STR, .s = B(s)};
}

static struct spro_value num(int64_t i)
{
    return (struct spro_value){.kind = SPRO_VALUE_INT, .i = i};
}

/* Rows of a table, read through a connection of our own. */
static long rows(const char *dir, const char *sql)
{
    char path[256];
    snprintf(path, sizeof path, "%s/local.db", dir);
    sqlite3 *db;
    long n = -1;
    sqlite3_stmt *st;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

/* Everything a failed write must leave as it was. */
struct snapshot {
    long records, fields, pending, outbox, quarantine, next_seq, hlc;
};

static struct snapshot snap(const char *dir)
{
    return (struct snapshot){
        rows(dir, "SELECT count(*) FROM records"),
        rows(dir, "SELECT count(*) FROM fields"),
        rows(dir, "SELECT count(*) + coalesce(sum(op_seq), 0) FROM pending"),
        rows(dir, "SELECT count(*) FROM outbox"),
        rows(dir, "SELECT count(*) FROM quarantine"),
        rows(dir, "SELECT coalesce(max(value), 0) FROM meta WHERE key = 'next_seq'"),
        rows(dir, "SELECT coalesce(max(value), 0) FROM meta WHERE key = 'hlc'"),
    };
}

static bool snap_eq(struct snapshot a, struct snapshot b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* One edit of record (rtype, rid): set[0..n). */
static int edit(struct spro_local *l, const char *rtype, const char *rid, const char *ben,
                bool create, const struct spro_local_set *set, size_t n, uint64_t *seq)
{
    struct spro_local_edit e = {rtype, rid, ben, create, set, n};
    char why[512];
    int rc = spro_local_write(l, &e, 1, NOW, seq, why, sizeof why);
    if (rc != 0 && rc != SPRO_EEXISTS && rc != SPRO_ENOENT && rc != SPRO_ERANGE &&
        rc != SPRO_ETOOLONG)
        fprintf(stderr, "write: %s\n", why);
    return rc;
}

/* ---- A pulled record, built as a decoded pull_reply would hold it ---- */

struct wrec {
    struct spro_wire_record r;
    struct spro_wire_field f[4];
    struct spro_wire_sibling s[4][4];
};

static void wrec_init(struct wrec *w, const char *rtype, const char *rid, const char *ben)
{
    memset(w, 0, sizeof *w);
    w->r.rtype = B(rtype);
    w->r.rid = B(rid);
    w->r.ben = B(ben);
    w->r.fields = w->f;
}

/* Adds field name with siblings (value, hlc, origin) x n. */
static void wrec_field(struct wrec *w, const char *name, size_t n, const struct spro_value *vals,
                       const uint64_t *hlcs, const char *const *origins)
{
    size_t i = w->r.nfields++;
    w->f[i].name = B(name);
    w->f[i].siblings = w->s[i];
    w->f[i].nsiblings = n;
    for (size_t k = 0; k < n; k++)
        w->s[i][k] = (struct spro_wire_sibling){vals[k], {hlcs[k], B(origins[k])}, B("u9")};
}

static int pull(struct spro_local *l, const struct spro_wire_record *recs, size_t n,
                const char *cursor, bool more)
{
    struct spro_msg_pull_reply r = {recs, n, B(cursor), more, false};
    char why[512];
    return spro_local_pull_apply(l, &r, NOW, why, sizeof why);
}

/* Pulls BEN1 (beneficiary) with phone in conflict {100/b: "0601",
 * 200/c: "0602"} and city {150/b: "Lille"}. */
static int pull_ben1(struct spro_local *l, const char *cursor)
{
    struct wrec w;
    wrec_init(&w, "beneficiary", BEN1, BEN1);
    struct spro_value phones[2] = {str("0601"), str("0602")};
    uint64_t hp[2] = {100, 200};
    const char *op[2] = {DEV_B, DEV_C};
    wrec_field(&w, "phone", 2, phones, hp, op);
    struct spro_value city = str("Lille");
    uint64_t hc = 150;
    wrec_field(&w, "city", 1, &city, &hc, op);
    return pull(l, &w.r, 1, cursor, false);
}

static const struct spro_local_field *field_of(const struct spro_local_record *r, const char *n)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i].name, n) == 0)
            return &r->fields[i];
    return NULL;
}

static bool is_str(const struct spro_value *v, const char *s)
{
    return v != NULL && v->kind == SPRO_VALUE_STR && v->s.len == strlen(s) &&
           memcmp(v->s.p, s, v->s.len) == 0;
}

/* ---- open ---- */

static void test_open_files(void)
{
    const char *dir = fresh_dir("open");
    char d[128], p[256], why[512];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    spro_local_close(l);
    struct stat st;
    snprintf(p, sizeof p, "%s/local.key", d);
    CHECK_EQ(stat(p, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(st.st_size, 32);
    snprintf(p, sizeof p, "%s/local.db", d);
    CHECK_EQ(stat(p, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);

    /* Reopened by its device; refused to another. */
    CHECK((l = open_as(d, DEV)) != NULL);
    spro_local_close(l);
    struct spro_local_identity other = {DEV_B, USER, 1};
    CHECK_EQ(spro_local_open(&l, d, &other, why, sizeof why), SPRO_ECONFIG);
    CHECK(l == NULL);
    CHECK(strstr(why, DEV) != NULL);

    /* A key others can read is refused; a database without its key too. */
    snprintf(p, sizeof p, "%s/local.key", d);
    CHECK_EQ(chmod(p, 0644), 0);
    struct spro_local_identity me = {DEV, USER, 1};
    CHECK_EQ(spro_local_open(&l, d, &me, why, sizeof why), SPRO_EPERM);
    CHECK_EQ(unlink(p), 0);
    CHECK_EQ(spro_local_open(&l, d, &me, why, sizeof why), SPRO_ECONFIG);
    CHECK(strstr(why, "local.key") != NULL);
    CHECK_EQ(spro_local_open(&l, "/nonexistent/dir", &me, why, sizeof why), SPRO_ENOENT);
}

static void test_open_uuid(void)
{
    char a[SPRO_LOCAL_UUID_CHARS + 1], b[SPRO_LOCAL_UUID_CHARS + 1];
    spro_local_uuid(a);
    spro_local_uuid(b);
    CHECK(spro_local_uuid_ok(a) && spro_local_uuid_ok(b));
    CHECK(strcmp(a, b) != 0);
    CHECK_EQ(a[14], '4');
    CHECK(strchr("89ab", a[19]) != NULL);
    CHECK(!spro_local_uuid_ok("0A2A57E7-ECCB-456A-9999-58A0008FCA1C"));
    CHECK(!spro_local_uuid_ok("0a2a57e7eccb-456a-9999-58a0008fca1c0"));
    CHECK(!spro_local_uuid_ok(""));
}

/* ---- write ---- */

static void test_write_atomic(void)
{
    const char *dir = fresh_dir("atomic");
    char d[128];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    struct spro_local_set ben[2] = {{"given_name", str("Léa")}, {"family_name", str("Martin")}};
    struct spro_local_set enr[2] = {{"programme", str("spro-reception")}, {"status", str("open")}};
    struct spro_local_edit two[2] = {
        {"beneficiary", BEN1, BEN1, true, ben, 2},
        {"enrolment", ENR1, BEN1, true, enr, 2},
    };
    /* A fault at each write in turn: all or nothing, every time. */
    struct snapshot before = snap(d);
    char why[512];
    int k, rc = -1;
    for (k = 1; k < 100 && rc != 0; k++) {
        spro_local__fail_write = k;
        uint64_t seqs[2];
        rc = spro_local_write(l, two, 2, NOW, seqs, why, sizeof why);
        if (rc != 0) {
            CHECK_EQ(rc, SPRO_ESTORE);
            CHECK(snap_eq(snap(d), before));
        } else {
            CHECK_EQ(seqs[0], 1);
            CHECK_EQ(seqs[1], 2);
        }
    }
    spro_local__fail_write = 0;
    CHECK_EQ(rc, 0);
    CHECK(k > 8); /* records, pending rows, outbox rows, meta: all were tried */
    struct snapshot after = snap(d);
    CHECK_EQ(after.records, 2);
    CHECK_EQ(after.outbox, 2);
    CHECK_EQ(rows(d, "SELECT count(*) FROM pending"), 4);
    CHECK_EQ(after.next_seq, 3);

    /* The same for an edit of an existing record. */
    struct spro_local_set one[3] = {{"phone", str("0601")}, {"age", num(17)}, {"city", str("X")}};
    before = snap(d);
    for (k = 1, rc = -1; k < 100 && rc != 0; k++) {
        spro_local__fail_write = k;
        rc = edit(l, "beneficiary", BEN1, NULL, false, one, 3, NULL);
        if (rc != 0)
            CHECK(snap_eq(snap(d), before));
    }
    spro_local__fail_write = 0;
    CHECK_EQ(rc, 0);
    CHECK_EQ(rows(d, "SELECT count(*) FROM pending"), 7);
    CHECK_EQ(rows(d, "SELECT count(*) FROM outbox"), 3);
    spro_local_close(l);
}

static void test_write_refusals(void)
{
    const char *dir = fresh_dir("refusals");
    char d[128];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    struct spro_local_set s1 = {"given_name", str("Léa")};
    CHECK_EQ(edit(l, "beneficiary", BEN1, BEN1, true, &s1, 1, NULL), 0);
    struct snapshot before = snap(d);
    CHECK_EQ(edit(l, "beneficiary", BEN1, BEN1, true, &s1, 1, NULL), SPRO_EEXISTS);
    CHECK_EQ(edit(l, "beneficiary", BEN2, NULL, false, &s1, 1, NULL), SPRO_ENOENT);
    CHECK_EQ(edit(l, "Beneficiary", BEN1, NULL, false, &s1, 1, NULL), SPRO_ERANGE);
    CHECK_EQ(edit(l, "beneficiary", "not-a-uuid", NULL, false, &s1, 1, NULL), SPRO_ERANGE);
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &s1, 0, NULL), SPRO_ERANGE);
    struct spro_local_set bad = {"bad name", str("x")};
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &bad, 1, NULL), SPRO_ERANGE);
    struct spro_local_set dup[2] = {{"a", num(1)}, {"a", num(2)}};
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, dup, 2, NULL), SPRO_ERANGE);

    /* A string above the value limit. */
    static char huge[SPRO_SYNC_MAX_VALUE + 2];
    memset(huge, 'y', SPRO_SYNC_MAX_VALUE + 1);
    struct spro_local_set h = {"note", str(huge)};
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &h, 1, NULL), SPRO_ERANGE);
    CHECK(snap_eq(snap(d), before));
    spro_local_close(l);
}

/* ---- base ---- */

/* The edit of `name` in op i of the next batch. */
static const struct spro_wire_edit *op_edit(const struct spro_local_batch *b, size_t i,
                                            const char *name)
{
    const struct spro_msg_push *p = &spro_local_batch_msg(b)->u.push;
    if (i >= p->nops)
        return NULL;
    for (size_t k = 0; k < p->ops[i].nset; k++)
        if (p->ops[i].set[k].name.len == strlen(name) &&
            memcmp(p->ops[i].set[k].name.p, name, strlen(name)) == 0)
            return &p->ops[i].set[k];
    return NULL;
}

static bool has_version(const struct spro_wire_edit *e, uint64_t hlc, const char *origin)
{
    for (size_t i = 0; i < e->nbase; i++)
        if (e->base[i].hlc == hlc && e->base[i].origin.len == strlen(origin) &&
            memcmp(e->base[i].origin.p, origin, strlen(origin)) == 0)
            return true;
    return false;
}

static void test_base_of_edits(void)
{
    const char *dir = fresh_dir("base");
    char d[128], why[512];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    CHECK_EQ(pull_ben1(l, "c1"), 0);
    struct spro_local_set s1[2] = {{"phone", str("0603")}, {"email", str("a@b.fr")}};
    struct spro_local_set s2 = {"phone", str("0604")};
    struct spro_local_set s3 = {"given_name", str("Zoé")};
    uint64_t seq1, seq2;
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, s1, 2, &seq1), 0);
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &s2, 1, &seq2), 0);
    CHECK_EQ(edit(l, "beneficiary", BEN2, BEN2, true, &s3, 1, NULL), 0);

    struct spro_local_batch *b;
    CHECK_EQ(spro_local_push_next(l, SPRO_SYNC_MAX_OPS, &b, why, sizeof why), 0);
    CHECK(b != NULL);
    const struct spro_msg_push *p = &spro_local_batch_msg(b)->u.push;
    CHECK_EQ(p->nops, 3);
    CHECK_EQ(p->ops[0].seq, seq1);
    CHECK_EQ(p->ops[1].seq, seq2);
    CHECK_EQ(p->ops[0].schema, 1);
    CHECK(p->ops[1].hlc > p->ops[0].hlc);
    CHECK_BYTES(p->ops[0].ben.p, p->ops[0].ben.len, BEN1, 36);
    /* phone: both siblings as pulled. */
    const struct spro_wire_edit *e = op_edit(b, 0, "phone");
    CHECK(e != NULL);
    CHECK_EQ(e->nbase, 2);
    CHECK(has_version(e, 100, DEV_B) && has_version(e, 200, DEV_C));
    CHECK(is_str(&e->val, "0603"));
    /* email: never heard of. */
    CHECK((e = op_edit(b, 0, "email")) != NULL);
    CHECK_EQ(e->nbase, 0);
    /* phone again before any sync: also the device's own first edit. */
    CHECK((e = op_edit(b, 1, "phone")) != NULL);
    CHECK_EQ(e->nbase, 3);
    CHECK(has_version(e, 100, DEV_B) && has_version(e, 200, DEV_C));
    CHECK(has_version(e, p->ops[0].hlc, DEV));
    /* A new record. */
    CHECK((e = op_edit(b, 2, "given_name")) != NULL);
    CHECK_EQ(e->nbase, 0);
    CHECK_BYTES(p->ops[2].ben.p, p->ops[2].ben.len, BEN2, 36);
    spro_local_batch_free(b);
    spro_local_close(l);
}

/* ---- display ---- */

struct seen {
    int n;
    char what[8][256];
};

static int on_conflict(void *arg, const struct spro_local_record *r,
                       const struct spro_local_field *f)
{
    struct seen *s = arg;
    if (s->n < 8)
        snprintf(s->what[s->n], sizeof s->what[0], "%s %s %s %zu", r->rtype, r->rid, f->name,
                 f->nsiblings);
    s->n++;
    return 0;
}

static int on_list(void *arg, const char *rtype, const char *rid, const char *ben, const char *name)
{
    struct seen *s = arg;
    (void)ben;
    if (s->n < 8)
        snprintf(s->what[s->n], sizeof s->what[0], "%s %s %s", rtype, rid, name ? name : "-");
    s->n++;
    return 0;
}

static void test_display_provisional_and_pending(void)
{
    const char *dir = fresh_dir("display");
    char d[128], why[512];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    CHECK_EQ(pull_ben1(l, "c1"), 0);
    struct spro_local_record *r;
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), 0);
    CHECK_STR(r->ben, BEN1);
    CHECK_EQ(r->nfields, 2);
    CHECK_STR(r->fields[0].name, "city"); /* by name */
    const struct spro_local_field *f = field_of(r, "phone");
    CHECK(f != NULL && f->conflict && !f->pending);
    CHECK_EQ(f->nsiblings, 2);
    CHECK(is_str(f->shown, "0602")); /* the highest version */
    CHECK_EQ(f->siblings[0].hlc, 100);
    CHECK_STR(f->siblings[0].origin, DEV_B);
    CHECK_STR(f->siblings[1].by, "u9");
    f = field_of(r, "city");
    CHECK(f != NULL && !f->conflict && is_str(f->shown, "Lille"));
    spro_local_record_free(r);

    struct seen s = {0};
    CHECK_EQ(spro_local_conflicts(l, on_conflict, &s, why, sizeof why), 0);
    CHECK_EQ(s.n, 1);
    CHECK_STR(s.what[0], "beneficiary " BEN1 " phone 2");

    /* Equal hlcs: the origin decides, the same way everywhere. */
    struct wrec w;
    wrec_init(&w, "beneficiary", BEN2, BEN2);
    struct spro_value v[2] = {str("from-c"), str("from-b")};
    uint64_t h[2] = {300, 300};
    const char *o[2] = {DEV_C, DEV_B};
    wrec_field(&w, "given_name", 2, v, h, o);
    CHECK_EQ(pull(l, &w.r, 1, "c2", false), 0);
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN2, &r, why, sizeof why), 0);
    CHECK(is_str(r->fields[0].shown, "from-c"));
    spro_local_record_free(r);

    /* An edit: its value shows, the conflict waits for its answer. */
    struct spro_local_set e = {"phone", str("0605")};
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &e, 1, NULL), 0);
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), 0);
    f = field_of(r, "phone");
    CHECK(f != NULL && f->pending && !f->conflict);
    CHECK(is_str(f->shown, "0605"));
    CHECK_EQ(f->nsiblings, 2); /* the server's, as last heard of */
    spro_local_record_free(r);
    s.n = 0;
    CHECK_EQ(spro_local_conflicts(l, on_conflict, &s, why, sizeof why), 0);
    CHECK_EQ(s.n, 1);
    CHECK_STR(s.what[0], "beneficiary " BEN2 " given_name 2");

    /* list: by type and id, with the beneficiary's name when known. */
    struct spro_local_set n2[2] = {{"given_name", str("Léa")}, {"family_name", str("Martin")}};
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, n2, 2, NULL), 0);
    struct spro_local_set en = {"status", str("open")};
    CHECK_EQ(edit(l, "enrolment", ENR1, BEN1, true, &en, 1, NULL), 0);
    s.n = 0;
    CHECK_EQ(spro_local_list(l, NULL, on_list, &s, why, sizeof why), 0);
    CHECK_EQ(s.n, 3);
    CHECK_STR(s.what[0], "beneficiary " BEN1 " Léa Martin");
    CHECK_STR(s.what[1], "beneficiary " BEN2 " from-c");
    CHECK_STR(s.what[2], "enrolment " ENR1 " Léa Martin");
    s.n = 0;
    CHECK_EQ(spro_local_list(l, "enrolment", on_list, &s, why, sizeof why), 0);
    CHECK_EQ(s.n, 1);

    char rtype[SPRO_LOCAL_RTYPE_MAX + 1], ben[SPRO_LOCAL_UUID_CHARS + 1];
    CHECK_EQ(spro_local_find(l, ENR1, rtype, ben, why, sizeof why), 0);
    CHECK_STR(rtype, "enrolment");
    CHECK_STR(ben, BEN1);
    CHECK_EQ(spro_local_find(l, DEV, rtype, ben, why, sizeof why), SPRO_ENOENT);
    spro_local_close(l);
}

/* ---- push ---- */

struct rejects {
    int n;
    char code[32];
    uint64_t seq;
};

static void on_reject(void *arg, const struct spro_wire_op *op, const struct spro_bytes *code)
{
    struct rejects *r = arg;
    r->n++;
    r->seq = op->seq;
    snprintf(r->code, sizeof r->code, "%.*s", (int)code->len, (const char *)code->p);
}

static void test_push_results(void)
{
    const char *dir = fresh_dir("push");
    char d[128], why[512];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    CHECK_EQ(pull_ben1(l, "c1"), 0);
    struct spro_local_set city = {"city", str("Lens")}, phone = {"phone", str("0609")},
                          email = {"email", str("x@y.fr")}, age = {"age", num(18)};
    uint64_t s1, s2, s3, s4;
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &city, 1, &s1), 0);
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &phone, 1, &s2), 0);
    CHECK_EQ(edit(l, "beneficiary", BEN2, BEN2, true, &email, 1, &s3), 0);
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &age, 1, &s4), 0);

    struct spro_local_batch *b;
    CHECK_EQ(spro_local_push_next(l, SPRO_SYNC_MAX_OPS, &b, why, sizeof why), 0);
    CHECK(b != NULL);
    CHECK_EQ(spro_local_batch_msg(b)->u.push.nops, 4);
    /* ack s1, conflict s2 (the server kept 0602 beside it), reject s3,
     * nothing for s4, and a result for an op never sent. */
    struct spro_wire_sibling cs[2] = {
        {str("0602"), {200, B(DEV_C)}, B("u9")},
        {str("0609"), {501, B(DEV)}, B(USER)},
    };
    struct spro_wire_field cf = {B("phone"), cs, 2};
    struct spro_wire_result res[4] = {
        {.seq = s1, .status = SPRO_RESULT_ACK, .ver = {500, B(DEV)}},
        {.seq = s2,
         .status = SPRO_RESULT_CONFLICT,
         .ver = {501, B(DEV)},
         .fields = &cf,
         .nfields = 1},
        {.seq = s3, .status = SPRO_RESULT_REJECT, .code = B("not_found")},
        {.seq = 999, .status = SPRO_RESULT_ACK, .ver = {502, B(DEV)}},
    };
    struct spro_msg_push_reply reply = {res, 4};
    struct spro_local_push_stats st = {0};
    struct rejects rj = {0};
    CHECK_EQ(spro_local_push_done(l, b, &reply, NOW, &st, on_reject, &rj, why, sizeof why), 0);
    spro_local_batch_free(b);
    CHECK_EQ(st.acked, 1);
    CHECK_EQ(st.conflicts, 1);
    CHECK_EQ(st.rejected, 1);
    CHECK_EQ(st.unknown, 1);
    CHECK_EQ(rj.n, 1);
    CHECK_EQ(rj.seq, s3);
    CHECK_STR(rj.code, "not_found");
    size_t out, quar;
    CHECK_EQ(spro_local_counts(l, &out, &quar), 0);
    CHECK_EQ(out, 1);
    CHECK_EQ(quar, 1);
    CHECK_EQ(rows(d, "SELECT count(*) FROM pending"), 1); /* age, still unanswered */

    struct spro_local_record *r;
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), 0);
    const struct spro_local_field *f = field_of(r, "city");
    CHECK(f != NULL && !f->pending && f->nsiblings == 1);
    CHECK(is_str(f->shown, "Lens"));
    CHECK_EQ(f->siblings[0].hlc, 500);
    CHECK_STR(f->siblings[0].origin, DEV);
    CHECK_STR(f->siblings[0].by, USER);
    f = field_of(r, "phone");
    CHECK(f != NULL && f->conflict && f->nsiblings == 2);
    CHECK(is_str(&f->siblings[0].val, "0602") && is_str(&f->siblings[1].val, "0609"));
    f = field_of(r, "age");
    CHECK(f != NULL && f->pending && f->shown->kind == SPRO_VALUE_INT && f->shown->i == 18);
    spro_local_record_free(r);

    /* The unanswered op comes first in the next push; then nothing. */
    CHECK_EQ(spro_local_push_next(l, SPRO_SYNC_MAX_OPS, &b, why, sizeof why), 0);
    CHECK(b != NULL);
    CHECK_EQ(spro_local_batch_msg(b)->u.push.nops, 1);
    CHECK_EQ(spro_local_batch_msg(b)->u.push.ops[0].seq, s4);
    /* An answer lost on the way: the same ops are sent again. */
    spro_local_batch_free(b);
    CHECK_EQ(spro_local_push_next(l, SPRO_SYNC_MAX_OPS, &b, why, sizeof why), 0);
    CHECK_EQ(spro_local_batch_msg(b)->u.push.ops[0].seq, s4);
    struct spro_wire_result ack = {.seq = s4, .status = SPRO_RESULT_ACK, .ver = {503, B(DEV)}};
    reply = (struct spro_msg_push_reply){&ack, 1};
    /* A fault while storing it: nothing stored, the op stays. */
    spro_local__fail_write = 2;
    CHECK_EQ(spro_local_push_done(l, b, &reply, NOW, &st, NULL, NULL, why, sizeof why),
             SPRO_ESTORE);
    spro_local__fail_write = 0;
    CHECK_EQ(spro_local_counts(l, &out, &quar), 0);
    CHECK_EQ(out, 1);
    CHECK_EQ(rows(d, "SELECT count(*) FROM pending"), 1);
    CHECK_EQ(spro_local_push_done(l, b, &reply, NOW, &st, NULL, NULL, why, sizeof why), 0);
    spro_local_batch_free(b);
    CHECK_EQ(spro_local_push_next(l, SPRO_SYNC_MAX_OPS, &b, why, sizeof why), 0);
    CHECK(b == NULL);
    CHECK_EQ(rows(d, "SELECT count(*) FROM pending"), 0);
    /* The device's clock has seen the server's versions. */
    CHECK(rows(d, "SELECT value FROM meta WHERE key = 'hlc'") > 503);
    spro_local_close(l);
}

/* Takes the next push of at most max_ops ops and acknowledges all of it;
 * *next is the seq expected first, advanced; *len receives the push's
 * encoded length.  Returns the number of ops (0 when the outbox is empty),
 * or -1 on a failure. */
static long ack_next(struct spro_local *l, size_t max_ops, uint64_t *next, size_t *len)
{
    char why[512];
    struct spro_local_batch *b;
    if (spro_local_push_next(l, max_ops, &b, why, sizeof why) != 0)
        return -1;
    if (b == NULL)
        return 0;
    const struct spro_msg *m = spro_local_batch_msg(b);
    size_t n = m->u.push.nops;
    struct spro_buf enc = {0};
    int bad = spro_proto_encode(m, &enc) != 0 || n != spro_local_batch_size(b);
    *len = enc.len;
    spro_buf_free(&enc);
    struct spro_wire_result *res = calloc(n, sizeof *res);
    for (size_t i = 0; i < n; i++) {
        bad |= m->u.push.ops[i].seq != (*next)++;
        res[i] = (struct spro_wire_result){
            .seq = m->u.push.ops[i].seq, .status = SPRO_RESULT_ACK, .ver = {*next << 4, B(DEV)}};
    }
    struct spro_msg_push_reply reply = {res, n};
    struct spro_local_push_stats st = {0};
    bad |= spro_local_push_done(l, b, &reply, NOW, &st, NULL, NULL, why, sizeof why) != 0 ||
           st.acked != n;
    free(res);
    spro_local_batch_free(b);
    return bad ? -1 : (long)n;
}

static void test_push_batches(void)
{
    const char *dir = fresh_dir("batches");
    char d[128];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    struct spro_local_set s = {"n", num(0)};
    CHECK_EQ(edit(l, "beneficiary", BEN1, BEN1, true, &s, 1, NULL), 0);
    for (int i = 1; i < 1200; i++) {
        s.val.i = i;
        CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &s, 1, NULL), 0);
    }
    /* Small ops (about 200 bytes): pushes bounded by the count asked (as
     * after a too_long answer), else by SPRO_SYNC_MAX_OPS, in seq order. */
    uint64_t next = 1;
    size_t len;
    CHECK_EQ(ack_next(l, 7, &next, &len), 7);
    CHECK_EQ(ack_next(l, 1, &next, &len), 1);
    CHECK_EQ(ack_next(l, SPRO_SYNC_MAX_OPS + 5, &next, &len), SPRO_SYNC_MAX_OPS);
    CHECK(len <= SPRO_LOCAL_PUSH_MAX);
    CHECK_EQ(ack_next(l, SPRO_SYNC_MAX_OPS, &next, &len), 1200 - 8 - SPRO_SYNC_MAX_OPS);
    CHECK_EQ(ack_next(l, SPRO_SYNC_MAX_OPS, &next, &len), 0);

    /* Large ops: as many as fit in SPRO_LOCAL_PUSH_MAX bytes encoded. */
    static char big[3001];
    memset(big, 'z', 3000);
    struct spro_local_set bs = {"note", str(big)};
    enum { LARGE = SPRO_LOCAL_PUSH_MAX / 3000 + 20 };
    for (int i = 0; i < LARGE; i++)
        CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &bs, 1, NULL), 0);
    long n1 = ack_next(l, SPRO_SYNC_MAX_OPS, &next, &len);
    CHECK(n1 > 10 && n1 < LARGE);
    CHECK(len <= SPRO_LOCAL_PUSH_MAX && len > SPRO_LOCAL_PUSH_MAX - 3200); /* full */
    CHECK_EQ(ack_next(l, SPRO_SYNC_MAX_OPS, &next, &len), LARGE - n1);
    CHECK_EQ(ack_next(l, SPRO_SYNC_MAX_OPS, &next, &len), 0);
    spro_local_close(l);
}

/* ---- pull ---- */

static void test_pull_cursor(void)
{
    const char *dir = fresh_dir("cursor");
    char d[128], why[512];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    uint8_t cur[SPRO_SYNC_MAX_CURSOR];
    size_t n = 99;
    CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(pull_ben1(l, "cursor-1"), 0);
    CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
    CHECK_BYTES(cur, n, "cursor-1", 8);
    spro_local_close(l);
    CHECK((l = open_as(d, DEV)) != NULL);
    CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
    CHECK_BYTES(cur, n, "cursor-1", 8);

    /* A fault anywhere in an answer: neither its records nor its cursor. */
    struct wrec w;
    wrec_init(&w, "beneficiary", BEN2, BEN2);
    struct spro_value v = str("Zoé");
    uint64_t h = 10;
    const char *o = DEV_B;
    wrec_field(&w, "given_name", 1, &v, &h, &o);
    for (int k = 1; k <= 12; k++) {
        spro_local__fail_write = k;
        if (pull(l, &w.r, 1, "cursor-2", false) == 0)
            break;
        spro_local__fail_write = 0;
        CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
        CHECK_BYTES(cur, n, "cursor-1", 8);
        CHECK_EQ(rows(d, "SELECT count(*) FROM records"), 1);
    }
    spro_local__fail_write = 0;
    CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
    CHECK_BYTES(cur, n, "cursor-2", 8);
    CHECK_EQ(rows(d, "SELECT count(*) FROM records"), 2);

    /* A record replaced whole: a field the server no longer has goes. */
    struct wrec w1;
    wrec_init(&w1, "beneficiary", BEN1, BEN1);
    struct spro_value city = str("Douai");
    uint64_t hc = 900;
    wrec_field(&w1, "city", 1, &city, &hc, &o);
    CHECK_EQ(pull(l, &w1.r, 1, "cursor-3", true), 0);
    struct spro_local_record *r;
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), 0);
    CHECK_EQ(r->nfields, 1);
    CHECK(is_str(r->fields[0].shown, "Douai"));
    spro_local_record_free(r);

    /* Removed: gone with its fields and pending edits; the outbox stays. */
    struct spro_local_set e = {"city", str("Arras")};
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &e, 1, NULL), 0);
    wrec_init(&w1, "beneficiary", BEN1, BEN1);
    w1.r.removed = true;
    CHECK_EQ(pull(l, &w1.r, 1, "cursor-4", false), 0);
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), SPRO_ENOENT);
    CHECK_EQ(rows(d, "SELECT count(*) FROM fields WHERE rid = '" BEN1 "'"), 0);
    CHECK_EQ(rows(d, "SELECT count(*) FROM pending"), 0);
    CHECK_EQ(rows(d, "SELECT count(*) FROM outbox"), 1);
    /* A removal of a record this device does not hold (a transfer removes
     * every record of a beneficiary, seen or not): nothing to delete. */
    long before = rows(d, "SELECT count(*) FROM records");
    CHECK_EQ(pull(l, &w1.r, 1, "cursor-5", false), 0);
    CHECK_EQ(rows(d, "SELECT count(*) FROM records"), before);
    CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
    CHECK_BYTES(cur, n, "cursor-5", 8);
    spro_local_close(l);
}

/* A reset answer: the server's copy is forgotten (records without a
 * pending edit, their fields, the cursor); the outbox, the quarantine and
 * pending edits stay; the snapshot pulled next restores the rest. */
static void test_pull_reset(void)
{
    const char *dir = fresh_dir("reset");
    char d[128], why[512];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    CHECK_EQ(pull_ben1(l, "cursor-1"), 0);
    struct wrec w;
    wrec_init(&w, "beneficiary", BEN2, BEN2);
    struct spro_value v = str("Zoé");
    uint64_t h = 10;
    const char *o = DEV_B;
    wrec_field(&w, "given_name", 1, &v, &h, &o);
    CHECK_EQ(pull(l, &w.r, 1, "cursor-2", false), 0);
    struct spro_local_set e = {"city", str("Arras")};
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &e, 1, NULL), 0);
    CHECK_EQ(rows(d, "SELECT count(*) FROM records"), 2);

    /* A fault anywhere: nothing forgotten. */
    struct spro_msg_pull_reply reset = {.reset = true};
    for (int k = 1; k <= 3; k++) {
        spro_local__fail_write = k;
        CHECK_EQ(spro_local_pull_apply(l, &reset, NOW, why, sizeof why), SPRO_ESTORE);
        spro_local__fail_write = 0;
        CHECK_EQ(rows(d, "SELECT count(*) FROM records"), 2);
        CHECK_EQ(rows(d, "SELECT count(*) FROM meta WHERE key = 'cursor'"), 1);
    }
    CHECK_EQ(spro_local_pull_apply(l, &reset, NOW, why, sizeof why), 0);
    uint8_t cur[SPRO_SYNC_MAX_CURSOR];
    size_t n = 99;
    CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
    CHECK_EQ(n, 0);
    /* BEN2 (no pending edit) is gone; BEN1 keeps its pending edit. */
    struct spro_local_record *r;
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN2, &r, why, sizeof why), SPRO_ENOENT);
    CHECK_EQ(rows(d, "SELECT count(*) FROM fields WHERE rid = '" BEN2 "'"), 0);
    CHECK_EQ(rows(d, "SELECT count(*) FROM pending"), 1);
    CHECK_EQ(rows(d, "SELECT count(*) FROM outbox"), 1);
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), 0);
    const struct spro_local_field *f = field_of(r, "city");
    CHECK(f != NULL && f->pending && is_str(f->shown, "Arras"));
    spro_local_record_free(r);

    /* The snapshot brings the records back; the pending edit still shows. */
    CHECK_EQ(pull(l, &w.r, 1, "cursor-9", true), 0);
    CHECK_EQ(pull_ben1(l, "cursor-9"), 0);
    CHECK_EQ(rows(d, "SELECT count(*) FROM records"), 2);
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN2, &r, why, sizeof why), 0);
    CHECK(is_str(field_of(r, "given_name")->shown, "Zoé"));
    spro_local_record_free(r);
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), 0);
    CHECK(is_str(field_of(r, "city")->shown, "Arras"));
    CHECK(is_str(field_of(r, "phone")->shown, "0602"));
    spro_local_record_free(r);
    CHECK_EQ(spro_local_cursor(l, cur, &n, why, sizeof why), 0);
    CHECK_BYTES(cur, n, "cursor-9", 8);
    CHECK_EQ(rows(d, "SELECT count(*) FROM outbox"), 1);
    spro_local_close(l);
}

/* ---- sealed at rest ---- */

/* Whether the sentinel is in dir/name (absent file: false). */
static bool file_has(const char *dir, const char *name, const char *needle)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (f == NULL)
        return false;
    static uint8_t buf[4 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void test_sealed_at_rest(void)
{
    const char *dir = fresh_dir("sealed");
    char d[128], why[512];
    snprintf(d, sizeof d, "%s", dir);
    struct spro_local *l = open_as(d, DEV);
    CHECK(l != NULL);
    /* The sentinel in every place a value goes: pulled siblings, a pending
     * edit with its outbox op, a conflict's siblings, a quarantined op. */
    struct wrec w;
    wrec_init(&w, "beneficiary", BEN1, BEN1);
    struct spro_value v = str(SENTINEL "-pulled");
    uint64_t h = 10;
    const char *o = DEV_B;
    wrec_field(&w, "family_name", 1, &v, &h, &o);
    CHECK_EQ(pull(l, &w.r, 1, "c", false), 0);
    struct spro_local_set s1 = {"given_name", str(SENTINEL "-edit")};
    struct spro_local_set s2 = {"note", str(SENTINEL "-quarantined")};
    uint64_t q1, q2;
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &s1, 1, &q1), 0);
    CHECK_EQ(edit(l, "beneficiary", BEN1, NULL, false, &s2, 1, &q2), 0);
    struct spro_local_set s3 = {"phone", str(SENTINEL "-waiting")};
    CHECK_EQ(edit(l, "beneficiary", BEN2, BEN2, true, &s3, 1, NULL), 0);
    struct spro_local_batch *b;
    CHECK_EQ(spro_local_push_next(l, SPRO_SYNC_MAX_OPS, &b, why, sizeof why), 0);
    struct spro_wire_sibling cs[2] = {
        {str(SENTINEL "-other"), {20, B(DEV_C)}, B("u9")},
        {str(SENTINEL "-edit"), {30, B(DEV)}, B(USER)},
    };
    struct spro_wire_field cf = {B("given_name"), cs, 2};
    struct spro_wire_result res[2] = {
        {.seq = q1,
         .status = SPRO_RESULT_CONFLICT,
         .ver = {30, B(DEV)},
         .fields = &cf,
         .nfields = 1},
        {.seq = q2, .status = SPRO_RESULT_REJECT, .code = B("bad_value")},
    };
    struct spro_msg_push_reply reply = {res, 2};
    struct spro_local_push_stats st = {0};
    CHECK_EQ(spro_local_push_done(l, b, &reply, NOW, &st, NULL, NULL, why, sizeof why), 0);
    spro_local_batch_free(b);
    CHECK_EQ(st.conflicts, 1);
    CHECK_EQ(st.rejected, 1);

    /* Readable through the store... */
    struct spro_local_record *r;
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), 0);
    const struct spro_local_field *f = field_of(r, "given_name");
    CHECK(f != NULL && f->conflict);
    CHECK(is_str(&f->siblings[0].val, SENTINEL "-other"));
    CHECK(is_str(field_of(r, "family_name")->shown, SENTINEL "-pulled"));
    spro_local_record_free(r);
    CHECK(!file_has(d, "local.db-wal", SENTINEL));
    spro_local_close(l);
    /* ... and nowhere in its files. */
    CHECK(!file_has(d, "local.db", SENTINEL));
    CHECK(!file_has(d, "local.db-wal", SENTINEL));
    CHECK(!file_has(d, "local.db", "Zorglub"));
    CHECK_EQ(rows(d, "SELECT count(*) FROM quarantine"), 1);
    CHECK_EQ(rows(d, "SELECT count(*) FROM outbox"), 1);

    /* Under another key, nothing opens. */
    char p[256];
    snprintf(p, sizeof p, "%s/local.key", d);
    int fd = open(p, O_WRONLY | O_TRUNC);
    uint8_t key[32];
    spro_crypto_random(key, sizeof key);
    CHECK(fd >= 0 && write(fd, key, sizeof key) == (ssize_t)sizeof key);
    close(fd);
    CHECK((l = open_as(d, DEV)) != NULL);
    CHECK_EQ(spro_local_get(l, "beneficiary", BEN1, &r, why, sizeof why), SPRO_EINTEGRITY);
    CHECK_EQ(spro_local_push_next(l, SPRO_SYNC_MAX_OPS, &b, why, sizeof why), SPRO_EINTEGRITY);
    spro_local_close(l);
}

static const struct check_test tests[] = {
    {"open_files", test_open_files},
    {"open_uuid", test_open_uuid},
    {"write_atomic", test_write_atomic},
    {"write_refusals", test_write_refusals},
    {"base_of_edits", test_base_of_edits},
    {"display_provisional_and_pending", test_display_provisional_and_pending},
    {"push_results", test_push_results},
    {"push_batches", test_push_batches},
    {"pull_cursor", test_pull_cursor},
    {"pull_reset", test_pull_reset},
    {"sealed_at_rest", test_sealed_at_rest},
};

int main(int argc, char **argv)
{
    if (spro_crypto_init() != 0)
        return 1;
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    if (tmp_root[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp_root);
    }
    return rc;
}
