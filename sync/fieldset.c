/*
 * fieldset.c: a record's siblings in memory and their msgpack array
 * (fieldset.h; docs/SYNC.md, "Store").
 */
#include "fieldset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* msgpack writers (canonical: the shortest form of each header). */
static void mp_byte(struct spro_buf *b, uint8_t c)
{
    spro_buf_append(b, &c, 1);
}

static void mp_be(struct spro_buf *b, uint8_t tag, uint64_t v, int bytes)
{
    mp_byte(b, tag);
    for (int i = bytes - 1; i >= 0; i--)
        mp_byte(b, (uint8_t)(v >> (8 * i)));
}

void spro_mpw_uint(struct spro_buf *b, uint64_t v)
{
    if (v < 0x80)
        mp_byte(b, (uint8_t)v);
    else if (v <= UINT8_MAX)
        mp_be(b, 0xcc, v, 1);
    else if (v <= UINT16_MAX)
        mp_be(b, 0xcd, v, 2);
    else if (v <= UINT32_MAX)
        mp_be(b, 0xce, v, 4);
    else
        mp_be(b, 0xcf, v, 8);
}

/* A map (0x80) or array (0x90) header of n <= 65535 entries. */
void spro_mpw_head(struct spro_buf *b, uint8_t fix, size_t n)
{
    if (n < 16)
        mp_byte(b, (uint8_t)(fix | n));
    else
        mp_be(b, fix == 0x80 ? 0xde : 0xdc, n, 2);
}

void spro_mpw_str(struct spro_buf *b, const void *p, size_t n)
{
    if (n < 32)
        mp_byte(b, (uint8_t)(0xa0 | n));
    else if (n <= UINT8_MAX)
        mp_be(b, 0xd9, n, 1);
    else if (n <= UINT16_MAX)
        mp_be(b, 0xda, n, 2);
    else
        mp_be(b, 0xdb, n, 4);
    spro_buf_append(b, p, n);
}

void spro_mpw_key(struct spro_buf *b, const char *k)
{
    spro_mpw_str(b, k, strlen(k));
}

void spro_mpw_bin(struct spro_buf *b, const void *p, size_t n)
{
    if (n <= UINT8_MAX)
        mp_be(b, 0xc4, n, 1);
    else if (n <= UINT16_MAX)
        mp_be(b, 0xc5, n, 2);
    else
        mp_be(b, 0xc6, n, 4);
    spro_buf_append(b, p, n);
}

static void pentry_drop(struct spro_fset_entry *e)
{
    if (e->owned) {
        spro_memzero(e->val, e->len);
        free(e->val);
    }
}

void spro_fset_clear(struct spro_fset *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        pentry_drop(&ps->e[i]);
    ps->n = 0;
    if (ps->pt != NULL)
        spro_memzero(ps->pt, ps->ptcap);
}

void spro_fset_free(struct spro_fset *ps)
{
    spro_fset_clear(ps);
    free(ps->pt);
    free(ps->e);
    memset(ps, 0, sizeof *ps);
}

int spro_fset_entry_cmp(const struct spro_fset_entry *a, const struct spro_fset_entry *b)
{
    int c = strcmp(a->name, b->name);
    if (c != 0)
        return c;
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    return strcmp(a->origin, b->origin);
}

