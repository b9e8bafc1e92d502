/*
 * test_client_units.c: spro-client's parts alone, without a server.
 *
 *   url_*      server URLs accepted and refused (table)
 *   state_*    the home directory: state file round trip, malformed files
 *              refused line by line, key file size and mode, erasing, the lock
 *   channel_*  the device side of the Noise channel against a responder
 *              built here from crypto/ and proto/ alone: the framing of
 *              docs/PROTOCOL.md byte for byte, and every kind of answer that
 *              must not open (tampered, replayed, for another request); the
 *              sync answers (nested messages into an arena)
 *   values_*   FIELD=VALUE typing on the command line, values as JSON
 */
#include "check.h"

#include "channel.h"
#include "http.h"
#include "state.h"
#include "values.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- URLs ---- */

static void test_url_table(void)
{
    static const struct {
        const char *url;
        int ok;
        int tls;
        const char *host, *port;
    } cases[] = {
        {"http://127.0.0.1:8080", 1, 0, "127.0.0.1", "8080"},
        {"https://sync.example.fr", 1, 1, "sync.example.fr", "443"},
        {"http://sync.example.fr", 1, 0, "sync.example.fr", "80"},
        {"http://[::1]:8443", 1, 0, "::1", "8443"},
        {"https://[2001:db8::7]", 1, 1, "2001:db8::7", "443"},
        {"http://h:65535", 1, 0, "h", "65535"},
        {"http://h:0", 0, 0, NULL, NULL},
        {"http://h:65536", 0, 0, NULL, NULL},
        {"http://h:", 0, 0, NULL, NULL},
        {"http://h:123456", 0, 0, NULL, NULL},
        {"http://h/", 0, 0, NULL, NULL},
        {"http://h/v1", 0, 0, NULL, NULL},
        {"http://h?x", 0, 0, NULL, NULL},
        {"http://user@h", 0, 0, NULL, NULL},
        {"http://", 0, 0, NULL, NULL},
        {"http://[::1", 0, 0, NULL, NULL},
        {"http://[nothex]:80", 0, 0, NULL, NULL},
        {"http://-h", 0, 0, NULL, NULL},
        {"ftp://h", 0, 0, NULL, NULL},
        {"HTTP://h", 0, 0, NULL, NULL},
        {"", 0, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spro_client_url u;
        int rc = spro_client_url_parse(&u, cases[i].url);
        if (!cases[i].ok) {
            CHECK_EQ(rc, SPRO_ECONFIG);
            CHECK_EQ(u.host[0], 0);
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(u.tls, cases[i].tls);
        CHECK_STR(u.host, cases[i].host);
        CHECK_STR(u.port, cases[i].port);
        CHECK_STR(u.authority, cases[i].url + (cases[i].tls ? 8 : 7));
    }
}

/* ---- The home ---- */

static char tmp_root[64];

static const char *fresh_dir(const char *name)
{
    static char path[128];
    if (tmp_root[0] == '\0') {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/spro-client-unit-XXXXXX");
        if (mkdtemp(tmp_root) == NULL)
            abort();
    }
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    return path;
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    fchmod(fd, mode);
    close(fd);
}

static bool present(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void test_state_round_trip(void)
{
    char why[512];
    struct spro_client_home home;
    bool created;
    const char *dir = fresh_dir("roundtrip");
    CHECK_EQ(spro_client_home_open(&home, dir, false, NULL, why, sizeof why), SPRO_ENOENT);
    CHECK_EQ(spro_client_home_open(&home, dir, true, &created, why, sizeof why), 0);
    CHECK(created);
    struct stat st;
    CHECK_EQ(stat(dir, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0700);

    struct spro_client_state s = {0}, back;
    CHECK_EQ(spro_client_state_load(&home, &back, why, sizeof why), SPRO_ENOENT);
    snprintf(s.url, sizeof s.url, "https://[::1]:8443");
    for (int i = 0; i < SPRO_KEY_BYTES; i++)
        s.server_key[i] = (uint8_t)(0xf0 + i);
    s.last_ts = UINT64_MAX;
    CHECK_EQ(spro_client_state_save(&home, &s, why, sizeof why), 0);
    CHECK_EQ(spro_client_state_load(&home, &back, why, sizeof why), 0);
    CHECK(memcmp(&s, &back, sizeof s) == 0);
    CHECK_EQ(back.device[0], 0); /* not enrolled yet */

    snprintf(s.device, sizeof s.device, "85b28add-a8e2-4c69-826f-4dd8df0e8296");
    snprintf(s.user, sizeof s.user, "u1");
    memset(s.org, 'o', SPRO_CLIENT_ID_MAX); /* the longest id */
    s.last_ts = 1700000000123;
    CHECK_EQ(spro_client_state_save(&home, &s, why, sizeof why), 0);
    CHECK_EQ(spro_client_state_load(&home, &back, why, sizeof why), 0);
    CHECK(memcmp(&s, &back, sizeof s) == 0);
    CHECK(!present(dir, "state.tmp"));
    char p[256];
    snprintf(p, sizeof p, "%s/state", dir);
    CHECK_EQ(stat(p, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    spro_client_home_close(&home);
}

/* Copies tmpl into out with "KEY" replaced by key. */
static void fill_key(char *out, size_t cap, const char *tmpl, const char *key)
{
    const char *k = strstr(tmpl, "KEY");
    if (k == NULL)
        snprintf(out, cap, "%s", tmpl);
    else
        snprintf(out, cap, "%.*s%s%s", (int)(k - tmpl), tmpl, key, k + 3);
}

static void test_state_refuses_malformed(void)
{
    static const char *const bad[] = {
        "",
        "url=http://h\nserver_key=00\nlast_ts=1\n",                     /* short key */
        "url=http://h\nlast_ts=1\n",                                    /* no key */
        "url=http://h\nserver_key=KEY\nlast_ts=1",                      /* no final newline */
        "url=http://h\nserver_key=KEY\nlast_ts=01\n",                   /* leading zero */
        "url=http://h\nserver_key=KEY\nlast_ts=18446744073709551616\n", /* 2^64 */
        "url=http://h\nserver_key=KEY\nlast_ts=1\nlast_ts=2\n",         /* repeated */
        "url=http://h\nserver_key=KEY\nlast_ts=1\ncolour=blue\n",       /* unknown key */
        "url=http://h\nserver_key=KEY\nlast_ts=1\nno equals sign\n",
        "url=http://h\nserver_key=KEY\nlast_ts=1\ndevice=d\n", /* ids partly present */
        "url=http://h\nserver_key=KEY\nlast_ts=1\ndevice=d\nuser=u\norg=o o\n", /* space */
        "url=http://h\nserver_key=KEY\nlast_ts=1\ndevice=\nuser=u\norg=o\n",    /* empty id */
        "url=\nserver_key=KEY\nlast_ts=1\n",
        "url=http://h\r\nserver_key=KEY\nlast_ts=1\n", /* CRLF is not ours */
    };
    char key[65], text[512], why[512];
    for (int i = 0; i < 32; i++)
        snprintf(key + 2 * i, 3, "%02x", i);
    const char *dir = fresh_dir("malformed");
    struct spro_client_home home;
    CHECK_EQ(spro_client_home_open(&home, dir, true, NULL, why, sizeof why), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fill_key(text, sizeof text, bad[i], key);
        write_file(dir, "state", text, 0600);
        struct spro_client_state st;
        int rc = spro_client_state_load(&home, &st, why, sizeof why);
        if (rc != SPRO_ECONFIG)
            fprintf(stderr, "case %zu accepted\n", i);
        CHECK_EQ(rc, SPRO_ECONFIG);
        CHECK(strstr(why, "/state") != NULL);
        CHECK_EQ(st.url[0], 0);
    }
    /* Uppercase hex is not what we write either. */
    snprintf(text, sizeof text, "url=http://h\nserver_key=%s\nlast_ts=1\n", key);
    char *k = strstr(text, "0a");
    k[1] = 'A';
    write_file(dir, "state", text, 0600);
    struct spro_client_state st;
    CHECK_EQ(spro_client_state_load(&home, &st, why, sizeof why), SPRO_ECONFIG);
    k[1] = 'a';
    write_file(dir, "state", text, 0600);
    CHECK_EQ(spro_client_state_load(&home, &st, why, sizeof why), 0);
    CHECK_EQ(st.server_key[10], 10);
    spro_client_home_close(&home);
}

static void test_state_key_file(void)
{
    char why[512];
    const char *dir = fresh_dir("key");
    struct spro_client_home home;
    CHECK_EQ(spro_client_home_open(&home, dir, true, NULL, why, sizeof why), 0);
    uint8_t sk[SPRO_KEY_BYTES], back[SPRO_KEY_BYTES];
    CHECK_EQ(spro_client_key_load(&home, back, why, sizeof why), SPRO_ENOENT);
    for (int i = 0; i < SPRO_KEY_BYTES; i++)
        sk[i] = (uint8_t)(i * 7 + 1);
    CHECK_EQ(spro_client_key_save(&home, sk, why, sizeof why), 0);
    CHECK_EQ(spro_client_key_load(&home, back, why, sizeof why), 0);
    CHECK_BYTES(back, sizeof back, sk, sizeof sk);
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/device.key", dir);
    CHECK_EQ(stat(p, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);

    CHECK_EQ(chmod(p, 0640), 0);
    CHECK_EQ(spro_client_key_load(&home, back, why, sizeof why), SPRO_EPERM);
    CHECK(strstr(why, "chmod 600") != NULL);
    CHECK_EQ(back[0], 0);
    write_file(dir, "device.key", "short", 0600);
    CHECK_EQ(spro_client_key_load(&home, back, why, sizeof why), SPRO_ECONFIG);
    /* A symbolic link is not followed. */
    CHECK_EQ(unlink(p), 0);
    CHECK_EQ(symlink("/etc/hostname", p), 0);
    CHECK(spro_client_key_load(&home, back, why, sizeof why) < 0);
    CHECK_EQ(unlink(p), 0);
    spro_client_home_close(&home);
}

static void test_state_erase(void)
{
    char why[512];
    const char *dir = fresh_dir("erase");
    struct spro_client_home home;
    CHECK_EQ(spro_client_home_open(&home, dir, true, NULL, why, sizeof why), 0);
    uint8_t sk[SPRO_KEY_BYTES];
    memset(sk, 0x5a, sizeof sk);
    CHECK_EQ(spro_client_key_save(&home, sk, why, sizeof why), 0);
    struct spro_client_state s = {.url = "http://h", .last_ts = 5};
    CHECK_EQ(spro_client_state_save(&home, &s, why, sizeof why), 0);
    write_file(dir, "state.tmp", "x", 0600);
    write_file(dir, "device.key.tmp", "y", 0600);
    write_file(dir, "notes.txt", "not ours", 0600);
    /* The local store's files (sync/local.h). */
    write_file(dir, "local.key", "0123456789abcdef0123456789abcdef", 0600);
    write_file(dir, "local.db", "db", 0600);
    write_file(dir, "local.db-wal", "wal", 0600);
    write_file(dir, "local.db-shm", "shm", 0600);

    /* Keep descriptors on the keys to see their bytes after the erase. */
    char p[256];
    snprintf(p, sizeof p, "%s/device.key", dir);
    int fd = open(p, O_RDONLY);
    CHECK(fd >= 0);
    snprintf(p, sizeof p, "%s/local.key", dir);
    int lfd = open(p, O_RDONLY);
    CHECK(lfd >= 0);
    CHECK_EQ(spro_client_home_erase(&home, why, sizeof why), 0);
    uint8_t after[SPRO_KEY_BYTES], zero[SPRO_KEY_BYTES] = {0};
    CHECK_EQ(pread(fd, after, sizeof after, 0), (ssize_t)sizeof after);
    close(fd);
    CHECK_BYTES(after, sizeof after, zero, sizeof zero);
    CHECK_EQ(pread(lfd, after, sizeof after, 0), (ssize_t)sizeof after);
    close(lfd);
    CHECK_BYTES(after, sizeof after, zero, sizeof zero);
    CHECK(!present(dir, "device.key") && !present(dir, "state"));
    CHECK(!present(dir, "device.key.tmp") && !present(dir, "state.tmp"));
    CHECK(!present(dir, "local.key") && !present(dir, "local.db"));
    CHECK(!present(dir, "local.db-wal") && !present(dir, "local.db-shm"));
    CHECK(present(dir, "notes.txt"));                            /* only ours */
    CHECK_EQ(spro_client_home_erase(&home, why, sizeof why), 0); /* nothing left: fine */
    spro_client_home_close(&home);
}

static void test_state_lock(void)
{
    char why[512];
    const char *dir = fresh_dir("lock");
    struct spro_client_home a, b;
    CHECK_EQ(spro_client_home_open(&a, dir, true, NULL, why, sizeof why), 0);
    CHECK_EQ(spro_client_home_open(&b, dir, false, NULL, why, sizeof why), -EWOULDBLOCK);
    CHECK(strstr(why, "in use by another spro-client") != NULL);
    CHECK_EQ(b.dirfd, -1);
    spro_client_home_close(&a);
    CHECK_EQ(spro_client_home_open(&b, dir, false, NULL, why, sizeof why), 0);
    spro_client_home_close(&b);
    spro_client_home_close(&b); /* twice is harmless */
}

/* ---- The channel, against a responder made here ---- */

struct server {
    uint8_t pk[SPRO_KEY_BYTES], sk[SPRO_KEY_BYTES];
    struct spro_noise_handshake *hs;
    struct spro_noise_cipher *rx, *tx; /* device -> server, server -> device */
    uint8_t session[16];
    uint64_t next_answer;
};

struct device {
    uint8_t pk[SPRO_KEY_BYTES], sk[SPRO_KEY_BYTES];
    struct spro_client_channel *ch;
};

static const char *const APP = "spro-client/test";

#define B(s) ((struct spro_bytes){(const uint8_t *)(s), strlen(s)})

static void make_keys(struct server *s, struct device *d)
{
    memset(s, 0, sizeof *s);
    memset(d, 0, sizeof *d);
    spro_crypto_dh_keypair(s->pk, s->sk);
    spro_crypto_dh_keypair(d->pk, d->sk);
}

/* Handshake message 1 of d, with a ticket when ticket != NULL. */
static int device_hello(struct device *d, const struct server *s, uint64_t ts,
                        const uint8_t *ticket_secret, struct spro_buf *msg1)
{
    int rc = spro_client_channel_create(&d->ch, s->pk, d->sk);
    if (rc != 0)
        return rc;
    struct spro_msg h = {.type = SPRO_MSG_HELLO};
    h.u.hello.ts = ts;
    h.u.hello.app = (struct spro_bytes){(const uint8_t *)APP, strlen(APP)};
    h.u.hello.schema = 1;
    if (ticket_secret != NULL) {
        h.u.hello.has_ticket = true;
        h.u.hello.ticket_id = (struct spro_bytes){(const uint8_t *)"0123456789abcdef", 16};
        h.u.hello.ticket_secret = (struct spro_bytes){ticket_secret, 32};
    }
    return spro_client_channel_hello(d->ch, &h, msg1);
}

/* The server's side of the handshake: reads msg1 (checking its hello and
 * the device's key), answers `answer` in msg2, splits when it is a welcome. */
static int server_answer(struct server *s, const struct device *d, const struct spro_buf *msg1,
                         const struct spro_msg *answer, uint64_t want_ts, struct spro_buf *msg2)
{
    uint8_t prologue[11 + 32];
    memcpy(prologue, "spro-sync/1", 11);
    memcpy(prologue + 11, s->pk, 32);
    int rc = spro_noise_handshake_init(&s->hs, "Noise_IK_25519_ChaChaPoly_BLAKE2b", 0, prologue,
                                       sizeof prologue, s->sk, NULL, NULL, 0);
    uint8_t payload[2048], rs[32];
    size_t plen;
    if (rc == 0)
        rc = spro_noise_read_message(s->hs, msg1->data, msg1->len, payload, sizeof payload, &plen);
    if (rc != 0)
        return rc;
    if (msg1->len != 96 + plen || spro_noise_handshake_remote_static(s->hs, rs) != 0 ||
        memcmp(rs, d->pk, 32) != 0)
        return -1;
    struct spro_msg hello;
    if (spro_proto_decode(payload, plen, &hello) != 0 || hello.type != SPRO_MSG_HELLO ||
        hello.u.hello.ts != want_ts || hello.u.hello.app.len != strlen(APP))
        return -2;
    struct spro_buf pt = {0};
    if (spro_proto_encode(answer, &pt) != 0)
        return -3;
    uint8_t out[4096];
    size_t outlen;
    rc = spro_noise_write_message(s->hs, pt.data, pt.len, out, sizeof out, &outlen);
    spro_buf_free(&pt);
    if (rc != 0)
        return rc;
    spro_buf_append(msg2, out, outlen);
    if (answer->type == SPRO_MSG_WELCOME) {
        memcpy(s->session, answer->u.welcome.session.p, 16);
        rc = spro_noise_split(s->hs, &s->tx, &s->rx); /* send, receive */
    }
    return rc;
}

static void server_free(struct server *s, struct device *d)
{
    spro_noise_handshake_destroy(s->hs);
    spro_noise_cipher_destroy(s->rx);
    spro_noise_cipher_destroy(s->tx);
    spro_client_channel_destroy(d->ch);
    s->hs = NULL;
    s->rx = s->tx = NULL;
    d->ch = NULL;
}

static const uint8_t SESSION[16] = {0x5e, 0x55, 0x10, 0x4e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static struct spro_msg welcome_msg(void)
{
    struct spro_msg w = {.type = SPRO_MSG_WELCOME};
    w.u.welcome.session = (struct spro_bytes){SESSION, 16};
    w.u.welcome.view.device = B("dev-1");
    w.u.welcome.view.user = B("u1");
    w.u.welcome.view.org = B("o1");
    w.u.welcome.view.role = B("counsellor");
    w.u.welcome.idle_ttl = 300;
    w.u.welcome.ttl = 3600;
    return w;
}

/* docs/PROTOCOL.md: label 0 method 0 path 0 session [|| counter BE]. */
static size_t doc_ad(uint8_t *ad, const char *label, const char *method, const char *path,
                     const uint8_t *session, const uint8_t *counter_be)
{
    size_t n = 0;
    memcpy(ad + n, label, strlen(label));
    n += strlen(label);
    ad[n++] = 0;
    memcpy(ad + n, method, strlen(method));
    n += strlen(method);
    ad[n++] = 0;
    memcpy(ad + n, path, strlen(path));
    n += strlen(path);
    ad[n++] = 0;
    memcpy(ad + n, session, 16);
    n += 16;
    if (counter_be != NULL) {
        memcpy(ad + n, counter_be, 8);
        n += 8;
    }
    return n;
}

/* Opens a sealed request the way the server does: checks its framing and
 * returns the decoded message's type (or a negative code). */
static int server_open(struct server *s, const struct spro_buf *req, const char *method,
                       const char *path, uint64_t want_counter, uint8_t counter_be[8])
{
    if (req->len < 16 + 8 + 16 || memcmp(req->data, s->session, 16) != 0)
        return -1;
    uint64_t c = 0;
    for (int i = 0; i < 8; i++)
        c = c << 8 | req->data[16 + i];
    if (c != want_counter)
        return -2;
    memcpy(counter_be, req->data + 16, 8);
    uint8_t ad[256], pt[4096];
    size_t adlen = doc_ad(ad, "spro-sync/1 req", method, path, s->session, NULL);
    int rc = spro_noise_cipher_decrypt_with_nonce(s->rx, c, ad, adlen, req->data + 24,
                                                  req->len - 24, pt, sizeof pt);
    if (rc != 0)
        return rc;
    struct spro_msg m;
    rc = spro_proto_decode(pt, req->len - 24 - 16, &m);
    return rc != 0 ? rc : (int)m.type;
}

/* The server's sealed answer `msg` to the request of counter_be. */
static void server_seal(struct server *s, const struct spro_msg *msg, const char *method,
                        const char *path, const uint8_t counter_be[8], struct spro_buf *out)
{
    struct spro_buf pt = {0};
    if (spro_proto_encode(msg, &pt) != 0)
        abort();
    uint8_t ad[256], be[8], ct[4096];
    size_t adlen = doc_ad(ad, "spro-sync/1 res", method, path, s->session, counter_be);
    uint64_t n = s->next_answer++;
    for (int i = 7; i >= 0; i--)
        be[7 - i] = (uint8_t)(n >> (8 * i));
    if (spro_noise_cipher_encrypt_with_nonce(s->tx, n, ad, adlen, pt.data, pt.len, ct, sizeof ct) !=
        0)
        abort();
    spro_buf_append(out, be, 8);
    spro_buf_append(out, ct, pt.len + 16);
    spro_buf_free(&pt);
}

/* A device and server with an open session. */
static bool open_pair(struct server *s, struct device *d)
{
    make_keys(s, d);
    struct spro_buf m1 = {0}, m2 = {0};
    struct spro_msg w = welcome_msg(), got;
    bool ok = device_hello(d, s, 42, NULL, &m1) == 0 &&
              server_answer(s, d, &m1, &w, 42, &m2) == 0 &&
              spro_client_channel_welcome(d->ch, m2.data, m2.len, &got) == 0 &&
              got.type == SPRO_MSG_WELCOME;
    spro_buf_free(&m1);
    spro_buf_free(&m2);
    return ok;
}

static void test_channel_handshake(void)
{
    struct server s;
    struct device d;
    make_keys(&s, &d);
    uint8_t secret[32];
    memset(secret, 0xab, sizeof secret);
    struct spro_buf m1 = {0}, m2 = {0};
    CHECK_EQ(device_hello(&d, &s, 1700000000000, secret, &m1), 0);
    CHECK(m1.len > 96 && m1.len <= 96 + 1024);
    CHECK(memmem(m1.data, m1.len, secret, sizeof secret) == NULL); /* encrypted */
    CHECK(spro_client_channel_session(d.ch) == NULL);
    struct spro_buf again = {0};
    CHECK_EQ(spro_client_channel_hello(d.ch, &(struct spro_msg){.type = SPRO_MSG_HELLO}, &again),
             SPRO_EBADMSGTYPE);
    CHECK_EQ(again.len, 0);

    struct spro_msg w = welcome_msg(), got;
    CHECK_EQ(server_answer(&s, &d, &m1, &w, 1700000000000, &m2), 0);
    CHECK_EQ(spro_client_channel_welcome(d.ch, m2.data, m2.len, &got), 0);
    CHECK_EQ(got.type, SPRO_MSG_WELCOME);
    CHECK_BYTES(got.u.welcome.view.user.p, got.u.welcome.view.user.len, "u1", 2);
    CHECK_BYTES(spro_client_channel_session(d.ch), 16, SESSION, 16);
    /* A second message 2 is out of turn. */
    CHECK_EQ(spro_client_channel_welcome(d.ch, m2.data, m2.len, &got), SPRO_EBADMSGTYPE);
    spro_buf_free(&m1);
    spro_buf_free(&m2);
    server_free(&s, &d);
}

static void test_channel_wipe_and_tampering(void)
{
    struct server s;
    struct device d;
    struct spro_buf m1 = {0}, m2 = {0};
    struct spro_msg got, wipe = {.type = SPRO_MSG_WIPE};
    wipe.u.wipe.device = B("dev-1");

    /* A wipe order: returned, no session. */
    make_keys(&s, &d);
    CHECK_EQ(device_hello(&d, &s, 7, NULL, &m1), 0);
    CHECK_EQ(server_answer(&s, &d, &m1, &wipe, 7, &m2), 0);
    CHECK_EQ(spro_client_channel_welcome(d.ch, m2.data, m2.len, &got), 0);
    CHECK_EQ(got.type, SPRO_MSG_WIPE);
    CHECK(spro_client_channel_session(d.ch) == NULL);
    struct spro_buf body = {0};
    CHECK_EQ(spro_client_channel_seal(d.ch, "POST", "/v1/ping",
                                      &(struct spro_msg){.type = SPRO_MSG_PING}, &body),
             SPRO_EBADMSGTYPE);
    server_free(&s, &d);

    /* Every flipped byte of message 2, and a truncated one, fail to
     * authenticate, and the channel stays dead. */
    struct spro_msg w = welcome_msg();
    size_t n2 = 0;
    for (size_t i = 0; i == 0 || i <= n2; i++) {
        m1.len = m2.len = 0;
        make_keys(&s, &d);
        CHECK_EQ(device_hello(&d, &s, 7, NULL, &m1), 0);
        CHECK_EQ(server_answer(&s, &d, &m1, &w, 7, &m2), 0);
        n2 = m2.len;
        if (i == n2)
            m2.len--;
        else
            m2.data[i] ^= 0x01;
        CHECK_EQ(spro_client_channel_welcome(d.ch, m2.data, m2.len, &got), SPRO_EINTEGRITY);
        CHECK_EQ(spro_client_channel_welcome(d.ch, m2.data, m2.len, &got), SPRO_EINTEGRITY);
        server_free(&s, &d);
    }

    /* A message 2 from another server key (the device pinned s.pk). */
    struct server other;
    make_keys(&s, &d);
    memset(&other, 0, sizeof other);
    spro_crypto_dh_keypair(other.pk, other.sk);
    m1.len = m2.len = 0;
    CHECK_EQ(device_hello(&d, &s, 7, NULL, &m1), 0);
    CHECK(server_answer(&other, &d, &m1, &w, 7, &m2) != 0); /* cannot even read message 1 */
    spro_noise_handshake_destroy(other.hs);
    server_free(&s, &d);
    spro_buf_free(&m1);
    spro_buf_free(&m2);
}

static void test_channel_sealed_framing(void)
{
    struct server s;
    struct device d;
    CHECK(open_pair(&s, &d));
    struct spro_msg ping = {.type = SPRO_MSG_PING}, got;
    struct spro_msg pong = {.type = SPRO_MSG_PONG};
    pong.u.pong = welcome_msg().u.welcome.view;
    for (uint64_t i = 0; i < 3; i++) {
        struct spro_buf req = {0}, res = {0};
        uint8_t be[8];
        CHECK_EQ(spro_client_channel_seal(d.ch, "POST", "/v1/ping", &ping, &req), 0);
        /* session || counter (from 0) || ciphertext of the 14-byte ping */
        CHECK_EQ(req.len, 16 + 8 + 14 + 16);
        CHECK_EQ(server_open(&s, &req, "POST", "/v1/ping", i, be), SPRO_MSG_PING);
        server_seal(&s, &pong, "POST", "/v1/ping", be, &res);
        CHECK_EQ(spro_client_channel_open(d.ch, res.data, res.len, &got), 0);
        CHECK_EQ(got.type, SPRO_MSG_PONG);
        CHECK_BYTES(got.u.pong.role.p, got.u.pong.role.len, "counsellor", 10);
        /* The same answer twice: no request waits any more. */
        CHECK_EQ(spro_client_channel_open(d.ch, res.data, res.len, &got), SPRO_EBADMSGTYPE);
        spro_buf_free(&req);
        spro_buf_free(&res);
    }
    server_free(&s, &d);
}

/* Answers that must not open; each kills the channel. */
enum bad_answer { TAMPERED, TRUNCATED, OTHER_PATH, OTHER_REQUEST, REPLAYED, MAX_COUNTER, N_BAD };

static void test_channel_rejects_answers(void)
{
    struct spro_msg ping = {.type = SPRO_MSG_PING}, got;
    struct spro_msg pong = {.type = SPRO_MSG_PONG};
    pong.u.pong = welcome_msg().u.welcome.view;
    for (int kind = 0; kind < N_BAD; kind++) {
        struct server s;
        struct device d;
        CHECK(open_pair(&s, &d));
        struct spro_buf req = {0}, res = {0}, old = {0};
        uint8_t be[8];
        if (kind == REPLAYED) { /* a good exchange first, whose answer comes back later */
            CHECK_EQ(spro_client_channel_seal(d.ch, "POST", "/v1/ping", &ping, &req), 0);
            CHECK_EQ(server_open(&s, &req, "POST", "/v1/ping", 0, be), SPRO_MSG_PING);
            server_seal(&s, &pong, "POST", "/v1/ping", be, &old);
            CHECK_EQ(spro_client_channel_open(d.ch, old.data, old.len, &got), 0);
            req.len = 0;
        }
        CHECK_EQ(spro_client_channel_seal(d.ch, "POST", "/v1/ping", &ping, &req), 0);
        CHECK_EQ(server_open(&s, &req, "POST", "/v1/ping", kind == REPLAYED ? 1 : 0, be),
                 SPRO_MSG_PING);
        if (kind == OTHER_PATH) {
            server_seal(&s, &pong, "POST", "/v1/other", be, &res);
        } else if (kind == OTHER_REQUEST) {
            be[7] ^= 1;
            server_seal(&s, &pong, "POST", "/v1/ping", be, &res);
        } else if (kind == REPLAYED) {
            spro_buf_append(&res, old.data, old.len);
        } else {
            server_seal(&s, &pong, "POST", "/v1/ping", be, &res);
            if (kind == TAMPERED)
                res.data[res.len - 1] ^= 0x80;
            else if (kind == TRUNCATED)
                res.len = 8 + 15;
            else if (kind == MAX_COUNTER)
                memset(res.data, 0xff, 8);
        }
        if (spro_client_channel_open(d.ch, res.data, res.len, &got) != SPRO_EINTEGRITY)
            fprintf(stderr, "bad answer kind %d opened\n", kind);
        CHECK_EQ(spro_client_channel_open(d.ch, res.data, res.len, &got), SPRO_EINTEGRITY);
        req.len = 0;
        CHECK_EQ(spro_client_channel_seal(d.ch, "POST", "/v1/ping", &ping, &req), SPRO_EINTEGRITY);
        spro_buf_free(&req);
        spro_buf_free(&res);
        spro_buf_free(&old);
        server_free(&s, &d);
    }
}

/* Sync answers open with spro_client_channel_open_sync(): nested messages
 * into the arena, an error answer as a flat message. */
static void test_channel_sync_answers(void)
{
    struct server s;
    struct device d;
    CHECK(open_pair(&s, &d));
    struct spro_arena arena = {.cap = SPRO_PROTO_ARENA_BYTES(SPRO_NOISE_MAX_MESSAGE)};
    arena.base = malloc(arena.cap);
    CHECK(arena.base != NULL);
    struct spro_msg ping = {.type = SPRO_MSG_PING}, got;

    static const uint8_t cursor[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    struct spro_value v = {.kind = SPRO_VALUE_STR, .s = B("Martin")};
    struct spro_wire_sibling sib = {.val = v, .ver = {7, B("dev-2")}, .by = B("u2")};
    struct spro_wire_field field = {B("family_name"), &sib, 1};
    struct spro_wire_record rec = {.rtype = B("beneficiary"),
                                   .rid = B("0a2a57e7-eccb-456a-9999-58a0008fca1c"),
                                   .ben = B("0a2a57e7-eccb-456a-9999-58a0008fca1c"),
                                   .fields = &field,
                                   .nfields = 1};
    struct spro_msg reply = {.type = SPRO_MSG_PULL_REPLY};
    reply.u.pull_reply = (struct spro_msg_pull_reply){&rec, 1, {cursor, 8}, true, false};
    struct spro_msg err = {.type = SPRO_MSG_ERROR};
    err.u.error = (struct spro_msg_error){B("bad_value"), B("no")};
    const struct spro_msg *answers[] = {&reply, &err};
    for (uint64_t i = 0; i < 2; i++) {
        struct spro_buf req = {0}, res = {0};
        uint8_t be[8];
        CHECK_EQ(spro_client_channel_seal(d.ch, "POST", "/v1/sync/pull", &ping, &req), 0);
        CHECK_EQ(server_open(&s, &req, "POST", "/v1/sync/pull", i, be), SPRO_MSG_PING);
        server_seal(&s, answers[i], "POST", "/v1/sync/pull", be, &res);
        arena.len = 0;
        CHECK_EQ(spro_client_channel_open_sync(d.ch, res.data, res.len, &arena, &got), 0);
        CHECK(spro_proto_msg_equal(&got, answers[i]));
        spro_buf_free(&req);
        spro_buf_free(&res);
    }
    free(arena.base);
    server_free(&s, &d);
}

/* ---- Values on the command line and in output ---- */

static void test_values_assign_table(void)
{
    static const struct {
        const char *arg;
        int rc;
        const char *name;
        enum spro_value_kind kind;
        int64_t i; /* int; bool as 0/1 */
        const char *s;
    } cases[] = {
        {"given_name=Léa", 0, "given_name", SPRO_VALUE_STR, 0, "Léa"},
        {"a=true", 0, "a", SPRO_VALUE_BOOL, 1, NULL},
        {"a=false", 0, "a", SPRO_VALUE_BOOL, 0, NULL},
        {"a=null", 0, "a", SPRO_VALUE_NIL, 0, NULL},
        {"a=0", 0, "a", SPRO_VALUE_INT, 0, NULL},
        {"a=42", 0, "a", SPRO_VALUE_INT, 42, NULL},
        {"a=-7", 0, "a", SPRO_VALUE_INT, -7, NULL},
        {"a=9223372036854775807", 0, "a", SPRO_VALUE_INT, INT64_MAX, NULL},
        {"a=-9223372036854775808", 0, "a", SPRO_VALUE_INT, INT64_MIN, NULL},
        {"a=9223372036854775808", SPRO_ERANGE, NULL, 0, 0, NULL},
        {"phone=0601020304", 0, "phone", SPRO_VALUE_STR, 0, "0601020304"}, /* leading zero */
        {"a=-0", 0, "a", SPRO_VALUE_STR, 0, "-0"},
        {"a=+3", 0, "a", SPRO_VALUE_STR, 0, "+3"},
        {"a=1.5", 0, "a", SPRO_VALUE_STR, 0, "1.5"},
        {"a=True", 0, "a", SPRO_VALUE_STR, 0, "True"},
        {"a=", 0, "a", SPRO_VALUE_STR, 0, ""},
        {"a=x=y", 0, "a", SPRO_VALUE_STR, 0, "x=y"},
        {"a:=true", 0, "a", SPRO_VALUE_STR, 0, "true"},
        {"a:=12", 0, "a", SPRO_VALUE_STR, 0, "12"},
        {"a:=null", 0, "a", SPRO_VALUE_STR, 0, "null"},
        {"A-b_9=1", 0, "A-b_9", SPRO_VALUE_INT, 1, NULL},
        {"noequals", SPRO_ERANGE, NULL, 0, 0, NULL},
        {"=x", SPRO_ERANGE, NULL, 0, 0, NULL},
        {":=x", SPRO_ERANGE, NULL, 0, 0, NULL},
        {"a b=x", SPRO_ERANGE, NULL, 0, 0, NULL},
        {"é=x", SPRO_ERANGE, NULL, 0, 0, NULL},
        {"a:b=x", SPRO_ERANGE, NULL, 0, 0, NULL},
        {"a123456789a123456789a123456789a123456789a123456789a123456789abcd=1", 0,
         "a123456789a123456789a123456789a123456789a123456789a123456789abcd", SPRO_VALUE_INT, 1,
         NULL},
        {"a123456789a123456789a123456789a123456789a123456789a123456789abcde=1", SPRO_ERANGE, NULL,
         0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spro_client_assign a;
        char why[256] = "";
        int rc = spro_client_assign_parse(&a, cases[i].arg, why, sizeof why);
        if (rc != cases[i].rc)
            fprintf(stderr, "case %zu: %s\n", i, cases[i].arg);
        CHECK_EQ(rc, cases[i].rc);
        if (rc != 0) {
            CHECK(why[0] != '\0');
            continue;
        }
        CHECK_STR(a.name, cases[i].name);
        CHECK_EQ(a.val.kind, cases[i].kind);
        if (cases[i].kind == SPRO_VALUE_INT)
            CHECK_EQ(a.val.i, cases[i].i);
        if (cases[i].kind == SPRO_VALUE_BOOL)
            CHECK_EQ(a.val.b, cases[i].i);
        if (cases[i].kind == SPRO_VALUE_STR)
            CHECK_BYTES(a.val.s.p, a.val.s.len, cases[i].s, strlen(cases[i].s));
    }
    /* Strings up to the wire's limit. */
    char big[SPRO_SYNC_MAX_VALUE + 8];
    memset(big, 'x', sizeof big);
    big[0] = 'a';
    big[1] = '=';
    big[2 + SPRO_SYNC_MAX_VALUE] = '\0';
    struct spro_client_assign a;
    char why[256];
    CHECK_EQ(spro_client_assign_parse(&a, big, why, sizeof why), 0);
    CHECK_EQ(a.val.s.len, SPRO_SYNC_MAX_VALUE);
    big[2 + SPRO_SYNC_MAX_VALUE] = 'x';
    big[3 + SPRO_SYNC_MAX_VALUE] = '\0';
    CHECK_EQ(spro_client_assign_parse(&a, big, why, sizeof why), SPRO_ETOOLONG);
}

/* What spro_client_value_print() writes for v. */
static const char *printed(const struct spro_value *v)
{
    static char out[256];
    FILE *f = fmemopen(out, sizeof out, "w");
    spro_client_value_print(f, v);
    fclose(f);
    return out;
}

static void test_values_print(void)
{
    struct spro_value v = {.kind = SPRO_VALUE_NIL};
    CHECK_STR(printed(&v), "null");
    v = (struct spro_value){.kind = SPRO_VALUE_BOOL, .b = true};
    CHECK_STR(printed(&v), "true");
    v = (struct spro_value){.kind = SPRO_VALUE_INT, .i = INT64_MIN};
    CHECK_STR(printed(&v), "-9223372036854775808");
    static const struct {
        const char *in, *out;
    } strs[] = {
        {"Léa", "\"Léa\""},
        {"a\"b\\c", "\"a\\\"b\\\\c\""},
        {"l1\nl2\tx", "\"l1\\nl2\\tx\""},
        {"\x1b[31mred", "\"\\u001b[31mred\""}, /* no terminal escapes */
        {"del\x7f", "\"del\\u007f\""},         /* DEL */
        {"c1\xc2\x9b"
         "31m",
         "\"c1\\u009b31m\""},                 /* U+009B, a C1 control (CSI) */
        {"nbsp\xc2\xa0", "\"nbsp\xc2\xa0\""}, /* U+00A0 is no control */
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        v = (struct spro_value){.kind = SPRO_VALUE_STR,
                                .s = {(const uint8_t *)strs[i].in, strlen(strs[i].in)}};
        CHECK_STR(printed(&v), strs[i].out);
    }
}

static const struct check_test tests[] = {
    {"url_table", test_url_table},
    {"state_round_trip", test_state_round_trip},
    {"state_refuses_malformed", test_state_refuses_malformed},
    {"state_key_file", test_state_key_file},
    {"state_erase", test_state_erase},
    {"state_lock", test_state_lock},
    {"channel_handshake", test_channel_handshake},
    {"channel_wipe_and_tampering", test_channel_wipe_and_tampering},
    {"channel_sealed_framing", test_channel_sealed_framing},
    {"channel_rejects_answers", test_channel_rejects_answers},
    {"channel_sync_answers", test_channel_sync_answers},
    {"values_assign_table", test_values_assign_table},
    {"values_print", test_values_print},
};

int main(int argc, char **argv)
{
    if (spro_crypto_init() != 0)
        return 1;
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    if (tmp_root[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp_root);
    }
    return rc;
}
