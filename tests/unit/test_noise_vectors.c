/*
 * Known-answer test of the Noise implementation against the published
 * vectors of the 25519 / ChaChaPoly / BLAKE2b suite.
 *
 * Usage: test_noise_vectors VECTORS_DIR, where VECTORS_DIR holds
 * cacophony_25519_ChaChaPoly_BLAKE2b.json (read in place, never copied).
 * For every vector both sides are run with the vector's fixed keys; every
 * handshake and transport ciphertext must match byte for byte, decrypt back
 * to its payload, and both sides must reach the vector's handshake hash.
 * Prints "FAIL <protocol_name>" per failing vector and finally
 * "N passed, N failed".  Exits 0 only if all EXPECTED_VECTORS passed; 77
 * (skipped) if the vector file does not exist.
 */
#include "check.h"
#include "crypto/crypto.h"

#include <errno.h>
#include <stdlib.h>

#define VECTOR_FILE "cacophony_25519_ChaChaPoly_BLAKE2b.json"
#define EXPECTED_VECTORS 59
#define MAX_BYTES 1024 /* largest hex field of the file, decoded */
#define MAX_DEPTH 16

/* ---- a minimal JSON reader: objects, arrays, strings; other literals skipped */

enum jtype { J_STR, J_ARR, J_OBJ, J_LIT };

struct jval {
    enum jtype type;
    char *str;         /* J_STR: NUL-terminated, owned */
    size_t n;          /* J_ARR, J_OBJ: number of elements */
    char **keys;       /* J_OBJ: n keys, owned */
    struct jval *vals; /* J_ARR, J_OBJ: n values, owned */
};

static const char *jp; /* parse position */

static void skip_ws(void)
{
    while (*jp == ' ' || *jp == '\n' || *jp == '\r' || *jp == '\t')
        jp++;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return p;
}

/* Parses a string at jp (simple escapes only); returns 0 or -1. */
static int parse_string(char **out)
{
    if (*jp != '"')
        return -1;
    jp++;
    size_t cap = 16, n = 0;
    char *s = xrealloc(NULL, cap);
    while (*jp != '"') {
        char c = *jp++;
        if (c == '\0')
            goto bad;
        if (c == '\\') {
            c = *jp++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            default:
                goto bad; /* \u and others: not in this file */
            }
        }
        if (n + 1 >= cap)
            s = xrealloc(s, cap *= 2);
        s[n++] = c;
    }
    jp++;
    s[n] = '\0';
    *out = s;
    return 0;
bad:
    free(s);
    return -1;
}

static void jfree(struct jval *v)
{
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        if (v->keys != NULL)
            free(v->keys[i]);
        jfree(&v->vals[i]);
    }
    free(v->keys);
    free(v->vals);
    memset(v, 0, sizeof *v);
}

static int parse_value(struct jval *v, int depth)
{
    memset(v, 0, sizeof *v);
    skip_ws();
    if (depth > MAX_DEPTH)
        return -1;
    if (*jp == '"') {
        v->type = J_STR;
        return parse_string(&v->str);
    }
    if (*jp == '[' || *jp == '{') {
        int obj = *jp == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? J_OBJ : J_ARR;
        jp++;
        skip_ws();
        if (*jp == close) {
            jp++;
            return 0;
        }
        for (;;) {
            v->vals = xrealloc(v->vals, (v->n + 1) * sizeof *v->vals);
            if (obj) {
                v->keys = xrealloc(v->keys, (v->n + 1) * sizeof *v->keys);
                v->keys[v->n] = NULL;
            }
            memset(&v->vals[v->n], 0, sizeof v->vals[v->n]);
            v->n++;
            if (obj) {
                skip_ws();
                if (parse_string(&v->keys[v->n - 1]) != 0)
                    return -1;
                skip_ws();
                if (*jp++ != ':')
                    return -1;
            }
            if (parse_value(&v->vals[v->n - 1], depth + 1) != 0)
                return -1;
            skip_ws();
            if (*jp == ',') {
                jp++;
                continue;
            }
            if (*jp++ != close)
                return -1;
            return 0;
        }
    }
    /* Numbers, true, false, null: skipped. */
    v->type = J_LIT;
    const char *start = jp;
    while (*jp != '\0' && *jp != ',' && *jp != '}' && *jp != ']' && *jp != ' ' && *jp != '\n')
        jp++;
    return jp == start ? -1 : 0;
}

