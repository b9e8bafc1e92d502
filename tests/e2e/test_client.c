/*
 * test_client.c: end-to-end tests of spro-client against real spro-server
 * processes, set up with spro-admin: enrolment (and its refusals: a bad
 * ticket string, a ticket for another server, a used ticket, a home that is
 * already enrolled), ping, revocation, the wipe order (the local store
 * erased too), the home's file modes, network failures and time-outs, TLS,
 * help and usage errors; and sync between devices (docs/PROTOCOL.md,
 * "Sync"): two devices of one organisation editing one record offline (the
 * same field: a conflict both see, then resolved on one; different fields:
 * merged), a device of another organisation that never sees it, and a
 * referral between organisations (a transfer, accepted: the receiver gets
 * the records without the sender's notes, the sender's devices delete
 * theirs; a referral refused: nothing moves).
 *
 * usage: test_e2e_client SPRO_SERVER SPRO_ADMIN SPRO_CLIENT [TEST]...
 */
#include "check.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A data directory with organisation o1 and counsellor u1. */
static bool make_data(char *data, size_t cap, const char *name)
{
    char out[4096];
    snprintf(data, cap, "%s", h_make_datadir(name));
    if (H_ADMIN(out, "--data", data, "org", "add", "o1", "--name", "CIO Nord", "--kind", "cio") !=
            0 ||
        H_ADMIN(out, "--data", data, "user", "add", "u1", "--org", "o1") != 0) {
        fprintf(stderr, "spro-admin set-up failed: %s\n", out);
        return false;
    }
    return true;
}

struct env {
    char data[600];
    struct h_server s;
    char url[64];
};

/* make_data, then a server on it (extra arguments NULL-terminated). */
static bool start(struct env *e, const char *name, const char *const *extra, bool tls)
{
    if (!make_data(e->data, sizeof e->data, name))
        return false;
    if (h_server_start(&e->s, e->data, extra) != 0) {
        fprintf(stderr, "spro-server did not start\n");
        return false;
    }
    snprintf(e->url, sizeof e->url, "%s://127.0.0.1:%d", tls ? "https" : "http", e->s.port);
    return true;
}

/* A ticket for `user` from data directory `data`, naming url. */
static bool invite_user(const char *data, const char *user, const char *url, char *ticket,
                        size_t cap)
{
    char out[4096];
    if (H_ADMIN(out, "--data", data, "device", "invite", "--user", user, "--url", url, "--no-qr") !=
            0 ||
        !h_line_value(out, "ticket: ", ticket, cap)) {
        fprintf(stderr, "spro-admin device invite failed: %s\n", out);
        return false;
    }
    return true;
}

/* A ticket for u1. */
static bool invite(const char *data, const char *url, char *ticket, size_t cap)
{
    return invite_user(data, "u1", url, ticket, cap);
}

static void home_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", h_tmpdir(), name);
}

static bool exists(const char *dir, const char *file)
{
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return access(p, F_OK) == 0;
}

/* Whole content of dir/file into buf (NUL-terminated); its length or -1. */
static long slurp(const char *dir, const char *file, char *buf, size_t cap)
{
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "rb");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

static unsigned long long last_ts(const char *home)
{
    char st[4096], v[32];
    if (slurp(home, "state", st, sizeof st) < 0 || !h_line_value(st, "last_ts=", v, sizeof v))
        return 0;
    return strtoull(v, NULL, 10);
}

/* Enrols a new home `name` on e's server; the device id into id. */
static bool enroll(const struct env *e, const char *name, char *home, size_t hcap, char *id,
                   size_t idcap)
{
    char ticket[512], out[4096];
    home_path(home, hcap, name);
    if (!invite(e->data, e->url, ticket, sizeof ticket))
        return false;
    int rc = H_CLIENT(out, "--home", home, "enroll", ticket);
    if (rc != 0 || !h_line_value(out, "device: ", id, idcap)) {
        fprintf(stderr, "spro-client enroll exited %d: %s\n", rc, out);
        return false;
    }
    return true;
}

