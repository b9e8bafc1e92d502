/*
 * Unit tests of field-level encryption and blind indexes (crypto/field.c):
 * round trips, every tampered byte, every truncation, blobs presented under
 * another beneficiary, epoch, record, field, schema version, key id or key,
 * argument limits, known-answer vectors, and the normalisation, phonetic
 * and duplicate-detection tables.  docs/CRYPTO.md is read too: its
 * known-answer values must be the ones checked here, and every row of its
 * example tables is checked against the code.
 */
#include "check.h"
#include "crypto/crypto.h"

#include <stdlib.h>

/* ---- Helpers ---- */

static void unhex(uint8_t *out, size_t n, const char *hex)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(check_hexval(hex[2 * i]) << 4 | check_hexval(hex[2 * i + 1]));
}

static int all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* A heap copy of exactly n bytes, so that reading past the end trips the
 * address sanitizer.  malloc(0) may return NULL; one byte is allocated. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (c == NULL)
        abort();
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

/* ---- Known-answer inputs and outputs (docs/CRYPTO.md) ---- */

#define KAT_MASTER "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KAT_DK "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
#define KAT_BENEFICIARY "3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a37"
#define KAT_KEY_ID "3f2c8a1e5b7d4e219a0c6d4b2e8f1a37"
#define KAT_WRAP_NONCE "404142434445464748494a4b4c4d4e4f5051525354555657"
#define KAT_FIELD_NONCE "606162636465666768696a6b6c6d6e6f7071727374757677"
#define KAT_KEK1 "8e95506aa6e8e9c40a01ee03ebdefaa936df7e6a72fd9a4ddbf0b97580806532"
#define KAT_WRAPPED                                                                                \
    "0100000001404142434445464748494a4b4c4d4e4f5051525354555657a58c33"                             \
    "6208f3f74f1791dd294fddebdf2898f9d06f21985ccdb6af07a92af9de206bf6"                             \
    "1fcabed5fef3d15e7917eee021"
#define KAT_PLAINTEXT "Lef\xc3\xa8vre" /* "Lefèvre", 8 bytes */
#define KAT_SEALED                                                                                 \
    "013f2c8a1e5b7d4e219a0c6d4b2e8f1a37606162636465666768696a6b6c6d6e"                             \
    "6f70717273747576770f3e258f1027eccabcf610a5951ef8017255e9f0a79858"                             \
    "1e"
#define KAT_BLIND_KEY "7cfd55867bfd34bda0633ec7bf18080226779bf4d01289198830f6d09c845f54"
#define KAT_BLIND_INE "dfd168c31d275b7a9be63f067287e938"
#define KAT_DEDUP "lefevr|elodi|2009-04-17"
#define KAT_BLIND_DEDUP "03b9e1e34a3c98adf982a673ed335941"

static const char *const kat_hex[] = {
    KAT_MASTER,  KAT_DK,     KAT_KEY_ID,    KAT_WRAP_NONCE, KAT_FIELD_NONCE, KAT_KEK1,
    KAT_WRAPPED, KAT_SEALED, KAT_BLIND_KEY, KAT_BLIND_INE,  KAT_BLIND_DEDUP,
};

/* The fixed material of the examples, and a context and key id to seal
 * with in the other tests. */
struct fixture {
    uint8_t master[SPRO_KEY_BYTES], dk[SPRO_KEY_BYTES], kek1[SPRO_KEY_BYTES];
    uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES];
    uint8_t wrap_nonce[SPRO_FIELD_NONCE_BYTES], field_nonce[SPRO_FIELD_NONCE_BYTES];
    struct spro_field_context ctx;
};

static struct fixture fixture(void)
{
    struct fixture f;
    unhex(f.master, sizeof f.master, KAT_MASTER);
    unhex(f.dk, sizeof f.dk, KAT_DK);
    unhex(f.kek1, sizeof f.kek1, KAT_KEK1);
    unhex(f.key_id, sizeof f.key_id, KAT_KEY_ID);
    unhex(f.wrap_nonce, sizeof f.wrap_nonce, KAT_WRAP_NONCE);
    unhex(f.field_nonce, sizeof f.field_nonce, KAT_FIELD_NONCE);
    f.ctx = (struct spro_field_context){"beneficiary", KAT_BENEFICIARY, "family_name", 3};
    return f;
}

/* ---- Key-encryption keys and wrapped data keys ---- */

static void test_kek_derive(void)
{
    struct fixture f = fixture();
    uint8_t kek[SPRO_KEY_BYTES], kek2[SPRO_KEY_BYTES], want[SPRO_KEY_BYTES];
    unhex(want, sizeof want, KAT_KEK1);
    CHECK_EQ(spro_field_kek_derive(kek, f.master, 1), 0);
    CHECK_BYTES(kek, sizeof kek, want, sizeof want);
    CHECK_EQ(spro_field_kek_derive(kek2, f.master, 2), 0);
    CHECK(!spro_crypto_equal(kek, kek2, sizeof kek));
    CHECK_EQ(spro_field_kek_derive(kek2, f.master, UINT32_MAX), 0);
    CHECK(!spro_crypto_equal(kek, kek2, sizeof kek));
    memset(kek, 0xaa, sizeof kek);
    CHECK_EQ(spro_field_kek_derive(kek, f.master, 0), SPRO_ERANGE);
    CHECK(all_zero(kek, sizeof kek));
}

static void test_wrap_kat(void)
{
    struct fixture f = fixture();
    uint8_t out[SPRO_WRAPPED_KEY_BYTES], want[SPRO_WRAPPED_KEY_BYTES], dk[SPRO_KEY_BYTES];
    unhex(want, sizeof want, KAT_WRAPPED);
    CHECK_EQ(spro_field_key_wrap_with_nonce(out, f.dk, f.kek1, 1, KAT_BENEFICIARY, f.wrap_nonce),
             0);
    CHECK_BYTES(out, sizeof out, want, sizeof want);
    CHECK_EQ(spro_field_key_epoch(want, sizeof want), 1);
    CHECK_EQ(spro_field_key_unwrap(dk, want, sizeof want, f.kek1, 1, KAT_BENEFICIARY), 0);
    CHECK_BYTES(dk, sizeof dk, f.dk, sizeof f.dk);
}

