/*
 * convpool compute kernels: the C side of convpool._kernels._core.
 *
 * Everything here computes on explicit 64-bit integers: padding is already
 * (top, left) offsets, strides and dilation are >= 1, output sizes are known
 * and valid.  Validation and normalisation happen in Python (functional.py,
 * _shapes.py) before any of these functions runs.
 *
 * Layout: NHWC, C-contiguous.  Each function below computes one unit of
 * work (an output row or a tile of output pixels for conv, an output row
 * (n, oh) for pooling) with the ISA variant selected at import;
 * the OpenMP parallel loop over units lives in _core.pyx.  A unit is written
 * by exactly one thread, and every output value is a sum (or max) taken in a
 * fixed order that depends only on the geometry, so results are bitwise
 * identical whatever the thread count or the split.
 */
#ifndef CP_KERNELS_H
#define CP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Alignment of every scratch and packed buffer (a cache line). */
#define CP_ALIGN 64

typedef struct {
    int64_t n, h, w, c;        /* input (N, H, W, C) */
    int64_t oh, ow, oc;        /* output (N, OH, OW, OC) */
    int64_t kh, kw;            /* kernel taps */
    int64_t sh, sw;            /* strides */
    int64_t dh, dw;            /* dilation */
    int64_t pt, pl;            /* padding top, left (bottom/right are implied by oh, ow) */
    int64_t groups;            /* C % groups == 0, OC % groups == 0 */
    int64_t cg, ocg;           /* channels per group, in and out */
    int64_t k;                 /* reduction length: kh * kw * cg */
    int64_t gemm;              /* CP_GEMM_WIDE or CP_GEMM_NARROW: the micro-kernel tile */
    int64_t mr, nr;            /* ... and its shape: MR pixels x NR output channels */
    int64_t panels;            /* ceil(ocg / nr) weight panels per group */
    int64_t tile;              /* output pixels per im2col tile (a multiple of mr) */
    int64_t algorithm;         /* CP_CONV_* below */
    int64_t units;             /* independent units of work (rows or pixel tiles) */
    int64_t nseg, kseg;        /* ROWS: A segments per pixel and their length */
    int64_t ow_lo, ow_hi;      /* output columns whose taps all lie inside the input */
    int64_t stream;            /* write the output with non-temporal stores */
    int64_t relu;              /* apply max(0, .) (NaN kept) as the output is written */
    int64_t pad_mode;          /* CP_PAD_*: what a tap outside the input reads (set before
                                * cp_conv_plan; not zeros: a pad < H, W, <= for circular) */
    int64_t itemsize;          /* 4 or 8 (set by cp_conv_plan) */
    int64_t wg_th, wg_tw;      /* WINOGRAD: 4x4 output tiles per image, down and across */
    int64_t wg_block;          /* ... and tiles per unit of work (a multiple of mr) */
    int64_t pf_rows;           /* ROWS: the bottom window rows of the next output row that
                                * a row prefetches as it goes (0: none; see cp_conv.c) */
} cp_conv_geom;

/* conv2d's padding_mode (PyTorch's): zeros, or the input reflected about its
 * edge pixel, its edge pixel repeated, or the input wrapped around. */
enum { CP_PAD_ZEROS = 0, CP_PAD_REFLECT = 1, CP_PAD_REPLICATE = 2, CP_PAD_CIRCULAR = 3 };

/* The conv algorithms (cp_conv.c's table), in the order cp_conv_plan tries
 * them: the first one applicable and preferred for the geometry is used.
 * WINOGRAD computes F(4x4, 3x3) in the transformed domain (its own bits, a
 * documented error bound); the others are "direct": the exact order of the
 * micro-kernel contract, identical bits among them. */
enum { CP_CONV_DEPTHWISE = 0, CP_CONV_POINTWISE = 1, CP_CONV_WINOGRAD = 2, CP_CONV_ROWS = 3,
       CP_CONV_GATHER = 4, CP_CONV_ALGORITHMS };
/* cp_conv_plan's algorithm argument besides a CP_CONV_* entry: the preferred
 * of all algorithms, or of the direct ones only. */
