/*
 * Internal to the C kernels: the micro-kernel contracts, the per-ISA config
 * record, and the helpers shared by the templates.
 *
 * An ISA variant is one translation unit, cp_isa_<name>.c, compiled for that
 * target (cp_target.h) and filling one `cp_isa_config` with designated
 * initialisers; the generic drivers (cp_conv.c, cp_pool.c, cp_backward.c)
 * only ever call through `cp_active`, the config selected at import.
 * Per-dtype and per-ISA code comes from include templates (cp_tpl_*.h),
 * each included once per (ISA, dtype) with CP_T / CP_SFX set: one templating
 * idiom, and every line of a kernel is a real line for a debugger, a
 * sanitizer report or coverage.
 */
#ifndef CP_INTERNAL_H
#define CP_INTERNAL_H

#include <stdint.h>

#include "cp_isa_list.h"
#include "cp_kernels.h"

#if defined(__GNUC__) || defined(__clang__)
#define CP_RESTRICT __restrict__
#define CP_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define CP_RESTRICT
#define CP_ALWAYS_INLINE static inline
#endif

/* CP_CAT(a, b) -> a_b; CP_ISA_FN(name) -> name__<CP_ISA> (a variant's name). */
#define CP_CAT_(a, b) a##_##b
#define CP_CAT(a, b) CP_CAT_(a, b)
#define CP_ISA_FN_(name, isa) name##__##isa
#define CP_ISA_FN__(name, isa) CP_ISA_FN_(name, isa)
#define CP_ISA_FN(name) CP_ISA_FN__(name, CP_ISA)

/* The kernels' contracts, checked in CONVPOOL_DEBUG=1 builds (setup.py
 * defines CP_DEBUG there); free otherwise. */
#if defined(CP_DEBUG) && CP_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define CP_ASSERT(cond)                                                                      \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "convpool: kernel contract broken at %s:%d: %s\n", __FILE__,   \
                    __LINE__, #cond);                                                        \
            abort();                                                                         \
        }                                                                                    \
    } while (0)
#else
#define CP_ASSERT(cond) ((void)0)
#endif

/*
 * GEMM micro-kernel over m rows of A and one panel of nr <= NR output columns:
 *   C[i, j] = sum over s < nseg, k < kseg of A_s[i, k] * B[s * kseg + k, j]  (+ bias[j])
 * for i < m, j < nr, where
 *   A_s[i, k] = seg[s][i * lda + k]   (segment s: e.g. one kernel row of taps,
 *                                      read in place from the NHWC input),
 *   B[k, j]   = b[k * NR + j]          (a packed weight panel, zero padded to NR,
 *                                      aligned to the ISA's vector width),
 *   C[i, j]   = c[i * ldc + j].
 * Every C[i, j] is accumulated from +0 over s, then k, in increasing order, one
 * multiply-add at a time (fused in every SIMD variant, separately rounded in
 * the baseline), then the bias is added: the bits of a result depend only on
 * the reduction order (kh, kw, c), never on m, nr, the tile shape, the
 * segmentation or where the tile lies.  That is what makes every algorithm,
 * every SIMD variant of one rounding and any thread count give identical
 * output.
 * flags: CP_STORE_ACCUM stores C[i, j] + v instead of v (the sum above, then
 * added to what C held: col2im's order); CP_STORE_RELU replaces each result v
 * by (v < 0 ? 0 : v) as it is stored (a NaN stays NaN); CP_STORE_STREAM allows non-temporal stores of full
 * panels, set by the caller only when c is CP_ALIGN-aligned and ldc is a
 * multiple of NR.  Rows are computed in blocks (MR, then 8, 4, 2, 1) and the
 * reduction is never split, so no result depends on which block holds it.
 */
typedef void (*cp_gemm_f32_fn)(int64_t m, int64_t nseg, const float *const *seg, int64_t lda,
                               int64_t kseg, const float *b, float *c, int64_t ldc, int64_t nr,
                               const float *bias, int flags);
typedef void (*cp_gemm_f64_fn)(int64_t m, int64_t nseg, const double *const *seg, int64_t lda,
                               int64_t kseg, const double *b, double *c, int64_t ldc, int64_t nr,
                               const double *bias, int flags);

