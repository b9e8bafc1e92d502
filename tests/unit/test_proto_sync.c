/*
 * Unit tests of the sync messages of proto/ (push, push_reply, pull,
 * pull_reply): goldens, round trips, prefixes, the rules of the decoder one
 * by one, the encoder's refusals, values, deep comparison and the arena
 * bound.
 *
 * As in test_proto.c, expected encodings are written out in hex, worked out
 * by hand from the msgpack specification (comments give the reasoning), and
 * compared byte for byte; inputs use the same notation ("XX*N" for N copies
 * of byte XX, "(...)*N" for N copies of a group) and are copied into
 * allocations of exactly their length, and arenas are allocated with
 * exactly SPRO_PROTO_ARENA_BYTES(len) bytes, so that AddressSanitizer
 * catches any access past either.  Run with no argument for every test, or
 * name tests to run.
 */
#include "check.h"
#include "hexspec.h"

#include "proto/proto.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- Helpers ---- */

struct input {
    uint8_t *p;
    size_t len;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return p;
}

/* A copy of p[0..len) in an allocation of exactly len bytes (NULL for 0). */
static uint8_t *copy_exact(const void *p, size_t len)
{
    if (len == 0)
        return NULL;
    uint8_t *q = xmalloc(len);
    memcpy(q, p, len);
    return q;
}

static void hexcat(struct spro_buf *b, const char *hex)
{
    spro_test_hex(hex, strlen(hex), b);
}

static struct input unhex(const char *s)
{
    struct spro_buf b = {0};
    hexcat(&b, s);
    struct input in = {copy_exact(b.data, b.len), b.len};
    spro_buf_free(&b);
    return in;
}

static void input_free(struct input *in)
{
    free(in->p);
    in->p = NULL;
    in->len = 0;
}

/* An arena of exactly SPRO_PROTO_ARENA_BYTES(len) bytes. */
static struct spro_arena arena_for(size_t len)
{
    size_t cap = SPRO_PROTO_ARENA_BYTES(len);
    struct spro_arena a = {cap == 0 ? NULL : xmalloc(cap), 0, cap};
    return a;
}

#define BYTES(s)                                                                                   \
    {                                                                                              \
        (const uint8_t *)(s), sizeof(s) - 1                                                        \
    }

static bool bytes_is(struct spro_bytes b, const char *s)
{
    return b.len == strlen(s) && (b.len == 0 || memcmp(b.p, s, b.len) == 0);
}

/* decode_sync of the hex input with an exact arena; the message is not
 * kept.  *used (if not NULL) gets the arena bytes taken. */
static int decode_sync_hex(const char *hex, size_t *used)
{
    struct input in = unhex(hex);
    struct spro_arena a = arena_for(in.len);
    struct spro_msg m;
    int err = spro_proto_decode_sync(in.p, in.len, &a, &m);
    if (used != NULL)
        *used = a.len;
    free(a.base);
    input_free(&in);
    return err;
}

/* Prints which table case failed, with both codes by name. */
#define CASE_EQ(name, got, want)                                                                   \
    do {                                                                                           \
        int case__got = (got), case__want = (want);                                                \
        if (case__got != case__want)                                                               \
            fprintf(stderr, "case \"%s\": got %d (%s), want %d (%s)\n", (name), case__got,         \
                    case__got ? spro_errcode(case__got) : "ok", case__want,                        \
                    case__want ? spro_errcode(case__want) : "ok");                                 \
        CHECK_EQ(case__got, case__want);                                                           \
    } while (0)

/* ---- Pieces of messages, in hex ---- */

#define V0 " a1 76 00 "                                          /* "v": 0 */
#define K_TYPE " a4 74 79 70 65 "                                /* "type" */
#define T_PUSH K_TYPE " a4 70 75 73 68 "                         /* "type": "push" */
#define T_PUSH_REPLY K_TYPE " aa 70 75 73 68 5f 72 65 70 6c 79 " /* "push_reply" */
#define T_PULL K_TYPE " a4 70 75 6c 6c "                         /* "type": "pull" */
#define T_PULL_REPLY K_TYPE " aa 70 75 6c 6c 5f 72 65 70 6c 79 " /* "pull_reply" */
#define K_OPS " a3 6f 70 73 "                                    /* "ops" */
#define K_SEQ " a3 73 65 71 "                                    /* "seq" */
#define K_RTYPE " a5 72 74 79 70 65 "                            /* "rtype" */
#define K_RID " a3 72 69 64 "                                    /* "rid" */
#define K_BEN " a3 62 65 6e "                                    /* "ben" */
#define K_SCHEMA " a6 73 63 68 65 6d 61 "                        /* "schema" */
#define K_HLC " a3 68 6c 63 "                                    /* "hlc" */
#define K_SET " a3 73 65 74 "                                    /* "set" */
#define K_VAL " a3 76 61 6c "                                    /* "val" */
#define K_BASE " a4 62 61 73 65 "                                /* "base" */
#define K_VER " a3 76 65 72 "                                    /* "ver" */
#define K_BY " a2 62 79 "                                        /* "by" */
#define K_RESULTS " a7 72 65 73 75 6c 74 73 "                    /* "results" */
#define K_STATUS " a6 73 74 61 74 75 73 "                        /* "status" */
#define K_CODE " a4 63 6f 64 65 "                                /* "code" */
#define K_FIELDS " a6 66 69 65 6c 64 73 "                        /* "fields" */
#define K_CURSOR " a6 63 75 72 73 6f 72 "                        /* "cursor" */
#define K_LIMIT " a5 6c 69 6d 69 74 "                            /* "limit" */
#define K_RECORDS " a7 72 65 63 6f 72 64 73 "                    /* "records" */
#define K_MORE " a4 6d 6f 72 65 "                                /* "more" */
#define K_RESET " a5 72 65 73 65 74 "                            /* "reset" */
#define K_REMOVED " a7 72 65 6d 6f 76 65 64 "                    /* "removed" */
#define K_X " a1 78 "                                            /* "x" */
#define S_ACK " a3 61 63 6b "                                    /* "ack" */
#define S_CONFLICT " a8 63 6f 6e 66 6c 69 63 74 "                /* "conflict" */
#define S_REJECT " a6 72 65 6a 65 63 74 "                        /* "reject" */

/* "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa": str 8 of 36 */
#define UUID_A " d9 24 61*8 2d 61*4 2d 61*4 2d 61*4 2d 61*12 "

/* Minimal valid pieces. */
#define VER1 " 92 01 a1 6f "                   /* [1, "o"] */
#define EDIT_NIL " 82" K_VAL "c0" K_BASE "90 " /* {val: nil, base: []} */
#define SET_F K_SET " 81 a1 66" EDIT_NIL       /* set: {"f": edit} */
#define OP_HEAD K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC "01"
#define OP_MIN " 87" OP_HEAD SET_F /* 128 bytes */
#define PUSH_HEAD "83" V0 T_PUSH K_OPS
#define PUSH_MIN PUSH_HEAD "91" OP_MIN
/* A push of one op whose one edit has the value given (hex). */
#define PUSH_VAL(val) PUSH_HEAD "91 87" OP_HEAD K_SET "81 a1 66 82" K_VAL val K_BASE "90"
/* A push of one op whose one edit has the base given (hex). */
#define PUSH_BASE(base) PUSH_HEAD "91 87" OP_HEAD K_SET "81 a1 66 82" K_VAL "c0" K_BASE base
/* A push of one op with the set given (hex, the map). */
#define PUSH_SET(set) PUSH_HEAD "91 87" OP_HEAD K_SET set

#define SIB_MIN " 83" K_VAL "c0" K_VER VER1 K_BY "a1 62 " /* 19 bytes */
#define FIELDS_F K_FIELDS " 81 a1 66 91" SIB_MIN
#define PUSH_REPLY_HEAD "83" V0 T_PUSH_REPLY K_RESULTS
#define RESULT_ACK " 83" K_SEQ "01" K_STATUS S_ACK K_VER VER1
#define RESULT_CONFLICT " 84" K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1 FIELDS_F
#define RESULT_REJECT " 83" K_SEQ "01" K_STATUS S_REJECT K_CODE "a1 78"
/* A push_reply of one result of n entries, given in hex. */
#define PUSH_REPLY_1(n, entries) PUSH_REPLY_HEAD "91 " n entries
/* A conflict result whose fields map is given (hex). */
#define CONFLICT_FIELDS(map)                                                                       \
    PUSH_REPLY_1("84", K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1 K_FIELDS map)
/* A conflict result whose one field has the siblings given (hex, the array). */
#define CONFLICT_SIBS(arr) CONFLICT_FIELDS("81 a1 66 " arr)

#define PULL_MIN "84" V0 T_PULL K_CURSOR "c4 00" K_LIMIT "01"
#define REC_HEAD K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A
#define REC_MIN " 85" REC_HEAD K_FIELDS "80" K_REMOVED "c2"
#define PULL_REPLY_HEAD "85" V0 T_PULL_REPLY K_RECORDS
#define PULL_REPLY_TAIL K_CURSOR "c4 00" K_MORE "c2"
#define PULL_REPLY_MIN PULL_REPLY_HEAD "91" REC_MIN PULL_REPLY_TAIL
/* A pull_reply of one record of n entries, given in hex. */
#define PULL_REPLY_1(n, entries) PULL_REPLY_HEAD "91 " n entries PULL_REPLY_TAIL

/* ---- Goldens ---- */

#define U1 "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
#define U2 "0b7e8c2a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"
/* U1 and U2, 36 bytes each: past fixstr's 31, so str 8 (d9 24) */
#define U1_STR8                                                                                    \
    " d9 24 33 66 32 35 30 34 65 30 2d 34 66 38 39 2d 34 31 64 33 2d 39 61 30 63 2d"               \
    " 30 33 30 35 65 38 32 63 33 33 30 31 "
#define U2_STR8                                                                                    \
    " d9 24 30 62 37 65 38 63 32 61 2d 31 64 33 66 2d 34 61 35 62 2d 38 63 36 64 2d"               \
    " 37 65 38 66 39 61 30 62 31 63 32 64 "
/* HLCs: 1700000000000 ms (0x18bcfe56800) shifted left 16 bits, counter 0
 * then 1: past 2^32-1, so uint 64 (cf) and 8 bytes big-endian. */
#define H1 UINT64_C(0x018bcfe568000000)
#define H2 (H1 + 1)
#define H1_HEX " cf 01 8b cf e5 68 00 00 00 "
#define H2_HEX " cf 01 8b cf e5 68 00 00 01 "
#define AMELIE "Am\xc3\xa9lie" /* 7 bytes: e-acute is c3 a9 */

#define VAL_NIL                                                                                    \
    {                                                                                              \
        .kind = SPRO_VALUE_NIL                                                                     \
    }
#define VAL_BOOL(x)                                                                                \
    {                                                                                              \
        .kind = SPRO_VALUE_BOOL, .b = (x)                                                          \
    }
#define VAL_INT(x)                                                                                 \
    {                                                                                              \
        .kind = SPRO_VALUE_INT, .i = (x)                                                           \
    }
#define VAL_STR(x)                                                                                 \
    {                                                                                              \
        .kind = SPRO_VALUE_STR, .s = BYTES(x)                                                      \
    }

/* push: two ops; values of every kind; the second op's "note" edit has a
 * base of two versions. */
static const struct spro_wire_version note_base[] = {
    {300, BYTES("dev-a")},
    {70000, BYTES("srv:1")},
};
static const struct spro_wire_edit op1_set[] = {
    {BYTES("given_name"), VAL_STR(AMELIE), NULL, 0},
    {BYTES("dropout"), VAL_BOOL(true), NULL, 0},
};
static const struct spro_wire_edit op2_set[] = {
    {BYTES("kind"), VAL_INT(7), NULL, 0},
    {BYTES("score"), VAL_INT(-300), NULL, 0},
    {BYTES("note"), VAL_NIL, note_base, 2},
};
static const struct spro_wire_op push_ops[] = {
    {.seq = 1,
     .rtype = BYTES("beneficiary"),
     .rid = BYTES(U1),
     .ben = BYTES(U1),
     .schema = 1,
     .hlc = H1,
     .set = op1_set,
     .nset = 2},
    {.seq = 2,
     .rtype = BYTES("interaction"),
     .rid = BYTES(U2),
     .ben = BYTES(U1),
     .schema = 1,
     .hlc = H2,
     .set = op2_set,
     .nset = 3},
};

#define GOLDEN_PUSH                                                                                \
    "83"                                                      /* fixmap, 3 entries */              \
    " a1 76 00"                                               /* "v": 0 */                         \
    " a4 74 79 70 65  a4 70 75 73 68"                         /* "type": "push" */                 \
    " a3 6f 70 73  92"                                        /* "ops": fixarray, 2 */             \
    " 87"                                                     /* op 1: fixmap, 7 entries */        \
    " a3 73 65 71  01"                                        /* "seq": 1 */                       \
    " a5 72 74 79 70 65  ab 62 65 6e 65 66 69 63 69 61 72 79" /* "rtype": "beneficiary" */         \
    " a3 72 69 64" U1_STR8                                    /* "rid": U1 */                      \
    " a3 62 65 6e" U1_STR8                                    /* "ben": U1 */                      \
    " a6 73 63 68 65 6d 61  01"                               /* "schema": 1 */                    \
    " a3 68 6c 63" H1_HEX                                     /* "hlc": H1 */                      \
    " a3 73 65 74  82"                                        /* "set": fixmap, 2 */               \
    " aa 67 69 76 65 6e 5f 6e 61 6d 65"                       /* "given_name" */                   \
    " 82  a3 76 61 6c  a7 41 6d c3 a9 6c 69 65"               /* {"val": "Amélie" (7 bytes), */   \
    " a4 62 61 73 65  90"                                     /*  "base": []} */                   \
    " a7 64 72 6f 70 6f 75 74"                                /* "dropout" */                      \
    " 82  a3 76 61 6c  c3  a4 62 61 73 65  90"                /* {"val": true, "base": []} */      \
    " 87"                                                     /* op 2 */                           \
    " a3 73 65 71  02"                                        /* "seq": 2 */                       \
    " a5 72 74 79 70 65  ab 69 6e 74 65 72 61 63 74 69 6f 6e" /* "rtype": "interaction" */         \
    " a3 72 69 64" U2_STR8                                    /* "rid": U2 */                      \
    " a3 62 65 6e" U1_STR8                                    /* "ben": U1 */                      \
    " a6 73 63 68 65 6d 61  01"                               /* "schema": 1 */                    \
    " a3 68 6c 63" H2_HEX                                     /* "hlc": H2 */                      \
    " a3 73 65 74  83"                                        /* "set": fixmap, 3 */               \
    " a4 6b 69 6e 64"                                         /* "kind" */                         \
    " 82  a3 76 61 6c  07  a4 62 61 73 65  90"                /* {"val": 7, "base": []} */         \
    " a5 73 63 6f 72 65"                                      /* "score" */                        \
    " 82  a3 76 61 6c  d1 fe d4"                              /* {"val": -300 (int 16: 0xfed4), */ \
    " a4 62 61 73 65  90"                                     /*  "base": []} */                   \
    " a4 6e 6f 74 65"                                         /* "note" */                         \
    " 82  a3 76 61 6c  c0"                                    /* {"val": nil, */                   \
    " a4 62 61 73 65  92"                                     /*  "base": fixarray, 2 */           \
    " 92  cd 01 2c  a5 64 65 76 2d 61"                        /*   [300 (uint 16), "dev-a"], */    \
    " 92  ce 00 01 11 70  a5 73 72 76 3a 31"                  /*   [70000 (uint 32), "srv:1"]} */

