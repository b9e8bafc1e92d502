/*
 * test_backup.c: end-to-end tests of the data-protection commands against
 * real processes: `spro-admin backup` while spro-server runs and a device
 * pushes, `restore` into a fresh directory that a new server then serves
 * (the device pulls what it pushed), `check` on a sound and on a damaged
 * database, a master key from a passphrase (Argon2id, master.salt) for
 * spro-admin and spro-server, and a server that refuses to start (key file
 * others can read, wrong passphrase, missing keys.db) leaving its data
 * directory exactly as it was.
 *
 * usage: test_e2e_backup SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "device.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* Argon2id at its cheapest: tests must not spend seconds per command. */
#define KDF_OPS "1"
#define KDF_MEM "64K"

static const char *tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", h_tmpdir(), name);
    return buf;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror(path);
        exit(1);
    }
    close(fd);
}

/* ---- Pushing and pulling through the raw device (as test_sync.c) ---- */

#define MAX_PUSHES 4000

/* The beneficiaries a device pulled. */
struct pulled {
    char (*ids)[37];
    size_t n;
};

static void note_ben(const struct spro_wire_record *r, void *arg)
{
    struct pulled *p = arg;
    if (dv_bytes_is(r->rtype, "beneficiary") && r->rid.len == 36 && p->n < MAX_PUSHES) {
        memcpy(p->ids[p->n], r->rid.p, 36);
        p->ids[p->n++][36] = '\0';
    }
}

/* A device pushing one new beneficiary after another until told to stop. */
struct pusher {
    struct dv_env *e;
    struct dv_dev *d;
    char bens[MAX_PUSHES][37];
    size_t acked; /* bens[0..acked) were acknowledged (atomic) */
    int stop;     /* atomic */
    int failed;
};

