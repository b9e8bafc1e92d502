/*
 * field.c: field-level encryption and blind indexes for data at rest.
 *
 * Wrapped data keys, sealed field values, blind indexes, and the string
 * functions that prepare values for blind indexes (INE and name
 * normalisation, a French phonetic key, the duplicate-detection key).  The
 * byte formats and the rules are specified in docs/CRYPTO.md, whose
 * known-answer examples tests/unit/test_field.c checks.  The store (sync/)
 * keeps the bytes; this file only computes them.  Pure, no I/O.
 */
#include "crypto.h"

#include <string.h>

#include <sodium.h>

_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == SPRO_FIELD_NONCE_BYTES, "nonce");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == SPRO_KEY_BYTES, "aead key");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == 16, "tag");
_Static_assert(SPRO_WRAPPED_KEY_BYTES == 1 + 4 + SPRO_FIELD_NONCE_BYTES + SPRO_KEY_BYTES + 16,
               "wrapped key size");
_Static_assert(SPRO_FIELD_OVERHEAD == 1 + SPRO_FIELD_KEY_ID_BYTES + SPRO_FIELD_NONCE_BYTES + 16,
               "field overhead");
_Static_assert(crypto_generichash_KEYBYTES == SPRO_KEY_BYTES, "blake2b key");
_Static_assert(SPRO_DEDUP_KEY_MAX == SPRO_PHONETIC_MAX + 1 + SPRO_PHONETIC_MAX + 1 + 10,
               "dedup key size");

#define TAG_BYTES 16

/* Domain labels of the associated data and blind-index subkeys; each is
 * followed by a 0x00 byte where it is used. */
#define DK_LABEL "spro-sync dk v1"
#define FIELD_LABEL "spro-sync field v1"
#define BLIND_LABEL "spro-sync blind v1"

/* Offsets in a wrapped key: version || epoch || nonce || ciphertext || tag. */
#define WRAP_EPOCH 1
#define WRAP_NONCE 5
#define WRAP_CT (WRAP_NONCE + SPRO_FIELD_NONCE_BYTES)

/* Offsets in a sealed field: version || key id || nonce || ciphertext || tag. */
#define FIELD_KEY_ID 1
#define FIELD_NONCE (FIELD_KEY_ID + SPRO_FIELD_KEY_ID_BYTES)
#define FIELD_CT (FIELD_NONCE + SPRO_FIELD_NONCE_BYTES)

#define DK_AD_MAX (sizeof DK_LABEL + 4 + SPRO_FIELD_ID_MAX)
#define FIELD_AD_MAX                                                                               \
    (sizeof FIELD_LABEL + 3 * (SPRO_FIELD_ID_MAX + 1) + 4 + SPRO_FIELD_KEY_ID_BYTES)

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Length of an identifier bound into associated data: 1..SPRO_FIELD_ID_MAX,
 * or SPRO_EMISSING / SPRO_ETOOLONG. */
static int id_length(const char *id, size_t *len)
{
    if (id == NULL || id[0] == '\0')
        return SPRO_EMISSING;
    size_t n = strnlen(id, SPRO_FIELD_ID_MAX + 1);
    if (n > SPRO_FIELD_ID_MAX)
        return SPRO_ETOOLONG;
    *len = n;
    return 0;
}

/* ---- Key-encryption keys and wrapped data keys ---- */

int spro_field_kek_derive(uint8_t kek[SPRO_KEY_BYTES], const uint8_t master[SPRO_KEY_BYTES],
                          uint32_t epoch)
{
    if (epoch == 0) {
        sodium_memzero(kek, SPRO_KEY_BYTES);
        return SPRO_ERANGE;
    }
    spro_crypto_derive(kek, master, epoch, "spro-kek");
    return 0;
}

void spro_field_key_new(uint8_t dk[SPRO_KEY_BYTES])
{
    randombytes_buf(dk, SPRO_KEY_BYTES);
}

/* "spro-sync dk v1" || 0x00 || epoch (4, big-endian) || beneficiary id. */
static int dk_ad(uint8_t ad[DK_AD_MAX], size_t *adlen, uint32_t epoch, const char *beneficiary_id)
{
    size_t idlen;
    int err = id_length(beneficiary_id, &idlen);
    if (err != 0)
        return err;
    memcpy(ad, DK_LABEL, sizeof DK_LABEL); /* with its NUL: the 0x00 separator */
    put_be32(ad + sizeof DK_LABEL, epoch);
    memcpy(ad + sizeof DK_LABEL + 4, beneficiary_id, idlen);
    *adlen = sizeof DK_LABEL + 4 + idlen;
    return 0;
}

