/*
 * spro-admin: the operators' command line.
 *
 *   spro-admin --data DIR init                     create a data directory
 *   spro-admin --data DIR info                     show its schema and the server's keys
 *   spro-admin --data DIR org add ORG_ID ...       add an organisation
 *   spro-admin --data DIR user add USER_ID ...     add a counsellor
 *   spro-admin --data DIR device invite ...        issue an enrolment ticket
 *   spro-admin --data DIR device list|revoke|wipe  manage devices
 *
 * Commands are listed in one table; each has its own --help.  Exit status:
 * 0 on success, 1 when the command failed (unknown or duplicate ids, a
 * refused state change, the database), 2 for a usage error (unknown
 * option, missing argument, a value of the wrong form).  Every command but
 * init works while spro-server runs on the same data directory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
};

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
    printf("usage: spro-admin --data DIR %s%s%s%s%s\n%s", c->group, c->name ? " " : "",
           c->name ? c->name : "", c->args[0] ? " " : "", c->args, c->help);
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

/* Opens the data directory, or prints why not and returns NULL. */
static struct spro_datadir *open_dir(const struct command *c, const char *dir)
{
    char why[512] = "";
    struct spro_datadir *dd;
    int rc = spro_datadir_open(dir, &dd, why, sizeof why);
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

static int cmd_init(const struct command *c, const char *dir, int argc, char **argv)
{
    int rc = parse_args(c, argc, argv, NULL, 0, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    char why[512] = "";
    rc = spro_datadir_init(dir, why, sizeof why);
    if (rc != 0) {
        failed(c, rc, why);
        return 1;
    }
    struct spro_datadir *dd;
    if ((rc = spro_datadir_open(dir, &dd, why, sizeof why)) != 0) {
        fprintf(stderr, "%s: created, but cannot reopen: %s\n", title(c), why);
        return 1;
    }
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(dd));
    printf("initialised %s (schema %d)\nserver key fingerprint: %s\n", dir, spro_datadir_schema(dd),
           fp);
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

/* ---- The table ---- */

static const struct command commands[] = {
    {"init", NULL, "", "create a data directory (refuses an existing one)",
     "Create the data directory DIR: master key (DIR/master.key, mode 0600),\n"
     "data.db and keys.db at the current schema, and the server's Noise static\n"
     "key (X25519) and Ed25519 signing key, sealed in keys.db under the master\n"
     "key.  Refuses to touch a DIR that exists and is not empty.\n",
     cmd_init},
    {"info", NULL, "", "show schema version and the server's public keys",
     "Open DIR (migrating its databases if they are older than this program) and\n"
     "show the schema version, the server's public keys and their fingerprints.\n",
     cmd_info},
    {"org", "add", "ORG_ID --name NAME --kind KIND", "add an organisation",
     "Add the organisation ORG_ID (1 to 64 characters among A-Z a-z 0-9 . _ -).\n"
     "  --name NAME   its name as people know it (1 to 200 bytes)\n"
     "  --kind KIND   cio, mission-locale, france-travail, cap-emploi, psad,\n"
     "                region or other\n",
     cmd_org_add},
    {"user", "add", "USER_ID --org ORG_ID [--role ROLE]", "add a counsellor to an organisation",
     "Add the user USER_ID (1 to 64 characters among A-Z a-z 0-9 . _ -) to the\n"
     "organisation ORG_ID.\n"
     "  --org ORG_ID  an organisation added with: spro-admin org add\n"
     "  --role ROLE   counsellor (default), supervisor or admin\n",
     cmd_user_add},
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
     cmd_device_invite},
    {"device", "list", "[--json]", "list devices with their counsellor and state",
     "List every enrolled device, oldest first: device id, counsellor, organisation,\n"
     "state (active, revoked, wipe_pending, wiped), enrolment time and last\n"
     "connection (ISO 8601, UTC, or never).\n"
     "  --json   a JSON array of objects with the keys id, user, org, state,\n"
     "           enrolled_at and last_seen (null if never)\n",
     cmd_device_list},
    {"device", "revoke", "DEVICE_ID", "revoke a device",
     "Revoke DEVICE_ID (active or wipe-pending): it cannot open a session any more\n"
     "and an open session ends at its next request.  Revoking a revoked or wiped\n"
     "device changes nothing and succeeds.\n",
     cmd_device_revoke},
    {"device", "wipe", "DEVICE_ID", "order an active device to erase its local data",
     "Order the active device DEVICE_ID to wipe: at its next connection the server\n"
     "tells it to erase its local data, then treats it as revoked.  A revoked or\n"
     "wiped device cannot be ordered to wipe.\n",
     cmd_device_wipe},
    {"quarantine", "list", "[--json]", "list the ops the server refused",
     "List every op a device pushed and the server refused (kept, never dropped),\n"
     "oldest first: device id, op sequence number, the beneficiary it named (an\n"
     "id, not a name), the reason code (docs/PROTOCOL.md, \"Sync\") and when.  The\n"
     "op itself stays sealed: it may hold personal data.\n"
     "  --json   a JSON array of objects with the keys device, seq, beneficiary,\n"
     "           code and at\n",
     cmd_quarantine_list},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: spro-admin [--data DIR] COMMAND [ARG]...\n"
               "Administer a spro-sync data directory.\n\n"
               "  --data DIR   data directory (default ./var)\n"
               "  --help       show this help; COMMAND --help shows a command's\n"
               "  --version    show the version\n\ncommands:\n");
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
        } else if (strncmp(argv[i], "--data=", 7) == 0) {
            dir = argv[i] + 7;
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