static void *push_loop(void *arg)
{
    struct pusher *p = arg;
    uint64_t hlc = (uint64_t)time(NULL) * 1000 << 16;
    for (size_t i = 0; i < MAX_PUSHES && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE); i++) {
        dv_uuid(p->bens[i], 0xbac0000u + (uint32_t)i, 0x77);
        if (dv_push_ben(p->e, p->d, i + 1, p->bens[i], "Backup-Test", hlc + i) != 0) {
            p->failed = 1;
            break;
        }
        __atomic_store_n(&p->acked, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* ---- Helpers on databases and directories ---- */

/* Rows of a one-column query on the database file at path (read only). */
static long count_rows(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Whether any wrapped data key of the keys.db at keys appears in the file
 * at path. */
static int any_key_in(const char *keys, const char *path, long *nkeys)
{
    static unsigned char buf[1 << 23];
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 1;
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int found = 0;
    *nkeys = 0;
    if (sqlite3_open_v2(keys, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT wrapped FROM data_keys", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) {
            (*nkeys)++;
            /* The sealed key itself: past the version, epoch and nonce. */
            const unsigned char *w = sqlite3_column_blob(st, 0);
            if (sqlite3_column_bytes(st, 0) == 77 && memmem(buf, len, w + 29, 32) != NULL)
                found = 1;
        }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return found;
}

/* A picture of a directory: every entry with its size, modification time
 * and a hash of its content, and the directory's own modification time. */
static void snapshot(const char *dir, char *out, size_t cap)
{
    struct stat st;
    size_t n = 0;
    out[0] = '\0';
    if (stat(dir, &st) == 0)
        n += (size_t)snprintf(out + n, cap - n, ". %lld.%09ld\n", (long long)st.st_mtim.tv_sec,
                              st.st_mtim.tv_nsec);
    struct dirent **names;
    int k = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < k; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && n < cap) {
            uint64_t h = 1469598103934665603ull;
            FILE *f = fopen(path, "rb");
            int c;
            while (f != NULL && (c = fgetc(f)) != EOF)
                h = (h ^ (uint64_t)c) * 1099511628211ull;
            if (f != NULL)
                fclose(f);
            n += (size_t)snprintf(out + n, cap - n, "%s %lld %lld.%09ld %o %016llx\n",
                                  names[i]->d_name, (long long)st.st_size,
                                  (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                                  (unsigned)(st.st_mode & 07777), (unsigned long long)h);
        }
        free(names[i]);
    }
    free(names);
}

/* Whether a file name in dir starts with prefix. */
static int has_entry(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            found = 1;
    if (d != NULL)
        closedir(d);
    return found;
}

/* ---- Tests ---- */

static void test_backup_while_pushing_then_restore(void)
{
    char out[8192], dest[600], restored[600], key[700], path[800];
    struct dv_env e;
    CHECK_EQ(dv_env_start(&e, "live", NULL), 0);
    struct dv_dev d;
    CHECK_EQ(dv_enrolled(&e, &d, "alice"), 0);

    static struct pusher p;
    memset(&p, 0, sizeof p);
    p.e = &e;
    p.d = &d;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, push_loop, &p), 0);
    while (__atomic_load_n(&p.acked, __ATOMIC_ACQUIRE) < 20 && !p.failed)
        usleep(2000);
    size_t before = __atomic_load_n(&p.acked, __ATOMIC_ACQUIRE);
    tmp_path(dest, sizeof dest, "live-backup");
    char live[600];
    tmp_path(live, sizeof live, "live");
    int rc = h_admin(out, sizeof out, "--data", live, "backup", dest, NULL);
    size_t during = __atomic_load_n(&p.acked, __ATOMIC_ACQUIRE);
    /* The pushes went on during the backup and after it. */
    while (__atomic_load_n(&p.acked, __ATOMIC_ACQUIRE) < during + 5 && !p.failed)
        usleep(2000);
    __atomic_store_n(&p.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    CHECK_EQ(rc, 0);
    CHECK(!p.failed);
    CHECK(strstr(out, "/data.db (") != NULL && strstr(out, "/keys.db (") != NULL);
    CHECK(strstr(out, "master.key; back it up separately") != NULL);

    /* The backup: two single-file databases, mode 0600, no master key. */
    struct stat st;
    snprintf(path, sizeof path, "%s/data.db", dest);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/keys.db", dest);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK(!has_entry(dest, "master"));
    CHECK(!has_entry(dest, "data.db-"));
    CHECK(!has_entry(dest, "keys.db-"));
    CHECK(!has_entry(dest, "devices.gen"));

    /* data.db alone holds no data key: no such table, and none of the
     * wrapped keys of keys.db is anywhere in its bytes. */
    char data[800], keys[800];
    snprintf(data, sizeof data, "%s/data.db", dest);
    snprintf(keys, sizeof keys, "%s/keys.db", dest);
    CHECK_EQ(count_rows(data, "SELECT count(*) FROM sqlite_master WHERE name = 'data_keys'"), 0);
    CHECK_INT(count_rows(data, "SELECT count(*) FROM records"), >=, (long)before);
    long nkeys = 0;
    CHECK(!any_key_in(keys, data, &nkeys));
    CHECK_INT(nkeys, >=, (long)before);  /* one key per pushed beneficiary */
    CHECK(!has_entry(dest, "data.db-")); /* opening it read-only made no file */

    /* Restore into a fresh directory and serve it: the device pulls every
     * beneficiary acknowledged before the backup began. */
    tmp_path(restored, sizeof restored, "restored");
    snprintf(key, sizeof key, "%s/master.key", live);
    CHECK_EQ(
        h_admin(out, sizeof out, "restore", dest, "--data", restored, "--master-key", key, NULL),
        0);
    CHECK(strstr(out, "restored ") != NULL && strstr(out, "server key fingerprint: ") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", restored, "check", NULL), 0);
    CHECK(strstr(out, " checks passed") != NULL && strstr(out, "FAILED") == NULL);
    CHECK(strstr(out, "ok      every sealed field decrypts: ") != NULL);
    CHECK_EQ(dv_env_stop(&e), 0);

    struct dv_env r = e;
    r.dd = NULL;
    CHECK_EQ(h_server_start(&r.srv, restored, NULL), 0);
    struct h_response resp;
    CHECK_EQ(dv_handshake(&r, &d, NULL, &resp), 0);
    static char ids[MAX_PUSHES][37];
    struct pulled got = {ids, 0};
    CHECK_EQ(dv_pull_all(&r, &d, 200, note_ben, &got), 0);
    CHECK_INT(got.n, >=, before);
    CHECK_INT(got.n, <=, p.acked);
    for (size_t i = 0; i < before; i++) {
        int found = 0;
        for (size_t j = 0; j < got.n && !found; j++)
            found = strcmp(ids[j], p.bens[i]) == 0;
        if (!found)
            CHECK__FAIL("beneficiary %s, pushed before the backup, is not in the restore",
                        p.bens[i]);
    }
    dv_dev_end_session(&d);
    CHECK_EQ(h_server_stop(&r.srv, 5000), 0);
}

static void test_bad_inputs(void)
{
    char out[8192], dest[600], target[600], path[800], before[4096], after[4096];
    char dir[600], other[600], key[700], otherkey[700];
    snprintf(dir, sizeof dir, "%s", h_make_datadir("bad-src"));
    snprintf(other, sizeof other, "%s", h_make_datadir("bad-other"));
    snprintf(key, sizeof key, "%s/master.key", dir);
    snprintf(otherkey, sizeof otherkey, "%s/master.key", other);
    tmp_path(dest, sizeof dest, "bad-backup");
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "backup", dest, NULL), 0);

    /* A backup into a non-empty DEST: refused, DEST unchanged. */
    snapshot(dest, before, sizeof before);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "backup", dest, NULL), 1);
    CHECK(strstr(out, "not an empty directory") != NULL);
    snapshot(dest, after, sizeof after);
    CHECK_STR(before, after);
    CHECK_EQ(
        h_admin(out, sizeof out, "--data", dir, "backup", dest, "--data-only", "--keys-only", NULL),
        2);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "backup", NULL), 2);
    CHECK(strstr(out, "missing DEST") != NULL);

    /* An incomplete SRC (a --data-only backup): refused, nothing made. */
    char partial[600];
    tmp_path(partial, sizeof partial, "bad-partial");
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "backup", partial, "--data-only", NULL), 0);
    CHECK(strstr(out, "keys.db") == NULL);
    tmp_path(target, sizeof target, "bad-target");
    CHECK_EQ(
        h_admin(out, sizeof out, "restore", partial, "--data", target, "--master-key", key, NULL),
        1);
    CHECK(strstr(out, "keys.db: missing; this backup is incomplete") != NULL);
    CHECK(access(target, F_OK) != 0);
    tmp_path(path, sizeof path, "no-such-backup");
    CHECK_EQ(h_admin(out, sizeof out, "restore", path, "--data", target, "--master-key", key, NULL),
             1);
    CHECK(strstr(out, "no such backup directory") != NULL);

    /* The wrong master key: refused, nothing left behind. */
    CHECK_EQ(
        h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-key", otherkey, NULL),
        1);
    CHECK(strstr(out, "do not open under this master key") != NULL);
    CHECK(access(target, F_OK) != 0);
    CHECK(!has_entry(h_tmpdir(), "bad-target.restore-"));

    /* A non-empty DIR, a missing master key, a missing --data. */
    CHECK_EQ(h_admin(out, sizeof out, "restore", dest, "--data", other, "--master-key", key, NULL),
             1);
    CHECK(strstr(out, "already exists and is not empty") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "restore", dest, "--data", target, NULL), 2);
    CHECK(strstr(out, "--master-key FILE") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "restore", dest, "--master-key", key, NULL), 2);
    CHECK(strstr(out, "missing --data DIR") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-key", key,
                     "--passphrase-file", key, NULL),
             2);
    /* A key file others can read is refused as a source too. */
    char loose[700];
    tmp_path(loose, sizeof loose, "loose.key");
    FILE *f = fopen(key, "rb"), *g = fopen(loose, "wb");
    char kb[32];
    CHECK(f != NULL && g != NULL && fread(kb, 1, 32, f) == 32 && fwrite(kb, 1, 32, g) == 32);
    fclose(f);
    fclose(g);
    CHECK_EQ(chmod(loose, 0644), 0);
    CHECK_EQ(
        h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-key", loose, NULL),
        1);
    CHECK(strstr(out, "chmod 600") != NULL);
    CHECK(access(target, F_OK) != 0);
    /* A symbolic link, even to a 0600 key file, is refused: the file whose
     * mode is checked must be the file copied (no swap in between). */
    char link[700];
    tmp_path(link, sizeof link, "link.key");
    CHECK_EQ(symlink(key, link), 0);
    CHECK_EQ(
        h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-key", link, NULL), 1);
    CHECK(strstr(out, "is a symbolic link") != NULL);
    CHECK(access(target, F_OK) != 0);

    /* With the right key, the same restore works into an empty DIR. */
    CHECK_EQ(mkdir(target, 0700), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", target, "restore", dest, "--master-key", key, NULL),
             0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", target, "info", NULL), 0);
}

static void test_check_damaged(void)
{
    char out[8192], dest[600], dir[600], target[600], path[800], key[700];
    snprintf(dir, sizeof dir, "%s", h_make_datadir("sound"));
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "check", NULL), 0);
    CHECK(strstr(out, "ok      data.db integrity") != NULL);
    CHECK(strstr(out, "ok      keys.db foreign keys") != NULL);
    CHECK(strstr(out, "ok      server keys open") != NULL);
    CHECK(strstr(out, " checks passed") != NULL && strstr(out, "FAILED") == NULL);

    /* A copy with one page of data.db overwritten. */
    tmp_path(dest, sizeof dest, "sound-backup");
    tmp_path(target, sizeof target, "damaged");
    snprintf(key, sizeof key, "%s/master.key", dir);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "backup", dest, NULL), 0);
    CHECK_EQ(h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-key", key, NULL),
             0);
    snprintf(path, sizeof path, "%s/data.db", target);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    long pages = (long)(st.st_size / 4096);
    CHECK_INT(pages, >, 4);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    static unsigned char junk[4096];
    memset(junk, 0xa5, sizeof junk);
    CHECK_EQ(fseek(f, (pages - 2) * 4096, SEEK_SET), 0);
    CHECK_EQ(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);
    CHECK_EQ(h_admin(out, sizeof out, "--data", target, "check", NULL), 1);
    CHECK(strstr(out, "FAILED  data.db integrity: ") != NULL);
    CHECK(strstr(out, "ok      keys.db integrity") != NULL);
    CHECK(strstr(out, "checks failed: data.db integrity") != NULL);

    /* keys.db under another master key: the key check fails. */
    char other[600];
    snprintf(other, sizeof other, "%s", h_make_datadir("sound-other"));
    snprintf(path, sizeof path, "%s/master.key", target);
    snprintf(key, sizeof key, "%s/master.key", other);
    CHECK_EQ(rename(key, path), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", target, "check", NULL), 1);
    CHECK(strstr(out, "FAILED  server keys open: ") != NULL);
    CHECK(strstr(out, "server keys open") != NULL);
}

