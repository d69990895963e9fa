//! Both engines in one process, on the one shared ggml: whisper, then llama, then whisper.

use serena::llm::{EngineOptions, GenerateOptions, LlmEngine, Message};
use serena::models::{format, ModelKind, Resolved};
use serena::stt::{DecodeOptions, WhisperEngine};

use crate::common::{audio, model, words, JFK};

fn resolved(rel: &str) -> Resolved {
    let path = model(rel);
    let format = format::inspect(&path).expect("fixture model verifies");
    Resolved {
        path,
        name: None,
        format,
    }
}

fn transcribe_jfk(engine: &WhisperEngine) -> String {
    let samples =
        serena::audio::decode::decode_file_16k_mono(&audio("asr/jfk.wav")).expect("decode jfk");
    let opts = DecodeOptions {
        beam_size: 1,
        threads: 2,
        ..DecodeOptions::default()
    };
    let (segments, lang) = engine.transcribe(&samples, 0.0, &opts).expect("transcribe");
    assert_eq!(lang, "en");
    words(
        &segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[test]
fn whisper_then_llama_then_whisper_in_one_process() {
    let whisper = WhisperEngine::load(&resolved("whisper/ggml-tiny.en.bin")).expect("load whisper");
    assert_eq!(transcribe_jfk(&whisper), JFK);

    let llm_model = resolved("llm/llama-2-tiny-random.gguf");
    assert_eq!(llm_model.format.kind(), ModelKind::Llm);
    let llm = LlmEngine::load(
        &llm_model,
        EngineOptions {
            context: 512,
            threads: 2,
            gpu_layers: 0,
        },
    )
    .expect("load llama");
    let mut pieces = 0;
    let out = llm
        .generate(
            &[Message::new("user", "Say something.")],
            &GenerateOptions {
                max_tokens: 16,
                temperature: 0.0,
                seed: 1,
                grammar: None,
            },
            |_| {
                pieces += 1;
                true
            },
        )
        .expect("generate");
    assert!(out.tokens > 0 && out.tokens <= 16, "{} tokens", out.tokens);
    assert!(pieces > 0);

    // whisper again, after llama ran on the same ggml.
    assert_eq!(transcribe_jfk(&whisper), JFK);
    // And a fresh whisper context after llama was loaded.
    let whisper2 =
        WhisperEngine::load(&resolved("whisper/ggml-tiny.en.bin")).expect("reload whisper");
    assert_eq!(transcribe_jfk(&whisper2), JFK);
}

#[test]
fn both_engines_report_the_same_ggml() {
    let build = serena::status::build_info();
    assert!(!build.ggml_version.is_empty());
    // whisper-rs-sys reaches ggml_version through its own bindings: same library, same answer.
    let via_whisper = unsafe { std::ffi::CStr::from_ptr(whisper_rs_sys_ggml_version()) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(via_whisper, build.ggml_version);
}

fn whisper_rs_sys_ggml_version() -> *const std::os::raw::c_char {
    // SAFETY: a getter of a static string.
    unsafe { whisper_rs_sys::ggml_version() }
}
