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

/* Argon2id (crypto_pwhash, algorithm ARGON2ID13): the master key of a
 * data directory from a passphrase (docs/CRYPTO.md, "Master key from a
 * passphrase").  opslimit is passes over memory; memlimit is bytes.  The
 * defaults are libsodium's MODERATE level (about a second and 256 MiB on
 * a server); INTERACTIVE is the lowest a real deployment should use;
 * our own MAX bounds stop a tampered salt file from asking for hours or
 * gigabytes. */
#define SPRO_PWHASH_SALT_BYTES 16
#define SPRO_PWHASH_OPS_DEFAULT 3u                /* crypto_pwhash_OPSLIMIT_MODERATE */
#define SPRO_PWHASH_MEM_DEFAULT (256ull << 20)    /* crypto_pwhash_MEMLIMIT_MODERATE */
#define SPRO_PWHASH_OPS_INTERACTIVE 2u            /* crypto_pwhash_OPSLIMIT_INTERACTIVE */
#define SPRO_PWHASH_MEM_INTERACTIVE (64ull << 20) /* crypto_pwhash_MEMLIMIT_INTERACTIVE */
#define SPRO_PWHASH_OPS_MIN 1u                    /* crypto_pwhash_OPSLIMIT_MIN */
#define SPRO_PWHASH_OPS_MAX 64u                   /* ours */
#define SPRO_PWHASH_MEM_MIN 8192ull               /* crypto_pwhash_MEMLIMIT_MIN */
#define SPRO_PWHASH_MEM_MAX (4ull << 30)          /* ours */
#define SPRO_PASSPHRASE_MAX 1024                  /* bytes of a passphrase, at most */

/* Derives out = Argon2id(pass (passlen bytes, 1..SPRO_PASSPHRASE_MAX),
 * salt, opslimit, memlimit).  Returns 0; SPRO_ERANGE for a length or a
 * parameter outside the bounds above (out zeroed); SPRO_ENOMEM if
 * libsodium could not get memlimit bytes (out zeroed).  The caller wipes
 * pass. */
SPRO_MUST_CHECK int spro_crypto_pwhash(uint8_t out[SPRO_KEY_BYTES], const char *pass,
                                       size_t passlen, const uint8_t salt[SPRO_PWHASH_SALT_BYTES],
                                       uint64_t opslimit, uint64_t memlimit);

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

/*
 * Chunked messages (docs/PROTOCOL.md, "Chunked messages"): a plaintext of
 * len bytes, 0..SPRO_SEALED_MAX_PLAIN, is cut into k = max(1, ceil(len /
 * SPRO_NOISE_CHUNK_PLAIN)) chunks, every one but the last exactly
 * SPRO_NOISE_CHUNK_PLAIN bytes.  Chunk i is sealed under the explicit nonce
 * n + i; its associated data is ad for the last chunk and ad || 0x01
 * ("more follows") for every other one.  The ciphertext is the chunks'
 * ciphertexts (each with its tag) end to end, so that every chunk but the
 * last is SPRO_NOISE_MAX_MESSAGE bytes and the reader derives k from the
 * length alone.  A one-chunk message is exactly one explicit-nonce
 * message.
 */
#define SPRO_NOISE_CHUNK_PLAIN (SPRO_NOISE_MAX_MESSAGE - SPRO_NOISE_TAG_BYTES) /* 65,519 */
#define SPRO_SEALED_MAX_PLAIN (4 * 1024 * 1024) /* bytes of a chunked message's plaintext */
#define SPRO_NOISE_CHUNKS_MAX 65                /* chunks of the largest message */
#define SPRO_NOISE_CHUNK_AD_MAX 1024            /* bytes of ad, at most, for these calls */

/* Chunks of a plaintext of len bytes (len <= SPRO_SEALED_MAX_PLAIN). */
size_t spro_noise_chunks(size_t len);

/* Ciphertext bytes of a plaintext of len bytes: len + 16 per chunk. */
size_t spro_noise_chunked_size(size_t len);

/* The layout of a chunked ciphertext of ctlen bytes: sets *plain_len and
 * *chunks and returns 0; SPRO_ETRUNCATED if the last chunk is shorter than
 * a tag (ctlen 0, or ctlen mod SPRO_NOISE_MAX_MESSAGE in 1..15);
 * SPRO_ETOOLONG if the plaintext would exceed SPRO_SEALED_MAX_PLAIN. */