/* Depthwise convolution (C_in = C_out = groups) of one output row (g->relu
 * applies the ReLU as the results are stored); taps in the padding read
 * `zeros` (C of them). */
typedef void (*cp_dw_row_f32_fn)(const cp_conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y, int64_t row, const float *zeros);
typedef void (*cp_dw_row_f64_fn)(const cp_conv_geom *g, const double *x, const double *w,
                                 const double *bias, double *y, int64_t row, const double *zeros);

/* Winograd F(4x4, 3x3) of unit `unit`: tiles [unit * wg_block, ...) of the
 * fixed grid of 4x4 output tiles of each image (cp_tpl_winograd.h). */
typedef void (*cp_conv_unit_f32_fn)(const cp_conv_geom *g, const float *x, const float *packed,
                                    const float *bias, float *y, int64_t unit, float *scratch);
typedef void (*cp_conv_unit_f64_fn)(const cp_conv_geom *g, const double *x,
                                    const double *packed, const double *bias, double *y,
                                    int64_t unit, double *scratch);

typedef void (*cp_pool_row_f32_fn)(const cp_pool_geom *g, const float *x, float *y,
                                   int64_t row, float *scratch);
typedef void (*cp_pool_row_f64_fn)(const cp_pool_geom *g, const double *x, double *y,
                                   int64_t row, double *scratch);

/* Max pooling of one output row by visiting each window's taps (any
 * dilation); idx, if not NULL, gets the winners' flat indices. */
typedef void (*cp_pooldirect_f32_fn)(const cp_pool_geom *g, const float *x, float *y,
                                     int64_t *idx, int64_t row);
typedef void (*cp_pooldirect_f64_fn)(const cp_pool_geom *g, const double *x, double *y,
                                     int64_t *idx, int64_t row);

/* Max-pool gradient of windows [o0, o1) of one output row, for windows that
 * tile the input (stride = pool size), lie wholly inside it, have fewer than
 * 2^24 cells, and with C < 4 channels are not the row's last (4-lane loads
 * may read one pixel on): every cell of those windows is written (grad_out
 * at the winner, else 0).
 * xw: the window row's first input row; gw: the same in the gradient. */
typedef void (*cp_maxbwd_run_f32_fn)(const cp_pool_geom *g, const float *xw, const float *grad,
                                     float *gw, int64_t o0, int64_t o1);
typedef void (*cp_maxbwd_run_f64_fn)(const cp_pool_geom *g, const double *xw,
                                     const double *grad, double *gw, int64_t o0, int64_t o1);

/* The direct weight gradients over output pixels [begin, end), of a conv
 * with few channels (one group, Cg <= CP_WGRAD_DIRECT_MAX_CG, C_out <=
 * CP_WGRAD_DIRECT_MAX_OC) or of a
 * depthwise conv (groups = C_in = C_out): partial ([OC][K], dW transposed) =
 * each (tap, oc) sum over the pixels in order. */
typedef void (*cp_wgrad_f32_fn)(const cp_convbwd_geom *b, const float *gy, const float *x,
                                float *partial, int64_t begin, int64_t end);
typedef void (*cp_wgrad_f64_fn)(const cp_convbwd_geom *b, const double *gy, const double *x,
                                double *partial, int64_t begin, int64_t end);
/* Input channels (per group) up to which the weight gradient is direct; the
 * taps per pass, CP_WGRAD_TAPS, are each ISA's (one register each). */
#define CP_WGRAD_DIRECT_MAX_CG 1
/* ... and output channels (beyond these, or with 2-4 input channels, the GEMM
 * path measured as fast or faster on an AMD EPYC Zen 3: re-reading the pixels
 * once per vector of output channels costs more than its packing). */
#define CP_WGRAD_DIRECT_MAX_OC 32

/* dst[j * ds + i] = src[i * ss + j] for i < rows, j < cols (strides in
 * elements; the regions must not overlap).  Pure data movement. */
typedef void (*cp_transpose_f32_fn)(const float *src, int64_t rows, int64_t cols, int64_t ss,
                                    float *dst, int64_t ds);
typedef void (*cp_transpose_f64_fn)(const double *src, int64_t rows, int64_t cols, int64_t ss,
                                    double *dst, int64_t ds);

