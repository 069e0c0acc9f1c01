/*
 * Template: the direct weight gradient of a conv with few channels (a grey
 * first layer: Cg <= CP_WGRAD_DIRECT_MAX_CG, C_out <= CP_WGRAD_DIRECT_MAX_OC,
 * one group), for one ISA and dtype.  Include with CP_T, CP_SFX, CP_ISA and the vector vocabulary;
 * defines cp_wgrad_direct_<sfx>__<isa> (see cp_wgrad_*_fn in cp_internal.h).
 *
 * There K = KH * KW * Cg is small, so the GEMM path's patches (one K-wide row
 * per output pixel, panels padded to NR) cost more than the products.  Here
 * the output channels are the vector lanes and each tap's accumulator is one
 * vector: for a block of up to CP_WGRAD_TAPS taps (the ISA's: 12 of AVX2's
 * 16 registers, 24 of AVX-512's 32), every pixel of the range
 * in order adds x[tap] * grad_out[pixel, oc] (one FMA per tap; a tap in the
 * padding reads 0, so a NaN or inf gradient still propagates as in the
 * reference).  Each (tap, oc) sum starts from +0 and runs over the pixels in
 * ascending order whatever the vector width, so every SIMD variant gives the
 * same bits.
 */
/* Every loop over a pass's CP_WGRAD_TAPS slots is unrolled, so that the
 * accumulators are registers: GCC 12 left the 24-slot loops of AVX-512 rolled,
 * with acc[] on the stack (a load, FMA and store per tap and pixel): a
 * (64, 32, 32, 1) -> 32 weight gradient took 1.71 ms rolled, 1.04 ms
 * unrolled (2-core Xeon, AVX-512). */
#define CP_UNROLL_TAPS _Pragma("GCC unroll 24")

/* Slot t of a pass from tap t0: tap k = t0 + t (t0 itself for the slots past
 * nt, which are computed and dropped), k over (kh, kw, c < cg), and its
 * offsets: rows and columns into the input, elements from the window's
 * corner (the channel c of a C-channel pixel; cg = 1 reads the lane's own). */
static inline void CP_ISA_FN(CP_CAT(wgrad_taps, CP_SFX))(const cp_conv_geom *g, int64_t t0,
                                                  int64_t nt, int64_t cg, int64_t *tkh,
                                                  int64_t *tkw, int64_t *toff)
{
    const int64_t row_elems = g->w * g->c;
    for (int64_t t = 0; t < CP_WGRAD_TAPS; t++) {
        const int64_t k = t0 + (t < nt ? t : 0);
        tkh[t] = k / (g->kw * cg) * g->dh;
        tkw[t] = k / cg % g->kw * g->dw;
        toff[t] = tkh[t] * row_elems + tkw[t] * g->c + k % cg;
    }
}

static void CP_ISA_FN(CP_CAT(cp_wgrad_direct, CP_SFX))(const cp_convbwd_geom *b, const CP_T *gy,
                                                const CP_T *x, CP_T *partial, int64_t begin,
                                                int64_t end)
{
    const cp_conv_geom *g = &b->f;
    const int64_t K = g->k, OC = g->oc, C = g->c, pixels = g->n * g->oh * g->ow;
    const int64_t row_elems = g->w * C, image_elems = g->h * row_elems;
    CP_ASSERT(g->groups == 1 && K == g->kh * g->kw * C);
    for (int64_t oc0 = 0; oc0 < OC; oc0 += CPV_W) {
        const int64_t nl = OC - oc0 < CPV_W ? OC - oc0 : CPV_W;
        for (int64_t t0 = 0; t0 < K; t0 += CP_WGRAD_TAPS) {
            const int64_t nt = K - t0 < CP_WGRAD_TAPS ? K - t0 : CP_WGRAD_TAPS;
            int64_t tkh[CP_WGRAD_TAPS], tkw[CP_WGRAD_TAPS], toff[CP_WGRAD_TAPS];
            CPV acc[CP_WGRAD_TAPS];
            CP_ISA_FN(CP_CAT(wgrad_taps, CP_SFX))(g, t0, nt, C, tkh, tkw, toff);
            CP_UNROLL_TAPS
            for (int64_t t = 0; t < CP_WGRAD_TAPS; t++)
                acc[t] = cpv_zero();
            int64_t n = begin / (g->oh * g->ow), oh = begin / g->ow % g->oh, ow = begin % g->ow;
            for (int64_t p = begin; p < end; p++) {
                const CP_T *const gp = gy + p * OC + oc0;
                /* Lanes past OC read the next pixels' gradient (never stored); */
                /* near the array's end an n-lane load instead.                  */
                const CPV gv = p * OC + oc0 + CPV_W <= pixels * OC ? cpv_loadu(gp)
                                                                   : cpv_loadu_n(gp, nl);
                const int64_t ih0 = oh * g->sh - g->pt, iw0 = ow * g->sw - g->pl;
                const CP_T *const xo = x + n * image_elems + ih0 * row_elems + iw0 * C;
                if (ih0 >= 0 && iw0 >= 0 && ih0 + (g->kh - 1) * g->dh < g->h &&
                    iw0 + (g->kw - 1) * g->dw < g->w) {
                    /* every tap slot: those past nt repeat tap t0 and are dropped */
                    CP_UNROLL_TAPS
                    for (int64_t t = 0; t < CP_WGRAD_TAPS; t++)
                        acc[t] = cpv_fma(cpv_bcast(xo + toff[t]), gv, acc[t]);
                } else { /* a fixed trip count too: acc stays in registers */
                    CP_UNROLL_TAPS
                    for (int64_t t = 0; t < CP_WGRAD_TAPS; t++) {
                        const int64_t ih = ih0 + tkh[t], iw = iw0 + tkw[t];
                        const CP_T v = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w
                                           ? xo[toff[t]]
                                           : (CP_T)0;
                        acc[t] = cpv_fma(cpv_set1(v), gv, acc[t]);
                    }
                }
                if (++ow == g->ow) {
                    ow = 0;
                    if (++oh == g->oh) {
                        oh = 0;
                        n++;
                    }
                }
            }
            /* partial is dW^T: [OC][K].  Every slot stored with a fixed trip */
            /* count, so no accumulator is indexed at run time (they stay in  */
            /* registers through the pixel loop).                              */
            CP_T lanes[CP_WGRAD_TAPS][CPV_W];
            CP_UNROLL_TAPS
            for (int64_t t = 0; t < CP_WGRAD_TAPS; t++)
                cpv_storeu(lanes[t], acc[t]);
            for (int64_t t = 0; t < nt; t++)
                for (int64_t j = 0; j < nl; j++)
                    partial[(oc0 + j) * K + t0 + t] = lanes[t][j];
        }
    }
}

