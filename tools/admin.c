/*
 * spro-admin: the operators' command line.
 *
 *   spro-admin --data DIR init                     create a data directory
 *   spro-admin --data DIR info                     show its schema and the server's keys
 *   spro-admin --data DIR backup DEST              copy data.db and keys.db, online
 *   spro-admin restore SRC --data DIR ...          make a data directory from a backup
 *   spro-admin --data DIR check                    integrity of the databases and keys
 *   spro-admin --data DIR org add ORG_ID ...       add an organisation
 *   spro-admin --data DIR user add USER_ID ...     add a counsellor
 *   spro-admin --data DIR device invite ...        issue an enrolment ticket
 *   spro-admin --data DIR device list|revoke|wipe  manage devices
 *
 * Commands are listed in one table; each has its own --help.  Exit status:
 * 0 on success, 1 when the command failed (unknown or duplicate ids, a
 * refused state change, the database), 2 for a usage error (unknown
 * option, missing argument, a value of the wrong form).  Every command but
 * init and restore works while spro-server runs on the same data directory.
 *
 * A data directory whose master key comes from a passphrase (master.salt)
 * needs it for every command that opens the directory (those whose table
 * entry has `keyed` set): --passphrase-file FILE or --passphrase-fd N,
 * before or after the command's name.  The passphrase is read once, into
 * guarded memory, and wiped after use.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <qrencode.h>

#include "crypto/crypto.h"
#include "sync/sync.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

struct command {
    const char *group; /* first word */
    const char *name;  /* second word, or NULL for a one-word command */
    const char *args;  /* synopsis of the arguments */
    const char *summary;
    const char *help; /* shown by --help after the usage line */
    int (*fn)(const struct command *c, const char *dir, int argc, char **argv);
    int keyed; /* opens the directory: takes --passphrase-file and --passphrase-fd */
};

/* The passphrase options, from before or after the command name. */
static const char *passphrase_file;
static const char *passphrase_fd;
static int data_given; /* --data was on the command line */

#define PASSPHRASE_HELP                                                                            \
    "  --passphrase-file FILE  the passphrase of a data directory with master.salt:\n"             \
    "                          the first line of FILE (mode 0600)\n"                               \
    "  --passphrase-fd N       the same, read from file descriptor N\n"

/* ---- Shared helpers ---- */

/* "spro-admin device invite" (static storage, per call). */
static const char *title(const struct command *c)
{
    static char t[64];
    snprintf(t, sizeof t, "spro-admin %s%s%s", c->group, c->name ? " " : "",
             c->name ? c->name : "");
    return t;
}

static void print_help(const struct command *c)
{
    printf("usage: spro-admin %s%s%s%s%s%s\n%s%s",
           strstr(c->args, "--data DIR") ? "" : "--data DIR ", c->group, c->name ? " " : "",
           c->name ? c->name : "", c->args[0] ? " " : "", c->args, c->help,
           c->keyed ? PASSPHRASE_HELP : "");
}

/* A usage error: prints it with a pointer to --help; returns 2. */
__attribute__((format(printf, 2, 3))) static int usage_error(const struct command *c,
                                                             const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", title(c));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", title(c));
    return 2;
}

/* A failed call of the sync API: prints why (or the code's message).
 * Returns 2 for a value of the wrong form (SPRO_ECONFIG), else 1. */
static int failed(const struct command *c, int rc, const char *why)
{
    fprintf(stderr, "%s: %s\n", title(c), why && why[0] ? why : spro_strerror(rc));
    return rc == SPRO_ECONFIG ? 2 : 1;
}

/* A descriptor number, 0..INT_MAX: 0 and *fd, or -1. */
static int parse_fd(const char *s, int *fd)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    *fd = (int)v;
    return 0;
}

/* The options naming the passphrase source given on the command line. */
static struct spro_datadir_options passphrase_options(void)
{
    struct spro_datadir_options o = {0};
    o.passphrase_file = passphrase_file;
    if (passphrase_fd != NULL && parse_fd(passphrase_fd, &o.passphrase_fd) == 0)
        o.has_passphrase_fd = 1;
    return o;
}

/* For a command that opens a directory twice: reads the passphrase that o
 * names (if any) once, into guarded memory (*pass: free it with
 * spro_secret_free, which wipes it), and points o at it.  0, or the exit
 * status after printing why. */
static int passphrase_once(const struct command *c, struct spro_datadir_options *o, char **pass)
{
    char why[512] = "";
    size_t len = 0;
    *pass = NULL;
    if (o->passphrase_file == NULL && !o->has_passphrase_fd)
        return 0;
    int rc =
        spro_passphrase_read(o->passphrase_file, o->passphrase_fd, pass, &len, why, sizeof why);
    if (rc != 0)
        return failed(c, rc, why);
    o->passphrase = *pass;
    o->passphrase_len = len;
    o->passphrase_file = NULL;
    o->has_passphrase_fd = 0;
    return 0;
}

