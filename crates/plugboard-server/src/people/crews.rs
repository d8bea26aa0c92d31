//! Crews (groups inside a workspace): list, create, rename, delete (refused while integrations are installed for
//! the crew).

use axum::http::StatusCode;
use plugboard_store::{Crew, CrewDeletion, CrewId};
use serde::Serialize;
use serde_json::json;

use super::{audit, authorize, Access, Action, NameRequest};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::App;

/// A crew.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CrewBody {
    #[schema(value_type = String)]
    pub id: CrewId,
    pub name: String,
}

impl From<Crew> for CrewBody {
    fn from(c: Crew) -> Self {
        CrewBody {
            id: c.id,
            name: c.name,
        }
    }
}

/// The crews of the workspace, oldest first (any member).
pub async fn list_crews(app: &App, access: &Access) -> Result<Vec<CrewBody>, ApiError> {
    access.require(Action::View)?;
    Ok(app
        .store
        .list_crews(access.workspace_id())
        .await?
        .into_iter()
        .map(CrewBody::from)
        .collect())
}

/// A new crew (MANAGER+).
pub async fn create_crew(
    app: &App,
    access: &Access,
    request: NameRequest,
) -> Result<CrewBody, ApiError> {
    access.require(Action::EditCrews)?;
    let crew = Crew {
        id: CrewId::generate(),
        workspace_id: access.workspace_id().clone(),
        name: request.name,
        created_at: app.clock.now_ms(),
    };
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "crew_created",
        Some(crew.id.to_string()),
        json!({"crew_id": crew.id, "name": crew.name}),
    );
    app.store
        .insert_crew(&crew, entry)
        .await
        .map_err(|e| match e {
            plugboard_store::StoreError::NotFound(_) => ApiError::forbidden(),
            other => other.into(),
        })?;
    Ok(CrewBody::from(crew))
}

/// Loads a crew by the id a request named and checks the caller's role on its workspace for `action`: 404 when
/// it does not exist, then 403.
pub async fn crew_for(
    app: &App,
    principal: &Principal,
    crew_id: &CrewId,
    action: Action,
) -> Result<(Crew, Access), ApiError> {
    let crew = app
        .store
        .get_crew(crew_id)
        .await?
        .ok_or_else(|| ApiError::not_found("crew"))?;
    let access = authorize(app, principal, &crew.workspace_id, action).await?;
    Ok((crew, access))
}

/// Renames a crew (MANAGER+ on its workspace).
pub async fn rename_crew(
    app: &App,
    access: &Access,
    crew: &Crew,
    request: NameRequest,
) -> Result<CrewBody, ApiError> {
    access.require(Action::EditCrews)?;
    if crew.workspace_id != *access.workspace_id() {
        return Err(ApiError::forbidden());
    }
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "crew_renamed",
        Some(crew.id.to_string()),
        json!({"crew_id": crew.id, "from": crew.name, "to": request.name}),
    );
    app.store
        .rename_crew(&crew.id, &request.name, entry)
        .await?
        .map(CrewBody::from)
        .ok_or_else(|| ApiError::not_found("crew"))
}

/// Deletes a crew (ADMIN+ on its workspace); 409 `crew_in_use` while integrations are installed for it.
pub async fn delete_crew(app: &App, access: &Access, crew: &Crew) -> Result<(), ApiError> {
    access.require(Action::DeleteCrews)?;
    if crew.workspace_id != *access.workspace_id() {
        return Err(ApiError::forbidden());
    }
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "crew_deleted",
        Some(crew.id.to_string()),
        json!({"crew_id": crew.id, "name": crew.name}),
    );
    match app.store.delete_crew(&crew.id, entry).await? {
        CrewDeletion::Deleted => Ok(()),
        CrewDeletion::NotFound => Err(ApiError::not_found("crew")),
        CrewDeletion::InUse(n) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "crew_in_use",
            format!(
                "{n} integration{} installed for this crew: delete {} first, then the crew",
                if n == 1 { " is" } else { "s are" },
                if n == 1 { "it" } else { "them" }
            ),
        )),
    }
}
