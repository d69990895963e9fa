//! Health of an online model endpoint: latency and outcome history, a circuit breaker,
//! and the retry backoff.
//!
//! Everything here is pure bookkeeping: no I/O, no sleeping, no clock reads. Every method
//! that needs the time takes `now: Instant` from the caller, so tests drive it with a
//! manual clock and the online client ([`super::online`]) logs the transitions it gets back.
//!
//! - [`Health`] keeps the last [`WINDOW`] latencies and outcomes, counts errors by
//!   [`FailureKind`], and condenses them into a quality score in `0..=1`.
//! - [`CircuitBreaker`] stops calls to an endpoint that keeps failing: `Closed` →
//!   `Open` after `failure_threshold` consecutive failures → `HalfOpen` after a cool-down
//!   (doubling on each failed trial, up to a cap) → one trial request → `Closed` on
//!   success, `Open` again on failure. [`CircuitBreaker::allow`] is O(1) and allocation-free.
//! - [`Backoff`] computes exponential backoff with full jitter and decides whether a retry
//!   still fits before the reply's deadline.
//! - [`Tracker`] bundles a [`Health`] and a [`CircuitBreaker`] for one endpoint.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How many recent latencies and outcomes the health record keeps.
pub const WINDOW: usize = 32;

/// Why an attempt failed, as far as health and retries care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The connection was refused, reset or dropped, or the host was not found.
    Connect,
    /// No (complete) answer within the attempt's time.
    Timeout,
    /// HTTP 429.
    RateLimited,
    /// HTTP 500, 502, 503 or 504.
    Server,
    /// HTTP 401 or 403, or a missing key: the configuration is wrong.
    Config,
    /// Any other HTTP status the request could not succeed with (400, 404, 405, 501, …).
    Rejected,
    /// A reply that is not JSON, misses fields, or holds no text.
    Garbage,
    /// Any other transport or protocol failure (TLS, bad URL, broken HTTP).
    Protocol,
}

impl FailureKind {
    /// Every kind, in the order [`Health::errors_by_kind`] reports them.
    pub const ALL: [FailureKind; 8] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::RateLimited,
        FailureKind::Server,
        FailureKind::Config,
        FailureKind::Rejected,
        FailureKind::Garbage,
        FailureKind::Protocol,
    ];

    /// Whether another attempt may succeed where this one failed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::Connect
                | FailureKind::Timeout
                | FailureKind::RateLimited
                | FailureKind::Server
        )
    }

    /// The kind for an HTTP status that is not a success.
    pub fn from_status(status: u16) -> FailureKind {
        match status {
            429 => FailureKind::RateLimited,
            500 | 502 | 503 | 504 => FailureKind::Server,
            401 | 403 => FailureKind::Config,
            _ => FailureKind::Rejected,
        }
    }

    /// A short lowercase name (`connect`, `timeout`, …).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Server => "server",
            FailureKind::Config => "config",
            FailureKind::Rejected => "rejected",
            FailureKind::Garbage => "garbage",
            FailureKind::Protocol => "protocol",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The health record of one endpoint.
#[derive(Clone, Debug)]
pub struct Health {
    latency_target: Duration,
    /// Ring buffer of the last [`WINDOW`] success latencies.
    latencies: [Duration; WINDOW],
    latency_len: usize,
    latency_next: usize,
    /// Last [`WINDOW`] outcomes, newest in bit 0: 1 = success.
    window_ok: u32,
    /// Last [`WINDOW`] outcomes, newest in bit 0: 1 = garbage reply.
    window_garbage: u32,
    window_len: u32,
    successes: u64,
    failures: u64,
    consecutive_failures: u32,
    errors: [u64; FailureKind::ALL.len()],
    last_error: Option<String>,
    last_error_kind: Option<FailureKind>,
    last_success: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(Duration::from_millis(1500))
    }
}

