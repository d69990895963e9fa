//! The power monitor: a tokio task that reads a [`PowerSource`] every interval, runs the
//! [`Selector`], publishes the profile in force and reports changes.
//!
//! - The profile in force is in a `watch` channel ([`PowerHandle::current`],
//!   [`PowerHandle::watch`], which [`super::ProfileGate`] reads).
//! - Changes go out as [`ProfileEvent`]s on a bounded broadcast channel
//!   ([`PowerHandle::subscribe`]); a subscriber that falls behind loses the oldest events,
//!   and the loss is counted ([`MonitorStats::dropped_events`]).
//! - A failed read keeps the profile in force and is counted; each distinct error is logged
//!   once (a warning), and the recovery once. If the very first read fails Serena assumes
//!   mains power (performance) and says so in the log.
//! - An override ([`PowerHandle::set_override`]) applies at once, from any thread, and
//!   pins the profile until cleared.
//!
//! Reads happen on the monitor's task: they are a few small file reads (sysfs, a power
//! file) or one IOKit query, far below a millisecond.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::time::MissedTickBehavior;

use super::profile::{Profile, ProfileChange, Selector, Thresholds};
use super::source::{PowerSource, PowerState};

/// Default time between two reads of the power source.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default capacity of the event channel.
pub const DEFAULT_EVENT_CAPACITY: usize = 16;
/// At most this many distinct error messages are remembered for "log once".
const MAX_REMEMBERED_ERRORS: usize = 32;

/// How the monitor runs.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    /// Time between reads.
    pub interval: Duration,
    /// Battery levels where profiles change.
    pub thresholds: Thresholds,
    /// A profile pinned from the start (`[power] profile`, or the stored voice choice).
    pub pinned: Option<Profile>,
    /// Events a subscriber may fall behind by before it loses the oldest.
    pub event_capacity: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: DEFAULT_INTERVAL,
            thresholds: Thresholds::default(),
            pinned: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

/// A change of the profile in force, when it happened and the reading behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileEvent {
    /// The change.
    pub change: ProfileChange,
    /// Wall-clock time, Unix milliseconds.
    pub at_unix_ms: u64,
    /// The last power reading when it happened (none before the first good read).
    pub state: Option<PowerState>,
}

/// Counters, for `serena status` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MonitorStats {
    /// Successful reads.
    pub reads: u64,
    /// Failed reads.
    pub errors: u64,
    /// Changes of the profile in force.
    pub changes: u64,
    /// Events subscribers lost by falling behind.
    pub dropped_events: u64,
    /// The error of the last read, if it failed.
    pub last_error: Option<String>,
}

struct Core {
    selector: Selector,
    last_error: Option<String>,
    logged_errors: HashSet<String>,
}

struct Shared {
    core: Mutex<Core>,
    profile_tx: watch::Sender<Profile>,
    events_tx: broadcast::Sender<ProfileEvent>,
    reads: AtomicU64,
    errors: AtomicU64,
    changes: AtomicU64,
    dropped: Arc<AtomicU64>,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publish a change. Called with the core locked so that events keep their order.
    fn publish(&self, core: &Core, change: ProfileChange) {
        tracing::info!(
            from = %change.from,
            to = %change.to,
            reason = %change.reason,
            "power profile changed"
        );
        self.changes.fetch_add(1, Ordering::Relaxed);
        self.profile_tx.send_replace(change.to);
        let event = ProfileEvent {
            change,
            at_unix_ms: now_unix_ms(),
            state: core.selector.last_state().cloned(),
        };
        // No subscriber is fine: the watch channel holds the profile anyway.
        let _ = self.events_tx.send(event);
    }

    fn stats(&self) -> MonitorStats {
        MonitorStats {
            reads: self.reads.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            dropped_events: self.dropped.load(Ordering::Relaxed),
            last_error: self.core().last_error.clone(),
        }
    }
}

/// The monitor task. Create with [`PowerMonitor::new`], run with [`PowerMonitor::run`]
/// (or [`PowerMonitor::spawn`]); talk to it through its [`PowerHandle`].
pub struct PowerMonitor {
    source: Box<dyn PowerSource>,
    interval: Duration,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PowerMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerMonitor")
            .field("source", &self.source.describe())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// Talks to a running [`PowerMonitor`]. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct PowerHandle {
    shared: Arc<Shared>,
    profile_rx: watch::Receiver<Profile>,
}

