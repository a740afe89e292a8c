#!/usr/bin/env bash
# Ship a finished training run as a package checkpoint:
#
#     bash tools/ship_checkpoint.sh NAME [RUN_FOLDER]
#
# copies RUN_FOLDER/best (default runs/NAME) to fslearn/pretrained/NAME, writes the run's training
# history (from RUN_FOLDER/last) beside it as history.json, and writes its test figures over 1000
# episodes with `fslearn report NAME --episodes 1000 --write --write-episodes` (one thread, so that
# the time and the figures do not depend on the cores free): results.json, and episodes.json with
# the right answers of every test episode (for comparisons on the same episodes) and the test time
# per episode. The old copy is replaced only once the new one is
# complete. Needs FSLEARN_DATA (and FSLEARN_CACHE) like every command that reads Omniglot.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bash tools/ship_checkpoint.sh NAME [RUN_FOLDER]}
run=${2:-runs/$name}
python=${PYTHON:-.venv/bin/python}
for part in best last; do
    if [[ ! -f $run/$part/checkpoint.json ]]; then
        echo "error: $run/$part/checkpoint.json not found: train the run first (fslearn train ... --out $run)" >&2
        exit 1
    fi
done
target=fslearn/pretrained/$name
rm -rf "$target.tmp"
cp -r "$run/best" "$target.tmp"
"$python" - "$run/last/checkpoint.json" "$target.tmp/history.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
history = record.get("training_state", {}).get("history", [])
with open(sys.argv[2], "w") as out:
    json.dump(history, out, indent=1)
    out.write("\n")
PY
rm -rf "$target"
mv "$target.tmp" "$target"
OMP_NUM_THREADS=1 "$python" -m fslearn report "$name" --episodes 1000 --write --write-episodes