int spro_field_key_wrap_with_nonce(uint8_t out[SPRO_WRAPPED_KEY_BYTES],
                                   const uint8_t dk[SPRO_KEY_BYTES],
                                   const uint8_t kek[SPRO_KEY_BYTES], uint32_t epoch,
                                   const char *beneficiary_id,
                                   const uint8_t nonce[SPRO_FIELD_NONCE_BYTES])
{
    uint8_t ad[DK_AD_MAX];
    size_t adlen = 0;
    int err = epoch == 0 ? SPRO_ERANGE : dk_ad(ad, &adlen, epoch, beneficiary_id);
    if (err != 0) {
        sodium_memzero(out, SPRO_WRAPPED_KEY_BYTES);
        return err;
    }
    out[0] = SPRO_FIELD_FORMAT_V1;
    put_be32(out + WRAP_EPOCH, epoch);
    memcpy(out + WRAP_NONCE, nonce, SPRO_FIELD_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + WRAP_CT, NULL, dk, SPRO_KEY_BYTES, ad, adlen,
                                               NULL, out + WRAP_NONCE, kek);
    return 0;
}

int spro_field_key_wrap(uint8_t out[SPRO_WRAPPED_KEY_BYTES], const uint8_t dk[SPRO_KEY_BYTES],
                        const uint8_t kek[SPRO_KEY_BYTES], uint32_t epoch,
                        const char *beneficiary_id)
{
    uint8_t nonce[SPRO_FIELD_NONCE_BYTES];
    randombytes_buf(nonce, sizeof nonce);
    return spro_field_key_wrap_with_nonce(out, dk, kek, epoch, beneficiary_id, nonce);
}

int spro_field_key_unwrap(uint8_t dk[SPRO_KEY_BYTES], const uint8_t *in, size_t len,
                          const uint8_t kek[SPRO_KEY_BYTES], uint32_t epoch,
                          const char *beneficiary_id)
{
    uint8_t ad[DK_AD_MAX];
    size_t adlen;
    /* The epoch is not secret: checking it before the tag is not a leak. */
    if (len != SPRO_WRAPPED_KEY_BYTES || in[0] != SPRO_FIELD_FORMAT_V1 || epoch == 0 ||
        get_be32(in + WRAP_EPOCH) != epoch || dk_ad(ad, &adlen, epoch, beneficiary_id) != 0 ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(dk, NULL, NULL, in + WRAP_CT,
                                                   SPRO_KEY_BYTES + TAG_BYTES, ad, adlen,
                                                   in + WRAP_NONCE, kek) != 0) {
        sodium_memzero(dk, SPRO_KEY_BYTES);
        return SPRO_EINTEGRITY;
    }
    return 0;
}

uint32_t spro_field_key_epoch(const uint8_t *in, size_t len)
{
    if (len != SPRO_WRAPPED_KEY_BYTES || in[0] != SPRO_FIELD_FORMAT_V1)
        return 0;
    return get_be32(in + WRAP_EPOCH);
}

int spro_field_key_rewrap(uint8_t out[SPRO_WRAPPED_KEY_BYTES], const uint8_t *in, size_t len,
                          const uint8_t old_kek[SPRO_KEY_BYTES], uint32_t old_epoch,
                          const uint8_t new_kek[SPRO_KEY_BYTES], uint32_t new_epoch,
                          const char *beneficiary_id)
{
    uint8_t dk[SPRO_KEY_BYTES];
    int err = spro_field_key_unwrap(dk, in, len, old_kek, old_epoch, beneficiary_id);
    if (err == 0)
        err = spro_field_key_wrap(out, dk, new_kek, new_epoch, beneficiary_id);
    else
        sodium_memzero(out, SPRO_WRAPPED_KEY_BYTES);
    sodium_memzero(dk, sizeof dk);
    return err;
}

/* ---- Wrapped KEKs and root key ---- */

#define KEK_LABEL "spro-sync kek v1"
#define ROOT_LABEL "spro-sync root v1"
#define WRAPPED_SECRET_CT (1 + SPRO_FIELD_NONCE_BYTES)
_Static_assert(SPRO_WRAPPED_KEK_BYTES == 1 + SPRO_FIELD_NONCE_BYTES + SPRO_KEY_BYTES + TAG_BYTES,
               "wrapped KEK size");

