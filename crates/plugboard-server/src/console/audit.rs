//! `GET /w/{workspace}/audit?before=`: the audit log, newest first, page by page ([`roles::READ_AUDIT`]): the
//! same service and the same query parsing as `GET /api/v1/audit`.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;

use super::shell::{for_workspace, Shell};
use super::{html, time, PageError, PagePath};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::QueryPairs;
use crate::integration::{self, AuditQuery};
use crate::roles;
use crate::state::AppState;

pub struct EntryView {
    pub when: String,
    pub when_iso: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(askama::Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub shell: Shell,
    pub entries: Vec<EntryView>,
    /// The link to the next (older) page, when there is one.
    pub older: String,
    /// Whether this is a later page (a link back to the newest).
    pub paged: bool,
}

/// One line of details: `key: value` pairs, without the braces and quotes of JSON.
fn detail_text(detail: &serde_json::Value) -> String {
    match detail {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                serde_json::Value::Array(items) if items.is_empty() => format!("{k}: none"),
                serde_json::Value::Array(items) => format!(
                    "{k}: {}",
                    items
                        .iter()
                        .map(|i| i
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn page(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath(workspace_id): PagePath<String>,
    query: QueryPairs,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, ws) =
        for_workspace(&app, &principal, &workspace_id, roles::READ_AUDIT, "audit").await?;
    let page_query = AuditQuery::parse(&query)?;
    let page = integration::audit_page(&app, &ws, &page_query).await?;
    let mut actors: HashMap<String, String> = HashMap::new();
    let mut entries = Vec::with_capacity(page.entries.len());
    for e in &page.entries {
        let actor = match &e.actor_id {
            None => "Plugboard".to_string(),
            Some(id) => match actors.get(id.as_str()) {
                Some(a) => a.clone(),
                None => {
                    let who = app
                        .store
                        .get_user(id)
                        .await
                        .map_err(ApiError::from)?
                        .map(|u| u.email)
                        .unwrap_or_else(|| format!("user {id}"));
                    actors.insert(id.to_string(), who.clone());
                    who
                }
            },
        };
        entries.push(EntryView {
            when: time::display(e.created_at),
            when_iso: time::iso(e.created_at),
            actor,
            action: e.action.clone(),
            target: e.target.clone().unwrap_or_default(),
            detail: detail_text(&e.detail),
        });
    }
    let older = page
        .next_before
        .map(|b| {
            format!(
                "/w/{}/audit?before={}",
                shell.workspace_id,
                url::form_urlencoded::byte_serialize(b.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    Ok(html(&AuditPage {
        shell,
        entries,
        older,
        paged: page_query.before.is_some(),
    }))
}
