/*
 * datadir.c: creating and opening a data directory (see sync.h for the
 * layout).  File system work and key handling; SQL goes through store.c.
 */
#include "sync.h"
#include "backup.h"
#include "group.h"
#include "store.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MASTER_FILE "master.key"
#define SALT_FILE "master.salt" /* instead of master.key: Argon2id of a passphrase */
#define SALT_MAGIC "spro-sync master salt v1"
#define SALT_FILE_MAX 512 /* bytes of a master.salt, at most */
#define DATA_FILE "data.db"
#define KEYS_FILE "keys.db"
#define GEN_FILE "devices.gen"   /* 8 bytes: the devices generation, memory-mapped */
#define KEYS_GEN_FILE "keys.gen" /* 8 bytes: the keys generation, memory-mapped */
#define NEW_SUFFIX ".new"        /* a master file being installed (change-master) */
#define OLD_SUFFIX ".old"        /* the master file it replaced */
#define SRVKEYS_CTX "srvkeys_"   /* KDF context of the subkey sealing server keys */

/* A pair of reader connections, data.db and keys.db again, for pulls
 * (spro_datadir__readers_take). */
struct reader_pair {
    struct spro_db *data, *keys;
    int busy;
};

struct spro_datadir {
    struct spro_db *data;
    struct reader_pair readers[SPRO_DATADIR_READERS]; /* opened when first taken */
    char data_path[PATH_MAX], keys_path[PATH_MAX];    /* for them */
    pthread_mutex_t readers_mu;                       /* guards readers[].busy */
    pthread_cond_t readers_cv;                        /* signalled when a pair is given back */
    struct spro_db *keys;
    int schema;
    uint8_t noise_pk[SPRO_KEY_BYTES];
    uint8_t sign_pk[SPRO_KEY_BYTES];
    uint8_t *master;                   /* SPRO_KEY_BYTES, guarded memory: the master key while
                                        * opening, then the root key (spro_datadir__root) */
    uint8_t *kwk;                      /* key-wrapping subkey of the master key, guarded memory */
    uint64_t *keys_gen;                /* the mapped DIR/keys.gen */
    struct spro_keyring *keyring;      /* KEK epochs (keyring.c) */
    uint8_t *noise_sk;                 /* SPRO_KEY_BYTES, guarded memory */
    uint8_t *sign_sk;                  /* SPRO_SIGN_SECRET_BYTES, guarded memory */
    uint8_t *audit_key;                /* SPRO_KEY_BYTES, guarded memory */
    char audit_actor[SPRO_ID_MAX + 1]; /* actor of the entries dd writes itself */
    uint64_t *gen;                     /* the mapped DIR/devices.gen, shared with other processes */
    struct spro_group push_group;      /* pushes of this process, committed together */
};

/* Associated data binding a sealed server key to its name. */
static void key_ad(char *ad, size_t cap, const char *name)
{
    snprintf(ad, cap, "spro-sync server key v1 %s", name);
}

/* Writes the master key file: created exclusively with mode 0600, fsync'd. */
static int write_master(const char *path, const uint8_t *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, key, SPRO_KEY_BYTES);
    int rc = n == SPRO_KEY_BYTES ? 0 : (n < 0 ? -errno : -EIO);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Reads the master key into guarded memory, refusing a file that group or
 * others may read or write, or that is not exactly SPRO_KEY_BYTES long. */
static int read_master(const char *path, uint8_t **out, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        spro_files__say(why, whylen, path, strerror(e));
        return e == ENOENT ? SPRO_ENOENT : -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        spro_files__say(why, whylen, path, "not a regular file");
        return SPRO_EPERM;
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        spro_files__say(why, whylen, path,
                        "readable or writable by group or others; run: chmod 600 on it");
        return SPRO_EPERM;
    }
    uint8_t *key = spro_secret_alloc(SPRO_KEY_BYTES);
    uint8_t extra;
    ssize_t n = read(fd, key, SPRO_KEY_BYTES);
    ssize_t m = n == SPRO_KEY_BYTES ? read(fd, &extra, 1) : 0;
    close(fd);
    if (n != SPRO_KEY_BYTES || m != 0) {
        spro_secret_free(key);
        spro_files__say(why, whylen, path, "must hold exactly 32 bytes");
        return SPRO_EINTEGRITY;
    }
    *out = key;
    return 0;
}

/* The content of master.salt (docs/CRYPTO.md, "Master key from a
 * passphrase"): five text lines,
 *   spro-sync master salt v1
 *   algorithm argon2id13
 *   opslimit N
 *   memlimit BYTES
 *   salt 32 lowercase hex digits */
struct salt_file {
    uint64_t ops; /* SPRO_PWHASH_OPS_MIN..SPRO_PWHASH_OPS_MAX */
    uint64_t mem; /* bytes, SPRO_PWHASH_MEM_MIN..SPRO_PWHASH_MEM_MAX */
    uint8_t salt[SPRO_PWHASH_SALT_BYTES];
};

static int costs_valid(uint64_t ops, uint64_t mem)
{
    return ops >= SPRO_PWHASH_OPS_MIN && ops <= SPRO_PWHASH_OPS_MAX && mem >= SPRO_PWHASH_MEM_MIN &&
           mem <= SPRO_PWHASH_MEM_MAX;
}

/* Writes master.salt: created exclusively with mode 0600, fsync'd. */
static int write_salt(const char *path, const struct salt_file *sf)
{
    char text[SALT_FILE_MAX], hexsalt[2 * SPRO_PWHASH_SALT_BYTES + 1];
    for (size_t i = 0; i < SPRO_PWHASH_SALT_BYTES; i++)
        snprintf(hexsalt + 2 * i, 3, "%02x", sf->salt[i]);
    int n = snprintf(text, sizeof text,
                     SALT_MAGIC "\nalgorithm argon2id13\nopslimit %llu\nmemlimit %llu\nsalt %s\n",
                     (unsigned long long)sf->ops, (unsigned long long)sf->mem, hexsalt);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, text, (size_t)n);
    int rc = w == n ? 0 : (w < 0 ? -errno : -EIO);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Reads and checks master.salt (not a secret: any mode is accepted). */
