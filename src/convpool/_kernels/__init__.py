"""Compiled kernels of convpool (private): see _core.pyx and cp_kernels.h."""
