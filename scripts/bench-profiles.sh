#!/usr/bin/env bash
# The same fixture pipeline under each power profile: CPU seconds per audio second, wake-word
# detections and command intents, side by side in one run.
#
#   scripts/bench-profiles.sh            # 3 runs per profile
#   N=1 scripts/bench-profiles.sh
#
# The fixture: a wake word ("porcupine", trained once from audio-fixtures/wakeword/
# porcupine_porcupine.wav with espeak-ng's examples added, as `serena wake train` does by
# default) said by another speaker, then commands, and a minute of background noise and
# silence, about 90 s of audio made with sox into BENCH_DIR. Each run is
# `serena listen --fast --events json --output-file` with the profile chosen by a simulated
# power source (SERENA_POWER): mains → performance, battery 50% → balanced, battery 15% →
# saver (critical suspends always-on listening, so it is not in the table). What a profile
# changes in `listen`: whisper threads, Silero on each utterance or the energy VAD alone,
# partial transcripts. CPU time (user+sys, GNU time) minus a run on 1 s of silence (start-up
# and model load) per second of audio; the target is saver ≤ 60% of performance, with the
# same wake-word detections and the same intents.
#
# Settings (environment): N (default 3), MODEL (default <shared fixtures>/models/whisper/
# ggml-tiny.en.bin), BENCH_DIR (default target/bench). Needs target/release/serena, sox,
# espeak-ng, GNU time, python3.
set -euo pipefail

