/*
 * The sync messages (docs/PROTOCOL.md, "Sync"): push, push_reply, pull and
 * pull_reply.  Decoding into caller memory (an arena), encoding, deep
 * comparison.  spro_proto_decode_sync(), spro_proto_encode() and
 * spro_proto_msg_equal() come here for these four types.
 *
 * Decoding runs the steps of messages.c.  Steps 1-3 are shared
 * (spro_proto__envelope()): the whole body is checked against the generic
 * limits first (which refuses, among others, two equal string keys in any
 * map of the message: two fields of one `set` or `fields` map with the
 * same name are DUPKEY there), then its version, then its type.  Steps 4
 * and 5 are applied to every map of the message alike (the envelope, an
 * op, an edit, a sibling, a result, a record): its entries in byte order
 * (a key that is not a string is BADTYPE, longer than SPRO_PROTO_MAX_KEY
 * TOOLONG, not defined for that map UNKNOWNFIELD; then its value, judged
 * in full, nested maps included), then its completeness (MISSING), then
 * the rules that tie its fields together (a result's presence matrix, a
 * record's `removed`).  So the first failure in byte order wins, except
 * that a map's completeness is judged when the map has been read to its
 * end.  Counts and lengths follow the reader's rule: above the maximum is
 * TOOLONG, below the minimum RANGE.
 *
 * Arena bound.  The decoder takes from the arena one array per non-empty
 * ops, set, base, results, fields, siblings or records value, of n >= 1
 * elements of one of the element types checked below, and nothing else.
 * Each element is one msgpack value of the input: an op, a version, a
 * result, a sibling or a record is an element of an array; an edit or a
 * field is an entry of a map, whose key is a value.  Step 1 has checked the
 * whole body before anything is taken, so every element counted by a
 * header really is in buf, and distinct values start at distinct bytes:
 * the elements of all the arrays of one message number at most len.  An
 * array of n elements of type T takes at most alignof(T) - 1 bytes of
 * padding and n * sizeof(T) bytes, so at most n * (sizeof(T) + alignof(T)
 * - 1) as n >= 1.  Summed over the arrays, the decoder takes at most
 * len * max over T of (sizeof(T) + alignof(T) - 1) bytes, which the
 * assertions below keep within SPRO_PROTO_ARENA_BYTES(len).  (88 + 7
 * bytes per input byte on LP64: a sibling or an op.)  An array is taken
 * as soon as its header has been read, before its elements are judged;
 * this is why a body of one-byte elements that will be refused needs the
 * full bound, and why SPRO_ENOMEM can only mean an arena smaller than the
 * bound.
 *
 * Encoding packs with msgpack-c (smallest forms, keys in documented order)
 * and checks each value against the decoder's bounds as it goes; on the
 * first failure it takes back everything it appended.  A value whose raw
 * bytes are set is checked as the decoder would check it and copied
 * verbatim.
 */
#include "proto.h"

#include <string.h>

#include <msgpack.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Bounds of docs/PROTOCOL.md, "Sync", not in proto.h. */
#define SEQ_MAX ((uint64_t)INT64_MAX) /* op and result seq, 1..2^63-1 */
#define HLC_MAX ((uint64_t)INT64_MAX) /* op hlc and version hlc, 1..2^63-1 */
#define SCHEMA_MAX 2147483647u        /* op schema, 1..2^31-1 */
#define RTYPE_MAX 32                  /* bytes of a record type name */
#define FIELD_NAME_MAX 64             /* bytes of a field name */
#define ORIGIN_MAX 64                 /* bytes of a version's origin */
#define BY_MAX 64                     /* bytes of a sibling's author */
#define CODE_MAX SPRO_PROTO_MAX_CODE  /* bytes of a reject code */
#define UUID_LEN 36                   /* rid, ben: 8-4-4-4-12 lowercase hex */

#define ARENA_PER_BYTE SPRO_PROTO_ARENA_BYTES(1)
#define FITS(T) (sizeof(T) + _Alignof(T) - 1 <= ARENA_PER_BYTE)
_Static_assert(FITS(struct spro_wire_op) && FITS(struct spro_wire_edit) &&
                   FITS(struct spro_wire_version) && FITS(struct spro_wire_result) &&
                   FITS(struct spro_wire_field) && FITS(struct spro_wire_sibling) &&
                   FITS(struct spro_wire_record),
               "an arena element outgrew SPRO_PROTO_ARENA_BYTES: raise it (see the proof above)");
_Static_assert(SPRO_PROTO_ARENA_BYTES(2) == 2 * ARENA_PER_BYTE,
               "the proof needs SPRO_PROTO_ARENA_BYTES linear in len");

/* The envelope's keys per type: "v" and "type" (judged by steps 2 and 3,
 * skipped by step 4), then the fields in documented order. */
static const char *const push_keys[] = {"v", "type", "ops"};
static const char *const push_reply_keys[] = {"v", "type", "results"};
static const char *const pull_keys[] = {"v", "type", "cursor", "limit"};
/* pull_reply's "reset" is optional: complete() checks the first 5 keys. */
static const char *const pull_reply_keys[] = {"v", "type", "records", "cursor", "more", "reset"};
#define PULL_REPLY_REQUIRED 5

struct sync_type {
    enum spro_msg_type type;
    const char *name;
    const char *const *keys;
    size_t nkeys;
};

static const struct sync_type sync_types[] = {
    {SPRO_MSG_PUSH, "push", push_keys, NELEM(push_keys)},
    {SPRO_MSG_PUSH_REPLY, "push_reply", push_reply_keys, NELEM(push_reply_keys)},
    {SPRO_MSG_PULL, "pull", pull_keys, NELEM(pull_keys)},
    {SPRO_MSG_PULL_REPLY, "pull_reply", pull_reply_keys, NELEM(pull_reply_keys)},
};

