/*
 * The instruction-set variants convpool compiles, from the most portable.
 *
 * This list is the only place an ISA is named: adding one is an entry here
 * plus its translation unit cp_isa_<name>.c, which defines
 * `const cp_isa_config cp_isa_config__<name>` (see cp_internal.h).  The
 * registry (cp_dispatch.c), the enum below and the names Python sees
 * (_core.isa_names()) are all generated from it.
 *
 * Every listed ISA has a config in every build; one this compiler or target
 * cannot build has `compiled = 0` and no functions.
 */
#ifndef CP_ISA_LIST_H
#define CP_ISA_LIST_H

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CP_BUILD_X86_SIMD 1
#else
#define CP_BUILD_X86_SIMD 0
#endif

#define CP_ISA_LIST(X) X(baseline) X(avx2) X(avx512)

#define CP_ISA_ENUM_(name) CP_ISA_##name,
enum { CP_ISA_LIST(CP_ISA_ENUM_) CP_ISA_COUNT };
#undef CP_ISA_ENUM_

#endif /* CP_ISA_LIST_H */
