/*
 * proto: the msgpack codec of spro-sync's wire messages (docs/PROTOCOL.md).
 *
 * Pure: no I/O, no globals, includes nothing of ours but errors.h.  The
 * decoder is strict and never allocates: it reads a complete body held in
 * memory, checks exact types, bounded lengths and counts, nesting depth,
 * duplicate and unknown keys, integer ranges and trailing bytes, and
 * returns a precise negative SPRO_E* code for every rejection.  Decoded
 * strings and binaries point into the caller's buffer (zero copy): they are
 * valid as long as that buffer is.  Encoding goes through msgpack-c and
 * always produces the canonical (smallest) form, keys in documented order.
 */
#ifndef SPRO_PROTO_PROTO_H
#define SPRO_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* Protocol version carried in every envelope as "v". */
#define SPRO_PROTO_VERSION 0

/* Limits of the decoder (see docs/PROTOCOL.md, "Encoding rules and limits"). */
#define SPRO_PROTO_MAX_DEPTH 16       /* nesting of arrays and maps */
#define SPRO_PROTO_MAX_ITEMS 4096     /* entries of one array or map */
#define SPRO_PROTO_MAX_STR 4096       /* bytes of one string */
#define SPRO_PROTO_MAX_BIN (1u << 20) /* bytes of one binary */
#define SPRO_PROTO_MAX_KEY 64         /* bytes of one map key */
#define SPRO_PROTO_MAX_TYPE 32        /* bytes of a message type name */
#define SPRO_PROTO_MAX_CODE 64        /* bytes of an error code */
#define SPRO_PROTO_MAX_FIELDS 16      /* entries of an envelope map */

/* A growable byte buffer.  Invariant: data is NULL iff cap == 0; len <= cap.
 * Growth aborts on out-of-memory.  Zero-initialise, then spro_buf_free(). */
struct spro_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};
void spro_buf_append(struct spro_buf *b, const void *p, size_t n);
/* Grows b, if needed, so that n more bytes fit without another growth
 * (which would leave the old bytes in freed memory: size a buffer for
 * secrets once, then append).  len and the bytes are unchanged; aborts on
 * out-of-memory. */
void spro_buf_reserve(struct spro_buf *b, size_t n);
void spro_buf_free(struct spro_buf *b);

/* Big-endian 64-bit integers in byte strings (counters, stored pairs). */
static inline uint64_t spro_load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void spro_store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* ---- Strict pull reader (for message decoders and tests). ---- */

/* A cursor over one buffer.  Each read consumes one value or fails, leaving
 * the cursor where it was.  Fields are private. */
struct spro_mp_reader {
    const uint8_t *p;
    const uint8_t *end;
};
void spro_mp_reader_init(struct spro_mp_reader *r, const void *buf, size_t len);

/* Read headers and scalars.  `max` bounds the count or length (TOOLONG past
 * it); integers outside [min, max] give RANGE; the wrong type gives BADTYPE;
 * a value running past the end gives TRUNCATED; bytes that are no msgpack
 * type (0xc1) give MALFORMED; strings are checked to be valid UTF-8. */
SPRO_MUST_CHECK int spro_mp_read_map(struct spro_mp_reader *r, uint32_t max, uint32_t *n);
SPRO_MUST_CHECK int spro_mp_read_array(struct spro_mp_reader *r, uint32_t max, uint32_t *n);
SPRO_MUST_CHECK int spro_mp_read_str(struct spro_mp_reader *r, size_t max, const char **s,
                                     size_t *len);
SPRO_MUST_CHECK int spro_mp_read_bin(struct spro_mp_reader *r, size_t max, const uint8_t **b,
                                     size_t *len);
SPRO_MUST_CHECK int spro_mp_read_uint(struct spro_mp_reader *r, uint64_t min, uint64_t max,
                                      uint64_t *v);
SPRO_MUST_CHECK int spro_mp_read_int(struct spro_mp_reader *r, int64_t min, int64_t max,
                                     int64_t *v);
