/*
 * test_audit.c: end-to-end tests of the audit log against a real
 * spro-server: a device enrols, pushes (an accepted op and a refused one),
 * bad requests are refused, an administrator revokes the device; the
 * entries are all there, with ids only (no personal value of the push),
 * the server signs checkpoints periodically and at shutdown, and
 * `spro-admin audit verify` passes.  Then copies of the data directory are
 * tampered with using SQLite directly (a row edited, deleted, two swapped,
 * one inserted, the tail truncated past a checkpoint), and `audit verify`
 * and `check` must fail naming the first bad seq.
 *
 * usage: test_e2e_audit SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "device.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint8_t arena_mem[SPRO_PROTO_ARENA_BYTES(65536)];
static uint8_t plain[65536];
static uint8_t frame[65600];

#define SENTINEL "SENTINEL-Audit-Zephyrine-42"
#define BEN "3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a37"

static int admin(const char *dir, const char *const *args, char *out, size_t cap)
{
    const char *argv[16] = {h_admin_bin, "--data", dir};
    size_t n = 3;
    for (; args[n - 3] != NULL && n < 15; n++)
        argv[n] = args[n - 3];
    argv[n] = NULL;
    return h_run(argv, out, cap);
}

/* Pushes a new beneficiary BEN (family name SENTINEL) and an op of an
 * unknown record type; 0 if both were answered (ack, reject). */
static int push_two(struct dv_env *e, struct dv_dev *d)
{
    struct spro_wire_edit ed[2] = {0};
    ed[0].name = (struct spro_bytes){(const uint8_t *)"family_name", 11};
    ed[0].val.kind = SPRO_VALUE_STR;
    ed[0].val.s = (struct spro_bytes){(const uint8_t *)SENTINEL, strlen(SENTINEL)};
    ed[1] = ed[0];
    struct spro_wire_op ops[2] = {0};
    ops[0].seq = 1;
    ops[0].rtype = (struct spro_bytes){(const uint8_t *)"beneficiary", 11};
    ops[0].rid = ops[0].ben = (struct spro_bytes){(const uint8_t *)BEN, 36};
    ops[0].schema = 1;
    ops[0].hlc = (uint64_t)time(NULL) * 1000 << 16;
    ops[0].set = &ed[0];
    ops[0].nset = 1;
    ops[1] = ops[0];
    ops[1].seq = 2;
    ops[1].rtype = (struct spro_bytes){(const uint8_t *)"nonsense", 8};
    ops[1].set = &ed[1];
    struct spro_msg m = {.type = SPRO_MSG_PUSH};
    m.u.push.ops = ops;
    m.u.push.nops = 2;
    size_t len = dv_seal(d, &m, "POST", "/v1/sync/push", d->counter++, frame, sizeof frame);
    struct h_response *r = malloc(sizeof *r);
    struct spro_arena a = {arena_mem, 0, sizeof arena_mem};
    struct spro_msg reply;
    int rc =
        h_request(e->srv.port, "POST", "/v1/sync/push", "application/octet-stream", frame, len, r);
    rc = rc == 0 && dv_unseal_sync(d, r, "POST", "/v1/sync/push", frame, plain, &a, &reply) == 0 &&
                 reply.type == SPRO_MSG_PUSH_REPLY && reply.u.push_reply.nresults == 2 &&
                 reply.u.push_reply.results[0].status == SPRO_RESULT_ACK &&
                 reply.u.push_reply.results[1].status == SPRO_RESULT_REJECT
             ? 0
             : -1;
    free(r);
    return rc;
}

