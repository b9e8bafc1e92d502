/*
 * Unit tests of proto/: the byte buffer, the strict reader, the message
 * codec and the error table.
 *
 * Expected encodings are written out in hex, worked out by hand from the
 * msgpack specification (the comments next to them show the reasoning), and
 * compared byte for byte.  Inputs are spelled in the same hex notation,
 * with "XX*N" for N copies of byte XX, and are copied into allocations of
 * exactly their length so that AddressSanitizer catches any read past the
 * end.  Run with no argument for every test, or name tests to run.
 */
#include "check.h"
#include "hexspec.h"

#include "proto/proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* From the AddressSanitizer runtime (<sanitizer/allocator_interface.h>,
 * which not every compiler installs). */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif

/* ---- Helpers ---- */

/* An input in memory of exactly `len` bytes (p is NULL when len is 0). */
struct input {
    uint8_t *p;
    size_t len;
};

static uint8_t *copy_exact(const void *p, size_t len)
{
    if (len == 0)
        return NULL;
    uint8_t *q = malloc(len);
    if (q == NULL) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    memcpy(q, p, len);
    return q;
}

static struct input unhex(const char *s)
{
    struct spro_buf b = {0};
    spro_test_hex(s, strlen(s), &b);
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

#define BYTES(s)                                                                                   \
    {                                                                                              \
        (const uint8_t *)(s), sizeof(s) - 1                                                        \
    }

static bool bytes_equal(struct spro_bytes a, struct spro_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Decodes hex; returns the decoder's result (the decoded message is not
 * kept: it would point into freed memory). */
static int decode_hex(const char *hex)
{
    struct input in = unhex(hex);
    struct spro_msg m;
    int err = spro_proto_decode(in.p, in.len, &m);
    input_free(&in);
    return err;
}

static int validate_hex(const char *hex)
{
    struct input in = unhex(hex);
    int err = spro_proto_validate(in.p, in.len);
    input_free(&in);
    return err;
}

/* Bytes currently allocated on the heap (for the "no allocation" test). */
static size_t heap_in_use(void)
{
#ifdef HAVE_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
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

/* ---- Pieces of envelopes, in hex ---- */

#define V0 " a1 76 00 "                                          /* "v": 0 */
#define K_TYPE " a4 74 79 70 65 "                                /* "type" */
#define T_ERROR K_TYPE " a5 65 72 72 6f 72 "                     /* "type": "error" */
#define T_HEALTH K_TYPE " a6 68 65 61 6c 74 68 "                 /* "type": "health" */
#define T_ECHO K_TYPE " a4 65 63 68 6f "                         /* "type": "echo" */
#define T_ECHO_REPLY K_TYPE " aa 65 63 68 6f 5f 72 65 70 6c 79 " /* "echo_reply" */
#define K_ID " a2 69 64 "                                        /* "id" */
#define K_DATA " a4 64 61 74 61 "                                /* "data" */
#define ID0 K_ID " 00 "                                          /* "id": 0 */
#define DATA0 K_DATA " c4 00 "                                   /* "data": bin 0 */
#define K_CODE " a4 63 6f 64 65 "                                /* "code" */
#define K_MESSAGE " a7 6d 65 73 73 61 67 65 "                    /* "message" */
#define CODE_X K_CODE " a1 78 "                                  /* "code": "x" */
#define MESSAGE0 K_MESSAGE " a0 "                                /* "message": "" */
#define K_STATUS " a6 73 74 61 74 75 73 "                        /* "status" */
#define K_SCHEMA " a6 73 63 68 65 6d 61 "                        /* "schema" */
#define K_VERSION " a7 76 65 72 73 69 6f 6e "                    /* "version" */
#define STATUS_OK K_STATUS " a2 6f 6b "                          /* "status": "ok" */
#define SCHEMA1 K_SCHEMA " 01 "                                  /* "schema": 1 */
#define VERSION_010 K_VERSION " a5 30 2e 31 2e 30 "              /* "version": "0.1.0" */
#define K_X " a1 78 "                                            /* "x" */

/* Pieces of the device channel messages. */
#define T_SERVER_KEY K_TYPE " aa 73 65 72 76 65 72 5f 6b 65 79 "      /* "server_key" */
#define T_HELLO K_TYPE " a5 68 65 6c 6c 6f "                          /* "hello" */
#define T_WELCOME K_TYPE " a7 77 65 6c 63 6f 6d 65 "                  /* "welcome" */
#define T_WIPE K_TYPE " a4 77 69 70 65 "                              /* "wipe" */
#define T_PING K_TYPE " a4 70 69 6e 67 "                              /* "ping" */
#define T_PONG K_TYPE " a4 70 6f 6e 67 "                              /* "pong" */
#define K_KEY " a3 6b 65 79 "                                         /* "key" */
#define K_FINGERPRINT " ab 66 69 6e 67 65 72 70 72 69 6e 74 "         /* "fingerprint" */
#define K_TS " a2 74 73 "                                             /* "ts" */
#define K_APP " a3 61 70 70 "                                         /* "app" */
#define K_TICKET_ID " a9 74 69 63 6b 65 74 5f 69 64 "                 /* "ticket_id" */
#define K_TICKET_SECRET " ad 74 69 63 6b 65 74 5f 73 65 63 72 65 74 " /* "ticket_secret" */
#define K_SESSION " a7 73 65 73 73 69 6f 6e "                         /* "session" */
#define K_DEVICE " a6 64 65 76 69 63 65 "                             /* "device" */
#define K_USER " a4 75 73 65 72 "                                     /* "user" */
#define K_ORG " a3 6f 72 67 "                                         /* "org" */
#define K_ROLE " a4 72 6f 6c 65 "                                     /* "role" */
#define K_IDLE_TTL " a8 69 64 6c 65 5f 74 74 6c "                     /* "idle_ttl" */
#define K_TTL " a3 74 74 6c "                                         /* "ttl" */
#define KEY0 K_KEY " c4 20 00*32 "                     /* "key": bin 8 of 32 zero bytes */
#define FP_A K_FINGERPRINT " d9 31 (61*4 3a)*9 61*4 "  /* "aaaa:...:aaaa", 49 bytes */
#define TS1 K_TS " 01 "                                /* "ts": 1 */
#define APP_X K_APP " a1 78 "                          /* "app": "x" */
#define TICKET_ID_A K_TICKET_ID " b0 61*16 "           /* "ticket_id": 16 x "a" */
#define TICKET_SECRET0 K_TICKET_SECRET " c4 20 00*32 " /* "ticket_secret": 32 zero bytes */
#define SESSION0 K_SESSION " c4 10 00*16 "             /* "session": 16 zero bytes */
#define DEVICE_D K_DEVICE " a1 64 "                    /* "device": "d" */
#define USER_U K_USER " a1 75 "                        /* "user": "u" */
#define ORG_O K_ORG " a1 6f "                          /* "org": "o" */
#define ROLE_R K_ROLE " a1 72 "                        /* "role": "r" */
#define IDLE_TTL1 K_IDLE_TTL " 01 "                    /* "idle_ttl": 1 */
#define TTL1 K_TTL " 01 "                              /* "ttl": 1 */

/* Valid messages of the device channel, bases of negative cases. */
#define SERVER_KEY_MIN "84" V0 T_SERVER_KEY KEY0 FP_A
#define HELLO_MIN "85" V0 T_HELLO TS1 APP_X SCHEMA1
#define WELCOME_MIN "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 TTL1
#define PONG_MIN "86" V0 T_PONG DEVICE_D USER_U ORG_O ROLE_R

/* A valid echo, the base of many negative cases. */
#define ECHO_MIN "84" V0 T_ECHO ID0 DATA0

/* ---- Golden messages ---- */

/* Values of the device channel goldens. */
#define KEY_00_1F                                                                                  \
    "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"                             \
    "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
/* Its fingerprint (BLAKE2b keyed with "spro-sync fingerprint v1", 20 bytes). */
#define FP_00_1F "da65:e38b:2b7e:2ab1:2f6a:fb37:bb4f:b772:a98d:edfe"
#define SECRET_A0_BF                                                                               \
    "\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf"                             \
    "\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf"
#define SESSION_F0_FF "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"
#define UUID "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
/* UUID, 36 bytes: past fixstr's 31, so str 8 (d9 24) */
#define UUID_STR8                                                                                  \
    " d9 24 33 66 32 35 30 34 65 30 2d 34 66 38 39 2d 34 31 64 33 2d 39 61 30 63 2d"               \
    " 30 33 30 35 65 38 32 63 33 33 30 31"

struct golden {
    const char *name;
    struct spro_msg msg;
    const char *hex;
};

static const struct golden goldens[] = {
    {"error",
     {.type = SPRO_MSG_ERROR,
      .u.error = {.code = BYTES("not_found"), .message = BYTES("no such route")}},
     /* fixmap 4; fixstr "v" 0; "type" "error"; "code" fixstr 9; "message" fixstr 13 */
     "84"
     " a1 76 00"
     " a4 74 79 70 65  a5 65 72 72 6f 72"
     " a4 63 6f 64 65  a9 6e 6f 74 5f 66 6f 75 6e 64"
     " a7 6d 65 73 73 61 67 65  ad 6e 6f 20 73 75 63 68 20 72 6f 75 74 65"},
    {"error_str8",
     {.type = SPRO_MSG_ERROR,
      .u.error = {.code = BYTES("too_long"),
                  .message = BYTES("a string, binary or collection exceeds its limit")}},
     /* the message is 48 bytes: past fixstr's 31, so str 8 (d9 30) */
     "84"
     " a1 76 00"
     " a4 74 79 70 65  a5 65 72 72 6f 72"
     " a4 63 6f 64 65  a8 74 6f 6f 5f 6c 6f 6e 67"
     " a7 6d 65 73 73 61 67 65  d9 30"
     " 61 20 73 74 72 69 6e 67 2c 20 62 69 6e 61 72 79 20 6f 72 20 63 6f 6c 6c 65 63 74 69 6f 6e"
     " 20 65 78 63 65 65 64 73 20 69 74 73 20 6c 69 6d 69 74"},
    {"error_internal",
     {.type = SPRO_MSG_ERROR,
      .u.error = {.code = BYTES("internal"), .message = BYTES("internal error")}},
     "84"
     " a1 76 00"
     " a4 74 79 70 65  a5 65 72 72 6f 72"
     " a4 63 6f 64 65  a8 69 6e 74 65 72 6e 61 6c"
     " a7 6d 65 73 73 61 67 65  ae 69 6e 74 65 72 6e 61 6c 20 65 72 72 6f 72"},
    {"health",
     {.type = SPRO_MSG_HEALTH,
      .u.health = {.status = BYTES("ok"), .schema = 1, .version = BYTES("0.1.0")}},
     /* fixmap 5; schema 1 is a positive fixint */
     "85"
     " a1 76 00"
     " a4 74 79 70 65  a6 68 65 61 6c 74 68"
     " a6 73 74 61 74 75 73  a2 6f 6b"
     " a6 73 63 68 65 6d 61  01"
     " a7 76 65 72 73 69 6f 6e  a5 30 2e 31 2e 30"},
    {"health_max_schema",
     {.type = SPRO_MSG_HEALTH,
      .u.health = {.status = BYTES("degraded"),
                   .schema = 2147483647,
                   .version = BYTES("0.1.0-dev")}},
     /* 2^31-1 needs uint 32: ce 7f ff ff ff */
     "85"
     " a1 76 00"
     " a4 74 79 70 65  a6 68 65 61 6c 74 68"
     " a6 73 74 61 74 75 73  a8 64 65 67 72 61 64 65 64"
     " a6 73 63 68 65 6d 61  ce 7f ff ff ff"
     " a7 76 65 72 73 69 6f 6e  a9 30 2e 31 2e 30 2d 64 65 76"},
    {"echo_empty",
     {.type = SPRO_MSG_ECHO, .u.echo = {.id = 0, .data = {NULL, 0}}},
     /* id 0 is fixint 00; empty data is bin 8 of length 0 */
     "84"
     " a1 76 00"
     " a4 74 79 70 65  a4 65 63 68 6f"
     " a2 69 64  00"
     " a4 64 61 74 61  c4 00"},
    {"echo_max_id",
     {.type = SPRO_MSG_ECHO, .u.echo = {.id = UINT64_MAX, .data = BYTES("\x01\x02\x03")}},
     /* 2^64-1 needs uint 64: cf then 8 bytes big-endian */
     "84"
     " a1 76 00"
     " a4 74 79 70 65  a4 65 63 68 6f"
     " a2 69 64  cf ff ff ff ff ff ff ff ff"
     " a4 64 61 74 61  c4 03 01 02 03"},
    {"echo_reply",
     {.type = SPRO_MSG_ECHO_REPLY, .u.echo = {.id = 42, .data = BYTES("\x00\xff")}},
     /* "echo_reply" is 10 bytes: fixstr aa; 42 = 0x2a */
     "84"
     " a1 76 00"
     " a4 74 79 70 65  aa 65 63 68 6f 5f 72 65 70 6c 79"
     " a2 69 64  2a"
     " a4 64 61 74 61  c4 02 00 ff"},
    {"server_key",
     {.type = SPRO_MSG_SERVER_KEY,
      .u.server_key = {.key = BYTES(KEY_00_1F), .fingerprint = BYTES(FP_00_1F)}},
     /* fixmap 4; "server_key" is 10 bytes (aa); the key is bin 8 of 32 (c4 20); "fingerprint"
      * is 11 bytes (ab); the fingerprint is 49 bytes, past fixstr's 31: str 8 (d9 31) */
     "84"
     " a1 76 00"
     " a4 74 79 70 65  aa 73 65 72 76 65 72 5f 6b 65 79"
     " a3 6b 65 79  c4 20"
     " 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d"
     " 1e 1f"
     " ab 66 69 6e 67 65 72 70 72 69 6e 74  d9 31"
     " 64 61 36 35 3a 65 33 38 62 3a 32 62 37 65 3a 32 61 62 31 3a 32 66 36 61 3a"
     " 66 62 33 37 3a 62 62 34 66 3a 62 37 37 32 3a 61 39 38 64 3a 65 64 66 65"},
    {"hello",
     {.type = SPRO_MSG_HELLO,
      .u.hello = {.ts = 1700000000000, .app = BYTES("spro/1.0"), .schema = 1}},
     /* fixmap 5: no ticket, so neither ticket key; ts 1700000000000 = 0x18bcfe56800 is past
      * 2^32-1: uint 64, 8 bytes big-endian; "spro/1.0" is fixstr a8; schema 1 fixint */
     "85"
     " a1 76 00"
     " a4 74 79 70 65  a5 68 65 6c 6c 6f"
     " a2 74 73  cf 00 00 01 8b cf e5 68 00"
     " a3 61 70 70  a8 73 70 72 6f 2f 31 2e 30"
     " a6 73 63 68 65 6d 61  01"},
    {"hello_ticket",
     {.type = SPRO_MSG_HELLO,
      .u.hello = {.ts = INT64_MAX,
                  .app = BYTES("a"),
                  .schema = 300,
                  .has_ticket = true,
                  .ticket_id = BYTES("9f0c2a61b3d4e5f6"),
                  .ticket_secret = BYTES(SECRET_A0_BF)}},
     /* fixmap 7; ts 2^63-1 is uint 64 7f ff..; schema 300 = 0x12c is uint 16; "ticket_id" is
      * 9 bytes (a9), its value 16 (b0); "ticket_secret" 13 bytes (ad), bin 8 of 32 */
     "87"
     " a1 76 00"
     " a4 74 79 70 65  a5 68 65 6c 6c 6f"
     " a2 74 73  cf 7f ff ff ff ff ff ff ff"
     " a3 61 70 70  a1 61"
     " a6 73 63 68 65 6d 61  cd 01 2c"
     " a9 74 69 63 6b 65 74 5f 69 64  b0 39 66 30 63 32 61 36 31 62 33 64 34 65 35 66 36"
     " ad 74 69 63 6b 65 74 5f 73 65 63 72 65 74  c4 20"
     " a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af b0 b1 b2 b3 b4 b5 b6 b7 b8 b9 ba bb bc bd"
     " be bf"},
    {"welcome",
     {.type = SPRO_MSG_WELCOME,
      .u.welcome = {.session = BYTES(SESSION_F0_FF),
                    .view = {.device = BYTES(UUID),
                             .user = BYTES("amelie.durand"),
                             .org = BYTES("cio-lyon"),
                             .role = BYTES("counsellor")},
                    .idle_ttl = 300,
                    .ttl = 3600}},
     /* fixmap 9; session bin 8 of 16 (c4 10); the device id str 8; 300 = 0x12c and
      * 3600 = 0xe10 are uint 16 */
     "89"
     " a1 76 00"
     " a4 74 79 70 65  a7 77 65 6c 63 6f 6d 65"
     " a7 73 65 73 73 69 6f 6e  c4 10 f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 fa fb fc fd fe ff"
     " a6 64 65 76 69 63 65" UUID_STR8 " a4 75 73 65 72  ad 61 6d 65 6c 69 65 2e 64 75 72 61 6e 64"
     " a3 6f 72 67  a8 63 69 6f 2d 6c 79 6f 6e"
     " a4 72 6f 6c 65  aa 63 6f 75 6e 73 65 6c 6c 6f 72"
     " a8 69 64 6c 65 5f 74 74 6c  cd 01 2c"
     " a3 74 74 6c  cd 0e 10"},
    {"wipe",
     {.type = SPRO_MSG_WIPE, .u.wipe = {.device = BYTES(UUID)}},
     /* fixmap 3 */
     "83"
     " a1 76 00"
     " a4 74 79 70 65  a4 77 69 70 65"
     " a6 64 65 76 69 63 65" UUID_STR8},
    {"ping",
     {.type = SPRO_MSG_PING},
     /* fixmap 2: only the envelope */
     "82"
     " a1 76 00"
     " a4 74 79 70 65  a4 70 69 6e 67"},
    {"pong",
     {.type = SPRO_MSG_PONG,
      .u.pong = {.device = BYTES(UUID),
                 .user = BYTES("j.martin"),
                 .org = BYTES("ml-nantes"),
                 .role = BYTES("supervisor")}},
     /* fixmap 6; "j.martin" a8, "ml-nantes" a9, "supervisor" aa */
     "86"
     " a1 76 00"
     " a4 74 79 70 65  a4 70 6f 6e 67"
     " a6 64 65 76 69 63 65" UUID_STR8 " a4 75 73 65 72  a8 6a 2e 6d 61 72 74 69 6e"
     " a3 6f 72 67  a9 6d 6c 2d 6e 61 6e 74 65 73"
     " a4 72 6f 6c 65  aa 73 75 70 65 72 76 69 73 6f 72"},
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
        struct spro_msg m;
        int err = spro_proto_decode(in.p, in.len, &m);
        bool same = err == 0 && spro_proto_msg_equal(&m, &g->msg);
        int valid = spro_proto_validate(in.p, in.len);
        input_free(&in);
        CASE_EQ(g->name, err, 0);
        CHECK(same);
        CASE_EQ(g->name, valid, 0);
    }
}

/* Every proper prefix of every golden message ends inside a value. */
static void test_golden_prefixes(void)
{
    for (size_t k = 0; k < NGOLDEN; k++) {
        struct input in = unhex(goldens[k].hex);
        for (size_t n = 0; n < in.len; n++) {
            uint8_t *p = copy_exact(in.p, n);
            struct spro_msg m;
            int err = spro_proto_decode(p, n, &m);
            int valid = spro_proto_validate(p, n);
            free(p);
            if (err != SPRO_ETRUNCATED || valid != SPRO_ETRUNCATED)
                fprintf(stderr, "golden %s, prefix of %zu bytes\n", goldens[k].name, n);
            CHECK_EQ(err, SPRO_ETRUNCATED);
            CHECK_EQ(valid, SPRO_ETRUNCATED);
        }
        input_free(&in);
    }
}

static void test_encode_error_golden(void)
{
    static const struct {
        int err;
        const char *detail;
        size_t golden;
    } cases[] = {
        {SPRO_ENOTFOUND, NULL, 0}, /* "not_found", its table message */
        {SPRO_ENOTFOUND, "no such route", 0},
        {SPRO_ETOOLONG, NULL, 1}, /* message needs str 8 */
        {SPRO_EINTERNAL, NULL, 2},
        {SPRO_ESTORE, NULL, 2}, /* "database error" stays local */
        {SPRO_ESTORE, "disk full at /var/x", 2},
        {-ENOENT, NULL, 2},
        {-EIO, "detail", 2},
        {0, NULL, 2},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct input want = unhex(goldens[cases[k].golden].hex);
        struct spro_buf out = {0};
        spro_proto_encode_error(cases[k].err, cases[k].detail, &out);
        CHECK_BYTES(out.data, out.len, want.p, want.len);
        spro_buf_free(&out);
        input_free(&want);
    }
}

/* A detail that is invalid UTF-8 is replaced; a long one is cut whole. */
static void test_encode_error_detail(void)
{
    static const struct {
        const char *detail;
        size_t repeat;      /* copies of detail */
        const char *prefix; /* before the copies */
        size_t want_len;    /* of the message sent, when want is NULL */
        const char *want;   /* the message sent, or NULL: a prefix of the detail */
    } cases[] = {
        {"field \"id\" is required", 1, "", 0, "field \"id\" is required"},
        {"bad \xff byte", 1, "", 0, "a value has the wrong msgpack type"},
        {"\xed\xa0\x80", 1, "", 0, "a value has the wrong msgpack type"},
        {"", 1, "", 0, ""},
        {"\xc3\xa9", 2049, "", 4096, NULL},  /* 4098 bytes: cut after 2048 characters */
        {"\xc3\xa9", 2048, "a", 4095, NULL}, /* 4097 bytes: "é" at 4095 does not fit */
        {"\xf0\x9f\x98\x80", 1100, "", 4096, NULL},
        {"\xf0\x9f\x98\x80", 1100, "ab", 4094, NULL},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct spro_buf detail = {0};
        spro_buf_append(&detail, cases[k].prefix, strlen(cases[k].prefix));
        for (size_t r = 0; r < cases[k].repeat; r++)
            spro_buf_append(&detail, cases[k].detail, strlen(cases[k].detail));
        spro_buf_append(&detail, "", 1);

        struct spro_buf out = {0};
        spro_proto_encode_error(SPRO_EBADTYPE, (const char *)detail.data, &out);
        struct spro_msg m;
        int err = spro_proto_decode(out.data, out.len, &m);
        CHECK_EQ(err, 0);
        CHECK_EQ(m.type, SPRO_MSG_ERROR);
        CHECK(bytes_equal(m.u.error.code, (struct spro_bytes)BYTES("bad_type")));
        if (cases[k].want != NULL) {
            CHECK_EQ(m.u.error.message.len, strlen(cases[k].want));
            CHECK(bytes_equal(m.u.error.message, (struct spro_bytes){(const uint8_t *)cases[k].want,
                                                                     strlen(cases[k].want)}));
        } else {
            CHECK_EQ(m.u.error.message.len, cases[k].want_len);
            CHECK(memcmp(m.u.error.message.p, detail.data, cases[k].want_len) == 0);
        }
        spro_buf_free(&out);
        spro_buf_free(&detail);
    }
}

static void test_roundtrip(void)
{
    static uint8_t big[SPRO_PROTO_MAX_BIN];
    static char longstr[SPRO_PROTO_MAX_STR];
    for (size_t k = 0; k < sizeof(big); k++)
        big[k] = (uint8_t)(k * 7 + 3);
    memset(longstr, 'z', sizeof(longstr));
    struct spro_msg msgs[] = {
        {.type = SPRO_MSG_ERROR,
         .u.error = {.code = BYTES("x"), .message = {(const uint8_t *)longstr, sizeof(longstr)}}},
        {.type = SPRO_MSG_ERROR,
         .u.error = {.code = BYTES("\xf4\x8f\xbf\xbf"), .message = BYTES("\xc2\x80\xef\xbf\xbf")}},
        {.type = SPRO_MSG_HEALTH,
         .u.health = {.status = BYTES("ok"), .schema = 128, .version = BYTES("v")}},
        {.type = SPRO_MSG_HEALTH,
         .u.health = {.status = BYTES("ok"), .schema = 65536, .version = BYTES("v")}},
        {.type = SPRO_MSG_ECHO, .u.echo = {.id = 255, .data = {big, sizeof(big)}}},
        {.type = SPRO_MSG_ECHO_REPLY, .u.echo = {.id = 1ull << 32, .data = {big, 65536}}},
        {.type = SPRO_MSG_SERVER_KEY,
         .u.server_key = {.key = {big, 32},
                          .fingerprint =
                              BYTES("0123:4567:89ab:cdef:0123:4567:89ab:cdef:0123:4567")}},
        {.type = SPRO_MSG_HELLO,
         .u.hello = {.ts = 1,
                     .app = {(const uint8_t *)longstr, 64},
                     .schema = 2147483647,
                     .has_ticket = true,
                     .ticket_id = BYTES("0123456789abcdef"),
                     .ticket_secret = {big, 32}}},
        /* ticket fields without has_ticket: left out, and not compared */
        {.type = SPRO_MSG_HELLO,
         .u.hello = {.ts = 128,
                     .app = BYTES("\xc3\xa9"),
                     .schema = 65535,
                     .ticket_id = BYTES("XYZ"),
                     .ticket_secret = {big, 5}}},
        {.type = SPRO_MSG_WELCOME,
         .u.welcome = {.session = {big, 16},
                       .view = {.device = {(const uint8_t *)longstr, 64},
                                .user = {(const uint8_t *)longstr, 64},
                                .org = {(const uint8_t *)longstr, 64},
                                .role = {(const uint8_t *)longstr, 16}},
                       .idle_ttl = 1,
                       .ttl = 2147483647}},
        {.type = SPRO_MSG_WIPE, .u.wipe = {.device = {(const uint8_t *)longstr, 64}}},
        {.type = SPRO_MSG_PING},
        {.type = SPRO_MSG_PONG,
         .u.pong = {.device = BYTES("d"),
                    .user = BYTES("\xc3\xa9lise"),
                    .org = BYTES("\xf0\x9f\x98\x80"),
                    .role = BYTES("admin")}},
    };
    for (size_t k = 0; k < NGOLDEN; k++) {
        struct spro_buf out = {0};
        struct spro_msg m;
        CHECK_EQ(spro_proto_encode(&goldens[k].msg, &out), 0);
        CHECK_EQ(spro_proto_decode(out.data, out.len, &m), 0);
        CHECK(spro_proto_msg_equal(&m, &goldens[k].msg));
        spro_buf_free(&out);
    }
    for (size_t k = 0; k < sizeof(msgs) / sizeof(msgs[0]); k++) {
        struct spro_buf out = {0};
        struct spro_msg m;
        CHECK_EQ(spro_proto_encode(&msgs[k], &out), 0);
        CHECK_EQ(spro_proto_decode(out.data, out.len, &m), 0);
        CHECK(spro_proto_msg_equal(&m, &msgs[k]));
        CHECK_EQ(spro_proto_validate(out.data, out.len), 0);
        spro_buf_free(&out);
    }
}

/* The encoder picks the smallest width for every integer and length. */
static void test_encode_widths(void)
{
    static const struct {
        uint64_t id;
        const char *hex;
    } ids[] = {
        {0, "00"},
        {127, "7f"},    /* largest positive fixint */
        {128, "cc 80"}, /* uint 8 */
        {255, "cc ff"},
        {256, "cd 01 00"}, /* uint 16 */
        {65535, "cd ff ff"},
        {65536, "ce 00 01 00 00"}, /* uint 32 */
        {4294967295u, "ce ff ff ff ff"},
        {4294967296u, "cf 00 00 00 01 00 00 00 00"}, /* uint 64 */
        {UINT64_MAX, "cf ff ff ff ff ff ff ff ff"},
    };
    for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
        struct spro_msg m = {.type = SPRO_MSG_ECHO, .u.echo = {.id = ids[k].id}};
        char hex[256];
        snprintf(hex, sizeof(hex), "84" V0 T_ECHO K_ID "%s" DATA0, ids[k].hex);
        struct input want = unhex(hex);
        struct spro_buf out = {0};
        CHECK_EQ(spro_proto_encode(&m, &out), 0);
        CHECK_BYTES(out.data, out.len, want.p, want.len);
        spro_buf_free(&out);
        input_free(&want);
    }