SPRO_MUST_CHECK int spro_mp_read_bool(struct spro_mp_reader *r, bool *v);
SPRO_MUST_CHECK int spro_mp_read_nil(struct spro_mp_reader *r);

/* Consume one value of any type, checking it whole against the limits
 * above (depth counted from `depth`, duplicate string keys refused).  Used
 * for values a message carries opaquely.  `depth` is the number of arrays
 * and maps already open around the value (0 for a whole body): an array or
 * map is refused with TOODEEP when SPRO_PROTO_MAX_DEPTH others enclose it.
 * Ext types are refused with BADTYPE.  Never allocates; uses at most
 * 64 KiB of stack (the duplicate-key check). */
SPRO_MUST_CHECK int spro_mp_skip(struct spro_mp_reader *r, unsigned depth);

/* 0 if the reader is at the end of its buffer, SPRO_ETRAILING otherwise. */
SPRO_MUST_CHECK int spro_mp_finish(const struct spro_mp_reader *r);

/* Checks that buf holds exactly one well-formed value within the limits. */
SPRO_MUST_CHECK int spro_proto_validate(const void *buf, size_t len);

/* ---- Messages ---- */

enum spro_msg_type {
    SPRO_MSG_ERROR = 1,  /* "error": any failed request */
    SPRO_MSG_HEALTH,     /* "health": answer of GET /healthz */
    SPRO_MSG_ECHO,       /* "echo": benchmark request (server --bench) */
    SPRO_MSG_ECHO_REPLY, /* "echo_reply": its answer */
    SPRO_MSG_SERVER_KEY, /* "server_key": answer of GET /v1/server-key */
    SPRO_MSG_HELLO,      /* "hello": payload of Noise handshake message 1 */
    SPRO_MSG_WELCOME,    /* "welcome": payload of handshake message 2, session open */
    SPRO_MSG_WIPE,       /* "wipe": payload of handshake message 2, erase the device */
    SPRO_MSG_PING,       /* "ping": sealed request of POST /v1/ping */
    SPRO_MSG_PONG,       /* "pong": its sealed answer, the server's view of the device */
    /* Sync (nested: decoded only by spro_proto_decode_sync()). */
    SPRO_MSG_PUSH,       /* "push": a device's ops, POST /v1/sync/push */
    SPRO_MSG_PUSH_REPLY, /* "push_reply": one result per op */
    SPRO_MSG_PULL,       /* "pull": changes after a cursor, POST /v1/sync/pull */
    SPRO_MSG_PULL_REPLY, /* "pull_reply": record states, next cursor */
};

/* A string or binary that points into the decoded buffer (or, for
 * encoding, into caller memory).  Strings are not NUL-terminated. */
struct spro_bytes {
    const uint8_t *p;
    size_t len;
};

struct spro_msg_error {
    struct spro_bytes code;    /* stable code, 1..SPRO_PROTO_MAX_CODE bytes */
    struct spro_bytes message; /* human text, 0..SPRO_PROTO_MAX_STR bytes */
};

struct spro_msg_health {
    struct spro_bytes status;  /* "ok" or "degraded", 1..32 bytes */
    uint32_t schema;           /* data.db schema version, 1..2^31-1 */
    struct spro_bytes version; /* server version string, 1..64 bytes */
};

struct spro_msg_echo {      /* both SPRO_MSG_ECHO and SPRO_MSG_ECHO_REPLY */
    uint64_t id;            /* caller's request id, any uint64 */
    struct spro_bytes data; /* 0..SPRO_PROTO_MAX_BIN bytes */
};

struct spro_msg_server_key {
    struct spro_bytes key;         /* bin, exactly 32 bytes: X25519 public key */
    struct spro_bytes fingerprint; /* str, exactly 49 bytes (spro_crypto_fingerprint) */
};

