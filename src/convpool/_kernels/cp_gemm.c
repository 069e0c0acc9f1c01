/*
 * GEMM micro-kernels (see the contract in cp_internal.h).
 *
 * Register tile: 6 output pixels x 16 float32 (or 8 float64) output channels,
 * i.e. 12 vector accumulators of 8 floats; per k: 2 loads of the packed
 * weights, 6 broadcasts of A, 12 FMAs (BLIS's haswell 6x16 shape).
 *
 * Rows i >= mr of a partial tile read row mr - 1 again (never past the tile)
 * and are not stored; columns j >= nr multiply the zero padding of the packed
 * panel and are not stored.  So a partial tile does exactly the arithmetic of a
 * full one for the values it keeps.
 */
#include <string.h>

#include "cp_internal.h"

#if CP_BUILD_AVX2
#include <immintrin.h>
#endif

#define ROW(a, i, mr, lda) ((a) + ((i) < (mr) ? (i) : (mr) - 1) * (lda))

/* Copy the kept mr x nr corner of a full register tile to C. */
#define STORE_TAIL(T, tile, NR, c, ldc, mr, nr)                                    \
    do {                                                                           \
        for (int64_t i_ = 0; i_ < (mr); i_++)                                      \
            memcpy((c) + i_ * (ldc), (tile)[i_], (size_t)(nr) * sizeof(T));        \
    } while (0)

/* ---------------------------------------------------------------- baseline */
/* Plain C; the compiler vectorises the j loops for the target's baseline ISA.
 * Multiply and add round separately here (-ffp-contract=off). */

void cp_gemm_6x16_f32__baseline(int64_t K, const float *a, int64_t lda, const float *b,
                                float *c, int64_t ldc, int64_t mr, int64_t nr,
                                const float *bias)
{
    float acc[CP_MR][CP_NR_F32];
    const float *rows[CP_MR];
    memset(acc, 0, sizeof(acc));
    for (int i = 0; i < CP_MR; i++)
        rows[i] = ROW(a, i, mr, lda);
    for (int64_t k = 0; k < K; k++) {
        const float *bk = b + k * CP_NR_F32;
        for (int i = 0; i < CP_MR; i++) {
            const float ai = rows[i][k];
            for (int j = 0; j < CP_NR_F32; j++)
                acc[i][j] = acc[i][j] + ai * bk[j];
        }
    }
    if (bias != NULL)
        for (int i = 0; i < CP_MR; i++)
            for (int j = 0; j < nr; j++)
                acc[i][j] = acc[i][j] + bias[j];
    STORE_TAIL(float, acc, CP_NR_F32, c, ldc, mr, nr);
}

void cp_gemm_6x8_f64__baseline(int64_t K, const double *a, int64_t lda, const double *b,
                               double *c, int64_t ldc, int64_t mr, int64_t nr,
                               const double *bias)
{
    double acc[CP_MR][CP_NR_F64];
    const double *rows[CP_MR];
    memset(acc, 0, sizeof(acc));
    for (int i = 0; i < CP_MR; i++)
        rows[i] = ROW(a, i, mr, lda);
    for (int64_t k = 0; k < K; k++) {
        const double *bk = b + k * CP_NR_F64;
        for (int i = 0; i < CP_MR; i++) {
            const double ai = rows[i][k];
            for (int j = 0; j < CP_NR_F64; j++)
                acc[i][j] = acc[i][j] + ai * bk[j];
        }
    }
    if (bias != NULL)
        for (int i = 0; i < CP_MR; i++)
            for (int j = 0; j < nr; j++)
                acc[i][j] = acc[i][j] + bias[j];
    STORE_TAIL(double, acc, CP_NR_F64, c, ldc, mr, nr);
}

/* ------------------------------------------------------------- AVX2 + FMA */
#if CP_BUILD_AVX2

CP_TARGET_AVX2 void cp_gemm_6x16_f32__avx2(int64_t K, const float *a, int64_t lda,
                                           const float *b, float *c, int64_t ldc, int64_t mr,
                                           int64_t nr, const float *bias)
{
    const float *a0 = ROW(a, 0, mr, lda), *a1 = ROW(a, 1, mr, lda), *a2 = ROW(a, 2, mr, lda);
    const float *a3 = ROW(a, 3, mr, lda), *a4 = ROW(a, 4, mr, lda), *a5 = ROW(a, 5, mr, lda);
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const __m256 b0 = _mm256_load_ps(b + k * 16);
        const __m256 b1 = _mm256_load_ps(b + k * 16 + 8);
        __m256 av;
        av = _mm256_broadcast_ss(a0 + k);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a1 + k);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a2 + k);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a3 + k);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a4 + k);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a5 + k);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    if (bias != NULL) {
        float bpad[16] __attribute__((aligned(32))) = {0};
        memcpy(bpad, bias, (size_t)nr * sizeof(float));
        const __m256 bb0 = _mm256_load_ps(bpad), bb1 = _mm256_load_ps(bpad + 8);
        c00 = _mm256_add_ps(c00, bb0), c01 = _mm256_add_ps(c01, bb1);
        c10 = _mm256_add_ps(c10, bb0), c11 = _mm256_add_ps(c11, bb1);
        c20 = _mm256_add_ps(c20, bb0), c21 = _mm256_add_ps(c21, bb1);
        c30 = _mm256_add_ps(c30, bb0), c31 = _mm256_add_ps(c31, bb1);
        c40 = _mm256_add_ps(c40, bb0), c41 = _mm256_add_ps(c41, bb1);
        c50 = _mm256_add_ps(c50, bb0), c51 = _mm256_add_ps(c51, bb1);
    }
    if (mr == CP_MR && nr == 16) {
        _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
        _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
        _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
        _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
        _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
        _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
    } else {
        float tile[CP_MR][16] __attribute__((aligned(32)));
        _mm256_store_ps(tile[0], c00), _mm256_store_ps(tile[0] + 8, c01);
        _mm256_store_ps(tile[1], c10), _mm256_store_ps(tile[1] + 8, c11);
        _mm256_store_ps(tile[2], c20), _mm256_store_ps(tile[2] + 8, c21);
        _mm256_store_ps(tile[3], c30), _mm256_store_ps(tile[3] + 8, c31);
        _mm256_store_ps(tile[4], c40), _mm256_store_ps(tile[4] + 8, c41);
        _mm256_store_ps(tile[5], c50), _mm256_store_ps(tile[5] + 8, c51);
        STORE_TAIL(float, tile, 16, c, ldc, mr, nr);
    }
}