static void test_wrap_round_trip(void)
{
    uint8_t dk[SPRO_KEY_BYTES], kek[SPRO_KEY_BYTES], got[SPRO_KEY_BYTES];
    uint8_t w1[SPRO_WRAPPED_KEY_BYTES], w2[SPRO_WRAPPED_KEY_BYTES];
    spro_field_key_new(dk);
    spro_crypto_random(kek, sizeof kek);
    CHECK_EQ(spro_field_key_wrap(w1, dk, kek, 7, "b-1"), 0);
    CHECK_EQ(spro_field_key_wrap(w2, dk, kek, 7, "b-1"), 0);
    CHECK(memcmp(w1, w2, sizeof w1) != 0); /* fresh nonce each time */
    CHECK_EQ(w1[0], SPRO_FIELD_FORMAT_V1);
    CHECK_EQ(spro_field_key_epoch(w1, sizeof w1), 7);
    CHECK_EQ(spro_field_key_unwrap(got, w1, sizeof w1, kek, 7, "b-1"), 0);
    CHECK_BYTES(got, sizeof got, dk, sizeof dk);
    CHECK_EQ(spro_field_key_unwrap(got, w2, sizeof w2, kek, 7, "b-1"), 0);
    CHECK_BYTES(got, sizeof got, dk, sizeof dk);

    /* The largest epoch and the longest beneficiary id. */
    char id[SPRO_FIELD_ID_MAX + 1];
    memset(id, 'x', SPRO_FIELD_ID_MAX);
    id[SPRO_FIELD_ID_MAX] = '\0';
    CHECK_EQ(spro_field_key_wrap(w1, dk, kek, UINT32_MAX, id), 0);
    CHECK_EQ(spro_field_key_epoch(w1, sizeof w1), UINT32_MAX);
    CHECK_EQ(spro_field_key_unwrap(got, w1, sizeof w1, kek, UINT32_MAX, id), 0);
    CHECK_BYTES(got, sizeof got, dk, sizeof dk);
}

static void test_wrap_bad_arguments(void)
{
    uint8_t dk[SPRO_KEY_BYTES] = {1}, kek[SPRO_KEY_BYTES] = {2}, w[SPRO_WRAPPED_KEY_BYTES];
    char id[SPRO_FIELD_ID_MAX + 2];
    memset(id, 'x', SPRO_FIELD_ID_MAX + 1);
    id[SPRO_FIELD_ID_MAX + 1] = '\0';
    memset(w, 0xaa, sizeof w);
    CHECK_EQ(spro_field_key_wrap(w, dk, kek, 0, "b"), SPRO_ERANGE);
    CHECK(all_zero(w, sizeof w));
    memset(w, 0xaa, sizeof w);
    CHECK_EQ(spro_field_key_wrap(w, dk, kek, 1, ""), SPRO_EMISSING);
    CHECK(all_zero(w, sizeof w));
    memset(w, 0xaa, sizeof w);
    CHECK_EQ(spro_field_key_wrap(w, dk, kek, 1, id), SPRO_ETOOLONG);
    CHECK(all_zero(w, sizeof w));

    /* Unwrapping with the same bad arguments is an integrity failure. */
    CHECK_EQ(spro_field_key_wrap(w, dk, kek, 1, "b"), 0);
    uint8_t got[SPRO_KEY_BYTES];
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, kek, 1, ""), SPRO_EINTEGRITY);
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, kek, 1, id), SPRO_EINTEGRITY);
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, kek, 0, "b"), SPRO_EINTEGRITY);
    CHECK(all_zero(got, sizeof got));
}

static void test_wrap_tampered(void)
{
    struct fixture f = fixture();
    uint8_t w[SPRO_WRAPPED_KEY_BYTES], got[SPRO_KEY_BYTES];
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    CHECK_EQ(spro_field_key_wrap(w, f.dk, f.kek1, 1, KAT_BENEFICIARY), 0);
    for (size_t i = 0; i < sizeof w; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            w[i] ^= masks[m];
            memset(got, 0xaa, sizeof got);
            int err = spro_field_key_unwrap(got, w, sizeof w, f.kek1, 1, KAT_BENEFICIARY);
            w[i] ^= masks[m];
            if (err != SPRO_EINTEGRITY || !all_zero(got, sizeof got))
                CHECK__FAIL("byte %zu ^ 0x%02x: unwrap gave %d", i, masks[m], err);
        }
    }
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, f.kek1, 1, KAT_BENEFICIARY), 0);
}

static void test_wrap_wrong_context(void)
{
    struct fixture f = fixture();
    uint8_t w[SPRO_WRAPPED_KEY_BYTES], got[SPRO_KEY_BYTES], kek2[SPRO_KEY_BYTES];
    uint8_t other[SPRO_KEY_BYTES];
    CHECK_EQ(spro_field_kek_derive(kek2, f.master, 2), 0);
    spro_crypto_random(other, sizeof other);
    CHECK_EQ(spro_field_key_wrap(w, f.dk, f.kek1, 1, KAT_BENEFICIARY), 0);

    /* Another beneficiary: similar ids, a prefix, an extension. */
    static const char *const others[] = {
        "3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a38",
        "3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a3",
        "3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a37 ",
        "3F2C8A1E-5B7D-4E21-9A0C-6D4B2E8F1A37",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        memset(got, 0xaa, sizeof got);
        CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, f.kek1, 1, others[i]), SPRO_EINTEGRITY);
        CHECK(all_zero(got, sizeof got));
    }
    /* Another epoch, with its own KEK or with the right one. */
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, kek2, 2, KAT_BENEFICIARY), SPRO_EINTEGRITY);
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, f.kek1, 2, KAT_BENEFICIARY), SPRO_EINTEGRITY);
    /* The epoch in the blob relabelled: the tag binds it. */
    w[4] = 2;
    CHECK_EQ(spro_field_key_epoch(w, sizeof w), 2);
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, f.kek1, 2, KAT_BENEFICIARY), SPRO_EINTEGRITY);
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, kek2, 2, KAT_BENEFICIARY), SPRO_EINTEGRITY);
    w[4] = 1;
    /* Another KEK under the right epoch. */
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, other, 1, KAT_BENEFICIARY), SPRO_EINTEGRITY);
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, kek2, 1, KAT_BENEFICIARY), SPRO_EINTEGRITY);
    CHECK(all_zero(got, sizeof got));
    CHECK_EQ(spro_field_key_unwrap(got, w, sizeof w, f.kek1, 1, KAT_BENEFICIARY), 0);
}

static void test_wrap_truncated(void)
{
    struct fixture f = fixture();
    uint8_t w[SPRO_WRAPPED_KEY_BYTES + 1], got[SPRO_KEY_BYTES];
    CHECK_EQ(spro_field_key_wrap(w, f.dk, f.kek1, 1, KAT_BENEFICIARY), 0);
    w[SPRO_WRAPPED_KEY_BYTES] = 0;
    for (size_t n = 0; n <= sizeof w; n++) {
        if (n == SPRO_WRAPPED_KEY_BYTES)
            continue;
        uint8_t *c = exact_copy(w, n);
        memset(got, 0xaa, sizeof got);
        int err = spro_field_key_unwrap(got, c, n, f.kek1, 1, KAT_BENEFICIARY);
        uint32_t epoch = spro_field_key_epoch(c, n);
        free(c);
        if (err != SPRO_EINTEGRITY || !all_zero(got, sizeof got) || epoch != 0)
            CHECK__FAIL("length %zu: unwrap gave %d, epoch %u", n, err, (unsigned)epoch);
    }
    /* Another version byte. */
    w[0] = 0x02;
    CHECK_EQ(spro_field_key_epoch(w, SPRO_WRAPPED_KEY_BYTES), 0);
    CHECK_EQ(spro_field_key_unwrap(got, w, SPRO_WRAPPED_KEY_BYTES, f.kek1, 1, KAT_BENEFICIARY),
             SPRO_EINTEGRITY);
}