    static const struct {
        uint32_t schema;
        const char *hex;
    } schemas[] = {
        {1, "01"},
        {127, "7f"},
        {128, "cc 80"},
        {65535, "cd ff ff"},
        {65536, "ce 00 01 00 00"},
        {2147483647, "ce 7f ff ff ff"},
    };
    for (size_t k = 0; k < sizeof(schemas) / sizeof(schemas[0]); k++) {
        struct spro_msg m = {.type = SPRO_MSG_HEALTH,
                             .u.health = {.status = BYTES("ok"),
                                          .schema = schemas[k].schema,
                                          .version = BYTES("0.1.0")}};
        char hex[256];
        snprintf(hex, sizeof(hex), "85" V0 T_HEALTH STATUS_OK K_SCHEMA "%s" VERSION_010,
                 schemas[k].hex);
        struct input want = unhex(hex);
        struct spro_buf out = {0};
        CHECK_EQ(spro_proto_encode(&m, &out), 0);
        CHECK_BYTES(out.data, out.len, want.p, want.len);
        spro_buf_free(&out);
        input_free(&want);
    }

    /* Binary lengths: bin 8 up to 255, bin 16 up to 65535, then bin 32. */
    static const struct {
        size_t len;
        const char *hex;
    } bins[] = {
        {0, "c4 00"},
        {1, "c4 01"},
        {255, "c4 ff"},
        {256, "c5 01 00"},
        {65535, "c5 ff ff"},
        {65536, "c6 00 01 00 00"},
        {SPRO_PROTO_MAX_BIN, "c6 00 10 00 00"},
    };
    static uint8_t payload[SPRO_PROTO_MAX_BIN];
    memset(payload, 0xab, sizeof(payload));
    for (size_t k = 0; k < sizeof(bins) / sizeof(bins[0]); k++) {
        struct spro_msg m = {.type = SPRO_MSG_ECHO,
                             .u.echo = {.id = 0, .data = {payload, bins[k].len}}};
        char hex[256];
        snprintf(hex, sizeof(hex), "84" V0 T_ECHO ID0 K_DATA "%s ab*%zu", bins[k].hex, bins[k].len);
        struct input want = unhex(hex);
        struct spro_buf out = {0};
        CHECK_EQ(spro_proto_encode(&m, &out), 0);
        CHECK_BYTES(out.data, out.len, want.p, want.len);
        spro_buf_free(&out);
        input_free(&want);
    }

