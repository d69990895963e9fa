//! `serena transcribe` end to end with the real tiny.en model.

use predicates::prelude::*;

use crate::common::{audio, words, Env, JFK};

#[test]
fn transcribes_jfk_to_standard_output() {
    let env = Env::new();
    assert_eq!(
        words(&transcribe_text(&env, &audio("asr/jfk.wav"), &[])),
        JFK
    );
}

#[test]
fn missing_and_non_audio_inputs_exit_3_naming_the_file() {
    let env = Env::new();
    let text = env.path().join("notes.wav");
    std::fs::write(&text, "not audio at all").expect("write");
    env.serena()
        .args(["transcribe", "no-such-file.wav"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no-such-file.wav"));
    env.serena()
        .arg("transcribe")
        .arg(&text)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("notes.wav"));
}

fn transcribe_text(env: &Env, file: &std::path::Path, extra: &[&str]) -> String {
    let out = env
        .serena()
        .args(["transcribe", "-b", "1", "-t", "2"])
        .args(extra)
        .arg(file)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8_lossy(&out).into_owned()
}

/// Word error rate over the clips with exact references, with the real tiny.en model.
#[test]
fn accuracy_on_clips_with_exact_references() {
    use serena::transcribe::wer;
    let env = Env::new();
    let tsv = crate::common::shared().join("audio/transcripts.tsv");
    let table = std::fs::read_to_string(&tsv).unwrap_or_else(|e| panic!("{}: {e}", tsv.display()));
    let (mut errors, mut words_total) = (0usize, 0usize);
    let mut report = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, reference, kind, ..] = cols.as_slice() else {
            continue;
        };
        if *kind != "exact" {
            continue;
        }
        let path = crate::common::shared().join("audio").join(file);
        assert!(path.is_file(), "fixture missing: {}", path.display());
        let hyp = transcribe_text(&env, &path, &[]);
        let e = wer::word_errors(reference, &hyp);
        let rate = e.wer();
        report.push(format!("{file}: WER {:.1}% ({hyp:?})", rate * 100.0));
        if file.ends_with("jfk.wav") {
            assert!(rate <= 0.05, "jfk WER {rate}");
        }
        errors += e.errors();
        words_total += e.reference_words;
    }
    assert!(report.len() >= 5, "too few exact references: {report:?}");
    let overall = errors as f64 / words_total as f64;
    eprintln!("{}\noverall WER {:.1}%", report.join("\n"), overall * 100.0);
    assert!(overall <= 0.12, "overall WER {overall}: {report:#?}");
}

#[test]
fn every_container_and_rate_gives_the_same_words() {
    let env = Env::new();
    let reference = words(&transcribe_text(&env, &audio("asr/jfk.wav"), &[]));
    assert_eq!(reference, JFK);
    for f in ["asr/jfk.mp3", "asr/jfk.flac", "asr/jfk.ogg", "asr/jfk.m4a"] {
        assert_eq!(words(&transcribe_text(&env, &audio(f), &[])), JFK, "{f}");
    }
    // The 8 kHz telephone clip against its 16 kHz copy made by sox.
    let eight = words(&transcribe_text(
        &env,
        &audio("asr/librispeech/1272-128104-0004-8k.wav"),
        &[],
    ));
    let sixteen = words(&transcribe_text(
        &env,
        &crate::common::shared().join("audio/16k/asr/librispeech/1272-128104-0004-8k.16k.wav"),
        &[],
    ));
    let e = serena::transcribe::wer::wer(&sixteen, &eight);
    assert!(
        e <= 0.05,
        "8 kHz vs 16 kHz copy differ by WER {e}: {eight:?} vs {sixteen:?}"
    );
    // 44.1 kHz and 48 kHz stereo copies of the whole clip, made with sox.
    for (rate, ext) in [("44100", "wav"), ("48000", "flac")] {
        let copy = env.path().join(format!("jfk_{rate}_stereo.{ext}"));
        let status = std::process::Command::new("sox")
            .arg(audio("asr/jfk.wav"))
            .args(["-r", rate, "-c", "2"])
            .arg(&copy)
            .status()
            .expect("sox is not installed: apt-get install sox");
        assert!(status.success(), "sox failed");
        assert_eq!(
            words(&transcribe_text(&env, &copy, &[])),
            JFK,
            "{rate} Hz stereo"
        );
    }
}

