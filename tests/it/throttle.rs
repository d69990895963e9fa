//! The long-running modes spend by the power state and give memory back: whisper and the
//! language model load on first use, unload after `power.idle_unload_seconds` or when
//! available memory falls below `power.min_available_mb`, and load again (measured) on the
//! next use; a profile change between utterances switches the engines' settings for the
//! next one, never in the middle of one; a battery that runs down while `listen` waits
//! suspends always-on listening with a spoken notice; a language model's reply is spoken
//! sentence by sentence while it is generated.
//!
//! The idle and memory tests play their recording in real time: the memory manager runs
//! on the wall clock, as it does for a live microphone.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{model, models, Env};
use crate::listen::{of, recording, Part};

const TIME: &str = "commands/rhasspy3_what_time_is_it.wav";

/// `serena listen --no-wake --events json` over `mic` (real time unless `--fast` is in
/// `extra`): the events, as JSON values, and the raw output for messages.
fn listen(env: &Env, mic: &Path, power: &str, extra: &[&str]) -> (Vec<Value>, String) {
    let replies = env.path().join("replies.wav");
    let out = env
        .serena()
        .env("SERENA_POWER", power)
        .args(["listen", "--no-wake", "--events", "json", "--input-file"])
        .arg(mic)
        .arg("--output-file")
        .arg(&replies)
        .args(extra)
        .output()
        .expect("run serena listen");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "listen failed ({:?}): {}\n{text}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (events, text)
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["partial"] != true)
        .filter_map(|e| e["event"].as_str().map(String::from))
        .collect()
}

/// Two time questions 5 s apart.
fn two_questions(env: &Env) -> PathBuf {
    recording(
        env,
        &[
            Part::Silence(0.3),
            Part::Clip(TIME),
            Part::Silence(5.0),
            Part::Clip(TIME),
            Part::Silence(0.8),
        ],
    )
}

#[test]
fn an_idle_whisper_is_unloaded_and_the_next_command_reloads_it() {
    let env = Env::new();
    let mic = two_questions(&env);
    let (events, text) = listen(
        &env,
        &mic,
        "mains",
        &["--set", "power.idle_unload_seconds=2"],
    );
    let loaded = of(&events, "model_loaded");
    assert_eq!(loaded.len(), 2, "loaded at start and once more: {text}");
    assert_eq!(loaded[0]["reload"], false, "{text}");
    assert_eq!(loaded[1]["reload"], true, "{text}");
    assert_eq!(loaded[1]["model"], "tiny.en", "{text}");
    assert!(loaded[1]["load_ms"].as_u64().is_some(), "{text}");
    let unloaded = of(&events, "model_unloaded");
    assert_eq!(unloaded.len(), 1, "{text}");
    assert_eq!(unloaded[0]["slot"], "stt");
    assert_eq!(unloaded[0]["reason"], "idle");
    let idle = unloaded[0]["value"].as_f64().expect("idle seconds");
    assert!((2.0..3.5).contains(&idle), "idle {idle} s: {text}");
    // Unloaded between the first reply and the second question, reloaded for it; both are
    // answered.
    let order = kinds(&events);
    let pos = |kind: &str, nth: usize| {
        order
            .iter()
            .enumerate()
            .filter(|(_, k)| *k == kind)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {kind} #{nth}: {text}"))
    };
    assert!(pos("reply", 0) < pos("model_unloaded", 0), "{text}");
    assert!(pos("model_unloaded", 0) < pos("model_loaded", 1), "{text}");
    assert!(pos("model_loaded", 1) < pos("reply", 1), "{text}");
    let replies = of(&events, "reply");
    assert_eq!(replies.len(), 2, "{text}");
    assert!(replies.iter().all(|r| r["intent"] == "HassGetCurrentTime"));

    // The reload time is kept with the answer: `serena status` shows it.
    let status = crate::common::ok(&env, &["status", "--json"]);
    let status: Value = serde_json::from_str(&status).expect("status json");
    let stages = &status["last_hour"]["stages"];
    assert_eq!(stages["stt_load_ms"]["count"], 1, "{status}");
    assert_eq!(stages["stt_ms"]["count"], 2, "{status}");
}

