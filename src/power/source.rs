//! Where the power comes from: mains or battery, and how full the battery is.
//!
//! A [`PowerSource`] produces a [`PowerState`] each time it is read. Three sources exist:
//!
//! - [`BatterySource`]: the machine's batteries through the `battery` crate (sysfs on Linux,
//!   IOKit on macOS), several batteries aggregated by energy. No battery means mains.
//! - [`SimulatedSource`]: a fixed (but settable) state, parsed from `SERENA_POWER`.
//! - [`FileSource`]: a file holding the same syntax, re-read on every read, so that a test
//!   can move Serena between profiles while it runs (`SERENA_POWER=file:/tmp/power`).
//!
//! The syntax ([`parse_spec`]) is `mains`, `battery:<percent>:discharging`,
//! `battery:<percent>:charging` or `battery:<percent>:full`. A charging or full battery
//! means the machine is plugged in, exactly as a real battery reports it, so only
//! `discharging` puts Serena on battery.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The environment variable that replaces the system's power source.
pub const ENV_VAR: &str = "SERENA_POWER";

/// What [`parse_spec`] and `SERENA_POWER` accept, for error messages.
pub const ALLOWED: &str = "`mains`, `battery:<percent>:discharging`, \
     `battery:<percent>:charging` or `battery:<percent>:full` (percent 0 to 100); \
     SERENA_POWER also takes `file:<path>` naming a file that holds one of these";

/// What the battery is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeState {
    /// Plugged in and charging.
    Charging,
    /// Running on the battery.
    Discharging,
    /// Plugged in, battery full.
    Full,
    /// No battery, or the battery does not say (e.g. plugged in but held at a charge limit).
    Unknown,
}

impl fmt::Display for ChargeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChargeState::Charging => "charging",
            ChargeState::Discharging => "discharging",
            ChargeState::Full => "full",
            ChargeState::Unknown => "unknown",
        })
    }
}

/// One reading of the power source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerState {
    /// Running on the battery (nothing plugged in, or a charger too weak to keep up).
    pub on_battery: bool,
    /// State of charge, 0 to 100; `None` when there is no battery.
    pub percent: Option<f32>,
    /// What the battery is doing; [`ChargeState::Unknown`] without a battery.
    pub state: ChargeState,
    /// Estimated time until the battery is empty, while discharging and when known.
    pub time_to_empty: Option<Duration>,
}

impl PowerState {
    /// Mains power with no battery.
    pub fn mains() -> PowerState {
        PowerState {
            on_battery: false,
            percent: None,
            state: ChargeState::Unknown,
            time_to_empty: None,
        }
    }

    /// A battery at `percent` (clamped to 0..=100) in `state`; on battery only when
    /// discharging.
    pub fn battery(percent: f32, state: ChargeState) -> PowerState {
        PowerState {
            on_battery: state == ChargeState::Discharging,
            percent: Some(clamp_percent(percent)),
            state,
            time_to_empty: None,
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.on_battery { "battery" } else { "mains" };
        match self.percent {
            None => f.write_str(source),
            Some(p) => write!(f, "{source}, {p:.0}% {}", self.state),
        }
    }
}

/// Reading or configuring the power source failed.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// A power specification (from `SERENA_POWER` or a power file) does not parse.
    #[error("invalid power source {value:?} in {origin}: {reason}; expected {ALLOWED}")]
    Invalid {
        /// Where the text came from: `SERENA_POWER` or `file <path>`.
        origin: String,
        /// The text as given (trimmed).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The power file could not be read.
    #[error("cannot read power file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `battery` crate failed (no permission, an unexpected platform reply).
    #[error("cannot read the battery: {0}")]
    Battery(String),
}

/// Something that reports the power state. Reads are cheap (a few small file reads or an
/// IOKit query) and are made from the power monitor's task every poll interval.
pub trait PowerSource: Send {
    /// The current state.
    ///
    /// # Errors
    /// [`PowerError`] when the source cannot be read; the caller keeps its last profile.
    fn read(&mut self) -> Result<PowerState, PowerError>;

