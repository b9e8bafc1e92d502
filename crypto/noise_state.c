/*
 * Noise primitives and the lower two objects of the spec: HMAC-BLAKE2b and
 * HKDF (section 4.3), the CipherState (5.1) with both implicit and
 * explicit nonces, and the SymmetricState (5.2).  noise_handshake.c builds
 * the HandshakeState on these; the transport uses the CipherState
 * functions directly after spro_noise_split().
 *
 * Cipher: ChaCha20-Poly1305 IETF, nonce = 4 zero bytes || 64-bit
 * little-endian counter.  Hash: BLAKE2b with 64-byte output.
 */
#include "noise_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

_Static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == NOISE_KEYLEN, "key size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == NOISE_TAGLEN, "tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce size");
_Static_assert(NOISE_TAGLEN == SPRO_NOISE_TAG_BYTES, "tag size");
_Static_assert(NOISE_HASHLEN == SPRO_NOISE_HASH_BYTES, "hash size");
_Static_assert(crypto_generichash_BYTES_MAX >= NOISE_HASHLEN, "BLAKE2b-512");
_Static_assert(SPRO_NOISE_REPLAY_WINDOW == 64, "the window is one uint64_t");
_Static_assert(SPRO_NOISE_KEY_BYTES == NOISE_KEYLEN, "key size");

#define NONCE_MAX UINT64_MAX /* reserved: used only by Rekey() */

/* ---- hash, HMAC, HKDF ------------------------------------------------ */

static void hash_update(crypto_generichash_state *st, const uint8_t *p, size_t n)
{
    if (n > 0)
        crypto_generichash_update(st, p, n);
}

/* HMAC-BLAKE2b (RFC 2104 with B = 128, L = 64) of d1 || d2 under key. */
static void hmac(uint8_t out[NOISE_HASHLEN], const uint8_t *key, size_t keylen, const uint8_t *d1,
                 size_t l1, const uint8_t *d2, size_t l2)
{
    uint8_t k0[NOISE_BLOCKLEN] = {0};
    uint8_t pad[NOISE_BLOCKLEN];
    uint8_t inner[NOISE_HASHLEN];
    crypto_generichash_state st;

    if (keylen > NOISE_BLOCKLEN)
        crypto_generichash(k0, NOISE_HASHLEN, key, keylen, NULL, 0);
    else if (keylen > 0)
        memcpy(k0, key, keylen);

    for (size_t i = 0; i < NOISE_BLOCKLEN; i++)
        pad[i] = k0[i] ^ 0x36;
    crypto_generichash_init(&st, NULL, 0, NOISE_HASHLEN);
    hash_update(&st, pad, sizeof pad);
    hash_update(&st, d1, l1);
    hash_update(&st, d2, l2);
    crypto_generichash_final(&st, inner, sizeof inner);

    for (size_t i = 0; i < NOISE_BLOCKLEN; i++)
        pad[i] = k0[i] ^ 0x5c;
    crypto_generichash_init(&st, NULL, 0, NOISE_HASHLEN);
    hash_update(&st, pad, sizeof pad);
    hash_update(&st, inner, sizeof inner);
    crypto_generichash_final(&st, out, NOISE_HASHLEN);

    sodium_memzero(k0, sizeof k0);
    sodium_memzero(pad, sizeof pad);
    sodium_memzero(inner, sizeof inner);
    sodium_memzero(&st, sizeof st);
}

void spro_noise__hkdf(const uint8_t ck[NOISE_HASHLEN], const uint8_t *ikm, size_t ikmlen,
                      uint8_t out1[NOISE_HASHLEN], uint8_t out2[NOISE_HASHLEN], uint8_t *out3)
{
    static const uint8_t one = 1, two = 2, three = 3;
    uint8_t temp_key[NOISE_HASHLEN], o1[NOISE_HASHLEN], o2[NOISE_HASHLEN];

    hmac(temp_key, ck, NOISE_HASHLEN, ikm, ikmlen, NULL, 0);
    hmac(o1, temp_key, sizeof temp_key, &one, 1, NULL, 0);
    hmac(o2, temp_key, sizeof temp_key, o1, sizeof o1, &two, 1);
    if (out3 != NULL)
        hmac(out3, temp_key, sizeof temp_key, o2, sizeof o2, &three, 1);
    memcpy(out1, o1, NOISE_HASHLEN); /* late: out1 may alias ck */
    memcpy(out2, o2, NOISE_HASHLEN);

    sodium_memzero(temp_key, sizeof temp_key);
    sodium_memzero(o1, sizeof o1);
    sodium_memzero(o2, sizeof o2);
}