static void test_enroll_then_ping(void)
{
    struct env e;
    CHECK(start(&e, "ping", NULL, false));
    char ticket[512], home[600], out[4096], id[128];
    CHECK(invite(e.data, e.url, ticket, sizeof ticket));
    home_path(home, sizeof home, "home-ping");
    CHECK_EQ(H_CLIENT(out, "--home", home, "enroll", ticket), 0);
    CHECK(h_line_value(out, "device: ", id, sizeof id));
    CHECK_EQ(strlen(id), 36); /* a UUID */
    CHECK_EQ(strncmp(out, "device: ", 8), 0);

    /* The home: private, the key 32 bytes, the state naming the server. */
    struct stat st;
    char path[800];
    CHECK_EQ(stat(home, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/device.key", home);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(st.st_size, 32);
    snprintf(path, sizeof path, "%s/state", home);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    char state[4096], want[700], info[4096], pk[128];
    CHECK(slurp(home, "state", state, sizeof state) > 0);
    snprintf(want, sizeof want, "url=%s\n", e.url);
    CHECK(strstr(state, want) != NULL);
    snprintf(want, sizeof want, "device=%s\nuser=u1\norg=o1\n", id);
    CHECK(strstr(state, want) != NULL);
    CHECK_EQ(H_ADMIN(info, "--data", e.data, "info"), 0);
    CHECK(h_line_value(info, "noise public key: ", pk, sizeof pk));
    snprintf(want, sizeof want, "server_key=%s\n", pk);
    CHECK(strstr(state, want) != NULL);
    /* The ticket's secret (43 characters after "spro1:FP:ID:") is nowhere. */
    char secret[64];
    CHECK(strlen(ticket) > 64 + 43 && ticket[63] == ':' && ticket[64 + 43] == '@');
    memcpy(secret, ticket + 64, 43);
    secret[43] = '\0';
    CHECK(strstr(state, secret) == NULL);
    CHECK(!exists(home, "state.tmp") && !exists(home, "device.key.tmp"));

    unsigned long long ts1 = last_ts(home);
    CHECK(ts1 > 0);
    CHECK_EQ(H_CLIENT(out, "--home", home, "ping"), 0);
    snprintf(want, sizeof want, "device: %s\nuser: u1\norg: o1\nrole: counsellor\n", id);
    CHECK_STR(out, want);
    unsigned long long ts2 = last_ts(home);
    CHECK(ts2 > ts1);
    /* Each run opens its own session, with a newer timestamp. */
    CHECK_EQ(H_CLIENT(out, "--home", home, "ping"), 0);
    CHECK_STR(out, want);
    CHECK(last_ts(home) > ts2);
    h_server_stop(&e.s, 5000);
}

static void test_enroll_from_stdin(void)
{
    struct env e;
    CHECK(start(&e, "stdin", NULL, false));
    char ticket[512], home[600], out[4096];
    CHECK(invite(e.data, e.url, ticket, sizeof ticket));
    home_path(home, sizeof home, "home-stdin");
    const char *argv[] = {
        "/bin/sh",    "-c",   "printf '%s\\n' \"$1\" | \"$0\" --home \"$2\" enroll -",
        h_client_bin, ticket, home,
        NULL};
    CHECK_EQ(h_run(argv, out, sizeof out), 0);
    CHECK(strstr(out, "device: ") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", home, "ping"), 0);
    CHECK(strstr(out, "user: u1\n") != NULL);
    h_server_stop(&e.s, 5000);
}

static void test_enroll_twice_refused(void)
{
    struct env e;
    CHECK(start(&e, "twice", NULL, false));
    char home[600], id[128], out[4096], t2[512], before[4096], after[4096];
    CHECK(enroll(&e, "home-twice", home, sizeof home, id, sizeof id));
    CHECK(slurp(home, "state", before, sizeof before) > 0);
    CHECK(invite(e.data, e.url, t2, sizeof t2));
    CHECK_EQ(H_CLIENT(out, "--home", home, "enroll", t2), 1);
    CHECK(strstr(out, "already holds an enrolled device") != NULL);
    CHECK(strstr(out, id) != NULL);
    CHECK(slurp(home, "state", after, sizeof after) > 0);
    CHECK_STR(before, after);
    /* The refusal came before the network: the second ticket still works. */
    char home2[600];
    home_path(home2, sizeof home2, "home-twice-2");
    CHECK_EQ(H_CLIENT(out, "--home", home2, "enroll", t2), 0);
    h_server_stop(&e.s, 5000);
}

static void test_bad_ticket(void)
{
    char home[600], out[4096];
    home_path(home, sizeof home, "home-bad");
    static const char *const bad[] = {
        "spro1:nonsense",
        "",
        /* right shape, but 'g' is not a hex digit */
        "spro1:g577eafa101d938a30fa7b5ce7223c5687f24218:9f0c2a61b3d4e5f6:"
        "q3ZkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAXw@http://127.0.0.1:8080",
        /* a path after the URL */
        "spro1:2577eafa101d938a30fa7b5ce7223c5687f24218:9f0c2a61b3d4e5f6:"
        "q3ZkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAXw@http://127.0.0.1:8080/x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(H_CLIENT(out, "--home", home, "enroll", bad[i]), 2);
        CHECK(strstr(out, "not a ticket string") != NULL);
        CHECK(strstr(out, "q3Zk") == NULL); /* the secret is never echoed */
        CHECK(access(home, F_OK) != 0);
    }
}

static void test_ticket_for_another_server(void)
{
    char a[600], ticket[512], home[600], out[4096];
    CHECK(make_data(a, sizeof a, "other-a"));
    struct env b;
    CHECK(start(&b, "other-b", NULL, false));
    CHECK(invite(a, b.url, ticket, sizeof ticket)); /* A's fingerprint, B's address */
    home_path(home, sizeof home, "home-other");
    CHECK_EQ(H_CLIENT(out, "--home", home, "enroll", ticket), 1);
    CHECK(strstr(out, "server key does not match the ticket's fingerprint (wrong server or "
                      "interception)") != NULL);
    CHECK(access(home, F_OK) != 0); /* nothing written */
    h_server_stop(&b.s, 5000);
}

static void test_reused_ticket(void)
{
    struct env e;
    CHECK(start(&e, "reuse", NULL, false));
    char ticket[512], h1[600], h2[600], out[4096];
    CHECK(invite(e.data, e.url, ticket, sizeof ticket));
    home_path(h1, sizeof h1, "home-reuse-1");
    home_path(h2, sizeof h2, "home-reuse-2");
    CHECK_EQ(H_CLIENT(out, "--home", h1, "enroll", ticket), 0);
    CHECK_EQ(H_CLIENT(out, "--home", h2, "enroll", ticket), 1);
    CHECK(strstr(out, "ticket_invalid") != NULL);
    CHECK(strstr(out, "hint: ") != NULL);
    CHECK(!exists(h2, "device.key") && !exists(h2, "state"));
    CHECK(access(h2, F_OK) != 0); /* the home it made is gone again */
    h_server_stop(&e.s, 5000);
}

static void test_revoked(void)
{
    struct env e;
    CHECK(start(&e, "revoke", NULL, false));
    char home[600], id[128], out[4096];
    CHECK(enroll(&e, "home-revoke", home, sizeof home, id, sizeof id));
    CHECK_EQ(H_ADMIN(out, "--data", e.data, "device", "revoke", id), 0);
    CHECK_EQ(H_CLIENT(out, "--home", home, "ping"), 3);
    CHECK(strstr(out, "this device has been revoked by an administrator") != NULL);
    CHECK(exists(home, "device.key") && exists(home, "state")); /* a revocation erases nothing */
    h_server_stop(&e.s, 5000);
}

static void test_wipe(void)
{
    struct env e;
    CHECK(start(&e, "wipe", NULL, false));
    char home[600], id[128], out[4096];
    CHECK(enroll(&e, "home-wipe", home, sizeof home, id, sizeof id));
    CHECK_EQ(H_CLIENT(out, "--home", home, "new", "beneficiary", "family_name=Wiped"), 0);
    CHECK(exists(home, "local.db") && exists(home, "local.key"));
    CHECK_EQ(H_ADMIN(out, "--data", e.data, "device", "wipe", id), 0);
    CHECK_EQ(H_CLIENT(out, "--home", home, "sync"), 4);
    CHECK(strstr(out, "wipe order received: local data erased") != NULL);
    CHECK(!exists(home, "local.db") && !exists(home, "local.key"));
    CHECK(!exists(home, "local.db-wal") && !exists(home, "local.db-shm"));
    CHECK(!exists(home, "device.key") && !exists(home, "state"));
    CHECK(!exists(home, "device.key.tmp") && !exists(home, "state.tmp"));
    CHECK_EQ(H_CLIENT(out, "--home", home, "ping"), 1);
    CHECK(strstr(out, "not enrolled") != NULL);
    h_server_stop(&e.s, 5000);
}

static void test_not_enrolled(void)
{
    char home[600], out[4096];
    home_path(home, sizeof home, "home-never");
    CHECK_EQ(H_CLIENT(out, "--home", home, "ping"), 1);
    CHECK(strstr(out, "not enrolled") != NULL);
    CHECK(access(home, F_OK) != 0);
}

static void test_network_errors(void)
{
    char data[600], ticket[512], home[600], out[4096];
    CHECK(make_data(data, sizeof data, "net"));
    home_path(home, sizeof home, "home-net");

    /* Nobody listens on port 1. */
    CHECK(invite(data, "http://127.0.0.1:1", ticket, sizeof ticket));
    CHECK_EQ(H_CLIENT(out, "--home", home, "enroll", ticket), 1);
    CHECK(strstr(out, "cannot reach the server at http://127.0.0.1:1") != NULL);
    CHECK(access(home, F_OK) != 0);

    /* A socket that accepts (in its backlog) and never answers. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t slen = sizeof sa;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 4) == 0);
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &slen), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    CHECK(invite(data, url, ticket, sizeof ticket));
    time_t t0 = time(NULL);
    int rc = H_CLIENT(out, "--home", home, "--timeout", "1", "enroll", ticket);
    time_t spent = time(NULL) - t0;
    close(fd);
    CHECK_EQ(rc, 1);
    CHECK(strstr(out, "timed out") != NULL);
    CHECK(spent <= 4);
    CHECK(access(home, F_OK) != 0);
}

static void test_tls(void)
{
    char cert[600], key[600];
    CHECK(h_tls_files(cert, key, sizeof cert));
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    struct env e;
    CHECK(start(&e, "tls", extra, true));
    char ticket[512], home[600], out[4096];
    CHECK(invite(e.data, e.url, ticket, sizeof ticket));
    home_path(home, sizeof home, "home-tls");
    /* Verified by default: a self-signed certificate is refused. */
    CHECK_EQ(H_CLIENT(out, "--home", home, "enroll", ticket), 1);
    CHECK(strstr(out, "certificate") != NULL && strstr(out, "--insecure") != NULL);
    CHECK(access(home, F_OK) != 0);
    CHECK_EQ(H_CLIENT(out, "--home", home, "--insecure", "enroll", ticket), 0);
    CHECK(strstr(out, "device: ") != NULL);
    CHECK_EQ(H_CLIENT(out, "--insecure", "--home", home, "ping"), 0);
    CHECK(strstr(out, "user: u1\norg: o1\n") != NULL);
    h_server_stop(&e.s, 5000);
}

static void test_help_and_usage(void)
{
    char out[4096];
    CHECK_EQ(H_CLIENT(out, "--help"), 0);
    CHECK(strstr(out, "enroll") != NULL && strstr(out, "ping") != NULL);
    CHECK(strstr(out, "--timeout") != NULL && strstr(out, "--insecure") != NULL);
    CHECK_EQ(H_CLIENT(out, "enroll", "--help"), 0);
    CHECK(strstr(out, "usage: spro-client --home DIR enroll TICKET") != NULL);
    CHECK_EQ(H_CLIENT(out, "ping", "--help"), 0);
    CHECK(strstr(out, "usage: spro-client --home DIR ping") != NULL);
    CHECK_EQ(H_CLIENT(out, "--version"), 0);
    CHECK_EQ(strncmp(out, "spro-client ", 12), 0);

    const char *argv[] = {h_client_bin, NULL};
    CHECK_EQ(h_run(argv, out, sizeof out), 2);
    CHECK(strstr(out, "usage:") != NULL);
    CHECK_EQ(H_CLIENT(out, "frobnicate"), 2);
    CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
    CHECK_EQ(H_CLIENT(out, "--bogus", "ping"), 2);
    CHECK(strstr(out, "unknown option '--bogus'") != NULL);
    CHECK_EQ(H_CLIENT(out, "ping"), 2);
    CHECK(strstr(out, "--home DIR is required") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "", "ping"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "--timeout", "0", "ping"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "--timeout", "x", "ping"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "ping", "extra"), 2);
    CHECK(strstr(out, "unexpected argument 'extra'") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "enroll"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "enroll", "a", "b"), 2);
    CHECK_EQ(H_CLIENT(out, "--home"), 2);

    /* The sync and local commands. */
    static const char *const cmds[] = {"sync",      "new",     "edit",  "show",   "list",
                                       "conflicts", "resolve", "refer", "accept", "refuse"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[64];
        CHECK_EQ(H_CLIENT(out, cmds[i], "--help"), 0);
        snprintf(want, sizeof want, "usage: spro-client --home DIR %s ", cmds[i]);
        CHECK(strstr(out, want) != NULL);
        CHECK(strstr(out, "--json") != NULL);
    }
    const char *id = "0a2a57e7-eccb-456a-9999-58a0008fca1c";
    CHECK_EQ(H_CLIENT(out, "new", "beneficiary", "a=1"), 2);
    CHECK(strstr(out, "--home DIR is required") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "beneficiary"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "Bad-Type", "a=1"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "beneficiary", "noequals"), 2);
    CHECK(strstr(out, "is not FIELD=VALUE") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "beneficiary", "a=1", "a=2"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "beneficiary", "ben=x", "a=1"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "consent", "purpose=x"), 2);
    CHECK(strstr(out, "ben=UUID") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "consent", "ben=nope", "a=1"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "new", "--bogus", "beneficiary", "a=1"), 2);
    CHECK(strstr(out, "unknown option '--bogus'") != NULL);
    CHECK_EQ(
        H_CLIENT(out, "--home", "/nonexistent", "new", "beneficiary", "n=99999999999999999999"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "edit", id), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "edit", "not-an-id", "a=1"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "show"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "show", id, id), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "list", "a", "b"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "conflicts", "x"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "resolve", id, "phone"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "resolve", id, "bad name", "x"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "sync", "extra"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "refer", id), 2);
    CHECK(strstr(out, "expects ID --to ORG") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "refer", id, "--to"), 2);
    CHECK(strstr(out, "--to needs a value") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "refer", id, "--to", "o 2"), 2);
    CHECK(strstr(out, "not an organisation id") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "refer", id, "--to=o2", "--to=o3"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "refer", "nope", "--to", "o2"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "refer", id, "--to", "o2", "--bogus"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "accept"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "refuse", id, id), 2);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "accept", "not-an-id"), 2);
    /* A home that is not enrolled. */
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "list"), 1);
    CHECK(strstr(out, "not enrolled") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", "/nonexistent", "sync"), 1);
    CHECK(strstr(out, "not enrolled") != NULL);
}

