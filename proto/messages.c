/*
 * The wire messages of spro-sync: decoding and encoding of envelopes.
 *
 * An envelope is a msgpack map with string keys: "v" (the protocol
 * version), "type" (the message type name) and the fields of that type.
 * Each type is described once, in the tables below, and both directions
 * are driven by those tables, so the decoder and the encoder cannot
 * disagree on names, types or limits.
 *
 * Decoding reads the body with the strict reader (reader.c) and never
 * allocates.  It reports the first failure in this order:
 *   1. structure, in byte order: the top-level value is a map of at most
 *      SPRO_PROTO_MAX_FIELDS entries, every key a valid string of at most
 *      SPRO_PROTO_MAX_KEY bytes and not seen before (DUPKEY), every value
 *      well formed within the generic limits (spro_mp_skip), and nothing
 *      after the map (TRAILING);
 *   2. version: "v" present (MISSING), an integer (BADTYPE), equal to
 *      SPRO_PROTO_VERSION (BADVERSION);
 *   3. type: "type" present (MISSING), a string (BADTYPE) of at most
 *      SPRO_PROTO_MAX_TYPE bytes (TOOLONG), a known name (BADMSGTYPE);
 *   4. fields, in byte order: defined for this type (UNKNOWNFIELD), of the
 *      right msgpack type (BADTYPE), length or value within the field's
 *      bounds (TOOLONG above the maximum length, RANGE below the minimum
 *      length or outside an integer range), then a string's form where the
 *      field has one (RANGE: hex digits, fingerprint);
 *   5. completeness: the first absent required field in documented order
 *      (MISSING); a type's optional fields form one group, present all
 *      together or not at all (one of them alone: MISSING).
 *
 * The sync messages (push, push_reply, pull, pull_reply) are nested and
 * live in sync.c: they share steps 1-3 (spro_proto__envelope()), and
 * spro_proto_decode() refuses them with SPRO_EBADMSGTYPE, as
 * spro_proto_decode_sync() refuses the flat types.
 *
 * Encoding goes through msgpack-c's packer (only this file and sync.c
 * include msgpack.h), which always picks the smallest representation.
 * Keys are written "v", "type", then the fields in table order.
 */
#include "proto.h"

#include <stddef.h>
#include <string.h>

#include <msgpack.h>

/* Field limits that are not protocol-wide (see docs/PROTOCOL.md). */
#define STATUS_MAX 32
#define VERSION_MAX 64
#define SCHEMA_MAX 2147483647u       /* 2^31 - 1 */
#define TTL_MAX 2147483647u          /* seconds, 2^31 - 1 */
#define TS_MAX ((uint64_t)INT64_MAX) /* ms, 2^63 - 1 */
#define KEY_LEN 32                   /* X25519 public key */
#define FINGERPRINT_LEN 49           /* 10 groups of 4 hex digits, 9 ':' */
#define TICKET_ID_LEN 16             /* lowercase hex digits */
#define TICKET_SECRET_LEN 32
#define SESSION_LEN 16
#define APP_MAX 64
#define ID_MAX 64 /* device, user and organisation ids */
#define ROLE_MAX 16

enum ftype {
    F_STR, /* struct spro_bytes, valid UTF-8, length in [min, max] */
    F_BIN, /* struct spro_bytes, length in [min, max] */
    F_U32, /* uint32_t in [min, max] */
    F_U64, /* uint64_t in [min, max] */
};

/* The form an F_STR must have beyond its length (RANGE otherwise). */
enum shape {
    S_ANY,         /* any valid UTF-8 */
    S_HEX,         /* lowercase hex digits [0-9a-f] only */
    S_FINGERPRINT, /* groups of 4 lowercase hex digits separated by ':' */
};

struct field {
    const char *name;
    enum ftype type;
    uint64_t min, max; /* bytes for F_STR/F_BIN, value for F_U32/F_U64 */
    size_t off;        /* offset of the member in struct spro_msg */
    enum shape shape;  /* F_STR only */
};

