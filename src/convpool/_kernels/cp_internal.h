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

#if defined(__GNUC__) || defined(__clang__)
#define CP_RESTRICT __restrict__
#define CP_INLINE static inline __attribute__((always_inline))
#else
#define CP_RESTRICT
#define CP_INLINE static inline
#endif

/*
 * GEMM micro-kernel: C[i, j] = sum_k A[i, k] * B[k, j] (+ bias[j]) for
 * i < mr <= CP_MR, j < nr <= NR, where
 *   A[i, k] = a[i * lda + k]        (rows of an im2col tile),
 *   B[k, j] = b[k * NR + j]          (one packed weight panel, zero padded to NR),
 *   C[i, j] = c[i * ldc + j].
 * Every C[i, j] is accumulated from zero over k = 0, 1, ..., K-1 in that
 * order, then the bias is added: the bits of a result do not depend on mr, nr,
 * or where the tile lies, which is what makes the output independent of the
 * thread count and of the batch split.
 */
typedef void (*cp_gemm_f32_fn)(int64_t k, const float *a, int64_t lda, const float *b,
                               float *c, int64_t ldc, int64_t mr, int64_t nr,
                               const float *bias);
typedef void (*cp_gemm_f64_fn)(int64_t k, const double *a, int64_t lda, const double *b,
                               double *c, int64_t ldc, int64_t mr, int64_t nr,
                               const double *bias);

typedef void (*cp_pool_row_f32_fn)(const cp_pool_geom *g, const float *x, float *y,
                                   int64_t row, float *scratch);
typedef void (*cp_pool_row_f64_fn)(const cp_pool_geom *g, const double *x, double *y,
                                   int64_t row, double *scratch);

typedef struct {
    cp_gemm_f32_fn gemm_f32;
    cp_gemm_f64_fn gemm_f64;
    cp_pool_row_f32_fn maxpool_f32;
    cp_pool_row_f64_fn maxpool_f64;
    cp_pool_row_f32_fn avgpool_f32;
    cp_pool_row_f64_fn avgpool_f64;
} cp_dispatch_table;

/* The table in use; set by cp_isa_select (at import, before any kernel runs). */
extern cp_dispatch_table cp_active;

/* Variants, named <op>_<layout>_<dtype>__<isa> (see STYLE.md). */
void cp_gemm_6x16_f32__baseline(int64_t, const float *, int64_t, const float *, float *,
                                int64_t, int64_t, int64_t, const float *);
void cp_gemm_6x8_f64__baseline(int64_t, const double *, int64_t, const double *, double *,
                               int64_t, int64_t, int64_t, const double *);
void cp_maxpool2d_nhwc_f32__baseline(const cp_pool_geom *, const float *, float *, int64_t,
                                     float *);
void cp_maxpool2d_nhwc_f64__baseline(const cp_pool_geom *, const double *, double *, int64_t,
                                     double *);
void cp_avgpool2d_nhwc_f32__baseline(const cp_pool_geom *, const float *, float *, int64_t,
                                     float *);
void cp_avgpool2d_nhwc_f64__baseline(const cp_pool_geom *, const double *, double *, int64_t,
                                     double *);
#if CP_BUILD_AVX2
void cp_gemm_6x16_f32__avx2(int64_t, const float *, int64_t, const float *, float *, int64_t,
                            int64_t, int64_t, const float *);
void cp_gemm_6x8_f64__avx2(int64_t, const double *, int64_t, const double *, double *,
                           int64_t, int64_t, int64_t, const double *);
void cp_maxpool2d_nhwc_f32__avx2(const cp_pool_geom *, const float *, float *, int64_t,
                                 float *);
void cp_maxpool2d_nhwc_f64__avx2(const cp_pool_geom *, const double *, double *, int64_t,
                                 double *);
void cp_avgpool2d_nhwc_f32__avx2(const cp_pool_geom *, const float *, float *, int64_t,
                                 float *);
void cp_avgpool2d_nhwc_f64__avx2(const cp_pool_geom *, const double *, double *, int64_t,
                                 double *);
#endif

#endif /* CP_INTERNAL_H */
