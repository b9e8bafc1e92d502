/*
 * spro-client: the reference device, a command line that behaves as a
 * counsellor's mobile app towards spro-server (docs/PROTOCOL.md, "Device
 * channel").
 *
 *   spro-client --home DIR enroll TICKET   enrol this device with a ticket from spro-admin
 *   spro-client --home DIR ping            open a session, ask the server who we are
 *
 *   spro-client --home DIR sync            push the outbox, pull what changed
 *
 * and the local commands of records.c (new, edit, show, list, conflicts,
 * resolve, refer, accept, refuse), which work offline on the device's local
 * store (sync/local.h).
 * The home directory holds the device's key and state (state.h) and its
 * local store.  Every request but GET /v1/server-key travels in the Noise
 * channel (channel.h) over HTTP/1.1 (http.h).  Sessions are not kept
 * between runs.
 *
 * Exit status: 0 success; 1 failure; 2 usage error (bad ticket string
 * included); 3 the device is revoked; 4 the server ordered the device wiped
 * and its local data was erased.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "cli.h"
#include "crypto/crypto.h"
#include "http.h"
#include "proto/proto.h"
#include "state.h"
#include "sync/local.h"
#include "values.h"

#define CLIENT_APP "spro-client/" SPRO_VERSION
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600
/* Records asked for by one pull (the server also stops at 1 MiB). */
#define PULL_LIMIT SPRO_SYNC_MAX_RECORDS

struct command {
    const char *name;
    const char *args;
    const char *summary;
    int (*fn)(const struct options *o, int argc, char **argv);
};

/* ---- Output ---- */

/* Prints n bytes the server chose, with control characters replaced:
 * nothing a server sends can drive the terminal. */
static void print_text(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc(p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i], f);
}

static void print_field(const char *name, const struct spro_bytes *b)
{
    printf("%s: ", name);
    print_text(stdout, b->p, b->len);
    putchar('\n');
}

static bool code_is(const struct spro_msg_error *e, const char *code)
{
    return e->code.len == strlen(code) && memcmp(e->code.p, code, e->code.len) == 0;
}

static const char *hint_for(const struct spro_msg_error *e, int status)
{
    static const struct {
        const char *code, *hint;
    } hints[] = {
        {"ticket_invalid", "the ticket is unknown, expired, already used or mistyped; ask an "
                           "administrator for a new one (spro-admin device invite)"},
        {"unknown_device", "the server does not know this device; enrol it again with a new "
                           "ticket, in a new --home"},
        {"replayed", "the server has accepted a later handshake from this device: check this "
                     "computer's clock, and that no copy of this home is in use elsewhere"},
        {"rate_limited", "too many failed attempts from this address: wait a few minutes"},
        {"session_invalid", "the session ended: run the command again"},
        {"decrypt_failed", "the server could not open the request: run the command again"},
        {"unavailable", "the server is busy or shutting down: retry later"},
        {"internal", "the server failed: retry later, and tell its operator if it persists"},
    };
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (code_is(e, hints[i].code))
            return hints[i].hint;
    return status >= 500 ? "retry later" : NULL;
}

/* Reports an error message from the server; returns the exit status.
 * authenticated: it came sealed in the channel (or in handshake message 2),
 * so only the pinned server can have written it.  A revocation is believed
 * only then: a plain one could come from anybody on the path. */
static int report_error(const char *cmd, int status, const struct spro_msg_error *e,
                        bool authenticated)
{
    if (code_is(e, "device_revoked") && !authenticated) {
        fprintf(stderr,
                "spro-client %s: refused as revoked, but without proof that the server said so "
                "(unauthenticated answer); not acting on it, retry later\n",
                cmd);
        return EXIT_FAIL;
    }
    if (code_is(e, "device_revoked")) {
        fprintf(stderr,
                "spro-client %s: this device has been revoked by an administrator "
                "(device_revoked)\n",
                cmd);
        return EXIT_REVOKED;
    }
    if (code_is(e, "handshake_failed")) {
        fprintf(stderr,
                "spro-client %s: the server did not accept the handshake: the pinned "
                "server key may be wrong (re-enrol) (handshake_failed)\n",
                cmd);
        return EXIT_FAIL;
    }
    fprintf(stderr, "spro-client %s: the server refused: ", cmd);
    print_text(stderr, e->code.p, e->code.len);
    fprintf(stderr, " (HTTP %d): ", status);
    print_text(stderr, e->message.p, e->message.len);
    fputc('\n', stderr);
    const char *hint = hint_for(e, status);
    if (hint != NULL)
        fprintf(stderr, "hint: %s\n", hint);
    return EXIT_FAIL;
}

/* Reports a non-200 answer (a plain msgpack error, or anything else). */
static int report_http(const char *cmd, const char *url, const struct spro_client_http_response *r)
{
    struct spro_msg m;
    if (spro_proto_decode(r->body.data, r->body.len, &m) == 0 && m.type == SPRO_MSG_ERROR)
        return report_error(cmd, r->status, &m.u.error, false);
    fprintf(stderr,
            "spro-client %s: the server at %s answered HTTP %d without an error message"
            "%s\n",
            cmd, url, r->status, r->status == 404 ? " (is it a spro-server?)" : "");
    return EXIT_FAIL;
}

static int network_error(const char *cmd, const char *url, const char *why)
{
    fprintf(stderr, "spro-client %s: cannot reach the server at %s: %s\n", cmd, url, why);
    return EXIT_FAIL;
}

