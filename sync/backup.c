/*
 * backup.c: backups, restores and checks of a data directory (see sync.h,
 * "Backup, restore and check"), and the read-only peek at the server keys
 * that lets spro_datadir_open_ex() refuse a wrong key before it writes
 * anything (backup.h).
 *
 * A store file: it includes sqlite3.h, for the online backup API and the
 * integrity pragmas.  Backups take one read snapshot of each database and
 * copy it a bounded number of pages per step: in WAL mode a reader never
 * blocks the server's writers, and holding the snapshot across steps keeps
 * the backup from restarting whenever the server commits.
 *
 * The checks of `spro-admin check` are one table, checks[] below: a new
 * check (audit chain, every sealed field decrypts) is one more entry.
 */
#include "backup.h"
#include "store.h"
#include "files.h"
#include "sync.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#define DATA_FILE "data.db"
#define KEYS_FILE "keys.db"
#define PARTIAL ".partial"   /* suffix of a backup file being written */
#define STEP_PAGES 256       /* pages copied per backup step (1 MiB of 4 KiB pages) */
#define BUSY_RETRIES 500     /* backup steps that found the database busy, at most */
#define BUSY_SLEEP_MS 10     /* pause after such a step */
#define COPY_CHUNK (1 << 16) /* bytes per read of a plain file copy */

/* 1 if path is a directory with no entry, 0 if it has one or is no
 * directory; -errno if it cannot be read (-ENOENT: it does not exist). */
static int dir_state(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return 0;
    return spro_files__dir_empty(path);
}

static int regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Opens an existing database for reading and writing (never creating it),
 * so that a last close checkpoints and removes the -wal and -shm files as
 * the server's own connections do. */
