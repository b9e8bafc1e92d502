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
    /* 2: organisations, counsellors, their devices, enrolment tickets.
     * Ids chosen by administrators are checked in devices.c; the kind and
     * role lists there match the CHECKs here. */
    {2, "CREATE TABLE organisations ("
        "  id         TEXT PRIMARY KEY NOT NULL,"
        "  name       TEXT NOT NULL,"
        "  kind       TEXT NOT NULL CHECK (kind IN ('cio', 'mission-locale', 'france-travail',"
        "                                          'cap-emploi', 'psad', 'region', 'other')),"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE users ("
        "  id         TEXT PRIMARY KEY NOT NULL,"
        "  org_id     TEXT NOT NULL REFERENCES organisations(id),"
        "  role       TEXT NOT NULL CHECK (role IN ('counsellor', 'supervisor', 'admin')),"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX users_org ON users(org_id);"
        /* AUTOINCREMENT: a row id is never reused, so nothing keyed by the
         * row id of a device (sessions) can ever name another device. */
        "CREATE TABLE devices ("
        "  rowid       INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  id          TEXT UNIQUE NOT NULL," /* random UUID v4 */
        "  user_id     TEXT NOT NULL REFERENCES users(id),"
        "  static_pk   BLOB UNIQUE NOT NULL CHECK (length(static_pk) = 32)," /* X25519 */
        "  state       TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'wipe_pending',"
        "                                             'wiped')),"
        "  enrolled_at INTEGER NOT NULL,"
        "  last_seen   INTEGER NOT NULL DEFAULT 0," /* last accepted handshake; 0: never */
        "  last_ts_ms  INTEGER NOT NULL"            /* its timestamp, device clock */
        ") STRICT;"
        "CREATE INDEX devices_user ON devices(user_id);"
        /* Only a keyed hash of a ticket's secret is stored (mac). */
        "CREATE TABLE tickets ("
        "  id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 16)," /* lowercase hex */
        "  user_id     TEXT NOT NULL REFERENCES users(id),"
        "  mac         BLOB NOT NULL CHECK (length(mac) = 32),"
        "  created_at  INTEGER NOT NULL,"
        "  expires_at  INTEGER NOT NULL,"
        "  consumed_at INTEGER," /* NULL until redeemed */
        "  device_id   TEXT REFERENCES devices(id) DEFERRABLE INITIALLY DEFERRED,"
        "  failures    INTEGER NOT NULL DEFAULT 0" /* wrong secrets tried */
        ") STRICT;"
        "CREATE INDEX tickets_user ON tickets(user_id);"},
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
