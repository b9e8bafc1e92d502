/*
 * spro-admin: the operators' command line.
 *
 *   spro-admin --data DIR init                     create a data directory
 *   spro-admin --data DIR info                     show its schema and the server's keys
 *   spro-admin --data DIR backup DEST              copy data.db and keys.db, online
 *   spro-admin restore SRC --data DIR ...          make a data directory from a backup
 *   spro-admin --data DIR check                    integrity of the databases and keys
 *   spro-admin --data DIR key rotate|rewrap|status|change-master   key-encryption keys
 *   spro-admin --data DIR org add ORG_ID ...       add an organisation
 *   spro-admin --data DIR user add USER_ID ...     add a counsellor
 *   spro-admin --data DIR device invite ...        issue an enrolment ticket
 *   spro-admin --data DIR device list|revoke|wipe  manage devices
 *   spro-admin --data DIR subject export|erase ID  a beneficiary's rights: export, erasure
 *   spro-admin --data DIR retention run ...        anonymise what the retention rules say
 *   spro-admin --data DIR audit verify|show|checkpoint   the tamper-evident audit log
 *
 * Commands are listed in one table; each has its own --help.  Exit status:
 * 0 on success, 1 when the command failed (unknown or duplicate ids, a
 * refused state change, the database), 2 for a usage error (unknown
 * option, missing argument, a value of the wrong form).  Every command but
 * init, restore and key change-master works while spro-server runs on the
 * same data directory.
 *
 * A data directory whose master key comes from a passphrase (master.salt)
 * needs it for every command that opens the directory (those whose table
 * entry has `keyed` set): --passphrase-file FILE or --passphrase-fd N,
 * before or after the command's name.  The passphrase is read once, into
 * guarded memory, and wiped after use.
 */
#include <errno.h>
#include <fcntl.h>
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

/* The actor of this process's audit entries: "admin:uid=N". */
static const char *admin_actor(void)
{
    static char actor[32];
    snprintf(actor, sizeof actor, "admin:uid=%lu", (unsigned long)getuid());
    return actor;
}

/* Opens the data directory, or prints why not and returns NULL.  Audit
 * entries it writes name this process's actor. */
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
    spro_audit_set_actor(dd, admin_actor());
    return dd;
}

/* Records an admin action that changes nothing in data.db (backup,
 * restore, check, a listing) in the audit log of dir, opened for it with
 * the passphrase options given: a warning, not a failure, if it cannot be
 * (a directory with master.salt and no passphrase given). */
static void audit_action(const struct command *c, const char *dir, struct spro_datadir *dd,
                         const char *kind, const char *detail)
{
    char why[512] = "";
    struct spro_datadir *own = NULL;
    struct spro_datadir_options o = passphrase_options();
    int rc = dd != NULL ? 0 : spro_datadir_open_ex(dir, &o, &own, why, sizeof why);
    if (rc == 0)
        rc = spro_audit_append(dd ? dd : own, kind, admin_actor(), "datadir", detail);
    spro_datadir_close(own);
    if (rc != 0)
        fprintf(stderr, "%s: warning: not recorded in the audit log: %s\n", title(c),
                why[0] ? why : spro_strerror(rc));
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
    if (rc == 0)
        audit_action(c, dir, dd, "admin.quarantine.list", "");
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
    char detail[96];
    snprintf(detail, sizeof detail, "data=%llu keys=%llu", (unsigned long long)res.data_bytes,
             (unsigned long long)res.keys_bytes);
    audit_action(c, dir, NULL, "admin.backup", detail);
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
    audit_action(c, target, dd, "admin.restore", "");
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
    char detail[64];
    snprintf(detail, sizeof detail, "checks=%d failed=%d", t.run, failures);
    audit_action(c, dir, NULL, "admin.check", detail);
    if (failures == 0) {
        printf("all %d checks passed\n", t.run);
        return 0;
    }
    fprintf(stderr, "%s: %d of %d checks failed: %s\n", title(c), failures, t.run, t.failed);
    return 1;
}

