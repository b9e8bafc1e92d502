/*
 * device.h: a device for end-to-end tests, speaking the channel directly
 * (Noise_IK, sealed frames) with this project's crypto/ and proto/, so that
 * tests can also send every kind of bad frame on purpose.  A dv_env is a
 * real spro-server with its data directory also open in the test process
 * (organisations "cio-nord" and "ml-sud", users "alice" and "bob").
 */
#ifndef SPRO_TESTS_DEVICE_H
#define SPRO_TESTS_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "harness.h"
#include "proto/proto.h"
#include "sync/sync.h"

/* A server with its data directory open in this process too. */
struct dv_env {
    struct h_server srv;
    struct spro_datadir *dd;
    uint8_t server_pk[SPRO_KEY_BYTES];
};

/* A device: its keys, and its session once a handshake succeeded. */
struct dv_dev {
    uint8_t sk[SPRO_KEY_BYTES], pk[SPRO_KEY_BYTES];
    uint64_t ts;
    struct spro_noise_cipher *send, *recv;
    uint8_t sid[16];
    uint64_t counter;
    struct spro_msg_welcome welcome;
    char device_id[65];
    bool wiped;
    char refusal[65]; /* code of an authenticated refusal in message 2 */
};

int dv_env_start(struct dv_env *e, const char *name, const char *const *extra);

int dv_env_stop(struct dv_env *e);

struct spro_ticket dv_ticket_for(struct dv_env *e, const char *user, int64_t now, int64_t ttl);

void dv_dev_new(struct dv_dev *d);

void dv_dev_end_session(struct dv_dev *d);

/* Builds handshake message 1 into out; *hs keeps the initiator state. */
size_t dv_msg1(struct dv_dev *d, const uint8_t rs[32], const struct spro_ticket *t,
               struct spro_noise_handshake **hs, uint8_t *out, size_t cap);

/* Reads message 2: 0 with a session (or d->wiped set), -1 otherwise. */
int dv_msg2(struct dv_dev *d, struct spro_noise_handshake *hs, const struct h_response *r);

/* A whole handshake; r receives the HTTP answer. */
int dv_handshake(struct dv_env *e, struct dv_dev *d, const struct spro_ticket *t,
                 struct h_response *r);

size_t dv_ad(uint8_t *out, const char *tag, const char *method, const char *path,
             const uint8_t sid[16], const uint8_t *req_ctr);

void dv_put_be64(uint8_t *p, uint64_t v);

/* Seals len bytes of plaintext as a request body for (ad_method, ad_path)
 * from the given counter: a chunked message (one counter per 65,519 bytes,
 * spro_noise_chunks(len) of them).  out holds cap >= 24 +
 * spro_noise_chunked_size(len) bytes.  Returns the body's length. */
size_t dv_seal_plain(struct dv_dev *d, const uint8_t *plain, size_t len, const char *ad_method,
                     const char *ad_path, uint64_t counter, uint8_t *out, size_t cap);

/* Seals msg as a frame for (ad_method, ad_path) with the given counter. */
size_t dv_seal(struct dv_dev *d, const struct spro_msg *msg, const char *ad_method,
               const char *ad_path, uint64_t counter, uint8_t *out, size_t cap);

/* Opens a sealed response body (len bytes, any number of chunks) to the
 * request `frame` into plain (cap bytes), its length in *plen.  0 or -1. */
int dv_open(struct dv_dev *d, const uint8_t *body, size_t len, const char *method, const char *path,
            const uint8_t *frame, uint8_t *plain, size_t cap, size_t *plen);

/* POSTs an octet-stream body on a new connection and reads an answer of any
 * size: its body malloc'd into *out (*outlen bytes; the caller frees it).
 * Returns the HTTP status, or -1. */
int dv_post_big(int port, const char *path, const void *body, size_t len, uint8_t **out,
                size_t *outlen);

/* Opens a sealed response into *m (pointing into plain).  0 or -1. */
int dv_unseal(struct dv_dev *d, const struct h_response *r, const char *method, const char *path,
              const uint8_t *frame, uint8_t *plain, struct spro_msg *m);

/* The same for the sync routes: decodes with spro_proto_decode_sync (arena),
 * or a plain error message. */
int dv_unseal_sync(struct dv_dev *d, const struct h_response *r, const char *method,
                   const char *path, const uint8_t *frame, uint8_t *plain, struct spro_arena *arena,
                   struct spro_msg *m);

/* Sends a sealed ping with the next counter; fills *m from the answer. */
int dv_ping(struct dv_env *e, struct dv_dev *d, struct h_response *r, struct spro_msg *m,
            uint8_t *plain);

bool dv_bytes_is(struct spro_bytes b, const char *s);

/* An enrolled device with a session, for the tests that start from one. */
int dv_enrolled(struct dv_env *e, struct dv_dev *d, const char *user);

/* ---- Pushing and pulling (POST /v1/sync/push and /v1/sync/pull) ---- */

/* A beneficiary id for tests: a lowercase UUID (36 characters and a NUL
 * into out) made from a and b, distinct for distinct (a, b). */
void dv_uuid(char out[37], uint32_t a, uint32_t b);

/* Sends ops[0..n) in one sealed push with the next counter of d.  On a
 * complete answer (one result per op) sets acked[i] to 1 for an ack and 2
 * for any other result, and returns 0; returns -1 when no such answer came
 * (connection cut, server gone, an error message), acked unchanged.  The
 * encoded push must fit 65,600 bytes.  Thread-safe for distinct d. */
int dv_push(struct dv_env *e, struct dv_dev *d, const struct spro_wire_op *ops, size_t n,
            int *acked);

/* Pushes one op: a new beneficiary ben (36 characters) with given_name =
 * value, at seq and hlc.  0 if it was acknowledged, -1 otherwise. */
int dv_push_ben(struct dv_env *e, struct dv_dev *d, uint64_t seq, const char *ben,
                const char *value, uint64_t hlc);

/* Pulls everything in d's scope from an empty cursor, `limit` records a
 * request, until the server says there is no more (at most 1000 requests),
 * calling fn(record, arg) for every record in order; the record is valid
 * during the call only.  0, or -1 on any failure (fn may have been called
 * for some records). */
int dv_pull_all(struct dv_env *e, struct dv_dev *d, uint32_t limit,
                void (*fn)(const struct spro_wire_record *r, void *arg), void *arg);

#endif
