/*
 * The strict msgpack pull reader behind every decoder of spro-sync.
 *
 * A byte-level reader written for untrusted input: it never allocates,
 * never trusts a length or count (each is checked against the bytes that
 * remain before anything is done with it), and every read either consumes
 * exactly one value or fails with the cursor unchanged.  msgpack-c's own
 * unpacker is not used on purpose: it reserves memory in proportion to a
 * declared count before seeing the elements.
 *
 * One value is checked in this order, the first failure winning:
 *   1. the first byte is present                      (SPRO_ETRUNCATED)
 *   2. it is a msgpack type (0xc1 is not)             (SPRO_EMALFORMED)
 *   3. the rest of the header is present              (SPRO_ETRUNCATED)
 *   4. the type is the one asked for                  (SPRO_EBADTYPE)
 *   5. the length or count is within `max`            (SPRO_ETOOLONG)
 *      or the integer is within [min, max]            (SPRO_ERANGE)
 *   6. the payload fits in the remaining bytes        (SPRO_ETRUNCATED)
 *      (an array of n needs n bytes, a map of n 2n: every value is at
 *      least one byte long)
 *   7. a string is valid UTF-8                        (SPRO_EBADUTF8)
 * The "header" of a fixed-size scalar (integer, float) is the whole value.
 *
 * spro_mp_skip() walks a whole value depth first and reports the first
 * failure in byte order, except duplicate keys, which are found when the
 * map that holds them has been read to its end.
 */
#include "proto.h"

#include <string.h>

/* What a header says, after decoding. */
enum kind {
    K_NIL,
    K_BOOL,
    K_UINT,  /* any integer >= 0, whatever its msgpack width */
    K_NEG,   /* any integer < 0 */
    K_FLOAT, /* float 32 or 64 */
    K_STR,
    K_BIN,
    K_EXT, /* ext and fixext: never used by spro-sync */
    K_ARRAY,
    K_MAP,
};

struct head {
    enum kind kind;
    size_t hlen; /* bytes of the header, 1..9 */
    uint64_t u;  /* K_UINT value, K_BOOL 0/1, K_STR/K_BIN/K_EXT payload
                    bytes, K_ARRAY/K_MAP count (< 2^32) */
    int64_t i;   /* K_NEG value */
};

/* Big-endian unsigned integer of w bytes (0..8). */
static uint64_t load_be(const uint8_t *p, size_t w)
{
    uint64_t v = 0;
    for (size_t k = 0; k < w; k++)
        v = v << 8 | p[k];
    return v;
}

/* Two's complement value of the w-byte (1..8) pattern v, without relying
 * on implementation-defined conversions. */
static int64_t sign_extend(uint64_t v, size_t w)
{
    unsigned bits = (unsigned)(8 * w);
    uint64_t mask = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
    if ((v >> (bits - 1) & 1) == 0)
        return (int64_t)v;
    return -(int64_t)(~v & mask) - 1;
}

/* Decodes the header at p (steps 1-3 above).  Returns 0 and fills *h, or
 * SPRO_ETRUNCATED / SPRO_EMALFORMED. */
