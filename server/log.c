/*
 * log.c: structured logs, one JSON object per line on stderr.
 *
 * Each line is built in a fixed buffer and written with a single write(2),
 * so lines from the loop and the worker threads never interleave.  A field
 * that does not fit is cut and the line marked "truncated": true.
 */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = SPRO_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void spro_log_set_level(enum spro_log_level level)
{
    current_level = (int)level;
}

bool spro_log_enabled(enum spro_log_level level)
{
    return (int)level <= current_level;
}

static void put(struct spro_logline *l, const char *s, size_t n)
{
    size_t room = sizeof l->buf - 32 - l->len; /* keep room for the closing */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_escaped(struct spro_logline *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(l, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        if (ch == '"' || ch == '\\') {
            char two[2] = {'\\', (char)ch};
            put(l, two, 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            put(l, esc, 6); /* bytes, not characters: logs stay ASCII */
        } else {
            put(l, (const char *)&ch, 1);
        }
    }
    put(l, "\"", 1);
}

void spro_log_begin(struct spro_logline *l, enum spro_log_level level, const char *event)
{
    l->len = 0;
    l->on = spro_log_enabled(level);
    if (!l->on)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    put(l, "{\"ts\":\"", 7);
    put(l, ts, strlen(ts));
    put(l, "\",\"level\":\"", 11);
    put(l, level_names[level], strlen(level_names[level]));
    put(l, "\",\"event\":", 10);
    put_escaped(l, event, strlen(event));
}

void spro_log_strn(struct spro_logline *l, const char *key, const char *value, size_t len)
{
    if (!l->on)
        return;
    put(l, ",", 1);
    put_escaped(l, key, strlen(key));
    put(l, ":", 1);
    put_escaped(l, value, len);
}

void spro_log_str(struct spro_logline *l, const char *key, const char *value)
{
    spro_log_strn(l, key, value, strlen(value));
}

void spro_log_int(struct spro_logline *l, const char *key, int64_t value)
{
    if (!l->on)
        return;
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", (long long)value);
    put(l, ",", 1);
    put_escaped(l, key, strlen(key));
    put(l, ":", 1);
    put(l, num, (size_t)n);
}

void spro_log_end(struct spro_logline *l)
{
    if (!l->on)
        return;
    if (l->len >= sizeof l->buf - 32) {
        static const char cut[] = ",\"truncated\":true";
        memcpy(l->buf + l->len, cut, sizeof cut - 1);
        l->len += sizeof cut - 1;
    }
    memcpy(l->buf + l->len, "}\n", 2);
    l->len += 2;
    ssize_t w = write(STDERR_FILENO, l->buf, l->len);
    (void)w; /* nowhere left to report a failing stderr */
}
