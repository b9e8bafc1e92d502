/*
 * spro-admin: the operators' command line (tools/admin/main.c: the table
 * of commands, the global options and the dispatch; each family of
 * commands has its own file, commands.h).
 *
 *   spro-admin --data DIR init                     create a data directory
 *   spro-admin --data DIR info                     show its schema and the server's keys
 *   spro-admin --data DIR backup DEST              copy data.db and keys.db, online
 *   spro-admin restore SRC --data DIR ...          make a data directory from a backup
 *   spro-admin --data DIR check                    integrity of the databases and keys
 *   spro-admin --data DIR key rotate|rewrap|status|change-master   key-encryption keys
 *   spro-admin --data DIR org add ORG_ID ...       add an organisation
 *   spro-admin --data DIR user add USER_ID ...     add a counsellor
 *   spro-admin --data DIR device invite ...        issue an enrolment ticket
 *   spro-admin --data DIR device list|revoke|wipe  manage devices
 *   spro-admin --data DIR subject export|erase ID  a beneficiary's rights: export, erasure
 *   spro-admin --data DIR retention run ...        anonymise what the retention rules say
 *   spro-admin --data DIR audit verify|show|checkpoint   the tamper-evident audit log
 *
 * Commands are listed in one table; each has its own --help.  Exit status:
 * 0 on success, 1 when the command failed (unknown or duplicate ids, a
 * refused state change, the database), 2 for a usage error (unknown
 * option, missing argument, a value of the wrong form).  Every command but
 * init, restore and key change-master works while spro-server runs on the
 * same data directory.
 *
 * A data directory whose master key comes from a passphrase (master.salt)
 * needs it for every command that opens the directory (those whose table
 * entry has `keyed` set): --passphrase-file FILE or --passphrase-fd N,
 * before or after the command's name.  The passphrase is read once, into
 * guarded memory, and wiped after use.
 */
#include "commands.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/crypto.h"