struct spro_msg_hello {
    uint64_t ts;                     /* device clock, ms since the Unix epoch, 1..2^63-1 */
    struct spro_bytes app;           /* str 1..64: app name and version */
    uint32_t schema;                 /* device's data schema version, 1..2^31-1 */
    bool has_ticket;                 /* ticket_id and ticket_secret: both present or both absent */
    struct spro_bytes ticket_id;     /* str, exactly 16 lowercase hex digits */
    struct spro_bytes ticket_secret; /* bin, exactly 32 bytes */
};

/* The server's view of a device: "welcome" and "pong" carry it. */
struct spro_msg_device_view {
    struct spro_bytes device; /* str 1..64: device id */
    struct spro_bytes user;   /* str 1..64: counsellor (user id) */
    struct spro_bytes org;    /* str 1..64: organisation id */
    struct spro_bytes role;   /* str 1..16: "counsellor", "supervisor" or "admin" */
};

struct spro_msg_welcome {
    struct spro_bytes session; /* bin, exactly 16 bytes: session id */
    struct spro_msg_device_view view;
    uint32_t idle_ttl; /* seconds a session may stay unused, 1..2^31-1 */
    uint32_t ttl;      /* seconds a session lives at most, 1..2^31-1 */
};

struct spro_msg_wipe {
    struct spro_bytes device; /* str 1..64: the device to erase */
};

/* ---- Sync messages (docs/PROTOCOL.md, "Sync") ----
 * Nested: arrays and maps of maps.  spro_proto_decode_sync() decodes them
 * into caller memory (an arena); pointers go into the input buffer and the
 * arena.  Bounds: SPRO_SYNC_* below. */

#define SPRO_SYNC_MAX_OPS 1000     /* ops of one push */
#define SPRO_SYNC_MAX_FIELDS 64    /* fields of one op or record */
#define SPRO_SYNC_MAX_SIBLINGS 32  /* versions of a base, siblings of a field */
#define SPRO_SYNC_MAX_RECORDS 1000 /* records of one pull_reply; also pull.limit */
#define SPRO_SYNC_MAX_VALUE 4096   /* bytes of a string value */
#define SPRO_SYNC_MAX_CURSOR 32    /* bytes of a cursor */
/* Bytes of encoded pull answer the server sends, at most: it stops before
 * the record that would cross it.  A single record larger than this (many
 * long siblings) cannot be pulled: the pull fails with too_long. */
#define SPRO_SYNC_PULL_ANSWER_MAX (1024 * 1024)

enum spro_value_kind { SPRO_VALUE_NIL, SPRO_VALUE_BOOL, SPRO_VALUE_INT, SPRO_VALUE_STR };

/* A field value: nil, bool, int64 or str (0..SPRO_SYNC_MAX_VALUE bytes).
 * raw is the value's own msgpack bytes (as received, or as encoded). */
struct spro_value {
    enum spro_value_kind kind;
    bool b;
    int64_t i;
    struct spro_bytes s;
    struct spro_bytes raw;
};

/* [hlc, origin]: hlc 1..2^63-1, origin str 1..64. */
struct spro_wire_version {
    uint64_t hlc;
    struct spro_bytes origin;
};

/* {val, ver, by}: by str 1..64. */
struct spro_wire_sibling {
    struct spro_value val;
    struct spro_wire_version ver;
    struct spro_bytes by;
};

/* One field of an op: name str 1..64 -> {val, base: 0..32 versions}. */
struct spro_wire_edit {
    struct spro_bytes name;
    struct spro_value val;
    const struct spro_wire_version *base;
    size_t nbase;
};

struct spro_wire_op {
    uint64_t seq;                     /* 1..2^63-1 */
    struct spro_bytes rtype;          /* str 1..32 */
    struct spro_bytes rid;            /* str, 36 bytes (lowercase UUID form) */
    struct spro_bytes ben;            /* str, 36 bytes (lowercase UUID form) */
    uint32_t schema;                  /* 1..2^31-1 */
    uint64_t hlc;                     /* 1..2^63-1 */
    const struct spro_wire_edit *set; /* 1..SPRO_SYNC_MAX_FIELDS, distinct names */
    size_t nset;
};

