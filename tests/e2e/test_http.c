/*
 * test_http.c: end-to-end tests of spro-server's HTTP front, each against a
 * real server process on a loopback port: routes, the error model, body
 * and connection limits, slow clients, HTTP/2 opt-in and its request
 * budget, TLS with ALPN, logs, and graceful shutdown.
 *
 * usage: test_e2e_http SPRO_SERVER SPRO_ADMIN [TEST]...
 */
#include "check.h"
#include "harness.h"
#include "proto/proto.h"
#include "sync/sync.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One default server shared by the tests that need no special options,
 * started with the echo route mounted. */
static struct h_server shared;
static const char *shared_dir;

static int shared_port(void)
{
    if (shared.pid == 0) {
        static char dir[512];
        snprintf(dir, sizeof dir, "%s", h_make_datadir("shared"));
        shared_dir = dir;
        const char *extra[] = {"--bench", "--max-body", "64K", "--request-timeout", "1", NULL};
        if (h_server_start(&shared, shared_dir, extra) != 0) {
            fprintf(stderr, "cannot start the shared server\n");
            exit(1);
        }
    }
    return shared.port;
}

/* The server answers GET /healthz correctly: it is still serving. */
static int healthy(int port)
{
    struct h_response r;
    struct spro_msg m;
    return h_request(port, "GET", "/healthz", NULL, NULL, 0, &r) == 0 && r.status == 200 &&
           spro_proto_decode(r.body, r.body_len, &m) == 0 && m.type == SPRO_MSG_HEALTH;
}

/* Value of one sample in a /metrics response, or -1 if absent. */
static long long metric(struct h_response *r, const char *series)
{
    r->body[r->body_len < sizeof r->body ? r->body_len : sizeof r->body - 1] = '\0';
    char key[256];
    snprintf(key, sizeof key, "\n%s ", series);
    const char *p = strstr((const char *)r->body, key);
    return p ? atoll(p + strlen(key)) : -1;
}

static void echo_body(struct spro_buf *b, uint64_t id, const char *data)
{
    struct spro_msg m = {.type = SPRO_MSG_ECHO};
    m.u.echo.id = id;
    m.u.echo.data = (struct spro_bytes){(const uint8_t *)data, strlen(data)};
    if (spro_proto_encode(&m, b) != 0)
        abort();
}

static void test_healthz(void)
{
    struct h_response r;
    CHECK_EQ(h_request(shared_port(), "GET", "/healthz", NULL, NULL, 0, &r), 0);
    CHECK_EQ(r.status, 200);
    char ct[128];
    CHECK(h_header(&r, "content-type", ct, sizeof ct));
    CHECK_STR(ct, "application/msgpack");
    struct spro_msg m;
    CHECK_EQ(spro_proto_decode(r.body, r.body_len, &m), 0);
    CHECK_EQ(m.type, SPRO_MSG_HEALTH);
    CHECK(m.u.health.status.len == 2 && memcmp(m.u.health.status.p, "ok", 2) == 0);
    CHECK_EQ(m.u.health.schema, SPRO_DATA_SCHEMA);
}

