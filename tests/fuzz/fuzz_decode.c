/*
 * libFuzzer target for the proto/ decoder.
 *
 * Each input is fed to spro_proto_validate() and spro_proto_decode(); they
 * must return without a sanitizer report whatever the bytes.  When decoding
 * succeeds the message is encoded again and must decode to the same
 * message, and encoding that gives the same bytes (the canonical form is a
 * fixed point).  Any mismatch aborts, which libFuzzer records as a crash.
 * Built only with SPRO_FUZZ=ON (see CMakeLists.txt in this folder).
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spro_msg m1, m2;
    int valid = spro_proto_validate(data, size);
    int err = spro_proto_decode(data, size, &m1);
    if (err > 0 || valid > 0)
        fail("positive return code");
    if (err != 0)
        return 0;
    if (valid != 0)
        fail("decode accepted a body that validate refused");

    struct spro_buf e1 = {0}, e2 = {0};
    if (spro_proto_encode(&m1, &e1) != 0)
        fail("a decoded message does not encode");
    if (spro_proto_validate(e1.data, e1.len) != 0)
        fail("an encoding does not validate");
    if (spro_proto_decode(e1.data, e1.len, &m2) != 0)
        fail("an encoding does not decode");
    if (!spro_proto_msg_equal(&m1, &m2))
        fail("decode(encode(m)) != m");
    if (spro_proto_encode(&m2, &e2) != 0)
        fail("a re-decoded message does not encode");
    if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len) != 0)
        fail("encoding is not canonical");
    spro_buf_free(&e1);
    spro_buf_free(&e2);
    return 0;
}
