//! Build script for whisper-rs-sys, patched for Serena.
//!
//! Upstream builds whisper.cpp together with its own copy of ggml. Serena also links
//! llama.cpp (llama-cpp-sys-2), which builds a newer, ABI-incompatible ggml; two copies in
//! one binary collide at link time. Here whisper.cpp is compiled against llama-cpp-sys-2's
//! installed ggml instead (`WHISPER_USE_SYSTEM_GGML=ON`, `ggml_DIR` from
//! `DEP_LLAMA_GGML_CMAKE_DIR`), and only `libwhisper.a` is linked from this crate: ggml and
//! its backends (CPU, Metal, CUDA, Vulkan) are linked once, by llama-cpp-sys-2.
//! See ARCHITECTURE.md, "One ggml".
#![allow(clippy::uninlined_format_args)]

use cmake::Config;
use std::env;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

fn main() {
    let target = env::var("TARGET").expect("TARGET is set by cargo");
    if let Some(cpp_stdlib) = get_cpp_link_stdlib(&target) {
        println!("cargo:rustc-link-lib=dylib={}", cpp_stdlib);
    }
    if target.contains("apple") {
        println!("cargo:rustc-link-lib=framework=Accelerate");
    }
    if cfg!(target_os = "windows") {
        println!("cargo:rustc-link-lib=advapi32");
    }

    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_GGML_CMAKE_DIR");

    let ggml_cmake_dir = PathBuf::from(env::var("DEP_LLAMA_GGML_CMAKE_DIR").expect(
        "DEP_LLAMA_GGML_CMAKE_DIR is not set: this patched whisper-rs-sys must be built \
         as a dependent of llama-cpp-sys-2, which installs the one ggml both engines share",
    ));
    // <prefix>/lib/cmake -> <prefix>/include holds ggml.h and the backend headers.
    let ggml_include = ggml_cmake_dir
        .parent()
        .and_then(Path::parent)
        .map(|prefix| prefix.join("include"))
        .expect("ggml cmake dir has a prefix");
    assert!(
        ggml_include.join("ggml.h").is_file(),
        "ggml.h not found in {}",
        ggml_include.display()
    );

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let whisper_root = out.join("whisper.cpp");
    if !whisper_root.exists() {
        std::fs::create_dir_all(&whisper_root).expect("create OUT_DIR/whisper.cpp");
        fs_extra::dir::copy("./whisper.cpp", &out, &Default::default()).unwrap_or_else(|e| {
            panic!(
                "Failed to copy whisper sources into {}: {}",
                whisper_root.display(),
                e
            )
        });
    }

    // Bindings are generated against the ggml that is actually linked.
    let bindings = bindgen::Builder::default()
        .rust_edition(bindgen::RustEdition::Edition2021)
        .rust_target(bindgen::RustTarget::stable(88, 0).expect("supported rust target"))
        .header("wrapper.h")
        .clang_arg("-I./whisper.cpp/")
        .clang_arg("-I./whisper.cpp/include")
        .clang_arg(format!("-I{}", ggml_include.display()))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("generate whisper.cpp bindings (is libclang installed?)");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");

    if env::var("DOCS_RS").is_ok() {
        return;
    }

    let mut config = Config::new(&whisper_root);
    config
        .profile("Release")
        .define("CMAKE_BUILD_TYPE", "Release")
        .define("BUILD_SHARED_LIBS", "OFF")
        .define("WHISPER_ALL_WARNINGS", "OFF")
        .define("WHISPER_ALL_WARNINGS_3RD_PARTY", "OFF")
        .define("WHISPER_BUILD_TESTS", "OFF")
        .define("WHISPER_BUILD_EXAMPLES", "OFF")
        .define("WHISPER_BUILD_SERVER", "OFF")
        .define("WHISPER_CURL", "OFF")
        .define("WHISPER_SDL2", "OFF")
        .define("WHISPER_USE_SYSTEM_GGML", "ON")
        .define("ggml_DIR", ggml_cmake_dir.join("ggml"))
        .define("CMAKE_PREFIX_PATH", &ggml_cmake_dir)
        .pic(true);
    if cfg!(target_os = "windows") {
        config.cxxflag("/utf-8");
    }
    let destination = config.build();

    add_link_search_path(&out.join("build")).expect("walk build dir");
    println!("cargo:rustc-link-search=native={}", destination.display());
    println!(
        "cargo:rustc-link-search=native={}",
        destination.join("lib").display()
    );
    // Only whisper itself: ggml comes from llama-cpp-sys-2.
    println!("cargo:rustc-link-lib=static=whisper");

    println!(
        "cargo:WHISPER_CPP_VERSION={}",
        get_whisper_cpp_version(&whisper_root)
            .expect("Failed to read whisper.cpp CMake config")
            .expect("Could not find whisper.cpp version declaration"),
    );
}

fn get_cpp_link_stdlib(target: &str) -> Option<&'static str> {
    if target.contains("msvc") {
        None
    } else if target.contains("apple") || target.contains("freebsd") || target.contains("openbsd") {
        Some("c++")
    } else if target.contains("android") {
        Some("c++_shared")
    } else {
        Some("stdc++")
    }
}

fn add_link_search_path(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        println!("cargo:rustc-link-search={}", dir.display());
        for entry in std::fs::read_dir(dir)? {
            add_link_search_path(&entry?.path())?;
        }
    }
    Ok(())
}

fn get_whisper_cpp_version(whisper_root: &Path) -> std::io::Result<Option<String>> {
    let cmake_lists = BufReader::new(File::open(whisper_root.join("CMakeLists.txt"))?);
    for line in cmake_lists.lines() {
        let line = line?;
        if let Some(suffix) = line.strip_prefix(r#"project("whisper.cpp" VERSION "#) {
            return Ok(Some(suffix.trim_end_matches(')').into()));
        }
    }
    Ok(None)
}
