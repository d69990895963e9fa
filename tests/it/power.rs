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