/* label || 0x00 || epoch (4, big-endian) when with_epoch. */
static size_t secret_ad(uint8_t ad[32], const char *label, size_t labelsz, int with_epoch,
                        uint32_t epoch)
{
    memcpy(ad, label, labelsz); /* with its NUL */
    if (!with_epoch)
        return labelsz;
    put_be32(ad + labelsz, epoch);
    return labelsz + 4;
}

static void secret_wrap(uint8_t out[SPRO_WRAPPED_KEK_BYTES], const uint8_t key[SPRO_KEY_BYTES],
                        const uint8_t wk[SPRO_KEY_BYTES], const uint8_t *ad, size_t adlen)
{
    out[0] = SPRO_FIELD_FORMAT_V1;
    randombytes_buf(out + 1, SPRO_FIELD_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + WRAPPED_SECRET_CT, NULL, key, SPRO_KEY_BYTES,
                                               ad, adlen, NULL, out + 1, wk);
}

static int secret_unwrap(uint8_t key[SPRO_KEY_BYTES], const uint8_t *in, size_t len,
                         const uint8_t wk[SPRO_KEY_BYTES], const uint8_t *ad, size_t adlen)
{
    if (len != SPRO_WRAPPED_KEK_BYTES || in[0] != SPRO_FIELD_FORMAT_V1 ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(key, NULL, NULL, in + WRAPPED_SECRET_CT,
                                                   SPRO_KEY_BYTES + TAG_BYTES, ad, adlen, in + 1,
                                                   wk) != 0) {
        sodium_memzero(key, SPRO_KEY_BYTES);
        return SPRO_EINTEGRITY;
    }
    return 0;
}

int spro_field_kek_wrap(uint8_t out[SPRO_WRAPPED_KEK_BYTES], const uint8_t kek[SPRO_KEY_BYTES],
                        const uint8_t wk[SPRO_KEY_BYTES], uint32_t epoch)
{
    if (epoch == 0) {
        sodium_memzero(out, SPRO_WRAPPED_KEK_BYTES);
        return SPRO_ERANGE;
    }
    uint8_t ad[32];
    secret_wrap(out, kek, wk, ad, secret_ad(ad, KEK_LABEL, sizeof KEK_LABEL, 1, epoch));
    return 0;
}

int spro_field_kek_unwrap(uint8_t kek[SPRO_KEY_BYTES], const uint8_t *in, size_t len,
                          const uint8_t wk[SPRO_KEY_BYTES], uint32_t epoch)
{
    uint8_t ad[32];
    if (epoch == 0) {
        sodium_memzero(kek, SPRO_KEY_BYTES);
        return SPRO_EINTEGRITY;
    }
    return secret_unwrap(kek, in, len, wk, ad,
                         secret_ad(ad, KEK_LABEL, sizeof KEK_LABEL, 1, epoch));
}

void spro_field_root_wrap(uint8_t out[SPRO_WRAPPED_KEK_BYTES], const uint8_t root[SPRO_KEY_BYTES],
                          const uint8_t wk[SPRO_KEY_BYTES])
{
    uint8_t ad[32];
    secret_wrap(out, root, wk, ad, secret_ad(ad, ROOT_LABEL, sizeof ROOT_LABEL, 0, 0));
}

int spro_field_root_unwrap(uint8_t root[SPRO_KEY_BYTES], const uint8_t *in, size_t len,
                           const uint8_t wk[SPRO_KEY_BYTES])
{
    uint8_t ad[32];
    return secret_unwrap(root, in, len, wk, ad, secret_ad(ad, ROOT_LABEL, sizeof ROOT_LABEL, 0, 0));
}

/* ---- Sealed field values ---- */

/* "spro-sync field v1" || 0x00 || record type || 0x00 || record id || 0x00 ||
 * field name || 0x00 || schema version (4, big-endian) || key id.
 * Identifiers hold no NUL, so the separators make the encoding injective. */
static int field_ad(uint8_t ad[FIELD_AD_MAX], size_t *adlen, const struct spro_field_context *ctx,
                    const uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES])
{
    const char *ids[3] = {ctx->record_type, ctx->record_id, ctx->field_name};
    size_t n = sizeof FIELD_LABEL;
    memcpy(ad, FIELD_LABEL, sizeof FIELD_LABEL);
    for (int i = 0; i < 3; i++) {
        size_t idlen;
        int err = id_length(ids[i], &idlen);
        if (err != 0)
            return err;
        memcpy(ad + n, ids[i], idlen);
        n += idlen;
        ad[n++] = 0x00;
    }
    put_be32(ad + n, ctx->schema_version);
    n += 4;
    memcpy(ad + n, key_id, SPRO_FIELD_KEY_ID_BYTES);
    *adlen = n + SPRO_FIELD_KEY_ID_BYTES;
    return 0;
}