impl Health {
    /// An empty record. `latency_target` is the latency at or below which an endpoint
    /// scores full marks for speed (see [`Health::quality`]).
    pub fn new(latency_target: Duration) -> Health {
        Health {
            latency_target,
            latencies: [Duration::ZERO; WINDOW],
            latency_len: 0,
            latency_next: 0,
            window_ok: 0,
            window_garbage: 0,
            window_len: 0,
            successes: 0,
            failures: 0,
            consecutive_failures: 0,
            errors: [0; FailureKind::ALL.len()],
            last_error: None,
            last_error_kind: None,
            last_success: None,
            last_failure: None,
        }
    }

    fn push_outcome(&mut self, ok: bool, garbage: bool) {
        self.window_ok = (self.window_ok << 1) | u32::from(ok);
        self.window_garbage = (self.window_garbage << 1) | u32::from(garbage);
        self.window_len = (self.window_len + 1).min(WINDOW as u32);
    }

    /// Record a success. `latency` goes into the latency history; pass `None` for
    /// successes whose latency is not comparable (a probe of the model list).
    pub fn record_success(&mut self, now: Instant, latency: Option<Duration>) {
        self.successes += 1;
        self.consecutive_failures = 0;
        self.last_success = Some(now);
        self.push_outcome(true, false);
        if let Some(latency) = latency {
            self.latencies[self.latency_next] = latency;
            self.latency_next = (self.latency_next + 1) % WINDOW;
            self.latency_len = (self.latency_len + 1).min(WINDOW);
        }
    }

    /// Record a failure of `kind`; `message` becomes [`Health::last_error`].
    pub fn record_failure(&mut self, now: Instant, kind: FailureKind, message: &str) {
        self.failures += 1;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.errors[kind.index()] += 1;
        self.last_failure = Some(now);
        self.push_outcome(false, kind == FailureKind::Garbage);
        let last = self.last_error.get_or_insert_with(String::new);
        last.clear();
        last.push_str(message);
        self.last_error_kind = Some(kind);
    }

    /// Successes since the start.
    pub fn successes(&self) -> u64 {
        self.successes
    }

    /// Failures since the start.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Failures of `kind` since the start.
    pub fn error_count(&self, kind: FailureKind) -> u64 {
        self.errors[kind.index()]
    }

    /// Failures by kind, every kind listed (zeros included), in [`FailureKind::ALL`] order.
    pub fn errors_by_kind(&self) -> impl Iterator<Item = (FailureKind, u64)> + '_ {
        FailureKind::ALL
            .iter()
            .map(|&k| (k, self.errors[k.index()]))
    }

    /// The text of the last failure.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The kind of the last failure.
    pub fn last_error_kind(&self) -> Option<FailureKind> {
        self.last_error_kind
    }

    /// When the last success was recorded.
    pub fn last_success(&self) -> Option<Instant> {
        self.last_success
    }

    /// When the last failure was recorded.
    pub fn last_failure(&self) -> Option<Instant> {
        self.last_failure
    }

    /// Outcomes in the window (at most [`WINDOW`]).
    pub fn window_len(&self) -> u32 {
        self.window_len
    }

    fn window_mask(&self) -> u32 {
        if self.window_len >= 32 {
            u32::MAX
        } else {
            (1u32 << self.window_len) - 1
        }
    }

    /// Share of successes among the last [`WINDOW`] outcomes; 1.0 before any outcome.
    pub fn success_rate(&self) -> f64 {
        if self.window_len == 0 {
            return 1.0;
        }
        f64::from((self.window_ok & self.window_mask()).count_ones()) / f64::from(self.window_len)
    }

    /// Share of garbage replies among the last [`WINDOW`] outcomes.
    pub fn garbage_rate(&self) -> f64 {
        if self.window_len == 0 {
            return 0.0;
        }
        f64::from((self.window_garbage & self.window_mask()).count_ones())
            / f64::from(self.window_len)
    }

    /// The `p`-th percentile (0..=100, nearest rank) of the recorded success latencies.
    pub fn latency_percentile(&self, p: u8) -> Option<Duration> {
        if self.latency_len == 0 {
            return None;
        }
        let mut sorted = self.latencies;
        let sorted = &mut sorted[..self.latency_len];
        sorted.sort_unstable();
        let rank = (usize::from(p.min(100)) * self.latency_len).div_ceil(100);
        Some(sorted[rank.saturating_sub(1)])
    }

    /// Median success latency.
    pub fn p50(&self) -> Option<Duration> {
        self.latency_percentile(50)
    }

    /// 95th-percentile success latency.
    pub fn p95(&self) -> Option<Duration> {
        self.latency_percentile(95)
    }

    /// A score in `0..=1`: success rate × speed × (1 − garbage rate), where speed is 1
    /// while the median latency is within the target and `target / p50` beyond it. Garbage
    /// replies thus count twice: as failures and as a penalty of their own. An endpoint
    /// with no history scores 1.
    pub fn quality(&self) -> f64 {
        let speed = match self.p50() {
            Some(p50) if p50 > self.latency_target && !p50.is_zero() => {
                self.latency_target.as_secs_f64() / p50.as_secs_f64()
            }
            _ => 1.0,
        };
        (self.success_rate() * speed * (1.0 - self.garbage_rate())).clamp(0.0, 1.0)
    }
}