/* ---- audit verify, show, checkpoint ---- */

static void iso8601_ms(char out[40], int64_t ms)
{
    char s[32];
    iso8601(s, ms / 1000);
    snprintf(out, 40, "%.19s.%03dZ", s, (int)(ms % 1000));
}

static int cmd_audit_verify(const struct command *c, const char *dir, int argc, char **argv)
{
    int rc = parse_args(c, argc, argv, NULL, 0, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    struct spro_audit_report r;
    rc = spro_audit_verify(dd, &r);
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_sign_public(dd));
    spro_datadir_close(dd);
    if (rc == SPRO_EINTEGRITY) {
        fprintf(stderr, "%s\n", r.why);
        fprintf(stderr, "%s: FAILED: first bad seq %lld (%lld entries, %lld checkpoints read)\n",
                title(c), (long long)r.bad_seq, (long long)r.entries, (long long)r.checkpoints);
        return 1;
    }
    if (rc != 0)
        return failed(c, rc, r.why);
    printf("ok: %lld entries chain from the genesis (last seq %lld); %lld checkpoints, every "
           "signature good (signing key fingerprint %s)\n",
           (long long)r.entries, (long long)r.last_seq, (long long)r.checkpoints, fp);
    if (r.last_checkpoint > 0) {
        char hash[2 * SPRO_AUDIT_HASH_BYTES + 1], at[40];
        hex(hash, r.last_checkpoint_hash, SPRO_AUDIT_HASH_BYTES);
        iso8601_ms(at, r.last_checkpoint_ms);
        printf("last checkpoint: seq %lld hash %s at %s\n", (long long)r.last_checkpoint, hash, at);
        if (r.last_seq > r.last_checkpoint)
            printf("note: entries %lld to %lld follow the last checkpoint (not yet signed)\n",
                   (long long)r.last_checkpoint + 1, (long long)r.last_seq);
    }
    return 0;
}

/* Prints s for a terminal or inside a JSON string: bytes outside printable
 * ASCII (only a tampered row has any) as \u00XX, and in JSON '"' and '\'
 * escaped. */
static void audit_text(const char *s, int json)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch > 0x7e)
            printf("\\u%04x", ch);
        else if (json && (ch == '"' || ch == '\\'))
            printf("\\%c", ch);
        else
            putchar(ch);
    }
}

struct show {
    int json;  /* 1: JSON, first row still to come; 2: later rows; 0: table */
    int64_t n; /* rows printed */
};

static int print_entry(const struct spro_audit_record *e, void *arg)
{
    struct show *sh = arg;
    char at[40];
    iso8601_ms(at, e->time_ms);
    sh->n++;
    if (sh->json == 0) {
        printf("%8lld  %s  ", (long long)e->seq, at);
        const char *cells[] = {e->kind, e->actor, e->object, e->detail};
        for (int k = 0; k < 4; k++) {
            audit_text(cells[k], 0);
            fputs(k < 3 ? "  " : "\n", stdout);
        }
        return 0;
    }
    char hash[2 * SPRO_AUDIT_HASH_BYTES + 1] = "";
    if (e->hash_len == SPRO_AUDIT_HASH_BYTES)
        hex(hash, e->hash, SPRO_AUDIT_HASH_BYTES);
    printf("%s\n  {\"seq\": %lld, \"time\": \"%s\"", sh->json == 2 ? "," : "", (long long)e->seq,
           at);
    const char *keys[] = {"kind", "actor", "object", "detail", "hash"};
    const char *vals[] = {e->kind, e->actor, e->object, e->detail, hash};
    for (int k = 0; k < 5; k++) {
        printf(", \"%s\": \"", keys[k]);
        audit_text(vals[k], 1);
        putchar('"');
    }
    putchar('}');
    sh->json = 2;
    return 0;
}

