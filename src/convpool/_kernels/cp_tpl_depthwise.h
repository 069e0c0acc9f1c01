/*
 * Template: the SIMD depthwise convolution of one output row (see
 * cp_dw_row_*_fn in cp_internal.h).  Include with CP_T, CP_SFX, CP_ISA and
 * the vector vocabulary; defines cp_dwconv2d_nhwc_<sfx>__<isa>.
 *
 * out[c] = sum over taps t = (kh, kw), in that order, of x[tap t, c] * w[t, c],
 * fused multiply-adds from +0, then + bias[c]: the order and rounding of the
 * GEMM path for the same geometry, so the two give identical bits.  Taps in
 * the padding read a row of zeros (0 * inf gives NaN, as in the reference).
 * Each block of 4 vectors of channels keeps its accumulators in registers over
 * every tap; then single vectors; then the tail, masked where the ISA has
 * masks, else one channel at a time (the same fused arithmetic).
 */
#include "cp_tpl_dw_taps.h"

static void CP_ISA_FN(CP_CAT(cp_dwconv2d_nhwc, CP_SFX))(const cp_conv_geom *g, const CP_T *x,
                                                 const CP_T *w, const CP_T *bias, CP_T *y,
                                                 int64_t row, const CP_T *zeros)
{
    const int64_t C = g->c, taps = g->kh * g->kw;
    const int64_t W = CPV_W;
    CP_ASSERT(taps <= CP_MAX_SEG && g->groups == C && g->oc == C);
    /* ReLU as max(lo, v): lo = 0, or -inf (a no-op) without it; a NaN v stays v */
    const CPV lo = g->relu ? cpv_zero() : cpv_set1(-(CP_T)INFINITY);
    /* Non-temporal stores for outputs past the caches (cp_conv_set_output:
     * y aligned and C a whole number of cache lines, so every store is
     * aligned and no tail is left). */
    const int stream = (int)g->stream;
    CP_ASSERT(!stream ||
              ((uintptr_t)y % CP_ALIGN == 0 && (C * (int64_t)sizeof(CP_T)) % CP_ALIGN == 0));
    const CP_T *xp[CP_MAX_SEG];
    for (int64_t ow = 0; ow < g->ow; ow++) {
        CP_T *const out = y + (row * g->ow + ow) * C;
        CP_DW_TAPS(g, x, row / g->oh, row % g->oh, ow, zeros, xp);
        int64_t c = 0;
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
    if (stream)
        cpv_sfence();
}

#undef CP_DW_TAPS
