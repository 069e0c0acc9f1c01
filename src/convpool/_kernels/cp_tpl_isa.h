/*
 * Template: every kernel of one SIMD ISA for one dtype, included per dtype by
 * cp_tpl_simd_isa.h (CP_T, CP_SFX, CP_F64 set; see there for the ISA's
 * macros).  It defines cp_gemm_tiles_<sfx>__<isa> (the tiles, for the config)
 * and the static kernels the config points at: cp_dwconv2d_nhwc_<sfx>__<isa>,
 * cp_{max,avg}pool2d_nhwc_<sfx>__<isa>, cp_maxpool2d_bwd_run_<sfx>__<isa>,
 * cp_maxpool2d_direct_<sfx>__<isa>, cp_winograd_unit_<sfx>__<isa>,
 * cp_wgrad_direct_<sfx>__<isa>, cp_transpose_<sfx>__<isa>.
 */
#define CP_SIMD 1
#include CP_SIMD_HEADER
#if CP_F64
#define CP_WIDE_MR CP_F64_WIDE_MR
#define CP_WIDE_NV CP_F64_WIDE_NV
#define CP_NARROW_MR CP_F64_NARROW_MR
#define CP_NARROW_NV CP_F64_NARROW_NV
#else
#define CP_WIDE_MR CP_F32_WIDE_MR
#define CP_WIDE_NV CP_F32_WIDE_NV
#define CP_NARROW_MR CP_F32_NARROW_MR
#define CP_NARROW_NV CP_F32_NARROW_NV
#endif

_Static_assert(CP_WIDE_MR <= CP_MAX_MR && CP_NARROW_MR <= CP_MAX_MR &&
                   CP_WIDE_NV * CPV_W * sizeof(CP_T) <= CP_MAX_NR_BYTES &&
                   CP_NARROW_NV * CPV_W * sizeof(CP_T) <= CP_MAX_NR_BYTES,
               "a micro-kernel tile larger than CP_MAX_MR x CP_MAX_NR_BYTES");

#define CP_GEMM_NAME CP_CAT(cp_gemm_wide, CP_SFX)
#define CP_GEMM_MR CP_WIDE_MR
#define CP_GEMM_NV CP_WIDE_NV
#include "cp_tpl_gemm.h"
#define CP_GEMM_NAME CP_CAT(cp_gemm_narrow, CP_SFX)
#define CP_GEMM_MR CP_NARROW_MR
#define CP_GEMM_NV CP_NARROW_NV
#include "cp_tpl_gemm.h"

static const CP_CAT(CP_CAT(cp_gemm, CP_SFX), tile)
    CP_ISA_FN(CP_CAT(cp_gemm_tiles, CP_SFX))[CP_GEMM_KINDS] = {
        [CP_GEMM_WIDE] = {CP_ISA_FN(CP_CAT(cp_gemm_wide, CP_SFX)), CP_WIDE_MR,
                          CP_WIDE_NV * CPV_W},
        [CP_GEMM_NARROW] = {CP_ISA_FN(CP_CAT(cp_gemm_narrow, CP_SFX)), CP_NARROW_MR,
                            CP_NARROW_NV * CPV_W},
};

#include "cp_tpl_transpose.h"
#include "cp_tpl_depthwise.h"
#include "cp_tpl_winograd.h"
#include "cp_tpl_stream.h"
#define CP_POOL_MAX 1
#include "cp_tpl_pool.h"
#undef CP_POOL_MAX
#define CP_POOL_MAX 0
#include "cp_tpl_pool.h"
#undef CP_POOL_MAX
#include "cp_tpl_maxbwd.h"
#include "cp_tpl_pooldirect.h"
#include "cp_tpl_wgrad.h"

#undef CP_SIMD
#undef CP_WIDE_MR
#undef CP_WIDE_NV
#undef CP_NARROW_MR
#undef CP_NARROW_NV
