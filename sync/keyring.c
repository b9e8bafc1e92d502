/*
 * keyring.c: key-encryption-key epochs (docs/CRYPTO.md, "Key rotation").
 *
 * keys.db holds one row per KEK epoch (table keks): the KEK, random,
 * wrapped under the key-wrapping subkey of the master key, or, for epoch 1
 * of a directory made before keys.db migration 3, derived from the root
 * key.  Exactly one epoch is active: new data keys are wrapped under it.
 *
 * The keyring of a data directory caches the live KEKs (unwrapped, in
 * guarded memory) for the engine.  It is reloaded when the keys generation
 * (DIR/keys.gen, memory-mapped, bumped by every process that changes the
 * epochs) moves, and whenever an epoch is asked for that it does not hold,
 * so a missed bump costs one reload, never a wrong key: a data key names
 * its epoch, and an epoch that keys.db does not hold live is an integrity
 * error, never a guess.
 *
 * Rotation (spro_keys_rotate) adds epoch N+1 as active; re-wrapping
 * (spro_keys_rewrap, one bounded batch per call) moves data keys of older
 * epochs to the active one and destroys each older epoch once no data key
 * names it.  Both are other processes' business as much as the server's:
 * every step is one keys.db transaction, safe against a crash at any
 * point (a batch commits whole or not at all; an epoch is destroyed in the
 * transaction that finds it unused).
 */
#include "store.h"
#include "sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof((struct spro_rewrap_result *)0)->ben == SPRO_ID_MAX + 1, "ben size");

struct spro_keyring {
    pthread_mutex_t mu;
    int loaded;       /* the fields below hold keys.db's epochs as of gen */
    uint64_t gen;     /* keys generation when loaded */
    uint32_t current; /* the active epoch */
    size_t n;         /* live epochs held */
    uint32_t epochs[SPRO_KEYS_LIVE_MAX];
    uint8_t *keks; /* SPRO_KEYS_LIVE_MAX keys of SPRO_KEY_BYTES, guarded memory */
};

struct spro_keyring *spro_keyring__create(void)
{
    struct spro_keyring *kr = calloc(1, sizeof *kr);
    if (kr == NULL || pthread_mutex_init(&kr->mu, NULL) != 0)
        SPRO_BUG("out of memory");
    kr->keks = spro_secret_alloc(SPRO_KEYS_LIVE_MAX * SPRO_KEY_BYTES);
    return kr;
}

void spro_keyring__destroy(struct spro_keyring *kr)
{
    if (kr == NULL)
        return;
    spro_secret_free(kr->keks);
    pthread_mutex_destroy(&kr->mu);
    free(kr);
}

/* Reads every live epoch from keys.db and opens its KEK.  Mutex held.  On
 * failure the keyring holds nothing. */
static int load(struct spro_datadir *dd, struct spro_keyring *kr)
{
    struct spro_kek_row rows[SPRO_KEYS_EPOCHS_MAX];
    size_t n;
    uint64_t gen = spro_datadir__keys_generation(dd);
    kr->loaded = 0;
    kr->n = 0;
    kr->current = 0;
    spro_memzero(kr->keks, SPRO_KEYS_LIVE_MAX * SPRO_KEY_BYTES);
    int rc = spro_store__keks_list(spro_datadir__keys(dd), rows, SPRO_KEYS_EPOCHS_MAX, &n, 0);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (rows[i].state == SPRO_KEK_DESTROYED)
            continue;
        if (kr->n == SPRO_KEYS_LIVE_MAX) {
            rc = SPRO_ETOOLONG;
            break;
        }
        uint8_t *kek = kr->keks + kr->n * SPRO_KEY_BYTES;
        if (rows[i].derived)
            rc = spro_field_kek_derive(kek, spro_datadir__master(dd), rows[i].epoch);
        else
            rc = spro_field_kek_unwrap(kek, rows[i].wrapped, SPRO_WRAPPED_KEK_BYTES,
                                       spro_datadir__key_wrapping_key(dd), rows[i].epoch);
        kr->epochs[kr->n++] = rows[i].epoch;
        if (rows[i].state == SPRO_KEK_ACTIVE)
            kr->current = rows[i].epoch;
    }
    if (rc == 0 && kr->current == 0)
        rc = SPRO_EINTEGRITY; /* no active epoch: keys.db is damaged */
    if (rc != 0) {
        kr->n = 0;
        spro_memzero(kr->keks, SPRO_KEYS_LIVE_MAX * SPRO_KEY_BYTES);
        return rc;
    }
    kr->gen = gen;
    kr->loaded = 1;
    return 0;
}

/* Loads the keyring if it is not loaded or the generation moved.  Mutex
 * held. */
