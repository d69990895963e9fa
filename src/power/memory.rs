//! Loading models on first use and unloading them when idle or when memory runs low.
//!
//! A [`ModelSlot`] holds at most one loaded engine behind an `Arc`. [`ModelSlot::get`]
//! loads it on first use (on the blocking pool) and hands out clones of the `Arc`;
//! unloading only drops the slot's own `Arc`, so an engine in use is never freed under
//! its user: it goes when the last user lets go, and the next `get` loads it again.
//!
//! An [`IdleUnloader`] task checks its slots every few seconds: a slot unused for its
//! idle time is unloaded (a slot whose engine is in use counts as used), and when the
//! memory available falls below a threshold, loaded slots are unloaded least recently
//! used first until it is back above. The memory check is a function, so tests fake it;
//! [`IdleUnloader::with_system_memory`] uses sysinfo's available memory.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

type Loader<T, E> = dyn Fn(&str) -> Result<T, E> + Send + Sync;

/// A lazily loaded, unloadable engine (a whisper context, an LLM).
pub struct ModelSlot<T, E> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Clone for ModelSlot<T, E> {
    fn clone(&self) -> Self {
        ModelSlot {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T, E> std::fmt::Debug for ModelSlot<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSlot")
            .field("name", &self.inner.name)
            .field("loaded", &self.loaded())
            .field("loads", &self.loads())
            .finish()
    }
}

struct Inner<T, E> {
    name: String,
    idle: Option<Duration>,
    loader: Box<Loader<T, E>>,
    /// Held for the whole of a load, so one load runs at a time.
    load_lock: Arc<tokio::sync::Mutex<()>>,
    state: Mutex<State<T>>,
}

struct State<T> {
    model: Option<Arc<T>>,
    /// What the loaded engine was loaded as (a keyed slot's model name); the key the
    /// next plain `get` loads.
    key: String,
    last_used: Instant,
    loads: u64,
    unloads: u64,
    last_load: Option<Duration>,
}

/// What [`ModelSlot::get_as_blocking`] hands out.
#[derive(Debug)]
pub struct Fetched<T> {
    /// The engine; holding it marks it in use.
    pub engine: Arc<T>,
    /// How long loading it took, when this call loaded it (first use, or a reload after
    /// an unload or for another key).
    pub loaded: Option<Duration>,
}

/// A slot's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotStats {
    /// The slot's name.
    pub name: String,
    /// An engine is loaded.
    pub loaded: bool,
    /// Someone besides the slot holds the engine.
    pub in_use: bool,
    /// Successful loads so far.
    pub loads: u64,
    /// Unloads so far (idle, low memory or explicit).
    pub unloads: u64,
    /// How long the last load took.
    pub last_load: Option<Duration>,
}

impl<T, E> Inner<T, E> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The loaded engine, marked as used now; `key`: only if loaded as that.
    fn touch(&self, key: Option<&str>) -> Option<Arc<T>> {
        let mut state = self.state();
        if key.is_some_and(|k| k != state.key) {
            return None;
        }
        let model = state.model.clone()?;
        state.last_used = Instant::now();
        Some(model)
    }

    /// Run the loader for `key` (`None`: the last key) and store the engine, replacing one
    /// loaded as another key. The caller holds the load lock.
    fn load(&self, key: Option<&str>) -> Result<Arc<T>, E> {
        let key = match key {
            Some(k) => k.to_string(),
            None => self.state().key.clone(),
        };
        // The engine being replaced goes first, so that two are never loaded at once
        // (it lives on only while a user still holds it).
        let replaced = {
            let mut state = self.state();
            let old = state.model.take();
            if old.is_some() {
                state.unloads += 1;
            }
            old
        };
        if replaced.is_some() {
            tracing::info!(model = %self.name, to = %key, "model replaced");
        }
        drop(replaced);
        let started = std::time::Instant::now();
        let model = Arc::new((self.loader)(&key)?);
        let took = started.elapsed();
        let mut state = self.state();
        state.model = Some(Arc::clone(&model));
        state.key = key;
        state.loads += 1;
        state.last_load = Some(took);
        state.last_used = Instant::now();
        let loads = state.loads;
        drop(state);
        tracing::info!(
            model = %self.name,
            load_ms = took.as_millis() as u64,
            loads,
            "model loaded"
        );
        Ok(model)
    }
}

