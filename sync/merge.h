/*
 * merge.h: internal header of sync/ (the sync engine and tests): the hybrid
 * logical clock (hlc.c) and the merge rule of one field (merge.c).
 *
 * Both are pure: no I/O, no SQLite, no allocation.  The engine is to read a
 * field's siblings from the store, call spro_merge_apply() with an incoming
 * edit, and store what it returns in the same transaction.  docs/SYNC.md
 * states the semantics; the randomized test in tests/unit/test_merge.c
 * checks them against a reference model.
 *
 * Field state.  On the server a field is a set of siblings (normally one):
 * the writes that no later write has superseded.  Two or more siblings are
 * a conflict, shown through a provisional value until someone resolves it
 * with an edit whose base lists every sibling.  No write is ever dropped by
 * the merge: a sibling leaves the set only when an applied edit names its
 * version in its base.
 */
#ifndef SPRO_SYNC_MERGE_H
#define SPRO_SYNC_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* ---- Hybrid logical clock ----
 *
 * An HLC value is a uint64_t: the high 48 bits hold milliseconds since the
 * Unix epoch (the physical part), the low 16 bits a logical counter.  Values
 * compare as plain integers.  When the counter is at 0xffff, the next +1
 * carries into the physical part: the clock then runs one millisecond ahead
 * of the wall clock until the wall clock catches up.  This keeps every
 * value strictly increasing, which is all that versions need.
 *
 * Physical inputs (wall clocks, drift limits) saturate at SPRO_HLC_MAX_MS
 * (year 6429), so that a clock started below it never wraps around: it
 * would take 2^63 events.
 */

#define SPRO_HLC_LOGICAL_BITS 16
#define SPRO_HLC_MAX_MS ((UINT64_C(1) << 47) - 1)

struct spro_hlc {
    uint64_t last; /* last value handed out: 0 for a new clock, or a value
                      this clock returned before (persisted by the caller) */
};

/* A local event (a write) at wall-clock time wall_ms: returns
 * max(wall_ms << 16, last + 1) and stores it in c->last.  The result is
 * strictly greater than every value c returned before. */
uint64_t spro_hlc_tick(struct spro_hlc *c, uint64_t wall_ms);

/* A remote timestamp `remote` (untrusted: from the network) is received at
 * local wall-clock time wall_ms.  Let limit = wall_ms + max_drift_ms.  If
 * remote's physical part exceeds limit, remote is taken as limit << 16 (its
 * counter zeroed) and *clamped is set to true; otherwise *clamped is set to
 * false.  Then c->last becomes max(last + 1, remote + 1, wall_ms << 16),
 * which is returned: the value the receiver records for the event.  This is
 * the receive rule of Kulkarni et al. ("Logical physical clocks", 2014) on
 * packed values: equal physical parts take the larger counter plus one, a
 * larger wall clock resets the counter to 0.
 *
 * Clamping to limit << 16 (not limit << 16 | 0xffff) keeps the result's
 * physical part at most limit as long as the counter does not carry, so a
 * clock far ahead cannot drag this one beyond the allowed drift.  It
 * changes only this clock: the remote write keeps its version as written
 * (versions are identities; see spro_merge_apply).  clamped may be NULL. */
uint64_t spro_hlc_receive(struct spro_hlc *c, uint64_t remote, uint64_t wall_ms,
                          uint64_t max_drift_ms, bool *clamped);

/* The physical part of an HLC value, in milliseconds since the epoch. */
uint64_t spro_hlc_physical_ms(uint64_t h);

/* ---- Versions, siblings, the merge rule ---- */

#define SPRO_ORIGIN_MAX 64         /* bytes of an origin, without the NUL */
#define SPRO_MERGE_MAX_SIBLINGS 32 /* siblings of a field; entries of a base */

/* Identifies one write.  Versions are totally ordered by (hlc, origin),
 * origins compared with strcmp.  One replica never writes two versions
 * with the same hlc, so a version is unique to its write. */
struct spro_version {
    uint64_t hlc;                     /* spro_hlc_tick() of the writer */
    char origin[SPRO_ORIGIN_MAX + 1]; /* replica that wrote it: a device id
                                         (UUID, 36 chars) or "srv:<hex>";
                                         NUL-terminated */
};