static int read_salt(const char *path, struct salt_file *sf, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        spro_files__say(why, whylen, path, strerror(e));
        return e == ENOENT ? SPRO_ENOENT : -e;
    }
    char text[SALT_FILE_MAX + 1];
    ssize_t n = read(fd, text, sizeof text);
    close(fd);
    if (n < 0 || n > SALT_FILE_MAX) {
        spro_files__say(why, whylen, path,
                        n < 0 ? strerror(errno) : "too long to be a master salt file");
        return n < 0 ? -errno : SPRO_EINTEGRITY;
    }
    text[n] = '\0';
    unsigned long long ops, mem;
    char hexsalt[2 * SPRO_PWHASH_SALT_BYTES + 2];
    int end = -1;
    if (sscanf(text,
               SALT_MAGIC "\nalgorithm argon2id13\nopslimit %20llu\nmemlimit %20llu\nsalt "
                          "%33[0-9a-f]\n%n",
               &ops, &mem, hexsalt, &end) != 3 ||
        end != (int)n || strlen(hexsalt) != 2 * SPRO_PWHASH_SALT_BYTES) {
        spro_files__say(why, whylen, path,
                        "not a master salt file of this version (expected '" SALT_MAGIC
                        "', algorithm argon2id13, opslimit, memlimit, salt)");
        return SPRO_EINTEGRITY;
    }
    if (!costs_valid(ops, mem)) {
        spro_files__say(why, whylen, path,
                        "opslimit or memlimit out of bounds (a damaged or altered file)");
        return SPRO_EINTEGRITY;
    }
    sf->ops = ops;
    sf->mem = mem;
    for (size_t i = 0; i < SPRO_PWHASH_SALT_BYTES; i++)
        sf->salt[i] = (uint8_t)(hexval(hexsalt[2 * i]) << 4 | hexval(hexsalt[2 * i + 1]));
    return 0;
}

int spro_datadir_options_have_passphrase(const struct spro_datadir_options *o)
{
    return o != NULL &&
           (o->passphrase != NULL || o->passphrase_file != NULL || o->has_passphrase_fd);
}

int spro_passphrase_read(const char *file, int fd, char **out, size_t *len, char *why,
                         size_t whylen)
{
    char name[64];
    *out = NULL;
    *len = 0;
    if (file != NULL) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            spro_files__say(why, whylen, file, strerror(e));
            return -e;
        }
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
            close(fd);
            spro_files__say(why, whylen, file,
                            "readable or writable by group or others; run: chmod 600 on it");
            return SPRO_EPERM;
        }
    } else {
        snprintf(name, sizeof name, "passphrase descriptor %d", fd);
    }
    const char *src = file != NULL ? file : name;
    /* One byte more than a passphrase and its line end may take. */
    size_t cap = SPRO_PASSPHRASE_MAX + 3, n = 0;
    char *buf = spro_secret_alloc(cap);
    int rc = 0;
    while (n < cap && memchr(buf, '\n', n) == NULL) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            spro_files__say(why, whylen, src, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (file != NULL)
        close(fd);
    char *nl = memchr(buf, '\n', n);
    size_t l = nl != NULL ? (size_t)(nl - buf) : n;
    if (l > 0 && buf[l - 1] == '\r')
        l--;
    if (rc == 0 && l == 0) {
        spro_files__say(why, whylen, src, "empty passphrase (it is the first line)");
        rc = SPRO_ECONFIG;
    } else if (rc == 0 && l > SPRO_PASSPHRASE_MAX) {
        spro_files__say(why, whylen, src, "passphrase longer than 1024 bytes");
        rc = SPRO_ECONFIG;
    }
    if (rc != 0) {
        spro_secret_free(buf);
        return rc;
    }
    spro_memzero(buf + l, cap - l);
    *out = buf;
    *len = l;
    return 0;
}

/* The passphrase that o names: *pp points at it (o's own bytes, or
 * *owned, guarded memory read from o's file or descriptor, that the
 * caller frees).  SPRO_ECONFIG (why says how to give one) if o names none. */
static int get_passphrase(const struct spro_datadir_options *o, const char *salt_path,
                          const char **pp, size_t *len, char **owned, char *why, size_t whylen)
{
    *owned = NULL;
    if (!spro_datadir_options_have_passphrase(o)) {
        spro_files__say(why, whylen, salt_path,
                        "this data directory's master key comes from a passphrase; give it with "
                        "--passphrase-file FILE or --passphrase-fd N");
        return SPRO_ECONFIG;
    }
    if (o->passphrase != NULL) {
        if (o->passphrase_len < 1 || o->passphrase_len > SPRO_PASSPHRASE_MAX) {
            spro_files__say(why, whylen, salt_path, "the passphrase must be 1 to 1024 bytes");
            return SPRO_ECONFIG;
        }
        *pp = o->passphrase;
        *len = o->passphrase_len;
        return 0;
    }
    int rc = spro_passphrase_read(o->passphrase_file, o->passphrase_fd, owned, len, why, whylen);
    *pp = *owned;
    return rc;
}

/* The master key of a directory with master.salt: Argon2id of o's
 * passphrase, into guarded memory. */
static int unlock_master(const char *salt_path, const struct spro_datadir_options *o, uint8_t **out,
                         char *why, size_t whylen)
{
    struct salt_file sf;
    const char *pp;
    size_t len;
    char *owned;
    int rc = read_salt(salt_path, &sf, why, whylen);
    if (rc != 0 || (rc = get_passphrase(o, salt_path, &pp, &len, &owned, why, whylen)) != 0)
        return rc;
    uint8_t *key = spro_secret_alloc(SPRO_KEY_BYTES);
    rc = spro_crypto_pwhash(key, pp, len, sf.salt, sf.ops, sf.mem);
    spro_secret_free(owned);
    if (rc != 0) {
        spro_secret_free(key);
        char msg[160];
        snprintf(msg, sizeof msg, "Argon2id could not get its %llu MiB of memory",
                 (unsigned long long)(sf.mem >> 20));
        spro_files__say(why, whylen, salt_path, rc == SPRO_ENOMEM ? msg : spro_strerror(rc));
        return rc;
    }
    *out = key;
    return 0;
}

