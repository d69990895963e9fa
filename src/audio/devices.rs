//! Audio device discovery and probing (cpal).
//!
//! `Some(device)` from cpal proves nothing: with no sound server, ALSA's `default` device
//! is listed but cannot be opened. [`probe`] therefore opens the device's default
//! configuration, builds a stream, starts it, and waits for the first callback: only a
//! device that delivers or accepts audio counts as usable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use serde::Serialize;

/// Which way audio flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A microphone.
    Input,
    /// A speaker.
    Output,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// A range of configurations a device supports.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigRange {
    /// Channels.
    pub channels: u16,
    /// Lowest sample rate, Hz.
    pub min_rate: u32,
    /// Highest sample rate, Hz.
    pub max_rate: u32,
    /// Sample format, e.g. `f32`, `i16`.
    pub format: String,
}

/// One device as `serena devices` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// The device's stable identifier (e.g. `alsa:pulse`); pass it, or the name without the
    /// host prefix, to `--input-device` / `--output-device`.
    pub id: String,
    /// The human-readable description.
    pub name: String,
    /// Input or output.
    pub direction: Direction,
    /// Whether it is the host's default for its direction.
    pub is_default: bool,
    /// The default configuration, or why it cannot be read.
    pub default_config: Result<ConfigRange, String>,
    /// Supported configuration ranges.
    pub supported: Vec<ConfigRange>,
}

/// Device errors.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No such device.
    #[error("no {direction} device named `{name}`; `serena devices` lists them")]
    NotFound {
        /// Which way.
        direction: Direction,
        /// The name asked for.
        name: String,
    },
    /// The device exists but cannot be used.
    #[error("the {direction} device `{name}` is not usable: {reason}. {hint}")]
    Unusable {
        /// Which way.
        direction: Direction,
        /// The device.
        name: String,
        /// cpal's reason.
        reason: String,
        /// What to do.
        hint: &'static str,
    },
}

impl crate::error::Classify for DeviceError {
    fn exit_code(&self) -> crate::error::ExitCode {
        crate::error::ExitCode::Device
    }
}

/// alsa-lib prints its own errors to standard error (`cannot find card '0'`, ...) whenever
/// cpal asks for a device on a machine without a sound card. Serena reports those failures
/// itself, with a fix, so alsa-lib's copies are silenced once per process.
pub fn quiet_alsa() {
    #[cfg(target_os = "linux")]
    {
        use std::os::raw::{c_char, c_int};
        static ONCE: std::sync::Once = std::sync::Once::new();
        unsafe extern "C" fn silent(
            _: *const c_char,
            _: c_int,
            _: *const c_char,
            _: c_int,
            _: *const c_char,
        ) {
        }
        ONCE.call_once(|| {
            // SAFETY: the handler ignores the variadic arguments; on the Linux ABIs alsa-lib
            // supports, fixed arguments are passed the same way to variadic and non-variadic
            // functions, so a non-variadic function is a valid handler.
            unsafe {
                let handler: unsafe extern "C" fn(
                    *const c_char,
                    c_int,
                    *const c_char,
                    c_int,
                    *const c_char,
                    ...
                ) = std::mem::transmute(
                    silent
                        as unsafe extern "C" fn(
                            *const c_char,
                            c_int,
                            *const c_char,
                            c_int,
                            *const c_char,
                        ),
                );
                alsa_sys::snd_lib_error_set_handler(Some(handler));
            }
        });
    }
}

fn hint(direction: Direction) -> &'static str {
    match direction {
        Direction::Input => {
            "Use --input-file to read a WAV file instead, or start a sound server (PulseAudio or PipeWire)"
        }
        Direction::Output => {
            "Use --output-file to write replies to a WAV file instead, or start a sound server (PulseAudio or PipeWire)"
        }
    }
}

fn device_id(device: &cpal::Device) -> Option<String> {
    device.id().ok().map(|id| id.to_string())
}

/// Whether `wanted` names this device: its id (`alsa:pulse`), the id without the host
/// (`pulse`), or its description.
fn matches(device: &cpal::Device, wanted: &str) -> bool {
    if let Some(id) = device_id(device) {
        if id == wanted || id.split_once(':').is_some_and(|(_, rest)| rest == wanted) {
            return true;
        }
    }
    device_name(device) == wanted
}

pub(crate) fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_string())
        .or_else(|_| device.id().map(|id| id.to_string()))
        .unwrap_or_else(|_| "unknown".into())
}

fn range(r: &cpal::SupportedStreamConfigRange) -> ConfigRange {
    ConfigRange {
        channels: r.channels(),
        min_rate: r.min_sample_rate(),
        max_rate: r.max_sample_rate(),
        format: r.sample_format().to_string(),
    }
}

