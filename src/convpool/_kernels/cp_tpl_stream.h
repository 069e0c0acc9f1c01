/*
 * Template: dst[0:n] = src[0:n], the aligned middle written with
 * non-temporal stores (whole cache lines, no read for ownership) where the ISA
 * has vectors (CP_SIMD 1), else memcpy.  Include with CP_T, CP_SFX, CP_ISA,
 * CP_SIMD and the vocabulary; defines cp_stream_copy_<sfx>__<isa>.
 */
static inline void CP_ISA_FN(CP_CAT(cp_stream_copy, CP_SFX))(CP_T *dst, const CP_T *src,
                                                             int64_t n)
{
#if CP_SIMD
    int64_t i = 0;
    for (; i < n && (uintptr_t)(dst + i) % (CPV_W * sizeof(CP_T)) != 0; i++)
        dst[i] = src[i];
    for (; i + CPV_W <= n; i += CPV_W)
        cpv_stream(dst + i, cpv_loadu(src + i));
    for (; i < n; i++)
        dst[i] = src[i];
    cpv_sfence(); /* order the streamed lines before anything that follows */
#else
    memcpy(dst, src, (size_t)n * sizeof(CP_T));
#endif
}