int spro_field_seal_with_nonce(uint8_t *out, size_t cap, size_t *outlen, const uint8_t *pt,
                               size_t ptlen, const struct spro_field_context *ctx,
                               const uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES],
                               const uint8_t dk[SPRO_KEY_BYTES],
                               const uint8_t nonce[SPRO_FIELD_NONCE_BYTES])
{
    static const uint8_t empty[1];
    uint8_t ad[FIELD_AD_MAX];
    size_t adlen;
    *outlen = 0;
    if (ptlen > SPRO_FIELD_MAX_PLAINTEXT || cap < SPRO_FIELD_SEALED_BYTES(ptlen))
        return SPRO_ETOOLONG;
    int err = field_ad(ad, &adlen, ctx, key_id);
    if (err != 0)
        return err;
    out[0] = SPRO_FIELD_FORMAT_V1;
    memcpy(out + FIELD_KEY_ID, key_id, SPRO_FIELD_KEY_ID_BYTES);
    memcpy(out + FIELD_NONCE, nonce, SPRO_FIELD_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + FIELD_CT, NULL, ptlen ? pt : empty, ptlen, ad,
                                               adlen, NULL, out + FIELD_NONCE, dk);
    *outlen = SPRO_FIELD_SEALED_BYTES(ptlen);
    return 0;
}

int spro_field_seal(uint8_t *out, size_t cap, size_t *outlen, const uint8_t *pt, size_t ptlen,
                    const struct spro_field_context *ctx,
                    const uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES], const uint8_t dk[SPRO_KEY_BYTES])
{
    uint8_t nonce[SPRO_FIELD_NONCE_BYTES];
    randombytes_buf(nonce, sizeof nonce);
    return spro_field_seal_with_nonce(out, cap, outlen, pt, ptlen, ctx, key_id, dk, nonce);
}

static int field_well_formed(const uint8_t *in, size_t len)
{
    return len >= SPRO_FIELD_OVERHEAD && len <= SPRO_FIELD_SEALED_BYTES(SPRO_FIELD_MAX_PLAINTEXT) &&
           in[0] == SPRO_FIELD_FORMAT_V1;
}

int spro_field_open(uint8_t *out, size_t cap, size_t *outlen, const uint8_t *in, size_t len,
                    const struct spro_field_context *ctx,
                    const uint8_t key_id[SPRO_FIELD_KEY_ID_BYTES], const uint8_t dk[SPRO_KEY_BYTES])
{
    uint8_t ad[FIELD_AD_MAX], scratch[1];
    size_t adlen, ptlen;
    int err = SPRO_EINTEGRITY;
    *outlen = 0;
    /* Key ids are not secret; the constant-time comparison is only habit. */
    if (!field_well_formed(in, len) ||
        sodium_memcmp(in + FIELD_KEY_ID, key_id, SPRO_FIELD_KEY_ID_BYTES) != 0 ||
        field_ad(ad, &adlen, ctx, key_id) != 0)
        goto fail;
    ptlen = len - SPRO_FIELD_OVERHEAD;
    if (cap < ptlen) {
        err = SPRO_ETOOLONG;
        goto fail;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(ptlen ? out : scratch, NULL, NULL, in + FIELD_CT,
                                                   len - FIELD_CT, ad, adlen, in + FIELD_NONCE,
                                                   dk) != 0)
        goto fail;
    *outlen = ptlen;
    return 0;
fail:
    if (cap > 0)
        sodium_memzero(out, cap);
    return err;
}

int spro_field_key_id(const uint8_t *in, size_t len, uint8_t out[SPRO_FIELD_KEY_ID_BYTES])
{
    if (!field_well_formed(in, len)) {
        sodium_memzero(out, SPRO_FIELD_KEY_ID_BYTES);
        return SPRO_EINTEGRITY;
    }
    memcpy(out, in + FIELD_KEY_ID, SPRO_FIELD_KEY_ID_BYTES);
    return 0;
}

/* ---- Blind indexes ---- */

void spro_blind_key_derive(uint8_t out[SPRO_KEY_BYTES], const uint8_t master[SPRO_KEY_BYTES])
{
    spro_crypto_derive(out, master, 1, "spro-bix");
}

