/*
 * local.c: the device's local store (see local.h).  A store file: it
 * includes sqlite3.h, and translates every SQLite result into SPRO_ESTORE
 * with SQLite's message in the caller's `why`.
 *
 * Formats of the blobs (msgpack, written here by a few helpers: proto/'s
 * codec encodes whole messages, these are this file's own records):
 *
 *   stored value   0x00 || the value's msgpack (nil, bool, int), or
 *                  0x01 || spro_crypto_seal(the string's msgpack) under
 *                  local.key, AD = rtype 0x00 rid 0x00 field name
 *   siblings       [{val: bin(stored value), ver: [hlc, origin], by: str}, ...]
 *                  sorted by version
 *   base           [[hlc, origin], ...]
 *   outbox op      spro_crypto_seal(one-op push, encoded by spro_proto_encode)
 *                  under local.key, AD = "spro-sync local op" 0x00 seq
 *                  (8 bytes big-endian); a quarantined op keeps its blob.
 *
 * So no string value and no op is ever in local.db in clear, whatever the
 * record type: the device needs no schema to know what is personal.
 */
#include "local.h"
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crypto/crypto.h"
#include "merge.h"

#define DB_FILE "local.db"
#define KEY_FILE "local.key"
#define OP_AD "spro-sync local op"
#define MAX_DRIFT_MS (10 * 60 * 1000) /* remote clocks believed up to this far ahead */
#define MAX_BASE SPRO_SYNC_MAX_SIBLINGS

#define VAL_PLAIN 0x00
#define VAL_SEALED 0x01

int spro_local__fail_write;

struct spro_local {
    sqlite3 *db;
    char *path;   /* DIR/local.db, for messages */
    uint8_t *key; /* SPRO_KEY_BYTES, guarded memory */
    char device[SPRO_LOCAL_NAME_MAX + 1];
    char user[SPRO_LOCAL_NAME_MAX + 1];
    uint32_t schema;
    int64_t pulls; /* while a pull answer is stored: its number (meta "pulls") */
};

