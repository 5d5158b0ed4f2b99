//! The playhead.v1 services: each method parses its request, calls one use case through
//! [`GrpcState::unary`] (or runs its stream), and shapes the answer. No rules and no access
//! checks here: the gate admitted the call by its table entry, and the use cases check objects.

use std::pin::Pin;

use futures::Stream;
use playhead_app::access::{Operation, partition_of};
use playhead_app::accounts::{NewProfile, ProfilePatch};
use playhead_app::ingest::{EventStatus, IngestBatch};
use playhead_app::limits::RouteClass;
use playhead_app::reads::{BackfillPlay, BackfillResult, ExpectedVersion, HistoryQuery, ProgressWrite};
use playhead_app::recs::Recommended;
use playhead_core::event::RawEvent;
use playhead_core::ports::FeedbackKind;
use playhead_core::recs::RecsRow;
use playhead_core::{EventId, FieldError};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::GrpcState;
use crate::call::{admitted, principal};
use crate::convert::{self as cv, unknown_enum};
use crate::error::{invalid, status};
use crate::pb;

/// A parse failure as INVALID_ARGUMENT.
fn bad(e: FieldError) -> Status {
    invalid(&[e])
}

fn required(field: &'static str) -> Status {
    bad(FieldError::new(field, "required", "is required"))
}

fn profile_of<T>(id: impl Fn(&T) -> &str) -> impl FnOnce(&T) -> Option<String> {
    move |q| Some(id(q).to_owned())
}

/// One protobuf event as the use case takes it: parse problems travel with the event, so one
/// bad event never fails its batch (as in REST).
fn raw_event(e: pb::PlaybackEvent) -> Result<RawEvent, (Option<String>, FieldError)> {
    let id = (!e.event_id.is_empty()).then(|| e.event_id.clone());
    let kind = match pb::EventKind::try_from(e.kind) {
        Ok(pb::EventKind::Unspecified) => None,
        Ok(k) => Some(k.as_str_name().trim_start_matches("EVENT_KIND_").to_ascii_lowercase()),
        Err(_) => return Err((id, unknown_enum("kind", e.kind))),
    };
    let occurred_at = e
        .occurred_at
        .as_ref()
        .map(|t| cv::timestamp("occurred_at", t).map(|t| t.to_rfc3339()))
        .transpose()
        .map_err(|fe| (id.clone(), fe))?;
    Ok(RawEvent {
        event_id: id,
        title_id: (!e.title_id.is_empty()).then_some(e.title_id),
        kind,
        position_ms: Some(e.position_ms),
        duration_ms: e.duration_ms,
        occurred_at,
        device_id: e.device_id,
        session_id: e.session_id,
    })
}

fn event_result(r: &playhead_app::ingest::EventResult) -> pb::EventResult {
    pb::EventResult {
        event_id: r.event_id.clone().unwrap_or_default(),
        status: match r.status {
            EventStatus::Accepted => pb::EventStatus::Accepted,
            EventStatus::Duplicate => pb::EventStatus::Duplicate,
            EventStatus::Held => pb::EventStatus::Held,
            EventStatus::Rejected => pb::EventStatus::Rejected,
            EventStatus::Paused => pb::EventStatus::Paused,
            EventStatus::TooManyStreams => pb::EventStatus::TooManyStreams,
            EventStatus::StreamStopped => pb::EventStatus::StreamStopped,
        } as i32,
        problem: r.problem.as_ref().map(problem),
        active_streams: r.streams.iter().flat_map(|a| &a.streams).map(active_stream).collect(),
        stream_limit: r.streams.as_ref().map_or(0, |a| a.limit),
    }
}

fn active_stream(s: &playhead_core::streams::Stream) -> pb::ActiveStream {
    pb::ActiveStream {
        stream_id: s.id.to_string(),
        profile_id: s.profile.to_string(),
        title_id: s.title.to_string(),
        device_id: s.device_id.clone(),
        started_at: Some(cv::to_proto_time(s.started_at)),
        last_seen_at: Some(cv::to_proto_time(s.last_seen)),
    }
}

