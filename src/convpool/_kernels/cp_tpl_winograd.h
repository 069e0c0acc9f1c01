/*
 * Template: Winograd F(4x4, 3x3) convolution of one unit of work (a block of
 * 4x4 output tiles), for one ISA and dtype (see cp_conv_unit_*_fn).  Included
 * by cp_tpl_isa.h and cp_tpl_baseline.h with CP_T, CP_SFX and CP_ISA set: the
 * transforms are plain C loops over the channels, vectorised by the compiler
 * for the ISA's target; the products run on the ISA's own micro-kernel.
 *
 * The algorithm (Lavin & Gray, arXiv:1509.09308), with the interpolation
 * points {0, -1, 1, 1/2, -2, inf} (more accurate in float32 than the usual
 * {0, +-1, +-2}: see the error bound in README.md):
 *   - the output of each image is cut into a fixed grid of 4x4 tiles, from
 *     its top-left pixel; tile (ty, tx) reads the 6x6 input patch at
 *     (4 ty - pt, 4 tx - pl) (zeros outside the input);
 *   - input transform: V = B^T d B per channel, 36 values per tile;
 *   - for each of the 36 elements e, a GEMM over the input channels:
 *     M_e[tile, oc] = sum over c of V_e[tile, c] * U_e[c, oc], where
 *     U = G g G^T is the transformed kernel (packed by cp_conv_pack);
 *   - output transform: Y = A^T M A (4x4), then + bias, then the ReLU.
 * Every value is computed by fixed expressions (no FMA contraction: the build
 * uses -ffp-contract=off) and a GEMM whose reduction runs over c in order, so
 * the bits depend only on the geometry: not on the thread count, the block
 * of tiles a unit holds, the ISA's vector width or the tile of its
 * micro-kernel.  (The baseline variant's GEMM rounds its multiply and add
 * separately, as on the direct path.)
 *
 * An inf or NaN spreads through a tile's transforms to outputs whose window
 * does not hold it (and a huge finite value may overflow there): a unit that
 * writes any non-finite output raises the thread's flag, and the caller
 * recomputes the call with a direct algorithm (cp_conv_nonfinite), so such
 * inputs get the direct algorithms' results, never a spread NaN.
 *
 * Scratch of one thread (elements, each region rounded to CP_ALIGN bytes):
 *   the flag (one line), V [36][block][C], M [36][block][NR],
 *   D [6][6][max(C, NR)], T [6][6][max(C, NR)].
 */
#define CP_WG_F(name) CP_CAT(name, CP_SFX)
#define CP_WG_TILE CP_CAT(cp_tile, CP_SFX)

/* The 1-D input transform B^T d of six values (rows of 2 B^T, integers). */
#define CP_WG_IN(d0, d1, d2, d3, d4, d5, v0, v1, v2, v3, v4, v5)                              \
    do {                                                                                     \
        v0 = (CP_T)2 * (d0 + d4) + (CP_T)3 * (d3 - d1) - (CP_T)4 * d2;                       \
        v1 = (CP_T)2 * (d1 + d4) + d3 - (CP_T)5 * d2;                                        \
        v2 = (CP_T)2 * (d4 - d1) + d2 + (CP_T)5 * d3;                                        \
        v3 = (d4 - d2) + (CP_T)2 * (d3 - d1);                                                \
        v4 = (CP_T)2 * (d4 - d2) + (d1 - d3);                                                \
        v5 = (CP_T)2 * (d1 + d5) + (CP_T)3 * (d4 - d2) - (CP_T)4 * d3;                       \
    } while (0)

/* The 1-D output transform A^T m of six values. */
#define CP_WG_OUT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                                    \
    do {                                                                                     \
        const CP_T s12_ = m1 + m2, d21_ = m2 - m1;                                           \
        o0 = m0 + s12_ + m3 + m4;                                                            \
        o1 = d21_ + (CP_T)0.5 * m3 - (CP_T)2 * m4;                                           \
        o2 = s12_ + (CP_T)0.25 * m3 + (CP_T)4 * m4;                                          \
        o3 = d21_ + (CP_T)0.125 * m3 - (CP_T)8 * m4 + m5;                                    \
    } while (0)

/* Elements of a scratch region, rounded up to whole CP_ALIGN lines. */
static inline int64_t CP_ISA_FN(CP_WG_F(cp_wg_lines))(int64_t elems)
{
    const int64_t per = CP_ALIGN / (int64_t)sizeof(CP_T);
    return (elems + per - 1) / per * per;
}

