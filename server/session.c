/*
 * session.c: sessions indexed twice in fixed-size key tables (by id, and by
 * device row id for the one-session-per-device rule) and kept in a list
 * for the periodic sweep of expired ones.
 */
#include "session.h"
#include "keytab.h"

#include <stdlib.h>
#include <string.h>

struct spro_sessions {
    struct spro_keytab *by_id;
    struct spro_keytab *by_device;
    struct spro_session *list;
    uint64_t idle_ms, ttl_ms;
};

static void device_key(uint8_t key[16], int64_t rowid)
{
    memset(key, 0, 16);
    memcpy(key, &rowid, sizeof rowid);
}

struct spro_sessions *spro_sessions_create(size_t max, uint64_t idle_ms, uint64_t ttl_ms)
{
    struct spro_sessions *ss = calloc(1, sizeof *ss);
    if (ss == NULL)
        SPRO_BUG("out of memory");
    ss->by_id = spro_keytab_create(max);
    ss->by_device = spro_keytab_create(max);
    ss->idle_ms = idle_ms;
    ss->ttl_ms = ttl_ms;
    return ss;
}

void spro_sessions_end(struct spro_sessions *ss, struct spro_session *s)
{
    uint8_t dk[16];
    device_key(dk, s->device_rowid);
    if (spro_keytab_set(ss->by_id, s->id, 0) != 0 || spro_keytab_set(ss->by_device, dk, 0) != 0)
        SPRO_BUG("cannot remove a session");
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        ss->list = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    spro_noise_cipher_destroy(s->recv);
    spro_noise_cipher_destroy(s->send);
    spro_memzero(s, sizeof *s);
    free(s);
}

void spro_sessions_destroy(struct spro_sessions *ss)
{
    if (ss == NULL)
        return;
    while (ss->list != NULL)
        spro_sessions_end(ss, ss->list);
    spro_keytab_destroy(ss->by_id);
    spro_keytab_destroy(ss->by_device);
    free(ss);
}

struct spro_session *spro_sessions_open(struct spro_sessions *ss, const uint8_t id[16],
                                        int64_t device_rowid, struct spro_noise_cipher *recv,
                                        struct spro_noise_cipher *send, uint64_t now_ms)
{
    uint8_t dk[16];
    device_key(dk, device_rowid);
    struct spro_session *old = (struct spro_session *)(uintptr_t)spro_keytab_get(ss->by_device, dk);
    if (old != NULL)
        spro_sessions_end(ss, old);
    struct spro_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        SPRO_BUG("out of memory");
    memcpy(s->id, id, 16);
    s->device_rowid = device_rowid;
    s->recv = recv;
    s->send = send;
    s->created_ms = s->used_ms = now_ms;
    if (spro_keytab_get(ss->by_id, id) != 0 || spro_keytab_set(ss->by_id, id, (uintptr_t)s) != 0) {
        spro_noise_cipher_destroy(recv);
        spro_noise_cipher_destroy(send);
        free(s);
        return NULL; /* full (or, never in practice, a random id met twice) */
    }
    if (spro_keytab_set(ss->by_device, dk, (uintptr_t)s) != 0)
        SPRO_BUG("device table full below the session cap");
    s->next = ss->list;
    if (ss->list != NULL)
        ss->list->prev = s;
    ss->list = s;
    return s;
}

static int expired(const struct spro_sessions *ss, const struct spro_session *s, uint64_t now)
{
    return now - s->used_ms >= ss->idle_ms || now - s->created_ms >= ss->ttl_ms;
}

struct spro_session *spro_sessions_find(struct spro_sessions *ss, const uint8_t id[16],
                                        uint64_t now_ms)
{
    struct spro_session *s = (struct spro_session *)(uintptr_t)spro_keytab_get(ss->by_id, id);
    if (s != NULL && expired(ss, s, now_ms)) {
        spro_sessions_end(ss, s);
        s = NULL;
    }
    return s;
}

size_t spro_sessions_sweep(struct spro_sessions *ss, uint64_t now_ms)
{
    size_t n = 0;
    for (struct spro_session *s = ss->list, *next; s != NULL; s = next) {
        next = s->next;
        if (expired(ss, s, now_ms)) {
            spro_sessions_end(ss, s);
            n++;
        }
    }
    return n;
}

size_t spro_sessions_count(const struct spro_sessions *ss)
{
    return spro_keytab_count(ss->by_id);
}
