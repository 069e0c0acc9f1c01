/*
 * Max and average pooling of one output row, NHWC, no column buffer.
 *
 * Included by cp_pool.c once per ISA with these macros set:
 *   CP_POOL_ISA    name suffix (baseline, avx2)
 *   CP_POOL_ATTR   function attributes (the target of that ISA, or nothing)
 * The loops are written so the compiler vectorises them for that target.
 *
 * Pooling is separable, so a row is done in two passes over tiles of output
 * pixels:
 *   1. vertical: v[j, c] = op over the valid input rows of the window, for the
 *      input columns j the tile needs, as one run over the contiguous W*C
 *      floats of each row: full-width SIMD whatever C is;
 *   2. horizontal: out[o, c] = op over kw of v[o * SW + kw, c].  For small C
 *      (the 3 channels of an image) this is done as shifted full-width passes
 *      u[p] = op(u[p], v[p + kw * C]) over the run, then a strided copy, so
 *      the vector width is not limited to C; for C >= 8 it runs per pixel,
 *      vectorised over C.
 * Padded cells are -inf for max (they never win; a window always holds at
 * least one real cell, see _shapes.window_2d) and 0 for the average, whose
 * divisor counts the real cells (or the whole window with count_include_pad).
 * The order of the reduction depends only on the geometry: rows top to bottom,
 * then columns left to right.
 *
 * NaN: op_max(a, b) = (b > a || b != b) ? b : a keeps a NaN once seen and takes
 * any new one, so a NaN anywhere in the window gives NaN.
 */

/* Channels below which the horizontal pass works on the whole run. */
#define CP_POOL_SMALL_C 8

#define CP_DEFINE_POOL_ROW(NAME, T, IS_MAX)                                                  \
    static inline CP_POOL_ATTR T CP_CAT(NAME##_op, CP_POOL_ISA)(T a, T b)                    \
    {                                                                                        \
        return (IS_MAX) ? ((b > a || b != b) ? b : a) : a + b;                               \
    }                                                                                        \
    CP_POOL_ATTR void CP_CAT(NAME, CP_POOL_ISA)(const cp_pool_geom *g, const T *x, T *y,     \
                                                int64_t row, T *scratch)                     \
    {                                                                                        \
        const int64_t C = g->c, rs = g->w * g->c;                                            \
        const int64_t n = row / g->oh, oh = row % g->oh;                                     \
        const int64_t ih0 = oh * g->sh - g->pt;                                              \
        const int64_t kh_lo = ih0 < 0 ? -ih0 : 0;                                            \
        const int64_t kh_hi = g->h - ih0 < g->kh ? g->h - ih0 : g->kh;                       \
        const int64_t nrows = kh_hi - kh_lo;                                                 \
        const T *xrow = x + (n * g->h + ih0 + kh_lo) * rs;                                   \
        const T pad = (IS_MAX) ? (T)-INFINITY : (T)0;                                        \
        T *const v = scratch;                                                                \
        T *const u = scratch + ((g->tile - 1) * g->sw + g->kw) * C;                          \
        T *const yrow = y + row * g->ow * C;                                                 \
        for (int64_t ow0 = 0; ow0 < g->ow; ow0 += g->tile) {                                 \
            const int64_t cnt = g->ow - ow0 < g->tile ? g->ow - ow0 : g->tile;               \
            const int64_t iw_start = ow0 * g->sw - g->pl;                                    \
            const int64_t span = (cnt - 1) * g->sw + g->kw;                                  \
            const int64_t j_lo = iw_start < 0 ? -iw_start : 0;                               \
            const int64_t j_hi = g->w - iw_start < span ? g->w - iw_start : span;            \
            /* 1. vertical pass over the valid columns; padding around them */              \
            for (int64_t p = 0; p < j_lo * C; p++)                                           \
                v[p] = pad;                                                                  \
            for (int64_t p = j_hi * C; p < span * C; p++)                                    \
                v[p] = pad;                                                                  \
            {                                                                                \
                const int64_t len = (j_hi - j_lo) * C;                                       \
                const T *CP_RESTRICT src = xrow + (iw_start + j_lo) * C;                     \
                T *CP_RESTRICT dst = v + j_lo * C;                                           \
                for (int64_t p = 0; p < len; p++)                                            \
                    dst[p] = src[p];                                                         \
                for (int64_t r = 1; r < nrows; r++) {                                        \
                    const T *CP_RESTRICT s = src + r * rs;                                   \
                    for (int64_t p = 0; p < len; p++)                                        \
                        dst[p] = CP_CAT(NAME##_op, CP_POOL_ISA)(dst[p], s[p]);               \
                }                                                                            \
            }                                                                                \
            /* 2. horizontal pass */                                                         \
            T *const out = yrow + ow0 * C;                                                   \
            if (C < CP_POOL_SMALL_C) {                                                       \
                const int64_t len = ((cnt - 1) * g->sw + 1) * C;                             \
                for (int64_t p = 0; p < len; p++)                                            \
                    u[p] = v[p];                                                             \
                for (int64_t kw = 1; kw < g->kw; kw++) {                                     \
                    const T *CP_RESTRICT vs = v + kw * C;                                    \
                    for (int64_t p = 0; p < len; p++)                                        \
                        u[p] = CP_CAT(NAME##_op, CP_POOL_ISA)(u[p], vs[p]);                  \
                }                                                                            \
                for (int64_t o = 0; o < cnt; o++)                                            \
                    for (int64_t c = 0; c < C; c++)                                          \
                        out[o * C + c] = u[o * g->sw * C + c];                               \
            } else {                                                                         \
                for (int64_t o = 0; o < cnt; o++) {                                          \
                    const T *CP_RESTRICT base = v + o * g->sw * C;                           \
                    T *CP_RESTRICT dst = out + o * C;                                        \
                    for (int64_t c = 0; c < C; c++)                                          \
                        dst[c] = base[c];                                                    \
                    for (int64_t kw = 1; kw < g->kw; kw++)                                   \
                        for (int64_t c = 0; c < C; c++)                                      \
                            dst[c] = CP_CAT(NAME##_op, CP_POOL_ISA)(dst[c], base[kw * C + c]); \
                }                                                                            \
            }                                                                                \
            if (!(IS_MAX)) {                                                                 \
                for (int64_t o = 0; o < cnt; o++) {                                          \
                    T divisor;                                                               \
                    if (g->count_include_pad) {                                              \
                        divisor = (T)(g->kh * g->kw);                                        \
                    } else {                                                                 \
                        const int64_t iw = (ow0 + o) * g->sw - g->pl;                        \
                        const int64_t lo = iw < 0 ? -iw : 0;                                 \
                        const int64_t hi = g->w - iw < g->kw ? g->w - iw : g->kw;            \
                        divisor = (T)(nrows * (hi - lo));                                    \
                    }                                                                        \
                    for (int64_t c = 0; c < C; c++)                                          \
                        out[o * C + c] = out[o * C + c] / divisor;                           \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

CP_DEFINE_POOL_ROW(cp_maxpool2d_nhwc_f32, float, 1)
CP_DEFINE_POOL_ROW(cp_maxpool2d_nhwc_f64, double, 1)
CP_DEFINE_POOL_ROW(cp_avgpool2d_nhwc_f32, float, 0)
CP_DEFINE_POOL_ROW(cp_avgpool2d_nhwc_f64, double, 0)
