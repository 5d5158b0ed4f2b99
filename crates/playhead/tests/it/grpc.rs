//! The gRPC transport against the real server (same listener as REST): every service through
//! the generated tonic clients, the policy sweep generated from the method table, the error
//! conventions (google.rpc details), idempotency keys, health and reflection.

use std::time::Duration;

use playhead_api_grpc::pb;
use playhead_api_grpc::pb::catalog_service_client::CatalogServiceClient;
use playhead_api_grpc::pb::playback_service_client::PlaybackServiceClient;
use playhead_api_grpc::pb::profile_service_client::ProfileServiceClient;
use playhead_api_grpc::pb::recs_service_client::RecsServiceClient;
use playhead_core::auth::Scope;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::support::*;

async fn channel(t: &TestApp) -> Channel {
    Endpoint::from_shared(t.base.clone()).unwrap().connect().await.unwrap()
}

/// A request carrying a bearer token.
fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
    r
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// Watching `title` for `minutes`, ending `ends_mins_ago` minutes ago: a heartbeat every 30 s.
fn pb_watching(title: &str, minutes: i64, ends_mins_ago: i64) -> Vec<pb::PlaybackEvent> {
    let start = now_ms() - (ends_mins_ago + minutes) * 60_000;
    (0..=minutes * 2)
        .map(|i| pb::PlaybackEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            title_id: title.into(),
            kind: if i == 0 { pb::EventKind::Start } else { pb::EventKind::Heartbeat } as i32,
            position_ms: i * 30_000,
            duration_ms: None,
            occurred_at: Some(ts(start + i * 30_000)),
            device_id: Some("tv".into()),
            session_id: None,
        })
        .collect()
}

fn pb_movie(id: &str, minutes: i64) -> pb::Title {
    pb::Title {
        title_id: id.into(),
        kind: pb::TitleKind::Movie as i32,
        name: format!("Movie {id}"),
        duration_ms: minutes * 60_000,
        genres: vec!["Drama".into()],
        maturity: 12,
        release_year: Some(2020),
        ..Default::default()
    }
}