impl<T, E> ModelSlot<T, E>
where
    T: Send + Sync + 'static,
    E: Send + 'static,
{
    /// An empty slot called `name` that loads with `loader` and unloads after `idle`
    /// without use (`None`: only on low memory or [`ModelSlot::unload`]).
    pub fn new<F>(name: &str, idle: Option<Duration>, loader: F) -> ModelSlot<T, E>
    where
        F: Fn() -> Result<T, E> + Send + Sync + 'static,
    {
        ModelSlot::keyed(name, idle, move |_: &str| loader())
    }

    /// An empty slot whose engine is loaded as a key (a model name: the power profile
    /// may ask for another): [`ModelSlot::get_as_blocking`] loads `loader(key)`, replacing
    /// an engine loaded as another key. Plain `get`s load the last key asked for (at first
    /// the empty key).
    pub fn keyed<F>(name: &str, idle: Option<Duration>, loader: F) -> ModelSlot<T, E>
    where
        F: Fn(&str) -> Result<T, E> + Send + Sync + 'static,
    {
        ModelSlot {
            inner: Arc::new(Inner {
                name: name.to_string(),
                idle,
                loader: Box::new(loader),
                load_lock: Arc::new(tokio::sync::Mutex::new(())),
                state: Mutex::new(State {
                    model: None,
                    key: String::new(),
                    last_used: Instant::now(),
                    loads: 0,
                    unloads: 0,
                    last_load: None,
                }),
            }),
        }
    }

    /// The engine, loading it first if needed (on the blocking pool; concurrent callers
    /// wait for the one load). Keep the `Arc` only while using it: holding it marks the
    /// engine in use. Cancel-safe: a load that started finishes and is kept.
    ///
    /// # Errors
    /// The loader's error; nothing is stored and the next call tries again.
    ///
    /// # Panics
    /// If the loader panics (the panic is passed on).
    pub async fn get(&self) -> Result<Arc<T>, E> {
        if let Some(model) = self.inner.touch(None) {
            return Ok(model);
        }
        let guard = Arc::clone(&self.inner.load_lock).lock_owned().await;
        if let Some(model) = self.inner.touch(None) {
            return Ok(model);
        }
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            inner.load(None)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("loading {} was cancelled: {e}", self.inner.name),
        }
    }

    /// [`ModelSlot::get`] for synchronous callers: loads on this thread.
    ///
    /// # Errors
    /// The loader's error.
    ///
    /// # Panics
    /// When called from async code (use `get`, or `spawn_blocking`).
    pub fn get_blocking(&self) -> Result<Arc<T>, E> {
        if let Some(model) = self.inner.touch(None) {
            return Ok(model);
        }
        let _guard = self.inner.load_lock.blocking_lock();
        if let Some(model) = self.inner.touch(None) {
            return Ok(model);
        }
        self.inner.load(None)
    }

    /// The engine loaded as `key`, loading it first (on this thread) when the slot is
    /// empty or holds another key; with how long the load took, when this call loaded.
    ///
    /// # Errors
    /// The loader's error; the slot is then empty and the next call tries again.
    ///
    /// # Panics
    /// When called from async code, as [`ModelSlot::get_blocking`].
    pub fn get_as_blocking(&self, key: &str) -> Result<Fetched<T>, E> {
        if let Some(engine) = self.inner.touch(Some(key)) {
            return Ok(Fetched {
                engine,
                loaded: None,
            });
        }
        let _guard = self.inner.load_lock.blocking_lock();
        if let Some(engine) = self.inner.touch(Some(key)) {
            return Ok(Fetched {
                engine,
                loaded: None,
            });
        }
        let engine = self.inner.load(Some(key))?;
        let loaded = self.inner.state().last_load;
        Ok(Fetched { engine, loaded })
    }

    /// Run `f` on the engine (loading it if needed); the engine is in use meanwhile.
    ///
    /// # Errors
    /// The loader's error.
    ///
    /// # Panics
    /// When called from async code, as [`ModelSlot::get_blocking`].
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, E> {
        let model = self.get_blocking()?;
        Ok(f(&model))
    }
}

