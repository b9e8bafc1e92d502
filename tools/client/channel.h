/*
 * channel: the device side of the Noise channel (docs/PROTOCOL.md,
 * "Device channel"), as bytes in and bytes out; the caller moves them over
 * HTTP.
 *
 *   1. spro_client_channel_create() with the pinned server key and the
 *      device's static secret key;
 *   2. spro_client_channel_hello(): handshake message 1 carrying a `hello`,
 *      the body of POST /v1/session;
 *   3. spro_client_channel_welcome() on the answer's body: a `welcome`
 *      opens the session, a `wipe` is the order to erase the device;
 *   4. for each request: spro_client_channel_seal() makes the sealed body
 *      of (method, path, message), spro_client_channel_open() checks and
 *      decodes the 200 answer to exactly that request.
 *
 * A channel is one session.  Any failure to authenticate (handshake message
 * 2 or a response) ends it: later calls fail with SPRO_EINTEGRITY.  Decoded
 * messages point into the channel's plaintext buffer, valid until the next
 * call on the channel; it is wiped when the channel is destroyed.
 */
#ifndef SPRO_TOOLS_CLIENT_CHANNEL_H
#define SPRO_TOOLS_CLIENT_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "proto/proto.h"

#define SPRO_CLIENT_PROTOCOL "Noise_IK_25519_ChaChaPoly_BLAKE2b"
#define SPRO_CLIENT_PROLOGUE "spro-sync/1" /* followed by the server's static public key */
#define SPRO_CLIENT_HELLO_MAX 1024         /* bytes of the hello payload */
#define SPRO_CLIENT_SESSION_BYTES 16       /* session id */
#define SPRO_CLIENT_FRAME_OVERHEAD (16 + 8 + SPRO_NOISE_TAG_BYTES) /* request of one chunk */

struct spro_client_channel; /* opaque */

/* A new channel for one handshake.  Keys are copied (the caller wipes its
 * own).  Returns 0 and sets *out, or SPRO_ECONFIG if device_sk is not a
 * usable key (*out NULL then).  Free with spro_client_channel_destroy(). */
SPRO_MUST_CHECK int spro_client_channel_create(struct spro_client_channel **out,
                                               const uint8_t server_pk[SPRO_KEY_BYTES],
                                               const uint8_t device_sk[SPRO_KEY_BYTES]);

/* Wipes and frees; accepts NULL. */
void spro_client_channel_destroy(struct spro_client_channel *ch);

/* Encodes hello (type SPRO_MSG_HELLO) and appends handshake message 1
 * carrying it to msg1.  The encoded plaintext is wiped (it may carry a
 * ticket secret).  Returns 0; SPRO_ETOOLONG if the payload exceeds
 * SPRO_CLIENT_HELLO_MAX; an encoding error; SPRO_EBADMSGTYPE if called
 * twice.  Nothing is appended on failure. */
SPRO_MUST_CHECK int spro_client_channel_hello(struct spro_client_channel *ch,
                                              const struct spro_msg *hello, struct spro_buf *msg1);

/* Reads handshake message 2 (len bytes) and decodes its payload into *m.
 * A `welcome` (with a 16-byte session id) opens the session; a `wipe` or an
 * `error` (an authenticated refusal, e.g. device_revoked, sent with HTTP
 * 403) is returned as is and opens nothing.  Returns 0; SPRO_EINTEGRITY if the
 * message does not authenticate (wrong server, tampering, truncation: the
 * channel is dead); a decoding error of the payload; SPRO_EBADMSGTYPE for
 * a payload of another type. */
SPRO_MUST_CHECK int spro_client_channel_welcome(struct spro_client_channel *ch, const uint8_t *msg2,
                                                size_t len, struct spro_msg *m);

/* The session id of an open session (16 bytes), or NULL before welcome. */
const uint8_t *spro_client_channel_session(const struct spro_client_channel *ch);

/* Appends the sealed body of req for `method` `path` (as in the request
 * line, without query) to out: session id || counter (big-endian) ||
 * chunks, the encoded message sealed as a chunked message (one chunk per
 * 65,519 bytes of plaintext, each under its own counter, from the next
 * one), and remembers the request so that only its answer opens.  Returns
 * 0; SPRO_EBADMSGTYPE without an open session; SPRO_ETOOLONG if the
 * encoded message exceeds SPRO_SEALED_MAX_PLAIN; SPRO_ERANGE if the
 * counters are exhausted;
 * an encoding error; SPRO_EINTEGRITY if the channel is dead.  Nothing is
 * appended on failure. */
SPRO_MUST_CHECK int spro_client_channel_seal(struct spro_client_channel *ch, const char *method,
                                             const char *path, const struct spro_msg *req,
                                             struct spro_buf *out);

/* Opens the 200 answer (len bytes) to the last sealed request and decodes
 * it into *m (the route's answer or an `error`).  The answer is a chunked
 * message of up to SPRO_SEALED_MAX_PLAIN bytes; its counter must be above
 * every counter opened before (those of every chunk), and each chunk must
 * authenticate under the server-to-device key with the associated data of
 * that request.  Returns
 * 0; SPRO_EINTEGRITY if it does not (the channel is dead then);
 * SPRO_EBADMSGTYPE if no request is waiting for its answer; a decoding
 * error of the plaintext. */
SPRO_MUST_CHECK int spro_client_channel_open(struct spro_client_channel *ch, const uint8_t *body,
                                             size_t len, struct spro_msg *m);

/* As spro_client_channel_open(), for the sync routes: a push, push_reply,
 * pull or pull_reply is decoded with spro_proto_decode_sync(), its arrays
 * from arena (which must have SPRO_PROTO_ARENA_BYTES(len) bytes free: an
 * API misuse otherwise), any other message (an `error`) with
 * spro_proto_decode().  The decoded message points into the channel and
 * the arena.  Same returns as spro_client_channel_open(). */
SPRO_MUST_CHECK int spro_client_channel_open_sync(struct spro_client_channel *ch,
                                                  const uint8_t *body, size_t len,
                                                  struct spro_arena *arena, struct spro_msg *m);

#endif