/// Circuit breaker settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// First cool-down before a trial request.
    pub cool_down: Duration,
    /// Longest cool-down: each failed trial doubles it up to this.
    pub max_cool_down: Duration,
    /// A trial that reports nothing for this long (its caller died) frees the slot for
    /// another trial.
    pub trial_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(300),
            trial_timeout: Duration::from_secs(60),
        }
    }
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are refused until `until`.
    Open {
        /// When a trial is allowed.
        until: Instant,
    },
    /// One trial request is under way.
    HalfOpen {
        /// When the trial was granted.
        since: Instant,
    },
}

/// The breaker's state without its times, for reports and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// Requests flow.
    Closed,
    /// Requests are refused.
    Open,
    /// One trial request is under way.
    HalfOpen,
}

impl StateName {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Closed => "closed",
            StateName::Open => "open",
            StateName::HalfOpen => "half_open",
        }
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BreakerState {
    /// The state's name.
    pub fn name(&self) -> StateName {
        match self {
            BreakerState::Closed => StateName::Closed,
            BreakerState::Open { .. } => StateName::Open,
            BreakerState::HalfOpen { .. } => StateName::HalfOpen,
        }
    }
}

/// What [`CircuitBreaker::allow`] says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead (closed).
    Allow,
    /// Go ahead as the one trial request (half-open); report its outcome.
    AllowTrial,
    /// Don't call the endpoint; ask again after `retry_in`.
    Reject {
        /// Time until a trial may be allowed.
        retry_in: Duration,
    },
}

/// A state change, returned so the caller can log it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: StateName,
    /// The state after.
    pub to: StateName,
    /// The cool-down now in force (meaningful when `to` is `Open`).
    pub cool_down: Duration,
}

/// A circuit breaker for one endpoint.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    /// The cool-down the next opening uses.
    cool_down: Duration,
}

/// A [`CircuitBreaker`]'s state in wall-clock terms, to carry it from one process to the
/// next (`serena ask` runs once per question).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerMemo {
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Unix milliseconds until which requests are refused; 0 when closed.
    pub open_until_ms: u64,
    /// The cool-down the next opening uses.
    pub cool_down_ms: u64,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new(BreakerConfig::default())
    }
}