static int head(const uint8_t *p, const uint8_t *end, struct head *h)
{
    if (p == end)
        return SPRO_ETRUNCATED;
    size_t avail = (size_t)(end - p) - 1; /* bytes after the first */
    uint8_t b = p[0];
    size_t w = 0;     /* width of the big-endian field after byte 0 */
    size_t extra = 0; /* further header bytes (the ext type byte) */

    h->hlen = 1;
    h->u = 0;
    h->i = 0;
    if (b <= 0x7f) {
        h->kind = K_UINT;
        h->u = b;
        return 0;
    }
    if (b >= 0xe0) {
        h->kind = K_NEG;
        h->i = (int64_t)b - 256;
        return 0;
    }
    if (b <= 0x8f) {
        h->kind = K_MAP;
        h->u = b & 0x0f;
        return 0;
    }
    if (b <= 0x9f) {
        h->kind = K_ARRAY;
        h->u = b & 0x0f;
        return 0;
    }
    if (b <= 0xbf) {
        h->kind = K_STR;
        h->u = b & 0x1f;
        return 0;
    }
    switch (b) {
    case 0xc0:
        h->kind = K_NIL;
        return 0;
    case 0xc1:
        return SPRO_EMALFORMED;
    case 0xc2:
    case 0xc3:
        h->kind = K_BOOL;
        h->u = b & 1;
        return 0;
    case 0xc4: /* bin 8, 16, 32 */
    case 0xc5:
    case 0xc6:
        h->kind = K_BIN;
        w = (size_t)1 << (b - 0xc4);
        break;
    case 0xc7: /* ext 8, 16, 32: length, then a type byte */
    case 0xc8:
    case 0xc9:
        h->kind = K_EXT;
        w = (size_t)1 << (b - 0xc7);
        extra = 1;
        break;
    case 0xca:
        h->kind = K_FLOAT;
        extra = 4;
        break;
    case 0xcb:
        h->kind = K_FLOAT;
        extra = 8;
        break;
    case 0xcc: /* uint 8, 16, 32, 64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        h->kind = K_UINT;
        w = (size_t)1 << (b - 0xcc);
        break;
    case 0xd0: /* int 8, 16, 32, 64 */
    case 0xd1:
    case 0xd2:
    case 0xd3:
        h->kind = K_NEG; /* refined below */
        w = (size_t)1 << (b - 0xd0);
        break;
    case 0xd4: /* fixext 1, 2, 4, 8, 16: a type byte, then the data */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        h->kind = K_EXT;
        h->u = (uint64_t)1 << (b - 0xd4);
        extra = 1;
        break;
    case 0xd9: /* str 8, 16, 32 */
    case 0xda:
    case 0xdb:
        h->kind = K_STR;
        w = (size_t)1 << (b - 0xd9);
        break;
    case 0xdc: /* array 16, 32 */
    case 0xdd:
        h->kind = K_ARRAY;
        w = (size_t)2 << (b - 0xdc);
        break;
    default: /* 0xde, 0xdf: map 16, 32 */
        h->kind = K_MAP;
        w = (size_t)2 << (b - 0xde);
        break;
    }
    if (avail < w + extra)
        return SPRO_ETRUNCATED;
    h->hlen = 1 + w + extra;
    if (w == 0)
        return 0; /* float or fixext: nothing more to decode */
    uint64_t v = load_be(p + 1, w);
    if (h->kind == K_NEG) {
        int64_t s = sign_extend(v, w);
        if (s >= 0) {
            h->kind = K_UINT;
            h->u = (uint64_t)s;
        } else {
            h->i = s;
        }
    } else {
        h->u = v;
    }
    return 0;
}

size_t spro_proto__utf8_prefix(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII, eight bytes at a time (most strings are all ASCII). */
        uint64_t w;
        while (len - i >= 8 && (memcpy(&w, s + i, 8), (w & UINT64_C(0x8080808080808080)) == 0))
            i += 8;
        if (i == len)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need; /* continuation bytes */
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c == 0xe0) {
            need = 2;
            lo = 0xa0; /* no overlong 3-byte forms */
        } else if (c == 0xed) {
            need = 2;
            hi = 0x9f; /* no surrogates U+D800..U+DFFF */
        } else if (c >= 0xe1 && c <= 0xef) {
            need = 2;
        } else if (c == 0xf0) {
            need = 3;
            lo = 0x90; /* no overlong 4-byte forms */
        } else if (c == 0xf4) {
            need = 3;
            hi = 0x8f; /* nothing above U+10FFFF */
        } else if (c >= 0xf1 && c <= 0xf3) {
            need = 3;
        } else {
            return i; /* 0x80..0xc1 (continuation, overlong), 0xf5..0xff */
        }
        if (len - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        i += need + 1;
    }
    return i;
}

static bool utf8_valid(const uint8_t *s, size_t len)
{
    return spro_proto__utf8_prefix(s, len) == len;
}

void spro_mp_reader_init(struct spro_mp_reader *r, const void *buf, size_t len)
{
    static const uint8_t empty[1];
    if (len == 0) /* buf may be NULL: never do arithmetic on it */
        buf = empty;
    r->p = buf;
    r->end = r->p + len;
}

/* Bytes left after the header h of the value at r->p. */
static size_t after_head(const struct spro_mp_reader *r, const struct head *h)
{
    return (size_t)(r->end - r->p) - h->hlen;
}

int spro_mp_read_map(struct spro_mp_reader *r, uint32_t max, uint32_t *n)
{
    struct head h;
    int err = head(r->p, r->end, &h);
    if (err != 0)
        return err;
    if (h.kind != K_MAP)
        return SPRO_EBADTYPE;
    if (h.u > max)
        return SPRO_ETOOLONG;
    if (2 * h.u > after_head(r, &h))
        return SPRO_ETRUNCATED;
    *n = (uint32_t)h.u;
    r->p += h.hlen;
    return 0;
}

int spro_mp_read_array(struct spro_mp_reader *r, uint32_t max, uint32_t *n)
{
    struct head h;
    int err = head(r->p, r->end, &h);
    if (err != 0)
        return err;
    if (h.kind != K_ARRAY)
        return SPRO_EBADTYPE;
    if (h.u > max)
        return SPRO_ETOOLONG;
    if (h.u > after_head(r, &h))
        return SPRO_ETRUNCATED;
    *n = (uint32_t)h.u;
    r->p += h.hlen;
    return 0;
}

