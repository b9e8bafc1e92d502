/*
 * internal.h: what the files of server/ share.  Not a public header.
 *
 * Everything here runs on the event-loop thread, except the `work`
 * function of spro_server__offload() and the logger (thread-safe).
 */
#ifndef SPRO_SERVER_INTERNAL_H
#define SPRO_SERVER_INTERNAL_H

#include <h2o.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "server.h"
#include "proto/proto.h"
#include "sync/sync.h"

/* ---- Logging: one JSON object per line on stderr. ---- */

/* A log line being built; fields are added in order.  Values are escaped.
 * Never put request bodies, personal data or key material in a log. */
struct spro_logline {
    char buf[1024];
    size_t len;
    bool on; /* false when the level is filtered out: every call is a no-op */
};
void spro_log_set_level(enum spro_log_level level);
bool spro_log_enabled(enum spro_log_level level);
void spro_log_begin(struct spro_logline *l, enum spro_log_level level, const char *event);
void spro_log_str(struct spro_logline *l, const char *key, const char *value);
void spro_log_strn(struct spro_logline *l, const char *key, const char *value, size_t len);
void spro_log_int(struct spro_logline *l, const char *key, int64_t value);
void spro_log_end(struct spro_logline *l); /* one write(2) of the whole line */

/* ---- Metrics (Prometheus text format). ---- */

enum spro_route {
    SPRO_ROUTE_HEALTHZ,
    SPRO_ROUTE_METRICS,
    SPRO_ROUTE_ECHO,
    SPRO_ROUTE_SERVER_KEY,
    SPRO_ROUTE_SESSION,
    SPRO_ROUTE_PING,
    SPRO_ROUTE_SEALED_ECHO,
    SPRO_ROUTE_SYNC_PUSH,
    SPRO_ROUTE_SYNC_PULL,
    SPRO_ROUTE_NONE, /* no route matched (404) */
    SPRO_ROUTE_COUNT
};

#define SPRO_METRICS_BUCKETS 14
#define SPRO_METRICS_STATUSES 12

struct spro_metrics {
    struct {
        struct {
            int status;
            uint64_t count;
        } by_status[SPRO_METRICS_STATUSES];         /* first come; rest counted under status 0 */
        uint64_t buckets[SPRO_METRICS_BUCKETS + 1]; /* last is +Inf */
        double sum_seconds;
        uint64_t count;
    } route[SPRO_ROUTE_COUNT];
    uint64_t rejected_global;   /* connections refused: --max-connections */
    uint64_t rejected_per_addr; /* connections refused: --max-connections-per-address */
    uint64_t h2_budget_closed;  /* HTTP/2 connections closed at their request budget */
    uint64_t accepted;          /* connections accepted */
    uint64_t jobs_skipped;      /* worker jobs whose request went away before they ran */
    uint64_t jobs_refused;      /* work refused with 503: queue full or shutting down */
};

void spro_metrics_observe(struct spro_metrics *m, enum spro_route route, int status,
                          double seconds);

/* Gauges sampled when rendering. */
struct spro_gauges {
    unsigned open_connections;
    unsigned inflight_requests;
    unsigned worker_queue_depth;
    uint64_t pushes, push_commits; /* spro_sync_push_stats() */
};

/* Appends the whole exposition to out. */
void spro_metrics_render(const struct spro_metrics *m, const struct spro_gauges *g,
                         h2o_mem_pool_t *pool, h2o_iovec_t *out);

const char *spro_route_name(enum spro_route route);

/* ---- The server and its helpers (http.c) ---- */

struct conn;
struct spro_sessions;

struct spro_periodic;

struct server {
    const struct spro_server_config *cfg;
    uv_loop_t loop;
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain;
    uint64_t drain_deadline; /* loop time (ms) after which connections are cut */
    bool stopping;
    struct spro_datadir *dd;
    struct spro_keytab *addrs; /* open connections per client address */
    struct conn **by_fd;       /* open connections by file descriptor */
    size_t by_fd_cap;
    struct conn *conns;         /* list of open connections */
    unsigned nconns;            /* open connections */
    unsigned inflight;          /* requests received, not yet disposed */
    unsigned queued;            /* jobs handed to workers, not yet back */
    _Atomic bool stopping_work; /* set at shutdown: queued jobs are skipped */
    struct spro_metrics metrics;
    struct spro_sessions *sessions;     /* open device sessions */
    struct spro_keytab *enrol_failures; /* failed ticket redemptions per address */
    uv_timer_t sweep;                   /* ends expired sessions every second */
    bool failed; /* a write\'s outcome is unknown (storage error): writes refused, exiting */
    struct spro_periodic *periodic; /* background tasks (periodic.c) */
    struct spro_refusals *refusals; /* refused requests counted for the audit log (audit.c) */
};

