//! `serena listen --no-wake --input-file`: a recording played as if it were the microphone
//! goes through VAD, end of speech, whisper, the router and speech synthesis; the spoken
//! replies, transcribed back with the same model, confirm what was asked.

use serde_json::Value;

use crate::common::{audio, words, Env};

fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (seconds * 16_000.0) as usize]
}

/// A microphone recording made of `parts` (fixture clips, seconds of silence, or speech
/// synthesized by espeak-ng), written to `mic.wav` in the test's directory.
pub(crate) enum Part<'a> {
    Clip(&'a str),
    Silence(f32),
    Say(&'a str),
}

pub(crate) fn recording(env: &Env, parts: &[Part<'_>]) -> std::path::PathBuf {
    let mut input = Vec::new();
    for part in parts {
        match part {
            Part::Clip(clip) => input
                .extend(serena::audio::decode::decode_file_16k_mono(&audio(clip)).expect("decode")),
            Part::Silence(s) => input.extend(silence(*s)),
            Part::Say(text) => {
                use serena::tts::Synthesizer;
                let speech = serena::tts::Espeak::new("en-us", 160)
                    .synthesize(text)
                    .expect("espeak-ng (apt install espeak-ng)");
                let mut r = serena::audio::resample::Resampler::new(speech.sample_rate, 16_000)
                    .expect("resampler");
                r.process(&speech.samples, &mut input);
                r.flush(&mut input);
            }
        }
    }
    let mic = env.path().join("mic.wav");
    serena::audio::playback::write_wav(&mic, &input, 16_000).expect("write input");
    mic
}

/// `serena listen --fast --events json` over `mic` with `extra` flags; the events and the
/// path of the speaker's recording.
fn listen(
    env: &Env,
    mic: &std::path::Path,
    extra: &[&str],
) -> (Vec<Value>, String, std::path::PathBuf) {
    let replies = env.path().join("replies.wav");
    let mut args = vec![
        "listen",
        "--no-wake",
        "--fast",
        "--events",
        "json",
        "--input-file",
        mic.to_str().expect("utf-8"),
        "--output-file",
        replies.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let out = crate::common::ok(env, &args);
    let events = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (events, out, replies)
}

/// The events of `kind` (final transcripts only: partial ones have `"partial": true`).
pub(crate) fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["partial"] != true)
        .collect()
}

#[test]
fn in_saver_there_are_no_partials_and_noise_is_left_to_the_energy_vad() {
    let env = Env::new();
    let mic = recording(
        &env,
        &[
            Part::Silence(0.5),
            Part::Clip("commands/rhasspy3_set_timer.wav"),
            Part::Silence(1.0),
        ],
    );
    let replies = env.path().join("replies.wav");
    let out = env
        .serena()
        .env("SERENA_POWER", "battery:15:discharging")
        .args([
            "listen",
            "--no-wake",
            "--fast",
            "--events",
            "json",
            "--input-file",
        ])
        .arg(&mic)
        .arg("--output-file")
        .arg(&replies)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(of(&events, "profile")[0]["profile"], "saver", "{text}");
    assert!(
        !events.iter().any(|e| e["partial"] == true),
        "no partial transcripts in saver: {text}"
    );
    assert_eq!(
        of(&events, "reply")[0]["intent"],
        "HassStartTimer",
        "{text}"
    );
}

#[test]
fn silero_drops_a_burst_of_noise_the_energy_vad_let_through() {
    let env = Env::new();
    // A loud 0.4 s burst of white noise, then a command.
    let mut seed = 7u32;
    let noise: Vec<f32> = (0..6_400)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.6
        })
        .collect();
    let burst = env.path().join("burst.wav");
    serena::audio::playback::write_wav(&burst, &noise, 16_000).expect("write");
    let mut input = vec![0.0f32; 8_000];
    input.extend(serena::audio::decode::decode_file_16k_mono(&burst).expect("decode"));
    input.extend(vec![0.0f32; 24_000]);
    input.extend(
        serena::audio::decode::decode_file_16k_mono(&audio(
            "commands/rhasspy3_what_time_is_it.wav",
        ))
        .expect("decode"),
    );
    input.extend(vec![0.0f32; 16_000]);
    let mic = env.path().join("mic.wav");
    serena::audio::playback::write_wav(&mic, &input, 16_000).expect("write");
    let (events, out, _) = listen(&env, &mic, &["--vad", "silero"]);
    assert_eq!(of(&events, "speech_end").len(), 2, "{out}");
    assert_eq!(of(&events, "rejected").len(), 1, "the noise: {out}");
    let finals = of(&events, "transcript");
    assert_eq!(finals.len(), 1, "{out}");
    assert_eq!(
        words(finals[0]["text"].as_str().unwrap_or_default()),
        "what time is it"
    );
    // The energy VAD alone sends the noise to whisper too.
    let (events, out, _) = listen(&env, &mic, &["--vad", "energy"]);
    assert!(of(&events, "rejected").is_empty(), "{out}");
    assert_eq!(
        of(&events, "reply").last().expect("reply")["intent"],
        "HassGetCurrentTime"
    );
}

