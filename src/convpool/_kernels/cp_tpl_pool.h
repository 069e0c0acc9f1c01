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
 * Rows of windows of pixels narrower than 32 bytes, none reaching into
 * padded columns (and, for the average, all with one divisor), take a
 * packed pass instead, in the SIMD variants: each step loads two vectors of
 * each window row, reduces them vertically, and picks each tap's lanes with
 * a two-vector permutation (cpv_perm2), so q whole output pixels come out of
 * registers at once (q * C lanes: 15 of 16 for C = 3), with no buffer in
 * between.  Same ops, same order, so the same bits.
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
/* The packed pass (below) prefetches 4 KiB ahead into L2 (prefetcht2): on
 * the same machine and pool, another day, its run took 58-61 ms against
 * 60-62 with the L1 prefetch 2 KiB ahead (8 KiB ahead, or 2 into L2:
 * between the two), and a loop that only reads the same 1.6 GB took 54 ms. */
#define CP_POOL_PACK_AHEAD (4096 / (int64_t)sizeof(CP_T))
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
#if CP_POOL_MAX
    const CP_T m = b > a ? b : a; /* (b > a || b != b) ? b : a, without a branch on data */
    return b != b ? b : m;
#else
    return a + b;
#endif
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
#if CP_SIMD
/* The pixels one step of the packed pass makes: the most Q with Q*C lanes
 * in a vector and the Q windows' columns, (Q-1)*SW*C + ((KW-1)*DW+1)*C
 * elements, in two vectors; 0 when it does not apply. */
static inline int64_t CP_POOL_F(pack_q)(const cp_pool_geom *g)
{
    const int64_t C = g->c, ew = (g->kw - 1) * g->dw + 1;
    /* (a stride past two vectors would make one pixel a step: not worth it) */
    if (g->kw > CP_POOL_PACK_KW || C > CPV_W || ew * C > 2 * CPV_W || g->sw > 2 * CPV_W)
        return 0;
    const int64_t q = (2 * CPV_W - ew * C) / (g->sw * C) + 1;
    return q < CPV_W / C ? q : CPV_W / C;
}
/* One step of the packed pass: q pixels' windows from the two vectors at s
 * of each of the nrows rows. */
static inline CPV CP_POOL_F(vpack_step)(const CP_T *s, const CPVI *ix, int64_t nrows,
                                        int64_t rstep, int64_t kw)
{
    CPV lo = cpv_loadu(s), hi = cpv_loadu(s + CPV_W);
    __builtin_prefetch(s + CP_POOL_PACK_AHEAD, 0, 1);
    __builtin_prefetch(s + CP_POOL_PACK_AHEAD + CPV_W, 0, 1);
    for (int64_t r = 1; r < nrows; r++) {
        const CP_T *sr = s + r * rstep;
        __builtin_prefetch(sr + CP_POOL_PACK_AHEAD, 0, 1);
        __builtin_prefetch(sr + CP_POOL_PACK_AHEAD + CPV_W, 0, 1);
        lo = CP_POOL_F(vop)(lo, cpv_loadu(sr));
        hi = CP_POOL_F(vop)(hi, cpv_loadu(sr + CPV_W));
    }
    CPV acc = cpv_perm2(lo, ix[0], hi);
    for (int64_t k = 1; k < kw; k++)
        acc = CP_POOL_F(vop)(acc, cpv_perm2(lo, ix[k], hi));
    return acc;
}
/* out[o, c] for o below the returned count (at most cnt), of windows whose
 * rows and columns are all real (src: the tile's first input pixel in the
 * window's top row; avail: the elements of that row from src on).  A step
 * loads two vectors of each of the nrows rows, reduces them vertically,
 * then picks each tap's lanes with a two-vector permutation and reduces
 * those: the order and the ops of the separate passes, out of registers,
 * with no buffer between them.  The average divides by divisor. */