static void test_rewrap(void)
{
    struct fixture f = fixture();
    uint8_t w1[SPRO_WRAPPED_KEY_BYTES], w2[SPRO_WRAPPED_KEY_BYTES], got[SPRO_KEY_BYTES];
    uint8_t kek2[SPRO_KEY_BYTES];
    CHECK_EQ(spro_field_kek_derive(kek2, f.master, 2), 0);
    CHECK_EQ(spro_field_key_wrap(w1, f.dk, f.kek1, 1, "b"), 0);
    CHECK_EQ(spro_field_key_rewrap(w2, w1, sizeof w1, f.kek1, 1, kek2, 2, "b"), 0);
    CHECK_EQ(spro_field_key_epoch(w2, sizeof w2), 2);
    CHECK_EQ(spro_field_key_unwrap(got, w2, sizeof w2, kek2, 2, "b"), 0);
    CHECK_BYTES(got, sizeof got, f.dk, sizeof f.dk);
    CHECK_EQ(spro_field_key_unwrap(got, w2, sizeof w2, f.kek1, 1, "b"), SPRO_EINTEGRITY);

    /* A wrapped key that does not open is not rewrapped. */
    memset(w2, 0xaa, sizeof w2);
    CHECK_EQ(spro_field_key_rewrap(w2, w1, sizeof w1, kek2, 1, kek2, 2, "b"), SPRO_EINTEGRITY);
    CHECK(all_zero(w2, sizeof w2));
    memset(w2, 0xaa, sizeof w2);
    CHECK_EQ(spro_field_key_rewrap(w2, w1, sizeof w1, f.kek1, 1, kek2, 2, "c"), SPRO_EINTEGRITY);
    CHECK(all_zero(w2, sizeof w2));
    memset(w2, 0xaa, sizeof w2);
    CHECK_EQ(spro_field_key_rewrap(w2, w1, sizeof w1, f.kek1, 1, kek2, 0, "b"), SPRO_ERANGE);
    CHECK(all_zero(w2, sizeof w2));
}

/* ---- Sealed field values ---- */

static void test_field_kat(void)
{
    struct fixture f = fixture();
    uint8_t out[128], want[SPRO_FIELD_SEALED_BYTES(8)], id[SPRO_FIELD_KEY_ID_BYTES];
    size_t n = 0;
    unhex(want, sizeof want, KAT_SEALED);
    CHECK_EQ(spro_field_seal_with_nonce(out, sizeof out, &n, (const uint8_t *)KAT_PLAINTEXT, 8,
                                        &f.ctx, f.key_id, f.dk, f.field_nonce),
             0);
    CHECK_BYTES(out, n, want, sizeof want);
    CHECK_EQ(spro_field_key_id(want, sizeof want, id), 0);
    CHECK_BYTES(id, sizeof id, f.key_id, sizeof f.key_id);
    CHECK_EQ(spro_field_open(out, sizeof out, &n, want, sizeof want, &f.ctx, f.key_id, f.dk), 0);
    CHECK_BYTES(out, n, KAT_PLAINTEXT, 8);
}

static void test_field_round_trip(void)
{
    static const size_t lengths[] = {0, 1, 15, 16, 17, 1000, SPRO_FIELD_MAX_PLAINTEXT};
    struct fixture f = fixture();
    size_t cap = SPRO_FIELD_SEALED_BYTES(SPRO_FIELD_MAX_PLAINTEXT);
    uint8_t *pt = malloc(SPRO_FIELD_MAX_PLAINTEXT), *sealed = malloc(cap), *sealed2 = malloc(cap);
    uint8_t *back = malloc(SPRO_FIELD_MAX_PLAINTEXT), id[SPRO_FIELD_KEY_ID_BYTES];
    if (pt == NULL || sealed == NULL || sealed2 == NULL || back == NULL)
        abort();
    spro_crypto_random(pt, SPRO_FIELD_MAX_PLAINTEXT);
    int failed = 0;
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0] && !failed; i++) {
        size_t len = lengths[i], n = 0, n2 = 0, m = 1;
        failed = spro_field_seal(sealed, cap, &n, len ? pt : NULL, len, &f.ctx, f.key_id, f.dk) ||
                 n != SPRO_FIELD_SEALED_BYTES(len) || sealed[0] != SPRO_FIELD_FORMAT_V1 ||
                 spro_field_seal(sealed2, cap, &n2, pt, len, &f.ctx, f.key_id, f.dk) ||
                 memcmp(sealed, sealed2, n) == 0 || spro_field_key_id(sealed, n, id) ||
                 memcmp(id, f.key_id, sizeof id) != 0 ||
                 spro_field_open(back, len, &m, sealed, n, &f.ctx, f.key_id, f.dk) || m != len ||
                 (len > 0 && memcmp(back, pt, len) != 0);
        if (failed)
            fprintf(stderr, "%s:%d: round trip of %zu bytes failed\n", __FILE__, __LINE__, len);
    }
    free(pt);
    free(sealed);
    free(sealed2);
    free(back);
    CHECK(!failed);
}

static void test_field_limits(void)
{
    struct fixture f = fixture();
    size_t cap = SPRO_FIELD_SEALED_BYTES(SPRO_FIELD_MAX_PLAINTEXT + 1), n = 99;
    uint8_t *pt = calloc(1, SPRO_FIELD_MAX_PLAINTEXT + 1), *out = malloc(cap);
    if (pt == NULL || out == NULL)
        abort();
    int err =
        spro_field_seal(out, cap, &n, pt, SPRO_FIELD_MAX_PLAINTEXT + 1, &f.ctx, f.key_id, f.dk);
    free(pt);
    free(out);
    CHECK_EQ(err, SPRO_ETOOLONG);
    CHECK_EQ(n, 0);

    /* Output one byte short: nothing written. */
    uint8_t buf[SPRO_FIELD_SEALED_BYTES(10)], copy[sizeof buf], back[10];
    memset(buf, 0xee, sizeof buf);
    memcpy(copy, buf, sizeof buf);
    n = 99;
    CHECK_EQ(spro_field_seal(buf, sizeof buf - 1, &n, (const uint8_t *)"0123456789", 10, &f.ctx,
                             f.key_id, f.dk),
             SPRO_ETOOLONG);
    CHECK_EQ(n, 0);
    CHECK_BYTES(buf, sizeof buf, copy, sizeof copy);
    CHECK_EQ(spro_field_seal(buf, sizeof buf, &n, (const uint8_t *)"0123456789", 10, &f.ctx,
                             f.key_id, f.dk),
             0);
    CHECK_EQ(n, sizeof buf);

    /* Plaintext larger than the output buffer of open. */
    memset(back, 0xaa, sizeof back);
    CHECK_EQ(spro_field_open(back, 9, &n, buf, sizeof buf, &f.ctx, f.key_id, f.dk), SPRO_ETOOLONG);
    CHECK_EQ(n, 0);
    CHECK(all_zero(back, 9));
    CHECK_EQ(spro_field_open(back, 10, &n, buf, sizeof buf, &f.ctx, f.key_id, f.dk), 0);
    CHECK_EQ(n, 10);

    /* Identifiers: empty, too long, the longest accepted. */
    char longest[SPRO_FIELD_ID_MAX + 2];
    memset(longest, 'r', SPRO_FIELD_ID_MAX + 1);
    longest[SPRO_FIELD_ID_MAX + 1] = '\0';
    struct spro_field_context c = f.ctx;
    c.record_type = "";
    CHECK_EQ(spro_field_seal(buf, sizeof buf, &n, back, 10, &c, f.key_id, f.dk), SPRO_EMISSING);
    c = f.ctx, c.record_id = "";
    CHECK_EQ(spro_field_seal(buf, sizeof buf, &n, back, 10, &c, f.key_id, f.dk), SPRO_EMISSING);
    c = f.ctx, c.field_name = NULL;
    CHECK_EQ(spro_field_seal(buf, sizeof buf, &n, back, 10, &c, f.key_id, f.dk), SPRO_EMISSING);
    c = f.ctx, c.field_name = longest;
    CHECK_EQ(spro_field_seal(buf, sizeof buf, &n, back, 10, &c, f.key_id, f.dk), SPRO_ETOOLONG);
    CHECK_EQ(spro_field_open(back, 10, &n, buf, sizeof buf, &c, f.key_id, f.dk), SPRO_EINTEGRITY);
    longest[SPRO_FIELD_ID_MAX] = '\0';
    c = (struct spro_field_context){longest, longest, longest, UINT32_MAX};
    CHECK_EQ(spro_field_seal(buf, sizeof buf, &n, back, 10, &c, f.key_id, f.dk), 0);
    CHECK_EQ(spro_field_open(back, 10, &n, buf, sizeof buf, &c, f.key_id, f.dk), 0);
}

