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

/* The transforms' vocabulary: the ISA's vectors of channels, or single
 * channels in the baseline.  Only IEEE adds, subtracts and multiplies, each
 * rounded: every variant computes the same bits. */
#if CP_SIMD
#define WG_V CPV
#define WG_W CPV_W
#define wg_load(p) cpv_loadu(p)
#define wg_load_n(p, n) cpv_loadu_n(p, n)
#define wg_store(p, v) cpv_storeu(p, v)
#define wg_store_n(p, v, n) cpv_storeu_n(p, v, n)
#define wg_set(s) cpv_set1(s)
#define wg_add(a, b) cpv_add(a, b)
#define wg_sub(a, b) cpv_sub(a, b)
#define wg_mul(a, b) cpv_mul(a, b)
#define wg_relu(v) cpv_max(cpv_zero(), v) /* a NaN v stays v */
#else
#define WG_V CP_T
#define WG_W 1
#define wg_load(p) (*(p))
#define wg_load_n(p, n) (*(p))
#define wg_store(p, v) (*(p) = (v))
#define wg_store_n(p, v, n) (*(p) = (v))
#define wg_set(s) ((CP_T)(s))
#define wg_add(a, b) ((a) + (b))
#define wg_sub(a, b) ((a) - (b))
#define wg_mul(a, b) ((a) * (b))
#define wg_relu(v) ((v) < 0 ? (CP_T)0 : (v))
#endif

/* For each vector of `n` channels [c, c + WG_W) (the last one partial, of
 * `left` lanes): BODY with LOAD(p) and STORE(p, v) reading and writing them. */
#define WG_EACH_VECTOR(n, BODY)                                                              \
    do {                                                                                     \
        int64_t c = 0;                                                                       \
        for (; c + WG_W <= (n); c += WG_W) {                                                 \
            BODY(wg_load, wg_store)                                                          \
        }                                                                                    \
        if (c < (n)) {                                                                       \
            const int64_t left = (n) - c;                                                    \
            (void)left;                                                                      \
            BODY(WG_LOAD_LEFT, WG_STORE_LEFT)                                                \
        }                                                                                    \
    } while (0)
#define WG_LOAD_LEFT(p) wg_load_n(p, left)
#define WG_STORE_LEFT(p, v) wg_store_n(p, v, left)

/* The 1-D input transform B^T d of six vectors (rows of 2 B^T, integers):
 *   v0 = 2 (d0 + d4) + 3 (d3 - d1) - 4 d2     v1 = 2 (d1 + d4) + d3 - 5 d2
 *   v2 = 2 (d4 - d1) + d2 + 5 d3              v3 = (d4 - d2) + 2 (d3 - d1)
 *   v4 = 2 (d4 - d2) + (d1 - d3)              v5 = 2 (d1 + d5) + 3 (d4 - d2) - 4 d3 */
#define WG_IN(d, v)                                                                          \
    do {                                                                                     \
        const WG_V two = wg_set(2), three = wg_set(3), four = wg_set(4), five = wg_set(5);   \
        const WG_V d31 = wg_sub(d[3], d[1]), d42 = wg_sub(d[4], d[2]);                       \
        v[0] = wg_sub(wg_add(wg_mul(two, wg_add(d[0], d[4])), wg_mul(three, d31)),           \
                      wg_mul(four, d[2]));                                                   \
        v[1] = wg_sub(wg_add(wg_mul(two, wg_add(d[1], d[4])), d[3]), wg_mul(five, d[2]));    \
        v[2] = wg_add(wg_add(wg_mul(two, wg_sub(d[4], d[1])), d[2]), wg_mul(five, d[3]));    \
        v[3] = wg_add(d42, wg_mul(two, d31));                                                \
        v[4] = wg_add(wg_mul(two, d42), wg_sub(d[1], d[3]));                                 \
        v[5] = wg_sub(wg_add(wg_mul(two, wg_add(d[1], d[5])), wg_mul(three, d42)),           \
                      wg_mul(four, d[3]));                                                   \
    } while (0)

