#!/usr/bin/env python3
"""Client of the streaming output-guard bench (bench/guard/stream.sh starts the gateway).

Python standard library only (http.client and a small SSE reader). For a route without guards and
the same model behind an output guard, it streams the same fixed answer many times and records,
per request, every SSE event of choice 0 with its arrival time (relative to the moment the request
was sent) and its text. Then:

- TTFT (first non-empty content) and stream duration (to `[DONE]`) per route, and their paired
  difference (request i of one route against request i of the other);
- hold-back per character: for every character of the answer, when the client first saw it
  through the guarded route minus when it saw it through the unguarded one (same pairing).
  Redacted values are aligned with their placeholder: the characters of `4111 1111 1111 1111`
  count as seen when `[CREDIT_CARD_1]` arrives;
- hold-back within the guarded stream: the guarded route still relays one event per upstream
  chunk (its delta emptied while text is held), so a character's release can be compared with the
  event of the chunk that brought it, in the same request (no cross-request jitter);
- a model: the scanner's release rule (64-character window, never inside a word nor inside a
  finding, everything with the finish chunk) replayed in Python on the same chunks; the report
  says for how many characters it picks the same release chunk as the gateway.

Phases: `paced` (the mock sends a chunk every CHUNK_DELAY), sequential with the routes
alternating, then concurrent; `fast` (chunk delay 0), sequential and alternating, plus two blocks
(all plain, then all guarded) that read the gateway's CPU time from /proc/<pid>/task/*/schedstat
to give CPU per stream. Every answer is checked (status, finish_reason "stop", [DONE], identical
text across requests, no raw redacted value in the guarded text) before anything is computed.

    stream.py --url http://127.0.0.1:PORT [--pid PID] [--n 200] [--conc 32] [--n-conc 200]
              [--n-fast 500] [--cpu-n 500] [--holdback 64] [--json out.json]
"""

import argparse
import concurrent.futures
import http.client
import json
import math
import os
import re
import statistics
import sys
import threading
import time
import urllib.parse

HOLDBACK = 64


# ---------------------------------------------------------------- one streamed request

class Stream:
    __slots__ = ("t_send", "t_headers", "events", "all_events", "t_finish", "finish_idx", "t_done", "finish",
                 "status", "error")

    def __init__(self):
        self.t_send = 0.0
        self.t_headers = None
        self.events = []        # (t, text, carries_finish, index in all_events): events with content
        self.all_events = []    # (t, text or "") for every event of choice 0, empty deltas included
        self.t_finish = None    # the event carrying finish_reason
        self.finish_idx = None  # its index in all_events
        self.t_done = None      # data: [DONE]
        self.finish = None
        self.status = None
        self.error = None

    @property
    def text(self):
        return "".join(e[1] for e in self.events)

    @property
    def ttft(self):
        return self.events[0][0] if self.events else None


def body_for(route):
    return json.dumps({
        "model": route,
        "stream": True,
        "messages": [{"role": "user", "content": "Why was my subscription renewal declined?"}],
    }).encode()


