/*
 * schema.c: the migrations of data.db and keys.db, oldest first.
 *
 * Never edit a migration that has shipped: add a new one.  A migration runs
 * inside a transaction together with the user_version update.
 */
#include "store.h"
#include "sync.h"

const struct spro_migration spro_store__data_migrations[] = {
    {1, "CREATE TABLE meta ("
        "  key   TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT NOT NULL"
        ") STRICT;"},
};
const size_t spro_store__data_migrations_count =
    sizeof spro_store__data_migrations / sizeof spro_store__data_migrations[0];

const struct spro_migration spro_store__keys_migrations[] = {
    {1, "CREATE TABLE server_keys ("
        "  name       TEXT PRIMARY KEY NOT NULL," /* 'noise' | 'sign' */
        "  public     BLOB NOT NULL,"
        "  sealed     BLOB NOT NULL," /* secret key sealed under the master key */
        "  created_at INTEGER NOT NULL DEFAULT (unixepoch())"
        ") STRICT;"},
};
const size_t spro_store__keys_migrations_count =
    sizeof spro_store__keys_migrations / sizeof spro_store__keys_migrations[0];

_Static_assert(sizeof spro_store__data_migrations / sizeof spro_store__data_migrations[0] ==
                   SPRO_DATA_SCHEMA,
               "SPRO_DATA_SCHEMA must name the last data.db migration");
_Static_assert(sizeof spro_store__keys_migrations / sizeof spro_store__keys_migrations[0] ==
                   SPRO_KEYS_SCHEMA,
               "SPRO_KEYS_SCHEMA must name the last keys.db migration");