/* ---- CipherState ----------------------------------------------------- */

static void make_nonce(uint8_t nonce[12], uint64_t n)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

/* ENCRYPT(k, n, ad, pt): writes len + NOISE_TAGLEN bytes to out. */
static void aead_encrypt(const uint8_t k[NOISE_KEYLEN], uint64_t n, const uint8_t *ad, size_t adlen,
                         const uint8_t *pt, size_t len, uint8_t *out)
{
    uint8_t nonce[12];
    make_nonce(nonce, n);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, len, ad, adlen, NULL, nonce, k);
}

/* DECRYPT(k, n, ad, ct), len >= NOISE_TAGLEN: 0, or -1 if authentication
 * fails. */
static int aead_decrypt(const uint8_t k[NOISE_KEYLEN], uint64_t n, const uint8_t *ad, size_t adlen,
                        const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t nonce[12];
    make_nonce(nonce, n);
    return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, ad, adlen, nonce,
                                                     k) == 0
               ? 0
               : -1;
}

static void cipher_set_key(struct spro_noise_cipher *cs, const uint8_t k[NOISE_KEYLEN])
{
    memcpy(cs->k, k, NOISE_KEYLEN);
    cs->has_key = 1;
    cs->n = 0;
    cs->window = 0;
}

static void cipher_poison(struct spro_noise_cipher *cs)
{
    sodium_memzero(cs->k, sizeof cs->k);
    cs->has_key = 0;
    cs->poisoned = 1;
}

/* Decrypt failure: poison and zero the whole output buffer. */
static int decrypt_fail(struct spro_noise_cipher *cs, uint8_t *out, size_t outcap, int err)
{
    cipher_poison(cs);
    if (out != NULL && outcap > 0)
        sodium_memzero(out, outcap);
    return err;
}

/* Replay check for an explicit nonce: 1 if n was not accepted before and
 * is not older than the window. */
static int nonce_fresh(const struct spro_noise_cipher *cs, uint64_t n)
{
    if (n >= cs->n)
        return 1;
    uint64_t age = cs->n - 1 - n; /* 0 = the highest accepted nonce */
    if (age >= SPRO_NOISE_REPLAY_WINDOW)
        return 0;
    return ((cs->window >> age) & 1) == 0;
}

static void nonce_accept(struct spro_noise_cipher *cs, uint64_t n)
{
    if (n >= cs->n) {
        uint64_t shift = n - cs->n + 1;
        cs->window = shift >= SPRO_NOISE_REPLAY_WINDOW ? 0 : cs->window << shift;
        cs->window |= 1;
        cs->n = n + 1;
    } else {
        cs->window |= (uint64_t)1 << (cs->n - 1 - n);
    }
}

int spro_noise_cipher_encrypt_with_nonce(struct spro_noise_cipher *cs, uint64_t n,
                                         const uint8_t *ad, size_t adlen, const uint8_t *pt,
                                         size_t len, uint8_t *out, size_t outcap)
{
    if (cs->poisoned)
        return SPRO_EINTEGRITY;
    if (!cs->has_key)
        return SPRO_EINTERNAL; /* transport ciphers always have a key */
    if (len > SPRO_NOISE_MAX_MESSAGE - NOISE_TAGLEN || outcap < len + NOISE_TAGLEN)
        return SPRO_ETOOLONG;
    if (n == NONCE_MAX || n < cs->n)
        return SPRO_ERANGE;
    aead_encrypt(cs->k, n, ad, adlen, pt, len, out);
    cs->n = n + 1;
    return 0;
}

