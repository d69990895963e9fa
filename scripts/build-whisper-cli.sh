#!/usr/bin/env bash
# Build whisper.cpp's `whisper-cli` against exactly the whisper.cpp library and the ggml that
# Serena links, for side-by-side comparisons (tests/it/parity.rs, scripts/bench-transcribe.sh).
#
#   scripts/build-whisper-cli.sh        # prints the path of the binary on stdout
#
# What goes into the binary:
#   * the library: `libwhisper.a` that `cargo build --release` already built from
#     vendor/whisper-rs-sys/whisper.cpp (whisper.cpp 1.8.3), and its header whisper.h;
#   * ggml: llama-cpp-sys-2's ggml 0.26.0 (headers, libggml.a, libggml-cpu.a,
#     libggml-base.a) from the same cargo build, i.e. the one ggml inside `serena`
#     (ARCHITECTURE.md, "One ggml");
#   * the command-line front end only: examples/cli/cli.cpp, common.cpp, common-whisper.cpp,
#     grammar-parser.cpp (+ miniaudio.h, stb_vorbis.c) from the PyPI sdist
#     pywhispercpp==1.5.1, which carries whisper.cpp **1.8.5**'s examples. The crates ship no
#     example sources, and this workplace keeps no code fetched from repository snapshots, so
#     the front end is 1.8.5's while the library is exactly what Serena links. The 1.8.5
#     front end compiles unchanged against the 1.8.3 whisper.h (the headers differ only by two
#     streaming-VAD functions that cli.cpp does not call), so no shim is needed.
#
# Flags follow a CMake Release build of the examples: g++ -std=c++17 -O3 -DNDEBUG -pthread,
# no SDL, no curl, no ffmpeg (miniaudio reads WAV/MP3/FLAC/Ogg); linked with -lgomp because
# llama-cpp-sys-2 builds ggml with OpenMP.
#
# Output: target/whisper-cli/whisper-cli (+ BUILD-INFO.txt next to it). Idempotent: nothing is
# rebuilt while the libraries, the sdist and this script are unchanged.
#
# Needs: a finished `cargo build --release`, g++, pip (to download the sdist; nothing is
# installed), tar, sha256sum.
set -euo pipefail