    /* String lengths: fixstr up to 31, str 8 up to 255, then str 16. */
    static const struct {
        size_t len;
        const char *hex;
    } strs[] = {
        {0, "a0"},      {31, "bf"},        {32, "d9 20"},
        {255, "d9 ff"}, {256, "da 01 00"}, {SPRO_PROTO_MAX_STR, "da 10 00"},
    };
    static char text[SPRO_PROTO_MAX_STR];
    memset(text, 'a', sizeof(text));
    for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
        struct spro_msg m = {
            .type = SPRO_MSG_ERROR,
            .u.error = {.code = BYTES("x"), .message = {(const uint8_t *)text, strs[k].len}}};
        char hex[256];
        snprintf(hex, sizeof(hex), "84" V0 T_ERROR CODE_X K_MESSAGE "%s 61*%zu", strs[k].hex,
                 strs[k].len);
        struct input want = unhex(hex);
        struct spro_buf out = {0};
        CHECK_EQ(spro_proto_encode(&m, &out), 0);
        CHECK_BYTES(out.data, out.len, want.p, want.len);
        spro_buf_free(&out);
        input_free(&want);
    }
}

/* Out-of-bounds fields are refused and nothing is appended. */
static void test_encode_refused(void)
{
    static uint8_t big[SPRO_PROTO_MAX_BIN + 1];
    static char text[SPRO_PROTO_MAX_STR + 1];
    memset(text, 'a', sizeof(text));
    const struct spro_bytes ok = BYTES("ok");
    const struct spro_bytes fp = BYTES(FP_00_1F);
    const struct spro_msg_device_view view = {.device = ok, .user = ok, .org = ok, .role = ok};
    const struct {
        const char *name;
        struct spro_msg msg;
        int err;
    } cases[] = {
        {"empty code",
         {.type = SPRO_MSG_ERROR, .u.error = {.code = {NULL, 0}, .message = ok}},
         SPRO_ERANGE},
        {"long code",
         {.type = SPRO_MSG_ERROR,
          .u.error = {.code = {(const uint8_t *)text, SPRO_PROTO_MAX_CODE + 1}, .message = ok}},
         SPRO_ETOOLONG},
        {"long message",
         {.type = SPRO_MSG_ERROR,
          .u.error = {.code = ok, .message = {(const uint8_t *)text, SPRO_PROTO_MAX_STR + 1}}},
         SPRO_ETOOLONG},
        {"bad utf8",
         {.type = SPRO_MSG_ERROR, .u.error = {.code = ok, .message = BYTES("\xc0\x80")}},
         SPRO_EBADUTF8},
        {"schema 0",
         {.type = SPRO_MSG_HEALTH, .u.health = {.status = ok, .schema = 0, .version = ok}},
         SPRO_ERANGE},
        {"schema 2^31",
         {.type = SPRO_MSG_HEALTH,
          .u.health = {.status = ok, .schema = 2147483648u, .version = ok}},
         SPRO_ERANGE},
        {"long status",
         {.type = SPRO_MSG_HEALTH,
          .u.health = {.status = {(const uint8_t *)text, 33}, .schema = 1, .version = ok}},
         SPRO_ETOOLONG},
        {"empty version",
         {.type = SPRO_MSG_HEALTH, .u.health = {.status = ok, .schema = 1, .version = {NULL, 0}}},
         SPRO_ERANGE},
        {"long version",
         {.type = SPRO_MSG_HEALTH,
          .u.health = {.status = ok, .schema = 1, .version = {(const uint8_t *)text, 65}}},
         SPRO_ETOOLONG},
        {"big data",
         {.type = SPRO_MSG_ECHO_REPLY, .u.echo = {.id = 1, .data = {big, sizeof(big)}}},
         SPRO_ETOOLONG},
        /* device channel */
        {"key of 31 bytes",
         {.type = SPRO_MSG_SERVER_KEY, .u.server_key = {.key = {big, 31}, .fingerprint = fp}},
         SPRO_ERANGE},
        {"key of 33 bytes",
         {.type = SPRO_MSG_SERVER_KEY, .u.server_key = {.key = {big, 33}, .fingerprint = fp}},
         SPRO_ETOOLONG},
        {"no key",
         {.type = SPRO_MSG_SERVER_KEY, .u.server_key = {.key = {NULL, 0}, .fingerprint = fp}},
         SPRO_ERANGE},
        {"fingerprint uppercase",
         {.type = SPRO_MSG_SERVER_KEY,
          .u.server_key = {.key = {big, 32},
                           .fingerprint =
                               BYTES("DA65:E38B:2B7E:2AB1:2F6A:FB37:BB4F:B772:A98D:EDFE")}},
         SPRO_ERANGE},
        {"fingerprint of 48 bytes",
         {.type = SPRO_MSG_SERVER_KEY,
          .u.server_key = {.key = {big, 32}, .fingerprint = {fp.p, 48}}},
         SPRO_ERANGE},
        {"fingerprint of 50 bytes",
         {.type = SPRO_MSG_SERVER_KEY,
          .u.server_key = {.key = {big, 32}, .fingerprint = {(const uint8_t *)text, 50}}},
         SPRO_ETOOLONG},
        {"fingerprint without colons",
         {.type = SPRO_MSG_SERVER_KEY,
          .u.server_key = {.key = {big, 32}, .fingerprint = {(const uint8_t *)text, 49}}},
         SPRO_ERANGE},
        {"ts 0",
         {.type = SPRO_MSG_HELLO, .u.hello = {.ts = 0, .app = ok, .schema = 1}},
         SPRO_ERANGE},
        {"ts 2^63",
         {.type = SPRO_MSG_HELLO, .u.hello = {.ts = 1ull << 63, .app = ok, .schema = 1}},
         SPRO_ERANGE},
        {"ts 2^64-1",
         {.type = SPRO_MSG_HELLO, .u.hello = {.ts = UINT64_MAX, .app = ok, .schema = 1}},
         SPRO_ERANGE},
        {"empty app",
         {.type = SPRO_MSG_HELLO, .u.hello = {.ts = 1, .app = {NULL, 0}, .schema = 1}},
         SPRO_ERANGE},
        {"app of 65 bytes",
         {.type = SPRO_MSG_HELLO,
          .u.hello = {.ts = 1, .app = {(const uint8_t *)text, 65}, .schema = 1}},
         SPRO_ETOOLONG},
        {"hello schema 0",
         {.type = SPRO_MSG_HELLO, .u.hello = {.ts = 1, .app = ok, .schema = 0}},
         SPRO_ERANGE},
        {"ticket_id uppercase",
         {.type = SPRO_MSG_HELLO,
          .u.hello = {.ts = 1,
                      .app = ok,
                      .schema = 1,
                      .has_ticket = true,
                      .ticket_id = BYTES("9F0C2A61B3D4E5F6"),
                      .ticket_secret = {big, 32}}},
         SPRO_ERANGE},
        {"ticket_id of 15 digits",
         {.type = SPRO_MSG_HELLO,
          .u.hello = {.ts = 1,
                      .app = ok,
                      .schema = 1,
                      .has_ticket = true,
                      .ticket_id = BYTES("9f0c2a61b3d4e5f"),
                      .ticket_secret = {big, 32}}},
         SPRO_ERANGE},
        {"ticket_id of 17 digits",
         {.type = SPRO_MSG_HELLO,
          .u.hello = {.ts = 1,
                      .app = ok,
                      .schema = 1,
                      .has_ticket = true,
                      .ticket_id = BYTES("9f0c2a61b3d4e5f60"),
                      .ticket_secret = {big, 32}}},
         SPRO_ETOOLONG},
        {"ticket_id bad utf8",
         {.type = SPRO_MSG_HELLO,
          .u.hello = {.ts = 1,
                      .app = ok,
                      .schema = 1,
                      .has_ticket = true,
                      .ticket_id = BYTES("\xff"
                                         "9f0c2a61b3d4e5f"),
                      .ticket_secret = {big, 32}}},
         SPRO_EBADUTF8},
        {"ticket_secret of 31 bytes",
         {.type = SPRO_MSG_HELLO,
          .u.hello = {.ts = 1,
                      .app = ok,
                      .schema = 1,
                      .has_ticket = true,
                      .ticket_id = BYTES("9f0c2a61b3d4e5f6"),
                      .ticket_secret = {big, 31}}},
         SPRO_ERANGE},
        {"ticket_secret of 33 bytes",
         {.type = SPRO_MSG_HELLO,
          .u.hello = {.ts = 1,
                      .app = ok,
                      .schema = 1,
                      .has_ticket = true,
                      .ticket_id = BYTES("9f0c2a61b3d4e5f6"),
                      .ticket_secret = {big, 33}}},
         SPRO_ETOOLONG},
        {"has_ticket without a ticket",
         {.type = SPRO_MSG_HELLO, .u.hello = {.ts = 1, .app = ok, .schema = 1, .has_ticket = true}},
         SPRO_ERANGE},
        {"session of 15 bytes",
         {.type = SPRO_MSG_WELCOME,
          .u.welcome = {.session = {big, 15}, .view = view, .idle_ttl = 1, .ttl = 1}},
         SPRO_ERANGE},
        {"session of 17 bytes",
         {.type = SPRO_MSG_WELCOME,
          .u.welcome = {.session = {big, 17}, .view = view, .idle_ttl = 1, .ttl = 1}},
         SPRO_ETOOLONG},
        {"idle_ttl 0",
         {.type = SPRO_MSG_WELCOME,
          .u.welcome = {.session = {big, 16}, .view = view, .idle_ttl = 0, .ttl = 1}},
         SPRO_ERANGE},
        {"ttl 2^31",
         {.type = SPRO_MSG_WELCOME,
          .u.welcome = {.session = {big, 16}, .view = view, .idle_ttl = 1, .ttl = 2147483648u}},
         SPRO_ERANGE},
        {"welcome role of 17",
         {.type = SPRO_MSG_WELCOME,
          .u.welcome =
              {.session = {big, 16},
               .view = {.device = ok, .user = ok, .org = ok, .role = {(const uint8_t *)text, 17}},
               .idle_ttl = 1,
               .ttl = 1}},
         SPRO_ETOOLONG},
        {"welcome empty user",
         {.type = SPRO_MSG_WELCOME,
          .u.welcome = {.session = {big, 16},
                        .view = {.device = ok, .user = {NULL, 0}, .org = ok, .role = ok},
                        .idle_ttl = 1,
                        .ttl = 1}},
         SPRO_ERANGE},
        {"wipe empty device",
         {.type = SPRO_MSG_WIPE, .u.wipe = {.device = {NULL, 0}}},
         SPRO_ERANGE},
        {"wipe device of 65",
         {.type = SPRO_MSG_WIPE, .u.wipe = {.device = {(const uint8_t *)text, 65}}},
         SPRO_ETOOLONG},
        {"pong org of 65",
         {.type = SPRO_MSG_PONG,
          .u.pong = {.device = ok, .user = ok, .org = {(const uint8_t *)text, 65}, .role = ok}},
         SPRO_ETOOLONG},
        {"pong bad utf8",
         {.type = SPRO_MSG_PONG,
          .u.pong = {.device = ok, .user = BYTES("\xed\xa0\x80"), .org = ok, .role = ok}},
         SPRO_EBADUTF8},
        {"pong empty role",
         {.type = SPRO_MSG_PONG,
          .u.pong = {.device = ok, .user = ok, .org = ok, .role = {NULL, 0}}},
         SPRO_ERANGE},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct spro_buf out = {0};
        spro_buf_append(&out, "xyz", 3);
        int err = spro_proto_encode(&cases[k].msg, &out);
        size_t len = out.len;
        spro_buf_free(&out);
        CASE_EQ(cases[k].name, err, cases[k].err);
        CHECK_EQ(len, 3);
    }
}

