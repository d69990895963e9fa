//! `serena wake` and `serena listen` with wake words: words trained from recordings and from
//! text are heard in other recordings of them and not in other speech, noise or silence;
//! `listen` answers only after a wake word, or inside the follow-up window after a reply.

use std::path::PathBuf;

use serde_json::Value;

use crate::common::{audio, model, ok, words, Env};

/// Clips that say no wake word (the negatives of the shared fixtures' MANIFEST, and the
/// command clips).
const NEGATIVES: [&str; 11] = [
    "commands/voice2json_what_time_is_it.16k.wav",
    "vad/leopard_empty.wav",
    "keywords/speech_commands_silence_1000ms.wav",
    "keywords/speech_commands_noise_1000ms.wav",
    "keywords/speech_commands_yes_1000ms.wav",
    "keywords/speech_commands_no_1000ms.wav",
    "commands/rhasspy3_set_timer.wav",
    "commands/rhasspy3_what_time_is_it.wav",
    "commands/rhasspy3_whats_the_date_today.wav",
    "commands/rhasspy3_this_is_a_test.wav",
    "asr/jfk.wav",
];

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `serena wake test --json` over `files`: one object per file.
fn wake_test(env: &Env, word: &str, files: &[PathBuf]) -> Vec<Value> {
    let mut args = vec!["wake", "test", "--json", "--word", word];
    args.extend(files.iter().map(|f| path(f)));
    ok(env, &args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn heard(result: &Value) -> usize {
    result["detections"].as_array().map_or(0, Vec::len)
}

fn trained(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["wake", "train", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(env, &all)).expect("train --json")
}

fn negatives_are_not_heard(env: &Env, word: &str) {
    let files: Vec<PathBuf> = NEGATIVES.iter().map(|n| audio(n)).collect();
    for r in wake_test(env, word, &files) {
        assert_eq!(heard(&r), 0, "{word} heard in a negative clip: {r}");
    }
}

#[test]
fn a_word_trained_from_one_recording_is_heard_in_another_speakers_and_not_in_other_audio() {
    let env = Env::new();
    // One recording that says "porcupine" twice: two examples, plus espeak-ng's.
    let t = trained(
        &env,
        &[
            "porcupine",
            path(&audio("wakeword/porcupine_porcupine.wav")),
        ],
    );
    assert_eq!(t["recorded_examples"], 2, "{t}");
    assert_eq!(t["synthetic_examples"], 15, "{t}");
    assert_eq!(t["says"], "porcupine");
    let r = wake_test(
        &env,
        "porcupine",
        &[audio("wakeword/rhasspy3_porcupine.wav")],
    );
    assert_eq!(heard(&r[0]), 1, "another speaker's porcupine: {}", r[0]);
    let at = r[0]["detections"][0]["at_s"].as_f64().expect("at_s");
    assert!((0.5..2.5).contains(&at), "heard at {at} s");
    negatives_are_not_heard(&env, "porcupine");

    let listed: Value =
        serde_json::from_str(&ok(&env, &["wake", "list", "--json"])).expect("list --json");
    assert_eq!(listed[0]["name"], "porcupine");
    assert_eq!(listed[0]["examples"], 17);
}

#[test]
fn the_recordings_alone_make_a_word_that_hears_its_own_speaker() {
    let env = Env::new();
    let t = trained(
        &env,
        &[
            "porcupine",
            "--no-synth",
            path(&audio("wakeword/porcupine_porcupine.wav")),
        ],
    );
    assert_eq!(t["synthetic_examples"], 0, "{t}");
    let r = wake_test(
        &env,
        "porcupine",
        &[audio("wakeword/porcupine_porcupine.wav")],
    );
    assert!(heard(&r[0]) >= 1, "{}", r[0]);
    negatives_are_not_heard(&env, "porcupine");
}

#[test]
fn words_made_from_text_are_heard_in_real_recordings() {
    let env = Env::new();
    let t = trained(&env, &["hey mycroft", "--from-text", "hey mycroft"]);
    assert_eq!(t["recorded_examples"], 0);
    assert_eq!(t["synthetic_examples"], 15);
    let r = wake_test(
        &env,
        "hey mycroft",
        &[audio("wakeword/openwakeword_hey_mycroft_test.wav")],
    );
    assert_eq!(heard(&r[0]), 1, "{}", r[0]);
    negatives_are_not_heard(&env, "hey mycroft");

    trained(&env, &["porcupine", "--from-text", "porcupine"]);
    let r = wake_test(
        &env,
        "porcupine",
        &[audio("wakeword/rhasspy3_porcupine.wav")],
    );
    assert_eq!(heard(&r[0]), 1, "{}", r[0]);
    negatives_are_not_heard(&env, "porcupine");
}

#[test]
fn bad_names_files_and_words_get_clear_errors_and_exit_codes() {
    let env = Env::new();
    let text = env.path().join("notes.wav");
    std::fs::write(&text, "this is not audio").expect("write");
    let fail = |args: &[&str], code: i32, needle: &str| {
        let out = env.serena().args(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    fail(&["wake", "train", "porcupine", path(&text)], 3, "notes.wav");
    fail(
        &["wake", "train", "../evil", "--from-text", "evil"],
        2,
        "invalid wake word name",
    );
    fail(&["wake", "train", "porcupine"], 2, "--from-text");
    fail(
        &[
            "wake",
            "train",
            "silent",
            path(&audio("keywords/speech_commands_silence_1000ms.wav")),
        ],
        3,
        "no speech",
    );
    fail(&["wake", "remove", "nothing"], 2, "not trained");
    // Nothing trained: listen says how to make a word.
    let mic = audio("commands/rhasspy3_set_timer.wav");
    fail(
        &["listen", "--fast", "--input-file", path(&mic)],
        2,
        "serena wake train",
    );
    fail(
        &[
            "listen",
            "--fast",
            "--wake-word",
            "jarvis",
            "--input-file",
            path(&mic),
        ],
        2,
        "jarvis",
    );

    trained(&env, &["porcupine", "--from-text", "porcupine"]);
    fail(
        &["wake", "train", "porcupine", "--from-text", "porcupine"],
        2,
        "--force",
    );
    // A corrupt word file: listed as unusable, refused by listen with exit 4; the others
    // still listed; removing it works.
    let broken = env.data().join("wakewords/broken.rpw");
    std::fs::write(&broken, [0xa5u8; 64]).expect("write");
    let list = ok(&env, &["wake", "list"]);
    assert!(
        list.contains("broken") && list.contains("UNUSABLE"),
        "{list}"
    );
    assert!(list.contains("porcupine"), "{list}");
    fail(
        &["listen", "--fast", "--input-file", path(&mic)],
        4,
        "corrupt",
    );
    ok(&env, &["wake", "remove", "broken"]);
    assert!(!broken.exists());
}

/// A microphone recording: clips and silences, 16 kHz mono.
fn recording(env: &Env, parts: &[(&str, f32)]) -> PathBuf {
    let mut input = Vec::new();
    for (clip, silence_after) in parts {
        if !clip.is_empty() {
            input
                .extend(serena::audio::decode::decode_file_16k_mono(&audio(clip)).expect("decode"));
        }
        input.extend(vec![0.0f32; (silence_after * 16_000.0) as usize]);
    }
    let mic = env.path().join("mic.wav");
    serena::audio::playback::write_wav(&mic, &input, 16_000).expect("write input");
    mic
}

#[test]
fn listen_answers_after_the_wake_word_and_in_the_follow_up_window_only() {
    wake_word_session("mains", "performance");
}

#[test]
fn in_saver_the_frugal_wake_word_hears_the_same() {
    wake_word_session("battery:15:discharging", "saver");
}

/// A command without the wake word (ignored), the wake word said by another speaker, a
/// command, a follow-up within the window (answered), and one long after it (ignored),
/// under the power source `power` (profile `profile`).
fn wake_word_session(power: &str, profile: &str) {
    let env = Env::new();
    trained(
        &env,
        &[
            "porcupine",
            path(&audio("wakeword/porcupine_porcupine.wav")),
        ],
    );
    // A command without the wake word (ignored), the wake word, a command, a follow-up
    // within the window (answered), and one long after it (ignored).
    let mic = recording(
        &env,
        &[
            ("", 1.0),
            ("commands/rhasspy3_whats_the_date_today.wav", 3.0),
            ("wakeword/rhasspy3_porcupine.wav", 0.3),
            ("commands/rhasspy3_set_timer.wav", 3.0),
            ("commands/rhasspy3_what_time_is_it.wav", 8.0),
            ("commands/rhasspy3_whats_the_date_today.wav", 2.0),
        ],
    );
    let replies = env.path().join("replies.wav");
    let whisper = model("whisper/ggml-tiny.en.bin");
    let run = env
        .serena()
        .env("SERENA_POWER", power)
        .args(["listen", "--fast", "--events", "json", "-m", path(&whisper)])
        .args(["--input-file", path(&mic), "--output-file", path(&replies)])
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["partial"] != true)
            .collect()
    };
    assert_eq!(of("profile")[0]["profile"], profile, "{out}");
    assert_eq!(of("listening")[0]["wake_words"][0], "porcupine", "{out}");
    let wakes = of("wake");
    assert_eq!(wakes.len(), 1, "{out}");
    assert_eq!(wakes[0]["name"], "porcupine");
    // The wake word ends inside its clip (which starts at 4.x s, after 1 s + the date clip
    // + 3 s), not where the detector reported it.
    let wake_at = wakes[0]["at_s"].as_f64().expect("at_s");
    assert!((4.0..8.5).contains(&wake_at), "wake at {wake_at}: {out}");
    let transcripts: Vec<String> = of("transcript")
        .iter()
        .map(|e| words(e["text"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        transcripts,
        ["set a timer for 10 minutes", "what time is it"],
        "{out}"
    );
    let replies_ev = of("reply");
    assert_eq!(replies_ev[0]["intent"], "HassStartTimer", "{out}");
    assert_eq!(replies_ev[1]["intent"], "HassGetCurrentTime", "{out}");
    let windows: Vec<&str> = of("window")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(windows, ["command", "follow_up", "follow_up"], "{out}");
    // Five utterances were heard; only two reached whisper.
    assert!(of("speech_end").len() >= 5, "{out}");
}
