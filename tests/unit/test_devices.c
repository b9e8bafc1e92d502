/*
 * test_devices.c: organisations, counsellors, enrolment tickets and
 * devices (the API at the end of sync/sync.h) against a real data
 * directory.
 *
 * Covers argument checks, ticket redemption and every way it is refused
 * (wrong secret counted until the ticket dies, expiry, reuse, a key already
 * enrolled, two redemptions racing from two connections), the replay check
 * of handshake timestamps, the state transitions of a device, the listing
 * order, and that a ticket's secret never reaches the disk.
 */
#include "check.h"
#include "sync/store.h"
#include "sync/sync.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1700000000

static char tmp[256];
static char dir[300];
static struct spro_datadir *dd; /* opened on dir for every test */

/* An organisation "org1" with the counsellor "alice" and the supervisor
 * "bob", added once. */
static void fixtures(void)
{
    static int done;
    if (done++)
        return;
    if (spro_org_add(dd, "org1", "CIO de Rennes", "cio", NULL, 0) != 0 ||
        spro_user_add(dd, "alice", "org1", "counsellor", NULL, 0) != 0 ||
        spro_user_add(dd, "bob", "org1", "supervisor", NULL, 0) != 0)
        abort();
}

static void new_key(uint8_t pk[SPRO_KEY_BYTES])
{
    uint8_t sk[SPRO_KEY_BYTES];
    spro_crypto_dh_keypair(pk, sk);
}

