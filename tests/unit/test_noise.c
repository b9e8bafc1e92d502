/*
 * Unit tests of the Noise HandshakeState and CipherState beyond the
 * known-answer vectors: failure paths (tampering, truncation, wrong keys,
 * bad names, small buffers, oversize messages, calls in the wrong phase),
 * poisoning after a failed read or decrypt, explicit nonces and the replay
 * window, rekeying, and a full IK handshake between fresh random keys.
 */
#include "check.h"
#include "crypto/crypto.h"

#include <stdlib.h>

#define SUITE "_25519_ChaChaPoly_BLAKE2b"
#define NN "Noise_NN" SUITE
#define XX "Noise_XX" SUITE
#define IK "Noise_IK" SUITE

struct keypair {
    uint8_t pk[SPRO_KEY_BYTES], sk[SPRO_KEY_BYTES];
};

static struct keypair new_keypair(void)
{
    struct keypair kp;
    spro_crypto_dh_keypair(kp.pk, kp.sk);
    return kp;
}

/* Runs a handshake between an initiator and a responder to completion, each
 * message carrying "hi".  Returns 0 or the first error (-1 for a payload
 * that does not round-trip). */
static int run_handshake(struct spro_noise_handshake *ini, struct spro_noise_handshake *resp)
{
    uint8_t msg[512], pl[512];
    size_t n, pn;
    struct spro_noise_handshake *tx = ini, *rx = resp, *t;
    while (!spro_noise_handshake_done(ini) || !spro_noise_handshake_done(resp)) {
        int err = spro_noise_write_message(tx, (const uint8_t *)"hi", 2, msg, sizeof msg, &n);
        if (err != 0)
            return err;
        err = spro_noise_read_message(rx, msg, n, pl, sizeof pl, &pn);
        if (err != 0)
            return err;
        if (pn != 2 || memcmp(pl, "hi", 2) != 0)
            return -1;
        t = tx, tx = rx, rx = t;
    }
    return 0;
}

/* The four transport ciphers of a finished NN handshake. */
struct pair {
    struct spro_noise_cipher *i_send, *i_recv, *r_send, *r_recv;
};

static int make_pair(struct pair *p)
{
    struct spro_noise_handshake *ini = NULL, *resp = NULL;
    memset(p, 0, sizeof *p);
    int err = spro_noise_handshake_init(&ini, NN, 1, NULL, 0, NULL, NULL, NULL, 0);
    if (err == 0)
        err = spro_noise_handshake_init(&resp, NN, 0, NULL, 0, NULL, NULL, NULL, 0);
    if (err == 0)
        err = run_handshake(ini, resp);
    if (err == 0)
        err = spro_noise_split(ini, &p->i_send, &p->i_recv);
    if (err == 0)
        err = spro_noise_split(resp, &p->r_send, &p->r_recv);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);
    return err;
}

static void free_pair(struct pair *p)
{
    spro_noise_cipher_destroy(p->i_send);
    spro_noise_cipher_destroy(p->i_recv);
    spro_noise_cipher_destroy(p->r_send);
    spro_noise_cipher_destroy(p->r_recv);
    memset(p, 0, sizeof *p);
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Every later call on a poisoned handshake fails. */
static int handshake_poisoned(struct spro_noise_handshake *hs)
{
    uint8_t buf[256], h[SPRO_NOISE_HASH_BYTES], k[SPRO_KEY_BYTES];
    size_t n;
    struct spro_noise_cipher *a, *b;
    return spro_noise_handshake_done(hs) == 0 &&
           spro_noise_write_message(hs, NULL, 0, buf, sizeof buf, &n) == SPRO_EINTEGRITY &&
           spro_noise_read_message(hs, buf, 100, buf, sizeof buf, &n) == SPRO_EINTEGRITY &&
           spro_noise_handshake_hash(hs, h) == SPRO_EINTEGRITY &&
           spro_noise_handshake_remote_static(hs, k) == SPRO_EINTEGRITY &&
           spro_noise_split(hs, &a, &b) == SPRO_EINTEGRITY && a == NULL && b == NULL;
}

/* ---- handshakes ---------------------------------------------------------- */

static void test_ik_random_keys(void)
{
    struct keypair ki = new_keypair(), kr = new_keypair();
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, IK, 1, (const uint8_t *)"p", 1, ki.sk, kr.pk, NULL, 0),
             0);
    CHECK_EQ(spro_noise_handshake_init(&resp, IK, 0, (const uint8_t *)"p", 1, kr.sk, NULL, NULL, 0),
             0);

    uint8_t k[SPRO_KEY_BYTES];
    CHECK_EQ(spro_noise_handshake_remote_static(resp, k), SPRO_ENOENT);
    CHECK_EQ(run_handshake(ini, resp), 0);
    CHECK(spro_noise_handshake_done(ini) && spro_noise_handshake_done(resp));
    CHECK_EQ(spro_noise_handshake_remote_static(resp, k), 0);
    CHECK_BYTES(k, sizeof k, ki.pk, sizeof ki.pk);
    CHECK_EQ(spro_noise_handshake_remote_static(ini, k), 0);
    CHECK_BYTES(k, sizeof k, kr.pk, sizeof kr.pk);

    uint8_t h1[SPRO_NOISE_HASH_BYTES], h2[SPRO_NOISE_HASH_BYTES];
    CHECK_EQ(spro_noise_handshake_hash(ini, h1), 0);
    CHECK_EQ(spro_noise_handshake_hash(resp, h2), 0);
    CHECK_BYTES(h1, sizeof h1, h2, sizeof h2);

    struct pair p;
    CHECK_EQ(spro_noise_split(ini, &p.i_send, &p.i_recv), 0);
    CHECK_EQ(spro_noise_split(resp, &p.r_send, &p.r_recv), 0);
    CHECK(p.i_send && p.i_recv && p.r_send && p.r_recv);
    /* The hash stays readable after split. */
    CHECK_EQ(spro_noise_handshake_hash(ini, h1), 0);
    CHECK_BYTES(h1, sizeof h1, h2, sizeof h2);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);

    uint8_t ct[64], pt[64];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, (const uint8_t *)"ad", 2,
                                           (const uint8_t *)"ping", 4, ct, sizeof ct),
                 0);
        CHECK_EQ(
            spro_noise_cipher_decrypt(p.r_recv, (const uint8_t *)"ad", 2, ct, 20, pt, sizeof pt),
            0);
        CHECK_BYTES(pt, 4, "ping", 4);
        CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.r_send, 100 + (uint64_t)i, NULL, 0,
                                                      (const uint8_t *)"pong", 4, ct, sizeof ct),
                 0);
        CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.i_recv, 100 + (uint64_t)i, NULL, 0, ct, 20,
                                                      pt, sizeof pt),
                 0);
        CHECK_BYTES(pt, 4, "pong", 4);
    }
    /* Directions use different keys. */
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"x", 1, ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.i_recv, NULL, 0, ct, 17, pt, sizeof pt), SPRO_EINTEGRITY);
    free_pair(&p);
}