die() { echo "build-whisper-cli: error: $*" >&2; exit 1; }
log() { echo "build-whisper-cli: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BUILD=$TARGET_DIR/release/build
OUT_DIR=$TARGET_DIR/whisper-cli
BIN=$OUT_DIR/whisper-cli

SDIST_NAME=pywhispercpp
SDIST_VERSION=1.5.1
SDIST_FILE=$SDIST_NAME-$SDIST_VERSION.tar.gz
SDIST_SHA256=5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5
FRONTEND_WHISPER_VERSION=1.8.5

CXX=${CXX:-g++}
CXXFLAGS_CLI=(-std=c++17 -O3 -DNDEBUG -fPIC -pthread)
FRONTEND_SOURCES=(cli/cli.cpp common.cpp common-whisper.cpp grammar-parser.cpp)

NEED_CARGO="run \`cargo build --release\` in $ROOT first"

# --- the library and ggml from cargo's build ----------------------------------------------

# Newest file among the arguments (by modification time), or nothing.
newest() { ls -1t "$@" 2>/dev/null | head -n 1; }

[[ -d $BUILD ]] || die "no release build under $BUILD: $NEED_CARGO"

WHISPER_LIB=$(newest "$BUILD"/whisper-rs-sys-*/out/lib/libwhisper.a "$BUILD"/whisper-rs-sys-*/out/build/src/libwhisper.a) || true
[[ -n $WHISPER_LIB && -f $WHISPER_LIB ]] ||
    die "libwhisper.a not found under $BUILD/whisper-rs-sys-*/out/{lib,build/src}: $NEED_CARGO"
WHISPER_OUT=${WHISPER_LIB%/lib/libwhisper.a}
WHISPER_OUT=${WHISPER_OUT%/build/src/libwhisper.a}
# The header that libwhisper.a was compiled from (the crate copies vendor/.../include there).
WHISPER_INC=$WHISPER_OUT/whisper.cpp/include
[[ -f $WHISPER_INC/whisper.h ]] || WHISPER_INC=$ROOT/vendor/whisper-rs-sys/whisper.cpp/include
[[ -f $WHISPER_INC/whisper.h ]] || die "whisper.h not found next to $WHISPER_LIB nor in vendor/whisper-rs-sys"

# ggml: the one this libwhisper.a was configured against (whisper-rs-sys's CMake cache records
# llama-cpp-sys-2's `ggml_DIR`, <prefix>/lib/cmake/ggml), else the newest llama-cpp-sys-2 build.
GGML_LIBDIR=
GGML_DIR=$(sed -n 's/^ggml_DIR:[A-Z]*=//p' "$WHISPER_OUT/build/CMakeCache.txt" 2>/dev/null | head -n 1)
if [[ -n $GGML_DIR && -f $GGML_DIR/../../libggml-base.a ]]; then
    GGML_LIBDIR=$(cd "$GGML_DIR/../.." && pwd)
else
    GGML_BASE=$(newest "$BUILD"/llama-cpp-sys-2-*/out/lib/libggml-base.a "$BUILD"/llama-cpp-sys-2-*/out/lib64/libggml-base.a) || true
    [[ -n $GGML_BASE && -f $GGML_BASE ]] ||
        die "llama-cpp-sys-2's libggml-base.a not found under $BUILD/llama-cpp-sys-2-*/out/{lib,lib64}: $NEED_CARGO"
    GGML_LIBDIR=$(dirname "$GGML_BASE")
fi
GGML_INC=$(dirname "$GGML_LIBDIR")/include
[[ -f $GGML_INC/ggml.h ]] || die "ggml.h not found in $GGML_INC: $NEED_CARGO"
GGML_LIBS=()
for lib in ggml ggml-cpu ggml-base; do
    [[ -f $GGML_LIBDIR/lib$lib.a ]] || die "$GGML_LIBDIR/lib$lib.a missing: $NEED_CARGO"
    GGML_LIBS+=("$GGML_LIBDIR/lib$lib.a")
done
# CPU only: a GPU build of Serena (features cuda/vulkan/metal) adds backend archives that
# also need their system libraries; compare on CPU builds.
GGML_VERSION=$(sed -n 's/^set(PACKAGE_VERSION "\([0-9.]*\)").*/\1/p' "$GGML_LIBDIR"/cmake/ggml/ggml-config-version.cmake 2>/dev/null | head -n 1)

command -v "$CXX" >/dev/null || die "$CXX not found: install a C++ compiler (Debian: apt-get install g++)"

# --- up to date? --------------------------------------------------------------------------

# Objects depend on the sources, the flags and the headers' contents; the binary also on the
# archives. A new cargo build (another build directory, same sources) only relinks.
STAMP=$OUT_DIR/.stamp
OBJ_STAMP=$OUT_DIR/obj/.stamp
obj_stamp_text() {
    echo "script $(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
    echo "sdist $SDIST_FILE $SDIST_SHA256"
    echo "cxx $("$CXX" --version | head -n 1) ${CXXFLAGS_CLI[*]}"
    cat "$WHISPER_INC"/*.h "$GGML_INC"/*.h | sha256sum | cut -d' ' -f1
}
stamp_text() {
    obj_stamp_text
    for f in "$WHISPER_LIB" "${GGML_LIBS[@]}"; do
        echo "input $f $(stat -c '%s %Y' "$f")"
    done
}
if [[ -x $BIN && -f $STAMP ]] && [[ "$(stamp_text)" == "$(cat "$STAMP")" ]]; then
    log "up to date"
    echo "$BIN"
    exit 0
fi
OBJ=$OUT_DIR/obj

# --- the 1.8.5 front end from the PyPI sdist ------------------------------------------------

fetch_frontend() {
    mkdir -p "$OUT_DIR/sdist"
    SDIST=$OUT_DIR/sdist/$SDIST_FILE
    if [[ ! -f $SDIST ]] || [[ "$(sha256sum "$SDIST" | cut -d' ' -f1)" != "$SDIST_SHA256" ]]; then
        local PIP=() got got_version
        if command -v pip >/dev/null; then PIP=(pip)
        elif command -v pip3 >/dev/null; then PIP=(pip3)
        elif command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
        else die "pip not found: install it (Debian: apt-get install python3-pip) to download $SDIST_NAME==$SDIST_VERSION from PyPI"
        fi
        log "downloading $SDIST_NAME==$SDIST_VERSION (sdist) from PyPI with ${PIP[*]}"
        rm -f "$SDIST"
        # Only this package is forced to source (`--no-binary :all:` would also force pip's
        # build-time dependencies, among them cmake, to be compiled from source just to read the
        # sdist's metadata: more than 10 minutes). Nothing is built or installed.
        "${PIP[@]}" download --quiet --no-deps --no-binary "$SDIST_NAME" \
            "$SDIST_NAME==$SDIST_VERSION" -d "$OUT_DIR/sdist" >&2 ||
            die "pip could not download $SDIST_NAME==$SDIST_VERSION (network? proxy?)"
        [[ -f $SDIST ]] || die "pip did not save $SDIST"
        got=$(sha256sum "$SDIST" | cut -d' ' -f1)
        [[ $got == "$SDIST_SHA256" ]] || die "$SDIST has SHA-256 $got, expected $SDIST_SHA256"
    fi

    SRC=$OUT_DIR/src
    EX=$SRC/$SDIST_NAME-$SDIST_VERSION/whisper.cpp/examples
    rm -rf "$SRC"
    mkdir -p "$SRC"
    tar -xzf "$SDIST" -C "$SRC" \
        "$SDIST_NAME-$SDIST_VERSION/whisper.cpp/examples" \
        "$SDIST_NAME-$SDIST_VERSION/whisper.cpp/LICENSE" \
        "$SDIST_NAME-$SDIST_VERSION/whisper.cpp/CMakeLists.txt" ||
        die "cannot unpack $SDIST"
    got_version=$(sed -n 's/^project("whisper.cpp" VERSION \([0-9.]*\)).*/\1/p' "$SRC/$SDIST_NAME-$SDIST_VERSION/whisper.cpp/CMakeLists.txt")
    [[ $got_version == "$FRONTEND_WHISPER_VERSION" ]] ||
        die "the sdist carries whisper.cpp '$got_version', expected $FRONTEND_WHISPER_VERSION"
}

# --- compile and link ---------------------------------------------------------------------

compile_frontend() {
    rm -rf "$OBJ"
    mkdir -p "$OBJ"
    # Include order matters: the 1.8.3 whisper.h that libwhisper.a was built from, llama's ggml
    # headers, then the examples directory (which holds no whisper.h or ggml.h of its own).
    INCLUDES=(-I"$WHISPER_INC" -I"$GGML_INC" -I"$EX")
    log "compiling the whisper.cpp $FRONTEND_WHISPER_VERSION front end (about a minute on 2 cores)"
    local pids=() failed=0 i src obj
    for src in "${FRONTEND_SOURCES[@]}"; do
        obj=$OBJ/$(basename "$src" .cpp).o
        "$CXX" "${CXXFLAGS_CLI[@]}" "${INCLUDES[@]}" -c "$EX/$src" -o "$obj" 2>"$obj.log" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            failed=1
            obj=$OBJ/$(basename "${FRONTEND_SOURCES[$i]}" .cpp).o
            echo "build-whisper-cli: compiling ${FRONTEND_SOURCES[$i]} failed:" >&2
            cat "$obj.log" >&2
        fi
    done
    [[ $failed == 0 ]] || die "the $FRONTEND_WHISPER_VERSION front end does not compile against whisper.h from $WHISPER_INC"
    obj_stamp_text >"$OBJ_STAMP"
}

if [[ -f $OBJ_STAMP ]] && [[ "$(obj_stamp_text)" == "$(cat "$OBJ_STAMP")" ]]; then
    log "front end already compiled; relinking"
else
    fetch_frontend
    compile_frontend
fi

log "linking against $WHISPER_LIB and ggml ${GGML_VERSION:-?} in $GGML_LIBDIR"
"$CXX" -O3 -pthread -o "$BIN.tmp" "$OBJ"/*.o "$WHISPER_LIB" "${GGML_LIBS[@]}" \
    -lgomp -lpthread -ldl -lm ||
    die "linking whisper-cli failed"
mv -f "$BIN.tmp" "$BIN"

cat >"$OUT_DIR/BUILD-INFO.txt" <<EOF
whisper-cli built by scripts/build-whisper-cli.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)
front end : whisper.cpp $FRONTEND_WHISPER_VERSION examples (${FRONTEND_SOURCES[*]})
            from PyPI $SDIST_FILE (sha256 $SDIST_SHA256)
library   : $WHISPER_LIB (whisper.cpp 1.8.3, vendor/whisper-rs-sys)
header    : $WHISPER_INC/whisper.h
ggml      : ${GGML_VERSION:-?} from llama-cpp-sys-2: ${GGML_LIBS[*]}
compiler  : $("$CXX" --version | head -n 1)
flags     : ${CXXFLAGS_CLI[*]}; link -lgomp -lpthread -ldl -lm
EOF
stamp_text >"$STAMP"
log "built $BIN"
echo "$BIN"
