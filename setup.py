"""Build of convpool's compiled core: one extension, ``convpool._kernels._core``.

The extension is Cython (``_core.pyx``: argument plumbing, the OpenMP parallel
regions, the GIL released) plus hand-written C (``cp_*.c``: the compute
kernels).  Metadata lives in pyproject.toml; this file only describes the
extension and its compiler flags.

Environment switches
--------------------
CONVPOOL_OPENMP = auto | 1 | 0
    ``auto`` (default) probes the compiler for OpenMP and builds single-threaded
    with a warning when the probe fails; ``1`` makes a failed probe an error;
    ``0`` builds without OpenMP.
CONVPOOL_DEBUG = 1
    Cython bounds/wraparound checks on, the C kernels' contracts asserted
    (CP_ASSERT) and ``-O0 -g``: for debugging only.
CONVPOOL_SANITIZE = 1
    AddressSanitizer + UndefinedBehaviorSanitizer (gcc/clang); the tests then
    run with the ASan runtime preloaded: see tools/sanitize.sh.
CONVPOOL_EMULATE_AVX512 = 1
    Compile the AVX-512 variant for AVX2 against SIMDe's emulation of the
    AVX-512 intrinsics (Debian's libsimde-dev), so its logic can be tested on
    a CPU without AVX-512: see tools/emulate_avx512.sh.  Never for a release.

The default build never uses ``-march=native``: the wheel must run on any
x86-64 CPU.  SIMD variants are compiled with
target pragmas, one translation unit per ISA (cp_isa_<name>.c, cp_target.h),
and chosen at import (see cp_dispatch.c).
"""

import os
import tempfile
import textwrap
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_DIR = os.path.join("src", "convpool", "_kernels")
# The generic drivers, then one translation unit per ISA variant (cp_isa_list.h).
C_SOURCES = ["cp_dispatch.c", "cp_conv.c", "cp_pool.c", "cp_backward.c",
             "cp_isa_baseline.c", "cp_isa_avx2.c", "cp_isa_avx512.c"]
HEADERS = sorted(name for name in os.listdir(KERNEL_DIR) if name.endswith(".h"))

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n);
        return n > 0 ? 0 : 1;
    }
    """
)


def _openmp_flags(compiler):
    """Return (compile_args, link_args) that enable OpenMP, or None."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe_openmp.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objects = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(
                objects, "probe_openmp", output_dir=tmp, extra_postargs=flags
            )
        except Exception:  # CompileError / LinkError: no usable OpenMP
            return None
    return flags, flags


class BuildExt(build_ext):
    """build_ext that probes OpenMP and sets the warning/optimisation flags."""

    def build_extensions(self):
        mode = os.environ.get("CONVPOOL_OPENMP", "auto").lower()
        if mode not in ("auto", "0", "1"):
            raise SystemExit(f"CONVPOOL_OPENMP must be auto, 0 or 1, got {mode!r}")
        omp = None if mode == "0" else _openmp_flags(self.compiler)
        if omp is None and mode == "1":
            raise SystemExit("CONVPOOL_OPENMP=1 but the compiler has no working OpenMP")
        if omp is None and mode == "auto":
            warnings.warn(
                "convpool: the compiler has no working OpenMP; building a "
                "single-threaded extension",
                stacklevel=1,
            )
        debug = os.environ.get("CONVPOOL_DEBUG") == "1"
        sanitize = os.environ.get("CONVPOOL_SANITIZE") == "1"
        emulate = os.environ.get("CONVPOOL_EMULATE_AVX512") == "1"
        for ext in self.extensions:
            if debug:
                ext.define_macros.append(("CP_DEBUG", "1"))
            if emulate:
                ext.define_macros.append(("CP_EMULATE_AVX512", "1"))
                ext.include_dirs.append(os.path.join("tools", "avx512_emulation"))
            if self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += [
                    "-O0" if debug else "-O3",
                    "-g" if debug else "-g0",
                    "-std=c11",
                    # Exact IEEE semantics: no FMA contraction behind our back
                    # (the kernels of one SIMD variant fuse explicitly, so all
                    # their code paths round alike; the baseline variant never
                    # fuses), no fast-math, NaN propagation preserved.
                    "-ffp-contract=off",
                    "-fno-math-errno",
                    "-fvisibility=hidden",
                    "-Wall",
                    "-Wno-unused-function",
                    "-Wno-unreachable-code",
                ]
            if sanitize and self.compiler.compiler_type != "msvc":
                flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                         "-fno-omit-frame-pointer", "-g"]
                ext.extra_compile_args += flags
                ext.extra_link_args += flags
            if omp is not None:
                ext.extra_compile_args += omp[0]
                ext.extra_link_args += omp[1]
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    debug = os.environ.get("CONVPOOL_DEBUG") == "1"
    ext = Extension(
        "convpool._kernels._core",
        sources=[os.path.join(KERNEL_DIR, "_core.pyx")]
        + [os.path.join(KERNEL_DIR, name) for name in C_SOURCES],
        depends=[os.path.join(KERNEL_DIR, name) for name in HEADERS],
        include_dirs=[KERNEL_DIR],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    return cythonize(
        [ext],
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
