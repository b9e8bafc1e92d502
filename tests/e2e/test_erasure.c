/*
 * test_erasure.c: end-to-end tests of people's rights (docs/SYNC.md,
 * "Erasure and retention") with real processes: spro-admin subject export
 * (JSON, --out 0600) and subject erase against a running spro-server and
 * two spro-client devices of two organisations (both delete their copies
 * at their next sync; an edit pushed afterwards is answered not_found); a
 * copy of data.db taken before the erasure, opened with the current
 * keys.db, in which that person's values no longer decrypt while another
 * person's still do; clear errors for an unknown id and an erased one;
 * spro-admin killed (SIGKILL, through the SPRO_FAILPOINT test hook of
 * sync/erase.c) before, in the middle of and after the steps of an
 * erasure, the next open finishing it or finding it cleanly absent; and
 * retention, by spro-admin retention run and by the server's periodic
 * task, keeping the coded statistics.
 *
 * usage: test_e2e_erasure SPRO_SERVER SPRO_ADMIN SPRO_CLIENT [TEST]...
 */
#include "check.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* A data directory with o1 (u1) and o2 (u3). */
static bool make_data(char *data, size_t cap, const char *name)
{
    char out[4096];
    snprintf(data, cap, "%s", h_make_datadir(name));
    if (H_ADMIN(out, "--data", data, "org", "add", "o1", "--name", "CIO Nord", "--kind", "cio") !=
            0 ||
        H_ADMIN(out, "--data", data, "user", "add", "u1", "--org", "o1") != 0 ||
        H_ADMIN(out, "--data", data, "org", "add", "o2", "--name", "ML Sud", "--kind",
                "mission-locale") != 0 ||
        H_ADMIN(out, "--data", data, "user", "add", "u3", "--org", "o2") != 0) {
        fprintf(stderr, "spro-admin set-up failed: %s\n", out);
        return false;
    }
    return true;
}

static bool enroll(const char *data, const char *url, const char *user, const char *name,
                   char *home, size_t cap)
{
    char out[4096], ticket[512];
    snprintf(home, cap, "%s/%s", h_tmpdir(), name);
    if (H_ADMIN(out, "--data", data, "device", "invite", "--user", user, "--url", url, "--no-qr") !=
            0 ||
        !h_line_value(out, "ticket: ", ticket, sizeof ticket) ||
        H_CLIENT(out, "--home", home, "enroll", ticket) != 0) {
        fprintf(stderr, "enrolment failed: %s\n", out);
        return false;
    }
    return true;
}

static bool sync_ok(const char *home, char *out, size_t cap)
{
    int rc = h_runl(out, cap, h_client_bin, "--home", home, "sync", (const char *)NULL);
    if (rc != 0)
        fprintf(stderr, "spro-client sync exited %d: %s\n", rc, out);
    return rc == 0;
}

/* A new beneficiary on home (extra field assignments NULL-terminated). */
static bool new_ben(const char *home, const char *family, const char *extra, char *id, size_t cap)
{
    char out[4096], arg[128];
    snprintf(arg, sizeof arg, "family_name=%s", family);
    int rc = extra ? H_CLIENT(out, "--home", home, "new", "beneficiary", "given_name=Léa", arg,
                              "phone:=0601020304", "situation=school", extra)
                   : H_CLIENT(out, "--home", home, "new", "beneficiary", "given_name=Léa", arg,
                              "phone:=0601020304", "situation=school");
    if (rc != 0 || !h_line_value(out, "id: ", id, cap)) {
        fprintf(stderr, "spro-client new exited %d: %s\n", rc, out);
        return false;
    }
    return true;
}

/* A row when the record ?1 keeps field NAME among its fields that are not
 * personal (records.plain, a msgpack array: the field's name is in it as a
 * str; "situation" and "state" are no other field's or value's bytes). */
#define PLAIN_FIELD(NAME)                                                                          \
    "SELECT 1 FROM records WHERE rid = ?1 AND instr(plain, CAST('" NAME "' AS BLOB)) > 0"