/* ---- Pieces of the commands ---- */

/* Erases the local data on the server's authenticated order. */
static int obey_wipe(const char *cmd, const struct spro_client_home *home)
{
    char why[512];
    if (spro_client_home_erase(home, why, sizeof why) != 0) {
        fprintf(stderr,
                "spro-client %s: wipe order received, but the local data could not be "
                "erased: %s\n",
                cmd, why);
        return EXIT_FAIL;
    }
    printf("wipe order received: local data erased\n");
    return EXIT_WIPED;
}

/*
 * Runs one handshake (POST /v1/session) as the device of *st with key sk,
 * carrying the ticket when given (enrolment).  The timestamp is saved in
 * the state before the handshake leaves, so that none is ever reused.
 * Returns EXIT_OK with *chp an open channel and *welcome its welcome
 * (pointing into the channel); otherwise the exit status, the error
 * reported, *chp NULL.  A wipe order is obeyed here (EXIT_WIPED).
 */
static int open_session(const char *cmd, const struct options *o,
                        const struct spro_client_home *home, struct spro_client_state *st,
                        const uint8_t sk[SPRO_KEY_BYTES], const struct spro_ticket_string *ticket,
                        struct spro_client_channel **chp, struct spro_msg_welcome *welcome)
{
    char why[512];
    *chp = NULL;
    uint64_t ts = spro_client__wall_ms();
    if (ts <= st->last_ts)
        ts = st->last_ts + 1;
    if (ts > (uint64_t)INT64_MAX) {
        fprintf(stderr, "spro-client %s: the handshake timestamps are exhausted\n", cmd);
        return EXIT_FAIL;
    }
    st->last_ts = ts;
    if (spro_client_state_save(home, st, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        return EXIT_FAIL;
    }

    struct spro_msg hello = {.type = SPRO_MSG_HELLO};
    hello.u.hello.ts = ts;
    hello.u.hello.app = (struct spro_bytes){(const uint8_t *)CLIENT_APP, strlen(CLIENT_APP)};
    hello.u.hello.schema = CLIENT_SCHEMA;
    if (ticket != NULL) {
        hello.u.hello.has_ticket = true;
        hello.u.hello.ticket_id = (struct spro_bytes){(const uint8_t *)ticket->id, 16};
        hello.u.hello.ticket_secret = (struct spro_bytes){ticket->secret, sizeof ticket->secret};
    }
    struct spro_client_channel *ch;
    struct spro_buf msg1 = {0};
    int rc = spro_client_channel_create(&ch, st->server_key, sk);
    if (rc == 0)
        rc = spro_client_channel_hello(ch, &hello, &msg1);
    spro_memzero(&hello, sizeof hello);
    if (rc != 0) {
        fprintf(stderr, "spro-client %s: cannot build the handshake: %s\n", cmd, spro_strerror(rc));
        spro_client_channel_destroy(ch);
        spro_buf_free(&msg1);
        return EXIT_FAIL;
    }

    struct spro_client_http_response res;
    rc = spro_client_http_request(st->url, "POST", "/v1/session", "application/octet-stream",
                                  msg1.data, msg1.len, &o->http, &res, why, sizeof why);
    spro_buf_free(&msg1);
    int exit_code = EXIT_FAIL;
    if (rc != 0) {
        exit_code = network_error(cmd, st->url, why);
        goto out;
    }
    /* A refusal after the handshake was read comes as message 2 (binary);
     * other refusals are plain msgpack errors. */
    if (res.status != 200 && strncasecmp(res.content_type, "application/octet-stream", 24) != 0) {
        exit_code = report_http(cmd, st->url, &res);
        goto out;
    }
    struct spro_msg m;
    rc = spro_client_channel_welcome(ch, res.body.data, res.body.len, &m);
    if (rc == SPRO_EINTEGRITY) {
        fprintf(stderr,
                "spro-client %s: the server's handshake answer failed authentication: it "
                "does not come from the server whose key this device pinned\n",
                cmd);
    } else if (rc != 0) {
        fprintf(stderr, "spro-client %s: the server's handshake answer is not a welcome (%s)\n",
                cmd, spro_errcode(rc));
    } else if (m.type == SPRO_MSG_ERROR) {
        exit_code = report_error(cmd, res.status, &m.u.error, true);
    } else if (m.type == SPRO_MSG_WIPE) {
        const struct spro_bytes *d = &m.u.wipe.device;
        if (st->device[0] != '\0' &&
            (d->len != strlen(st->device) || memcmp(d->p, st->device, d->len) != 0))
            fprintf(stderr,
                    "spro-client %s: the server sent a wipe order for another device; "
                    "ignored\n",
                    cmd);
        else
            exit_code = obey_wipe(cmd, home);
    } else {
        /* The user's role, kept for the commands that depend on it (merge). */
        const struct spro_bytes *role = &m.u.welcome.view.role;
        if (st->device[0] != '\0' && role->len < sizeof st->role &&
            spro_client_state_id_ok(role->p, role->len) &&
            (role->len != strlen(st->role) || memcmp(role->p, st->role, role->len) != 0)) {
            memcpy(st->role, role->p, role->len);
            st->role[role->len] = '\0';
            if (spro_client_state_save(home, st, why, sizeof why) != 0)
                fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        }
        *welcome = m.u.welcome;
        *chp = ch;
        ch = NULL;
        exit_code = EXIT_OK;
    }
out:
    spro_client_channel_destroy(ch);
    spro_client_http_response_free(&res);
    return exit_code;
}

/* ---- Commands ---- */

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* Reads the ticket line of `enroll -` from stdin into buf. */
static bool read_ticket_line(char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, stdin) == NULL)
        return false;
    return strchr(buf, '\n') != NULL || feof(stdin);
}