class Client:
    """One keep-alive connection to the gateway."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.conn.connect()

    def stream(self, route):
        if self.conn is None:
            self._connect()
        body = body_for(route)
        s = Stream()
        clock = time.perf_counter
        t0 = clock()
        try:
            self.conn.request("POST", "/v1/chat/completions", body=body,
                              headers={"content-type": "application/json", "accept": "text/event-stream"})
            resp = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            # A keep-alive connection the server closed: once more on a fresh one.
            self.conn.close()
            self._connect()
            t0 = clock()
            self.conn.request("POST", "/v1/chat/completions", body=body,
                              headers={"content-type": "application/json", "accept": "text/event-stream"})
            resp = self.conn.getresponse()
        s.t_headers = clock() - t0
        s.status = resp.status
        if resp.status != 200:
            s.error = f"HTTP {resp.status}: {resp.read()[:300]!r}"
            return s
        readline = resp.readline
        while True:
            line = readline()
            if not line:
                break
            t = clock() - t0
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                s.t_done = t
                continue
            ev = json.loads(data)
            if "error" in ev:
                s.error = str(ev["error"])
                continue
            for c in ev.get("choices") or ():
                if c.get("index", 0) != 0:
                    continue
                content = (c.get("delta") or {}).get("content")
                fin = c.get("finish_reason")
                s.all_events.append((t, content or ""))
                if content:
                    s.events.append((t, content, fin is not None, len(s.all_events) - 1))
                if fin is not None:
                    s.t_finish = t
                    s.finish_idx = len(s.all_events) - 1
                    s.finish = fin
        resp.close()
        return s

    def close(self):
        if self.conn is not None:
            self.conn.close()


# ---------------------------------------------------------------- statistics

def pct(values, q):
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(q / 100 * len(v)) - 1))
    return v[k]


def ms(x):
    return f"{x * 1000:.2f}" if x == x else "–"


def ms1(x):
    return f"{x * 1000:.1f}" if x == x else "–"


# ---------------------------------------------------------------- alignment and the model

PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


class Answer:
    """The unguarded answer, the guarded one, and how their characters line up."""

    def __init__(self, plain, guarded):
        self.plain = plain
        self.guarded = guarded
        # The guarded answer is the plain one with values replaced by placeholders: literal text
        # and placeholders alternate. For every character of the plain answer, the guarded
        # character whose arrival stands for it: itself in literal text, the placeholder's last
        # character inside a redacted value.
        self.to_guarded = [0] * len(plain)
        self.redacted = []  # (start, end, value, placeholder), offsets in the plain answer
        pos_p = pos_g = 0
        marks = list(PLACEHOLDER.finditer(guarded))
        for idx, m in enumerate(marks):
            lit = guarded[pos_g:m.start()]
            if plain[pos_p:pos_p + len(lit)] != lit:
                raise SystemExit(f"cannot align the guarded answer at {pos_g}: {guarded[pos_g:pos_g + 40]!r}")
            for d in range(len(lit)):
                self.to_guarded[pos_p + d] = pos_g + d
            pos_p += len(lit)
            pos_g = m.end()
            nxt = marks[idx + 1].start() if idx + 1 < len(marks) else len(guarded)
            after = guarded[pos_g:nxt]
            end = plain.find(after, pos_p + 1) if after else (len(plain) if idx + 1 == len(marks) else pos_p + 1)
            if end < 0:
                raise SystemExit(f"cannot align the guarded answer after {m.group()}")
            for i in range(pos_p, end):
                self.to_guarded[i] = m.end() - 1
            self.redacted.append((pos_p, end, plain[pos_p:end], m.group()))
            pos_p = end
        lit = guarded[pos_g:]
        if plain[pos_p:] != lit:
            raise SystemExit(f"cannot align the end of the guarded answer: {lit[:40]!r}")
        for d in range(len(lit)):
            self.to_guarded[pos_p + d] = pos_g + d


def arrivals(s):
    """Arrival time of every character of the streamed text, whether it came with the finish
    chunk, and the index (in `all_events`) of the event that brought it."""
    t_of, at_finish, ev_of = [], [], []
    for t, text, fin, evi in s.events:
        t_of.extend([t] * len(text))
        at_finish.extend([fin] * len(text))
        ev_of.extend([evi] * len(text))
    return t_of, at_finish, ev_of


def chunk_of(plain_stream):
    """For every character of the answer, the index in `all_events` of the upstream chunk that
    brought it (the unguarded route relays every upstream chunk as it comes)."""
    out = []
    for i, (_, text) in enumerate(plain_stream.all_events):
        out.extend([i] * len(text))
    return out


def model_release(plain_stream, findings, holdback):
    """Replays the scanner's release rule on the unguarded stream's chunks: for every character,
    the index (in `all_events`) of the chunk whose event releases it (None if the stream ended
    without a finish chunk).

    Mirrors StreamScanner::cut_point: release nothing until more than `holdback` characters are
    pending; cut `holdback` characters from the end, moved back to the start of a word when that
    falls inside one, and to the start of a finding when inside one (findings: the redacted values,
    counted once their last character has arrived); everything left goes with the finish chunk.
    """
    text = "".join(e[1] for e in plain_stream.all_events)
    n = len(text)
    release = [None] * n
    released = 0
    end = 0
    for idx, (_, chunk) in enumerate(plain_stream.all_events):
        if not chunk:
            continue
        end += len(chunk)
        if end - released <= holdback:
            continue
        cut = end - holdback
        if 0 < cut < n and cut - 1 >= released and not text[cut - 1].isspace() and not text[cut].isspace():
            ws = max((i for i in range(released, cut) if text[i].isspace()), default=None)
            cut = released if ws is None else ws + 1
        moved = True
        while moved:
            moved = False
            for s0, e0 in findings:
                if s0 >= released and e0 <= end and s0 < cut < e0:
                    cut = s0
                    moved = True
        if cut > released:
            for i in range(released, cut):
                release[i] = idx
            released = cut
    if plain_stream.finish_idx is not None:
        for i in range(released, n):
            release[i] = plain_stream.finish_idx
    return release


# ---------------------------------------------------------------- phases

def run_interleaved(url, routes, n, progress=""):
    """n requests per route, sequential, alternating the routes on one connection each."""
    clients = {r: Client(url) for r in routes}
    out = {r: [] for r in routes}
    t_start = time.time()
    for i in range(n):
        for r in (routes if i % 2 == 0 else routes[::-1]):
            out[r].append(clients[r].stream(r))
        if progress and (i + 1) % max(1, n // 10) == 0:
            print(f"  {progress}: {i + 1}/{n} pairs, {time.time() - t_start:.0f} s", file=sys.stderr, flush=True)
    for c in clients.values():
        c.close()
    return out


def run_concurrent(url, routes, n, conc):
    """n requests per route, `conc` at a time, routes interleaved in the queue."""
    jobs = [routes[j % 2] if (j // 2) % 2 == 0 else routes[1 - j % 2] for j in range(2 * n)]
    local = {}

    def work(route):
        key = threading.get_ident()
        c = local.get(key)
        if c is None:
            c = local[key] = Client(url)
        return route, c.stream(route)

    out = {r: [] for r in routes}
    with concurrent.futures.ThreadPoolExecutor(max_workers=conc) as ex:
        for route, s in ex.map(work, jobs):
            out[route].append(s)
    for c in local.values():
        c.close()
    return out


def cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def run_cpu_blocks(url, routes, n, pid):
    """For each route, n sequential streams in one block; the gateway's CPU time per stream."""
    res = {}
    for r in routes:
        c = Client(url)
        c.stream(r)  # warm the connection
        time.sleep(0.5)  # let the recorder flush the warm-up
        before = cpu_ns(pid)
        t0 = time.perf_counter()
        for _ in range(n):
            s = c.stream(r)
            if s.error or s.finish != "stop":
                raise SystemExit(f"{r}: stream failed in the CPU block: {s.error or s.finish}")
        wall = time.perf_counter() - t0
        time.sleep(1.0)  # the inference writer batches rows: count its work too
        res[r] = {"cpu_us_per_stream": (cpu_ns(pid) - before) / n / 1000, "wall_ms_per_stream": wall / n * 1000}
        c.close()
    return res


