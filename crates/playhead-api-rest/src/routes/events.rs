//! Playback event ingestion: 202 with one result per event.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use playhead_app::ingest::{EventStatus, IngestBatch};
use playhead_core::event::RawEvent;
use playhead_core::trace::TraceContext;
use playhead_core::{FieldError, Timestamp};

use super::profile_id;
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{EventBatchDto, EventBatchResultDto, EventDto, EventResultDto};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

/// Parse one event, naming the bad field (the rest of the batch still goes through).
fn parse_event(raw: &serde_json::value::RawValue) -> Result<RawEvent, (Option<String>, FieldError)> {
    let de = &mut serde_json::Deserializer::from_str(raw.get());
    match serde_path_to_error::deserialize::<_, EventDto>(de) {
        Ok(e) => Ok(RawEvent {
            event_id: Some(e.event_id),
            title_id: Some(e.title_id),
            kind: Some(e.kind),
            position_ms: Some(e.position_ms),
            duration_ms: e.duration_ms,
            occurred_at: Some(e.occurred_at),
            device_id: e.device_id,
            session_id: e.session_id,
        }),
        Err(err) => {
            // Echo the event id when there is a readable one, so the client can match results.
            let event_id = serde_json::from_str::<serde_json::Value>(raw.get())
                .ok()
                .and_then(|v| v.get("event_id").and_then(|id| id.as_str()).map(str::to_owned));
            let path = err.path().to_string();
            let inner = err.into_inner().to_string();
            let (field, code) = if inner.starts_with("unknown field") {
                let name = inner.split('`').nth(1).unwrap_or("?").to_owned();
                (name, "unknown_field")
            } else if let Some(missing) = inner.strip_prefix("missing field `") {
                (missing.split('`').next().unwrap_or("?").to_owned(), "required")
            } else if path.is_empty() || path == "." {
                ("event".to_owned(), "invalid")
            } else {
                (path, "invalid_type")
            };
            // serde's message ends with " at line 1 column N": position noise for a client.
            let message = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
            Err((event_id, FieldError::new(field, code, message)))
        }
    }
}

/// Record playback events (history:write). Each event is accepted (durably logged), duplicate,
/// held (title not in the catalog yet), rejected (with a problem naming the field) or paused
/// (the profile paused its history: not recorded, a `history-paused` problem; do not retry),
/// too_many_streams (a start beyond the account's concurrent-stream limit: not recorded, a
/// `too-many-streams` problem listing the live streams) or stream_stopped (the stream was stopped
/// from another device: not recorded, a `stream-stopped` problem; stop playback).
#[utoipa::path(post, path = "/v1/profiles/{profile_id}/events", tag = "playback", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = EventBatchDto,
    responses(
        (status = 202, body = EventBatchResultDto, description = "one result per event"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 410, body = Problem, description = "the profile was erased: stop sending"),
        (status = 413, body = Problem, description = "over 1 MiB or 500 events"),
        (status = 415, body = Problem),
        (status = 503, body = Problem, description = "event log full; nothing stored; see Retry-After")))]
pub async fn post_events(
    State(s): State<RestState>,
    Auth(p): Auth,
    trace: Option<Extension<TraceContext>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EventBatchDto>,
) -> Result<(StatusCode, Json<EventBatchResultDto>), ApiError> {
    let profile = profile_id(&id)?;
    let max = s.limits.batch_max;
    if body.events.len() > max {
        return Err(ApiError::TooLarge { limit: format!("{max} events per batch") });
    }
    if body.events.is_empty() {
        return Err(FieldError::new("events", "required", format!("must hold 1-{max} events")).into());
    }
    let sent_at = body
        .sent_at
        .as_deref()
        .map(|t| {
            Timestamp::parse_rfc3339(t).map_err(|e| FieldError::new("sent_at", "invalid", e.to_string()))
        })
        .transpose()?;
    let batch = IngestBatch {
        sent_at,
        backfill: body.backfill,
        events: body.events.iter().map(|e| parse_event(e)).collect(),
        // Set by the route's gate for every request.
        trace: trace.map(|Extension(t)| t),
    };
    let results = s.app.record_events(&p, profile, batch).await?;
    let count = |st: EventStatus| results.iter().filter(|r| r.status == st).count();
    Ok((
        StatusCode::ACCEPTED,
        Json(EventBatchResultDto {
            accepted: count(EventStatus::Accepted),
            duplicate: count(EventStatus::Duplicate),
            held: count(EventStatus::Held),
            rejected: count(EventStatus::Rejected),
            paused: count(EventStatus::Paused),
            too_many_streams: count(EventStatus::TooManyStreams),
            stream_stopped: count(EventStatus::StreamStopped),
            results: results.iter().map(EventResultDto::from).collect(),
        }),
    ))
}