static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE records(rtype TEXT NOT NULL, rid TEXT NOT NULL, ben TEXT NOT NULL,"
    "  PRIMARY KEY(rtype, rid)) WITHOUT ROWID;"
    "CREATE INDEX records_rid ON records(rid);"
    "CREATE TABLE fields(rtype TEXT NOT NULL, rid TEXT NOT NULL, name TEXT NOT NULL,"
    "  nsiblings INTEGER NOT NULL, siblings BLOB NOT NULL,"
    "  PRIMARY KEY(rtype, rid, name)) WITHOUT ROWID;"
    "CREATE TABLE pending(rtype TEXT NOT NULL, rid TEXT NOT NULL, name TEXT NOT NULL,"
    "  val BLOB NOT NULL, base BLOB NOT NULL, op_seq INTEGER NOT NULL, hlc INTEGER NOT NULL,"
    "  PRIMARY KEY(rtype, rid, name)) WITHOUT ROWID;"
    "CREATE INDEX pending_op ON pending(op_seq);"
    "CREATE TABLE outbox(seq INTEGER PRIMARY KEY, op BLOB NOT NULL);"
    "CREATE TABLE quarantine(seq INTEGER PRIMARY KEY, code TEXT NOT NULL, at INTEGER NOT NULL,"
    "  op BLOB NOT NULL);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;",
    /* 2: which pull answer last stored a field, and how many pull answers
     * the device had stored when it first sent an op: an answer to the op
     * never overwrites a field a later pull stored (that pull may hold a
     * newer state than the answer describes). */
    "ALTER TABLE fields ADD COLUMN pulled INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN sent_pulls INTEGER;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- Errors ---- */

__attribute__((format(printf, 4, 5))) static int fail(int rc, char *why, size_t whylen,
                                                      const char *fmt, ...)
{
    if (why != NULL && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int db_fail(struct spro_local *l, const char *what, char *why, size_t whylen)
{
    return fail(SPRO_ESTORE, why, whylen, "%s: %s: %s", l->path, what, sqlite3_errmsg(l->db));
}

static int exec(struct spro_local *l, const char *sql)
{
    return sqlite3_exec(l->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SPRO_ESTORE;
}

static int prep(struct spro_local *l, const char *sql, sqlite3_stmt **st, char *why, size_t whylen)
{
    if (sqlite3_prepare_v2(l->db, sql, -1, st, NULL) == SQLITE_OK)
        return 0;
    *st = NULL;
    return db_fail(l, "cannot prepare a statement", why, whylen);
}

/* Steps a write statement and finalizes it: 0, SPRO_EEXISTS for a taken
 * key, else SPRO_ESTORE.  The fault-injection hook fails it on demand. */
static int step_write(struct spro_local *l, sqlite3_stmt *st, char *why, size_t whylen)
{
    if (spro_local__fail_write > 0 && --spro_local__fail_write == 0) {
        sqlite3_finalize(st);
        return fail(SPRO_ESTORE, why, whylen, "%s: write failed (injected fault)", l->path);
    }
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_CONSTRAINT_PRIMARYKEY || src == SQLITE_CONSTRAINT_UNIQUE)
        rc = SPRO_EEXISTS;
    else if (src != SQLITE_DONE)
        rc = db_fail(l, "write failed", why, whylen);
    sqlite3_finalize(st);
    return rc;
}

static int begin(struct spro_local *l, char *why, size_t whylen)
{
    return exec(l, "BEGIN IMMEDIATE") == 0 ? 0 : db_fail(l, "cannot begin", why, whylen);
}

/* Commits when rc is 0, else rolls back; returns rc or the commit's error. */
static int finish(struct spro_local *l, int rc, char *why, size_t whylen)
{
    if (rc == 0 && exec(l, "COMMIT") != 0)
        rc = db_fail(l, "cannot commit", why, whylen);
    if (rc != 0)
        exec(l, "ROLLBACK");
    return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static void bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob(st, i, n > 0 ? p : "", (int)n, SQLITE_STATIC);
}

/* Copies a TEXT column into dst (cap bytes with the NUL): SPRO_EINTEGRITY
 * if NULL, not text, too long or holding a NUL. */
static int col_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) != SQLITE_TEXT)
        return SPRO_EINTEGRITY;
    const unsigned char *p = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (p == NULL || n >= cap || memchr(p, 0, n) != NULL)
        return SPRO_EINTEGRITY;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

/* ---- msgpack writing (this file's own blobs, and values' bytes) ---- */

static void put_be(struct spro_buf *b, uint8_t lead, uint64_t v, int n)
{
    uint8_t t[9];
    t[0] = lead;
    for (int i = n; i >= 1; i--, v >>= 8)
        t[i] = (uint8_t)v;
    spro_buf_append(b, t, (size_t)n + 1);
}

static void mp_head(struct spro_buf *b, uint8_t fix, uint8_t fixmax, uint8_t c16, uint8_t c32,
                    uint32_t n)
{
    if (n <= fixmax)
        put_be(b, (uint8_t)(fix | n), 0, 0);
    else if (n <= 0xffff)
        put_be(b, c16, n, 2);
    else
        put_be(b, c32, n, 4);
}

static void mp_array(struct spro_buf *b, uint32_t n)
{
    mp_head(b, 0x90, 15, 0xdc, 0xdd, n);
}

static void mp_map(struct spro_buf *b, uint32_t n)
{
    mp_head(b, 0x80, 15, 0xde, 0xdf, n);
}

static void mp_str(struct spro_buf *b, const void *p, size_t n)
{
    if (n <= 31)
        put_be(b, (uint8_t)(0xa0 | n), 0, 0);
    else if (n <= 0xff)
        put_be(b, 0xd9, n, 1);
    else
        mp_head(b, 0, 0, 0xda, 0xdb, (uint32_t)n); /* n > 0xff: never the fix form */
    spro_buf_append(b, p, n);
}

static void mp_cstr(struct spro_buf *b, const char *s)
{
    mp_str(b, s, strlen(s));
}

static void mp_bin(struct spro_buf *b, const void *p, size_t n)
{
    if (n <= 0xff)
        put_be(b, 0xc4, n, 1);
    else if (n <= 0xffff)
        put_be(b, 0xc5, n, 2);
    else
        put_be(b, 0xc6, n, 4);
    spro_buf_append(b, p, n);
}

static void mp_uint(struct spro_buf *b, uint64_t v)
{
    if (v <= 0x7f)
        put_be(b, (uint8_t)v, 0, 0);
    else if (v <= 0xff)
        put_be(b, 0xcc, v, 1);
    else if (v <= 0xffff)
        put_be(b, 0xcd, v, 2);
    else if (v <= 0xffffffff)
        put_be(b, 0xce, v, 4);
    else
        put_be(b, 0xcf, v, 8);
}

static void mp_int(struct spro_buf *b, int64_t v)
{
    if (v >= 0)
        mp_uint(b, (uint64_t)v);
    else if (v >= -32)
        put_be(b, (uint8_t)v, 0, 0);
    else if (v >= INT8_MIN)
        put_be(b, 0xd0, (uint64_t)v, 1);
    else if (v >= INT16_MIN)
        put_be(b, 0xd1, (uint64_t)v, 2);
    else if (v >= INT32_MIN)
        put_be(b, 0xd2, (uint64_t)v, 4);
    else
        put_be(b, 0xd3, (uint64_t)v, 8);
}

/* The canonical msgpack of a value (kind and b, i or s). */
static void value_raw(struct spro_buf *b, const struct spro_value *v)
{
    static const uint8_t nil = 0xc0, f = 0xc2, t = 0xc3;
    switch (v->kind) {
    case SPRO_VALUE_NIL:
        spro_buf_append(b, &nil, 1);
        break;
    case SPRO_VALUE_BOOL:
        spro_buf_append(b, v->b ? &t : &f, 1);
        break;
    case SPRO_VALUE_INT:
        mp_int(b, v->i);
        break;
    case SPRO_VALUE_STR:
        mp_str(b, v->s.p, v->s.len);
        break;
    default:
        SPRO_BUG("value of an unknown kind");
    }
}

/* Reads a whole buffer as one value (nil, bool, int64 or str): sets kind
 * and b, i or s, raw = the buffer.  SPRO_EINTEGRITY if it is not one. */
static int value_parse(const uint8_t *p, size_t n, struct spro_value *v)
{
    struct spro_mp_reader r;
    spro_mp_reader_init(&r, p, n);
    memset(v, 0, sizeof *v);
    v->raw = (struct spro_bytes){p, n};
    const char *s;
    size_t len;
    if (spro_mp_read_nil(&r) == 0) {
        v->kind = SPRO_VALUE_NIL;
    } else if (spro_mp_read_bool(&r, &v->b) == 0) {
        v->kind = SPRO_VALUE_BOOL;
    } else if (spro_mp_read_int(&r, INT64_MIN, INT64_MAX, &v->i) == 0) {
        v->kind = SPRO_VALUE_INT;
    } else if (spro_mp_read_str(&r, SPRO_SYNC_MAX_VALUE, &s, &len) == 0) {
        v->kind = SPRO_VALUE_STR;
        v->s = (struct spro_bytes){(const uint8_t *)s, len};
    } else {
        return SPRO_EINTEGRITY;
    }
    return spro_mp_finish(&r) == 0 ? 0 : SPRO_EINTEGRITY;
}

/* ---- Sealed values ---- */

/* Associated data of a field's values: rtype 0x00 rid 0x00 name. */
static void field_ad(struct spro_buf *ad, const char *rtype, const char *rid, const char *name)
{
    static const uint8_t zero = 0;
    ad->len = 0;
    spro_buf_append(ad, rtype, strlen(rtype));
    spro_buf_append(ad, &zero, 1);
    spro_buf_append(ad, rid, strlen(rid));
    spro_buf_append(ad, &zero, 1);
    spro_buf_append(ad, name, strlen(name));
}

static void wipe_free(struct spro_buf *b)
{
    if (b->data != NULL)
        spro_memzero(b->data, b->cap);
    spro_buf_free(b);
}

/* Appends the stored form of v (see the top of the file) to out. */
static void value_store(const struct spro_local *l, const char *rtype, const char *rid,
                        const char *name, const struct spro_value *v, struct spro_buf *out)
{
    struct spro_buf raw = {0};
    value_raw(&raw, v);
    if (v->kind != SPRO_VALUE_STR) {
        static const uint8_t plain = VAL_PLAIN;
        spro_buf_append(out, &plain, 1);
        spro_buf_append(out, raw.data, raw.len);
        spro_buf_free(&raw);
        return;
    }
    struct spro_buf ad = {0};
    field_ad(&ad, rtype, rid, name);
    uint8_t *sealed = malloc(raw.len + SPRO_SEAL_OVERHEAD);
    if (sealed == NULL)
        SPRO_BUG("out of memory");
    spro_crypto_seal(sealed, raw.data, raw.len, ad.data, ad.len, l->key);
    static const uint8_t tag = VAL_SEALED;
    spro_buf_append(out, &tag, 1);
    spro_buf_append(out, sealed, raw.len + SPRO_SEAL_OVERHEAD);
    free(sealed);
    spro_buf_free(&ad);
    wipe_free(&raw);
}

/* Memory owned by a loaded record: a list of blocks, wiped when freed. */
struct block {
    struct block *next;
    size_t len;
    uint8_t data[];
};

static uint8_t *mem_alloc(void **mem, size_t n)
{
    struct block *b = calloc(1, sizeof *b + n + 1);
    if (b == NULL)
        SPRO_BUG("out of memory");
    b->len = n;
    b->next = *mem;
    *mem = b;
    return b->data;
}

static void mem_free(void *mem)
{
    for (struct block *b = mem, *next; b != NULL; b = next) {
        next = b->next;
        spro_memzero(b->data, b->len);
        free(b);
    }
}

/* Opens a stored value (n bytes) into memory of *mem and parses it.
 * SPRO_EINTEGRITY if it does not open or is damaged. */
static int value_load(const struct spro_local *l, const char *rtype, const char *rid,
                      const char *name, const uint8_t *p, size_t n, void **mem,
                      struct spro_value *v)
{
    if (n < 2)
        return SPRO_EINTEGRITY;
    if (p[0] == VAL_PLAIN) {
        uint8_t *raw = mem_alloc(mem, n - 1);
        memcpy(raw, p + 1, n - 1);
        int rc = value_parse(raw, n - 1, v);
        return rc == 0 && v->kind == SPRO_VALUE_STR ? SPRO_EINTEGRITY : rc;
    }
    if (p[0] != VAL_SEALED || n < 1 + SPRO_SEAL_OVERHEAD + 1)
        return SPRO_EINTEGRITY;
    size_t rawlen = n - 1 - SPRO_SEAL_OVERHEAD;
    uint8_t *raw = mem_alloc(mem, rawlen);
    struct spro_buf ad = {0};
    field_ad(&ad, rtype, rid, name);
    int rc = spro_crypto_open(raw, p + 1, n - 1, ad.data, ad.len, l->key);
    spro_buf_free(&ad);
    if (rc != 0)
        return SPRO_EINTEGRITY;
    rc = value_parse(raw, rawlen, v);
    return rc == 0 && v->kind != SPRO_VALUE_STR ? SPRO_EINTEGRITY : rc;
}

/* ---- Siblings and bases ---- */

/* One sibling as stored: the value still in its stored form. */
struct ssib {
    const uint8_t *val; /* stored value, into the blob */
    size_t vlen;
    uint64_t hlc;
    char origin[SPRO_LOCAL_NAME_MAX + 1];
    char by[SPRO_LOCAL_NAME_MAX + 1];
};

static int read_key(struct spro_mp_reader *r, const char *want)
{
    const char *k;
    size_t n;
    int rc = spro_mp_read_str(r, SPRO_PROTO_MAX_KEY, &k, &n);
    if (rc != 0)
        return rc;
    return n == strlen(want) && memcmp(k, want, n) == 0 ? 0 : SPRO_EINTEGRITY;
}

static int read_cstr(struct spro_mp_reader *r, char *out, size_t cap)
{
    const char *s;
    size_t n;
    int rc = spro_mp_read_str(r, cap - 1, &s, &n);
    if (rc != 0)
        return rc;
    if (n == 0 || memchr(s, 0, n) != NULL)
        return SPRO_EINTEGRITY;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* [hlc, origin] */
static int read_version(struct spro_mp_reader *r, uint64_t *hlc,
                        char origin[SPRO_LOCAL_NAME_MAX + 1])
{
    uint32_t n;
    int rc = spro_mp_read_array(r, 2, &n);
    if (rc == 0 && n != 2)
        rc = SPRO_EINTEGRITY;
    if (rc == 0)
        rc = spro_mp_read_uint(r, 1, INT64_MAX, hlc);
    if (rc == 0)
        rc = read_cstr(r, origin, SPRO_LOCAL_NAME_MAX + 1);
    return rc;
}

/* Parses a siblings blob into s[0..*n).  SPRO_EINTEGRITY if damaged. */
static int sibs_parse(const uint8_t *p, size_t len, struct ssib s[SPRO_SYNC_MAX_SIBLINGS],
                      size_t *n)
{
    struct spro_mp_reader r;
    spro_mp_reader_init(&r, p, len);
    uint32_t count, m;
    int rc = spro_mp_read_array(&r, SPRO_SYNC_MAX_SIBLINGS, &count);
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        rc = spro_mp_read_map(&r, 3, &m);
        if (rc == 0 && m != 3)
            rc = SPRO_EINTEGRITY;
        if (rc == 0)
            rc = read_key(&r, "val");
        if (rc == 0)
            rc = spro_mp_read_bin(&r, SPRO_PROTO_MAX_BIN, &s[i].val, &s[i].vlen);
        if (rc == 0)
            rc = read_key(&r, "ver");
        if (rc == 0)
            rc = read_version(&r, &s[i].hlc, s[i].origin);
        if (rc == 0)
            rc = read_key(&r, "by");
        if (rc == 0)
            rc = read_cstr(&r, s[i].by, sizeof s[i].by);
    }
    if (rc == 0)
        rc = spro_mp_finish(&r);
    if (rc != 0)
        return SPRO_EINTEGRITY;
    *n = count;
    return 0;
}

static void sib_write(struct spro_buf *b, const struct spro_buf *stored, uint64_t hlc,
                      const void *origin, size_t olen, const void *by, size_t bylen)
{
    mp_map(b, 3);
    mp_cstr(b, "val");
    mp_bin(b, stored->data, stored->len);
    mp_cstr(b, "ver");
    mp_array(b, 2);
    mp_uint(b, hlc);
    mp_str(b, origin, olen);
    mp_cstr(b, "by");
    mp_str(b, by, bylen);
}

/* A base: versions as hlc and NUL-terminated origins. */
struct base {
    size_t n;
    uint64_t hlc[MAX_BASE];
    char origin[MAX_BASE][SPRO_LOCAL_NAME_MAX + 1];
};

static void base_write(struct spro_buf *b, const struct base *bs)
{
    mp_array(b, (uint32_t)bs->n);
    for (size_t i = 0; i < bs->n; i++) {
        mp_array(b, 2);
        mp_uint(b, bs->hlc[i]);
        mp_cstr(b, bs->origin[i]);
    }
}

/* ---- Meta ---- */

static int meta_get_int(struct spro_local *l, const char *key, int64_t *v, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT value FROM meta WHERE key = ?1", &st, why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, key);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER)
        *v = sqlite3_column_int64(st, 0);
    else if (src == SQLITE_ROW)
        rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: meta %s is not an integer", l->path, key);
    else if (src == SQLITE_DONE)
        *v = 0;
    else
        rc = db_fail(l, "cannot read meta", why, whylen);
    sqlite3_finalize(st);
    return rc;
}

static int meta_put_int(struct spro_local *l, const char *key, int64_t v, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", &st, why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, v);
    return step_write(l, st, why, whylen);
}

static int meta_put_blob(struct spro_local *l, const char *key, const void *p, size_t n, char *why,
                         size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", &st, why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, key);
    bind_blob(st, 2, p, n);
    return step_write(l, st, why, whylen);
}

static int hlc_load(struct spro_local *l, struct spro_hlc *c, char *why, size_t whylen)
{
    int64_t v;
    int rc = meta_get_int(l, "hlc", &v, why, whylen);
    if (rc == 0 && v < 0)
        rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: meta hlc is negative", l->path);
    if (rc == 0)
        c->last = (uint64_t)v;
    return rc;
}

static int hlc_save(struct spro_local *l, const struct spro_hlc *c, char *why, size_t whylen)
{
    if (c->last > INT64_MAX)
        return fail(SPRO_ERANGE, why, whylen, "%s: the clock is exhausted", l->path);
    return meta_put_int(l, "hlc", (int64_t)c->last, why, whylen);
}

/* ---- Opening ---- */

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Makes DIR/local.key: 32 random bytes, mode 0600, through a temporary
 * file renamed into place, then DIR synced. */
static int key_create(const char *dir, const char *path, char *why, size_t whylen)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return fail(-ENAMETOOLONG, why, whylen, "%s: path too long", path);
    uint8_t key[SPRO_KEY_BYTES];
    spro_crypto_random(key, sizeof key);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && fchmod(fd, 0600) != 0)
        rc = -errno;
    if (rc == 0)
        rc = write_all(fd, key, sizeof key);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    spro_memzero(key, sizeof key);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return fail(rc, why, whylen, "cannot write %s: %s", path, strerror(-rc));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        rc = fsync(dfd) == 0 ? 0 : -errno;
        close(dfd);
    } else {
        rc = -errno;
    }
    return rc == 0 ? 0 : fail(rc, why, whylen, "cannot sync %s: %s", dir, strerror(-rc));
}