impl CircuitBreaker {
    /// A closed breaker. A threshold of 0 is taken as 1; durations are capped at a day
    /// (so `Instant` arithmetic cannot overflow).
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        let cool_down = config.cool_down.min(DAY);
        CircuitBreaker {
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                cool_down,
                max_cool_down: config.max_cool_down.min(DAY).max(cool_down),
                trial_timeout: config.trial_timeout.min(DAY),
            },
            state: BreakerState::Closed,
            consecutive_failures: 0,
            cool_down,
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Consecutive failures seen while closed.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The cool-down the next opening uses (or the current one while open).
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }

    /// The state in wall-clock terms (`now` and `now_ms` are the same moment), so that a
    /// later process can [`restore`](Self::restore) it.
    pub fn memo(&self, now: Instant, now_ms: u64) -> BreakerMemo {
        let open_until_ms = match self.state {
            BreakerState::Closed => 0,
            // A trial under way ends with this process: the next one may try at once.
            BreakerState::HalfOpen { .. } => now_ms,
            BreakerState::Open { until } => {
                now_ms + until.saturating_duration_since(now).as_millis() as u64
            }
        };
        BreakerMemo {
            consecutive_failures: self.consecutive_failures,
            open_until_ms,
            cool_down_ms: self.cool_down.as_millis() as u64,
        }
    }

    /// Take up a state kept by [`memo`](Self::memo): an opening that has not expired stays
    /// open; one that has expired lets the next request through as the trial.
    pub fn restore(&mut self, memo: &BreakerMemo, now: Instant, now_ms: u64) {
        self.consecutive_failures = memo.consecutive_failures;
        self.cool_down = Duration::from_millis(memo.cool_down_ms)
            .clamp(self.config.cool_down, self.config.max_cool_down);
        self.state = if memo.open_until_ms == 0 {
            BreakerState::Closed
        } else {
            let left = Duration::from_millis(memo.open_until_ms.saturating_sub(now_ms));
            BreakerState::Open {
                until: now + left.min(self.config.max_cool_down),
            }
        };
    }

    /// Time until a request may go out: zero when closed or when a trial is due.
    pub fn retry_in(&self, now: Instant) -> Duration {
        match self.state {
            BreakerState::Closed => Duration::ZERO,
            BreakerState::Open { until } => until.saturating_duration_since(now),
            BreakerState::HalfOpen { since } => {
                (since + self.config.trial_timeout).saturating_duration_since(now)
            }
        }
    }

    /// May a request go out now? Open turns half-open once the cool-down has passed and
    /// grants that caller the one trial; other callers are rejected until the trial
    /// reports (or `trial_timeout` passes). O(1), no allocation.
    #[inline]
    pub fn allow(&mut self, now: Instant) -> Decision {
        match self.state {
            BreakerState::Closed => Decision::Allow,
            BreakerState::Open { until } => {
                if now >= until {
                    self.state = BreakerState::HalfOpen { since: now };
                    Decision::AllowTrial
                } else {
                    Decision::Reject {
                        retry_in: until - now,
                    }
                }
            }
            BreakerState::HalfOpen { since } => {
                let expires = since + self.config.trial_timeout;
                if now >= expires {
                    self.state = BreakerState::HalfOpen { since: now };
                    Decision::AllowTrial
                } else {
                    Decision::Reject {
                        retry_in: expires - now,
                    }
                }
            }
        }
    }

    /// Record a success: closes the breaker and resets the cool-down.
    pub fn record_success(&mut self, _now: Instant) -> Option<Transition> {
        self.consecutive_failures = 0;
        let from = self.state.name();
        self.cool_down = self.config.cool_down;
        self.state = BreakerState::Closed;
        (from != StateName::Closed).then_some(Transition {
            from,
            to: StateName::Closed,
            cool_down: self.cool_down,
        })
    }

    /// Record a failure. Closed opens after `failure_threshold` consecutive failures; a
    /// failed trial reopens with the cool-down doubled (up to `max_cool_down`). A failure
    /// reported while open (a request let through before it opened) changes nothing.
    pub fn record_failure(&mut self, now: Instant, _kind: FailureKind) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state {
            BreakerState::Closed => {
                if self.consecutive_failures >= self.config.failure_threshold {
                    self.state = BreakerState::Open {
                        until: now + self.cool_down,
                    };
                    Some(Transition {
                        from: StateName::Closed,
                        to: StateName::Open,
                        cool_down: self.cool_down,
                    })
                } else {
                    None
                }
            }
            BreakerState::HalfOpen { .. } => {
                self.cool_down = self
                    .cool_down
                    .saturating_mul(2)
                    .min(self.config.max_cool_down);
                self.state = BreakerState::Open {
                    until: now + self.cool_down,
                };
                Some(Transition {
                    from: StateName::HalfOpen,
                    to: StateName::Open,
                    cool_down: self.cool_down,
                })
            }
            BreakerState::Open { .. } => None,
        }
    }
}

