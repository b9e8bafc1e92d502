/*
 * cli.c: the helpers of cli.h shared by every spro-admin command: the
 * option parser, opening the data directory, messages and formatting.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"

const char *spro_admin__passphrase_file;
const char *spro_admin__passphrase_fd;
int spro_admin__data_given;

#define PASSPHRASE_HELP                                                                            \
    "  --passphrase-file FILE  the passphrase of a data directory with master.salt:\n"             \
    "                          the first line of FILE (mode 0600)\n"                               \
    "  --passphrase-fd N       the same, read from file descriptor N\n"

const char *spro_admin__title(const struct command *c)
{
    static char t[64];
    snprintf(t, sizeof t, "spro-admin %s%s%s", c->group, c->name ? " " : "",
             c->name ? c->name : "");
    return t;
}

void spro_admin__print_help(const struct command *c)
{
    printf("usage: spro-admin %s%s%s%s%s%s\n%s%s",
           strstr(c->args, "--data DIR") ? "" : "--data DIR ", c->group, c->name ? " " : "",
           c->name ? c->name : "", c->args[0] ? " " : "", c->args, c->help,
           c->keyed ? PASSPHRASE_HELP : "");
}

int spro_admin__usage_error(const struct command *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", spro_admin__title(c));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", spro_admin__title(c));
    return 2;
}

int spro_admin__failed(const struct command *c, int rc, const char *why)
{
    fprintf(stderr, "%s: %s\n", spro_admin__title(c), why && why[0] ? why : spro_strerror(rc));
    return rc == SPRO_ECONFIG ? 2 : 1;
}

int spro_admin__parse_fd(const char *s, int *fd)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    *fd = (int)v;
    return 0;
}

struct spro_datadir_options spro_admin__passphrase_options(void)
{
    struct spro_datadir_options o = {0};
    o.passphrase_file = spro_admin__passphrase_file;
    if (spro_admin__passphrase_fd != NULL &&
        spro_admin__parse_fd(spro_admin__passphrase_fd, &o.passphrase_fd) == 0)
        o.has_passphrase_fd = 1;
    return o;
}

int spro_admin__passphrase_once(const struct command *c, struct spro_datadir_options *o,
                                char **pass)
{
    char why[512] = "";
    size_t len = 0;
    *pass = NULL;
    if (o->passphrase_file == NULL && !o->has_passphrase_fd)
        return 0;
    int rc =
        spro_passphrase_read(o->passphrase_file, o->passphrase_fd, pass, &len, why, sizeof why);
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
    o->passphrase = *pass;
    o->passphrase_len = len;
    o->passphrase_file = NULL;
    o->has_passphrase_fd = 0;
    return 0;
}

const char *spro_admin__admin_actor(void)
{
    static char actor[32];
    snprintf(actor, sizeof actor, "admin:uid=%lu", (unsigned long)getuid());
    return actor;
}

struct spro_datadir *spro_admin__open_dir(const struct command *c, const char *dir)
{
    char why[512] = "";
    struct spro_datadir *dd;
    struct spro_datadir_options o = spro_admin__passphrase_options();
    int rc = spro_datadir_open_ex(dir, &o, &dd, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", spro_admin__title(c), why[0] ? why : spro_strerror(rc));
        return NULL;
    }
    spro_audit_set_actor(dd, spro_admin__admin_actor());
    return dd;
}

void spro_admin__audit_action(const struct command *c, const char *dir, struct spro_datadir *dd,
                              const char *kind, const char *detail)
{
    char why[512] = "";
    struct spro_datadir *own = NULL;
    struct spro_datadir_options o = spro_admin__passphrase_options();
    int rc = dd != NULL ? 0 : spro_datadir_open_ex(dir, &o, &own, why, sizeof why);
    if (rc == 0)
        rc = spro_audit_append(dd ? dd : own, kind, spro_admin__admin_actor(), "datadir", detail);
    spro_datadir_close(own);
    if (rc != 0)
        fprintf(stderr, "%s: warning: not recorded in the audit log: %s\n", spro_admin__title(c),
                why[0] ? why : spro_strerror(rc));
}

int spro_admin__parse_args(const struct command *c, int argc, char **argv, const struct opt *opts,
                           size_t nopts, const char **pos, const char *const *posnames, size_t npos)
{
    size_t got = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (got == npos)
                return spro_admin__usage_error(c, "unexpected argument '%s'", a);
            pos[got++] = a;
            continue;
        }
        const struct opt *o = NULL;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        for (size_t k = 0; k < nopts && o == NULL; k++)
            if (strlen(opts[k].name) == n && strncmp(a, opts[k].name, n) == 0)
                o = &opts[k];
        const struct opt common[] = {
            {"--passphrase-file", "FILE", 0, &spro_admin__passphrase_file, NULL},
            {"--passphrase-fd", "N", 0, &spro_admin__passphrase_fd, NULL}};
        for (size_t k = 0; k < 2 && o == NULL && c->keyed; k++)
            if (strlen(common[k].name) == n && strncmp(a, common[k].name, n) == 0)
                o = &common[k];
        if (o == NULL)
            return spro_admin__usage_error(c, "unknown option '%.*s'", (int)n, a);
        if (o->flag != NULL) {
            if (eq != NULL)
                return spro_admin__usage_error(c, "%s takes no value", o->name);
            *o->flag = 1;
            continue;
        }
        if (*o->value != NULL)
            return spro_admin__usage_error(c, "%s given twice", o->name);
        if (eq != NULL)
            *o->value = eq + 1;
        else if (i + 1 < argc)
            *o->value = argv[++i];
        else
            return spro_admin__usage_error(c, "%s needs a value (%s %s)", o->name, o->name,
                                           o->metavar);
    }
    if (got < npos)
        return spro_admin__usage_error(c, "missing %s", posnames[got]);
    for (size_t k = 0; k < nopts; k++)
        if (opts[k].required && *opts[k].value == NULL)
            return spro_admin__usage_error(c, "missing %s %s", opts[k].name, opts[k].metavar);
    int fd;
    if (spro_admin__passphrase_fd != NULL &&
        spro_admin__parse_fd(spro_admin__passphrase_fd, &fd) != 0)
        return spro_admin__usage_error(c,
                                       "--passphrase-fd takes a file descriptor number, not '%s'",
                                       spro_admin__passphrase_fd);
    if (spro_admin__passphrase_fd != NULL && spro_admin__passphrase_file != NULL)
        return spro_admin__usage_error(c, "give --passphrase-file or --passphrase-fd, not both");
    return 0;
}

int spro_admin__parse_open(const struct command *c, const char *dir, int argc, char **argv,
                           const struct opt *opts, size_t nopts, const char **pos,
                           const char *const *posnames, size_t npos, struct spro_datadir **dd)
{
    *dd = NULL;
    int rc = spro_admin__parse_args(c, argc, argv, opts, nopts, pos, posnames, npos);
    if (rc != 0)
        return rc;
    *dd = spro_admin__open_dir(c, dir);
    return *dd == NULL ? 1 : 0;
}

int spro_admin__parse_open_json(const struct command *c, const char *dir, int argc, char **argv,
                                int *json, struct spro_datadir **dd)
{
    const struct opt opts[] = {{"--json", NULL, 0, NULL, json}};
    return spro_admin__parse_open(c, dir, argc, argv, opts, 1, NULL, NULL, 0, dd);
}

void spro_admin__iso8601(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)t);
}

void spro_admin__hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

int spro_admin__parse_size(const char *s, uint64_t *v)
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

void spro_admin__json_string(const char *s)
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

int64_t spro_admin__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
