/*
 * Convolution, NHWC: im2col + GEMM without materialising the im2col matrix.
 *
 * The output is a matrix Y[P, OC] with P = N * OH * OW pixels (NHWC order), and
 * for group grp:
 *     Y[p, grp*OCg : (grp+1)*OCg] = A_grp[p, :] @ W_grp        (+ bias)
 * where A_grp[p, k], k = (kh * KW + kw) * Cg + c, is the patch of pixel p
 * (zeros where it falls in the padding) and W_grp is the (K, OCg) slice of the
 * kernel, (KH, KW, Cg, OC) in Keras order, packed once per call into panels of
 * NR channels.
 *
 * The algorithms are the entries of one table (`algorithms` below): each
 * says whether it can compute a geometry, whether it is preferred for it,
 * its units of work, its scratch and its per-unit driver (cp_tpl_conv.h).
 * cp_conv_plan takes the first entry applicable and preferred, or the one a
 * caller forces (the tests force each in turn).  They differ only in where A
 * is read from, never in the arithmetic (see the micro-kernel contract in
 * cp_internal.h), so they give identical bits:
 *
 *   ROWS       one unit = one output row (n, oh).  Its interior pixels (every
 *              tap inside the input) read A in place: a kernel row of taps of
 *              pixel ow is KW*C contiguous floats of an input row (dilation 1,
 *              one group), so A_kh[ow, :] = x + ((n*H + ih)*W + ow*sw - pl)*C
 *              with a pixel stride of sw*C.  Border pixels and rows that touch
 *              the padding are gathered (GATHER below) into the thread's
 *              scratch.  No copy at all when stride == kernel (the seed's 5x5/5).
 *   POINTWISE  1x1, stride 1, no padding, one group: A is the input itself,
 *              (P, C); one unit = a tile of consecutive pixels.
 *   GATHER     one unit = a tile of consecutive pixels (across rows and
 *              images), gathered into scratch (tile * K elements, sized for
 *              the L2 cache, never for the input); for small output rows.
 *   DEPTHWISE  groups = C_in = C_out: a direct kernel vectorised over the
 *              channels (below); one unit = one output row.
 *   WINOGRAD   3x3, stride 1, dilation 1, one group, zero padding: F(4x4, 3x3)
 *              in the transformed domain (cp_tpl_winograd.h); one unit = a
 *              block of 4x4 output tiles.  Not "exact": its own bits, within
 *              the error bound documented in README.md.
 *
 * Every unit writes its own output pixels, once.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cp_internal.h"

/* Target size of one thread's im2col tile.  Any value gives the same bits;
 * this only trades cache residency against per-tile overhead. */
#define CP_CONV_TILE_BYTES (48 * 1024)

static inline int cp_store_flags(const cp_conv_geom *g)
{
    return (g->stream ? CP_STORE_STREAM : 0) | (g->relu ? CP_STORE_RELU : 0);
}

/* Elements of a scratch region of `elems`, rounded up to whole CP_ALIGN lines. */
static int64_t lines_of(int64_t elems, int64_t itemsize)
{
    const int64_t per = CP_ALIGN / itemsize;
    return (elems + per - 1) / per * per;
}

/* ---- gathering patches ------------------------------------------------------ */
/* The input index a tap at i (outside [0, n)) reads under a padding mode other
 * than zeros; Python checked that one reflection or wrap reaches [0, n). */
static inline int64_t padded_index(int64_t i, int64_t n, int64_t mode)
{
    switch (mode) {
    case CP_PAD_REFLECT:
        return i < 0 ? -i : 2 * (n - 1) - i;
    case CP_PAD_REPLICATE:
        return i < 0 ? 0 : n - 1;
    default: /* CP_PAD_CIRCULAR */
        return i < 0 ? i + n : i - n;
    }
}

/* The patch of output pixel (n, oh, ow) for group grp into dst[0:K], zeros for
 * taps in the padding.  Element-type agnostic (bytes). */
