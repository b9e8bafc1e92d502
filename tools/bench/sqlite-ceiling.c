/*
 * spro-sqlite-ceiling: the ceiling of the push benchmark of
 * tools/bench/sync.sh (a benchmark tool, not a test): a bare SQLite upsert
 * loop of the same rows the pushes carry, on the same disk, with the
 * server's durability setting (journal_mode=WAL, synchronous=FULL), one
 * transaction per batch of the same size as a push.  This is a benchmark
 * tool: it includes sqlite3.h itself (elsewhere only sync/store.c does).
 *
 *   spro-sqlite-ceiling --db FILE --preload N --batch-create B --batch-edit E
 *                       [--seconds S]
 *
 * One table, one row per beneficiary: its UUID (primary key) and one TEXT
 * column per field of sync-records.h.  First, untimed, the N beneficiaries
 * of the initial-sync set in one transaction (as the server's database holds
 * them when the pushes run).  Then, for S seconds each:
 *   create: new beneficiaries, seven values, INSERT ... ON CONFLICT DO
 *           UPDATE, B rows per transaction;
 *   edit:   the rows just created, round robin, phone and situation set by
 *           INSERT ... ON CONFLICT DO UPDATE, E rows per transaction.
 * Prints "ceiling-create rows/s R rows N" and "ceiling-edit rows/s R rows N".
 */
#include "sync-records.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sqlite3 *db;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void check(int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "spro-sqlite-ceiling: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static void exec(const char *sql)
{
    check(sqlite3_exec(db, sql, NULL, NULL, NULL), sql);
}

static void put_row(sqlite3_stmt *st, uint64_t i, uint32_t salt)
{
    char uuid[37], v[SR_FIELDS][SR_VALUE_MAX];
    sr_uuid(uuid, i, salt);
    sr_values(i, v);
    sqlite3_bind_text(st, 1, uuid, 36, SQLITE_TRANSIENT);
    for (int j = 0; j < SR_FIELDS; j++)
        sqlite3_bind_text(st, 2 + j, v[j], -1, SQLITE_TRANSIENT);
    check(sqlite3_step(st), "upsert");
    sqlite3_reset(st);
}

static void put_edit(sqlite3_stmt *st, uint64_t i, uint64_t k)
{
    char uuid[37], v[SR_EDIT_FIELDS][SR_VALUE_MAX];
    sr_uuid(uuid, i, 1);
    sr_edit_values(i, k, v);
    sqlite3_bind_text(st, 1, uuid, 36, SQLITE_TRANSIENT);
    for (int j = 0; j < SR_EDIT_FIELDS; j++)
        sqlite3_bind_text(st, 2 + j, v[j], -1, SQLITE_TRANSIENT);
    check(sqlite3_step(st), "upsert");
    sqlite3_reset(st);
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    uint64_t preload = 0;
    long batch_c = 0, batch_e = 0, seconds = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--db") == 0)
            file = argv[i + 1];
        else if (strcmp(argv[i], "--preload") == 0)
            preload = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--batch-create") == 0)
            batch_c = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--batch-edit") == 0)
            batch_e = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atol(argv[i + 1]);
    }
    if (file == NULL || batch_c < 1 || batch_e < 1 || seconds < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: spro-sqlite-ceiling --db FILE --preload N --batch-create B "
                        "--batch-edit E [--seconds S]\n");
        return 2;
    }
    check(sqlite3_open(file, &db), "open");
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = FULL");
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS ben(id TEXT PRIMARY KEY");
    for (int j = 0; j < SR_FIELDS; j++)
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s TEXT", sr_names[j]);
    snprintf(sql + n, sizeof sql - (size_t)n, ")");
    exec(sql);

    sqlite3_stmt *ins, *upd;
    n = snprintf(sql, sizeof sql, "INSERT INTO ben VALUES (?1");
    for (int j = 0; j < SR_FIELDS; j++)
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", ?%d", 2 + j);
    n += snprintf(sql + n, sizeof sql - (size_t)n, ") ON CONFLICT(id) DO UPDATE SET ");
    for (int j = 0; j < SR_FIELDS; j++)
        n += snprintf(sql + n, sizeof sql - (size_t)n, "%s%s = excluded.%s", j ? ", " : "",
                      sr_names[j], sr_names[j]);
    check(sqlite3_prepare_v2(db, sql, -1, &ins, NULL), sql);
    const char *p = sr_names[sr_edit_fields[0]], *s = sr_names[sr_edit_fields[1]];
    snprintf(sql, sizeof sql,
             "INSERT INTO ben(id, %s, %s) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET "
             "%s = excluded.%s, %s = excluded.%s",
             p, s, p, p, s, s);
    check(sqlite3_prepare_v2(db, sql, -1, &upd, NULL), sql);

    exec("BEGIN IMMEDIATE");
    for (uint64_t i = 0; i < preload; i++)
        put_row(ins, i, 0);
    exec("COMMIT");

    uint64_t rows = 0, t0 = now_us(), end = t0 + (uint64_t)seconds * 1000000, t;
    while ((t = now_us()) < end) {
        exec("BEGIN IMMEDIATE");
        for (long k = 0; k < batch_c; k++)
            put_row(ins, rows++, 1);
        exec("COMMIT");
    }
    t = now_us();
    printf("ceiling-create rows/s %.0f rows %llu\n", (double)rows * 1e6 / (double)(t - t0),
           (unsigned long long)rows);

    uint64_t created = rows, edits = 0, next = 0;
    if (created == 0) {
        fprintf(stderr, "spro-sqlite-ceiling: no row was created\n");
        return 1;
    }
    t0 = now_us();
    end = t0 + (uint64_t)seconds * 1000000;
    while ((t = now_us()) < end) {
        exec("BEGIN IMMEDIATE");
        for (long k = 0; k < batch_e; k++, edits++, next = (next + 1) % created)
            put_edit(upd, next, 1 + edits / created);
        exec("COMMIT");
    }
    t = now_us();
    printf("ceiling-edit rows/s %.0f rows %llu\n", (double)edits * 1e6 / (double)(t - t0),
           (unsigned long long)edits);
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    check(sqlite3_close(db), "close");
    return 0;
}
