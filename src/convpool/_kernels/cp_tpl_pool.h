/*
 * Template: max or average pooling of one output row, NHWC, no column buffer.
 *
 * Include with CP_T, CP_SFX, CP_ISA, CP_POOL_MAX (1: max, 0: average) and
 * CP_SIMD (1 with the vector vocabulary of cp_simd_<isa>.h, 0 for plain C
 * loops the compiler vectorises); defines cp_maxpool2d_nhwc_<sfx>__<isa> or
 * cp_avgpool2d_nhwc_<sfx>__<isa>.  cp_tpl_stream.h must come first (the
 * streamed copy of a staged tile).
 *
 * Pooling is separable, so a row is done in two passes over tiles of output
 * pixels (taps dh rows and dw columns apart; the average has dh = dw = 1):
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

#if CP_POOL_MAX
#define CP_POOL_NAME CP_CAT(cp_maxpool2d_nhwc, CP_SFX)
#else
#define CP_POOL_NAME CP_CAT(cp_avgpool2d_nhwc, CP_SFX)
#endif
#define CP_POOL_F(part) CP_ISA_FN(CP_CAT(CP_POOL_NAME, part))

/* A pixel narrower than this many bytes (fewer than 8 float32 or 4 float64
 * channels) takes the whole-run horizontal pass and the block compaction. */
#ifndef CP_POOL_SMALL_PIXEL_BYTES
#define CP_POOL_SMALL_PIXEL_BYTES 32
#endif

/* The vector loops do a prefix of the work (returning how many elements they
 * did) with exactly the element-wise op of the scalar loops below.  They
 * prefetch the input rows 2 KiB ahead: the input is read once, from memory,
 * and the hardware prefetcher alone left the loads waiting (the 2x2 max pool
 * of (64, 1920, 1080, 3), 2 threads on the 2-core Xeon, builds alternating
 * in fresh processes: 74.9-75.8 ms before, 67.9-69.5 ms with the prefetch; 1
 * and 4 KiB ahead were slower than 2).  A plain loop reading 1.6 GB and
 * streaming a quarter of it out takes 51-53 ms there. */
#define CP_POOL_AHEAD (2048 / (int64_t)sizeof(CP_T))
#if CP_SIMD
static inline CPV CP_POOL_F(vop)(CPV a, CPV b)
{
#if CP_POOL_MAX
    return cpv_max_nan(a, b);
#else
    return cpv_add(a, b);
#endif
}
static inline int64_t CP_POOL_F(vop2)(CP_T *d, const CP_T *a, const CP_T *b, int64_t n)
{
    int64_t p = 0;
    for (; p + CPV_W <= n; p += CPV_W) {
        __builtin_prefetch(a + p + CP_POOL_AHEAD, 0, 3);
        __builtin_prefetch(b + p + CP_POOL_AHEAD, 0, 3);
        cpv_storeu(d + p, CP_POOL_F(vop)(cpv_loadu(a + p), cpv_loadu(b + p)));
    }
#if CPV_MASKED
    if (p < n) {
        cpv_storeu_n(d + p, CP_POOL_F(vop)(cpv_loadu_n(a + p, n - p), cpv_loadu_n(b + p, n - p)),
                     n - p);
        p = n;
    }
#endif
    return p;
}
static inline int64_t CP_POOL_F(vfused2)(CP_T *u, const CP_T *s0, const CP_T *s1, int64_t C,
                                         int64_t kw, int64_t n)
{
    int64_t p = 0;
    if (kw == 2) {
        for (; p + CPV_W <= n; p += CPV_W) {
            __builtin_prefetch(s0 + p + CP_POOL_AHEAD, 0, 3);
            __builtin_prefetch(s1 + p + CP_POOL_AHEAD, 0, 3);
            const CPV c0 = CP_POOL_F(vop)(cpv_loadu(s0 + p), cpv_loadu(s1 + p));
            const CPV c1 = CP_POOL_F(vop)(cpv_loadu(s0 + p + C), cpv_loadu(s1 + p + C));
            cpv_storeu(u + p, CP_POOL_F(vop)(c0, c1));
        }
    } else {
        for (; p + CPV_W <= n; p += CPV_W) {
            __builtin_prefetch(s0 + p + CP_POOL_AHEAD, 0, 3);
            __builtin_prefetch(s1 + p + CP_POOL_AHEAD, 0, 3);
            const CPV c0 = CP_POOL_F(vop)(cpv_loadu(s0 + p), cpv_loadu(s1 + p));
            const CPV c1 = CP_POOL_F(vop)(cpv_loadu(s0 + p + C), cpv_loadu(s1 + p + C));
            const CPV c2 = CP_POOL_F(vop)(cpv_loadu(s0 + p + 2 * C), cpv_loadu(s1 + p + 2 * C));
            cpv_storeu(u + p, CP_POOL_F(vop)(CP_POOL_F(vop)(c0, c1), c2));
        }
    }
    return p;
}
#else
static inline int64_t CP_POOL_F(vop2)(CP_T *d, const CP_T *a, const CP_T *b, int64_t n)
{
    (void)d, (void)a, (void)b, (void)n;
    return 0;
}
static inline int64_t CP_POOL_F(vfused2)(CP_T *u, const CP_T *s0, const CP_T *s1, int64_t C,
                                         int64_t kw, int64_t n)
{
    (void)u, (void)s0, (void)s1, (void)C, (void)kw, (void)n;
    return 0;
}
#endif