/* A field's state: name -> 1..32 siblings sorted by version. */
struct spro_wire_field {
    struct spro_bytes name;
    const struct spro_wire_sibling *siblings;
    size_t nsiblings;
};

enum spro_result_status { SPRO_RESULT_ACK, SPRO_RESULT_CONFLICT, SPRO_RESULT_REJECT };

struct spro_wire_result {
    uint64_t seq;
    enum spro_result_status status;
    struct spro_wire_version ver;         /* ack, conflict */
    struct spro_bytes code;               /* reject: str 1..64 */
    const struct spro_wire_field *fields; /* conflict: 1..64 fields */
    size_t nfields;
};

struct spro_wire_record {
    struct spro_bytes rtype, rid, ben;
    const struct spro_wire_field *fields; /* 0..64 (0 when removed) */
    size_t nfields;
    bool removed;
};

struct spro_msg_push {
    const struct spro_wire_op *ops; /* 1..SPRO_SYNC_MAX_OPS */
    size_t nops;
};

struct spro_msg_push_reply {
    const struct spro_wire_result *results; /* 0..SPRO_SYNC_MAX_OPS */
    size_t nresults;
};

struct spro_msg_pull {
    struct spro_bytes cursor; /* bin 0..SPRO_SYNC_MAX_CURSOR */
    uint32_t limit;           /* 1..SPRO_SYNC_MAX_RECORDS */
};

struct spro_msg_pull_reply {
    const struct spro_wire_record *records; /* 0..SPRO_SYNC_MAX_RECORDS */
    size_t nrecords;
    struct spro_bytes cursor; /* bin 0..SPRO_SYNC_MAX_CURSOR */
    bool more;
    bool reset; /* optional key, written only when true: the device's cursor is
                   beyond the sync horizon; then no record and more is false */
};

/* Bump allocator over caller memory for the arrays of decoded sync
 * messages: base[0..len) is taken, base[len..cap) free; base may be NULL
 * when cap is 0.  SPRO_PROTO_ARENA_BYTES(len) free bytes always suffice to
 * decode an input of len bytes (len at most SIZE_MAX / 96): every array
 * element is at least one byte of input, and no element type takes more
 * than 96 bytes with its alignment (proof in proto/sync.c). */
struct spro_arena {
    uint8_t *base;
    size_t len, cap;
};
#define SPRO_PROTO_ARENA_BYTES(len) (96 * (size_t)(len))

/* n bytes aligned to `align` (a power of two, at most 16) from the arena,
 * or NULL when it is full (nothing taken then). */
void *spro_arena_alloc(struct spro_arena *a, size_t n, size_t align);

struct spro_msg {
    enum spro_msg_type type;
    union {
        struct spro_msg_error error;
        struct spro_msg_health health;
        struct spro_msg_echo echo;
        struct spro_msg_server_key server_key;
        struct spro_msg_hello hello;
        struct spro_msg_welcome welcome;
        struct spro_msg_wipe wipe;
        struct spro_msg_device_view pong; /* SPRO_MSG_PING has no fields */
        struct spro_msg_push push;
        struct spro_msg_push_reply push_reply;
        struct spro_msg_pull pull;
        struct spro_msg_pull_reply pull_reply;
    } u;
};

/* Decodes one envelope.  On success fills *m (pointing into buf) and
 * returns 0; on failure returns a negative SPRO_E* code and *m is
 * unspecified.  The sync types (push, push_reply, pull, pull_reply) are
 * SPRO_EBADMSGTYPE here: decode them with spro_proto_decode_sync(). */
SPRO_MUST_CHECK int spro_proto_decode(const void *buf, size_t len, struct spro_msg *m);

/* Decodes a push, push_reply, pull or pull_reply (strictly, as
 * spro_proto_decode() does the flat messages) into *m, arrays from arena.
 * Other types: SPRO_EBADMSGTYPE.  Returns 0 or a negative SPRO_E* code.
 * On success *m points into buf and into the arena, whose len has grown by
 * what the arrays took; both must outlive *m.  A value's raw is its exact
 * bytes in buf.  On failure *m is unspecified and the arena is as it was
 * (the bytes the call took are zeroed first).  SPRO_ENOMEM only if the
 * arena has fewer than SPRO_PROTO_ARENA_BYTES(len) free bytes. */
