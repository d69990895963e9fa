//! Power profiles as a user meets them: a simulated battery (`SERENA_POWER`) moves the
//! profile with hysteresis across separate `serena` runs, a pinned profile wins, and the
//! profile changes what answers may use (no online model in saver).

use serde_json::Value;

use crate::common::Env;
use crate::online_server::{Behaviour, TestServer};

fn ask(env: &Env, power: &str, extra: &[&str], question: &str) -> Value {
    let mut cmd = env.serena();
    cmd.env("SERENA_POWER", power)
        .args(extra)
        .args(["ask", "--json", question]);
    let out = cmd.output().expect("run serena");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn a_falling_battery_moves_through_the_profiles_with_hysteresis() {
    let env = Env::new();
    let steps = [
        ("mains", "performance"),
        ("battery:50:discharging", "balanced"),
        ("battery:31:discharging", "balanced"),
        ("battery:30:discharging", "saver"),
        ("battery:33:discharging", "saver"), // inside the margin: stays
        ("battery:35:discharging", "balanced"),
        ("battery:10:discharging", "critical"),
        ("battery:13:discharging", "critical"),
        ("battery:16:discharging", "saver"),
        ("battery:16:charging", "performance"), // plugged in: at once
    ];
    for (power, expect) in steps {
        let a = ask(&env, power, &[], "what time is it");
        assert_eq!(a["power_profile"], expect, "at {power}: {a}");
    }
    // `serena status` shows the source and the profile.
    let mut cmd = env.serena();
    let out = cmd
        .env("SERENA_POWER", "battery:20:discharging")
        .args(["status"])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("20% discharging") && text.contains("saver"),
        "{text}"
    );
}

#[test]
fn a_pinned_profile_and_the_voice_override_win() {
    let env = Env::new();
    let a = ask(
        &env,
        "mains",
        &["--set", "power.profile=saver"],
        "what time is it",
    );
    assert_eq!(a["power_profile"], "saver");
    let a = ask(&env, "mains", &[], "use saver mode");
    assert_eq!(a["intent"], "SerenaSetPowerProfile", "{a}");
    let a = ask(&env, "mains", &[], "what time is it");
    assert_eq!(
        a["power_profile"], "saver",
        "the voice override holds on mains"
    );
}

#[test]
fn saver_keeps_questions_off_the_online_model() {
    let env = Env::new();
    let server = TestServer::start();
    server.push([Behaviour::Answer("from online".into())]);
    let url = format!("online.url={}", server.base_url());
    let sets = ["--set", &url, "--set", "llm.model=qwen2.5-0.5b-instruct"];
    let a = ask(&env, "battery:20:discharging", &sets, "write a poem");
    assert_eq!(a["power_profile"], "saver");
    assert_ne!(a["source"], "online", "{a}");
    assert!(
        a["hops"]
            .to_string()
            .contains("not used in the saver profile"),
        "{a}"
    );
    assert_eq!(server.connections(), 0);
    // On mains the same question goes online.
    let a = ask(&env, "mains", &sets, "write a poem");
    assert_eq!(a["source"], "online", "{a}");
    assert_eq!(a["reply"], "from online");
}

#[test]
fn a_bad_power_spec_is_a_clear_error() {
    let env = Env::new();
    let out = env
        .serena()
        .env("SERENA_POWER", "battery:lots")
        .args(["status"])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SERENA_POWER") || text.contains("battery:"),
        "{text}"
    );
}

#[test]
fn serena_bench_measures_each_profile_and_draws_the_stages() {
    let env = crate::common::Env::new();
    let plot = env.path().join("stages.svg");
    let whisper = crate::common::model("whisper/ggml-tiny.en.bin");
    let out = crate::common::ok(
        &env,
        &[
            "bench",
            "--profile",
            "performance",
            "--profile",
            "saver",
            "--idle-s",
            "5",
            "--json",
            "-m",
            whisper.to_str().expect("utf-8"),
            "--plot",
            plot.to_str().expect("utf-8"),
        ],
    );
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["profile"], "performance");
    assert_eq!(rows[1]["profile"], "saver");
    for r in rows {
        assert_eq!(
            crate::common::words(r["heard"].as_str().unwrap_or_default()),
            "what time is it",
            "{r}"
        );
        assert!(r["rtf"].as_f64().is_some_and(|x| x > 0.0 && x < 5.0), "{r}");
        assert!(r["first_audio_ms"].as_u64().is_some_and(|x| x > 0), "{r}");
        assert!(r["peak_rss_mb"].as_u64().is_some_and(|x| x > 0), "{r}");
        assert!(
            r["idle_silence_cpu_per_s"]
                .as_f64()
                .is_some_and(|x| x < 0.05),
            "{r}"
        );
    }
    assert_eq!(
        rows[0]["vad"], "silero",
        "performance checks utterances with Silero"
    );
    assert_eq!(
        rows[1]["vad"], "energy",
        "saver leaves it to the energy VAD"
    );
    assert!(rows[1]["stt_threads"].as_u64() <= rows[0]["stt_threads"].as_u64());
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    assert!(svg.starts_with("<svg") && svg.contains("saver"), "{svg}");
}
