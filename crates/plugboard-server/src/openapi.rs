//! The OpenAPI document, generated from the handlers' annotations and served at `/api/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The error body of every 4xx and 5xx.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// Human-readable message.
    error: String,
    /// Stable snake_case code.
    code: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pb_…")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Plugboard", description = "MCP connector catalog and credential vault"),
    paths(
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::openapi,
        crate::routes::connectors::list,
        crate::routes::connectors::get_one,
        crate::routes::oauth::oauth_callback,
        crate::routes::oauth::oauth_start,
        crate::routes::install::install,
        crate::routes::integrations::list,
        crate::routes::integrations::create,
        crate::routes::integrations::get_one,
        crate::routes::integrations::patch,
        crate::routes::integrations::delete,
        crate::routes::integrations::runtime,
        crate::routes::audit::list,
        crate::routes::verify::verify,
    ),
    components(schemas(ErrorBody, crate::prepared::ConnectorSummary, crate::routes::oauth::OAuthStartBody, crate::routes::install::InstallRequest, crate::integration::InstallBody, crate::integration::IntegrationBody, crate::integration::AuditEntry, crate::integration::AuditPage, crate::routes::integrations::CustomServerRequest, crate::routes::integrations::PatchRequest, crate::routes::verify::VerifyRequest, crate::routes::verify::VerifyResponse)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub fn document() -> Vec<u8> {
    ApiDoc::openapi()
        .to_json()
        .map(String::into_bytes)
        .unwrap_or_else(|_| b"{}".to_vec())
}
