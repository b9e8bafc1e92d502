/*
 * records.c: the one schema table of record types and fields (sync.h,
 * "Record types"; docs/SYNC.md), and the checks of values against it.
 *
 * The engine (engine.c) is generic over this table: it looks up an op's
 * record type and each field, checks each value here, seals personal
 * fields, keeps blind indexes of searchable ones, withholds local ones from
 * other organisations and grants scope through scope fields.  Adding a
 * field is a line below.  One record type has rules of its own besides:
 * referral (engine.c, "Push: referrals"; the names of the fields they read
 * are in sync.h).  Field names never change meaning once shipped: devices
 * and stored data name them.
 */
#include "sync.h"

#include <string.h>

/* Columns: name, type, flags, choices (enum), blind index (searchable). */
#define STR SPRO_FTYPE_STR
#define INT SPRO_FTYPE_INT
#define BOOL SPRO_FTYPE_BOOL
#define DATE SPRO_FTYPE_DATE
#define TIME SPRO_FTYPE_TIME
#define ENUM SPRO_FTYPE_ENUM
#define P SPRO_FFLAG_PERSONAL
#define S SPRO_FFLAG_SEARCHABLE
#define L SPRO_FFLAG_LOCAL

static const char *const ben_states[] = {"active", "closed", "merged", NULL};
static const char *const givers[] = {"self", "guardian", NULL};
static const char *const referral_states[] = {"proposed", "accepted", "refused", "done", NULL};
static const char *const referral_kinds[] = {"referral", "transfer", NULL};
static const char *const duplicate_rules[] = {"ine", "name_birth", NULL};
static const char *const duplicate_states[] = {"open", "invalid", "merged", NULL};

/* One field per row. */
/* clang-format off */
static const struct spro_field_def beneficiary[] = {
    {"family_name", STR, P, NULL, NULL},
    {"given_name", STR, P, NULL, NULL},
    {"birth_date", DATE, P, NULL, NULL},
    {"sex", STR, P, NULL, NULL},
    {"phone", STR, P, NULL, NULL},
    {"email", STR, P, NULL, NULL},
    {"address", STR, P, NULL, NULL},
    {"guardian", STR, P, NULL, NULL},
    {"ine", STR, P | S, NULL, "ine"},
    {"home_region", STR, 0, NULL, NULL},
    {"qualification", STR, 0, NULL, NULL},
    {"last_school", STR, 0, NULL, NULL},
    {"situation", STR, 0, NULL, NULL},
    {"dropout", BOOL, 0, NULL, NULL},
    {"state", ENUM, 0, ben_states, NULL},
    {"merged_into", STR, 0, NULL, NULL},
};

static const struct spro_field_def consent[] = {
    {"purpose", STR, 0, NULL, NULL},
    {"given_by", ENUM, 0, givers, NULL},
    {"notice_version", INT, 0, NULL, NULL},
    {"given_at", DATE, 0, NULL, NULL},
    {"withdrawn_at", DATE, 0, NULL, NULL},
};

static const struct spro_field_def enrolment[] = {
    {"programme", STR, 0, NULL, NULL},
    {"owner_org", STR, SPRO_FFLAG_SCOPE, NULL, NULL},
    {"status", STR, 0, NULL, NULL},
    {"outcome", STR, 0, NULL, NULL},
};

static const struct spro_field_def interaction[] = {
    {"kind", STR, 0, NULL, NULL},
    {"date", DATE, 0, NULL, NULL},
    {"counsellor", STR, 0, NULL, NULL},
    {"outcome_codes", STR, 0, NULL, NULL},
    {"note", STR, P | L, NULL, NULL},
};

static const struct spro_field_def appointment[] = {
    {"at", TIME, 0, NULL, NULL},
    {"place", STR, 0, NULL, NULL},
    {"with_user", STR, 0, NULL, NULL},
    {"status", STR, 0, NULL, NULL},
};

static const struct spro_field_def referral[] = {
    {"from_org", STR, 0, NULL, NULL},
    {"to_org", STR, 0, NULL, NULL},
    {"reason", STR, P, NULL, NULL}, /* free text: may name the person */
    {"consent", STR, 0, NULL, NULL},
    {"status", ENUM, 0, referral_states, NULL},
    {"kind", ENUM, 0, referral_kinds, NULL}, /* nil: referral */
};

/* Written by the server (engine.c, "Push: duplicates"); devices of
 * supervisors and administrators receive it and may write its status. */