SPRO_MUST_CHECK int spro_noise_chunked_layout(size_t ctlen, size_t *plain_len, size_t *chunks);

/* Seals pt (len bytes, at most SPRO_SEALED_MAX_PLAIN) as a chunked message
 * under nonces n .. n+k-1 into out (outcap bytes, at least
 * spro_noise_chunked_size(len); out must not overlap pt); the counter then
 * continues at n + k.  adlen is below SPRO_NOISE_CHUNK_AD_MAX.  Returns 0;
 * SPRO_ETOOLONG (len, adlen or outcap); SPRO_ERANGE (n below a nonce used
 * before, or n + k - 1 reaches 2^64-1); SPRO_EINTEGRITY if poisoned.
 * Nothing changes on failure. */
SPRO_MUST_CHECK int spro_noise_cipher_encrypt_chunked(struct spro_noise_cipher *cs, uint64_t n,
                                                      const uint8_t *ad, size_t adlen,
                                                      const uint8_t *pt, size_t len, uint8_t *out,
                                                      size_t outcap);

/* Opens a chunked message of len bytes (ct) whose first nonce is n into
 * out (outcap bytes; out must not overlap ct): chunk by chunk, in order,
 * each with spro_noise_cipher_decrypt_with_nonce(), so every nonce n ..
 * n+k-1 is checked against the replay window and recorded.  Sets *plain_len.
 * Returns 0; otherwise the cipher is poisoned, out[0..outcap) zeroed,
 * *plain_len 0, and the result is an error of spro_noise_chunked_layout(),
 * SPRO_ETOOLONG (outcap or adlen) or SPRO_EINTEGRITY (any chunk fails:
 * tampering, a dropped, reordered or spliced chunk, a replay). */
SPRO_MUST_CHECK int spro_noise_cipher_decrypt_chunked(struct spro_noise_cipher *cs, uint64_t n,
                                                      const uint8_t *ad, size_t adlen,
                                                      const uint8_t *ct, size_t len, uint8_t *out,
                                                      size_t outcap, size_t *plain_len);

/* Reserving nonces for a decryption done elsewhere (another thread, with
 * spro_noise_decrypt_detached()): a message of count chunks sealed under
 * the explicit nonces n, n+1, ..., n+count-1 (docs/PROTOCOL.md, "Chunked
 * messages").
 *
 * spro_noise_cipher_reserve() checks each of those nonces in increasing
 * order against the replay window exactly as
 * spro_noise_cipher_decrypt_with_nonce() would, and, if all are fresh,
 * records them all as accepted and copies the cipher's key to key_out
 * (the caller wipes it with spro_memzero() once done).  count is
 * 1..SPRO_NOISE_RESERVE_MAX.  Returns 0; SPRO_EINTEGRITY if one of the
 * nonces was accepted before, is older than the window, or is 2^64-1 (or
 * n + count - 1 overflows), or if the cipher is poisoned: the cipher is
 * poisoned then, key_out zeroed and nothing recorded.  A reserved nonce is
 * spent whether or not its decryption later succeeds: a caller whose
 * detached decryption fails must end the session as after a failed
 * decryption. */
#define SPRO_NOISE_KEY_BYTES 32     /* ChaChaPoly key */
#define SPRO_NOISE_RESERVE_MAX 4096 /* nonces reserved at once, at most */
SPRO_MUST_CHECK int spro_noise_cipher_reserve(struct spro_noise_cipher *cs, uint64_t n,
                                              uint64_t count,
                                              uint8_t key_out[SPRO_NOISE_KEY_BYTES]);

/* DECRYPT(key, n, ad, ct) without a CipherState: no replay check, no
 * state, safe on any thread.  Use only with nonces reserved by
 * spro_noise_cipher_reserve().  Writes len - SPRO_NOISE_TAG_BYTES bytes to
 * out (outcap bytes; out may equal ct).  Returns 0; otherwise out[0..outcap)
 * is zeroed and the result is SPRO_ETOOLONG (len over
 * SPRO_NOISE_MAX_MESSAGE or plaintext over outcap), SPRO_ETRUNCATED (len
 * below SPRO_NOISE_TAG_BYTES) or SPRO_EINTEGRITY (bad tag, key, nonce or
 * ad; n = 2^64-1). */
