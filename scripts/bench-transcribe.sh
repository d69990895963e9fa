#!/usr/bin/env bash
# Side-by-side file transcription benchmark: `serena transcribe` against whisper.cpp's
# `whisper-cli`, built by scripts/build-whisper-cli.sh from the same libwhisper.a and ggml that
# Serena links (only whisper-cli's front end is whisper.cpp 1.8.5's).
#
#   scripts/bench-transcribe.sh                 # 5 runs each, 2 threads: jfk, 1 min, 10 min
#   N=3 scripts/bench-transcribe.sh             # fewer runs
#   BENCH_LONG=1 scripts/bench-transcribe.sh    # also 60 minutes (about 10x the 10-min time)
#   BENCH_CLI_FA=1 scripts/bench-transcribe.sh  # also whisper-cli without flash attention
#
# Settings (environment): N (runs per tool and file, default 5), THREADS (default 2),
# MODEL (default <shared fixtures>/models/whisper/ggml-tiny.en.bin), BENCH_DIR (default
# target/bench), BENCH_LONG, BENCH_CLI_FA, OMP_WAIT_POLICY (default passive, see below).
#
# OpenMP: the shared ggml is built with OpenMP, and libgomp's default is to spin at every
# barrier. When other processes compete for the cores (a shared 2-core machine), a run of either
# tool randomly takes ~10x longer (jfk.wav: 2.5 s or 25 s, 86% of the samples in libgomp's spin
# loop). Both tools therefore run with OMP_WAIT_POLICY=passive unless you set it yourself
# (OMP_WAIT_POLICY=active, or OMP_WAIT_POLICY= to leave libgomp's default); on a quiet machine
# the difference is small.
#
# Like for like: same model file, same threads, greedy decoding on both sides (`serena -b 1` is
# whisper.cpp's Greedy{best_of: 5}, hence `whisper-cli -bs 1 -bo 5`), timestamps on, flash
# attention on in both (their defaults: Serena's stt.flash_attn, whisper-cli's -fa);
# BENCH_CLI_FA=1 adds a whisper-cli run without it (-nfa) for reference.
# Both write a .txt file into a scratch directory (`serena -o`, `whisper-cli -otxt -of`;
# whisper-cli's console copy goes to /dev/null) so printing does not count. Runs alternate
# between the tools, the order flipping every round, so drift in machine load hits both.
# Each run is the whole process: model load, decoding, inference, writing.
#
# Measured with GNU time: wall, CPU (user+sys), peak RSS; the report gives medians, the ratios
# serena/whisper-cli and throughput (audio seconds per wall second). The long inputs are made
# with sox by concatenating audio-fixtures clips (0.5 s apart) into target/bench/ (not
# committed). Needs: target/release/serena (`cargo build --release`), sox, GNU time
# (/usr/bin/time, Debian package `time`), python3, and what build-whisper-cli.sh needs.
set -euo pipefail

die() { echo "bench-transcribe: error: $*" >&2; exit 1; }
log() { echo "bench-transcribe: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
SHARED=${SERENA_SHARED_FIXTURES:-$ROOT/../shared/fixtures}
N=${N:-5}
THREADS=${THREADS:-2}
MODEL=${MODEL:-$SHARED/models/whisper/ggml-tiny.en.bin}
BENCH_DIR=${BENCH_DIR:-$TARGET_DIR/bench}
BENCH_LONG=${BENCH_LONG:-0}
BENCH_CLI_FA=${BENCH_CLI_FA:-0}
OMP_WAIT_POLICY=${OMP_WAIT_POLICY-passive}
OMP_ENV=()
if [[ -n $OMP_WAIT_POLICY ]]; then export OMP_WAIT_POLICY; OMP_ENV=(OMP_WAIT_POLICY="$OMP_WAIT_POLICY")
else unset OMP_WAIT_POLICY; fi
FIX=$ROOT/audio-fixtures
SERENA=$TARGET_DIR/release/serena

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer (got '$N')"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer (got '$THREADS')"
[[ -x $SERENA ]] || die "$SERENA not found: run \`cargo build --release\` in $ROOT first"
[[ -f $MODEL ]] || die "model $MODEL not found (set MODEL or SERENA_SHARED_FIXTURES)"
[[ -x /usr/bin/time ]] && /usr/bin/time -f %e true 2>/dev/null ||
    die "GNU time not found at /usr/bin/time (Debian: apt-get install time)"
command -v sox >/dev/null || die "sox not found (Debian: apt-get install sox)"
command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3)"

CLI=$("$ROOT/scripts/build-whisper-cli.sh" | tail -n 1)
[[ -x $CLI ]] || die "scripts/build-whisper-cli.sh did not produce whisper-cli"

# --- inputs -------------------------------------------------------------------------------

