/*
 * struct spro_buf: the growable byte buffer the encoders append to; and
 * spro_arena_alloc(), the bump allocator of struct spro_arena (caller
 * memory, never grown) that decoded sync messages take their arrays from.
 *
 * Zero-initialise a buffer, append to it, read data[0..len), then release
 * it with spro_buf_free().  Capacity grows geometrically (doubling, at
 * least 64 bytes), so n appends of one byte cost O(n).  Allocation failure
 * and size overflow abort with a message: callers never see a partial
 * append.
 */
#include "proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 64

static _Noreturn void out_of_memory(size_t n)
{
    fprintf(stderr, "fatal: out of memory (buffer of %zu bytes)\n", n);
    abort();
}

/* Makes room for n more bytes: b->cap >= b->len + n after it, b->len and
 * the bytes unchanged.  Never fails: aborts on out-of-memory or if the
 * length would overflow size_t. */
void spro_buf_reserve(struct spro_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len)
        out_of_memory(SIZE_MAX);
    size_t need = b->len + n;
    if (need > b->cap) {
        size_t cap = b->cap < MIN_CAP ? MIN_CAP : b->cap;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *data = realloc(b->data, cap);
        if (data == NULL)
            out_of_memory(cap);
        b->data = data;
        b->cap = cap;
    }
}

/* Appends p[0..n) to b.  p may be NULL when n == 0.  Never fails: aborts on
 * out-of-memory or if the length would overflow size_t. */
void spro_buf_append(struct spro_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    spro_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* Releases the storage of b and leaves it empty (zeroed), ready for reuse.
 * Accepts a buffer that never grew. */
void spro_buf_free(struct spro_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Takes n bytes aligned to `align` from a: pads a->len up to the next
 * aligned address, then adds n.  Returns NULL and takes nothing when they
 * do not fit (or a is empty: base NULL).  Memory is not zeroed. */
void *spro_arena_alloc(struct spro_arena *a, size_t n, size_t align)
{
    if (align == 0 || align > 16 || (align & (align - 1)) != 0)
        SPRO_BUG("spro_arena_alloc: bad alignment");
    if (a->base == NULL || a->len > a->cap)
        return NULL; /* no arithmetic on a NULL base */
    uintptr_t at = (uintptr_t)(a->base + a->len);
    size_t pad = (size_t)((align - at % align) % align);
    if (a->len > a->cap || pad > a->cap - a->len || n > a->cap - a->len - pad)
        return NULL;
    void *p = a->base + a->len + pad;
    a->len += pad + n;
    return p;
}