SPRO_MUST_CHECK int spro_noise_decrypt_detached(const uint8_t key[SPRO_NOISE_KEY_BYTES], uint64_t n,
                                                const uint8_t *ad, size_t adlen, const uint8_t *ct,
                                                size_t len, uint8_t *out, size_t outcap);

/* The same as spro_noise_cipher_decrypt_chunked() with the key of
 * spro_noise_cipher_reserve() and no state: the caller reserved n .. n+k-1
 * first.  Same returns; nothing to poison (the caller ends the session). */
SPRO_MUST_CHECK int spro_noise_decrypt_chunked_detached(const uint8_t key[SPRO_NOISE_KEY_BYTES],
                                                        uint64_t n, const uint8_t *ad, size_t adlen,
                                                        const uint8_t *ct, size_t len, uint8_t *out,
                                                        size_t outcap, size_t *plain_len);

/* Rekey() of spec section 11.3: replaces the key with the first 32 bytes of
 * ENCRYPT(k, 2^64-1, "", 32 zero bytes); the nonce counter is unchanged.
 * Both ends must rekey at the same point of the stream.  Returns 0, or
 * SPRO_EINTEGRITY if poisoned. */
SPRO_MUST_CHECK int spro_noise_cipher_rekey(struct spro_noise_cipher *cs);

/* Wipes and frees a CipherState; accepts NULL. */
void spro_noise_cipher_destroy(struct spro_noise_cipher *cs);

/*
 * Field-level encryption and blind indexes (docs/CRYPTO.md, byte for byte).
 *
 * Key hierarchy.  The master key yields one key-encryption key (KEK) per
 * epoch (epochs count from 1).  Each beneficiary has one random data key,
 * stored only wrapped under the KEK of some epoch, in its own database
 * (keys.db): deleting it erases every field sealed under it.  A wrapped key
 * names its epoch and a sealed field names its data key, so a reader never
 * guesses a key.  Associated data binds a wrapped key to its beneficiary
 * and a sealed field to its record type, record id, field name, schema
 * version and key id: a blob moved anywhere else fails to open.
 *
 * Blind indexes are truncated keyed BLAKE2b of normalised values under a
 * per-index subkey: equality search and duplicate detection without
 * decrypting.  The normalisation and the French phonetic key are pure string
 * functions, ASCII out; their rules are in docs/CRYPTO.md.
 *
 * Identifiers bound into associated data (beneficiary id, record type,
 * record id, field name) are NUL-terminated strings of 1 to
 * SPRO_FIELD_ID_MAX bytes.  Input and output buffers must not overlap.
 * spro_crypto_init() must have succeeded before any of these is called.
 */
#define SPRO_FIELD_FORMAT_V1 0x01  /* first byte of wrapped keys and sealed fields */
#define SPRO_FIELD_NONCE_BYTES 24  /* XChaCha20-Poly1305 nonce */
#define SPRO_FIELD_KEY_ID_BYTES 16 /* names a data key, e.g. the beneficiary's raw UUID */
#define SPRO_FIELD_ID_MAX 255      /* bytes in one identifier bound into associated data */
#define SPRO_WRAPPED_KEY_BYTES 77  /* 0x01 || epoch (4) || nonce (24) || key (32) || tag (16) */
#define SPRO_FIELD_OVERHEAD 57     /* 0x01 || key id (16) || nonce (24) || ... || tag (16) */
#define SPRO_FIELD_MAX_PLAINTEXT (16u << 20) /* bytes of one field value or field set (16 MiB) */
#define SPRO_FIELD_SEALED_BYTES(ptlen) ((size_t)(ptlen) + SPRO_FIELD_OVERHEAD)
#define SPRO_BLIND_INDEX_BYTES 16 /* truncated BLAKE2b-256 */
#define SPRO_INE_CHARS 11         /* a normalised INE, without NUL */
#define SPRO_NAME_MAX 255         /* bytes of a normalised name given to spro_phonetic_fr() */
#define SPRO_PHONETIC_MAX 16      /* characters of a phonetic key, without NUL */
#define SPRO_DEDUP_KEY_MAX (2 * SPRO_PHONETIC_MAX + 12) /* "family|given|YYYY-MM-DD" */

/* The record a sealed field belongs to: every member is bound into the
 * associated data, so the same context must be given to seal and to open. */