enum { CP_CONV_AUTO = -1, CP_CONV_AUTO_DIRECT = -2 };
/* Winograd F(4x4, 3x3): 6x6 input tiles, 36 transformed elements. */
#define CP_WG_M 4
#define CP_WG_A 6

/* The micro-kernel tiles each ISA offers per dtype: WIDE (e.g. 6x16 float32
 * on AVX2) and NARROW, one vector of output channels, for layers with at
 * most that many (the seed's 16 filters on AVX-512). */
enum { CP_GEMM_WIDE = 0, CP_GEMM_NARROW = 1, CP_GEMM_KINDS };
/* The tallest and widest micro-kernel tile of any ISA (AVX-512: 12 rows, two
 * 64-byte vectors); workspace bounds and ISA-independent tiles use them. */
#define CP_MAX_MR 12
#define CP_MAX_NR_BYTES 128
/* Micro-kernel store flags (see the contract in cp_internal.h). */
enum { CP_STORE_STREAM = 1, CP_STORE_RELU = 2, CP_STORE_ACCUM = 4 };

/* Most A segments (kernel rows, or taps) per pixel in the ROWS strategy. */
#define CP_MAX_SEG 256

/* The most taps in a row of windows, and the most lanes, of the packed pass. */
#define CP_POOL_PACK_KW 4
#define CP_POOL_PACK_LANES 16
typedef struct {
    int64_t n, h, w, c;        /* input (N, H, W, C); the output has the same C */
    int64_t oh, ow;
    int64_t kh, kw;            /* pool size */
    int64_t sh, sw;            /* strides */
    int64_t dh, dw;            /* dilation: the direct kernel's only (the separable ones: 1) */
    int64_t pt, pl;            /* padding top, left */
    int64_t pb, pr;            /* padding bottom, right (a ceil_mode window may reach past it) */
    int64_t count_include_pad; /* avg only: divide by the window's cells inside the padded
                                * input (kh * kw but for ceil_mode's last windows) instead
                                * of its real cells */
    int64_t divisor;           /* avg only: > 0 divides every window by this (divisor_override) */
    int64_t tile;              /* output pixels per horizontal tile */
    int64_t stream;            /* write the output with non-temporal stores */
    int64_t relu;              /* max gradient only: x is a ReLU's output and the gradient
                                * goes on through it (a window's passes only where its
                                * maximum is > 0): the ReLU's input gradient */
    /* The forward kernels' packed pass (cp_tpl_pool.h): lane l of the window
     * taps k < CP_POOL_PACK_KW reads element (l / C * sw + k * dw) * C + l % C
     * of the windows' rows, as the 32-bit lanes of float32 and the 64-bit
     * lanes of float64 index it; set by cp_pool_plan, so a row loads them
     * from memory written long before instead of building them. */
    int32_t pack_ix32[CP_POOL_PACK_KW][CP_POOL_PACK_LANES];
    int64_t pack_ix64[CP_POOL_PACK_KW][CP_POOL_PACK_LANES / 2];
} cp_pool_geom;

/* ---- memory ---------------------------------------------------------- */
void *cp_aligned_alloc(size_t bytes);   /* CP_ALIGN-aligned, zero-filled; NULL on failure */
void cp_aligned_free(void *p);

/* Outputs of at least this many bytes are written with non-temporal stores
 * (they do not fit the caches, so reading their lines first only costs
 * bandwidth).  Settable so the tests can cover both store paths. */
extern int64_t cp_stream_threshold;
/* Inputs of at least this many bytes are streamed from memory by ROWS, which
 * then prefetches each next output row's window rows (cp_conv_plan).
 * Settable so the tests can cover both call patterns. */
extern int64_t cp_rows_prefetch_threshold;

/* ---- dispatch --------------------------------------------------------- */
/* ISAs are numbered 0 .. cp_isa_count() - 1, from the most portable
 * (cp_isa_list.h). */
int cp_isa_count(void);
const char *cp_isa_name(int isa);
int cp_isa_compiled(int isa);           /* was that variant compiled into this build? */
int cp_isa_supported(int isa);          /* can this CPU and OS run it? */
int cp_isa_emulated(int isa);           /* built on an emulation of its intrinsics (tests) */
void cp_isa_select(int isa);            /* caller checks compiled + supported */
int cp_isa_selected(void);
/* The tile (MR, NR) of the selected ISA's micro-kernel `kind` for itemsize 4 or 8. */
void cp_gemm_shape(int64_t itemsize, int64_t kind, int64_t *mr, int64_t *nr);
/* The kind of tile for a GEMM with `cols` output columns. */
int64_t cp_gemm_kind(int64_t itemsize, int64_t cols);
/* The micro-kernel of ISA `isa`, called directly (for the micro-kernel tests);
 * the contract is in cp_internal.h. */
