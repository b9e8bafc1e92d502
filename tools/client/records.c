/*
 * records.c: spro-client's local commands, which work offline on the
 * device's local store (sync/local.h) and never touch the network:
 *
 *   new TYPE FIELD=VALUE...      a new record (and, for a beneficiary, its
 *                                first enrolment with this organisation)
 *   edit ID FIELD=VALUE...       set fields of a record
 *   show ID                      a record's fields, conflicts in full
 *   list [TYPE]                  the records on this device
 *   conflicts                    the fields in conflict
 *   resolve [--string] ID FIELD VALUE
 *                                settle a conflict with one value
 *   refer ID --to ORG [--reason TEXT] [--transfer]
 *                                refer (or transfer) a beneficiary to another
 *                                organisation: a new referral record
 *   accept ID, refuse ID         answer a referral proposed to this
 *                                device's organisation
 *   duplicates                   the duplicate candidates (supervisors)
 *   merge KEEP_ID OTHER_ID       merge a beneficiary into another
 *                                (supervisors and administrators)
 *
 * Edits wait in the outbox until `spro-client sync` sends them.  Values are
 * typed and printed as values.h says.  Also here: opening a device's home
 * and local store, shared with client.c (cli.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "values.h"

#define BENEFICIARY "beneficiary"
#define ENROLMENT "enrolment"
#define REFERRAL "referral"
#define RECEPTION_PROGRAMME "spro-reception" /* the first enrolment of a new beneficiary */

/* ---- Shared with client.c ---- */

uint64_t spro_client__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int spro_client__need_home(const struct options *o, const char *cmd)
{
    if (o->home == NULL) {
        fprintf(stderr, "spro-client %s: --home DIR is required (see spro-client --help)\n", cmd);
        return EXIT_USAGE;
    }
    return 0;
}

int spro_client__args(const char *cmd, int argc, char **argv, bool allow_string, struct cli_args *a)
{
    *a = (struct cli_args){0};
    bool flags = true;
    for (int i = 0; i < argc; i++) {
        char *s = argv[i];
        if (flags && strcmp(s, "--") == 0) {
            flags = false;
        } else if (flags && (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
            a->help = true;
        } else if (flags && strcmp(s, "--json") == 0) {
            a->json = true;
        } else if (flags && allow_string && strcmp(s, "--string") == 0) {
            a->string = true;
        } else if (flags && s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "spro-client %s: unknown option '%s' (see spro-client %s --help)\n",
                    cmd, s, cmd);
            return EXIT_USAGE;
        } else {
            argv[a->n++] = s;
        }
    }
    return 0;
}

