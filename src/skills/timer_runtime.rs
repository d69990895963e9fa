//! Firing timers: a sans-I/O core ([`plan`]) and a thin tokio task ([`run`]).
//!
//! Timers live in the store ([`TimerRecord`]: a running timer's deadline is a wall-clock
//! time), so the runtime keeps no state of its own: each round it reads the active timers,
//! fires those that are due (marks them `fired` in the store, durably, then reports a
//! [`TimerEvent`]) and sleeps until the next deadline, or until told that timers changed
//! (a new timer, pause, resume, extend, cancel), or at most [`MAX_SLEEP`] so that a jump
//! of the wall clock (suspend, NTP) is noticed. A restart therefore needs nothing special:
//! timers that came due while no Serena ran are due at the first round and fire once, with
//! [`TimerEvent::late_ms`] saying how late.
//!
//! Time comes from a [`Clock`]: [`WallClock`] in production, [`TokioClock`] (which follows
//! tokio's pausable clock) in tests.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::control::Shutdown;
use crate::store::{Store, StoreError, TimerRecord, TimerState};

use super::say_duration;

/// Longest sleep between two looks at the store while timers run.
pub const MAX_SLEEP: Duration = Duration::from_secs(10);
/// Longest sleep when no timer runs (only a change can make one due).
pub const IDLE_SLEEP: Duration = Duration::from_secs(300);
/// A timer that fires this much after its deadline is reported as late.
pub const LATE_AFTER_MS: u64 = 2_000;
/// Wait after a store failure before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch, from some clock.
pub trait Clock: Send + Sync + 'static {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> u64 {
        crate::store::now_ms()
    }
}

/// A clock that starts at `base_ms` and advances with tokio's clock, so that tests can
/// pause and advance time (`#[tokio::test(start_paused = true)]`).
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base_ms: u64,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `base_ms` now.
    pub fn new(base_ms: u64) -> TokioClock {
        TokioClock {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(elapsed)
    }
}

/// A timer that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The timer as stored (still running).
    pub timer: TimerRecord,
    /// How long after its deadline it is.
    pub late_ms: u64,
}

/// What to do now: the timers that are due, and when to look again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Running timers whose deadline is at or before now, earliest first.
    pub due: Vec<Due>,
    /// The earliest deadline still ahead (unix ms), if any timer runs.
    pub next_deadline_ms: Option<u64>,
}

/// The sans-I/O core: given the active timers and now, what is due and what is next.
/// Paused (and finished) timers are never due.
pub fn plan(timers: &[TimerRecord], now_ms: u64) -> Plan {
    let mut due: Vec<Due> = Vec::new();
    let mut next: Option<u64> = None;
    for t in timers.iter().filter(|t| t.state == TimerState::Running) {
        let deadline = t.deadline_ms();
        if deadline <= now_ms {
            due.push(Due {
                timer: t.clone(),
                late_ms: now_ms - deadline,
            });
        } else {
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
        }
    }
    due.sort_by_key(|d| (d.timer.deadline_ms(), d.timer.id));
    Plan {
        due,
        next_deadline_ms: next,
    }
}

/// How long to sleep after `plan` at `now_ms`.
pub fn sleep_for(plan: &Plan, now_ms: u64) -> Duration {
    match plan.next_deadline_ms {
        Some(deadline) => Duration::from_millis(deadline.saturating_sub(now_ms)).min(MAX_SLEEP),
        None => IDLE_SLEEP,
    }
}

/// A timer went off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimerEvent {
    /// The timer's id.
    pub id: u64,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its duration in milliseconds.
    pub duration_ms: u64,
    /// Its deadline, unix ms.
    pub deadline_ms: u64,
    /// When it fired, unix ms.
    pub fired_ms: u64,
    /// How long after the deadline it fired (large when it came due while no Serena ran).
    pub late_ms: u64,
}

impl TimerEvent {
    /// What to say: "Pasta timer done", "Timer done", and how late when it is
    /// ("Timer done (it ended 3 minutes ago)").
    pub fn message(&self) -> String {
        let mut text = match self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(name) => {
                let mut chars = name.chars();
                let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
                format!("{}{} timer done", first.unwrap_or_default(), chars.as_str())
            }
            None => "Timer done".to_string(),
        };
        if self.late_ms >= LATE_AFTER_MS {
            text.push_str(&format!(
                " (it ended {} ago)",
                say_duration(self.late_ms / 1000)
            ));
        }
        text
    }
}

/// The timer task: fires due timers until `shutdown`, re-reading the store whenever
/// `changed` is notified. Events go to `events` (bounded; a slow reader delays the next
/// firing, never loses one); a closed channel is ignored. Store failures are logged and
/// retried.
pub async fn run<C: Clock>(
    store: Arc<Store>,
    clock: C,
    changed: Arc<Notify>,
    events: mpsc::Sender<TimerEvent>,
    shutdown: Shutdown,
) {
    loop {
        let wait = match round(&store, &clock, &events).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "timer runtime: store failure; retrying");
                RETRY_AFTER
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = changed.notified() => {}
            () = shutdown.wait() => return,
        }
    }
}

