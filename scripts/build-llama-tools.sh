#!/usr/bin/env bash
# Build llama.cpp's `llama-bench` and `llama-simple` against exactly the llama.cpp library and
# ggml that Serena links, for side-by-side comparisons (scripts/bench-llm.sh).
#
#   scripts/build-llama-tools.sh        # prints the directory holding both binaries on stdout
#   LLAMA_SYS_OUT=target/release/build/llama-cpp-sys-2-<hash>/out scripts/build-llama-tools.sh
#
# What goes into the binaries:
#   * the libraries: libllama.a, libllama-common.a (+ libllama-common-base.a, libcpp-httplib.a),
#     libggml.a, libggml-cpu.a, libggml-base.a that `cargo build --release` built from
#     llama-cpp-sys-2's vendored llama.cpp (the crate version in Cargo.lock), i.e. the one ggml
#     inside `serena` (ARCHITECTURE.md, "One ggml"); the headers they were compiled from
#     (<out>/include, and common/ + vendor/ of the crate's sources, which the crate's CMake
#     cache names as llama.cpp_SOURCE_DIR);
#   * the front ends only: tools/llama-bench/{llama-bench.cpp,main.cpp} and
#     examples/simple/simple.cpp from the PyPI sdist llama-cpp-python==0.3.36 (its
#     vendor/llama.cpp, a slightly different llama.cpp commit with the same ggml 0.26.0; the
#     crate ships no tool sources). They compile unchanged against the crate's headers.
#   * llama-simple is patched in lines marked `serena-bench` so that it can be compared at
#     all: (1) LLAMA_SIMPLE_THREADS sets n_threads and n_threads_batch (upstream has no thread
#     option and uses llama.cpp's default of 4); (2) LLAMA_SIMPLE_N_CTX overrides its context
#     size (upstream: prompt + n_predict - 1); (3) it prints on stderr
#     `serena-bench: context_ms X` (llama_init_from_model), `serena-bench: first_token_ms X`
#     and `serena-bench: end_ms X`, both counted from just after model load (before
#     tokenization) to the first piece of text and to the end of the generation loop.
#     Nothing else changes.
#
# Flags are those the crate's CMake build used (CMAKE_CXX_FLAGS + CMAKE_CXX_FLAGS_RELEASE from
# its CMakeCache.txt, -std=c++17, llama-common's public definitions); linked with -lgomp when
# ggml was built with OpenMP (GGML_OPENMP_ENABLED in that cache), with -lssl -lcrypto when
# llama-common was built with OpenSSL. CPU builds only (a cuda/vulkan/metal build of Serena
# adds backend archives with system libraries of their own).
#
# Output: target/llama-tools/{llama-bench,llama-simple} (+ BUILD-INFO.txt). Idempotent: nothing
# is rebuilt while the libraries, the sdist and this script are unchanged.
#
# Needs: a finished `cargo build --release` (or `cargo build --release --example llm_bench`),
# g++, pip (to download the sdist; nothing is installed), tar, sha256sum.
set -euo pipefail

die() { echo "build-llama-tools: error: $*" >&2; exit 1; }
log() { echo "build-llama-tools: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BUILD=$TARGET_DIR/release/build
OUT_DIR=$TARGET_DIR/llama-tools

SDIST_NAME=llama-cpp-python
SDIST_VERSION=0.3.36
SDIST_FILE=llama_cpp_python-$SDIST_VERSION.tar.gz
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SDIST_TOP=llama_cpp_python-$SDIST_VERSION/vendor/llama.cpp
FRONTEND_FILES=(tools/llama-bench/llama-bench.cpp tools/llama-bench/main.cpp examples/simple/simple.cpp LICENSE)

CXX=${CXX:-g++}
NICE=(nice -n "${NICE_LEVEL:-10}")
NEED_CARGO="run \`cargo build --release\` in $ROOT first"

# --- the libraries from cargo's build -----------------------------------------------------

newest() { ls -1t "$@" 2>/dev/null | head -n 1; }

if [[ -n ${LLAMA_SYS_OUT:-} ]]; then
    case $LLAMA_SYS_OUT in /*) ;; *) LLAMA_SYS_OUT=$ROOT/$LLAMA_SYS_OUT ;; esac
    SYS_OUT=${LLAMA_SYS_OUT%/}
    [[ -f $SYS_OUT/lib/libllama.a ]] || die "LLAMA_SYS_OUT=$SYS_OUT has no lib/libllama.a"
else
    [[ -d $BUILD ]] || die "no release build under $BUILD: $NEED_CARGO"
    LIBLLAMA=$(newest "$BUILD"/llama-cpp-sys-2-*/out/lib/libllama.a) || true
    [[ -n $LIBLLAMA && -f $LIBLLAMA ]] ||
        die "libllama.a not found under $BUILD/llama-cpp-sys-2-*/out/lib: $NEED_CARGO"
    SYS_OUT=${LIBLLAMA%/lib/libllama.a}
