/*
 * test_channel.c: end-to-end tests of the device channel against a real
 * spro-server, speaking Noise_IK and sealed frames directly (crypto/ and
 * proto/ of this project), so that every bad input of docs/PROTOCOL.md
 * "Device channel" can be sent on purpose.  Organisations, users, tickets
 * and device states are set through the store API on the server's data
 * directory while the server runs, as spro-admin does.
 *
 * usage: test_e2e_channel SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "device.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- tests ---------------------------------------------------------- */

static void test_server_key(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "key", NULL), 0);
    struct h_response r;
    int rc = h_request(e.srv.port, "GET", "/v1/server-key", NULL, NULL, 0, &r);
    struct spro_msg m;
    int dec = rc == 0 ? spro_proto_decode(r.body, r.body_len, &m) : -1;
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, e.server_pk);
    int stop = dv_env_stop(&e);
    CHECK_EQ(rc, 0);
    CHECK_EQ(dec, 0);
    CHECK_EQ(m.type, SPRO_MSG_SERVER_KEY);
    CHECK_BYTES(m.u.server_key.key.p, m.u.server_key.key.len, e.server_pk, 32);
    CHECK(dv_bytes_is(m.u.server_key.fingerprint, fp));
    CHECK_EQ(stop, 0);
}

static void test_enrol_then_ping(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "enrol", NULL), 0);
    struct dv_dev d;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK(dv_bytes_is(d.welcome.view.user, "alice"));
    CHECK(dv_bytes_is(d.welcome.view.org, "cio-nord"));
    CHECK(dv_bytes_is(d.welcome.view.role, "counsellor"));
    CHECK_EQ(d.welcome.idle_ttl, 300);
    CHECK_EQ(dv_ping(&e, &d, &r, &m, plain), 0);
    CHECK_EQ(m.type, SPRO_MSG_PONG);
    CHECK(dv_bytes_is(m.u.pong.device, d.device_id));
    CHECK(dv_bytes_is(m.u.pong.org, "cio-nord"));
    /* A later handshake without a ticket finds the device by its key. */
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    CHECK_EQ(dv_ping(&e, &d, &r, &m, plain), 0);
    CHECK(dv_bytes_is(m.u.pong.user, "alice"));
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static void test_wrong_server_key_unknown_device(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "wrongkey", NULL), 0);
    struct dv_dev d;
    dv_dev_new(&d);
    struct spro_ticket t = dv_ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    uint8_t other_pk[32], other_sk[32], buf[2048];
    spro_crypto_dh_keypair(other_pk, other_sk);
    struct spro_noise_handshake *hs;
    size_t n = dv_msg1(&d, other_pk, &t, &hs, buf, sizeof buf); /* pinned the wrong key */
    spro_noise_handshake_destroy(hs);
    struct h_response r;
    CHECK_EQ(h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, n, &r),
             0);
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "handshake_failed");
    /* The ticket was not spent by that attempt. */
    CHECK_EQ(dv_handshake(&e, &d, &t, &r), 0);
    /* A key never enrolled, without a ticket. */
    struct dv_dev stranger;
    dv_dev_new(&stranger);
    CHECK(dv_handshake(&e, &stranger, NULL, &r) != 0);
    CHECK_EQ(r.status, 403);
    CHECK_STR(h_error_code(&r), "unknown_device");
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static void test_revoked_device(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "revoke", NULL), 0);
    struct dv_dev d, other;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(dv_enrolled(&e, &other, "bob"), 0);
    CHECK_EQ(dv_ping(&e, &d, &r, &m, plain), 0);
    CHECK_EQ(spro_device_set_state(e.dd, d.device_id, SPRO_DEVICE_REVOKED, NULL, 0), 0);
    /* Its very next request gets the revocation, sealed: nobody on the path
     * could have forged it. */
    CHECK_EQ(dv_ping(&e, &d, &r, &m, plain), 0);
    CHECK_EQ(m.type, SPRO_MSG_ERROR);
    CHECK(dv_bytes_is(m.u.error.code, "device_revoked"));
    CHECK(dv_ping(&e, &d, &r, &m, plain) != 0); /* the session was ended */
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "session_invalid");
    /* A new handshake: 403, and the reason inside message 2. */
    CHECK(dv_handshake(&e, &d, NULL, &r) != 0);
    CHECK_EQ(r.status, 403);
    CHECK_STR(d.refusal, "device_revoked");
    CHECK_EQ(dv_ping(&e, &other, &r, &m, plain), 0); /* others keep going */
    dv_dev_end_session(&d);
    dv_dev_end_session(&other);
    CHECK_EQ(dv_env_stop(&e), 0);
}

