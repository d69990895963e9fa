//! Shared server state: the backend, the bounded queue in front of it, the per-client
//! limiter and the metrics; plus reading request bodies within the limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::backend::ApiBackend;
use super::error::{ApiError, ApiErrorKind};
use super::metrics::Metrics;
use super::ServerOptions;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: Arc<dyn ApiBackend>,
    pub opts: Arc<ServerOptions>,
    pub metrics: Arc<Metrics>,
    /// One permit per backend call that may run at once.
    pub queue: Arc<Semaphore>,
    pub clients: Arc<ClientLimiter>,
}

impl AppState {
    pub fn new(backend: Arc<dyn ApiBackend>, opts: ServerOptions) -> Self {
        let permits = opts.max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        AppState {
            backend,
            queue: opts
                .engine_slots
                .clone()
                .unwrap_or_else(|| Arc::new(Semaphore::new(permits))),
            clients: Arc::new(ClientLimiter::new(opts.per_client_max_concurrent)),
            opts: Arc::new(opts),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Waits up to `queue_wait` for a backend slot; 503 with `Retry-After` if none comes.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = Arc::clone(&self.queue).try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = self.metrics.queue_guard();
        let wait = self.opts.queue_wait;
        match tokio::time::timeout(wait, Arc::clone(&self.queue).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it as busy all the same.
            Ok(Err(_)) | Err(_) => {
                self.metrics.record_queue_rejection();
                let retry = wait.as_secs().clamp(1, 60);
                Err(ApiError::busy(format!(
                    "the server is busy ({} request(s) running, none finished within {} ms); try again later",
                    self.opts.max_concurrent.max(1),
                    wait.as_millis()
                ))
                .with_retry_after(retry))
            }
        }
    }

    /// Runs `work` on the blocking pool with a backend slot, which is held until `work`
    /// returns even if the client goes away meanwhile.
    pub async fn run_backend<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn ApiBackend) -> Result<T, ApiError> + Send + 'static,
    {
        let permit = self.acquire().await?;
        let backend = Arc::clone(&self.backend);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(backend.as_ref())
        });
        join(task.await)
    }

    /// Runs a cheap backend query (`models`, `metrics`) on the blocking pool, without a slot.
    pub async fn query_backend<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn ApiBackend) -> T + Send + 'static,
    {
        let backend = Arc::clone(&self.backend);
        join(tokio::task::spawn_blocking(move || Ok(work(backend.as_ref()))).await)
    }

    /// Reads a whole request body within `max_body_bytes` and `request_timeout`.
    ///
    /// Over the limit (by `Content-Length`, or once the bytes cross it) the answer is 413,
    /// but the rest of the body is first read and thrown away, up to `max_body_bytes` more
    /// bytes (at least 64 KiB, at most [`DRAIN_LIMIT`]) and within the same deadline. Most
    /// clients send the whole body before they read the answer; closing on them mid-upload
    /// would give them a broken pipe instead of the 413 (hyper has no lingering close).
    pub async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        let max = self.opts.max_body_bytes;
        let timeout = self.opts.request_timeout;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let declared_over = declared.is_some_and(|len| len > max as u64);
        let drain_limit = max.clamp(64 * 1024, DRAIN_LIMIT);
        // Set once the body is known to be over the limit, so a drain that runs out of time
        // is still answered 413 rather than 408.
        let over_flag = AtomicBool::new(declared_over);
        let over_seen = &over_flag;
        let read = async move {
            let mut body = body;
            let mut buf = bytes::BytesMut::new();
            let mut over = declared_over;
            let mut discarded = 0usize;
            while let Some(frame) = body.frame().await {
                let frame = match frame {
                    Ok(frame) => frame,
                    // A body already known to be too large is still a 413.
                    Err(_) if over => break,
                    Err(err) => {
                        return Err(ApiError::bad_input(format!(
                            "could not read the request body: {err}"
                        )))
                    }
                };
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                if !over && buf.len() + data.len() <= max {
                    buf.extend_from_slice(&data);
                    continue;
                }
                over = true;
                over_seen.store(true, Ordering::Relaxed);
                discarded += data.len();
                if discarded > drain_limit {
                    break;
                }
            }
            if over {
                Err(too_large(max))
            } else {
                Ok(buf.freeze())
            }
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(result) => result,
            Err(_) if over_flag.load(Ordering::Relaxed) => Err(too_large(max)),
            Err(_) => Err(ApiError::new(
                ApiErrorKind::Timeout,
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            )),
        }
    }
}

/// The most bytes past the limit that are read (and thrown away) before answering 413: the
/// body limit itself, but at least 64 KiB and at most this.
pub(crate) const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

/// JSON routes accept `application/json` (or `*/*+json`) or no `Content-Type` at all. Any
/// other type is refused with 415; besides catching mistakes, this keeps web pages from
/// posting to the API with the "simple" types a browser sends without asking first.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            ApiErrorKind::UnsupportedMediaType,
            format!(
                "expected a JSON body (Content-Type: application/json), got '{}'",
                super::form::truncate(&essence, 64)
            ),
        ))
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::too_large(format!(
        "the request body is larger than the limit of {max} bytes"
    ))
}

/// A blocking task's result; a panic in the backend becomes a 500.
fn join<T>(result: Result<Result<T, ApiError>, tokio::task::JoinError>) -> Result<T, ApiError> {
    match result {
        Ok(result) => result,
        Err(err) if err.is_panic() => {
            tracing::error!("the backend panicked while handling a request");
            Err(ApiError::internal("the backend failed unexpectedly"))
        }
        Err(_) => Err(ApiError::internal("the backend task was cancelled")),
    }
}

/// Counts requests in flight per client address and refuses those over the limit.
#[derive(Debug)]
pub(crate) struct ClientLimiter {
    /// 0 means no limit.
    max: usize,
    active: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientLimiter {
    pub fn new(max: usize) -> Self {
        ClientLimiter {
            max,
            active: Mutex::default(),
        }
    }

    /// Takes a slot for `ip`, or `None` if it already has `max` requests in flight.
    pub fn try_enter(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        if self.max == 0 {
            return Some(ClientSlot { limiter: None, ip });
        }
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let n = active.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            limiter: Some(Arc::clone(self)),
            ip,
        })
    }

    /// The number of clients with requests in flight (for tests and health).
    pub fn clients(&self) -> usize {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A client's slot, released on drop.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    limiter: Option<Arc<ClientLimiter>>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        let mut active = limiter
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = active.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                active.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().expect("header"));
            require_json(&h)
        };
        assert!(require_json(&HeaderMap::new()).is_ok());
        assert!(with("application/json").is_ok());
        assert!(with("Application/JSON; charset=utf-8").is_ok());
        assert!(with("application/vnd.api+json").is_ok());
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            assert_eq!(
                with(bad).map_err(|e| e.kind),
                Err(ApiErrorKind::UnsupportedMediaType),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_slots_are_counted_and_released() {
        let limiter = Arc::new(ClientLimiter::new(2));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let s1 = limiter.try_enter(a);
        let s2 = limiter.try_enter(a);
        assert!(s1.is_some() && s2.is_some());
        assert!(limiter.try_enter(a).is_none());
        assert!(limiter.try_enter(b).is_some());
        drop(s1);
        assert!(limiter.try_enter(a).is_some());
        drop(s2);
        assert_eq!(limiter.clients(), 0);
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = Arc::new(ClientLimiter::new(0));
        let a: IpAddr = [127, 0, 0, 1].into();
        let slots: Vec<_> = (0..100).filter_map(|_| limiter.try_enter(a)).collect();
        assert_eq!(slots.len(), 100);
    }
}
