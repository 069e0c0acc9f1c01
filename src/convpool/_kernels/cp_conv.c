/*
 * Convolution as a tiled im2col + GEMM, NHWC.
 *
 * The output is a matrix Y[P, OC] with P = N * OH * OW pixels (NHWC order), and
 * for group grp:
 *     Y[p, grp*OCg : (grp+1)*OCg] = A_grp[p, :] @ W_grp        (+ bias)
 * where A_grp[p, k], k = (kh * KW + kw) * Cg + c, is the patch of pixel p
 * (zeros where it falls in the padding) and W_grp is the (K, OCg) slice of the
 * kernel, (KH, KW, Cg, OC) in Keras order, so no transposition is needed.
 *
 * Work is split into tiles of g->tile consecutive pixels.  One thread handles a
 * tile: it gathers the tile's patches into its own scratch (tile * K elements,
 * sized for the L2 cache, never for the input), then runs the register-tiled
 * micro-kernel over the packed weight panels.  The full im2col matrix is never
 * built.  A tile's output rows are contiguous (ldc = OC) and written once.
 */
#include <string.h>

#include "cp_internal.h"

/* Target size of one thread's im2col tile.  Any value gives the same bits;
 * this only trades cache residency against per-tile overhead. */
#define CP_CONV_TILE_BYTES (48 * 1024)

void cp_conv_plan(cp_conv_geom *g, int64_t itemsize)
{
    const int64_t nr = itemsize == 4 ? CP_NR_F32 : CP_NR_F64;
    const int64_t pixels = g->n * g->oh * g->ow;
    int64_t tile;
    g->cg = g->c / g->groups;
    g->ocg = g->oc / g->groups;
    g->k = g->kh * g->kw * g->cg;
    g->panels = (g->ocg + nr - 1) / nr;
    tile = CP_CONV_TILE_BYTES / (g->k * itemsize > 0 ? g->k * itemsize : 1);
    tile = tile / CP_MR * CP_MR;
    if (tile < CP_MR)
        tile = CP_MR;
    /* No more than the whole output, rounded up to the register tile. */
    if (tile > (pixels + CP_MR - 1) / CP_MR * CP_MR)
        tile = (pixels + CP_MR - 1) / CP_MR * CP_MR;
    g->tile = tile;
}

int64_t cp_conv_tiles(const cp_conv_geom *g)
{
    return (g->n * g->oh * g->ow + g->tile - 1) / g->tile;
}

int64_t cp_conv_scratch_elems(const cp_conv_geom *g) { return g->tile * g->k; }

int64_t cp_conv_packed_elems(const cp_conv_geom *g, int64_t nr)
{
    return g->groups * g->panels * g->k * nr;
}

/* packed[((grp * panels + p) * K + k) * NR + j] = kernel[k, grp * OCg + p * NR + j],
 * zero for p * NR + j >= OCg. */
#define DEFINE_PACK(T, SUFFIX, NR)                                                          \
    void cp_conv_pack_##SUFFIX(const cp_conv_geom *g, const T *kernel, T *packed)           \
    {                                                                                       \
        for (int64_t grp = 0; grp < g->groups; grp++)                                       \
            for (int64_t p = 0; p < g->panels; p++)                                         \
                for (int64_t k = 0; k < g->k; k++) {                                        \
                    T *dst = packed + ((grp * g->panels + p) * g->k + k) * (NR);            \
                    for (int64_t j = 0; j < (NR); j++) {                                    \
                        const int64_t oc = p * (NR) + j;                                    \
                        dst[j] = oc < g->ocg ? kernel[k * g->oc + grp * g->ocg + oc] : (T)0; \
                    }                                                                       \
                }                                                                           \
    }

DEFINE_PACK(float, f32, CP_NR_F32)
DEFINE_PACK(double, f64, CP_NR_F64)

/* Gather the patch of output pixel (n, oh, ow) for group grp into dst[0:K],
 * zeros for taps in the padding.  Element-type agnostic (bytes). */
