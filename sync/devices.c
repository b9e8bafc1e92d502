/*
 * devices.c: organisations, counsellors, their devices and enrolment
 * tickets (the API at the end of sync.h).
 *
 * Checks the arguments, makes the random parts (ticket ids and secrets,
 * device ids) and the keyed hashes of ticket secrets, and leaves every SQL
 * statement to store.c, one short transaction per call: spro-server's
 * workers and spro-admin (another process) use the same data.db at once.
 *
 * A ticket's secret is never stored: data.db keeps
 * mac = BLAKE2b-256(key = enrolment subkey, ticket id (16 ASCII bytes) ||
 * secret (32 bytes)), the subkey being derived from the master key with
 * context "enrolmnt", id 1, for each use and wiped after it.
 */
#include "store.h"
#include "sync.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENROL_CTX "enrolmnt" /* KDF context of the ticket MAC subkey */
#define NAME_MAX_BYTES 200   /* organisation names */
#define TICKET_ID_TRIES 4    /* fresh ids drawn if one is taken (2^64 ids) */

static const char *const org_kinds[] = {"cio",  "mission-locale", "france-travail", "cap-emploi",
                                        "psad", "region",         "other"};
static const char *const roles[] = {"counsellor", "supervisor", "admin"};

/* An audit entry of dd's actor at the current time; the strings are the
 * caller's. */
