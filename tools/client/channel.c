/*
 * channel.c: see channel.h.  The framing is docs/PROTOCOL.md, "Sealed
 * requests", byte for byte:
 *
 *   request body   session id (16) || counter (8, big-endian) || chunks
 *   request AD     "spro-sync/1 req" 0x00 method 0x00 path 0x00 session id
 *   response body  counter (8, big-endian) || chunks
 *   response AD    "spro-sync/1 res" 0x00 method 0x00 path 0x00 session id
 *                  || request counter (8, big-endian)
 *
 * where the chunks are the plaintext sealed as a chunked message
 * (crypto/crypto.h, "Chunked messages"): chunk i under the counter + i,
 * with the AD above followed by 0x01 for every chunk but the last, and the
 * Noise nonce of each counter (crypto/ builds it: 4 zero bytes || counter
 * little-endian).
 */
#include "channel.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define AD_REQ "spro-sync/1 req"
#define AD_RES "spro-sync/1 res"
#define HANDSHAKE1_OVERHEAD (32 + 32 + 16 + 16) /* e, encrypted s, payload tag */

struct spro_client_channel {
    struct spro_noise_handshake *hs; /* until the session opens */
    struct spro_noise_cipher *tx;    /* device -> server, after welcome */
    struct spro_noise_cipher *rx;    /* server -> device, after welcome */
    uint8_t session[SPRO_CLIENT_SESSION_BYTES];
    bool hello_sent;
    bool open;             /* welcome read: tx, rx and session are set */
    bool dead;             /* an authentication failed: nothing works any more */
    bool pending;          /* a sealed request waits for its answer */
    bool answered;         /* some answer was opened: last_answer is meaningful */
    uint64_t next_counter; /* counter of the next request, from 0 */
    uint64_t last_answer;  /* highest response counter opened (of its last chunk) */
    struct spro_buf ad;    /* associated data of the pending request's answer */
    uint8_t *plain; /* decrypted payloads (plain_cap bytes, 0..SPRO_SEALED_MAX_PLAIN, grown on
                       demand); wiped when the channel dies or is destroyed */
    size_t plain_cap;
};

/* Wipes and frees the plaintext buffer. */
static void drop_plain(struct spro_client_channel *ch)
{
    if (ch->plain != NULL)
        spro_memzero(ch->plain, ch->plain_cap);
    free(ch->plain);
    ch->plain = NULL;
    ch->plain_cap = 0;
}

/* Makes the plaintext buffer hold at least n bytes (the old one wiped). */
static void need_plain(struct spro_client_channel *ch, size_t n)
{
    if (n <= ch->plain_cap && ch->plain != NULL)
        return;
    drop_plain(ch);
    size_t cap = n < SPRO_NOISE_MAX_MESSAGE ? SPRO_NOISE_MAX_MESSAGE : n;
    if ((ch->plain = malloc(cap)) == NULL)
        SPRO_BUG("out of memory");
    ch->plain_cap = cap;
}