/* push_reply: one result of each status. */
static const struct spro_wire_sibling note_siblings[] = {
    {VAL_STR("a"), {300, BYTES("dev-b")}, BYTES("j.martin")},
    {VAL_NIL, {H2, BYTES("dev-a")}, BYTES("amelie.durand")},
};
static const struct spro_wire_field conflict_fields[] = {
    {BYTES("note"), note_siblings, 2},
};
static const struct spro_wire_result push_results[] = {
    {.seq = 1, .status = SPRO_RESULT_ACK, .ver = {H1, BYTES("dev-a")}},
    {.seq = 2,
     .status = SPRO_RESULT_CONFLICT,
     .ver = {H2, BYTES("dev-a")},
     .fields = conflict_fields,
     .nfields = 1},
    {.seq = 3, .status = SPRO_RESULT_REJECT, .code = BYTES("not_found")},
};

#define GOLDEN_PUSH_REPLY                                                                          \
    "83"                                                   /* fixmap, 3 entries */                 \
    " a1 76 00"                                            /* "v": 0 */                            \
    " a4 74 79 70 65  aa 70 75 73 68 5f 72 65 70 6c 79"    /* "type": "push_reply" */              \
    " a7 72 65 73 75 6c 74 73  93"                         /* "results": fixarray, 3 */            \
    " 83"                                                  /* result 1: fixmap, 3 */               \
    " a3 73 65 71  01"                                     /* "seq": 1 */                          \
    " a6 73 74 61 74 75 73  a3 61 63 6b"                   /* "status": "ack" */                   \
    " a3 76 65 72  92" H1_HEX "a5 64 65 76 2d 61"          /* "ver": [H1, "dev-a"] */              \
    " 84"                                                  /* result 2: fixmap, 4 */               \
    " a3 73 65 71  02"                                     /* "seq": 2 */                          \
    " a6 73 74 61 74 75 73  a8 63 6f 6e 66 6c 69 63 74"    /* "status": "conflict" */              \
    " a3 76 65 72  92" H2_HEX "a5 64 65 76 2d 61"          /* "ver": [H2, "dev-a"] */              \
    " a6 66 69 65 6c 64 73  81"                            /* "fields": fixmap, 1 */               \
    " a4 6e 6f 74 65  92"                                  /* "note": fixarray, 2 */               \
    " 83  a3 76 61 6c  a1 61"                              /* {"val": "a", */                      \
    " a3 76 65 72  92 cd 01 2c a5 64 65 76 2d 62"          /*  "ver": [300, "dev-b"], */           \
    " a2 62 79  a8 6a 2e 6d 61 72 74 69 6e"                /*  "by": "j.martin"} */                \
    " 83  a3 76 61 6c  c0"                                 /* {"val": nil, */                      \
    " a3 76 65 72  92" H2_HEX "a5 64 65 76 2d 61"          /*  "ver": [H2, "dev-a"], */            \
    " a2 62 79  ad 61 6d 65 6c 69 65 2e 64 75 72 61 6e 64" /* "by": "amelie.durand"} */            \
    " 83"                                                  /* result 3: fixmap, 3 */               \
    " a3 73 65 71  03"                                     /* "seq": 3 */                          \
    " a6 73 74 61 74 75 73  a6 72 65 6a 65 63 74"          /* "status": "reject" */                \
    " a4 63 6f 64 65  a9 6e 6f 74 5f 66 6f 75 6e 64"       /* "code": "not_found" */

#define CURSOR_2A "\x00\x00\x00\x00\x00\x00\x00\x2a"
#define CURSOR_2B "\x00\x00\x00\x00\x00\x00\x00\x2b"

#define GOLDEN_PULL                                                                                \
    "84"                                                   /* fixmap, 4 entries */                 \
    " a1 76 00"                                            /* "v": 0 */                            \
    " a4 74 79 70 65  a4 70 75 6c 6c"                      /* "type": "pull" */                    \
    " a6 63 75 72 73 6f 72  c4 08 00 00 00 00 00 00 00 2a" /* "cursor": bin 8, 8 bytes */          \
    " a5 6c 69 6d 69 74  64"                               /* "limit": 100 */

#define GOLDEN_PULL_FIRST                                                                          \
    "84"                                                                                           \
    " a1 76 00"                                                                                    \
    " a4 74 79 70 65  a4 70 75 6c 6c"                                                              \
    " a6 63 75 72 73 6f 72  c4 00" /* "cursor": bin 8, empty */                                    \
    " a5 6c 69 6d 69 74  cd 03 e8" /* "limit": 1000 (uint 16) */

/* pull_reply: a record whose "dropout" is in conflict, and a removed one. */
static const struct spro_wire_sibling given_name_siblings[] = {
    {VAL_STR(AMELIE), {H1, BYTES("dev-a")}, BYTES("j.martin")},
};
static const struct spro_wire_sibling dropout_siblings[] = {
    {VAL_BOOL(false), {300, BYTES("dev-b")}, BYTES("j.martin")},
    {VAL_BOOL(true), {H1, BYTES("dev-a")}, BYTES("j.martin")},
};
static const struct spro_wire_field record_fields[] = {
    {BYTES("given_name"), given_name_siblings, 1},
    {BYTES("dropout"), dropout_siblings, 2},
};
static const struct spro_wire_record pull_records[] = {
    {BYTES("beneficiary"), BYTES(U1), BYTES(U1), record_fields, 2, false},
    {BYTES("interaction"), BYTES(U2), BYTES(U1), NULL, 0, true},
};

#define GOLDEN_PULL_REPLY                                                                          \
    "85"                                                      /* fixmap, 5 entries */              \
    " a1 76 00"                                               /* "v": 0 */                         \
    " a4 74 79 70 65  aa 70 75 6c 6c 5f 72 65 70 6c 79"       /* "type": "pull_reply" */           \
    " a7 72 65 63 6f 72 64 73  92"                            /* "records": fixarray, 2 */         \
    " 85"                                                     /* record 1: fixmap, 5 */            \
    " a5 72 74 79 70 65  ab 62 65 6e 65 66 69 63 69 61 72 79" /* "rtype": "beneficiary" */         \
    " a3 72 69 64" U1_STR8                                    /* "rid": U1 */                      \
    " a3 62 65 6e" U1_STR8                                    /* "ben": U1 */                      \
    " a6 66 69 65 6c 64 73  82"                               /* "fields": fixmap, 2 */            \
    " aa 67 69 76 65 6e 5f 6e 61 6d 65  91"                   /* "given_name": fixarray, 1 */      \
    " 83  a3 76 61 6c  a7 41 6d c3 a9 6c 69 65"               /* {"val": "Amélie", */             \
    " a3 76 65 72  92" H1_HEX "a5 64 65 76 2d 61"             /*  "ver": [H1, "dev-a"], */         \
    " a2 62 79  a8 6a 2e 6d 61 72 74 69 6e"                   /*  "by": "j.martin"} */             \
    " a7 64 72 6f 70 6f 75 74  92"                            /* "dropout": fixarray, 2 */         \
    " 83  a3 76 61 6c  c2"                                    /* {"val": false, */                 \
    " a3 76 65 72  92 cd 01 2c a5 64 65 76 2d 62"             /*  "ver": [300, "dev-b"], */        \
    " a2 62 79  a8 6a 2e 6d 61 72 74 69 6e"                   /*  "by": "j.martin"} */             \
    " 83  a3 76 61 6c  c3"                                    /* {"val": true, */                  \
    " a3 76 65 72  92" H1_HEX "a5 64 65 76 2d 61"             /*  "ver": [H1, "dev-a"], */         \
    " a2 62 79  a8 6a 2e 6d 61 72 74 69 6e"                   /*  "by": "j.martin"} */             \
    " a7 72 65 6d 6f 76 65 64  c2"                            /* "removed": false */               \
    " 85"                                                     /* record 2: fixmap, 5 */            \
    " a5 72 74 79 70 65  ab 69 6e 74 65 72 61 63 74 69 6f 6e" /* "rtype": "interaction" */         \
    " a3 72 69 64" U2_STR8                                    /* "rid": U2 */                      \
    " a3 62 65 6e" U1_STR8                                    /* "ben": U1 */                      \
    " a6 66 69 65 6c 64 73  80"                               /* "fields": fixmap, 0 */            \
    " a7 72 65 6d 6f 76 65 64  c3"                            /* "removed": true */                \
    " a6 63 75 72 73 6f 72  c4 08 00 00 00 00 00 00 00 2b"    /* "cursor": bin 8, 8 bytes */       \
    " a4 6d 6f 72 65  c2"                                     /* "more": false */

/* pull_reply telling the device to start again from a snapshot. */
#define GOLDEN_PULL_REPLY_RESET                                                                    \
    "86"                                                /* fixmap, 6 entries */                    \
    " a1 76 00"                                         /* "v": 0 */                               \
    " a4 74 79 70 65  aa 70 75 6c 6c 5f 72 65 70 6c 79" /* "type": "pull_reply" */                 \
    " a7 72 65 63 6f 72 64 73  90"                      /* "records": fixarray, 0 */               \
    " a6 63 75 72 73 6f 72  c4 00"                      /* "cursor": bin 8, empty */               \
    " a4 6d 6f 72 65  c2"                               /* "more": false */                        \
    " a5 72 65 73 65 74  c3"                            /* "reset": true */

struct golden {
    const char *name;
    struct spro_msg msg;
    const char *hex;
};

static const struct golden goldens[] = {
    {"push", {.type = SPRO_MSG_PUSH, .u.push = {push_ops, 2}}, GOLDEN_PUSH},
    {"push_reply",
     {.type = SPRO_MSG_PUSH_REPLY, .u.push_reply = {push_results, 3}},
     GOLDEN_PUSH_REPLY},
    {"pull",
     {.type = SPRO_MSG_PULL, .u.pull = {.cursor = BYTES(CURSOR_2A), .limit = 100}},
     GOLDEN_PULL},
    {"pull_first",
     {.type = SPRO_MSG_PULL, .u.pull = {.cursor = {NULL, 0}, .limit = 1000}},
     GOLDEN_PULL_FIRST},
    {"pull_reply",
     {.type = SPRO_MSG_PULL_REPLY,
      .u.pull_reply = {pull_records, 2, .cursor = BYTES(CURSOR_2B), .more = false}},
     GOLDEN_PULL_REPLY},
    {"pull_reply_reset",
     {.type = SPRO_MSG_PULL_REPLY, .u.pull_reply = {.cursor = {NULL, 0}, .reset = true}},
     GOLDEN_PULL_REPLY_RESET},
};

#define NGOLDEN (sizeof(goldens) / sizeof(goldens[0]))

static void test_golden_encode(void)
{
    for (size_t k = 0; k < NGOLDEN; k++) {
        const struct golden *g = &goldens[k];
        struct input want = unhex(g->hex);
        struct spro_buf out = {0};
        int err = spro_proto_encode(&g->msg, &out);
        CASE_EQ(g->name, err, 0);
        CHECK_BYTES(out.data, out.len, want.p, want.len);
        spro_buf_free(&out);
        input_free(&want);
    }
}

static void test_golden_decode(void)
{
    for (size_t k = 0; k < NGOLDEN; k++) {
        const struct golden *g = &goldens[k];
        struct input in = unhex(g->hex);
        struct spro_arena a = arena_for(in.len);
        struct spro_msg m;
        int err = spro_proto_decode_sync(in.p, in.len, &a, &m);
        bool same = err == 0 && m.type == g->msg.type && spro_proto_msg_equal(&m, &g->msg);
        int valid = spro_proto_validate(in.p, in.len);
        struct spro_msg flat;
        int flat_err = spro_proto_decode(in.p, in.len, &flat);
        free(a.base);
        input_free(&in);
        CASE_EQ(g->name, err, 0);
        CHECK(same);
        CASE_EQ(g->name, valid, 0);
        CASE_EQ(g->name, flat_err, SPRO_EBADMSGTYPE); /* not a flat message */
    }
}

/* Every proper prefix of every golden ends inside a value. */
static void test_golden_prefixes(void)
{
    for (size_t k = 0; k < NGOLDEN; k++) {
        struct input in = unhex(goldens[k].hex);
        for (size_t n = 0; n < in.len; n++) {
            uint8_t *p = copy_exact(in.p, n);
            struct spro_arena a = arena_for(n);
            struct spro_msg m;
            int err = spro_proto_decode_sync(p, n, &a, &m);
            int flat = spro_proto_decode(p, n, &m);
            size_t used = a.len;
            free(a.base);
            free(p);
            if (err != SPRO_ETRUNCATED || flat != SPRO_ETRUNCATED)
                fprintf(stderr, "golden %s, prefix of %zu bytes\n", goldens[k].name, n);
            CHECK_EQ(err, SPRO_ETRUNCATED);
            CHECK_EQ(flat, SPRO_ETRUNCATED);
            CHECK_EQ(used, 0); /* step 1 fails before anything is taken */
        }
        input_free(&in);
    }
}