/// Every input and output device of the default host.
pub fn list() -> Vec<DeviceInfo> {
    quiet_alsa();
    let host = cpal::default_host();
    let mut out = Vec::new();
    for direction in [Direction::Input, Direction::Output] {
        let default_id = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .and_then(|d| device_id(&d));
        let devices: Vec<cpal::Device> = match direction {
            Direction::Input => host.input_devices().map(|d| d.collect()),
            Direction::Output => host.output_devices().map(|d| d.collect()),
        }
        .unwrap_or_default();
        for device in devices {
            let name = device_name(&device);
            let (default_config, supported) = match direction {
                Direction::Input => (
                    device.default_input_config().map(|c| ConfigRange {
                        channels: c.channels(),
                        min_rate: c.sample_rate(),
                        max_rate: c.sample_rate(),
                        format: c.sample_format().to_string(),
                    }),
                    device
                        .supported_input_configs()
                        .map(|it| it.map(|r| range(&r)).collect())
                        .unwrap_or_default(),
                ),
                Direction::Output => (
                    device.default_output_config().map(|c| ConfigRange {
                        channels: c.channels(),
                        min_rate: c.sample_rate(),
                        max_rate: c.sample_rate(),
                        format: c.sample_format().to_string(),
                    }),
                    device
                        .supported_output_configs()
                        .map(|it| it.map(|r| range(&r)).collect())
                        .unwrap_or_default(),
                ),
            };
            let id = device_id(&device).unwrap_or_else(|| name.clone());
            out.push(DeviceInfo {
                is_default: default_id.as_deref() == Some(id.as_str()),
                id,
                name,
                direction,
                default_config: default_config.map_err(|e| e.to_string()),
                supported,
            });
        }
    }
    out
}

/// Find a device by name (`default` or empty: the host default).
///
/// # Errors
/// [`DeviceError::NotFound`] when no device has that name.
pub fn find(direction: Direction, name: &str) -> Result<cpal::Device, DeviceError> {
    quiet_alsa();
    let host = cpal::default_host();
    let not_found = || DeviceError::NotFound {
        direction,
        name: name.to_string(),
    };
    if name.is_empty() || name == "default" {
        return match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .ok_or_else(not_found);
    }
    let devices: Vec<cpal::Device> = match direction {
        Direction::Input => host.input_devices().map(|d| d.collect()),
        Direction::Output => host.output_devices().map(|d| d.collect()),
    }
    .map_err(|_| not_found())?;
    devices
        .into_iter()
        .find(|d| matches(d, name))
        .ok_or_else(not_found)
}

/// What a successful probe saw.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// The device.
    pub name: String,
    /// The configuration it ran with.
    pub config: ConfigRange,
    /// Milliseconds until the first callback.
    pub first_callback_ms: u64,
}

/// Open `name` for `direction`, start a stream and wait up to `timeout` for its first
/// callback.
///
/// # Errors
/// [`DeviceError`] saying why the device cannot be used and what to do instead.
pub fn probe(direction: Direction, name: &str, timeout: Duration) -> Result<Probe, DeviceError> {
    let device = find(direction, name)?;
    let dev_name = device_name(&device);
    let unusable = |reason: String| DeviceError::Unusable {
        direction,
        name: dev_name.clone(),
        reason: reason.trim_end_matches('.').to_string(),
        hint: hint(direction),
    };
    let config = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(|e| unusable(e.to_string()))?;
    let summary = ConfigRange {
        channels: config.channels(),
        min_rate: config.sample_rate(),
        max_rate: config.sample_rate(),
        format: config.sample_format().to_string(),
    };
    let seen = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let stream = {
        let seen = Arc::clone(&seen);
        let failed_cb = Arc::clone(&failed);
        let on_error = move |_e: cpal::Error| failed_cb.store(true, Ordering::Relaxed);
        let stream_config = config.config();
        match direction {
            Direction::Input => device.build_input_stream_raw(
                stream_config,
                config.sample_format(),
                move |_data: &cpal::Data, _: &cpal::InputCallbackInfo| {
                    seen.store(true, Ordering::Relaxed)
                },
                on_error,
                None,
            ),
            Direction::Output => device.build_output_stream_raw(
                stream_config,
                config.sample_format(),
                move |data: &mut cpal::Data, _: &cpal::OutputCallbackInfo| {
                    // Silence: zero bytes are silence for every sample format but u8/u16,
                    // which no current backend defaults to.
                    data.bytes_mut().fill(0);
                    seen.store(true, Ordering::Relaxed);
                },
                on_error,
                None,
            ),
        }
    }
    .map_err(|e| unusable(e.to_string()))?;
    stream.play().map_err(|e| unusable(e.to_string()))?;
    while started.elapsed() < timeout {
        if seen.load(Ordering::Relaxed) {
            return Ok(Probe {
                name: dev_name,
                config: summary,
                first_callback_ms: started.elapsed().as_millis() as u64,
            });
        }
        if failed.load(Ordering::Relaxed) {
            return Err(unusable("the stream reported an error".into()));
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
    Err(unusable(format!(
        "no audio callback within {} ms",
        timeout.as_millis()
    )))
}
