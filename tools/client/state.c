/*
 * state.c: see state.h.  Every file operation goes through the directory's
 * descriptor (openat, renameat, unlinkat), so a home that is renamed while
 * in use still gets consistent writes, and O_NOFOLLOW keeps symbolic links
 * planted in the home from redirecting them.
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE "device.key"
#define STATE_FILE "state"
#define LOCAL_KEY_FILE "local.key" /* the local store's (sync/local.h) */
#define LOCAL_DB_FILE "local.db"
#define TMP_SUFFIX ".tmp"
#define STATE_MAX 4096 /* bytes of a state file; a full one is under 700 */

__attribute__((format(printf, 4, 5))) static int fail(int rc, char *why, size_t whylen,
                                                      const char *fmt, ...)
{
    if (whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int spro_client_home_open(struct spro_client_home *home, const char *path, bool create,
                          bool *created, char *why, size_t whylen)
{
    home->dirfd = -1;
    snprintf(home->path, sizeof home->path, "%s", path);
    if (created != NULL)
        *created = false;
    if (create && mkdir(path, 0700) == 0) {
        if (created != NULL)
            *created = true;
    } else if (create && errno != EEXIST) {
        int err = errno;
        return fail(-err, why, whylen, "cannot create %s: %s", path, strerror(err));
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return fail(SPRO_ENOENT, why, whylen, "%s does not exist", path);
        return fail(-err, why, whylen, "cannot open %s: %s", path, strerror(err));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK)
            return fail(-EWOULDBLOCK, why, whylen, "%s is in use by another spro-client", path);
        return fail(-err, why, whylen, "cannot lock %s: %s", path, strerror(err));
    }
    home->dirfd = fd;
    return 0;
}

void spro_client_home_close(struct spro_client_home *home)
{
    if (home->dirfd >= 0)
        close(home->dirfd); /* releases the flock */
    home->dirfd = -1;
}

/* ---- Files ---- */

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

/* Replaces name with data atomically: name.tmp, fsync, rename, fsync dir. */
static int replace_file(const struct spro_client_home *home, const char *name, const void *data,
                        size_t len, char *why, size_t whylen)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s" TMP_SUFFIX, name);
    int fd = openat(home->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        return fail(-err, why, whylen, "cannot write %s/%s: %s", home->path, tmp, strerror(err));
    }
    int rc = fchmod(fd, 0600) == 0 ? 0 : -errno; /* in case a stale tmp had another mode */
    if (rc == 0)
        rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(home->dirfd, tmp, home->dirfd, name) != 0)
        rc = -errno;
    if (rc != 0) {
        unlinkat(home->dirfd, tmp, 0);
        return fail(rc, why, whylen, "cannot write %s/%s: %s", home->path, name, strerror(-rc));
    }
    if (fsync(home->dirfd) != 0) {
        int err = errno;
        return fail(-err, why, whylen, "cannot sync %s: %s", home->path, strerror(err));
    }
    return 0;
}

/* Opens name for reading; fills *st.  0, SPRO_ENOENT or -errno. */
static int open_file(const struct spro_client_home *home, const char *name, struct stat *st,
                     int *fd_out, char *why, size_t whylen)
{
    int fd = openat(home->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return fail(SPRO_ENOENT, why, whylen, "%s/%s does not exist", home->path, name);
        return fail(-err, why, whylen, "cannot open %s/%s: %s", home->path, name, strerror(err));
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return fail(SPRO_ECONFIG, why, whylen, "%s/%s is not a regular file", home->path, name);
    }
    *fd_out = fd;
    return 0;
}

/* Reads exactly len bytes (a short file is SPRO_ECONFIG). */
static int read_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return SPRO_ECONFIG;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- The device key ---- */

int spro_client_key_load(const struct spro_client_home *home, uint8_t sk[SPRO_KEY_BYTES], char *why,
                         size_t whylen)
{
    memset(sk, 0, SPRO_KEY_BYTES);
    struct stat st;
    int fd, rc = open_file(home, KEY_FILE, &st, &fd, why, whylen);
    if (rc != 0)
        return rc;
    if ((st.st_mode & 077) != 0)
        rc = fail(SPRO_EPERM, why, whylen,
                  "%s/" KEY_FILE " is readable by group or others (chmod 600 it)", home->path);
    else if (st.st_size != SPRO_KEY_BYTES)
        rc = fail(SPRO_ECONFIG, why, whylen, "%s/" KEY_FILE " is not a %d-byte key", home->path,
                  SPRO_KEY_BYTES);
    else if ((rc = read_exact(fd, sk, SPRO_KEY_BYTES)) != 0)
        rc =
            fail(rc, why, whylen, "cannot read %s/" KEY_FILE ": %s", home->path, spro_strerror(rc));
    close(fd);
    if (rc != 0)
        spro_memzero(sk, SPRO_KEY_BYTES);
    return rc;
}

