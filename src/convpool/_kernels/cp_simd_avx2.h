/*
 * The vector vocabulary of the AVX2 + FMA variant, for CP_T = float or double
 * (CP_F64 0 or 1).  Included by cp_isa_avx2.c before each dtype's templates.
 *
 * The vocabulary every SIMD template uses (cp_simd_avx512.h defines the same):
 *   CPV, CPV_W              vector type and its lanes
 *   cpv_zero(), cpv_set1(s), cpv_bcast(p)       0, s, *p in every lane
 *   cpv_load(p) / cpv_loadu(p)                  aligned / unaligned load
 *   cpv_store(p, v) / cpv_storeu(p, v) / cpv_stream(p, v)  (stream: non-temporal,
 *                                               p aligned to CPV_W elements)
 *   cpv_loadu_n(p, n), cpv_storeu_n(p, v, n)    the first n lanes (0 <= n <= W;
 *                                               the others load as 0)
 *   cpv_fma(a, b, c) = a * b + c, rounded once; cpv_add(a, b), cpv_sub(a, b), cpv_mul(a, b)
 *   cpv_max(a, b)     = a > b ? a : b (b when either is NaN: x86's max)
 *   cpv_max_nan(a, b) = (b > a || b != b) ? b : a, the pools' NaN-keeping max
 *   CPV_MASK, cpv_upd(v, m) (lanes where v > m || v != v), cpv_eq(a, b), cpv_gt(a, b),
 *   cpv_blend(a, b, k) (k ? b : a): the max-pool gradient's winner search
 *   cpv_div(a, b)     = a / b, rounded as the scalar division
 *   CPVI, cpv_index(p), cpv_perm2(a, i, b)  a lane permutation of two vectors:
 *                     i = cpv_index(p) from CPV_W indices p[q] < 2 * CPV_W (int32
 *                     for float, int64 for double), then lane q of
 *                     cpv_perm2(a, i, b) is p[q] < CPV_W ? a[p[q]] : b[p[q] - CPV_W]
 *   cps_fma(a, b, c)  the scalar fused multiply-add
 *   CPV_MASKED        1 if n-lane loads and stores are native (masked) and
 *                     cheap, so templates use them for tails
 *   CPV_NREG          the vector registers (16, or 32 with AVX-512)
 *   cpv_reg(v)        keeps v in a register: the uses after it read the register
 *                     instead of each folding its own load from memory (GCC
 *                     re-loads a value used by several FMAs otherwise)
 *   cpv_sfence()      orders non-temporal stores
 *   CPT_W, cpt_transpose(src, ss, dst, ds)  a CPT_W x CPT_W block transposed,
 *                     dst[j * ds + i] = src[i * ss + j] (cp_simd_transpose.h)
 * and a 4-lane vocabulary for the max-pool gradient of small-C images:
 *   CPQ, CPQ_MASK, cpq_loadu, cpq_storeu, cpq_storeu_n, cpq_zero, cpq_set1,
 *   cpq_upd(v, m) (mask of v > m || v != v), cpq_eq(a, b), cpq_gt(a, b), cpq_blend(a, b, k)
 *   (k ? b : a), CPQ_MASKED.
 */
#include <string.h>

#include "cp_simd_reset.h"
#include "cp_simd_transpose.h"

#define CPV_MASKED 0
#define CPQ_MASKED 0
#define CPV_NREG 16
#define cpv_reg(v) __asm__("" : "+x"(v))
#define cpv_sfence() _mm_sfence()

#ifndef CP_SIMD_AVX2_HELPERS
#define CP_SIMD_AVX2_HELPERS
/* n-lane loads and stores through a stack buffer: AVX2's vmaskmov stores are
 * slow on several CPUs, and the templates use these for tails only. */
