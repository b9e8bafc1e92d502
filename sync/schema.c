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
    /* 3: records and their fields (docs/SYNC.md, "Store"), scope, blind
     * indexes, answered ops, quarantine.  Record ids, beneficiary ids and
     * device ids are lowercase UUIDs (checked by the engine); hlc values
     * are positive (below 2^63); times are ms since the Unix epoch. */
    {3, "CREATE TABLE sync_state ("
        "  id         INTEGER PRIMARY KEY CHECK (id = 1),"
        "  hlc        INTEGER NOT NULL CHECK (hlc >= 0),"       /* server clock: last value */
        "  change_seq INTEGER NOT NULL CHECK (change_seq >= 0)" /* last change number */
        ") STRICT;"
        "INSERT INTO sync_state(id, hlc, change_seq) VALUES (1, 0, 0);"
        "CREATE TABLE records ("
        "  rtype          TEXT NOT NULL,"
        "  rid            TEXT NOT NULL,"
        "  ben            TEXT NOT NULL," /* fixed at creation; rid for a beneficiary */
        "  created_by_org TEXT NOT NULL,"
        "  created_at     INTEGER NOT NULL,"
        "  changed_seq    INTEGER NOT NULL UNIQUE," /* change number of its last change */
        "  PRIMARY KEY (rtype, rid)"
        ") STRICT;"
        "CREATE INDEX records_ben ON records(ben);"
        /* A field's state: its siblings, one row each.  val is the value's
         * msgpack, or for sealed = 1 that sealed under the beneficiary's
         * data key (docs/CRYPTO.md) with context (rtype, rid, name, schema). */
        "CREATE TABLE siblings ("
        "  rtype  TEXT NOT NULL,"
        "  rid    TEXT NOT NULL,"
        "  name   TEXT NOT NULL,"
        "  hlc    INTEGER NOT NULL CHECK (hlc > 0),"
        "  origin TEXT NOT NULL,"
        "  author TEXT NOT NULL,"
        "  schema INTEGER NOT NULL," /* schema version of the op that wrote it */
        "  sealed INTEGER NOT NULL CHECK (sealed IN (0, 1)),"
        "  val    BLOB NOT NULL,"
        "  PRIMARY KEY (rtype, rid, name, hlc, origin),"
        "  FOREIGN KEY (rtype, rid) REFERENCES records(rtype, rid)"
        ") STRICT, WITHOUT ROWID;"
        /* The organisations whose devices receive a beneficiary's records. */
        "CREATE TABLE scope ("
        "  ben TEXT NOT NULL,"
        "  org TEXT NOT NULL REFERENCES organisations(id),"
        "  PRIMARY KEY (ben, org)"
        ") STRICT, WITHOUT ROWID;"
        "CREATE TABLE blind_index ("
        "  rtype TEXT NOT NULL,"
        "  rid   TEXT NOT NULL,"
        "  name  TEXT NOT NULL," /* the index: 'ine', 'dedup' */
        "  ben   TEXT NOT NULL,"
        "  value BLOB NOT NULL CHECK (length(value) = 16),"
        "  PRIMARY KEY (rtype, rid, name),"
        "  FOREIGN KEY (rtype, rid) REFERENCES records(rtype, rid)"
        ") STRICT, WITHOUT ROWID;"
        "CREATE INDEX blind_index_value ON blind_index(name, value);"
        /* Versions the server gave to ops whose hlc ran beyond the drift:
         * a later op of that device names the version by its own hlc. */
        "CREATE TABLE clamps ("
        "  device_id TEXT NOT NULL,"
        "  hlc       INTEGER NOT NULL," /* as the device wrote it */
        "  ver_hlc   INTEGER NOT NULL," /* as the server stored it */
        "  PRIMARY KEY (device_id, hlc)"
        ") STRICT, WITHOUT ROWID;"
        /* The answer given to every op (device, seq), for retries. */
        "CREATE TABLE ops ("
        "  device_id TEXT NOT NULL,"
        "  seq       INTEGER NOT NULL CHECK (seq > 0),"
        "  status    TEXT NOT NULL CHECK (status IN ('ack', 'conflict', 'reject')),"
        "  hlc       INTEGER," /* ack, conflict: the version given */
        "  origin    TEXT,"
        "  code      TEXT," /* reject: why */
        "  rtype     TEXT," /* conflict: the record of op_siblings */
        "  rid       TEXT,"
        "  ben       TEXT,"
        "  at        INTEGER NOT NULL,"
        "  PRIMARY KEY (device_id, seq)"
        ") STRICT, WITHOUT ROWID;"
        /* A conflict answer's siblings, copied as stored (sealed or not). */
        "CREATE TABLE op_siblings ("
        "  device_id TEXT NOT NULL,"
        "  seq       INTEGER NOT NULL,"
        "  fidx      INTEGER NOT NULL," /* position of the field in the answer */
        "  name      TEXT NOT NULL,"
        "  hlc       INTEGER NOT NULL,"
        "  origin    TEXT NOT NULL,"
        "  author    TEXT NOT NULL,"
        "  schema    INTEGER NOT NULL,"
        "  sealed    INTEGER NOT NULL CHECK (sealed IN (0, 1)),"
        "  val       BLOB NOT NULL,"
        "  PRIMARY KEY (device_id, seq, fidx, hlc, origin),"
        "  FOREIGN KEY (device_id, seq) REFERENCES ops(device_id, seq)"
        ") STRICT, WITHOUT ROWID;"
        /* Rejected ops: op is the op as msgpack, sealed under the
         * quarantine subkey of the master key. */
        "CREATE TABLE quarantine ("
        "  device_id TEXT NOT NULL,"
        "  seq       INTEGER NOT NULL,"
        "  ben       TEXT NOT NULL," /* as the op named it */
        "  code      TEXT NOT NULL,"
        "  at        INTEGER NOT NULL,"
        "  op        BLOB NOT NULL,"
        "  PRIMARY KEY (device_id, seq)"
        ") STRICT, WITHOUT ROWID;"
        "CREATE INDEX quarantine_ben ON quarantine(ben);"},
    /* 4: referrals and transfers (docs/SYNC.md, "Referrals and
     * transfers").  scope_record: organisations whose devices receive one
     * record alone, not its beneficiary (a referral proposed to them).
     * scope_removed: removal events, one per record of a beneficiary that
     * left an organisation's scope, numbered by the change counter like
     * the changes of records (seq is never the changed_seq of a record). */
    {4, "CREATE TABLE scope_record ("
        "  rtype TEXT NOT NULL,"
        "  rid   TEXT NOT NULL,"
        "  org   TEXT NOT NULL REFERENCES organisations(id),"
        "  PRIMARY KEY (rtype, rid, org),"
        "  FOREIGN KEY (rtype, rid) REFERENCES records(rtype, rid)"
        ") STRICT, WITHOUT ROWID;"
        "CREATE TABLE scope_removed ("
        "  seq   INTEGER PRIMARY KEY CHECK (seq > 0)," /* change number of the event */
        "  org   TEXT NOT NULL,"                       /* the organisation that lost it */
        "  rtype TEXT NOT NULL,"
        "  rid   TEXT NOT NULL,"
        "  ben   TEXT NOT NULL"
        ") STRICT;"
        "CREATE INDEX scope_removed_org ON scope_removed(org, seq);"},
    /* 5: the sync horizon (docs/SYNC.md, "Horizon and purge").  device_sync:
     * per device, the cursor of its latest pull (it holds everything up to
     * that change number) and when it pulled, ms since the Unix epoch.
     * sync_state.purged_seq: removal events numbered up to it may have been
     * purged; a pull from a non-empty cursor below it is told to reset. */
    {5, "CREATE TABLE device_sync ("
        "  device_id TEXT PRIMARY KEY NOT NULL,"
        "  acked_seq INTEGER NOT NULL CHECK (acked_seq >= 0),"
        "  acked_at  INTEGER NOT NULL"
        ") STRICT, WITHOUT ROWID;"
        "ALTER TABLE sync_state ADD COLUMN"
        "  purged_seq INTEGER NOT NULL DEFAULT 0 CHECK (purged_seq >= 0);"},
    /* 6: duplicates and merge (docs/SYNC.md, "Duplicates and merge").
     * duplicates: the duplicate record made for a pair of beneficiaries
     * (a < b), so that a pair gets one.  merged: a beneficiary merged into
     * another; ops naming it are re-pointed to `keep`. */
    {6, "CREATE TABLE duplicates ("
        "  a   TEXT NOT NULL,"
        "  b   TEXT NOT NULL CHECK (a < b),"
        "  rid TEXT NOT NULL," /* the duplicate record */
        "  PRIMARY KEY (a, b)"
        ") STRICT, WITHOUT ROWID;"
        "CREATE TABLE merged ("
        "  ben  TEXT PRIMARY KEY NOT NULL,"
        "  keep TEXT NOT NULL CHECK (keep <> ben)"
        ") STRICT, WITHOUT ROWID;"},
    /* 7: the tables a push writes for every new record, re-keyed by an
     * integer surrogate key (docs/SYNC.md, "Store").  Keyed by UUID text,
     * each new record went to a random leaf of six B-trees; keyed by
     * records.id, which only grows, its rows append to the last leaf of
     * each, and (rtype, rid) is the one random index left.
     *
     * records.id: the record's surrogate key, its old rowid for the rows
     * carried over, max + 1 for a new one (records are never deleted).
     * ben_id: the id of the beneficiary's record (its own for a
     * beneficiary); ben stays as text, unindexed, for reads.  siblings,
     * blind_index, scope and scope_record become rec_siblings, rec_blind,
     * ben_scope and rec_scope, keyed by records.id; views under the old
     * names show them as before (read-only), for the sqlite3 shell.
     * The other tables are not on a push's path for new records, or
     * append already (ops: by (device_id, seq)): unchanged.
     *
     * Every row is carried over.  The keys are found by scalar subqueries,
     * not joins, so that a row whose record or beneficiary is missing
     * fails the NOT NULL of its key, and with it the migration, rather
     * than vanish: the database then stays at version 6. */
    {7, "DROP INDEX records_ben;"
        "ALTER TABLE records RENAME TO records_v6;"
        "CREATE TABLE records ("
        "  id             INTEGER PRIMARY KEY,"
        "  rtype          TEXT NOT NULL,"
        "  rid            TEXT NOT NULL,"
        "  ben            TEXT NOT NULL," /* fixed at creation; rid for a beneficiary */
        "  ben_id         INTEGER NOT NULL REFERENCES records(id)," /* the record of ben */
        "  created_by_org TEXT NOT NULL,"
        "  created_at     INTEGER NOT NULL,"
        "  changed_seq    INTEGER NOT NULL UNIQUE," /* change number of its last change */
        "  UNIQUE (rtype, rid)"
        ") STRICT;"
        "INSERT INTO records(id, rtype, rid, ben, ben_id, created_by_org, created_at, changed_seq)"
        "  SELECT r.rowid, r.rtype, r.rid, r.ben,"
        "         (SELECT b.rowid FROM records_v6 AS b"
        "           WHERE b.rtype = 'beneficiary' AND b.rid = r.ben),"
        "         r.created_by_org, r.created_at, r.changed_seq"
        "  FROM records_v6 AS r ORDER BY r.rowid;"
        "CREATE INDEX records_ben ON records(ben_id);"
        /* A field's state, as siblings was: one row per sibling. */
        "CREATE TABLE rec_siblings ("
        "  rec    INTEGER NOT NULL REFERENCES records(id),"
        "  name   TEXT NOT NULL,"
        "  hlc    INTEGER NOT NULL CHECK (hlc > 0),"
        "  origin TEXT NOT NULL,"
        "  author TEXT NOT NULL,"
        "  schema INTEGER NOT NULL," /* schema version of the op that wrote it */
        "  sealed INTEGER NOT NULL CHECK (sealed IN (0, 1)),"
        "  val    BLOB NOT NULL,"
        "  PRIMARY KEY (rec, name, hlc, origin)"
        ") STRICT, WITHOUT ROWID;"
        "INSERT INTO rec_siblings(rec, name, hlc, origin, author, schema, sealed, val)"
        "  SELECT (SELECT r.id FROM records AS r WHERE r.rtype = s.rtype AND r.rid = s.rid),"
        "         s.name, s.hlc, s.origin, s.author, s.schema, s.sealed, s.val"
        "  FROM siblings AS s ORDER BY 1, 2, 3, 4;"
        "DROP TABLE siblings;"
        "CREATE VIEW siblings AS"
        "  SELECT r.rtype, r.rid, s.name, s.hlc, s.origin, s.author, s.schema, s.sealed, s.val"
        "  FROM rec_siblings AS s JOIN records AS r ON r.id = s.rec;"
        /* Blind indexes of a record.  Their ben is the record's. */
        "CREATE TABLE rec_blind ("
        "  rec   INTEGER NOT NULL REFERENCES records(id),"
        "  name  TEXT NOT NULL," /* the index: 'ine', 'dedup' */
        "  value BLOB NOT NULL CHECK (length(value) = 16),"
        "  PRIMARY KEY (rec, name)"
        ") STRICT, WITHOUT ROWID;"
        "INSERT INTO rec_blind(rec, name, value)"
        "  SELECT (SELECT r.id FROM records AS r WHERE r.rtype = i.rtype AND r.rid = i.rid),"
        "         i.name, i.value"
        "  FROM blind_index AS i ORDER BY 1, 2;"
        "DROP TABLE blind_index;" /* and blind_index_value */
        "CREATE INDEX rec_blind_value ON rec_blind(name, value);"
        "CREATE VIEW blind_index AS"
        "  SELECT r.rtype, r.rid, i.name, r.ben, i.value"
        "  FROM rec_blind AS i JOIN records AS r ON r.id = i.rec;"
        /* The organisations whose devices receive a beneficiary's records:
         * ben is the id of its record. */
        "CREATE TABLE ben_scope ("
        "  ben INTEGER NOT NULL REFERENCES records(id),"
        "  org TEXT NOT NULL REFERENCES organisations(id),"
        "  PRIMARY KEY (ben, org)"
        ") STRICT, WITHOUT ROWID;"
        "INSERT INTO ben_scope(ben, org)"
        "  SELECT (SELECT r.id FROM records AS r"
        "           WHERE r.rtype = 'beneficiary' AND r.rid = s.ben),"
        "         s.org"
        "  FROM scope AS s ORDER BY 1, 2;"
        "DROP TABLE scope;"
        "CREATE VIEW scope AS"
        "  SELECT r.rid AS ben, s.org FROM ben_scope AS s JOIN records AS r ON r.id = s.ben;"
        /* Organisations whose devices receive one record alone. */
        "CREATE TABLE rec_scope ("
        "  rec INTEGER NOT NULL REFERENCES records(id),"
        "  org TEXT NOT NULL REFERENCES organisations(id),"
        "  PRIMARY KEY (rec, org)"
        ") STRICT, WITHOUT ROWID;"
        "INSERT INTO rec_scope(rec, org)"
        "  SELECT (SELECT r.id FROM records AS r WHERE r.rtype = k.rtype AND r.rid = k.rid),"
        "         k.org"
        "  FROM scope_record AS k ORDER BY 1, 2;"
        "DROP TABLE scope_record;"
        "CREATE VIEW scope_record AS"
        "  SELECT r.rtype, r.rid, k.org FROM rec_scope AS k JOIN records AS r ON r.id = k.rec;"
        "DROP TABLE records_v6;"},
    /* 8: RESERVED for the audit log (being written; replace this SQL). */
    {8, "SELECT 1;"},
    /* 9: RESERVED for erasure and retention (being written; replace this SQL). */
    {9, "SELECT 1;"},
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
    /* 2: one data key per beneficiary (docs/CRYPTO.md, "Wrapped data key"):
     * erasing a beneficiary deletes its row. */
    {2, "CREATE TABLE data_keys ("
        "  ben        TEXT PRIMARY KEY NOT NULL,"
        "  wrapped    BLOB NOT NULL CHECK (length(wrapped) = 77)," /* names its KEK epoch */
        "  created_at INTEGER NOT NULL DEFAULT (unixepoch())"
        ") STRICT;"},
    /* 3: RESERVED for key-encryption-key epochs and rotation (being written;
     * replace this SQL). */
    {3, "SELECT 1;"},
};
const size_t spro_store__keys_migrations_count =
    sizeof spro_store__keys_migrations / sizeof spro_store__keys_migrations[0];

_Static_assert(sizeof spro_store__data_migrations / sizeof spro_store__data_migrations[0] ==
                   SPRO_DATA_SCHEMA,
               "SPRO_DATA_SCHEMA must name the last data.db migration");
_Static_assert(sizeof spro_store__keys_migrations / sizeof spro_store__keys_migrations[0] ==
                   SPRO_KEYS_SCHEMA,
               "SPRO_KEYS_SCHEMA must name the last keys.db migration");