SPRO_MUST_CHECK int spro_proto_decode_sync(const void *buf, size_t len, struct spro_arena *arena,
                                           struct spro_msg *m);

/* Appends the canonical encoding of *m to out.  Returns 0, or SPRO_ETOOLONG
 * if a field exceeds its limit (nothing appended then).  Likewise, so that
 * what is encoded always decodes: SPRO_ERANGE if a string is shorter than
 * its minimum or not of its required form (hex digits, fingerprint), or an
 * integer is outside its range, SPRO_EBADUTF8 if a string is not valid
 * UTF-8.  Optional fields left out (hello with has_ticket false) are neither
 * checked nor sent.  An invalid type is a bug (SPRO_BUG).
 * Sync types follow the same rules (counts: SPRO_ETOOLONG above the
 * maximum, SPRO_ERANGE below the minimum; SPRO_EDUPKEY for two fields of
 * one set or fields map with the same name; SPRO_ERANGE for a removed
 * record with fields).  A result's ver, code and fields are checked and
 * sent only where its status takes them.  A value whose raw.p is not NULL
 * is sent as raw, byte for byte, once raw has been checked to be exactly
 * one value the decoder accepts (else the decoder's code: SPRO_EBADTYPE,
 * SPRO_ERANGE, SPRO_ETRUNCATED, SPRO_ETRAILING, ...); kind, b, i and s are
 * ignored then.  An invalid value kind or result status is a bug. */
SPRO_MUST_CHECK int spro_proto_encode(const struct spro_msg *m, struct spro_buf *out);

/* Appends the error message for err: code spro_errcode(err), message
 * spro_strerror(err) (or `detail` when not NULL).  Cannot fail.  When the
 * wire code is "internal" (local errors and -errno) the message is always
 * "internal error" and detail is ignored: nothing more reaches a client.
 * A detail that is not valid UTF-8 is replaced by spro_strerror(err); one
 * longer than SPRO_PROTO_MAX_STR is cut at a character boundary. */
void spro_proto_encode_error(int err, const char *detail, struct spro_buf *out);

/* 1 if a and b are the same message: same type and equal fields (bytes
 * compared by content, wherever they point); optional fields left out by
 * both (has_ticket false) are not compared.  Sync messages are compared
 * deeply: values by what they stand for (raw when set, else kind and its
 * member; an int 5 sent in 9 bytes equals one built from i = 5), a
 * result's fields only where its status takes them. */
bool spro_proto_msg_equal(const struct spro_msg *a, const struct spro_msg *b);

/* Name of a message type ("echo", ...), or NULL if unknown. */
const char *spro_proto_type_name(enum spro_msg_type t);

/* ---- Internal to proto/ ---- */

/* Length of the longest prefix of s[0..len) made of whole, valid UTF-8
 * characters (no overlong forms, surrogates or code points above
 * U+10FFFF); len exactly when all of s is valid. */
size_t spro_proto__utf8_prefix(const uint8_t *s, size_t len);

/* Steps 1-3 of decoding (messages.c): the structure of the whole body, its
 * version, and its type name, which it points *name at (not looked up). */
SPRO_MUST_CHECK int spro_proto__envelope(const void *buf, size_t len, const char **name,
                                         size_t *nlen);

/* sync.c: the name of a sync type (NULL for any other type), and what
 * spro_proto_encode() and spro_proto_msg_equal() do for sync types. */
const char *spro_proto__sync_name(enum spro_msg_type t);
SPRO_MUST_CHECK int spro_proto__encode_sync(const struct spro_msg *m, struct spro_buf *out);
bool spro_proto__sync_equal(const struct spro_msg *a, const struct spro_msg *b);

#endif
