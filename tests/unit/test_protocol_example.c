/*
 * test_protocol_example.c: the worked example of docs/PROTOCOL.md ("Worked
 * example") is computed here from fixed keys with this project's Noise and
 * msgpack code, and must equal the text between the document's
 * "worked-example" markers byte for byte.  On a mismatch the expected text
 * is printed, ready to paste.
 *
 * usage: test_protocol_example PROTOCOL.md
 */
#include "check.h"
#include "crypto/crypto.h"
#include "proto/proto.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *doc_path;
static char text[32768];
static size_t text_len;

__attribute__((format(printf, 1, 2))) static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text + text_len, sizeof text - text_len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof text - text_len)
        abort();
    text_len += (size_t)n;
}

/* Hex, wrapped at 64 digits, each line indented. */
static void hex(const char *label, const uint8_t *p, size_t n)
{
    out("%s (%zu bytes):\n", label, n);
    for (size_t i = 0; i < n; i++)
        out("%s%02x%s", i % 32 == 0 ? "    " : "", p[i], i % 32 == 31 || i + 1 == n ? "\n" : "");
}

static void fill(uint8_t *p, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(first + i);
}

static void encode(const struct spro_msg *m, struct spro_buf *b)
{
    if (spro_proto_encode(m, b) != 0)
        abort();
}

static size_t ad_path(uint8_t *o, const char *tag, const char *path, const uint8_t sid[16],
                      const uint8_t *ctr)
{
    size_t n = 0;
    memcpy(o, tag, strlen(tag)), n = strlen(tag);
    memcpy(o + n, "\0POST\0", 6), n += 6;
    memcpy(o + n, path, strlen(path) + 1), n += strlen(path) + 1;
    memcpy(o + n, sid, 16), n += 16;
    if (ctr != NULL)
        memcpy(o + n, ctr, 8), n += 8;
    return n;
}

static size_t ad(uint8_t *o, const char *tag, const uint8_t sid[16], const uint8_t *ctr)
{
    return ad_path(o, tag, "/v1/ping", sid, ctr);
}

/* A chunked message's body (head: the header, head_len bytes; then the
 * chunks), shown by its chunks: the associated data and counter of each,
 * the first 32 bytes and the tag of full chunks, the last chunk whole. */
static void chunks(const uint8_t *head, size_t head_len, const uint8_t *ct, size_t ctlen,
                   uint64_t first, const uint8_t *a, size_t an)
{
    size_t k = (ctlen + SPRO_NOISE_MAX_MESSAGE - 1) / SPRO_NOISE_MAX_MESSAGE;
    hex("header", head, head_len);
    uint8_t more[256];
    memcpy(more, a, an);
    more[an] = 0x01;
    for (size_t i = 0; i < k; i++) {
        size_t off = i * SPRO_NOISE_MAX_MESSAGE,
               clen = i + 1 < k ? SPRO_NOISE_MAX_MESSAGE : ctlen - off;
        out("chunk %zu: counter %llu, plaintext bytes %zu..%zu, %s\n", i,
            (unsigned long long)(first + i), i * SPRO_NOISE_CHUNK_PLAIN,
            i * SPRO_NOISE_CHUNK_PLAIN + clen - 16 - 1, i + 1 < k ? "more follows" : "last");
        if (i + 1 < k) {
            hex("  associated data (the message's, then 01)", more, an + 1);
            out("  ciphertext and tag: %zu bytes\n", clen);
            hex("  ciphertext, first bytes", ct + off, 32);
            hex("  tag (the last bytes)", ct + off + clen - 16, 16);
        } else {
            hex("  associated data (the message's)", a, an);
            hex("  ciphertext and tag", ct + off, clen);
        }
    }
}