/* Fails with 1 if home already holds an enrolled device (or a state it
 * cannot read, which it will not overwrite). */
static int refuse_enrolled(const struct spro_client_home *home)
{
    struct spro_client_state st;
    char why[512];
    int rc = spro_client_state_load(home, &st, why, sizeof why);
    if (rc == SPRO_ENOENT || (rc == 0 && st.device[0] == '\0'))
        return 0; /* nothing, or an enrolment that never finished */
    if (rc == 0)
        fprintf(stderr,
                "spro-client enroll: %s already holds an enrolled device (%s); use "
                "another --home\n",
                home->path, st.device);
    else
        fprintf(stderr, "spro-client enroll: %s; refusing to overwrite it\n", why);
    return EXIT_FAIL;
}

/* GET /v1/server-key: the key, if its fingerprint is the ticket's. */
static int fetch_server_key(const struct options *o, const struct spro_ticket_string *t,
                            uint8_t key[SPRO_KEY_BYTES])
{
    char why[512];
    struct spro_client_http_response res;
    if (spro_client_http_request(t->url, "GET", "/v1/server-key", NULL, NULL, 0, &o->http, &res,
                                 why, sizeof why) != 0)
        return network_error("enroll", t->url, why);
    int exit_code = EXIT_FAIL;
    struct spro_msg m;
    if (res.status != 200) {
        exit_code = report_http("enroll", t->url, &res);
    } else if (spro_proto_decode(res.body.data, res.body.len, &m) != 0 ||
               m.type != SPRO_MSG_SERVER_KEY || m.u.server_key.key.len != SPRO_KEY_BYTES) {
        fprintf(stderr,
                "spro-client enroll: %s did not answer a server key (is it a "
                "spro-server?)\n",
                t->url);
    } else {
        uint8_t fp[SPRO_FINGERPRINT_BYTES];
        spro_crypto_fingerprint_bytes(fp, m.u.server_key.key.p);
        if (spro_crypto_equal(fp, t->fingerprint, sizeof fp)) {
            memcpy(key, m.u.server_key.key.p, SPRO_KEY_BYTES);
            exit_code = EXIT_OK;
        } else {
            fprintf(stderr, "spro-client enroll: server key does not match the ticket's "
                            "fingerprint (wrong server or interception)\n");
        }
    }
    spro_client_http_response_free(&res);
    return exit_code;
}

