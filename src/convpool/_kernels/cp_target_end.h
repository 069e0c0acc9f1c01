/* The end of a region opened by cp_target.h. */
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
#undef CP_TARGET_ISA