/* failures and consumed_at of a ticket, read with SQLite directly. */
static int ticket_row(const char *id, int64_t *failures, int *consumed)
{
    char path[400];
    snprintf(path, sizeof path, "%s/data.db", dir);
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db,
                           "SELECT failures, consumed_at IS NOT NULL FROM tickets WHERE id = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *failures = sqlite3_column_int64(st, 0);
            *consumed = sqlite3_column_int(st, 1);
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static void test_org_add(void)
{
    char why[256] = "";
    static const char *const kinds[] = {"cio",  "mission-locale", "france-travail", "cap-emploi",
                                        "psad", "region",         "other"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char id[32];
        snprintf(id, sizeof id, "kind-%zu", i);
        CHECK_EQ(spro_org_add(dd, id, "Somewhere", kinds[i], why, sizeof why), 0);
    }
    CHECK_EQ(spro_org_add(dd, "ML_Brest.2", "Mission locale de Brest", "mission-locale", why,
                          sizeof why),
             0);
    CHECK_EQ(spro_org_add(dd, "ML_Brest.2", "Again", "other", why, sizeof why), SPRO_EEXISTS);
    CHECK(strstr(why, "'ML_Brest.2' already exists") != NULL);

    char long_id[SPRO_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[SPRO_ID_MAX + 1] = '\0';
    static const char *const bad_ids[] = {"", "a b", "a/b", "caf\xc3\xa9", "x;DROP", "\n"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        CHECK_EQ(spro_org_add(dd, bad_ids[i], "N", "cio", why, sizeof why), SPRO_ECONFIG);
        CHECK(strstr(why, "invalid organisation id") != NULL);
    }
    CHECK_EQ(spro_org_add(dd, long_id, "N", "cio", why, sizeof why), SPRO_ECONFIG);
    long_id[SPRO_ID_MAX] = '\0'; /* exactly 64 is fine */
    CHECK_EQ(spro_org_add(dd, long_id, "N", "cio", why, sizeof why), 0);

    CHECK_EQ(spro_org_add(dd, "o2", "N", "school", why, sizeof why), SPRO_ECONFIG);
    CHECK(strstr(why, "invalid organisation kind 'school'") != NULL);
    CHECK(strstr(why, "mission-locale") != NULL);
    CHECK_EQ(spro_org_add(dd, "o2", "N", "CIO", why, sizeof why), SPRO_ECONFIG);
    CHECK_EQ(spro_org_add(dd, "o2", "N", NULL, why, sizeof why), SPRO_ECONFIG);
    CHECK_EQ(spro_org_add(dd, "o2", "", "cio", why, sizeof why), SPRO_ECONFIG);
    CHECK(strstr(why, "invalid organisation name") != NULL);
    CHECK_EQ(spro_org_add(dd, "o2", "tab\there", "cio", why, sizeof why), SPRO_ECONFIG);
    CHECK_EQ(spro_org_add(dd, "o2", NULL, "cio", why, sizeof why), SPRO_ECONFIG);
}

static void test_user_add(void)
{
    char why[256] = "";
    fixtures();
    CHECK_EQ(spro_user_add(dd, "carol", "org1", "admin", why, sizeof why), 0);
    CHECK_EQ(spro_user_add(dd, "carol", "org1", "counsellor", why, sizeof why), SPRO_EEXISTS);
    CHECK(strstr(why, "'carol' already exists") != NULL);
    CHECK_EQ(spro_user_add(dd, "dave", "no-such-org", "counsellor", why, sizeof why), SPRO_ENOENT);
    CHECK(strstr(why, "no organisation 'no-such-org'") != NULL);
    CHECK_EQ(spro_user_add(dd, "dave", "org1", "boss", why, sizeof why), SPRO_ECONFIG);
    CHECK(strstr(why, "invalid role 'boss'") != NULL);
    CHECK_EQ(spro_user_add(dd, "da ve", "org1", "counsellor", why, sizeof why), SPRO_ECONFIG);
    CHECK(strstr(why, "invalid user id") != NULL);
    CHECK_EQ(spro_user_add(dd, "dave", "org 1", "counsellor", why, sizeof why), SPRO_ECONFIG);
    CHECK(strstr(why, "invalid organisation id") != NULL);
    CHECK_EQ(spro_user_add(dd, "dave", "org1", "supervisor", why, sizeof why), 0);
}

static void test_issue_and_redeem(void)
{
    char why[256] = "";
    struct spro_ticket t;
    fixtures();
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, SPRO_TICKET_DEFAULT_TTL, &t, why, sizeof why), 0);
    CHECK_EQ(strlen(t.id), SPRO_TICKET_ID_CHARS);
    for (int i = 0; i < SPRO_TICKET_ID_CHARS; i++)
        CHECK(check_hexval(t.id[i]) >= 0 && !(t.id[i] >= 'A' && t.id[i] <= 'F'));
    CHECK_EQ(t.expires_at, NOW + SPRO_TICKET_DEFAULT_TTL);

    uint8_t pk[SPRO_KEY_BYTES];
    new_key(pk);
    struct spro_device d, again;
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk, 123456789, NOW + 5, &d), 0);
    CHECK_EQ(strlen(d.id), 36);
    CHECK(d.id[8] == '-' && d.id[13] == '-' && d.id[14] == '4' && d.id[18] == '-' &&
          d.id[23] == '-');
    CHECK_STR(d.user, "alice");
    CHECK_STR(d.org, "org1");
    CHECK_STR(d.role, "counsellor");
    CHECK_EQ(d.state, SPRO_DEVICE_ACTIVE);
    CHECK_EQ(d.enrolled_at, NOW + 5);
    CHECK_EQ(d.last_seen, NOW + 5);
    CHECK_EQ(d.last_ts_ms, 123456789);
    CHECK(d.rowid > 0);

    CHECK_EQ(spro_device_by_key(dd, pk, &again), 0);
    CHECK_STR(again.id, d.id);
    CHECK_EQ(again.rowid, d.rowid);
    CHECK_EQ(spro_device_by_rowid(dd, d.rowid, &again), 0);
    CHECK_STR(again.id, d.id);
    CHECK_STR(again.role, "counsellor");
    uint8_t other[SPRO_KEY_BYTES];
    new_key(other);
    CHECK_EQ(spro_device_by_key(dd, other, &again), SPRO_ENOENT);
    CHECK_EQ(spro_device_by_rowid(dd, 999999, &again), SPRO_ENOENT);

    int64_t failures;
    int consumed;
    CHECK_EQ(ticket_row(t.id, &failures, &consumed), 0);
    CHECK_EQ(consumed, 1);
    CHECK_EQ(failures, 0);
}

