//! The OpenAPI document's frame (title, the bearer and session schemes). Its paths and schemas come from the handlers'
//! `#[utoipa::path]` annotations and the request and response types' `ToSchema`, collected by the route list in
//! [`crate::startup::api_routes`]; the document is served at `/api/openapi.json`.

use bytes::Bytes;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Schema};
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

/// The request bodies that refuse unknown keys (their parser calls `only_keys` with these `KEYS`): their schemas get
/// `additionalProperties: false`, and a test checks that each schema's properties are exactly its `KEYS`.
pub fn closed_request_bodies() -> Vec<(String, &'static [&'static str])> {
    use utoipa::ToSchema;
    vec![
        (
            crate::verify::VerifyRequest::name().into_owned(),
            crate::verify::VerifyRequest::KEYS,
        ),
        (
            crate::integration::InstallRequest::name().into_owned(),
            crate::integration::InstallRequest::KEYS,
        ),
        (
            crate::integration::CustomServerRequest::name().into_owned(),
            crate::integration::CustomServerRequest::KEYS,
        ),
        (
            crate::integration::PatchRequest::name().into_owned(),
            crate::integration::PatchRequest::KEYS,
        ),
        (
            crate::people::NameRequest::name().into_owned(),
            crate::people::NameRequest::KEYS,
        ),
        (
            crate::people::AddMemberRequest::name().into_owned(),
            crate::people::AddMemberRequest::KEYS,
        ),
        (
            crate::people::RoleRequest::name().into_owned(),
            crate::people::RoleRequest::KEYS,
        ),
        (
            crate::people::CreateTokenRequest::name().into_owned(),
            crate::people::CreateTokenRequest::KEYS,
        ),
        (
            crate::people::CreateAgentTokenRequest::name().into_owned(),
            crate::people::CreateAgentTokenRequest::KEYS,
        ),
    ]
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The parameters that carry a Plugboard id (`plugboard_store::new_id`: 24 lowercase letters and digits, starting
/// with a letter); the server answers any other shape before a lookup, exactly as it answers an unknown id.
const ID_PARAMETERS: &[&str] = &["id", "workspace_id", "crew_id", "user_id", "integration_id"];
/// The shape of a Plugboard id in a path.
pub const ID_PATTERN: &str = "^[a-z][a-z0-9]{23}$";
/// An id in the query string: the server trims it first.
pub const QUERY_ID_PATTERN: &str = r"^\s*[a-z][a-z0-9]{23}\s*$";
/// An optional id in the query string: empty (or blank) is the same as absent.
pub const OPTIONAL_QUERY_ID_PATTERN: &str = r"^\s*([a-z][a-z0-9]{23})?\s*$";

/// What every route answers besides its own statuses, added to the document once every route is in it: the
/// answers of the layers around the handlers (the request timeout, the body limit, the JSON error body of a request
/// that cannot be parsed) and of the database. Also closes the request bodies that refuse unknown keys.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        // The liveness probe and this document need no database.
        let uses_database = !matches!(path.as_str(), "/healthz" | "/api/openapi.json");
        for op in operations_mut(item) {
            for parameter in op.parameters.iter_mut().flatten() {
                if ID_PARAMETERS.contains(&parameter.name.as_str()) {
                    let pattern = match (&parameter.parameter_in, &parameter.required) {
                        (ParameterIn::Query, Required::True) => QUERY_ID_PATTERN,
                        (ParameterIn::Query, _) => OPTIONAL_QUERY_ID_PATTERN,
                        _ => ID_PATTERN,
                    };
                    if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut() {
                        object.pattern = Some(pattern.to_string());
                    }
                }
            }
            let has_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(description));
            };
            if has_input {
                add(
                    "400",
                    "a malformed request (a parameter or the body cannot be read)",
                );
            }
            add(
                "408",
                "the request took longer than the server's bound (the probe timeout plus 20 s)",
            );
            if op.request_body.is_some() {
                add("413", "the request body is larger than 1 MiB");
                add("415", "the request body is not `application/json`");
            }
            add(
                "500",
                "an internal error (the cause is in the server's log, never in the answer)",
            );
            if uses_database {
                add(
                    "503",
                    "the database cannot be reached (`database_unavailable`); try again after `Retry-After`",
                );
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for (name, _) in closed_request_bodies() {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
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