/* Sealed echo answers from memory while no device changed state; a
 * revocation moves the devices generation and the very next request
 * fails. */
static void test_revoked_device_without_database_read(void)
{
    struct dv_env e;
    const char *extra[] = {"--bench", NULL};
    CHECK_EQ(dv_env_start(&e, "revoke-echo", extra), 0);
    struct dv_dev d;
    struct h_response r;
    struct spro_msg echo = {.type = SPRO_MSG_ECHO}, m;
    echo.u.echo.data = (struct spro_bytes){(const uint8_t *)"hi", 2};
    uint8_t frame[512], plain[1024];
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    const char *path = "/v1/bench/sealed-echo";
    for (int i = 0; i < 3; i++) {
        size_t n = dv_seal(&d, &echo, "POST", path, d.counter++, frame, sizeof frame);
        CHECK_EQ(h_request(e.srv.port, "POST", path, "application/octet-stream", frame, n, &r), 0);
        CHECK_EQ(dv_unseal(&d, &r, "POST", path, frame, plain, &m), 0);
        CHECK_EQ(m.type, SPRO_MSG_ECHO_REPLY);
    }
    uint64_t before = spro_datadir_devices_generation(e.dd);
    CHECK_EQ(spro_device_set_state(e.dd, d.device_id, SPRO_DEVICE_REVOKED, NULL, 0), 0);
    CHECK_EQ(spro_datadir_devices_generation(e.dd), before + 1);
    size_t n = dv_seal(&d, &echo, "POST", path, d.counter++, frame, sizeof frame);
    CHECK_EQ(h_request(e.srv.port, "POST", path, "application/octet-stream", frame, n, &r), 0);
    CHECK_EQ(dv_unseal(&d, &r, "POST", path, frame, plain, &m), 0);
    CHECK_EQ(m.type, SPRO_MSG_ERROR);
    CHECK(dv_bytes_is(m.u.error.code, "device_revoked"));
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static void test_wiped_device(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "wipe", NULL), 0);
    struct dv_dev d;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(spro_device_set_state(e.dd, d.device_id, SPRO_DEVICE_WIPE_PENDING, NULL, 0), 0);
    CHECK(dv_ping(&e, &d, &r, &m, plain) != 0);
    CHECK_EQ(r.status, 401); /* sent back to the handshake, which carries the order */
    CHECK_STR(h_error_code(&r), "session_invalid");
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    CHECK(d.wiped);
    CHECK(d.send == NULL); /* no session with a wipe order */
    struct spro_device after;
    CHECK_EQ(spro_device_by_key(e.dd, d.pk, &after), 0);
    CHECK_EQ(after.state, SPRO_DEVICE_WIPED);
    d.wiped = false;
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0); /* the order again: a lost answer loses nothing */
    CHECK(d.wiped);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static void test_expired_and_reused_ticket(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "tickets", NULL), 0);
    struct h_response r;
    struct dv_dev a, b, c;
    dv_dev_new(&a);
    dv_dev_new(&b);
    dv_dev_new(&c);
    struct spro_ticket old = dv_ticket_for(&e, "alice", (int64_t)time(NULL) - 1000, 900);
    CHECK(dv_handshake(&e, &a, &old, &r) != 0);
    CHECK_EQ(r.status, 403);
    CHECK_STR(h_error_code(&r), "ticket_invalid");
    struct spro_ticket t = dv_ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    CHECK_EQ(dv_handshake(&e, &b, &t, &r), 0);
    CHECK(dv_handshake(&e, &c, &t, &r) != 0); /* used */
    CHECK_EQ(r.status, 403);
    CHECK_STR(h_error_code(&r), "ticket_invalid");
    struct spro_device dv;
    CHECK_EQ(spro_device_by_key(e.dd, c.pk, &dv), SPRO_ENOENT); /* nothing written for it */
    dv_dev_end_session(&b);
    CHECK_EQ(dv_env_stop(&e), 0);
}

