/*
 * http.c: the HTTP server: listener with connection caps, routing, the
 * handlers, hand-off of storage work to worker threads, and graceful
 * shutdown.  Everything here runs on the single event-loop thread except
 * job_run(), which runs on a libuv worker thread and touches only its job
 * and the data directory.  See docs/ARCHITECTURE.md for a request's path.
 */
#include "internal.h"
#include "keytab.h"
#include "session.h"
#include "proto/proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* One accepted connection.  Owned by the server from accept until libuv
 * closes its handle (on_conn_close). */
struct conn {
    uv_tcp_t tcp; /* first: libuv's close callback receives &tcp */
    struct server *srv;
    uint8_t addr[16];  /* peer address, IPv4 mapped into IPv6 */
    int fd;            /* -1 until registered */
    uint64_t requests; /* HTTP/2 requests seen, against --http2-request-budget */
    bool over_budget;
    struct conn *prev, *next;
};

struct handler {
    h2o_handler_t super;
    struct server *srv;
};

/* Per-request state, allocated in req->pool; disposed with the request. */
struct reqstate {
    struct server *srv;
    h2o_req_t *req;
    uint64_t start_ns;
    enum spro_route route;
};

/* ---------------------------------------------------------------------- */
/* Responses                                                              */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

void spro_server__send_pooled(h2o_req_t *req, int status, const char *ctype, h2o_iovec_t body)
{
    static h2o_generator_t generator = {NULL, NULL};
    req->res.status = status;
    req->res.reason = reason(status);
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                   strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_start_response(req, &generator);
    bool head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_send(req, head ? NULL : &body, head ? 0 : 1, H2O_SEND_STATE_FINAL);
}

void spro_server__send_body(h2o_req_t *req, int status, const char *ctype, const void *body,
                            size_t len)
{
    spro_server__send_pooled(req, status, ctype, h2o_strdup(&req->pool, body, len));
}

void spro_server__send_msgpack(h2o_req_t *req, int status, struct spro_buf *b)
{
    spro_server__send_body(req, status, "application/msgpack", b->data, b->len);
    spro_buf_free(b);
}

/* Answers with the error message of err (docs/PROTOCOL.md, "Error codes"). */
void spro_server__send_error(h2o_req_t *req, int err)
{
    struct spro_buf b = {0};
    spro_proto_encode_error(err, NULL, &b);
    spro_server__send_msgpack(req, spro_errstatus(err), &b);
}

/* ---------------------------------------------------------------------- */
/* Work off the loop                                                      */

static void job_slot_dispose(void *p)
{
    struct job **slot = p;
    if (*slot != NULL) {
        (*slot)->req = NULL; /* the request is gone; the job ends quietly */
        (*slot)->cancelled = true;
    }
}

static void job_work(uv_work_t *w)
{
    struct job *j = w->data;
    if (j->cancelled || j->srv->stopping_work)
        return;
    j->ran = true;
    j->run(j);
}

static void job_after(uv_work_t *w, int status)
{
    struct job *j = w->data;
    j->srv->queued--;
    if (!j->ran)
        j->srv->metrics.jobs_skipped++;
    if (j->req != NULL) {
        *j->slot = NULL;
        if (status == 0 && j->ran)
            j->done(j);
        else
            spro_server__send_error(j->req, SPRO_EUNAVAILABLE);
    }
    if (j->free != NULL)
        j->free(j);
    free(j);
}