const char *spro_proto__sync_name(enum spro_msg_type t)
{
    for (size_t k = 0; k < NELEM(sync_types); k++)
        if (sync_types[k].type == t)
            return sync_types[k].name;
    return NULL;
}

static bool name_is(const char *name, const void *s, size_t len)
{
    return strlen(name) == len && (len == 0 || memcmp(name, s, len) == 0);
}

static bool bytes_equal(struct spro_bytes a, struct spro_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool is_lower_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* True if s is a lowercase UUID: 8-4-4-4-12 hex digits and dashes. */
static bool uuid_form(struct spro_bytes s)
{
    if (s.len != UUID_LEN)
        return false;
    for (size_t k = 0; k < UUID_LEN; k++) {
        bool dash = k == 8 || k == 13 || k == 18 || k == 23;
        if (dash ? s.p[k] != '-' : !is_lower_hex(s.p[k]))
            return false;
    }
    return true;
}

static const char *const status_names[] = {
    [SPRO_RESULT_ACK] = "ack",
    [SPRO_RESULT_CONFLICT] = "conflict",
    [SPRO_RESULT_REJECT] = "reject",
};

/* The keys of a result, in documented order, and which of the optional
 * ones each status requires (the others it forbids). */
enum { R_SEQ, R_STATUS, R_VER, R_CODE, R_FIELDS };
static const char *const result_keys[] = {"seq", "status", "ver", "code", "fields"};
static const unsigned result_needs[] = {
    [SPRO_RESULT_ACK] = 1u << R_VER,
    [SPRO_RESULT_CONFLICT] = 1u << R_VER | 1u << R_FIELDS,
    [SPRO_RESULT_REJECT] = 1u << R_CODE,
};

/* ---- Decoding ---- */

/* n zeroed elements of `size` bytes aligned to `align` from the arena
 * (zeroed: the members a message leaves out, such as an ack's code and
 * fields, read as empty); NULL when n is 0, or when the arena is full. */
static void *take(struct spro_arena *a, size_t n, size_t size, size_t align)
{
    void *p = n == 0 ? NULL : spro_arena_alloc(a, n * size, align);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}
#define TAKE(a, n, T) ((T *)take((a), (n), sizeof(T), _Alignof(T)))

/* A string of min..max bytes: BADTYPE, TOOLONG, BADUTF8 from the reader,
 * then RANGE below min. */
static int read_text(struct spro_mp_reader *r, size_t min, size_t max, struct spro_bytes *b)
{
    const char *s;
    size_t len;
    int err = spro_mp_read_str(r, max, &s, &len);
    if (err != 0)
        return err;
    if (len < min)
        return SPRO_ERANGE;
    b->p = (const uint8_t *)s;
    b->len = len;
    return 0;
}

/* rid, ben: exactly 36 bytes (TOOLONG above, RANGE below) of UUID form
 * (RANGE otherwise). */
static int read_uuid(struct spro_mp_reader *r, struct spro_bytes *b)
{
    int err = read_text(r, UUID_LEN, UUID_LEN, b);
    return err == 0 && !uuid_form(*b) ? SPRO_ERANGE : err;
}

/* A count of min..max: BADTYPE for another type, TOOLONG above max, RANGE
 * below min. */
static int read_count(struct spro_mp_reader *r, bool map, uint32_t min, uint32_t max, uint32_t *n)
{
    int err = map ? spro_mp_read_map(r, max, n) : spro_mp_read_array(r, max, n);
    return err == 0 && *n < min ? SPRO_ERANGE : err;
}

/* The key of an entry of a map whose keys are keys[0..nkeys): sets *k to
 * its index and its bit in *seen.  BADTYPE, TOOLONG (above
 * SPRO_PROTO_MAX_KEY), UNKNOWNFIELD. */
static int read_key(struct spro_mp_reader *r, const char *const *keys, size_t nkeys, unsigned *seen,
                    size_t *k)
{
    const char *s;
    size_t len;
    int err = spro_mp_read_str(r, SPRO_PROTO_MAX_KEY, &s, &len);
    if (err != 0)
        return err;
    for (*k = 0; *k < nkeys; (*k)++) {
        if (name_is(keys[*k], s, len)) {
            if (*seen & 1u << *k)
                return SPRO_EDUPKEY; /* refused by step 1 already */
            *seen |= 1u << *k;
            return 0;
        }
    }
    return SPRO_EUNKNOWNFIELD;
}

/* MISSING unless every key of the first nkeys is in seen. */
static int complete(unsigned seen, size_t nkeys)
{
    unsigned all = (1u << nkeys) - 1;
    return (seen & all) == all ? 0 : SPRO_EMISSING;
}

/* A value: nil, bool, an integer of any width in int64 range (RANGE
 * outside), or a string of 0..SPRO_SYNC_MAX_VALUE bytes; BADTYPE for any
 * other type.  raw is set to the value's bytes. */
static int read_value(struct spro_mp_reader *r, struct spro_value *v)
{
    const uint8_t *start = r->p;
    memset(v, 0, sizeof *v);
    int err = spro_mp_read_nil(r);
    if (err == 0)
        v->kind = SPRO_VALUE_NIL;
    else if (err == SPRO_EBADTYPE && (err = spro_mp_read_bool(r, &v->b)) == 0)
        v->kind = SPRO_VALUE_BOOL;
    else if (err == SPRO_EBADTYPE && (err = spro_mp_read_int(r, INT64_MIN, INT64_MAX, &v->i)) == 0)
        v->kind = SPRO_VALUE_INT;
    else if (err == SPRO_EBADTYPE && (err = read_text(r, 0, SPRO_SYNC_MAX_VALUE, &v->s)) == 0)
        v->kind = SPRO_VALUE_STR;
    if (err != 0)
        return err;
    v->raw.p = start;
    v->raw.len = (size_t)(r->p - start);
    return 0;
}

/* [hlc, origin]: an array of exactly 2 (TOOLONG above, RANGE below). */
static int read_version(struct spro_mp_reader *r, struct spro_wire_version *v)
{
    uint32_t n;
    int err = read_count(r, false, 2, 2, &n);
    if (err == 0)
        err = spro_mp_read_uint(r, 1, HLC_MAX, &v->hlc);
    if (err == 0)
        err = read_text(r, 1, ORIGIN_MAX, &v->origin);
    return err;
}

/* An edit's base: 0..SPRO_SYNC_MAX_SIBLINGS versions. */
static int read_base(struct spro_mp_reader *r, struct spro_arena *a, struct spro_wire_edit *e)
{
    uint32_t n;
    int err = read_count(r, false, 0, SPRO_SYNC_MAX_SIBLINGS, &n);
    if (err != 0)
        return err;
    struct spro_wire_version *base = TAKE(a, n, struct spro_wire_version);
    if (n > 0 && base == NULL)
        return SPRO_ENOMEM;
    e->base = base;
    e->nbase = n;
    for (uint32_t k = 0; k < n; k++)
        if ((err = read_version(r, &base[k])) != 0)
            return err;
    return 0;
}

/* {val, base} */
static int read_edit(struct spro_mp_reader *r, struct spro_arena *a, struct spro_wire_edit *e)
{
    static const char *const keys[] = {"val", "base"};
    uint32_t n;
    unsigned seen = 0;
    int err = spro_mp_read_map(r, SPRO_PROTO_MAX_ITEMS, &n);
    for (uint32_t i = 0; err == 0 && i < n; i++) {
        size_t k;
        if ((err = read_key(r, keys, NELEM(keys), &seen, &k)) != 0)
            break;
        err = k == 0 ? read_value(r, &e->val) : read_base(r, a, e);
    }
    return err != 0 ? err : complete(seen, NELEM(keys));
}

/* {val, ver, by} */
static int read_sibling(struct spro_mp_reader *r, struct spro_wire_sibling *s)
{
    static const char *const keys[] = {"val", "ver", "by"};
    uint32_t n;
    unsigned seen = 0;
    int err = spro_mp_read_map(r, SPRO_PROTO_MAX_ITEMS, &n);
    for (uint32_t i = 0; err == 0 && i < n; i++) {
        size_t k;
        if ((err = read_key(r, keys, NELEM(keys), &seen, &k)) != 0)
            break;
        switch (k) {
        case 0:
            err = read_value(r, &s->val);
            break;
        case 1:
            err = read_version(r, &s->ver);
            break;
        default:
            err = read_text(r, 1, BY_MAX, &s->by);
            break;
        }
    }
    return err != 0 ? err : complete(seen, NELEM(keys));
}

/* {name: [sibling, ...], ...}: min..SPRO_SYNC_MAX_FIELDS fields of
 * 1..SPRO_SYNC_MAX_SIBLINGS siblings each. */
static int read_fields(struct spro_mp_reader *r, struct spro_arena *a, uint32_t min,
                       const struct spro_wire_field **out, size_t *nout)
{
    uint32_t n;
    int err = read_count(r, true, min, SPRO_SYNC_MAX_FIELDS, &n);
    if (err != 0)
        return err;
    struct spro_wire_field *f = TAKE(a, n, struct spro_wire_field);
    if (n > 0 && f == NULL)
        return SPRO_ENOMEM;
    *out = f;
    *nout = n;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t ns;
        if ((err = read_text(r, 1, FIELD_NAME_MAX, &f[k].name)) != 0 ||
            (err = read_count(r, false, 1, SPRO_SYNC_MAX_SIBLINGS, &ns)) != 0)
            return err;
        struct spro_wire_sibling *s = TAKE(a, ns, struct spro_wire_sibling);
        if (s == NULL)
            return SPRO_ENOMEM;
        f[k].siblings = s;
        f[k].nsiblings = ns;
        for (uint32_t j = 0; j < ns; j++)
            if ((err = read_sibling(r, &s[j])) != 0)
                return err;
    }
    return 0;
}