/* The number of rows a query of the database at path gives, or -1. */
static long count_rows(const char *path, const char *sql, const char *param)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (param != NULL)
            sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
        n = 0;
        while (sqlite3_step(st) == SQLITE_ROW)
            n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A directory made of an old data.db and the current keys.db and master
 * key: what a stolen or restored old backup gives with today's keys. */
static bool old_copy_dir(const char *data, const char *old_backup, char *dir, size_t cap)
{
    char out[4096], keys[700], cmd[4096];
    snprintf(dir, cap, "%s/oldcopy", h_tmpdir());
    snprintf(keys, sizeof keys, "%s/keys-now", h_tmpdir());
    if (H_ADMIN(out, "--data", data, "backup", keys, "--keys-only") != 0)
        return false;
    snprintf(cmd, sizeof cmd,
             "mkdir -m 700 '%s' && cp '%s/data.db' '%s/keys.db' '%s/master.key' '%s/' && chmod "
             "600 '%s'/*",
             dir, old_backup, keys, data, dir, dir);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return h_run(argv, out, sizeof out) == 0;
}

/*
 * The whole path: o1's device a creates X and Y, o2 gets X in scope
 * through an enrolment, c (o2) pulls it.  Export, a backup of data.db,
 * erasure; both devices delete X; c's offline edit of X is refused
 * not_found; the old data.db with today's keys: X unreadable, Y readable.
 */