/// Exponential backoff with full jitter: attempt `n` (0-based) waits a uniformly random
/// time in `0..=min(cap, base × factorⁿ)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// Growth per attempt.
    pub factor: u32,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            factor: 2,
            cap: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The jitter ceiling for retry `attempt` (0 for the wait after the first attempt).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let growth = self.factor.max(1).saturating_pow(attempt.min(64));
        self.base.saturating_mul(growth).min(self.cap)
    }

    /// The delay before retry `attempt`, given a uniformly random `rng` value: full jitter
    /// over `0..=ceiling(attempt)`. Pure: the same inputs give the same delay.
    pub fn next_delay(&self, attempt: u32, rng: u64) -> Duration {
        let ceiling = self.ceiling(attempt).as_nanos().min(u128::from(u64::MAX)) as u64;
        let nanos = if ceiling == u64::MAX {
            rng
        } else {
            rng % (ceiling + 1)
        };
        Duration::from_nanos(nanos)
    }

    /// The delay before retrying after a failure of `kind`, or `None` when there should be
    /// no retry: the failure is permanent, or waiting `max(delay, retry_after)` and then
    /// spending `expected` on the attempt would not finish before `deadline`.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_retry(
        &self,
        attempt: u32,
        kind: FailureKind,
        rng: u64,
        retry_after: Option<Duration>,
        now: Instant,
        expected: Duration,
        deadline: Instant,
    ) -> Option<Duration> {
        if !kind.is_transient() {
            return None;
        }
        let delay = self
            .next_delay(attempt, rng)
            .max(retry_after.unwrap_or(Duration::ZERO));
        let left = deadline.saturating_duration_since(now);
        (delay.saturating_add(expected) < left).then_some(delay)
    }
}

/// The health record and circuit breaker of one endpoint, kept together.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// Outcome and latency history.
    pub health: Health,
    /// The breaker.
    pub breaker: CircuitBreaker,
}

impl Tracker {
    /// A fresh tracker.
    pub fn new(breaker: BreakerConfig, latency_target: Duration) -> Tracker {
        Tracker {
            health: Health::new(latency_target),
            breaker: CircuitBreaker::new(breaker),
        }
    }

    /// See [`CircuitBreaker::allow`].
    #[inline]
    pub fn allow(&mut self, now: Instant) -> Decision {
        self.breaker.allow(now)
    }

    /// Record a success in both; `latency` as in [`Health::record_success`].
    pub fn record_success(
        &mut self,
        now: Instant,
        latency: Option<Duration>,
    ) -> Option<Transition> {
        self.health.record_success(now, latency);
        self.breaker.record_success(now)
    }

