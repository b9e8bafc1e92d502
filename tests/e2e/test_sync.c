/*
 * test_sync.c: end-to-end tests of POST /v1/sync/push and /v1/sync/pull
 * against a real spro-server, through the channel (tests/e2e/device.c):
 * scope between organisations, no personal value in clear anywhere in the
 * data directory or the logs, and durability: the server is killed
 * (SIGKILL) at random points of pushes, 50 times, and every acknowledged op
 * must be there after restart while every retried op is applied exactly
 * once.
 *
 * usage: test_e2e_sync SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "device.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static uint8_t arena_mem[SPRO_PROTO_ARENA_BYTES(65536)];
static uint8_t plain[65536];
static uint8_t frame[65600];

/* One op: a new beneficiary `ben` with given_name = value (and, when
 * family is not NULL, family_name = family). */
struct op_spec {
    uint64_t seq;
    char ben[37];
    char value[64];
    const char *family;
    uint64_t hlc;
};

static void fill_op(struct spro_wire_op *op, struct spro_wire_edit *ed, const struct op_spec *o)
{
    memset(op, 0, sizeof *op);
    op->seq = o->seq;
    op->rtype = (struct spro_bytes){(const uint8_t *)"beneficiary", 11};
    op->rid = op->ben = (struct spro_bytes){(const uint8_t *)o->ben, 36};
    op->schema = 1;
    op->hlc = o->hlc;
    size_t n = 0;
    memset(ed, 0, 2 * sizeof *ed);
    ed[n].name = (struct spro_bytes){(const uint8_t *)"given_name", 10};
    ed[n].val.kind = SPRO_VALUE_STR;
    ed[n].val.s = (struct spro_bytes){(const uint8_t *)o->value, strlen(o->value)};
    n++;
    if (o->family != NULL) {
        ed[n].name = (struct spro_bytes){(const uint8_t *)"family_name", 11};
        ed[n].val.kind = SPRO_VALUE_STR;
        ed[n].val.s = (struct spro_bytes){(const uint8_t *)o->family, strlen(o->family)};
        n++;
    }
    op->set = ed;
    op->nset = n;
}

/* Pushes ops; on a complete answer fills acked[i] (1 ack, 2 other) and
 * returns 0; -1 when no answer came (connection cut, server gone). */
static int push(struct dv_env *e, struct dv_dev *d, const struct op_spec *ops, size_t n, int *acked)
{
    struct spro_wire_op wops[64];
    struct spro_wire_edit eds[64][2];
    for (size_t i = 0; i < n; i++)
        fill_op(&wops[i], eds[i], &ops[i]);
    return dv_push(e, d, wops, n, acked);
}

static const struct spro_wire_field *field(const struct spro_wire_record *r, const char *name)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (dv_bytes_is(r->fields[i].name, name))
            return &r->fields[i];
    return NULL;
}

/* ---- scope and sentinel ---------------------------------------------- */

struct seen {
    int records;
    bool found;
    const char *ben;
    char family[64];
};

static void note_record(const struct spro_wire_record *r, void *arg)
{
    struct seen *s = arg;
    s->records++;
    if (dv_bytes_is(r->rid, s->ben)) {
        s->found = true;
        const struct spro_wire_field *f = field(r, "family_name");
        if (f != NULL && f->nsiblings == 1)
            snprintf(s->family, sizeof s->family, "%.*s", (int)f->siblings[0].val.s.len,
                     (const char *)f->siblings[0].val.s.p);
    }
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void test_scope_and_sentinel(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "scope", NULL), 0);
    struct dv_dev a, b, other;
    CHECK_EQ(dv_enrolled(&e, &a, "alice"), 0);
    CHECK_EQ(dv_enrolled(&e, &other, "bob"), 0); /* another organisation */
    CHECK_EQ(spro_user_add(e.dd, "carol", "cio-nord", "counsellor", NULL, 0), 0);
    CHECK_EQ(dv_enrolled(&e, &b, "carol"), 0);
    static const char sentinel[] = "SENTINEL-Zoubida-7f3a";
    struct op_spec o = {.seq = 1, .family = sentinel, .hlc = (uint64_t)time(NULL) * 1000 << 16};
    dv_uuid(o.ben, 0xabc00001, 0x1234);
    snprintf(o.value, sizeof o.value, "SENTINEL-given-91c2");
    int acked = 0;
    CHECK_EQ(push(&e, &a, &o, 1, &acked), 0);
    CHECK_EQ(acked, 1);
    struct seen sb = {.ben = o.ben}, so = {.ben = o.ben};
    CHECK_EQ(dv_pull_all(&e, &b, 200, note_record, &sb), 0);
    CHECK(sb.found);
    CHECK_STR(sb.family, sentinel);
    CHECK_EQ(dv_pull_all(&e, &other, 200, note_record, &so), 0);
    CHECK(!so.found);
    CHECK_EQ(so.records, 0);
    dv_dev_end_session(&a);
    dv_dev_end_session(&b);
    dv_dev_end_session(&other);
    CHECK_EQ(dv_env_stop(&e), 0);
    /* No personal value in clear in the data directory, WAL included, or
     * in the server's log. */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/scope", h_tmpdir());
    DIR *dp = opendir(dir);
    CHECK(dp != NULL);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        files++;
        if (file_contains(path, sentinel) || file_contains(path, "SENTINEL-given-91c2"))
            CHECK__FAIL("a personal value is in clear in %s", de->d_name);
    }
    closedir(dp);
    CHECK_INT(files, >=, 3);
    CHECK(!file_contains(e.srv.log, sentinel));
}