static void test_metrics(void)
{
    int port = shared_port();
    CHECK(healthy(port));
    struct h_response r;
    CHECK_EQ(h_request(port, "GET", "/nothing-here", NULL, NULL, 0, &r), 0);
    CHECK_EQ(h_request(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    CHECK_EQ(r.status, 200);
    r.body[r.body_len < sizeof r.body ? r.body_len : sizeof r.body - 1] = '\0';
    const char *b = (const char *)r.body;
    CHECK(strstr(b, "spro_http_requests_total{route=\"healthz\",status=\"200\"}") != NULL);
    CHECK(strstr(b, "spro_http_requests_total{route=\"none\",status=\"404\"}") != NULL);
    CHECK(strstr(b, "spro_http_request_duration_seconds_bucket{route=\"healthz\",le=\"+Inf\"}") !=
          NULL);
    CHECK_EQ(metric(&r, "spro_open_connections"), 1); /* this very request */
    CHECK_EQ(metric(&r, "spro_worker_queue_depth"), 0);
    CHECK_INT(metric(&r, "spro_http_requests_total{route=\"none\",status=\"404\"}"), >=, 1);
    CHECK(strstr(b, "# TYPE spro_http_request_duration_seconds histogram") != NULL);
}

static void test_unknown_route(void)
{
    struct h_response r;
    CHECK_EQ(h_request(shared_port(), "GET", "/v1/nope", NULL, NULL, 0, &r), 0);
    CHECK_EQ(r.status, 404);
    CHECK_STR(h_error_code(&r), "not_found");
}

static void test_wrong_method(void)
{
    struct h_response r;
    CHECK_EQ(h_request(shared_port(), "DELETE", "/healthz", NULL, NULL, 0, &r), 0);
    CHECK_EQ(r.status, 405);
    CHECK_STR(h_error_code(&r), "method_not_allowed");
    char allow[32];
    CHECK(h_header(&r, "allow", allow, sizeof allow));
    CHECK_STR(allow, "get");
    CHECK_EQ(h_request(shared_port(), "GET", "/v1/bench/echo", NULL, NULL, 0, &r), 0);
    CHECK_EQ(r.status, 405);
}

static void test_echo(void)
{
    struct spro_buf b = {0};
    echo_body(&b, 42, "hello");
    struct h_response r;
    int rc = h_request(shared_port(), "POST", "/v1/bench/echo", "application/msgpack", b.data,
                       b.len, &r);
    spro_buf_free(&b);
    CHECK_EQ(rc, 0);
    CHECK_EQ(r.status, 200);
    struct spro_msg m;
    CHECK_EQ(spro_proto_decode(r.body, r.body_len, &m), 0);
    CHECK_EQ(m.type, SPRO_MSG_ECHO_REPLY);
    CHECK_EQ(m.u.echo.id, 42);
    CHECK_BYTES(m.u.echo.data.p, m.u.echo.data.len, "hello", 5);
}

static void test_echo_needs_bench_flag(void)
{
    struct h_server s;
    CHECK_EQ(h_server_start(&s, h_make_datadir("nobench"), NULL), 0);
    struct spro_buf b = {0};
    echo_body(&b, 1, "x");
    struct h_response r;
    int rc = h_request(s.port, "POST", "/v1/bench/echo", "application/msgpack", b.data, b.len, &r);
    spro_buf_free(&b);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
    CHECK_EQ(rc, 0);
    CHECK_EQ(r.status, 404);
}

static void test_wrong_content_type(void)
{
    struct spro_buf b = {0};
    echo_body(&b, 1, "x");
    struct h_response r, r2;
    int rc =
        h_request(shared_port(), "POST", "/v1/bench/echo", "application/json", b.data, b.len, &r);
    int rc2 = h_request(shared_port(), "POST", "/v1/bench/echo", NULL, b.data, b.len, &r2);
    spro_buf_free(&b);
    CHECK_EQ(rc, 0);
    CHECK_EQ(r.status, 415);
    CHECK_STR(h_error_code(&r), "unsupported_media_type");
    CHECK_EQ(rc2, 0);
    CHECK_EQ(r2.status, 415);
}

/* Bodies that are not acceptable msgpack get 400 with the precise code. */
static void test_bad_msgpack(void)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
        const char *code;
    } cases[] = {
        {"never-used byte", "\xc1", 1, "malformed"},
        {"cut str", "\x82\xa1v\x00\xa4typ", 8, "truncated"},
        {"not a map", "\x93\x01\x02\x03", 4, "bad_type"},
        {"empty body", "", 0, "truncated"},
    };
    int port = shared_port();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_response r;
        CHECK_EQ(h_request(port, "POST", "/v1/bench/echo", "application/msgpack", cases[i].bytes,
                           cases[i].len, &r),
                 0);
        if (r.status != 400 || strcmp(h_error_code(&r), cases[i].code) != 0)
            CHECK__FAIL("%s: got %d %s, want 400 %s", cases[i].name, r.status, h_error_code(&r),
                        cases[i].code);
    }
    /* A whole, valid echo followed by one more byte. */
    struct spro_buf b = {0};
    echo_body(&b, 1, "x");
    spro_buf_append(&b, "", 1);
    struct h_response r;
    CHECK_EQ(h_request(port, "POST", "/v1/bench/echo", "application/msgpack", b.data, b.len, &r),
             0);
    spro_buf_free(&b);
    CHECK_EQ(r.status, 400);
    CHECK_STR(h_error_code(&r), "trailing_bytes");
    CHECK(healthy(port));
}

