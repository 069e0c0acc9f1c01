/*
 * Template: the input pointer of every tap of one depthwise output pixel, for
 * the depthwise kernels of every ISA (cp_tpl_depthwise.h, cp_tpl_baseline.h).
 * Include with CP_T, CP_SFX and CP_ISA; defines CP_DW_TAPS, undefined by the
 * including template.
 */
#define CP_DW_TAPS CP_ISA_FN(CP_CAT(cp_dw_taps, CP_SFX))

/* Input pointer of every tap of output pixel (n, oh, ow); `zeros` in the padding. */
static inline void CP_DW_TAPS(const cp_conv_geom *g, const CP_T *x, int64_t n, int64_t oh,
                              int64_t ow, const CP_T *zeros, const CP_T **xp)
{
    const int64_t ih0 = oh * g->sh - g->pt, iw0 = ow * g->sw - g->pl;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        const int64_t ih = ih0 + kh * g->dh;
        for (int64_t kw = 0; kw < g->kw; kw++) {
            const int64_t iw = iw0 + kw * g->dw;
            xp[kh * g->kw + kw] = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w
                                      ? x + ((n * g->h + ih) * g->w + iw) * g->c
                                      : zeros;
        }
    }
}