static void test_field_tampered(void)
{
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    struct fixture f = fixture();
    uint8_t sealed[SPRO_FIELD_SEALED_BYTES(20)], back[32];
    size_t n;
    CHECK_EQ(spro_field_seal(sealed, sizeof sealed, &n, (const uint8_t *)"0612345678 rue Haute", 20,
                             &f.ctx, f.key_id, f.dk),
             0);
    for (size_t i = 0; i < sizeof sealed; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            sealed[i] ^= masks[m];
            memset(back, 0xaa, sizeof back);
            n = 99;
            int err = spro_field_open(back, sizeof back, &n, sealed, sizeof sealed, &f.ctx,
                                      f.key_id, f.dk);
            sealed[i] ^= masks[m];
            if (err != SPRO_EINTEGRITY || n != 0 || !all_zero(back, sizeof back))
                CHECK__FAIL("byte %zu ^ 0x%02x: open gave %d", i, masks[m], err);
        }
    }
    CHECK_EQ(spro_field_open(back, sizeof back, &n, sealed, sizeof sealed, &f.ctx, f.key_id, f.dk),
             0);
    CHECK_BYTES(back, n, "0612345678 rue Haute", 20);
}

/* Opens sealed (n bytes) under ctx, key id and key: the error, after
 * checking that a failure left the output zeroed. */
static int try_open(const uint8_t *sealed, size_t n, const struct spro_field_context *ctx,
                    const uint8_t *key_id, const uint8_t *dk)
{
    uint8_t back[64];
    size_t m = 99;
    memset(back, 0xaa, sizeof back);
    int err = spro_field_open(back, sizeof back, &m, sealed, n, ctx, key_id, dk);
    if (err != 0 && (m != 0 || !all_zero(back, sizeof back)))
        return -1;
    return err;
}

static void test_field_wrong_context(void)
{
    struct fixture f = fixture();
    uint8_t sealed[SPRO_FIELD_SEALED_BYTES(8)], other_id[SPRO_FIELD_KEY_ID_BYTES];
    uint8_t other_dk[SPRO_KEY_BYTES];
    size_t n;
    CHECK_EQ(spro_field_seal(sealed, sizeof sealed, &n, (const uint8_t *)KAT_PLAINTEXT, 8, &f.ctx,
                             f.key_id, f.dk),
             0);
    CHECK_EQ(try_open(sealed, n, &f.ctx, f.key_id, f.dk), 0);

    struct spro_field_context c = f.ctx;
    c.record_type = "counsellor";
    CHECK_EQ(try_open(sealed, n, &c, f.key_id, f.dk), SPRO_EINTEGRITY);
    c = f.ctx, c.record_id = "3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a38";
    CHECK_EQ(try_open(sealed, n, &c, f.key_id, f.dk), SPRO_EINTEGRITY);
    c = f.ctx, c.field_name = "given_name";
    CHECK_EQ(try_open(sealed, n, &c, f.key_id, f.dk), SPRO_EINTEGRITY);
    c = f.ctx, c.schema_version = 4;
    CHECK_EQ(try_open(sealed, n, &c, f.key_id, f.dk), SPRO_EINTEGRITY);
    c = f.ctx, c.schema_version = 3u | 1u << 24;
    CHECK_EQ(try_open(sealed, n, &c, f.key_id, f.dk), SPRO_EINTEGRITY);

    /* Another key id asked for; the key id in the blob relabelled, with and
     * without asking for the new one. */
    memcpy(other_id, f.key_id, sizeof other_id);
    other_id[15] ^= 1;
    CHECK_EQ(try_open(sealed, n, &f.ctx, other_id, f.dk), SPRO_EINTEGRITY);
    uint8_t id[SPRO_FIELD_KEY_ID_BYTES];
    sealed[16] ^= 1;
    CHECK_EQ(spro_field_key_id(sealed, n, id), 0);
    CHECK_BYTES(id, sizeof id, other_id, sizeof other_id);
    CHECK_EQ(try_open(sealed, n, &f.ctx, other_id, f.dk), SPRO_EINTEGRITY);
    CHECK_EQ(try_open(sealed, n, &f.ctx, f.key_id, f.dk), SPRO_EINTEGRITY);
    sealed[16] ^= 1;

    /* Another data key. */
    spro_field_key_new(other_dk);
    CHECK_EQ(try_open(sealed, n, &f.ctx, f.key_id, other_dk), SPRO_EINTEGRITY);

    /* Identifiers cannot trade bytes across the separators. */
    struct spro_field_context ab = {"ab", "c", "d", 1}, a_bc = {"a", "bc", "d", 1};
    CHECK_EQ(spro_field_seal(sealed, sizeof sealed, &n, (const uint8_t *)KAT_PLAINTEXT, 8, &ab,
                             f.key_id, f.dk),
             0);
    CHECK_EQ(try_open(sealed, n, &ab, f.key_id, f.dk), 0);
    CHECK_EQ(try_open(sealed, n, &a_bc, f.key_id, f.dk), SPRO_EINTEGRITY);
    struct spro_field_context d_e = {"ab", "c", "d\x01", 1};
    CHECK_EQ(try_open(sealed, n, &d_e, f.key_id, f.dk), SPRO_EINTEGRITY);
}