static int open_existing(const char *path, sqlite3 **db, char *why, size_t whylen)
{
    *db = NULL;
    if (!regular_file(path)) {
        spro_files__say(why, whylen, path, "missing");
        return SPRO_ENOENT;
    }
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        int rc = spro_store__fail(*db, path, "cannot open", why, whylen);
        sqlite3_close(*db);
        *db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

/* ---- The server-key peek (backup.h) ---- */

int spro_backup__server_key_peek(const char *path, const char *name, uint8_t *pub, size_t publen,
                                 uint8_t *sealed, size_t sealedlen)
{
    char wal[PATH_MAX], uri[PATH_MAX + 32];
    int n = snprintf(wal, sizeof wal, "%s-wal", path);
    if (n < 0 || (size_t)n >= sizeof wal)
        return -ENAMETOOLONG;
    if (access(wal, F_OK) == 0)
        return SPRO_EEXISTS; /* in use, or left by a crash: only a real open reads it right */
    /* An immutable read: no lock, no -wal or -shm file, nothing written.
     * The path goes into a URI: refuse what would need escaping. */
    if (strpbrk(path, "?#%") != NULL)
        return SPRO_EEXISTS;
    n = snprintf(uri, sizeof uri, "file:%s?immutable=1", path);
    if (n < 0 || (size_t)n >= sizeof uri)
        return -ENAMETOOLONG;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = SPRO_ESTORE;
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT public, sealed FROM server_keys WHERE name = ?", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) {
            rc = SPRO_ENOENT;
        } else if (step == SQLITE_ROW) {
            const void *p = sqlite3_column_blob(st, 0), *s = sqlite3_column_blob(st, 1);
            if ((size_t)sqlite3_column_bytes(st, 0) != publen ||
                (size_t)sqlite3_column_bytes(st, 1) != sealedlen || p == NULL || s == NULL) {
                rc = SPRO_EINTEGRITY;
            } else {
                memcpy(pub, p, publen);
                memcpy(sealed, s, sealedlen);
                rc = 0;
            }
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* ---- Backup ---- */

/* Removes a partial backup file and what SQLite may have made beside it. */
static void remove_partial(const char *tmp)
{
    static const char *const tails[] = {"", "-journal", "-wal", "-shm"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        snprintf(p, sizeof p, "%s%s", tmp, tails[i]);
        unlink(p);
    }
}

/* Copies the database src into the new file dst: one snapshot of src, read
 * STEP_PAGES pages at a time, written to dst PARTIAL (mode 0600), switched
 * to a rollback journal (one self-contained file), fsync'd and renamed to
 * dst.  *bytes: the size of dst.  Nothing is left at dst on failure. */
static int backup_file(const char *src, const char *dst, uint64_t *bytes, char *why, size_t whylen)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s" PARTIAL, dst);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -ENAMETOOLONG;
    sqlite3 *from = NULL, *to = NULL;
    sqlite3_backup *b = NULL;
    int rc = open_existing(src, &from, why, whylen);
    if (rc != 0)
        return rc;
    /* The read transaction stays open across the steps: every step sees
     * the same snapshot, whatever the server commits meanwhile. */
    if (spro_store__exec(from, "BEGIN") != 0 ||
        spro_store__exec(from, "SELECT count(*) FROM sqlite_master") != 0) {
        rc = spro_store__fail(from, src, "cannot begin a read snapshot", why, whylen);
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        spro_files__say(why, whylen, tmp, strerror(errno));
        goto out;
    }
    close(fd);
    if (sqlite3_open_v2(tmp, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        rc = spro_store__fail(to, tmp, "cannot open", why, whylen);
        goto out;
    }
    if ((b = sqlite3_backup_init(to, "main", from, "main")) == NULL) {
        rc = spro_store__fail(to, tmp, "cannot start the backup", why, whylen);
        goto out;
    }
    int step, busy = 0;
    while ((step = sqlite3_backup_step(b, STEP_PAGES)) == SQLITE_OK || step == SQLITE_BUSY ||
           step == SQLITE_LOCKED) {
        if (step != SQLITE_OK) {
            if (++busy > BUSY_RETRIES)
                break;
            sqlite3_sleep(BUSY_SLEEP_MS);
        }
    }
    int fin = sqlite3_backup_finish(b);
    b = NULL;
    if (step != SQLITE_DONE || fin != SQLITE_OK) {
        rc = spro_store__fail(to, src, step == SQLITE_DONE ? "backup failed" : "backup step failed",
                              why, whylen);
        goto out;
    }
    spro_store__exec(from, "COMMIT");
    /* The copy carries the source's WAL flag: make it a plain file that
     * opens alone, read-only, without -wal or -shm files. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(to, "PRAGMA journal_mode = DELETE", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "delete") != 0) {
        sqlite3_finalize(st);
        rc = spro_store__fail(to, tmp, "cannot leave WAL mode", why, whylen);
        goto out;
    }
    sqlite3_finalize(st);
    if (sqlite3_close(to) != SQLITE_OK) {
        rc = spro_store__fail(to, tmp, "cannot close", why, whylen);
        goto out;
    }
    to = NULL;
    struct stat sb;
    if ((rc = spro_files__fsync_path(tmp, O_RDONLY)) != 0 ||
        (rc = stat(tmp, &sb) != 0 ? -errno : 0) != 0 ||
        (rc = rename(tmp, dst) != 0 ? -errno : 0) != 0) {
        spro_files__say(why, whylen, tmp, spro_strerror(rc));
        goto out;
    }
    *bytes = (uint64_t)sb.st_size;
out:
    if (b != NULL)
        sqlite3_backup_finish(b);
    if (to != NULL)
        sqlite3_close(to);
    if (from != NULL) {
        spro_store__exec(from,
                         "ROLLBACK"); /* ends the read snapshot if still open; harmless if not */
        sqlite3_close(from);
    }
    if (rc != 0)
        remove_partial(tmp);
    return rc;
}

int spro_datadir_backup(const char *dir, const char *dest, unsigned what,
                        struct spro_backup_result *res, char *why, size_t whylen)
{
    static const struct {
        unsigned bit;
        const char *name;
    } files[] = {{SPRO_BACKUP_DATA, DATA_FILE}, {SPRO_BACKUP_KEYS, KEYS_FILE}};
    struct spro_backup_result r = {0, 0};
    char src[PATH_MAX], dst[PATH_MAX];
    int rc = 0, made = 0;
    if (why != NULL)
        why[0] = '\0';
    if (res != NULL)
        *res = r;
    if (what == 0 || (what & ~(SPRO_BACKUP_DATA | SPRO_BACKUP_KEYS)) != 0)
        SPRO_BUG("spro_datadir_backup: what names no database");
    for (size_t i = 0; i < 2; i++) {
        if (!(what & files[i].bit))
            continue;
        if ((rc = spro_files__path_join(src, sizeof src, dir, files[i].name)) != 0)
            return rc;
        if (!regular_file(src)) {
            spro_files__say(why, whylen, src, "missing; is this a data directory?");
            return SPRO_ENOENT;
        }
    }
    int state = dir_state(dest);
    if (state == -ENOENT) {
        if (mkdir(dest, 0700) != 0) {
            rc = -errno;
            spro_files__say(why, whylen, dest, strerror(errno));
            return rc;
        }
        made = 1;
    } else if (state != 1) {
        spro_files__say(
            why, whylen, dest,
            state == 0 ? "already exists and is not an empty directory; a backup goes into a new "
                         "or empty one"
                       : spro_strerror(state));
        return state == 0 ? SPRO_EEXISTS : state;
    }
    /* data.db first: the keys.db taken after it holds every data key that
     * the data.db snapshot needs (keys are written before the data). */
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        if (!(what & files[i].bit))
            continue;
        if ((rc = spro_files__path_join(src, sizeof src, dir, files[i].name)) != 0 ||
            (rc = spro_files__path_join(dst, sizeof dst, dest, files[i].name)) != 0)
            break;
        rc = backup_file(src, dst, i == 0 ? &r.data_bytes : &r.keys_bytes, why, whylen);
    }
    if (rc == 0 && (rc = spro_files__fsync_path(dest, O_RDONLY | O_DIRECTORY)) != 0)
        spro_files__say(why, whylen, dest, spro_strerror(rc));
    if (rc == 0 && made)
        spro_files__fsync_parent(dest);
    if (rc != 0) {
        for (size_t i = 0; i < 2; i++)
            if (spro_files__path_join(dst, sizeof dst, dest, files[i].name) == 0 &&
                (what & files[i].bit))
                unlink(dst);
        if (made)
            rmdir(dest);
        return rc;
    }
    if (res != NULL)
        *res = r;
    return 0;
}

