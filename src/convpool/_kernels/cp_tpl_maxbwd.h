/*
 * Template: the vector run of the max-pool gradient for small-C images (see
 * cp_maxbwd_run_*_fn in cp_internal.h).  Include with CP_T, CP_SFX, CP_ISA and
 * the 4-lane vocabulary (CPQ...); defines cp_maxpool2d_bwd_run_<sfx>__<isa>.
 *
 * One window per iteration, its C <= 4 channels in the lanes of a 4-lane
 * vector; the running maximum and the winner's cell number (as a float)
 * follow the scalar rule (v > m || v != v), then every cell is stored:
 * grad_out at the winner, 0 elsewhere.  Without masks a 4-lane store spills
 * past a C < 4 pixel into cells written after it, and stores that would spill
 * past the run go through a buffer; with masks every store writes C lanes.
 */
static void CP_ISA_FN(CP_CAT(cp_maxpool2d_bwd_run, CP_SFX))(const cp_pool_geom *g, const CP_T *xw,
                                                     const CP_T *grad, CP_T *gw, int64_t o0,
                                                     int64_t o1)
{
    const int64_t C = g->c, rs = g->w * C;
    const int64_t end = (o1 * g->sw - g->pl) * C; /* the run's end within a row */
    CP_ASSERT(C >= 1 && C <= 4 && g->sh == g->kh && g->sw == g->kw);
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
        const CPQ gv = cpq_loadu(grad + o * C);
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
