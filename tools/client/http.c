/*
 * http.c: see http.h.  One connection per request: resolve, connect
 * (non-blocking, every address in turn), optionally TLS, write the request,
 * read the head, then exactly Content-Length bytes of body.  Every wait is
 * a poll() bounded by the request's deadline.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"

/* ---- URLs ---- */

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-';
}

int spro_client_url_parse(struct spro_client_url *u, const char *url)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        u->tls = true;
    } else {
        goto bad;
    }
    size_t alen = strlen(p);
    if (alen == 0 || alen >= sizeof u->authority)
        goto bad;
    memcpy(u->authority, p, alen + 1);

    const char *host = p, *host_end;
    if (*p == '[') { /* IPv6 literal */
        host_end = strchr(p, ']');
        if (host_end == NULL)
            goto bad;
        host++;
        p = host_end + 1;
        char tmp[SPRO_CLIENT_HOST_MAX + 1];
        struct in6_addr a6;
        size_t n = (size_t)(host_end - host);
        if (n == 0 || n >= sizeof tmp)
            goto bad;
        memcpy(tmp, host, n);
        tmp[n] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            goto bad;
    } else {
        while (host_char(*p))
            p++;
        host_end = p;
        if (host_end == host || *host == '.' || *host == '-')
            goto bad;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen > SPRO_CLIENT_HOST_MAX)
        goto bad;
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';

    if (*p == ':') {
        p++;
        unsigned long port = 0;
        size_t digits = 0;
        while (isdigit((unsigned char)p[digits]) && digits < 6)
            port = port * 10 + (unsigned long)(p[digits++] - '0');
        if (digits == 0 || digits > 5 || port < 1 || port > 65535)
            goto bad;
        p += digits;
        snprintf(u->port, sizeof u->port, "%lu", port);
    } else {
        snprintf(u->port, sizeof u->port, "%s", u->tls ? "443" : "80");
    }
    if (*p != '\0')
        goto bad; /* a path, a query, user info or stray characters */
    return 0;
bad:
    memset(u, 0, sizeof *u);
    return SPRO_ECONFIG;
}

/* ---- One connection ---- */

struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    uint64_t deadline; /* CLOCK_MONOTONIC, ms */
    char *why;
    size_t whylen;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4))) static int fail(struct conn *c, int rc, const char *fmt, ...)
{
    if (c->whylen > 0 && c->why[0] == '\0') { /* the first, most precise reason wins */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, c->whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Waits until fd is ready for events or the deadline passes: 0 or -ETIMEDOUT. */
static int wait_fd(struct conn *c, short events)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= c->deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r = poll(&pfd, 1, (int)(c->deadline - now));
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int timed_out(struct conn *c, const char *what)
{
    return fail(c, -ETIMEDOUT, "timed out %s (see --timeout)", what);
}

/* Connects to one address; 0 with c->fd set, or -errno. */
static int connect_one(struct conn *c, const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    c->fd = fd;
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
        } else if ((rc = wait_fd(c, POLLOUT)) == 0) {
            int err = 0;
            socklen_t elen = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
                rc = -errno;
            else if (err != 0)
                rc = -err;
        }
    }
    if (rc != 0) {
        close(fd);
        c->fd = -1;
        return rc;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static int connect_any(struct conn *c, const struct spro_client_url *u)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(u->host, u->port, &hints, &res);
    if (gai != 0)
        return fail(c, -EHOSTUNREACH, "cannot resolve %s: %s", u->host,
                    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    int rc = -EHOSTUNREACH;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = connect_one(c, ai);
        if (rc == 0 || rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (rc == -ETIMEDOUT)
        return timed_out(c, "connecting");
    if (rc != 0)
        return fail(c, rc, "cannot connect to %s port %s: %s", u->host, u->port, strerror(-rc));
    return 0;
}

/* The first queued OpenSSL error as text (the queue is cleared). */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, cap, "connection closed during the TLS exchange");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

/* Waits as OpenSSL asks after a non-blocking call returned r: 0 to retry,
 * or a negative code (with why set) for a real failure. */
static int ssl_wait(struct conn *c, int r, const char *what)
{
    int e = SSL_get_error(c->ssl, r);
    int rc;
    if (e == SSL_ERROR_WANT_READ)
        rc = wait_fd(c, POLLIN);
    else if (e == SSL_ERROR_WANT_WRITE)
        rc = wait_fd(c, POLLOUT);
    else {
        char buf[256];
        int err = e == SSL_ERROR_SYSCALL && errno != 0 ? -errno : -EPROTO;
        return fail(c, err, "TLS error %s: %s", what, ssl_reason(buf, sizeof buf));
    }
    if (rc == -ETIMEDOUT)
        return timed_out(c, what);
    return rc;
}

static int tls_start(struct conn *c, const struct spro_client_url *u, bool insecure)
{
    char buf[256];
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL)
        return fail(c, -ENOMEM, "cannot set up TLS: %s", ssl_reason(buf, sizeof buf));
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    if (!insecure) {
        if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
            return fail(c, -EPROTO, "cannot load the system's certificate store: %s",
                        ssl_reason(buf, sizeof buf));
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    }
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return fail(c, -ENOMEM, "cannot set up TLS: %s", ssl_reason(buf, sizeof buf));
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_set_alpn_protos(c->ssl, alpn, sizeof alpn - 1);
    struct in6_addr any;
    bool literal =
        inet_pton(AF_INET, u->host, &any) == 1 || inet_pton(AF_INET6, u->host, &any) == 1;
    if (!literal) {
        /* SNI is for names only (RFC 6066); the certificate must name the host. */
        if (SSL_set_tlsext_host_name(c->ssl, u->host) != 1 || SSL_set1_host(c->ssl, u->host) != 1)
            return fail(c, -EPROTO, "cannot set up TLS for %s", u->host);
    } else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host) != 1) {
        return fail(c, -EPROTO, "cannot set up TLS for %s", u->host);
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        long v = SSL_get_verify_result(c->ssl);
        if (!insecure && v != X509_V_OK)
            return fail(c, SPRO_EINTEGRITY,
                        "the TLS certificate of %s was not verified: %s (for a test server with a "
                        "self-signed certificate, use --insecure)",
                        u->host, X509_verify_cert_error_string(v));
        int rc = ssl_wait(c, r, "during the TLS handshake");
        if (rc != 0)
            return rc;
    }
}

