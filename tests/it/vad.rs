//! Silero VAD through whisper.cpp on the fixture clips.

use serena::models::format;
use serena::models::Resolved;
use serena::vad::{SileroVad, VadParams};

use crate::common::{audio, model};

pub fn vad() -> SileroVad {
    let path = model("vad/for-tests-silero-v6.2.0-ggml.bin");
    let resolved = Resolved {
        format: format::inspect(&path).expect("vad model verifies"),
        path,
        name: None,
    };
    SileroVad::load(&resolved, 2).expect("load vad")
}

#[test]
fn jfk_has_four_speech_segments_where_the_manifest_says() {
    let samples =
        serena::audio::decode::decode_file_16k_mono(&audio("asr/jfk.wav")).expect("decode");
    let spans = vad().speech(&samples, &VadParams::default()).expect("vad");
    let expected = [(0.32, 2.27), (3.27, 4.41), (5.38, 7.68), (8.16, 10.62)];
    assert_eq!(spans.len(), 4, "{spans:?}");
    for (s, (a, b)) in spans.iter().zip(expected) {
        assert!(
            (s.start - a).abs() <= 0.15 && (s.end - b).abs() <= 0.15,
            "{s:?} vs {a}-{b}"
        );
    }
}

#[test]
fn silence_noise_and_empty_clips_have_no_speech() {
    let mut vad = vad();
    for f in [
        "keywords/speech_commands_silence_1000ms.wav",
        "keywords/speech_commands_noise_1000ms.wav",
        "vad/leopard_empty.wav",
    ] {
        let samples = serena::audio::decode::decode_file_16k_mono(&audio(f)).expect("decode");
        let spans = vad.speech(&samples, &VadParams::default()).expect("vad");
        assert!(spans.is_empty(), "{f}: {spans:?}");
    }
    assert!(vad
        .speech(&[], &VadParams::default())
        .expect("vad")
        .is_empty());
}