/* A passphrase directory made with the cheapest Argon2id, its passphrase
 * in DIR-pass (mode 0600) and a wrong one in DIR-wrong. */
static void make_salted(const char *name, char *dir, char *pass, char *wrong, size_t cap)
{
    char out[4096];
    tmp_path(dir, cap, name);
    snprintf(pass, cap, "%s-pass", dir);
    snprintf(wrong, cap, "%s-wrong", dir);
    write_file(pass, "correct horse battery staple\n", 0600);
    write_file(wrong, "correct horse battery stapler\n", 0600);
    if (h_admin(out, sizeof out, "--data", dir, "init", "--passphrase-file", pass, "--kdf-ops",
                KDF_OPS, "--kdf-mem", KDF_MEM, NULL) != 0) {
        fprintf(stderr, "init with a passphrase failed: %s\n", out);
        exit(1);
    }
}

static void test_passphrase_admin(void)
{
    char out[8192], dir[600], pass[700], wrong[700], path[800];
    make_salted("salted", dir, pass, wrong, 600);
    struct stat st;
    snprintf(path, sizeof path, "%s/master.key", dir);
    CHECK(stat(path, &st) != 0);
    snprintf(path, sizeof path, "%s/master.salt", dir);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    char text[512] = "";
    CHECK(f != NULL);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    static const char head[] = "spro-sync master salt v1\nalgorithm argon2id13\nopslimit 1\n"
                               "memlimit 65536\nsalt ";
    CHECK(strncmp(text, head, sizeof head - 1) == 0);
    CHECK_EQ(strlen(text), sizeof head - 1 + 32 + 1);

    /* No passphrase: a clear refusal naming the options. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", NULL), 1);
    CHECK(strstr(out, "master.salt") != NULL && strstr(out, "--passphrase-file FILE") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", "--passphrase-file", wrong, NULL), 1);
    CHECK(strstr(out, "wrong passphrase") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", "--passphrase-file", pass, NULL), 0);
    CHECK(strstr(out, "schema: ") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "--passphrase-file", pass, "org", "add",
                     "cio-a", "--name", "CIO A", "--kind", "cio", NULL),
             0);
    /* --passphrase-fd: the test's own descriptor, inherited by spro-admin. */
    int fd = open(pass, O_RDONLY);
    CHECK(fd > 2);
    char fds[16];
    snprintf(fds, sizeof fds, "%d", fd);
    int rc = h_admin(out, sizeof out, "--data", dir, "user", "add", "ana", "--org", "cio-a",
                     "--passphrase-fd", fds, NULL);
    close(fd);
    CHECK_EQ(rc, 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", "--passphrase-fd", "x", NULL), 2);
    /* A passphrase file others can read, an empty one, a key-file directory. */
    CHECK_EQ(chmod(pass, 0644), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", "--passphrase-file", pass, NULL), 1);
    CHECK(strstr(out, "chmod 600") != NULL);
    CHECK_EQ(chmod(pass, 0600), 0);
    char empty[700];
    snprintf(empty, sizeof empty, "%s-empty", dir);
    write_file(empty, "\n", 0600);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "info", "--passphrase-file", empty, NULL), 1);
    CHECK(strstr(out, "empty passphrase") != NULL);
    const char *plain = h_make_datadir("unsalted");
    CHECK_EQ(h_admin(out, sizeof out, "--data", plain, "info", "--passphrase-file", pass, NULL), 1);
    CHECK(strstr(out, "has a key file, not a passphrase") != NULL);
    /* Bad costs. */
    char bad[600];
    tmp_path(bad, sizeof bad, "salted-bad");
    CHECK_EQ(h_admin(out, sizeof out, "--data", bad, "init", "--passphrase-file", pass, "--kdf-ops",
                     "0", NULL),
             2);
    CHECK_EQ(h_admin(out, sizeof out, "--data", bad, "init", "--passphrase-file", pass, "--kdf-mem",
                     "1K", NULL),
             2);
    CHECK_EQ(h_admin(out, sizeof out, "--data", bad, "init", "--kdf-ops", "2", NULL), 2);
    CHECK(access(bad, F_OK) != 0);

    /* check, backup (no passphrase needed) and restore with --master-salt. */
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "check", "--passphrase-file", pass, NULL), 0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "check", NULL), 1);
    CHECK(strstr(out, "FAILED  server keys open: ") != NULL);
    char dest[600], target[600], salt[700];
    tmp_path(dest, sizeof dest, "salted-backup");
    tmp_path(target, sizeof target, "salted-restored");
    snprintf(salt, sizeof salt, "%s/master.salt", dir);
    CHECK_EQ(h_admin(out, sizeof out, "--data", dir, "backup", dest, NULL), 0);
    CHECK(strstr(out, "master.salt; back it up separately") != NULL);
    CHECK(!has_entry(dest, "master"));
    CHECK_EQ(
        h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-salt", salt, NULL),
        2);
    CHECK(strstr(out, "--master-salt needs the passphrase") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-salt", salt,
                     "--passphrase-file", wrong, NULL),
             1);
    CHECK(strstr(out, "wrong passphrase") != NULL);
    CHECK(access(target, F_OK) != 0);
    CHECK_EQ(h_admin(out, sizeof out, "restore", dest, "--data", target, "--master-salt", salt,
                     "--passphrase-file", pass, NULL),
             0);
    CHECK_EQ(h_admin(out, sizeof out, "--data", target, "--passphrase-file", pass, "device", "list",
                     NULL),
             0);
    /* Through a descriptor, read once though the restore opens twice. */
    char target2[600];
    tmp_path(target2, sizeof target2, "salted-restored-fd");
    fd = open(pass, O_RDONLY);
    CHECK(fd > 2);
    snprintf(fds, sizeof fds, "%d", fd);
    rc = h_admin(out, sizeof out, "restore", dest, "--data", target2, "--master-salt", salt,
                 "--passphrase-fd", fds, NULL);
    close(fd);
    CHECK_EQ(rc, 0);
    CHECK(strstr(out, "restored ") != NULL);
}