/* ---- Decoder: one or more negative cases per error code ---- */

struct negative {
    const char *name;
    const char *hex;
    int err;
};

static const struct negative negatives[] = {
    /* MALFORMED: 0xc1 is no msgpack type */
    {"c1 alone", "c1", SPRO_EMALFORMED},
    {"c1 before more bytes", "c1 00", SPRO_EMALFORMED},
    {"c1 as a value", "84" V0 T_ECHO ID0 K_DATA "c1", SPRO_EMALFORMED},
    {"c1 as a key", "84" V0 T_ECHO ID0 "c1 c4 00", SPRO_EMALFORMED},
    {"c1 in an unknown field", "85" V0 T_ECHO ID0 DATA0 K_X "92 00 c1", SPRO_EMALFORMED},

    /* TRUNCATED at several cut points */
    {"empty body", "", SPRO_ETRUNCATED},
    {"map header only", "84", SPRO_ETRUNCATED},
    {"map 16 count cut", "de 00", SPRO_ETRUNCATED},
    {"map 16, no entries", "de 00 03", SPRO_ETRUNCATED},
    {"map count above remaining bytes", "84 a1 76 00", SPRO_ETRUNCATED},
    {"key cut", "84" V0 T_ECHO ID0 "a4 64 61", SPRO_ETRUNCATED},
    {"value missing", "84" V0 T_ECHO ID0 K_DATA, SPRO_ETRUNCATED},
    {"uint 64 cut", "84" V0 T_ECHO DATA0 K_ID "cf 00 00 00", SPRO_ETRUNCATED},
    {"bin 32 length cut", "84" V0 T_ECHO ID0 K_DATA "c6 00 00 00", SPRO_ETRUNCATED},
    {"bin payload cut", "84" V0 T_ECHO ID0 K_DATA "c4 05 01 02", SPRO_ETRUNCATED},
    {"str 32 payload cut", "84" V0 T_ERROR CODE_X K_MESSAGE "db 00 00 00 10 61 62",
     SPRO_ETRUNCATED},
    {"float 64 cut", "85" V0 T_ECHO ID0 DATA0 K_X "cb 00 00", SPRO_ETRUNCATED},
    {"nested array cut", "85" V0 T_ECHO ID0 DATA0 K_X "93 00 91", SPRO_ETRUNCATED},

    /* TRAILING: bytes after the map, even bytes that would be invalid */
    {"trailing zero", ECHO_MIN "00", SPRO_ETRAILING},
    {"trailing c1", ECHO_MIN "c1", SPRO_ETRAILING},
    {"trailing before version check", "84 a1 76 01" T_ECHO ID0 DATA0 "00", SPRO_ETRAILING},
    {"two maps", "80 80", SPRO_ETRAILING},

    /* BADTYPE */
    {"top-level array", "90", SPRO_EBADTYPE},
    {"top-level int", "00", SPRO_EBADTYPE},
    {"top-level nil", "c0", SPRO_EBADTYPE},
    {"top-level str", "a4 65 63 68 6f", SPRO_EBADTYPE},
    {"top-level array 32", "dd ff ff ff ff", SPRO_EBADTYPE},
    {"int key", "81 00 00", SPRO_EBADTYPE},
    {"bin key", "81 c4 01 76 00", SPRO_EBADTYPE},
    {"array key", "84" V0 T_ECHO ID0 "91 00 00", SPRO_EBADTYPE},
    {"v as str", "84 a1 76 a1 30" T_ECHO ID0 DATA0, SPRO_EBADTYPE},
    {"v as float", "84 a1 76 ca 00 00 00 00" T_ECHO ID0 DATA0, SPRO_EBADTYPE},
    {"v as nil", "84 a1 76 c0" T_ECHO ID0 DATA0, SPRO_EBADTYPE},
    {"type as int", "84" V0 K_TYPE "01" ID0 DATA0, SPRO_EBADTYPE},
    {"type as bin", "84" V0 K_TYPE "c4 04 65 63 68 6f" ID0 DATA0, SPRO_EBADTYPE},
    {"id as str", "84" V0 T_ECHO K_ID "a1 31" DATA0, SPRO_EBADTYPE},
    {"id as bool", "84" V0 T_ECHO K_ID "c3" DATA0, SPRO_EBADTYPE},
    {"id as float 64", "84" V0 T_ECHO K_ID "cb 00 00 00 00 00 00 00 00" DATA0, SPRO_EBADTYPE},
    {"data as str", "84" V0 T_ECHO ID0 K_DATA "a0", SPRO_EBADTYPE},
    {"data as array", "84" V0 T_ECHO ID0 K_DATA "90", SPRO_EBADTYPE},
    {"code as bin", "84" V0 T_ERROR K_CODE "c4 01 78" MESSAGE0, SPRO_EBADTYPE},
    {"schema as str", "85" V0 T_HEALTH STATUS_OK K_SCHEMA "a1 31" VERSION_010, SPRO_EBADTYPE},
    {"fixext value", "85" V0 T_ECHO ID0 DATA0 K_X "d4 01 00", SPRO_EBADTYPE},
    {"ext 8 value", "85" V0 T_ECHO ID0 DATA0 K_X "c7 01 05 00", SPRO_EBADTYPE},

    /* TOOLONG: checked before the bytes are looked for */
    {"17 entries", "de 00 11", SPRO_ETOOLONG},
    {"map 32 huge", "df ff ff ff ff", SPRO_ETOOLONG},
    {"key of 65 bytes", "81 d9 41 61*65 00", SPRO_ETOOLONG},
    {"type of 33 bytes", "82" V0 K_TYPE "d9 21 61*33", SPRO_ETOOLONG},
    {"code of 65 bytes", "84" V0 T_ERROR K_CODE "d9 41 61*65" MESSAGE0, SPRO_ETOOLONG},
    {"message of 4097 bytes", "84" V0 T_ERROR CODE_X K_MESSAGE "da 10 01 61*4097", SPRO_ETOOLONG},
    {"status of 33 bytes", "85" V0 T_HEALTH K_STATUS "d9 21 61*33" SCHEMA1 VERSION_010,
     SPRO_ETOOLONG},
    {"version of 65 bytes", "85" V0 T_HEALTH STATUS_OK SCHEMA1 K_VERSION "d9 41 61*65",
     SPRO_ETOOLONG},
    {"data of 2^20+1 bytes", "84" V0 T_ECHO ID0 K_DATA "c6 00 10 00 01", SPRO_ETOOLONG},
    {"array of 4097", "85" V0 T_ECHO ID0 DATA0 K_X "dc 10 01", SPRO_ETOOLONG},
    {"str 32 huge", "85" V0 T_ECHO ID0 DATA0 K_X "db ff ff ff ff", SPRO_ETOOLONG},

    /* TOODEEP: the envelope is depth 0, its values depth 1 */
    {"16 nested arrays in a field", "85" V0 T_ECHO ID0 DATA0 K_X "91*16 00", SPRO_ETOODEEP},
    {"16 nested maps in a field", "85" V0 T_ECHO ID0 DATA0 K_X "(81 a0)*15 80", SPRO_ETOODEEP},

    /* DUPKEY */
    {"id twice", "85" V0 T_ECHO ID0 ID0 DATA0, SPRO_EDUPKEY},
    {"v twice", "85" V0 V0 T_ECHO ID0 DATA0, SPRO_EDUPKEY},
    {"type twice", "85" V0 T_ECHO T_ECHO ID0 DATA0, SPRO_EDUPKEY},
    {"key in str 8", "85" V0 T_ECHO ID0 "d9 02 69 64 00" DATA0, SPRO_EDUPKEY},
    {"unknown key twice", "86" V0 T_ECHO ID0 DATA0 K_X "00" K_X "00", SPRO_EDUPKEY},
    {"dup inside a field", "85" V0 T_ECHO ID0 DATA0 K_X "82 a1 61 00 a1 61 01", SPRO_EDUPKEY},

    /* RANGE */
    {"schema 0", "85" V0 T_HEALTH STATUS_OK K_SCHEMA "00" VERSION_010, SPRO_ERANGE},
    {"schema 2^31", "85" V0 T_HEALTH STATUS_OK K_SCHEMA "ce 80 00 00 00" VERSION_010, SPRO_ERANGE},
    {"schema 2^64-1", "85" V0 T_HEALTH STATUS_OK K_SCHEMA "cf ff*8" VERSION_010, SPRO_ERANGE},
    {"schema -1", "85" V0 T_HEALTH STATUS_OK K_SCHEMA "ff" VERSION_010, SPRO_ERANGE},
    {"id -1", "84" V0 T_ECHO K_ID "ff" DATA0, SPRO_ERANGE},
    {"id int 64 min", "84" V0 T_ECHO K_ID "d3 80 00 00 00 00 00 00 00" DATA0, SPRO_ERANGE},
    {"empty code", "84" V0 T_ERROR K_CODE "a0" MESSAGE0, SPRO_ERANGE},
    {"empty status", "85" V0 T_HEALTH K_STATUS "a0" SCHEMA1 VERSION_010, SPRO_ERANGE},
    {"empty version", "85" V0 T_HEALTH STATUS_OK SCHEMA1 K_VERSION "a0", SPRO_ERANGE},

    /* MISSING */
    {"empty map", "80", SPRO_EMISSING},
    {"no v", "83" T_ECHO ID0 DATA0, SPRO_EMISSING},
    {"no type", "83" V0 ID0 DATA0, SPRO_EMISSING},
    {"no data", "83" V0 T_ECHO ID0, SPRO_EMISSING},
    {"no id", "83" V0 T_ECHO DATA0, SPRO_EMISSING},
    {"health without fields", "82" V0 T_HEALTH, SPRO_EMISSING},
    {"no message", "83" V0 T_ERROR CODE_X, SPRO_EMISSING},

    /* UNKNOWNFIELD */
    {"extra field", "85" V0 T_ECHO ID0 DATA0 K_X "00", SPRO_EUNKNOWNFIELD},
    {"field of another type", "85" V0 T_ECHO ID0 DATA0 CODE_X, SPRO_EUNKNOWNFIELD},
    {"empty key", "85" V0 T_ECHO ID0 DATA0 "a0 00", SPRO_EUNKNOWNFIELD},
    {"unknown before missing", "83" V0 T_ECHO K_X "00", SPRO_EUNKNOWNFIELD},
    {"case differs", "84" V0 T_ECHO "a2 49 44 00" DATA0, SPRO_EUNKNOWNFIELD},

    /* BADUTF8 */
    {"overlong 2-byte", "84" V0 T_ERROR K_CODE "a2 c0 af" MESSAGE0, SPRO_EBADUTF8},
    {"overlong c1", "84" V0 T_ERROR K_CODE "a2 c1 bf" MESSAGE0, SPRO_EBADUTF8},
    {"overlong 3-byte", "84" V0 T_ERROR K_CODE "a3 e0 80 af" MESSAGE0, SPRO_EBADUTF8},
    {"overlong 4-byte", "84" V0 T_ERROR K_CODE "a4 f0 80 80 af" MESSAGE0, SPRO_EBADUTF8},
    {"surrogate d800", "84" V0 T_ERROR CODE_X K_MESSAGE "a3 ed a0 80", SPRO_EBADUTF8},
    {"surrogate dfff", "84" V0 T_ERROR CODE_X K_MESSAGE "a3 ed bf bf", SPRO_EBADUTF8},
    {"above 10ffff", "84" V0 T_ERROR CODE_X K_MESSAGE "a4 f4 90 80 80", SPRO_EBADUTF8},
    {"f5", "84" V0 T_ERROR CODE_X K_MESSAGE "a4 f5 80 80 80", SPRO_EBADUTF8},
    {"lone continuation", "84" V0 T_ERROR CODE_X K_MESSAGE "a1 80", SPRO_EBADUTF8},
    {"ff", "84" V0 T_ERROR CODE_X K_MESSAGE "a1 ff", SPRO_EBADUTF8},
    {"sequence cut by the string end", "84" V0 T_ERROR CODE_X K_MESSAGE "a2 e2 82", SPRO_EBADUTF8},
    {"bad continuation", "84" V0 T_ERROR CODE_X K_MESSAGE "a2 c3 28", SPRO_EBADUTF8},
    {"bad key", "81 a1 ff 00", SPRO_EBADUTF8},
    {"bad type name", "82" V0 K_TYPE "a1 fe", SPRO_EBADUTF8},
    {"bad unknown field", "85" V0 T_ECHO ID0 DATA0 K_X "a1 80", SPRO_EBADUTF8},

    /* BADVERSION */
    {"v 1", "84 a1 76 01" T_ECHO ID0 DATA0, SPRO_EBADVERSION},
    {"v -1", "84 a1 76 ff" T_ECHO ID0 DATA0, SPRO_EBADVERSION},
    {"v 2^64-1", "84 a1 76 cf ff*8" T_ECHO ID0 DATA0, SPRO_EBADVERSION},
    {"v last", "84" T_ECHO ID0 DATA0 "a1 76 01", SPRO_EBADVERSION},
    {"v checked before type", "82 a1 76 01" K_TYPE "a4 6e 6f 70 65", SPRO_EBADVERSION},

    /* BADMSGTYPE */
    {"type nope", "82" V0 K_TYPE "a4 6e 6f 70 65", SPRO_EBADMSGTYPE},
    {"empty type", "82" V0 K_TYPE "a0", SPRO_EBADMSGTYPE},
    {"type Echo", "84" V0 K_TYPE "a4 45 63 68 6f" ID0 DATA0, SPRO_EBADMSGTYPE},
    {"type with NUL", "84" V0 K_TYPE "a5 65 63 68 6f 00" ID0 DATA0, SPRO_EBADMSGTYPE},
    {"type checked before fields", "83" V0 K_TYPE "a4 6e 6f 70 65" K_X "00", SPRO_EBADMSGTYPE},
    {"type Ping", "82" V0 K_TYPE "a4 50 69 6e 67", SPRO_EBADMSGTYPE},
    {"type device_view",
     "86" V0 K_TYPE "ab 64 65 76 69 63 65 5f 76 69 65 77" DEVICE_D USER_U ORG_O ROLE_R,
     SPRO_EBADMSGTYPE},
};

