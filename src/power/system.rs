//! What the machine and this process use: CPU load, memory, temperatures ([`SystemProbe`],
//! through sysinfo), and this process's CPU time and peak memory (`getrusage`).

use std::time::{Duration, Instant};

use serde::Serialize;
use sysinfo::{
    Components, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
    MINIMUM_CPU_UPDATE_INTERVAL,
};

/// One look at the machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SystemSnapshot {
    /// Load over all CPUs, 0 to 100, since the previous snapshot; `None` when the previous
    /// CPU sample is younger than sysinfo's minimum interval (200 ms on Linux).
    pub cpu_load_percent: Option<f32>,
    /// Physical memory, bytes.
    pub mem_total: u64,
    /// Memory available to new allocations without swapping, bytes.
    pub mem_available: u64,
    /// This process's resident set, bytes; `None` if it could not be read.
    pub process_rss: Option<u64>,
    /// Temperature sensors, `(label, °C)`, sorted by label; empty where none are exposed
    /// (virtual machines, containers).
    pub temps: Vec<(String, f32)>,
}

/// Takes [`SystemSnapshot`]s. Keep one for repeated snapshots: CPU load is the difference
/// between two samples.
pub struct SystemProbe {
    system: System,
    components: Option<Components>,
    pid: Option<Pid>,
    cpu_sampled: Instant,
}

impl std::fmt::Debug for SystemProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemProbe")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Default for SystemProbe {
    fn default() -> Self {
        SystemProbe::new()
    }
}

impl SystemProbe {
    /// A probe with a first CPU sample taken now.
    pub fn new() -> SystemProbe {
        let mut system = System::new();
        system.refresh_cpu_usage();
        SystemProbe {
            system,
            components: None,
            pid: sysinfo::get_current_pid().ok(),
            cpu_sampled: Instant::now(),
        }
    }

    /// A snapshot now. The first call also lists the temperature sensors.
    pub fn snapshot(&mut self) -> SystemSnapshot {
        let cpu_load_percent = if self.cpu_sampled.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL {
            self.system.refresh_cpu_usage();
            self.cpu_sampled = Instant::now();
            let load = self.system.global_cpu_usage();
            load.is_finite().then(|| load.clamp(0.0, 100.0))
        } else {
            None
        };
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let process_rss = self.pid.and_then(|pid| {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_memory(),
            );
            self.system.process(pid).map(sysinfo::Process::memory)
        });
        let components = match &mut self.components {
            Some(c) => {
                c.refresh(false);
                c
            }
            None => self
                .components
                .insert(Components::new_with_refreshed_list()),
        };
        let mut temps: Vec<(String, f32)> = components
            .list()
            .iter()
            .filter_map(|c| {
                let t = c.temperature()?;
                t.is_finite().then(|| (c.label().to_string(), t))
            })
            .collect();
        temps.sort_by(|a, b| a.0.cmp(&b.0));
        SystemSnapshot {
            cpu_load_percent,
            mem_total: self.system.total_memory(),
            mem_available: self.system.available_memory(),
            process_rss,
            temps,
        }
    }
}

/// A snapshot with a CPU load: samples, waits sysinfo's minimum interval (blocking the
/// thread about 200 ms), samples again. For `serena status`; use a [`SystemProbe`]
/// elsewhere.
pub fn snapshot_blocking() -> SystemSnapshot {
    let mut probe = SystemProbe::new();
    std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL);
    probe.snapshot()
}

/// Memory available to new allocations, bytes: the real check behind
/// [`super::IdleUnloader::with_system_memory`].
pub fn mem_available_bytes() -> u64 {
    let mut system = System::new();
    system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
    system.available_memory()
}

