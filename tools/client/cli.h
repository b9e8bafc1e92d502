/*
 * cli.h: what the command files of spro-client share, internal to the
 * program: client.c (main, enroll, ping, sync) and records.c (the local
 * commands new, edit, show, list, conflicts, resolve, refer, accept,
 * refuse, and the opening of a device's home and local store).
 */
#ifndef SPRO_TOOLS_CLIENT_CLI_H
#define SPRO_TOOLS_CLIENT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "state.h"
#include "sync/local.h"

enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_REVOKED = 3,
    EXIT_WIPED = 4,
};

#define CLIENT_SCHEMA 1 /* the data schema this device speaks (hello.schema, op.schema) */

struct options {
    const char *home; /* NULL until --home */
    struct spro_client_http_options http;
};

/* A command's arguments once its flags are taken out. */
struct cli_args {
    bool help;   /* --help or -h */
    bool json;   /* --json */
    bool string; /* --string (only where allowed) */
    int n;       /* positional arguments, in argv[0..n) after the call */
};

/* Takes --help/-h, --json and (when allow_string) --string out of
 * argv[0..argc), anywhere before a `--`, and moves the positional
 * arguments to the front.  Returns 0, or EXIT_USAGE for an unknown option
 * (reported). */
int spro_client__args(const char *cmd, int argc, char **argv, bool allow_string,
                      struct cli_args *a);

/* Wall clock in milliseconds since the epoch. */
uint64_t spro_client__wall_ms(void);

/* EXIT_USAGE (reported) when --home was not given, else 0. */
int spro_client__need_home(const struct options *o, const char *cmd);

/* Opens (locks) the home of o and loads the state of an enrolled device.
 * Returns EXIT_OK, or the exit status with the error reported (home closed
 * then). */
int spro_client__open_device(const char *cmd, const struct options *o,
                             struct spro_client_home *home, struct spro_client_state *st);

/* Opens the device's local store in the home.  Returns EXIT_OK with *out,
 * or EXIT_FAIL (reported, *out NULL). */
int spro_client__open_local(const char *cmd, const struct spro_client_home *home,
                            const struct spro_client_state *st, struct spro_local **out);

/* The local commands (records.c). */
int spro_client__cmd_new(const struct options *o, int argc, char **argv);
int spro_client__cmd_edit(const struct options *o, int argc, char **argv);
int spro_client__cmd_show(const struct options *o, int argc, char **argv);
int spro_client__cmd_list(const struct options *o, int argc, char **argv);
int spro_client__cmd_conflicts(const struct options *o, int argc, char **argv);
int spro_client__cmd_quarantine(const struct options *o, int argc, char **argv);
int spro_client__cmd_resolve(const struct options *o, int argc, char **argv);
int spro_client__cmd_refer(const struct options *o, int argc, char **argv);
int spro_client__cmd_accept(const struct options *o, int argc, char **argv);
int spro_client__cmd_refuse(const struct options *o, int argc, char **argv);
int spro_client__cmd_duplicates(const struct options *o, int argc, char **argv);
int spro_client__cmd_merge(const struct options *o, int argc, char **argv);

#endif
