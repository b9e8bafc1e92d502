/*
 * subject.c: spro-admin subject export|erase, retention run: a beneficiary's rights and the
 * retention rules.
 */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"

/* Writes buf to path atomically: a temporary file (mode 0600) beside it,
 * fsync'd, renamed over path, the directory fsync'd.  0 or -errno (nothing
 * left behind). */
static int write_atomic(const char *path, const uint8_t *buf, size_t len)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int spro_admin__cmd_subject_export(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *ben, *out = NULL;
    const struct opt opts[] = {{"--out", "FILE", 0, &out, NULL}};
    static const char *const posnames[] = {"BENEFICIARY_ID"};
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, opts, 1, &ben, posnames, 1, &dd);
    if (rc != 0)
        return rc;
    char why[512] = "";
    struct spro_buf b = {0};
    rc = spro_subject_export(dd, ben, spro_admin__now_ms(), &b, why, sizeof why);
    spro_datadir_close(dd);
    if (rc == 0 && out != NULL) {
        int w = write_atomic(out, b.data, b.len);
        if (w != 0) {
            snprintf(why, sizeof why, "%s: %s", out, strerror(-w));
            rc = w;
        } else {
            fprintf(stderr, "wrote %s (%zu bytes, mode 0600)\n", out, b.len);
        }
    } else if (rc == 0 && fwrite(b.data, 1, b.len, stdout) != b.len) {
        snprintf(why, sizeof why, "cannot write the export to standard output");
        rc = -EIO;
    }
    if (b.data != NULL)
        spro_memzero(b.data, b.cap);
    spro_buf_free(&b);
    return rc == 0 ? 0 : spro_admin__failed(c, rc, why);
}

/* The longest reason read from a file or descriptor (erase.c refuses a
 * longer one), and room for its line end and a NUL. */
#define REASON_MAX 1024
#define REASON_CAP (REASON_MAX + 3)

/* Reads the reason of an erasure, the first line (without LF or CRLF) of
 * the file `file` (when not NULL: opened once, not through a symbolic
 * link, a regular file that group and others cannot read, like a
 * passphrase file) or else of the descriptor fd, into out[REASON_CAP]
 * (the caller wipes it).  0, or the exit status after printing why. */
static int read_reason(const struct command *c, const char *file, int fd, char *out)
{
    char name[64], why[600];
    const char *src = file;
    if (file != NULL) {
        /* O_NONBLOCK: a FIFO in its place must not hang the open. */
        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat st;
        const char *bad = NULL;
        if (fd < 0)
            bad = errno == ELOOP ? "is a symbolic link; give the file itself" : strerror(errno);
        else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            bad = "not a regular file";
        else if ((st.st_mode & 077) != 0)
            bad = "readable or writable by group or others; run: chmod 600 on it";
        if (bad != NULL) {
            if (fd >= 0)
                close(fd);
            snprintf(why, sizeof why, "%s: %s", file, bad);
            return spro_admin__failed(c, SPRO_EPERM, why);
        }
    } else {
        snprintf(name, sizeof name, "reason descriptor %d", fd);
        src = name;
    }
    size_t n = 0;
    int err = 0;
    while (n < REASON_CAP - 1 && memchr(out, '\n', n) == NULL) {
        ssize_t r = read(fd, out + n, REASON_CAP - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : 0;
            break;
        }
        n += (size_t)r;
    }
    if (file != NULL)
        close(fd);
    char *nl = memchr(out, '\n', n);
    size_t len = nl != NULL ? (size_t)(nl - out) : n;
    if (len > 0 && out[len - 1] == '\r')
        len--;
    spro_memzero(out + len, REASON_CAP - len);
    if (err == 0 && len > 0 && len <= REASON_MAX)
        return 0;
    snprintf(why, sizeof why, "%s: %s", src,
             err != 0   ? strerror(err)
             : len == 0 ? "empty reason (it is the first line)"
                        : "reason longer than 1024 bytes");
    return spro_admin__failed(c, err != 0 ? -err : SPRO_ECONFIG, why);
}

int spro_admin__cmd_subject_erase(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *ben, *reason = NULL, *reason_file = NULL, *reason_fd = NULL;
    const struct opt opts[] = {{"--reason", "TEXT", 0, &reason, NULL},
                               {"--reason-file", "FILE", 0, &reason_file, NULL},
                               {"--reason-fd", "N", 0, &reason_fd, NULL}};
    static const char *const posnames[] = {"BENEFICIARY_ID"};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 3, &ben, posnames, 1);
    if (rc != 0)
        return rc;
    int given = (reason != NULL) + (reason_file != NULL) + (reason_fd != NULL), fd = -1;
    if (given == 0)
        return spro_admin__usage_error(
            c, "missing --reason TEXT (or --reason-file FILE, or --reason-fd N)");
    if (given > 1)
        return spro_admin__usage_error(
            c, "give one of --reason, --reason-file and --reason-fd, not several");
    if (reason != NULL && reason[0] == '\0')
        return spro_admin__usage_error(c, "--reason needs a text (why the data is erased)");
    if (reason_fd != NULL && spro_admin__parse_fd(reason_fd, &fd) != 0)
        return spro_admin__usage_error(c, "--reason-fd needs a file descriptor number");
    /* From a file or a descriptor, the reason stays out of the command line
     * (ps, /proc, shell history); wiped after use. */
    char text[REASON_CAP] = "";
    if (reason == NULL) {
        if ((rc = read_reason(c, reason_file, fd, text)) != 0) {
            spro_memzero(text, sizeof text);
            return rc;
        }
        reason = text;
    }
    struct spro_datadir *dd = spro_admin__open_dir(c, dir);
    if (dd == NULL) {
        spro_memzero(text, sizeof text);
        return 1;
    }
    char why[512] = "", at[32];
    struct spro_erasure e;
    rc = spro_subject_erase(dd, ben, "request", reason, spro_admin__now_ms(), &e, why, sizeof why);
    spro_memzero(text, sizeof text);
    spro_datadir_close(dd);
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
    spro_admin__iso8601(at, e.at_ms / 1000);
    if (e.resumed)
        printf("beneficiary %s: the erasure begun %s is finished now\n", ben, at);
    else
        printf("erased beneficiary %s (%s): personal data and its data key destroyed, %zu "
               "removal events for devices%s\n",
               ben, at, e.removals, e.erased > 1 ? ", with the beneficiaries merged into it" : "");
    if (e.pending)
        printf("note: %s\n", why);
    return 0;
}