/// CPU time this process has used, user plus system, all threads.
#[cfg(unix)]
pub fn process_cpu_time() -> Duration {
    let Some(usage) = rusage() else {
        return Duration::ZERO;
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time this process has used, user plus system, all threads (sysinfo, millisecond
/// resolution).
#[cfg(not(unix))]
pub fn process_cpu_time() -> Duration {
    let Ok(pid) = sysinfo::get_current_pid() else {
        return Duration::ZERO;
    };
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_cpu(),
    );
    system.process(pid).map_or(Duration::ZERO, |p| {
        Duration::from_millis(p.accumulated_cpu_time())
    })
}

/// The most memory this process has had resident at once, bytes.
///
/// `getrusage`'s `ru_maxrss` (KiB on Linux and the BSDs, bytes on macOS), except that on
/// Linux `VmHWM` from `/proc/self/status` comes first: Linux carries `ru_maxrss` over
/// `execve`, so a process started by a large parent (`cargo test`, `cargo run`) reports
/// the parent's peak (measured: 45 MB for a 3 MB program run by cargo). `None` where
/// the platform does not say.
#[cfg(unix)]
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    if let Some(hwm) = linux_vm_hwm() {
        return Some(hwm);
    }
    let max = u64::try_from(rusage()?.ru_maxrss).ok()?;
    if cfg!(any(target_os = "macos", target_os = "ios")) {
        Some(max)
    } else {
        Some(max.saturating_mul(1024))
    }
}

/// `VmHWM` (peak resident set of this process image) from `/proc/self/status`, bytes.
#[cfg(target_os = "linux")]
fn linux_vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// The most memory this process has had resident at once; not available here.
#[cfg(not(unix))]
pub fn peak_rss_bytes() -> Option<u64> {
    None
}

#[cfg(unix)]
fn rusage() -> Option<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; getrusage fills it or fails.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: zero-initialised is a valid rusage, and on success the kernel filled it.
    (rc == 0).then(|| unsafe { usage.assume_init() })
}

#[cfg(unix)]
fn timeval(t: libc::timeval) -> Duration {
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let micros = u32::try_from(t.tv_usec).unwrap_or(0).min(999_999);
    Duration::new(secs, micros * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reports_plausible_numbers() {
        let mut probe = SystemProbe::new();
        let first = probe.snapshot();
        assert_eq!(
            first.cpu_load_percent, None,
            "no interval since the first sample"
        );
        assert!(first.mem_total > 0);
        assert!(first.mem_available > 0 && first.mem_available <= first.mem_total);
        let rss = first.process_rss.expect("own RSS");
        assert!(rss > 1 << 20, "{rss}");
        assert!(first.temps.windows(2).all(|w| w[0].0 <= w[1].0));

        let s = snapshot_blocking();
        let load = s.cpu_load_percent.expect("load after the minimum interval");
        assert!((0.0..=100.0).contains(&load), "{load}");
        assert!(mem_available_bytes() > 0);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_time();
        assert!(before > Duration::ZERO);
        // Spin until 30 ms of CPU time were used (wall time varies on a busy machine).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        let mut after = before;
        while after < before + Duration::from_millis(30) && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = process_cpu_time();
        }
        assert!(
            after >= before + Duration::from_millis(30),
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn peak_rss_covers_current_rss() {
        let peak = peak_rss_bytes().expect("unix has ru_maxrss");
        let now = SystemProbe::new().snapshot().process_rss.unwrap();
        // Peak is at least the current resident size (allow page rounding between reads).
        assert!(peak + (1 << 20) >= now, "peak {peak} now {now}");
        // And it is bytes, not KiB: a test binary is more than 1 MiB.
        assert!(peak > 1 << 20, "{peak}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_is_this_process_not_the_parent_that_started_it() {
        // Under `cargo test`, ru_maxrss starts at cargo's own peak; touching 128 MiB
        // would not move it. VmHWM starts at this process's and must grow.
        let before = peak_rss_bytes().unwrap();
        let block = vec![1u8; 128 << 20];
        std::hint::black_box(&block);
        let after = peak_rss_bytes().unwrap();
        drop(block);
        assert!(after >= before + (100 << 20), "{before} -> {after}");
    }
}
