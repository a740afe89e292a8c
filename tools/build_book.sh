#!/usr/bin/env bash
# Build the course book (Jupyter Book 1) into _build/html, with every warning an error.
# Usage, from anywhere: bash tools/build_book.sh [extra jupyter-book build options, e.g. --all]
# Assumes the virtual environment exists (bash tools/setup.sh --install-only); FSLEARN_VENV
# picks another one. Notebooks are not executed: the pages show the outputs stored in them.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FSLEARN_VENV:-.venv}
if [ ! -x "$VENV/bin/jupyter-book" ]; then
  echo "error: $VENV/bin/jupyter-book not found; run: bash tools/setup.sh --install-only" >&2
  exit 2
fi
# -W: warnings are errors; -n: nitpicky (every cross-reference must resolve);
# --keep-going: report every warning before failing.
exec "$VENV/bin/jupyter-book" build . -W -n --keep-going "$@"
