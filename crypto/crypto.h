/*
 * crypto: every use of libsodium in spro-sync; the only includer of sodium.h.
 *
 * Pure: no I/O.  Secrets that live long are held in guarded memory from
 * spro_secret_alloc(); every function wipes its temporaries.  Functions that
 * decrypt or verify carry SPRO_MUST_CHECK and fail with SPRO_EINTEGRITY,
 * leaving their output zeroed.
 */
#ifndef SPRO_CRYPTO_CRYPTO_H
#define SPRO_CRYPTO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

#define SPRO_KEY_BYTES 32            /* symmetric keys, X25519 keys, Ed25519 public keys */
#define SPRO_SIGN_SECRET_BYTES 64    /* Ed25519 secret key (seed || public key) */
#define SPRO_SEAL_OVERHEAD (24 + 16) /* XChaCha20-Poly1305: nonce || ciphertext || tag */
#define SPRO_FINGERPRINT_BYTES 20    /* truncated BLAKE2b of a public key */
#define SPRO_FINGERPRINT_CHARS 50    /* 10 groups of 4 hex digits, 9 colons, NUL */

/* Initialises libsodium.  Returns 0, or SPRO_EINTERNAL if it cannot. */
SPRO_MUST_CHECK int spro_crypto_init(void);

/* Fills buf with n random bytes. */
void spro_crypto_random(void *buf, size_t n);

/* Guarded, locked memory for long-lived secrets (sodium_malloc).  Aborts on
 * out-of-memory.  spro_secret_free() wipes and releases; accepts NULL. */
void *spro_secret_alloc(size_t n);
void spro_secret_free(void *p);

/* Memory for short-lived secret state made at a high rate (Noise handshake
 * and transport states: one pair per device session).  Plain heap memory:
 * guarded pages would cost an mprotect/munmap, and a TLB shootdown on every
 * core, per session.  spro_crypto_state_free() wipes the n bytes first;
 * both abort on misuse or out-of-memory; free accepts NULL. */
void *spro_crypto_state_alloc(size_t n);
void spro_crypto_state_free(void *p, size_t n);

/* Wipes n bytes (never optimised away). */
void spro_memzero(void *p, size_t n);

/* Constant-time equality of two n-byte buffers: 1 if equal, 0 if not. */
int spro_crypto_equal(const void *a, const void *b, size_t n);

/* New X25519 key pair (the server's and devices' Noise static keys). */
void spro_crypto_dh_keypair(uint8_t pk[SPRO_KEY_BYTES], uint8_t sk[SPRO_KEY_BYTES]);

/* The X25519 public key of secret key sk.  Returns 0, or SPRO_EINTEGRITY
 * for a secret that gives the all-zero point. */
SPRO_MUST_CHECK int spro_crypto_dh_public(uint8_t pk[SPRO_KEY_BYTES],
                                          const uint8_t sk[SPRO_KEY_BYTES]);

/* New Ed25519 signing key pair. */
void spro_crypto_sign_keypair(uint8_t pk[SPRO_KEY_BYTES], uint8_t sk[SPRO_SIGN_SECRET_BYTES]);

/* Derives a purpose subkey from the master key (crypto_kdf_derive_from_key).
 * ctx is exactly 8 characters naming the purpose, e.g. "srvkeys_". */
void spro_crypto_derive(uint8_t out[SPRO_KEY_BYTES], const uint8_t master[SPRO_KEY_BYTES],
                        uint64_t subkey_id, const char ctx[8]);

/* Seals pt (ptlen bytes) with XChaCha20-Poly1305 under key, binding ad.
 * Writes ptlen + SPRO_SEAL_OVERHEAD bytes to out: nonce || ciphertext || tag. */
void spro_crypto_seal(uint8_t *out, const uint8_t *pt, size_t ptlen, const uint8_t *ad,
                      size_t adlen, const uint8_t key[SPRO_KEY_BYTES]);

/* Opens what spro_crypto_seal() wrote (inlen bytes) into out (inlen -
 * SPRO_SEAL_OVERHEAD bytes).  Returns 0, or SPRO_EINTEGRITY if the input is
 * too short, was altered, or ad/key differ (out is zeroed then). */
SPRO_MUST_CHECK int spro_crypto_open(uint8_t *out, const uint8_t *in, size_t inlen,
                                     const uint8_t *ad, size_t adlen,
                                     const uint8_t key[SPRO_KEY_BYTES]);

/* Human fingerprint of a public key: the first 20 bytes of
 * BLAKE2b-256(key = "spro-sync fingerprint v1", pk), as 10 ':'-separated
 * groups of 4 lowercase hex digits. */
void spro_crypto_fingerprint(char out[SPRO_FINGERPRINT_CHARS], const uint8_t pk[SPRO_KEY_BYTES]);

