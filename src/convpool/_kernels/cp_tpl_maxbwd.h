/*
 * Template: the vector run of the max-pool gradient over windows that tile
 * the input (see cp_maxbwd_run_*_fn in cp_internal.h).  Include with CP_T,
 * CP_SFX, CP_ISA and the vector vocabulary (CPV..., CPQ...); defines
 * cp_maxpool2d_bwd_run_<sfx>__<isa>.
 *
 * One window per iteration.  The running maximum and the winner's cell
 * number (as a float, exact for any window below 2^24 cells) follow the
 * scalar rule (v > m || v != v) lane by lane, then every cell of the window
 * is stored: grad_out at the winner, 0 elsewhere.  The windows tile the
 * input, so each cell is stored once and nothing is added: the bits are the
 * portable loop's.  With g->relu the winner's gradient passes only where the
 * maximum is > 0 (a NaN passes nothing), as relu_grad after the pool's.
 *   - C <= 4: the window's channels in the lanes of a 4-lane vector.  Without
 *     masks a 4-lane store spills past a C < 4 pixel into cells written after
 *     it, and stores that would spill past the run go through a buffer; with
 *     masks every store writes C lanes.
 *   - C > 4: full vectors of CPV_W channels, the last block of C % CPV_W
 *     channels with n-lane loads and stores.
 */
static void CP_ISA_FN(CP_CAT(cp_maxpool2d_bwd_run, CP_SFX))(const cp_pool_geom *g, const CP_T *xw,
                                                     const CP_T *grad, CP_T *gw, int64_t o0,
                                                     int64_t o1)
{
    const int64_t C = g->c, rs = g->w * C;
    const int64_t end = (o1 * g->sw - g->pl) * C; /* the run's end within a row */
    CP_ASSERT(C >= 1 && g->sh == g->kh && g->sw == g->kw);
    if (C > 4) {
        for (int64_t o = o0; o < o1; o++) {
            const int64_t base = (o * g->sw - g->pl) * C;
            for (int64_t c0 = 0; c0 < C; c0 += CPV_W) {
                const int64_t nl = C - c0 < CPV_W ? C - c0 : CPV_W;
                const CP_T *const xc = xw + base + c0;
                CP_T *const gc = gw + base + c0;
                CPV m = nl == CPV_W ? cpv_loadu(xc) : cpv_loadu_n(xc, nl), idx = cpv_zero();
                int64_t k = 0;
                for (int64_t r = 0; r < g->kh; r++)
                    for (int64_t s = 0; s < g->kw; s++, k++) {
                        if (k == 0)
                            continue;
                        const CP_T *const p = xc + r * rs + s * C;
                        const CPV v = nl == CPV_W ? cpv_loadu(p) : cpv_loadu_n(p, nl);
                        const CPV_MASK upd = cpv_upd(v, m);
                        m = cpv_blend(m, v, upd);
                        idx = cpv_blend(idx, cpv_set1((CP_T)k), upd);
                    }
                const CP_T *const gp = grad + o * C + c0;
                CPV gv = nl == CPV_W ? cpv_loadu(gp) : cpv_loadu_n(gp, nl);
                if (g->relu) /* through the ReLU: only where the winner is > 0 */
                    gv = cpv_blend(cpv_zero(), gv, cpv_gt(m, cpv_zero()));
                k = 0;
                for (int64_t r = 0; r < g->kh; r++)
                    for (int64_t s = 0; s < g->kw; s++, k++) {
                        const CPV out = cpv_blend(cpv_zero(), gv, cpv_eq(idx, cpv_set1((CP_T)k)));
                        CP_T *const q = gc + r * rs + s * C;
                        if (nl == CPV_W)
                            cpv_storeu(q, out);
                        else
                            cpv_storeu_n(q, out, nl);
                    }
            }
        }
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        const int64_t base = (o * g->sw - g->pl) * C;
        CPQ m = cpq_loadu(xw + base), idx = cpq_zero();
        int64_t k = 0;
        for (int64_t r = 0; r < g->kh; r++)
            for (int64_t s = 0; s < g->kw; s++, k++) {
                if (k == 0)
                    continue;
                const CPQ v = cpq_loadu(xw + r * rs + base + s * C);
                const CPQ_MASK upd = cpq_upd(v, m);
                m = cpq_blend(m, v, upd);
                idx = cpq_blend(idx, cpq_set1((CP_T)k), upd);
            }
        CPQ gv = cpq_loadu(grad + o * C);
        if (g->relu)
            gv = cpq_blend(cpq_zero(), gv, cpq_gt(m, cpq_zero()));
        k = 0;
        for (int64_t r = 0; r < g->kh; r++)
            for (int64_t s = 0; s < g->kw; s++, k++) {
                const CPQ out = cpq_blend(cpq_zero(), gv, cpq_eq(idx, cpq_set1((CP_T)k)));
                const int64_t at = base + s * C;
                if (!CPQ_MASKED && at + 4 <= end)
                    cpq_storeu(gw + r * rs + at, out);
                else
                    cpq_storeu_n(gw + r * rs + at, out, C);
            }
    }
}