mkdir -p "$BENCH_DIR/inputs"
IN=$BENCH_DIR/inputs
# One unit of ~78 s of varied speech (all 16 kHz mono s16), repeated and cut to length.
UNIT_CLIPS=(
    asr/jfk.wav
    asr/librispeech/1089-134686-0000.flac
    asr/librispeech/1089-134691-0000.flac
    asr/librispeech/1272-128104-0004-8k.wav
    commands/rhasspy3_set_timer.wav
    commands/rhasspy3_this_is_a_test.wav
    commands/rhasspy3_what_time_is_it.wav
    commands/rhasspy3_whats_the_date_today.wav
    commands/rhino_test_out_of_context.wav
)
make_unit() {
    local parts=() i=0 clip
    for clip in "${UNIT_CLIPS[@]}"; do
        [[ -f $FIX/$clip ]] || die "audio fixture missing: $FIX/$clip"
        sox -q "$FIX/$clip" -r 16000 -c 1 -b 16 "$IN/part$i.wav" rate -v pad 0 0.5
        parts+=("$IN/part$i.wav")
        i=$((i + 1))
    done
    sox -q "${parts[@]}" "$IN/unit.wav"
    rm -f "${parts[@]}"
}
# make_input NAME SECONDS
make_input() {
    local out=$IN/$1.wav seconds=$2 unit_s repeats
    if [[ -f $out ]] && [[ "$(soxi -s "$out")" == "$((seconds * 16000))" ]]; then return; fi
    [[ -f $IN/unit.wav ]] || make_unit
    unit_s=$(soxi -D "$IN/unit.wav")
    repeats=$(python3 -c "import math; print(max(0, math.ceil($seconds / $unit_s) - 1))")
    sox -q "$IN/unit.wav" "$out.tmp.wav" repeat "$repeats" trim 0 "$seconds"
    mv -f "$out.tmp.wav" "$out"
}
FILES=("$FIX/asr/jfk.wav")
make_input min1 60 && FILES+=("$IN/min1.wav")
make_input min10 600 && FILES+=("$IN/min10.wav")
if [[ $BENCH_LONG == 1 ]]; then make_input min60 3600 && FILES+=("$IN/min60.wav"); fi

# --- runs ---------------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RUN=$BENCH_DIR/run-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
printf 'file\taudio_s\ttool\trun\twall_s\tuser_s\tsys_s\tmaxrss_kb\tstatus\n' >"$RESULTS"
# Serena in a clean environment: no config file, scratch data dir.
SCRATCH=$RUN/serena-home
mkdir -p "$SCRATCH"

TOOLS=(serena whisper-cli)
[[ $BENCH_CLI_FA == 1 ]] && TOOLS+=(whisper-cli-fa)

# run_tool TOOL FILE OUTDIR -> runs under GNU time, writes $RUN/time.txt
run_tool() {
    local tool=$1 file=$2 out=$3 stem
    stem=$(basename "${file%.*}")
    case $tool in
        serena)
            /usr/bin/time -f '%e %U %S %M' -o "$RUN/time.txt" \
                env -i PATH="$PATH" HOME="$SCRATCH" SERENA_CONFIG="$SCRATCH/none.toml" \
                "${OMP_ENV[@]}" \
                SERENA_DATA_DIR="$SCRATCH/data" RUST_LOG=warn \
                "$SERENA" transcribe -q -m "$MODEL" -t "$THREADS" -b 1 -f txt -o "$out" "$file" \
                >/dev/null 2>"$out/stderr.txt"
            ;;
        whisper-cli | whisper-cli-fa)
            # Both tools default to flash attention; BENCH_CLI_FA=1 adds whisper-cli without it.
            local fa=-fa
            [[ $tool == whisper-cli-fa ]] && fa=-nfa
            /usr/bin/time -f '%e %U %S %M' -o "$RUN/time.txt" \
                "$CLI" -m "$MODEL" -t "$THREADS" -bs 1 -bo 5 "$fa" -l en -np \
                -otxt -of "$out/$stem" -f "$file" >/dev/null 2>"$out/stderr.txt"
            ;;
    esac
}

