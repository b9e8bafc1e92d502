/*
 * session.h: the table of open device sessions (server/ only, loop thread).
 *
 * A session is what a completed Noise_IK handshake leaves behind: its id,
 * the device, and the two transport ciphers.  Sessions live in memory
 * only; one per device (a new handshake ends the device's previous one);
 * they end when idle longer than idle_ms, older than ttl_ms, on a failed
 * decryption, or when the device is found revoked.
 */
#ifndef SPRO_SERVER_SESSION_H
#define SPRO_SERVER_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

#define SPRO_SESSION_ID_BYTES 16
/* A session's device state is read from the database again at least this
 * often even when the devices generation did not move (a spro-admin killed
 * between its commit and the generation bump is caught within this time). */
#define SPRO_SESSION_RECHECK_MS 1000

struct spro_session {
    uint8_t id[SPRO_SESSION_ID_BYTES];
    int64_t device_rowid;
    struct spro_noise_cipher *recv; /* device -> server, with its replay window */
    struct spro_noise_cipher *send; /* server -> device */
    uint64_t send_counter;          /* next counter of a response */
    uint64_t created_ms, used_ms;   /* loop time */
    uint64_t checked_gen;           /* devices generation when the state was last read */
    uint64_t checked_ms;            /* loop time of that read */
    struct spro_session *prev, *next;
};

struct spro_sessions;

/* At most max sessions at once.  Aborts on out-of-memory. */
struct spro_sessions *spro_sessions_create(size_t max, uint64_t idle_ms, uint64_t ttl_ms);
/* Ends every session; accepts NULL. */
void spro_sessions_destroy(struct spro_sessions *ss);

/* A new session owning recv and send (always: on failure they are
 * destroyed).  Ends the device's previous session.  Returns the session,
 * or NULL when the table is full. */
struct spro_session *spro_sessions_open(struct spro_sessions *ss, const uint8_t id[16],
                                        int64_t device_rowid, struct spro_noise_cipher *recv,
                                        struct spro_noise_cipher *send, uint64_t now_ms);

/* The live session with this id, or NULL (an expired one is ended). */
struct spro_session *spro_sessions_find(struct spro_sessions *ss, const uint8_t id[16],
                                        uint64_t now_ms);

/* Ends a session: wipes its ciphers and frees it. */
void spro_sessions_end(struct spro_sessions *ss, struct spro_session *s);

/* Ends every expired session; returns how many. */
size_t spro_sessions_sweep(struct spro_sessions *ss, uint64_t now_ms);

size_t spro_sessions_count(const struct spro_sessions *ss);

#endif
