//! `serena transcribe` end to end with the real tiny.en model.

use predicates::prelude::*;

use crate::common::{audio, words, Env, JFK};

#[test]
fn transcribes_jfk_to_standard_output() {
    let env = Env::new();
    let out = env
        .serena()
        .args(["transcribe", "-b", "1"])
        .arg(audio("asr/jfk.wav"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(words(&String::from_utf8_lossy(&out)), JFK);
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