static const struct spro_field_def duplicate[] = {
    {"a", STR, 0, NULL, NULL},
    {"b", STR, 0, NULL, NULL},
    {"rule", ENUM, 0, duplicate_rules, NULL},
    {"status", ENUM, 0, duplicate_states, NULL},
};
/* clang-format on */

#define N(a) (sizeof a / sizeof a[0])

static const struct spro_record_def types[] = {
    {SPRO_RTYPE_BENEFICIARY,
     beneficiary,
     N(beneficiary),
     {"family_name", "given_name", "birth_date"}},
    {"consent", consent, N(consent), {NULL, NULL, NULL}},
    {"enrolment", enrolment, N(enrolment), {NULL, NULL, NULL}},
    {"interaction", interaction, N(interaction), {NULL, NULL, NULL}},
    {"appointment", appointment, N(appointment), {NULL, NULL, NULL}},
    {"referral", referral, N(referral), {NULL, NULL, NULL}},
    {SPRO_RTYPE_DUPLICATE, duplicate, N(duplicate), {NULL, NULL, NULL}},
};

/* What a field the table does not know is: kept and passed on, sealed. */
static const struct spro_field_def unknown_field = {NULL, SPRO_FTYPE_ANY, P, NULL, NULL};

static int names_equal(const char *a, const uint8_t *b, size_t len)
{
    return strlen(a) == len && memcmp(a, b, len) == 0;
}

const struct spro_record_def *spro_sync_record_types(size_t *n)
{
    *n = N(types);
    return types;
}

const struct spro_record_def *spro_sync_record_type(const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < N(types); i++)
        if (names_equal(types[i].name, name, len))
            return &types[i];
    return NULL;
}

static int well_formed_name(const uint8_t *name, size_t len)
{
    if (len < 1 || len > SPRO_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return 0;
    return 1;
}

const struct spro_field_def *spro_sync_record_field(const struct spro_record_def *t,
                                                    const uint8_t *name, size_t len)
{
    if (!well_formed_name(name, len))
        return NULL;
    for (size_t i = 0; i < t->nfields; i++)
        if (names_equal(t->fields[i].name, name, len))
            return &t->fields[i];
    return &unknown_field;
}

/* Decimal digits s[0..n) as a number, or -1 if one is not a digit. */
static int digits(const uint8_t *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DD", a date of the proleptic Gregorian calendar (year 0001..9999). */
static int valid_date(const uint8_t *s)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (s[4] != '-' || s[7] != '-')
        return 0;
    int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

/* "YYYY-MM-DDTHH:MM:SSZ" (no leap second). */
static int valid_time(const uint8_t *s)
{
    if (!valid_date(s) || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
        return 0;
    int h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);
    return h >= 0 && h < 24 && m >= 0 && m < 60 && sec >= 0 && sec < 60;
}

static int one_of(const char *const *choices, const struct spro_bytes *s)
{
    for (size_t i = 0; choices[i] != NULL; i++)
        if (names_equal(choices[i], s->p, s->len))
            return 1;
    return 0;
}

int spro_sync_value_check(const struct spro_field_def *f, const struct spro_value *v)
{
    if (v->kind == SPRO_VALUE_NIL || f->type == SPRO_FTYPE_ANY)
        return 0;
    int ok = 0;
    switch (f->type) {
    case SPRO_FTYPE_ANY:
        ok = 1;
        break;
    case SPRO_FTYPE_STR:
        ok = v->kind == SPRO_VALUE_STR;
        break;
    case SPRO_FTYPE_INT:
        ok = v->kind == SPRO_VALUE_INT;
        break;
    case SPRO_FTYPE_BOOL:
        ok = v->kind == SPRO_VALUE_BOOL;
        break;
    case SPRO_FTYPE_DATE:
        ok = v->kind == SPRO_VALUE_STR && v->s.len == 10 && valid_date(v->s.p);
        break;
    case SPRO_FTYPE_TIME:
        ok = v->kind == SPRO_VALUE_STR && v->s.len == 20 && valid_time(v->s.p);
        break;
    case SPRO_FTYPE_ENUM:
        ok = v->kind == SPRO_VALUE_STR && one_of(f->choices, &v->s);
        break;
    }
    return ok && (v->kind != SPRO_VALUE_STR || v->s.len <= SPRO_SYNC_MAX_VALUE) ? 0 : SPRO_ERANGE;
}
