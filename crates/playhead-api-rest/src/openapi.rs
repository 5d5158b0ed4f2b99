//! Completes the generated OpenAPI document with what the shared middleware adds to every
//! operation, so the document lists every status a route can return, each with an example:
//! 401 (authentication), 406 (versions), 429 (quotas and concurrency), 500/503 (failures),
//! 413/415 (bodies), 409/422 (Idempotency-Key on POST), and the RateLimit headers.
//! Handlers document only what they decide themselves.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

/// Adds the middleware's responses, headers and parameters to every `/v1` operation.
pub struct Common;

fn example(status: u16, slug: &str, title: &str, detail: &str) -> serde_json::Value {
    serde_json::json!({"type": format!("/problems/{slug}"), "title": title, "status": status, "detail": detail})
}

fn problem(description: &str, ex: serde_json::Value) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).example(Some(ex)).build(),
        )
        .header(
            "RateLimit",
            HeaderBuilder::new()
                .description(Some("remaining quota: \"<class>\";r=<remaining>;t=<seconds to reset>"))
                .build(),
        )
        .header(
            "RateLimit-Policy",
            HeaderBuilder::new().description(Some("quota: \"<class>\";q=<limit>;w=<window seconds>")).build(),
        )
        .build()
}

fn add(op: &mut Operation, code: &str, description: &str, ex: serde_json::Value) {
    op.responses.responses.entry(code.to_owned()).or_insert_with(|| problem(description, ex).into());
}

impl utoipa::Modify for Common {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            if !path.starts_with("/v1/") {
                continue;
            }
            let ops: [(HttpMethod, &mut Option<Operation>); 5] = [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Patch, &mut item.patch),
                (HttpMethod::Delete, &mut item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                add(
                    op,
                    "400",
                    "invalid input (the problem's `errors` name each field)",
                    serde_json::json!({
                    "type": "/problems/validation-error", "title": "Invalid input", "status": 400,
                    "detail": "limit: must be 1-100", "errors": [{"field": "limit", "code": "out_of_range", "message": "must be 1-100"}]}),
                );
                add(
                    op,
                    "401",
                    "missing, invalid or expired credentials (see WWW-Authenticate)",
                    example(401, "unauthorized", "Unauthorized", "access token expired"),
                );
                add(
                    op,
                    "406",
                    "the Accept header asks for a representation this route does not have",
                    example(
                        406,
                        "not-acceptable",
                        "Not acceptable",
                        "v9 is not available for this route; supported: application/json, application/vnd.playhead.v1+json",
                    ),
                );
                add(
                    op,
                    "429",
                    "a quota or the concurrency limit is exhausted (see Retry-After and RateLimit)",
                    serde_json::json!({
                    "type": "/problems/quota-exceeded", "title": "Quota exceeded", "status": 429,
                    "detail": "the read quota of 1200 requests per 60 s is used up; retry after 3 s", "limit": "1200 requests per 60 s (read)"}),
                );
                add(
                    op,
                    "500",
                    "an internal error (logged; details are never sent)",
                    example(500, "internal", "Internal error", "an internal error occurred"),
                );
                add(
                    op,
                    "503",
                    "a dependency is unavailable or the event log is full; retry after Retry-After",
                    example(
                        503,
                        "unavailable",
                        "Service unavailable",
                        "a dependency is unavailable; retry later",
                    ),
                );
                if op.request_body.is_some() {
                    add(
                        op,
                        "413",
                        "the body exceeds a limit (named in `limit`)",
                        serde_json::json!({
                        "type": "/problems/payload-too-large", "title": "Payload too large", "status": 413,
                        "detail": "the request exceeds the 1 MiB body limit", "limit": "1 MiB body"}),
                    );
                    add(
                        op,
                        "415",
                        "wrong Content-Type",
                        example(
                            415,
                            "unsupported-media-type",
                            "Unsupported media type",
                            "send Content-Type: application/json",
                        ),
                    );
                }
                if method == HttpMethod::Post {
                    add(
                        op,
                        "409",
                        "a request with the same Idempotency-Key is still running",
                        example(
                            409,
                            "idempotency-key-in-use",
                            "Request in progress",
                            "a request with this Idempotency-Key is still being processed; retry later",
                        ),
                    );
                    add(
                        op,
                        "422",
                        "the Idempotency-Key was used for a different request",
                        example(
                            422,
                            "idempotency-key-reused",
                            "Idempotency-Key reused",
                            "this Idempotency-Key was used for a different request",
                        ),
                    );
                    let documented = op
                        .parameters
                        .as_ref()
                        .is_some_and(|ps| ps.iter().any(|p| p.name == "Idempotency-Key"));
                    if !documented {
                        op.parameters.get_or_insert_with(Vec::new).push(
                            ParameterBuilder::new()
                                .name("Idempotency-Key")
                                .parameter_in(ParameterIn::Header)
                                .description(Some(
                                    "Makes a retry safe: a completed result (2xx and 400/404/413/415/422) is kept 24 h and replayed with Idempotent-Replayed: true; scoped to the caller.",
                                ))
                                .schema(Some(
                                    utoipa::openapi::ObjectBuilder::new()
                                        .schema_type(utoipa::openapi::schema::Type::String)
                                        .min_length(Some(1))
                                        .max_length(Some(255)),
                                ))
                                .build(),
                        );
                    }
                }
                for param in op.parameters.iter_mut().flatten() {
                    constrain(param);
                }
                for (code, resp) in &mut op.responses.responses {
                    if let utoipa::openapi::RefOr::T(r) = resp {
                        normalise_problem(code, r);
                        r.headers.entry("RateLimit".into()).or_insert_with(|| {
                            HeaderBuilder::new()
                                .description(Some(
                                    "remaining quota: \"<class>\";r=<remaining>;t=<seconds to reset>",
                                ))
                                .build()
                        });
                        r.headers.entry("RateLimit-Policy".into()).or_insert_with(|| {
                            HeaderBuilder::new()
                                .description(Some("quota: \"<class>\";q=<limit>;w=<window seconds>"))
                                .build()
                        });
                    }
                }
            }
        }
    }
}

