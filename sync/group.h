/*
 * group.h: group commit (internal to sync/).
 *
 * Callers on several threads each submit one item; the items waiting
 * while a batch runs form the next batch, run by one of their callers (the
 * leader) in one call of the batch function, so that pushes arriving
 * together share one transaction and one fsync instead of queueing for
 * theirs.  No thread of its own: the leader is a caller, and a caller
 * returns only once its own item was run.
 *
 *     struct spro_group_item it = {.arg = &my_push};
 *     int rc = spro_group__submit(g, &it, run_batch, ctx);
 *
 * run_batch(items, ctx) runs on the leader's thread with no lock held; it
 * must set every item's rc.  Items are in submission order.
 */
#ifndef SPRO_SYNC_GROUP_H
#define SPRO_SYNC_GROUP_H

#include <pthread.h>
#include <stddef.h>

/* One submission.  The caller owns it; it must stay valid until submit
 * returns. */
struct spro_group_item {
    void *arg; /* the caller's, untouched */
    int rc;    /* set by the batch function */
    /* private */
    struct spro_group_item *next;
    int done;
};

/* A group: zero-initialised memory is not enough, use spro_group__init. */
struct spro_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct spro_group_item *head, **tail; /* waiting, not yet taken */
    int busy;                             /* a leader is running a batch */
    /* Statistics, under mu: batches run and items run. */
    unsigned long long batches, items;
};

void spro_group__init(struct spro_group *g);
void spro_group__destroy(struct spro_group *g);

/* Runs it in a batch: it is queued; when no batch runs, one waiting caller
 * takes every queued item and calls fn(first item, ctx) with them linked by
 * next, the others wait.  Returns it->rc as fn set it.  fn is called with no
 * lock held, by the thread of one of the items' callers. */
int spro_group__submit(struct spro_group *g, struct spro_group_item *it,
                       void (*fn)(struct spro_group_item *items, void *ctx), void *ctx);

struct spro_datadir;
/* The group of dd's pushes (engine.c). */
struct spro_group *spro_datadir__push_group(struct spro_datadir *dd);

#endif
