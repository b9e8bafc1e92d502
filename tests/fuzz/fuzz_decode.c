/*
 * libFuzzer target for the proto/ decoders.
 *
 * Each input is fed to spro_proto_validate(), spro_proto_decode() and
 * spro_proto_decode_sync() (with an arena of exactly
 * SPRO_PROTO_ARENA_BYTES(size) bytes, allocated so that AddressSanitizer
 * sees any access past it); they must return without a sanitizer report
 * whatever the bytes.  At most one of the two decoders accepts an input,
 * and only one that validates.  When decoding succeeds the message is
 * encoded again and must decode to the same message, and encoding that
 * gives the same bytes (the canonical form is a fixed point; a sync value's
 * raw bytes are copied verbatim, so they are too).  decode_sync must never
 * run out of its arena (SPRO_ENOMEM would disprove the bound of
 * proto/sync.c) and gives back what it took when it fails.  Any mismatch
 * aborts, which libFuzzer records as a crash.  Built only with
 * SPRO_FUZZ=ON (see CMakeLists.txt in this folder).
 */
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Noreturn void fail(const char *what)
{
    fprintf(stderr, "fuzz_decode: %s\n", what);
    abort();
}

/* An arena of exactly SPRO_PROTO_ARENA_BYTES(len) bytes (none for 0). */
static struct spro_arena arena_for(size_t len)
{
    size_t cap = SPRO_PROTO_ARENA_BYTES(len);
    struct spro_arena a = {NULL, 0, cap};
    if (cap > 0 && (a.base = malloc(cap)) == NULL)
        fail("out of memory");
    return a;
}

static void same_bytes(const struct spro_buf *a, const struct spro_buf *b)
{
    if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
        fail("encoding is not canonical");
}

static void check_flat(const struct spro_msg *m1)
{
    struct spro_msg m2;
    struct spro_buf e1 = {0}, e2 = {0};
    if (spro_proto_encode(m1, &e1) != 0)
        fail("a decoded message does not encode");
    if (spro_proto_validate(e1.data, e1.len) != 0)
        fail("an encoding does not validate");
    if (spro_proto_decode(e1.data, e1.len, &m2) != 0)
        fail("an encoding does not decode");
    if (!spro_proto_msg_equal(m1, &m2))
        fail("decode(encode(m)) != m");
    if (spro_proto_encode(&m2, &e2) != 0)
        fail("a re-decoded message does not encode");
    same_bytes(&e1, &e2);
    spro_buf_free(&e1);
    spro_buf_free(&e2);
}

static void check_sync(const struct spro_msg *m1)
{
    struct spro_msg m2;
    struct spro_buf e1 = {0}, e2 = {0};
    if (spro_proto_encode(m1, &e1) != 0)
        fail("a decoded sync message does not encode");
    if (spro_proto_validate(e1.data, e1.len) != 0)
        fail("a sync encoding does not validate");
    struct spro_arena a = arena_for(e1.len);
    int err = spro_proto_decode_sync(e1.data, e1.len, &a, &m2);
    if (err != 0)
        fail(err == SPRO_ENOMEM ? "arena bound broken (re-decode)"
                                : "a sync encoding does not decode");
    if (!spro_proto_msg_equal(m1, &m2) || !spro_proto_msg_equal(&m2, m1))
        fail("decode_sync(encode(m)) != m");
    if (spro_proto_encode(&m2, &e2) != 0)
        fail("a re-decoded sync message does not encode");
    same_bytes(&e1, &e2);
    free(a.base);
    spro_buf_free(&e1);
    spro_buf_free(&e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spro_msg flat, sync;
    int valid = spro_proto_validate(data, size);
    int err = spro_proto_decode(data, size, &flat);
    struct spro_arena a = arena_for(size);
    int serr = spro_proto_decode_sync(data, size, &a, &sync);
    if (err > 0 || valid > 0 || serr > 0)
        fail("positive return code");
    if (serr == SPRO_ENOMEM)
        fail("arena bound broken");
    if (serr != 0 && a.len != 0)
        fail("a failed decode_sync kept arena bytes");
    if (serr > SPRO__EBASE && serr < SPRO__ELAST && spro_errstatus(serr) != 400)
        fail("decode_sync gave a code that is not a request error");
    if ((err == 0 || serr == 0) && valid != 0)
        fail("a decoder accepted a body that validate refused");
    if (err == 0 && serr == 0)
        fail("both decoders accepted one body");
    if (err == 0)
        check_flat(&flat);
    if (serr == 0)
        check_sync(&sync);
    free(a.base);
    return 0;
}
