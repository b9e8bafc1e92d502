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
#include "crypto/crypto.h"
#include "harness.h"
#include "proto/proto.h"
#include "sync/sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL "Noise_IK_25519_ChaChaPoly_BLAKE2b"

/* A server with its data directory open in this process too. */
struct env {
    struct h_server srv;
    struct spro_datadir *dd;
    uint8_t server_pk[SPRO_KEY_BYTES];
};

static int env_start(struct env *e, const char *name, const char *const *extra)
{
    char dir[512], why[512];
    snprintf(dir, sizeof dir, "%s", h_make_datadir(name));
    if (spro_datadir_open(dir, &e->dd, why, sizeof why) != 0 ||
        spro_org_add(e->dd, "cio-nord", "CIO Nord", "cio", why, sizeof why) != 0 ||
        spro_org_add(e->dd, "ml-sud", "Mission locale Sud", "mission-locale", why, sizeof why) !=
            0 ||
        spro_user_add(e->dd, "alice", "cio-nord", "counsellor", why, sizeof why) != 0 ||
        spro_user_add(e->dd, "bob", "ml-sud", "supervisor", why, sizeof why) != 0) {
        fprintf(stderr, "setup failed: %s\n", why);
        return -1;
    }
    memcpy(e->server_pk, spro_datadir_noise_public(e->dd), SPRO_KEY_BYTES);
    return h_server_start(&e->srv, dir, extra);
}

static int env_stop(struct env *e)
{
    spro_datadir_close(e->dd);
    return h_server_stop(&e->srv, 5000);
}

static struct spro_ticket ticket_for(struct env *e, const char *user, int64_t now, int64_t ttl)
{
    struct spro_ticket t;
    if (spro_ticket_issue(e->dd, user, now, ttl, &t, NULL, 0) != 0)
        abort();
    return t;
}

/* A device: its keys, and its session once a handshake succeeded. */
struct dev {
    uint8_t sk[SPRO_KEY_BYTES], pk[SPRO_KEY_BYTES];
    uint64_t ts;
    struct spro_noise_cipher *send, *recv;
    uint8_t sid[16];
    uint64_t counter;
    struct spro_msg_welcome welcome;
    char device_id[65];
    bool wiped;
    char refusal[65]; /* code of an authenticated refusal in message 2 */
};

static void dev_new(struct dev *d)
{
    memset(d, 0, sizeof *d);
    spro_crypto_dh_keypair(d->pk, d->sk);
    d->ts = (uint64_t)time(NULL) * 1000;
}

static void dev_end_session(struct dev *d)
{
    spro_noise_cipher_destroy(d->send);
    spro_noise_cipher_destroy(d->recv);
    d->send = d->recv = NULL;
}

/* Builds handshake message 1 into out; *hs keeps the initiator state. */
static size_t msg1(struct dev *d, const uint8_t rs[32], const struct spro_ticket *t,
                   struct spro_noise_handshake **hs, uint8_t *out, size_t cap)
{
    uint8_t prologue[11 + 32];
    memcpy(prologue, "spro-sync/1", 11);
    memcpy(prologue + 11, rs, 32);
    if (spro_noise_handshake_init(hs, PROTOCOL, 1, prologue, sizeof prologue, d->sk, rs, NULL, 0) !=
        0)
        abort();
    struct spro_msg m = {.type = SPRO_MSG_HELLO};
    m.u.hello.ts = ++d->ts;
    m.u.hello.app = (struct spro_bytes){(const uint8_t *)"test 1.0", 8};
    m.u.hello.schema = 1;
    if (t != NULL) {
        m.u.hello.has_ticket = true;
        m.u.hello.ticket_id = (struct spro_bytes){(const uint8_t *)t->id, 16};
        m.u.hello.ticket_secret = (struct spro_bytes){t->secret, 32};
    }
    struct spro_buf b = {0};
    size_t n = 0;
    if (spro_proto_encode(&m, &b) != 0 ||
        spro_noise_write_message(*hs, b.data, b.len, out, cap, &n))
        abort();
    spro_buf_free(&b);
    return n;
}