void cp_gemm_call_f32(int isa, int64_t kind, int64_t m, int64_t nseg, const float *const *seg,
                      int64_t lda, int64_t kseg, const float *b, float *c, int64_t ldc,
                      int64_t nr, const float *bias, int flags);
void cp_gemm_call_f64(int isa, int64_t kind, int64_t m, int64_t nseg, const double *const *seg,
                      int64_t lda, int64_t kseg, const double *b, double *c, int64_t ldc,
                      int64_t nr, const double *bias, int flags);

/* ---- convolution ------------------------------------------------------ */
const char *cp_conv_algorithm_name(int64_t algorithm);
/* 1 if the algorithm keeps the micro-kernel contract's exact order ("direct"). */
int cp_conv_algorithm_exact(int64_t algorithm);
/* Fill in the derived fields (cg, ocg, k, gemm, panels, tile, algorithm,
 * units, ...) from the sizes, strides, dilation, padding and groups, for the
 * selected ISA.  algorithm CP_CONV_AUTO: the first applicable and preferred
 * one; CP_CONV_AUTO_DIRECT: the same among the exact ones; otherwise that
 * one, and -1 is returned if it cannot compute this geometry (0 on success). */
int cp_conv_plan(cp_conv_geom *g, int64_t itemsize, int64_t algorithm);
/* Decide from the output array whether to use non-temporal stores. */
void cp_conv_set_output(cp_conv_geom *g, const void *y, int64_t itemsize);
/* Scratch elements one thread needs (zero-filled by the caller before the units run). */
int64_t cp_conv_scratch_elems(const cp_conv_geom *g);
/* After the units ran: did those of this thread's scratch write a non-finite
 * value where the algorithm may spread one (WINOGRAD)?  Then the caller
 * recomputes the call with the direct algorithms. */
int cp_conv_nonfinite(const cp_conv_geom *g, const void *scratch);
/* Packed weight elements. */
int64_t cp_conv_packed_elems(const cp_conv_geom *g);

/* The weights are packed in cp_conv_pack_units(g) independent parts (a
 * panel of one group each; one for DEPTHWISE), so threads can share the work:
 * cp_conv_pack_* writes part `part`; all parts make the packed weights. */
int64_t cp_conv_pack_units(const cp_conv_geom *g);
void cp_conv_pack_f32(const cp_conv_geom *g, const float *kernel /* IN (KH,KW,CG,OC) */,
                      float *packed /* OUT */, int64_t part);
void cp_conv_pack_f64(const cp_conv_geom *g, const double *kernel, double *packed,
                      int64_t part);

/* Compute unit `unit` in [0, g->units) of the output. */
void cp_conv2d_nhwc_unit_f32(const cp_conv_geom *g, const float *x /* IN */,
                             const float *packed /* IN */, const float *bias /* IN or NULL */,
                             float *y /* OUT */, int64_t unit, float *scratch);
void cp_conv2d_nhwc_unit_f64(const cp_conv_geom *g, const double *x, const double *packed,
                             const double *bias, double *y, int64_t unit, double *scratch);

/* ---- Winograd weight gradient -------------------------------------------- */
/* The kernel gradient of a 3x3 stride-1 conv in Winograd's domain: with V
 * the input tiles' transforms and dM = A dY A^T the output gradient tiles'
 * (the adjoint of the output transform), dU_e = sum over tiles of
 * V_e^T dM_e (one GEMM over the tiles per transformed element e), then
 * grad_kernel = G^T dU G (the adjoint of the kernel transform).  The tiles
 * are taken in passes of `pass` (fixed by the geometry), transformed in
 * chunks of CP_WGW_CHUNK tiles, each chunk also summing grad_out for the
 * bias: every sum runs in an order fixed by the geometry alone. */