int spro_noise_cipher_encrypt(struct spro_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                              const uint8_t *pt, size_t len, uint8_t *out, size_t outcap)
{
    return spro_noise_cipher_encrypt_with_nonce(cs, cs->n, ad, adlen, pt, len, out, outcap);
}

int spro_noise_cipher_decrypt_with_nonce(struct spro_noise_cipher *cs, uint64_t n,
                                         const uint8_t *ad, size_t adlen, const uint8_t *ct,
                                         size_t len, uint8_t *out, size_t outcap)
{
    if (cs->poisoned || !cs->has_key)
        return decrypt_fail(cs, out, outcap, SPRO_EINTEGRITY);
    if (len > SPRO_NOISE_MAX_MESSAGE)
        return decrypt_fail(cs, out, outcap, SPRO_ETOOLONG);
    if (len < NOISE_TAGLEN)
        return decrypt_fail(cs, out, outcap, SPRO_ETRUNCATED);
    if (outcap < len - NOISE_TAGLEN)
        return decrypt_fail(cs, out, outcap, SPRO_ETOOLONG);
    if (n == NONCE_MAX || !nonce_fresh(cs, n))
        return decrypt_fail(cs, out, outcap, SPRO_EINTEGRITY);
    if (aead_decrypt(cs->k, n, ad, adlen, ct, len, out) != 0)
        return decrypt_fail(cs, out, outcap, SPRO_EINTEGRITY);
    nonce_accept(cs, n);
    return 0;
}

int spro_noise_cipher_reserve(struct spro_noise_cipher *cs, uint64_t n, uint64_t count,
                              uint8_t key_out[SPRO_NOISE_KEY_BYTES])
{
    if (count == 0 || count > SPRO_NOISE_RESERVE_MAX) {
        /* API misuse (crypto/ does not link proto/'s SPRO_BUG). */
        fprintf(stderr, "BUG: spro_noise_cipher_reserve: count %llu out of range\n",
                (unsigned long long)count);
        abort();
    }
    sodium_memzero(key_out, SPRO_NOISE_KEY_BYTES);
    if (cs->poisoned || !cs->has_key || n >= NONCE_MAX - (count - 1))
        return decrypt_fail(cs, NULL, 0, SPRO_EINTEGRITY);
    /* Checked and recorded one by one on a copy, in increasing order, so
     * that a message may overlap the window's edge; committed only if all
     * are fresh. */
    struct spro_noise_cipher w = *cs;
    for (uint64_t i = 0; i < count; i++) {
        if (!nonce_fresh(&w, n + i)) {
            sodium_memzero(&w, sizeof w);
            return decrypt_fail(cs, NULL, 0, SPRO_EINTEGRITY);
        }
        nonce_accept(&w, n + i);
    }
    cs->n = w.n;
    cs->window = w.window;
    memcpy(key_out, cs->k, SPRO_NOISE_KEY_BYTES);
    sodium_memzero(&w, sizeof w);
    return 0;
}

int spro_noise_decrypt_detached(const uint8_t key[SPRO_NOISE_KEY_BYTES], uint64_t n,
                                const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t len,
                                uint8_t *out, size_t outcap)
{
    int rc = 0;
    if (len > SPRO_NOISE_MAX_MESSAGE)
        rc = SPRO_ETOOLONG;
    else if (len < NOISE_TAGLEN)
        rc = SPRO_ETRUNCATED;
    else if (outcap < len - NOISE_TAGLEN)
        rc = SPRO_ETOOLONG;
    else if (n == NONCE_MAX || aead_decrypt(key, n, ad, adlen, ct, len, out) != 0)
        rc = SPRO_EINTEGRITY;
    if (rc != 0 && out != NULL && outcap > 0)
        sodium_memzero(out, outcap);
    return rc;
}

/* ---- Chunked messages -------------------------------------------------- */

_Static_assert(SPRO_NOISE_CHUNKS_MAX *(size_t)SPRO_NOISE_CHUNK_PLAIN >= SPRO_SEALED_MAX_PLAIN &&
                   (SPRO_NOISE_CHUNKS_MAX - 1) * (size_t)SPRO_NOISE_CHUNK_PLAIN <
                       SPRO_SEALED_MAX_PLAIN,
               "SPRO_NOISE_CHUNKS_MAX is the chunks of SPRO_SEALED_MAX_PLAIN");
