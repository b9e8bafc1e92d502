/*
 * spro-bench: closed-loop load on one spro-server, for the benchmarks (not
 * a test).  Each of N threads keeps one HTTP/1.1 keep-alive connection and
 * sends its next request as soon as the previous answer is in.
 *
 *   spro-bench --port P --data DIR --mode plain-echo|sealed-echo|handshake
 *              [--connections N] [--seconds S] [--size BYTES]
 *
 * plain-echo: POST /v1/bench/echo, a msgpack echo of SIZE bytes.
 * sealed-echo: the same echo sealed in the device channel (POST
 *   /v1/bench/sealed-echo): one enrolled device and session per thread.
 * handshake: a full Noise_IK handshake (POST /v1/session) per request.
 * Devices are enrolled with tickets issued straight into DIR (the server's
 * data directory; the organisation "bench" and user "bench" are created).
 * Prints one line: "<mode> requests/s <r> p50_us <a> p99_us <b> errors <n>".
 */
#include "channel.h"
#include "keepalive.h"
#include "crypto/crypto.h"
#include "proto/proto.h"
#include "sync/sync.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { PLAIN, SEALED, HANDSHAKE };

static int port, conns = 8, seconds = 10;
static size_t size = 1024;
static enum mode mode;
static struct spro_datadir *dd;
static uint8_t server_pk[SPRO_KEY_BYTES];
static _Atomic bool stop;

#define MAX_SAMPLES 4000000