static int send_all(struct conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t chunk = n > 1u << 30 ? 1u << 30 : n;
        if (c->ssl != NULL) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, p, (int)chunk);
            if (r > 0) {
                p += r;
                n -= (size_t)r;
                continue;
            }
            int rc = ssl_wait(c, r, "sending the request");
            if (rc != 0)
                return rc;
            continue;
        }
        ssize_t r = send(c->fd, p, chunk, MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c, POLLOUT);
            if (rc == -ETIMEDOUT)
                return timed_out(c, "sending the request");
            if (rc != 0)
                return fail(c, rc, "cannot send the request: %s", strerror(-rc));
        } else {
            int err = r < 0 ? errno : EPIPE;
            return fail(c, -err, "cannot send the request: %s", strerror(err));
        }
    }
    return 0;
}

/* Reads up to cap bytes: the count (> 0), 0 at the end of the stream, or a
 * negative code. */
static ssize_t recv_some(struct conn *c, uint8_t *p, size_t cap)
{
    if (cap > 1u << 30)
        cap = 1u << 30;
    for (;;) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, p, (int)cap);
            if (r > 0)
                return r;
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN)
                return 0;
            int rc = ssl_wait(c, r, "reading the response");
            if (rc != 0)
                return rc;
            continue;
        }
        ssize_t r = recv(c->fd, p, cap, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            int err = errno;
            return fail(c, -err, "cannot read the response: %s", strerror(err));
        }
        int rc = wait_fd(c, POLLIN);
        if (rc == -ETIMEDOUT)
            return timed_out(c, "waiting for the response");
        if (rc != 0)
            return fail(c, rc, "cannot read the response: %s", strerror(-rc));
    }
}

/* ---- Response head ---- */

static int bad_response(struct conn *c, const char *what)
{
    return fail(c, SPRO_EMALFORMED, "the server's answer is not usable HTTP/1.1: %s", what);
}

/* Parses the head (status line and headers, CRLF-terminated lines, len
 * bytes without the final empty line); sets *clen. */
static int parse_head(struct conn *c, char *head, size_t len, struct spro_client_http_response *res,
                      size_t *clen)
{
    head[len] = '\0';
    if (strlen(head) != len)
        return bad_response(c, "NUL byte in the head");
    if (strncmp(head, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)head[7]) || head[8] != ' ' ||
        !isdigit((unsigned char)head[9]) || !isdigit((unsigned char)head[10]) ||
        !isdigit((unsigned char)head[11]) || (head[12] != ' ' && head[12] != '\r'))
        return bad_response(c, "bad status line");
    res->status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    if (res->status < 100)
        return bad_response(c, "bad status code");
    bool have_len = false;
    char *line = strstr(head, "\r\n");
    while (line != NULL) {
        line += 2;
        char *end = strstr(line, "\r\n");
        if (end != NULL)
            *end = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || *line == ' ' || *line == '\t')
            return bad_response(c, "bad header line");
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strlen(v);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            v[--vlen] = '\0';
        if (strcasecmp(line, "content-length") == 0) {
            size_t n = 0;
            if (vlen == 0 || vlen > 10)
                return bad_response(c, "bad Content-Length");
            for (size_t i = 0; i < vlen; i++) {
                if (!isdigit((unsigned char)v[i]))
                    return bad_response(c, "bad Content-Length");
                n = n * 10 + (size_t)(v[i] - '0');
            }
            if (have_len && n != *clen)
                return bad_response(c, "conflicting Content-Length headers");
            *clen = n;
            have_len = true;
        } else if (strcasecmp(line, "transfer-encoding") == 0) {
            return bad_response(c, "Transfer-Encoding is not supported");
        } else if (strcasecmp(line, "content-type") == 0) {
            snprintf(res->content_type, sizeof res->content_type, "%s", v);
        }
        line = end;
    }
    if (!have_len)
        return bad_response(c, "no Content-Length");
    if (*clen > SPRO_CLIENT_HTTP_MAX_BODY)
        return fail(c, SPRO_EMALFORMED, "the server's answer is too large (%zu bytes, at most %u)",
                    *clen, SPRO_CLIENT_HTTP_MAX_BODY);
    return 0;
}