/// One round: fire what is due; return how long to sleep.
async fn round<C: Clock>(
    store: &Arc<Store>,
    clock: &C,
    events: &mpsc::Sender<TimerEvent>,
) -> Result<Duration, StoreError> {
    let s = Arc::clone(store);
    let active = blocking(move || s.active_timers()).await?;
    let now = clock.now_ms();
    let p = plan(&active, now);
    for due in p.due {
        if let Some(event) = fire(store, due, now).await? {
            tracing::info!(id = event.id, late_ms = event.late_ms, "timer done");
            // A closed channel (nobody listens) is fine: the timer is marked fired anyway.
            let _ = events.send(event).await;
        }
    }
    // Firing took time: plan the sleep from the clock's current reading.
    Ok(sleep_for(
        &plan(&active_after(store).await?, clock.now_ms()),
        clock.now_ms(),
    ))
}

async fn active_after(store: &Arc<Store>) -> Result<Vec<TimerRecord>, StoreError> {
    let s = Arc::clone(store);
    blocking(move || s.active_timers()).await
}

/// Marks a due timer fired (durably) unless it changed since it was read (cancelled,
/// paused or extended meanwhile). Returns the event to report.
async fn fire(store: &Arc<Store>, due: Due, now_ms: u64) -> Result<Option<TimerEvent>, StoreError> {
    let s = Arc::clone(store);
    blocking(move || {
        let Some(mut t) = s.timer(due.timer.id)? else {
            return Ok(None);
        };
        if t != due.timer {
            return Ok(None);
        }
        t.state = TimerState::Fired;
        s.update_timer(&t)?;
        Ok(Some(TimerEvent {
            id: t.id,
            name: t.name.clone(),
            duration_ms: t.duration_ms,
            deadline_ms: t.deadline_ms(),
            fired_ms: now_ms,
            late_ms: due.late_ms,
        }))
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Db(format!("timer store task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TimerRecord;

    const T0: u64 = 1_700_000_000_000;

    fn running(id: u64, duration_ms: u64, started: u64) -> TimerRecord {
        TimerRecord {
            id,
            ..TimerRecord::new_running(None, duration_ms, started)
        }
    }

    #[test]
    fn plan_picks_due_and_next() {
        let mut paused = running(3, 1_000, T0);
        paused.pause(T0);
        let timers = vec![
            running(1, 10_000, T0),
            running(2, 5_000, T0),
            paused,
            running(4, 1_000, T0 - 60_000),
        ];
        let p = plan(&timers, T0 + 5_000);
        let ids: Vec<u64> = p.due.iter().map(|d| d.timer.id).collect();
        assert_eq!(ids, vec![4, 2]);
        assert_eq!(p.due[0].late_ms, 64_000);
        assert_eq!(p.due[1].late_ms, 0);
        assert_eq!(p.next_deadline_ms, Some(T0 + 10_000));
        assert_eq!(sleep_for(&p, T0 + 5_000), Duration::from_secs(5));
        assert_eq!(
            sleep_for(&plan(&[running(1, 60_000, T0)], T0), T0),
            MAX_SLEEP
        );
        assert_eq!(sleep_for(&plan(&[], T0), T0), IDLE_SLEEP);
    }

    #[test]
    fn messages() {
        let mut e = TimerEvent {
            id: 1,
            name: Some("pasta".into()),
            duration_ms: 1,
            deadline_ms: 1,
            fired_ms: 1,
            late_ms: 10,
        };
        assert_eq!(e.message(), "Pasta timer done");
        e.name = None;
        assert_eq!(e.message(), "Timer done");
        e.late_ms = 180_500;
        assert_eq!(e.message(), "Timer done (it ended 3 minutes ago)");
    }

    struct Rig {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        clock: TokioClock,
        changed: Arc<Notify>,
        events: mpsc::Receiver<TimerEvent>,
        shutdown: Shutdown,
        task: tokio::task::JoinHandle<()>,
    }

    impl Rig {
        /// A store holding `timers` (built at the clock's start), with the runtime started.
        async fn start(make: impl FnOnce(u64) -> Vec<TimerRecord>) -> Rig {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(Store::open(dir.path()).expect("store"));
            let clock = TokioClock::new(T0);
            for t in make(T0) {
                store.insert_timer(t).expect("insert");
            }
            Rig::run(dir, store, clock)
        }

        fn run(dir: tempfile::TempDir, store: Arc<Store>, clock: TokioClock) -> Rig {
            let changed = Arc::new(Notify::new());
            let (tx, events) = mpsc::channel(8);
            let shutdown = Shutdown::new();
            let task = tokio::spawn(run(
                Arc::clone(&store),
                clock,
                Arc::clone(&changed),
                tx,
                shutdown.clone(),
            ));
            Rig {
                _dir: dir,
                store,
                clock,
                changed,
                events,
                shutdown,
                task,
            }
        }

        /// The next event if one comes within `within` (tokio time).
        async fn event_within(&mut self, within: Duration) -> Option<TimerEvent> {
            tokio::time::timeout(within, self.events.recv())
                .await
                .ok()
                .flatten()
        }

        fn update(&self, id: u64, f: impl FnOnce(&mut TimerRecord, u64)) {
            let mut t = self.store.timer(id).expect("read").expect("timer");
            f(&mut t, self.clock.now_ms());
            self.store.update_timer(&t).expect("update");
            self.changed.notify_one();
        }

        async fn stop(self) -> (tempfile::TempDir, Arc<Store>) {
            self.shutdown.trigger();
            self.task.await.expect("runtime task");
            (self._dir, self.store)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_and_marks_fired() {
        let mut rig =
            Rig::start(|t0| vec![TimerRecord::new_running(Some("tea".into()), 10_000, t0)]).await;
        assert_eq!(rig.event_within(Duration::from_millis(9_900)).await, None);
        let e = rig
            .event_within(Duration::from_millis(200))
            .await
            .expect("fired");
        assert_eq!(e.name.as_deref(), Some("tea"));
        assert!(e.late_ms < 100, "late by {} ms", e.late_ms);
        assert_eq!(e.message(), "Tea timer done");
        let stored = rig.store.timer(e.id).expect("read").expect("timer");
        assert_eq!(stored.state, TimerState::Fired);
        // Fires once.
        assert_eq!(rig.event_within(Duration::from_secs(60)).await, None);
        rig.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn paused_timers_wait_and_resume_with_what_was_left() {
        let mut rig = Rig::start(|t0| vec![TimerRecord::new_running(None, 10_000, t0)]).await;
        let id = rig.store.timers().expect("timers")[0].id;
        assert_eq!(rig.event_within(Duration::from_secs(3)).await, None);
        rig.update(id, |t, now| t.pause(now));
        assert_eq!(rig.event_within(Duration::from_secs(600)).await, None);
        rig.update(id, |t, now| t.resume(now));
        assert_eq!(rig.event_within(Duration::from_millis(6_900)).await, None);
        let e = rig
            .event_within(Duration::from_millis(200))
            .await
            .expect("fired");
        assert_eq!(e.id, id);
        rig.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn extending_and_cancelling_take_effect() {
        let mut rig = Rig::start(|t0| {
            vec![
                TimerRecord::new_running(Some("a".into()), 10_000, t0),
                TimerRecord::new_running(Some("b".into()), 20_000, t0),
            ]
        })
        .await;
        let ids: Vec<u64> = rig
            .store
            .timers()
            .expect("timers")
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(rig.event_within(Duration::from_secs(5)).await, None);
        // a: +10 s (now due at 20 s); b: cancelled.
        rig.update(ids[0], |t, _| t.duration_ms += 10_000);
        rig.update(ids[1], |t, _| t.state = TimerState::Cancelled);
        assert_eq!(rig.event_within(Duration::from_millis(14_900)).await, None);
        let e = rig
            .event_within(Duration::from_millis(200))
            .await
            .expect("fired");
        assert_eq!(e.name.as_deref(), Some("a"));
        assert_eq!(rig.event_within(Duration::from_secs(60)).await, None);
        let (_, store) = rig.stop().await;
        assert_eq!(
            store.timer(ids[1]).expect("read").expect("b").state,
            TimerState::Cancelled
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_fires_what_came_due_and_keeps_the_rest() {
        // First run: two timers, stop after 2 s.
        let rig = Rig::start(|t0| {
            vec![
                TimerRecord::new_running(Some("short".into()), 5_000, t0),
                TimerRecord::new_running(Some("long".into()), 60_000, t0),
            ]
        })
        .await;
        tokio::time::advance(Duration::from_secs(2)).await;
        let (dir, store) = rig.stop().await;
        // Serena is down for 30 s (the clock of the next run starts 32 s after T0).
        let store = Arc::try_unwrap(store).expect("sole owner");
        store.close().expect("close");
        let store = Arc::new(Store::open(dir.path()).expect("reopen"));
        let mut rig = Rig::run(dir, store, TokioClock::new(T0 + 32_000));
        let e = rig
            .event_within(Duration::from_millis(100))
            .await
            .expect("late timer fires at once");
        assert_eq!(e.name.as_deref(), Some("short"));
        assert_eq!(e.late_ms, 27_000);
        assert!(e.message().contains("ago"), "{}", e.message());
        // "long" has 28 s left.
        assert_eq!(rig.event_within(Duration::from_millis(27_900)).await, None);
        let e = rig
            .event_within(Duration::from_millis(200))
            .await
            .expect("fired");
        assert_eq!(e.name.as_deref(), Some("long"));
        assert!(e.late_ms < 100);
        rig.stop().await;
    }
}