/* ---- Sync between devices ---- */

/* A server with organisations o1 (counsellors u1, u2) and o2 (u3), and a
 * device for each counsellor: a and b in o1, c in o2. */
struct trio {
    struct env e;
    char a[600], b[600], c[600];
};

static bool enroll_user(const struct env *e, const char *user, const char *name, char *home,
                        size_t hcap)
{
    char ticket[512], out[4096];
    home_path(home, hcap, name);
    if (!invite_user(e->data, user, e->url, ticket, sizeof ticket))
        return false;
    int rc = H_CLIENT(out, "--home", home, "enroll", ticket);
    if (rc != 0) {
        fprintf(stderr, "spro-client enroll exited %d: %s\n", rc, out);
        return false;
    }
    return true;
}

/* A server (extra arguments NULL-terminated, or NULL) with o1 (u1, u2)
 * and o2 (u3); devices a (u1), b (u2), c (u3). */
static bool trio_start_with(struct trio *t, const char *name, const char *const *extra)
{
    char out[4096], ha[64], hb[64], hc[64];
    if (!start(&t->e, name, extra, false))
        return false;
    if (H_ADMIN(out, "--data", t->e.data, "user", "add", "u2", "--org", "o1") != 0 ||
        H_ADMIN(out, "--data", t->e.data, "org", "add", "o2", "--name", "Mission locale Sud",
                "--kind", "mission-locale") != 0 ||
        H_ADMIN(out, "--data", t->e.data, "user", "add", "u3", "--org", "o2") != 0) {
        fprintf(stderr, "spro-admin set-up failed: %s\n", out);
        return false;
    }
    snprintf(ha, sizeof ha, "%s-a", name);
    snprintf(hb, sizeof hb, "%s-b", name);
    snprintf(hc, sizeof hc, "%s-c", name);
    return enroll_user(&t->e, "u1", ha, t->a, sizeof t->a) &&
           enroll_user(&t->e, "u2", hb, t->b, sizeof t->b) &&
           enroll_user(&t->e, "u3", hc, t->c, sizeof t->c);
}