static void gather_patch(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t n,
                         int64_t oh, int64_t ow, int64_t grp, char *dst)
{
    const int64_t ih0 = oh * g->sh - g->pt;
    const int64_t iw0 = ow * g->sw - g->pl;
    const int64_t run = g->kw * g->cg * itemsize;  /* bytes per kernel row */
    const int64_t cg_bytes = g->cg * itemsize;
    const int64_t pixel_bytes = g->c * itemsize;
    /* With dilation 1, one group and no padding in this row of taps, the kw
     * taps are one contiguous run of the input row. */
    const int whole_run = g->dw == 1 && g->groups == 1 && iw0 >= 0 && iw0 + g->kw <= g->w;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        const int64_t ih = ih0 + kh * g->dh;
        if (ih < 0 || ih >= g->h) {
            memset(dst, 0, (size_t)run);
            dst += run;
            continue;
        }
        const char *src = x + ((n * g->h + ih) * g->w) * pixel_bytes + grp * cg_bytes;
        if (whole_run) {
            memcpy(dst, src + iw0 * pixel_bytes, (size_t)run);
            dst += run;
            continue;
        }
        for (int64_t kw = 0; kw < g->kw; kw++) {
            const int64_t iw = iw0 + kw * g->dw;
            if (iw < 0 || iw >= g->w)
                memset(dst, 0, (size_t)cg_bytes);
            else
                memcpy(dst, src + iw * pixel_bytes, (size_t)cg_bytes);
            dst += cg_bytes;
        }
    }
}

/* Gather the patches of pixels [p0, p0 + count) for group grp: scratch[i * K + k]. */
static void gather_tile(const cp_conv_geom *g, const char *x, int64_t itemsize, int64_t p0,
                        int64_t count, int64_t grp, char *scratch)
{
    const int64_t per_image = g->oh * g->ow;
    int64_t n = p0 / per_image;
    int64_t oh = (p0 % per_image) / g->ow;
    int64_t ow = p0 % g->ow;
    for (int64_t i = 0; i < count; i++) {
        gather_patch(g, x, itemsize, n, oh, ow, grp, scratch + i * g->k * itemsize);
        if (++ow == g->ow) {
            ow = 0;
            if (++oh == g->oh) {
                oh = 0;
                n++;
            }
        }
    }
}

#define DEFINE_CONV_TILE(T, SUFFIX, NR, GEMM)                                               \
    void cp_conv2d_nhwc_tile_##SUFFIX(const cp_conv_geom *g, const T *x, const T *packed,   \
                                      const T *bias, T *y, int64_t tile, T *scratch)        \
    {                                                                                       \
        const int64_t pixels = g->n * g->oh * g->ow;                                        \
        const int64_t p0 = tile * g->tile;                                                  \
        const int64_t count = pixels - p0 < g->tile ? pixels - p0 : g->tile;                \
        for (int64_t grp = 0; grp < g->groups; grp++) {                                     \
            gather_tile(g, (const char *)x, sizeof(T), p0, count, grp, (char *)scratch);    \
            for (int64_t p = 0; p < g->panels; p++) {                                       \
                const T *panel = packed + (grp * g->panels + p) * g->k * (NR);              \
                const int64_t oc0 = grp * g->ocg + p * (NR);                                \
                const int64_t nr = g->ocg - p * (NR) < (NR) ? g->ocg - p * (NR) : (NR);     \
                const T *bias_p = bias != NULL ? bias + oc0 : NULL;                         \
                for (int64_t i = 0; i < count; i += CP_MR) {                                \
                    const int64_t mr = count - i < CP_MR ? count - i : CP_MR;               \
                    GEMM(g->k, scratch + i * g->k, g->k, panel, y + (p0 + i) * g->oc + oc0, \
                         g->oc, mr, nr, bias_p);                                            \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }

DEFINE_CONV_TILE(float, f32, CP_NR_F32, cp_active.gemm_f32)
DEFINE_CONV_TILE(double, f64, CP_NR_F64, cp_active.gemm_f64)