/* ---- Restore ---- */

/* Copies what is left to read of the descriptor in (not closed) to the
 * new file dst (mode 0600), fsync'd. */
static int copy_fd(int in, const char *dst, char *why, size_t whylen)
{
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        spro_files__say(why, whylen, dst, strerror(e));
        return -e;
    }
    static char buf[COPY_CHUNK];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        for (ssize_t done = 0; done < n && rc == 0;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno != EINTR)
                rc = -errno;
            else if (w > 0)
                done += w;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && fsync(out) != 0)
        rc = -errno;
    close(out);
    spro_memzero(buf, sizeof buf); /* it may have held a key file */
    if (rc != 0)
        spro_files__say(why, whylen, dst, spro_strerror(rc));
    return rc;
}

/* Copies the file src to the new file dst (mode 0600), fsync'd. */
static int copy_file(const char *src, const char *dst, char *why, size_t whylen)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        int e = errno;
        spro_files__say(why, whylen, src, strerror(e));
        return -e;
    }
    int rc = copy_fd(in, dst, why, whylen);
    close(in);
    return rc;
}

/* Opens the master key file (key: 1) or salt file of a restore, once: the
 * descriptor checked is the one copied.  A key file must be the file
 * itself (not a symbolic link), regular, and closed to group and others.
 * Returns the descriptor, or a negative code after saying why. */