impl<T, E> ModelSlot<T, E> {
    /// The slot's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Drop the slot's engine now; it is freed when its last user lets go. Whether one
    /// was loaded.
    pub fn unload(&self) -> bool {
        let mut state = self.inner.state();
        let Some(model) = state.model.take() else {
            return false;
        };
        state.unloads += 1;
        drop(state);
        // Freeing a model can take a while: not under the lock.
        drop(model);
        true
    }

    /// An engine is loaded.
    pub fn loaded(&self) -> bool {
        self.inner.state().model.is_some()
    }

    /// Put in an engine loaded elsewhere (a caller that must report a first load's errors
    /// in its own terms), as loaded for `key` in `took`; replaces what was loaded.
    pub fn put(&self, key: &str, engine: T, took: Duration) -> Arc<T> {
        let engine = Arc::new(engine);
        let mut state = self.inner.state();
        let old = state.model.replace(Arc::clone(&engine));
        if old.is_some() {
            state.unloads += 1;
        }
        state.key = key.to_string();
        state.loads += 1;
        state.last_load = Some(took);
        state.last_used = Instant::now();
        drop(state);
        drop(old);
        engine
    }

    /// The loaded engine, without counting this as a use.
    pub fn peek(&self) -> Option<Arc<T>> {
        self.inner.state().model.clone()
    }

    /// The key the loaded engine was loaded as, when one is loaded.
    pub fn loaded_key(&self) -> Option<String> {
        let state = self.inner.state();
        state.model.as_ref().map(|_| state.key.clone())
    }

    /// Someone besides the slot holds the engine.
    pub fn in_use(&self) -> bool {
        self.inner
            .state()
            .model
            .as_ref()
            .is_some_and(|m| Arc::strong_count(m) > 1)
    }

    /// Successful loads so far.
    pub fn loads(&self) -> u64 {
        self.inner.state().loads
    }

    /// How long the last load took.
    pub fn last_load(&self) -> Option<Duration> {
        self.inner.state().last_load
    }

    /// All counters.
    pub fn stats(&self) -> SlotStats {
        let state = self.inner.state();
        SlotStats {
            name: self.inner.name.clone(),
            loaded: state.model.is_some(),
            in_use: state
                .model
                .as_ref()
                .is_some_and(|m| Arc::strong_count(m) > 1),
            loads: state.loads,
            unloads: state.unloads,
            last_load: state.last_load,
        }
    }
}

/// What an [`IdleUnloader`] needs from a slot; implemented by [`ModelSlot`] for any engine
/// type, so one unloader watches whisper and the LLM together.
pub trait Unloadable: Send + Sync {
    /// The slot's name, for logs and events.
    fn name(&self) -> &str;
    /// When the engine was last used; `None` when nothing is loaded. An engine in use
    /// counts as used now.
    fn last_used(&self, now: Instant) -> Option<Instant>;
    /// Unload if unused for the slot's idle time at `now`; how long it was idle if so.
    fn unload_if_idle(&self, now: Instant) -> Option<Duration>;
    /// Unload now; whether something was loaded.
    fn unload(&self) -> bool;
}

impl<T: Send + Sync, E> Unloadable for ModelSlot<T, E> {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn last_used(&self, now: Instant) -> Option<Instant> {
        let mut state = self.inner.state();
        let in_use = Arc::strong_count(state.model.as_ref()?) > 1;
        if in_use {
            state.last_used = state.last_used.max(now);
        }
        Some(state.last_used)
    }