static bool trio_start(struct trio *t, const char *name)
{
    return trio_start_with(t, name, NULL);
}

/* spro-client sync on home; its output into out; true on exit 0. */
static bool sync_ok(const char *home, char *out, size_t cap)
{
    int rc = h_runl(out, cap, h_client_bin, "--home", home, "sync", (const char *)NULL);
    if (rc != 0)
        fprintf(stderr, "spro-client sync exited %d: %s\n", rc, out);
    return rc == 0;
}

/* A new beneficiary on home: its id into id. */
static bool new_beneficiary(const char *home, const char *family, char *id, size_t cap)
{
    char out[4096], arg[128], enrol[64];
    snprintf(arg, sizeof arg, "family_name=%s", family);
    int rc = H_CLIENT(out, "--home", home, "new", "beneficiary", "given_name=Léa", arg);
    if (rc != 0 || !h_line_value(out, "id: ", id, cap) ||
        !h_line_value(out, "enrolment: ", enrol, sizeof enrol)) {
        fprintf(stderr, "spro-client new exited %d: %s\n", rc, out);
        return false;
    }
    return strlen(id) == 36 && strlen(enrol) == 36;
}

static void test_sync_same_field_conflict(void)
{
    struct trio t;
    CHECK(trio_start(&t, "conflict"));
    char id[64], out[4096], want[256];
    CHECK(new_beneficiary(t.a, "Martin", id, sizeof id));
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", id, "phone:=0601"), 0);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 3 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "pushed: 0 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(strstr(out, "pulled: 2 records\n") != NULL); /* the beneficiary and its enrolment */
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "list", "beneficiary"), 0);
    snprintf(want, sizeof want, "beneficiary %s \"Léa Martin\"\n", id);
    CHECK_STR(out, want);
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "show", id), 0);
    CHECK(strstr(out, "phone: \"0601\"\n") != NULL);

    /* Both edit the phone offline. */
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", id, "phone:=0611"), 0);
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "edit", id, "phone:=0622"), 0);
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "show", id), 0);
    CHECK(strstr(out, "phone: \"0622\" (unsynced)\n") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "pushed: 0 acked, 1 conflicts, 0 rejected\n") != NULL);
    CHECK(strstr(out, "in conflict: 1 fields") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "in conflict: 1 fields") != NULL);

    /* Both devices list both values, with their authors. */
    const char *homes[2] = {t.a, t.b};
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "conflicts"), 0);
        snprintf(want, sizeof want, "beneficiary %s phone: 2 values\n", id);
        CHECK(strstr(out, want) != NULL);
        CHECK(strstr(out, "  \"0611\"  by u1, version ") != NULL);
        CHECK(strstr(out, "  \"0622\"  by u2, version ") != NULL);
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "show", id), 0);
        CHECK(strstr(out, " (conflict: 2 values)\n") != NULL);
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "conflicts", "--json"), 0);
        CHECK(strstr(out, "\"field\": \"phone\"") != NULL);
        CHECK(strstr(out, "{\"value\": \"0611\", \"by\": \"u1\", \"version\": [") != NULL);
    }

    /* Resolved on a: after both sync, one value everywhere. */
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "resolve", id, "given_name", "Zoé"), 1);
    CHECK(strstr(out, "not in conflict") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "resolve", id, "phone", "0633"), 0);
    CHECK(strstr(out, "resolved: ") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(strstr(out, "in conflict") == NULL);
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "in conflict") == NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "show", id), 0);
        CHECK(strstr(out, "phone: \"0633\"\n") != NULL);
        CHECK(strstr(out, "conflict") == NULL && strstr(out, "unsynced") == NULL);
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "conflicts"), 0);
        CHECK_STR(out, "");
    }
    h_server_stop(&t.e.s, 5000);
}