/* Hands j to a worker thread; takes ownership of j (freed after done). */
void spro_server__offload(struct server *s, h2o_req_t *req, struct job *j)
{
    if (s->stopping || s->queued >= SPRO_SERVER_QUEUE_PER_WORKER * s->cfg->workers) {
        s->metrics.jobs_refused++;
        spro_server__refused(s, "request_refused", spro_errcode(SPRO_EUNAVAILABLE));
        if (j->free != NULL)
            j->free(j);
        free(j);
        spro_server__send_error(req, SPRO_EUNAVAILABLE);
        return;
    }
    j->srv = s;
    j->req = req;
    j->slot = h2o_mem_alloc_shared(&req->pool, sizeof *j->slot, job_slot_dispose);
    *j->slot = j;
    j->work.data = j;
    s->queued++;
    int rc = uv_queue_work(&s->loop, &j->work, job_work, job_after);
    if (rc != 0) {
        s->queued--;
        *j->slot = NULL;
        if (j->free != NULL)
            j->free(j);
        free(j);
        spro_server__send_error(req, SPRO_EUNAVAILABLE);
    }
}

void *spro_server__job_alloc(size_t size)
{
    void *p = calloc(1, size);
    if (p == NULL)
        SPRO_BUG("out of memory");
    return p;
}

/* ---------------------------------------------------------------------- */
/* Handlers                                                               */

struct health_job {
    struct job super;
    int rc;
};

static void health_run(struct job *j)
{
    struct health_job *h = (struct health_job *)j;
    h->rc = spro_datadir_ping(j->srv->dd);
}

static void health_done(struct job *j)
{
    struct health_job *h = (struct health_job *)j;
    if (h->rc != 0) {
        struct spro_logline l;
        spro_log_begin(&l, SPRO_LOG_ERROR, "health_check_failed");
        spro_log_str(&l, "error", spro_strerror(h->rc));
        spro_log_end(&l);
        spro_server__send_error(j->req, SPRO_EUNAVAILABLE);
        return;
    }
    struct spro_msg m = {.type = SPRO_MSG_HEALTH};
    m.u.health.status = (struct spro_bytes){(const uint8_t *)"ok", 2};
    m.u.health.schema = (uint32_t)spro_datadir_schema(j->srv->dd);
    m.u.health.version = (struct spro_bytes){(const uint8_t *)SPRO_VERSION, strlen(SPRO_VERSION)};
    struct spro_buf b = {0};
    if (spro_proto_encode(&m, &b) != 0)
        SPRO_BUG("health message does not encode");
    spro_server__send_msgpack(j->req, 200, &b);
}

static void handle_healthz(struct server *s, h2o_req_t *req)
{
    struct health_job *h = spro_server__job_alloc(sizeof *h);
    h->super.run = health_run;
    h->super.done = health_done;
    spro_server__offload(s, req, &h->super);
}

static void handle_metrics(struct server *s, h2o_req_t *req)
{
    struct spro_gauges g = {s->nconns, s->inflight, s->queued, 0, 0};
    spro_sync_push_stats(s->dd, &g.pushes, &g.push_commits);
    h2o_iovec_t body;
    spro_metrics_render(&s->metrics, &g, &req->pool, &body);
    spro_server__send_pooled(req, 200, "text/plain; version=0.0.4", body);
}

/* POST /v1/bench/echo: strict decode, re-encode as echo_reply. */
static void handle_echo(struct server *s, h2o_req_t *req)
{
    (void)s;
    struct spro_msg m;
    int rc = spro_proto_decode(req->entity.base, req->entity.len, &m);
    if (rc == 0 && m.type != SPRO_MSG_ECHO)
        rc = SPRO_EBADMSGTYPE;
    if (rc != 0) {
        spro_server__send_error(req, rc);
        return;
    }
    m.type = SPRO_MSG_ECHO_REPLY;
    struct spro_buf b = {0};
    if (spro_proto_encode(&m, &b) != 0)
        SPRO_BUG("echo reply does not encode");
    spro_server__send_msgpack(req, 200, &b);
}

enum body_kind {
    BODY_NONE,    /* no body expected */
    BODY_MSGPACK, /* Content-Type: application/msgpack */
    BODY_BYTES,   /* Content-Type: application/octet-stream (Noise messages, sealed frames) */
};

struct route {
    const char *path;
    const char *method;
    enum spro_route id;
    enum body_kind body;
    bool bench_only; /* mounted only with --bench */
    void (*fn)(struct server *s, h2o_req_t *req);
};