/*
 * The direct weight gradient of a depthwise conv (groups = C_in = C_out):
 * channel c's taps see only channel c, so the channels are the lanes of both
 * operands, and each tap's accumulator is x[pixel + tap] * grad_out[pixel]
 * summed over the pixels in order, lane by lane (the same bits for any
 * vector width).  Taps in the padding read 0.
 */
static void CP_ISA_FN(CP_CAT(cp_wgrad_depthwise, CP_SFX))(const cp_convbwd_geom *b,
                                                   const CP_T *gy, const CP_T *x,
                                                   CP_T *partial, int64_t begin, int64_t end)
{
    const cp_conv_geom *g = &b->f;
    const int64_t K = g->k, C = g->c;
    const int64_t row_elems = g->w * C, image_elems = g->h * row_elems;
    CP_ASSERT(g->groups == C && g->oc == C && K == g->kh * g->kw);
    for (int64_t c0 = 0; c0 < C; c0 += CPV_W) {
        const int64_t nl = C - c0 < CPV_W ? C - c0 : CPV_W;
        for (int64_t t0 = 0; t0 < K; t0 += CP_WGRAD_TAPS) {
            const int64_t nt = K - t0 < CP_WGRAD_TAPS ? K - t0 : CP_WGRAD_TAPS;
            int64_t tkh[CP_WGRAD_TAPS], tkw[CP_WGRAD_TAPS], toff[CP_WGRAD_TAPS];
            CPV acc[CP_WGRAD_TAPS];
            CP_ISA_FN(CP_CAT(wgrad_taps, CP_SFX))(g, t0, nt, 1, tkh, tkw, toff);
            CP_UNROLL_TAPS
            for (int64_t t = 0; t < CP_WGRAD_TAPS; t++)
                acc[t] = cpv_zero();
            int64_t n = begin / (g->oh * g->ow), oh = begin / g->ow % g->oh, ow = begin % g->ow;
            for (int64_t p = begin; p < end; p++) {
                const CP_T *const gp = gy + p * C + c0;
                const CPV gv = nl == CPV_W ? cpv_loadu(gp) : cpv_loadu_n(gp, nl);
                const int64_t ih0 = oh * g->sh - g->pt, iw0 = ow * g->sw - g->pl;
                const CP_T *const xo = x + n * image_elems + ih0 * row_elems + iw0 * C + c0;
                if (nl == CPV_W && ih0 >= 0 && iw0 >= 0 && ih0 + (g->kh - 1) * g->dh < g->h &&
                    iw0 + (g->kw - 1) * g->dw < g->w) {
                    CP_UNROLL_TAPS
                    for (int64_t t = 0; t < CP_WGRAD_TAPS; t++)
                        acc[t] = cpv_fma(cpv_loadu(xo + toff[t]), gv, acc[t]);
                } else { /* a fixed trip count: acc stays in registers */
                    CP_UNROLL_TAPS
                    for (int64_t t = 0; t < CP_WGRAD_TAPS; t++) {
                        const int64_t ih = ih0 + tkh[t], iw = iw0 + tkw[t];
                        const int inside = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w;
                        const CPV v = !inside        ? cpv_zero()
                                      : nl == CPV_W ? cpv_loadu(xo + toff[t])
                                                    : cpv_loadu_n(xo + toff[t], nl);
                        acc[t] = cpv_fma(v, gv, acc[t]);
                    }
                }
                if (++ow == g->ow) {
                    ow = 0;
                    if (++oh == g->oh) {
                        oh = 0;
                        n++;
                    }
                }
            }
            CP_T lanes[CP_WGRAD_TAPS][CPV_W]; /* partial is [C][K] */
            CP_UNROLL_TAPS
            for (int64_t t = 0; t < CP_WGRAD_TAPS; t++)
                cpv_storeu(lanes[t], acc[t]);
            for (int64_t t = 0; t < nt; t++)
                for (int64_t j = 0; j < nl; j++)
                    partial[(c0 + j) * K + t0 + t] = lanes[t][j];
        }
    }
}

#undef CP_UNROLL_TAPS