struct spro_field_context {
    const char *record_type; /* e.g. "beneficiary"; 1..SPRO_FIELD_ID_MAX bytes */
    const char *record_id;   /* the record's id as stored; 1..SPRO_FIELD_ID_MAX bytes */
    const char *field_name;  /* the field (or field set) sealed; 1..SPRO_FIELD_ID_MAX bytes */
    uint32_t schema_version; /* schema version of the record type, any value */
};

/* The KEK of an epoch: crypto_kdf_derive_from_key(master, subkey id =
 * epoch, context "spro-kek").  Returns 0, or SPRO_ERANGE for epoch 0 (kek
 * is zeroed then). */
SPRO_MUST_CHECK int spro_field_kek_derive(uint8_t kek[SPRO_KEY_BYTES],
                                          const uint8_t master[SPRO_KEY_BYTES], uint32_t epoch);

/* A new random data key. */
void spro_field_key_new(uint8_t dk[SPRO_KEY_BYTES]);

/* Wraps the data key dk of beneficiary_id under kek, the KEK of epoch, with
 * a random nonce.  Returns 0; SPRO_ERANGE for epoch 0; SPRO_EMISSING or
 * SPRO_ETOOLONG for an empty or too long beneficiary_id.  out is zeroed on
 * failure. */
SPRO_MUST_CHECK int spro_field_key_wrap(uint8_t out[SPRO_WRAPPED_KEY_BYTES],
                                        const uint8_t dk[SPRO_KEY_BYTES],
                                        const uint8_t kek[SPRO_KEY_BYTES], uint32_t epoch,
                                        const char *beneficiary_id);

/* Unwraps what spro_field_key_wrap() wrote (len bytes) for beneficiary_id
 * with kek, the KEK of epoch.  Returns 0, or SPRO_EINTEGRITY for anything
 * else: wrong length or version, another epoch named in the blob, altered
 * bytes, another beneficiary, another KEK (dk is zeroed then). */
SPRO_MUST_CHECK int spro_field_key_unwrap(uint8_t dk[SPRO_KEY_BYTES], const uint8_t *in, size_t len,
                                          const uint8_t kek[SPRO_KEY_BYTES], uint32_t epoch,
                                          const char *beneficiary_id);

/* The epoch a wrapped key names (unauthenticated until it is unwrapped), or
 * 0 if in is not a wrapped key of this version. */
uint32_t spro_field_key_epoch(const uint8_t *in, size_t len);

/* Rotation: unwraps in (len bytes) with old_kek of old_epoch and wraps the
 * data key again under new_kek of new_epoch, for the same beneficiary.  The
 * data key only passes through wiped temporaries.  Returns 0, the error of
 * spro_field_key_unwrap() or of spro_field_key_wrap(); out is zeroed on
 * failure. */
SPRO_MUST_CHECK int spro_field_key_rewrap(uint8_t out[SPRO_WRAPPED_KEY_BYTES], const uint8_t *in,
                                          size_t len, const uint8_t old_kek[SPRO_KEY_BYTES],
                                          uint32_t old_epoch, const uint8_t new_kek[SPRO_KEY_BYTES],
                                          uint32_t new_epoch, const char *beneficiary_id);

/* ---- Key-encryption keys and the root key, wrapped (docs/CRYPTO.md,
 * "Key rotation") ----
 * A random KEK (and the root key of a directory whose master key changed)
 * is kept in keys.db wrapped under the key-wrapping subkey of the master
 * key (context SPRO_KDF_CTX_KEY_WRAP):
 *   0x01 || nonce (24) || XChaCha20-Poly1305(key) (32) || tag (16)
 * with associated data "spro-sync kek v1" 0x00 || epoch (4, big-endian),
 * or "spro-sync root v1" 0x00 for the root key. */
#define SPRO_WRAPPED_KEK_BYTES 73

/* The 8-character contexts of crypto_kdf_derive_from_key, one per purpose,
 * all distinct (docs/CRYPTO.md, "Key hierarchy").  Subkeys of the master
 * key itself: */
#define SPRO_KDF_CTX_KEY_WRAP "spro-kwk"    /* wraps KEKs and the root key */
#define SPRO_KDF_CTX_SERVER_KEYS "srvkeys_" /* seals the server's secret keys */
/* Subkeys of the root key (the first master key of the directory): */
#define SPRO_KDF_CTX_KEK "spro-kek"        /* KEK of a derived epoch (epoch 1 of old directories) */
#define SPRO_KDF_CTX_BLIND "spro-bix"      /* blind indexes */
#define SPRO_KDF_CTX_QUARANTINE "quaranti" /* quarantined ops */
#define SPRO_KDF_CTX_ENROL "enrolmnt"      /* enrolment ticket hashes */
#define SPRO_KDF_CTX_AUDIT "spro-aud"      /* the audit chain */