static inline int64_t CP_POOL_F(vpacked_n)(CP_T *out, const CP_T *src, const cp_pool_geom *g,
                                           int64_t q, int64_t cnt, int64_t avail,
                                           int64_t nrows, int64_t rstep, int64_t kw,
                                           CP_T divisor)
{
    const int64_t C = g->c, lanes = q * C, step = q * g->sw * C;
    CPVI ix[CP_POOL_PACK_KW];
    for (int64_t k = 0; k < kw; k++)
#if CP_F64
        ix[k] = cpv_index(g->pack_ix64[k]);
#else
        ix[k] = cpv_index(g->pack_ix32[k]);
#endif
    const CPV vdiv = cpv_set1(divisor);
    /* steps while their loads stay in the row: full stores while they stay
     * in the tile (the spill-over lanes are the next step's), then masked */
    int64_t steps = avail < 2 * CPV_W ? 0 : (avail - 2 * CPV_W) / step + 1;
    if (steps > cnt / q)
        steps = cnt / q;
    int64_t full = cnt * C < CPV_W ? 0 : (cnt * C - CPV_W) / lanes + 1;
    if (full > steps)
        full = steps;
    const CP_T *s = src;
    CP_T *d = out;
    int64_t t = 0;
    for (; t < full; t++, s += step, d += lanes) {
        CPV acc = CP_POOL_F(vpack_step)(s, ix, nrows, rstep, kw);
        if (!CP_POOL_MAX)
            acc = cpv_div(acc, vdiv);
        cpv_storeu(d, acc);
    }
    for (; t < steps; t++, s += step, d += lanes) {
        CPV acc = CP_POOL_F(vpack_step)(s, ix, nrows, rstep, kw);
        if (!CP_POOL_MAX)
            acc = cpv_div(acc, vdiv);
        cpv_storeu_n(d, acc, lanes);
    }
    int64_t o = steps * q;
#if CPV_MASKED
    /* The last pixels, whose two vectors would reach past the row: masked
     * loads (the lanes past it load 0 and feed only lanes not stored, as
     * every window of the tile lies in the row). */
    for (; o < cnt; o += q, s += step, d += lanes) {
        const int64_t left = avail - (s - src), px = cnt - o < q ? cnt - o : q;
        const int64_t n0 = left < CPV_W ? left : CPV_W;
        const int64_t n1 = left - CPV_W < 0 ? 0 : left - CPV_W < CPV_W ? left - CPV_W : CPV_W;
        CPV lo = cpv_loadu_n(s, n0), hi = cpv_loadu_n(s + CPV_W, n1);
        for (int64_t r = 1; r < nrows; r++) {
            lo = CP_POOL_F(vop)(lo, cpv_loadu_n(s + r * rstep, n0));
            hi = CP_POOL_F(vop)(hi, cpv_loadu_n(s + r * rstep + CPV_W, n1));
        }
        CPV acc = cpv_perm2(lo, ix[0], hi);
        for (int64_t k = 1; k < kw; k++)
            acc = CP_POOL_F(vop)(acc, cpv_perm2(lo, ix[k], hi));
        if (!CP_POOL_MAX)
            acc = cpv_div(acc, vdiv);
        cpv_storeu_n(d, acc, px * C);
    }
#endif
    return o;
}
static inline int64_t CP_POOL_F(vpacked)(CP_T *out, const CP_T *src, const cp_pool_geom *g,
                                         int64_t q, int64_t cnt, int64_t avail,
                                         int64_t nrows, int64_t rstep, CP_T divisor)
{
    if (nrows == 2 && g->kw == 2) /* 2x2 windows: the loops unrolled */
        return CP_POOL_F(vpacked_n)(out, src, g, q, cnt, avail, 2, rstep, 2, divisor);
    return CP_POOL_F(vpacked_n)(out, src, g, q, cnt, avail, nrows, rstep, g->kw, divisor);
}
#endif
/* The same outputs one at a time, for the pixels from o on. */
static inline void CP_POOL_F(spacked)(CP_T *out, const CP_T *src, const cp_pool_geom *g,
                                      int64_t o, int64_t cnt, int64_t nrows, int64_t rstep,
                                      CP_T divisor)
{
    const int64_t C = g->c;
    for (; o < cnt; o++)
        for (int64_t c = 0; c < C; c++) {
            CP_T acc = 0;
            for (int64_t k = 0; k < g->kw; k++) {
                const CP_T *s = src + (o * g->sw + k * g->dw) * C + c;
                CP_T col = s[0];
                for (int64_t r = 1; r < nrows; r++)
                    col = CP_POOL_F(op)(col, s[r * rstep]);
                acc = k == 0 ? col : CP_POOL_F(op)(acc, col);
            }
            out[o * C + c] = CP_POOL_MAX ? acc : acc / divisor;
        }
}
/* The divisor of every window of a tile of the average, or 0 when the
 * windows' divisors differ (padding, or ceil_mode's last windows). */