_Static_assert(SPRO_NOISE_CHUNKS_MAX <= SPRO_NOISE_RESERVE_MAX, "a message is reserved at once");

size_t spro_noise_chunks(size_t len)
{
    return len == 0 ? 1 : (len + SPRO_NOISE_CHUNK_PLAIN - 1) / SPRO_NOISE_CHUNK_PLAIN;
}

size_t spro_noise_chunked_size(size_t len)
{
    return len + NOISE_TAGLEN * spro_noise_chunks(len);
}

int spro_noise_chunked_layout(size_t ctlen, size_t *plain_len, size_t *chunks)
{
    *plain_len = *chunks = 0;
    if (ctlen > spro_noise_chunked_size(SPRO_SEALED_MAX_PLAIN))
        return SPRO_ETOOLONG;
    size_t k = (ctlen + SPRO_NOISE_MAX_MESSAGE - 1) / SPRO_NOISE_MAX_MESSAGE;
    if (k == 0 || ctlen - (k - 1) * SPRO_NOISE_MAX_MESSAGE < NOISE_TAGLEN)
        return SPRO_ETRUNCATED;
    if (ctlen - k * NOISE_TAGLEN > SPRO_SEALED_MAX_PLAIN)
        return SPRO_ETOOLONG;
    *plain_len = ctlen - k * NOISE_TAGLEN;
    *chunks = k;
    return 0;
}

/* The associated data of chunk i of k: ad, or ad || 0x01 (copied to buf,
 * SPRO_NOISE_CHUNK_AD_MAX bytes) for every chunk but the last. */
static const uint8_t *chunk_ad(const uint8_t *ad, size_t adlen, int last, uint8_t *buf,
                               size_t *outlen)
{
    if (last) {
        *outlen = adlen;
        return ad;
    }
    if (adlen > 0)
        memcpy(buf, ad, adlen);
    buf[adlen] = 0x01;
    *outlen = adlen + 1;
    return buf;
}

int spro_noise_cipher_encrypt_chunked(struct spro_noise_cipher *cs, uint64_t n, const uint8_t *ad,
                                      size_t adlen, const uint8_t *pt, size_t len, uint8_t *out,
                                      size_t outcap)
{
    if (cs->poisoned)
        return SPRO_EINTEGRITY;
    if (!cs->has_key)
        return SPRO_EINTERNAL;
    if (len > SPRO_SEALED_MAX_PLAIN || adlen >= SPRO_NOISE_CHUNK_AD_MAX ||
        outcap < spro_noise_chunked_size(len))
        return SPRO_ETOOLONG;
    size_t k = spro_noise_chunks(len);
    if (n < cs->n || n >= NONCE_MAX - (k - 1))
        return SPRO_ERANGE;
    uint8_t buf[SPRO_NOISE_CHUNK_AD_MAX];
    for (size_t i = 0; i < k; i++) {
        size_t clen = i + 1 < k ? SPRO_NOISE_CHUNK_PLAIN : len - i * SPRO_NOISE_CHUNK_PLAIN, alen;
        const uint8_t *a = chunk_ad(ad, adlen, i + 1 == k, buf, &alen);
        const uint8_t *p = pt == NULL ? NULL : pt + i * SPRO_NOISE_CHUNK_PLAIN; /* len 0 */
        aead_encrypt(cs->k, n + i, a, alen, p, clen, out + i * SPRO_NOISE_MAX_MESSAGE);
    }
    cs->n = n + k;
    return 0;
}

/* Chunk by chunk with decrypt_one(arg, nonce, ad, adlen, ct, len, out,
 * outcap), which wipes and reports its own failures. */
typedef int (*decrypt_one_fn)(void *arg, uint64_t n, const uint8_t *ad, size_t adlen,
                              const uint8_t *ct, size_t len, uint8_t *out, size_t outcap);