/* An op's set: {name: edit, ...}, 1..SPRO_SYNC_MAX_FIELDS. */
static int read_set(struct spro_mp_reader *r, struct spro_arena *a, struct spro_wire_op *op)
{
    uint32_t n;
    int err = read_count(r, true, 1, SPRO_SYNC_MAX_FIELDS, &n);
    if (err != 0)
        return err;
    struct spro_wire_edit *e = TAKE(a, n, struct spro_wire_edit);
    if (e == NULL)
        return SPRO_ENOMEM;
    op->set = e;
    op->nset = n;
    for (uint32_t k = 0; k < n; k++)
        if ((err = read_text(r, 1, FIELD_NAME_MAX, &e[k].name)) != 0 ||
            (err = read_edit(r, a, &e[k])) != 0)
            return err;
    return 0;
}

static int read_op(struct spro_mp_reader *r, struct spro_arena *a, struct spro_wire_op *op)
{
    static const char *const keys[] = {"seq", "rtype", "rid", "ben", "schema", "hlc", "set"};
    uint32_t n;
    unsigned seen = 0;
    int err = spro_mp_read_map(r, SPRO_PROTO_MAX_ITEMS, &n);
    for (uint32_t i = 0; err == 0 && i < n; i++) {
        size_t k;
        uint64_t schema;
        if ((err = read_key(r, keys, NELEM(keys), &seen, &k)) != 0)
            break;
        switch (k) {
        case 0:
            err = spro_mp_read_uint(r, 1, SEQ_MAX, &op->seq);
            break;
        case 1:
            err = read_text(r, 1, RTYPE_MAX, &op->rtype);
            break;
        case 2:
            err = read_uuid(r, &op->rid);
            break;
        case 3:
            err = read_uuid(r, &op->ben);
            break;
        case 4:
            if ((err = spro_mp_read_uint(r, 1, SCHEMA_MAX, &schema)) == 0)
                op->schema = (uint32_t)schema;
            break;
        case 5:
            err = spro_mp_read_uint(r, 1, HLC_MAX, &op->hlc);
            break;
        default:
            err = read_set(r, a, op);
            break;
        }
    }
    return err != 0 ? err : complete(seen, NELEM(keys));
}