/* Shared by str and bin: checks kind, limit, and payload, then consumes. */
static int read_blob(struct spro_mp_reader *r, enum kind kind, size_t max, const uint8_t **b,
                     size_t *len)
{
    struct head h;
    int err = head(r->p, r->end, &h);
    if (err != 0)
        return err;
    if (h.kind != kind)
        return SPRO_EBADTYPE;
    if (h.u > max)
        return SPRO_ETOOLONG;
    if (h.u > after_head(r, &h))
        return SPRO_ETRUNCATED;
    const uint8_t *payload = r->p + h.hlen;
    if (kind == K_STR && !utf8_valid(payload, (size_t)h.u))
        return SPRO_EBADUTF8;
    *b = payload;
    *len = (size_t)h.u;
    r->p = payload + h.u;
    return 0;
}

int spro_mp_read_str(struct spro_mp_reader *r, size_t max, const char **s, size_t *len)
{
    const uint8_t *b;
    int err = read_blob(r, K_STR, max, &b, len);
    if (err == 0)
        *s = (const char *)b;
    return err;
}

int spro_mp_read_bin(struct spro_mp_reader *r, size_t max, const uint8_t **b, size_t *len)
{
    return read_blob(r, K_BIN, max, b, len);
}

int spro_mp_read_uint(struct spro_mp_reader *r, uint64_t min, uint64_t max, uint64_t *v)
{
    struct head h;
    int err = head(r->p, r->end, &h);
    if (err != 0)
        return err;
    if (h.kind == K_NEG)
        return SPRO_ERANGE;
    if (h.kind != K_UINT)
        return SPRO_EBADTYPE;
    if (h.u < min || h.u > max)
        return SPRO_ERANGE;
    *v = h.u;
    r->p += h.hlen;
    return 0;
}

int spro_mp_read_int(struct spro_mp_reader *r, int64_t min, int64_t max, int64_t *v)
{
    struct head h;
    int err = head(r->p, r->end, &h);
    if (err != 0)
        return err;
    int64_t s;
    if (h.kind == K_NEG) {
        s = h.i;
    } else if (h.kind == K_UINT) {
        if (h.u > INT64_MAX)
            return SPRO_ERANGE;
        s = (int64_t)h.u;
    } else {
        return SPRO_EBADTYPE;
    }
    if (s < min || s > max)
        return SPRO_ERANGE;
    *v = s;
    r->p += h.hlen;
    return 0;
}

int spro_mp_read_bool(struct spro_mp_reader *r, bool *v)
{
    struct head h;
    int err = head(r->p, r->end, &h);
    if (err != 0)
        return err;
    if (h.kind != K_BOOL)
        return SPRO_EBADTYPE;
    *v = h.u != 0;
    r->p += h.hlen;
    return 0;
}

int spro_mp_read_nil(struct spro_mp_reader *r)
{
    struct head h;
    int err = head(r->p, r->end, &h);
    if (err != 0)
        return err;
    if (h.kind != K_NIL)
        return SPRO_EBADTYPE;
    r->p += h.hlen;
    return 0;
}

/* ---- Skipping whole values ---- */

/* A string key of a map, for the duplicate check. */
struct key {
    const uint8_t *p;
    size_t len;
};

/* Maps of at most this many entries have their keys checked for
 * duplicates pair by pair, without a second walk. */
#define SMALL_MAP 16

/* Orders keys by length, then bytes. */
static int key_cmp(const struct key *a, const struct key *b)
{
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->len == 0 ? 0 : memcmp(a->p, b->p, a->len);
}

static void sift_down(struct key *k, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && key_cmp(&k[child], &k[child + 1]) < 0)
            child++;
        if (key_cmp(&k[root], &k[child]) >= 0)
            return;
        struct key t = k[root];
        k[root] = k[child];
        k[child] = t;
        root = child;
    }
}

/* Heapsort: O(n log n) in the worst case, in place, no allocation (qsort
 * may allocate). */
static void sort_keys(struct key *k, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(k, i, n);
    for (size_t i = n; i-- > 1;) {
        struct key t = k[0];
        k[0] = k[i];
        k[i] = t;
        sift_down(k, 0, i);
    }
}

/* Moves *pp past one value that skip_value() has already checked, without
 * recursion.  Returns 0, or the header error (only on an inconsistent
 * buffer; kept as an error rather than an assertion because the bytes are
 * untrusted). */
static int pass_value(const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    uint64_t left = 1; /* values still to pass */
    while (left > 0) {
        struct head h;
        int err = head(p, end, &h);
        if (err != 0)
            return err;
        left--;
        p += h.hlen;
        if (h.kind == K_ARRAY) {
            left += h.u;
        } else if (h.kind == K_MAP) {
            left += 2 * h.u;
        } else if (h.kind == K_STR || h.kind == K_BIN || h.kind == K_EXT) {
            if (h.u > (size_t)(end - p))
                return SPRO_ETRUNCATED;
            p += h.u;
        }
    }
    *pp = p;
    return 0;
}