    /// A short description for logs and `serena status`.
    fn describe(&self) -> String;
}

/// Parse a power specification: `mains`, `battery:<percent>:<discharging|charging|full>`.
/// Case and surrounding spaces are ignored; the percent may end in `%`. `origin` names
/// where the text came from, for the error.
///
/// # Errors
/// [`PowerError::Invalid`] naming the value, the origin and what is allowed.
pub fn parse_spec(text: &str, origin: &str) -> Result<PowerState, PowerError> {
    let value = text.trim();
    let invalid = |reason: String| PowerError::Invalid {
        origin: origin.to_string(),
        value: value.to_string(),
        reason,
    };
    let lower = value.to_ascii_lowercase();
    if lower == "mains" {
        return Ok(PowerState::mains());
    }
    let parts: Vec<&str> = lower.split(':').map(str::trim).collect();
    match parts.as_slice() {
        [""] => Err(invalid("it is empty".into())),
        ["battery", percent, state] => {
            let number = percent.strip_suffix('%').unwrap_or(percent).trim();
            let percent: f32 = number
                .parse()
                .map_err(|_| invalid(format!("`{percent}` is not a number")))?;
            if !(0.0..=100.0).contains(&percent) {
                return Err(invalid(format!("percent {percent} is outside 0 to 100")));
            }
            let state = match *state {
                "discharging" => ChargeState::Discharging,
                "charging" => ChargeState::Charging,
                "full" => ChargeState::Full,
                other => {
                    return Err(invalid(format!(
                        "unknown battery state `{other}` (discharging, charging or full)"
                    )))
                }
            };
            Ok(PowerState::battery(percent, state))
        }
        ["battery", ..] => Err(invalid(
            "a battery needs a percent and a state, e.g. `battery:15:discharging`".into(),
        )),
        [first, ..] => Err(invalid(format!("unknown source `{first}`"))),
        [] => Err(invalid("it is empty".into())),
    }
}

/// The power source for this process: `SERENA_POWER` when set (a specification, or
/// `file:<path>` for a [`FileSource`]), otherwise the machine's batteries.
///
/// # Errors
/// [`PowerError::Invalid`] when `SERENA_POWER` is set but malformed (or not UTF-8): a test
/// that asks for a simulated battery must not silently get the real one.
pub fn from_env_or_system() -> Result<Box<dyn PowerSource>, PowerError> {
    match std::env::var_os(ENV_VAR) {
        None => from_env_value(None),
        Some(raw) => match raw.to_str() {
            Some(value) => from_env_value(Some(value)),
            None => Err(PowerError::Invalid {
                origin: ENV_VAR.into(),
                value: raw.to_string_lossy().into_owned(),
                reason: "it is not valid UTF-8".into(),
            }),
        },
    }
}

/// [`from_env_or_system`] for a given value of `SERENA_POWER` (`None` or empty: unset).
///
/// # Errors
/// [`PowerError::Invalid`] for a malformed value or an empty `file:` path.
pub fn from_env_value(value: Option<&str>) -> Result<Box<dyn PowerSource>, PowerError> {
    let value = value.map(str::trim).unwrap_or("");
    if value.is_empty() {
        return Ok(Box::new(BatterySource::new()));
    }
    if let Some(path) = value.strip_prefix("file:") {
        if path.trim().is_empty() {
            return Err(PowerError::Invalid {
                origin: ENV_VAR.into(),
                value: value.into(),
                reason: "`file:` needs a path".into(),
            });
        }
        return Ok(Box::new(FileSource::new(path.trim())));
    }
    Ok(Box::new(SimulatedSource::parse(value, ENV_VAR)?))
}

/// A fixed power state that tests (or `SERENA_POWER`) choose. Clones share the state, so a
/// test can keep one clone and [`SimulatedSource::set`] it while a monitor reads another.
#[derive(Clone, Debug)]
pub struct SimulatedSource {
    state: Arc<Mutex<PowerState>>,
}

impl SimulatedSource {
    /// A source that reports `state`.
    pub fn new(state: PowerState) -> SimulatedSource {
        SimulatedSource {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A source from a specification ([`parse_spec`]).
    ///
    /// # Errors
    /// [`PowerError::Invalid`].
    pub fn parse(text: &str, origin: &str) -> Result<SimulatedSource, PowerError> {
        parse_spec(text, origin).map(SimulatedSource::new)
    }

    /// Report `state` from now on (in every clone).
    pub fn set(&self, state: PowerState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    fn get(&self) -> PowerState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl PowerSource for SimulatedSource {
    fn read(&mut self) -> Result<PowerState, PowerError> {
        Ok(self.get())
    }

    fn describe(&self) -> String {
        format!("simulated ({})", self.get())
    }
}

/// A file holding a power specification, read again on every read. Blank lines and lines
/// starting with `#` are skipped; the first other line counts. Replace the file atomically
/// (write elsewhere, rename) or a read may see it half written; that read is an error and
/// the monitor keeps its profile.
#[derive(Clone, Debug)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path`. The file need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl PowerSource for FileSource {
    fn read(&mut self) -> Result<PowerState, PowerError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| PowerError::Read {
            path: self.path.clone(),
            source,
        })?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        parse_spec(line, &format!("file {}", self.path.display()))
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// The machine's batteries through the `battery` crate. Holds no platform handle (the
/// crate's `Manager` is not `Send`), so each read opens one; that is a directory listing
/// on Linux and an IOKit lookup on macOS.
#[derive(Clone, Debug)]
pub struct BatterySource {
    /// Where Linux lists power supplies; AC adapters there say whether mains is present.
    sysfs: PathBuf,
}

impl Default for BatterySource {
    fn default() -> Self {
        BatterySource::new()
    }
}

impl BatterySource {
    /// The system's batteries.
    pub fn new() -> BatterySource {
        BatterySource {
            sysfs: PathBuf::from("/sys/class/power_supply"),
        }
    }
}

impl PowerSource for BatterySource {
    fn read(&mut self) -> Result<PowerState, PowerError> {
        let manager = battery::Manager::new().map_err(battery_error)?;
        let mut readings = Vec::new();
        for battery in manager.batteries().map_err(battery_error)? {
            readings.push(BatteryReading::from_battery(
                &battery.map_err(battery_error)?,
            ));
        }
        let ac = if cfg!(target_os = "linux") {
            ac_online(&self.sysfs)
        } else {
            None
        };
        Ok(aggregate(&readings, ac))
    }

    fn describe(&self) -> String {
        "system batteries".into()
    }
}

fn battery_error(e: battery::Error) -> PowerError {
    use std::error::Error as _;
    let text = e.to_string();
    match e.source().map(ToString::to_string) {
        Some(source) if source != text => PowerError::Battery(format!("{text}: {source}")),
        _ => PowerError::Battery(text),
    }
}

/// One battery's numbers, in plain units, for [`aggregate`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BatteryReading {
    /// Energy now, Wh.
    pub energy_wh: f32,
    /// Energy when full, Wh.
    pub energy_full_wh: f32,
    /// State of charge, percent.
    pub percent: f32,
    /// Charge or discharge rate, W (positive).
    pub rate_w: f32,
    /// What it is doing.
    pub state: ChargeState,
    /// The crate's own estimate.
    pub time_to_empty: Option<Duration>,
}

impl BatteryReading {
    fn from_battery(b: &battery::Battery) -> BatteryReading {
        use battery::units::energy::watt_hour;
        use battery::units::power::watt;
        use battery::units::ratio::percent;
        use battery::units::time::second;
        BatteryReading {
            energy_wh: b.energy().get::<watt_hour>(),
            energy_full_wh: b.energy_full().get::<watt_hour>(),
            percent: b.state_of_charge().get::<percent>(),
            rate_w: b.energy_rate().get::<watt>().abs(),
            state: match b.state() {
                battery::State::Charging => ChargeState::Charging,
                battery::State::Discharging => ChargeState::Discharging,
                battery::State::Full => ChargeState::Full,
                // `Empty` while plugged in is a dead battery, not a reason to save power;
                // on battery the firmware says `Discharging`.
                _ => ChargeState::Unknown,
            },
            time_to_empty: b
                .time_to_empty()
                .and_then(|t| Duration::try_from_secs_f32(t.get::<second>()).ok()),
        }
    }
}

/// Several batteries as one: percent by energy (`Σ energy / Σ energy_full`; the mean
/// percent when energies are missing), on battery when any battery discharges or when
/// the AC adapters (`ac`, Linux only) say nothing is plugged in. No battery is mains.
pub(crate) fn aggregate(readings: &[BatteryReading], ac: Option<bool>) -> PowerState {
    if readings.is_empty() {
        return PowerState::mains();
    }
    let finite = |x: f32| if x.is_finite() && x > 0.0 { x } else { 0.0 };
    let energy: f32 = readings.iter().map(|r| finite(r.energy_wh)).sum();
    let full: f32 = readings.iter().map(|r| finite(r.energy_full_wh)).sum();
    let percent = if full > 0.0 {
        energy / full * 100.0
    } else {
        readings.iter().map(|r| finite(r.percent)).sum::<f32>() / readings.len() as f32
    };
    let discharging = readings.iter().any(|r| r.state == ChargeState::Discharging);
    let on_battery = discharging || ac == Some(false);
    let state = if on_battery {
        ChargeState::Discharging
    } else if readings.iter().any(|r| r.state == ChargeState::Charging) {
        ChargeState::Charging
    } else if readings.iter().all(|r| r.state == ChargeState::Full) {
        ChargeState::Full
    } else {
        ChargeState::Unknown
    };
    let rate: f32 = readings.iter().map(|r| finite(r.rate_w)).sum();
    let time_to_empty = if !on_battery {
        None
    } else if rate > 0.0 && energy > 0.0 {
        Duration::try_from_secs_f32(energy / rate * 3600.0).ok()
    } else if let [only] = readings {
        only.time_to_empty
    } else {
        None
    };
    PowerState {
        on_battery,
        percent: Some(clamp_percent(percent)),
        state,
        time_to_empty,
    }
}

/// Whether an AC adapter is online, from Linux's power supply class: `Some(true)` when
/// any mains or USB supply (not a peripheral's) is online, `Some(false)` when such
/// supplies exist and none is, `None` when there are none (or no such directory).
pub(crate) fn ac_online(root: &Path) -> Option<bool> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut seen = false;
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let dir = entry.path();
        let Some(kind) = read(dir.join("type")) else {
            continue;
        };
        if kind != "Mains" && !kind.starts_with("USB") {
            continue;
        }
        if read(dir.join("scope")).as_deref() == Some("Device") {
            continue;
        }
        let Some(online) = read(dir.join("online")) else {
            continue;
        };
        seen = true;
        if online != "0" {
            return Some(true);
        }
    }
    seen.then_some(false)
}

fn clamp_percent(p: f32) -> f32 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(energy: f32, full: f32, state: ChargeState) -> BatteryReading {
        BatteryReading {
            energy_wh: energy,
            energy_full_wh: full,
            percent: if full > 0.0 {
                energy / full * 100.0
            } else {
                0.0
            },
            rate_w: 0.0,
            state,
            time_to_empty: None,
        }
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(parse_spec("mains", "t").unwrap(), PowerState::mains());
        assert_eq!(parse_spec("  MAINS\n", "t").unwrap(), PowerState::mains());

        let s = parse_spec("battery:15:discharging", "t").unwrap();
        assert!(s.on_battery);
        assert_eq!(s.percent, Some(15.0));
        assert_eq!(s.state, ChargeState::Discharging);

        let s = parse_spec("battery:80:charging", "t").unwrap();
        assert!(!s.on_battery, "a charging battery is plugged in");
        assert_eq!((s.percent, s.state), (Some(80.0), ChargeState::Charging));

        let s = parse_spec("battery:100:full", "t").unwrap();
        assert!(!s.on_battery);
        assert_eq!((s.percent, s.state), (Some(100.0), ChargeState::Full));

        let s = parse_spec("Battery: 42.5% : Discharging", "t").unwrap();
        assert_eq!(s.percent, Some(42.5));
        assert!(s.on_battery);
    }

