"""Build and run-time configuration: which SIMD variant runs, OpenMP, threads.

At import, the best variant this CPU supports is selected, unless the
environment variable ``CONVPOOL_DISPATCH`` names one (``baseline`` forces the
portable path; ``avx2`` requires AVX2+FMA; ``avx512`` requires AVX-512
F/VL/BW/DQ and an OS that saves the ZMM registers).  The variants and their
order come from the C registry (``cp_isa_list.h``): there is no second list.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from ._kernels import WAIT_POLICY, _core

__all__ = ["show_config", "config"]

#: Every variant this source knows, most preferred first (the registry lists
#: them from the most portable).
_PREFERENCE = _core.isa_names()[::-1]


def _select_isa() -> str:
    wanted = os.environ.get("CONVPOOL_DISPATCH", "").strip().lower()
    if wanted:
        if wanted not in _PREFERENCE:
            raise ImportError(
                f"CONVPOOL_DISPATCH={wanted!r} is not one of {', '.join(_PREFERENCE)}"
            )
        if not (_core.isa_compiled(wanted) and _core.isa_supported(wanted)):
            raise ImportError(
                f"CONVPOOL_DISPATCH={wanted!r}, but this build or CPU cannot run it"
            )
        _core.isa_select(wanted)
        return wanted
    for name in _PREFERENCE:
        if _core.isa_compiled(name) and _core.isa_supported(name):
            _core.isa_select(name)
            return name
    raise AssertionError("the baseline variant is always available")


SELECTED_ISA = _select_isa()


def _openmp_runtime() -> str:
    """Path of the OpenMP runtime library loaded in this process (Linux), or a note."""
    if not _core.openmp_enabled():
        return "none (built without OpenMP)"
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                name = os.path.basename(path)
                if name.startswith(("libgomp", "libomp", "libiomp")):
                    return path
    except OSError:
        pass
    return "linked (library path not found)"


def config() -> dict[str, Any]:
    """The build and run-time configuration as a dict (see :func:`show_config`)."""
    from ._threads import get_num_threads

    return {
        "convpool": sys.modules["convpool"].__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "compiler": _core.compiler(),
        "openmp": _core.openmp_enabled(),
        "openmp_version": _core.openmp_version(),
        "openmp_runtime": _openmp_runtime(),
        "openmp_wait": WAIT_POLICY,
        "simd_compiled": [n for n in _PREFERENCE[::-1] if _core.isa_compiled(n)],
        # a test build's variants whose intrinsics are emulated (tools/emulate_avx512.sh)
        "simd_emulated": [n for n in _PREFERENCE[::-1] if _core.isa_emulated(n)],
        "simd_supported": [n for n in _PREFERENCE[::-1] if _core.isa_supported(n)],
        "simd_selected": _core.isa_selected(),
        "num_threads": get_num_threads(),
        "dispatch_override": os.environ.get("CONVPOOL_DISPATCH", "") or "-",
    }


def show_config() -> dict[str, Any]:
    """Print and return the build and run-time configuration.

    Returns
    -------
    dict
        Compiler, OpenMP (on/off and version), SIMD variants compiled,
        supported by this CPU and selected, and the thread count.
    """
    cfg = config()
    width = max(len(k) for k in cfg)
    for key, value in cfg.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        print(f"{key:<{width}}  {value}")
    return cfg
