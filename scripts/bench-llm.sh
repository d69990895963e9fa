#!/usr/bin/env bash
# Side-by-side LLM benchmark: Serena's local LLM path (examples/llm_bench.rs: LlmWorker, greedy)
# against llama.cpp's own `llama-bench` and `llama-simple`, built by scripts/build-llama-tools.sh
# from the same libllama.a / ggml that Serena links, on the same model, threads and context.
#
#   scripts/bench-llm.sh                               # 2 threads, -p 64, -n 128, 5 reps, 5 rounds
#   scripts/bench-llm.sh -t 2 -p 64 -n 128 -r 5        # the same, spelled out
#   scripts/bench-llm.sh -m path/to/model.gguf -c 4096 --rounds 5
#
# Options (or environment): -m/--model FILE (MODEL; default <shared fixtures>/models/llm/
# llama-2-tiny-random.gguf, the fixtures being $SERENA_SHARED_FIXTURES or ../shared/fixtures
# next to the repository), -t/--threads N (THREADS, 2), -p/--prompt-tokens N (PROMPT_TOKENS,
# 64), -n/--gen-tokens N (GEN_TOKENS, 128), -r/--reps N (REPS, 5), --rounds N (ROUNDS, 5),
# -c/--context N (CONTEXT, 4096 = Serena's default llm.context), --no-build (BENCH_NO_BUILD=1:
# use the binaries already built). BENCH_DIR (default target/bench), OMP_WAIT_POLICY (default
# passive, as `serena` sets it; OMP_WAIT_POLICY= leaves libgomp's default, =active spins).
#
# What runs, alternately (the order flips every round, so drift in machine load hits all):
#   serena      llm_bench: the model loaded once by LlmWorker::spawn, 1 warm-up request
#               (reported as "cold"), then REPS requests through LlmWorker::start, temperature 0,
#               max_tokens GEN_TOKENS, one user message whose ChatML/template-formatted prompt
#               is PROMPT_TOKENS tokens (or the first whole-word count above it).
#   serena-direct  llm_bench --direct: LlmEngine::generate called on the main thread with a
#               no-op callback (no worker thread, channel, splitter or consumer wake-ups).
#   breakdown   llm_bench --breakdown: the same steps as LlmEngine::generate with llama-cpp-2
#               directly, each timed (template+tokenize, new_context, prompt decode, and per
#               token: sample, detokenize, decode). Explains the differences.
#   llama-bench -t THREADS -p P -n GEN_TOKENS -d 0,P -r REPS -o json, P being Serena's actual
#               prompt token count: pp P at depth 0 and tg at depth P (generation after a
#               P-token prompt, as Serena generates). Random tokens, no sampling, warm-up run,
#               one context per test, n_ctx = P + n + depth, n_batch 2048, n_ubatch 512.
#   llama-simple REPS processes per round, with Serena's exact templated prompt (same tokens),
#               -n GEN_TOKENS, greedy sampler, threads and n_ctx set to Serena's (see
#               build-llama-tools.sh for the small patch that makes that possible and prints
#               its context-creation time, time to first token and end of generation).
#
# The headline: generation t/s = Serena's tokens / (Generation.elapsed - first_token) (every
# emitted token is decoded, so that span holds `tokens` llama_decode calls plus sampling,
# detokenizing and streaming) against llama-bench's tg at depth P (decode only, no sampling);
# target ratio >= 0.95. The other rows split the difference (examples/llm_bench.rs documents
# every figure; the JSON carries a definition per row). Flash attention is llama.cpp's default
# (auto) everywhere, the KV cache f16 everywhere.
# Ratios are serena / llama.cpp: above 1 is better for tokens/s, below 1 better for ms. Each row
# gives medians over all samples and the best sample of each side (max t/s, min ms): on a shared
# machine the samples are bimodal (a run has its cores or it does not), and the report warns
# when the load average before the run says the cores were busy.
# Output: a table and a JSON summary on stdout; raw outputs under BENCH_DIR/llm-<time>/.
# Needs: cargo (builds examples/llm_bench in release, niced), python3, and what
# build-llama-tools.sh needs (g++, pip for the llama-cpp-python sdist).
set -euo pipefail

