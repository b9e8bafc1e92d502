/*
 * config.c: spro-server's options, from defaults, an optional config file
 * and the command line, all through one table.
 *
 * The config file holds one option per line, `name = value` (or a bare
 * `name` for a flag, `name = true|false`), with the long option names
 * without their dashes; `#` starts a comment.  Command-line options win.
 *
 * The passphrase options (--passphrase-file, --passphrase-fd) name where
 * the passphrase comes from; the passphrase itself is
 * read only when the data directory is opened, and wiped at once.
 */
#include "server.h"
#include "sync/sync.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum opt_kind {
    OPT_STR,
    OPT_UINT,
    OPT_SIZE,
    OPT_FLAG,
    OPT_LISTEN,
    OPT_LEVEL,
    OPT_PASSFILE,
    OPT_PASSFD,
    OPT_RETENTION
};

struct opt {
    const char *name;
    enum opt_kind kind;
    size_t off;  /* offset in struct spro_server_config */
    size_t size; /* for OPT_STR: capacity */
    uint64_t min, max;
    const char *arg, *help;
};

#define F(field) offsetof(struct spro_server_config, field)
#define S(field) sizeof(((struct spro_server_config *)0)->field)

static const struct opt opts[] = {
    {"data", OPT_STR, F(data_dir), S(data_dir), 0, 0, "DIR", "data directory (default ./var)"},
    {"passphrase-file", OPT_PASSFILE, 0, 0, 0, 0, "FILE",
     "passphrase of a data directory with master.salt: the first line of FILE (mode 0600)"},
    {"passphrase-fd", OPT_PASSFD, 0, 0, 0, INT_MAX, "N",
     "the same, read from file descriptor N (e.g. 0 for standard input)"},
    {"listen", OPT_LISTEN, 0, 0, 0, 0, "HOST:PORT",
     "address to listen on (default 127.0.0.1:8080; [::1]:PORT for IPv6; port 0 picks a free one)"},
    {"tls-cert", OPT_STR, F(tls_cert), S(tls_cert), 0, 0, "FILE",
     "PEM certificate chain: serve HTTPS"},
    {"tls-key", OPT_STR, F(tls_key), S(tls_key), 0, 0, "FILE", "PEM private key of --tls-cert"},
    {"http2", OPT_FLAG, F(http2), 0, 0, 0, NULL,
     "also speak HTTP/2 (h2c prior knowledge, ALPN h2); off by default, see README"},
    {"max-connections", OPT_UINT, F(max_connections), 0, 1, 1000000, "N",
     "open connections at most, all clients (default 1024)"},
    {"max-connections-per-address", OPT_UINT, F(max_conn_per_addr), 0, 1, 1000000, "N",
     "open connections at most from one IP address (default 64)"},
    {"max-body", OPT_SIZE, F(max_body), 0, 1024, 1u << 30, "BYTES",
     "request body limit, suffix K or M allowed (default 8M)"},
    {"request-timeout", OPT_UINT, F(request_timeout), 0, 1, 3600, "SECONDS",
     "close a connection idle or slow to send its request this long (default 10)"},
    {"http2-max-streams", OPT_UINT, F(h2_max_streams), 0, 1, 256, "N",
     "HTTP/2 requests handled at once per connection (default 16)"},
    {"http2-request-budget", OPT_UINT, F(h2_request_budget), 0, 1, 1000000000, "N",
     "HTTP/2 requests per connection before it is closed (default 10000)"},
    {"workers", OPT_UINT, F(workers), 0, 1, 128, "N", "worker threads for storage (default 4)"},
    {"shutdown-timeout", OPT_UINT, F(shutdown_timeout), 0, 1, 30, "SECONDS",
     "on SIGTERM, wait this long for in-flight requests (default 4)"},
    {"session-idle-ttl", OPT_UINT, F(session_idle_ttl), 0, 1, 86400, "SECONDS",
     "end a device session unused this long (default 300)"},
    {"session-ttl", OPT_UINT, F(session_ttl), 0, 1, 604800, "SECONDS",
     "end a device session this long after its handshake (default 3600)"},
    {"max-clock-drift", OPT_UINT, F(max_clock_drift), 0, 1, 86400, "SECONDS",
     "device clocks further ahead than this are clamped (default 300)"},
    {"sync-idle-horizon", OPT_UINT, F(sync_idle_horizon), 0, 0, 315360000, "SECONDS",
     "devices that have not pulled for this long stop holding back the purge of "
     "removal events (0: never; default 2592000, 30 days)"},
    {"purge-interval", OPT_UINT, F(purge_interval), 0, 0, 31536000, "SECONDS",
     "purge removal events below the sync horizon this often, besides at every "
     "acknowledged pull (0: only then; default 3600)"},
    {"retention", OPT_RETENTION, 0, 0, 0, 0, "PROGRAMME:YEARS",
     "anonymise beneficiaries of PROGRAMME (* for any other) YEARS after their closing; "
     "repeat for each programme (see --retention-interval)"},
    {"retention-interval", OPT_UINT, F(retention_interval), 0, 0, 31536000, "SECONDS",
     "apply the --retention rules this often, the first time one interval after start "
     "(0: never, the default)"},
    {"rewrap-budget", OPT_UINT, F(rewrap_budget), 0, 0, 1000, "MS",
     "after a key rotation, re-wrap data keys at most this many ms of every second "
     "(0: not in this server; default 250)"},
    {"audit-checkpoint-interval", OPT_UINT, F(audit_checkpoint_interval), 0, 1, 86400, "SECONDS",
     "sign a checkpoint of the audit log this often, and at shutdown (default 300)"},
    {"max-sessions", OPT_UINT, F(max_sessions), 0, 1, 10000000, "N",
     "device sessions open at once, at most (default 100000)"},
    {"log-level", OPT_LEVEL, F(log_level), 0, 0, 0, "LEVEL",
     "error, warn, info or debug (default info)"},
    {"bench", OPT_FLAG, F(bench), 0, 0, 0, NULL,
     "mount POST /v1/bench/echo and /v1/bench/sealed-echo (benchmarks only)"},
};