#define SHAPED(name_, type_, min_, max_, member, shape_)                                           \
    {                                                                                              \
        .name = (name_), .type = (type_), .min = (min_), .max = (max_),                            \
        .off = offsetof(struct spro_msg, member), .shape = (shape_)                                \
    }
#define FIELD(name, type, min, max, member) SHAPED(name, type, min, max, member, S_ANY)

static const struct field error_fields[] = {
    FIELD("code", F_STR, 1, SPRO_PROTO_MAX_CODE, u.error.code),
    FIELD("message", F_STR, 0, SPRO_PROTO_MAX_STR, u.error.message),
};

static const struct field health_fields[] = {
    FIELD("status", F_STR, 1, STATUS_MAX, u.health.status),
    FIELD("schema", F_U32, 1, SCHEMA_MAX, u.health.schema),
    FIELD("version", F_STR, 1, VERSION_MAX, u.health.version),
};

static const struct field echo_fields[] = {
    FIELD("id", F_U64, 0, UINT64_MAX, u.echo.id),
    FIELD("data", F_BIN, 0, SPRO_PROTO_MAX_BIN, u.echo.data),
};

static const struct field server_key_fields[] = {
    FIELD("key", F_BIN, KEY_LEN, KEY_LEN, u.server_key.key),
    SHAPED("fingerprint", F_STR, FINGERPRINT_LEN, FINGERPRINT_LEN, u.server_key.fingerprint,
           S_FINGERPRINT),
};

static const struct field hello_fields[] = {
    FIELD("ts", F_U64, 1, TS_MAX, u.hello.ts),
    FIELD("app", F_STR, 1, APP_MAX, u.hello.app),
    FIELD("schema", F_U32, 1, SCHEMA_MAX, u.hello.schema),
    /* optional, together (has_ticket) */
    SHAPED("ticket_id", F_STR, TICKET_ID_LEN, TICKET_ID_LEN, u.hello.ticket_id, S_HEX),
    FIELD("ticket_secret", F_BIN, TICKET_SECRET_LEN, TICKET_SECRET_LEN, u.hello.ticket_secret),
};

static const struct field welcome_fields[] = {
    FIELD("session", F_BIN, SESSION_LEN, SESSION_LEN, u.welcome.session),
    FIELD("device", F_STR, 1, ID_MAX, u.welcome.view.device),
    FIELD("user", F_STR, 1, ID_MAX, u.welcome.view.user),
    FIELD("org", F_STR, 1, ID_MAX, u.welcome.view.org),
    FIELD("role", F_STR, 1, ROLE_MAX, u.welcome.view.role),
    FIELD("idle_ttl", F_U32, 1, TTL_MAX, u.welcome.idle_ttl),
    FIELD("ttl", F_U32, 1, TTL_MAX, u.welcome.ttl),
};

static const struct field wipe_fields[] = {
    FIELD("device", F_STR, 1, ID_MAX, u.wipe.device),
};