    #[test]
    fn bad_specs_say_what_is_wrong_and_what_is_allowed() {
        let cases = [
            ("", "empty"),
            ("battery", "needs a percent and a state"),
            ("battery:15", "needs a percent and a state"),
            ("battery:15:discharging:x", "needs a percent and a state"),
            ("battery:abc:discharging", "`abc` is not a number"),
            ("battery:150:discharging", "outside 0 to 100"),
            ("battery:-1:discharging", "outside 0 to 100"),
            ("battery:nan:discharging", "outside 0 to 100"),
            ("battery:50:sleeping", "unknown battery state `sleeping`"),
            ("solar", "unknown source `solar`"),
            ("ac", "unknown source `ac`"),
        ];
        for (text, reason) in cases {
            let msg = parse_spec(text, ENV_VAR).unwrap_err().to_string();
            assert!(msg.contains(reason), "{text:?}: {msg}");
            assert!(msg.contains(ENV_VAR), "{text:?}: {msg}");
            assert!(
                msg.contains("`mains`") && msg.contains("battery:<percent>:discharging"),
                "{text:?}: {msg}"
            );
        }
    }

    #[test]
    fn env_value_picks_the_source() {
        assert_eq!(from_env_value(None).unwrap().describe(), "system batteries");
        assert_eq!(
            from_env_value(Some("  ")).unwrap().describe(),
            "system batteries"
        );
        let mut sim = from_env_value(Some("battery:15:discharging")).unwrap();
        assert!(
            sim.describe().starts_with("simulated"),
            "{}",
            sim.describe()
        );
        assert_eq!(sim.read().unwrap().percent, Some(15.0));
        let file = from_env_value(Some("file:/tmp/serena-power")).unwrap();
        assert_eq!(file.describe(), "file /tmp/serena-power");

        let msg = from_env_value(Some("file:")).err().unwrap().to_string();
        assert!(msg.contains("needs a path"), "{msg}");
        let msg = from_env_value(Some("battery:15:dying"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("SERENA_POWER") && msg.contains("dying"),
            "{msg}"
        );
    }

    #[test]
    fn file_source_rereads_the_file_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("power");
        let mut src = FileSource::new(&path);

        let err = src.read().unwrap_err();
        assert!(matches!(err, PowerError::Read { .. }), "{err}");

        std::fs::write(&path, "# simulated power\n\nbattery:50:discharging\n").unwrap();
        assert_eq!(src.read().unwrap().percent, Some(50.0));
        std::fs::write(&path, "mains\n").unwrap();
        assert_eq!(src.read().unwrap(), PowerState::mains());
        std::fs::write(&path, "battery:5:dischrging\n").unwrap();
        let msg = src.read().unwrap_err().to_string();
        assert!(msg.contains("dischrging") && msg.contains("file "), "{msg}");
        std::fs::write(&path, "").unwrap();
        assert!(src.read().unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn simulated_clones_share_state() {
        let a = SimulatedSource::new(PowerState::mains());
        let mut b = a.clone();
        a.set(PowerState::battery(20.0, ChargeState::Discharging));
        assert_eq!(b.read().unwrap().percent, Some(20.0));
    }

    #[test]
    fn this_machine_has_no_battery_so_it_is_on_mains() {
        // The build machine and CI have no battery; the crate must build, run and say so.
        // (On a laptop this test would read the real battery, so it only checks
        // consistency there.)
        let mut src = BatterySource::new();
        match src.read() {
            Ok(state) => {
                let has_battery = std::fs::read_dir("/sys/class/power_supply")
                    .map(|d| {
                        d.flatten().any(|e| {
                            std::fs::read_to_string(e.path().join("type"))
                                .is_ok_and(|t| t.trim() == "Battery")
                        })
                    })
                    .unwrap_or(false);
                if !has_battery {
                    assert_eq!(state, PowerState::mains());
                }
            }
            Err(e) => panic!("battery crate failed on this machine: {e}"),
        }
    }

    #[test]
    fn no_battery_is_mains() {
        assert_eq!(aggregate(&[], None), PowerState::mains());
        assert_eq!(aggregate(&[], Some(false)), PowerState::mains());
    }

    #[test]
    fn batteries_aggregate_by_energy() {
        // A big full-ish battery and a small empty-ish one: 45 of 60 Wh is 75 %,
        // not the 50 % that averaging 90 % and 10 % would give.
        let mut big = reading(45.0 - 1.0, 50.0, ChargeState::Discharging);
        let mut small = reading(1.0, 10.0, ChargeState::Discharging);
        big.rate_w = 10.0;
        small.rate_w = 5.0;
        let s = aggregate(&[big, small], None);
        assert!(s.on_battery);
        assert!((s.percent.unwrap() - 75.0).abs() < 0.01, "{s:?}");
        assert_eq!(s.state, ChargeState::Discharging);
        // 45 Wh at 15 W is three hours.
        let tte = s.time_to_empty.unwrap().as_secs_f32();
        assert!((tte - 3.0 * 3600.0).abs() < 2.0, "{tte}");
    }

    #[test]
    fn missing_energies_fall_back_to_mean_percent() {
        let mut a = reading(0.0, 0.0, ChargeState::Charging);
        a.percent = 40.0;
        let mut b = reading(0.0, 0.0, ChargeState::Full);
        b.percent = 100.0;
        let s = aggregate(&[a, b], None);
        assert_eq!(s.percent, Some(70.0));
        assert!(!s.on_battery);
        assert_eq!(s.state, ChargeState::Charging);
    }

    #[test]
    fn ac_adapter_decides_when_batteries_are_vague() {
        // "Not charging" (a charge limit) reads as Unknown: plugged in, not on battery.
        let held = reading(40.0, 50.0, ChargeState::Unknown);
        assert!(!aggregate(std::slice::from_ref(&held), None).on_battery);
        assert!(!aggregate(std::slice::from_ref(&held), Some(true)).on_battery);
        assert!(aggregate(std::slice::from_ref(&held), Some(false)).on_battery);
        // A discharging battery counts as on battery even with a weak charger online.
        let draining = reading(40.0, 50.0, ChargeState::Discharging);
        assert!(aggregate(&[draining], Some(true)).on_battery);
        // Full everywhere: plugged in.
        let full = reading(50.0, 50.0, ChargeState::Full);
        assert_eq!(aggregate(&[full], None).state, ChargeState::Full);
    }

    #[test]
    fn ac_online_reads_a_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        let supply = |name: &str, kind: &str, online: Option<&str>, scope: Option<&str>| {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            if let Some(o) = online {
                std::fs::write(d.join("online"), format!("{o}\n")).unwrap();
            }
            if let Some(s) = scope {
                std::fs::write(d.join("scope"), format!("{s}\n")).unwrap();
            }
        };
        assert_eq!(ac_online(dir.path()), None);
        assert_eq!(ac_online(&dir.path().join("missing")), None);
        supply("BAT0", "Battery", None, None);
        supply("hidpp_battery_0", "USB", Some("1"), Some("Device"));
        assert_eq!(ac_online(dir.path()), None, "a mouse is not a charger");
        supply("AC", "Mains", Some("0"), None);
        assert_eq!(ac_online(dir.path()), Some(false));
        supply("ucsi-source-psy-USBC000:001", "USB", Some("1"), None);
        assert_eq!(ac_online(dir.path()), Some(true));
    }

    #[test]
    fn display_is_short() {
        assert_eq!(PowerState::mains().to_string(), "mains");
        assert_eq!(
            PowerState::battery(15.4, ChargeState::Discharging).to_string(),
            "battery, 15% discharging"
        );
        assert_eq!(
            PowerState::battery(80.0, ChargeState::Charging).to_string(),
            "mains, 80% charging"
        );
    }
}