static struct spro_audit_note note(struct spro_datadir *dd, const char *kind, const char *object,
                                   const char *detail)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (struct spro_audit_note){spro_datadir__audit_key(dd),
                                    (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                                    kind,
                                    spro_datadir__audit_actor(dd),
                                    object,
                                    detail};
}

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen, const char *fmt,
                                                      ...)
{
    if (why == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* 1..SPRO_ID_MAX bytes of [A-Za-z0-9._-]; else SPRO_ECONFIG naming what. */
static int check_id(const char *what, const char *id, char *why, size_t whylen)
{
    size_t n = id ? strlen(id) : 0;
    int ok = n >= 1 && n <= SPRO_ID_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = id[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (ok)
        return 0;
    if (why != NULL)
        snprintf(why, whylen,
                 "invalid %s id '%.80s': use 1 to %d characters among A-Z a-z 0-9 . _ -", what,
                 id ? id : "", SPRO_ID_MAX);
    return SPRO_ECONFIG;
}

/* s must be one of list[0..n); else SPRO_ECONFIG listing them. */
static int check_word(const char *what, const char *s, const char *const *list, size_t n, char *why,
                      size_t whylen)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return 0;
    if (why != NULL) {
        int o = snprintf(why, whylen, "invalid %s '%.40s': use one of", what, s ? s : "");
        for (size_t i = 0; i < n && o >= 0 && (size_t)o < whylen; i++)
            o += snprintf(why + o, whylen - (size_t)o, "%s %s", i ? "," : "", list[i]);
    }
    return SPRO_ECONFIG;
}

int spro_org_add(struct spro_datadir *dd, const char *id, const char *name, const char *kind,
                 char *why, size_t whylen)
{
    int rc = check_id("organisation", id, why, whylen);
    if (rc != 0)
        return rc;
    size_t n = name ? strlen(name) : 0;
    int ok = n >= 1 && n <= NAME_MAX_BYTES;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)name[i] >= 0x20 && name[i] != 0x7f;
    if (!ok) {
        if (why != NULL)
            snprintf(why, whylen,
                     "invalid organisation name: use 1 to %d bytes without control characters",
                     NAME_MAX_BYTES);
        return SPRO_ECONFIG;
    }
    if ((rc = check_word("organisation kind", kind, org_kinds,
                         sizeof org_kinds / sizeof org_kinds[0], why, whylen)) != 0)
        return rc;
    char object[8 + SPRO_ID_MAX], detail[64];
    snprintf(object, sizeof object, "org:%s", id);
    snprintf(detail, sizeof detail, "kind=%s", kind);
    struct spro_audit_note entry = note(dd, "org.add", object, detail);
    rc = spro_store__org_insert(spro_datadir__data(dd), id, name, kind, time(NULL), &entry, why,
                                whylen);
    if (rc == SPRO_EEXISTS)
        say(why, whylen, "organisation '%s' already exists", id);
    return rc;
}

int spro_user_add(struct spro_datadir *dd, const char *id, const char *org_id, const char *role,
                  char *why, size_t whylen)
{
    int rc;
    if ((rc = check_id("user", id, why, whylen)) != 0 ||
        (rc = check_id("organisation", org_id, why, whylen)) != 0 ||
        (rc = check_word("role", role, roles, sizeof roles / sizeof roles[0], why, whylen)) != 0)
        return rc;
    char object[8 + SPRO_ID_MAX], detail[32 + SPRO_ID_MAX];
    snprintf(object, sizeof object, "user:%s", id);
    snprintf(detail, sizeof detail, "org=%s role=%s", org_id, role);
    struct spro_audit_note n = note(dd, "user.add", object, detail);
    rc = spro_store__user_insert(spro_datadir__data(dd), id, org_id, role, time(NULL), &n, why,
                                 whylen);
    if (rc == SPRO_EEXISTS)
        say(why, whylen, "user '%s' already exists", id);
    else if (rc == SPRO_ENOENT)
        say(why, whylen, "no organisation '%s' (add it with: spro-admin org add)", org_id);
    return rc;
}

/* mac of (id, secret) under the enrolment subkey of dd's master key. */
static void ticket_mac(struct spro_datadir *dd, uint8_t mac[SPRO_MAC_BYTES], const char *id,
                       const uint8_t secret[SPRO_TICKET_SECRET_BYTES])
{
    uint8_t key[SPRO_KEY_BYTES], msg[SPRO_TICKET_ID_CHARS + SPRO_TICKET_SECRET_BYTES];
    spro_crypto_derive(key, spro_datadir__master(dd), 1, ENROL_CTX);
    memcpy(msg, id, SPRO_TICKET_ID_CHARS);
    memcpy(msg + SPRO_TICKET_ID_CHARS, secret, SPRO_TICKET_SECRET_BYTES);
    spro_crypto_mac(mac, key, msg, sizeof msg);
    spro_memzero(key, sizeof key);
    spro_memzero(msg, sizeof msg);
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int spro_ticket_issue(struct spro_datadir *dd, const char *user_id, int64_t now, int64_t ttl,
                      struct spro_ticket *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    int rc = check_id("user", user_id, why, whylen);
    if (rc != 0)
        return rc;
    if (ttl < SPRO_TICKET_MIN_TTL || ttl > SPRO_TICKET_MAX_TTL) {
        if (why != NULL)
            snprintf(why, whylen, "invalid ticket lifetime %lld s: use %d to %d seconds",
                     (long long)ttl, SPRO_TICKET_MIN_TTL, SPRO_TICKET_MAX_TTL);
        return SPRO_ECONFIG;
    }
    uint8_t mac[SPRO_MAC_BYTES], raw[SPRO_TICKET_ID_CHARS / 2];
    rc = SPRO_EEXISTS;
    for (int i = 0; i < TICKET_ID_TRIES && rc == SPRO_EEXISTS; i++) {
        spro_crypto_random(raw, sizeof raw);
        hex(out->id, raw, sizeof raw);
        spro_crypto_random(out->secret, sizeof out->secret);
        ticket_mac(dd, mac, out->id, out->secret);
        out->expires_at = now + ttl;
        char object[8 + SPRO_TICKET_ID_CHARS], detail[48 + SPRO_ID_MAX];
        snprintf(object, sizeof object, "ticket:%s", out->id);
        snprintf(detail, sizeof detail, "user=%s expires=%lld", user_id,
                 (long long)out->expires_at);
        struct spro_audit_note n = note(dd, "ticket.issue", object, detail);
        rc = spro_store__ticket_insert(spro_datadir__data(dd), out->id, user_id, mac, now,
                                       out->expires_at, &n, why, whylen);
    }
    if (rc != 0) {
        spro_memzero(out, sizeof *out);
        if (rc == SPRO_ENOENT)
            say(why, whylen, "no user '%s' (add it with: spro-admin user add)", user_id);
        else if (rc == SPRO_EEXISTS)
            say(why, whylen, "%s", "cannot draw an unused ticket id");
    }
    return rc;
}

static int is_ticket_id(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0' && n <= SPRO_TICKET_ID_CHARS; n++)
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
            return 0;
    return n == SPRO_TICKET_ID_CHARS;
}

/* A random (version 4) UUID, lowercase, 36 characters and the NUL. */
static void uuid4(char out[37])
{
    uint8_t b[16];
    spro_crypto_random(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char h[33];
    hex(h, b, sizeof b);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

int spro_ticket_redeem(struct spro_datadir *dd, const char *ticket_id,
                       const uint8_t secret[SPRO_TICKET_SECRET_BYTES],
                       const uint8_t device_pk[SPRO_KEY_BYTES], int64_t ts_ms, int64_t now,
                       struct spro_device *out)
{
    memset(out, 0, sizeof *out);
    if (ticket_id == NULL || !is_ticket_id(ticket_id))
        return SPRO_ETICKET;
    uint8_t mac[SPRO_MAC_BYTES];
    char device_id[37];
    ticket_mac(dd, mac, ticket_id, secret);
    uuid4(device_id);
    char actor[8 + 37], detail[8 + SPRO_TICKET_ID_CHARS];
    snprintf(actor, sizeof actor, "device:%s", device_id);
    snprintf(detail, sizeof detail, "ticket=%s", ticket_id);
    struct spro_audit_note n = note(dd, "device.enrol", actor, detail);
    n.actor = actor; /* the new device enrols itself */
    int rc =
        spro_store__ticket_redeem(spro_datadir__data(dd), ticket_id, mac, SPRO_TICKET_MAX_FAILURES,
                                  device_pk, device_id, ts_ms, now, &n, out);
    spro_memzero(mac, sizeof mac);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int spro_device_by_key(struct spro_datadir *dd, const uint8_t device_pk[SPRO_KEY_BYTES],
                       struct spro_device *out)
{
    return spro_store__device_get(spro_datadir__data(dd), device_pk, 0, out);
}

int spro_device_by_rowid(struct spro_datadir *dd, int64_t rowid, struct spro_device *out)
{
    return spro_store__device_get(spro_datadir__data(dd), NULL, rowid, out);
}

int spro_device_accept_ts(struct spro_datadir *dd, int64_t rowid, int64_t ts_ms, int64_t now)
{
    return spro_store__device_accept_ts(spro_datadir__data(dd), rowid, ts_ms, now);
}

#define BIT(s) (1u << (s))

int spro_device_set_state(struct spro_datadir *dd, const char *device_id,
                          enum spro_device_state state, char *why, size_t whylen)
{
    unsigned from;
    if (state == SPRO_DEVICE_REVOKED)
        from = BIT(SPRO_DEVICE_ACTIVE) | BIT(SPRO_DEVICE_WIPE_PENDING);
    else if (state == SPRO_DEVICE_WIPE_PENDING)
        from = BIT(SPRO_DEVICE_ACTIVE);
    else
        SPRO_BUG("spro_device_set_state: only REVOKED or WIPE_PENDING can be set");
    int rc = check_id("device", device_id, why, whylen);
    if (rc != 0)
        return rc;
    enum spro_device_state prev;
    char object[8 + SPRO_ID_MAX];
    snprintf(object, sizeof object, "device:%s", device_id);
    struct spro_audit_note n =
        note(dd, state == SPRO_DEVICE_REVOKED ? "device.revoke" : "device.wipe", object, "");
    rc = spro_store__device_transition(spro_datadir__data(dd), device_id, 0, from, state, &prev, &n,
                                       why, whylen);
    if (rc == SPRO_ENOENT)
        say(why, whylen, "no device '%s' (see: spro-admin device list)", device_id);
    if (rc != 0)
        return rc;
    if ((from & BIT(prev)) != 0) {
        spro_datadir__devices_changed(dd); /* after the commit: servers re-check */
        return 0;
    }
    /* Not changed: already there (or further: wiped counts as revoked), or a
     * device that can no longer be wiped. */
    if (prev == state || (state == SPRO_DEVICE_REVOKED && prev == SPRO_DEVICE_WIPED)) {
        if (why != NULL)
            snprintf(why, whylen, "device '%s' is already %s; nothing changed", device_id,
                     spro_device_state_name(prev));
        return SPRO_EEXISTS;
    }
    if (why != NULL)
        snprintf(why, whylen, "device '%s' is %s; it cannot be ordered to wipe any more", device_id,
                 spro_device_state_name(prev));
    return SPRO_EREVOKED;
}

int spro_device_wiped(struct spro_datadir *dd, int64_t rowid)
{
    enum spro_device_state prev;
    struct spro_device d;
    int rc = spro_store__device_get(spro_datadir__data(dd), NULL, rowid, &d);
    if (rc != 0)
        return rc;
    char object[8 + SPRO_ID_MAX];
    snprintf(object, sizeof object, "device:%s", d.id);
    struct spro_audit_note n = note(dd, "device.wiped", object, "wipe order delivered");
    rc = spro_store__device_transition(spro_datadir__data(dd), NULL, rowid,
                                       BIT(SPRO_DEVICE_WIPE_PENDING), SPRO_DEVICE_WIPED, &prev, &n,
                                       NULL, 0);
    if (rc != 0 || prev == SPRO_DEVICE_WIPE_PENDING || prev == SPRO_DEVICE_WIPED)
        return rc;
    return SPRO_EREVOKED;
}

int spro_device_list(struct spro_datadir *dd, int (*fn)(const struct spro_device *d, void *arg),
                     void *arg)
{
    struct spro_device *rows;
    size_t n;
    int rc = spro_store__device_list(spro_datadir__data(dd), &rows, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fn(&rows[i], arg);
    free(rows);
    return rc;
}

int spro_sync_quarantine_list(struct spro_datadir *dd,
                              int (*fn)(const struct spro_quarantined *q, void *arg), void *arg)
{
    struct spro_quarantined *rows;
    size_t n;
    int rc = spro_store__quarantine_list(spro_datadir__data(dd), &rows, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fn(&rows[i], arg);
    free(rows);
    return rc;
}

const char *spro_device_state_name(enum spro_device_state s)
{
    switch (s) {
    case SPRO_DEVICE_ACTIVE:
        return "active";
    case SPRO_DEVICE_REVOKED:
        return "revoked";
    case SPRO_DEVICE_WIPE_PENDING:
        return "wipe_pending";
    case SPRO_DEVICE_WIPED:
        return "wiped";
    }
    return "unknown";
}
