/*
 * spro-sync-bench: the sync side of tools/bench/sync.sh (a benchmark, not a
 * test).  The records are those of sync-records.h.
 *
 *   spro-sync-bench load --data DIR --records N
 *       N new beneficiaries (seven fields each) pushed in-process with
 *       spro_sync_push() on DIR, in pushes of the largest batch that fits
 *       a device's push (SPRO_SYNC_MAX_OPS ops, SPRO_LOCAL_PUSH_MAX bytes),
 *       by one device of the organisation "bench".
 *   spro-sync-bench pull-ceiling --data DIR --records N
 *       the server-side work of an initial sync without the server: a fresh
 *       device of "bench" pulls everything in-process, spro_sync_pull() in a
 *       loop (limit 1000, the server's answer bound), each answer encoded
 *       (spro_proto_encode) and sealed with a Noise CipherState.
 *   spro-sync-bench pull --port P --data DIR --records N
 *       the initial sync of a fresh device through spro-server: handshake,
 *       then sealed POST /v1/sync/pull (limit 1000) until `more` is false;
 *       every record is checked against the one that was loaded.
 *   spro-sync-bench push --port P --data DIR [--connections C] [--seconds S]
 *       C devices, one keep-alive connection and thread each, push through
 *       spro-server for S seconds new beneficiaries (seven fields), then for
 *       S seconds edits of them (phone and situation, each edit based on
 *       the version its previous push got), every push the largest batch
 *       that fits a device's push (as for load).
 *   spro-sync-bench keys-load --data DIR --records N
 *       N data keys (of beneficiaries without records) added straight to
 *       keys.db under the active KEK epoch, 10,000 per transaction: the
 *       load of tools/bench/rotation.sh.
 *   spro-sync-bench sizes      the batch sizes (ops per push) and push bytes
 *   spro-sync-bench records --records N     the records as JSON lines
 *
 * Devices are enrolled with tickets issued straight into DIR (the
 * organisation "bench" and user "bench" are created if missing).  Each
 * mode prints one line per measurement: "<what> key value ...".
 */
#include "channel.h"
#include "keepalive.h"
#include "crypto/crypto.h"
#include "proto/proto.h"
#include "sync-records.h"
#include "sync/local.h"
#include "sync/store.h" /* keys-load: data keys straight into keys.db */
#include "sync/sync.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Plaintext of one push, at most: what the device client sends
 * (sync/local.h), well within a sealed message (docs/PROTOCOL.md, "Sync"). */
#define FRAME_PLAIN SPRO_LOCAL_PUSH_MAX
_Static_assert(FRAME_PLAIN <= SPRO_SEALED_MAX_PLAIN, "a push is one sealed message");
/* Plaintext of an answer the bench opens, at most: a pull answer's 1 MiB of
 * records and its envelope, or 1,000 push results without conflicts. */
#define ANSWER_PLAIN (2 * 1024 * 1024)
/* The server's bound on an encoded pull answer. */
#define PULL_ANSWER_MAX SPRO_SYNC_PULL_ANSWER_MAX
#define PULL_LIMIT 1000
#define DRIFT_MS 300000
#define MAX_SAMPLES 200000

static int port, conns = 4, seconds = 10;
static uint64_t records;
static struct spro_datadir *dd;
static uint8_t server_pk[SPRO_KEY_BYTES];

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

_Noreturn static void die(const char *what, int rc)
{
    fprintf(stderr, "spro-sync-bench: %s: %s\n", what, rc != 0 ? spro_strerror(rc) : "failed");
    exit(1);
}

static struct spro_bytes str_bytes(const char *s)
{
    return (struct spro_bytes){(const uint8_t *)s, strlen(s)};
}

/* ---- Ops ---- */

/* One op and the memory it points into. */
struct opbuf {
    struct spro_wire_op op;
    struct spro_wire_edit ed[SR_FIELDS];
    struct spro_wire_version base;
    char vals[SR_FIELDS][SR_VALUE_MAX];
    char uuid[37];
    char origin[SPRO_ID_MAX + 1];
};

static void op_head(struct opbuf *b, uint64_t seq, uint64_t hlc)
{
    memset(&b->op, 0, sizeof b->op);
    b->op.seq = seq;
    b->op.rtype = str_bytes(SPRO_RTYPE_BENEFICIARY);
    b->op.rid = b->op.ben = (struct spro_bytes){(const uint8_t *)b->uuid, 36};
    b->op.schema = 1;
    b->op.hlc = hlc;
    b->op.set = b->ed;
}