/* Opens the data directory, or prints why not and returns NULL. */
static struct spro_datadir *open_dir(const struct command *c, const char *dir)
{
    char why[512] = "";
    struct spro_datadir *dd;
    struct spro_datadir_options o = passphrase_options();
    int rc = spro_datadir_open_ex(dir, &o, &dd, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", title(c), why[0] ? why : spro_strerror(rc));
        return NULL;
    }
    return dd;
}

/* One option of a command: with a value (`value` set: "--name VALUE" or
 * "--name=VALUE") or a flag (`flag` set). */
struct opt {
    const char *name;    /* "--name" */
    const char *metavar; /* "NAME", shown when it is missing */
    int required;
    const char **value;
    int *flag;
};

/* Parses argv: the options in opts[0..nopts), and exactly npos positional
 * arguments into pos (named posnames in messages).  Returns 0, or 2 after
 * printing the usage error. */
static int parse_args(const struct command *c, int argc, char **argv, const struct opt *opts,
                      size_t nopts, const char **pos, const char *const *posnames, size_t npos)
{
    size_t got = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (got == npos)
                return usage_error(c, "unexpected argument '%s'", a);
            pos[got++] = a;
            continue;
        }
        const struct opt *o = NULL;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        for (size_t k = 0; k < nopts && o == NULL; k++)
            if (strlen(opts[k].name) == n && strncmp(a, opts[k].name, n) == 0)
                o = &opts[k];
        const struct opt common[] = {{"--passphrase-file", "FILE", 0, &passphrase_file, NULL},
                                     {"--passphrase-fd", "N", 0, &passphrase_fd, NULL}};
        for (size_t k = 0; k < 2 && o == NULL && c->keyed; k++)
            if (strlen(common[k].name) == n && strncmp(a, common[k].name, n) == 0)
                o = &common[k];
        if (o == NULL)
            return usage_error(c, "unknown option '%.*s'", (int)n, a);
        if (o->flag != NULL) {
            if (eq != NULL)
                return usage_error(c, "%s takes no value", o->name);
            *o->flag = 1;
            continue;
        }
        if (*o->value != NULL)
            return usage_error(c, "%s given twice", o->name);
        if (eq != NULL)
            *o->value = eq + 1;
        else if (i + 1 < argc)
            *o->value = argv[++i];
        else
            return usage_error(c, "%s needs a value (%s %s)", o->name, o->name, o->metavar);
    }
    if (got < npos)
        return usage_error(c, "missing %s", posnames[got]);
    for (size_t k = 0; k < nopts; k++)
        if (opts[k].required && *opts[k].value == NULL)
            return usage_error(c, "missing %s %s", opts[k].name, opts[k].metavar);
    int fd;
    if (passphrase_fd != NULL && parse_fd(passphrase_fd, &fd) != 0)
        return usage_error(c, "--passphrase-fd takes a file descriptor number, not '%s'",
                           passphrase_fd);
    if (passphrase_fd != NULL && passphrase_file != NULL)
        return usage_error(c, "give --passphrase-file or --passphrase-fd, not both");
    return 0;
}

/* ISO 8601 UTC, e.g. 2024-05-01T09:30:00Z. */
static void iso8601(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)t);
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* ---- init, info ---- */

/* A byte count with an optional K, M or G suffix: 0 and *v, or -1. */
static int parse_size(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long x = strtoull(s, &end, 10);
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (errno != 0 || *end != '\0' || x > (1ull << 40))
        return -1;
    *v = (uint64_t)x << shift;
    return 0;
}

