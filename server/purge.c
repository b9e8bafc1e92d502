/*
 * purge.c: the periodic purge of spro-server (docs/SYNC.md, "Horizon and
 * purge").  Removal events are purged when a device acknowledges a pull;
 * when no device acknowledges (the one holding the horizon went idle past
 * --sync-idle-horizon, the others stopped), this task purges them every
 * --purge-interval seconds on a worker thread, logging a line when it
 * deleted some or failed.
 */
#include "internal.h"

#include <time.h>

static void run(struct spro_datadir *dd, void *arg)
{
    const struct server *s = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    size_t purged = 0;
    int rc = spro_sync_purge(dd, now_ms, (int64_t)s->cfg->sync_idle_horizon * 1000, &purged);
    if (rc == 0 && purged == 0)
        return;
    struct spro_logline l;
    spro_log_begin(&l, rc != 0 ? SPRO_LOG_WARN : SPRO_LOG_INFO,
                   rc != 0 ? "purge_failed" : "removals_purged");
    if (rc != 0)
        spro_log_str(&l, "code", spro_errcode(rc));
    else
        spro_log_int(&l, "count", (int64_t)purged);
    spro_log_str(&l, "by", "periodic");
    spro_log_end(&l);
}

void spro_server__purge_start(struct server *s)
{
    if (s->cfg->purge_interval > 0)
        spro_server__periodic_add(s, (uint64_t)s->cfg->purge_interval * 1000, run, s);
}
