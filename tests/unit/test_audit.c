/*
 * Unit tests of the audit log: the cryptography of crypto/audit.c against
 * the known-answer values of docs/CRYPTO.md ("Audit log", read here too so
 * that the document and the code cannot drift apart), its argument limits,
 * and the chain logic of sync/audit.c on a real data directory: appends,
 * checkpoints, verification, and every kind of tampering done with SQLite
 * directly (edited, deleted, swapped, inserted rows, truncated tail, forged
 * checkpoint), each named by its first bad seq.
 */
#include "check.h"
#include "tmpmain.h"
#include "crypto/crypto.h"
#include "sync/store.h"
#include "sync/sync.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static void unhex(uint8_t *out, size_t n, const char *hex)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(check_hexval(hex[2 * i]) << 4 | check_hexval(hex[2 * i + 1]));
}

/* ---- Known answers (docs/CRYPTO.md, "Audit log") ---- */

#define KAT_MASTER "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KAT_SEED "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
#define KAT_AUDIT_KEY "501d4587b55d82c75981475f0262917d576ceae70260573ecdd6f06abefb1e22"
#define KAT_ENC1                                                                                   \
    "7370726f2d73796e632061756469742076310000000000000000010000018bcfe568000d6465766963652e72"     \
    "65766f6b650b61646d696e3a7569643d302b6465766963653a30623765376430632d316636612d346335352d"     \
    "386637652d32643163396135623365343000"
#define KAT_HASH1 "5321fdc9366ac42bdfa73a95dd059127fb37a4dfeae5c9417d75025715cc83fd"
#define KAT_HASH2 "66dc76a32de6c9d9ea8920bd3d63dbd14956e19502ba4d345ac0223c3d09cf42"
#define KAT_SIGN_PK "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
#define KAT_MSG                                                                                    \
    "7370726f2d73796e6320617564697420636865636b706f696e7420763100000000000000000266dc76a32de6"     \
    "c9d9ea8920bd3d63dbd14956e19502ba4d345ac0223c3d09cf420000018bcfe9fbe0"
#define KAT_SIG                                                                                    \
    "647e7ab1f3a262265d17e033a7bd6ca205f753f25f05343394cd569b2d7d85514bee9ade6cfff38fa1bd69ab51"   \
    "a540529b7f562304724894c50b3fbf9c607f09"

#define DEVICE "device:0b7e7d0c-1f6a-4c55-8f7e-2d1c9a5b3e40"
static const struct spro_audit_entry kat1 = {
    1, 1700000000000, "device.revoke", "admin:uid=0", "device:0b7e7d0c-1f6a-4c55-8f7e-2d1c9a5b3e40",
    ""};
static const struct spro_audit_entry kat2 = {
    2,         1700000000250, "push", DEVICE, "beneficiary:3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a37",
    "ack op=7"};
#define KAT_CP_TIME 1700000300000

static const char *const kat_hex[] = {KAT_MASTER, KAT_SEED,    KAT_AUDIT_KEY, KAT_ENC1, KAT_HASH1,
                                      KAT_HASH2,  KAT_SIGN_PK, KAT_MSG,       KAT_SIG};

static void test_kat(void)
{
    uint8_t master[32], key[32], want[64], h1[32], h2[32], genesis[32] = {0};
    unhex(master, 32, KAT_MASTER);
    spro_audit_key_derive(key, master);
    unhex(want, 32, KAT_AUDIT_KEY);
    CHECK_BYTES(key, 32, want, 32);

    uint8_t enc[SPRO_AUDIT_ENCODING_MAX], enc_want[sizeof KAT_ENC1 / 2];
    size_t n;
    CHECK_EQ(spro_audit_encode(enc, &n, &kat1), 0);
    unhex(enc_want, sizeof enc_want, KAT_ENC1);
    CHECK_BYTES(enc, n, enc_want, sizeof enc_want);

    CHECK_EQ(spro_audit_hash(h1, key, genesis, &kat1), 0);
    unhex(want, 32, KAT_HASH1);
    CHECK_BYTES(h1, 32, want, 32);
    CHECK_EQ(spro_audit_hash(h2, key, h1, &kat2), 0);
    unhex(want, 32, KAT_HASH2);
    CHECK_BYTES(h2, 32, want, 32);

    uint8_t seed[32], pk[32], sk[64], sig[64], m[SPRO_AUDIT_CHECKPOINT_MSG_BYTES],
        m_want[SPRO_AUDIT_CHECKPOINT_MSG_BYTES];
    unhex(seed, 32, KAT_SEED);
    spro_crypto_sign_seed_keypair(pk, sk, seed);
    unhex(want, 32, KAT_SIGN_PK);
    CHECK_BYTES(pk, 32, want, 32);
    spro_audit_checkpoint_message(m, 2, h2, KAT_CP_TIME);
    unhex(m_want, sizeof m_want, KAT_MSG);
    CHECK_BYTES(m, sizeof m, m_want, sizeof m_want);
    spro_audit_checkpoint_sign(sig, sk, 2, h2, KAT_CP_TIME);
    unhex(want, 64, KAT_SIG);
    CHECK_BYTES(sig, 64, want, 64);
    CHECK_EQ(spro_audit_checkpoint_verify(sig, pk, 2, h2, KAT_CP_TIME), 0);
    spro_memzero(sk, sizeof sk);
}

