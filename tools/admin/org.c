/*
 * org.c: spro-admin org add, user add, device invite|list|revoke|wipe: organisations, users,
 * devices and their enrolment tickets.
 */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qrencode.h>

#include "crypto/crypto.h"

int spro_admin__cmd_org_add(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *id, *name = NULL, *kind = NULL;
    const struct opt opts[] = {{"--name", "NAME", 1, &name, NULL},
                               {"--kind", "KIND", 1, &kind, NULL}};
    static const char *const posnames[] = {"ORG_ID"};
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, opts, 2, &id, posnames, 1, &dd);
    if (rc != 0)
        return rc;
    char why[512] = "";
    rc = spro_org_add(dd, id, name, kind, why, sizeof why);
    spro_datadir_close(dd);
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
    printf("added organisation %s (%s): %s\n", id, kind, name);
    return 0;
}

int spro_admin__cmd_user_add(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *id, *org = NULL, *role = NULL;
    const struct opt opts[] = {{"--org", "ORG_ID", 1, &org, NULL},
                               {"--role", "ROLE", 0, &role, NULL}};
    static const char *const posnames[] = {"USER_ID"};
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, opts, 2, &id, posnames, 1, &dd);
    if (rc != 0)
        return rc;
    if (role == NULL)
        role = "counsellor";
    char why[512] = "";
    rc = spro_user_add(dd, id, org, role, why, sizeof why);
    spro_datadir_close(dd);
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
    printf("added user %s (%s) to organisation %s\n", id, role, org);
    return 0;
}

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

int spro_admin__cmd_device_invite(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *user = NULL, *url = NULL, *ttl_s = NULL;
    int no_qr = 0;
    const struct opt opts[] = {{"--user", "USER_ID", 1, &user, NULL},
                               {"--url", "URL", 0, &url, NULL},
                               {"--ttl", "SECONDS", 0, &ttl_s, NULL},
                               {"--no-qr", NULL, 0, NULL, &no_qr}};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 4, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    long long ttl = SPRO_TICKET_DEFAULT_TTL;
    if (ttl_s != NULL) {
        char *end;
        errno = 0;
        ttl = strtoll(ttl_s, &end, 10);
        if (errno != 0 || end == ttl_s || *end != '\0' || ttl < SPRO_TICKET_MIN_TTL ||
            ttl > SPRO_TICKET_MAX_TTL)
            return spro_admin__usage_error(
                c, "--ttl must be a whole number of seconds from %d to %d, not '%s'",
                SPRO_TICKET_MIN_TTL, SPRO_TICKET_MAX_TTL, ttl_s);
    }
    struct spro_ticket_string ts = {.id = "0000000000000000"};
    char line[SPRO_TICKET_STRING_MAX];
    if (url == NULL)
        url = SPRO_ADMIN_DEFAULT_URL;
    /* Check the URL before a ticket is issued for nothing. */
    if (strlen(url) > SPRO_TICKET_URL_MAX ||
        (snprintf(ts.url, sizeof ts.url, "%s", url), spro_ticket_format(line, &ts) != 0))
        return spro_admin__usage_error(
            c,
            "invalid --url '%s': use http:// or https://, a host and an optional "
            "port, no path",
            url);

    struct spro_datadir *dd = spro_admin__open_dir(c, dir);
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
        return spro_admin__failed(c, rc, why);
    }
    char expires[32];
    spro_admin__iso8601(expires, t.expires_at);
    printf("ticket: %s\nexpires: %s\n", line, expires);
    if (!no_qr && (rc = print_qr(line, 2)) != 0)
        fprintf(stderr, "%s: cannot draw the QR code: %s (the ticket line above is valid)\n",
                spro_admin__title(c), spro_strerror(rc));
    fflush(stdout);
    spro_memzero(&t, sizeof t);
    spro_memzero(&ts, sizeof ts);
    spro_memzero(line, sizeof line);
    return 0;
}

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

static void print_json(const struct device_rows *r)
{
    printf("[");
    for (size_t i = 0; i < r->n; i++) {
        const struct spro_device *d = &r->v[i];
        char enrolled[32], seen[32];
        spro_admin__iso8601(enrolled, d->enrolled_at);
        spro_admin__iso8601(seen, d->last_seen);
        printf("%s\n  {\"id\": ", i ? "," : "");
        spro_admin__json_string(d->id);
        printf(", \"user\": ");
        spro_admin__json_string(d->user);
        printf(", \"org\": ");
        spro_admin__json_string(d->org);
        printf(", \"state\": ");
        spro_admin__json_string(spro_device_state_name(d->state));
        printf(", \"enrolled_at\": ");
        spro_admin__json_string(enrolled);
        printf(", \"last_seen\": ");
        if (d->last_seen == 0)
            printf("null");
        else
            spro_admin__json_string(seen);
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
        spro_admin__iso8601(enrolled, d->enrolled_at);
        if (d->last_seen != 0)
            spro_admin__iso8601(seen, d->last_seen);
        printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], d->id, w[1], d->user, w[2], d->org, w[3],
               spro_device_state_name(d->state), w[4], enrolled, seen);
    }
}

int spro_admin__cmd_device_list(const struct command *c, const char *dir, int argc, char **argv)
{
    int json = 0;
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open_json(c, dir, argc, argv, &json, &dd);
    if (rc != 0)
        return rc;
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
    return rc == 0 ? 0 : spro_admin__failed(c, rc, NULL);
}

/* revoke and wipe: one device id, one state to set. */
static int set_state(const struct command *c, const char *dir, int argc, char **argv,
                     enum spro_device_state state, const char *done)
{
    const char *id;
    static const char *const posnames[] = {"DEVICE_ID"};
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, NULL, 0, &id, posnames, 1, &dd);
    if (rc != 0)
        return rc;
    char why[512] = "";
    rc = spro_device_set_state(dd, id, state, why, sizeof why);
    spro_datadir_close(dd);
    if (rc == SPRO_EEXISTS) { /* already done: the order stands */
        printf("note: %s\n", why);
        return 0;
    }
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
    printf("device %s %s\n", id, done);
    return 0;
}

int spro_admin__cmd_device_revoke(const struct command *c, const char *dir, int argc, char **argv)
{
    return set_state(c, dir, argc, argv, SPRO_DEVICE_REVOKED,
                     "revoked: it cannot open a session any more, and an open session ends at "
                     "its next request");
}

int spro_admin__cmd_device_wipe(const struct command *c, const char *dir, int argc, char **argv)
{
    return set_state(c, dir, argc, argv, SPRO_DEVICE_WIPE_PENDING,
                     "ordered to wipe: at its next connection it is told to erase its local "
                     "data, and is revoked from then on");
}