/* A result; then, once it has been read whole, its presence matrix: seq
 * and status are required (MISSING); then, in the order ver, code,
 * fields, a field the status requires and is absent is MISSING, one it
 * does not take and is present UNKNOWNFIELD. */
static int read_result(struct spro_mp_reader *r, struct spro_arena *a, struct spro_wire_result *res)
{
    uint32_t n;
    unsigned seen = 0;
    int err = spro_mp_read_map(r, SPRO_PROTO_MAX_ITEMS, &n);
    for (uint32_t i = 0; err == 0 && i < n; i++) {
        size_t k;
        struct spro_bytes status;
        if ((err = read_key(r, result_keys, NELEM(result_keys), &seen, &k)) != 0)
            break;
        switch (k) {
        case R_SEQ:
            err = spro_mp_read_uint(r, 1, SEQ_MAX, &res->seq);
            break;
        case R_STATUS:
            if ((err = read_text(r, 0, SPRO_PROTO_MAX_STR, &status)) != 0)
                break;
            err = SPRO_ERANGE;
            for (size_t s = 0; s < NELEM(status_names); s++) {
                if (name_is(status_names[s], status.p, status.len)) {
                    res->status = (enum spro_result_status)s;
                    err = 0;
                }
            }
            break;
        case R_VER:
            err = read_version(r, &res->ver);
            break;
        case R_CODE:
            err = read_text(r, 1, CODE_MAX, &res->code);
            break;
        default:
            err = read_fields(r, a, 1, &res->fields, &res->nfields);
            break;
        }
    }
    if (err == 0)
        err = complete(seen, R_STATUS + 1);
    for (unsigned k = R_VER; err == 0 && k <= R_FIELDS; k++) {
        bool needed = (result_needs[res->status] & 1u << k) != 0, present = (seen & 1u << k) != 0;
        if (needed != present)
            err = needed ? SPRO_EMISSING : SPRO_EUNKNOWNFIELD;
    }
    return err;
}

/* A record's state; removed true with fields is RANGE. */
static int read_record(struct spro_mp_reader *r, struct spro_arena *a, struct spro_wire_record *rec)
{
    static const char *const keys[] = {"rtype", "rid", "ben", "fields", "removed"};
    uint32_t n;
    unsigned seen = 0;
    int err = spro_mp_read_map(r, SPRO_PROTO_MAX_ITEMS, &n);
    for (uint32_t i = 0; err == 0 && i < n; i++) {
        size_t k;
        if ((err = read_key(r, keys, NELEM(keys), &seen, &k)) != 0)
            break;
        switch (k) {
        case 0:
            err = read_text(r, 1, RTYPE_MAX, &rec->rtype);
            break;
        case 1:
            err = read_uuid(r, &rec->rid);
            break;
        case 2:
            err = read_uuid(r, &rec->ben);
            break;
        case 3:
            err = read_fields(r, a, 0, &rec->fields, &rec->nfields);
            break;
        default:
            err = spro_mp_read_bool(r, &rec->removed);
            break;
        }
    }
    if (err == 0)
        err = complete(seen, NELEM(keys));
    return err == 0 && rec->removed && rec->nfields > 0 ? SPRO_ERANGE : err;
}

/* Steps 4 and 5 for the envelope of type t (m->type). */
static int decode_body(const void *buf, size_t len, const struct sync_type *t, struct spro_arena *a,
                       struct spro_msg *m)
{
    const char *const *keys = t->keys;
    size_t nkeys = t->nkeys;