/* A body over --max-body is refused with 413 from its headers alone. */
static void test_oversized_body(void)
{
    int port = shared_port();
    int fd = h_connect(port, NULL);
    CHECK(fd >= 0);
    const char *head = "POST /v1/bench/echo HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/msgpack\r\nContent-Length: 1000000\r\n\r\n";
    CHECK_EQ(h_send(fd, head, strlen(head)), 0);
    struct h_response r;
    int rc = h_read_response(fd, &r, 5000); /* no body byte was sent */
    close(fd);
    CHECK_EQ(rc, 0);
    CHECK_EQ(r.status, 413);
    CHECK(healthy(port));
}

/* A body shorter than its Content-Length: the connection is dropped at
 * the request timeout (or when the client leaves); nobody else notices. */
static void test_truncated_body(void)
{
    int port = shared_port();
    const char *head = "POST /v1/bench/echo HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/msgpack\r\nContent-Length: 100\r\n\r\n\x83\xa1v";
    int a = h_connect(port, NULL), b = h_connect(port, NULL);
    CHECK(a >= 0 && b >= 0);
    CHECK_EQ(h_send(a, head, strlen(head)), 0);
    CHECK_EQ(h_send(b, head, strlen(head)), 0);
    close(b); /* the client goes away mid-body */
    CHECK(healthy(port));
    CHECK_EQ(h_wait_closed(a, 5000), 1); /* --request-timeout 1 */
    close(a);
    CHECK(healthy(port));
}

/* Slowloris: headers dribbled in never complete; the server closes the
 * connection at the request timeout and serves others meanwhile. */