/* Decoding a golden points raw at the value's exact bytes in the input. */
static void test_golden_raw(void)
{
    struct input in = unhex(GOLDEN_PUSH);
    struct spro_arena a = arena_for(in.len);
    struct spro_msg m;
    CHECK_EQ(spro_proto_decode_sync(in.p, in.len, &a, &m), 0);
    const struct spro_wire_op *op = m.u.push.ops;
    static const struct {
        size_t op, edit;
        const char *hex;
    } want[] = {
        {0, 0, "a7 41 6d c3 a9 6c 69 65"},
        {0, 1, "c3"},
        {1, 0, "07"},
        {1, 1, "d1 fe d4"},
        {1, 2, "c0"},
    };
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        struct input w = unhex(want[k].hex);
        const struct spro_value *v = &op[want[k].op].set[want[k].edit].val;
        bool inside = v->raw.p >= in.p && v->raw.p + v->raw.len <= in.p + in.len;
        bool same = v->raw.len == w.len && memcmp(v->raw.p, w.p, w.len) == 0;
        input_free(&w);
        CHECK(inside);
        CHECK(same);
    }
    CHECK_EQ(op[0].set[0].val.kind, SPRO_VALUE_STR);
    CHECK(bytes_is(op[0].set[0].val.s, AMELIE));
    CHECK(op[0].set[0].val.s.p == op[0].set[0].val.raw.p + 1); /* zero copy */
    CHECK_EQ(op[1].set[1].val.i, -300);
    CHECK_EQ(op[1].set[2].nbase, 2);
    CHECK_EQ(op[1].set[2].base[1].hlc, 70000);
    CHECK(bytes_is(op[1].set[2].base[1].origin, "srv:1"));
    free(a.base);
    input_free(&in);
}

/* What a message leaves out reads as empty (an arena full of other bytes
 * beforehand). */
static void test_golden_absent(void)
{
    struct input in = unhex(GOLDEN_PUSH_REPLY);
    struct spro_arena a = arena_for(in.len);
    memset(a.base, 0xa5, a.cap);
    struct spro_msg m;
    CHECK_EQ(spro_proto_decode_sync(in.p, in.len, &a, &m), 0);
    const struct spro_wire_result *r = m.u.push_reply.results;
    CHECK_EQ(r[0].status, SPRO_RESULT_ACK);
    CHECK(r[0].code.p == NULL && r[0].code.len == 0 && r[0].fields == NULL && r[0].nfields == 0);
    CHECK_EQ(r[1].status, SPRO_RESULT_CONFLICT);
    CHECK(r[1].code.p == NULL && r[1].code.len == 0 && r[1].nfields == 1);
    CHECK_EQ(r[2].status, SPRO_RESULT_REJECT);
    CHECK(r[2].ver.hlc == 0 && r[2].ver.origin.p == NULL && r[2].fields == NULL);
    CHECK(bytes_is(r[2].code, "not_found"));
    free(a.base);
    input_free(&in);
}

/* ---- Round trips ---- */

/* encode -> decode_sync -> equal, and encoding the decoded message gives
 * the same bytes. */
static void roundtrip_one(const char *name, const struct spro_msg *msg)
{
    struct spro_buf e1 = {0}, e2 = {0};
    int err = spro_proto_encode(msg, &e1);
    CASE_EQ(name, err, 0);
    CHECK_EQ(spro_proto_validate(e1.data, e1.len), 0);
    struct spro_arena a = arena_for(e1.len);
    struct spro_msg m;
    err = spro_proto_decode_sync(e1.data, e1.len, &a, &m);
    CASE_EQ(name, err, 0);
    bool same = spro_proto_msg_equal(&m, msg) && spro_proto_msg_equal(msg, &m);
    CHECK_EQ(spro_proto_encode(&m, &e2), 0);
    free(a.base);
    if (!same)
        fprintf(stderr, "case \"%s\": decode(encode(m)) != m\n", name);
    CHECK(same);
    CHECK_BYTES(e2.data, e2.len, e1.data, e1.len);
    spro_buf_free(&e1);
    spro_buf_free(&e2);
}

static char longtext[SPRO_SYNC_MAX_VALUE + 1];

static void fill_longtext(void)
{
    memset(longtext, 'z', sizeof(longtext));
}

static void test_roundtrip(void)
{
    for (size_t k = 0; k < NGOLDEN; k++)
        roundtrip_one(goldens[k].name, &goldens[k].msg);

    /* The largest field states: 64 fields of 32 siblings, longest strings. */
    fill_longtext();
    static char names[SPRO_SYNC_MAX_FIELDS][2];
    static struct spro_wire_sibling sibs[SPRO_SYNC_MAX_SIBLINGS];
    static struct spro_wire_field fields[SPRO_SYNC_MAX_FIELDS];
    static struct spro_wire_version base[SPRO_SYNC_MAX_SIBLINGS];
    static struct spro_wire_edit set[SPRO_SYNC_MAX_FIELDS];
    const struct spro_bytes text64 = {(const uint8_t *)longtext, 64};
    for (size_t k = 0; k < SPRO_SYNC_MAX_SIBLINGS; k++) {
        base[k] = (struct spro_wire_version){INT64_MAX - k, text64};
        sibs[k].ver = base[k];
        sibs[k].by = text64;
        sibs[k].val.kind = (enum spro_value_kind)(k % 4);
        sibs[k].val.b = k % 8 == 1;
        sibs[k].val.i = k % 8 == 2 ? INT64_MIN : INT64_MAX;
        sibs[k].val.s = (struct spro_bytes){(const uint8_t *)longtext, SPRO_SYNC_MAX_VALUE};
    }
    for (size_t k = 0; k < SPRO_SYNC_MAX_FIELDS; k++) {
        names[k][0] = (char)('0' + k); /* '0'..'o': distinct */
        names[k][1] = 'x';
        fields[k] =
            (struct spro_wire_field){{(const uint8_t *)names[k], 2}, sibs, SPRO_SYNC_MAX_SIBLINGS};
        set[k] = (struct spro_wire_edit){
            {(const uint8_t *)names[k], 2}, sibs[k % 4].val, base, SPRO_SYNC_MAX_SIBLINGS};
    }
    struct spro_wire_record rec = {BYTES("r"),           BYTES(U1), BYTES(U2), fields,
                                   SPRO_SYNC_MAX_FIELDS, false};
    struct spro_msg big = {.type = SPRO_MSG_PULL_REPLY,
                           .u.pull_reply = {&rec, 1, .cursor = BYTES(CURSOR_2A), .more = true}};
    roundtrip_one("pull_reply, 64 fields of 32 siblings", &big);

    struct spro_wire_op op = {.seq = INT64_MAX,
                              .rtype = {(const uint8_t *)longtext, 32},
                              .rid = BYTES(U1),
                              .ben = BYTES(U2),
                              .schema = 2147483647,
                              .hlc = INT64_MAX,
                              .set = set,
                              .nset = SPRO_SYNC_MAX_FIELDS};
    struct spro_msg bigpush = {.type = SPRO_MSG_PUSH, .u.push = {&op, 1}};
    roundtrip_one("push, 64 edits with 32 versions of base", &bigpush);

    /* Empty answers. */
    struct spro_msg empty_reply = {.type = SPRO_MSG_PUSH_REPLY};
    roundtrip_one("push_reply, no results", &empty_reply);
    struct spro_msg empty_pull = {.type = SPRO_MSG_PULL_REPLY, .u.pull_reply.more = true};
    roundtrip_one("pull_reply, no records", &empty_pull);
    struct spro_msg max_pull = {
        .type = SPRO_MSG_PULL,
        .u.pull = {{(const uint8_t *)longtext, SPRO_SYNC_MAX_CURSOR}, SPRO_SYNC_MAX_RECORDS}};
    roundtrip_one("pull, longest cursor", &max_pull);
}

/* ---- Types and names ---- */

static void test_types(void)
{
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PUSH), "push");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PUSH_REPLY), "push_reply");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PULL), "pull");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PULL_REPLY), "pull_reply");
    CHECK(spro_proto_type_name((enum spro_msg_type)(SPRO_MSG_PULL_REPLY + 1)) == NULL);

    /* decode_sync refuses the flat types and unknown names. */
    static const struct {
        const char *name;
        const char *hex;
    } flat[] = {
        {"echo", "84" V0 K_TYPE "a4 65 63 68 6f a2 69 64 00 a4 64 61 74 61 c4 00"},
        {"ping", "82" V0 K_TYPE "a4 70 69 6e 67"},
        {"error",
         "84" V0 K_TYPE "a5 65 72 72 6f 72 a4 63 6f 64 65 a1 78 a7 6d 65 73 73 61 67 65 a0"},
        {"unknown name", "83" V0 K_TYPE "a4 70 75 73 48" K_OPS "91" OP_MIN},
        {"empty name", "82" V0 K_TYPE "a0"},
        {"sync name with a NUL", "83" V0 K_TYPE "a5 70 75 73 68 00" K_OPS "91" OP_MIN},
    };
    for (size_t k = 0; k < sizeof(flat) / sizeof(flat[0]); k++) {
        size_t used;
        CASE_EQ(flat[k].name, decode_sync_hex(flat[k].hex, &used), SPRO_EBADMSGTYPE);
        CHECK_EQ(used, 0);
    }
    /* and the flat decoder the sync types, even minimal ones. */
    const char *sync[] = {PUSH_MIN, PUSH_REPLY_HEAD "90", PULL_MIN, PULL_REPLY_MIN};
    for (size_t k = 0; k < sizeof(sync) / sizeof(sync[0]); k++) {
        struct input in = unhex(sync[k]);
        struct spro_msg m;
        int err = spro_proto_decode(in.p, in.len, &m);
        int ok = decode_sync_hex(sync[k], NULL);
        input_free(&in);
        CHECK_EQ(err, SPRO_EBADMSGTYPE);
        CHECK_EQ(ok, 0);
    }
}

/* ---- Decoder: the rules one by one ---- */

struct negative {
    const char *name;
    const char *hex;
    int err;
};

/* Bases that decode: each rule below is one change to one of them. */
static const struct negative positives[] = {
    {"push min", PUSH_MIN, 0},
    {"push, 1000 ops", PUSH_HEAD "dc 03 e8 (" OP_MIN ")*1000", 0},
    {"push, keys in any order", "83" K_OPS "91" OP_MIN T_PUSH V0, 0},
    {"op, keys reversed",
     PUSH_HEAD "91 87" SET_F K_HLC "01" K_SCHEMA "01" K_BEN UUID_A K_RID UUID_A K_RTYPE
               "a1 72" K_SEQ "01",
     0},
    {"edit, base before val", PUSH_SET("81 a1 66 82" K_BASE "90" K_VAL "c0"), 0},
    {"seq 2^63-1",
     PUSH_HEAD "91 87" K_SEQ "cf 7f ff ff ff ff ff ff ff" K_RTYPE
               "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC "01" SET_F,
     0},
    {"seq as int 8",
     PUSH_HEAD "91 87" K_SEQ "d0 05" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     0},
    {"rtype 32 bytes",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "d9 20 61*32" K_RID UUID_A K_BEN UUID_A K_SCHEMA
               "01" K_HLC "01" SET_F,
     0},
    {"uuid of every hex digit",
     PUSH_HEAD
     "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID
     "d9 24 30 31 32 33 34 35 36 37 2d 38 39 61 62 2d 63 64 65 66 2d 30 31 32 33 2d 34 35 36 "
     "37 38 39 61 62 63 64 65 66" K_BEN UUID_A K_SCHEMA "01" K_HLC "01" SET_F,
     0},
    {"schema 2^31-1",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA
               "ce 7f ff ff ff" K_HLC "01" SET_F,
     0},
    {"name of 64 bytes", PUSH_SET("81 d9 40 61*64" EDIT_NIL), 0},
    {"base of 32", PUSH_BASE("dc 00 20 (" VER1 ")*32"), 0},
    {"origin of 64 bytes", PUSH_BASE("91 92 01 d9 40 61*64"), 0},
    {"value true", PUSH_VAL("c3"), 0},
    {"value false", PUSH_VAL("c2"), 0},
    {"value -1", PUSH_VAL("ff"), 0},
    {"value int 8", PUSH_VAL("d0 80"), 0},
    {"value uint 64", PUSH_VAL("cf 00 00 00 00 00 00 00 05"), 0},
    {"value int64 max", PUSH_VAL("cf 7f ff ff ff ff ff ff ff"), 0},
    {"value int64 min", PUSH_VAL("d3 80 00 00 00 00 00 00 00"), 0},
    {"value empty str", PUSH_VAL("a0"), 0},
    {"value str 8 of 1", PUSH_VAL("d9 01 61"), 0},
    {"value str of 4096", PUSH_VAL("da 10 00 61*4096"), 0},
    {"value str 32 of 4096", PUSH_VAL("db 00 00 10 00 61*4096"), 0},
    {"push_reply, no results", PUSH_REPLY_HEAD "90", 0},
    {"push_reply, one of each", PUSH_REPLY_HEAD "93" RESULT_ACK RESULT_CONFLICT RESULT_REJECT, 0},
    {"push_reply, 1000 results", PUSH_REPLY_HEAD "dc 03 e8 (" RESULT_REJECT ")*1000", 0},
    {"result, status first", PUSH_REPLY_1("83", K_STATUS S_ACK K_VER VER1 K_SEQ "01"), 0},
    {"conflict, 32 siblings", CONFLICT_SIBS("dc 00 20 (" SIB_MIN ")*32"), 0},
    {"pull min", PULL_MIN, 0},
    {"pull, cursor of 32", "84" V0 T_PULL K_CURSOR "c4 20 00*32" K_LIMIT "01", 0},
    {"pull, limit 1000", "84" V0 T_PULL K_CURSOR "c4 00" K_LIMIT "cd 03 e8", 0},
    {"pull_reply min", PULL_REPLY_MIN, 0},
    {"pull_reply, no records", PULL_REPLY_HEAD "90" PULL_REPLY_TAIL, 0},
    {"pull_reply, reset", "86" V0 T_PULL_REPLY K_RECORDS "90" PULL_REPLY_TAIL K_RESET "c3", 0},
    {"pull_reply, reset first", "86" V0 T_PULL_REPLY K_RESET "c3" K_RECORDS "90" PULL_REPLY_TAIL,
     0},
    {"pull_reply, 1000 records", PULL_REPLY_HEAD "dc 03 e8 (" REC_MIN ")*1000" PULL_REPLY_TAIL, 0},
    {"record removed", PULL_REPLY_1("85", REC_HEAD K_FIELDS "80" K_REMOVED "c3"), 0},
    {"record with a field",
     PULL_REPLY_1("85", REC_HEAD K_FIELDS "81 a1 66 91" SIB_MIN K_REMOVED "c2"), 0},
};