static void gather_patch(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t n,
                         int64_t oh, int64_t ow, int64_t grp, char *dst)
{
    const int64_t ih0 = oh * g->sh - g->pt;
    const int64_t iw0 = ow * g->sw - g->pl;
    const int64_t run = g->kw * g->cg * itemsize; /* bytes per kernel row */
    const int64_t cg_bytes = g->cg * itemsize;
    const int64_t pixel_bytes = g->c * itemsize;
    /* With dilation 1, one group and no padding in this row of taps, the kw
     * taps are one contiguous run of the input row. */
    const int whole_run = g->dw == 1 && g->groups == 1 && iw0 >= 0 && iw0 + g->kw <= g->w;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        int64_t ih = ih0 + kh * g->dh;
        if (ih < 0 || ih >= g->h) {
            if (g->pad_mode == CP_PAD_ZEROS) {
                memset(dst, 0, (size_t)run);
                dst += run;
                continue;
            }
            ih = padded_index(ih, g->h, g->pad_mode);
        }
        const char *src = x + ((n * g->h + ih) * g->w) * pixel_bytes + grp * cg_bytes;
        if (whole_run) {
            memcpy(dst, src + iw0 * pixel_bytes, (size_t)run);
            dst += run;
            continue;
        }
        for (int64_t kw = 0; kw < g->kw; kw++) {
            int64_t iw = iw0 + kw * g->dw;
            if (iw < 0 || iw >= g->w) {
                if (g->pad_mode == CP_PAD_ZEROS) {
                    memset(dst, 0, (size_t)cg_bytes);
                    dst += cg_bytes;
                    continue;
                }
                iw = padded_index(iw, g->w, g->pad_mode);
            }
            memcpy(dst, src + iw * pixel_bytes, (size_t)cg_bytes);
            dst += cg_bytes;
        }
    }
}

/* The patches of flat output pixels [p0, p0 + count) for group grp:
 * scratch[i * ld + k], k < K (ld >= K; the elements between are not written). */
void cp_gather_patches(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t p0,
                       int64_t count, int64_t grp, char *scratch, int64_t ld)
{
    CP_ASSERT(ld >= g->k);
    const int64_t per_image = g->oh * g->ow;
    int64_t n = p0 / per_image;
    int64_t oh = (p0 % per_image) / g->ow;
    int64_t ow = p0 % g->ow;
    for (int64_t i = 0; i < count; i++) {
        gather_patch(g, x, itemsize, n, oh, ow, grp, scratch + i * ld * itemsize);
        if (++ow == g->ow) {
            ow = 0;
            if (++oh == g->oh) {
                oh = 0;
                n++;
            }
        }
    }
}

/* ---- Winograd's kernel transform ------------------------------------------- */
/* G of F(4x4, 3x3) with the points {0, -1, 1, 1/2, -2, inf}, its rows scaled
 * by powers of two so that B^T is integer (cp_tpl_winograd.h):
 *     G = [1/2 0 0; -1/6 1/6 -1/6; 1/6 1/6 1/6; -16/15 -8/15 -4/15;
 *          1/30 -1/15 2/15; 0 0 1/2],
 * applied to three values g0, g1, g2 (a column, then a row of the 3x3
 * kernel: U = G g G^T), in double; the caller rounds U once.  Vectorised
 * over `n` kernels side by side (out[a * n + j] from g[i * n + j]).  The
 * thirds, fifteenths and thirtieths are products with the double nearest
 * the fraction (a relative error under 2^-52 before U is rounded to the
 * dtype), not divisions: a division costs 4-16 times a product.  A
 * (1, 8, 8, 256) -> 256 call, almost all of it this transform, took 3.0 ms
 * with divisions and 2.15 ms with products (2-core Xeon, AVX-512). */
#define CP_SIXTH (1.0 / 6.0)
#define CP_FIFTEENTH (1.0 / 15.0)
#define CP_THIRTIETH (1.0 / 30.0)
static void cp_wg_g(const double *g0, const double *g1, const double *g2, int64_t n,
                    double *out, int64_t stride)
{
    for (int64_t j = 0; j < n; j++) {
        const double a = g0[j], b = g1[j], c = g2[j], ac = a + c;
        out[j] = a * 0.5;
        out[stride + j] = (b - ac) * CP_SIXTH;
        out[2 * stride + j] = (ac + b) * CP_SIXTH;
        out[3 * stride + j] = -(16 * a + 8 * b + 4 * c) * CP_FIFTEENTH;
        out[4 * stride + j] = (a - 2 * b + 4 * c) * CP_THIRTIETH;
        out[5 * stride + j] = c * 0.5;
    }
}

