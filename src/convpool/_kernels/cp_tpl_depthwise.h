/*
 * Template: the SIMD depthwise convolution of one output row (see
 * cp_dw_row_*_fn in cp_internal.h).  Include with CP_T, CP_SFX, CP_ISA and
 * the vector vocabulary; defines cp_dwconv2d_nhwc_<sfx>__<isa>.
 *
 * out[c] = sum over taps t = (kh, kw), in that order, of x[tap t, c] * w[t, c],
 * fused multiply-adds from +0, then + bias[c]: the order and rounding of the
 * GEMM path for the same geometry, so the two give identical bits.  Taps in
 * the padding read a row of zeros (0 * inf gives NaN, as in the reference).
 *
 * The columns whose taps all fall inside the row (most of them) go in blocks
 * of adjacent output pixels: one vector of channels at a time, the block's
 * accumulators in registers, each tap's weights loaded once for the block.
 * That keeps a chain of fused multiply-adds per pixel in flight where one
 * pixel alone has C / W of them.  For the common kernel widths and strides
 * (CP_DW_REUSE) the block walks each row of taps column by column, so an
 * input vector is loaded once and feeds every (pixel, tap) that reads it: a
 * 3-wide stride-1 row of 16 pixels loads 18 vectors for its 48 multiply-adds
 * where one load per multiply-add would take 48, and loads, not
 * multiply-adds, are what the per-tap loop runs out of.  The columns at the
 * left and right edges, and the channels past the last whole vector, go one
 * pixel at a time (masked where the ISA has masks, else one channel at a
 * time).  Every output keeps the order above in every path.
 */
#include "cp_tpl_dw_taps.h"

#define CP_DW_PIXEL CP_ISA_FN(CP_CAT(cp_dw_pixel, CP_SFX))
#define CP_DW_BLOCK CP_ISA_FN(CP_CAT(cp_dw_block, CP_SFX))
#define CP_DW_STORE CP_ISA_FN(CP_CAT(cp_dw_store, CP_SFX))
#define CP_DW_REUSE CP_ISA_FN(CP_CAT(cp_dw_reuse, CP_SFX))
#define CP_DW_INTERIOR CP_ISA_FN(CP_CAT(cp_dw_interior, CP_SFX))
/* The widest block of the reuse path: its accumulators and a row of weights
 * in half the registers or more (16 pixels with 32 registers, 8 with 16). */
#define CP_DW_BMAX (CPV_NREG / 2)

/* Channels [c, C) of one output pixel `out` whose taps read xp[t]. */
CP_ALWAYS_INLINE void CP_DW_PIXEL(const cp_conv_geom *g, const CP_T *const *xp, const CP_T *w,
                                  const CP_T *bias, CP_T *out, int64_t c, CPV lo, int stream)
{
    const int64_t C = g->c, taps = g->kh * g->kw;
    const int64_t W = CPV_W;
    for (; c + 4 * W <= C; c += 4 * W) {
        CPV a0 = cpv_zero(), a1 = cpv_zero(), a2 = cpv_zero(), a3 = cpv_zero();
        for (int64_t t = 0; t < taps; t++) {
            const CP_T *xt = xp[t] + c, *wt = w + t * C + c;
            a0 = cpv_fma(cpv_loadu(xt), cpv_loadu(wt), a0);
            a1 = cpv_fma(cpv_loadu(xt + W), cpv_loadu(wt + W), a1);
            a2 = cpv_fma(cpv_loadu(xt + 2 * W), cpv_loadu(wt + 2 * W), a2);
            a3 = cpv_fma(cpv_loadu(xt + 3 * W), cpv_loadu(wt + 3 * W), a3);
        }
        if (bias != NULL) {
            a0 = cpv_add(a0, cpv_loadu(bias + c));
            a1 = cpv_add(a1, cpv_loadu(bias + c + W));
            a2 = cpv_add(a2, cpv_loadu(bias + c + 2 * W));
            a3 = cpv_add(a3, cpv_loadu(bias + c + 3 * W));
        }
        if (stream) {
            cpv_stream(out + c, cpv_max(lo, a0));
            cpv_stream(out + c + W, cpv_max(lo, a1));
            cpv_stream(out + c + 2 * W, cpv_max(lo, a2));
            cpv_stream(out + c + 3 * W, cpv_max(lo, a3));
        } else {
            cpv_storeu(out + c, cpv_max(lo, a0));
            cpv_storeu(out + c + W, cpv_max(lo, a1));
            cpv_storeu(out + c + 2 * W, cpv_max(lo, a2));
            cpv_storeu(out + c + 3 * W, cpv_max(lo, a3));
        }
    }
    for (; c + W <= C; c += W) {
        CPV a0 = cpv_zero();
        for (int64_t t = 0; t < taps; t++)
            a0 = cpv_fma(cpv_loadu(xp[t] + c), cpv_loadu(w + t * C + c), a0);
        if (bias != NULL)
            a0 = cpv_add(a0, cpv_loadu(bias + c));
        if (stream)
            cpv_stream(out + c, cpv_max(lo, a0));
        else
            cpv_storeu(out + c, cpv_max(lo, a0));
    }
#if CPV_MASKED
    if (c < C) {
        const int64_t n = C - c;
        CPV a0 = cpv_zero();
        for (int64_t t = 0; t < taps; t++)
            a0 = cpv_fma(cpv_loadu_n(xp[t] + c, n), cpv_loadu_n(w + t * C + c, n), a0);
        if (bias != NULL)
            a0 = cpv_add(a0, cpv_loadu_n(bias + c, n));
        cpv_storeu_n(out + c, cpv_max(lo, a0), n);
    }
#else
    for (; c < C; c++) {
        CP_T a0 = 0;
        for (int64_t t = 0; t < taps; t++)
            a0 = cps_fma(xp[t][c], w[t * C + c], a0);
        a0 = bias != NULL ? a0 + bias[c] : a0;
        out[c] = g->relu && a0 < 0 ? (CP_T)0 : a0;
    }
#endif
}

