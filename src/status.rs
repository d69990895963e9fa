//! `serena status`: the system self-check.
//!
//! Each check says what it found, whether Serena needs it, and how to fix it. Nothing is
//! taken on trust: model files are structurally verified, audio devices are opened and must
//! deliver a callback, the synthesizer must produce audio, the data directory must accept
//! a file, and the power source must be readable.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::audio::devices::{self, Direction};
use crate::config::Config;
use crate::models::{self, Catalog, ModelDirs, ModelKind};

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Works.
    Ok,
    /// Missing or broken, but Serena works without it (with less).
    Warn,
    /// Missing or broken, and required.
    Fail,
}

/// One check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Short identifier, e.g. `stt_model`.
    pub name: &'static str,
    /// Outcome.
    pub level: Level,
    /// Whether Serena needs this to do its main job.
    pub required: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// What was compiled in.
#[derive(Clone, Debug, Serialize)]
pub struct Build {
    /// Serena's version.
    pub version: &'static str,
    /// Compute backends: `cpu`, `metal`, `cuda`, `vulkan`.
    pub backends: Vec<&'static str>,
    /// The one ggml both engines share.
    pub ggml_version: String,
    /// ggml's commit.
    pub ggml_commit: String,
    /// whisper.cpp's version.
    pub whisper_cpp_version: &'static str,
    /// llama.cpp's CPU feature line.
    pub cpu_features: String,
}

/// The full report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when every required check passed.
    pub ok: bool,
    /// Build information.
    pub build: Build,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

fn cstr(ptr: *const std::os::raw::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: ggml returns pointers to static NUL-terminated strings.
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// What this binary was built with.
pub fn build_info() -> Build {
    let mut backends = vec!["cpu"];
    if cfg!(feature = "metal") {
        backends.push("metal");
    }
    if cfg!(feature = "cuda") {
        backends.push("cuda");
    }
    if cfg!(feature = "vulkan") {
        backends.push("vulkan");
    }
    // SAFETY: plain getters of static strings.
    let (ggml_version, ggml_commit) = unsafe {
        (
            cstr(llama_cpp_sys_2::ggml_version()),
            cstr(llama_cpp_sys_2::ggml_commit()),
        )
    };
    Build {
        version: crate::VERSION,
        backends,
        ggml_version,
        ggml_commit,
        whisper_cpp_version: whisper_rs::WHISPER_CPP_VERSION,
        cpu_features: crate::llm::system_info().trim().to_string(),
    }
}

/// Inputs for [`run`].
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// The effective configuration.
    pub config: &'a Config,
    /// Where models are searched.
    pub dirs: &'a ModelDirs,
    /// The model catalog.
    pub catalog: &'a Catalog,
    /// The data directory.
    pub data_dir: &'a Path,
    /// How long to wait for an audio device's first callback.
    pub device_timeout: Duration,
}