#[test]
fn whisper_is_unloaded_when_memory_runs_low_and_reloaded_when_needed() {
    let env = Env::new();
    let mic = two_questions(&env);
    // No machine has 4 TB available: every check finds memory low.
    let (events, text) = listen(
        &env,
        &mic,
        "mains",
        &[
            "--set",
            "power.min_available_mb=4000000",
            "--set",
            "power.idle_unload_seconds=0",
        ],
    );
    let unloaded = of(&events, "model_unloaded");
    assert!(!unloaded.is_empty(), "{text}");
    assert!(
        unloaded.iter().all(|u| u["reason"] == "low_memory"),
        "{text}"
    );
    let available = unloaded[0]["value"].as_f64().expect("MiB available");
    assert!(available > 0.0 && available < 4_000_000.0, "{text}");
    let loaded = of(&events, "model_loaded");
    assert!(loaded.len() >= 2 && loaded[1]["reload"] == true, "{text}");
    let replies = of(&events, "reply");
    assert_eq!(replies.len(), 2, "both still answered: {text}");
}

/// A model directory where `base.en` is a copy of tiny.en (the fixtures have no trained
/// base model): the performance profile runs "base.en", saver and below tiny.en.
fn models_with_base(env: &Env) -> PathBuf {
    let dir = env.path().join("models");
    std::fs::create_dir_all(dir.join("whisper")).expect("models dir");
    std::fs::create_dir_all(dir.join("vad")).expect("models dir");
    let tiny = model("whisper/ggml-tiny.en.bin");
    std::fs::copy(&tiny, dir.join("whisper/ggml-tiny.en.bin")).expect("copy tiny.en");
    std::fs::copy(&tiny, dir.join("whisper/ggml-base.en.bin")).expect("copy as base.en");
    for entry in std::fs::read_dir(models().join("vad")).expect("fixture vad models") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join("vad").join(entry.file_name())).expect("copy vad");
    }
    dir
}

#[test]
fn a_profile_change_between_utterances_switches_the_model_for_the_next_one() {
    let env = Env::new();
    let dir = models_with_base(&env);
    let mic = recording(
        &env,
        &[
            Part::Silence(0.3),
            Part::Clip(TIME),
            Part::Silence(1.0),
            Part::Say("low power mode"),
            Part::Silence(1.0),
            Part::Clip(TIME),
            Part::Silence(0.8),
        ],
    );
    let replies = env.path().join("replies.wav");
    let out = env
        .serena()
        .env("SERENA_MODELS", &dir)
        .args(["--set", "stt.model=base.en"])
        .args(["listen", "--no-wake", "--fast", "--events", "json"])
        .arg("--input-file")
        .arg(&mic)
        .arg("--output-file")
        .arg(&replies)
        .output()
        .expect("run serena listen");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let replies = of(&events, "reply");
    let intents: Vec<&Value> = replies.iter().map(|r| &r["intent"]).collect();
    assert_eq!(
        intents,
        [
            "HassGetCurrentTime",
            "SerenaSetPowerProfile",
            "HassGetCurrentTime"
        ],
        "{text}"
    );
    let loaded: Vec<&Value> = of(&events, "model_loaded")
        .iter()
        .map(|e| &e["model"])
        .collect();
    assert_eq!(loaded, ["base.en", "tiny.en"], "{text}");
    let profiles: Vec<&Value> = of(&events, "profile")
        .iter()
        .map(|e| &e["profile"])
        .collect();
    assert_eq!(profiles, ["performance", "saver"], "{text}");
    // The switch comes after the reply that asked for it and before the next utterance
    // starts; every utterance is transcribed whole, by one model.
    let order = kinds(&events);
    let saver_at = order
        .iter()
        .rposition(|k| k == "profile")
        .expect("profile event");
    let second_reply = order
        .iter()
        .enumerate()
        .filter(|(_, k)| *k == "reply")
        .nth(1)
        .map(|(i, _)| i)
        .expect("second reply");
    let third_start = order
        .iter()
        .enumerate()
        .filter(|(_, k)| *k == "speech_start")
        .nth(2)
        .map(|(i, _)| i)
        .expect("third utterance");
    assert!(second_reply < saver_at && saver_at < third_start, "{text}");
    let transcripts = of(&events, "transcript");
    assert_eq!(transcripts.len(), 3, "{text}");
    assert_eq!(
        crate::common::words(transcripts[2]["text"].as_str().unwrap_or_default()),
        "what time is it",
        "{text}"
    );
}

