/*
 * test_client.c: end-to-end tests of spro-client against real spro-server
 * processes, set up with spro-admin: enrolment (and its refusals: a bad
 * ticket string, a ticket for another server, a used ticket, a home that is
 * already enrolled), ping, revocation, the wipe order, the home's file
 * modes, network failures and time-outs, TLS, help and usage errors.
 *
 * usage: test_e2e_client SPRO_SERVER SPRO_ADMIN SPRO_CLIENT [TEST]...
 */
#include "check.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Runs bin with the NULL-terminated arguments; output into out. */
static int run(char *out, size_t cap, const char *bin, ...)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = bin;
    va_list ap;
    va_start(ap, bin);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return h_run(argv, out, cap);
}

#define ADMIN(out, ...) run(out, sizeof out, h_admin_bin, __VA_ARGS__, (const char *)NULL)
#define CLIENT(out, ...) run(out, sizeof out, h_client_bin, __VA_ARGS__, (const char *)NULL)

/* The value after `prefix` on its line of out, copied into val. */
static bool line_value(const char *out, const char *prefix, char *val, size_t cap)
{
    const char *p = strstr(out, prefix);
    if (p == NULL || cap == 0)
        return false;
    p += strlen(prefix);
    size_t n = strcspn(p, "\r\n");
    if (n >= cap)
        return false;
    memcpy(val, p, n);
    val[n] = '\0';
    return true;
}

