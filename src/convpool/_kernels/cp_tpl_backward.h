/*
 * Template: the backward passes of conv2d and the pools for one dtype (see
 * cp_backward.c for the algorithms).  Included by cp_backward.c with CP_T and
 * CP_SFX set; the micro-kernels are the selected ISA's (cp_active).
 */
#define CP_TILE CP_CAT(cp_tile, CP_SFX)

/* Bdx[((kh * groups + grp) * dx_panels + p) * OCg + oc][j] = W[kh, kw, c, grp * OCg + oc]
 * with (kw, c) = p * NR + j (zero beyond KW * Cg): W[kh]^T per group, in panels. */
void CP_CAT(cp_convbwd_pack_dx, CP_SFX)(const cp_convbwd_geom *b, const CP_T *kernel, CP_T *packed)
{
    const cp_conv_geom *g = &b->f;
    const int64_t NR = b->dx_nr;
    CP_ASSERT(NR == CP_TILE(cp_active, b->dx_gemm)->nr);
    for (int64_t kh = 0; kh < g->kh; kh++)
        for (int64_t grp = 0; grp < g->groups; grp++)
            for (int64_t p = 0; p < b->dx_panels; p++)
                for (int64_t oc = 0; oc < g->ocg; oc++) {
                    CP_T *dst = packed +
                             (((kh * g->groups + grp) * b->dx_panels + p) * g->ocg + oc)
                                 * NR;
                    for (int64_t j = 0; j < NR; j++) {
                        const int64_t col = p * NR + j;
                        dst[j] = col < b->kwcg
                                     ? kernel[(kh * b->kwcg + col) * g->oc +
                                              grp * g->ocg + oc]
                                     : (CP_T)0;
                    }
                }
}

void CP_CAT(cp_conv2d_bwd_data_row, CP_SFX)(const cp_convbwd_geom *b, const CP_T *gy,
                                     const CP_T *packed, const CP_T *bias, CP_T *gx,
                                     int64_t row, CP_T *dcol)
{
    const cp_conv_geom *g = &b->f;
    const int64_t NR = b->dx_nr;
    const int64_t n = row / g->h, ih = row % g->h;
    CP_T *const gx_row = gx + row * g->w * g->c;
    memset(gx_row, 0, (size_t)(g->w * g->c) * sizeof(CP_T));
    for (int64_t grp = 0; grp < g->groups; grp++)
        for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t t = ih + g->pt - kh * g->dh;
            if (t < 0 || t % g->sh != 0 || t / g->sh >= g->oh)
                continue;
            const int64_t oh = t / g->sh;
            const CP_T *const gy_row = gy + (n * g->oh + oh) * g->ow * g->oc + grp * g->ocg;
            if (g->cg % NR == 0) {
                /* Every panel lies within one kw: its GEMM adds straight into
                 * the row (CP_STORE_ACCUM), pixel ow to column ow*sw - pl + kw*dw
                 * (ldc = sw * C).  kw descending gives each column its terms in
                 * the order of the col2im below (ow ascending), so both ways
                 * give the same bits. */
                const int64_t per_kw = g->cg / NR;
                for (int64_t kw = g->kw - 1; kw >= 0; kw--) {
                    const int64_t off = kw * g->dw - g->pl; /* column of pixel 0 */
                    const int64_t lo = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
                    int64_t hi = g->w - 1 - off < 0 ? 0 : (g->w - 1 - off) / g->sw + 1;
                    if (hi > g->ow)
                        hi = g->ow;
                    if (hi <= lo)
                        continue;
                    const CP_T *seg[1] = {gy_row + lo * g->oc};
                    CP_T *const dst = gx_row + (lo * g->sw + off) * g->c + grp * g->cg;
                    for (int64_t q = 0; q < per_kw; q++)
                        CP_TILE(cp_active, b->dx_gemm)->fn(hi - lo, 1, seg, g->oc, g->ocg,
                             packed + ((kh * g->groups + grp) * b->dx_panels + kw * per_kw + q) *
                                          g->ocg * NR,
                             dst + q * NR, g->sw * g->c, NR, NULL, CP_STORE_ACCUM);
                }
                continue;
            }
            for (int64_t ow0 = 0; ow0 < g->ow; ow0 += b->dx_tile) {
                const int64_t m = g->ow - ow0 < b->dx_tile ? g->ow - ow0 : b->dx_tile;
                const CP_T *seg[1] = {gy_row + ow0 * g->oc};
                for (int64_t p = 0; p < b->dx_panels; p++) {
                    const int64_t nr =
                        b->kwcg - p * NR < NR ? b->kwcg - p * NR : NR;
                    CP_TILE(cp_active, b->dx_gemm)->fn(m, 1, seg, g->oc, g->ocg,
                         packed + ((kh * g->groups + grp) * b->dx_panels + p) * g->ocg *
                                      NR,
                         dcol + p * NR, b->kwcg, nr, NULL, 0);
                }
                /* col2im of this tile into the row, ow then kw ascending */
                for (int64_t i = 0; i < m; i++) {
                    const int64_t iw0 = (ow0 + i) * g->sw - g->pl;
                    for (int64_t kw = 0; kw < g->kw; kw++) {
                        const int64_t iw = iw0 + kw * g->dw;
                        if (iw < 0 || iw >= g->w)
                            continue;
                        CP_T *CP_RESTRICT dst = gx_row + iw * g->c + grp * g->cg;
                        const CP_T *CP_RESTRICT src = dcol + i * b->kwcg + kw * g->cg;
                        for (int64_t c = 0; c < g->cg; c++)
                            dst[c] = dst[c] + src[c];
                    }
                }
            }
        }
    /* conv2d_transpose: the bias after the sum, then the ReLU (NaN kept), as the
     * row is still in cache. */
    if (bias != NULL || b->dx_relu)
        for (int64_t iw = 0; iw < g->w; iw++) {
            CP_T *CP_RESTRICT dst = gx_row + iw * g->c;
            if (bias != NULL)
                for (int64_t c = 0; c < g->c; c++)
                    dst[c] = dst[c] + bias[c];
            if (b->dx_relu)
                for (int64_t c = 0; c < g->c; c++)
                    dst[c] = dst[c] < 0 ? (CP_T)0 : dst[c];
        }
}