static void test_empty_payloads(void)
{
    /* XX with no payloads at all: NULL in, NULL out, keyed messages included. */
    struct keypair ki = new_keypair(), kr = new_keypair();
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, XX, 1, NULL, 0, ki.sk, NULL, NULL, 0), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, XX, 0, NULL, 0, kr.sk, NULL, NULL, 0), 0);
    struct spro_noise_handshake *tx = ini, *rx = resp, *t;
    size_t want[] = {32, 32 + 48 + 16, 48 + 16};
    for (int i = 0; i < 3; i++) {
        uint8_t m[128];
        size_t n, pn = 99;
        CHECK_EQ(spro_noise_write_message(tx, NULL, 0, m, sizeof m, &n), 0);
        CHECK_EQ(n, want[i]);
        CHECK_EQ(spro_noise_read_message(rx, m, n, NULL, 0, &pn), 0);
        CHECK_EQ(pn, 0);
        t = tx, tx = rx, rx = t;
    }
    CHECK(spro_noise_handshake_done(ini) && spro_noise_handshake_done(resp));
    struct pair p;
    CHECK_EQ(spro_noise_split(ini, &p.i_send, &p.i_recv), 0);
    CHECK_EQ(spro_noise_split(resp, &p.r_send, &p.r_recv), 0);
    uint8_t ct[16];
    CHECK_EQ(spro_noise_cipher_encrypt(p.r_send, NULL, 0, NULL, 0, ct, sizeof ct), 0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.i_recv, NULL, 0, ct, sizeof ct, NULL, 0), 0);
    free_pair(&p);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);
}

static void test_tampered_message(void)
{
    struct keypair ki = new_keypair(), kr = new_keypair();
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, XX, 1, NULL, 0, ki.sk, NULL, NULL, 0), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, XX, 0, NULL, 0, kr.sk, NULL, NULL, 0), 0);

    uint8_t m[256], pl[256];
    size_t n, pn;
    CHECK_EQ(spro_noise_write_message(ini, NULL, 0, m, sizeof m, &n), 0);
    CHECK_EQ(spro_noise_read_message(resp, m, n, pl, sizeof pl, &pn), 0);
    CHECK_EQ(spro_noise_write_message(resp, (const uint8_t *)"secret", 6, m, sizeof m, &n), 0);
    CHECK_EQ(n, 32 + 48 + 6 + 16);

    uint8_t bad[256];
    memcpy(bad, m, n);
    bad[40] ^= 1; /* inside the encrypted static key */
    memset(pl, 0xaa, sizeof pl);
    CHECK_EQ(spro_noise_read_message(ini, bad, n, pl, sizeof pl, &pn), SPRO_EINTEGRITY);
    CHECK_EQ(pn, 0);
    CHECK(all_zero(pl, sizeof pl));
    CHECK(handshake_poisoned(ini));
    /* Even the genuine message is refused now. */
    CHECK_EQ(spro_noise_read_message(ini, m, n, pl, sizeof pl, &pn), SPRO_EINTEGRITY);
    spro_noise_handshake_destroy(ini);

    /* A flipped byte anywhere fails: ephemeral, static, payload, tag. */
    size_t spots[] = {0, 35, 32 + 48 + 2, n - 1};
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        struct spro_noise_handshake *ini2, *resp2;
        CHECK_EQ(spro_noise_handshake_init(&ini2, XX, 1, NULL, 0, ki.sk, NULL, NULL, 0), 0);
        CHECK_EQ(spro_noise_handshake_init(&resp2, XX, 0, NULL, 0, kr.sk, NULL, NULL, 0), 0);
        CHECK_EQ(spro_noise_write_message(ini2, NULL, 0, m, sizeof m, &n), 0);
        CHECK_EQ(spro_noise_read_message(resp2, m, n, pl, sizeof pl, &pn), 0);
        CHECK_EQ(spro_noise_write_message(resp2, (const uint8_t *)"secret", 6, m, sizeof m, &n), 0);
        m[spots[i]] ^= 0x80;
        CHECK_EQ(spro_noise_read_message(ini2, m, n, pl, sizeof pl, &pn), SPRO_EINTEGRITY);
        CHECK(handshake_poisoned(ini2));
        spro_noise_handshake_destroy(ini2);
        spro_noise_handshake_destroy(resp2);
    }
    spro_noise_handshake_destroy(resp);
}

static void test_truncated_message(void)
{
    struct keypair ki = new_keypair(), kr = new_keypair();
    size_t cut[] = {0, 31, 40, 95, 96 + 5 - 1}; /* last: only the tag is short */
    int want[] = {SPRO_ETRUNCATED, SPRO_ETRUNCATED, SPRO_ETRUNCATED, SPRO_ETRUNCATED,
                  SPRO_EINTEGRITY};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        struct spro_noise_handshake *ini, *resp;
        uint8_t m[256], pl[256];
        size_t n, pn;
        CHECK_EQ(spro_noise_handshake_init(&ini, XX, 1, NULL, 0, ki.sk, NULL, NULL, 0), 0);
        CHECK_EQ(spro_noise_handshake_init(&resp, XX, 0, NULL, 0, kr.sk, NULL, NULL, 0), 0);
        CHECK_EQ(spro_noise_write_message(ini, NULL, 0, m, sizeof m, &n), 0);
        CHECK_EQ(spro_noise_read_message(resp, m, n, pl, sizeof pl, &pn), 0);
        CHECK_EQ(spro_noise_write_message(resp, (const uint8_t *)"hello", 5, m, sizeof m, &n), 0);
        CHECK_EQ(n, 96 + 5);
        CHECK_EQ(spro_noise_read_message(ini, m, cut[i], pl, sizeof pl, &pn), want[i]);
        CHECK(handshake_poisoned(ini));
        spro_noise_handshake_destroy(ini);
        spro_noise_handshake_destroy(resp);
    }
}