/* The transform of input tile `t` of the unit into V[e][t][:] (e = 6 i + j). */
static void CP_ISA_FN(CP_WG_F(cp_wg_input))(const cp_conv_geom *g, const CP_T *CP_RESTRICT x,
                                            int64_t tile, int64_t t, int64_t block,
                                            CP_T *CP_RESTRICT V, CP_T *CP_RESTRICT D,
                                            CP_T *CP_RESTRICT T)
{
    const int64_t C = g->c, per_image = g->wg_th * g->wg_tw;
    const int64_t n = tile / per_image, r = tile % per_image;
    const int64_t ih0 = r / g->wg_tw * CP_WG_M - g->pt, iw0 = r % g->wg_tw * CP_WG_M - g->pl;
    const CP_T *src;
    int64_t rs; /* elements between the patch's rows */
    if (ih0 >= 0 && iw0 >= 0 && ih0 + CP_WG_A <= g->h && iw0 + CP_WG_A <= g->w) {
        src = x + ((n * g->h + ih0) * g->w + iw0) * C;
        rs = g->w * C;
    } else { /* the patch crosses the border: copy it, zeros outside */
        for (int64_t a = 0; a < CP_WG_A; a++) {
            const int64_t ih = ih0 + a;
            for (int64_t b = 0; b < CP_WG_A; b++) {
                const int64_t iw = iw0 + b;
                CP_T *dst = D + (a * CP_WG_A + b) * C;
                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
                    memset(dst, 0, (size_t)C * sizeof(CP_T));
                else
                    memcpy(dst, x + ((n * g->h + ih) * g->w + iw) * C, (size_t)C * sizeof(CP_T));
            }
        }
        src = D;
        rs = CP_WG_A * C;
    }
    /* Columns: T[i][b][c] = (B^T d[:, b])[i]. */
    for (int64_t b = 0; b < CP_WG_A; b++) {
        const CP_T *CP_RESTRICT p = src + b * C;
        CP_T *CP_RESTRICT o = T + b * C;
        for (int64_t c = 0; c < C; c++) {
            const CP_T d0 = p[c], d1 = p[rs + c], d2 = p[2 * rs + c], d3 = p[3 * rs + c],
                       d4 = p[4 * rs + c], d5 = p[5 * rs + c];
            CP_T v0, v1, v2, v3, v4, v5;
            CP_WG_IN(d0, d1, d2, d3, d4, d5, v0, v1, v2, v3, v4, v5);
            o[c] = v0;
            o[6 * C + c] = v1;
            o[12 * C + c] = v2;
            o[18 * C + c] = v3;
            o[24 * C + c] = v4;
            o[30 * C + c] = v5;
        }
    }
    /* Rows: V[6 i + j][t][c] = (T[i] B)[j]. */
    const int64_t es = block * C; /* elements between V's transformed elements */
    for (int64_t i = 0; i < CP_WG_A; i++) {
        const CP_T *CP_RESTRICT q = T + i * CP_WG_A * C;
        CP_T *CP_RESTRICT o = V + (i * CP_WG_A) * es + t * C;
        for (int64_t c = 0; c < C; c++) {
            const CP_T d0 = q[c], d1 = q[C + c], d2 = q[2 * C + c], d3 = q[3 * C + c],
                       d4 = q[4 * C + c], d5 = q[5 * C + c];
            CP_T v0, v1, v2, v3, v4, v5;
            CP_WG_IN(d0, d1, d2, d3, d4, d5, v0, v1, v2, v3, v4, v5);
            o[c] = v0;
            o[es + c] = v1;
            o[2 * es + c] = v2;
            o[3 * es + c] = v3;
            o[4 * es + c] = v4;
            o[5 * es + c] = v5;
        }
    }
}

/* The output transform of tile `t` of the unit, channels [oc0, oc0 + nr);
 * returns nonzero if it wrote a non-finite value. */