int spro_client_key_save(const struct spro_client_home *home, const uint8_t sk[SPRO_KEY_BYTES],
                         char *why, size_t whylen)
{
    return replace_file(home, KEY_FILE, sk, SPRO_KEY_BYTES, why, whylen);
}

/* ---- The state file ---- */

/* Only visible ASCII: no spaces, controls or line breaks. */
static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool spro_client_state_id_ok(const uint8_t *id, size_t len)
{
    return len >= 1 && len <= SPRO_CLIENT_ID_MAX && printable((const char *)id, len);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* we write lowercase only */
}

static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* Parses one `key=value` line (NUL-terminated, no newline) into *st; `seen`
 * collects the keys met.  Returns 0 or SPRO_ECONFIG. */
enum {
    SEEN_URL = 1,
    SEEN_KEY = 2,
    SEEN_DEVICE = 4,
    SEEN_USER = 8,
    SEEN_ORG = 16,
    SEEN_TS = 32,
    SEEN_ROLE = 64
};

static int parse_line(char *line, struct spro_client_state *st, unsigned *seen)
{
    char *eq = strchr(line, '=');
    if (eq == NULL)
        return SPRO_ECONFIG;
    *eq = '\0';
    const char *k = line, *v = eq + 1;
    size_t vlen = strlen(v);
    unsigned bit;
    if (strcmp(k, "url") == 0) {
        bit = SEEN_URL;
        if (vlen == 0 || vlen > SPRO_TICKET_URL_MAX || !printable(v, vlen))
            return SPRO_ECONFIG; /* checked in full where it is used */
        memcpy(st->url, v, vlen + 1);
    } else if (strcmp(k, "server_key") == 0) {
        bit = SEEN_KEY;
        if (vlen != 2 * SPRO_KEY_BYTES)
            return SPRO_ECONFIG;
        for (size_t i = 0; i < SPRO_KEY_BYTES; i++) {
            int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return SPRO_ECONFIG;
            st->server_key[i] = (uint8_t)(hi << 4 | lo);
        }
    } else if (strcmp(k, "device") == 0 || strcmp(k, "user") == 0 || strcmp(k, "org") == 0) {
        char *dst = k[0] == 'd' ? st->device : k[0] == 'u' ? st->user : st->org;
        bit = k[0] == 'd' ? SEEN_DEVICE : k[0] == 'u' ? SEEN_USER : SEEN_ORG;
        if (!spro_client_state_id_ok((const uint8_t *)v, vlen))
            return SPRO_ECONFIG;
        memcpy(dst, v, vlen + 1);
    } else if (strcmp(k, "role") == 0) {
        bit = SEEN_ROLE;
        if (vlen >= sizeof st->role || !spro_client_state_id_ok((const uint8_t *)v, vlen))
            return SPRO_ECONFIG;
        memcpy(st->role, v, vlen + 1);
    } else if (strcmp(k, "last_ts") == 0) {
        bit = SEEN_TS;
        if (!parse_u64(v, &st->last_ts))
            return SPRO_ECONFIG;
    } else {
        return SPRO_ECONFIG;
    }
    if (*seen & bit)
        return SPRO_ECONFIG; /* repeated */
    *seen |= bit;
    return 0;
}

int spro_client_state_load(const struct spro_client_home *home, struct spro_client_state *st,
                           char *why, size_t whylen)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    int fd, rc = open_file(home, STATE_FILE, &sb, &fd, why, whylen);
    if (rc != 0)
        return rc;
    char buf[STATE_MAX + 1];
    if (sb.st_size < 1 || sb.st_size > STATE_MAX) {
        close(fd);
        return fail(SPRO_ECONFIG, why, whylen, "%s/" STATE_FILE " has an impossible size",
                    home->path);
    }
    size_t len = (size_t)sb.st_size;
    rc = read_exact(fd, buf, len);
    close(fd);
    if (rc != 0)
        return fail(rc, why, whylen, "cannot read %s/" STATE_FILE ": %s", home->path,
                    spro_strerror(rc));
    buf[len] = '\0';
    if (strlen(buf) != len || buf[len - 1] != '\n') {
        rc = fail(SPRO_ECONFIG, why, whylen, "%s/" STATE_FILE " is not a text file of whole lines",
                  home->path);
        goto out;
    }
    unsigned seen = 0;
    int lineno = 1;
    for (char *line = buf; *line != '\0'; lineno++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        if (parse_line(line, st, &seen) != 0) {
            rc = fail(SPRO_ECONFIG, why, whylen, "%s/" STATE_FILE " line %d is not valid",
                      home->path, lineno);
            goto out;
        }
        line = nl + 1;
    }
    unsigned ids = seen & (SEEN_DEVICE | SEEN_USER | SEEN_ORG);
    if ((seen & (SEEN_URL | SEEN_KEY | SEEN_TS)) != (SEEN_URL | SEEN_KEY | SEEN_TS) ||
        (ids != 0 && ids != (SEEN_DEVICE | SEEN_USER | SEEN_ORG)))
        rc = fail(SPRO_ECONFIG, why, whylen, "%s/" STATE_FILE " is incomplete", home->path);
