/*
 * addrtab.h: counts of open connections per client address (server/ only).
 * Addresses are 16 bytes: IPv6, or IPv4 mapped as ::ffff:a.b.c.d.
 */
#ifndef SPRO_SERVER_ADDRTAB_H
#define SPRO_SERVER_ADDRTAB_H

#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

struct spro_addrtab;

/* A table for at most max_entries distinct addresses at once.  Aborts on
 * out-of-memory.  Destroy accepts NULL. */
struct spro_addrtab *spro_addrtab_create(size_t max_entries);
void spro_addrtab_destroy(struct spro_addrtab *t);

/* Count for addr (0 if absent). */
uint32_t spro_addrtab_get(const struct spro_addrtab *t, const uint8_t addr[16]);
/* Count one more; the caller keeps distinct addresses <= max_entries. */
void spro_addrtab_inc(struct spro_addrtab *t, const uint8_t addr[16]);
/* Count one less; a bug if addr has no count. */
void spro_addrtab_dec(struct spro_addrtab *t, const uint8_t addr[16]);

#endif