void CP_CAT(cp_conv2d_bwd_weight_chunk, CP_SFX)(const cp_convbwd_geom *b, const CP_T *gy,
                                         const CP_T *x, CP_T *partial, int64_t chunk,
                                         CP_T *scratch)
{
    const cp_conv_geom *g = &b->f;
    const int64_t pixels = g->n * g->oh * g->ow, K = g->k, NR = b->dw_nr;
    const int64_t kpanels = (K + NR - 1) / NR;
    const int64_t begin = chunk * b->chunk;
    const int64_t end = begin + b->chunk < pixels ? begin + b->chunk : pixels;
    CP_T *const patch = scratch;                                  /* kpanels x NR */
    CP_T *const bpack = patch + kpanels * NR;                   /* kpanels x tile x NR */
    CP_T *const gt = bpack + kpanels * b->wt_tile * NR;         /* OCg x tile */
    CP_T *const prod = gt + lines(g->ocg * b->wt_tile, sizeof(CP_T)); /* OCg x NR */
    CP_T *const bias_part = partial + K * g->oc;
    memset(partial, 0, (size_t)(K * g->oc + g->oc) * sizeof(CP_T));
    const CP_CAT(CP_CAT(cp_wgrad, CP_SFX), fn) direct =
        b->dw_direct == CP_WGRAD_FEW_CHANNELS ? cp_active->CP_CAT(wgrad_direct, CP_SFX)
        : b->dw_direct == CP_WGRAD_DEPTHWISE  ? cp_active->CP_CAT(wgrad_depthwise, CP_SFX)
                                              : NULL;
    if (direct != NULL) {
        direct(b, gy, x, partial, begin, end);
        for (int64_t p = begin; p < end; p++) /* the bias, pixels in order */
            for (int64_t oc = 0; oc < g->oc; oc++)
                bias_part[oc] = bias_part[oc] + gy[p * g->oc + oc];
        return;
    }
    memset(patch, 0, (size_t)(kpanels * NR) * sizeof(CP_T)); /* the tail stays zero */
    if (kpanels == 1) /* ... and so do the panel's columns past K */
        memset(bpack, 0, (size_t)(b->wt_tile * NR) * sizeof(CP_T));
    for (int64_t p0 = begin; p0 < end; p0 += b->wt_tile) {
        const int64_t cnt = end - p0 < b->wt_tile ? end - p0 : b->wt_tile;
        for (int64_t grp = 0; grp < g->groups; grp++) {
            /* dW_grp^CP_T (OCg x K) += grad_out_tile^CP_T @ patches: A = grad_out^CP_T */
            /* (OCg rows over the tile's pixels), B = the patches in panels.   */
            if (kpanels == 1) { /* the panel is the tile's patches, rows NR apart */
                cp_gather_patches(g, (const char *)x, sizeof(CP_T), p0, cnt, grp,
                                  (char *)bpack, NR);
            } else {
                for (int64_t i = 0; i < cnt; i++) {
                    /* one patch (zero padded to whole panels), then its panels */
                    cp_gather_patches(g, (const char *)x, sizeof(CP_T), p0 + i, 1, grp,
                                      (char *)patch, K);
                    for (int64_t pk = 0; pk < kpanels; pk++)
                        memcpy(bpack + (pk * cnt + i) * NR, patch + pk * NR,
                               NR * sizeof(CP_T));
                }
            }
            cp_active->CP_CAT(transpose, CP_SFX)(gy + p0 * g->oc + grp * g->ocg, cnt, g->ocg,
                                                 g->oc, gt, cnt);
            const CP_T *seg[1] = {gt};
            for (int64_t pk = 0; pk < kpanels; pk++) {
                const int64_t nr = K - pk * NR < NR ? K - pk * NR : NR;
                CP_TILE(cp_active, b->dw_gemm)->fn(g->ocg, 1, seg, cnt, cnt, bpack + pk * cnt * NR, prod, NR, nr,
                     NULL, 0);
                for (int64_t oc = 0; oc < g->ocg; oc++) {
                    CP_T *CP_RESTRICT dst = partial + (grp * g->ocg + oc) * K + pk * NR;
                    const CP_T *CP_RESTRICT src = prod + oc * NR;
                    for (int64_t j = 0; j < nr; j++)
                        dst[j] = dst[j] + src[j];
                }
            }
        }
        for (int64_t i = 0; i < cnt; i++)
            for (int64_t oc = 0; oc < g->oc; oc++)
                bias_part[oc] = bias_part[oc] + gy[(p0 + i) * g->oc + oc];
    }
}