/* Seals sk under the server-keys subkey and stores it with its public key. */
static int put_server_key(struct spro_db *keys, const uint8_t *subkey, const char *name,
                          const uint8_t *pk, const uint8_t *sk, size_t sklen)
{
    uint8_t sealed[SPRO_SIGN_SECRET_BYTES + SPRO_SEAL_OVERHEAD];
    char ad[64];
    key_ad(ad, sizeof ad, name);
    spro_crypto_seal(sealed, sk, sklen, (const uint8_t *)ad, strlen(ad), subkey);
    return spro_store__server_key_put(keys, name, pk, SPRO_KEY_BYTES, sealed,
                                      sklen + SPRO_SEAL_OVERHEAD);
}

static int get_server_key(struct spro_db *keys, const uint8_t *subkey, const char *name,
                          uint8_t *pk, uint8_t *sk, size_t sklen)
{
    uint8_t sealed[SPRO_SIGN_SECRET_BYTES + SPRO_SEAL_OVERHEAD];
    char ad[64];
    key_ad(ad, sizeof ad, name);
    int rc = spro_store__server_key_get(keys, name, pk, SPRO_KEY_BYTES, sealed,
                                        sklen + SPRO_SEAL_OVERHEAD);
    if (rc == 0)
        rc = spro_crypto_open(sk, sealed, sklen + SPRO_SEAL_OVERHEAD, (const uint8_t *)ad,
                              strlen(ad), subkey);
    return rc;
}

/* Maps the 8-byte generation file, creating it (zero) if absent. */
static int map_generation(const char *path, uint64_t **out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? -errno : 0;
    if (rc == 0 && st.st_size < (off_t)sizeof(uint64_t) && ftruncate(fd, sizeof(uint64_t)) != 0)
        rc = -errno;
    void *p = rc == 0 ? mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                      : MAP_FAILED;
    if (rc == 0 && p == MAP_FAILED)
        rc = -errno;
    close(fd);
    if (rc == 0)
        *out = p;
    return rc;
}

/* Fills a fresh directory tmp with everything a data directory holds.
 * With sf, the master key (made by the caller from a passphrase) is not
 * written: master.salt is, from sf. */
static int populate(const char *tmp, const uint8_t *master, const struct salt_file *sf, char *why,
                    size_t whylen)
{
    char path[PATH_MAX];
    uint8_t *subkey = spro_secret_alloc(SPRO_KEY_BYTES);
    uint8_t *sk = spro_secret_alloc(SPRO_SIGN_SECRET_BYTES);
    uint8_t pk[SPRO_KEY_BYTES];
    struct spro_db *data = NULL, *keys = NULL;
    int version, rc;

    spro_crypto_derive(subkey, master, 1, SRVKEYS_CTX);
    if ((rc = spro_files__path_join(path, sizeof path, tmp,
                                    sf != NULL ? SALT_FILE : MASTER_FILE)) != 0 ||
        (rc = sf != NULL ? write_salt(path, sf) : write_master(path, master)) != 0) {
        spro_files__say(why, whylen, path, spro_strerror(rc));
        goto out;
    }
    if ((rc = spro_files__path_join(path, sizeof path, tmp, DATA_FILE)) != 0 ||
        (rc = spro_store__open(path, 1, spro_store__data_migrations,
                               spro_store__data_migrations_count, &data, &version, why, whylen)) !=
            0)
        goto out;
    char created[32];
    snprintf(created, sizeof created, "%lld", (long long)time(NULL));
    if ((rc = spro_store__meta_put(data, "created_at", created)) != 0)
        goto out;
    if ((rc = spro_files__path_join(path, sizeof path, tmp, KEYS_FILE)) != 0 ||
        (rc = spro_store__open(path, 1, spro_store__keys_migrations,
                               spro_store__keys_migrations_count, &keys, &version, why, whylen)) !=
            0)
        goto out;
    spro_crypto_dh_keypair(pk, sk);
    if ((rc = put_server_key(keys, subkey, "noise", pk, sk, SPRO_KEY_BYTES)) != 0)
        goto out;
    spro_crypto_sign_keypair(pk, sk);
    if ((rc = put_server_key(keys, subkey, "sign", pk, sk, SPRO_SIGN_SECRET_BYTES)) != 0)
        goto out;
    /* Epoch 1 of a new directory is a random KEK (migration 3 leaves it
     * derived, for the directories that existed before). */
    uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES];
    spro_crypto_derive(subkey, master, 1, SPRO_KDF_CTX_KEY_WRAP);
    spro_crypto_random(sk, SPRO_KEY_BYTES);
    if ((rc = spro_field_kek_wrap(wrapped, sk, subkey, 1)) == 0)
        rc = spro_store__kek_set_wrapped(keys, 1, wrapped);
out:
    spro_store__close(data);
    spro_store__close(keys);
    spro_secret_free(subkey);
    spro_secret_free(sk);
    if (rc != 0 && why != NULL && why[0] == '\0')
        snprintf(why, whylen, "%s: %s", tmp, spro_strerror(rc));
    return rc;
}

/* Removes tmp and what populate() may have left in it. */
static void remove_tree(const char *tmp)
{
    static const char *const names[] = {
        MASTER_FILE, SALT_FILE,        DATA_FILE,        DATA_FILE "-wal", DATA_FILE "-shm",
        KEYS_FILE,   KEYS_FILE "-wal", KEYS_FILE "-shm", GEN_FILE,         KEYS_GEN_FILE};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (spro_files__path_join(path, sizeof path, tmp, names[i]) == 0)
            unlink(path);
    rmdir(tmp);
}

int spro_datadir_init(const char *dir, char *why, size_t whylen)
{
    return spro_datadir_init_ex(dir, NULL, why, whylen);
}