out:
    if (rc != 0)
        memset(st, 0, sizeof *st);
    return rc;
}

int spro_client_state_save(const struct spro_client_home *home, const struct spro_client_state *st,
                           char *why, size_t whylen)
{
    bool enrolled = st->device[0] != '\0';
    if (st->url[0] == '\0' || !printable(st->url, strlen(st->url)) ||
        (enrolled && (!spro_client_state_id_ok((const uint8_t *)st->device, strlen(st->device)) ||
                      !spro_client_state_id_ok((const uint8_t *)st->user, strlen(st->user)) ||
                      !spro_client_state_id_ok((const uint8_t *)st->org, strlen(st->org)))))
        SPRO_BUG("spro_client_state_save: state not storable");
    char key[2 * SPRO_KEY_BYTES + 1];
    for (size_t i = 0; i < SPRO_KEY_BYTES; i++)
        snprintf(key + 2 * i, 3, "%02x", st->server_key[i]);
    char buf[STATE_MAX];
    int n = snprintf(buf, sizeof buf, "url=%s\nserver_key=%s\n", st->url, key);
    if (enrolled)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "device=%s\nuser=%s\norg=%s\n", st->device,
                      st->user, st->org);
    if (enrolled && st->role[0] != '\0')
        n += snprintf(buf + n, sizeof buf - (size_t)n, "role=%s\n", st->role);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "last_ts=%" PRIu64 "\n", st->last_ts);
    if (n < 0 || (size_t)n >= sizeof buf)
        SPRO_BUG("state file too long");
    return replace_file(home, STATE_FILE, buf, (size_t)n, why, whylen);
}

/* ---- Erasing ---- */

/* Overwrites a key file in place with zeros and syncs it: unlinking alone
 * would leave its blocks on the disk.  0 if done or absent, or -errno. */
static int zero_key_file(const struct spro_client_home *home, const char *name, char *why,
                         size_t whylen)
{
    int fd = openat(home->dirfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT || err == ELOOP) /* nothing, or a link we only unlink */
            return 0;
        return fail(-err, why, whylen, "cannot open %s/%s: %s", home->path, name, strerror(err));
    }
    uint8_t zero[SPRO_KEY_BYTES] = {0};
    int rc = write_all(fd, zero, sizeof zero);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc != 0)
        return fail(rc, why, whylen, "cannot overwrite %s/%s: %s", home->path, name, strerror(-rc));
    return 0;
}

int spro_client_home_erase(const struct spro_client_home *home, char *why, size_t whylen)
{
    /* The device key, then the local store's key: without it local.db's
     * values and ops cannot be opened, whatever is left of its blocks. */
    static const char *const keys[] = {KEY_FILE, KEY_FILE TMP_SUFFIX, LOCAL_KEY_FILE,
                                       LOCAL_KEY_FILE TMP_SUFFIX};
    int first = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int rc = zero_key_file(home, keys[i], first == 0 ? why : NULL, first == 0 ? whylen : 0);
        if (first == 0)
            first = rc;
    }
    static const char *const ours[] = {KEY_FILE,
                                       KEY_FILE TMP_SUFFIX,
                                       STATE_FILE,
                                       STATE_FILE TMP_SUFFIX,
                                       LOCAL_KEY_FILE,
                                       LOCAL_KEY_FILE TMP_SUFFIX,
                                       LOCAL_DB_FILE,
                                       LOCAL_DB_FILE "-wal",
                                       LOCAL_DB_FILE "-shm",
                                       LOCAL_DB_FILE "-journal"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (unlinkat(home->dirfd, ours[i], 0) != 0 && errno != ENOENT && first == 0) {
            int err = errno;
            first = fail(-err, why, whylen, "cannot remove %s/%s: %s", home->path, ours[i],
                         strerror(err));
        }
    if (fsync(home->dirfd) != 0 && first == 0) {
        int err = errno;
        first = fail(-err, why, whylen, "cannot sync %s: %s", home->path, strerror(err));
    }
    return first;
}
