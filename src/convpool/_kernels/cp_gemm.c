/*
 * GEMM micro-kernels for convolution (the contract is in cp_internal.h).
 *
 * Register tile: 6 output pixels x 16 float32 (or 8 float64) output channels,
 * i.e. 12 vector accumulators of 8 floats (4 doubles); per reduction step: 2
 * loads of the packed weights, 6 broadcasts of A, 12 FMAs (the shape of BLIS's
 * haswell 6x16 kernel, which leaves 3 of the 16 ymm registers for operands).
 *
 * A is read where it lies: nseg segments, each a strided matrix
 * A_s[i, k] = seg[s][i * lda + k]; for a convolution row a segment is one
 * kernel row of taps read straight from the input (no im2col copy), or the
 * im2col tile of border pixels gathered into scratch.
 *
 * Rows i >= mr of a partial tile re-read row mr - 1 (never past the data) and
 * are not stored; columns j >= nr multiply the zero padding of the packed
 * panel and are not stored.  So a partial tile does, for the values it keeps,
 * exactly the arithmetic of a full one.
 */
#include <string.h>

#include "cp_internal.h"

#if CP_BUILD_AVX2
#include <immintrin.h>
#endif

/* Offset of row i of a tile that starts at row i0 and keeps mr rows. */
#define ROW_OFF(i0, i, mr, lda) (((i0) + ((i) < (mr) ? (i) : (mr) - 1)) * (lda))

#define STORE_TAIL(T, tile, c, ldc, mr, nr)                                                 \
    do {                                                                                    \
        for (int64_t i_ = 0; i_ < (mr); i_++)                                               \
            memcpy((c) + i_ * (ldc), (tile)[i_], (size_t)(nr) * sizeof(T));                 \
    } while (0)

/* ---------------------------------------------------------------- baseline */
/* Plain C for any target; the compiler vectorises the j loops.  Multiply and
 * add round separately here (-ffp-contract=off). */

#define DEFINE_GEMM_BASELINE(T, SUFFIX, NR)                                                  \
    void cp_gemm_6x##NR##_##SUFFIX##__baseline(                                              \
        int64_t m, int64_t nseg, const T *const *seg, int64_t lda, int64_t kseg, const T *b, \
        T *c, int64_t ldc, int64_t nr, const T *bias, int flags)                             \
    {                                                                                        \
        for (int64_t i0 = 0; i0 < m; i0 += CP_MR) {                                          \
            const int64_t mr = m - i0 < CP_MR ? m - i0 : CP_MR;                              \
            T acc[CP_MR][NR];                                                                \
            memset(acc, 0, sizeof(acc));                                                     \
            const T *bk = b;                                                                 \
            for (int64_t s = 0; s < nseg; s++) {                                             \
                const T *rows[CP_MR];                                                        \
                for (int i = 0; i < CP_MR; i++)                                              \
                    rows[i] = seg[s] + ROW_OFF(i0, i, mr, lda);                              \
                for (int64_t k = 0; k < kseg; k++, bk += (NR))                               \
                    for (int i = 0; i < CP_MR; i++) {                                        \
                        const T ai = rows[i][k];                                             \
                        for (int j = 0; j < (NR); j++)                                       \
                            acc[i][j] = acc[i][j] + ai * bk[j];                              \
                    }                                                                        \
            }                                                                                \
            if (bias != NULL)                                                                \
                for (int i = 0; i < CP_MR; i++)                                              \
                    for (int j = 0; j < nr; j++)                                             \
                        acc[i][j] = acc[i][j] + bias[j];                                     \
            if (flags & CP_STORE_RELU)                                                       \
                for (int i = 0; i < CP_MR; i++)                                              \
                    for (int j = 0; j < (NR); j++)                                           \
                        acc[i][j] = acc[i][j] < 0 ? (T)0 : acc[i][j];                        \
            STORE_TAIL(T, acc, c + i0 * ldc, ldc, mr, nr);                                   \
        }                                                                                    \
    }

DEFINE_GEMM_BASELINE(float, f32, 16)
DEFINE_GEMM_BASELINE(double, f64, 8)