static int cmd_enroll(const struct options *o, int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("usage: spro-client --home DIR enroll TICKET\n"
               "Enrol this device with a one-time ticket from an administrator\n"
               "(spro-admin device invite).  TICKET is the ticket string, or - to read it\n"
               "from the first line of standard input (it then stays out of the process\n"
               "list).  The server's key is fetched from the ticket's URL and must match the\n"
               "ticket's fingerprint; the device's key pair is made here and never leaves\n"
               "DIR (created, mode 0700).  Prints `device: ID` once the server accepted the\n"
               "device.  Refuses a DIR that already holds an enrolled device.  On failure\n"
               "nothing of the attempt is left in DIR.\n");
        return EXIT_OK;
    }
    int rc = spro_client__need_home(o, "enroll");
    if (rc != 0)
        return rc;
    if (argc != 1) {
        fprintf(stderr, "spro-client enroll: expects one argument, TICKET (see spro-client "
                        "enroll --help)\n");
        return EXIT_USAGE;
    }

    struct spro_ticket_string t;
    char line[SPRO_TICKET_STRING_MAX + 2] = "";
    bool from_stdin = strcmp(argv[0], "-") == 0;
    if (from_stdin && !read_ticket_line(line, sizeof line)) {
        spro_memzero(line, sizeof line);
        fprintf(stderr, "spro-client enroll: no ticket line on standard input\n");
        return EXIT_USAGE;
    }
    rc = spro_ticket_parse(&t, from_stdin ? line : argv[0]);
    spro_memzero(line, sizeof line);
    spro_memzero(argv[0], strlen(argv[0])); /* the secret leaves the process list */
    struct spro_client_url u;
    if (rc != 0 || spro_client_url_parse(&u, t.url) != 0) {
        spro_memzero(&t, sizeof t);
        fprintf(stderr, "spro-client enroll: not a ticket string (expected "
                        "spro1:<fingerprint>:<ticket id>:<secret>@<server URL>, one line as "
                        "printed by spro-admin device invite)\n");
        return EXIT_USAGE;
    }

    /* Check the home before the network, the server before writing. */
    char why[512];
    struct spro_client_home home;
    bool created = false;
    struct spro_client_state st = {0};
    uint8_t sk[SPRO_KEY_BYTES], pk[SPRO_KEY_BYTES];
    struct spro_client_channel *ch = NULL;
    int exit_code = EXIT_FAIL;
    bool wrote = false;
    rc = spro_client_home_open(&home, o->home, false, NULL, why, sizeof why);
    if (rc != 0 && rc != SPRO_ENOENT) {
        fprintf(stderr, "spro-client enroll: %s\n", why);
        goto out;
    }
    if (rc == 0 && (exit_code = refuse_enrolled(&home)) != 0)
        goto out;
    if ((exit_code = fetch_server_key(o, &t, st.server_key)) != 0)
        goto out;
    exit_code = EXIT_FAIL;
    if (home.dirfd < 0) {
        if (spro_client_home_open(&home, o->home, true, &created, why, sizeof why) != 0) {
            fprintf(stderr, "spro-client enroll: %s\n", why);
            goto out;
        }
        if ((exit_code = refuse_enrolled(&home)) != 0)
            goto out; /* another spro-client enrolled it meanwhile */
        exit_code = EXIT_FAIL;
    }

    spro_crypto_dh_keypair(pk, sk);
    spro_memzero(pk, sizeof pk);
    snprintf(st.url, sizeof st.url, "%s", t.url);
    wrote = true;
    if (spro_client_key_save(&home, sk, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client enroll: %s\n", why);
        goto out;
    }
    struct spro_msg_welcome w;
    exit_code = open_session("enroll", o, &home, &st, sk, &t, &ch, &w);
    if (exit_code == EXIT_WIPED)
        wrote = false; /* already erased */
    if (exit_code != EXIT_OK)
        goto out;
    exit_code = EXIT_FAIL;
    const struct spro_msg_device_view *v = &w.view;
    if (!spro_client_state_id_ok(v->device.p, v->device.len) ||
        !spro_client_state_id_ok(v->user.p, v->user.len) ||
        !spro_client_state_id_ok(v->org.p, v->org.len)) {
        fprintf(stderr, "spro-client enroll: the server's welcome holds ids this client cannot "
                        "store\n");
        goto out;
    }
    memcpy(st.device, v->device.p, v->device.len);
    memcpy(st.user, v->user.p, v->user.len);
    memcpy(st.org, v->org.p, v->org.len);
    if (v->role.len < sizeof st.role && spro_client_state_id_ok(v->role.p, v->role.len))
        memcpy(st.role, v->role.p, v->role.len);
    if (spro_client_state_save(&home, &st, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client enroll: the server enrolled device %s, but %s\n", st.device,
                why);
        goto out;
    }
    printf("device: %s\n", st.device);
    exit_code = EXIT_OK;
out:
    if (exit_code != EXIT_OK && wrote && spro_client_home_erase(&home, why, sizeof why) != 0)
        fprintf(stderr, "spro-client enroll: could not clean up: %s\n", why);
    if (exit_code != EXIT_OK && created && rmdir(o->home) != 0 && errno != ENOTEMPTY)
        fprintf(stderr, "spro-client enroll: could not remove %s: %s\n", o->home, strerror(errno));
    spro_client_channel_destroy(ch);
    spro_client_home_close(&home);
    spro_memzero(sk, sizeof sk);
    spro_memzero(&t, sizeof t);
    return exit_code;
}

/* Loads the state and key of an enrolled home; prints why not. */
static int load_device(const char *cmd, const struct spro_client_home *home,
                       struct spro_client_state *st, uint8_t sk[SPRO_KEY_BYTES])
{
    char why[512];
    int rc = spro_client_state_load(home, st, why, sizeof why);
    if (rc == SPRO_ENOENT || (rc == 0 && st->device[0] == '\0')) {
        fprintf(stderr,
                "spro-client %s: %s holds no enrolled device: not enrolled (run "
                "spro-client --home %s enroll TICKET)\n",
                cmd, home->path, home->path);
        return EXIT_FAIL;
    }
    if (rc == 0 && (rc = spro_client_key_load(home, sk, why, sizeof why)) == SPRO_ENOENT) {
        fprintf(stderr,
                "spro-client %s: %s/device.key is missing: this home is damaged (re-enrol)\n", cmd,
                home->path);
        return EXIT_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int cmd_ping(const struct options *o, int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("usage: spro-client --home DIR ping\n"
               "Open a session with the server (Noise handshake) and send a sealed ping;\n"
               "print the server's view of this device: its id, counsellor, organisation\n"
               "and role.  Exits 3 if the device has been revoked, 4 if the server ordered\n"
               "it wiped (DIR's key and state are then erased).\n");
        return EXIT_OK;
    }
    int rc = spro_client__need_home(o, "ping");
    if (rc != 0)
        return rc;
    if (argc > 0) {
        fprintf(stderr,
                "spro-client ping: unexpected argument '%s' (see spro-client ping "
                "--help)\n",
                argv[0]);
        return EXIT_USAGE;
    }
    char why[512];
    struct spro_client_home home;
    rc = spro_client_home_open(&home, o->home, false, NULL, why, sizeof why);
    if (rc == SPRO_ENOENT) {
        fprintf(stderr,
                "spro-client ping: %s does not exist: not enrolled (run spro-client "
                "--home %s enroll TICKET)\n",
                o->home, o->home);
        return EXIT_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "spro-client ping: %s\n", why);
        return EXIT_FAIL;
    }
    struct spro_client_state st;
    uint8_t sk[SPRO_KEY_BYTES];
    int exit_code = load_device("ping", &home, &st, sk);
    struct spro_msg ping = {.type = SPRO_MSG_PING};
    /* A session the server ended (restart, idle) gets one fresh handshake. */
    bool again = true;
    for (int attempt = 0; exit_code == EXIT_OK && again; attempt++) {
        again = false;
        struct spro_client_channel *ch;
        struct spro_msg_welcome w;
        if ((exit_code = open_session("ping", o, &home, &st, sk, NULL, &ch, &w)) != EXIT_OK)
            break;
        exit_code = EXIT_FAIL;
        struct spro_buf body = {0};
        struct spro_client_http_response res = {0};
        struct spro_msg m;
        if ((rc = spro_client_channel_seal(ch, "POST", "/v1/ping", &ping, &body)) != 0) {
            fprintf(stderr, "spro-client ping: cannot seal the request: %s\n", spro_strerror(rc));
        } else if (spro_client_http_request(st.url, "POST", "/v1/ping", "application/octet-stream",
                                            body.data, body.len, &o->http, &res, why,
                                            sizeof why) != 0) {
            exit_code = network_error("ping", st.url, why);
        } else if (res.status != 200) {
            again =
                attempt == 0 && spro_proto_decode(res.body.data, res.body.len, &m) == 0 &&
                m.type == SPRO_MSG_ERROR &&
                (code_is(&m.u.error, "session_invalid") || code_is(&m.u.error, "decrypt_failed"));
            exit_code = again ? EXIT_OK : report_http("ping", st.url, &res);
        } else if ((rc = spro_client_channel_open(ch, res.body.data, res.body.len, &m)) != 0) {
            if (rc == SPRO_EINTEGRITY)
                fprintf(stderr, "spro-client ping: response failed authentication\n");
            else
                fprintf(stderr, "spro-client ping: the server's answer cannot be decoded (%s)\n",
                        spro_errcode(rc));
        } else if (m.type == SPRO_MSG_ERROR) {
            exit_code = report_error("ping", 200, &m.u.error, true);
        } else if (m.type != SPRO_MSG_PONG) {
            fprintf(stderr, "spro-client ping: the server answered a %s, not a pong\n",
                    spro_proto_type_name(m.type));
        } else {
            print_field("device", &m.u.pong.device);
            print_field("user", &m.u.pong.user);
            print_field("org", &m.u.pong.org);
            print_field("role", &m.u.pong.role);
            exit_code = EXIT_OK;
        }
        spro_buf_free(&body);
        spro_client_http_response_free(&res);
        spro_client_channel_destroy(ch);
    }
    spro_memzero(sk, sizeof sk);
    spro_client_home_close(&home);
    return exit_code;
}

