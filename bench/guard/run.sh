#!/usr/bin/env bash
# Quality evaluation of gardefou-guard on the labelled files in data/.
# Usage: bench/guard/run.sh            (from anywhere inside the repository)
# The second step (heuristics + embedding classifier) needs the model from
# scripts/fetch-models.sh (or GARDEFOU_EMBED_MODEL_DIR) and is skipped without it.
# Set CARGO_TARGET_DIR to share a build directory; the data files are committed, and
# build_data.py documents how they were made.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo run --release -q -p gardefou-guard --example eval -- bench/guard/data

model_dir="${GARDEFOU_EMBED_MODEL_DIR:-$root/models/all-MiniLM-L6-v2}"
if [[ -f "$model_dir/model.safetensors" ]]; then
  GARDEFOU_EMBED_MODEL_DIR="$model_dir" \
    cargo run --release -q -p gardefou-embed --example injection_eval -- --data bench/guard/data
else
  echo "skipped: injection classifier evaluation (no model in $model_dir; run scripts/fetch-models.sh)"
fi