/* ---- durability under kill -9 ------------------------------------------ */

struct killer {
    pid_t pid;
    unsigned delay_us;
};

static void *kill_later(void *arg)
{
    struct killer *k = arg;
    usleep(k->delay_us);
    kill(k->pid, SIGKILL);
    return NULL;
}

#define KILL_ROUNDS 50
#define BATCH 40

struct tally {
    int records;
    int ops_total;
    int bad; /* a record of ours with other than exactly one sibling */
    const struct op_spec *ops;
};

static void count_record(const struct spro_wire_record *r, void *arg)
{
    struct tally *t = arg;
    const struct spro_wire_field *f = field(r, "given_name");
    for (int i = 0; i < t->ops_total; i++)
        if (dv_bytes_is(r->rid, t->ops[i].ben)) {
            t->records++;
            if (f == NULL || f->nsiblings != 1 ||
                !dv_bytes_is(f->siblings[0].val.s, t->ops[i].value))
                t->bad++;
        }
}

static void test_durability_under_kill(void)
{
    static struct op_spec ops[KILL_ROUNDS * BATCH];
    static int acked[KILL_ROUNDS * BATCH];
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "kill", NULL), 0);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/kill", h_tmpdir());
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    uint64_t hlc = (uint64_t)time(NULL) * 1000 << 16;
    int total = 0, acked_before_kill = 0, unanswered = 0;
    srand(4242);
    /* Calibration: how long one push takes here, now (sanitizers and a busy
     * machine make it vary tenfold); kills land uniformly in a window that
     * starts at twice that and adapts (below). */
    unsigned window_us;
    {
        struct op_spec cal[BATCH];
        int res[BATCH];
        for (int i = 0; i < BATCH; i++) {
            cal[i] = (struct op_spec){.seq = 1000000 + (uint64_t)i, .hlc = ++hlc};
            dv_uuid(cal[i].ben, 0x0c000000u + (uint32_t)i, 7);
            snprintf(cal[i].value, sizeof cal[i].value, "calibration-%d", i);
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_EQ(push(&e, &d, cal, BATCH, res), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        window_us =
            (unsigned)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
        window_us = 2 * window_us + 1000;
    }
    for (int round = 0; round < KILL_ROUNDS; round++) {
        if (e.srv.pid == 0) {
            CHECK_EQ(h_server_start(&e.srv, dir, NULL), 0);
            struct h_response r;
            CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
        }
        /* New ops, plus every op not acknowledged yet (retried as is). */
        struct op_spec batch[BATCH * 2];
        int idx[BATCH * 2], n = 0;
        for (int i = 0; i < total && n < BATCH; i++)
            if (!acked[i])
                batch[n] = ops[i], idx[n++] = i;
        while (n < BATCH * 2 && total < KILL_ROUNDS * BATCH && n < 60) {
            struct op_spec *o = &ops[total];
            o->seq = (uint64_t)total + 1;
            dv_uuid(o->ben, 0x0d000000u + (uint32_t)total, (uint32_t)round);
            snprintf(o->value, sizeof o->value, "op-%d", total);
            o->hlc = ++hlc;
            batch[n] = *o, idx[n++] = total++;
        }
        /* Every fourth push is killed at once (before its answer, surely);
         * the others at a random point of a window around its duration. */
        struct killer k = {e.srv.pid, round % 4 == 0 ? 0 : (unsigned)rand() % window_us};
        pthread_t t;
        pthread_create(&t, NULL, kill_later, &k);
        int res[BATCH * 2];
        int rc = push(&e, &d, batch, (size_t)n, res);
        pthread_join(t, NULL);
        /* Keep the kills around the time a push takes, whatever the load:
         * an answer that beat the kill shrinks the window, a kill that beat
         * the answer widens it. */
        window_us = rc == 0 ? window_us * 3 / 4 + 200 : window_us * 5 / 4 + 200;
        unanswered += rc != 0;
        if (rc == 0)
            for (int i = 0; i < n; i++)
                if (res[i] == 1 && !acked[idx[i]])
                    acked[idx[i]] = 1, acked_before_kill++;
        h_server_kill(&e.srv);
        dv_dev_end_session(&d);
    }
    /* Restart; retry until every op is acknowledged. */
    CHECK_EQ(h_server_start(&e.srv, dir, NULL), 0);
    struct h_response r;
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    for (int pass = 0; pass < 100; pass++) {
        struct op_spec batch[BATCH];
        int idx[BATCH], n = 0;
        for (int i = 0; i < total && n < BATCH; i++)
            if (!acked[i])
                batch[n] = ops[i], idx[n++] = i;
        if (n == 0)
            break;
        int res[BATCH];
        CHECK_EQ(push(&e, &d, batch, (size_t)n, res), 0);
        for (int i = 0; i < n; i++)
            acked[idx[i]] = res[i] == 1;
    }
    /* Re-send some acknowledged ops: same answers, nothing applied twice. */
    int res[BATCH];
    CHECK_EQ(push(&e, &d, ops, BATCH, res), 0);
    for (int i = 0; i < BATCH; i++)
        CHECK_EQ(res[i], 1);
    struct tally tl = {.ops_total = total, .ops = ops};
    CHECK_EQ(dv_pull_all(&e, &d, 200, count_record, &tl), 0);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
    printf("durability: %d ops, %d acknowledged before a kill, %d kills (%d before the answer)\n",
           total, acked_before_kill, KILL_ROUNDS, unanswered);
    CHECK_EQ(tl.records, total);            /* every op's record is there */
    CHECK_EQ(tl.bad, 0);                    /* each exactly once, with its value */
    CHECK_INT(acked_before_kill, >, 0);     /* some kills came after the answer */
    CHECK_INT(acked_before_kill, <, total); /* and some before it */
}

/* ---- fail-stop on a storage error ------------------------------------- */

/* fsync fails (EIO) while the flag file exists: the push answered after it
 * is storage_failed (or no answer at all), the server exits 1 on its own,
 * and after a restart the retried op is applied exactly once. */
static void test_fail_stop_on_fsync_error(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "failstop", NULL), 0);
    char dir[600], flag[700];
    snprintf(dir, sizeof dir, "%s/failstop", h_tmpdir());
    snprintf(flag, sizeof flag, "%s/failsync.flag", h_tmpdir());
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    dv_dev_end_session(&d);
    h_server_stop(&e.srv, 5000);
    /* The same server, now with fsync failing on demand. */
    setenv("LD_PRELOAD", SPRO_FAILSYNC_LIB, 1);
    setenv("SPRO_FAILSYNC_FLAG", flag, 1);
    setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 1);
    int started = h_server_start(&e.srv, dir, NULL);
    unsetenv("LD_PRELOAD");
    unsetenv("SPRO_FAILSYNC_FLAG");
    unsetenv("ASAN_OPTIONS");
    CHECK_EQ(started, 0);
    struct h_response r;
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    uint64_t hlc = (uint64_t)time(NULL) * 1000 << 16;
    struct op_spec ok = {.seq = 1, .hlc = ++hlc}, doomed = {.seq = 2, .hlc = ++hlc};
    dv_uuid(ok.ben, 0xfa110001u, 1);
    dv_uuid(doomed.ben, 0xfa110002u, 2);
    snprintf(ok.value, sizeof ok.value, "before");
    snprintf(doomed.value, sizeof doomed.value, "during");
    int res = 0;
    CHECK_EQ(push(&e, &d, &ok, 1, &res), 0);
    CHECK_EQ(res, 1);
    FILE *f = fopen(flag, "w");
    CHECK(f != NULL);
    fclose(f);
    res = 0;
    push(&e, &d, &doomed, 1, &res); /* storage_failed, or no answer */
    CHECK(res != 1);                /* never acknowledged */
    int status = -2;
    for (int i = 0; i < 100 && status == -2; i++) { /* exits by itself, within 5 s */
        int st;
        if (waitpid(e.srv.pid, &st, WNOHANG) == e.srv.pid)
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        else
            usleep(50000);
    }
    if (status == -2)
        h_server_kill(&e.srv);
    else
        e.srv.pid = 0;
    unlink(flag);
    CHECK_EQ(status, 1);
    char *log = h_server_log(&e.srv);
    int logged = strstr(log, "\"event\":\"fail_stop\"") != NULL;
    free(log);
    CHECK(logged);
    /* Restart on a healthy disk: the retried op is applied exactly once. */
    dv_dev_end_session(&d);
    CHECK_EQ(h_server_start(&e.srv, dir, NULL), 0);
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    CHECK_EQ(push(&e, &d, &doomed, 1, &res), 0);
    CHECK_EQ(res, 1);
    struct op_spec both[2] = {ok, doomed};
    struct tally tl = {.ops_total = 2, .ops = both};
    CHECK_EQ(dv_pull_all(&e, &d, 200, count_record, &tl), 0);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
    CHECK_EQ(tl.records, 2);
    CHECK_EQ(tl.bad, 0);
}