#[test]
fn a_battery_that_runs_down_while_listening_suspends_it_with_a_spoken_notice() {
    let env = Env::new();
    let power = env.path().join("power");
    std::fs::write(&power, "battery:50:discharging").expect("write power file");
    let mic = recording(
        &env,
        &[
            Part::Silence(0.3),
            Part::Clip(TIME),
            Part::Silence(6.0),
            Part::Clip(TIME),
            Part::Silence(0.8),
        ],
    );
    let replies = env.path().join("replies.wav");
    let mut child = env
        .serena_std()
        .env("SERENA_POWER", format!("file:{}", power.display()))
        .args(["--set", "power.poll_seconds=1"])
        .args(["listen", "--no-wake", "--events", "json", "--input-file"])
        .arg(&mic)
        .arg("--output-file")
        .arg(&replies)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serena listen");
    let stdout = child.stdout.take().expect("stdout");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut events = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("read events");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["event"] == "reply" && !events.iter().any(|e: &Value| e["event"] == "reply") {
            // The battery drops to 5 % after the first answer.
            std::fs::write(&power, "battery:5:discharging").expect("rewrite power file");
        }
        events.push(v);
        assert!(Instant::now() < deadline, "listen ran past its input");
    }
    let status = child.wait().expect("wait");
    let text: Vec<String> = events.iter().map(Value::to_string).collect();
    let text = text.join("\n");
    assert!(status.success(), "{status}: {text}");
    let profiles = of(&events, "profile");
    assert_eq!(profiles[0]["profile"], "balanced", "{text}");
    let last = profiles.last().expect("profile events");
    assert_eq!(last["profile"], "critical", "{text}");
    assert_eq!(last["always_listening"], false, "{text}");
    let notices = of(&events, "notice");
    assert_eq!(notices.len(), 1, "{text}");
    assert!(
        notices[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("battery")),
        "{text}"
    );
    // The second question is heard by nothing: not transcribed, not answered.
    assert_eq!(of(&events, "reply").len(), 1, "{text}");
    assert_eq!(of(&events, "transcript").len(), 1, "{text}");
    // The notice was spoken: it is in the speaker's recording.
    let heard = crate::common::ok(
        &env,
        &["transcribe", "--vad", replies.to_str().expect("utf-8")],
    );
    assert!(
        crate::common::words(&heard).contains("almost empty"),
        "the notice is in the speaker's recording: {heard:?}"
    );
}

#[test]
fn a_language_model_reply_is_spoken_while_it_is_generated() {
    let env = Env::new();
    let mic = recording(
        &env,
        &[
            Part::Silence(0.3),
            Part::Say("tell me about the ocean"),
            Part::Silence(0.8),
        ],
    );
    let (events, text) = listen(
        &env,
        &mic,
        "mains",
        &[
            "--fast",
            "--set",
            &format!(
                "llm.model={}",
                model("llm/llama-2-tiny-random.gguf").display()
            ),
            "--set",
            // Enough gibberish for the splitter to cut it into several sentences.
            "llm.max_tokens=160",
            "--set",
            "llm.temperature=0",
            "--set",
            "tools.choice=none",
        ],
    );
    let replies = of(&events, "reply");
    assert_eq!(replies.len(), 1, "{text}");
    assert_eq!(replies[0]["source"], "llm", "{text}");
    assert!(
        replies[0]["text"].as_str().map_or(0, str::len) > 240,
        "a reply of several sentences: {text}"
    );
    let order = kinds(&events);
    let speaking = order
        .iter()
        .position(|k| k == "speaking_start")
        .expect("spoken");
    let reply = order.iter().position(|k| k == "reply").expect("reply");
    assert!(
        speaking < reply,
        "the first sentence plays before the reply is complete: {text}"
    );
    assert_eq!(of(&events, "speaking_start").len(), 1, "{text}");
}