fn problem(f: &FieldError) -> pb::FieldProblem {
    pb::FieldProblem { field: f.field.to_string(), code: f.code.to_owned(), message: f.message.clone() }
}

fn rejected(event_id: String, f: &FieldError) -> pb::EventResult {
    pb::EventResult {
        event_id,
        status: pb::EventStatus::Rejected as i32,
        problem: Some(problem(f)),
        active_streams: Vec::new(),
        stream_limit: 0,
    }
}

fn recommendation(r: &Recommended) -> pb::Recommendation {
    pb::Recommendation {
        title_id: r.title.id.to_string(),
        title: Some(cv::title_for(&r.title, r.watch)),
        score: r.score,
        reason: Some(pb::Reason {
            kind: r.reason.kind.clone(),
            text: r.reason.text.clone(),
            title_id: r.reason.title_id.as_ref().map(ToString::to_string),
        }),
    }
}

fn maturity(field: &'static str, v: u32) -> Result<u8, Status> {
    u8::try_from(v).map_err(|_| bad(FieldError::new(field, "out_of_range", "must be 0-21")))
}

// ----- PlaybackService -----

/// `playhead.v1.PlaybackService`.
pub struct Playback(pub GrpcState);

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::StreamEventsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::playback_service_server::PlaybackService for Playback {
    async fn record_events(
        &self,
        req: Request<pb::RecordEventsRequest>,
    ) -> Result<Response<pb::RecordEventsResponse>, Status> {
        let (app, max) = (self.0.app.clone(), self.0.limits.batch_max);
        let trace = req.extensions().get::<std::sync::Arc<crate::gate::Call>>().map(|c| c.trace);
        self.0
            .unary(req, profile_of(|q: &pb::RecordEventsRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                if q.events.is_empty() || q.events.len() > max {
                    return Err(bad(FieldError::new(
                        "events",
                        "out_of_range",
                        format!("must hold 1-{max} events"),
                    )));
                }
                let sent_at =
                    q.sent_at.as_ref().map(|t| cv::timestamp("sent_at", t)).transpose().map_err(bad)?;
                let batch = IngestBatch {
                    sent_at,
                    backfill: q.backfill,
                    events: q.events.into_iter().map(raw_event).collect(),
                    trace,
                };
                let results = app.record_events(&p, profile, batch).await.map_err(status)?;
                let count = |st: EventStatus| {
                    u32::try_from(results.iter().filter(|r| r.status == st).count()).unwrap_or(u32::MAX)
                };
                Ok(pb::RecordEventsResponse {
                    accepted: count(EventStatus::Accepted),
                    duplicate: count(EventStatus::Duplicate),
                    held: count(EventStatus::Held),
                    rejected: count(EventStatus::Rejected),
                    paused: count(EventStatus::Paused),
                    too_many_streams: count(EventStatus::TooManyStreams),
                    stream_stopped: count(EventStatus::StreamStopped),
                    results: results.iter().map(event_result).collect(),
                })
            })
            .await
    }

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        req: Request<Streaming<pb::StreamEventsRequest>>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let call = admitted(&req)?;
        let p = principal(&call)?;
        let state = self.0.clone();
        let window = state.limits.stream_window.max(1);
        let mut inbound = req.into_inner();
        // Read ahead at most `window` events: when the writer falls behind, reading stops and
        // HTTP/2 flow control pushes back on the client.
        let (ahead_tx, mut ahead) = mpsc::channel::<Result<pb::StreamEventsRequest, Status>>(window);
        let (out, rx) = mpsc::channel::<Result<pb::StreamEventsResponse, Status>>(window);
        tokio::spawn(async move {
            loop {
                // Stop reading when the writer is gone (the stream ended with a status): a client
                // that keeps its side open must not keep this task alive.
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = ahead_tx.closed() => break,
                };
                let end = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => break,
                    Err(s) => Err(s),
                };
                if ahead_tx.send(item).await.is_err() || end {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            // Held until the stream ends: the in-flight slot the gate gave this call.
            let call = call;
            let mut buf = Vec::with_capacity(state.limits.batch_max);
            let mut commits = 0u64;
            // Group commit: whatever has arrived (up to one REST batch) is made durable at once.
            while ahead.recv_many(&mut buf, state.limits.batch_max).await > 0 {
                let mut msgs = Vec::with_capacity(buf.len());
                let mut failed = None;
                for m in buf.drain(..) {
                    match m {
                        Ok(m) => msgs.push(m),
                        Err(s) => {
                            failed = Some(s);
                            break;
                        }
                    }
                }
                // The opening of the stream paid one ingest unit; each further commit pays one,
                // as each REST batch does.
                if commits > 0 {
                    match state.app.charge(&partition_of(&p), RouteClass::Ingest, 1).await {
                        Ok((d, _)) if d.allowed => {}
                        Ok((d, quota)) => {
                            let _ = out
                                .send(Err(status(playhead_app::AppError::RateLimited {
                                    class: RouteClass::Ingest,
                                    quota,
                                    retry_after_ms: d.retry_after_ms,
                                })))
                                .await;
                            return;
                        }
                        Err(e) => {
                            let _ = out.send(Err(status(e))).await;
                            return;
                        }
                    }
                }
                commits += 1;
                if let Err(s) = commit(&state, &call, &p, msgs, &out).await {
                    let _ = out.send(Err(s)).await;
                    return;
                }
                if let Some(s) = failed {
                    let _ = out.send(Err(s)).await;
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get_progress(
        &self,
        req: Request<pb::GetProgressRequest>,
    ) -> Result<Response<pb::GetProgressResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::GetProgressRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let title = cv::title_id("title_id", &q.title_id).map_err(bad)?;
                let v = app.get_progress(&p, profile, &title).await.map_err(status)?;
                Ok(pb::GetProgressResponse { progress: Some(cv::progress(&v)) })
            })
            .await
    }

    async fn set_progress(
        &self,
        req: Request<pb::SetProgressRequest>,
    ) -> Result<Response<pb::SetProgressResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::SetProgressRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let title = cv::title_id("title_id", &q.title_id).map_err(bad)?;
                let occurred_at = q
                    .occurred_at
                    .as_ref()
                    .map(|t| cv::timestamp("occurred_at", t))
                    .transpose()
                    .map_err(bad)?;
                let expect = q.expected_version.as_ref().map(expected_version).transpose()?;
                let write = ProgressWrite {
                    position_ms: q.position_ms,
                    duration_ms: q.duration_ms,
                    occurred_at,
                    device_id: q.device_id,
                };
                let v = app.put_progress(&p, profile, &title, write, expect).await.map_err(status)?;
                Ok(pb::SetProgressResponse { progress: Some(cv::progress(&v)) })
            })
            .await
    }

    async fn list_history(
        &self,
        req: Request<pb::ListHistoryRequest>,
    ) -> Result<Response<pb::ListHistoryResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::ListHistoryRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let query = HistoryQuery {
                    cursor: cv::page_token(&q.page_token),
                    limit: cv::page_size(q.page_size).map_err(bad)?,
                    title_id: q
                        .title_id
                        .as_deref()
                        .map(|t| cv::title_id("title_id", t))
                        .transpose()
                        .map_err(bad)?,
                    completed: q.completed,
                };
                let (plays, next) = app.history_stamped(&p, profile, query).await.map_err(status)?;
                Ok(pb::ListHistoryResponse {
                    items: plays.iter().map(|(v, t, w)| cv::play(v, t.as_ref(), *w)).collect(),
                    next_page_token: next.unwrap_or_default(),
                })
            })
            .await
    }

    async fn delete_play(
        &self,
        req: Request<pb::DeletePlayRequest>,
    ) -> Result<Response<pb::DeletePlayResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::DeletePlayRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let play = cv::play_id(&q.play_id).map_err(bad)?;
                app.delete_play(&p, profile, play).await.map_err(status)?;
                Ok(pb::DeletePlayResponse {})
            })
            .await
    }

    async fn get_continue_watching(
        &self,
        req: Request<pb::GetContinueWatchingRequest>,
    ) -> Result<Response<pb::GetContinueWatchingResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::GetContinueWatchingRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let limit = cv::page_size(q.page_size).map_err(bad)?;
                let page = app.continue_watching(&p, profile, limit).await.map_err(status)?;
                Ok(pb::GetContinueWatchingResponse { items: page.iter().map(cv::row_item).collect() })
            })
            .await
    }

    async fn hide_from_continue_watching(
        &self,
        req: Request<pb::HideFromContinueWatchingRequest>,
    ) -> Result<Response<pb::HideFromContinueWatchingResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(
                req,
                profile_of(|q: &pb::HideFromContinueWatchingRequest| &q.profile_id),
                |p, q| async move {
                    let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                    let title = cv::title_id("title_id", &q.title_id).map_err(bad)?;
                    app.hide(&p, profile, &title).await.map_err(status)?;
                    Ok(pb::HideFromContinueWatchingResponse {})
                },
            )
            .await
    }

    async fn get_next_up(
        &self,
        req: Request<pb::GetNextUpRequest>,
    ) -> Result<Response<pb::GetNextUpResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::GetNextUpRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let limit = cv::page_size(q.page_size).map_err(bad)?;
                let page = app.next_up(&p, profile, limit).await.map_err(status)?;
                Ok(pb::GetNextUpResponse { items: page.iter().map(cv::row_item).collect() })
            })
            .await
    }

    async fn import_history(
        &self,
        req: Request<pb::ImportHistoryRequest>,
    ) -> Result<Response<pb::ImportHistoryResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::ImportHistoryRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let mut plays = Vec::with_capacity(q.plays.len());
                for (i, b) in q.plays.into_iter().enumerate() {
                    let at = |field: &'static str, t: Option<&prost_types::Timestamp>| {
                        t.map(|t| cv::timestamp(field, t)).transpose().map_err(|e| {
                            bad(FieldError::new(format!("plays[{i}].{field}"), e.code, e.message))
                        })
                    };
                    plays.push(BackfillPlay {
                        title_id: (!b.title_id.is_empty()).then_some(b.title_id),
                        started_at: at("started_at", b.started_at.as_ref())?,
                        ended_at: at("ended_at", b.ended_at.as_ref())?,
                        watched_ms: b.watched_ms,
                        completed: b.completed,
                    });
                }
                let results = app.backfill(&p, profile, plays).await.map_err(status)?;
                Ok(pb::ImportHistoryResponse { results: results.iter().map(backfill_result).collect() })
            })
            .await
    }
}