static const struct route routes[] = {
    {"/healthz", "GET", SPRO_ROUTE_HEALTHZ, BODY_NONE, false, handle_healthz},
    {"/metrics", "GET", SPRO_ROUTE_METRICS, BODY_NONE, false, handle_metrics},
    {"/v1/server-key", "GET", SPRO_ROUTE_SERVER_KEY, BODY_NONE, false, spro_channel_server_key},
    {"/v1/session", "POST", SPRO_ROUTE_SESSION, BODY_BYTES, false, spro_channel_session},
    {"/v1/ping", "POST", SPRO_ROUTE_PING, BODY_BYTES, false, spro_channel_ping},
    {"/v1/bench/echo", "POST", SPRO_ROUTE_ECHO, BODY_MSGPACK, true, handle_echo},
    {"/v1/sync/push", "POST", SPRO_ROUTE_SYNC_PUSH, BODY_BYTES, false, spro_channel_sync_push},
    {"/v1/sync/pull", "POST", SPRO_ROUTE_SYNC_PULL, BODY_BYTES, false, spro_channel_sync_pull},
    {"/v1/bench/sealed-echo", "POST", SPRO_ROUTE_SEALED_ECHO, BODY_BYTES, true,
     spro_channel_sealed_echo},
};

/* Whether the request's media type (parameters after ';' ignored, case
 * insensitive) is the one the route takes. */
