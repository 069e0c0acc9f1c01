/*
 * Pooling kernels: the row functions of cp_pool_impl.h compiled once per ISA,
 * plus the plan and the dispatching entry points.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cp_internal.h"

/* Elements of the vertical-pass buffer one tile aims for (32 KiB of float32). */
#define CP_POOL_SPAN_ELEMS 8192

/* dst[0:n] = src[0:n]; the AVX2 variant writes the aligned middle with
 * non-temporal stores (whole cache lines, no read for ownership). */
static inline void cp_stream_copy_float__baseline(float *dst, const float *src, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static inline void cp_stream_copy_double__baseline(double *dst, const double *src, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(double));
}

/* The baseline leaves every element to the (auto-vectorised) scalar loops. */
#define NO_VECTOR_LOOPS(NAME, T)                                                            \
    static inline int64_t NAME##_vop2__baseline(T *d, const T *a, const T *b, int64_t n)    \
    {                                                                                       \
        (void)d, (void)a, (void)b, (void)n;                                                 \
        return 0;                                                                           \
    }                                                                                       \
    static inline int64_t NAME##_vfused2__baseline(T *u, const T *s0, const T *s1,          \
                                                    int64_t C, int64_t kw, int64_t n)       \
    {                                                                                       \
        (void)u, (void)s0, (void)s1, (void)C, (void)kw, (void)n;                            \
        return 0;                                                                           \
    }
NO_VECTOR_LOOPS(cp_maxpool2d_nhwc_f32, float)
NO_VECTOR_LOOPS(cp_maxpool2d_nhwc_f64, double)
NO_VECTOR_LOOPS(cp_avgpool2d_nhwc_f32, float)
NO_VECTOR_LOOPS(cp_avgpool2d_nhwc_f64, double)

#define CP_POOL_ISA baseline
#define CP_POOL_ATTR
#include "cp_pool_impl.h"
#undef CP_POOL_ISA
#undef CP_POOL_ATTR

#if CP_BUILD_AVX2
#include <immintrin.h>

#define DEFINE_STREAM_COPY(T, V, W, LOADU, STREAM)                                          \
    static inline CP_TARGET_AVX2 void cp_stream_copy_##T##__avx2(T *dst, const T *src,     \
                                                                 int64_t n)                 \
    {                                                                                       \
        int64_t i = 0;                                                                      \
        for (; i < n && (uintptr_t)(dst + i) % 32 != 0; i++)                               \
            dst[i] = src[i];                                                                \
        for (; i + (W) <= n; i += (W))                                                      \
            STREAM(dst + i, LOADU(src + i));                                                \
        for (; i < n; i++)                                                                  \
            dst[i] = src[i];                                                                \
        _mm_sfence(); /* order the streamed lines before anything that follows */          \
    }
DEFINE_STREAM_COPY(float, __m256, 8, _mm256_loadu_ps, _mm256_stream_ps)
DEFINE_STREAM_COPY(double, __m256d, 4, _mm256_loadu_pd, _mm256_stream_pd)

/* Vector loops of the pooling ops.  max(a, b) with NaN propagation, exactly
 * the scalar (b > a || b != b) ? b : a: vmaxps(b, a) gives b > a ? b : a (and
 * a when either is NaN), then a NaN b is blended in: 3 instructions, where the
 * compiler's version of the scalar expression takes 4. */