int spro_client_channel_create(struct spro_client_channel **out,
                               const uint8_t server_pk[SPRO_KEY_BYTES],
                               const uint8_t device_sk[SPRO_KEY_BYTES])
{
    *out = NULL;
    struct spro_client_channel *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        SPRO_BUG("out of memory");
    uint8_t prologue[sizeof SPRO_CLIENT_PROLOGUE - 1 + SPRO_KEY_BYTES];
    memcpy(prologue, SPRO_CLIENT_PROLOGUE, sizeof SPRO_CLIENT_PROLOGUE - 1);
    memcpy(prologue + sizeof SPRO_CLIENT_PROLOGUE - 1, server_pk, SPRO_KEY_BYTES);
    int rc = spro_noise_handshake_init(&ch->hs, SPRO_CLIENT_PROTOCOL, 1, prologue, sizeof prologue,
                                       device_sk, server_pk, NULL, 0);
    if (rc != 0) {
        free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

void spro_client_channel_destroy(struct spro_client_channel *ch)
{
    if (ch == NULL)
        return;
    spro_noise_handshake_destroy(ch->hs);
    spro_noise_cipher_destroy(ch->tx);
    spro_noise_cipher_destroy(ch->rx);
    spro_buf_free(&ch->ad);
    drop_plain(ch);
    spro_memzero(ch, sizeof *ch);
    free(ch);
}

/* Marks the channel dead and drops its keys: authentication failed. */
static int poison(struct spro_client_channel *ch)
{
    ch->dead = true;
    ch->open = false;
    ch->pending = false;
    spro_noise_handshake_destroy(ch->hs);
    spro_noise_cipher_destroy(ch->tx);
    spro_noise_cipher_destroy(ch->rx);
    ch->hs = NULL;
    ch->tx = ch->rx = NULL;
    drop_plain(ch);
    return SPRO_EINTEGRITY;
}

static void wipe_buf(struct spro_buf *b)
{
    if (b->data != NULL)
        spro_memzero(b->data, b->cap);
    spro_buf_free(b);
}

int spro_client_channel_hello(struct spro_client_channel *ch, const struct spro_msg *hello,
                              struct spro_buf *msg1)
{
    if (hello->type != SPRO_MSG_HELLO)
        SPRO_BUG("spro_client_channel_hello: not a hello");
    if (ch->dead)
        return SPRO_EINTEGRITY;
    if (ch->hello_sent)
        return SPRO_EBADMSGTYPE;
    struct spro_buf pt = {0};
    int rc = spro_proto_encode(hello, &pt);
    if (rc == 0 && pt.len > SPRO_CLIENT_HELLO_MAX)
        rc = SPRO_ETOOLONG;
    uint8_t out[HANDSHAKE1_OVERHEAD + SPRO_CLIENT_HELLO_MAX];
    size_t outlen = 0;
    if (rc == 0)
        rc = spro_noise_write_message(ch->hs, pt.data, pt.len, out, sizeof out, &outlen);
    wipe_buf(&pt);
    if (rc != 0)
        return rc;
    ch->hello_sent = true;
    spro_buf_append(msg1, out, outlen);
    return 0;
}

int spro_client_channel_welcome(struct spro_client_channel *ch, const uint8_t *msg2, size_t len,
                                struct spro_msg *m)
{
    if (ch->dead)
        return SPRO_EINTEGRITY;
    if (!ch->hello_sent || ch->open || ch->hs == NULL)
        return SPRO_EBADMSGTYPE;
    size_t plen = 0;
    need_plain(ch, SPRO_NOISE_MAX_MESSAGE);
    int rc = spro_noise_read_message(ch->hs, msg2, len, ch->plain, ch->plain_cap, &plen);
    if (rc == SPRO_EBADMSGTYPE)
        return rc;
    if (rc != 0)
        return poison(ch); /* too long, truncated or not authentic: all the same to us */
    /* Authentic from here on: only the holder of the pinned key wrote it. */
    if ((rc = spro_proto_decode(ch->plain, plen, m)) != 0)
        return rc;
    if (m->type == SPRO_MSG_WIPE || m->type == SPRO_MSG_ERROR)
        return 0; /* an order or an authenticated refusal: no session */
    if (m->type != SPRO_MSG_WELCOME)
        return SPRO_EBADMSGTYPE;
    if (m->u.welcome.session.len != SPRO_CLIENT_SESSION_BYTES)
        return SPRO_ERANGE;
    if ((rc = spro_noise_split(ch->hs, &ch->tx, &ch->rx)) != 0)
        return poison(ch);
    memcpy(ch->session, m->u.welcome.session.p, SPRO_CLIENT_SESSION_BYTES);
    spro_noise_handshake_destroy(ch->hs);
    ch->hs = NULL;
    ch->open = true;
    return 0;
}

const uint8_t *spro_client_channel_session(const struct spro_client_channel *ch)
{
    return ch->open ? ch->session : NULL;
}

static void put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

/* label 0x00 method 0x00 path 0x00 session id */
static void build_ad(struct spro_buf *ad, const char *label, const char *method, const char *path,
                     const uint8_t session[SPRO_CLIENT_SESSION_BYTES])
{
    static const uint8_t zero = 0;
    ad->len = 0;
    spro_buf_append(ad, label, strlen(label));
    spro_buf_append(ad, &zero, 1);
    spro_buf_append(ad, method, strlen(method));
    spro_buf_append(ad, &zero, 1);
    spro_buf_append(ad, path, strlen(path));
    spro_buf_append(ad, &zero, 1);
    spro_buf_append(ad, session, SPRO_CLIENT_SESSION_BYTES);
}

int spro_client_channel_seal(struct spro_client_channel *ch, const char *method, const char *path,
                             const struct spro_msg *req, struct spro_buf *out)
{
    if (ch->dead)
        return SPRO_EINTEGRITY;
    if (!ch->open)
        return SPRO_EBADMSGTYPE;
    struct spro_buf pt = {0};
    int rc = spro_proto_encode(req, &pt);
    if (rc == 0 && pt.len > SPRO_SEALED_MAX_PLAIN)
        rc = SPRO_ETOOLONG;
    size_t chunks = rc == 0 ? spro_noise_chunks(pt.len) : 0;
    if (rc == 0 && ch->next_counter > UINT64_MAX - chunks)
        rc = SPRO_ERANGE; /* 2^64-1 is never valid */
    if (rc != 0) {
        wipe_buf(&pt);
        return rc;
    }
    uint64_t counter = ch->next_counter;
    uint8_t be[8];
    put_be64(be, counter);
    struct spro_buf ad = {0};
    build_ad(&ad, AD_REQ, method, path, ch->session);

    /* session || counter || room for the chunks, sealed from pt.  The room
     * is reserved first: out never grows (freeing a block) once it holds
     * the copy of pt. */
    size_t start = out->len;
    static const uint8_t tag_room[SPRO_NOISE_TAG_BYTES];
    spro_buf_reserve(out, SPRO_CLIENT_SESSION_BYTES + sizeof be + pt.len +
                              chunks * SPRO_NOISE_TAG_BYTES);
    spro_buf_append(out, ch->session, SPRO_CLIENT_SESSION_BYTES);
    spro_buf_append(out, be, sizeof be);
    size_t ct = out->len;
    spro_buf_append(out, pt.data, pt.len); /* overwritten: only its length counts */
    for (size_t i = 0; i < chunks; i++)
        spro_buf_append(out, tag_room, sizeof tag_room);
    rc = spro_noise_cipher_encrypt_chunked(ch->tx, counter, ad.data, ad.len, pt.data, pt.len,
                                           out->data + ct, out->len - ct);
    wipe_buf(&pt);
    spro_buf_free(&ad);
    if (rc != 0) {
        spro_memzero(out->data + start, out->len - start);
        out->len = start;
        return rc;
    }
    ch->next_counter = counter + chunks;
    /* The one answer that may open now: bound to this request and counter. */
    build_ad(&ch->ad, AD_RES, method, path, ch->session);
    spro_buf_append(&ch->ad, be, sizeof be);
    ch->pending = true;
    return 0;
}

/* Checks and decrypts the answer to the pending request into ch->plain;
 * *plen its length. */
static int open_plain(struct spro_client_channel *ch, const uint8_t *body, size_t len, size_t *plen)
{
    if (ch->dead)
        return SPRO_EINTEGRITY;
    if (!ch->open || !ch->pending)
        return SPRO_EBADMSGTYPE;
    size_t chunks;
    if (len < 8 || spro_noise_chunked_layout(len - 8, plen, &chunks) != 0)
        return poison(ch);
    uint64_t counter = get_be64(body);
    if (ch->answered && counter <= ch->last_answer)
        return poison(ch); /* an old answer replayed */
    need_plain(ch, *plen);
    if (spro_noise_cipher_decrypt_chunked(ch->rx, counter, ch->ad.data, ch->ad.len, body + 8,
                                          len - 8, ch->plain, ch->plain_cap, plen) != 0)
        return poison(ch);
    ch->pending = false;
    ch->answered = true;
    ch->last_answer = counter + (chunks - 1);
    return 0;
}

int spro_client_channel_open(struct spro_client_channel *ch, const uint8_t *body, size_t len,
                             struct spro_msg *m)
{
    size_t plen = 0;
    int rc = open_plain(ch, body, len, &plen);
    return rc != 0 ? rc : spro_proto_decode(ch->plain, plen, m);
}

int spro_client_channel_open_sync(struct spro_client_channel *ch, const uint8_t *body, size_t len,
                                  struct spro_arena *arena, struct spro_msg *m)
{
    size_t plen = 0;
    int rc = open_plain(ch, body, len, &plen);
    if (rc != 0)
        return rc;
    if (arena->cap - arena->len < SPRO_PROTO_ARENA_BYTES(plen))
        SPRO_BUG("spro_client_channel_open_sync: arena too small");
    rc = spro_proto_decode_sync(ch->plain, plen, arena, m);
    if (rc == SPRO_EBADMSGTYPE)
        rc = spro_proto_decode(ch->plain, plen, m); /* an error answer is a flat message */
    return rc;
}