/* The end of a block: + bias[c:c+W], then max(lo, .), into channels c of
 * the B pixels out[0:B] (C apart); the order of CP_DW_PIXEL's. */
CP_ALWAYS_INLINE void CP_DW_STORE(const int B, CPV *a, const CP_T *bias, int64_t c, int64_t C,
                                  CP_T *out, CPV lo, int stream)
{
    if (bias != NULL) {
        const CPV bv = cpv_loadu(bias + c);
#pragma GCC unroll 32
        for (int o = 0; o < B; o++)
            a[o] = cpv_add(a[o], bv);
    }
    if (stream) {
#pragma GCC unroll 32
        for (int o = 0; o < B; o++)
            cpv_stream(out + o * C + c, cpv_max(lo, a[o]));
    } else {
#pragma GCC unroll 32
        for (int o = 0; o < B; o++)
            cpv_storeu(out + o * C + c, cpv_max(lo, a[o]));
    }
}

/* The whole vectors of channels of B adjacent output pixels out[0:B] (C apart);
 * pixel o's tap t reads xp[t] + o * step[t].  B is a constant at every call,
 * so the accumulators are registers. */
CP_ALWAYS_INLINE void CP_DW_BLOCK(const int B, const cp_conv_geom *g, const CP_T *const *xp,
                                  const int64_t *step, const CP_T *w, const CP_T *bias,
                                  CP_T *out, CPV lo, int stream)
{
    const int64_t C = g->c, taps = g->kh * g->kw;
    const int64_t W = CPV_W;
    for (int64_t c = 0; c + W <= C; c += W) {
        CPV a[8];
#pragma GCC unroll 8
        for (int o = 0; o < B; o++)
            a[o] = cpv_zero();
        for (int64_t t = 0; t < taps; t++) {
            const CPV wt = cpv_loadu(w + t * C + c);
            const CP_T *xt = xp[t] + c;
            const int64_t st = step[t];
#pragma GCC unroll 8
            for (int o = 0; o < B; o++)
                a[o] = cpv_fma(cpv_loadu(xt + o * st), wt, a[o]);
        }
        CP_DW_STORE(B, a, bias, c, C, out, lo, stream);
    }
}

/* The whole vectors of channels of B adjacent output pixels out[0:B] (C
 * apart), for a kernel KW wide at horizontal stride SW and dilation DW, all
 * three constants at every call: row kh of pixel o's taps reads input columns
 * xr[kh] + (o * SW + kw * DW) * cs[kh] (cs[kh] = C, or 0 for a row of zero
 * padding).  Each such column is loaded once and multiplied into every pixel
 * that reads it; pixel o meets its taps kw = 0, 1, ... in increasing column
 * order, so its order is the per-tap loop's. */
