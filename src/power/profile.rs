//! Power profiles: what each one sets ([`ProfileSettings`]) and which one the power state
//! calls for ([`Selector`], a pure state machine with hysteresis and a user override).
//!
//! With the default [`Thresholds`] (saver at 30 %, critical at 10 %, margin 5 points):
//!
//! | in force \ battery level | ≤ 10 | 10 < x < 15 | 15 ≤ x ≤ 30 | 30 < x < 35 | ≥ 35 |
//! |--------------------------|------|-------------|-------------|-------------|------|
//! | performance (was mains)  | critical | saver   | saver       | balanced    | balanced |
//! | balanced                 | critical | saver   | saver       | balanced    | balanced |
//! | saver                    | critical | saver   | saver       | saver       | balanced |
//! | critical                 | critical | critical| saver       | saver       | balanced |
//!
//! Mains (plugged in, charging or full) is performance at once, from any profile. Falling
//! is immediate (at or below a threshold); climbing out of saver or critical needs the level
//! to reach the threshold plus the margin. An override pins a profile until it is cleared;
//! the automatic choice keeps following the battery underneath it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::source::PowerState;

/// A power profile, from most to least power-hungry (the order of [`Ord`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// On mains: the configured models and threads, everything on.
    Performance,
    /// On battery above the saver threshold: a little fewer threads, no partial
    /// transcripts.
    Balanced,
    /// Low battery: the tiny whisper model, half the threads, an energy VAD, no network.
    Saver,
    /// Nearly empty: push-to-talk only, one whisper thread, short replies.
    Critical,
}

impl Profile {
    /// Every profile, most power-hungry first.
    pub const ALL: [Profile; 4] = [
        Profile::Performance,
        Profile::Balanced,
        Profile::Saver,
        Profile::Critical,
    ];

    /// The name used in configuration, the store and speech.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Performance => "performance",
            Profile::Balanced => "balanced",
            Profile::Saver => "saver",
            Profile::Critical => "critical",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is not one of the allowed ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown power profile `{given}`, expected one of {allowed}")]
pub struct ParseProfileError {
    /// The text given.
    pub given: String,
    /// What is allowed.
    pub allowed: &'static str,
}

impl FromStr for Profile {
    type Err = ParseProfileError;

    /// `performance`, `balanced`, `saver` or `critical`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Profile::ALL
            .into_iter()
            .find(|p| t.eq_ignore_ascii_case(p.as_str()))
            .ok_or_else(|| ParseProfileError {
                given: t.to_string(),
                allowed: "performance, balanced, saver, critical",
            })
    }
}

/// The configured choice: automatic, or a pinned profile (`[power] profile`, and the
/// `power.profile` store setting that "use saver mode" writes; `auto` clears it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileChoice {
    /// Follow the power source.
    #[default]
    Auto,
    /// Pin [`Profile::Performance`].
    Performance,
    /// Pin [`Profile::Balanced`].
    Balanced,
    /// Pin [`Profile::Saver`].
    Saver,
    /// Pin [`Profile::Critical`].
    Critical,
}

impl ProfileChoice {
    /// The pinned profile, `None` for automatic.
    pub fn pinned(self) -> Option<Profile> {
        match self {
            ProfileChoice::Auto => None,
            ProfileChoice::Performance => Some(Profile::Performance),
            ProfileChoice::Balanced => Some(Profile::Balanced),
            ProfileChoice::Saver => Some(Profile::Saver),
            ProfileChoice::Critical => Some(Profile::Critical),
        }
    }
}

impl From<Option<Profile>> for ProfileChoice {
    fn from(p: Option<Profile>) -> Self {
        match p {
            None => ProfileChoice::Auto,
            Some(Profile::Performance) => ProfileChoice::Performance,
            Some(Profile::Balanced) => ProfileChoice::Balanced,
            Some(Profile::Saver) => ProfileChoice::Saver,
            Some(Profile::Critical) => ProfileChoice::Critical,
        }
    }
}

impl fmt::Display for ProfileChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pinned() {
            None => f.write_str("auto"),
            Some(p) => p.fmt(f),
        }
    }
}

