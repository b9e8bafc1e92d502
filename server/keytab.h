/*
 * keytab.h: a fixed-capacity hash table from 16-byte keys to non-zero
 * 64-bit values (server/ only).  Used for connection counts per client
 * address (IPv4 mapped into IPv6), sessions by id, and failed ticket
 * redemptions per address.
 */
#ifndef SPRO_SERVER_KEYTAB_H
#define SPRO_SERVER_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

struct spro_keytab;

/* A table holding at most max_entries keys at once.  Aborts on
 * out-of-memory.  Destroy accepts NULL. */
struct spro_keytab *spro_keytab_create(size_t max_entries);
void spro_keytab_destroy(struct spro_keytab *t);

/* Value of key, or 0 if absent. */
uint64_t spro_keytab_get(const struct spro_keytab *t, const uint8_t key[16]);

/* Sets key to value; value 0 removes the key.  Returns 0, or SPRO_EUNAVAILABLE
 * when adding a key to a full table (nothing changed then). */
SPRO_MUST_CHECK int spro_keytab_set(struct spro_keytab *t, const uint8_t key[16], uint64_t value);

/* Number of keys present. */
size_t spro_keytab_count(const struct spro_keytab *t);

#endif
