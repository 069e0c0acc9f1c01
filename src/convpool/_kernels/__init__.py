"""Compiled kernels of convpool (private): see _core.pyx and cp_kernels.h.

Importing this package loads ``_core`` and with it the OpenMP runtime.  GNU
libgomp reads how its idle threads wait from the environment once, when it is
loaded; its default when nothing is set is to spin for 300,000 pause
iterations after every parallel region (about 9 ms on an AMD EPYC Zen 3),
which keeps both cores busy while the user's next NumPy/BLAS call wants
them.  So unless the user chose (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in
the environment), convpool loads the runtime with ``GOMP_SPINCOUNT`` =
:data:`SPIN_COUNT`: idle threads spin briefly (a fraction of a millisecond,
long enough to catch the next layer's call in a model) and then sleep.  The
variable is removed from ``os.environ`` again once the runtime has read it,
so child processes see the environment the user gave.
"""

from __future__ import annotations

import os

#: libgomp pause iterations an idle convpool thread spins before it sleeps
#: when the user sets no waiting policy (about 0.3 ms on an AMD EPYC Zen 3).
SPIN_COUNT = 10000

_USER_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _openmp_loaded() -> bool:
    """Is an OpenMP runtime already mapped into this process (Linux)?"""
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line or "libomp" in line or "libiomp" in line
                       for line in maps)
    except OSError:
        return False


def _load_core() -> str:
    """Import ``_core`` under convpool's waiting policy; return what was in force."""
    user = [f"{name}={os.environ[name]}" for name in _USER_VARIABLES if name in os.environ]
    if user or _openmp_loaded():
        from . import _core  # noqa: F401
        if user:
            return " ".join(user) + " (from the environment)"
        return "the runtime's default (it was loaded before convpool)"
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        from . import _core  # noqa: F401
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)
    return f"GOMP_SPINCOUNT={SPIN_COUNT} (convpool's default)"


#: The OpenMP waiting policy in force, for :func:`convpool.show_config`.
WAIT_POLICY = _load_core()