static int decrypt_chunks(decrypt_one_fn one, void *arg, uint64_t n, const uint8_t *ad,
                          size_t adlen, const uint8_t *ct, size_t len, uint8_t *out, size_t outcap,
                          size_t *plain_len)
{
    size_t plen, k;
    int rc = spro_noise_chunked_layout(len, &plen, &k);
    if (rc == 0 && (adlen >= SPRO_NOISE_CHUNK_AD_MAX || outcap < plen))
        rc = SPRO_ETOOLONG;
    if (rc == 0 && n >= NONCE_MAX - (k - 1))
        rc = SPRO_EINTEGRITY;
    uint8_t buf[SPRO_NOISE_CHUNK_AD_MAX];
    for (size_t i = 0; rc == 0 && i < k; i++) {
        size_t clen = i + 1 < k ? SPRO_NOISE_MAX_MESSAGE : len - i * SPRO_NOISE_MAX_MESSAGE, alen;
        const uint8_t *a = chunk_ad(ad, adlen, i + 1 == k, buf, &alen);
        size_t at = i * SPRO_NOISE_CHUNK_PLAIN;
        rc = one(arg, n + i, a, alen, ct + i * SPRO_NOISE_MAX_MESSAGE, clen,
                 out == NULL ? NULL : out + at, outcap - at);
    }
    sodium_memzero(buf, sizeof buf);
    if (rc != 0) {
        if (out != NULL && outcap > 0)
            sodium_memzero(out, outcap);
        *plain_len = 0;
        return rc;
    }
    *plain_len = plen;
    return 0;
}

static int decrypt_one_stateful(void *arg, uint64_t n, const uint8_t *ad, size_t adlen,
                                const uint8_t *ct, size_t len, uint8_t *out, size_t outcap)
{
    return spro_noise_cipher_decrypt_with_nonce(arg, n, ad, adlen, ct, len, out, outcap);
}

static int decrypt_one_detached(void *arg, uint64_t n, const uint8_t *ad, size_t adlen,
                                const uint8_t *ct, size_t len, uint8_t *out, size_t outcap)
{
    return spro_noise_decrypt_detached(arg, n, ad, adlen, ct, len, out, outcap);
}

int spro_noise_cipher_decrypt_chunked(struct spro_noise_cipher *cs, uint64_t n, const uint8_t *ad,
                                      size_t adlen, const uint8_t *ct, size_t len, uint8_t *out,
                                      size_t outcap, size_t *plain_len)
{
    int rc =
        decrypt_chunks(decrypt_one_stateful, cs, n, ad, adlen, ct, len, out, outcap, plain_len);
    if (rc != 0)
        cipher_poison(cs); /* also when refused before any chunk */
    return rc;
}

int spro_noise_decrypt_chunked_detached(const uint8_t key[SPRO_NOISE_KEY_BYTES], uint64_t n,
                                        const uint8_t *ad, size_t adlen, const uint8_t *ct,
                                        size_t len, uint8_t *out, size_t outcap, size_t *plain_len)
{
    return decrypt_chunks(decrypt_one_detached, (void *)(uintptr_t)key, n, ad, adlen, ct, len, out,
                          outcap, plain_len);
}

int spro_noise_cipher_decrypt(struct spro_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                              const uint8_t *ct, size_t len, uint8_t *out, size_t outcap)
{
    return spro_noise_cipher_decrypt_with_nonce(cs, cs->n, ad, adlen, ct, len, out, outcap);
}

int spro_noise_cipher_rekey(struct spro_noise_cipher *cs)
{
    if (cs->poisoned || !cs->has_key)
        return SPRO_EINTEGRITY;
    static const uint8_t zeros[NOISE_KEYLEN];
    uint8_t tmp[NOISE_KEYLEN + NOISE_TAGLEN];
    aead_encrypt(cs->k, NONCE_MAX, NULL, 0, zeros, sizeof zeros, tmp);
    memcpy(cs->k, tmp, NOISE_KEYLEN);
    sodium_memzero(tmp, sizeof tmp);
    return 0;
}

void spro_noise_cipher_destroy(struct spro_noise_cipher *cs)
{
    if (cs == NULL)
        return;
    spro_crypto_state_free(cs, sizeof *cs);
}

/* ---- SymmetricState -------------------------------------------------- */