static inline __m256 cp_avx2_loadu_n_f32(const float *p, int64_t n)
{
    float t[8] __attribute__((aligned(32))) = {0};
    memcpy(t, p, (size_t)n * sizeof(float));
    return _mm256_load_ps(t);
}
static inline void cp_avx2_storeu_n_f32(float *p, __m256 v, int64_t n)
{
    float t[8] __attribute__((aligned(32)));
    _mm256_store_ps(t, v);
    memcpy(p, t, (size_t)n * sizeof(float));
}
static inline __m256d cp_avx2_loadu_n_f64(const double *p, int64_t n)
{
    double t[4] __attribute__((aligned(32))) = {0};
    memcpy(t, p, (size_t)n * sizeof(double));
    return _mm256_load_pd(t);
}
static inline void cp_avx2_storeu_n_f64(double *p, __m256d v, int64_t n)
{
    double t[4] __attribute__((aligned(32)));
    _mm256_store_pd(t, v);
    memcpy(p, t, (size_t)n * sizeof(double));
}
/* (b > a || b != b) ? b : a in 3 instructions: vmaxps(b, a) is b > a ? b : a
 * (a when either is NaN), then a NaN b is blended in. */
static inline __m256 cp_avx2_max_nan_f32(__m256 a, __m256 b)
{
    return _mm256_blendv_ps(_mm256_max_ps(b, a), b, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
}
static inline __m256d cp_avx2_max_nan_f64(__m256d a, __m256d b)
{
    return _mm256_blendv_pd(_mm256_max_pd(b, a), b, _mm256_cmp_pd(b, b, _CMP_UNORD_Q));
}
/* Lane q of the result is (i[q] & 8 ? b : a)[i[q] & 7], float lanes: a
 * lane-crossing permute of each source and a blend on bit 3 of the index. */
static inline __m256 cp_avx2_perm2_f32(__m256 a, __m256i i, __m256 b)
{
    const __m256 from_b = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(a, i), _mm256_permutevar8x32_ps(b, i),
                            from_b);
}
/* The double lanes' index p[q] < 8 as float lanes 2 p[q] and 2 p[q] + 1. */
static inline __m256i cp_avx2_index_f64(const int64_t *p)
{
    const __m256i q = _mm256_loadu_si256((const __m256i *)p);
    const __m256i lo = _mm256_slli_epi64(q, 1); /* 2 p[q] in the low half */
    return _mm256_or_si256(lo, _mm256_slli_epi64(_mm256_add_epi64(lo, _mm256_set1_epi64x(1)),
                                                 32));
}
static inline void cp_avx2_storeq_n_f32(float *p, __m128 v, int64_t n)
{
    float t[4];
    _mm_storeu_ps(t, v);
    memcpy(p, t, (size_t)n * sizeof(float));
}
static inline void cp_avx2_storeq_n_f64(double *p, __m256d v, int64_t n)
{
    double t[4];
    _mm256_storeu_pd(t, v);
    memcpy(p, t, (size_t)n * sizeof(double));
}
#endif