#[test]
fn silence_noise_and_empty_clips_give_no_text() {
    let env = Env::new();
    for f in [
        "keywords/speech_commands_silence_1000ms.wav",
        "keywords/speech_commands_noise_1000ms.wav",
        "vad/leopard_empty.wav",
    ] {
        let text = transcribe_text(&env, &audio(f), &[]);
        assert_eq!(text.trim(), "", "{f} produced {text:?}");
        let text = transcribe_text(&env, &audio(f), &["--vad"]);
        assert_eq!(text.trim(), "", "{f} with --vad produced {text:?}");
    }
}

#[test]
fn subtitles_and_json_round_trip_through_standard_parsers() {
    let env = Env::new();
    let dir = env.path().join("out");
    env.serena()
        .args([
            "transcribe",
            "-b",
            "1",
            "-f",
            "srt",
            "-f",
            "vtt",
            "-f",
            "json",
            "-f",
            "tsv",
            "-f",
            "txt",
            "-o",
        ])
        .arg(&dir)
        .arg(audio("asr/jfk.wav"))
        .assert()
        .success();
    let srt = std::fs::read_to_string(dir.join("jfk.srt")).expect("srt");
    let cues = srtparse::from_str(&srt).expect("srt parses");
    assert!(!cues.is_empty());
    let vtt = std::fs::read_to_string(dir.join("jfk.vtt")).expect("vtt");
    assert!(vtt.starts_with("WEBVTT"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("jfk.json")).expect("json"))
            .expect("parses");
    for key in [
        "file",
        "model",
        "language",
        "duration_s",
        "segments",
        "timings",
    ] {
        assert!(json.get(key).is_some(), "json lacks {key}");
    }
    assert!((json["duration_s"].as_f64().unwrap_or(0.0) - 11.0).abs() < 0.1);
    let segs = json["segments"].as_array().expect("segments");
    let joined: Vec<&str> = segs.iter().filter_map(|s| s["text"].as_str()).collect();
    assert_eq!(words(&joined.join(" ")), JFK);
    assert!(json["timings"]["rtf"].as_f64().is_some());
    assert_eq!(
        words(&std::fs::read_to_string(dir.join("jfk.txt")).expect("txt")),
        JFK
    );
    assert!(std::fs::read_to_string(dir.join("jfk.tsv"))
        .expect("tsv")
        .starts_with("start\tend\ttext"));
}

#[test]
fn word_timestamps_are_in_the_json() {
    let env = Env::new();
    let out = transcribe_text(
        &env,
        &audio("asr/jfk.wav"),
        &["-f", "json", "--word-timestamps"],
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let words_json = json["segments"][0]["words"].as_array().expect("words");
    assert!(words_json.len() > 3);
    let first = &words_json[0];
    assert!(
        first["word"]
            .as_str()
            .is_some_and(|w| w.to_lowercase().contains("and")),
        "{first}"
    );
    assert!(first["p"].as_f64().is_some_and(|p| p > 0.0 && p <= 1.0));
    let ends: Vec<f64> = words_json
        .iter()
        .filter_map(|w| w["end"].as_f64())
        .collect();
    assert!(
        ends.windows(2).all(|w| w[0] <= w[1] + 1e-6),
        "word times go backwards: {ends:?}"
    );
}

#[test]
fn a_batch_with_one_corrupt_file_transcribes_the_rest_and_exits_3() {
    let env = Env::new();
    let inputs = env.path().join("in");
    std::fs::create_dir_all(&inputs).expect("mkdir");
    std::fs::copy(audio("asr/jfk.wav"), inputs.join("a.wav")).expect("copy");
    std::fs::copy(
        audio("commands/rhasspy3_what_time_is_it.wav"),
        inputs.join("c.wav"),
    )
    .expect("copy");
    let mut corrupt = std::fs::read(audio("asr/jfk.flac")).expect("read");
    corrupt.truncate(200);
    std::fs::write(inputs.join("b.flac"), corrupt).expect("write");
    std::fs::write(
        inputs.join("notes.txt"),
        "not audio, and not picked from a directory",
    )
    .expect("write");
    let out = env.path().join("out");
    env.serena()
        .args(["transcribe", "-b", "1", "-o"])
        .arg(&out)
        .arg(&inputs)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("b.flac"));
    assert_eq!(
        words(&std::fs::read_to_string(out.join("a.txt")).expect("a.txt")),
        JFK
    );
    assert_eq!(
        words(&std::fs::read_to_string(out.join("c.txt")).expect("c.txt")),
        "what time is it"
    );
    assert!(!out.join("b.txt").exists());
    // --skip-existing: nothing to do for a and c; b still fails.
    let before = std::fs::metadata(out.join("a.txt"))
        .and_then(|m| m.modified())
        .expect("mtime");
    env.serena()
        .args(["transcribe", "-b", "1", "--skip-existing", "-o"])
        .arg(&out)
        .arg(inputs.join("a.wav"))
        .assert()
        .success();
    let after = std::fs::metadata(out.join("a.txt"))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after);
}

