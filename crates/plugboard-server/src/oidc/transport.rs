//! The HTTP client of OpenID Connect calls (discovery, JWKS, token, userinfo).
//!
//! The identity provider is chosen by the operator, so it may sit on a private network: these calls do not go
//! through the user-facing egress guard. They keep its other rules: no proxy from the environment, no redirects,
//! the configured connect and total timeouts, and answers capped at 1 MiB. A 5xx or 429 answer counts as the
//! provider being unavailable, whichever endpoint gave it.

use std::time::Duration;

use futures_util::future::BoxFuture;

/// Largest answer read from the identity provider.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a call to the identity provider did not get an answer. The text names no URL query and no secret.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("it did not answer within {0} ms")]
    Timeout(u128),
    #[error("cannot connect to it ({0})")]
    Connect(String),
    #[error("its answer is larger than 1 MiB")]
    TooLarge,
    /// A 5xx or 429: the provider is there but not serving.
    #[error("it answered {0}")]
    Unavailable(::http::StatusCode),
    #[error("{0}")]
    Other(String),
}

#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

/// The innermost cause of an error (e.g. "Connection refused (os error 111)"), without reqwest's URL prefix.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl Http {
    pub(crate) fn new(connect_timeout: Duration, timeout: Duration) -> Result<Http, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("plugboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for OpenID Connect: {e}"))?;
        Ok(Http { client, timeout })
    }

    fn classify(&self, e: reqwest::Error) -> HttpError {
        if e.is_timeout() {
            HttpError::Timeout(self.timeout.as_millis())
        } else if e.is_connect() {
            HttpError::Connect(root_cause(&e))
        } else {
            HttpError::Other(e.without_url().to_string())
        }
    }

    /// One request, as `openidconnect` hands it over.
    fn send(
        &self,
        request: openidconnect::HttpRequest,
    ) -> BoxFuture<'static, Result<openidconnect::HttpResponse, HttpError>> {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = this
                .client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| this.classify(e))?;
            let status = response.status();
            if status.is_server_error() || status == ::http::StatusCode::TOO_MANY_REQUESTS {
                return Err(HttpError::Unavailable(status));
            }
            let headers = response.headers().clone();
            if response
                .content_length()
                .is_some_and(|n| n > MAX_BODY as u64)
            {
                return Err(HttpError::TooLarge);
            }
            let mut response = response;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| this.classify(e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = BoxFuture<'c, Result<openidconnect::HttpResponse, HttpError>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        self.send(request)
    }
}
