#!/usr/bin/env bash
# Test the AVX-512 variant on a CPU without AVX-512: build convpool in a
# scratch copy of this checkout with CONVPOOL_EMULATE_AVX512=1 (the AVX-512
# source compiled for AVX2 against SIMDe's emulation of the AVX-512
# intrinsics, tools/avx512_emulation/) and run the test suite with the
# emulated variant selected.
#
#     tools/emulate_avx512.sh [pytest args...]   # default: the whole suite
#
# Needs SIMDe's headers (Debian: apt-get install libsimde-dev).  The avx2 and
# avx512 variants are then both runnable in one process, so the cross-ISA
# tests (tests/test_isa.py: bitwise equality of every kernel family) run too.
# On a CPU with AVX-512 the real variant is tested by the normal suite.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if ! echo '#include <simde/x86/avx512.h>' | ${CC:-gcc} -E -x c - >/dev/null 2>&1; then
    echo "emulate_avx512.sh: SIMDe headers not found (apt-get install libsimde-dev)" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$here" ls-files -z | (cd "$here" && xargs -0 cp --parents -t "$work")
cd "$work"
CONVPOOL_EMULATE_AVX512=1 python setup.py -q build_ext --inplace >/dev/null 2>build.log \
    || { cat build.log; exit 1; }
export PYTHONPATH="$work/src"
export CONVPOOL_DISPATCH=avx512
python -c "
import convpool
assert convpool.__file__.startswith('$work'), convpool.__file__
from convpool._kernels import _core
assert _core.isa_emulated('avx512') and _core.isa_selected() == 'avx512'
"
python -m pytest -q -p no:cacheprovider -x "${@:-tests}"
