/*
 * sync: the data directory and the store behind spro-server and spro-admin.
 *
 * A data directory holds:
 *   master.key  32 random bytes, mode 0600: the master key (refused if group
 *               or others can read it);
 *   data.db     SQLite (WAL): the data, schema version SPRO_DATA_SCHEMA;
 *   keys.db     SQLite (WAL): wrapped keys, apart from the data so that their
 *               backups can have different retentions; holds the server's
 *               Noise static key (X25519) and Ed25519 signing key, sealed
 *               under a subkey of the master key.
 * Each database carries its schema version in PRAGMA user_version and is
 * migrated forward on open; a database newer than this program is refused.
 *
 * Threading: a struct spro_datadir may be used from any one thread at a
 * time, or from several if every store call is serialised by the caller;
 * spro-server calls the store only from its worker threads (never from the
 * event-loop thread).  SQLite runs in serialised mode.
 */
#ifndef SPRO_SYNC_SYNC_H
#define SPRO_SYNC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "proto/errors.h"

#define SPRO_DATA_SCHEMA 1 /* schema version of data.db this program writes */
#define SPRO_KEYS_SCHEMA 1 /* schema version of keys.db this program writes */

struct spro_datadir;

/* Creates a new data directory at dir: master key, both databases at their
 * current schema, fresh server keys.  The directory is built beside dir and
 * renamed into place, so a crash leaves either nothing or a complete one.
 * Returns 0; SPRO_EEXISTS if dir exists and is not empty (nothing touched);
 * or another negative code (nothing left behind).  `why` (may be NULL)
 * receives a human explanation naming the file at fault. */
SPRO_MUST_CHECK int spro_datadir_init(const char *dir, char *why, size_t whylen);

/* Opens an existing data directory: checks and loads the master key,
 * opens and migrates both databases, unseals the server keys.  On success
 * *out owns everything; on failure *out is NULL and nothing was changed
 * (SPRO_ENOENT if dir is not a data directory, SPRO_EPERM for a key file
 * others can read, SPRO_ESCHEMA_NEWER, SPRO_EINTEGRITY if the server keys
 * do not open under this master key).  `why` (may be NULL) receives a
 * human explanation naming the file at fault. */
SPRO_MUST_CHECK int spro_datadir_open(const char *dir, struct spro_datadir **out, char *why,
                                      size_t whylen);

/* Closes the databases (checkpointing the WAL) and wipes the keys.
 * Accepts NULL. */
void spro_datadir_close(struct spro_datadir *dd);

/* The server's Noise static public key (X25519), 32 bytes, owned by dd. */
const uint8_t *spro_datadir_noise_public(const struct spro_datadir *dd);

/* The server's Ed25519 public key, 32 bytes, owned by dd. */
const uint8_t *spro_datadir_sign_public(const struct spro_datadir *dd);

/* Schema version of data.db after opening. */
int spro_datadir_schema(const struct spro_datadir *dd);

/* A cheap read of data.db proving it answers (health checks).  Runs SQL:
 * call it off the event loop.  Returns 0 or SPRO_ESTORE. */
SPRO_MUST_CHECK int spro_datadir_ping(struct spro_datadir *dd);

#endif
