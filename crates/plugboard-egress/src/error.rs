//! The guard's one error type.

/// Why an outbound call did not happen or did not finish. Messages never carry URL userinfo, query strings or
/// header values: at most a host name or address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The destination is not allowed, e.g. "10.0.0.1 is a private address (RFC 1918)".
    #[error("blocked: {0}")]
    Blocked(String),
    /// The URL or host is malformed or uses something the guard refuses (scheme, credentials).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A connect or total timeout elapsed.
    #[error("timed out")]
    Timeout,
    /// "<host>: <reason>".
    #[error("could not connect to {0}")]
    Connect(String),
    /// A redirect the caller may not follow: to another origin, or one that would change the method. The message
    /// names the status and at most the host it points to.
    #[error("redirected: {0}")]
    Redirected(String),
    /// More redirects than `max_redirects`.
    #[error("too many redirects")]
    TooManyRedirects,
    /// Any other transport error, sanitised.
    #[error("request failed: {0}")]
    Http(String),
}