int spro_client__open_device(const char *cmd, const struct options *o,
                             struct spro_client_home *home, struct spro_client_state *st)
{
    int rc = spro_client__need_home(o, cmd);
    if (rc != 0)
        return rc;
    char why[512];
    rc = spro_client_home_open(home, o->home, false, NULL, why, sizeof why);
    if (rc == SPRO_ENOENT) {
        fprintf(stderr,
                "spro-client %s: %s does not exist: not enrolled (run spro-client --home %s "
                "enroll TICKET)\n",
                cmd, o->home, o->home);
        return EXIT_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        return EXIT_FAIL;
    }
    rc = spro_client_state_load(home, st, why, sizeof why);
    if (rc == SPRO_ENOENT || (rc == 0 && st->device[0] == '\0')) {
        fprintf(stderr,
                "spro-client %s: %s holds no enrolled device: not enrolled (run spro-client "
                "--home %s enroll TICKET)\n",
                cmd, home->path, home->path);
        spro_client_home_close(home);
        return EXIT_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        spro_client_home_close(home);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int spro_client__open_local(const char *cmd, const struct spro_client_home *home,
                            const struct spro_client_state *st, struct spro_local **out)
{
    char why[512];
    struct spro_local_identity id = {st->device, st->user, CLIENT_SCHEMA};
    if (spro_local_open(out, home->path, &id, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* ---- Output ---- */

/* Text a server or another device chose, control characters replaced. */
static void print_safe(const char *s)
{
    for (; *s != '\0'; s++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void json_cstr(const char *s)
{
    spro_client_json_string(stdout, s, strlen(s));
}

static void print_sibling_text(const struct spro_local_sibling *s)
{
    printf("  ");
    spro_client_value_print(stdout, &s->val);
    printf("  by ");
    print_safe(s->by);
    printf(", version %" PRIu64 "/", s->hlc);
    print_safe(s->origin);
    putchar('\n');
}

static void print_siblings_json(const struct spro_local_field *f)
{
    printf("[");
    for (size_t k = 0; k < f->nsiblings; k++) {
        const struct spro_local_sibling *s = &f->siblings[k];
        printf("%s{\"value\": ", k ? ", " : "");
        spro_client_value_print(stdout, &s->val);
        printf(", \"by\": ");
        json_cstr(s->by);
        printf(", \"version\": [%" PRIu64 ", ", s->hlc);
        json_cstr(s->origin);
        printf("]}");
    }
    printf("]");
}

static void print_record(const struct spro_local_record *r, bool json)
{
    if (json) {
        printf("{\"id\": ");
        json_cstr(r->rid);
        printf(", \"type\": ");
        json_cstr(r->rtype);
        printf(", \"ben\": ");
        json_cstr(r->ben);
        printf(", \"fields\": {");
        for (size_t i = 0; i < r->nfields; i++) {
            const struct spro_local_field *f = &r->fields[i];
            printf("%s\n  ", i ? "," : "");
            json_cstr(f->name);
            printf(": {\"value\": ");
            if (f->shown != NULL)
                spro_client_value_print(stdout, f->shown);
            else
                printf("null");
            printf(", \"unsynced\": %s, \"conflict\": %s, \"siblings\": ",
                   f->pending ? "true" : "false", f->conflict ? "true" : "false");
            print_siblings_json(f);
            printf("}");
        }
        printf("%s}}\n", r->nfields ? "\n" : "");
        return;
    }
    printf("id: ");
    print_safe(r->rid);
    printf("\ntype: ");
    print_safe(r->rtype);
    printf("\nben: ");
    print_safe(r->ben);
    putchar('\n');
    for (size_t i = 0; i < r->nfields; i++) {
        const struct spro_local_field *f = &r->fields[i];
        print_safe(f->name);
        printf(": ");
        if (f->shown != NULL)
            spro_client_value_print(stdout, f->shown);
        else
            printf("null");
        if (f->pending)
            printf(" (unsynced)");
        else if (f->conflict)
            printf(" (conflict: %zu values)", f->nsiblings);
        putchar('\n');
        for (size_t k = 0; f->conflict && k < f->nsiblings; k++)
            print_sibling_text(&f->siblings[k]);
    }
}

/* ---- Helpers of the commands ---- */

/* Reports a failure of the local store: 1, or 2 for what the command line
 * got wrong (a value the store refuses). */
static int local_failed(const char *cmd, int rc, const char *why)
{
    fprintf(stderr, "spro-client %s: %s\n", cmd, why);
    return rc == SPRO_ERANGE || rc == SPRO_EBADUTF8 ? EXIT_USAGE : EXIT_FAIL;
}

/* Parses the FIELD=VALUE arguments argv[0..n) into sets (which point into
 * a[]); the one named `ben`, if ben != NULL, goes to *ben instead. */
static int parse_assignments(const char *cmd, char **argv, int n, struct spro_client_assign *a,
                             struct spro_local_set *sets, size_t *nsets, const char **ben)
{
    char why[256];
    *nsets = 0;
    for (int i = 0; i < n; i++) {
        if (spro_client_assign_parse(&a[i], argv[i], why, sizeof why) != 0) {
            fprintf(stderr, "spro-client %s: %s\n", cmd, why);
            return EXIT_USAGE;
        }
        if (ben != NULL && strcmp(a[i].name, "ben") == 0) {
            if (a[i].val.kind != SPRO_VALUE_STR) {
                fprintf(stderr, "spro-client %s: ben must be a beneficiary id (a UUID)\n", cmd);
                return EXIT_USAGE;
            }
            *ben = (const char *)a[i].val.s.p;
            continue;
        }
        for (size_t k = 0; k < *nsets; k++)
            if (strcmp(sets[k].name, a[i].name) == 0) {
                fprintf(stderr, "spro-client %s: field %s is set twice\n", cmd, a[i].name);
                return EXIT_USAGE;
            }
        sets[*nsets] = (struct spro_local_set){a[i].name, a[i].val};
        (*nsets)++;
    }
    return 0;
}

/* A record id from the command line, lowercased into out. */
static bool read_id(const char *s, char out[SPRO_LOCAL_UUID_CHARS + 1])
{
    size_t n = strlen(s);
    if (n != SPRO_LOCAL_UUID_CHARS)
        return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    return spro_local_uuid_ok(out);
}

static bool rtype_arg_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > SPRO_LOCAL_RTYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Opens home, state and local store for a local command. */
static int open_all(const char *cmd, const struct options *o, struct spro_client_home *home,
                    struct spro_client_state *st, struct spro_local **local)
{
    *local = NULL;
    int rc = spro_client__open_device(cmd, o, home, st);
    if (rc != EXIT_OK)
        return rc;
    if ((rc = spro_client__open_local(cmd, home, st, local)) != EXIT_OK)
        spro_client_home_close(home);
    return rc;
}

static void close_all(struct spro_client_home *home, struct spro_local *local)
{
    spro_local_close(local);
    spro_client_home_close(home);
}

/* Looks up record id (lowercased into rid) and its type. */
static int find_record(const char *cmd, struct spro_local *l, const char *arg,
                       char rid[SPRO_LOCAL_UUID_CHARS + 1], char rtype[SPRO_LOCAL_RTYPE_MAX + 1])
{
    char why[512], ben[SPRO_LOCAL_UUID_CHARS + 1];
    if (!read_id(arg, rid)) {
        fprintf(stderr, "spro-client %s: '%.80s' is not a record id (a UUID)\n", cmd, arg);
        return EXIT_USAGE;
    }
    if (spro_local_find(l, rid, rtype, ben, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static void print_queued(bool json, const char *what, const char *rid, uint64_t seq)
{
    if (json) {
        printf("{\"id\": \"%s\", \"seq\": %" PRIu64 "}\n", rid, seq);
        return;
    }
    printf("%s: %s (op %" PRIu64 ", sent by the next sync)\n", what, rid, seq);
}

/* ---- Commands ---- */

int spro_client__cmd_new(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("new", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR new [--json] TYPE FIELD=VALUE...\n"
               "Create a record of type TYPE (beneficiary, consent, enrolment, interaction,\n"
               "appointment, referral, ...) with the fields given, and print its new id\n"
               "as `id: UUID`.  A record other than a beneficiary belongs to one:\n"
               "give its id as ben=UUID.  A new beneficiary also gets its first\n"
               "enrolment, with this device's organisation (owner_org), programme\n"
               "\"" RECEPTION_PROGRAMME "\" and status \"open\": printed as `enrolment: UUID`.\n"
               "VALUE: true, false, null, an integer, or a string; FIELD:=VALUE is always a\n"
               "string.  The record stays on this device until `spro-client sync`.\n"
               "--json prints {\"id\": ..., \"enrolment\": ...}.\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "new")) != 0)
        return rc;
    if (a.n < 2) {
        fprintf(stderr, "spro-client new: expects TYPE FIELD=VALUE... (see spro-client new "
                        "--help)\n");
        return EXIT_USAGE;
    }
    const char *rtype = argv[0];
    if (!rtype_arg_ok(rtype)) {
        fprintf(stderr, "spro-client new: '%.40s' is not a record type (a-z 0-9 _)\n", rtype);
        return EXIT_USAGE;
    }
    bool is_ben = strcmp(rtype, BENEFICIARY) == 0;
    struct spro_client_assign *as = calloc((size_t)a.n, sizeof *as);
    struct spro_local_set *sets = calloc((size_t)a.n, sizeof *sets);
    if (as == NULL || sets == NULL)
        SPRO_BUG("out of memory");
    size_t nsets;
    const char *ben_arg = NULL;
    char ben[SPRO_LOCAL_UUID_CHARS + 1] = "";
    rc = parse_assignments("new", argv + 1, a.n - 1, as, sets, &nsets, &ben_arg);
    if (rc == 0 && is_ben && ben_arg != NULL) {
        fprintf(stderr, "spro-client new: a beneficiary is its own ben; do not give one\n");
        rc = EXIT_USAGE;
    } else if (rc == 0 && !is_ben && ben_arg == NULL) {
        fprintf(stderr, "spro-client new: a %s belongs to a beneficiary: give ben=UUID\n", rtype);
        rc = EXIT_USAGE;
    } else if (rc == 0 && !is_ben && !read_id(ben_arg, ben)) {
        fprintf(stderr, "spro-client new: ben=%.80s is not a beneficiary id (a UUID)\n", ben_arg);
        rc = EXIT_USAGE;
    } else if (rc == 0 && nsets == 0) {
        fprintf(stderr, "spro-client new: give at least one FIELD=VALUE\n");
        rc = EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l = NULL;
    if (rc == 0)
        rc = open_all("new", o, &home, &st, &l);
    if (rc != 0) {
        free(as);
        free(sets);
        return rc;
    }
    char why[512], rid[SPRO_LOCAL_UUID_CHARS + 1], erid[SPRO_LOCAL_UUID_CHARS + 1];
    spro_local_uuid(rid);
    if (is_ben) {
        memcpy(ben, rid, sizeof ben);
    } else {
        struct spro_local_record *b;
        int lrc = spro_local_get(l, BENEFICIARY, ben, &b, why, sizeof why);
        spro_local_record_free(b);
        if (lrc == SPRO_ENOENT) {
            fprintf(stderr,
                    "spro-client new: no beneficiary %s on this device (create it, or sync to "
                    "receive it)\n",
                    ben);
            rc = EXIT_FAIL;
        } else if (lrc != 0) {
            fprintf(stderr, "spro-client new: %s\n", why);
            rc = EXIT_FAIL;
        }
    }
    if (rc == 0) {
        struct spro_local_set enrol[3] = {
            {"programme", {.kind = SPRO_VALUE_STR}},
            {"owner_org", {.kind = SPRO_VALUE_STR}},
            {"status", {.kind = SPRO_VALUE_STR}},
        };
        enrol[0].val.s =
            (struct spro_bytes){(const uint8_t *)RECEPTION_PROGRAMME, strlen(RECEPTION_PROGRAMME)};
        enrol[1].val.s = (struct spro_bytes){(const uint8_t *)st.org, strlen(st.org)};
        enrol[2].val.s = (struct spro_bytes){(const uint8_t *)"open", 4};
        spro_local_uuid(erid);
        struct spro_local_edit e[2] = {
            {rtype, rid, ben, true, sets, nsets},
            {ENROLMENT, erid, rid, true, enrol, 3},
        };
        int lrc =
            spro_local_write(l, e, is_ben ? 2 : 1, spro_client__wall_ms(), NULL, why, sizeof why);
        if (lrc != 0) {
            rc = local_failed("new", lrc, why);
        } else if (a.json) {
            printf("{\"id\": \"%s\"", rid);
            if (is_ben)
                printf(", \"enrolment\": \"%s\"", erid);
            printf("}\n");
        } else {
            printf("id: %s\n", rid);
            if (is_ben)
                printf("enrolment: %s\n", erid);
        }
    }
    close_all(&home, l);
    free(as);
    free(sets);
    return rc;
}

int spro_client__cmd_edit(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("edit", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR edit [--json] ID FIELD=VALUE...\n"
               "Set fields of record ID (its type is known here).  VALUE: true, false,\n"
               "null, an integer (0, or digits without a leading zero), or a string;\n"
               "FIELD:=VALUE is always a string.  The edit is based on the field's values\n"
               "as this device last heard of them: if someone changed the field meanwhile,\n"
               "the next sync reports a conflict instead of overwriting.  Sent by the\n"
               "next `spro-client sync`.  --json prints {\"id\": ..., \"seq\": ...}.\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "edit")) != 0)
        return rc;
    if (a.n < 2) {
        fprintf(stderr, "spro-client edit: expects ID FIELD=VALUE... (see spro-client edit "
                        "--help)\n");
        return EXIT_USAGE;
    }
    struct spro_client_assign *as = calloc((size_t)a.n, sizeof *as);
    struct spro_local_set *sets = calloc((size_t)a.n, sizeof *sets);
    if (as == NULL || sets == NULL)
        SPRO_BUG("out of memory");
    size_t nsets;
    char rid[SPRO_LOCAL_UUID_CHARS + 1], rtype[SPRO_LOCAL_RTYPE_MAX + 1], why[512];
    rc = parse_assignments("edit", argv + 1, a.n - 1, as, sets, &nsets, NULL);
    if (rc == 0 && !read_id(argv[0], rid)) {
        fprintf(stderr, "spro-client edit: '%.80s' is not a record id (a UUID)\n", argv[0]);
        rc = EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l = NULL;
    if (rc == 0 && (rc = open_all("edit", o, &home, &st, &l)) == EXIT_OK) {
        if ((rc = find_record("edit", l, rid, rid, rtype)) == EXIT_OK) {
            struct spro_local_edit e = {rtype, rid, NULL, false, sets, nsets};
            uint64_t seq;
            int lrc = spro_local_write(l, &e, 1, spro_client__wall_ms(), &seq, why, sizeof why);
            if (lrc != 0)
                rc = local_failed("edit", lrc, why);
            else
                print_queued(a.json, "edited", rid, seq);
        }
        close_all(&home, l);
    }
    free(as);
    free(sets);
    return rc;
}

int spro_client__cmd_show(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("show", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf(
            "usage: spro-client --home DIR show [--json] ID\n"
            "Print record ID: `id:`, `type:`, `ben:`, then one `FIELD: VALUE` line per\n"
            "field (values as JSON literals).  A field this device edited and not yet\n"
            "synced shows its new value, marked (unsynced).  A field in conflict shows\n"
            "the most recent value, marked (conflict: N values), then every value on\n"
            "its own line with its author and version; `spro-client resolve` settles\n"
            "it.  --json prints {\"id\", \"type\", \"ben\", \"fields\": {FIELD: {\"value\",\n"
            "\"unsynced\", \"conflict\", \"siblings\": [{\"value\", \"by\", \"version\"}]}}}.\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "show")) != 0)
        return rc;
    if (a.n != 1) {
        fprintf(stderr, "spro-client show: expects one argument, ID (see spro-client show "
                        "--help)\n");
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all("show", o, &home, &st, &l)) != EXIT_OK)
        return rc;
    char rid[SPRO_LOCAL_UUID_CHARS + 1], rtype[SPRO_LOCAL_RTYPE_MAX + 1], why[512];
    if ((rc = find_record("show", l, argv[0], rid, rtype)) == EXIT_OK) {
        struct spro_local_record *r;
        if (spro_local_get(l, rtype, rid, &r, why, sizeof why) != 0) {
            fprintf(stderr, "spro-client show: %s\n", why);
            rc = EXIT_FAIL;
        } else {
            print_record(r, a.json);
            spro_local_record_free(r);
        }
    }
    close_all(&home, l);
    return rc;
}

struct list_ctx {
    bool json;
    size_t n;
};

static int list_one(void *arg, const char *rtype, const char *rid, const char *ben,
                    const char *name)
{
    struct list_ctx *c = arg;
    if (c->json) {
        printf("%s\n  {\"type\": ", c->n ? "," : "");
        json_cstr(rtype);
        printf(", \"id\": ");
        json_cstr(rid);
        printf(", \"ben\": ");
        json_cstr(ben);
        printf(", \"name\": ");
        if (name != NULL)
            json_cstr(name);
        else
            printf("null");
        printf("}");
    } else {
        print_safe(rtype);
        putchar(' ');
        print_safe(rid);
        if (name != NULL) {
            putchar(' ');
            json_cstr(name);
        }
        putchar('\n');
    }
    c->n++;
    return 0;
}

int spro_client__cmd_list(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("list", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR list [--json] [TYPE]\n"
               "One line per record on this device (of type TYPE only, when given), by\n"
               "type then id: `TYPE ID \"NAME\"`, NAME being its beneficiary's given and\n"
               "family names when this device knows them.  --json prints an array of\n"
               "{\"type\", \"id\", \"ben\", \"name\"} (name null when unknown).\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "list")) != 0)
        return rc;
    if (a.n > 1) {
        fprintf(stderr,
                "spro-client list: unexpected argument '%s' (see spro-client list "
                "--help)\n",
                argv[1]);
        return EXIT_USAGE;
    }
    if (a.n == 1 && !rtype_arg_ok(argv[0])) {
        fprintf(stderr, "spro-client list: '%.40s' is not a record type (a-z 0-9 _)\n", argv[0]);
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all("list", o, &home, &st, &l)) != EXIT_OK)
        return rc;
    char why[512];
    struct list_ctx c = {a.json, 0};
    if (a.json)
        printf("[");
    if (spro_local_list(l, a.n == 1 ? argv[0] : NULL, list_one, &c, why, sizeof why) != 0) {
        if (a.json)
            printf("]\n");
        fprintf(stderr, "spro-client list: %s\n", why);
        rc = EXIT_FAIL;
    } else if (a.json) {
        printf("%s]\n", c.n ? "\n" : "");
    }
    close_all(&home, l);
    return rc;
}

static int conflict_one(void *arg, const struct spro_local_record *r,
                        const struct spro_local_field *f)
{
    struct list_ctx *c = arg;
    if (c->json) {
        printf("%s\n  {\"type\": ", c->n ? "," : "");
        json_cstr(r->rtype);
        printf(", \"id\": ");
        json_cstr(r->rid);
        printf(", \"field\": ");
        json_cstr(f->name);
        printf(", \"siblings\": ");
        print_siblings_json(f);
        printf("}");
    } else {
        print_safe(r->rtype);
        putchar(' ');
        print_safe(r->rid);
        putchar(' ');
        print_safe(f->name);
        printf(": %zu values\n", f->nsiblings);
        for (size_t k = 0; k < f->nsiblings; k++)
            print_sibling_text(&f->siblings[k]);
    }
    c->n++;
    return 0;
}

/* Walks one listing of the local store into c (text lines or a JSON
 * array's elements). */
typedef int (*list_walk)(struct spro_local *l, struct list_ctx *c, char *why, size_t whylen);

/* The body of a listing command (conflicts, quarantine): arguments, help,
 * open the home, print the listing as text or as one JSON array. */
static int list_command(const char *cmd, const char *help, list_walk walk, const struct options *o,
                        int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args(cmd, argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        fputs(help, stdout);
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, cmd)) != 0)
        return rc;
    if (a.n > 0) {
        fprintf(stderr, "spro-client %s: unexpected argument '%s' (see spro-client %s --help)\n",
                cmd, argv[0], cmd);
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all(cmd, o, &home, &st, &l)) != EXIT_OK)
        return rc;
    char why[512];
    struct list_ctx c = {a.json, 0};
    if (a.json)
        printf("[");
    if (walk(l, &c, why, sizeof why) != 0) {
        if (a.json)
            printf("]\n");
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        rc = EXIT_FAIL;
    } else if (a.json) {
        printf("%s]\n", c.n ? "\n" : "");
    }
    close_all(&home, l);
    return rc;
}

static int walk_conflicts(struct spro_local *l, struct list_ctx *c, char *why, size_t whylen)
{
    return spro_local_conflicts(l, conflict_one, c, why, whylen);
}

int spro_client__cmd_conflicts(const struct options *o, int argc, char **argv)
{
    return list_command(
        "conflicts",
        "usage: spro-client --home DIR conflicts [--json]\n"
        "List the fields in conflict: edited on two devices (or more) that had not\n"
        "seen each other's edit.  Both values are kept until someone resolves the\n"
        "conflict (spro-client resolve).  One line `TYPE ID FIELD: N values` per\n"
        "field, then each value with its author and version.  Fields this device\n"
        "edited since are not listed: its edit settles them at the next sync.\n"
        "--json prints an array of {\"type\", \"id\", \"field\", \"siblings\"}.\n",
        walk_conflicts, o, argc, argv);
}

static int quarantined_one(uint64_t seq, const char *code, int64_t at, void *arg)
{
    struct list_ctx *c = arg;
    if (c->json)
        printf("%s\n  {\"seq\": %llu, \"code\": \"%s\", \"at\": %lld}", c->n ? "," : "",
               (unsigned long long)seq, code, (long long)at);
    else
        printf("op %llu: %s\n", (unsigned long long)seq, code);
    c->n++;
    return 0;
}

static int walk_quarantine(struct spro_local *l, struct list_ctx *c, char *why, size_t whylen)
{
    return spro_local_quarantine(l, quarantined_one, c, why, whylen);
}

int spro_client__cmd_quarantine(const struct options *o, int argc, char **argv)
{
    return list_command(
        "quarantine",
        "usage: spro-client --home DIR quarantine [--json]\n"
        "List this device's ops that the server refused, oldest first: one line\n"
        "`op SEQ: CODE` each (CODE: the reason, docs/PROTOCOL.md \"Sync\").  They are\n"
        "kept, never dropped.  --json prints an array of {\"seq\", \"code\", \"at\"}\n"
        "(at: seconds since the Unix epoch).\n",
        walk_quarantine, o, argc, argv);
}

int spro_client__cmd_resolve(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("resolve", argc, argv, true, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR resolve [--json] [--string] ID FIELD VALUE\n"
               "Settle the conflict of FIELD in record ID with VALUE: an edit whose base is\n"
               "every value in conflict, so that after the next sync the field holds VALUE\n"
               "alone on every device.  VALUE is typed as in edit (true, false, null, an\n"
               "integer, or a string); --string takes it as a string whatever it looks\n"
               "like.  Refused when the field is not in conflict (use edit).  --json prints\n"
               "{\"id\": ..., \"seq\": ...}.\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "resolve")) != 0)
        return rc;
    if (a.n != 3) {
        fprintf(stderr, "spro-client resolve: expects ID FIELD VALUE (see spro-client resolve "
                        "--help)\n");
        return EXIT_USAGE;
    }
    char rid[SPRO_LOCAL_UUID_CHARS + 1], rtype[SPRO_LOCAL_RTYPE_MAX + 1], why[512];
    struct spro_value v;
    if (!read_id(argv[0], rid)) {
        fprintf(stderr, "spro-client resolve: '%.80s' is not a record id (a UUID)\n", argv[0]);
        return EXIT_USAGE;
    }
    if (!spro_client_field_name_ok(argv[1])) {
        fprintf(stderr, "spro-client resolve: '%.80s' is not a field name\n", argv[1]);
        return EXIT_USAGE;
    }
    if (spro_client_value_parse(&v, argv[2], a.string, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client resolve: %s\n", why);
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all("resolve", o, &home, &st, &l)) != EXIT_OK)
        return rc;
    struct spro_local_record *r = NULL;
    if ((rc = find_record("resolve", l, rid, rid, rtype)) == EXIT_OK &&
        spro_local_get(l, rtype, rid, &r, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client resolve: %s\n", why);
        rc = EXIT_FAIL;
    }
    const struct spro_local_field *f = NULL;
    for (size_t i = 0; r != NULL && i < r->nfields; i++)
        if (strcmp(r->fields[i].name, argv[1]) == 0)
            f = &r->fields[i];
    if (rc == EXIT_OK && (f == NULL || !f->conflict)) {
        fprintf(stderr, "spro-client resolve: field %s of %s is not in conflict%s\n", argv[1], rid,
                f != NULL && f->pending ? " (it has an unsynced edit: sync first)"
                                        : " (use spro-client edit)");
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK) {
        struct spro_local_set set = {argv[1], v};
        struct spro_local_edit e = {rtype, rid, NULL, false, &set, 1};
        uint64_t seq;
        int lrc = spro_local_write(l, &e, 1, spro_client__wall_ms(), &seq, why, sizeof why);
        if (lrc != 0)
            rc = local_failed("resolve", lrc, why);
        else
            print_queued(a.json, "resolved", rid, seq);
    }
    spro_local_record_free(r);
    close_all(&home, l);
    return rc;
}

/* ---- Referrals ---- */

/* Whether s is an organisation id: 1..64 bytes of [A-Za-z0-9._-]. */
static bool org_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > SPRO_LOCAL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static struct spro_value str_value(const char *s)
{
    return (struct spro_value){.kind = SPRO_VALUE_STR, .s = {(const uint8_t *)s, strlen(s)}};
}

/* Whether the value field `name` of r shows is the string s. */
static bool shows(const struct spro_local_record *r, const char *name, const char *s)
{
    for (size_t i = 0; i < r->nfields; i++) {
        const struct spro_value *v = r->fields[i].shown;
        if (strcmp(r->fields[i].name, name) == 0)
            return v != NULL && v->kind == SPRO_VALUE_STR && v->s.len == strlen(s) &&
                   memcmp(v->s.p, s, v->s.len) == 0;
    }
    return false;
}

/* Prints the value field `name` of r shows, as a JSON literal. */
static void print_shown(FILE *f, const struct spro_local_record *r, const char *name)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i].name, name) == 0 && r->fields[i].shown != NULL) {
            spro_client_value_print(f, r->fields[i].shown);
            return;
        }
    fprintf(f, "null");
}

/* The options of refer taken out of argv[0..*argc) (before a `--`), the
 * other arguments moved to the front.  0, or EXIT_USAGE (reported). */
static int refer_options(int *argc, char **argv, const char **to, const char **reason,
                         bool *transfer)
{
    int n = 0;
    bool flags = true;
    for (int i = 0; i < *argc; i++) {
        char *s = argv[i];
        const char **dst = NULL, *val = NULL;
        if (flags && strcmp(s, "--") == 0) {
            flags = false;
            argv[n++] = s;
            continue;
        }
        if (flags && (strcmp(s, "--to") == 0 || strcmp(s, "--reason") == 0)) {
            if (i + 1 == *argc) {
                fprintf(stderr,
                        "spro-client refer: %s needs a value (see spro-client refer "
                        "--help)\n",
                        s);
                return EXIT_USAGE;
            }
            dst = s[2] == 't' ? to : reason;
            val = argv[++i];
        } else if (flags && strncmp(s, "--to=", 5) == 0) {
            dst = to, val = s + 5;
        } else if (flags && strncmp(s, "--reason=", 9) == 0) {
            dst = reason, val = s + 9;
        } else if (flags && strcmp(s, "--transfer") == 0) {
            *transfer = true;
            continue;
        } else {
            argv[n++] = s;
            continue;
        }
        if (*dst != NULL) {
            fprintf(stderr, "spro-client refer: --%s is given twice\n",
                    dst == to ? "to" : "reason");
            return EXIT_USAGE;
        }
        *dst = val;
    }
    *argc = n;
    return 0;
}

int spro_client__cmd_refer(const struct options *o, int argc, char **argv)
{
    const char *to = NULL, *reason = NULL;
    bool transfer = false;
    struct cli_args a;
    int rc = refer_options(&argc, argv, &to, &reason, &transfer);
    if (rc == 0)
        rc = spro_client__args("refer", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR refer [--json] ID --to ORG [--reason TEXT] "
               "[--transfer]\n"
               "Propose to organisation ORG to follow beneficiary ID: a new referral record\n"
               "(from_org this device's organisation, to_org ORG, reason TEXT, status\n"
               "\"proposed\", kind \"referral\", or \"transfer\" with --transfer), sent by the\n"
               "next sync.  ORG's devices then receive the referral alone, not the\n"
               "beneficiary, and accept or refuse it (spro-client accept, refuse).  Once\n"
               "it is accepted, ORG's devices receive the beneficiary's records.  After a\n"
               "referral this organisation keeps the beneficiary too; after a transfer it\n"
               "loses it, and its devices delete their copies at their next sync.  Notes\n"
               "of interactions never leave this organisation.  Prints `id: UUID` (the\n"
               "referral's id); --json prints {\"id\": ..., \"seq\": ...}.\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "refer")) != 0)
        return rc;
    char ben[SPRO_LOCAL_UUID_CHARS + 1], why[512];
    if (a.n != 1 || to == NULL) {
        fprintf(stderr, "spro-client refer: expects ID --to ORG (see spro-client refer --help)\n");
        return EXIT_USAGE;
    }
    if (!read_id(argv[0], ben)) {
        fprintf(stderr, "spro-client refer: '%.80s' is not a beneficiary id (a UUID)\n", argv[0]);
        return EXIT_USAGE;
    }
    if (!org_id_ok(to)) {
        fprintf(stderr, "spro-client refer: '%.80s' is not an organisation id\n", to);
        return EXIT_USAGE;
    }
    if (reason != NULL && strlen(reason) > SPRO_SYNC_MAX_VALUE) {
        fprintf(stderr, "spro-client refer: the reason is longer than %d bytes\n",
                SPRO_SYNC_MAX_VALUE);
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all("refer", o, &home, &st, &l)) != EXIT_OK)
        return rc;
    struct spro_local_record *b = NULL;
    int lrc = spro_local_get(l, BENEFICIARY, ben, &b, why, sizeof why);
    spro_local_record_free(b);
    if (lrc == SPRO_ENOENT) {
        fprintf(stderr, "spro-client refer: no beneficiary %s on this device\n", ben);
        rc = EXIT_FAIL;
    } else if (lrc != 0) {
        fprintf(stderr, "spro-client refer: %s\n", why);
        rc = EXIT_FAIL;
    } else if (strcmp(to, st.org) == 0) {
        fprintf(stderr, "spro-client refer: %s is this device's organisation; refer to another\n",
                to);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK) {
        char rid[SPRO_LOCAL_UUID_CHARS + 1];
        struct spro_local_set sets[5] = {
            {"from_org", str_value(st.org)},
            {"to_org", str_value(to)},
            {"status", str_value("proposed")},
            {"kind", str_value(transfer ? "transfer" : "referral")},
            {"reason", str_value(reason != NULL ? reason : "")},
        };
        spro_local_uuid(rid);
        struct spro_local_edit e = {REFERRAL, rid, ben, true, sets, reason != NULL ? 5 : 4};
        uint64_t seq;
        lrc = spro_local_write(l, &e, 1, spro_client__wall_ms(), &seq, why, sizeof why);
        if (lrc != 0)
            rc = local_failed("refer", lrc, why);
        else if (a.json)
            printf("{\"id\": \"%s\", \"seq\": %" PRIu64 "}\n", rid, seq);
        else
            printf("id: %s\n", rid);
    }
    close_all(&home, l);
    return rc;
}

/* accept and refuse: sets the status of a referral proposed to this
 * device's organisation. */
static int answer_referral(const char *cmd, const char *status, const struct options *o, int argc,
                           char **argv)
{
    struct cli_args a;
    int rc = spro_client__args(cmd, argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR %s [--json] ID\n", cmd);
        if (strcmp(cmd, "accept") == 0)
            printf("Accept referral ID, proposed to this device's organisation (spro-client\n"
                   "list referral): its status becomes \"accepted\" at the next sync, and the\n"
                   "server then gives this organisation the beneficiary: this organisation's\n"
                   "devices receive its records (spro-client sync).  A transfer also takes\n"
                   "the beneficiary from the organisation that referred it.\n");
        else
            printf("Refuse referral ID, proposed to this device's organisation (spro-client\n"
                   "list referral): its status becomes \"refused\" at the next sync; the\n"
                   "beneficiary stays with the organisation that referred it.\n");
        printf("Fails, changing nothing, when the referral is addressed to another\n"
               "organisation or is no longer proposed.  --json prints {\"id\": ..., \"seq\":\n"
               "...}.\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, cmd)) != 0)
        return rc;
    if (a.n != 1) {
        fprintf(stderr, "spro-client %s: expects one argument, ID (see spro-client %s --help)\n",
                cmd, cmd);
        return EXIT_USAGE;
    }
    char rid[SPRO_LOCAL_UUID_CHARS + 1];
    if (!read_id(argv[0], rid)) {
        fprintf(stderr, "spro-client %s: '%.80s' is not a record id (a UUID)\n", cmd, argv[0]);
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all(cmd, o, &home, &st, &l)) != EXIT_OK)
        return rc;
    char rtype[SPRO_LOCAL_RTYPE_MAX + 1], why[512];
    struct spro_local_record *r = NULL;
    if ((rc = find_record(cmd, l, rid, rid, rtype)) == EXIT_OK && strcmp(rtype, REFERRAL) != 0) {
        fprintf(stderr, "spro-client %s: %s is a %s, not a referral\n", cmd, rid, rtype);
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK && spro_local_get(l, rtype, rid, &r, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client %s: %s\n", cmd, why);
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK && !shows(r, "to_org", st.org)) {
        fprintf(stderr, "spro-client %s: referral %s is addressed to ", cmd, rid);
        print_shown(stderr, r, "to_org");
        fprintf(stderr, ", not to this device's organisation (%s)\n", st.org);
        rc = EXIT_FAIL;
    } else if (rc == EXIT_OK && !shows(r, "status", "proposed")) {
        fprintf(stderr, "spro-client %s: referral %s is ", cmd, rid);
        print_shown(stderr, r, "status");
        fprintf(stderr, ", not proposed\n");
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK) {
        struct spro_local_set set = {"status", str_value(status)};
        struct spro_local_edit e = {rtype, rid, NULL, false, &set, 1};
        uint64_t seq;
        int lrc = spro_local_write(l, &e, 1, spro_client__wall_ms(), &seq, why, sizeof why);
        if (lrc != 0)
            rc = local_failed(cmd, lrc, why);
        else
            print_queued(a.json, status, rid, seq);
    }
    spro_local_record_free(r);
    close_all(&home, l);
    return rc;
}

int spro_client__cmd_accept(const struct options *o, int argc, char **argv)
{
    return answer_referral("accept", "accepted", o, argc, argv);
}

int spro_client__cmd_refuse(const struct options *o, int argc, char **argv)
{
    return answer_referral("refuse", "refused", o, argc, argv);
}

/* ---- duplicates, merge (docs/SYNC.md, "Duplicates and merge") ---- */

#define DUPLICATE "duplicate"
#define DUP_MAX 1000 /* duplicate records listed */

struct dup_ids {
    char (*rid)[SPRO_LOCAL_UUID_CHARS + 1];
    size_t n;
};

static int dup_collect(void *arg, const char *rtype, const char *rid, const char *ben,
                       const char *name)
{
    struct dup_ids *d = arg;
    (void)rtype, (void)ben, (void)name;
    if (d->n < DUP_MAX && strlen(rid) == SPRO_LOCAL_UUID_CHARS)
        memcpy(d->rid[d->n++], rid, SPRO_LOCAL_UUID_CHARS + 1);
    return 0;
}

/* The string value field `name` of r shows into out (cap bytes), or "". */
static void shown_str(const struct spro_local_record *r, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; r != NULL && i < r->nfields; i++) {
        const struct spro_value *v = r->fields[i].shown;
        if (strcmp(r->fields[i].name, name) == 0 && v != NULL && v->kind == SPRO_VALUE_STR &&
            v->s.len < cap) {
            memcpy(out, v->s.p, v->s.len);
            out[v->s.len] = '\0';
        }
    }
}

/* Beneficiary id's display name ("given family") into out, or "" when this
 * device does not hold it. */
static void ben_name(struct spro_local *l, const char *id, char *out, size_t cap)
{
    struct spro_local_record *b = NULL;
    char why[512], given[128], family[128];
    out[0] = '\0';
    if (spro_local_get(l, BENEFICIARY, id, &b, why, sizeof why) != 0)
        return;
    shown_str(b, "given_name", given, sizeof given);
    shown_str(b, "family_name", family, sizeof family);
    if (given[0] != '\0' || family[0] != '\0')
        snprintf(out, cap, "%s%s%s", given, given[0] && family[0] ? " " : "", family);
    spro_local_record_free(b);
}

/* The ids of the duplicate records on this device into *d (malloc'd). */
static int dup_list(struct spro_local *l, struct dup_ids *d, char *why, size_t whylen)
{
    d->n = 0;
    if ((d->rid = malloc(DUP_MAX * sizeof *d->rid)) == NULL)
        SPRO_BUG("out of memory");
    return spro_local_list(l, DUPLICATE, dup_collect, d, why, whylen);
}

int spro_client__cmd_duplicates(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("duplicates", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR duplicates [--json]\n"
               "The duplicate candidates the server found (two beneficiaries with the same\n"
               "INE, rule \"ine\", or the same names and birth date, rule \"name_birth\"),\n"
               "one line each: `ID A B RULE STATUS \"NAME A\" \"NAME B\"`, names when this\n"
               "device knows them.  Only devices of supervisors and administrators\n"
               "receive them (spro-client sync).  --json prints an array of {\"id\", \"a\",\n"
               "\"b\", \"rule\", \"status\", \"name_a\", \"name_b\"} (names null when unknown).\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "duplicates")) != 0)
        return rc;
    if (a.n != 0) {
        fprintf(stderr, "spro-client duplicates: unexpected argument '%.80s'\n", argv[0]);
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all("duplicates", o, &home, &st, &l)) != EXIT_OK)
        return rc;
    char why[512];
    struct dup_ids d;
    if (dup_list(l, &d, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client duplicates: %s\n", why);
        rc = EXIT_FAIL;
    }
    if (a.json && rc == EXIT_OK)
        printf("[");
    for (size_t i = 0; rc == EXIT_OK && i < d.n; i++) {
        struct spro_local_record *r = NULL;
        char f[4][SPRO_LOCAL_UUID_CHARS + 1], na[256], nb[256];
        static const char *const names[] = {"a", "b", "rule", "status"};
        if (spro_local_get(l, DUPLICATE, d.rid[i], &r, why, sizeof why) != 0)
            continue;
        for (int k = 0; k < 4; k++)
            shown_str(r, names[k], f[k], sizeof f[k]);
        spro_local_record_free(r);
        ben_name(l, f[0], na, sizeof na);
        ben_name(l, f[1], nb, sizeof nb);
        if (a.json) {
            printf("%s\n  {\"id\": ", i ? "," : "");
            json_cstr(d.rid[i]);
            for (int k = 0; k < 4; k++) {
                printf(", \"%s\": ", names[k]);
                json_cstr(f[k]);
            }
            printf(", \"name_a\": ");
            na[0] ? json_cstr(na) : (void)printf("null");
            printf(", \"name_b\": ");
            nb[0] ? json_cstr(nb) : (void)printf("null");
            printf("}");
        } else {
            print_safe(d.rid[i]);
            for (int k = 0; k < 4; k++) {
                putchar(' ');
                print_safe(f[k][0] ? f[k] : "-");
            }
            if (na[0] || nb[0]) {
                putchar(' ');
                json_cstr(na);
                putchar(' ');
                json_cstr(nb);
            }
            putchar('\n');
        }
    }
    if (a.json && rc == EXIT_OK)
        printf("%s]\n", d.n ? "\n" : "");
    free(d.rid);
    close_all(&home, l);
    return rc;
}

int spro_client__cmd_merge(const struct options *o, int argc, char **argv)
{
    struct cli_args a;
    int rc = spro_client__args("merge", argc, argv, false, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        printf("usage: spro-client --home DIR merge [--json] KEEP_ID OTHER_ID\n"
               "Merge beneficiary OTHER_ID into KEEP_ID (supervisors and administrators\n"
               "only): OTHER_ID's state becomes \"merged\" and its merged_into KEEP_ID, and\n"
               "the duplicate record of the pair, if this device holds one, becomes\n"
               "\"merged\"; one local transaction, sent by the next sync.  The server then\n"
               "moves OTHER_ID's records to KEEP_ID, and applies to KEEP_ID what devices\n"
               "still holding OTHER_ID write to it.  --json prints {\"id\": OTHER_ID,\n"
               "\"seq\": ...} (the seq of the beneficiary's op).\n");
        return EXIT_OK;
    }
    if ((rc = spro_client__need_home(o, "merge")) != 0)
        return rc;
    char keep[SPRO_LOCAL_UUID_CHARS + 1], other[SPRO_LOCAL_UUID_CHARS + 1], why[512];
    if (a.n != 2) {
        fprintf(stderr, "spro-client merge: expects KEEP_ID OTHER_ID (see spro-client merge "
                        "--help)\n");
        return EXIT_USAGE;
    }
    if (!read_id(argv[0], keep) || !read_id(argv[1], other) || strcmp(keep, other) == 0) {
        fprintf(stderr, "spro-client merge: expects two different beneficiary ids (UUIDs)\n");
        return EXIT_USAGE;
    }
    struct spro_client_home home;
    struct spro_client_state st;
    struct spro_local *l;
    if ((rc = open_all("merge", o, &home, &st, &l)) != EXIT_OK)
        return rc;
    if (strcmp(st.role, "supervisor") != 0 && strcmp(st.role, "admin") != 0) {
        fprintf(stderr,
                "spro-client merge: only supervisors and administrators merge (this "
                "device's role: %s; spro-client ping or sync updates it)\n",
                st.role[0] ? st.role : "unknown");
        close_all(&home, l);
        return EXIT_FAIL;
    }
    const char *ids[2] = {keep, other};
    for (int i = 0; rc == EXIT_OK && i < 2; i++) {
        struct spro_local_record *b = NULL;
        int lrc = spro_local_get(l, BENEFICIARY, ids[i], &b, why, sizeof why);
        if (lrc == 0 && i == 1 && shows(b, "state", "merged")) {
            fprintf(stderr, "spro-client merge: %s is merged already\n", ids[i]);
            rc = EXIT_FAIL;
        }
        spro_local_record_free(b);
        if (lrc == SPRO_ENOENT) {
            fprintf(stderr, "spro-client merge: no beneficiary %s on this device\n", ids[i]);
            rc = EXIT_FAIL;
        } else if (lrc != 0) {
            fprintf(stderr, "spro-client merge: %s\n", why);
            rc = EXIT_FAIL;
        }
    }
    struct dup_ids d = {NULL, 0};
    if (rc == EXIT_OK && dup_list(l, &d, why, sizeof why) != 0) {
        fprintf(stderr, "spro-client merge: %s\n", why);
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK) {
        struct spro_local_set ben_sets[2] = {{"state", str_value("merged")},
                                             {"merged_into", str_value(keep)}};
        struct spro_local_set dup_set = {"status", str_value("merged")};
        struct spro_local_edit e[2] = {{BENEFICIARY, other, NULL, false, ben_sets, 2}};
        size_t n = 1;
        for (size_t i = 0; i < d.n && n == 1; i++) {
            struct spro_local_record *r = NULL;
            char x[SPRO_LOCAL_UUID_CHARS + 1], y[SPRO_LOCAL_UUID_CHARS + 1];
            if (spro_local_get(l, DUPLICATE, d.rid[i], &r, why, sizeof why) != 0)
                continue;
            shown_str(r, "a", x, sizeof x);
            shown_str(r, "b", y, sizeof y);
            spro_local_record_free(r);
            if ((strcmp(x, keep) == 0 && strcmp(y, other) == 0) ||
                (strcmp(x, other) == 0 && strcmp(y, keep) == 0))
                e[n++] = (struct spro_local_edit){DUPLICATE, d.rid[i], NULL, false, &dup_set, 1};
        }
        uint64_t seqs[2];
        int lrc = spro_local_write(l, e, n, spro_client__wall_ms(), seqs, why, sizeof why);
        if (lrc != 0)
            rc = local_failed("merge", lrc, why);
        else
            print_queued(a.json, "merged", other, seqs[0]);
    }
    free(d.rid);
    close_all(&home, l);
    return rc;
}