/// Run every check.
pub fn run(opts: &Options<'_>) -> Report {
    let catalog = opts.catalog;
    let mut checks = Vec::new();

    let model_check =
        |name: &'static str, spec: &str, kind: ModelKind, required: bool| match models::resolve(
            spec, kind, opts.dirs, catalog,
        ) {
            Ok(found) => Check {
                name,
                level: Level::Ok,
                required,
                detail: format!("{} ({})", found.path.display(), found.format.describe()),
                fix: None,
            },
            Err(e) => Check {
                name,
                level: if required { Level::Fail } else { Level::Warn },
                required,
                detail: e.to_string(),
                fix: Some(match catalog.get(spec) {
                    Some(entry) => format!(
                        "serena models pull {} (or set SERENA_MODELS to a directory holding {})",
                        entry.name, entry.file
                    ),
                    None => {
                        "check the path, or pick a catalog model: serena models list".to_string()
                    }
                }),
            },
        };
    checks.push(model_check(
        "stt_model",
        &opts.config.stt.model,
        ModelKind::Whisper,
        true,
    ));
    checks.push(model_check(
        "vad_model",
        &opts.config.stt.vad_model,
        ModelKind::Vad,
        false,
    ));
    let mut llm = model_check("llm_model", &opts.config.llm.model, ModelKind::Llm, false);
    if llm.level != Level::Ok {
        llm.detail
            .push_str(" — questions the built-in commands do not cover get a fallback reply");
    }
    checks.push(llm);

    for (name, direction, device) in [
        (
            "audio_input",
            Direction::Input,
            &opts.config.audio.input_device,
        ),
        (
            "audio_output",
            Direction::Output,
            &opts.config.audio.output_device,
        ),
    ] {
        checks.push(
            match devices::probe(direction, device, opts.device_timeout) {
                Ok(p) => Check {
                    name,
                    level: Level::Ok,
                    required: false,
                    detail: format!(
                        "{} ({} Hz, {} ch, {}; first callback after {} ms)",
                        p.name,
                        p.config.min_rate,
                        p.config.channels,
                        p.config.format,
                        p.first_callback_ms
                    ),
                    fix: None,
                },
                Err(e) => Check {
                    name,
                    level: Level::Warn,
                    required: false,
                    detail: e.to_string(),
                    fix: Some(match direction {
                        Direction::Input => {
                            "start a sound server with a microphone, or use --input-file WAV".into()
                        }
                        Direction::Output => {
                            "start a sound server with a speaker, or use --output-file WAV".into()
                        }
                    }),
                },
            },
        );
    }

    checks.push(match crate::tts::from_config(&opts.config.tts) {
        Ok(tts) => match tts.synthesize("Serena is ready.") {
            Ok(speech) => Check {
                name: "tts",
                level: Level::Ok,
                required: false,
                detail: format!(
                    "{} ({:.1} s of speech at {} Hz)",
                    tts.name(),
                    speech.duration_s(),
                    speech.sample_rate
                ),
                fix: None,
            },
            Err(e) => Check {
                name: "tts",
                level: Level::Warn,
                required: false,
                detail: e.to_string(),
                fix: Some(
                    "install espeak-ng (apt-get install espeak-ng), or set tts.engine = \"none\""
                        .into(),
                ),
            },
        },
        Err(e) => Check {
            name: "tts",
            level: Level::Warn,
            required: false,
            detail: e.to_string(),
            fix: None,
        },
    });

    checks.push(data_dir_check(opts.data_dir));
    checks.push(power_check(opts.config));
    checks.extend(online_check(opts.config));

    let ok = checks
        .iter()
        .all(|c| !(c.required && c.level == Level::Fail));
    Report {
        ok,
        build: build_info(),
        checks,
    }
}

fn data_dir_check(dir: &Path) -> Check {
    let probe = dir.join(".serena-write-test");
    let result = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => Check {
            name: "data_dir",
            level: Level::Ok,
            required: true,
            detail: format!("{} is writable", dir.display()),
            fix: None,
        },
        Err(e) => Check {
            name: "data_dir",
            level: Level::Fail,
            required: true,
            detail: format!("{}: {e}", dir.display()),
            fix: Some("set general.data_dir or SERENA_DATA_DIR to a writable directory".into()),
        },
    }
}

fn power_check(config: &Config) -> Check {
    let mut source = match crate::power::from_env_or_system() {
        Ok(s) => s,
        Err(e) => {
            return Check {
                name: "power",
                level: Level::Fail,
                required: true,
                detail: e.to_string(),
                fix: Some("fix SERENA_POWER: mains, battery:PERCENT:STATE or file:PATH".into()),
            }
        }
    };
    match source.read() {
        Ok(state) => {
            let auto = config
                .power
                .thresholds()
                .next(crate::power::Profile::Performance, &state);
            let profile = match config.power.profile.pinned() {
                Some(p) => format!("profile {p} (pinned in the configuration)"),
                None => format!("profile {auto} (automatic)"),
            };
            Check {
                name: "power",
                level: Level::Ok,
                required: false,
                detail: format!("{state} from {}; {profile}", source.describe()),
                fix: None,
            }
        }
        Err(e) => Check {
            name: "power",
            level: Level::Warn,
            required: false,
            detail: format!("cannot read the power source: {e}"),
            fix: Some("Serena assumes mains power; battery-aware throttling is off".into()),
        },
    }
}

