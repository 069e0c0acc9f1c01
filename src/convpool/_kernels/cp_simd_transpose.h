/*
 * Square block transposes on 256-bit vectors (AVX), for the SIMD variants'
 * vocabulary (cp_simd_avx2.h and cp_simd_avx512.h include this; both
 * targets have AVX2).  Pure data movement: the bits are the scalar loop's.
 *
 *   cp_transpose8_f32(src, ss, dst, ds)   dst[j * ds + i] = src[i * ss + j], i, j < 8
 *   cp_transpose4_f64(src, ss, dst, ds)   the same for a 4x4 block of doubles
 *
 * (strides in elements; unaligned rows.)  The AVX-512 variant uses these
 * 256-bit blocks too, one implementation for both; a 16x16 zmm transpose was
 * not tried: the one caller (the Winograd weight gradient's chunk
 * transposition, cp_tpl_winograd.h) did not show as a cost in a Zen 3
 * profile once in registers, and the 8x8 blocks made no measurable change.
 */
#ifndef CP_SIMD_TRANSPOSE_H
#define CP_SIMD_TRANSPOSE_H

static inline void cp_transpose8_f32(const float *src, int64_t ss, float *dst, int64_t ds)
{
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + i * ss);
    /* pairs of rows interleaved: t[2k], t[2k+1] hold rows 2k, 2k+1 by element pairs */
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    /* 4x4 blocks transposed within each 128-bit half */
    for (int k = 0; k < 2; k++) {
        const __m256 a = t[4 * k], b = t[4 * k + 1], c = t[4 * k + 2], d = t[4 * k + 3];
        r[4 * k] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * k + 1] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * k + 2] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * k + 3] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* the halves: column j of the block from rows 0-3 (low) and rows 4-7 (high) */
    for (int j = 0; j < 4; j++) {
        _mm256_storeu_ps(dst + j * ds, _mm256_permute2f128_ps(r[j], r[4 + j], 0x20));
        _mm256_storeu_ps(dst + (j + 4) * ds, _mm256_permute2f128_ps(r[j], r[4 + j], 0x31));
    }
}

static inline void cp_transpose4_f64(const double *src, int64_t ss, double *dst, int64_t ds)
{
    const __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + ss);
    const __m256d r2 = _mm256_loadu_pd(src + 2 * ss), r3 = _mm256_loadu_pd(src + 3 * ss);
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + ds, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * ds, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * ds, _mm256_permute2f128_pd(t1, t3, 0x31));
}

#endif