static int key_load(const char *path, uint8_t *key, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return fail(-err, why, whylen, "cannot open %s: %s", path, strerror(err));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = fail(-errno, why, whylen, "cannot stat %s", path);
    else if (!S_ISREG(st.st_mode) || st.st_size != SPRO_KEY_BYTES)
        rc = fail(SPRO_ECONFIG, why, whylen, "%s is not a key file of %d bytes", path,
                  SPRO_KEY_BYTES);
    else if ((st.st_mode & 077) != 0)
        rc =
            fail(SPRO_EPERM, why, whylen, "%s is readable by group or others (chmod 600 it)", path);
    size_t got = 0;
    while (rc == 0 && got < SPRO_KEY_BYTES) {
        ssize_t n = read(fd, key + got, SPRO_KEY_BYTES - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = fail(n < 0 ? -errno : SPRO_ECONFIG, why, whylen, "cannot read %s", path);
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc != 0)
        spro_memzero(key, SPRO_KEY_BYTES);
    return rc;
}

/* The database file exists with mode 0600 before SQLite opens it (its
 * -wal and -shm files take the same mode). */
static int db_file_prepare(const char *path, char *why, size_t whylen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        return fail(-err, why, whylen, "cannot open %s: %s", path, strerror(err));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = fail(SPRO_ECONFIG, why, whylen, "%s is not a regular file", path);
    else if ((st.st_mode & 077) != 0 && fchmod(fd, 0600) != 0)
        rc = fail(-errno, why, whylen, "cannot chmod %s", path);
    close(fd);
    return rc;
}

static int migrate(struct spro_local *l, char *why, size_t whylen)
{
    int rc = begin(l, why, whylen);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    int v = 0;
    if ((rc = prep(l, "PRAGMA user_version", &st, why, whylen)) != 0)
        return finish(l, rc, why, whylen);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    else
        rc = db_fail(l, "cannot read the schema version", why, whylen);
    sqlite3_finalize(st);
    if (rc == 0 && (v < 0 || v > SCHEMA_VERSION))
        rc = fail(SPRO_ESCHEMA_NEWER, why, whylen,
                  "%s: schema version %d is newer than this program's %d; upgrade spro-client",
                  l->path, v, SCHEMA_VERSION);
    for (int i = v; rc == 0 && i < SCHEMA_VERSION; i++)
        if (exec(l, migrations[i]) != 0)
            rc = db_fail(l, "migration failed", why, whylen);
    char pragma[48];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", SCHEMA_VERSION);
    if (rc == 0 && v != SCHEMA_VERSION && exec(l, pragma) != 0)
        rc = db_fail(l, "cannot set the schema version", why, whylen);
    return finish(l, rc, why, whylen);
}

/* Binds the store to its device: the first open records the device id, a
 * later one for another device is refused. */
static int claim(struct spro_local *l, char *why, size_t whylen)
{
    int rc = begin(l, why, whylen);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = prep(l, "SELECT value FROM meta WHERE key = 'device'", &st, why, whylen)) != 0)
        return finish(l, rc, why, whylen);
    int src = sqlite3_step(st);
    char dev[SPRO_LOCAL_NAME_MAX + 1] = "";
    bool found = src == SQLITE_ROW;
    if (found && col_text(dev, sizeof dev, st, 0) != 0)
        rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: meta device is damaged", l->path);
    else if (!found && src != SQLITE_DONE)
        rc = db_fail(l, "cannot read meta", why, whylen);
    sqlite3_finalize(st);
    if (rc == 0 && found && strcmp(dev, l->device) != 0)
        rc = fail(SPRO_ECONFIG, why, whylen, "%s belongs to device %s, not to this device (%s)",
                  l->path, dev, l->device);
    if (rc == 0 && !found) {
        if ((rc = prep(l, "INSERT INTO meta(key, value) VALUES ('device', ?1)", &st, why,
                       whylen)) == 0) {
            bind_text(st, 1, l->device);
            rc = step_write(l, st, why, whylen);
        }
    }
    return finish(l, rc, why, whylen);
}

static bool id_ok(const char *s)
{
    size_t n = s == NULL ? 0 : strlen(s);
    return n >= 1 && n <= SPRO_LOCAL_NAME_MAX;
}