/* The adjoint of cp_wg_g: g = G^T u of six values (out[k * stride + j]). */
static void cp_wg_gt(const double *u, int64_t ustride, int64_t n, double *out, int64_t stride)
{
    for (int64_t j = 0; j < n; j++) {
        const double u0 = u[j], u1 = u[ustride + j], u2 = u[2 * ustride + j],
                     u3 = u[3 * ustride + j], u4 = u[4 * ustride + j], u5 = u[5 * ustride + j];
        out[j] = u0 * 0.5 + (u2 - u1) * CP_SIXTH + (u4 - 32 * u3) * CP_THIRTIETH;
        out[stride + j] = (u1 + u2) * CP_SIXTH - (8 * u3 + u4) * CP_FIFTEENTH;
        out[2 * stride + j] = (u2 - u1) * CP_SIXTH + (2 * u4 - 4 * u3) * CP_FIFTEENTH + u5 * 0.5;
    }
}
#undef CP_SIXTH
#undef CP_FIFTEENTH
#undef CP_THIRTIETH

/* ---- the Winograd weight gradient's plan ------------------------------------ */
/* The tiles of a pass: vt and dm of one pass (about 36 (C + OC) values a
 * tile) fill about CP_WGW_PASS_BYTES, in a multiple of CP_WGW_PASS_STEP
 * chunks within [CP_WGW_PASS_MIN, CP_WGW_PASS_MAX].  Small passes keep dm,
 * which the chunks write in 36 x panels streams and the GEMMs read back, near
 * the cores.  Measured on a 2-core Xeon (AVX-512, 2 MB of L2 a core), weight
 * gradients of (64, H, H, C) -> OC, 2 threads, by chunks per pass:
 *     (16, 64 -> 64):  4: 2.5 ms, 8: 2.6, 12: 3.1, 16: 3.0
 *     (8, 64 -> 128):  4: 1.45 ms, 12: 2.1, 16 (one pass): 1.35-1.5
 *     (32, 32 -> 32):  4: 3.85 ms, 8: 3.7-4.3, 16: 3.7
 * (the previous rule, 4 MB in 8-16 chunks, took 3.2, 1.75 and 3.7 ms; on
 * Zen 3, passes of up to 64 chunks, the first design, took 1.5-2.3x as long
 * as 8-16 for 32-64 channels).  A multiple of 4 chunks shares the chunk stage
 * evenly between 2 or 4 threads (7 or 9 chunks left a thread idle an eighth
 * of it).  The pass is cut from the geometry alone (C and OC, not the ISA's
 * NR nor the thread count), so it never changes a result's bits between
 * thread counts or ISAs. */
#define CP_WGW_PASS_BYTES (1280 * 1024)
#define CP_WGW_PASS_STEP 4
#define CP_WGW_PASS_MIN 4
#define CP_WGW_PASS_MAX 16

int cp_wgw_plan(cp_wgw_geom *w, int64_t itemsize)
{
    w->f.pad_mode = CP_PAD_ZEROS;
    if (cp_conv_plan(&w->f, itemsize, CP_CONV_WINOGRAD) != 0)
        return -1;
    const cp_conv_geom *g = &w->f;
    const int64_t B = CP_WGW_CHUNK;
    w->tiles = g->n * g->wg_th * g->wg_tw;
    const int64_t per_tile = 36 * (g->c + g->oc) * itemsize;
    const int64_t step = CP_WGW_PASS_STEP * B;
    int64_t pass = CP_WGW_PASS_BYTES / per_tile / step * step;
    if (pass > CP_WGW_PASS_MAX * B)
        pass = CP_WGW_PASS_MAX * B;
    if (pass < CP_WGW_PASS_MIN * B)
        pass = CP_WGW_PASS_MIN * B;
    if (pass > (w->tiles + B - 1) / B * B)
        pass = (w->tiles + B - 1) / B * B;
    w->pass = pass;
    w->passes = (w->tiles + pass - 1) / pass;
    w->chunks = pass / B;
    w->jobs = 36 * g->panels;
    return 0;
}

int64_t cp_wgw_v_elems(const cp_wgw_geom *w) { return 36 * w->f.c * w->pass; }
int64_t cp_wgw_m_elems(const cp_wgw_geom *w) { return 36 * w->f.panels * w->pass * w->f.nr; }
int64_t cp_wgw_du_elems(const cp_wgw_geom *w) { return 36 * w->f.c * w->f.panels * w->f.nr; }
int64_t cp_wgw_scratch_elems(const cp_wgw_geom *w)
{
    const int64_t wide = w->f.c > w->f.nr ? w->f.c : w->f.nr;
    return lines_of(36 * CP_WGW_CHUNK * w->f.c, w->f.itemsize) +
           2 * lines_of(36 * wide, w->f.itemsize);
}

