/*
 * test_admin.c: end-to-end tests of the spro-admin command line: init,
 * info, organisations, users, device tickets (the printed ticket parses, is
 * bound to the server's key and redeems), device listing, revocation and
 * wipe orders while spro-server runs on the same data directory, subject
 * erase with its reason in a file, help on every command, and clear
 * refusals of bad input.
 *
 * usage: test_e2e_admin SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "harness.h"
#include "sync/sync.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void test_init_then_info(void)
{
    char dir[600], out[4096], fp1[128] = "", fp2[128] = "";
    snprintf(dir, sizeof dir, "%s/fresh", h_tmpdir());
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "init", NULL), 0);
    const char *p = strstr(out, "server key fingerprint: ");
    CHECK(p != NULL);
    sscanf(p + 24, "%127s", fp1);
    CHECK_EQ(strlen(fp1), 49);
    char key[700];
    snprintf(key, sizeof key, "%s/master.key", dir);
    struct stat st;
    CHECK_EQ(stat(key, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", NULL), 0);
    char schema[32];
    snprintf(schema, sizeof schema, "schema: %d\n", SPRO_DATA_SCHEMA);
    CHECK(strstr(out, schema) != NULL);
    p = strstr(out, "server key fingerprint: ");
    CHECK(p != NULL);
    sscanf(p + 24, "%127s", fp2);
    CHECK_STR(fp1, fp2);
}

static void test_init_refuses_existing(void)
{
    char dir[600], out[4096], key[700];
    snprintf(dir, sizeof dir, "%s/twice", h_tmpdir());
    snprintf(key, sizeof key, "%s/master.key", dir);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "init", NULL), 0);
    struct stat before, after;
    CHECK_EQ(stat(key, &before), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "init", NULL), 1);
    CHECK(strstr(out, "refusing to overwrite") != NULL);
    CHECK_EQ(stat(key, &after), 0);
    CHECK_EQ(before.st_ino, after.st_ino);
    CHECK_EQ(before.st_mtime, after.st_mtime);
}

static void test_info_refuses_missing(void)
{
    char dir[600], out[4096];
    snprintf(dir, sizeof dir, "%s/nowhere", h_tmpdir());
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", NULL), 1);
    CHECK(strstr(out, "nowhere") != NULL);
    CHECK(access(dir, F_OK) != 0); /* not created by a read */
}

static void test_help_everywhere(void)
{
    char out[4096];
    CHECK_EQ(h_admin(out, sizeof out, "--help", NULL, NULL, NULL), 0);
    CHECK(strstr(out, "init") != NULL && strstr(out, "info") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "init", "--help", NULL, NULL), 0);
    CHECK(strstr(out, "usage: spro-admin --data DIR init") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "info", "--help", NULL, NULL), 0);
    CHECK(strstr(out, "usage: spro-admin --data DIR info") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--version", NULL, NULL, NULL), 0);
    CHECK(strncmp(out, "spro-admin ", 11) == 0);
    static const char *const cmds[][2] = {{"org", "add"},       {"user", "add"},
                                          {"device", "invite"}, {"device", "list"},
                                          {"device", "revoke"}, {"device", "wipe"}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: spro-admin --data DIR %s %s", cmds[i][0], cmds[i][1]);
        CHECK_EQ(h_admin(out, sizeof out, cmds[i][0], cmds[i][1], "--help", NULL), 0);
        CHECK(strstr(out, want) != NULL);
        CHECK_EQ(h_admin(out, sizeof out, "--help", NULL), 0);
        CHECK(strstr(out, cmds[i][1]) != NULL);
    }
    CHECK_EQ(h_admin(out, sizeof out, "device", "--help", NULL), 0);
    CHECK(strstr(out, "device invite") != NULL && strstr(out, "device wipe") != NULL);
}

static void test_usage_errors(void)
{
    char out[4096];
    CHECK_EQ(h_admin(out, sizeof out, NULL, NULL, NULL, NULL), 2);
    CHECK(strstr(out, "usage:") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "frobnicate", NULL, NULL, NULL), 2);
    CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--bogus", "init", NULL, NULL), 2);
    CHECK(strstr(out, "unknown option '--bogus'") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", "", "init", NULL), 2);
    CHECK_EQ(h_admin(out, sizeof out, "init", "extra", NULL, NULL), 2);
    CHECK(strstr(out, "unexpected argument 'extra'") != NULL);
}

