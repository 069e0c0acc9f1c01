/*
 * Convolution, NHWC: im2col + GEMM without materialising the im2col matrix.
 *
 * The output is a matrix Y[P, OC] with P = N * OH * OW pixels (NHWC order), and
 * for group grp:
 *     Y[p, grp*OCg : (grp+1)*OCg] = A_grp[p, :] @ W_grp        (+ bias)
 * where A_grp[p, k], k = (kh * KW + kw) * Cg + c, is the patch of pixel p
 * (zeros where it falls in the padding) and W_grp is the (K, OCg) slice of the
 * kernel, (KH, KW, Cg, OC) in Keras order, packed once per call into panels of
 * NR channels.
 *
 * cp_conv_plan picks one of four ways to feed A to the micro-kernel; they
 * differ only in where A is read from, never in the arithmetic (see the
 * micro-kernel contract in cp_internal.h), so they give identical bits:
 *
 *   ROWS       one unit = one output row (n, oh).  Its interior pixels (every
 *              tap inside the input) read A in place: a kernel row of taps of
 *              pixel ow is KW*C contiguous floats of an input row (dilation 1,
 *              one group), so A_kh[ow, :] = x + ((n*H + ih)*W + ow*sw - pl)*C
 *              with a pixel stride of sw*C.  Border pixels and rows that touch
 *              the padding are gathered (GATHER below) into the thread's
 *              scratch.  No copy at all when stride == kernel (the seed's 5x5/5).
 *   POINTWISE  1x1, stride 1, no padding, one group: A is the input itself,
 *              (P, C); one unit = a tile of consecutive pixels.
 *   GATHER     one unit = a tile of consecutive pixels (across rows and
 *              images), gathered into scratch (tile * K elements, sized for
 *              the L2 cache, never for the input); for small output rows.
 *   DEPTHWISE  groups = C_in = C_out: a direct kernel vectorised over the
 *              channels (below); one unit = one output row.
 *
 * Every unit writes its own output pixels, once.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cp_internal.h"

/* Target size of one thread's im2col tile.  Any value gives the same bits;
 * this only trades cache residency against per-tile overhead. */
#define CP_CONV_TILE_BYTES (48 * 1024)
/* ROWS needs at least this many output columns to fill register tiles. */
#define CP_ROWS_MIN_OW (4 * CP_MR)

/* ---- depthwise ------------------------------------------------------------- */
/* out[c] = sum over taps t = (kh, kw), in that order, of x[tap t, c] * w[t, c],
 * from +0, then + bias[c]: the order (and, per ISA, the rounding) of the GEMM
 * path for the same geometry, so the two give identical bits.  Taps in the
 * padding read a row of zeros (0 * inf gives NaN, as in the reference). */

/* Input pointer of every tap of output pixel (n, oh, ow); `zeros` in the padding. */
#define DEFINE_DW_TAPS(T)                                                                   \
    static inline void dw_taps_##T(const cp_conv_geom *g, const T *x, int64_t n,           \
                                   int64_t oh, int64_t ow, const T *zeros, const T **xp)    \
    {                                                                                       \
        const int64_t ih0 = oh * g->sh - g->pt, iw0 = ow * g->sw - g->pl;                   \
        for (int64_t kh = 0; kh < g->kh; kh++) {                                            \
            const int64_t ih = ih0 + kh * g->dh;                                            \
            for (int64_t kw = 0; kw < g->kw; kw++) {                                        \
                const int64_t iw = iw0 + kw * g->dw;                                        \
                xp[kh * g->kw + kw] = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w          \
                                          ? x + ((n * g->h + ih) * g->w + iw) * g->c        \
                                          : zeros;                                          \
            }                                                                               \
        }                                                                                   \
    }
DEFINE_DW_TAPS(float)
DEFINE_DW_TAPS(double)

/* Portable variant: blocks of channels accumulated in a small array (the
 * compiler vectorises the c loops); multiply and add round separately. */