static int CP_ISA_FN(CP_WG_F(cp_wg_output))(const cp_conv_geom *g, const CP_T *CP_RESTRICT M,
                                             int64_t tile, int64_t t, int64_t block,
                                             int64_t oc0, int64_t nr,
                                             const CP_T *CP_RESTRICT bias, CP_T *CP_RESTRICT y,
                                             CP_T *CP_RESTRICT T)
{
    const int64_t NR = g->nr, per_image = g->wg_th * g->wg_tw;
    const int64_t n = tile / per_image, r = tile % per_image;
    const int64_t oh0 = r / g->wg_tw * CP_WG_M, ow0 = r % g->wg_tw * CP_WG_M;
    const int64_t es = block * NR; /* elements between M's transformed elements */
    const CP_T *CP_RESTRICT m = M + t * NR;
    /* Columns: T[i][b][j] = (A^T m[:, b])[i]. */
    for (int64_t b = 0; b < CP_WG_A; b++) {
        CP_T *CP_RESTRICT o = T + b * NR;
        for (int64_t j = 0; j < NR; j++) {
            const CP_T m0 = m[b * es + j], m1 = m[(6 + b) * es + j], m2 = m[(12 + b) * es + j],
                       m3 = m[(18 + b) * es + j], m4 = m[(24 + b) * es + j],
                       m5 = m[(30 + b) * es + j];
            CP_T o0, o1, o2, o3;
            CP_WG_OUT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3);
            o[j] = o0;
            o[6 * NR + j] = o1;
            o[12 * NR + j] = o2;
            o[18 * NR + j] = o3;
        }
    }
    /* Rows, then the bias and the ReLU, into the output pixels inside it. */
    const int64_t rows = g->oh - oh0 < CP_WG_M ? g->oh - oh0 : CP_WG_M;
    const int64_t cols = g->ow - ow0 < CP_WG_M ? g->ow - ow0 : CP_WG_M;
    const int relu = (int)g->relu;
    int bad = 0;
    for (int64_t i = 0; i < rows; i++) {
        const CP_T *CP_RESTRICT q = T + i * CP_WG_A * NR;
        CP_T *CP_RESTRICT out = y + ((n * g->oh + oh0 + i) * g->ow + ow0) * g->oc + oc0;
        CP_T row[CP_WG_M][CP_MAX_NR_BYTES / sizeof(CP_T)];
        for (int64_t j = 0; j < NR; j++) {
            const CP_T m0 = q[j], m1 = q[NR + j], m2 = q[2 * NR + j], m3 = q[3 * NR + j],
                       m4 = q[4 * NR + j], m5 = q[5 * NR + j];
            CP_T o0, o1, o2, o3;
            CP_WG_OUT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3);
            row[0][j] = o0;
            row[1][j] = o1;
            row[2][j] = o2;
            row[3][j] = o3;
        }
        for (int64_t k = 0; k < cols; k++) {
            CP_T *CP_RESTRICT dst = out + k * g->oc;
            for (int64_t j = 0; j < nr; j++) {
                CP_T v = bias != NULL ? row[k][j] + bias[j] : row[k][j];
                bad |= v - v != (CP_T)0; /* inf or NaN (before the ReLU: -inf too) */
                dst[j] = relu && v < 0 ? (CP_T)0 : v; /* a NaN stays */
            }
        }
    }
    return bad;
}

static void CP_ISA_FN(CP_CAT(cp_winograd_unit, CP_SFX))(const cp_conv_geom *g, const CP_T *x,
                                                        const CP_T *packed, const CP_T *bias,
                                                        CP_T *y, int64_t unit, CP_T *scratch)
{
    const int64_t C = g->c, NR = g->nr, block = g->wg_block;
    const int64_t total = g->n * g->wg_th * g->wg_tw, t0 = unit * block;
    const int64_t count = total - t0 < block ? total - t0 : block;
    const int64_t wide = C > NR ? C : NR;
    CP_ASSERT(g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 &&
              g->dw == 1 && g->groups == 1 && g->pad_mode == CP_PAD_ZEROS);
    CP_ASSERT(count >= 1 && NR <= (int64_t)(CP_MAX_NR_BYTES / sizeof(CP_T)));
    int64_t *flag = (int64_t *)scratch;
    CP_T *V = scratch + CP_ALIGN / sizeof(CP_T);
    CP_T *M = V + CP_ISA_FN(CP_WG_F(cp_wg_lines))(36 * block * C);
    CP_T *D = M + CP_ISA_FN(CP_WG_F(cp_wg_lines))(36 * block * NR);
    CP_T *T = D + CP_ISA_FN(CP_WG_F(cp_wg_lines))(36 * wide);
    for (int64_t t = 0; t < count; t++)
        CP_ISA_FN(CP_WG_F(cp_wg_input))(g, x, t0 + t, t, block, V, D, T);
    const CP_CAT(CP_CAT(cp_gemm, CP_SFX), tile) *tile = CP_WG_TILE(cp_active, g->gemm);
    for (int64_t p = 0; p < g->panels; p++) {
        const int64_t oc0 = p * NR, nr = g->oc - oc0 < NR ? g->oc - oc0 : NR;
        for (int64_t e = 0; e < CP_WG_A * CP_WG_A; e++) {
            const CP_T *seg[1] = {V + e * block * C};
            tile->fn(count, 1, seg, C, C, packed + (e * g->panels + p) * C * NR,
                     M + e * block * NR, NR, NR, NULL, 0);
        }
        int bad = 0;
        for (int64_t t = 0; t < count; t++)
            bad |= CP_ISA_FN(CP_WG_F(cp_wg_output))(g, M, t0 + t, t, block, oc0, nr,
                                                    bias != NULL ? bias + oc0 : NULL, y, T);
        if (bad)
            *flag = 1;
    }
}

#undef CP_WG_IN
#undef CP_WG_OUT
#undef CP_WG_TILE
#undef CP_WG_F