int spro_datadir_init_ex(const char *dir, const struct spro_datadir_options *o, char *why,
                         size_t whylen)
{
    struct stat st;
    if (why != NULL)
        why[0] = '\0';
    if (stat(dir, &st) == 0 && (!S_ISDIR(st.st_mode) || spro_files__dir_empty(dir) != 1)) {
        spro_files__say(why, whylen, dir,
                        "already exists and is not empty; refusing to overwrite it");
        return SPRO_EEXISTS;
    }
    /* The master key first: a bad passphrase or cost leaves nothing behind. */
    struct salt_file sf, *use_sf = NULL;
    uint8_t *master = spro_secret_alloc(SPRO_KEY_BYTES);
    int rc = 0;
    if (spro_datadir_options_have_passphrase(o)) {
        sf.ops = o->kdf_ops != 0 ? o->kdf_ops : SPRO_PWHASH_OPS_DEFAULT;
        sf.mem = o->kdf_mem != 0 ? o->kdf_mem : SPRO_PWHASH_MEM_DEFAULT;
        spro_crypto_random(sf.salt, sizeof sf.salt);
        const char *pp;
        size_t len;
        char *owned = NULL;
        if (!costs_valid(sf.ops, sf.mem)) {
            spro_files__say(why, whylen, dir, "Argon2id costs out of bounds");
            rc = SPRO_ERANGE;
        } else if ((rc = get_passphrase(o, dir, &pp, &len, &owned, why, whylen)) == 0 &&
                   (rc = spro_crypto_pwhash(master, pp, len, sf.salt, sf.ops, sf.mem)) != 0) {
            spro_files__say(why, whylen, dir,
                            rc == SPRO_ENOMEM ? "Argon2id could not get its memory"
                                              : spro_strerror(rc));
        }
        spro_secret_free(owned);
        use_sf = &sf;
    } else {
        spro_crypto_random(master, SPRO_KEY_BYTES);
    }
    if (rc != 0) {
        spro_secret_free(master);
        return rc;
    }
    /* Build beside dir, then rename: rename(2) replaces an empty directory
     * atomically, so a crash leaves either nothing or a complete one. */
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.init-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        spro_secret_free(master);
        return -ENAMETOOLONG;
    }
    if (mkdtemp(tmp) == NULL) {
        int e = errno;
        spro_secret_free(master);
        spro_files__say(why, whylen, tmp, strerror(e));
        return -e;
    }
    rc = populate(tmp, master, use_sf, why, whylen);
    spro_secret_free(master);
    if (rc == 0)
        rc = spro_files__publish_dir(tmp, dir, why, whylen);
    if (rc != 0)
        remove_tree(tmp);
    return rc;
}

int spro_datadir_open(const char *dir, struct spro_datadir **out, char *why, size_t whylen)
{
    return spro_datadir_open_ex(dir, NULL, out, why, whylen);
}

/* "server keys do not open": the message for a wrong key of either kind. */
static void say_wrong_key(char *why, size_t whylen, const char *keys_path, int passphrase)
{
    spro_files__say(why, whylen, keys_path,
                    passphrase
                        ? "wrong passphrase: the server keys do not open under the master key it "
                          "gives (or master.salt does not belong with this keys.db); nothing was "
                          "changed"
                        : "server keys do not open under this master key (wrong master.key, or "
                          "tampered keys.db); nothing was changed");
}

/* Whether the server's Noise key opens under master, read from keys.db
 * without opening it for writing (backup.c): SPRO_EINTEGRITY if it
 * certainly does not, 0 if it does or the question cannot be settled that
 * way (then the normal open decides). */
static int server_key_precheck(const char *keys_path, const uint8_t *master)
{
    uint8_t pk[SPRO_KEY_BYTES], sealed[SPRO_KEY_BYTES + SPRO_SEAL_OVERHEAD];
    uint8_t *subkey = spro_secret_alloc(SPRO_KEY_BYTES), *sk = spro_secret_alloc(SPRO_KEY_BYTES);
    char ad[64];
    key_ad(ad, sizeof ad, "noise");
    spro_crypto_derive(subkey, master, 1, SRVKEYS_CTX);
    int rc = 0;
    if (spro_backup__server_key_peek(keys_path, "noise", pk, sizeof pk, sealed, sizeof sealed) == 0)
        rc = spro_crypto_open(sk, sealed, sizeof sealed, (const uint8_t *)ad, strlen(ad), subkey) ==
                     0
                 ? 0
                 : SPRO_EINTEGRITY;
    spro_secret_free(subkey);
    spro_secret_free(sk);
    return rc;
}

/* ---- Changing the master key (docs/CRYPTO.md, "Changing the master key") ----
 *
 * Order of operations of spro_datadir_change_master(), for a master file F
 * (master.key or master.salt):
 *   1. F.new is written (new key, or new salt), fsync'd, the directory too;
 *   2. one keys.db transaction wraps every live KEK, the root key and the
 *      server keys under the new key, and commits;
 *   3. F is renamed F.old, then F.new renamed F, the directory fsync'd.
 * Whether step 2 committed is read from keys.db itself: its server keys
 * open under exactly one of the two keys.  So an open that finds F.new
 * (recover_master_change) completes step 3 if keys.db is under F.new, and
 * removes F.new if it is still under F; F missing with F.new present is
 * a crash between the two renames of step 3. */

/* Whether keys.db's server keys open under master: 0, SPRO_EINTEGRITY if
 * they do not, or another error.  Reads through SQLite's normal open when
 * keys.db has a WAL (left by a crash), without writing otherwise. */
static int keys_open_under(const char *keys_path, const uint8_t *master)
{
    uint8_t pk[SPRO_KEY_BYTES];
    uint8_t *subkey = spro_secret_alloc(SPRO_KEY_BYTES), *sk = spro_secret_alloc(SPRO_KEY_BYTES);
    spro_crypto_derive(subkey, master, 1, SRVKEYS_CTX);
    int rc = server_key_precheck(keys_path, master);
    if (rc == 0) { /* opens, or undecided: ask the database itself */
        struct spro_db *keys = NULL;
        int version;
        rc = spro_store__open(keys_path, 0, spro_store__keys_migrations,
                              spro_store__keys_migrations_count, &keys, &version, NULL, 0);
        if (rc == 0)
            rc = get_server_key(keys, subkey, "noise", pk, sk, SPRO_KEY_BYTES);
        spro_store__close(keys);
    }
    spro_secret_free(subkey);
    spro_secret_free(sk);
    return rc;
}

/* The master key that the master file at path gives (with o for a salt
 * file), into guarded memory. */