/// The whole path a player takes, over gRPC only: import, events, rows, resume point, history,
/// delete, hide; on both backends.
async fn grpc_serves_the_player_and_the_catalog() {
    let t = spawn_app().await;
    let ch = channel(&t).await;
    let ops = t.catalog_token().await;
    let v = t.viewer("ann@example.com").await;
    let profile = v.profile.to_string();

    // Catalog: a client-streamed import in two messages, one bad title reported by position.
    let mut catalog = CatalogServiceClient::new(ch.clone());
    let bad = pb::Title { title_id: "broken".into(), ..Default::default() };
    let msgs = vec![
        pb::ImportTitlesRequest { titles: vec![pb_movie("m1", 100), pb_movie("m2", 90)] },
        pb::ImportTitlesRequest { titles: vec![bad] },
    ];
    let mut req = Request::new(tokio_stream::iter(msgs));
    req.metadata_mut().insert("authorization", format!("Bearer {ops}").parse().unwrap());
    let summary = catalog.import_titles(req).await.unwrap().into_inner();
    assert_eq!((summary.received, summary.created, summary.rejected), (3, 2, 1), "{summary:?}");
    assert_eq!(summary.errors[0].index, 3);
    let got =
        catalog.get_title(authed(&v.token, pb::GetTitleRequest { title_id: "m1".into() })).await.unwrap();
    assert_eq!(got.into_inner().title.unwrap().name, "Movie m1");
    let page = catalog
        .list_titles(authed(&v.token, pb::ListTitlesRequest { page_size: 1, page_token: String::new() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.items[0].title_id, "m1");
    let next = catalog
        .list_titles(authed(
            &v.token,
            pb::ListTitlesRequest { page_size: 1, page_token: page.next_page_token },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.items[0].title_id, "m2");

    // Events: 20 minutes of m1, one event with an unknown kind rejected on its own.
    let mut playback = PlaybackServiceClient::new(ch.clone());
    let mut events = pb_watching("m1", 20, 5);
    let mut odd = events[1].clone();
    odd.event_id = uuid::Uuid::new_v4().to_string();
    odd.kind = 42;
    events.push(odd);
    let res = playback
        .record_events(authed(
            &v.token,
            pb::RecordEventsRequest { profile_id: profile.clone(), events, sent_at: None, backfill: false },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((res.accepted, res.rejected), (41, 1), "{res:?}");
    let last = res.results.last().unwrap();
    assert_eq!(last.status, pb::EventStatus::Rejected as i32);
    assert_eq!(last.problem.as_ref().unwrap().field, "kind");
    t.settle().await;

    let cw = playback
        .get_continue_watching(authed(
            &v.token,
            pb::GetContinueWatchingRequest { profile_id: profile.clone(), page_size: 0 },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cw.items.len(), 1);
    assert_eq!(cw.items[0].title_id, "m1");
    assert_eq!(cw.items[0].position_ms, 20 * 60_000);
    // A profile's row carries its watched state (issue 17), as REST's does.
    let t1 = cw.items[0].title.as_ref().unwrap();
    assert_eq!((t1.watched, t1.play_count), (Some(false), Some(1)));

    let p = playback
        .get_progress(authed(
            &v.token,
            pb::GetProgressRequest { profile_id: profile.clone(), title_id: "m1".into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .progress
        .unwrap();
    assert_eq!(p.state, pb::ProgressState::InProgress as i32);
    // A write based on a stale version is refused; on the current one it goes through at once.
    let stale = pb::ProgressVersion { event_id: uuid::Uuid::now_v7().to_string(), occurred_at: Some(ts(0)) };
    let set = |version: Option<pb::ProgressVersion>| pb::SetProgressRequest {
        profile_id: profile.clone(),
        title_id: "m1".into(),
        position_ms: 30 * 60_000,
        duration_ms: None,
        occurred_at: None,
        device_id: Some("phone".into()),
        expected_version: version,
    };
    let e = playback.set_progress(authed(&v.token, set(Some(stale)))).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let moved = playback.set_progress(authed(&v.token, set(p.version))).await.unwrap().into_inner();
    assert_eq!(moved.progress.unwrap().position_ms, 30 * 60_000);

    let h = playback
        .list_history(authed(
            &v.token,
            pb::ListHistoryRequest { profile_id: profile.clone(), page_size: 10, ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.items.len(), 1);
    assert_eq!(h.items[0].title_id, "m1");
    assert_eq!(h.items[0].title.as_ref().unwrap().name, "Movie m1");
    assert!(!h.items[0].manual);
    // Marked watched (REST): history shows the manual play first, the title watched.
    let r = t
        .http
        .put(t.url(&format!("/v1/profiles/{profile}/watched/m1")))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let marked = playback
        .list_history(authed(
            &v.token,
            pb::ListHistoryRequest { profile_id: profile.clone(), page_size: 10, ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marked.items.len(), 2);
    assert!(marked.items[0].manual && !marked.items[1].manual);
    for play in &marked.items {
        let title = play.title.as_ref().unwrap();
        assert_eq!((title.watched, title.play_count), (Some(true), Some(2)), "{play:?}");
    }
    let r = t
        .http
        .delete(t.url(&format!("/v1/profiles/{profile}/watched/m1")))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);

    playback
        .hide_from_continue_watching(authed(
            &v.token,
            pb::HideFromContinueWatchingRequest { profile_id: profile.clone(), title_id: "m1".into() },
        ))
        .await
        .unwrap();
    let cw = playback
        .get_continue_watching(authed(
            &v.token,
            pb::GetContinueWatchingRequest { profile_id: profile.clone(), page_size: 5 },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(cw.items.is_empty(), "hidden: {cw:?}");
    playback
        .delete_play(authed(
            &v.token,
            pb::DeletePlayRequest { profile_id: profile.clone(), play_id: h.items[0].play_id.clone() },
        ))
        .await
        .unwrap();
    let e = playback
        .delete_play(authed(
            &v.token,
            pb::DeletePlayRequest { profile_id: profile.clone(), play_id: h.items[0].play_id.clone() },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Backfill: a play from another tracker, then the same again (a duplicate), and one without
    // its start (rejected on its own).
    let started = ts(now_ms() - 40 * 86_400_000);
    let backfill = || pb::ImportHistoryRequest {
        profile_id: profile.clone(),
        plays: vec![
            pb::BackfilledPlay {
                title_id: "m2".into(),
                started_at: Some(started),
                completed: Some(true),
                ..Default::default()
            },
            pb::BackfilledPlay { title_id: "m2".into(), ..Default::default() },
        ],
    };
    let first = playback.import_history(authed(&v.token, backfill())).await.unwrap().into_inner();
    let again = playback.import_history(authed(&v.token, backfill())).await.unwrap().into_inner();
    let statuses = |r: &pb::ImportHistoryResponse| r.results.iter().map(|r| r.status).collect::<Vec<_>>();
    assert_eq!(
        statuses(&first),
        [pb::BackfillStatus::Created as i32, pb::BackfillStatus::Rejected as i32],
        "{first:?}"
    );
    assert_eq!(statuses(&again)[0], pb::BackfillStatus::Duplicate as i32);
    assert_eq!(again.results[0].play_id, first.results[0].play_id);

    // Profiles.
    let mut profiles = ProfileServiceClient::new(ch.clone());
    let me = profiles.get_me(authed(&v.token, pb::GetMeRequest {})).await.unwrap().into_inner();
    assert_eq!(me.account_id, v.account.to_string());
    assert_eq!(me.profiles[0].profile_id, profile);
    let kid = profiles
        .create_profile(authed(
            &v.token,
            pb::CreateProfileRequest {
                account_id: me.account_id.clone(),
                name: "Kid".into(),
                kids: true,
                maturity_limit: Some(7),
                private: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let e = profiles
        .update_profile(authed(
            &v.token,
            pb::UpdateProfileRequest {
                profile_id: kid.profile_id.clone(),
                name: Some("Kiddo".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "expected_version is required: {e:?}");
    let renamed = profiles
        .update_profile(authed(
            &v.token,
            pb::UpdateProfileRequest {
                profile_id: kid.profile_id.clone(),
                expected_version: kid.version,
                name: Some("Kiddo".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.version), ("Kiddo", kid.version + 1));

    // Recommendations: feedback, then a row (empty without a model, but answered).
    let mut recs = RecsServiceClient::new(ch);
    recs.send_feedback(authed(
        &v.token,
        pb::SendFeedbackRequest {
            profile_id: profile.clone(),
            title_id: "m2".into(),
            kind: pb::FeedbackKind::Up as i32,
        },
    ))
    .await
    .unwrap();
    recs.get_recommendations(authed(
        &v.token,
        pb::GetRecommendationsRequest { profile_id: profile, row: 0, page_size: 5 },
    ))
    .await
    .unwrap();
    // Similar titles for the kids profile (limit 7): a 12 title does not exist for it, with an
    // account token as with its own.
    let similar = |profile_id: Option<String>| pb::GetSimilarRequest {
        title_id: "m2".into(),
        page_size: 5,
        profile_id,
    };
    let e = recs.get_similar(authed(&v.token, similar(Some(kid.profile_id.clone())))).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    recs.get_similar(authed(&v.token, similar(None))).await.unwrap();
    let e = recs.get_similar(authed(&v.token, similar(Some("nope".into())))).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    t.stop().await;
}

/// StreamEvents: one result per event, in order, for events of two profiles and a bad one; the
/// accepted events are durable (applied after the stream, visible in the rows).
async fn stream_events_answers_every_event_in_order() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let other = t.viewer("bob@example.com").await;
    let mut sent = Vec::new();
    for e in pb_watching("m1", 30, 5) {
        sent.push(pb::StreamEventsRequest { profile_id: v.profile.to_string(), event: Some(e) });
    }
    // Bob's profile is not Ann's to write: rejected per event, the stream goes on.
    for e in pb_watching("m2", 2, 5) {
        sent.push(pb::StreamEventsRequest { profile_id: other.profile.to_string(), event: Some(e) });
    }
    for e in pb_watching("m2", 20, 3) {
        sent.push(pb::StreamEventsRequest { profile_id: v.profile.to_string(), event: Some(e) });
    }
    let ids: Vec<String> = sent.iter().map(|m| m.event.as_ref().unwrap().event_id.clone()).collect();
    let mut playback = PlaybackServiceClient::new(channel(&t).await);
    let mut results =
        playback.stream_events(authed(&v.token, tokio_stream::iter(sent))).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(r) = results.message().await.unwrap() {
        got.push(r.result.unwrap());
    }
    assert_eq!(
        got.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>(),
        ids,
        "one result per event, in order"
    );
    let status = |r: &pb::EventResult| pb::EventStatus::try_from(r.status).unwrap();
    assert!(got[..61].iter().all(|r| status(r) == pb::EventStatus::Accepted));
    assert!(
        got[61..66]
            .iter()
            .all(|r| status(r) == pb::EventStatus::Rejected
                && r.problem.as_ref().unwrap().field == "profile_id")
    );
    assert!(got[66..].iter().all(|r| status(r) == pb::EventStatus::Accepted));
    t.settle().await;
    let row = t.get_json(&v.token, &format!("/v1/profiles/{}/continue-watching", v.profile)).await;
    let titles: Vec<&str> =
        row["items"].as_array().unwrap().iter().map(|i| i["title"]["id"].as_str().unwrap()).collect();
    assert_eq!(titles, ["m2", "m1"]);
    t.stop().await;
}

/// Calls `path` with an empty message (valid for every request type): the gate decides before
/// any message is read, so the method's request shape does not matter.
async fn call_raw(ch: &Channel, path: &'static str, token: Option<&str>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.unwrap();
    let mut req = Request::new(());
    if let Some(token) = token {
        req.metadata_mut()
            .insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
    }
    let codec = playhead_api_grpc::codec::ProtoCodec::<(), ()>::default();
    grpc.unary(req, tonic::codegen::http::uri::PathAndQuery::from_static(path), codec)
        .await
        .map(|_| ())
        .map_or_else(|e| e, |()| tonic::Status::ok(""))
}

/// Generated from the method table (the gate's only source) and the policy table: every method
/// whose operation needs a scope a viewer does not hold answers a viewer PERMISSION_DENIED naming
/// the scope; every method that needs a bearer answers UNAUTHENTICATED without one; a method not
/// in the table is UNIMPLEMENTED.
#[tokio::test]
async fn a_viewer_gets_permission_denied_on_every_admin_and_catalog_method() {
    let t = spawn_app().await;
    let ch = channel(&t).await;
    let v = t.viewer("viewer@example.com").await;
    let mut checked = 0;
    for m in playhead_api_grpc::table::METHODS {
        if m.op.needs_bearer() {
            let s = call_raw(&ch, m.path, None).await;
            assert_eq!(s.code(), Code::Unauthenticated, "{}", m.path);
        }
        let Some(scope) = m.op.scope() else { continue };
        if Scope::VIEWER.contains(&scope) {
            continue;
        }
        let s = call_raw(&ch, m.path, Some(&v.token)).await;
        assert_eq!(s.code(), Code::PermissionDenied, "{}: {s:?}", m.path);
        assert!(s.message().contains(scope.as_str()), "{}: names {}: {s:?}", m.path, scope.as_str());
        checked += 1;
    }
    assert!(checked >= 2, "PutTitle and ImportTitles at least; checked {checked}");
    let s = call_raw(&ch, "/playhead.v1.PlaybackService/Nope", Some(&v.token)).await;
    assert_eq!(s.code(), Code::Unimplemented);
    t.stop().await;
}

/// Bad input in gRPC's own convention: malformed protobuf and bad fields are INVALID_ARGUMENT
/// with google.rpc.BadRequest naming the field; an oversize message is refused; a quota is
/// RESOURCE_EXHAUSTED with google.rpc.RetryInfo; nothing is applied.
#[tokio::test]
async fn bad_input_gets_grpc_statuses_with_details() {
    let t = spawn_with(|s| {
        s.rate_limits.read = playhead::config::QuotaSetting { limit: 3, window_secs: 600 };
        s.http.grpc_max_message_bytes = 64 * 1024;
    })
    .await;
    let ch = channel(&t).await;
    let v = t.viewer("ann@example.com").await;
    let mut playback = PlaybackServiceClient::new(ch.clone());

    let e = playback
        .get_progress(authed(
            &v.token,
            pb::GetProgressRequest { profile_id: "nope".into(), title_id: "m1".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let bad = e.get_details_bad_request().expect("BadRequest details");
    assert_eq!(bad.field_violations[0].field, "profile_id");

    let mut recs = RecsServiceClient::new(ch.clone());
    let e = recs
        .send_feedback(authed(
            &v.token,
            pb::SendFeedbackRequest { profile_id: v.profile.to_string(), title_id: "m1".into(), kind: 99 },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "unknown enum value: {e:?}");
    assert_eq!(e.get_details_bad_request().unwrap().field_violations[0].field, "kind");

    // Malformed protobuf: field 1 (a string) with a length running past the end.
    let e =
        raw_bytes(&ch, "/playhead.v1.PlaybackService/RecordEvents", &v.token, vec![0x0a, 0x7f, 0x01]).await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // Oversize: one event with a 100 KiB device id, over the 64 KiB message limit.
    let mut big = pb_watching("m1", 0, 1);
    big[0].device_id = Some("x".repeat(100 * 1024));
    let e = playback
        .record_events(authed(
            &v.token,
            pb::RecordEventsRequest {
                profile_id: v.profile.to_string(),
                events: big,
                sent_at: None,
                backfill: false,
            },
        ))
        .await
        .unwrap_err();
    // tonic's convention for a message over the limit (grpc-core says RESOURCE_EXHAUSTED).
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("65536"), "names the limit: {e:?}");
    assert_eq!(t.app.ports().log.backlog().await.unwrap(), 0, "nothing stored");

    // The read quota (3, two spent above) runs out: RESOURCE_EXHAUSTED with RetryInfo.
    let mut profiles = ProfileServiceClient::new(ch);
    let mut last = None;
    for _ in 0..3 {
        if let Err(e) = profiles.get_me(authed(&v.token, pb::GetMeRequest {})).await {
            last = Some(e);
        }
    }
    let e = last.expect("the quota ran out");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.get_details_retry_info().and_then(|r| r.retry_delay).is_some(), "{e:?}");
    t.stop().await;
}

/// Sends `body` as the request message of `path`, byte for byte.
async fn raw_bytes(ch: &Channel, path: &'static str, token: &str, body: Vec<u8>) -> tonic::Status {
    let framed = {
        let mut f = vec![0u8];
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(&body);
        f
    };
    let mut svc = ch.clone();
    let req = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(framed))))
        .unwrap();
    use tower::{Service, ServiceExt};
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let headers = res.headers().clone();
    let collected = http_body_util::BodyExt::collect(res.into_body()).await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let map = if headers.contains_key("grpc-status") { headers } else { trailers };
    tonic::Status::from_header_map(&map).unwrap()
}

/// `idempotency-key` on a mutating unary call: the retry is answered from the first outcome
/// (marked `idempotent-replayed`), the same key with another request is refused.
#[tokio::test]
async fn idempotency_keys_replay_mutating_calls() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let mut playback = PlaybackServiceClient::new(channel(&t).await);
    let req = |position_ms: i64| {
        let mut r = authed(
            &v.token,
            pb::SetProgressRequest {
                profile_id: v.profile.to_string(),
                title_id: "m1".into(),
                position_ms,
                ..Default::default()
            },
        );
        r.metadata_mut().insert("idempotency-key", "k-1".parse().unwrap());
        r
    };
    let first = playback.set_progress(req(600_000)).await.unwrap();
    assert!(first.metadata().get("idempotent-replayed").is_none());
    let again = playback.set_progress(req(600_000)).await.unwrap();
    assert_eq!(again.metadata().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.get_ref(), first.get_ref());
    let e = playback.set_progress(req(900_000)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_details_bad_request().unwrap().field_violations[0].field, "idempotency-key");
    t.stop().await;
}

/// grpc.health.v1 answers SERVING for the server and each service; reflection lists the
/// playhead.v1 services (what `buf curl` relies on).
#[tokio::test]
async fn health_and_reflection_answer_without_credentials() {
    use tonic_health::pb::health_client::HealthClient;
    let t = spawn_app().await;
    let ch = channel(&t).await;
    let mut health = HealthClient::new(ch.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for service in ["", "playhead.v1.PlaybackService"] {
        loop {
            let r = health
                .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
                .await
                .map(|r| r.into_inner().status);
            if r.as_ref().ok()
                == Some(&(tonic_health::pb::health_check_response::ServingStatus::Serving as i32))
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{service:?} not SERVING: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let s = call_raw(&ch, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None).await;
    assert_ne!(s.code(), Code::Unauthenticated, "reflection is public: {s:?}");
    t.stop().await;
}

/// A service's `profiles:any` use of a profile over gRPC is audited like REST's: who, which
/// method, which profile, the outcome and the client address; without `profiles:any` the
/// profile is not found.
#[tokio::test]
async fn profiles_any_calls_are_audited() {
    use playhead_core::auth::Scopes;
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    let store = t.app.ports().api_keys.clone();
    let (narrow, rec) = playhead_auth::ApiKey::generate(
        "narrow",
        Scopes::parse("history:read").unwrap(),
        t.app.clock().now(),
    );
    store.create_api_key(&rec).await.unwrap();
    let (wide, rec) = playhead_auth::ApiKey::generate(
        "wide",
        Scopes::parse("history:read profiles:any").unwrap(),
        t.app.clock().now(),
    );
    store.create_api_key(&rec).await.unwrap();
    let mut playback = PlaybackServiceClient::new(channel(&t).await);
    let row = || pb::GetNextUpRequest { profile_id: v.profile.to_string(), page_size: 0 };
    let e = playback.get_next_up(authed(narrow.expose(), row())).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    playback.get_next_up(authed(wide.expose(), row())).await.unwrap();
    let audited = async {
        loop {
            let entries = t.identity.store().audit_since(playhead_core::Timestamp(0), 100).await.unwrap();
            if let Some(e) = entries.into_iter().find(|e| e.action == "profiles_any.access") {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let entry = tokio::time::timeout(Duration::from_secs(10), audited).await.expect("audited");
    assert!(entry.actor.starts_with("service:"), "{entry:?}");
    assert!(entry.detail.contains(&v.profile.to_string()), "{entry:?}");
    assert!(entry.detail.contains("/playhead.v1.PlaybackService/GetNextUp"), "{entry:?}");
    assert_eq!(entry.client_addr.as_deref(), Some("127.0.0.1"));
    t.stop().await;
}

on_both_backends!(grpc_serves_the_player_and_the_catalog, stream_events_answers_every_event_in_order);