static void test_erase_end_to_end(void)
{
    char data[600], url[64], a[600], c[600], out[16384], x[64], y[64], ben_arg[80], path[800];
    CHECK(make_data(data, sizeof data, "e2e"));
    struct h_server s;
    CHECK_EQ(h_server_start(&s, data, NULL), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    CHECK(enroll(data, url, "u1", "erase-a", a, sizeof a));
    CHECK(enroll(data, url, "u3", "erase-c", c, sizeof c));
    CHECK(new_ben(a, "Xavier-Erased", NULL, x, sizeof x));
    CHECK(new_ben(a, "Yves-Kept", NULL, y, sizeof y));
    snprintf(ben_arg, sizeof ben_arg, "ben=%s", x);
    CHECK_EQ(H_CLIENT(out, "--home", a, "new", "interaction", ben_arg, "kind=visit",
                      "note=NOTE-ABOUT-X"),
             0);
    CHECK_EQ(H_CLIENT(out, "--home", a, "new", "enrolment", ben_arg, "programme=cep",
                      "owner_org=o2", "status=open"),
             0);
    CHECK(sync_ok(a, out, sizeof out));
    CHECK(sync_ok(c, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", c, "show", x), 0);
    CHECK(strstr(out, "Xavier-Erased") != NULL);

    /* Export: JSON, decrypted, to a 0600 file. */
    snprintf(path, sizeof path, "%s/x.json", h_tmpdir());
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", x, "--out", path), 0);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    CHECK(strstr(out, "\"format\": \"spro-sync subject export v1\"") != NULL);
    CHECK(strstr(out, "\"value\": \"Xavier-Erased\"") != NULL);
    CHECK(strstr(out, "\"value\": \"0601020304\"") != NULL);
    CHECK(strstr(out, "\"value\": \"NOTE-ABOUT-X\"") != NULL);
    CHECK(strstr(out, "\"organisations\": [\"o1\", \"o2\"]") != NULL);
    /* Who received it: a (u1, o1) and c (u3, o2) pulled it. */
    const char *rcpt = strstr(out, "\"devices_that_pulled\": [");
    CHECK(rcpt != NULL);
    CHECK(strstr(rcpt, "\"user\": \"u1\", \"organisation\": \"o1\", \"state\": \"active\"") !=
          NULL);
    CHECK(strstr(rcpt, "\"user\": \"u3\", \"organisation\": \"o2\"") != NULL);
    CHECK(strstr(out, "\"kind\": \"push\"") != NULL); /* the audit trail */
    CHECK(strstr(out, "Yves-Kept") == NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", y), 0); /* to stdout */
    CHECK(strstr(out, "\"value\": \"Yves-Kept\"") != NULL);
    CHECK(strstr(out, "\"user\": \"u1\"") != NULL);
    CHECK(strstr(out, "\"user\": \"u3\"") == NULL); /* o2 never received Y */

    /* A consistent copy of data.db before the erasure; c edits X offline. */
    char old[700];
    snprintf(old, sizeof old, "%s/old-backup", h_tmpdir());
    CHECK_EQ(H_ADMIN(out, "--data", data, "backup", old, "--data-only"), 0);
    CHECK_EQ(H_CLIENT(out, "--home", c, "edit", x, "situation=work"), 0);

    /* Errors first: an unknown id, a malformed one, no reason. */
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "erase",
                     "0a2a57e7-eccb-456a-9999-58a0008fca1c", "--reason", "test"),
             1);
    CHECK(strstr(out, "no beneficiary 0a2a57e7-eccb-456a-9999-58a0008fca1c") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "erase", "Xavier", "--reason", "test"), 2);
    CHECK(strstr(out, "not a beneficiary id") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "erase", x), 2);
    CHECK(strstr(out, "missing --reason TEXT") != NULL);

    /* The erasure. */
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "erase", x, "--reason", "GDPR art. 17, #42"),
             0);
    CHECK(strstr(out, "erased beneficiary ") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", x), 1);
    CHECK(strstr(out, "was erased on ") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "erase", x, "--reason", "again"), 1);
    CHECK(strstr(out, "was already erased on ") != NULL);
    char kdb[700], ddb[700];
    snprintf(kdb, sizeof kdb, "%s/keys.db", data);
    snprintf(ddb, sizeof ddb, "%s/data.db", data);
    CHECK_EQ(count_rows(kdb, "SELECT 1 FROM data_keys WHERE ben = ?1", x), 0);
    CHECK_EQ(count_rows(kdb, "SELECT 1 FROM data_keys WHERE ben = ?1", y), 1);
    /* Coded statistics stay; nothing sealed, no blind index, no scope. */
    CHECK_EQ(count_rows(ddb, PLAIN_FIELD("situation"), x), 1);
    CHECK_EQ(count_rows(ddb,
                        "SELECT 1 FROM siblings AS s JOIN records AS r ON r.rtype = s.rtype AND "
                        "r.rid = s.rid WHERE r.ben = ?1 AND s.sealed = 1",
                        x),
             0);
    CHECK_EQ(count_rows(ddb, "SELECT 1 FROM records WHERE ben = ?1 AND sealed IS NOT NULL", x), 0);
    CHECK_EQ(count_rows(ddb, "SELECT 1 FROM records WHERE ben = ?1 AND sealed IS NOT NULL", y), 1);
    CHECK_EQ(count_rows(ddb, "SELECT 1 FROM scope WHERE ben = ?1", x), 0);
    CHECK_EQ(count_rows(ddb, "SELECT 1 FROM erased WHERE ben = ?1 AND done = 1", x), 1);

    /* Devices delete their copies; c's edit is refused as if X never was. */
    CHECK(sync_ok(a, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", a, "show", x), 1);
    CHECK_EQ(H_CLIENT(out, "--home", a, "show", y), 0);
    CHECK(sync_ok(c, out, sizeof out));
    CHECK(strstr(out, "pushed: 0 acked, 0 conflicts, 1 rejected\n") != NULL);
    CHECK(strstr(out, ": not_found") != NULL);
    CHECK_EQ(H_CLIENT(out, "--home", c, "show", x), 1);
    CHECK_EQ(H_CLIENT(out, "--home", c, "list"), 0);
    CHECK(strstr(out, x) == NULL);
    /* The server keeps serving: a new edit of Y goes through. */
    CHECK_EQ(H_CLIENT(out, "--home", a, "edit", y, "situation=work"), 0);
    CHECK(sync_ok(a, out, sizeof out));
    CHECK(strstr(out, "pushed: 1 acked") != NULL);

    /* The old data.db with today's keys.  In the file, X's values are
     * still there, sealed, and keys.db holds no key for them: they cannot
     * be decrypted.  Opened, the copy is erased again (keys.db remembers
     * the erasure): X is gone, Y still decrypts. */
    char copy[700], cdb[800], ckeys[800];
    static const char sealed_of[] = "SELECT 1 FROM records WHERE ben = ?1 AND sealed IS NOT NULL";
    CHECK(old_copy_dir(data, old, copy, sizeof copy));
    snprintf(cdb, sizeof cdb, "%s/data.db", copy);
    snprintf(ckeys, sizeof ckeys, "%s/keys.db", copy);
    CHECK(count_rows(cdb, sealed_of, x) > 0);
    CHECK_EQ(count_rows(ckeys, "SELECT 1 FROM data_keys WHERE ben = ?1", x), 0);
    CHECK_EQ(count_rows(ckeys, "SELECT 1 FROM data_keys WHERE ben = ?1", y), 1);
    CHECK_EQ(count_rows(ckeys, "SELECT 1 FROM erased_keys WHERE ben = ?1", x), 1);
    CHECK_EQ(H_ADMIN(out, "--data", copy, "check"), 0);
    CHECK(strstr(out, "ok      every sealed field decrypts: ") != NULL);
    CHECK(strstr(out, "unreadable") == NULL);
    CHECK_EQ(count_rows(cdb, sealed_of, x), 0);
    CHECK(count_rows(cdb, sealed_of, y) > 0);
    CHECK_EQ(H_ADMIN(out, "--data", copy, "subject", "export", x), 1);
    CHECK(strstr(out, "was erased on ") != NULL);
    CHECK(strstr(out, "Xavier-Erased") == NULL);
    CHECK_EQ(H_ADMIN(out, "--data", copy, "subject", "export", y), 0);
    CHECK(strstr(out, "\"value\": \"Yves-Kept\"") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "check"), 0);
    CHECK(strstr(out, "unreadable") == NULL);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
}