/* The 1-D output transform A^T m of six vectors:
 *   o0 = m0 + (m1 + m2) + m3 + m4             o1 = (m2 - m1) + m3 / 2 - 2 m4
 *   o2 = (m1 + m2) + m3 / 4 + 4 m4            o3 = (m2 - m1) + m3 / 8 - 8 m4 + m5 */
#define WG_OUT(m, o)                                                                         \
    do {                                                                                     \
        const WG_V s12 = wg_add(m[1], m[2]), d21 = wg_sub(m[2], m[1]);                       \
        o[0] = wg_add(wg_add(wg_add(m[0], s12), m[3]), m[4]);                                \
        o[1] = wg_sub(wg_add(d21, wg_mul(wg_set(0.5), m[3])), wg_mul(wg_set(2), m[4]));      \
        o[2] = wg_add(wg_add(s12, wg_mul(wg_set(0.25), m[3])), wg_mul(wg_set(4), m[4]));     \
        o[3] = wg_add(wg_sub(wg_add(d21, wg_mul(wg_set(0.125), m[3])),                       \
                             wg_mul(wg_set(8), m[4])),                                       \
                      m[5]);                                                                 \
    } while (0)

/* Elements of a scratch region, rounded up to whole CP_ALIGN lines. */
static inline int64_t CP_ISA_FN(CP_WG_F(cp_wg_lines))(int64_t elems)
{
    const int64_t per = CP_ALIGN / (int64_t)sizeof(CP_T);
    return (elems + per - 1) / per * per;
}

/* The transform of input tile `tile` (the unit's t-th) into V[e][t][:] (e = 6 i + j). */
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
#define WG_COLUMN(LOAD, STORE)                                                               \
    WG_V d[6], v[6];                                                                         \
    for (int a = 0; a < 6; a++)                                                              \
        d[a] = LOAD(p + a * rs + c);                                                         \
    WG_IN(d, v);                                                                             \
    for (int i = 0; i < 6; i++)                                                              \
        STORE(o + i * 6 * C + c, v[i]);
        WG_EACH_VECTOR(C, WG_COLUMN);
#undef WG_COLUMN
    }
    /* Rows: V[6 i + j][t][c] = (T[i] B)[j]. */
    const int64_t es = block * C; /* elements between V's transformed elements */
    for (int64_t i = 0; i < CP_WG_A; i++) {
        const CP_T *CP_RESTRICT q = T + i * CP_WG_A * C;
        CP_T *CP_RESTRICT o = V + (i * CP_WG_A) * es + t * C;
#define WG_ROW(LOAD, STORE)                                                                  \
    WG_V d[6], v[6];                                                                         \
    for (int b = 0; b < 6; b++)                                                              \
        d[b] = LOAD(q + b * C + c);                                                          \
    WG_IN(d, v);                                                                             \
    for (int j = 0; j < 6; j++)                                                              \
        STORE(o + j * es + c, v[j]);
        WG_EACH_VECTOR(C, WG_ROW);
#undef WG_ROW
    }
}