/* One micro-kernel: its function and register tile. */
typedef struct {
    cp_gemm_f32_fn fn;
    int64_t mr, nr;
} cp_gemm_f32_tile;
typedef struct {
    cp_gemm_f64_fn fn;
    int64_t mr, nr;
} cp_gemm_f64_tile;

/* The per-chunk transforms of the Winograd weight gradient (cp_wgw_chunk_*). */
typedef void (*cp_wgw_chunk_f32_fn)(const cp_wgw_geom *w, const float *x, const float *gy,
                                    float *vt, float *dm, float *bias_part, int64_t pass,
                                    int64_t chunk, float *scratch);
typedef void (*cp_wgw_chunk_f64_fn)(const cp_wgw_geom *w, const double *x, const double *gy,
                                    double *vt, double *dm, double *bias_part, int64_t pass,
                                    int64_t chunk, double *scratch);

/* Everything an ISA variant provides.  A NULL function falls back as noted. */
typedef struct {
    const char *name;
    int compiled;                       /* 0: this build has no such variant */
    int emulated;                       /* intrinsics emulated (tools/emulate_avx512.sh) */
    int (*supported)(void);             /* can this CPU and OS run it? */
    const cp_gemm_f32_tile *gemm_f32;   /* [CP_GEMM_KINDS]; NARROW with fn NULL: WIDE */
    const cp_gemm_f64_tile *gemm_f64;
    cp_dw_row_f32_fn depthwise_f32;
    cp_dw_row_f64_fn depthwise_f64;
    cp_conv_unit_f32_fn winograd_f32;
    cp_conv_unit_f64_fn winograd_f64;
    cp_wgw_chunk_f32_fn wgw_chunk_f32;
    cp_wgw_chunk_f64_fn wgw_chunk_f64;
    cp_pool_row_f32_fn maxpool_f32;
    cp_pool_row_f64_fn maxpool_f64;
    cp_pool_row_f32_fn avgpool_f32;
    cp_pool_row_f64_fn avgpool_f64;
    cp_pooldirect_f32_fn maxpool_direct_f32;
    cp_pooldirect_f64_fn maxpool_direct_f64;
    cp_maxbwd_run_f32_fn maxpool_bwd_run_f32; /* NULL: the portable loop does it all */
    cp_maxbwd_run_f64_fn maxpool_bwd_run_f64;
    cp_wgrad_f32_fn wgrad_direct_f32;   /* NULL: the GEMM path for every weight gradient */
    cp_wgrad_f64_fn wgrad_direct_f64;
    cp_wgrad_f32_fn wgrad_depthwise_f32; /* NULL: the GEMM path for depthwise too */
    cp_wgrad_f64_fn wgrad_depthwise_f64;
    cp_transpose_f32_fn transpose_f32;  /* every compiled variant has one */
    cp_transpose_f64_fn transpose_f64;
} cp_isa_config;

#define CP_ISA_DECLARE_(name) extern const cp_isa_config cp_isa_config__##name;
CP_ISA_LIST(CP_ISA_DECLARE_)
#undef CP_ISA_DECLARE_

/* The config in use; set by cp_isa_select (at import, before any kernel runs). */
extern const cp_isa_config *cp_active;

/* The micro-kernel tile `kind` of a config (NARROW falls back to WIDE). */
static inline const cp_gemm_f32_tile *cp_tile_f32(const cp_isa_config *cfg, int64_t kind)
{
    return cfg->gemm_f32[kind].fn != NULL ? &cfg->gemm_f32[kind] : &cfg->gemm_f32[CP_GEMM_WIDE];
}
static inline const cp_gemm_f64_tile *cp_tile_f64(const cp_isa_config *cfg, int64_t kind)
{
    return cfg->gemm_f64[kind].fn != NULL ? &cfg->gemm_f64[kind] : &cfg->gemm_f64[CP_GEMM_WIDE];
}

/* im2col: the patches of flat output pixels [p0, p0 + count) for group grp,
 * scratch[i * ld + k] for k < K (ld >= K), zeros for taps in the padding
 * (cp_conv.c). */
void cp_gather_patches(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t p0,
                       int64_t count, int64_t grp, char *scratch, int64_t ld);

#endif /* CP_INTERNAL_H */