static void op_edit(struct opbuf *b, size_t j, const char *name, const char *val)
{
    memset(&b->ed[j], 0, sizeof b->ed[j]);
    b->ed[j].name = str_bytes(name);
    b->ed[j].val.kind = SPRO_VALUE_STR;
    b->ed[j].val.s = str_bytes(val);
}

/* A new beneficiary with the seven values in b->vals (b->uuid set). */
static void op_create(struct opbuf *b, uint64_t seq, uint64_t hlc)
{
    op_head(b, seq, hlc);
    for (size_t j = 0; j < SR_FIELDS; j++)
        op_edit(b, j, sr_names[j], b->vals[j]);
    b->op.nset = SR_FIELDS;
}

/* An edit of b->uuid: the two values in b->vals[0..1], over base_ver
 * (b->origin set). */
static void op_change(struct opbuf *b, uint64_t seq, uint64_t hlc, uint64_t base_hlc)
{
    op_head(b, seq, hlc);
    b->base = (struct spro_wire_version){base_hlc, str_bytes(b->origin)};
    for (size_t j = 0; j < SR_EDIT_FIELDS; j++) {
        op_edit(b, j, sr_names[sr_edit_fields[j]], b->vals[j]);
        b->ed[j].base = &b->base;
        b->ed[j].nbase = 1;
    }
    b->op.nset = SR_EDIT_FIELDS;
}

static size_t push_bytes(struct opbuf *ops, size_t n, struct spro_wire_op *wops)
{
    for (size_t i = 0; i < n; i++)
        wops[i] = ops[i].op;
    struct spro_msg m = {.type = SPRO_MSG_PUSH};
    m.u.push.ops = wops;
    m.u.push.nops = n;
    struct spro_buf b = {0};
    int rc = spro_proto_encode(&m, &b);
    size_t len = b.len;
    spro_buf_free(&b);
    if (rc != 0)
        die("encoding a push", rc);
    return len;
}

/* The largest number of ops of a kind (create: 1, edit: 0), at most
 * SPRO_SYNC_MAX_OPS, that fits FRAME_PLAIN with every value at its longest,
 * seq at 2^31 and the origin a device id; *bytes the size of that push. */
static size_t batch_size(int create, size_t *bytes)
{
    static struct opbuf ops[SPRO_SYNC_MAX_OPS];
    static struct spro_wire_op wops[SPRO_SYNC_MAX_OPS];
    char longest[SR_FIELDS][SR_VALUE_MAX];
    sr_longest(longest);
    uint64_t hlc = wall_ms() << 16;
    for (size_t i = 0; i < SPRO_SYNC_MAX_OPS; i++) {
        struct opbuf *b = &ops[i];
        sr_uuid(b->uuid, i, 0);
        memcpy(b->origin, b->uuid, sizeof b->uuid); /* origin is the longer */
        if (create) {
            memcpy(b->vals, longest, sizeof longest);
            op_create(b, (uint64_t)1 << 31, hlc);
        } else {
            for (size_t j = 0; j < SR_EDIT_FIELDS; j++)
                memcpy(b->vals[j], longest[sr_edit_fields[j]], SR_VALUE_MAX);
            op_change(b, (uint64_t)1 << 31, hlc, hlc);
        }
    }
    /* The push grows with n: the largest n that fits, by bisection. */
    size_t lo = 1, hi = SPRO_SYNC_MAX_OPS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (push_bytes(ops, mid, wops) <= FRAME_PLAIN)
            lo = mid;
        else
            hi = mid - 1;
    }
    *bytes = push_bytes(ops, lo, wops);
    return lo;
}

/* ---- Data directory, devices ---- */

static void open_dd(const char *data)
{
    char why[512];
    if (spro_crypto_init() != 0 || spro_datadir_open(data, &dd, why, sizeof why) != 0) {
        fprintf(stderr, "spro-sync-bench: %s\n", why);
        exit(1);
    }
    memcpy(server_pk, spro_datadir_noise_public(dd), SPRO_KEY_BYTES);
    int rc = spro_org_add(dd, "bench", "Benchmark", "other", NULL, 0);
    if ((rc == 0 || rc == SPRO_EEXISTS) &&
        ((rc = spro_user_add(dd, "bench", "bench", "counsellor", NULL, 0)) == SPRO_EEXISTS))
        rc = 0;
    if (rc != 0)
        die("creating the bench user", rc);
}

