#!/usr/bin/env bash
# Quality evaluation of gardefou-guard on the labelled files in data/.
# Usage: bench/guard/run.sh            (from anywhere inside the repository)
# Set CARGO_TARGET_DIR to share a build directory; the data files are committed, and
# build_data.py documents how they were made.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo run --release -q -p gardefou-guard --example eval -- bench/guard/data