/* ---- Enrolment ticket strings (docs/PROTOCOL.md, "Keys, fingerprint, ticket") ----
 * spro1:<40 hex fingerprint>:<16 hex ticket id>:<43 base64url secret>@<url> */

#define SPRO_TICKET_URL_MAX 256
#define SPRO_TICKET_STRING_MAX (6 + 40 + 1 + 16 + 1 + 43 + 1 + SPRO_TICKET_URL_MAX + 1)

struct spro_ticket_string {
    uint8_t fingerprint[SPRO_FINGERPRINT_BYTES];
    char id[17]; /* 16 lowercase hex digits, NUL-terminated */
    uint8_t secret[32];
    char url[SPRO_TICKET_URL_MAX + 1]; /* http:// or https://, no path */
};

/* Writes the one-line ticket string of t into out (SPRO_TICKET_STRING_MAX
 * bytes).  Returns 0, or SPRO_ECONFIG for a malformed id or URL. */
SPRO_MUST_CHECK int spro_ticket_format(char out[SPRO_TICKET_STRING_MAX],
                                       const struct spro_ticket_string *t);

/* Parses a ticket string (surrounding whitespace allowed).  Returns 0, or
 * SPRO_ECONFIG if it is not one (t is zeroed then). */
SPRO_MUST_CHECK int spro_ticket_parse(struct spro_ticket_string *t, const char *s);

/* The 20 fingerprint bytes of pk (what spro_crypto_fingerprint() prints). */
void spro_crypto_fingerprint_bytes(uint8_t out[SPRO_FINGERPRINT_BYTES],
                                   const uint8_t pk[SPRO_KEY_BYTES]);

/* Keyed BLAKE2b-256 of msg (len bytes) under a 32-byte key: a MAC, e.g. of
 * what only the holder of a key may have produced (enrolment tickets). */
#define SPRO_MAC_BYTES 32
void spro_crypto_mac(uint8_t out[SPRO_MAC_BYTES], const uint8_t key[SPRO_KEY_BYTES],
                     const void *msg, size_t len);

/* Keyed 64-bit hash (SipHash-2-4) for hash tables whose keys an attacker
 * chooses: with a random 16-byte key, collisions cannot be aimed. */
#define SPRO_SHORTHASH_KEY_BYTES 16
uint64_t spro_crypto_shorthash(const void *in, size_t len,
                               const uint8_t key[SPRO_SHORTHASH_KEY_BYTES]);

/*
 * Noise Protocol Framework (revision 34), suite 25519 / ChaChaPoly / BLAKE2b.
 * See docs/NOISE.md for how this maps to the spec.
 *
 * A HandshakeState runs one handshake of any pattern named by a protocol
 * name such as "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b": the 12 interactive
 * fundamental patterns, the one-way N, K and X, the deferred patterns (NK1,
 * X1K1, ...) and pskN modifiers ("psk0+psk2" for several).  When the
 * handshake is done, spro_noise_split() yields the transport CipherStates.
 *
 * Poisoning.  A read or decrypt that fails for any reason other than being
 * called in the wrong phase (SPRO_EBADMSGTYPE) poisons its object: the
 * object's secrets are wiped and every later call on it fails with
 * SPRO_EINTEGRITY.  This holds for the HandshakeState (including its
 * internal handshake-phase cipher) and for transport CipherStates alike: a
 * transport decrypt failure (bad tag, replayed or too old nonce, bad size)
 * means the channel tears the session down.  A failed decrypt never
 * advances the nonce or the replay window.  Writes and encrypts that fail
 * (buffer too small, payload too long, nonce exhausted, wrong phase) change
 * nothing, except a write whose Diffie-Hellman yields the all-zero output
 * (a low-order remote key), which poisons like a failed read.
 *
 * Sizes.  No Noise message exceeds SPRO_NOISE_MAX_MESSAGE bytes; a larger
 * message or a payload that would make one fails with SPRO_ETOOLONG.  Every
 * output buffer comes with its capacity; a too-small capacity fails with
 * SPRO_ETOOLONG.  Input and output buffers must not overlap, except that the
 * cipher functions accept out == in exactly (in place).
 *
 * spro_crypto_init() must have succeeded before any of these is called.
 * Objects are not thread-safe; one thread at a time.
 */
#define SPRO_NOISE_MAX_MESSAGE 65535 /* bytes in one Noise message */
#define SPRO_NOISE_TAG_BYTES 16      /* Poly1305 tag added by each encryption */
#define SPRO_NOISE_HASH_BYTES 64     /* handshake hash (BLAKE2b-512) */
#define SPRO_NOISE_PSK_BYTES 32      /* one pre-shared key */
#define SPRO_NOISE_MAX_PSKS 4        /* psk modifiers in one protocol name */
#define SPRO_NOISE_REPLAY_WINDOW 64  /* explicit nonces accepted out of order */

