//! The console's view of people, from the people services the JSON API uses: the person's workspaces (the
//! switcher), a workspace's crews (install scope, integration scope), and the pages for members, crews and the
//! person's own API tokens. The controls a page shows follow `people::Action::min_role` (the one table of who may do
//! what there); the service checks again whatever the page sends.

use axum::extract::State;
use axum::response::Response;
use plugboard_store::{Role, WorkspaceId};

use super::shell::{account, for_workspace, role_word, Shell, WorkspaceLink};
use super::{html, time, PageError, PagePath};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::people::{self, Action};
use crate::roles;
use crate::state::{App, AppState};

pub struct CrewOption {
    pub id: String,
    pub name: String,
}

/// The person's workspaces, for the switcher (oldest first).
pub async fn workspaces(app: &App, principal: &Principal) -> Result<Vec<WorkspaceLink>, PageError> {
    Ok(people::list_workspaces(app, principal)
        .await?
        .into_iter()
        .map(|w| WorkspaceLink {
            id: w.id.to_string(),
            name: w.name,
            role: role_word(w.role),
            current: false,
        })
        .collect())
}

/// The crews of a workspace, for the install scope.
pub async fn crew_options(
    app: &App,
    principal: &Principal,
    workspace_id: &WorkspaceId,
) -> Result<Vec<CrewOption>, PageError> {
    let access = people::authorize(app, principal, workspace_id, Action::View).await?;
    Ok(people::list_crews(app, &access)
        .await?
        .into_iter()
        .map(|c| CrewOption {
            id: c.id.to_string(),
            name: c.name,
        })
        .collect())
}

/// Crew id → name, for showing an integration's scope.
pub async fn crew_names(
    app: &App,
    principal: &Principal,
    workspace_id: &WorkspaceId,
) -> Result<std::collections::HashMap<String, String>, PageError> {
    Ok(crew_options(app, principal, workspace_id)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

pub struct MemberRow {
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub role: Role,
    pub role_word: &'static str,
    pub is_me: bool,
}

pub struct RoleChoice {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(askama::Template)]
#[template(path = "members.html")]
pub struct MembersPage {
    pub shell: Shell,
    pub members: Vec<MemberRow>,
    pub can_manage: bool,
    pub roles: Vec<RoleChoice>,
}

fn role_choices() -> Vec<RoleChoice> {
    Role::ALL
        .into_iter()
        .map(|r| RoleChoice {
            value: r.as_str(),
            label: role_word(r),
        })
        .collect()
}

/// `GET /w/{workspace}/members`: everyone sees the members; ADMIN+ add, change roles and remove.
pub async fn members(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath(workspace_id): PagePath<String>,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, ws) =
        for_workspace(&app, &principal, &workspace_id, roles::VIEW, "members").await?;
    let access = people::authorize(&app, &principal, &ws, Action::View).await?;
    let members = people::list_members(&app, &access)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            is_me: m.user_id == principal.user_id,
            user_id: m.user_id.to_string(),
            name: m.name,
            email: m.email,
            role: m.role,
            role_word: role_word(m.role),
        })
        .collect();
    Ok(html(&MembersPage {
        can_manage: shell.can(&Action::ManageMembers.min_role()),
        shell,
        members,
        roles: role_choices(),
    }))
}

#[derive(askama::Template)]
#[template(path = "crews.html")]
pub struct CrewsPage {
    pub shell: Shell,
    pub crews: Vec<CrewOption>,
    pub can_edit: bool,
    pub can_delete: bool,
}

/// `GET /w/{workspace}/crews`: everyone sees the crews; MANAGER+ create and rename, ADMIN+ delete.
pub async fn crews(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath(workspace_id): PagePath<String>,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, ws) = for_workspace(&app, &principal, &workspace_id, roles::VIEW, "crews").await?;
    let crews = crew_options(&app, &principal, &ws).await?;
    Ok(html(&CrewsPage {
        can_edit: shell.can(&Action::EditCrews.min_role()),
        can_delete: shell.can(&Action::DeleteCrews.min_role()),
        shell,
        crews,
    }))
}

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub created_iso: String,
    pub last_used: String,
    pub expires: String,
    pub expired: bool,
}

impl TokenRow {
    /// A token's row from its times (created, last used, expires; ms), as of `now`.
    fn new(id: String, name: String, times: (i64, Option<i64>, Option<i64>), now: i64) -> TokenRow {
        let (created_at, last_used_at, expires_at) = times;
        let or_never = |t: Option<i64>| t.map(time::display).unwrap_or_else(|| "Never".to_string());
        TokenRow {
            id,
            name,
            created: time::display(created_at),
            created_iso: time::iso(created_at),
            last_used: or_never(last_used_at),
            expires: or_never(expires_at),
            expired: expires_at.is_some_and(|e| e <= now),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub shell: Shell,
    pub tokens: Vec<TokenRow>,
    pub max_days: i64,
}

/// `GET /account/tokens`: the person's own API tokens; create (shown once) and revoke.
pub async fn tokens(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
) -> Result<Response, PageError> {
    let principal = principal?;
    let shell = account(&app, &principal, "tokens").await?;
    let now = app.clock.now_ms();
    let tokens = people::list_tokens(&app, &principal)
        .await?
        .into_iter()
        .map(|t| {
            TokenRow::new(
                t.id.to_string(),
                t.name,
                (t.created_at, t.last_used_at, t.expires_at),
                now,
            )
        })
        .collect();
    Ok(html(&TokensPage {
        shell,
        tokens,
        max_days: people::MAX_TOKEN_DAYS,
    }))
}

pub struct AgentTokenRow {
    pub row: TokenRow,
    /// The crew's name, or "Whole workspace".
    pub scope: String,
}

#[derive(askama::Template)]
#[template(path = "agent_tokens.html")]
pub struct AgentTokensPage {
    pub shell: Shell,
    pub tokens: Vec<AgentTokenRow>,
    pub crews: Vec<CrewOption>,
    pub max_days: i64,
}

/// `GET /w/{workspace}/agent-tokens` (ADMIN+): the workspace's agent tokens; create (shown once) and revoke.
pub async fn agent_tokens(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath(workspace_id): PagePath<String>,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, ws) = for_workspace(
        &app,
        &principal,
        &workspace_id,
        roles::MANAGE_AGENT_TOKENS,
        "agent-tokens",
    )
    .await?;
    let access = people::authorize(&app, &principal, &ws, Action::ManageAgentTokens).await?;
    let crews = crew_options(&app, &principal, &ws).await?;
    let now = app.clock.now_ms();
    let tokens = people::list_agent_tokens(&app, &access)
        .await?
        .into_iter()
        .map(|t| {
            let crew_id = t.crew_id.as_ref().map(ToString::to_string);
            AgentTokenRow {
                row: TokenRow::new(
                    t.id.to_string(),
                    t.name,
                    (t.created_at, t.last_used_at, t.expires_at),
                    now,
                ),
                scope: match crew_id {
                    Some(c) => crews
                        .iter()
                        .find(|o| o.id == c)
                        .map(|o| format!("Crew {}", o.name))
                        .unwrap_or_else(|| "A crew".to_string()),
                    None => "Whole workspace".to_string(),
                },
            }
        })
        .collect();
    Ok(html(&AgentTokensPage {
        shell,
        tokens,
        crews,
        max_days: people::MAX_TOKEN_DAYS,
    }))
}