# ---------------------------------------------------------------- analysis

def check(streams, route):
    bad = [s for s in streams if s.error or s.finish != "stop" or s.t_done is None]
    if bad:
        s = bad[0]
        raise SystemExit(f"{route}: {len(bad)} of {len(streams)} streams failed, first: "
                         f"status {s.status}, error {s.error}, finish {s.finish}, done {s.t_done}")


def dist(v):
    return {"p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99), "max": max(v) if v else float("nan"),
            "mean": statistics.fmean(v) if v else float("nan"), "n": len(v)}


def analyse(out, plain_route, guarded_route, holdback):
    plain, guarded = out[plain_route], out[guarded_route]
    check(plain, plain_route)
    check(guarded, guarded_route)
    p_texts = {s.text for s in plain}
    g_texts = {s.text for s in guarded}
    if len(p_texts) != 1 or len(g_texts) != 1:
        raise SystemExit(f"answers differ between requests: {len(p_texts)} plain, {len(g_texts)} guarded texts")
    ans = Answer(p_texts.pop(), g_texts.pop())
    for _, _, value, _ in ans.redacted:
        if value in ans.guarded:
            raise SystemExit(f"the guarded answer leaks {value!r}")
    findings = [(a, b) for a, b, _, _ in ans.redacted]
    n_chars = len(ans.plain)

    # The guarded route relays one event per upstream chunk, its delta emptied while text is held:
    # the same number of events as the unguarded route, so event i of both carries upstream chunk i.
    same_shape = all(len(g.all_events) == len(plain[0].all_events) for g in guarded)
    src = chunk_of(plain[0])                             # upstream chunk (event index) of each character
    rule = model_release(plain[0], findings, holdback)   # event index that should release it

    paired, paired_steady, paired_tail = [], [], []
    within, within_chunks, model, mismatched = [], [], [], 0
    for p, g in zip(plain, guarded):
        tp, _, _ = arrivals(p)
        tg_out, fin_out, ev_out = arrivals(g)
        for k in range(n_chars):
            j = ans.to_guarded[k]
            d = tg_out[j] - tp[k]
            paired.append(d)
            (paired_tail if fin_out[j] else paired_steady).append(d)
            if same_shape:
                t_src = g.all_events[src[k]][0]
                within.append(tg_out[j] - t_src)
                within_chunks.append(ev_out[j] - src[k])
                if rule[k] is not None:
                    model.append(g.all_events[rule[k]][0] - t_src)
                    mismatched += ev_out[j] != rule[k]

    chunks = [len(e[1]) for e in plain[0].events]

    def interval(s):
        # Mean upstream chunk interval of one stream: from the first content chunk's event to the
        # finish chunk's (the guarded route relays every chunk too, its delta emptied when held).
        first = 1 if len(s.all_events) > 1 else 0
        return (s.all_events[s.finish_idx][0] - s.all_events[first][0]) / max(1, s.finish_idx - first)

    intervals = [interval(s) for s in plain]
    intervals_g = [interval(s) for s in guarded] if same_shape else [float("nan")]
    ttft_p = [s.ttft for s in plain]
    ttft_g = [s.ttft for s in guarded]
    dur_p = [s.t_done for s in plain]
    dur_g = [s.t_done for s in guarded]
    return {
        "requests": len(plain),
        "answer_chars": n_chars,
        "guarded_chars": len(ans.guarded),
        "redacted": [(v, ph) for _, _, v, ph in ans.redacted],
        "content_chunks": len(chunks),
        "chars_per_chunk": statistics.fmean(chunks),
        "chunk_interval": statistics.median(intervals) if intervals else float("nan"),
        "chunk_interval_guarded": statistics.median(intervals_g),
        "guarded_content_events": statistics.fmean(len(s.events) for s in guarded),
        "first_release_chars": len(guarded[0].events[0][1]) if guarded[0].events else 0,
        "first_release_chunk": guarded[0].events[0][3] if guarded[0].events else None,
        "same_shape": same_shape,
        "ttft": {"plain": dist(ttft_p), "guarded": dist(ttft_g),
                 "paired_diff": dist([g - p for p, g in zip(ttft_p, ttft_g)])},
        "duration": {"plain": dist(dur_p), "guarded": dist(dur_g),
                     "paired_diff": dist([g - p for p, g in zip(dur_p, dur_g)])},
        "holdback": {"paired": dist(paired), "paired_steady": dist(paired_steady),
                     "paired_tail": dist(paired_tail), "within": dist(within),
                     "within_chunks": dist(within_chunks), "model": dist(model),
                     "model_mismatched": mismatched, "model_n": len(model)},
    }


