/*
 * channel.c: the device channel (docs/PROTOCOL.md, "Device channel"):
 * GET /v1/server-key, the Noise_IK handshake of POST /v1/session, and the
 * sealed routes (POST /v1/ping, and POST /v1/bench/sealed-echo with
 * --bench).
 *
 * The handshake (four X25519 operations) and every database access run on
 * a worker thread; the loop thread does size checks, session lookups, the
 * ChaCha20-Poly1305 of one-chunk requests and of every answer, and the
 * session table.  A request of several chunks (up to SPRO_SEALED_MAX_PLAIN
 * bytes) is not decrypted on the loop: the loop reserves its counters in
 * the session's replay window and hands the ciphertext and a copy of the
 * receiving key to the worker, which decrypts it.  Failures are answered
 * with one code per class and logged without secrets.
 */
#include "internal.h"
#include "keytab.h"
#include "session.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#define NOISE_PROTOCOL "Noise_IK_25519_ChaChaPoly_BLAKE2b"
#define PROLOGUE_TAG "spro-sync/1"
#define MSG1_OVERHEAD (32 + 48 + 16) /* e, encrypted s, payload tag */
#define MAX_HELLO 1024
#define MSG2_MAX (32 + 16 + 512) /* e, payload tag, welcome or wipe */
#define FRAME_HEAD (SPRO_SESSION_ID_BYTES + 8)
/* Bytes of records a pull answer may hold (the envelope adds a few bytes;
 * the answer is a chunked message of 17 chunks at most). */
#define SYNC_ANSWER_MAX SPRO_SYNC_PULL_ANSWER_MAX
_Static_assert(SYNC_ANSWER_MAX + 4096 <= SPRO_SEALED_MAX_PLAIN, "a pull answer is one message");
#define ENROL_WINDOW_S 600    /* failed ticket redemptions are counted per address */
#define ENROL_MAX_FAILURES 10 /* ... and refused beyond this many per window */

/* Logs a refused request and counts it for the audit log. */
static void log_refusal(struct server *s, const char *event, int err)
{
    spro_server__refused(s, event, spro_errcode(err));
    struct spro_logline l;
    spro_log_begin(&l, SPRO_LOG_INFO, event);
    spro_log_str(&l, "code", spro_errcode(err));
    spro_log_end(&l);
}

/* The client's address for rate limiting: IPv4, or the /64 of an IPv6
 * address (one host usually holds a whole /64). */
