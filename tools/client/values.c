/*
 * values.c: see values.h.
 */
#include "values.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

bool spro_client_field_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > SPRO_CLIENT_FIELD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* `0`, or an optional `-` and digits without a leading zero. */
static bool integer_literal(const char *s)
{
    bool neg = *s == '-';
    if (neg)
        s++;
    if (s[0] == '0')
        return s[1] == '\0' && !neg;
    if (*s < '1' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9')
        s++;
    return *s == '\0';
}

int spro_client_value_parse(struct spro_value *v, const char *text, bool as_string, char *why,
                            size_t whylen)
{
    memset(v, 0, sizeof *v);
    if (!as_string && strcmp(text, "null") == 0) {
        v->kind = SPRO_VALUE_NIL;
    } else if (!as_string && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
        v->kind = SPRO_VALUE_BOOL;
        v->b = text[0] == 't';
    } else if (!as_string && integer_literal(text)) {
        errno = 0;
        long long i = strtoll(text, NULL, 10);
        if (errno == ERANGE) {
            snprintf(why, whylen,
                     "%s is outside the integer range (write FIELD:=VALUE for a string)", text);
            return SPRO_ERANGE;
        }
        v->kind = SPRO_VALUE_INT;
        v->i = (int64_t)i;
    } else {
        size_t n = strlen(text);
        if (n > SPRO_SYNC_MAX_VALUE) {
            snprintf(why, whylen, "a value of %zu bytes is longer than %d", n, SPRO_SYNC_MAX_VALUE);
            return SPRO_ETOOLONG;
        }
        v->kind = SPRO_VALUE_STR;
        v->s = (struct spro_bytes){(const uint8_t *)text, n};
    }
    return 0;
}

int spro_client_assign_parse(struct spro_client_assign *a, const char *arg, char *why,
                             size_t whylen)
{
    memset(a, 0, sizeof *a);
    const char *eq = strchr(arg, '=');
    if (eq == NULL) {
        snprintf(why, whylen, "'%.80s' is not FIELD=VALUE", arg);
        return SPRO_ERANGE;
    }
    bool as_string = eq > arg && eq[-1] == ':';
    size_t n = (size_t)(eq - arg) - (as_string ? 1 : 0);
    if (n > SPRO_CLIENT_FIELD_MAX)
        n = SPRO_CLIENT_FIELD_MAX + 1; /* refused below, whatever it holds */
    if (n <= SPRO_CLIENT_FIELD_MAX) {
        memcpy(a->name, arg, n);
        a->name[n] = '\0';
    }
    if (n > SPRO_CLIENT_FIELD_MAX || !spro_client_field_name_ok(a->name)) {
        snprintf(why, whylen, "'%.*s' is not a field name (1 to %d of A-Z a-z 0-9 _ -)",
                 (int)((size_t)(eq - arg) > 80 ? 80 : (size_t)(eq - arg)), arg,
                 SPRO_CLIENT_FIELD_MAX);
        return SPRO_ERANGE;
    }
    return spro_client_value_parse(&a->val, eq + 1, as_string, why, whylen);
}

void spro_client_json_string(FILE *f, const void *p, size_t n)
{
    const uint8_t *s = p;
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (c == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) {
            fprintf(f, "\\u%04x", s[++i]); /* U+0080..U+009F: C1 controls */
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

void spro_client_value_print(FILE *f, const struct spro_value *v)
{
    switch (v->kind) {
    case SPRO_VALUE_NIL:
        fputs("null", f);
        break;
    case SPRO_VALUE_BOOL:
        fputs(v->b ? "true" : "false", f);
        break;
    case SPRO_VALUE_INT:
        fprintf(f, "%" PRId64, v->i);
        break;
    case SPRO_VALUE_STR:
        spro_client_json_string(f, v->s.p, v->s.len);
        break;
    default:
        fputs("null", f);
        break;
    }
}