die() { echo "bench-llm: error: $*" >&2; exit 1; }
log() { echo "bench-llm: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
SHARED=${SERENA_SHARED_FIXTURES:-$ROOT/../shared/fixtures}
MODEL=${MODEL:-$SHARED/models/llm/llama-2-tiny-random.gguf}
THREADS=${THREADS:-2}
PROMPT_TOKENS=${PROMPT_TOKENS:-64}
GEN_TOKENS=${GEN_TOKENS:-128}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-5}
CONTEXT=${CONTEXT:-4096}
BENCH_NO_BUILD=${BENCH_NO_BUILD:-0}
BENCH_DIR=${BENCH_DIR:-$TARGET_DIR/bench}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
    case $1 in
        -m | --model) MODEL=${2:?$1 needs a value}; shift 2 ;;
        -t | --threads) THREADS=${2:?$1 needs a value}; shift 2 ;;
        -p | --prompt-tokens) PROMPT_TOKENS=${2:?$1 needs a value}; shift 2 ;;
        -n | --gen-tokens) GEN_TOKENS=${2:?$1 needs a value}; shift 2 ;;
        -r | --reps) REPS=${2:?$1 needs a value}; shift 2 ;;
        --rounds) ROUNDS=${2:?$1 needs a value}; shift 2 ;;
        -c | --context) CONTEXT=${2:?$1 needs a value}; shift 2 ;;
        --no-build) BENCH_NO_BUILD=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
done
for v in THREADS PROMPT_TOKENS GEN_TOKENS REPS ROUNDS CONTEXT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
((PROMPT_TOKENS + GEN_TOKENS + 8 < CONTEXT)) ||
    die "the context ($CONTEXT) must hold the prompt ($PROMPT_TOKENS) and the reply ($GEN_TOKENS)"

OMP_WAIT_POLICY=${OMP_WAIT_POLICY-passive}
if [[ -n $OMP_WAIT_POLICY ]]; then export OMP_WAIT_POLICY; else unset OMP_WAIT_POLICY; fi

[[ -f $MODEL ]] || die "model $MODEL not found: set MODEL=FILE.gguf (or -m), or SERENA_SHARED_FIXTURES to the shared fixtures directory (it holds models/llm/llama-2-tiny-random.gguf)"
command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3)"
command -v cargo >/dev/null || [[ $BENCH_NO_BUILD == 1 ]] ||
    die "cargo not found: install Rust (https://rustup.rs) or build elsewhere and pass --no-build"

STAMP_NOW=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$BENCH_DIR/llm-$STAMP_NOW
mkdir -p "$RUN"

# --- binaries -----------------------------------------------------------------------------

BENCH=$TARGET_DIR/release/examples/llm_bench
SYS_OUT=
if [[ $BENCH_NO_BUILD != 1 ]]; then
    log "building examples/llm_bench (cargo build --release --example llm_bench, niced; minutes when Serena changed)"
    (cd "$ROOT" && nice -n 10 cargo build --release --example llm_bench \
        --message-format=json-render-diagnostics >"$RUN/cargo.jsonl" 2>"$RUN/cargo.log") || {
        tail -n 30 "$RUN/cargo.log" >&2
        die "cargo build --release --example llm_bench failed (log: $RUN/cargo.log)"
    }
    # The exact executable and llama-cpp-sys-2 build directory of this build (several may exist
    # under target/release/build, one per feature set).
    read -r BENCH SYS_OUT < <(python3 - "$RUN/cargo.jsonl" <<'PY'
import json, sys
exe, out = "", ""
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "llm_bench" and m.get("executable"):
        exe = m["executable"]
    if m.get("reason") == "build-script-executed" and "llama-cpp-sys-2" in m.get("package_id", ""):
        out = m.get("out_dir", "")
print(exe or "-", out or "-")
PY
    )
    [[ $BENCH != - ]] || die "cargo did not report the llm_bench executable (see $RUN/cargo.jsonl)"
    [[ $SYS_OUT != - ]] || SYS_OUT=