#[test]
fn spoken_commands_from_a_file_are_answered_out_loud() {
    let env = Env::new();
    let mic = recording(
        &env,
        &[
            Part::Silence(1.0),
            Part::Clip("commands/rhasspy3_set_timer.wav"),
            Part::Silence(4.0),
            Part::Clip("commands/rhasspy3_whats_the_date_today.wav"),
            Part::Silence(1.0),
        ],
    );
    let (events, out, replies) = listen(&env, &mic, &[]);
    assert_eq!(of(&events, "listening").len(), 1);
    assert_eq!(of(&events, "speech_start").len(), 2, "{out}");
    assert_eq!(of(&events, "speech_end").len(), 2, "{out}");
    let transcripts: Vec<String> = of(&events, "transcript")
        .iter()
        .map(|e| words(e["text"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(transcripts.len(), 2, "{out}");
    assert_eq!(transcripts[0], "set a timer for 10 minutes", "{out}");
    assert!(transcripts[1].ends_with("the date today"), "{out}");
    // On mains (the performance profile): partial transcripts while the 3 s command goes
    // on, before its final one; Silero checks each utterance.
    assert_eq!(of(&events, "profile")[0]["profile"], "performance", "{out}");
    let partials: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == "transcript" && e["partial"] == true)
        .map(|(i, _)| i)
        .collect();
    let first_final = events
        .iter()
        .position(|e| e["event"] == "transcript" && e["partial"] == false)
        .expect("final transcript");
    assert!(
        partials.first().is_some_and(|&i| i < first_final),
        "a partial transcript comes before the first final one: {out}"
    );
    let replies_ev = of(&events, "reply");
    assert_eq!(replies_ev[0]["intent"], "HassStartTimer");
    assert_eq!(replies_ev[0]["slots"]["minutes"], 10);
    assert_eq!(replies_ev[1]["intent"], "HassGetCurrentDate");
    // Speech start is where the first clip's speech is (after the second of silence).
    let start = of(&events, "speech_start")[0]["at_s"]
        .as_f64()
        .expect("at_s");
    assert!((1.0..2.5).contains(&start), "speech start {start}");
    // Every event carries a timestamp; stages carry their latency; both replies were
    // spoken to the end, nothing was interrupted.
    assert!(events.iter().all(|e| e["t_ms"].is_u64()));
    assert!(of(&events, "transcript")
        .iter()
        .all(|e| e["latency_ms"].is_u64()));
    assert_eq!(of(&events, "speaking_start").len(), 2, "{out}");
    assert!(of(&events, "speaking_start")
        .iter()
        .all(|e| e["first_audio_ms"].is_u64()));
    let ends = of(&events, "speaking_end");
    assert_eq!(ends.len(), 2, "{out}");
    assert!(ends.iter().all(|e| e["interrupted"] == false), "{out}");
    assert!(of(&events, "barge_in").is_empty(), "{out}");

    // What Serena said, heard back by the same model.
    // The recording is the speaker's timeline, silence included: VAD keeps whisper from
    // losing the replies in it.
    let said = crate::common::ok(
        &env,
        &["transcribe", "--vad", replies.to_str().expect("utf-8")],
    );
    // The audio is espeak-ng's own rendering of the reply text; tiny.en hears its "Timer
    // set for" as "Time for" or "Time is at" depending on what surrounds it, so the
    // confirmation checked is the duration (the reply event says the whole sentence).
    assert_eq!(replies_ev[0]["text"], "Timer set for 10 minutes", "{out}");
    assert!(
        words(&said).contains("10 minutes"),
        "spoken replies: {said}"
    );
    // The timer really runs.
    let timers = crate::common::ok(&env, &["timers", "--json"]);
    assert!(timers.contains("600"), "{timers}");
}

#[test]
fn speech_during_a_reply_stops_it_and_a_stop_word_gets_no_answer() {
    let env = Env::new();
    // The timer's reply takes about two seconds to say; the question comes while it plays.
    // Then "stop" interrupts the date's reply.
    let mic = recording(
        &env,
        &[
            Part::Silence(0.5),
            Part::Clip("commands/rhasspy3_set_timer.wav"),
            Part::Say("what is the date today"),
            Part::Silence(0.8),
            Part::Say("stop"),
            Part::Silence(3.0),
        ],
    );
    let (events, out, replies) = listen(&env, &mic, &[]);
    let barge = of(&events, "barge_in");
    assert_eq!(barge.len(), 2, "{out}");
    assert!(barge.iter().all(|e| e["by"] == "speech"), "{out}");
    let ends = of(&events, "speaking_end");
    assert_eq!(ends.len(), 2, "{out}");
    assert!(ends.iter().all(|e| e["interrupted"] == true), "{out}");
    // Two replies (the timer, the date); "stop" itself is not answered.
    assert_eq!(of(&events, "reply").len(), 2, "{out}");
    let stopped = of(&events, "stopped");
    assert_eq!(stopped.len(), 1, "{out}");
    assert_eq!(
        words(stopped[0]["text"].as_str().unwrap_or_default()),
        "stop"
    );
    // The speaker's recording holds only the beginnings of the replies.
    let spoken = hound::WavReader::open(&replies).expect("wav");
    let voiced: usize = spoken
        .into_samples::<i16>()
        .map_while(Result::ok)
        .filter(|s| s.unsigned_abs() > 300)
        .count();
    let voiced_s = voiced as f64 / 22_050.0;
    assert!(
        voiced_s < 2.0,
        "{voiced_s:.2} s of the replies were spoken: {out}"
    );

    // With barge-in off, speech does not interrupt: the timer's reply plays to the end;
    // only the stop word stops a reply.
    let (events, out, _) = listen(&env, &mic, &["--barge-in", "off"]);
    assert!(
        of(&events, "barge_in")
            .iter()
            .all(|e| e["by"] == "stop_word"),
        "{out}"
    );
    assert_eq!(
        of(&events, "speaking_end")[0]["interrupted"],
        false,
        "{out}"
    );
}

#[test]
fn an_utterance_longer_than_the_limit_is_cut() {
    let env = Env::new();
    let mic = recording(
        &env,
        &[
            Part::Silence(0.5),
            Part::Clip("commands/rhasspy3_set_timer.wav"),
            Part::Silence(1.0),
        ],
    );
    let (events, out, _) = listen(&env, &mic, &["--max-utterance-s", "1"]);
    let ends = of(&events, "speech_end");
    assert!(!ends.is_empty(), "{out}");
    assert_eq!(ends[0]["reason"], "max_length", "{out}");
    let audio_s = ends[0]["audio_s"].as_f64().expect("audio_s");
    assert!(audio_s <= 1.35, "{audio_s}");
}

#[test]
fn listen_without_a_trained_wake_word_says_how_to_make_one() {
    let env = Env::new();
    let out = env.serena().args(["listen"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("serena wake train"), "{stderr}");
    assert!(stderr.contains("--no-wake"), "{stderr}");
    let out = env
        .serena()
        .args(["listen", "--no-wake", "--fast"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "--fast needs a file");
}
