//! `serena listen --no-wake --input-file`: a recording played as if it were the microphone
//! goes through VAD, end of speech, whisper, the router and speech synthesis; the spoken
//! replies, transcribed back with the same model, confirm what was asked.

use serde_json::Value;

use crate::common::{audio, words, Env};

fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (seconds * 16_000.0) as usize]
}

#[test]
fn spoken_commands_from_a_file_are_answered_out_loud() {
    let env = Env::new();
    let mut input = silence(1.0);
    for clip in [
        "commands/rhasspy3_set_timer.wav",
        "commands/rhasspy3_whats_the_date_today.wav",
    ] {
        input.extend(serena::audio::decode::decode_file_16k_mono(&audio(clip)).expect("decode"));
        input.extend(silence(1.0));
    }
    let mic = env.path().join("mic.wav");
    serena::audio::playback::write_wav(&mic, &input, 16_000).expect("write input");
    let replies = env.path().join("replies.wav");
    let out = crate::common::ok(
        &env,
        &[
            "listen",
            "--no-wake",
            "--fast",
            "--events",
            "json",
            "--input-file",
            mic.to_str().expect("utf-8"),
            "--output-file",
            replies.to_str().expect("utf-8"),
        ],
    );
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == kind).collect() };
    assert_eq!(of("listening").len(), 1);
    assert_eq!(of("speech_start").len(), 2, "{out}");
    assert_eq!(of("speech_end").len(), 2, "{out}");
    let transcripts: Vec<String> = of("transcript")
        .iter()
        .map(|e| words(e["text"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(transcripts.len(), 2, "{out}");
    assert_eq!(transcripts[0], "set a timer for 10 minutes", "{out}");
    assert!(transcripts[1].ends_with("the date today"), "{out}");
    let replies_ev = of("reply");
    assert_eq!(replies_ev[0]["intent"], "HassStartTimer");
    assert_eq!(replies_ev[0]["slots"]["minutes"], 10);
    assert_eq!(replies_ev[1]["intent"], "HassGetCurrentDate");
    // Speech start is where the first clip's speech is (after the second of silence).
    let start = of("speech_start")[0]["at_s"].as_f64().expect("at_s");
    assert!((1.0..2.5).contains(&start), "speech start {start}");
    // Every event carries a timestamp; stages carry their latency.
    assert!(events.iter().all(|e| e["t_ms"].is_u64()));
    assert!(of("transcript").iter().all(|e| e["latency_ms"].is_u64()));

    // What Serena said, heard back by the same model.
    let said = crate::common::ok(&env, &["transcribe", replies.to_str().expect("utf-8")]);
    assert!(
        words(&said).contains("timer set for 10 minutes"),
        "spoken replies: {said}"
    );
    // The timer really runs.
    let timers = crate::common::ok(&env, &["timers", "--json"]);
    assert!(timers.contains("600"), "{timers}");
}

#[test]
fn listen_says_what_is_not_built_yet() {
    let env = Env::new();
    let out = env.serena().args(["listen"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-wake"));
    let out = env
        .serena()
        .args(["listen", "--no-wake"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--input-file"));
}