/* Computes the whole example into text[]; 0 if every step succeeded. */
static int compute(void)
{
    uint8_t s_srv[32], s_dev[32], e_dev[32], e_srv[32], pk_srv[32], pk_dev[32];
    fill(s_srv, 32, 0x01);
    fill(s_dev, 32, 0x21);
    fill(e_dev, 32, 0x41);
    fill(e_srv, 32, 0x61);
    out("Protocol name: Noise_IK_25519_ChaChaPoly_BLAKE2b\n\n");
    hex("server static secret key", s_srv, 32);
    hex("device static secret key", s_dev, 32);
    hex("device ephemeral secret key", e_dev, 32);
    hex("server ephemeral secret key", e_srv, 32);
    if (spro_crypto_dh_public(pk_srv, s_srv) != 0 || spro_crypto_dh_public(pk_dev, s_dev) != 0)
        return -1;
    hex("server static public key", pk_srv, 32);
    hex("device static public key", pk_dev, 32);
    char fp[SPRO_FINGERPRINT_CHARS];
    spro_crypto_fingerprint(fp, pk_srv);
    out("server key fingerprint: %s\n", fp);
    uint8_t prologue[43];
    memcpy(prologue, "spro-sync/1", 11);
    memcpy(prologue + 11, pk_srv, 32);
    hex("prologue", prologue, sizeof prologue);

    struct spro_noise_handshake *ini, *res;
    if (spro_noise_handshake_init(&ini, "Noise_IK_25519_ChaChaPoly_BLAKE2b", 1, prologue, 43, s_dev,
                                  pk_srv, NULL, 0) != 0 ||
        spro_noise_handshake_init(&res, "Noise_IK_25519_ChaChaPoly_BLAKE2b", 0, prologue, 43, s_srv,
                                  NULL, NULL, 0) != 0 ||
        spro_noise_handshake_set_ephemeral(ini, e_dev) != 0 ||
        spro_noise_handshake_set_ephemeral(res, e_srv) != 0)
        return -1;

    struct spro_msg hello = {.type = SPRO_MSG_HELLO};
    uint8_t secret[32];
    fill(secret, 32, 0xa0);
    hello.u.hello.ts = 1795766400000;
    hello.u.hello.app = (struct spro_bytes){(const uint8_t *)"spro-client 0.1.0", 17};
    hello.u.hello.schema = 1;
    hello.u.hello.has_ticket = true;
    hello.u.hello.ticket_id = (struct spro_bytes){(const uint8_t *)"0123456789abcdef", 16};
    hello.u.hello.ticket_secret = (struct spro_bytes){secret, 32};
    struct spro_buf b1 = {0}, b2 = {0}, b3 = {0}, b4 = {0};
    encode(&hello, &b1);
    out("\nMessage 1 (device -> server, POST /v1/session)\n");
    out("hello: ts 1795766400000, app \"spro-client 0.1.0\", schema 1,\n"
        "       ticket_id \"0123456789abcdef\", ticket_secret a0 a1 ... bf\n");
    hex("hello payload (msgpack)", b1.data, b1.len);
    uint8_t m1[1024], m2[1024], pl[1024];
    size_t m1n, m2n, pn;
    if (spro_noise_write_message(ini, b1.data, b1.len, m1, sizeof m1, &m1n) != 0 ||
        spro_noise_read_message(res, m1, m1n, pl, sizeof pl, &pn) != 0 || pn != b1.len)
        return -1;
    hex("message 1 = request body", m1, m1n);

    struct spro_msg welcome = {.type = SPRO_MSG_WELCOME};
    uint8_t sid[16];
    fill(sid, 16, 0xc0);
    const char *dev = "5b0e2c1a-8d43-4f6e-9a21-3c7d5e8f9012";
    welcome.u.welcome.session = (struct spro_bytes){sid, 16};
    welcome.u.welcome.view.device = (struct spro_bytes){(const uint8_t *)dev, strlen(dev)};
    welcome.u.welcome.view.user = (struct spro_bytes){(const uint8_t *)"alice", 5};
    welcome.u.welcome.view.org = (struct spro_bytes){(const uint8_t *)"cio-nord", 8};
    welcome.u.welcome.view.role = (struct spro_bytes){(const uint8_t *)"counsellor", 10};
    welcome.u.welcome.idle_ttl = 300;
    welcome.u.welcome.ttl = 3600;
    encode(&welcome, &b2);
    out("\nMessage 2 (server -> device, answer of POST /v1/session)\n");
    out("welcome: session c0 c1 ... cf, device \"%s\",\n"
        "         user \"alice\", org \"cio-nord\", role \"counsellor\", idle_ttl 300, ttl 3600\n",
        dev);
    hex("welcome payload (msgpack)", b2.data, b2.len);
    if (spro_noise_write_message(res, b2.data, b2.len, m2, sizeof m2, &m2n) != 0 ||
        spro_noise_read_message(ini, m2, m2n, pl, sizeof pl, &pn) != 0 || pn != b2.len)
        return -1;
    hex("message 2 = response body", m2, m2n);
    uint8_t hh[SPRO_NOISE_HASH_BYTES];
    if (spro_noise_handshake_hash(ini, hh) != 0)
        return -1;
    hex("handshake hash", hh, sizeof hh);

    struct spro_noise_cipher *dsend, *drecv, *ssend, *srecv;
    if (spro_noise_split(ini, &dsend, &drecv) != 0 || spro_noise_split(res, &ssend, &srecv) != 0)
        return -1;
    spro_noise_handshake_destroy(ini);
    spro_noise_handshake_destroy(res);

    struct spro_msg ping = {.type = SPRO_MSG_PING}, pong = {.type = SPRO_MSG_PONG};
    encode(&ping, &b3);
    uint8_t a[128], frame[512], ctr0[8] = {0};
    size_t an = ad(a, "spro-sync/1 req", sid, NULL);
    out("\nSealed request: POST /v1/ping, counter 0\n");
    hex("ping plaintext (msgpack)", b3.data, b3.len);
    hex("associated data", a, an);
    memcpy(frame, sid, 16);
    memcpy(frame + 16, ctr0, 8);
    if (spro_noise_cipher_encrypt_with_nonce(dsend, 0, a, an, b3.data, b3.len, frame + 24,
                                             sizeof frame - 24) != 0 ||
        spro_noise_cipher_decrypt_with_nonce(srecv, 0, a, an, frame + 24, b3.len + 16, pl,
                                             sizeof pl) != 0)
        return -1;
    hex("request body (session id || counter || ciphertext)", frame, 24 + b3.len + 16);

    pong.u.pong = welcome.u.welcome.view;
    encode(&pong, &b4);
    an = ad(a, "spro-sync/1 res", sid, ctr0);
    out("\nSealed response: counter 0\n");
    hex("pong plaintext (msgpack)", b4.data, b4.len);
    hex("associated data", a, an);
    memcpy(frame, ctr0, 8);
    if (spro_noise_cipher_encrypt_with_nonce(ssend, 0, a, an, b4.data, b4.len, frame + 8,
                                             sizeof frame - 8) != 0 ||
        spro_noise_cipher_decrypt_with_nonce(drecv, 0, a, an, frame + 8, b4.len + 16, pl,
                                             sizeof pl) != 0)
        return -1;
    hex("response body (counter || ciphertext)", frame, 8 + b4.len + 16);

    /* A message of two chunks each way: a sealed echo (bench route). */
    static uint8_t data[65500], big[2 * SPRO_NOISE_MAX_MESSAGE], bigpl[2 * SPRO_NOISE_MAX_MESSAGE];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    const char *epath = "/v1/bench/sealed-echo";
    struct spro_msg echo = {.type = SPRO_MSG_ECHO}, reply = {.type = SPRO_MSG_ECHO_REPLY};
    echo.u.echo.id = 1;
    echo.u.echo.data = (struct spro_bytes){data, sizeof data};
    struct spro_buf b5 = {0}, b6 = {0};
    encode(&echo, &b5);
    uint8_t ctr1[8] = {0, 0, 0, 0, 0, 0, 0, 1}, head[24];
    an = ad_path(a, "spro-sync/1 req", epath, sid, NULL);
    out("\nChunked request: POST %s, counter 1\n", epath);
    out("echo: id 1, data 65500 bytes 00 01 02 ... ff 00 01 ... (byte i = i mod 256)\n");
    out("echo plaintext (msgpack): %zu bytes, 2 chunks of at most 65519\n", b5.len);
    hex("echo plaintext, first bytes", b5.data, 32);
    size_t ctn = spro_noise_chunked_size(b5.len), pn2;
    memcpy(head, sid, 16);
    memcpy(head + 16, ctr1, 8);
    if (spro_noise_cipher_encrypt_chunked(dsend, 1, a, an, b5.data, b5.len, big, sizeof big) != 0 ||
        spro_noise_cipher_decrypt_chunked(srecv, 1, a, an, big, ctn, bigpl, sizeof bigpl, &pn2) !=
            0 ||
        pn2 != b5.len)
        return -1;
    out("request body: session id || counter || chunk 0 || chunk 1 (%zu bytes)\n", 24 + ctn);
    chunks(head, 24, big, ctn, 1, a, an);

    reply.u.echo = echo.u.echo;
    encode(&reply, &b6);
    an = ad_path(a, "spro-sync/1 res", epath, sid, ctr1);
    out("\nChunked response: counter 1\n");
    out("echo_reply plaintext (msgpack): %zu bytes\n", b6.len);
    hex("echo_reply plaintext, first bytes", b6.data, 32);
    ctn = spro_noise_chunked_size(b6.len);
    if (spro_noise_cipher_encrypt_chunked(ssend, 1, a, an, b6.data, b6.len, big, sizeof big) != 0 ||
        spro_noise_cipher_decrypt_chunked(drecv, 1, a, an, big, ctn, bigpl, sizeof bigpl, &pn2) !=
            0 ||
        pn2 != b6.len)
        return -1;
    out("response body: counter || chunk 0 || chunk 1 (%zu bytes)\n", 8 + ctn);
    chunks(ctr1, 8, big, ctn, 1, a, an);
    spro_buf_free(&b5);
    spro_buf_free(&b6);
    spro_noise_cipher_destroy(dsend);
    spro_noise_cipher_destroy(drecv);
    spro_noise_cipher_destroy(ssend);
    spro_noise_cipher_destroy(srecv);
    spro_buf_free(&b1);
    spro_buf_free(&b2);
    spro_buf_free(&b3);
    spro_buf_free(&b4);
    return 0;
}

static void test_document_matches_code(void)
{
    CHECK_EQ(compute(), 0);
    FILE *f = fopen(doc_path, "r");
    CHECK(f != NULL);
    static char doc[1 << 20];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    const char *begin = "<!-- worked-example begin -->\n```\n",
               *end = "```\n<!-- worked-example end -->";
    char *b = strstr(doc, begin), *e = b ? strstr(b, end) : NULL;
    if (b == NULL || e == NULL || (size_t)(e - b - strlen(begin)) != text_len ||
        memcmp(b + strlen(begin), text, text_len) != 0) {
        printf("docs/PROTOCOL.md worked example differs from the code; expected:\n%s%s%s\n", begin,
               text, end);
        CHECK__FAIL("worked example out of date");
    }
}

static const struct check_test tests[] = {
    {"document_matches_code", test_document_matches_code},
};

int main(int argc, char **argv)
{
    if (argc < 2 || spro_crypto_init() != 0) {
        fprintf(stderr, "usage: %s PROTOCOL.md\n", argv[0]);
        return 2;
    }
    doc_path = argv[1];
    argv[1] = argv[0];
    return check_run(tests, sizeof tests / sizeof tests[0], argc - 1, argv + 1);
}
