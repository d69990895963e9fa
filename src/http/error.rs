//! [`ApiError`]: every failure the API reports, with its HTTP status and OpenAI-style body
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What went wrong, which decides the HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiErrorKind {
    /// The request is malformed or asks for something unsupported: 400.
    BadInput,
    /// The bearer token is missing or wrong: 401.
    Unauthorized,
    /// Refused whatever the credentials: a browser page from another origin, or a request
    /// for a non-loopback host name while no token is set: 403.
    Forbidden,
    /// No such route or model: 404.
    NotFound,
    /// The route exists but not with this method: 405.
    MethodNotAllowed,
    /// The request took too long to arrive: 408.
    Timeout,
    /// The request body is over the limit: 413.
    TooLarge,
    /// The body is not of a type the route accepts (JSON routes want JSON): 415.
    UnsupportedMediaType,
    /// This client already has as many requests in flight as it may: 429.
    TooManyRequests,
    /// The model failed: 500.
    Model,
    /// The model is not loaded or not ready: 503.
    ModelUnavailable,
    /// No room in the queue in time: 503 with `Retry-After`.
    Busy,
    /// A bug or an unexpected failure on the server: 500.
    Internal,
}

impl ApiErrorKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            ApiErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ApiErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ApiErrorKind::NotFound => StatusCode::NOT_FOUND,
            ApiErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiErrorKind::Model | ApiErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiErrorKind::ModelUnavailable | ApiErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// OpenAI's `error.type` for this kind.
    pub fn error_type(self) -> &'static str {
        match self {
            ApiErrorKind::BadInput
            | ApiErrorKind::Unauthorized
            | ApiErrorKind::Forbidden
            | ApiErrorKind::UnsupportedMediaType
            | ApiErrorKind::NotFound
            | ApiErrorKind::MethodNotAllowed
            | ApiErrorKind::Timeout
            | ApiErrorKind::TooLarge => "invalid_request_error",
            ApiErrorKind::TooManyRequests => "rate_limit_error",
            ApiErrorKind::Model
            | ApiErrorKind::ModelUnavailable
            | ApiErrorKind::Busy
            | ApiErrorKind::Internal => "server_error",
        }
    }

    /// The machine-readable `error.code` for this kind.
    pub fn code(self) -> &'static str {
        match self {
            ApiErrorKind::BadInput => "invalid_value",
            ApiErrorKind::Unauthorized => "invalid_api_key",
            ApiErrorKind::Forbidden => "forbidden",
            ApiErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ApiErrorKind::NotFound => "not_found",
            ApiErrorKind::MethodNotAllowed => "method_not_allowed",
            ApiErrorKind::Timeout => "request_timeout",
            ApiErrorKind::TooLarge => "request_too_large",
            ApiErrorKind::TooManyRequests => "rate_limit_exceeded",
            ApiErrorKind::Model => "model_error",
            ApiErrorKind::ModelUnavailable => "model_not_ready",
            ApiErrorKind::Busy => "server_busy",
            ApiErrorKind::Internal => "internal_error",
        }
    }
}

/// A failure to report to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What went wrong.
    pub kind: ApiErrorKind,
    /// A message for people.
    pub message: String,
    /// The request parameter at fault, if one is (OpenAI's `error.param`).
    pub param: Option<String>,
    /// Seconds to put in a `Retry-After` header (used with 429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// A 400.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::BadInput, message)
    }

    /// A 500 from the model.
    pub fn model(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Model, message)
    }

    /// A 503: the model is not loaded or not ready.
    pub fn model_unavailable(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::ModelUnavailable, message)
    }

    /// A 503: the server is busy.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Busy, message)
    }

    /// A 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::TooLarge, message)
    }

    /// A 500 that is the server's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Internal, message)
    }

    /// The same error, naming the request parameter at fault.
    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The same error, with a `Retry-After` of `seconds`.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The OpenAI-style JSON body, `{"error": {...}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": ErrorObject::from(self) })
    }
}

/// The inside of the error body.
#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: &'static str,
}

impl<'a> From<&'a ApiError> for ErrorObject<'a> {
    fn from(err: &'a ApiError) -> Self {
        ErrorObject {
            message: &err.message,
            kind: err.kind.error_type(),
            param: err.param.as_deref(),
            code: err.kind.code(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(status = self.status().as_u16(), "{}", self.message);
        } else {
            tracing::debug!(status = self.status().as_u16(), "{}", self.message);
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.kind == ApiErrorKind::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