static int open_master(const char *path, int key, char *why, size_t whylen)
{
    /* O_NONBLOCK: a FIFO in its place must not hang the open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (key ? O_NOFOLLOW : 0));
    if (fd < 0) {
        int e = errno;
        spro_files__say(why, whylen, path,
                        e == ELOOP && key ? "is a symbolic link; give the key file itself"
                                          : strerror(e));
        return e == ELOOP && key ? SPRO_EPERM : SPRO_ENOENT;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        spro_files__say(why, whylen, path, "not a regular file");
        rc = SPRO_ENOENT;
    } else if (key && (st.st_mode & 077) != 0) {
        spro_files__say(why, whylen, path,
                        "readable or writable by group or others; run: chmod 600 on it");
        rc = SPRO_EPERM;
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Removes a restore's temporary directory and what may be in it. */
static void remove_restore_tmp(const char *tmp)
{
    static const char *const names[] = {
        "master.key", "master.salt",    DATA_FILE,        DATA_FILE "-wal", DATA_FILE "-shm",
        KEYS_FILE,    KEYS_FILE "-wal", KEYS_FILE "-shm", "devices.gen",    "keys.gen"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (spro_files__path_join(p, sizeof p, tmp, names[i]) == 0)
            unlink(p);
    rmdir(tmp);
}

/* Rewrites a message that names the temporary directory to name dir. */
static void retarget(char *why, size_t whylen, const char *tmp, const char *dir)
{
    size_t t = strlen(tmp);
    if (why == NULL || strncmp(why, tmp, t) != 0)
        return;
    char rest[1024];
    snprintf(rest, sizeof rest, "%s", why + t);
    snprintf(why, whylen, "%s%s", dir, rest);
}

static int restore_into(const char *src, const char *dir, int mfd, int key,
                        const struct spro_datadir_options *o, char *why, size_t whylen);

int spro_datadir_restore(const char *src, const char *dir, const char *master_key_file,
                         const char *master_salt_file, const struct spro_datadir_options *o,
                         char *why, size_t whylen)
{
    if (why != NULL)
        why[0] = '\0';
    if ((master_key_file == NULL) == (master_salt_file == NULL)) {
        spro_files__say(
            why, whylen, dir,
            "give the master key of the backup: --master-key FILE, or --master-salt FILE with "
            "--passphrase-file FILE or --passphrase-fd N");
        return SPRO_ECONFIG;
    }
    if (master_key_file != NULL && spro_datadir_options_have_passphrase(o)) {
        spro_files__say(
            why, whylen, master_key_file,
            "a key file needs no passphrase; --passphrase-file and --passphrase-fd go with "
            "--master-salt");
        return SPRO_ECONFIG;
    }
    const char *master = master_key_file != NULL ? master_key_file : master_salt_file;
    int mfd = open_master(master, master_key_file != NULL, why, whylen);
    if (mfd < 0)
        return mfd;
    int rc = restore_into(src, dir, mfd, master_key_file != NULL, o, why, whylen);
    close(mfd);
    return rc;
}

/* The rest of spro_datadir_restore(), the master key (key: 1) or salt
 * copied from the descriptor mfd. */
static int restore_into(const char *src, const char *dir, int mfd, int key,
                        const struct spro_datadir_options *o, char *why, size_t whylen)
{
    char from[PATH_MAX], to[PATH_MAX], tmp[PATH_MAX];
    struct stat st;
    int sstate = dir_state(src);
    if (sstate < 0 || (stat(src, &st) == 0 && !S_ISDIR(st.st_mode))) {
        spro_files__say(why, whylen, src, "no such backup directory");
        return SPRO_ENOENT;
    }
    static const char *const dbs[] = {DATA_FILE, KEYS_FILE};
    for (size_t i = 0; i < 2; i++) {
        int rc = spro_files__path_join(from, sizeof from, src, dbs[i]);
        if (rc != 0)
            return rc;
        if (!regular_file(from)) {
            spro_files__say(
                why, whylen, from,
                "missing; this backup is incomplete (a restore needs both data.db and keys.db)");
            return SPRO_ENOENT;
        }
    }
    int dstate = dir_state(dir);
    if (dstate == 0 || (dstate < 0 && dstate != -ENOENT)) {
        spro_files__say(why, whylen, dir,
                        dstate == 0
                            ? "already exists and is not empty; a restore goes into a new or empty "
                              "directory"
                            : spro_strerror(dstate));
        return dstate == 0 ? SPRO_EEXISTS : dstate;
    }
    int n = snprintf(tmp, sizeof tmp, "%s.restore-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -ENAMETOOLONG;
    if (mkdtemp(tmp) == NULL) {
        int e = errno;
        spro_files__say(why, whylen, tmp, strerror(e));
        return -e;
    }
    int rc = 0;
    for (size_t i = 0; i < 2 && rc == 0; i++)
        if ((rc = spro_files__path_join(from, sizeof from, src, dbs[i])) == 0 &&
            (rc = spro_files__path_join(to, sizeof to, tmp, dbs[i])) == 0)
            rc = copy_file(from, to, why, whylen);
    if (rc == 0 &&
        (rc = spro_files__path_join(to, sizeof to, tmp, key ? "master.key" : "master.salt")) == 0)
        rc = copy_fd(mfd, to, why, whylen);
    /* The normal open proves it: migrations, master key, server keys. */
    struct spro_datadir *dd = NULL;
    if (rc == 0 && (rc = spro_datadir_open_ex(tmp, o, &dd, why, whylen)) != 0)
        retarget(why, whylen, tmp, dir);
    spro_datadir_close(dd);
    if (rc == 0)
        rc = spro_files__publish_dir(tmp, dir, why, whylen);
    if (rc != 0)
        remove_restore_tmp(tmp);
    return rc;
}

/* ---- Check ---- */

struct check_ctx {
    const char *dir;
    const struct spro_datadir_options *o;
    struct spro_datadir *dd; /* set by the check "server keys open", for later checks */
};

/* Runs a PRAGMA on dir/file: integrity_check passes on the one row "ok",
 * foreign_key_check on no row. */
static int pragma_check(struct check_ctx *c, const char *file, int integrity, char *detail,
                        size_t cap)
{
    char path[PATH_MAX];
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int rc = spro_files__path_join(path, sizeof path, c->dir, file);
    if (rc != 0 || (rc = open_existing(path, &db, detail, cap)) != 0)
        return rc;
    const char *sql = integrity ? "PRAGMA integrity_check" : "PRAGMA foreign_key_check";
    long rows = 0;
    int step = SQLITE_ERROR;
    char first[256] = "";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            if (rows++ > 0)
                continue;
            if (integrity)
                snprintf(first, sizeof first, "%s", (const char *)sqlite3_column_text(st, 0));
            else
                snprintf(first, sizeof first, "table %s row %lld references %s",
                         (const char *)sqlite3_column_text(st, 0),
                         (long long)sqlite3_column_int64(st, 1),
                         (const char *)sqlite3_column_text(st, 2));
        }
    }
    if (step != SQLITE_DONE) {
        rc = spro_store__fail(db, file, "cannot run the check", detail, cap);
    } else if (integrity ? rows == 1 && strcmp(first, "ok") == 0 : rows == 0) {
        snprintf(detail, cap, "%s: ok", file);
        rc = 0;
    } else {
        snprintf(detail, cap, "%s: %ld problem%s, first: %s", file, rows, rows == 1 ? "" : "s",
                 first);
        rc = SPRO_EINTEGRITY;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static int check_data_integrity(struct check_ctx *c, char *detail, size_t cap)
{
    return pragma_check(c, DATA_FILE, 1, detail, cap);
}

static int check_data_foreign_keys(struct check_ctx *c, char *detail, size_t cap)
{
    return pragma_check(c, DATA_FILE, 0, detail, cap);
}

static int check_keys_integrity(struct check_ctx *c, char *detail, size_t cap)
{
    return pragma_check(c, KEYS_FILE, 1, detail, cap);
}

static int check_keys_foreign_keys(struct check_ctx *c, char *detail, size_t cap)
{
    return pragma_check(c, KEYS_FILE, 0, detail, cap);
}

/* Opens the directory the normal way: the master key, then the server keys
 * sealed under its subkey.  Keeps it open for the checks after it. */
static int check_server_keys(struct check_ctx *c, char *detail, size_t cap)
{
    int rc = spro_datadir_open_ex(c->dir, c->o, &c->dd, detail, cap);
    if (rc == 0) {
        char fp[SPRO_FINGERPRINT_CHARS];
        spro_crypto_fingerprint(fp, spro_datadir_noise_public(c->dd));
        snprintf(detail, cap, "both open under the master key; server key fingerprint %s", fp);
    }
    return rc;
}

/* Every sealed value of data.db opens under its beneficiary's data key;
 * values whose key was destroyed (erased beneficiaries, e.g. in a data.db
 * older than their erasure) are counted apart, not as failures. */
static int check_sealed(struct check_ctx *c, char *detail, size_t cap)
{
    if (c->dd == NULL) {
        snprintf(detail, cap, "not run: the data directory did not open");
        return SPRO_EINTEGRITY;
    }
    return spro_subject__check_sealed(c->dd, detail, cap);
}

/* The audit log chains from its genesis, and every checkpoint is signed
 * and matches it (spro_audit_verify()). */
static int check_audit(struct check_ctx *c, char *detail, size_t cap)
{
    if (c->dd == NULL) {
        snprintf(detail, cap, "not run: the data directory did not open");
        return SPRO_EINTEGRITY;
    }
    struct spro_audit_report r;
    int rc = spro_audit_verify(c->dd, &r);
    if (rc != 0)
        snprintf(detail, cap, "%s", r.why[0] ? r.why : spro_strerror(rc));
    else
        snprintf(detail, cap, "%lld entries chain, %lld checkpoints signed (last at seq %lld)",
                 (long long)r.entries, (long long)r.checkpoints, (long long)r.last_checkpoint);
    return rc;
}

/* The checks, in order.  A check that needs the open directory runs after
 * "server keys open" and fails at once when c->dd is NULL. */
static const struct {
    const char *name;
    int (*fn)(struct check_ctx *c, char *detail, size_t cap);
} checks[] = {
    {"data.db integrity", check_data_integrity},
    {"data.db foreign keys", check_data_foreign_keys},
    {"keys.db integrity", check_keys_integrity},
    {"keys.db foreign keys", check_keys_foreign_keys},
    {"server keys open", check_server_keys},
    {"every sealed field decrypts", check_sealed},
    {"audit log chain", check_audit},
};

int spro_datadir_check(const char *dir, const struct spro_datadir_options *o,
                       void (*report)(const char *name, int rc, const char *detail, void *arg),
                       void *arg)
{
    struct check_ctx c = {dir, o, NULL};
    int failed = 0;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        char detail[768] = "";
        int rc = checks[i].fn(&c, detail, sizeof detail);
        if (rc != 0)
            failed++;
        report(checks[i].name, rc, detail[0] ? detail : spro_strerror(rc), arg);
    }
    spro_datadir_close(c.dd);
    return failed;
}
