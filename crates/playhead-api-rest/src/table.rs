//! The route table: the one place a REST route is declared.
//!
//! Each entry names the application [`Operation`] it serves (whose requirement, in the
//! application's policy table, the route's gate enforces) and its handler. A documented handler
//! carries its method, path and OpenAPI entry in its own `#[utoipa::path]` attribute, collected
//! by `utoipa_axum::routes!`; the authorization server's endpoints and hosted pages are served
//! outside the OpenAPI document (form-encoded OAuth, HTML) and state their method and path here.
//!
//! To add a route: write the handler with its `#[utoipa::path]`, add the operation to
//! `playhead_app::access::Operation` if it is a new use case, and add one line below. Nothing else
//! lists routes: the router, the OpenAPI document, the gate and the policy sweeps in the tests
//! are all generated from this table.

use std::sync::Arc;

use axum::http::Method;
use axum::routing::{MethodRouter, get, post};
use playhead_app::access::Operation;
use utoipa::openapi::path::{PathItem, Paths};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::RestState;
use crate::middleware::{RouteGate, RouteInfo, gate};
use crate::routes::{
    accounts, admin, devices, erase, events, export, feed, health, history, library, oauth, pin, progress,
    recs, rows, streams, titles,
};

enum Handler {
    /// In the OpenAPI document (the paths come from the handler's attribute).
    Documented(UtoipaMethodRouter<RestState>),
    /// Outside it (OAuth endpoints, HTML pages).
    Undocumented(MethodRouter<RestState>),
}

/// One route: an operation, its method and template, and its handler.
pub struct RouteEntry {
    op: Operation,
    method: Method,
    path: String,
    versions: &'static [u8],
    handler: Handler,
}

impl RouteEntry {
    /// The operation this route serves.
    pub fn op(&self) -> Operation {
        self.op
    }

    /// Its method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Its template (`/v1/profiles/{profile_id}/history`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether it is in the OpenAPI document.
    pub fn documented(&self) -> bool {
        matches!(self.handler, Handler::Documented(_))
    }

    /// Also serve these media-type versions (`application/vnd.playhead.vN+json`); v1 always.
    fn versions(mut self, versions: &'static [u8]) -> Self {
        self.versions = versions;
        self
    }

    /// Add this route to `router`. With `state`, the route gets its gate (and, for `/v1`
    /// routes other than the bulk import, the request timeout); without, only its OpenAPI entry
    /// matters (the document is being built).
    pub(crate) fn register(
        self,
        router: OpenApiRouter<RestState>,
        state: Option<&RestState>,
    ) -> OpenApiRouter<RestState> {
        let gated = |mr: MethodRouter<RestState>| match state {
            None => mr,
            Some(s) => {
                let info = RouteInfo {
                    op: self.op,
                    method: self.method.clone(),
                    path: self.path.clone(),
                    versions: self.versions,
                    red: Default::default(),
                };
                // The import streams up to 256 MiB: it gets no request timeout, only its own
                // size limit. OAuth endpoints and pages answer without long work.
                let mr = if self.path.starts_with("/v1/") && self.op != Operation::ImportTitles {
                    mr.route_layer(axum::middleware::from_fn_with_state(s.limits.request_timeout, deadline))
                } else {
                    mr
                };
                let g = RouteGate { state: s.clone(), route: Arc::new(info) };
                // route_layer: only requests this method router serves pass the gate; another
                // method on the same path goes to the 405 fallback, never to a requirement check.
                mr.route_layer(axum::middleware::from_fn_with_state(g, gate))
            }
        };
        match self.handler {
            Handler::Documented((schemas, paths, mr)) => {
                let mr = gated(mr);
                router.routes((schemas, paths, mr))
            }
            Handler::Undocumented(mr) => {
                let path = self.path.clone();
                router.route(&path, gated(mr))
            }
        }
    }
}

/// The request timeout: a handler still running after `limit` is dropped and the client gets a
/// 503 problem with Retry-After (inside the gate, so it carries the RateLimit headers too).
async fn deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => crate::error::ApiError::RequestTimeout(limit).into_response(),
    }
}

/// A documented route: method and path come from the handler's `#[utoipa::path]`.
fn api(op: Operation, handler: UtoipaMethodRouter<RestState>) -> RouteEntry {
    let (method, path) = only_operation(&handler.1);
    RouteEntry { op, method, path, versions: &[1], handler: Handler::Documented(handler) }
}

/// An undocumented route (OAuth endpoints and pages).
fn page(op: Operation, method: Method, path: &str, handler: MethodRouter<RestState>) -> RouteEntry {
    RouteEntry { op, method, path: path.to_owned(), versions: &[1], handler: Handler::Undocumented(handler) }
}

