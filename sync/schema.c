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
    /* 8: the audit log (docs/CRYPTO.md, "Audit log"): append-only entries,
     * each chained to the one before by a keyed BLAKE2b hash, and signed
     * checkpoints of the chain.  Entries hold ids and codes, never personal
     * data.  Times are ms since the Unix epoch.  The triggers refuse
     * updates and deletes (the chain would show them anyway). */
    {8, "CREATE TABLE audit ("
        "  seq    INTEGER PRIMARY KEY CHECK (seq >= 1),"
        "  time   INTEGER NOT NULL CHECK (time >= 0),"
        "  kind   TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 255),"
        "  actor  TEXT NOT NULL CHECK (length(actor) BETWEEN 1 AND 255),"
        "  object TEXT NOT NULL CHECK (length(object) <= 255),"
        "  detail TEXT NOT NULL CHECK (length(detail) <= 255),"
        "  hash   BLOB NOT NULL CHECK (length(hash) = 32)"
        ") STRICT;"
        "CREATE TABLE audit_checkpoints ("
        "  seq       INTEGER PRIMARY KEY CHECK (seq >= 1)," /* the last entry covered */
        "  hash      BLOB NOT NULL CHECK (length(hash) = 32),"
        "  time      INTEGER NOT NULL CHECK (time >= 0),"
        "  signature BLOB NOT NULL CHECK (length(signature) = 64)"
        ") STRICT;"
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
        "  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
        "  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
        "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints"
        "  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
        "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints"
        "  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"},
    /* 9: erasure and retention (docs/SYNC.md, "Erasure and retention").
     * erased: the beneficiaries whose personal data was destroyed, one row
     * each, written in the transaction that deletes it from data.db.  reason
     * is a code, never the operator's text: that text (it may name the
     * person) is kept only sealed, in note, under the master subkey
     * "erasure" (docs/CRYPTO.md).  done = 0 while the data key may still
     * exist in keys.db or old pages in a WAL: an erasure "pending", which
     * any later open of the data directory finishes. */
    {9, "CREATE TABLE erased ("
        "  ben    TEXT PRIMARY KEY NOT NULL," /* the beneficiary's id */
        "  at     INTEGER NOT NULL,"          /* ms since the Unix epoch */
        "  reason TEXT NOT NULL CHECK (reason IN ('request', 'retention')),"
        "  note   BLOB," /* sealed operator's text, or NULL */
        "  done   INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1))" /* key gone, WALs cleared */
        ") STRICT, WITHOUT ROWID;"
        "CREATE INDEX erased_pending ON erased(done) WHERE done = 0;"
        /* The kept conflict answers about a beneficiary (only conflicts
         * name one), found by an erasure without scanning every op. */
        "CREATE INDEX ops_ben ON ops(ben) WHERE ben IS NOT NULL;"},
    /* 10: when the server stored each value of a `state` field (ms since
     * the Unix epoch, the server's clock), kept by triggers.  Retention
     * dates a closing from it, never from the device's clock alone: a
     * device whose clock is years behind (or a counsellor who sets it so)
     * must not make a closing look old enough to erase.  Values stored
     * before this migration count as stored when it ran (later, never
     * earlier). */
    {10, "CREATE TABLE state_seen ("
         "  rec    INTEGER NOT NULL,"
         "  hlc    INTEGER NOT NULL,"
         "  origin TEXT NOT NULL,"
         "  at     INTEGER NOT NULL,"
         "  PRIMARY KEY (rec, hlc, origin)"
         ") STRICT, WITHOUT ROWID;"
         "INSERT INTO state_seen(rec, hlc, origin, at)"
         "  SELECT rec, hlc, origin, unixepoch() * 1000 FROM rec_siblings WHERE name = 'state';"
         "CREATE TRIGGER state_seen_insert AFTER INSERT ON rec_siblings WHEN NEW.name = 'state'"
         "  BEGIN INSERT OR IGNORE INTO state_seen(rec, hlc, origin, at)"
         "    VALUES (NEW.rec, NEW.hlc, NEW.origin, unixepoch() * 1000); END;"
         "CREATE TRIGGER state_seen_delete AFTER DELETE ON rec_siblings WHEN OLD.name = 'state'"
         "  BEGIN DELETE FROM state_seen"
         "    WHERE rec = OLD.rec AND hlc = OLD.hlc AND origin = OLD.origin; END;"},
    /* 11: a record's personal fields as one sealed field set (docs/CRYPTO.md,
     * "Sealed field sets"): sealed holds the siblings of every personal
     * field of the record (and of unknown fields) sealed together under its
     * beneficiary's data key, sealed_schema the schema version bound into
     * its associated data; NULL: the record has no personal sibling.
     * rec_siblings keeps the other fields.  Rows of rec_siblings with
     * sealed = 1 (one seal per sibling, before this migration) are moved
     * into the sets when the data directory is opened: that needs the
     * data keys, which SQL does not have (sync/engine.c,
     * spro_sync__convert_fields). */
    {11, "ALTER TABLE records ADD COLUMN sealed BLOB;"
         "ALTER TABLE records ADD COLUMN sealed_schema INTEGER"
         "  CHECK (sealed_schema BETWEEN 0 AND 4294967295);"},
    /* 12: the acks a push gave, kept for its retries in one row instead of
     * one row of ops each (an ack is its op's seq and the hlc of the
     * version given, whose origin is the device): acks holds the pairs
     * (seq, hlc), 8 bytes each big-endian, by ascending seq, first and
     * last their lowest and highest seq.  Conflicts and rejects stay in
     * ops.  Rows from before stay valid. */
    {12, "CREATE TABLE op_acks ("
         "  device_id TEXT NOT NULL,"
         "  first     INTEGER NOT NULL CHECK (first > 0),"
         "  last      INTEGER NOT NULL CHECK (last >= first),"
         "  at        INTEGER NOT NULL,"
         "  acks      BLOB NOT NULL CHECK (length(acks) > 0 AND length(acks) % 16 = 0),"
         "  PRIMARY KEY (device_id, first)"
         ") STRICT, WITHOUT ROWID;"},
    /* 13: a record's other fields in its row too (records.plain): the
     * siblings of its fields that are not personal, as a msgpack array
     * like the sealed set's plaintext, not sealed (docs/SYNC.md,
     * "Store").  Rows of rec_siblings are moved there when the data
     * directory is opened (with the values sealed one by one, which need
     * the keys: one step, sync/engine.c spro_sync__convert_fields); until
     * then a record's plain is NULL, and records_unconverted finds it.
     * New records start with an empty array.  state_seen is kept by the
     * engine from now on (its triggers watched rec_siblings), with closed:
     * whether that value of `state` is "closed", which retention reads. */
    {13, "DROP TRIGGER state_seen_insert;"
         "DROP TRIGGER state_seen_delete;"
         "ALTER TABLE state_seen ADD COLUMN closed INTEGER NOT NULL DEFAULT 0"
         "  CHECK (closed IN (0, 1));"
         "UPDATE state_seen SET closed = 1 WHERE EXISTS (SELECT 1 FROM rec_siblings AS s"
         "  WHERE s.rec = state_seen.rec AND s.name = 'state' AND s.hlc = state_seen.hlc"
         "  AND s.origin = state_seen.origin AND s.sealed = 0 AND s.val = X'a6636c6f736564');"
         "ALTER TABLE records ADD COLUMN plain BLOB;"
         "CREATE INDEX records_unconverted ON records(id) WHERE plain IS NULL;"},
};
const size_t spro_store__data_migrations_count =
    sizeof spro_store__data_migrations / sizeof spro_store__data_migrations[0];

