/*
 * audit.c: the server's part of the audit log (sync.h, "The audit log"):
 * refused requests, counted per class in memory and appended as one entry
 * per class and interval, and the signed checkpoints, made periodically
 * and at shutdown.
 *
 * A refused request is never written to the database on its own: a flood
 * of bad requests must not become a flood of writes.  The event loop only
 * bumps a counter (spro_server__refused()); a periodic task on a worker
 * takes the counts and appends one entry per class that has any, with its
 * count.  Counts not written when the process dies are lost, at most one
 * interval's.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFUSED_FLUSH_MS 60000 /* refused-request counts are appended this often */
#define REFUSED_CLASSES 64     /* distinct (event, code) pairs counted; more go to "other" */

struct spro_refusals {
    pthread_mutex_t mu;
    struct {
        const char *event; /* static strings */
        const char *code;
        uint64_t count;
    } c[REFUSED_CLASSES];
    size_t n;
    uint64_t other; /* refusals of classes beyond REFUSED_CLASSES */
};

void spro_server__refused(struct server *s, const char *event, const char *code)
{
    struct spro_refusals *r = s->refusals;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    size_t i = 0;
    while (i < r->n && !(strcmp(r->c[i].event, event) == 0 && strcmp(r->c[i].code, code) == 0))
        i++;
    if (i == r->n && r->n < REFUSED_CLASSES) {
        r->c[i].event = event;
        r->c[i].code = code;
        r->c[i].count = 0;
        r->n++;
    }
    if (i < r->n)
        r->c[i].count++;
    else
        r->other++;
    pthread_mutex_unlock(&r->mu);
}

static void log_failure(const char *event, int rc, const char *why)
{
    struct spro_logline l;
    spro_log_begin(&l, SPRO_LOG_ERROR, event);
    spro_log_str(&l, "code", spro_errcode(rc));
    spro_log_str(&l, "error", why && why[0] ? why : spro_strerror(rc));
    spro_log_end(&l);
}

/* Appends one entry per class counted since the last call (kind
 * "refused", actor "server", object "EVENT:CODE", detail "count=N"). */
static void flush_refused(struct spro_datadir *dd, void *arg)
{
    struct spro_refusals *r = arg;
    struct {
        const char *event, *code;
        uint64_t count;
    } take[REFUSED_CLASSES + 1];
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (r->c[i].count > 0) {
            take[n].event = r->c[i].event;
            take[n].code = r->c[i].code;
            take[n++].count = r->c[i].count;
            r->c[i].count = 0;
        }
    if (r->other > 0) {
        take[n].event = "refused";
        take[n].code = "other";
        take[n++].count = r->other;
        r->other = 0;
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        char object[128], detail[32];
        snprintf(object, sizeof object, "%s:%s", take[i].event, take[i].code);
        snprintf(detail, sizeof detail, "count=%llu", (unsigned long long)take[i].count);
        int rc = spro_audit_append(dd, "refused", "server", object, detail);
        if (rc != 0) {
            log_failure("audit_append_failed", rc, NULL);
            return; /* these counts are lost; the log says so */
        }
    }
}

static void checkpoint(struct spro_datadir *dd, void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t seq = 0;
    int rc = spro_audit_checkpoint(dd, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &seq);
    if (rc == SPRO_EINTEGRITY) {
        log_failure("audit_chain_broken", rc,
                    "the audit log does not verify: run spro-admin "
                    "audit verify; no checkpoint was signed");
    } else if (rc != 0) {
        log_failure("audit_checkpoint_failed", rc, NULL);
    } else if (seq > 0) {
        struct spro_logline l;
        spro_log_begin(&l, SPRO_LOG_INFO, "audit_checkpoint");
        spro_log_int(&l, "seq", seq);
        spro_log_end(&l);
    }
}

void spro_server__audit_start(struct server *s)
{
    struct spro_refusals *r = calloc(1, sizeof *r);
    if (r == NULL)
        SPRO_BUG("out of memory");
    pthread_mutex_init(&r->mu, NULL);
    s->refusals = r;
    spro_server__periodic_add(s, REFUSED_FLUSH_MS, flush_refused, r);
    spro_server__periodic_add(s, (uint64_t)s->cfg->audit_checkpoint_interval * 1000, checkpoint,
                              NULL);
}

void spro_server__audit_stop(struct server *s)
{
    if (s->refusals == NULL)
        return;
    if (!s->failed) { /* after a storage failure nothing more is written */
        flush_refused(s->dd, s->refusals);
        checkpoint(s->dd, NULL);
    }
    pthread_mutex_destroy(&s->refusals->mu);
    free(s->refusals);
    s->refusals = NULL;
}
