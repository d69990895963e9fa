//! `serena ask` and `serena route` end to end: real speech through the real tiny.en model,
//! the router, the skills and the store.

use predicates::prelude::*;

use crate::common::{audio, Env};

fn ask_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let out = env
        .serena()
        .args(["ask", "--json"])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

#[test]
fn a_spoken_timer_command_sets_a_ten_minute_timer_in_the_store() {
    let env = Env::new();
    let audio_path = audio("commands/rhasspy3_set_timer.wav");
    let v = ask_json(&env, &["--audio", audio_path.to_str().expect("utf-8 path")]);
    assert_eq!(v["transcript"], "Set a timer for 10 minutes.");
    assert_eq!(v["intent"], "HassStartTimer");
    assert_eq!(v["slots"]["minutes"], 10);
    assert_eq!(v["source"], "router");
    assert_eq!(v["reply"], "Timer set for 10 minutes");
    let timers = env
        .serena()
        .args(["timers", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let timers: serde_json::Value = serde_json::from_slice(&timers).expect("timers json");
    let list = timers.as_array().expect("array of timers");
    assert_eq!(list.len(), 1, "{timers:#}");
    assert_eq!(list[0]["duration_ms"], 600_000);
}

#[test]
fn spoken_time_and_date_questions_get_their_intents() {
    let env = Env::new();
    for (clip, intent) in [
        (
            "commands/rhasspy3_what_time_is_it.wav",
            "HassGetCurrentTime",
        ),
        (
            "commands/rhasspy3_whats_the_date_today.wav",
            "HassGetCurrentDate",
        ),
    ] {
        let path = audio(clip);
        let v = ask_json(&env, &["--audio", path.to_str().expect("utf-8")]);
        assert_eq!(v["intent"], intent, "{clip}: {v:#}");
        assert!(v["reply"].as_str().is_some_and(|r| !r.is_empty()));
    }
}

#[test]
fn speech_that_is_not_a_command_is_not_understood() {
    let env = Env::new();
    for clip in [
        "commands/rhasspy3_this_is_a_test.wav",
        "commands/rhino_test_out_of_context.wav",
    ] {
        let path = audio(clip);
        let v = ask_json(&env, &["--audio", path.to_str().expect("utf-8")]);
        assert!(v["intent"].is_null(), "{clip}: {v:#}");
        // No language model is installed in the fixtures' default config: the fallback
        // says so and how to fix it.
        assert_eq!(v["source"], "fallback", "{clip}: {v:#}");
        assert!(
            v["reply"]
                .as_str()
                .is_some_and(|r| r.contains("serena models pull")),
            "{v:#}"
        );
    }
}

#[test]
fn route_prints_one_json_object_per_sentence_without_side_effects() {
    let env = Env::new();
    let out = env
        .serena()
        .arg("route")
        .write_stdin("set a timer for five and a half minutes\nwhat time does the store open\n\nadd milk to my shopping list\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["intent"], "HassStartTimer");
    assert_eq!(lines[0]["slots"]["minutes"], 5);
    assert_eq!(lines[0]["slots"]["seconds"], 30);
    assert!(lines[1]["intent"].is_null());
    assert_eq!(lines[2]["intent"], "HassShoppingListAddItem");
    assert_eq!(lines[2]["slots"]["item"], "milk");
    // Nothing was stored.
    assert!(!env.data().join("store").exists());
}

#[test]
fn typed_commands_use_lists_and_notes() {
    let env = Env::new();
    env.serena()
        .args(["ask", "add", "apples", "to", "my", "shopping", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Added apples"));
    env.serena()
        .args(["ask", "remember that the keys are in the drawer"])
        .assert()
        .success();
    env.serena()
        .args(["ask", "what did I ask you to remember"])
        .assert()
        .success()
        .stdout(predicate::str::contains("the keys are in the drawer"));
    env.serena()
        .args(["ask", "add a meeting to my calendar"])
        .assert()
        .success()
        .stdout(predicate::str::contains("don't have a calendar list"));
}

#[test]
fn the_users_sentence_files_extend_the_router_and_errors_name_the_file() {
    let env = Env::new();
    let dir = env.path().join("sentences");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("serena_mine.yaml"),
        "language: en\nintents:\n  SerenaHelp:\n    data:\n      - sentences:\n          - \"what are your powers\"\n",
    )
    .expect("write");
    let out = env
        .serena()
        .args(["route", "what are your powers", "what time is it"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("\"SerenaHelp\""), "{text}");
    assert!(
        lines[1].contains("\"HassGetCurrentTime\""),
        "built-ins still work: {text}"
    );
    std::fs::write(
        dir.join("broken.yaml"),
        "language: en\nintents:\n  NoSuchIntent:\n    data: []\n",
    )
    .expect("write");
    env.serena()
        .args(["route", "hello"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("broken.yaml").and(predicate::str::contains("NoSuchIntent")),
        );
}

/// Short commands use an encoder window sized to them (much faster than Whisper's 30 s),
/// and still give the full window's words; a looping fast pass falls back to the full one.
#[test]
fn spoken_commands_use_a_window_sized_to_them_with_the_same_words() {
    use serena::stt::{command, DecodeOptions, WhisperEngine};
    let path = crate::common::model("whisper/ggml-tiny.en.bin");
    let resolved = serena::models::Resolved {
        format: serena::models::format::inspect(&path).expect("model"),
        path,
        name: None,
    };
    let engine = WhisperEngine::load(&resolved).expect("load tiny.en");
    let opts = DecodeOptions {
        language: Some("en".into()),
        threads: 2,
        beam_size: 1,
        ..DecodeOptions::default()
    };
    let mut reduced = 0;
    for clip in [
        "commands/rhasspy3_set_timer.wav",
        "commands/rhasspy3_what_time_is_it.wav",
        "commands/rhasspy3_whats_the_date_today.wav",
        "commands/rhasspy3_this_is_a_test.wav",
    ] {
        let samples = serena::audio::decode::decode_file_16k_mono(&crate::common::audio(clip))
            .expect("decode");
        let fast = command::transcribe_command(&engine, &samples, &opts).expect("command");
        let (full, _) = engine.transcribe(&samples, 0.0, &opts).expect("full");
        let full: Vec<&str> = full.iter().map(|s| s.text.trim()).collect();
        assert_eq!(
            crate::common::words(&fast.text),
            crate::common::words(&full.join(" ")),
            "{clip}: {fast:?}"
        );
        if fast.audio_ctx > 0 {
            reduced += 1;
            assert!(fast.audio_ctx < 1500);
        } else {
            assert!(fast.fell_back && fast.reason.is_some(), "{clip}: {fast:?}");
        }
    }
    assert!(reduced >= 3, "most commands must take the fast path");
}

/// The live pipeline's end-of-speech stage on a real recording: the energy VAD and the
/// endpointer cut one utterance out of the clip, and whisper hears the whole command in it.
#[test]
fn the_endpointer_cuts_a_real_command_whole() {
    use serena::pipeline::endpoint::{
        EndReason, EndpointConfig, EndpointEvent, Endpointer, EnergyVad,
    };
    use serena::stt::{command, DecodeOptions, WhisperEngine};
    let samples = serena::audio::decode::decode_file_16k_mono(&crate::common::audio(
        "commands/rhasspy3_set_timer.wav",
    ))
    .expect("decode");
    // Half a second of silence around it, as a microphone would hear.
    let mut input = vec![0.0f32; 8000];
    input.extend(&samples);
    input.extend(vec![0.0f32; 16000]);
    let mut vad = EnergyVad::default();
    let mut ep = Endpointer::new(EndpointConfig::default());
    let mut utterances = Vec::new();
    for frame in input.chunks(480) {
        let speech = vad.is_speech(frame);
        for e in ep.push(frame, speech) {
            if let EndpointEvent::SpeechEnd { audio, reason, .. } = e {
                assert_eq!(reason, EndReason::Silence);
                utterances.push(audio);
            }
        }
    }
    assert!(ep.finish_input().is_none());
    assert_eq!(utterances.len(), 1, "one command, one utterance");
    let path = crate::common::model("whisper/ggml-tiny.en.bin");
    let resolved = serena::models::Resolved {
        format: serena::models::format::inspect(&path).expect("model"),
        path,
        name: None,
    };
    let engine = WhisperEngine::load(&resolved).expect("load");
    let heard = command::transcribe_command(
        &engine,
        &utterances[0],
        &DecodeOptions {
            language: Some("en".into()),
            threads: 2,
            beam_size: 1,
            ..DecodeOptions::default()
        },
    )
    .expect("transcribe");
    assert_eq!(
        crate::common::words(&heard.text),
        "set a timer for 10 minutes"
    );
}
