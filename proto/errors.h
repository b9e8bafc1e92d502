/*
 * The one table of spro-sync error codes.
 *
 * Every function of ours that can fail returns int: 0 on success, or a
 * negative code.  Codes from this table are below SPRO__EBASE (-2000 + n);
 * operating-system errors pass through as -errno (always > -4096 and never
 * in our range).  Each entry gives the stable wire code (the `code` string
 * of an error message, see docs/PROTOCOL.md), the HTTP status it is sent
 * with, and a human message.  Entries whose wire code is "internal" never
 * reach a client with more detail than that.
 *
 * This header includes nothing and is shared by every module.
 */
#ifndef SPRO_PROTO_ERRORS_H
#define SPRO_PROTO_ERRORS_H

#define SPRO_ERRNO_MAP(XX)                                                                         \
    /* Decoding of msgpack bodies (proto/). */                                                     \
    XX(MALFORMED, "malformed", 400, "body is not well-formed msgpack")                             \
    XX(TRUNCATED, "truncated", 400, "body ends inside a msgpack value")                            \
    XX(TRAILING, "trailing_bytes", 400, "bytes follow the top-level msgpack value")                \
    XX(BADTYPE, "bad_type", 400, "a value has the wrong msgpack type")                             \
    XX(TOOLONG, "too_long", 400, "a string, binary or collection exceeds its limit")               \
    XX(TOODEEP, "too_deep", 400, "values are nested deeper than allowed")                          \
    XX(DUPKEY, "duplicate_key", 400, "a map holds the same key twice")                             \
    XX(RANGE, "out_of_range", 400, "an integer is outside its allowed range")                      \
    XX(MISSING, "missing_field", 400, "a required field is absent")                                \
    XX(UNKNOWNFIELD, "unknown_field", 400, "a map holds a field this message does not define")     \
    XX(BADUTF8, "bad_utf8", 400, "a string is not valid UTF-8")                                    \
    XX(BADVERSION, "unsupported_version", 400, "the protocol version is not supported")            \
    XX(BADMSGTYPE, "unknown_type", 400, "the message type is unknown or not valid here")           \
    /* HTTP layer (server/). */                                                                    \
    XX(NOTFOUND, "not_found", 404, "no such route")                                                \
    XX(METHOD, "method_not_allowed", 405, "method not allowed on this route")                      \
    XX(MEDIATYPE, "unsupported_media_type", 415, "Content-Type must be application/msgpack")       \
    XX(TOOLARGE, "body_too_large", 413, "request body exceeds the configured limit")               \
    XX(UNAVAILABLE, "unavailable", 503, "server is shutting down or overloaded; retry later")      \
    /* Device channel (docs/PROTOCOL.md, "Device channel"). */                                     \
    XX(BADFRAME, "bad_frame", 400, "sealed frame or handshake message has an impossible size")     \
    XX(HANDSHAKE, "handshake_failed", 401, "handshake message does not open under the server key") \
    XX(SESSION, "session_invalid", 401, "unknown, expired or ended session; open a new one")       \
    XX(DECRYPT, "decrypt_failed", 401, "sealed frame rejected; the session is ended")              \
    XX(UNKNOWNDEV, "unknown_device", 403, "this device key is not enrolled")                       \
    XX(REVOKED, "device_revoked", 403, "this device has been revoked")                             \
    XX(TICKET, "ticket_invalid", 403, "enrolment ticket unknown, wrong, expired or already used")  \
    XX(REPLAY, "replayed", 409, "handshake timestamp not newer than the last accepted one")        \
    XX(RATELIMIT, "rate_limited", 429, "too many failed attempts; wait and retry")                 \
    XX(STOREFAIL, "storage_failed", 503,                                                           \
       "the server could not make the write durable and is restarting; retry the same ops")        \
    /* Local errors: never sent with detail. */                                                    \
    XX(INTERNAL, "internal", 500, "internal error")                                                \
    XX(NOMEM, "internal", 500, "out of memory")                                                    \
    XX(STORE, "internal", 500, "database error")                                                   \
    XX(SCHEMA_NEWER, "internal", 500,                                                              \
       "database schema is newer than this program; upgrade spro-sync")                            \
    XX(EXISTS, "internal", 500, "already exists")                                                  \
    XX(NOENT, "internal", 500, "does not exist")                                                   \
    XX(PERM, "internal", 500, "key file is readable by group or others (chmod 600 it)")            \
    XX(CONFIG, "internal", 500, "invalid configuration")                                           \
    XX(INTEGRITY, "internal", 500, "integrity check failed (wrong key or tampered data)")

enum spro_errno {
    SPRO__EBASE = -2000,
#define SPRO__XX(name, code, status, msg) SPRO_E##name,
    SPRO_ERRNO_MAP(SPRO__XX)
#undef SPRO__XX
        SPRO__ELAST
};

#define SPRO_MUST_CHECK __attribute__((warn_unused_result))

/* Aborts with file and line: an impossible state or API misuse. Always on. */
#define SPRO_BUG(msg) spro__bug(__FILE__, __LINE__, (msg))
_Noreturn void spro__bug(const char *file, int line, const char *msg);

/* Human message for any code: ours, or -errno.  Never NULL, static storage. */
const char *spro_strerror(int err);

/* Stable wire code ("malformed", ...) for an error; "internal" for -errno. */
const char *spro_errcode(int err);

/* HTTP status an error is answered with; 500 for -errno. */
int spro_errstatus(int err);

#endif