static const struct command commands[] = {
    {"init", NULL, "[--passphrase-file FILE | --passphrase-fd N] [--kdf-ops N] [--kdf-mem BYTES]",
     "create a data directory (refuses an existing one)",
     "Create the data directory DIR: master key (DIR/master.key, 32 random bytes,\n"
     "mode 0600), data.db and keys.db at the current schema, and the server's Noise\n"
     "static key (X25519) and Ed25519 signing key, sealed in keys.db under the master\n"
     "key.  Refuses to touch a DIR that exists and is not empty.\n"
     "With a passphrase, the master key is Argon2id of it instead, and DIR gets\n"
     "master.salt (salt and costs, not secret) in place of master.key; every command\n"
     "on DIR, spro-server included, then needs the passphrase.\n"
     "  --kdf-ops N      Argon2id passes, 1 to 64 (default 3: libsodium's MODERATE)\n"
     "  --kdf-mem BYTES  Argon2id memory, 8K to 4G, suffix K, M or G (default 256M);\n"
     "                   below 2 passes and 64M only for tests\n",
     spro_admin__cmd_init, 1},
    {"info", NULL, "", "show schema version and the server's public keys",
     "Open DIR (migrating its databases if they are older than this program) and\n"
     "show the schema version, the server's public keys and their fingerprints.\n",
     spro_admin__cmd_info, 1},
    {"org", "add", "ORG_ID --name NAME --kind KIND", "add an organisation",
     "Add the organisation ORG_ID (1 to 64 characters among A-Z a-z 0-9 . _ -).\n"
     "  --name NAME   its name as people know it (1 to 200 bytes)\n"
     "  --kind KIND   cio, mission-locale, france-travail, cap-emploi, psad,\n"
     "                region or other\n",
     spro_admin__cmd_org_add, 1},
    {"user", "add", "USER_ID --org ORG_ID [--role ROLE]", "add a counsellor to an organisation",
     "Add the user USER_ID (1 to 64 characters among A-Z a-z 0-9 . _ -) to the\n"
     "organisation ORG_ID.\n"
     "  --org ORG_ID  an organisation added with: spro-admin org add\n"
     "  --role ROLE   counsellor (default), supervisor or admin\n",
     spro_admin__cmd_user_add, 1},
    {"device", "invite", "--user USER_ID [--url URL] [--ttl SECONDS] [--no-qr]",
     "issue a one-time enrolment ticket for a new device",
     "Issue a one-time enrolment ticket binding the next device that redeems it to\n"
     "USER_ID, and print it once: a line 'ticket: spro1:...', a line 'expires:'\n"
     "(ISO 8601, UTC), then the same ticket as a QR code for the device's camera\n"
     "(drawn for light text on a dark terminal).  The ticket holds the server's key\n"
     "fingerprint and a secret of which only a keyed hash is stored: give it to the\n"
     "counsellor alone, it cannot be shown again.\n"
     "  --user USER_ID  the counsellor who will use the device\n"
     "  --url URL       the server's address as devices reach it, http:// or https://,\n"
     "                  host and optional port, no path (default " SPRO_ADMIN_DEFAULT_URL ")\n"
     "  --ttl SECONDS   lifetime of the ticket, 60 to 86400 (default 900: 15 minutes)\n"
     "  --no-qr         print no QR code\n",
     spro_admin__cmd_device_invite, 1},
    {"device", "list", "[--json]", "list devices with their counsellor and state",
     "List every enrolled device, oldest first: device id, counsellor, organisation,\n"
     "state (active, revoked, wipe_pending, wiped), enrolment time and last\n"
     "connection (ISO 8601, UTC, or never).\n"
     "  --json   a JSON array of objects with the keys id, user, org, state,\n"
     "           enrolled_at and last_seen (null if never)\n",
     spro_admin__cmd_device_list, 1},
    {"device", "revoke", "DEVICE_ID", "revoke a device",
     "Revoke DEVICE_ID (active or wipe-pending): it cannot open a session any more\n"
     "and an open session ends at its next request.  Revoking a revoked or wiped\n"
     "device changes nothing and succeeds.\n",
     spro_admin__cmd_device_revoke, 1},
    {"device", "wipe", "DEVICE_ID", "order an active device to erase its local data",
     "Order the active device DEVICE_ID to wipe: at its next connection the server\n"
     "tells it to erase its local data, then treats it as revoked.  A revoked or\n"
     "wiped device cannot be ordered to wipe.\n",
     spro_admin__cmd_device_wipe, 1},
    {"quarantine", "list", "[--json]", "list the ops the server refused",
     "List every op a device pushed and the server refused (kept, never dropped),\n"
     "oldest first: device id, op sequence number, the beneficiary it named (an\n"
     "id, not a name), the reason code (docs/PROTOCOL.md, \"Sync\") and when.  The\n"
     "op itself stays sealed: it may hold personal data.\n"
     "  --json   a JSON array of objects with the keys device, seq, beneficiary,\n"
     "           code and at\n",
     spro_admin__cmd_quarantine_list, 1},
    {"backup", NULL, "DEST [--data-only | --keys-only]",
     "copy data.db and keys.db into DEST, while the server runs",
     "Copy DIR's databases into DEST (a new or empty directory): DEST/data.db, then\n"
     "DEST/keys.db, each a consistent snapshot taken with SQLite's online backup\n"
     "API in small steps while spro-server keeps serving and committing pushes.\n"
     "Each file is mode 0600, a single SQLite file (no -wal), written under a\n"
     "temporary name, fsync'd and renamed.  Needs no key: it copies sealed data.\n"
     "The master key (master.key or master.salt) is never copied: keep it apart\n"
     "from these files, which a restore combines with it.  data.db and keys.db may\n"
     "be kept for different times (erasing a beneficiary deletes its key from\n"
     "keys.db, which makes its data in every older data.db unreadable).\n"
     "  --data-only   copy data.db alone\n"
     "  --keys-only   copy keys.db alone\n",
     spro_admin__cmd_backup, 0},
    {"restore", NULL,
     "SRC --data DIR (--master-key FILE | --master-salt FILE --passphrase-file FILE)",
     "make a new data directory from a backup",
     "Make the data directory DIR (which must not exist, or be empty) from the backup\n"
     "SRC (SRC/data.db and SRC/keys.db, as written by spro-admin backup) and the\n"
     "master key kept apart from it, then open it the normal way (migrations, server\n"
     "keys) to prove it works.  DIR is built beside itself and renamed into place\n"
     "only then: it ends complete or untouched.  Refuses an incomplete SRC and a\n"
     "master key under which the server keys of SRC/keys.db do not open.  SRC is\n"
     "only read.\n"
     "  --data DIR          the new data directory (also accepted before restore)\n"
     "  --master-key FILE   the backup's master key file (copied to DIR/master.key)\n"
     "  --master-salt FILE  or its master.salt (copied to DIR/master.salt), with the\n"
     "                      passphrase\n",
     spro_admin__cmd_restore, 1},
    {"check", NULL, "", "check the databases and the keys; non-zero if any check fails",
     "Check DIR, one line per check, 'ok' or 'FAILED' with what was found:\n"
     "PRAGMA integrity_check and foreign_key_check of data.db and of keys.db, then\n"
     "that the server keys open under the master key.  Exits 1, naming the failed\n"
     "checks, if any fails.  Works while spro-server runs.\n",
     spro_admin__cmd_check, 1},
    {"key", "rotate", "", "start a new key-encryption-key epoch",
     "Make a new key-encryption key (KEK) epoch, random, wrapped under the master key,\n"
     "and make it the active one: new data keys are wrapped under it.  The data keys\n"
     "of older epochs are re-wrapped in the background by spro-server, in batches\n"
     "of 1,000 while it serves (or by spro-admin key rewrap); each older epoch is\n"
     "destroyed once no data key uses it.  Works while spro-server runs.\n",
     spro_admin__cmd_key_rotate, 1},
    {"key", "rewrap", "[--batch N]", "re-wrap the data keys of old epochs now",
     "Re-wrap every data key of a KEK epoch older than the active one under the\n"
     "active one, N per keys.db transaction (default 1000), then destroy the old\n"
     "epochs that no data key uses.  Safe to interrupt at any point, and to run\n"
     "beside spro-server, which does the same in the background.\n"
     "  --batch N   data keys per transaction, 1 to 100000\n",
     spro_admin__cmd_key_rewrap, 1},
    {"key", "status", "[--json]", "KEK epochs and the progress of re-wrapping",
     "Show each KEK epoch: state (active: new data keys; retired: its data keys are\n"
     "being re-wrapped; destroyed), its number of data keys, when it was made and\n"
     "destroyed; then how many data keys are under the active epoch.\n"
     "  --json   one JSON object: current, data_keys, rewrapped and epochs (epoch,\n"
     "           state, derived, data_keys, created_at, destroyed_at)\n",
     spro_admin__cmd_key_status, 1},
    {"key", "change-master",
     "(--new-master-key FILE | --new-passphrase-file FILE | --new-passphrase-fd N)",
     "wrap every key-encryption key under a new master key",
     "Replace the master key: every live KEK, the root key and the server keys are\n"
     "wrapped again under the new key in one keys.db transaction, then the new\n"
     "master file replaces the old one, kept as master.key.old (or master.salt.old)\n"
     "until you remove it.  A crash at any point is finished (or undone) by the\n"
     "next open.  Stop spro-server first and restart it afterwards.\n"
     "  --new-master-key FILE       a directory with master.key: a new random key is\n"
     "                              written to FILE (must not exist, mode 0600) and\n"
     "                              installed as master.key\n"
     "  --new-passphrase-file FILE  a directory with master.salt: the new passphrase\n"
     "  --new-passphrase-fd N       (first line), and a new salt\n"
     "  --kdf-ops N, --kdf-mem BYTES  Argon2id costs of the new passphrase\n",
     spro_admin__cmd_key_change_master, 1},
    {"audit", "verify", "", "check the audit log's chain and signatures; non-zero if broken",
     "Walk the whole audit log from its first entry, recomputing each entry's keyed\n"
     "hash from the one before; check every checkpoint's Ed25519 signature (the\n"
     "server's key) and that it matches the chain at its seq; and that no\n"
     "checkpoint lies beyond the last entry.  Prints the count of entries and\n"
     "checkpoints and the last checkpoint (seq, hash, time: keep a copy apart to\n"
     "detect a later rewrite of the whole tail).  On failure prints the first bad\n"
     "sequence number (an edited, deleted, inserted or reordered entry, a bad\n"
     "checkpoint, or the checkpoint covering a truncated tail) and exits 1.  Works\n"
     "while spro-server runs.\n",
     spro_admin__cmd_audit_verify, 1},
    {"audit", "show", "[--since SEQ|TIME] [--json]", "list the audit log's entries",
     "List the entries of the audit log, oldest first: seq, time (UTC), kind, actor,\n"
     "object and detail (ids and codes only, never personal data).\n"
     "  --since SEQ|TIME  from entry SEQ on, or from a UTC time on (2025-06-01 or\n"
     "                    2025-06-01T09:30:00Z)\n"
     "  --json            a JSON array of objects with the keys seq, time, kind,\n"
     "                    actor, object, detail and hash (hex)\n",
     spro_admin__cmd_audit_show, 1},
    {"audit", "checkpoint", "", "sign a checkpoint of the audit log now",
     "Verify the entries appended since the last checkpoint and sign a checkpoint of\n"
     "the last one with the server's Ed25519 key.  spro-server does this every\n"
     "--audit-checkpoint-interval seconds and at shutdown; this command is for a\n"
     "directory no server runs on.  Refuses (exit 1) to sign a broken chain.\n",
     spro_admin__cmd_audit_checkpoint, 1},
    {"subject", "export", "BENEFICIARY_ID [--out FILE]",
     "everything held about a beneficiary, decrypted, as JSON",
     "Export everything data.db holds about BENEFICIARY_ID (and the beneficiaries\n"
     "merged into it): every record of every type, each field with all its values\n"
     "(decrypted), their authors and versions, the organisations that receive it,\n"
     "the ops refused about it, and the audit entries naming its records.  One JSON\n"
     "document, pretty-printed (format in docs/SYNC.md, \"Erasure and retention\").\n"
     "The export itself is recorded in the audit log.  An erased beneficiary has\n"
     "nothing left to export (the message says when it was erased).\n"
     "  --out FILE   write it to FILE (mode 0600, written atomically) instead of\n"
     "               standard output\n",
     spro_admin__cmd_subject_export, 1},
    {"subject", "erase", "BENEFICIARY_ID (--reason TEXT | --reason-file FILE | --reason-fd N)",
     "destroy a beneficiary's personal data and its data key",
     "Erase BENEFICIARY_ID (and the beneficiaries merged into it): its personal\n"
     "values, blind indexes, refused ops and kept conflict answers are deleted, its\n"
     "data key is destroyed (so every copy of data.db, backups included, can no\n"
     "longer be decrypted for it), both WALs are checkpointed, and every device\n"
     "that holds it deletes its copy at its next sync.  Non-personal (coded) fields\n"
     "stay, for statistics.  Pushes naming it are answered not_found from then on.\n"
     "Cannot be undone.  An erasure cut short (crash) is finished by the next\n"
     "command or server start on DIR, or by erasing again.\n"
     "Give the reason with exactly one of:\n"
     "  --reason TEXT       why (request number, legal basis); kept sealed under the\n"
     "                      master key, never in clear: do not put the person's name\n"
     "                      in it.  On the command line it shows in ps and the shell\n"
     "                      history: prefer the two options below\n"
     "  --reason-file FILE  the same, the first line of FILE (a regular file, not a\n"
     "                      symbolic link, mode 0600)\n"
     "  --reason-fd N       the same, the first line read from file descriptor N\n",
     spro_admin__cmd_subject_erase, 1},
    {"retention", "run", "[--rule PROGRAMME:YEARS]... [--config FILE] [--dry-run]",
     "anonymise the beneficiaries whose retention period is over",
     "Anonymise (erase, as subject erase does, reason \"retention\") every beneficiary\n"
     "closed (state closed) for longer than the rule of its programmes: the longest\n"
     "rule among the programmes of its enrolments applies; a programme without a\n"
     "rule keeps it unless a rule \"*\" exists.  Coded statistics stay.  Prints one\n"
     "line per beneficiary due, then the count.\n"
     "  --rule PROGRAMME:YEARS  a rule (repeat it); PROGRAMME * is any other\n"
     "  --config FILE           also the rules of a spro-server config file\n"
     "                          (lines 'retention = PROGRAMME:YEARS')\n"
     "  --dry-run               print what is due, erase nothing\n",
     spro_admin__cmd_retention_run, 1},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: spro-admin [--data DIR] COMMAND [ARG]...\n"
               "Administer a spro-sync data directory.\n\n"
               "  --data DIR              data directory (default ./var)\n"
               "  --passphrase-file FILE  its passphrase, if it has master.salt: the first\n"
               "                          line of FILE (mode 0600)\n"
               "  --passphrase-fd N       the same, read from file descriptor N\n"
               "  --help                  show this help; COMMAND --help shows a command's\n"
               "  --version               show the version\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%s%s", commands[i].group, commands[i].name ? " " : "",
                 commands[i].name ? commands[i].name : "");
        fprintf(f, "  %-15s %s\n", name, commands[i].summary);
    }
    fprintf(f, "\nExit status: 0 done, 1 failed, 2 usage error.\n");
}

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* Finds the command named by argv[0] (and argv[1] for two-word ones) and
 * runs it, or explains what is wrong. */