static const struct jval *jget(const struct jval *obj, const char *key)
{
    if (obj == NULL || obj->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->vals[i];
    return NULL;
}

static const char *jstr(const struct jval *obj, const char *key)
{
    const struct jval *v = jget(obj, key);
    return v != NULL && v->type == J_STR ? v->str : NULL;
}

/* ---- hex ---------------------------------------------------------------- */

/* Decodes hex into out (cap bytes); returns the length, or -1. */
static long unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t len = strlen(hex);
    if (len % 2 != 0 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = check_hexval(hex[2 * i]), lo = check_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

/* Decodes an optional 32-byte key field: *present is set.  0 or -1. */
static int key_field(const struct jval *v, const char *key, uint8_t out[32], int *present)
{
    const char *hex = jstr(v, key);
    *present = hex != NULL;
    return hex == NULL || unhex(hex, out, 32) == 32 ? 0 : -1;
}

/* ---- one vector --------------------------------------------------------- */

struct side {
    struct spro_noise_handshake *hs;
    struct spro_noise_cipher *send, *recv;
};

static const struct jval *cur; /* the vector under test */
static struct side ini, resp;  /* its two parties, freed by the caller */

static void free_sides(void)
{
    struct side *sides[] = {&ini, &resp};
    for (int i = 0; i < 2; i++) {
        spro_noise_handshake_destroy(sides[i]->hs);
        spro_noise_cipher_destroy(sides[i]->send);
        spro_noise_cipher_destroy(sides[i]->recv);
        memset(sides[i], 0, sizeof *sides[i]);
    }
}

/* Creates one party from the fields "<role>_*" of the vector. */
static int make_side(struct side *sd, const char *role, int initiator)
{
    char key[64];
    uint8_t prologue[MAX_BYTES], s[32], rs[32], e[32];
    uint8_t psks[SPRO_NOISE_MAX_PSKS * SPRO_NOISE_PSK_BYTES];
    int has_s = 0, has_rs = 0, has_e = 0;
    size_t npsk = 0;

    snprintf(key, sizeof key, "%s_prologue", role);
    const char *hex = jstr(cur, key);
    long plen = hex != NULL ? unhex(hex, prologue, sizeof prologue) : 0;
    int bad = plen < 0;
    snprintf(key, sizeof key, "%s_static", role);
    bad |= key_field(cur, key, s, &has_s) != 0;
    snprintf(key, sizeof key, "%s_remote_static", role);
    bad |= key_field(cur, key, rs, &has_rs) != 0;
    snprintf(key, sizeof key, "%s_ephemeral", role);
    bad |= key_field(cur, key, e, &has_e) != 0;
    snprintf(key, sizeof key, "%s_psks", role);
    const struct jval *pv = jget(cur, key);
    if (pv != NULL) {
        bad |= pv->type != J_ARR || pv->n > SPRO_NOISE_MAX_PSKS;
        for (size_t i = 0; !bad && i < pv->n; i++) {
            bad |= pv->vals[i].type != J_STR || unhex(pv->vals[i].str, psks + 32 * i, 32) != 32;
            npsk++;
        }
    }
    if (bad) {
        fprintf(stderr, "  %s: bad key fields\n", role);
        return -1;
    }

    int err = spro_noise_handshake_init(&sd->hs, jstr(cur, "protocol_name"), initiator, prologue,
                                        (size_t)plen, has_s ? s : NULL, has_rs ? rs : NULL,
                                        npsk ? psks : NULL, npsk);
    if (err == 0 && has_e)
        err = spro_noise_handshake_set_ephemeral(sd->hs, e);
    if (err != 0)
        fprintf(stderr, "  %s: init failed: error %d\n", role, err);
    return err;
}

/* One-way patterns: a base pattern of one letter (N, K, X). */
static int one_way(const char *name)
{
    const char *p = name + strlen("Noise_");
    return p[0] != '\0' && (p[1] == '_' || (p[1] >= 'a' && p[1] <= 'z'));
}

static void test_vector(void)
{
    const char *name = jstr(cur, "protocol_name");
    CHECK(name != NULL && strncmp(name, "Noise_", 6) == 0);
    CHECK_EQ(make_side(&ini, "init", 1), 0);
    CHECK_EQ(make_side(&resp, "resp", 0), 0);
    int oneway = one_way(name);

    uint8_t want_h[SPRO_NOISE_HASH_BYTES], h[SPRO_NOISE_HASH_BYTES];
    const char *hh = jstr(cur, "handshake_hash");
    CHECK(hh != NULL);
    CHECK_EQ(unhex(hh, want_h, sizeof want_h), SPRO_NOISE_HASH_BYTES);

    const struct jval *msgs = jget(cur, "messages");
    CHECK(msgs != NULL && msgs->type == J_ARR && msgs->n > 0);
    for (size_t i = 0; i < msgs->n; i++) {
        uint8_t payload[MAX_BYTES], want_ct[MAX_BYTES], ct[MAX_BYTES], pt[MAX_BYTES];
        const char *phex = jstr(&msgs->vals[i], "payload");
        const char *chex = jstr(&msgs->vals[i], "ciphertext");
        CHECK(phex != NULL && chex != NULL);
        long plen = unhex(phex, payload, sizeof payload);
        long clen = unhex(chex, want_ct, sizeof want_ct);
        CHECK(plen >= 0 && clen >= 0);

        struct side *tx = oneway || i % 2 == 0 ? &ini : &resp;
        struct side *rx = tx == &ini ? &resp : &ini;
        size_t ctlen = 0, ptlen = 0;
        if (!spro_noise_handshake_done(tx->hs)) {
            CHECK(!spro_noise_handshake_done(rx->hs));
            CHECK_EQ(spro_noise_write_message(tx->hs, payload, (size_t)plen, ct, sizeof ct, &ctlen),
                     0);
            CHECK_BYTES(ct, ctlen, want_ct, (size_t)clen);
            CHECK_EQ(spro_noise_read_message(rx->hs, ct, ctlen, pt, sizeof pt, &ptlen), 0);
            CHECK_BYTES(pt, ptlen, payload, (size_t)plen);
            CHECK_EQ(spro_noise_handshake_done(rx->hs), spro_noise_handshake_done(tx->hs));
            if (spro_noise_handshake_done(tx->hs)) {
                CHECK_EQ(spro_noise_handshake_hash(ini.hs, h), 0);
                CHECK_BYTES(h, sizeof h, want_h, sizeof want_h);
                CHECK_EQ(spro_noise_handshake_hash(resp.hs, h), 0);
                CHECK_BYTES(h, sizeof h, want_h, sizeof want_h);
                CHECK_EQ(spro_noise_split(ini.hs, &ini.send, &ini.recv), 0);
                CHECK_EQ(spro_noise_split(resp.hs, &resp.send, &resp.recv), 0);
                CHECK(ini.send != NULL && resp.recv != NULL);
                CHECK((ini.recv == NULL) == oneway && (resp.send == NULL) == oneway);
            }
        } else {
            CHECK(tx->send != NULL && rx->recv != NULL);
            CHECK_EQ(
                spro_noise_cipher_encrypt(tx->send, NULL, 0, payload, (size_t)plen, ct, sizeof ct),
                0);
            ctlen = (size_t)plen + SPRO_NOISE_TAG_BYTES;
            CHECK_BYTES(ct, ctlen, want_ct, (size_t)clen);
            CHECK_EQ(spro_noise_cipher_decrypt(rx->recv, NULL, 0, ct, ctlen, pt, sizeof pt), 0);
            CHECK_BYTES(pt, ctlen - SPRO_NOISE_TAG_BYTES, payload, (size_t)plen);
        }
    }
    CHECK(spro_noise_handshake_done(ini.hs) && spro_noise_handshake_done(resp.hs));
}

/* ---- main --------------------------------------------------------------- */

static char *read_file(FILE *f)
{
    size_t cap = 1 << 16, n = 0, got;
    char *buf = xrealloc(NULL, cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap)
            buf = xrealloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[1], VECTOR_FILE);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        fprintf(stderr, "noise vectors: cannot open %s: %s%s\n", path, strerror(e),
                e == ENOENT ? " (skipped)" : "");
        return e == ENOENT ? 77 : 1;
    }
    char *text = read_file(f);
    fclose(f);
    if (spro_crypto_init() != 0) {
        fprintf(stderr, "noise vectors: libsodium failed to initialise\n");
        free(text);
        return 1;
    }

    struct jval root;
    jp = text;
    int bad = parse_value(&root, 0);
    skip_ws();
    const struct jval *vectors = jget(&root, "vectors");
    if (bad || *jp != '\0' || vectors == NULL || vectors->type != J_ARR) {
        fprintf(stderr, "noise vectors: %s is not a vector file\n", path);
        jfree(&root);
        free(text);
        return 1;
    }

    int passed = 0, failed = 0;
    for (size_t i = 0; i < vectors->n; i++) {
        cur = &vectors->vals[i];
        check__failed = 0;
        test_vector();
        free_sides();
        if (check__failed) {
            const char *name = jstr(cur, "protocol_name");
            printf("FAIL %s\n", name != NULL ? name : "(no protocol_name)");
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    if (passed + failed != EXPECTED_VECTORS)
        fprintf(stderr, "noise vectors: expected %d vectors, found %d\n", EXPECTED_VECTORS,
                passed + failed);
    jfree(&root);
    free(text);
    return failed == 0 && passed == EXPECTED_VECTORS ? 0 : 1;
}