int spro_local_open(struct spro_local **out, const char *dir, const struct spro_local_identity *id,
                    char *why, size_t whylen)
{
    *out = NULL;
    if (!id_ok(id->device) || !id_ok(id->user) || id->schema < 1 || id->schema > INT32_MAX)
        SPRO_BUG("spro_local_open: bad identity");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(SPRO_ENOENT, why, whylen, "%s is not a directory", dir);
    char dbpath[4200], keypath[4200];
    if (spro_files__path_join(dbpath, sizeof dbpath, dir, DB_FILE) != 0 ||
        spro_files__path_join(keypath, sizeof keypath, dir, KEY_FILE) != 0)
        return fail(-ENAMETOOLONG, why, whylen, "%s: path too long", dir);
    bool have_db = access(dbpath, F_OK) == 0, have_key = access(keypath, F_OK) == 0;
    int rc;
    if (have_db && !have_key)
        return fail(SPRO_ECONFIG, why, whylen,
                    "%s exists without %s: its values cannot be opened (remove it to start "
                    "over; its unsynced edits would be lost)",
                    dbpath, keypath);
    if (!have_key && (rc = key_create(dir, keypath, why, whylen)) != 0)
        return rc;

    struct spro_local *l = calloc(1, sizeof *l);
    if (l == NULL || (l->path = strdup(dbpath)) == NULL)
        SPRO_BUG("out of memory");
    l->key = spro_secret_alloc(SPRO_KEY_BYTES);
    snprintf(l->device, sizeof l->device, "%s", id->device);
    snprintf(l->user, sizeof l->user, "%s", id->user);
    l->schema = id->schema;
    if ((rc = key_load(keypath, l->key, why, whylen)) != 0 ||
        (rc = db_file_prepare(dbpath, why, whylen)) != 0)
        goto fail;
    if (sqlite3_open_v2(dbpath, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = db_fail(l, "cannot open", why, whylen);
        goto fail;
    }
    sqlite3_extended_result_codes(l->db, 1);
    sqlite3_busy_timeout(l->db, 5000);
    if (exec(l, "PRAGMA journal_mode = WAL") != 0 || exec(l, "PRAGMA synchronous = FULL") != 0 ||
        exec(l, "PRAGMA secure_delete = ON") != 0) {
        rc = db_fail(l, "cannot configure", why, whylen);
        goto fail;
    }
    if ((rc = migrate(l, why, whylen)) != 0 || (rc = claim(l, why, whylen)) != 0)
        goto fail;
    *out = l;
    return 0;
fail:
    spro_local_close(l);
    return rc;
}

void spro_local_close(struct spro_local *l)
{
    if (l == NULL)
        return;
    if (l->db != NULL)
        sqlite3_close_v2(l->db);
    spro_secret_free(l->key);
    free(l->path);
    free(l);
}

/* ---- UUIDs and names ---- */

void spro_local_uuid(char out[SPRO_LOCAL_UUID_CHARS + 1])
{
    uint8_t u[16];
    spro_crypto_random(u, sizeof u);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

bool spro_local_uuid_ok(const char *s)
{
    if (s == NULL || strlen(s) != SPRO_LOCAL_UUID_CHARS)
        return false;
    for (int i = 0; i < SPRO_LOCAL_UUID_CHARS; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static bool rtype_ok(const char *s)
{
    size_t n = s == NULL ? 0 : strlen(s);
    if (n < 1 || n > SPRO_LOCAL_RTYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static bool field_name_ok(const char *s)
{
    size_t n = s == NULL ? 0 : strlen(s);
    if (n < 1 || n > SPRO_LOCAL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Copies wire bytes into a C string: false if empty, too long or holding
 * a NUL (nothing this device can key its rows with). */
static bool wire_cstr(char *out, size_t cap, const struct spro_bytes *b)
{
    if (b->len == 0 || b->len >= cap || memchr(b->p, 0, b->len) != NULL)
        return false;
    memcpy(out, b->p, b->len);
    out[b->len] = '\0';
    return true;
}

/* ---- Writing edits ---- */

static void op_ad(uint8_t ad[sizeof OP_AD + 8], uint64_t seq)
{
    memcpy(ad, OP_AD, sizeof OP_AD); /* with its NUL */
    for (int i = 7; i >= 0; i--, seq >>= 8)
        ad[sizeof OP_AD + (size_t)i] = (uint8_t)seq;
}

/* The current siblings of a field as stored (the blob copied into *blob,
 * parsed into s[0..*n)); *n is 0 for a field never heard of. */
static int field_sibs(struct spro_local *l, const char *rtype, const char *rid, const char *name,
                      struct spro_buf *blob, struct ssib s[SPRO_SYNC_MAX_SIBLINGS], size_t *n,
                      char *why, size_t whylen)
{
    *n = 0;
    blob->len = 0;
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT siblings FROM fields WHERE rtype = ?1 AND rid = ?2 AND name = ?3", &st,
                  why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, rtype);
    bind_text(st, 2, rid);
    bind_text(st, 3, name);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        spro_buf_append(blob, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    } else if (src != SQLITE_DONE) {
        rc = db_fail(l, "cannot read a field", why, whylen);
    }
    sqlite3_finalize(st);
    if (rc == 0 && src == SQLITE_ROW && sibs_parse(blob->data, blob->len, s, n) != 0)
        rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: the siblings of %s %s %s are damaged", l->path,
                  rtype, rid, name);
    return rc;
}

/* The version of the device's own unanswered edit of a field, if any. */
static int field_pending(struct spro_local *l, const char *rtype, const char *rid, const char *name,
                         bool *found, uint64_t *hlc, char *why, size_t whylen)
{
    *found = false;
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT hlc FROM pending WHERE rtype = ?1 AND rid = ?2 AND name = ?3", &st,
                  why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, rtype);
    bind_text(st, 2, rid);
    bind_text(st, 3, name);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(st, 0);
        if (v <= 0)
            rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: a pending hlc is damaged", l->path);
        *found = true;
        *hlc = (uint64_t)v;
    } else if (src != SQLITE_DONE) {
        rc = db_fail(l, "cannot read a pending edit", why, whylen);
    }
    sqlite3_finalize(st);
    return rc;
}

static int record_ben(struct spro_local *l, const char *rtype, const char *rid, bool *found,
                      char ben[SPRO_LOCAL_UUID_CHARS + 1], char *why, size_t whylen)
{
    *found = false;
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT ben FROM records WHERE rtype = ?1 AND rid = ?2", &st, why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, rtype);
    bind_text(st, 2, rid);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = true;
        if (col_text(ben, SPRO_LOCAL_UUID_CHARS + 1, st, 0) != 0)
            rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: record %s %s is damaged", l->path, rtype,
                      rid);
    } else if (src != SQLITE_DONE) {
        rc = db_fail(l, "cannot read a record", why, whylen);
    }
    sqlite3_finalize(st);
    return rc;
}

static int check_edit(const struct spro_local_edit *e, char *why, size_t whylen)
{
    if (!rtype_ok(e->rtype))
        return fail(SPRO_ERANGE, why, whylen, "'%s' is not a record type name",
                    e->rtype ? e->rtype : "");
    if (!spro_local_uuid_ok(e->rid))
        return fail(SPRO_ERANGE, why, whylen, "'%s' is not a record id (a lowercase UUID)",
                    e->rid ? e->rid : "");
    if (e->create && !spro_local_uuid_ok(e->ben))
        return fail(SPRO_ERANGE, why, whylen, "'%s' is not a beneficiary id (a lowercase UUID)",
                    e->ben ? e->ben : "");
    if (e->nset < 1 || e->nset > SPRO_SYNC_MAX_FIELDS)
        return fail(SPRO_ERANGE, why, whylen, "an edit sets 1 to %d fields, not %zu",
                    SPRO_SYNC_MAX_FIELDS, e->nset);
    for (size_t i = 0; i < e->nset; i++) {
        const struct spro_local_set *s = &e->set[i];
        if (!field_name_ok(s->name))
            return fail(SPRO_ERANGE, why, whylen,
                        "'%s' is not a field name (1 to %d of A-Z a-z 0-9 _ -)",
                        s->name ? s->name : "", SPRO_LOCAL_NAME_MAX);
        if (s->val.kind > SPRO_VALUE_STR)
            SPRO_BUG("value of an unknown kind");
        if (s->val.kind == SPRO_VALUE_STR && s->val.s.len > SPRO_SYNC_MAX_VALUE)
            return fail(SPRO_ERANGE, why, whylen, "the value of %s is longer than %d bytes",
                        s->name, SPRO_SYNC_MAX_VALUE);
        for (size_t j = 0; j < i; j++)
            if (strcmp(e->set[j].name, s->name) == 0)
                return fail(SPRO_ERANGE, why, whylen, "field %s is set twice", s->name);
    }
    return 0;
}

/* Per-field working memory of one op. */
struct edit_mem {
    struct spro_wire_edit edits[SPRO_SYNC_MAX_FIELDS];
    struct spro_buf raws[SPRO_SYNC_MAX_FIELDS];
    struct base bases[SPRO_SYNC_MAX_FIELDS];
    struct spro_wire_version versions[SPRO_SYNC_MAX_FIELDS][MAX_BASE];
};

/* One edit of spro_local_write(), inside its transaction. */
static int write_one(struct spro_local *l, const struct spro_local_edit *e, uint64_t seq,
                     uint64_t hlc, struct edit_mem *m, char *why, size_t whylen)
{
    char ben[SPRO_LOCAL_UUID_CHARS + 1];
    bool found;
    sqlite3_stmt *st;
    int rc = record_ben(l, e->rtype, e->rid, &found, ben, why, whylen);
    if (rc != 0)
        return rc;
    if (e->create && found)
        return fail(SPRO_EEXISTS, why, whylen, "record %s %s exists already", e->rtype, e->rid);
    if (!e->create && !found)
        return fail(SPRO_ENOENT, why, whylen, "no record %s %s on this device", e->rtype, e->rid);
    if (e->create) {
        snprintf(ben, sizeof ben, "%s", e->ben);
        if ((rc = prep(l, "INSERT INTO records(rtype, rid, ben) VALUES (?1, ?2, ?3)", &st, why,
                       whylen)) != 0)
            return rc;
        bind_text(st, 1, e->rtype);
        bind_text(st, 2, e->rid);
        bind_text(st, 3, ben);
        if ((rc = step_write(l, st, why, whylen)) != 0)
            return rc;
    }

    struct spro_buf blob = {0}, stored = {0}, bb = {0};
    struct ssib sibs[SPRO_SYNC_MAX_SIBLINGS];
    for (size_t i = 0; rc == 0 && i < e->nset; i++) {
        const struct spro_local_set *s = &e->set[i];
        struct base *b = &m->bases[i];
        size_t ns;
        bool pend;
        uint64_t phlc = 0;
        if ((rc = field_sibs(l, e->rtype, e->rid, s->name, &blob, sibs, &ns, why, whylen)) != 0 ||
            (rc = field_pending(l, e->rtype, e->rid, s->name, &pend, &phlc, why, whylen)) != 0)
            break;
        if (ns + pend > MAX_BASE) {
            rc = fail(SPRO_ETOOLONG, why, whylen,
                      "field %s has too many versions to edit (at most %d)", s->name, MAX_BASE);
            break;
        }
        b->n = 0;
        for (size_t k = 0; k < ns; k++, b->n++) {
            b->hlc[b->n] = sibs[k].hlc;
            memcpy(b->origin[b->n], sibs[k].origin, sizeof b->origin[0]);
        }
        if (pend) {
            b->hlc[b->n] = phlc;
            snprintf(b->origin[b->n], sizeof b->origin[0], "%s", l->device);
            b->n++;
        }
        for (size_t k = 0; k < b->n; k++)
            m->versions[i][k] = (struct spro_wire_version){
                b->hlc[k], {(const uint8_t *)b->origin[k], strlen(b->origin[k])}};

        m->raws[i].len = 0;
        value_raw(&m->raws[i], &s->val);
        struct spro_wire_edit *we = &m->edits[i];
        we->name = (struct spro_bytes){(const uint8_t *)s->name, strlen(s->name)};
        we->val = s->val;
        we->val.raw = (struct spro_bytes){m->raws[i].data, m->raws[i].len};
        we->base = b->n > 0 ? m->versions[i] : NULL;
        we->nbase = b->n;

        stored.len = 0;
        value_store(l, e->rtype, e->rid, s->name, &s->val, &stored);
        bb.len = 0;
        base_write(&bb, b);
        if ((rc = prep(l,
                       "INSERT OR REPLACE INTO pending(rtype, rid, name, val, base, op_seq, hlc) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                       &st, why, whylen)) != 0)
            break;
        bind_text(st, 1, e->rtype);
        bind_text(st, 2, e->rid);
        bind_text(st, 3, s->name);
        bind_blob(st, 4, stored.data, stored.len);
        bind_blob(st, 5, bb.data, bb.len);
        sqlite3_bind_int64(st, 6, (int64_t)seq);
        sqlite3_bind_int64(st, 7, (int64_t)hlc);
        rc = step_write(l, st, why, whylen);
    }
    spro_buf_free(&blob);
    spro_buf_free(&stored);
    spro_buf_free(&bb);
    if (rc != 0)
        return rc;

    struct spro_wire_op op = {
        .seq = seq,
        .rtype = {(const uint8_t *)e->rtype, strlen(e->rtype)},
        .rid = {(const uint8_t *)e->rid, strlen(e->rid)},
        .ben = {(const uint8_t *)ben, strlen(ben)},
        .schema = l->schema,
        .hlc = hlc,
        .set = m->edits,
        .nset = e->nset,
    };
    struct spro_msg msg = {.type = SPRO_MSG_PUSH};
    msg.u.push = (struct spro_msg_push){&op, 1};
    struct spro_buf pt = {0};
    rc = spro_proto_encode(&msg, &pt);
    if (rc != 0) {
        rc = fail(rc, why, whylen, "the edit of %s %s cannot be encoded (%s)", e->rtype, e->rid,
                  spro_strerror(rc));
    } else if (pt.len > SPRO_LOCAL_PUSH_MAX) {
        rc = fail(SPRO_ETOOLONG, why, whylen,
                  "the edit of %s %s takes %zu bytes, more than one push holds (%d): split it",
                  e->rtype, e->rid, pt.len, SPRO_LOCAL_PUSH_MAX);
    } else {
        uint8_t ad[sizeof OP_AD + 8];
        op_ad(ad, seq);
        uint8_t *sealed = malloc(pt.len + SPRO_SEAL_OVERHEAD);
        if (sealed == NULL)
            SPRO_BUG("out of memory");
        spro_crypto_seal(sealed, pt.data, pt.len, ad, sizeof ad, l->key);
        if ((rc = prep(l, "INSERT INTO outbox(seq, op) VALUES (?1, ?2)", &st, why, whylen)) == 0) {
            sqlite3_bind_int64(st, 1, (int64_t)seq);
            bind_blob(st, 2, sealed, pt.len + SPRO_SEAL_OVERHEAD);
            rc = step_write(l, st, why, whylen);
        }
        free(sealed);
    }
    wipe_free(&pt);
    return rc;
}

int spro_local_write(struct spro_local *l, const struct spro_local_edit *e, size_t n,
                     uint64_t wall_ms, uint64_t *seqs, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_edit(&e[i], why, whylen);
        if (rc != 0)
            return rc;
    }
    int rc = begin(l, why, whylen);
    if (rc != 0)
        return rc;
    int64_t next;
    struct spro_hlc clock;
    if ((rc = meta_get_int(l, "next_seq", &next, why, whylen)) != 0 ||
        (rc = hlc_load(l, &clock, why, whylen)) != 0)
        return finish(l, rc, why, whylen);
    if (next < 1)
        next = 1;
    struct edit_mem *m = calloc(1, sizeof *m);
    if (m == NULL)
        SPRO_BUG("out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t hlc = spro_hlc_tick(&clock, wall_ms);
        if (next >= INT64_MAX || hlc > INT64_MAX) {
            rc = fail(SPRO_ERANGE, why, whylen, "%s: sequence or clock exhausted", l->path);
            break;
        }
        rc = write_one(l, &e[i], (uint64_t)next, hlc, m, why, whylen);
        if (rc == 0 && seqs != NULL)
            seqs[i] = (uint64_t)next;
        next++;
    }
    for (size_t i = 0; i < SPRO_SYNC_MAX_FIELDS; i++)
        wipe_free(&m->raws[i]);
    free(m);
    if (rc == 0)
        rc = meta_put_int(l, "next_seq", next, why, whylen);
    if (rc == 0)
        rc = hlc_save(l, &clock, why, whylen);
    return finish(l, rc, why, whylen);
}

/* ---- Reading ---- */

int spro_local_find(struct spro_local *l, const char *rid, char rtype[SPRO_LOCAL_RTYPE_MAX + 1],
                    char ben[SPRO_LOCAL_UUID_CHARS + 1], char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT rtype, ben FROM records WHERE rid = ?1 ORDER BY rtype LIMIT 2", &st,
                  why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, rid);
    int n = 0, src = SQLITE_DONE;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == 0 && (col_text(rtype, SPRO_LOCAL_RTYPE_MAX + 1, st, 0) != 0 ||
                         col_text(ben, SPRO_LOCAL_UUID_CHARS + 1, st, 1) != 0))
            rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: record %s is damaged", l->path, rid);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(l, "cannot read records", why, whylen);
    sqlite3_finalize(st);
    if (rc == 0 && n == 0)
        rc = fail(SPRO_ENOENT, why, whylen, "no record %s on this device", rid);
    else if (rc == 0 && n > 1)
        rc = fail(SPRO_EEXISTS, why, whylen, "records of several types have the id %s", rid);
    return rc;
}

static int sib_cmp(const void *a, const void *b)
{
    const struct spro_local_sibling *x = a, *y = b;
    if (x->hlc != y->hlc)
        return x->hlc < y->hlc ? -1 : 1;
    return strcmp(x->origin, y->origin);
}

/* Fills f->siblings from a stored blob (values opened into r's memory). */
static int load_siblings(struct spro_local *l, struct spro_local_record *r,
                         struct spro_local_field *f, const uint8_t *blob, size_t len)
{
    struct ssib s[SPRO_SYNC_MAX_SIBLINGS];
    size_t n;
    if (sibs_parse(blob, len, s, &n) != 0)
        return SPRO_EINTEGRITY;
    f->siblings = (struct spro_local_sibling *)mem_alloc(
        &r->mem, (n + 1) * sizeof(struct spro_local_sibling));
    for (size_t i = 0; i < n; i++) {
        struct spro_local_sibling *o = &f->siblings[i];
        int rc = value_load(l, r->rtype, r->rid, f->name, s[i].val, s[i].vlen, &r->mem, &o->val);
        if (rc != 0)
            return rc;
        o->hlc = s[i].hlc;
        memcpy(o->origin, s[i].origin, sizeof o->origin);
        memcpy(o->by, s[i].by, sizeof o->by);
    }
    f->nsiblings = n;
    qsort(f->siblings, n, sizeof *f->siblings, sib_cmp);
    return 0;
}

/* The field named name in r, appended if absent (fields come sorted). */
static struct spro_local_field *field_at(struct spro_local_record *r, size_t *cap, const char *name)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i].name, name) == 0)
            return &r->fields[i];
    if (r->nfields == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        r->fields = realloc(r->fields, *cap * sizeof *r->fields);
        if (r->fields == NULL)
            SPRO_BUG("out of memory");
    }
    struct spro_local_field *f = &r->fields[r->nfields++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

static int field_cmp(const void *a, const void *b)
{
    return strcmp(((const struct spro_local_field *)a)->name,
                  ((const struct spro_local_field *)b)->name);
}

int spro_local_get(struct spro_local *l, const char *rtype, const char *rid,
                   struct spro_local_record **out, char *why, size_t whylen)
{
    *out = NULL;
    struct spro_local_record *r = calloc(1, sizeof *r);
    if (r == NULL)
        SPRO_BUG("out of memory");
    bool found;
    int rc = 0;
    if (strlen(rtype) > SPRO_LOCAL_RTYPE_MAX || strlen(rid) > SPRO_LOCAL_UUID_CHARS)
        rc = fail(SPRO_ENOENT, why, whylen, "no record %s %s on this device", rtype, rid);
    if (rc == 0)
        rc = record_ben(l, rtype, rid, &found, r->ben, why, whylen);
    if (rc == 0 && !found)
        rc = fail(SPRO_ENOENT, why, whylen, "no record %s %s on this device", rtype, rid);
    if (rc != 0) {
        spro_local_record_free(r);
        return rc;
    }
    snprintf(r->rtype, sizeof r->rtype, "%s", rtype);
    snprintf(r->rid, sizeof r->rid, "%s", rid);

    size_t cap = 0;
    sqlite3_stmt *st;
    char name[SPRO_LOCAL_NAME_MAX + 1];
    static const char *const sql[2] = {
        "SELECT name, siblings FROM fields WHERE rtype = ?1 AND rid = ?2",
        "SELECT name, val FROM pending WHERE rtype = ?1 AND rid = ?2",
    };
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        if ((rc = prep(l, sql[pass], &st, why, whylen)) != 0)
            break;
        bind_text(st, 1, rtype);
        bind_text(st, 2, rid);
        int src = SQLITE_DONE;
        while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
            const uint8_t *blob = sqlite3_column_blob(st, 1);
            size_t len = (size_t)sqlite3_column_bytes(st, 1);
            if (col_text(name, sizeof name, st, 0) != 0) {
                rc = SPRO_EINTEGRITY;
                break;
            }
            struct spro_local_field *f = field_at(r, &cap, name);
            if (pass == 0) {
                rc = load_siblings(l, r, f, blob, len);
            } else {
                rc = value_load(l, rtype, rid, name, blob, len, &r->mem, &f->pending_val);
                f->pending = rc == 0;
            }
        }
        if (rc == 0 && src != SQLITE_DONE)
            rc = db_fail(l, "cannot read fields", why, whylen);
        else if (rc == SPRO_EINTEGRITY)
            rc = fail(rc, why, whylen,
                      "%s: a value of %s %s does not open under local.key (damaged or another "
                      "key)",
                      l->path, rtype, rid);
        sqlite3_finalize(st);
    }
    if (rc != 0) {
        spro_local_record_free(r);
        return rc;
    }
    if (r->nfields > 1)
        qsort(r->fields, r->nfields, sizeof *r->fields, field_cmp);
    for (size_t i = 0; i < r->nfields; i++) {
        struct spro_local_field *f = &r->fields[i];
        if (f->pending) {
            f->shown = &f->pending_val;
        } else if (f->nsiblings > 0) {
            struct spro_sibling s[SPRO_SYNC_MAX_SIBLINGS];
            for (size_t k = 0; k < f->nsiblings; k++) {
                memset(&s[k], 0, sizeof s[k]);
                s[k].v.hlc = f->siblings[k].hlc;
                memcpy(s[k].v.origin, f->siblings[k].origin, sizeof s[k].v.origin);
            }
            f->shown = &f->siblings[spro_merge_provisional(s, f->nsiblings)].val;
        }
        f->conflict = !f->pending && f->nsiblings >= 2;
    }
    *out = r;
    return 0;
}