static const char *const levels[] = {"error", "warn", "info", "debug"};

static void usage(FILE *f)
{
    fprintf(f, "usage: spro-server [OPTION]...\n"
               "Serve spro-sync devices and administrators over HTTP/1.1 (HTTP/2 opt-in).\n\n"
               "  --config FILE                   read options from FILE (lines `name = value`);\n"
               "                                  command-line options win\n");
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-31s %s\n", left, opts[i].help);
    }
    fprintf(f, "  --help                          show this help and exit\n"
               "  --version                       show the version and exit\n\n"
               "Logs are JSON lines on stderr.  SIGTERM or SIGINT stops accepting, finishes\n"
               "in-flight requests and exits 0.  Create the data directory first with\n"
               "`spro-admin --data DIR init`.\n");
}

static void defaults(struct spro_server_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->data_dir, "./var");
    strcpy(c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    c->max_connections = 1024;
    c->max_conn_per_addr = 64;
    c->max_body = 8u << 20;
    c->request_timeout = 10;
    c->h2_max_streams = 16;
    c->h2_request_budget = 10000;
    c->workers = 4;
    c->shutdown_timeout = 4;
    c->session_idle_ttl = 300;
    c->session_ttl = 3600;
    c->max_sessions = 100000;
    c->max_clock_drift = 300;
    c->sync_idle_horizon = 2592000;
    c->purge_interval = 3600;
    c->audit_checkpoint_interval = 300;
    c->rewrap_budget = 250;
    c->log_level = SPRO_LOG_INFO;
}

static int parse_u64(const char *s, uint64_t *v, int allow_suffix)
{
    if (*s == '\0' || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    if (allow_suffix && (*end == 'K' || *end == 'k')) {
        x <<= 10, end++;
    } else if (allow_suffix && (*end == 'M' || *end == 'm')) {
        x <<= 20, end++;
    } else if (allow_suffix && (*end == 'G' || *end == 'g')) {
        x <<= 30, end++;
    }
    if (*end != '\0' || x > (1ull << 40))
        return -1;
    *v = x;
    return 0;
}

/* Host and port; "[v6]:port" for IPv6. */
static int parse_listen(struct spro_server_config *c, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return -1;
        h++, hl -= 2;
    }
    uint64_t port;
    if (hl >= sizeof c->listen_host || parse_u64(colon + 1, &port, 0) != 0 || port > 65535)
        return -1;
    memcpy(c->listen_host, h, hl);
    c->listen_host[hl] = '\0';
    c->listen_port = (unsigned)port;
    return 0;
}

static const struct opt *find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

/* Applies one option; value is NULL for a bare flag.  Returns 0 or -1
 * after printing why (prefixed with `where`). */