/// A handler's `body = Problem` response is generated as `application/json` without an example:
/// make it `application/problem+json` with the example for its status.
fn normalise_problem(code: &str, r: &mut utoipa::openapi::Response) {
    let is_problem = |c: &utoipa::openapi::Content| matches!(&c.schema, Some(utoipa::openapi::RefOr::Ref(rf)) if rf.ref_location.ends_with("/Problem"));
    if r.content.get("application/json").is_some_and(is_problem)
        && let Some(c) = r.content.shift_remove("application/json")
    {
        r.content.insert("application/problem+json".into(), c);
    }
    if let Some(c) = r.content.get_mut("application/problem+json")
        && c.example.is_none()
    {
        c.example = Some(example_for(code));
    }
}

/// A representative problem for a status a handler decides.
fn example_for(code: &str) -> serde_json::Value {
    match code {
        "400" => {
            serde_json::json!({"type": "/problems/validation-error", "title": "Invalid input", "status": 400,
            "detail": "name: must be 1-64 characters without control characters",
            "errors": [{"field": "name", "code": "invalid", "message": "must be 1-64 characters without control characters"}]})
        }
        "403" => example(403, "forbidden", "Forbidden", "the token lacks the history:write scope"),
        "404" => example(404, "not-found", "Not found", "profile not found"),
        "409" => example(409, "conflict", "Conflict", "an account can have at most 20 profiles"),
        "412" => example(
            412,
            "precondition-failed",
            "Precondition failed",
            "the resource changed since the ETag in If-Match; GET it again and retry",
        ),
        "413" => {
            serde_json::json!({"type": "/problems/payload-too-large", "title": "Payload too large", "status": 413,
            "detail": "the request exceeds the 500 events per batch limit", "limit": "500 events per batch"})
        }
        "415" => example(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send Content-Type: application/json",
        ),
        "428" => example(
            428,
            "precondition-required",
            "Precondition required",
            "send If-Match with the ETag from your last GET, so a concurrent change is not overwritten",
        ),
        "503" => example(
            503,
            "backlog-full",
            "Event backlog full",
            "the event log is at its bound; nothing from this request was stored; retry after Retry-After seconds",
        ),
        other => example(other.parse().unwrap_or(500), "internal", "Error", "see the status"),
    }
}

/// Path ids have a known shape: UUIDs for server-made ids, the platform's alphabet for titles.
fn constrain(p: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
    use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
    // A profile named in the query (`/similar?profile_id=`) is a UUID like one in the path.
    if p.parameter_in == ParameterIn::Query && p.name == "profile_id" {
        let uuid = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
        p.schema = Some(RefOr::T(Schema::Object(uuid.build())));
        return;
    }
    if p.parameter_in != ParameterIn::Path {
        return;
    }
    let schema = match p.name.as_str() {
        "profile_id" | "account_id" | "play_id" | "erasure_id" | "export_id" | "other_id"
        | "requester_id" | "stream_id" => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        "title_id" => {
            ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9._:-]{1,128}$"))
        }
        _ => return,
    };
    p.schema = Some(RefOr::T(Schema::Object(schema.build())));
}
