/*
 * spro-admin: the operators' command line.
 *
 *   spro-admin --data DIR init     create a data directory
 *   spro-admin --data DIR info     show its schema and the server's keys
 *
 * Commands are listed in one table; each has its own --help.  Exit status:
 * 0 on success, 1 when the command failed, 2 for a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/crypto.h"
#include "sync/sync.h"

struct command {
    const char *name;
    const char *args;
    const char *summary;
    int (*fn)(const char *data_dir, int argc, char **argv);
};

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

static int no_args(const char *cmd, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "spro-admin %s: unexpected argument '%s' (see spro-admin %s --help)\n", cmd,
                argv[0], cmd);
        return 2;
    }
    return 0;
}

static int cmd_init(const char *dir, int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("usage: spro-admin --data DIR init\n"
               "Create the data directory DIR: master key (DIR/master.key, mode 0600),\n"
               "data.db and keys.db at the current schema, and the server's Noise static\n"
               "key (X25519) and Ed25519 signing key, sealed in keys.db under the master\n"
               "key.  Refuses to touch a DIR that exists and is not empty.\n");
        return 0;
    }
    int rc = no_args("init", argc, argv);
    if (rc != 0)
        return rc;
    char why[512] = "";
    rc = spro_datadir_init(dir, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "spro-admin init: %s\n", why[0] ? why : spro_strerror(rc));
        return 1;
    }
    struct spro_datadir *dd;
    if ((rc = spro_datadir_open(dir, &dd, why, sizeof why)) != 0) {
        fprintf(stderr, "spro-admin init: created, but cannot reopen: %s\n", why);
        return 1;
    }
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(dd));
    printf("initialised %s (schema %d)\nserver key fingerprint: %s\n", dir, spro_datadir_schema(dd),
           fp);
    spro_datadir_close(dd);
    return 0;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static int cmd_info(const char *dir, int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("usage: spro-admin --data DIR info\n"
               "Open DIR (migrating its databases if they are older than this program) and\n"
               "show the schema version, the server's public keys and their fingerprints.\n");
        return 0;
    }
    int rc = no_args("info", argc, argv);
    if (rc != 0)
        return rc;
    char why[512] = "";
    struct spro_datadir *dd;
    if ((rc = spro_datadir_open(dir, &dd, why, sizeof why)) != 0) {
        fprintf(stderr, "spro-admin info: %s\n", why[0] ? why : spro_strerror(rc));
        return 1;
    }
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

static const struct command commands[] = {
    {"init", "", "create a data directory (refuses an existing one)", cmd_init},
    {"info", "", "show schema version and the server's public keys", cmd_info},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: spro-admin [--data DIR] COMMAND [ARG]...\n"
               "Administer a spro-sync data directory.\n\n"
               "  --data DIR   data directory (default ./var)\n"
               "  --help       show this help; COMMAND --help shows a command's\n"
               "  --version    show the version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
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
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].fn(dir, argc - i - 1, argv + i + 1);
    fprintf(stderr, "spro-admin: unknown command '%s' (see spro-admin --help)\n", argv[i]);
    return 2;
}
