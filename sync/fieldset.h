/*
 * fieldset.h: a record's siblings in memory, as the store keeps them in
 * its row (docs/SYNC.md, "Store"): an array of siblings in order of field
 * name, hlc, origin, each [name, hlc, origin, author, schema, value] in
 * msgpack (value a bin holding the value's msgpack).  records.plain holds
 * the array of the fields that are not personal; records.sealed the array
 * of the personal ones, sealed (sync/engine.c does the sealing: it holds
 * the keys).  Also the canonical msgpack writers these arrays and the
 * engine use.  Internal to sync/; no I/O.
 */
#ifndef SPRO_SYNC_FIELDSET_H
#define SPRO_SYNC_FIELDSET_H

#include "merge.h"
#include "proto/proto.h"
#include "sync.h"

#include <stddef.h>
#include <stdint.h>

/* Siblings of one record, at most: every field's at most. */
#define SPRO_FSET_ENTRIES (SPRO_SYNC_MAX_FIELDS * SPRO_MERGE_MAX_SIBLINGS)
/* Bytes of a value's msgpack, at most: a str 16 header and
 * SPRO_SYNC_MAX_VALUE bytes. */
#define SPRO_FSET_VALUE_MAX (SPRO_SYNC_MAX_VALUE + 3)

struct spro_fset_entry {
    char name[SPRO_ID_MAX + 1];
    uint64_t hlc;
    char origin[SPRO_ORIGIN_MAX + 1];
    char author[SPRO_ID_MAX + 1];
    uint32_t schema;
    uint8_t *val; /* in the set's pt, or malloc'd when owned; wiped when freed */
    size_t len;
    int owned;
};

/* The siblings of one record's fields (its personal ones, or its others),
 * in memory. */
struct spro_fset {
    struct spro_fset_entry *e;
    size_t n, cap;
    uint8_t *pt; /* the opened set the entries read from point into (malloc'd) */
    size_t ptcap;
};

/* Empties ps, wiping its values and its plaintext (kept for reuse). */
void spro_fset_clear(struct spro_fset *ps);
/* spro_fset_clear(), and frees what ps holds. */
void spro_fset_free(struct spro_fset *ps);
/* <0, 0, >0: a before, equal to, after b (by name, hlc, origin). */
int spro_fset_entry_cmp(const struct spro_fset_entry *a, const struct spro_fset_entry *b);
/* Appends a sibling: copies of its strings (each within its bound: the
 * caller checked) and, when owned, of its value (else val must outlive
 * the entry: ps->pt, a buffer of the caller's). */
struct spro_fset_entry *spro_fset_add(struct spro_fset *ps, const char *name, uint64_t hlc,
                                      const char *origin, const char *author, uint32_t schema,
                                      const uint8_t *val, size_t len, int owned);
/* An array (len bytes at pt) into ps, which must be empty; its values keep
 * pointing into pt.  0, or SPRO_EINTEGRITY unless it is well formed,
 * sorted, without a version twice and with at most
 * SPRO_MERGE_MAX_SIBLINGS siblings a field. */
SPRO_MUST_CHECK int spro_fset_decode(struct spro_fset *ps, const uint8_t *pt, size_t len);
/* Appends ps's array to b. */
void spro_fset_encode(const struct spro_fset *ps, struct spro_buf *b);
/* Puts ps's entries in order of name, hlc, origin. */
void spro_fset_sort(struct spro_fset *ps);
/* The merge's result for field name: its siblings that out[0..nout) no
 * longer holds go, the edit (written by an op of schema) is added. */
void spro_fset_merge(struct spro_fset *ps, const char *name, const struct spro_sibling *edit,
                     const struct spro_sibling *out, size_t nout, uint32_t schema);
/* The number of distinct fields in ps. */
size_t spro_fset_nfields(const struct spro_fset *ps);

/* Canonical msgpack writers (the shortest form of each header), appending
 * to b: an unsigned integer; a map (fix 0x80) or array (fix 0x90) header of
 * n <= 65535 entries; a str of n bytes (or of the C string k); a bin. */
void spro_mpw_uint(struct spro_buf *b, uint64_t v);
void spro_mpw_head(struct spro_buf *b, uint8_t fix, size_t n);
void spro_mpw_str(struct spro_buf *b, const void *p, size_t n);
void spro_mpw_key(struct spro_buf *b, const char *k);
void spro_mpw_bin(struct spro_buf *b, const void *p, size_t n);

#endif