/* ---- the per-unit drivers, per dtype ----------------------------------------- */
#define CP_TEMPLATE "cp_tpl_conv.h"
#include "cp_each_dtype.h"

/* ---- the algorithm table ---------------------------------------------------- */
static int64_t pixels_of(const cp_conv_geom *g) { return g->n * g->oh * g->ow; }

/* The depthwise kernel reads its taps itself, with zero padding only. */
static int depthwise_applies(const cp_conv_geom *g)
{
    return g->groups == g->c && g->groups == g->oc && g->kh * g->kw <= CP_MAX_SEG &&
           g->pad_mode == CP_PAD_ZEROS;
}
static int pointwise_applies(const cp_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
           g->oh == g->h && g->ow == g->w && g->groups == 1;
}
static int rows_applies(const cp_conv_geom *g) { return g->nseg <= CP_MAX_SEG; }
static int winograd_applies(const cp_conv_geom *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
           g->groups == 1 && g->pad_mode == CP_PAD_ZEROS;
}
/* "auto" takes Winograd for float32 layers wide enough that the GEMMs over
 * the channels dominate the transforms, and with outputs of at least one
 * tile (measured: README.md, "Winograd"); float64 keeps the direct algorithms.
 * The choice depends on the geometry and the dtype only. */
#define CP_WG_MIN_C 16
#define CP_WG_MIN_OC 16
static int winograd_preferred(const cp_conv_geom *g)
{
    return g->itemsize == 4 && g->c >= CP_WG_MIN_C && g->oc >= CP_WG_MIN_OC &&
           g->oh >= CP_WG_M && g->ow >= CP_WG_M;
}
static int always(const cp_conv_geom *g) { return (void)g, 1; }
/* ROWS wants enough output columns to fill register tiles: 24 is four AVX2
 * tiles or two AVX-512 ones.  A row's interior columns run as whole tiles of
 * MR pixels and one partial tile; when that leaves more than 15% of the
 * tiles' rows empty on a layer of 128 or more output channels, GATHER's
 * copy (its K values per pixel, small against its K x OC multiply-adds)
 * costs less than the empty rows.  Measured on a 2-core Xeon with AVX-512
 * (MR = 12), float32: (8, 28, 28, 256) -> 256 'same' (26 interior columns,
 * 28% empty) ROWS 32.8-34.4 ms, GATHER 25.4-25.9 ms; on layers of 32 or 64
 * channels, or of 1-3 input channels, ROWS was as fast or faster (up to 2.5x
 * on (128, 28, 28, 1) -> 32).  Every direct algorithm gives the same bits,
 * so the choice (which depends on the ISA's MR) changes no result. */
#define CP_ROWS_MIN_OW 24
static int rows_preferred(const cp_conv_geom *g)
{
    const int64_t inside = g->ow_hi - g->ow_lo;
    const int64_t filled = (inside + g->mr - 1) / g->mr * g->mr;
    if (g->ow < CP_ROWS_MIN_OW)
        return 0;
    return g->ocg < 128 || 100 * (filled - inside) <= 15 * filled;
}

static int64_t rows_units(const cp_conv_geom *g) { return g->n * g->oh; }
static int64_t tile_units(const cp_conv_geom *g)
{
    return (pixels_of(g) + g->tile - 1) / g->tile;
}
static int64_t zeros_row(const cp_conv_geom *g) { return g->c; } /* taps in the padding */
static int64_t no_scratch(const cp_conv_geom *g) { return (void)g, 0; }
static int64_t im2col_tile(const cp_conv_geom *g) { return g->tile * g->k; }
static int64_t winograd_units(const cp_conv_geom *g)
{
    return (g->n * g->wg_th * g->wg_tw + g->wg_block - 1) / g->wg_block;
}
/* The flag, V, M, D and T of cp_tpl_winograd.h. */
static int64_t winograd_scratch(const cp_conv_geom *g)
{
    const int64_t wide = g->c > g->nr ? g->c : g->nr;
    return CP_ALIGN / g->itemsize + lines_of(36 * g->wg_block * g->c, g->itemsize) +
           lines_of(36 * g->wg_block * g->nr, g->itemsize) +
           2 * lines_of(36 * wide, g->itemsize);
}