/* ------------------------------------------------------------- AVX2 + FMA */
#if CP_BUILD_AVX2

/* One register tile: acc{i}{0,1} += A[i, k] * B[k, 0:2W] over every segment.
 * V: vector type, W: lanes, BC: broadcast, LD: aligned load, FMA. */
#define TILE_BODY(T, V, W, BC, LD, FMA)                                                      \
    const T *bk = b;                                                                         \
    for (int64_t s = 0; s < nseg; s++) {                                                     \
        const T *a0 = seg[s] + ROW_OFF(i0, 0, mr, lda);                                      \
        const T *a1 = seg[s] + ROW_OFF(i0, 1, mr, lda);                                      \
        const T *a2 = seg[s] + ROW_OFF(i0, 2, mr, lda);                                      \
        const T *a3 = seg[s] + ROW_OFF(i0, 3, mr, lda);                                      \
        const T *a4 = seg[s] + ROW_OFF(i0, 4, mr, lda);                                      \
        const T *a5 = seg[s] + ROW_OFF(i0, 5, mr, lda);                                      \
        _Pragma("GCC unroll 4") for (int64_t k = 0; k < kseg; k++, bk += 2 * (W)) {          \
            const V b0 = LD(bk), b1 = LD(bk + (W));                                          \
            V av;                                                                            \
            av = BC(a0 + k), c00 = FMA(av, b0, c00), c01 = FMA(av, b1, c01);                 \
            av = BC(a1 + k), c10 = FMA(av, b0, c10), c11 = FMA(av, b1, c11);                 \
            av = BC(a2 + k), c20 = FMA(av, b0, c20), c21 = FMA(av, b1, c21);                 \
            av = BC(a3 + k), c30 = FMA(av, b0, c30), c31 = FMA(av, b1, c31);                 \
            av = BC(a4 + k), c40 = FMA(av, b0, c40), c41 = FMA(av, b1, c41);                 \
            av = BC(a5 + k), c50 = FMA(av, b0, c50), c51 = FMA(av, b1, c51);                 \
        }                                                                                    \
    }