    struct spro_mp_reader r;
    spro_mp_reader_init(&r, buf, len);
    uint32_t n;
    unsigned seen = 0;
    int err = spro_mp_read_map(&r, SPRO_PROTO_MAX_FIELDS, &n);
    for (uint32_t i = 0; err == 0 && i < n; i++) {
        size_t k;
        uint32_t count;
        uint64_t limit;
        if ((err = read_key(&r, keys, nkeys, &seen, &k)) != 0)
            break;
        if (k < 2) { /* "v", "type" */
            err = spro_mp_skip(&r, 1);
            continue;
        }
        switch (m->type) {
        case SPRO_MSG_PUSH: { /* ops */
            struct spro_msg_push *p = &m->u.push;
            if ((err = read_count(&r, false, 1, SPRO_SYNC_MAX_OPS, &count)) != 0)
                break;
            struct spro_wire_op *ops = TAKE(a, count, struct spro_wire_op);
            if (ops == NULL) {
                err = SPRO_ENOMEM;
                break;
            }
            p->ops = ops;
            p->nops = count;
            for (uint32_t j = 0; err == 0 && j < count; j++)
                err = read_op(&r, a, &ops[j]);
            break;
        }
        case SPRO_MSG_PUSH_REPLY: { /* results */
            struct spro_msg_push_reply *p = &m->u.push_reply;
            if ((err = read_count(&r, false, 0, SPRO_SYNC_MAX_OPS, &count)) != 0)
                break;
            struct spro_wire_result *res = TAKE(a, count, struct spro_wire_result);
            if (count > 0 && res == NULL) {
                err = SPRO_ENOMEM;
                break;
            }
            p->results = res;
            p->nresults = count;
            for (uint32_t j = 0; err == 0 && j < count; j++)
                err = read_result(&r, a, &res[j]);
            break;
        }
        case SPRO_MSG_PULL: /* cursor, limit */
            if (k == 2) {
                err = spro_mp_read_bin(&r, SPRO_SYNC_MAX_CURSOR, &m->u.pull.cursor.p,
                                       &m->u.pull.cursor.len);
            } else if ((err = spro_mp_read_uint(&r, 1, SPRO_SYNC_MAX_RECORDS, &limit)) == 0) {
                m->u.pull.limit = (uint32_t)limit;
            }
            break;
        default: { /* records, cursor, more, reset */
            struct spro_msg_pull_reply *p = &m->u.pull_reply;
            if (k == 3) {
                err = spro_mp_read_bin(&r, SPRO_SYNC_MAX_CURSOR, &p->cursor.p, &p->cursor.len);
                break;
            }
            if (k == 4) {
                err = spro_mp_read_bool(&r, &p->more);
                break;
            }
            if (k == 5) { /* reset: present only as true */
                if ((err = spro_mp_read_bool(&r, &p->reset)) == 0 && !p->reset)
                    err = SPRO_ERANGE;
                break;
            }
            if ((err = read_count(&r, false, 0, SPRO_SYNC_MAX_RECORDS, &count)) != 0)
                break;
            struct spro_wire_record *rec = TAKE(a, count, struct spro_wire_record);
            if (count > 0 && rec == NULL) {
                err = SPRO_ENOMEM;
                break;
            }
            p->records = rec;
            p->nrecords = count;
            for (uint32_t j = 0; err == 0 && j < count; j++)
                err = read_record(&r, a, &rec[j]);
            break;
        }
        }
    }
    if (err == 0 && m->type == SPRO_MSG_PULL_REPLY) {
        const struct spro_msg_pull_reply *p = &m->u.pull_reply;
        if ((err = complete(seen, PULL_REPLY_REQUIRED)) == 0 && p->reset &&
            (p->nrecords > 0 || p->more))
            err = SPRO_ERANGE; /* a reset carries no record and no "more" */
        return err;
    }
    return err != 0 ? err : complete(seen, nkeys);
}

int spro_proto_decode_sync(const void *buf, size_t len, struct spro_arena *arena,
                           struct spro_msg *m)
{
    if (arena == NULL)
        SPRO_BUG("spro_proto_decode_sync: NULL arena");
    const char *name;
    size_t nlen;
    int err = spro_proto__envelope(buf, len, &name, &nlen); /* steps 1-3 */
    if (err != 0)
        return err;
    size_t k = 0;
    while (k < NELEM(sync_types) && !name_is(sync_types[k].name, name, nlen))
        k++;
    if (k == NELEM(sync_types))
        return SPRO_EBADMSGTYPE; /* unknown, or a flat type (spro_proto_decode()) */

    memset(m, 0, sizeof *m);
    m->type = sync_types[k].type;
    size_t mark = arena->len;
    err = decode_body(buf, len, &sync_types[k], arena, m);
    if (err != 0 && arena->len > mark) { /* give back, wiped: values may be personal */
        memset(arena->base + mark, 0, arena->len - mark);
        arena->len = mark;
    }
    return err;
}

/* ---- Encoding ---- */

struct enc {
    msgpack_packer pk;
    struct spro_buf *out;
};

static int append_cb(void *data, const char *p, size_t n)
{
    spro_buf_append(data, p, n);
    return 0; /* appending cannot fail: it aborts on out-of-memory */
}

static void put_key(struct enc *e, const char *key)
{
    (void)msgpack_pack_str_with_body(&e->pk, key, strlen(key));
}

static int put_text(struct enc *e, struct spro_bytes b, size_t min, size_t max)
{
    if (b.p == NULL && b.len != 0)
        SPRO_BUG("spro_proto_encode: NULL bytes with a nonzero length");
    if (b.len > max)
        return SPRO_ETOOLONG;
    if (b.len < min)
        return SPRO_ERANGE;
    if (b.len != 0 && spro_proto__utf8_prefix(b.p, b.len) != b.len)
        return SPRO_EBADUTF8;
    (void)msgpack_pack_str_with_body(&e->pk, b.p, b.len);
    return 0;
}

static int put_uuid(struct enc *e, struct spro_bytes b)
{
    if (b.p == NULL && b.len != 0)
        SPRO_BUG("spro_proto_encode: NULL bytes with a nonzero length");
    if (b.len > UUID_LEN)
        return SPRO_ETOOLONG;
    if (!uuid_form(b))
        return SPRO_ERANGE;
    return put_text(e, b, UUID_LEN, UUID_LEN);
}

