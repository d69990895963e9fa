#!/usr/bin/env bash
# Serena's quick start: install what is missing, build, get a speech model, and show Serena
# transcribing real speech and answering a spoken command out loud.
#
#   ./scripts/quickstart.sh
#
# The model download needs the internet. Without it, the script says so and uses a local
# model directory instead: $SERENA_MODELS, or ../shared/fixtures/models next to the repo.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

features=()
[[ "$(uname -s)" == "Darwin" ]] && features=(--features metal)
echo "== Building serena (release; the first build compiles whisper.cpp and llama.cpp, ~15 min on 2 cores)"
cargo build --release --locked "${features[@]}"
serena=target/release/serena

echo "== Getting the speech model (tiny.en)"
if ! "$serena" models path tiny.en >/dev/null 2>&1; then
  if ! "$serena" models pull tiny.en; then
    fallback="${SERENA_MODELS:-../shared/fixtures/models}"
    if [[ -d "$fallback" ]]; then
      echo "== No download possible: using the local model directory $fallback (SERENA_MODELS)"
      export SERENA_MODELS="$fallback"
    else
      echo "No model: download it elsewhere and run: $serena models add ggml-tiny.en.bin" >&2
      exit 4
    fi
  fi
fi
"$serena" models path tiny.en

echo
echo "== Transcribing audio-fixtures/asr/jfk.wav"
"$serena" transcribe audio-fixtures/asr/jfk.wav

echo
echo "== Answering a spoken command: audio-fixtures/commands/rhasspy3_what_time_is_it.wav"
# With no usable speaker, --speak writes the reply to a WAV file and says where.
"$serena" ask --speak --audio audio-fixtures/commands/rhasspy3_what_time_is_it.wav

echo
echo "Serena works. Next: '$serena status' checks everything; '$serena --help' lists what it can do."