static void peer_key(h2o_req_t *req, uint8_t key[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memset(key, 0, 16);
    req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    spro_server__addr16(&ss, key);
    if (memcmp(key, v4mapped, sizeof v4mapped) != 0)
        memset(key + 8, 0, 8);
}

/* ---- GET /v1/server-key ------------------------------------------------ */

void spro_channel_server_key(struct server *s, h2o_req_t *req)
{
    char fp[SPRO_FINGERPRINT_CHARS];
    const uint8_t *pk = spro_datadir_noise_public(s->dd);
    spro_crypto_fingerprint(fp, pk);
    struct spro_msg m = {.type = SPRO_MSG_SERVER_KEY};
    m.u.server_key.key = (struct spro_bytes){pk, SPRO_KEY_BYTES};
    m.u.server_key.fingerprint = (struct spro_bytes){(const uint8_t *)fp, strlen(fp)};
    struct spro_buf b = {0};
    if (spro_proto_encode(&m, &b) != 0)
        SPRO_BUG("server_key does not encode");
    spro_server__send_msgpack(req, 200, &b);
}

/* ---- Rate limit of failed ticket redemptions, per client address -------- */

/* Value: window start (s) << 32 | failures in it. */
static bool enrol_limited(struct server *s, const uint8_t addr[16], uint64_t now_s)
{
    uint64_t v = spro_keytab_get(s->enrol_failures, addr);
    return v != 0 && now_s - (v >> 32) < ENROL_WINDOW_S && (v & 0xffffffffu) >= ENROL_MAX_FAILURES;
}

static void enrol_failed(struct server *s, const uint8_t addr[16], uint64_t now_s)
{
    uint64_t v = spro_keytab_get(s->enrol_failures, addr);
    if (v == 0 || now_s - (v >> 32) >= ENROL_WINDOW_S)
        v = now_s << 32;
    v++;
    if (spro_keytab_set(s->enrol_failures, addr, v) != 0) {
        /* Table full of addresses: forget them all and start over (tickets
         * still die after SPRO_TICKET_MAX_FAILURES wrong secrets each). */
        spro_keytab_destroy(s->enrol_failures);
        s->enrol_failures = spro_keytab_create(SPRO_SERVER_ENROL_ADDRESSES);
        if (spro_keytab_set(s->enrol_failures, addr, v) != 0)
            SPRO_BUG("empty table refused a key");
    }
}

/* ---- POST /v1/session --------------------------------------------------- */

struct hs_job {
    struct job super;
    uint8_t peer[16];
    uint8_t msg1[MSG1_OVERHEAD + MAX_HELLO];
    size_t msg1_len;
    /* results */
    int rc;
    bool wipe;    /* message 2 carries a wipe order */
    bool revoked; /* message 2 carries the error device_revoked */
    struct spro_device dev;
    uint8_t session_id[SPRO_SESSION_ID_BYTES];
    uint8_t msg2[MSG2_MAX];
    size_t msg2_len;
    struct spro_noise_cipher *send, *recv;
    uint64_t gen; /* devices generation read before the database was */
};

static void fill_view(struct spro_msg_device_view *v, const struct spro_device *d)
{
    v->device = (struct spro_bytes){(const uint8_t *)d->id, strlen(d->id)};
    v->user = (struct spro_bytes){(const uint8_t *)d->user, strlen(d->user)};
    v->org = (struct spro_bytes){(const uint8_t *)d->org, strlen(d->org)};
    v->role = (struct spro_bytes){(const uint8_t *)d->role, strlen(d->role)};
}

/* Reads message 1, identifies or enrols the device, writes message 2. */
static int handshake(struct hs_job *h, struct spro_datadir *dd)
{
    uint8_t prologue[sizeof PROLOGUE_TAG - 1 + SPRO_KEY_BYTES];
    memcpy(prologue, PROLOGUE_TAG, sizeof PROLOGUE_TAG - 1);
    memcpy(prologue + sizeof PROLOGUE_TAG - 1, spro_datadir_noise_public(dd), SPRO_KEY_BYTES);
    struct spro_noise_handshake *hs;
    if (spro_noise_handshake_init(&hs, NOISE_PROTOCOL, 0, prologue, sizeof prologue,
                                  spro_datadir_noise_secret(dd), NULL, NULL, 0) != 0)
        SPRO_BUG("cannot set up the responder handshake");
    uint8_t payload[MAX_HELLO], device_pk[SPRO_KEY_BYTES];
    size_t plen;
    int rc;
    struct spro_msg m;
    int64_t now = (int64_t)time(NULL);
    if (spro_noise_read_message(hs, h->msg1, h->msg1_len, payload, sizeof payload, &plen) != 0 ||
        spro_noise_handshake_remote_static(hs, device_pk) != 0) {
        rc = SPRO_EHANDSHAKE;
        goto out;
    }
    if ((rc = spro_proto_decode(payload, plen, &m)) != 0)
        goto out;
    if (m.type != SPRO_MSG_HELLO || m.u.hello.ts > INT64_MAX) {
        rc = m.type != SPRO_MSG_HELLO ? SPRO_EBADMSGTYPE : SPRO_ERANGE;
        goto out;
    }
    const struct spro_msg_hello *hello = &m.u.hello;
    if (hello->has_ticket) {
        char id[SPRO_TICKET_ID_CHARS + 1];
        memcpy(id, hello->ticket_id.p, SPRO_TICKET_ID_CHARS);
        id[SPRO_TICKET_ID_CHARS] = '\0';
        rc = spro_ticket_redeem(dd, id, hello->ticket_secret.p, device_pk, (int64_t)hello->ts, now,
                                &h->dev);
        if (rc == SPRO_EEXISTS)
            rc = SPRO_ETICKET; /* this key already has a device: the ticket is not for it */
    } else if ((rc = spro_device_by_key(dd, device_pk, &h->dev)) == SPRO_ENOENT) {
        rc = SPRO_EUNKNOWNDEV;
    } else if (rc == 0 && h->dev.state == SPRO_DEVICE_REVOKED) {
        h->revoked = true; /* told inside message 2, where nobody can forge it */
    } else if (rc == 0 &&
               (rc = spro_device_accept_ts(dd, h->dev.rowid, (int64_t)hello->ts, now)) == 0) {
        /* Wipe orders go out at every contact until the device stops
         * calling: a lost answer does not lose the order. */
        h->wipe = h->dev.state == SPRO_DEVICE_WIPE_PENDING || h->dev.state == SPRO_DEVICE_WIPED;
    }
    if (rc != 0)
        goto out;

    struct spro_msg reply;
    struct spro_buf err = {0};
    memset(&reply, 0, sizeof reply);
    if (h->revoked) {
        spro_proto_encode_error(SPRO_EREVOKED, NULL, &err);
        if (spro_proto_decode(err.data, err.len, &reply) != 0)
            SPRO_BUG("error message does not decode");
    } else if (h->wipe) {
        reply.type = SPRO_MSG_WIPE;
        reply.u.wipe.device = (struct spro_bytes){(const uint8_t *)h->dev.id, strlen(h->dev.id)};
        if ((rc = spro_device_wiped(dd, h->dev.rowid)) != 0)
            goto out;
    } else {
        spro_crypto_random(h->session_id, sizeof h->session_id);
        reply.type = SPRO_MSG_WELCOME;
        reply.u.welcome.session = (struct spro_bytes){h->session_id, sizeof h->session_id};
        fill_view(&reply.u.welcome.view, &h->dev);
        reply.u.welcome.idle_ttl = h->super.srv->cfg->session_idle_ttl;
        reply.u.welcome.ttl = h->super.srv->cfg->session_ttl;
    }
    struct spro_buf b = {0};
    if (spro_proto_encode(&reply, &b) != 0)
        SPRO_BUG("handshake reply does not encode");
    rc = spro_noise_write_message(hs, b.data, b.len, h->msg2, sizeof h->msg2, &h->msg2_len);
    spro_buf_free(&b);
    spro_buf_free(&err);
    if (rc == 0 && !h->wipe && !h->revoked)
        rc = spro_noise_split(hs, &h->send, &h->recv);
out:
    spro_noise_handshake_destroy(hs);
    spro_memzero(payload, sizeof payload);
    return rc;
}

static void hs_run(struct job *j)
{
    struct hs_job *h = (struct hs_job *)j;
    h->gen = spro_datadir_devices_generation(j->srv->dd);
    h->rc = handshake(h, j->srv->dd);
}

static void hs_done(struct job *j)
{
    struct hs_job *h = (struct hs_job *)j;
    struct server *s = j->srv;
    h2o_req_t *req = j->req;
    if (h->rc != 0) {
        log_refusal(s, "handshake_refused", h->rc);
        spro_server__send_error(req, h->rc);
        return;
    }
    struct spro_logline l;
    if (h->revoked) {
        log_refusal(s, "handshake_refused", SPRO_EREVOKED);
        spro_server__send_body(req, 403, "application/octet-stream", h->msg2, h->msg2_len);
        return;
    }
    if (!h->wipe) {
        struct spro_session *sess = spro_sessions_open(s->sessions, h->session_id, h->dev.rowid,
                                                       h->recv, h->send, uv_now(&s->loop));
        h->recv = h->send = NULL; /* owned by the table now, or destroyed */
        if (sess == NULL) {
            log_refusal(s, "session_table_full", SPRO_EUNAVAILABLE);
            spro_server__send_error(req, SPRO_EUNAVAILABLE);
            return;
        }
        sess->checked_gen = h->gen;
        sess->checked_ms = sess->created_ms;
    }
    spro_log_begin(&l, SPRO_LOG_INFO, h->wipe ? "wipe_order_sent" : "session_opened");
    spro_log_str(&l, "device", h->dev.id);
    spro_log_end(&l);
    spro_server__send_body(req, 200, "application/octet-stream", h->msg2, h->msg2_len);
}

/* Always runs (loop thread), even when the client left before the answer:
 * a failed redemption counts against its address whatever the client does. */
static void hs_free(struct job *j)
{
    struct hs_job *h = (struct hs_job *)j;
    if (h->rc == SPRO_ETICKET)
        enrol_failed(j->srv, h->peer, uv_now(&j->srv->loop) / 1000);
    spro_noise_cipher_destroy(h->send);
    spro_noise_cipher_destroy(h->recv);
    spro_memzero(h->msg1, sizeof h->msg1);
}

void spro_channel_session(struct server *s, h2o_req_t *req)
{
    size_t len = req->entity.len;
    if (len < MSG1_OVERHEAD + 1 || len > MSG1_OVERHEAD + MAX_HELLO) {
        log_refusal(s, "handshake_refused", SPRO_EBADFRAME);
        spro_server__send_error(req, SPRO_EBADFRAME);
        return;
    }
    struct hs_job *h = spro_server__job_alloc(sizeof *h);
    peer_key(req, h->peer);
    if (enrol_limited(s, h->peer, uv_now(&s->loop) / 1000)) {
        free(h);
        log_refusal(s, "handshake_refused", SPRO_ERATELIMIT);
        spro_server__send_error(req, SPRO_ERATELIMIT);
        return;
    }
    memcpy(h->msg1, req->entity.base, len);
    h->msg1_len = len;
    h->super.run = hs_run;
    h->super.done = hs_done;
    h->super.free = hs_free;
    spro_server__offload(s, req, &h->super);
}

/* ---- Sealed requests ---------------------------------------------------- */

/* Associated data: tag 0 method 0 path 0 session id [request counter]. */
static size_t sealed_ad(uint8_t *ad, size_t cap, const char *tag, h2o_req_t *req,
                        const uint8_t *sid, const uint8_t *req_counter)
{
    size_t need = strlen(tag) + 3 + req->input.method.len + req->path_normalized.len +
                  SPRO_SESSION_ID_BYTES + (req_counter ? 8 : 0);
    if (need > cap)
        return 0;
    size_t n = 0;
    memcpy(ad + n, tag, strlen(tag)), n += strlen(tag);
    ad[n++] = 0;
    memcpy(ad + n, req->input.method.base, req->input.method.len), n += req->input.method.len;
    ad[n++] = 0;
    memcpy(ad + n, req->path_normalized.base, req->path_normalized.len),
        n += req->path_normalized.len;
    ad[n++] = 0;
    memcpy(ad + n, sid, SPRO_SESSION_ID_BYTES), n += SPRO_SESSION_ID_BYTES;
    if (req_counter != NULL)
        memcpy(ad + n, req_counter, 8), n += 8;
    return n;
}

/* Request memory that is wiped when the request ends (decrypted bodies). */
struct wiped {
    size_t len;
    uint8_t data[];
};

static void wiped_dispose(void *p)
{
    struct wiped *w = p;
    spro_memzero(w->data, w->len);
}

static uint8_t *wiped_alloc(h2o_req_t *req, size_t len)
{
    struct wiped *w = h2o_mem_alloc_shared(&req->pool, sizeof *w + len, wiped_dispose);
    w->len = len;
    return w->data;
}

/* A sealed request once decrypted. */
struct sealed_req {
    uint8_t sid[SPRO_SESSION_ID_BYTES];
    uint8_t counter[8]; /* the request's, big-endian */
    enum spro_route route;
    uint8_t *plain; /* in req->pool */
    size_t plain_len;
};

struct sealed_job {
    struct job super;
    struct sealed_req sr;
    int64_t rowid;
    bool sync;      /* a sync route: the worker answers (sync_run) */
    uint8_t *plain; /* sync routes and chunked requests: the job's own copy of
                     * the plaintext (the request's memory may go while a
                     * worker reads), wiped and freed with the job */
    size_t plain_len;
    /* A chunked request (more than one chunk), decrypted by the worker: */
    uint8_t *ct; /* its ciphertext (ct_len bytes, job-owned), or NULL */
    size_t ct_len;
    uint64_t first;                    /* its first counter, reserved with the others */
    uint8_t key[SPRO_NOISE_KEY_BYTES]; /* copy of the receiving key, wiped after use */
    uint8_t ad[512];
    size_t adlen;
    bool store_failed; /* a push arrived in fail-stop: answer store_failed once decrypted */
    uint64_t gen;      /* devices generation read before the database was */
    /* results */
    int rc;
    struct spro_device dev;
    bool has_answer; /* sync routes: answer encoded by the worker */
    struct spro_buf answer;
    bool fatal; /* the push's outcome is unknown: fail-stop */
};

/* The device's state, from the database. */
/* Sync routes, on the worker: decode, run the engine, encode the answer
 * (a sealed error for failures of the request). */
static void sync_run(struct sealed_job *sj, struct server *s)
{
    /* Room to decode the request and to build the answer (at most
     * SYNC_ANSWER_MAX bytes of records, or one result per op). */
    size_t cap =
        SPRO_PROTO_ARENA_BYTES(sj->plain_len) + SPRO_SYNC_PULL_ARENA_BYTES(SYNC_ANSWER_MAX);
    /* Mapped, not allocated: the bound is a worst case (tens of MiB for a
     * large push) of which a request touches a few times its size; the
     * pages not touched never count, and all go back at once. */
    void *mem = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        SPRO_BUG("out of memory");
    struct spro_arena arena = {mem, 0, cap};
    struct spro_msg in, out;
    memset(&out, 0, sizeof out);
    int rc = spro_proto_decode_sync(sj->plain, sj->plain_len, &arena, &in);
    bool push = sj->sr.route == SPRO_ROUTE_SYNC_PUSH;
    if (rc == 0 && in.type != (push ? SPRO_MSG_PUSH : SPRO_MSG_PULL))
        rc = SPRO_EBADMSGTYPE;
    if (rc == 0 && push) {
        out.type = SPRO_MSG_PUSH_REPLY;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        rc = spro_sync_push(s->dd, &sj->dev, &in.u.push, now_ms,
                            (int64_t)s->cfg->max_clock_drift * 1000, &arena, &out.u.push_reply);
        if (rc == SPRO_ESTORE) {
            sj->fatal = true; /* committed or not: unknown */
            rc = SPRO_ESTOREFAIL;
        }
    } else if (rc == 0) {
        out.type = SPRO_MSG_PULL_REPLY;
        rc =
            spro_sync_pull(s->dd, &sj->dev, &in.u.pull, SYNC_ANSWER_MAX, &arena, &out.u.pull_reply);
        /* The cursor sent is acknowledged (it may move the sync horizon).
         * A failure here costs only a later purge: the answer stands. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        size_t purged = 0;
        int arc = rc != 0 ? 0
                          : spro_sync_ack(s->dd, &sj->dev, &in.u.pull, now_ms,
                                          (int64_t)s->cfg->sync_idle_horizon * 1000, &purged);
        if (arc != 0 || purged > 0) {
            struct spro_logline l;
            spro_log_begin(&l, arc != 0 ? SPRO_LOG_WARN : SPRO_LOG_INFO,
                           arc != 0 ? "sync_ack_failed" : "removals_purged");
            if (arc != 0)
                spro_log_str(&l, "code", spro_errcode(arc));
            else
                spro_log_int(&l, "count", (int64_t)purged);
            spro_log_end(&l);
        }
    }
    if (rc == 0 && spro_proto_encode(&out, &sj->answer) != 0) {
        spro_memzero(sj->answer.data, sj->answer.len);
        sj->answer.len = 0;
        rc = SPRO_EINTERNAL;
    }
    if (rc != 0)
        spro_proto_encode_error(rc, NULL, &sj->answer);
    sj->has_answer = true;
    spro_memzero(arena.base, arena.len);
    munmap(arena.base, cap);
}

/* A chunked request, on the worker: its counters were reserved on the loop. */
static int decrypt_chunked(struct sealed_job *sj)
{
    sj->plain = spro_server__job_alloc(sj->ct_len + 1);
    int rc = spro_noise_decrypt_chunked_detached(sj->key, sj->first, sj->ad, sj->adlen, sj->ct,
                                                 sj->ct_len, sj->plain, sj->ct_len, &sj->plain_len);
    spro_memzero(sj->key, sizeof sj->key);
    free(sj->ct);
    sj->ct = NULL;
    if (rc != 0)
        return SPRO_EDECRYPT;
    sj->sr.plain = sj->plain;
    sj->sr.plain_len = sj->plain_len;
    return 0;
}

static void sealed_run(struct job *j)
{
    struct sealed_job *sj = (struct sealed_job *)j;
    if (sj->ct != NULL && (sj->rc = decrypt_chunked(sj)) != 0)
        return;
    if (sj->store_failed)
        return; /* answered store_failed without reading anything */
    sj->gen = spro_datadir_devices_generation(j->srv->dd);
    sj->rc = spro_device_by_rowid(j->srv->dd, sj->rowid, &sj->dev);
    if (sj->rc == SPRO_ENOENT || (sj->rc == 0 && sj->dev.state == SPRO_DEVICE_REVOKED))
        sj->rc = SPRO_EREVOKED;
    else if (sj->rc == 0 && sj->dev.state != SPRO_DEVICE_ACTIVE)
        sj->rc = SPRO_ESESSION; /* to be wiped: its next handshake carries the order */
    else if (sj->rc == 0 && sj->sync)
        sync_run(sj, j->srv);
}

/* Always runs (loop thread), even when the client left before the answer:
 * a chunked request that failed to decrypt ends its session in any case. */
static void sealed_free(struct job *j)
{
    struct sealed_job *sj = (struct sealed_job *)j;
    if (sj->rc == SPRO_EDECRYPT) {
        struct server *s = j->srv;
        struct spro_session *sess = spro_sessions_find(s->sessions, sj->sr.sid, uv_now(&s->loop));
        if (sess != NULL)
            spro_sessions_end(s->sessions, sess);
    }
    spro_memzero(sj->key, sizeof sj->key);
    free(sj->ct);
    if (sj->plain != NULL) {
        spro_memzero(sj->plain, sj->plain_len);
        free(sj->plain);
    }
    spro_memzero(sj->answer.data, sj->answer.len);
    spro_buf_free(&sj->answer);
}

/* Seals the encoded answer b (freed) for the request's session and sends
 * it with status 200. */
static void send_sealed(struct server *s, h2o_req_t *req, const struct sealed_req *sr,
                        struct spro_session *sess, struct spro_buf *b)
{
    if (b->len > SPRO_SEALED_MAX_PLAIN) {
        /* The answer does not fit one message: the request's failure, sealed. */
        spro_memzero(b->data, b->len);
        b->len = 0;
        spro_proto_encode_error(SPRO_ETOOLONG, "the answer exceeds one sealed message", b);
    }
    uint8_t ad[512];
    size_t adlen = sealed_ad(ad, sizeof ad, "spro-sync/1 res", req, sr->sid, sr->counter);
    size_t outlen = 8 + spro_noise_chunked_size(b->len);
    uint8_t *out = h2o_mem_alloc_pool(&req->pool, outlen);
    uint64_t n = sess->send_counter;
    sess->send_counter += spro_noise_chunks(b->len); /* one counter per chunk */
    spro_store_be64(out, n);
    int rc = adlen == 0 ? SPRO_EINTERNAL
                        : spro_noise_cipher_encrypt_chunked(sess->send, n, ad, adlen, b->data,
                                                            b->len, out + 8, outlen - 8);
    spro_memzero(b->data, b->len); /* answers may hold personal data */
    spro_buf_free(b);
    if (rc != 0) {
        spro_sessions_end(s->sessions, sess);
        spro_server__send_error(req, SPRO_ESESSION);
        return;
    }
    spro_server__send_pooled(req, 200, "application/octet-stream", h2o_iovec_init(out, outlen));
}

/* Decodes the request message, answers it, seals the answer.  dev is the
 * device as read from the database at this request, or NULL when the
 * route does not need it. */
static void answer(struct server *s, h2o_req_t *req, const struct sealed_req *sr,
                   struct spro_session *sess, const struct spro_device *dev)
{
    struct spro_msg in, out;
    struct spro_buf b = {0};
    int rc = spro_proto_decode(sr->plain, sr->plain_len, &in);
    memset(&out, 0, sizeof out);
    if (rc == 0 && in.type == SPRO_MSG_PING && sr->route == SPRO_ROUTE_PING && dev != NULL) {
        out.type = SPRO_MSG_PONG;
        fill_view(&out.u.pong, dev);
    } else if (rc == 0 && in.type == SPRO_MSG_ECHO && sr->route == SPRO_ROUTE_SEALED_ECHO) {
        out.type = SPRO_MSG_ECHO_REPLY;
        out.u.echo = in.u.echo;
    } else {
        rc = rc != 0 ? rc : SPRO_EBADMSGTYPE;
    }
    if (rc == 0 && spro_proto_encode(&out, &b) != 0)
        SPRO_BUG("sealed answer does not encode");
    if (rc != 0) /* a sealed error: the failure is the request's, not the channel's */
        spro_proto_encode_error(rc, NULL, &b);
    send_sealed(s, req, sr, sess, &b);
}

static void sealed_done(struct job *j)
{
    struct sealed_job *sj = (struct sealed_job *)j;
    struct server *s = j->srv;
    h2o_req_t *req = j->req;
    struct spro_session *sess = spro_sessions_find(s->sessions, sj->sr.sid, uv_now(&s->loop));
    if (sj->rc == SPRO_EREVOKED && sess != NULL) {
        /* Sealed, so that nobody on the path can forge a revocation; then
         * the session ends. */
        struct spro_buf b = {0};
        log_refusal(s, "sealed_refused", sj->rc);
        spro_proto_encode_error(SPRO_EREVOKED, NULL, &b);
        send_sealed(s, req, &sj->sr, sess, &b);
        spro_sessions_end(s->sessions, sess);
        return;
    }
    if (sj->rc != 0 && sess != NULL)
        spro_sessions_end(s->sessions, sess);
    if (sj->rc == SPRO_EREVOKED)
        sj->rc = SPRO_ESESSION; /* ended meanwhile: the next handshake says why */
    if (sj->rc != 0) {
        log_refusal(s, "sealed_refused", sj->rc);
        spro_server__send_error(req, sj->rc);
        return;
    }
    if (sess == NULL) { /* ended meanwhile: replaced, expired or poisoned */
        spro_server__send_error(req, SPRO_ESESSION);
        return;
    }
    if (sj->store_failed) {
        struct spro_buf b = {0};
        spro_proto_encode_error(SPRO_ESTOREFAIL, NULL, &b);
        send_sealed(s, req, &sj->sr, sess, &b);
        return;
    }
    sess->checked_gen = sj->gen;
    sess->checked_ms = uv_now(&s->loop);
    if (!sj->has_answer) {
        answer(s, req, &sj->sr, sess, &sj->dev);
        return;
    }
    struct spro_buf b = sj->answer; /* send_sealed wipes and frees it */
    sj->answer = (struct spro_buf){0};
    send_sealed(s, req, &sj->sr, sess, &b);
    if (sj->fatal)
        spro_server__fail_stop(s, "a push commit failed: its outcome is unknown");
}

/* A request of several chunks: reserves its counters, then hands it to a
 * worker that decrypts it (and, on a sync route, answers it). */
static void sealed_chunked(struct server *s, h2o_req_t *req, enum spro_route route,
                           struct spro_session *sess, const uint8_t *ad, size_t adlen,
                           size_t chunks)
{
    const uint8_t *body = (const uint8_t *)req->entity.base;
    size_t ctlen = req->entity.len - FRAME_HEAD;
    struct sealed_job *sj = spro_server__job_alloc(sizeof *sj);
    sj->first = spro_load_be64(body + SPRO_SESSION_ID_BYTES);
    if (adlen == 0 || adlen > sizeof sj->ad ||
        spro_noise_cipher_reserve(sess->recv, sj->first, chunks, sj->key) != 0) {
        free(sj);
        spro_sessions_end(s->sessions, sess); /* its receiving cipher is poisoned */
        log_refusal(s, "sealed_refused", SPRO_EDECRYPT);
        spro_server__send_error(req, SPRO_EDECRYPT);
        return;
    }
    sess->used_ms = uv_now(&s->loop);
    memcpy(sj->ad, ad, adlen);
    sj->adlen = adlen;
    sj->ct = spro_server__job_alloc(ctlen);
    memcpy(sj->ct, body + FRAME_HEAD, ctlen);
    sj->ct_len = ctlen;
    sj->sr.route = route;
    memcpy(sj->sr.sid, body, SPRO_SESSION_ID_BYTES);
    memcpy(sj->sr.counter, body + SPRO_SESSION_ID_BYTES, 8);
    sj->rowid = sess->device_rowid;
    sj->sync = route == SPRO_ROUTE_SYNC_PUSH || route == SPRO_ROUTE_SYNC_PULL;
    sj->store_failed = route == SPRO_ROUTE_SYNC_PUSH && s->failed; /* fail-stop: no more writes */
    sj->super.run = sealed_run;
    sj->super.done = sealed_done;
    sj->super.free = sealed_free;
    spro_server__offload(s, req, &sj->super);
}

static void sealed(struct server *s, h2o_req_t *req, enum spro_route route)
{
    const uint8_t *body = (const uint8_t *)req->entity.base;
    size_t len = req->entity.len;
    uint64_t now = uv_now(&s->loop);
    size_t plen, chunks;
    if (len < FRAME_HEAD || spro_noise_chunked_layout(len - FRAME_HEAD, &plen, &chunks) != 0 ||
        (chunks > 1 && spro_load_be64(body + SPRO_SESSION_ID_BYTES) > UINT64_MAX - chunks)) {
        /* A body that is no chunked message, or one of several chunks that
         * would need counters past 2^64-2 (one chunk with counter 2^64-1
         * fails its decryption, as it always did). */
        log_refusal(s, "sealed_refused", SPRO_EBADFRAME);
        spro_server__send_error(req, SPRO_EBADFRAME);
        return;
    }
    struct spro_session *sess = spro_sessions_find(s->sessions, body, now);
    if (sess == NULL) {
        log_refusal(s, "sealed_refused", SPRO_ESESSION);
        spro_server__send_error(req, SPRO_ESESSION);
        return;
    }
    uint8_t ad[512];
    size_t adlen = sealed_ad(ad, sizeof ad, "spro-sync/1 req", req, body, NULL);
    if (chunks > 1) {
        sealed_chunked(s, req, route, sess, ad, adlen, chunks);
        return;
    }
    /* One chunk: decrypted here, as one frame always was (the fast path). */
    size_t ctlen = len - FRAME_HEAD;
    uint8_t *plain = wiped_alloc(req, ctlen);
    if (adlen == 0 || spro_noise_cipher_decrypt_with_nonce(
                          sess->recv, spro_load_be64(body + SPRO_SESSION_ID_BYTES), ad, adlen,
                          body + FRAME_HEAD, ctlen, plain, ctlen) != 0) {
        spro_sessions_end(s->sessions, sess); /* its receiving cipher is poisoned */
        log_refusal(s, "sealed_refused", SPRO_EDECRYPT);
        spro_server__send_error(req, SPRO_EDECRYPT);
        return;
    }
    sess->used_ms = now;
    struct sealed_req sr = {
        .route = route, .plain = plain, .plain_len = ctlen - SPRO_NOISE_TAG_BYTES};
    memcpy(sr.sid, body, SPRO_SESSION_ID_BYTES);
    memcpy(sr.counter, body + SPRO_SESSION_ID_BYTES, 8);
    bool sync = route == SPRO_ROUTE_SYNC_PUSH || route == SPRO_ROUTE_SYNC_PULL;
    if (route == SPRO_ROUTE_SYNC_PUSH && s->failed) { /* fail-stop: no more writes */
        struct spro_buf b = {0};
        spro_proto_encode_error(SPRO_ESTOREFAIL, NULL, &b);
        send_sealed(s, req, &sr, sess, &b);
        return;
    }
    /* No device changed state since the last check (and it is recent): the
     * answer needs no database.  ping and the sync routes always go to a
     * worker (they read the database anyway). */
    if (route != SPRO_ROUTE_PING && !sync &&
        spro_datadir_devices_generation(s->dd) == sess->checked_gen &&
        now - sess->checked_ms < SPRO_SESSION_RECHECK_MS) {
        answer(s, req, &sr, sess, NULL);
        return;
    }
    struct sealed_job *sj = spro_server__job_alloc(sizeof *sj);
    sj->sr = sr;
    sj->rowid = sess->device_rowid;
    sj->sync = sync;
    if (sync) {
        sj->plain = spro_server__job_alloc(sr.plain_len + 1);
        memcpy(sj->plain, sr.plain, sr.plain_len);
        sj->plain_len = sr.plain_len;
    }
    sj->super.run = sealed_run;
    sj->super.done = sealed_done;
    sj->super.free = sealed_free;
    spro_server__offload(s, req, &sj->super);
}

void spro_channel_ping(struct server *s, h2o_req_t *req)
{
    sealed(s, req, SPRO_ROUTE_PING);
}

void spro_channel_sealed_echo(struct server *s, h2o_req_t *req)
{
    sealed(s, req, SPRO_ROUTE_SEALED_ECHO);
}

void spro_channel_sync_push(struct server *s, h2o_req_t *req)
{
    sealed(s, req, SPRO_ROUTE_SYNC_PUSH);
}

void spro_channel_sync_pull(struct server *s, h2o_req_t *req)
{
    sealed(s, req, SPRO_ROUTE_SYNC_PULL);
}
