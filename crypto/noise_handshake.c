/*
 * The Noise HandshakeState (spec section 5.3): protocol-name parsing, the
 * table of handshake patterns (sections 7.4-7.6), psk modifiers (section 9)
 * and WriteMessage / ReadMessage / Split.  Built on the SymmetricState of
 * noise_state.c.
 *
 * A handshake is created by spro_noise_handshake_init(), driven by
 * alternating spro_noise_write_message() / spro_noise_read_message() until
 * spro_noise_handshake_done(), then turned into transport ciphers by
 * spro_noise_split().  All secrets live in the one spro_crypto_state_alloc()
 * block of the HandshakeState; local private keys and psks are wiped as
 * soon as the last handshake message is processed, the chaining key when
 * split() hands out the transport keys, everything on a failure that
 * poisons the state and on destroy.
 */
#include "noise_internal.h"

#include <string.h>

#include <sodium.h>

_Static_assert(crypto_scalarmult_BYTES == NOISE_DHLEN, "X25519 output");
_Static_assert(crypto_scalarmult_SCALARBYTES == NOISE_DHLEN, "X25519 scalar");
_Static_assert(SPRO_KEY_BYTES == NOISE_DHLEN, "key size");
_Static_assert(SPRO_NOISE_PSK_BYTES == 32, "psk size");

#define MAX_MESSAGES 4 /* messages in the longest pattern of the table */
#define MAX_TOKENS 8   /* tokens in one message, psk tokens included */
#define MAX_NAME 255   /* bytes in a protocol name */

enum token { TOK_E, TOK_S, TOK_EE, TOK_ES, TOK_SE, TOK_SS, TOK_PSK };

/*
 * One handshake pattern in the spec's notation.  Messages alternate
 * initiator -> responder, responder -> initiator, starting with the
 * initiator; a pattern of one message is one-way.  Pre-messages are "" or
 * "s".
 */
struct pattern_def {
    const char *name;
    const char *pre_i;                  /* initiator's pre-message */
    const char *pre_r;                  /* responder's pre-message */
    const char *msgs[MAX_MESSAGES + 1]; /* NULL-terminated */
};

static const struct pattern_def patterns[] = {
    /* One-way patterns (7.4). */
    {"N", "", "s", {"e, es"}},
    {"K", "s", "s", {"e, es, ss"}},
    {"X", "", "s", {"e, es, s, ss"}},
    /* Fundamental interactive patterns (7.5). */
    {"NN", "", "", {"e", "e, ee"}},
    {"NK", "", "s", {"e, es", "e, ee"}},
    {"NX", "", "", {"e", "e, ee, s, es"}},
    {"KN", "s", "", {"e", "e, ee, se"}},
    {"KK", "s", "s", {"e, es, ss", "e, ee, se"}},
    {"KX", "s", "", {"e", "e, ee, se, s, es"}},
    {"XN", "", "", {"e", "e, ee", "s, se"}},
    {"XK", "", "s", {"e, es", "e, ee", "s, se"}},
    {"XX", "", "", {"e", "e, ee, s, es", "s, se"}},
    {"IN", "", "", {"e, s", "e, ee, se"}},
    {"IK", "", "s", {"e, es, s, ss", "e, ee, se"}},
    {"IX", "", "", {"e, s", "e, ee, se, s, es"}},
    /* Deferred patterns (7.6). */
    {"NK1", "", "s", {"e", "e, ee, es"}},
    {"NX1", "", "", {"e", "e, ee, s", "es"}},
    {"X1N", "", "", {"e", "e, ee", "s", "se"}},
    {"X1K", "", "s", {"e, es", "e, ee", "s", "se"}},
    {"XK1", "", "s", {"e", "e, ee, es", "s, se"}},
    {"X1K1", "", "s", {"e", "e, ee, es", "s", "se"}},
    {"X1X", "", "", {"e", "e, ee, s, es", "s", "se"}},
    {"XX1", "", "", {"e", "e, ee, s", "es, s, se"}},
    {"X1X1", "", "", {"e", "e, ee, s", "es, s", "se"}},
    {"K1N", "s", "", {"e", "e, ee", "se"}},
    {"K1K", "s", "s", {"e, es", "e, ee", "se"}},
    {"KK1", "s", "s", {"e", "e, ee, se, es"}},
    {"K1K1", "s", "s", {"e", "e, ee, es", "se"}},
    {"K1X", "s", "", {"e", "e, ee, s, es", "se"}},
    {"KX1", "s", "", {"e", "e, ee, se, s", "es"}},
    {"K1X1", "s", "", {"e", "e, ee, s", "se, es"}},
    {"I1N", "", "", {"e, s", "e, ee", "se"}},
    {"I1K", "", "s", {"e, es, s", "e, ee", "se"}},
    {"IK1", "", "s", {"e, s", "e, ee, se, es"}},
    {"I1K1", "", "s", {"e, s", "e, ee, es", "se"}},
    {"I1X", "", "", {"e, s", "e, ee, s, es", "se"}},
    {"IX1", "", "", {"e, s", "e, ee, se, s", "es"}},
    {"I1X1", "", "", {"e, s", "e, ee, s", "se, es"}},
};

