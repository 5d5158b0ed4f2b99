//! Data export (issue 16): ask for an account's archive, then fetch it, streamed.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use playhead_core::FieldError;
use playhead_core::ids::ExportId;
use serde::Serialize;
use utoipa::ToSchema;

use super::account_id;
use crate::RestState;
use crate::auth::Auth;
use crate::error::{ApiError, Problem};

/// An export was accepted: fetch the archive at `archive` (also the Location header).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAcceptedDto {
    /// The export's id.
    pub export_id: String,
    /// Where the archive is fetched.
    pub archive: String,
}

/// The archive's top level (the full shape: docs/export.schema.json).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportArchiveDto {
    /// `playhead.export.v2`.
    pub format: String,
    /// When the archive was written (RFC 3339).
    pub exported_at: String,
    /// The account: id, e-mail, creation time.
    #[schema(value_type = Object)]
    pub account: serde_json::Value,
    /// The OAuth clients the account signed in through.
    #[schema(value_type = Vec<Object>)]
    pub clients_authorised: Vec<serde_json::Value>,
    /// Each profile with its plays, resume points, hidden titles, feedback and follows.
    #[schema(value_type = Vec<Object>)]
    pub profiles: Vec<serde_json::Value>,
}

/// Ask for an account's data export (its own account, or an operator's request).
#[utoipa::path(post, path = "/v1/accounts/{account_id}/exports", tag = "export", security(("bearer" = [])),
    params(("account_id" = String, Path, description = "account id")), responses(
    (status = 202, body = ExportAcceptedDto, headers(("Location" = String, description = "the archive"))),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem)))]
pub async fn request_export(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let account = account_id(&id)?;
    let export = s.app.request_export(&p, account).await?;
    let archive = format!("/v1/accounts/{account}/exports/{export}");
    let mut res = (
        StatusCode::ACCEPTED,
        Json(ExportAcceptedDto { export_id: export.to_string(), archive: archive.clone() }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&archive) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// The archive: one JSON document (format `playhead.export.v2`, schema in docs/export.schema.json)
/// with the account, authorised clients, and per profile every play, resume point, hidden title,
/// feedback and follow. Streamed as it is read, so any history size is served in bounded memory.
#[utoipa::path(get, path = "/v1/accounts/{account_id}/exports/{export_id}", tag = "export", security(("bearer" = [])),
    params(("account_id" = String, Path, description = "account id"), ("export_id" = String, Path, description = "export id")),
    responses((status = 200, description = "the archive (application/json, playhead.export.v2)", content_type = "application/json", body = ExportArchiveDto),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem)))]
pub async fn get_export(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((account, export)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = account_id(&account)?;
    let export = ExportId::parse(&export)
        .map_err(|_| ApiError::from(FieldError::new("export_id", "invalid", "must be a UUID")))?;
    s.app.export_access(&p, account, export).await?;
    // A few chunks in flight at most: the writer waits for the client (bounded memory).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let app = s.app.clone();
    let writer = tokio::spawn(async move { app.write_export(account, &tx).await });
    // The first chunk decides the status: an account erased meanwhile is a 404, not a 200 with
    // half a document.
    let Some(first) = rx.recv().await else {
        return match writer.await {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(ApiError::App(playhead_app::AppError::Internal("the export wrote nothing".into()))),
        };
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let body = futures::stream::once(async move { first })
        .chain(rest)
        .map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(c)));
    let mut res = Response::new(Body::from_stream(body));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"playhead-export.json\""),
    );
    Ok(res)
}