/* A data directory with the organisation cio-rennes and its counsellor
 * alice; returns its path (static storage per name). */
static const char *org_dir(const char *name)
{
    static char dir[600];
    char out[1024];
    snprintf(dir, sizeof dir, "%s", h_make_datadir(name));
    if (h_admin(out, sizeof out, "--data", dir, "org", "add", "cio-rennes", "--name",
                "CIO de Rennes", "--kind", "cio", NULL) != 0 ||
        h_admin(out, sizeof out, "--data", dir, "user", "add", "alice", "--org", "cio-rennes",
                NULL) != 0) {
        fprintf(stderr, "cannot set up %s: %s\n", dir, out);
        exit(1);
    }
    return dir;
}

/* The text after "prefix" up to the end of its line, copied into val; the
 * line must be the only one starting with prefix.  0, or -1. */
static int line_value(const char *out, const char *prefix, char *val, size_t cap)
{
    const char *hit = NULL;
    size_t n = strlen(prefix);
    for (const char *p = out; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, prefix, n) == 0) {
            if (hit != NULL)
                return -1;
            hit = p + n;
        }
    if (hit == NULL)
        return -1;
    size_t len = strcspn(hit, "\n");
    if (len >= cap)
        return -1;
    memcpy(val, hit, len);
    val[len] = '\0';
    return 0;
}

/* The server's Noise public key, read back from spro-admin info. */
static int noise_public(const char *dir, uint8_t pk[SPRO_KEY_BYTES])
{
    char out[4096], hex[128];
    if (h_admin(out, sizeof out, "--data", dir, "info", NULL) != 0 ||
        line_value(out, "noise public key: ", hex, sizeof hex) != 0 ||
        strlen(hex) != 2 * SPRO_KEY_BYTES)
        return -1;
    for (int i = 0; i < SPRO_KEY_BYTES; i++)
        pk[i] = (uint8_t)(check_hexval(hex[2 * i]) << 4 | check_hexval(hex[2 * i + 1]));
    return 0;
}

