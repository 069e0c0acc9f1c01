/*
 * Template: the portable kernels for one dtype, plain C for any target (the
 * compiler vectorises the inner loops).  Multiply and add round separately
 * here (-ffp-contract=off), so this variant's conv results differ from the
 * SIMD variants' in the last bits; pooling is exact in every variant.
 * Include from cp_isa_baseline.c with CP_T, CP_SFX and CP_ISA; defines
 * cp_gemm_tiles_<sfx>__baseline and the static kernels of the config.
 */
#define CP_SIMD 0
#define CP_BASE_MR 6
#define CP_BASE_NR (64 / (int)sizeof(CP_T)) /* one cache line of channels */

static void CP_ISA_FN(CP_CAT(cp_gemm_wide, CP_SFX))(int64_t m, int64_t nseg,
                                                    const CP_T *const *seg, int64_t lda,
                                                    int64_t kseg, const CP_T *b, CP_T *c,
                                                    int64_t ldc, int64_t nr, const CP_T *bias,
                                                    int flags)
{
    CP_ASSERT(m >= 0 && nseg >= 1 && kseg >= 0 && nr >= 1 && nr <= CP_BASE_NR);
    for (int64_t i0 = 0; i0 < m; i0 += CP_BASE_MR) {
        const int64_t mr = m - i0 < CP_BASE_MR ? m - i0 : CP_BASE_MR;
        CP_T acc[CP_BASE_MR][CP_BASE_NR];
        memset(acc, 0, sizeof(acc));
        const CP_T *bk = b;
        for (int64_t s = 0; s < nseg; s++) {
            const CP_T *a = seg[s] + i0 * lda;
            for (int64_t k = 0; k < kseg; k++, bk += CP_BASE_NR)
                for (int64_t i = 0; i < mr; i++) {
                    const CP_T ai = a[i * lda + k];
                    for (int j = 0; j < CP_BASE_NR; j++)
                        acc[i][j] = acc[i][j] + ai * bk[j];
                }
        }
        for (int64_t i = 0; i < mr; i++) {
            CP_T *ci = c + (i0 + i) * ldc;
            for (int64_t j = 0; j < nr; j++) {
                const CP_T sum = (flags & CP_STORE_ACCUM) ? ci[j] + acc[i][j] : acc[i][j];
                CP_T v = bias != NULL ? sum + bias[j] : sum;
                ci[j] = (flags & CP_STORE_RELU) && v < 0 ? (CP_T)0 : v;
            }
        }
    }
}

static const CP_CAT(CP_CAT(cp_gemm, CP_SFX), tile)
    CP_ISA_FN(CP_CAT(cp_gemm_tiles, CP_SFX))[CP_GEMM_KINDS] = {
        [CP_GEMM_WIDE] = {CP_ISA_FN(CP_CAT(cp_gemm_wide, CP_SFX)), CP_BASE_MR, CP_BASE_NR},
        [CP_GEMM_NARROW] = {NULL, 0, 0},
};

/* Depthwise: blocks of channels accumulated in a small array. */
#include "cp_tpl_dw_taps.h"
#define CP_DW_CHUNK 64
static void CP_ISA_FN(CP_CAT(cp_dwconv2d_nhwc, CP_SFX))(const cp_conv_geom *g, const CP_T *x,
                                                        const CP_T *w, const CP_T *bias,
                                                        CP_T *y, int64_t row,
                                                        const CP_T *zeros)
{
    const int64_t C = g->c, taps = g->kh * g->kw;
    const int64_t n = row / g->oh, oh = row % g->oh;
    const CP_T *xp[CP_MAX_SEG];
    CP_T acc[CP_DW_CHUNK];
    CP_ASSERT(taps <= CP_MAX_SEG && g->groups == C && g->oc == C);
    for (int64_t ow = 0; ow < g->ow; ow++) {
        CP_T *const out = y + (row * g->ow + ow) * C;
        CP_DW_TAPS(g, x, n, oh, ow, zeros, xp);
        for (int64_t c0 = 0; c0 < C; c0 += CP_DW_CHUNK) {
            const int64_t cn = C - c0 < CP_DW_CHUNK ? C - c0 : CP_DW_CHUNK;
            for (int64_t c = 0; c < cn; c++)
                acc[c] = 0;
            for (int64_t t = 0; t < taps; t++) {
                const CP_T *xt = xp[t] + c0, *wt = w + t * C + c0;
                for (int64_t c = 0; c < cn; c++)
                    acc[c] = acc[c] + xt[c] * wt[c];
            }
            for (int64_t c = 0; c < cn; c++) {
                const CP_T v = bias != NULL ? acc[c] + bias[c0 + c] : acc[c];
                out[c0 + c] = g->relu && v < 0 ? (CP_T)0 : v;
            }
        }
    }
}
#undef CP_DW_CHUNK
#undef CP_DW_TAPS

/* The strided transpose (cp_transpose_*_fn), one element at a time. */
static void CP_ISA_FN(CP_CAT(cp_transpose, CP_SFX))(const CP_T *src, int64_t rows,
                                                    int64_t cols, int64_t ss, CP_T *dst,
                                                    int64_t ds)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * ds + i] = src[i * ss + j];
}

#include "cp_tpl_winograd.h"
#include "cp_tpl_stream.h"
#define CP_POOL_MAX 1
#include "cp_tpl_pool.h"
#undef CP_POOL_MAX
#define CP_POOL_MAX 0
#include "cp_tpl_pool.h"
#undef CP_POOL_MAX
#include "cp_tpl_pooldirect.h"

#undef CP_BASE_MR
#undef CP_BASE_NR
#undef CP_SIMD
