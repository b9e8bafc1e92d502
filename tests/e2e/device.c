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
