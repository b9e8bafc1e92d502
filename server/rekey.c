/*
 * rekey.c: the periodic key re-wrapping of spro-server (docs/CRYPTO.md,
 * "Key rotation").  Every second, on a worker thread, data keys of KEK
 * epochs older than the active one are re-wrapped in batches of
 * SPRO_SERVER_REWRAP_BATCH, one keys.db transaction each, for at most
 * --rewrap-budget ms per run (default 250: measured at 900, pushes ran at
 * 36-50% of their rate while a rotation lasted), so that pushes waiting
 * for keys.db get in between batches; retired epochs that no data key names any more
 * are destroyed.  With nothing to do a run costs two small reads of
 * keys.db.  A `spro-admin key rewrap` running meanwhile is harmless: each
 * batch only replaces keys still as it read them.
 */
#include "internal.h"

#include <time.h>

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run(struct spro_datadir *dd, void *arg)
{
    const struct server *s = arg;
    const _Atomic bool *stopping = &s->stopping_work;
    const int64_t budget = s->cfg->rewrap_budget;
    int64_t start = mono_ms();
    size_t moved = 0;
    struct spro_rewrap_result r;
    int rc;
    do {
        rc = spro_keys_rewrap(dd, SPRO_SERVER_REWRAP_BATCH, (int64_t)time(NULL), &r);
        moved += r.rewrapped;
        for (size_t i = 0; rc == 0 && i < r.ndestroyed; i++) {
            struct spro_logline l;
            spro_log_begin(&l, SPRO_LOG_INFO, "key_epoch_destroyed");
            spro_log_int(&l, "epoch", r.destroyed[i]);
            spro_log_end(&l);
        }
    } while (rc == 0 && r.rewrapped > 0 && !*stopping && mono_ms() - start < budget);
    if (moved == 0 && rc == 0)
        return;
    struct spro_logline l;
    spro_log_begin(&l, rc == 0 ? SPRO_LOG_INFO : SPRO_LOG_ERROR, "key_rewrap");
    spro_log_int(&l, "rewrapped", (int64_t)moved);
    spro_log_int(&l, "ms", mono_ms() - start);
    if (rc != 0) {
        spro_log_str(&l, "error", spro_strerror(rc));
        if (r.ben[0] != '\0')
            spro_log_str(&l, "beneficiary", r.ben);
    }
    spro_log_end(&l);
}

void spro_server__rekey_start(struct server *s)
{
    if (s->cfg->rewrap_budget > 0)
        spro_server__periodic_add(s, 1000, run, s);
}