/* The KEK epoch a wrapped data key names (docs/CRYPTO.md, "Wrapped data
 * key": bytes 2 to 5, big-endian), from the hex digits 3 to 10 of the
 * blob: SQLite has no function that reads an integer from bytes. */
#define HEXDIGIT(i) "(instr('0123456789ABCDEF', substr(hex(wrapped), " #i ", 1)) - 1)"
/* clang-format off */
#define WRAPPED_EPOCH                                                                              \
    "(" HEXDIGIT(3) " * 268435456 + " HEXDIGIT(4) " * 16777216 + "                                 \
        HEXDIGIT(5) " * 1048576 + " HEXDIGIT(6) " * 65536 + "                                      \
        HEXDIGIT(7) " * 4096 + " HEXDIGIT(8) " * 256 + " HEXDIGIT(9) " * 16 + " HEXDIGIT(10) ")"
/* clang-format on */

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
    /* 3: key-encryption-key epochs and rotation (docs/CRYPTO.md, "Key
     * rotation").  keks: one row per epoch; wrapped is the random KEK
     * wrapped under the master key's key-wrapping subkey, or NULL for a
     * derived epoch (epoch 1 of a directory made before this migration,
     * derived from the root key) and for a destroyed one.  Exactly one
     * epoch is active: new data keys are wrapped under it.  data_keys
     * becomes WITHOUT ROWID with the epoch its blob names (bytes 2-5,
     * big-endian) as a column, indexed, so that re-wrapping finds the keys
     * of old epochs at once; triggers refuse a data key under an epoch that
     * is not live, and the destruction of an epoch that a data key still
     * names.  root_key: the key purpose subkeys derive from, once the master
     * key has changed (absent: the master key itself). */
    {3,
     "CREATE TABLE keks ("
     "  epoch        INTEGER PRIMARY KEY CHECK (epoch BETWEEN 1 AND 4294967295),"
     "  state        TEXT NOT NULL CHECK (state IN ('active', 'retired', 'destroyed')),"
     "  wrapped      BLOB CHECK (wrapped IS NULL OR length(wrapped) = 73),"
     "  created_at   INTEGER NOT NULL DEFAULT (unixepoch()),"
     "  destroyed_at INTEGER,"
     "  CHECK ((state = 'destroyed') = (destroyed_at IS NOT NULL)),"
     "  CHECK (state <> 'destroyed' OR wrapped IS NULL)"
     ") STRICT;"
     "CREATE UNIQUE INDEX keks_one_active ON keks(state) WHERE state = 'active';"
     "INSERT INTO keks(epoch, state, wrapped) VALUES (1, 'active', NULL);"
     "CREATE TABLE root_key ("
     "  id         INTEGER PRIMARY KEY CHECK (id = 1),"
     "  wrapped    BLOB NOT NULL CHECK (length(wrapped) = 73),"
     "  changed_at INTEGER NOT NULL"
     ") STRICT;"
     "CREATE TABLE data_keys_v3 ("
     "  ben        TEXT PRIMARY KEY NOT NULL,"
     "  epoch      INTEGER NOT NULL,"
     "  wrapped    BLOB NOT NULL CHECK (length(wrapped) = 77),"
     "  created_at INTEGER NOT NULL DEFAULT (unixepoch()),"
     "  CHECK (epoch = " WRAPPED_EPOCH ")"
     ") STRICT, WITHOUT ROWID;"
     "INSERT INTO data_keys_v3(ben, epoch, wrapped, created_at)"
     "  SELECT ben, " WRAPPED_EPOCH ", wrapped, created_at FROM data_keys ORDER BY ben;"
     "DROP TABLE data_keys;"
     "ALTER TABLE data_keys_v3 RENAME TO data_keys;"
     "CREATE INDEX data_keys_epoch ON data_keys(epoch);"
     "CREATE TRIGGER data_keys_live_insert BEFORE INSERT ON data_keys"
     "  WHEN NOT EXISTS (SELECT 1 FROM keks WHERE epoch = NEW.epoch AND state <> 'destroyed')"
     "  BEGIN SELECT RAISE(ABORT, 'data key under an unknown or destroyed KEK epoch'); END;"
     "CREATE TRIGGER data_keys_live_update BEFORE UPDATE OF epoch ON data_keys"
     "  WHEN NOT EXISTS (SELECT 1 FROM keks WHERE epoch = NEW.epoch AND state <> 'destroyed')"
     "  BEGIN SELECT RAISE(ABORT, 'data key under an unknown or destroyed KEK epoch'); END;"
     "CREATE TRIGGER keks_destroy_unused BEFORE UPDATE OF state ON keks"
     "  WHEN NEW.state = 'destroyed' AND EXISTS (SELECT 1 FROM data_keys WHERE epoch = NEW.epoch)"
     "  BEGIN SELECT RAISE(ABORT, 'a data key still uses this KEK epoch'); END;"
     "CREATE TRIGGER keks_keep BEFORE DELETE ON keks"
     "  BEGIN SELECT RAISE(ABORT, 'KEK epochs are destroyed, not deleted'); END;"},
    /* 4: the beneficiaries whose data key an erasure deleted (ids and
     * times only).  keys.db outlives copies of data.db: a data.db restored
     * from before an erasure is erased again when it is opened. */
    {4, "CREATE TABLE erased_keys ("
        "  ben TEXT PRIMARY KEY NOT NULL,"
        "  at  INTEGER NOT NULL" /* ms since the Unix epoch */
        ") STRICT, WITHOUT ROWID;"},
};
const size_t spro_store__keys_migrations_count =
    sizeof spro_store__keys_migrations / sizeof spro_store__keys_migrations[0];

_Static_assert(sizeof spro_store__data_migrations / sizeof spro_store__data_migrations[0] ==
                   SPRO_DATA_SCHEMA,
               "SPRO_DATA_SCHEMA must name the last data.db migration");
_Static_assert(sizeof spro_store__keys_migrations / sizeof spro_store__keys_migrations[0] ==
                   SPRO_KEYS_SCHEMA,
               "SPRO_KEYS_SCHEMA must name the last keys.db migration");