void spro_blind_index(uint8_t out[SPRO_BLIND_INDEX_BYTES], const uint8_t index_key[SPRO_KEY_BYTES],
                      const char *index_name, const char *normalized, size_t len)
{
    crypto_generichash_state st;
    uint8_t subkey[32], h[32];
    crypto_generichash_init(&st, index_key, SPRO_KEY_BYTES, sizeof subkey);
    crypto_generichash_update(&st, (const uint8_t *)BLIND_LABEL, sizeof BLIND_LABEL);
    crypto_generichash_update(&st, (const uint8_t *)index_name, strlen(index_name));
    crypto_generichash_final(&st, subkey, sizeof subkey);
    crypto_generichash_init(&st, subkey, sizeof subkey, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)normalized, len);
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(out, h, SPRO_BLIND_INDEX_BYTES);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(subkey, sizeof subkey);
    sodium_memzero(h, sizeof h);
}

/* ---- Normalisation ---- */

static int set_empty(char *out, size_t cap, int err)
{
    if (cap > 0)
        out[0] = '\0';
    return err;
}

static int is_lower(int c)
{
    return c >= 'a' && c <= 'z';
}

static int is_upper(int c)
{
    return c >= 'A' && c <= 'Z';
}

int spro_normalize_ine(const char *in, char *out, size_t cap)
{
    char buf[SPRO_INE_CHARS];
    size_t n = 0;
    for (const char *p = in; *p != '\0'; p++) {
        int c = (unsigned char)*p;
        if (c == ' ' || c == '\t' || c == '-')
            continue;
        if (!is_lower(c) && !is_upper(c) && !(c >= '0' && c <= '9'))
            return set_empty(out, cap, SPRO_ERANGE);
        if (n == SPRO_INE_CHARS)
            return set_empty(out, cap, SPRO_ERANGE);
        buf[n++] = (char)(is_lower(c) ? c - 'a' + 'A' : c);
    }
    if (n != SPRO_INE_CHARS)
        return set_empty(out, cap, SPRO_ERANGE);
    if (cap < SPRO_INE_CHARS + 1)
        return set_empty(out, cap, SPRO_ETOOLONG);
    memcpy(out, buf, SPRO_INE_CHARS);
    out[SPRO_INE_CHARS] = '\0';
    return SPRO_INE_CHARS;
}

/* Decodes one UTF-8 code point at *p and advances *p.  Returns the code
 * point, or -1 for an invalid sequence (overlong, surrogate, beyond
 * U+10FFFF, truncated). */
static long utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    unsigned long cp;
    int n;
    if (s[0] < 0x80) {
        *p = s + 1;
        return s[0];
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        cp = s[0] & 0x1f, n = 1;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        cp = s[0] & 0x0f, n = 2;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        cp = s[0] & 0x07, n = 3;
    } else {
        return -1;
    }
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *p = s + n + 1;
    return (long)cp;
}

/* Base letters of U+00C0..U+00FF and U+0100..U+017F: '*' marks the
 * two-letter foldings handled in fold(), '.' a non-letter (dropped). */
static const char latin1[] = "aaaaaa*ceeeeiiiidnooooo.ouuuuy**"
                             "aaaaaa*ceeeeiiiidnooooo.ouuuuy*y";
static const char latin_ext_a[] = "aaaaaaccccccccdd"
                                  "ddeeeeeeeeeegggg"
                                  "gggghhhhiiiiiiii"
                                  "ii**jjkkklllllll"
                                  "lllnnnnnnnnnoooo"
                                  "oo**rrrrrrssssss"
                                  "ssttttttuuuuuuuu"
                                  "uuuuwwyyyzzzzzzs";
_Static_assert(sizeof latin1 == 64 + 1 && sizeof latin_ext_a == 128 + 1, "fold tables");

enum { FOLD_DROP, FOLD_SPACE, FOLD_LETTERS };

/* Classifies code point cp: a separator (FOLD_SPACE), dropped (FOLD_DROP),
 * or letters (FOLD_LETTERS, the 1 or 2 lowercase ASCII letters written to
 * s, NUL-terminated). */
