//! What a piece of work cost the process: CPU time and peak resident memory.
//!
//! [`Meter::start`] notes the process's CPU time (user + system, all threads: whisper and
//! llama.cpp work on threads of their own) and, on Linux, resets the kernel's peak-RSS mark
//! (`/proc/self/clear_refs`, value 5); [`Meter::finish`] reads both back. Work that overlaps
//! (two requests served at once) is counted in both: the figures are per process, which is
//! what a user pays for. Where the platform has no per-interval peak, the peak is the
//! process's peak so far.

use std::time::Duration;

/// CPU time and peak memory of an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// User + system CPU time of the whole process during the interval.
    pub cpu: Duration,
    /// Peak resident set size during the interval (or so far), in KiB; 0 if unknown.
    pub peak_rss_kb: u64,
}

/// Measures one interval.
#[derive(Debug)]
pub struct Meter {
    cpu_at_start: Duration,
}

impl Meter {
    /// Start measuring.
    pub fn start() -> Meter {
        reset_peak_rss();
        Meter {
            cpu_at_start: process_cpu(),
        }
    }

    /// What the interval cost.
    pub fn finish(&self) -> Usage {
        Usage {
            cpu: process_cpu().saturating_sub(self.cpu_at_start),
            peak_rss_kb: peak_rss_kb(),
        }
    }
}

/// User + system CPU time of this process so far.
pub fn process_cpu() -> Duration {
    #[cfg(unix)]
    {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes into the struct we pass; it is zeroed, and read only
        // after a successful call.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } == 0;
        if ok {
            // SAFETY: initialised by the successful call above.
            let ru = unsafe { ru.assume_init() };
            let tv = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec.max(0) as u64)
                    + Duration::from_micros(t.tv_usec.max(0) as u64)
            };
            return tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    Duration::ZERO
}

/// Peak resident set size in KiB: since the last reset on Linux (`VmHWM`), else the
/// process's peak (`ru_maxrss`).
pub fn peak_rss_kb() -> u64 {
    #[cfg(target_os = "linux")]
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            return kb;
        }
    }
    #[cfg(unix)]
    {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: as in `process_cpu`.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } == 0 {
            // SAFETY: initialised by the successful call above.
            let ru = unsafe { ru.assume_init() };
            let max = ru.ru_maxrss.max(0) as u64;
            // macOS reports bytes, Linux and the BSDs KiB.
            return if cfg!(target_os = "macos") {
                max / 1024
            } else {
                max
            };
        }
    }
    0
}

/// Reset the kernel's peak-RSS mark to the current RSS (Linux); elsewhere nothing.
fn reset_peak_rss() {
    #[cfg(target_os = "linux")]
    {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_work_and_a_big_allocation_show_up() {
        let meter = Meter::start();
        // About 64 MiB touched, and some CPU.
        let mut v = vec![0u8; 64 << 20];
        let mut x = 0u64;
        for (i, b) in v.iter_mut().enumerate().step_by(4096) {
            *b = i as u8;
            x = x.wrapping_mul(31).wrapping_add(i as u64);
        }
        let mut spin = 0u64;
        let until = process_cpu() + Duration::from_millis(30);
        while process_cpu() < until {
            spin = spin.wrapping_add(std::hint::black_box(1));
        }
        let usage = meter.finish();
        std::hint::black_box((&v, x, spin));
        assert!(usage.cpu >= Duration::from_millis(30), "{usage:?}");
        assert!(usage.peak_rss_kb >= 64 * 1024, "{usage:?}");
    }
}