/* A device of user "bench" enrolled in-process (no server). */
static void device_local(struct spro_device *dev)
{
    struct spro_ticket t;
    uint8_t pk[SPRO_KEY_BYTES], sk[SPRO_KEY_BYTES];
    spro_crypto_dh_keypair(pk, sk);
    int64_t now = (int64_t)time(NULL);
    int rc = spro_ticket_issue(dd, "bench", now, 900, &t, NULL, 0);
    if (rc == 0)
        rc = spro_ticket_redeem(dd, t.id, t.secret, pk, (int64_t)wall_ms(), now, dev);
    if (rc != 0)
        die("enrolling a device", rc);
}

/* ---- HTTP, one keep-alive connection per device ---- */

struct conn {
    int fd;
    uint8_t sk[SPRO_KEY_BYTES];
    uint64_t ts;
    struct spro_client_channel *ch;
    char rbuf[SPRO_SEALED_MAX_PLAIN + (1 << 16)]; /* the largest sealed answer and headers */
    size_t rlen;
};

static int connect_local(void)
{
    return spro_bench_connect(port);
}

/* One request; the body of the answer goes to *body (into c->rbuf).
 * Returns the HTTP status, or -1. */
static int request(struct conn *c, const char *path, const void *b, size_t len,
                   const uint8_t **body, size_t *blen)
{
    struct spro_bench_conn k = {c->fd, c->rbuf, sizeof c->rbuf, 0};
    return spro_bench_request(&k, path, "application/octet-stream", b, len, body, blen);
}

/* A new device of user "bench": ticket, handshake, open session. */
static void device_remote(struct conn *c, struct spro_device *dev)
{
    uint8_t pk[SPRO_KEY_BYTES];
    spro_crypto_dh_keypair(pk, c->sk);
    c->ts = wall_ms();
    struct spro_ticket t;
    int rc = spro_ticket_issue(dd, "bench", (int64_t)time(NULL), 900, &t, NULL, 0);
    if (rc != 0)
        die("issuing a ticket", rc);
    if ((rc = spro_client_channel_create(&c->ch, server_pk, c->sk)) != 0)
        die("channel", rc);
    struct spro_msg hello = {.type = SPRO_MSG_HELLO}, m;
    hello.u.hello.ts = ++c->ts;
    hello.u.hello.app = str_bytes("spro-sync-bench");
    hello.u.hello.schema = 1;
    hello.u.hello.has_ticket = true;
    hello.u.hello.ticket_id = (struct spro_bytes){(const uint8_t *)t.id, 16};
    hello.u.hello.ticket_secret = (struct spro_bytes){t.secret, 32};
    struct spro_buf m1 = {0};
    const uint8_t *body;
    size_t blen;
    c->fd = connect_local();
    if ((rc = spro_client_channel_hello(c->ch, &hello, &m1)) != 0)
        die("hello", rc);
    int st = request(c, "/v1/session", m1.data, m1.len, &body, &blen);
    spro_buf_free(&m1);
    if (st != 200 || spro_client_channel_welcome(c->ch, body, blen, &m) != 0 ||
        m.type != SPRO_MSG_WELCOME)
        die("handshake", 0);
    if ((rc = spro_device_by_key(dd, pk, dev)) != 0)
        die("finding the new device", rc);
}

/* Seals req for path, sends it, opens the answer into *m (arena reset). */
static int sync_call(struct conn *c, const char *path, const struct spro_msg *req,
                     struct spro_arena *a, struct spro_msg *m, size_t *sent, size_t *got)
{
    struct spro_buf f = {0};
    const uint8_t *body;
    size_t blen;
    a->len = 0;
    int rc = spro_client_channel_seal(c->ch, "POST", path, req, &f), st = 0;
    if (rc == 0 && (st = request(c, path, f.data, f.len, &body, &blen)) == 200)
        rc = spro_client_channel_open_sync(c->ch, body, blen, a, m);
    int ok = rc == 0 && st == 200;
    if (ok && m->type == SPRO_MSG_ERROR) {
        fprintf(stderr, "spro-sync-bench: %s answered %.*s: %.*s\n", path, (int)m->u.error.code.len,
                (const char *)m->u.error.code.p, (int)m->u.error.message.len,
                (const char *)m->u.error.message.p);
        ok = 0;
    } else if (!ok) {
        fprintf(stderr, "spro-sync-bench: %s failed: HTTP %d, %s\n", path, st,
                rc != 0 ? spro_strerror(rc) : "-");
    }
    if (sent != NULL)
        *sent = f.len;
    if (got != NULL)
        *got = ok ? blen : 0;
    spro_buf_free(&f);
    return ok ? 0 : -1;
}