static void test_org_and_user_add(void)
{
    char out[4096];
    const char *dir = h_make_datadir("orgs");
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "ml-brest", "--name",
                     "Mission locale de Brest", "--kind", "mission-locale", NULL),
             0);
    CHECK(strstr(out, "added organisation ml-brest (mission-locale): Mission locale de Brest") !=
          NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "ft.quimper",
                     "--kind=france-travail", "--name=France Travail Quimper", NULL),
             0);
    CHECK_EQ(
        h_admin(out, sizeof out, "--data", dir, "user", "add", "alice", "--org", "ml-brest", NULL),
        0);
    CHECK(strstr(out, "added user alice (counsellor) to organisation ml-brest") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "user", "add", "bob", "--org", "ft.quimper",
                     "--role", "supervisor", NULL),
             0);
    CHECK(strstr(out, "added user bob (supervisor)") != NULL);

    /* Refusals: 1 for what the data forbids, 2 for bad usage or values. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "ml-brest", "--name", "Again",
                     "--kind", "other", NULL),
             1);
    CHECK(strstr(out, "spro-admin org add: organisation 'ml-brest' already exists") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "x", "--name", "X", "--kind",
                     "school", NULL),
             2);
    CHECK(strstr(out, "invalid organisation kind 'school': use one of cio, mission-locale") !=
          NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "x", "--kind", "cio", NULL), 2);
    CHECK(strstr(out, "spro-admin org add: missing --name NAME") != NULL);
    CHECK_EQ(
        h_admin(out, sizeof out, "--data", dir, "org", "add", "x", "--kind", "cio", "--name", NULL),
        2);
    CHECK(strstr(out, "--name needs a value") != NULL);
    CHECK_EQ(
        h_admin(out, sizeof out, "--data", dir, "org", "add", "--name", "X", "--kind", "cio", NULL),
        2);
    CHECK(strstr(out, "missing ORG_ID") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "a/b", "--name", "X", "--kind",
                     "cio", NULL),
             2);
    CHECK(strstr(out, "invalid organisation id 'a/b'") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "x", "--name", "X", "--kind",
                     "cio", "--colour", "red", NULL),
             2);
    CHECK(strstr(out, "unknown option '--colour'") != NULL);
    CHECK_EQ(
        h_admin(out, sizeof out, "--data", dir, "user", "add", "carol", "--org", "nowhere", NULL),
        1);
    CHECK(strstr(out, "spro-admin user add: no organisation 'nowhere'") != NULL);
    CHECK_EQ(
        h_admin(out, sizeof out, "--data", dir, "user", "add", "alice", "--org", "ml-brest", NULL),
        1);
    CHECK(strstr(out, "user 'alice' already exists") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "user", "add", "carol", "--org", "ml-brest",
                     "--role", "boss", NULL),
             2);
    CHECK(strstr(out, "invalid role 'boss'") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "user", "add", "carol", NULL), 2);
    CHECK(strstr(out, "missing --org ORG_ID") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", NULL), 2);
    CHECK(strstr(out, "spro-admin org: missing subcommand") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "frob", NULL), 2);
    CHECK(strstr(out, "spro-admin device: unknown subcommand 'frob'") != NULL);
}

static int64_t parse_iso8601(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return end != NULL && *end == '\0' ? (int64_t)timegm(&tm) : -1;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_device_invite(void)
{
    char out[16384], line[SPRO_TICKET_STRING_MAX + 16], when[64];
    const char *dir = org_dir("invite");
    uint8_t pk[SPRO_KEY_BYTES], fp[SPRO_FINGERPRINT_BYTES];
    CHECK_EQ(noise_public(dir, pk), 0);
    spro_crypto_fingerprint_bytes(fp, pk);

    int64_t before = (int64_t)time(NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "invite", "--user", "alice", NULL),
             0);
    CHECK_EQ(line_value(out, "ticket: ", line, sizeof line), 0);
    CHECK(strncmp(line, "spro1:", 6) == 0);
    struct spro_ticket_string t;
    CHECK_EQ(spro_ticket_parse(&t, line), 0);
    CHECK_BYTES(t.fingerprint, sizeof t.fingerprint, fp, sizeof fp);
    CHECK_STR(t.url, "http://127.0.0.1:8080");
    CHECK_EQ(line_value(out, "expires: ", when, sizeof when), 0);
    int64_t expires = parse_iso8601(when);
    CHECK(expires >= before + SPRO_TICKET_DEFAULT_TTL &&
          expires <= (int64_t)time(NULL) + SPRO_TICKET_DEFAULT_TTL);
    /* The QR code: half blocks, its first row all quiet zone. */
    CHECK(strstr(out, "\u2588\u2588\u2588\u2588\u2588\u2588\u2588\u2588\n") != NULL);
    CHECK(count(out, "\u2584") > 20 && count(out, "\u2580") > 20);

    /* The printed secret redeems the ticket, once. */
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_open(dir, &dd, NULL, 0), 0);
    uint8_t dpk[SPRO_KEY_BYTES], dsk[SPRO_KEY_BYTES];
    spro_crypto_dh_keypair(dpk, dsk);
    struct spro_device d;
    int rc1 = spro_ticket_redeem(dd, t.id, t.secret, dpk, 1, (int64_t)time(NULL), &d);
    spro_crypto_dh_keypair(dpk, dsk);
    int rc2 = spro_ticket_redeem(dd, t.id, t.secret, dpk, 2, (int64_t)time(NULL), &d);
    spro_datadir_close(dd);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rc2, SPRO_ETICKET);

    /* The secret is printed, never stored. */
    static const char *const files[] = {"data.db", "data.db-wal", "keys.db", "keys.db-wal"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        static unsigned char buf[1 << 22];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        CHECK(memmem(buf, n, t.secret, sizeof t.secret) == NULL);
    }

    /* --url, --ttl and --no-qr. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "invite", "--user", "alice", "--url",
                     "https://sync.example.org:8443", "--ttl", "3600", "--no-qr", NULL),
             0);
    CHECK_EQ(line_value(out, "ticket: ", line, sizeof line), 0);
    CHECK_EQ(spro_ticket_parse(&t, line), 0);
    CHECK_STR(t.url, "https://sync.example.org:8443");
    CHECK_EQ(line_value(out, "expires: ", when, sizeof when), 0);
    expires = parse_iso8601(when);
    CHECK(expires >= before + 3600 && expires <= (int64_t)time(NULL) + 3600);
    CHECK(strstr(out, "\u2588") == NULL && strstr(out, "\u2584") == NULL);

    /* Refusals: no ticket line, nothing issued. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "invite", "--user", "nobody", NULL),
             1);
    CHECK(strstr(out, "spro-admin device invite: no user 'nobody'") != NULL);
    CHECK(strstr(out, "ticket:") == NULL);
    static const char *const bad_ttls[] = {"59", "86401", "15m", "", "-900", "9999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ttls / sizeof bad_ttls[0]; i++) {
        CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "invite", "--user", "alice",
                         "--ttl", bad_ttls[i], NULL),
                 2);
        CHECK(strstr(out, "--ttl must be a whole number of seconds from 60 to 86400") != NULL);
        CHECK(strstr(out, "ticket:") == NULL);
    }
    static const char *const bad_urls[] = {"ftp://host", "http://host/path", "host:8080", "http://",
                                           "http://a b"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "invite", "--user", "alice",
                         "--url", bad_urls[i], NULL),
                 2);
        CHECK(strstr(out, "invalid --url") != NULL);
    }
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "invite", NULL), 2);
    CHECK(strstr(out, "missing --user USER_ID") != NULL);
}

/* Enrols a device for alice the way the server does on first contact:
 * redeems a ticket printed by spro-admin.  0, or -1. */
