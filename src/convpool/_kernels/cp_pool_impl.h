/*
 * Max and average pooling of one output row, NHWC, no column buffer.
 *
 * Included by cp_pool.c once per ISA with these macros set:
 *   CP_POOL_ISA    name suffix (baseline, avx2)
 *   CP_POOL_ATTR   function attributes (the target of that ISA, or nothing)
 * The loops are written so the compiler vectorises them for that target; an
 * ISA may also supply explicit vector loops, <name>_vop2__<isa> and
 * <name>_vfused2__<isa>, which do a prefix of the work (returning how many
 * elements they did) with exactly the element-wise op of the scalar loop.
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

/* A pixel narrower than this many bytes (fewer than 8 float32 or 4 float64
 * channels) takes the whole-run horizontal pass and the block compaction. */
#define CP_POOL_SMALL_PIXEL_BYTES 32

#define CP_DEFINE_POOL_ROW(NAME, T, IS_MAX)                                                  \
    static inline CP_POOL_ATTR T CP_CAT(NAME##_op, CP_POOL_ISA)(T a, T b)                    \
    {                                                                                        \
        return (IS_MAX) ? ((b > a || b != b) ? b : a) : a + b;                               \
    }                                                                                        \
    /* dst[p] = op(a[p], b[p]) */                                                            \
    static inline CP_POOL_ATTR void CP_CAT(NAME##_op2, CP_POOL_ISA)(                         \
        T *dst, const T *a, const T *b, int64_t len)                                         \
    {                                                                                        \
        int64_t p = CP_CAT(NAME##_vop2, CP_POOL_ISA)(dst, a, b, len);                        \
        for (; p < len; p++)                                                                 \
            dst[p] = CP_CAT(NAME##_op, CP_POOL_ISA)(a[p], b[p]);                             \
    }                                                                                        \
    /* u[p] = op over kw < KW (2 or 3) of op(s0[p + kw*C], s1[p + kw*C]): the     */       \
    /* vertical and horizontal passes of a 2-row window in one sweep, in the   */       \
    /* same order as the separate passes (so the same bits).                   */       \
    static inline CP_POOL_ATTR void CP_CAT(NAME##_fused2, CP_POOL_ISA)(                      \
        T *CP_RESTRICT u, const T *s0, const T *s1, int64_t C, int64_t kw, int64_t len)      \
    {                                                                                        \
        int64_t p0 = CP_CAT(NAME##_vfused2, CP_POOL_ISA)(u, s0, s1, C, kw, len);             \
        if (kw == 2) {                                                                       \
            for (int64_t p = p0; p < len; p++)                                               \
                u[p] = CP_CAT(NAME##_op, CP_POOL_ISA)(                                       \
                    CP_CAT(NAME##_op, CP_POOL_ISA)(s0[p], s1[p]),                            \
                    CP_CAT(NAME##_op, CP_POOL_ISA)(s0[p + C], s1[p + C]));                   \
        } else {                                                                             \
            for (int64_t p = p0; p < len; p++)                                               \
                u[p] = CP_CAT(NAME##_op, CP_POOL_ISA)(                                       \
                    CP_CAT(NAME##_op, CP_POOL_ISA)(                                          \
                        CP_CAT(NAME##_op, CP_POOL_ISA)(s0[p], s1[p]),                        \
                        CP_CAT(NAME##_op, CP_POOL_ISA)(s0[p + C], s1[p + C])),               \
                    CP_CAT(NAME##_op, CP_POOL_ISA)(s0[p + 2 * C], s1[p + 2 * C]));           \
        }                                                                                    \
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
        T *const vbuf = scratch;                                                             \
        T *const u = scratch + ((g->tile - 1) * g->sw + g->kw) * C;                          \
        T *const stage = u + ((g->tile - 1) * g->sw + g->kw) * C;                            \
        T *const yrow = y + row * g->ow * C;                                                 \
        for (int64_t ow0 = 0; ow0 < g->ow; ow0 += g->tile) {                                 \
            const int64_t cnt = g->ow - ow0 < g->tile ? g->ow - ow0 : g->tile;               \
            const int64_t iw_start = ow0 * g->sw - g->pl;                                    \
            const int64_t span = (cnt - 1) * g->sw + g->kw;                                  \
            const int64_t j_lo = iw_start < 0 ? -iw_start : 0;                               \
            const int64_t j_hi = g->w - iw_start < span ? g->w - iw_start : span;            \
            const int padded = j_lo > 0 || j_hi < span;                                      \
            /* 1. vertical pass over the valid columns, padding around them; a */           \
            /*    single valid row without padding is used where it lies.     */            \
            const int small_c = C * (int64_t)sizeof(T) < CP_POOL_SMALL_PIXEL_BYTES;         \
            const int fused = small_c && !padded && nrows == 2 && (g->kw == 2 || g->kw == 3); \
            const T *v = NULL;                                                               \
            if (!fused) {                                                                    \
                const int64_t len = (j_hi - j_lo) * C;                                       \
                const T *src = xrow + (iw_start + j_lo) * C;                                 \
                if (nrows == 1 && !padded) {                                                 \
                    v = src;                                                                 \
                } else {                                                                     \
                    T *dst = vbuf + j_lo * C;                                                \
                    for (int64_t p = 0; p < j_lo * C; p++)                                   \
                        vbuf[p] = pad;                                                       \
                    for (int64_t p = j_hi * C; p < span * C; p++)                            \
                        vbuf[p] = pad;                                                       \
                    if (nrows == 1)                                                          \
                        memcpy(dst, src, (size_t)len * sizeof(T));                           \
                    else                                                                     \
                        CP_CAT(NAME##_op2, CP_POOL_ISA)(dst, src, src + rs, len);            \
                    for (int64_t r = 2; r < nrows; r++)                                      \
                        CP_CAT(NAME##_op2, CP_POOL_ISA)(dst, dst, src + r * rs, len);        \
                    v = vbuf;                                                                \
                }                                                                            \
            }                                                                                \
            /* 2. horizontal pass */                                                         \
            /* Results go to the output, or to a staging buffer streamed out. */            \
            T *const out = g->stream ? stage : yrow + ow0 * C;                               \
            if (small_c) {                                                                   \
                const int64_t len = ((cnt - 1) * g->sw + 1) * C;                             \
                const T *h = v;                                                              \
                if (fused) {                                                                 \
                    const T *src = xrow + iw_start * C;                                      \
                    CP_CAT(NAME##_fused2, CP_POOL_ISA)(u, src, src + rs, C, g->kw, len);     \
                    h = u;                                                                   \
                } else if (g->kw > 1) {                                                      \
                    CP_CAT(NAME##_op2, CP_POOL_ISA)(u, v, v + C, len);                       \
                    for (int64_t kw = 2; kw < g->kw; kw++)                                   \
                        CP_CAT(NAME##_op2, CP_POOL_ISA)(u, u, v + kw * C, len);              \
                    h = u;                                                                   \
                }                                                                            \
                /* Compaction: each C-element pixel moved as one 16- or 32- */       \
                /* byte block; the spill-over is overwritten by the next     */       \
                /* pixels, and the last pixels (whose block would reach past  */       \
                /* this tile's output) are copied exactly.                    */       \
                const int64_t step = g->sw * C;                                      \
                int64_t o = 0;                                                       \
                if (C * (int64_t)sizeof(T) <= 16)                                    \
                    for (; (o * C + 16 / (int64_t)sizeof(T)) <= cnt * C; o++)        \
                        memcpy(out + o * C, h + o * step, 16);                       \
                else                                                                 \
                    for (; (o * C + 32 / (int64_t)sizeof(T)) <= cnt * C; o++)        \
                        memcpy(out + o * C, h + o * step, 32);                       \
                for (; o < cnt; o++)                                                 \
                    for (int64_t c = 0; c < C; c++)                                  \
                        out[o * C + c] = h[o * step + c];                            \
            } else {                                                                         \
                for (int64_t o = 0; o < cnt; o++) {                                          \
                    const T *base = v + o * g->sw * C;                                       \
                    T *dst = out + o * C;                                                    \
                    if (g->kw == 1)                                                          \
                        memcpy(dst, base, (size_t)C * sizeof(T));                            \
                    else                                                                     \
                        CP_CAT(NAME##_op2, CP_POOL_ISA)(dst, base, base + C, C);             \
                    for (int64_t kw = 2; kw < g->kw; kw++)                                   \
                        CP_CAT(NAME##_op2, CP_POOL_ISA)(dst, dst, base + kw * C, C);         \
                }                                                                            \
            }                                                                                \
            /* 3. average: divide by the cells counted */                                    \
            if (!(IS_MAX)) {                                                                 \
                if (g->count_include_pad || (!padded && nrows == g->kh)) {                   \
                    /* in double: KH * KW may pass int64 (huge windows of padding) */   \
                    const T divisor = (T)(g->count_include_pad ? (double)g->kh * (double)g->kw \
                                                               : (double)(nrows * g->kw));   \
                    for (int64_t q = 0; q < cnt * C; q++)                                    \
                        out[q] = out[q] / divisor;                                           \
                } else {                                                                     \
                    for (int64_t o = 0; o < cnt; o++) {                                      \
                        const int64_t iw = (ow0 + o) * g->sw - g->pl;                        \
                        const int64_t lo = iw < 0 ? -iw : 0;                                 \
                        const int64_t hi = g->w - iw < g->kw ? g->w - iw : g->kw;            \
                        const T divisor = (T)(nrows * (hi - lo));                            \
                        for (int64_t c = 0; c < C; c++)                                      \
                            out[o * C + c] = out[o * C + c] / divisor;                       \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            if (g->stream)                                                                   \
                CP_CAT(cp_stream_copy_##T, CP_POOL_ISA)(yrow + ow0 * C, stage, cnt * C);     \
        }                                                                                    \
    }

CP_DEFINE_POOL_ROW(cp_maxpool2d_nhwc_f32, float, 1)
CP_DEFINE_POOL_ROW(cp_maxpool2d_nhwc_f64, double, 1)
CP_DEFINE_POOL_ROW(cp_avgpool2d_nhwc_f32, float, 0)
CP_DEFINE_POOL_ROW(cp_avgpool2d_nhwc_f64, double, 0)