static inline CP_T CP_POOL_F(tile_divisor)(const cp_pool_geom *g, int64_t ih0, int64_t iw_start,
                                           int64_t span, int padded, int64_t nrows)
{
    const int64_t prows = (g->h + g->pb - ih0 < g->kh ? g->h + g->pb - ih0 : g->kh);
    const int inside = iw_start + span <= g->w + g->pr && prows == g->kh;
    if (g->divisor > 0 || (g->count_include_pad && inside) ||
        (!g->count_include_pad && !padded && nrows == g->kh))
        /* in double: KH * KW may pass int64 (huge windows of padding) */
        return (CP_T)(g->divisor > 0           ? (double)g->divisor
                      : g->count_include_pad ? (double)g->kh * (double)g->kw
                                             : (double)(nrows * g->kw));
    return 0;
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
    const int small_c = C * (int64_t)sizeof(CP_T) < CP_POOL_SMALL_PIXEL_BYTES;
#if CP_SIMD
    const int64_t pack_q = small_c && nrows > 0 ? CP_POOL_F(pack_q)(g) : 0;
#else
    const int64_t pack_q = 0;
#endif
    for (int64_t ow0 = 0; ow0 < g->ow; ow0 += g->tile) {
        const int64_t cnt = g->ow - ow0 < g->tile ? g->ow - ow0 : g->tile;
        const int64_t iw_start = ow0 * g->sw - g->pl;
        const int64_t span = (cnt - 1) * g->sw + ew;
        const int64_t j_lo = iw_start < 0 ? -iw_start : 0;
        const int64_t j_hi = g->w - iw_start < span ? g->w - iw_start : span;
        const int padded = j_lo > 0 || j_hi < span;
        CP_T *const out = g->stream ? stage : yrow + ow0 * C;
        const CP_T divisor =
            CP_POOL_MAX ? (CP_T)1 : CP_POOL_F(tile_divisor)(g, ih0, iw_start, span, padded, nrows);
        /* Windows of small pixels, all real cells, one divisor: the packed
         * pass, straight from the input rows. */
        if (pack_q > 0 && !padded && divisor != 0) {
            const CP_T *src = xrow + iw_start * C;
#if CP_SIMD
            const int64_t done = CP_POOL_F(vpacked)(out, src, g, pack_q, cnt,
                                                    (g->w - iw_start) * C, nrows, rstep, divisor);
#else
            const int64_t done = 0;
#endif
            CP_POOL_F(spacked)(out, src, g, done, cnt, nrows, rstep, divisor);
            if (g->stream)
                CP_ISA_FN(CP_CAT(cp_stream_copy, CP_SFX))(yrow + ow0 * C, stage, cnt * C);
            continue;
        }
        /* 1. vertical pass over the valid columns, padding around them; a
         * single valid row without padding is used where it lies. */
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
            if (divisor != 0) {
                for (int64_t q = 0; q < cnt * C; q++)
                    out[q] = out[q] / divisor;
            } else {
                const int64_t prows = (g->h + g->pb - ih0 < g->kh ? g->h + g->pb - ih0 : g->kh);
                for (int64_t o = 0; o < cnt; o++) {
                    const int64_t iw = (ow0 + o) * g->sw - g->pl;
                    const int64_t lo = iw < 0 ? -iw : 0;
                    const int64_t hi = g->w - iw < g->kw ? g->w - iw : g->kw;
                    const int64_t pcols = g->w + g->pr - iw < g->kw ? g->w + g->pr - iw : g->kw;
                    const CP_T d = (CP_T)(g->count_include_pad ? (double)prows * (double)pcols
                                                               : (double)(nrows * (hi - lo)));
                    for (int64_t c = 0; c < C; c++)
                        out[o * C + c] = out[o * C + c] / d;
                }
            }
        }
        if (g->stream)
            CP_ISA_FN(CP_CAT(cp_stream_copy, CP_SFX))(yrow + ow0 * C, stage, cnt * C);
    }
}

#undef CP_POOL_AHEAD
#undef CP_POOL_PACK_AHEAD
#undef CP_POOL_F
#undef CP_POOL_NAME
