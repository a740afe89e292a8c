#!/usr/bin/env bash
# The whole test suite: installs what is missing (tools/setup.sh --install-only), then lint,
# unit tests, the book (build + browser) and every notebook (nbval).
#
#   bash tools/test.sh [--kernels LIST] [PYTEST ARGS...]
#
# --kernels: the CPU kernel settings of the notebook passes (tools/test_notebooks.sh), e.g.
# `native,default` to check the notebooks with PyTorch's default kernels too, as CI does.
# Other arguments go to pytest, in every run (e.g. -x, -k).
set -euo pipefail
cd "$(dirname "$0")/.."
kernels=native
if [ "${1:-}" = "--kernels" ]; then
  kernels=${2:?"--kernels needs a list, e.g. native,default"}
  shift 2
fi
bash tools/setup.sh --install-only
VENV=${FSLEARN_VENV:-.venv}
if [ -z "${FSLEARN_DATA:-}" ] && [ -d ../shared/data/omniglot ]; then
  export FSLEARN_DATA="$(cd ../shared/data/omniglot && pwd)"
fi
export FSLEARN_CACHE=${FSLEARN_CACHE:-$PWD/.cache/fslearn}
"$VENV/bin/ruff" check --no-cache fslearn tests benchmarks
# The unit tests (tests/, including the book build and the browser test). With arguments such
# as `-k`, a run that selects no test (pytest's exit status 5) is not a failure.
status=0
"$VENV/bin/python" -m pytest tests "$@" || status=$?
if [ "$status" != 0 ] && ! { [ "$status" = 5 ] && [ "$#" != 0 ]; }; then exit "$status"; fi
# Every notebook re-executed by nbval, once per kernel setting (strict: stored outputs must
# match after the substitutions in tools/nbval_sanitize.cfg; numbers of `# NBVAL_APPROX` cells
# within their tolerance).
bash tools/test_notebooks.sh --kernels "$kernels" "$@"