static void test_ik_wrong_remote_static(void)
{
    struct keypair ki = new_keypair(), kr = new_keypair(), other = new_keypair();
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, IK, 1, NULL, 0, ki.sk, other.pk, NULL, 0), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, IK, 0, NULL, 0, kr.sk, NULL, NULL, 0), 0);
    CHECK_EQ(run_handshake(ini, resp), SPRO_EINTEGRITY);
    CHECK(handshake_poisoned(resp));
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);
}

static void test_mismatched_prologue_and_psk(void)
{
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, NN, 1, (const uint8_t *)"v1", 2, NULL, NULL, NULL, 0),
             0);
    CHECK_EQ(spro_noise_handshake_init(&resp, NN, 0, (const uint8_t *)"v2", 2, NULL, NULL, NULL, 0),
             0);
    CHECK_EQ(run_handshake(ini, resp), SPRO_EINTEGRITY); /* the initiator reads message 2 */
    CHECK(handshake_poisoned(ini));
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);

    uint8_t psk1[32], psk2[32];
    spro_crypto_random(psk1, sizeof psk1);
    memcpy(psk2, psk1, sizeof psk2);
    psk2[31] ^= 1;
    const char *name = "Noise_NNpsk0" SUITE;
    CHECK_EQ(spro_noise_handshake_init(&ini, name, 1, NULL, 0, NULL, NULL, psk1, 1), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, name, 0, NULL, 0, NULL, NULL, psk2, 1), 0);
    CHECK_EQ(run_handshake(ini, resp), SPRO_EINTEGRITY);
    CHECK(handshake_poisoned(resp));
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);
}

static void test_two_psks(void)
{
    struct keypair ki = new_keypair(), kr = new_keypair();
    uint8_t psks[64];
    spro_crypto_random(psks, sizeof psks);
    const char *name = "Noise_XXpsk0+psk3" SUITE;
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, name, 1, NULL, 0, ki.sk, NULL, psks, 2), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, name, 0, NULL, 0, kr.sk, NULL, psks, 2), 0);
    CHECK_EQ(run_handshake(ini, resp), 0);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);

    /* The same psks in the other order do not agree. */
    uint8_t swapped[64];
    memcpy(swapped, psks + 32, 32);
    memcpy(swapped + 32, psks, 32);
    CHECK_EQ(spro_noise_handshake_init(&ini, name, 1, NULL, 0, ki.sk, NULL, psks, 2), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, name, 0, NULL, 0, kr.sk, NULL, swapped, 2), 0);
    CHECK_EQ(run_handshake(ini, resp), SPRO_EINTEGRITY);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);
}

static void test_one_way_split(void)
{
    struct keypair kr = new_keypair();
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, "Noise_N" SUITE, 1, NULL, 0, NULL, kr.pk, NULL, 0), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, "Noise_N" SUITE, 0, NULL, 0, kr.sk, NULL, NULL, 0),
             0);
    CHECK_EQ(run_handshake(ini, resp), 0);
    struct pair p;
    CHECK_EQ(spro_noise_split(ini, &p.i_send, &p.i_recv), 0);
    CHECK_EQ(spro_noise_split(resp, &p.r_send, &p.r_recv), 0);
    CHECK(p.i_send != NULL && p.i_recv == NULL && p.r_send == NULL && p.r_recv != NULL);
    uint8_t ct[32], pt[32];
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"abc", 3, ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 19, pt, sizeof pt), 0);
    CHECK_BYTES(pt, 3, "abc", 3);
    free_pair(&p);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);
}

