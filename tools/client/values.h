/*
 * values: field values on spro-client's command line and in its output.
 *
 * On the command line a field is set with FIELD=VALUE, where VALUE is
 * typed by its spelling: `true` and `false` are booleans, `null` the empty
 * value (nil), an integer literal (`0`, or an optional `-` then digits
 * without a leading zero, within the int64 range) an integer, anything
 * else a string.  FIELD:=VALUE takes VALUE as a string whatever it looks
 * like (`phone:=0601020304` keeps its leading zero either way, `note:=true`
 * is the word).  Field names are 1..64 of A-Z a-z 0-9 _ -.
 *
 * In output a value is written as a JSON literal (strings quoted and
 * escaped), in the text and the --json forms alike: a string "true" and
 * the boolean true look different, and nothing a server or another device
 * wrote can drive the terminal (control characters are escaped).
 */
#ifndef SPRO_TOOLS_CLIENT_VALUES_H
#define SPRO_TOOLS_CLIENT_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/proto.h"

#define SPRO_CLIENT_FIELD_MAX 64 /* bytes of a field name */

/* One FIELD=VALUE argument. */
struct spro_client_assign {
    char name[SPRO_CLIENT_FIELD_MAX + 1];
    struct spro_value val; /* a string points into the argument */
};

/* Whether name is a field name (1..64 of A-Z a-z 0-9 _ -). */
bool spro_client_field_name_ok(const char *name);

/* Types text as described above (as_string: always a string).  Returns 0
 * and fills *v (raw left empty); or SPRO_ERANGE for an integer literal out
 * of the int64 range, SPRO_ETOOLONG for a string above SPRO_SYNC_MAX_VALUE
 * bytes, with a sentence in why. */
SPRO_MUST_CHECK int spro_client_value_parse(struct spro_value *v, const char *text, bool as_string,
                                            char *why, size_t whylen);

/* Parses one FIELD=VALUE or FIELD:=VALUE argument into *a.  Returns 0; or
 * SPRO_ERANGE (no `=`, a bad field name, an integer out of range) or
 * SPRO_ETOOLONG, with a sentence in why. */
SPRO_MUST_CHECK int spro_client_assign_parse(struct spro_client_assign *a, const char *arg,
                                             char *why, size_t whylen);

/* Writes n bytes as a JSON string: quotes, backslashes, C0 and C1 control
 * characters and DEL escaped; other bytes as they are. */
void spro_client_json_string(FILE *f, const void *p, size_t n);

/* Writes v as a JSON literal: null, true, false, an integer or a string. */
void spro_client_value_print(FILE *f, const struct spro_value *v);

#endif