/// The online model's health: a probe (through its breaker) and the health record.
fn online_check(config: &Config) -> Option<Check> {
    let online = crate::answer::online_for(config)?;
    let probe = online.probe();
    let snap = online.snapshot();
    Some(match probe {
        Ok(latency) => Check {
            name: "online",
            level: Level::Ok,
            required: false,
            detail: format!(
                "{} ({}) answers in {} ms; circuit {:?}, quality {:.2}",
                snap.name,
                snap.url,
                latency.as_millis(),
                snap.state,
                snap.quality
            ),
            fix: None,
        },
        Err(e) => Check {
            name: "online",
            level: Level::Warn,
            required: false,
            detail: format!(
                "{} ({}): {e}; questions go to the local model",
                snap.name, snap.url
            ),
            fix: Some("check [online] url, model and api_key_env, or leave url empty".into()),
        },
    })
}

/// What Serena did recently, from the history: answers by source and per-stage latency.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Activity {
    /// Answers in the window.
    pub answers: usize,
    /// Answers per source (`router`, `online`, `llm`, `fallback`).
    pub by_source: std::collections::BTreeMap<String, usize>,
    /// Answers per power profile.
    pub by_profile: std::collections::BTreeMap<String, usize>,
    /// Per stage (`stt_ms`, `llm_ms`, `route_us`, ...): count, p50 and p95, in the stage's unit.
    pub stages: std::collections::BTreeMap<String, StageStats>,
}

/// Latency of one stage.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct StageStats {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
}

/// Summarise history entries (any order).
pub fn activity(entries: &[crate::store::HistoryEntry]) -> Activity {
    let mut a = Activity {
        answers: entries.len(),
        ..Activity::default()
    };
    let mut samples: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for e in entries {
        let source = serde_json::to_value(e.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *a.by_source.entry(source).or_default() += 1;
        *a.by_profile.entry(e.power_profile.clone()).or_default() += 1;
        for (stage, value) in &e.timings {
            samples.entry(stage.clone()).or_default().push(*value);
        }
    }
    for (stage, mut values) in samples {
        values.sort_unstable();
        let pick = |q: f64| -> u64 {
            let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
            values[i]
        };
        a.stages.insert(
            stage,
            StageStats {
                count: values.len(),
                p50: pick(0.5),
                p95: pick(0.95),
            },
        );
    }
    a
}

#[cfg(test)]
mod activity_tests {
    use super::*;
    use crate::store::{HistoryEntry, InputMode, ReplySource};

    fn entry(source: ReplySource, stt_ms: u64) -> HistoryEntry {
        HistoryEntry {
            id: 0,
            time_ms: 0,
            mode: InputMode::Voice,
            transcript: String::new(),
            intent: None,
            slots: serde_json::json!({}),
            reply: String::new(),
            source,
            timings: [("stt_ms".to_string(), stt_ms)].into_iter().collect(),
            power_profile: "balanced".into(),
        }
    }

    #[test]
    fn percentiles_and_counts() {
        let entries: Vec<HistoryEntry> = (1..=20)
            .map(|i| {
                entry(
                    if i % 2 == 0 {
                        ReplySource::Router
                    } else {
                        ReplySource::Llm
                    },
                    i * 10,
                )
            })
            .collect();
        let a = activity(&entries);
        assert_eq!(a.answers, 20);
        assert_eq!(a.by_source.get("router"), Some(&10));
        assert_eq!(a.by_profile.get("balanced"), Some(&20));
        assert_eq!(
            a.stages.get("stt_ms"),
            Some(&StageStats {
                count: 20,
                p50: 100,
                p95: 190
            })
        );
        assert_eq!(activity(&[]).answers, 0);
    }
}