die() { echo "bench-profiles: error: $*" >&2; exit 1; }
log() { echo "bench-profiles: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
SHARED=${SERENA_SHARED_FIXTURES:-$ROOT/../shared/fixtures}
N=${N:-3}
MODEL=${MODEL:-$SHARED/models/whisper/ggml-tiny.en.bin}
BENCH_DIR=${BENCH_DIR:-$TARGET_DIR/bench}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
FIX=$ROOT/audio-fixtures
SERENA=$TARGET_DIR/release/serena

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer (got '$N')"
[[ -x $SERENA ]] || die "$SERENA not found: run \`cargo build --release\` in $ROOT first"
[[ -f $MODEL ]] || die "model $MODEL not found (set MODEL or SERENA_SHARED_FIXTURES)"
for tool in sox python3 espeak-ng; do
  command -v "$tool" >/dev/null || die "$tool is needed (Debian: apt-get install $tool)"
done
[[ -x /usr/bin/time ]] || die "GNU time is needed (Debian: apt-get install time)"

OUT=$BENCH_DIR/profiles-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/data"
export SERENA_DATA_DIR=$OUT/data SERENA_CONFIG=$OUT/config.toml
export SERENA_MODELS=${SERENA_MODELS:-$SHARED/models}

# The fixture recording, 16 kHz mono.
clip() { sox "$FIX/$1" -r 16000 -c 1 -b 16 "$OUT/$2.wav"; }
quiet() { sox -n -r 16000 -c 1 -b 16 "$OUT/$2.wav" trim 0 "$1"; }
clip wakeword/rhasspy3_porcupine.wav wake
clip commands/rhasspy3_set_timer.wav timer
clip commands/rhasspy3_what_time_is_it.wav time
clip commands/rhasspy3_whats_the_date_today.wav date
sox "$FIX/keywords/speech_commands_noise_1000ms.wav" -r 16000 -c 1 -b 16 "$OUT/noise.wav" repeat 29
quiet 0.3 g03; quiet 1 g1; quiet 3 g3; quiet 30 g30
sox "$OUT/g1.wav" "$OUT/wake.wav" "$OUT/g03.wav" "$OUT/timer.wav" "$OUT/g3.wav" \
  "$OUT/time.wav" "$OUT/g30.wav" "$OUT/noise.wav" "$OUT/g1.wav" "$OUT/wake.wav" "$OUT/g03.wav" \
  "$OUT/date.wav" "$OUT/g3.wav" "$OUT/mic.wav"
quiet 1 empty
AUDIO_S=$(soxi -D "$OUT/mic.wav")
log "fixture: $AUDIO_S s of audio; training the wake word"
"$SERENA" wake train porcupine "$FIX/wakeword/porcupine_porcupine.wav" >/dev/null

run() { # profile power input tag run
  local ev=$OUT/$1-$4-$5.jsonl
  SERENA_POWER=$2 /usr/bin/time -f "%U %S %M" -o "$OUT/$1-$4-$5.time" \
    "$SERENA" listen --fast --events json -m "$MODEL" --input-file "$3" \
      --output-file "$OUT/$1-$4-$5.wav" >"$ev" 2>"$OUT/$1-$4-$5.err" \
    || die "serena listen failed under $1: $(tail -3 "$OUT/$1-$4-$5.err")"
}

PROFILES=(performance:mains balanced:battery:50:discharging saver:battery:15:discharging)
for i in $(seq 1 "$N"); do
  for p in "${PROFILES[@]}"; do
    name=${p%%:*}; power=${p#*:}
    run "$name" "$power" "$OUT/mic.wav" mic "$i"
    run "$name" "$power" "$OUT/empty.wav" base "$i"
    log "run $i $name: $(cat "$OUT/$name-mic-$i.time")"
  done
done

python3 - "$OUT" "$N" "$AUDIO_S" <<'PY' | tee "$OUT/report.md"
import json, statistics, sys
out, n, audio_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def cpu(path):
    u, s, rss = open(path).read().split()[:3]
    return float(u) + float(s), int(rss) / 1024
def events(path):
    return [json.loads(l) for l in open(path) if l.strip()]
rows = {}
for name in ["performance", "balanced", "saver"]:
    per, rss, wakes, intents, partials, rejected = [], [], None, None, 0, 0
    for i in range(1, n + 1):
        c, r = cpu(f"{out}/{name}-mic-{i}.time")
        b, _ = cpu(f"{out}/{name}-base-{i}.time")
        per.append((c - b) / audio_s)
        rss.append(r)
        ev = events(f"{out}/{name}-mic-{i}.jsonl")
        wakes = [e["name"] for e in ev if e["event"] == "wake"]
        intents = [e.get("intent") for e in ev if e["event"] == "reply"]
        partials = sum(1 for e in ev if e["event"] == "transcript" and e.get("partial"))
        rejected = sum(1 for e in ev if e["event"] == "rejected")
        profile = [e["profile"] for e in ev if e["event"] == "profile"]
    rows[name] = dict(cpu=statistics.median(per), rss=statistics.median(rss), wakes=wakes,
                      intents=intents, partials=partials, rejected=rejected, profile=profile)
perf = rows["performance"]["cpu"]
print(f"# listen under each power profile: {audio_s:.1f} s fixture, median of {n} runs\n")
print("| profile | CPU s per audio s | vs performance | peak RSS MB | wake words | intents | partial transcripts | rejected by Silero |")
print("|---|---:|---:|---:|---|---|---:|---:|")
for name, r in rows.items():
    print(f"| {name} ({', '.join(r['profile'])}) | {r['cpu']:.4f} | {r['cpu'] / perf:.2f} | {r['rss']:.0f} | "
          f"{len(r['wakes'])} | {', '.join(str(i) for i in r['intents'])} | {r['partials']} | {r['rejected']} |")
same = all(r["wakes"] == rows["performance"]["wakes"] and r["intents"] == rows["performance"]["intents"]
           for r in rows.values())
ratio = rows["saver"]["cpu"] / perf
print(f"\nsaver / performance CPU: {ratio:.2f} (target ≤ 0.60): {'met' if ratio <= 0.60 else 'NOT met'}; "
      f"same wake words and intents in every profile: {'yes' if same else 'NO'}")
PY
log "report: $OUT/report.md"