static int put_bin(struct enc *e, struct spro_bytes b, size_t max)
{
    if (b.p == NULL && b.len != 0)
        SPRO_BUG("spro_proto_encode: NULL bytes with a nonzero length");
    if (b.len > max)
        return SPRO_ETOOLONG;
    (void)msgpack_pack_bin_with_body(&e->pk, b.p, b.len);
    return 0;
}

static int put_uint(struct enc *e, uint64_t v, uint64_t min, uint64_t max)
{
    if (v < min || v > max)
        return SPRO_ERANGE;
    (void)msgpack_pack_uint64(&e->pk, v);
    return 0;
}

/* An array or map header of n in min..max entries. */
static int put_count(struct enc *e, bool map, size_t n, size_t min, size_t max, const void *p)
{
    if (p == NULL && n != 0)
        SPRO_BUG("spro_proto_encode: NULL array with a nonzero count");
    if (n > max)
        return SPRO_ETOOLONG;
    if (n < min)
        return SPRO_ERANGE;
    if (map)
        (void)msgpack_pack_map(&e->pk, n);
    else
        (void)msgpack_pack_array(&e->pk, n);
    return 0;
}

static int put_value(struct enc *e, const struct spro_value *v)
{
    if (v->raw.p != NULL) { /* verbatim, once checked as the decoder would */
        struct spro_mp_reader r;
        struct spro_value check;
        spro_mp_reader_init(&r, v->raw.p, v->raw.len);
        int err = read_value(&r, &check);
        if (err == 0)
            err = spro_mp_finish(&r);
        if (err == 0)
            spro_buf_append(e->out, v->raw.p, v->raw.len);
        return err;
    }
    switch (v->kind) {
    case SPRO_VALUE_NIL:
        (void)msgpack_pack_nil(&e->pk);
        return 0;
    case SPRO_VALUE_BOOL:
        if (v->b)
            (void)msgpack_pack_true(&e->pk);
        else
            (void)msgpack_pack_false(&e->pk);
        return 0;
    case SPRO_VALUE_INT:
        (void)msgpack_pack_int64(&e->pk, v->i);
        return 0;
    case SPRO_VALUE_STR:
        return put_text(e, v->s, 0, SPRO_SYNC_MAX_VALUE);
    }
    SPRO_BUG("spro_proto_encode: invalid value kind");
}

static int put_version(struct enc *e, const struct spro_wire_version *v)
{
    int err;
    (void)msgpack_pack_array(&e->pk, 2);
    if ((err = put_uint(e, v->hlc, 1, HLC_MAX)) != 0)
        return err;
    return put_text(e, v->origin, 1, ORIGIN_MAX);
}

static int put_sibling(struct enc *e, const struct spro_wire_sibling *s)
{
    int err;
    (void)msgpack_pack_map(&e->pk, 3);
    put_key(e, "val");
    if ((err = put_value(e, &s->val)) != 0)
        return err;
    put_key(e, "ver");
    if ((err = put_version(e, &s->ver)) != 0)
        return err;
    put_key(e, "by");
    return put_text(e, s->by, 1, BY_MAX);
}

/* {name: [sibling, ...], ...}: names distinct (DUPKEY), as the decoder's
 * step 1 requires. */
static int put_fields(struct enc *e, const struct spro_wire_field *f, size_t n, size_t min)
{
    int err = put_count(e, true, n, min, SPRO_SYNC_MAX_FIELDS, f);
    for (size_t k = 0; err == 0 && k < n; k++) {
        for (size_t j = 0; j < k; j++)
            if (bytes_equal(f[j].name, f[k].name))
                return SPRO_EDUPKEY;
        const struct spro_wire_sibling *s = f[k].siblings;
        size_t ns = f[k].nsiblings;
        if ((err = put_text(e, f[k].name, 1, FIELD_NAME_MAX)) != 0 ||
            (err = put_count(e, false, ns, 1, SPRO_SYNC_MAX_SIBLINGS, s)) != 0)
            return err;
        for (size_t j = 0; err == 0 && j < ns; j++)
            err = put_sibling(e, &s[j]);
    }
    return err;
}

static int put_edit(struct enc *e, const struct spro_wire_edit *ed)
{
    int err;
    (void)msgpack_pack_map(&e->pk, 2);
    put_key(e, "val");
    if ((err = put_value(e, &ed->val)) != 0)
        return err;
    put_key(e, "base");
    err = put_count(e, false, ed->nbase, 0, SPRO_SYNC_MAX_SIBLINGS, ed->base);
    for (size_t k = 0; err == 0 && k < ed->nbase; k++)
        err = put_version(e, &ed->base[k]);
    return err;
}

static int put_op(struct enc *e, const struct spro_wire_op *op)
{
    int err;
    (void)msgpack_pack_map(&e->pk, 7);
    put_key(e, "seq");
    if ((err = put_uint(e, op->seq, 1, SEQ_MAX)) != 0)
        return err;
    put_key(e, "rtype");
    if ((err = put_text(e, op->rtype, 1, RTYPE_MAX)) != 0)
        return err;
    put_key(e, "rid");
    if ((err = put_uuid(e, op->rid)) != 0)
        return err;
    put_key(e, "ben");
    if ((err = put_uuid(e, op->ben)) != 0)
        return err;
    put_key(e, "schema");
    if ((err = put_uint(e, op->schema, 1, SCHEMA_MAX)) != 0)
        return err;
    put_key(e, "hlc");
    if ((err = put_uint(e, op->hlc, 1, HLC_MAX)) != 0)
        return err;
    put_key(e, "set");
    if ((err = put_count(e, true, op->nset, 1, SPRO_SYNC_MAX_FIELDS, op->set)) != 0)
        return err;
    for (size_t k = 0; k < op->nset; k++) {
        for (size_t j = 0; j < k; j++)
            if (bytes_equal(op->set[j].name, op->set[k].name))
                return SPRO_EDUPKEY;
        if ((err = put_text(e, op->set[k].name, 1, FIELD_NAME_MAX)) != 0 ||
            (err = put_edit(e, &op->set[k])) != 0)
            return err;
    }
    return 0;
}

