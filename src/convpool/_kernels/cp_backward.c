/*
 * Backward passes of conv2d and the pools, NHWC.
 *
 * Every gradient is written by units of work that own disjoint parts of it,
 * and every value is a sum in an order fixed by the geometry alone, so the
 * results are bitwise identical for any thread count:
 *
 *   conv2d, data gradient (col2im, tiled): one unit = one input row (n, ih).
 *     For each kernel row kh that reaches it (in order), the output row oh it
 *     comes from gives dcol = grad_out[n, oh] @ W[kh]^T, a (OW, KW*Cg) tile
 *     computed by the GEMM micro-kernel (grad_out read in place), which is
 *     then added into the input row: ow ascending, kw ascending.  The full
 *     column matrix is never built.
 *   conv2d, weight gradient: the output pixels are cut into a fixed number of
 *     chunks (set by the geometry, not the threads); a chunk's partial
 *     dW^T = grad_out^T @ patches is summed tile by tile (the GEMM micro-kernel
 *     with grad_out^T as A and the patches packed in panels as B), then the
 *     partials are added in chunk order.  The bias gradient likewise.  With
 *     one input channel and at most 32 filters (a grey first layer), and for
 *     depthwise convs, a chunk's partial is computed directly instead (cp_tpl_wgrad.h),
 *     each (tap, oc) summed over the chunk's pixels in order.
 *   max_pool2d: the gradient goes to the first maximum of each window in
 *     row-major order (a NaN replaces the running maximum, as in the
 *     forward's op and PyTorch), summed over overlapping windows in (oh, ow)
 *     order.  avg_pool2d: each window adds grad_out / divisor to its real
 *     cells.  One unit = a band of input rows that no other unit's windows
 *     reach (stride >= pool height), else one input row.
 */
#include <math.h>
#include <string.h>

#include "cp_internal.h"

/* Bytes aimed at for one thread's tiles (any value gives the same bits): the
 * data gradient's column tile, and the weight gradient's patches (twice: as
 * gathered and transposed), whose width is the GEMM's reduction length. */
#define CP_BWD_TILE_BYTES (64 * 1024)
#define CP_BWD_WT_BYTES (512 * 1024)
/* The weight gradient is reduced over at most this many chunks. */
#define CP_BWD_MAX_CHUNKS 64
/* ... of at least this many output pixels each. */
#define CP_BWD_MIN_CHUNK 2048

/* v rounded down to a multiple of mr, and at least mr. */
static int64_t round_down(int64_t v, int64_t mr)
{
    v = v / mr * mr;
    return v < mr ? mr : v;
}

/* Elements rounded up to whole cache lines, so every part of the scratch is
 * CP_ALIGN-aligned (the micro-kernel loads packed panels aligned). */
static int64_t lines(int64_t elems, int64_t itemsize)
{
    const int64_t per = CP_ALIGN / itemsize;
    return (elems + per - 1) / per * per;
}

void cp_convbwd_plan(cp_convbwd_geom *b, int64_t itemsize)
{
    cp_conv_geom *g = &b->f;
    const int64_t pixels = g->n * g->oh * g->ow;
    cp_conv_plan(g, itemsize, -1);
    b->itemsize = itemsize;
    b->dx_relu = 0;
    b->kwcg = g->kw * g->cg;
    /* data gradient: dcol = grad_out @ W[kh]^T, KW * Cg columns */
    b->dx_gemm = cp_gemm_kind(itemsize, b->kwcg);
    cp_gemm_shape(itemsize, b->dx_gemm, &b->dx_mr, &b->dx_nr);
    b->dx_panels = (b->kwcg + b->dx_nr - 1) / b->dx_nr;
    b->dx_tile = round_down(CP_BWD_TILE_BYTES / (b->kwcg * itemsize), b->dx_mr);
    /* weight gradient: dW^T = grad_out^T @ patches, K columns.  Its tile of
     * pixels is a partial sum of the reduction, so it must not depend on the
     * ISA: it is sized from the geometry alone (the patches, tile x K padded
     * to the widest panel of any ISA, and grad_out transposed, OCg x tile),
     * in multiples of 6 pixels. */
    b->dw_direct = g->groups == 1 && g->cg <= CP_WGRAD_DIRECT_MAX_CG &&
                           g->oc <= CP_WGRAD_DIRECT_MAX_OC
                       ? CP_WGRAD_FEW_CHANNELS
                   : g->groups == g->c && g->groups == g->oc ? CP_WGRAD_DEPTHWISE
                                                             : CP_WGRAD_GEMM;
    b->dw_gemm = cp_gemm_kind(itemsize, g->k);
    cp_gemm_shape(itemsize, b->dw_gemm, &b->dw_mr, &b->dw_nr);
    b->wt_tile = round_down(
        CP_BWD_WT_BYTES / ((g->k + CP_MAX_NR_BYTES / itemsize + g->ocg) * itemsize), 6);
    if (b->wt_tile > pixels)
        b->wt_tile = pixels;
    {
        int64_t chunks = (pixels + CP_BWD_MIN_CHUNK - 1) / CP_BWD_MIN_CHUNK;
        int64_t chunk;
        if (chunks > CP_BWD_MAX_CHUNKS)
            chunks = CP_BWD_MAX_CHUNKS;
        if (chunks < 1)
            chunks = 1;
        chunk = (pixels + chunks - 1) / chunks;
        chunk = (chunk + b->wt_tile - 1) / b->wt_tile * b->wt_tile;
        b->chunk = chunk;
        b->chunks = (pixels + chunk - 1) / chunk;
    }
}

