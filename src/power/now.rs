//! The profile in force right now, for one answer.
//!
//! A long-running Serena keeps a [`PowerMonitor`](super::PowerMonitor); a one-shot command
//! (`serena ask`, `serena status`) reads the power source once and carries the hysteresis
//! across processes through the store: the last automatic profile is kept there
//! ([`AUTO_SETTING`]), and so is the last change ([`CHANGE_SETTING`]). A profile pinned in
//! the configuration (`power.profile`) or by voice ("use saver mode", the store setting
//! [`crate::skills::system::PROFILE_SETTING`]) wins over the automatic one.

use serde::{Deserialize, Serialize};

use super::{from_env_or_system, Base, PowerState, Profile, ProfileSettings};
use crate::config::Config;
use crate::store::Store;

/// The store setting with the last automatic profile.
pub const AUTO_SETTING: &str = "power.auto_profile";
/// The store setting with the last profile change.
pub const CHANGE_SETTING: &str = "power.last_change";

/// A change of the automatic profile, as stored and shown by `serena status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredChange {
    /// The profile before.
    pub from: Profile,
    /// The profile after.
    pub to: Profile,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// The power state that caused it.
    pub state: String,
}

/// The profile in force and why.
#[derive(Clone, Debug, Serialize)]
pub struct PowerNow {
    /// The profile in force.
    pub profile: Profile,
    /// What the power source alone calls for.
    pub automatic: Profile,
    /// Who pinned the profile, when someone did: `config` or `voice`.
    pub pinned_by: Option<&'static str>,
    /// The power state read (None when the source failed).
    pub state: Option<PowerState>,
    /// The power source, described.
    pub source: String,
    /// Why the source could not be read.
    pub error: Option<String>,
    /// The settings the profile sets.
    pub settings: ProfileSettings,
}

/// The user's configured values that profiles scale.
pub fn base(config: &Config) -> Base {
    Base::new(
        &config.stt.model,
        config.stt.threads,
        config.llm.threads,
        config.llm.max_tokens,
    )
}

/// Read the power source once and work out the profile; the automatic choice and any
/// change are remembered in `store` (failures to write are logged, never fatal).
pub fn resolve(config: &Config, store: &Store, now_ms: u64) -> PowerNow {
    let (state, source, error) = match from_env_or_system() {
        Ok(mut src) => {
            let desc = src.describe();
            match src.read() {
                Ok(state) => (Some(state), desc, None),
                Err(e) => (None, desc, Some(e.to_string())),
            }
        }
        Err(e) => (None, "none".into(), Some(e.to_string())),
    };
    let previous: Profile = store
        .setting_as::<Profile>(AUTO_SETTING)
        .ok()
        .flatten()
        .unwrap_or(Profile::Performance);
    let automatic = match &state {
        Some(s) => config.power.thresholds().next(previous, s),
        None => previous,
    };
    if automatic != previous {
        tracing::info!(from = %previous, to = %automatic, "power profile changes");
        let change = StoredChange {
            from: previous,
            to: automatic,
            at_ms: now_ms,
            state: state.as_ref().map(ToString::to_string).unwrap_or_default(),
        };
        let stored = serde_json::to_value(automatic)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                store
                    .set_setting(AUTO_SETTING, &v)
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| serde_json::to_value(&change).map_err(|e| e.to_string()))
            .and_then(|v| {
                store
                    .set_setting(CHANGE_SETTING, &v)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = stored {
            tracing::warn!(error = %e, "cannot store the power profile");
        }
    }
    let voice = store
        .setting_as::<String>(crate::skills::system::PROFILE_SETTING)
        .ok()
        .flatten()
        .and_then(|p| p.parse::<Profile>().ok());
    let (profile, pinned_by) = match (config.power.profile.pinned(), voice) {
        (Some(p), _) => (p, Some("config")),
        (None, Some(p)) => (p, Some("voice")),
        (None, None) => (automatic, None),
    };
    PowerNow {
        profile,
        automatic,
        pinned_by,
        state,
        source,
        error,
        settings: ProfileSettings::for_profile(profile, &base(config)),
    }
}

/// The last stored change of the automatic profile.
pub fn last_change(store: &Store) -> Option<StoredChange> {
    store.setting_as(CHANGE_SETTING).ok().flatten()
}