/* Negative cases of the device channel messages. */
static const struct negative channel_negatives[] = {
    /* server_key: key exactly 32 bytes, fingerprint exactly 49 of the right form */
    {"key of 31 bytes", "84" V0 T_SERVER_KEY K_KEY "c4 1f 00*31" FP_A, SPRO_ERANGE},
    {"key of 33 bytes", "84" V0 T_SERVER_KEY K_KEY "c4 21 00*33" FP_A, SPRO_ETOOLONG},
    {"empty key", "84" V0 T_SERVER_KEY K_KEY "c4 00" FP_A, SPRO_ERANGE},
    {"key as str", "84" V0 T_SERVER_KEY K_KEY "d9 20 61*32" FP_A, SPRO_EBADTYPE},
    {"fingerprint of 48 bytes", "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 30 (61*4 3a)*9 61*3",
     SPRO_ERANGE},
    {"fingerprint of 50 bytes", "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 32 (61*4 3a)*9 61*5",
     SPRO_ETOOLONG},
    {"fingerprint with uppercase",
     "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 31 (61*4 3a)*9 41 61*3", SPRO_ERANGE},
    {"fingerprint with g", "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 31 67 61*3 (3a 61*4)*9",
     SPRO_ERANGE},
    {"fingerprint without colons", "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 31 61*49",
     SPRO_ERANGE},
    {"fingerprint colons shifted",
     "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 31 61*5 (3a 61*4)*8 3a 61*3", SPRO_ERANGE},
    {"fingerprint of 40 hex digits", "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 28 61*40",
     SPRO_ERANGE},
    {"fingerprint as bin", "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "c4 31 (61*4 3a)*9 61*4",
     SPRO_EBADTYPE},
    {"fingerprint bad utf8", "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "d9 31 ff 61*3 (3a 61*4)*9",
     SPRO_EBADUTF8},
    {"server_key without fingerprint", "83" V0 T_SERVER_KEY KEY0, SPRO_EMISSING},
    {"server_key without key", "83" V0 T_SERVER_KEY FP_A, SPRO_EMISSING},
    {"server_key with ts", "85" V0 T_SERVER_KEY KEY0 FP_A TS1, SPRO_EUNKNOWNFIELD},
    {"server_key trailing", SERVER_KEY_MIN "00", SPRO_ETRAILING},

    /* hello: bounds of the required fields */
    {"ts 0", "85" V0 T_HELLO K_TS "00" APP_X SCHEMA1, SPRO_ERANGE},
    {"ts 2^63", "85" V0 T_HELLO K_TS "cf 80 00*7" APP_X SCHEMA1, SPRO_ERANGE},
    {"ts 2^64-1", "85" V0 T_HELLO K_TS "cf ff*8" APP_X SCHEMA1, SPRO_ERANGE},
    {"ts -1", "85" V0 T_HELLO K_TS "ff" APP_X SCHEMA1, SPRO_ERANGE},
    {"ts as str", "85" V0 T_HELLO K_TS "a1 31" APP_X SCHEMA1, SPRO_EBADTYPE},
    {"empty app", "85" V0 T_HELLO TS1 K_APP "a0" SCHEMA1, SPRO_ERANGE},
    {"app of 65 bytes", "85" V0 T_HELLO TS1 K_APP "d9 41 61*65" SCHEMA1, SPRO_ETOOLONG},
    {"app as bin", "85" V0 T_HELLO TS1 K_APP "c4 01 78" SCHEMA1, SPRO_EBADTYPE},
    {"hello schema 0", "85" V0 T_HELLO TS1 APP_X K_SCHEMA "00", SPRO_ERANGE},
    {"hello schema 2^31", "85" V0 T_HELLO TS1 APP_X K_SCHEMA "ce 80 00 00 00", SPRO_ERANGE},
    {"hello without ts", "84" V0 T_HELLO APP_X SCHEMA1, SPRO_EMISSING},
    {"hello without app", "84" V0 T_HELLO TS1 SCHEMA1, SPRO_EMISSING},
    {"hello without schema", "84" V0 T_HELLO TS1 APP_X, SPRO_EMISSING},
    {"hello trailing", HELLO_MIN "00", SPRO_ETRAILING},

    /* hello: the ticket, both fields or neither */
    {"only ticket_id", "86" V0 T_HELLO TS1 APP_X SCHEMA1 TICKET_ID_A, SPRO_EMISSING},
    {"only ticket_secret", "86" V0 T_HELLO TS1 APP_X SCHEMA1 TICKET_SECRET0, SPRO_EMISSING},
    {"only ticket_id, first", "86" V0 T_HELLO TICKET_ID_A TS1 APP_X SCHEMA1, SPRO_EMISSING},
    {"ticket but no ts", "86" V0 T_HELLO TICKET_ID_A TICKET_SECRET0 APP_X SCHEMA1, SPRO_EMISSING},
    {"ticket_id uppercase", "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b0 41*16" TICKET_SECRET0,
     SPRO_ERANGE},
    {"ticket_id with g", "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b0 61*15 67" TICKET_SECRET0,
     SPRO_ERANGE},
    {"ticket_id with a space",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b0 20 61*15" TICKET_SECRET0, SPRO_ERANGE},
    {"ticket_id with NUL",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b0 61*15 00" TICKET_SECRET0, SPRO_ERANGE},
    {"ticket_id with a 2-byte character",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b0 c3 a9 61*14" TICKET_SECRET0, SPRO_ERANGE},
    {"ticket_id of 15 digits",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "af 61*15" TICKET_SECRET0, SPRO_ERANGE},
    {"ticket_id of 17 digits",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b1 61*17" TICKET_SECRET0, SPRO_ETOOLONG},
    {"empty ticket_id", "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "a0" TICKET_SECRET0,
     SPRO_ERANGE},
    {"ticket_id as bin", "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "c4 10 61*16" TICKET_SECRET0,
     SPRO_EBADTYPE},
    {"ticket_id bad utf8",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b0 ff 61*15" TICKET_SECRET0, SPRO_EBADUTF8},
    {"ticket_secret of 31 bytes",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 TICKET_ID_A K_TICKET_SECRET "c4 1f 00*31", SPRO_ERANGE},
    {"ticket_secret of 33 bytes",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 TICKET_ID_A K_TICKET_SECRET "c4 21 00*33", SPRO_ETOOLONG},
    {"ticket_secret as str",
     "87" V0 T_HELLO TS1 APP_X SCHEMA1 TICKET_ID_A K_TICKET_SECRET "d9 20 61*32", SPRO_EBADTYPE},
    {"bad ticket_id before missing secret",
     "86" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "b0 41*16", SPRO_ERANGE},
    {"short secret before missing id",
     "86" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_SECRET "c4 1f 00*31", SPRO_ERANGE},
    {"has_ticket on the wire",
     "86" V0 T_HELLO TS1 APP_X SCHEMA1 "aa 68 61 73 5f 74 69 63 6b 65 74 c3", SPRO_EUNKNOWNFIELD},
    {"ticket_id twice", "88" V0 T_HELLO TS1 APP_X SCHEMA1 TICKET_ID_A TICKET_ID_A TICKET_SECRET0,
     SPRO_EDUPKEY},

    /* welcome */
    {"session of 15 bytes",
     "89" V0 T_WELCOME K_SESSION "c4 0f 00*15" DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 TTL1,
     SPRO_ERANGE},
    {"session of 17 bytes",
     "89" V0 T_WELCOME K_SESSION "c4 11 00*17" DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 TTL1,
     SPRO_ETOOLONG},
    {"empty session",
     "89" V0 T_WELCOME K_SESSION "c4 00" DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 TTL1, SPRO_ERANGE},
    {"session as str",
     "89" V0 T_WELCOME K_SESSION "b0 61*16" DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 TTL1,
     SPRO_EBADTYPE},
    {"welcome empty device",
     "89" V0 T_WELCOME SESSION0 K_DEVICE "a0" USER_U ORG_O ROLE_R IDLE_TTL1 TTL1, SPRO_ERANGE},
    {"welcome device of 65",
     "89" V0 T_WELCOME SESSION0 K_DEVICE "d9 41 61*65" USER_U ORG_O ROLE_R IDLE_TTL1 TTL1,
     SPRO_ETOOLONG},
    {"welcome empty user",
     "89" V0 T_WELCOME SESSION0 DEVICE_D K_USER "a0" ORG_O ROLE_R IDLE_TTL1 TTL1, SPRO_ERANGE},
    {"welcome org of 65",
     "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U K_ORG "d9 41 61*65" ROLE_R IDLE_TTL1 TTL1,
     SPRO_ETOOLONG},
    {"welcome role of 17",
     "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O K_ROLE "b1 61*17" IDLE_TTL1 TTL1,
     SPRO_ETOOLONG},
    {"welcome empty role",
     "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O K_ROLE "a0" IDLE_TTL1 TTL1, SPRO_ERANGE},
    {"idle_ttl 0", "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R K_IDLE_TTL "00" TTL1,
     SPRO_ERANGE},
    {"idle_ttl 2^31",
     "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R K_IDLE_TTL "ce 80 00 00 00" TTL1,
     SPRO_ERANGE},
    {"ttl 0", "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 K_TTL "00",
     SPRO_ERANGE},
    {"ttl 2^31",
     "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 K_TTL "ce 80 00 00 00",
     SPRO_ERANGE},
    {"ttl -1", "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 K_TTL "ff",
     SPRO_ERANGE},
    {"welcome without ttl", "88" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1,
     SPRO_EMISSING},
    {"welcome without session", "88" V0 T_WELCOME DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 TTL1,
     SPRO_EMISSING},
    {"welcome with a ticket_id",
     "8a" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 TTL1 TICKET_ID_A,
     SPRO_EUNKNOWNFIELD},
    {"welcome trailing", WELCOME_MIN "c0", SPRO_ETRAILING},

    /* wipe */
    {"wipe empty device", "83" V0 T_WIPE K_DEVICE "a0", SPRO_ERANGE},
    {"wipe device of 65", "83" V0 T_WIPE K_DEVICE "d9 41 61*65", SPRO_ETOOLONG},
    {"wipe device as bin", "83" V0 T_WIPE K_DEVICE "c4 01 64", SPRO_EBADTYPE},
    {"wipe without device", "82" V0 T_WIPE, SPRO_EMISSING},
    {"wipe with user", "84" V0 T_WIPE DEVICE_D USER_U, SPRO_EUNKNOWNFIELD},

    /* ping: no field at all */
    {"ping with an unknown field", "83" V0 T_PING K_X "00", SPRO_EUNKNOWNFIELD},
    {"ping with a device", "83" V0 T_PING DEVICE_D, SPRO_EUNKNOWNFIELD},
    {"ping with an empty key", "83" V0 T_PING "a0 c0", SPRO_EUNKNOWNFIELD},
    {"ping with a bad value", "83" V0 T_PING K_X "c1", SPRO_EMALFORMED},
    {"ping without v", "81" T_PING, SPRO_EMISSING},
    {"ping v 1", "82 a1 76 01" T_PING, SPRO_EBADVERSION},
    {"ping trailing", "82" V0 T_PING "00", SPRO_ETRAILING},

    /* pong */
    {"pong role of 17", "86" V0 T_PONG DEVICE_D USER_U ORG_O K_ROLE "b1 61*17", SPRO_ETOOLONG},
    {"pong empty org", "86" V0 T_PONG DEVICE_D USER_U K_ORG "a0" ROLE_R, SPRO_ERANGE},
    {"pong user of 65", "86" V0 T_PONG DEVICE_D K_USER "d9 41 61*65" ORG_O ROLE_R, SPRO_ETOOLONG},
    {"pong bad utf8 user", "86" V0 T_PONG DEVICE_D K_USER "a2 c0 af" ORG_O ROLE_R, SPRO_EBADUTF8},
    {"pong device as int", "86" V0 T_PONG K_DEVICE "01" USER_U ORG_O ROLE_R, SPRO_EBADTYPE},
    {"pong without role", "85" V0 T_PONG DEVICE_D USER_U ORG_O, SPRO_EMISSING},
    {"pong with a session", "87" V0 T_PONG DEVICE_D USER_U ORG_O ROLE_R SESSION0,
     SPRO_EUNKNOWNFIELD},
    {"pong as ping", "86" V0 T_PING DEVICE_D USER_U ORG_O ROLE_R, SPRO_EUNKNOWNFIELD},
};

static void test_decode_negative(void)
{
    for (size_t k = 0; k < sizeof(negatives) / sizeof(negatives[0]); k++)
        CASE_EQ(negatives[k].name, decode_hex(negatives[k].hex), negatives[k].err);
}

static void test_decode_channel_negative(void)
{
    for (size_t k = 0; k < sizeof(channel_negatives) / sizeof(channel_negatives[0]); k++)
        CASE_EQ(channel_negatives[k].name, decode_hex(channel_negatives[k].hex),
                channel_negatives[k].err);
}

/* Inputs the decoder accepts although the encoder would write them
 * differently: any integer width, any string width, any key order. */
static void test_decode_lenient_forms(void)
{
    static const struct {
        const char *name;
        const char *hex;
        uint64_t id;
    } cases[] = {
        {"keys reversed", "84" DATA0 ID0 T_ECHO V0, 0},
        {"v as int 8", "84 a1 76 d0 00" T_ECHO ID0 DATA0, 0},
        {"v as uint 64", "84 a1 76 cf 00*8" T_ECHO ID0 DATA0, 0},
        {"id as uint 16", "84" V0 T_ECHO K_ID "cd 00 05" DATA0, 5},
        {"id as int 64", "84" V0 T_ECHO K_ID "d3 7f ff ff ff ff ff ff ff" DATA0, INT64_MAX},
        {"key in str 16", "84" V0 T_ECHO "da 00 02 69 64 07" DATA0, 7},
        {"data as bin 32", "84" V0 T_ECHO ID0 K_DATA "c6 00 00 00 00", 0},
        {"map as map 16", "de 00 04" V0 T_ECHO ID0 DATA0, 0},
        {"map as map 32", "df 00 00 00 04" V0 T_ECHO ID0 DATA0, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct input in = unhex(cases[k].hex);
        struct spro_msg m = {0};
        int err = spro_proto_decode(in.p, in.len, &m);
        uint64_t id = m.u.echo.id;
        input_free(&in);
        CASE_EQ(cases[k].name, err, 0);
        CHECK_EQ(m.type, SPRO_MSG_ECHO);
        CHECK(id == cases[k].id);
    }
}

/* The same for the device channel: every base of the negative cases is
 * valid, and the decoder takes any width and key order. */
static void test_decode_channel_lenient_forms(void)
{
    static const struct {
        const char *name;
        const char *hex;
        enum spro_msg_type type;
    } cases[] = {
        {"server_key base", SERVER_KEY_MIN, SPRO_MSG_SERVER_KEY},
        {"hello base", HELLO_MIN, SPRO_MSG_HELLO},
        {"welcome base", WELCOME_MIN, SPRO_MSG_WELCOME},
        {"wipe base", "83" V0 T_WIPE DEVICE_D, SPRO_MSG_WIPE},
        {"ping base", "82" V0 T_PING, SPRO_MSG_PING},
        {"pong base", PONG_MIN, SPRO_MSG_PONG},
        {"key as bin 16", "84" V0 T_SERVER_KEY K_KEY "c5 00 20 00*32" FP_A, SPRO_MSG_SERVER_KEY},
        {"key as bin 32", "84" V0 T_SERVER_KEY K_KEY "c6 00 00 00 20 00*32" FP_A,
         SPRO_MSG_SERVER_KEY},
        {"fingerprint as str 16",
         "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT "da 00 31 (61*4 3a)*9 61*4", SPRO_MSG_SERVER_KEY},
        {"fingerprint of every digit",
         "84" V0 T_SERVER_KEY KEY0 K_FINGERPRINT
         "d9 31 (30 31 32 33 3a 34 35 36 37 3a 38 39 61 62 3a 63 64 65 66 3a)*2 (30 31 32 33 3a)*1"
         " 61 62 63 64",
         SPRO_MSG_SERVER_KEY},
        {"ticket_id of every digit",
         "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID
         "b0 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66" TICKET_SECRET0,
         SPRO_MSG_HELLO},
        {"ticket first, reversed", "87" TICKET_SECRET0 TICKET_ID_A SCHEMA1 APP_X TS1 T_HELLO V0,
         SPRO_MSG_HELLO},
        {"ticket_id as str 8",
         "87" V0 T_HELLO TS1 APP_X SCHEMA1 K_TICKET_ID "d9 10 61*16" TICKET_SECRET0,
         SPRO_MSG_HELLO},
        {"ts 2^63-1 as int 64", "85" V0 T_HELLO K_TS "d3 7f ff ff ff ff ff ff ff" APP_X SCHEMA1,
         SPRO_MSG_HELLO},
        {"ttl as uint 64",
         "89" V0 T_WELCOME SESSION0 DEVICE_D USER_U ORG_O ROLE_R IDLE_TTL1 K_TTL
         "cf 00 00 00 00 00 00 0e 10",
         SPRO_MSG_WELCOME},
        {"welcome reversed", "89" TTL1 IDLE_TTL1 ROLE_R ORG_O USER_U DEVICE_D SESSION0 T_WELCOME V0,
         SPRO_MSG_WELCOME},
        {"ping as map 16", "de 00 02" V0 T_PING, SPRO_MSG_PING},
        {"ping as map 32", "df 00 00 00 02" V0 T_PING, SPRO_MSG_PING},
        {"ping reversed", "82" T_PING V0, SPRO_MSG_PING},
        {"pong role of 16", "86" V0 T_PONG DEVICE_D USER_U ORG_O K_ROLE "b0 61*16", SPRO_MSG_PONG},
        {"wipe device of 64", "83" V0 T_WIPE K_DEVICE "d9 40 61*64", SPRO_MSG_WIPE},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct input in = unhex(cases[k].hex);
        struct spro_msg m = {0};
        int err = spro_proto_decode(in.p, in.len, &m);
        uint64_t ts = m.u.hello.ts;
        uint32_t ttl = m.u.welcome.ttl;
        input_free(&in);
        CASE_EQ(cases[k].name, err, 0);
        CHECK_EQ(m.type, cases[k].type);
        if (strcmp(cases[k].name, "ts 2^63-1 as int 64") == 0)
            CHECK(ts == INT64_MAX);
        if (strcmp(cases[k].name, "ttl as uint 64") == 0)
            CHECK_EQ(ttl, 3600);
    }
}

/* hello's optional ticket: has_ticket follows the wire, and fields left out
 * are neither encoded nor compared. */
static void test_hello_ticket(void)
{
    const struct spro_msg *plain = NULL, *ticket = NULL;
    for (size_t k = 0; k < NGOLDEN; k++) {
        if (strcmp(goldens[k].name, "hello") == 0)
            plain = &goldens[k].msg;
        if (strcmp(goldens[k].name, "hello_ticket") == 0)
            ticket = &goldens[k].msg;
    }
    CHECK(plain != NULL && ticket != NULL);

    /* Decoding sets has_ticket, and leaves the ticket empty without it. */
    struct spro_buf out = {0};
    struct spro_msg m;
    CHECK_EQ(spro_proto_encode(plain, &out), 0);
    int err = spro_proto_decode(out.data, out.len, &m);
    spro_buf_free(&out);
    CHECK_EQ(err, 0);
    CHECK(!m.u.hello.has_ticket);
    CHECK_EQ(m.u.hello.ticket_id.len, 0);
    CHECK_EQ(m.u.hello.ticket_secret.len, 0);
    CHECK_EQ(spro_proto_encode(ticket, &out), 0);
    err = spro_proto_decode(out.data, out.len, &m);
    bool id_ok = err == 0 && bytes_equal(m.u.hello.ticket_id, ticket->u.hello.ticket_id);
    bool secret_ok =
        err == 0 && bytes_equal(m.u.hello.ticket_secret, ticket->u.hello.ticket_secret);
    bool has = err == 0 && m.u.hello.has_ticket;
    spro_buf_free(&out);
    CHECK_EQ(err, 0);
    CHECK(has);
    CHECK(id_ok);
    CHECK(secret_ok);

    /* Ticket fields without has_ticket are ignored, however wrong. */
    struct spro_msg junk = *plain;
    junk.u.hello.ticket_id = (struct spro_bytes)BYTES("NOT HEX");
    junk.u.hello.ticket_secret = (struct spro_bytes)BYTES("\x01");
    struct input want = {0};
    for (size_t k = 0; k < NGOLDEN; k++)
        if (&goldens[k].msg == plain)
            want = unhex(goldens[k].hex);
    CHECK_EQ(spro_proto_encode(&junk, &out), 0);
    bool same_bytes = out.len == want.len && memcmp(out.data, want.p, want.len) == 0;
    spro_buf_free(&out);
    input_free(&want);
    CHECK(same_bytes);
    CHECK(spro_proto_msg_equal(&junk, plain));
    CHECK(spro_proto_msg_equal(plain, &junk));

    /* has_ticket is part of the message; so is each ticket field. */
    struct spro_msg other = *ticket;
    other.u.hello.has_ticket = false;
    CHECK(!spro_proto_msg_equal(&other, ticket));
    CHECK(!spro_proto_msg_equal(ticket, &other));
    other = *ticket;
    other.u.hello.ticket_id = (struct spro_bytes)BYTES("9f0c2a61b3d4e5f7");
    CHECK(!spro_proto_msg_equal(&other, ticket));
    other = *ticket;
    other.u.hello.ticket_secret.len = 31;
    CHECK(!spro_proto_msg_equal(&other, ticket));
}

/* Equality looks at every field of the new types, by content. */
static void test_msg_equal_channel(void)
{
    static const uint8_t key_copy[] = KEY_00_1F;
    static const uint8_t session_copy[] = SESSION_F0_FF;
    for (size_t k = 0; k < NGOLDEN; k++) {
        const struct spro_msg *g = &goldens[k].msg;
        struct spro_msg a = *g;
        CHECK(spro_proto_msg_equal(&a, g));
        switch (g->type) {
        case SPRO_MSG_SERVER_KEY:
            a.u.server_key.key.p = key_copy; /* same bytes elsewhere */
            CHECK(spro_proto_msg_equal(&a, g));
            a.u.server_key.key.len = 31;
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.u.server_key.fingerprint.len = 48;
            CHECK(!spro_proto_msg_equal(&a, g));
            break;
        case SPRO_MSG_WELCOME:
            a.u.welcome.session.p = session_copy;
            CHECK(spro_proto_msg_equal(&a, g));
            a.u.welcome.session.p = key_copy;
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.u.welcome.view.role = (struct spro_bytes)BYTES("admin");
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.u.welcome.idle_ttl++;
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.u.welcome.ttl++;
            CHECK(!spro_proto_msg_equal(&a, g));
            break;
        case SPRO_MSG_WIPE:
            a.u.wipe.device.len--;
            CHECK(!spro_proto_msg_equal(&a, g));
            break;
        case SPRO_MSG_PONG:
            a.u.pong.org = (struct spro_bytes)BYTES("ml-nantez");
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.u.pong.device = (struct spro_bytes)BYTES("d");
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.type = SPRO_MSG_PING;
            CHECK(!spro_proto_msg_equal(&a, g));
            break;
        case SPRO_MSG_HELLO:
            a.u.hello.ts--;
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.u.hello.schema++;
            CHECK(!spro_proto_msg_equal(&a, g));
            a = *g;
            a.u.hello.app = (struct spro_bytes)BYTES("b");
            CHECK(!spro_proto_msg_equal(&a, g));
            break;
        default:
            break;
        }
    }
    struct spro_msg p1 = {.type = SPRO_MSG_PING}, p2 = {.type = SPRO_MSG_PING};
    p2.u.pong.device = (struct spro_bytes)BYTES("junk"); /* no field of ping */
    CHECK(spro_proto_msg_equal(&p1, &p2));
}

static void test_decode_utf8_edges(void)
{
    static const char *texts[] = {
        "a1 7f",          /* U+007F */
        "a2 c2 80",       /* U+0080 */
        "a2 df bf",       /* U+07FF */
        "a3 e0 a0 80",    /* U+0800 */
        "a3 ed 9f bf",    /* U+D7FF, below the surrogates */
        "a3 ee 80 80",    /* U+E000, above them */
        "a3 ef bf bf",    /* U+FFFF */
        "a4 f0 90 80 80", /* U+10000 */
        "a4 f4 8f bf bf", /* U+10FFFF */
        "a1 00",          /* NUL is a character */
    };
    for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
        char hex[256];
        snprintf(hex, sizeof(hex), "84" V0 T_ERROR CODE_X K_MESSAGE "%s", texts[k]);
        CASE_EQ(texts[k], decode_hex(hex), 0);
    }
}

/* ---- Reader ---- */

struct int_case {
    const char *hex;
    int64_t min, max; /* as uint64 for the uint cases */
    int err;
    int64_t value;
};

static void test_read_uint(void)
{
    static const struct {
        const char *hex;
        uint64_t min, max;
        int err;
        uint64_t value;
    } cases[] = {
        {"00", 0, UINT64_MAX, 0, 0},
        {"7f", 0, UINT64_MAX, 0, 127},
        {"cc 00", 0, UINT64_MAX, 0, 0}, /* wider than needed: accepted */
        {"cc ff", 0, UINT64_MAX, 0, 255},
        {"cd 00 00", 0, UINT64_MAX, 0, 0},
        {"cd ff ff", 0, UINT64_MAX, 0, 65535},
        {"ce 00 00 00 00", 0, UINT64_MAX, 0, 0},
        {"ce ff ff ff ff", 0, UINT64_MAX, 0, 4294967295u},
        {"cf 00 00 00 00 00 00 00 00", 0, UINT64_MAX, 0, 0},
        {"cf ff ff ff ff ff ff ff ff", 0, UINT64_MAX, 0, UINT64_MAX},
        {"d0 7f", 0, UINT64_MAX, 0, 127}, /* int 8, value >= 0 */
        {"d0 00", 0, UINT64_MAX, 0, 0},
        {"d1 7f ff", 0, UINT64_MAX, 0, 32767},
        {"d2 7f ff ff ff", 0, UINT64_MAX, 0, 2147483647},
        {"d3 7f ff ff ff ff ff ff ff", 0, UINT64_MAX, 0, INT64_MAX},
        /* negative integers: RANGE, whatever the width */
        {"ff", 0, UINT64_MAX, SPRO_ERANGE, 0},
        {"e0", 0, UINT64_MAX, SPRO_ERANGE, 0},
        {"d0 80", 0, UINT64_MAX, SPRO_ERANGE, 0},
        {"d1 ff ff", 0, UINT64_MAX, SPRO_ERANGE, 0},
        {"d2 80 00 00 00", 0, UINT64_MAX, SPRO_ERANGE, 0},
        {"d3 80 00 00 00 00 00 00 00", 0, UINT64_MAX, SPRO_ERANGE, 0},
        /* bounds */
        {"00", 1, 255, SPRO_ERANGE, 0},
        {"01", 1, 255, 0, 1},
        {"cc ff", 1, 255, 0, 255},
        {"cd 01 00", 1, 255, SPRO_ERANGE, 0},
        {"cd 00 ff", 1, 255, 0, 255},
        {"ce 7f ff ff ff", 1, 2147483647, 0, 2147483647},
        {"ce 80 00 00 00", 1, 2147483647, SPRO_ERANGE, 0},
        {"cf ff ff ff ff ff ff ff fe", 0, UINT64_MAX - 1, 0, UINT64_MAX - 1},
        {"cf ff ff ff ff ff ff ff ff", 0, UINT64_MAX - 1, SPRO_ERANGE, 0},
        /* other types */
        {"ca 00 00 00 00", 0, UINT64_MAX, SPRO_EBADTYPE, 0},
        {"cb 00 00 00 00 00 00 00 00", 0, UINT64_MAX, SPRO_EBADTYPE, 0},
        {"c0", 0, UINT64_MAX, SPRO_EBADTYPE, 0},
        {"c2", 0, UINT64_MAX, SPRO_EBADTYPE, 0},
        {"a1 31", 0, UINT64_MAX, SPRO_EBADTYPE, 0},
        {"90", 0, UINT64_MAX, SPRO_EBADTYPE, 0},
        {"c1", 0, UINT64_MAX, SPRO_EMALFORMED, 0},
        /* truncated */
        {"", 0, UINT64_MAX, SPRO_ETRUNCATED, 0},
        {"cc", 0, UINT64_MAX, SPRO_ETRUNCATED, 0},
        {"cd 01", 0, UINT64_MAX, SPRO_ETRUNCATED, 0},
        {"ce 01 02 03", 0, UINT64_MAX, SPRO_ETRUNCATED, 0},
        {"cf 00 00 00 00 00 00 00", 0, UINT64_MAX, SPRO_ETRUNCATED, 0},
        {"d3", 0, UINT64_MAX, SPRO_ETRUNCATED, 0},
        {"ca 00 00", 0, UINT64_MAX, SPRO_ETRUNCATED, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct input in = unhex(cases[k].hex);
        struct spro_mp_reader r;
        spro_mp_reader_init(&r, in.p, in.len);
        const uint8_t *start = r.p;
        uint64_t v = 12345;
        int err = spro_mp_read_uint(&r, cases[k].min, cases[k].max, &v);
        bool at_end = r.p == r.end, unmoved = r.p == start;
        input_free(&in);
        CASE_EQ(cases[k].hex, err, cases[k].err);
        if (err == 0) {
            CHECK(v == cases[k].value);
            CHECK(at_end);
        } else {
            CHECK(v == 12345);
            CHECK(unmoved);
        }
    }
}

static void test_read_int(void)
{
    static const struct int_case cases[] = {
        {"00", INT64_MIN, INT64_MAX, 0, 0},
        {"7f", INT64_MIN, INT64_MAX, 0, 127},
        {"ff", INT64_MIN, INT64_MAX, 0, -1},
        {"e0", INT64_MIN, INT64_MAX, 0, -32}, /* smallest negative fixint */
        {"d0 80", INT64_MIN, INT64_MAX, 0, -128},
        {"d0 7f", INT64_MIN, INT64_MAX, 0, 127},
        {"d0 ff", INT64_MIN, INT64_MAX, 0, -1},
        {"d1 80 00", INT64_MIN, INT64_MAX, 0, -32768},
        {"d1 7f ff", INT64_MIN, INT64_MAX, 0, 32767},
        {"d2 80 00 00 00", INT64_MIN, INT64_MAX, 0, INT32_MIN},
        {"d2 7f ff ff ff", INT64_MIN, INT64_MAX, 0, INT32_MAX},
        {"d3 80 00 00 00 00 00 00 00", INT64_MIN, INT64_MAX, 0, INT64_MIN},
        {"d3 7f ff ff ff ff ff ff ff", INT64_MIN, INT64_MAX, 0, INT64_MAX},
        {"d3 ff ff ff ff ff ff ff ff", INT64_MIN, INT64_MAX, 0, -1},
        {"cc ff", INT64_MIN, INT64_MAX, 0, 255},
        {"cd ff ff", INT64_MIN, INT64_MAX, 0, 65535},
        {"ce ff ff ff ff", INT64_MIN, INT64_MAX, 0, 4294967295},
        {"cf 7f ff ff ff ff ff ff ff", INT64_MIN, INT64_MAX, 0, INT64_MAX},
        {"cf 80 00 00 00 00 00 00 00", INT64_MIN, INT64_MAX, SPRO_ERANGE, 0}, /* 2^63 */
        {"cf ff ff ff ff ff ff ff ff", INT64_MIN, INT64_MAX, SPRO_ERANGE, 0},
        /* bounds of an int 8 range */
        {"d0 80", -128, 127, 0, -128},
        {"d1 ff 80", -128, 127, 0, -128},
        {"d1 ff 7f", -128, 127, SPRO_ERANGE, 0}, /* -129 */
        {"7f", -128, 127, 0, 127},
        {"cc 80", -128, 127, SPRO_ERANGE, 0},
        {"d3 80 00 00 00 00 00 00 00", -128, 127, SPRO_ERANGE, 0},
        {"ff", 0, 10, SPRO_ERANGE, 0},
        /* other types and truncation */
        {"ca 00 00 00 00", INT64_MIN, INT64_MAX, SPRO_EBADTYPE, 0},
        {"cb 3f f0 00 00 00 00 00 00", INT64_MIN, INT64_MAX, SPRO_EBADTYPE, 0},
        {"c3", INT64_MIN, INT64_MAX, SPRO_EBADTYPE, 0},
        {"c4 00", INT64_MIN, INT64_MAX, SPRO_EBADTYPE, 0},
        {"d4 00 00", INT64_MIN, INT64_MAX, SPRO_EBADTYPE, 0},
        {"d0", INT64_MIN, INT64_MAX, SPRO_ETRUNCATED, 0},
        {"d2 80 00 00", INT64_MIN, INT64_MAX, SPRO_ETRUNCATED, 0},
        {"", INT64_MIN, INT64_MAX, SPRO_ETRUNCATED, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct input in = unhex(cases[k].hex);
        struct spro_mp_reader r;
        spro_mp_reader_init(&r, in.p, in.len);
        const uint8_t *start = r.p;
        int64_t v = 12345;
        int err = spro_mp_read_int(&r, cases[k].min, cases[k].max, &v);
        bool at_end = r.p == r.end, unmoved = r.p == start;
        input_free(&in);
        CASE_EQ(cases[k].hex, err, cases[k].err);
        if (err == 0) {
            CHECK_EQ(v, cases[k].value);
            CHECK(at_end);
        } else {
            CHECK_EQ(v, 12345);
            CHECK(unmoved);
        }
    }
}

enum op { OP_MAP, OP_ARRAY, OP_STR, OP_BIN, OP_BOOL, OP_NIL, OP_SKIP };

/* Reads of every other kind: result, value read and bytes consumed. */
static void test_read_other(void)
{
    static const struct {
        const char *hex;
        enum op op;
        size_t max; /* count or length limit; depth for OP_SKIP */
        int err;
        uint64_t value; /* count, length or bool */
    } cases[] = {
        {"80", OP_MAP, 16, 0, 0},
        {"8f 00*30", OP_MAP, 16, 0, 15},
        {"de 00 10 00*32", OP_MAP, 16, 0, 16},
        {"de 00 11 00*34", OP_MAP, 16, SPRO_ETOOLONG, 0},
        {"82 00 00 00", OP_MAP, 16, SPRO_ETRUNCATED, 0}, /* 2 entries need 4 bytes */
        {"90", OP_MAP, 16, SPRO_EBADTYPE, 0},
        {"90", OP_ARRAY, 16, 0, 0},
        {"dc 00 03 00 00 00", OP_ARRAY, 16, 0, 3},
        {"dd 00 00 00 03 00 00 00", OP_ARRAY, 3, 0, 3},
        {"dd 00 00 00 04 00 00 00 00", OP_ARRAY, 3, SPRO_ETOOLONG, 0},
        {"93 00 00", OP_ARRAY, 16, SPRO_ETRUNCATED, 0},
        {"dc 00", OP_ARRAY, 16, SPRO_ETRUNCATED, 0},
        {"80", OP_ARRAY, 16, SPRO_EBADTYPE, 0},
        {"a0", OP_STR, 0, 0, 0},
        {"a3 61 62 63", OP_STR, 3, 0, 3},
        {"a3 61 62 63", OP_STR, 2, SPRO_ETOOLONG, 0},
        {"d9 03 61 62 63", OP_STR, 3, 0, 3},
        {"da 00 03 61 62 63", OP_STR, 3, 0, 3},
        {"db 00 00 00 03 61 62 63", OP_STR, 3, 0, 3},
        {"db 00 00 00 04 61 62 63", OP_STR, 8, SPRO_ETRUNCATED, 0},
        {"a2 c3 a9", OP_STR, 8, 0, 2},
        {"a2 c3", OP_STR, 8, SPRO_ETRUNCATED, 0},
        {"a1 c3", OP_STR, 8, SPRO_EBADUTF8, 0},
        {"c4 00", OP_STR, 8, SPRO_EBADTYPE, 0},
        {"c4 00", OP_BIN, 0, 0, 0},
        {"c5 00 02 ff 00", OP_BIN, 2, 0, 2},
        {"c6 00 00 00 02 ff 00", OP_BIN, 2, 0, 2},
        {"c6 00 00 00 03 ff 00 01", OP_BIN, 2, SPRO_ETOOLONG, 0},
        {"c5 00 03 ff 00", OP_BIN, 8, SPRO_ETRUNCATED, 0},
        {"a0", OP_BIN, 8, SPRO_EBADTYPE, 0},
        {"c2", OP_BOOL, 0, 0, 0},
        {"c3", OP_BOOL, 0, 0, 1},
        {"c0", OP_BOOL, 0, SPRO_EBADTYPE, 0},
        {"00", OP_BOOL, 0, SPRO_EBADTYPE, 0},
        {"c0", OP_NIL, 0, 0, 0},
        {"c2", OP_NIL, 0, SPRO_EBADTYPE, 0},
        {"", OP_NIL, 0, SPRO_ETRUNCATED, 0},
        {"c1", OP_NIL, 0, SPRO_EMALFORMED, 0},
        {"c1", OP_STR, 8, SPRO_EMALFORMED, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct input in = unhex(cases[k].hex);
        struct spro_mp_reader r;
        spro_mp_reader_init(&r, in.p, in.len);
        const uint8_t *start = r.p;
        uint32_t n = 0;
        size_t len = 0;
        const char *s = NULL;
        const uint8_t *b = NULL;
        bool flag = false;
        int err = 0;
        uint64_t value = 0;
        size_t max = cases[k].max;
        switch (cases[k].op) {
        case OP_MAP:
            err = spro_mp_read_map(&r, (uint32_t)max, &n);
            value = n;
            break;
        case OP_ARRAY:
            err = spro_mp_read_array(&r, (uint32_t)max, &n);
            value = n;
            break;
        case OP_STR:
            err = spro_mp_read_str(&r, max, &s, &len);
            value = len;
            if (err == 0 && (s == NULL || (const uint8_t *)s + len != r.p))
                err = 1; /* the string must end where the reader now stands */
            break;
        case OP_BIN:
            err = spro_mp_read_bin(&r, max, &b, &len);
            value = len;
            if (err == 0 && (b == NULL || b + len != r.p))
                err = 1;
            break;
        case OP_BOOL:
            err = spro_mp_read_bool(&r, &flag);
            value = flag;
            break;
        case OP_NIL:
            err = spro_mp_read_nil(&r);
            break;
        case OP_SKIP:
            err = spro_mp_skip(&r, (unsigned)max);
            break;
        }
        bool moved = r.p != start;
        size_t consumed = (size_t)(r.p - start), header_len = in.len;
        input_free(&in);
        CASE_EQ(cases[k].hex, err, cases[k].err);
        if (err == 0) {
            CHECK(value == cases[k].value);
            if (cases[k].op == OP_STR || cases[k].op == OP_BIN || cases[k].op >= OP_BOOL)
                CHECK_EQ(consumed, header_len); /* whole value */
            else
                CHECK(moved);
        } else {
            CHECK(!moved);
        }
    }
}

/* A count or length field claiming gigabytes in a buffer of a few bytes is
 * refused at once, with nothing allocated and the cursor unmoved. */
static void test_hostile_headers(void)
{
    struct input arr = unhex("dd ff ff ff ff 00");
    struct input map = unhex("df ff ff ff ff 00 00");
    struct input str = unhex("db ff ff ff ff 61");
    struct input bin = unhex("c6 ff ff ff ff 00");
    struct spro_mp_reader r;
    uint32_t n;
    const char *s;
    const uint8_t *b;
    size_t len;
    struct spro_msg m;
    int e[16], i = 0;

    size_t before = heap_in_use();
    spro_mp_reader_init(&r, arr.p, arr.len);
    e[i++] = spro_mp_read_array(&r, UINT32_MAX, &n);
    e[i++] = r.p == arr.p ? 0 : 1;
    spro_mp_reader_init(&r, map.p, map.len);
    e[i++] = spro_mp_read_map(&r, UINT32_MAX, &n);
    e[i++] = r.p == map.p ? 0 : 1;
    spro_mp_reader_init(&r, str.p, str.len);
    e[i++] = spro_mp_read_str(&r, SIZE_MAX, &s, &len);
    e[i++] = r.p == str.p ? 0 : 1;
    spro_mp_reader_init(&r, bin.p, bin.len);
    e[i++] = spro_mp_read_bin(&r, SIZE_MAX, &b, &len);
    e[i++] = r.p == bin.p ? 0 : 1;
    e[i++] = spro_proto_validate(arr.p, arr.len);
    e[i++] = spro_proto_validate(map.p, map.len);
    e[i++] = spro_proto_validate(str.p, str.len);
    e[i++] = spro_proto_validate(bin.p, bin.len);
    e[i++] = spro_proto_decode(arr.p, arr.len, &m);
    e[i++] = spro_proto_decode(map.p, map.len, &m);
    size_t after = heap_in_use();

    input_free(&arr);
    input_free(&map);
    input_free(&str);
    input_free(&bin);
    static const int want[] = {
        SPRO_ETRUNCATED, 0,
        SPRO_ETRUNCATED, 0,
        SPRO_ETRUNCATED, 0,
        SPRO_ETRUNCATED, 0,
        SPRO_ETOOLONG,   SPRO_ETOOLONG,
        SPRO_ETOOLONG,   SPRO_ETOOLONG,
        SPRO_EBADTYPE,   SPRO_ETOOLONG,
    };
    CHECK_EQ(i, sizeof(want) / sizeof(want[0]));
    for (int k = 0; k < i; k++) {
        if (e[k] != want[k])
            fprintf(stderr, "step %d\n", k);
        CHECK_EQ(e[k], want[k]);
    }
    CHECK_EQ(after, before);

    /* Counts within the limits but above the bytes present. */
    CHECK_EQ(validate_hex("dc 10 00"), SPRO_ETRUNCATED);
    CHECK_EQ(validate_hex("de 10 00 00*8191"), SPRO_ETRUNCATED);
    CHECK_EQ(validate_hex("da 10 00 61*4095"), SPRO_ETRUNCATED);
}

/* ---- spro_mp_skip / spro_proto_validate ---- */

static void test_validate(void)
{
    static const struct negative cases[] = {
        {"nil", "c0", 0},
        {"float 32", "ca 3f 80 00 00", 0},
        {"float 64", "cb 3f f0 00 00 00 00 00 00", 0},
        {"bool", "c3", 0},
        {"negative", "d3 80 00 00 00 00 00 00 00", 0},
        {"empty containers", "82 a0 90 a1 61 80", 0},
        {"16 nested arrays", "91*16 00", 0},
        {"17 nested arrays", "91*17 00", SPRO_ETOODEEP},
        {"16 nested empty arrays", "91*15 90", 0},
        {"17 nested empty arrays", "91*16 90", SPRO_ETOODEEP},
        {"16 nested maps", "(81 a0)*15 80", 0},
        {"17 nested maps", "(81 a0)*16 80", SPRO_ETOODEEP},
        {"deep key", "81 91*16 00 00", SPRO_ETOODEEP},
        {"int keys may repeat", "82 01 00 01 00", 0},
        {"str keys may not", "82 a1 61 00 a1 61 01", SPRO_EDUPKEY},
        {"str and bin keys", "82 a1 61 00 c4 01 61 01", 0},
        {"dup among mixed keys", "83 a1 61 00 01 00 d9 01 61 00", SPRO_EDUPKEY},
        {"same length, other bytes", "82 a2 61 62 00 a2 61 63 00", 0},
        {"empty keys", "82 a0 00 a0 00", SPRO_EDUPKEY},
        {"dup in a nested map", "92 00 82 a1 61 00 a1 61 01", SPRO_EDUPKEY},
        {"dup deep down", "81 a1 61 81 a1 62 83 a1 63 00 a1 64 00 a1 63 00", SPRO_EDUPKEY},
        {"same key in two maps", "92 81 a1 61 00 81 a1 61 00", 0},
        /* Maps of up to 16 keys are checked pair by pair, larger ones by a
         * second walk: both sides of the boundary. */
        {"16 keys, a dup",
         "de 00 10 a1 61 00 a1 62 00 a1 63 00 a1 64 00 a1 65 00 a1 66 00 a1 67 00 a1 68 00 a1 69 "
         "00 a1 6a 00 a1 6b 00 a1 6c 00 a1 6d 00 a1 6e 00 a1 6f 00 a1 61 00",
         SPRO_EDUPKEY},
        {"17 keys, a dup",
         "de 00 11 a1 61 00 a1 62 00 a1 63 00 a1 64 00 a1 65 00 a1 66 00 a1 67 00 a1 68 00 a1 69 "
         "00 a1 6a 00 a1 6b 00 a1 6c 00 a1 6d 00 a1 6e 00 a1 6f 00 a1 70 00 a1 70 00",
         SPRO_EDUPKEY},
        {"17 keys",
         "de 00 11 a1 61 00 a1 62 00 a1 63 00 a1 64 00 a1 65 00 a1 66 00 a1 67 00 a1 68 00 a1 69 "
         "00 a1 6a 00 a1 6b 00 a1 6c 00 a1 6d 00 a1 6e 00 a1 6f 00 a1 70 00 a1 71 00",
         0},
        {"truncation before dup", "82 a1 61 00 a1 61", SPRO_ETRUNCATED},
        {"fixext", "d4 01 00", SPRO_EBADTYPE},
        {"fixext 16", "d8 01 00*16", SPRO_EBADTYPE},
        {"ext 8", "c7 00 01", SPRO_EBADTYPE},
        {"ext 32", "c9 00 00 00 00 01", SPRO_EBADTYPE},
        {"array of 4096", "dc 10 00 00*4096", 0},
        {"array of 4097", "dc 10 01 00*4097", SPRO_ETOOLONG},
        {"str of 4096", "da 10 00 61*4096", 0},
        {"str of 4097", "da 10 01 61*4097", SPRO_ETOOLONG},
        {"bin of 2^20", "c6 00 10 00 00 00*1048576", 0},
        {"bin of 2^20+1", "c6 00 10 00 01 00*1048577", SPRO_ETOOLONG},
        {"bad utf8 deep", "91 91 a1 ff", SPRO_EBADUTF8},
        {"trailing", "00 00", SPRO_ETRAILING},
        {"c1 in an array", "92 00 c1", SPRO_EMALFORMED},
        {"empty", "", SPRO_ETRUNCATED},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        CASE_EQ(cases[k].name, validate_hex(cases[k].hex), cases[k].err);

    /* The depth argument counts containers already open. */
    struct input in = unhex("91 00");
    struct spro_mp_reader r;
    spro_mp_reader_init(&r, in.p, in.len);
    int deep = spro_mp_skip(&r, SPRO_PROTO_MAX_DEPTH);
    bool unmoved = r.p == in.p;
    int ok = spro_mp_skip(&r, SPRO_PROTO_MAX_DEPTH - 1);
    int fin = spro_mp_finish(&r);
    input_free(&in);
    CHECK_EQ(deep, SPRO_ETOODEEP);
    CHECK(unmoved);
    CHECK_EQ(ok, 0);
    CHECK_EQ(fin, 0);
}

/* Builds a map of n distinct 3-character keys (hex of the index), the last
 * key optionally equal to the first, each value nested `inner` times. */
static struct spro_buf big_map(unsigned n, bool dup, const char *inner)
{
    struct spro_buf b = {0};
    uint8_t h[3] = {0xde, (uint8_t)(n >> 8), (uint8_t)n};
    spro_buf_append(&b, h, 3);
    for (unsigned k = 0; k < n; k++) {
        char key[16];
        snprintf(key, sizeof(key), "\xa3%03x", (dup && k == n - 1 ? 0 : k) & 0xfff);
        spro_buf_append(&b, key, 4);
        spro_buf_append(&b, inner, strlen(inner));
    }
    return b;
}

/* Duplicate detection stays fast on the largest maps. */
static void test_validate_large_maps(void)
{
    struct spro_buf b = big_map(SPRO_PROTO_MAX_ITEMS, false, "\xc0");
    uint8_t *p = copy_exact(b.data, b.len);
    int err = spro_proto_validate(p, b.len);
    free(p);
    spro_buf_free(&b);
    CHECK_EQ(err, 0);

    b = big_map(SPRO_PROTO_MAX_ITEMS, true, "\xc0");
    p = copy_exact(b.data, b.len);
    err = spro_proto_validate(p, b.len);
    free(p);
    spro_buf_free(&b);
    CHECK_EQ(err, SPRO_EDUPKEY);

    /* An array of 256 maps of 256 keys each: every map is checked once. */
    struct spro_buf inner = big_map(256, false, "\xc0");
    spro_buf_append(&inner, "", 1);
    struct spro_buf outer = {0};
    uint8_t h[3] = {0xdc, 0x01, 0x00}; /* array of 256 */
    spro_buf_append(&outer, h, 3);
    for (int k = 0; k < 256; k++)
        spro_buf_append(&outer, inner.data, inner.len - 1);
    p = copy_exact(outer.data, outer.len);
    err = spro_proto_validate(p, outer.len);
    free(p);
    spro_buf_free(&outer);
    spro_buf_free(&inner);
    CHECK_EQ(err, 0);
}

/* ---- Buffer ---- */

static void test_buf(void)
{
    struct spro_buf b = {0};
    spro_buf_append(&b, NULL, 0);
    CHECK(b.data == NULL);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(b.cap, 0);
    for (int k = 0; k < 10000; k++) {
        uint8_t c = (uint8_t)k;
        spro_buf_append(&b, &c, 1);
    }
    CHECK_EQ(b.len, 10000);
    CHECK(b.cap >= b.len);
    CHECK(b.cap < 2 * 10000 + 64);
    for (int k = 0; k < 10000; k++)
        CHECK_EQ(b.data[k], (uint8_t)k);
    spro_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(b.cap, 0);
    spro_buf_free(&b); /* twice is fine */
    spro_buf_append(&b, "abc", 3);
    CHECK_BYTES(b.data, b.len, "abc", 3);
    spro_buf_free(&b);
}

/* spro_buf_reserve: room for n more bytes at once, so that the appends
 * after it never move the buffer (a secret is never left behind in a
 * freed block). */
static void test_buf_reserve(void)
{
    struct spro_buf b = {0};
    spro_buf_reserve(&b, 0); /* nothing needed: stays empty */
    CHECK(b.data == NULL);
    CHECK_EQ(b.cap, 0);
    spro_buf_append(&b, "abc", 3);
    spro_buf_reserve(&b, 1000);
    CHECK_EQ(b.len, 3);
    CHECK(b.cap >= 1003);
    CHECK_BYTES(b.data, b.len, "abc", 3);
    const uint8_t *at = b.data;
    size_t cap = b.cap;
    for (int k = 0; k < 1000; k++) {
        uint8_t c = (uint8_t)k;
        spro_buf_append(&b, &c, 1);
    }
    CHECK(b.data == at); /* no growth */
    CHECK_EQ(b.cap, cap);
    CHECK_EQ(b.len, 1003);
    CHECK_EQ(b.data[3 + 999], (uint8_t)999);
    spro_buf_reserve(&b, b.cap - b.len); /* fits exactly: unchanged */
    CHECK(b.data == at);
    CHECK_EQ(b.cap, cap);
    spro_buf_free(&b);
}

/* ---- Names and the error table ---- */

static void test_type_names(void)
{
    CHECK_STR(spro_proto_type_name(SPRO_MSG_ERROR), "error");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_HEALTH), "health");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_ECHO), "echo");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_ECHO_REPLY), "echo_reply");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_SERVER_KEY), "server_key");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_HELLO), "hello");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_WELCOME), "welcome");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_WIPE), "wipe");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PING), "ping");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PONG), "pong");
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PUSH), "push"); /* sync: test_proto_sync.c */
    CHECK_STR(spro_proto_type_name(SPRO_MSG_PULL_REPLY), "pull_reply");
    CHECK(spro_proto_type_name((enum spro_msg_type)(SPRO_MSG_PULL_REPLY + 1)) == NULL);
    CHECK(spro_proto_type_name((enum spro_msg_type)0) == NULL);
    CHECK(spro_proto_type_name((enum spro_msg_type)99) == NULL);
}

