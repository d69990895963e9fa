#!/usr/bin/env bash
# The live pipeline's benchmark: command latency per stage against whisper-cli on the same
# clips, and the idle cost of listening (CPU seconds per audio second).
#
#   scripts/bench-listen.sh            # 5 runs per command clip, 10 minutes of idle audio
#   N=3 IDLE_S=120 scripts/bench-listen.sh
#
# Latency: each command clip (audio-fixtures/commands/rhasspy3_*.wav) goes through
# `serena listen --no-wake --fast --events json --output-file` (engines loaded once per run;
# the file plays "as if it were the microphone", its clock standing still while the engines
# work). From the events: transcription (whisper, window sized to the command), answer,
# synthesis of the first sentence, and end of speech → first reply audio queued. The
# pipeline's overhead is that sum minus the three engines' own times. whisper-cli (built by
# scripts/build-whisper-cli.sh from the same whisper.cpp and ggml) transcribes the same clip
# with the same model and threads; its time is its own "total time" minus "load time" (the
# model is loaded once in Serena's run too). Ratio = Serena's transcription / whisper-cli's.
#
# Idle cost: IDLE_S seconds of digital silence and of background noise (the Speech Commands
# noise clip, looped) through `serena listen --fast` on three paths: the energy VAD alone
# (--no-wake --vad energy), the energy VAD with a wake word made from text, and Silero
# checking each utterance with the wake word. CPU time (user+sys, GNU time) minus a run on
# 1 s of silence (start-up and model load), per second of audio.
#
# Settings (environment): N (default 5), THREADS (default 2), MODEL (default <shared
# fixtures>/models/whisper/ggml-tiny.en.bin), IDLE_S (default 600), BENCH_DIR (default
# target/bench). Needs target/release/serena, sox, GNU time, python3.
set -euo pipefail

die() { echo "bench-listen: error: $*" >&2; exit 1; }
log() { echo "bench-listen: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
SHARED=${SERENA_SHARED_FIXTURES:-$ROOT/../shared/fixtures}
N=${N:-5}
THREADS=${THREADS:-2}
IDLE_S=${IDLE_S:-600}
MODEL=${MODEL:-$SHARED/models/whisper/ggml-tiny.en.bin}
BENCH_DIR=${BENCH_DIR:-$TARGET_DIR/bench}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
FIX=$ROOT/audio-fixtures
SERENA=$TARGET_DIR/release/serena

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer (got '$N')"
[[ $IDLE_S =~ ^[1-9][0-9]*$ ]] || die "IDLE_S must be a positive integer (got '$IDLE_S')"
[[ -x $SERENA ]] || die "$SERENA not found: run \`cargo build --release\` in $ROOT first"
[[ -f $MODEL ]] || die "model $MODEL not found (set MODEL or SERENA_SHARED_FIXTURES)"
[[ -x /usr/bin/time ]] || die "GNU time not found at /usr/bin/time (Debian: apt-get install time)"
command -v sox >/dev/null || die "sox not found (Debian: apt-get install sox)"
command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3)"
CLI=$("$ROOT/scripts/build-whisper-cli.sh" | tail -n 1)
[[ -x $CLI ]] || die "scripts/build-whisper-cli.sh did not produce whisper-cli"

RUN=$BENCH_DIR/listen-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN/home"
serena() { # the performance profile (mains): Silero on each utterance, partial transcripts
    env -i PATH="$PATH" HOME="$RUN/home" SERENA_CONFIG="$RUN/home/none.toml" \
        SERENA_DATA_DIR="$RUN/home/data" SERENA_MODELS="${SERENA_MODELS:-$SHARED/models}" \
        SERENA_POWER=mains OMP_WAIT_POLICY="$OMP_WAIT_POLICY" RUST_LOG=warn \
        "$SERENA" "$@"
}

# --- command latency ----------------------------------------------------------------------
LAT=$RUN/latency.tsv
printf 'clip\trun\tstt_ms\tanswer_ms\tsynth_ms\tfirst_audio_ms\tcli_ms\ttext\tcli_text\n' >"$LAT"
for clip in "$FIX"/commands/rhasspy3_*.wav; do
    name=$(basename "$clip" .wav)
    mic=$RUN/$name.mic.wav
    sox -q "$clip" -r 16000 -c 1 -b 16 "$mic" pad 0.5 1.5
    for run in $(seq 1 "$N"); do
        serena listen --no-wake --fast --events json -m "$MODEL" --input-file "$mic" \
            --output-file "$RUN/reply.wav" >"$RUN/events.jsonl" 2>"$RUN/stderr.txt" ||
            die "serena listen failed on $name: $(tail -3 "$RUN/stderr.txt")"
        "$CLI" -m "$MODEL" -t "$THREADS" -f "$clip" -nt >"$RUN/cli.txt" 2>"$RUN/cli.err" ||
            die "whisper-cli failed on $name"
        python3 - "$RUN/events.jsonl" "$RUN/cli.txt" "$RUN/cli.err" "$name" "$run" >>"$LAT" <<'EOF'
