/*
 * metrics.c: request counters, latency histograms and gauges, rendered in
 * the Prometheus text exposition format (version 0.0.4) by GET /metrics.
 * Loop thread only: no locking.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

static const double bucket_bounds[SPRO_METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

static const char *const route_names[SPRO_ROUTE_COUNT] = {
    "healthz", "metrics",     "echo",      "server_key", "session",
    "ping",    "sealed_echo", "sync_push", "sync_pull",  "none"};

const char *spro_route_name(enum spro_route route)
{
    return route_names[route];
}

void spro_metrics_observe(struct spro_metrics *m, enum spro_route route, int status, double seconds)
{
    if ((unsigned)route >= SPRO_ROUTE_COUNT)
        SPRO_BUG("bad route");
    __typeof__(m->route[0]) *r = &m->route[route];
    size_t i;
    for (i = 0; i < SPRO_METRICS_STATUSES - 1; i++) {
        if (r->by_status[i].status == status || r->by_status[i].status == 0) {
            r->by_status[i].status = status;
            break;
        }
    }
    r->by_status[i].count++; /* the last slot collects statuses beyond the table */
    size_t b = 0;
    while (b < SPRO_METRICS_BUCKETS && seconds > bucket_bounds[b])
        b++;
    r->buckets[b]++;
    r->sum_seconds += seconds;
    r->count++;
}

struct out {
    char *buf;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void emit(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        SPRO_BUG("metrics buffer too small");
    o->len += (size_t)n;
}

void spro_metrics_render(const struct spro_metrics *m, const struct spro_gauges *g,
                         h2o_mem_pool_t *pool, h2o_iovec_t *res)
{
    struct out o = {.cap = 32768};
    o.buf = h2o_mem_alloc_pool(pool, o.cap);

    emit(&o, "# HELP spro_http_requests_total HTTP requests answered, by route and status.\n"
             "# TYPE spro_http_requests_total counter\n");
    for (int r = 0; r < SPRO_ROUTE_COUNT; r++)
        for (int i = 0; i < SPRO_METRICS_STATUSES && m->route[r].by_status[i].count; i++)
            emit(&o, "spro_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_names[r],
                 m->route[r].by_status[i].status,
                 (unsigned long long)m->route[r].by_status[i].count);

    emit(&o,
         "# HELP spro_http_request_duration_seconds Time from request received to response done.\n"
         "# TYPE spro_http_request_duration_seconds histogram\n");
    for (int r = 0; r < SPRO_ROUTE_COUNT; r++) {
        uint64_t cum = 0;
        for (int b = 0; b < SPRO_METRICS_BUCKETS; b++) {
            cum += m->route[r].buckets[b];
            emit(&o, "spro_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                 route_names[r], bucket_bounds[b], (unsigned long long)cum);
        }
        cum += m->route[r].buckets[SPRO_METRICS_BUCKETS];
        emit(&o,
             "spro_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
             "spro_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
             "spro_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
             route_names[r], (unsigned long long)cum, route_names[r], m->route[r].sum_seconds,
             route_names[r], (unsigned long long)m->route[r].count);
    }

    emit(
        &o,
        "# HELP spro_open_connections Connections open now.\n"
        "# TYPE spro_open_connections gauge\n"
        "spro_open_connections %u\n"
        "# HELP spro_inflight_requests Requests received and not yet answered.\n"
        "# TYPE spro_inflight_requests gauge\n"
        "spro_inflight_requests %u\n"
        "# HELP spro_worker_queue_depth Jobs handed to worker threads and not yet done.\n"
        "# TYPE spro_worker_queue_depth gauge\n"
        "spro_worker_queue_depth %u\n"
        "# HELP spro_connections_accepted_total Connections accepted.\n"
        "# TYPE spro_connections_accepted_total counter\n"
        "spro_connections_accepted_total %llu\n"
        "# HELP spro_connections_rejected_total Connections closed at accept by a cap.\n"
        "# TYPE spro_connections_rejected_total counter\n"
        "spro_connections_rejected_total{cap=\"global\"} %llu\n"
        "spro_connections_rejected_total{cap=\"per_address\"} %llu\n"
        "# HELP spro_http2_budget_closed_total HTTP/2 connections closed at their request budget.\n"
        "# TYPE spro_http2_budget_closed_total counter\n"
        "spro_http2_budget_closed_total %llu\n"
        "# HELP spro_worker_jobs_skipped_total Jobs whose request went away before a worker ran "
        "them.\n"
        "# TYPE spro_worker_jobs_skipped_total counter\n"
        "spro_worker_jobs_skipped_total %llu\n"
        "# HELP spro_worker_jobs_refused_total Requests answered 503: worker queue full or "
        "shutting down.\n"
        "# TYPE spro_worker_jobs_refused_total counter\n"
        "spro_worker_jobs_refused_total %llu\n"
        "# HELP spro_sync_pushes_total Pushes run (committed or not).\n"
        "# TYPE spro_sync_pushes_total counter\n"
        "spro_sync_pushes_total %llu\n"
        "# HELP spro_sync_push_commits_total Transactions the pushes took: pushes arriving "
        "together share one (group commit).\n"
        "# TYPE spro_sync_push_commits_total counter\n"
        "spro_sync_push_commits_total %llu\n",
        g->open_connections, g->inflight_requests, g->worker_queue_depth,
        (unsigned long long)m->accepted, (unsigned long long)m->rejected_global,
        (unsigned long long)m->rejected_per_addr, (unsigned long long)m->h2_budget_closed,
        (unsigned long long)m->jobs_skipped, (unsigned long long)m->jobs_refused,
        (unsigned long long)g->pushes, (unsigned long long)g->push_commits);
    *res = h2o_iovec_init(o.buf, o.len);
}
