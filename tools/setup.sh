#!/usr/bin/env bash
# Set up everything on a fresh machine (a virtual environment in .venv with the CPU build of
# PyTorch, the package with its book and development extras, headless Chromium for the browser
# test), then run the main job. `--install-only` stops after the installation.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${FSLEARN_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# torch==2.13.0 is the CPU build available as a local file on these machines; the package
# itself only asks for torch>=2.3, so users elsewhere get whatever build suits them.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev,book,glyphs,federated,interpret]'

# Headless Chromium for the browser test of the built book (Debian's package; CI runs as root).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: run 'sudo apt-get install chromium' for the browser test." >&2
  fi
fi

# Debian's Noto fonts: about 130 more scripts for `fslearn data glyphs` (without them it draws
# only the scripts of matplotlib's DejaVu fonts, and says so).
if [ ! -d /usr/share/fonts/truetype/noto ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-core >/dev/null
  else
    echo "fonts-noto-core is missing: run 'sudo apt-get install fonts-noto-core' for the full printed-glyph dataset." >&2
  fi
fi

# The shared copy of Omniglot, when present, so that nothing is downloaded.
if [ -z "${FSLEARN_DATA:-}" ] && [ -d ../shared/data/omniglot ]; then
  export FSLEARN_DATA="$(cd ../shared/data/omniglot && pwd)"
fi

if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi

# The main job: build the book (open _build/html/index.html).
bash tools/build_book.sh
echo "The book is at $PWD/_build/html/index.html"