struct race {
    struct dv_env *e;
    const struct spro_ticket *t;
    int status;
};

static void *race_one(void *arg)
{
    struct race *rc = arg;
    struct dv_dev d;
    struct h_response *r = malloc(sizeof *r);
    dv_dev_new(&d);
    dv_handshake(rc->e, &d, rc->t, r);
    rc->status = r->status;
    dv_dev_end_session(&d);
    free(r);
    return NULL;
}

static void test_ticket_race(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "race", NULL), 0);
    int wins = 0, losses = 0;
    for (int round = 0; round < 5; round++) {
        struct spro_ticket t = dv_ticket_for(&e, "alice", (int64_t)time(NULL), 900);
        struct race a = {&e, &t, 0}, b = {&e, &t, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race_one, &a);
        pthread_create(&tb, NULL, race_one, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        wins += (a.status == 200) + (b.status == 200);
        losses += (a.status == 403) + (b.status == 403);
    }
    int stop = dv_env_stop(&e);
    CHECK_EQ(wins, 5); /* exactly one per ticket */
    CHECK_EQ(losses, 5);
    CHECK_EQ(stop, 0);
}

static void test_ticket_brute_force(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "brute", NULL), 0);
    struct spro_ticket t = dv_ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    struct h_response r;
    int invalid = 0, limited = 0;
    for (int i = 0; i < 12; i++) {
        struct spro_ticket guess = t;
        guess.secret[i % 32] ^= 0x5a; /* wrong secret, right id */
        struct dv_dev d;
        dv_dev_new(&d);
        dv_handshake(&e, &d, &guess, &r);
        invalid += r.status == 403 && strcmp(h_error_code(&r), "ticket_invalid") == 0;
        limited += r.status == 429 && strcmp(h_error_code(&r), "rate_limited") == 0;
    }
    CHECK_EQ(invalid, 10); /* then this address is refused before any cryptography */
    CHECK_EQ(limited, 2);
    /* The ticket died after 5 wrong secrets: even the right one fails now. */
    struct spro_device dv;
    char why[256];
    int used =
        spro_ticket_redeem(e.dd, t.id, t.secret, (uint8_t[32]){1}, 1, (int64_t)time(NULL), &dv);
    (void)why;
    CHECK_EQ(dv_env_stop(&e), 0);
    CHECK_EQ(used, SPRO_ETICKET);
}

static void test_replayed_handshake(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "replay", NULL), 0);
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    dv_dev_end_session(&d);
    uint8_t buf[2048];
    struct spro_noise_handshake *hs;
    size_t n = dv_msg1(&d, e.server_pk, NULL, &hs, buf, sizeof buf);
    struct h_response r1, r2;
    CHECK_EQ(h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, n, &r1),
             0);
    CHECK_EQ(dv_msg2(&d, hs, &r1), 0);
    struct spro_device before, after;
    CHECK_EQ(spro_device_by_key(e.dd, d.pk, &before), 0);
    CHECK_EQ(h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, n, &r2),
             0);
    CHECK_EQ(r2.status, 409);
    CHECK_STR(h_error_code(&r2), "replayed");
    CHECK_EQ(spro_device_by_key(e.dd, d.pk, &after), 0);
    CHECK_EQ(before.last_ts_ms, after.last_ts_ms); /* nothing written */
    /* The first session still works. */
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(dv_ping(&e, &d, &r1, &m, plain), 0);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

