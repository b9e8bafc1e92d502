/*
 * addrtab.c: open connections per client address, for the per-address cap.
 *
 * An open-addressing hash table (linear probing, backward-shift deletion)
 * of 16-byte addresses (IPv4 mapped into IPv6) to counts.  Its capacity is
 * fixed at creation to twice the global connection cap, so it never grows:
 * there are never more distinct addresses than open connections.
 */
#include "addrtab.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

struct slot {
    uint8_t addr[16];
    uint32_t count; /* 0: empty slot */
};

struct spro_addrtab {
    struct slot *slots;
    size_t mask;
    uint8_t hashkey[SPRO_SHORTHASH_KEY_BYTES]; /* random: addresses cannot be chosen to collide */
};

struct spro_addrtab *spro_addrtab_create(size_t max_entries)
{
    size_t cap = 16;
    while (cap < 2 * max_entries)
        cap <<= 1;
    struct spro_addrtab *t = calloc(1, sizeof *t);
    if (t == NULL || (t->slots = calloc(cap, sizeof *t->slots)) == NULL)
        SPRO_BUG("out of memory");
    t->mask = cap - 1;
    spro_crypto_random(t->hashkey, sizeof t->hashkey);
    return t;
}

void spro_addrtab_destroy(struct spro_addrtab *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    free(t);
}

static size_t home(const struct spro_addrtab *t, const uint8_t addr[16])
{
    return (size_t)spro_crypto_shorthash(addr, 16, t->hashkey) & t->mask;
}

static size_t find(const struct spro_addrtab *t, const uint8_t addr[16])
{
    size_t i = home(t, addr);
    while (t->slots[i].count != 0 && memcmp(t->slots[i].addr, addr, 16) != 0)
        i = (i + 1) & t->mask;
    return i;
}

uint32_t spro_addrtab_get(const struct spro_addrtab *t, const uint8_t addr[16])
{
    return t->slots[find(t, addr)].count;
}

void spro_addrtab_inc(struct spro_addrtab *t, const uint8_t addr[16])
{
    size_t i = find(t, addr);
    if (t->slots[i].count == 0)
        memcpy(t->slots[i].addr, addr, 16);
    t->slots[i].count++;
}

void spro_addrtab_dec(struct spro_addrtab *t, const uint8_t addr[16])
{
    size_t i = find(t, addr);
    if (t->slots[i].count == 0)
        SPRO_BUG("decrementing an address that has no connection");
    if (--t->slots[i].count != 0)
        return;
    /* Backward-shift deletion: move later entries of the probe run into the
     * hole when their home position allows it. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].count == 0)
            break;
        size_t h = home(t, t->slots[j].addr);
        /* j may move to hole iff h is not cyclically in (hole, j]. */
        if (((j - h) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].count = 0;
}