CP_ALWAYS_INLINE void CP_DW_REUSE(const int B, const int KW, const int SW, const int DW,
                                  const cp_conv_geom *g, const CP_T *const *xr,
                                  const int64_t *cs, const CP_T *w, const CP_T *bias, CP_T *out,
                                  CPV lo, int stream)
{
    const int64_t C = g->c, W = CPV_W;
    const int span = (B - 1) * SW + (KW - 1) * DW + 1; /* input columns per row of taps */
    for (int64_t c = 0; c + W <= C; c += W) {
        CPV a[CP_DW_BMAX];
#pragma GCC unroll 32
        for (int o = 0; o < B; o++)
            a[o] = cpv_zero();
        for (int64_t kh = 0; kh < g->kh; kh++) {
            const CP_T *xk = xr[kh] + c;
            const int64_t s = cs[kh];
            CPV wk[8];
#pragma GCC unroll 8
            for (int kw = 0; kw < KW; kw++)
                wk[kw] = cpv_loadu(w + (kh * KW + kw) * C + c);
#pragma GCC unroll 64
            for (int j = 0; j < span; j++) {
                CPV v = cpv_loadu(xk + j * s);
                cpv_reg(v);
#pragma GCC unroll 8
                for (int kw = 0; kw < KW; kw++) {
                    const int r = j - kw * DW; /* pixel r / SW reads column j at tap kw */
                    if (r >= 0 && r % SW == 0 && r / SW < B)
                        a[r / SW] = cpv_fma(v, wk[kw], a[r / SW]);
                }
            }
        }
        CP_DW_STORE(B, a, bias, c, C, out, lo, stream);
    }
}

/* Interior output columns [ow, ow_hi) of one row through the reuse blocks of
 * CP_DW_BMAX, then half and a quarter as many pixels, for one (KW, SW, DW);
 * returns the first column not done (fewer than a quarter block remain). */
CP_ALWAYS_INLINE int64_t CP_DW_INTERIOR(const int KW, const int SW, const int DW,
                                        const cp_conv_geom *g, const CP_T *const *xp,
                                        const CP_T *zeros, const CP_T *w, const CP_T *bias,
                                        CP_T *y_row, int64_t ow, int64_t ow_hi, CPV lo,
                                        int stream)
{
    const int64_t C = g->c;
    const CP_T *xr[CP_MAX_SEG];
    int64_t cs[CP_MAX_SEG];
    /* xp: the taps of pixel ow; row kh's first tap, and where the next column is */
    for (int64_t kh = 0; kh < g->kh; kh++) {
        xr[kh] = xp[kh * KW];
        cs[kh] = xr[kh] == zeros ? 0 : C;
    }
    const int bs[3] = {CP_DW_BMAX, CP_DW_BMAX / 2, CP_DW_BMAX / 4};
#pragma GCC unroll 3
    for (int i = 0; i < 3; i++) {
        const int B = bs[i];
        while (ow_hi - ow >= B) {
            /* The bottom row of taps is the one the rows above have not read
             * yet (the others are in L2): fetch the next block's part of it
             * while this block computes. */
            const int64_t last = g->kh - 1;
            if (cs[last] != 0) {
                const char *next = (const char *)(xr[last] + B * SW * C);
                for (int64_t q = 0; q < B * SW * C * (int64_t)sizeof(CP_T); q += 64)
                    __builtin_prefetch(next + q, 0, 3);
            }
            CP_DW_REUSE(B, KW, SW, DW, g, xr, cs, w, bias, y_row + ow * C, lo, stream);
            for (int64_t kh = 0; kh < g->kh; kh++)
                xr[kh] += B * SW * cs[kh];
            ow += B;
            if (i > 0)
                break; /* a half or a quarter block goes at most once */
        }
    }
    return ow;
}