static const struct negative negatives[] = {
    /* Envelope (steps 1-3 shared with the flat messages, then step 4 and 5). */
    {"trailing byte", PUSH_MIN "00", SPRO_ETRAILING},
    {"not a map", "91" OP_MIN, SPRO_EBADTYPE},
    {"version 1 before a bad op", "83 a1 76 01" T_PUSH K_OPS "90", SPRO_EBADVERSION},
    {"no version", "82" T_PUSH K_OPS "91" OP_MIN, SPRO_EMISSING},
    {"no type", "82" V0 K_OPS "91" OP_MIN, SPRO_EMISSING},
    {"push without ops", "82" V0 T_PUSH, SPRO_EMISSING},
    {"push with an unknown key", "84" V0 T_PUSH K_OPS "91" OP_MIN K_X "00", SPRO_EUNKNOWNFIELD},
    {"unknown key before a bad op", "84" V0 T_PUSH K_X "00" K_OPS "90", SPRO_EUNKNOWNFIELD},
    {"push with limit", "84" V0 T_PUSH K_OPS "91" OP_MIN K_LIMIT "01", SPRO_EUNKNOWNFIELD},
    {"ops twice", "84" V0 T_PUSH K_OPS "91" OP_MIN K_OPS "91" OP_MIN, SPRO_EDUPKEY},
    {"float in an op, step 1 first", "83 a1 76 01" T_PUSH K_OPS "91 81 a1 78 ca 00 00 00 00",
     SPRO_EBADVERSION},
    {"ext anywhere (step 1)", PUSH_VAL("d4 01 00"), SPRO_EBADTYPE},
    {"c1 anywhere (step 1)", PUSH_VAL("c1"), SPRO_EMALFORMED},
    {"too deep (step 1)", PUSH_VAL("91*15 90"), SPRO_ETOODEEP},

    /* ops */
    {"ops empty", PUSH_HEAD "90", SPRO_ERANGE},
    {"ops of 1001", PUSH_HEAD "dc 03 e9 80*1001", SPRO_ETOOLONG},
    {"ops of 1000 empty maps", PUSH_HEAD "dc 03 e8 80*1000", SPRO_EMISSING},
    {"ops a map", PUSH_HEAD "80", SPRO_EBADTYPE},
    {"ops nil", PUSH_HEAD "c0", SPRO_EBADTYPE},
    {"op an array", PUSH_HEAD "91 90", SPRO_EBADTYPE},
    {"op an int", PUSH_HEAD "91 01", SPRO_EBADTYPE},

    /* op: keys */
    {"op key an int", PUSH_HEAD "91 88" OP_HEAD SET_F "01 01", SPRO_EBADTYPE},
    {"op key of 65 bytes", PUSH_HEAD "91 88" OP_HEAD SET_F "d9 41 61*65 01", SPRO_ETOOLONG},
    {"op unknown key", PUSH_HEAD "91 88" OP_HEAD SET_F K_X "01", SPRO_EUNKNOWNFIELD},
    {"op key v", PUSH_HEAD "91 88" OP_HEAD SET_F V0, SPRO_EUNKNOWNFIELD},
    {"op key Seq",
     PUSH_HEAD "91 87 a3 53 65 71 01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_EUNKNOWNFIELD},
    {"op seq twice", PUSH_HEAD "91 88" OP_HEAD SET_F K_SEQ "01", SPRO_EDUPKEY},
    {"op without seq",
     PUSH_HEAD "91 86" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC "01" SET_F,
     SPRO_EMISSING},
    {"op without rtype",
     PUSH_HEAD "91 86" K_SEQ "01" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC "01" SET_F,
     SPRO_EMISSING},
    {"op without rid",
     PUSH_HEAD "91 86" K_SEQ "01" K_RTYPE "a1 72" K_BEN UUID_A K_SCHEMA "01" K_HLC "01" SET_F,
     SPRO_EMISSING},
    {"op without ben",
     PUSH_HEAD "91 86" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_SCHEMA "01" K_HLC "01" SET_F,
     SPRO_EMISSING},
    {"op without schema",
     PUSH_HEAD "91 86" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_HLC "01" SET_F,
     SPRO_EMISSING},
    {"op without hlc",
     PUSH_HEAD "91 86" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" SET_F,
     SPRO_EMISSING},
    {"op without set", PUSH_HEAD "91 86" OP_HEAD, SPRO_EMISSING},
    {"missing key of op 1 before bad op 2", PUSH_HEAD "92 86" OP_HEAD "01", SPRO_EMISSING},

    /* op: scalars */
    {"seq 0",
     PUSH_HEAD "91 87" K_SEQ "00" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"seq 2^63",
     PUSH_HEAD "91 87" K_SEQ "cf 80 00 00 00 00 00 00 00" K_RTYPE
               "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC "01" SET_F,
     SPRO_ERANGE},
    {"seq -1",
     PUSH_HEAD "91 87" K_SEQ "ff" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"seq a str",
     PUSH_HEAD "91 87" K_SEQ "a1 31" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_EBADTYPE},
    {"rtype empty",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a0" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"rtype of 33",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "d9 21 61*33" K_RID UUID_A K_BEN UUID_A K_SCHEMA
               "01" K_HLC "01" SET_F,
     SPRO_ETOOLONG},
    {"rtype a bin",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "c4 01 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_EBADTYPE},
    {"rtype bad utf8",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 ff" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_EBADUTF8},
    {"rid of 35",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID
               "d9 23 61*8 2d 61*4 2d 61*4 2d 61*4 2d 61*11" K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"rid of 37",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID
               "d9 25 61*8 2d 61*4 2d 61*4 2d 61*4 2d 61*13" K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ETOOLONG},
    {"rid empty",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID "a0" K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"rid uppercase",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID
               "d9 24 41 61*7 2d 61*4 2d 61*4 2d 61*4 2d 61*12" K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"rid with g",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID
               "d9 24 61*7 67 2d 61*4 2d 61*4 2d 61*4 2d 61*12" K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"rid dash moved",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID
               "d9 24 61*9 2d 61*3 2d 61*4 2d 61*4 2d 61*12" K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"rid without dashes",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID "d9 24 61*36" K_BEN UUID_A K_SCHEMA
               "01" K_HLC "01" SET_F,
     SPRO_ERANGE},
    {"rid with braces",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID
               "d9 24 7b 61*7 2d 61*4 2d 61*4 2d 61*4 2d 61*11 7d" K_BEN UUID_A K_SCHEMA "01" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"rid a bin",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID "c4 24 61*36" K_BEN UUID_A K_SCHEMA
               "01" K_HLC "01" SET_F,
     SPRO_EBADTYPE},
    {"ben uppercase",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN
               "d9 24 61*8 2d 61*4 2d 61*4 2d 61*4 2d 61*11 46" K_SCHEMA "01" K_HLC "01" SET_F,
     SPRO_ERANGE},
    {"ben of 37",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN
               "d9 25 61*8 2d 61*4 2d 61*4 2d 61*4 2d 61*13" K_SCHEMA "01" K_HLC "01" SET_F,
     SPRO_ETOOLONG},
    {"schema 0",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "00" K_HLC
               "01" SET_F,
     SPRO_ERANGE},
    {"schema 2^31",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA
               "ce 80 00 00 00" K_HLC "01" SET_F,
     SPRO_ERANGE},
    {"hlc 0",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "00" SET_F,
     SPRO_ERANGE},
    {"hlc 2^64-1",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "cf ff ff ff ff ff ff ff ff" SET_F,
     SPRO_ERANGE},
    {"hlc nil",
     PUSH_HEAD "91 87" K_SEQ "01" K_RTYPE "a1 72" K_RID UUID_A K_BEN UUID_A K_SCHEMA "01" K_HLC
               "c0" SET_F,
     SPRO_EBADTYPE},

    /* set */
    {"set empty", PUSH_SET("80"), SPRO_ERANGE},
    {"set an array", PUSH_SET("91 c0"), SPRO_EBADTYPE},
    {"set of 65 equal names", PUSH_SET("de 00 41 (a1 61" EDIT_NIL ")*65"),
     SPRO_EDUPKEY}, /* step 1 */
    {"name empty", PUSH_SET("81 a0" EDIT_NIL), SPRO_ERANGE},
    {"name of 65 bytes", PUSH_SET("81 d9 41 61*65" EDIT_NIL), SPRO_ETOOLONG},
    {"name an int", PUSH_SET("81 01" EDIT_NIL), SPRO_EBADTYPE},
    {"name bad utf8", PUSH_SET("81 a2 c0 80" EDIT_NIL), SPRO_EBADUTF8},
    {"names twice", PUSH_SET("82 a1 66" EDIT_NIL "a1 66" EDIT_NIL), SPRO_EDUPKEY},
    {"names twice, widths differ", PUSH_SET("82 a1 66" EDIT_NIL "d9 01 66" EDIT_NIL), SPRO_EDUPKEY},
    {"edit nil", PUSH_SET("81 a1 66 c0"), SPRO_EBADTYPE},
    {"edit an array", PUSH_SET("81 a1 66 92 c0 90"), SPRO_EBADTYPE},
    {"edit without base", PUSH_SET("81 a1 66 81" K_VAL "c0"), SPRO_EMISSING},
    {"edit without val", PUSH_SET("81 a1 66 81" K_BASE "90"), SPRO_EMISSING},
    {"edit empty", PUSH_SET("81 a1 66 80"), SPRO_EMISSING},
    {"edit unknown key", PUSH_SET("81 a1 66 83" K_VAL "c0" K_BASE "90" K_VER VER1),
     SPRO_EUNKNOWNFIELD},

    /* base and versions */
    {"base a map", PUSH_BASE("80"), SPRO_EBADTYPE},
    {"base nil", PUSH_BASE("c0"), SPRO_EBADTYPE},
    {"base of 33", PUSH_BASE("dc 00 21 (" VER1 ")*33"), SPRO_ETOOLONG},
    {"version a map", PUSH_BASE("91 80"), SPRO_EBADTYPE},
    {"version an int", PUSH_BASE("91 01"), SPRO_EBADTYPE},
    {"version of 0", PUSH_BASE("91 90"), SPRO_ERANGE},
    {"version of 1", PUSH_BASE("91 91 01"), SPRO_ERANGE},
    {"version of 3", PUSH_BASE("91 93 01 a1 6f c0"), SPRO_ETOOLONG},
    {"version hlc 0", PUSH_BASE("91 92 00 a1 6f"), SPRO_ERANGE},
    {"version hlc 2^63", PUSH_BASE("91 92 cf 80 00 00 00 00 00 00 00 a1 6f"), SPRO_ERANGE},
    {"version hlc negative", PUSH_BASE("91 92 d0 ff a1 6f"), SPRO_ERANGE},
    {"version hlc a str", PUSH_BASE("91 92 a1 31 a1 6f"), SPRO_EBADTYPE},
    {"version, origin first", PUSH_BASE("91 92 a1 6f 01"), SPRO_EBADTYPE},
    {"origin empty", PUSH_BASE("91 92 01 a0"), SPRO_ERANGE},
    {"origin of 65", PUSH_BASE("91 92 01 d9 41 61*65"), SPRO_ETOOLONG},
    {"origin a bin", PUSH_BASE("91 92 01 c4 01 6f"), SPRO_EBADTYPE},
    {"origin bad utf8", PUSH_BASE("91 92 01 a3 ed a0 80"), SPRO_EBADUTF8},
    {"second version bad", PUSH_BASE("92" VER1 "92 01 a0"), SPRO_ERANGE},

    /* values */
    {"value uint 64 2^63", PUSH_VAL("cf 80 00 00 00 00 00 00 00"), SPRO_ERANGE},
    {"value uint 64 max", PUSH_VAL("cf ff ff ff ff ff ff ff ff"), SPRO_ERANGE},
    {"value str of 4097", PUSH_VAL("da 10 01 61*4097"), SPRO_ETOOLONG},
    {"value bad utf8", PUSH_VAL("a2 c3 28"), SPRO_EBADUTF8},
    {"value surrogate", PUSH_VAL("a3 ed b0 80"), SPRO_EBADUTF8},
    {"value bin", PUSH_VAL("c4 01 00"), SPRO_EBADTYPE},
    {"value empty bin", PUSH_VAL("c4 00"), SPRO_EBADTYPE},
    {"value float 32", PUSH_VAL("ca 3f 80 00 00"), SPRO_EBADTYPE},
    {"value float 64", PUSH_VAL("cb 3f f0 00 00 00 00 00 00"), SPRO_EBADTYPE},
    {"value array", PUSH_VAL("91 01"), SPRO_EBADTYPE},
    {"value empty array", PUSH_VAL("90"), SPRO_EBADTYPE},
    {"value map", PUSH_VAL("80"), SPRO_EBADTYPE},

    /* push_reply and results */
    {"results of 1001", PUSH_REPLY_HEAD "dc 03 e9 80*1001", SPRO_ETOOLONG},
    {"results a map", PUSH_REPLY_HEAD "80", SPRO_EBADTYPE},
    {"push_reply without results", "82" V0 T_PUSH_REPLY, SPRO_EMISSING},
    {"push_reply with ops", "84" V0 T_PUSH_REPLY K_RESULTS "90" K_OPS "90", SPRO_EUNKNOWNFIELD},
    {"result an array", PUSH_REPLY_HEAD "91 90", SPRO_EBADTYPE},
    {"result empty", PUSH_REPLY_HEAD "91 80", SPRO_EMISSING},
    {"result without seq", PUSH_REPLY_1("82", K_STATUS S_ACK K_VER VER1), SPRO_EMISSING},
    {"result without status", PUSH_REPLY_1("82", K_SEQ "01" K_VER VER1), SPRO_EMISSING},
    {"result seq 0", PUSH_REPLY_1("83", K_SEQ "00" K_STATUS S_ACK K_VER VER1), SPRO_ERANGE},
    {"result unknown key", PUSH_REPLY_1("84", K_SEQ "01" K_STATUS S_ACK K_VER VER1 K_X "00"),
     SPRO_EUNKNOWNFIELD},
    {"status unknown", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS "a4 6e 6f 70 65" K_VER VER1),
     SPRO_ERANGE},
    {"status ACK", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS "a3 41 43 4b" K_VER VER1), SPRO_ERANGE},
    {"status empty", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS "a0" K_VER VER1), SPRO_ERANGE},
    {"status ack with a NUL", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS "a4 61 63 6b 00" K_VER VER1),
     SPRO_ERANGE},
    {"status an int", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS "00" K_VER VER1), SPRO_EBADTYPE},
    {"status bad utf8", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS "a1 ff" K_VER VER1), SPRO_EBADUTF8},
    {"ack without ver", PUSH_REPLY_1("82", K_SEQ "01" K_STATUS S_ACK), SPRO_EMISSING},
    {"ack with code", PUSH_REPLY_1("84", K_SEQ "01" K_STATUS S_ACK K_VER VER1 K_CODE "a1 78"),
     SPRO_EUNKNOWNFIELD},
    {"ack with fields", PUSH_REPLY_1("84", K_SEQ "01" K_STATUS S_ACK K_VER VER1 FIELDS_F),
     SPRO_EUNKNOWNFIELD},
    {"ack with code, without ver", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_ACK K_CODE "a1 78"),
     SPRO_EMISSING},
    {"conflict without fields", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1),
     SPRO_EMISSING},
    {"conflict without ver", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_CONFLICT FIELDS_F),
     SPRO_EMISSING},
    {"conflict with code",
     PUSH_REPLY_1("85", K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1 K_CODE "a1 78" FIELDS_F),
     SPRO_EUNKNOWNFIELD},
    {"reject without code", PUSH_REPLY_1("82", K_SEQ "01" K_STATUS S_REJECT), SPRO_EMISSING},
    {"reject with ver", PUSH_REPLY_1("84", K_SEQ "01" K_STATUS S_REJECT K_CODE "a1 78" K_VER VER1),
     SPRO_EUNKNOWNFIELD},
    {"reject with fields", PUSH_REPLY_1("84", K_SEQ "01" K_STATUS S_REJECT K_CODE "a1 78" FIELDS_F),
     SPRO_EUNKNOWNFIELD},
    {"reject with ver, without code", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_REJECT K_VER VER1),
     SPRO_EUNKNOWNFIELD}, /* ver comes before code in the matrix */
    {"reject code empty", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_REJECT K_CODE "a0"),
     SPRO_ERANGE},
    {"reject code of 65", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_REJECT K_CODE "d9 41 61*65"),
     SPRO_ETOOLONG},
    {"reject code a bin", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_REJECT K_CODE "c4 01 78"),
     SPRO_EBADTYPE},
    {"bad ver of an ack, before the matrix",
     PUSH_REPLY_1("84", K_SEQ "01" K_STATUS S_ACK K_VER "91 01" K_CODE "a1 78"), SPRO_ERANGE},
    {"result ver a map", PUSH_REPLY_1("83", K_SEQ "01" K_STATUS S_ACK K_VER "80"), SPRO_EBADTYPE},

    /* fields and siblings (of a conflict) */
    {"fields empty", CONFLICT_FIELDS("80"), SPRO_ERANGE},
    {"fields an array", CONFLICT_FIELDS("91" SIB_MIN), SPRO_EBADTYPE},
    {"fields of 65 equal names", CONFLICT_FIELDS("de 00 41 (a1 61 91" SIB_MIN ")*65"),
     SPRO_EDUPKEY},
    {"field name empty", CONFLICT_FIELDS("81 a0 91" SIB_MIN), SPRO_ERANGE},
    {"field name of 65", CONFLICT_FIELDS("81 d9 41 61*65 91" SIB_MIN), SPRO_ETOOLONG},
    {"field name nil", CONFLICT_FIELDS("81 c0 91" SIB_MIN), SPRO_EBADTYPE},
    {"field names twice", CONFLICT_FIELDS("82 a1 66 91" SIB_MIN "a1 66 91" SIB_MIN), SPRO_EDUPKEY},
    {"siblings empty", CONFLICT_SIBS("90"), SPRO_ERANGE},
    {"siblings of 33", CONFLICT_SIBS("dc 00 21 (" SIB_MIN ")*33"), SPRO_ETOOLONG},
    {"siblings a map", CONFLICT_SIBS("81" K_VAL "c0"), SPRO_EBADTYPE},
    {"sibling an array", CONFLICT_SIBS("91 93 c0" VER1 "a1 62"), SPRO_EBADTYPE},
    {"sibling without val", CONFLICT_SIBS("91 82" K_VER VER1 K_BY "a1 62"), SPRO_EMISSING},
    {"sibling without ver", CONFLICT_SIBS("91 82" K_VAL "c0" K_BY "a1 62"), SPRO_EMISSING},
    {"sibling without by", CONFLICT_SIBS("91 82" K_VAL "c0" K_VER VER1), SPRO_EMISSING},
    {"sibling unknown key", CONFLICT_SIBS("91 84" K_VAL "c0" K_VER VER1 K_BY "a1 62" K_BASE "90"),
     SPRO_EUNKNOWNFIELD},
    {"sibling by empty", CONFLICT_SIBS("91 83" K_VAL "c0" K_VER VER1 K_BY "a0"), SPRO_ERANGE},
    {"sibling by of 65", CONFLICT_SIBS("91 83" K_VAL "c0" K_VER VER1 K_BY "d9 41 61*65"),
     SPRO_ETOOLONG},
    {"sibling val a float", CONFLICT_SIBS("91 83" K_VAL "ca 00 00 00 00" K_VER VER1 K_BY "a1 62"),
     SPRO_EBADTYPE},
    {"sibling val 2^63",
     CONFLICT_SIBS("91 83" K_VAL "cf 80 00 00 00 00 00 00 00" K_VER VER1 K_BY "a1 62"),
     SPRO_ERANGE},
    {"sibling ver of 1", CONFLICT_SIBS("91 83" K_VAL "c0" K_VER "91 01" K_BY "a1 62"), SPRO_ERANGE},
    {"second sibling bad", CONFLICT_SIBS("92" SIB_MIN "80"), SPRO_EMISSING},

    /* pull */
    {"pull without limit", "83" V0 T_PULL K_CURSOR "c4 00", SPRO_EMISSING},
    {"pull without cursor", "83" V0 T_PULL K_LIMIT "01", SPRO_EMISSING},
    {"pull with more", "85" V0 T_PULL K_CURSOR "c4 00" K_LIMIT "01" K_MORE "c2",
     SPRO_EUNKNOWNFIELD},
    {"cursor of 33", "84" V0 T_PULL K_CURSOR "c4 21 00*33" K_LIMIT "01", SPRO_ETOOLONG},
    {"cursor a str", "84" V0 T_PULL K_CURSOR "a0" K_LIMIT "01", SPRO_EBADTYPE},
    {"cursor nil", "84" V0 T_PULL K_CURSOR "c0" K_LIMIT "01", SPRO_EBADTYPE},
    {"limit 0", "84" V0 T_PULL K_CURSOR "c4 00" K_LIMIT "00", SPRO_ERANGE},
    {"limit 1001", "84" V0 T_PULL K_CURSOR "c4 00" K_LIMIT "cd 03 e9", SPRO_ERANGE},
    {"limit -1", "84" V0 T_PULL K_CURSOR "c4 00" K_LIMIT "ff", SPRO_ERANGE},
    {"limit a bool", "84" V0 T_PULL K_CURSOR "c4 00" K_LIMIT "c3", SPRO_EBADTYPE},

    /* pull_reply and records */
    {"records of 1001", PULL_REPLY_HEAD "dc 03 e9 80*1001" PULL_REPLY_TAIL, SPRO_ETOOLONG},
    {"records a map", PULL_REPLY_HEAD "80" PULL_REPLY_TAIL, SPRO_EBADTYPE},
    {"pull_reply without more", "84" V0 T_PULL_REPLY K_RECORDS "90" K_CURSOR "c4 00",
     SPRO_EMISSING},
    {"pull_reply without cursor", "84" V0 T_PULL_REPLY K_RECORDS "90" K_MORE "c2", SPRO_EMISSING},
    {"pull_reply without records", "84" V0 T_PULL_REPLY K_CURSOR "c4 00" K_MORE "c2",
     SPRO_EMISSING},
    {"more an int", "85" V0 T_PULL_REPLY K_RECORDS "90" K_CURSOR "c4 00" K_MORE "00",
     SPRO_EBADTYPE},
    {"more nil", "85" V0 T_PULL_REPLY K_RECORDS "90" K_CURSOR "c4 00" K_MORE "c0", SPRO_EBADTYPE},
    {"reply cursor of 33", "85" V0 T_PULL_REPLY K_RECORDS "90" K_CURSOR "c4 21 00*33" K_MORE "c2",
     SPRO_ETOOLONG},
    {"reset false", "86" V0 T_PULL_REPLY K_RECORDS "90" PULL_REPLY_TAIL K_RESET "c2", SPRO_ERANGE},
    {"reset an int", "86" V0 T_PULL_REPLY K_RECORDS "90" PULL_REPLY_TAIL K_RESET "01",
     SPRO_EBADTYPE},
    {"reset with a record",
     "86" V0 T_PULL_REPLY K_RECORDS "91" REC_MIN PULL_REPLY_TAIL K_RESET "c3", SPRO_ERANGE},
    {"reset with more",
     "86" V0 T_PULL_REPLY K_RECORDS "90" K_CURSOR "c4 00" K_MORE "c3" K_RESET "c3", SPRO_ERANGE},
    {"reset without more", "85" V0 T_PULL_REPLY K_RECORDS "90" K_CURSOR "c4 00" K_RESET "c3",
     SPRO_EMISSING},
    {"record an array", PULL_REPLY_HEAD "91 90" PULL_REPLY_TAIL, SPRO_EBADTYPE},
    {"record empty", PULL_REPLY_HEAD "91 80" PULL_REPLY_TAIL, SPRO_EMISSING},
    {"record without removed", PULL_REPLY_1("84", REC_HEAD K_FIELDS "80"), SPRO_EMISSING},
    {"record without fields", PULL_REPLY_1("84", REC_HEAD K_REMOVED "c2"), SPRO_EMISSING},
    {"record without rtype",
     PULL_REPLY_1("84", K_RID UUID_A K_BEN UUID_A K_FIELDS "80" K_REMOVED "c2"), SPRO_EMISSING},
    {"record unknown key", PULL_REPLY_1("86", REC_HEAD K_FIELDS "80" K_REMOVED "c2" K_SEQ "01"),
     SPRO_EUNKNOWNFIELD},
    {"record removed with a field",
     PULL_REPLY_1("85", REC_HEAD K_FIELDS "81 a1 66 91" SIB_MIN K_REMOVED "c3"), SPRO_ERANGE},
    {"record removed with a field, removed first",
     PULL_REPLY_1("85", K_REMOVED "c3" REC_HEAD K_FIELDS "81 a1 66 91" SIB_MIN), SPRO_ERANGE},
    {"record removed an int", PULL_REPLY_1("85", REC_HEAD K_FIELDS "80" K_REMOVED "01"),
     SPRO_EBADTYPE},
    {"record rtype of 33",
     PULL_REPLY_1("85",
                  K_RTYPE "d9 21 61*33" K_RID UUID_A K_BEN UUID_A K_FIELDS "80" K_REMOVED "c2"),
     SPRO_ETOOLONG},
    {"record rid bad",
     PULL_REPLY_1("85",
                  K_RTYPE "a1 72" K_RID "d9 24 61*36" K_BEN UUID_A K_FIELDS "80" K_REMOVED "c2"),
     SPRO_ERANGE},
    {"record ben bad",
     PULL_REPLY_1("85", K_RTYPE "a1 72" K_RID UUID_A K_BEN "a1 61" K_FIELDS "80" K_REMOVED "c2"),
     SPRO_ERANGE},
    {"record fields of 65 equal names",
     PULL_REPLY_1("85", REC_HEAD K_FIELDS "de 00 41 (a1 61 91" SIB_MIN ")*65" K_REMOVED "c2"),
     SPRO_EDUPKEY},
    {"record field without siblings",
     PULL_REPLY_1("85", REC_HEAD K_FIELDS "81 a1 66 90" K_REMOVED "c2"), SPRO_ERANGE},
};