static int cmd_init(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *ops_s = NULL, *mem_s = NULL;
    const struct opt opts[] = {{"--kdf-ops", "N", 0, &ops_s, NULL},
                               {"--kdf-mem", "BYTES", 0, &mem_s, NULL}};
    int rc = parse_args(c, argc, argv, opts, 2, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir_options o = passphrase_options();
    int salted = spro_datadir_options_have_passphrase(&o);
    if ((ops_s != NULL || mem_s != NULL) && !salted)
        return usage_error(c, "--kdf-ops and --kdf-mem go with --passphrase-file or "
                              "--passphrase-fd");
    if (ops_s != NULL && (parse_size(ops_s, &o.kdf_ops) != 0 || strpbrk(ops_s, "KkMmGg") ||
                          o.kdf_ops < SPRO_PWHASH_OPS_MIN || o.kdf_ops > SPRO_PWHASH_OPS_MAX))
        return usage_error(c, "--kdf-ops must be a whole number from %u to %u, not '%s'",
                           SPRO_PWHASH_OPS_MIN, SPRO_PWHASH_OPS_MAX, ops_s);
    if (mem_s != NULL && (parse_size(mem_s, &o.kdf_mem) != 0 || o.kdf_mem < SPRO_PWHASH_MEM_MIN ||
                          o.kdf_mem > SPRO_PWHASH_MEM_MAX))
        return usage_error(c,
                           "--kdf-mem must be a size from 8K to 4G (suffix K, M or G), not "
                           "'%s'",
                           mem_s);
    char why[512] = "";
    char *pass;
    /* Read once: init derives the key, then the reopen below derives it again. */
    if ((rc = passphrase_once(c, &o, &pass)) != 0)
        return rc;
    rc = spro_datadir_init_ex(dir, &o, why, sizeof why);
    if (rc != 0) {
        spro_secret_free(pass);
        failed(c, rc, why);
        return 1;
    }
    struct spro_datadir *dd;
    rc = spro_datadir_open_ex(dir, &o, &dd, why, sizeof why);
    spro_secret_free(pass);
    if (rc != 0) {
        fprintf(stderr, "%s: created, but cannot reopen: %s\n", title(c), why);
        return 1;
    }
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(dd));
    printf("initialised %s (schema %d)\n", dir, spro_datadir_schema(dd));
    if (salted) {
        uint64_t ops = o.kdf_ops ? o.kdf_ops : SPRO_PWHASH_OPS_DEFAULT;
        uint64_t mem = o.kdf_mem ? o.kdf_mem : SPRO_PWHASH_MEM_DEFAULT;
        printf("master key: Argon2id of the passphrase (%s/master.salt: opslimit %llu, memlimit "
               "%llu bytes); every command on %s needs the passphrase\n",
               dir, (unsigned long long)ops, (unsigned long long)mem, dir);
        if (ops < SPRO_PWHASH_OPS_INTERACTIVE || mem < SPRO_PWHASH_MEM_INTERACTIVE)
            fprintf(stderr,
                    "%s: warning: Argon2id costs below libsodium's INTERACTIVE level "
                    "(opslimit 2, memlimit 64M): for tests only\n",
                    title(c));
    } else {
        printf("master key: %s/master.key (mode 0600)\n", dir);
    }
    printf("server key fingerprint: %s\n", fp);
    spro_datadir_close(dd);
    return 0;
}

static int cmd_info(const struct command *c, const char *dir, int argc, char **argv)
{
    int rc = parse_args(c, argc, argv, NULL, 0, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char fp[SPRO_FINGERPRINT_CHARS], pk[2 * SPRO_KEY_BYTES + 1];
    printf("data: %s\nschema: %d\n", dir, spro_datadir_schema(dd));
    hex(pk, spro_datadir_noise_public(dd), SPRO_KEY_BYTES);
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(dd));
    printf("noise public key: %s\nserver key fingerprint: %s\n", pk, fp);
    hex(pk, spro_datadir_sign_public(dd), SPRO_KEY_BYTES);
    printf("signing public key: %s\n", pk);
    spro_datadir_close(dd);
    return 0;
}

/* ---- org add, user add ---- */

static int cmd_org_add(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *id, *name = NULL, *kind = NULL;
    const struct opt opts[] = {{"--name", "NAME", 1, &name, NULL},
                               {"--kind", "KIND", 1, &kind, NULL}};
    static const char *const posnames[] = {"ORG_ID"};
    int rc = parse_args(c, argc, argv, opts, 2, &id, posnames, 1);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char why[512] = "";
    rc = spro_org_add(dd, id, name, kind, why, sizeof why);
    spro_datadir_close(dd);
    if (rc != 0)
        return failed(c, rc, why);
    printf("added organisation %s (%s): %s\n", id, kind, name);
    return 0;
}

static int cmd_user_add(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *id, *org = NULL, *role = NULL;
    const struct opt opts[] = {{"--org", "ORG_ID", 1, &org, NULL},
                               {"--role", "ROLE", 0, &role, NULL}};
    static const char *const posnames[] = {"USER_ID"};
    int rc = parse_args(c, argc, argv, opts, 2, &id, posnames, 1);
    if (rc != 0)
        return rc;
    if (role == NULL)
        role = "counsellor";
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char why[512] = "";
    rc = spro_user_add(dd, id, org, role, why, sizeof why);
    spro_datadir_close(dd);
    if (rc != 0)
        return failed(c, rc, why);
    printf("added user %s (%s) to organisation %s\n", id, role, org);
    return 0;
}

/* ---- device invite ---- */

/* Light modules are drawn (the quiet zone too), dark ones left blank: on a
 * terminal with light text on a dark background the code reads dark on
 * light, as scanners expect.  Each character holds two rows of modules. */
static int module_light(const QRcode *q, int x, int y)
{
    if (x < 0 || y < 0 || x >= q->width || y >= q->width)
        return 1; /* quiet zone */
    return !(q->data[y * q->width + x] & 1);
}

/* Prints s as a QR code (ECLEVEL M) with a quiet zone of `quiet` modules,
 * in Unicode half blocks.  Returns 0 or -errno. */