fi
[[ -x $BENCH ]] || die "$BENCH not found: run \`cargo build --release --example llm_bench\` in $ROOT (or drop --no-build)"
TOOLS=$(LLAMA_SYS_OUT=$SYS_OUT "$ROOT/scripts/build-llama-tools.sh" | tail -n 1) ||
    die "scripts/build-llama-tools.sh failed"
[[ -x $TOOLS/llama-bench && -x $TOOLS/llama-simple ]] ||
    die "scripts/build-llama-tools.sh did not produce llama-bench and llama-simple in $TOOLS"
cp "$TOOLS/BUILD-INFO.txt" "$RUN/llama-tools-BUILD-INFO.txt"

# --- the prompt -----------------------------------------------------------------------------

COMMON=(-m "$MODEL" -t "$THREADS" -c "$CONTEXT" -p "$PROMPT_TOKENS" -n "$GEN_TOKENS")
"$BENCH" "${COMMON[@]}" --print-prompt >"$RUN/prompt.txt" 2>"$RUN/prompt.log" ||
    die "llm_bench could not use the model: $(sed "s/^llm_bench: error: //" "$RUN/prompt.log" | tail -n 3)"
P=$(sed -n 's/^llm_bench: prompt_tokens \([0-9]*\)$/\1/p' "$RUN/prompt.log")
[[ -n $P ]] || die "llm_bench did not report the prompt's token count ($RUN/prompt.log)"
# (The x keeps the prompt's final newline, which $(...) would strip.)
PROMPT_TEXT=$(cat "$RUN/prompt.txt"; printf x)
PROMPT_TEXT=${PROMPT_TEXT%x}

# --- runs -----------------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "model $(basename "$MODEL"), $THREADS threads, context $CONTEXT, prompt $P tokens, $GEN_TOKENS generated, $REPS reps x $ROUNDS rounds, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} -> $RUN"
log "load average before: $LOAD_BEFORE"

run_side() {
    local side=$1 r=$2 k
    case $side in
        serena)
            "$BENCH" "${COMMON[@]}" -r "$REPS" --warmup 1 >"$RUN/serena-$r.json" 2>"$RUN/serena-$r.log" ||
                die "llm_bench failed (round $r): $(tail -n 3 "$RUN/serena-$r.log")"
            ;;
        serena-direct)
            "$BENCH" "${COMMON[@]}" -r "$REPS" --warmup 1 --direct >"$RUN/direct-$r.json" 2>"$RUN/direct-$r.log" ||
                die "llm_bench --direct failed (round $r): $(tail -n 3 "$RUN/direct-$r.log")"
            ;;
        breakdown)
            "$BENCH" "${COMMON[@]}" -r "$REPS" --warmup 1 --breakdown >"$RUN/breakdown-$r.json" 2>"$RUN/breakdown-$r.log" ||
                die "llm_bench --breakdown failed (round $r): $(tail -n 3 "$RUN/breakdown-$r.log")"
            ;;
        llama-bench)
            "$TOOLS/llama-bench" -m "$MODEL" -t "$THREADS" -p "$P" -n "$GEN_TOKENS" -d "0,$P" -r "$REPS" -o json \
                >"$RUN/llama-bench-$r.json" 2>"$RUN/llama-bench-$r.log" ||
                die "llama-bench failed (round $r): $(tail -n 3 "$RUN/llama-bench-$r.log")"
            ;;
        llama-simple)
            for ((k = 1; k <= REPS; k++)); do
                LLAMA_SIMPLE_THREADS=$THREADS LLAMA_SIMPLE_N_CTX=$CONTEXT \
                    "$TOOLS/llama-simple" -m "$MODEL" -n "$GEN_TOKENS" "$PROMPT_TEXT" \
                    >"$RUN/simple-$r-$k.out" 2>"$RUN/simple-$r-$k.err" ||
                    die "llama-simple failed (round $r): $(tail -n 3 "$RUN/simple-$r-$k.err")"
            done
            ;;
    esac
}