    /// Record a failure in both.
    pub fn record_failure(
        &mut self,
        now: Instant,
        kind: FailureKind,
        message: &str,
    ) -> Option<Transition> {
        self.health.record_failure(now, kind, message);
        self.breaker.record_failure(now, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(100),
            trial_timeout: Duration::from_secs(60),
        })
    }

    #[test]
    fn breaker_opens_after_threshold_and_rejects() {
        let t0 = Instant::now();
        let mut b = breaker();
        assert_eq!(b.allow(t0), Decision::Allow);
        assert_eq!(b.record_failure(t0, FailureKind::Server), None);
        assert_eq!(b.record_failure(t0, FailureKind::Timeout), None);
        let tr = b.record_failure(t0, FailureKind::Connect).expect("opens");
        assert_eq!((tr.from, tr.to), (StateName::Closed, StateName::Open));
        assert_eq!(
            b.allow(t0 + Duration::from_secs(10)),
            Decision::Reject {
                retry_in: Duration::from_secs(20)
            }
        );
    }

    #[test]
    fn success_resets_consecutive_failures() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.record_failure(t0, FailureKind::Server);
        b.record_failure(t0, FailureKind::Server);
        assert_eq!(b.record_success(t0), None);
        b.record_failure(t0, FailureKind::Server);
        b.record_failure(t0, FailureKind::Server);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_grants_one_trial() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(t0, FailureKind::Server);
        }
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.allow(t1), Decision::AllowTrial);
        assert_eq!(b.state().name(), StateName::HalfOpen);
        assert!(matches!(b.allow(t1), Decision::Reject { .. }));
        // A trial that never reports frees the slot after trial_timeout.
        assert_eq!(b.allow(t1 + Duration::from_secs(60)), Decision::AllowTrial);
        let tr = b.record_success(t1).expect("closes");
        assert_eq!((tr.from, tr.to), (StateName::HalfOpen, StateName::Closed));
        assert_eq!(b.allow(t1), Decision::Allow);
    }

    #[test]
    fn failed_trials_double_the_cool_down_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(t0, FailureKind::Server);
        }
        let mut now = t0;
        let mut expected = [60, 100, 100].into_iter();
        let mut cool = Duration::from_secs(30);
        for _ in 0..3 {
            now += cool;
            assert_eq!(b.allow(now), Decision::AllowTrial);
            let tr = b.record_failure(now, FailureKind::Server).expect("reopens");
            assert_eq!((tr.from, tr.to), (StateName::HalfOpen, StateName::Open));
            cool = Duration::from_secs(expected.next().unwrap_or(0));
            assert_eq!(tr.cool_down, cool);
            assert_eq!(b.retry_in(now), cool);
        }
        now += cool;
        assert_eq!(b.allow(now), Decision::AllowTrial);
        b.record_success(now);
        assert_eq!(b.cool_down(), Duration::from_secs(30));
    }

    #[test]
    fn health_window_rates_and_percentiles() {
        let t0 = Instant::now();
        let mut h = Health::new(ms(100));
        assert_eq!(h.success_rate(), 1.0);
        assert_eq!(h.quality(), 1.0);
        assert_eq!(h.p50(), None);
        for i in 1..=10 {
            h.record_success(t0, Some(ms(i * 10)));
        }
        assert_eq!(h.p50(), Some(ms(50)));
        assert_eq!(h.p95(), Some(ms(100)));
        h.record_failure(t0, FailureKind::Garbage, "not json");
        h.record_failure(t0, FailureKind::Server, "http 500");
        assert_eq!(h.consecutive_failures(), 2);
        assert_eq!(h.error_count(FailureKind::Garbage), 1);
        assert_eq!(h.last_error(), Some("http 500"));
        assert!((h.success_rate() - 10.0 / 12.0).abs() < 1e-9);
        assert!((h.garbage_rate() - 1.0 / 12.0).abs() < 1e-9);
        let q = h.quality();
        assert!((q - (10.0 / 12.0) * (11.0 / 12.0)).abs() < 1e-9, "{q}");
    }

    #[test]
    fn health_window_forgets_old_outcomes() {
        let t0 = Instant::now();
        let mut h = Health::default();
        for _ in 0..40 {
            h.record_failure(t0, FailureKind::Timeout, "slow");
        }
        for _ in 0..WINDOW {
            h.record_success(t0, Some(ms(10)));
        }
        assert_eq!(h.success_rate(), 1.0);
        assert_eq!(h.failures(), 40);
        for i in 0..100u64 {
            h.record_success(t0, Some(ms(i)));
        }
        // Only the last 32 latencies (68..=99) remain.
        assert_eq!(h.latency_percentile(0), Some(ms(68)));
        assert_eq!(h.latency_percentile(100), Some(ms(99)));
    }

    #[test]
    fn slow_endpoint_scores_lower() {
        let t0 = Instant::now();
        let mut h = Health::new(ms(100));
        h.record_success(t0, Some(ms(400)));
        assert!((h.quality() - 0.25).abs() < 1e-9);
    }

    #[test]
    fn backoff_is_bounded_full_jitter() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), ms(100));
        assert_eq!(b.ceiling(3), ms(800));
        assert_eq!(b.ceiling(10), Duration::from_secs(2));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(2));
        assert_eq!(b.next_delay(0, 0), Duration::ZERO);
        assert_eq!(b.next_delay(0, 100_000_000), ms(100));
        assert_eq!(b.next_delay(1, 100_000_000), ms(100));
        for rng in [1u64, 7, 12345678901, u64::MAX] {
            assert!(b.next_delay(5, rng) <= Duration::from_secs(2));
        }
    }

    #[test]
    fn retries_only_transient_and_within_deadline() {
        let b = Backoff::default();
        let now = Instant::now();
        let deadline = now + Duration::from_secs(1);
        let plan = |kind, expected, retry_after| {
            b.plan_retry(0, kind, 50_000_000, retry_after, now, expected, deadline)
        };
        assert_eq!(plan(FailureKind::Server, ms(100), None), Some(ms(50)));
        assert_eq!(
            plan(FailureKind::RateLimited, ms(100), Some(ms(300))),
            Some(ms(300))
        );
        assert_eq!(plan(FailureKind::Server, ms(950), None), None);
        assert_eq!(plan(FailureKind::Server, ms(100), Some(ms(2000))), None);
        for kind in [
            FailureKind::Config,
            FailureKind::Rejected,
            FailureKind::Garbage,
            FailureKind::Protocol,
        ] {
            assert_eq!(plan(kind, ms(1), None), None, "{kind}");
        }
    }

    #[test]
    fn status_kinds() {
        assert_eq!(FailureKind::from_status(429), FailureKind::RateLimited);
        for s in [500, 502, 503, 504] {
            assert!(FailureKind::from_status(s).is_transient());
        }
        for s in [400, 401, 403, 404, 501] {
            assert!(!FailureKind::from_status(s).is_transient());
        }
        assert_eq!(FailureKind::from_status(401), FailureKind::Config);
    }
}

