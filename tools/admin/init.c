/*
 * init.c: spro-admin init, info: creating a data directory and showing its keys.
 */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

int spro_admin__cmd_init(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *ops_s = NULL, *mem_s = NULL;
    const struct opt opts[] = {{"--kdf-ops", "N", 0, &ops_s, NULL},
                               {"--kdf-mem", "BYTES", 0, &mem_s, NULL}};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 2, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir_options o = spro_admin__passphrase_options();
    int salted = spro_datadir_options_have_passphrase(&o);
    if ((ops_s != NULL || mem_s != NULL) && !salted)
        return spro_admin__usage_error(c, "--kdf-ops and --kdf-mem go with --passphrase-file or "
                                          "--passphrase-fd");
    if (ops_s != NULL &&
        (spro_admin__parse_size(ops_s, &o.kdf_ops) != 0 || strpbrk(ops_s, "KkMmGg") ||
         o.kdf_ops < SPRO_PWHASH_OPS_MIN || o.kdf_ops > SPRO_PWHASH_OPS_MAX))
        return spro_admin__usage_error(c,
                                       "--kdf-ops must be a whole number from %u to %u, not '%s'",
                                       SPRO_PWHASH_OPS_MIN, SPRO_PWHASH_OPS_MAX, ops_s);
    if (mem_s != NULL && (spro_admin__parse_size(mem_s, &o.kdf_mem) != 0 ||
                          o.kdf_mem < SPRO_PWHASH_MEM_MIN || o.kdf_mem > SPRO_PWHASH_MEM_MAX))
        return spro_admin__usage_error(
            c,
            "--kdf-mem must be a size from 8K to 4G (suffix K, M or G), not "
            "'%s'",
            mem_s);
    char why[512] = "";
    char *pass;
    /* Read once: init derives the key, then the reopen below derives it again. */
    if ((rc = spro_admin__passphrase_once(c, &o, &pass)) != 0)
        return rc;
    rc = spro_datadir_init_ex(dir, &o, why, sizeof why);
    if (rc != 0) {
        spro_secret_free(pass);
        spro_admin__failed(c, rc, why);
        return 1;
    }
    struct spro_datadir *dd;
    rc = spro_datadir_open_ex(dir, &o, &dd, why, sizeof why);
    spro_secret_free(pass);
    if (rc != 0) {
        fprintf(stderr, "%s: created, but cannot reopen: %s\n", spro_admin__title(c), why);
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
                    spro_admin__title(c));
    } else {
        printf("master key: %s/master.key (mode 0600)\n", dir);
    }
    printf("server key fingerprint: %s\n", fp);
    spro_datadir_close(dd);
    return 0;
}

int spro_admin__cmd_info(const struct command *c, const char *dir, int argc, char **argv)
{
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, NULL, 0, NULL, NULL, 0, &dd);
    if (rc != 0)
        return rc;
    char fp[SPRO_FINGERPRINT_CHARS], pk[2 * SPRO_KEY_BYTES + 1];
    printf("data: %s\nschema: %d\n", dir, spro_datadir_schema(dd));
    spro_admin__hex(pk, spro_datadir_noise_public(dd), SPRO_KEY_BYTES);
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(dd));
    printf("noise public key: %s\nserver key fingerprint: %s\n", pk, fp);
    spro_admin__hex(pk, spro_datadir_sign_public(dd), SPRO_KEY_BYTES);
    printf("signing public key: %s\n", pk);
    spro_datadir_close(dd);
    return 0;
}
