/*
 * Unit tests of sync/fieldset.h: a record's sibling arrays in memory and
 * their msgpack form (docs/SYNC.md, "Store").  An array encodes and decodes
 * back to itself; the decoder refuses what is not a sorted array of
 * well-formed siblings with at most SPRO_MERGE_MAX_SIBLINGS a field; the
 * merge keeps what the merge's result keeps and adds the edit; the
 * canonical writers write the shortest headers.
 */
#include "check.h"
#include "sync/fieldset.h"

#include <stdlib.h>
#include <string.h>

#define DEV "11111111-0000-4000-8000-000000000001"

static void add(struct spro_fset *ps, const char *name, uint64_t hlc, const char *value)
{
    uint8_t v[64];
    size_t n = strlen(value);
    v[0] = (uint8_t)(0xa0 | n); /* a fixstr: values of the tests are short */
    memcpy(v + 1, value, n);
    spro_fset_add(ps, name, hlc, DEV, "u1", 1, v, n + 1, 1);
}

static void test_roundtrip(void)
{
    struct spro_fset a = {0}, b = {0};
    add(&a, "situation", 20, "work");
    add(&a, "family_name", 10, "Martin");
    add(&a, "situation", 10, "school");
    spro_fset_sort(&a);
    CHECK_STR(a.e[0].name, "family_name");
    CHECK_EQ(a.e[1].hlc, 10);
    CHECK_EQ(a.e[2].hlc, 20);
    CHECK_EQ(spro_fset_nfields(&a), 2);
    struct spro_buf enc = {0};
    spro_fset_encode(&a, &enc);
    CHECK_EQ(enc.data[0], 0x93); /* an array of three */
    CHECK_EQ(spro_fset_decode(&b, enc.data, enc.len), 0);
    CHECK_EQ(b.n, 3);
    for (size_t i = 0; i < 3; i++) {
        CHECK_EQ(spro_fset_entry_cmp(&a.e[i], &b.e[i]), 0);
        CHECK_STR(b.e[i].author, "u1");
        CHECK_EQ(b.e[i].schema, 1);
        CHECK_BYTES(b.e[i].val, b.e[i].len, a.e[i].val, a.e[i].len);
        CHECK(!b.e[i].owned); /* it points into enc */
    }
    struct spro_buf again = {0};
    spro_fset_encode(&b, &again);
    CHECK_BYTES(again.data, again.len, enc.data, enc.len);
    spro_fset_free(&a);
    spro_fset_free(&b);
    spro_buf_free(&enc);
    spro_buf_free(&again);
    /* The empty array. */
    CHECK_EQ(spro_fset_decode(&b, (const uint8_t *)"\x90", 1), 0);
    CHECK_EQ(b.n, 0);
    spro_fset_free(&b);
}

