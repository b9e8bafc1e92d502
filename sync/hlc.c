/*
 * hlc.c: the hybrid logical clock of versions (merge.h).
 *
 * Values are packed: physical milliseconds in the high 48 bits, a logical
 * counter in the low 16.  On packed values the rules of Kulkarni et al.
 * reduce to maxima of plain integers: a counter at 0xffff plus one carries
 * into the physical part, which merge.h documents as intended.  Physical
 * inputs saturate at SPRO_HLC_MAX_MS, so the packed value stays below 2^63
 * plus the number of events and never wraps.
 */
#include "merge.h"

static uint64_t max2(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* wall_ms in the packed form, saturated at SPRO_HLC_MAX_MS. */
static uint64_t packed_ms(uint64_t ms)
{
    if (ms > SPRO_HLC_MAX_MS)
        ms = SPRO_HLC_MAX_MS;
    return ms << SPRO_HLC_LOGICAL_BITS;
}

/* last + 1, for a clock that only ever held values this file returned. */
static uint64_t next_of(const struct spro_hlc *c)
{
    if (c->last == UINT64_MAX)
        SPRO_BUG("hybrid logical clock exhausted (last was not made by this clock)");
    return c->last + 1;
}

uint64_t spro_hlc_tick(struct spro_hlc *c, uint64_t wall_ms)
{
    c->last = max2(packed_ms(wall_ms), next_of(c));
    return c->last;
}

uint64_t spro_hlc_receive(struct spro_hlc *c, uint64_t remote, uint64_t wall_ms,
                          uint64_t max_drift_ms, bool *clamped)
{
    uint64_t limit = wall_ms > SPRO_HLC_MAX_MS ? SPRO_HLC_MAX_MS : wall_ms;
    limit = max_drift_ms > SPRO_HLC_MAX_MS - limit ? SPRO_HLC_MAX_MS : limit + max_drift_ms;
    bool clamp = spro_hlc_physical_ms(remote) > limit;
    if (clamp)
        remote = limit << SPRO_HLC_LOGICAL_BITS;
    if (clamped != NULL)
        *clamped = clamp;
    /* remote <= SPRO_HLC_MAX_MS << 16 | 0xffff here, so remote + 1 does not wrap. */
    c->last = max2(max2(next_of(c), remote + 1), packed_ms(wall_ms));
    return c->last;
}

uint64_t spro_hlc_physical_ms(uint64_t h)
{
    return h >> SPRO_HLC_LOGICAL_BITS;
}
