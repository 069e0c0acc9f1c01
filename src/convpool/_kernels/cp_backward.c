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
 *     partials are added in chunk order.  The bias gradient likewise.
 *   max_pool2d: the gradient goes to the first maximum of each window in
 *     row-major order (a NaN replaces the running maximum, as in the
 *     forward's op and PyTorch), summed over overlapping windows in (oh, ow)
 *     order.  avg_pool2d: each window adds grad_out / divisor to its real
 *     cells.  One unit = a band of input rows that no other unit's windows
 *     reach (stride >= pool height), else one input row.
 */
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

static int64_t round_down_mr(int64_t v)
{
    v = v / CP_MR * CP_MR;
    return v < CP_MR ? CP_MR : v;
}

void cp_convbwd_plan(cp_convbwd_geom *b, int64_t itemsize)
{
    cp_conv_geom *g = &b->f;
    const int64_t nr = itemsize == 4 ? CP_NR_F32 : CP_NR_F64;
    const int64_t pixels = g->n * g->oh * g->ow;
    cp_conv_plan(g, itemsize);
    b->kwcg = g->kw * g->cg;
    b->dx_panels = (b->kwcg + nr - 1) / nr;
    b->dx_tile = round_down_mr(CP_BWD_TILE_BYTES / (b->kwcg * itemsize));
    /* The weight gradient's tile: its patches in panels (tile x K) and
     * grad_out transposed (OCg x tile). */
    b->wt_tile = round_down_mr(CP_BWD_WT_BYTES / ((g->k + nr + g->ocg) * itemsize));
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

int64_t cp_convbwd_dx_packed_elems(const cp_convbwd_geom *b, int64_t nr)
{
    return b->f.kh * b->f.groups * b->dx_panels * b->f.ocg * nr;
}

int64_t cp_convbwd_dx_scratch_elems(const cp_convbwd_geom *b)
{
    return b->dx_tile * b->kwcg;
}

/* Elements rounded up to whole cache lines, so every part of the scratch is
 * CP_ALIGN-aligned (the micro-kernel loads packed panels aligned). */
static int64_t lines(int64_t elems, int64_t itemsize)
{
    const int64_t per = CP_ALIGN / itemsize;
    return (elems + per - 1) / per * per;
}

int64_t cp_convbwd_dw_scratch_elems(const cp_convbwd_geom *b, int64_t nr)
{
    const cp_conv_geom *g = &b->f;
    const int64_t is = nr == CP_NR_F32 ? 4 : 8;
    const int64_t kpanels = (g->k + nr - 1) / nr;
    /* one patch, the tile's patches in K panels, grad_out transposed, a product */
    return kpanels * nr + kpanels * b->wt_tile * nr + lines(g->ocg * b->wt_tile, is) +
           g->ocg * nr;
}

int64_t cp_convbwd_partial_elems(const cp_convbwd_geom *b)
{
    return b->f.k * b->f.oc + b->f.oc;
}

/* Bdx[((kh * groups + grp) * dx_panels + p) * OCg + oc][j] = W[kh, kw, c, grp * OCg + oc]
 * with (kw, c) = p * NR + j (zero beyond KW * Cg): W[kh]^T per group, in panels. */
#define DEFINE_BWD(T, SUFFIX, NR, GEMM)                                                      \
    void cp_convbwd_pack_dx_##SUFFIX(const cp_convbwd_geom *b, const T *kernel, T *packed)   \
    {                                                                                        \
        const cp_conv_geom *g = &b->f;                                                       \
        for (int64_t kh = 0; kh < g->kh; kh++)                                               \
            for (int64_t grp = 0; grp < g->groups; grp++)                                    \
                for (int64_t p = 0; p < b->dx_panels; p++)                                   \
                    for (int64_t oc = 0; oc < g->ocg; oc++) {                                \
                        T *dst = packed +                                                    \
                                 (((kh * g->groups + grp) * b->dx_panels + p) * g->ocg + oc) \
                                     * (NR);                                                 \
                        for (int64_t j = 0; j < (NR); j++) {                                 \
                            const int64_t col = p * (NR) + j;                                \
                            dst[j] = col < b->kwcg                                           \
                                         ? kernel[(kh * b->kwcg + col) * g->oc +             \
                                                  grp * g->ocg + oc]                         \
                                         : (T)0;                                             \
                        }                                                                    \
                    }                                                                        \
    }                                                                                        \
                                                                                             \
    void cp_conv2d_bwd_data_row_##SUFFIX(const cp_convbwd_geom *b, const T *gy,              \
                                         const T *packed, T *gx, int64_t row, T *dcol)       \
    {                                                                                        \
        const cp_conv_geom *g = &b->f;                                                       \
        const int64_t n = row / g->h, ih = row % g->h;                                       \
        T *const gx_row = gx + row * g->w * g->c;                                            \
        memset(gx_row, 0, (size_t)(g->w * g->c) * sizeof(T));                               \
        for (int64_t grp = 0; grp < g->groups; grp++)                                        \
            for (int64_t kh = 0; kh < g->kh; kh++) {                                         \
                const int64_t t = ih + g->pt - kh * g->dh;                                   \
                if (t < 0 || t % g->sh != 0 || t / g->sh >= g->oh)                           \
                    continue;                                                                \
                const int64_t oh = t / g->sh;                                                \
                for (int64_t ow0 = 0; ow0 < g->ow; ow0 += b->dx_tile) {                      \
                    const int64_t m = g->ow - ow0 < b->dx_tile ? g->ow - ow0 : b->dx_tile;   \
                    const T *seg[1] = {gy + ((n * g->oh + oh) * g->ow + ow0) * g->oc +       \
                                       grp * g->ocg};                                        \
                    for (int64_t p = 0; p < b->dx_panels; p++) {                             \
                        const int64_t nr =                                                   \
                            b->kwcg - p * (NR) < (NR) ? b->kwcg - p * (NR) : (NR);           \
                        GEMM(m, 1, seg, g->oc, g->ocg,                                       \
                             packed + ((kh * g->groups + grp) * b->dx_panels + p) * g->ocg * \
                                          (NR),                                              \
                             dcol + p * (NR), b->kwcg, nr, NULL, 0);                         \
                    }                                                                        \
                    /* col2im of this tile into the row, ow then kw ascending */            \
                    for (int64_t i = 0; i < m; i++) {                                        \
                        const int64_t iw0 = (ow0 + i) * g->sw - g->pl;                       \
                        for (int64_t kw = 0; kw < g->kw; kw++) {                             \
                            const int64_t iw = iw0 + kw * g->dw;                             \
                            if (iw < 0 || iw >= g->w)                                        \
                                continue;                                                    \
                            T *CP_RESTRICT dst = gx_row + iw * g->c + grp * g->cg;           \
                            const T *CP_RESTRICT src = dcol + i * b->kwcg + kw * g->cg;      \
                            for (int64_t c = 0; c < g->cg; c++)                              \
                                dst[c] = dst[c] + src[c];                                    \
                        }                                                                    \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
    }                                                                                        \
                                                                                             \
    void cp_conv2d_bwd_weight_chunk_##SUFFIX(const cp_convbwd_geom *b, const T *gy,          \
                                             const T *x, T *partial, int64_t chunk,          \
                                             T *scratch)                                     \
    {                                                                                        \
        const cp_conv_geom *g = &b->f;                                                       \
        const int64_t pixels = g->n * g->oh * g->ow, K = g->k;                               \
        const int64_t kpanels = (K + (NR) - 1) / (NR);                                       \
        const int64_t begin = chunk * b->chunk;                                              \
        const int64_t end = begin + b->chunk < pixels ? begin + b->chunk : pixels;           \
        T *const patch = scratch;                                  /* kpanels x NR */        \
        T *const bpack = patch + kpanels * (NR);                   /* kpanels x tile x NR */ \
        T *const gt = bpack + kpanels * b->wt_tile * (NR);         /* OCg x tile */          \
        T *const prod = gt + lines(g->ocg * b->wt_tile, sizeof(T)); /* OCg x NR */           \
        T *const bias_part = partial + K * g->oc;                                            \
        memset(partial, 0, (size_t)(K * g->oc + g->oc) * sizeof(T));                         \
        memset(patch, 0, (size_t)(kpanels * (NR)) * sizeof(T)); /* the tail stays zero */    \
        for (int64_t p0 = begin; p0 < end; p0 += b->wt_tile) {                               \
            const int64_t cnt = end - p0 < b->wt_tile ? end - p0 : b->wt_tile;               \
            for (int64_t grp = 0; grp < g->groups; grp++) {                                  \
                /* dW_grp^T (OCg x K) += grad_out_tile^T @ patches: A = grad_out^T */       \
                /* (OCg rows over the tile's pixels), B = the patches in panels.   */       \
                for (int64_t i = 0; i < cnt; i++) {                                          \
                    /* one patch (zero padded to whole panels), then its panels */          \
                    cp_gather_patches(g, (const char *)x, sizeof(T), p0 + i, 1, grp,         \
                                      (char *)patch);                                        \
                    for (int64_t pk = 0; pk < kpanels; pk++)                                 \
                        memcpy(bpack + (pk * cnt + i) * (NR), patch + pk * (NR),             \
                               (NR) * sizeof(T));                                            \
                }                                                                            \
                for (int64_t i = 0; i < cnt; i++) {                                          \
                    const T *src = gy + (p0 + i) * g->oc + grp * g->ocg;                     \
                    for (int64_t oc = 0; oc < g->ocg; oc++)                                  \
                        gt[oc * cnt + i] = src[oc];                                          \
                }                                                                            \
                const T *seg[1] = {gt};                                                      \
                for (int64_t pk = 0; pk < kpanels; pk++) {                                   \
                    const int64_t nr = K - pk * (NR) < (NR) ? K - pk * (NR) : (NR);          \
                    GEMM(g->ocg, 1, seg, cnt, cnt, bpack + pk * cnt * (NR), prod, (NR), nr,  \
                         NULL, 0);                                                           \
                    for (int64_t oc = 0; oc < g->ocg; oc++) {                                \
                        T *CP_RESTRICT dst = partial + (grp * g->ocg + oc) * K + pk * (NR);  \
                        const T *CP_RESTRICT src = prod + oc * (NR);                         \
                        for (int64_t j = 0; j < nr; j++)                                     \
                            dst[j] = dst[j] + src[j];                                        \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            for (int64_t i = 0; i < cnt; i++)                                                \
                for (int64_t oc = 0; oc < g->oc; oc++)                                       \
                    bias_part[oc] = bias_part[oc] + gy[(p0 + i) * g->oc + oc];               \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* gk[k, :] (and, for k == 0, gb) = the chunk partials summed in chunk order; */     \
    /* a chunk's partial holds dW transposed, [OC][K], then the bias.           */     \
    void cp_conv2d_bwd_weight_reduce_##SUFFIX(const cp_convbwd_geom *b, const T *partials,   \
                                              T *gk, T *gb, int64_t k)                       \
    {                                                                                        \
        const int64_t oc_n = b->f.oc, K = b->f.k, stride = cp_convbwd_partial_elems(b);      \
        if (gk != NULL) {                                                                    \
            T *CP_RESTRICT dst = gk + k * oc_n;                                              \
            for (int64_t oc = 0; oc < oc_n; oc++)                                            \
                dst[oc] = partials[oc * K + k];                                              \
            for (int64_t ch = 1; ch < b->chunks; ch++) {                                     \
                const T *CP_RESTRICT src = partials + ch * stride + k;                       \
                for (int64_t oc = 0; oc < oc_n; oc++)                                        \
                    dst[oc] = dst[oc] + src[oc * K];                                         \
            }                                                                                \
        }                                                                                    \
        if (gb != NULL && k == 0) {                                                          \
            const int64_t off = K * oc_n;                                                    \
            memcpy(gb, partials + off, (size_t)oc_n * sizeof(T));                            \
            for (int64_t ch = 1; ch < b->chunks; ch++)                                       \
                for (int64_t oc = 0; oc < oc_n; oc++)                                        \
                    gb[oc] = gb[oc] + partials[ch * stride + off + oc];                      \
        }                                                                                    \
    }

DEFINE_BWD(float, f32, CP_NR_F32, cp_active.gemm_f32)
DEFINE_BWD(double, f64, CP_NR_F64, cp_active.gemm_f64)

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

#define DEFINE_POOL_BWD(T, SUFFIX, RUN)                                                      \
    void cp_maxpool2d_bwd_unit_##SUFFIX(const cp_pool_geom *g, const T *x, const T *gy,      \
                                        T *gx, int64_t unit, void *scratch)                  \
    {                                                                                        \
        const int64_t C = g->c, rs = g->w * C;                                               \
        int64_t n, lo, hi, oh_lo, oh_hi;                                                     \
        int64_t *CP_RESTRICT const at = (int64_t *)scratch; /* 8-byte aligned first */       \
        T *CP_RESTRICT const m = (T *)(at + C);                                              \
        pool_unit_rows(g, unit, &n, &lo, &hi, &oh_lo, &oh_hi);                               \
        const T *const xn = x + n * g->h * rs;                                               \
        T *const gxn = gx + n * g->h * rs;                                                   \
        /* A vector run over the interior windows, where the ISA has one: they */          \
        /* tile the input (stride = pool size), C <= 4, and 4-lane loads from */           \
        /* them stay inside the row (of x) and the gradient row.              */           \
        int64_t o0 = 0, o1 = 0;                                                              \
        const int64_t ih0_band = oh_lo * g->sh - g->pt;                                      \
        if (RUN != NULL && g->sh == g->kh && g->sw == g->kw && C <= 4 && oh_hi == oh_lo + 1 &&  \
            ih0_band >= 0 && ih0_band + g->kh <= g->h) {                                     \
            const int64_t extra = (4 + C - 1) / C - 1; /* pixels a 4-lane load reads on */   \
            o0 = (g->pl + g->sw - 1) / g->sw;                                                \
            o1 = (g->w - 1 - extra + g->pl - g->kw + 1) / g->sw + 1; /* last col + extra < W */ \
            if (g->w - 1 - extra + g->pl - g->kw + 1 < 0)                                    \
                o1 = 0;                                                                      \
            if (o1 > g->ow - extra)                                                          \
                o1 = g->ow - extra;                                                          \
            if (o1 < o0)                                                                     \
                o1 = o0;                                                                     \
        }                                                                                    \
        for (int64_t r = lo; r < hi; r++) { /* zero all but what the run writes */          \
            T *row = gxn + r * rs;                                                           \
            if (o1 > o0 && r >= ih0_band && r < ih0_band + g->kh) {                          \
                const int64_t cs = (o0 * g->sw - g->pl) * C, ce = (o1 * g->sw - g->pl) * C;  \
                memset(row, 0, (size_t)cs * sizeof(T));                                      \
                memset(row + ce, 0, (size_t)(rs - ce) * sizeof(T));                          \
            } else {                                                                         \
                memset(row, 0, (size_t)rs * sizeof(T));                                      \
            }                                                                                \
        }                                                                                    \
        if (o1 > o0)                                                                         \
            RUN(g, xn + ih0_band * rs, gy + (n * g->oh + oh_lo) * g->ow * C,                 \
                gxn + ih0_band * rs, o0, o1);                                                \
        for (int64_t oh = oh_lo; oh < oh_hi; oh++) {                                         \
            const int64_t ih0 = oh * g->sh - g->pt;                                          \
            const int64_t r0 = ih0 < 0 ? 0 : ih0;                                            \
            const int64_t r1 = ih0 + g->kh < g->h ? ih0 + g->kh : g->h;                      \
            const T *grad = gy + (n * g->oh + oh) * g->ow * C;                               \
            for (int64_t ow = 0; ow < g->ow; ow++, grad += C) {                              \
                if (ow >= o0 && ow < o1)                                                     \
                    continue; /* done by the run */                                         \
                const int64_t iw0 = ow * g->sw - g->pl;                                      \
                const int64_t c0 = iw0 < 0 ? 0 : iw0;                                        \
                const int64_t c1 = iw0 + g->kw < g->w ? iw0 + g->kw : g->w;                  \
                /* The first maximum in row-major order, a NaN replacing it     */         \
                /* (branch-free: the data decides, not the branch predictor);   */         \
                /* `at` is the winner's offset in the image.                     */        \
                const int64_t first = r0 * rs + c0 * C;                                      \
                if (C < 8) { /* per channel, the running maximum in registers */            \
                    for (int64_t c = 0; c < C; c++) {                                        \
                        T mc = xn[first + c];                                                \
                        int64_t ac = first + c;                                              \
                        for (int64_t r = r0; r < r1; r++)                                    \
                            for (int64_t s = (r == r0 ? c0 + 1 : c0); s < c1; s++) {         \
                                const int64_t off = r * rs + s * C + c;                      \
                                const T v = xn[off];                                         \
                                const int upd = (v > mc) | (v != v);                         \
                                mc = upd ? v : mc;                                           \
                                ac = upd ? off : ac;                                         \
                            }                                                                \
                        at[c] = ac;                                                          \
                    }                                                                        \
                } else { /* vectorised over the channels */                                 \
                    for (int64_t c = 0; c < C; c++) {                                        \
                        m[c] = xn[first + c];                                                \
                        at[c] = first + c;                                                   \
                    }                                                                        \
                    for (int64_t r = r0; r < r1; r++)                                        \
                        for (int64_t s = (r == r0 ? c0 + 1 : c0); s < c1; s++) {             \
                            const T *CP_RESTRICT v = xn + r * rs + s * C;                    \
                            const int64_t off = r * rs + s * C;                              \
                            for (int64_t c = 0; c < C; c++) {                                \
                                const int upd = (v[c] > m[c]) | (v[c] != v[c]);              \
                                m[c] = upd ? v[c] : m[c];                                    \
                                at[c] = upd ? off + c : at[c];                               \
                            }                                                                \
                        }                                                                    \
                }                                                                            \
                if (g->sh >= g->kh) { /* band: every window lies in this unit */           \
                    for (int64_t c = 0; c < C; c++)                                          \
                        gxn[at[c]] = gxn[at[c]] + grad[c];                                   \
                } else { /* one input row: only the winners in it */                        \
                    for (int64_t c = 0; c < C; c++)                                          \
                        if (at[c] >= lo * rs && at[c] < hi * rs)                             \
                            gxn[at[c]] = gxn[at[c]] + grad[c];                               \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }                                                                                             \
    void cp_avgpool2d_bwd_unit_##SUFFIX(const cp_pool_geom *g, const T *gy, T *gx,           \
                                        int64_t unit, void *scratch)                         \
    {                                                                                        \
        const int64_t C = g->c, rs = g->w * C;                                               \
        int64_t n, lo, hi, oh_lo, oh_hi;                                                     \
        T *const share = (T *)scratch; /* grad_out / divisor of one output row */            \
        pool_unit_rows(g, unit, &n, &lo, &hi, &oh_lo, &oh_hi);                               \
        if (hi > lo)                                                                         \
            memset(gx + (n * g->h + lo) * rs, 0, (size_t)((hi - lo) * rs) * sizeof(T));      \
        for (int64_t oh = oh_lo; oh < oh_hi; oh++) {                                         \
            const int64_t ih0 = oh * g->sh - g->pt;                                          \
            const int64_t r0 = ih0 < 0 ? 0 : ih0;                                            \
            const int64_t r1 = ih0 + g->kh < g->h ? ih0 + g->kh : g->h;                      \
            for (int64_t ow = 0; ow < g->ow; ow++) {                                         \
                const int64_t iw0 = ow * g->sw - g->pl;                                      \
                const int64_t c0 = iw0 < 0 ? 0 : iw0;                                        \
                const int64_t c1 = iw0 + g->kw < g->w ? iw0 + g->kw : g->w;                  \
                /* in double: KH * KW may pass int64 (huge windows of padding) */       \
                const T divisor = (T)(g->count_include_pad ? (double)g->kh * (double)g->kw   \
                                                           : (double)((r1 - r0) * (c1 - c0))); \
                const T *grad = gy + ((n * g->oh + oh) * g->ow + ow) * C;                    \
                for (int64_t c = 0; c < C; c++)                                              \
                    share[ow * C + c] = grad[c] / divisor;                                   \
            }                                                                                \
            const int64_t a = r0 > lo ? r0 : lo, z = r1 < hi ? r1 : hi;                      \
            for (int64_t r = a; r < z; r++) {                                                \
                T *const gx_row = gx + (n * g->h + r) * rs;                                  \
                for (int64_t ow = 0; ow < g->ow; ow++) {                                     \
                    const int64_t iw0 = ow * g->sw - g->pl;                                  \
                    const int64_t c0 = iw0 < 0 ? 0 : iw0;                                    \
                    const int64_t c1 = iw0 + g->kw < g->w ? iw0 + g->kw : g->w;              \
                    for (int64_t s = c0; s < c1; s++) {                                      \
                        T *CP_RESTRICT dst = gx_row + s * C;                                 \
                        const T *CP_RESTRICT src = share + ow * C;                           \
                        for (int64_t c = 0; c < C; c++)                                      \
                            dst[c] = dst[c] + src[c];                                        \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

DEFINE_POOL_BWD(float, f32, cp_active.maxpool_bwd_run_f32)
DEFINE_POOL_BWD(double, f64, cp_active.maxpool_bwd_run_f64)

#if CP_BUILD_AVX2
#include <immintrin.h>

/* The vector run (see cp_maxbwd_run_f32_fn): one window per iteration, its C
 * channels in the lanes of a 4-lane vector; the running maximum and the
 * winner's cell number (as a float) follow the scalar rule
 * (v > m || v != v), then every cell is stored: grad_out at the winner, 0
 * elsewhere.  A 4-lane store spills past a C < 4 pixel into cells written
 * after it; stores that would spill past the run are done exactly. */
#define DEFINE_MAXBWD_RUN(T, SUFFIX, V, LOADU, STOREU, CMP, OR, BLENDV, SET1, ZERO)            \
    CP_TARGET_AVX2 void cp_maxpool2d_bwd_run_##SUFFIX##__avx2(                                 \
        const cp_pool_geom *g, const T *xw, const T *grad, T *gw, int64_t o0, int64_t o1)      \
    {                                                                                          \
        const int64_t C = g->c, rs = g->w * C;                                                 \
        const int64_t end = (o1 * g->sw - g->pl) * C; /* the run's end within a row */        \
        T tmp[4];                                                                              \
        for (int64_t o = o0; o < o1; o++) {                                                    \
            const int64_t base = (o * g->sw - g->pl) * C;                                      \
            V m = LOADU(xw + base), idx = ZERO();                                              \
            int64_t k = 0;                                                                     \
            for (int64_t r = 0; r < g->kh; r++)                                                \
                for (int64_t s = 0; s < g->kw; s++, k++) {                                     \
                    if (k == 0)                                                                \
                        continue;                                                              \
                    const V v = LOADU(xw + r * rs + base + s * C);                             \
                    const V upd = OR(CMP(v, m, _CMP_GT_OQ), CMP(v, v, _CMP_UNORD_Q));          \
                    m = BLENDV(m, v, upd);                                                     \
                    idx = BLENDV(idx, SET1((T)k), upd);                                        \
                }                                                                              \
            const V gv = LOADU(grad + o * C);                                                  \
            k = 0;                                                                             \
            for (int64_t r = 0; r < g->kh; r++)                                                \
                for (int64_t s = 0; s < g->kw; s++, k++) {                                     \
                    const V out = BLENDV(ZERO(), gv, CMP(idx, SET1((T)k), _CMP_EQ_OQ));        \
                    const int64_t at = base + s * C;                                           \
                    if (at + 4 <= end) {                                                       \
                        STOREU(gw + r * rs + at, out);                                         \
                    } else {                                                                   \
                        STOREU(tmp, out);                                                      \
                        memcpy(gw + r * rs + at, tmp, (size_t)C * sizeof(T));                  \
                    }                                                                          \
                }                                                                              \
        }                                                                                      \
    }
DEFINE_MAXBWD_RUN(float, f32, __m128, _mm_loadu_ps, _mm_storeu_ps, _mm_cmp_ps, _mm_or_ps,
                  _mm_blendv_ps, _mm_set1_ps, _mm_setzero_ps)
DEFINE_MAXBWD_RUN(double, f64, __m256d, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_cmp_pd,
                  _mm256_or_pd, _mm256_blendv_pd, _mm256_set1_pd, _mm256_setzero_pd)
#endif