static void test_bad_protocol_names(void)
{
    struct keypair k = new_keypair();
    char longname[320];
    memset(longname, 'A', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    memcpy(longname, "Noise_", 6);
    const char *names[] = {
        "Noise_XX_25519_AESGCM_BLAKE2b",
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_ChaChaPoly_SHA256",
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise_XX_25519_ChaChaPoly_BLAKE2b_",
        "Noise_ZZ" SUITE,
        "Noise_XXX" SUITE,
        "Noise_xx" SUITE,
        "Noise_XXfallback" SUITE,
        "Noise_XXpsk4" SUITE,
        "Noise_XXpsk3+psk3" SUITE,
        "Noise_XXpsk" SUITE,
        "Noise_XXpsk3psk0" SUITE,
        "Noise_XXpsk3+" SUITE,
        "Noise_XXpsk10" SUITE,
        "Noise_" SUITE,
        "Noise__25519_ChaChaPoly_BLAKE2b",
        "noise_XX" SUITE,
        "NoiseXX" SUITE,
        "garbage",
        "",
        longname,
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct spro_noise_handshake *hs = (void *)&k; /* must be reset to NULL */
        uint8_t psk[32] = {0};
        int err = spro_noise_handshake_init(&hs, names[i], 1, NULL, 0, k.sk, NULL, psk, 1);
        if (err != SPRO_ECONFIG || hs != NULL)
            CHECK__FAIL("name \"%.40s\" gave %d", names[i], err);
        err = spro_noise_handshake_init(&hs, names[i], 1, NULL, 0, k.sk, NULL, NULL, 0);
        if (err != SPRO_ECONFIG || hs != NULL)
            CHECK__FAIL("name \"%.40s\" gave %d", names[i], err);
    }
    struct spro_noise_handshake *hs;
    CHECK_EQ(spro_noise_handshake_init(&hs, NULL, 1, NULL, 0, NULL, NULL, NULL, 0), SPRO_ECONFIG);
}

static void test_keys_must_fit_pattern(void)
{
    struct keypair k = new_keypair();
    uint8_t psk[32] = {1};
    struct spro_noise_handshake *hs;
    /* Missing static / remote static / psk. */
    CHECK_EQ(spro_noise_handshake_init(&hs, XX, 1, NULL, 0, NULL, NULL, NULL, 0), SPRO_ECONFIG);
    CHECK_EQ(spro_noise_handshake_init(&hs, IK, 1, NULL, 0, k.sk, NULL, NULL, 0), SPRO_ECONFIG);
    CHECK_EQ(spro_noise_handshake_init(&hs, "Noise_XXpsk3" SUITE, 1, NULL, 0, k.sk, NULL, NULL, 0),
             SPRO_ECONFIG);
    CHECK_EQ(spro_noise_handshake_init(&hs, "Noise_XXpsk3" SUITE, 1, NULL, 0, k.sk, NULL, NULL, 1),
             SPRO_ECONFIG);
    /* Superfluous ones. */
    CHECK_EQ(spro_noise_handshake_init(&hs, NN, 1, NULL, 0, k.sk, NULL, NULL, 0), SPRO_ECONFIG);
    CHECK_EQ(spro_noise_handshake_init(&hs, NN, 1, NULL, 0, NULL, k.pk, NULL, 0), SPRO_ECONFIG);
    CHECK_EQ(spro_noise_handshake_init(&hs, NN, 1, NULL, 0, NULL, NULL, psk, 1), SPRO_ECONFIG);
    CHECK_EQ(spro_noise_handshake_init(&hs, XX, 1, NULL, 0, k.sk, k.pk, NULL, 0), SPRO_ECONFIG);
    /* IK responder: needs s, gets rs in the handshake. */
    CHECK_EQ(spro_noise_handshake_init(&hs, IK, 0, NULL, 0, k.sk, k.pk, NULL, 0), SPRO_ECONFIG);
    CHECK_EQ(spro_noise_handshake_init(&hs, IK, 0, NULL, 0, k.sk, NULL, NULL, 0), 0);
    spro_noise_handshake_destroy(hs);
    /* Prologue pointer without bytes is fine; bytes without pointer are not. */
    CHECK_EQ(spro_noise_handshake_init(&hs, NN, 1, NULL, 5, NULL, NULL, NULL, 0), SPRO_ECONFIG);
}

static void test_wrong_phase(void)
{
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, NN, 1, NULL, 0, NULL, NULL, NULL, 0), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, NN, 0, NULL, 0, NULL, NULL, NULL, 0), 0);
    uint8_t m[128] = {0}, pl[128], h[SPRO_NOISE_HASH_BYTES];
    size_t n, pn;
    struct spro_noise_cipher *a, *b;

    CHECK_EQ(spro_noise_read_message(ini, m, 48, pl, sizeof pl, &pn), SPRO_EBADMSGTYPE);
    CHECK_EQ(spro_noise_write_message(resp, NULL, 0, m, sizeof m, &n), SPRO_EBADMSGTYPE);
    CHECK_EQ(spro_noise_handshake_hash(ini, h), SPRO_EBADMSGTYPE);
    CHECK(all_zero(h, sizeof h));
    CHECK_EQ(spro_noise_split(ini, &a, &b), SPRO_EBADMSGTYPE);
    CHECK(a == NULL && b == NULL);
    /* None of that poisoned anything. */
    CHECK_EQ(run_handshake(ini, resp), 0);

    uint8_t e[SPRO_KEY_BYTES] = {9};
    CHECK_EQ(spro_noise_handshake_set_ephemeral(ini, e), SPRO_EBADMSGTYPE);
    CHECK_EQ(spro_noise_write_message(ini, NULL, 0, m, sizeof m, &n), SPRO_EBADMSGTYPE);
    CHECK_EQ(spro_noise_read_message(ini, m, 48, pl, sizeof pl, &pn), SPRO_EBADMSGTYPE);
    CHECK_EQ(spro_noise_split(ini, &a, &b), 0);
    spro_noise_cipher_destroy(a);
    spro_noise_cipher_destroy(b);
    CHECK_EQ(spro_noise_split(ini, &a, &b), SPRO_EBADMSGTYPE);
    CHECK(a == NULL && b == NULL);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);
}

static void test_low_order_keys(void)
{
    /* NN: the responder gets an all-zero ephemeral; its "ee" must fail. */
    struct spro_noise_handshake *resp, *ini;
    uint8_t m[128], pl[128];
    size_t n, pn;
    CHECK_EQ(spro_noise_handshake_init(&resp, NN, 0, NULL, 0, NULL, NULL, NULL, 0), 0);
    memset(m, 0, 32);
    CHECK_EQ(spro_noise_read_message(resp, m, 32, pl, sizeof pl, &pn), 0);
    CHECK_EQ(spro_noise_write_message(resp, NULL, 0, m, sizeof m, &n), SPRO_EINTEGRITY);
    CHECK_EQ(n, 0);
    CHECK(handshake_poisoned(resp));
    spro_noise_handshake_destroy(resp);

    /* NK: an all-zero remote static fails at the initiator's "es". */
    uint8_t zero[SPRO_KEY_BYTES] = {0};
    CHECK_EQ(spro_noise_handshake_init(&ini, "Noise_NK" SUITE, 1, NULL, 0, NULL, zero, NULL, 0), 0);
    CHECK_EQ(spro_noise_write_message(ini, NULL, 0, m, sizeof m, &n), SPRO_EINTEGRITY);
    CHECK(handshake_poisoned(ini));
    spro_noise_handshake_destroy(ini);
}