/* Only the fields the status takes are checked and sent. */
static int put_result(struct enc *e, const struct spro_wire_result *res)
{
    if ((unsigned)res->status >= NELEM(status_names))
        SPRO_BUG("spro_proto_encode: invalid result status");
    unsigned needs = result_needs[res->status];
    const char *status = status_names[res->status];
    size_t nkeys = 2; /* seq, status */
    for (unsigned k = R_VER; k <= R_FIELDS; k++)
        nkeys += (needs >> k) & 1;
    int err;
    (void)msgpack_pack_map(&e->pk, nkeys);
    put_key(e, "seq");
    if ((err = put_uint(e, res->seq, 1, SEQ_MAX)) != 0)
        return err;
    put_key(e, "status");
    (void)msgpack_pack_str_with_body(&e->pk, status, strlen(status));
    if (needs & 1u << R_VER) {
        put_key(e, "ver");
        if ((err = put_version(e, &res->ver)) != 0)
            return err;
    }
    if (needs & 1u << R_CODE) {
        put_key(e, "code");
        if ((err = put_text(e, res->code, 1, CODE_MAX)) != 0)
            return err;
    }
    if (needs & 1u << R_FIELDS) {
        put_key(e, "fields");
        if ((err = put_fields(e, res->fields, res->nfields, 1)) != 0)
            return err;
    }
    return 0;
}

static int put_record(struct enc *e, const struct spro_wire_record *rec)
{
    int err;
    if (rec->removed && rec->nfields > 0)
        return SPRO_ERANGE;
    (void)msgpack_pack_map(&e->pk, 5);
    put_key(e, "rtype");
    if ((err = put_text(e, rec->rtype, 1, RTYPE_MAX)) != 0)
        return err;
    put_key(e, "rid");
    if ((err = put_uuid(e, rec->rid)) != 0)
        return err;
    put_key(e, "ben");
    if ((err = put_uuid(e, rec->ben)) != 0)
        return err;
    put_key(e, "fields");
    if ((err = put_fields(e, rec->fields, rec->nfields, 0)) != 0)
        return err;
    put_key(e, "removed");
    if (rec->removed)
        (void)msgpack_pack_true(&e->pk);
    else
        (void)msgpack_pack_false(&e->pk);
    return 0;
}

static int put_body(struct enc *e, const struct spro_msg *m)
{
    const char *name = spro_proto__sync_name(m->type);
    size_t nfields = m->type == SPRO_MSG_PULL_REPLY ? 3u + m->u.pull_reply.reset
                     : m->type == SPRO_MSG_PULL     ? 2
                                                    : 1;
    int err = 0;
    (void)msgpack_pack_map(&e->pk, 2 + nfields);
    put_key(e, "v");
    (void)msgpack_pack_uint64(&e->pk, SPRO_PROTO_VERSION);
    put_key(e, "type");
    put_key(e, name);
    switch (m->type) {
    case SPRO_MSG_PUSH: {
        const struct spro_msg_push *p = &m->u.push;
        put_key(e, "ops");
        err = put_count(e, false, p->nops, 1, SPRO_SYNC_MAX_OPS, p->ops);
        for (size_t k = 0; err == 0 && k < p->nops; k++)
            err = put_op(e, &p->ops[k]);
        return err;
    }
    case SPRO_MSG_PUSH_REPLY: {
        const struct spro_msg_push_reply *p = &m->u.push_reply;
        put_key(e, "results");
        err = put_count(e, false, p->nresults, 0, SPRO_SYNC_MAX_OPS, p->results);
        for (size_t k = 0; err == 0 && k < p->nresults; k++)
            err = put_result(e, &p->results[k]);
        return err;
    }
    case SPRO_MSG_PULL:
        put_key(e, "cursor");
        if ((err = put_bin(e, m->u.pull.cursor, SPRO_SYNC_MAX_CURSOR)) != 0)
            return err;
        put_key(e, "limit");
        return put_uint(e, m->u.pull.limit, 1, SPRO_SYNC_MAX_RECORDS);
    default: {
        const struct spro_msg_pull_reply *p = &m->u.pull_reply;
        if (p->reset && (p->nrecords > 0 || p->more))
            return SPRO_ERANGE; /* as the decoder */
        put_key(e, "records");
        err = put_count(e, false, p->nrecords, 0, SPRO_SYNC_MAX_RECORDS, p->records);
        for (size_t k = 0; err == 0 && k < p->nrecords; k++)
            err = put_record(e, &p->records[k]);
        if (err != 0)
            return err;
        put_key(e, "cursor");
        if ((err = put_bin(e, p->cursor, SPRO_SYNC_MAX_CURSOR)) != 0)
            return err;
        put_key(e, "more");
        if (p->more)
            (void)msgpack_pack_true(&e->pk);
        else
            (void)msgpack_pack_false(&e->pk);
        if (p->reset) {
            put_key(e, "reset");
            (void)msgpack_pack_true(&e->pk);
        }
        return 0;
    }
    }
}

int spro_proto__encode_sync(const struct spro_msg *m, struct spro_buf *out)
{
    struct enc e = {.out = out};
    msgpack_packer_init(&e.pk, out, append_cb);
    size_t mark = out->len;
    int err = put_body(&e, m);
    if (err != 0)
        out->len = mark; /* nothing appended */
    return err;
}