impl std::fmt::Debug for PowerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerHandle")
            .field("current", &self.current())
            .field("pinned", &self.pinned())
            .finish()
    }
}

impl PowerMonitor {
    /// A monitor over `source`. Reads it once now, so the profile is right before the
    /// first utterance; if that read fails, assumes mains (performance) and logs a warning.
    pub fn new(
        mut source: Box<dyn PowerSource>,
        config: MonitorConfig,
    ) -> (PowerMonitor, PowerHandle) {
        let mut core = Core {
            selector: Selector::new(config.thresholds),
            last_error: None,
            logged_errors: HashSet::new(),
        };
        let first = source.read();
        let (reads, errors) = match &first {
            Ok(state) => {
                core.selector.update(state);
                (1, 0)
            }
            Err(e) => {
                tracing::warn!(
                    source = %source.describe(),
                    error = %e,
                    "cannot read the power source; assuming mains power"
                );
                core.last_error = Some(e.to_string());
                core.logged_errors.insert(e.to_string());
                (0, 1)
            }
        };
        core.selector.set_override(config.pinned);
        tracing::info!(
            source = %source.describe(),
            state = %first.as_ref().map_or_else(|_| "unreadable".to_string(), ToString::to_string),
            profile = %core.selector.current(),
            pinned = config.pinned.is_some(),
            "power monitor started"
        );
        let (profile_tx, profile_rx) = watch::channel(core.selector.current());
        let (events_tx, _) = broadcast::channel(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            profile_tx,
            events_tx,
            reads: AtomicU64::new(reads),
            errors: AtomicU64::new(errors),
            changes: AtomicU64::new(0),
            dropped: Arc::new(AtomicU64::new(0)),
        });
        let handle = PowerHandle {
            shared: Arc::clone(&shared),
            profile_rx,
        };
        let monitor = PowerMonitor {
            source,
            interval: config.interval.max(Duration::from_millis(1)),
            shared,
        };
        (monitor, handle)
    }

    /// Read the source once and apply the reading; the change, if any.
    pub fn poll_now(&mut self) -> Option<ProfileChange> {
        let reading = self.source.read();
        let shared = &self.shared;
        let mut core = shared.core();
        match reading {
            Ok(state) => {
                shared.reads.fetch_add(1, Ordering::Relaxed);
                if let Some(previous) = core.last_error.take() {
                    tracing::info!(
                        source = %self.source.describe(),
                        %state,
                        last_error = %previous,
                        "power source readable again"
                    );
                }
                let change = core.selector.update(&state);
                if let Some(change) = &change {
                    shared.publish(&core, change.clone());
                }
                change
            }
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let message = e.to_string();
                let first_time = !core.logged_errors.contains(&message)
                    && core.logged_errors.len() < MAX_REMEMBERED_ERRORS;
                if first_time {
                    core.logged_errors.insert(message.clone());
                    tracing::warn!(
                        source = %self.source.describe(),
                        error = %message,
                        profile = %core.selector.current(),
                        "cannot read the power source; keeping the current profile"
                    );
                } else {
                    tracing::debug!(error = %message, "power source still unreadable");
                }
                core.last_error = Some(message);
                None
            }
        }
    }

    /// Poll every interval until `shutdown` completes; returns the final counters.
    /// The first poll is one interval after this call ([`PowerMonitor::new`] read once).
    /// Ticks missed while the process was stopped or busy are not made up
    /// ([`MissedTickBehavior::Delay`]). `shutdown` can be any future: a `watch` wait, a
    /// `CancellationToken::cancelled_owned()`, or Serena's `Shutdown::wait`.
    pub async fn run<F>(mut self, shutdown: F) -> MonitorStats
    where
        F: Future<Output = ()>,
    {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticker.tick() => {
                    self.poll_now();
                }
            }
        }
        tracing::debug!("power monitor stopped");
        self.shared.stats()
    }

    /// [`PowerMonitor::run`] on a new task.
    pub fn spawn<F>(self, shutdown: F) -> tokio::task::JoinHandle<MonitorStats>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.run(shutdown))
    }
}

impl PowerHandle {
    /// The profile in force.
    pub fn current(&self) -> Profile {
        *self.profile_rx.borrow()
    }

    /// A receiver of the profile in force (for [`super::ProfileGate`] or `changed()`).
    pub fn watch(&self) -> watch::Receiver<Profile> {
        self.profile_rx.clone()
    }

