#!/usr/bin/env bash
# The whole test suite: installs what is missing (tools/setup.sh --install-only), then lint,
# unit tests, the book (build + browser) and every notebook (nbval).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --install-only
VENV=${FSLEARN_VENV:-.venv}
if [ -z "${FSLEARN_DATA:-}" ] && [ -d ../shared/data/omniglot ]; then
  export FSLEARN_DATA="$(cd ../shared/data/omniglot && pwd)"
fi
export FSLEARN_CACHE=${FSLEARN_CACHE:-$PWD/.cache/fslearn}
"$VENV/bin/ruff" check fslearn tests benchmarks
# One pytest run: the unit tests, then every notebook re-executed by nbval (strict: stored
# outputs must match, after the substitutions in tools/nbval_sanitize.cfg).
"$VENV/bin/python" -m pytest tests book/chapters exercises --nbval \
  --nbval-sanitize-with tools/nbval_sanitize.cfg "$@"