static void test_errors(void)
{
    CHECK_STR(spro_errcode(SPRO_EMALFORMED), "malformed");
    CHECK_EQ(spro_errstatus(SPRO_EMALFORMED), 400);
    CHECK_STR(spro_strerror(SPRO_EMALFORMED), "body is not well-formed msgpack");
    CHECK_STR(spro_errcode(SPRO_EBADMSGTYPE), "unknown_type");
    CHECK_STR(spro_errcode(SPRO_ENOTFOUND), "not_found");
    CHECK_EQ(spro_errstatus(SPRO_ENOTFOUND), 404);
    CHECK_EQ(spro_errstatus(SPRO_ETOOLARGE), 413);
    CHECK_EQ(spro_errstatus(SPRO_EUNAVAILABLE), 503);
    CHECK_STR(spro_errcode(SPRO_ESTORE), "internal");
    CHECK_EQ(spro_errstatus(SPRO_ESTORE), 500);
    CHECK_STR(spro_strerror(SPRO_ESTORE), "database error");
    CHECK_STR(spro_errcode(-ENOENT), "internal");
    CHECK_EQ(spro_errstatus(-ENOENT), 500);
    CHECK_STR(spro_strerror(-ENOENT), strerror(ENOENT));

    /* Every code a client can see survives an error message round trip. */
    for (int err = SPRO__EBASE + 1; err < SPRO__ELAST; err++) {
        struct spro_buf out = {0};
        struct spro_msg m;
        spro_proto_encode_error(err, NULL, &out);
        int derr = spro_proto_decode(out.data, out.len, &m);
        bool internal = strcmp(spro_errcode(err), "internal") == 0;
        const char *want = internal ? "internal error" : spro_strerror(err);
        bool code_ok =
            derr == 0 &&
            bytes_equal(m.u.error.code, (struct spro_bytes){(const uint8_t *)spro_errcode(err),
                                                            strlen(spro_errcode(err))});
        bool msg_ok =
            derr == 0 && bytes_equal(m.u.error.message,
                                     (struct spro_bytes){(const uint8_t *)want, strlen(want)});
        spro_buf_free(&out);
        CHECK_EQ(derr, 0);
        CHECK(code_ok);
        CHECK(msg_ok);
        CHECK(spro_errstatus(err) >= 400 && spro_errstatus(err) <= 503);
    }
}