/* ---- Comparison ---- */

/* The value v stands for: read from raw when set, as encoding sends raw.
 * False when raw is not one valid value or the kind is unknown. */
static bool value_view(const struct spro_value *v, struct spro_value *out)
{
    if (v->raw.p == NULL) {
        *out = *v;
        return v->kind == SPRO_VALUE_NIL || v->kind == SPRO_VALUE_BOOL ||
               v->kind == SPRO_VALUE_INT || v->kind == SPRO_VALUE_STR;
    }
    struct spro_mp_reader r;
    spro_mp_reader_init(&r, v->raw.p, v->raw.len);
    return read_value(&r, out) == 0 && spro_mp_finish(&r) == 0;
}

static bool value_equal(const struct spro_value *a, const struct spro_value *b)
{
    struct spro_value x, y;
    if (!value_view(a, &x) || !value_view(b, &y) || x.kind != y.kind)
        return false;
    switch (x.kind) {
    case SPRO_VALUE_NIL:
        return true;
    case SPRO_VALUE_BOOL:
        return x.b == y.b;
    case SPRO_VALUE_INT:
        return x.i == y.i;
    case SPRO_VALUE_STR:
        return bytes_equal(x.s, y.s);
    }
    return false;
}

static bool version_equal(const struct spro_wire_version *a, const struct spro_wire_version *b)
{
    return a->hlc == b->hlc && bytes_equal(a->origin, b->origin);
}

static bool fields_equal(const struct spro_wire_field *a, const struct spro_wire_field *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!bytes_equal(a[k].name, b[k].name) || a[k].nsiblings != b[k].nsiblings)
            return false;
        for (size_t j = 0; j < a[k].nsiblings; j++) {
            const struct spro_wire_sibling *x = &a[k].siblings[j], *y = &b[k].siblings[j];
            if (!value_equal(&x->val, &y->val) || !version_equal(&x->ver, &y->ver) ||
                !bytes_equal(x->by, y->by))
                return false;
        }
    }
    return true;
}

static bool op_equal(const struct spro_wire_op *a, const struct spro_wire_op *b)
{
    if (a->seq != b->seq || !bytes_equal(a->rtype, b->rtype) || !bytes_equal(a->rid, b->rid) ||
        !bytes_equal(a->ben, b->ben) || a->schema != b->schema || a->hlc != b->hlc ||
        a->nset != b->nset)
        return false;
    for (size_t k = 0; k < a->nset; k++) {
        const struct spro_wire_edit *x = &a->set[k], *y = &b->set[k];
        if (!bytes_equal(x->name, y->name) || !value_equal(&x->val, &y->val) ||
            x->nbase != y->nbase)
            return false;
        for (size_t j = 0; j < x->nbase; j++)
            if (!version_equal(&x->base[j], &y->base[j]))
                return false;
    }
    return true;
}

/* Compares the fields the status takes only. */
static bool result_equal(const struct spro_wire_result *a, const struct spro_wire_result *b)
{
    if (a->seq != b->seq || a->status != b->status || (unsigned)a->status >= NELEM(status_names))
        return false;
    unsigned needs = result_needs[a->status];
    if ((needs & 1u << R_VER) && !version_equal(&a->ver, &b->ver))
        return false;
    if ((needs & 1u << R_CODE) && !bytes_equal(a->code, b->code))
        return false;
    if ((needs & 1u << R_FIELDS) &&
        (a->nfields != b->nfields || !fields_equal(a->fields, b->fields, a->nfields)))
        return false;
    return true;
}

static bool record_equal(const struct spro_wire_record *a, const struct spro_wire_record *b)
{
    return bytes_equal(a->rtype, b->rtype) && bytes_equal(a->rid, b->rid) &&
           bytes_equal(a->ben, b->ben) && a->removed == b->removed && a->nfields == b->nfields &&
           fields_equal(a->fields, b->fields, a->nfields);
}

bool spro_proto__sync_equal(const struct spro_msg *a, const struct spro_msg *b)
{
    switch (a->type) {
    case SPRO_MSG_PUSH:
        if (a->u.push.nops != b->u.push.nops)
            return false;
        for (size_t k = 0; k < a->u.push.nops; k++)
            if (!op_equal(&a->u.push.ops[k], &b->u.push.ops[k]))
                return false;
        return true;
    case SPRO_MSG_PUSH_REPLY:
        if (a->u.push_reply.nresults != b->u.push_reply.nresults)
            return false;
        for (size_t k = 0; k < a->u.push_reply.nresults; k++)
            if (!result_equal(&a->u.push_reply.results[k], &b->u.push_reply.results[k]))
                return false;
        return true;
    case SPRO_MSG_PULL:
        return bytes_equal(a->u.pull.cursor, b->u.pull.cursor) &&
               a->u.pull.limit == b->u.pull.limit;
    case SPRO_MSG_PULL_REPLY:
        if (a->u.pull_reply.nrecords != b->u.pull_reply.nrecords ||
            !bytes_equal(a->u.pull_reply.cursor, b->u.pull_reply.cursor) ||
            a->u.pull_reply.more != b->u.pull_reply.more ||
            a->u.pull_reply.reset != b->u.pull_reply.reset)
            return false;
        for (size_t k = 0; k < a->u.pull_reply.nrecords; k++)
            if (!record_equal(&a->u.pull_reply.records[k], &b->u.pull_reply.records[k]))
                return false;
        return true;
    default:
        return false;
    }
}