void spro_local_record_free(struct spro_local_record *r)
{
    if (r == NULL)
        return;
    mem_free(r->mem);
    free(r->fields);
    free(r);
}

/* Rows of (rtype, rid, ben) read before any callback runs. */
struct rows {
    size_t n, cap;
    struct row {
        char rtype[SPRO_LOCAL_RTYPE_MAX + 1];
        char rid[SPRO_LOCAL_UUID_CHARS + 1];
        char ben[SPRO_LOCAL_UUID_CHARS + 1];
    } * v;
};

static int read_rows(struct spro_local *l, const char *sql, const char *arg, struct rows *rows,
                     char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l, sql, &st, why, whylen), src = SQLITE_DONE;
    if (rc != 0)
        return rc;
    if (arg != NULL)
        bind_text(st, 1, arg);
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows->n == rows->cap) {
            rows->cap = rows->cap ? 2 * rows->cap : 32;
            rows->v = realloc(rows->v, rows->cap * sizeof *rows->v);
            if (rows->v == NULL)
                SPRO_BUG("out of memory");
        }
        struct row *w = &rows->v[rows->n++];
        if (col_text(w->rtype, sizeof w->rtype, st, 0) != 0 ||
            col_text(w->rid, sizeof w->rid, st, 1) != 0 ||
            col_text(w->ben, sizeof w->ben, st, 2) != 0)
            rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: a record row is damaged", l->path);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(l, "cannot read records", why, whylen);
    sqlite3_finalize(st);
    return rc;
}