static int master_from(const char *path, int salted, const struct spro_datadir_options *o,
                       uint8_t **out, char *why, size_t whylen)
{
    return salted ? unlock_master(path, o, out, why, whylen) : read_master(path, out, why, whylen);
}

static int rename_synced(const char *dir, const char *from, const char *to)
{
    if (rename(from, to) != 0)
        return -errno;
    return spro_files__fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

/* Finishes or abandons a change of the master key that was interrupted
 * (see above).  For a salt file whose passphrase comes from a file or a
 * descriptor, reads it once into *owned and points *o at *o2 holding it,
 * for the rest of the open. */
static int recover_master_change(const char *dir, const struct spro_datadir_options **o,
                                 struct spro_datadir_options *o2, char **owned, char *why,
                                 size_t whylen)
{
    static const char *const files[2] = {MASTER_FILE, SALT_FILE};
    for (int salted = 0; salted < 2; salted++) {
        char cur[PATH_MAX], nw[PATH_MAX], old[PATH_MAX], keys[PATH_MAX];
        if (spro_files__path_join(cur, sizeof cur, dir, files[salted]) != 0 ||
            snprintf(nw, sizeof nw, "%s" NEW_SUFFIX, cur) >= (int)sizeof nw ||
            snprintf(old, sizeof old, "%s" OLD_SUFFIX, cur) >= (int)sizeof old ||
            spro_files__path_join(keys, sizeof keys, dir, KEYS_FILE) != 0)
            return -ENAMETOOLONG;
        if (access(nw, F_OK) != 0)
            continue;
        if (access(cur, F_OK) != 0) /* between the renames of step 3 */
            return rename_synced(dir, nw, cur);
        if (salted && *owned == NULL && spro_datadir_options_have_passphrase(*o) &&
            (*o)->passphrase == NULL) {
            size_t len;
            int rc = spro_passphrase_read((*o)->passphrase_file, (*o)->passphrase_fd, owned, &len,
                                          why, whylen);
            if (rc != 0)
                return rc;
            *o2 = **o;
            o2->passphrase = *owned;
            o2->passphrase_len = len;
            *o = o2;
        }
        uint8_t *key = NULL;
        int rc = master_from(cur, salted, *o, &key, why, whylen);
        if (rc == 0)
            rc = keys_open_under(keys, key);
        spro_secret_free(key);
        key = NULL;
        if (rc == 0) { /* step 2 never committed: the change did not happen */
            unlink(nw);
            continue;
        }
        if (rc != SPRO_EINTEGRITY)
            return rc;
        if ((rc = master_from(nw, salted, *o, &key, why, whylen)) == 0)
            rc = keys_open_under(keys, key);
        spro_secret_free(key);
        if (rc == SPRO_EINTEGRITY) {
            spro_files__say(
                why, whylen, keys,
                salted ? "wrong passphrase: keys.db opens under neither master.salt nor "
                         "master.salt.new (a change of the master key was interrupted: give "
                         "the new passphrase, or the old one); nothing was changed"
                       : "keys.db opens under neither master.key nor master.key.new; nothing "
                         "was changed");
            return rc;
        }
        if (rc != 0)
            return rc;
        /* keys.db is under the new key: finish step 3. */
        if (rename(cur, old) != 0)
            return -errno;
        if ((rc = rename_synced(dir, nw, cur)) != 0)
            return rc;
    }
    return 0;
}

/* Writes a new random master key to path, which must not exist: under a
 * temporary name, fsync'd, then linked into place (never replacing). */
static int write_key_file_atomically(const char *path, const uint8_t *key, char *why, size_t whylen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    unlink(tmp);
    int rc = write_master(tmp, key);
    if (rc == 0 && link(tmp, path) != 0)
        rc = -errno;
    unlink(tmp);
    if (rc == 0) {
        spro_files__fsync_parent(path);
    } else {
        spro_files__say(why, whylen, path, spro_strerror(rc));
    }
    return rc;
}

int spro_datadir_change_master(const char *dir, const struct spro_datadir_options *o,
                               const struct spro_new_master *n, char *why, size_t whylen)
{
    char cur[PATH_MAX], nw[PATH_MAX], old[PATH_MAX], path[PATH_MAX];
    if (why != NULL)
        why[0] = '\0';
    if (spro_files__path_join(path, sizeof path, dir, SALT_FILE) != 0)
        return -ENAMETOOLONG;
    int salted = access(path, F_OK) == 0;
    if ((n->key_file != NULL) == (n->passphrase != NULL) || (salted && n->key_file != NULL) ||
        (!salted && n->passphrase != NULL)) {
        spro_files__say(
            why, whylen, dir,
            salted ? "this directory's master key comes from a passphrase: give a new passphrase"
                   : "this directory has a key file: give a new key file");
        return SPRO_ECONFIG;
    }
    if (spro_files__path_join(cur, sizeof cur, dir, salted ? SALT_FILE : MASTER_FILE) != 0 ||
        snprintf(nw, sizeof nw, "%s" NEW_SUFFIX, cur) >= (int)sizeof nw ||
        snprintf(old, sizeof old, "%s" OLD_SUFFIX, cur) >= (int)sizeof old ||
        spro_files__path_join(path, sizeof path, dir, KEYS_FILE "-wal") != 0)
        return -ENAMETOOLONG;
    if (access(path, F_OK) == 0) {
        spro_files__say(
            why, whylen, path,
            "keys.db is open in another process (stop spro-server first), or was not closed "
            "cleanly (run spro-admin check, then try again)");
        return SPRO_EEXISTS;
    }
    /* Opening finishes an earlier interrupted change, if any. */
    struct spro_datadir *dd;
    int rc = spro_datadir_open_ex(dir, o, &dd, why, whylen);
    if (rc != 0)
        return rc;
    uint8_t *master = spro_secret_alloc(SPRO_KEY_BYTES);
    uint8_t *kwk = spro_secret_alloc(SPRO_KEY_BYTES), *srv = spro_secret_alloc(SPRO_KEY_BYTES);
    uint8_t *kek = spro_secret_alloc(SPRO_KEY_BYTES);
    struct salt_file sf;
    struct spro_kek_row rows[SPRO_KEYS_EPOCHS_MAX], live[SPRO_KEYS_LIVE_MAX];
    size_t nrows = 0, nlive = 0;
    if (salted) {
        sf.ops = n->kdf_ops != 0 ? n->kdf_ops : SPRO_PWHASH_OPS_DEFAULT;
        sf.mem = n->kdf_mem != 0 ? n->kdf_mem : SPRO_PWHASH_MEM_DEFAULT;
        spro_crypto_random(sf.salt, sizeof sf.salt);
        if (!costs_valid(sf.ops, sf.mem))
            rc = SPRO_ERANGE;
        else
            rc = spro_crypto_pwhash(master, n->passphrase, n->passphrase_len, sf.salt, sf.ops,
                                    sf.mem);
        if (rc != 0)
            spro_files__say(why, whylen, dir,
                            "cannot derive the new master key from the passphrase");
    } else {
        spro_crypto_random(master, SPRO_KEY_BYTES);
        rc = write_key_file_atomically(n->key_file, master, why, whylen);
    }
    /* Step 1: the new master file beside the old one. */
    if (rc == 0) {
        unlink(nw); /* left by an attempt that failed before step 2 */
        rc = salted ? write_salt(nw, &sf) : write_master(nw, master);
        if (rc == 0)
            rc = spro_files__fsync_path(dir, O_RDONLY | O_DIRECTORY);
        if (rc != 0)
            spro_files__say(why, whylen, nw, spro_strerror(rc));
    }
    /* Step 2: everything master-wrapped, under the new key, in one transaction. */
    if (rc == 0)
        rc = spro_store__keks_list(dd->keys, rows, SPRO_KEYS_EPOCHS_MAX, &nrows, 0);
    spro_crypto_derive(kwk, master, 1, SPRO_KDF_CTX_KEY_WRAP);
    spro_crypto_derive(srv, master, 1, SRVKEYS_CTX);
    for (size_t i = 0; rc == 0 && i < nrows; i++) {
        if (rows[i].state == SPRO_KEK_DESTROYED)
            continue;
        if (nlive == SPRO_KEYS_LIVE_MAX) {
            rc = SPRO_ETOOLONG;
            break;
        }
        live[nlive] = rows[i];
        if ((rc = spro_keyring__kek(dd, rows[i].epoch, kek)) == 0)
            rc = spro_field_kek_wrap(live[nlive].wrapped, kek, kwk, rows[i].epoch);
        nlive++;
    }
    uint8_t noise[SPRO_KEY_BYTES + SPRO_SEAL_OVERHEAD],
        sign[SPRO_SIGN_SECRET_BYTES + SPRO_SEAL_OVERHEAD];
    uint8_t root[SPRO_WRAPPED_KEK_BYTES];
    char ad[64];
    key_ad(ad, sizeof ad, "noise");
    spro_crypto_seal(noise, dd->noise_sk, SPRO_KEY_BYTES, (const uint8_t *)ad, strlen(ad), srv);
    key_ad(ad, sizeof ad, "sign");
    spro_crypto_seal(sign, dd->sign_sk, SPRO_SIGN_SECRET_BYTES, (const uint8_t *)ad, strlen(ad),
                     srv);
    spro_field_root_wrap(root, dd->master, kwk);
    const struct spro_sealed_server_key server[2] = {{"noise", noise, sizeof noise},
                                                     {"sign", sign, sizeof sign}};
    struct spro_master_change m = {live, nlive, server, 2, root, (int64_t)time(NULL)};
    if (rc == 0 && (rc = spro_store__master_change(dd->keys, &m)) != 0)
        spro_files__say(why, whylen, dir,
                        rc == SPRO_EEXISTS
                            ? "the KEK epochs changed meanwhile (a rotation?); nothing "
                              "was changed, try again"
                            : spro_strerror(rc));
    spro_secret_free(master);
    spro_secret_free(kwk);
    spro_secret_free(srv);
    spro_secret_free(kek);
    spro_datadir_close(dd);
    if (rc != 0) {
        unlink(nw); /* step 2 did not commit: the old key stays */
        return rc;
    }
    /* Step 3. */
    if (rename(cur, old) != 0 || rename_synced(dir, nw, cur) != 0) {
        rc = -errno;
        spro_files__say(
            why, whylen, cur,
            "keys.db is under the new key but the files could not be renamed; the next open "
            "finishes it");
    }
    return rc;
}

/* After the server keys opened under dd->master: derives the key-wrapping
 * subkey, replaces dd->master by the root key (unwrapped from keys.db's
 * root_key once the master key changed), maps keys.gen and makes the
 * keyring, whose KEKs must open.  keys_path names keys.db in messages. */
static int open_keyring(struct spro_datadir *dd, const char *dir, const char *keys_path, char *why,
                        size_t whylen)
{
    char path[PATH_MAX];
    uint8_t wrapped[SPRO_WRAPPED_KEK_BYTES];
    dd->kwk = spro_secret_alloc(SPRO_KEY_BYTES);
    spro_crypto_derive(dd->kwk, dd->master, 1, SPRO_KDF_CTX_KEY_WRAP);
    int rc = spro_store__root_get(dd->keys, wrapped);
    if (rc == 0)
        rc = spro_field_root_unwrap(dd->master, wrapped, sizeof wrapped, dd->kwk);
    else if (rc == SPRO_ENOENT)
        rc = 0; /* the root key is the master key */
    if (rc != 0) {
        spro_files__say(why, whylen, keys_path, "the root key does not open under the master key");
        return rc;
    }
    if ((rc = spro_files__path_join(path, sizeof path, dir, KEYS_GEN_FILE)) != 0 ||
        (rc = map_generation(path, &dd->keys_gen)) != 0) {
        spro_files__say(why, whylen, path, spro_strerror(rc));
        return rc;
    }
    dd->keyring = spro_keyring__create();
    uint32_t epoch;
    uint8_t *kek = spro_secret_alloc(SPRO_KEY_BYTES);
    rc = spro_keyring__current(dd, &epoch, kek);
    spro_secret_free(kek);
    if (rc != 0)
        spro_files__say(why, whylen, keys_path,
                        rc == SPRO_EINTEGRITY
                            ? "the key-encryption keys do not open under the master key "
                              "(or no epoch is active)"
                            : spro_strerror(rc));
    return rc;
}

int spro_datadir_open_ex(const char *dir, const struct spro_datadir_options *o,
                         struct spro_datadir **out, char *why, size_t whylen)
{
    char path[PATH_MAX];
    int version, rc;
    uint8_t *subkey = NULL;
    char *pass_owned = NULL; /* the passphrase, read once when a master change is recovered */
    struct spro_datadir_options o2;
    struct spro_datadir *dd = calloc(1, sizeof *dd);
    if (dd == NULL)
        SPRO_BUG("out of memory");
    spro_group__init(&dd->push_group);
    if (pthread_mutex_init(&dd->readers_mu, NULL) != 0 ||
        pthread_cond_init(&dd->readers_cv, NULL) != 0)
        SPRO_BUG("cannot initialise the readers' mutex");
    *out = NULL;
    if (why != NULL)
        why[0] = '\0';

    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        spro_files__say(why, whylen, dir,
                        "no such data directory (create one with: spro-admin --data DIR init)");
        rc = SPRO_ENOENT;
        goto fail;
    }
    if ((rc = recover_master_change(dir, &o, &o2, &pass_owned, why, whylen)) != 0)
        goto fail;
    /* Every file must be there before any is opened: opening creates WAL
     * files, and a half-present directory must be left exactly as it is. */
    char salt_path[PATH_MAX];
    if ((rc = spro_files__path_join(salt_path, sizeof salt_path, dir, SALT_FILE)) != 0 ||
        (rc = spro_files__path_join(path, sizeof path, dir, MASTER_FILE)) != 0)
        goto fail;
    int salted = access(salt_path, F_OK) == 0;
    if (salted && access(path, F_OK) == 0) {
        spro_files__say(
            why, whylen, dir,
            "holds both master.key and master.salt; keep only the one that opens keys.db");
        rc = SPRO_ECONFIG;
        goto fail;
    }
    const char *needed[] = {salted ? SALT_FILE : MASTER_FILE, DATA_FILE, KEYS_FILE};
    for (size_t i = 0; i < 3; i++) {
        if ((rc = spro_files__path_join(path, sizeof path, dir, needed[i])) != 0)
            goto fail;
        if (access(path, F_OK) != 0) {
            spro_files__say(why, whylen, path, "missing; this is not a complete data directory");
            rc = SPRO_ENOENT;
            goto fail;
        }
    }
    if (!salted && spro_datadir_options_have_passphrase(o)) {
        spro_files__path_join(path, sizeof path, dir, MASTER_FILE);
        spro_files__say(
            why, whylen, path,
            "this data directory has a key file, not a passphrase; leave out --passphrase-file "
            "and --passphrase-fd");
        rc = SPRO_ECONFIG;
        goto fail;
    }
    if (salted) {
        rc = unlock_master(salt_path, o, &dd->master, why, whylen);
    } else {
        spro_files__path_join(path, sizeof path, dir, MASTER_FILE);
        rc = read_master(path, &dd->master, why, whylen);
    }
    if (rc != 0)
        goto fail;
    spro_files__path_join(path, sizeof path, dir, KEYS_FILE);
    if ((rc = server_key_precheck(path, dd->master)) != 0) {
        say_wrong_key(why, whylen, path, salted);
        goto fail;
    }
    if ((rc = spro_store__open(path, 0, spro_store__keys_migrations,
                               spro_store__keys_migrations_count, &dd->keys, &version, why,
                               whylen)) != 0)
        goto fail;
    subkey = spro_secret_alloc(SPRO_KEY_BYTES);
    spro_crypto_derive(subkey, dd->master, 1, SRVKEYS_CTX);
    dd->noise_sk = spro_secret_alloc(SPRO_KEY_BYTES);
    dd->sign_sk = spro_secret_alloc(SPRO_SIGN_SECRET_BYTES);
    if ((rc = get_server_key(dd->keys, subkey, "noise", dd->noise_pk, dd->noise_sk,
                             SPRO_KEY_BYTES)) != 0 ||
        (rc = get_server_key(dd->keys, subkey, "sign", dd->sign_pk, dd->sign_sk,
                             SPRO_SIGN_SECRET_BYTES)) != 0) {
        if (rc == SPRO_EINTEGRITY)
            say_wrong_key(why, whylen, path, salted);
        else
            spro_files__say(why, whylen, path, spro_strerror(rc));
        goto fail;
    }
    if ((rc = open_keyring(dd, dir, path, why, whylen)) != 0)
        goto fail;
    dd->audit_key = spro_secret_alloc(SPRO_KEY_BYTES);
    spro_audit_key_derive(dd->audit_key, dd->master);
    strcpy(dd->audit_actor, "server");
    spro_files__path_join(path, sizeof path, dir, DATA_FILE);
    if ((rc = spro_store__open(path, 0, spro_store__data_migrations,
                               spro_store__data_migrations_count, &dd->data, &dd->schema, why,
                               whylen)) != 0)
        goto fail;
    /* The reader pairs are opened when a pull first needs them: a command
     * that never pulls (spro-admin) never opens them. */
    spro_files__path_join(dd->data_path, sizeof dd->data_path, dir, DATA_FILE);
    spro_files__path_join(dd->keys_path, sizeof dd->keys_path, dir, KEYS_FILE);
    spro_files__path_join(path, sizeof path, dir, GEN_FILE);
    if ((rc = map_generation(path, &dd->gen)) != 0) {
        spro_files__say(why, whylen, path, spro_strerror(rc));
        goto fail;
    }
    spro_secret_free(subkey);
    spro_secret_free(pass_owned);
    /* An erasure that a crash interrupted after its data.db step is
     * finished now (docs/SYNC.md, "Erasure and retention"); if a database
     * is busy, it stays pending for the next open. */
    spro_subject__finish_pending(dd);
    /* Siblings sealed one by one before data.db migration 11 become their
     * records' sealed field sets (once; nothing to do afterwards). */
    size_t converted, left;
    if ((rc = spro_sync__convert_fields(dd, &converted, &left)) != 0) {
        spro_files__path_join(path, sizeof path, dir, DATA_FILE);
        if (why != NULL)
            snprintf(why, whylen,
                     "%s: cannot move sealed values into field sets (data.db migration 11): %s; "
                     "nothing was lost, open it again",
                     path, spro_strerror(rc));
        goto fail_late;
    }
    *out = dd;
    return 0;
fail_late:
    spro_datadir_close(dd);
    return rc;
fail:
    spro_secret_free(subkey);
    spro_secret_free(pass_owned);
    spro_datadir_close(dd);
    return rc;
}