fi
LIB=$SYS_OUT/lib
CACHE=$SYS_OUT/build/CMakeCache.txt
[[ -f $CACHE ]] || die "$CACHE missing (llama-cpp-sys-2's CMake build directory): $NEED_CARGO"
cache() { sed -n "s/^$1:[A-Z]*=//p" "$CACHE" | head -n 1; }

LLAMA_SRC=$(cache llama.cpp_SOURCE_DIR)
CRATE_VERSION=$(sed -n '/^name = "llama-cpp-sys-2"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$ROOT/Cargo.lock" | head -n 1)
if [[ ! -f $LLAMA_SRC/common/common.h ]]; then
    LLAMA_SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"llama-cpp-sys-2-$CRATE_VERSION"/llama.cpp 2>/dev/null | head -n 1) || true
    [[ -n $LLAMA_SRC && -f $LLAMA_SRC/common/common.h ]] ||
        die "llama-cpp-sys-2 $CRATE_VERSION sources not found (cargo registry): run \`cargo fetch\` in $ROOT"
fi

[[ $(cache GGML_AVAILABLE_BACKENDS) == ggml-cpu ]] ||
    die "this llama-cpp-sys-2 build has backends '$(cache GGML_AVAILABLE_BACKENDS)': compare on a CPU build (no cuda/vulkan/metal feature)"

LIBS_SIMPLE=("$LIB/libllama.a" "$LIB/libggml.a" "$LIB/libggml-cpu.a" "$LIB/libggml-base.a")
LIBS_BENCH=("$LIB/libllama-common.a")
COMMON_BASE=$(newest "$LIB/libllama-common-base.a" "$SYS_OUT/build/common/libllama-common-base.a") || true
[[ -n $COMMON_BASE ]] && LIBS_BENCH+=("$COMMON_BASE")
HTTPLIB=$(newest "$LIB/libcpp-httplib.a" "$SYS_OUT/build/vendor/cpp-httplib/libcpp-httplib.a") || true
[[ -n $HTTPLIB ]] && LIBS_BENCH+=("$HTTPLIB")
LIBS_BENCH+=("${LIBS_SIMPLE[@]}")
for f in "${LIBS_BENCH[@]}"; do [[ -f $f ]] || die "$f missing: $NEED_CARGO"; done

SYSLIBS=()
if [[ $(cache GGML_OPENMP_ENABLED) == ON ]]; then SYSLIBS+=(-lgomp); OPENMP=yes; else OPENMP=no; fi
SSLLIBS=()
if [[ $(cache LLAMA_OPENSSL) == ON && -n $(cache OPENSSL_SSL_LIBRARY) && $(cache OPENSSL_SSL_LIBRARY) != *NOTFOUND ]]; then
    SSLLIBS=(-lssl -lcrypto)
fi
SYSLIBS+=(-lpthread -ldl -lm)

# Compiler flags as the crate's CMake Release build had them.
read -r -a CMAKE_FLAGS <<<"$(cache CMAKE_CXX_FLAGS) $(cache CMAKE_CXX_FLAGS_RELEASE)"
DEFINES=(-DGGML_USE_CPU)
[[ $(cache LLAMA_SUBPROCESS) == ON ]] && DEFINES+=(-DLLAMA_SUBPROCESS)
CXXFLAGS_TOOLS=("${CMAKE_FLAGS[@]}" -std=c++17 -pthread "${DEFINES[@]}")
INCLUDES=(-I"$SYS_OUT/include" -I"$LLAMA_SRC/common" -I"$LLAMA_SRC/vendor")
[[ -f $SYS_OUT/include/llama.h ]] || die "$SYS_OUT/include/llama.h missing: $NEED_CARGO"
GGML_VERSION=$(sed -n 's/^set(PACKAGE_VERSION "\([0-9.]*\)").*/\1/p' "$LIB"/cmake/ggml/ggml-config-version.cmake 2>/dev/null | head -n 1)

command -v "$CXX" >/dev/null || die "$CXX not found: install a C++ compiler (Debian: apt-get install g++)"