static void test_slow_client(void)
{
    int port = shared_port();
    int fd = h_connect(port, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(h_send(fd, "GET /healthz HTTP/1.1\r\n", 23), 0);
    CHECK(healthy(port));
    CHECK_EQ(h_send(fd, "X-A: b\r\n", 8), 0);
    CHECK_EQ(h_wait_closed(fd, 5000), 1);
    close(fd);
    /* An idle keep-alive connection is closed the same way. */
    fd = h_connect(port, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(h_wait_closed(fd, 5000), 1);
    close(fd);
    CHECK(healthy(port));
}

/* Connections over --max-connections-per-address or --max-connections
 * are closed at accept; freeing a slot lets a new one in. */
static void test_connection_caps(void)
{
    struct h_server s;
    const char *extra[] = {"--max-connections", "4", "--max-connections-per-address", "2", NULL};
    CHECK_EQ(h_server_start(&s, h_make_datadir("caps"), extra), 0);
    const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    struct h_response r;
    int fds[4];
    const char *src[4] = {"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"};
    for (int i = 0; i < 4; i++) {
        if (i == 3) { /* 3 open, 2 of them from 127.0.0.2: that address is full */
            int third = h_connect(s.port, "127.0.0.2");
            CHECK(third >= 0);
            CHECK_EQ(h_wait_closed(third, 5000), 1);
            close(third);
        }
        fds[i] = h_connect(s.port, src[i]);
        CHECK(fds[i] >= 0);
        CHECK_EQ(h_send(fds[i], get, strlen(get)), 0);
        CHECK_EQ(h_read_response(fds[i], &r, 5000), 0); /* accepted and served */
        CHECK_EQ(r.status, 200);
    }
    int fifth = h_connect(s.port, "127.0.0.4"); /* 4 open: the global cap */
    CHECK(fifth >= 0);
    CHECK_EQ(h_wait_closed(fifth, 5000), 1);
    close(fifth);
    close(fds[0]);
    usleep(100000);
    int again = -1, ok = 0;
    for (int tries = 0; tries < 50 && !ok; tries++) { /* until the close is seen */
        again = h_connect(s.port, "127.0.0.2");
        ok = again >= 0 && h_send(again, get, strlen(get)) == 0 &&
             h_read_response(again, &r, 2000) == 0 && r.status == 200;
        if (again >= 0 && !ok)
            close(again);
        if (!ok)
            usleep(50000);
    }
    CHECK(ok);
    CHECK_EQ(h_send(again, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 35), 0);
    CHECK_EQ(h_read_response(again, &r, 5000), 0);
    r.body[r.body_len < sizeof r.body ? r.body_len : sizeof r.body - 1] = '\0';
    /* Exactly one per-address refusal; at least one global one (the retry
     * loop above may have met the cap again before the close was seen). */
    CHECK_EQ(metric(&r, "spro_connections_rejected_total{cap=\"per_address\"}"), 1);
    CHECK_INT(metric(&r, "spro_connections_rejected_total{cap=\"global\"}"), >=, 1);
    close(again);
    for (int i = 1; i < 4; i++)
        close(fds[i]);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
}

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Without --http2, the HTTP/2 preface is refused: an HTTP/1.1 400 or a
 * closed connection, never an HTTP/2 SETTINGS frame. */
static void test_h2_preface_refused(void)
{
    int port = shared_port();
    int fd = h_connect(port, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(h_send(fd, h2_preface, sizeof h2_preface - 1), 0);
    CHECK_EQ(h_send(fd, "\0\0\0\4\0\0\0\0\0", 9), 0);
    char buf[16] = {0};
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    CHECK(n <= 0 || strncmp(buf, "HTTP/1.1 400", 12) == 0);
    CHECK(healthy(port));
}

/* HEADERS (GET /healthz, END_STREAM|END_HEADERS) then RST_STREAM(CANCEL). */
static size_t h2_open_cancel(unsigned char *p, uint32_t stream)
{
    static const unsigned char block[] = {0x82, 0x86, 0x04, 8,   '/',  'h', 'e', 'a',
                                          'l',  't',  'h',  'z', 0x01, 1,   'x'};
    size_t n = 0;
    unsigned char sid[4] = {(unsigned char)(stream >> 24 & 0x7f), (unsigned char)(stream >> 16),
                            (unsigned char)(stream >> 8), (unsigned char)stream};
    p[n++] = 0, p[n++] = 0, p[n++] = sizeof block, p[n++] = 1, p[n++] = 5;
    memcpy(p + n, sid, 4), n += 4;
    memcpy(p + n, block, sizeof block), n += sizeof block;
    p[n++] = 0, p[n++] = 0, p[n++] = 4, p[n++] = 3, p[n++] = 0;
    memcpy(p + n, sid, 4), n += 4;
    p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 8;
    return n;
}

/* With --http2: prior knowledge works (SETTINGS comes back), and a flood
 * of open-then-cancel streams is cut at the per-connection budget. */
static void test_h2_rapid_reset_budget(void)
{
    struct h_server s;
    const char *extra[] = {"--http2", "--http2-request-budget", "100", NULL};
    CHECK_EQ(h_server_start(&s, h_make_datadir("h2"), extra), 0);
    int fd = h_connect(s.port, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(h_send(fd, h2_preface, sizeof h2_preface - 1), 0);
    CHECK_EQ(h_send(fd, "\0\0\0\4\0\0\0\0\0", 9), 0);
    unsigned char frame[9];
    CHECK_EQ(recv(fd, frame, 9, MSG_WAITALL), 9);
    CHECK_EQ(frame[3], 4); /* SETTINGS */
    unsigned char buf[64];
    int sent = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        size_t n = h2_open_cancel(buf, 2 * i + 1);
        if (h_send(fd, buf, n) != 0)
            break; /* the server already cut us off */
        sent++;
    }
    CHECK(sent > 100);
    CHECK_EQ(h_wait_closed(fd, 5000), 1);
    close(fd);
    CHECK(healthy(s.port));
    struct h_response r;
    CHECK_EQ(h_request(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    CHECK_EQ(metric(&r, "spro_http2_budget_closed_total"), 1);
    char *log = h_server_log(&s);
    int logged = strstr(log, "\"event\":\"http2_budget_exhausted\"") != NULL;
    free(log);
    CHECK(logged);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
}

/* TLS connection with ALPN offer alpn; SSL_connect's success, *ssl set. */
static int tls_connect(int port, const unsigned char *alpn, size_t alpnlen, SSL_CTX **ctx,
                       SSL **ssl, int *fd)
{
    *ctx = SSL_CTX_new(TLS_client_method());
    *ssl = SSL_new(*ctx);
    *fd = h_connect(port, NULL);
    SSL_set_fd(*ssl, *fd);
    SSL_set_alpn_protos(*ssl, alpn, (unsigned)alpnlen);
    return SSL_connect(*ssl) == 1;
}

/* Clients that leave right after the TLS handshake do not leave
 * connections behind (they did with TLS 1.3 session tickets on). */
static void test_tls_handshake_then_leave(void)
{
    char cert[600], key[600];
    CHECK(h_tls_files(cert, key, sizeof cert));
    struct h_server s;
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, "--http2", NULL};
    CHECK_EQ(h_server_start(&s, h_make_datadir("tlsleave"), extra), 0);
    int connected = 0;
    for (int i = 0; i < 10; i++) {
        SSL_CTX *ctx;
        SSL *ssl;
        int fd;
        static const unsigned char h2[] = "\x02h2", h1[] = "\x08http/1.1";
        connected += tls_connect(s.port, i % 2 ? h2 : h1, i % 2 ? 3 : 9, &ctx, &ssl, &fd);
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        close(fd);
    }
    /* Poll the count over plain TLS HTTP/1.1 until only our probe is left. */
    long long open = -1;
    for (int tries = 0; tries < 50 && open != 1; tries++) {
        SSL_CTX *ctx;
        SSL *ssl;
        int fd;
        static const unsigned char h1[] = "\x08http/1.1";
        if (tls_connect(s.port, h1, 9, &ctx, &ssl, &fd)) {
            const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            SSL_write(ssl, req, (int)strlen(req));
            static char resp[65536];
            int n, len = 0;
            while ((n = SSL_read(ssl, resp + len, (int)sizeof resp - 1 - len)) > 0)
                len += n;
            resp[len] = '\0';
            const char *p = strstr(resp, "\nspro_open_connections ");
            open = p ? atoll(p + strlen("\nspro_open_connections ")) : -1;
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        close(fd);
        if (open != 1)
            usleep(100000);
    }
    int stop = h_server_stop(&s, 5000);
    CHECK_EQ(connected, 10);
    CHECK_EQ(open, 1);
    CHECK_EQ(stop, 0);
}

/* HEADERS (POST /v1/session, octet-stream), DATA (END_STREAM, 120 bytes of
 * junk: a plausible handshake size), RST_STREAM(CANCEL). */
static size_t h2_post_cancel(unsigned char *p, uint32_t stream)
{
    static const unsigned char block[] = {
        0x83, 0x86, 0x04, 11,   '/',  'v', '1', '/', 's', 'e', 's', 's', 'i', 'o', 'n',
        0x01, 1,    'x',  0x0f, 0x10, 24,  'a', 'p', 'p', 'l', 'i', 'c', 'a', 't', 'i',
        'o',  'n',  '/',  'o',  'c',  't', 'e', 't', '-', 's', 't', 'r', 'e', 'a', 'm'};
    unsigned char sid[4] = {(unsigned char)(stream >> 24 & 0x7f), (unsigned char)(stream >> 16),
                            (unsigned char)(stream >> 8), (unsigned char)stream};
    size_t n = 0;
    p[n++] = 0, p[n++] = 0, p[n++] = sizeof block, p[n++] = 1, p[n++] = 4;
    memcpy(p + n, sid, 4), n += 4;
    memcpy(p + n, block, sizeof block), n += sizeof block;
    p[n++] = 0, p[n++] = 0, p[n++] = 120, p[n++] = 0, p[n++] = 1;
    memcpy(p + n, sid, 4), n += 4;
    memset(p + n, 0x5a, 120), n += 120;
    p[n++] = 0, p[n++] = 0, p[n++] = 4, p[n++] = 3, p[n++] = 0;
    memcpy(p + n, sid, 4), n += 4;
    p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 8;
    return n;
}

/* Streams cancelled right after their body do not keep costing work: the
 * worker queue stays under its cap (64 per worker) and jobs whose request
 * went away are skipped, not run. */
static void test_h2_cancelled_work_is_bounded(void)
{
    struct h_server s;
    const char *extra[] = {"--http2", "--workers", "1", "--http2-request-budget", "1000000", NULL};
    CHECK_EQ(h_server_start(&s, h_make_datadir("h2work"), extra), 0);
    int fds[4];
    unsigned char buf[256];
    for (int c = 0; c < 4; c++) {
        fds[c] = h_connect(s.port, NULL);
        CHECK(fds[c] >= 0);
        CHECK_EQ(h_send(fds[c], h2_preface, sizeof h2_preface - 1), 0);
        CHECK_EQ(h_send(fds[c], "\0\0\0\4\0\0\0\0\0", 9), 0);
    }
    for (uint32_t i = 0; i < 1500; i++)
        for (int c = 0; c < 4; c++) {
            size_t n = h2_post_cancel(buf, 2 * i + 1);
            if (h_send(fds[c], buf, n) != 0)
                break;
        }
    struct h_response r;
    long long depth = -1, skipped = 0, refused = 0;
    for (int tries = 0; tries < 100; tries++) {
        CHECK_EQ(h_request(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
        long long d = metric(&r, "spro_worker_queue_depth");
        depth = d > depth ? d : depth;
        skipped = metric(&r, "spro_worker_jobs_skipped_total");
        refused = metric(&r, "spro_worker_jobs_refused_total");
        if (d == 0 && tries > 3)
            break;
        usleep(20000);
    }
    for (int c = 0; c < 4; c++)
        close(fds[c]);
    CHECK(healthy(s.port));
    CHECK_EQ(h_server_stop(&s, 5000), 0);
    CHECK_INT(depth, <=, 64);
    CHECK_INT(skipped + refused, >, 0);
}

/* TLS: ALPN picks http/1.1 unless --http2; requests work over TLS. */
static void tls_case(bool http2)
{
    char cert[600], key[600];
    CHECK(h_tls_files(cert, key, sizeof cert));
    struct h_server s;
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, http2 ? "--http2" : NULL, NULL};
    CHECK_EQ(h_server_start(&s, h_make_datadir(http2 ? "tls2" : "tls1"), extra), 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    int fd = h_connect(s.port, NULL);
    SSL_set_fd(ssl, fd);
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(ssl, alpn, sizeof alpn - 1);
    int ok = SSL_connect(ssl) == 1;
    const unsigned char *sel = NULL;
    unsigned sellen = 0;
    char got[64] = "", resp[256] = "";
    if (ok) {
        SSL_get0_alpn_selected(ssl, &sel, &sellen);
        snprintf(got, sizeof got, "%.*s", (int)sellen, sel ? (const char *)sel : "");
        if (!http2) {
            const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            SSL_write(ssl, req, (int)strlen(req));
            int n = SSL_read(ssl, resp, sizeof resp - 1);
            resp[n > 0 ? n : 0] = '\0';
        }
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    int stop = h_server_stop(&s, 5000);
    CHECK(ok);
    CHECK_STR(got, http2 ? "h2" : "http/1.1");
    if (!http2)
        CHECK(strncmp(resp, "HTTP/1.1 200", 12) == 0);
    CHECK_EQ(stop, 0);
}

static void test_tls_http1_only(void)
{
    tls_case(false);
}

static void test_tls_http2_alpn(void)
{
    tls_case(true);
}

/* Logs are JSON lines and never contain request bodies. */
static void test_logs_json_no_bodies(void)
{
    int port = shared_port();
    struct spro_buf b = {0};
    echo_body(&b, 7, "SENTINEL-BODY-4f1c");
    struct h_response r;
    CHECK_EQ(h_request(port, "POST", "/v1/bench/echo", "application/msgpack", b.data, b.len, &r),
             0);
    CHECK_EQ(h_request(port, "POST", "/v1/bench/echo", "text/plain", b.data, b.len, &r), 0);
    spro_buf_free(&b);
    char *log = h_server_log(&shared);
    int lines = 0, bad = 0;
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        size_t n = strlen(line);
        lines++;
        if (n < 2 || line[0] != '{' || line[n - 1] != '}' || strstr(line, "\"ts\":") == NULL ||
            strstr(line, "\"event\":") == NULL)
            bad++;
        if (strstr(line, "SENTINEL-BODY-4f1c") != NULL)
            bad++;
    }
    free(log);
    CHECK(lines >= 2);
    CHECK_EQ(bad, 0);
}

/* SIGTERM: exits 0 well within 5 s even with an idle connection open,
 * and closes the database cleanly (the WAL is checkpointed away). */
static void test_graceful_shutdown(void)
{
    struct h_server s;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", h_make_datadir("stop"));
    CHECK_EQ(h_server_start(&s, dir, NULL), 0);
    CHECK(healthy(s.port));
    int idle = h_connect(s.port, NULL);
    CHECK(idle >= 0);
    CHECK_EQ(h_send(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34), 0);
    struct h_response r;
    CHECK_EQ(h_read_response(idle, &r, 5000), 0);
    CHECK_EQ(h_server_stop(&s, 5000), 0);
    CHECK_EQ(h_wait_closed(idle, 1000), 1);
    close(idle);
    char wal[600];
    snprintf(wal, sizeof wal, "%s/data.db-wal", dir);
    CHECK(access(wal, F_OK) != 0);
    char *log = h_server_log(&s);
    int done = strstr(log, "\"event\":\"shutdown_complete\"") != NULL;
    free(log);
    CHECK(done);
}

/* The server refuses to start on a missing data directory or a master key
 * others can read, with a message naming the file. */
static void test_refuses_bad_datadir(void)
{
    struct h_server s;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/does-not-exist", h_tmpdir());
    CHECK_EQ(h_server_start(&s, missing, NULL), -1);
    char *log = h_server_log(&s);
    int named = strstr(log, "does-not-exist") != NULL && strstr(log, "data_dir_open_failed");
    free(log);
    CHECK(named);

    char dir[512], key[600];
    snprintf(dir, sizeof dir, "%s", h_make_datadir("loose"));
    snprintf(key, sizeof key, "%s/master.key", dir);
    CHECK_EQ(chmod(key, 0644), 0);
    CHECK_EQ(h_server_start(&s, dir, NULL), -1);
    log = h_server_log(&s);
    named = strstr(log, "master.key") != NULL && strstr(log, "chmod 600") != NULL;
    free(log);
    CHECK(named);
}

static void test_bad_flags(void)
{
    char out[4096];
    const char *a1[] = {h_server_bin, "--max-body", "lots", NULL};
    CHECK_EQ(h_run(a1, out, sizeof out), 2);
    CHECK(strstr(out, "--max-body") != NULL);
    const char *a2[] = {h_server_bin, "--listen", "127.0.0.1", NULL};
    CHECK_EQ(h_run(a2, out, sizeof out), 2);
    const char *a3[] = {h_server_bin, "--frobnicate", NULL};
    CHECK_EQ(h_run(a3, out, sizeof out), 2);
    CHECK(strstr(out, "unknown option") != NULL);
    const char *a4[] = {h_server_bin, "--help", NULL};
    CHECK_EQ(h_run(a4, out, sizeof out), 0);
    CHECK(strstr(out, "--http2") != NULL && strstr(out, "--max-connections-per-address") != NULL);
}

/* Last: after everything above, the shared server still serves. */
static void test_still_serving(void)
{
    CHECK(healthy(shared_port()));
    CHECK_EQ(h_server_stop(&shared, 5000), 0);
}

static const struct check_test tests[] = {
    {"healthz", test_healthz},
    {"metrics", test_metrics},
    {"unknown_route", test_unknown_route},
    {"wrong_method", test_wrong_method},
    {"echo", test_echo},
    {"echo_needs_bench_flag", test_echo_needs_bench_flag},
    {"wrong_content_type", test_wrong_content_type},
    {"bad_msgpack", test_bad_msgpack},
    {"oversized_body", test_oversized_body},
    {"truncated_body", test_truncated_body},
    {"slow_client", test_slow_client},
    {"connection_caps", test_connection_caps},
    {"h2_preface_refused", test_h2_preface_refused},
    {"h2_rapid_reset_budget", test_h2_rapid_reset_budget},
    {"h2_cancelled_work_is_bounded", test_h2_cancelled_work_is_bounded},
    {"tls_http1_only", test_tls_http1_only},
    {"tls_http2_alpn", test_tls_http2_alpn},
    {"tls_handshake_then_leave", test_tls_handshake_then_leave},
    {"logs_json_no_bodies", test_logs_json_no_bodies},
    {"graceful_shutdown", test_graceful_shutdown},
    {"refuses_bad_datadir", test_refuses_bad_datadir},
    {"bad_flags", test_bad_flags},
    {"still_serving", test_still_serving},
};

int main(int argc, char **argv)
{
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