struct spro_noise_handshake {
    struct spro_noise__symmetric ss;
    uint8_t s_sk[NOISE_DHLEN], s_pk[NOISE_DHLEN];            /* local static, if has_s */
    uint8_t e_sk[NOISE_DHLEN], e_pk[NOISE_DHLEN];            /* local ephemeral, if has_e */
    uint8_t rs[NOISE_DHLEN];                                 /* remote static, if has_rs */
    uint8_t re[NOISE_DHLEN];                                 /* remote ephemeral, if has_re */
    uint8_t psks[SPRO_NOISE_MAX_PSKS][SPRO_NOISE_PSK_BYTES]; /* [0, npsk) */
    uint8_t tokens[MAX_MESSAGES][MAX_TOKENS];                /* enum token, psks applied */
    uint8_t ntokens[MAX_MESSAGES];                           /* 0 .. MAX_TOKENS */
    uint8_t nmessages;                                       /* 1 .. MAX_MESSAGES */
    uint8_t next;                                            /* next message, 0 .. nmessages */
    uint8_t npsk, psk_next;                                  /* 0 .. SPRO_NOISE_MAX_PSKS */
    uint8_t initiator, one_way, psk_mode;
    uint8_t has_s, has_e, has_rs, has_re;
    uint8_t poisoned, split_done;
};

/* ---- protocol names and patterns ------------------------------------- */

/* Parses "e, es, s" into tokens; returns the count, or -1 on a table bug. */
static int parse_tokens(const char *p, uint8_t *out, int max)
{
    static const struct {
        const char *text;
        enum token tok;
    } names[] = {{"e", TOK_E},   {"s", TOK_S},   {"ee", TOK_EE},  {"es", TOK_ES},
                 {"se", TOK_SE}, {"ss", TOK_SS}, {"psk", TOK_PSK}};
    int n = 0;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = 0;
        while (p[len] != '\0' && p[len] != ',' && p[len] != ' ')
            len++;
        if (len == 0)
            break;
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] &&
               !(strlen(names[i].text) == len && memcmp(names[i].text, p, len) == 0))
            i++;
        if (i == sizeof names / sizeof names[0] || n == max)
            return -1;
        out[n++] = (uint8_t)names[i].tok;
        p += len;
    }
    return n;
}

static size_t name_length(const char *s)
{
    size_t n = 0;
    while (n <= MAX_NAME && s[n] != '\0')
        n++;
    return n;
}

static int is_pattern_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * Parses "Noise_<pattern>_25519_ChaChaPoly_BLAKE2b" into hs->tokens,
 * hs->nmessages and hs->one_way.  Sets *npsk_tokens.  Returns 0 or
 * SPRO_ECONFIG.
 */