#define TILE_STORE(T, V, W, ADD, MAX, ZERO, LOADU, STOREU, STORE, STREAM)                  \
    if (bias != NULL) {                                                                      \
        T bpad[2 * (W)] __attribute__((aligned(32)));                                        \
        memset(bpad, 0, sizeof(bpad));                                                       \
        memcpy(bpad, bias, (size_t)nr * sizeof(T));                                          \
        const V bb0 = LOADU(bpad), bb1 = LOADU(bpad + (W));                                  \
        c00 = ADD(c00, bb0), c01 = ADD(c01, bb1), c10 = ADD(c10, bb0), c11 = ADD(c11, bb1);  \
        c20 = ADD(c20, bb0), c21 = ADD(c21, bb1), c30 = ADD(c30, bb0), c31 = ADD(c31, bb1);  \
        c40 = ADD(c40, bb0), c41 = ADD(c41, bb1), c50 = ADD(c50, bb0), c51 = ADD(c51, bb1);  \
    }                                                                                        \
    if (flags & CP_STORE_RELU) { /* max(0, v): 0 > v ? 0 : v keeps a NaN v */              \
        const V z = ZERO();                                                                  \
        c00 = MAX(z, c00), c01 = MAX(z, c01), c10 = MAX(z, c10), c11 = MAX(z, c11);          \
        c20 = MAX(z, c20), c21 = MAX(z, c21), c30 = MAX(z, c30), c31 = MAX(z, c31);          \
        c40 = MAX(z, c40), c41 = MAX(z, c41), c50 = MAX(z, c50), c51 = MAX(z, c51);          \
    }                                                                                        \
    T *ct = c + i0 * ldc;                                                                    \
    if (mr == CP_MR && nr == 2 * (W) && (flags & CP_STORE_STREAM)) {                                            \
        STREAM(ct + 0 * ldc, c00), STREAM(ct + 0 * ldc + (W), c01);                          \
        STREAM(ct + 1 * ldc, c10), STREAM(ct + 1 * ldc + (W), c11);                          \
        STREAM(ct + 2 * ldc, c20), STREAM(ct + 2 * ldc + (W), c21);                          \
        STREAM(ct + 3 * ldc, c30), STREAM(ct + 3 * ldc + (W), c31);                          \
        STREAM(ct + 4 * ldc, c40), STREAM(ct + 4 * ldc + (W), c41);                          \
        STREAM(ct + 5 * ldc, c50), STREAM(ct + 5 * ldc + (W), c51);                          \
    } else if (mr == CP_MR && nr == 2 * (W)) {                                               \
        STOREU(ct + 0 * ldc, c00), STOREU(ct + 0 * ldc + (W), c01);                          \
        STOREU(ct + 1 * ldc, c10), STOREU(ct + 1 * ldc + (W), c11);                          \
        STOREU(ct + 2 * ldc, c20), STOREU(ct + 2 * ldc + (W), c21);                          \
        STOREU(ct + 3 * ldc, c30), STOREU(ct + 3 * ldc + (W), c31);                          \
        STOREU(ct + 4 * ldc, c40), STOREU(ct + 4 * ldc + (W), c41);                          \
        STOREU(ct + 5 * ldc, c50), STOREU(ct + 5 * ldc + (W), c51);                          \
    } else {                                                                                 \
        T tile[CP_MR][2 * (W)] __attribute__((aligned(32)));                                 \
        STORE(tile[0], c00), STORE(tile[0] + (W), c01);                                      \
        STORE(tile[1], c10), STORE(tile[1] + (W), c11);                                      \
        STORE(tile[2], c20), STORE(tile[2] + (W), c21);                                      \
        STORE(tile[3], c30), STORE(tile[3] + (W), c31);                                      \
        STORE(tile[4], c40), STORE(tile[4] + (W), c41);                                      \
        STORE(tile[5], c50), STORE(tile[5] + (W), c51);                                      \
        STORE_TAIL(T, tile, ct, ldc, mr, nr);                                                \
    }

CP_TARGET_AVX2 void cp_gemm_6x16_f32__avx2(int64_t m, int64_t nseg, const float *const *seg,
                                           int64_t lda, int64_t kseg, const float *b, float *c,
                                           int64_t ldc, int64_t nr, const float *bias,
                                           int flags)
{
    for (int64_t i0 = 0; i0 < m; i0 += CP_MR) {
        const int64_t mr = m - i0 < CP_MR ? m - i0 : CP_MR;
        __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
        __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
        __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
        __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
        __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
        __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
        TILE_BODY(float, __m256, 8, _mm256_broadcast_ss, _mm256_load_ps, _mm256_fmadd_ps)
        TILE_STORE(float, __m256, 8, _mm256_add_ps, _mm256_max_ps, _mm256_setzero_ps,
                   _mm256_load_ps, _mm256_storeu_ps, _mm256_store_ps, _mm256_stream_ps)
    }
    if (flags & CP_STORE_STREAM)
        _mm_sfence();
}

CP_TARGET_AVX2 void cp_gemm_6x8_f64__avx2(int64_t m, int64_t nseg, const double *const *seg,
                                          int64_t lda, int64_t kseg, const double *b, double *c,
                                          int64_t ldc, int64_t nr, const double *bias,
                                          int flags)
{
    for (int64_t i0 = 0; i0 < m; i0 += CP_MR) {
        const int64_t mr = m - i0 < CP_MR ? m - i0 : CP_MR;
        __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
        __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
        __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
        __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
        __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
        __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
        TILE_BODY(double, __m256d, 4, _mm256_broadcast_sd, _mm256_load_pd, _mm256_fmadd_pd)
        TILE_STORE(double, __m256d, 4, _mm256_add_pd, _mm256_max_pd, _mm256_setzero_pd,
                   _mm256_load_pd, _mm256_storeu_pd, _mm256_store_pd, _mm256_stream_pd)
    }
    if (flags & CP_STORE_STREAM)
        _mm_sfence();
}

#endif /* CP_BUILD_AVX2 */