/* One case of a table of bad requests: its name, the answer expected, and
 * whether the session still works after it. */
struct bad_case {
    const char *name;
    int status;
    const char *code;
    bool session_survives;
};

/* Checks the answer *r to bad case c, then pings (overwriting *r) to see
 * whether the session survived as c says.  NULL if all is as expected, else
 * why (cap bytes), the first difference. */
static const char *bad_case_outcome(struct dv_env *e, struct dv_dev *d, const struct bad_case *c,
                                    struct h_response *r, char *why, size_t cap)
{
    if (r->status != c->status || strcmp(h_error_code(r), c->code) != 0) {
        snprintf(why, cap, "%s: got %d %s", c->name, r->status, h_error_code(r));
        return why;
    }
    struct spro_msg m;
    uint8_t plain[1024];
    int after = dv_ping(e, d, r, &m, plain);
    if ((after == 0) != c->session_survives) {
        snprintf(why, cap, "%s: session %s", c->name, after == 0 ? "survived" : "was ended");
        return why;
    }
    if (!c->session_survives && strcmp(h_error_code(r), "session_invalid") != 0) {
        snprintf(why, cap, "%s: after it, %s", c->name, h_error_code(r));
        return why;
    }
    return NULL;
}

/* Each case: a fresh session, one bad frame, the expected answer, then a
 * good frame to see whether the session survived. */
