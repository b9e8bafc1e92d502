/*
 * periodic.c: background tasks of the data directory (internal.h,
 * spro_server__periodic_add): audit checkpoints, key re-wrapping,
 * retention.
 *
 * Each task has a libuv timer on the loop thread; when it fires and the
 * task's previous run is over, the run is handed to the worker pool like a
 * request's job (it counts in s->queued, so a shutdown waits for it or,
 * past the drain deadline, skips it).  A run touches only the data
 * directory and its own argument; it logs its own outcome.  No run starts
 * once the server is stopping.
 */
#include "internal.h"

#include <stdlib.h>

struct spro_periodic {
    uv_timer_t timer;
    uv_work_t work;
    struct server *srv;
    bool busy; /* a run is queued or running */
    void (*run)(struct spro_datadir *dd, void *arg);
    void *arg;
    struct spro_periodic *next; /* s->periodic list */
};

static void periodic_work(uv_work_t *w)
{
    struct spro_periodic *p = w->data;
    if (!p->srv->stopping_work)
        p->run(p->srv->dd, p->arg);
}

static void periodic_after(uv_work_t *w, int status)
{
    (void)status;
    struct spro_periodic *p = w->data;
    p->srv->queued--;
    p->busy = false;
}

static void periodic_fire(uv_timer_t *t)
{
    struct spro_periodic *p = t->data;
    struct server *s = p->srv;
    if (p->busy || s->stopping)
        return;
    p->work.data = p;
    if (uv_queue_work(&s->loop, &p->work, periodic_work, periodic_after) == 0) {
        p->busy = true;
        s->queued++;
    }
}

void spro_server__periodic_add(struct server *s, uint64_t interval_ms,
                               void (*run)(struct spro_datadir *dd, void *arg), void *arg)
{
    if (interval_ms == 0 || run == NULL)
        SPRO_BUG("spro_server__periodic_add: no interval or no task");
    struct spro_periodic *p = calloc(1, sizeof *p);
    if (p == NULL)
        SPRO_BUG("out of memory");
    p->srv = s;
    p->run = run;
    p->arg = arg;
    uv_timer_init(&s->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, periodic_fire, interval_ms, interval_ms);
    p->next = s->periodic;
    s->periodic = p;
}

void spro_server__periodic_free(struct server *s)
{
    while (s->periodic != NULL) {
        struct spro_periodic *p = s->periodic;
        s->periodic = p->next;
        free(p);
    }
}