static void test_sync_different_fields_merge(void)
{
    struct trio t;
    CHECK(trio_start(&t, "merge"));
    char id[64], out[4096];
    CHECK(new_beneficiary(t.a, "Durand", id, sizeof id));
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", id, "home_region=Hauts-de-France"), 0);
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "edit", id, "email=l.durand@example.fr", "dropout=true"),
             0);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    const char *homes[2] = {t.a, t.b};
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "show", id), 0);
        CHECK(strstr(out, "home_region: \"Hauts-de-France\"\n") != NULL);
        CHECK(strstr(out, "email: \"l.durand@example.fr\"\n") != NULL);
        CHECK(strstr(out, "dropout: true\n") != NULL);
        CHECK(strstr(out, "family_name: \"Durand\"\n") != NULL);
        CHECK(strstr(out, "conflict") == NULL && strstr(out, "unsynced") == NULL);
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "show", "--json", id), 0);
        CHECK(strstr(out, "\"dropout\": {\"value\": true, \"unsynced\": false, \"conflict\": "
                          "false, \"siblings\": [{\"value\": true, \"by\": \"u2\"") != NULL);
    }

    /* A value the server's schema refuses: rejected, printed, quarantined;
     * the field shows the server's value again. */
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", id, "dropout:=maybe"), 0);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 0 acked, 0 conflicts, 1 rejected\n") != NULL);
    char want[256];
    snprintf(want, sizeof want, "(beneficiary %s): bad_value (kept in the local quarantine)\n", id);
    CHECK(strstr(out, "rejected: op ") != NULL && strstr(out, want) != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "show", id), 0);
    CHECK(strstr(out, "dropout: true\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", id, "dropout:=perhaps"), 0);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "sync", "--json"), 0);
    CHECK(strstr(out, "{\"pushed\": {\"acked\": 0, \"conflicts\": 0, \"rejected\": 1}, "
                      "\"pulled\": ") != NULL);
    CHECK(strstr(out, "\"rejected_ops\": [{\"seq\": ") != NULL);
    snprintf(want, sizeof want,
             "\"type\": \"beneficiary\", \"id\": \"%s\", \"code\": "
             "\"bad_value\"}]}\n",
             id);
    CHECK(strstr(out, want) != NULL);
    /* Both refused ops stay listed on the device. */
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "quarantine"), 0);
    CHECK(strstr(out, ": bad_value\n") != NULL);
    CHECK(strstr(strstr(out, ": bad_value\n") + 1, ": bad_value\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "quarantine", "--json"), 0);
    CHECK(strncmp(out, "[\n  {\"seq\": ", 12) == 0 &&
          strstr(out, "\"code\": \"bad_value\"") != NULL);
    h_server_stop(&t.e.s, 5000);
}

static void test_sync_other_org_sees_nothing(void)
{
    struct trio t;
    CHECK(trio_start(&t, "scope"));
    char id[64], out[4096];
    CHECK(new_beneficiary(t.a, "Petit", id, sizeof id));
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pulled: 0 records\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "list"), 0);
    CHECK_STR(out, "");
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "list", "--json"), 0);
    CHECK_STR(out, "[]\n");
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "show", id), 1);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "sync", "--json"), 0);
    CHECK_STR(out, "{\"pushed\": {\"acked\": 0, \"conflicts\": 0, \"rejected\": 0}, "
                   "\"pulled\": 0, \"in_conflict\": 0, \"rejected_ops\": []}\n");
    /* Still nothing after more edits on a. */
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", id, "situation=school"), 0);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pulled: 0 records\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "list"), 0);
    CHECK_STR(out, "");

    /* Offline: the sync fails, the edit waits, nothing is lost. */
    h_server_stop(&t.e.s, 5000);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", id, "situation=work"), 0);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "sync"), 1);
    CHECK(strstr(out, "cannot reach the server") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "show", id), 0);
    CHECK(strstr(out, "situation: \"work\" (unsynced)\n") != NULL);
}

/*
 * A transfer between organisations with real processes: a (o1) refers a
 * beneficiary to o2 as a transfer; c (o2) receives the referral alone,
 * accepts it, then receives the beneficiary's records without o1's note;
 * a and b (o1) delete their copies at their next sync and receive nothing
 * of it afterwards.
 */
static void test_sync_transfer(void)
{
    struct trio t;
    CHECK(trio_start(&t, "transfer"));
    char id[64], inter[64], ref[64], other[64], ben_arg[80], out[8192], want[256];
    CHECK(new_beneficiary(t.a, "Moreau", id, sizeof id));
    snprintf(ben_arg, sizeof ben_arg, "ben=%s", id);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "new", "interaction", ben_arg, "kind=visit",
                      "note=NOTE-OF-O1-ONLY"),
             0);
    CHECK(h_line_value(out, "id: ", inter, sizeof inter));
    CHECK(new_beneficiary(t.a, "Stays", other, sizeof other));
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 5 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "pulled: 5 records\n") != NULL);
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pulled: 0 records\n") != NULL);

    /* a refers: refused offline for an unknown beneficiary or its own
     * organisation. */
    CHECK_EQ(
        H_CLIENT(out, "--home", t.a, "refer", "0a2a57e7-eccb-456a-9999-58a0008fca1c", "--to", "o2"),
        1);
    CHECK(strstr(out, "no beneficiary") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "refer", id, "--to", "o1"), 2);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "refer", id, "--to", "o2", "--reason", "moves to Lille",
                      "--transfer"),
             0);
    CHECK(h_line_value(out, "id: ", ref, sizeof ref));
    CHECK_EQ(strlen(ref), 36);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);

    /* c: the referral alone. */
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pulled: 1 records\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "list", "referral"), 0);
    snprintf(want, sizeof want, "referral %s\n", ref);
    CHECK_STR(out, want);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "list", "beneficiary"), 0);
    CHECK_STR(out, "");
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "show", ref), 0);
    CHECK(strstr(out, "from_org: \"o1\"\n") != NULL && strstr(out, "to_org: \"o2\"\n") != NULL);
    CHECK(strstr(out, "kind: \"transfer\"\n") != NULL);
    CHECK(strstr(out, "reason: \"moves to Lille\"\n") != NULL);
    CHECK(strstr(out, "status: \"proposed\"\n") != NULL);

    /* Only o2 answers it, once. */
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "accept", ref), 1);
    CHECK(strstr(out, "addressed to \"o2\", not to this device's organisation (o1)") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "accept", id), 1);
    CHECK(strstr(out, "no record") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "accept", "--json", ref), 0);
    CHECK(strstr(out, "{\"id\": \"") != NULL && strstr(out, "\"seq\": ") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "refuse", ref), 1);
    CHECK(strstr(out, "is \"accepted\", not proposed") != NULL);
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(strstr(out, "pulled: 4 records\n") != NULL);

    /* c now holds the beneficiary, without o1's note. */
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "list", "beneficiary"), 0);
    snprintf(want, sizeof want, "beneficiary %s \"Léa Moreau\"\n", id);
    CHECK_STR(out, want);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "show", inter), 0);
    CHECK(strstr(out, "kind: \"visit\"\n") != NULL);
    CHECK(strstr(out, "note") == NULL && strstr(out, "NOTE-OF-O1-ONLY") == NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "show", ref), 0);
    CHECK(strstr(out, "status: \"accepted\"\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "refuse", id), 1);
    CHECK(strstr(out, "is a beneficiary, not a referral") != NULL);

    /* a and b: every record of it removed; the other beneficiary stays. */
    const char *homes[2] = {t.a, t.b};
    for (int i = 0; i < 2; i++) {
        CHECK(sync_ok(homes[i], out, sizeof out));
        CHECK(strstr(out, "pulled: 4 records\n") != NULL);
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "list"), 0);
        CHECK(strstr(out, id) == NULL && strstr(out, inter) == NULL && strstr(out, ref) == NULL);
        CHECK(strstr(out, other) != NULL);
        CHECK_EQ(H_CLIENT(out, "--home", homes[i], "show", id), 1);
    }

    /* Afterwards: c's edits never reach o1. */
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "edit", id, "situation=apprentice"), 0);
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pulled: 0 records\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "list", "--json"), 0);
    CHECK(strstr(out, id) == NULL);
    h_server_stop(&t.e.s, 5000);
}