def table(title, a, holdback, fast=False):
    f = ms if fast else ms1
    lines = [f"### {title}", ""]
    lines.append(f"{a['requests']} streams per route. Answer: {a['answer_chars']} characters in "
                 f"{a['content_chunks']} content chunks ({a['chars_per_chunk']:.1f} characters per chunk), "
                 f"chunk interval {a['chunk_interval'] * 1000:.3f} ms on the unguarded route, "
                 f"{a['chunk_interval_guarded'] * 1000:.3f} ms on the guarded one (medians). Redacted: "
                 + ", ".join(f"`{v}` → `{ph}`" for v, ph in a['redacted']) + ".")
    lines.append("")
    lines.append("| ms | p50 | p95 | p99 | max |")
    lines.append("|---|---|---|---|---|")

    def row(name, d, fmt=f):
        lines.append(f"| {name} | {fmt(d['p50'])} | {fmt(d['p95'])} | {fmt(d['p99'])} | {fmt(d['max'])} |")

    row("TTFT, no guard", a["ttft"]["plain"])
    row("TTFT, output guard", a["ttft"]["guarded"])
    row("**added TTFT** (guarded − unguarded, request pairs)", a["ttft"]["paired_diff"])
    row("stream duration to `[DONE]`, no guard", a["duration"]["plain"])
    row("stream duration, output guard", a["duration"]["guarded"])
    row("added duration (pairs)", a["duration"]["paired_diff"])
    h = a["holdback"]
    row(f"**hold-back**, per character: guarded − unguarded arrival (pairs; n={h['paired']['n']})", h["paired"])
    row(f"  of which released before the finish chunk (n={h['paired_steady']['n']})", h["paired_steady"])
    row(f"  of which flushed with the finish chunk (n={h['paired_tail']['n']})", h["paired_tail"])
    if a["same_shape"]:
        row("hold-back within the guarded stream (release − event of the chunk that brought it)", h["within"])
        if h["model_mismatched"]:
            row("model: the release rule replayed on the same chunks and event times", h["model"])
        lines.append(f"| hold-back within the guarded stream, in chunks | {h['within_chunks']['p50']} | "
                     f"{h['within_chunks']['p95']} | {h['within_chunks']['p99']} | {h['within_chunks']['max']} |")
    lines.append("")
    naive = holdback / a["chars_per_chunk"] * a["chunk_interval"]
    lines.append(f"Rule of thumb: {holdback} characters / {a['chars_per_chunk']:.1f} characters per chunk × "
                 f"{a['chunk_interval'] * 1000:.2f} ms = {naive / a['chunk_interval'] if a['chunk_interval'] else 0:.1f} "
                 f"chunks = {naive * 1000:.2f} ms. First released text: {a['first_release_chars']} characters, "
                 f"with upstream chunk {a['first_release_chunk']} (chunk 0 is the role chunk); "
                 f"{a['guarded_content_events']:.1f} content events per guarded answer against {a['content_chunks']}.")
    if a["same_shape"]:
        lines.append(f"Model (the scanner's release rule replayed in Python on the same chunks): it releases "
                     f"{h['model_n'] - h['model_mismatched']} of {h['model_n']} characters with the same chunk as "
                     f"the gateway did" + (", so its figures are those of the row above." if not h['model_mismatched']
                                          else "; its row is shown above."))
    lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, help="gateway pid, for CPU per stream")
    ap.add_argument("--n", type=int, default=200, help="paced phase: sequential requests per route")
    ap.add_argument("--conc", type=int, default=32, help="paced phase: concurrent streams (0 skips)")
    ap.add_argument("--n-conc", type=int, default=200, help="paced concurrent phase: requests per route")
    ap.add_argument("--n-fast", type=int, default=500, help="fast phase: sequential requests per route (0 skips)")
    ap.add_argument("--cpu-n", type=int, default=500, help="fast phase: streams per CPU block (0 skips)")
    ap.add_argument("--holdback", type=int, default=HOLDBACK)
    ap.add_argument("--json", help="write every summary here")
    args = ap.parse_args()

    results = {}
    md = []
    # Warm-up: a few streams on every route (connections, first-use allocations, SQLite).
    run_interleaved(args.url, ["plain-fast", "guarded-fast"], 20)
    run_interleaved(args.url, ["plain", "guarded"], 3)

    if args.n > 0:
        print(f"paced, sequential: {args.n} requests per route", file=sys.stderr, flush=True)
        out = run_interleaved(args.url, ["plain", "guarded"], args.n, "paced")
        a = results["paced_sequential"] = analyse(out, "plain", "guarded", args.holdback)
        md.append(table("Paced upstream, sequential (one stream at a time, routes alternating)", a, args.holdback))
    if args.conc > 0 and args.n_conc > 0:
        print(f"paced, {args.conc} concurrent: {args.n_conc} requests per route", file=sys.stderr, flush=True)
        out = run_concurrent(args.url, ["plain", "guarded"], args.n_conc, args.conc)
        a = results["paced_concurrent"] = analyse(out, "plain", "guarded", args.holdback)
        md.append(table(f"Paced upstream, {args.conc} concurrent streams (both routes mixed)", a, args.holdback))
    if args.n_fast > 0:
        print(f"fast, sequential: {args.n_fast} requests per route", file=sys.stderr, flush=True)
        out = run_interleaved(args.url, ["plain-fast", "guarded-fast"], args.n_fast)
        a = results["fast_sequential"] = analyse(out, "plain-fast", "guarded-fast", args.holdback)
        md.append(table("Back-to-back upstream (chunk delay 0), sequential", a, args.holdback, fast=True))
    if args.pid and args.cpu_n > 0:
        print(f"fast, CPU blocks: {args.cpu_n} streams per route", file=sys.stderr, flush=True)
        cpu = results["cpu"] = run_cpu_blocks(args.url, ["plain-fast", "guarded-fast"], args.cpu_n, args.pid)
        p, g = cpu["plain-fast"], cpu["guarded-fast"]
        md.append("### Gateway CPU per stream (chunk delay 0; all threads of the process, from schedstat)\n")
        md.append("| | no guard | output guard | added |")
        md.append("|---|---|---|---|")
        md.append(f"| CPU µs per stream | {p['cpu_us_per_stream']:.0f} | {g['cpu_us_per_stream']:.0f} | "
                  f"{g['cpu_us_per_stream'] - p['cpu_us_per_stream']:.0f} |")
        chunks = results.get("fast_sequential", {}).get("content_chunks")
        if chunks:
            md.append(f"| CPU µs per content chunk ({chunks} per answer) | {p['cpu_us_per_stream'] / chunks:.2f} | "
                      f"{g['cpu_us_per_stream'] / chunks:.2f} | "
                      f"{(g['cpu_us_per_stream'] - p['cpu_us_per_stream']) / chunks:.2f} |")
        md.append(f"| wall ms per stream (client side) | {p['wall_ms_per_stream']:.2f} | "
                  f"{g['wall_ms_per_stream']:.2f} | {g['wall_ms_per_stream'] - p['wall_ms_per_stream']:.2f} |")
        md.append("")
    print("\n".join(md))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