impl FromStr for ProfileChoice {
    type Err = ParseProfileError;

    /// `auto` or a profile name, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(ProfileChoice::Auto);
        }
        s.parse::<Profile>()
            .map(|p| ProfileChoice::from(Some(p)))
            .map_err(|e| ParseProfileError {
                allowed: "auto, performance, balanced, saver, critical",
                ..e
            })
    }
}

/// Which voice activity detector runs in front of the wake word and whisper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VadEngine {
    /// Silero through whisper.cpp: accurate, a small network per hop.
    Silero,
    /// Frame energy against an adaptive noise floor: pure Rust, nearly free.
    Energy,
}

/// The user's configured values that profiles scale down from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// `stt.model`: a catalog name or a file path.
    pub stt_model: String,
    /// `stt.threads`; 0 means min(4, cores), as in the configuration.
    pub stt_threads: u32,
    /// `llm.threads`; 0 means all cores.
    pub llm_threads: u32,
    /// `llm.max_tokens`.
    pub llm_max_tokens: u32,
    /// Available cores (`std::thread::available_parallelism`).
    pub cores: usize,
}

impl Base {
    /// A base with this machine's core count. From a `Config`:
    /// `Base::new(&c.stt.model, c.stt.threads, c.llm.threads, c.llm.max_tokens)`.
    pub fn new(stt_model: &str, stt_threads: u32, llm_threads: u32, llm_max_tokens: u32) -> Base {
        Base {
            stt_model: stt_model.to_string(),
            stt_threads,
            llm_threads,
            llm_max_tokens,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    fn cores(&self) -> u32 {
        u32::try_from(self.cores.max(1)).unwrap_or(u32::MAX)
    }

    /// Whisper threads the configuration asks for (0 resolved).
    pub fn stt_threads_effective(&self) -> u32 {
        match self.stt_threads {
            0 => self.cores().min(4),
            n => n,
        }
    }

    /// LLM threads the configuration asks for (0 resolved).
    pub fn llm_threads_effective(&self) -> u32 {
        match self.llm_threads {
            0 => self.cores(),
            n => n,
        }
    }
}

/// Everything a profile changes, in one place. The pipeline reads it between utterances
/// ([`super::ProfileGate`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSettings {
    /// The profile these settings belong to.
    pub profile: Profile,
    /// Whisper model to use instead of `stt.model`; `None` keeps the configured one.
    pub whisper_model: Option<String>,
    /// Whisper threads (resolved, at least 1).
    pub stt_threads: u32,
    /// Voice activity detector.
    pub vad_engine: VadEngine,
    /// How often the VAD looks at the audio, in milliseconds.
    pub vad_hop_ms: u32,
    /// Re-run whisper on the growing utterance to show partial transcripts.
    pub partial_transcripts: bool,
    /// Confirm a wake word with a second, larger check before waking.
    pub wake_confirm: bool,
    /// LLM threads (resolved, at least 1).
    pub llm_threads: u32,
    /// GPU layers instead of `llm.gpu_layers`; `None` keeps the configured value.
    pub llm_gpu_layers: Option<u32>,
    /// Longest reply in tokens.
    pub llm_max_tokens: u32,
    /// Online services (the network fallback) may be used.
    pub online_allowed: bool,
    /// Listen for the wake word all the time; `false` is push-to-talk only.
    pub always_listening: bool,
}

/// Spoken once when Serena enters [`Profile::Critical`].
pub const CRITICAL_NOTICE: &str = "The battery is almost empty. To save power I will only \
     listen when you press the talk key.";

/// Spoken once when Serena leaves [`Profile::Critical`] and listens again.
pub const RECOVERED_NOTICE: &str = "Power is back. I'm listening for my name again.";

impl ProfileSettings {
    /// The settings of `profile` for the user's `base` values.
    ///
    /// Threads: performance keeps the configured count, balanced takes ¾ of it (rounded
    /// up), saver half, critical one whisper thread and a quarter for the LLM; never 0.
    pub fn for_profile(profile: Profile, base: &Base) -> ProfileSettings {
        let stt = base.stt_threads_effective().max(1);
        let llm = base.llm_threads_effective().max(1);
        let three_quarters = |n: u32| n.saturating_mul(3).div_ceil(4).max(1);
        let half = |n: u32| (n / 2).max(1);
        let quarter = |n: u32| (n / 4).max(1);
        let tokens = base.llm_max_tokens.max(1);
        match profile {
            Profile::Performance => ProfileSettings {
                profile,
                whisper_model: None,
                stt_threads: stt,
                vad_engine: VadEngine::Silero,
                vad_hop_ms: 32,
                partial_transcripts: true,
                wake_confirm: true,
                llm_threads: llm,
                llm_gpu_layers: None,
                llm_max_tokens: tokens,
                online_allowed: true,
                always_listening: true,
            },
            Profile::Balanced => ProfileSettings {
                profile,
                whisper_model: None,
                stt_threads: three_quarters(stt),
                vad_engine: VadEngine::Silero,
                vad_hop_ms: 64,
                partial_transcripts: false,
                wake_confirm: true,
                llm_threads: three_quarters(llm),
                llm_gpu_layers: None,
                llm_max_tokens: tokens,
                online_allowed: true,
                always_listening: true,
            },
            Profile::Saver => ProfileSettings {
                profile,
                whisper_model: smaller_whisper(&base.stt_model),
                stt_threads: half(stt),
                vad_engine: VadEngine::Energy,
                vad_hop_ms: 50,
                partial_transcripts: false,
                wake_confirm: false,
                llm_threads: half(llm),
                llm_gpu_layers: None,
                llm_max_tokens: tokens.min(128),
                online_allowed: false,
                always_listening: true,
            },
            Profile::Critical => ProfileSettings {
                profile,
                whisper_model: smaller_whisper(&base.stt_model),
                stt_threads: 1,
                vad_engine: VadEngine::Energy,
                vad_hop_ms: 50,
                partial_transcripts: false,
                wake_confirm: false,
                llm_threads: quarter(llm),
                // A discrete GPU is the largest draw there is; keep the LLM on the CPU.
                llm_gpu_layers: Some(0),
                llm_max_tokens: tokens.min(64),
                online_allowed: false,
                always_listening: false,
            },
        }
    }