static void test_decode_positive(void)
{
    for (size_t k = 0; k < sizeof(positives) / sizeof(positives[0]); k++)
        CASE_EQ(positives[k].name, decode_sync_hex(positives[k].hex, NULL), positives[k].err);
}

static void test_decode_negative(void)
{
    for (size_t k = 0; k < sizeof(negatives) / sizeof(negatives[0]); k++) {
        size_t used;
        int err = decode_sync_hex(negatives[k].hex, &used);
        CASE_EQ(negatives[k].name, err, negatives[k].err);
        CHECK_EQ(used, 0); /* given back */
    }
}

/* n entries of distinct names "aa", "ab", ..., each followed by entry_hex
 * (the tables cannot spell distinct names with repetition). */
static void entries_of(struct spro_buf *b, unsigned n, const char *entry_hex)
{
    for (unsigned k = 0; k < n; k++) {
        uint8_t name[3] = {0xa2, (uint8_t)('a' + k / 26), (uint8_t)('a' + k % 26)};
        spro_buf_append(b, name, 3);
        hexcat(b, entry_hex);
    }
}

/* A map 16 of those n entries. */
static void set_of(struct spro_buf *b, unsigned n, const char *entry_hex)
{
    uint8_t head[3] = {0xde, (uint8_t)(n >> 8), (uint8_t)n};
    spro_buf_append(b, head, 3);
    entries_of(b, n, entry_hex);
}

static int decode_buf(const struct spro_buf *b, size_t *used)
{
    uint8_t *p = copy_exact(b->data, b->len);
    struct spro_arena a = arena_for(b->len);
    struct spro_msg m;
    int err = spro_proto_decode_sync(p, b->len, &a, &m);
    if (used != NULL)
        *used = a.len;
    free(a.base);
    free(p);
    return err;
}