struct spro_noise_handshake; /* a HandshakeState, opaque */
struct spro_noise_cipher;    /* a transport CipherState, opaque */

/* Creates a HandshakeState for protocol_name (NUL-terminated, at most 255
 * bytes) in the role initiator (1) or responder (0), mixing prologue
 * (prologue_len bytes; NULL if 0) and the pre-messages.
 *   s:    local static X25519 private key (32 bytes), given exactly when the
 *         pattern uses the local static key, else NULL.
 *   rs:   remote static public key (32 bytes), given exactly when the
 *         pattern's pre-message carries it (e.g. the initiator of IK), else
 *         NULL.
 *   psks: npsk pre-shared keys of SPRO_NOISE_PSK_BYTES each, concatenated,
 *         in the order the pattern uses them; npsk must equal the number of
 *         psk tokens (0 and NULL without psk modifiers).
 * The keys are copied.  Returns 0 and sets *hs_out, or SPRO_ECONFIG (an
 * unknown or unsupported protocol name, keys or psks missing or superfluous,
 * an invalid private key) with *hs_out set to NULL.  Free with
 * spro_noise_handshake_destroy(). */
SPRO_MUST_CHECK int spro_noise_handshake_init(struct spro_noise_handshake **hs_out,
                                              const char *protocol_name, int initiator,
                                              const uint8_t *prologue, size_t prologue_len,
                                              const uint8_t *s, const uint8_t *rs,
                                              const uint8_t *psks, size_t npsk);

/* TEST USE ONLY (known-answer vectors): makes e_sk (32 bytes) the local
 * ephemeral private key instead of a fresh random one.  Reusing an
 * ephemeral key destroys the security of the handshake; production code
 * never calls this.  Must come before the local "e" token is written.
 * Returns 0; SPRO_EBADMSGTYPE if the ephemeral is already in use; SPRO_ECONFIG
 * if e_sk is not a usable key; SPRO_EINTEGRITY if poisoned. */
SPRO_MUST_CHECK int spro_noise_handshake_set_ephemeral(struct spro_noise_handshake *hs,
                                                       const uint8_t e_sk[SPRO_KEY_BYTES]);

/* WriteMessage: writes the next handshake message, carrying payload (len
 * bytes; NULL if 0), to out (outcap bytes) and sets *outlen.  Returns 0;
 * SPRO_EBADMSGTYPE if it is not this side's turn or the handshake is done;
 * SPRO_ETOOLONG if the message would exceed SPRO_NOISE_MAX_MESSAGE or
 * outcap; SPRO_EINTEGRITY if poisoned or a Diffie-Hellman output is zero
 * (the state is poisoned then).  On failure *outlen is 0 and, unless
 * poisoned, nothing changed. */
SPRO_MUST_CHECK int spro_noise_write_message(struct spro_noise_handshake *hs,
                                             const uint8_t *payload, size_t len, uint8_t *out,
                                             size_t outcap, size_t *outlen);

/* ReadMessage: reads the peer's next handshake message (len bytes) and
 * writes its payload to payload_out (cap bytes; at most len bytes are ever
 * needed) and its length to *plen.  Returns 0; SPRO_EBADMSGTYPE if it is not
 * the peer's turn or the handshake is done (nothing changed); otherwise on
 * failure the state is poisoned, payload_out[0..cap) is zeroed, *plen is 0
 * and the result is SPRO_ETOOLONG (message over SPRO_NOISE_MAX_MESSAGE, or
 * payload over cap), SPRO_ETRUNCATED (message shorter than its keys and
 * tags) or SPRO_EINTEGRITY (decryption failed, zero Diffie-Hellman output,
 * or already poisoned). */
SPRO_MUST_CHECK int spro_noise_read_message(struct spro_noise_handshake *hs, const uint8_t *msg,
                                            size_t len, uint8_t *payload_out, size_t cap,
                                            size_t *plen);

/* 1 if every handshake message has been written or read, else 0 (also 0
 * when poisoned). */
int spro_noise_handshake_done(const struct spro_noise_handshake *hs);

/* Copies the handshake hash h (channel binding) to out.  Returns 0;
 * SPRO_EBADMSGTYPE before the handshake is done; SPRO_EINTEGRITY if
 * poisoned.  out is zeroed on failure. */
SPRO_MUST_CHECK int spro_noise_handshake_hash(const struct spro_noise_handshake *hs,
                                              uint8_t out[SPRO_NOISE_HASH_BYTES]);

/* Copies the peer's static public key (from the pre-message or read in the
 * handshake) to out.  Returns 0; SPRO_ENOENT if it is not (yet) known;
 * SPRO_EINTEGRITY if poisoned.  out is zeroed on failure.  A key read during
 * the handshake is authenticated only once the handshake is done. */