static const struct field pong_fields[] = {
    FIELD("device", F_STR, 1, ID_MAX, u.pong.device),
    FIELD("user", F_STR, 1, ID_MAX, u.pong.user),
    FIELD("org", F_STR, 1, ID_MAX, u.pong.org),
    FIELD("role", F_STR, 1, ROLE_MAX, u.pong.role),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_TYPE_FIELDS 7 /* the most fields of any type (welcome); a bit per field */

_Static_assert(NELEM(error_fields) <= MAX_TYPE_FIELDS && NELEM(health_fields) <= MAX_TYPE_FIELDS &&
                   NELEM(echo_fields) <= MAX_TYPE_FIELDS &&
                   NELEM(server_key_fields) <= MAX_TYPE_FIELDS &&
                   NELEM(hello_fields) <= MAX_TYPE_FIELDS &&
                   NELEM(welcome_fields) <= MAX_TYPE_FIELDS &&
                   NELEM(wipe_fields) <= MAX_TYPE_FIELDS && NELEM(pong_fields) <= MAX_TYPE_FIELDS,
               "raise MAX_TYPE_FIELDS");
_Static_assert(MAX_TYPE_FIELDS <= 32, "the decoder keeps a bit per field in an unsigned");
_Static_assert(SPRO_PROTO_MAX_FIELDS >= 2 + MAX_TYPE_FIELDS, "envelope too small");

/* A message type.  Its first nreq fields are required; the others (if any)
 * are optional and form one group: all present, which sets the bool at
 * has_off, or all absent. */
struct msgdesc {
    enum spro_msg_type type;
    const char *name;
    const struct field *fields;
    size_t nfields;
    size_t nreq;
    size_t has_off; /* offset of the bool in struct spro_msg; unused when nreq == nfields */
};

#define MSG(type, name, fields)                                                                    \
    {                                                                                              \
        type, name, fields, NELEM(fields), NELEM(fields), 0                                        \
    }

static const struct msgdesc msgdescs[] = {
    MSG(SPRO_MSG_ERROR, "error", error_fields),
    MSG(SPRO_MSG_HEALTH, "health", health_fields),
    MSG(SPRO_MSG_ECHO, "echo", echo_fields),
    MSG(SPRO_MSG_ECHO_REPLY, "echo_reply", echo_fields),
    MSG(SPRO_MSG_SERVER_KEY, "server_key", server_key_fields),
    {SPRO_MSG_HELLO, "hello", hello_fields, NELEM(hello_fields),
     NELEM(hello_fields) - 2 /* ticket_id, ticket_secret */,
     offsetof(struct spro_msg, u.hello.has_ticket)},
    MSG(SPRO_MSG_WELCOME, "welcome", welcome_fields),
    MSG(SPRO_MSG_WIPE, "wipe", wipe_fields),
    {SPRO_MSG_PING, "ping", NULL, 0, 0, 0},
    MSG(SPRO_MSG_PONG, "pong", pong_fields),
};

/* True if m has the optional fields of its type d. */
static bool has_optional(const struct msgdesc *d, const struct spro_msg *m)
{
    return d->nreq < d->nfields && *(const bool *)((const char *)m + d->has_off);
}

/* Number of fields of m that are on the wire: the required ones, then the
 * optional group if present. */
static size_t wire_fields(const struct msgdesc *d, const struct spro_msg *m)
{
    return has_optional(d, m) ? d->nfields : d->nreq;
}

static const struct msgdesc *desc_of_type(enum spro_msg_type t)
{
    for (size_t k = 0; k < NELEM(msgdescs); k++)
        if (msgdescs[k].type == t)
            return &msgdescs[k];
    return NULL;
}

static const struct msgdesc *desc_of_name(const char *name, size_t len)
{
    for (size_t k = 0; k < NELEM(msgdescs); k++)
        if (strlen(msgdescs[k].name) == len && memcmp(msgdescs[k].name, name, len) == 0)
            return &msgdescs[k];
    return NULL;
}

const char *spro_proto_type_name(enum spro_msg_type t)
{
    const struct msgdesc *d = desc_of_type(t);
    return d != NULL ? d->name : spro_proto__sync_name(t);
}

static bool key_is(const char *key, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(key, name, len) == 0;
}

/* ---- Decoding ---- */

/* One entry of the envelope: its key, and a reader positioned on its
 * (already checked) value. */
struct entry {
    const char *key;
    size_t klen;
    struct spro_mp_reader val;
};

static const struct entry *find_entry(const struct entry *e, uint32_t n, const char *name)
{
    for (uint32_t k = 0; k < n; k++)
        if (key_is(e[k].key, e[k].klen, name))
            return &e[k];
    return NULL;
}

/* Step 1: the map, its keys and the structure of its values. */
static int read_entries(const void *buf, size_t len, struct entry *e, uint32_t *n)
{
    struct spro_mp_reader r;
    spro_mp_reader_init(&r, buf, len);
    int err = spro_mp_read_map(&r, SPRO_PROTO_MAX_FIELDS, n);
    if (err != 0)
        return err;
    for (uint32_t k = 0; k < *n; k++) {
        err = spro_mp_read_str(&r, SPRO_PROTO_MAX_KEY, &e[k].key, &e[k].klen);
        if (err != 0)
            return err;
        for (uint32_t j = 0; j < k; j++)
            if (e[j].klen == e[k].klen && memcmp(e[j].key, e[k].key, e[k].klen) == 0)
                return SPRO_EDUPKEY;
        e[k].val = r;
        err = spro_mp_skip(&r, 1);
        if (err != 0)
            return err;
    }
    return spro_mp_finish(&r);
}

static bool is_lower_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* True if the string s[0..len) has the form shape requires. */
static bool shape_ok(enum shape shape, const uint8_t *s, size_t len)
{
    switch (shape) {
    case S_ANY:
        return true;
    case S_HEX:
        for (size_t k = 0; k < len; k++)
            if (!is_lower_hex(s[k]))
                return false;
        return true;
    case S_FINGERPRINT:
        if (len % 5 != 4)
            return false;
        for (size_t k = 0; k < len; k++)
            if (k % 5 == 4 ? s[k] != ':' : !is_lower_hex(s[k]))
                return false;
        return true;
    }
    return false;
}

/* Step 4 for one field: decodes the value at e into m. */
static int decode_field(const struct field *f, const struct entry *e, struct spro_msg *m)
{
    struct spro_mp_reader r = e->val;
    void *dst = (char *)m + f->off;
    struct spro_bytes *bytes = dst;
    const char *s;
    uint64_t v;
    int err = 0;

    switch (f->type) {
    case F_STR:
        err = spro_mp_read_str(&r, (size_t)f->max, &s, &bytes->len);
        if (err == 0)
            bytes->p = (const uint8_t *)s;
        break;
    case F_BIN:
        err = spro_mp_read_bin(&r, (size_t)f->max, &bytes->p, &bytes->len);
        break;
    case F_U32:
    case F_U64:
        err = spro_mp_read_uint(&r, f->min, f->max, &v);
        if (err == 0 && f->type == F_U32)
            *(uint32_t *)dst = (uint32_t)v;
        else if (err == 0)
            *(uint64_t *)dst = v;
        return err;
    }
    if (err == 0 && bytes->len < f->min)
        return SPRO_ERANGE;
    if (err == 0 && f->type == F_STR && !shape_ok(f->shape, bytes->p, bytes->len))
        return SPRO_ERANGE;
    return err;
}

/* Steps 1-3: reads the entries of the envelope into e[0..*n), checks the
 * version and reads the type name (not yet looked up).  *ev and *et are
 * the entries of "v" and "type". */
static int read_envelope(const void *buf, size_t len, struct entry *e, uint32_t *n,
                         const struct entry **ev, const struct entry **et, const char **name,
                         size_t *nlen)
{
    int err = read_entries(buf, len, e, n);
    if (err != 0)
        return err;

    /* Step 2: version. */
    *ev = find_entry(e, *n, "v");
    if (*ev == NULL)
        return SPRO_EMISSING;
    struct spro_mp_reader r = (*ev)->val;
    uint64_t version;
    err = spro_mp_read_uint(&r, 0, UINT64_MAX, &version);
    if (err == SPRO_ERANGE || (err == 0 && version != SPRO_PROTO_VERSION))
        return SPRO_EBADVERSION; /* negative, or another version */
    if (err != 0)
        return err;

    /* Step 3: type (its name; the caller looks it up). */
    *et = find_entry(e, *n, "type");
    if (*et == NULL)
        return SPRO_EMISSING;
    r = (*et)->val;
    return spro_mp_read_str(&r, SPRO_PROTO_MAX_TYPE, name, nlen);
}

int spro_proto__envelope(const void *buf, size_t len, const char **name, size_t *nlen)
{
    struct entry e[SPRO_PROTO_MAX_FIELDS];
    const struct entry *ev, *et;
    uint32_t n;
    return read_envelope(buf, len, e, &n, &ev, &et, name, nlen);
}

int spro_proto_decode(const void *buf, size_t len, struct spro_msg *m)
{
    struct entry e[SPRO_PROTO_MAX_FIELDS];
    const struct entry *ev, *et;
    const char *name;
    size_t nlen;
    uint32_t n;
    int err = read_envelope(buf, len, e, &n, &ev, &et, &name, &nlen);
    if (err != 0)
        return err;
    const struct msgdesc *d = desc_of_name(name, nlen);
    if (d == NULL)
        return SPRO_EBADMSGTYPE; /* unknown, or a sync type (spro_proto_decode_sync()) */

    /* Step 4: fields in byte order. */
    memset(m, 0, sizeof *m);
    m->type = d->type;
    unsigned seen = 0; /* bit k: d->fields[k] decoded */
    for (uint32_t k = 0; k < n; k++) {
        if (&e[k] == ev || &e[k] == et)
            continue;
        size_t f = 0;
        while (f < d->nfields && !key_is(e[k].key, e[k].klen, d->fields[f].name))
            f++;
        if (f == d->nfields)
            return SPRO_EUNKNOWNFIELD;
        err = decode_field(&d->fields[f], &e[k], m);
        if (err != 0)
            return err;
        seen |= 1u << f;
    }

    /* Step 5: completeness.  The optional group counts as required as soon
     * as one of its fields is present. */
    bool optional = (seen >> d->nreq) != 0;
    for (size_t f = 0; f < (optional ? d->nfields : d->nreq); f++)
        if (!(seen & 1u << f))
            return SPRO_EMISSING;
    if (optional)
        *(bool *)((char *)m + d->has_off) = true;
    return 0;
}

/* ---- Encoding ---- */

static int append_cb(void *data, const char *p, size_t n)
{
    spro_buf_append(data, p, n);
    return 0; /* appending cannot fail: it aborts on out-of-memory */
}

static void pack_str(msgpack_packer *pk, const void *p, size_t len)
{
    (void)msgpack_pack_str_with_body(pk, p, len);
}

/* Checks one field of m against its bounds, as the decoder would. */
static int check_field(const struct field *f, const struct spro_msg *m)
{
    const void *src = (const char *)m + f->off;
    const struct spro_bytes *bytes = src;
    switch (f->type) {
    case F_STR:
    case F_BIN:
        if (bytes->p == NULL && bytes->len != 0)
            SPRO_BUG("spro_proto_encode: NULL bytes with a nonzero length");
        if (bytes->len > f->max)
            return SPRO_ETOOLONG;
        if (bytes->len < f->min)
            return SPRO_ERANGE;
        if (f->type == F_STR && bytes->len != 0 &&
            spro_proto__utf8_prefix(bytes->p, bytes->len) != bytes->len)
            return SPRO_EBADUTF8;
        if (f->type == F_STR && !shape_ok(f->shape, bytes->p, bytes->len))
            return SPRO_ERANGE;
        return 0;
    case F_U32: {
        uint32_t v = *(const uint32_t *)src;
        return v < f->min || v > f->max ? SPRO_ERANGE : 0;
    }
    case F_U64: {
        uint64_t v = *(const uint64_t *)src;
        return v < f->min || v > f->max ? SPRO_ERANGE : 0;
    }
    }
    return 0;
}

static void pack_field(msgpack_packer *pk, const struct field *f, const struct spro_msg *m)
{
    const void *src = (const char *)m + f->off;
    const struct spro_bytes *bytes = src;
    pack_str(pk, f->name, strlen(f->name));
    switch (f->type) {
    case F_STR:
        pack_str(pk, bytes->p, bytes->len);
        break;
    case F_BIN:
        (void)msgpack_pack_bin_with_body(pk, bytes->p, bytes->len);
        break;
    case F_U32:
        (void)msgpack_pack_uint32(pk, *(const uint32_t *)src);
        break;
    case F_U64:
        (void)msgpack_pack_uint64(pk, *(const uint64_t *)src);
        break;
    }
}

int spro_proto_encode(const struct spro_msg *m, struct spro_buf *out)
{
    if (spro_proto__sync_name(m->type) != NULL)
        return spro_proto__encode_sync(m, out);
    const struct msgdesc *d = desc_of_type(m->type);
    if (d == NULL)
        SPRO_BUG("spro_proto_encode: invalid message type");
    size_t n = wire_fields(d, m); /* optional fields absent: neither checked nor sent */
    for (size_t f = 0; f < n; f++) {
        int err = check_field(&d->fields[f], m);
        if (err != 0)
            return err; /* before anything is appended */
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, append_cb);
    (void)msgpack_pack_map(&pk, 2 + n);
    pack_str(&pk, "v", 1);
    (void)msgpack_pack_uint64(&pk, SPRO_PROTO_VERSION);
    pack_str(&pk, "type", 4);
    pack_str(&pk, d->name, strlen(d->name));
    for (size_t f = 0; f < n; f++)
        pack_field(&pk, &d->fields[f], m);
    return 0;
}

void spro_proto_encode_error(int err, const char *detail, struct spro_buf *out)
{
    const char *code = spro_errcode(err);
    const char *text;
    size_t len;

    if (strcmp(code, "internal") == 0)
        text = spro_strerror(SPRO_EINTERNAL); /* never more detail */
    else if (detail != NULL)
        text = detail;
    else
        text = spro_strerror(err);
    len = strlen(text);
    if (spro_proto__utf8_prefix((const uint8_t *)text, len) != len) {
        text = spro_strerror(err); /* a table message: ASCII */
        len = strlen(text);
    }
    if (len > SPRO_PROTO_MAX_STR) /* valid, so only the last character can be cut */
        len = spro_proto__utf8_prefix((const uint8_t *)text, SPRO_PROTO_MAX_STR);

    struct spro_msg m = {.type = SPRO_MSG_ERROR};
    m.u.error.code.p = (const uint8_t *)code;
    m.u.error.code.len = strlen(code);
    m.u.error.message.p = (const uint8_t *)text;
    m.u.error.message.len = len;
    if (spro_proto_encode(&m, out) != 0)
        SPRO_BUG("spro_proto_encode_error: error table entry out of bounds");
}

static bool bytes_equal(struct spro_bytes a, struct spro_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool field_equal(const struct field *f, const struct spro_msg *a, const struct spro_msg *b)
{
    const void *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;
    switch (f->type) {
    case F_STR:
    case F_BIN:
        return bytes_equal(*(const struct spro_bytes *)pa, *(const struct spro_bytes *)pb);
    case F_U32:
        return *(const uint32_t *)pa == *(const uint32_t *)pb;
    case F_U64:
        return *(const uint64_t *)pa == *(const uint64_t *)pb;
    }
    return false;
}

/* Compares the fields on the wire only: absent optional fields are not
 * compared, as they are neither encoded nor decoded. */
bool spro_proto_msg_equal(const struct spro_msg *a, const struct spro_msg *b)
{
    if (a->type != b->type)
        return false;
    if (spro_proto__sync_name(a->type) != NULL)
        return spro_proto__sync_equal(a, b);
    const struct msgdesc *d = desc_of_type(a->type);
    if (d == NULL || has_optional(d, a) != has_optional(d, b))
        return false;
    size_t n = wire_fields(d, a);
    for (size_t f = 0; f < n; f++)
        if (!field_equal(&d->fields[f], a, b))
            return false;
    return true;
}
