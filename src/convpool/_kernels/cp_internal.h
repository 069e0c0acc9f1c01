/*
 * Internal to the C kernels: the per-ISA function table that cp_dispatch.c
 * fills at import, and the target attributes used to compile SIMD variants
 * without -march flags (so one binary runs on any x86-64 CPU).
 */
#ifndef CP_INTERNAL_H
#define CP_INTERNAL_H

#include "cp_kernels.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CP_BUILD_AVX2 1
#define CP_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define CP_BUILD_AVX2 0
#endif

/* CP_CAT(name, isa) -> name__isa */
#define CP_CAT_(a, b) a##__##b
#define CP_CAT(a, b) CP_CAT_(a, b)

#if defined(__GNUC__) || defined(__clang__)
#define CP_RESTRICT __restrict__
#define CP_INLINE static inline __attribute__((always_inline))
#else
#define CP_RESTRICT
#define CP_INLINE static inline
#endif

/*
 * GEMM micro-kernel over m rows of A, one panel of NR output channels:
 *   C[i, j] = sum over s < nseg, k < kseg of A_s[i, k] * B[s * kseg + k, j]  (+ bias[j])
 * for i < m, j < nr <= NR, where
 *   A_s[i, k] = seg[s][i * lda + k]   (segment s: e.g. one kernel row of taps,
 *                                      read in place from the NHWC input),
 *   B[k, j]   = b[k * NR + j]          (a packed weight panel, zero padded to NR,
 *                                      CP_ALIGN-aligned),
 *   C[i, j]   = c[i * ldc + j].
 * Every C[i, j] is accumulated from +0 over s, then k, in increasing order, one
 * multiply-add at a time, then the bias is added: the bits of a result depend
 * only on the reduction order (kh, kw, c), never on m, nr, the segmentation or
 * where the tile lies.  That is what makes every strategy below, and any
 * thread count, give identical output.
 * flags: CP_STORE_RELU replaces each result v by (v < 0 ? 0 : v) as it is
 * stored (a NaN stays NaN); CP_STORE_STREAM allows non-temporal stores of full
 * tiles, set by the caller only when c is 32-byte aligned and ldc is a
 * multiple of the vector width.
 */
enum { CP_STORE_STREAM = 1, CP_STORE_RELU = 2 };
typedef void (*cp_gemm_f32_fn)(int64_t m, int64_t nseg, const float *const *seg, int64_t lda,
                               int64_t kseg, const float *b, float *c, int64_t ldc, int64_t nr,
                               const float *bias, int flags);
typedef void (*cp_gemm_f64_fn)(int64_t m, int64_t nseg, const double *const *seg, int64_t lda,
                               int64_t kseg, const double *b, double *c, int64_t ldc, int64_t nr,
                               const double *bias, int flags);

/* Depthwise convolution (C_in = C_out = groups) of one output row (g->relu
 * applies the ReLU as the results are stored). */
typedef void (*cp_dw_row_f32_fn)(const cp_conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y, int64_t row, const float *zeros);
typedef void (*cp_dw_row_f64_fn)(const cp_conv_geom *g, const double *x, const double *w,
                                 const double *bias, double *y, int64_t row, const double *zeros);

typedef void (*cp_pool_row_f32_fn)(const cp_pool_geom *g, const float *x, float *y,
                                   int64_t row, float *scratch);
typedef void (*cp_pool_row_f64_fn)(const cp_pool_geom *g, const double *x, double *y,
                                   int64_t row, double *scratch);

/* Max-pool gradient of windows [o0, o1) of one output row, for windows that
 * tile the input (stride = pool size), lie wholly inside it, have C <= 4
 * channels and are not the row's last (4-lane loads may read one pixel on):
 * every cell of those windows is written (grad_out at the winner, else 0).
 * xw: the window row's first input row; gw: the same in the gradient. */
typedef void (*cp_maxbwd_run_f32_fn)(const cp_pool_geom *g, const float *xw, const float *grad,
                                     float *gw, int64_t o0, int64_t o1);
typedef void (*cp_maxbwd_run_f64_fn)(const cp_pool_geom *g, const double *xw,
                                     const double *grad, double *gw, int64_t o0, int64_t o1);

typedef struct {
    cp_gemm_f32_fn gemm_f32;
    cp_gemm_f64_fn gemm_f64;
    cp_dw_row_f32_fn depthwise_f32;
    cp_dw_row_f64_fn depthwise_f64;
    cp_pool_row_f32_fn maxpool_f32;
    cp_pool_row_f64_fn maxpool_f64;
    cp_pool_row_f32_fn avgpool_f32;
    cp_pool_row_f64_fn avgpool_f64;
    cp_maxbwd_run_f32_fn maxpool_bwd_run_f32; /* NULL: the portable loop does it all */
    cp_maxbwd_run_f64_fn maxpool_bwd_run_f64;
} cp_dispatch_table;

/* im2col: the patches of flat output pixels [p0, p0 + count) for group grp,
 * scratch[i * K + k], zeros for taps in the padding (cp_conv.c). */
void cp_gather_patches(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t p0,
                       int64_t count, int64_t grp, char *scratch);

/* The table in use; set by cp_isa_select (at import, before any kernel runs). */
extern cp_dispatch_table cp_active;

/* Variants, named <op>_<layout>_<dtype>__<isa> (see STYLE.md). */
#define CP_DECLARE_VARIANTS(ISA)                                                              \
    void cp_gemm_6x16_f32__##ISA(int64_t, int64_t, const float *const *, int64_t, int64_t,   \
                                 const float *, float *, int64_t, int64_t, const float *, int); \
    void cp_gemm_6x8_f64__##ISA(int64_t, int64_t, const double *const *, int64_t, int64_t,   \
                                const double *, double *, int64_t, int64_t, const double *,   \
                                int);                                                         \
    void cp_dwconv2d_nhwc_f32__##ISA(const cp_conv_geom *, const float *, const float *,     \
                                     const float *, float *, int64_t, const float *);         \
    void cp_dwconv2d_nhwc_f64__##ISA(const cp_conv_geom *, const double *, const double *,   \
                                     const double *, double *, int64_t, const double *);      \
    void cp_maxpool2d_nhwc_f32__##ISA(const cp_pool_geom *, const float *, float *, int64_t,  \
                                      float *);                                               \
    void cp_maxpool2d_nhwc_f64__##ISA(const cp_pool_geom *, const double *, double *,         \
                                      int64_t, double *);                                     \
    void cp_avgpool2d_nhwc_f32__##ISA(const cp_pool_geom *, const float *, float *, int64_t,  \
                                      float *);                                               \
    void cp_avgpool2d_nhwc_f64__##ISA(const cp_pool_geom *, const double *, double *,         \
                                      int64_t, double *);

CP_DECLARE_VARIANTS(baseline)
#if CP_BUILD_AVX2
CP_DECLARE_VARIANTS(avx2)
void cp_maxpool2d_bwd_run_f32__avx2(const cp_pool_geom *, const float *, const float *, float *,
                                    int64_t, int64_t);
void cp_maxpool2d_bwd_run_f64__avx2(const cp_pool_geom *, const double *, const double *,
                                    double *, int64_t, int64_t);
#endif

#endif /* CP_INTERNAL_H */
