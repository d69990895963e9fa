#!/usr/bin/env bash
# Install what building and testing Serena needs, if it is missing.
#   Debian/Ubuntu: apt packages (uses sudo when not root).
#   macOS: prints the Homebrew command.
# Used by scripts/quickstart.sh and by CI; safe to run again.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake clang libclang-dev pkg-config   # whisper.cpp and llama.cpp, bindgen
  libasound2-dev                                         # cpal (ALSA)
  espeak-ng                                              # speech synthesis
  pulseaudio pulseaudio-utils libasound2-plugins         # virtual audio devices for the tests
  xvfb xdotool tmux                                      # push-to-talk tests (X hotkey, terminal)
  sox                                                    # audio fixtures and scripts
  python3 python3-venv                                   # test clients (MCP, Wyoming, OpenAI)
)

# Reference clients the tests talk to Serena with (written by others, from PyPI), kept in a
# virtual environment under target/ that the tests find by themselves.
PY_PACKAGES=(wyoming==1.10.2 openai==3.54.0 prometheus_client==0.26.0)

if [[ "$(uname -s)" == "Darwin" ]]; then
  missing_brew=()
  for tool in cmake sox; do
    command -v "$tool" >/dev/null || missing_brew+=("$tool")
  done
  if [[ ${#missing_brew[@]} -gt 0 ]]; then
    echo "Install with Homebrew first: brew install ${missing_brew[*]}" >&2
    exit 1
  fi
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "This script knows Debian/Ubuntu (apt) and macOS (Homebrew)." >&2
  echo "Install the equivalents of: ${APT_PACKAGES[*]}" >&2
  exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  [[ "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [[ ${#missing[@]} -gt 0 ]]; then
  SUDO=""
  [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
  echo "Installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/target/test-python"
if command -v python3 >/dev/null && ! "$VENV/bin/python" -c "import wyoming, openai, prometheus_client" 2>/dev/null; then
  echo "Installing the test clients into $VENV: ${PY_PACKAGES[*]}" >&2
  mkdir -p "$ROOT/target"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "Rust is not installed: see https://rustup.rs (Serena needs Rust 1.88 or newer)." >&2
  exit 1
fi