static int fresh(struct spro_datadir *dd, struct spro_keyring *kr)
{
    if (kr->loaded && kr->gen == spro_datadir__keys_generation(dd))
        return 0;
    return load(dd, kr);
}

/* Copies the KEK of epoch to out if held: 1, else 0.  Mutex held. */
static int copy_kek(const struct spro_keyring *kr, uint32_t epoch, uint8_t out[SPRO_KEY_BYTES])
{
    for (size_t i = 0; i < kr->n; i++)
        if (kr->epochs[i] == epoch) {
            memcpy(out, kr->keks + i * SPRO_KEY_BYTES, SPRO_KEY_BYTES);
            return 1;
        }
    return 0;
}

int spro_keyring__kek(struct spro_datadir *dd, uint32_t epoch, uint8_t out[SPRO_KEY_BYTES])
{
    struct spro_keyring *kr = spro_datadir__keyring(dd);
    pthread_mutex_lock(&kr->mu);
    int rc = fresh(dd, kr);
    /* Not held: keys.db may know it (a rotation whose bump this process
     * missed); one reload settles it. */
    if (rc == 0 && epoch != 0 && !copy_kek(kr, epoch, out) && (rc = load(dd, kr)) == 0 &&
        !copy_kek(kr, epoch, out))
        rc = SPRO_EINTEGRITY;
    if (rc == 0 && epoch == 0)
        rc = SPRO_EINTEGRITY;
    pthread_mutex_unlock(&kr->mu);
    if (rc != 0)
        spro_memzero(out, SPRO_KEY_BYTES);
    return rc == SPRO_ESTORE ? rc : rc != 0 ? SPRO_EINTEGRITY : 0;
}

int spro_keyring__current(struct spro_datadir *dd, uint32_t *epoch, uint8_t out[SPRO_KEY_BYTES])
{
    struct spro_keyring *kr = spro_datadir__keyring(dd);
    pthread_mutex_lock(&kr->mu);
    int rc = fresh(dd, kr);
    if (rc == 0 && !copy_kek(kr, kr->current, out))
        rc = SPRO_EINTEGRITY;
    *epoch = rc == 0 ? kr->current : 0;
    pthread_mutex_unlock(&kr->mu);
    if (rc != 0)
        spro_memzero(out, SPRO_KEY_BYTES);
    return rc;
}

void spro_keyring__invalidate(struct spro_datadir *dd)
{
    struct spro_keyring *kr = spro_datadir__keyring(dd);
    pthread_mutex_lock(&kr->mu);
    kr->loaded = 0;
    kr->n = 0;
    spro_memzero(kr->keks, SPRO_KEYS_LIVE_MAX * SPRO_KEY_BYTES);
    pthread_mutex_unlock(&kr->mu);
}

/* ---- Rotation, re-wrapping, status (sync.h) ---- */

int spro_keys_rotate(struct spro_datadir *dd, int64_t now, uint32_t *epoch, char *why,
                     size_t whylen)
{
    struct spro_db *keys = spro_datadir__keys(dd);
    struct spro_kek_row rows[SPRO_KEYS_EPOCHS_MAX];
    uint8_t *kek = spro_secret_alloc(SPRO_KEY_BYTES);
    uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES];
    size_t n;
    int rc;
    *epoch = 0;
    if (why != NULL)
        why[0] = '\0';
    spro_crypto_random(kek, SPRO_KEY_BYTES);
    do {
        if ((rc = spro_store__keks_list(keys, rows, SPRO_KEYS_EPOCHS_MAX, &n, 0)) != 0)
            break;
        size_t live = 0;
        for (size_t i = 0; i < n; i++)
            live += rows[i].state != SPRO_KEK_DESTROYED;
        if (n == SPRO_KEYS_EPOCHS_MAX || live >= SPRO_KEYS_LIVE_MAX || n == 0 ||
            rows[n - 1].epoch == UINT32_MAX) {
            if (why != NULL)
                snprintf(why, whylen,
                         "%zu epochs are still in use (at most %d): let the re-wrapping "
                         "finish first (spro-admin key status)",
                         live, SPRO_KEYS_LIVE_MAX - 1);
            rc = SPRO_ETOOLONG;
            break;
        }
        uint32_t next = rows[n - 1].epoch + 1;
        if ((rc = spro_field_kek_wrap(wrapped, kek, spro_datadir__key_wrapping_key(dd), next)) ==
                0 &&
            (rc = spro_store__kek_add(keys, next, wrapped, now)) == 0)
            *epoch = next;
    } while (rc == SPRO_EEXISTS); /* another rotation took the number */
    spro_secret_free(kek);
    if (rc == 0)
        spro_datadir__keys_changed(dd);
    return rc;
}