/* spro-admin killed at each step of an erasure (SPRO_FAILPOINT): the
 * erasure is finished by the next open (a command, or a server start), or,
 * killed before its first commit, cleanly absent; Y always decrypts. */
static void test_erase_crash(void)
{
    static const char *const points[] = {"erase-before-commit", "erase-after-data",
                                         "erase-after-key"};
    for (size_t i = 0; i < 3; i++) {
        char name[32], data[600], url[64], a[600], out[16384], x[64], y[64], home[40];
        snprintf(name, sizeof name, "crash%zu", i);
        snprintf(home, sizeof home, "crash-a%zu", i);
        CHECK(make_data(data, sizeof data, name));
        struct h_server s;
        CHECK_EQ(h_server_start(&s, data, NULL), 0);
        snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
        CHECK(enroll(data, url, "u1", home, a, sizeof a));
        CHECK(new_ben(a, "Xavier-Crash", NULL, x, sizeof x));
        CHECK(new_ben(a, "Yves-Crash", NULL, y, sizeof y));
        CHECK(sync_ok(a, out, sizeof out));

        setenv("SPRO_FAILPOINT", points[i], 1);
        int rc = H_ADMIN(out, "--data", data, "subject", "erase", x, "--reason", "crash test");
        unsetenv("SPRO_FAILPOINT");
        CHECK_EQ(rc, 128 + 9); /* SIGKILL */
        h_server_kill(&s);     /* and the server dies too */

        char kdb[700];
        snprintf(kdb, sizeof kdb, "%s/keys.db", data);
        if (i == 0) {
            /* Never committed: nothing happened. */
            CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", x), 0);
            CHECK(strstr(out, "Xavier-Crash") != NULL);
        } else {
            /* The restarted server's open finishes it. */
            CHECK_EQ(h_server_start(&s, data, NULL), 0);
            CHECK_EQ(h_server_stop(&s, 5000), 0);
            CHECK_EQ(count_rows(kdb, "SELECT 1 FROM data_keys WHERE ben = ?1", x), 0);
            CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "erase", x, "--reason", "again"), 1);
            CHECK(strstr(out, "was already erased on ") != NULL);
            CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", x), 1);
            CHECK(strstr(out, "was erased on ") != NULL);
        }
        CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", y), 0);
        CHECK(strstr(out, "\"value\": \"Yves-Crash\"") != NULL);
        CHECK_EQ(H_ADMIN(out, "--data", data, "check"), 0);
        CHECK(strstr(out, "unreadable") == NULL);
    }
}