/* gk[k, :] (and, for k == 0, gb) = the chunk partials summed in chunk order; */
/* a chunk's partial holds dW transposed, [OC][K], then the bias.           */
void CP_CAT(cp_conv2d_bwd_weight_reduce, CP_SFX)(const cp_convbwd_geom *b, const CP_T *partials,
                                          CP_T *gk, CP_T *gb, int64_t k)
{
    const int64_t oc_n = b->f.oc, K = b->f.k, stride = cp_convbwd_partial_elems(b);
    if (gk != NULL) {
        CP_T *CP_RESTRICT dst = gk + k * oc_n;
        for (int64_t oc = 0; oc < oc_n; oc++)
            dst[oc] = partials[oc * K + k];
        for (int64_t ch = 1; ch < b->chunks; ch++) {
            const CP_T *CP_RESTRICT src = partials + ch * stride + k;
            for (int64_t oc = 0; oc < oc_n; oc++)
                dst[oc] = dst[oc] + src[oc * K];
        }
    }
    if (gb != NULL && k == 0) {
        const int64_t off = K * oc_n;
        memcpy(gb, partials + off, (size_t)oc_n * sizeof(CP_T));
        for (int64_t ch = 1; ch < b->chunks; ch++)
            for (int64_t oc = 0; oc < oc_n; oc++)
                gb[oc] = gb[oc] + partials[ch * stride + off + oc];
    }
}