/* ---- sync ---- */

struct sync_ctx {
    const struct options *o;
    struct spro_client_home *home;
    struct spro_client_state *st;
    uint8_t sk[SPRO_KEY_BYTES];
    struct spro_client_channel *ch; /* the open session, or NULL */
    struct spro_local *local;       /* NULL while a handshake runs */
    struct spro_arena arena;        /* for the decoded answers */
    bool json;
    struct spro_buf rejects; /* --json: the items of "rejected_ops" */
    size_t nrejects;
};

/* Opens a new session.  The local store is closed meanwhile: a wipe order
 * (obeyed inside open_session) erases it. */
static int sync_session(struct sync_ctx *c)
{
    spro_client_channel_destroy(c->ch);
    c->ch = NULL;
    spro_local_close(c->local);
    c->local = NULL;
    struct spro_msg_welcome w;
    int rc = open_session("sync", c->o, c->home, c->st, c->sk, NULL, &c->ch, &w);
    if (rc != EXIT_OK)
        return rc;
    return spro_client__open_local("sync", c->home, c->st, &c->local);
}

/*
 * Sends req sealed to `path` and opens the answer into *m (pointing into
 * the channel and c->arena, valid until the next exchange).  A session the
 * server ended (restart, idle, expiry) gets one fresh handshake and the
 * request is sent again: pushes and pulls may be repeated (the server
 * answers a retried op as the first time).  Returns EXIT_OK with *m of
 * type want, or the exit status with the error reported.  With too_long
 * not NULL, a sealed `too_long` answer is not reported: *too_long is set
 * and EXIT_OK returned (*m is then the error).
 */