fn backfill_result(r: &BackfillResult) -> pb::BackfillResult {
    let (status, play_id, problem) = match r {
        BackfillResult::Created(id) => (pb::BackfillStatus::Created, id.0.to_string(), None),
        BackfillResult::Duplicate(id) => (pb::BackfillStatus::Duplicate, id.0.to_string(), None),
        BackfillResult::Deleted => (pb::BackfillStatus::Deleted, String::new(), None),
        BackfillResult::Rejected(f) => (pb::BackfillStatus::Rejected, String::new(), Some(problem(f))),
    };
    pb::BackfillResult { status: status as i32, play_id, problem }
}

/// A resume point version a client read (empty event id: never played).
fn expected_version(v: &pb::ProgressVersion) -> Result<ExpectedVersion, Status> {
    if v.event_id.is_empty() {
        return Ok(ExpectedVersion::Exactly(None));
    }
    let id = uuid::Uuid::try_parse(&v.event_id)
        .map_err(|_| bad(FieldError::new("expected_version.event_id", "invalid", "must be a UUID")))?;
    let at = v.occurred_at.as_ref().ok_or_else(|| required("expected_version.occurred_at"))?;
    let at = cv::timestamp("expected_version.occurred_at", at).map_err(bad)?;
    Ok(ExpectedVersion::Exactly(Some((at, EventId(id)))))
}