/* Reads message 2: 0 with a session (or d->wiped set), -1 otherwise. */
static int msg2(struct dev *d, struct spro_noise_handshake *hs, const struct h_response *r)
{
    uint8_t payload[1024];
    size_t plen;
    struct spro_msg m;
    int rc = -1;
    char ct[64] = "";
    h_header(r, "content-type", ct, sizeof ct);
    d->refusal[0] = '\0';
    if ((r->status == 200 || strcmp(ct, "application/octet-stream") == 0) &&
        spro_noise_read_message(hs, r->body, r->body_len, payload, sizeof payload, &plen) == 0 &&
        spro_proto_decode(payload, plen, &m) == 0) {
        if (m.type == SPRO_MSG_ERROR) { /* an authenticated refusal */
            snprintf(d->refusal, sizeof d->refusal, "%.*s", (int)m.u.error.code.len,
                     (const char *)m.u.error.code.p);
        } else if (m.type == SPRO_MSG_WIPE) {
            d->wiped = true;
            rc = 0;
        } else if (m.type == SPRO_MSG_WELCOME && spro_noise_split(hs, &d->send, &d->recv) == 0) {
            memcpy(d->sid, m.u.welcome.session.p, 16);
            snprintf(d->device_id, sizeof d->device_id, "%.*s", (int)m.u.welcome.view.device.len,
                     (const char *)m.u.welcome.view.device.p);
            d->welcome = m.u.welcome;
            d->counter = 0;
            rc = 0;
        }
    }
    spro_noise_handshake_destroy(hs);
    return rc;
}

/* A whole handshake; r receives the HTTP answer. */
static int handshake(struct env *e, struct dev *d, const struct spro_ticket *t,
                     struct h_response *r)
{
    uint8_t buf[2048];
    struct spro_noise_handshake *hs;
    size_t n = msg1(d, e->server_pk, t, &hs, buf, sizeof buf);
    dev_end_session(d);
    if (h_request(e->srv.port, "POST", "/v1/session", "application/octet-stream", buf, n, r) != 0) {
        spro_noise_handshake_destroy(hs);
        return -1;
    }
    return msg2(d, hs, r);
}