/* One integer from a query on dir/data.db, or -1. */
static long long query(const char *dir, const char *sql)
{
    char path[700];
    snprintf(path, sizeof path, "%s/data.db", dir);
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* A copy of src named name, then sql run on its data.db with the
 * append-only triggers dropped first, as an attacker with write access to
 * the file would.  The copy's path into out. */
static int tampered_copy(const char *src, const char *name, const char *sql, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", h_tmpdir(), name);
    char cmd[1600], path[700];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", src, out);
    if (system(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/data.db", out);
    sqlite3 *db;
    int rc = sqlite3_open(path, &db) == SQLITE_OK &&
                     sqlite3_exec(db,
                                  "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;"
                                  "DROP TRIGGER audit_checkpoints_no_update;"
                                  "DROP TRIGGER audit_checkpoints_no_delete;",
                                  NULL, NULL, NULL) == SQLITE_OK &&
                     sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    if (rc != 0)
        fprintf(stderr, "tamper %s: %s\n", name, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

static void test_audit_end_to_end(void)
{
    struct dv_env e;
    const char *extra[] = {"--audit-checkpoint-interval", "1", NULL};
    CHECK_EQ(dv_env_start(&e, "audit", extra), 0);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/audit", h_tmpdir());
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(push_two(&e, &d), 0);
    /* Refused requests: a handshake of an impossible size, twice, and an
     * unknown route. */
    struct h_response *r = malloc(sizeof *r);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(
            h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", "x", 1, r), 0);
        CHECK_EQ(r->status, 400);
    }
    CHECK_EQ(h_request(e.srv.port, "GET", "/nope", NULL, NULL, 0, r), 0);
    CHECK_EQ(r->status, 404);
    free(r);
    static char out[1 << 20];
    const char *revoke[] = {"device", "revoke", d.device_id, NULL};
    CHECK_EQ(admin(dir, revoke, out, sizeof out), 0);
    /* A periodic checkpoint (every second) covers the first entries. */
    long long cps = 0;
    for (int i = 0; i < 50 && cps < 1; i++) {
        usleep(100000);
        cps = query(dir, "SELECT count(*) FROM audit_checkpoints");
    }
    CHECK_INT(cps, >=, 1);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);

    /* At shutdown: the refused counts, then a checkpoint of the last entry. */
    long long last = query(dir, "SELECT max(seq) FROM audit");
    CHECK_INT(last, >=, 10);
    CHECK_EQ(query(dir, "SELECT max(seq) FROM audit_checkpoints"), last);
    const char *verify[] = {"audit", "verify", NULL};
    CHECK_EQ(admin(dir, verify, out, sizeof out), 0);
    CHECK(strstr(out, "ok: ") != NULL);
    const char *show[] = {"audit", "show", "--json", NULL};
    CHECK_EQ(admin(dir, show, out, sizeof out), 0);
    char want[200];
    static const char *const expect[] = {
        "\"kind\": \"org.add\"",
        "\"kind\": \"user.add\"",
        "\"kind\": \"ticket.issue\"",
        "\"kind\": \"device.enrol\"",
        "\"object\": \"beneficiary:" BEN "\", \"detail\": \"ack op=1\"",
        "\"object\": \"?:" BEN "\", \"detail\": \"reject:unknown_type op=2\"",
        "\"object\": \"handshake_refused:bad_frame\", \"detail\": \"count=2\"",
        "\"object\": \"request_refused:not_found\", \"detail\": \"count=1\"",
        "\"kind\": \"device.revoke\", \"actor\": \"admin:uid=",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (strstr(out, expect[i]) == NULL)
            CHECK__FAIL("audit show lacks %s:\n%s", expect[i], out);
    snprintf(want, sizeof want, "\"actor\": \"device:%s\"", d.device_id);
    CHECK(strstr(out, want) != NULL);
    /* Ids and codes only: the pushed value is nowhere in the log. */
    CHECK(strstr(out, SENTINEL) == NULL);
    CHECK_EQ(query(dir, "SELECT count(*) FROM audit WHERE instr(kind || actor || object || detail, "
                        "'" SENTINEL "') > 0"),
             0);
    const char *since[] = {"audit", "show", "--since", "3", NULL};
    CHECK_EQ(admin(dir, since, out, sizeof out), 0);
    CHECK(strstr(out, "org.add") == NULL); /* entries 1 and 2 */
    CHECK(strstr(out, "ticket.issue") != NULL);
    const char *check[] = {"check", NULL};
    CHECK_EQ(admin(dir, check, out, sizeof out), 0);
    CHECK(strstr(out, "ok      audit log chain") != NULL);

    /* Tampering, each on its own copy: the first bad seq is named.  (check
     * appended an entry after the last checkpoint.) */
    long long cp = last;
    last = query(dir, "SELECT max(seq) FROM audit");
    CHECK_EQ(last, cp + 1);
    char sql[4][300];
    snprintf(sql[0], sizeof sql[0], "DELETE FROM audit WHERE seq >= %lld", cp - 1);
    snprintf(sql[1], sizeof sql[1],
             "INSERT INTO audit SELECT seq + 1, time, kind, actor, object, detail, hash"
             " FROM audit WHERE seq = %lld",
             last);
    static const struct {
        const char *name, *sql;
        long long bad; /* 0: from the cases above */
        const char *says;
    } cases[] = {
        {"edited", "UPDATE audit SET detail = 'ack op=9' WHERE seq = 3", 3,
         "entry 3 does not chain"},
        {"deleted", "DELETE FROM audit WHERE seq = 4", 4, "entry 4 does not chain"},
        {"swapped",
         "UPDATE audit SET seq = 1000002 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 5;"
         "UPDATE audit SET seq = 5 WHERE seq = 1000002",
         2, "entry 2 does not chain"},
        {"truncated", NULL, -1, "covers entries that are missing (tail truncated)"},
        {"inserted", NULL, -2, "does not chain"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char copy[700];
        const char *q = cases[i].sql ? cases[i].sql : sql[cases[i].bad == -1 ? 0 : 1];
        long long bad = cases[i].bad == -1 ? cp : cases[i].bad == -2 ? last + 1 : cases[i].bad;
        CHECK_EQ(tampered_copy(dir, cases[i].name, q, copy, sizeof copy), 0);
        int st = admin(copy, verify, out, sizeof out);
        char named[64];
        snprintf(named, sizeof named, "first bad seq %lld ", bad);
        if (st != 1 || strstr(out, cases[i].says) == NULL || strstr(out, named) == NULL)
            CHECK__FAIL("%s: exit %d, want seq %lld:\n%s", cases[i].name, st, bad, out);
        st = admin(copy, check, out, sizeof out);
        if (st != 1 || strstr(out, "FAILED  audit log chain") == NULL)
            CHECK__FAIL("%s: check exit %d:\n%s", cases[i].name, st, out);
    }
}

static const struct check_test tests[] = {
    {"audit_end_to_end", test_audit_end_to_end},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