static int apply(struct spro_server_config *c, const struct opt *o, const char *value,
                 const char *where)
{
    char *base = (char *)c;
    uint64_t v;
    if (o->kind != OPT_FLAG && value == NULL) {
        fprintf(stderr, "spro-server: %s: --%s needs a value (%s)\n", where, o->name, o->arg);
        return -1;
    }
    switch (o->kind) {
    case OPT_STR:
        if (strlen(value) >= o->size || value[0] == '\0') {
            fprintf(stderr, "spro-server: %s: --%s: empty or too long\n", where, o->name);
            return -1;
        }
        strcpy(base + o->off, value);
        return 0;
    case OPT_UINT:
    case OPT_SIZE:
        if (parse_u64(value, &v, o->kind == OPT_SIZE) != 0 || v < o->min || v > o->max) {
            fprintf(stderr, "spro-server: %s: --%s %s: expected %s between %llu and %llu\n", where,
                    o->name, value, o->kind == OPT_SIZE ? "a size" : "an integer",
                    (unsigned long long)o->min, (unsigned long long)o->max);
            return -1;
        }
        if (o->kind == OPT_SIZE)
            *(uint64_t *)(base + o->off) = v;
        else
            *(unsigned *)(base + o->off) = (unsigned)v;
        return 0;
    case OPT_FLAG:
        if (value == NULL || strcmp(value, "true") == 0) {
            *(bool *)(base + o->off) = true;
        } else if (strcmp(value, "false") == 0) {
            *(bool *)(base + o->off) = false;
        } else {
            fprintf(stderr, "spro-server: %s: --%s takes no value (or true/false)\n", where,
                    o->name);
            return -1;
        }
        return 0;
    case OPT_LISTEN:
        if (parse_listen(c, value) != 0) {
            fprintf(stderr, "spro-server: %s: --listen %s: expected HOST:PORT or [IPV6]:PORT\n",
                    where, value);
            return -1;
        }
        return 0;
    case OPT_PASSFILE:
        if (strlen(value) >= sizeof c->passphrase_file || value[0] == '\0') {
            fprintf(stderr, "spro-server: %s: --%s: empty or too long\n", where, o->name);
            return -1;
        }
        strcpy(c->passphrase_file, value);
        c->has_passphrase_fd = false;
        return 0;
    case OPT_PASSFD:
        if (parse_u64(value, &v, 0) != 0 || v > o->max) {
            fprintf(stderr, "spro-server: %s: --%s %s: expected a file descriptor number\n", where,
                    o->name, value);
            return -1;
        }
        c->passphrase_fd = (int)v;
        c->has_passphrase_fd = true;
        c->passphrase_file[0] = '\0';
        return 0;
    case OPT_RETENTION: {
        struct spro_retention_rule r;
        if (strlen(value) >= sizeof c->retention[0] || spro_retention_parse(value, &r) != 0) {
            fprintf(stderr,
                    "spro-server: %s: --retention %s: expected PROGRAMME:YEARS (PROGRAMME of "
                    "A-Z a-z 0-9 . _ - or *, YEARS 0 to 200)\n",
                    where, value);
            return -1;
        }
        if (c->nretention == SPRO_SERVER_RETENTION_MAX) {
            fprintf(stderr, "spro-server: %s: more than %d --retention rules\n", where,
                    SPRO_SERVER_RETENTION_MAX);
            return -1;
        }
        strcpy(c->retention[c->nretention++], value);
        return 0;
    }
    case OPT_LEVEL:
        for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
            if (strcmp(value, levels[i]) == 0) {
                *(enum spro_log_level *)(base + o->off) = (enum spro_log_level)i;
                return 0;
            }
        fprintf(stderr, "spro-server: %s: --log-level %s: expected error, warn, info or debug\n",
                where, value);
        return -1;
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int load_file(struct spro_server_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "spro-server: --config %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096], where[PATH_MAX + 32];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "spro-server: %s: line too long\n", where);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *s = trim(line), *value = NULL;
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (eq != NULL) {
            *eq = '\0';
            value = trim(eq + 1);
            s = trim(s);
        }
        const struct opt *o = find(s, strlen(s));
        if (o == NULL) {
            fprintf(stderr, "spro-server: %s: unknown option '%s'\n", where, s);
            rc = -1;
        } else {
            rc = apply(c, o, value, where);
        }
    }
    fclose(f);
    return rc;
}

int spro_server_config_load(struct spro_server_config *c, int argc, char **argv)
{
    defaults(c);
    /* The config file first, wherever --config stands, so flags win. */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "spro-server: --config needs a FILE\n");
                return SPRO_ECONFIG;
            }
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (path != NULL && load_file(c, path) != 0)
            return SPRO_ECONFIG;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("spro-server %s\n", SPRO_VERSION);
            return 1;
        }
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0)
            continue;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "spro-server: unexpected argument '%s' (see --help)\n", a);
            return SPRO_ECONFIG;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = find(name, len);
        if (o == NULL) {
            fprintf(stderr, "spro-server: unknown option '%s' (see --help)\n", a);
            return SPRO_ECONFIG;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL && o->kind != OPT_FLAG) {
            if (i + 1 >= argc) {
                fprintf(stderr, "spro-server: --%s needs a value (%s)\n", o->name, o->arg);
                return SPRO_ECONFIG;
            }
            value = argv[++i];
        }
        if (apply(c, o, value, "command line") != 0)
            return SPRO_ECONFIG;
    }
    if (c->retention_interval != 0 && c->nretention == 0) {
        fprintf(stderr, "spro-server: --retention-interval needs --retention rules\n");
        return SPRO_ECONFIG;
    }
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
        fprintf(stderr, "spro-server: --tls-cert and --tls-key go together\n");
        return SPRO_ECONFIG;
    }
    return 0;
}
