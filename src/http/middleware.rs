//! Request middleware: metrics and logging, the bearer token, and the per-client limit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::error::{ApiError, ApiErrorKind};
use super::metrics::{route_label, GaugeGuard, Metrics};
use super::state::AppState;

/// The client's address, from the connection (`0.0.0.0` when the router is driven without
/// one, as in unit tests). Proxy headers such as `X-Forwarded-For` are not trusted.
pub(crate) fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Observes the request's latency and releases the in-flight gauge when dropped, which is
/// when the response body has been sent in full (or the client went away).
struct Completion {
    metrics: std::sync::Arc<Metrics>,
    route: &'static str,
    started: Instant,
    _in_flight: GaugeGuard,
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.metrics
            .observe_latency(self.route, self.started.elapsed());
    }
}

/// Ties `guard` to the response body, so it lives until the body is finished or dropped.
pub(crate) fn attach<G: Send + Sync + 'static>(response: Response, guard: G) -> Response {
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _ = &guard;
            frame
        }))
    })
}

/// Outermost layer: counts, times and logs every request.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    let ip = client_ip(&req);
    let completion = Completion {
        metrics: std::sync::Arc::clone(&state.metrics),
        route,
        started: Instant::now(),
        _in_flight: state.metrics.in_flight_guard(),
    };
    let response = next.run(req).await;
    let status = response.status();
    state.metrics.record_response(route, status.as_u16());
    let elapsed_ms = completion.started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(%method, route, %ip, status = status.as_u16(), elapsed_ms, "request failed");
    } else if matches!(route, "/health" | "/metrics") {
        // Polled by monitors: keep them out of the normal log.
        tracing::debug!(%method, route, %ip, status = status.as_u16(), elapsed_ms, "request");
    } else {
        tracing::info!(%method, route, %ip, status = status.as_u16(), elapsed_ms, "request");
    }
    attach(response, completion)
}

/// Constant-time comparison (of equal-length inputs), so the token cannot be guessed byte
/// by byte from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Requires `Authorization: Bearer <token>` on every route except `/health`, when a token is
/// configured.
///
/// Without a token the server is for this machine only ([`check_bind`](super::check_bind)),
/// and two browser attacks on local servers are refused with 403: a page from another origin
/// posting to it (cross-site request forgery: the browser sends an `Origin` that is not
/// loopback), and DNS rebinding (a foreign host name that resolves to 127.0.0.1: the `Host`
/// is not a loopback name). Clients that are not browsers send no `Origin` and use the
/// address they connect to as `Host`, so they are unaffected.
pub(crate) async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.opts.token.as_deref().filter(|t| !t.is_empty()) else {
        if let Err(err) = local_only(&req) {
            return err.into_response();
        }
        return next.run(req).await;
    };
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => {
            ApiError::new(ApiErrorKind::Unauthorized, "incorrect API key provided").into_response()
        }
        None => ApiError::new(
            ApiErrorKind::Unauthorized,
            "missing API key: send 'Authorization: Bearer <token>'",
        )
        .into_response(),
    }
}

/// The checks that stand in for a token on a loopback-only server.
fn local_only(req: &Request) -> Result<(), ApiError> {
    let headers = req.headers();
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !is_loopback_host(strip_port(host)) {
            return Err(ApiError::new(
                ApiErrorKind::Forbidden,
                "this server has no API token, so it only answers requests addressed to localhost \
                 or a loopback address",
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = origin
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or_default());
        if !is_loopback_host(strip_port(host)) {
            return Err(ApiError::new(
                ApiErrorKind::Forbidden,
                "requests from web pages of other origins are refused (set an API token to allow \
                 remote clients)",
            ));
        }
    }
    Ok(())
}

/// `host:port` or `[v6]:port` to the host alone.
fn strip_port(authority: &str) -> &str {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// `localhost`, `*.localhost`, or a loopback IP address.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Limits how many requests one client address may have in flight on the backend routes.
pub(crate) async fn per_client(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let ip = client_ip(&req);
    let Some(slot) = state.clients.try_enter(ip) else {
        return ApiError::new(
            ApiErrorKind::TooManyRequests,
            format!(
                "too many concurrent requests from {ip} (at most {} at once)",
                state.opts.per_client_max_concurrent
            ),
        )
        .with_retry_after(1)
        .into_response();
    };
    attach(next.run(req).await, slot)
}

#[cfg(test)]
mod tests {
    use super::{is_loopback_host, same, strip_port};

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost:8080",
            "LOCALHOST",
            "a.localhost",
            "127.0.0.1:1",
            "127.9.9.9",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(strip_port(host)), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:80",
            "192.168.1.2:80",
            "[::2]:80",
            "",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(strip_port(host)), "{host}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
