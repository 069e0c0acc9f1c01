/*
 * Template: the conv algorithms' per-unit drivers and the weight packing for
 * one dtype.  Included by cp_conv.c with CP_T and CP_SFX set; the micro-kernel
 * is the selected ISA's (cp_active), of the tile the plan chose (g->gemm).
 * Every unit writes its own output pixels, once.
 */
#define CP_CONV_F(name) CP_CAT(name, CP_SFX)
#define CP_TILE CP_CAT(cp_tile, CP_SFX)

/* packed[((grp * panels + p) * K + k) * NR + j] = kernel[k, grp * OCg + p * NR + j],
 * zero for p * NR + j >= OCg.  Depthwise keeps Keras's (KH, KW, 1, C) layout.
 * Winograd: packed[((e * panels + p) * C + c) * NR + j] = U_e of (c, p * NR + j).
 * Part `part` is panel part % panels of group part / panels (cp_conv_pack_units). */
void CP_CONV_F(cp_conv_pack)(const cp_conv_geom *g, const CP_T *kernel, CP_T *packed,
                             int64_t part)
{
    const int64_t nr = g->nr;
    CP_ASSERT(part >= 0 && part < cp_conv_pack_units(g));
    if (g->algorithm == CP_CONV_DEPTHWISE) {
        memcpy(packed, kernel, (size_t)(g->k * g->oc) * sizeof(CP_T));
        return;
    }
    if (g->algorithm == CP_CONV_WINOGRAD) {
        /* The panel's NR output channels side by side, the lanes of the
         * transform: k[t][j] (9 taps) -> T[a][kw][j] (columns) -> U[a][b][j]. */
        const int64_t C = g->c, OC = g->oc, E = CP_WG_A * CP_WG_A, p = part;
        double k[9][CP_MAX_NR_BYTES / 4], T[CP_WG_A * 3][CP_MAX_NR_BYTES / 4],
            U[E][CP_MAX_NR_BYTES / 4];
        CP_ASSERT(nr <= CP_MAX_NR_BYTES / 4 && g->groups == 1);
        const int64_t n = OC - p * nr < nr ? OC - p * nr : nr;
        for (int64_t c = 0; c < C; c++) {
            for (int t = 0; t < 9; t++)
                for (int64_t j = 0; j < n; j++)
                    k[t][j] = (double)kernel[(t * C + c) * OC + p * nr + j];
            for (int kw = 0; kw < 3; kw++) /* T[a * 3 + kw] = (G k[:, kw])[a] */
                cp_wg_g(k[kw], k[3 + kw], k[6 + kw], n, T[kw], 3 * (CP_MAX_NR_BYTES / 4));
            for (int a = 0; a < CP_WG_A; a++) /* U[a * 6 + b] = (G T[a, :])[b] */
                cp_wg_g(T[a * 3], T[a * 3 + 1], T[a * 3 + 2], n, U[a * CP_WG_A],
                        CP_MAX_NR_BYTES / 4);
            for (int64_t e = 0; e < E; e++) {
                CP_T *dst = packed + ((e * g->panels + p) * C + c) * nr;
                for (int64_t j = 0; j < n; j++)
                    dst[j] = (CP_T)U[e][j];
                for (int64_t j = n; j < nr; j++)
                    dst[j] = (CP_T)0;
            }
        }
        return;
    }
    CP_ASSERT(nr == CP_TILE(cp_active, g->gemm)->nr);
    const int64_t grp = part / g->panels, p = part % g->panels;
    const int64_t n = g->ocg - p * nr < nr ? g->ocg - p * nr : nr;
    for (int64_t k = 0; k < g->k; k++) {
        CP_T *dst = packed + ((grp * g->panels + p) * g->k + k) * nr;
        const CP_T *src = kernel + k * g->oc + grp * g->ocg + p * nr;
        for (int64_t j = 0; j < n; j++)
            dst[j] = src[j];
        for (int64_t j = n; j < nr; j++)
            dst[j] = (CP_T)0;
    }
}

/* Flat pixels [p0, p0 + count), all groups, through the gathered tile. */
static void CP_CONV_F(gathered)(const cp_conv_geom *g, const CP_T *x, const CP_T *packed,
                                const CP_T *bias, CP_T *y, int64_t p0, int64_t count,
                                CP_T *scratch)
{
    const CP_T *seg[1] = {scratch};
    const int64_t NR = g->nr;
    for (int64_t grp = 0; grp < g->groups; grp++) {
        cp_gather_patches(g, (const char *)x, sizeof(CP_T), p0, count, grp, (char *)scratch,
                          g->k);
        for (int64_t p = 0; p < g->panels; p++) {
            const int64_t oc0 = grp * g->ocg + p * NR;
            const int64_t nr = g->ocg - p * NR < NR ? g->ocg - p * NR : NR;
            CP_TILE(cp_active, g->gemm)
                ->fn(count, 1, seg, g->k, g->k, packed + (grp * g->panels + p) * g->k * NR,
                     y + p0 * g->oc + oc0, g->oc, nr, bias != NULL ? bias + oc0 : NULL,
                     cp_store_flags(g));
        }
    }
}