static int enrol(const char *dir, struct spro_device *d)
{
    char out[16384], line[SPRO_TICKET_STRING_MAX + 16];
    struct spro_ticket_string t;
    struct spro_datadir *dd;
    uint8_t pk[SPRO_KEY_BYTES], sk[SPRO_KEY_BYTES];
    if (h_admin(out, sizeof out, "--data", dir, "device", "invite", "--user", "alice", "--no-qr",
                NULL) != 0 ||
        line_value(out, "ticket: ", line, sizeof line) != 0 || spro_ticket_parse(&t, line) != 0 ||
        spro_datadir_open(dir, &dd, NULL, 0) != 0)
        return -1;
    spro_crypto_dh_keypair(pk, sk);
    int rc = spro_ticket_redeem(dd, t.id, t.secret, pk, 1, (int64_t)time(NULL), d);
    spro_datadir_close(dd);
    return rc == 0 ? 0 : -1;
}

/* The JSON object `device list --json` prints for d in state `state`,
 * up to its enrolment time. */
static void json_head(char *out, size_t cap, const struct spro_device *d, const char *state)
{
    snprintf(out, cap,
             "{\"id\": \"%s\", \"user\": \"alice\", \"org\": \"cio-rennes\", \"state\": "
             "\"%s\", \"enrolled_at\": \"20",
             d->id, state);
}

