/*
 * spro-audit-bench: the cost of one audit-log entry (a benchmark, not a
 * test).
 *
 *   spro-audit-bench --data DIR [--entries N] [--batch B]
 *
 * Appends N entries shaped like those of pushed ops (actor a device, object
 * "beneficiary:UUID", detail "ack op=N") to DIR's audit log, B per write
 * transaction as the push path does (one transaction per group of pushes,
 * entries chained inside it), and prints the time per entry, commit
 * included, and the time of the keyed hash alone.  It uses the store's
 * internal interface (sync/store.h), like the engine: the figure is the
 * append cost that each pushed op pays.  Run it on a scratch directory:
 * the entries stay in its log.
 */
#include "sync/store.h"
#include "sync/sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct batch {
    const uint8_t *key;
    long first, n;
};

static int batch_tx(struct spro_db *db, void *arg)
{
    struct batch *b = arg;
    struct spro_audit_head head;
    int rc = spro_store__audit_head(db, &head);
    char object[64], detail[48];
    for (long i = 0; rc == 0 && i < b->n; i++) {
        long k = b->first + i;
        snprintf(object, sizeof object, "beneficiary:3f2c8a1e-5b7d-4e21-9a0c-%012lx", k);
        snprintf(detail, sizeof detail, "ack op=%ld", k + 1);
        struct spro_audit_note n = {b->key, 1700000000000 + k,
                                    "push", "device:0b7e7d0c-1f6a-4c55-8f7e-2d1c9a5b3e40",
                                    object, detail};
        rc = spro_store__audit_append_at(db, &head, &n);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long entries = 100000, batch = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc)
            entries = atol(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atol(argv[++i]);
        else
            dir = NULL, i = argc;
    }
    if (dir == NULL || entries < 1 || batch < 1) {
        fprintf(stderr, "usage: spro-audit-bench --data DIR [--entries N] [--batch B]\n");
        return 2;
    }
    if (spro_crypto_init() != 0)
        return 1;
    char why[512] = "";
    struct spro_datadir *dd;
    int rc = spro_datadir_open(dir, &dd, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "spro-audit-bench: %s\n", why[0] ? why : spro_strerror(rc));
        return 1;
    }
    const uint8_t *key = spro_datadir__audit_key(dd);
    double t0 = now_s();
    for (long done = 0; rc == 0 && done < entries; done += batch) {
        struct batch b = {key, done, entries - done < batch ? entries - done : batch};
        rc = spro_store__transaction(spro_datadir__data(dd), SPRO_TX_WRITE, batch_tx, &b);
    }
    double t1 = now_s();
    if (rc != 0) {
        fprintf(stderr, "spro-audit-bench: %s\n", spro_strerror(rc));
        spro_datadir_close(dd);
        return 1;
    }
    /* The keyed hash alone, same shapes. */
    uint8_t h[SPRO_AUDIT_HASH_BYTES] = {0};
    char object[64], detail[48];
    double t2 = now_s();
    for (long k = 0; k < entries; k++) {
        snprintf(object, sizeof object, "beneficiary:3f2c8a1e-5b7d-4e21-9a0c-%012lx", k);
        snprintf(detail, sizeof detail, "ack op=%ld", k + 1);
        struct spro_audit_entry e = {k + 1,  1700000000000 + k,
                                     "push", "device:0b7e7d0c-1f6a-4c55-8f7e-2d1c9a5b3e40",
                                     object, detail};
        if (spro_audit_hash(h, key, h, &e) != 0)
            return 1;
    }
    double t3 = now_s();
    struct spro_audit_report r;
    double t4 = now_s();
    rc = spro_audit_verify(dd, &r);
    double t5 = now_s();
    spro_datadir_close(dd);
    printf("audit entries %ld batch %ld seconds %.2f us/entry %.2f hash us/entry %.2f "
           "verify us/entry %.2f (%lld entries, %s)\n",
           entries, batch, t1 - t0, (t1 - t0) * 1e6 / (double)entries,
           (t3 - t2) * 1e6 / (double)entries, (t5 - t4) * 1e6 / (double)(r.entries ? r.entries : 1),
           (long long)r.entries, rc == 0 ? "ok" : "BROKEN");
    return rc == 0 ? 0 : 1;
}