    /// The whisper model these settings run, given the configured one.
    pub fn whisper_model_or<'a>(&'a self, configured: &'a str) -> &'a str {
        self.whisper_model.as_deref().unwrap_or(configured)
    }
}

/// The catalog's tiny model matching `configured` (English-only `.en` or multilingual),
/// or `None` when it is already tiny or is a file path (whose language is unknown).
fn smaller_whisper(configured: &str) -> Option<String> {
    let name = configured.trim();
    let is_path = name.contains('/') || name.contains('\\') || name.ends_with(".bin");
    if is_path || name.starts_with("tiny") {
        return None;
    }
    Some(
        if name.contains(".en") {
            "tiny.en"
        } else {
            "tiny"
        }
        .into(),
    )
}

/// Battery levels (percent) where profiles change.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// At or below this, saver. Above it, balanced.
    pub saver: f32,
    /// At or below this, critical.
    pub critical: f32,
    /// Leaving saver or critical needs the level to reach its threshold plus this.
    pub margin: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            saver: 30.0,
            critical: 10.0,
            margin: 5.0,
        }
    }
}

impl Thresholds {
    /// Check `0 ≤ critical < saver ≤ 100` and `0 ≤ margin ≤ 50`.
    ///
    /// # Errors
    /// `(key, allowed)` for the first bad value: `saver`, `critical` or `margin`.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(0.0..=100.0).contains(&self.saver) {
            return Err(("saver", "0 to 100"));
        }
        if !(0.0..=100.0).contains(&self.critical) || self.critical >= self.saver {
            return Err(("critical", "0 to 100 and below the saver threshold"));
        }
        if !(0.0..=50.0).contains(&self.margin) {
            return Err(("margin", "0 to 50"));
        }
        Ok(())
    }

    /// The profile for `percent` on battery, without hysteresis.
    pub fn level(&self, percent: f32) -> Profile {
        if percent <= self.critical {
            Profile::Critical
        } else if percent <= self.saver {
            Profile::Saver
        } else {
            Profile::Balanced
        }
    }

    /// The automatic profile for `state` when `current` is in force (hysteresis).
    pub fn next(&self, current: Profile, state: &PowerState) -> Profile {
        if !state.on_battery {
            return Profile::Performance;
        }
        let Some(p) = state.percent.filter(|p| p.is_finite()) else {
            // On battery at an unknown level: leave performance, otherwise stay.
            return current.max(Profile::Balanced);
        };
        let raw = self.level(p);
        if raw >= current {
            return raw;
        }
        let mut level = current;
        if level == Profile::Critical {
            if p < self.critical + self.margin {
                return Profile::Critical;
            }
            level = Profile::Saver;
        }
        if level == Profile::Saver {
            if p < self.saver + self.margin {
                return Profile::Saver;
            }
            level = Profile::Balanced;
        }
        level.max(raw)
    }
}