void spro_datadir_close(struct spro_datadir *dd)
{
    if (dd == NULL)
        return;
    if (dd->gen != NULL)
        munmap(dd->gen, sizeof *dd->gen);
    for (size_t i = 0; i < SPRO_DATADIR_READERS; i++) {
        if (dd->readers[i].busy)
            SPRO_BUG("spro_datadir_close: a reader pair is still taken");
        spro_store__close(dd->readers[i].data);
        spro_store__close(dd->readers[i].keys);
    }
    pthread_mutex_destroy(&dd->readers_mu);
    pthread_cond_destroy(&dd->readers_cv);
    spro_store__close(dd->data);
    spro_store__close(dd->keys);
    if (dd->keys_gen != NULL)
        munmap(dd->keys_gen, sizeof *dd->keys_gen);
    spro_keyring__destroy(dd->keyring);
    spro_secret_free(dd->kwk);
    spro_secret_free(dd->master);
    spro_secret_free(dd->noise_sk);
    spro_secret_free(dd->sign_sk);
    spro_secret_free(dd->audit_key);
    spro_group__destroy(&dd->push_group);
    free(dd);
}

struct spro_group *spro_datadir__push_group(struct spro_datadir *dd)
{
    return &dd->push_group;
}

const uint8_t *spro_datadir_noise_public(const struct spro_datadir *dd)
{
    return dd->noise_pk;
}