int spro_keys_rewrap(struct spro_datadir *dd, size_t batch, int64_t now,
                     struct spro_rewrap_result *res)
{
    struct spro_db *keys = spro_datadir__keys(dd);
    memset(res, 0, sizeof *res);
    if (batch == 0 || batch > SPRO_KEYS_BATCH_MAX)
        SPRO_BUG("spro_keys_rewrap: batch out of range");
    uint8_t *k = spro_secret_alloc(2 * SPRO_KEY_BYTES);
    uint8_t *old_kek = k, *new_kek = k + SPRO_KEY_BYTES;
    uint32_t current, held = 0;
    int rc = spro_keyring__current(dd, &current, new_kek);
    struct spro_data_key_row *rows = rc == 0 ? calloc(batch, sizeof *rows) : NULL;
    uint8_t(*wrapped)[SPRO_WRAPPED_KEY_BYTES] = rc == 0 ? calloc(batch, sizeof *wrapped) : NULL;
    if (rc == 0 && (rows == NULL || wrapped == NULL))
        SPRO_BUG("out of memory");
    size_t n = 0;
    if (rc == 0)
        rc = spro_store__data_keys_old(keys, current, batch, rows, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (rows[i].epoch != held) {
            if ((rc = spro_keyring__kek(dd, rows[i].epoch, old_kek)) != 0) {
                snprintf(res->ben, sizeof res->ben, "%s", rows[i].ben);
                break;
            }
            held = rows[i].epoch;
        }
        if (spro_field_key_epoch(rows[i].wrapped, SPRO_WRAPPED_KEY_BYTES) != rows[i].epoch ||
            spro_field_key_rewrap(wrapped[i], rows[i].wrapped, SPRO_WRAPPED_KEY_BYTES, old_kek,
                                  rows[i].epoch, new_kek, current, rows[i].ben) != 0) {
            snprintf(res->ben, sizeof res->ben, "%s", rows[i].ben);
            rc = SPRO_EINTEGRITY; /* a damaged data key: named, never skipped silently */
        }
    }
    if (rc == 0 && n > 0) {
        rc = spro_store__data_keys_replace(keys, rows,
                                           (const uint8_t(*)[SPRO_WRAPPED_KEY_BYTES])wrapped,
                                           current, n, &res->rewrapped);
        if (rc == -EAGAIN) { /* a rotation meanwhile: the next batch wraps under the new epoch */
            spro_keyring__invalidate(dd);
            rc = 0;
        }
    }
    spro_secret_free(k);
    free(rows);
    free(wrapped);
    if (rc != 0 || n > 0)
        return rc;
    /* Nothing left below the active epoch: destroy the retired epochs (each
     * in the transaction that finds it unused). */
    struct spro_kek_row ks[SPRO_KEYS_EPOCHS_MAX];
    size_t nk;
    if ((rc = spro_store__keks_list(keys, ks, SPRO_KEYS_EPOCHS_MAX, &nk, 0)) != 0)
        return rc;
    int left = 0;
    for (size_t i = 0; rc == 0 && i < nk; i++) {
        if (ks[i].state != SPRO_KEK_RETIRED)
            continue;
        int destroyed;
        if ((rc = spro_store__kek_destroy(keys, ks[i].epoch, now, &destroyed)) == 0 && destroyed &&
            res->ndestroyed < SPRO_KEYS_LIVE_MAX)
            res->destroyed[res->ndestroyed++] = ks[i].epoch;
        left += rc == 0 && !destroyed;
    }
    if (res->ndestroyed > 0) {
        spro_datadir__keys_changed(dd);
        spro_keyring__invalidate(dd); /* wipe the destroyed KEKs from this process's memory */
    }
    res->done = rc == 0 && left == 0;
    return rc;
}

int spro_keys_status(struct spro_datadir *dd, struct spro_key_epoch *out, size_t cap, size_t *n)
{
    static const char *const names[] = {"active", "retired", "destroyed"};
    struct spro_kek_row rows[SPRO_KEYS_EPOCHS_MAX];
    size_t m;
    *n = 0;
    int rc = spro_store__keks_list(spro_datadir__keys(dd), rows, SPRO_KEYS_EPOCHS_MAX, &m, 1);
    for (size_t i = 0; rc == 0 && i < m && *n < cap; i++) {
        struct spro_key_epoch *e = &out[(*n)++];
        e->epoch = rows[i].epoch;
        e->state = names[rows[i].state];
        e->derived = rows[i].derived;
        e->created_at = rows[i].created_at;
        e->destroyed_at = rows[i].destroyed_at;
        e->data_keys = rows[i].data_keys;
    }
    return rc;
}
