/*
 * Compile the rest of a translation unit for the ISA CP_TARGET_ISA (a
 * target-attribute string), without -m flags, so the extension as a whole
 * still runs on any x86-64 CPU: only code reached after the run-time check
 * (cp_dispatch.c) executes these instructions.  Close with cp_target_end.h.
 */
#if defined(__clang__)
#define CP_TARGET_PRAGMA_(s) _Pragma(#s)
#define CP_TARGET_PRAGMA(t)                                                                  \
    CP_TARGET_PRAGMA_(clang attribute push(__attribute__((target(t))), apply_to = function))
CP_TARGET_PRAGMA(CP_TARGET_ISA)
#elif defined(__GNUC__)
#pragma GCC push_options
#define CP_TARGET_PRAGMA_(s) _Pragma(#s)
#define CP_TARGET_PRAGMA(t) CP_TARGET_PRAGMA_(GCC target(t))
CP_TARGET_PRAGMA(CP_TARGET_ISA)
#endif