/* a goes quiet with an unsynced edit while a transfer's removal events
 * are purged past it (idle devices stop holding the horizon after 2 s
 * here).  Its next sync pushes the edit (acked), is told to reset, and
 * downloads a snapshot: the transferred beneficiary is gone, its own edit
 * is kept, nothing is lost. */
static void test_sync_reset_beyond_horizon(void)
{
    static const char *const extra[] = {"--sync-idle-horizon", "2", NULL};
    struct trio t;
    CHECK(trio_start_with(&t, "horizon", extra));
    char id[64], ref[64], other[64], out[8192];
    CHECK(new_beneficiary(t.a, "Moreau", id, sizeof id));
    CHECK(new_beneficiary(t.a, "Stays", other, sizeof other));
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 4 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "pulled: 4 records\n") != NULL);
    CHECK(sync_ok(t.c, out, sizeof out));

    /* a, offline: an edit waits in its outbox. */
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", other, "situation=apprentice"), 0);

    /* b transfers Moreau to o2; c accepts; b receives the removals. */
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "refer", id, "--to", "o2", "--transfer"), 0);
    CHECK(h_line_value(out, "id: ", ref, sizeof ref));
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "accept", ref), 0);
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pulled: 3 records\n") != NULL);
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "pulled: 3 records\n") != NULL);

    /* a is idle past the horizon; b and c acknowledge past the removals:
     * they are purged. */
    usleep(2500 * 1000);
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "reset") == NULL);

    /* a returns: its edit is accepted first, then it starts again. */
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(strstr(out, "reset: this device was beyond the server's sync horizon") != NULL);
    CHECK(strstr(out, "pulled: 2 records\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "list"), 0);
    CHECK(strstr(out, id) == NULL && strstr(out, ref) == NULL);
    CHECK(strstr(out, other) != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "show", other), 0);
    CHECK(strstr(out, "situation: \"apprentice\"\n") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 0 acked") != NULL && strstr(out, "reset") == NULL);

    /* b sees a's edit. */
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "show", other), 0);
    CHECK(strstr(out, "situation: \"apprentice\"\n") != NULL);
    h_server_stop(&t.e.s, 5000);
}

/* A referral that c refuses: nothing moves; a still holds the beneficiary,
 * c the refused referral alone. */
static void test_sync_referral_refused(void)
{
    struct trio t;
    CHECK(trio_start(&t, "refuse"));
    char id[64], ref[64], out[8192], want[256];
    CHECK(new_beneficiary(t.a, "Roux", id, sizeof id));
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "refer", "--json", id, "--to=o2"), 0);
    CHECK(strncmp(out, "{\"id\": \"", 8) == 0 && strlen(out) > 8 + 36);
    memcpy(ref, out + 8, 36);
    ref[36] = '\0';
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pulled: 1 records\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "show", ref), 0);
    CHECK(strstr(out, "kind: \"referral\"\n") != NULL && strstr(out, "reason") == NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "refuse", ref), 0);
    snprintf(want, sizeof want, "refused: %s (op ", ref);
    CHECK(strstr(out, want) != NULL);
    CHECK(sync_ok(t.c, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.c, "list"), 0);
    snprintf(want, sizeof want, "referral %s\n", ref);
    CHECK_STR(out, want);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pulled: 1 records\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "show", ref), 0);
    CHECK(strstr(out, "status: \"refused\"\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "show", id), 0);
    h_server_stop(&t.e.s, 5000);
}

/* Two beneficiaries with the same INE, created by a counsellor (a) and a
 * supervisor (s) of one organisation: the supervisor sees the duplicate,
 * merges, and the counsellor's later edit of the merged id lands on the
 * kept one; the counsellor never sees duplicates and may not merge. */
static void test_sync_duplicates_and_merge(void)
{
    struct trio t;
    CHECK(trio_start(&t, "dup"));
    char sup[600], out[8192], keep[64], other[64], want[256];
    CHECK_EQ(H_ADMIN(out, "--data", t.e.data, "user", "add", "s1", "--org", "o1", "--role",
                     "supervisor"),
             0);
    CHECK(enroll_user(&t.e, "s1", "dup-s", sup, sizeof sup));
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "new", "beneficiary", "given_name=Lea",
                      "family_name=Martin", "ine=1234567890A"),
             0);
    CHECK(h_line_value(out, "id: ", keep, sizeof keep));
    CHECK_EQ(H_CLIENT(out, "--home", sup, "new", "beneficiary", "given_name=Léa",
                      "family_name=Martin", "ine=1234567890a"),
             0);
    CHECK(h_line_value(out, "id: ", other, sizeof other));
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(sync_ok(sup, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", sup, "duplicates"), 0);
    CHECK(strstr(out, keep) != NULL && strstr(out, other) != NULL &&
          strstr(out, " ine open ") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "duplicates"), 0);
    CHECK(strstr(out, other) == NULL); /* counsellors do not get duplicates */
    CHECK(H_CLIENT(out, "--home", t.a, "merge", keep, other) != 0);
    CHECK_EQ(H_CLIENT(out, "--home", sup, "merge", keep, other), 0);
    CHECK(sync_ok(sup, out, sizeof out));
    CHECK(strstr(out, "0 rejected") != NULL);
    CHECK(sync_ok(t.a, out, sizeof out));
    /* The counsellor still holds the merged id: its edit is re-pointed. */
    CHECK_EQ(H_CLIENT(out, "--home", t.a, "edit", other, "situation=apprentice"), 0);
    CHECK(sync_ok(t.a, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(sup, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", sup, "show", keep), 0);
    snprintf(want, sizeof want, "situation: \"apprentice\"\n");
    CHECK(strstr(out, want) != NULL);
    h_server_stop(&t.e.s, 5000);
}

/* ---- A sync cut at any byte ---- */

/* A TCP relay in a child process between devices and the server, which
 * can cut the server's answers: the plan file holds "RUN BUDGET"; from
 * the first connection of a new RUN on, at most BUDGET bytes (all
 * connections together; -1: no limit) go from the server to the device,
 * then the connection is closed.  The bytes relayed in the current run
 * are written to the stats file after each connection. */
struct relay {
    pid_t pid;
    int port;
    char plan[600], stats[600];
};

static void relay_write(const char *path, long a, long b)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "%ld %ld\n", a, b);
    fclose(f);
    rename(tmp, path);
}

static void relay_read(const char *path, long *a, long *b)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fscanf(f, "%ld %ld", a, b) != 2)
        *a = *b = -1;
    if (f != NULL)
        fclose(f);
}