static void test_issue_refusals(void)
{
    char why[256] = "";
    struct spro_ticket t;
    fixtures();
    CHECK_EQ(spro_ticket_issue(dd, "nobody", NOW, 900, &t, why, sizeof why), SPRO_ENOENT);
    CHECK(strstr(why, "no user 'nobody'") != NULL);
    CHECK_EQ(spro_ticket_issue(dd, "no body", NOW, 900, &t, why, sizeof why), SPRO_ECONFIG);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, SPRO_TICKET_MIN_TTL - 1, &t, why, sizeof why),
             SPRO_ECONFIG);
    CHECK(strstr(why, "lifetime") != NULL);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, SPRO_TICKET_MAX_TTL + 1, &t, why, sizeof why),
             SPRO_ECONFIG);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, SPRO_TICKET_MIN_TTL, &t, why, sizeof why), 0);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, SPRO_TICKET_MAX_TTL, &t, why, sizeof why), 0);
}

static void test_wrong_secret_kills_ticket(void)
{
    struct spro_ticket t;
    struct spro_device d;
    uint8_t pk[SPRO_KEY_BYTES], wrong[SPRO_TICKET_SECRET_BYTES];
    fixtures();
    new_key(pk);

    /* Four wrong secrets are counted; the right one still works. */
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 900, &t, NULL, 0), 0);
    for (int i = 0; i < SPRO_TICKET_MAX_FAILURES - 1; i++) {
        memcpy(wrong, t.secret, sizeof wrong);
        wrong[i] ^= 1;
        CHECK_EQ(spro_ticket_redeem(dd, t.id, wrong, pk, 1, NOW, &d), SPRO_ETICKET);
        CHECK_EQ(d.rowid, 0); /* *out is zeroed on failure */
    }
    int64_t failures;
    int consumed;
    CHECK_EQ(ticket_row(t.id, &failures, &consumed), 0);
    CHECK_EQ(failures, SPRO_TICKET_MAX_FAILURES - 1);
    CHECK_EQ(consumed, 0);
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk, 1, NOW, &d), 0);

    /* The fifth wrong secret kills it: the right one fails from then on,
     * and further attempts are not counted any more. */
    new_key(pk);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 900, &t, NULL, 0), 0);
    memset(wrong, 0x5a, sizeof wrong);
    for (int i = 0; i < SPRO_TICKET_MAX_FAILURES; i++)
        CHECK_EQ(spro_ticket_redeem(dd, t.id, wrong, pk, 1, NOW, &d), SPRO_ETICKET);
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk, 1, NOW, &d), SPRO_ETICKET);
    CHECK_EQ(spro_ticket_redeem(dd, t.id, wrong, pk, 1, NOW, &d), SPRO_ETICKET);
    CHECK_EQ(ticket_row(t.id, &failures, &consumed), 0);
    CHECK_EQ(failures, SPRO_TICKET_MAX_FAILURES);
    CHECK_EQ(consumed, 0);
    CHECK_EQ(spro_device_by_key(dd, pk, &d), SPRO_ENOENT);
}

static void test_expired_unknown_and_reused(void)
{
    struct spro_ticket t;
    struct spro_device d;
    uint8_t pk[SPRO_KEY_BYTES];
    fixtures();
    new_key(pk);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 60, &t, NULL, 0), 0);
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk, 1, NOW + 60, &d), SPRO_ETICKET);
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk, 1, NOW + 86400, &d), SPRO_ETICKET);
    int64_t failures;
    int consumed;
    CHECK_EQ(ticket_row(t.id, &failures, &consumed), 0);
    CHECK_EQ(failures, 0); /* an expired ticket counts nothing */
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk, 1, NOW + 59, &d), 0);

    /* Used once: refused for any key, even the same secret. */
    uint8_t pk2[SPRO_KEY_BYTES];
    new_key(pk2);
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk2, 1, NOW + 1, &d), SPRO_ETICKET);

    /* Unknown and malformed ids: the same answer. */
    CHECK_EQ(spro_ticket_redeem(dd, "0123456789abcdef", t.secret, pk2, 1, NOW, &d), SPRO_ETICKET);
    CHECK_EQ(spro_ticket_redeem(dd, "0123456789ABCDEF", t.secret, pk2, 1, NOW, &d), SPRO_ETICKET);
    CHECK_EQ(spro_ticket_redeem(dd, "0123", t.secret, pk2, 1, NOW, &d), SPRO_ETICKET);
    CHECK_EQ(spro_ticket_redeem(dd, "0123456789abcdef0", t.secret, pk2, 1, NOW, &d), SPRO_ETICKET);
    CHECK_EQ(spro_ticket_redeem(dd, "' OR 1=1 --xxxxx", t.secret, pk2, 1, NOW, &d), SPRO_ETICKET);
}

