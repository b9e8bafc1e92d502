/*
 * state: spro-client's home directory, the device's only storage.
 *
 *   HOME/            mode 0700, locked (flock) by the one spro-client using it
 *   HOME/device.key  the device's X25519 static secret key: 32 raw bytes, 0600
 *   HOME/local.key, HOME/local.db   the local store (sync/local.h)
 *   HOME/state       text, one `key=value` per line, 0600:
 *                      url=<server base URL>
 *                      server_key=<64 hex digits: the pinned X25519 public key>
 *                      device=<id>, user=<id>, org=<id>   (once enrolled)
 *                      role=<counsellor|supervisor|admin>  (optional: the
 *                        user's role from the server's last welcome)
 *                      last_ts=<last handshake timestamp sent, ms since the epoch>
 *
 * device.key and state are replaced atomically: written to NAME.tmp,
 * fsync'd, renamed over NAME, then the directory fsync'd; a crash leaves
 * the old or the new version, never a mix.  The local store keeps its own
 * crash safety (SQLite transactions).  Nothing else is stored: the
 * enrolment ticket's secret never reaches the disk, and sessions are not
 * kept between runs.
 *
 * Usage: spro_client_home_open(), then load and save state and key through
 * the handle, spro_client_home_close().  Functions that fail put one human
 * sentence in `why` (whylen bytes) that names the file.
 */
#ifndef SPRO_TOOLS_CLIENT_STATE_H
#define SPRO_TOOLS_CLIENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

#define SPRO_CLIENT_ID_MAX 64 /* bytes of a device, user or organisation id */

/* An open, locked home directory.  Fields are private. */
struct spro_client_home {
    int dirfd;       /* O_DIRECTORY descriptor holding the flock, -1 when closed */
    char path[4096]; /* as given, for messages */
};

/* What HOME/state holds.  An id is "" until enrolled; otherwise 1..64
 * printable ASCII characters (0x21..0x7e). */
struct spro_client_state {
    char url[SPRO_TICKET_URL_MAX + 1];   /* server base URL, from the ticket */
    uint8_t server_key[SPRO_KEY_BYTES];  /* pinned at enrolment */
    char device[SPRO_CLIENT_ID_MAX + 1]; /* device id given by the server */
    char user[SPRO_CLIENT_ID_MAX + 1];   /* counsellor */
    char org[SPRO_CLIENT_ID_MAX + 1];    /* the counsellor's organisation */
    char role[16];                       /* the user's role as last heard of; "" if unknown */
    uint64_t last_ts;                    /* ms; 0 before the first handshake */
};

/* Opens the directory `path` and takes its exclusive lock (never waits).
 * With create, makes it (mode 0700) if it does not exist and sets *created.
 * Returns 0; SPRO_ENOENT if it does not exist and !create; -EWOULDBLOCK if
 * another spro-client holds it; another -errno.  home->dirfd is -1 on
 * failure. */
SPRO_MUST_CHECK int spro_client_home_open(struct spro_client_home *home, const char *path,
                                          bool create, bool *created, char *why, size_t whylen);

/* Releases the lock and the descriptor; accepts a home that is not open. */
void spro_client_home_close(struct spro_client_home *home);

/* True if `id` can be stored in the state file (1..64 bytes of 0x21..0x7e). */
bool spro_client_state_id_ok(const uint8_t *id, size_t len);

/* Reads HOME/state into *st.  Returns 0; SPRO_ENOENT if there is none;
 * SPRO_ECONFIG if it is malformed (a bad line, an unknown or repeated key,
 * a missing url, server_key or last_ts, ids only partly present; why names
 * the line); another -errno.  *st is zeroed on failure. */
SPRO_MUST_CHECK int spro_client_state_load(const struct spro_client_home *home,
                                           struct spro_client_state *st, char *why, size_t whylen);

/* Replaces HOME/state with *st, atomically (see above), mode 0600.
 * Returns 0 or -errno (the old state is left then). */
SPRO_MUST_CHECK int spro_client_state_save(const struct spro_client_home *home,
                                           const struct spro_client_state *st, char *why,
                                           size_t whylen);

/* Reads HOME/device.key into sk.  Returns 0; SPRO_ENOENT if there is none;
 * SPRO_EPERM if group or others may read it; SPRO_ECONFIG if it is not a
 * regular file of 32 bytes; another -errno.  sk is zeroed on failure. */
SPRO_MUST_CHECK int spro_client_key_load(const struct spro_client_home *home,
                                         uint8_t sk[SPRO_KEY_BYTES], char *why, size_t whylen);

/* Writes sk to HOME/device.key, atomically, mode 0600.  Returns 0 or
 * -errno.  Temporaries are wiped. */
SPRO_MUST_CHECK int spro_client_key_save(const struct spro_client_home *home,
                                         const uint8_t sk[SPRO_KEY_BYTES], char *why,
                                         size_t whylen);

/* Erases everything of ours in HOME: device.key and local.key are
 * overwritten with zeros and synced before they are removed, then state,
 * local.db (with its -wal, -shm and -journal files) and any leftover
 * temporary files are removed and the directory synced.  Close the local
 * store first.  The directory itself stays
 * (and stays locked).  Returns 0, or the first -errno met (it still tries
 * every file). */
SPRO_MUST_CHECK int spro_client_home_erase(const struct spro_client_home *home, char *why,
                                           size_t whylen);

#endif