/* Wraps the 32-byte KEK of epoch (1..) under wk, with a random nonce.
 * Returns 0, or SPRO_ERANGE for epoch 0 (out zeroed). */
SPRO_MUST_CHECK int spro_field_kek_wrap(uint8_t out[SPRO_WRAPPED_KEK_BYTES],
                                        const uint8_t kek[SPRO_KEY_BYTES],
                                        const uint8_t wk[SPRO_KEY_BYTES], uint32_t epoch);

/* Unwraps what spro_field_kek_wrap() wrote (len bytes) for epoch.  Returns
 * 0, or SPRO_EINTEGRITY for anything else (wrong length or version, another
 * epoch, another wrapping key, altered bytes; kek zeroed). */
SPRO_MUST_CHECK int spro_field_kek_unwrap(uint8_t kek[SPRO_KEY_BYTES], const uint8_t *in,
                                          size_t len, const uint8_t wk[SPRO_KEY_BYTES],
                                          uint32_t epoch);

/* The same for the root key (associated data "spro-sync root v1" 0x00). */
void spro_field_root_wrap(uint8_t out[SPRO_WRAPPED_KEK_BYTES], const uint8_t root[SPRO_KEY_BYTES],
                          const uint8_t wk[SPRO_KEY_BYTES]);
SPRO_MUST_CHECK int spro_field_root_unwrap(uint8_t root[SPRO_KEY_BYTES], const uint8_t *in,
                                           size_t len, const uint8_t wk[SPRO_KEY_BYTES]);

/* Seals the field value pt (ptlen bytes; NULL if 0) under the data key dk
 * named key_id, for the record and field ctx, with a random nonce.  Writes
 * SPRO_FIELD_SEALED_BYTES(ptlen) bytes to out (cap bytes) and sets *outlen.
 * Returns 0; SPRO_ETOOLONG if ptlen exceeds SPRO_FIELD_MAX_PLAINTEXT, the
 * result exceeds cap, or an identifier of ctx is too long; SPRO_EMISSING if
 * one is empty.  On failure nothing is written and *outlen is 0. */
SPRO_MUST_CHECK int spro_field_seal(uint8_t *out, size_t cap, size_t *outlen, const uint8_t *pt,
                                    size_t ptlen, const struct spro_field_context *ctx,
                                    const uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES],
                                    const uint8_t dk[SPRO_KEY_BYTES]);

/* Opens a sealed field (len bytes) that must belong to ctx and be sealed
 * under the data key dk named key_id.  Writes len - SPRO_FIELD_OVERHEAD
 * bytes to out (cap bytes) and sets *outlen.  Returns 0; SPRO_ETOOLONG if
 * cap is too small for the plaintext; otherwise SPRO_EINTEGRITY for any
 * mismatch: wrong length or version, another key id named in the blob,
 * altered bytes, another record type, record id, field name, schema version
 * or key, or an invalid identifier in ctx.  On failure out[0..cap) is
 * zeroed and *outlen is 0. */
SPRO_MUST_CHECK int spro_field_open(uint8_t *out, size_t cap, size_t *outlen, const uint8_t *in,
                                    size_t len, const struct spro_field_context *ctx,
                                    const uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES],
                                    const uint8_t dk[SPRO_KEY_BYTES]);

/* Copies the key id a sealed field (len bytes) names, unauthenticated
 * until the field is opened.  Returns 0, or SPRO_EINTEGRITY if in is not a
 * sealed field of this version (out is zeroed then). */
SPRO_MUST_CHECK int spro_field_key_id(const uint8_t *in, size_t len,
                                      uint8_t out[SPRO_FIELD_KEY_ID_BYTES]);

/* TEST USE ONLY (known-answer vectors, docs/CRYPTO.md): spro_field_key_wrap()
 * and spro_field_seal() with the given nonce instead of a random one.
 * Reusing a nonce under one key destroys confidentiality and authenticity;
 * production code never calls these.  Same results as the random versions. */