# --- up to date? --------------------------------------------------------------------------

STAMP=$OUT_DIR/.stamp
OBJ=$OUT_DIR/obj
OBJ_STAMP=$OBJ/.stamp
obj_stamp_text() {
    echo "script $(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
    echo "sdist $SDIST_FILE $SDIST_SHA256"
    echo "cxx $("$CXX" --version | head -n 1) ${CXXFLAGS_TOOLS[*]}"
    cat "$SYS_OUT"/include/*.h "$LLAMA_SRC"/common/*.h | sha256sum | cut -d' ' -f1
}
stamp_text() {
    obj_stamp_text
    for f in "${LIBS_BENCH[@]}"; do echo "input $f $(stat -c '%s %Y' "$f")"; done
}
if [[ -x $OUT_DIR/llama-bench && -x $OUT_DIR/llama-simple && -f $STAMP ]] &&
    [[ "$(stamp_text)" == "$(cat "$STAMP")" ]]; then
    log "up to date"
    echo "$OUT_DIR"
    exit 0
fi

# --- the front ends from the PyPI sdist -----------------------------------------------------

fetch_frontend() {
    mkdir -p "$OUT_DIR/sdist"
    SDIST=$OUT_DIR/sdist/$SDIST_FILE
    if [[ ! -f $SDIST ]] || [[ "$(sha256sum "$SDIST" | cut -d' ' -f1)" != "$SDIST_SHA256" ]]; then
        local PIP=() got
        if command -v pip >/dev/null; then PIP=(pip)
        elif command -v pip3 >/dev/null; then PIP=(pip3)
        elif command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
        else die "pip not found: install it (Debian: apt-get install python3-pip) to download $SDIST_NAME==$SDIST_VERSION from PyPI"
        fi
        log "downloading $SDIST_NAME==$SDIST_VERSION (sdist, 77 MB) from PyPI with ${PIP[*]}"
        rm -f "$SDIST"
        # Only this package is forced to source; nothing is built or installed.
        "${PIP[@]}" download --quiet --no-deps --no-binary "$SDIST_NAME" \
            "$SDIST_NAME==$SDIST_VERSION" -d "$OUT_DIR/sdist" >&2 ||
            die "pip could not download $SDIST_NAME==$SDIST_VERSION (network? proxy?)"
        [[ -f $SDIST ]] || die "pip did not save $SDIST"
        got=$(sha256sum "$SDIST" | cut -d' ' -f1)
        [[ $got == "$SDIST_SHA256" ]] || die "$SDIST has SHA-256 $got, expected $SDIST_SHA256"
    fi
    SRC=$OUT_DIR/src
    rm -rf "$SRC"
    mkdir -p "$SRC"
    local members=()
    for f in "${FRONTEND_FILES[@]}"; do members+=("$SDIST_TOP/$f"); done
    tar -xzf "$SDIST" -C "$SRC" "${members[@]}" || die "cannot unpack the front ends from $SDIST"
    patch_simple "$SRC/$SDIST_TOP/examples/simple/simple.cpp"
}

# insert_after FILE ANCHOR TEXT: TEXT on new lines after the one line that contains ANCHOR.
insert_after() {
    local file=$1 anchor=$2 text=$3 n
    n=$(grep -cF -- "$anchor" "$file" || true)
    [[ $n == 1 ]] || die "patching $(basename "$file"): '$anchor' found $n times, expected once (new sdist?)"
    ANCHOR=$anchor TEXT=$text python3 - "$file" <<'PY' || die "patching $file failed"
import os, sys
path = sys.argv[1]
src = open(path).read().split("\n")
out = []
for line in src:
    out.append(line)
    if os.environ["ANCHOR"] in line:
        out.extend(os.environ["TEXT"].split("\n"))
open(path, "w").write("\n".join(out))
PY
}

patch_simple() {
    local f=$1
    command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3)"
    insert_after "$f" '#include <clocale>' '#include <cstdlib> // serena-bench'
    insert_after "$f" '// tokenize the prompt' \
        '    const int64_t serena_bench_t0 = ggml_time_us(); // serena-bench: start of the request'
    insert_after "$f" 'llama_context_params ctx_params = llama_context_default_params();' \
        '    if (const char * t = getenv("LLAMA_SIMPLE_THREADS")) { ctx_params.n_threads = ctx_params.n_threads_batch = atoi(t); } // serena-bench'
    insert_after "$f" 'ctx_params.n_batch = n_prompt;' \
        '    if (const char * c = getenv("LLAMA_SIMPLE_N_CTX")) { ctx_params.n_ctx = atoi(c); } // serena-bench
    const int64_t serena_bench_tc = ggml_time_us(); // serena-bench'
    insert_after "$f" 'llama_context * ctx = llama_init_from_model(model, ctx_params);' \
        '    fprintf(stderr, "serena-bench: context_ms %.3f\n", (ggml_time_us() - serena_bench_tc) / 1000.0); // serena-bench'
    insert_after "$f" 'fflush(stdout);' \
        '            if (n_decode == 0) { fprintf(stderr, "serena-bench: first_token_ms %.3f\n", (ggml_time_us() - serena_bench_t0) / 1000.0); } // serena-bench'
    insert_after "$f" 'const auto t_main_end = ggml_time_us();' \
        '    fprintf(stderr, "serena-bench: end_ms %.3f\n", (t_main_end - serena_bench_t0) / 1000.0); // serena-bench'
}

compile_frontends() {
    rm -rf "$OBJ"
    mkdir -p "$OBJ"
    local S=$SRC/$SDIST_TOP
    local srcs=("$S/tools/llama-bench/llama-bench.cpp" "$S/tools/llama-bench/main.cpp" "$S/examples/simple/simple.cpp")
    log "compiling llama-bench and llama-simple (about 20 s on 2 cores)"
    local pids=() failed=0 i obj
    for i in "${!srcs[@]}"; do
        obj=$OBJ/$(basename "${srcs[$i]}" .cpp).o
        "${NICE[@]}" "$CXX" "${CXXFLAGS_TOOLS[@]}" "${INCLUDES[@]}" -c "${srcs[$i]}" -o "$obj" 2>"$obj.log" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            failed=1
            obj=$OBJ/$(basename "${srcs[$i]}" .cpp).o
            echo "build-llama-tools: compiling $(basename "${srcs[$i]}") failed:" >&2
            tail -n 30 "$obj.log" >&2
        fi
    done
    [[ $failed == 0 ]] || die "the llama-cpp-python $SDIST_VERSION front ends do not compile against the headers in $SYS_OUT/include and $LLAMA_SRC/common"
    obj_stamp_text >"$OBJ_STAMP"
}

if [[ -f $OBJ_STAMP ]] && [[ "$(obj_stamp_text)" == "$(cat "$OBJ_STAMP")" ]]; then
    log "front ends already compiled; relinking"
else
    fetch_frontend
    compile_frontends
fi

log "linking against $SYS_OUT (ggml ${GGML_VERSION:-?}, OpenMP $OPENMP)"
"$CXX" -O3 -pthread -o "$OUT_DIR/llama-simple.tmp" "$OBJ/simple.o" "${LIBS_SIMPLE[@]}" "${SYSLIBS[@]}" ||
    die "linking llama-simple failed"
"$CXX" -O3 -pthread -o "$OUT_DIR/llama-bench.tmp" "$OBJ/llama-bench.o" "$OBJ/main.o" \
    "${LIBS_BENCH[@]}" "${SSLLIBS[@]}" "${SYSLIBS[@]}" ||
    die "linking llama-bench failed (OpenSSL needed by libllama-common? Debian: apt-get install libssl-dev)"
mv -f "$OUT_DIR/llama-simple.tmp" "$OUT_DIR/llama-simple"
mv -f "$OUT_DIR/llama-bench.tmp" "$OUT_DIR/llama-bench"

cat >"$OUT_DIR/BUILD-INFO.txt" <<EOF
llama-bench, llama-simple built by scripts/build-llama-tools.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)
front ends: llama-cpp-python $SDIST_VERSION sdist ($SDIST_FILE, sha256 $SDIST_SHA256),
            vendor/llama.cpp/{${FRONTEND_FILES[*]}}; simple.cpp patched (grep serena-bench)
libraries : $SYS_OUT (llama-cpp-sys-2 ${CRATE_VERSION:-?}, ggml ${GGML_VERSION:-?}, OpenMP $OPENMP)
            ${LIBS_BENCH[*]}
headers   : $SYS_OUT/include, $LLAMA_SRC/common, $LLAMA_SRC/vendor
compiler  : $("$CXX" --version | head -n 1)
flags     : ${CXXFLAGS_TOOLS[*]}; link ${SSLLIBS[*]} ${SYSLIBS[*]}
EOF
stamp_text >"$STAMP"
log "built $OUT_DIR/llama-bench and $OUT_DIR/llama-simple"
echo "$OUT_DIR"