static int print_qr(const char *s, int quiet)
{
    QRcode *q = QRcode_encodeString(s, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (q == NULL)
        return errno ? -errno : -EINVAL;
    int size = q->width + 2 * quiet;
    for (int y = 0; y < size; y += 2) {
        for (int x = 0; x < size; x++) {
            int top = module_light(q, x - quiet, y - quiet);
            int bottom = y + 1 < size && module_light(q, x - quiet, y + 1 - quiet);
            fputs(top ? (bottom ? "\u2588" : "\u2580") : (bottom ? "\u2584" : " "), stdout);
        }
        putchar('\n');
    }
    spro_memzero(q->data, (size_t)q->width * (size_t)q->width); /* it encodes the secret */
    QRcode_free(q);
    return 0;
}

static int cmd_device_invite(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *user = NULL, *url = NULL, *ttl_s = NULL;
    int no_qr = 0;
    const struct opt opts[] = {{"--user", "USER_ID", 1, &user, NULL},
                               {"--url", "URL", 0, &url, NULL},
                               {"--ttl", "SECONDS", 0, &ttl_s, NULL},
                               {"--no-qr", NULL, 0, NULL, &no_qr}};
    int rc = parse_args(c, argc, argv, opts, 4, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    long long ttl = SPRO_TICKET_DEFAULT_TTL;
    if (ttl_s != NULL) {
        char *end;
        errno = 0;
        ttl = strtoll(ttl_s, &end, 10);
        if (errno != 0 || end == ttl_s || *end != '\0' || ttl < SPRO_TICKET_MIN_TTL ||
            ttl > SPRO_TICKET_MAX_TTL)
            return usage_error(c, "--ttl must be a whole number of seconds from %d to %d, not '%s'",
                               SPRO_TICKET_MIN_TTL, SPRO_TICKET_MAX_TTL, ttl_s);
    }
    struct spro_ticket_string ts = {.id = "0000000000000000"};
    char line[SPRO_TICKET_STRING_MAX];
    if (url == NULL)
        url = DEFAULT_URL;
    /* Check the URL before a ticket is issued for nothing. */
    if (strlen(url) > SPRO_TICKET_URL_MAX ||
        (snprintf(ts.url, sizeof ts.url, "%s", url), spro_ticket_format(line, &ts) != 0))
        return usage_error(c,
                           "invalid --url '%s': use http:// or https://, a host and an optional "
                           "port, no path",
                           url);

    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char why[512] = "";
    struct spro_ticket t;
    rc = spro_ticket_issue(dd, user, (int64_t)time(NULL), ttl, &t, why, sizeof why);
    if (rc == 0) {
        spro_crypto_fingerprint_bytes(ts.fingerprint, spro_datadir_noise_public(dd));
        memcpy(ts.id, t.id, sizeof ts.id);
        memcpy(ts.secret, t.secret, sizeof ts.secret);
        rc = spro_ticket_format(line, &ts);
        snprintf(why, sizeof why, "cannot format the ticket");
    }
    spro_datadir_close(dd);
    if (rc != 0) {
        spro_memzero(&t, sizeof t);
        spro_memzero(&ts, sizeof ts);
        return failed(c, rc, why);
    }
    char expires[32];
    iso8601(expires, t.expires_at);
    printf("ticket: %s\nexpires: %s\n", line, expires);
    if (!no_qr && (rc = print_qr(line, 2)) != 0)
        fprintf(stderr, "%s: cannot draw the QR code: %s (the ticket line above is valid)\n",
                title(c), spro_strerror(rc));
    fflush(stdout);
    spro_memzero(&t, sizeof t);
    spro_memzero(&ts, sizeof ts);
    spro_memzero(line, sizeof line);
    return 0;
}

/* ---- device list, revoke, wipe ---- */

struct device_rows {
    struct spro_device *v;
    size_t n, cap;
};

static int collect(const struct spro_device *d, void *arg)
{
    struct device_rows *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 32;
        if ((r->v = realloc(r->v, r->cap * sizeof *r->v)) == NULL) {
            fprintf(stderr, "spro-admin: out of memory\n");
            abort();
        }
    }
    r->v[r->n++] = *d;
    return 0;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const struct device_rows *r)
{
    printf("[");
    for (size_t i = 0; i < r->n; i++) {
        const struct spro_device *d = &r->v[i];
        char enrolled[32], seen[32];
        iso8601(enrolled, d->enrolled_at);
        iso8601(seen, d->last_seen);
        printf("%s\n  {\"id\": ", i ? "," : "");
        json_string(d->id);
        printf(", \"user\": ");
        json_string(d->user);
        printf(", \"org\": ");
        json_string(d->org);
        printf(", \"state\": ");
        json_string(spro_device_state_name(d->state));
        printf(", \"enrolled_at\": ");
        json_string(enrolled);
        printf(", \"last_seen\": ");
        if (d->last_seen == 0)
            printf("null");
        else
            json_string(seen);
        printf("}");
    }
    printf("%s]\n", r->n ? "\n" : "");
}

static void print_table(const struct device_rows *r)
{
    static const char *const head[] = {"DEVICE", "COUNSELLOR", "ORGANISATION",
                                       "STATE",  "ENROLLED",   "LAST SEEN"};
    int w[6];
    for (int k = 0; k < 6; k++)
        w[k] = (int)strlen(head[k]);
    for (size_t i = 0; i < r->n; i++) {
        const struct spro_device *d = &r->v[i];
        const char *cells[] = {d->id, d->user, d->org, spro_device_state_name(d->state)};
        for (int k = 0; k < 4; k++)
            if ((int)strlen(cells[k]) > w[k])
                w[k] = (int)strlen(cells[k]);
    }
    w[4] = w[5] = 20; /* ISO 8601 */
    printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1], head[1], w[2], head[2], w[3],
           head[3], w[4], head[4], head[5]);
    for (size_t i = 0; i < r->n; i++) {
        const struct spro_device *d = &r->v[i];
        char enrolled[32], seen[32] = "never";
        iso8601(enrolled, d->enrolled_at);
        if (d->last_seen != 0)
            iso8601(seen, d->last_seen);
        printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], d->id, w[1], d->user, w[2], d->org, w[3],
               spro_device_state_name(d->state), w[4], enrolled, seen);
    }
}