static void test_decode_counts(void)
{
    static const struct {
        const char *name, *head, *entry, *tail;
        unsigned n;
        int err;
    } cases[] = {
        {"set of 64", PUSH_HEAD "91 87" OP_HEAD K_SET, EDIT_NIL, "", 64, 0},
        {"set of 65", PUSH_HEAD "91 87" OP_HEAD K_SET, EDIT_NIL, "", 65, SPRO_ETOOLONG},
        {"conflict fields of 64",
         PUSH_REPLY_HEAD "91 84" K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1 K_FIELDS, "91" SIB_MIN,
         "", 64, 0},
        {"conflict fields of 65",
         PUSH_REPLY_HEAD "91 84" K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1 K_FIELDS, "91" SIB_MIN,
         "", 65, SPRO_ETOOLONG},
        {"record fields of 64", PULL_REPLY_HEAD "91 85" REC_HEAD K_FIELDS, "91" SIB_MIN,
         K_REMOVED "c2" PULL_REPLY_TAIL, 64, 0},
        {"record fields of 65", PULL_REPLY_HEAD "91 85" REC_HEAD K_FIELDS, "91" SIB_MIN,
         K_REMOVED "c2" PULL_REPLY_TAIL, 65, SPRO_ETOOLONG},
        {"removed record fields of 64", PULL_REPLY_HEAD "91 85" REC_HEAD K_FIELDS, "91" SIB_MIN,
         K_REMOVED "c3" PULL_REPLY_TAIL, 64, SPRO_ERANGE},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct spro_buf b = {0};
        hexcat(&b, cases[k].head);
        set_of(&b, cases[k].n, cases[k].entry);
        hexcat(&b, cases[k].tail);
        int err = decode_buf(&b, NULL);
        spro_buf_free(&b);
        CASE_EQ(cases[k].name, err, cases[k].err);
    }
}

/* ---- Values ---- */

/* Decodes a push whose one value is the hex given, and returns that value
 * in *v, its raw copied into rawbuf (s is not kept: it would dangle). */
static int decode_value(const char *hex, struct spro_value *v, uint8_t *rawbuf, size_t rawcap)
{
    struct spro_buf b = {0};
    hexcat(&b, PUSH_HEAD "91 87" OP_HEAD K_SET "81 a1 66 82" K_VAL);
    hexcat(&b, hex);
    hexcat(&b, K_BASE "90");
    struct input in = {copy_exact(b.data, b.len), b.len};
    spro_buf_free(&b);
    struct spro_arena a = arena_for(in.len);
    struct spro_msg m;
    int err = spro_proto_decode_sync(in.p, in.len, &a, &m);
    if (err == 0) {
        *v = m.u.push.ops[0].set[0].val;
        if (v->raw.len > rawcap)
            SPRO_BUG("raw too long for the test");
        memcpy(rawbuf, v->raw.p, v->raw.len);
        v->raw.p = rawbuf;
        v->s.p = NULL;
    }
    free(a.base);
    input_free(&in);
    return err;
}

static void test_values_decode(void)
{
    static const struct {
        const char *hex;
        enum spro_value_kind kind;
        int64_t i; /* int value, bool 0/1, or str length */
    } cases[] = {
        {"c0", SPRO_VALUE_NIL, 0},
        {"c2", SPRO_VALUE_BOOL, 0},
        {"c3", SPRO_VALUE_BOOL, 1},
        {"00", SPRO_VALUE_INT, 0},
        {"7f", SPRO_VALUE_INT, 127},
        {"ff", SPRO_VALUE_INT, -1},
        {"e0", SPRO_VALUE_INT, -32},
        {"cc ff", SPRO_VALUE_INT, 255},
        {"cd ff ff", SPRO_VALUE_INT, 65535},
        {"ce ff ff ff ff", SPRO_VALUE_INT, 4294967295},
        {"cf 7f ff ff ff ff ff ff ff", SPRO_VALUE_INT, INT64_MAX},
        {"d0 80", SPRO_VALUE_INT, -128},
        {"d0 05", SPRO_VALUE_INT, 5}, /* a non-negative value in an int type */
        {"d1 80 00", SPRO_VALUE_INT, -32768},
        {"d2 80 00 00 00", SPRO_VALUE_INT, INT32_MIN},
        {"d3 80 00 00 00 00 00 00 00", SPRO_VALUE_INT, INT64_MIN},
        {"d3 7f ff ff ff ff ff ff ff", SPRO_VALUE_INT, INT64_MAX},
        {"cf 00 00 00 00 00 00 00 00", SPRO_VALUE_INT, 0},
        {"a0", SPRO_VALUE_STR, 0},
        {"d9 00", SPRO_VALUE_STR, 0},
        {"da 00 03 61 62 63", SPRO_VALUE_STR, 3},
        {"da 10 00 61*4096", SPRO_VALUE_STR, 4096},
    };
    static uint8_t raw[8192];
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct spro_value v;
        int err = decode_value(cases[k].hex, &v, raw, sizeof raw);
        CASE_EQ(cases[k].hex, err, 0);
        struct input want = unhex(cases[k].hex);
        CHECK_EQ(v.kind, cases[k].kind);
        CHECK_BYTES(v.raw.p, v.raw.len, want.p, want.len); /* raw: exactly the value */
        input_free(&want);
        if (v.kind == SPRO_VALUE_BOOL)
            CHECK_EQ(v.b, cases[k].i);
        if (v.kind == SPRO_VALUE_INT)
            CHECK(v.i == cases[k].i);
        if (v.kind == SPRO_VALUE_STR)
            CHECK_EQ(v.s.len, cases[k].i);
    }
}

