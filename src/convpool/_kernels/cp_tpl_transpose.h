/*
 * Template: a strided matrix transpose for one SIMD ISA and dtype (include
 * with CP_T, CP_SFX, CP_ISA and the vector vocabulary's CPT_W and
 * cpt_transpose); defines cp_transpose_<sfx>__<isa> (cp_transpose_*_fn in
 * cp_internal.h):
 *
 *     dst[j * ds + i] = src[i * ss + j]   for i < rows, j < cols
 *
 * in square CPT_W blocks held in registers, the edges one element at a time.
 * Pure data movement: the bits are the scalar loop's.
 */
static void CP_ISA_FN(CP_CAT(cp_transpose, CP_SFX))(const CP_T *src, int64_t rows,
                                                    int64_t cols, int64_t ss, CP_T *dst,
                                                    int64_t ds)
{
    const int64_t rb = rows / CPT_W * CPT_W, cb = cols / CPT_W * CPT_W;
    for (int64_t i = 0; i < rb; i += CPT_W)
        for (int64_t j = 0; j < cb; j += CPT_W)
            cpt_transpose(src + i * ss + j, ss, dst + j * ds + i, ds);
    for (int64_t i = 0; i < rows; i++) /* the columns past the last block */
        for (int64_t j = cb; j < cols; j++)
            dst[j * ds + i] = src[i * ss + j];
    for (int64_t i = rb; i < rows; i++) /* the rows past the last block */
        for (int64_t j = 0; j < cb; j++)
            dst[j * ds + i] = src[i * ss + j];
}
