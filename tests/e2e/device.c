/* device.c: see device.h. */
#include "device.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL "Noise_IK_25519_ChaChaPoly_BLAKE2b"

int dv_env_start(struct dv_env *e, const char *name, const char *const *extra)
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
        spro_datadir_close(e->dd);
        e->dd = NULL;
        return -1;
    }
    memcpy(e->server_pk, spro_datadir_noise_public(e->dd), SPRO_KEY_BYTES);
    if (h_server_start(&e->srv, dir, extra) != 0) {
        spro_datadir_close(e->dd);
        e->dd = NULL;
        return -1;
    }
    return 0;
}

int dv_env_stop(struct dv_env *e)
{
    spro_datadir_close(e->dd);
    return h_server_stop(&e->srv, 5000);
}

struct spro_ticket dv_ticket_for(struct dv_env *e, const char *user, int64_t now, int64_t ttl)
{
    struct spro_ticket t;
    if (spro_ticket_issue(e->dd, user, now, ttl, &t, NULL, 0) != 0)
        abort();
    return t;
}

void dv_dev_new(struct dv_dev *d)
{
    memset(d, 0, sizeof *d);
    spro_crypto_dh_keypair(d->pk, d->sk);
    d->ts = (uint64_t)time(NULL) * 1000;
}

void dv_dev_end_session(struct dv_dev *d)
{
    spro_noise_cipher_destroy(d->send);
    spro_noise_cipher_destroy(d->recv);
    d->send = d->recv = NULL;
}

