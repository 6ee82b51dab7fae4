#!/usr/bin/env bash
# gardefou overhead bench: what the gateway adds on top of a very fast OpenAI-compatible server,
# measured with the shared rig (../shared/bench: an nginx stand-in upstream and overhead.sh).
#
#   bench/run.sh                 # from anywhere; results go to bench/results/ (not committed)
#
# Steps: check the tools; build gardefou (release); start the upstream pinned to core 0 and
# gardefou pinned to core 1 with bench/gardefou-bench.toml (recording ON to a SQLite file in a temp
# dir); record idle RSS; run overhead.sh at RATE req/s (non-streaming at a fixed rate, max
# throughput, streams), then again at HIGH_RATE req/s (fixed rate only); restart gardefou, hold
# STREAMS concurrent slow streams and sample its RSS at the peak; stop everything on exit.
#
# Env (all optional):
#   SHARED_BENCH   the shared rig's folder (when unset: ../shared/bench next to the repo)
#   RUNS (3)  RATE (500)  HIGH_RATE (2000; 0 skips that phase)  STREAMS (1000; 0 skips)
#   RATE_DURATION MAX_CONC MAX_DURATION STREAM_RATE STREAM_DURATION QUIET_WAIT ...  passed to overhead.sh
#   GW_CPUS (1)  UPSTREAM_CPUS (0)  LOADGEN_CPUS (0)   taskset CPU lists
#   GW_PORT (18100)  BENCH_UPSTREAM_PORT (18080; the bench config expects 18080)
#   SKIP_BUILD=1   use the existing release binary    GARDEFOU=path   use that binary
#   OHA=path       oha binary (default: oha from PATH or ~/.cargo/bin/oha)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ---------------------------------------------------------------- the shared rig
if [[ -n "${SHARED_BENCH:-}" ]]; then
  SB="$SHARED_BENCH"
elif [[ -f ../shared/bench/overhead.sh ]]; then
  SB="../shared/bench"
else
  echo "the shared bench rig is not at ../shared/bench (next to the repo): set SHARED_BENCH=<its folder>" >&2
  exit 2
fi
[[ -d "$SB" ]] || { echo "SHARED_BENCH=$SB is not a folder (it must point at the shared rig's folder)" >&2; exit 2; }
SB="$(cd "$SB" && pwd)"
for f in upstream.sh overhead.sh; do
  [[ -f "$SB/$f" ]] || { echo "$SB/$f is missing (SHARED_BENCH must point at the shared rig's folder)" >&2; exit 2; }
done

# ---------------------------------------------------------------- tools (nothing is installed here)
missing=0
need() { # need NAME HOW
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "missing: $1 — install it with: $2" >&2
    missing=1
  fi
}
[[ -z "${NGINX:-}" ]] && ! command -v nginx >/dev/null 2>&1 && [[ -x /usr/sbin/nginx ]] && export NGINX=/usr/sbin/nginx
[[ -n "${NGINX:-}" ]] || need nginx "apt-get install -y nginx"
if [[ -z "${OHA:-}" ]]; then
  if command -v oha >/dev/null 2>&1; then OHA="$(command -v oha)"
  elif [[ -x "$HOME/.cargo/bin/oha" ]]; then OHA="$HOME/.cargo/bin/oha"
  else echo "missing: oha — install it with: cargo install oha --locked" >&2; missing=1
  fi
fi
export OHA="${OHA:-}"
need taskset "apt-get install -y util-linux"
need python3 "apt-get install -y python3"
need curl "apt-get install -y curl"
need cargo "https://rustup.rs"
[[ $missing -eq 0 ]] || exit 2

RUNS="${RUNS:-3}"
RATE="${RATE:-500}"
HIGH_RATE="${HIGH_RATE:-2000}"
STREAMS="${STREAMS:-1000}"
GW_CPUS="${GW_CPUS:-1}"
export UPSTREAM_CPUS="${UPSTREAM_CPUS:-0}"
export LOADGEN_CPUS="${LOADGEN_CPUS:-0}"
GW_PORT="${GW_PORT:-18100}"
CONFIG="$ROOT/bench/gardefou-bench.toml"

if pgrep -x rustc >/dev/null 2>&1 || pgrep -x cc1plus >/dev/null 2>&1; then
  echo "note: a compiler is running on this machine; figures will be noisy (see the unattributed CPU row)" >&2
