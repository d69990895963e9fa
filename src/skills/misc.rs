//! Help, stop, never mind, and weather (no source configured yet).

use crate::router::{Intent, Match};

use super::Reply;

/// What Serena can do, said briefly.
pub const HELP: &str = "I can tell you the time and the date, set, pause and cancel timers, \
keep lists and notes, and report on the battery and the system. Anything else goes to the \
language model when one is installed.";

/// Answer the small intents.
pub fn handle(m: &Match) -> Reply {
    match m.intent {
        Intent::Help => Reply::say(HELP),
        Intent::Stop => Reply::say("").with("stop", true),
        Intent::Nevermind => Reply::say(""),
        Intent::GetWeather => {
            Reply::say("No weather source is configured, so I can't tell you the weather.")
        }
        _ => Reply::say(""),
    }
}