static int fold(long cp, char s[3])
{
    s[1] = s[2] = '\0';
    if (cp < 0x80) {
        if (is_upper((int)cp))
            cp += 'a' - 'A';
        if (is_lower((int)cp)) {
            s[0] = (char)cp;
            return FOLD_LETTERS;
        }
        return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' ||
                       cp == '-' || cp == '\''
                   ? FOLD_SPACE
                   : FOLD_DROP;
    }
    switch (cp) {
    case 0x00a0: /* no-break space */
    case 0x02bc: /* modifier letter apostrophe */
    case 0x2010: /* hyphen */
    case 0x2011: /* non-breaking hyphen */
    case 0x2012: /* figure dash */
    case 0x2013: /* en dash */
    case 0x2014: /* em dash */
    case 0x2018: /* left single quotation mark */
    case 0x2019: /* right single quotation mark (typographic apostrophe) */
    case 0x202f: /* narrow no-break space */
        return FOLD_SPACE;
    case 0x00c6: /* Æ */
    case 0x00e6: /* æ */
        memcpy(s, "ae", 2);
        return FOLD_LETTERS;
    case 0x00de: /* Þ */
    case 0x00fe: /* þ */
        memcpy(s, "th", 2);
        return FOLD_LETTERS;
    case 0x00df: /* ß */
        memcpy(s, "ss", 2);
        return FOLD_LETTERS;
    case 0x0132: /* Ĳ */
    case 0x0133: /* ĳ */
        memcpy(s, "ij", 2);
        return FOLD_LETTERS;
    case 0x0152: /* Œ */
    case 0x0153: /* œ */
        memcpy(s, "oe", 2);
        return FOLD_LETTERS;
    case 0x01a0: /* Ơ */
    case 0x01a1: /* ơ */
        s[0] = 'o';
        return FOLD_LETTERS;
    case 0x01af: /* Ư */
    case 0x01b0: /* ư */
        s[0] = 'u';
        return FOLD_LETTERS;
    case 0x0218: /* Ș */
    case 0x0219: /* ș */
        s[0] = 's';
        return FOLD_LETTERS;
    case 0x021a: /* Ț */
    case 0x021b: /* ț */
        s[0] = 't';
        return FOLD_LETTERS;
    }
    char c = '.';
    if (cp >= 0x00c0 && cp <= 0x00ff)
        c = latin1[cp - 0x00c0];
    else if (cp >= 0x0100 && cp <= 0x017f)
        c = latin_ext_a[cp - 0x0100];
    else if (cp >= 0x1ea0 && cp <= 0x1ef9) /* Vietnamese letters, in blocks by base letter */
        c = "aeiouy"[(cp > 0x1eb7) + (cp > 0x1ec7) + (cp > 0x1ecb) + (cp > 0x1ee3) + (cp > 0x1ef1)];
    if (c == '.')
        return FOLD_DROP; /* combining marks, digits, other scripts, symbols */
    s[0] = c;
    return FOLD_LETTERS;
}

int spro_normalize_name(const char *in, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t n = 0;
    int space = 0;
    while (*p != '\0') {
        long cp = utf8_next(&p);
        if (cp < 0)
            return set_empty(out, cap, SPRO_EBADUTF8);
        char s[3];
        switch (fold(cp, s)) {
        case FOLD_SPACE:
            space = n > 0;
            break;
        case FOLD_LETTERS:
            for (size_t i = 0; s[i] != '\0'; i++) {
                if (n + space + 1 >= cap)
                    return set_empty(out, cap, SPRO_ETOOLONG);
                if (space)
                    out[n++] = ' ', space = 0;
                out[n++] = s[i];
            }
            break;
        }
    }
    if (cap == 0)
        return SPRO_ETOOLONG;
    out[n] = '\0';
    return (int)n;
}

/* ---- French phonetic key ---- */