#define CP_DW_CHUNK 64
#define DEFINE_DW_BASELINE(T, SUFFIX)                                                       \
    void cp_dwconv2d_nhwc_##SUFFIX##__baseline(const cp_conv_geom *g, const T *x,           \
                                               const T *w, const T *bias, T *y,             \
                                               int64_t row, const T *zeros)                 \
    {                                                                                       \
        const int64_t C = g->c, taps = g->kh * g->kw;                                       \
        const T *xp[CP_MAX_SEG];                                                            \
        T acc[CP_DW_CHUNK];                                                                 \
        for (int64_t ow = 0; ow < g->ow; ow++) {                                            \
            T *const out = y + (row * g->ow + ow) * C;                                      \
            dw_taps_##T(g, x, row / g->oh, row % g->oh, ow, zeros, xp);                     \
            for (int64_t c0 = 0; c0 < C; c0 += CP_DW_CHUNK) {                               \
                const int64_t cn = C - c0 < CP_DW_CHUNK ? C - c0 : CP_DW_CHUNK;             \
                for (int64_t c = 0; c < cn; c++)                                            \
                    acc[c] = 0;                                                             \
                for (int64_t t = 0; t < taps; t++) {                                        \
                    const T *xt = xp[t] + c0, *wt = w + t * C + c0;                         \
                    for (int64_t c = 0; c < cn; c++)                                        \
                        acc[c] = acc[c] + xt[c] * wt[c];                                    \
                }                                                                           \
                for (int64_t c = 0; c < cn; c++) {                                          \
                    const T v = bias != NULL ? acc[c] + bias[c0 + c] : acc[c];              \
                    out[c0 + c] = g->relu && v < 0 ? (T)0 : v;                              \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }
DEFINE_DW_BASELINE(float, f32)
DEFINE_DW_BASELINE(double, f64)

#if CP_BUILD_AVX2
#include <immintrin.h>

/* AVX2 variant: each block of 4 vectors of channels keeps its accumulators in
 * registers over every tap; fused multiply-adds, as the AVX2 micro-kernel. */
#define DEFINE_DW_AVX2(T, SUFFIX, V, W, LOADU, STOREU, FMA, ADD, MAX, ZERO, SET1, SFMA)       \
    CP_TARGET_AVX2 void cp_dwconv2d_nhwc_##SUFFIX##__avx2(                                   \
        const cp_conv_geom *g, const T *x, const T *w, const T *bias, T *y, int64_t row,     \
        const T *zeros)                                                                      \
    {                                                                                        \
        const int64_t C = g->c, taps = g->kh * g->kw;                                        \
        /* ReLU as max(lo, v): lo = 0, or -inf (a no-op) without it; NaN v stays v */      \
        const V lo = g->relu ? ZERO() : SET1(-(T)INFINITY);                                  \
        const T *xp[CP_MAX_SEG];                                                             \
        for (int64_t ow = 0; ow < g->ow; ow++) {                                             \
            T *const out = y + (row * g->ow + ow) * C;                                       \
            dw_taps_##T(g, x, row / g->oh, row % g->oh, ow, zeros, xp);                      \
            int64_t c = 0;                                                                   \
            for (; c + 4 * (W) <= C; c += 4 * (W)) {                                         \
                V a0 = ZERO(), a1 = ZERO(), a2 = ZERO(), a3 = ZERO();                        \
                for (int64_t t = 0; t < taps; t++) {                                         \
                    const T *xt = xp[t] + c, *wt = w + t * C + c;                            \
                    a0 = FMA(LOADU(xt), LOADU(wt), a0);                                      \
                    a1 = FMA(LOADU(xt + (W)), LOADU(wt + (W)), a1);                          \
                    a2 = FMA(LOADU(xt + 2 * (W)), LOADU(wt + 2 * (W)), a2);                  \
                    a3 = FMA(LOADU(xt + 3 * (W)), LOADU(wt + 3 * (W)), a3);                  \
                }                                                                            \
                if (bias != NULL) {                                                          \
                    a0 = ADD(a0, LOADU(bias + c)), a1 = ADD(a1, LOADU(bias + c + (W)));      \
                    a2 = ADD(a2, LOADU(bias + c + 2 * (W)));                                 \
                    a3 = ADD(a3, LOADU(bias + c + 3 * (W)));                                 \
                }                                                                            \
                STOREU(out + c, MAX(lo, a0)), STOREU(out + c + (W), MAX(lo, a1));            \
                STOREU(out + c + 2 * (W), MAX(lo, a2)), STOREU(out + c + 3 * (W), MAX(lo, a3)); \
            }                                                                                \
            for (; c + (W) <= C; c += (W)) {                                                 \
                V a0 = ZERO();                                                               \
                for (int64_t t = 0; t < taps; t++)                                           \
                    a0 = FMA(LOADU(xp[t] + c), LOADU(w + t * C + c), a0);                    \
                if (bias != NULL)                                                            \
                    a0 = ADD(a0, LOADU(bias + c));                                           \
                STOREU(out + c, MAX(lo, a0));                                                \
            }                                                                                \
            for (; c < C; c++) {                                                             \
                T a0 = 0;                                                                    \
                for (int64_t t = 0; t < taps; t++)                                           \
                    a0 = SFMA(xp[t][c], w[t * C + c], a0);                                   \
                a0 = bias != NULL ? a0 + bias[c] : a0;                                       \
                out[c] = g->relu && a0 < 0 ? (T)0 : a0;                                      \
            }                                                                                \
        }                                                                                    \
    }

DEFINE_DW_AVX2(float, f32, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
               _mm256_add_ps, _mm256_max_ps, _mm256_setzero_ps, _mm256_set1_ps, __builtin_fmaf)
DEFINE_DW_AVX2(double, f64, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd,
               _mm256_add_pd, _mm256_max_pd, _mm256_setzero_pd, _mm256_set1_pd, __builtin_fma)
#endif

/* ---- plan ------------------------------------------------------------------ */
static inline int cp_store_flags(const cp_conv_geom *g)
{
    return (g->stream ? CP_STORE_STREAM : 0) | (g->relu ? CP_STORE_RELU : 0);
}

void cp_conv_plan(cp_conv_geom *g, int64_t itemsize)
{
    const int64_t nr = itemsize == 4 ? CP_NR_F32 : CP_NR_F64;
    const int64_t pixels = g->n * g->oh * g->ow;
    int64_t tile;
    g->cg = g->c / g->groups;
    g->ocg = g->oc / g->groups;
    g->k = g->kh * g->kw * g->cg;
    g->panels = (g->ocg + nr - 1) / nr;
    tile = CP_CONV_TILE_BYTES / (g->k * itemsize);
    tile = tile / CP_MR * CP_MR;
    if (tile < CP_MR)
        tile = CP_MR;
    if (tile > (pixels + CP_MR - 1) / CP_MR * CP_MR)
        tile = (pixels + CP_MR - 1) / CP_MR * CP_MR;
    g->tile = tile;

    /* Interior output columns: every tap inside [0, W). */
    {
        const int64_t span = (g->kw - 1) * g->dw;
        int64_t lo = (g->pl + g->sw - 1) / g->sw;
        int64_t hi = g->w - 1 + g->pl - span < 0 ? 0 : (g->w - 1 + g->pl - span) / g->sw + 1;
        if (hi > g->ow)
            hi = g->ow;
        if (lo > hi)
            lo = hi;
        g->ow_lo = lo;
        g->ow_hi = hi;
    }
    if (g->dw == 1 && g->groups == 1) {
        g->nseg = g->kh;
        g->kseg = g->kw * g->c;
    } else {
        g->nseg = g->kh * g->kw;
        g->kseg = g->cg;
    }

    if (g->groups == g->c && g->groups == g->oc && g->kh * g->kw <= CP_MAX_SEG) {
        g->strategy = CP_CONV_DEPTHWISE;
        g->units = g->n * g->oh;
    } else if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 &&
               g->pl == 0 && g->oh == g->h && g->ow == g->w && g->groups == 1) {
        g->strategy = CP_CONV_POINTWISE;
        g->units = (pixels + tile - 1) / tile;
    } else if (g->ow >= CP_ROWS_MIN_OW && g->nseg <= CP_MAX_SEG) {
        g->strategy = CP_CONV_ROWS;
        g->units = g->n * g->oh;
    } else {
        g->strategy = CP_CONV_GATHER;
        g->units = (pixels + tile - 1) / tile;
    }
    g->stream = 0;
    g->relu = 0;
}

void cp_conv_set_output(cp_conv_geom *g, const void *y, int64_t itemsize)
{
    const int64_t nr = itemsize == 4 ? CP_NR_F32 : CP_NR_F64;
    g->stream = g->strategy != CP_CONV_DEPTHWISE &&
                g->n * g->oh * g->ow * g->oc * itemsize >= cp_stream_threshold &&
                (uintptr_t)y % CP_ALIGN == 0 && g->ocg % nr == 0;
}

int64_t cp_conv_scratch_elems(const cp_conv_geom *g)
{
    if (g->strategy == CP_CONV_DEPTHWISE)
        return g->c; /* a row of zeros for taps in the padding */
    if (g->strategy == CP_CONV_POINTWISE)
        return 0;
    return g->tile * g->k;
}

int64_t cp_conv_packed_elems(const cp_conv_geom *g, int64_t nr)
{
    if (g->strategy == CP_CONV_DEPTHWISE)
        return g->k * g->oc;
    return g->groups * g->panels * g->k * nr;
}

/* packed[((grp * panels + p) * K + k) * NR + j] = kernel[k, grp * OCg + p * NR + j],
 * zero for p * NR + j >= OCg.  Depthwise keeps Keras's (KH, KW, 1, C) layout. */
#define DEFINE_PACK(T, SUFFIX, NR)                                                          \
    void cp_conv_pack_##SUFFIX(const cp_conv_geom *g, const T *kernel, T *packed)           \
    {                                                                                       \
        if (g->strategy == CP_CONV_DEPTHWISE) {                                             \
            memcpy(packed, kernel, (size_t)(g->k * g->oc) * sizeof(T));                     \
            return;                                                                         \
        }                                                                                   \
        for (int64_t grp = 0; grp < g->groups; grp++)                                       \
            for (int64_t p = 0; p < g->panels; p++)                                         \
                for (int64_t k = 0; k < g->k; k++) {                                        \
                    T *dst = packed + ((grp * g->panels + p) * g->k + k) * (NR);            \
                    for (int64_t j = 0; j < (NR); j++) {                                    \
                        const int64_t oc = p * (NR) + j;                                    \
                        dst[j] = oc < g->ocg ? kernel[k * g->oc + grp * g->ocg + oc] : (T)0; \
                    }                                                                       \
                }                                                                           \
    }

DEFINE_PACK(float, f32, CP_NR_F32)
DEFINE_PACK(double, f64, CP_NR_F64)

/* ---- gathering patches ------------------------------------------------------ */
/* The patch of output pixel (n, oh, ow) for group grp into dst[0:K], zeros for
 * taps in the padding.  Element-type agnostic (bytes). */
static void gather_patch(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t n,
                         int64_t oh, int64_t ow, int64_t grp, char *dst)
{
    const int64_t ih0 = oh * g->sh - g->pt;
    const int64_t iw0 = ow * g->sw - g->pl;
    const int64_t run = g->kw * g->cg * itemsize; /* bytes per kernel row */
    const int64_t cg_bytes = g->cg * itemsize;
    const int64_t pixel_bytes = g->c * itemsize;
    /* With dilation 1, one group and no padding in this row of taps, the kw
     * taps are one contiguous run of the input row. */
    const int whole_run = g->dw == 1 && g->groups == 1 && iw0 >= 0 && iw0 + g->kw <= g->w;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        const int64_t ih = ih0 + kh * g->dh;
        if (ih < 0 || ih >= g->h) {
            memset(dst, 0, (size_t)run);
            dst += run;
            continue;
        }
        const char *src = x + ((n * g->h + ih) * g->w) * pixel_bytes + grp * cg_bytes;
        if (whole_run) {
            memcpy(dst, src + iw0 * pixel_bytes, (size_t)run);
            dst += run;
            continue;
        }
        for (int64_t kw = 0; kw < g->kw; kw++) {
            const int64_t iw = iw0 + kw * g->dw;
            if (iw < 0 || iw >= g->w)
                memset(dst, 0, (size_t)cg_bytes);
            else
                memcpy(dst, src + iw * pixel_bytes, (size_t)cg_bytes);
            dst += cg_bytes;
        }
    }
}

