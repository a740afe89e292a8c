#!/usr/bin/env bash
# Re-execute every notebook (book chapters, exercises, solutions) with nbval and compare the
# outputs with the stored ones: strict, after the substitutions in tools/nbval_sanitize.cfg,
# except the numbers of cells marked `# NBVAL_APPROX` (see exercises/README.md, "Notebook
# outputs that depend on the CPU").
#
#   bash tools/test_notebooks.sh [--kernels LIST] [PYTEST ARGS...]
#
# LIST: comma-separated CPU kernel settings, one nbval pass each (default: native):
#   native   the kernels PyTorch picks for this CPU
#   default  ATEN_CPU_CAPABILITY=default: PyTorch's kernels without AVX2/AVX-512, so that
#            figures that depend on float rounding are also checked on another kernel set
#   avx2     ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2: imitates an AVX2 machine (on an
#            AVX-512 one)
# Several passes run at the same time (each kernel uses one thread), each into its own log,
# printed in order at the end. The script fails if any pass fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FSLEARN_VENV:-.venv}
if [ -z "${FSLEARN_DATA:-}" ] && [ -d ../shared/data/omniglot ]; then
  export FSLEARN_DATA="$(cd ../shared/data/omniglot && pwd)"
fi
export FSLEARN_CACHE=${FSLEARN_CACHE:-$PWD/.cache/fslearn}

kernels=native
if [ "${1:-}" = "--kernels" ]; then
  kernels=${2:?"--kernels needs a list, e.g. native,default"}
  shift 2
fi

settings() {  # the environment of one kernel setting
  case "$1" in
    native) echo "" ;;
    default) echo "ATEN_CPU_CAPABILITY=default" ;;
    avx2) echo "ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2" ;;
    *) echo "unknown kernel setting '$1' (known: native, default, avx2)" >&2; return 1 ;;
  esac
}

IFS=, read -r -a names <<< "$kernels"
for name in "${names[@]}"; do settings "$name" >/dev/null; done

nbval=(-m pytest book/chapters exercises --nbval --nbval-sanitize-with tools/nbval_sanitize.cfg)

nothing_selected_ok() {  # exit status 5 (no test selected) is fine when arguments select tests
  [ "$1" = 5 ] && [ "$2" != 0 ]
}

if [ "${#names[@]}" = 1 ]; then
  echo "== notebooks, CPU kernels: ${names[0]} $(settings "${names[0]}")"
  status=0
  # shellcheck disable=SC2046  # the settings are words on purpose
  env $(settings "${names[0]}") "$VENV/bin/python" "${nbval[@]}" "$@" || status=$?
  if nothing_selected_ok "$status" "$#"; then status=0; fi
  exit "$status"
fi

logs=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$logs"' EXIT
trap 'exit 130' INT  # Ctrl-C: the passes ignore SIGINT (background jobs), the trap stops them
trap 'exit 143' TERM
start=$SECONDS
for name in "${names[@]}"; do
  # No cache plugin: concurrent passes would write the same .pytest_cache. The job is pytest
  # itself (env execs it), so that the trap above can stop it.
  # shellcheck disable=SC2046
  env $(settings "$name") "$VENV/bin/python" "${nbval[@]}" -p no:cacheprovider "$@" \
    > "$logs/$name.log" 2>&1 &
  pids+=("$!")
done
statuses=()
for i in "${!names[@]}"; do
  if wait "${pids[$i]}"; then statuses+=(0); else statuses+=("$?"); fi
done
pids=()
echo "== ${#names[@]} notebook passes at the same time: $((SECONDS - start)) s"
failed=()
for i in "${!names[@]}"; do  # the logs in order, so that pytest's summary line comes last
  echo "== notebooks, CPU kernels: ${names[$i]} $(settings "${names[$i]}")" \
    "(exit status ${statuses[$i]})"
  cat "$logs/${names[$i]}.log"
  if [ "${statuses[$i]}" != 0 ] && ! nothing_selected_ok "${statuses[$i]}" "$#"; then
    failed+=("${names[$i]}")
  fi
done
if [ "${#failed[@]}" != 0 ]; then
  echo "notebook passes that failed: ${failed[*]}" >&2
  exit 1
fi