#if !CP_F64
#define CPV __m256
#define CPV_W 8
#define cpv_zero() _mm256_setzero_ps()
#define cpv_set1(s) _mm256_set1_ps(s)
#define cpv_bcast(p) _mm256_broadcast_ss(p)
#define cpv_load(p) _mm256_load_ps(p)
#define cpv_loadu(p) _mm256_loadu_ps(p)
#define cpv_store(p, v) _mm256_store_ps(p, v)
#define cpv_storeu(p, v) _mm256_storeu_ps(p, v)
#define cpv_stream(p, v) _mm256_stream_ps(p, v)
#define cpv_loadu_n(p, n) cp_avx2_loadu_n_f32(p, n)
#define cpv_storeu_n(p, v, n) cp_avx2_storeu_n_f32(p, v, n)
#define cpv_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define cpv_add(a, b) _mm256_add_ps(a, b)
#define cpv_sub(a, b) _mm256_sub_ps(a, b)
#define cpv_mul(a, b) _mm256_mul_ps(a, b)
#define cpv_max(a, b) _mm256_max_ps(a, b)
#define cpv_max_nan(a, b) cp_avx2_max_nan_f32(a, b)
#define cpv_div(a, b) _mm256_div_ps(a, b)
#define CPVI __m256i
#define cpv_index(p) _mm256_loadu_si256((const __m256i *)(p))
#define cpv_perm2(a, i, b) cp_avx2_perm2_f32(a, i, b)
#define CPV_MASK __m256
#define cpv_upd(v, m) _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q))
#define cpv_eq(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define cpv_gt(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define cpv_blend(a, b, k) _mm256_blendv_ps(a, b, k)
#define cps_fma(a, b, c) __builtin_fmaf(a, b, c)
#define CPT_W 8
#define cpt_transpose(src, ss, dst, ds) cp_transpose8_f32(src, ss, dst, ds)
#define CPQ __m128
#define CPQ_MASK __m128
#define cpq_loadu(p) _mm_loadu_ps(p)
#define cpq_storeu(p, v) _mm_storeu_ps(p, v)
#define cpq_storeu_n(p, v, n) cp_avx2_storeq_n_f32(p, v, n)
#define cpq_zero() _mm_setzero_ps()
#define cpq_set1(s) _mm_set1_ps(s)
#define cpq_upd(v, m) _mm_or_ps(_mm_cmp_ps(v, m, _CMP_GT_OQ), _mm_cmp_ps(v, v, _CMP_UNORD_Q))
#define cpq_eq(a, b) _mm_cmp_ps(a, b, _CMP_EQ_OQ)
#define cpq_gt(a, b) _mm_cmp_ps(a, b, _CMP_GT_OQ)
#define cpq_blend(a, b, k) _mm_blendv_ps(a, b, k)
#else
#define CPV __m256d
#define CPV_W 4
#define cpv_zero() _mm256_setzero_pd()
#define cpv_set1(s) _mm256_set1_pd(s)
#define cpv_bcast(p) _mm256_broadcast_sd(p)
#define cpv_load(p) _mm256_load_pd(p)
#define cpv_loadu(p) _mm256_loadu_pd(p)
#define cpv_store(p, v) _mm256_store_pd(p, v)
#define cpv_storeu(p, v) _mm256_storeu_pd(p, v)
#define cpv_stream(p, v) _mm256_stream_pd(p, v)
#define cpv_loadu_n(p, n) cp_avx2_loadu_n_f64(p, n)
#define cpv_storeu_n(p, v, n) cp_avx2_storeu_n_f64(p, v, n)
#define cpv_fma(a, b, c) _mm256_fmadd_pd(a, b, c)
#define cpv_add(a, b) _mm256_add_pd(a, b)
#define cpv_sub(a, b) _mm256_sub_pd(a, b)
#define cpv_mul(a, b) _mm256_mul_pd(a, b)
#define cpv_max(a, b) _mm256_max_pd(a, b)
#define cpv_max_nan(a, b) cp_avx2_max_nan_f64(a, b)
#define cpv_div(a, b) _mm256_div_pd(a, b)
#define CPVI __m256i
#define cpv_index(p) cp_avx2_index_f64(p)
#define cpv_perm2(a, i, b)                                                                   \
    _mm256_castps_pd(cp_avx2_perm2_f32(_mm256_castpd_ps(a), i, _mm256_castpd_ps(b)))
#define CPV_MASK __m256d
#define cpv_upd(v, m) _mm256_or_pd(_mm256_cmp_pd(v, m, _CMP_GT_OQ), _mm256_cmp_pd(v, v, _CMP_UNORD_Q))
#define cpv_eq(a, b) _mm256_cmp_pd(a, b, _CMP_EQ_OQ)
#define cpv_gt(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define cpv_blend(a, b, k) _mm256_blendv_pd(a, b, k)
#define cps_fma(a, b, c) __builtin_fma(a, b, c)
#define CPT_W 4
#define cpt_transpose(src, ss, dst, ds) cp_transpose4_f64(src, ss, dst, ds)
#define CPQ __m256d
#define CPQ_MASK __m256d
#define cpq_loadu(p) _mm256_loadu_pd(p)
#define cpq_storeu(p, v) _mm256_storeu_pd(p, v)
#define cpq_storeu_n(p, v, n) cp_avx2_storeq_n_f64(p, v, n)
#define cpq_zero() _mm256_setzero_pd()
#define cpq_set1(s) _mm256_set1_pd(s)
#define cpq_upd(v, m)                                                                        \
    _mm256_or_pd(_mm256_cmp_pd(v, m, _CMP_GT_OQ), _mm256_cmp_pd(v, v, _CMP_UNORD_Q))
#define cpq_eq(a, b) _mm256_cmp_pd(a, b, _CMP_EQ_OQ)
#define cpq_gt(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define cpq_blend(a, b, k) _mm256_blendv_pd(a, b, k)
#endif