/* Copies s (at most cap - 1 bytes: the callers checked) into out. */
static void copy_id(char *out, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Appends a sibling: copies of its strings and, when owned, of its value
 * (else val stays in ps->pt). */
struct spro_fset_entry *spro_fset_add(struct spro_fset *ps, const char *name, uint64_t hlc,
                                      const char *origin, const char *author, uint32_t schema,
                                      const uint8_t *val, size_t len, int owned)
{
    if (ps->n == ps->cap &&
        (ps->e = realloc(ps->e, (ps->cap = ps->cap ? 2 * ps->cap : 16) * sizeof *ps->e)) == NULL)
        SPRO_BUG("out of memory");
    struct spro_fset_entry *e = &ps->e[ps->n++];
    copy_id(e->name, sizeof e->name, name);
    e->hlc = hlc;
    copy_id(e->origin, sizeof e->origin, origin);
    copy_id(e->author, sizeof e->author, author);
    e->schema = schema;
    e->owned = owned;
    e->len = len;
    e->val = (uint8_t *)val;
    if (owned) {
        if ((e->val = malloc(len ? len : 1)) == NULL)
            SPRO_BUG("out of memory");
        memcpy(e->val, val, len);
    }
    return e;
}

/* Reads a str of at most max bytes into out (max + 1 bytes). */
static int mp_cstr(struct spro_mp_reader *r, char *out, size_t max)
{
    const char *p;
    size_t n;
    if (spro_mp_read_str(r, max, &p, &n) != 0 || n == 0 || memchr(p, 0, n) != NULL)
        return SPRO_EINTEGRITY;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* The set's plaintext (pt, len: ps->pt, which its values keep pointing
 * into) into ps: well formed, sorted, no version twice, at most
 * SPRO_MERGE_MAX_SIBLINGS siblings a field. */
int spro_fset_decode(struct spro_fset *ps, const uint8_t *pt, size_t len)
{
    struct spro_mp_reader r;
    uint32_t n, six;
    spro_mp_reader_init(&r, pt, len);
    if (spro_mp_read_array(&r, SPRO_FSET_ENTRIES, &n) != 0)
        return SPRO_EINTEGRITY;
    for (uint32_t i = 0; i < n; i++) {
        struct spro_fset_entry e = {0};
        uint64_t schema;
        const uint8_t *v;
        size_t vlen;
        if (spro_mp_read_array(&r, 6, &six) != 0 || six != 6 ||
            mp_cstr(&r, e.name, SPRO_ID_MAX) != 0 ||
            spro_mp_read_uint(&r, 1, INT64_MAX, &e.hlc) != 0 ||
            mp_cstr(&r, e.origin, SPRO_ORIGIN_MAX) != 0 ||
            mp_cstr(&r, e.author, SPRO_ID_MAX) != 0 ||
            spro_mp_read_uint(&r, 0, UINT32_MAX, &schema) != 0 ||
            spro_mp_read_bin(&r, SPRO_FSET_VALUE_MAX, &v, &vlen) != 0)
            return SPRO_EINTEGRITY;
        if (ps->n > 0) {
            const struct spro_fset_entry *last = &ps->e[ps->n - 1];
            int c = spro_fset_entry_cmp(last, &e);
            if (c >= 0)
                return SPRO_EINTEGRITY;
            size_t same = 1;
            for (size_t k = ps->n; k > 0 && strcmp(ps->e[k - 1].name, e.name) == 0; k--)
                same++;
            if (same > SPRO_MERGE_MAX_SIBLINGS)
                return SPRO_EINTEGRITY;
        }
        spro_fset_add(ps, e.name, e.hlc, e.origin, e.author, (uint32_t)schema, v, vlen, 0);
    }
    return spro_mp_finish(&r) == 0 ? 0 : SPRO_EINTEGRITY;
}

void spro_fset_encode(const struct spro_fset *ps, struct spro_buf *b)
{
    spro_mpw_head(b, 0x90, ps->n);
    for (size_t i = 0; i < ps->n; i++) {
        const struct spro_fset_entry *e = &ps->e[i];
        spro_mpw_head(b, 0x90, 6);
        spro_mpw_key(b, e->name);
        spro_mpw_uint(b, e->hlc);
        spro_mpw_key(b, e->origin);
        spro_mpw_key(b, e->author);
        spro_mpw_uint(b, e->schema);
        spro_mpw_bin(b, e->val, e->len);
    }
}

static int pentry_qcmp(const void *a, const void *b)
{
    return spro_fset_entry_cmp(a, b);
}

/* Puts the entries of ps in order of name, hlc, origin. */
void spro_fset_sort(struct spro_fset *ps)
{
    if (ps->n > 1)
        qsort(ps->e, ps->n, sizeof *ps->e, pentry_qcmp);
}

/* The merge's result for field name, as store_merge() writes it to
 * rec_siblings: the siblings of name that out (nout) no longer holds are
 * removed, the edit (written by an op of schema) is added. */
void spro_fset_merge(struct spro_fset *ps, const char *name, const struct spro_sibling *edit,
                     const struct spro_sibling *out, size_t nout, uint32_t schema)
{
    size_t k = 0;
    for (size_t i = 0; i < ps->n; i++) {
        struct spro_fset_entry *e = &ps->e[i];
        struct spro_version v = {.hlc = e->hlc};
        strcpy(v.origin, e->origin);
        if (strcmp(e->name, name) == 0 && !spro_merge_in(&v, out, nout)) {
            pentry_drop(e);
            continue;
        }
        ps->e[k++] = *e;
    }
    ps->n = k;
    spro_fset_add(ps, name, edit->v.hlc, edit->v.origin, edit->author, schema, edit->value,
                  edit->value_len, 1);
    spro_fset_sort(ps);
}

/* The number of distinct fields in ps. */
size_t spro_fset_nfields(const struct spro_fset *ps)
{
    size_t n = 0;
    for (size_t i = 0; i < ps->n; i++)
        n += i == 0 || strcmp(ps->e[i].name, ps->e[i - 1].name) != 0;
    return n;
}