static void test_capacity(void)
{
    struct spro_noise_handshake *ini, *resp;
    CHECK_EQ(spro_noise_handshake_init(&ini, NN, 1, NULL, 0, NULL, NULL, NULL, 0), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, NN, 0, NULL, 0, NULL, NULL, NULL, 0), 0);
    uint8_t m[128], pl[128];
    size_t n = 99, pn = 99;

    /* Writing: refused, nothing changed, then fine. */
    CHECK_EQ(spro_noise_write_message(ini, (const uint8_t *)"abcd", 4, m, 35, &n), SPRO_ETOOLONG);
    CHECK_EQ(n, 0);
    CHECK_EQ(spro_noise_write_message(ini, (const uint8_t *)"abcd", 4, m, 36, &n), 0);
    CHECK_EQ(n, 36);
    CHECK_EQ(spro_noise_read_message(resp, m, n, pl, 4, &pn), 0);
    CHECK_EQ(spro_noise_write_message(resp, (const uint8_t *)"abcd", 4, m, 32 + 4 + 15, &n),
             SPRO_ETOOLONG);
    CHECK_EQ(spro_noise_write_message(resp, (const uint8_t *)"abcd", 4, m, sizeof m, &n), 0);
    CHECK_EQ(n, 32 + 4 + 16);
    /* Reading: a too-small payload buffer fails and poisons. */
    CHECK_EQ(spro_noise_read_message(ini, m, n, pl, 3, &pn), SPRO_ETOOLONG);
    CHECK_EQ(pn, 0);
    CHECK(handshake_poisoned(ini));
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);

    /* Ciphers. */
    struct pair p;
    uint8_t ct[64], pt[64];
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"12345", 5, ct, 20),
             SPRO_ETOOLONG);
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"12345", 5, ct, 21), 0);
    /* The failed call did not use up nonce 0: the implicit receiver agrees. */
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 21, pt, 5), 0);
    CHECK_BYTES(pt, 5, "12345", 5);
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"12345", 5, ct, 21), 0);
    memset(pt, 0x55, sizeof pt);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 21, pt, 4), SPRO_ETOOLONG);
    CHECK(all_zero(pt, 4) && pt[4] == 0x55);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 21, pt, 5), SPRO_EINTEGRITY);
    free_pair(&p);
}

static void test_max_message_size(void)
{
    size_t big = SPRO_NOISE_MAX_MESSAGE + 64;
    uint8_t *payload = calloc(1, big), *m = calloc(1, big), *pl = calloc(1, big);
    CHECK(payload && m && pl);
    struct spro_noise_handshake *ini, *resp;
    size_t n, pn;

    CHECK_EQ(spro_noise_handshake_init(&ini, NN, 1, NULL, 0, NULL, NULL, NULL, 0), 0);
    CHECK_EQ(spro_noise_handshake_init(&resp, NN, 0, NULL, 0, NULL, NULL, NULL, 0), 0);
    /* NN message 1 is e (32 bytes) + the clear payload. */
    CHECK_EQ(spro_noise_write_message(ini, payload, SPRO_NOISE_MAX_MESSAGE - 31, m, big, &n),
             SPRO_ETOOLONG);
    CHECK_EQ(spro_noise_write_message(ini, payload, SIZE_MAX, m, big, &n), SPRO_ETOOLONG);
    CHECK_EQ(spro_noise_write_message(ini, payload, SPRO_NOISE_MAX_MESSAGE - 32, m, big, &n), 0);
    CHECK_EQ(n, SPRO_NOISE_MAX_MESSAGE);
    CHECK_EQ(spro_noise_read_message(resp, m, n, pl, big, &pn), 0);
    CHECK_EQ(pn, SPRO_NOISE_MAX_MESSAGE - 32);
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(resp);

    /* Reading an oversize message fails and poisons. */
    CHECK_EQ(spro_noise_handshake_init(&resp, NN, 0, NULL, 0, NULL, NULL, NULL, 0), 0);
    CHECK_EQ(spro_noise_read_message(resp, m, SPRO_NOISE_MAX_MESSAGE + 1, pl, big, &pn),
             SPRO_ETOOLONG);
    CHECK(handshake_poisoned(resp));
    spro_noise_handshake_destroy(resp);

    struct pair p;
    CHECK_EQ(make_pair(&p), 0);
    size_t maxpt = SPRO_NOISE_MAX_MESSAGE - SPRO_NOISE_TAG_BYTES;
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, payload, maxpt + 1, m, big),
             SPRO_ETOOLONG);
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, payload, maxpt, m, big), 0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, m, maxpt + 16, pl, big), 0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, m, maxpt + 17, pl, big), SPRO_ETOOLONG);
    free_pair(&p);
    free(payload);
    free(m);
    free(pl);
}

/* ---- transport ciphers --------------------------------------------------- */

