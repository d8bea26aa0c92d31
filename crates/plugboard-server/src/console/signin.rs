//! `GET /`: signed out, the sign-in page ("Sign in with …" when OpenID Connect is configured; otherwise how to get a
//! sign-in link, with the exact command); signed in, the first of the person's workspaces (or, with none, a page
//! that says how to get one).

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::shell::{account, Shell};
use super::{html, PageError};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(askama::Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    /// The identity provider's host, when OpenID Connect is configured.
    pub provider: String,
    pub css: &'static str,
    pub favicon: &'static str,
}

#[derive(askama::Template)]
#[template(path = "no_workspace.html")]
pub struct NoWorkspacePage {
    pub shell: Shell,
}

pub async fn home(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
) -> Result<Response, PageError> {
    let principal = match principal {
        Ok(p) => p,
        Err(e) if e.status.as_u16() == 401 => {
            let provider = app
                .config
                .oidc
                .as_ref()
                .map(|o| {
                    url::Url::parse(&o.issuer)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string))
                        .unwrap_or_else(|| o.issuer.clone())
                })
                .unwrap_or_default();
            return Ok(html(&SignInPage {
                provider,
                css: crate::assets::url("console.css"),
                favicon: crate::assets::url("favicon.svg"),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let shell = account(&app, &principal, "home").await?;
    match shell.workspaces.first() {
        Some(w) => Ok(Redirect::to(&format!("/w/{}/catalog", w.id)).into_response()),
        None => Ok(html(&NoWorkspacePage { shell })),
    }
}