/* "given family" from the shown string values of beneficiary ben, into
 * name (cap bytes); false when neither is known. */
static int display_name(struct spro_local *l, const char *ben, char *name, size_t cap, bool *known,
                        char *why, size_t whylen)
{
    *known = false;
    struct spro_local_record *r;
    int rc = spro_local_get(l, "beneficiary", ben, &r, why, whylen);
    if (rc == SPRO_ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    static const char *const parts[] = {"given_name", "family_name"};
    size_t o = 0;
    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < r->nfields; i++) {
            const struct spro_local_field *f = &r->fields[i];
            if (strcmp(f->name, parts[p]) != 0 || f->shown == NULL ||
                f->shown->kind != SPRO_VALUE_STR || f->shown->s.len == 0)
                continue;
            int n = snprintf(name + o, cap - o, "%s%.*s", o > 0 ? " " : "", (int)f->shown->s.len,
                             (const char *)f->shown->s.p);
            o = n < 0 ? o : (size_t)n + o >= cap ? cap - 1 : o + (size_t)n;
            *known = true;
        }
    spro_local_record_free(r);
    return 0;
}

int spro_local_list(struct spro_local *l, const char *rtype, spro_local_list_cb cb, void *arg,
                    char *why, size_t whylen)
{
    struct rows rows = {0};
    int rc = read_rows(l,
                       rtype != NULL ? "SELECT rtype, rid, ben FROM records WHERE rtype = ?1 "
                                       "ORDER BY rtype, rid"
                                     : "SELECT rtype, rid, ben FROM records ORDER BY rtype, rid",
                       rtype, &rows, why, whylen);
    char name[2 * SPRO_SYNC_MAX_VALUE + 2];
    for (size_t i = 0; rc == 0 && i < rows.n; i++) {
        bool known;
        rc = display_name(l, rows.v[i].ben, name, sizeof name, &known, why, whylen);
        if (rc == 0)
            rc = cb(arg, rows.v[i].rtype, rows.v[i].rid, rows.v[i].ben, known ? name : NULL);
    }
    spro_memzero(name, sizeof name);
    free(rows.v);
    return rc;
}

int spro_local_conflicts(struct spro_local *l, spro_local_conflict_cb cb, void *arg, char *why,
                         size_t whylen)
{
    struct rows rows = {0};
    int rc = read_rows(l,
                       "SELECT DISTINCT f.rtype, f.rid, r.ben FROM fields f JOIN records r "
                       "ON r.rtype = f.rtype AND r.rid = f.rid WHERE f.nsiblings >= 2 AND "
                       "NOT EXISTS (SELECT 1 FROM pending p WHERE p.rtype = f.rtype AND "
                       "p.rid = f.rid AND p.name = f.name) ORDER BY f.rtype, f.rid",
                       NULL, &rows, why, whylen);
    for (size_t i = 0; rc == 0 && i < rows.n; i++) {
        struct spro_local_record *r;
        if ((rc = spro_local_get(l, rows.v[i].rtype, rows.v[i].rid, &r, why, whylen)) != 0)
            break;
        for (size_t k = 0; rc == 0 && k < r->nfields; k++)
            if (r->fields[k].conflict)
                rc = cb(arg, r, &r->fields[k]);
        spro_local_record_free(r);
    }
    free(rows.v);
    return rc;
}

static int count_rows(struct spro_local *l, const char *sql, size_t *n)
{
    sqlite3_stmt *st;
    if (prep(l, sql, &st, NULL, 0) != 0)
        return SPRO_ESTORE;
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : SPRO_ESTORE;
    if (rc == 0)
        *n = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int spro_local_quarantine(struct spro_local *l,
                          int (*fn)(uint64_t seq, const char *code, int64_t at, void *arg),
                          void *arg, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT seq, code, at FROM quarantine ORDER BY at, seq", &st, why, whylen);
    if (rc != 0)
        return rc;
    int src;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        char code[SPRO_LOCAL_NAME_MAX + 1];
        col_text(code, sizeof code, st, 1);
        rc = fn((uint64_t)sqlite3_column_int64(st, 0), code, sqlite3_column_int64(st, 2), arg);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(l, "cannot read the quarantine", why, whylen);
    sqlite3_finalize(st);
    return rc;
}

int spro_local_counts(struct spro_local *l, size_t *outbox, size_t *quarantine)
{
    int rc = count_rows(l, "SELECT count(*) FROM outbox", outbox);
    return rc != 0 ? rc : count_rows(l, "SELECT count(*) FROM quarantine", quarantine);
}

/* ---- Push ---- */

struct spro_local_batch {
    struct spro_msg msg;
    size_t n;
    struct spro_wire_op ops[SPRO_SYNC_MAX_OPS];
    struct spro_buf pts[SPRO_SYNC_MAX_OPS]; /* the ops' plaintexts (decoded in place) */
    struct spro_arena arenas[SPRO_SYNC_MAX_OPS];
};

void spro_local_batch_free(struct spro_local_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < SPRO_SYNC_MAX_OPS; i++) {
        wipe_free(&b->pts[i]);
        if (b->arenas[i].base != NULL)
            spro_memzero(b->arenas[i].base, b->arenas[i].cap);
        free(b->arenas[i].base);
    }
    free(b);
}

const struct spro_msg *spro_local_batch_msg(const struct spro_local_batch *b)
{
    return &b->msg;
}

size_t spro_local_batch_size(const struct spro_local_batch *b)
{
    return b->n;
}

/* Opens and decodes outbox op seq (sealed, len bytes) into b's slot i. */
static int batch_add(struct spro_local *l, struct spro_local_batch *b, size_t i, uint64_t seq,
                     const uint8_t *sealed, size_t len, char *why, size_t whylen)
{
    if (len <= SPRO_SEAL_OVERHEAD)
        return fail(SPRO_EINTEGRITY, why, whylen, "%s: outbox op %llu is damaged", l->path,
                    (unsigned long long)seq);
    size_t ptlen = len - SPRO_SEAL_OVERHEAD;
    struct spro_buf *pt = &b->pts[i];
    pt->len = 0;
    uint8_t *tmp = malloc(ptlen);
    if (tmp == NULL)
        SPRO_BUG("out of memory");
    uint8_t ad[sizeof OP_AD + 8];
    op_ad(ad, seq);
    int rc = spro_crypto_open(tmp, sealed, len, ad, sizeof ad, l->key);
    if (rc == 0)
        spro_buf_append(pt, tmp, ptlen);
    spro_memzero(tmp, ptlen);
    free(tmp);
    if (rc != 0)
        return fail(SPRO_EINTEGRITY, why, whylen,
                    "%s: outbox op %llu does not open under local.key", l->path,
                    (unsigned long long)seq);
    struct spro_arena *a = &b->arenas[i];
    a->cap = SPRO_PROTO_ARENA_BYTES(ptlen);
    a->len = 0;
    a->base = malloc(a->cap);
    if (a->base == NULL)
        SPRO_BUG("out of memory");
    struct spro_msg m;
    rc = spro_proto_decode_sync(pt->data, pt->len, a, &m);
    if (rc == 0 && (m.type != SPRO_MSG_PUSH || m.u.push.nops != 1 || m.u.push.ops[0].seq != seq))
        rc = SPRO_EINTEGRITY;
    if (rc != 0)
        return fail(rc, why, whylen, "%s: outbox op %llu cannot be decoded (%s)", l->path,
                    (unsigned long long)seq, spro_strerror(rc));
    b->ops[i] = m.u.push.ops[0];
    return 0;
}

/* Bytes of the encoding of b's ops [0..n). */
static int batch_encoded(struct spro_local_batch *b, size_t n, size_t *len)
{
    struct spro_msg m = {.type = SPRO_MSG_PUSH};
    m.u.push = (struct spro_msg_push){b->ops, n};
    struct spro_buf enc = {0};
    int rc = spro_proto_encode(&m, &enc);
    *len = enc.len;
    wipe_free(&enc);
    return rc;
}