static void test_explicit_nonce(void)
{
    struct pair p;
    uint8_t ct[64], ct2[64], pt[64];
    CHECK_EQ(make_pair(&p), 0);

    /* Round trip, then the same nonce again is a replay. */
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 5, (const uint8_t *)"h", 1,
                                                  (const uint8_t *)"data", 4, ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 5, (const uint8_t *)"h", 1, ct, 20, pt,
                                                  sizeof pt),
             0);
    CHECK_BYTES(pt, 4, "data", 4);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 5, (const uint8_t *)"h", 1, ct, 20, pt,
                                                  sizeof pt),
             SPRO_EINTEGRITY);
    /* Poisoned: a fresh valid message fails too. */
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 6, NULL, 0, (const uint8_t *)"x", 1, ct,
                                                  sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 6, NULL, 0, ct, 17, pt, sizeof pt),
             SPRO_EINTEGRITY);
    CHECK_EQ(spro_noise_cipher_rekey(p.r_recv), SPRO_EINTEGRITY);
    /* The sender refuses to reuse or go back. */
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 6, NULL, 0, (const uint8_t *)"x", 1, ct,
                                                  sizeof ct),
             SPRO_ERANGE);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 2, NULL, 0, (const uint8_t *)"x", 1, ct,
                                                  sizeof ct),
             SPRO_ERANGE);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, UINT64_MAX, NULL, 0,
                                                  (const uint8_t *)"x", 1, ct, sizeof ct),
             SPRO_ERANGE);
    free_pair(&p);

    /* A different nonce (or ad) fails. */
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.r_send, 7, NULL, 0, (const uint8_t *)"data", 4,
                                                  ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.i_recv, 8, NULL, 0, ct, 20, pt, sizeof pt),
             SPRO_EINTEGRITY);
    free_pair(&p);
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.r_send, 7, (const uint8_t *)"a", 1,
                                                  (const uint8_t *)"data", 4, ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.i_recv, 7, (const uint8_t *)"b", 1, ct, 20, pt,
                                                  sizeof pt),
             SPRO_EINTEGRITY);
    free_pair(&p);

    /* 2^64-1 is refused on receipt, before any decryption. */
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(
        spro_noise_cipher_decrypt_with_nonce(p.i_recv, UINT64_MAX, NULL, 0, ct, 20, pt, sizeof pt),
        SPRO_EINTEGRITY);
    free_pair(&p);

    /* The last usable nonce works; then the sender is exhausted. */
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, UINT64_MAX - 1, NULL, 0,
                                                  (const uint8_t *)"end", 3, ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, UINT64_MAX - 1, NULL, 0, ct, 19, pt,
                                                  sizeof pt),
             0);
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"x", 1, ct, sizeof ct),
             SPRO_ERANGE);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 17, pt, sizeof pt), SPRO_EINTEGRITY);
    free_pair(&p);

    /* Reordering inside the window is accepted once; older is refused. */
    CHECK_EQ(make_pair(&p), 0);
    uint8_t cts[3][32];
    for (uint64_t i = 0; i < 3; i++)
        CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 10 + i, NULL, 0,
                                                      (const uint8_t *)"m", 1, cts[i], 32),
                 0);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 100, NULL, 0, (const uint8_t *)"far", 3,
                                                  ct2, sizeof ct2),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 12, NULL, 0, cts[2], 17, pt, 1), 0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 10, NULL, 0, cts[0], 17, pt, 1), 0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 11, NULL, 0, cts[1], 17, pt, 1), 0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 100, NULL, 0, ct2, 19, pt, 3), 0);
    /* Implicit decryption continues after the highest nonce. */
    CHECK_EQ(
        spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"next", 4, ct, sizeof ct), 0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 20, pt, sizeof pt), 0);
    CHECK_BYTES(pt, 4, "next", 4);
    /* 12 is now 89 behind the highest accepted nonce (101): outside the window. */
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 12, NULL, 0, cts[2], 17, pt, 1),
             SPRO_EINTEGRITY);
    free_pair(&p);

    /* A nonce inside the window that was never used is accepted late. */
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 3, NULL, 0, (const uint8_t *)"a", 1,
                                                  cts[0], 32),
             0);
    CHECK_EQ(spro_noise_cipher_encrypt_with_nonce(p.i_send, 66, NULL, 0, (const uint8_t *)"b", 1,
                                                  cts[1], 32),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 66, NULL, 0, cts[1], 17, pt, 1), 0);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 3, NULL, 0, cts[0], 17, pt, 1), 0);
    free_pair(&p);
}

/* Seals "m" under nonce n with i_send into ct (17 bytes). */
static void seal_one(struct pair *p, uint64_t n, uint8_t ct[17])
{
    if (spro_noise_cipher_encrypt_with_nonce(p->i_send, n, NULL, 0, (const uint8_t *)"m", 1, ct,
                                             17) != 0)
        abort();
}

/* Reserving nonces (checked and recorded like decryptions) and decrypting
 * them detached, as the server does for chunked messages on a worker. */
static void test_reserve_and_detached(void)
{
    struct pair p;
    uint8_t key[SPRO_NOISE_KEY_BYTES], ct[8][17], pt[8];

    /* Reserved, then decrypted detached: works for every reserved nonce. */
    CHECK_EQ(make_pair(&p), 0);
    for (uint64_t i = 0; i < 3; i++)
        seal_one(&p, 5 + i, ct[i]);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 5, 3, key), 0);
    for (uint64_t i = 0; i < 3; i++) {
        CHECK_EQ(spro_noise_decrypt_detached(key, 5 + i, NULL, 0, ct[i], 17, pt, sizeof pt), 0);
        CHECK_EQ(pt[0], 'm');
    }
    /* The wrong nonce, a flipped byte, a short or long buffer fail, and
     * wipe the output. */
    memset(pt, 0x77, sizeof pt);
    CHECK_EQ(spro_noise_decrypt_detached(key, 6, NULL, 0, ct[0], 17, pt, sizeof pt),
             SPRO_EINTEGRITY);
    CHECK(all_zero(pt, sizeof pt));
    ct[0][2] ^= 1;
    CHECK_EQ(spro_noise_decrypt_detached(key, 5, NULL, 0, ct[0], 17, pt, sizeof pt),
             SPRO_EINTEGRITY);
    ct[0][2] ^= 1;
    CHECK_EQ(spro_noise_decrypt_detached(key, 5, NULL, 0, ct[0], 15, pt, sizeof pt),
             SPRO_ETRUNCATED);
    CHECK_EQ(spro_noise_decrypt_detached(key, 5, NULL, 0, ct[0], 17, pt, 0), SPRO_ETOOLONG);
    CHECK_EQ(spro_noise_decrypt_detached(key, UINT64_MAX, NULL, 0, ct[0], 17, pt, sizeof pt),
             SPRO_EINTEGRITY);
    /* The cipher recorded them: they are replays now, one by one or as a
     * range overlapping them, and a replay poisons. */
    uint8_t key2[SPRO_NOISE_KEY_BYTES];
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 6, NULL, 0, ct[1], 17, pt, sizeof pt),
             SPRO_EINTEGRITY);
    free_pair(&p);
    CHECK_EQ(make_pair(&p), 0);
    for (uint64_t i = 0; i < 4; i++)
        seal_one(&p, 5 + i, ct[i]);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 5, 2, key), 0);
    memset(key2, 0x55, sizeof key2);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 6, 2, key2), SPRO_EINTEGRITY);
    CHECK(all_zero(key2, sizeof key2));
    /* ... poisoned: nothing reserves or decrypts any more, not even 7. */
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 7, 1, key2), SPRO_EINTEGRITY);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 7, NULL, 0, ct[2], 17, pt, sizeof pt),
             SPRO_EINTEGRITY);
    free_pair(&p);

    /* A range whose first nonce is fresh but a later one is not is refused
     * as a whole: 10..12, then 9..11. */
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 10, 3, key), 0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 9, 3, key), SPRO_EINTEGRITY);
    free_pair(&p);

    /* Window edges.  After 100 is accepted, 37 (63 below) is still in the
     * window, 36 is not; a range may reach back into the window and past
     * the highest nonce at once, in increasing order. */
    CHECK_EQ(make_pair(&p), 0);
    seal_one(&p, 100, ct[0]);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 100, NULL, 0, ct[0], 17, pt, sizeof pt),
             0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 37, 1, key), 0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 98, 5, key), SPRO_EINTEGRITY); /* 100 again */
    free_pair(&p);
    CHECK_EQ(make_pair(&p), 0);
    seal_one(&p, 100, ct[0]);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 100, NULL, 0, ct[0], 17, pt, sizeof pt),
             0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 36, 1, key), SPRO_EINTEGRITY);
    free_pair(&p);
    CHECK_EQ(make_pair(&p), 0);
    seal_one(&p, 100, ct[0]);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 100, NULL, 0, ct[0], 17, pt, sizeof pt),
             0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 95, 5, key), 0);   /* 95..99, below */
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 101, 65, key), 0); /* 101..165: more than 64 */
    /* 165 is the highest now: 102 is inside the window but taken, 101..165
     * all are, 166 onwards is free. */
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 166, 65, key), 0);
    seal_one(&p, 231, ct[1]);
    CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 231, NULL, 0, ct[1], 17, pt, sizeof pt),
             0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 230, 1, key), SPRO_EINTEGRITY);
    free_pair(&p);

    /* The last nonces: a range may end at 2^64-2, never at 2^64-1, and an
     * overflowing range is refused. */
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, UINT64_MAX - 3, 3, key), 0);
    free_pair(&p);
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, UINT64_MAX - 2, 3, key), SPRO_EINTEGRITY);
    free_pair(&p);
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, UINT64_MAX - 1, 4, key), SPRO_EINTEGRITY);
    free_pair(&p);
    spro_memzero(key, sizeof key);
}