SPRO_MUST_CHECK int spro_noise_handshake_remote_static(const struct spro_noise_handshake *hs,
                                                       uint8_t out[SPRO_KEY_BYTES]);

/* Split(): creates the two transport CipherStates, once, after the
 * handshake is done: *send_out encrypts to the peer, *recv_out decrypts from
 * it (each freed with spro_noise_cipher_destroy()).  In a one-way pattern
 * (N, K, X and their psk variants) only initiator-to-responder traffic
 * exists: the initiator's *recv_out and the responder's *send_out are NULL.
 * The chaining key is wiped afterwards; the handshake hash stays readable.
 * Returns 0; SPRO_EBADMSGTYPE before the handshake is done or on a second
 * call; SPRO_EINTEGRITY if poisoned.  Both outputs are NULL on failure. */
SPRO_MUST_CHECK int spro_noise_split(struct spro_noise_handshake *hs,
                                     struct spro_noise_cipher **send_out,
                                     struct spro_noise_cipher **recv_out);

/* Wipes and frees a HandshakeState; accepts NULL. */
void spro_noise_handshake_destroy(struct spro_noise_handshake *hs);

/* EncryptWithAd with the implicit nonce counter: writes len +
 * SPRO_NOISE_TAG_BYTES bytes to out (outcap bytes; out may equal pt) and
 * advances the counter.  Returns 0; SPRO_ETOOLONG if the ciphertext would
 * exceed SPRO_NOISE_MAX_MESSAGE or outcap; SPRO_ERANGE if the nonces are
 * exhausted; SPRO_EINTEGRITY if poisoned.  Nothing changes on failure. */
SPRO_MUST_CHECK int spro_noise_cipher_encrypt(struct spro_noise_cipher *cs, const uint8_t *ad,
                                              size_t adlen, const uint8_t *pt, size_t len,
                                              uint8_t *out, size_t outcap);

/* DecryptWithAd with the implicit counter: expects exactly the next nonce
 * (in-order delivery).  Writes len - SPRO_NOISE_TAG_BYTES bytes to out
 * (outcap bytes; out may equal ct).  Returns 0; otherwise the cipher is
 * poisoned, out[0..outcap) zeroed, and the result is SPRO_ETOOLONG (len over
 * SPRO_NOISE_MAX_MESSAGE or plaintext over outcap), SPRO_ETRUNCATED (len
 * below SPRO_NOISE_TAG_BYTES) or SPRO_EINTEGRITY (bad tag, ad or key
 * differ, nonces exhausted, or already poisoned). */
SPRO_MUST_CHECK int spro_noise_cipher_decrypt(struct spro_noise_cipher *cs, const uint8_t *ad,
                                              size_t adlen, const uint8_t *ct, size_t len,
                                              uint8_t *out, size_t outcap);

/* Encrypts with the explicit nonce n, which the transport carries next to
 * the ciphertext.  n must be at least every nonce used before by this
 * cipher (so a nonce is never reused) and below 2^64-1 (reserved); the
 * counter then continues at n + 1.  Same output and errors as
 * spro_noise_cipher_encrypt(), SPRO_ERANGE also for a refused n. */
SPRO_MUST_CHECK int spro_noise_cipher_encrypt_with_nonce(struct spro_noise_cipher *cs, uint64_t n,
                                                         const uint8_t *ad, size_t adlen,
                                                         const uint8_t *pt, size_t len,
                                                         uint8_t *out, size_t outcap);

/* Decrypts with the explicit nonce n read from the transport.  Accepts each
 * nonce once: any n above the highest accepted so far, or one of the
 * SPRO_NOISE_REPLAY_WINDOW nonces below it that was not accepted yet
 * (bounded reordering).  A replayed or older nonce, or n = 2^64-1, fails
 * with SPRO_EINTEGRITY.  Same output, errors and poisoning as
 * spro_noise_cipher_decrypt(); only a successful decryption records n. */
SPRO_MUST_CHECK int spro_noise_cipher_decrypt_with_nonce(struct spro_noise_cipher *cs, uint64_t n,
                                                         const uint8_t *ad, size_t adlen,
                                                         const uint8_t *ct, size_t len,
                                                         uint8_t *out, size_t outcap);

/* Rekey() of spec section 11.3: replaces the key with the first 32 bytes of
 * ENCRYPT(k, 2^64-1, "", 32 zero bytes); the nonce counter is unchanged.
 * Both ends must rekey at the same point of the stream.  Returns 0, or
 * SPRO_EINTEGRITY if poisoned. */
SPRO_MUST_CHECK int spro_noise_cipher_rekey(struct spro_noise_cipher *cs);

/* Wipes and frees a CipherState; accepts NULL. */
void spro_noise_cipher_destroy(struct spro_noise_cipher *cs);

#endif
