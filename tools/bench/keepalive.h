/*
 * keepalive.h: the HTTP/1.1 keep-alive client of the load generators
 * (spro-bench, spro-sync-bench): blocking, one request at a time on one
 * loopback connection, Content-Length framing.  Benchmarks only.
 */
#ifndef SPRO_TOOLS_BENCH_KEEPALIVE_H
#define SPRO_TOOLS_BENCH_KEEPALIVE_H

#include <stddef.h>
#include <stdint.h>

/* A TCP connection to 127.0.0.1:port with TCP_NODELAY; exits on failure. */
int spro_bench_connect(int port);

/* A connection and its receive buffer (rbuf of cap bytes, caller's). */
struct spro_bench_conn {
    int fd;
    char *rbuf;
    size_t cap;
    size_t rlen;
};

/* POST path with body b (len bytes) as ctype; the answer's body goes to
 * *body (into c->rbuf, valid until the next request).  Returns the HTTP
 * status, or -1 if the connection failed or the answer does not fit. */
int spro_bench_request(struct spro_bench_conn *c, const char *path, const char *ctype,
                       const void *b, size_t len, const uint8_t **body, size_t *blen);

#endif