/* Any change of an input changes the hash, and of a checkpoint, breaks the
 * signature. */
static void test_binding(void)
{
    uint8_t key[32] = {1}, prev[32] = {0}, h[32], h2[32];
    CHECK_EQ(spro_audit_hash(h, key, prev, &kat2), 0);
    struct spro_audit_entry e = kat2;
    e.seq = 3;
    CHECK_EQ(spro_audit_hash(h2, key, prev, &e), 0);
    CHECK(memcmp(h, h2, 32) != 0);
    e = kat2, e.time_ms++;
    CHECK_EQ(spro_audit_hash(h2, key, prev, &e), 0);
    CHECK(memcmp(h, h2, 32) != 0);
    /* Moving a byte from one field to the next is not the same entry. */
    e = kat2, e.object = "beneficiary:3f2c8a1e-5b7d-4e21-9a0c-6d4b2e8f1a3", e.detail = "7ack op=7";
    CHECK_EQ(spro_audit_hash(h2, key, prev, &e), 0);
    CHECK(memcmp(h, h2, 32) != 0);
    prev[31] = 1;
    CHECK_EQ(spro_audit_hash(h2, key, prev, &kat2), 0);
    CHECK(memcmp(h, h2, 32) != 0);
    prev[31] = 0, key[0] = 2;
    CHECK_EQ(spro_audit_hash(h2, key, prev, &kat2), 0);
    CHECK(memcmp(h, h2, 32) != 0);

    uint8_t seed[32] = {7}, pk[32], sk[64], sig[64];
    spro_crypto_sign_seed_keypair(pk, sk, seed);
    spro_audit_checkpoint_sign(sig, sk, 5, h, 1000);
    CHECK_EQ(spro_audit_checkpoint_verify(sig, pk, 5, h, 1000), 0);
    CHECK_EQ(spro_audit_checkpoint_verify(sig, pk, 4, h, 1000), SPRO_EINTEGRITY);
    CHECK_EQ(spro_audit_checkpoint_verify(sig, pk, 5, h, 1001), SPRO_EINTEGRITY);
    CHECK_EQ(spro_audit_checkpoint_verify(sig, pk, 5, h2, 1000), SPRO_EINTEGRITY);
    sig[10] ^= 1;
    CHECK_EQ(spro_audit_checkpoint_verify(sig, pk, 5, h, 1000), SPRO_EINTEGRITY);
}