static int is_vowel(int c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

static int is_front(int c) /* c, g soften before these */
{
    return c == 'e' || c == 'i' || c == 'y';
}

/* Appends the phonetic key being built: drops a character equal to the last
 * one and anything beyond SPRO_PHONETIC_MAX. */
struct key {
    char s[SPRO_PHONETIC_MAX + 1];
    size_t n;
};

static void emit(struct key *k, char c)
{
    if (k->n > 0 && k->s[k->n - 1] == c)
        return;
    if (k->n < SPRO_PHONETIC_MAX)
        k->s[k->n++] = c;
}

/* Letter i of a word w[0..n), or 0 beyond its end. */
static int at(const char *w, size_t n, size_t i)
{
    return i < n ? w[i] : 0;
}

/* The vowel before letter i is nasal: letter i is an n or m that is last or
 * followed by a consonant, except nn, mm and mn (Anne, Emma, Amnon). */
static int nasal(const char *w, size_t n, size_t i)
{
    int c = at(w, n, i), next = at(w, n, i + 1);
    if (c != 'n' && c != 'm')
        return 0;
    return next == 0 || (!is_vowel(next) && next != 'n' && !(c == 'm' && next == 'm'));
}

/* Codes the letters w[0..end) of a word w[0..n) (silent h removed; end
 * excludes the silent ending) into k, left to right; the first matching
 * rule of each letter applies.  Lookahead sees the whole word, silent
 * ending included, so "Martine" is not nasal and "Georges" ends soft. */
static void code_word(const char *w, size_t n, size_t end, struct key *k)
{
    size_t i = 0;
#define AT(j) at(w, n, i + (j))
    while (i < end) {
        int c = w[i];
        switch (c) {
        case 'e':
            if (AT(1) == 'a' && AT(2) == 'u')
                emit(k, 'o'), i += 3;
            else if (AT(1) == 'a' && nasal(w, n, i + 2))
                emit(k, 'A'), i += 3;
            else if (AT(1) == 'i' && nasal(w, n, i + 2))
                emit(k, 'E'), i += 3;
            else if (AT(1) == 'i' || AT(1) == 'y' || AT(1) == 'u')
                emit(k, 'e'), i += 2;
            else if (nasal(w, n, i + 1))
                emit(k, i > 0 && (w[i - 1] == 'i' || w[i - 1] == 'y') ? 'E' : 'A'), i += 2;
            else
                emit(k, 'e'), i += 1;
            break;
        case 'a':
            if (AT(1) == 'i' && nasal(w, n, i + 2))
                emit(k, 'E'), i += 3;
            else if (AT(1) == 'i' || AT(1) == 'y')
                emit(k, 'e'), i += 2;
            else if (AT(1) == 'u')
                emit(k, 'o'), i += 2;
            else if (nasal(w, n, i + 1))
                emit(k, 'A'), i += 2;
            else
                emit(k, 'a'), i += 1;
            break;
        case 'o':
            if (AT(1) == 'i' && nasal(w, n, i + 2))
                emit(k, 'w'), emit(k, 'E'), i += 3;
            else if (AT(1) == 'i' || AT(1) == 'y')
                emit(k, 'w'), emit(k, 'a'), i += 2;
            else if (AT(1) == 'u')
                emit(k, 'u'), i += 2;
            else if (nasal(w, n, i + 1))
                emit(k, 'O'), i += 2;
            else
                emit(k, 'o'), i += 1;
            break;
        case 'u':
            if (nasal(w, n, i + 1))
                emit(k, 'E'), i += 2;
            else
                emit(k, 'u'), i += 1;
            break;
        case 'i':
        case 'y':
            if (nasal(w, n, i + 1))
                emit(k, 'E'), i += 2;
            else
                emit(k, 'i'), i += 1;
            break;
        case 'b':
            if (AT(1) != 'v') /* Lefebvre */
                emit(k, 'b');
            i += 1;
            break;
        case 'c':
            if (AT(1) == 'h' && (AT(2) == 'r' || AT(2) == 'l'))
                emit(k, 'k'), i += 2;
            else if (AT(1) == 'h')
                emit(k, 'S'), i += 2;
            else
                emit(k, is_front(AT(1)) ? 's' : 'k'), i += 1;
            break;
        case 'g':
            if (AT(1) == 'u' && is_front(AT(2)))
                emit(k, 'g'), i += 2;
            else if (AT(1) == 'e' && (AT(2) == 'a' || AT(2) == 'o' || AT(2) == 'u'))
                emit(k, 'j'), i += 2;
            else if (AT(1) == 'n')
                emit(k, 'n'), emit(k, 'i'), i += 2;
            else if (AT(1) == 'h')
                emit(k, 'g'), i += 2;
            else
                emit(k, is_front(AT(1)) ? 'j' : 'g'), i += 1;
            break;
        case 'p':
            if (AT(1) == 'h')
                emit(k, 'f'), i += 2;
            else
                emit(k, 'p'), i += 1;
            break;
        case 'q':
            emit(k, 'k'), i += AT(1) == 'u' ? 2 : 1;
            break;
        case 's':
            if (AT(1) == 'c' && AT(2) == 'h')
                emit(k, 'S'), i += 3;
            else if (AT(1) == 'h')
                emit(k, 'S'), i += 2;
            else
                emit(k, i > 0 && is_vowel(w[i - 1]) && is_vowel(AT(1)) ? 'z' : 's'), i += 1;
            break;
        case 't':
            emit(k, 't'), i += AT(1) == 'h' ? 2 : 1;
            break;
        case 'h':
            i += 1; /* silent */
            break;
        case 'w':
            emit(k, 'v'), i += 1;
            break;
        case 'x':
            emit(k, 'k'), emit(k, 's'), i += 1;
            break;
        default: /* d f j k l m n r v z */
            emit(k, (char)c), i += 1;
            break;
        }
    }
#undef AT
}

/* Silent ending of a word w[0..n): one final s or x goes; then a final e
 * (or ee) goes, and if it did the word is done; otherwise one final t or d
 * goes.  A word never drops below two letters.  Returns the length left. */
static size_t silent_ending(const char *w, size_t n)
{
    if (n > 2 && (w[n - 1] == 's' || w[n - 1] == 'x'))
        n--;
    if (n > 2 && w[n - 1] == 'e') {
        n--;
        if (n > 2 && w[n - 1] == 'e')
            n--;
        return n;
    }
    if (n > 2 && (w[n - 1] == 't' || w[n - 1] == 'd'))
        n--;
    return n;
}

int spro_phonetic_fr(const char *normalized_name, char *out, size_t cap)
{
    size_t len = strnlen(normalized_name, SPRO_NAME_MAX + 1);
    if (len > SPRO_NAME_MAX)
        return set_empty(out, cap, SPRO_ETOOLONG);
    for (size_t i = 0; i < len; i++)
        if (!is_lower(normalized_name[i]) && normalized_name[i] != ' ')
            return set_empty(out, cap, SPRO_ERANGE);

    struct key k = {.n = 0};
    char w[SPRO_NAME_MAX];
    size_t i = 0;
    while (i < len) {
        if (normalized_name[i] == ' ') {
            i++;
            continue;
        }
        /* One word, without its silent h (an h not after c, g, p, s or t). */
        size_t n = 0;
        for (; i < len && normalized_name[i] != ' '; i++) {
            char c = normalized_name[i];
            if (c == 'h' && (n == 0 || strchr("cgpst", w[n - 1]) == NULL))
                continue;
            w[n++] = c;
        }
        code_word(w, n, silent_ending(w, n), &k);
    }
    sodium_memzero(w, sizeof w);
    int result = (int)k.n;
    if (cap < k.n + 1) {
        result = set_empty(out, cap, SPRO_ETOOLONG);
    } else {
        memcpy(out, k.s, k.n);
        out[k.n] = '\0';
    }
    sodium_memzero(&k, sizeof k);
    return result;
}

/* ---- Duplicate-detection key ---- */

static int valid_date(const char *d)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (d[i] != '-')
                return 0;
        } else if (d[i] < '0' || d[i] > '9') {
            return 0;
        }
    }
    if (d[10] != '\0')
        return 0;
    int y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
    int m = (d[5] - '0') * 10 + (d[6] - '0'), day = (d[8] - '0') * 10 + (d[9] - '0');
    if (m < 1 || m > 12 || day < 1 || day > days[m - 1])
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && day == 29 && !leap);
}