SPRO_MUST_CHECK int spro_field_key_wrap_with_nonce(uint8_t out[SPRO_WRAPPED_KEY_BYTES],
                                                   const uint8_t dk[SPRO_KEY_BYTES],
                                                   const uint8_t kek[SPRO_KEY_BYTES],
                                                   uint32_t epoch, const char *beneficiary_id,
                                                   const uint8_t nonce[SPRO_FIELD_NONCE_BYTES]);
SPRO_MUST_CHECK int spro_field_seal_with_nonce(uint8_t *out, size_t cap, size_t *outlen,
                                               const uint8_t *pt, size_t ptlen,
                                               const struct spro_field_context *ctx,
                                               const uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES],
                                               const uint8_t dk[SPRO_KEY_BYTES],
                                               const uint8_t nonce[SPRO_FIELD_NONCE_BYTES]);

/* The blind-index key: crypto_kdf_derive_from_key(master, subkey id 1,
 * context "spro-bix"). */
void spro_blind_key_derive(uint8_t out[SPRO_KEY_BYTES], const uint8_t master[SPRO_KEY_BYTES]);

/* Blind index of a normalised value (len bytes) in the index index_name
 * (NUL-terminated, e.g. "ine"): the first 16 bytes of BLAKE2b-256 keyed
 * with the index's subkey, itself BLAKE2b-256 keyed with index_key over
 * "spro-sync blind v1" || 0x00 || index_name.  Deterministic; equal values
 * in different indexes give unrelated outputs. */
void spro_blind_index(uint8_t out[SPRO_BLIND_INDEX_BYTES], const uint8_t index_key[SPRO_KEY_BYTES],
                      const char *index_name, const char *normalized, size_t len);

/* Normalises a French INE (national student number): spaces, tabs and
 * dashes removed, letters uppercased.  Writes the 11 characters and a NUL
 * to out (cap bytes).  Returns 11; SPRO_ERANGE if the result is not exactly
 * 11 ASCII letters and digits; SPRO_ETOOLONG if cap is below 12.  On
 * failure out is the empty string (if cap > 0). */
int spro_normalize_ine(const char *in, char *out, size_t cap);

/* Normalises a personal name (UTF-8) to lowercase ASCII letters and single
 * spaces: accented Latin letters folded (é -> e, œ -> oe, ß -> ss, ...),
 * combining marks removed, spaces, hyphens and apostrophes collapsed to one
 * space, trimmed, everything else dropped.  Writes the result and a NUL to
 * out (cap bytes).  Returns its length (0 if no letter remains);
 * SPRO_EBADUTF8 if in is not valid UTF-8; SPRO_ETOOLONG if cap is too
 * small.  On failure out is the empty string (if cap > 0). */
int spro_normalize_name(const char *in, char *out, size_t cap);

/* French phonetic key of a normalised name (what spro_normalize_name()
 * writes: a-z and single spaces, at most SPRO_NAME_MAX bytes), for
 * duplicate detection; rules in docs/CRYPTO.md.  Writes at most
 * SPRO_PHONETIC_MAX characters (a-z, and A E O for nasal vowels) and a NUL
 * to out (cap bytes).  Returns the length (0 for a name without letters);
 * SPRO_ERANGE if in holds another character; SPRO_ETOOLONG if in is too
 * long or cap too small.  On failure out is the empty string (if cap > 0). */
int spro_phonetic_fr(const char *normalized_name, char *out, size_t cap);

/* Duplicate-detection key of a person: phonetic(family) "|"
 * phonetic(given) "|" birth_date, names normalised first, birth_date a
 * valid calendar date "YYYY-MM-DD".  Writes it and a NUL to out (cap bytes;
 * SPRO_DEDUP_KEY_MAX + 1 always suffice).  Returns its length;
 * SPRO_EBADUTF8 or SPRO_ETOOLONG from the name functions; SPRO_EMISSING if
 * a name has no letter; SPRO_ERANGE for a malformed date.  On failure out
 * is the empty string (if cap > 0).  Personal data: give the result to
 * spro_blind_index(), never to a log. */
int spro_dedup_key(const char *family_name, const char *given_name, const char *birth_date,
                   char *out, size_t cap);