/* Runs run(dd, arg) on a worker thread every interval_ms (> 0), the first
 * time interval_ms after the call; a run never overlaps the previous one,
 * and none starts once the server is stopping.  run touches only dd and
 * arg (arg stays the caller's) and logs its own outcome.  Call after the
 * loop is initialised and before it runs. */
void spro_server__periodic_add(struct server *s, uint64_t interval_ms,
                               void (*run)(struct spro_datadir *dd, void *arg), void *arg);
/* Frees the tasks, once the loop is closed (their timers with it). */
void spro_server__periodic_free(struct server *s);

/* retention.c: adds the periodic retention task when the configuration
 * asks for one (--retention-interval, --retention). */
void spro_server__retention_start(struct server *s);

/* purge.c: the periodic purge of removal events below the sync horizon,
 * every --purge-interval seconds (none if 0). */
void spro_server__purge_start(struct server *s);

/* Key re-wrapping (rekey.c): every second, data keys of old KEK epochs
 * are re-wrapped in batches of SPRO_SERVER_REWRAP_BATCH for at most
 * cfg->rewrap_budget ms (none if 0), and unused epochs destroyed. */
#define SPRO_SERVER_REWRAP_BATCH 1000
void spro_server__rekey_start(struct server *s);

/* The audit log (audit.c).  spro_server__audit_start() makes the
 * refused-request counters and adds the periodic tasks (refused counts
 * appended every minute, a signed checkpoint every
 * --audit-checkpoint-interval); call it before the loop runs.
 * spro_server__audit_stop(), after the loop has stopped and before the data
 * directory closes, appends the last counts and signs a last checkpoint
 * (not after a storage failure).  spro_server__refused() counts one
 * refused request of class (event, code), both static strings; loop
 * thread or worker, no I/O. */
void spro_server__audit_start(struct server *s);
void spro_server__audit_stop(struct server *s);
void spro_server__refused(struct server *s, const char *event, const char *code);

/* Addresses whose failed ticket redemptions are tracked at once. */
#define SPRO_SERVER_ENROL_ADDRESSES 65536

/* A unit of work for a worker thread.  Handlers embed it first in a larger
 * struct allocated with calloc.  run() executes on a worker thread and may
 * touch only the job and srv->dd; done() executes on the loop thread, and
 * only if the request is still there (j->req != NULL). */
struct job {
    uv_work_t work;
    struct server *srv;
    h2o_req_t *req;         /* NULL once the client went away */
    _Atomic bool cancelled; /* set with req = NULL: a worker skips run() (cancelled
                             * HTTP/2 streams must not keep costing work) */
    bool ran;               /* run() was called */
    struct job **slot;      /* in req->pool: lets the request's disposal reach us */
    void (*run)(struct job *j);
    void (*done)(struct job *j);
    void (*free)(struct job *j); /* optional: releases what the job holds, always called
                                  * on the loop thread (j->ran says whether run() ran) */
};

/* Jobs queued at once, at most, per worker thread: past it, new work is
 * answered 503 at once instead of queueing without bound. */
#define SPRO_SERVER_QUEUE_PER_WORKER 64

/* Responses.  send_body copies body into the request's pool; send_msgpack
 * also frees b; send_error answers the msgpack error message of err with
 * its HTTP status (docs/PROTOCOL.md, "Error codes"). */
void spro_server__send_body(h2o_req_t *req, int status, const char *ctype, const void *body,
                            size_t len);
/* The same without the copy: body must live in req->pool (or static memory). */
void spro_server__send_pooled(h2o_req_t *req, int status, const char *ctype, h2o_iovec_t body);
void spro_server__send_msgpack(h2o_req_t *req, int status, struct spro_buf *b);
void spro_server__send_error(h2o_req_t *req, int err);

/* Hands j to a worker thread; takes ownership of j (freed after done).  If
 * it cannot be queued (queue full, shutting down), answers 503 itself and
 * neither run() nor done() is called (free() is). */
void spro_server__offload(struct server *s, h2o_req_t *req, struct job *j);

/* calloc that aborts on out-of-memory, for jobs. */
void *spro_server__job_alloc(size_t size);

/* The peer address as 16 bytes: IPv6, or IPv4 mapped as ::ffff:a.b.c.d. */
void spro_server__addr16(const struct sockaddr_storage *ss, uint8_t out[16]);

/* Handlers of the device channel (channel.c). */
void spro_channel_server_key(struct server *s, h2o_req_t *req);
void spro_channel_session(struct server *s, h2o_req_t *req);
void spro_channel_ping(struct server *s, h2o_req_t *req);
void spro_channel_sealed_echo(struct server *s, h2o_req_t *req);
void spro_channel_sync_push(struct server *s, h2o_req_t *req);
void spro_channel_sync_pull(struct server *s, h2o_req_t *req);

/* Fail-stop: a write's outcome is unknown (storage I/O error).  Refuses
 * further writes, starts a shutdown, and makes the process exit non-zero so
 * that its supervisor restarts it on a database it reopens from disk. */
void spro_server__fail_stop(struct server *s, const char *why);

#endif