/* The output transform of tile `tile` (the unit's t-th), channels [oc0, oc0 + nr);
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
#define WG_MCOLUMN(LOAD, STORE)                                                              \
    WG_V d[6], v[4];                                                                         \
    for (int a = 0; a < 6; a++)                                                              \
        d[a] = LOAD(m + (a * 6 + b) * es + c);                                               \
    WG_OUT(d, v);                                                                            \
    for (int i = 0; i < 4; i++)                                                              \
        STORE(o + i * 6 * NR + c, v[i]);
        WG_EACH_VECTOR(NR, WG_MCOLUMN);
#undef WG_MCOLUMN
    }
    /* Rows, then the bias and the ReLU, into the output pixels inside it;
     * `chk` sums v - v: 0, or NaN once an output is inf or NaN. */
    const int64_t rows = g->oh - oh0 < CP_WG_M ? g->oh - oh0 : CP_WG_M;
    const int64_t cols = g->ow - ow0 < CP_WG_M ? g->ow - ow0 : CP_WG_M;
    const int relu = (int)g->relu;
    WG_V chk = wg_set(0);
    for (int64_t i = 0; i < rows; i++) {
        const CP_T *CP_RESTRICT q = T + i * CP_WG_A * NR;
        CP_T *CP_RESTRICT out = y + ((n * g->oh + oh0 + i) * g->ow + ow0) * g->oc + oc0;
#define WG_MROW(LOAD, STORE)                                                                 \
    WG_V d[6], v[4];                                                                         \
    for (int b = 0; b < 6; b++)                                                              \
        d[b] = LOAD(q + b * NR + c);                                                         \
    WG_OUT(d, v);                                                                            \
    const WG_V bb = bias != NULL ? LOAD(bias + c) : wg_set(0);                               \
    for (int k = 0; k < cols; k++) {                                                         \
        WG_V o = bias != NULL ? wg_add(v[k], bb) : v[k];                                     \
        chk = wg_add(chk, wg_sub(o, o));                                                     \
        STORE(out + k * g->oc + c, relu ? wg_relu(o) : o);                                   \
    }
        WG_EACH_VECTOR(nr, WG_MROW);
#undef WG_MROW
    }
    CP_T lanes[CP_MAX_NR_BYTES / sizeof(CP_T)];
    wg_store(lanes, chk);
    int bad = 0;
    for (int l = 0; l < WG_W; l++)
        bad |= lanes[l] != lanes[l];
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

/* ---- the weight gradient's transforms (cp_wgw_chunk_*) ------------------------------ */

/* The adjoint of the 1-D output transform: m = A y of four vectors,
 *   m0 = y0   m1 = (y0 - y1) + (y2 - y3)   m2 = (y0 + y1) + (y2 + y3)
 *   m3 = y0 + y1 / 2 + y2 / 4 + y3 / 8   m4 = y0 - 2 y1 + 4 y2 - 8 y3   m5 = y3 */
#define WG_OUT_ADJ(y, m)                                                                     \
    do {                                                                                     \
        m[0] = y[0];                                                                         \
        m[1] = wg_add(wg_sub(y[0], y[1]), wg_sub(y[2], y[3]));                               \
        m[2] = wg_add(wg_add(y[0], y[1]), wg_add(y[2], y[3]));                               \
        m[3] = wg_add(wg_add(wg_add(y[0], wg_mul(wg_set(0.5), y[1])),                        \
                             wg_mul(wg_set(0.25), y[2])),                                    \
                      wg_mul(wg_set(0.125), y[3]));                                          \
        m[4] = wg_sub(wg_add(wg_sub(y[0], wg_mul(wg_set(2), y[1])), wg_mul(wg_set(4), y[2])), \
                      wg_mul(wg_set(8), y[3]));                                              \
        m[5] = y[3];                                                                         \
    } while (0)

/* Chunk `chunk` of pass `pass` (see cp_kernels.h): each tile's input transform
 * (cp_wg_input, into L [e][tile][c]), then L transposed into the chunk's own
 * block of vt, [e][c][tile] (contiguous: the GEMM reads it as one segment);
 * each tile's grad_out transform dM = A dY A^T into dm[e][panel][tile][NR];
 * and the tiles' grad_out pixels summed, in order, into bias_part.  Tiles past
 * the batch's last are zeros in vt and dm. */