/* ---- Audit log (crypto/audit.c; docs/CRYPTO.md, "Audit log") ----
 *
 * Each entry of the audit log is chained to the one before it:
 *   hash = BLAKE2b-256(key = audit key,
 *                      prev hash || "spro-sync audit v1" 0x00 || seq (8) ||
 *                      time_ms (8) || for kind, actor, object, detail:
 *                      length (1) || bytes)
 * integers big-endian; the first entry's prev hash is SPRO_AUDIT_GENESIS
 * (32 zero bytes).  The audit key is a purpose subkey of the master key.
 * A checkpoint {seq, hash, time_ms} is signed with the server's Ed25519
 * key over "spro-sync audit checkpoint v1" 0x00 || seq (8) || hash (32) ||
 * time_ms (8).
 */
#define SPRO_AUDIT_HASH_BYTES 32
#define SPRO_AUDIT_SIG_BYTES 64
#define SPRO_AUDIT_FIELD_MAX 255 /* bytes of kind, actor, object or detail */
#define SPRO_AUDIT_ENCODING_MAX (19 + 16 + 4 * (1 + SPRO_AUDIT_FIELD_MAX))
#define SPRO_AUDIT_CHECKPOINT_MSG_BYTES (30 + 8 + SPRO_AUDIT_HASH_BYTES + 8)

/* One entry, as hashed.  Strings are NUL-terminated; kind and actor 1 to
 * SPRO_AUDIT_FIELD_MAX bytes, object and detail 0 to SPRO_AUDIT_FIELD_MAX. */
struct spro_audit_entry {
    int64_t seq;     /* 1.. */
    int64_t time_ms; /* ms since the Unix epoch, >= 0 */
    const char *kind;
    const char *actor;
    const char *object;
    const char *detail;
};

/* The audit key: crypto_kdf_derive_from_key(master, subkey id 1,
 * context "spro-aud"). */
void spro_audit_key_derive(uint8_t out[SPRO_KEY_BYTES], const uint8_t master[SPRO_KEY_BYTES]);

/* The canonical encoding of e hashed after the previous hash (from the
 * tag on), *outlen bytes.  Returns 0; SPRO_EMISSING for a NULL string;
 * SPRO_ETOOLONG for a string over SPRO_AUDIT_FIELD_MAX; SPRO_ERANGE for
 * seq < 1, time_ms < 0 or an empty kind or actor (*outlen is 0 then). */
SPRO_MUST_CHECK int spro_audit_encode(uint8_t out[SPRO_AUDIT_ENCODING_MAX], size_t *outlen,
                                      const struct spro_audit_entry *e);

/* The hash of entry e chained after prev (see above).  Returns 0, or an
 * error of spro_audit_encode() with out zeroed. */
SPRO_MUST_CHECK int spro_audit_hash(uint8_t out[SPRO_AUDIT_HASH_BYTES],
                                    const uint8_t key[SPRO_KEY_BYTES],
                                    const uint8_t prev[SPRO_AUDIT_HASH_BYTES],
                                    const struct spro_audit_entry *e);

/* The message a checkpoint signature covers (see above). */
void spro_audit_checkpoint_message(uint8_t out[SPRO_AUDIT_CHECKPOINT_MSG_BYTES], int64_t seq,
                                   const uint8_t hash[SPRO_AUDIT_HASH_BYTES], int64_t time_ms);

/* Signs the checkpoint {seq, hash, time_ms} with the Ed25519 secret key sk
 * (deterministic: the same inputs give the same signature). */
void spro_audit_checkpoint_sign(uint8_t sig[SPRO_AUDIT_SIG_BYTES],
                                const uint8_t sk[SPRO_SIGN_SECRET_BYTES], int64_t seq,
                                const uint8_t hash[SPRO_AUDIT_HASH_BYTES], int64_t time_ms);

/* 0 if sig is pk's signature of the checkpoint, else SPRO_EINTEGRITY. */
SPRO_MUST_CHECK int spro_audit_checkpoint_verify(const uint8_t sig[SPRO_AUDIT_SIG_BYTES],
                                                 const uint8_t pk[SPRO_KEY_BYTES], int64_t seq,
                                                 const uint8_t hash[SPRO_AUDIT_HASH_BYTES],
                                                 int64_t time_ms);

/* TEST USE ONLY (known-answer vectors): the Ed25519 key pair of a seed. */
void spro_crypto_sign_seed_keypair(uint8_t pk[SPRO_KEY_BYTES], uint8_t sk[SPRO_SIGN_SECRET_BYTES],
                                   const uint8_t seed[SPRO_KEY_BYTES]);

#endif