int spro_local_push_next(struct spro_local *l, size_t max_ops, struct spro_local_batch **out,
                         char *why, size_t whylen)
{
    if (max_ops == 0)
        SPRO_BUG("spro_local_push_next: max_ops is 0");
    if (max_ops > SPRO_SYNC_MAX_OPS)
        max_ops = SPRO_SYNC_MAX_OPS;
    *out = NULL;
    struct spro_local_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        SPRO_BUG("out of memory");
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT seq, op FROM outbox ORDER BY seq LIMIT ?1", &st, why, whylen);
    if (rc != 0) {
        spro_local_batch_free(b);
        return rc;
    }
    sqlite3_bind_int64(st, 1, (int64_t)max_ops);
    /* Each op is stored as a one-op push: the envelope (env bytes, measured
     * on the first op) plus the op.  A batch takes the envelope once, and
     * its array header grows by 2 bytes past 15 ops. */
    size_t total = 0, env = 0;
    int src = SQLITE_DONE;
    while (rc == 0 && b->n < max_ops && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const uint8_t *sealed = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        size_t ptlen = len > SPRO_SEAL_OVERHEAD ? len - SPRO_SEAL_OVERHEAD : 0;
        if (b->n > 0 && total + (ptlen > env ? ptlen - env : 0) > SPRO_LOCAL_PUSH_MAX)
            break;
        if (seq <= 0) {
            rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: an outbox seq is damaged", l->path);
            break;
        }
        if ((rc = batch_add(l, b, b->n, (uint64_t)seq, sealed, len, why, whylen)) != 0)
            break;
        if (b->n == 0) {
            /* One op alone, then twice: the difference is the op. */
            b->ops[1] = b->ops[0];
            size_t one, two;
            if ((rc = batch_encoded(b, 1, &one)) != 0 || (rc = batch_encoded(b, 2, &two)) != 0) {
                rc = fail(rc, why, whylen, "the outbox cannot be encoded (%s)", spro_strerror(rc));
                break;
            }
            env = 2 * one > two ? 2 * one - two : 0;
            total = env + 2;
        }
        total += ptlen > env ? ptlen - env : 0;
        b->n++;
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW)
        rc = db_fail(l, "cannot read the outbox", why, whylen);
    sqlite3_finalize(st);
    if (rc != 0 || b->n == 0) {
        spro_local_batch_free(b);
        return rc;
    }
    /* Checked, not trusted: cut further should the encoding be larger. */
    for (;;) {
        size_t elen;
        if ((rc = batch_encoded(b, b->n, &elen)) != 0) {
            spro_local_batch_free(b);
            return fail(rc, why, whylen, "the outbox cannot be encoded (%s)", spro_strerror(rc));
        }
        if (elen <= SPRO_LOCAL_PUSH_MAX || b->n == 1)
            break;
        b->n--;
    }
    /* The ops of the batch are being sent: the first time, note how many
     * pull answers the device had stored (see apply_result). */
    if ((rc = prep(l,
                   "UPDATE outbox SET sent_pulls = COALESCE((SELECT value FROM meta WHERE key = "
                   "'pulls'), 0) WHERE seq <= ?1 AND sent_pulls IS NULL",
                   &st, why, whylen)) == 0) {
        sqlite3_bind_int64(st, 1, (int64_t)b->ops[b->n - 1].seq);
        rc = step_write(l, st, why, whylen);
    }
    if (rc != 0) {
        spro_local_batch_free(b);
        return rc;
    }
    b->msg.type = SPRO_MSG_PUSH;
    b->msg.u.push = (struct spro_msg_push){b->ops, b->n};
    *out = b;
    return 0;
}

/* Replaces the stored siblings of one field (no-op for a record this
 * device no longer holds).  pulled: the number of the pull answer storing
 * them, or -1 for an answer to a push (the field keeps its number). */
static int put_field(struct spro_local *l, const char *rtype, const char *rid, const char *name,
                     const struct spro_buf *blob, size_t n, int64_t pulled, char *why,
                     size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l,
                  "INSERT OR REPLACE INTO fields(rtype, rid, name, nsiblings, siblings, pulled) "
                  "SELECT ?1, ?2, ?3, ?4, ?5, CASE WHEN ?6 >= 0 THEN ?6 ELSE COALESCE("
                  "(SELECT pulled FROM fields WHERE rtype = ?1 AND rid = ?2 AND name = ?3), 0) "
                  "END WHERE EXISTS (SELECT 1 FROM records WHERE rtype = ?1 AND rid = ?2)",
                  &st, why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, rtype);
    bind_text(st, 2, rid);
    bind_text(st, 3, name);
    sqlite3_bind_int64(st, 4, (int64_t)n);
    bind_blob(st, 5, blob->data, blob->len);
    sqlite3_bind_int64(st, 6, pulled);
    return step_write(l, st, why, whylen);
}

/* One integer from a query (text parameters ?1..?3 when not NULL, an
 * integer ?4 when the query has one); *v = 0 when there is no row. */
static int query_int(struct spro_local *l, const char *sql, const char *a, const char *b,
                     const char *c, int64_t d, int64_t *v, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l, sql, &st, why, whylen);
    if (rc != 0)
        return rc;
    if (a != NULL)
        bind_text(st, 1, a);
    if (b != NULL)
        bind_text(st, 2, b);
    if (c != NULL)
        bind_text(st, 3, c);
    if (sqlite3_bind_parameter_count(st) >= 4)
        sqlite3_bind_int64(st, 4, d);
    int src = sqlite3_step(st);
    *v = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = db_fail(l, "cannot read", why, whylen);
    sqlite3_finalize(st);
    return rc;
}

/* The siblings blob of wire siblings s[0..n), values stored (sealed). */
static void wire_sibs_blob(const struct spro_local *l, const char *rtype, const char *rid,
                           const char *name, const struct spro_wire_sibling *s, size_t n,
                           struct spro_buf *blob)
{
    struct spro_buf stored = {0};
    blob->len = 0;
    mp_array(blob, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        stored.len = 0;
        value_store(l, rtype, rid, name, &s[i].val, &stored);
        sib_write(blob, &stored, s[i].ver.hlc, s[i].ver.origin.p, s[i].ver.origin.len, s[i].by.p,
                  s[i].by.len);
    }
    spro_buf_free(&stored);
}

static bool wire_sibs_ok(const struct spro_wire_sibling *s, size_t n)
{
    char tmp[SPRO_LOCAL_NAME_MAX + 1];
    if (n < 1 || n > SPRO_SYNC_MAX_SIBLINGS)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!wire_cstr(tmp, sizeof tmp, &s[i].ver.origin) ||
            !wire_cstr(tmp, sizeof tmp, &s[i].by) || s[i].ver.hlc < 1 || s[i].ver.hlc > INT64_MAX ||
            s[i].val.kind > SPRO_VALUE_STR)
            return false;
    return true;
}

/* Stores what an ack or a conflict says of op's fields. */
static int apply_result(struct spro_local *l, const struct spro_wire_op *op,
                        const struct spro_wire_result *res, char *why, size_t whylen)
{
    char rtype[SPRO_LOCAL_RTYPE_MAX + 1], rid[SPRO_LOCAL_UUID_CHARS + 1],
        name[SPRO_LOCAL_NAME_MAX + 1];
    if (!wire_cstr(rtype, sizeof rtype, &op->rtype) || !wire_cstr(rid, sizeof rid, &op->rid))
        return 0; /* not an op this device wrote: nothing to key it with */
    struct spro_buf blob = {0};
    int64_t sent = 0, pulled = 0;
    int rc = query_int(l, "SELECT sent_pulls FROM outbox WHERE seq = ?4", NULL, NULL, NULL,
                       (int64_t)op->seq, &sent, why, whylen);
    for (size_t i = 0; rc == 0 && i < op->nset; i++) {
        const struct spro_wire_edit *e = &op->set[i];
        if (!wire_cstr(name, sizeof name, &e->name))
            continue;
        /* A pull answer stored since the op was first sent may describe a
         * newer state than this answer (the op may have been applied, its
         * answer lost, and the field changed again): leave it to the pulls
         * (the next one brings the op's effect if it is newer). */
        if ((rc = query_int(l,
                            "SELECT pulled FROM fields WHERE rtype = ?1 AND rid = ?2 AND name = ?3",
                            rtype, rid, name, 0, &pulled, why, whylen)) != 0)
            break;
        if (pulled > sent)
            continue;
        const struct spro_wire_field *cf = NULL;
        for (size_t k = 0; res->status == SPRO_RESULT_CONFLICT && k < res->nfields; k++)
            if (res->fields[k].name.len == e->name.len &&
                memcmp(res->fields[k].name.p, e->name.p, e->name.len) == 0)
                cf = &res->fields[k];
        if (cf != NULL && wire_sibs_ok(cf->siblings, cf->nsiblings)) {
            wire_sibs_blob(l, rtype, rid, name, cf->siblings, cf->nsiblings, &blob);
            rc = put_field(l, rtype, rid, name, &blob, cf->nsiblings, -1, why, whylen);
        } else if (cf == NULL) {
            /* Fast-forwarded or resolved: the op's value alone, under its version. */
            struct spro_wire_sibling s = {.val = e->val, .ver = res->ver};
            s.by = (struct spro_bytes){(const uint8_t *)l->user, strlen(l->user)};
            if (wire_sibs_ok(&s, 1)) {
                wire_sibs_blob(l, rtype, rid, name, &s, 1, &blob);
                rc = put_field(l, rtype, rid, name, &blob, 1, -1, why, whylen);
            }
        }
    }
    wipe_free(&blob);
    return rc;
}