void CP_CAT(cp_maxpool2d_bwd_unit, CP_SFX)(const cp_pool_geom *g, const CP_T *x, const CP_T *gy,
                                    CP_T *gx, int64_t unit, void *scratch)
{
    const int64_t C = g->c, rs = g->w * C;
    int64_t n, lo, hi, oh_lo, oh_hi;
    int64_t *CP_RESTRICT const at = (int64_t *)scratch; /* 8-byte aligned first */
    CP_T *CP_RESTRICT const m = (CP_T *)(at + C);
    pool_unit_rows(g, unit, &n, &lo, &hi, &oh_lo, &oh_hi);
    const CP_T *const xn = x + n * g->h * rs;
    CP_T *const gxn = gx + n * g->h * rs;
    /* A vector run over the interior windows, where the ISA has one: they */
    /* tile the input (stride = pool size), their cell numbers are exact  */
    /* as floats, and (C < 4) 4-lane loads from them stay inside the row  */
    /* (of x) and the gradient row.                                       */
    int64_t o0 = 0, o1 = 0;
    const int64_t ih0_band = oh_lo * g->sh - g->pt;
    if (cp_active->CP_CAT(maxpool_bwd_run, CP_SFX) != NULL && g->sh == g->kh &&
        g->sw == g->kw && g->kh * g->kw < ((int64_t)1 << 24) && oh_hi == oh_lo + 1 &&
        ih0_band >= 0 && ih0_band + g->kh <= g->h) {
        const int64_t extra = C >= 4 ? 0 : (4 + C - 1) / C - 1; /* pixels a 4-lane load reads on */
        o0 = (g->pl + g->sw - 1) / g->sw;
        o1 = (g->w - 1 - extra + g->pl - g->kw + 1) / g->sw + 1; /* last col + extra < W */
        if (g->w - 1 - extra + g->pl - g->kw + 1 < 0)
            o1 = 0;
        if (o1 > g->ow - extra)
            o1 = g->ow - extra;
        if (o1 < o0)
            o1 = o0;
    }
    for (int64_t r = lo; r < hi; r++) { /* zero all but what the run writes */
        CP_T *row = gxn + r * rs;
        if (o1 > o0 && r >= ih0_band && r < ih0_band + g->kh) {
            const int64_t cs = (o0 * g->sw - g->pl) * C, ce = (o1 * g->sw - g->pl) * C;
            memset(row, 0, (size_t)cs * sizeof(CP_T));
            memset(row + ce, 0, (size_t)(rs - ce) * sizeof(CP_T));
        } else {
            memset(row, 0, (size_t)rs * sizeof(CP_T));
        }
    }
    if (o1 > o0)
        cp_active->CP_CAT(maxpool_bwd_run, CP_SFX)(g, xn + ih0_band * rs, gy + (n * g->oh + oh_lo) * g->ow * C,
            gxn + ih0_band * rs, o0, o1);
    for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
        const int64_t ih0 = oh * g->sh - g->pt;
        const int64_t r0 = ih0 < 0 ? 0 : ih0;
        const int64_t r1 = ih0 + g->kh < g->h ? ih0 + g->kh : g->h;
        const CP_T *grad = gy + (n * g->oh + oh) * g->ow * C;
        for (int64_t ow = 0; ow < g->ow; ow++, grad += C) {
            if (ow >= o0 && ow < o1)
                continue; /* done by the run */
            const int64_t iw0 = ow * g->sw - g->pl;
            const int64_t c0 = iw0 < 0 ? 0 : iw0;
            const int64_t c1 = iw0 + g->kw < g->w ? iw0 + g->kw : g->w;
            /* The first maximum in row-major order, a NaN replacing it     */
            /* (branch-free: the data decides, not the branch predictor);   */
            /* `at` is the winner's offset in the image.                     */
            const int64_t first = r0 * rs + c0 * C;
            if (C < 8) { /* per channel, the running maximum in registers */
                for (int64_t c = 0; c < C; c++) {
                    CP_T mc = xn[first + c];
                    int64_t ac = first + c;
                    for (int64_t r = r0; r < r1; r++)
                        for (int64_t s = (r == r0 ? c0 + 1 : c0); s < c1; s++) {
                            const int64_t off = r * rs + s * C + c;
                            const CP_T v = xn[off];
                            const int upd = (v > mc) | (v != v);
                            mc = upd ? v : mc;
                            ac = upd ? off : ac;
                        }
                    at[c] = ac;
                }
            } else { /* vectorised over the channels */
                for (int64_t c = 0; c < C; c++) {
                    m[c] = xn[first + c];
                    at[c] = first + c;
                }
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t s = (r == r0 ? c0 + 1 : c0); s < c1; s++) {
                        const CP_T *CP_RESTRICT v = xn + r * rs + s * C;
                        const int64_t off = r * rs + s * C;
                        for (int64_t c = 0; c < C; c++) {
                            const int upd = (v[c] > m[c]) | (v[c] != v[c]);
                            m[c] = upd ? v[c] : m[c];
                            at[c] = upd ? off + c : at[c];
                        }
                    }
            }
            /* Through a ReLU (g->relu): a winner that is not > 0 gets +0s,
             * so the sum is relu_grad's of the pool gradient, bit for bit. */
            if (g->sh >= g->kh) { /* band: every window lies in this unit */
                for (int64_t c = 0; c < C; c++)
                    gxn[at[c]] = gxn[at[c]] +
                                 (g->relu && !(xn[at[c]] > 0) ? (CP_T)0 : grad[c]);
            } else { /* one input row: only the winners in it */
                for (int64_t c = 0; c < C; c++)
                    if (at[c] >= lo * rs && at[c] < hi * rs)
                        gxn[at[c]] = gxn[at[c]] +
                                     (g->relu && !(xn[at[c]] > 0) ? (CP_T)0 : grad[c]);
            }
        }
    }
}
void CP_CAT(cp_avgpool2d_bwd_unit, CP_SFX)(const cp_pool_geom *g, const CP_T *gy, CP_T *gx,
                                    int64_t unit, void *scratch)
{
    const int64_t C = g->c, rs = g->w * C;
    int64_t n, lo, hi, oh_lo, oh_hi;
    CP_T *const share = (CP_T *)scratch; /* grad_out / divisor of one output row */
    pool_unit_rows(g, unit, &n, &lo, &hi, &oh_lo, &oh_hi);
    if (hi > lo)
        memset(gx + (n * g->h + lo) * rs, 0, (size_t)((hi - lo) * rs) * sizeof(CP_T));
    for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
        const int64_t ih0 = oh * g->sh - g->pt;
        const int64_t r0 = ih0 < 0 ? 0 : ih0;
        const int64_t r1 = ih0 + g->kh < g->h ? ih0 + g->kh : g->h;
        for (int64_t ow = 0; ow < g->ow; ow++) {
            const int64_t iw0 = ow * g->sw - g->pl;
            const int64_t c0 = iw0 < 0 ? 0 : iw0;
            const int64_t c1 = iw0 + g->kw < g->w ? iw0 + g->kw : g->w;
            /* in double: KH * KW may pass int64 (huge windows of padding); with
             * count_include_pad, the cells inside the padded input (as forward) */
            const int64_t prows = g->h + g->pb - ih0 < g->kh ? g->h + g->pb - ih0 : g->kh;
            const int64_t pcols = g->w + g->pr - iw0 < g->kw ? g->w + g->pr - iw0 : g->kw;
            const CP_T divisor = (CP_T)(g->divisor > 0           ? (double)g->divisor
                                        : g->count_include_pad ? (double)prows * (double)pcols
                                                               : (double)((r1 - r0) * (c1 - c0)));
            const CP_T *grad = gy + ((n * g->oh + oh) * g->ow + ow) * C;
            for (int64_t c = 0; c < C; c++)
                share[ow * C + c] = grad[c] / divisor;
        }
        const int64_t a = r0 > lo ? r0 : lo, z = r1 < hi ? r1 : hi;
        for (int64_t r = a; r < z; r++) {
            CP_T *const gx_row = gx + (n * g->h + r) * rs;
            for (int64_t ow = 0; ow < g->ow; ow++) {
                const int64_t iw0 = ow * g->sw - g->pl;
                const int64_t c0 = iw0 < 0 ? 0 : iw0;
                const int64_t c1 = iw0 + g->kw < g->w ? iw0 + g->kw : g->w;
                for (int64_t s = c0; s < c1; s++) {
                    CP_T *CP_RESTRICT dst = gx_row + s * C;
                    const CP_T *CP_RESTRICT src = share + ow * C;
                    for (int64_t c = 0; c < C; c++)
                        dst[c] = dst[c] + src[c];
                }
            }
        }
    }
}