static size_t ad(uint8_t *out, const char *tag, const char *method, const char *path,
                 const uint8_t sid[16], const uint8_t *req_ctr)
{
    size_t n = 0;
    memcpy(out + n, tag, strlen(tag)), n += strlen(tag);
    out[n++] = 0;
    memcpy(out + n, method, strlen(method)), n += strlen(method);
    out[n++] = 0;
    memcpy(out + n, path, strlen(path)), n += strlen(path);
    out[n++] = 0;
    memcpy(out + n, sid, 16), n += 16;
    if (req_ctr != NULL)
        memcpy(out + n, req_ctr, 8), n += 8;
    return n;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Seals msg as a frame for (ad_method, ad_path) with the given counter. */
static size_t seal(struct dev *d, const struct spro_msg *msg, const char *ad_method,
                   const char *ad_path, uint64_t counter, uint8_t *out, size_t cap)
{
    struct spro_buf b = {0};
    uint8_t a[256];
    if (spro_proto_encode(msg, &b) != 0)
        abort();
    size_t alen = ad(a, "spro-sync/1 req", ad_method, ad_path, d->sid, NULL);
    memcpy(out, d->sid, 16);
    put_be64(out + 16, counter);
    if (spro_noise_cipher_encrypt_with_nonce(d->send, counter, a, alen, b.data, b.len, out + 24,
                                             cap - 24) != 0)
        abort();
    size_t n = 24 + b.len + 16;
    spro_buf_free(&b);
    return n;
}

/* Opens a sealed response into *m (pointing into plain).  0 or -1. */
static int unseal(struct dev *d, const struct h_response *r, const char *method, const char *path,
                  const uint8_t *frame, uint8_t *plain, struct spro_msg *m)
{
    uint8_t a[256];
    if (r->status != 200 || r->body_len < 8 + 16)
        return -1;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n = n << 8 | r->body[i];
    size_t alen = ad(a, "spro-sync/1 res", method, path, d->sid, frame + 16);
    if (spro_noise_cipher_decrypt_with_nonce(d->recv, n, a, alen, r->body + 8, r->body_len - 8,
                                             plain, r->body_len - 8) != 0)
        return -1;
    return spro_proto_decode(plain, r->body_len - 8 - 16, m) == 0 ? 0 : -1;
}

/* Sends a sealed ping with the next counter; fills *m from the answer. */
static int ping(struct env *e, struct dev *d, struct h_response *r, struct spro_msg *m,
                uint8_t *plain)
{
    struct spro_msg p = {.type = SPRO_MSG_PING};
    uint8_t frame[512];
    size_t n = seal(d, &p, "POST", "/v1/ping", d->counter++, frame, sizeof frame);
    if (h_request(e->srv.port, "POST", "/v1/ping", "application/octet-stream", frame, n, r) != 0)
        return -1;
    return unseal(d, r, "POST", "/v1/ping", frame, plain, m);
}

static bool bytes_is(struct spro_bytes b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

/* An enrolled device with a session, for the tests that start from one. */
static int enrolled(struct env *e, struct dev *d, const char *user)
{
    struct spro_ticket t = ticket_for(e, user, (int64_t)time(NULL), 900);
    struct h_response r;
    dev_new(d);
    return handshake(e, d, &t, &r) == 0 && !d->wiped ? 0 : -1;
}

/* ---- tests ---------------------------------------------------------- */

static void test_server_key(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "key", NULL), 0);
    struct h_response r;
    int rc = h_request(e.srv.port, "GET", "/v1/server-key", NULL, NULL, 0, &r);
    struct spro_msg m;
    int dec = rc == 0 ? spro_proto_decode(r.body, r.body_len, &m) : -1;
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, e.server_pk);
    int stop = env_stop(&e);
    CHECK_EQ(rc, 0);
    CHECK_EQ(dec, 0);
    CHECK_EQ(m.type, SPRO_MSG_SERVER_KEY);
    CHECK_BYTES(m.u.server_key.key.p, m.u.server_key.key.len, e.server_pk, 32);
    CHECK(bytes_is(m.u.server_key.fingerprint, fp));
    CHECK_EQ(stop, 0);
}

static void test_enrol_then_ping(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "enrol", NULL), 0);
    struct dev d;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(enrolled(&e, &d, "alice"), 0);
    CHECK(bytes_is(d.welcome.view.user, "alice"));
    CHECK(bytes_is(d.welcome.view.org, "cio-nord"));
    CHECK(bytes_is(d.welcome.view.role, "counsellor"));
    CHECK_EQ(d.welcome.idle_ttl, 300);
    CHECK_EQ(ping(&e, &d, &r, &m, plain), 0);
    CHECK_EQ(m.type, SPRO_MSG_PONG);
    CHECK(bytes_is(m.u.pong.device, d.device_id));
    CHECK(bytes_is(m.u.pong.org, "cio-nord"));
    /* A later handshake without a ticket finds the device by its key. */
    CHECK_EQ(handshake(&e, &d, NULL, &r), 0);
    CHECK_EQ(ping(&e, &d, &r, &m, plain), 0);
    CHECK(bytes_is(m.u.pong.user, "alice"));
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
}

static void test_wrong_server_key_unknown_device(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "wrongkey", NULL), 0);
    struct dev d;
    dev_new(&d);
    struct spro_ticket t = ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    uint8_t other_pk[32], other_sk[32], buf[2048];
    spro_crypto_dh_keypair(other_pk, other_sk);
    struct spro_noise_handshake *hs;
    size_t n = msg1(&d, other_pk, &t, &hs, buf, sizeof buf); /* pinned the wrong key */
    spro_noise_handshake_destroy(hs);
    struct h_response r;
    CHECK_EQ(h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, n, &r),
             0);
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "handshake_failed");
    /* The ticket was not spent by that attempt. */
    CHECK_EQ(handshake(&e, &d, &t, &r), 0);
    /* A key never enrolled, without a ticket. */
    struct dev stranger;
    dev_new(&stranger);
    CHECK(handshake(&e, &stranger, NULL, &r) != 0);
    CHECK_EQ(r.status, 403);
    CHECK_STR(h_error_code(&r), "unknown_device");
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
}