static void CP_ISA_FN(CP_CAT(cp_wgw_chunk, CP_SFX))(const cp_wgw_geom *w, const CP_T *x,
                                                    const CP_T *gy, CP_T *vt, CP_T *dm,
                                                    CP_T *bias_part, int64_t pass,
                                                    int64_t chunk, CP_T *scratch)
{
    const cp_conv_geom *g = &w->f;
    const int64_t C = g->c, OC = g->oc, NR = g->nr, P = w->pass, B = CP_WGW_CHUNK;
    const int64_t wide = C > NR ? C : NR, per_image = g->wg_th * g->wg_tw;
    CP_T *L = scratch;
    CP_T *D = L + CP_ISA_FN(CP_WG_F(cp_wg_lines))(36 * B * C);
    CP_T *T = D + CP_ISA_FN(CP_WG_F(cp_wg_lines))(36 * wide);
    CP_ASSERT(g->algorithm == CP_CONV_WINOGRAD && chunk >= 0 && chunk < w->chunks);
    /* (dm's lanes past OC in the last panel are never written: the GEMM's
     * columns past OC read them and are never read.) */
    memset(bias_part, 0, (size_t)OC * sizeof(CP_T));
    for (int64_t tt = 0; tt < B; tt++) {
        const int64_t slot = chunk * B + tt, tile = pass * P + slot;
        if (tile >= w->tiles) {
            for (int64_t e = 0; e < 36; e++) {
                memset(L + (e * B + tt) * C, 0, (size_t)C * sizeof(CP_T));
                for (int64_t p = 0; p < g->panels; p++)
                    memset(dm + ((e * g->panels + p) * P + slot) * NR, 0,
                           (size_t)NR * sizeof(CP_T));
            }
            continue;
        }
        CP_ISA_FN(CP_WG_F(cp_wg_input))(g, x, tile, tt, B, L, D, T);
        const int64_t n = tile / per_image, r = tile % per_image;
        const int64_t oh0 = r / g->wg_tw * CP_WG_M, ow0 = r % g->wg_tw * CP_WG_M;
        const int64_t rows = g->oh - oh0 < CP_WG_M ? g->oh - oh0 : CP_WG_M;
        const int64_t cols = g->ow - ow0 < CP_WG_M ? g->ow - ow0 : CP_WG_M;
        const CP_T *src = gy + ((n * g->oh + oh0) * g->ow + ow0) * OC;
#define WG_GY(LOAD, STORE)                                                                   \
    WG_V yv[4][4], tm[6][4], acc = LOAD(bias_part + c);                                      \
    for (int i = 0; i < 4; i++)                                                              \
        for (int k = 0; k < 4; k++) {                                                        \
            if (i < rows && k < cols) {                                                      \
                yv[i][k] = LOAD(src + (i * g->ow + k) * OC + c);                             \
                acc = wg_add(acc, yv[i][k]);                                                 \
            } else {                                                                         \
                yv[i][k] = wg_set(0);                                                        \
            }                                                                                \
        }                                                                                    \
    STORE(bias_part + c, acc);                                                               \
    for (int k = 0; k < 4; k++) { /* columns: tm[a][k] = (A dY[:, k])[a] */                  \
        WG_V col[4] = {yv[0][k], yv[1][k], yv[2][k], yv[3][k]}, m[6];                        \
        WG_OUT_ADJ(col, m);                                                                  \
        for (int a = 0; a < 6; a++)                                                          \
            tm[a][k] = m[a];                                                                 \
    }                                                                                        \
    const int64_t p = c / NR, j = c % NR;                                                    \
    for (int a = 0; a < 6; a++) { /* rows: dM[6 a + b] = (tm[a] A^T)[b] */                   \
        WG_V m[6];                                                                           \
        WG_OUT_ADJ(tm[a], m);                                                                \
        for (int b = 0; b < 6; b++)                                                          \
            STORE(dm + (((a * 6 + b) * g->panels + p) * P + slot) * NR + j, m[b]);           \
    }
        WG_EACH_VECTOR(OC, WG_GY);
#undef WG_GY
    }
    /* L[e][tt][c] -> vt[chunk][e][c][tt] (the ISA's blocked transpose) */
    CP_T *CP_RESTRICT dst = vt + chunk * 36 * C * B;
    for (int64_t e = 0; e < 36; e++) {
        const CP_T *CP_RESTRICT le = L + e * B * C;
        CP_T *CP_RESTRICT de = dst + e * C * B;
        CP_ISA_FN(CP_CAT(cp_transpose, CP_SFX))(le, B, C, C, de, B);
    }
}

#undef WG_OUT_ADJ
#undef WG_IN
#undef WG_OUT
#undef WG_EACH_VECTOR
#undef WG_LOAD_LEFT
#undef WG_STORE_LEFT
#undef WG_V
#undef WG_W
#undef wg_load
#undef wg_load_n
#undef wg_store
#undef wg_store_n
#undef wg_set
#undef wg_add
#undef wg_sub
#undef wg_mul
#undef wg_relu
#undef CP_WG_TILE
#undef CP_WG_F
