//! Power awareness: which power source the machine runs on, which profile that calls for,
//! and what each profile changes in the pipeline; plus the system figures and the model
//! memory manager that go with it.
//!
//! - [`source`]: [`PowerState`] and the [`PowerSource`]s: the real batteries
//!   ([`BatterySource`]), `SERENA_POWER=battery:15:discharging` ([`SimulatedSource`]) and
//!   `SERENA_POWER=file:<path>` ([`FileSource`], re-read on every poll).
//! - [`profile`]: [`Profile`], the [`ProfileSettings`] each one sets (derived from the
//!   configured [`Base`]), and the [`Selector`]: a pure state machine with hysteresis and
//!   an override. Its module documentation has the threshold table.
//! - [`monitor`]: the [`PowerMonitor`] task and its [`PowerHandle`] (current profile,
//!   override, change events).
//! - [`gate`]: [`ProfileGate`], which hands the pipeline the settings in force at the start
//!   of each utterance, so that a change mid-utterance waits for the next one.
//! - [`system`]: CPU load, memory and temperatures ([`SystemSnapshot`]), and this process's
//!   CPU time and peak RSS.
//! - [`memory`]: the [`ModelSlot`] (load on first use, unload when idle or when memory is low)
//!   and the [`IdleUnloader`] task.
//!
//! Wiring in a long-running Serena: `source::from_env_or_system()?` →
//! `PowerMonitor::new(source, config.power.monitor_config())` → `monitor.spawn(shutdown)`;
//! the pipeline builds a `ProfileGate` from `handle.watch()`; "use saver mode" calls
//! `handle.set_override(Some(Profile::Saver))`.

pub mod gate;
pub mod memory;
pub mod monitor;
pub mod now;
pub mod profile;
pub mod source;
pub mod system;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use gate::{Applied, ProfileGate};
pub use memory::{
    Fetched, IdleUnloader, ModelSlot, SlotStats, UnloadEvent, UnloadReason, Unloadable,
};
pub use monitor::{
    MonitorConfig, MonitorStats, PowerHandle, PowerMonitor, ProfileEvent, ProfileEvents,
};
pub use profile::{
    Base, ChangeReason, Profile, ProfileChange, ProfileChoice, ProfileSettings, Selector,
    Thresholds, VadEngine,
};
pub use source::{
    from_env_or_system, BatterySource, ChargeState, FileSource, PowerError, PowerSource,
    PowerState, SimulatedSource,
};
pub use system::{peak_rss_bytes, process_cpu_time, SystemProbe, SystemSnapshot};

/// `[power]`: the configuration section for this module, in the style of `config.rs`
/// (add `pub power: crate::power::PowerConfig` to `Config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerConfig {
    /// `auto` follows the power source; a profile name pins it.
    pub profile: ProfileChoice,
    /// Battery percent at or below which the saver profile is used.
    pub saver_percent: f32,
    /// Battery percent at or below which the critical profile is used.
    pub critical_percent: f32,
    /// Percent points above a threshold the battery must reach to leave saver or critical.
    pub recover_margin: f32,
    /// Seconds between two reads of the power source.
    pub poll_seconds: u32,
    /// Seconds a model may stay loaded unused; 0 keeps models loaded.
    pub idle_unload_seconds: u32,
    /// Unload models while less than this much memory is available (MiB); 0: never.
    pub min_available_mb: u32,
}

impl Default for PowerConfig {
    fn default() -> Self {
        let t = Thresholds::default();
        PowerConfig {
            profile: ProfileChoice::Auto,
            saver_percent: t.saver,
            critical_percent: t.critical,
            recover_margin: t.margin,
            poll_seconds: 30,
            idle_unload_seconds: 600,
            min_available_mb: 256,
        }
    }
}

/// A `[power]` value out of range: `config.rs` maps it to `ConfigError::OutOfRange`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`power.{key}` = {value}: {allowed}")]
pub struct PowerConfigError {
    /// The key, without `power.`.
    pub key: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub allowed: &'static str,
}