#define CP_WGW_CHUNK 16
typedef struct {
    cp_conv_geom f;            /* the forward geometry, planned as WINOGRAD */
    int64_t tiles;             /* 4x4 output tiles of the batch */
    int64_t pass;              /* tiles per pass: a multiple of CP_WGW_CHUNK */
    int64_t passes;            /* ceil(tiles / pass) */
    int64_t chunks;            /* CP_WGW_CHUNK-tile chunks per pass */
    int64_t jobs;              /* GEMMs per pass: 36 * panels */
} cp_wgw_geom;

/* Plan (f's sizes set); returns -1 if Winograd cannot compute this geometry. */
int cp_wgw_plan(cp_wgw_geom *w, int64_t itemsize);
int64_t cp_wgw_v_elems(const cp_wgw_geom *w);       /* V^T of one pass: 36 * C * pass */
int64_t cp_wgw_m_elems(const cp_wgw_geom *w);       /* dM of one pass: 36 * panels * pass * NR */
int64_t cp_wgw_du_elems(const cp_wgw_geom *w);      /* dU: 36 * C * panels * NR */
int64_t cp_wgw_scratch_elems(const cp_wgw_geom *w); /* per thread, for the chunks */
/* Chunk `chunk` of pass `pass`: V^T and dM of its tiles, and into bias_part
 * (OC values) the sum of their grad_out pixels. */
void cp_wgw_chunk_f32(const cp_wgw_geom *w, const float *x, const float *gy, float *vt,
                      float *dm, float *bias_part, int64_t pass, int64_t chunk, float *scratch);
void cp_wgw_chunk_f64(const cp_wgw_geom *w, const double *x, const double *gy, double *vt,
                      double *dm, double *bias_part, int64_t pass, int64_t chunk,
                      double *scratch);
/* GEMM `job` (e * panels + p) of a pass into dU (added to it unless first). */
void cp_wgw_gemm_f32(const cp_wgw_geom *w, const float *vt, const float *dm, float *du,
                     int64_t job, int first);
void cp_wgw_gemm_f64(const cp_wgw_geom *w, const double *vt, const double *dm, double *du,
                     int64_t job, int first);
/* grad_kernel[:, :, c, :] = G^T dU[:, c, :] G (in double, rounded once). */
void cp_wgw_kernel_f32(const cp_wgw_geom *w, const float *du, float *gk, int64_t c);
void cp_wgw_kernel_f64(const cp_wgw_geom *w, const double *du, double *gk, int64_t c);

/* ---- pooling ------------------------------------------------------------ */
void cp_pool_plan(cp_pool_geom *g, int64_t itemsize);
int64_t cp_pool_scratch_bytes(const cp_pool_geom *g, int64_t itemsize);

void cp_maxpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch);
void cp_maxpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch);
void cp_avgpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch);
void cp_avgpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch);
/* Max pooling of output row `row` visiting each window's taps (any dilation;
 * OUT: y's row, and idx's, the winners' flat indices ih * W + iw, unless NULL). */
void cp_maxpool2d_direct_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t *idx,
                                 int64_t row);
void cp_maxpool2d_direct_row_f64(const cp_pool_geom *g, const double *x, double *y,
                                 int64_t *idx, int64_t row);

/* ---- backward passes (cp_backward.c) ----------------------------------- */
typedef struct {
    cp_conv_geom f;            /* the forward geometry (planned by cp_convbwd_plan) */
    int64_t itemsize;          /* 4 or 8 */
    int64_t kwcg;              /* KW * Cg: columns of one kernel row's data gradient */
    int64_t dx_gemm, dx_mr, dx_nr; /* the data gradient's micro-kernel tile */
    int64_t dx_panels;         /* ceil(kwcg / dx_nr): panels of W[kh]^T */
    int64_t dw_gemm, dw_mr, dw_nr; /* the weight gradient's (its columns: K) */
    int64_t dx_tile;           /* output pixels per data-gradient tile */
    int64_t wt_tile;           /* output pixels per weight-gradient tile */
    int64_t chunks, chunk;     /* fixed partition of the pixels for the weight gradient */
    int64_t dw_direct;         /* the weight gradient's algorithm: CP_WGRAD_* */
    int64_t dx_relu;           /* conv2d_transpose: max(0, .) on the data gradient (plan: 0) */
} cp_convbwd_geom;
enum { CP_WGRAD_GEMM, CP_WGRAD_FEW_CHANNELS, CP_WGRAD_DEPTHWISE };

