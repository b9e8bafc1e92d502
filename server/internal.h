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
};

void spro_metrics_observe(struct spro_metrics *m, enum spro_route route, int status,
                          double seconds);

/* Gauges sampled when rendering. */
struct spro_gauges {
    unsigned open_connections;
    unsigned inflight_requests;
    unsigned worker_queue_depth;
};

/* Appends the whole exposition to out. */
void spro_metrics_render(const struct spro_metrics *m, const struct spro_gauges *g,
                         h2o_mem_pool_t *pool, h2o_iovec_t *out);

const char *spro_route_name(enum spro_route route);

#endif
