//! The closed set of intents Serena understands.
//!
//! Adding a skill: add a variant here (with the name its template file uses)
//! and a `serena_<Name>.yaml` template file under `sentences/`.

use std::fmt;
use std::str::FromStr;

macro_rules! intents {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// An intent a sentence can be routed to.
        ///
        /// `Hass*` intents keep Home Assistant's names and slot conventions
        /// (see its intent documentation); `Serena*` intents are Serena's own.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Intent {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Intent {
            /// Every intent, in declaration order.
            pub const ALL: &'static [Intent] = &[$(Intent::$variant,)*];

            /// The name used in template files, e.g. `"HassStartTimer"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Intent::$variant => $name,)*
                }
            }
        }
    };
}

intents! {
    /// "what time is it"
    GetCurrentTime => "HassGetCurrentTime",
    /// "what's the date today"
    GetCurrentDate => "HassGetCurrentDate",
    /// "set a timer for 10 minutes [named pizza]"; slots `hours`, `minutes`,
    /// `seconds`, `name`, or `conversation_command` ("open the door in 5 minutes").
    StartTimer => "HassStartTimer",
    /// "cancel the pizza timer"; slots identify the timer: `name`, `area`,
    /// `start_hours`/`start_minutes`/`start_seconds`.
    CancelTimer => "HassCancelTimer",
    /// "cancel all timers"; optional `area`.
    CancelAllTimers => "HassCancelAllTimers",
    /// "add 5 minutes to the timer"; duration slots plus the timer's identity.
    IncreaseTimer => "HassIncreaseTimer",
    /// "take 5 minutes off the timer".
    DecreaseTimer => "HassDecreaseTimer",
    /// "pause the timer".
    PauseTimer => "HassPauseTimer",
    /// "resume the timer".
    UnpauseTimer => "HassUnpauseTimer",
    /// "how much time is left on my timer".
    TimerStatus => "HassTimerStatus",
    /// "add apples to my shopping list"; slot `item`.
    ShoppingListAddItem => "HassShoppingListAddItem",
    /// "check apples off my shopping list"; slot `item`.
    ShoppingListCompleteItem => "HassShoppingListCompleteItem",
    /// "add apples to my groceries list"; slots `item`, `name` (the list).
    ListAddItem => "HassListAddItem",
    /// "check apples off my groceries list"; slots `item`, `name`.
    ListCompleteItem => "HassListCompleteItem",
    /// "never mind".
    Nevermind => "HassNevermind",
    /// "what's the weather [in London]"; optional `name` (the place).
    GetWeather => "HassGetWeather",
    /// "remember that the keys are in the drawer"; slot `note`.
    Remember => "SerenaRemember",
    /// "what did I ask you to remember"; optional `note` (what about).
    Recall => "SerenaRecall",
    /// "forget the locker code" (slot `note`) or "forget everything"
    /// (slot `scope` = `"all"`).
    Forget => "SerenaForget",
    /// "how's the battery", "system status"; slot `topic`: `battery`, `cpu`,
    /// `memory`, `models`, `power_profile` or `overall`.
    SystemStatus => "SerenaSystemStatus",
    /// "use saver mode"; slot `profile`: `saver`, `balanced` or `performance`.
    SetPowerProfile => "SerenaSetPowerProfile",
    /// "stop", "be quiet": stop speaking / the current action.
    Stop => "SerenaStop",
    /// "what can you do".
    Help => "SerenaHelp",
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an intent name that is not in [`Intent::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown intent {0:?}")]
pub struct UnknownIntent(pub String);

impl FromStr for Intent {
    type Err = UnknownIntent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Intent::ALL
            .iter()
            .copied()
            .find(|i| i.name() == s)
            .ok_or_else(|| UnknownIntent(s.to_owned()))
    }
}

impl serde::Serialize for Intent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for intent in Intent::ALL {
            assert_eq!(intent.name().parse::<Intent>(), Ok(*intent));
        }
        assert_eq!(
            "HassTurnOn".parse::<Intent>(),
            Err(UnknownIntent("HassTurnOn".into()))
        );
    }
}
