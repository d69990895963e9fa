#!/usr/bin/env bash
# Benchmark `serena serve`'s HTTP API on short transcriptions: requests/s and p50/p99 latency
# at 1, 4 and 16 concurrent clients, and the server's overhead over the engine alone.
#
#   scripts/bench-serve.sh [CLIP.wav]          (default: the 2 s "what time is it" command)
#
# Environment:
#   SERENA_BIN      the binary (default target/release/serena; built if missing)
#   SERENA_MODELS   models directory (default ../shared/fixtures/models next to the repo)
#   STT_MODEL       speech model (default tiny.en)
#   CONCURRENCY     client counts (default "1 4 16")
#   REQUESTS        requests at each level (default 32; at least 2 per client)
#   PAIRS           paired engine/server timings for the overhead (default 10)
#   BENCH_JSON      also write the results as JSON to this file
#
# How it measures:
# * Clients are Python threads (standard library only: http.client), one keep-alive
#   connection each, all posting the same multipart upload to /v1/audio/transcriptions.
#   Each client connects from its own loopback address (127.0.2.N): the server allows one
#   address 4 requests in flight (429 beyond), and 16 clients from one address would
#   measure that limit instead of the queue.
# * One warm-up request loads the model before anything is timed.
# * Overhead: PAIRS times, one after the other with nothing else of ours running, the engine
#   alone (`serena transcribe -b 1 -f json` on two copies of the clip in one process, the
#   model loaded once; the second file's `timings.transcribe_s`, so caches are as warm as
#   the server's) and then one request to the idle server. Both paths decode the same WAV
#   with the same settings (full 30 s window, greedy, default threads), so the paired
#   difference is what the server adds: HTTP, the multipart form, the queue, the blocking
#   pool, the JSON answer. Pairing cancels most of the drift in a shared machine's load;
#   the median and quartiles of the differences are reported, with GET /health as the
#   floor of an HTTP round trip.
# * The server runs one transcription at a time (max_concurrent = 1), so requests/s should
#   stay flat with more clients while latency grows with the queue; with a 30 s queue wait,
#   requests that wait longer are answered 503 (counted, not timed as successes).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLIP="${1:-$ROOT/audio-fixtures/commands/rhasspy3_what_time_is_it.wav}"
SERENA_BIN="${SERENA_BIN:-$ROOT/target/release/serena}"
MODELS="${SERENA_MODELS:-$ROOT/../shared/fixtures/models}"
STT_MODEL="${STT_MODEL:-tiny.en}"
CONCURRENCY="${CONCURRENCY:-1 4 16}"
REQUESTS="${REQUESTS:-32}"
PAIRS="${PAIRS:-10}"

[[ -f "$CLIP" ]] || { echo "no such clip: $CLIP" >&2; exit 2; }
[[ -d "$MODELS" ]] || { echo "no models directory: $MODELS (set SERENA_MODELS)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed for the load generator" >&2; exit 2; }
if [[ ! -x "$SERENA_BIN" ]]; then
  echo "building serena (release)..." >&2
  (cd "$ROOT" && cargo build --release --bin serena >&2)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-serve.XXXXXX")"