static void test_key_already_enrolled(void)
{
    struct spro_ticket t1, t2;
    struct spro_device d1, d2;
    uint8_t pk[SPRO_KEY_BYTES], pk2[SPRO_KEY_BYTES];
    fixtures();
    new_key(pk);
    new_key(pk2);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 900, &t1, NULL, 0), 0);
    CHECK_EQ(spro_ticket_issue(dd, "bob", NOW, 900, &t2, NULL, 0), 0);
    CHECK_EQ(spro_ticket_redeem(dd, t1.id, t1.secret, pk, 1, NOW, &d1), 0);
    CHECK_EQ(spro_ticket_redeem(dd, t2.id, t2.secret, pk, 1, NOW, &d2), SPRO_EEXISTS);
    int64_t failures;
    int consumed;
    CHECK_EQ(ticket_row(t2.id, &failures, &consumed), 0);
    CHECK_EQ(consumed, 0); /* nothing written: the ticket is still good */
    CHECK_EQ(failures, 0);
    CHECK_EQ(spro_ticket_redeem(dd, t2.id, t2.secret, pk2, 1, NOW, &d2), 0);
    CHECK_STR(d2.user, "bob");
    CHECK_STR(d2.role, "supervisor");
}

struct racer {
    pthread_barrier_t *start;
    const struct spro_ticket *t;
    uint8_t pk[SPRO_KEY_BYTES];
    int shared; /* use the test's handle (spro-server's case) or open one */
    int rc;
};

/* Redeems the shared ticket through its own data directory handle (its own
 * SQLite connection, as another process would), or through the handle all
 * threads share (as spro-server's workers do). */
static void *race(void *arg)
{
    struct racer *r = arg;
    struct spro_datadir *mine = dd;
    struct spro_device d;
    r->rc = -1;
    if (!r->shared && spro_datadir_open(dir, &mine, NULL, 0) != 0) {
        pthread_barrier_wait(r->start);
        return NULL;
    }
    pthread_barrier_wait(r->start);
    r->rc = spro_ticket_redeem(mine, r->t->id, r->t->secret, r->pk, 1, NOW, &d);
    if (!r->shared)
        spro_datadir_close(mine);
    return NULL;
}

static void test_concurrent_redeem_one_wins(void)
{
    fixtures();
    for (int round = 0; round < 16; round++) {
        struct spro_ticket t;
        CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 900, &t, NULL, 0), 0);
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        int shared = round % 2;
        struct racer r[2] = {{&start, &t, {0}, shared, 0}, {&start, &t, {0}, shared, 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            new_key(r[i].pk);
            CHECK_EQ(pthread_create(&th[i], NULL, race, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        int wins = (r[0].rc == 0) + (r[1].rc == 0);
        int refused = (r[0].rc == SPRO_ETICKET) + (r[1].rc == SPRO_ETICKET);
        CHECK_EQ(wins, 1);
        CHECK_EQ(refused, 1);
        struct spro_device d;
        int found =
            (spro_device_by_key(dd, r[0].pk, &d) == 0) + (spro_device_by_key(dd, r[1].pk, &d) == 0);
        CHECK_EQ(found, 1);
    }
}

static void test_accept_ts(void)
{
    struct spro_ticket t;
    struct spro_device d, now;
    uint8_t pk[SPRO_KEY_BYTES];
    fixtures();
    new_key(pk);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 900, &t, NULL, 0), 0);
    CHECK_EQ(spro_ticket_redeem(dd, t.id, t.secret, pk, 5000, NOW, &d), 0);
    CHECK_EQ(spro_device_accept_ts(dd, d.rowid, 5000, NOW + 1), SPRO_EREPLAY);
    CHECK_EQ(spro_device_accept_ts(dd, d.rowid, 4999, NOW + 1), SPRO_EREPLAY);
    CHECK_EQ(spro_device_accept_ts(dd, d.rowid, INT64_MIN, NOW + 1), SPRO_EREPLAY);
    CHECK_EQ(spro_device_by_rowid(dd, d.rowid, &now), 0);
    CHECK_EQ(now.last_ts_ms, 5000);
    CHECK_EQ(now.last_seen, NOW); /* a refusal writes nothing */
    CHECK_EQ(spro_device_accept_ts(dd, d.rowid, 5001, NOW + 2), 0);
    CHECK_EQ(spro_device_by_rowid(dd, d.rowid, &now), 0);
    CHECK_EQ(now.last_ts_ms, 5001);
    CHECK_EQ(now.last_seen, NOW + 2);
    CHECK_EQ(spro_device_accept_ts(dd, d.rowid, 5001, NOW + 3), SPRO_EREPLAY);
    CHECK_EQ(spro_device_accept_ts(dd, d.rowid, INT64_MAX, NOW + 3), 0);
    CHECK_EQ(spro_device_accept_ts(dd, d.rowid, INT64_MAX, NOW + 3), SPRO_EREPLAY);
    CHECK_EQ(spro_device_accept_ts(dd, 987654, 1, NOW), SPRO_ENOENT);
}

