//! The HTTP probe: one request, rendered from the fields, through the egress guard.

use plugboard_catalog::HttpVerify;
use plugboard_egress::Request;

use super::redact::{body_text, json_message};
use super::{Outcome, ProbeContext};

const PROBE: &str = "http";

/// Sends the verify request and judges the answer by `expect_status` and `expect_json_field`.
pub async fn probe(ctx: &ProbeContext<'_>, spec: &HttpVerify) -> Outcome {
    let url = match ctx.render(&spec.url) {
        Ok(u) => u,
        Err(m) => return Outcome::fail(PROBE, ctx.finish(&m)),
    };
    let Ok(method) = http::Method::from_bytes(spec.method.as_bytes()) else {
        return Outcome::fail(
            PROBE,
            "the connector's verify step has an invalid HTTP method",
        );
    };
    let mut req = Request::new(method, url.trim()).follow_redirects(true);
    for (name, template) in &spec.headers {
        match ctx.render(template) {
            Ok(v) => req = req.header(name.clone(), v),
            Err(m) => return Outcome::fail(PROBE, ctx.finish(&m)),
        }
    }
    if let Some(body) = &spec.body {
        match ctx.render(body) {
            Ok(b) => req = req.body(b.into_bytes()),
            Err(m) => return Outcome::fail(PROBE, ctx.finish(&m)),
        }
    }
    let resp = match ctx.guard.send(req).await {
        Ok(r) => r,
        Err(e) => return Outcome::fail(PROBE, ctx.egress_message("provider", &e)),
    };
    let status = resp.status;
    if !spec.expect_status.contains(&status) {
        let said = body_text(&ctx.redactor, &resp.body, resp.truncated);
        return Outcome::fail(PROBE, ctx.finish(&answered(status, &said)));
    }
    let Some(field) = &spec.expect_json_field else {
        return Outcome::ok(PROBE);
    };
    let parsed: Option<serde_json::Value> = if resp.truncated {
        None
    } else {
        serde_json::from_slice(&resp.body).ok()
    };
    let Some(value) = parsed else {
        return Outcome::fail(
            PROBE,
            ctx.finish(&format!(
                "provider answered {status} but not with JSON (expected \"{field}\": true)"
            )),
        );
    };
    if value.get(field) == Some(&serde_json::Value::Bool(true)) {
        return Outcome::ok(PROBE);
    }
    let reason = match value.get(field) {
        None => format!("without \"{field}\""),
        Some(v) => format!("with \"{field}\": {}", short_json(v)),
    };
    let said = json_message(&resp.body).unwrap_or_default();
    let message = if said.is_empty() {
        format!("provider answered {status} {reason}")
    } else {
        format!("provider answered {status} {reason}: {said}")
    };
    Outcome::fail(PROBE, ctx.finish(&message))
}

/// `provider answered 401: Bad credentials`, or `provider answered 401 Unauthorized` when the body says nothing.
fn answered(status: u16, said: &str) -> String {
    let said = said.trim();
    if said.is_empty() {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        format!("provider answered {status} {reason}")
            .trim_end()
            .to_owned()
    } else {
        format!("provider answered {status}: {said}")
    }
}

fn short_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(_) => "an object".to_owned(),
        serde_json::Value::Array(_) => "an array".to_owned(),
        other => super::redact::cut(&other.to_string(), 64),
    }
}