static int dispatch(const char *dir, int argc, char **argv)
{
    int group_known = 0;
    for (size_t k = 0; k < NCOMMANDS; k++) {
        const struct command *c = &commands[k];
        if (strcmp(argv[0], c->group) != 0)
            continue;
        group_known = 1;
        int words = c->name ? 2 : 1;
        if (c->name != NULL && (argc < 2 || strcmp(argv[1], c->name) != 0))
            continue;
        if (wants_help(argc - words, argv + words)) {
            spro_admin__print_help(c);
            return 0;
        }
        return c->fn(c, dir, argc - words, argv + words);
    }
    if (!group_known) {
        fprintf(stderr, "spro-admin: unknown command '%s' (see spro-admin --help)\n", argv[0]);
        return 2;
    }
    /* A known first word with a missing or unknown second one. */
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    FILE *f = help ? stdout : stderr;
    if (!help && argc >= 2)
        fprintf(f, "spro-admin %s: unknown subcommand '%s'\n", argv[0], argv[1]);
    else if (!help)
        fprintf(f, "spro-admin %s: missing subcommand\n", argv[0]);
    fprintf(f, "usage:\n");
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (strcmp(argv[0], commands[k].group) == 0)
            fprintf(f, "  spro-admin --data DIR %s %s %s\n", commands[k].group, commands[k].name,
                    commands[k].args);
    return help ? 0 : 2;
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
            spro_admin__data_given = 1;
        } else if (strncmp(argv[i], "--data=", 7) == 0) {
            dir = argv[i] + 7;
            spro_admin__data_given = 1;
        } else if (strcmp(argv[i], "--passphrase-file") == 0 && i + 1 < argc) {
            spro_admin__passphrase_file = argv[++i];
        } else if (strncmp(argv[i], "--passphrase-file=", 18) == 0) {
            spro_admin__passphrase_file = argv[i] + 18;
        } else if (strcmp(argv[i], "--passphrase-fd") == 0 && i + 1 < argc) {
            spro_admin__passphrase_fd = argv[++i];
        } else if (strncmp(argv[i], "--passphrase-fd=", 16) == 0) {
            spro_admin__passphrase_fd = argv[i] + 16;
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
    return dispatch(dir, argc - i, argv + i);
}
