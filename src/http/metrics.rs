//! The server's own counters and their Prometheus text exposition (format 0.0.4).
//!
//! Written by hand: a handful of counters, two gauges and one histogram family do not need a
//! metrics crate. Label values come only from fixed route names and status codes, so the
//! number of series is bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` is implied).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The routes metrics are kept for; any other path counts as `other`.
pub const ROUTES: [&str; 8] = [
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/audio/speech",
    "/v1/chat/completions",
    "/v1/models",
    "/health",
    "/metrics",
    "other",
];

/// The metrics label for a request path: one of [`ROUTES`].
pub fn route_label(path: &str) -> &'static str {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    if path.starts_with("/v1/models/") {
        return "/v1/models";
    }
    ROUTES
        .iter()
        .copied()
        .find(|route| *route == path)
        .unwrap_or("other")
}

/// A cumulative histogram.
#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Counts per bucket of [`LATENCY_BUCKETS`] (not cumulative; summed on output).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            0.0
        };
        if let Some(i) = LATENCY_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Series {
    /// `(route, status)` → requests.
    requests: BTreeMap<(&'static str, u16), u64>,
    /// route → error responses (status 400 and up, and failures inside a stream).
    errors: BTreeMap<&'static str, u64>,
    /// route → latency.
    latency: BTreeMap<&'static str, Histogram>,
}

/// The HTTP server's metrics.
#[derive(Debug)]
pub struct Metrics {
    series: Mutex<Series>,
    in_flight: AtomicI64,
    queue_depth: AtomicI64,
    queue_rejections: AtomicU64,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            series: Mutex::default(),
            in_flight: AtomicI64::new(0),
            queue_depth: AtomicI64::new(0),
            queue_rejections: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Metrics {
    fn series(&self) -> MutexGuard<'_, Series> {
        // The data stays consistent even if a holder panicked: every update is one statement.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a response with `status` on `route`.
    pub fn record_response(&self, route: &'static str, status: u16) {
        let mut series = self.series();
        *series.requests.entry((route, status)).or_default() += 1;
        if status >= 400 {
            *series.errors.entry(route).or_default() += 1;
        }
    }

    /// Counts an error that happened after the response's status was sent (inside a stream).
    pub fn record_stream_error(&self, route: &'static str) {
        *self.series().errors.entry(route).or_default() += 1;
    }

    /// Records how long a request on `route` took, up to the end of its response body.
    pub fn observe_latency(&self, route: &'static str, elapsed: Duration) {
        self.series()
            .latency
            .entry(route)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request rejected because the queue stayed full.
    pub fn record_queue_rejection(&self) {
        self.queue_rejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests being handled now (including responses still streaming).
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests waiting for a backend permit now.
    pub fn queue_depth(&self) -> i64 {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// Seconds since the metrics (the server) started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks one more request in flight until the guard is dropped.
    pub fn in_flight_guard(self: &Arc<Self>) -> GaugeGuard {
        GaugeGuard::new(Arc::clone(self), Gauge::InFlight)
    }

    /// Marks one more request waiting in the queue until the guard is dropped.
    pub fn queue_guard(self: &Arc<Self>) -> GaugeGuard {
        GaugeGuard::new(Arc::clone(self), Gauge::QueueDepth)
    }

    /// The exposition: the server's metrics, then `backend` gauges (see
    /// [`ApiBackend::metrics`](super::ApiBackend::metrics)), then `extra` gauges from the
    /// server (`name`, `help`, `value`).
    pub fn render(&self, extra: &[(&str, &str, f64)], backend: &[(String, String, f64)]) -> String {
        let mut out = String::with_capacity(4096);
        let series = self.series();

        family(
            &mut out,
            "serena_http_requests_total",
            "HTTP requests answered, by route and status code.",
            "counter",
        );
        for ((route, status), n) in &series.requests {
            let _ = writeln!(
                out,
                "serena_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }

        family(
            &mut out,
            "serena_http_errors_total",
            "HTTP requests that ended in an error (status 400 or more, or a failure inside a stream), by route.",
            "counter",
        );
        for (route, n) in &series.errors {
            let _ = writeln!(out, "serena_http_errors_total{{route=\"{route}\"}} {n}");
        }

        family(
            &mut out,
            "serena_http_request_duration_seconds",
            "Time from receiving a request to the end of its response body, by route.",
            "histogram",
        );
        for (route, h) in &series.latency {
            let mut cumulative = 0;
            for (le, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "serena_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{}\"}} {cumulative}",
                    number(*le)
                );
            }
            let _ = writeln!(
                out,
                "serena_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "serena_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                number(h.sum)
            );
            let _ = writeln!(
                out,
                "serena_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        drop(series);

        family(
            &mut out,
            "serena_http_queue_rejections_total",
            "Requests answered 503 because no backend slot came free in time.",
            "counter",
        );
        let _ = writeln!(
            out,
            "serena_http_queue_rejections_total {}",
            self.queue_rejections.load(Ordering::Relaxed)
        );

        gauge(
            &mut out,
            "serena_queue_depth",
            "Requests waiting for a backend slot.",
            self.queue_depth() as f64,
        );
        gauge(
            &mut out,
            "serena_http_in_flight",
            "HTTP requests being handled, including responses still streaming.",
            self.in_flight() as f64,
        );
        gauge(
            &mut out,
            "serena_http_uptime_seconds",
            "Seconds since the HTTP server started.",
            self.uptime().as_secs_f64(),
        );
        for (name, help, value) in extra {
            gauge(&mut out, name, help, *value);
        }
        render_backend_gauges(&mut out, backend);
        out
    }
}

/// Which gauge a [`GaugeGuard`] holds up.
#[derive(Clone, Copy, Debug)]
enum Gauge {
    InFlight,
    QueueDepth,
}

/// Holds a gauge one higher while it lives.
#[derive(Debug)]
pub struct GaugeGuard {
    metrics: Arc<Metrics>,
    gauge: Gauge,
}

impl GaugeGuard {
    fn new(metrics: Arc<Metrics>, gauge: Gauge) -> Self {
        metrics.atomic(gauge).fetch_add(1, Ordering::Relaxed);
        GaugeGuard { metrics, gauge }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.metrics
            .atomic(self.gauge)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn atomic(&self, gauge: Gauge) -> &AtomicI64 {
        match gauge {
            Gauge::InFlight => &self.in_flight,
            Gauge::QueueDepth => &self.queue_depth,
        }
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes a single unlabelled gauge.
fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {}", number(value));
}

/// A backend gauge family: name, help, and `(label set, value)` samples.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    samples: Vec<(&'a str, f64)>,
}

/// The backend's gauges, grouped by metric name in order of first appearance.
fn render_backend_gauges(out: &mut String, gauges: &[(String, String, f64)]) {
    let mut families: Vec<Family<'_>> = Vec::new();
    for (full, help, value) in gauges {
        let Some((name, labels)) = split_series(full) else {
            tracing::warn!("backend metric {full:?} has an invalid name or label set; skipped");
            continue;
        };
        if name.starts_with("serena_http_") || name.starts_with("serena_queue_") {
            tracing::warn!("backend metric {name:?} clashes with the HTTP server's own; skipped");
            continue;
        }
        match families.iter_mut().find(|f| f.name == name) {
            Some(family) => family.samples.push((labels, *value)),
            None => families.push(Family {
                name,
                help,
                samples: vec![(labels, *value)],
            }),
        }
    }
    for f in families {
        let kind = if f.name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(out, f.name, f.help, kind);
        for (labels, value) in f.samples {
            let _ = writeln!(out, "{}{labels} {}", f.name, number(value));
        }
    }
}

/// Splits `name{labels}` into the name and the (possibly empty) brace-enclosed label set,
/// or `None` if either is invalid.
fn split_series(full: &str) -> Option<(&str, &str)> {
    let (name, labels) = match full.find('{') {
        Some(i) => full.split_at(i),
        None => (full, ""),
    };
    if !valid_metric_name(name) || (!labels.is_empty() && !valid_label_set(labels)) {
        return None;
    }
    Some((name, labels))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{name="value",...}` with valid label names and properly escaped values.
fn valid_label_set(labels: &str) -> bool {
    let Some(inner) = labels.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return false;
    };
    let mut rest = inner;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            return false;
        };
        let name = &rest[..eq];
        let mut first = true;
        let name_ok = !name.is_empty()
            && name.chars().all(|c| {
                let ok = c.is_ascii_alphabetic() || c == '_' || (!first && c.is_ascii_digit());
                first = false;
                ok
            });
        if !name_ok {
            return false;
        }
        let Some(value) = rest[eq + 1..].strip_prefix('"') else {
            return false;
        };
        // Find the closing quote, honouring the three escapes the format allows.
        let mut end = None;
        let mut chars = value.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '\\' | '"' | 'n')) => {}
                    _ => return false,
                },
                '\n' => return false,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return false;
        };
        rest = &value[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.is_empty() {
            return false;
        }
    }
    true
}

/// Help text with `\` and newlines escaped, as the format requires.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the format spells it.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_bounded() {
        assert_eq!(route_label("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(route_label("/v1/chat/completions/"), "/v1/chat/completions");
        assert_eq!(route_label("/v1/models/tiny.en"), "/v1/models");
        assert_eq!(route_label("/"), "other");
        assert_eq!(route_label("/../etc/passwd"), "other");
        assert_eq!(route_label(""), "other");
    }

    #[test]
    fn label_sets_are_checked() {
        assert!(valid_label_set(r#"{model="tiny.en"}"#));
        assert!(valid_label_set(r#"{a="1",b="x\"y\\z\n"}"#));
        assert!(valid_label_set("{}"));
        assert!(!valid_label_set(r#"{model="tiny.en""#));
        assert!(!valid_label_set(r#"{1a="x"}"#));
        assert!(
            valid_label_set(r#"{a="x",}"#),
            "the format allows a trailing comma"
        );
        assert!(!valid_label_set(r#"{a="x\q"}"#));
        assert!(!valid_label_set(r#"{a=x}"#));
        assert!(!valid_label_set("{a=\"x\ny\"}"));
        assert!(split_series("bad name").is_none());
        assert!(split_series("9lives").is_none());
        assert_eq!(split_series("ok_1:x"), Some(("ok_1:x", "")));
    }

    #[test]
    fn exposition_has_every_family() {
        let m = Arc::new(Metrics::default());
        m.record_response("/health", 200);
        m.record_response("/v1/chat/completions", 503);
        m.observe_latency("/health", Duration::from_millis(3));
        m.observe_latency("/health", Duration::from_secs(1000));
        let _guard = m.in_flight_guard();
        let text = m.render(
            &[("serena_queue_capacity", "Backend slots.", 2.0)],
            &[
                (
                    "serena_models_loaded".into(),
                    "Models in memory.".into(),
                    2.0,
                ),
                (
                    "serena_model_loaded{model=\"a\"}".into(),
                    "Loaded.".into(),
                    1.0,
                ),
                (
                    "serena_model_loaded{model=\"b\"}".into(),
                    "ignored".into(),
                    0.0,
                ),
                ("bad-name".into(), "x".into(), 1.0),
                ("serena_temp".into(), "multi\nline \\ help".into(), f64::NAN),
            ],
        );
        assert!(text.contains("serena_http_requests_total{route=\"/health\",status=\"200\"} 1\n"));
        assert!(text.contains("serena_http_errors_total{route=\"/v1/chat/completions\"} 1\n"));
        assert!(text.contains(
            "serena_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "serena_http_request_duration_seconds_bucket{route=\"/health\",le=\"120\"} 1\n"
        ));
        assert!(text.contains(
            "serena_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains("serena_http_in_flight 1\n"));
        assert!(text.contains("serena_queue_capacity 2\n"));
        assert_eq!(text.matches("# TYPE serena_model_loaded gauge").count(), 1);
        assert!(text.contains("serena_model_loaded{model=\"b\"} 0\n"));
        assert!(!text.contains("bad-name"));
        assert!(text.contains("# HELP serena_temp multi\\nline \\\\ help\n"));
        assert!(text.contains("serena_temp NaN\n"));
        drop(_guard);
        assert_eq!(m.in_flight(), 0);
    }
}