/* The server refuses to start, with a clear message, and leaves the data
 * directory exactly as it was. */
static void refuses_unchanged(const char *dir, const char *const *extra, const char *expect)
{
    char before[8192], after[8192];
    struct h_server s;
    snapshot(dir, before, sizeof before);
    usleep(20000); /* a change would show in the modification times */
    CHECK_EQ(h_server_start(&s, dir, extra), -1);
    char *log = h_server_log(&s);
    int named = strstr(log, "data_dir_open_failed") != NULL && strstr(log, expect) != NULL;
    if (!named)
        fprintf(stderr, "server log: %s\n", log);
    free(log);
    CHECK(named);
    snapshot(dir, after, sizeof after);
    CHECK_STR(before, after);
}

static void test_server_refuses_and_changes_nothing(void)
{
    char dir[600], pass[700], wrong[700], path[800];
    /* A key file others can read. */
    snprintf(dir, sizeof dir, "%s", h_make_datadir("refuse-loose"));
    snprintf(path, sizeof path, "%s/master.key", dir);
    CHECK_EQ(chmod(path, 0640), 0);
    refuses_unchanged(dir, NULL, "chmod 600");
    /* A missing keys.db. */
    snprintf(dir, sizeof dir, "%s", h_make_datadir("refuse-nokeys"));
    snprintf(path, sizeof path, "%s/keys.db", dir);
    CHECK_EQ(unlink(path), 0);
    refuses_unchanged(dir, NULL, "keys.db: missing");
    /* A passphrase directory: no passphrase, a wrong one (on the command
     * line, in a config file), then the right one through a config file. */
    make_salted("refuse-salted", dir, pass, wrong, 600);
    refuses_unchanged(dir, NULL, "--passphrase-file FILE or --passphrase-fd N");
    const char *wrong_args[] = {"--passphrase-file", wrong, NULL};
    refuses_unchanged(dir, wrong_args, "wrong passphrase");
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s.conf", dir);
    char text[1024];
    snprintf(text, sizeof text, "# test\npassphrase-file = %s\n", wrong);
    write_file(cfg, text, 0600);
    const char *cfg_args[] = {"--config", cfg, NULL};
    refuses_unchanged(dir, cfg_args, "wrong passphrase");
    /* A key file with a passphrase directory's options is refused too. */
    char plain[600];
    snprintf(plain, sizeof plain, "%s", h_make_datadir("refuse-plain"));
    const char *pass_args[] = {"--passphrase-file", pass, NULL};
    refuses_unchanged(plain, pass_args, "has a key file, not a passphrase");

    snprintf(text, sizeof text, "passphrase-file = %s\n", pass);
    write_file(cfg, text, 0600);
    struct h_server s;
    CHECK_EQ(h_server_start(&s, dir, cfg_args), 0);
    struct h_response r;
    CHECK_EQ(h_request(s.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
    /* And through a descriptor the server inherits. */
    int fd = open(pass, O_RDONLY);
    CHECK(fd > 2);
    char fds[16];
    snprintf(fds, sizeof fds, "%d", fd);
    const char *fd_args[] = {"--passphrase-fd", fds, NULL};
    int rc = h_server_start(&s, dir, fd_args);
    close(fd);
    CHECK_EQ(rc, 0);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
}

static void test_help(void)
{
    char out[8192];
    static const char *const cmds[] = {"backup", "restore", "check", "init"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[64];
        CHECK_EQ(h_admin(out, sizeof out, cmds[i], "--help", NULL), 0);
        snprintf(want, sizeof want, "usage: spro-admin ");
        CHECK(strstr(out, want) != NULL && strstr(out, cmds[i]) != NULL);
        CHECK_EQ(h_admin(out, sizeof out, "--help", NULL), 0);
        CHECK(strstr(out, cmds[i]) != NULL);
    }
    CHECK_EQ(h_admin(out, sizeof out, "restore", "--help", NULL), 0);
    CHECK(strstr(out, "--master-salt FILE") != NULL && strstr(out, "--passphrase-fd N") != NULL);
    CHECK_EQ(h_admin(out, sizeof out, "init", "--help", NULL), 0);
    CHECK(strstr(out, "--kdf-mem BYTES") != NULL && strstr(out, "--passphrase-file FILE") != NULL);
    const char *srv[] = {h_server_bin, "--help", NULL};
    CHECK_EQ(h_run(srv, out, sizeof out), 0);
    CHECK(strstr(out, "--passphrase-file FILE") != NULL && strstr(out, "--passphrase-fd N"));
}

static const struct check_test tests[] = {
    {"backup_while_pushing_then_restore", test_backup_while_pushing_then_restore},
    {"bad_inputs", test_bad_inputs},
    {"check_damaged", test_check_damaged},
    {"passphrase_admin", test_passphrase_admin},
    {"server_refuses_and_changes_nothing", test_server_refuses_and_changes_nothing},
    {"help", test_help},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