static void test_field_truncated(void)
{
    struct fixture f = fixture();
    uint8_t sealed[SPRO_FIELD_SEALED_BYTES(20) + 1], id[SPRO_FIELD_KEY_ID_BYTES];
    size_t n;
    CHECK_EQ(spro_field_seal(sealed, sizeof sealed, &n, (const uint8_t *)"0612345678 rue Haute", 20,
                             &f.ctx, f.key_id, f.dk),
             0);
    sealed[n] = 0;
    for (size_t len = 0; len <= n + 1; len++) {
        if (len == n)
            continue;
        uint8_t *c = exact_copy(sealed, len);
        int err = try_open(c, len, &f.ctx, f.key_id, f.dk);
        memset(id, 0xaa, sizeof id);
        int idr = spro_field_key_id(c, len, id);
        free(c);
        if (err != SPRO_EINTEGRITY)
            CHECK__FAIL("length %zu: open gave %d", len, err);
        if (len < SPRO_FIELD_OVERHEAD && (idr != SPRO_EINTEGRITY || !all_zero(id, sizeof id)))
            CHECK__FAIL("length %zu: key id gave %d", len, idr);
    }
    /* An empty value sealed is 57 bytes; one byte less is not a field. */
    uint8_t empty[SPRO_FIELD_OVERHEAD];
    CHECK_EQ(spro_field_seal(empty, sizeof empty, &n, NULL, 0, &f.ctx, f.key_id, f.dk), 0);
    CHECK_EQ(try_open(empty, sizeof empty, &f.ctx, f.key_id, f.dk), 0);
    CHECK_EQ(try_open(empty, sizeof empty - 1, &f.ctx, f.key_id, f.dk), SPRO_EINTEGRITY);
    /* Another version byte. */
    empty[0] = 0x02;
    CHECK_EQ(spro_field_key_id(empty, sizeof empty, id), SPRO_EINTEGRITY);
    CHECK(all_zero(id, sizeof id));
    CHECK_EQ(try_open(empty, sizeof empty, &f.ctx, f.key_id, f.dk), SPRO_EINTEGRITY);
}

/* ---- Blind indexes ---- */

static void test_blind_kat(void)
{
    struct fixture f = fixture();
    uint8_t key[SPRO_KEY_BYTES], want_key[SPRO_KEY_BYTES];
    uint8_t bi[SPRO_BLIND_INDEX_BYTES], want[SPRO_BLIND_INDEX_BYTES];
    unhex(want_key, sizeof want_key, KAT_BLIND_KEY);
    spro_blind_key_derive(key, f.master);
    CHECK_BYTES(key, sizeof key, want_key, sizeof want_key);
    unhex(want, sizeof want, KAT_BLIND_INE);
    spro_blind_index(bi, key, "ine", "1234567890A", 11);
    CHECK_BYTES(bi, sizeof bi, want, sizeof want);

    char dedup[SPRO_DEDUP_KEY_MAX + 1];
    int n = spro_dedup_key("Lef\xc3\xa8vre", "\xc3\x89lodie", "2009-04-17", dedup, sizeof dedup);
    CHECK_EQ(n, strlen(KAT_DEDUP));
    CHECK_STR(dedup, KAT_DEDUP);
    unhex(want, sizeof want, KAT_BLIND_DEDUP);
    spro_blind_index(bi, key, "dedup", dedup, (size_t)n);
    CHECK_BYTES(bi, sizeof bi, want, sizeof want);
}