static void test_bad_sealed_frames(void)
{
    static const struct bad_case cases[] = {
        {"replayed counter", 401, "decrypt_failed", false},
        {"counter far below the window", 401, "decrypt_failed", false},
        {"path changed", 401, "decrypt_failed", false},
        {"method changed", 401, "decrypt_failed", false},
        {"ciphertext flipped", 401, "decrypt_failed", false},
        {"tag flipped", 401, "decrypt_failed", false},
        {"session id flipped", 401, "session_invalid", true},
        {"truncated frame", 400, "bad_frame", true},
        {"wrong content type", 415, "unsupported_media_type", true},
    };
    struct dv_env e;
    const char *extra[] = {"--bench", NULL};
    CHECK_EQ(dv_env_start(&e, "frames", extra), 0);
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    struct spro_msg p = {.type = SPRO_MSG_PING};
    uint8_t frame[512];
    struct h_response r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_response hr;
        if (i > 0)
            CHECK_EQ(dv_handshake(&e, &d, NULL, &hr), 0);
        const char *path = "/v1/ping", *ctype = "application/octet-stream";
        size_t n;
        if (i == 0) { /* a good frame, then the same frame again */
            n = dv_seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
            CHECK_EQ(h_request(e.srv.port, "POST", path, ctype, frame, n, &r), 0);
            CHECK_EQ(r.status, 200);
        } else if (i == 1) { /* counter 10 delivered after counter 1000 */
            uint8_t late[512];
            size_t late_n = dv_seal(&d, &p, "POST", "/v1/ping", 10, late, sizeof late);
            d.counter = 1000;
            n = dv_seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
            CHECK_EQ(h_request(e.srv.port, "POST", path, ctype, frame, n, &r), 0);
            CHECK_EQ(r.status, 200);
            memcpy(frame, late, late_n);
            n = late_n;
        } else if (i == 2) { /* sealed for /v1/ping, delivered to another route */
            n = dv_seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
            path = "/v1/bench/sealed-echo";
        } else if (i == 3) { /* sealed as PUT, delivered as POST */
            n = dv_seal(&d, &p, "PUT", "/v1/ping", d.counter++, frame, sizeof frame);
        } else {
            n = dv_seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
            if (i == 4)
                frame[24] ^= 1;
            else if (i == 5)
                frame[n - 1] ^= 1;
            else if (i == 6)
                frame[3] ^= 1;
            else if (i == 7)
                n = 30;
            else
                ctype = "application/msgpack";
        }
        CHECK_EQ(h_request(e.srv.port, "POST", path, ctype, frame, n, &r), 0);
        char why[256];
        if (bad_case_outcome(&e, &d, &cases[i], &r, why, sizeof why) != NULL)
            CHECK__FAIL("%s", why);
    }
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static void test_bad_handshake_sizes(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "hsizes", NULL), 0);
    struct dv_dev d;
    dv_dev_new(&d);
    struct spro_ticket t = dv_ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    uint8_t buf[4096];
    struct spro_noise_handshake *hs;
    size_t n = dv_msg1(&d, e.server_pk, &t, &hs, buf, sizeof buf);
    spro_noise_handshake_destroy(hs);
    struct h_response r;
    CHECK_EQ(h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, 50, &r),
             0);
    CHECK_EQ(r.status, 400);
    CHECK_STR(h_error_code(&r), "bad_frame");
    CHECK_EQ(
        h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, n - 1, &r),
        0);
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "handshake_failed");
    memset(buf + n, 0, 2000);
    CHECK_EQ(
        h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, n + 2000, &r),
        0);
    CHECK_EQ(r.status, 400);
    CHECK_STR(h_error_code(&r), "bad_frame");
    CHECK_EQ(h_request(e.srv.port, "POST", "/v1/session", "application/msgpack", buf, n, &r), 0);
    CHECK_EQ(r.status, 415);
    /* None of that spent the ticket. */
    CHECK_EQ(dv_handshake(&e, &d, &t, &r), 0);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static void test_expired_session(void)
{
    struct dv_env e;
    const char *extra[] = {"--session-idle-ttl", "1", NULL};
    CHECK_EQ(dv_env_start(&e, "expiry", extra), 0);
    struct dv_dev d;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(dv_ping(&e, &d, &r, &m, plain), 0);
    usleep(1300000);
    CHECK(dv_ping(&e, &d, &r, &m, plain) != 0);
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "session_invalid");
    CHECK_EQ(dv_handshake(&e, &d, NULL, &r), 0);
    CHECK_EQ(dv_ping(&e, &d, &r, &m, plain), 0);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static void test_logs_hold_no_secrets(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "logs", NULL), 0);
    struct spro_ticket t = dv_ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    struct dv_dev d;
    struct h_response r;
    dv_dev_new(&d);
    CHECK_EQ(dv_handshake(&e, &d, &t, &r), 0);
    struct spro_ticket bad = t;
    bad.secret[0] ^= 1;
    struct dv_dev d2;
    dv_dev_new(&d2);
    dv_handshake(&e, &d2, &bad, &r);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
    char *log = h_server_log(&e.srv);
    char hex[65];
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", t.secret[i]);
    CHECK(strstr(log, "session_opened") != NULL);
    CHECK(strstr(log, "ticket_invalid") != NULL);
    CHECK(strstr(log, hex) == NULL);
    CHECK(memmem(log, strlen(log), t.secret, 32) == NULL);
    free(log);
}

/* ---- chunked messages ------------------------------------------------ */

/* The encoded push of n new beneficiaries, seqs first.. (about 260 bytes
 * each, so that 1,000 take several chunks). */
static void big_push(size_t n, uint64_t first, struct spro_buf *out)
{
    struct spro_wire_op *ops = calloc(n, sizeof *ops);
    struct spro_wire_edit *eds = calloc(n, sizeof *eds);
    char(*ids)[37] = calloc(n, 37);
    static char value[101];
    memset(value, 'v', 100);
    uint64_t hlc = (uint64_t)time(NULL) * 1000 << 16;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = first + i;
        snprintf(ids[i], 37, "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(seq * 2654435761u),
                 (unsigned)(seq & 0xffff), (unsigned)(seq & 0xfff), (unsigned)((seq >> 12) & 0xfff),
                 (unsigned long long)seq);
        eds[i].name = (struct spro_bytes){(const uint8_t *)"given_name", 10};
        eds[i].val.kind = SPRO_VALUE_STR;
        eds[i].val.s = (struct spro_bytes){(const uint8_t *)value, 100};
        ops[i] = (struct spro_wire_op){.seq = seq,
                                       .rtype = {(const uint8_t *)"beneficiary", 11},
                                       .rid = {(const uint8_t *)ids[i], 36},
                                       .ben = {(const uint8_t *)ids[i], 36},
                                       .schema = 1,
                                       .hlc = hlc + i,
                                       .set = &eds[i],
                                       .nset = 1};
    }
    struct spro_msg m = {.type = SPRO_MSG_PUSH};
    m.u.push.ops = ops;
    m.u.push.nops = n;
    if (spro_proto_encode(&m, out) != 0)
        abort();
    free(ops);
    free(eds);
    free(ids);
}