/* Arrays that are not what the store writes: each refused. */
static void test_decode_refuses(void)
{
    struct spro_fset a = {0}, b = {0};
    struct spro_buf enc = {0};
    /* Out of order, and one version twice. */
    add(&a, "situation", 20, "work");
    add(&a, "situation", 10, "school");
    spro_fset_encode(&a, &enc);
    CHECK_EQ(spro_fset_decode(&b, enc.data, enc.len), SPRO_EINTEGRITY);
    spro_fset_clear(&b);
    spro_fset_sort(&a);
    add(&a, "situation", 20, "again");
    enc.len = 0;
    spro_fset_encode(&a, &enc);
    CHECK_EQ(spro_fset_decode(&b, enc.data, enc.len), SPRO_EINTEGRITY);
    spro_fset_clear(&b);
    spro_fset_clear(&a);
    /* More than SPRO_MERGE_MAX_SIBLINGS siblings of one field. */
    for (uint64_t h = 1; h <= SPRO_MERGE_MAX_SIBLINGS + 1; h++)
        add(&a, "note", h, "x");
    enc.len = 0;
    spro_fset_encode(&a, &enc);
    CHECK_EQ(spro_fset_decode(&b, enc.data, enc.len), SPRO_EINTEGRITY);
    spro_fset_clear(&b);
    /* Truncated, trailing bytes, not an array, an entry of five items, an
     * hlc of 0, an empty name. */
#define BYTES(lit) lit, sizeof(lit) - 1
    static const struct {
        const char *why;
        const char *bytes;
        size_t len;
    } bad[] = {
        {"truncated", BYTES("\x91\x96\xa1n\x01\xa1o\xa1u\x01\xc4\x01")},
        {"trailing", BYTES("\x90\x00")},
        {"a map", BYTES("\x80")},
        {"five items", BYTES("\x91\x95\xa1n\x01\xa1o\xa1u\x01")},
        {"hlc 0", BYTES("\x91\x96\xa1n\x00\xa1o\xa1u\x01\xc4\x01\xc0")},
        {"empty name", BYTES("\x91\x96\xa0\x01\xa1o\xa1u\x01\xc4\x01\xc0")},
        {"value not a bin", BYTES("\x91\x96\xa1n\x01\xa1o\xa1u\x01\xc0")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = spro_fset_decode(&b, (const uint8_t *)bad[i].bytes, bad[i].len);
        if (rc != SPRO_EINTEGRITY)
            fprintf(stderr, "%s: %d\n", bad[i].why, rc);
        CHECK_EQ(rc, SPRO_EINTEGRITY);
        spro_fset_clear(&b);
    }
    /* The same entry, well formed, is taken. */
    CHECK_EQ(
        spro_fset_decode(&b, (const uint8_t *)BYTES("\x91\x96\xa1n\x01\xa1o\xa1u\x01\xc4\x01\xc0")),
        0);
    CHECK_EQ(b.n, 1);
    spro_fset_free(&a);
    spro_fset_free(&b);
    spro_buf_free(&enc);
}

static void test_merge(void)
{
    struct spro_fset a = {0};
    add(&a, "phone", 10, "1");
    add(&a, "phone", 20, "2");
    add(&a, "situation", 5, "school");
    spro_fset_sort(&a);
    /* An edit whose result keeps the sibling at 20: 10 goes, 30 comes. */
    struct spro_sibling keep = {.v = {.hlc = 20}, .value = a.e[1].val, .value_len = a.e[1].len};
    strcpy(keep.v.origin, DEV);
    struct spro_sibling edit = {.v = {.hlc = 30},
                                .value = (const uint8_t *)"\xa1"
                                                          "3",
                                .value_len = 2,
                                .author = "u2"};
    strcpy(edit.v.origin, DEV);
    struct spro_sibling out[2] = {keep, edit};
    spro_fset_merge(&a, "phone", &edit, out, 2, 7);
    CHECK_EQ(a.n, 3);
    CHECK_STR(a.e[0].name, "phone");
    CHECK_EQ(a.e[0].hlc, 20);
    CHECK_EQ(a.e[1].hlc, 30);
    CHECK_STR(a.e[1].author, "u2");
    CHECK_EQ(a.e[1].schema, 7);
    CHECK_STR(a.e[2].name, "situation"); /* another field: untouched */
    CHECK(spro_merge_in(&edit.v, out, 2));
    spro_fset_free(&a);
}

static void test_writers(void)
{
    struct spro_buf b = {0};
    spro_mpw_uint(&b, 127);
    spro_mpw_uint(&b, 128);
    spro_mpw_uint(&b, 65536);
    spro_mpw_head(&b, 0x90, 15);
    spro_mpw_head(&b, 0x80, 16);
    spro_mpw_key(&b, "ab");
    spro_mpw_bin(&b, "xy", 2);
    static const uint8_t want[] = {0x7f, 0xcc, 0x80, 0xce, 0x00, 0x01, 0x00, 0x00, 0x9f, 0xde,
                                   0x00, 0x10, 0xa2, 'a',  'b',  0xc4, 0x02, 'x',  'y'};
    CHECK_BYTES(b.data, b.len, want, sizeof want);
    spro_buf_free(&b);
}

static const struct check_test tests[] = {
    {"roundtrip", test_roundtrip},
    {"decode_refuses", test_decode_refuses},
    {"merge", test_merge},
    {"writers", test_writers},
};

CHECK_MAIN(tests)