static int cmd_device_list(const struct command *c, const char *dir, int argc, char **argv)
{
    int json = 0;
    const struct opt opts[] = {{"--json", NULL, 0, NULL, &json}};
    int rc = parse_args(c, argc, argv, opts, 1, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    struct device_rows rows = {0};
    rc = spro_device_list(dd, collect, &rows);
    spro_datadir_close(dd);
    if (rc == 0) {
        if (json)
            print_json(&rows);
        else
            print_table(&rows);
    }
    free(rows.v);
    return rc == 0 ? 0 : failed(c, rc, NULL);
}

/* ---- quarantine list ---- */

/* Prints one quarantined op, as a table row or a JSON object. */
static int print_quarantined(const struct spro_quarantined *q, void *arg)
{
    int *json = arg; /* 1: JSON, first row still to come; 2: JSON, later rows; 0: table */
    char at[32];
    iso8601(at, q->at_ms / 1000);
    if (*json == 0) {
        printf("%-36s  %10llu  %-36s  %-20s  %s\n", q->device, (unsigned long long)q->seq, q->ben,
               q->code, at);
        return 0;
    }
    printf("%s\n  {\"device\": ", *json == 2 ? "," : "");
    json_string(q->device);
    printf(", \"seq\": %llu, \"beneficiary\": ", (unsigned long long)q->seq);
    json_string(q->ben);
    printf(", \"code\": ");
    json_string(q->code);
    printf(", \"at\": ");
    json_string(at);
    printf("}");
    *json = 2;
    return 0;
}

static int cmd_quarantine_list(const struct command *c, const char *dir, int argc, char **argv)
{
    int json = 0;
    const struct opt opts[] = {{"--json", NULL, 0, NULL, &json}};
    int rc = parse_args(c, argc, argv, opts, 1, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    if (json)
        printf("[");
    else
        printf("%-36s  %10s  %-36s  %-20s  %s\n", "DEVICE", "SEQ", "BENEFICIARY", "CODE", "AT");
    int mode = json ? 1 : 0;
    rc = spro_sync_quarantine_list(dd, print_quarantined, &mode);
    spro_datadir_close(dd);
    if (json)
        printf("%s]\n", mode == 2 ? "\n" : "");
    return rc == 0 ? 0 : failed(c, rc, NULL);
}

/* revoke and wipe: one device id, one state to set. */
static int set_state(const struct command *c, const char *dir, int argc, char **argv,
                     enum spro_device_state state, const char *done)
{
    const char *id;
    static const char *const posnames[] = {"DEVICE_ID"};
    int rc = parse_args(c, argc, argv, NULL, 0, &id, posnames, 1);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char why[512] = "";
    rc = spro_device_set_state(dd, id, state, why, sizeof why);
    spro_datadir_close(dd);
    if (rc == SPRO_EEXISTS) { /* already done: the order stands */
        printf("note: %s\n", why);
        return 0;
    }
    if (rc != 0)
        return failed(c, rc, why);
    printf("device %s %s\n", id, done);
    return 0;
}

static int cmd_device_revoke(const struct command *c, const char *dir, int argc, char **argv)
{
    return set_state(c, dir, argc, argv, SPRO_DEVICE_REVOKED,
                     "revoked: it cannot open a session any more, and an open session ends at "
                     "its next request");
}

static int cmd_device_wipe(const struct command *c, const char *dir, int argc, char **argv)
{
    return set_state(c, dir, argc, argv, SPRO_DEVICE_WIPE_PENDING,
                     "ordered to wipe: at its next connection it is told to erase its local "
                     "data, and is revoked from then on");
}

/* ---- backup, restore, check ---- */

static int cmd_backup(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *dest;
    int data_only = 0, keys_only = 0;
    const struct opt opts[] = {{"--data-only", NULL, 0, NULL, &data_only},
                               {"--keys-only", NULL, 0, NULL, &keys_only}};
    static const char *const posnames[] = {"DEST"};
    int rc = parse_args(c, argc, argv, opts, 2, &dest, posnames, 1);
    if (rc != 0)
        return rc;
    if (data_only && keys_only)
        return usage_error(c, "--data-only and --keys-only exclude each other");
    unsigned what = data_only   ? SPRO_BACKUP_DATA
                    : keys_only ? SPRO_BACKUP_KEYS
                                : SPRO_BACKUP_DATA | SPRO_BACKUP_KEYS;
    char why[512] = "";
    struct spro_backup_result res;
    rc = spro_datadir_backup(dir, dest, what, &res, why, sizeof why);
    if (rc != 0)
        return failed(c, rc, why);
    if (what & SPRO_BACKUP_DATA)
        printf("wrote %s/data.db (%llu bytes)\n", dest, (unsigned long long)res.data_bytes);
    if (what & SPRO_BACKUP_KEYS)
        printf("wrote %s/keys.db (%llu bytes)\n", dest, (unsigned long long)res.keys_bytes);
    char master[PATH_MAX];
    snprintf(master, sizeof master, "%s/master.salt", dir);
    if (access(master, F_OK) != 0)
        snprintf(master, sizeof master, "%s/master.key", dir);
    printf("not copied: %s; back it up separately, apart from these files (a restore needs "
           "it: spro-admin restore --help)\n",
           master);
    return 0;
}

static int cmd_restore(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *src, *target = NULL, *key = NULL, *salt = NULL;
    const struct opt opts[] = {{"--data", "DIR", 0, &target, NULL},
                               {"--master-key", "FILE", 0, &key, NULL},
                               {"--master-salt", "FILE", 0, &salt, NULL}};
    static const char *const posnames[] = {"SRC"};
    int rc = parse_args(c, argc, argv, opts, 3, &src, posnames, 1);
    if (rc != 0)
        return rc;
    if (target == NULL && data_given)
        target = dir;
    if (target == NULL || target[0] == '\0')
        return usage_error(c, "missing --data DIR (the new data directory to restore into)");
    struct spro_datadir_options o = passphrase_options();
    if ((key == NULL) == (salt == NULL))
        return usage_error(c, "give the backup's master key: --master-key FILE, or --master-salt "
                              "FILE with --passphrase-file FILE or --passphrase-fd N");
    if (key != NULL && spro_datadir_options_have_passphrase(&o))
        return usage_error(c, "--passphrase-file and --passphrase-fd go with --master-salt, not "
                              "--master-key");
    if (salt != NULL && !spro_datadir_options_have_passphrase(&o))
        return usage_error(c, "--master-salt needs the passphrase: --passphrase-file FILE or "
                              "--passphrase-fd N");
    char why[512] = "", *pass;
    if ((rc = passphrase_once(c, &o, &pass)) != 0)
        return rc;
    rc = spro_datadir_restore(src, target, key, salt, &o, why, sizeof why);
    struct spro_datadir *dd = NULL;
    if (rc == 0)
        rc = spro_datadir_open_ex(target, &o, &dd, why, sizeof why);
    spro_secret_free(pass);
    if (rc != 0) {
        failed(c, rc, why);
        return 1;
    }
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(dd));
    printf("restored %s into %s (schema %d); the server keys open under the master key\n"
           "server key fingerprint: %s\n",
           src, target, spro_datadir_schema(dd), fp);
    spro_datadir_close(dd);
    return 0;
}

struct check_tally {
    int run;
    char failed[512]; /* names of the failed checks, comma-separated */
};

static void report_check(const char *name, int rc, const char *detail, void *arg)
{
    struct check_tally *t = arg;
    t->run++;
    if (rc == 0) {
        printf("ok      %s: %s\n", name, detail);
    } else {
        printf("FAILED  %s: %s\n", name, detail);
        size_t n = strlen(t->failed);
        snprintf(t->failed + n, sizeof t->failed - n, "%s%s", n ? ", " : "", name);
    }
    fflush(stdout);
}

static int cmd_check(const struct command *c, const char *dir, int argc, char **argv)
{
    int rc = parse_args(c, argc, argv, NULL, 0, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir_options o = passphrase_options();
    struct check_tally t = {0, ""};
    int failures = spro_datadir_check(dir, &o, report_check, &t);
    if (failures == 0) {
        printf("all %d checks passed\n", t.run);
        return 0;
    }
    fprintf(stderr, "%s: %d of %d checks failed: %s\n", title(c), failures, t.run, t.failed);
    return 1;
}

/* ---- The table ---- */

static const struct command commands[] = {
    {"init", NULL, "[--passphrase-file FILE | --passphrase-fd N] [--kdf-ops N] [--kdf-mem BYTES]",
     "create a data directory (refuses an existing one)",
     "Create the data directory DIR: master key (DIR/master.key, 32 random bytes,\n"
     "mode 0600), data.db and keys.db at the current schema, and the server's Noise\n"
     "static key (X25519) and Ed25519 signing key, sealed in keys.db under the master\n"
     "key.  Refuses to touch a DIR that exists and is not empty.\n"
     "With a passphrase, the master key is Argon2id of it instead, and DIR gets\n"
     "master.salt (salt and costs, not secret) in place of master.key; every command\n"
     "on DIR, spro-server included, then needs the passphrase.\n"
     "  --kdf-ops N      Argon2id passes, 1 to 64 (default 3: libsodium's MODERATE)\n"
     "  --kdf-mem BYTES  Argon2id memory, 8K to 4G, suffix K, M or G (default 256M);\n"
     "                   below 2 passes and 64M only for tests\n",
     cmd_init, 1},
    {"info", NULL, "", "show schema version and the server's public keys",
     "Open DIR (migrating its databases if they are older than this program) and\n"
     "show the schema version, the server's public keys and their fingerprints.\n",
     cmd_info, 1},
    {"org", "add", "ORG_ID --name NAME --kind KIND", "add an organisation",
     "Add the organisation ORG_ID (1 to 64 characters among A-Z a-z 0-9 . _ -).\n"
     "  --name NAME   its name as people know it (1 to 200 bytes)\n"
     "  --kind KIND   cio, mission-locale, france-travail, cap-emploi, psad,\n"
     "                region or other\n",
     cmd_org_add, 1},
    {"user", "add", "USER_ID --org ORG_ID [--role ROLE]", "add a counsellor to an organisation",
     "Add the user USER_ID (1 to 64 characters among A-Z a-z 0-9 . _ -) to the\n"
     "organisation ORG_ID.\n"
     "  --org ORG_ID  an organisation added with: spro-admin org add\n"
     "  --role ROLE   counsellor (default), supervisor or admin\n",
     cmd_user_add, 1},
    {"device", "invite", "--user USER_ID [--url URL] [--ttl SECONDS] [--no-qr]",
     "issue a one-time enrolment ticket for a new device",
     "Issue a one-time enrolment ticket binding the next device that redeems it to\n"
     "USER_ID, and print it once: a line 'ticket: spro1:...', a line 'expires:'\n"
     "(ISO 8601, UTC), then the same ticket as a QR code for the device's camera\n"
     "(drawn for light text on a dark terminal).  The ticket holds the server's key\n"
     "fingerprint and a secret of which only a keyed hash is stored: give it to the\n"
     "counsellor alone, it cannot be shown again.\n"
     "  --user USER_ID  the counsellor who will use the device\n"
     "  --url URL       the server's address as devices reach it, http:// or https://,\n"
     "                  host and optional port, no path (default " DEFAULT_URL ")\n"
     "  --ttl SECONDS   lifetime of the ticket, 60 to 86400 (default 900: 15 minutes)\n"
     "  --no-qr         print no QR code\n",
     cmd_device_invite, 1},
    {"device", "list", "[--json]", "list devices with their counsellor and state",
     "List every enrolled device, oldest first: device id, counsellor, organisation,\n"
     "state (active, revoked, wipe_pending, wiped), enrolment time and last\n"
     "connection (ISO 8601, UTC, or never).\n"
     "  --json   a JSON array of objects with the keys id, user, org, state,\n"
     "           enrolled_at and last_seen (null if never)\n",
     cmd_device_list, 1},
    {"device", "revoke", "DEVICE_ID", "revoke a device",
     "Revoke DEVICE_ID (active or wipe-pending): it cannot open a session any more\n"
     "and an open session ends at its next request.  Revoking a revoked or wiped\n"
     "device changes nothing and succeeds.\n",
     cmd_device_revoke, 1},
    {"device", "wipe", "DEVICE_ID", "order an active device to erase its local data",
     "Order the active device DEVICE_ID to wipe: at its next connection the server\n"
     "tells it to erase its local data, then treats it as revoked.  A revoked or\n"
     "wiped device cannot be ordered to wipe.\n",
     cmd_device_wipe, 1},
    {"quarantine", "list", "[--json]", "list the ops the server refused",
     "List every op a device pushed and the server refused (kept, never dropped),\n"
     "oldest first: device id, op sequence number, the beneficiary it named (an\n"
     "id, not a name), the reason code (docs/PROTOCOL.md, \"Sync\") and when.  The\n"
     "op itself stays sealed: it may hold personal data.\n"
     "  --json   a JSON array of objects with the keys device, seq, beneficiary,\n"
     "           code and at\n",
     cmd_quarantine_list, 1},
    {"backup", NULL, "DEST [--data-only | --keys-only]",
     "copy data.db and keys.db into DEST, while the server runs",
     "Copy DIR's databases into DEST (a new or empty directory): DEST/data.db, then\n"
     "DEST/keys.db, each a consistent snapshot taken with SQLite's online backup\n"
     "API in small steps while spro-server keeps serving and committing pushes.\n"
     "Each file is mode 0600, a single SQLite file (no -wal), written under a\n"
     "temporary name, fsync'd and renamed.  Needs no key: it copies sealed data.\n"
     "The master key (master.key or master.salt) is never copied: keep it apart\n"
     "from these files, which a restore combines with it.  data.db and keys.db may\n"
     "be kept for different times (erasing a beneficiary deletes its key from\n"
     "keys.db, which makes its data in every older data.db unreadable).\n"
     "  --data-only   copy data.db alone\n"
     "  --keys-only   copy keys.db alone\n",
     cmd_backup, 0},
    {"restore", NULL,
     "SRC --data DIR (--master-key FILE | --master-salt FILE --passphrase-file FILE)",
     "make a new data directory from a backup",
     "Make the data directory DIR (which must not exist, or be empty) from the backup\n"
     "SRC (SRC/data.db and SRC/keys.db, as written by spro-admin backup) and the\n"
     "master key kept apart from it, then open it the normal way (migrations, server\n"
     "keys) to prove it works.  DIR is built beside itself and renamed into place\n"
     "only then: it ends complete or untouched.  Refuses an incomplete SRC and a\n"
     "master key under which the server keys of SRC/keys.db do not open.  SRC is\n"
     "only read.\n"
     "  --data DIR          the new data directory (also accepted before restore)\n"
     "  --master-key FILE   the backup's master key file (copied to DIR/master.key)\n"
     "  --master-salt FILE  or its master.salt (copied to DIR/master.salt), with the\n"
     "                      passphrase\n",
     cmd_restore, 1},
    {"check", NULL, "", "check the databases and the keys; non-zero if any check fails",
     "Check DIR, one line per check, 'ok' or 'FAILED' with what was found:\n"
     "PRAGMA integrity_check and foreign_key_check of data.db and of keys.db, then\n"
     "that the server keys open under the master key.  Exits 1, naming the failed\n"
     "checks, if any fails.  Works while spro-server runs.\n",
     cmd_check, 1},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: spro-admin [--data DIR] COMMAND [ARG]...\n"
               "Administer a spro-sync data directory.\n\n"
               "  --data DIR              data directory (default ./var)\n"
               "  --passphrase-file FILE  its passphrase, if it has master.salt: the first\n"
               "                          line of FILE (mode 0600)\n"
               "  --passphrase-fd N       the same, read from file descriptor N\n"
               "  --help                  show this help; COMMAND --help shows a command's\n"
               "  --version               show the version\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%s%s", commands[i].group, commands[i].name ? " " : "",
                 commands[i].name ? commands[i].name : "");
        fprintf(f, "  %-15s %s\n", name, commands[i].summary);
    }
    fprintf(f, "\nExit status: 0 done, 1 failed, 2 usage error.\n");
}

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* Finds the command named by argv[0] (and argv[1] for two-word ones) and
 * runs it, or explains what is wrong. */
