#!/usr/bin/env bash
# Streaming output guards: what the StreamScanner's hold-back window costs a streamed answer.
# The same mock model behind two routes, one without guards and one with an output guard
# (pii = "redact", secrets = "block"), streamed many times by a stdlib-only Python client that
# records when every character of the answer reached it: added time to first token, hold-back
# latency per character, stream duration, and the gateway's CPU per stream.
#
#   bench/guard/stream.sh                 # from anywhere; prints a markdown report
#
# Steps: build `cargo build --release -p gardefou`; write a temp config from bench/guard/stream.toml
# (CHUNK_DELAY rewrites the paced model's chunk delay); start gardefou on a free loopback port
# (--listen 127.0.0.1:0, address read from its first line) inside a temp dir, so inferences are
# recorded to a fresh SQLite file there; wait for /health; run bench/guard/stream.py; stop
# gardefou on exit (also on Ctrl-C or an error).
#
# Env (all optional):
#   N (200)        paced phase: sequential streams per route (routes alternate)
#   CONC (32)      paced phase: concurrent streams in the concurrent sub-phase (0 skips it)
#   N_CONC (200)   streams per route in the concurrent sub-phase
#   N_FAST (500)   back-to-back phase (chunk delay 0): sequential streams per route (0 skips)
#   CPU_N (500)    streams per route in the CPU blocks of the back-to-back phase (0 skips)
#   CHUNK_DELAY (20ms)  the paced model's delay between two chunks
#   GW_CPUS        taskset CPU list for gardefou (unset: not pinned)
#   JSON=path      also write the raw summaries as JSON
#   SKIP_BUILD=1   use the existing release binary    GARDEFOU=path   use that binary
# Takes about 17 minutes with the defaults, most of it the paced sequential phase (400 streams of
# ~2.1 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
N="${N:-200}"
CONC="${CONC:-32}"
N_CONC="${N_CONC:-200}"
N_FAST="${N_FAST:-500}"
CPU_N="${CPU_N:-500}"
CHUNK_DELAY="${CHUNK_DELAY:-20ms}"

for tool in python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing: $tool" >&2; exit 2; }
done

# ---------------------------------------------------------------- build
if [[ -n "${GARDEFOU:-}" ]]; then
  BIN="$GARDEFOU"
else
  if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    cargo build --release -p gardefou
  fi
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/gardefou"
fi
[[ -x "$BIN" ]] || { echo "no gardefou binary at $BIN" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gardefou-stream-bench.XXXXXX")"
GW_PID=""
cleanup() {
  set +e
  if [[ -n "$GW_PID" ]] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"
    for _ in $(seq 100); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$GW_PID" 2>/dev/null && kill -KILL "$GW_PID"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private copy: a rebuild by someone else during the bench cannot swap the binary.
cp "$BIN" "$WORK/gardefou"
CONFIG="$WORK/stream.toml"
sed "s/^chunk_delay = \"20ms\"$/chunk_delay = \"$CHUNK_DELAY\"/" bench/guard/stream.toml > "$CONFIG"
grep -q "^chunk_delay = \"$CHUNK_DELAY\"$" "$CONFIG" || { echo "could not set CHUNK_DELAY=$CHUNK_DELAY" >&2; exit 2; }

COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- crates 2>/dev/null || COMMIT="$COMMIT+dirty(crates)"
echo "== streaming output guard bench, $(date -u +%FT%TZ), commit $COMMIT"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr), $(free -g | awk '/^Mem:/ {print $2 " GiB RAM"}')"
echo "binary: $("$WORK/gardefou" --version 2>/dev/null || echo gardefou) ($BIN)"
echo "knobs: N=$N CONC=$CONC N_CONC=$N_CONC N_FAST=$N_FAST CPU_N=$CPU_N CHUNK_DELAY=$CHUNK_DELAY GW_CPUS=${GW_CPUS:-unpinned}"
echo "load before: $(uptime | sed 's/.*load average/load average/')"

# ---------------------------------------------------------------- start gardefou
PIN=()
[[ -n "${GW_CPUS:-}" ]] && PIN=(taskset -c "$GW_CPUS")
(cd "$WORK" && exec ${PIN[@]+"${PIN[@]}"} ./gardefou serve --config "$CONFIG" --listen 127.0.0.1:0 \
  >"$WORK/gardefou.out" 2>"$WORK/gardefou.err") &
GW_PID=$!
URL=""
for _ in $(seq 200); do
  URL="$(grep -aoE 'http://127\.0\.0\.1:[0-9]+' "$WORK/gardefou.out" 2>/dev/null | head -n 1 || true)"
  [[ -n "$URL" ]] && curl -fsS "$URL/health" >/dev/null 2>&1 && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gardefou.err" >&2; echo "gardefou exited at start" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$URL" ]] && curl -fsS "$URL/health" >/dev/null || { cat "$WORK/gardefou.err" >&2; echo "gardefou is not healthy" >&2; exit 1; }
echo "gardefou up: pid $GW_PID, $URL, recording to $WORK/stream-bench.db"
echo

# ---------------------------------------------------------------- the client
python3 bench/guard/stream.py --url "$URL" --pid "$GW_PID" --n "$N" --conc "$CONC" --n-conc "$N_CONC" \
  --n-fast "$N_FAST" --cpu-n "$CPU_N" ${JSON:+--json "$JSON"} &
CLIENT=$!
wait "$CLIENT"

echo "load after: $(uptime | sed 's/.*load average/load average/')"