SERVE_PID=""
cleanup() {
  if [[ -n "$SERVE_PID" ]] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(uname -m); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "clip: $CLIP; model: $STT_MODEL" >&2

# The server (`exec`, so that the background job is serena itself).
mkdir -p "$WORK/clips"
ln -s "$CLIP" "$WORK/clips/a.wav"
ln -s "$CLIP" "$WORK/clips/b.wav"
mkfifo "$WORK/events"
(exec env -i PATH="$PATH" HOME="$WORK" SERENA_MODELS="$MODELS" SERENA_DATA_DIR="$WORK/data" \
  SERENA_CONFIG="$WORK/config.toml" RUST_LOG=warn "$SERENA_BIN" serve --no-speak --events json \
  --wyoming off --http 127.0.0.1:0 --set "stt.model=$STT_MODEL" >"$WORK/events" 2>"$WORK/serve.log") &
SERVE_PID=$!
exec 3<"$WORK/events"
if ! read -r -t 60 READY <&3; then
  echo "serve did not become ready:" >&2
  cat "$WORK/serve.log" >&2
  exit 1
fi
ADDR="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["http"])' "$READY")"
echo "serve pid $SERVE_PID on $ADDR" >&2

python3 - "$ADDR" "$CLIP" "$WORK" "$SERVE_PID" "$CONCURRENCY" "$REQUESTS" "$PAIRS" \
  "${BENCH_JSON:-}" "$SERENA_BIN" "$MODELS" "$STT_MODEL" <<'PY'
import http.client, json, os, statistics, subprocess, sys, threading, time, uuid

(addr, clip, work, pid, levels, requests, pairs, json_out,
 serena, models, stt_model) = sys.argv[1:12]
host, port = addr.rsplit(":", 1)
port = int(port)
levels = [int(c) for c in levels.split()]
requests, pairs = int(requests), int(pairs)

boundary = uuid.uuid4().hex
with open(clip, "rb") as f:
    audio = f.read()
body = (
    f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
    f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\n"
    f"Content-Type: audio/wav\r\n\r\n"
).encode() + audio + f"\r\n--{boundary}--\r\n".encode()
headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def connection(client):
    # Each client from its own loopback address (see the script's header).
    return http.client.HTTPConnection(host, port, timeout=120, source_address=(f"127.0.2.{client + 1}", 0))


def post(conn, path="/v1/audio/transcriptions"):
    t = time.perf_counter()
    if path == "/health":
        conn.request("GET", path)
    else:
        conn.request("POST", path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, time.perf_counter() - t, data


def rss_mb(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def engine_once():
    """The engine's own time for the clip: the second of two files in one process."""
    out = os.path.join(work, "engine")
    env = {"PATH": os.environ["PATH"], "HOME": work, "SERENA_MODELS": models,
           "SERENA_DATA_DIR": os.path.join(work, "data-engine"),
           "SERENA_CONFIG": os.path.join(work, "config.toml"), "RUST_LOG": "warn"}
    subprocess.run([serena, "transcribe", "--quiet", "-m", stt_model, "-b", "1", "-f", "json",
                    "-o", out, os.path.join(work, "clips", "a.wav"), os.path.join(work, "clips", "b.wav")],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "b.json")) as f:
        return json.load(f)["timings"]["transcribe_s"]


conn = connection(0)
status, warm, data = post(conn)
if status != 200:
    sys.exit(f"warm-up request failed: {status} {data[:200]!r}")
print(f"warm-up (loads the model): {warm:.2f} s -> {json.loads(data)['text']!r}", file=sys.stderr)

# Paired engine / server timings.
engine, server, health = [], [], []
conn.close()
for _ in range(pairs):
    engine.append(engine_once())
    # A fresh connection: the engine run may outlast the server's keep-alive idle timeout.
    conn = connection(0)
    health.append(post(conn, "/health")[1])
    status, elapsed, data = post(conn)
    conn.close()
    if status != 200:
        sys.exit(f"request failed: {status} {data[:200]!r}")
    server.append(elapsed)
diffs = [s - e for e, s in zip(engine, server)]

rows = []
for clients in levels:
    total = max(requests, 2 * clients)
    latencies, statuses, lock = [], {}, threading.Lock()
    start_gate = threading.Barrier(clients)

    def worker(client):
        n = total // clients + (1 if client < total % clients else 0)
        conn = connection(client)
        start_gate.wait()
        for _ in range(n):
            try:
                status, elapsed, _ = post(conn)
            except (OSError, http.client.HTTPException) as err:
                status, elapsed = type(err).__name__, None
                conn.close()
                conn = connection(client)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    rows.append({
        "clients": clients,
        "requests": total,
        "ok": ok,
        "other": {str(k): v for k, v in statuses.items() if k != 200},
        "rps": ok / wall,
        "p50_s": pct(latencies, 50),
        "p99_s": pct(latencies, 99),
        "mean_s": statistics.fmean(latencies) if latencies else float("nan"),
        "wall_s": wall,
        "rss_mb": rss_mb("VmRSS"),
        "load1": os.getloadavg()[0],
    })

print()
print("| clients | requests | 200 | other | req/s | p50 (s) | p99 (s) | mean (s) | serve RSS (MB) | load (1 min) |")
print("|--------:|---------:|----:|:------|------:|--------:|--------:|---------:|---------------:|-------------:|")
for r in rows:
    other = ", ".join(f"{k}: {v}" for k, v in r["other"].items()) or "-"
    print(f"| {r['clients']} | {r['requests']} | {r['ok']} | {other} | {r['rps']:.2f} | "
          f"{r['p50_s']:.3f} | {r['p99_s']:.3f} | {r['mean_s']:.3f} | {r['rss_mb']:.0f} | {r['load1']:.2f} |")
print()
ms = lambda x: f"{x * 1000:.0f} ms"
print(f"engine alone (serena transcribe -b 1, timings.transcribe_s), {pairs} runs: "
      f"median {ms(statistics.median(engine))} (min {ms(min(engine))}, max {ms(max(engine))})")
print(f"server, 1 client, paired with those: median {ms(statistics.median(server))} "
      f"(min {ms(min(server))}, max {ms(max(server))})")
print(f"server overhead (paired server - engine): median {ms(statistics.median(diffs))}, "
      f"quartiles {ms(pct(diffs, 25))} .. {ms(pct(diffs, 75))}; "
      f"min-to-min {ms(min(server) - min(engine))}")
print(f"GET /health round trip: median {statistics.median(health) * 1000:.2f} ms")
print(f"serve peak RSS: {rss_mb('VmHWM'):.0f} MB")
if json_out:
    with open(json_out, "w") as f:
        json.dump({"levels": rows, "engine_s": engine, "server_s": server, "diff_s": diffs,
                   "health_s": health, "peak_rss_mb": rss_mb("VmHWM")}, f, indent=2)
PY