/* A sealed push of n ops from seq first, under the device's next counters;
 * *chunks its chunks.  The body is malloc'd. */
static uint8_t *sealed_push(struct dv_dev *d, size_t n, uint64_t first, size_t *len, size_t *chunks)
{
    struct spro_buf pt = {0};
    big_push(n, first, &pt);
    size_t cap = 24 + spro_noise_chunked_size(pt.len);
    uint8_t *body = malloc(cap);
    *len = dv_seal_plain(d, pt.data, pt.len, "POST", "/v1/sync/push", d->counter, body, cap);
    *chunks = spro_noise_chunks(pt.len);
    d->counter += *chunks;
    spro_buf_free(&pt);
    return body;
}

static const char *push_path = "/v1/sync/push";

/* A 1,000-op push (several chunks each way) is applied and answered. */
static void test_chunked_push_round_trip(void)
{
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "chunked", NULL), 0);
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    size_t len, chunks, alen, plen;
    uint8_t *body = sealed_push(&d, SPRO_SYNC_MAX_OPS, 1, &len, &chunks), *ans;
    CHECK(chunks >= 3);
    CHECK_EQ(dv_post_big(e.srv.port, push_path, body, len, &ans, &alen), 200);
    uint8_t *plain = malloc(alen);
    CHECK_EQ(dv_open(&d, ans, alen, "POST", push_path, body, plain, alen, &plen), 0);
    CHECK(plen > SPRO_NOISE_CHUNK_PLAIN); /* the answer took several chunks too */
    struct spro_arena a = {malloc(SPRO_PROTO_ARENA_BYTES(plen)), 0, SPRO_PROTO_ARENA_BYTES(plen)};
    struct spro_msg m;
    CHECK_EQ(spro_proto_decode_sync(plain, plen, &a, &m), 0);
    CHECK_EQ(m.type, SPRO_MSG_PUSH_REPLY);
    CHECK_EQ(m.u.push_reply.nresults, SPRO_SYNC_MAX_OPS);
    size_t acked = 0;
    for (size_t i = 0; i < m.u.push_reply.nresults; i++)
        acked += m.u.push_reply.results[i].status == SPRO_RESULT_ACK;
    CHECK_EQ(acked, SPRO_SYNC_MAX_OPS);
    free(a.base);
    free(plain);
    free(ans);
    /* The session goes on, with the counters after the message's. */
    struct h_response r;
    uint8_t small[1024];
    CHECK_EQ(dv_ping(&e, &d, &r, &m, small), 0);
    CHECK_EQ(m.type, SPRO_MSG_PONG);
    /* Every counter of the message was spent by it: its last chunk alone,
     * under its own counter, would be a valid one-chunk message (same AD,
     * same nonce), and is refused as a replay. */
    size_t last = 24 + (chunks - 1) * SPRO_NOISE_MAX_MESSAGE;
    uint8_t *tail = malloc(len - last + 24);
    memcpy(tail, body, 16);
    dv_put_be64(tail + 16, d.counter - 2); /* counters: push c..c+k-1, then the ping */
    memcpy(tail + 24, body + last, len - last);
    CHECK_EQ(h_request(e.srv.port, "POST", push_path, "application/octet-stream", tail,
                       len - last + 24, &r),
             0);
    free(tail);
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "decrypt_failed");
    free(body);
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

/* Each case: a fresh session, one bad chunked push, the expected answer,
 * then a ping to see whether the session survived. */