static inline CP_T CP_POOL_F(op)(CP_T a, CP_T b)
{
    return CP_POOL_MAX ? ((b > a || b != b) ? b : a) : a + b;
}
/* dst[p] = op(a[p], b[p]) */
static inline void CP_POOL_F(op2)(
    CP_T *dst, const CP_T *a, const CP_T *b, int64_t len)
{
    int64_t p = CP_POOL_F(vop2)(dst, a, b, len);
    for (; p < len; p++)
        dst[p] = CP_POOL_F(op)(a[p], b[p]);
}
/* u[p] = op over kw < KW (2 or 3) of op(s0[p + kw*C], s1[p + kw*C]): the
 * vertical and horizontal passes of a 2-row window in one sweep, in the
 * same order as the separate passes (so the same bits). */
static inline void CP_POOL_F(fused2)(
    CP_T *CP_RESTRICT u, const CP_T *s0, const CP_T *s1, int64_t C, int64_t kw, int64_t len)
{
    int64_t p0 = CP_POOL_F(vfused2)(u, s0, s1, C, kw, len);
    if (kw == 2) {
        for (int64_t p = p0; p < len; p++)
            u[p] = CP_POOL_F(op)(
                CP_POOL_F(op)(s0[p], s1[p]),
                CP_POOL_F(op)(s0[p + C], s1[p + C]));
    } else {
        for (int64_t p = p0; p < len; p++)
            u[p] = CP_POOL_F(op)(
                CP_POOL_F(op)(
                    CP_POOL_F(op)(s0[p], s1[p]),
                    CP_POOL_F(op)(s0[p + C], s1[p + C])),
                CP_POOL_F(op)(s0[p + 2 * C], s1[p + 2 * C]));
    }
}
static void CP_ISA_FN(CP_POOL_NAME)(const cp_pool_geom *g, const CP_T *x, CP_T *y,
                                            int64_t row, CP_T *scratch)
{
    const int64_t C = g->c, rs = g->w * g->c;
    const int64_t n = row / g->oh, oh = row % g->oh;
    const int64_t ih0 = oh * g->sh - g->pt;
    /* the taps a with 0 <= ih0 + a*dh < H (contiguous in a) */
    const int64_t kh_lo = ih0 < 0 ? (-ih0 + g->dh - 1) / g->dh : 0;
    const int64_t kh_end = g->h - ih0 <= 0 ? 0 : (g->h - 1 - ih0) / g->dh + 1;
    const int64_t kh_hi = kh_end < g->kh ? kh_end : g->kh;
    const int64_t nrows = kh_hi - kh_lo;
    const int64_t rstep = g->dh * rs, tstep = g->dw * C; /* between taps */
    const int64_t ew = (g->kw - 1) * g->dw + 1;          /* the window's extent */
    const CP_T *xrow = x + (n * g->h + ih0 + kh_lo * g->dh) * rs;
    const CP_T pad = CP_POOL_MAX ? (CP_T)-INFINITY : (CP_T)0;
    CP_T *const vbuf = scratch;
    CP_T *const u = scratch + ((g->tile - 1) * g->sw + ew) * C;
    CP_T *const stage = u + ((g->tile - 1) * g->sw + ew) * C;
    CP_T *const yrow = y + row * g->ow * C;
    for (int64_t ow0 = 0; ow0 < g->ow; ow0 += g->tile) {
        const int64_t cnt = g->ow - ow0 < g->tile ? g->ow - ow0 : g->tile;
        const int64_t iw_start = ow0 * g->sw - g->pl;
        const int64_t span = (cnt - 1) * g->sw + ew;
        const int64_t j_lo = iw_start < 0 ? -iw_start : 0;
        const int64_t j_hi = g->w - iw_start < span ? g->w - iw_start : span;
        const int padded = j_lo > 0 || j_hi < span;
        /* 1. vertical pass over the valid columns, padding around them; a
         * single valid row without padding is used where it lies. */
        const int small_c = C * (int64_t)sizeof(CP_T) < CP_POOL_SMALL_PIXEL_BYTES;
        const int fused = small_c && !padded && nrows == 2 && (g->kw == 2 || g->kw == 3) &&
                          g->dh == 1 && g->dw == 1;
        const CP_T *v = NULL;
        if (!fused) {
            const int64_t len = (j_hi - j_lo) * C;
            const CP_T *src = xrow + (iw_start + j_lo) * C;
            if (nrows == 1 && !padded) {
                v = src;
            } else {
                CP_T *dst = vbuf + j_lo * C;
                for (int64_t p = 0; p < j_lo * C; p++)
                    vbuf[p] = pad;
                for (int64_t p = j_hi * C; p < span * C; p++)
                    vbuf[p] = pad;
                if (nrows == 1)
                    memcpy(dst, src, (size_t)len * sizeof(CP_T));
                else
                    CP_POOL_F(op2)(dst, src, src + rstep, len);
                for (int64_t r = 2; r < nrows; r++)
                    CP_POOL_F(op2)(dst, dst, src + r * rstep, len);
                v = vbuf;
            }
        }
        /* 2. horizontal pass
         * Results go to the output, or to a staging buffer streamed out. */
        CP_T *const out = g->stream ? stage : yrow + ow0 * C;
        if (small_c) {
            const int64_t len = ((cnt - 1) * g->sw + 1) * C;
            const CP_T *h = v;
            if (fused) {
                const CP_T *src = xrow + iw_start * C;
                CP_POOL_F(fused2)(u, src, src + rs, C, g->kw, len);
                h = u;
            } else if (g->kw > 1) {
                CP_POOL_F(op2)(u, v, v + tstep, len);
                for (int64_t kw = 2; kw < g->kw; kw++)
                    CP_POOL_F(op2)(u, u, v + kw * tstep, len);
                h = u;
            }
            /* Compaction: each C-element pixel moved as one 16- or 32-
             * byte block; the spill-over is overwritten by the next
             * pixels, and the last pixels (whose block would reach past
             * this tile's output) are copied exactly. */
            const int64_t step = g->sw * C;
            int64_t o = 0;
            if (C * (int64_t)sizeof(CP_T) <= 16)
                _Pragma("GCC unroll 4") for (; (o * C + 16 / (int64_t)sizeof(CP_T)) <= cnt * C; o++)
                    memcpy(out + o * C, h + o * step, 16);
            else
                _Pragma("GCC unroll 4") for (; (o * C + 32 / (int64_t)sizeof(CP_T)) <= cnt * C; o++)
                    memcpy(out + o * C, h + o * step, 32);
            for (; o < cnt; o++)
                for (int64_t c = 0; c < C; c++)
                    out[o * C + c] = h[o * step + c];
        } else {
            for (int64_t o = 0; o < cnt; o++) {
                const CP_T *base = v + o * g->sw * C;
                CP_T *dst = out + o * C;
                if (g->kw == 1)
                    memcpy(dst, base, (size_t)C * sizeof(CP_T));
                else
                    CP_POOL_F(op2)(dst, base, base + tstep, C);
                for (int64_t kw = 2; kw < g->kw; kw++)
                    CP_POOL_F(op2)(dst, dst, base + kw * tstep, C);
            }
        }
        /* 3. average: divide by the cells counted (the padded input's with
         * count_include_pad; ceil_mode's last windows may reach past it) */
        if (!CP_POOL_MAX) {
            const int64_t prows = (g->h + g->pb - ih0 < g->kh ? g->h + g->pb - ih0 : g->kh);
            const int inside = iw_start + span <= g->w + g->pr && prows == g->kh;
            if (g->divisor > 0 || (g->count_include_pad && inside) ||
                (!g->count_include_pad && !padded && nrows == g->kh)) {
                /* in double: KH * KW may pass int64 (huge windows of padding) */
                const CP_T divisor = (CP_T)(g->divisor > 0           ? (double)g->divisor
                                            : g->count_include_pad ? (double)g->kh * (double)g->kw
                                                                   : (double)(nrows * g->kw));
                for (int64_t q = 0; q < cnt * C; q++)
                    out[q] = out[q] / divisor;
            } else {
                for (int64_t o = 0; o < cnt; o++) {
                    const int64_t iw = (ow0 + o) * g->sw - g->pl;
                    const int64_t lo = iw < 0 ? -iw : 0;
                    const int64_t hi = g->w - iw < g->kw ? g->w - iw : g->kw;
                    const int64_t pcols = g->w + g->pr - iw < g->kw ? g->w + g->pr - iw : g->kw;
                    const CP_T divisor = (CP_T)(g->count_include_pad
                                                    ? (double)prows * (double)pcols
                                                    : (double)(nrows * (hi - lo)));
                    for (int64_t c = 0; c < C; c++)
                        out[o * C + c] = out[o * C + c] / divisor;
                }
            }
        }
        if (g->stream)
            CP_ISA_FN(CP_CAT(cp_stream_copy, CP_SFX))(yrow + ow0 * C, stage, cnt * C);
    }
}

#undef CP_POOL_AHEAD
#undef CP_POOL_F
#undef CP_POOL_NAME