static int parse_name(struct spro_noise_handshake *hs, const char *name, size_t len,
                      const struct pattern_def **def_out, size_t *npsk_tokens)
{
    static const char prefix[] = "Noise_";
    static const char suffix[] = "_25519_ChaChaPoly_BLAKE2b";
    const size_t plen = sizeof prefix - 1, slen = sizeof suffix - 1;

    if (len <= plen + slen || memcmp(name, prefix, plen) != 0 ||
        memcmp(name + len - slen, suffix, slen) != 0)
        return SPRO_ECONFIG;
    const char *p = name + plen, *end = name + len - slen;

    /* Base pattern: upper-case letters and digits. */
    size_t blen = 0;
    while (p + blen < end && is_pattern_char(p[blen]))
        blen++;
    const struct pattern_def *def = NULL;
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        if (strlen(patterns[i].name) == blen && memcmp(patterns[i].name, p, blen) == 0)
            def = &patterns[i];
    if (def == NULL)
        return SPRO_ECONFIG;
    p += blen;

    memset(hs->ntokens, 0, sizeof hs->ntokens);
    hs->nmessages = 0;
    while (hs->nmessages < MAX_MESSAGES && def->msgs[hs->nmessages] != NULL) {
        int n = parse_tokens(def->msgs[hs->nmessages], hs->tokens[hs->nmessages], MAX_TOKENS);
        if (n <= 0)
            return SPRO_ECONFIG; /* unreachable: the table is fixed */
        hs->ntokens[hs->nmessages++] = (uint8_t)n;
    }
    hs->one_way = hs->nmessages == 1;

    /* Modifiers: "psk<N>" joined by '+'. */
    unsigned seen = 0; /* bit N: pskN present */
    *npsk_tokens = 0;
    while (p < end) {
        if (*npsk_tokens > 0) {
            if (*p != '+')
                return SPRO_ECONFIG;
            p++;
        }
        if (end - p < 4 || memcmp(p, "psk", 3) != 0 || p[3] < '0' || p[3] > '9')
            return SPRO_ECONFIG;
        unsigned pos = (unsigned)(p[3] - '0');
        p += 4;
        if (pos > hs->nmessages || (seen & (1u << pos)) || *npsk_tokens == SPRO_NOISE_MAX_PSKS)
            return SPRO_ECONFIG;
        seen |= 1u << pos;
        unsigned m = pos == 0 ? 0 : pos - 1;
        if (hs->ntokens[m] == MAX_TOKENS)
            return SPRO_ECONFIG;
        if (pos == 0) { /* psk0: first token of the first message */
            memmove(hs->tokens[0] + 1, hs->tokens[0], hs->ntokens[0]);
            hs->tokens[0][0] = TOK_PSK;
        } else { /* pskN: last token of message N */
            hs->tokens[m][hs->ntokens[m]] = TOK_PSK;
        }
        hs->ntokens[m]++;
        (*npsk_tokens)++;
    }
    *def_out = def;
    return 0;
}

/* 1 if the local side writes message i. */
static int local_writes(const struct spro_noise_handshake *hs, unsigned i)
{
    return (i % 2 == 0) == (hs->initiator != 0);
}

/* 1 if the local static key is needed: sent, pre-known, or in a DH. */
static int needs_local_static(const struct spro_noise_handshake *hs, const struct pattern_def *def)
{
    if (strchr(hs->initiator ? def->pre_i : def->pre_r, 's') != NULL)
        return 1;
    for (unsigned i = 0; i < hs->nmessages; i++)
        for (unsigned t = 0; t < hs->ntokens[i]; t++) {
            uint8_t tok = hs->tokens[i][t];
            if (tok == TOK_SS || (tok == TOK_S && local_writes(hs, i)) ||
                (tok == TOK_SE && hs->initiator) || (tok == TOK_ES && !hs->initiator))
                return 1;
        }
    return 0;
}

/* ---- handshake ------------------------------------------------------- */

/* Wipes every secret the handshake still holds except the chaining key
 * and the handshake-phase cipher (local private keys, psks). */
static void wipe_handshake_secrets(struct spro_noise_handshake *hs)
{
    sodium_memzero(hs->s_sk, sizeof hs->s_sk);
    sodium_memzero(hs->e_sk, sizeof hs->e_sk);
    sodium_memzero(hs->psks, sizeof hs->psks);
}

/* Poisons: wipes all keys; every later call fails with SPRO_EINTEGRITY. */
static void poison(struct spro_noise_handshake *hs)
{
    wipe_handshake_secrets(hs);
    sodium_memzero(&hs->ss, sizeof hs->ss);
    hs->ss.cs.poisoned = 1;
    hs->poisoned = 1;
}

