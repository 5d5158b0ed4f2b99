//! Concurrent streams (decision 0092): the account's live streams, "stop one", and an operator's
//! per-account limit. The limit itself is enforced on the events route (per-event status
//! `too_many_streams` with a `too-many-streams` problem listing these streams).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use playhead_core::FieldError;
use playhead_core::ids::StreamId;
use playhead_core::streams::Stream;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::account_id;
use crate::RestState;
use crate::auth::Auth;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

/// A live stream: one player playing for the account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamDto {
    /// Pass it to `DELETE /v1/me/streams/{stream_id}` to stop this stream.
    pub stream_id: String,
    /// The profile watching.
    pub profile_id: String,
    /// What is playing.
    pub title_id: String,
    /// The player's device id, when it sends one.
    pub device_id: Option<String>,
    /// The sign-in session of the player's token (see `GET /v1/me/sessions` for its app name).
    pub session_id: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Its latest event (RFC 3339).
    pub last_seen_at: String,
}

impl From<&Stream> for StreamDto {
    fn from(s: &Stream) -> Self {
        Self {
            stream_id: s.id.to_string(),
            profile_id: s.profile.to_string(),
            title_id: s.title.to_string(),
            device_id: s.device_id.clone(),
            session_id: s.signin_session.clone(),
            started_at: s.started_at.to_rfc3339(),
            last_seen_at: s.last_seen.to_rfc3339(),
        }
    }
}

/// The account's live streams.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamsDto {
    /// Live streams, oldest first.
    pub items: Vec<StreamDto>,
    /// How many may play at once.
    pub limit: u32,
}

/// An account's own limit (operators).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamLimitDto {
    /// 0-1000 simultaneous streams, or null to go back to the configured default. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, maximum = 1000, required = true)]
    pub max_streams: Option<Option<i64>>,
}

/// A field that is present (maybe null) becomes `Some`, so a missing one can be told apart.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// An account's limit as it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamLimitStateDto {
    /// The account.
    pub account_id: String,
    /// Its own limit, null when the default applies.
    pub max_streams: Option<u32>,
    /// What applies now.
    pub effective: u32,
}

/// The account's live streams, oldest first, and its limit (any token of the account holding
/// history:read, a profile-bound one too: any player may be the one offering "stop one").
#[utoipa::path(get, path = "/v1/me/streams", tag = "playback", security(("bearer" = [])),
    responses((status = 200, body = StreamsDto), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem, description = "a service token: services have no streams")))]
pub async fn list_streams(State(s): State<RestState>, Auth(p): Auth) -> Result<Json<StreamsDto>, ApiError> {
    let all = s.app.list_streams(&p).await?;
    Ok(Json(StreamsDto { items: all.streams.iter().map(StreamDto::from).collect(), limit: all.limit }))
}

/// Stop one of the account's streams: its slot is free at once; its player's next event is
/// answered `stream_stopped`. 404 for a stream that is not the account's, or no longer live.
#[utoipa::path(delete, path = "/v1/me/streams/{stream_id}", tag = "playback", security(("bearer" = [])),
    params(("stream_id" = String, Path, description = "stream id")),
    responses((status = 204, description = "stopped"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn stop_stream(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = StreamId::parse(&id).map_err(|_| FieldError::new("stream_id", "invalid", "must be a UUID"))?;
    s.app.stop_stream(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set an account's own concurrent-stream limit, or clear it (`null`) to go back to
/// `streams.max_per_account` (operators; audited). Streams already playing beyond a lowered
/// limit play on; new starts wait until the account is under it.
#[utoipa::path(put, path = "/v1/admin/accounts/{account_id}/stream-limit", tag = "operations", security(("bearer" = [])),
    params(("account_id" = String, Path, description = "account id")), request_body = StreamLimitDto,
    responses((status = 200, body = StreamLimitStateDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_stream_limit(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StreamLimitDto>,
) -> Result<Json<StreamLimitStateDto>, ApiError> {
    let account = account_id(&id)?;
    let Some(wanted) = body.max_streams else {
        return Err(FieldError::required("max_streams").into());
    };
    let wanted = wanted
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| FieldError::new("max_streams", "out_of_range", "must be 0-1000, or null"))
        })
        .transpose()?;
    let state = s.app.set_stream_limit(&p, account, wanted).await?;
    Ok(Json(StreamLimitStateDto {
        account_id: account.to_string(),
        max_streams: state.own,
        effective: state.effective,
    }))
}