/// Make one group of streamed events durable and answer each, in order. Consecutive events of
/// one profile go to the use case as one batch; a profile the caller cannot reach, or an event
/// that does not parse, is a rejected result (the stream goes on). Failures of ours end the
/// stream with their status: every event answered before it is durable, none after it is
/// recorded, so the client resends from the first unanswered one (event ids make that safe).
async fn commit(
    state: &GrpcState,
    call: &crate::gate::Call,
    p: &playhead_core::auth::Principal,
    msgs: Vec<pb::StreamEventsRequest>,
    out: &mpsc::Sender<Result<pb::StreamEventsResponse, Status>>,
) -> Result<(), Status> {
    let started = std::time::Instant::now();
    let count = msgs.len();
    let mut results: Vec<pb::EventResult> = Vec::with_capacity(msgs.len());
    let mut i = 0;
    while i < msgs.len() {
        let run_end =
            msgs[i..].iter().position(|m| m.profile_id != msgs[i].profile_id).map_or(msgs.len(), |n| i + n);
        let run = &msgs[i..run_end];
        let ids = || run.iter().map(|m| m.event.as_ref().map(|e| e.event_id.clone()).unwrap_or_default());
        match cv::profile_id(&run[0].profile_id) {
            Err(fe) => results.extend(ids().map(|id| rejected(id, &fe))),
            Ok(profile) => {
                let events = run
                    .iter()
                    .map(|m| match &m.event {
                        Some(e) => raw_event(e.clone()),
                        None => Err((None, FieldError::new("event", "required", "is required"))),
                    })
                    .collect();
                let batch = IngestBatch { sent_at: None, backfill: false, events, trace: Some(call.trace) };
                match state.app.record_events(p, profile, batch).await {
                    Ok(rs) => results.extend(rs.iter().map(event_result)),
                    Err(playhead_app::AppError::NotFound(what)) => {
                        let fe = FieldError::new("profile_id", "not_found", format!("{what} not found"));
                        results.extend(ids().map(|id| rejected(id, &fe)));
                    }
                    Err(playhead_app::AppError::Invalid(fields)) => {
                        let fe = fields
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| FieldError::new("event", "invalid", "invalid"));
                        results.extend(ids().map(|id| rejected(id, &fe)));
                    }
                    Err(e) => {
                        send_all(out, results).await;
                        return Err(status(e));
                    }
                }
                if call.admission.audit {
                    state
                        .gate
                        .audit_profile_access(
                            p,
                            Operation::RecordEvents,
                            call.method.path,
                            &run[0].profile_id,
                            0,
                            call.client_addr.clone(),
                        )
                        .await;
                }
            }
        }
        i = run_end;
    }
    let committed_ms = started.elapsed().as_millis();
    send_all(out, results).await;
    tracing::debug!(event.count = count, commit_ms = committed_ms, "stream commit");
    Ok(())
}