struct worker {
    pthread_t t;
    int fd;
    uint64_t done, errors;
    uint32_t *lat_us; /* one sample per request */
    size_t nlat;
    uint8_t sk[SPRO_KEY_BYTES];
    uint64_t ts;
    struct spro_client_channel *ch;
    char rbuf[1 << 17];
    size_t rlen;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int connect_local(void)
{
    return spro_bench_connect(port);
}

/* One request on the worker's connection; the body of a 2xx answer goes
 * to *body (pointing into w->rbuf).  Returns the status, or -1. */
static int request(struct worker *w, const char *path, const char *ctype, const void *b, size_t len,
                   const uint8_t **body, size_t *blen)
{
    struct spro_bench_conn k = {w->fd, w->rbuf, sizeof w->rbuf, 0};
    return spro_bench_request(&k, path, ctype, b, len, body, blen);
}

/* A handshake for the worker's device (with a ticket on first use). */
static int handshake(struct worker *w, const struct spro_ticket *t)
{
    spro_client_channel_destroy(w->ch);
    w->ch = NULL;
    if (spro_client_channel_create(&w->ch, server_pk, w->sk) != 0)
        return -1;
    struct spro_msg hello = {.type = SPRO_MSG_HELLO}, m;
    hello.u.hello.ts = ++w->ts;
    hello.u.hello.app = (struct spro_bytes){(const uint8_t *)"spro-bench", 10};
    hello.u.hello.schema = 1;
    if (t != NULL) {
        hello.u.hello.has_ticket = true;
        hello.u.hello.ticket_id = (struct spro_bytes){(const uint8_t *)t->id, 16};
        hello.u.hello.ticket_secret = (struct spro_bytes){t->secret, 32};
    }
    struct spro_buf m1 = {0};
    const uint8_t *body;
    size_t blen;
    int rc = spro_client_channel_hello(w->ch, &hello, &m1);
    int st = rc == 0 ? request(w, "/v1/session", "application/octet-stream", m1.data, m1.len, &body,
                               &blen)
                     : -1;
    spro_buf_free(&m1);
    if (st != 200 || spro_client_channel_welcome(w->ch, body, blen, &m) != 0 ||
        m.type != SPRO_MSG_WELCOME)
        return -1;
    return 0;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    uint8_t *data = malloc(size);
    memset(data, 'x', size);
    struct spro_msg echo = {.type = SPRO_MSG_ECHO}, m;
    echo.u.echo.data = (struct spro_bytes){data, size};
    struct spro_buf plain = {0};
    if (spro_proto_encode(&echo, &plain) != 0)
        abort();
    w->fd = connect_local();
    while (!stop) {
        uint64_t t0 = now_us();
        const uint8_t *body;
        size_t blen;
        int ok = 0;
        if (mode == PLAIN) {
            ok = request(w, "/v1/bench/echo", "application/msgpack", plain.data, plain.len, &body,
                         &blen) == 200;
        } else if (mode == HANDSHAKE) {
            ok = handshake(w, NULL) == 0;
        } else {
            struct spro_buf f = {0};
            echo.u.echo.id = w->done;
            ok = spro_client_channel_seal(w->ch, "POST", "/v1/bench/sealed-echo", &echo, &f) == 0 &&
                 request(w, "/v1/bench/sealed-echo", "application/octet-stream", f.data, f.len,
                         &body, &blen) == 200 &&
                 spro_client_channel_open(w->ch, body, blen, &m) == 0 &&
                 m.type == SPRO_MSG_ECHO_REPLY && m.u.echo.data.len == size;
            spro_buf_free(&f);
        }
        if (!ok) {
            w->errors++;
            if (w->errors > 100)
                break;
            continue;
        }
        w->done++;
        if (w->nlat < MAX_SAMPLES / (size_t)conns)
            w->lat_us[w->nlat++] = (uint32_t)(now_us() - t0);
    }
    spro_buf_free(&plain);
    free(data);
    close(w->fd);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: spro-bench --port P --data DIR --mode plain-echo|sealed-echo|handshake"
                    " [--connections N] [--seconds S] [--size BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *data = NULL, *mname = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0)
            usage();
        if (v == NULL)
            usage();
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(v);
        else if (strcmp(argv[i], "--data") == 0)
            data = v;
        else if (strcmp(argv[i], "--mode") == 0)
            mname = v;
        else if (strcmp(argv[i], "--connections") == 0)
            conns = atoi(v);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(v);
        else if (strcmp(argv[i], "--size") == 0)
            size = (size_t)atol(v);
        else
            usage();
    }
    if (port <= 0 || data == NULL || mname == NULL || conns < 1 || conns > 256 || seconds < 1 ||
        size > 60000)
        usage();
    mode = strcmp(mname, "plain-echo") == 0    ? PLAIN
           : strcmp(mname, "sealed-echo") == 0 ? SEALED
           : strcmp(mname, "handshake") == 0   ? HANDSHAKE
                                               : (usage(), PLAIN);
    char why[512];
    if (spro_crypto_init() != 0 || spro_datadir_open(data, &dd, why, sizeof why) != 0) {
        fprintf(stderr, "spro-bench: %s\n", why);
        return 1;
    }
    memcpy(server_pk, spro_datadir_noise_public(dd), SPRO_KEY_BYTES);
    int rc = spro_org_add(dd, "bench", "Benchmark", "other", NULL, 0);
    if ((rc == 0 || rc == SPRO_EEXISTS) &&
        ((rc = spro_user_add(dd, "bench", "bench", "counsellor", NULL, 0)) == SPRO_EEXISTS))
        rc = 0;
    if (rc != 0) {
        fprintf(stderr, "spro-bench: cannot create the bench user: %s\n", spro_strerror(rc));
        return 1;
    }
    struct worker *ws = calloc((size_t)conns, sizeof *ws);
    for (int i = 0; i < conns; i++) {
        struct worker *w = &ws[i];
        w->lat_us = malloc(sizeof(uint32_t) * (MAX_SAMPLES / (size_t)conns + 1));
        uint8_t pk[SPRO_KEY_BYTES];
        spro_crypto_dh_keypair(pk, w->sk);
        w->ts = (uint64_t)time(NULL) * 1000;
        if (mode != PLAIN) { /* enrol now, outside the measurement */
            struct spro_ticket t;
            rc = spro_ticket_issue(dd, "bench", (int64_t)time(NULL), 900, &t, NULL, 0);
            w->fd = connect_local();
            if (rc != 0 || handshake(w, &t) != 0) {
                fprintf(stderr, "spro-bench: enrolment failed\n");
                return 1;
            }
            close(w->fd);
        }
    }
    for (int i = 0; i < conns; i++)
        pthread_create(&ws[i].t, NULL, run, &ws[i]);
    uint64_t t0 = now_us();
    sleep((unsigned)seconds);
    stop = true;
    uint64_t total = 0, errors = 0;
    size_t nlat = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(ws[i].t, NULL);
        total += ws[i].done;
        errors += ws[i].errors;
        nlat += ws[i].nlat;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    uint32_t *all = malloc(sizeof(uint32_t) * (nlat + 1));
    size_t k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + k, ws[i].lat_us, ws[i].nlat * sizeof(uint32_t));
        k += ws[i].nlat;
        spro_client_channel_destroy(ws[i].ch);
        free(ws[i].lat_us);
    }
    qsort(all, nlat, sizeof *all, cmp_u32);
    printf("%s requests/s %.0f p50_us %u p99_us %u errors %llu\n", mname, (double)total / secs,
           nlat ? all[nlat / 2] : 0, nlat ? all[nlat * 99 / 100] : 0, (unsigned long long)errors);
    free(all);
    free(ws);
    spro_datadir_close(dd);
    return errors > 0 ? 1 : 0;
}