/* Output pixels [a, b) of row `row`, gathered in tiles. */
static void CP_CONV_F(gathered_range)(const cp_conv_geom *g, const CP_T *x,
                                      const CP_T *packed, const CP_T *bias, CP_T *y,
                                      int64_t row, int64_t a, int64_t b, CP_T *scratch)
{
    for (int64_t ow = a; ow < b; ow += g->tile) {
        const int64_t count = b - ow < g->tile ? b - ow : g->tile;
        CP_CONV_F(gathered)(g, x, packed, bias, y, row * g->ow + ow, count, scratch);
    }
}

/* GATHER: a unit is a tile of consecutive pixels. */
static void CP_CONV_F(run_gather)(const cp_conv_geom *g, const CP_T *x, const CP_T *packed,
                                  const CP_T *bias, CP_T *y, int64_t unit, CP_T *scratch)
{
    const int64_t pixels = g->n * g->oh * g->ow, p0 = unit * g->tile;
    const int64_t count = pixels - p0 < g->tile ? pixels - p0 : g->tile;
    CP_CONV_F(gathered)(g, x, packed, bias, y, p0, count, scratch);
}

/* POINTWISE: a unit is a tile of consecutive pixels; A is the input itself. */
static void CP_CONV_F(run_pointwise)(const cp_conv_geom *g, const CP_T *x, const CP_T *packed,
                                     const CP_T *bias, CP_T *y, int64_t unit, CP_T *scratch)
{
    const int64_t pixels = g->n * g->oh * g->ow, p0 = unit * g->tile;
    const int64_t count = pixels - p0 < g->tile ? pixels - p0 : g->tile;
    const int64_t NR = g->nr;
    const CP_T *seg[1] = {x + p0 * g->c};
    (void)scratch;
    for (int64_t p = 0; p < g->panels; p++) {
        const int64_t nr = g->oc - p * NR < NR ? g->oc - p * NR : NR;
        CP_TILE(cp_active, g->gemm)
            ->fn(count, 1, seg, g->c, g->c, packed + p * g->k * NR, y + p0 * g->oc + p * NR,
                 g->oc, nr, bias != NULL ? bias + p * NR : NULL, cp_store_flags(g));
    }
}

/* ROWS: a unit is an output row; its interior pixels read A in place. */
static void CP_CONV_F(run_rows)(const cp_conv_geom *g, const CP_T *x, const CP_T *packed,
                                const CP_T *bias, CP_T *y, int64_t unit, CP_T *scratch)
{
    const int64_t row = unit, n = row / g->oh, oh = row % g->oh;
    const int64_t ih0 = oh * g->sh - g->pt;
    const int rows_inside = ih0 >= 0 && ih0 + (g->kh - 1) * g->dh < g->h;
    const int64_t NR = g->nr;
    if (!rows_inside || g->ow_hi <= g->ow_lo) {
        CP_CONV_F(gathered_range)(g, x, packed, bias, y, row, 0, g->ow, scratch);
        return;
    }
    CP_ASSERT(g->nseg <= CP_MAX_SEG);
    const CP_T *seg[CP_MAX_SEG];
    for (int64_t grp = 0; grp < g->groups; grp++) {
        const int64_t iw0 = g->ow_lo * g->sw - g->pl;
        for (int64_t s = 0; s < g->nseg; s++) {
            const int64_t kh = g->nseg == g->kh ? s : s / g->kw;
            const int64_t kw = g->nseg == g->kh ? 0 : s % g->kw;
            seg[s] = x + ((n * g->h + ih0 + kh * g->dh) * g->w + iw0 + kw * g->dw) * g->c +
                     grp * g->cg;
        }
        const int64_t m = g->ow_hi - g->ow_lo, lda = g->sw * g->c;
        /* with pf_rows, MR pixels a call, each prefetching its share of the
         * next output row's window rows (kh - pf_rows .. kh - 1; all of them,
         * as cp_conv_plan sets it) */
        const int pf = g->pf_rows > 0 && oh + 1 < g->oh && grp == 0; /* (the groups share rows) */
        const int64_t chunk = pf ? g->mr : m;
        const CP_T *next = x + ((n * g->h + ih0 + g->sh) * g->w + iw0) * g->c + grp * g->cg;
        for (int64_t i0 = 0; i0 < m; i0 += chunk) {
            const int64_t cnt = m - i0 < chunk ? m - i0 : chunk;
            const CP_T *at[CP_MAX_SEG];
            for (int64_t s = 0; s < g->nseg; s++)
                at[s] = seg[s] + i0 * lda;
            if (pf)
                for (int64_t r = g->kh - g->pf_rows; r < g->kh; r++) {
                    const CP_T *line = next + r * g->dh * g->w * g->c;
                    for (int64_t e = i0 * lda; e < (i0 + cnt) * lda; e += CP_ALIGN / (int64_t)sizeof(CP_T))
                        __builtin_prefetch(line + e, 0, 1);
                }
            for (int64_t p = 0; p < g->panels; p++) {
                const int64_t oc0 = grp * g->ocg + p * NR;
                const int64_t nr = g->ocg - p * NR < NR ? g->ocg - p * NR : NR;
                CP_TILE(cp_active, g->gemm)
                    ->fn(cnt, g->nseg, at, lda, g->kseg, packed + (grp * g->panels + p) * g->k * NR,
                         y + (row * g->ow + g->ow_lo + i0) * g->oc + oc0, g->oc, nr,
                         bias != NULL ? bias + oc0 : NULL, cp_store_flags(g));
            }
        }
    }
    CP_CONV_F(gathered_range)(g, x, packed, bias, y, row, 0, g->ow_lo, scratch);
    CP_CONV_F(gathered_range)(g, x, packed, bias, y, row, g->ow_hi, g->ow, scratch);
}

