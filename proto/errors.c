/*
 * spro_strerror(), spro_errcode() and spro_errstatus(): generated from the
 * one SPRO_ERRNO_MAP table in errors.h.
 */
#include "errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct errinfo {
    const char *code;
    int status;
    const char *msg;
};

static const struct errinfo errtab[] = {
#define XX(name, code, status, msg) {code, status, msg},
    SPRO_ERRNO_MAP(XX)
#undef XX
};

static const struct errinfo *lookup(int err)
{
    if (err > SPRO__EBASE && err < SPRO__ELAST)
        return &errtab[err - SPRO__EBASE - 1];
    return NULL;
}

const char *spro_strerror(int err)
{
    const struct errinfo *e = lookup(err);
    if (e != NULL)
        return e->msg;
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

const char *spro_errcode(int err)
{
    const struct errinfo *e = lookup(err);
    return e != NULL ? e->code : "internal";
}

int spro_errstatus(int err)
{
    const struct errinfo *e = lookup(err);
    return e != NULL ? e->status : 500;
}

void spro__bug(const char *file, int line, const char *msg)
{
    fprintf(stderr, "BUG at %s:%d: %s\n", file, line, msg);
    abort();
}
