/*
 * Include the template named by CP_TEMPLATE once per dtype: with CP_T float,
 * CP_SFX f32, CP_F64 0, then CP_T double, CP_SFX f64, CP_F64 1.
 *
 *     #define CP_TEMPLATE "cp_tpl_conv.h"
 *     #include "cp_each_dtype.h"
 */
#define CP_T float
#define CP_SFX f32
#define CP_F64 0
#include CP_TEMPLATE
#undef CP_T
#undef CP_SFX
#undef CP_F64

#define CP_T double
#define CP_SFX f64
#define CP_F64 1
#include CP_TEMPLATE
#undef CP_T
#undef CP_SFX
#undef CP_F64

#undef CP_TEMPLATE