SIDES=(serena llama-bench serena-direct llama-simple breakdown)
for ((r = 1; r <= ROUNDS; r++)); do
    order=("${SIDES[@]}")
    if ((r % 2 == 0)); then
        order=()
        for ((i = ${#SIDES[@]} - 1; i >= 0; i--)); do order+=("${SIDES[$i]}"); done
    fi
    for side in "${order[@]}"; do
        run_side "$side" "$r"
    done
    log "round $r/$ROUNDS done (${order[*]}); load $(cut -d' ' -f1 /proc/loadavg)"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ---------------------------------------------------------------------------------

python3 - "$RUN" "$ROUNDS" "$REPS" "$P" "$GEN_TOKENS" "$THREADS" "$CONTEXT" "$MODEL" \
    "${OMP_WAIT_POLICY:-unset}" "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc 2>/dev/null || echo 0)" <<'PY'
import glob, json, math, os, re, statistics, sys

run, rounds, reps, P, T, threads, context, model, omp, load_before, load_after, ncpu = sys.argv[1:13]
rounds, reps, P, T = int(rounds), int(reps), int(P), int(T)

def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return statistics.median(xs) if xs else float("nan")

def load(path):
    with open(path) as f:
        return json.loads(f.read().strip().splitlines()[-1])

serena = [load(p) for p in sorted(glob.glob(f"{run}/serena-*.json"))]
direct = [load(p) for p in sorted(glob.glob(f"{run}/direct-*.json"))]
brk = [load(p) for p in sorted(glob.glob(f"{run}/breakdown-*.json"))]
s_runs = [x for s in serena for x in s["runs"]]
s_cold = [s["cold"] for s in serena if s.get("cold")]
d_runs = [x for d in direct for x in d["runs"]]
b_runs = [x for b in brk for x in b["runs"]]

# llama-bench: samples pooled over rounds, by (n_prompt, n_gen, n_depth).
lb = {}
for p in sorted(glob.glob(f"{run}/llama-bench-*.json")):
    for t in json.load(open(p)):
        lb.setdefault((t["n_prompt"], t["n_gen"], t["n_depth"]), []).extend(t["samples_ts"])
lb_pp = lb.get((P, 0, 0), [])
lb_tg = lb.get((0, T, P), [])
lb_tg0 = lb.get((0, T, 0), [])

# llama-simple: one process per run.
num = r"([0-9.]+)"
sm = []
for p in sorted(glob.glob(f"{run}/simple-*.err")):
    err = open(p, errors="replace").read()
    out = open(p[:-4] + ".out", errors="replace").read()
    g = lambda pat: (lambda m: [float(x) for x in m.groups()] if m else None)(re.search(pat, err))
    ctx = g(r"serena-bench: context_ms " + num)
    ft = g(r"serena-bench: first_token_ms " + num)
    end = g(r"serena-bench: end_ms " + num)
    samp = g(r"samplers time =\s*" + num + r" ms /\s*" + num + " runs")
    ev = g(r"\beval time =\s*" + num + r" ms /\s*" + num + " runs")
    dec = g(r"decoded\s+" + num + " tokens")
    r = {"out": out}
    if ctx: r["context_ms"] = ctx[0]
    if ft: r["first_token_ms"] = ft[0]
    if dec: r["tokens"] = dec[0]
    # After the first piece llama-simple runs (tokens - 1) x (decode, sample, print).
    if ft and end and dec and end[0] > ft[0]:
        r["tg_tps"] = (dec[0] - 1) / (end[0] - ft[0]) * 1e3
    if ev and ev[1] > 0:
        r["tg_decode_tps"] = ev[1] / ev[0] * 1e3
    if samp and samp[1]:
        r["chain_apply_us_per_token"] = samp[0] / samp[1] * 1e3
    sm.append(r)

# Each metric keeps every sample; the table gives medians and, because a shared machine's
# load makes runs bimodal, the best sample of each side too (max t/s, min ms).
vals = lambda rows, k: [x[k] for x in rows if isinstance(x.get(k), (int, float)) and math.isfinite(x[k])]
S = lambda k, rows=s_runs: vals(rows, k)
D = lambda k: vals(d_runs, k)
B = lambda k: vals(b_runs, k)
L = lambda k: vals(sm, k)
NA = []

rows = [
    # metric, unit, serena, llama, llama source, definition
    ("generation", "t/s", S("tg_tps"), lb_tg, f"llama-bench tg{T}@d{P}",
     "Serena (LlmWorker): tokens / (Generation.elapsed - first_token); llama-bench: decode only"),
    ("generation, generate() without worker", "t/s", D("tg_tps"), lb_tg, f"llama-bench tg{T}@d{P}",
     "LlmEngine::generate with a no-op callback, same formula"),
    ("generation, bare loop (breakdown)", "t/s", B("tg_loop_tps"), lb_tg, f"llama-bench tg{T}@d{P}",
     "generate()'s loop replayed: sample + detokenize + decode per token"),
    ("generation, decode only (breakdown)", "t/s", B("tg_decode_only_tps"), lb_tg, f"llama-bench tg{T}@d{P}",
     "single-token llama_decode calls only"),
    ("generation vs llama-simple", "t/s", S("tg_tps"), L("tg_tps"), "llama-simple",
     "both: decode steps per second after the first piece, incl. sampling and output"),
    ("prompt eval", "t/s", S("pp_tps"), lb_pp, f"llama-bench pp{P}",
     "Serena: prompt_tokens / Generation.prompt_time (template + tokenize + new context + decode)"),
    ("prompt decode only (breakdown)", "t/s", B("pp_decode_tps"), lb_pp, f"llama-bench pp{P}",
     "llama_decode of the prompt alone, on the fresh context generate() creates"),
    ("prompt decode, reused context (breakdown)", "t/s", B("pp_decode_reused_tps"), lb_pp, f"llama-bench pp{P}",
     "the same prompt decoded again on that context after clearing its KV cache"),
    ("time to first token, 1st request", "ms", S("first_token_ms", s_cold), L("first_token_ms"), "llama-simple",
     "from before tokenization (model loaded) to the first piece; first request of the process"),
    ("time to first token, warm", "ms", S("first_token_ms"), NA, "-", "Generation.first_token"),
    ("time to first token, caller", "ms", S("caller_first_token_ms"), NA, "-",
     "LlmWorker::start to the first StreamEvent::Token (adds fit(), queue, channel)"),
    ("time to first sentence, caller", "ms", S("caller_first_sentence_ms"), NA, "-",
     "LlmWorker::start to the first StreamEvent::Sentence"),
    ("new context (breakdown)", "ms", B("new_context_ms"), L("context_ms"), "llama-simple",
     f"llama_init_from_model, n_ctx {context}: Serena on every request (warm), llama-simple once (cold)"),
    ("greedy sample per token (breakdown)", "us", B("sample_us_per_token"), NA, "-",
     "llama_sampler_sample(LlamaSampler::greedy()) as Serena calls it"),
    ("  same, greedy inside a chain", "us", B("chain_sample_us_per_token"), NA, "-",
     "llama_sampler_sample on chain_simple([greedy()]), as llama-simple does"),
    ("  same, plain argmax of logits", "us", B("argmax_us_per_token"), NA, "-", "argmax over get_logits_ith"),
    ("tokens generated", "", S("tokens"), L("tokens"), "llama-simple", "median per request"),
]

def fmt(x, unit):
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    if unit == "t/s":
        return f"{x:,.0f}"
    if unit in ("ms", "us"):
        return f"{x:.3f}" if x < 10 else f"{x:.1f}"
    return f"{x:g}"

def best(xs, unit):
    xs = [x for x in xs if math.isfinite(x)]
    if not xs:
        return float("nan")
    return max(xs) if unit == "t/s" else min(xs)

def ratio(a, b):
    ok = all(isinstance(x, (int, float)) and math.isfinite(x) and x != 0 for x in (a, b))
    return a / b if ok else float("nan")

clean = lambda x: round(x, 4) if isinstance(x, (int, float)) and math.isfinite(x) else None
rf = lambda x: f"{x:.2f}" if math.isfinite(x) else "-"
print(f"\n# Serena vs llama.cpp: {os.path.basename(model)}, {threads} threads, context {context}, "
      f"prompt {P} tokens, {T} generated, {reps} reps x {rounds} rounds")
print(f"OMP_WAIT_POLICY={omp}; load average before {load_before}, after {load_after}; raw data {run}")
print("ratio = serena / llama.cpp (t/s: higher is better; ms, us: lower is better); "
      "best = max t/s or min time over all samples")
# Other processes on the cores make the samples bimodal (a run either has its cores or not).
busy = float(load_before.split()[0]) + int(threads) > int(ncpu) + 0.5 if int(ncpu) > 0 else False
if busy:
    print(f"WARNING: the machine was busy (load average {load_before.split()[0]} just before the run, "
          f"{ncpu} cores, {threads} threads): samples are noisy and can be bimodal; "
          "rerun on a quiet machine before trusting small differences")
print()
w = max(len(r[0]) + len(r[1]) + 3 for r in rows)
print(f"{'metric':<{w}} {'serena':>9} {'llama.cpp':>9} {'ratio':>6} | {'best s':>9} {'best l':>9} {'ratio':>6}  llama.cpp side")
print("-" * (w + 82))
summary = []
for name, unit, sv, lv, src, what in rows:
    s_med, l_med = med(sv), med(lv)
    s_best, l_best = best(sv, unit), best(lv, unit)
    r_med, r_best = ratio(s_med, l_med), ratio(s_best, l_best)
    label = f"{name} ({unit})" if unit else name
    print(f"{label:<{w}} {fmt(s_med, unit):>9} {fmt(l_med, unit):>9} {rf(r_med):>6} | "
          f"{fmt(s_best, unit):>9} {fmt(l_best, unit):>9} {rf(r_best):>6}  {src}")
    summary.append({"metric": name, "unit": unit, "serena": clean(s_med), "llama_cpp": clean(l_med),
                    "ratio": clean(r_med), "serena_best": clean(s_best), "llama_cpp_best": clean(l_best),
                    "ratio_best": clean(r_best), "samples": [len(sv), len(lv)],
                    "llama_cpp_source": src, "definition": what})

tg_ratio = summary[0]["ratio"]
# Greedy on the same tokens: Serena's reply should appear verbatim in llama-simple's output.
s_text = (serena[-1].get("text") or "").strip() if serena else ""
same = bool(s_text) and bool(sm) and s_text[:200] in sm[-1]["out"]
tg_best = summary[0]["ratio_best"]
print(f"\ngeneration ratio serena/llama-bench: median {tg_ratio}, best {tg_best} (target >= 0.95: "
      f"{'met' if tg_ratio is not None and tg_ratio >= 0.95 else 'NOT met'}); "
      f"serena's greedy reply {'matches' if same else 'does NOT match'} llama-simple's output")
print(f"llama-bench tg{T} at depth 0: {fmt(med(lb_tg0), 't/s')} t/s median, "
      f"{fmt(best(lb_tg0, 't/s'), 't/s')} best (for reference)\n")
doc = {
    "model": model, "threads": int(threads), "context": int(context), "prompt_tokens": P,
    "gen_tokens": T, "reps": reps, "rounds": rounds, "omp_wait_policy": omp,
    "load_before": load_before, "load_after": load_after, "cpus": int(ncpu), "busy_machine": busy,
    "generation_ratio": tg_ratio, "generation_ratio_best": summary[0]["ratio_best"],
    "generation_ratio_target": 0.95,
    "generation_ratio_ok": tg_ratio is not None and tg_ratio >= 0.95,
    "same_greedy_text": same, "metrics": summary, "raw": run,
}
json.dump(doc, open(f"{run}/summary.json", "w"), indent=1)
print(json.dumps(doc))
PY
log "raw results and summary.json: $RUN"