#[test]
fn standard_input_is_an_input() {
    let env = Env::new();
    let bytes = std::fs::read(audio("asr/jfk.mp3")).expect("read");
    let out = env
        .serena()
        .args(["transcribe", "-b", "1", "-"])
        .write_stdin(bytes)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(words(&String::from_utf8_lossy(&out)), JFK);
}

#[test]
fn several_inputs_without_an_output_dir_is_a_usage_error() {
    let env = Env::new();
    env.serena()
        .arg("transcribe")
        .arg(audio("asr/jfk.wav"))
        .arg(audio("asr/jfk.mp3"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--output-dir"));
}

/// Windows: a long input is cut into windows at quiet points; timestamps stay continuous
/// and no speech is lost at the cuts.
#[test]
fn long_inputs_are_windowed_with_continuous_timestamps() {
    let env = Env::new();
    // jfk four times with a second of silence between: 48 s, cut into ~20 s windows.
    let mut samples = Vec::new();
    let jfk = serena::audio::decode::decode_file_16k_mono(&audio("asr/jfk.wav")).expect("decode");
    for _ in 0..4 {
        samples.extend_from_slice(&jfk);
        samples.extend(std::iter::repeat_n(0.0f32, 16_000));
    }
    let long = env.path().join("long.wav");
    serena::audio::write_wav_16k_mono(&long, &samples).expect("write");
    let out = transcribe_text(&env, &long, &["-f", "json", "--window-seconds", "20"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let segs = json["segments"].as_array().expect("segments");
    let starts: Vec<f64> = segs.iter().filter_map(|s| s["start"].as_f64()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let last_end = segs.last().and_then(|s| s["end"].as_f64()).unwrap_or(0.0);
    assert!(last_end > 40.0 && last_end <= 48.1, "last end {last_end}");
    let text: Vec<&str> = segs.iter().filter_map(|s| s["text"].as_str()).collect();
    let text = words(&text.join(" "));
    assert_eq!(
        text.matches("ask not what your country").count(),
        4,
        "{text}"
    );
}

/// A 30-minute input (jfk every five minutes, silence between) with VAD: memory stays
/// bounded by the window, timestamps continue across 15 windows, nothing is invented.
#[test]
fn a_thirty_minute_input_keeps_continuous_timestamps() {
    let env = Env::new();
    let jfk = serena::audio::decode::decode_file_16k_mono(&audio("asr/jfk.wav")).expect("decode");
    let total = 30 * 60 * 16_000usize;
    let mut samples = vec![0.0f32; total];
    let offsets: Vec<usize> = (0..6).map(|k| k * 300 + 7).collect(); // seconds
    for &at in &offsets {
        let start = at * 16_000;
        samples[start..start + jfk.len()].copy_from_slice(&jfk);
    }
    let long = env.path().join("thirty.wav");
    serena::audio::write_wav_16k_mono(&long, &samples).expect("write");
    drop(samples);
    let out = transcribe_text(&env, &long, &["-f", "json", "--vad"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!((json["duration_s"].as_f64().unwrap_or(0.0) - 1800.0).abs() < 0.1);
    let segs = json["segments"].as_array().expect("segments");
    let starts: Vec<f64> = segs.iter().filter_map(|s| s["start"].as_f64()).collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "timestamps go backwards: {starts:?}"
    );
    // Every copy is found where it was put (within a second), and nowhere else.
    for &at in &offsets {
        let hit = segs.iter().any(|s| {
            let start = s["start"].as_f64().unwrap_or(-1.0);
            (start - at as f64).abs() < 1.5
        });
        assert!(hit, "no segment starts near {at} s: {starts:?}");
    }
    for s in segs {
        let start = s["start"].as_f64().unwrap_or(-1.0);
        assert!(
            offsets
                .iter()
                .any(|&at| start >= at as f64 - 1.5 && start <= at as f64 + 12.0),
            "a segment at {start} s, where there is only silence: {s}"
        );
    }
    let text: Vec<&str> = segs.iter().filter_map(|s| s["text"].as_str()).collect();
    assert_eq!(
        words(&text.join(" "))
            .matches("ask not what your country")
            .count(),
        6
    );
}
