/*
 * harness.h: start a real spro-server process on a loopback port and talk
 * to it over raw sockets, for the end-to-end tests.
 *
 * The server is started with --listen 127.0.0.1:0; its port is read from
 * its "listening" log line.  Its stderr goes to a log file in the test's
 * temporary directory.  Every server is stopped by PID (SIGTERM, then
 * SIGKILL) at the end of the test or when the test program exits.
 */
#ifndef SPRO_TESTS_HARNESS_H
#define SPRO_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "check.h"

/* Paths of the programs under test, from the command line (see main()).
 * h_client_bin is NULL unless the program was given a spro-client. */
extern const char *h_server_bin;
extern const char *h_admin_bin;
extern const char *h_client_bin;

/* main() of an end-to-end test program: argv is SPRO_SERVER SPRO_ADMIN
 * [SPRO_CLIENT] [TEST]...; the third is taken as the client when its name
 * ends with "spro-client".  Initialises the crypto library
 * (spro_crypto_init: 1 if that fails, before any test), runs the tests
 * (check_run) and returns the exit status. */
int h_main(const struct check_test *tests, size_t n, int argc, char **argv);

/* A fresh temporary directory for this program (removed at exit). */
const char *h_tmpdir(void);

/* Creates a data directory with spro-admin init; returns its path
 * (static storage per call: copy it). */
const char *h_make_datadir(const char *name);

struct h_server {
    pid_t pid;
    int port;
    char log[512];
};

/* Starts spro-server --data datadir --listen 127.0.0.1:0 plus the NULL-
 * terminated extra arguments.  Returns 0 once it listens, -1 if it exited
 * or did not listen within 10 s. */
int h_server_start(struct h_server *s, const char *datadir, const char *const *extra);

/* SIGTERM, then waits up to `wait_ms`; returns the exit status (0..255),
 * or -1 if it had to be killed, or 128+signal if it died of a signal. */
int h_server_stop(struct h_server *s, int wait_ms);

/* SIGKILL, no shutdown: a crash.  Waits for the process. */
void h_server_kill(struct h_server *s);

/* Runs a program to completion; returns its exit status, capturing its
 * stdout+stderr into out (NUL-terminated, cut at cap). */
int h_run(const char *const *argv, char *out, size_t cap);

/* Runs bin with the NULL-terminated arguments that follow (at most 30; any
 * further are dropped), like h_run: returns its exit status, its stdout and
 * stderr in out (NUL-terminated, cut at cap). */
__attribute__((sentinel)) int h_runl(char *out, size_t cap, const char *bin, ...);

/* The same for spro-admin (h_admin_bin), with at most 14 arguments. */
__attribute__((sentinel)) int h_admin(char *out, size_t cap, ...);

/* h_runl of spro-admin or spro-client into the array out (its size taken
 * with sizeof), the NULL added. */
#define H_ADMIN(out, ...) h_runl(out, sizeof out, h_admin_bin, __VA_ARGS__, (const char *)NULL)
#define H_CLIENT(out, ...) h_runl(out, sizeof out, h_client_bin, __VA_ARGS__, (const char *)NULL)

/* The text after the first occurrence of prefix in out, up to the end of
 * its line (CR or LF), copied into val (cap bytes, NUL-terminated).  false,
 * val unchanged, when prefix does not occur or the text does not fit. */
bool h_line_value(const char *out, const char *prefix, char *val, size_t cap);

/* Whole content of the server's log so far (malloc'd; free it). */
char *h_server_log(const struct h_server *s);

/* A self-signed certificate and key for 127.0.0.1 (P-256, made once per
 * program with the openssl command); paths into cert and key.  false if
 * openssl failed (its output is printed). */
bool h_tls_files(char *cert, char *key, size_t cap);

/* A TCP connection to 127.0.0.1:port from source address src (NULL for
 * the default, else e.g. "127.0.0.2").  Returns the fd or -1. */
int h_connect(int port, const char *src);

int h_send(int fd, const void *buf, size_t len);

/* Waits up to ms for the peer to close: 1 if closed (EOF or reset), 0 if
 * still open, discarding whatever it sent. */
int h_wait_closed(int fd, int ms);

struct h_response {
    int status;
    char headers[4096]; /* raw header block, lower-cased names */
    unsigned char body[65536];
    size_t body_len;
};

/* Reads one HTTP/1.1 response (Content-Length framing) within ms.
 * Returns 0, or -1 on timeout, close or a malformed response. */
int h_read_response(int fd, struct h_response *r, int ms);

/* One request on a new connection: method, path, optional content type
 * and body.  Returns 0 and fills r, or -1. */
int h_request(int port, const char *method, const char *path, const char *ctype, const void *body,
              size_t len, struct h_response *r);

/* Value of header `name` (lower case) in r, copied into out; false if absent. */
bool h_header(const struct h_response *r, const char *name, char *out, size_t cap);

/* The `code` of a msgpack error body, or "" if the body is not one. */
const char *h_error_code(const struct h_response *r);

#endif