    fn unload_if_idle(&self, now: Instant) -> Option<Duration> {
        let limit = self.inner.idle?;
        let mut state = self.inner.state();
        let model = state.model.as_ref()?;
        if Arc::strong_count(model) > 1 {
            // In use: the idle time starts when the user lets go (seen at a later check).
            state.last_used = state.last_used.max(now);
            return None;
        }
        let idle = now.saturating_duration_since(state.last_used);
        if idle < limit {
            return None;
        }
        let model = state.model.take();
        state.unloads += 1;
        drop(state);
        drop(model);
        Some(idle)
    }

    fn unload(&self) -> bool {
        ModelSlot::unload(self)
    }
}

/// Why a slot was unloaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnloadReason {
    /// Unused for this long.
    Idle {
        /// How long.
        idle: Duration,
    },
    /// Available memory was below the threshold.
    LowMemory {
        /// Bytes available before this unload.
        available: u64,
        /// The threshold, bytes.
        threshold: u64,
    },
}

/// A slot was unloaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnloadEvent {
    /// The slot's name.
    pub slot: String,
    /// Why.
    pub reason: UnloadReason,
}

/// Counters returned when an [`IdleUnloader`] stops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UnloaderStats {
    /// Checks made.
    pub checks: u64,
    /// Slots unloaded for being idle.
    pub idle_unloads: u64,
    /// Slots unloaded for low memory.
    pub low_memory_unloads: u64,
    /// Events not delivered because the channel was full or closed.
    pub dropped_events: u64,
}

/// Unloads idle slots, and slots in memory pressure. See the module documentation.
pub struct IdleUnloader {
    slots: Vec<Arc<dyn Unloadable>>,
    check_every: Duration,
    min_available: u64,
    mem_available: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for IdleUnloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleUnloader")
            .field(
                "slots",
                &self.slots.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("check_every", &self.check_every)
            .field("min_available", &self.min_available)
            .finish_non_exhaustive()
    }
}

/// Default time between two checks.
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(5);