static void test_blind_separation(void)
{
    uint8_t key[SPRO_KEY_BYTES], key2[SPRO_KEY_BYTES];
    uint8_t a[SPRO_BLIND_INDEX_BYTES], b[SPRO_BLIND_INDEX_BYTES];
    spro_crypto_random(key, sizeof key);
    spro_crypto_random(key2, sizeof key2);

    /* Deterministic. */
    spro_blind_index(a, key, "ine", "1234567890A", 11);
    spro_blind_index(b, key, "ine", "1234567890A", 11);
    CHECK_BYTES(a, sizeof a, b, sizeof b);
    /* Same value, another index; another key; another value; a prefix. */
    spro_blind_index(b, key, "ine2", "1234567890A", 11);
    CHECK(memcmp(a, b, sizeof a) != 0);
    spro_blind_index(b, key, "in", "1234567890A", 11);
    CHECK(memcmp(a, b, sizeof a) != 0);
    spro_blind_index(b, key2, "ine", "1234567890A", 11);
    CHECK(memcmp(a, b, sizeof a) != 0);
    spro_blind_index(b, key, "ine", "1234567890B", 11);
    CHECK(memcmp(a, b, sizeof a) != 0);
    spro_blind_index(b, key, "ine", "1234567890A", 10);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* Index name and value do not trade bytes. */
    spro_blind_index(a, key, "ab", "c", 1);
    spro_blind_index(b, key, "a", "bc", 2);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* The empty value is a value. */
    spro_blind_index(a, key, "ine", "", 0);
    spro_blind_index(b, key, "dedup", "", 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

/* ---- Normalisation ---- */

static void test_normalize_ine(void)
{
    static const struct {
        const char *in, *out; /* out NULL: SPRO_ERANGE */
    } cases[] = {
        {"1234567890A", "1234567890A"},
        {"1234567890a", "1234567890A"},
        {" 1234567890A\t", "1234567890A"},
        {"12345-67890-a", "1234567890A"},
        {"12 34 56 78 90 A", "1234567890A"},
        {"-1-2-3-4-5-6-7-8-9-0-a-", "1234567890A"},
        {"123456789ab", "123456789AB"},
        {"AbCdEfGhIjK", "ABCDEFGHIJK"},
        {"", NULL},
        {"   ", NULL},
        {"1234567890", NULL},
        {"1234567890AB", NULL},
        {"12345678901234567890", NULL},
        {"12345.67890A", NULL},
        {"12345_67890A", NULL},
        {"1234567890\xc3\x89", NULL},
        {"1234567890A\n", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[16] = "junk";
        int n = spro_normalize_ine(cases[i].in, out, sizeof out);
        if (cases[i].out == NULL) {
            if (n != SPRO_ERANGE || out[0] != '\0')
                CHECK__FAIL("INE \"%s\": %d \"%s\", want an error", cases[i].in, n, out);
        } else if (n != SPRO_INE_CHARS || strcmp(out, cases[i].out) != 0) {
            CHECK__FAIL("INE \"%s\": %d \"%s\", want \"%s\"", cases[i].in, n, out, cases[i].out);
        }
    }
    char small[SPRO_INE_CHARS + 1] = "x";
    CHECK_EQ(spro_normalize_ine("1234567890a", small, sizeof small), SPRO_INE_CHARS);
    CHECK_EQ(spro_normalize_ine("1234567890a", small, sizeof small - 1), SPRO_ETOOLONG);
    CHECK_EQ(small[0], '\0');
    CHECK_EQ(spro_normalize_ine("1234567890a", NULL, 0), SPRO_ETOOLONG);
}

static void test_normalize_name(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\xc3\x89lodie Lef\xc3\xa8vre", "elodie lefevre"}, /* Élodie Lefèvre */
        {"elodie lefevre", "elodie lefevre"},
        {"ELODIE LEFEBVRE", "elodie lefebvre"},
        {"E\xcc\x81lodie Lefe\xcc\x80vre", "elodie lefevre"}, /* decomposed accents */
        {"Jean-Fran\xc3\xa7ois", "jean francois"},            /* Jean-François */
        {"Jean Francois", "jean francois"},
        {"JEAN-FRAN\xc3\x87OIS", "jean francois"},
        {"  Jean -- 'Fran\xc3\xa7ois'  ", "jean francois"},
        {"d\xe2\x80\x99"
         "Artagnan",
         "d artagnan"}, /* typographic apostrophe */
        {"d\xca\xbc"
         "Artagnan",
         "d artagnan"},                          /* modifier letter apostrophe */
        {"Jean\xc2\xa0Marie", "jean marie"},     /* no-break space */
        {"Jean\xe2\x80\x91Marie", "jean marie"}, /* non-breaking hyphen */
        {"Jean\xe2\x80\x93Marie", "jean marie"}, /* en dash */
        {"Jean\xe2\x80\xafMarie", "jean marie"}, /* narrow no-break space */
        {"Jean\t\r\nMarie", "jean marie"},
        {"\xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab \xc3\x89\xc3\x88\xc3\x8a\xc3\x8b", "eeee eeee"},
        {"\xc3\xa0\xc3\xa2\xc3\xa4 \xc3\x80\xc3\x82\xc3\x84", "aaa aaa"},
        {"\xc3\xae\xc3\xaf \xc3\x8e\xc3\x8f", "ii ii"},
        {"\xc3\xb4\xc3\xb6 \xc3\x94\xc3\x96", "oo oo"},
        {"\xc3\xb9\xc3\xbb\xc3\xbc \xc3\x99\xc3\x9b\xc3\x9c", "uuu uuu"},
        {"\xc3\xa7 \xc3\x87", "c c"},
        {"\xc5\x93 \xc5\x92", "oe oe"}, /* œ Œ */
        {"\xc3\xa6 \xc3\x86", "ae ae"}, /* æ Æ */
        {"\xc3\xbf \xc5\xb8", "y y"},   /* ÿ Ÿ */
        {"C\xc5\x93ur", "coeur"},       /* Cœur */
        {"Stra\xc3\x9f"
         "e",
         "strasse"}, /* Straße */
        {"N\xc3\xba\xc3\xb1"
         "ez",
         "nunez"},                                  /* Núñez */
        {"Wa\xc5\x82\xc4\x99sa", "walesa"},         /* Wałęsa */
        {"\xc8\x98tef\xc4\x83nescu", "stefanescu"}, /* Ștefănescu */
        {"Nguy\xe1\xbb\x85n", "nguyen"},            /* Nguyễn */
        {"Tr\xc6\xb0\xc6\xa1ng", "truong"},         /* Trương */
        {"\xc3\x98stergaard", "ostergaard"},        /* Østergaard */
        {"Jean-Paul II", "jean paul ii"},
        {"Louis 14", "louis"},
        {"St. Pierre", "st pierre"},
        {"O.Brien", "obrien"},
        {"M\xc3\xbcller\xc3\x97\xc3\xb7", "muller"},       /* × ÷ dropped */
        {"\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd Ivan", "ivan"}, /* Cyrillic dropped */
        {"\xe2\x82\xac"
         "Anne\xf0\x9f\x98\x80",
         "anne"}, /* euro sign, emoji */
        {"", ""},
        {" - ' ", ""},
        {"1234", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64] = "junk";
        int n = spro_normalize_name(cases[i].in, out, sizeof out);
        if (n < 0 || (size_t)n != strlen(cases[i].out) || strcmp(out, cases[i].out) != 0)
            CHECK__FAIL("name case %zu: %d \"%s\", want \"%s\"", i, n, out, cases[i].out);
    }

    static const char *const bad_utf8[] = {
        "\x80",             /* lone continuation byte */
        "abc\xc3",          /* truncated 2-byte sequence */
        "\xe2\x80",         /* truncated 3-byte sequence */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xf0\x80\x80\xaf", /* overlong 4-byte */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xf4\x90\x80\x80", /* beyond U+10FFFF */
        "\xf5\x80\x80\x80", /* invalid lead byte */
        "\xff",
        "\xc3\x28", /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        char out[16] = "junk";
        int n = spro_normalize_name(bad_utf8[i], out, sizeof out);
        if (n != SPRO_EBADUTF8 || out[0] != '\0')
            CHECK__FAIL("bad UTF-8 case %zu: %d", i, n);
    }

    /* Capacity: the result and its NUL must fit. */
    char out[15] = "junk";
    CHECK_EQ(spro_normalize_name("\xc3\x89lodie Lef\xc3\xa8vre", out, 15), 14);
    CHECK_STR(out, "elodie lefevre");
    CHECK_EQ(spro_normalize_name("\xc3\x89lodie Lef\xc3\xa8vre", out, 14), SPRO_ETOOLONG);
    CHECK_EQ(out[0], '\0');
    CHECK_EQ(spro_normalize_name("ab", out, 2), SPRO_ETOOLONG);
    CHECK_EQ(spro_normalize_name("", out, 1), 0);
    CHECK_EQ(spro_normalize_name("", NULL, 0), SPRO_ETOOLONG);
    CHECK_EQ(spro_normalize_name("a b", out, 3), SPRO_ETOOLONG);
    CHECK_EQ(spro_normalize_name("a b", out, 4), 3);
    /* A ligature that does not fit whole is refused. */
    CHECK_EQ(spro_normalize_name("\xc5\x93", out, 2), SPRO_ETOOLONG);
}

/* phonetic(normalize(in)), or a negative error. */
static int phonetic_of(const char *in, char out[SPRO_PHONETIC_MAX + 1])
{
    char norm[SPRO_NAME_MAX + 1];
    int n = spro_normalize_name(in, norm, sizeof norm);
    return n < 0 ? n : spro_phonetic_fr(norm, out, SPRO_PHONETIC_MAX + 1);
}

static void test_phonetic(void)
{
    /* The table of docs/CRYPTO.md is checked by test_document; these are
     * the groups that must (or must not) meet. */
    static const char *const same[][4] = {
        {"\xc3\x89lodie", "elodie", "ELODIE", "E\xcc\x81lodie"},
        {"Lef\xc3\xa8vre", "LEFEBVRE", "Lefeuvre", "Le F\xc3\xa8vre"},
        {"Jean-Fran\xc3\xa7ois", "Jean Francois", "Jean-Francois", "jean fran\xc3\xa7ois"},
        {"Dupont", "Dupond", "Duppont", "Dupon"},
        {"Ren\xc3\xa9",
         "Ren\xc3\xa9"
         "e",
         "Rene", "RENEE"},
        {"Christophe", "Kristof", "Christof", "Cristophe"},
        {"Yannick", "Yanick", "Ianic", "Yannic"},
        {"Mathieu", "Matthieu", "Mathieux", "Matieu"},
        {"Rousseau", "Roussot", "Rousseaux", "Roussau"},
        {"Jehan", "Jean", "Jeans", "Jhean"},
        {"Thomas", "Tomas", "Thoma", "Tomat"},
        {"G\xc3\xa9rard", "Gerart", "Gerar", "Gerard"},
        {"Nguy\xe1\xbb\x85n", "Nguyen", "N'Guyen", "NGUYEN"},
    };
    for (size_t g = 0; g < sizeof same / sizeof same[0]; g++) {
        char first[SPRO_PHONETIC_MAX + 1], other[SPRO_PHONETIC_MAX + 1];
        if (phonetic_of(same[g][0], first) <= 0)
            CHECK__FAIL("group %zu: no key for \"%s\"", g, same[g][0]);
        for (size_t i = 1; i < 4; i++)
            if (phonetic_of(same[g][i], other) <= 0 || strcmp(first, other) != 0)
                CHECK__FAIL("group %zu: \"%s\" -> \"%s\" but \"%s\" -> \"%s\"", g, same[g][0],
                            first, same[g][i], other);
    }
    static const char *const differ[][2] = {
        {"Martin", "Martine"}, {"Simon", "Simone"},     {"Louis", "Louise"},
        {"Laurent", "Laura"},  {"Claude", "Claudette"}, {"Dupont", "Dupuis"},
    };
    for (size_t g = 0; g < sizeof differ / sizeof differ[0]; g++) {
        char a[SPRO_PHONETIC_MAX + 1], b[SPRO_PHONETIC_MAX + 1];
        if (phonetic_of(differ[g][0], a) <= 0 || phonetic_of(differ[g][1], b) <= 0 ||
            strcmp(a, b) == 0)
            CHECK__FAIL("\"%s\" and \"%s\" should differ", differ[g][0], differ[g][1]);
    }

    /* Rules one at a time (normalised input). */
    static const struct {
        const char *in, *out;
    } rules[] = {
        {"", ""},
        {"  ", ""},
        {"x", "ks"},
        {"le", "le"},
        {"les", "le"},
        {"dee", "de"},
        {"ann", "an"},
        {"an", "A"},
        {"emma", "ema"},
        {"amnon", "amnO"},
        {"jeanmarie", "jAmari"},
        {"julien", "juliE"},
        {"poincare", "pwEkar"},
        {"lemoine", "lemwan"},
        {"verdun", "verdE"},
        {"vincent", "vEsA"},
        {"hugues", "ug"},
        {"agnes", "ani"},
        {"chloe", "klo"},
        {"schmitt", "Smit"},
        {"charles", "Sarl"},
        {"lisa", "liza"},
        {"cecile", "sesil"},
        {"gilles", "jil"},
        {"geoffroy", "jofrwa"},
        {"guy", "gi"},
        {"philippe", "filip"},
        {"wagner", "vanier"},
        {"jacques", "jak"},
        {"eau", "o"},
        {"aime", "em"},
        {"a a", "a"},
        {"marie christine josephine anne", "marikristinjozef"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        char out[SPRO_PHONETIC_MAX + 1] = "junk";
        int n = spro_phonetic_fr(rules[i].in, out, sizeof out);
        if (n < 0 || (size_t)n != strlen(rules[i].out) || strcmp(out, rules[i].out) != 0)
            CHECK__FAIL("phonetic \"%s\": %d \"%s\", want \"%s\"", rules[i].in, n, out,
                        rules[i].out);
    }

    /* Refused input; capacity; length limit. */
    char out[SPRO_PHONETIC_MAX + 1] = "junk";
    CHECK_EQ(spro_phonetic_fr("Dupont", out, sizeof out), SPRO_ERANGE);
    CHECK_EQ(out[0], '\0');
    CHECK_EQ(spro_phonetic_fr("du-pont", out, sizeof out), SPRO_ERANGE);
    CHECK_EQ(spro_phonetic_fr("dup\xc3\xa9", out, sizeof out), SPRO_ERANGE);
    CHECK_EQ(spro_phonetic_fr("dupont", out, 4), SPRO_ETOOLONG);
    CHECK_EQ(out[0], '\0');
    CHECK_EQ(spro_phonetic_fr("dupont", out, 5), 4);
    CHECK_STR(out, "dupO");
    char name[SPRO_NAME_MAX + 2];
    memset(name, 'a', SPRO_NAME_MAX + 1);
    name[SPRO_NAME_MAX + 1] = '\0';
    CHECK_EQ(spro_phonetic_fr(name, out, sizeof out), SPRO_ETOOLONG);
    name[SPRO_NAME_MAX] = '\0';
    CHECK_EQ(spro_phonetic_fr(name, out, sizeof out), 1);
    CHECK_STR(out, "a");
}

static void test_dedup_key(void)
{
    static const struct {
        const char *family, *given, *date, *key; /* key NULL: err */
        int err;
    } cases[] = {
        {"Lef\xc3\xa8vre", "\xc3\x89lodie", "2009-04-17", "lefevr|elodi|2009-04-17", 0},
        {"LEFEBVRE", "elodie", "2009-04-17", "lefevr|elodi|2009-04-17", 0},
        {"Dupond", "Jean Fran\xc3\xa7ois", "2008-02-29", "dupO|jAfrAkwa|2008-02-29", 0},
        {"Duppont", "Jean-Francois", "2000-02-29", "dupO|jAfrAkwa|2000-02-29", 0},
        {"Marie-Christine Jos\xc3\xa9phine-Anne", "Marie-Christine Jos\xc3\xa9phine-Anne",
         "1999-12-31", "marikristinjozef|marikristinjozef|1999-12-31", 0},
        {"Dupont", "Jean", "2007-02-29", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "1900-02-29", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "2007-04-31", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "2007-13-01", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "2007-00-10", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "2007-01-00", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "2007-1-01", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "20070101", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "2007-01-011", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "2007/01/01", NULL, SPRO_ERANGE},
        {"Dupont", "Jean", "", NULL, SPRO_ERANGE},
        {"--", "Jean", "2008-01-01", NULL, SPRO_EMISSING},
        {"Dupont", "", "2008-01-01", NULL, SPRO_EMISSING},
        {"Dupont", "Jean\xc3", "2008-01-01", NULL, SPRO_EBADUTF8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[SPRO_DEDUP_KEY_MAX + 1] = "junk";
        int n = spro_dedup_key(cases[i].family, cases[i].given, cases[i].date, out, sizeof out);
        if (cases[i].key == NULL) {
            if (n != cases[i].err || out[0] != '\0')
                CHECK__FAIL("dedup case %zu: %d, want %d", i, n, cases[i].err);
        } else if (n < 0 || (size_t)n != strlen(cases[i].key) || strcmp(out, cases[i].key) != 0) {
            CHECK__FAIL("dedup case %zu: %d \"%s\", want \"%s\"", i, n, out, cases[i].key);
        }
    }
    CHECK_EQ(strlen("marikristinjozef|marikristinjozef|1999-12-31"), SPRO_DEDUP_KEY_MAX);

    /* A name too long to normalise; capacity. */
    char long_name[SPRO_NAME_MAX + 2], out[SPRO_DEDUP_KEY_MAX + 1];
    memset(long_name, 'a', SPRO_NAME_MAX + 1);
    long_name[SPRO_NAME_MAX + 1] = '\0';
    CHECK_EQ(spro_dedup_key(long_name, "Jean", "2008-01-01", out, sizeof out), SPRO_ETOOLONG);
    CHECK_EQ(spro_dedup_key("Dupont", "Jean", "2008-01-01", out, 20), 18);
    CHECK_STR(out, "dupO|jA|2008-01-01");
    CHECK_EQ(spro_dedup_key("Dupont", "Jean", "2008-01-01", out, 18), SPRO_ETOOLONG);
    CHECK_EQ(out[0], '\0');
}

/* ---- docs/CRYPTO.md ---- */

/* The text of docs/CRYPTO.md, found from this source file's path, or NULL.
 * The caller frees it. */
static char *read_document(void)
{
    static const char self[] = "tests/unit/test_field.c";
    const char *file = __FILE__;
    size_t n = strlen(file);
    if (n < sizeof self - 1 || strcmp(file + n - (sizeof self - 1), self) != 0)
        return NULL;
    char path[4096];
    int w = snprintf(path, sizeof path, "%.*sdocs/CRYPTO.md", (int)(n - (sizeof self - 1)), file);
    if (w < 0 || (size_t)w >= sizeof path)
        return NULL;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = 1 << 18, len = 0;
    char *text = malloc(cap + 1);
    if (text != NULL)
        len = fread(text, 1, cap, fp);
    fclose(fp);
    if (text != NULL)
        text[len] = '\0';
    return text;
}

/* The cells of a table row "| `a` | `b` |" whose every cell is one code
 * span, unescaped ("\|" is "|"), into cells[] (each at most 127 bytes).
 * Returns the number of cells, or 0 if the line is not such a row. */
static size_t row_cells(const char *line, size_t len, char cells[][128], size_t max)
{
    size_t n = 0, i = 0;
    if (len < 4 || strncmp(line, "| `", 3) != 0)
        return 0;
    i = 2;
    while (i < len) {
        if (line[i] != '`' || n == max)
            return 0;
        size_t o = 0;
        for (i++; i < len && line[i] != '`'; i++) {
            if (line[i] == '\\' && i + 1 < len && line[i + 1] == '|')
                i++;
            if (o == 127)
                return 0;
            cells[n][o++] = line[i];
        }
        if (i == len)
            return 0;
        cells[n++][o] = '\0';
        i++; /* closing backtick */
        if (i + 2 <= len && strncmp(line + i, " |", 2) == 0)
            i += 2;
        else
            return 0;
        if (i < len && line[i] == ' ')
            i++;
    }
    return n;
}

/* Checks one example row under the heading it belongs to.  Returns 1 if
 * the row was checked and holds, 0 if it does not hold, -1 if the row is
 * not an example. */
static int check_row(const char *heading, char cells[][128], size_t n)
{
    char out[SPRO_NAME_MAX + 1];
    if (strstr(heading, "INE examples") != NULL && n == 2) {
        int r = spro_normalize_ine(cells[0], out, sizeof out);
        return strcmp(cells[1], "error") == 0 ? r < 0 : r >= 0 && strcmp(out, cells[1]) == 0;
    }
    if (strstr(heading, "Name examples") != NULL && n == 3) {
        char ph[SPRO_PHONETIC_MAX + 1];
        int r = spro_normalize_name(cells[0], out, sizeof out);
        if (r < 0 || strcmp(out, cells[1]) != 0)
            return 0;
        r = spro_phonetic_fr(out, ph, sizeof ph);
        return r >= 0 && strcmp(ph, cells[2]) == 0;
    }
    if (strstr(heading, "Duplicate-detection key examples") != NULL && n == 4) {
        int r = spro_dedup_key(cells[0], cells[1], cells[2], out, sizeof out);
        return strcmp(cells[3], "error") == 0 ? r < 0 : r >= 0 && strcmp(out, cells[3]) == 0;
    }
    return -1;
}

static void test_document(void)
{
    char *text = read_document();
    if (text == NULL)
        CHECK__FAIL("cannot read docs/CRYPTO.md next to %s", __FILE__);

    /* Every known-answer value appears, hex possibly wrapped over lines. */
    char *flat = malloc(strlen(text) + 1);
    if (flat == NULL)
        abort();
    size_t f = 0;
    for (const char *p = text; *p != '\0'; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
            flat[f++] = *p;
    flat[f] = '\0';
    int missing = 0;
    for (size_t i = 0; i < sizeof kat_hex / sizeof kat_hex[0]; i++) {
        if (strstr(flat, kat_hex[i]) == NULL) {
            fprintf(stderr, "%s:%d: docs/CRYPTO.md lacks %s\n", __FILE__, __LINE__, kat_hex[i]);
            missing++;
        }
    }
    free(flat);

    /* Every example row holds. */
    char heading[256] = "", cells[4][128];
    int checked = 0, wrong = 0;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (line[0] == '#')
            snprintf(heading, sizeof heading, "%.*s", (int)len, line);
        size_t n = row_cells(line, len, cells, 4);
        int r = n > 0 ? check_row(heading, cells, n) : -1;
        if (r == 0) {
            fprintf(stderr, "%s:%d: docs/CRYPTO.md example does not hold: %.*s\n", __FILE__,
                    __LINE__, (int)len, line);
            wrong++;
        }
        checked += r == 1;
        line = end ? end + 1 : line + len;
    }
    free(text);
    CHECK_EQ(missing, 0);
    CHECK_EQ(wrong, 0);
    CHECK_INT(checked, >=, 64); /* 9 INE, 49 names, 6 duplicate keys */
}

static const struct check_test tests[] = {
    {"kek_derive", test_kek_derive},
    {"wrap_kat", test_wrap_kat},
    {"wrap_round_trip", test_wrap_round_trip},
    {"wrap_bad_arguments", test_wrap_bad_arguments},
    {"wrap_tampered", test_wrap_tampered},
    {"wrap_wrong_context", test_wrap_wrong_context},
    {"wrap_truncated", test_wrap_truncated},
    {"rewrap", test_rewrap},
    {"field_kat", test_field_kat},
    {"field_round_trip", test_field_round_trip},
    {"field_limits", test_field_limits},
    {"field_tampered", test_field_tampered},
    {"field_wrong_context", test_field_wrong_context},
    {"field_truncated", test_field_truncated},
    {"blind_kat", test_blind_kat},
    {"blind_separation", test_blind_separation},
    {"normalize_ine", test_normalize_ine},
    {"normalize_name", test_normalize_name},
    {"phonetic", test_phonetic},
    {"dedup_key", test_dedup_key},
    {"document", test_document},
};

int main(int argc, char **argv)
{
    if (spro_crypto_init() != 0) {
        fprintf(stderr, "libsodium failed to initialise\n");
        return 1;
    }
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
