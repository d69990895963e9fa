//! System status ("how's the battery") and the power profile ("use saver mode").

use crate::router::{Intent, Match};

use super::{Env, Reply, SkillError};

/// Settings key holding the user's chosen power profile (`auto` clears it).
pub const PROFILE_SETTING: &str = "power.profile";

/// A battery reading: percent and whether it is charging; `None` on mains-only machines.
pub fn battery() -> Option<(f32, bool)> {
    let manager = battery::Manager::new().ok()?;
    let mut batteries = manager.batteries().ok()?;
    let b = batteries.next()?.ok()?;
    let percent = b.state_of_charge().value * 100.0;
    let charging = matches!(b.state(), battery::State::Charging | battery::State::Full);
    Some((percent, charging))
}

fn battery_text() -> String {
    match battery() {
        Some((p, true)) => format!("The battery is at {p:.0} percent and charging."),
        Some((p, false)) => format!("The battery is at {p:.0} percent."),
        None => "This machine runs on mains power; there is no battery.".into(),
    }
}

fn cpu_memory() -> (f32, u64, u64) {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.refresh_cpu_usage();
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
    sys.refresh_cpu_usage();
    (
        sys.global_cpu_usage(),
        sys.used_memory(),
        sys.total_memory(),
    )
}

/// Handle a system intent.
///
/// # Errors
/// [`SkillError::Store`] when saving the profile fails.
pub fn handle(m: &Match, env: &Env<'_>) -> Result<Reply, SkillError> {
    match m.intent {
        Intent::SetPowerProfile => {
            let profile = m.slots.text("profile").unwrap_or("balanced").to_lowercase();
            if matches!(profile.as_str(), "auto" | "automatic") {
                env.store.remove_setting(PROFILE_SETTING)?;
                return Ok(Reply::say("The power profile follows the battery again.")
                    .with("profile", "auto"));
            }
            env.store
                .set_setting(PROFILE_SETTING, &serde_json::Value::String(profile.clone()))?;
            Ok(Reply::say(format!("Switched to {profile} mode.")).with("profile", profile))
        }
        Intent::SystemStatus => {
            let topic = m.slots.text("topic").unwrap_or("overall");
            let models = if env.models_loaded.is_empty() {
                "No models are loaded right now.".to_string()
            } else {
                format!("Loaded models: {}.", env.models_loaded.join(", "))
            };
            let profile = format!("The power profile is {}.", env.power_profile);
            let text = match topic {
                "battery" => battery_text(),
                "models" => models,
                "power_profile" => profile,
                "cpu" | "memory" | "overall" => {
                    let (cpu, used, total) = cpu_memory();
                    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
                    let usage = format!(
                        "The processor is {cpu:.0} percent busy and {:.1} of {:.1} gigabytes of memory are in use.",
                        gib(used),
                        gib(total)
                    );
                    match topic {
                        "overall" => format!("{} {usage} {profile}", battery_text()),
                        _ => usage,
                    }
                }
                _ => battery_text(),
            };
            Ok(Reply::say(text).with("topic", topic))
        }
        _ => Ok(Reply::default()),
    }
}
