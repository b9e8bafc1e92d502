/*
 * sync-records.h: the made-up beneficiaries of the sync benchmarks
 * (tools/bench/sync.sh), shared by spro-sync-bench and spro-sqlite-ceiling
 * so that both sides write exactly the same values.  Header-only, for the
 * benchmark tools only.
 *
 * Beneficiary i (0-based) has a UUID and seven fields, in this order:
 * family_name, given_name, birth_date, phone, email (personal, sealed at
 * rest by the server) and qualification, situation (in clear).  Edit k
 * (1-based) of beneficiary i writes two of them: phone and situation.
 */
#ifndef SPRO_TOOLS_BENCH_SYNC_RECORDS_H
#define SPRO_TOOLS_BENCH_SYNC_RECORDS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SR_FIELDS 7      /* fields of a beneficiary */
#define SR_EDIT_FIELDS 2 /* fields of an edit */
#define SR_VALUE_MAX 64  /* bytes of the longest value, with its NUL */

static const char *const sr_names[SR_FIELDS] = {
    "family_name", "given_name", "birth_date", "phone", "email", "qualification", "situation"};
/* Indexes into sr_names of the fields an edit writes. */
static const int sr_edit_fields[SR_EDIT_FIELDS] = {3, 6};

static const char *const sr_family[] = {
    "Martin",   "Bernard", "Dubois",  "Thomas",   "Robert",   "Richard", "Petit",   "Durand",
    "Leroy",    "Moreau",  "Simon",   "Laurent",  "Lefebvre", "Michel",  "Garcia",  "David",
    "Bertrand", "Roux",    "Vincent", "Fournier", "Morel",    "Girard",  "Andre",   "Mercier",
    "Dupont",   "Lambert", "Bonnet",  "Francois", "Martinez", "Legrand", "Garnier", "Faure"};
static const char *const sr_given[] = {
    "Lucas",   "Emma",  "Hugo",  "Jade",    "Louis", "Louise", "Gabriel", "Alice",
    "Arthur",  "Chloe", "Jules", "Lina",    "Adam",  "Rose",   "Nathan",  "Lea",
    "Raphael", "Anna",  "Ethan", "Mila",    "Noah",  "Ines",   "Sacha",   "Julia",
    "Mohamed", "Sarah", "Yanis", "Camille", "Theo",  "Manon",  "Enzo",    "Zoe"};
static const char *const sr_qualification[] = {
    "sans diplome",       "brevet des colleges",    "CAP cuisine",
    "CAP petite enfance", "bac pro commerce",       "bac pro electricite",
    "bac general",        "bac technologique STMG", "BTS services informatiques",
    "BTS management",     "licence inachevee",      "titre professionnel"};
static const char *const sr_situation[] = {"demandeur d'emploi",
                                           "en formation",
                                           "en emploi precaire",
                                           "sans activite",
                                           "scolarise",
                                           "en service civique",
                                           "en contrat d'apprentissage",
                                           "en recherche de formation"};

#define SR_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static inline uint64_t sr_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The lowercase UUID of beneficiary i of set `salt` (37 bytes with the
 * NUL): unique for i below 2^40 and salt below 256. */
static inline void sr_uuid(char out[37], uint64_t i, uint32_t salt)
{
    uint64_t h = sr_mix(i ^ ((uint64_t)salt << 48));
    snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(h >> 32),
             (unsigned)(h >> 16) & 0xffff, (unsigned)h & 0xfff, (unsigned)(h >> 52) & 0xfff,
             (unsigned long long)(((uint64_t)salt << 40) | (i & 0xffffffffffu)));
}

/* The seven values of beneficiary i, in the order of sr_names. */
static inline void sr_values(uint64_t i, char v[SR_FIELDS][SR_VALUE_MAX])
{
    uint64_t h = sr_mix(i);
    const char *fam = sr_family[h % SR_COUNT(sr_family)];
    const char *giv = sr_given[(h >> 8) % SR_COUNT(sr_given)];
    snprintf(v[0], SR_VALUE_MAX, "%s", fam);
    snprintf(v[1], SR_VALUE_MAX, "%s", giv);
    snprintf(v[2], SR_VALUE_MAX, "%04u-%02u-%02u", 1995 + (unsigned)((h >> 16) % 14),
             1 + (unsigned)((h >> 24) % 12), 1 + (unsigned)((h >> 32) % 28));
    uint64_t ph = (h >> 20) % 100000000u;
    snprintf(v[3], SR_VALUE_MAX, "06 %02u %02u %02u %02u", (unsigned)(ph / 1000000),
             (unsigned)(ph / 10000 % 100), (unsigned)(ph / 100 % 100), (unsigned)(ph % 100));
    char lf[16], lg[16];
    snprintf(lf, sizeof lf, "%s", fam);
    snprintf(lg, sizeof lg, "%s", giv);
    for (char *p = lf; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    for (char *p = lg; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    snprintf(v[4], SR_VALUE_MAX, "%s.%s%03u@example.org", lg, lf, (unsigned)(i % 1000));
    snprintf(v[5], SR_VALUE_MAX, "%s", sr_qualification[(h >> 40) % SR_COUNT(sr_qualification)]);
    snprintf(v[6], SR_VALUE_MAX, "%s", sr_situation[(h >> 48) % SR_COUNT(sr_situation)]);
}

/* The two values of edit k (k >= 1) of beneficiary i: phone, situation. */
static inline void sr_edit_values(uint64_t i, uint64_t k, char v[SR_EDIT_FIELDS][SR_VALUE_MAX])
{
    uint64_t h = sr_mix(i * 1000003u + k);
    uint64_t ph = h % 100000000u;
    snprintf(v[0], SR_VALUE_MAX, "07 %02u %02u %02u %02u", (unsigned)(ph / 1000000),
             (unsigned)(ph / 10000 % 100), (unsigned)(ph / 100 % 100), (unsigned)(ph % 100));
    snprintf(v[1], SR_VALUE_MAX, "%s", sr_situation[(h >> 40) % SR_COUNT(sr_situation)]);
}

/* The longest values any beneficiary or edit can have, for sizing the
 * batches: a push of these always fits when the real ones do. */
static inline void sr_longest(char v[SR_FIELDS][SR_VALUE_MAX])
{
    size_t lf = 0, lg = 0;
    const char *fam = "", *giv = "", *q = "", *s = "";
    for (size_t i = 0; i < SR_COUNT(sr_family); i++)
        if (strlen(sr_family[i]) > lf)
            lf = strlen(fam = sr_family[i]);
    for (size_t i = 0; i < SR_COUNT(sr_given); i++)
        if (strlen(sr_given[i]) > lg)
            lg = strlen(giv = sr_given[i]);
    for (size_t i = 0; i < SR_COUNT(sr_qualification); i++)
        if (strlen(sr_qualification[i]) > strlen(q))
            q = sr_qualification[i];
    for (size_t i = 0; i < SR_COUNT(sr_situation); i++)
        if (strlen(sr_situation[i]) > strlen(s))
            s = sr_situation[i];
    snprintf(v[0], SR_VALUE_MAX, "%s", fam);
    snprintf(v[1], SR_VALUE_MAX, "%s", giv);
    snprintf(v[2], SR_VALUE_MAX, "2000-01-01");
    snprintf(v[3], SR_VALUE_MAX, "06 00 00 00 00");
    snprintf(v[4], SR_VALUE_MAX, "%s.%s000@example.org", giv, fam);
    snprintf(v[5], SR_VALUE_MAX, "%s", q);
    snprintf(v[6], SR_VALUE_MAX, "%s", s);
}

#endif
