/*
 * group.c: group commit (group.h).
 *
 * A leader/follower queue: a caller queues its item, and whoever finds no
 * batch running takes the whole queue and runs it; callers whose item was
 * taken by another wait for it to be done.  When a batch ends its leader
 * wakes everyone: a caller whose item is still queued (it arrived during
 * the batch) becomes the next leader.  So a batch never waits for more
 * items to come (no timer, no added latency when alone), and under load
 * every batch holds all that arrived while the previous one ran.
 */
#include "group.h"

#include "proto/errors.h"

void spro_group__init(struct spro_group *g)
{
    if (pthread_mutex_init(&g->mu, NULL) != 0 || pthread_cond_init(&g->cv, NULL) != 0)
        SPRO_BUG("cannot initialise the group commit lock");
    g->head = NULL;
    g->tail = &g->head;
    g->busy = 0;
    g->batches = g->items = 0;
}

void spro_group__destroy(struct spro_group *g)
{
    if (g->busy || g->head != NULL)
        SPRO_BUG("group commit destroyed while in use");
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

int spro_group__submit(struct spro_group *g, struct spro_group_item *it,
                       void (*fn)(struct spro_group_item *items, void *ctx), void *ctx)
{
    it->next = NULL;
    it->done = 0;
    it->rc = 0;
    pthread_mutex_lock(&g->mu);
    *g->tail = it;
    g->tail = &it->next;
    while (!it->done) {
        if (g->busy) {
            pthread_cond_wait(&g->cv, &g->mu);
            continue;
        }
        /* Leader: the whole queue, which holds it. */
        struct spro_group_item *batch = g->head;
        g->head = NULL;
        g->tail = &g->head;
        g->busy = 1;
        pthread_mutex_unlock(&g->mu);
        fn(batch, ctx);
        pthread_mutex_lock(&g->mu);
        g->batches++;
        for (struct spro_group_item *i = batch; i != NULL;) {
            struct spro_group_item *next = i->next; /* i may go once done */
            i->done = 1;
            g->items++;
            i = next;
        }
        g->busy = 0;
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    return it->rc;
}
