/*
 * Unit tests of the merge core of sync/ (sync/merge.h): the hybrid logical
 * clock, version order, coverage, the provisional value, every outcome of
 * spro_merge_apply() and its limits, then a randomized simulation of
 * devices syncing with a server, checked against a reference model.
 *
 * The tables spell a set of versions as "1a 2b 7srv:01": each token is a
 * decimal hlc immediately followed by its origin.
 *
 * The simulation (test_random_convergence, test_random_crowd): a server
 * holds the sibling sets of a few fields; each device holds a local
 * replica (the server's sets as of its last pull, with its unsent edits
 * applied on top) and an outbox.  Devices edit offline, resolve conflicts,
 * and sync in random order: a push may stop midway (the rest stays in the
 * outbox) or lose its answer (the whole batch is sent again later, as the
 * engine's clients do).  The server drops ops it already answered by op id
 * (device, sequence), as the engine does, and asks the merge anyway to
 * check that an op still among the siblings is recognised as a duplicate.
 * The reference model keeps every edit ever made and, per edit, whether an
 * applied edit listed its version in its base ("superseded").  Checked:
 *   - no edit vanishes: each is a sibling on the server, superseded, or
 *     refused with SPRO_ETOOLONG (counted: the engine quarantines those);
 *   - exactly: a field's siblings are its applied edits that no applied
 *     edit superseded;
 *   - no sibling set ever holds a sibling whose version is in the base of
 *     the edit that wrote another sibling of the set;
 *   - after everyone syncs until quiet, every replica equals the server.
 * Seeds are fixed; the counts are printed.  Run with no argument for every
 * test, or name tests to run.
 */
#include "check.h"

#include "sync/merge.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MS(x) ((uint64_t)(x) << SPRO_HLC_LOGICAL_BITS)
#define DRIFT_MS 60000 /* maximum clock drift accepted by receivers */

/* ---- Helpers of the tables ---- */

struct vset {
    struct spro_version v[SPRO_MERGE_MAX_SIBLINGS + 1];
    size_t n;
};

/* Parses "1a 2b ..." into *out; a bad spec is a bug of the test. */
static void parse_versions(const char *spec, struct vset *out)
{
    memset(out, 0, sizeof *out);
    const char *p = spec;
    while (*p != '\0') {
        if (*p == ' ') {
            p++;
            continue;
        }
        if (out->n == sizeof out->v / sizeof out->v[0] || *p < '0' || *p > '9') {
            fprintf(stderr, "bad version spec \"%s\"\n", spec);
            abort();
        }
        struct spro_version *v = &out->v[out->n++];
        while (*p >= '0' && *p <= '9')
            v->hlc = v->hlc * 10 + (uint64_t)(*p++ - '0');
        size_t len = strcspn(p, " ");
        if (len == 0 || len > SPRO_ORIGIN_MAX) {
            fprintf(stderr, "bad version spec \"%s\"\n", spec);
            abort();
        }
        memcpy(v->origin, p, len);
        p += len;
    }
}

/* Siblings with the versions of vs, each holding the value "x" by "u". */
static void siblings_of(const struct vset *vs, struct spro_sibling *s)
{
    for (size_t i = 0; i < vs->n; i++)
        s[i] = (struct spro_sibling){
            .v = vs->v[i], .value = (const uint8_t *)"x", .value_len = 1, .author = "u"};
}

/* The versions of s[0..n) spelled as in the tables. */
static void spell(const struct spro_sibling *s, size_t n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%" PRIu64 "%s", i ? " " : "", s[i].v.hlc,
                               s[i].v.origin);
}

/* ---- Hybrid logical clock ---- */