/* A data directory with organisation o1 and counsellor u1. */
static bool make_data(char *data, size_t cap, const char *name)
{
    char out[4096];
    snprintf(data, cap, "%s", h_make_datadir(name));
    if (ADMIN(out, "--data", data, "org", "add", "o1", "--name", "CIO Nord", "--kind", "cio") !=
            0 ||
        ADMIN(out, "--data", data, "user", "add", "u1", "--org", "o1") != 0) {
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

/* A ticket for u1 from data directory `data`, naming url. */
static bool invite(const char *data, const char *url, char *ticket, size_t cap)
{
    char out[4096];
    if (ADMIN(out, "--data", data, "device", "invite", "--user", "u1", "--url", url, "--no-qr") !=
            0 ||
        !line_value(out, "ticket: ", ticket, cap)) {
        fprintf(stderr, "spro-admin device invite failed: %s\n", out);
        return false;
    }
    return true;
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
    if (slurp(home, "state", st, sizeof st) < 0 || !line_value(st, "last_ts=", v, sizeof v))
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
    int rc = CLIENT(out, "--home", home, "enroll", ticket);
    if (rc != 0 || !line_value(out, "device: ", id, idcap)) {
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
    CHECK_EQ(CLIENT(out, "--home", home, "enroll", ticket), 0);
    CHECK(line_value(out, "device: ", id, sizeof id));
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
    CHECK_EQ(ADMIN(info, "--data", e.data, "info"), 0);
    CHECK(line_value(info, "noise public key: ", pk, sizeof pk));
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
    CHECK_EQ(CLIENT(out, "--home", home, "ping"), 0);
    snprintf(want, sizeof want, "device: %s\nuser: u1\norg: o1\nrole: counsellor\n", id);
    CHECK_STR(out, want);
    unsigned long long ts2 = last_ts(home);
    CHECK(ts2 > ts1);
    /* Each run opens its own session, with a newer timestamp. */
    CHECK_EQ(CLIENT(out, "--home", home, "ping"), 0);
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
    CHECK_EQ(CLIENT(out, "--home", home, "ping"), 0);
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
    CHECK_EQ(CLIENT(out, "--home", home, "enroll", t2), 1);
    CHECK(strstr(out, "already holds an enrolled device") != NULL);
    CHECK(strstr(out, id) != NULL);
    CHECK(slurp(home, "state", after, sizeof after) > 0);
    CHECK_STR(before, after);
    /* The refusal came before the network: the second ticket still works. */
    char home2[600];
    home_path(home2, sizeof home2, "home-twice-2");
    CHECK_EQ(CLIENT(out, "--home", home2, "enroll", t2), 0);
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
        CHECK_EQ(CLIENT(out, "--home", home, "enroll", bad[i]), 2);
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
    CHECK_EQ(CLIENT(out, "--home", home, "enroll", ticket), 1);
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
    CHECK_EQ(CLIENT(out, "--home", h1, "enroll", ticket), 0);
    CHECK_EQ(CLIENT(out, "--home", h2, "enroll", ticket), 1);
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
    CHECK_EQ(ADMIN(out, "--data", e.data, "device", "revoke", id), 0);
    CHECK_EQ(CLIENT(out, "--home", home, "ping"), 3);
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
    CHECK_EQ(ADMIN(out, "--data", e.data, "device", "wipe", id), 0);
    CHECK_EQ(CLIENT(out, "--home", home, "ping"), 4);
    CHECK(strstr(out, "wipe order received: local data erased") != NULL);
    CHECK(!exists(home, "device.key") && !exists(home, "state"));
    CHECK(!exists(home, "device.key.tmp") && !exists(home, "state.tmp"));
    CHECK_EQ(CLIENT(out, "--home", home, "ping"), 1);
    CHECK(strstr(out, "not enrolled") != NULL);
    h_server_stop(&e.s, 5000);
}

static void test_not_enrolled(void)
{
    char home[600], out[4096];
    home_path(home, sizeof home, "home-never");
    CHECK_EQ(CLIENT(out, "--home", home, "ping"), 1);
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
    CHECK_EQ(CLIENT(out, "--home", home, "enroll", ticket), 1);
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
    int rc = CLIENT(out, "--home", home, "--timeout", "1", "enroll", ticket);
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
    CHECK_EQ(CLIENT(out, "--home", home, "enroll", ticket), 1);
    CHECK(strstr(out, "certificate") != NULL && strstr(out, "--insecure") != NULL);
    CHECK(access(home, F_OK) != 0);
    CHECK_EQ(CLIENT(out, "--home", home, "--insecure", "enroll", ticket), 0);
    CHECK(strstr(out, "device: ") != NULL);
    CHECK_EQ(CLIENT(out, "--insecure", "--home", home, "ping"), 0);
    CHECK(strstr(out, "user: u1\norg: o1\n") != NULL);
    h_server_stop(&e.s, 5000);
}

static void test_help_and_usage(void)
{
    char out[4096];
    CHECK_EQ(CLIENT(out, "--help"), 0);
    CHECK(strstr(out, "enroll") != NULL && strstr(out, "ping") != NULL);
    CHECK(strstr(out, "--timeout") != NULL && strstr(out, "--insecure") != NULL);
    CHECK_EQ(CLIENT(out, "enroll", "--help"), 0);
    CHECK(strstr(out, "usage: spro-client --home DIR enroll TICKET") != NULL);
    CHECK_EQ(CLIENT(out, "ping", "--help"), 0);
    CHECK(strstr(out, "usage: spro-client --home DIR ping") != NULL);
    CHECK_EQ(CLIENT(out, "--version"), 0);
    CHECK_EQ(strncmp(out, "spro-client ", 12), 0);

    const char *argv[] = {h_client_bin, NULL};
    CHECK_EQ(h_run(argv, out, sizeof out), 2);
    CHECK(strstr(out, "usage:") != NULL);
    CHECK_EQ(CLIENT(out, "frobnicate"), 2);
    CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
    CHECK_EQ(CLIENT(out, "--bogus", "ping"), 2);
    CHECK(strstr(out, "unknown option '--bogus'") != NULL);
    CHECK_EQ(CLIENT(out, "ping"), 2);
    CHECK(strstr(out, "--home DIR is required") != NULL);
    CHECK_EQ(CLIENT(out, "--home", "", "ping"), 2);
    CHECK_EQ(CLIENT(out, "--home", "/nonexistent", "--timeout", "0", "ping"), 2);
    CHECK_EQ(CLIENT(out, "--home", "/nonexistent", "--timeout", "x", "ping"), 2);
    CHECK_EQ(CLIENT(out, "--home", "/nonexistent", "ping", "extra"), 2);
    CHECK(strstr(out, "unexpected argument 'extra'") != NULL);
    CHECK_EQ(CLIENT(out, "--home", "/nonexistent", "enroll"), 2);
    CHECK_EQ(CLIENT(out, "--home", "/nonexistent", "enroll", "a", "b"), 2);
    CHECK_EQ(CLIENT(out, "--home"), 2);
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
};

int main(int argc, char **argv)
{
    if (argc < 4 || strstr(argv[3], "spro-client") == NULL) {
        fprintf(stderr, "usage: %s SPRO_SERVER SPRO_ADMIN SPRO_CLIENT [TEST]...\n", argv[0]);
        return 2;
    }
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