static int drop_op(struct spro_local *l, uint64_t seq, char *why, size_t whylen)
{
    static const char *const sql[] = {"DELETE FROM pending WHERE op_seq = ?1",
                                      "DELETE FROM outbox WHERE seq = ?1"};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        sqlite3_stmt *st;
        if ((rc = prep(l, sql[i], &st, why, whylen)) != 0)
            break;
        sqlite3_bind_int64(st, 1, (int64_t)seq);
        rc = step_write(l, st, why, whylen);
    }
    return rc;
}

static int quarantine(struct spro_local *l, uint64_t seq, const struct spro_bytes *code,
                      uint64_t wall_ms, char *why, size_t whylen)
{
    sqlite3_stmt *st;
    int rc = prep(l,
                  "INSERT OR REPLACE INTO quarantine(seq, code, at, op) "
                  "SELECT seq, ?2, ?3, op FROM outbox WHERE seq = ?1",
                  &st, why, whylen);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, (int64_t)seq);
    sqlite3_bind_text(st, 2, code->len > 0 ? (const char *)code->p : "", (int)code->len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)(wall_ms / 1000));
    return step_write(l, st, why, whylen);
}

int spro_local_push_done(struct spro_local *l, const struct spro_local_batch *b,
                         const struct spro_msg_push_reply *reply, uint64_t wall_ms,
                         struct spro_local_push_stats *st, spro_local_reject_cb cb, void *arg,
                         char *why, size_t whylen)
{
    struct spro_local_push_stats add = {0};
    bool done[SPRO_SYNC_MAX_OPS] = {false};
    size_t which[SPRO_SYNC_MAX_OPS]; /* result -> op index, or SIZE_MAX */
    int rc = begin(l, why, whylen);
    if (rc != 0)
        return rc;
    struct spro_hlc clock;
    rc = hlc_load(l, &clock, why, whylen);
    size_t nres = reply->nresults < SPRO_SYNC_MAX_OPS ? reply->nresults : SPRO_SYNC_MAX_OPS;
    add.unknown = reply->nresults - nres;
    for (size_t r = 0; rc == 0 && r < nres; r++) {
        const struct spro_wire_result *res = &reply->results[r];
        which[r] = SIZE_MAX;
        for (size_t i = 0; i < b->n; i++)
            if (b->ops[i].seq == res->seq && !done[i])
                which[r] = i;
        if (which[r] == SIZE_MAX) {
            add.unknown++;
            continue;
        }
        const struct spro_wire_op *op = &b->ops[which[r]];
        done[which[r]] = true;
        if (res->status == SPRO_RESULT_REJECT) {
            add.rejected++;
            rc = quarantine(l, op->seq, &res->code, wall_ms, why, whylen);
        } else {
            if (res->status == SPRO_RESULT_ACK)
                add.acked++;
            else
                add.conflicts++;
            rc = apply_result(l, op, res, why, whylen);
            if (res->ver.hlc >= 1 && res->ver.hlc <= INT64_MAX)
                spro_hlc_receive(&clock, res->ver.hlc, wall_ms, MAX_DRIFT_MS, NULL);
        }
        if (rc == 0)
            rc = drop_op(l, op->seq, why, whylen);
    }
    if (rc == 0)
        rc = hlc_save(l, &clock, why, whylen);
    if ((rc = finish(l, rc, why, whylen)) != 0)
        return rc;
    st->acked += add.acked;
    st->conflicts += add.conflicts;
    st->rejected += add.rejected;
    st->unknown += add.unknown;
    for (size_t r = 0; cb != NULL && r < nres; r++)
        if (which[r] != SIZE_MAX && reply->results[r].status == SPRO_RESULT_REJECT)
            cb(arg, &b->ops[which[r]], &reply->results[r].code);
    return 0;
}

/* ---- Pull ---- */

int spro_local_cursor(struct spro_local *l, uint8_t cursor[SPRO_SYNC_MAX_CURSOR], size_t *len,
                      char *why, size_t whylen)
{
    *len = 0;
    sqlite3_stmt *st;
    int rc = prep(l, "SELECT value FROM meta WHERE key = 'cursor'", &st, why, whylen);
    if (rc != 0)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (sqlite3_column_type(st, 0) != SQLITE_BLOB || n > SPRO_SYNC_MAX_CURSOR)
            rc = fail(SPRO_EINTEGRITY, why, whylen, "%s: the saved cursor is damaged", l->path);
        else if (n > 0)
            memcpy(cursor, sqlite3_column_blob(st, 0), n);
        *len = rc == 0 ? n : 0;
    } else if (src != SQLITE_DONE) {
        rc = db_fail(l, "cannot read the cursor", why, whylen);
    }
    sqlite3_finalize(st);
    return rc;
}

static int delete_record(struct spro_local *l, const char *rtype, const char *rid, bool fields_only,
                         char *why, size_t whylen)
{
    static const char *const sql[] = {
        "DELETE FROM fields WHERE rtype = ?1 AND rid = ?2",
        "DELETE FROM pending WHERE rtype = ?1 AND rid = ?2",
        "DELETE FROM records WHERE rtype = ?1 AND rid = ?2",
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < (fields_only ? 1u : 3u); i++) {
        sqlite3_stmt *st;
        if ((rc = prep(l, sql[i], &st, why, whylen)) != 0)
            break;
        bind_text(st, 1, rtype);
        bind_text(st, 2, rid);
        rc = step_write(l, st, why, whylen);
    }
    return rc;
}

static int pull_record(struct spro_local *l, const struct spro_wire_record *w,
                       struct spro_hlc *clock, uint64_t wall_ms, struct spro_buf *blob, char *why,
                       size_t whylen)
{
    char rtype[SPRO_LOCAL_RTYPE_MAX + 1], rid[SPRO_LOCAL_UUID_CHARS + 1],
        ben[SPRO_LOCAL_UUID_CHARS + 1], name[SPRO_LOCAL_NAME_MAX + 1];
    if (!wire_cstr(rtype, sizeof rtype, &w->rtype) || !wire_cstr(rid, sizeof rid, &w->rid) ||
        !wire_cstr(ben, sizeof ben, &w->ben))
        return fail(SPRO_EMALFORMED, why, whylen,
                    "the server sent a record whose type or id this device cannot store");
    if (w->removed)
        return delete_record(l, rtype, rid, false, why, whylen);
    sqlite3_stmt *st;
    int rc = prep(l, "INSERT OR REPLACE INTO records(rtype, rid, ben) VALUES (?1, ?2, ?3)", &st,
                  why, whylen);
    if (rc != 0)
        return rc;
    bind_text(st, 1, rtype);
    bind_text(st, 2, rid);
    bind_text(st, 3, ben);
    if ((rc = step_write(l, st, why, whylen)) != 0 ||
        (rc = delete_record(l, rtype, rid, true, why, whylen)) != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < w->nfields; i++) {
        const struct spro_wire_field *f = &w->fields[i];
        if (!wire_cstr(name, sizeof name, &f->name) || !wire_sibs_ok(f->siblings, f->nsiblings))
            return fail(SPRO_EMALFORMED, why, whylen,
                        "the server sent a field of %s %s this device cannot store", rtype, rid);
        wire_sibs_blob(l, rtype, rid, name, f->siblings, f->nsiblings, blob);
        rc = put_field(l, rtype, rid, name, blob, f->nsiblings, l->pulls, why, whylen);
        for (size_t k = 0; k < f->nsiblings; k++)
            spro_hlc_receive(clock, f->siblings[k].ver.hlc, wall_ms, MAX_DRIFT_MS, NULL);
    }
    return rc;
}

/* The server's "reset": forgets what the server sent (records, fields,
 * cursor), so that the next pull is a snapshot.  The device's own work
 * stays: the outbox, the quarantine, the pending edits and the records
 * they are on (with their fields, until the snapshot replaces them). */
static int pull_reset(struct spro_local *l, char *why, size_t whylen)
{
    static const char *const sql[] = {
        "DELETE FROM fields WHERE NOT EXISTS (SELECT 1 FROM pending AS p"
        " WHERE p.rtype = fields.rtype AND p.rid = fields.rid)",
        "DELETE FROM records WHERE NOT EXISTS (SELECT 1 FROM pending AS p"
        " WHERE p.rtype = records.rtype AND p.rid = records.rid)",
        "DELETE FROM meta WHERE key = 'cursor'",
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        if ((rc = prep(l, sql[i], &st, why, whylen)) == 0)
            rc = step_write(l, st, why, whylen);
    }
    return rc;
}

int spro_local_pull_apply(struct spro_local *l, const struct spro_msg_pull_reply *reply,
                          uint64_t wall_ms, char *why, size_t whylen)
{
    if (reply->cursor.len > SPRO_SYNC_MAX_CURSOR)
        return fail(SPRO_EMALFORMED, why, whylen, "the server's cursor is too long");
    int rc = begin(l, why, whylen);
    if (rc != 0)
        return rc;
    if (reply->reset)
        return finish(l, pull_reset(l, why, whylen), why, whylen);
    struct spro_hlc clock;
    struct spro_buf blob = {0};
    rc = hlc_load(l, &clock, why, whylen);
    if (rc == 0 && (rc = meta_get_int(l, "pulls", &l->pulls, why, whylen)) == 0)
        rc = meta_put_int(l, "pulls", ++l->pulls, why, whylen);
    for (size_t i = 0; rc == 0 && i < reply->nrecords; i++)
        rc = pull_record(l, &reply->records[i], &clock, wall_ms, &blob, why, whylen);
    wipe_free(&blob);
    if (rc == 0)
        rc = meta_put_blob(l, "cursor", reply->cursor.p, reply->cursor.len, why, whylen);
    if (rc == 0)
        rc = hlc_save(l, &clock, why, whylen);
    return finish(l, rc, why, whylen);
}
