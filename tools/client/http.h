/*
 * http: the minimal blocking HTTP/1.1 client of spro-client.
 *
 * One request per connection (`Connection: close`), framed by
 * Content-Length both ways: spro-server always sends Content-Length, and a
 * response without it (or with Transfer-Encoding) is refused.  Plain
 * http:// or https:// through OpenSSL (TLS 1.2 or later, SNI, the
 * certificate verified against the system store and the URL's host unless
 * the caller asks otherwise).  Hosts are names (getaddrinfo, every address
 * tried in turn), IPv4 literals or bracketed IPv6 literals.  One deadline
 * bounds the whole request: connecting, the TLS handshake, sending and
 * receiving; name resolution itself is bounded by the system resolver.
 *
 * Usage:
 *   struct spro_client_http_response res = {0};
 *   char why[256];
 *   if (spro_client_http_request(url, "GET", "/healthz", NULL, NULL, 0, &opt, &res, why,
 *                                sizeof why) != 0)
 *       fprintf(stderr, "%s\n", why);
 *   ... res.status, res.body ...
 *   spro_client_http_response_free(&res);
 */
#ifndef SPRO_TOOLS_CLIENT_HTTP_H
#define SPRO_TOOLS_CLIENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/proto.h"

#define SPRO_CLIENT_HTTP_MAX_HEADER 16384 /* bytes of a response's status line and headers */
#define SPRO_CLIENT_HTTP_MAX_BODY (16u * 1024 * 1024) /* bytes of a response body */
#define SPRO_CLIENT_HOST_MAX 255                      /* bytes of a host name or literal */

/* A server base URL: scheme and authority, no path
 * ("https://sync.example.fr:8443", "http://[::1]:8080"). */
struct spro_client_url {
    bool tls;                            /* https:// */
    char host[SPRO_CLIENT_HOST_MAX + 1]; /* name or address, without IPv6 brackets */
    char port[6];                        /* decimal 1..65535; 80 or 443 when the URL has none */
    char authority[SPRO_CLIENT_HOST_MAX + 9]; /* as written in the URL: the Host header */
};

/* Parses url: "http://" or "https://", a host (name of [A-Za-z0-9.-], IPv4
 * literal, or IPv6 literal in brackets), an optional ":port" (1..65535),
 * nothing after.  Returns 0, or SPRO_ECONFIG (u is zeroed then). */
SPRO_MUST_CHECK int spro_client_url_parse(struct spro_client_url *u, const char *url);

struct spro_client_http_options {
    int timeout_ms; /* deadline of the whole request, > 0 */
    bool insecure;  /* https: do not verify the certificate (self-signed test servers) */
};

struct spro_client_http_response {
    int status;             /* 100..599 */
    char content_type[128]; /* Content-Type as sent (cut if longer), "" if absent */
    struct spro_buf body;   /* exactly Content-Length bytes; owned by the caller */
};

/* Sends method (e.g. "POST") to url (a base URL, see above) + path, with
 * the body (len bytes) of type content_type (NULL for none; then neither
 * Content-Type nor, for a bodiless request, Content-Length is sent), and
 * reads the response into *res, whatever its status.  Returns 0; or on any
 * failure (bad URL, name resolution, connection, TLS or certificate, time
 * out, a response that is not well-formed HTTP/1.1 or is too large) a
 * negative code with one human sentence in why (whylen bytes), and *res
 * holds nothing to free: SPRO_ECONFIG (bad URL), -ETIMEDOUT, another
 * -errno, SPRO_EINTEGRITY (certificate not verified), or SPRO_EMALFORMED
 * (bad response). */
SPRO_MUST_CHECK int spro_client_http_request(const char *url, const char *method, const char *path,
                                             const char *content_type, const void *body, size_t len,
                                             const struct spro_client_http_options *opt,
                                             struct spro_client_http_response *res, char *why,
                                             size_t whylen);

/* Frees res's body (wiping it first: bodies may hold personal data);
 * accepts a zeroed response. */
void spro_client_http_response_free(struct spro_client_http_response *res);

#endif