#undef CP_TILE

/* gx[i] = y[i] > 0 ? gy[i] : 0 for i in [lo, hi): the gradient through a ReLU
 * whose output was y (a NaN output passes nothing).  gx overlaps neither
 * input and both are loaded unconditionally, so the loop vectorises into
 * compares and ands (a branch per element would mispredict on every other
 * sign). */
void CP_CAT(cp_relu_grad, CP_SFX)(const CP_T *CP_RESTRICT gy, const CP_T *CP_RESTRICT y,
                                  CP_T *CP_RESTRICT gx, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        const CP_T g = gy[i], v = y[i];
        gx[i] = v > 0 ? g : (CP_T)0;
    }
}

/* One Adam step on elements [lo, hi), the operations of Adam._update's
 * NumPy code in its order, each rounded to CP_T (no fused multiply-add:
 * -ffp-contract=off), so both give the same bits:
 *     m = m * b1 + g * c1;  v = v * b2 + (g * g) * c2;
 *     w = w - (m * lr_t) / (sqrt(v) + eps)
 * (c1 = 1 - b1 and c2 = 1 - b2 as the caller rounded them).  w, g, m and v
 * do not overlap. */
void CP_CAT(cp_adam_update, CP_SFX)(CP_T *CP_RESTRICT w, const CP_T *CP_RESTRICT g,
                                    CP_T *CP_RESTRICT m, CP_T *CP_RESTRICT v, int64_t lo,
                                    int64_t hi, CP_T b1, CP_T c1, CP_T b2, CP_T c2, CP_T eps,
                                    CP_T lr_t)
{
    for (int64_t i = lo; i < hi; i++) {
        const CP_T gi = g[i];
        const CP_T mi = m[i] * b1 + gi * c1;
        const CP_T vi = v[i] * b2 + (gi * gi) * c2;
#if CP_F64
        const CP_T root = sqrt(vi);
#else
        const CP_T root = sqrtf(vi); /* in float: sqrt() would widen the rest to double */
#endif
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] - (mi * lr_t) / (root + eps);
    }
}
