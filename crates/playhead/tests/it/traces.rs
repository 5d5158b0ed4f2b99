//! A request's trace survives the queue (issue #15, decision 0075), in both modes: a real
//! `playhead serve` exports over OTLP/gRPC to a collector in this test (the OpenTelemetry
//! protocol's own generated service), and the caller's trace shows request -> apply (embedded)
//! or request -> relay (PostgreSQL outbox + NATS), each span the child of the one before; in both
//! modes the apply step's log lines for the events carry the caller's `trace_id`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};

use crate::scale_out::{redis_url, run};
use crate::support::*;

/// The collector: keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            for ss in rs.scope_spans {
                kept.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start() -> (Self, u16) {
        let c = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Exporters compress (ours sends gzip, as most do): accept it, as collectors do.
        let service =
            TraceServiceServer::new(c.clone()).accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let app = tonic::service::Routes::new(service).into_axum_router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (c, port)
    }

    fn spans_of(&self, trace_id: &str) -> Vec<Span> {
        let want = hex::decode(trace_id).unwrap();
        self.0.lock().unwrap().iter().filter(|s| s.trace_id == want).cloned().collect()
    }
}

/// A server child killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `playhead serve` with JSON logs at debug for the apply step written to `log`.
fn serve(data: &Path, config: &Path, port: u16, log: &Path) -> Serve {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_playhead"))
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "off"])
        .env("RUST_LOG", "warn,playhead_app::apply=debug")
        .env_remove("PLAYHEAD_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains(&port.to_string()), "server did not start: {line:?}");
    Serve(child)
}

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// Send events with the caller's `traceparent`, then wait for the trace to reach the collector
/// and the log; returns the trace's spans by name.
async fn follow_one_request(
    base: &str,
    config: &Path,
    dir: &Path,
    collector: &Collector,
    log: &Path,
    last_span: &str,
) -> Vec<Span> {
    let account =
        run(dir, config, &["admin", "create-account", "--email", "trace@example.com"])["account_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let profile =
        run(dir, config, &["admin", "create-profile", "--account", &account, "--name", "P"])["profile_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let token = run(dir, config, &["admin", "token", "--account", &account, "--admin"])["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let r = http.put(format!("{base}/v1/titles/tr-1")).bearer_auth(&token).json(&movie("tr-1", 100)).send();
    assert!(r.await.unwrap().status().is_success());

    let r = http
        .post(format!("{base}/v1/profiles/{profile}/events"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"events": watching("tr-1", 0, 2, 30)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let ids: Vec<String> = r.json::<Value>().await.unwrap()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!ids.is_empty());

    // The batch processor exports every few seconds; the apply happens once the event is relayed.
    let t0 = Instant::now();
    loop {
        let spans = collector.spans_of(CALLER_TRACE);
        let logged = std::fs::read_to_string(log).unwrap_or_default();
        let applied_lines: Vec<Value> = logged
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "applied event")
            .collect();
        let every_event_logged = ids.iter().all(|id| {
            applied_lines.iter().any(|l| l["event.id"] == id.as_str() && l["trace_id"] == CALLER_TRACE)
        });
        if spans.iter().any(|s| s.name == last_span) && every_event_logged {
            return spans;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the trace did not come through the queue within 60 s; spans of the trace: {:?}; every span: {:?}; \
             applied log lines: {applied_lines:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>(),
            collector
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|s| (s.name.clone(), hex::encode(&s.trace_id), hex::encode(&s.parent_span_id)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!("no {name} span in {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
    })
}

#[tokio::test]
async fn the_trace_survives_the_embedded_queue() {
    let (collector, cport) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("playhead.toml");
    std::fs::write(
        &config,
        format!("issuer = \"{base}\"\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{cport}\"\n"),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let _serve = serve(dir.path(), &config, port, &log);
    let spans = follow_one_request(&base, &config, dir.path(), &collector, &log, "apply").await;

    let http = named(&spans, "http");
    assert_eq!(hex::encode(&http.parent_span_id), CALLER_SPAN, "the request joins the caller's trace");
    let apply = named(&spans, "apply");
    assert_eq!(apply.parent_span_id, http.span_id, "apply continues the request's span");
}

#[tokio::test]
async fn the_trace_survives_the_outbox_and_nats() {
    if !pg::reachable().await {
        return;
    }
    let Some(redis) = redis_url() else { return };
    let Some(nats) = crate::nats::shared_nats() else { return };
    let stream = format!("T{}", uuid::Uuid::new_v4().simple());
    let _streams = Streams::new(&nats, &stream);
    let schema = pg::Schema::create().await;
    let (collector, cport) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("scale-out.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\ndatabase_schema = \"{}\"\ndatabase_max_connections = 4\n\
             redis_url = \"{redis}\"\nredis_key_prefix = \"test:{}:\"\nissuer = \"{base}\"\n\
             nats_url = \"{nats}\"\n[nats]\nstream = \"{stream}\"\nmax_bytes = 67108864\nmax_age_secs = 600\n\
             [telemetry]\notlp_endpoint = \"http://127.0.0.1:{cport}\"\n",
            pg::url(),
            schema.name,
            uuid::Uuid::new_v4().simple()
        ),
    )
    .unwrap();
    run(dir.path(), &config, &["migrate"]);
    let log = dir.path().join("serve.log");
    let data = tempfile::tempdir().unwrap();
    let _serve = serve(data.path(), &config, port, &log);
    // The apply step's log lines carry the caller's trace id, which reached the consumer only
    // through the outbox row and the NATS message headers (follow_one_request waits for them).
    // Its exported `apply` span is not asserted here: in this mode it is not exported yet
    // (decision 0075, "Known gap").
    let spans = follow_one_request(&base, &config, dir.path(), &collector, &log, "relay").await;

    let http = named(&spans, "http");
    assert_eq!(hex::encode(&http.parent_span_id), CALLER_SPAN, "the request joins the caller's trace");
    let relay = named(&spans, "relay");
    assert_eq!(relay.parent_span_id, http.span_id, "the relay continues the request's span (outbox row)");
}