static int enrol(const char *user, struct spro_device *d)
{
    struct spro_ticket t;
    uint8_t pk[SPRO_KEY_BYTES];
    new_key(pk);
    int rc = spro_ticket_issue(dd, user, NOW, 900, &t, NULL, 0);
    return rc ? rc : spro_ticket_redeem(dd, t.id, t.secret, pk, 1, NOW, d);
}

static void test_state_transitions(void)
{
    char why[256] = "";
    struct spro_device a, b, c, now;
    fixtures();
    CHECK_EQ(enrol("alice", &a), 0);
    CHECK_EQ(enrol("alice", &b), 0);
    CHECK_EQ(enrol("bob", &c), 0);

    /* a: active -> revoked; revoked again is "already"; no wipe after. */
    CHECK_EQ(spro_device_set_state(dd, a.id, SPRO_DEVICE_REVOKED, why, sizeof why), 0);
    CHECK_EQ(spro_device_by_rowid(dd, a.rowid, &now), 0);
    CHECK_EQ(now.state, SPRO_DEVICE_REVOKED);
    CHECK_EQ(spro_device_set_state(dd, a.id, SPRO_DEVICE_REVOKED, why, sizeof why), SPRO_EEXISTS);
    CHECK(strstr(why, "already revoked") != NULL);
    CHECK_EQ(spro_device_set_state(dd, a.id, SPRO_DEVICE_WIPE_PENDING, why, sizeof why),
             SPRO_EREVOKED);
    CHECK(strstr(why, "cannot be ordered to wipe") != NULL);
    CHECK_EQ(spro_device_wiped(dd, a.rowid), SPRO_EREVOKED);
    CHECK_EQ(spro_device_by_rowid(dd, a.rowid, &now), 0);
    CHECK_EQ(now.state, SPRO_DEVICE_REVOKED);

    /* b: active -> wipe_pending (twice is "already") -> revoked. */
    CHECK_EQ(spro_device_set_state(dd, b.id, SPRO_DEVICE_WIPE_PENDING, why, sizeof why), 0);
    CHECK_EQ(spro_device_set_state(dd, b.id, SPRO_DEVICE_WIPE_PENDING, why, sizeof why),
             SPRO_EEXISTS);
    CHECK_EQ(spro_device_by_rowid(dd, b.rowid, &now), 0);
    CHECK_EQ(now.state, SPRO_DEVICE_WIPE_PENDING);
    CHECK_EQ(spro_device_set_state(dd, b.id, SPRO_DEVICE_REVOKED, why, sizeof why), 0);
    CHECK_EQ(spro_device_by_rowid(dd, b.rowid, &now), 0);
    CHECK_EQ(now.state, SPRO_DEVICE_REVOKED);

    /* c: active -> wipe_pending -> wiped (delivered); then it counts as
     * revoked and cannot be ordered to wipe again. */
    CHECK_EQ(spro_device_wiped(dd, c.rowid), SPRO_EREVOKED); /* active: no order */
    CHECK_EQ(spro_device_set_state(dd, c.id, SPRO_DEVICE_WIPE_PENDING, why, sizeof why), 0);
    CHECK_EQ(spro_device_wiped(dd, c.rowid), 0);
    CHECK_EQ(spro_device_wiped(dd, c.rowid), 0);
    CHECK_EQ(spro_device_by_rowid(dd, c.rowid, &now), 0);
    CHECK_EQ(now.state, SPRO_DEVICE_WIPED);
    CHECK_EQ(spro_device_set_state(dd, c.id, SPRO_DEVICE_WIPE_PENDING, why, sizeof why),
             SPRO_EREVOKED);
    CHECK_EQ(spro_device_set_state(dd, c.id, SPRO_DEVICE_REVOKED, why, sizeof why), SPRO_EEXISTS);
    CHECK(strstr(why, "already wiped") != NULL);
    CHECK_EQ(spro_device_by_rowid(dd, c.rowid, &now), 0);
    CHECK_EQ(now.state, SPRO_DEVICE_WIPED);

    /* Unknown and malformed ids. */
    CHECK_EQ(spro_device_set_state(dd, "00000000-0000-4000-8000-000000000000", SPRO_DEVICE_REVOKED,
                                   why, sizeof why),
             SPRO_ENOENT);
    CHECK(strstr(why, "no device '00000000-0000-4000-8000-000000000000'") != NULL);
    CHECK_EQ(spro_device_set_state(dd, "no such/device", SPRO_DEVICE_REVOKED, why, sizeof why),
             SPRO_ECONFIG);
    CHECK_EQ(spro_device_wiped(dd, 424242), SPRO_ENOENT);
}