/* Refuses two equal string keys among the n entries of the checked map
 * whose first key starts at p.  Keys of other types are not compared.
 * Collects (pointer, length) slices of the string keys, sorts them and
 * compares neighbours: O(n log n), 64 KiB of stack at most. */
static int check_dupkeys(const uint8_t *p, const uint8_t *end, uint32_t n)
{
    struct key keys[SPRO_PROTO_MAX_ITEMS];
    size_t nkeys = 0;
    if (n > SPRO_PROTO_MAX_ITEMS)
        return SPRO_ETOOLONG; /* checked by the caller already */
    for (uint32_t k = 0; k < n; k++) {
        struct head h;
        int err = head(p, end, &h);
        if (err != 0)
            return err;
        if (h.kind == K_STR) {
            keys[nkeys].p = p + h.hlen;
            keys[nkeys].len = (size_t)h.u;
            nkeys++;
        }
        if ((err = pass_value(&p, end)) != 0 || (err = pass_value(&p, end)) != 0)
            return err;
    }
    if (nkeys < 2)
        return 0;
    sort_keys(keys, nkeys);
    for (size_t k = 1; k < nkeys; k++)
        if (key_cmp(&keys[k - 1], &keys[k]) == 0)
            return SPRO_EDUPKEY;
    return 0;
}

/* Checks and consumes one value at *pp, whose containers sit inside
 * `depth` others.  Recursion is bounded: a container at depth
 * SPRO_PROTO_MAX_DEPTH is refused before it is entered. */
static int skip_value(const uint8_t **pp, const uint8_t *end, unsigned depth)
{
    const uint8_t *p = *pp;
    struct head h;
    int err = head(p, end, &h);
    if (err != 0)
        return err;
    size_t avail = (size_t)(end - p) - h.hlen;
    const uint8_t *body = p + h.hlen;

    switch (h.kind) {
    case K_NIL:
    case K_BOOL:
    case K_UINT:
    case K_NEG:
    case K_FLOAT:
        p = body;
        break;
    case K_EXT:
        return SPRO_EBADTYPE;
    case K_STR:
    case K_BIN:
        if (h.u > (h.kind == K_STR ? SPRO_PROTO_MAX_STR : SPRO_PROTO_MAX_BIN))
            return SPRO_ETOOLONG;
        if (h.u > avail)
            return SPRO_ETRUNCATED;
        if (h.kind == K_STR && !utf8_valid(body, (size_t)h.u))
            return SPRO_EBADUTF8;
        p = body + h.u;
        break;
    case K_ARRAY:
    case K_MAP: {
        if (depth >= SPRO_PROTO_MAX_DEPTH)
            return SPRO_ETOODEEP;
        if (h.u > SPRO_PROTO_MAX_ITEMS)
            return SPRO_ETOOLONG;
        uint64_t values = h.kind == K_MAP ? 2 * h.u : h.u;
        if (values > avail)
            return SPRO_ETRUNCATED;
        /* The keys of a small map are noted on the way and compared pair
         * by pair; a larger one is walked again by check_dupkeys(). */
        struct key small[SMALL_MAP];
        size_t nsmall = 0;
        int note = h.kind == K_MAP && h.u <= SMALL_MAP;
        p = body;
        for (uint64_t k = 0; k < values; k++) {
            struct head kh;
            if (note && k % 2 == 0 && head(p, end, &kh) == 0 && kh.kind == K_STR)
                small[nsmall++] = (struct key){p + kh.hlen, (size_t)kh.u};
            if ((err = skip_value(&p, end, depth + 1)) != 0)
                return err;
        }
        for (size_t a = 1; a < nsmall; a++)
            for (size_t b = 0; b < a; b++)
                if (key_cmp(&small[a], &small[b]) == 0)
                    return SPRO_EDUPKEY;
        if (h.kind == K_MAP && !note && (err = check_dupkeys(body, end, (uint32_t)h.u)) != 0)
            return err;
        break;
    }
    }
    *pp = p;
    return 0;
}

int spro_mp_skip(struct spro_mp_reader *r, unsigned depth)
{
    return skip_value(&r->p, r->end, depth); /* moves r->p only on success */
}

int spro_mp_finish(const struct spro_mp_reader *r)
{
    return r->p == r->end ? 0 : SPRO_ETRAILING;
}

int spro_proto_validate(const void *buf, size_t len)
{
    struct spro_mp_reader r;
    spro_mp_reader_init(&r, buf, len);
    int err = spro_mp_skip(&r, 0);
    return err != 0 ? err : spro_mp_finish(&r);
}