/* Retention: a closed beneficiary whose rule has run out is anonymised by
 * retention run (dry run first), an open one and one whose rule has not
 * run out stay; the server's periodic task does the same. */
static void test_retention(void)
{
    char data[600], url[64], a[600], out[16384], closed[64], open_[64], later[64], cfg[700];
    CHECK(make_data(data, sizeof data, "retention"));
    struct h_server s;
    CHECK_EQ(h_server_start(&s, data, NULL), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    CHECK(enroll(data, url, "u1", "ret-a", a, sizeof a));
    CHECK(new_ben(a, "Closed-One", "state=closed", closed, sizeof closed));
    CHECK(new_ben(a, "Still-Open", NULL, open_, sizeof open_));
    CHECK(sync_ok(a, out, sizeof out));
    CHECK_EQ(h_server_stop(&s, 5000), 0);

    CHECK_EQ(H_ADMIN(out, "--data", data, "retention", "run"), 2);
    CHECK(strstr(out, "no rule") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "retention", "run", "--rule", "bad"), 2);
    /* Five years: nothing due yet. */
    CHECK_EQ(H_ADMIN(out, "--data", data, "retention", "run", "--rule", "spro-reception:5"), 0);
    CHECK(strstr(out, "0 beneficiaries due") != NULL);
    /* A programme without a rule keeps it. */
    CHECK_EQ(H_ADMIN(out, "--data", data, "retention", "run", "--rule", "cep:0"), 0);
    CHECK(strstr(out, "0 beneficiaries due") != NULL);
    snprintf(cfg, sizeof cfg, "%s/server.conf", h_tmpdir());
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL);
    fprintf(f, "# retention rules\nretention = spro-reception:0\nretention-interval = 1\n");
    fclose(f);
    CHECK_EQ(H_ADMIN(out, "--data", data, "retention", "run", "--config", cfg, "--dry-run"), 0);
    CHECK(strstr(out, "due     ") != NULL && strstr(out, closed) != NULL);
    CHECK(strstr(out, open_) == NULL);
    CHECK(strstr(out, "1 beneficiary due (dry run: nothing erased)") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", closed), 0);
    CHECK_EQ(H_ADMIN(out, "--data", data, "retention", "run", "--rule", "*:0"), 0);
    CHECK(strstr(out, "erased  ") != NULL && strstr(out, closed) != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", closed), 1);
    CHECK(strstr(out, "was erased on ") != NULL);
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "export", open_), 0);
    char ddb[700];
    snprintf(ddb, sizeof ddb, "%s/data.db", data);
    CHECK_EQ(
        count_rows(ddb, "SELECT 1 FROM erased WHERE ben = ?1 AND reason = 'retention'", closed), 1);
    CHECK_EQ(count_rows(ddb, PLAIN_FIELD("situation"), closed), 1);
    CHECK_EQ(count_rows(ddb, PLAIN_FIELD("state"), closed), 1);

    /* The server's periodic task, from its config file. */
    const char *extra[] = {"--config", cfg, NULL};
    CHECK_EQ(h_server_start(&s, data, extra), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    /* a's state names the old port: a new device on the new server. */
    char b[600];
    CHECK(enroll(data, url, "u1", "ret-b", b, sizeof b));
    CHECK(new_ben(b, "Closed-Later", "state=closed", later, sizeof later));
    CHECK(sync_ok(b, out, sizeof out));
    char *log = NULL;
    for (int t = 0; t < 60; t++) {
        free(log);
        log = h_server_log(&s);
        if (log != NULL && strstr(log, later) != NULL && strstr(log, "retention_erased") != NULL)
            break;
        usleep(100000);
    }
    CHECK(log != NULL && strstr(log, "\"retention_erased\"") != NULL && strstr(log, later));
    CHECK(strstr(log, "Closed-Later") == NULL); /* ids only in logs */
    free(log);
    CHECK(sync_ok(b, out, sizeof out));
    CHECK_EQ(H_CLIENT(out, "--home", b, "show", later), 1);
    CHECK_EQ(H_CLIENT(out, "--home", b, "show", open_), 0);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
}