struct collected {
    char ids[64][SPRO_ID_MAX + 1];
    size_t n, stop_at;
};

static int collect(const struct spro_device *d, void *arg)
{
    struct collected *c = arg;
    if (c->n == c->stop_at)
        return 77;
    if (c->n < 64)
        snprintf(c->ids[c->n], sizeof c->ids[0], "%s", d->id);
    c->n++;
    return 0;
}

static void test_list_order(void)
{
    struct spro_device d[3];
    struct collected before = {.stop_at = (size_t)-1}, after = {.stop_at = (size_t)-1};
    fixtures();
    CHECK_EQ(spro_device_list(dd, collect, &before), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(enrol(i == 1 ? "bob" : "alice", &d[i]), 0);
    CHECK_EQ(spro_device_list(dd, collect, &after), 0);
    CHECK_EQ(after.n, before.n + 3);
    CHECK(after.n <= 64);
    for (size_t i = 0; i < before.n; i++)
        CHECK_STR(after.ids[i], before.ids[i]);
    for (int i = 0; i < 3; i++)
        CHECK_STR(after.ids[before.n + (size_t)i], d[i].id);
    /* fn's non-zero return stops the walk and is returned. */
    struct collected stop = {.stop_at = 1};
    CHECK_EQ(spro_device_list(dd, collect, &stop), 77);
    CHECK_EQ(stop.n, 1);
}

/* Whole content of dir/name, or NULL if absent (malloc'd). */
static uint8_t *slurp(const char *name, size_t *len)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    *len = 0;
    if (f == NULL)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n;
    do {
        cap += 65536;
        if ((buf = realloc(buf, cap)) == NULL)
            abort();
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
    } while (*len == cap);
    fclose(f);
    return buf;
}