const uint8_t *spro_datadir_sign_public(const struct spro_datadir *dd)
{
    return dd->sign_pk;
}

int spro_datadir_schema(const struct spro_datadir *dd)
{
    return dd->schema;
}

int spro_datadir_ping(struct spro_datadir *dd)
{
    return spro_store__ping(dd->data);
}

const uint8_t *spro_datadir_noise_secret(const struct spro_datadir *dd)
{
    return dd->noise_sk;
}

struct spro_db *spro_datadir__data(struct spro_datadir *dd)
{
    return dd->data;
}

int spro_datadir__readers_take(struct spro_datadir *dd, struct spro_db **data,
                               struct spro_db **keys, size_t *pair)
{
    pthread_mutex_lock(&dd->readers_mu);
    size_t i = 0;
    for (;;) {
        for (i = 0; i < SPRO_DATADIR_READERS && dd->readers[i].busy; i++)
            ;
        if (i < SPRO_DATADIR_READERS)
            break;
        pthread_cond_wait(&dd->readers_cv, &dd->readers_mu);
    }
    struct reader_pair *r = &dd->readers[i];
    r->busy = 1;
    pthread_mutex_unlock(&dd->readers_mu);
    /* Taken: opened here, out of the mutex, the first time. */
    int version, rc = 0;
    if (r->data == NULL)
        rc = spro_store__open(dd->data_path, 0, spro_store__data_migrations,
                              spro_store__data_migrations_count, &r->data, &version, NULL, 0);
    if (rc == 0 && r->keys == NULL)
        rc = spro_store__open(dd->keys_path, 0, spro_store__keys_migrations,
                              spro_store__keys_migrations_count, &r->keys, &version, NULL, 0);
    if (rc != 0) {
        spro_datadir__readers_give(dd, i);
        return rc == SPRO_ENOMEM ? rc : SPRO_ESTORE;
    }
    *data = r->data;
    *keys = r->keys;
    *pair = i;
    return 0;
}