static _Noreturn void relay_loop(int lfd, int server_port, const char *plan, const char *stats)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(600);
    long run = -2, budget = -1, used = 0;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        long r, b;
        relay_read(plan, &r, &b);
        if (r != run) {
            run = r;
            budget = b;
            used = 0;
        }
        int sfd = h_connect(server_port, NULL);
        struct pollfd pf[2] = {{c, POLLIN, 0}, {sfd, POLLIN, 0}};
        bool live = sfd >= 0 && (budget < 0 || used < budget);
        while (live && poll(pf, 2, 30000) > 0) {
            char buf[4096];
            if (pf[0].revents != 0) {
                ssize_t n = read(c, buf, sizeof buf);
                if (n <= 0 || write(sfd, buf, (size_t)n) != n)
                    live = false;
            }
            if (live && pf[1].revents != 0) {
                ssize_t n = read(sfd, buf, sizeof buf);
                if (n > 0 && budget >= 0 && n > budget - used)
                    n = budget - used;
                if (n <= 0 || write(c, buf, (size_t)n) != n)
                    live = false;
                else
                    used += n;
                if (budget >= 0 && used >= budget)
                    live = false;
            }
        }
        close(c);
        if (sfd >= 0)
            close(sfd);
        relay_write(stats, run, used);
    }
}

static bool relay_start(struct relay *rl, int server_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t slen = sizeof sa;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &slen) != 0)
        return false;
    rl->port = ntohs(sa.sin_port);
    snprintf(rl->plan, sizeof rl->plan, "%s/relay-plan", h_tmpdir());
    snprintf(rl->stats, sizeof rl->stats, "%s/relay-stats", h_tmpdir());
    relay_write(rl->plan, 0, -1);
    fflush(NULL);
    if ((rl->pid = fork()) == 0)
        relay_loop(fd, server_port, rl->plan, rl->stats);
    close(fd);
    return rl->pid > 0;
}

static void relay_stop(struct relay *rl)
{
    kill(rl->pid, SIGKILL);
    waitpid(rl->pid, NULL, 0);
}

/*
 * Device a reaches the server through the relay.  Round after round it
 * edits its beneficiary (the field `note`, and a field of its own per
 * round), then syncs with the server's answers cut after n bytes, n swept
 * across the whole of a sync (handshake, push, pull), then syncs again
 * without a cut: that one must succeed, with every edit acked once and no
 * conflict.  At the end device b holds every round's value.
 */
static void test_sync_resumes_after_cuts(void)
{
    struct trio t;
    CHECK(trio_start(&t, "cuts"));
    struct relay rl;
    CHECK(relay_start(&rl, t.e.s.port));
    char url[64], ticket[512], out[4096], home[600], id[64], f[32], v[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rl.port);
    CHECK(invite_user(t.e.data, "u1", url, ticket, sizeof ticket));
    home_path(home, sizeof home, "cuts-relay");
    CHECK_EQ(H_CLIENT(out, "--home", home, "enroll", ticket), 0);
    CHECK(new_beneficiary(home, "Cut", id, sizeof id));
    CHECK(sync_ok(home, out, sizeof out));
    CHECK(sync_ok(t.b, out, sizeof out));

    /* The bytes of one whole sync of a round, measured. */
    long plan = 1, r, total;
    CHECK_EQ(H_CLIENT(out, "--home", home, "edit", id, "note=measure"), 0);
    relay_write(rl.plan, plan++, -1);
    CHECK(sync_ok(home, out, sizeof out));
    relay_read(rl.stats, &r, &total);
    CHECK(total > 300);

    enum { ROUNDS = 40 };
    int cut = 0;
    for (int k = 0; k < ROUNDS; k++) {
        snprintf(f, sizeof f, "f%d=%d", k, k);
        snprintf(v, sizeof v, "note=round %d", k);
        CHECK_EQ(H_CLIENT(out, "--home", home, "edit", id, f, v), 0);
        relay_write(rl.plan, plan++, total * k / ROUNDS);
        int rc = H_CLIENT(out, "--home", home, "sync");
        CHECK(rc == 0 || rc == 1);
        cut += rc == 1;
        relay_write(rl.plan, plan++, -1);
        CHECK(sync_ok(home, out, sizeof out));
        CHECK(strstr(out, " 0 conflicts, 0 rejected\n") != NULL);
        CHECK(strstr(out, "in conflict") == NULL);
        CHECK_EQ(H_CLIENT(out, "--home", home, "show", id), 0);
        CHECK(strstr(out, "unsynced") == NULL && strstr(out, "conflict") == NULL);
    }
    relay_stop(&rl);
    CHECK_EQ(cut, ROUNDS); /* each round's sync is longer than the one measured */
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "show", id), 0);
    snprintf(v, sizeof v, "note: \"round %d\"\n", ROUNDS - 1);
    CHECK(strstr(out, v) != NULL);
    for (int k = 0; k < ROUNDS; k++) {
        snprintf(f, sizeof f, "\nf%d: %d\n", k, k);
        CHECK(strstr(out, f) != NULL);
    }
    CHECK(strstr(out, "conflict") == NULL);
    h_server_stop(&t.e.s, 5000);
}