static int read_response(struct conn *c, struct spro_client_http_response *res)
{
    /* The head, read until its empty line into a fixed buffer; bytes past
     * it are the body's start. */
    static_assert(SPRO_CLIENT_HTTP_MAX_HEADER >= 4096, "head buffer");
    char *head = malloc(SPRO_CLIENT_HTTP_MAX_HEADER + 1);
    if (head == NULL)
        SPRO_BUG("out of memory");
    size_t len = 0, hlen = 0;
    int rc = 0;
    for (;;) {
        if (len == SPRO_CLIENT_HTTP_MAX_HEADER) {
            rc = bad_response(c, "head too long");
            break;
        }
        ssize_t n = recv_some(c, (uint8_t *)head + len, SPRO_CLIENT_HTTP_MAX_HEADER - len);
        if (n <= 0) {
            rc = n < 0 ? (int)n
                       : fail(c, -ECONNRESET, "the server closed the connection without an answer");
            break;
        }
        size_t from = len >= 3 ? len - 3 : 0;
        len += (size_t)n;
        const char *eoh = memmem(head + from, len - from, "\r\n\r\n", 4);
        if (eoh != NULL) {
            hlen = (size_t)(eoh - head);
            break;
        }
    }
    size_t have = rc == 0 ? len - (hlen + 4) : 0, clen = 0;
    if (rc == 0)
        rc = parse_head(c, head, hlen, res, &clen); /* writes only within head[0..hlen] */
    if (rc == 0 && have > clen)
        rc = bad_response(c, "more bytes than Content-Length");
    if (rc == 0 && clen > 0) {
        /* The body, read straight into a buffer of its exact size. */
        res->body.data = malloc(clen);
        if (res->body.data == NULL)
            SPRO_BUG("out of memory");
        res->body.cap = clen;
        memcpy(res->body.data, head + hlen + 4, have);
        res->body.len = have;
    }
    spro_memzero(head, len);
    free(head);
    while (rc == 0 && res->body.len < clen) {
        ssize_t n = recv_some(c, res->body.data + res->body.len, clen - res->body.len);
        if (n <= 0)
            rc = n < 0 ? (int)n
                       : fail(c, -ECONNRESET,
                              "the server closed the connection in the middle of its answer");
        else
            res->body.len += (size_t)n;
    }
    return rc;
}

int spro_client_http_request(const char *url, const char *method, const char *path,
                             const char *content_type, const void *body, size_t len,
                             const struct spro_client_http_options *opt,
                             struct spro_client_http_response *res, char *why, size_t whylen)
{
    if (opt->timeout_ms <= 0 || method == NULL || path == NULL || path[0] != '/' ||
        (len > 0 && content_type == NULL))
        SPRO_BUG("spro_client_http_request: bad arguments");
    memset(res, 0, sizeof *res);
    if (whylen > 0)
        why[0] = '\0';
    struct conn c = {
        .fd = -1, .deadline = now_ms() + (uint64_t)opt->timeout_ms, .why = why, .whylen = whylen};
    struct spro_client_url u;
    if (spro_client_url_parse(&u, url) != 0)
        return fail(&c, SPRO_ECONFIG, "not a server URL: %s", url);

    int rc = connect_any(&c, &u);
    if (rc == 0 && u.tls)
        rc = tls_start(&c, &u, opt->insecure);
    if (rc == 0) {
        char clen[32] = "";
        if (content_type != NULL)
            snprintf(clen, sizeof clen, "%zu\r\n", len);
        char head[1024];
        int n = snprintf(head, sizeof head,
                         "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: spro-client/%s\r\n"
                         "Connection: close\r\n%s%s%s%s\r\n",
                         method, path, u.authority, SPRO_VERSION,
                         content_type ? "Content-Type: " : "", content_type ? content_type : "",
                         content_type ? "\r\nContent-Length: " : "", clen);
        if (n < 0 || (size_t)n >= sizeof head)
            SPRO_BUG("request head too long");
        rc = send_all(&c, (const uint8_t *)head, (size_t)n);
    }
    if (rc == 0 && len > 0)
        rc = send_all(&c, body, len);
    if (rc == 0)
        rc = read_response(&c, res);

    if (c.ssl != NULL)
        SSL_free(c.ssl);
    if (c.ctx != NULL)
        SSL_CTX_free(c.ctx);
    if (c.fd >= 0)
        close(c.fd);
    if (rc != 0)
        spro_client_http_response_free(res);
    return rc;
}

void spro_client_http_response_free(struct spro_client_http_response *res)
{
    if (res->body.data != NULL)
        spro_memzero(res->body.data, res->body.cap);
    spro_buf_free(&res->body);
    memset(res, 0, sizeof *res);
}
