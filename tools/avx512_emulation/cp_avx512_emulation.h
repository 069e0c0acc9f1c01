/*
 * AVX-512 intrinsics on a CPU without AVX-512, for testing only
 * (CONVPOOL_EMULATE_AVX512=1, tools/emulate_avx512.sh).
 *
 * SIMDe (https://github.com/simd-everywhere/simde, Debian's libsimde-dev)
 * implements the AVX-512 intrinsics in portable C, or with AVX2 where the
 * translation unit is compiled for it, keeping each intrinsic's exact IEEE
 * semantics (a fused multiply-add stays fused, max keeps x86's NaN rule).
 * The few intrinsics convpool uses that SIMDe 0.7 lacks are written below,
 * lane by lane, from their definitions in Intel's intrinsics guide.
 */
#ifndef CP_AVX512_EMULATION_H
#define CP_AVX512_EMULATION_H

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <string.h>

#define CP_EMU_MASKED_LOAD(name, vec, T, lanes, mask_t, load)                                \
    static inline vec name(mask_t k, const void *p)                                          \
    {                                                                                        \
        T t[lanes];                                                                          \
        for (int i = 0; i < (lanes); i++)                                                    \
            t[i] = ((k >> i) & 1) ? ((const T *)p)[i] : (T)0;                                \
        return load(t);                                                                      \
    }
#define CP_EMU_MASKED_STORE(name, vec, T, lanes, mask_t, store)                              \
    static inline void name(void *p, mask_t k, vec v)                                        \
    {                                                                                        \
        T t[lanes];                                                                          \
        store(t, v);                                                                         \
        for (int i = 0; i < (lanes); i++)                                                    \
            if ((k >> i) & 1)                                                                \
                ((T *)p)[i] = t[i];                                                          \
    }

CP_EMU_MASKED_LOAD(cp_emu_mm512_maskz_loadu_ps, simde__m512, float, 16, simde__mmask16,
                   simde_mm512_loadu_ps)
CP_EMU_MASKED_LOAD(cp_emu_mm512_maskz_loadu_pd, simde__m512d, double, 8, simde__mmask8,
                   simde_mm512_loadu_pd)
CP_EMU_MASKED_STORE(cp_emu_mm512_mask_storeu_ps, simde__m512, float, 16, simde__mmask16,
                    simde_mm512_storeu_ps)
CP_EMU_MASKED_STORE(cp_emu_mm512_mask_storeu_pd, simde__m512d, double, 8, simde__mmask8,
                    simde_mm512_storeu_pd)
CP_EMU_MASKED_STORE(cp_emu_mm_mask_storeu_ps, simde__m128, float, 4, simde__mmask8,
                    simde_mm_storeu_ps)
CP_EMU_MASKED_STORE(cp_emu_mm256_mask_storeu_pd, simde__m256d, double, 4, simde__mmask8,
                    simde_mm256_storeu_pd)

/* Non-temporal stores: ordinary aligned stores (only the cache policy differs). */
static inline void cp_emu_mm512_stream_ps(void *p, simde__m512 v) { simde_mm512_store_ps(p, v); }
static inline void cp_emu_mm512_stream_pd(void *p, simde__m512d v) { simde_mm512_store_pd(p, v); }

#undef _mm512_maskz_loadu_ps
#undef _mm512_maskz_loadu_pd
#undef _mm512_mask_storeu_ps
#undef _mm512_mask_storeu_pd
#undef _mm_mask_storeu_ps
#undef _mm256_mask_storeu_pd
#undef _mm512_stream_ps
#undef _mm512_stream_pd
#define _mm512_maskz_loadu_ps(k, p) cp_emu_mm512_maskz_loadu_ps(k, p)
#define _mm512_maskz_loadu_pd(k, p) cp_emu_mm512_maskz_loadu_pd(k, p)
#define _mm512_mask_storeu_ps(p, k, v) cp_emu_mm512_mask_storeu_ps(p, k, v)
#define _mm512_mask_storeu_pd(p, k, v) cp_emu_mm512_mask_storeu_pd(p, k, v)
#define _mm_mask_storeu_ps(p, k, v) cp_emu_mm_mask_storeu_ps(p, k, v)
#define _mm256_mask_storeu_pd(p, k, v) cp_emu_mm256_mask_storeu_pd(p, k, v)
#define _mm512_stream_ps(p, v) cp_emu_mm512_stream_ps(p, v)
#define _mm512_stream_pd(p, v) cp_emu_mm512_stream_pd(p, v)

#endif /* CP_AVX512_EMULATION_H */
