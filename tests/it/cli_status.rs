//! `serena status` and `serena devices`: the truth, with and without (virtual) sound devices.

use crate::common::Env;
use crate::pulse;

fn status_json(cmd: &mut assert_cmd::Command) -> (Option<i32>, serde_json::Value) {
    let out = cmd
        .args(["status", "--json"])
        .output()
        .expect("run serena status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code(), v)
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {v}"))
}

#[test]
fn status_without_a_sound_server_says_audio_is_unusable() {
    let env = Env::new();
    let mut cmd = env.serena();
    // A sound server that does not exist: what a machine with no sound card looks like to ALSA.
    cmd.env(
        "PULSE_SERVER",
        format!("unix:{}/no-such-socket", env.path().display()),
    );
    let (code, v) = status_json(&mut cmd);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(check(&v, "stt_model")["level"], "ok");
    assert_eq!(check(&v, "vad_model")["level"], "ok");
    assert_eq!(check(&v, "data_dir")["level"], "ok");
    assert_eq!(check(&v, "tts")["level"], "ok", "{v:#}");
    for dev in ["audio_input", "audio_output"] {
        assert_eq!(check(&v, dev)["level"], "warn", "{v:#}");
        assert!(check(&v, dev)["fix"]
            .as_str()
            .is_some_and(|f| f.contains("-file")));
    }
    assert_eq!(v["build"]["backends"][0], "cpu");
    assert!(v["build"]["ggml_version"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

#[test]
fn status_with_virtual_devices_finds_them_usable() {
    let _guard = pulse::lock();
    let server = pulse::server();
    let env = Env::new();
    let mut cmd = env.serena();
    cmd.envs(server.env());
    let (code, v) = status_json(&mut cmd);
    assert_eq!(code, Some(0), "{v:#}");
    for dev in ["audio_input", "audio_output"] {
        assert_eq!(check(&v, dev)["level"], "ok", "{v:#}");
    }
}

#[test]
fn status_fails_with_exit_7_and_a_fix_when_the_speech_model_is_missing() {
    let env = Env::new();
    let mut cmd = env.serena();
    cmd.env("SERENA_MODELS", env.path().join("empty"));
    cmd.env("PULSE_SERVER", "unix:/nonexistent");
    let (code, v) = status_json(&mut cmd);
    assert_eq!(code, Some(7));
    assert_eq!(v["ok"], false);
    let stt = check(&v, "stt_model");
    assert_eq!(stt["level"], "fail");
    assert!(stt["fix"]
        .as_str()
        .is_some_and(|f| f.contains("serena models pull tiny.en")));
}

#[test]
fn devices_lists_the_virtual_devices() {
    let _guard = pulse::lock();
    let server = pulse::server();
    let env = Env::new();
    let out = env
        .serena()
        .envs(server.env())
        .args(["devices", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let list = v.as_array().expect("array");
    for dir in ["input", "output"] {
        let default = list
            .iter()
            .find(|d| d["direction"] == dir && d["is_default"] == true)
            .unwrap_or_else(|| panic!("no default {dir} device in {v:#}"));
        assert!(default["default_config"]["Ok"].is_object(), "{default:#}");
    }
}

#[test]
fn status_summarises_the_last_hour_of_answers() {
    let env = crate::common::Env::new();
    crate::common::ok(&env, &["ask", "what time is it"]);
    crate::common::ok(&env, &["ask", "set a timer for 5 minutes"]);
    let out = env
        .serena()
        .args(["status", "--json"])
        .output()
        .expect("status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let last = &v["last_hour"];
    assert_eq!(last["answers"], 2, "{last}");
    assert_eq!(last["by_source"]["router"], 2, "{last}");
    assert_eq!(last["stages"]["route_us"]["count"], 2, "{last}");
    assert!(
        last["stages"]["route_us"]["p95"].as_u64() >= last["stages"]["route_us"]["p50"].as_u64()
    );
}