/* WINOGRAD: a unit is a block of 4x4 output tiles, through the ISA's kernel. */
static void CP_CONV_F(run_winograd)(const cp_conv_geom *g, const CP_T *x, const CP_T *packed,
                                    const CP_T *bias, CP_T *y, int64_t unit, CP_T *scratch)
{
    cp_active->CP_CONV_F(winograd)(g, x, packed, bias, y, unit, scratch);
}

/* DEPTHWISE: a unit is an output row, through the ISA's direct kernel. */
static void CP_CONV_F(run_depthwise)(const cp_conv_geom *g, const CP_T *x, const CP_T *packed,
                                     const CP_T *bias, CP_T *y, int64_t unit, CP_T *scratch)
{
    cp_active->CP_CONV_F(depthwise)(g, x, packed, bias, y, unit, scratch);
}

/* ---- the Winograd weight gradient (cp_kernels.h) ------------------------------ */
void CP_CONV_F(cp_wgw_chunk)(const cp_wgw_geom *w, const CP_T *x, const CP_T *gy, CP_T *vt,
                             CP_T *dm, CP_T *bias_part, int64_t pass, int64_t chunk,
                             CP_T *scratch)
{
    cp_active->CP_CONV_F(wgw_chunk)(w, x, gy, vt, dm, bias_part, pass, chunk, scratch);
}

/* dU[e][c][p * NR + j] (+)= sum over the pass's tiles t of V_e[t][c] dm[e][p][t][j],
 * the chunks' blocks of vt ([e][c][tile] each) as the micro-kernel's segments. */
void CP_CONV_F(cp_wgw_gemm)(const cp_wgw_geom *w, const CP_T *vt, const CP_T *dm, CP_T *du,
                            int64_t job, int first)
{
    const cp_conv_geom *g = &w->f;
    const int64_t e = job / g->panels, p = job % g->panels, NR = g->nr, ocp = g->panels * NR;
    const int64_t B = CP_WGW_CHUNK;
    const CP_T *seg[CP_MAX_SEG];
    CP_ASSERT(job >= 0 && job < w->jobs && w->chunks <= CP_MAX_SEG);
    for (int64_t s = 0; s < w->chunks; s++)
        seg[s] = vt + (s * 36 + e) * g->c * B;
    CP_TILE(cp_active, g->gemm)
        ->fn(g->c, w->chunks, seg, B, B, dm + (e * g->panels + p) * w->pass * NR,
             du + e * g->c * ocp + p * NR, ocp, NR, NULL, first ? 0 : CP_STORE_ACCUM);
}

/* grad_kernel[kh][kw][c][:] = (G^T dU[:, c, :] G)[kh][kw], in double. */
void CP_CONV_F(cp_wgw_kernel)(const cp_wgw_geom *w, const CP_T *du, CP_T *gk, int64_t c)
{
    const cp_conv_geom *g = &w->f;
    const int64_t C = g->c, OC = g->oc, ocp = g->panels * g->nr;
    enum { LANES = 64 };
    double u[36][LANES], t[6 * 3][LANES], k[9][LANES];
    for (int64_t o0 = 0; o0 < OC; o0 += LANES) {
        const int64_t n = OC - o0 < LANES ? OC - o0 : LANES;
        for (int e = 0; e < 36; e++)
            for (int64_t j = 0; j < n; j++)
                u[e][j] = (double)du[(e * C + c) * ocp + o0 + j];
        for (int a = 0; a < 6; a++) /* t[a][kw] = (G^T u[a, :])[kw] */
            cp_wg_gt(u[a * 6], LANES, n, t[a * 3], LANES);
        for (int kw = 0; kw < 3; kw++) /* k[kh][kw] = (G^T t[:, kw])[kh] */
            cp_wg_gt(t[kw], 3 * LANES, n, k[kw], 3 * LANES);
        for (int tap = 0; tap < 9; tap++)
            for (int64_t j = 0; j < n; j++)
                gk[(tap * C + c) * OC + o0 + j] = (CP_T)k[tap][j];
    }
}

#undef CP_TILE
#undef CP_CONV_F