async fn send_all(
    out: &mpsc::Sender<Result<pb::StreamEventsResponse, Status>>,
    results: Vec<pb::EventResult>,
) {
    for r in results {
        if out.send(Ok(pb::StreamEventsResponse { result: Some(r) })).await.is_err() {
            // The client went away; what was committed stays committed.
            return;
        }
    }
}

// ----- CatalogService -----

/// `playhead.v1.CatalogService`.
pub struct Catalog(pub GrpcState);

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for Catalog {
    async fn get_title(
        &self,
        req: Request<pb::GetTitleRequest>,
    ) -> Result<Response<pb::GetTitleResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(
                req,
                |_| None,
                |p, q| async move {
                    let id = cv::title_id("title_id", &q.title_id).map_err(bad)?;
                    let t = app.get_title(&p, &id).await.map_err(status)?;
                    Ok(pb::GetTitleResponse { title: Some(cv::title(&t.title)), version: t.version })
                },
            )
            .await
    }

    async fn list_titles(
        &self,
        req: Request<pb::ListTitlesRequest>,
    ) -> Result<Response<pb::ListTitlesResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(
                req,
                |_| None,
                |p, q| async move {
                    let limit = cv::page_size(q.page_size).map_err(bad)?;
                    let token = cv::page_token(&q.page_token);
                    let (titles, next) =
                        app.list_titles(&p, token.as_deref(), limit).await.map_err(|e| match e {
                            // The use case names REST's query parameter.
                            playhead_app::AppError::Invalid(_) => bad(FieldError::new(
                                "page_token",
                                "invalid",
                                "is not a token returned by this query",
                            )),
                            other => status(other),
                        })?;
                    Ok(pb::ListTitlesResponse {
                        items: titles.iter().map(cv::title).collect(),
                        next_page_token: next.unwrap_or_default(),
                    })
                },
            )
            .await
    }

    async fn put_title(
        &self,
        req: Request<pb::PutTitleRequest>,
    ) -> Result<Response<pb::PutTitleResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(
                req,
                |_| None,
                |p, q| async move {
                    let t = q.title.ok_or_else(|| required("title"))?;
                    let id = cv::title_id("title.title_id", &t.title_id).map_err(bad)?;
                    let input = cv::title_input(t).map_err(|e| invalid(&e))?;
                    let if_version = (q.expected_version != 0).then_some(q.expected_version);
                    let (stored, created) =
                        app.put_title(&p, &id, input, if_version).await.map_err(status)?;
                    Ok(pb::PutTitleResponse {
                        title: Some(cv::title(&stored.title)),
                        version: stored.version,
                        created,
                    })
                },
            )
            .await
    }

    async fn import_titles(
        &self,
        req: Request<Streaming<pb::ImportTitlesRequest>>,
    ) -> Result<Response<pb::ImportTitlesResponse>, Status> {
        let call = admitted(&req)?;
        let p = principal(&call)?;
        let mut importer = self.0.app.importer(&p).map_err(status)?;
        let mut inbound = req.into_inner();
        let mut n = 0u64;
        while let Some(msg) = inbound.message().await? {
            for t in msg.titles {
                n += 1;
                importer.push(n, cv::title_input(t)).await.map_err(status)?;
            }
        }
        let s = importer.finish().await.map_err(status)?;
        Ok(Response::new(pb::ImportTitlesResponse {
            received: s.lines,
            created: s.created,
            updated: s.updated,
            unchanged: s.unchanged,
            rejected: s.rejected,
            errors: s
                .errors
                .iter()
                .map(|e| pb::ImportError {
                    index: e.line,
                    problems: e.problems.iter().map(problem).collect(),
                })
                .collect(),
            released_held: s.released_held,
        }))
    }
}