/// Why the profile changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeReason {
    /// Mains power is present.
    Mains,
    /// On battery at this level.
    Battery {
        /// Percent, when known.
        percent: Option<f32>,
    },
    /// The user pinned a profile.
    Override {
        /// The pinned profile.
        profile: Profile,
    },
    /// The user went back to automatic.
    OverrideCleared,
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeReason::Mains => f.write_str("on mains power"),
            ChangeReason::Battery { percent: Some(p) } => write!(f, "battery at {p:.0}%"),
            ChangeReason::Battery { percent: None } => f.write_str("on battery"),
            ChangeReason::Override { profile } => write!(f, "{profile} chosen by the user"),
            ChangeReason::OverrideCleared => f.write_str("back to automatic"),
        }
    }
}

/// A change of the profile in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileChange {
    /// The profile before.
    pub from: Profile,
    /// The profile now.
    pub to: Profile,
    /// Why.
    pub reason: ChangeReason,
}

impl ProfileChange {
    /// What to say about it, if anything: entering or leaving critical.
    pub fn notice(&self) -> Option<&'static str> {
        notice_between(self.from, self.to)
    }
}

/// What to say when the profile in force goes from `from` to `to`.
pub fn notice_between(from: Profile, to: Profile) -> Option<&'static str> {
    match (from == Profile::Critical, to == Profile::Critical) {
        (false, true) => Some(CRITICAL_NOTICE),
        (true, false) => Some(RECOVERED_NOTICE),
        _ => None,
    }
}

/// Chooses the profile in force: the automatic one from power readings ([`Thresholds::next`])
/// unless an override pins another. Pure: no clock, no I/O.
#[derive(Clone, Debug)]
pub struct Selector {
    thresholds: Thresholds,
    auto: Profile,
    pinned: Option<Profile>,
    last: Option<PowerState>,
}

impl Selector {
    /// A selector that assumes mains (performance) until the first reading.
    pub fn new(thresholds: Thresholds) -> Selector {
        Selector {
            thresholds,
            auto: Profile::Performance,
            pinned: None,
            last: None,
        }
    }

    /// The profile in force.
    pub fn current(&self) -> Profile {
        self.pinned.unwrap_or(self.auto)
    }

    /// The profile the power state calls for, override or not.
    pub fn automatic(&self) -> Profile {
        self.auto
    }

    /// The override, if any.
    pub fn pinned(&self) -> Option<Profile> {
        self.pinned
    }

    /// The last reading given to [`Selector::update`].
    pub fn last_state(&self) -> Option<&PowerState> {
        self.last.as_ref()
    }

    /// The thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Take a reading; the change of the profile in force, if there is one. While an
    /// override is set the automatic profile still follows the readings, silently.
    pub fn update(&mut self, state: &PowerState) -> Option<ProfileChange> {
        let before = self.current();
        self.auto = self.thresholds.next(self.auto, state);
        self.last = Some(state.clone());
        let after = self.current();
        (before != after).then_some(ProfileChange {
            from: before,
            to: after,
            reason: if state.on_battery {
                ChangeReason::Battery {
                    percent: state.percent,
                }
            } else {
                ChangeReason::Mains
            },
        })
    }

