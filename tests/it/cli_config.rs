//! `serena config`: init, show, path, and errors that name the key and the file.

use predicates::prelude::*;

use crate::common::Env;

#[test]
fn init_writes_a_commented_file_that_show_reads_back() {
    let env = Env::new();
    env.serena()
        .args(["config", "path"])
        .assert()
        .success()
        .stdout(predicate::str::contains("config.toml"));
    env.serena().args(["config", "init"]).assert().success();
    let text = std::fs::read_to_string(env.path().join("config.toml")).expect("written");
    assert!(text.contains("# Whisper model"));
    env.serena()
        .args(["config", "init"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--force"));
    env.serena()
        .args(["config", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains("model = \"tiny.en\""));
}

#[test]
fn environment_and_flags_override_the_file() {
    let env = Env::new();
    std::fs::write(
        env.path().join("config.toml"),
        "[stt]\nmodel = \"base.en\"\n",
    )
    .expect("write");
    env.serena()
        .args(["config", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains("model = \"base.en\""));
    env.serena()
        .env("SERENA_STT_MODEL", "small.en")
        .args(["config", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains("model = \"small.en\""));
    env.serena()
        .env("SERENA_STT_MODEL", "small.en")
        .args(["--set", "stt.model=medium.en", "config", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains("model = \"medium.en\""));
}

#[test]
fn bad_configuration_exits_2_naming_key_file_and_allowed_values() {
    let env = Env::new();
    std::fs::write(
        env.path().join("config.toml"),
        "[tts]\nengine = \"festival\"\n",
    )
    .expect("write");
    env.serena()
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("festival")
                .and(predicate::str::contains("config.toml"))
                .and(predicate::str::contains("espeak")),
        );
    std::fs::write(env.path().join("config.toml"), "[stt]\nbeam = 3\n").expect("write");
    env.serena()
        .args(["status"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("beam").and(predicate::str::contains("beam_size")));
    std::fs::remove_file(env.path().join("config.toml")).expect("rm");
    env.serena()
        .env("SERENA_LLM_TEMPERATURE", "hot")
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SERENA_LLM_TEMPERATURE"));
}

#[test]
fn bad_flags_exit_2_and_help_lists_only_working_commands() {
    let env = Env::new();
    env.serena()
        .args(["transcribe", "--beam-size", "x", "a.wav"])
        .assert()
        .code(2);
    env.serena().args(["no-such-command"]).assert().code(2);
    let help = env
        .serena()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8_lossy(&help);
    for cmd in ["transcribe", "models", "config", "status", "devices"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}
