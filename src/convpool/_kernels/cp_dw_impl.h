/*
 * Depthwise convolution (groups = C_in = C_out) of one output row, NHWC.
 *
 * Included by cp_conv.c once per ISA with CP_DW_ISA (name suffix), CP_DW_ATTR
 * (target attributes) and CP_DW_FMA_F32 / CP_DW_FMA_F64 (the multiply-add of
 * that ISA: fused where the GEMM micro-kernel of the same ISA fuses, so this
 * path gives bitwise the result of the GEMM path for the same geometry).
 *
 * out[c] = sum over taps (kh, kw), in that order, of x[ih, iw, c] * w[kh, kw, c],
 * from +0, then + bias[c]; vectorised over the contiguous channels.  Taps in
 * the padding multiply zeros (as the im2col path does), so 0 * inf gives NaN
 * exactly as the reference does.
 */

/* Channels accumulated per pass: a fixed width, so the accumulators stay in
 * vector registers (4 ymm of float32); the last partial chunk takes a loop of
 * variable length. */
#define CP_DW_CHUNK 32

#define CP_DW_TAPS(T, FMA, WIDTH)                                                           \
    for (int64_t kh = 0; kh < g->kh; kh++) {                                                \
        const int64_t ih = ih0 + kh * g->dh;                                                \
        const int row_ok = ih >= 0 && ih < g->h;                                            \
        const T *xrow = x + (n * g->h + (row_ok ? ih : 0)) * g->w * C + c0;                 \
        for (int64_t kw = 0; kw < g->kw; kw++) {                                            \
            const int64_t iw = iw0 + kw * g->dw;                                            \
            const T *CP_RESTRICT xp = row_ok && iw >= 0 && iw < g->w ? xrow + iw * C : zeros; \
            const T *CP_RESTRICT wp = w + (kh * g->kw + kw) * C + c0;                       \
            for (int64_t c = 0; c < (WIDTH); c++)                                           \
                acc[c] = FMA(xp[c], wp[c], acc[c]);                                         \
        }                                                                                   \
    }                                                                                       \
    if (bias != NULL)                                                                       \
        for (int64_t c = 0; c < (WIDTH); c++)                                               \
            out[c0 + c] = acc[c] + bias[c0 + c];                                            \
    else                                                                                    \
        for (int64_t c = 0; c < (WIDTH); c++)                                               \
            out[c0 + c] = acc[c];

#define CP_DEFINE_DW_ROW(NAME, T, FMA)                                                      \
    CP_DW_ATTR void CP_CAT(NAME, CP_DW_ISA)(const cp_conv_geom *g, const T *x, const T *w,  \
                                            const T *bias, T *y, int64_t row,               \
                                            const T *zeros)                                 \
    {                                                                                       \
        const int64_t C = g->c;                                                             \
        const int64_t n = row / g->oh, oh = row % g->oh;                                    \
        const int64_t ih0 = oh * g->sh - g->pt;                                             \
        T *const yrow = y + row * g->ow * C;                                                \
        for (int64_t ow = 0; ow < g->ow; ow++) {                                            \
            const int64_t iw0 = ow * g->sw - g->pl;                                         \
            T *const out = yrow + ow * C;                                                   \
            int64_t c0 = 0;                                                                 \
            for (; c0 + CP_DW_CHUNK <= C; c0 += CP_DW_CHUNK) {                              \
                T acc[CP_DW_CHUNK];                                                         \
                for (int64_t c = 0; c < CP_DW_CHUNK; c++)                                   \
                    acc[c] = (T)0;                                                          \
                CP_DW_TAPS(T, FMA, CP_DW_CHUNK)                                             \
            }                                                                               \
            if (c0 < C) {                                                                   \
                const int64_t cn = C - c0;                                                  \
                T acc[CP_DW_CHUNK];                                                         \
                for (int64_t c = 0; c < cn; c++)                                            \
                    acc[c] = (T)0;                                                          \
                CP_DW_TAPS(T, FMA, cn)                                                      \
            }                                                                               \
        }                                                                                   \
    }

CP_DEFINE_DW_ROW(cp_dwconv2d_nhwc_f32, float, CP_DW_FMA_F32)
CP_DEFINE_DW_ROW(cp_dwconv2d_nhwc_f64, double, CP_DW_FMA_F64)