/* --since: a sequence number (digits) or a UTC time, YYYY-MM-DD or
 * YYYY-MM-DDTHH:MM:SSZ.  0 and *after (show entries above it) or *since_ms,
 * or -1. */
static int parse_since(const char *s, int64_t *after, int64_t *since_ms)
{
    *after = 0;
    *since_ms = 0;
    if (strspn(s, "0123456789") == strlen(s) && s[0] != '\0' && strlen(s) <= 18) {
        long long v = strtoll(s, NULL, 10);
        *after = v > 0 ? v - 1 : 0;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%d", &tm);
    }
    if (end == NULL || *end != '\0')
        return -1;
    time_t t = timegm(&tm);
    if (t < 0)
        return -1;
    *since_ms = (int64_t)t * 1000;
    return 0;
}

static int cmd_audit_show(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *since_s = NULL;
    int json = 0;
    const struct opt opts[] = {{"--since", "SEQ|TIME", 0, &since_s, NULL},
                               {"--json", NULL, 0, NULL, &json}};
    int rc = parse_args(c, argc, argv, opts, 2, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    int64_t after = 0, since_ms = 0;
    if (since_s != NULL && parse_since(since_s, &after, &since_ms) != 0)
        return usage_error(c,
                           "--since takes a sequence number or a UTC time (2025-06-01 or "
                           "2025-06-01T09:30:00Z), not '%s'",
                           since_s);
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    struct show sh = {json ? 1 : 0, 0};
    if (json)
        printf("[");
    else
        printf("%8s  %-24s  %s  %s  %s  %s\n", "SEQ", "TIME", "KIND", "ACTOR", "OBJECT", "DETAIL");
    rc = spro_audit_each(dd, after, since_ms, print_entry, &sh);
    spro_datadir_close(dd);
    if (json)
        printf("%s]\n", sh.json == 2 ? "\n" : "");
    return rc == 0 ? 0 : failed(c, rc, NULL);
}

static int cmd_audit_checkpoint(const struct command *c, const char *dir, int argc, char **argv)
{
    int rc = parse_args(c, argc, argv, NULL, 0, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    int64_t seq = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rc = spro_audit_checkpoint(dd, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &seq);
    spro_datadir_close(dd);
    if (rc == SPRO_EINTEGRITY)
        return failed(c, rc,
                      "the audit log does not verify (see: spro-admin audit verify); nothing "
                      "was signed");
    if (rc != 0)
        return failed(c, rc, NULL);
    if (seq > 0)
        printf("signed a checkpoint at seq %lld\n", (long long)seq);
    else
        printf("nothing to sign: no entry since the last checkpoint\n");
    return 0;
}

/* ---- subject export, subject erase, retention run ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static int cmd_subject_export(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *ben, *out = NULL;
    const struct opt opts[] = {{"--out", "FILE", 0, &out, NULL}};
    static const char *const posnames[] = {"BENEFICIARY_ID"};
    int rc = parse_args(c, argc, argv, opts, 1, &ben, posnames, 1);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char why[512] = "";
    struct spro_buf b = {0};
    rc = spro_subject_export(dd, ben, now_ms(), &b, why, sizeof why);
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
    return rc == 0 ? 0 : failed(c, rc, why);
}

static int cmd_subject_erase(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *ben, *reason = NULL;
    const struct opt opts[] = {{"--reason", "TEXT", 1, &reason, NULL}};
    static const char *const posnames[] = {"BENEFICIARY_ID"};
    int rc = parse_args(c, argc, argv, opts, 1, &ben, posnames, 1);
    if (rc != 0)
        return rc;
    if (reason[0] == '\0')
        return usage_error(c, "--reason needs a text (why the data is erased)");
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char why[512] = "", at[32];
    struct spro_erasure e;
    rc = spro_subject_erase(dd, ben, "request", reason, now_ms(), &e, why, sizeof why);
    spro_datadir_close(dd);
    if (rc != 0)
        return failed(c, rc, why);
    iso8601(at, e.at_ms / 1000);
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
        fprintf(stderr, "%s: --config %s: %s\n", title(c), path, strerror(errno));
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
            fprintf(stderr, "%s: %s:%d: retention %s: expected PROGRAMME:YEARS\n", title(c), path,
                    lineno, eq);
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
    iso8601(closed, d->closed_at_ms / 1000);
    iso8601(due, d->due_at_ms / 1000);
    printf("%s  %s  closed %s  due %s  rule %s%s%s\n",
           *dry    ? "due   "
           : d->rc ? "FAILED"
                   : "erased",
           d->ben, closed, due, d->programme, d->rc ? ": " : "", d->rc ? spro_strerror(d->rc) : "");
}

#define RULES_MAX 64

static int cmd_retention_run(const struct command *c, const char *dir, int argc, char **argv)
{
    struct spro_retention_rule rules[RULES_MAX];
    size_t n = 0;
    const char *config = NULL;
    int dry = 0;
    /* --rule is repeated: taken out before the common parser. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0, rc = 0;
    if (rest == NULL)
        return failed(c, SPRO_ENOMEM, NULL);
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *spec = NULL;
        if (strcmp(argv[i], "--rule") == 0) {
            if (i + 1 >= argc)
                rc = usage_error(c, "--rule needs a value (--rule PROGRAMME:YEARS)");
            else
                spec = argv[++i];
        } else if (strncmp(argv[i], "--rule=", 7) == 0) {
            spec = argv[i] + 7;
        } else {
            rest[nrest++] = argv[i];
        }
        if (spec != NULL && (n == RULES_MAX || spro_retention_parse(spec, &rules[n++]) != 0))
            rc = usage_error(c,
                             "--rule %s: expected PROGRAMME:YEARS (PROGRAMME of A-Z a-z 0-9 "
                             ". _ - or *, YEARS 0 to 200)",
                             spec);
    }
    const struct opt opts[] = {{"--config", "FILE", 0, &config, NULL},
                               {"--dry-run", NULL, 0, NULL, &dry}};
    if (rc == 0)
        rc = parse_args(c, nrest, rest, opts, 2, NULL, NULL, 0);
    free(rest);
    if (rc == 0 && config != NULL)
        rc = rules_from_file(c, config, rules, RULES_MAX, &n);
    if (rc != 0)
        return rc;
    if (n == 0)
        return usage_error(c, "no rule: give --rule PROGRAMME:YEARS or --config FILE");
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    size_t due = 0;
    rc = spro_retention_run(dd, rules, n, now_ms(), dry, report_due, &dry, &due);
    spro_datadir_close(dd);
    printf("%zu beneficiar%s due%s\n", due, due == 1 ? "y" : "ies",
           dry   ? " (dry run: nothing erased)"
           : due ? ", anonymised"
                 : "");
    return rc == 0 ? 0 : failed(c, rc, NULL);
}

/* ---- key rotate, rewrap, status, change-master ---- */

static int cmd_key_rotate(const struct command *c, const char *dir, int argc, char **argv)
{
    int rc = parse_args(c, argc, argv, NULL, 0, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    char why[512] = "", detail[64];
    uint32_t epoch;
    rc = spro_keys_rotate(dd, (int64_t)time(NULL), &epoch, why, sizeof why);
    if (rc == 0) {
        snprintf(detail, sizeof detail, "epoch %u", epoch);
        audit_action(c, dir, dd, "key_rotate", detail);
    }
    spro_datadir_close(dd);
    if (rc != 0)
        return failed(c, rc, why);
    printf("KEK epoch %u is now active: new data keys are wrapped under it.\n"
           "The data keys of older epochs are re-wrapped in the background by spro-server\n"
           "(or by: spro-admin key rewrap); follow it with: spro-admin key status\n",
           epoch);
    return 0;
}

/* A whole number from 1 to max: 0 and *v, or -1. */
static int parse_count(const char *s, uint64_t max, uint64_t *v)
{
    uint64_t x;
    if (parse_size(s, &x) != 0 || strpbrk(s, "KkMmGg") || x < 1 || x > max)
        return -1;
    *v = x;
    return 0;
}

static int cmd_key_rewrap(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *batch_s = NULL;
    const struct opt opts[] = {{"--batch", "N", 0, &batch_s, NULL}};
    int rc = parse_args(c, argc, argv, opts, 1, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    uint64_t batch = 1000;
    if (batch_s != NULL && parse_count(batch_s, SPRO_KEYS_BATCH_MAX, &batch) != 0)
        return usage_error(c, "--batch must be a whole number from 1 to %d, not '%s'",
                           SPRO_KEYS_BATCH_MAX, batch_s);
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    struct spro_rewrap_result r;
    size_t total = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        rc = spro_keys_rewrap(dd, (size_t)batch, (int64_t)time(NULL), &r);
        total += r.rewrapped;
        for (size_t i = 0; rc == 0 && i < r.ndestroyed; i++)
            printf("epoch %u destroyed: no data key uses it any more\n", r.destroyed[i]);
    } while (rc == 0 && !r.done && (r.rewrapped > 0 || r.ndestroyed > 0));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    spro_datadir_close(dd);
    printf("%zu data key%s re-wrapped in %.3f s (%.0f keys/s)\n", total, total == 1 ? "" : "s", s,
           s > 0 ? (double)total / s : 0.0);
    if (rc != 0) {
        char why[160] = "";
        if (r.ben[0] != '\0')
            snprintf(why, sizeof why, "the data key of beneficiary %s does not open: %s", r.ben,
                     spro_strerror(rc));
        return failed(c, rc, why);
    }
    if (!r.done) {
        fprintf(stderr,
                "%s: an epoch is still retired but in use (a key was added under it "
                "meanwhile?); run it again\n",
                title(c));
        return 1;
    }
    return 0;
}

static int cmd_key_status(const struct command *c, const char *dir, int argc, char **argv)
{
    int json = 0;
    const struct opt opts[] = {{"--json", NULL, 0, NULL, &json}};
    int rc = parse_args(c, argc, argv, opts, 1, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir *dd = open_dir(c, dir);
    if (dd == NULL)
        return 1;
    struct spro_key_epoch e[SPRO_KEYS_EPOCHS_MAX];
    size_t n;
    rc = spro_keys_status(dd, e, SPRO_KEYS_EPOCHS_MAX, &n);
    spro_datadir_close(dd);
    if (rc != 0)
        return failed(c, rc, NULL);
    uint64_t total = 0, current = 0;
    uint32_t active = 0;
    for (size_t i = 0; i < n; i++) {
        total += e[i].data_keys;
        if (strcmp(e[i].state, "active") == 0)
            active = e[i].epoch, current = e[i].data_keys;
    }
    if (json) {
        printf("{\"current\": %u, \"data_keys\": %llu, \"rewrapped\": %llu, \"epochs\": [", active,
               (unsigned long long)total, (unsigned long long)current);
        for (size_t i = 0; i < n; i++) {
            char created[32], destroyed[32];
            iso8601(created, e[i].created_at);
            iso8601(destroyed, e[i].destroyed_at);
            printf("%s\n  {\"epoch\": %u, \"state\": \"%s\", \"derived\": %s, \"data_keys\": %llu, "
                   "\"created_at\": \"%s\", \"destroyed_at\": %s%s%s}",
                   i ? "," : "", e[i].epoch, e[i].state, e[i].derived ? "true" : "false",
                   (unsigned long long)e[i].data_keys, created, e[i].destroyed_at ? "\"" : "",
                   e[i].destroyed_at ? destroyed : "null", e[i].destroyed_at ? "\"" : "");
        }
        printf("%s]}\n", n ? "\n" : "");
        return 0;
    }
    printf("%-6s  %-9s  %12s  %-20s  %s\n", "EPOCH", "STATE", "DATA KEYS", "CREATED", "DESTROYED");
    for (size_t i = 0; i < n; i++) {
        char created[32], destroyed[32] = "-";
        iso8601(created, e[i].created_at);
        if (e[i].destroyed_at)
            iso8601(destroyed, e[i].destroyed_at);
        printf("%-6u  %-9s  %12llu  %-20s  %s%s\n", e[i].epoch, e[i].state,
               (unsigned long long)e[i].data_keys, created, destroyed,
               e[i].derived ? "  (derived from the master key)" : "");
    }
    printf("current epoch %u: %llu of %llu data keys (%.1f%%)%s\n", active,
           (unsigned long long)current, (unsigned long long)total,
           total ? 100.0 * (double)current / (double)total : 100.0,
           current == total ? "" : "; re-wrapping under way");
    return 0;
}

static int cmd_key_change_master(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *key_file = NULL, *pass_file = NULL, *pass_fd_s = NULL, *ops_s = NULL, *mem_s = NULL;
    const struct opt opts[] = {{"--new-master-key", "FILE", 0, &key_file, NULL},
                               {"--new-passphrase-file", "FILE", 0, &pass_file, NULL},
                               {"--new-passphrase-fd", "N", 0, &pass_fd_s, NULL},
                               {"--kdf-ops", "N", 0, &ops_s, NULL},
                               {"--kdf-mem", "BYTES", 0, &mem_s, NULL}};
    int rc = parse_args(c, argc, argv, opts, 5, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    int given = (key_file != NULL) + (pass_file != NULL) + (pass_fd_s != NULL);
    if (given != 1)
        return usage_error(c, "give one of --new-master-key FILE, --new-passphrase-file FILE, "
                              "--new-passphrase-fd N");
    struct spro_new_master nm = {0};
    int fd = -1;
    if (pass_fd_s != NULL && parse_fd(pass_fd_s, &fd) != 0)
        return usage_error(c, "--new-passphrase-fd takes a file descriptor number, not '%s'",
                           pass_fd_s);
    if ((ops_s != NULL || mem_s != NULL) && key_file != NULL)
        return usage_error(c, "--kdf-ops and --kdf-mem go with a new passphrase");
    if (ops_s != NULL && parse_count(ops_s, SPRO_PWHASH_OPS_MAX, &nm.kdf_ops) != 0)
        return usage_error(c, "--kdf-ops must be a whole number from 1 to %u", SPRO_PWHASH_OPS_MAX);
    if (mem_s != NULL && (parse_size(mem_s, &nm.kdf_mem) != 0 || nm.kdf_mem < SPRO_PWHASH_MEM_MIN ||
                          nm.kdf_mem > SPRO_PWHASH_MEM_MAX))
        return usage_error(c, "--kdf-mem must be a size from 8K to 4G, not '%s'", mem_s);
    char why[512] = "", *newpass = NULL, *oldpass = NULL;
    if (key_file != NULL) {
        nm.key_file = key_file;
    } else if ((rc = spro_passphrase_read(pass_file, fd, &newpass, &nm.passphrase_len, why,
                                          sizeof why)) != 0) {
        return failed(c, rc, why);
    } else {
        nm.passphrase = newpass;
    }
    struct spro_datadir_options o = passphrase_options();
    if ((rc = passphrase_once(c, &o, &oldpass)) != 0) {
        spro_secret_free(newpass);
        return rc;
    }
    rc = spro_datadir_change_master(dir, &o, &nm, why, sizeof why);
    spro_secret_free(oldpass);
    /* Prove it: the directory opens under the new key. */
    struct spro_datadir_options no = {0};
    no.passphrase = newpass;
    no.passphrase_len = nm.passphrase_len;
    struct spro_datadir *dd = NULL;
    if (rc == 0)
        rc = spro_datadir_open_ex(dir, newpass ? &no : NULL, &dd, why, sizeof why);
    if (rc == 0)
        spro_audit_set_actor(dd, admin_actor());
    if (rc == 0)
        audit_action(c, dir, dd, "key_change_master", key_file ? "key file" : "passphrase");
    spro_datadir_close(dd);
    spro_secret_free(newpass);
    if (rc != 0)
        return failed(c, rc, why);
    printf("master key changed: every KEK, the root key and the server keys are now wrapped\n"
           "under the new %s; the old one is kept as %s/%s.old until you remove it\n"
           "(restart spro-server with the new one).\n",
           key_file ? "key" : "passphrase", dir, key_file ? "master.key" : "master.salt");
    if (key_file != NULL)
        printf("new master key: %s (mode 0600; keep a copy apart from the backups)\n", key_file);
    return 0;
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
    {"key", "rotate", "", "start a new key-encryption-key epoch",
     "Make a new key-encryption key (KEK) epoch, random, wrapped under the master key,\n"
     "and make it the active one: new data keys are wrapped under it.  The data keys\n"
     "of older epochs are re-wrapped in the background by spro-server, in batches\n"
     "of 1,000 while it serves (or by spro-admin key rewrap); each older epoch is\n"
     "destroyed once no data key uses it.  Works while spro-server runs.\n",
     cmd_key_rotate, 1},
    {"key", "rewrap", "[--batch N]", "re-wrap the data keys of old epochs now",
     "Re-wrap every data key of a KEK epoch older than the active one under the\n"
     "active one, N per keys.db transaction (default 1000), then destroy the old\n"
     "epochs that no data key uses.  Safe to interrupt at any point, and to run\n"
     "beside spro-server, which does the same in the background.\n"
     "  --batch N   data keys per transaction, 1 to 100000\n",
     cmd_key_rewrap, 1},
    {"key", "status", "[--json]", "KEK epochs and the progress of re-wrapping",
     "Show each KEK epoch: state (active: new data keys; retired: its data keys are\n"
     "being re-wrapped; destroyed), its number of data keys, when it was made and\n"
     "destroyed; then how many data keys are under the active epoch.\n"
     "  --json   one JSON object: current, data_keys, rewrapped and epochs (epoch,\n"
     "           state, derived, data_keys, created_at, destroyed_at)\n",
     cmd_key_status, 1},
    {"key", "change-master",
     "(--new-master-key FILE | --new-passphrase-file FILE | --new-passphrase-fd N)",
     "wrap every key-encryption key under a new master key",
     "Replace the master key: every live KEK, the root key and the server keys are\n"
     "wrapped again under the new key in one keys.db transaction, then the new\n"
     "master file replaces the old one, kept as master.key.old (or master.salt.old)\n"
     "until you remove it.  A crash at any point is finished (or undone) by the\n"
     "next open.  Stop spro-server first and restart it afterwards.\n"
     "  --new-master-key FILE       a directory with master.key: a new random key is\n"
     "                              written to FILE (must not exist, mode 0600) and\n"
     "                              installed as master.key\n"
     "  --new-passphrase-file FILE  a directory with master.salt: the new passphrase\n"
     "  --new-passphrase-fd N       (first line), and a new salt\n"
     "  --kdf-ops N, --kdf-mem BYTES  Argon2id costs of the new passphrase\n",
     cmd_key_change_master, 1},
    {"audit", "verify", "", "check the audit log's chain and signatures; non-zero if broken",
     "Walk the whole audit log from its first entry, recomputing each entry's keyed\n"
     "hash from the one before; check every checkpoint's Ed25519 signature (the\n"
     "server's key) and that it matches the chain at its seq; and that no\n"
     "checkpoint lies beyond the last entry.  Prints the count of entries and\n"
     "checkpoints and the last checkpoint (seq, hash, time: keep a copy apart to\n"
     "detect a later rewrite of the whole tail).  On failure prints the first bad\n"
     "sequence number (an edited, deleted, inserted or reordered entry, a bad\n"
     "checkpoint, or the checkpoint covering a truncated tail) and exits 1.  Works\n"
     "while spro-server runs.\n",
     cmd_audit_verify, 1},
    {"audit", "show", "[--since SEQ|TIME] [--json]", "list the audit log's entries",
     "List the entries of the audit log, oldest first: seq, time (UTC), kind, actor,\n"
     "object and detail (ids and codes only, never personal data).\n"
     "  --since SEQ|TIME  from entry SEQ on, or from a UTC time on (2025-06-01 or\n"
     "                    2025-06-01T09:30:00Z)\n"
     "  --json            a JSON array of objects with the keys seq, time, kind,\n"
     "                    actor, object, detail and hash (hex)\n",
     cmd_audit_show, 1},
    {"audit", "checkpoint", "", "sign a checkpoint of the audit log now",
     "Verify the entries appended since the last checkpoint and sign a checkpoint of\n"
     "the last one with the server's Ed25519 key.  spro-server does this every\n"
     "--audit-checkpoint-interval seconds and at shutdown; this command is for a\n"
     "directory no server runs on.  Refuses (exit 1) to sign a broken chain.\n",
     cmd_audit_checkpoint, 1},
    {"subject", "export", "BENEFICIARY_ID [--out FILE]",
     "everything held about a beneficiary, decrypted, as JSON",
     "Export everything data.db holds about BENEFICIARY_ID (and the beneficiaries\n"
     "merged into it): every record of every type, each field with all its values\n"
     "(decrypted), their authors and versions, the organisations that receive it,\n"
     "the ops refused about it, and the audit entries naming its records.  One JSON\n"
     "document, pretty-printed (format in docs/SYNC.md, \"Erasure and retention\").\n"
     "The export itself is recorded in the audit log.  An erased beneficiary has\n"
     "nothing left to export (the message says when it was erased).\n"
     "  --out FILE   write it to FILE (mode 0600, written atomically) instead of\n"
     "               standard output\n",
     cmd_subject_export, 1},
    {"subject", "erase", "BENEFICIARY_ID --reason TEXT",
     "destroy a beneficiary's personal data and its data key",
     "Erase BENEFICIARY_ID (and the beneficiaries merged into it): its personal\n"
     "values, blind indexes, refused ops and kept conflict answers are deleted, its\n"
     "data key is destroyed (so every copy of data.db, backups included, can no\n"
     "longer be decrypted for it), both WALs are checkpointed, and every device\n"
     "that holds it deletes its copy at its next sync.  Non-personal (coded) fields\n"
     "stay, for statistics.  Pushes naming it are answered not_found from then on.\n"
     "Cannot be undone.  An erasure cut short (crash) is finished by the next\n"
     "command or server start on DIR, or by erasing again.\n"
     "  --reason TEXT  why (request number, legal basis); kept sealed under the\n"
     "                 master key, never in clear: do not put the person's name in it\n",
     cmd_subject_erase, 1},
    {"retention", "run", "[--rule PROGRAMME:YEARS]... [--config FILE] [--dry-run]",
     "anonymise the beneficiaries whose retention period is over",
     "Anonymise (erase, as subject erase does, reason \"retention\") every beneficiary\n"
     "closed (state closed) for longer than the rule of its programmes: the longest\n"
     "rule among the programmes of its enrolments applies; a programme without a\n"
     "rule keeps it unless a rule \"*\" exists.  Coded statistics stay.  Prints one\n"
     "line per beneficiary due, then the count.\n"
     "  --rule PROGRAMME:YEARS  a rule (repeat it); PROGRAMME * is any other\n"
     "  --config FILE           also the rules of a spro-server config file\n"
     "                          (lines 'retention = PROGRAMME:YEARS')\n"
     "  --dry-run               print what is due, erase nothing\n",
     cmd_retention_run, 1},
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