/* Fills argv[0..10) with "FIELD:=" and 4,000 bytes of `tag` made unique
 * by i, for ten string fields of a beneficiary (buf: 10 x 4,100 bytes). */
#define LONG_FIELDS 10
static void long_fields(char (*buf)[4100], const char **argv, char tag, int i)
{
    static const char *const names[LONG_FIELDS] = {
        "family_name", "given_name",  "phone",         "email",       "address",
        "guardian",    "home_region", "qualification", "last_school", "situation"};
    for (int f = 0; f < LONG_FIELDS; f++) {
        int n = snprintf(buf[f], 4100, "%s:=%c%04d-", names[f], tag, i);
        memset(buf[f] + n, tag, 4000 - 6);
        buf[f][n + 4000 - 6] = '\0';
        argv[f] = buf[f];
    }
}

/* A push whose answer would exceed a sealed message (4 MiB): five devices
 * of one organisation edit ten 4 KB fields of the same 25 records offline;
 * the last to sync sends 25 ops in one push (about 1 MB) whose conflict
 * answer lists five siblings of every field, about 5 MB.  The server
 * answers too_long (the ops are applied, their answers kept); spro-client
 * sends the same ops again in halves and gets every answer: nothing is
 * lost, nothing stays in the outbox. */
static void test_sync_answer_too_long_is_halved(void)
{
    enum { N = 25, DEVICES = 5 };
    struct trio t;
    CHECK(trio_start(&t, "halved"));
    static char ids[N][64], buf[LONG_FIELDS][4100], more[3][600];
    char out[8192];
    const char *homes[DEVICES] = {t.a, more[0], more[1], more[2], t.b};
    for (int d = 0; d < 3; d++) {
        char user[8], name[32];
        snprintf(user, sizeof user, "u%d", 4 + d);
        snprintf(name, sizeof name, "halved-%d", d);
        CHECK_EQ(H_ADMIN(out, "--data", t.e.data, "user", "add", user, "--org", "o1"), 0);
        CHECK(enroll_user(&t.e, user, name, more[d], sizeof more[d]));
    }
    const char *args[32];
    for (int i = 0; i < N; i++) {
        long_fields(buf, args + 5, 'a', i);
        args[0] = h_client_bin, args[1] = "--home", args[2] = t.a, args[3] = "new";
        args[4] = "beneficiary", args[5 + LONG_FIELDS] = NULL;
        CHECK_EQ(h_run(args, out, sizeof out), 0);
        CHECK(h_line_value(out, "id: ", ids[i], sizeof ids[i]));
    }
    for (int d = 0; d < DEVICES; d++)
        CHECK(sync_ok(homes[d], out, sizeof out));
    /* Every device edits every field of every record offline. */
    for (int d = 0; d < DEVICES; d++)
        for (int i = 0; i < N; i++) {
            long_fields(buf, args + 5, (char)('p' + d), i);
            args[0] = h_client_bin, args[1] = "--home", args[2] = homes[d], args[3] = "edit";
            args[4] = ids[i], args[5 + LONG_FIELDS] = NULL;
            CHECK_EQ(h_run(args, out, sizeof out), 0);
        }
    for (int d = 0; d < DEVICES - 1; d++)
        CHECK(sync_ok(homes[d], out, sizeof out));
    CHECK(sync_ok(t.b, out, sizeof out));
    CHECK(strstr(out, "the answer to 25 ops is too long; sending 12 at a time") != NULL);
    CHECK(strstr(out, "pushed: 0 acked, 25 conflicts, 0 rejected\n") != NULL);
    CHECK(sync_ok(t.b, out, sizeof out)); /* the outbox is empty */
    CHECK(strstr(out, "pushed: 0 acked, 0 conflicts, 0 rejected\n") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", t.b, "show", ids[N - 1]), 0);
    CHECK(strstr(out, "(conflict: 5 values)") != NULL);
    h_server_stop(&t.e.s, 5000);
}

static const struct check_test tests[] = {
    {"enroll_then_ping", test_enroll_then_ping},
    {"enroll_from_stdin", test_enroll_from_stdin},
    {"enroll_twice_refused", test_enroll_twice_refused},
    {"bad_ticket", test_bad_ticket},
    {"ticket_for_another_server", test_ticket_for_another_server},
    {"reused_ticket", test_reused_ticket},
    {"revoked", test_revoked},
    {"wipe", test_wipe},
    {"not_enrolled", test_not_enrolled},
    {"network_errors", test_network_errors},
    {"tls", test_tls},
    {"help_and_usage", test_help_and_usage},
    {"sync_same_field_conflict", test_sync_same_field_conflict},
    {"sync_different_fields_merge", test_sync_different_fields_merge},
    {"sync_other_org_sees_nothing", test_sync_other_org_sees_nothing},
    {"sync_transfer", test_sync_transfer},
    {"sync_reset_beyond_horizon", test_sync_reset_beyond_horizon},
    {"sync_referral_refused", test_sync_referral_refused},
    {"sync_duplicates_and_merge", test_sync_duplicates_and_merge},
    {"sync_resumes_after_cuts", test_sync_resumes_after_cuts},
    {"sync_answer_too_long_is_halved", test_sync_answer_too_long_is_halved},
};

int main(int argc, char **argv)
{
    if (argc < 4 || strstr(argv[3], "spro-client") == NULL) {
        fprintf(stderr, "usage: %s SPRO_SERVER SPRO_ADMIN SPRO_CLIENT [TEST]...\n", argv[0]);
        return 2;
    }
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