static int exchange(struct sync_ctx *c, const char *path, const struct spro_msg *req,
                    enum spro_msg_type want, struct spro_msg *m, bool *too_long)
{
    char why[512];
    for (int attempt = 0;; attempt++) {
        struct spro_buf body = {0};
        struct spro_client_http_response res = {0};
        int rc = spro_client_channel_seal(c->ch, "POST", path, req, &body);
        if (rc != 0) {
            spro_buf_free(&body);
            fprintf(stderr, "spro-client sync: cannot seal the request to %s: %s\n", path,
                    spro_strerror(rc));
            return EXIT_FAIL;
        }
        rc = spro_client_http_request(c->st->url, "POST", path, "application/octet-stream",
                                      body.data, body.len, &c->o->http, &res, why, sizeof why);
        spro_buf_free(&body);
        if (rc != 0)
            return network_error("sync", c->st->url, why);
        if (res.status != 200) {
            struct spro_msg e;
            bool again =
                attempt == 0 && spro_proto_decode(res.body.data, res.body.len, &e) == 0 &&
                e.type == SPRO_MSG_ERROR &&
                (code_is(&e.u.error, "session_invalid") || code_is(&e.u.error, "decrypt_failed"));
            int exit_code = again ? EXIT_OK : report_http("sync", c->st->url, &res);
            spro_client_http_response_free(&res);
            if (exit_code != EXIT_OK)
                return exit_code;
            if ((exit_code = sync_session(c)) != EXIT_OK)
                return exit_code;
            continue;
        }
        /* The decoded answer needs SPRO_PROTO_ARENA_BYTES of its plaintext,
         * which is shorter than the body: grown to that (pages are touched
         * only as the decoder uses them). */
        spro_memzero(c->arena.base, c->arena.len);
        c->arena.len = 0;
        if (c->arena.cap < SPRO_PROTO_ARENA_BYTES(res.body.len)) {
            free(c->arena.base);
            c->arena.cap = SPRO_PROTO_ARENA_BYTES(res.body.len);
            if ((c->arena.base = malloc(c->arena.cap)) == NULL)
                SPRO_BUG("out of memory");
        }
        rc = spro_client_channel_open_sync(c->ch, res.body.data, res.body.len, &c->arena, m);
        spro_client_http_response_free(&res);
        if (rc == SPRO_EINTEGRITY) {
            fprintf(stderr, "spro-client sync: the answer of %s failed authentication\n", path);
            return EXIT_FAIL;
        }
        if (rc != 0) {
            fprintf(stderr, "spro-client sync: the answer of %s cannot be decoded (%s)\n", path,
                    spro_errcode(rc));
            return EXIT_FAIL;
        }
        if (m->type == SPRO_MSG_ERROR && too_long != NULL && code_is(&m->u.error, "too_long")) {
            *too_long = true;
            return EXIT_OK;
        }
        if (m->type == SPRO_MSG_ERROR)
            return report_error("sync", 200, &m->u.error, true);
        if (m->type != want) {
            fprintf(stderr, "spro-client sync: %s answered a %s, not a %s\n", path,
                    spro_proto_type_name(m->type), spro_proto_type_name(want));
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
}

/* An op the server rejected: printed now (text), or kept for the JSON. */
static void on_reject(void *arg, const struct spro_wire_op *op, const struct spro_bytes *code)
{
    struct sync_ctx *c = arg;
    if (!c->json) {
        printf("rejected: op %" PRIu64 " (", op->seq);
        print_text(stdout, op->rtype.p, op->rtype.len);
        putchar(' ');
        print_text(stdout, op->rid.p, op->rid.len);
        printf("): ");
        print_text(stdout, code->p, code->len);
        printf(" (kept in the local quarantine)\n");
        return;
    }
    /* The JSON items are made with the printer of values.h, through a
     * memory stream. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        SPRO_BUG("out of memory");
    fprintf(f, "%s{\"seq\": %" PRIu64 ", \"type\": ", c->nrejects ? ", " : "", op->seq);
    spro_client_json_string(f, op->rtype.p, op->rtype.len);
    fprintf(f, ", \"id\": ");
    spro_client_json_string(f, op->rid.p, op->rid.len);
    fprintf(f, ", \"code\": ");
    spro_client_json_string(f, code->p, code->len);
    fputc('}', f);
    fclose(f);
    spro_buf_append(&c->rejects, text, len);
    free(text);
    c->nrejects++;
}

static int count_conflict(void *arg, const struct spro_local_record *r,
                          const struct spro_local_field *f)
{
    (void)r;
    (void)f;
    (*(size_t *)arg)++;
    return 0;
}

/* Pushes the whole outbox, batch after batch.  A push answered `too_long`
 * (its answer, big conflicts, would not fit a sealed message; the ops are
 * applied and their answers kept) is sent again in halves until answers
 * fit; the smaller size holds for the rest of this sync. */
static int sync_push(struct sync_ctx *c, struct spro_local_push_stats *stats)
{
    char why[512];
    size_t max_ops = SPRO_SYNC_MAX_OPS;
    for (;;) {
        struct spro_local_batch *b;
        if (spro_local_push_next(c->local, max_ops, &b, why, sizeof why) != 0) {
            fprintf(stderr, "spro-client sync: %s\n", why);
            return EXIT_FAIL;
        }
        if (b == NULL)
            return EXIT_OK;
        const struct spro_msg *push = spro_local_batch_msg(b);
        struct spro_msg m;
        bool too_long = false;
        int rc = exchange(c, "/v1/sync/push", push, SPRO_MSG_PUSH_REPLY, &m, &too_long);
        if (rc == EXIT_OK && too_long) {
            size_t n = spro_local_batch_size(b);
            spro_local_batch_free(b);
            if (n == 1) {
                fprintf(stderr, "spro-client sync: the answer to one op alone does not fit a "
                                "sealed message (too_long); it stays in the outbox\n");
                return EXIT_FAIL;
            }
            max_ops = n / 2;
            fprintf(stderr,
                    "spro-client sync: the answer to %zu ops is too long; sending %zu at a time\n",
                    n, max_ops);
            continue;
        }
        size_t before = stats->acked + stats->conflicts + stats->rejected;
        if (rc == EXIT_OK &&
            spro_local_push_done(c->local, b, &m.u.push_reply, spro_client__wall_ms(), stats,
                                 on_reject, c, why, sizeof why) != 0) {
            fprintf(stderr, "spro-client sync: the server answered, but %s\n", why);
            rc = EXIT_FAIL;
        }
        if (rc == EXIT_OK && stats->acked + stats->conflicts + stats->rejected == before) {
            fprintf(stderr,
                    "spro-client sync: the server answered none of the %zu ops sent; they stay "
                    "in the outbox\n",
                    push->u.push.nops);
            rc = EXIT_FAIL;
        }
        spro_local_batch_free(b);
        if (rc != EXIT_OK)
            return rc;
    }
}

/* Pulls until the server has nothing more. */
static int sync_pull(struct sync_ctx *c, size_t *pulled)
{
    char why[512];
    int resets = 0;
    for (;;) {
        uint8_t cursor[SPRO_SYNC_MAX_CURSOR];
        size_t clen;
        if (spro_local_cursor(c->local, cursor, &clen, why, sizeof why) != 0) {
            fprintf(stderr, "spro-client sync: %s\n", why);
            return EXIT_FAIL;
        }
        struct spro_msg req = {.type = SPRO_MSG_PULL};
        req.u.pull = (struct spro_msg_pull){{cursor, clen}, PULL_LIMIT};
        struct spro_msg m;
        int rc = exchange(c, "/v1/sync/pull", &req, SPRO_MSG_PULL_REPLY, &m, NULL);
        if (rc != EXIT_OK)
            return rc;
        const struct spro_msg_pull_reply *r = &m.u.pull_reply;
        bool same = r->cursor.len == clen && (clen == 0 || memcmp(r->cursor.p, cursor, clen) == 0);
        if (spro_local_pull_apply(c->local, r, spro_client__wall_ms(), why, sizeof why) != 0) {
            fprintf(stderr, "spro-client sync: %s\n", why);
            return EXIT_FAIL;
        }
        *pulled += r->nrecords;
        if (r->reset) {
            /* Beyond the server's sync horizon: the local copy was
             * forgotten (not the outbox, already pushed, nor pending
             * edits); pull again from a snapshot.  A reset answers a
             * non-empty cursor only, so a second one in a row is a
             * server at fault. */
            if (++resets > 1) {
                fprintf(stderr, "spro-client sync: the server asked for a reset twice; "
                                "stopping (run sync again later)\n");
                return EXIT_FAIL;
            }
            if (!c->json)
                printf("reset: this device was beyond the server's sync horizon; "
                       "downloading its records again\n");
            continue;
        }
        if (!r->more)
            return EXIT_OK;
        if (r->nrecords == 0 && same) {
            fprintf(stderr, "spro-client sync: the server announced more records but sent none; "
                            "stopping (run sync again later)\n");
            return EXIT_FAIL;
        }
    }
}

static int cmd_sync(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("sync", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR sync [--json]\n"
               "Open a session, push the edits waiting in the outbox (batches of up to\n"
               "1000 ops and 1 MiB; halved while the server answers that a batch's answer\n"
               "is too long), then pull every record that changed in this device's\n"
               "scope since the last sync.  Prints `pushed: N acked, N conflicts, N\n"
               "rejected` and `pulled: N records`; each rejected op is printed and kept in\n"
               "the local quarantine.  Fields left in conflict are counted (see spro-client\n"
               "conflicts).  A sync cut short (network, crash) loses nothing: run it again.\n"
               "--json prints {\"pushed\": {\"acked\", \"conflicts\", \"rejected\"}, \"pulled\",\n"
               "\"in_conflict\", \"rejected_ops\": [{\"seq\", \"type\", \"id\", \"code\"}]}.\n"
               "Exits 3 if the device has been revoked, 4 if the server ordered it wiped.\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "sync")) != 0)
        return rc;
    if (a.n > 0) {
        fprintf(stderr,
                "spro-client sync: unexpected argument '%s' (see spro-client sync "
                "--help)\n",
                argv[0]);
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    if ((rc = spro_client__open_device("sync", o, &home, &st)) != EXIT_OK)
        return rc;
    struct sync_ctx c = {.o = o, .home = &home, .st = &st, .json = a.json};
    char why[512];
    rc = spro_client_key_load(&home, c.sk, why, sizeof why);
    if (rc == SPRO_ENOENT) {
        fprintf(stderr,
                "spro-client sync: %s/device.key is missing: this home is damaged "
                "(re-enrol)\n",
                home.path);
        spro_client_home_close(&home);
        return EXIT_FAIL;
    } else if (rc != 0) {
        fprintf(stderr, "spro-client sync: %s\n", why);
        spro_client_home_close(&home);
        return EXIT_FAIL;
    }
    c.arena.cap = SPRO_PROTO_ARENA_BYTES(SPRO_NOISE_MAX_MESSAGE);
    if ((c.arena.base = malloc(c.arena.cap)) == NULL)
        SPRO_BUG("out of memory");

    struct spro_local_push_stats stats = {0};
    size_t pulled = 0, in_conflict = 0;
    int exit_code = sync_session(&c);
    if (exit_code == EXIT_OK)
        exit_code = sync_push(&c, &stats);
    if (exit_code == EXIT_OK && !a.json)
        printf("pushed: %zu acked, %zu conflicts, %zu rejected\n", stats.acked, stats.conflicts,
               stats.rejected);
    if (exit_code == EXIT_OK)
        exit_code = sync_pull(&c, &pulled);
    if (exit_code == EXIT_OK &&
        spro_local_conflicts(c.local, count_conflict, &in_conflict, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client sync: %s\n", why);
        exit_code = EXIT_FAIL;
    }
    if (exit_code == EXIT_OK && a.json) {
        printf("{\"pushed\": {\"acked\": %zu, \"conflicts\": %zu, \"rejected\": %zu}, "
               "\"pulled\": %zu, \"in_conflict\": %zu, \"rejected_ops\": [%.*s]}\n",
               stats.acked, stats.conflicts, stats.rejected, pulled, in_conflict,
               (int)c.rejects.len, c.rejects.data ? (const char *)c.rejects.data : "");
    } else if (exit_code == EXIT_OK) {
        printf("pulled: %zu records\n", pulled);
        if (in_conflict > 0)
            printf("in conflict: %zu fields (see spro-client conflicts)\n", in_conflict);
    }
    spro_client_channel_destroy(c.ch);
    spro_local_close(c.local);
    spro_memzero(c.arena.base, c.arena.len);
    free(c.arena.base);
    spro_buf_free(&c.rejects);
    spro_memzero(c.sk, sizeof c.sk);
    spro_client_home_close(&home);
    return exit_code;
}

static const struct command commands[] = {
    {"enroll", "TICKET", "enrol this device with a ticket (spro-admin device invite)", cmd_enroll},
    {"ping", "", "open a session and show the server's view of this device", cmd_ping},
    {"sync", "", "push this device's edits, pull what changed", cmd_sync},
    {"new", "TYPE FIELD=VALUE...", "create a record (offline)", spro_client__cmd_new},
    {"edit", "ID FIELD=VALUE...", "set fields of a record (offline)", spro_client__cmd_edit},
    {"show", "ID", "show a record, conflicts in full", spro_client__cmd_show},
    {"list", "[TYPE]", "list the records on this device", spro_client__cmd_list},
    {"conflicts", "", "list the fields in conflict", spro_client__cmd_conflicts},
    {"quarantine", "", "list this device's ops the server refused", spro_client__cmd_quarantine},
    {"resolve", "ID FIELD VALUE", "settle a conflict with one value (offline)",
     spro_client__cmd_resolve},
    {"refer", "ID --to ORG", "refer or transfer a beneficiary to an organisation (offline)",
     spro_client__cmd_refer},
    {"accept", "ID", "accept a referral to this organisation (offline)", spro_client__cmd_accept},
    {"refuse", "ID", "refuse a referral to this organisation (offline)", spro_client__cmd_refuse},
    {"duplicates", "", "list duplicate candidates (supervisors)", spro_client__cmd_duplicates},
    {"merge", "KEEP_ID OTHER_ID", "merge a beneficiary into another (supervisors, offline)",
     spro_client__cmd_merge},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spro-client --home DIR [--timeout SECONDS] [--insecure] COMMAND [ARG]...\n"
            "The reference spro-sync device: enrol, then talk to spro-server over the\n"
            "Noise channel; keep records offline in a local store and sync them.\n\n"
            "  --home DIR          this device's directory: key, state and local store\n"
            "                      (required)\n"
            "  --timeout SECONDS   limit of each HTTP request, connecting included\n"
            "                      (default %d)\n"
            "  --insecure          https: do not verify the server's TLS certificate\n"
            "                      (self-signed test servers; the Noise channel still\n"
            "                      authenticates the server)\n"
            "  --help              show this help; COMMAND --help shows a command's\n"
            "  --version           show the version\n\ncommands:\n",
            DEFAULT_TIMEOUT_S);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %-19s %s\n", commands[i].name, commands[i].args, commands[i].summary);
    fprintf(f, "\nexit status: 0 success, 1 failure, 2 usage error, 3 device revoked,\n"
               "4 device wiped on the server's order (local data erased)\n");
}

static bool parse_timeout(const char *s, int *ms)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > MAX_TIMEOUT_S)
        return false;
    *ms = (int)v * 1000;
    return true;
}

int main(int argc, char **argv)
{
    struct options o = {.http = {.timeout_ms = DEFAULT_TIMEOUT_S * 1000}};
    const char *timeout = NULL;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("spro-client %s\n", SPRO_VERSION);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
            o.home = argv[++i];
        } else if (strncmp(argv[i], "--home=", 7) == 0) {
            o.home = argv[i] + 7;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = argv[++i];
        } else if (strncmp(argv[i], "--timeout=", 10) == 0) {
            timeout = argv[i] + 10;
        } else if (strcmp(argv[i], "--insecure") == 0) {
            o.http.insecure = true;
        } else if (strcmp(argv[i], "--home") == 0 || strcmp(argv[i], "--timeout") == 0) {
            fprintf(stderr, "spro-client: %s needs a value (see spro-client --help)\n", argv[i]);
            return EXIT_USAGE;
        } else {
            fprintf(stderr, "spro-client: unknown option '%s' (see spro-client --help)\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (o.home != NULL && o.home[0] == '\0') {
        fprintf(stderr, "spro-client: --home needs a directory\n");
        return EXIT_USAGE;
    }
    if (timeout != NULL && !parse_timeout(timeout, &o.http.timeout_ms)) {
        fprintf(stderr, "spro-client: --timeout takes a whole number of seconds, 1 to %d\n",
                MAX_TIMEOUT_S);
        return EXIT_USAGE;
    }
    umask(077);               /* the home and everything in it are for its owner only */
    signal(SIGPIPE, SIG_IGN); /* a server that hangs up is an error return, not a death */
    if (spro_crypto_init() != 0) {
        fprintf(stderr, "spro-client: cannot initialise libsodium\n");
        return EXIT_FAIL;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].fn(&o, argc - i - 1, argv + i + 1);
    fprintf(stderr, "spro-client: unknown command '%s' (see spro-client --help)\n", argv[i]);
    return EXIT_USAGE;
}
