/*
 * Unit tests of group commit (sync/group.h): every item runs exactly once
 * and gets the rc its batch gave it; batches never overlap; items that
 * arrive while a batch runs form the next batch, run by one of their
 * callers.  The overlap test is made deterministic by holding the first
 * batch until every other caller has queued its item.
 */
#include "check.h"
#include "proto/errors.h"
#include "sync/group.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define THREADS 8
#define ROUNDS 200

struct fixture {
    struct spro_group g;
    atomic_int running;    /* batches running now: never above 1 */
    atomic_int overlapped; /* times a batch found another running */
    atomic_int ran[THREADS * ROUNDS];
    int hold_first;        /* the first batch waits for THREADS - 1 queued items */
    size_t sizes[THREADS]; /* hold_first: the sizes of the batches */
    size_t nbatches;
    pthread_t leader[THREADS]; /* hold_first: the thread that ran each batch */
};

struct item_arg {
    int id; /* index into ran[] */
};

static size_t queued(struct spro_group *g)
{
    size_t n = 0;
    pthread_mutex_lock(&g->mu);
    for (struct spro_group_item *i = g->head; i != NULL; i = i->next)
        n++;
    pthread_mutex_unlock(&g->mu);
    return n;
}

static void batch(struct spro_group_item *items, void *ctx)
{
    struct fixture *f = ctx;
    if (atomic_fetch_add(&f->running, 1) != 0)
        atomic_fetch_add(&f->overlapped, 1);
    size_t n = 0;
    for (struct spro_group_item *it = items; it != NULL; it = it->next, n++) {
        struct item_arg *a = it->arg;
        atomic_fetch_add(&f->ran[a->id], 1);
        it->rc = -1000 - a->id; /* each item its own answer */
    }
    if (f->hold_first) {
        if (f->nbatches < THREADS) {
            f->leader[f->nbatches] = pthread_self();
            f->sizes[f->nbatches] = n;
        }
        if (f->nbatches++ == 0)
            while (queued(&f->g) < THREADS - 1)
                sched_yield();
    }
    atomic_fetch_sub(&f->running, 1);
}

struct worker {
    struct fixture *f;
    int t, rounds;
    int wrong; /* items whose rc was not theirs */
};

static void *work(void *p)
{
    struct worker *w = p;
    for (int r = 0; r < w->rounds; r++) {
        struct item_arg a = {w->t * ROUNDS + r};
        struct spro_group_item it = {.arg = &a};
        if (spro_group__submit(&w->f->g, &it, batch, w->f) != -1000 - a.id)
            w->wrong++;
    }
    return NULL;
}

static void run(struct fixture *f, int rounds, struct worker *w)
{
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (struct worker){f, t, rounds, 0};
        if (pthread_create(&th[t], NULL, work, &w[t]) != 0)
            SPRO_BUG("pthread_create");
        if (f->hold_first && t == 0)
            while (f->nbatches == 0) /* thread 0 leads the first batch */
                sched_yield();
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
}

static void test_each_item_once_with_its_rc(void)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    spro_group__init(&f.g);
    struct worker w[THREADS];
    run(&f, ROUNDS, w);
    for (int t = 0; t < THREADS; t++)
        CHECK_EQ(w[t].wrong, 0);
    for (int i = 0; i < THREADS * ROUNDS; i++)
        CHECK_EQ(atomic_load(&f.ran[i]), 1);
    CHECK_EQ(atomic_load(&f.overlapped), 0);
    CHECK_EQ(f.g.items, THREADS * ROUNDS);
    CHECK(f.g.batches >= 1 && f.g.batches <= THREADS * ROUNDS);
    CHECK(f.g.head == NULL && !f.g.busy);
    spro_group__destroy(&f.g);
}

/* Thread 0's item runs alone; the seven others queue meanwhile and must
 * then run as one batch of seven, led by one of their callers. */
static void test_arrivals_during_a_batch_share_the_next(void)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    f.hold_first = 1;
    spro_group__init(&f.g);
    struct worker w[THREADS];
    run(&f, 1, w);
    CHECK_EQ(f.nbatches, 2);
    CHECK_EQ(f.sizes[0], 1);
    CHECK_EQ(f.sizes[1], THREADS - 1);
    CHECK_EQ(f.g.batches, 2);
    CHECK_EQ(f.g.items, THREADS);
    CHECK(!pthread_equal(f.leader[0], f.leader[1]));
    for (int t = 0; t < THREADS; t++)
        CHECK_EQ(w[t].wrong, 0);
    spro_group__destroy(&f.g);
}

static const struct check_test tests[] = {
    {"each_item_once_with_its_rc", test_each_item_once_with_its_rc},
    {"arrivals_during_a_batch_share_the_next", test_arrivals_during_a_batch_share_the_next},
};

CHECK_MAIN(tests)
