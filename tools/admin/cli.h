/*
 * cli.h: what the files of spro-admin (tools/admin/) share: the command
 * table's entry, the option parser, opening the data directory with the
 * passphrase options, the audit entry of an admin action, error and usage
 * messages, and small formatting helpers.  main.c holds the table and the
 * global options; each other file implements one family of commands
 * (commands.h).
 *
 * Output conventions: results on stdout; errors on stderr, prefixed with
 * the command's title ("spro-admin device invite: ").  Exit status 0 done,
 * 1 failed, 2 usage error.
 */
#ifndef SPRO_ADMIN_CLI_H
#define SPRO_ADMIN_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "sync/sync.h"

/* One command of the table in main.c. */
struct command {
    const char *group; /* first word */
    const char *name;  /* second word, or NULL for a one-word command */
    const char *args;  /* synopsis of the arguments */
    const char *summary;
    const char *help; /* shown by --help after the usage line */
    int (*fn)(const struct command *c, const char *dir, int argc, char **argv);
    int keyed; /* opens the directory: takes --passphrase-file and --passphrase-fd */
};

/* One option of a command: with a value (`value` set: "--name VALUE" or
 * "--name=VALUE") or a flag (`flag` set). */
struct opt {
    const char *name;    /* "--name" */
    const char *metavar; /* "NAME", shown when it is missing */
    int required;
    const char **value;
    int *flag;
};

/* The passphrase options, from before (main.c) or after the command name
 * (spro_admin__parse_args); NULL when not given. */
extern const char *spro_admin__passphrase_file;
extern const char *spro_admin__passphrase_fd;
/* 1 when --data was on the command line (before the command name). */
extern int spro_admin__data_given;

/* "spro-admin device invite" (static storage, per call). */
const char *spro_admin__title(const struct command *c);

/* Prints c's --help text on stdout: its usage line, its help, and the
 * passphrase options when c is keyed. */
void spro_admin__print_help(const struct command *c);

/* A usage error: prints it on stderr with a pointer to --help; returns 2. */
__attribute__((format(printf, 2, 3))) int spro_admin__usage_error(const struct command *c,
                                                                  const char *fmt, ...);

/* A failed call of the sync API: prints why (or, when why is NULL or
 * empty, the code's message).  Returns 2 for a value of the wrong form
 * (SPRO_ECONFIG), else 1. */
int spro_admin__failed(const struct command *c, int rc, const char *why);

/* A descriptor number, 0..INT_MAX: 0 and *fd, or -1. */
int spro_admin__parse_fd(const char *s, int *fd);

/* The options naming the passphrase source given on the command line. */
struct spro_datadir_options spro_admin__passphrase_options(void);

/* For a command that opens a directory twice: reads the passphrase that o
 * names (if any) once, into guarded memory (*pass: free it with
 * spro_secret_free, which wipes it), and points o at it.  0, or the exit
 * status after printing why. */
int spro_admin__passphrase_once(const struct command *c, struct spro_datadir_options *o,
                                char **pass);

/* The actor of this process's audit entries: "admin:uid=N" (static
 * storage). */
const char *spro_admin__admin_actor(void);

/* Opens the data directory dir with the passphrase options, or prints why
 * not and returns NULL.  Audit entries it writes name this process's
 * actor.  The caller closes it (spro_datadir_close). */
struct spro_datadir *spro_admin__open_dir(const struct command *c, const char *dir);

/* Records an admin action that changes nothing in data.db (backup,
 * restore, check, a listing) in the audit log: through dd when it is not
 * NULL, else in dir, opened for it with the passphrase options given.  A
 * warning on stderr, not a failure, if it cannot be recorded (a directory
 * with master.salt and no passphrase given). */
void spro_admin__audit_action(const struct command *c, const char *dir, struct spro_datadir *dd,
                              const char *kind, const char *detail);

/* Parses argv: the options in opts[0..nopts) (and, when c is keyed, the
 * passphrase options), and exactly npos positional arguments into pos
 * (named posnames in messages).  Returns 0, or 2 after printing the usage
 * error. */
int spro_admin__parse_args(const struct command *c, int argc, char **argv, const struct opt *opts,
                           size_t nopts, const char **pos, const char *const *posnames,
                           size_t npos);

/* The prologue of most commands: spro_admin__parse_args, then
 * spro_admin__open_dir.  Returns 0 with *dd open (the caller closes it),
 * or the exit status (2: usage error, 1: the directory does not open)
 * after printing why, *dd then NULL. */
int spro_admin__parse_open(const struct command *c, const char *dir, int argc, char **argv,
                           const struct opt *opts, size_t nopts, const char **pos,
                           const char *const *posnames, size_t npos, struct spro_datadir **dd);

/* spro_admin__parse_open for a command whose one option is the flag
 * --json (into *json) and which takes no argument. */
int spro_admin__parse_open_json(const struct command *c, const char *dir, int argc, char **argv,
                                int *json, struct spro_datadir **dd);

/* ISO 8601 UTC of t (seconds), e.g. 2024-05-01T09:30:00Z; the number
 * itself when it has no such form. */
void spro_admin__iso8601(char out[32], int64_t t);

/* The n bytes at p as 2n lowercase hex digits and a NUL into out. */
void spro_admin__hex(char *out, const uint8_t *p, size_t n);

/* A byte count with an optional K, M or G suffix: 0 and *v, or -1. */
int spro_admin__parse_size(const char *s, uint64_t *v);

/* Prints s as a JSON string on stdout: quotes, backslashes and control
 * characters escaped. */
void spro_admin__json_string(const char *s);

/* The wall clock in milliseconds since the epoch. */
int64_t spro_admin__now_ms(void);

#endif
