/*
 * Pooling: the plan, the scratch size and the entry points; the row kernels
 * are each ISA's (cp_tpl_pool.h, compiled in cp_isa_<name>.c).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cp_internal.h"

/* Elements of the vertical-pass buffer one tile aims for (32 KiB of float32). */
#define CP_POOL_SPAN_ELEMS 8192

void cp_pool_plan(cp_pool_geom *g, int64_t itemsize)
{
    int64_t tile = 1;
    const int64_t ew = (g->kw - 1) * g->dw + 1; /* a window's extent */
    /* With stride > pool size the vertical pass would also cover the columns
     * between windows; one pixel per tile avoids that. */
    if (g->sw <= ew && CP_POOL_SPAN_ELEMS / g->c > ew)
        tile = (CP_POOL_SPAN_ELEMS / g->c - ew) / g->sw + 1;
    if (tile > g->ow)
        tile = g->ow;
    g->tile = tile;
    g->stream = g->n * g->oh * g->ow * g->c * itemsize >= cp_stream_threshold;
    /* Lanes past the whole pixels a vector holds, and past the two vectors a
     * step loads, are never used (the permutations read only an index's low
     * bits, and those lanes are not stored), so the strides are clamped:
     * with sw >= 32 a step makes one pixel, and with dw >= 32 the pass is
     * not taken. */
    const int64_t cap = 2 * CP_POOL_PACK_LANES;
    const int64_t sw = g->sw < cap ? g->sw : cap, dw = g->dw < cap ? g->dw : cap;
    const int64_t c = g->c < cap ? g->c : cap;
    for (int64_t k = 0; k < CP_POOL_PACK_KW; k++)
        for (int64_t l = 0; l < CP_POOL_PACK_LANES; l++) {
            g->pack_ix32[k][l] = (int32_t)((l / c * sw + k * dw) * c + l % c);
            if (l < CP_POOL_PACK_LANES / 2)
                g->pack_ix64[k][l] = g->pack_ix32[k][l];
        }
}

/* Bytes of v, u and the staging row, span * C elements each, for the widest
 * tile (span = (tile - 1) * sw + KW); -1 when that passes int64, as a huge
 * pool width can make it (the pool width is an argument, not an array). */
int64_t cp_pool_scratch_bytes(const cp_pool_geom *g, int64_t itemsize)
{
    const int64_t span_max = (INT64_MAX - CP_ALIGN) / (3 * itemsize) / g->c; /* room to round */
    if (g->kw > span_max / g->dw || g->tile - 1 > (span_max - (g->kw - 1) * g->dw - 1) / g->sw)
        return -1;
    return 3 * ((g->tile - 1) * g->sw + (g->kw - 1) * g->dw + 1) * g->c * itemsize;
}

void cp_maxpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch)
{
    cp_active->maxpool_f32(g, x, y, row, scratch);
}

void cp_maxpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch)
{
    cp_active->maxpool_f64(g, x, y, row, scratch);
}

void cp_avgpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch)
{
    cp_active->avgpool_f32(g, x, y, row, scratch);
}

void cp_avgpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch)
{
    cp_active->avgpool_f64(g, x, y, row, scratch);
}

void cp_maxpool2d_direct_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t *idx,
                                 int64_t row)
{
    cp_active->maxpool_direct_f32(g, x, y, idx, row);
}

void cp_maxpool2d_direct_row_f64(const cp_pool_geom *g, const double *x, double *y,
                                 int64_t *idx, int64_t row)
{
    cp_active->maxpool_direct_f64(g, x, y, idx, row);
}
