//! The OpenAPI document's frame (title, the bearer and session schemes). Its paths and schemas come from the handlers'
//! `#[utoipa::path]` annotations and the request and response types' `ToSchema`, collected by the route list in
//! [`crate::startup::api_routes`]; the document is served at `/api/openapi.json`.

use bytes::Bytes;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "plugboard_session",
                "the browser session set by a sign-in; requests that change something must carry an Origin \
                 header equal to PLUGBOARD_PUBLIC_URL's origin",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Plugboard", description = "MCP connector catalog and credential vault"),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The document before any route is added.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The serialised document, made once when the router is built (handed to the handler as an extension).
#[derive(Clone)]
pub struct OpenApiJson(pub Bytes);

impl OpenApiJson {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> OpenApiJson {
        OpenApiJson(Bytes::from(
            doc.to_json()
                .map(String::into_bytes)
                .unwrap_or_else(|_| b"{}".to_vec()),
        ))
    }
}
