/*
 * keys.c: spro-admin key rotate|rewrap|status|change-master: key-encryption keys and the master
 * key.
 */
#include "commands.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"

int spro_admin__cmd_key_rotate(const struct command *c, const char *dir, int argc, char **argv)
{
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, NULL, 0, NULL, NULL, 0, &dd);
    if (rc != 0)
        return rc;
    char why[512] = "", detail[64];
    uint32_t epoch;
    rc = spro_keys_rotate(dd, (int64_t)time(NULL), &epoch, why, sizeof why);
    if (rc == 0) {
        snprintf(detail, sizeof detail, "epoch %u", epoch);
        spro_admin__audit_action(c, dir, dd, "key_rotate", detail);
    }
    spro_datadir_close(dd);
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
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
    if (spro_admin__parse_size(s, &x) != 0 || strpbrk(s, "KkMmGg") || x < 1 || x > max)
        return -1;
    *v = x;
    return 0;
}

int spro_admin__cmd_key_rewrap(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *batch_s = NULL;
    const struct opt opts[] = {{"--batch", "N", 0, &batch_s, NULL}};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 1, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    uint64_t batch = 1000;
    if (batch_s != NULL && parse_count(batch_s, SPRO_KEYS_BATCH_MAX, &batch) != 0)
        return spro_admin__usage_error(c, "--batch must be a whole number from 1 to %d, not '%s'",
                                       SPRO_KEYS_BATCH_MAX, batch_s);
    struct spro_datadir *dd = spro_admin__open_dir(c, dir);
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
        return spro_admin__failed(c, rc, why);
    }
    if (!r.done) {
        fprintf(stderr,
                "%s: an epoch is still retired but in use (a key was added under it "
                "meanwhile?); run it again\n",
                spro_admin__title(c));
        return 1;
    }
    return 0;
}

int spro_admin__cmd_key_status(const struct command *c, const char *dir, int argc, char **argv)
{
    int json = 0;
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open_json(c, dir, argc, argv, &json, &dd);
    if (rc != 0)
        return rc;
    struct spro_key_epoch e[SPRO_KEYS_EPOCHS_MAX];
    size_t n;
    rc = spro_keys_status(dd, e, SPRO_KEYS_EPOCHS_MAX, &n);
    spro_datadir_close(dd);
    if (rc != 0)
        return spro_admin__failed(c, rc, NULL);
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
            spro_admin__iso8601(created, e[i].created_at);
            spro_admin__iso8601(destroyed, e[i].destroyed_at);
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
        spro_admin__iso8601(created, e[i].created_at);
        if (e[i].destroyed_at)
            spro_admin__iso8601(destroyed, e[i].destroyed_at);
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

int spro_admin__cmd_key_change_master(const struct command *c, const char *dir, int argc,
                                      char **argv)
{
    const char *key_file = NULL, *pass_file = NULL, *pass_fd_s = NULL, *ops_s = NULL, *mem_s = NULL;
    const struct opt opts[] = {{"--new-master-key", "FILE", 0, &key_file, NULL},
                               {"--new-passphrase-file", "FILE", 0, &pass_file, NULL},
                               {"--new-passphrase-fd", "N", 0, &pass_fd_s, NULL},
                               {"--kdf-ops", "N", 0, &ops_s, NULL},
                               {"--kdf-mem", "BYTES", 0, &mem_s, NULL}};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 5, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    int given = (key_file != NULL) + (pass_file != NULL) + (pass_fd_s != NULL);
    if (given != 1)
        return spro_admin__usage_error(
            c, "give one of --new-master-key FILE, --new-passphrase-file FILE, "
               "--new-passphrase-fd N");
    struct spro_new_master nm = {0};
    int fd = -1;
    if (pass_fd_s != NULL && spro_admin__parse_fd(pass_fd_s, &fd) != 0)
        return spro_admin__usage_error(
            c, "--new-passphrase-fd takes a file descriptor number, not '%s'", pass_fd_s);
    if ((ops_s != NULL || mem_s != NULL) && key_file != NULL)
        return spro_admin__usage_error(c, "--kdf-ops and --kdf-mem go with a new passphrase");
    if (ops_s != NULL && parse_count(ops_s, SPRO_PWHASH_OPS_MAX, &nm.kdf_ops) != 0)
        return spro_admin__usage_error(c, "--kdf-ops must be a whole number from 1 to %u",
                                       SPRO_PWHASH_OPS_MAX);
    if (mem_s != NULL && (spro_admin__parse_size(mem_s, &nm.kdf_mem) != 0 ||
                          nm.kdf_mem < SPRO_PWHASH_MEM_MIN || nm.kdf_mem > SPRO_PWHASH_MEM_MAX))
        return spro_admin__usage_error(c, "--kdf-mem must be a size from 8K to 4G, not '%s'",
                                       mem_s);
    char why[512] = "", *newpass = NULL, *oldpass = NULL;
    if (key_file != NULL) {
        nm.key_file = key_file;
    } else if ((rc = spro_passphrase_read(pass_file, fd, &newpass, &nm.passphrase_len, why,
                                          sizeof why)) != 0) {
        return spro_admin__failed(c, rc, why);
    } else {
        nm.passphrase = newpass;
    }
    struct spro_datadir_options o = spro_admin__passphrase_options();
    if ((rc = spro_admin__passphrase_once(c, &o, &oldpass)) != 0) {
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
        spro_audit_set_actor(dd, spro_admin__admin_actor());
    if (rc == 0)
        spro_admin__audit_action(c, dir, dd, "key_change_master",
                                 key_file ? "key file" : "passphrase");
    spro_datadir_close(dd);
    spro_secret_free(newpass);
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
    printf("master key changed: every KEK, the root key and the server keys are now wrapped\n"
           "under the new %s; the old one is kept as %s/%s.old until you remove it\n"
           "(restart spro-server with the new one).\n",
           key_file ? "key" : "passphrase", dir, key_file ? "master.key" : "master.salt");
    if (key_file != NULL)
        printf("new master key: %s (mode 0600; keep a copy apart from the backups)\n", key_file);
    return 0;
}