/* Appends the retention rules of a config file (lines "retention = SPEC",
 * the server's format) to rules.  0, or the exit status after printing
 * why. */
static int rules_from_file(const struct command *c, const char *path,
                           struct spro_retention_rule *rules, size_t cap, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: --config %s: %s\n", spro_admin__title(c), path, strerror(errno));
        return 1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        char *hash = strchr(line, '#'), *s = line, *eq;
        if (hash != NULL)
            *hash = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        if (strncmp(s, "retention", 9) != 0)
            continue;
        s += 9;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '=')
            continue; /* retention-interval, or another option */
        eq = s + 1;
        while (*eq == ' ' || *eq == '\t')
            eq++;
        size_t len = strcspn(eq, " \t\r\n");
        eq[len] = '\0';
        if (*n == cap || spro_retention_parse(eq, &rules[*n]) != 0) {
            fprintf(stderr, "%s: %s:%d: retention %s: expected PROGRAMME:YEARS\n",
                    spro_admin__title(c), path, lineno, eq);
            rc = 1;
        } else {
            ++*n;
        }
    }
    fclose(f);
    return rc;
}

static void report_due(const struct spro_retention_due *d, void *arg)
{
    const int *dry = arg;
    char closed[32], due[32];
    spro_admin__iso8601(closed, d->closed_at_ms / 1000);
    spro_admin__iso8601(due, d->due_at_ms / 1000);
    printf("%s  %s  closed %s  due %s  rule %s%s%s\n",
           *dry      ? "due   "
           : d->rc   ? "FAILED"
           : d->kept ? "kept  "
                     : "erased",
           d->ben, closed, due, d->programme, d->rc ? ": " : "", d->rc ? spro_strerror(d->rc) : "");
}

#define RULES_MAX 64

int spro_admin__cmd_retention_run(const struct command *c, const char *dir, int argc, char **argv)
{
    struct spro_retention_rule rules[RULES_MAX];
    size_t n = 0;
    const char *config = NULL;
    int dry = 0;
    /* --rule is repeated: taken out before the common parser. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0, rc = 0;
    if (rest == NULL)
        return spro_admin__failed(c, SPRO_ENOMEM, NULL);
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *spec = NULL;
        if (strcmp(argv[i], "--rule") == 0) {
            if (i + 1 >= argc)
                rc = spro_admin__usage_error(c, "--rule needs a value (--rule PROGRAMME:YEARS)");
            else
                spec = argv[++i];
        } else if (strncmp(argv[i], "--rule=", 7) == 0) {
            spec = argv[i] + 7;
        } else {
            rest[nrest++] = argv[i];
        }
        if (spec != NULL && (n == RULES_MAX || spro_retention_parse(spec, &rules[n++]) != 0))
            rc = spro_admin__usage_error(
                c,
                "--rule %s: expected PROGRAMME:YEARS (PROGRAMME of A-Z a-z 0-9 "
                ". _ - or *, YEARS 0 to 200)",
                spec);
    }
    const struct opt opts[] = {{"--config", "FILE", 0, &config, NULL},
                               {"--dry-run", NULL, 0, NULL, &dry}};
    if (rc == 0)
        rc = spro_admin__parse_args(c, nrest, rest, opts, 2, NULL, NULL, 0);
    free(rest);
    if (rc == 0 && config != NULL)
        rc = rules_from_file(c, config, rules, RULES_MAX, &n);
    if (rc != 0)
        return rc;
    if (n == 0)
        return spro_admin__usage_error(c, "no rule: give --rule PROGRAMME:YEARS or --config FILE");
    struct spro_datadir *dd = spro_admin__open_dir(c, dir);
    if (dd == NULL)
        return 1;
    size_t due = 0;
    rc = spro_retention_run(dd, rules, n, spro_admin__now_ms(), dry, report_due, &dry, &due);
    spro_datadir_close(dd);
    printf("%zu beneficiar%s due%s\n", due, due == 1 ? "y" : "ies",
           dry   ? " (dry run: nothing erased)"
           : due ? ", anonymised"
                 : "");
    return rc == 0 ? 0 : spro_admin__failed(c, rc, NULL);
}