static void test_revoked_device(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "revoke", NULL), 0);
    struct dev d, other;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(enrolled(&e, &other, "bob"), 0);
    CHECK_EQ(ping(&e, &d, &r, &m, plain), 0);
    CHECK_EQ(spro_device_set_state(e.dd, d.device_id, SPRO_DEVICE_REVOKED, NULL, 0), 0);
    /* Its very next request gets the revocation, sealed: nobody on the path
     * could have forged it. */
    CHECK_EQ(ping(&e, &d, &r, &m, plain), 0);
    CHECK_EQ(m.type, SPRO_MSG_ERROR);
    CHECK(bytes_is(m.u.error.code, "device_revoked"));
    CHECK(ping(&e, &d, &r, &m, plain) != 0); /* the session was ended */
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "session_invalid");
    /* A new handshake: 403, and the reason inside message 2. */
    CHECK(handshake(&e, &d, NULL, &r) != 0);
    CHECK_EQ(r.status, 403);
    CHECK_STR(d.refusal, "device_revoked");
    CHECK_EQ(ping(&e, &other, &r, &m, plain), 0); /* others keep going */
    dev_end_session(&d);
    dev_end_session(&other);
    CHECK_EQ(env_stop(&e), 0);
}

/* Sealed echo answers from memory while no device changed state; a
 * revocation moves the devices generation and the very next request
 * fails. */
static void test_revoked_device_without_database_read(void)
{
    struct env e;
    const char *extra[] = {"--bench", NULL};
    CHECK_EQ(env_start(&e, "revoke-echo", extra), 0);
    struct dev d;
    struct h_response r;
    struct spro_msg echo = {.type = SPRO_MSG_ECHO}, m;
    echo.u.echo.data = (struct spro_bytes){(const uint8_t *)"hi", 2};
    uint8_t frame[512], plain[1024];
    CHECK_EQ(enrolled(&e, &d, "alice"), 0);
    const char *path = "/v1/bench/sealed-echo";
    for (int i = 0; i < 3; i++) {
        size_t n = seal(&d, &echo, "POST", path, d.counter++, frame, sizeof frame);
        CHECK_EQ(h_request(e.srv.port, "POST", path, "application/octet-stream", frame, n, &r), 0);
        CHECK_EQ(unseal(&d, &r, "POST", path, frame, plain, &m), 0);
        CHECK_EQ(m.type, SPRO_MSG_ECHO_REPLY);
    }
    uint64_t before = spro_datadir_devices_generation(e.dd);
    CHECK_EQ(spro_device_set_state(e.dd, d.device_id, SPRO_DEVICE_REVOKED, NULL, 0), 0);
    CHECK_EQ(spro_datadir_devices_generation(e.dd), before + 1);
    size_t n = seal(&d, &echo, "POST", path, d.counter++, frame, sizeof frame);
    CHECK_EQ(h_request(e.srv.port, "POST", path, "application/octet-stream", frame, n, &r), 0);
    CHECK_EQ(unseal(&d, &r, "POST", path, frame, plain, &m), 0);
    CHECK_EQ(m.type, SPRO_MSG_ERROR);
    CHECK(bytes_is(m.u.error.code, "device_revoked"));
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
}

static void test_wiped_device(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "wipe", NULL), 0);
    struct dev d;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(spro_device_set_state(e.dd, d.device_id, SPRO_DEVICE_WIPE_PENDING, NULL, 0), 0);
    CHECK(ping(&e, &d, &r, &m, plain) != 0);
    CHECK_EQ(r.status, 401); /* sent back to the handshake, which carries the order */
    CHECK_STR(h_error_code(&r), "session_invalid");
    CHECK_EQ(handshake(&e, &d, NULL, &r), 0);
    CHECK(d.wiped);
    CHECK(d.send == NULL); /* no session with a wipe order */
    struct spro_device after;
    CHECK_EQ(spro_device_by_key(e.dd, d.pk, &after), 0);
    CHECK_EQ(after.state, SPRO_DEVICE_WIPED);
    d.wiped = false;
    CHECK_EQ(handshake(&e, &d, NULL, &r), 0); /* the order again: a lost answer loses nothing */
    CHECK(d.wiped);
    CHECK_EQ(env_stop(&e), 0);
}