int64_t cp_convbwd_dx_packed_elems(const cp_convbwd_geom *b)
{
    return b->f.kh * b->f.groups * b->dx_panels * b->f.ocg * b->dx_nr;
}

int64_t cp_convbwd_dx_scratch_elems(const cp_convbwd_geom *b)
{
    return b->dx_tile * b->kwcg;
}

int64_t cp_convbwd_dw_scratch_elems(const cp_convbwd_geom *b)
{
    const cp_conv_geom *g = &b->f;
    const int64_t nr = b->dw_nr;
    const int64_t kpanels = (g->k + nr - 1) / nr;
    /* one patch, the tile's patches in K panels, grad_out transposed, a product */
    return kpanels * nr + kpanels * b->wt_tile * nr + lines(g->ocg * b->wt_tile, b->itemsize) +
           g->ocg * nr;
}

int64_t cp_convbwd_partial_elems(const cp_convbwd_geom *b)
{
    return b->f.k * b->f.oc + b->f.oc;
}

/* ---- pooling ------------------------------------------------------------------ */
/* Units: bands of input rows when windows cannot overlap vertically. */
int64_t cp_poolbwd_units(const cp_pool_geom *g)
{
    return g->sh >= g->kh ? g->n * g->oh : g->n * g->h;
}

int64_t cp_poolbwd_scratch_bytes(const cp_pool_geom *g)
{
    /* max: running maxima (C values) and their cells; avg: a row of grad / divisor */
    const int64_t a = g->c * (int64_t)(sizeof(double) + sizeof(int64_t));
    const int64_t b = g->ow * g->c * (int64_t)sizeof(double);
    return a > b ? a : b;
}

/* Input rows [*lo, *hi) that unit `unit` owns, and the output rows that reach them. */
static void pool_unit_rows(const cp_pool_geom *g, int64_t unit, int64_t *n, int64_t *lo,
                           int64_t *hi, int64_t *oh_lo, int64_t *oh_hi)
{
    if (g->sh >= g->kh) {
        const int64_t oh = unit % g->oh;
        *n = unit / g->oh;
        *lo = oh * g->sh - g->pt;
        *hi = oh == g->oh - 1 ? g->h : *lo + g->sh;
        if (*lo < 0)
            *lo = 0;
        if (*hi > g->h)
            *hi = g->h;
        *oh_lo = oh;
        *oh_hi = oh + 1;
    } else {
        const int64_t ih = unit % g->h;
        *n = unit / g->h;
        *lo = ih;
        *hi = ih + 1;
        /* oh with oh*sh - pt <= ih < oh*sh - pt + kh */
        int64_t a = ih + g->pt - g->kh + 1;
        *oh_lo = a <= 0 ? 0 : (a + g->sh - 1) / g->sh;
        *oh_hi = (ih + g->pt) / g->sh + 1;
        if (*oh_hi > g->oh)
            *oh_hi = g->oh;
    }
}

/* ---- per dtype --------------------------------------------------------------- */
#define CP_TEMPLATE "cp_tpl_backward.h"
#include "cp_each_dtype.h"
