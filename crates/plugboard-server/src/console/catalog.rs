//! `GET /w/{workspace}/catalog?q=&category=`: the catalog as cards (logo or initial, name, description, category,
//! auth mode), narrowed by the same filter as the API's (`plugboard_catalog::Filter`). Works without script (a GET
//! form); `console.js` narrows the cards as the person types.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use plugboard_catalog::{AuthMode, CatalogFilter, Summary};

use super::logo::{self, Logo};
use super::shell::{for_workspace, Shell};
use super::{html, PageError, PagePath};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::QueryPairs;
use crate::roles;
use crate::state::AppState;

pub struct Card {
    pub id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub category_label: String,
    pub auth_label: &'static str,
    pub logo: Logo,
}

pub struct CategoryOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(askama::Template)]
#[template(path = "catalog.html")]
pub struct CatalogPage {
    pub shell: Shell,
    pub q: String,
    pub categories: Vec<CategoryOption>,
    pub cards: Vec<Card>,
    pub total: usize,
    pub filtered: bool,
}

/// How an auth mode reads on a card and a connector page.
pub fn auth_label(mode: AuthMode) -> &'static str {
    match mode {
        AuthMode::Pat => "Access token",
        AuthMode::ConnString => "Connection details",
        AuthMode::McpOauth => "OAuth (MCP server)",
        AuthMode::ByoOauth => "OAuth (your app)",
        AuthMode::None => "No credentials",
    }
}

/// `developer-tools` → `Developer tools`.
pub fn category_label(category: &str) -> String {
    if category.is_empty() {
        return "Other".to_string();
    }
    let words: Vec<String> = category
        .split(['-', '_', ' '])
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, w)| match w {
            // Initialisms read as such.
            "ai" | "crm" | "api" | "ci" | "cd" | "sql" | "mcp" => w.to_uppercase(),
            _ if i == 0 => {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
            _ => w.to_string(),
        })
        .collect();
    words.join(" ")
}

fn card(m: &Summary) -> Card {
    Card {
        id: m.id.to_string(),
        name: m.name.to_string(),
        description: m.description.to_string(),
        category: m.category.to_string(),
        category_label: category_label(&m.category),
        auth_label: auth_label(m.auth_mode),
        logo: logo::for_summary(m),
    }
}

/// `/w/{workspace}`: the catalog is the workspace's first page.
pub async fn workspace_home(PagePath(workspace_id): PagePath<String>) -> Response {
    let id = plugboard_store::WorkspaceId::parse(&workspace_id);
    match id {
        Some(id) => Redirect::to(&format!("/w/{id}/catalog")).into_response(),
        None => PageError::from(ApiError::forbidden()).into_response(),
    }
}

pub async fn page(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath(workspace_id): PagePath<String>,
    query: QueryPairs,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, _) = for_workspace(&app, &principal, &workspace_id, roles::VIEW, "catalog").await?;
    let q = query.get("q").unwrap_or("").trim().to_string();
    let category = query.get("category").unwrap_or("").to_string();
    let catalog = app.catalog.current();
    let entries = catalog.catalog.entries();
    let mut names: Vec<&str> = entries.iter().map(|e| &*e.summary().category).collect();
    names.sort_unstable();
    names.dedup();
    let categories = names
        .into_iter()
        .map(|c| CategoryOption {
            value: c.to_string(),
            label: category_label(c),
            selected: c == category,
        })
        .collect();
    let filter = CatalogFilter {
        category: Some(category.as_str()).filter(|c| !c.is_empty()),
        auth_mode: None,
        text: Some(q.as_str()),
    };
    let cards = entries
        .iter()
        .map(|e| e.summary())
        .filter(|m| filter.matches(m))
        .map(card)
        .collect();
    Ok(html(&CatalogPage {
        shell,
        filtered: !q.is_empty() || !category.is_empty(),
        q,
        categories,
        cards,
        total: entries.len(),
    }))
}