// ----- ProfileService -----

/// `playhead.v1.ProfileService`.
pub struct Profiles(pub GrpcState);

#[tonic::async_trait]
impl pb::profile_service_server::ProfileService for Profiles {
    async fn get_me(&self, req: Request<pb::GetMeRequest>) -> Result<Response<pb::GetMeResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(
                req,
                |_| None,
                |p, _q| async move {
                    let me = app.me(&p).await.map_err(status)?;
                    Ok(pb::GetMeResponse {
                        account_id: me.account.id.to_string(),
                        profiles: me.profiles.iter().map(cv::profile).collect(),
                    })
                },
            )
            .await
    }

    async fn create_profile(
        &self,
        req: Request<pb::CreateProfileRequest>,
    ) -> Result<Response<pb::CreateProfileResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(
                req,
                |_| None,
                |p, q| async move {
                    let account = cv::account_id(&q.account_id).map_err(bad)?;
                    let new = NewProfile {
                        name: q.name,
                        kids: q.kids,
                        maturity_limit: q
                            .maturity_limit
                            .map(|m| maturity("maturity_limit", m))
                            .transpose()?,
                        private: q.private,
                    };
                    let created = app.create_profile(&p, account, new).await.map_err(status)?;
                    Ok(pb::CreateProfileResponse { profile: Some(cv::profile(&created)) })
                },
            )
            .await
    }

    async fn get_profile(
        &self,
        req: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::GetProfileRequest| &q.profile_id), |p, q| async move {
                let id = cv::profile_id(&q.profile_id).map_err(bad)?;
                let profile = app.get_profile(&p, id).await.map_err(status)?;
                Ok(pb::GetProfileResponse { profile: Some(cv::profile(&profile)) })
            })
            .await
    }

    async fn update_profile(
        &self,
        req: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::UpdateProfileRequest| &q.profile_id), |p, q| async move {
                let id = cv::profile_id(&q.profile_id).map_err(bad)?;
                let maturity_limit = match (q.maturity_limit, q.clear_maturity_limit) {
                    (Some(_), true) => {
                        return Err(bad(FieldError::new(
                            "clear_maturity_limit",
                            "conflict",
                            "cannot be set together with maturity_limit",
                        )));
                    }
                    (Some(m), false) => Some(Some(maturity("maturity_limit", m)?)),
                    (None, true) => Some(None),
                    (None, false) => None,
                };
                let patch = ProfilePatch {
                    name: q.name,
                    kids: q.kids,
                    maturity_limit,
                    private: q.private,
                    ..ProfilePatch::default()
                };
                let if_version = (q.expected_version != 0).then_some(q.expected_version);
                let profile = app.patch_profile(&p, id, patch, if_version).await.map_err(status)?;
                Ok(pb::UpdateProfileResponse { profile: Some(cv::profile(&profile)) })
            })
            .await
    }
}