    /// Pin a profile (`Some`) or go back to automatic (`None`); the change of the profile
    /// in force, if there is one.
    pub fn set_override(&mut self, pinned: Option<Profile>) -> Option<ProfileChange> {
        let before = self.current();
        self.pinned = pinned;
        let after = self.current();
        (before != after).then_some(ProfileChange {
            from: before,
            to: after,
            reason: match pinned {
                Some(profile) => ChangeReason::Override { profile },
                None => ChangeReason::OverrideCleared,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::source::ChargeState;

    fn bat(p: f32) -> PowerState {
        PowerState::battery(p, ChargeState::Discharging)
    }

    /// Feed `levels` (`None` = mains) and return the profile after each.
    fn run(sel: &mut Selector, levels: &[Option<f32>]) -> Vec<Profile> {
        levels
            .iter()
            .map(|l| {
                let state = l.map_or_else(PowerState::mains, bat);
                sel.update(&state);
                sel.current()
            })
            .collect()
    }

    #[test]
    fn hysteresis_sequence() {
        use Profile::*;
        let mut sel = Selector::new(Thresholds::default());
        let levels = [
            50.0, 31.0, 30.0, 32.0, 34.9, 35.0, 31.0, 30.0, 11.0, 10.0, 14.9, 12.0, 15.0, 9.0,
            20.0, 40.0,
        ];
        let got = run(&mut sel, &levels.map(Some));
        let want = [
            Balanced, Balanced, Saver, Saver, Saver, Balanced, Balanced, Saver, Saver, Critical,
            Critical, Critical, Saver, Critical, Saver, Balanced,
        ];
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(*g, w, "step {i}: {}%", levels[i]);
        }
    }

    #[test]
    fn the_table_in_the_module_docs_holds() {
        use Profile::*;
        let t = Thresholds::default();
        let columns = [5.0, 12.0, 20.0, 32.0, 50.0];
        let rows = [
            (Performance, [Critical, Saver, Saver, Balanced, Balanced]),
            (Balanced, [Critical, Saver, Saver, Balanced, Balanced]),
            (Saver, [Critical, Saver, Saver, Saver, Balanced]),
            (Critical, [Critical, Critical, Saver, Saver, Balanced]),
        ];
        for (from, want) in rows {
            for (p, w) in columns.iter().zip(want) {
                assert_eq!(t.next(from, &bat(*p)), w, "from {from} at {p}%");
            }
            assert_eq!(t.next(from, &PowerState::mains()), Performance);
        }
    }

    #[test]
    fn exact_boundaries() {
        let t = Thresholds::default();
        assert_eq!(t.next(Profile::Balanced, &bat(30.0)), Profile::Saver);
        assert_eq!(t.next(Profile::Balanced, &bat(30.01)), Profile::Balanced);
        assert_eq!(t.next(Profile::Saver, &bat(34.99)), Profile::Saver);
        assert_eq!(t.next(Profile::Saver, &bat(35.0)), Profile::Balanced);
        assert_eq!(t.next(Profile::Saver, &bat(10.0)), Profile::Critical);
        assert_eq!(t.next(Profile::Critical, &bat(14.99)), Profile::Critical);
        assert_eq!(t.next(Profile::Critical, &bat(15.0)), Profile::Saver);
    }

    #[test]
    fn mains_returns_to_performance_at_once() {
        let mut sel = Selector::new(Thresholds::default());
        assert_eq!(run(&mut sel, &[Some(5.0)]), [Profile::Critical]);
        let change = sel
            .update(&PowerState::battery(5.0, ChargeState::Charging))
            .expect("change");
        assert_eq!(
            change,
            ProfileChange {
                from: Profile::Critical,
                to: Profile::Performance,
                reason: ChangeReason::Mains,
            }
        );
        assert_eq!(change.notice(), Some(RECOVERED_NOTICE));
        // Unplugged again at 5 %: straight back to critical, no margin needed going down.
        let change = sel.update(&bat(5.0)).expect("change");
        assert_eq!(
            (change.from, change.to),
            (Profile::Performance, Profile::Critical)
        );
        assert_eq!(change.notice(), Some(CRITICAL_NOTICE));
        assert_eq!(change.reason, ChangeReason::Battery { percent: Some(5.0) });
    }

    #[test]
    fn updates_report_changes_only() {
        let mut sel = Selector::new(Thresholds::default());
        assert_eq!(sel.update(&PowerState::mains()), None);
        assert!(sel.update(&bat(50.0)).is_some());
        assert_eq!(sel.update(&bat(49.0)), None);
        assert_eq!(sel.last_state(), Some(&bat(49.0)));
    }

    #[test]
    fn unknown_level_on_battery_leaves_performance_only() {
        let mut state = bat(0.0);
        state.percent = None;
        let t = Thresholds::default();
        assert_eq!(t.next(Profile::Performance, &state), Profile::Balanced);
        assert_eq!(t.next(Profile::Saver, &state), Profile::Saver);
        state.percent = Some(f32::NAN);
        assert_eq!(t.next(Profile::Critical, &state), Profile::Critical);
    }

    #[test]
    fn override_pins_until_cleared() {
        let mut sel = Selector::new(Thresholds::default());
        sel.update(&bat(80.0));
        let change = sel.set_override(Some(Profile::Saver)).expect("change");
        assert_eq!(
            change.reason,
            ChangeReason::Override {
                profile: Profile::Saver
            }
        );
        // Battery readings, even mains, do not move a pinned profile...
        for state in [bat(5.0), PowerState::mains(), bat(60.0), bat(20.0)] {
            assert_eq!(sel.update(&state), None);
            assert_eq!(sel.current(), Profile::Saver);
        }
        // ...but the automatic profile followed them (20 % is saver), so clearing
        // changes nothing here.
        assert_eq!(sel.automatic(), Profile::Saver);
        assert_eq!(sel.set_override(None), None);
        // Pin performance on battery, clear it: back to the automatic choice.
        sel.set_override(Some(Profile::Performance));
        sel.update(&bat(8.0));
        assert_eq!(sel.current(), Profile::Performance);
        let change = sel.set_override(None).expect("change");
        assert_eq!(
            (change.from, change.to, change.reason),
            (
                Profile::Performance,
                Profile::Critical,
                ChangeReason::OverrideCleared
            )
        );
    }

    #[test]
    fn configurable_thresholds() {
        let t = Thresholds {
            saver: 50.0,
            critical: 20.0,
            margin: 10.0,
        };
        t.validate().unwrap();
        assert_eq!(t.next(Profile::Balanced, &bat(50.0)), Profile::Saver);
        assert_eq!(t.next(Profile::Saver, &bat(59.0)), Profile::Saver);
        assert_eq!(t.next(Profile::Saver, &bat(60.0)), Profile::Balanced);
        assert_eq!(t.next(Profile::Critical, &bat(29.0)), Profile::Critical);
        assert_eq!(t.next(Profile::Critical, &bat(30.0)), Profile::Saver);
        let zero_margin = Thresholds {
            margin: 0.0,
            ..Thresholds::default()
        };
        assert_eq!(
            zero_margin.next(Profile::Saver, &bat(30.5)),
            Profile::Balanced
        );
        assert_eq!(
            Thresholds {
                critical: 30.0,
                ..Thresholds::default()
            }
            .validate(),
            Err(("critical", "0 to 100 and below the saver threshold"))
        );
        assert!(Thresholds {
            margin: 60.0,
            ..Thresholds::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn names_round_trip() {
        for p in Profile::ALL {
            assert_eq!(p.to_string().parse::<Profile>().unwrap(), p);
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
            let choice = ProfileChoice::from(Some(p));
            assert_eq!(choice.to_string().parse::<ProfileChoice>().unwrap(), choice);
        }
        assert_eq!(" Saver ".parse::<Profile>().unwrap(), Profile::Saver);
        assert_eq!("AUTO".parse::<ProfileChoice>().unwrap().pinned(), None);
        let e = "turbo".parse::<Profile>().unwrap_err().to_string();
        assert!(e.contains("turbo") && e.contains("performance, balanced, saver, critical"));
        let e = "turbo".parse::<ProfileChoice>().unwrap_err().to_string();
        assert!(e.contains("auto, performance"), "{e}");
        assert!("auto".parse::<Profile>().is_err());
    }

    fn base(cores: usize, stt: u32, llm: u32) -> Base {
        Base {
            stt_model: "base.en".into(),
            stt_threads: stt,
            llm_threads: llm,
            llm_max_tokens: 256,
            cores,
        }
    }

    #[test]
    fn settings_are_sane_for_every_base() {
        for cores in 1..=64 {
            for stt in 0..=16 {
                for llm in [0, 1, 2, 3, 6, 16] {
                    let b = base(cores, stt, llm);
                    let [perf, bal, saver, crit] =
                        Profile::ALL.map(|p| ProfileSettings::for_profile(p, &b));
                    let chain = [&perf, &bal, &saver, &crit];
                    for w in chain.windows(2) {
                        let (hi, lo) = (w[0], w[1]);
                        let ctx = format!("{} -> {} {b:?}", hi.profile, lo.profile);
                        assert!(lo.stt_threads <= hi.stt_threads, "{ctx}");
                        assert!(lo.llm_threads <= hi.llm_threads, "{ctx}");
                        assert!(lo.llm_max_tokens <= hi.llm_max_tokens, "{ctx}");
                        assert!(lo.stt_threads >= 1 && lo.llm_threads >= 1, "{ctx}");
                        assert!(hi.online_allowed || !lo.online_allowed, "{ctx}");
                        assert!(hi.partial_transcripts || !lo.partial_transcripts, "{ctx}");
                    }
                    assert_eq!(perf.stt_threads, b.stt_threads_effective());
                    assert_eq!(perf.llm_threads, b.llm_threads_effective());
                    assert!(perf.stt_threads <= 4 || stt > 4);
                }
            }
        }
    }

    #[test]
    fn profile_specific_settings() {
        let b = base(8, 0, 0);
        let s = |p| ProfileSettings::for_profile(p, &b);
        let perf = s(Profile::Performance);
        assert_eq!((perf.stt_threads, perf.llm_threads), (4, 8));
        assert_eq!(perf.whisper_model, None);
        assert_eq!(perf.vad_engine, VadEngine::Silero);
        assert!(perf.always_listening && perf.online_allowed && perf.partial_transcripts);
        let bal = s(Profile::Balanced);
        assert_eq!((bal.stt_threads, bal.llm_threads), (3, 6));
        assert!(bal.online_allowed && bal.always_listening);
        let saver = s(Profile::Saver);
        assert_eq!((saver.stt_threads, saver.llm_threads), (2, 4));
        assert_eq!(saver.whisper_model.as_deref(), Some("tiny.en"));
        assert_eq!(saver.vad_engine, VadEngine::Energy);
        assert!(!saver.online_allowed);
        assert!(saver.always_listening);
        assert_eq!(saver.llm_max_tokens, 128);
        let crit = s(Profile::Critical);
        assert!(!crit.always_listening, "critical is push-to-talk only");
        assert!(!crit.online_allowed);
        assert_eq!(crit.stt_threads, 1);
        assert_eq!(crit.llm_gpu_layers, Some(0));
        assert_eq!(crit.llm_max_tokens, 64);
        assert_eq!(crit.whisper_model_or("base.en"), "tiny.en");
        assert_eq!(perf.whisper_model_or("base.en"), "base.en");
    }

    #[test]
    fn saver_model_follows_the_configured_language() {
        assert_eq!(smaller_whisper("base.en").as_deref(), Some("tiny.en"));
        assert_eq!(smaller_whisper("small.en-q5_1").as_deref(), Some("tiny.en"));
        assert_eq!(smaller_whisper("small").as_deref(), Some("tiny"));
        assert_eq!(
            smaller_whisper("large-v3-turbo-q5_0").as_deref(),
            Some("tiny")
        );
        assert_eq!(smaller_whisper("tiny.en"), None);
        assert_eq!(smaller_whisper("tiny-q5_1"), None);
        assert_eq!(smaller_whisper("/models/my-finetune.bin"), None);
        assert_eq!(smaller_whisper("ggml-custom.bin"), None);
    }
}