static void test_secret_never_stored(void)
{
    struct spro_ticket t, t2;
    fixtures();
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 900, &t, NULL, 0), 0);
    CHECK_EQ(spro_ticket_issue(dd, "alice", NOW, 900, &t2, NULL, 0), 0);
    struct spro_device d;
    uint8_t pk[SPRO_KEY_BYTES];
    new_key(pk);
    CHECK_EQ(spro_ticket_redeem(dd, t2.id, t2.secret, pk, 1, NOW, &d), 0);

    /* The stored mac is the keyed BLAKE2b of id || secret under the
     * enrolment subkey of the master key. */
    size_t mlen;
    uint8_t *master = slurp("master.key", &mlen);
    CHECK(master != NULL && mlen == SPRO_KEY_BYTES);
    uint8_t key[SPRO_KEY_BYTES], msg[SPRO_TICKET_ID_CHARS + SPRO_TICKET_SECRET_BYTES];
    uint8_t mac[SPRO_MAC_BYTES];
    spro_crypto_derive(key, master, 1, "enrolmnt");
    free(master);
    memcpy(msg, t.id, SPRO_TICKET_ID_CHARS);
    memcpy(msg + SPRO_TICKET_ID_CHARS, t.secret, SPRO_TICKET_SECRET_BYTES);
    spro_crypto_mac(mac, key, msg, sizeof msg);

    static const char *const files[] = {"data.db", "data.db-wal", "keys.db", "keys.db-wal"};
    int mac_found = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len;
        uint8_t *buf = slurp(files[i], &len);
        if (buf == NULL)
            continue;
        CHECK(memmem(buf, len, t.secret, sizeof t.secret) == NULL);
        CHECK(memmem(buf, len, t2.secret, sizeof t2.secret) == NULL);
        CHECK(memmem(buf, len, t.secret, 16) == NULL);
        mac_found |= memmem(buf, len, mac, sizeof mac) != NULL;
        free(buf);
    }
    CHECK(mac_found);
    CHECK(memcmp(mac, t.secret, sizeof mac) != 0);
}