// ----- RecsService -----

/// `playhead.v1.RecsService`.
pub struct Recs(pub GrpcState);

#[tonic::async_trait]
impl pb::recs_service_server::RecsService for Recs {
    async fn get_recommendations(
        &self,
        req: Request<pb::GetRecommendationsRequest>,
    ) -> Result<Response<pb::GetRecommendationsResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::GetRecommendationsRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let row = match pb::RecsRow::try_from(q.row) {
                    Ok(pb::RecsRow::Unspecified | pb::RecsRow::Top) => RecsRow::Top,
                    Ok(pb::RecsRow::BecauseYouWatched) => RecsRow::BecauseYouWatched,
                    Ok(pb::RecsRow::Trending) => RecsRow::Trending,
                    Err(_) => return Err(bad(unknown_enum("row", q.row))),
                };
                let limit = cv::page_size(q.page_size).map_err(bad)?;
                let items = app.recommendations(&p, profile, row, limit).await.map_err(status)?;
                Ok(pb::GetRecommendationsResponse { items: items.iter().map(recommendation).collect() })
            })
            .await
    }

    async fn get_similar(
        &self,
        req: Request<pb::GetSimilarRequest>,
    ) -> Result<Response<pb::GetSimilarResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(
                req,
                |q: &pb::GetSimilarRequest| q.profile_id.clone(),
                |p, q| async move {
                    let title = cv::title_id("title_id", &q.title_id).map_err(bad)?;
                    let limit = cv::page_size(q.page_size).map_err(bad)?;
                    let profile = q.profile_id.as_deref().map(cv::profile_id).transpose().map_err(bad)?;
                    let items = app.similar(&p, &title, profile, limit).await.map_err(status)?;
                    Ok(pb::GetSimilarResponse { items: items.iter().map(recommendation).collect() })
                },
            )
            .await
    }

    async fn send_feedback(
        &self,
        req: Request<pb::SendFeedbackRequest>,
    ) -> Result<Response<pb::SendFeedbackResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::SendFeedbackRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let title = cv::title_id("title_id", &q.title_id).map_err(bad)?;
                let kind = match pb::FeedbackKind::try_from(q.kind) {
                    Ok(pb::FeedbackKind::Up) => FeedbackKind::Up,
                    Ok(pb::FeedbackKind::Down) => FeedbackKind::Down,
                    Ok(pb::FeedbackKind::NotInterested) => FeedbackKind::NotInterested,
                    Ok(pb::FeedbackKind::Unspecified) => return Err(required("kind")),
                    Err(_) => return Err(bad(unknown_enum("kind", q.kind))),
                };
                app.feedback(&p, profile, title, kind).await.map_err(status)?;
                Ok(pb::SendFeedbackResponse {})
            })
            .await
    }

    async fn record_impressions(
        &self,
        req: Request<pb::RecordImpressionsRequest>,
    ) -> Result<Response<pb::RecordImpressionsResponse>, Status> {
        let app = self.0.app.clone();
        self.0
            .unary(req, profile_of(|q: &pb::RecordImpressionsRequest| &q.profile_id), |p, q| async move {
                let profile = cv::profile_id(&q.profile_id).map_err(bad)?;
                let titles = q
                    .title_ids
                    .iter()
                    .map(|t| cv::title_id("title_ids", t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?;
                app.impressions(&p, profile, &titles).await.map_err(status)?;
                Ok(pb::RecordImpressionsResponse {})
            })
            .await
    }
}