static void test_limits(void)
{
    uint8_t key[32] = {0}, prev[32] = {0}, h[32];
    char big[SPRO_AUDIT_FIELD_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct spro_audit_entry e = kat2;
    e.detail = big;
    CHECK_EQ(spro_audit_hash(h, key, prev, &e), SPRO_ETOOLONG);
    big[SPRO_AUDIT_FIELD_MAX] = '\0'; /* exactly the maximum */
    e.kind = e.actor = e.object = e.detail = big;
    CHECK_EQ(spro_audit_hash(h, key, prev, &e), 0);
    e = kat2, e.seq = 0;
    CHECK_EQ(spro_audit_hash(h, key, prev, &e), SPRO_ERANGE);
    e = kat2, e.time_ms = -1;
    CHECK_EQ(spro_audit_hash(h, key, prev, &e), SPRO_ERANGE);
    e = kat2, e.kind = "";
    CHECK_EQ(spro_audit_hash(h, key, prev, &e), SPRO_ERANGE);
    e = kat2, e.actor = NULL;
    CHECK_EQ(spro_audit_hash(h, key, prev, &e), SPRO_EMISSING);
    uint8_t zero[32] = {0};
    CHECK_BYTES(h, 32, zero, 32); /* zeroed on failure */

    CHECK_EQ(spro_audit_check("push", "server", "", ""), 0);
    CHECK_EQ(spro_audit_check("subject.erase", NULL, "beneficiary:x", "reason=request"), 0);
    CHECK_EQ(spro_audit_check("Push", "server", "", ""), SPRO_ERANGE);
    CHECK_EQ(spro_audit_check("push", "", "", ""), SPRO_ERANGE);
    CHECK_EQ(spro_audit_check("push", "server", "tab\there", ""), SPRO_ERANGE);
    CHECK_EQ(spro_audit_check("push", "server", "", "caf\xc3\xa9"), SPRO_ERANGE);
    CHECK_EQ(spro_audit_check("a.very.long.kind.of.thirty.three.b", "server", "", ""), SPRO_ERANGE);
    CHECK_EQ(spro_audit_check(NULL, "server", "", ""), SPRO_ERANGE);
}

/* ---- The chain on a data directory ---- */

/* A fresh data directory named name under tmp, opened. */
static struct spro_datadir *fresh(const char *name, char *path, size_t cap)
{
    char why[512] = "";
    struct spro_datadir *dd = NULL;
    snprintf(path, cap, "%s/%s", tmp, name);
    if (spro_datadir_init(path, why, sizeof why) != 0 ||
        spro_datadir_open(path, &dd, why, sizeof why) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", path, why);
        return NULL;
    }
    return dd;
}

/* Runs sql on path/data.db with SQLite directly, the append-only triggers
 * dropped first (as an attacker with write access would). */
static int tamper(const char *path, const char *sql)
{
    char file[400];
    snprintf(file, sizeof file, "%s/data.db", path);
    sqlite3 *db;
    int rc = sqlite3_open(file, &db) == SQLITE_OK &&
                     sqlite3_exec(db,
                                  "DROP TRIGGER IF EXISTS audit_no_update;"
                                  "DROP TRIGGER IF EXISTS audit_no_delete;"
                                  "DROP TRIGGER IF EXISTS audit_checkpoints_no_update;"
                                  "DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;",
                                  NULL, NULL, NULL) == SQLITE_OK &&
                     sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    if (rc != 0)
        fprintf(stderr, "tamper: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

/* Fills a fresh directory with 10 entries and a checkpoint at 6. */
static struct spro_datadir *ten(const char *name, char *path, size_t cap)
{
    struct spro_datadir *dd = fresh(name, path, cap);
    if (dd == NULL)
        return NULL;
    char detail[32];
    int64_t seq;
    for (int i = 1; i <= 10; i++) {
        snprintf(detail, sizeof detail, "n=%d", i);
        if (spro_audit_append(dd, "test.entry", NULL, "thing:1", detail) != 0 ||
            (i == 6 && (spro_audit_checkpoint(dd, 1700000000000, &seq) != 0 || seq != 6))) {
            spro_datadir_close(dd);
            return NULL;
        }
    }
    return dd;
}

static void test_append_verify(void)
{
    char path[400];
    struct spro_datadir *dd = fresh("append", path, sizeof path);
    CHECK(dd != NULL);
    struct spro_audit_report r;
    CHECK_EQ(spro_audit_verify(dd, &r), 0); /* empty */
    CHECK_EQ(r.entries, 0);
    int64_t seq = -1;
    CHECK_EQ(spro_audit_checkpoint(dd, 1700000000000, &seq), 0);
    CHECK_EQ(seq, 0); /* nothing to sign */
    CHECK_EQ(spro_audit_append(dd, "test.entry", NULL, "", ""), 0);
    CHECK_EQ(spro_audit_append(dd, "Bad", NULL, "", ""), SPRO_ERANGE);
    CHECK_EQ(spro_org_add(dd, "org1", "CIO", "cio", NULL, 0), 0);
    CHECK_EQ(spro_audit_checkpoint(dd, 1700000000000, &seq), 0);
    CHECK_EQ(seq, 2);
    CHECK_EQ(spro_audit_checkpoint(dd, 1700000000001, &seq), 0);
    CHECK_EQ(seq, 0); /* no new entry */
    spro_audit_set_actor(dd, "admin:uid=1000");
    CHECK_EQ(spro_user_add(dd, "u1", "org1", "counsellor", NULL, 0), 0);
    CHECK_EQ(spro_user_add(dd, "u1", "org1", "counsellor", NULL, 0), SPRO_EEXISTS);
    CHECK_EQ(spro_audit_verify(dd, &r), 0);
    CHECK_EQ(r.entries, 3); /* the refused user add wrote nothing */
    CHECK_EQ(r.checkpoints, 1);
    CHECK_EQ(r.last_checkpoint, 2);
    CHECK_EQ(r.last_seq, 3);
    spro_datadir_close(dd);
}

struct rows {
    char text[8][160];
    int n;
};

static int collect(const struct spro_audit_record *e, void *arg)
{
    struct rows *r = arg;
    if (r->n < 8)
        snprintf(r->text[r->n++], sizeof r->text[0], "%lld %s %s %s %s", (long long)e->seq, e->kind,
                 e->actor, e->object, e->detail);
    return 0;
}

static void test_entries_written(void)
{
    char path[400];
    struct spro_datadir *dd = fresh("written", path, sizeof path);
    CHECK(dd != NULL);
    spro_audit_set_actor(dd, "admin:uid=0");
    struct spro_ticket t;
    CHECK_EQ(spro_org_add(dd, "org1", "CIO", "cio", NULL, 0), 0);
    CHECK_EQ(spro_user_add(dd, "u1", "org1", "counsellor", NULL, 0), 0);
    CHECK_EQ(spro_ticket_issue(dd, "u1", 1700000000, 900, &t, NULL, 0), 0);
    struct rows r = {0};
    CHECK_EQ(spro_audit_each(dd, 0, 0, collect, &r), 0);
    CHECK_EQ(r.n, 3);
    CHECK_STR(r.text[0], "1 org.add admin:uid=0 org:org1 kind=cio");
    CHECK_STR(r.text[1], "2 user.add admin:uid=0 user:u1 org=org1 role=counsellor");
    CHECK(strncmp(r.text[2], "3 ticket.issue admin:uid=0 ticket:", 34) == 0);
    r.n = 0;
    CHECK_EQ(spro_audit_each(dd, 2, 0, collect, &r), 0); /* after 2 */
    CHECK_EQ(r.n, 1);
    spro_memzero(&t, sizeof t);
    spro_datadir_close(dd);
}

/* Each tampering of the log, the first bad seq verify names, and the
 * message it gives. */
static void test_tampering(void)
{
    /* cp: whether a new checkpoint is then refused.  It verifies only the
     * entries after the last checkpoint (6) and that the entry at 6 still
     * matches it: damage before 6 is for the full verification alone. */
    static const struct {
        const char *name, *sql;
        int64_t bad;
        const char *says;
        int cp;
    } cases[] = {
        {"edit", "UPDATE audit SET detail = 'n=99' WHERE seq = 4", 4, "does not chain", 0},
        {"edit_time", "UPDATE audit SET time = time + 1 WHERE seq = 9", 9, "does not chain", 1},
        {"delete", "DELETE FROM audit WHERE seq = 3", 3, "does not chain", 0},
        {"swap",
         "UPDATE audit SET seq = 1005 WHERE seq = 5; UPDATE audit SET seq = 5 WHERE seq = 7;"
         "UPDATE audit SET seq = 7 WHERE seq = 1005",
         5, "does not chain", 1},
        {"insert",
         "INSERT INTO audit SELECT 11, time, kind, actor, object, detail, hash FROM audit"
         " WHERE seq = 10",
         11, "does not chain", 1},
        {"renumber",
         "UPDATE audit SET seq = seq + 100 WHERE seq >= 8; UPDATE audit SET seq = seq - 99"
         " WHERE seq >= 100",
         8, "does not chain", 1},
        {"truncate", "DELETE FROM audit WHERE seq >= 5", 6, "tail truncated", 1},
        {"forged_checkpoint", "UPDATE audit_checkpoints SET time = time + 1", 6, "bad signature",
         1},
        {"moved_checkpoint", "UPDATE audit_checkpoints SET seq = 7", 7, "bad signature", 1},
        {"rewritten_hash", "UPDATE audit SET hash = zeroblob(32) WHERE seq = 2", 2,
         "does not chain", 0},
        /* Bytes hidden after a NUL: "n=4\0hidden" reads as "n=4" in C. */
        {"nul_in_detail",
         "UPDATE audit SET detail = CAST(X'6e3d340068696464656e' AS TEXT) WHERE seq = 4", 4,
         "does not chain", 0},
        {"nul_in_object_after_checkpoint",
         "UPDATE audit SET object = object || CAST(X'0078' AS TEXT) WHERE seq = 9", 9,
         "does not chain", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[400];
        struct spro_datadir *dd = ten(cases[i].name, path, sizeof path);
        CHECK(dd != NULL);
        struct spro_audit_report r;
        CHECK_EQ(spro_audit_verify(dd, &r), 0);
        CHECK_EQ(tamper(path, cases[i].sql), 0);
        int rc = spro_audit_verify(dd, &r);
        if (rc != SPRO_EINTEGRITY || r.bad_seq != cases[i].bad ||
            strstr(r.why, cases[i].says) == NULL)
            CHECK__FAIL("%s: rc %d bad %lld (want %lld) why '%s'", cases[i].name, rc,
                        (long long)r.bad_seq, (long long)cases[i].bad, r.why);
        int64_t seq = -1;
        rc = spro_audit_checkpoint(dd, 1700000001000, &seq);
        if (rc != (cases[i].cp ? SPRO_EINTEGRITY : 0))
            CHECK__FAIL("%s: checkpoint rc %d", cases[i].name, rc);
        /* Damage stays visible after a later checkpoint. */
        CHECK_EQ(spro_audit_verify(dd, &r), SPRO_EINTEGRITY);
        CHECK_EQ(r.bad_seq, cases[i].bad);
        spro_datadir_close(dd);
    }
}

/* The append-only triggers refuse updates and deletes. */
static void test_triggers(void)
{
    char path[400], file[400];
    struct spro_datadir *dd = ten("triggers", path, sizeof path);
    CHECK(dd != NULL);
    spro_datadir_close(dd);
    snprintf(file, sizeof file, "%s/data.db", path);
    sqlite3 *db;
    CHECK_EQ(sqlite3_open(file, &db), SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE audit SET detail = 'x' WHERE seq = 1", NULL, NULL, NULL) !=
          SQLITE_OK);
    CHECK(sqlite3_exec(db, "DELETE FROM audit WHERE seq = 10", NULL, NULL, NULL) != SQLITE_OK);
    CHECK(sqlite3_exec(db, "DELETE FROM audit_checkpoints", NULL, NULL, NULL) != SQLITE_OK);
    sqlite3_close(db);
}

/* The known-answer values are those of docs/CRYPTO.md. */
static void test_document(void)
{
    static const char self[] = "tests/unit/test_audit.c";
    const char *file = __FILE__;
    size_t n = strlen(file);
    CHECK(n >= sizeof self - 1 && strcmp(file + n - (sizeof self - 1), self) == 0);
    char path[4096];
    snprintf(path, sizeof path, "%.*sdocs/CRYPTO.md", (int)(n - (sizeof self - 1)), file);
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    size_t cap = 1 << 18, len;
    char *text = malloc(cap + 1), *flat = malloc(cap + 1);
    if (text == NULL || flat == NULL)
        abort();
    len = fread(text, 1, cap, fp);
    fclose(fp);
    size_t f = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\n' && text[i] != '\r' && text[i] != '\t')
            flat[f++] = text[i];
    flat[f] = '\0';
    int missing = 0;
    for (size_t i = 0; i < sizeof kat_hex / sizeof kat_hex[0]; i++)
        if (strstr(flat, kat_hex[i]) == NULL) {
            fprintf(stderr, "%s:%d: docs/CRYPTO.md lacks %s\n", __FILE__, __LINE__, kat_hex[i]);
            missing++;
        }
    free(text);
    free(flat);
    CHECK_EQ(missing, 0);
}

static const struct check_test tests[] = {
    {"kat", test_kat},
    {"binding", test_binding},
    {"limits", test_limits},
    {"append_verify", test_append_verify},
    {"entries_written", test_entries_written},
    {"tampering", test_tampering},
    {"triggers", test_triggers},
    {"document", test_document},
};

int main(int argc, char **argv)
{
    return spro_test_main_in_tmp("spro-audit", tmp, sizeof tmp, tests,
                                 sizeof tests / sizeof tests[0], argc, argv);
}