int spro_noise_handshake_init(struct spro_noise_handshake **hs_out, const char *protocol_name,
                              int initiator, const uint8_t *prologue, size_t prologue_len,
                              const uint8_t *s, const uint8_t *rs, const uint8_t *psks, size_t npsk)
{
    *hs_out = NULL;
    if (protocol_name == NULL || (prologue == NULL && prologue_len > 0))
        return SPRO_ECONFIG;
    size_t len = name_length(protocol_name);
    if (len > MAX_NAME)
        return SPRO_ECONFIG;

    struct spro_noise_handshake *hs = spro_crypto_state_alloc(sizeof *hs);
    memset(hs, 0, sizeof *hs);
    hs->initiator = initiator != 0;

    const struct pattern_def *def = NULL;
    size_t npsk_tokens = 0;
    int err = parse_name(hs, protocol_name, len, &def, &npsk_tokens);
    if (err != 0)
        goto fail;

    /* Keys: exactly those the pattern uses. */
    int want_rs = strchr(hs->initiator ? def->pre_r : def->pre_i, 's') != NULL;
    err = SPRO_ECONFIG;
    if ((s != NULL) != needs_local_static(hs, def) || (rs != NULL) != want_rs ||
        npsk != npsk_tokens || (npsk > 0 && psks == NULL))
        goto fail;
    if (s != NULL) {
        memcpy(hs->s_sk, s, NOISE_DHLEN);
        if (crypto_scalarmult_base(hs->s_pk, hs->s_sk) != 0)
            goto fail;
        hs->has_s = 1;
    }
    if (rs != NULL) {
        memcpy(hs->rs, rs, NOISE_DHLEN);
        hs->has_rs = 1;
    }
    if (npsk > 0)
        memcpy(hs->psks, psks, npsk * SPRO_NOISE_PSK_BYTES);
    hs->npsk = (uint8_t)npsk;
    hs->psk_mode = npsk > 0;

    spro_noise__symmetric_init(&hs->ss, protocol_name, len);
    spro_noise__mix_hash(&hs->ss, prologue, prologue_len);
    /* Pre-messages: the initiator's keys first. */
    if (strchr(def->pre_i, 's') != NULL)
        spro_noise__mix_hash(&hs->ss, hs->initiator ? hs->s_pk : hs->rs, NOISE_DHLEN);
    if (strchr(def->pre_r, 's') != NULL)
        spro_noise__mix_hash(&hs->ss, hs->initiator ? hs->rs : hs->s_pk, NOISE_DHLEN);

    *hs_out = hs;
    return 0;

fail:
    spro_noise_handshake_destroy(hs);
    return err;
}

int spro_noise_handshake_set_ephemeral(struct spro_noise_handshake *hs,
                                       const uint8_t e_sk[SPRO_KEY_BYTES])
{
    if (hs->poisoned)
        return SPRO_EINTEGRITY;
    if (hs->has_e || hs->next == hs->nmessages)
        return SPRO_EBADMSGTYPE;
    memcpy(hs->e_sk, e_sk, NOISE_DHLEN);
    if (crypto_scalarmult_base(hs->e_pk, hs->e_sk) != 0) {
        sodium_memzero(hs->e_sk, sizeof hs->e_sk);
        return SPRO_ECONFIG;
    }
    hs->has_e = 1;
    return 0;
}

/*
 * Bytes of message i before the payload, and whether a key is set for the
 * payload (it then carries a tag).  Follows the key schedule without
 * touching the state, so sizes can be checked before anything changes.
 */
static size_t message_overhead(const struct spro_noise_handshake *hs, unsigned i,
                               int *payload_keyed)
{
    int keyed = hs->ss.cs.has_key;
    size_t n = 0;
    for (unsigned t = 0; t < hs->ntokens[i]; t++) {
        switch (hs->tokens[i][t]) {
        case TOK_E:
            n += NOISE_DHLEN;
            if (hs->psk_mode)
                keyed = 1;
            break;
        case TOK_S:
            n += NOISE_DHLEN + (keyed ? NOISE_TAGLEN : 0);
            break;
        default: /* ee, es, se, ss, psk */
            keyed = 1;
            break;
        }
    }
    *payload_keyed = keyed;
    return n;
}

/* Performs a DH token and MixKey()s its output.  Returns 0, SPRO_EINTEGRITY
 * for a zero output, or SPRO_EINTERNAL if a key is missing (a pattern the
 * table should not contain). */
static int dh_token(struct spro_noise_handshake *hs, uint8_t tok)
{
    int local_e, remote_e;
    switch (tok) {
    case TOK_EE:
        local_e = 1, remote_e = 1;
        break;
    case TOK_ES: /* initiator's e with responder's s */
        local_e = hs->initiator, remote_e = !hs->initiator;
        break;
    case TOK_SE: /* initiator's s with responder's e */
        local_e = !hs->initiator, remote_e = hs->initiator;
        break;
    default: /* TOK_SS */
        local_e = 0, remote_e = 0;
        break;
    }
    if (!(local_e ? hs->has_e : hs->has_s) || !(remote_e ? hs->has_re : hs->has_rs))
        return SPRO_EINTERNAL;
    const uint8_t *sk = local_e ? hs->e_sk : hs->s_sk;
    const uint8_t *pk = remote_e ? hs->re : hs->rs;

    uint8_t out[NOISE_DHLEN];
    int bad = crypto_scalarmult(out, sk, pk) != 0;
    bad |= sodium_is_zero(out, sizeof out);
    if (!bad)
        spro_noise__mix_key(&hs->ss, out, sizeof out);
    sodium_memzero(out, sizeof out);
    return bad ? SPRO_EINTEGRITY : 0;
}