impl PowerConfig {
    /// The thresholds these settings give.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            saver: self.saver_percent,
            critical: self.critical_percent,
            margin: self.recover_margin,
        }
    }

    /// The monitor configuration these settings give.
    pub fn monitor_config(&self) -> MonitorConfig {
        MonitorConfig {
            interval: Duration::from_secs(u64::from(self.poll_seconds.max(1))),
            thresholds: self.thresholds(),
            pinned: self.profile.pinned(),
            ..MonitorConfig::default()
        }
    }

    /// The idle time for model slots, `None` when models stay loaded.
    pub fn idle_unload(&self) -> Option<Duration> {
        (self.idle_unload_seconds > 0)
            .then(|| Duration::from_secs(u64::from(self.idle_unload_seconds)))
    }

    /// The memory threshold for the unloader, bytes (0: off).
    pub fn min_available_bytes(&self) -> u64 {
        u64::from(self.min_available_mb) << 20
    }

    /// The memory manager these settings give, over the system's available memory: it
    /// checks every 5 s, or a quarter of the idle time when that is shorter (at least
    /// every 250 ms), so a model goes within a quarter of its idle time past it.
    pub fn unloader(&self) -> IdleUnloader {
        let every = self
            .idle_unload()
            .map_or(memory::DEFAULT_CHECK_EVERY, |idle| {
                (idle / 4).clamp(Duration::from_millis(250), memory::DEFAULT_CHECK_EVERY)
            });
        IdleUnloader::with_system_memory(every, self.min_available_bytes())
    }

    /// Check ranges the types do not express.
    ///
    /// # Errors
    /// [`PowerConfigError`] naming the first bad key.
    pub fn validate(&self) -> Result<(), PowerConfigError> {
        let key_value = |key: &str| match key {
            "saver" => ("saver_percent", self.saver_percent.to_string()),
            "critical" => ("critical_percent", self.critical_percent.to_string()),
            _ => ("recover_margin", self.recover_margin.to_string()),
        };
        if let Err((key, allowed)) = self.thresholds().validate() {
            let (key, value) = key_value(key);
            return Err(PowerConfigError {
                key,
                value,
                allowed,
            });
        }
        if !(1..=3600).contains(&self.poll_seconds) {
            return Err(PowerConfigError {
                key: "poll_seconds",
                value: self.poll_seconds.to_string(),
                allowed: "1 to 3600",
            });
        }
        if self.idle_unload_seconds > 7 * 24 * 3600 {
            return Err(PowerConfigError {
                key: "idle_unload_seconds",
                value: self.idle_unload_seconds.to_string(),
                allowed: "0 (never) to 604800",
            });
        }
        Ok(())
    }
}

/// The `[power]` section of `config/default.toml`, with every key and its default.
pub const DEFAULT_TOML: &str = r#"[power]
# Power profile: "auto" follows the power source (performance on mains, balanced, saver or
# critical on battery); "performance", "balanced", "saver" or "critical" pins one.
# Saying "use saver mode" pins it too; "use automatic mode" goes back to auto.
profile = "auto"
# On battery at or below this percent, the saver profile (tiny model, fewer threads).
saver_percent = 30.0
# At or below this percent, the critical profile (push-to-talk only).
critical_percent = 10.0
# Leaving saver or critical needs the battery this many points above the threshold.
recover_margin = 5.0
# Seconds between two reads of the battery.
poll_seconds = 30
# Seconds a model may stay loaded without use; 0 keeps models loaded.
idle_unload_seconds = 600
# Unload models while less memory than this (MiB) is available; 0 never does.
min_available_mb = 256
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        power: PowerConfig,
    }

    #[test]
    fn default_toml_matches_defaults() {
        let parsed: File = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed.power, PowerConfig::default());
        PowerConfig::default().validate().unwrap();
    }

    #[test]
    fn config_gives_monitor_settings_and_validates() {
        let c = PowerConfig {
            profile: ProfileChoice::Saver,
            poll_seconds: 10,
            idle_unload_seconds: 0,
            ..PowerConfig::default()
        };
        let m = c.monitor_config();
        assert_eq!(m.interval, Duration::from_secs(10));
        assert_eq!(m.pinned, Some(Profile::Saver));
        assert_eq!(c.idle_unload(), None);
        assert_eq!(PowerConfig::default().min_available_bytes(), 256 << 20);

        let bad = PowerConfig {
            critical_percent: 40.0,
            ..PowerConfig::default()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e.key, "critical_percent");
        assert!(e.to_string().contains("power.critical_percent"), "{e}");
        let bad = PowerConfig {
            poll_seconds: 0,
            ..PowerConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "poll_seconds");
        let unknown: Result<PowerConfig, _> =
            serde_json::from_value(serde_json::json!({"profil": "saver"}));
        assert!(unknown.is_err());
        let wrong: Result<PowerConfig, _> =
            serde_json::from_value(serde_json::json!({"profile": "turbo"}));
        let msg = wrong.unwrap_err().to_string();
        assert!(msg.contains("auto") && msg.contains("saver"), "{msg}");
    }
}