/* The patches of flat output pixels [p0, p0 + count) for group grp: scratch[i * K + k]. */
void cp_gather_patches(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t p0,
                        int64_t count, int64_t grp, char *scratch)
{
    const int64_t per_image = g->oh * g->ow;
    int64_t n = p0 / per_image;
    int64_t oh = (p0 % per_image) / g->ow;
    int64_t ow = p0 % g->ow;
    for (int64_t i = 0; i < count; i++) {
        gather_patch(g, x, itemsize, n, oh, ow, grp, scratch + i * g->k * itemsize);
        if (++ow == g->ow) {
            ow = 0;
            if (++oh == g->oh) {
                oh = 0;
                n++;
            }
        }
    }
}

/* ---- the per-unit drivers ----------------------------------------------------- */
#define DEFINE_CONV_UNIT(T, SUFFIX, NR, GEMM, DEPTHWISE)                                     \
    /* Flat pixels [p0, p0 + count), all groups, through the gathered tile. */              \
    static void gathered_##SUFFIX(const cp_conv_geom *g, const T *x, const T *packed,       \
                                  const T *bias, T *y, int64_t p0, int64_t count, T *scratch) \
    {                                                                                       \
        const T *seg[1] = {scratch};                                                        \
        for (int64_t grp = 0; grp < g->groups; grp++) {                                     \
            cp_gather_patches(g, (const char *)x, sizeof(T), p0, count, grp, (char *)scratch);    \
            for (int64_t p = 0; p < g->panels; p++) {                                       \
                const int64_t oc0 = grp * g->ocg + p * (NR);                                \
                const int64_t nr = g->ocg - p * (NR) < (NR) ? g->ocg - p * (NR) : (NR);     \
                GEMM(count, 1, seg, g->k, g->k, packed + (grp * g->panels + p) * g->k * (NR), \
                     y + p0 * g->oc + oc0, g->oc, nr, bias != NULL ? bias + oc0 : NULL,     \
                     cp_store_flags(g));                                                       \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* Output pixels [a, b) of row `row`, gathered in tiles. */                             \
    static void gathered_range_##SUFFIX(const cp_conv_geom *g, const T *x, const T *packed, \
                                        const T *bias, T *y, int64_t row, int64_t a,        \
                                        int64_t b, T *scratch)                              \
    {                                                                                       \
        for (int64_t ow = a; ow < b; ow += g->tile) {                                       \
            const int64_t count = b - ow < g->tile ? b - ow : g->tile;                      \
            gathered_##SUFFIX(g, x, packed, bias, y, row * g->ow + ow, count, scratch);     \
        }                                                                                   \
    }                                                                                       \
    void cp_conv2d_nhwc_unit_##SUFFIX(const cp_conv_geom *g, const T *x, const T *packed,   \
                                      const T *bias, T *y, int64_t unit, T *scratch)        \
    {                                                                                       \
        const int64_t pixels = g->n * g->oh * g->ow;                                        \
        if (g->strategy == CP_CONV_DEPTHWISE) {                                             \
            DEPTHWISE(g, x, packed, bias, y, unit, scratch);                                \
            return;                                                                         \
        }                                                                                   \
        if (g->strategy == CP_CONV_GATHER || g->strategy == CP_CONV_POINTWISE) {            \
            const int64_t p0 = unit * g->tile;                                              \
            const int64_t count = pixels - p0 < g->tile ? pixels - p0 : g->tile;            \
            if (g->strategy == CP_CONV_GATHER) {                                            \
                gathered_##SUFFIX(g, x, packed, bias, y, p0, count, scratch);               \
                return;                                                                     \
            }                                                                               \
            const T *seg[1] = {x + p0 * g->c};                                              \
            for (int64_t p = 0; p < g->panels; p++) {                                       \
                const int64_t nr = g->oc - p * (NR) < (NR) ? g->oc - p * (NR) : (NR);       \
                GEMM(count, 1, seg, g->c, g->c, packed + p * g->k * (NR),                   \
                     y + p0 * g->oc + p * (NR), g->oc, nr,                                  \
                     bias != NULL ? bias + p * (NR) : NULL, cp_store_flags(g));                \
            }                                                                               \
            return;                                                                         \
        }                                                                                   \
        /* ROWS */                                                                          \
        const int64_t row = unit, n = row / g->oh, oh = row % g->oh;                        \
        const int64_t ih0 = oh * g->sh - g->pt;                                             \
        const int rows_inside = ih0 >= 0 && ih0 + (g->kh - 1) * g->dh < g->h;               \
        if (!rows_inside || g->ow_hi <= g->ow_lo) {                                         \
            gathered_range_##SUFFIX(g, x, packed, bias, y, row, 0, g->ow, scratch);         \
            return;                                                                         \
        }                                                                                   \
        const T *seg[CP_MAX_SEG];                                                           \
        for (int64_t grp = 0; grp < g->groups; grp++) {                                     \
            const int64_t iw0 = g->ow_lo * g->sw - g->pl;                                   \
            for (int64_t s = 0; s < g->nseg; s++) {                                         \
                const int64_t kh = g->nseg == g->kh ? s : s / g->kw;                        \
                const int64_t kw = g->nseg == g->kh ? 0 : s % g->kw;                        \
                seg[s] = x + ((n * g->h + ih0 + kh * g->dh) * g->w + iw0 + kw * g->dw) * g->c \
                         + grp * g->cg;                                                     \
            }                                                                               \
            for (int64_t p = 0; p < g->panels; p++) {                                       \
                const int64_t oc0 = grp * g->ocg + p * (NR);                                \
                const int64_t nr = g->ocg - p * (NR) < (NR) ? g->ocg - p * (NR) : (NR);     \
                GEMM(g->ow_hi - g->ow_lo, g->nseg, seg, g->sw * g->c, g->kseg,              \
                     packed + (grp * g->panels + p) * g->k * (NR),                          \
                     y + (row * g->ow + g->ow_lo) * g->oc + oc0, g->oc, nr,                 \
                     bias != NULL ? bias + oc0 : NULL, cp_store_flags(g));                     \
            }                                                                               \
        }                                                                                   \
        gathered_range_##SUFFIX(g, x, packed, bias, y, row, 0, g->ow_lo, scratch);          \
        gathered_range_##SUFFIX(g, x, packed, bias, y, row, g->ow_hi, g->ow, scratch);      \
    }

DEFINE_CONV_UNIT(float, f32, CP_NR_F32, cp_active.gemm_f32, cp_active.depthwise_f32)
DEFINE_CONV_UNIT(double, f64, CP_NR_F64, cp_active.gemm_f64, cp_active.depthwise_f64)
