#!/usr/bin/env bash
# Build convpool with AddressSanitizer + UndefinedBehaviorSanitizer in a
# scratch copy of this checkout and run the test suite against it.
#
#     tools/sanitize.sh [pytest args...]      # default: the whole suite
#
# Any out-of-bounds access, use after free or undefined behaviour in the
# kernels aborts the run with a report.  Leak detection is off: CPython itself
# keeps memory until exit.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$here" ls-files -z | (cd "$here" && xargs -0 cp --parents -t "$work")
cd "$work"
CONVPOOL_SANITIZE=1 python setup.py -q build_ext --inplace >/dev/null 2>build.log || { cat build.log; exit 1; }
asan="$(${CC:-gcc} -print-file-name=libasan.so)"
ubsan="$(${CC:-gcc} -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan:$ubsan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=${SANITIZER_LOG:-/tmp/convpool-asan}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=${SANITIZER_LOG:-/tmp/convpool-asan}"
export PYTHONPATH="$work/src"
python -c "import convpool; assert convpool.__file__.startswith('$work'), convpool.__file__"
python -m pytest -q -p no:cacheprovider -x "${@:-tests}"