static void test_bad_chunked_messages(void)
{
    static const struct bad_case cases[] = {
        {"replayed", 401, "decrypt_failed", false},
        {"last chunk dropped", 401, "decrypt_failed", false},
        {"chunks swapped", 401, "decrypt_failed", false},
        {"chunk flipped", 401, "decrypt_failed", false},
        {"non-final chunk too short", 400, "bad_frame", true},
        {"4 MiB + 1 of plaintext", 400, "bad_frame", true},
        {"counters past 2^64-2", 400, "bad_frame", true},
    };
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "badchunks", NULL), 0);
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);
    uint64_t seq = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_response *r = malloc(sizeof *r);
        if (i > 0)
            CHECK_EQ(dv_handshake(&e, &d, NULL, r), 0);
        size_t len, chunks;
        uint8_t *body = sealed_push(&d, SPRO_SYNC_MAX_OPS, seq, &len, &chunks);
        seq += SPRO_SYNC_MAX_OPS;
        CHECK(chunks >= 3);
        const size_t C = SPRO_NOISE_MAX_MESSAGE;
        if (i == 0) { /* accepted once, then sent again */
            uint8_t *ans;
            size_t alen;
            CHECK_EQ(dv_post_big(e.srv.port, push_path, body, len, &ans, &alen), 200);
            free(ans);
        } else if (i == 1) {
            len = 24 + (chunks - 1) * C;
        } else if (i == 2) {
            uint8_t *tmp = malloc(C);
            memcpy(tmp, body + 24, C);
            memmove(body + 24, body + 24 + C, C);
            memcpy(body + 24 + C, tmp, C);
            free(tmp);
        } else if (i == 3) {
            body[24 + C + 100] ^= 1;
        } else if (i == 4) { /* chunk 0 shortened: the last one is then under a tag */
            size_t last = len - 24 - (chunks - 1) * C, cut = last - 8;
            memmove(body + 24 + 1000, body + 24 + 1000 + cut, len - 24 - 1000 - cut);
            len -= cut;
        } else if (i == 5) {
            size_t big = 24 + spro_noise_chunked_size(SPRO_SEALED_MAX_PLAIN + 1);
            CHECK(big > 24 + spro_noise_chunked_size(SPRO_SEALED_MAX_PLAIN));
            body = realloc(body, big);
            memset(body + len, 0x5a, big - len);
            len = big;
        } else {
            dv_put_be64(body + 16, UINT64_MAX - 2); /* 3 or more chunks from there */
        }
        if (h_request(e.srv.port, "POST", push_path, "application/octet-stream", body, len, r) != 0)
            CHECK__FAIL("%s: no answer", cases[i].name);
        char why[256];
        if (bad_case_outcome(&e, &d, &cases[i], r, why, sizeof why) != NULL)
            CHECK__FAIL("%s", why);
        free(body);
        free(r);
    }
    dv_dev_end_session(&d);
    CHECK_EQ(dv_env_stop(&e), 0);
}

static const struct check_test tests[] = {
    {"server_key", test_server_key},
    {"enrol_then_ping", test_enrol_then_ping},
    {"wrong_server_key_unknown_device", test_wrong_server_key_unknown_device},
    {"revoked_device", test_revoked_device},
    {"revoked_device_without_database_read", test_revoked_device_without_database_read},
    {"wiped_device", test_wiped_device},
    {"expired_and_reused_ticket", test_expired_and_reused_ticket},
    {"ticket_race", test_ticket_race},
    {"ticket_brute_force", test_ticket_brute_force},
    {"replayed_handshake", test_replayed_handshake},
    {"bad_sealed_frames", test_bad_sealed_frames},
    {"bad_handshake_sizes", test_bad_handshake_sizes},
    {"expired_session", test_expired_session},
    {"logs_hold_no_secrets", test_logs_hold_no_secrets},
    {"chunked_push_round_trip", test_chunked_push_round_trip},
    {"bad_chunked_messages", test_bad_chunked_messages},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