static bool media_type_is(h2o_req_t *req, const char *want)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = v.len;
    for (size_t k = 0; k < v.len; k++)
        if (v.base[k] == ';') {
            n = k;
            break;
        }
    while (n > 0 && (v.base[n - 1] == ' ' || v.base[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(v.base, want, n) == 0;
}

static void reqstate_dispose(void *p)
{
    struct reqstate *rs = p;
    struct server *s = rs->srv;
    int status = rs->req->res.status;
    double secs = (double)(uv_hrtime() - rs->start_ns) / 1e9;
    s->inflight--;
    spro_metrics_observe(&s->metrics, rs->route, status, secs);
    struct spro_logline l;
    spro_log_begin(&l, status >= 400 || status == 0 ? SPRO_LOG_INFO : SPRO_LOG_DEBUG, "request");
    spro_log_strn(&l, "method", rs->req->input.method.base, rs->req->input.method.len);
    spro_log_str(&l, "route", spro_route_name(rs->route));
    spro_log_int(&l, "status", status);
    spro_log_int(&l, "duration_us", (int64_t)(secs * 1e6));
    spro_log_int(&l, "http", rs->req->version >= 0x200 ? 2 : 1);
    spro_log_end(&l);
}

static struct conn *conn_of(struct server *s, h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
    return fd >= 0 && (size_t)fd < s->by_fd_cap ? s->by_fd[fd] : NULL;
}

/* Counts an HTTP/2 request against its connection's budget; past it, the
 * connection is cut (this is what bounds rapid-reset floods, which the
 * HTTP/2 layer of libh2o 2.2 does not). */
static bool over_budget(struct server *s, h2o_req_t *req)
{
    struct conn *c = conn_of(s, req);
    if (c == NULL || ++c->requests <= s->cfg->h2_request_budget)
        return false;
    if (!c->over_budget) {
        c->over_budget = true;
        s->metrics.h2_budget_closed++;
        struct spro_logline l;
        spro_log_begin(&l, SPRO_LOG_WARN, "http2_budget_exhausted");
        spro_log_int(&l, "requests", (int64_t)c->requests - 1);
        spro_log_end(&l);
        shutdown(c->fd, SHUT_RDWR); /* h2o sees the end of the stream and closes */
    }
    return true;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct server *s = ((struct handler *)self)->srv;
    struct reqstate *rs = h2o_mem_alloc_shared(&req->pool, sizeof *rs, reqstate_dispose);
    *rs = (struct reqstate){s, req, uv_hrtime(), SPRO_ROUTE_NONE};
    s->inflight++;
    if (s->stopping)
        req->http1_is_persistent = 0;
    if (req->version >= 0x200 && over_budget(s, req)) {
        spro_server__refused(s, "http2_budget_refused", spro_errcode(SPRO_EUNAVAILABLE));
        spro_server__send_error(req, SPRO_EUNAVAILABLE);
        return 0;
    }
    const struct route *path_match = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        if ((r->bench_only && !s->cfg->bench) ||
            !h2o_memis(req->path_normalized.base, req->path_normalized.len, r->path,
                       strlen(r->path)))
            continue;
        path_match = r;
        rs->route = r->id;
        if (!h2o_memis(req->input.method.base, req->input.method.len, r->method, strlen(r->method)))
            continue;
        if ((r->body == BODY_MSGPACK && !media_type_is(req, "application/msgpack")) ||
            (r->body == BODY_BYTES && !media_type_is(req, "application/octet-stream"))) {
            spro_server__refused(s, "request_refused", spro_errcode(SPRO_EMEDIATYPE));
            spro_server__send_error(req, SPRO_EMEDIATYPE);
            return 0;
        }
        r->fn(s, req);
        return 0;
    }
    if (path_match != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, path_match->method,
                       strlen(path_match->method));
        spro_server__refused(s, "request_refused", spro_errcode(SPRO_EMETHOD));
        spro_server__send_error(req, SPRO_EMETHOD);
    } else {
        spro_server__refused(s, "request_refused", spro_errcode(SPRO_ENOTFOUND));
        spro_server__send_error(req, SPRO_ENOTFOUND);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Connections                                                            */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void spro_server__addr16(const struct sockaddr_storage *ss, uint8_t out[16])
{
    memset(out, 0, 16);
    if (ss->ss_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else if (ss->ss_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    }
}

static void on_conn_close(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    struct server *s = c->srv;
    s->nconns--;
    if (spro_keytab_set(s->addrs, c->addr, spro_keytab_get(s->addrs, c->addr) - 1) != 0)
        SPRO_BUG("cannot lower a connection count");
    if (c->fd >= 0 && (size_t)c->fd < s->by_fd_cap && s->by_fd[c->fd] == c)
        s->by_fd[c->fd] = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
}

static void reject(struct server *s, struct conn *c, const char *cap)
{
    spro_server__refused(s, "connection_refused", cap);
    struct spro_logline l;
    spro_log_begin(&l, SPRO_LOG_WARN, "connection_rejected");
    spro_log_str(&l, "cap", cap);
    spro_log_int(&l, "open", s->nconns);
    spro_log_end(&l);
    uv_close((uv_handle_t *)&c->tcp, free_handle);
}

static void track_fd(struct server *s, struct conn *c)
{
    if (uv_fileno((uv_handle_t *)&c->tcp, &c->fd) != 0 || c->fd < 0) {
        c->fd = -1;
        return;
    }
    if ((size_t)c->fd >= s->by_fd_cap) {
        size_t cap = s->by_fd_cap ? s->by_fd_cap : 256;
        while (cap <= (size_t)c->fd)
            cap *= 2;
        struct conn **n = realloc(s->by_fd, cap * sizeof *n);
        if (n == NULL)
            SPRO_BUG("out of memory");
        memset(n + s->by_fd_cap, 0, (cap - s->by_fd_cap) * sizeof *n);
        s->by_fd = n;
        s->by_fd_cap = cap;
    }
    s->by_fd[c->fd] = c;
}

/* Accepts one connection, or closes it at once when a cap is reached: this
 * is the one bound on memory held by idle or slow connections. */
static void on_accept(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    if (status != 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        SPRO_BUG("out of memory");
    c->srv = s;
    c->fd = -1;
    uv_tcp_init(&s->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, free_handle);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    memset(&ss, 0, sizeof ss);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen);
    spro_server__addr16(&ss, c->addr);
    if (s->stopping || s->nconns >= s->cfg->max_connections) {
        s->metrics.rejected_global++;
        reject(s, c, "global");
        return;
    }
    uint64_t from_addr = spro_keytab_get(s->addrs, c->addr);
    if (from_addr >= s->cfg->max_conn_per_addr) {
        s->metrics.rejected_per_addr++;
        reject(s, c, "per_address");
        return;
    }
    s->nconns++;
    s->metrics.accepted++;
    if (spro_keytab_set(s->addrs, c->addr, from_addr + 1) != 0)
        SPRO_BUG("address table full below the connection cap");
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    track_fd(s, c);
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close);
    h2o_accept(&s->accept_ctx, sock);
}

/* ---------------------------------------------------------------------- */
/* Shutdown                                                               */

static void cut_all(struct server *s)
{
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
}

static void on_drain(uv_timer_t *t)
{
    struct server *s = t->data;
    uint64_t now = uv_now(&s->loop);
    if ((s->inflight == 0 && s->queued == 0) || now >= s->drain_deadline)
        cut_all(s); /* idle keep-alive connections, or the deadline passed */
    if (now >= s->drain_deadline)
        s->stopping_work = true; /* what is still queued is skipped */
    if ((s->nconns == 0 && s->queued == 0) || now >= s->drain_deadline + 500)
        uv_stop(&s->loop);
}

static void on_sweep(uv_timer_t *t)
{
    struct server *s = t->data;
    spro_sessions_sweep(s->sessions, uv_now(&s->loop));
}

static void begin_shutdown(struct server *s, const char *reason)
{
    if (s->stopping)
        return;
    s->stopping = true;
    struct spro_logline l;
    spro_log_begin(&l, SPRO_LOG_INFO, "shutdown_started");
    spro_log_str(&l, "reason", reason);
    spro_log_int(&l, "open_connections", s->nconns);
    spro_log_int(&l, "inflight_requests", s->inflight);
    spro_log_end(&l);
    uv_close((uv_handle_t *)&s->listener, NULL);
    h2o_context_request_shutdown(&s->ctx);
    s->drain_deadline = uv_now(&s->loop) + (uint64_t)s->cfg->shutdown_timeout * 1000;
    uv_timer_start(&s->drain, on_drain, 0, 20);
}

static void on_signal(uv_signal_t *h, int signum)
{
    begin_shutdown(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void spro_server__fail_stop(struct server *s, const char *why)
{
    if (s->failed)
        return;
    s->failed = true;
    struct spro_logline l;
    spro_log_begin(&l, SPRO_LOG_ERROR, "fail_stop");
    spro_log_str(&l, "error", why);
    spro_log_end(&l);
    begin_shutdown(s, "storage failure");
}

/* ---------------------------------------------------------------------- */
/* Set-up                                                                 */

static int setup_tls(struct server *s)
{
    static const h2o_iovec_t http1_only[] = {{H2O_STRLIT("http/1.1")}, {NULL, 0}};
    const struct spro_server_config *cfg = s->cfg;
    s->ssl = SSL_CTX_new(TLS_server_method());
    if (s->ssl == NULL)
        return SPRO_EINTERNAL;
    SSL_CTX_set_min_proto_version(s->ssl, TLS1_2_VERSION);
    /* No TLS 1.3 session tickets: with them, libh2o 2.2.5 never closes a
     * connection whose client leaves right after the handshake (measured:
     * 20 of 20 such connections stayed open past every timeout). */
    SSL_CTX_set_options(s->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(s->ssl, 0);
    const char *bad = NULL;
    if (SSL_CTX_use_certificate_chain_file(s->ssl, cfg->tls_cert) != 1)
        bad = cfg->tls_cert;
    else if (SSL_CTX_use_PrivateKey_file(s->ssl, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
             SSL_CTX_check_private_key(s->ssl) != 1)
        bad = cfg->tls_key;
    if (bad != NULL) {
        struct spro_logline l;
        spro_log_begin(&l, SPRO_LOG_ERROR, "tls_setup_failed");
        spro_log_str(&l, "file", bad);
        spro_log_str(&l, "error", "cannot load certificate chain or matching private key (PEM)");
        spro_log_end(&l);
        return SPRO_ECONFIG;
    }
    /* ALPN offers h2 only with --http2: HTTP/1.1 otherwise, whatever the
     * client asks for. */
    h2o_ssl_register_alpn_protocols(s->ssl, cfg->http2 ? h2o_http2_alpn_protocols : http1_only);
    s->accept_ctx.ssl_ctx = s->ssl;
    return 0;
}

static void setup_h2o(struct server *s)
{
    const struct spro_server_config *cfg = s->cfg;
    h2o_config_init(&s->gconf);
    s->gconf.server_name = h2o_iovec_init(H2O_STRLIT("spro-sync"));
    s->gconf.max_request_entity_size = (size_t)cfg->max_body;
    s->gconf.handshake_timeout = (uint64_t)cfg->request_timeout * 1000;
    s->gconf.http1.req_timeout = (uint64_t)cfg->request_timeout * 1000;
    /* HTTP/2 only on request: Upgrade: h2c and the prior-knowledge
     * preface are both governed by this flag in libh2o 2.2. */
    s->gconf.http1.upgrade_to_http2 = cfg->http2;
    s->gconf.http2.idle_timeout = (uint64_t)cfg->request_timeout * 1000;
    /* libh2o closes HTTP/2 connections still open this long after GOAWAY;
     * shorter than our own deadline, so it gets to do it first. */
    s->gconf.http2.graceful_shutdown_timeout = (uint64_t)cfg->shutdown_timeout * 500;
    s->gconf.http2.max_concurrent_requests_per_connection = cfg->h2_max_streams;
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->gconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct handler *h = (struct handler *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = on_req;
    h->srv = s;
    h2o_context_init(&s->ctx, &s->loop, &s->gconf);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->gconf.hosts;
}

static int setup_listener(struct server *s, int *port)
{
    const struct spro_server_config *cfg = s->cfg;
    struct sockaddr_storage ss;
    int rc;
    if (strchr(cfg->listen_host, ':') != NULL)
        rc = uv_ip6_addr(cfg->listen_host, (int)cfg->listen_port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(cfg->listen_host, (int)cfg->listen_port, (struct sockaddr_in *)&ss);
    const char *what = "invalid IP address (use a numeric address such as 127.0.0.1)";
    if (rc == 0) {
        uv_tcp_init(&s->loop, &s->listener);
        s->listener.data = s;
        if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0)) == 0)
            rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_accept);
        if (rc != 0) {
            what = uv_strerror(rc);
            uv_close((uv_handle_t *)&s->listener, NULL);
        }
    }
    if (rc != 0) {
        struct spro_logline l;
        spro_log_begin(&l, SPRO_LOG_ERROR, "listen_failed");
        spro_log_str(&l, "host", cfg->listen_host);
        spro_log_int(&l, "port", cfg->listen_port);
        spro_log_str(&l, "error", what);
        spro_log_end(&l);
        return SPRO_ECONFIG;
    }
    int len = sizeof ss;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void banner(const struct server *s, int port)
{
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(s->dd));
    const char *scheme = s->ssl ? "https" : "http";
    bool v6 = strchr(s->cfg->listen_host, ':') != NULL;
    printf("spro-server %s serving %s://%s%s%s:%d (%s)\n"
           "server key fingerprint: %s\n"
           "next: check it with `curl %s%s://%s%s%s:%d/healthz`, enrol devices with spro-admin,\n"
           "      stop it with Ctrl-C (or SIGTERM).\n",
           SPRO_VERSION, scheme, v6 ? "[" : "", s->cfg->listen_host, v6 ? "]" : "", port,
           s->cfg->http2 ? "HTTP/1.1 and HTTP/2" : "HTTP/1.1", fp, s->ssl ? "-k " : "", scheme,
           v6 ? "[" : "", s->cfg->listen_host, v6 ? "]" : "", port);
    fflush(stdout);
}

int spro_server_run(const struct spro_server_config *cfg)
{
    struct server *s = calloc(1, sizeof *s);
    if (s == NULL)
        SPRO_BUG("out of memory");
    s->cfg = cfg;
    spro_log_set_level(cfg->log_level);
    char why[512];
    struct spro_datadir_options o = {
        .passphrase_file = cfg->passphrase_file[0] != '\0' ? cfg->passphrase_file : NULL,
        .passphrase_fd = cfg->passphrase_fd,
        .has_passphrase_fd = cfg->has_passphrase_fd,
    };
    int rc = spro_datadir_open_ex(cfg->data_dir, &o, &s->dd, why, sizeof why), port = 0;
    if (rc != 0) {
        struct spro_logline l;
        spro_log_begin(&l, SPRO_LOG_ERROR, "data_dir_open_failed");
        spro_log_str(&l, "error", why[0] ? why : spro_strerror(rc));
        spro_log_end(&l);
        free(s);
        return rc;
    }
    s->addrs = spro_keytab_create(cfg->max_connections);
    s->sessions = spro_sessions_create(cfg->max_sessions, (uint64_t)cfg->session_idle_ttl * 1000,
                                       (uint64_t)cfg->session_ttl * 1000);
    s->enrol_failures = spro_keytab_create(SPRO_SERVER_ENROL_ADDRESSES);
    uv_loop_init(&s->loop);
    setup_h2o(s);
    if (cfg->tls_cert[0] != '\0' && (rc = setup_tls(s)) != 0)
        goto out;
    if ((rc = setup_listener(s, &port)) != 0)
        goto out;
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    uv_timer_init(&s->loop, &s->drain);
    uv_timer_init(&s->loop, &s->sweep);
    s->sigterm.data = s->sigint.data = s->drain.data = s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, 1000, 1000);
    spro_server__retention_start(s);
    spro_server__purge_start(s);
    spro_server__rekey_start(s);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    spro_server__audit_start(s);

    struct spro_logline l;
    spro_log_begin(&l, SPRO_LOG_INFO, "listening");
    spro_log_str(&l, "host", cfg->listen_host);
    spro_log_int(&l, "port", port);
    spro_log_str(&l, "scheme", s->ssl ? "https" : "http");
    spro_log_int(&l, "http2", cfg->http2);
    spro_log_int(&l, "schema", spro_datadir_schema(s->dd));
    spro_log_end(&l);
    banner(s, port);

    uv_run(&s->loop, UV_RUN_DEFAULT);
    s->stopping_work = true; /* the loop below only drains the queue */

    spro_log_begin(&l, SPRO_LOG_INFO, "shutdown_complete");
    spro_log_int(&l, "open_connections", s->nconns);
    spro_log_end(&l);
out:
    /* The HTTP/2 graceful-shutdown timer of libh2o stays linked after the
     * request; the context refuses to be disposed with a linked timer. */
    if (h2o_timeout_is_linked(&s->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&s->ctx);
    uv_walk(&s->loop, close_walk, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    spro_server__periodic_free(s);
    spro_server__audit_stop(s); /* last refused counts, last checkpoint */
    h2o_config_dispose(&s->gconf);
    if (s->ssl != NULL)
        SSL_CTX_free(s->ssl);
    spro_datadir_close(s->dd);
    spro_keytab_destroy(s->addrs);
    spro_sessions_destroy(s->sessions);
    spro_keytab_destroy(s->enrol_failures);
    if (rc == 0 && s->failed)
        rc = SPRO_ESTOREFAIL;
    free(s->by_fd);
    free(s);
    uv_library_shutdown(); /* joins the worker threads, frees libuv's globals */
    return rc;
}