static void test_schema_2(void)
{
    CHECK_EQ(spro_datadir_schema(dd), SPRO_DATA_SCHEMA);
    /* A data.db at version 1 migrates to 2 on open. */
    char path[400];
    snprintf(path, sizeof path, "%s/v1.db", tmp);
    struct spro_db *db;
    int v = 0;
    CHECK_EQ(spro_store__open(path, 1, spro_store__data_migrations, 1, &db, &v, NULL, 0), 0);
    spro_store__close(db);
    CHECK_EQ(v, 1);
    CHECK_EQ(spro_store__open(path, 0, spro_store__data_migrations, 2, &db, &v, NULL, 0), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(spro_store__org_insert(db, "o", "N", "psad", NOW, NULL, NULL, 0), 0);
    CHECK_EQ(spro_store__user_insert(db, "u", "o", "admin", NOW, NULL, NULL, 0), 0);
    /* The schema refuses what the C checks refuse, too. */
    CHECK_EQ(spro_store__org_insert(db, "o2", "N", "school", NOW, NULL, NULL, 0), SPRO_ESTORE);
    CHECK_EQ(spro_store__user_insert(db, "u2", "o", "boss", NOW, NULL, NULL, 0), SPRO_ESTORE);
    CHECK_EQ(spro_store__user_insert(db, "u3", "nope", "admin", NOW, NULL, NULL, 0), SPRO_ENOENT);
    spro_store__close(db);
}

/* A master key from a passphrase: the Argon2id wrapper (pinned output,
 * bounds) and a data directory with master.salt (right, wrong and missing
 * passphrase). */
static void test_passphrase_master_key(void)
{
    static const char pass[] = "correct horse battery staple";
    uint8_t salt[SPRO_PWHASH_SALT_BYTES], key[SPRO_KEY_BYTES], again[SPRO_KEY_BYTES];
    for (size_t i = 0; i < sizeof salt; i++)
        salt[i] = (uint8_t)i;
    /* Computed with libsodium 1.0.18, crypto_pwhash(32, pass, salt, 1,
     * 8192, ALG_ARGON2ID13): pins the algorithm and the argument order. */
    static const uint8_t want[SPRO_KEY_BYTES] = {0xd1, 0x7e, 0xa6, 0x34, 0x1c, 0xa9, 0x3d, 0xa6,
                                                 0x07, 0x9e, 0xa2, 0xf6, 0x4d, 0xc4, 0xaa, 0x31,
                                                 0xdd, 0x1a, 0xaf, 0x9c, 0xaa, 0x67, 0xfb, 0x42,
                                                 0xac, 0x4a, 0xfd, 0x07, 0x14, 0x70, 0x6f, 0x26};
    CHECK_EQ(spro_crypto_pwhash(key, pass, strlen(pass), salt, 1, 8192), 0);
    CHECK_BYTES(key, sizeof key, want, sizeof want);
    salt[0] ^= 1;
    CHECK_EQ(spro_crypto_pwhash(again, pass, strlen(pass), salt, 1, 8192), 0);
    CHECK(memcmp(key, again, sizeof key) != 0);
    CHECK_EQ(spro_crypto_pwhash(key, pass, 0, salt, 1, 8192), SPRO_ERANGE);
    CHECK_EQ(spro_crypto_pwhash(key, pass, SPRO_PASSPHRASE_MAX + 1, salt, 1, 8192), SPRO_ERANGE);
    CHECK_EQ(spro_crypto_pwhash(key, pass, strlen(pass), salt, 0, 8192), SPRO_ERANGE);
    CHECK_EQ(spro_crypto_pwhash(key, pass, strlen(pass), salt, SPRO_PWHASH_OPS_MAX + 1, 8192),
             SPRO_ERANGE);
    CHECK_EQ(spro_crypto_pwhash(key, pass, strlen(pass), salt, 1, 4096), SPRO_ERANGE);
    CHECK_EQ(spro_crypto_pwhash(key, pass, strlen(pass), salt, 1, SPRO_PWHASH_MEM_MAX + 1),
             SPRO_ERANGE);

    char sdir[320], why[512];
    snprintf(sdir, sizeof sdir, "%s/salted", tmp);
    struct spro_datadir_options o = {
        .passphrase = pass, .passphrase_len = strlen(pass), .kdf_ops = 1, .kdf_mem = 8192};
    CHECK_EQ(spro_datadir_init_ex(sdir, &o, why, sizeof why), 0);
    struct spro_datadir *sd;
    CHECK_EQ(spro_datadir_open(sdir, &sd, why, sizeof why), SPRO_ECONFIG);
    CHECK(strstr(why, "--passphrase-file FILE or --passphrase-fd N") != NULL);
    struct spro_datadir_options wrong = {.passphrase = "correct horse", .passphrase_len = 13};
    CHECK_EQ(spro_datadir_open_ex(sdir, &wrong, &sd, why, sizeof why), SPRO_EINTEGRITY);
    CHECK(strstr(why, "wrong passphrase") != NULL);
    CHECK_EQ(spro_datadir_open_ex(sdir, &o, &sd, why, sizeof why), 0);
    spro_datadir_close(sd);
    /* Costs out of bounds: refused before anything is made. */
    char bad[320];
    snprintf(bad, sizeof bad, "%s/salted-bad", tmp);
    o.kdf_ops = SPRO_PWHASH_OPS_MAX + 1;
    CHECK_EQ(spro_datadir_init_ex(bad, &o, why, sizeof why), SPRO_ERANGE);
    CHECK(access(bad, F_OK) != 0);
}

static const struct check_test tests[] = {
    {"org_add", test_org_add},
    {"user_add", test_user_add},
    {"issue_and_redeem", test_issue_and_redeem},
    {"issue_refusals", test_issue_refusals},
    {"wrong_secret_kills_ticket", test_wrong_secret_kills_ticket},
    {"expired_unknown_and_reused", test_expired_unknown_and_reused},
    {"key_already_enrolled", test_key_already_enrolled},
    {"concurrent_redeem_one_wins", test_concurrent_redeem_one_wins},
    {"accept_ts", test_accept_ts},
    {"state_transitions", test_state_transitions},
    {"list_order", test_list_order},
    {"secret_never_stored", test_secret_never_stored},
    {"schema_2", test_schema_2},
    {"passphrase_master_key", test_passphrase_master_key},
};

int main(int argc, char **argv)
{
    snprintf(tmp, sizeof tmp, "%s/spro-devices-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp) == NULL || spro_crypto_init() != 0)
        return 1;
    umask(077);
    snprintf(dir, sizeof dir, "%s/dd", tmp);
    char why[512] = "";
    if (spro_datadir_init(dir, why, sizeof why) != 0 ||
        spro_datadir_open(dir, &dd, why, sizeof why) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", dir, why);
        return 1;
    }
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    spro_datadir_close(dd);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return rc;
}