#define VMAX(V, MAX, BLENDV, CMP) (BLENDV(MAX(b_, a_), b_, CMP(b_, b_, _CMP_UNORD_Q)))
#define DEFINE_VECTOR_LOOPS(NAME, T, V, W, LOADU, STOREU, OPV)                              \
    static inline CP_TARGET_AVX2 V NAME##_vop__avx2(V a_, V b_) { return OPV; }             \
    static inline CP_TARGET_AVX2 int64_t NAME##_vop2__avx2(T *d, const T *a, const T *b,    \
                                                           int64_t n)                       \
    {                                                                                       \
        int64_t p = 0;                                                                      \
        for (; p + (W) <= n; p += (W))                                                      \
            STOREU(d + p, NAME##_vop__avx2(LOADU(a + p), LOADU(b + p)));                    \
        return p;                                                                           \
    }                                                                                       \
    static inline CP_TARGET_AVX2 int64_t NAME##_vfused2__avx2(                              \
        T *u, const T *s0, const T *s1, int64_t C, int64_t kw, int64_t n)                   \
    {                                                                                       \
        int64_t p = 0;                                                                      \
        if (kw == 2) {                                                                      \
            for (; p + (W) <= n; p += (W)) {                                                \
                const V c0 = NAME##_vop__avx2(LOADU(s0 + p), LOADU(s1 + p));                \
                const V c1 = NAME##_vop__avx2(LOADU(s0 + p + C), LOADU(s1 + p + C));        \
                STOREU(u + p, NAME##_vop__avx2(c0, c1));                                    \
            }                                                                               \
        } else {                                                                            \
            for (; p + (W) <= n; p += (W)) {                                                \
                const V c0 = NAME##_vop__avx2(LOADU(s0 + p), LOADU(s1 + p));                \
                const V c1 = NAME##_vop__avx2(LOADU(s0 + p + C), LOADU(s1 + p + C));        \
                const V c2 = NAME##_vop__avx2(LOADU(s0 + p + 2 * C), LOADU(s1 + p + 2 * C)); \
                STOREU(u + p, NAME##_vop__avx2(NAME##_vop__avx2(c0, c1), c2));              \
            }                                                                               \
        }                                                                                   \
        return p;                                                                           \
    }
DEFINE_VECTOR_LOOPS(cp_maxpool2d_nhwc_f32, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                    VMAX(__m256, _mm256_max_ps, _mm256_blendv_ps, _mm256_cmp_ps))
DEFINE_VECTOR_LOOPS(cp_maxpool2d_nhwc_f64, double, __m256d, 4, _mm256_loadu_pd,
                    _mm256_storeu_pd, VMAX(__m256d, _mm256_max_pd, _mm256_blendv_pd, _mm256_cmp_pd))
DEFINE_VECTOR_LOOPS(cp_avgpool2d_nhwc_f32, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                    _mm256_add_ps(a_, b_))
DEFINE_VECTOR_LOOPS(cp_avgpool2d_nhwc_f64, double, __m256d, 4, _mm256_loadu_pd,
                    _mm256_storeu_pd, _mm256_add_pd(a_, b_))

#define CP_POOL_ISA avx2
#define CP_POOL_ATTR CP_TARGET_AVX2
#include "cp_pool_impl.h"
#undef CP_POOL_ISA
#undef CP_POOL_ATTR
#endif

void cp_pool_plan(cp_pool_geom *g, int64_t itemsize)
{
    int64_t tile = 1;
    /* With stride > pool size the vertical pass would also cover the columns
     * between windows; one pixel per tile avoids that. */
    if (g->sw <= g->kw && CP_POOL_SPAN_ELEMS / g->c > g->kw)
        tile = (CP_POOL_SPAN_ELEMS / g->c - g->kw) / g->sw + 1;
    if (tile > g->ow)
        tile = g->ow;
    g->tile = tile;
    g->stream = g->n * g->oh * g->ow * g->c * itemsize >= cp_stream_threshold;
}

/* Bytes of v, u and the staging row, span * C elements each, for the widest
 * tile (span = (tile - 1) * sw + KW); -1 when that passes int64, as a huge
 * pool width can make it (the pool width is an argument, not an array). */
int64_t cp_pool_scratch_bytes(const cp_pool_geom *g, int64_t itemsize)
{
    const int64_t span_max = (INT64_MAX - CP_ALIGN) / (3 * itemsize) / g->c; /* room to round */
    if (g->kw > span_max || g->tile - 1 > (span_max - g->kw) / g->sw)
        return -1;
    return 3 * ((g->tile - 1) * g->sw + g->kw) * g->c * itemsize;
}

void cp_maxpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch)
{
    cp_active.maxpool_f32(g, x, y, row, scratch);
}

void cp_maxpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch)
{
    cp_active.maxpool_f64(g, x, y, row, scratch);
}

void cp_avgpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch)
{
    cp_active.avgpool_f32(g, x, y, row, scratch);
}

void cp_avgpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch)
{
    cp_active.avgpool_f64(g, x, y, row, scratch);
}
