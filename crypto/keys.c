/*
 * Key generation, derivation, sealing and fingerprints: thin, checked
 * wrappers over libsodium used by the data directory (sync/) and the tools.
 */
#include "crypto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
                       crypto_aead_xchacha20poly1305_ietf_ABYTES ==
                   SPRO_SEAL_OVERHEAD,
               "seal overhead");
_Static_assert(crypto_kdf_KEYBYTES == SPRO_KEY_BYTES, "kdf key size");
_Static_assert(crypto_sign_SECRETKEYBYTES == SPRO_SIGN_SECRET_BYTES, "sign key size");

int spro_crypto_init(void)
{
    return sodium_init() < 0 ? SPRO_EINTERNAL : 0;
}

void spro_crypto_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

void *spro_secret_alloc(size_t n)
{
    void *p = sodium_malloc(n);
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory (secure allocation of %zu bytes)\n", n);
        abort();
    }
    return p;
}

void spro_secret_free(void *p)
{
    sodium_free(p); /* wipes; accepts NULL */
}

void *spro_crypto_state_alloc(size_t n)
{
    void *p = calloc(1, n);
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void spro_crypto_state_free(void *p, size_t n)
{
    if (p == NULL)
        return;
    sodium_memzero(p, n);
    free(p);
}

void spro_memzero(void *p, size_t n)
{
    sodium_memzero(p, n);
}

int spro_crypto_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

void spro_crypto_dh_keypair(uint8_t pk[SPRO_KEY_BYTES], uint8_t sk[SPRO_KEY_BYTES])
{
    crypto_box_keypair(pk, sk);
}

int spro_crypto_dh_public(uint8_t pk[SPRO_KEY_BYTES], const uint8_t sk[SPRO_KEY_BYTES])
{
    return crypto_scalarmult_base(pk, sk) == 0 ? 0 : SPRO_EINTEGRITY;
}

void spro_crypto_sign_keypair(uint8_t pk[SPRO_KEY_BYTES], uint8_t sk[SPRO_SIGN_SECRET_BYTES])
{
    crypto_sign_keypair(pk, sk);
}

void spro_crypto_derive(uint8_t out[SPRO_KEY_BYTES], const uint8_t master[SPRO_KEY_BYTES],
                        uint64_t subkey_id, const char ctx[8])
{
    crypto_kdf_derive_from_key(out, SPRO_KEY_BYTES, subkey_id, ctx, master);
}

_Static_assert(crypto_pwhash_SALTBYTES == SPRO_PWHASH_SALT_BYTES, "pwhash salt size");
_Static_assert(crypto_pwhash_OPSLIMIT_MODERATE == SPRO_PWHASH_OPS_DEFAULT, "pwhash ops");
_Static_assert(crypto_pwhash_MEMLIMIT_MODERATE == SPRO_PWHASH_MEM_DEFAULT, "pwhash mem");
_Static_assert(crypto_pwhash_OPSLIMIT_INTERACTIVE == SPRO_PWHASH_OPS_INTERACTIVE, "pwhash ops");
_Static_assert(crypto_pwhash_MEMLIMIT_INTERACTIVE == SPRO_PWHASH_MEM_INTERACTIVE, "pwhash mem");
_Static_assert(crypto_pwhash_OPSLIMIT_MIN <= SPRO_PWHASH_OPS_MIN, "pwhash ops min");
_Static_assert(crypto_pwhash_MEMLIMIT_MIN <= SPRO_PWHASH_MEM_MIN, "pwhash mem min");

int spro_crypto_pwhash(uint8_t out[SPRO_KEY_BYTES], const char *pass, size_t passlen,
                       const uint8_t salt[SPRO_PWHASH_SALT_BYTES], uint64_t opslimit,
                       uint64_t memlimit)
{
    sodium_memzero(out, SPRO_KEY_BYTES);
    if (passlen < 1 || passlen > SPRO_PASSPHRASE_MAX || opslimit < SPRO_PWHASH_OPS_MIN ||
        opslimit > SPRO_PWHASH_OPS_MAX || memlimit < SPRO_PWHASH_MEM_MIN ||
        memlimit > SPRO_PWHASH_MEM_MAX || memlimit > SIZE_MAX)
        return SPRO_ERANGE;
    if (crypto_pwhash(out, SPRO_KEY_BYTES, pass, passlen, salt, opslimit, (size_t)memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        sodium_memzero(out, SPRO_KEY_BYTES);
        return SPRO_ENOMEM;
    }
    return 0;
}

void spro_crypto_seal(uint8_t *out, const uint8_t *pt, size_t ptlen, const uint8_t *ad,
                      size_t adlen, const uint8_t key[SPRO_KEY_BYTES])
{
    uint8_t *nonce = out;
    randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                                               NULL, pt, ptlen, ad, adlen, NULL, nonce, key);
}

int spro_crypto_open(uint8_t *out, const uint8_t *in, size_t inlen, const uint8_t *ad, size_t adlen,
                     const uint8_t key[SPRO_KEY_BYTES])
{
    if (inlen < SPRO_SEAL_OVERHEAD)
        return SPRO_EINTEGRITY;
    size_t outlen = inlen - SPRO_SEAL_OVERHEAD;
    const uint8_t *nonce = in;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, NULL, NULL, in + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
            inlen - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, ad, adlen, nonce, key) != 0) {
        sodium_memzero(out, outlen);
        return SPRO_EINTEGRITY;
    }
    return 0;
}

void spro_crypto_fingerprint_bytes(uint8_t out[SPRO_FINGERPRINT_BYTES],
                                   const uint8_t pk[SPRO_KEY_BYTES])
{
    static const char fpkey[] = "spro-sync fingerprint v1";
    uint8_t h[32];
    crypto_generichash(h, sizeof h, pk, SPRO_KEY_BYTES, (const uint8_t *)fpkey, sizeof fpkey - 1);
    memcpy(out, h, SPRO_FINGERPRINT_BYTES);
}

void spro_crypto_fingerprint(char out[SPRO_FINGERPRINT_CHARS], const uint8_t pk[SPRO_KEY_BYTES])
{
    uint8_t h[SPRO_FINGERPRINT_BYTES];
    spro_crypto_fingerprint_bytes(h, pk);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < SPRO_FINGERPRINT_BYTES; i++) {
        if (i > 0 && i % 2 == 0)
            out[o++] = ':';
        out[o++] = hex[h[i] >> 4];
        out[o++] = hex[h[i] & 15];
    }
    out[o] = '\0';
}

void spro_crypto_mac(uint8_t out[SPRO_MAC_BYTES], const uint8_t key[SPRO_KEY_BYTES],
                     const void *msg, size_t len)
{
    _Static_assert(crypto_generichash_BYTES == SPRO_MAC_BYTES, "mac size");
    crypto_generichash(out, SPRO_MAC_BYTES, msg, len, key, SPRO_KEY_BYTES);
}

uint64_t spro_crypto_shorthash(const void *in, size_t len,
                               const uint8_t key[SPRO_SHORTHASH_KEY_BYTES])
{
    _Static_assert(crypto_shorthash_KEYBYTES == SPRO_SHORTHASH_KEY_BYTES, "shorthash key size");
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, in, len, key);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | h[i];
    return v;
}