    /// Pin `Some(profile)` until cleared with `None` (back to automatic). Applies at once;
    /// returns the change of the profile in force, which subscribers also receive.
    pub fn set_override(&self, pinned: Option<Profile>) -> Option<ProfileChange> {
        let mut core = self.shared.core();
        let change = core.selector.set_override(pinned);
        if let Some(change) = &change {
            self.shared.publish(&core, change.clone());
        }
        drop(core);
        change
    }

    /// The pinned profile, if any.
    pub fn pinned(&self) -> Option<Profile> {
        self.shared.core().selector.pinned()
    }

    /// The profile the power source alone calls for.
    pub fn automatic(&self) -> Profile {
        self.shared.core().selector.automatic()
    }

    /// The last good reading.
    pub fn last_state(&self) -> Option<PowerState> {
        self.shared.core().selector.last_state().cloned()
    }

    /// Receive the changes from now on.
    pub fn subscribe(&self) -> ProfileEvents {
        ProfileEvents {
            rx: self.shared.events_tx.subscribe(),
            dropped: Arc::clone(&self.shared.dropped),
        }
    }

    /// The counters.
    pub fn stats(&self) -> MonitorStats {
        self.shared.stats()
    }
}

/// A subscription to [`ProfileEvent`]s. Events it fell behind on are skipped and counted.
#[derive(Debug)]
pub struct ProfileEvents {
    rx: broadcast::Receiver<ProfileEvent>,
    dropped: Arc<AtomicU64>,
}

