/*
 * ticket.c: the one-line enrolment ticket string, formatted by spro-admin
 * and parsed by devices:
 *   spro1:<40 hex fingerprint>:<16 hex ticket id>:<43 base64url secret>@<url>
 * Pure string work; the secret goes through libsodium's constant-time
 * base64 codec.
 */
#include "crypto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#define PREFIX "spro1:"
#define SECRET_B64 43

static int valid_id(const char *id)
{
    if (strlen(id) != 16)
        return 0;
    for (int i = 0; i < 16; i++)
        if (!isdigit((unsigned char)id[i]) && !(id[i] >= 'a' && id[i] <= 'f'))
            return 0;
    return 1;
}

/* http:// or https://, then a host[:port] of safe characters, no path. */
static int valid_url(const char *url)
{
    size_t n = strlen(url), skip;
    if (strncmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return 0;
    if (n <= skip || n > SPRO_TICKET_URL_MAX)
        return 0;
    for (size_t i = skip; i < n; i++) {
        char c = url[i];
        if (!isalnum((unsigned char)c) && c != '.' && c != '-' && c != ':' && c != '[' && c != ']')
            return 0;
    }
    return 1;
}

int spro_ticket_format(char out[SPRO_TICKET_STRING_MAX], const struct spro_ticket_string *t)
{
    if (!valid_id(t->id) || !valid_url(t->url))
        return SPRO_ECONFIG;
    char fp[2 * SPRO_FINGERPRINT_BYTES + 1], b64[SECRET_B64 + 1];
    sodium_bin2hex(fp, sizeof fp, t->fingerprint, SPRO_FINGERPRINT_BYTES);
    sodium_bin2base64(b64, sizeof b64, t->secret, sizeof t->secret,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    int n = snprintf(out, SPRO_TICKET_STRING_MAX, PREFIX "%s:%s:%s@%s", fp, t->id, b64, t->url);
    sodium_memzero(b64, sizeof b64);
    return n > 0 && n < SPRO_TICKET_STRING_MAX ? 0 : SPRO_ECONFIG;
}

int spro_ticket_parse(struct spro_ticket_string *t, const char *s)
{
    memset(t, 0, sizeof *t);
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    /* Fixed-width fields, then '@' and the URL. */
    const size_t head = 6 + 40 + 1 + 16 + 1 + SECRET_B64;
    if (n < head + 2 || memcmp(s, PREFIX, 6) != 0 || s[46] != ':' || s[63] != ':' ||
        s[head] != '@' || n - head - 1 > SPRO_TICKET_URL_MAX)
        goto bad;
    size_t bin_len;
    if (sodium_hex2bin(t->fingerprint, SPRO_FINGERPRINT_BYTES, s + 6, 40, NULL, &bin_len, NULL) !=
            0 ||
        bin_len != SPRO_FINGERPRINT_BYTES)
        goto bad;
    memcpy(t->id, s + 47, 16);
    t->id[16] = '\0';
    if (!valid_id(t->id))
        goto bad;
    if (sodium_base642bin(t->secret, sizeof t->secret, s + 64, SECRET_B64, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        bin_len != sizeof t->secret)
        goto bad;
    memcpy(t->url, s + head + 1, n - head - 1);
    t->url[n - head - 1] = '\0';
    if (!valid_url(t->url))
        goto bad;
    return 0;
bad:
    sodium_memzero(t, sizeof *t);
    return SPRO_ECONFIG;
}
