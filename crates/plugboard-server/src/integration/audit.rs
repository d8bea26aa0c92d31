//! Reading the audit log.

use plugboard_store::{AuditRow, UserId, WorkspaceId};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::QueryPairs;
use crate::state::App;

use super::*;

/// One audit entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub workspace_id: Option<WorkspaceId>,
    #[schema(value_type = Option<String>)]
    pub actor_id: Option<UserId>,
    /// e.g. `integration.install`, `integration.runtime_read`.
    pub action: String,
    /// The integration id.
    pub target: Option<String>,
    /// Never holds a secret value.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` when this page is the last.
    pub next_before: Option<String>,
}

/// Parses `before`: a cursor from `next_before` (`<ms>.<id>`) or a bare time in epoch milliseconds.
pub(crate) fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let (at, id) = match raw.split_once('.') {
        Some((at, id)) => (at, id),
        None => (raw, ""),
    };
    let at: i64 = at.parse().ok()?;
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((at, id.to_string()))
}

/// The query of `GET /api/v1/audit` besides `workspace_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// 1 to 200, default 50.
    pub limit: i64,
    /// Only entries strictly older than this `(created_at, id)`.
    pub before: Option<(i64, String)>,
}

impl AuditQuery {
    /// `limit` and `before` of the query string (400 naming the parameter when unusable).
    pub fn parse(query: &QueryPairs) -> Result<AuditQuery, ApiError> {
        let limit = match query.get("limit") {
            None => AUDIT_DEFAULT_LIMIT,
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=AUDIT_MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                    "query parameter `limit` must be a whole number from 1 to {AUDIT_MAX_LIMIT}"
                ))
                })?,
        };
        let before = match query.get("before").map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(parse_cursor(raw).ok_or_else(|| {
            ApiError::bad_request(
                "query parameter `before` must be a `next_before` value or a time in epoch milliseconds",
            )
        })?),
    };
        Ok(AuditQuery { limit, before })
    }
}

/// `GET /api/v1/audit`: newest first, at most `query.limit` entries older than `query.before`.
pub async fn audit_page(
    app: &App,
    workspace_id: &WorkspaceId,
    query: &AuditQuery,
) -> Result<AuditPage, ApiError> {
    let limit = query.limit;
    let rows = app
        .store
        .list_audit_page(
            workspace_id,
            limit,
            query.before.as_ref().map(|(t, id)| (*t, id.as_str())),
        )
        .await?;
    let next_before = if i64::try_from(rows.len()).unwrap_or(0) == limit {
        rows.last().map(|r| format!("{}.{}", r.created_at, r.id))
    } else {
        None
    };
    Ok(AuditPage {
        entries: rows.into_iter().map(audit_entry).collect(),
        next_before,
    })
}

pub(crate) fn audit_entry(r: AuditRow) -> AuditEntry {
    let detail = serde_json::from_str(&r.detail).unwrap_or(Value::String(r.detail));
    AuditEntry {
        id: r.id,
        workspace_id: r.workspace_id,
        actor_id: r.actor_id,
        action: r.action,
        target: r.target,
        detail,
        created_at: r.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_cursors_parse_or_are_refused() {
        assert_eq!(parse_cursor("12"), Some((12, String::new())));
        assert_eq!(parse_cursor("12.cabc"), Some((12, "cabc".into())));
        assert_eq!(parse_cursor("x"), None);
        assert_eq!(parse_cursor("12.a'b"), None);
    }
}