impl ProfileEvents {
    /// The next event; `None` once the monitor and every handle are gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<ProfileEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lost(n),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<ProfileEvent> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lost(n),
                Err(_) => return None,
            }
        }
    }

    fn lost(&self, n: u64) {
        tracing::warn!(lost = n, "power events dropped: subscriber fell behind");
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::profile::ChangeReason;
    use crate::power::source::{ChargeState, FileSource, SimulatedSource};
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    fn write(path: &std::path::Path, text: &str) {
        // Atomic replace, as the FileSource documentation asks.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn config() -> MonitorConfig {
        MonitorConfig::default()
    }

    #[tokio::test(start_paused = true)]
    async fn file_rewritten_while_running_moves_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("power");
        write(&path, "battery:80:discharging\n");
        let (monitor, handle) = PowerMonitor::new(Box::new(FileSource::new(&path)), config());
        assert_eq!(handle.current(), Profile::Balanced, "read once at creation");
        let mut events = handle.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = monitor.spawn(async move {
            let _ = stopped.await;
        });
        let start = Instant::now();

        let steps = [
            ("battery:25:discharging", Profile::Saver),
            ("battery:8:discharging", Profile::Critical),
            ("battery:8:charging", Profile::Performance),
            ("battery:32:discharging", Profile::Balanced),
        ];
        for (i, (text, want)) in steps.into_iter().enumerate() {
            write(&path, text);
            // Paused clock: waiting idles the runtime, so tokio jumps to the next tick.
            let event = events.recv().await.expect("event");
            assert_eq!(event.change.to, want, "{text}");
            assert_eq!(handle.current(), want);
            // Exactly one interval per step: nothing is read between ticks.
            let ticks = u32::try_from(i + 1).unwrap();
            assert_eq!(start.elapsed(), DEFAULT_INTERVAL * ticks, "{text}");
            assert!(event.at_unix_ms > 0);
            assert_eq!(event.state.as_ref().and_then(|s| s.percent), {
                let p: f32 = text.split(':').nth(1).unwrap().parse().unwrap();
                Some(p)
            });
        }

        stop.send(()).unwrap();
        let stats = task.await.unwrap();
        assert_eq!(stats.reads, 5);
        assert_eq!(stats.changes, 4);
        assert_eq!(stats.errors, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn read_errors_keep_the_profile_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("power");
        write(&path, "battery:20:discharging");
        let (monitor, handle) = PowerMonitor::new(Box::new(FileSource::new(&path)), config());
        assert_eq!(handle.current(), Profile::Saver);
        let mut events = handle.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = monitor.spawn(async move {
            let _ = stopped.await;
        });

        write(&path, "battery:twenty:discharging");
        // Three ticks of bad content, then a missing file for two.
        tokio::time::sleep(DEFAULT_INTERVAL * 3 + Duration::from_secs(1)).await;
        std::fs::remove_file(&path).unwrap();
        tokio::time::sleep(DEFAULT_INTERVAL * 2).await;
        assert_eq!(handle.current(), Profile::Saver);
        let stats = handle.stats();
        assert_eq!(stats.errors, 5);
        assert!(
            stats
                .last_error
                .as_deref()
                .unwrap()
                .contains("cannot read power file"),
            "{stats:?}"
        );
        assert!(events.try_recv().is_none());
        // Two distinct errors (bad content, missing file), each logged once.
        assert_eq!(handle.shared.core().logged_errors.len(), 2);

        write(&path, "mains");
        let event = events.recv().await.unwrap();
        assert_eq!(event.change.to, Profile::Performance);
        assert_eq!(event.change.reason, ChangeReason::Mains);
        assert_eq!(handle.stats().last_error, None);
        stop.send(()).unwrap();
        assert_eq!(task.await.unwrap().errors, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_source_at_start_means_mains() {
        let dir = tempfile::tempdir().unwrap();
        let (monitor, handle) = PowerMonitor::new(
            Box::new(FileSource::new(dir.path().join("absent"))),
            config(),
        );
        assert_eq!(handle.current(), Profile::Performance);
        assert_eq!(handle.stats().errors, 1);
        assert_eq!(handle.last_state(), None);
        drop(monitor);
    }

    #[tokio::test(start_paused = true)]
    async fn override_pins_while_the_battery_moves() {
        let sim = SimulatedSource::new(PowerState::battery(80.0, ChargeState::Discharging));
        let (monitor, handle) = PowerMonitor::new(
            Box::new(sim.clone()),
            MonitorConfig {
                pinned: Some(Profile::Performance),
                ..config()
            },
        );
        assert_eq!(handle.current(), Profile::Performance);
        assert_eq!(handle.automatic(), Profile::Balanced);
        let mut events = handle.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = monitor.spawn(async move {
            let _ = stopped.await;
        });

        // "Use saver mode": applies at once, without waiting for a poll.
        let change = handle.set_override(Some(Profile::Saver)).unwrap();
        assert_eq!(change.to, Profile::Saver);
        assert_eq!(handle.current(), Profile::Saver);
        assert_eq!(events.recv().await.unwrap().change, change);

        sim.set(PowerState::battery(5.0, ChargeState::Discharging));
        tokio::time::sleep(DEFAULT_INTERVAL * 2).await;
        assert_eq!(handle.current(), Profile::Saver, "pinned");
        assert_eq!(handle.automatic(), Profile::Critical);
        assert!(events.try_recv().is_none());

        // "Use automatic mode": the battery's choice at once.
        let change = handle.set_override(None).unwrap();
        assert_eq!(
            (change.to, change.reason),
            (Profile::Critical, ChangeReason::OverrideCleared)
        );
        assert_eq!(events.recv().await.unwrap().change.to, Profile::Critical);
        assert_eq!(handle.pinned(), None);
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_subscriber_loses_old_events_and_they_are_counted() {
        let sim = SimulatedSource::new(PowerState::mains());
        let (_monitor, handle) = PowerMonitor::new(
            Box::new(sim),
            MonitorConfig {
                event_capacity: 2,
                ..config()
            },
        );
        let mut events = handle.subscribe();
        for p in [
            Profile::Saver,
            Profile::Balanced,
            Profile::Critical,
            Profile::Saver,
            Profile::Balanced,
        ] {
            handle.set_override(Some(p)).unwrap();
        }
        let first = events.recv().await.unwrap();
        assert_eq!(first.change.to, Profile::Saver, "the fourth change");
        assert_eq!(events.try_recv().unwrap().change.to, Profile::Balanced);
        assert!(events.try_recv().is_none());
        let stats = handle.stats();
        assert_eq!(stats.dropped_events, 3);
        assert_eq!(stats.changes, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_task() {
        let (monitor, handle) = PowerMonitor::new(
            Box::new(SimulatedSource::new(PowerState::mains())),
            config(),
        );
        let (tx, mut rx) = watch::channel(false);
        let task = monitor.spawn(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        tokio::time::sleep(DEFAULT_INTERVAL * 3 + Duration::from_secs(1)).await;
        tx.send_replace(true);
        let stats = task.await.unwrap();
        assert_eq!(stats.reads, 4);
        assert_eq!(handle.stats().reads, 4);
    }
}
