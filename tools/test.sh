#!/usr/bin/env bash
# The whole test suite: installs what is missing (tools/setup.sh --install-only), then lint,
# unit tests, notebooks and the book.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --install-only
VENV=${FSLEARN_VENV:-.venv}
if [ -z "${FSLEARN_DATA:-}" ] && [ -d ../shared/data/omniglot ]; then
  export FSLEARN_DATA="$(cd ../shared/data/omniglot && pwd)"
fi
export FSLEARN_CACHE=${FSLEARN_CACHE:-$PWD/.cache/fslearn}
"$VENV/bin/ruff" check fslearn tests benchmarks
"$VENV/bin/python" -m pytest "$@"