/* A refused op is answered reject with its reason, and spro-admin lists it
 * (without its content). */
static void test_quarantine_visible_to_admin(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "quarantine", NULL), 0);
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    struct op_spec o = {.seq = 7, .hlc = (uint64_t)time(NULL) * 1000 << 16};
    dv_uuid(o.ben, 0x9a000001u, 3);
    snprintf(o.value, sizeof o.value, "SENTINEL-quarantined-55e1");
    struct spro_wire_op op;
    struct spro_wire_edit ed[2];
    fill_op(&op, ed, &o);
    ed[0].val.kind = SPRO_VALUE_INT; /* given_name is a string: bad_value */
    ed[0].val.i = 42;
    struct spro_msg m = {.type = SPRO_MSG_PUSH};
    m.u.push.ops = &op;
    m.u.push.nops = 1;
    size_t len = dv_seal(&d, &m, "POST", "/v1/sync/push", d.counter++, frame, sizeof frame);
    struct h_response *r = malloc(sizeof *r);
    int rc =
        h_request(e.srv.port, "POST", "/v1/sync/push", "application/octet-stream", frame, len, r);
    struct spro_arena a = {arena_mem, 0, sizeof arena_mem};
    struct spro_msg reply;
    if (rc == 0)
        rc = dv_unseal_sync(&d, r, "POST", "/v1/sync/push", frame, plain, &a, &reply);
    free(r);
    CHECK_EQ(rc, 0);
    CHECK_EQ(reply.type, SPRO_MSG_PUSH_REPLY);
    CHECK_EQ(reply.u.push_reply.nresults, 1);
    CHECK_EQ(reply.u.push_reply.results[0].status, SPRO_RESULT_REJECT);
    CHECK(dv_bytes_is(reply.u.push_reply.results[0].code, "bad_value"));
    char dir[600], out[8192];
    snprintf(dir, sizeof dir, "%s/quarantine", h_tmpdir());
    const char *argv[] = {h_admin_bin, "--data", dir, "quarantine", "list", "--json", NULL};
    CHECK_EQ(h_run(argv, out, sizeof out), 0);
    CHECK(strstr(out, d.device_id) != NULL);
    CHECK(strstr(out, "\"seq\": 7") != NULL);
    CHECK(strstr(out, "\"code\": \"bad_value\"") != NULL);
    CHECK(strstr(out, o.ben) != NULL);
    const char *argt[] = {h_admin_bin, "--data", dir, "quarantine", "list", NULL};
    CHECK_EQ(h_run(argt, out, sizeof out), 0);
    CHECK(strstr(out, "bad_value") != NULL);
    /* One push, run alone: one transaction. */
    r = malloc(sizeof *r);
    CHECK_EQ(h_request(e.srv.port, "GET", "/metrics", NULL, NULL, 0, r), 0);
    r->body[r->body_len < sizeof r->body ? r->body_len : sizeof r->body - 1] = '\0';
    bool one_push = strstr((const char *)r->body, "\nspro_sync_pushes_total 1\n") != NULL;
    bool one_commit = strstr((const char *)r->body, "\nspro_sync_push_commits_total 1\n") != NULL;
    free(r);
    CHECK(one_push);
    CHECK(one_commit);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static const struct check_test tests[] = {
    {"scope_and_sentinel", test_scope_and_sentinel},
    {"durability_under_kill", test_durability_under_kill},
    {"fail_stop_on_fsync_error", test_fail_stop_on_fsync_error},
    {"quarantine_visible_to_admin", test_quarantine_visible_to_admin},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