/// The one (method, path) a `routes!(handler)` of one handler documents.
fn only_operation(paths: &Paths) -> (Method, String) {
    let mut found = paths.paths.iter().flat_map(|(path, item)| methods(item).map(move |m| (m, path.clone())));
    match (found.next(), found.next()) {
        (Some(one), None) => one,
        // A table entry is one handler with one #[utoipa::path]: a programming error otherwise,
        // caught by every test that builds the router.
        _ => panic!("a route table entry must document exactly one operation"),
    }
}

fn methods(item: &PathItem) -> impl Iterator<Item = Method> + '_ {
    [
        (Method::GET, item.get.is_some()),
        (Method::PUT, item.put.is_some()),
        (Method::POST, item.post.is_some()),
        (Method::DELETE, item.delete.is_some()),
        (Method::PATCH, item.patch.is_some()),
        (Method::HEAD, item.head.is_some()),
        (Method::OPTIONS, item.options.is_some()),
        (Method::TRACE, item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, present)| present.then_some(m))
}

/// Every route Playhead serves over REST, with the operation it serves.
pub fn table() -> Vec<RouteEntry> {
    use Operation as O;
    vec![
        api(O::Livez, routes!(health::livez)),
        api(O::Readyz, routes!(health::readyz)),
        // The authorization server (RFC 8414 metadata under both well-known names).
        page(O::OAuthMetadata, Method::GET, "/.well-known/oauth-authorization-server", get(oauth::metadata)),
        page(O::OAuthMetadata, Method::GET, "/.well-known/openid-configuration", get(oauth::metadata)),
        page(O::Jwks, Method::GET, "/.well-known/jwks.json", get(oauth::jwks)),
        page(O::Token, Method::POST, "/oauth/token", post(oauth::token)),
        page(
            O::DeviceAuthorization,
            Method::POST,
            "/oauth/device_authorization",
            post(oauth::device_authorization),
        ),
        page(O::Revoke, Method::POST, "/oauth/revoke", post(oauth::revoke)),
        page(O::Introspect, Method::POST, "/oauth/introspect", post(oauth::introspect)),
        page(O::AuthorizePage, Method::GET, "/oauth/authorize", get(oauth::authorize_page)),
        page(O::AuthorizeSubmit, Method::POST, "/oauth/authorize", post(oauth::authorize_submit)),
        page(O::SigninPage, Method::GET, "/signin", get(oauth::signin_page)),
        page(O::SigninSubmit, Method::POST, "/signin", post(oauth::signin_submit)),
        page(O::DevicePage, Method::GET, "/device", get(oauth::device_page)),
        page(O::DeviceSubmit, Method::POST, "/device", post(oauth::device_submit)),
        api(O::DeviceQr, routes!(oauth::qr::device_qr)),
        page(O::Signout, Method::POST, "/signout", post(oauth::signout)),
        // Accounts and profiles.
        api(O::GetMe, routes!(accounts::me)),
        api(O::CreateProfile, routes!(accounts::create_profile)),
        api(O::GetProfile, routes!(accounts::get_profile)),
        api(O::UpdateProfile, routes!(accounts::patch_profile)),
        // Erasure (issue 16).
        api(O::EraseAccount, routes!(erase::erase_account)),
        api(O::EraseProfile, routes!(erase::erase_profile)),
        api(O::GetErasure, routes!(erase::get_erasure)),
        // Data export (issue 16).
        api(O::RequestExport, routes!(export::request_export)),
        api(O::GetExport, routes!(export::get_export)),
        api(O::SetProfilePin, routes!(pin::put_pin)),
        api(O::RemoveProfilePin, routes!(pin::delete_pin)),
        api(O::VerifyProfilePin, routes!(pin::verify_pin)),
        // Signed-in devices.
        api(O::ListSessions, routes!(devices::list_sessions)),
        api(O::RevokeSession, routes!(devices::revoke_session)),
        api(O::RevokeAllSessions, routes!(devices::revoke_all)),
        // Catalog.
        api(O::ListTitles, routes!(titles::list_titles)),
        api(O::GetTitle, routes!(titles::get_title)),
        api(O::PutTitle, routes!(titles::put_title)),
        api(O::PatchTitle, routes!(titles::patch_title)),
        api(O::ImportTitles, routes!(titles::import_titles)),
        // Playback, history and rows.
        api(O::RecordEvents, routes!(events::post_events)),
        api(O::GetProgress, routes!(progress::get_progress)),
        api(O::SetProgress, routes!(progress::put_progress)),
        api(O::ListHistory, routes!(history::get_history)).versions(&[1, 2]),
        api(O::ImportHistory, routes!(history::post_history)),
        api(O::DeletePlay, routes!(history::delete_play)),
        api(O::GetContinueWatching, routes!(rows::continue_watching)),
        api(O::HideFromContinueWatching, routes!(rows::hide)),
        api(O::GetNextUp, routes!(rows::next_up)),
        // Concurrent streams.
        api(O::ListStreams, routes!(streams::list_streams)),
        api(O::StopStream, routes!(streams::stop_stream)),
        // Watched marks and My list.
        api(O::MarkWatched, routes!(library::mark_watched)),
        api(O::UnmarkWatched, routes!(library::unmark_watched)),
        api(O::GetList, routes!(library::list)),
        api(O::AddToList, routes!(library::list_add)),
        api(O::RemoveFromList, routes!(library::list_remove)),
        api(O::GetListSettings, routes!(library::list_settings)),
        api(O::UpdateListSettings, routes!(library::put_list_settings)),
        // Recommendations.
        api(O::GetRecommendations, routes!(recs::recommendations)),
        api(O::GetSimilar, routes!(recs::similar)),
        api(O::SendFeedback, routes!(recs::feedback)),
        api(O::RecordImpressions, routes!(recs::impressions)),
        // Followers and the activity feed.
        api(O::Follow, routes!(feed::follow)),
        api(O::Unfollow, routes!(feed::unfollow)),
        api(O::ListFollowing, routes!(feed::following)),
        api(O::ListFollowers, routes!(feed::followers)),
        api(O::ListFollowRequests, routes!(feed::follow_requests)),
        api(O::DecideFollowRequest, routes!(feed::decide_request)),
        api(O::Block, routes!(feed::block)),
        api(O::Unblock, routes!(feed::unblock)),
        api(O::GetFeedSettings, routes!(feed::get_settings)),
        api(O::SetFeedSettings, routes!(feed::put_settings)),
        api(O::GetFeed, routes!(feed::feed)),
        // Operators.
        api(O::CreateClient, routes!(admin::create_client)),
        api(O::DeleteClient, routes!(admin::delete_client)),
        api(O::GetRecsModel, routes!(admin::recs_model)),
        api(O::SetStreamLimit, routes!(streams::put_stream_limit)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler still running at the deadline is dropped and the client learns why, in the
    /// API's error format, with when to retry (issue 17).
    #[tokio::test]
    async fn a_request_past_the_timeout_is_a_problem_with_retry_after() {
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route("/slow", get(std::future::pending::<&'static str>))
            .route("/fast", get(|| async { "done" }))
            .layer(axum::middleware::from_fn_with_state(std::time::Duration::from_millis(20), deadline));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let req = axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request");
                app.oneshot(req).await.expect("infallible")
            }
        };
        let slow = call("/slow").await;
        assert_eq!(slow.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(slow.headers()["content-type"], "application/problem+json");
        assert_eq!(slow.headers()["retry-after"], "2");
        let body = axum::body::to_bytes(slow.into_body(), 1 << 16).await.expect("body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(problem["type"], "/problems/request-timeout", "{problem}");
        assert_eq!(call("/fast").await.status(), axum::http::StatusCode::OK);
    }

    #[test]
    fn every_operation_has_a_route_and_no_route_is_declared_twice() {
        let table = table();
        let mut seen = std::collections::HashSet::new();
        for e in &table {
            assert!(
                seen.insert((e.method().clone(), e.path().to_owned())),
                "{} {} twice",
                e.method(),
                e.path()
            );
        }
        // Served beside the table: REST describes itself with /openapi.json (Swagger UI's
        // route); the operation exists for gRPC's server reflection.
        // Unmatched is the fallback's: the router answers every path no route serves with it.
        let beside_the_table = [Operation::DescribeApi, Operation::Unmatched];
        for op in Operation::ALL.iter().filter(|op| !beside_the_table.contains(op)) {
            assert!(table.iter().any(|e| e.op() == *op), "{} has no REST route", op.name());
        }
    }

    /// The document states the limits the server enforces (issue 13): schemathesis' negative
    /// tests then expect exactly the 400s and 428s the server gives.
    #[test]
    fn the_document_states_page_limits_and_required_preconditions() {
        let doc = serde_json::to_value(crate::openapi()).expect("openapi json");
        let max = f64::from(playhead_app::reads::PAGE_MAX);
        let mut limits = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["name"] == "limit" {
                        limits += 1;
                        assert_eq!(
                            p["schema"]["minimum"].as_f64(),
                            Some(1.0),
                            "{method} {path}: limit minimum"
                        );
                        assert_eq!(
                            p["schema"]["maximum"].as_f64(),
                            Some(max),
                            "{method} {path}: limit maximum"
                        );
                    }
                }
                if method == "patch" {
                    let if_match = op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|p| p["name"] == "If-Match" && p["in"] == "header");
                    assert_eq!(
                        if_match.and_then(|p| p["required"].as_bool()),
                        Some(true),
                        "{method} {path}: If-Match must be a required header (the server answers 428 without it)"
                    );
                    assert!(op["responses"]["428"].is_object(), "{method} {path}: 428 documented");
                }
            }
        }
        assert!(limits >= 6, "found only {limits} limit parameters");
    }
}