static void test_hlc_tick(void)
{
    static const struct {
        uint64_t last, wall, expect;
    } cases[] = {
        {0, 1000, MS(1000)},                 /* new clock */
        {MS(1000), 1000, MS(1000) + 1},      /* same millisecond */
        {MS(1000) + 5, 999, MS(1000) + 6},   /* wall clock went back */
        {MS(1000) + 5, 1001, MS(1001)},      /* next ms: counter 0 */
        {MS(1000) | 0xffff, 1000, MS(1001)}, /* counter carries */
        {MS(1000) | 0xffff, 1001, MS(1001)}, /* ... into the wall clock */
        {MS(1001) + 2, 1001, MS(1001) + 3},
        {0, SPRO_HLC_MAX_MS + 7, MS(SPRO_HLC_MAX_MS)}, /* wall clock saturates */
        {MS(SPRO_HLC_MAX_MS), UINT64_MAX, MS(SPRO_HLC_MAX_MS) + 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spro_hlc c = {cases[i].last};
        uint64_t got = spro_hlc_tick(&c, cases[i].wall);
        if (got != cases[i].expect || c.last != got)
            CHECK__FAIL("tick case %zu: got %#" PRIx64 ", expected %#" PRIx64, i, got,
                        cases[i].expect);
    }
    CHECK_EQ(spro_hlc_physical_ms(MS(1700000000123) | 0xabcd), 1700000000123);
}

static void test_hlc_receive(void)
{
    static const struct {
        uint64_t last, remote, wall, drift, expect;
        bool clamped;
    } cases[] = {
        /* Remote behind: the local clock goes on. */
        {MS(1000), MS(900) + 3, 1000, DRIFT_MS, MS(1000) + 1, false},
        /* Equal physical parts: the larger counter plus one. */
        {MS(1000) + 2, MS(1000) + 7, 1000, DRIFT_MS, MS(1000) + 8, false},
        {MS(1000) + 9, MS(1000) + 7, 1000, DRIFT_MS, MS(1000) + 10, false},
        /* Remote ahead, within the drift: taken, counter plus one. */
        {MS(1000), MS(1500) + 4, 1200, DRIFT_MS, MS(1500) + 5, false},
        /* Wall clock ahead of both: counter 0. */
        {MS(1000) + 3, MS(500) + 9, 2000, DRIFT_MS, MS(2000), false},
        /* Remote exactly at the limit, counter full: the carry passes it by 1 ms. */
        {MS(1000), MS(61000) | 0xffff, 1000, DRIFT_MS, MS(61001), false},
        /* Beyond the limit: clamped to limit << 16. */
        {MS(1000), MS(61001), 1000, DRIFT_MS, MS(61000) + 1, true},
        {MS(1000), MS(100000) + 4, 1000, DRIFT_MS, MS(61000) + 1, true},
        {MS(1000), UINT64_MAX, 1000, DRIFT_MS, MS(61000) + 1, true},
        /* A clamped remote below the local clock changes nothing but +1. */
        {MS(70000), MS(90000), 1000, DRIFT_MS, MS(70000) + 1, true},
        /* No drift allowed. */
        {0, MS(1001), 1000, 0, MS(1000) + 1, true},
        /* Limits saturate instead of wrapping. */
        {MS(1000), UINT64_MAX, 1000, UINT64_MAX, MS(SPRO_HLC_MAX_MS) + 1, true},
        {0, MS(SPRO_HLC_MAX_MS), UINT64_MAX, 0, MS(SPRO_HLC_MAX_MS) + 1, false},
        /* Counter carries on receive too. */
        {MS(1000) | 0xffff, MS(1000) | 0xffff, 1000, DRIFT_MS, MS(1001), false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spro_hlc c = {cases[i].last};
        bool clamped = !cases[i].clamped;
        uint64_t got =
            spro_hlc_receive(&c, cases[i].remote, cases[i].wall, cases[i].drift, &clamped);
        if (got != cases[i].expect || c.last != got || clamped != cases[i].clamped)
            CHECK__FAIL("receive case %zu: got %#" PRIx64 " clamped %d, expected %#" PRIx64
                        " clamped %d",
                        i, got, clamped, cases[i].expect, cases[i].clamped);
    }
    struct spro_hlc c = {0};
    CHECK_EQ(spro_hlc_receive(&c, MS(5), 10, 0, NULL), MS(10)); /* clamped may be NULL */
}

/* Any mix of events gives strictly increasing values, never below the
 * wall clock, and never beyond the drift from the latest wall clock seen
 * (plus one millisecond: a remote at the limit whose counter carries). */
static void test_hlc_monotonic(void)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    struct spro_hlc c = {0};
    uint64_t prev = 0, wall = 1700000000000u, top = wall;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        wall = wall + (x % 5) - 2; /* jitters, goes back at times */
        top = wall > top ? wall : top;
        uint64_t got;
        if (x % 3 == 0) {
            got = spro_hlc_tick(&c, wall);
        } else {
            uint64_t remote = MS(wall + (x >> 8) % 200000 - 100000) | ((x >> 40) & 0xffff);
            bool clamped;
            got = spro_hlc_receive(&c, remote, wall, DRIFT_MS, &clamped);
            CHECK_EQ(clamped, spro_hlc_physical_ms(remote) > wall + DRIFT_MS);
        }
        CHECK_INT(got, >, prev);
        CHECK_INT(got, >=, MS(wall));
        CHECK_INT(spro_hlc_physical_ms(got), <=, top + DRIFT_MS + 1);
        prev = got;
    }
}

/* ---- Versions, coverage, provisional value ---- */