void cp_convbwd_plan(cp_convbwd_geom *b, int64_t itemsize);
int64_t cp_convbwd_dx_packed_elems(const cp_convbwd_geom *b);
int64_t cp_convbwd_dx_scratch_elems(const cp_convbwd_geom *b);
int64_t cp_convbwd_dw_scratch_elems(const cp_convbwd_geom *b);
/* Per chunk: K * OC weight partials, then OC bias partials. */
int64_t cp_convbwd_partial_elems(const cp_convbwd_geom *b);

void cp_convbwd_pack_dx_f32(const cp_convbwd_geom *b, const float *kernel, float *packed);
void cp_convbwd_pack_dx_f64(const cp_convbwd_geom *b, const double *kernel, double *packed);
/* grad_x of input row `row` = n * H + ih (OUT: gx's row); then + bias[c] unless
 * bias is NULL, and the ReLU with b->dx_relu (conv2d_transpose is this pass). */
void cp_conv2d_bwd_data_row_f32(const cp_convbwd_geom *b, const float *gy, const float *packed,
                                const float *bias, float *gx, int64_t row, float *dcol);
void cp_conv2d_bwd_data_row_f64(const cp_convbwd_geom *b, const double *gy,
                                const double *packed, const double *bias, double *gx,
                                int64_t row, double *dcol);
/* Partial weight and bias gradients of chunk `chunk` (OUT: partial). */
void cp_conv2d_bwd_weight_chunk_f32(const cp_convbwd_geom *b, const float *gy, const float *x,
                                    float *partial, int64_t chunk, float *scratch);
void cp_conv2d_bwd_weight_chunk_f64(const cp_convbwd_geom *b, const double *gy, const double *x,
                                    double *partial, int64_t chunk, double *scratch);
/* Row k of grad_kernel (and grad_bias when k == 0) from the partials; either may be NULL. */
void cp_conv2d_bwd_weight_reduce_f32(const cp_convbwd_geom *b, const float *partials, float *gk,
                                     float *gb, int64_t k);
void cp_conv2d_bwd_weight_reduce_f64(const cp_convbwd_geom *b, const double *partials,
                                     double *gk, double *gb, int64_t k);

/* The gradient through a ReLU whose output was y, elements [lo, hi):
 * gx = y > 0 ? gy : 0 (gx shares no memory with gy or y). */
void cp_relu_grad_f32(const float *gy, const float *y, float *gx, int64_t lo, int64_t hi);
void cp_relu_grad_f64(const double *gy, const double *y, double *gx, int64_t lo, int64_t hi);

/* One Adam step on elements [lo, hi) of w, with its moments m and v (see
 * cp_tpl_backward.h for the operations; c1 = 1 - b1, c2 = 1 - b2). */
void cp_adam_update_f32(float *w, const float *g, float *m, float *v, int64_t lo, int64_t hi,
                        float b1, float c1, float b2, float c2, float eps, float lr_t);
void cp_adam_update_f64(double *w, const double *g, double *m, double *v, int64_t lo,
                        int64_t hi, double b1, double c1, double b2, double c2, double eps,
                        double lr_t);

int64_t cp_poolbwd_units(const cp_pool_geom *g);
int64_t cp_poolbwd_scratch_bytes(const cp_pool_geom *g);
void cp_maxpool2d_bwd_unit_f32(const cp_pool_geom *g, const float *x, const float *gy, float *gx,
                               int64_t unit, void *scratch);
void cp_maxpool2d_bwd_unit_f64(const cp_pool_geom *g, const double *x, const double *gy,
                               double *gx, int64_t unit, void *scratch);
void cp_avgpool2d_bwd_unit_f32(const cp_pool_geom *g, const float *gy, float *gx, int64_t unit,
                               void *scratch);
void cp_avgpool2d_bwd_unit_f64(const cp_pool_geom *g, const double *gy, double *gx, int64_t unit,
                               void *scratch);

#ifdef __cplusplus
}
#endif
#endif /* CP_KERNELS_H */
