//! The JSON API's error: `{"error": "<message>", "code": "<snake_case_code>"}`. A 5xx body says nothing about
//! internals; the cause goes to the log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The error body of every 4xx and 5xx (as the OpenAPI document describes it; [`error_body`] writes it).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Human-readable message: what happened and what to do.
    pub error: String,
    /// Stable snake_case code.
    pub code: String,
}

/// `Retry-After` (seconds) of a 503 `database_unavailable`.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in, or send a valid API token as `Authorization: Bearer pb_…`",
        )
    }
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role on this workspace does not allow this",
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_field", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than 1 MiB",
        )
    }
    /// Logs the cause and answers an opaque 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
    /// The database cannot be reached or did not answer in time: 503 `database_unavailable` (with
    /// `Retry-After`); the cause goes to the log.
    pub fn database_unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unavailable right now: retry in a few seconds",
        )
    }
    /// The database's storage is full: 507 `insufficient_storage`; nothing was written.
    pub fn insufficient_storage(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "database storage full");
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            "the server's storage is full, so nothing was written: retry after the operator has freed space",
        )
    }
}

impl From<plugboard_store::StoreError> for ApiError {
    fn from(e: plugboard_store::StoreError) -> Self {
        use plugboard_store::StoreError as E;
        if e.is_unavailable() {
            return ApiError::database_unavailable(e);
        }
        if e.is_storage_full() {
            return ApiError::insufficient_storage(e);
        }
        match e {
            E::NotFound(what) => ApiError::not_found(what),
            E::Conflict(m) => ApiError::conflict(m),
            E::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::internal(other),
        }
    }
}

/// Serialises an error body: `{"error": message, "code": code}`.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": message, "code": code }).to_string()
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request("invalid path parameter")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, error_body(self.code, &self.message)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(DATABASE_RETRY_AFTER_SECS),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The code used for a bare status (errors produced below the handlers: 404 route, 405, 408, 413 …).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        503 => "unavailable",
        507 => "insufficient_storage",
        s if s >= 500 => "internal",
        _ => "error",
    }
}