/* MixKeyAndHash()s the next psk.  Returns 0, or SPRO_EINTERNAL if none is
 * left (unreachable: init checks npsk against the pattern). */
static int psk_token(struct spro_noise_handshake *hs)
{
    if (hs->psk_next >= hs->npsk)
        return SPRO_EINTERNAL;
    spro_noise__mix_key_and_hash(&hs->ss, hs->psks[hs->psk_next], SPRO_NOISE_PSK_BYTES);
    hs->psk_next++;
    return 0;
}

/* After the last message: the local private keys and psks are done. */
static void message_done(struct spro_noise_handshake *hs)
{
    hs->next++;
    if (hs->next == hs->nmessages)
        wipe_handshake_secrets(hs);
}

int spro_noise_write_message(struct spro_noise_handshake *hs, const uint8_t *payload, size_t len,
                             uint8_t *out, size_t outcap, size_t *outlen)
{
    *outlen = 0;
    if (hs->poisoned)
        return SPRO_EINTEGRITY;
    if (hs->next == hs->nmessages || !local_writes(hs, hs->next))
        return SPRO_EBADMSGTYPE;

    int keyed;
    size_t total = message_overhead(hs, hs->next, &keyed);
    if (len > SPRO_NOISE_MAX_MESSAGE)
        return SPRO_ETOOLONG;
    total += len + (keyed ? NOISE_TAGLEN : 0);
    if (total > SPRO_NOISE_MAX_MESSAGE || total > outcap)
        return SPRO_ETOOLONG;

    uint8_t *p = out;
    int err = 0;
    for (unsigned t = 0; t < hs->ntokens[hs->next] && err == 0; t++) {
        uint8_t tok = hs->tokens[hs->next][t];
        switch (tok) {
        case TOK_E:
            if (!hs->has_e) {
                randombytes_buf(hs->e_sk, sizeof hs->e_sk);
                if (crypto_scalarmult_base(hs->e_pk, hs->e_sk) != 0) {
                    err = SPRO_EINTERNAL;
                    break;
                }
                hs->has_e = 1;
            }
            memcpy(p, hs->e_pk, NOISE_DHLEN);
            p += NOISE_DHLEN;
            spro_noise__mix_hash(&hs->ss, hs->e_pk, NOISE_DHLEN);
            if (hs->psk_mode)
                spro_noise__mix_key(&hs->ss, hs->e_pk, NOISE_DHLEN);
            break;
        case TOK_S: {
            size_t n = NOISE_DHLEN + (hs->ss.cs.has_key ? NOISE_TAGLEN : 0);
            err = hs->has_s ? spro_noise__encrypt_and_hash(&hs->ss, hs->s_pk, NOISE_DHLEN, p)
                            : SPRO_EINTERNAL;
            p += n;
            break;
        }
        case TOK_PSK:
            err = psk_token(hs);
            break;
        default:
            err = dh_token(hs, tok);
            break;
        }
    }
    if (err == 0)
        err = spro_noise__encrypt_and_hash(&hs->ss, payload, len, p);
    if (err != 0) {
        poison(hs);
        sodium_memzero(out, total);
        return err;
    }
    *outlen = total;
    message_done(hs);
    return 0;
}

/* A read failure: poison, zero the payload buffer. */
static int read_fail(struct spro_noise_handshake *hs, uint8_t *payload_out, size_t cap, int err)
{
    poison(hs);
    if (payload_out != NULL && cap > 0)
        sodium_memzero(payload_out, cap);
    return err;
}