void spro_datadir__readers_give(struct spro_datadir *dd, size_t i)
{
    if (i >= SPRO_DATADIR_READERS)
        SPRO_BUG("spro_datadir__readers_give: no such pair");
    pthread_mutex_lock(&dd->readers_mu);
    if (!dd->readers[i].busy)
        SPRO_BUG("spro_datadir__readers_give: the pair was not taken");
    dd->readers[i].busy = 0;
    pthread_cond_signal(&dd->readers_cv);
    pthread_mutex_unlock(&dd->readers_mu);
}

struct spro_db *spro_datadir__keys(struct spro_datadir *dd)
{
    return dd->keys;
}

const uint8_t *spro_datadir__master(const struct spro_datadir *dd)
{
    return dd->master;
}

const uint8_t *spro_datadir__root(const struct spro_datadir *dd)
{
    return dd->master;
}

const uint8_t *spro_datadir__key_wrapping_key(const struct spro_datadir *dd)
{
    return dd->kwk;
}

struct spro_keyring *spro_datadir__keyring(struct spro_datadir *dd)
{
    return dd->keyring;
}

uint64_t spro_datadir__keys_generation(const struct spro_datadir *dd)
{
    return __atomic_load_n(dd->keys_gen, __ATOMIC_ACQUIRE);
}

void spro_datadir__keys_changed(struct spro_datadir *dd)
{
    __atomic_add_fetch(dd->keys_gen, 1, __ATOMIC_RELEASE);
}

const uint8_t *spro_datadir__audit_key(const struct spro_datadir *dd)
{
    return dd->audit_key;
}

const char *spro_datadir__audit_actor(const struct spro_datadir *dd)
{
    return dd->audit_actor;
}

const uint8_t *spro_datadir__sign_secret(const struct spro_datadir *dd)
{
    return dd->sign_sk;
}

void spro_audit_set_actor(struct spro_datadir *dd, const char *actor)
{
    size_t n = actor ? strlen(actor) : 0;
    if (n < 1 || n > SPRO_ID_MAX)
        SPRO_BUG("spro_audit_set_actor: actor must be 1 to SPRO_ID_MAX bytes");
    memcpy(dd->audit_actor, actor, n + 1);
}

uint64_t spro_datadir_devices_generation(const struct spro_datadir *dd)
{
    return __atomic_load_n(dd->gen, __ATOMIC_ACQUIRE);
}

void spro_datadir__devices_changed(struct spro_datadir *dd)
{
    __atomic_add_fetch(dd->gen, 1, __ATOMIC_RELEASE);
}