/* Values built from kind encode in their smallest form. */
static void test_values_encode(void)
{
    fill_longtext();
    static const struct {
        struct spro_value v;
        const char *hex;
    } cases[] = {
        {VAL_NIL, "c0"},
        {VAL_BOOL(false), "c2"},
        {VAL_BOOL(true), "c3"},
        {VAL_INT(0), "00"},
        {VAL_INT(127), "7f"},
        {VAL_INT(128), "cc 80"},
        {VAL_INT(255), "cc ff"},
        {VAL_INT(256), "cd 01 00"},
        {VAL_INT(65535), "cd ff ff"},
        {VAL_INT(65536), "ce 00 01 00 00"},
        {VAL_INT(4294967295), "ce ff ff ff ff"},
        {VAL_INT(4294967296), "cf 00 00 00 01 00 00 00 00"},
        {VAL_INT(INT64_MAX), "cf 7f ff ff ff ff ff ff ff"},
        {VAL_INT(-1), "ff"},
        {VAL_INT(-32), "e0"},
        {VAL_INT(-33), "d0 df"},
        {VAL_INT(-128), "d0 80"},
        {VAL_INT(-129), "d1 ff 7f"},
        {VAL_INT(-300), "d1 fe d4"},
        {VAL_INT(-32768), "d1 80 00"},
        {VAL_INT(-32769), "d2 ff ff 7f ff"},
        {VAL_INT(INT32_MIN), "d2 80 00 00 00"},
        {VAL_INT((int64_t)INT32_MIN - 1), "d3 ff ff ff ff 7f ff ff ff"},
        {VAL_INT(INT64_MIN), "d3 80 00 00 00 00 00 00 00"},
        {VAL_STR(""), "a0"},
        {VAL_STR("abc"), "a3 61 62 63"},
        {VAL_STR("0123456789abcdef0123456789abcde"), "bf 30 31 32 33 34 35 36 37 38 39 61 62 63 64"
                                                     " 65 66 30 31 32 33 34 35 36 37 38 39 61 62 63"
                                                     " 64 65"},
        {VAL_STR("0123456789abcdef0123456789abcdef"),
         "d9 20 30 31 32 33 34 35 36 37 38 39 61 62 63"
         " 64 65 66 30 31 32 33 34 35 36 37 38 39 61 62"
         " 63 64 65 66"},
        {{.kind = SPRO_VALUE_STR, .s = {(const uint8_t *)longtext, 255}}, "d9 ff 7a*255"},
        {{.kind = SPRO_VALUE_STR, .s = {(const uint8_t *)longtext, 256}}, "da 01 00 7a*256"},
        {{.kind = SPRO_VALUE_STR, .s = {(const uint8_t *)longtext, 4096}}, "da 10 00 7a*4096"},
        /* kind says which member counts: the others are ignored */
        {{.kind = SPRO_VALUE_NIL, .b = true, .i = 5, .s = BYTES("x")}, "c0"},
        {{.kind = SPRO_VALUE_INT, .b = true, .i = 5, .s = BYTES("x")}, "05"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct spro_wire_edit edit = {BYTES("f"), cases[k].v, NULL, 0};
        struct spro_wire_op op = {1, BYTES("r"), BYTES(U1), BYTES(U1), 1, 1, &edit, 1};
        struct spro_msg m = {.type = SPRO_MSG_PUSH, .u.push = {&op, 1}};
        struct spro_buf out = {0};
        CASE_EQ(cases[k].hex, spro_proto_encode(&m, &out), 0);
        /* decode to find the value's bytes: raw */
        struct spro_arena a = arena_for(out.len);
        struct spro_msg d;
        int err = spro_proto_decode_sync(out.data, out.len, &a, &d);
        struct input want = unhex(cases[k].hex);
        bool same = err == 0 && d.u.push.ops[0].set[0].val.raw.len == want.len &&
                    memcmp(d.u.push.ops[0].set[0].val.raw.p, want.p, want.len) == 0;
        bool equal = err == 0 && spro_proto_msg_equal(&d, &m);
        free(a.base);
        input_free(&want);
        spro_buf_free(&out);
        CASE_EQ(cases[k].hex, err, 0);
        if (!same)
            fprintf(stderr, "case \"%s\": other bytes\n", cases[k].hex);
        CHECK(same);
        CHECK(equal);
    }
}

/* raw, when set, is checked and sent verbatim; kind and the rest are
 * ignored. */
static void test_values_raw(void)
{
    static uint8_t big[3 + SPRO_SYNC_MAX_VALUE + 1];
    big[0] = 0xda;
    big[1] = 0x10;
    big[2] = 0x01;
    memset(big + 3, 'a', SPRO_SYNC_MAX_VALUE + 1);
    static const uint8_t max_ok[] = {0xda, 0x00, 0x01, 'a'};
    static const struct {
        const char *name;
        struct spro_bytes raw;
        int err;
    } cases[] = {
        {"nil", BYTES("\xc0"), 0},
        {"5 as int 64", BYTES("\xd3\x00\x00\x00\x00\x00\x00\x00\x05"), 0},
        {"5 as uint 16", BYTES("\xcd\x00\x05"), 0},
        {"str 16 of 1", {max_ok, sizeof max_ok}, 0},
        {"int64 min", BYTES("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), 0},
        {"2^63", BYTES("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"), SPRO_ERANGE},
        {"bin", BYTES("\xc4\x00"), SPRO_EBADTYPE},
        {"float", BYTES("\xca\x00\x00\x00\x00"), SPRO_EBADTYPE},
        {"array", BYTES("\x90"), SPRO_EBADTYPE},
        {"map", BYTES("\x80"), SPRO_EBADTYPE},
        {"ext", BYTES("\xd4\x01\x00"), SPRO_EBADTYPE},
        {"c1", BYTES("\xc1"), SPRO_EMALFORMED},
        {"two values", BYTES("\x01\x02"), SPRO_ETRAILING},
        {"cut str", BYTES("\xa2\x61"), SPRO_ETRUNCATED},
        {"cut int", BYTES("\xcd\x00"), SPRO_ETRUNCATED},
        {"empty", {(const uint8_t *)"", 0}, SPRO_ETRUNCATED},
        {"bad utf8", BYTES("\xa1\xff"), SPRO_EBADUTF8},
        {"str of 4097", {big, sizeof big}, SPRO_ETOOLONG},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        /* kind STR with a 4097-byte s: ignored, raw counts */
        struct spro_value v = {.kind = SPRO_VALUE_STR, .s = {big, sizeof big}, .raw = cases[k].raw};
        struct spro_wire_edit edit = {BYTES("f"), v, NULL, 0};
        struct spro_wire_op op = {1, BYTES("r"), BYTES(U1), BYTES(U1), 1, 1, &edit, 1};
        struct spro_msg m = {.type = SPRO_MSG_PUSH, .u.push = {&op, 1}};
        struct spro_buf out = {0};
        spro_buf_append(&out, "keep", 4);
        int err = spro_proto_encode(&m, &out);
        CASE_EQ(cases[k].name, err, cases[k].err);
        if (err != 0) {
            CHECK_BYTES(out.data, out.len, "keep", 4); /* nothing appended */
            spro_buf_free(&out);
            continue;
        }
        /* the raw bytes are in the output as they were, and decode back to them */
        struct spro_arena a = arena_for(out.len - 4);
        struct spro_msg d;
        err = spro_proto_decode_sync(out.data + 4, out.len - 4, &a, &d);
        CASE_EQ(cases[k].name, err, 0);
        const struct spro_value *dv = &d.u.push.ops[0].set[0].val;
        bool same = dv->raw.len == cases[k].raw.len &&
                    memcmp(dv->raw.p, cases[k].raw.p, cases[k].raw.len) == 0;
        bool equal = spro_proto_msg_equal(&d, &m);
        free(a.base);
        spro_buf_free(&out);
        CHECK(same);
        CHECK(equal);
    }

    /* A value built from kind equals the same value in any width. */
    struct spro_value five = VAL_INT(5);
    struct spro_value five_raw = {.kind = SPRO_VALUE_NIL,
                                  .raw = BYTES("\xd3\x00\x00\x00\x00\x00\x00\x00\x05")};
    struct spro_value six_raw = {.kind = SPRO_VALUE_INT, .i = 5, .raw = BYTES("\x06")};
    struct spro_wire_edit e1 = {BYTES("f"), five, NULL, 0}, e2 = {BYTES("f"), five_raw, NULL, 0},
                          e3 = {BYTES("f"), six_raw, NULL, 0};
    struct spro_wire_op o1 = {1, BYTES("r"), BYTES(U1), BYTES(U1), 1, 1, &e1, 1}, o2 = o1, o3 = o1;
    o2.set = &e2;
    o3.set = &e3;
    struct spro_msg m1 = {.type = SPRO_MSG_PUSH, .u.push = {&o1, 1}};
    struct spro_msg m2 = {.type = SPRO_MSG_PUSH, .u.push = {&o2, 1}};
    struct spro_msg m3 = {.type = SPRO_MSG_PUSH, .u.push = {&o3, 1}};
    CHECK(spro_proto_msg_equal(&m1, &m2));
    CHECK(!spro_proto_msg_equal(&m1, &m3)); /* raw says 6, whatever i says */
}

/* ---- Encoder refusals ---- */

/* A mutable push, push_reply and pull_reply, valid as built. */
struct fixture {
    struct spro_wire_version base[2];
    struct spro_wire_edit set[2];
    struct spro_wire_op ops[2];
    struct spro_wire_sibling sibs[2];
    struct spro_wire_field fields[2];
    struct spro_wire_result results[3];
    struct spro_wire_record records[2];
    struct spro_msg push, push_reply, pull, pull_reply;
};

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->base[0] = (struct spro_wire_version){1, BYTES("o")};
    f->base[1] = (struct spro_wire_version){2, BYTES("p")};
    f->set[0] = (struct spro_wire_edit){BYTES("f"), VAL_STR("x"), f->base, 2};
    f->set[1] = (struct spro_wire_edit){BYTES("g"), VAL_INT(-1), NULL, 0};
    for (int k = 0; k < 2; k++)
        f->ops[k] = (struct spro_wire_op){(uint64_t)k + 1, BYTES("r"), BYTES(U1), BYTES(U2), 1, 5,
                                          f->set,          2};
    f->sibs[0] = (struct spro_wire_sibling){VAL_NIL, {1, BYTES("o")}, BYTES("b")};
    f->sibs[1] = (struct spro_wire_sibling){VAL_BOOL(true), {2, BYTES("o")}, BYTES("b")};
    f->fields[0] = (struct spro_wire_field){BYTES("f"), f->sibs, 2};
    f->fields[1] = (struct spro_wire_field){BYTES("g"), f->sibs, 1};
    f->results[0] =
        (struct spro_wire_result){.seq = 1, .status = SPRO_RESULT_ACK, .ver = {1, BYTES("o")}};
    f->results[1] = (struct spro_wire_result){.seq = 2,
                                              .status = SPRO_RESULT_CONFLICT,
                                              .ver = {1, BYTES("o")},
                                              .fields = f->fields,
                                              .nfields = 2};
    f->results[2] = (struct spro_wire_result){
        .seq = 3, .status = SPRO_RESULT_REJECT, .code = BYTES("bad_value")};
    f->records[0] =
        (struct spro_wire_record){BYTES("r"), BYTES(U1), BYTES(U1), f->fields, 2, false};
    f->records[1] = (struct spro_wire_record){BYTES("r"), BYTES(U2), BYTES(U1), NULL, 0, true};
    f->push = (struct spro_msg){.type = SPRO_MSG_PUSH, .u.push = {f->ops, 2}};
    f->push_reply = (struct spro_msg){.type = SPRO_MSG_PUSH_REPLY, .u.push_reply = {f->results, 3}};
    f->pull = (struct spro_msg){.type = SPRO_MSG_PULL, .u.pull = {BYTES("c"), 10}};
    f->pull_reply = (struct spro_msg){.type = SPRO_MSG_PULL_REPLY,
                                      .u.pull_reply = {f->records, 2, BYTES("c"), true, false}};
}

enum which { PUSH, PUSH_REPLY, PULL, PULL_REPLY };

/* One change to a valid fixture message, and the code it must give. */
static void refused(const char *name, struct fixture *f, enum which w, int want)
{
    struct spro_msg *m = w == PUSH         ? &f->push
                         : w == PUSH_REPLY ? &f->push_reply
                         : w == PULL       ? &f->pull
                                           : &f->pull_reply;
    struct spro_buf out = {0};
    spro_buf_append(&out, "keep", 4);
    int err = spro_proto_encode(m, &out);
    CASE_EQ(name, err, want);
    CHECK_BYTES(out.data, out.len, "keep", 4);
    spro_buf_free(&out);
}

static void test_encode_refused(void)
{
    fill_longtext();
    const struct spro_bytes t33 = {(const uint8_t *)longtext, 33};
    const struct spro_bytes t65 = {(const uint8_t *)longtext, 65};
    const struct spro_bytes t4097 = {(const uint8_t *)longtext, 4097};
    static struct spro_wire_op many_ops[SPRO_SYNC_MAX_OPS + 1];
    static struct spro_wire_result many_results[SPRO_SYNC_MAX_OPS + 1];
    static struct spro_wire_record many_records[SPRO_SYNC_MAX_RECORDS + 1];
    static struct spro_wire_edit many_edits[SPRO_SYNC_MAX_FIELDS + 1];
    static struct spro_wire_field many_fields[SPRO_SYNC_MAX_FIELDS + 1];
    static struct spro_wire_version many_versions[SPRO_SYNC_MAX_SIBLINGS + 1];
    static struct spro_wire_sibling many_sibs[SPRO_SYNC_MAX_SIBLINGS + 1];
    static char names[SPRO_SYNC_MAX_FIELDS + 1][2];
    struct fixture f;

    /* The fixture itself encodes, and round trips. */
    fixture_init(&f);
    roundtrip_one("fixture push", &f.push);
    roundtrip_one("fixture push_reply", &f.push_reply);
    roundtrip_one("fixture pull", &f.pull);
    roundtrip_one("fixture pull_reply", &f.pull_reply);

    /* Each case: reset, change one thing, encode. */
#define REFUSED(name, w, want, ...)                                                                \
    do {                                                                                           \
        fixture_init(&f);                                                                          \
        __VA_ARGS__;                                                                               \
        refused(name, &f, w, want);                                                                \
    } while (0)

    REFUSED("no ops", PUSH, SPRO_ERANGE, f.push.u.push.nops = 0);
    for (size_t k = 0; k <= SPRO_SYNC_MAX_OPS; k++)
        many_ops[k] = f.ops[0];
    REFUSED("1001 ops", PUSH, SPRO_ETOOLONG,
            (f.push.u.push.ops = many_ops, f.push.u.push.nops = SPRO_SYNC_MAX_OPS + 1));
    REFUSED("seq 0", PUSH, SPRO_ERANGE, f.ops[1].seq = 0);
    REFUSED("seq 2^63", PUSH, SPRO_ERANGE, f.ops[1].seq = (uint64_t)INT64_MAX + 1);
    REFUSED("rtype empty", PUSH, SPRO_ERANGE, f.ops[1].rtype.len = 0);
    REFUSED("rtype of 33", PUSH, SPRO_ETOOLONG, f.ops[1].rtype = t33);
    REFUSED("rtype bad utf8", PUSH, SPRO_EBADUTF8,
            f.ops[1].rtype = (struct spro_bytes)BYTES("\xff"));
    REFUSED("rid short", PUSH, SPRO_ERANGE, f.ops[1].rid.len = 35);
    REFUSED("rid long", PUSH, SPRO_ETOOLONG, f.ops[1].rid = (struct spro_bytes)BYTES(U1 "0"));
    REFUSED("rid empty", PUSH, SPRO_ERANGE, f.ops[1].rid = (struct spro_bytes){NULL, 0});
    REFUSED("rid upper", PUSH, SPRO_ERANGE,
            f.ops[1].rid = (struct spro_bytes)BYTES("3F2504E0-4F89-41D3-9A0C-0305E82C3301"));
    REFUSED("ben no dashes", PUSH, SPRO_ERANGE,
            f.ops[1].ben = (struct spro_bytes)BYTES("3f2504e004f8941d39a0c00305e82c3301aa"));
    REFUSED("schema 0", PUSH, SPRO_ERANGE, f.ops[1].schema = 0);
    REFUSED("schema 2^31", PUSH, SPRO_ERANGE, f.ops[1].schema = 2147483648u);
    REFUSED("hlc 0", PUSH, SPRO_ERANGE, f.ops[1].hlc = 0);
    REFUSED("hlc 2^64-1", PUSH, SPRO_ERANGE, f.ops[1].hlc = UINT64_MAX);
    REFUSED("set empty", PUSH, SPRO_ERANGE, f.ops[1].nset = 0);
    for (size_t k = 0; k <= SPRO_SYNC_MAX_FIELDS; k++) {
        names[k][0] = (char)('0' + k);
        names[k][1] = 'n';
        many_edits[k] = (struct spro_wire_edit){{(const uint8_t *)names[k], 2}, VAL_NIL, NULL, 0};
        many_fields[k] = (struct spro_wire_field){{(const uint8_t *)names[k], 2}, f.sibs, 1};
    }
    REFUSED("set of 65", PUSH, SPRO_ETOOLONG, (f.ops[1].set = many_edits, f.ops[1].nset = 65));
    REFUSED("names twice", PUSH, SPRO_EDUPKEY, f.set[1].name = f.set[0].name);
    REFUSED("name empty", PUSH, SPRO_ERANGE, f.set[1].name.len = 0);
    REFUSED("name of 65", PUSH, SPRO_ETOOLONG, f.set[1].name = t65);
    REFUSED("name bad utf8", PUSH, SPRO_EBADUTF8,
            f.set[1].name = (struct spro_bytes)BYTES("\xed\xa0\x80"));
    for (size_t k = 0; k <= SPRO_SYNC_MAX_SIBLINGS; k++) {
        many_versions[k] = f.base[0];
        many_sibs[k] = f.sibs[0];
    }
    REFUSED("base of 33", PUSH, SPRO_ETOOLONG,
            (f.set[0].base = many_versions, f.set[0].nbase = 33));
    REFUSED("version hlc 0", PUSH, SPRO_ERANGE, f.base[1].hlc = 0);
    REFUSED("version hlc 2^63", PUSH, SPRO_ERANGE, f.base[1].hlc = (uint64_t)INT64_MAX + 1);
    REFUSED("origin empty", PUSH, SPRO_ERANGE, f.base[1].origin.len = 0);
    REFUSED("origin of 65", PUSH, SPRO_ETOOLONG, f.base[1].origin = t65);
    REFUSED("value str of 4097", PUSH, SPRO_ETOOLONG, f.set[0].val.s = t4097);
    REFUSED("value bad utf8", PUSH, SPRO_EBADUTF8,
            f.set[0].val.s = (struct spro_bytes)BYTES("\xc0\x80"));
    REFUSED("value raw a float", PUSH, SPRO_EBADTYPE,
            f.set[1].val.raw = (struct spro_bytes)BYTES("\xcb\x00\x00\x00\x00\x00\x00\x00\x00"));

    REFUSED("1001 results", PUSH_REPLY, SPRO_ETOOLONG,
            (f.push_reply.u.push_reply.results = many_results,
             f.push_reply.u.push_reply.nresults = SPRO_SYNC_MAX_OPS + 1));
    REFUSED("result seq 0", PUSH_REPLY, SPRO_ERANGE, f.results[2].seq = 0);
    REFUSED("ack ver hlc 0", PUSH_REPLY, SPRO_ERANGE, f.results[0].ver.hlc = 0);
    REFUSED("ack ver origin empty", PUSH_REPLY, SPRO_ERANGE, f.results[0].ver.origin.len = 0);
    REFUSED("conflict ver hlc 0", PUSH_REPLY, SPRO_ERANGE, f.results[1].ver.hlc = 0);
    REFUSED("conflict no fields", PUSH_REPLY, SPRO_ERANGE, f.results[1].nfields = 0);
    REFUSED("conflict 65 fields", PUSH_REPLY, SPRO_ETOOLONG,
            (f.results[1].fields = many_fields, f.results[1].nfields = 65));
    REFUSED("conflict fields twice", PUSH_REPLY, SPRO_EDUPKEY, f.fields[1].name = f.fields[0].name);
    REFUSED("field of no siblings", PUSH_REPLY, SPRO_ERANGE, f.fields[1].nsiblings = 0);
    REFUSED("field of 33 siblings", PUSH_REPLY, SPRO_ETOOLONG,
            (f.fields[1].siblings = many_sibs, f.fields[1].nsiblings = 33));
    REFUSED("field name of 65", PUSH_REPLY, SPRO_ETOOLONG, f.fields[1].name = t65);
    REFUSED("sibling by empty", PUSH_REPLY, SPRO_ERANGE, f.sibs[1].by.len = 0);
    REFUSED("sibling by of 65", PUSH_REPLY, SPRO_ETOOLONG, f.sibs[1].by = t65);
    REFUSED("sibling ver hlc 0", PUSH_REPLY, SPRO_ERANGE, f.sibs[1].ver.hlc = 0);
    REFUSED("sibling value raw trailing", PUSH_REPLY, SPRO_ETRAILING,
            f.sibs[1].val.raw = (struct spro_bytes)BYTES("\xc0\xc0"));
    REFUSED("reject code empty", PUSH_REPLY, SPRO_ERANGE, f.results[2].code.len = 0);
    REFUSED("reject code of 65", PUSH_REPLY, SPRO_ETOOLONG, f.results[2].code = t65);

    REFUSED("cursor of 33", PULL, SPRO_ETOOLONG, f.pull.u.pull.cursor = t33);
    REFUSED("limit 0", PULL, SPRO_ERANGE, f.pull.u.pull.limit = 0);
    REFUSED("limit 1001", PULL, SPRO_ERANGE, f.pull.u.pull.limit = 1001);

    REFUSED("1001 records", PULL_REPLY, SPRO_ETOOLONG,
            (f.pull_reply.u.pull_reply.records = many_records,
             f.pull_reply.u.pull_reply.nrecords = 1001));
    REFUSED("removed with fields", PULL_REPLY, SPRO_ERANGE, f.records[0].removed = true);
    REFUSED("record 65 fields", PULL_REPLY, SPRO_ETOOLONG,
            (f.records[0].fields = many_fields, f.records[0].nfields = 65));
    REFUSED("record rtype empty", PULL_REPLY, SPRO_ERANGE, f.records[1].rtype.len = 0);
    REFUSED("record rid bad", PULL_REPLY, SPRO_ERANGE,
            f.records[1].rid = (struct spro_bytes)BYTES("0b7e8c2a-1d3f-4a5b-8c6d-7e8f9a0b1c2g"));
    REFUSED("record ben long", PULL_REPLY, SPRO_ETOOLONG,
            f.records[1].ben = (struct spro_bytes)BYTES(U1 " "));
    REFUSED("record fields twice", PULL_REPLY, SPRO_EDUPKEY, f.fields[1].name = f.fields[0].name);
    REFUSED("record sibling raw bin", PULL_REPLY, SPRO_EBADTYPE,
            f.sibs[0].val.raw = (struct spro_bytes)BYTES("\xc4\x00"));
    REFUSED("reply cursor of 33", PULL_REPLY, SPRO_ETOOLONG,
            f.pull_reply.u.pull_reply.cursor = t33);
    REFUSED("reset with records", PULL_REPLY, SPRO_ERANGE, f.pull_reply.u.pull_reply.reset = true);
    REFUSED("reset with more", PULL_REPLY, SPRO_ERANGE,
            (f.pull_reply.u.pull_reply.nrecords = 0, f.pull_reply.u.pull_reply.reset = true));
#undef REFUSED

    /* Fields a result's status does not take are neither checked nor sent. */
    fixture_init(&f);
    f.results[0].code = t65;    /* ack: code ignored */
    f.results[0].nfields = 99;  /* ack: fields ignored */
    f.results[2].ver.hlc = 0;   /* reject: ver ignored */
    f.results[2].fields = NULL; /* reject: fields ignored */
    f.results[2].nfields = 1;
    f.results[1].code = t4097; /* conflict: code ignored */
    struct spro_buf a = {0}, b = {0};
    CHECK_EQ(spro_proto_encode(&f.push_reply, &a), 0);
    fixture_init(&f);
    CHECK_EQ(spro_proto_encode(&f.push_reply, &b), 0);
    CHECK_BYTES(a.data, a.len, b.data, b.len);
    spro_buf_free(&a);
    spro_buf_free(&b);
}

/* ---- Deep comparison ---- */

static void test_msg_equal(void)
{
    struct fixture f, g;
    fixture_init(&f);
    fixture_init(&g);
    CHECK(spro_proto_msg_equal(&f.push, &g.push));
    CHECK(spro_proto_msg_equal(&f.push_reply, &g.push_reply));
    CHECK(spro_proto_msg_equal(&f.pull, &g.pull));
    CHECK(spro_proto_msg_equal(&f.pull_reply, &g.pull_reply));
    CHECK(!spro_proto_msg_equal(&f.push, &g.push_reply));
    CHECK(!spro_proto_msg_equal(&f.pull, &g.pull_reply));

    /* Content is compared, not pointers. */
    char copy[] = "x";
    g.set[0].val.s = (struct spro_bytes){(const uint8_t *)copy, 1};
    CHECK(spro_proto_msg_equal(&f.push, &g.push));

    /* One difference anywhere, deep or not, makes them differ. */
#define DIFFERS(which, change)                                                                     \
    do {                                                                                           \
        fixture_init(&g);                                                                          \
        change;                                                                                    \
        if (spro_proto_msg_equal(&f.which, &g.which) || spro_proto_msg_equal(&g.which, &f.which))  \
            fprintf(stderr, "case \"%s\": equal\n", #change);                                      \
        CHECK(!spro_proto_msg_equal(&f.which, &g.which));                                          \
        CHECK(!spro_proto_msg_equal(&g.which, &f.which));                                          \
    } while (0)

    DIFFERS(push, g.push.u.push.nops = 1);
    DIFFERS(push, g.ops[1].seq = 9);
    DIFFERS(push, g.ops[1].rtype = (struct spro_bytes)BYTES("s"));
    DIFFERS(push, g.ops[1].rid = (struct spro_bytes)BYTES(U2));
    DIFFERS(push, g.ops[1].ben = (struct spro_bytes)BYTES(U2 "x"));
    DIFFERS(push, g.ops[1].schema = 2);
    DIFFERS(push, g.ops[1].hlc = 6);
    DIFFERS(push, g.ops[1].nset = 1);
    DIFFERS(push, g.set[1].name = (struct spro_bytes)BYTES("h"));
    DIFFERS(push, g.set[1].val.i = -2);
    DIFFERS(push, g.set[1].val.kind = SPRO_VALUE_NIL);
    DIFFERS(push, g.set[0].val.s = (struct spro_bytes)BYTES("y"));
    DIFFERS(push, g.set[0].nbase = 1);
    DIFFERS(push, g.base[1].hlc = 3);
    DIFFERS(push, g.base[1].origin = (struct spro_bytes)BYTES("q"));
    DIFFERS(push, g.set[1].val.raw = (struct spro_bytes)BYTES("\xfe"));
    DIFFERS(push_reply, g.push_reply.u.push_reply.nresults = 2);
    DIFFERS(push_reply, g.results[0].seq = 7);
    DIFFERS(push_reply, g.results[0].status = SPRO_RESULT_REJECT);
    DIFFERS(push_reply, g.results[0].ver.hlc = 2);
    DIFFERS(push_reply, g.results[1].ver.origin = (struct spro_bytes)BYTES("x"));
    DIFFERS(push_reply, g.results[1].nfields = 1);
    DIFFERS(push_reply, g.fields[1].name = (struct spro_bytes)BYTES("h"));
    DIFFERS(push_reply, g.fields[0].nsiblings = 1);
    DIFFERS(push_reply, g.sibs[1].val.b = false);
    DIFFERS(push_reply, g.sibs[1].ver.hlc = 3);
    DIFFERS(push_reply, g.sibs[1].by = (struct spro_bytes)BYTES("c"));
    DIFFERS(push_reply, g.results[2].code = (struct spro_bytes)BYTES("unknown_type"));
    DIFFERS(pull, g.pull.u.pull.cursor = (struct spro_bytes)BYTES("d"));
    DIFFERS(pull, g.pull.u.pull.cursor.len = 0);
    DIFFERS(pull, g.pull.u.pull.limit = 11);
    DIFFERS(pull_reply, g.pull_reply.u.pull_reply.nrecords = 1);
    DIFFERS(pull_reply, g.pull_reply.u.pull_reply.more = false);
    DIFFERS(pull_reply, g.pull_reply.u.pull_reply.cursor = (struct spro_bytes)BYTES("e"));
    DIFFERS(pull_reply, g.pull_reply.u.pull_reply.reset = true);
    DIFFERS(pull_reply, g.records[0].rtype = (struct spro_bytes)BYTES("s"));
    DIFFERS(pull_reply, g.records[0].rid = (struct spro_bytes)BYTES(U2));
    DIFFERS(pull_reply, g.records[0].ben = (struct spro_bytes)BYTES(U2));
    DIFFERS(pull_reply, g.records[0].nfields = 1);
    DIFFERS(pull_reply, g.records[1].removed = false);
    DIFFERS(pull_reply, g.sibs[0].val.kind = SPRO_VALUE_BOOL);
#undef DIFFERS

    /* Fields a status does not take are not compared. */
    fixture_init(&g);
    g.results[0].code = (struct spro_bytes)BYTES("zz");
    g.results[0].nfields = 5;
    g.results[2].ver.hlc = 77;
    CHECK(spro_proto_msg_equal(&f.push_reply, &g.push_reply));
}

/* ---- The arena ---- */

/* Decodes b with an arena of exactly SPRO_PROTO_ARENA_BYTES(len); returns
 * the code and the bytes taken. */
static void arena_case(const char *name, const struct spro_buf *b, int want)
{
    size_t used = 0;
    int err = decode_buf(b, &used);
    CASE_EQ(name, err, want);
    /* a success keeps what it took; a failure gives it back */
    if (want == 0)
        CHECK(used > 0 && used <= SPRO_PROTO_ARENA_BYTES(b->len));
    else
        CHECK_EQ(used, 0);
}

/* The largest element counts a byte length allows fit in the bound, and so
 * do inputs of one-byte elements that are refused only after their array
 * was taken. */
static void test_arena_bound(void)
{
    struct spro_buf b = {0};

    /* 1000 minimal ops: 1000 x 88 bytes on LP64 (ops) + 1000 x 80 (edits). */
    hexcat(&b, PUSH_HEAD "dc 03 e8 (" OP_MIN ")*1000");
    arena_case("1000 minimal ops", &b, 0);
    spro_buf_free(&b);

    /* 1000 one-byte ops, refused (MISSING) once the array is taken: the
     * worst ratio of arena to input (88 / 1 per op). */
    hexcat(&b, PUSH_HEAD "dc 03 e8 80*1000");
    arena_case("1000 empty ops", &b, SPRO_EMISSING);
    spro_buf_free(&b);

    /* A record of 64 fields x 32 minimal siblings. */
    hexcat(&b, PULL_REPLY_HEAD "91 85" REC_HEAD K_FIELDS);
    set_of(&b, 64, "dc 00 20 (" SIB_MIN ")*32");
    hexcat(&b, K_REMOVED "c2" PULL_REPLY_TAIL);
    arena_case("64 fields x 32 siblings", &b, 0);
    spro_buf_free(&b);

    /* A conflict of 64 fields x 32 siblings, the first of one-byte siblings. */
    hexcat(&b, PUSH_REPLY_HEAD "91 84" K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1 K_FIELDS
                               "de 00 40 a2 5a 5a dc 00 20 80*32");
    entries_of(&b, 63, "dc 00 20 (" SIB_MIN ")*32");
    arena_case("32 empty siblings", &b, SPRO_EMISSING);
    spro_buf_free(&b);

    /* 1000 conflicts of 1 field of 32 minimal siblings (groups do not nest:
     * one op at a time). */
    hexcat(&b, PUSH_REPLY_HEAD "dc 03 e8");
    for (int k = 0; k < 1000; k++) {
        hexcat(&b, "84" K_SEQ "01" K_STATUS S_CONFLICT K_VER VER1 K_FIELDS "81 a1 66 dc 00 20");
        hexcat(&b, "(" SIB_MIN ")*32");
    }
    arena_case("1000 conflicts of 32 siblings", &b, 0);
    spro_buf_free(&b);

    /* 1000 minimal records, and 1000 one-byte ones. */
    hexcat(&b, PULL_REPLY_HEAD "dc 03 e8 (" REC_MIN ")*1000" PULL_REPLY_TAIL);
    arena_case("1000 minimal records", &b, 0);
    spro_buf_free(&b);
    hexcat(&b, PULL_REPLY_HEAD "dc 03 e8 80*1000" PULL_REPLY_TAIL);
    arena_case("1000 empty records", &b, SPRO_EMISSING);
    spro_buf_free(&b);

    /* 64 edits of 32 versions of base. */
    hexcat(&b, PUSH_HEAD "91 87" OP_HEAD K_SET);
    set_of(&b, 64, "82" K_VAL "c0" K_BASE "dc 00 20 (92 01 a1 6f)*32");
    arena_case("64 edits x 32 versions", &b, 0);
    spro_buf_free(&b);

    /* Arrays of 1-byte versions, refused after they are taken. */
    hexcat(&b, PUSH_BASE("dc 00 20 01*32"));
    arena_case("32 one-byte versions", &b, SPRO_EBADTYPE);
    spro_buf_free(&b);
}

/* An arena too small: SPRO_ENOMEM, and the arena as it was, its used bytes
 * wiped.  An arena that starts misaligned, or partly taken, still works
 * and gives aligned arrays. */
static void test_arena_edges(void)
{
    struct input in = unhex(GOLDEN_PUSH_REPLY);
    size_t cap = SPRO_PROTO_ARENA_BYTES(in.len);
    uint8_t *mem = xmalloc(cap + 16);
    struct spro_msg m;

    /* What the golden takes, from an aligned arena. */
    struct spro_arena a = {mem, 0, cap};
    CHECK_EQ(spro_proto_decode_sync(in.p, in.len, &a, &m), 0);
    size_t need = a.len;
    CHECK(need > 0);

    /* One byte short: refused, given back, wiped. */
    memset(mem, 0x5a, cap + 16);
    a = (struct spro_arena){mem, 0, need - 1};
    CHECK_EQ(spro_proto_decode_sync(in.p, in.len, &a, &m), SPRO_ENOMEM);
    CHECK_EQ(a.len, 0);
    bool wiped = true;
    size_t touched = 0;
    for (size_t k = 0; k < need - 1; k++)
        if (mem[k] != 0x5a)
            touched++, wiped = wiped && mem[k] == 0;
    CHECK(wiped);
    CHECK(touched > 0);

    /* Exactly enough. */
    a = (struct spro_arena){mem, 0, need};
    CHECK_EQ(spro_proto_decode_sync(in.p, in.len, &a, &m), 0);
    CHECK_EQ(a.len, need);

    /* Misaligned base, some bytes already taken: arrays still aligned, and
     * what was taken before is left alone. */
    memset(mem, 0x77, 8);
    a = (struct spro_arena){mem + 1, 3, cap};
    CHECK_EQ(spro_proto_decode_sync(in.p, in.len, &a, &m), 0);
    CHECK((uintptr_t)m.u.push_reply.results % _Alignof(struct spro_wire_result) == 0);
    CHECK((uintptr_t)m.u.push_reply.results[1].fields % _Alignof(struct spro_wire_field) == 0);
    CHECK((uintptr_t)m.u.push_reply.results[1].fields[0].siblings %
              _Alignof(struct spro_wire_sibling) ==
          0);
    CHECK((const uint8_t *)m.u.push_reply.results >= mem + 4);
    CHECK(mem[1] == 0x77 && mem[2] == 0x77 && mem[3] == 0x77);
    CHECK(a.len <= 3 + need + _Alignof(struct spro_wire_result));
    CHECK(spro_proto_msg_equal(&m, &goldens[1].msg));

    /* A failure after some bytes were taken leaves those bytes alone. */
    struct input bad = unhex(PUSH_REPLY_HEAD "92" RESULT_ACK "80");
    a = (struct spro_arena){mem, 8, cap};
    memset(mem, 0x77, 8);
    CHECK_EQ(spro_proto_decode_sync(bad.p, bad.len, &a, &m), SPRO_EMISSING);
    CHECK_EQ(a.len, 8);
    CHECK(mem[0] == 0x77 && mem[7] == 0x77);
    input_free(&bad);

    /* No arena memory at all: fine for a message without arrays... */
    struct input pull = unhex(GOLDEN_PULL);
    a = (struct spro_arena){NULL, 0, 0};
    CHECK_EQ(spro_proto_decode_sync(pull.p, pull.len, &a, &m), 0);
    CHECK_EQ(m.u.pull.limit, 100);
    input_free(&pull);
    /* ...and for empty arrays; SPRO_ENOMEM for any other. */
    struct input empty = unhex(PUSH_REPLY_HEAD "90");
    CHECK_EQ(spro_proto_decode_sync(empty.p, empty.len, &a, &m), 0);
    CHECK_EQ(m.u.push_reply.nresults, 0);
    CHECK(m.u.push_reply.results == NULL);
    input_free(&empty);
    CHECK_EQ(spro_proto_decode_sync(in.p, in.len, &a, &m), SPRO_ENOMEM);

    free(mem);
    input_free(&in);
}

static const struct check_test tests[] = {
    {"golden_encode", test_golden_encode},
    {"golden_decode", test_golden_decode},
    {"golden_prefixes", test_golden_prefixes},
    {"golden_raw", test_golden_raw},
    {"golden_absent", test_golden_absent},
    {"roundtrip", test_roundtrip},
    {"types", test_types},
    {"decode_positive", test_decode_positive},
    {"decode_negative", test_decode_negative},
    {"decode_counts", test_decode_counts},
    {"values_decode", test_values_decode},
    {"values_encode", test_values_encode},
    {"values_raw", test_values_raw},
    {"encode_refused", test_encode_refused},
    {"msg_equal", test_msg_equal},
    {"arena_bound", test_arena_bound},
    {"arena_edges", test_arena_edges},
};

CHECK_MAIN(tests)