static void test_device_list_revoke_wipe(void)
{
    char out[16384], want[256];
    const char *dir = org_dir("devices");
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "list", NULL), 0);
    CHECK(strstr(out, "DEVICE") != NULL && strstr(out, "LAST SEEN") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "list", "--json", NULL), 0);
    CHECK_STR(out, "[]\n");

    struct spro_device d[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(enrol(dir, &d[i]), 0);

    /* Everything below runs while spro-server has the data directory open. */
    struct h_server srv;
    CHECK_EQ(h_server_start(&srv, dir, NULL), 0);

    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "list", NULL), 0);
    CHECK_EQ(count(out, " active "), 3);
    CHECK_EQ(count(out, " alice "), 3);
    CHECK_EQ(count(out, " cio-rennes "), 3);
    CHECK(strstr(out, d[0].id) < strstr(out, d[1].id)); /* enrolment order */
    CHECK(strstr(out, d[1].id) < strstr(out, d[2].id));

    /* d0: revoked; again is a note; no wipe order after. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "revoke", d[0].id, NULL), 0);
    CHECK(strstr(out, "revoked") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "revoke", d[0].id, NULL), 0);
    CHECK(strstr(out, "already revoked; nothing changed") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "wipe", d[0].id, NULL), 1);
    CHECK(strstr(out, "is revoked; it cannot be ordered to wipe") != NULL);

    /* d1: wipe order, then revoked. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "wipe", d[1].id, NULL), 0);
    CHECK(strstr(out, "ordered to wipe") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "wipe", d[1].id, NULL), 0);
    CHECK(strstr(out, "already wipe_pending") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "list", "--json", NULL), 0);
    json_head(want, sizeof want, &d[1], "wipe_pending");
    CHECK(strstr(out, want) != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "revoke", d[1].id, NULL), 0);

    /* d2: wipe order delivered (as the server marks it), then it stays wiped. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "wipe", d[2].id, NULL), 0);
    struct spro_datadir *dd;
    CHECK_EQ(spro_datadir_open(dir, &dd, NULL, 0), 0);
    int rc = spro_device_wiped(dd, d[2].rowid);
    spro_datadir_close(dd);
    CHECK_EQ(rc, 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "revoke", d[2].id, NULL), 0);
    CHECK(strstr(out, "already wiped") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "wipe", d[2].id, NULL), 1);

    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "list", NULL), 0);
    CHECK_EQ(count(out, " revoked "), 2);
    CHECK_EQ(count(out, " wiped "), 1);
    CHECK_EQ(count(out, " active "), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "list", "--json", NULL), 0);
    CHECK(out[0] == '[');
    CHECK_EQ(count(out, "\"id\": "), 3);
    json_head(want, sizeof want, &d[0], "revoked");
    CHECK(strstr(out, want) != NULL);
    json_head(want, sizeof want, &d[1], "revoked");
    CHECK(strstr(out, want) != NULL);
    json_head(want, sizeof want, &d[2], "wiped");
    CHECK(strstr(out, want) != NULL);
    CHECK_EQ(count(out, "\"last_seen\": \"20"), 3);

    /* Unknown and malformed device ids. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "revoke",
                     "00000000-0000-4000-8000-000000000000", NULL),
             1);
    CHECK(strstr(out, "no device '00000000-0000-4000-8000-000000000000'") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "wipe", "nope", NULL), 1);
    CHECK(strstr(out, "spro-admin device wipe: no device 'nope'") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "revoke", "not/an id", NULL), 2);
    CHECK(strstr(out, "invalid device id") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "revoke", NULL), 2);
    CHECK(strstr(out, "missing DEVICE_ID") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "device", "list", "--json=yes", NULL), 2);

    /* The server kept serving throughout. */
    struct h_response r;
    CHECK_EQ(h_request(srv.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(h_server_stop(&srv, 5000), 0);
}

/* A value as the decoder makes it: a short string and its msgpack. */
static struct spro_value short_str(const char *s, uint8_t *raw)
{
    size_t n = strlen(s); /* < 32 */
    raw[0] = (uint8_t)(0xa0 | n);
    memcpy(raw + 1, s, n);
    return (struct spro_value){.kind = SPRO_VALUE_STR, .s = {raw + 1, n}, .raw = {raw, n + 1}};
}

/* Pushes, as a device of u1 (org o1) straight into dir, a beneficiary ben
 * and its enrolment.  0, or -1. */
static int push_beneficiary(const char *dir, const char *ben, const char *enr)
{
    static const struct spro_device dev = {.id = "aaaaaaaa-0000-4000-8000-00000000000a",
                                           .user = "u1",
                                           .org = "o1",
                                           .role = "counsellor"};
    uint8_t r1[32], r2[32], r3[32];
    const struct spro_wire_edit e1[] = {
        {.name = {(const uint8_t *)"family_name", 11}, .val = short_str("Erased-Later", r1)}};
    const struct spro_wire_edit e2[] = {
        {.name = {(const uint8_t *)"programme", 9}, .val = short_str("spro", r2)},
        {.name = {(const uint8_t *)"owner_org", 9}, .val = short_str("o1", r3)}};
    uint64_t hlc = (uint64_t)1700000000000 << 16;
    const struct spro_wire_op ops[] = {{.seq = 1,
                                        .rtype = {(const uint8_t *)"beneficiary", 11},
                                        .rid = {(const uint8_t *)ben, 36},
                                        .ben = {(const uint8_t *)ben, 36},
                                        .schema = 1,
                                        .hlc = hlc + 1,
                                        .set = e1,
                                        .nset = 1},
                                       {.seq = 2,
                                        .rtype = {(const uint8_t *)"enrolment", 9},
                                        .rid = {(const uint8_t *)enr, 36},
                                        .ben = {(const uint8_t *)ben, 36},
                                        .schema = 1,
                                        .hlc = hlc + 2,
                                        .set = e2,
                                        .nset = 2}};
    struct spro_msg_push push = {ops, 2};
    static uint8_t mem[1 << 16];
    struct spro_arena arena = {mem, 0, sizeof mem};
    struct spro_msg_push_reply reply;
    struct spro_datadir *dd;
    if (spro_datadir_open(dir, &dd, NULL, 0) != 0)
        return -1;
    int rc = spro_sync_push(dd, &dev, &push, 1700000000000, 60000, &arena, &reply);
    spro_datadir_close(dd);
    return rc == 0 && reply.nresults == 2 && reply.results[0].status == SPRO_RESULT_ACK &&
                   reply.results[1].status == SPRO_RESULT_ACK
               ? 0
               : -1;
}

/* subject erase with the reason in a file (kept out of the command line):
 * it erases; a file others can read, a symbolic link and two reason
 * options at once are refused, erasing nothing. */
static void test_subject_erase_reason_file(void)
{
    char out[8192], reason[700], loose[700], link[700];
    static const char ben[] = "3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a37";
    static const char enr[] = "7d1e0b5c-2a4f-4c3e-8b9a-1f0e2d3c4b5a";
    const char *dir = h_make_datadir("reason-file");
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "org", "add", "o1", "--name", "CIO Nord",
                     "--kind", "cio", NULL),
             0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "user", "add", "u1", "--org", "o1", NULL), 0);
    CHECK_EQ(push_beneficiary(dir, ben, enr), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "export", ben, NULL), 0);
    CHECK(strstr(out, "Erased-Later") != NULL);

    snprintf(reason, sizeof reason, "%s/reason.txt", h_tmpdir());
    snprintf(loose, sizeof loose, "%s/reason-loose.txt", h_tmpdir());
    snprintf(link, sizeof link, "%s/reason-link.txt", h_tmpdir());
    FILE *f = fopen(reason, "w"), *g = fopen(loose, "w");
    CHECK(f != NULL && g != NULL);
    fputs("request 2025-041\nsecond line, ignored\n", f);
    fputs("request 2025-041\n", g);
    fclose(f);
    fclose(g);
    CHECK_EQ(chmod(reason, 0600), 0);
    CHECK_EQ(chmod(loose, 0644), 0);
    CHECK_EQ(symlink(reason, link), 0);

    /* Refusals first: the beneficiary stays. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "erase", ben, "--reason-file",
                     loose, NULL),
             1);
    CHECK(strstr(out, "chmod 600") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "erase", ben, "--reason-file", link,
                     NULL),
             1);
    CHECK(strstr(out, "symbolic link") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "erase", ben, "--reason", "x",
                     "--reason-file", reason, NULL),
             2);
    CHECK(strstr(out, "give one of --reason, --reason-file and --reason-fd") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "erase", ben, "--reason-file",
                     reason, "--reason-fd", "0", NULL),
             2);
    CHECK(strstr(out, "give one of") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "erase", ben, NULL), 2);
    CHECK(strstr(out, "missing --reason TEXT") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "export", ben, NULL), 0);
    CHECK(strstr(out, "Erased-Later") != NULL);

    /* The erasure, its reason from the 0600 file. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "erase", ben, "--reason-file",
                     reason, NULL),
             0);
    CHECK(strstr(out, "erased beneficiary ") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "subject", "export", ben, NULL), 1);
    CHECK(strstr(out, "was erased on ") != NULL);
}

static const struct check_test tests[] = {
    {"init_then_info", test_init_then_info},
    {"init_refuses_existing", test_init_refuses_existing},
    {"info_refuses_missing", test_info_refuses_missing},
    {"help_everywhere", test_help_everywhere},
    {"usage_errors", test_usage_errors},
    {"org_and_user_add", test_org_and_user_add},
    {"device_invite", test_device_invite},
    {"device_list_revoke_wipe", test_device_list_revoke_wipe},
    {"subject_erase_reason_file", test_subject_erase_reason_file},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