static void test_expired_and_reused_ticket(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "tickets", NULL), 0);
    struct h_response r;
    struct dev a, b, c;
    dev_new(&a);
    dev_new(&b);
    dev_new(&c);
    struct spro_ticket old = ticket_for(&e, "alice", (int64_t)time(NULL) - 1000, 900);
    CHECK(handshake(&e, &a, &old, &r) != 0);
    CHECK_EQ(r.status, 403);
    CHECK_STR(h_error_code(&r), "ticket_invalid");
    struct spro_ticket t = ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    CHECK_EQ(handshake(&e, &b, &t, &r), 0);
    CHECK(handshake(&e, &c, &t, &r) != 0); /* used */
    CHECK_EQ(r.status, 403);
    CHECK_STR(h_error_code(&r), "ticket_invalid");
    struct spro_device dv;
    CHECK_EQ(spro_device_by_key(e.dd, c.pk, &dv), SPRO_ENOENT); /* nothing written for it */
    dev_end_session(&b);
    CHECK_EQ(env_stop(&e), 0);
}

struct race {
    struct env *e;
    const struct spro_ticket *t;
    int status;
};

static void *race_one(void *arg)
{
    struct race *rc = arg;
    struct dev d;
    struct h_response *r = malloc(sizeof *r);
    dev_new(&d);
    handshake(rc->e, &d, rc->t, r);
    rc->status = r->status;
    dev_end_session(&d);
    free(r);
    return NULL;
}

static void test_ticket_race(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "race", NULL), 0);
    int wins = 0, losses = 0;
    for (int round = 0; round < 5; round++) {
        struct spro_ticket t = ticket_for(&e, "alice", (int64_t)time(NULL), 900);
        struct race a = {&e, &t, 0}, b = {&e, &t, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race_one, &a);
        pthread_create(&tb, NULL, race_one, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        wins += (a.status == 200) + (b.status == 200);
        losses += (a.status == 403) + (b.status == 403);
    }
    int stop = env_stop(&e);
    CHECK_EQ(wins, 5); /* exactly one per ticket */
    CHECK_EQ(losses, 5);
    CHECK_EQ(stop, 0);
}

static void test_ticket_brute_force(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "brute", NULL), 0);
    struct spro_ticket t = ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    struct h_response r;
    int invalid = 0, limited = 0;
    for (int i = 0; i < 12; i++) {
        struct spro_ticket guess = t;
        guess.secret[i % 32] ^= 0x5a; /* wrong secret, right id */
        struct dev d;
        dev_new(&d);
        handshake(&e, &d, &guess, &r);
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
    CHECK_EQ(env_stop(&e), 0);
    CHECK_EQ(used, SPRO_ETICKET);
}

static void test_replayed_handshake(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "replay", NULL), 0);
    struct dev d;
    CHECK_EQ(enrolled(&e, &d, "alice"), 0);
    dev_end_session(&d);
    uint8_t buf[2048];
    struct spro_noise_handshake *hs;
    size_t n = msg1(&d, e.server_pk, NULL, &hs, buf, sizeof buf);
    struct h_response r1, r2;
    CHECK_EQ(h_request(e.srv.port, "POST", "/v1/session", "application/octet-stream", buf, n, &r1),
             0);
    CHECK_EQ(msg2(&d, hs, &r1), 0);
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
    CHECK_EQ(ping(&e, &d, &r1, &m, plain), 0);
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
}

/* Each case: a fresh session, one bad frame, the expected answer, then a
 * good frame to see whether the session survived. */