static struct spro_arena arena_new(void)
{
    size_t cap = SPRO_PROTO_ARENA_BYTES(ANSWER_PLAIN);
    struct spro_arena a = {malloc(cap), 0, cap};
    if (a.base == NULL)
        die("out of memory", 0);
    return a;
}

/* ---- load ---- */

static void cmd_load(void)
{
    size_t bytes, batch = batch_size(1, &bytes);
    struct spro_device dev;
    device_local(&dev);
    static struct opbuf ops[SPRO_SYNC_MAX_OPS];
    static struct spro_wire_op wops[SPRO_SYNC_MAX_OPS];
    size_t cap = SPRO_PROTO_ARENA_BYTES(FRAME_PLAIN) + SPRO_PROTO_ARENA_BYTES(FRAME_PLAIN);
    struct spro_arena a = {malloc(cap), 0, cap};
    uint64_t hlc = 0, seq = 0, t0 = now_us();
    for (uint64_t i = 0; i < records;) {
        size_t n = records - i < batch ? (size_t)(records - i) : batch;
        for (size_t k = 0; k < n; k++) {
            uint64_t h = wall_ms() << 16;
            hlc = h > hlc ? h : hlc + 1;
            sr_uuid(ops[k].uuid, i + k, 0);
            sr_values(i + k, ops[k].vals);
            op_create(&ops[k], ++seq, hlc);
            wops[k] = ops[k].op;
        }
        /* Encoded and decoded as the server would, so that values carry
         * their raw bytes. */
        struct spro_msg m = {.type = SPRO_MSG_PUSH}, in;
        m.u.push.ops = wops;
        m.u.push.nops = n;
        struct spro_buf b = {0};
        int rc = spro_proto_encode(&m, &b);
        a.len = 0;
        if (rc == 0 && b.len > FRAME_PLAIN)
            rc = SPRO_ETOOLONG;
        if (rc == 0)
            rc = spro_proto_decode_sync(b.data, b.len, &a, &in);
        struct spro_msg_push_reply out;
        if (rc == 0)
            rc = spro_sync_push(dd, &dev, &in.u.push, (int64_t)wall_ms(), DRIFT_MS, &a, &out);
        if (rc != 0)
            die("in-process push", rc);
        for (size_t k = 0; k < out.nresults; k++)
            if (out.results[k].status != SPRO_RESULT_ACK)
                die("in-process push: an op was not acknowledged", 0);
        spro_buf_free(&b);
        i += n;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    printf("load records %llu seconds %.2f ops/s %.0f batch %zu\n", (unsigned long long)records,
           secs, (double)records / secs, batch);
    free(a.base);
}

/* ---- pull-ceiling ---- */

/* A transport CipherState, from an in-process Noise_NN handshake. */
static struct spro_noise_cipher *cipher_new(void)
{
    const char *proto = "Noise_NN_25519_ChaChaPoly_BLAKE2b";
    struct spro_noise_handshake *i = NULL, *r = NULL;
    struct spro_noise_cipher *is = NULL, *ir = NULL, *rs = NULL, *rr = NULL;
    uint8_t m[256], p[64];
    size_t len, plen;
    if (spro_noise_handshake_init(&i, proto, 1, NULL, 0, NULL, NULL, NULL, 0) != 0 ||
        spro_noise_handshake_init(&r, proto, 0, NULL, 0, NULL, NULL, NULL, 0) != 0 ||
        spro_noise_write_message(i, NULL, 0, m, sizeof m, &len) != 0 ||
        spro_noise_read_message(r, m, len, p, sizeof p, &plen) != 0 ||
        spro_noise_write_message(r, NULL, 0, m, sizeof m, &len) != 0 ||
        spro_noise_read_message(i, m, len, p, sizeof p, &plen) != 0 ||
        spro_noise_split(i, &is, &ir) != 0 || spro_noise_split(r, &rs, &rr) != 0)
        die("Noise_NN handshake", 0);
    spro_noise_handshake_destroy(i);
    spro_noise_handshake_destroy(r);
    spro_noise_cipher_destroy(is);
    spro_noise_cipher_destroy(ir);
    spro_noise_cipher_destroy(rr);
    return rs;
}

static void cmd_pull_ceiling(void)
{
    struct spro_device dev;
    device_local(&dev);
    struct spro_noise_cipher *cs = cipher_new();
    size_t cap = SPRO_SYNC_PULL_ARENA_BYTES(PULL_ANSWER_MAX);
    struct spro_arena a = {malloc(cap), 0, cap};
    size_t sealed_cap = spro_noise_chunked_size(SPRO_SEALED_MAX_PLAIN);
    uint8_t *sealed = malloc(sealed_cap + 8);
    uint8_t cursor[SPRO_SYNC_MAX_CURSOR], ad[96];
    memset(ad, 'a', sizeof ad); /* the size of the server's associated data */
    size_t clen = 0, pulls = 0, bytes = 0;
    uint64_t got = 0, nonce = 0, t0 = now_us();
    for (bool more = true; more; pulls++) {
        struct spro_msg_pull q = {{cursor, clen}, PULL_LIMIT};
        struct spro_msg m = {.type = SPRO_MSG_PULL_REPLY};
        a.len = 0;
        int rc = spro_sync_pull(dd, &dev, &q, PULL_ANSWER_MAX, &a, &m.u.pull_reply);
        struct spro_buf b = {0};
        if (rc == 0)
            rc = spro_proto_encode(&m, &b);
        if (rc == 0) /* as the server seals answers: chunked */
            rc = spro_noise_cipher_encrypt_chunked(cs, nonce, ad, sizeof ad, b.data, b.len,
                                                   sealed + 8, sealed_cap);
        if (rc != 0)
            die("in-process pull", rc);
        nonce += spro_noise_chunks(b.len);
        bytes += 8 + spro_noise_chunked_size(b.len);
        spro_memzero(b.data, b.len);
        spro_buf_free(&b);
        got += m.u.pull_reply.nrecords;
        clen = m.u.pull_reply.cursor.len;
        memcpy(cursor, m.u.pull_reply.cursor.p, clen);
        more = m.u.pull_reply.more;
        spro_memzero(a.base, a.len);
    }
    double secs = (double)(now_us() - t0) / 1e6;
    printf("pull-ceiling records %llu seconds %.2f records/s %.0f pulls %zu bytes %zu\n",
           (unsigned long long)got, secs, (double)got / secs, pulls, bytes);
    spro_noise_cipher_destroy(cs);
    free(sealed);
    free(a.base);
    if (got != records)
        die("the ceiling did not see every record", 0);
}

/* ---- pull ---- */

static bool bytes_is(struct spro_bytes b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

/* Whether record r is beneficiary i as loaded. */
static bool record_ok(const struct spro_wire_record *r, uint64_t i)
{
    char uuid[37], v[SR_FIELDS][SR_VALUE_MAX];
    sr_uuid(uuid, i, 0);
    sr_values(i, v);
    if (!bytes_is(r->rid, uuid) || r->removed || r->nfields != SR_FIELDS)
        return false;
    for (size_t j = 0; j < SR_FIELDS; j++) {
        const struct spro_wire_field *f = NULL;
        for (size_t k = 0; k < r->nfields; k++)
            if (bytes_is(r->fields[k].name, sr_names[j]))
                f = &r->fields[k];
        if (f == NULL || f->nsiblings != 1 || f->siblings[0].val.kind != SPRO_VALUE_STR ||
            !bytes_is(f->siblings[0].val.s, v[j]))
            return false;
    }
    return true;
}

static void cmd_pull(void)
{
    static struct conn c;
    struct spro_device dev;
    uint64_t t0 = now_us();
    device_remote(&c, &dev);
    uint64_t t1 = now_us();
    struct spro_arena a = arena_new();
    uint8_t cursor[SPRO_SYNC_MAX_CURSOR];
    size_t clen = 0, pulls = 0, bytes = 0, bad = 0;
    uint64_t got = 0;
    for (bool more = true; more; pulls++) {
        struct spro_msg q = {.type = SPRO_MSG_PULL}, m;
        q.u.pull = (struct spro_msg_pull){{cursor, clen}, PULL_LIMIT};
        size_t in;
        if (sync_call(&c, "/v1/sync/pull", &q, &a, &m, NULL, &in) != 0 ||
            m.type != SPRO_MSG_PULL_REPLY)
            die("pull through the server", 0);
        bytes += in;
        for (size_t k = 0; k < m.u.pull_reply.nrecords; k++)
            bad += !record_ok(&m.u.pull_reply.records[k], got + k);
        got += m.u.pull_reply.nrecords;
        clen = m.u.pull_reply.cursor.len;
        memcpy(cursor, m.u.pull_reply.cursor.p, clen);
        more = m.u.pull_reply.more;
    }
    uint64_t t2 = now_us();
    double secs = (double)(t2 - t0) / 1e6;
    printf("pull records %llu seconds %.2f records/s %.0f pulls %zu bytes %zu handshake_ms %.1f "
           "bad %zu\n",
           (unsigned long long)got, secs, (double)got / secs, pulls, bytes, (double)(t1 - t0) / 1e3,
           bad);
    close(c.fd);
    spro_client_channel_destroy(c.ch);
    free(a.base);
    if (got != records || bad != 0)
        die("the initial sync did not bring every record back intact", 0);
}

/* ---- push ---- */

/* A record this device created: the version its last push got. */
struct mine {
    uint64_t i;
    uint64_t ver_hlc;
    uint64_t edits;
};

static _Atomic int phase; /* 0 create, 1 wait, 2 edit, 3 stop */
static pthread_barrier_t barrier;
static size_t batch_create, batch_edit;

struct pusher {
    pthread_t t;
    struct conn c;
    struct spro_device dev;
    uint64_t seq, hlc;
    struct mine *mine;
    size_t nmine, capmine, next_edit;
    uint64_t ops[2], pushes[2], errors, end_us[2];
    uint32_t *lat_us[2];
    size_t nlat[2];
};

static uint64_t next_hlc(struct pusher *p)
{
    uint64_t h = wall_ms() << 16;
    p->hlc = h > p->hlc ? h : p->hlc + 1;
    return p->hlc;
}

/* One push of the kind (0 create, 1 edit); 0 when every op was acked. */
static int push_once(struct pusher *p, int kind, struct opbuf *ops, struct spro_wire_op *wops,
                     struct spro_arena *a)
{
    size_t n = kind == 0 ? batch_create : batch_edit, base = p->nmine;
    if (kind == 1 && n > p->nmine)
        n = p->nmine;
    if (n == 0)
        return -1;
    for (size_t k = 0; k < n; k++) {
        struct opbuf *b = &ops[k];
        if (kind == 0) {
            if (p->nmine == p->capmine) {
                p->capmine = p->capmine ? 2 * p->capmine : 4096;
                p->mine = realloc(p->mine, p->capmine * sizeof *p->mine);
            }
            /* Unique in the data directory: the device's row id, then a
             * counter. */
            uint64_t i = (uint64_t)p->dev.rowid << 28 | (uint64_t)(p->nmine);
            p->mine[p->nmine++] = (struct mine){i, 0, 0};
            sr_uuid(b->uuid, i, 1);
            sr_values(i, b->vals);
            op_create(b, ++p->seq, next_hlc(p));
        } else {
            struct mine *r = &p->mine[(p->next_edit + k) % p->nmine];
            char v[SR_EDIT_FIELDS][SR_VALUE_MAX];
            sr_uuid(b->uuid, r->i, 1);
            sr_edit_values(r->i, ++r->edits, v);
            memcpy(b->vals, v, sizeof v);
            snprintf(b->origin, sizeof b->origin, "%s", p->dev.id);
            op_change(b, ++p->seq, next_hlc(p), r->ver_hlc);
        }
        wops[k] = b->op;
    }
    struct spro_msg req = {.type = SPRO_MSG_PUSH}, m;
    req.u.push.ops = wops;
    req.u.push.nops = n;
    uint64_t t0 = now_us();
    if (sync_call(&p->c, "/v1/sync/push", &req, a, &m, NULL, NULL) != 0 ||
        m.type != SPRO_MSG_PUSH_REPLY || m.u.push_reply.nresults != n) {
        p->nmine = base; /* records never created are not edited */
        return -1;
    }
    uint32_t lat = (uint32_t)(now_us() - t0);
    int acked = 1;
    for (size_t k = 0; k < n; k++) {
        const struct spro_wire_result *r = &m.u.push_reply.results[k];
        if (r->status != SPRO_RESULT_ACK || !bytes_is(r->ver.origin, p->dev.id))
            acked = 0;
        struct mine *x = kind == 0 ? &p->mine[base + k] : &p->mine[(p->next_edit + k) % p->nmine];
        x->ver_hlc = r->ver.hlc;
    }
    if (kind == 1)
        p->next_edit = (p->next_edit + n) % p->nmine;
    p->ops[kind] += n;
    p->pushes[kind]++;
    if (p->nlat[kind] < MAX_SAMPLES)
        p->lat_us[kind][p->nlat[kind]++] = lat;
    return acked ? 0 : -1;
}

static void *push_run(void *arg)
{
    struct pusher *p = arg;
    struct opbuf *ops = malloc(SPRO_SYNC_MAX_OPS * sizeof *ops);
    struct spro_wire_op *wops = malloc(SPRO_SYNC_MAX_OPS * sizeof *wops);
    struct spro_arena a = arena_new();
    while (atomic_load(&phase) == 0)
        if (push_once(p, 0, ops, wops, &a) != 0 && ++p->errors > 10)
            break;
    p->end_us[0] = now_us();
    pthread_barrier_wait(&barrier); /* everyone stopped creating */
    pthread_barrier_wait(&barrier); /* the edit phase starts */
    while (atomic_load(&phase) == 2)
        if (push_once(p, 1, ops, wops, &a) != 0 && ++p->errors > 10)
            break;
    p->end_us[1] = now_us();
    free(a.base);
    free(ops);
    free(wops);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void report_push(const char *what, struct pusher *ps, int kind, uint64_t t0, size_t batch,
                        size_t bytes)
{
    uint64_t ops = 0, pushes = 0, end = t0;
    size_t nlat = 0;
    for (int i = 0; i < conns; i++) {
        ops += ps[i].ops[kind];
        pushes += ps[i].pushes[kind];
        nlat += ps[i].nlat[kind];
        if (ps[i].end_us[kind] > end)
            end = ps[i].end_us[kind];
    }
    uint32_t *all = malloc(sizeof(uint32_t) * (nlat + 1));
    size_t k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + k, ps[i].lat_us[kind], ps[i].nlat[kind] * sizeof(uint32_t));
        k += ps[i].nlat[kind];
    }
    qsort(all, nlat, sizeof *all, cmp_u32);
    double secs = (double)(end - t0) / 1e6;
    printf("%s ops/s %.0f ops %llu pushes %llu batch %zu bytes %zu p50_ms %.1f p99_ms %.1f "
           "seconds %.2f\n",
           what, (double)ops / secs, (unsigned long long)ops, (unsigned long long)pushes, batch,
           bytes, nlat ? all[nlat / 2] / 1e3 : 0.0, nlat ? all[nlat * 99 / 100] / 1e3 : 0.0, secs);
    free(all);
}

static void cmd_push(void)
{
    size_t cbytes, ebytes;
    batch_create = batch_size(1, &cbytes);
    batch_edit = batch_size(0, &ebytes);
    struct pusher *ps = calloc((size_t)conns, sizeof *ps);
    for (int i = 0; i < conns; i++) {
        ps[i].hlc = 0;
        for (int k = 0; k < 2; k++)
            ps[i].lat_us[k] = malloc(sizeof(uint32_t) * MAX_SAMPLES);
        device_remote(&ps[i].c, &ps[i].dev);
        if (ps[i].dev.rowid >= (1 << 12))
            die("too many devices in this data directory", 0);
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)conns + 1);
    uint64_t t0 = now_us();
    for (int i = 0; i < conns; i++)
        pthread_create(&ps[i].t, NULL, push_run, &ps[i]);
    sleep((unsigned)seconds);
    atomic_store(&phase, 1);
    pthread_barrier_wait(&barrier);
    atomic_store(&phase, 2);
    uint64_t t1 = now_us();
    pthread_barrier_wait(&barrier);
    sleep((unsigned)seconds);
    atomic_store(&phase, 3);
    uint64_t errors = 0, created = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(ps[i].t, NULL);
        errors += ps[i].errors;
        created += ps[i].nmine;
    }
    report_push("push-create", ps, 0, t0, batch_create, cbytes);
    report_push("push-edit", ps, 1, t1, batch_edit, ebytes);
    printf("push-records created %llu connections %d errors %llu\n", (unsigned long long)created,
           conns, (unsigned long long)errors);
    for (int i = 0; i < conns; i++) {
        close(ps[i].c.fd);
        spro_client_channel_destroy(ps[i].c.ch);
        free(ps[i].mine);
        for (int k = 0; k < 2; k++)
            free(ps[i].lat_us[k]);
    }
    free(ps);
    if (errors != 0)
        die("some pushes failed or were not acknowledged", 0);
}