CP_TARGET_AVX2 void cp_gemm_6x8_f64__avx2(int64_t K, const double *a, int64_t lda,
                                          const double *b, double *c, int64_t ldc, int64_t mr,
                                          int64_t nr, const double *bias)
{
    const double *a0 = ROW(a, 0, mr, lda), *a1 = ROW(a, 1, mr, lda), *a2 = ROW(a, 2, mr, lda);
    const double *a3 = ROW(a, 3, mr, lda), *a4 = ROW(a, 4, mr, lda), *a5 = ROW(a, 5, mr, lda);
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    for (int64_t k = 0; k < K; k++) {
        const __m256d b0 = _mm256_load_pd(b + k * 8);
        const __m256d b1 = _mm256_load_pd(b + k * 8 + 4);
        __m256d av;
        av = _mm256_broadcast_sd(a0 + k);
        c00 = _mm256_fmadd_pd(av, b0, c00);
        c01 = _mm256_fmadd_pd(av, b1, c01);
        av = _mm256_broadcast_sd(a1 + k);
        c10 = _mm256_fmadd_pd(av, b0, c10);
        c11 = _mm256_fmadd_pd(av, b1, c11);
        av = _mm256_broadcast_sd(a2 + k);
        c20 = _mm256_fmadd_pd(av, b0, c20);
        c21 = _mm256_fmadd_pd(av, b1, c21);
        av = _mm256_broadcast_sd(a3 + k);
        c30 = _mm256_fmadd_pd(av, b0, c30);
        c31 = _mm256_fmadd_pd(av, b1, c31);
        av = _mm256_broadcast_sd(a4 + k);
        c40 = _mm256_fmadd_pd(av, b0, c40);
        c41 = _mm256_fmadd_pd(av, b1, c41);
        av = _mm256_broadcast_sd(a5 + k);
        c50 = _mm256_fmadd_pd(av, b0, c50);
        c51 = _mm256_fmadd_pd(av, b1, c51);
    }
    if (bias != NULL) {
        double bpad[8] __attribute__((aligned(32))) = {0};
        memcpy(bpad, bias, (size_t)nr * sizeof(double));
        const __m256d bb0 = _mm256_load_pd(bpad), bb1 = _mm256_load_pd(bpad + 4);
        c00 = _mm256_add_pd(c00, bb0), c01 = _mm256_add_pd(c01, bb1);
        c10 = _mm256_add_pd(c10, bb0), c11 = _mm256_add_pd(c11, bb1);
        c20 = _mm256_add_pd(c20, bb0), c21 = _mm256_add_pd(c21, bb1);
        c30 = _mm256_add_pd(c30, bb0), c31 = _mm256_add_pd(c31, bb1);
        c40 = _mm256_add_pd(c40, bb0), c41 = _mm256_add_pd(c41, bb1);
        c50 = _mm256_add_pd(c50, bb0), c51 = _mm256_add_pd(c51, bb1);
    }
    if (mr == CP_MR && nr == 8) {
        _mm256_storeu_pd(c + 0 * ldc, c00), _mm256_storeu_pd(c + 0 * ldc + 4, c01);
        _mm256_storeu_pd(c + 1 * ldc, c10), _mm256_storeu_pd(c + 1 * ldc + 4, c11);
        _mm256_storeu_pd(c + 2 * ldc, c20), _mm256_storeu_pd(c + 2 * ldc + 4, c21);
        _mm256_storeu_pd(c + 3 * ldc, c30), _mm256_storeu_pd(c + 3 * ldc + 4, c31);
        _mm256_storeu_pd(c + 4 * ldc, c40), _mm256_storeu_pd(c + 4 * ldc + 4, c41);
        _mm256_storeu_pd(c + 5 * ldc, c50), _mm256_storeu_pd(c + 5 * ldc + 4, c51);
    } else {
        double tile[CP_MR][8] __attribute__((aligned(32)));
        _mm256_store_pd(tile[0], c00), _mm256_store_pd(tile[0] + 4, c01);
        _mm256_store_pd(tile[1], c10), _mm256_store_pd(tile[1] + 4, c11);
        _mm256_store_pd(tile[2], c20), _mm256_store_pd(tile[2] + 4, c21);
        _mm256_store_pd(tile[3], c30), _mm256_store_pd(tile[3] + 4, c31);
        _mm256_store_pd(tile[4], c40), _mm256_store_pd(tile[4] + 4, c41);
        _mm256_store_pd(tile[5], c50), _mm256_store_pd(tile[5] + 4, c51);
        STORE_TAIL(double, tile, 8, c, ldc, mr, nr);
    }
}

#endif /* CP_BUILD_AVX2 */
