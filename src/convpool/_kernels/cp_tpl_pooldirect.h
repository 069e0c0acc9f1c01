/*
 * Template: max pooling of one output row by visiting each window's taps
 * directly, for what the separable kernel (cp_tpl_pool.h) does not do:
 * dilated windows, and the winners' indices (max_pool2d's return_indices,
 * and through them the gradient of dilated windows).  Include with CP_T,
 * CP_SFX and CP_ISA; defines cp_maxpool2d_direct_<sfx>__<isa>.  The loops
 * over the channels are plain C that each ISA's compiler flags vectorise.
 *
 * Each output visits its window's real cells (taps in the padding, or past
 * it in ceil_mode, are skipped) in row-major order and keeps PyTorch's
 * winner: the first maximum, replaced by any later NaN (so the last NaN).
 * y holds the running maximum; idx (may be NULL) the winner's flat index
 * ih * W + iw in its image's plane.  A window always holds a real cell
 * (Python checks the pads), so every output is written.
 */
static void CP_ISA_FN(CP_CAT(cp_maxpool2d_direct, CP_SFX))(const cp_pool_geom *g,
                                                           const CP_T *x, CP_T *y,
                                                           int64_t *idx, int64_t row)
{
    const int64_t C = g->c, n = row / g->oh, oh = row % g->oh;
    const int64_t ih0 = oh * g->sh - g->pt;
    /* taps a with 0 <= ih0 + a*dh < H */
    const int64_t a_lo = ih0 < 0 ? (-ih0 + g->dh - 1) / g->dh : 0;
    int64_t a_hi = g->h - ih0 <= 0 ? 0 : (g->h - 1 - ih0) / g->dh + 1;
    if (a_hi > g->kh)
        a_hi = g->kh;
    for (int64_t ow = 0; ow < g->ow; ow++) {
        const int64_t iw0 = ow * g->sw - g->pl;
        const int64_t b_lo = iw0 < 0 ? (-iw0 + g->dw - 1) / g->dw : 0;
        int64_t b_hi = g->w - iw0 <= 0 ? 0 : (g->w - 1 - iw0) / g->dw + 1;
        if (b_hi > g->kw)
            b_hi = g->kw;
        CP_T *CP_RESTRICT m = y + (row * g->ow + ow) * C;
        int64_t *CP_RESTRICT at = idx != NULL ? idx + (row * g->ow + ow) * C : NULL;
        int first = 1;
        CP_ASSERT(a_lo < a_hi && b_lo < b_hi);
        for (int64_t a = a_lo; a < a_hi; a++) {
            const int64_t ih = ih0 + a * g->dh;
            for (int64_t b = b_lo; b < b_hi; b++) {
                const int64_t iw = iw0 + b * g->dw, flat = ih * g->w + iw;
                const CP_T *CP_RESTRICT v = x + ((n * g->h + ih) * g->w + iw) * C;
                if (first) {
                    memcpy(m, v, (size_t)C * sizeof(CP_T));
                    if (at != NULL)
                        for (int64_t c = 0; c < C; c++)
                            at[c] = flat;
                    first = 0;
                } else if (at != NULL) {
                    for (int64_t c = 0; c < C; c++) {
                        const int upd = (v[c] > m[c]) | (v[c] != v[c]);
                        m[c] = upd ? v[c] : m[c];
                        at[c] = upd ? flat : at[c];
                    }
                } else {
                    for (int64_t c = 0; c < C; c++)
                        m[c] = ((v[c] > m[c]) | (v[c] != v[c])) ? v[c] : m[c];
                }
            }
        }
    }
}