/* One write of a field.  value and author are borrowed: this module copies
 * the pointers, never the bytes, and never frees them. */
struct spro_sibling {
    struct spro_version v;
    const uint8_t *value; /* the value, msgpack-encoded, opaque here;
                             may be NULL when value_len is 0 */
    size_t value_len;
    const char *author; /* user id, opaque here; may be NULL (unknown) */
};

enum spro_merge_outcome {
    SPRO_MERGE_DUPLICATE = 1, /* the edit is already a sibling: nothing changed */
    SPRO_MERGE_FAST_FORWARD,  /* base covered the one sibling (or none): replaced */
    SPRO_MERGE_RESOLVED,      /* base covered two or more siblings: one value again */
    SPRO_MERGE_CONFLICT,      /* base missed a sibling: two or more siblings now */
};

/* "duplicate", "fast_forward", "resolved", "conflict"; "?" otherwise. */
const char *spro_merge_outcome_name(enum spro_merge_outcome o);

/* <0, 0 or >0 as a sorts before, equals or sorts after b: by hlc, then by
 * origin (strcmp). */
int spro_merge_version_cmp(const struct spro_version *a, const struct spro_version *b);

/* Whether v is the version of one of s[0..n). */
bool spro_merge_in(const struct spro_version *v, const struct spro_sibling *s, size_t n);

/* Whether every sibling's version appears in base[0..nb) (true when ns is
 * 0).  Duplicates in base are harmless.  O(nb * ns). */
bool spro_merge_covers(const struct spro_version *base, size_t nb, const struct spro_sibling *s,
                       size_t ns);

/* Index of the value to display for s[0..n): the sibling with the highest
 * version (hlc, then origin).  Deterministic: every replica holding the
 * same siblings, in any order, shows the same one.  n must be at least 1. */
size_t spro_merge_provisional(const struct spro_sibling *s, size_t n);

/* Applies an edit to a field whose current siblings are cur[0..ncur), in
 * any order.  The edit is the write *edit and base[0..nbase), the versions
 * of this field its writer had seen when it wrote (none for a field it had
 * never seen).  With C the current versions and B the base:
 *
 *   1. edit->v in C: SPRO_MERGE_DUPLICATE, the siblings are C unchanged.
 *   2. otherwise, every version of C in B (always true for an empty C): the
 *      siblings become {edit}; SPRO_MERGE_FAST_FORWARD if C had at most one
 *      version, SPRO_MERGE_RESOLVED if it had more.
 *   3. otherwise: the siblings become (C minus B) plus {edit}, at least two:
 *      SPRO_MERGE_CONFLICT.
 *
 * On success returns 0, writes the new siblings to out[0..*nout) sorted by
 * version ascending (so spro_merge_provisional() is *nout - 1), and the
 * outcome to *outcome.  out holds copies of the structs of cur and edit,
 * whose value and author pointers stay borrowed from the caller.
 *
 * On failure returns a negative code and writes nothing to out, *nout or
 * *outcome; the caller quarantines the op (an edit is never dropped):
 *   SPRO_ETOOLONG  ncur or nbase above SPRO_MERGE_MAX_SIBLINGS, or step 3
 *                  would need more siblings than that;
 *   SPRO_EEXISTS   edit->v is in C but that sibling holds other value bytes
 *                  or another author: two different writes carry one version
 *                  (a replica reused a clock value, e.g. restored from an
 *                  old copy of its state);
 *   SPRO_EINTEGRITY  cur holds one version twice (damaged stored state).
 *
 * Idempotency: step 1 recognises an edit only while its version is still a
 * sibling.  An edit applied, then superseded by a later edit, then applied
 * again would come back as a conflict sibling: the caller must drop
 * retried ops before this call (the engine by op id).  Duplicate entries in
 * base are harmless.  out must not overlap cur or edit; every origin must
 * be NUL-terminated (API misuse otherwise: SPRO_BUG). */
SPRO_MUST_CHECK int spro_merge_apply(const struct spro_sibling *cur, size_t ncur,
                                     const struct spro_sibling *edit,
                                     const struct spro_version *base, size_t nbase,
                                     struct spro_sibling out[SPRO_MERGE_MAX_SIBLINGS], size_t *nout,
                                     enum spro_merge_outcome *outcome);

#endif
