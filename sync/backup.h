/*
 * backup.h: what backup.c (the SQLite side of backups and checks) offers
 * the other files of sync/.  The public API is in sync.h, "Backup, restore
 * and check".
 */
#ifndef SPRO_SYNC_BACKUP_H
#define SPRO_SYNC_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* Reads the row `name` of server_keys in the keys.db at path without
 * writing anything: only when no process has the database open for
 * writing (no path-wal file), through an immutable read that makes no
 * -wal or -shm file.  Copies the public key (exactly publen bytes) and the
 * sealed secret (exactly sealedlen bytes).  Returns 0; SPRO_EEXISTS when a
 * -wal file exists (the caller must open the database normally);
 * SPRO_ENOENT, SPRO_EINTEGRITY (a blob of another length) or SPRO_ESTORE
 * otherwise.  Nothing is changed in any case. */
SPRO_MUST_CHECK int spro_backup__server_key_peek(const char *path, const char *name, uint8_t *pub,
                                                 size_t publen, uint8_t *sealed, size_t sealedlen);

#endif