/* ---- Tampering with sealed data ---- */

/* Copies the data directory src to DIR/name (the server stopped), then
 * runs sql (one or more statements) on its file `db`; the copy's path into
 * dir.  Returns true on success. */
static bool tampered_copy(const char *src, const char *name, const char *db, const char *sql,
                          char *dir, size_t cap)
{
    char cmd[2048], out[1024], path[800];
    snprintf(dir, cap, "%s/%s", h_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", src, dir);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    if (h_run(argv, out, sizeof out) != 0)
        return false;
    snprintf(path, sizeof path, "%s/%s", dir, db);
    sqlite3 *h = NULL;
    char *err = NULL;
    bool ok = sqlite3_open(path, &h) == SQLITE_OK &&
              sqlite3_exec(h, sql, NULL, NULL, &err) == SQLITE_OK && sqlite3_changes(h) > 0;
    if (!ok)
        fprintf(stderr, "tampering %s failed: %s\n", path, err ? err : sqlite3_errmsg(h));
    sqlite3_free(err);
    sqlite3_close(h);
    return ok;
}

/* The sealed field sets of X and Y swapped; the schema version bound into
 * X's set changed; Y's wrapped data key replaced by X's; X's array of
 * other fields damaged.  Each time `spro-admin check` fails naming an
 * integrity failure, an export refuses, and a device's pull gets an error:
 * never the other value as data. */
static void test_swapped_sealed_values_refused(void)
{
    char data[600], url[64], a[600], out[16384], x[64], y[64], sql[2048], dir[700];
    CHECK(make_data(data, sizeof data, "tamper"));
    struct h_server s;
    CHECK_EQ(h_server_start(&s, data, NULL), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    CHECK(enroll(data, url, "u1", "tamper-a", a, sizeof a));
    CHECK(new_ben(a, "Xenia-Sealed", NULL, x, sizeof x));
    CHECK(new_ben(a, "Yann-Sealed", NULL, y, sizeof y));
    CHECK(sync_ok(a, out, sizeof out));
    CHECK_EQ(h_server_stop(&s, 5000), 0);
    CHECK_EQ(H_ADMIN(out, "--data", data, "check"), 0);

    static const char *const what[] = {"two records", "a schema version", "a moved data key",
                                       "a damaged array of fields"};
    for (int k = 0; k < 4; k++) {
        const char *db = k == 2 ? "keys.db" : "data.db";
        if (k == 0)
            snprintf(sql, sizeof sql,
                     "CREATE TEMP TABLE v AS SELECT rid, sealed FROM records"
                     " WHERE rid IN ('%s', '%s');"
                     "UPDATE records SET sealed = (SELECT sealed FROM v WHERE rid = '%s')"
                     " WHERE rid = '%s';"
                     "UPDATE records SET sealed = (SELECT sealed FROM v WHERE rid = '%s')"
                     " WHERE rid = '%s';",
                     x, y, y, x, x, y);
        else if (k == 1)
            snprintf(sql, sizeof sql,
                     "UPDATE records SET sealed_schema = sealed_schema + 1 WHERE rid = '%s';", x);
        else if (k == 2)
            snprintf(sql, sizeof sql,
                     "UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE ben = "
                     "'%s') WHERE ben = '%s';",
                     x, y);
        else /* an array of one item that is not a sibling */
            snprintf(sql, sizeof sql, "UPDATE records SET plain = X'9102' WHERE rid = '%s';", x);
        char name[32];
        snprintf(name, sizeof name, "tampered-%d", k);
        CHECK(tampered_copy(data, name, db, sql, dir, sizeof dir));
        int rc = H_ADMIN(out, "--data", dir, "check");
        if (rc != 1 || strstr(out, "do NOT open") == NULL)
            fprintf(stderr, "check after %s: %s\n", what[k], out);
        CHECK_EQ(rc, 1);
        CHECK(strstr(out, "every sealed field decrypts") != NULL);
        CHECK(strstr(out, "do NOT open") != NULL);
        CHECK(strstr(out, "Sealed") == NULL); /* no value printed */
        /* The damaged beneficiary's export refuses; nothing of the other. */
        const char *victim = k == 2 ? y : x;
        CHECK_EQ(H_ADMIN(out, "--data", dir, "subject", "export", victim), 1);
        CHECK(strstr(out, "Sealed") == NULL);
        /* A device's pull through a server on the copy gets an error. */
        char home[700], url2[64];
        CHECK_EQ(h_server_start(&s, dir, NULL), 0);
        snprintf(url2, sizeof url2, "http://127.0.0.1:%d", s.port);
        snprintf(name, sizeof name, "tamper-dev-%d", k);
        CHECK(enroll(dir, url2, "u1", name, home, sizeof home));
        CHECK(h_runl(out, sizeof out, h_client_bin, "--home", home, "sync", (const char *)NULL) !=
              0);
        CHECK(strstr(out, "Sealed") == NULL);
        CHECK_EQ(H_CLIENT(out, "--home", home, "list"), 0);
        CHECK(strstr(out, "Sealed") == NULL);
        CHECK_EQ(h_server_stop(&s, 5000), 0);
    }
}

/* An erasure logs removal events for the devices that hold the record.
 * The only device acknowledged a pull before it and then goes idle: no
 * acknowledgement purges them any more; once it is idle past
 * --sync-idle-horizon the server's periodic purge (--purge-interval)
 * does, and logs it. */
static void test_periodic_purge(void)
{
    char data[600], url[64], a[600], out[16384], x[64], ddb[700];
    CHECK(make_data(data, sizeof data, "purge"));
    struct h_server s;
    const char *extra[] = {"--sync-idle-horizon", "1", "--purge-interval", "1", NULL};
    CHECK_EQ(h_server_start(&s, data, extra), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    CHECK(enroll(data, url, "u1", "purge-a", a, sizeof a));
    CHECK(new_ben(a, "Pia-Purged", NULL, x, sizeof x));
    CHECK(sync_ok(a, out, sizeof out)); /* pushed, pulled, acknowledged */
    CHECK_EQ(H_ADMIN(out, "--data", data, "subject", "erase", x, "--reason", "test"), 0);
    snprintf(ddb, sizeof ddb, "%s/data.db", data);
    CHECK(count_rows(ddb, "SELECT 1 FROM scope_removed WHERE ben = ?1", x) > 0);
    long left = -1;
    for (int i = 0; i < 100 && left != 0; i++) { /* 10 s at most: only a failure waits */
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        left = count_rows(ddb, "SELECT 1 FROM scope_removed WHERE ben = ?1", x);
    }
    CHECK_EQ(left, 0);
    char *log = h_server_log(&s);
    CHECK(log != NULL && strstr(log, "\"removals_purged\"") != NULL &&
          strstr(log, "\"by\":\"periodic\"") != NULL);
    free(log);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
}

static const struct check_test tests[] = {
    {"erase_end_to_end", test_erase_end_to_end},
    {"erase_crash", test_erase_crash},
    {"retention", test_retention},
    {"swapped_sealed_values_refused", test_swapped_sealed_values_refused},
    {"periodic_purge", test_periodic_purge},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
