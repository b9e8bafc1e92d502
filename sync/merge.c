/*
 * merge.c: the merge rule of one field (merge.h, docs/SYNC.md).
 *
 * Arrays are small (at most SPRO_MERGE_MAX_SIBLINGS entries), so membership
 * is a linear scan and sorting an insertion sort: no allocation, no
 * hashing, and the code stays easy to check against the three steps of the
 * rule.  spro_merge_apply() validates everything and computes the size of
 * the result before it writes a byte, so a refusal leaves the caller's
 * output untouched.
 */
#include "merge.h"

#include <stdint.h>
#include <string.h>

const char *spro_merge_outcome_name(enum spro_merge_outcome o)
{
    switch (o) {
    case SPRO_MERGE_DUPLICATE:
        return "duplicate";
    case SPRO_MERGE_FAST_FORWARD:
        return "fast_forward";
    case SPRO_MERGE_RESOLVED:
        return "resolved";
    case SPRO_MERGE_CONFLICT:
        return "conflict";
    }
    return "?";
}

/* An origin must be a NUL-terminated string within its array. */
static void check_origin(const struct spro_version *v)
{
    if (memchr(v->origin, '\0', sizeof v->origin) == NULL)
        SPRO_BUG("version origin is not NUL-terminated");
}

int spro_merge_version_cmp(const struct spro_version *a, const struct spro_version *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    return strcmp(a->origin, b->origin);
}

static bool version_eq(const struct spro_version *a, const struct spro_version *b)
{
    return a->hlc == b->hlc && strcmp(a->origin, b->origin) == 0;
}

static bool in_base(const struct spro_version *v, const struct spro_version *base, size_t nb)
{
    for (size_t i = 0; i < nb; i++)
        if (version_eq(v, &base[i]))
            return true;
    return false;
}

bool spro_merge_in(const struct spro_version *v, const struct spro_sibling *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (spro_merge_version_cmp(v, &s[i].v) == 0)
            return true;
    return false;
}

bool spro_merge_covers(const struct spro_version *base, size_t nb, const struct spro_sibling *s,
                       size_t ns)
{
    for (size_t i = 0; i < ns; i++)
        if (!in_base(&s[i].v, base, nb))
            return false;
    return true;
}

size_t spro_merge_provisional(const struct spro_sibling *s, size_t n)
{
    if (s == NULL || n == 0)
        SPRO_BUG("provisional value of an empty sibling set");
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (spro_merge_version_cmp(&s[i].v, &s[best].v) > 0)
            best = i;
    return best;
}

/* Whether two siblings with one version are the same write. */
static bool same_write(const struct spro_sibling *a, const struct spro_sibling *b)
{
    if (a->value_len != b->value_len ||
        (a->value_len > 0 && memcmp(a->value, b->value, a->value_len) != 0))
        return false;
    if (a->author == NULL || b->author == NULL)
        return a->author == b->author;
    return strcmp(a->author, b->author) == 0;
}

/* Whether [a, a + an) and [b, b + bn) share a byte (compared as integers,
 * since they may be distinct objects). */
static bool overlap(const void *a, size_t an, const void *b, size_t bn)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return an > 0 && bn > 0 && pa < pb + bn && pb < pa + an;
}

/* Sorts s[0..n) by version ascending (n is small). */
static void sort_siblings(struct spro_sibling *s, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct spro_sibling x = s[i];
        size_t j = i;
        for (; j > 0 && spro_merge_version_cmp(&s[j - 1].v, &x.v) > 0; j--)
            s[j] = s[j - 1];
        s[j] = x;
    }
}

int spro_merge_apply(const struct spro_sibling *cur, size_t ncur, const struct spro_sibling *edit,
                     const struct spro_version *base, size_t nbase,
                     struct spro_sibling out[SPRO_MERGE_MAX_SIBLINGS], size_t *nout,
                     enum spro_merge_outcome *outcome)
{
    if (edit == NULL || out == NULL || nout == NULL || outcome == NULL ||
        (cur == NULL && ncur > 0) || (base == NULL && nbase > 0))
        SPRO_BUG("spro_merge_apply: NULL argument");
    if (ncur > SPRO_MERGE_MAX_SIBLINGS || nbase > SPRO_MERGE_MAX_SIBLINGS)
        return SPRO_ETOOLONG;
    if (overlap(out, SPRO_MERGE_MAX_SIBLINGS * sizeof *out, cur, ncur * sizeof *cur) ||
        overlap(out, SPRO_MERGE_MAX_SIBLINGS * sizeof *out, edit, sizeof *edit))
        SPRO_BUG("spro_merge_apply: out overlaps the input");
    check_origin(&edit->v);
    for (size_t i = 0; i < nbase; i++)
        check_origin(&base[i]);
    for (size_t i = 0; i < ncur; i++) {
        check_origin(&cur[i].v);
        for (size_t j = 0; j < i; j++)
            if (version_eq(&cur[i].v, &cur[j].v))
                return SPRO_EINTEGRITY;
    }

    /* 1. Already a sibling. */
    for (size_t i = 0; i < ncur; i++) {
        if (!version_eq(&cur[i].v, &edit->v))
            continue;
        if (!same_write(&cur[i], edit))
            return SPRO_EEXISTS;
        memcpy(out, cur, ncur * sizeof *cur);
        sort_siblings(out, ncur);
        *nout = ncur;
        *outcome = SPRO_MERGE_DUPLICATE;
        return 0;
    }

    /* 2. The base covers every sibling: the edit replaces them. */
    if (spro_merge_covers(base, nbase, cur, ncur)) {
        out[0] = *edit;
        *nout = 1;
        *outcome = ncur <= 1 ? SPRO_MERGE_FAST_FORWARD : SPRO_MERGE_RESOLVED;
        return 0;
    }

    /* 3. Siblings the writer had not seen stay beside the edit. */
    size_t kept = 0;
    for (size_t i = 0; i < ncur; i++)
        kept += !in_base(&cur[i].v, base, nbase);
    if (kept + 1 > SPRO_MERGE_MAX_SIBLINGS)
        return SPRO_ETOOLONG;
    size_t n = 0;
    for (size_t i = 0; i < ncur; i++)
        if (!in_base(&cur[i].v, base, nbase))
            out[n++] = cur[i];
    out[n++] = *edit;
    sort_siblings(out, n);
    *nout = n;
    *outcome = SPRO_MERGE_CONFLICT;
    return 0;
}