import json, re, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
first = lambda kind: next((e for e in events if e["event"] == kind and not e.get("partial")), {})
t, r, s = first("transcript"), first("reply"), first("speaking_start")
err = open(sys.argv[3]).read()
total = float(re.search(r"total time =\s*([\d.]+) ms", err).group(1))
load = float(re.search(r"load time =\s*([\d.]+) ms", err).group(1))
cli_text = " ".join(open(sys.argv[2]).read().split())
print("\t".join(map(str, [sys.argv[4], sys.argv[5], t.get("latency_ms", ""), r.get("latency_ms", ""),
      s.get("synth_ms", ""), s.get("first_audio_ms", ""), round(total - load, 1),
      t.get("text", ""), cli_text])))
EOF
    done
    log "$name: $N runs"
done

# --- idle cost ----------------------------------------------------------------------------
IDLE=$RUN/idle.tsv
printf 'input\tpath\taudio_s\tcpu_s\tcpu_per_audio_s\n' >"$IDLE"
sox -q -n -r 16000 -c 1 -b 16 "$RUN/silence1.wav" trim 0 1
sox -q -n -r 16000 -c 1 -b 16 "$RUN/silence.wav" trim 0 "$IDLE_S"
noise=$FIX/keywords/speech_commands_noise_1000ms.wav
sox -q "$noise" -r 16000 -c 1 -b 16 "$RUN/noise.wav" repeat $((IDLE_S - 1)) trim 0 "$IDLE_S"
run_env=(env -i PATH="$PATH" HOME="$RUN/home" SERENA_CONFIG="$RUN/home/none.toml"
    SERENA_DATA_DIR="$RUN/home/data" SERENA_MODELS="${SERENA_MODELS:-$SHARED/models}"
    SERENA_POWER=mains OMP_WAIT_POLICY="$OMP_WAIT_POLICY" RUST_LOG=warn)
cpu() { # cpu FILE ARGS... -> user+sys seconds of one listen run
    local file=$1; shift
    /usr/bin/time -f '%U %S' -o "$RUN/time.txt" "${run_env[@]}" \
        "$SERENA" listen --fast -m "$MODEL" --input-file "$file" "$@" \
        --output-file "$RUN/idle-reply.wav" >"$RUN/idle-events.txt" 2>/dev/null ||
        die "serena listen failed on $file"
    awk '{print $1 + $2}' "$RUN/time.txt"
}
# A wake word made from text (espeak-ng), as a user without recordings would.
"${run_env[@]}" "$SERENA" wake train "hey serena" --from-text "hey serena" >/dev/null
# Paths: the energy VAD alone (the low-power path, saver), with the wake word, and with
# Silero checking what the energy VAD lets through (performance).
PATHS=("energy:--no-wake --vad energy" "energy+wake:--vad energy" "silero+wake:--vad silero")
for path in "${PATHS[@]}"; do
    label=${path%%:*}; read -r -a args <<<"${path#*:}"
    base=$(cpu "$RUN/silence1.wav" "${args[@]}")
    for input in silence noise; do
        c=$(cpu "$RUN/$input.wav" "${args[@]}")
        python3 -c "import sys; c=max(0.0, $c - $base); print(f'$input\t$label\t$IDLE_S\t{c:.3f}\t{c / $IDLE_S:.5f}')" >>"$IDLE"
    done
    log "idle: $label done"
done

# --- report -------------------------------------------------------------------------------
python3 - "$LAT" "$IDLE" <<'EOF'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda xs: st.median(float(x) for x in xs if x != "")
print("Command latency (medians, ms; engines loaded; tiny.en)")
print(f"{'clip':38} {'stt':>6} {'answer':>6} {'synth':>6} {'1st audio':>9} {'overhead':>8} {'cli':>6} {'stt/cli':>7} same words")
for clip in dict.fromkeys(r["clip"] for r in rows):
    rs = [r for r in rows if r["clip"] == clip]
    stt, ans, syn, first, cli = (med(r[k] for r in rs) for k in ("stt_ms", "answer_ms", "synth_ms", "first_audio_ms", "cli_ms"))
    norm = lambda s: "".join(c for c in s.lower() if c.isalnum() or c == " ").split()
    same = all(norm(r["text"]) == norm(r["cli_text"]) for r in rs)
    print(f"{clip:38} {stt:6.0f} {ans:6.0f} {syn:6.0f} {first:9.0f} {first - stt - ans - syn:8.0f} {cli:6.0f} {stt / cli:7.2f} {same}")
print()
print("Idle cost (CPU seconds per audio second; target 0.01 for the low-power path)")
for r in csv.DictReader(open(sys.argv[2]), delimiter="\t"):
    print(f"  {r['path']:12} {r['input']:8} {float(r['audio_s']):6.0f} s audio  {float(r['cpu_s']):7.3f} CPU s  {float(r['cpu_per_audio_s']):.5f}")
EOF
log "raw results in $RUN"
