/*
 * Internals of the Noise implementation, shared by noise_state.c (hash,
 * HMAC, HKDF, CipherState, SymmetricState: spec sections 4 and 5.1-5.2) and
 * noise_handshake.c (patterns and HandshakeState: sections 5.3, 7, 9).
 * Not part of the public API; only files of crypto/ include it.
 */
#ifndef SPRO_CRYPTO_NOISE_INTERNAL_H
#define SPRO_CRYPTO_NOISE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

#define NOISE_HASHLEN 64   /* BLAKE2b-512 output */
#define NOISE_BLOCKLEN 128 /* BLAKE2b block, the HMAC block size */
#define NOISE_KEYLEN 32    /* ChaChaPoly key */
#define NOISE_TAGLEN 16    /* Poly1305 tag */
#define NOISE_DHLEN 32     /* X25519 keys and outputs */

/*
 * A Noise CipherState.  Held inside a SymmetricState during the handshake
 * and in spro_crypto_state_alloc() memory (wiped on free) once split() hands it out.
 */
struct spro_noise_cipher {
    uint8_t k[NOISE_KEYLEN]; /* valid only if has_key */
    uint64_t n;              /* next nonce, 0 .. 2^64-1; 2^64-1 means exhausted */
    uint64_t window;         /* receive side: bit i set = nonce n-1-i was accepted */
    uint8_t has_key;         /* 0: "empty" key, encryption is the identity */
    uint8_t poisoned;        /* 1 after a failed decryption: every call fails */
};

/* A Noise SymmetricState. */
struct spro_noise__symmetric {
    struct spro_noise_cipher cs;
    uint8_t ck[NOISE_HASHLEN]; /* chaining key */
    uint8_t h[NOISE_HASHLEN];  /* handshake hash */
};

/* HKDF(ck, ikm) of spec section 4.3 with BLAKE2b: writes two or three
 * 64-byte outputs (out3 may be NULL).  Outputs may alias ck. */
void spro_noise__hkdf(const uint8_t ck[NOISE_HASHLEN], const uint8_t *ikm, size_t ikmlen,
                      uint8_t out1[NOISE_HASHLEN], uint8_t out2[NOISE_HASHLEN], uint8_t *out3);

/* InitializeSymmetric(protocol_name). */
void spro_noise__symmetric_init(struct spro_noise__symmetric *ss, const char *name, size_t len);

/* MixKey, MixHash, MixKeyAndHash. */
void spro_noise__mix_key(struct spro_noise__symmetric *ss, const uint8_t *ikm, size_t len);
void spro_noise__mix_hash(struct spro_noise__symmetric *ss, const uint8_t *data, size_t len);
void spro_noise__mix_key_and_hash(struct spro_noise__symmetric *ss, const uint8_t *ikm, size_t len);

/* EncryptAndHash: writes len (+ NOISE_TAGLEN if a key is set) bytes to out,
 * which must not overlap pt.  Returns 0, or SPRO_ERANGE if the nonce is
 * exhausted (nothing changed then). */
int spro_noise__encrypt_and_hash(struct spro_noise__symmetric *ss, const uint8_t *pt, size_t len,
                                 uint8_t *out);

/* DecryptAndHash: writes len (- NOISE_TAGLEN if a key is set) bytes to out,
 * which must not overlap ct; len is at least NOISE_TAGLEN when a key is set.
 * Returns 0, or SPRO_EINTEGRITY (out zeroed, cipher poisoned). */
SPRO_MUST_CHECK int spro_noise__decrypt_and_hash(struct spro_noise__symmetric *ss,
                                                 const uint8_t *ct, size_t len, uint8_t *out);

/* Split(): fills two keyed CipherStates with nonce 0. */
void spro_noise__symmetric_split(struct spro_noise__symmetric *ss, struct spro_noise_cipher *c1,
                                 struct spro_noise_cipher *c2);

#endif