static const struct check_test tests[] = {
    {"golden_encode", test_golden_encode},
    {"golden_decode", test_golden_decode},
    {"golden_prefixes", test_golden_prefixes},
    {"encode_error_golden", test_encode_error_golden},
    {"encode_error_detail", test_encode_error_detail},
    {"roundtrip", test_roundtrip},
    {"encode_widths", test_encode_widths},
    {"encode_refused", test_encode_refused},
    {"decode_negative", test_decode_negative},
    {"decode_channel_negative", test_decode_channel_negative},
    {"decode_lenient_forms", test_decode_lenient_forms},
    {"decode_channel_lenient_forms", test_decode_channel_lenient_forms},
    {"decode_utf8_edges", test_decode_utf8_edges},
    {"hello_ticket", test_hello_ticket},
    {"msg_equal_channel", test_msg_equal_channel},
    {"read_uint", test_read_uint},
    {"read_int", test_read_int},
    {"read_other", test_read_other},
    {"hostile_headers", test_hostile_headers},
    {"validate", test_validate},
    {"validate_large_maps", test_validate_large_maps},
    {"buf", test_buf},
    {"buf_reserve", test_buf_reserve},
    {"type_names", test_type_names},
    {"errors", test_errors},
};

CHECK_MAIN(tests)