log "serena: $SERENA"
log "whisper-cli: $CLI"
log "model $(basename "$MODEL"), $THREADS threads, greedy, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}, $N runs per tool and file -> $RUN"
log "load average before: $LOAD_BEFORE"
for file in "${FILES[@]}"; do
    audio_s=$(soxi -D "$file")
    name=$(basename "$file")
    for ((r = 1; r <= N; r++)); do
        order=("${TOOLS[@]}")
        if ((r % 2 == 0)); then # flip the order every other round
            order=()
            for ((k = ${#TOOLS[@]} - 1; k >= 0; k--)); do order+=("${TOOLS[$k]}"); done
        fi
        for tool in "${order[@]}"; do
            out=$RUN/out/$tool/${name%.*}
            rm -rf "$out"
            mkdir -p "$out"
            status=ok
            run_tool "$tool" "$file" "$out" || status="exit$?"
            read -r wall user sys rss <"$RUN/time.txt" || true
            if [[ $status != ok ]]; then
                log "$tool failed on $name (run $r): $(tail -n 3 "$out/stderr.txt")"
                # GNU time writes "Command exited with non-zero status N" before the numbers.
                read -r wall user sys rss < <(tail -n 1 "$RUN/time.txt")
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$audio_s" "$tool" "$r" \
                "$wall" "$user" "$sys" "$rss" "$status" >>"$RESULTS"
            log "$name run $r $tool: ${wall}s wall, $(python3 -c "print(round($user+$sys,2))")s CPU, $((rss / 1024)) MB ($status)"
        done
    done
done

# --- report -------------------------------------------------------------------------------

REPORT=$RUN/report.md
python3 - "$RESULTS" "$RUN/out" "$THREADS" "$N" "$(basename "$MODEL")" "${OMP_WAIT_POLICY:-unset}" \
    "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$REPORT" <<'PY'
import csv, difflib, statistics, sys, os, re
from collections import Counter, defaultdict

results, outdir, threads, n, model, omp, load_before, load_after = sys.argv[1:9]
rows = list(csv.DictReader(open(results), delimiter="\t"))
files = list(dict.fromkeys(r["file"] for r in rows))
tools = list(dict.fromkeys(r["tool"] for r in rows))
by = defaultdict(list)
for r in rows:
    by[(r["file"], r["tool"])].append(r)

def med(file, tool, key):
    vals = [float(r[key]) for r in by[(file, tool)] if r["status"] == "ok"]
    return statistics.median(vals) if vals else float("nan")

def cpu(file, tool):
    vals = [float(r["user_s"]) + float(r["sys_s"]) for r in by[(file, tool)] if r["status"] == "ok"]
    return statistics.median(vals) if vals else float("nan")

def words(tool, file):
    path = os.path.join(outdir, tool, os.path.splitext(file)[0], os.path.splitext(file)[0] + ".txt")
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return None
    return [w for w in (re.sub(r"[^\w']", "", w.lower()) for w in text.split()) if w]

print(f"# serena vs whisper-cli: {model}, {threads} threads, greedy, median of {n} runs\n")
print("whisper-cli = whisper.cpp 1.8.5 front end on Serena's own libwhisper.a (1.8.3) and ggml 0.26.0, "
      "`-bs 1 -bo 5 -fa`; serena = `transcribe -b 1`. Whole process per run (load + decode + "
      "inference + write). Ratios are serena / whisper-cli (below 1: Serena uses less); "
      "throughput ratio = whisper-cli wall / serena wall (above 1: Serena is faster). "
      f"OMP_WAIT_POLICY={omp}; load average before {load_before}, after {load_after}.\n")
failed = [r for r in rows if r["status"] != "ok"]
if failed:
    print(f"**{len(failed)} failed runs** (excluded): " + ", ".join(f"{r['tool']} {r['file']} #{r['run']} {r['status']}" for r in failed) + "\n")
for f in files:
    audio_s = float(by[(f, tools[0])][0]["audio_s"])
    print(f"## {f} ({audio_s:.1f} s of audio)\n")
    print("| tool | wall s | CPU s (user+sys) | peak RSS MB | audio s per wall s |")
    print("|---|---:|---:|---:|---:|")
    for t in tools:
        w = med(f, t, "wall_s")
        print(f"| {t} | {w:.2f} | {cpu(f, t):.2f} | {med(f, t, 'maxrss_kb') / 1024:.0f} | {audio_s / w:.1f} |")
    for t in tools[1:]:
        sw, cw = med(f, "serena", "wall_s"), med(f, t, "wall_s")
        print(f"| **serena / {t}** | **{sw / cw:.2f}** | **{cpu(f, 'serena') / cpu(f, t):.2f}** | "
              f"**{med(f, 'serena', 'maxrss_kb') / med(f, t, 'maxrss_kb'):.2f}** | "
              f"throughput ratio **{cw / sw:.2f}** |")
    s, c = words("serena", f), words("whisper-cli", f)
    if s is not None and c is not None:
        if s == c:
            note = "identical"
        else:
            sm = difflib.SequenceMatcher(a=c, b=s, autojunk=False)
            in_order = sum(b.size for b in sm.get_matching_blocks())
            common = sum((Counter(s) & Counter(c)).values())
            note = (f"not identical: {in_order} words match in order, {common} as a multiset "
                    f"(long inputs differ by design: Serena decodes 120 s windows cut at a pause, "
                    f"whisper-cli one stream conditioned on its previous text)")
        print(f"\nText (last run, normalised words): serena {len(s)} words, whisper-cli {len(c)}; {note}.")
    print()

long = [f for f in files if f != "jfk.wav"]
if len(long) >= 2:
    base = long[0]
    print("## Memory flatness (peak RSS, median)\n")
    print("| tool | " + " | ".join(long) + " | " + " | ".join(f"{x} / {base}" for x in long[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(long) - 1))
    for t in tools:
        rss = [med(x, t, "maxrss_kb") / 1024 for x in long]
        print(f"| {t} | " + " | ".join(f"{v:.0f} MB" for v in rss) + " | "
              + " | ".join(f"{v / rss[0]:.2f}" for v in rss[1:]) + " |")
    print()
PY
cat "$REPORT"
log "raw results: $RESULTS; report: $REPORT"