fi

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
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# ---------------------------------------------------------------- results and cleanup
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+dirty"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
[[ -f "$RESULTS/.gitignore" ]] || printf '*\n' > "$RESULTS/.gitignore"
PREFIX="$RESULTS/$STAMP-$COMMIT"
LOG="$PREFIX.txt"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gardefou-bench.XXXXXX")"
GW_PID=""
CHILD=""
# Long steps run in the background and are waited for, so that a signal stops them at once.
step() { "$@" & CHILD=$!; wait "$CHILD"; local rc=$?; CHILD=""; return $rc; }
cleanup() {
  set +e
  if [[ -n "$CHILD" ]]; then
    pkill -TERM -P "$CHILD" 2>/dev/null  # oha / the load generator started by this step
    kill -TERM "$CHILD" 2>/dev/null
  fi
  stop_gateway >/dev/null
  bash "$SB/upstream.sh" stop >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

exec > >(tee "$LOG") 2>&1

# A private copy: a rebuild during the bench cannot swap the binary between two starts.
cp "$BIN" "$WORK/gardefou"
BIN="$WORK/gardefou"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

echo "== gardefou bench $STAMP, commit $COMMIT"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/^MemTotal:/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "binary: $("$BIN" --version 2>/dev/null || echo gardefou)"
echo "pinning: upstream cpu $UPSTREAM_CPUS, gardefou cpu $GW_CPUS, load generator cpu $LOADGEN_CPUS"

# Enough file descriptors for STREAMS open connections on each side.
want_fds=$(( STREAMS * 2 + 1024 ))
hard_fds="$(ulimit -Hn)"
[[ "$hard_fds" == unlimited ]] && hard_fds=$want_fds
if (( $(ulimit -n) < want_fds )); then ulimit -n "$(( want_fds < hard_fds ? want_fds : hard_fds ))" || true; fi

# ---------------------------------------------------------------- start the upstream and gardefou
bash "$SB/upstream.sh" start

GW_URL="http://127.0.0.1:$GW_PORT"
# Started inside the temp dir: the config's relative SQLite file lands there.
start_gateway() {
  (cd "$WORK" && exec taskset -c "$GW_CPUS" "$BIN" serve --config "$CONFIG" --listen "127.0.0.1:$GW_PORT" \
    >"$WORK/gardefou.out" 2>>"$WORK/gardefou.err") &
  GW_PID=$!
  for _ in $(seq 100); do
    curl -fsS "$GW_URL/health" >/dev/null 2>&1 && break
    kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gardefou.err" >&2; echo "gardefou exited at start" >&2; exit 1; }
    sleep 0.1
  done
  curl -fsS "$GW_URL/health" >/dev/null || { cat "$WORK/gardefou.err" >&2; exit 1; }
  sleep 2  # let start-up work finish before measuring idle memory
  echo "gardefou up: pid $GW_PID, $GW_URL, config bench/gardefou-bench.toml, recording to a SQLite file;" \
    "RSS idle $(( $(rss_kib "$GW_PID") / 1024 )) MiB"
}
# Stops gardefou; prints its last log line (inference records written and dropped).
stop_gateway() {
  [[ -n "$GW_PID" ]] && kill -0 "$GW_PID" 2>/dev/null || return 0
  kill -TERM "$GW_PID"
  for _ in $(seq 300); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$GW_PID" 2>/dev/null && kill -KILL "$GW_PID"
  echo "gardefou: $(grep -a 'stopped' "$WORK/gardefou.err" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
  GW_PID=""
}

start_gateway

# ---------------------------------------------------------------- overhead at RATE, max, streams
echo
echo "== overhead.sh: RATE=$RATE, RUNS=$RUNS"
GW_PID="$GW_PID" GW_NAME=gardefou RUNS="$RUNS" RATE="$RATE" OUT="$PREFIX-rate$RATE.json" \
  NOTE="gardefou $COMMIT, bench/gardefou-bench.toml, recording on (SQLite), gardefou on cpu $GW_CPUS" \
  step bash "$SB/overhead.sh" "$GW_URL/v1" bench-chat bench-chat-stream

# ---------------------------------------------------------------- overhead at HIGH_RATE
if (( HIGH_RATE > 0 )); then
  echo
  echo "== overhead.sh: RATE=$HIGH_RATE (fixed-rate phase only), RUNS=$RUNS"
  GW_PID="$GW_PID" GW_NAME=gardefou RUNS="$RUNS" RATE="$HIGH_RATE" SKIP=max,stream OUT="$PREFIX-rate$HIGH_RATE.json" \
    NOTE="gardefou $COMMIT, bench/gardefou-bench.toml, recording on (SQLite), gardefou on cpu $GW_CPUS" \
    step bash "$SB/overhead.sh" "$GW_URL/v1" bench-chat bench-chat-stream
fi

# ---------------------------------------------------------------- RSS with STREAMS open streams
if (( STREAMS > 0 )); then
  echo
  echo "== $STREAMS concurrent streams (route bench-hold: mock, one chunk every 250 ms), on a fresh gardefou"
  stop_gateway
  start_gateway
  cat > "$WORK/hold_streams.py" <<'PY'
"""Holds N concurrent streaming chat requests open and samples the gateway's VmRSS meanwhile."""
import asyncio, json, sys, time

port, pid, n, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
words = " ".join(f"word{i}" for i in range(40))
body = json.dumps({"model": "bench-hold", "stream": True,
                   "messages": [{"role": "user", "content": f"Please repeat: {words}"}]}).encode()
request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
           f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

state = {"open": 0, "max_open": 0, "done": 0, "failed": 0, "errors": {}}

async def one():
    opened = False
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        seen = b""
        while b"data:" not in seen:  # the first event: the stream is open
            chunk = await reader.read(4096)
            if not chunk:
                raise RuntimeError("closed before the first event")
            seen += chunk
        opened = True
        state["open"] += 1
        state["max_open"] = max(state["max_open"], state["open"])
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            seen = seen[-64:] + chunk
            if b"[DONE]" in seen:
                break
        writer.close()
        if b"[DONE]" not in seen:
            raise RuntimeError("stream ended without [DONE]")
        state["done"] += 1
    except Exception as e:  # counted, reported
        state["failed"] += 1
        k = str(e)[:80] or type(e).__name__
        state["errors"][k] = state["errors"].get(k, 0) + 1
    finally:
        if opened:
            state["open"] -= 1

async def main():
    idle = rss_kib()
    samples = []  # (open streams, rss)
    stop = asyncio.Event()

    async def sampler():
        while not stop.is_set():
            samples.append((state["open"], rss_kib()))
            await asyncio.sleep(0.1)

    s = asyncio.create_task(sampler())
    t0 = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one()))
        if i % 100 == 99:
            await asyncio.sleep(0.01)  # let the accept queue drain
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    stop.set()
    await s
    await asyncio.sleep(2.0)
    after = rss_kib()
    peak = max((r for _, r in samples), default=0)
    all_open = [r for o, r in samples if o == n]
    res = {"streams": n, "max_concurrent_open": state["max_open"], "completed": state["done"],
           "failed": state["failed"], "errors": state["errors"], "elapsed_s": round(elapsed, 2),
           "rss_before_kib": idle, "rss_peak_kib": peak,
           "rss_peak_all_open_kib": max(all_open) if all_open else None,
           "rss_after_kib": after, "samples": len(samples)}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"  streams {n}: max open at once {state['max_open']}, completed {state['done']}, failed {state['failed']}"
          + (f" {state['errors']}" if state["errors"] else "") + f", {elapsed:.1f} s")
    print(f"  RSS before {idle/1024:.1f} MiB, peak {peak/1024:.1f} MiB"
          + (f" (all {n} open: {max(all_open)/1024:.1f} MiB)" if all_open else "")
          + f", 2 s after {after/1024:.1f} MiB")
    print(f"JSON: {out}")
    if state["max_open"] < n or state["failed"]:
        sys.exit(f"not all {n} streams were open at once and completed")

asyncio.run(main())
PY
  step taskset -c "$LOADGEN_CPUS" python3 "$WORK/hold_streams.py" "$GW_PORT" "$GW_PID" "$STREAMS" "$PREFIX-streams.json"
fi

echo
stop_gateway
echo "results: bench/results/$(basename "$PREFIX")*"