static int dispatch(const char *dir, int argc, char **argv)
{
    int group_known = 0;
    for (size_t k = 0; k < NCOMMANDS; k++) {
        const struct command *c = &commands[k];
        if (strcmp(argv[0], c->group) != 0)
            continue;
        group_known = 1;
        int words = c->name ? 2 : 1;
        if (c->name != NULL && (argc < 2 || strcmp(argv[1], c->name) != 0))
            continue;
        if (wants_help(argc - words, argv + words)) {
            print_help(c);
            return 0;
        }
        return c->fn(c, dir, argc - words, argv + words);
    }
    if (!group_known) {
        fprintf(stderr, "spro-admin: unknown command '%s' (see spro-admin --help)\n", argv[0]);
        return 2;
    }
    /* A known first word with a missing or unknown second one. */
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    FILE *f = help ? stdout : stderr;
    if (!help && argc >= 2)
        fprintf(f, "spro-admin %s: unknown subcommand '%s'\n", argv[0], argv[1]);
    else if (!help)
        fprintf(f, "spro-admin %s: missing subcommand\n", argv[0]);
    fprintf(f, "usage:\n");
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (strcmp(argv[0], commands[k].group) == 0)
            fprintf(f, "  spro-admin --data DIR %s %s %s\n", commands[k].group, commands[k].name,
                    commands[k].args);
    return help ? 0 : 2;
}

