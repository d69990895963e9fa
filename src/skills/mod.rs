//! Skills: what Serena does for each routed intent, and the words it answers with.
//!
//! One module per intent family behind the closed [`Intent`] enum: [`time`] (time and date),
//! [`timers`], [`lists`], [`notes`], [`system`] (status and power profile), and [`misc`]
//! (help, stop, never mind, weather), and [`timer_runtime`], which fires timers in a
//! long-running Serena. Each intent module takes the routed [`Match`] and an [`Env`] (the
//! store and the clock) and returns a [`Reply`]. Replies follow Home Assistant's English
//! responses where it has one ("Timer set for 10 minutes", "Added apples").
//!
//! Writes the user is told about are durable before the reply is returned: the store
//! flushes note, list and timer writes before acknowledging them.

pub mod lists;
pub mod misc;
pub mod notes;
pub mod system;
pub mod time;
pub mod timer_runtime;
pub mod timers;

use std::time::SystemTime;

use serde::Serialize;

use crate::router::{Intent, Match};
use crate::store::{Store, StoreError};

/// What a skill may use.
pub struct Env<'a> {
    /// The store (notes, lists, timers, settings).
    pub store: &'a Store,
    /// Now, by the wall clock (tests pass a fixed time).
    pub now: SystemTime,
    /// The power profile in force, for status replies.
    pub power_profile: &'a str,
    /// Names of the models currently loaded, for status replies.
    pub models_loaded: &'a [String],
}

/// A skill's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Reply {
    /// What to say (may be empty: "never mind" answers with silence).
    pub text: String,
    /// Slots the skill computed (e.g. the timer's id), for `--json` and the history.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Reply {
    /// A reply that only says something.
    pub fn say(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            data: serde_json::Map::new(),
        }
    }

    /// Attach a computed value.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Reply {
        self.data.insert(key.into(), value.into());
        self
    }
}

/// Skill failures: only the store can fail; everything else is an answer.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Run the skill for a routed intent.
///
/// # Errors
/// [`SkillError::Store`] when a store read or write fails.
pub fn handle(m: &Match, env: &Env<'_>) -> Result<Reply, SkillError> {
    match m.intent {
        Intent::GetCurrentTime => Ok(time::current_time(env)),
        Intent::GetCurrentDate => Ok(time::current_date(env)),
        Intent::StartTimer
        | Intent::CancelTimer
        | Intent::CancelAllTimers
        | Intent::IncreaseTimer
        | Intent::DecreaseTimer
        | Intent::PauseTimer
        | Intent::UnpauseTimer
        | Intent::TimerStatus => timers::handle(m, env),
        Intent::ShoppingListAddItem
        | Intent::ShoppingListCompleteItem
        | Intent::ListAddItem
        | Intent::ListCompleteItem => lists::handle(m, env),
        Intent::Remember | Intent::Recall | Intent::Forget => notes::handle(m, env),
        Intent::SystemStatus | Intent::SetPowerProfile => system::handle(m, env),
        Intent::Nevermind | Intent::Stop | Intent::Help | Intent::GetWeather => Ok(misc::handle(m)),
    }
}

/// "1 hour, 5 minutes and 30 seconds" — Home Assistant's way of saying a duration.
pub fn say_duration(total_secs: u64) -> String {
    let (h, m, s) = (total_secs / 3600, (total_secs % 3600) / 60, total_secs % 60);
    let unit = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(unit(h, "hour", "hours"));
    }
    if m > 0 {
        parts.push(unit(m, "minute", "minutes"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(unit(s, "second", "seconds"));
    }
    join_and(&parts)
}

/// "a", "a and b", "a, b and c".
pub fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_home_assistant() {
        assert_eq!(say_duration(600), "10 minutes");
        assert_eq!(say_duration(60), "1 minute");
        assert_eq!(
            say_duration(3600 + 5 * 60 + 30),
            "1 hour, 5 minutes and 30 seconds"
        );
        assert_eq!(say_duration(90), "1 minute and 30 seconds");
        assert_eq!(say_duration(0), "0 seconds");
    }
}