static void test_bad_sealed_frames(void)
{
    static const struct {
        const char *name;
        int status;
        const char *code;
        bool session_survives;
    } cases[] = {
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
    struct env e;
    const char *extra[] = {"--bench", NULL};
    CHECK_EQ(env_start(&e, "frames", extra), 0);
    struct dev d;
    CHECK_EQ(enrolled(&e, &d, "alice"), 0);
    struct spro_msg p = {.type = SPRO_MSG_PING}, m;
    uint8_t frame[512], plain[1024];
    struct h_response r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_response hr;
        if (i > 0)
            CHECK_EQ(handshake(&e, &d, NULL, &hr), 0);
        const char *path = "/v1/ping", *ctype = "application/octet-stream";
        size_t n;
        if (i == 0) { /* a good frame, then the same frame again */
            n = seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
            CHECK_EQ(h_request(e.srv.port, "POST", path, ctype, frame, n, &r), 0);
            CHECK_EQ(r.status, 200);
        } else if (i == 1) { /* counter 10 delivered after counter 1000 */
            uint8_t late[512];
            size_t late_n = seal(&d, &p, "POST", "/v1/ping", 10, late, sizeof late);
            d.counter = 1000;
            n = seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
            CHECK_EQ(h_request(e.srv.port, "POST", path, ctype, frame, n, &r), 0);
            CHECK_EQ(r.status, 200);
            memcpy(frame, late, late_n);
            n = late_n;
        } else if (i == 2) { /* sealed for /v1/ping, delivered to another route */
            n = seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
            path = "/v1/bench/sealed-echo";
        } else if (i == 3) { /* sealed as PUT, delivered as POST */
            n = seal(&d, &p, "PUT", "/v1/ping", d.counter++, frame, sizeof frame);
        } else {
            n = seal(&d, &p, "POST", "/v1/ping", d.counter++, frame, sizeof frame);
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
        if (r.status != cases[i].status || strcmp(h_error_code(&r), cases[i].code) != 0)
            CHECK__FAIL("%s: got %d %s", cases[i].name, r.status, h_error_code(&r));
        int after = ping(&e, &d, &r, &m, plain);
        if ((after == 0) != cases[i].session_survives)
            CHECK__FAIL("%s: session %s", cases[i].name, after == 0 ? "survived" : "was ended");
        if (!cases[i].session_survives && strcmp(h_error_code(&r), "session_invalid") != 0)
            CHECK__FAIL("%s: after it, %s", cases[i].name, h_error_code(&r));
    }
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
}

static void test_bad_handshake_sizes(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "hsizes", NULL), 0);
    struct dev d;
    dev_new(&d);
    struct spro_ticket t = ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    uint8_t buf[4096];
    struct spro_noise_handshake *hs;
    size_t n = msg1(&d, e.server_pk, &t, &hs, buf, sizeof buf);
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
    CHECK_EQ(handshake(&e, &d, &t, &r), 0);
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
}

static void test_expired_session(void)
{
    struct env e;
    const char *extra[] = {"--session-idle-ttl", "1", NULL};
    CHECK_EQ(env_start(&e, "expiry", extra), 0);
    struct dev d;
    struct h_response r;
    struct spro_msg m;
    uint8_t plain[1024];
    CHECK_EQ(enrolled(&e, &d, "alice"), 0);
    CHECK_EQ(ping(&e, &d, &r, &m, plain), 0);
    usleep(1300000);
    CHECK(ping(&e, &d, &r, &m, plain) != 0);
    CHECK_EQ(r.status, 401);
    CHECK_STR(h_error_code(&r), "session_invalid");
    CHECK_EQ(handshake(&e, &d, NULL, &r), 0);
    CHECK_EQ(ping(&e, &d, &r, &m, plain), 0);
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
}

static void test_logs_hold_no_secrets(void)
{
    struct env e;
    CHECK_EQ(env_start(&e, "logs", NULL), 0);
    struct spro_ticket t = ticket_for(&e, "alice", (int64_t)time(NULL), 900);
    struct dev d;
    struct h_response r;
    dev_new(&d);
    CHECK_EQ(handshake(&e, &d, &t, &r), 0);
    struct spro_ticket bad = t;
    bad.secret[0] ^= 1;
    struct dev d2;
    dev_new(&d2);
    handshake(&e, &d2, &bad, &r);
    dev_end_session(&d);
    CHECK_EQ(env_stop(&e), 0);
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
};

int main(int argc, char **argv)
{
    if (spro_crypto_init() != 0)
        return 1;
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
