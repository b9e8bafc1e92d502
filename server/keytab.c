/*
 * keytab.c: open addressing with linear probing and backward-shift
 * deletion (no tombstones).  The capacity is fixed at creation to at least
 * twice the entry limit, so probe runs stay short and the table never
 * grows; keys are hashed with SipHash under a random key, so clients cannot
 * choose addresses or ids that collide.
 */
#include "keytab.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

struct slot {
    uint8_t key[16];
    uint64_t value; /* 0: empty slot */
};

struct spro_keytab {
    struct slot *slots;
    size_t mask;
    size_t count, max;
    uint8_t hashkey[SPRO_SHORTHASH_KEY_BYTES];
};

struct spro_keytab *spro_keytab_create(size_t max_entries)
{
    size_t cap = 16;
    while (cap < 2 * max_entries)
        cap <<= 1;
    struct spro_keytab *t = calloc(1, sizeof *t);
    if (t == NULL || (t->slots = calloc(cap, sizeof *t->slots)) == NULL)
        SPRO_BUG("out of memory");
    t->mask = cap - 1;
    t->max = max_entries;
    spro_crypto_random(t->hashkey, sizeof t->hashkey);
    return t;
}

void spro_keytab_destroy(struct spro_keytab *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    free(t);
}

static size_t home(const struct spro_keytab *t, const uint8_t key[16])
{
    return (size_t)spro_crypto_shorthash(key, 16, t->hashkey) & t->mask;
}

static size_t find(const struct spro_keytab *t, const uint8_t key[16])
{
    size_t i = home(t, key);
    while (t->slots[i].value != 0 && memcmp(t->slots[i].key, key, 16) != 0)
        i = (i + 1) & t->mask;
    return i;
}

uint64_t spro_keytab_get(const struct spro_keytab *t, const uint8_t key[16])
{
    return t->slots[find(t, key)].value;
}

size_t spro_keytab_count(const struct spro_keytab *t)
{
    return t->count;
}

static void remove_at(struct spro_keytab *t, size_t i)
{
    /* Backward shift: move later entries of the probe run into the hole
     * when their home position allows it. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].value == 0)
            break;
        size_t h = home(t, t->slots[j].key);
        /* j may move to hole iff h is not cyclically in (hole, j]. */
        if (((j - h) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].value = 0;
    t->count--;
}

int spro_keytab_set(struct spro_keytab *t, const uint8_t key[16], uint64_t value)
{
    size_t i = find(t, key);
    if (t->slots[i].value == 0) {
        if (value == 0)
            return 0;
        if (t->count >= t->max)
            return SPRO_EUNAVAILABLE;
        memcpy(t->slots[i].key, key, 16);
        t->count++;
    } else if (value == 0) {
        remove_at(t, i);
        return 0;
    }
    t->slots[i].value = value;
    return 0;
}