int main(int argc, char **argv)
{
    const char *dir = "./var";
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("spro-admin %s\n", SPRO_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
            data_given = 1;
        } else if (strncmp(argv[i], "--data=", 7) == 0) {
            dir = argv[i] + 7;
            data_given = 1;
        } else if (strcmp(argv[i], "--passphrase-file") == 0 && i + 1 < argc) {
            passphrase_file = argv[++i];
        } else if (strncmp(argv[i], "--passphrase-file=", 18) == 0) {
            passphrase_file = argv[i] + 18;
        } else if (strcmp(argv[i], "--passphrase-fd") == 0 && i + 1 < argc) {
            passphrase_fd = argv[++i];
        } else if (strncmp(argv[i], "--passphrase-fd=", 16) == 0) {
            passphrase_fd = argv[i] + 16;
        } else {
            fprintf(stderr, "spro-admin: unknown option '%s' (see spro-admin --help)\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (dir[0] == '\0') {
        fprintf(stderr, "spro-admin: --data needs a directory\n");
        return 2;
    }
    umask(077); /* everything in a data directory is for its owner only */
    if (spro_crypto_init() != 0) {
        fprintf(stderr, "spro-admin: cannot initialise libsodium\n");
        return 1;
    }
    return dispatch(dir, argc - i, argv + i);
}
