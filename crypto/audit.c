/*
 * audit.c: the cryptography of the audit log (docs/CRYPTO.md, "Audit
 * log"): the audit key, the keyed BLAKE2b chain of entries, and the
 * Ed25519 signatures of checkpoints.
 *
 * Pure: sync/audit.c reads and writes the rows, this file only computes.
 * An entry's hash covers the previous entry's hash and a canonical,
 * length-prefixed encoding of the entry, so that any change to a row, a
 * row moved to another sequence number, or a row removed from the middle
 * of the chain makes the recomputed hash differ from the stored one.
 */
#include "crypto.h"

#include <string.h>

#include <sodium.h>

#define AUDIT_CTX "spro-aud"
#define ENTRY_TAG "spro-sync audit v1"                 /* then 0x00 */
#define CHECKPOINT_TAG "spro-sync audit checkpoint v1" /* then 0x00 */

_Static_assert(crypto_generichash_BYTES == SPRO_AUDIT_HASH_BYTES, "audit hash size");
_Static_assert(crypto_sign_BYTES == SPRO_AUDIT_SIG_BYTES, "audit signature size");
_Static_assert(sizeof CHECKPOINT_TAG + 8 + SPRO_AUDIT_HASH_BYTES + 8 ==
                   SPRO_AUDIT_CHECKPOINT_MSG_BYTES,
               "checkpoint message size");

void spro_audit_key_derive(uint8_t out[SPRO_KEY_BYTES], const uint8_t master[SPRO_KEY_BYTES])
{
    crypto_kdf_derive_from_key(out, SPRO_KEY_BYTES, 1, AUDIT_CTX, master);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Appends len (one byte) and s to out at *o. */
static void put_field(uint8_t *out, size_t *o, const char *s, size_t len)
{
    out[(*o)++] = (uint8_t)len;
    memcpy(out + *o, s, len);
    *o += len;
}

int spro_audit_encode(uint8_t out[SPRO_AUDIT_ENCODING_MAX], size_t *outlen,
                      const struct spro_audit_entry *e)
{
    *outlen = 0;
    const char *f[4] = {e->kind, e->actor, e->object, e->detail};
    size_t len[4];
    for (int i = 0; i < 4; i++) {
        if (f[i] == NULL)
            return SPRO_EMISSING;
        if ((len[i] = strlen(f[i])) > SPRO_AUDIT_FIELD_MAX)
            return SPRO_ETOOLONG;
    }
    if (e->seq < 1 || e->time_ms < 0 || len[0] == 0 || len[1] == 0)
        return SPRO_ERANGE;
    size_t o = 0;
    memcpy(out, ENTRY_TAG, sizeof ENTRY_TAG); /* with its NUL: the 0x00 separator */
    o += sizeof ENTRY_TAG;
    put_be64(out + o, (uint64_t)e->seq);
    put_be64(out + o + 8, (uint64_t)e->time_ms);
    o += 16;
    for (int i = 0; i < 4; i++)
        put_field(out, &o, f[i], len[i]);
    *outlen = o;
    return 0;
}

int spro_audit_hash(uint8_t out[SPRO_AUDIT_HASH_BYTES], const uint8_t key[SPRO_KEY_BYTES],
                    const uint8_t prev[SPRO_AUDIT_HASH_BYTES], const struct spro_audit_entry *e)
{
    uint8_t enc[SPRO_AUDIT_ENCODING_MAX];
    size_t n;
    memset(out, 0, SPRO_AUDIT_HASH_BYTES);
    int rc = spro_audit_encode(enc, &n, e);
    if (rc != 0)
        return rc;
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, SPRO_KEY_BYTES, SPRO_AUDIT_HASH_BYTES);
    crypto_generichash_update(&st, prev, SPRO_AUDIT_HASH_BYTES);
    crypto_generichash_update(&st, enc, n);
    crypto_generichash_final(&st, out, SPRO_AUDIT_HASH_BYTES);
    sodium_memzero(&st, sizeof st);
    return 0;
}

void spro_audit_checkpoint_message(uint8_t out[SPRO_AUDIT_CHECKPOINT_MSG_BYTES], int64_t seq,
                                   const uint8_t hash[SPRO_AUDIT_HASH_BYTES], int64_t time_ms)
{
    size_t o = sizeof CHECKPOINT_TAG; /* with its NUL: the 0x00 separator */
    memcpy(out, CHECKPOINT_TAG, o);
    put_be64(out + o, (uint64_t)seq);
    memcpy(out + o + 8, hash, SPRO_AUDIT_HASH_BYTES);
    put_be64(out + o + 8 + SPRO_AUDIT_HASH_BYTES, (uint64_t)time_ms);
}

void spro_audit_checkpoint_sign(uint8_t sig[SPRO_AUDIT_SIG_BYTES],
                                const uint8_t sk[SPRO_SIGN_SECRET_BYTES], int64_t seq,
                                const uint8_t hash[SPRO_AUDIT_HASH_BYTES], int64_t time_ms)
{
    uint8_t m[SPRO_AUDIT_CHECKPOINT_MSG_BYTES];
    spro_audit_checkpoint_message(m, seq, hash, time_ms);
    crypto_sign_detached(sig, NULL, m, sizeof m, sk);
}

int spro_audit_checkpoint_verify(const uint8_t sig[SPRO_AUDIT_SIG_BYTES],
                                 const uint8_t pk[SPRO_KEY_BYTES], int64_t seq,
                                 const uint8_t hash[SPRO_AUDIT_HASH_BYTES], int64_t time_ms)
{
    uint8_t m[SPRO_AUDIT_CHECKPOINT_MSG_BYTES];
    spro_audit_checkpoint_message(m, seq, hash, time_ms);
    return crypto_sign_verify_detached(sig, m, sizeof m, pk) == 0 ? 0 : SPRO_EINTEGRITY;
}

void spro_crypto_sign_seed_keypair(uint8_t pk[SPRO_KEY_BYTES], uint8_t sk[SPRO_SIGN_SECRET_BYTES],
                                   const uint8_t seed[SPRO_KEY_BYTES])
{
    crypto_sign_seed_keypair(pk, sk, seed);
}