static void CP_ISA_FN(CP_CAT(cp_dwconv2d_nhwc, CP_SFX))(const cp_conv_geom *g, const CP_T *x,
                                                 const CP_T *w, const CP_T *bias, CP_T *y,
                                                 int64_t row, const CP_T *zeros)
{
    const int64_t C = g->c, taps = g->kh * g->kw;
    const int64_t W = CPV_W, C_whole = C - C % W;
    CP_ASSERT(taps <= CP_MAX_SEG && g->groups == C && g->oc == C);
    /* ReLU as max(lo, v): lo = 0, or -inf (a no-op) without it; a NaN v stays v */
    const CPV lo = g->relu ? cpv_zero() : cpv_set1(-(CP_T)INFINITY);
    /* Non-temporal stores for outputs past the caches (cp_conv_set_output:
     * y aligned and C a whole number of cache lines, so every store is
     * aligned and no tail is left). */
    const int stream = (int)g->stream;
    CP_ASSERT(!stream ||
              ((uintptr_t)y % CP_ALIGN == 0 && (C * (int64_t)sizeof(CP_T)) % CP_ALIGN == 0));
    const int64_t n = row / g->oh, oh = row % g->oh;
    /* Columns [ow_lo, ow_hi) have every tap inside the row (cp_conv_plan) */
    const int64_t ow_lo = g->ow_lo, ow_hi = g->ow_hi;
    CP_ASSERT(0 <= ow_lo && ow_lo <= ow_hi && ow_hi <= g->ow);
    /* the (kernel width, stride, dilation) with a reuse path: 0 if none */
    const int reuse = g->dw != 1 ? 0
                      : g->kw == 3 ? (g->sw == 1 ? 1 : g->sw == 2 ? 2 : 0)
                      : g->kw == 5 ? (g->sw == 1 ? 3 : g->sw == 2 ? 4 : 0)
                                   : 0;
    CP_T *const y_row = y + row * g->ow * C;
    const CP_T *xp[CP_MAX_SEG];
    int64_t step[CP_MAX_SEG];
    for (int64_t ow = 0; ow < g->ow;) {
        CP_DW_TAPS(g, x, n, oh, ow, zeros, xp);
        if (ow == ow_lo && reuse != 0 && C_whole > 0 && ow_hi - ow >= CP_DW_BMAX / 4) {
            const int64_t from = ow;
            if (reuse == 1)
                ow = CP_DW_INTERIOR(3, 1, 1, g, xp, zeros, w, bias, y_row, ow, ow_hi, lo, stream);
            else if (reuse == 2)
                ow = CP_DW_INTERIOR(3, 2, 1, g, xp, zeros, w, bias, y_row, ow, ow_hi, lo, stream);
            else if (reuse == 3)
                ow = CP_DW_INTERIOR(5, 1, 1, g, xp, zeros, w, bias, y_row, ow, ow_hi, lo, stream);
            else
                ow = CP_DW_INTERIOR(5, 2, 1, g, xp, zeros, w, bias, y_row, ow, ow_hi, lo, stream);
            if (C_whole < C) { /* the channels past the last whole vector */
                for (int64_t o = from; o < ow; o++) {
                    CP_DW_TAPS(g, x, n, oh, o, zeros, xp);
                    CP_DW_PIXEL(g, xp, w, bias, y_row + o * C, C_whole, lo, stream);
                }
            }
            continue;
        }
        CP_T *const out = y_row + ow * C;
        if (ow < ow_lo || ow >= ow_hi) {
            CP_DW_PIXEL(g, xp, w, bias, out, 0, lo, stream);
            ow++;
            continue;
        }
        /* inside: a tap's row is either in the image (the next pixel is
         * sw pixels on) or all padding (the same zeros for every pixel) */
        for (int64_t t = 0; t < taps; t++)
            step[t] = xp[t] == zeros ? 0 : g->sw * C;
        const int64_t left = ow_hi - ow;
        const int B = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        if (B == 8)
            CP_DW_BLOCK(8, g, xp, step, w, bias, out, lo, stream);
        else if (B == 4)
            CP_DW_BLOCK(4, g, xp, step, w, bias, out, lo, stream);
        else if (B == 2)
            CP_DW_BLOCK(2, g, xp, step, w, bias, out, lo, stream);
        else
            CP_DW_BLOCK(1, g, xp, step, w, bias, out, lo, stream);
        if (C_whole < C) {
            for (int o = 0; o < B; o++) {
                const CP_T *xo[CP_MAX_SEG];
                for (int64_t t = 0; t < taps; t++)
                    xo[t] = xp[t] + o * step[t];
                CP_DW_PIXEL(g, xo, w, bias, out + o * C, C_whole, lo, stream);
            }
        }
        ow += B;
    }
    if (stream)
        cpv_sfence();
}

#undef CP_DW_BMAX
#undef CP_DW_INTERIOR
#undef CP_DW_REUSE
#undef CP_DW_BLOCK
#undef CP_DW_STORE
#undef CP_DW_PIXEL
#undef CP_DW_TAPS
