/*
 * The vector vocabulary (see cp_simd_avx2.h) of the AVX-512 variant
 * (F, VL, BW, DQ), for CP_T = float or double (CP_F64 0 or 1): 512-bit
 * vectors, and masked loads and stores for every tail.  Included by
 * cp_isa_avx512.c before each dtype's templates.
 */
#include "cp_simd_reset.h"
#include "cp_simd_transpose.h"

#define CPV_MASKED 1
#define CPQ_MASKED 1
#define CPV_NREG 32
#if CP_ISA_EMULATED /* SIMDe's vectors are not register operands */
#define cpv_reg(v) ((void)0)
#else
#define cpv_reg(v) __asm__("" : "+v"(v))
#endif
#define cpv_sfence() _mm_sfence()

#ifndef CP_SIMD_AVX512_HELPERS
#define CP_SIMD_AVX512_HELPERS
/* The mask of the first n lanes, 0 <= n <= 16. */
static inline __mmask16 cp_avx512_lanes16(int64_t n) { return (__mmask16)((1u << n) - 1u); }
static inline __mmask8 cp_avx512_lanes8(int64_t n) { return (__mmask8)((1u << n) - 1u); }
/* (b > a || b != b) ? b : a: vmaxps(b, a), then a NaN b merged in. */
static inline __m512 cp_avx512_max_nan_f32(__m512 a, __m512 b)
{
    return _mm512_mask_mov_ps(_mm512_max_ps(b, a), _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), b);
}
static inline __m512d cp_avx512_max_nan_f64(__m512d a, __m512d b)
{
    return _mm512_mask_mov_pd(_mm512_max_pd(b, a), _mm512_cmp_pd_mask(b, b, _CMP_UNORD_Q), b);
}
#endif

#if !CP_F64
#define CPV __m512
#define CPV_W 16
#define cpv_zero() _mm512_setzero_ps()
#define cpv_set1(s) _mm512_set1_ps(s)
#define cpv_bcast(p) _mm512_set1_ps(*(p))
#define cpv_load(p) _mm512_load_ps(p)
#define cpv_loadu(p) _mm512_loadu_ps(p)
#define cpv_store(p, v) _mm512_store_ps(p, v)
#define cpv_storeu(p, v) _mm512_storeu_ps(p, v)
#define cpv_stream(p, v) _mm512_stream_ps(p, v)
#define cpv_loadu_n(p, n) _mm512_maskz_loadu_ps(cp_avx512_lanes16(n), p)
#define cpv_storeu_n(p, v, n) _mm512_mask_storeu_ps(p, cp_avx512_lanes16(n), v)
#define cpv_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define cpv_add(a, b) _mm512_add_ps(a, b)
#define cpv_sub(a, b) _mm512_sub_ps(a, b)
#define cpv_mul(a, b) _mm512_mul_ps(a, b)
#define cpv_max(a, b) _mm512_max_ps(a, b)
#define cpv_max_nan(a, b) cp_avx512_max_nan_f32(a, b)
#define cpv_div(a, b) _mm512_div_ps(a, b)
#define CPVI __m512i
#define cpv_index(p) _mm512_loadu_si512(p)
#define cpv_perm2(a, i, b) _mm512_permutex2var_ps(a, i, b)
#define CPV_MASK __mmask16
#define cpv_upd(v, m)                                                                        \
    ((__mmask16)(_mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)))
#define cpv_eq(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define cpv_gt(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define cpv_blend(a, b, k) _mm512_mask_blend_ps(k, a, b)
#define cps_fma(a, b, c) __builtin_fmaf(a, b, c)
#define CPT_W 8
#define cpt_transpose(src, ss, dst, ds) cp_transpose8_f32(src, ss, dst, ds)
#define CPQ __m128
#define CPQ_MASK __mmask8
#define cpq_loadu(p) _mm_loadu_ps(p)
#define cpq_storeu(p, v) _mm_storeu_ps(p, v)
#define cpq_storeu_n(p, v, n) _mm_mask_storeu_ps(p, cp_avx512_lanes8(n), v)
#define cpq_zero() _mm_setzero_ps()
#define cpq_set1(s) _mm_set1_ps(s)
#define cpq_upd(v, m)                                                                        \
    ((__mmask8)(_mm_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm_cmp_ps_mask(v, v, _CMP_UNORD_Q)))
#define cpq_eq(a, b) _mm_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define cpq_gt(a, b) _mm_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define cpq_blend(a, b, k) _mm_mask_blend_ps(k, a, b)
#else
#define CPV __m512d
#define CPV_W 8
#define cpv_zero() _mm512_setzero_pd()
#define cpv_set1(s) _mm512_set1_pd(s)
#define cpv_bcast(p) _mm512_set1_pd(*(p))
#define cpv_load(p) _mm512_load_pd(p)
#define cpv_loadu(p) _mm512_loadu_pd(p)
#define cpv_store(p, v) _mm512_store_pd(p, v)
#define cpv_storeu(p, v) _mm512_storeu_pd(p, v)
#define cpv_stream(p, v) _mm512_stream_pd(p, v)
#define cpv_loadu_n(p, n) _mm512_maskz_loadu_pd(cp_avx512_lanes8(n), p)
#define cpv_storeu_n(p, v, n) _mm512_mask_storeu_pd(p, cp_avx512_lanes8(n), v)
#define cpv_fma(a, b, c) _mm512_fmadd_pd(a, b, c)
#define cpv_add(a, b) _mm512_add_pd(a, b)
#define cpv_sub(a, b) _mm512_sub_pd(a, b)
#define cpv_mul(a, b) _mm512_mul_pd(a, b)
#define cpv_max(a, b) _mm512_max_pd(a, b)
#define cpv_max_nan(a, b) cp_avx512_max_nan_f64(a, b)
#define cpv_div(a, b) _mm512_div_pd(a, b)
#define CPVI __m512i
#define cpv_index(p) _mm512_loadu_si512(p)
#define cpv_perm2(a, i, b) _mm512_permutex2var_pd(a, i, b)
#define CPV_MASK __mmask8
#define cpv_upd(v, m)                                                                        \
    ((__mmask8)(_mm512_cmp_pd_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q)))
#define cpv_eq(a, b) _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ)
#define cpv_gt(a, b) _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ)
#define cpv_blend(a, b, k) _mm512_mask_blend_pd(k, a, b)
#define cps_fma(a, b, c) __builtin_fma(a, b, c)
#define CPT_W 4
#define cpt_transpose(src, ss, dst, ds) cp_transpose4_f64(src, ss, dst, ds)
#define CPQ __m256d
#define CPQ_MASK __mmask8
#define cpq_loadu(p) _mm256_loadu_pd(p)
#define cpq_storeu(p, v) _mm256_storeu_pd(p, v)
#define cpq_storeu_n(p, v, n) _mm256_mask_storeu_pd(p, cp_avx512_lanes8(n), v)
#define cpq_zero() _mm256_setzero_pd()
#define cpq_set1(s) _mm256_set1_pd(s)
#define cpq_upd(v, m)                                                                        \
    ((__mmask8)(_mm256_cmp_pd_mask(v, m, _CMP_GT_OQ) | _mm256_cmp_pd_mask(v, v, _CMP_UNORD_Q)))
#define cpq_eq(a, b) _mm256_cmp_pd_mask(a, b, _CMP_EQ_OQ)
#define cpq_gt(a, b) _mm256_cmp_pd_mask(a, b, _CMP_GT_OQ)
#define cpq_blend(a, b, k) _mm256_mask_blend_pd(k, a, b)
#endif