void spro_noise__symmetric_init(struct spro_noise__symmetric *ss, const char *name, size_t len)
{
    memset(ss, 0, sizeof *ss);
    if (len <= NOISE_HASHLEN)
        memcpy(ss->h, name, len); /* zero-padded */
    else
        crypto_generichash(ss->h, NOISE_HASHLEN, (const uint8_t *)name, len, NULL, 0);
    memcpy(ss->ck, ss->h, NOISE_HASHLEN);
}

void spro_noise__mix_hash(struct spro_noise__symmetric *ss, const uint8_t *data, size_t len)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, NOISE_HASHLEN);
    hash_update(&st, ss->h, NOISE_HASHLEN);
    hash_update(&st, data, len);
    crypto_generichash_final(&st, ss->h, NOISE_HASHLEN);
    sodium_memzero(&st, sizeof st);
}

void spro_noise__mix_key(struct spro_noise__symmetric *ss, const uint8_t *ikm, size_t len)
{
    uint8_t temp_k[NOISE_HASHLEN];
    spro_noise__hkdf(ss->ck, ikm, len, ss->ck, temp_k, NULL);
    cipher_set_key(&ss->cs, temp_k); /* truncated to 32 bytes */
    sodium_memzero(temp_k, sizeof temp_k);
}

void spro_noise__mix_key_and_hash(struct spro_noise__symmetric *ss, const uint8_t *ikm, size_t len)
{
    uint8_t temp_h[NOISE_HASHLEN], temp_k[NOISE_HASHLEN];
    spro_noise__hkdf(ss->ck, ikm, len, ss->ck, temp_h, temp_k);
    spro_noise__mix_hash(ss, temp_h, sizeof temp_h);
    cipher_set_key(&ss->cs, temp_k); /* truncated to 32 bytes */
    sodium_memzero(temp_h, sizeof temp_h);
    sodium_memzero(temp_k, sizeof temp_k);
}

int spro_noise__encrypt_and_hash(struct spro_noise__symmetric *ss, const uint8_t *pt, size_t len,
                                 uint8_t *out)
{
    struct spro_noise_cipher *cs = &ss->cs;
    size_t outlen = len;
    if (cs->has_key) {
        if (cs->n == NONCE_MAX)
            return SPRO_ERANGE;
        aead_encrypt(cs->k, cs->n, ss->h, NOISE_HASHLEN, pt, len, out);
        cs->n++;
        outlen += NOISE_TAGLEN;
    } else if (len > 0) {
        memcpy(out, pt, len);
    }
    spro_noise__mix_hash(ss, out, outlen);
    return 0;
}

int spro_noise__decrypt_and_hash(struct spro_noise__symmetric *ss, const uint8_t *ct, size_t len,
                                 uint8_t *out)
{
    struct spro_noise_cipher *cs = &ss->cs;
    if (cs->poisoned)
        return SPRO_EINTEGRITY;
    if (cs->has_key) {
        if (len < NOISE_TAGLEN || cs->n == NONCE_MAX ||
            aead_decrypt(cs->k, cs->n, ss->h, NOISE_HASHLEN, ct, len, out) != 0) {
            if (len > NOISE_TAGLEN)
                sodium_memzero(out, len - NOISE_TAGLEN);
            cipher_poison(cs);
            return SPRO_EINTEGRITY;
        }
        cs->n++;
    } else if (len > 0) {
        memcpy(out, ct, len);
    }
    spro_noise__mix_hash(ss, ct, len);
    return 0;
}

void spro_noise__symmetric_split(struct spro_noise__symmetric *ss, struct spro_noise_cipher *c1,
                                 struct spro_noise_cipher *c2)
{
    uint8_t k1[NOISE_HASHLEN], k2[NOISE_HASHLEN];
    spro_noise__hkdf(ss->ck, NULL, 0, k1, k2, NULL);
    memset(c1, 0, sizeof *c1);
    memset(c2, 0, sizeof *c2);
    cipher_set_key(c1, k1); /* truncated to 32 bytes */
    cipher_set_key(c2, k2);
    sodium_memzero(k1, sizeof k1);
    sodium_memzero(k2, sizeof k2);
}