static void test_version_cmp(void)
{
    static const struct {
        const char *a, *b;
        int sign;
    } cases[] = {
        {"1a", "1a", 0},
        {"1a", "2a", -1},
        {"2a", "1b", 1},  /* hlc first */
        {"5a", "5b", -1}, /* then origin */
        {"5ab", "5a", 1}, /* strcmp: a prefix sorts first */
        {"5srv:00", "5f47ac10-58cc-4372-a567-0e02b2c3d479", 1},
        {"18446744073709551615a", "0a", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vset a, b;
        parse_versions(cases[i].a, &a);
        parse_versions(cases[i].b, &b);
        int got = spro_merge_version_cmp(&a.v[0], &b.v[0]);
        int sign = (got > 0) - (got < 0);
        if (sign != cases[i].sign)
            CHECK__FAIL("cmp(%s, %s) = %d, expected sign %d", cases[i].a, cases[i].b, got,
                        cases[i].sign);
        got = spro_merge_version_cmp(&b.v[0], &a.v[0]);
        CHECK_EQ((got > 0) - (got < 0), -cases[i].sign);
    }
}

static void test_covers(void)
{
    static const struct {
        const char *base, *siblings;
        bool covers;
    } cases[] = {
        {"", "", true},
        {"1a", "", true},
        {"", "1a", false},
        {"1a", "1a", true},
        {"1b", "1a", false},
        {"2a", "1a", false},
        {"1a 2b", "2b 1a", true},
        {"1a 1a 2b", "1a 2b", true},
        {"1a 3c", "1a 2b", false},
        {"2b 1a 9z", "1a 2b", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vset b, s;
        struct spro_sibling sib[SPRO_MERGE_MAX_SIBLINGS + 1];
        parse_versions(cases[i].base, &b);
        parse_versions(cases[i].siblings, &s);
        siblings_of(&s, sib);
        if (spro_merge_covers(b.v, b.n, sib, s.n) != cases[i].covers)
            CHECK__FAIL("covers(\"%s\", \"%s\") should be %d", cases[i].base, cases[i].siblings,
                        cases[i].covers);
    }
}

static void test_provisional(void)
{
    static const struct {
        const char *siblings;
        size_t index;
    } cases[] = {
        {"1a", 0},
        {"1a 2b", 1},
        {"2b 1a", 0},
        {"5b 5a", 0}, /* same hlc: the larger origin */
        {"5a 5b 4z", 1},
        {"3a 9a 9b 9ab 2z", 2}, /* "b" > "ab" */
        {"7f47ac10-58cc-4372-a567-0e02b2c3d479 7srv:0a", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vset s;
        struct spro_sibling sib[SPRO_MERGE_MAX_SIBLINGS + 1];
        parse_versions(cases[i].siblings, &s);
        siblings_of(&s, sib);
        size_t got = spro_merge_provisional(sib, s.n);
        if (got != cases[i].index)
            CHECK__FAIL("provisional(\"%s\") = %zu, expected %zu", cases[i].siblings, got,
                        cases[i].index);
    }
}

static void test_outcome_names(void)
{
    CHECK_STR(spro_merge_outcome_name(SPRO_MERGE_DUPLICATE), "duplicate");
    CHECK_STR(spro_merge_outcome_name(SPRO_MERGE_FAST_FORWARD), "fast_forward");
    CHECK_STR(spro_merge_outcome_name(SPRO_MERGE_RESOLVED), "resolved");
    CHECK_STR(spro_merge_outcome_name(SPRO_MERGE_CONFLICT), "conflict");
    CHECK_STR(spro_merge_outcome_name((enum spro_merge_outcome)0), "?");
}

/* ---- spro_merge_apply ---- */

static void test_apply_outcomes(void)
{
    static const struct {
        const char *cur, *base, *edit;
        int rc;
        enum spro_merge_outcome outcome;
        const char *expect; /* siblings after, in order */
    } cases[] = {
        /* A field nobody wrote yet. */
        {"", "", "5a", 0, SPRO_MERGE_FAST_FORWARD, "5a"},
        {"", "1z", "5a", 0, SPRO_MERGE_FAST_FORWARD, "5a"},
        /* The edit saw the current value. */
        {"1a", "1a", "5b", 0, SPRO_MERGE_FAST_FORWARD, "5b"},
        {"1a", "1a 0q", "5b", 0, SPRO_MERGE_FAST_FORWARD, "5b"},
        {"1a", "1a 1a", "5b", 0, SPRO_MERGE_FAST_FORWARD, "5b"},
        /* Lower hlc than the value it replaces (the writer's clock is behind). */
        {"9a", "9a", "3b", 0, SPRO_MERGE_FAST_FORWARD, "3b"},
        /* The edit did not see the current value: both kept. */
        {"1a", "", "5b", 0, SPRO_MERGE_CONFLICT, "1a 5b"},
        {"1a", "0z", "5b", 0, SPRO_MERGE_CONFLICT, "1a 5b"},
        {"9a", "", "3b", 0, SPRO_MERGE_CONFLICT, "3b 9a"},
        {"5a", "", "5b", 0, SPRO_MERGE_CONFLICT, "5a 5b"},
        /* Resolutions: the base covers every sibling. */
        {"1a 2b", "1a 2b", "3c", 0, SPRO_MERGE_RESOLVED, "3c"},
        {"2b 1a", "2b 9z 1a", "3c", 0, SPRO_MERGE_RESOLVED, "3c"},
        {"1a 2b 3c", "3c 2b 1a", "4a", 0, SPRO_MERGE_RESOLVED, "4a"},
        /* Partial bases: what the writer saw goes, the rest stays. */
        {"1a 2b", "1a", "3c", 0, SPRO_MERGE_CONFLICT, "2b 3c"},
        {"1a 2b", "2b", "3c", 0, SPRO_MERGE_CONFLICT, "1a 3c"},
        {"1a 2b", "", "0c", 0, SPRO_MERGE_CONFLICT, "0c 1a 2b"},
        {"3c 1a 2b", "1a 2b", "4a", 0, SPRO_MERGE_CONFLICT, "3c 4a"},
        /* The same write again: nothing changes (the set comes back sorted). */
        {"1a", "", "1a", 0, SPRO_MERGE_DUPLICATE, "1a"},
        {"2b 1a", "1a", "1a", 0, SPRO_MERGE_DUPLICATE, "1a 2b"},
        {"1a 2b", "1a 2b", "2b", 0, SPRO_MERGE_DUPLICATE, "1a 2b"},
        /* Stored state holding one version twice is refused. */
        {"1a 1a", "1a", "2b", SPRO_EINTEGRITY, 0, NULL},
        {"1a 2b 1a", "", "1a", SPRO_EINTEGRITY, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vset c, b, e;
        struct spro_sibling cur[SPRO_MERGE_MAX_SIBLINGS + 1], edit, out[SPRO_MERGE_MAX_SIBLINGS];
        parse_versions(cases[i].cur, &c);
        parse_versions(cases[i].base, &b);
        parse_versions(cases[i].edit, &e);
        siblings_of(&c, cur);
        siblings_of(&e, &edit);
        size_t nout = 99;
        enum spro_merge_outcome oc = 0;
        int rc = spro_merge_apply(cur, c.n, &edit, b.v, b.n, out, &nout, &oc);
        if (rc != cases[i].rc)
            CHECK__FAIL("case %zu (%s | %s | %s): rc %d, expected %d", i, cases[i].cur,
                        cases[i].base, cases[i].edit, rc, cases[i].rc);
        if (rc != 0) {
            CHECK_EQ(nout, 99); /* nothing written */
            CHECK_EQ(oc, 0);
            continue;
        }
        char got[256];
        spell(out, nout, got, sizeof got);
        if (oc != cases[i].outcome || strcmp(got, cases[i].expect) != 0)
            CHECK__FAIL("case %zu (%s | %s | %s): %s \"%s\", expected %s \"%s\"", i, cases[i].cur,
                        cases[i].base, cases[i].edit, spro_merge_outcome_name(oc), got,
                        spro_merge_outcome_name(cases[i].outcome), cases[i].expect);
        CHECK_EQ(spro_merge_provisional(out, nout), nout - 1);
    }
}

/* out holds the caller's value and author pointers, never copies. */
static void test_apply_borrows(void)
{
    static const uint8_t v1[] = {0xa1, 'a'}, v2[] = {0xa1, 'b'};
    struct spro_sibling cur = {.v = {10, "dev-1"}, .value = v1, .value_len = 2, .author = "ann"};
    struct spro_sibling edit = {.v = {11, "dev-2"}, .value = v2, .value_len = 2, .author = "bob"};
    struct spro_sibling out[SPRO_MERGE_MAX_SIBLINGS];
    size_t n;
    enum spro_merge_outcome oc;
    CHECK_EQ(spro_merge_apply(&cur, 1, &edit, NULL, 0, out, &n, &oc), 0);
    CHECK_EQ(oc, SPRO_MERGE_CONFLICT);
    CHECK_EQ(n, 2);
    CHECK(out[0].value == v1 && out[0].value_len == 2 && out[0].author == cur.author);
    CHECK(out[1].value == v2 && out[1].author == edit.author);
    CHECK_STR(out[1].v.origin, "dev-2");
    /* An empty value with a NULL pointer and an unknown author are fine. */
    struct spro_sibling empty = {.v = {12, "dev-3"}};
    struct spro_version base = cur.v;
    CHECK_EQ(spro_merge_apply(&cur, 1, &empty, &base, 1, out, &n, &oc), 0);
    CHECK_EQ(oc, SPRO_MERGE_FAST_FORWARD);
    CHECK(n == 1 && out[0].value == NULL && out[0].author == NULL);
    struct spro_sibling again[SPRO_MERGE_MAX_SIBLINGS];
    CHECK_EQ(spro_merge_apply(out, 1, &empty, NULL, 0, again, &n, &oc), 0);
    CHECK_EQ(oc, SPRO_MERGE_DUPLICATE);
}

/* The same version with other bytes is not a duplicate: refused, so that
 * the engine quarantines it instead of dropping a write. */
static void test_apply_version_collision(void)
{
    struct spro_sibling cur = {
        .v = {10, "d"}, .value = (const uint8_t *)"ab", .value_len = 2, .author = "ann"};
    struct spro_sibling out[SPRO_MERGE_MAX_SIBLINGS];
    size_t n = 99;
    enum spro_merge_outcome oc = 0;
    static const struct {
        const char *value, *author;
        int rc;
    } cases[] = {
        {"ab", "ann", 0},           {"ac", "ann", SPRO_EEXISTS},
        {"a", "ann", SPRO_EEXISTS}, {"ab", "bob", SPRO_EEXISTS},
        {"ab", NULL, SPRO_EEXISTS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spro_sibling e = cur;
        e.value = (const uint8_t *)cases[i].value;
        e.value_len = strlen(cases[i].value);
        e.author = cases[i].author;
        n = 99;
        oc = 0;
        int rc = spro_merge_apply(&cur, 1, &e, NULL, 0, out, &n, &oc);
        if (rc != cases[i].rc)
            CHECK__FAIL("collision case %zu: rc %d, expected %d", i, rc, cases[i].rc);
        CHECK_EQ(n, rc == 0 ? 1 : 99);
        CHECK_EQ(oc, rc == 0 ? SPRO_MERGE_DUPLICATE : 0);
    }
}

/* Up to SPRO_MERGE_MAX_SIBLINGS siblings; one more is refused and nothing
 * is written. */
static void test_apply_limits(void)
{
    struct spro_sibling cur[SPRO_MERGE_MAX_SIBLINGS + 1], out[SPRO_MERGE_MAX_SIBLINGS];
    struct spro_version base[SPRO_MERGE_MAX_SIBLINGS + 1];
    for (size_t i = 0; i <= SPRO_MERGE_MAX_SIBLINGS; i++) {
        cur[i] = (struct spro_sibling){.v = {100 + i, ""}, .value_len = 0};
        snprintf(cur[i].v.origin, sizeof cur[i].v.origin, "dev-%02zu", i);
        base[i] = cur[i].v;
    }
    struct spro_sibling edit = {.v = {500, "dev-new"}};
    const size_t max = SPRO_MERGE_MAX_SIBLINGS;
    size_t n;
    enum spro_merge_outcome oc;

    /* 31 siblings plus a concurrent edit: 32, accepted. */
    CHECK_EQ(spro_merge_apply(cur, max - 1, &edit, NULL, 0, out, &n, &oc), 0);
    CHECK(oc == SPRO_MERGE_CONFLICT && n == max);
    CHECK_STR(out[max - 1].v.origin, "dev-new");

    /* 32 siblings plus a concurrent edit: refused, out untouched. */
    memset(out, 0x5a, sizeof out);
    n = 99;
    oc = 0;
    CHECK_EQ(spro_merge_apply(cur, max, &edit, NULL, 0, out, &n, &oc), SPRO_ETOOLONG);
    CHECK(n == 99 && oc == 0);
    for (size_t i = 0; i < sizeof out; i++)
        CHECK_EQ(((const uint8_t *)out)[i], 0x5a);

    /* ... but an edit that saw one of them replaces it: 32. */
    CHECK_EQ(spro_merge_apply(cur, max, &edit, &base[7], 1, out, &n, &oc), 0);
    CHECK(oc == SPRO_MERGE_CONFLICT && n == max);
    /* ... and one that saw them all resolves the lot. */
    CHECK_EQ(spro_merge_apply(cur, max, &edit, base, max, out, &n, &oc), 0);
    CHECK(oc == SPRO_MERGE_RESOLVED && n == 1);
    /* ... and a duplicate among 32 is still a duplicate. */
    CHECK_EQ(spro_merge_apply(cur, max, &cur[3], NULL, 0, out, &n, &oc), 0);
    CHECK(oc == SPRO_MERGE_DUPLICATE && n == max);

    /* Arrays over the cap. */
    n = 99;
    CHECK_EQ(spro_merge_apply(cur, max, &edit, base, max + 1, out, &n, &oc), SPRO_ETOOLONG);
    CHECK_EQ(spro_merge_apply(cur, max + 1, &edit, base, max, out, &n, &oc), SPRO_ETOOLONG);
    CHECK_EQ(spro_merge_apply(cur, max + 1, &cur[0], NULL, 0, out, &n, &oc), SPRO_ETOOLONG);
    CHECK_EQ(n, 99);
}

/* What the merge alone cannot see (merge.h, "Idempotency"): an edit
 * applied, superseded, then applied again comes back as a sibling.  The
 * engine drops such retries by op id before calling the merge; this test
 * pins the behaviour so that a change to it is a decision. */
static void test_apply_retry_after_supersede(void)
{
    struct vset c, b1, b2, e1, e2;
    struct spro_sibling cur[2], edit1, edit2, s1[SPRO_MERGE_MAX_SIBLINGS],
        s2[SPRO_MERGE_MAX_SIBLINGS], s3[SPRO_MERGE_MAX_SIBLINGS];
    parse_versions("1a", &c);
    parse_versions("1a", &b1);
    parse_versions("2b", &e1);
    parse_versions("2b", &b2);
    parse_versions("3c", &e2);
    siblings_of(&c, cur);
    siblings_of(&e1, &edit1);
    siblings_of(&e2, &edit2);
    size_t n1, n2, n3;
    enum spro_merge_outcome oc;
    CHECK_EQ(spro_merge_apply(cur, 1, &edit1, b1.v, b1.n, s1, &n1, &oc), 0);
    CHECK_EQ(oc, SPRO_MERGE_FAST_FORWARD);
    CHECK_EQ(spro_merge_apply(s1, n1, &edit1, b1.v, b1.n, s2, &n2, &oc), 0);
    CHECK_EQ(oc, SPRO_MERGE_DUPLICATE); /* retried at once: recognised */
    CHECK_EQ(spro_merge_apply(s1, n1, &edit2, b2.v, b2.n, s2, &n2, &oc), 0);
    CHECK_EQ(oc, SPRO_MERGE_FAST_FORWARD); /* 3c supersedes 2b */
    CHECK_EQ(spro_merge_apply(s2, n2, &edit1, b1.v, b1.n, s3, &n3, &oc), 0);
    char got[64];
    spell(s3, n3, got, sizeof got);
    CHECK_EQ(oc, SPRO_MERGE_CONFLICT); /* retried late: not recognised */
    CHECK_STR(got, "2b 3c");
}

/* ---- Randomized simulation against a reference model ---- */

#define SIM_MAX_DEVICES 40
#define SIM_MAX_FIELDS 9
#define SIM_START_MS UINT64_C(1700000000000)

struct sim_config {
    const char *name;
    uint64_t seed;
    size_t devices, fields, rounds;
    unsigned edit_pct;    /* a round is an edit, else a sync (or a pull alone) */
    unsigned resolve_pct; /* an edit resolves a local conflict when there is one */
    unsigned blind_pct;   /* an edit has an empty base (a field never seen) */
    unsigned partial_pct; /* an edit's base is the provisional version alone */
};

struct field_state {
    struct spro_sibling s[SPRO_MERGE_MAX_SIBLINGS];
    size_t n;
};

enum edit_state { EDIT_PENDING, EDIT_APPLIED, EDIT_REFUSED };

struct sim_edit {
    size_t device, field;
    uint64_t seq; /* op id: (device, seq), from 1 */
    struct spro_sibling s;
    struct spro_version base[SPRO_MERGE_MAX_SIBLINGS];
    size_t nbase;
    uint8_t value[8]; /* edit index (4 bytes, little-endian), then random bytes */
    enum edit_state state;
    bool superseded; /* an applied edit listed s.v in its base */
};

struct sim_device {
    char id[40];
    char author[8];
    struct spro_hlc clock;
    uint64_t skew_ms; /* added to the simulated time (so never negative) */
    struct field_state local[SIM_MAX_FIELDS];
    size_t *outbox; /* edit indexes, FIFO: [head, tail) */
    size_t head, tail;
    uint64_t next_seq;
    size_t *written; /* this device's edits, oldest first (hlc ascending) */
    size_t nwritten;
};

struct sim_counts {
    size_t rounds, edits, fast_forwards, conflicts, resolutions, refused;
    size_t dup_opid;       /* retried ops dropped by op id */
    size_t dup_merge;      /* ... of which still a sibling: merge said DUPLICATE */
    size_t dup_superseded; /* ... of which superseded: the merge alone would revive them */
    size_t cuts, lost, clamped, local_refused;
};

struct sim {
    const struct sim_config *cfg;
    uint64_t rng;
    uint64_t now_ms;
    struct field_state server[SIM_MAX_FIELDS];
    uint64_t answered[SIM_MAX_DEVICES]; /* server: last op seq answered per device */
    struct sim_edit *edits;
    size_t nedits, cap;
    struct sim_device dev[SIM_MAX_DEVICES];
    struct sim_counts c;
};

static uint64_t rnd(struct sim *S) /* splitmix64 */
{
    uint64_t z = (S->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t below(struct sim *S, size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd(S) % n);
}

static bool chance(struct sim *S, unsigned pct)
{
    return rnd(S) % 100 < pct;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return p;
}

static struct sim *sim_create(const struct sim_config *cfg)
{
    struct sim *S = xcalloc(1, sizeof *S);
    S->cfg = cfg;
    S->rng = cfg->seed;
    S->now_ms = SIM_START_MS;
    S->cap = cfg->rounds + 1;
    S->edits = xcalloc(S->cap, sizeof *S->edits);
    for (size_t d = 0; d < cfg->devices; d++) {
        struct sim_device *D = &S->dev[d];
        /* UUID-shaped ids, made to sort in a random order against each other. */
        snprintf(D->id, sizeof D->id, "%08" PRIx32 "-58cc-4372-a567-0e02b2c3d4%02x",
                 (uint32_t)rnd(S), (unsigned)d & 0xffu);
        snprintf(D->author, sizeof D->author, "u%zu", d % 7);
        /* Device 0 runs 10 minutes ahead (beyond the drift), device 1 two
         * minutes behind, the others within 3 s. */
        D->skew_ms = d == 0 ? 600000 + 120000 : d == 1 ? 0 : 120000 + below(S, 6000) - 3000;
        D->outbox = xcalloc(S->cap, sizeof *D->outbox);
        D->written = xcalloc(S->cap, sizeof *D->written);
        D->next_seq = 1;
    }
    return S;
}

static void sim_destroy(struct sim *S)
{
    if (S == NULL)
        return;
    for (size_t d = 0; d < S->cfg->devices; d++) {
        free(S->dev[d].outbox);
        free(S->dev[d].written);
    }
    free(S->edits);
    free(S);
}

static uint64_t wall_of(const struct sim *S, size_t d)
{
    return S->now_ms + S->dev[d].skew_ms - 120000;
}

/* The edit that wrote sibling s (by the index in its value), or SIZE_MAX. */
static size_t edit_of(const struct sim *S, const struct spro_sibling *s)
{
    uint32_t id;
    if (s->value_len < sizeof id)
        return SIZE_MAX;
    memcpy(&id, s->value, sizeof id);
    if (id >= S->nedits || S->edits[id].s.value != s->value ||
        S->edits[id].s.value_len != s->value_len ||
        spro_merge_version_cmp(&S->edits[id].s.v, &s->v) != 0)
        return SIZE_MAX;
    return id;
}

/* The edit that wrote version v, or SIZE_MAX. */
static size_t edit_by_version(const struct sim *S, const struct spro_version *v)
{
    for (size_t d = 0; d < S->cfg->devices; d++) {
        const struct sim_device *D = &S->dev[d];
        if (strcmp(D->id, v->origin) != 0)
            continue;
        size_t lo = 0, hi = D->nwritten;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            uint64_t h = S->edits[D->written[mid]].s.v.hlc;
            if (h == v->hlc)
                return D->written[mid];
            if (h < v->hlc)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    return SIZE_MAX;
}

static bool holds(const struct field_state *f, const struct spro_version *v)
{
    for (size_t i = 0; i < f->n; i++)
        if (spro_merge_version_cmp(&f->s[i].v, v) == 0)
            return true;
    return false;
}

/* A sibling set as the merge must leave it: sorted strictly ascending, each
 * sibling the unchanged write of a known edit of this field, and no sibling
 * listed in the base of the edit that wrote another. */
static void check_set(const struct sim *S, const struct field_state *f, size_t field)
{
    CHECK_INT(f->n, <=, SPRO_MERGE_MAX_SIBLINGS);
    for (size_t i = 0; i < f->n; i++) {
        if (i > 0)
            CHECK_INT(spro_merge_version_cmp(&f->s[i - 1].v, &f->s[i].v), <, 0);
        size_t id = edit_of(S, &f->s[i]);
        CHECK(id != SIZE_MAX);
        CHECK_EQ(S->edits[id].field, field);
        CHECK(f->s[i].author == S->edits[id].s.author);
        for (size_t j = 0; j < f->n; j++)
            for (size_t k = 0; k < S->edits[id].nbase; k++)
                if (spro_merge_version_cmp(&S->edits[id].base[k], &f->s[j].v) == 0)
                    CHECK__FAIL("%s: field %zu holds %" PRIu64 "/%s beside %" PRIu64
                                "/%s, whose base lists it",
                                S->cfg->name, field, f->s[j].v.hlc, f->s[j].v.origin, f->s[i].v.hlc,
                                f->s[i].v.origin);
    }
}

/* The server receives one op. */
static void server_receive(struct sim *S, size_t id)
{
    struct sim_edit *e = &S->edits[id];
    struct field_state *f = &S->server[e->field];
    struct spro_sibling out[SPRO_MERGE_MAX_SIBLINGS];
    size_t n = 0;
    enum spro_merge_outcome oc = 0;

    if (e->seq <= S->answered[e->device]) {
        /* Answered before (its answer was lost): the engine drops it by op
         * id.  Ask the merge too: while the write is a sibling it must say
         * DUPLICATE and change nothing. */
        S->c.dup_opid++;
        CHECK(e->state != EDIT_PENDING);
        int rc = spro_merge_apply(f->s, f->n, &e->s, e->base, e->nbase, out, &n, &oc);
        if (holds(f, &e->s.v)) {
            CHECK_EQ(rc, 0);
            CHECK_EQ(oc, SPRO_MERGE_DUPLICATE);
            CHECK_EQ(n, f->n);
            CHECK(memcmp(out, f->s, n * sizeof *out) == 0);
            S->c.dup_merge++;
        } else if (e->state == EDIT_APPLIED) {
            CHECK(e->superseded);
            S->c.dup_superseded++;
        }
        return;
    }
    CHECK_EQ(e->seq, S->answered[e->device] + 1); /* ops arrive in outbox order */
    CHECK(e->state == EDIT_PENDING);
    S->answered[e->device] = e->seq;

    struct field_state before = *f;
    int rc = spro_merge_apply(f->s, f->n, &e->s, e->base, e->nbase, out, &n, &oc);
    if (rc == SPRO_ETOOLONG) {
        e->state = EDIT_REFUSED; /* the engine quarantines it */
        S->c.refused++;
        CHECK(memcmp(&before, f, sizeof before) == 0);
        return;
    }
    CHECK_EQ(rc, 0);
    switch (oc) {
    case SPRO_MERGE_FAST_FORWARD:
        S->c.fast_forwards++;
        CHECK(f->n <= 1 && n == 1);
        break;
    case SPRO_MERGE_RESOLVED:
        S->c.resolutions++;
        CHECK(f->n >= 2 && n == 1);
        break;
    case SPRO_MERGE_CONFLICT:
        S->c.conflicts++;
        CHECK(n >= 2);
        break;
    default:
        CHECK__FAIL("%s: a new op came out %s", S->cfg->name, spro_merge_outcome_name(oc));
    }
    memcpy(f->s, out, n * sizeof *out);
    f->n = n;
    e->state = EDIT_APPLIED;
    for (size_t k = 0; k < e->nbase; k++) {
        size_t b = edit_by_version(S, &e->base[k]);
        CHECK(b != SIZE_MAX);
        CHECK_EQ(S->edits[b].field, e->field);
        S->edits[b].superseded = true;
    }
    check_set(S, f, e->field);
}

/* Applies edit id to a device's local replica; a local refusal leaves the
 * replica as it is (the edit stays in the outbox for the server). */
static void local_apply(struct sim *S, size_t d, size_t id)
{
    struct sim_edit *e = &S->edits[id];
    struct field_state *f = &S->dev[d].local[e->field];
    struct spro_sibling out[SPRO_MERGE_MAX_SIBLINGS];
    size_t n;
    enum spro_merge_outcome oc;
    int rc = spro_merge_apply(f->s, f->n, &e->s, e->base, e->nbase, out, &n, &oc);
    if (rc == SPRO_ETOOLONG) {
        S->c.local_refused++;
        return;
    }
    CHECK_EQ(rc, 0);
    memcpy(f->s, out, n * sizeof *out);
    f->n = n;
}

/* Device d edits a field offline. */
static void sim_edit(struct sim *S, size_t d)
{
    struct sim_device *D = &S->dev[d];
    const struct sim_config *cfg = S->cfg;
    size_t field = below(S, cfg->fields);
    bool resolve = false;
    if (chance(S, cfg->resolve_pct)) {
        size_t start = below(S, cfg->fields);
        for (size_t k = 0; k < cfg->fields && !resolve; k++)
            if (D->local[(start + k) % cfg->fields].n >= 2) {
                field = (start + k) % cfg->fields;
                resolve = true;
            }
    }
    const struct field_state *f = &D->local[field];

    size_t id = S->nedits++;
    CHECK(id < S->cap);
    struct sim_edit *e = &S->edits[id];
    e->device = d;
    e->field = field;
    e->seq = D->next_seq++;
    e->state = EDIT_PENDING;
    e->s.v.hlc = spro_hlc_tick(&D->clock, wall_of(S, d));
    memcpy(e->s.v.origin, D->id, sizeof D->id);
    e->s.author = D->author;
    uint32_t id32 = (uint32_t)id;
    memcpy(e->value, &id32, sizeof id32);
    e->s.value_len = sizeof id32 + below(S, 5);
    for (size_t i = sizeof id32; i < e->s.value_len; i++)
        e->value[i] = (uint8_t)rnd(S);
    e->s.value = e->value;

    unsigned r = (unsigned)below(S, 100);
    if (!resolve && r < cfg->blind_pct) {
        e->nbase = 0;
    } else if (!resolve && r < cfg->blind_pct + cfg->partial_pct && f->n > 0) {
        e->base[0] = f->s[spro_merge_provisional(f->s, f->n)].v;
        e->nbase = 1;
    } else {
        for (size_t i = 0; i < f->n; i++)
            e->base[i] = f->s[i].v;
        e->nbase = f->n;
    }
    if (D->nwritten > 0)
        CHECK_INT(S->edits[D->written[D->nwritten - 1]].s.v.hlc, <, e->s.v.hlc);
    D->written[D->nwritten++] = id;
    D->outbox[D->tail++] = id;
    S->c.edits++;
    local_apply(S, d, id);
}

/* Device d pushes its outbox.  With faults, the connection may drop after
 * a random number of ops, and the answer to what was sent may be lost. */
static void sim_push(struct sim *S, size_t d, bool faults)
{
    struct sim_device *D = &S->dev[d];
    size_t pending = D->tail - D->head, send = pending;
    if (faults && pending > 0 && chance(S, 20)) {
        send = below(S, pending + 1);
        S->c.cuts++;
    }
    for (size_t i = 0; i < send; i++) {
        server_receive(S, D->outbox[D->head + i]);
        if (check__failed)
            return;
    }
    if (faults && send > 0 && chance(S, 15)) {
        S->c.lost++; /* the server applied them; the device will send them again */
        return;
    }
    D->head += send;
}

/* Device d pulls: its replica becomes the server's state, its clock
 * receives the newest version of each field, and its unsent edits are
 * applied again on top. */
static void sim_pull(struct sim *S, size_t d)
{
    struct sim_device *D = &S->dev[d];
    for (size_t k = 0; k < S->cfg->fields; k++) {
        const struct field_state *f = &S->server[k];
        D->local[k] = *f;
        if (f->n == 0)
            continue;
        bool clamped;
        spro_hlc_receive(&D->clock, f->s[f->n - 1].v.hlc, wall_of(S, d), DRIFT_MS, &clamped);
        S->c.clamped += clamped;
    }
    for (size_t i = D->head; i < D->tail; i++) {
        local_apply(S, d, D->outbox[i]);
        if (check__failed)
            return;
    }
}

/* The reference model: no edit vanished, and each field's siblings are
 * exactly its applied edits that no applied edit superseded.  At the end,
 * no edit is pending any more. */
static void check_model(const struct sim *S, bool final)
{
    size_t on_server = 0, superseded = 0, refused = 0;
    size_t expect[SIM_MAX_FIELDS] = {0};
    for (size_t id = 0; id < S->nedits; id++) {
        const struct sim_edit *e = &S->edits[id];
        bool here = holds(&S->server[e->field], &e->s.v);
        switch (e->state) {
        case EDIT_PENDING:
            CHECK(!final);
            CHECK(!here);
            break;
        case EDIT_APPLIED:
            if (here == e->superseded)
                CHECK__FAIL("%s: edit %zu (%" PRIu64 "/%s, field %zu) is %s the server and %s",
                            S->cfg->name, id, e->s.v.hlc, e->s.v.origin, e->field,
                            here ? "on" : "not on",
                            e->superseded ? "superseded" : "not superseded");
            expect[e->field] += here;
            on_server += here;
            superseded += e->superseded;
            break;
        case EDIT_REFUSED:
            CHECK(!here);
            refused++;
            break;
        }
    }
    for (size_t k = 0; k < S->cfg->fields; k++) {
        CHECK_EQ(S->server[k].n, expect[k]);
        check_set(S, &S->server[k], k);
    }
    if (final) {
        CHECK_EQ(on_server + superseded + refused, S->nedits);
        CHECK_EQ(refused, S->c.refused);
    }
}

static void sim_run(struct sim *S)
{
    const struct sim_config *cfg = S->cfg;
    for (size_t r = 0; r < cfg->rounds; r++) {
        S->c.rounds++;
        S->now_ms += below(S, 40);
        size_t d = below(S, cfg->devices);
        if (chance(S, cfg->edit_pct)) {
            sim_edit(S, d);
        } else if (chance(S, 10)) {
            sim_pull(S, d);
        } else {
            size_t cuts = S->c.cuts;
            sim_push(S, d, true);
            if (cuts == S->c.cuts && !check__failed)
                sim_pull(S, d);
        }
        if (check__failed)
            return;
        if (r % 64 == 63) {
            check_model(S, false);
            if (check__failed)
                return;
        }
    }

    /* Everyone syncs until quiet: pushes without faults in a random order,
     * then everyone pulls. */
    size_t order[SIM_MAX_DEVICES];
    for (size_t d = 0; d < cfg->devices; d++)
        order[d] = d;
    for (size_t d = cfg->devices; d > 1; d--) {
        size_t j = below(S, d), t = order[d - 1];
        order[d - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < cfg->devices; i++) {
        sim_push(S, order[i], false);
        if (check__failed)
            return;
        CHECK_EQ(S->dev[order[i]].head, S->dev[order[i]].tail);
    }
    for (size_t d = 0; d < cfg->devices; d++) {
        sim_pull(S, d);
        if (check__failed)
            return;
    }
    check_model(S, true);
    for (size_t d = 0; d < cfg->devices; d++)
        for (size_t k = 0; k < cfg->fields; k++) {
            const struct field_state *a = &S->dev[d].local[k], *b = &S->server[k];
            CHECK_EQ(a->n, b->n);
            for (size_t i = 0; i < a->n; i++) {
                CHECK_EQ(spro_merge_version_cmp(&a->s[i].v, &b->s[i].v), 0);
                CHECK(a->s[i].value == b->s[i].value && a->s[i].value_len == b->s[i].value_len);
            }
        }
}

static void add_counts(struct sim_counts *to, const struct sim_counts *c)
{
    to->rounds += c->rounds;
    to->edits += c->edits;
    to->fast_forwards += c->fast_forwards;
    to->conflicts += c->conflicts;
    to->resolutions += c->resolutions;
    to->refused += c->refused;
    to->dup_opid += c->dup_opid;
    to->dup_merge += c->dup_merge;
    to->dup_superseded += c->dup_superseded;
    to->cuts += c->cuts;
    to->lost += c->lost;
    to->clamped += c->clamped;
    to->local_refused += c->local_refused;
}

static void print_counts(const char *name, size_t runs, const struct sim_counts *c)
{
    printf("  %s: %zu runs, %zu rounds, %zu edits: %zu fast-forwards, %zu conflicts, "
           "%zu resolutions, %zu refused (too many siblings); %zu duplicates by op id "
           "(%zu still siblings: merge said duplicate; %zu already superseded); "
           "%zu cut pushes, %zu lost answers, %zu clamped clocks\n",
           name, runs, c->rounds, c->edits, c->fast_forwards, c->conflicts, c->resolutions,
           c->refused, c->dup_opid, c->dup_merge, c->dup_superseded, c->cuts, c->lost, c->clamped);
}

/* Runs every configuration; fills *total. */
static void run_configs(const struct sim_config *cfgs, size_t n, struct sim_counts *total)
{
    memset(total, 0, sizeof *total);
    for (size_t i = 0; i < n; i++) {
        struct sim *S = sim_create(&cfgs[i]);
        sim_run(S);
        add_counts(total, &S->c);
        if (check__failed)
            fprintf(stderr, "  in %s, seed %#" PRIx64 ", round %zu\n", cfgs[i].name, cfgs[i].seed,
                    S->c.rounds);
        sim_destroy(S);
        if (check__failed)
            return;
    }
}

static void test_random_convergence(void)
{
    /* name, seed, devices, fields, rounds, edit, resolve, blind, partial */
    static const struct sim_config cfgs[] = {
        {"3 devices", 0x5eed0001, 3, 6, 3000, 50, 40, 5, 10},
        {"4 devices, 9 fields", 0x5eed0002, 4, 9, 3000, 30, 40, 5, 10},
        {"5 devices", 0x5eed0003, 5, 6, 3000, 55, 30, 5, 10},
        {"5 devices, rare syncs", 0x5eed0004, 5, 4, 3000, 80, 20, 5, 15},
        {"3 devices, one field", 0x5eed0005, 3, 1, 2000, 50, 50, 10, 10},
        {"4 devices, no blind writes", 0x5eed0006, 4, 6, 3000, 50, 40, 0, 0},
    };
    struct sim_counts t;
    run_configs(cfgs, sizeof cfgs / sizeof cfgs[0], &t);
    if (check__failed)
        return;
    print_counts("random", sizeof cfgs / sizeof cfgs[0], &t);
    /* The simulation reaches every path. */
    CHECK_INT(t.fast_forwards, >, 0);
    CHECK_INT(t.conflicts, >, 0);
    CHECK_INT(t.resolutions, >, 0);
    CHECK_INT(t.dup_merge, >, 0);
    CHECK_INT(t.dup_superseded, >, 0);
    CHECK_INT(t.cuts, >, 0);
    CHECK_INT(t.clamped, >, 0);
}

/* Many writers on few fields, mostly blind: sibling sets fill up and the
 * server refuses edits beyond SPRO_MERGE_MAX_SIBLINGS. */
static void test_random_crowd(void)
{
    static const struct sim_config cfgs[] = {
        {"40 devices", 0xc20d0001, 40, 1, 1000, 60, 10, 60, 10},
        {"36 devices", 0xc20d0002, 36, 2, 1000, 70, 10, 50, 10},
    };
    struct sim_counts t;
    run_configs(cfgs, sizeof cfgs / sizeof cfgs[0], &t);
    if (check__failed)
        return;
    print_counts("crowd", sizeof cfgs / sizeof cfgs[0], &t);
    CHECK_INT(t.refused, >, 0);
    CHECK_INT(t.resolutions, >, 0);
}

static const struct check_test tests[] = {
    {"hlc_tick", test_hlc_tick},
    {"hlc_receive", test_hlc_receive},
    {"hlc_monotonic", test_hlc_monotonic},
    {"version_cmp", test_version_cmp},
    {"covers", test_covers},
    {"provisional", test_provisional},
    {"outcome_names", test_outcome_names},
    {"apply_outcomes", test_apply_outcomes},
    {"apply_borrows", test_apply_borrows},
    {"apply_version_collision", test_apply_version_collision},
    {"apply_limits", test_apply_limits},
    {"apply_retry_after_supersede", test_apply_retry_after_supersede},
    {"random_convergence", test_random_convergence},
    {"random_crowd", test_random_crowd},
};

CHECK_MAIN(tests)