/* ---- sizes, records ---- */

static void cmd_sizes(void)
{
    size_t cb, eb, c = batch_size(1, &cb), e = batch_size(0, &eb);
    printf("sizes create_batch %zu create_bytes %zu edit_batch %zu edit_bytes %zu\n", c, cb, e, eb);
}

/* A JSON string (the values are ASCII without quotes or backslashes). */
static void cmd_records(void)
{
    char uuid[37], v[SR_FIELDS][SR_VALUE_MAX];
    for (uint64_t i = 0; i < records; i++) {
        sr_uuid(uuid, i, 0);
        sr_values(i, v);
        printf("{\"_id\":\"%s\"", uuid);
        for (size_t j = 0; j < SR_FIELDS; j++)
            printf(",\"%s\":\"%s\"", sr_names[j], v[j]);
        printf("}\n");
    }
}

/* N data keys, wrapped under the active epoch, 10,000 per keys.db
 * transaction (as a group of pushes creating beneficiaries stores them). */
static void cmd_keys_load(void)
{
    enum { B = 10000 };
    static char names[B][37];
    static uint8_t wrapped[B][SPRO_WRAPPED_KEY_BYTES];
    static const char *bens[B];
    uint8_t kek[SPRO_KEY_BYTES], dk[SPRO_KEY_BYTES];
    uint32_t epoch;
    int rc = spro_keyring__current(dd, &epoch, kek);
    if (rc != 0)
        die("reading the active KEK", rc);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < records; i += B) {
        size_t m = records - i < B ? (size_t)(records - i) : B;
        for (size_t k = 0; k < m; k++) {
            uint64_t x = i + k;
            snprintf(names[k], sizeof names[k], "%08x-%04x-4%03x-9%03x-%012llx",
                     (unsigned)(x * 2654435761u), (unsigned)(x >> 32) & 0xffff,
                     (unsigned)(x >> 12) & 0xfff, (unsigned)x & 0xfff, (unsigned long long)x);
            spro_field_key_new(dk);
            if ((rc = spro_field_key_wrap(wrapped[k], dk, kek, epoch, names[k])) != 0)
                die("wrapping", rc);
            bens[k] = names[k];
        }
        if ((rc = spro_store__data_keys_add(spro_datadir__keys(dd), bens,
                                            (const uint8_t(*)[SPRO_WRAPPED_KEY_BYTES])wrapped,
                                            m)) != 0)
            die("storing data keys", rc);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    spro_memzero(kek, sizeof kek);
    spro_memzero(dk, sizeof dk);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("keys-load keys %llu seconds %.2f keys_per_s %.0f epoch %u\n",
           (unsigned long long)records, sec, (double)records / sec, epoch);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: spro-sync-bench load|pull-ceiling|keys-load --data DIR --records N\n"
            "       spro-sync-bench pull --port P --data DIR --records N\n"
            "       spro-sync-bench push --port P --data DIR [--connections C] [--seconds S]\n"
            "       spro-sync-bench sizes\n"
            "       spro-sync-bench records --records N\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1], *data = NULL;
    for (int i = 2; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(v);
        else if (strcmp(argv[i], "--data") == 0)
            data = v;
        else if (strcmp(argv[i], "--records") == 0)
            records = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--connections") == 0)
            conns = atoi(v);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(v);
        else
            usage();
    }
    if (conns < 1 || conns > 64 || seconds < 1)
        usage();
    if (strcmp(cmd, "sizes") == 0 || strcmp(cmd, "records") == 0) {
        if (spro_crypto_init() != 0)
            die("crypto", 0);
        if (strcmp(cmd, "sizes") == 0)
            cmd_sizes();
        else
            cmd_records();
        return 0;
    }
    bool remote = strcmp(cmd, "pull") == 0 || strcmp(cmd, "push") == 0;
    if (data == NULL || (remote && port <= 0) ||
        (strcmp(cmd, "push") != 0 && (records == 0 || records > ((uint64_t)1 << 40))))
        usage();
    open_dd(data);
    if (strcmp(cmd, "load") == 0)
        cmd_load();
    else if (strcmp(cmd, "pull-ceiling") == 0)
        cmd_pull_ceiling();
    else if (strcmp(cmd, "keys-load") == 0)
        cmd_keys_load();
    else if (strcmp(cmd, "pull") == 0)
        cmd_pull();
    else if (strcmp(cmd, "push") == 0)
        cmd_push();
    else
        usage();
    spro_datadir_close(dd);
    return 0;
}