/* phonetic(normalize(name)) into out (SPRO_PHONETIC_MAX + 1 bytes). */
static int name_key(const char *name, char out[SPRO_PHONETIC_MAX + 1])
{
    char norm[SPRO_NAME_MAX + 1];
    int n = spro_normalize_name(name, norm, sizeof norm);
    if (n >= 0)
        n = spro_phonetic_fr(norm, out, SPRO_PHONETIC_MAX + 1);
    sodium_memzero(norm, sizeof norm);
    return n == 0 ? SPRO_EMISSING : n;
}

int spro_dedup_key(const char *family_name, const char *given_name, const char *birth_date,
                   char *out, size_t cap)
{
    char family[SPRO_PHONETIC_MAX + 1], given[SPRO_PHONETIC_MAX + 1];
    char key[SPRO_DEDUP_KEY_MAX + 1];
    int err = name_key(family_name, family);
    if (err >= 0)
        err = name_key(given_name, given);
    if (err >= 0 && !valid_date(birth_date))
        err = SPRO_ERANGE;
    size_t n = 0;
    if (err >= 0) {
        n = strlen(family);
        memcpy(key, family, n);
        key[n++] = '|';
        memcpy(key + n, given, strlen(given));
        n += strlen(given);
        key[n++] = '|';
        memcpy(key + n, birth_date, 10);
        n += 10;
        key[n] = '\0';
        if (cap < n + 1)
            err = SPRO_ETOOLONG;
        else
            memcpy(out, key, n + 1);
    }
    sodium_memzero(family, sizeof family);
    sodium_memzero(given, sizeof given);
    sodium_memzero(key, sizeof key);
    return err < 0 ? set_empty(out, cap, err) : (int)n;
}