/* Chunked messages: sizes at the chunk edges round-trip; a dropped,
 * swapped or flipped chunk fails; the layout rules. */
static void test_chunked(void)
{
    static const size_t sizes[] = {0,
                                   1,
                                   SPRO_NOISE_CHUNK_PLAIN,
                                   SPRO_NOISE_CHUNK_PLAIN + 1,
                                   2 * SPRO_NOISE_CHUNK_PLAIN + 7,
                                   SPRO_SEALED_MAX_PLAIN};
    size_t cap = spro_noise_chunked_size(SPRO_SEALED_MAX_PLAIN);
    uint8_t *pt = malloc(SPRO_SEALED_MAX_PLAIN), *ct = malloc(cap), *out = malloc(cap);
    CHECK(pt != NULL && ct != NULL && out != NULL);
    for (size_t i = 0; i < SPRO_SEALED_MAX_PLAIN; i++)
        pt[i] = (uint8_t)(i * 7);
    const uint8_t ad[] = "ad";
    struct pair p;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t len = sizes[s], k = spro_noise_chunks(len), ctlen = spro_noise_chunked_size(len);
        size_t plen = 99, kk = 0;
        CHECK_EQ(k, len == 0 ? 1 : (len + SPRO_NOISE_CHUNK_PLAIN - 1) / SPRO_NOISE_CHUNK_PLAIN);
        CHECK_EQ(spro_noise_chunked_layout(ctlen, &plen, &kk), 0);
        CHECK_EQ(plen, len);
        CHECK_EQ(kk, k);
        CHECK_EQ(make_pair(&p), 0);
        CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, 3, ad, 2, pt, len, ct, ctlen - 1),
                 SPRO_ETOOLONG);
        CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, 3, ad, 2, pt, len, ct, ctlen), 0);
        /* The counter continues after the last chunk's. */
        CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, 3 + k - 1, ad, 2, pt, 1, out, cap),
                 SPRO_ERANGE);
        if (k == 1) { /* exactly one explicit-nonce message */
            CHECK_EQ(spro_noise_cipher_decrypt_with_nonce(p.r_recv, 3, ad, 2, ct, ctlen, out, cap),
                     0);
        } else {
            uint8_t key[SPRO_NOISE_KEY_BYTES];
            CHECK_EQ(spro_noise_cipher_reserve(p.r_recv, 3, k, key), 0);
            CHECK_EQ(spro_noise_decrypt_chunked_detached(key, 3, ad, 2, ct, ctlen, out, cap, &plen),
                     0);
            CHECK_EQ(plen, len);
            CHECK(memcmp(out, pt, len) == 0);
            /* Dropping the last chunk: the new last one was sealed "more
             * follows". */
            CHECK_EQ(spro_noise_decrypt_chunked_detached(
                         key, 3, ad, 2, ct, (k - 1) * SPRO_NOISE_MAX_MESSAGE, out, cap, &plen),
                     SPRO_EINTEGRITY);
            CHECK_EQ(plen, 0);
            /* Another first counter: every chunk is bound to its place. */
            CHECK_EQ(spro_noise_decrypt_chunked_detached(key, 4, ad, 2, ct, ctlen, out, cap, &plen),
                     SPRO_EINTEGRITY);
            spro_memzero(key, sizeof key);
        }
        free_pair(&p);
        /* Stateful: round trip, then the same message again is a replay. */
        CHECK_EQ(make_pair(&p), 0);
        CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, 0, ad, 2, pt, len, ct, ctlen), 0);
        CHECK_EQ(spro_noise_cipher_decrypt_chunked(p.r_recv, 0, ad, 2, ct, ctlen, out, cap, &plen),
                 0);
        CHECK_EQ(plen, len);
        CHECK(len == 0 || memcmp(out, pt, len) == 0);
        CHECK_EQ(spro_noise_cipher_decrypt_chunked(p.r_recv, 0, ad, 2, ct, ctlen, out, cap, &plen),
                 SPRO_EINTEGRITY);
        free_pair(&p);
    }
    /* Two full chunks swapped, or one byte flipped, fail. */
    size_t len = 3 * SPRO_NOISE_CHUNK_PLAIN, ctlen = spro_noise_chunked_size(len), plen;
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, 0, ad, 2, pt, len, ct, ctlen), 0);
    memcpy(out, ct, SPRO_NOISE_MAX_MESSAGE);
    memcpy(ct, ct + SPRO_NOISE_MAX_MESSAGE, SPRO_NOISE_MAX_MESSAGE);
    memcpy(ct + SPRO_NOISE_MAX_MESSAGE, out, SPRO_NOISE_MAX_MESSAGE);
    CHECK_EQ(spro_noise_cipher_decrypt_chunked(p.r_recv, 0, ad, 2, ct, ctlen, out, cap, &plen),
             SPRO_EINTEGRITY);
    CHECK(all_zero(out, len));
    free_pair(&p);
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, 0, ad, 2, pt, len, ct, ctlen), 0);
    ct[ctlen - 1] ^= 1;
    CHECK_EQ(spro_noise_cipher_decrypt_chunked(p.r_recv, 0, ad, 2, ct, ctlen, out, cap, &plen),
             SPRO_EINTEGRITY);
    free_pair(&p);
    /* Layouts: a last chunk under a tag, too much plaintext. */
    size_t kk;
    CHECK_EQ(spro_noise_chunked_layout(0, &plen, &kk), SPRO_ETRUNCATED);
    CHECK_EQ(spro_noise_chunked_layout(15, &plen, &kk), SPRO_ETRUNCATED);
    CHECK_EQ(spro_noise_chunked_layout(16, &plen, &kk), 0);
    CHECK_EQ(spro_noise_chunked_layout(SPRO_NOISE_MAX_MESSAGE + 15, &plen, &kk), SPRO_ETRUNCATED);
    CHECK_EQ(spro_noise_chunked_layout(SPRO_NOISE_MAX_MESSAGE + 16, &plen, &kk), 0);
    CHECK_EQ(kk, 2);
    CHECK_EQ(
        spro_noise_chunked_layout(spro_noise_chunked_size(SPRO_SEALED_MAX_PLAIN) + 1, &plen, &kk),
        SPRO_ETOOLONG);
    CHECK_EQ(spro_noise_chunks(SPRO_SEALED_MAX_PLAIN), SPRO_NOISE_CHUNKS_MAX);
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, 0, ad, 2, pt, SPRO_SEALED_MAX_PLAIN + 1,
                                               ct, cap + 64),
             SPRO_ETOOLONG);
    /* Counters up to 2^64-2 only. */
    CHECK_EQ(spro_noise_cipher_encrypt_chunked(p.i_send, UINT64_MAX - 2, ad, 2, pt,
                                               2 * SPRO_NOISE_CHUNK_PLAIN + 1, ct, cap),
             SPRO_ERANGE);
    free_pair(&p);
    free(pt);
    free(ct);
    free(out);
}