#[cfg(test)]
mod memo_tests {
    use super::*;

    #[test]
    fn a_breaker_carries_over_to_another_process() {
        let cfg = BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_secs(30),
            ..BreakerConfig::default()
        };
        let t0 = Instant::now();
        let mut first = CircuitBreaker::new(cfg);
        first.record_failure(t0, FailureKind::Server);
        let memo = first.memo(t0, 1_000_000);
        assert_eq!(memo.open_until_ms, 0);
        // The next process sees one failure so far; a second opens it.
        let mut second = CircuitBreaker::new(cfg);
        second.restore(&memo, t0, 1_000_000);
        second.record_failure(t0, FailureKind::Server);
        let memo = second.memo(t0, 1_000_000);
        assert_eq!(memo.open_until_ms, 1_030_000);
        // Ten seconds later, a third process is refused without trying.
        let t1 = t0 + Duration::from_secs(10);
        let mut third = CircuitBreaker::new(cfg);
        third.restore(&memo, t1, 1_010_000);
        assert!(
            matches!(third.allow(t1), Decision::Reject { retry_in } if retry_in == Duration::from_secs(20))
        );
        // After the cool-down, one trial goes; a failed trial doubles the cool-down.
        let t2 = t0 + Duration::from_secs(31);
        let mut fourth = CircuitBreaker::new(cfg);
        fourth.restore(&memo, t2, 1_031_000);
        assert_eq!(fourth.allow(t2), Decision::AllowTrial);
        fourth.record_failure(t2, FailureKind::Server);
        assert_eq!(fourth.memo(t2, 1_031_000).open_until_ms, 1_091_000);
    }
}