typedef struct {
    const char *name;
    int exact;                               /* the micro-kernel contract's order */
    int (*applies)(const cp_conv_geom *g);   /* can it compute this geometry? */
    int (*preferred)(const cp_conv_geom *g); /* is it the one to take (for "auto")? */
    int64_t (*units)(const cp_conv_geom *g);
    int64_t (*scratch_elems)(const cp_conv_geom *g); /* per thread */
    void (*run_f32)(const cp_conv_geom *, const float *, const float *, const float *, float *,
                    int64_t, float *);
    void (*run_f64)(const cp_conv_geom *, const double *, const double *, const double *,
                    double *, int64_t, double *);
} cp_conv_algorithm;

static const cp_conv_algorithm algorithms[CP_CONV_ALGORITHMS] = {
    [CP_CONV_DEPTHWISE] = {"depthwise", 1, depthwise_applies, always, rows_units, zeros_row,
                           run_depthwise_f32, run_depthwise_f64},
    [CP_CONV_POINTWISE] = {"pointwise", 1, pointwise_applies, always, tile_units, no_scratch,
                           run_pointwise_f32, run_pointwise_f64},
    [CP_CONV_WINOGRAD] = {"winograd", 0, winograd_applies, winograd_preferred, winograd_units,
                          winograd_scratch, run_winograd_f32, run_winograd_f64},
    [CP_CONV_ROWS] = {"rows", 1, rows_applies, rows_preferred, rows_units, im2col_tile,
                      run_rows_f32, run_rows_f64},
    [CP_CONV_GATHER] = {"gather", 1, always, always, tile_units, im2col_tile, run_gather_f32,
                        run_gather_f64},
};

const char *cp_conv_algorithm_name(int64_t algorithm)
{
    return algorithm >= 0 && algorithm < CP_CONV_ALGORITHMS ? algorithms[algorithm].name
                                                             : "unknown";
}

int cp_conv_algorithm_exact(int64_t algorithm)
{
    return algorithm >= 0 && algorithm < CP_CONV_ALGORITHMS && algorithms[algorithm].exact;
}

/* ---- plan ------------------------------------------------------------------ */
int cp_conv_plan(cp_conv_geom *g, int64_t itemsize, int64_t algorithm)
{
    g->itemsize = itemsize;
    g->cg = g->c / g->groups;
    g->ocg = g->oc / g->groups;
    g->k = g->kh * g->kw * g->cg;
    g->gemm = cp_gemm_kind(itemsize, g->ocg);
    cp_gemm_shape(itemsize, g->gemm, &g->mr, &g->nr);
    g->panels = (g->ocg + g->nr - 1) / g->nr;
    {
        const int64_t pixels = pixels_of(g), mr = g->mr;
        int64_t tile = CP_CONV_TILE_BYTES / (g->k * itemsize);
        tile = tile / mr * mr;
        if (tile < mr)
            tile = mr;
        if (tile > (pixels + mr - 1) / mr * mr)
            tile = (pixels + mr - 1) / mr * mr;
        g->tile = tile;
    }
    /* Interior output columns: every tap inside [0, W). */
    {
        const int64_t span = (g->kw - 1) * g->dw;
        int64_t lo = (g->pl + g->sw - 1) / g->sw;
        int64_t hi = g->w - 1 + g->pl - span < 0 ? 0 : (g->w - 1 + g->pl - span) / g->sw + 1;
        if (hi > g->ow)
            hi = g->ow;
        if (lo > hi)
            lo = hi;
        g->ow_lo = lo;
        g->ow_hi = hi;
    }
    if (g->dw == 1 && g->groups == 1) {
        g->nseg = g->kh;
        g->kseg = g->kw * g->c;
    } else {
        g->nseg = g->kh * g->kw;
        g->kseg = g->cg;
    }
    /* Winograd's grid of 4x4 output tiles, and the tiles per unit: a block
     * whose transformed input and products (V and M) stay in a 256 KiB share
     * of the L2 cache, a multiple of the micro-kernel's rows.  The block only
     * trades cache residency against per-unit overhead: any gives the same bits. */
    g->wg_th = (g->oh + CP_WG_M - 1) / CP_WG_M;
    g->wg_tw = (g->ow + CP_WG_M - 1) / CP_WG_M;
    {
        const int64_t tiles = g->n * g->wg_th * g->wg_tw, mr = g->mr;
        int64_t block = (256 * 1024) / (36 * itemsize * (g->c + g->nr));
        block = block / mr * mr;
        if (block < mr)
            block = mr;
        if (block > 4 * mr)
            block = 4 * mr;
        if (block > (tiles + mr - 1) / mr * mr)
            block = (tiles + mr - 1) / mr * mr;
        g->wg_block = block;
    }
    if (algorithm >= 0) {
        if (algorithm >= CP_CONV_ALGORITHMS || !algorithms[algorithm].applies(g))
            return -1;
    } else {
        const int direct_only = algorithm == CP_CONV_AUTO_DIRECT;
        for (algorithm = 0; algorithm < CP_CONV_ALGORITHMS; algorithm++)
            if ((!direct_only || algorithms[algorithm].exact) && algorithms[algorithm].applies(g) &&
                algorithms[algorithm].preferred(g))
                break;
    }
    g->algorithm = algorithm;
    g->units = algorithms[algorithm].units(g);
    /* ROWS with windows that do not overlap down the image (stride >= the
     * window's height), over an input too large to stay in the caches: every
     * input row is read by one output row only, straight from memory.  So
     * each output row prefetches (into L2) the next one's window rows as it
     * goes, a micro-kernel call of MR pixels at a time, and the memory
     * streams while the FMAs run.  The full-HD 5x5/5 conv, 2 threads on the
     * 2-core Xeon, builds alternating: 79-83 ms without, 68-73 ms with;
     * prefetching 2 or 4 calls' share at once (86-93 ms) or non-temporally
     * (190 ms) was slower.  Overlapping windows find most of their rows in
     * the cache, and MR-pixel calls cost more than the prefetch gains there
     * (full-HD 3x3 same, 3 -> 16: 74 ms as one call a row, 86 in calls of MR). */
    g->pf_rows = 0;
    if (algorithm == CP_CONV_ROWS && g->sh >= (g->kh - 1) * g->dh + 1 &&
        g->n * g->h * g->w * g->c * itemsize >= cp_rows_prefetch_threshold)
        g->pf_rows = g->kh;
    g->stream = 0;
    g->relu = 0;
    return 0;
}