impl IdleUnloader {
    /// An unloader checking every `check_every`; below `min_available` bytes (as
    /// `mem_available` reports; 0 turns the memory check off) it frees memory.
    pub fn new<F>(check_every: Duration, min_available: u64, mem_available: F) -> IdleUnloader
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        IdleUnloader {
            slots: Vec::new(),
            check_every: check_every.max(Duration::from_millis(1)),
            min_available,
            mem_available: Box::new(mem_available),
        }
    }

    /// [`IdleUnloader::new`] with the system's available memory (sysinfo).
    pub fn with_system_memory(check_every: Duration, min_available: u64) -> IdleUnloader {
        IdleUnloader::new(
            check_every,
            min_available,
            super::system::mem_available_bytes,
        )
    }

    /// Time between two checks.
    pub fn check_every(&self) -> Duration {
        self.check_every
    }

    /// Watch `slot` (a [`ModelSlot`] clone).
    pub fn add(&mut self, slot: impl Unloadable + 'static) -> &mut IdleUnloader {
        self.slots.push(Arc::new(slot));
        self
    }

    /// One check at `now`: idle slots first, then memory. What was unloaded.
    pub fn check(&self, now: Instant) -> Vec<UnloadEvent> {
        let mut events = Vec::new();
        for slot in &self.slots {
            if let Some(idle) = slot.unload_if_idle(now) {
                tracing::info!(
                    model = slot.name(),
                    idle_s = idle.as_secs(),
                    "model unloaded: idle"
                );
                events.push(UnloadEvent {
                    slot: slot.name().to_string(),
                    reason: UnloadReason::Idle { idle },
                });
            }
        }
        if self.min_available == 0 {
            return events;
        }
        let mut available = (self.mem_available)();
        if available >= self.min_available {
            return events;
        }
        let mut loaded: Vec<(Instant, &Arc<dyn Unloadable>)> = self
            .slots
            .iter()
            .filter_map(|s| s.last_used(now).map(|t| (t, s)))
            .collect();
        loaded.sort_by_key(|(t, _)| *t);
        for (_, slot) in loaded {
            if available >= self.min_available {
                break;
            }
            if slot.unload() {
                tracing::warn!(
                    model = slot.name(),
                    available_mb = available >> 20,
                    threshold_mb = self.min_available >> 20,
                    "model unloaded: low memory"
                );
                events.push(UnloadEvent {
                    slot: slot.name().to_string(),
                    reason: UnloadReason::LowMemory {
                        available,
                        threshold: self.min_available,
                    },
                });
                available = (self.mem_available)();
            }
        }
        events
    }

    /// Check every interval until `shutdown` completes, sending what was unloaded to
    /// `events` (if given; never waits on it: a full channel drops and counts).
    pub async fn run<F>(
        self,
        events: Option<mpsc::Sender<UnloadEvent>>,
        shutdown: F,
    ) -> UnloaderStats
    where
        F: Future<Output = ()>,
    {
        let mut stats = UnloaderStats::default();
        let mut ticker = tokio::time::interval(self.check_every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticker.tick() => {
                    stats.checks += 1;
                    for event in self.check(Instant::now()) {
                        match event.reason {
                            UnloadReason::Idle { .. } => stats.idle_unloads += 1,
                            UnloadReason::LowMemory { .. } => stats.low_memory_unloads += 1,
                        }
                        if let Some(tx) = &events {
                            if tx.try_send(event).is_err() {
                                stats.dropped_events += 1;
                            }
                        }
                    }
                }
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::oneshot;

    const MIB: u64 = 1 << 20;

    /// A fake engine that gives its memory back when dropped.
    #[derive(Debug)]
    struct Engine {
        size: u64,
        free: Arc<AtomicU64>,
    }

    impl Drop for Engine {
        fn drop(&mut self) {
            self.free.fetch_add(self.size, Ordering::SeqCst);
        }
    }

    /// A slot whose loader takes `size` bytes from `free` and counts its calls.
    fn slot(
        name: &str,
        idle: Option<Duration>,
        size: u64,
        free: &Arc<AtomicU64>,
    ) -> ModelSlot<Engine, String> {
        let free = Arc::clone(free);
        ModelSlot::new(name, idle, move || {
            free.fetch_sub(size, Ordering::SeqCst);
            Ok(Engine {
                size,
                free: Arc::clone(&free),
            })
        })
    }

    fn plenty() -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(64 << 30))
    }

    #[tokio::test(start_paused = true)]
    async fn idle_unload_then_reload() {
        let idle = Duration::from_secs(60);
        let whisper = slot("whisper", Some(idle), 100 * MIB, &plenty());
        assert!(!whisper.loaded());
        let engine = whisper.get().await.unwrap();
        assert_eq!(engine.size, 100 * MIB);
        assert!(whisper.loaded() && whisper.in_use());
        assert_eq!(whisper.loads(), 1);
        assert!(whisper.last_load().is_some());
        drop(engine);
        assert!(!whisper.in_use());

        let mut unloader = IdleUnloader::new(Duration::from_secs(5), 0, || 0);
        unloader.add(whisper.clone());
        let (tx, mut rx) = mpsc::channel(8);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(unloader.run(Some(tx), async move {
            let _ = stopped.await;
        }));
        let start = Instant::now();

        // The paused clock runs ahead to the check that finds it idle.
        let event = rx.recv().await.unwrap();
        assert_eq!(start.elapsed(), idle);
        assert_eq!(
            event,
            UnloadEvent {
                slot: "whisper".into(),
                reason: UnloadReason::Idle { idle }
            }
        );
        assert!(!whisper.loaded());

        // Used again: loads a second time.
        let _engine = whisper.get().await.unwrap();
        assert_eq!(whisper.loads(), 2);
        assert_eq!(whisper.stats().unloads, 1);

        stop.send(()).unwrap();
        let stats = task.await.unwrap();
        assert_eq!(stats.idle_unloads, 1);
        assert_eq!(stats.low_memory_unloads, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_engine_in_use_is_not_unloaded_for_idleness() {
        let idle = Duration::from_secs(60);
        let llm = slot("llm", Some(idle), 500 * MIB, &plenty());
        let mut unloader = IdleUnloader::new(Duration::from_secs(5), 0, || 0);
        unloader.add(llm.clone());
        let t0 = Instant::now();

        let held = llm.get().await.unwrap();
        assert!(unloader.check(t0 + idle * 3).is_empty(), "in use");
        drop(held);
        // Idle counts from the check that last saw it in use.
        assert!(unloader.check(t0 + idle * 3 + idle / 2).is_empty());
        let events = unloader.check(t0 + idle * 4);
        assert_eq!(events.len(), 1);
        assert!(!llm.loaded());
        assert!(
            unloader.check(t0 + idle * 5).is_empty(),
            "nothing left to unload"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn low_memory_unloads_least_recently_used_first_until_enough() {
        let free = Arc::new(AtomicU64::new(2048 * MIB));
        let whisper = slot("whisper", None, 200 * MIB, &free);
        let llm = slot("llm", None, 900 * MIB, &free);
        let fake = Arc::clone(&free);
        let mut unloader = IdleUnloader::new(Duration::from_secs(5), 1024 * MIB, move || {
            fake.load(Ordering::SeqCst)
        });
        unloader.add(whisper.clone()).add(llm.clone());

        drop(whisper.get().await.unwrap());
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(llm.get().await.unwrap());
        assert_eq!(free.load(Ordering::SeqCst), 948 * MIB);

        // 948 MiB < 1 GiB: whisper (least recently used) goes first, giving 1148 MiB: enough.
        let events = unloader.check(Instant::now());
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].slot, "whisper");
        assert_eq!(
            events[0].reason,
            UnloadReason::LowMemory {
                available: 948 * MIB,
                threshold: 1024 * MIB
            }
        );
        assert!(!whisper.loaded() && llm.loaded());

        // Something else eats memory: the LLM goes too.
        free.fetch_sub(500 * MIB, Ordering::SeqCst);
        let events = unloader.check(Instant::now());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].slot, "llm");
        assert!(!llm.loaded());
    }

    #[tokio::test(start_paused = true)]
    async fn low_memory_unloads_even_in_use_but_the_user_keeps_its_engine() {
        let free = Arc::new(AtomicU64::new(1100 * MIB));
        let llm = slot("llm", None, 900 * MIB, &free);
        let fake = Arc::clone(&free);
        let mut unloader = IdleUnloader::new(Duration::from_secs(5), 1024 * MIB, move || {
            fake.load(Ordering::SeqCst)
        });
        unloader.add(llm.clone());

        let held = llm.get().await.unwrap();
        let events = unloader.check(Instant::now());
        assert_eq!(events.len(), 1);
        assert!(!llm.loaded());
        // Still usable, memory not yet back.
        assert_eq!(held.size, 900 * MIB);
        assert_eq!(free.load(Ordering::SeqCst), 200 * MIB);
        drop(held);
        assert_eq!(free.load(Ordering::SeqCst), 1100 * MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn the_running_unloader_reacts_to_low_memory_within_one_check() {
        let free = Arc::new(AtomicU64::new(4096 * MIB));
        let llm = slot("llm", None, 900 * MIB, &free);
        let fake = Arc::clone(&free);
        let mut unloader = IdleUnloader::new(Duration::from_secs(5), 1024 * MIB, move || {
            fake.load(Ordering::SeqCst)
        });
        unloader.add(llm.clone());
        drop(llm.get().await.unwrap());
        let (tx, mut rx) = mpsc::channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(unloader.run(Some(tx), async move {
            let _ = stopped.await;
        }));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(llm.loaded(), "plenty of memory, no idle limit");

        free.fetch_sub(3000 * MIB, Ordering::SeqCst);
        let start = Instant::now();
        let event = rx.recv().await.unwrap();
        assert!(start.elapsed() <= Duration::from_secs(5));
        assert!(matches!(event.reason, UnloadReason::LowMemory { .. }));
        stop.send(()).unwrap();
        let stats = task.await.unwrap();
        assert_eq!(stats.low_memory_unloads, 1);
        assert!(stats.checks >= 13);
    }

    #[test]
    fn a_keyed_slot_swaps_models_and_reports_each_load() {
        let free = Arc::new(AtomicU64::new(4096 * MIB));
        let f = Arc::clone(&free);
        let slot: ModelSlot<(String, Engine), String> =
            ModelSlot::keyed("whisper", None, move |key: &str| {
                if key == "missing" {
                    return Err(format!("no model {key}"));
                }
                let size = if key == "base.en" {
                    300 * MIB
                } else {
                    100 * MIB
                };
                f.fetch_sub(size, Ordering::SeqCst);
                Ok((
                    key.to_string(),
                    Engine {
                        size,
                        free: Arc::clone(&f),
                    },
                ))
            });
        let first = slot.get_as_blocking("base.en").unwrap();
        assert_eq!(first.engine.0, "base.en");
        assert!(first.loaded.is_some(), "the first use loads");
        drop(first);
        let again = slot.get_as_blocking("base.en").unwrap();
        assert!(again.loaded.is_none(), "kept loaded");
        drop(again);
        assert_eq!(slot.loaded_key().as_deref(), Some("base.en"));

        // Another key replaces the engine: the old one is freed before the new one loads.
        let tiny = slot.get_as_blocking("tiny.en").unwrap();
        assert_eq!(tiny.engine.0, "tiny.en");
        assert!(tiny.loaded.is_some());
        assert_eq!(free.load(Ordering::SeqCst), 4096 * MIB - 100 * MIB);
        drop(tiny);
        // A plain get takes the key last loaded.
        assert_eq!(slot.get_blocking().unwrap().0, "tiny.en");
        assert_eq!(slot.loads(), 2);
        assert_eq!(slot.stats().unloads, 1);

        // A failed load leaves the slot empty; the next call tries again.
        assert_eq!(
            slot.get_as_blocking("missing").unwrap_err(),
            "no model missing"
        );
        assert!(!slot.loaded() && slot.loaded_key().is_none());
        assert_eq!(free.load(Ordering::SeqCst), 4096 * MIB);
        assert!(slot.get_as_blocking("tiny.en").unwrap().loaded.is_some());
    }

    #[tokio::test]
    async fn concurrent_gets_load_once_and_errors_are_not_stored() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&calls);
        let slot: ModelSlot<u64, String> = ModelSlot::new("flaky", None, move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                Err("model file missing".into())
            } else {
                std::thread::sleep(Duration::from_millis(20));
                Ok(n)
            }
        });
        assert_eq!(slot.get().await.unwrap_err(), "model file missing");
        assert!(!slot.loaded());
        assert_eq!(slot.loads(), 0);

        let (a, b, c2) = tokio::join!(slot.get(), slot.get(), slot.get());
        let (a, b, c2) = (a.unwrap(), b.unwrap(), c2.unwrap());
        assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&b, &c2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(slot.loads(), 1);
    }

    #[test]
    fn sync_callers_use_with_and_get_blocking() {
        let free = plenty();
        let s = slot("whisper", Some(Duration::from_secs(1)), 10 * MIB, &free);
        let size = s
            .with(|e| {
                assert!(s.in_use());
                e.size
            })
            .unwrap();
        assert_eq!(size, 10 * MIB);
        assert!(!s.in_use());
        let e = s.get_blocking().unwrap();
        assert_eq!(s.loads(), 1);
        assert!(s.unload());
        assert!(!s.unload());
        drop(e);
        s.get_blocking().unwrap();
        assert_eq!(s.loads(), 2);
    }
}
