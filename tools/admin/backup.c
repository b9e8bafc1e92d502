/*
 * backup.c: spro-admin backup, restore, check, quarantine list: copies of a data directory, its
 * integrity, and the ops the server set aside.
 */
#include "commands.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"

int spro_admin__cmd_backup(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *dest;
    int data_only = 0, keys_only = 0;
    const struct opt opts[] = {{"--data-only", NULL, 0, NULL, &data_only},
                               {"--keys-only", NULL, 0, NULL, &keys_only}};
    static const char *const posnames[] = {"DEST"};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 2, &dest, posnames, 1);
    if (rc != 0)
        return rc;
    if (data_only && keys_only)
        return spro_admin__usage_error(c, "--data-only and --keys-only exclude each other");
    unsigned what = data_only   ? SPRO_BACKUP_DATA
                    : keys_only ? SPRO_BACKUP_KEYS
                                : SPRO_BACKUP_DATA | SPRO_BACKUP_KEYS;
    char why[512] = "";
    struct spro_backup_result res;
    rc = spro_datadir_backup(dir, dest, what, &res, why, sizeof why);
    if (rc != 0)
        return spro_admin__failed(c, rc, why);
    char detail[96];
    snprintf(detail, sizeof detail, "data=%llu keys=%llu", (unsigned long long)res.data_bytes,
             (unsigned long long)res.keys_bytes);
    spro_admin__audit_action(c, dir, NULL, "admin.backup", detail);
    if (what & SPRO_BACKUP_DATA)
        printf("wrote %s/data.db (%llu bytes)\n", dest, (unsigned long long)res.data_bytes);
    if (what & SPRO_BACKUP_KEYS)
        printf("wrote %s/keys.db (%llu bytes)\n", dest, (unsigned long long)res.keys_bytes);
    char master[PATH_MAX];
    snprintf(master, sizeof master, "%s/master.salt", dir);
    if (access(master, F_OK) != 0)
        snprintf(master, sizeof master, "%s/master.key", dir);
    printf("not copied: %s; back it up separately, apart from these files (a restore needs "
           "it: spro-admin restore --help)\n",
           master);
    return 0;
}

int spro_admin__cmd_restore(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *src, *target = NULL, *key = NULL, *salt = NULL;
    const struct opt opts[] = {{"--data", "DIR", 0, &target, NULL},
                               {"--master-key", "FILE", 0, &key, NULL},
                               {"--master-salt", "FILE", 0, &salt, NULL}};
    static const char *const posnames[] = {"SRC"};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 3, &src, posnames, 1);
    if (rc != 0)
        return rc;
    if (target == NULL && spro_admin__data_given)
        target = dir;
    if (target == NULL || target[0] == '\0')
        return spro_admin__usage_error(
            c, "missing --data DIR (the new data directory to restore into)");
    struct spro_datadir_options o = spro_admin__passphrase_options();
    if ((key == NULL) == (salt == NULL))
        return spro_admin__usage_error(
            c, "give the backup's master key: --master-key FILE, or --master-salt "
               "FILE with --passphrase-file FILE or --passphrase-fd N");
    if (key != NULL && spro_datadir_options_have_passphrase(&o))
        return spro_admin__usage_error(
            c, "--passphrase-file and --passphrase-fd go with --master-salt, not "
               "--master-key");
    if (salt != NULL && !spro_datadir_options_have_passphrase(&o))
        return spro_admin__usage_error(
            c, "--master-salt needs the passphrase: --passphrase-file FILE or "
               "--passphrase-fd N");
    char why[512] = "", *pass;
    if ((rc = spro_admin__passphrase_once(c, &o, &pass)) != 0)
        return rc;
    rc = spro_datadir_restore(src, target, key, salt, &o, why, sizeof why);
    struct spro_datadir *dd = NULL;
    if (rc == 0)
        rc = spro_datadir_open_ex(target, &o, &dd, why, sizeof why);
    spro_secret_free(pass);
    if (rc != 0) {
        spro_admin__failed(c, rc, why);
        return 1;
    }
    spro_admin__audit_action(c, target, dd, "admin.restore", "");
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_noise_public(dd));
    printf("restored %s into %s (schema %d); the server keys open under the master key\n"
           "server key fingerprint: %s\n",
           src, target, spro_datadir_schema(dd), fp);
    spro_datadir_close(dd);
    return 0;
}

struct check_tally {
    int run;
    char failed[512]; /* names of the failed checks, comma-separated */
};

static void report_check(const char *name, int rc, const char *detail, void *arg)
{
    struct check_tally *t = arg;
    t->run++;
    if (rc == 0) {
        printf("ok      %s: %s\n", name, detail);
    } else {
        printf("FAILED  %s: %s\n", name, detail);
        size_t n = strlen(t->failed);
        snprintf(t->failed + n, sizeof t->failed - n, "%s%s", n ? ", " : "", name);
    }
    fflush(stdout);
}

int spro_admin__cmd_check(const struct command *c, const char *dir, int argc, char **argv)
{
    int rc = spro_admin__parse_args(c, argc, argv, NULL, 0, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    struct spro_datadir_options o = spro_admin__passphrase_options();
    struct check_tally t = {0, ""};
    int failures = spro_datadir_check(dir, &o, report_check, &t);
    char detail[64];
    snprintf(detail, sizeof detail, "checks=%d failed=%d", t.run, failures);
    spro_admin__audit_action(c, dir, NULL, "admin.check", detail);
    if (failures == 0) {
        printf("all %d checks passed\n", t.run);
        return 0;
    }
    fprintf(stderr, "%s: %d of %d checks failed: %s\n", spro_admin__title(c), failures, t.run,
            t.failed);
    return 1;
}

/* Prints one quarantined op, as a table row or a JSON object. */
static int print_quarantined(const struct spro_quarantined *q, void *arg)
{
    int *json = arg; /* 1: JSON, first row still to come; 2: JSON, later rows; 0: table */
    char at[32];
    spro_admin__iso8601(at, q->at_ms / 1000);
    if (*json == 0) {
        printf("%-36s  %10llu  %-36s  %-20s  %s\n", q->device, (unsigned long long)q->seq, q->ben,
               q->code, at);
        return 0;
    }
    printf("%s\n  {\"device\": ", *json == 2 ? "," : "");
    spro_admin__json_string(q->device);
    printf(", \"seq\": %llu, \"beneficiary\": ", (unsigned long long)q->seq);
    spro_admin__json_string(q->ben);
    printf(", \"code\": ");
    spro_admin__json_string(q->code);
    printf(", \"at\": ");
    spro_admin__json_string(at);
    printf("}");
    *json = 2;
    return 0;
}

int spro_admin__cmd_quarantine_list(const struct command *c, const char *dir, int argc, char **argv)
{
    int json = 0;
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open_json(c, dir, argc, argv, &json, &dd);
    if (rc != 0)
        return rc;
    if (json)
        printf("[");
    else
        printf("%-36s  %10s  %-36s  %-20s  %s\n", "DEVICE", "SEQ", "BENEFICIARY", "CODE", "AT");
    int mode = json ? 1 : 0;
    rc = spro_sync_quarantine_list(dd, print_quarantined, &mode);
    if (rc == 0)
        spro_admin__audit_action(c, dir, dd, "admin.quarantine.list", "");
    spro_datadir_close(dd);
    if (json)
        printf("%s]\n", mode == 2 ? "\n" : "");
    return rc == 0 ? 0 : spro_admin__failed(c, rc, NULL);
}