void cp_conv_set_output(cp_conv_geom *g, const void *y, int64_t itemsize)
{
    const int large = g->n * g->oh * g->ow * g->oc * itemsize >= cp_stream_threshold &&
                      (uintptr_t)y % CP_ALIGN == 0;
    if (g->algorithm == CP_CONV_DEPTHWISE) /* whole lines of channels per pixel */
        g->stream = large && (g->c * itemsize) % CP_ALIGN == 0;
    else
        g->stream = large && g->algorithm != CP_CONV_WINOGRAD && g->ocg % g->nr == 0;
}

int64_t cp_conv_scratch_elems(const cp_conv_geom *g)
{
    return algorithms[g->algorithm].scratch_elems(g);
}

int cp_conv_nonfinite(const cp_conv_geom *g, const void *scratch)
{
    return g->algorithm == CP_CONV_WINOGRAD && *(const int64_t *)scratch != 0;
}

int64_t cp_conv_pack_units(const cp_conv_geom *g)
{
    return g->algorithm == CP_CONV_DEPTHWISE ? 1 : g->groups * g->panels;
}

int64_t cp_conv_packed_elems(const cp_conv_geom *g)
{
    if (g->algorithm == CP_CONV_DEPTHWISE)
        return g->k * g->oc;
    if (g->algorithm == CP_CONV_WINOGRAD)
        return CP_WG_A * CP_WG_A * g->panels * g->c * g->nr;
    return g->groups * g->panels * g->k * g->nr;
}

void cp_conv2d_nhwc_unit_f32(const cp_conv_geom *g, const float *x, const float *packed,
                             const float *bias, float *y, int64_t unit, float *scratch)
{
    CP_ASSERT(unit >= 0 && unit < g->units);
    algorithms[g->algorithm].run_f32(g, x, packed, bias, y, unit, scratch);
}

void cp_conv2d_nhwc_unit_f64(const cp_conv_geom *g, const double *x, const double *packed,
                             const double *bias, double *y, int64_t unit, double *scratch)
{
    CP_ASSERT(unit >= 0 && unit < g->units);
    algorithms[g->algorithm].run_f64(g, x, packed, bias, y, unit, scratch);
}