/* Builds handshake message 1 into out; *hs keeps the initiator state. */
size_t dv_msg1(struct dv_dev *d, const uint8_t rs[32], const struct spro_ticket *t,
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
int dv_msg2(struct dv_dev *d, struct spro_noise_handshake *hs, const struct h_response *r)
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
int dv_handshake(struct dv_env *e, struct dv_dev *d, const struct spro_ticket *t,
                 struct h_response *r)
{
    uint8_t buf[2048];
    struct spro_noise_handshake *hs;
    size_t n = dv_msg1(d, e->server_pk, t, &hs, buf, sizeof buf);
    dv_dev_end_session(d);
    if (h_request(e->srv.port, "POST", "/v1/session", "application/octet-stream", buf, n, r) != 0) {
        spro_noise_handshake_destroy(hs);
        return -1;
    }
    return dv_msg2(d, hs, r);
}

size_t dv_ad(uint8_t *out, const char *tag, const char *method, const char *path,
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

void dv_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

size_t dv_seal_plain(struct dv_dev *d, const uint8_t *plain, size_t len, const char *ad_method,
                     const char *ad_path, uint64_t counter, uint8_t *out, size_t cap)
{
    uint8_t a[256];
    size_t alen = dv_ad(a, "spro-sync/1 req", ad_method, ad_path, d->sid, NULL);
    memcpy(out, d->sid, 16);
    dv_put_be64(out + 16, counter);
    if (spro_noise_cipher_encrypt_chunked(d->send, counter, a, alen, plain, len, out + 24,
                                          cap - 24) != 0)
        abort();
    return 24 + spro_noise_chunked_size(len);
}

/* Seals msg as a frame for (ad_method, ad_path) with the given counter. */
size_t dv_seal(struct dv_dev *d, const struct spro_msg *msg, const char *ad_method,
               const char *ad_path, uint64_t counter, uint8_t *out, size_t cap)
{
    struct spro_buf b = {0};
    if (spro_proto_encode(msg, &b) != 0)
        abort();
    size_t n = dv_seal_plain(d, b.data, b.len, ad_method, ad_path, counter, out, cap);
    spro_buf_free(&b);
    return n;
}

int dv_open(struct dv_dev *d, const uint8_t *body, size_t len, const char *method, const char *path,
            const uint8_t *frame, uint8_t *plain, size_t cap, size_t *plen)
{
    uint8_t a[256];
    if (len < 8)
        return -1;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n = n << 8 | body[i];
    size_t alen = dv_ad(a, "spro-sync/1 res", method, path, d->sid, frame + 16);
    return spro_noise_cipher_decrypt_chunked(d->recv, n, a, alen, body + 8, len - 8, plain, cap,
                                             plen) == 0
               ? 0
               : -1;
}

/* Opens a sealed response into *m (pointing into plain).  0 or -1. */
int dv_unseal(struct dv_dev *d, const struct h_response *r, const char *method, const char *path,
              const uint8_t *frame, uint8_t *plain, struct spro_msg *m)
{
    size_t len;
    if (r->status != 200 || r->body_len < 8 ||
        dv_open(d, r->body, r->body_len, method, path, frame, plain, r->body_len - 8, &len) != 0)
        return -1;
    return spro_proto_decode(plain, len, m) == 0 ? 0 : -1;
}

int dv_unseal_sync(struct dv_dev *d, const struct h_response *r, const char *method,
                   const char *path, const uint8_t *frame, uint8_t *plain, struct spro_arena *arena,
                   struct spro_msg *m)
{
    size_t len;
    if (r->status != 200 || r->body_len < 8 ||
        dv_open(d, r->body, r->body_len, method, path, frame, plain, r->body_len - 8, &len) != 0)
        return -1;
    if (spro_proto_decode_sync(plain, len, arena, m) == 0)
        return 0;
    return spro_proto_decode(plain, len, m) == 0 ? 0 : -1; /* an error message */
}

int dv_post_big(int port, const char *path, const void *body, size_t len, uint8_t **out,
                size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    int fd = h_connect(port, NULL);
    if (fd < 0)
        return -1;
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                      path, len);
    if (h_send(fd, head, (size_t)hn) != 0 || h_send(fd, body, len) != 0) {
        close(fd);
        return -1;
    }
    /* Everything until the server closes (Connection: close). */
    size_t cap = 1 << 16, have = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 30000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        if (have == cap)
            buf = realloc(buf, (cap *= 2) + 1);
        ssize_t n = recv(fd, buf + have, cap - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    buf[have] = '\0';
    int status = -1;
    char *end = strstr(buf, "\r\n\r\n");
    if (end != NULL && sscanf(buf, "HTTP/1.%*d %d", &status) == 1) {
        size_t hlen = (size_t)(end - buf) + 4;
        *outlen = have - hlen;
        *out = malloc(*outlen + 1);
        memcpy(*out, buf + hlen, *outlen);
    } else {
        status = -1;
    }
    free(buf);
    return status;
}

/* Sends a sealed ping with the next counter; fills *m from the answer. */
int dv_ping(struct dv_env *e, struct dv_dev *d, struct h_response *r, struct spro_msg *m,
            uint8_t *plain)
{
    struct spro_msg p = {.type = SPRO_MSG_PING};
    uint8_t frame[512];
    size_t n = dv_seal(d, &p, "POST", "/v1/ping", d->counter++, frame, sizeof frame);
    if (h_request(e->srv.port, "POST", "/v1/ping", "application/octet-stream", frame, n, r) != 0)
        return -1;
    return dv_unseal(d, r, "POST", "/v1/ping", frame, plain, m);
}

bool dv_bytes_is(struct spro_bytes b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

/* An enrolled device with a session, for the tests that start from one. */
int dv_enrolled(struct dv_env *e, struct dv_dev *d, const char *user)
{
    struct spro_ticket t = dv_ticket_for(e, user, (int64_t)time(NULL), 900);
    struct h_response r;
    dv_dev_new(d);
    return dv_handshake(e, d, &t, &r) == 0 && !d->wiped ? 0 : -1;
}

void dv_uuid(char out[37], uint32_t a, uint32_t b)
{
    snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%012x", a, b & 0xffff, (b >> 16) & 0xfff, a & 0xfff,
             b ^ 0x5a5a5a);
}

/* The buffers of one sealed sync request and its answer: the frame sent,
 * the plaintext of the answer (never more than an h_response body) and the
 * arena its decoding needs. */
struct sync_bufs {
    uint8_t frame[65600];
    uint8_t plain[sizeof(((struct h_response *)0)->body)];
    uint8_t arena[SPRO_PROTO_ARENA_BYTES(sizeof(((struct h_response *)0)->body))];
    struct h_response r;
};

/* Seals m to path with the next counter of d, posts it and decodes the
 * answer into *reply (pointing into b).  0 or -1. */
static int sync_call(struct dv_env *e, struct dv_dev *d, const char *path, const struct spro_msg *m,
                     struct sync_bufs *b, struct spro_msg *reply)
{
    size_t len = dv_seal(d, m, "POST", path, d->counter++, b->frame, sizeof b->frame);
    if (h_request(e->srv.port, "POST", path, "application/octet-stream", b->frame, len, &b->r) != 0)
        return -1;
    struct spro_arena a = {b->arena, 0, sizeof b->arena};
    return dv_unseal_sync(d, &b->r, "POST", path, b->frame, b->plain, &a, reply);
}

int dv_push(struct dv_env *e, struct dv_dev *d, const struct spro_wire_op *ops, size_t n,
            int *acked)
{
    struct sync_bufs *b = malloc(sizeof *b);
    if (b == NULL)
        return -1;
    struct spro_msg m = {.type = SPRO_MSG_PUSH}, reply;
    m.u.push.ops = ops;
    m.u.push.nops = n;
    int rc = -1;
    if (sync_call(e, d, "/v1/sync/push", &m, b, &reply) == 0 && reply.type == SPRO_MSG_PUSH_REPLY &&
        reply.u.push_reply.nresults == n) {
        for (size_t i = 0; i < n; i++)
            acked[i] = reply.u.push_reply.results[i].status == SPRO_RESULT_ACK ? 1 : 2;
        rc = 0;
    }
    free(b);
    return rc;
}

int dv_push_ben(struct dv_env *e, struct dv_dev *d, uint64_t seq, const char *ben,
                const char *value, uint64_t hlc)
{
    struct spro_wire_edit ed = {0};
    ed.name = (struct spro_bytes){(const uint8_t *)"given_name", 10};
    ed.val.kind = SPRO_VALUE_STR;
    ed.val.s = (struct spro_bytes){(const uint8_t *)value, strlen(value)};
    struct spro_wire_op op = {0};
    op.seq = seq;
    op.rtype = (struct spro_bytes){(const uint8_t *)"beneficiary", 11};
    op.rid = op.ben = (struct spro_bytes){(const uint8_t *)ben, 36};
    op.schema = 1;
    op.hlc = hlc;
    op.set = &ed;
    op.nset = 1;
    int acked;
    return dv_push(e, d, &op, 1, &acked) == 0 && acked == 1 ? 0 : -1;
}

int dv_pull_all(struct dv_env *e, struct dv_dev *d, uint32_t limit,
                void (*fn)(const struct spro_wire_record *r, void *arg), void *arg)
{
    struct sync_bufs *b = malloc(sizeof *b);
    if (b == NULL)
        return -1;
    uint8_t cursor[SPRO_SYNC_MAX_CURSOR];
    size_t clen = 0;
    int rc = -1;
    for (int rounds = 0; rounds < 1000; rounds++) {
        struct spro_msg m = {.type = SPRO_MSG_PULL}, reply;
        m.u.pull.cursor = (struct spro_bytes){cursor, clen};
        m.u.pull.limit = limit;
        if (sync_call(e, d, "/v1/sync/pull", &m, b, &reply) != 0 ||
            reply.type != SPRO_MSG_PULL_REPLY)
            break;
        for (size_t i = 0; i < reply.u.pull_reply.nrecords; i++)
            fn(&reply.u.pull_reply.records[i], arg);
        clen = reply.u.pull_reply.cursor.len;
        memcpy(cursor, reply.u.pull_reply.cursor.p, clen);
        if (!reply.u.pull_reply.more) {
            rc = 0;
            break;
        }
    }
    free(b);
    return rc;
}
