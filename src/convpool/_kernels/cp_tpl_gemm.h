/*
 * Template: one SIMD GEMM micro-kernel (the contract is in cp_internal.h).
 *
 * Include with CP_T, CP_ISA, the vector vocabulary (cp_simd_<isa>.h) and
 *   CP_GEMM_NAME   the function's name, without the ISA (e.g. cp_gemm_6x16_f32)
 *   CP_GEMM_MR     rows of the register tile (output pixels)
 *   CP_GEMM_NV     vectors per row: NR = CP_GEMM_NV * CPV_W output channels
 * It defines CP_ISA_FN(CP_GEMM_NAME) and undefines the three.
 *
 * The register tile is MR x NV accumulators; per reduction step: NV aligned
 * loads of the packed panel, MR broadcasts of A, MR * NV fused multiply-adds
 * (BLIS's and MLAS's shape: 6x16 float32 on AVX2 leaves 4 of the 16 ymm
 * registers for operands, 12x32 on AVX-512 uses 24 of the 32 zmm registers
 * as accumulators).  Rows left over (m % MR) run in blocks of 8, 4, 2 and 1
 * rows of the same code, so no row is computed twice; columns past nr
 * multiply the panel's zero padding and are not stored.
 */
#define CP_GEMM_NR (CP_GEMM_NV * CPV_W)
#define CP_GEMM_BLOCK CP_CAT(CP_GEMM_NAME, block)

/* Rows [i0, i0 + mr) of C; mr <= CP_GEMM_MR is a constant after inlining, so
 * the loops over i and j unroll and the accumulators live in registers. */
CP_ALWAYS_INLINE void CP_ISA_FN(CP_GEMM_BLOCK)(const int mr, int64_t i0, int64_t nseg,
                                               const CP_T *const *seg, int64_t lda,
                                               int64_t kseg, const CP_T *b, CP_T *c,
                                               int64_t ldc, int64_t nr, const CP_T *bias,
                                               int flags)
{
    CPV acc[CP_GEMM_MR][CP_GEMM_NV];
    _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++) acc[i][j] = cpv_zero();
    const CP_T *bk = b;
    for (int64_t s = 0; s < nseg; s++) {
        const CP_T *a = seg[s] + i0 * lda;
        _Pragma("GCC unroll 2") for (int64_t k = 0; k < kseg; k++, bk += CP_GEMM_NR) {
            CPV bv[CP_GEMM_NV];
            _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++)
                bv[j] = cpv_load(bk + j * CPV_W);
            _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++) {
                const CPV av = cpv_bcast(a + i * lda + k);
                _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++)
                    acc[i][j] = cpv_fma(av, bv[j], acc[i][j]);
            }
        }
    }
    CP_T *const ct = c + i0 * ldc;
    if (flags & CP_STORE_ACCUM) { /* C + (the sum), as col2im adds a column tile */
        _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++) {
            const int64_t lanes = nr - j * CPV_W;
            if (lanes >= CPV_W) {
                _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++) acc[i][j] =
                    cpv_add(cpv_loadu(ct + i * ldc + j * CPV_W), acc[i][j]);
            } else if (lanes > 0) {
                _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++) acc[i][j] =
                    cpv_add(cpv_loadu_n(ct + i * ldc + j * CPV_W, lanes), acc[i][j]);
            }
        }
    }
    if (bias != NULL) {
        _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++) {
            const int64_t lanes = nr - j * CPV_W;
            const CPV bb = lanes >= CPV_W ? cpv_loadu(bias + j * CPV_W)
                           : lanes > 0    ? cpv_loadu_n(bias + j * CPV_W, lanes)
                                          : cpv_zero();
            _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++) acc[i][j] =
                cpv_add(acc[i][j], bb);
        }
    }
    if (flags & CP_STORE_RELU) { /* max(0, v): 0 > v ? 0 : v keeps a NaN v */
        const CPV z = cpv_zero();
        _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++)
            _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++) acc[i][j] =
                cpv_max(z, acc[i][j]);
    }
    if (nr == CP_GEMM_NR && (flags & CP_STORE_STREAM)) {
        _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++)
            _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++)
                cpv_stream(ct + i * ldc + j * CPV_W, acc[i][j]);
    } else if (nr == CP_GEMM_NR) {
        _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++)
            _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++)
                cpv_storeu(ct + i * ldc + j * CPV_W, acc[i][j]);
    } else {
        _Pragma("GCC unroll 4") for (int j = 0; j < CP_GEMM_NV; j++) {
            const int64_t lanes = nr - j * CPV_W;
            if (lanes >= CPV_W) {
                _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++)
                    cpv_storeu(ct + i * ldc + j * CPV_W, acc[i][j]);
            } else if (lanes > 0) {
                _Pragma("GCC unroll 32") for (int i = 0; i < mr; i++)
                    cpv_storeu_n(ct + i * ldc + j * CPV_W, acc[i][j], lanes);
            }
        }
    }
}

static void CP_ISA_FN(CP_GEMM_NAME)(int64_t m, int64_t nseg, const CP_T *const *seg, int64_t lda,
                             int64_t kseg, const CP_T *b, CP_T *c, int64_t ldc, int64_t nr,
                             const CP_T *bias, int flags)
{
    CP_ASSERT(m >= 0 && nseg >= 1 && kseg >= 0 && nr >= 1 && nr <= CP_GEMM_NR);
    CP_ASSERT((uintptr_t)b % (CPV_W * sizeof(CP_T)) == 0); /* aligned panels */
    CP_ASSERT(!(flags & CP_STORE_STREAM) ||
              ((uintptr_t)c % (CPV_W * sizeof(CP_T)) == 0 && ldc % CPV_W == 0));
    int64_t i0 = 0;
    for (; i0 + CP_GEMM_MR <= m; i0 += CP_GEMM_MR)
        CP_ISA_FN(CP_GEMM_BLOCK)(CP_GEMM_MR, i0, nseg, seg, lda, kseg, b, c, ldc, nr, bias,
                                 flags);
    /* m % MR rows left: blocks of 8 (while they fit), then 4, 2, 1 (each
     * smaller than MR). */
    while (CP_GEMM_MR > 8 && m - i0 >= 8) {
        CP_ISA_FN(CP_GEMM_BLOCK)(8, i0, nseg, seg, lda, kseg, b, c, ldc, nr, bias, flags);
        i0 += 8;
    }
    if (CP_GEMM_MR > 4 && m - i0 >= 4) {
        CP_ISA_FN(CP_GEMM_BLOCK)(4, i0, nseg, seg, lda, kseg, b, c, ldc, nr, bias, flags);
        i0 += 4;
    }
    if (CP_GEMM_MR > 2 && m - i0 >= 2) {
        CP_ISA_FN(CP_GEMM_BLOCK)(2, i0, nseg, seg, lda, kseg, b, c, ldc, nr, bias, flags);
        i0 += 2;
    }
    if (m - i0 >= 1)
        CP_ISA_FN(CP_GEMM_BLOCK)(1, i0, nseg, seg, lda, kseg, b, c, ldc, nr, bias, flags);
    if (flags & CP_STORE_STREAM)
        cpv_sfence();
}

#undef CP_GEMM_BLOCK
#undef CP_GEMM_NR
#undef CP_GEMM_NAME
#undef CP_GEMM_MR
#undef CP_GEMM_NV
