/*
 * server: spro-server, the HTTP front of spro-sync (h2o on a libuv loop).
 *
 * main() parses the configuration with spro_server_config_load() and hands
 * it to spro_server_run(), which owns the process until SIGTERM or SIGINT.
 */
#ifndef SPRO_SERVER_SERVER_H
#define SPRO_SERVER_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

enum spro_log_level { SPRO_LOG_ERROR, SPRO_LOG_WARN, SPRO_LOG_INFO, SPRO_LOG_DEBUG };

#define SPRO_SERVER_RETENTION_MAX 32 /* --retention rules, at most */

struct spro_server_config {
    char data_dir[PATH_MAX];    /* --data, default "./var" */
    char listen_host[256];      /* --listen host part, default "127.0.0.1" */
    unsigned listen_port;       /* --listen port part, 0..65535 (0: any free port), default 8080 */
    char tls_cert[PATH_MAX];    /* --tls-cert, PEM chain; "" = plain HTTP */
    char tls_key[PATH_MAX];     /* --tls-key, PEM private key; "" = plain HTTP */
    bool http2;                 /* --http2: speak HTTP/2 (h2c prior knowledge, ALPN h2) */
    unsigned max_connections;   /* --max-connections, 1..1000000, default 1024 */
    unsigned max_conn_per_addr; /* --max-connections-per-address, 1..1000000, default 64 */
    uint64_t max_body;          /* --max-body bytes, 1 KiB..1 GiB, default 8 MiB */
    unsigned request_timeout;   /* --request-timeout seconds, 1..3600, default 10 */
    unsigned h2_max_streams;    /* --http2-max-streams, 1..256, default 16 */
    unsigned h2_request_budget; /* --http2-request-budget per connection, 1..10^9, default 10000 */
    unsigned workers;           /* --workers threads, 1..128, default 4 */
    unsigned shutdown_timeout;  /* --shutdown-timeout seconds, 1..30, default 4 */
    unsigned session_idle_ttl;  /* --session-idle-ttl seconds, 1..86400, default 300 */
    unsigned session_ttl;       /* --session-ttl seconds, 1..604800, default 3600 */
    unsigned max_sessions;      /* --max-sessions, 1..10^7, default 100000 */
    unsigned max_clock_drift;   /* --max-clock-drift seconds, 1..86400, default 300 */
    unsigned sync_idle_horizon; /* --sync-idle-horizon seconds, 0..315360000 (0: never),
                                   default 2592000 (30 days) */
    unsigned purge_interval;    /* --purge-interval seconds, 0..31536000 (0: never),
                                   default 3600 */
    unsigned audit_checkpoint_interval; /* --audit-checkpoint-interval seconds, 1..86400,
                                           default 300 */
    unsigned rewrap_budget; /* --rewrap-budget ms of each second spent re-wrapping data keys
                               after a rotation, 0..1000 (0: never), default 250 */
    /* Retention (docs/SYNC.md, "Erasure and retention"): rules
     * "PROGRAMME:YEARS" (--retention, repeated; the file's and the command
     * line's add up), applied every retention_interval seconds (0: never,
     * the default; at most 31536000). */
    char retention[SPRO_SERVER_RETENTION_MAX][96];
    unsigned nretention;
    unsigned retention_interval;
    /* Where the passphrase of a data directory with master.salt comes
     * from: --passphrase-file or --passphrase-fd, the last given. */
    char passphrase_file[PATH_MAX]; /* "" if none */
    int passphrase_fd;              /* if has_passphrase_fd */
    bool has_passphrase_fd;
    enum spro_log_level log_level; /* --log-level, default info */
    bool bench;                    /* --bench: mount POST /v1/bench/echo */
};

/* Fills cfg from defaults, then the file named by --config (if any), then
 * the command line (which wins).  Returns 0; 1 if --help or --version was
 * printed (exit 0); or SPRO_ECONFIG after printing a message naming the bad
 * option or config line to stderr. */
SPRO_MUST_CHECK int spro_server_config_load(struct spro_server_config *cfg, int argc, char **argv);

/* Runs the server until SIGTERM/SIGINT.  Returns 0 after a clean shutdown,
 * or a negative code if it could not start (the reason is logged). */
int spro_server_run(const struct spro_server_config *cfg);

#endif