int spro_noise_read_message(struct spro_noise_handshake *hs, const uint8_t *msg, size_t len,
                            uint8_t *payload_out, size_t cap, size_t *plen)
{
    *plen = 0;
    if (hs->poisoned)
        return read_fail(hs, payload_out, cap, SPRO_EINTEGRITY);
    if (hs->next == hs->nmessages || local_writes(hs, hs->next))
        return SPRO_EBADMSGTYPE;
    if (len > SPRO_NOISE_MAX_MESSAGE)
        return read_fail(hs, payload_out, cap, SPRO_ETOOLONG);

    int keyed;
    size_t fixed = message_overhead(hs, hs->next, &keyed);
    size_t tag = keyed ? NOISE_TAGLEN : 0;
    if (len < fixed + tag)
        return read_fail(hs, payload_out, cap, SPRO_ETRUNCATED);
    size_t payload_len = len - fixed - tag;
    if (payload_len > cap)
        return read_fail(hs, payload_out, cap, SPRO_ETOOLONG);

    const uint8_t *p = msg;
    int err = 0;
    for (unsigned t = 0; t < hs->ntokens[hs->next] && err == 0; t++) {
        uint8_t tok = hs->tokens[hs->next][t];
        switch (tok) {
        case TOK_E:
            memcpy(hs->re, p, NOISE_DHLEN);
            hs->has_re = 1;
            p += NOISE_DHLEN;
            spro_noise__mix_hash(&hs->ss, hs->re, NOISE_DHLEN);
            if (hs->psk_mode)
                spro_noise__mix_key(&hs->ss, hs->re, NOISE_DHLEN);
            break;
        case TOK_S: {
            size_t n = NOISE_DHLEN + (hs->ss.cs.has_key ? NOISE_TAGLEN : 0);
            err = spro_noise__decrypt_and_hash(&hs->ss, p, n, hs->rs);
            if (err == 0)
                hs->has_rs = 1;
            p += n;
            break;
        }
        case TOK_PSK:
            err = psk_token(hs);
            break;
        default:
            err = dh_token(hs, tok);
            break;
        }
    }
    if (err == 0)
        err = spro_noise__decrypt_and_hash(&hs->ss, p, payload_len + tag, payload_out);
    if (err != 0)
        return read_fail(hs, payload_out, cap, err);
    *plen = payload_len;
    message_done(hs);
    return 0;
}

int spro_noise_handshake_done(const struct spro_noise_handshake *hs)
{
    return !hs->poisoned && hs->next == hs->nmessages;
}

int spro_noise_handshake_hash(const struct spro_noise_handshake *hs,
                              uint8_t out[SPRO_NOISE_HASH_BYTES])
{
    int err = hs->poisoned ? SPRO_EINTEGRITY : hs->next < hs->nmessages ? SPRO_EBADMSGTYPE : 0;
    if (err != 0)
        memset(out, 0, SPRO_NOISE_HASH_BYTES);
    else
        memcpy(out, hs->ss.h, SPRO_NOISE_HASH_BYTES);
    return err;
}

int spro_noise_handshake_remote_static(const struct spro_noise_handshake *hs,
                                       uint8_t out[SPRO_KEY_BYTES])
{
    int err = hs->poisoned ? SPRO_EINTEGRITY : !hs->has_rs ? SPRO_ENOENT : 0;
    if (err != 0)
        memset(out, 0, SPRO_KEY_BYTES);
    else
        memcpy(out, hs->rs, SPRO_KEY_BYTES);
    return err;
}

int spro_noise_split(struct spro_noise_handshake *hs, struct spro_noise_cipher **send_out,
                     struct spro_noise_cipher **recv_out)
{
    *send_out = NULL;
    *recv_out = NULL;
    if (hs->poisoned)
        return SPRO_EINTEGRITY;
    if (hs->next < hs->nmessages || hs->split_done)
        return SPRO_EBADMSGTYPE;

    struct spro_noise_cipher *c1 = spro_crypto_state_alloc(sizeof *c1);
    struct spro_noise_cipher *c2 = spro_crypto_state_alloc(sizeof *c2);
    spro_noise__symmetric_split(&hs->ss, c1, c2);
    sodium_memzero(hs->ss.ck, sizeof hs->ss.ck);
    sodium_memzero(&hs->ss.cs, sizeof hs->ss.cs);
    hs->split_done = 1;

    if (hs->one_way) { /* only c1, initiator to responder */
        spro_noise_cipher_destroy(c2);
        c2 = NULL;
    }
    *send_out = hs->initiator ? c1 : c2;
    *recv_out = hs->initiator ? c2 : c1;
    return 0;
}

void spro_noise_handshake_destroy(struct spro_noise_handshake *hs)
{
    if (hs == NULL)
        return;
    spro_crypto_state_free(hs, sizeof *hs);
}
