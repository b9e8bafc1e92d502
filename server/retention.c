/*
 * retention.c: the periodic retention task of spro-server (docs/SYNC.md,
 * "Erasure and retention").  With --retention-interval N and --retention
 * rules, every N seconds a worker thread finishes the erasures a crash
 * left pending and anonymises the beneficiaries due under the rules
 * (spro_retention_run), logging one line per run and per beneficiary
 * erased (by its pseudonymous id only).
 */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

struct retention_task {
    struct spro_retention_rule rules[SPRO_SERVER_RETENTION_MAX];
    size_t n;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report(const struct spro_retention_due *d, void *arg)
{
    (void)arg;
    struct spro_logline l;
    spro_log_begin(&l, d->rc == 0 ? SPRO_LOG_INFO : SPRO_LOG_ERROR,
                   d->kept ? "retention_kept" : "retention_erased");
    spro_log_str(&l, "beneficiary", d->ben);
    spro_log_str(&l, "rule", d->programme);
    if (d->rc != 0)
        spro_log_str(&l, "error", spro_strerror(d->rc));
    spro_log_end(&l);
}

static void run(struct spro_datadir *dd, void *arg)
{
    struct retention_task *t = arg;
    size_t due = 0;
    int rc = spro_retention_run(dd, t->rules, t->n, wall_ms(), 0, report, NULL, &due);
    struct spro_logline l;
    spro_log_begin(&l, rc == 0 ? SPRO_LOG_INFO : SPRO_LOG_ERROR, "retention_run");
    spro_log_int(&l, "due", (int64_t)due);
    if (rc != 0)
        spro_log_str(&l, "error", spro_strerror(rc));
    spro_log_end(&l);
}

void spro_server__retention_start(struct server *s)
{
    static struct retention_task task; /* one server per process */
    const struct spro_server_config *c = s->cfg;
    if (c->retention_interval == 0 || c->nretention == 0)
        return;
    task.n = 0;
    for (unsigned i = 0; i < c->nretention; i++)
        if (spro_retention_parse(c->retention[i], &task.rules[task.n]) == 0)
            task.n++; /* checked when the configuration was loaded */
    spro_server__periodic_add(s, (uint64_t)c->retention_interval * 1000, run, &task);
}
