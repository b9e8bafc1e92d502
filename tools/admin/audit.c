/*
 * audit.c: spro-admin audit verify|show|checkpoint: the tamper-evident audit log.
 */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"

static void iso8601_ms(char out[40], int64_t ms)
{
    char s[32];
    spro_admin__iso8601(s, ms / 1000);
    snprintf(out, 40, "%.19s.%03dZ", s, (int)(ms % 1000));
}

int spro_admin__cmd_audit_verify(const struct command *c, const char *dir, int argc, char **argv)
{
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, NULL, 0, NULL, NULL, 0, &dd);
    if (rc != 0)
        return rc;
    struct spro_audit_report r;
    rc = spro_audit_verify(dd, &r);
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, spro_datadir_sign_public(dd));
    spro_datadir_close(dd);
    if (rc == SPRO_EINTEGRITY) {
        fprintf(stderr, "%s\n", r.why);
        fprintf(stderr, "%s: FAILED: first bad seq %lld (%lld entries, %lld checkpoints read)\n",
                spro_admin__title(c), (long long)r.bad_seq, (long long)r.entries,
                (long long)r.checkpoints);
        return 1;
    }
    if (rc != 0)
        return spro_admin__failed(c, rc, r.why);
    printf("ok: %lld entries chain from the genesis (last seq %lld); %lld checkpoints, every "
           "signature good (signing key fingerprint %s)\n",
           (long long)r.entries, (long long)r.last_seq, (long long)r.checkpoints, fp);
    if (r.last_checkpoint > 0) {
        char hash[2 * SPRO_AUDIT_HASH_BYTES + 1], at[40];
        spro_admin__hex(hash, r.last_checkpoint_hash, SPRO_AUDIT_HASH_BYTES);
        iso8601_ms(at, r.last_checkpoint_ms);
        printf("last checkpoint: seq %lld hash %s at %s\n", (long long)r.last_checkpoint, hash, at);
        if (r.last_seq > r.last_checkpoint)
            printf("note: entries %lld to %lld follow the last checkpoint (not yet signed)\n",
                   (long long)r.last_checkpoint + 1, (long long)r.last_seq);
    }
    return 0;
}

/* Prints s for a terminal or inside a JSON string: bytes outside printable
 * ASCII (only a tampered row has any) as \u00XX, and in JSON '"' and '\'
 * escaped. */
static void audit_text(const char *s, int json)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch > 0x7e)
            printf("\\u%04x", ch);
        else if (json && (ch == '"' || ch == '\\'))
            printf("\\%c", ch);
        else
            putchar(ch);
    }
}

struct show {
    int json;  /* 1: JSON, first row still to come; 2: later rows; 0: table */
    int64_t n; /* rows printed */
};

static int print_entry(const struct spro_audit_record *e, void *arg)
{
    struct show *sh = arg;
    char at[40];
    iso8601_ms(at, e->time_ms);
    sh->n++;
    if (sh->json == 0) {
        printf("%8lld  %s  ", (long long)e->seq, at);
        const char *cells[] = {e->kind, e->actor, e->object, e->detail};
        for (int k = 0; k < 4; k++) {
            audit_text(cells[k], 0);
            fputs(k < 3 ? "  " : "\n", stdout);
        }
        return 0;
    }
    char hash[2 * SPRO_AUDIT_HASH_BYTES + 1] = "";
    if (e->hash_len == SPRO_AUDIT_HASH_BYTES)
        spro_admin__hex(hash, e->hash, SPRO_AUDIT_HASH_BYTES);
    printf("%s\n  {\"seq\": %lld, \"time\": \"%s\"", sh->json == 2 ? "," : "", (long long)e->seq,
           at);
    const char *keys[] = {"kind", "actor", "object", "detail", "hash"};
    const char *vals[] = {e->kind, e->actor, e->object, e->detail, hash};
    for (int k = 0; k < 5; k++) {
        printf(", \"%s\": \"", keys[k]);
        audit_text(vals[k], 1);
        putchar('"');
    }
    putchar('}');
    sh->json = 2;
    return 0;
}

/* --since: a sequence number (digits) or a UTC time, YYYY-MM-DD or
 * YYYY-MM-DDTHH:MM:SSZ.  0 and *after (show entries above it) or *since_ms,
 * or -1. */
static int parse_since(const char *s, int64_t *after, int64_t *since_ms)
{
    *after = 0;
    *since_ms = 0;
    if (strspn(s, "0123456789") == strlen(s) && s[0] != '\0' && strlen(s) <= 18) {
        long long v = strtoll(s, NULL, 10);
        *after = v > 0 ? v - 1 : 0;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%d", &tm);
    }
    if (end == NULL || *end != '\0')
        return -1;
    time_t t = timegm(&tm);
    if (t < 0)
        return -1;
    *since_ms = (int64_t)t * 1000;
    return 0;
}

int spro_admin__cmd_audit_show(const struct command *c, const char *dir, int argc, char **argv)
{
    const char *since_s = NULL;
    int json = 0;
    const struct opt opts[] = {{"--since", "SEQ|TIME", 0, &since_s, NULL},
                               {"--json", NULL, 0, NULL, &json}};
    int rc = spro_admin__parse_args(c, argc, argv, opts, 2, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    int64_t after = 0, since_ms = 0;
    if (since_s != NULL && parse_since(since_s, &after, &since_ms) != 0)
        return spro_admin__usage_error(
            c,
            "--since takes a sequence number or a UTC time (2025-06-01 or "
            "2025-06-01T09:30:00Z), not '%s'",
            since_s);
    struct spro_datadir *dd = spro_admin__open_dir(c, dir);
    if (dd == NULL)
        return 1;
    struct show sh = {json ? 1 : 0, 0};
    if (json)
        printf("[");
    else
        printf("%8s  %-24s  %s  %s  %s  %s\n", "SEQ", "TIME", "KIND", "ACTOR", "OBJECT", "DETAIL");
    rc = spro_audit_each(dd, after, since_ms, print_entry, &sh);
    spro_datadir_close(dd);
    if (json)
        printf("%s]\n", sh.json == 2 ? "\n" : "");
    return rc == 0 ? 0 : spro_admin__failed(c, rc, NULL);
}

int spro_admin__cmd_audit_checkpoint(const struct command *c, const char *dir, int argc,
                                     char **argv)
{
    struct spro_datadir *dd;
    int rc = spro_admin__parse_open(c, dir, argc, argv, NULL, 0, NULL, NULL, 0, &dd);
    if (rc != 0)
        return rc;
    int64_t seq = 0;
    rc = spro_audit_checkpoint(dd, spro_admin__now_ms(), &seq);
    spro_datadir_close(dd);
    if (rc == SPRO_EINTEGRITY)
        return spro_admin__failed(
            c, rc,
            "the audit log does not verify (see: spro-admin audit verify); nothing "
            "was signed");
    if (rc != 0)
        return spro_admin__failed(c, rc, NULL);
    if (seq > 0)
        printf("signed a checkpoint at seq %lld\n", (long long)seq);
    else
        printf("nothing to sign: no entry since the last checkpoint\n");
    return 0;
}