static void test_tampered_transport(void)
{
    struct pair p;
    uint8_t ct[64], pt[64];
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(
        spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"data", 4, ct, sizeof ct), 0);
    ct[3] ^= 4;
    memset(pt, 0x77, sizeof pt);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 20, pt, sizeof pt), SPRO_EINTEGRITY);
    CHECK(all_zero(pt, sizeof pt));
    ct[3] ^= 4; /* the genuine message is refused once poisoned */
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 20, pt, sizeof pt), SPRO_EINTEGRITY);
    free_pair(&p);

    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 15, pt, sizeof pt), SPRO_ETRUNCATED);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 20, pt, sizeof pt), SPRO_EINTEGRITY);
    free_pair(&p);
}

static void test_in_place(void)
{
    struct pair p;
    uint8_t buf[64];
    CHECK_EQ(make_pair(&p), 0);
    memcpy(buf, "in place", 8);
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, buf, 8, buf, sizeof buf), 0);
    CHECK(memcmp(buf, "in place", 8) != 0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, buf, 24, buf, sizeof buf), 0);
    CHECK_BYTES(buf, 8, "in place", 8);
    free_pair(&p);
}

static void test_rekey(void)
{
    struct pair p;
    uint8_t ct[64], pt[64];
    CHECK_EQ(make_pair(&p), 0);
    CHECK_EQ(spro_noise_cipher_rekey(p.i_send), 0);
    CHECK_EQ(spro_noise_cipher_rekey(p.r_recv), 0);
    CHECK_EQ(spro_noise_cipher_encrypt(p.i_send, NULL, 0, (const uint8_t *)"k2", 2, ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.r_recv, NULL, 0, ct, 18, pt, sizeof pt), 0);
    CHECK_BYTES(pt, 2, "k2", 2);
    /* Only one side rekeys: decryption fails. */
    CHECK_EQ(spro_noise_cipher_rekey(p.r_send), 0);
    CHECK_EQ(spro_noise_cipher_encrypt(p.r_send, NULL, 0, (const uint8_t *)"k3", 2, ct, sizeof ct),
             0);
    CHECK_EQ(spro_noise_cipher_decrypt(p.i_recv, NULL, 0, ct, 18, pt, sizeof pt), SPRO_EINTEGRITY);
    free_pair(&p);
}

static void test_destroy_null(void)
{
    spro_noise_handshake_destroy(NULL);
    spro_noise_cipher_destroy(NULL);
}

static const struct check_test tests[] = {
    {"ik_random_keys", test_ik_random_keys},
    {"empty_payloads", test_empty_payloads},
    {"tampered_message", test_tampered_message},
    {"truncated_message", test_truncated_message},
    {"ik_wrong_remote_static", test_ik_wrong_remote_static},
    {"mismatched_prologue_and_psk", test_mismatched_prologue_and_psk},
    {"two_psks", test_two_psks},
    {"one_way_split", test_one_way_split},
    {"bad_protocol_names", test_bad_protocol_names},
    {"keys_must_fit_pattern", test_keys_must_fit_pattern},
    {"wrong_phase", test_wrong_phase},
    {"low_order_keys", test_low_order_keys},
    {"capacity", test_capacity},
    {"max_message_size", test_max_message_size},
    {"explicit_nonce", test_explicit_nonce},
    {"reserve_and_detached", test_reserve_and_detached},
    {"chunked", test_chunked},
    {"tampered_transport", test_tampered_transport},
    {"in_place", test_in_place},
    {"rekey", test_rekey},
    {"destroy_null", test_destroy_null},
};

int main(int argc, char **argv)
{
    if (spro_crypto_init() != 0) {
        fprintf(stderr, "libsodium failed to initialise\n");
        return 1;
    }
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
