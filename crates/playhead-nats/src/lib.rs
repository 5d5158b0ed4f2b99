//! The JetStream event pipeline of scale-out mode (`nats_url`): PostgreSQL outbox -> relay ->
//! JetStream stream -> durable pull consumers on every replica -> the application's idempotent
//! apply. DESIGN.md, "Delivery, durability, deletion", is the specification; decision 0013 says
//! why it is built this way.
//!
//! The rules a contributor must keep here:
//! - **The outbox is the truth, the stream a delivery channel.** An outbox row is deleted only by
//!   the apply transaction that claims it (never on a publish ack), and the sweeper re-offers rows
//!   still unapplied after `sweep_after_secs`. So a broker that loses its last seconds (NATS 2.9
//!   fsyncs periodically), or its whole store, loses no accepted event.
//! - **Ack after commit.** A message is acknowledged only after the transaction that applied its
//!   event committed; a redelivery is a no-op because the claim by seq finds nothing.
//! - **Transient versus deterministic.** A database that is down NAKs with backoff and pauses the
//!   consumer; only a payload that can never apply goes to the dead-letter stream (then the
//!   message is terminated). When in doubt it is transient: a wrong DLQ parks an event until an
//!   operator replays it, a wrong NAK only costs a retry.
//! - Nothing here decides domain rules: decoding and applying go through `playhead-app`.

mod changes;
mod consumer;
mod dlq;
mod relay;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use playhead_app::App;
use playhead_core::StoreError;
use playhead_core::ports::Outbox;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use changes::{NatsChangeFeed, subject as changes_subject};
pub use dlq::{DeadLetter, ReplayOutcome};

/// The durable consumer every replica binds to (one name: the replicas share its work).
pub const CONSUMER: &str = "apply";

/// Pipeline settings (`[nats]` in the config file; `PLAYHEAD_NATS__STREAM=...`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// The events stream's name; its subject is `<stream>.events`, and the dead-letter stream is
    /// `<stream>_DLQ` on `<stream>.dlq`. Several deployments may share one NATS with distinct names.
    pub stream: String,
    /// The stream's size limit in bytes. Full: new publishes are refused (discard=new), rows stay
    /// in the outbox, and ingestion answers 503 once `limits.max_backlog` is reached.
    pub max_bytes: i64,
    /// The stream's message limit (same behaviour as `max_bytes`).
    pub max_msgs: i64,
    /// How long messages stay in the stream (applied ones too, so the stream can be replayed),
    /// seconds. They count against `max_bytes`/`max_msgs` meanwhile.
    pub max_age_secs: u64,
    /// Rows handed to the broker this long ago and still unapplied are published again, seconds.
    pub sweep_after_secs: u64,
    /// JetStream's duplicate window, seconds; must be longer than `sweep_after_secs`, so a sweep
    /// of a message that is merely slow is dropped by the broker as a duplicate.
    pub duplicate_window_secs: u64,
    /// How long dead letters are kept, seconds.
    pub dlq_max_age_secs: u64,
    /// How long a consumer may hold a message before the broker redelivers it, seconds.
    pub ack_wait_secs: u64,
    /// An event whose apply fails with a non-transient error goes to the dead-letter stream at
    /// this delivery (earlier deliveries are retried, in case the error was transient after all).
    pub poison_after_deliveries: i64,
    /// Rows the relay publishes per round.
    pub relay_batch: usize,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            stream: "PLAYHEAD_EVENTS".into(),
            // nats-server *reserves* a file stream's max_bytes in its JetStream store when the
            // stream is created, so a large default made a second deployment on one NATS fail to
            // start (error 10047, decision 0071). 1 GiB holds an hour of about 600 events/s
            // (messages are ~500 bytes); applied messages stay `max_age`, so size both for the
            // peak rate times `max_age`.
            max_bytes: 1024 * 1024 * 1024,
            max_msgs: 2_000_000,
            max_age_secs: 3_600,
            sweep_after_secs: 60,
            duplicate_window_secs: 180,
            dlq_max_age_secs: 14 * 24 * 3_600,
            ack_wait_secs: 30,
            poison_after_deliveries: 3,
            relay_batch: 500,
        }
    }
}

impl NatsSettings {
    /// Check the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.stream.is_empty()
            && self.stream.len() <= 64
            && self.stream.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err("nats.stream must be 1-64 letters, digits, '_' or '-'".into());
        }
        if self.max_bytes <= 0 || self.max_msgs <= 0 {
            return Err("nats.max_bytes and nats.max_msgs must be positive (the stream is bounded)".into());
        }
        if self.sweep_after_secs == 0 || self.duplicate_window_secs <= self.sweep_after_secs {
            return Err("nats.duplicate_window_secs must be longer than nats.sweep_after_secs (> 0)".into());
        }
        if self.max_age_secs < self.duplicate_window_secs {
            return Err("nats.max_age_secs must be at least nats.duplicate_window_secs".into());
        }
        if self.ack_wait_secs == 0 || self.poison_after_deliveries < 1 || self.relay_batch == 0 {
            return Err(
                "nats.ack_wait_secs, nats.poison_after_deliveries and nats.relay_batch must be positive"
                    .into(),
            );
        }
        Ok(())
    }

    /// The events subject.
    pub fn subject(&self) -> String {
        format!("{}.events", self.stream)
    }

    /// The dead-letter stream's name.
    pub fn dlq_stream(&self) -> String {
        format!("{}_DLQ", self.stream)
    }

    /// The dead-letter subject.
    pub fn dlq_subject(&self) -> String {
        format!("{}.dlq", self.stream)
    }
}

/// What can go wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The URL is malformed.
    #[error("nats_url: {0}")]
    Config(String),
    /// NATS is unreachable or refused a request (transient).
    #[error("nats: {0}")]
    Broker(String),
    /// The outbox store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn broker(e: impl std::fmt::Display) -> NatsError {
    NatsError::Broker(e.to_string())
}

/// A stream creation error, explained in one line when it is JetStream's "insufficient storage"
/// (10047): a file stream reserves its `max_bytes` in the server's store at creation, so the
/// raw error alone sends operators looking at the wrong disk.
fn explain_create(name: &str, max_bytes: i64, e: impl std::fmt::Display) -> NatsError {
    let raw = e.to_string();
    if raw.contains("10047") || raw.contains("insufficient storage") {
        return NatsError::Broker(format!(
            "cannot create JetStream stream {name}: the NATS server cannot reserve nats.max_bytes = {max_bytes} \
             bytes in its JetStream store (file streams reserve their max_bytes at creation); lower nats.max_bytes \
             or give nats-server more JetStream storage (max_file_store, or free disk) ({raw})"
        ));
    }
    NatsError::Broker(raw)
}

/// What the pipeline knows about its own health, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineHealth {
    /// The NATS connection is up.
    pub connected: bool,
    /// Why the relay cannot hand events over (the streams cannot be created, publishes fail),
    /// if it cannot; cleared by the next success.
    pub problem: Option<String>,
}

/// What `playhead doctor` found out about the events stream's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStorage {
    /// The stream exists; its size limit (reserved on the server) is this.
    Exists {
        /// The stream's size limit, bytes.
        max_bytes: i64,
    },
    /// The stream does not exist yet, and a stream of the configured size could be created
    /// (a probe stream was created and deleted again).
    Creatable,
}

/// A connected pipeline: the JetStream context, the outbox, and the application that applies.
#[derive(Clone)]
pub struct Pipeline {
    client: async_nats::Client,
    js: jetstream::Context,
    settings: Arc<NatsSettings>,
    outbox: Arc<dyn Outbox>,
    app: App,
    /// The relay's latest failure, for `/healthz` (see [`PipelineHealth`]).
    problem: Arc<std::sync::Mutex<Option<String>>>,
}

impl Pipeline {
    /// Connect. With `wait = false` (a serving replica) this returns at once even when NATS is
    /// down, and the client keeps connecting in the background: ingestion only needs PostgreSQL,
    /// and the relay catches up when NATS answers. With `wait = true` (admin commands) an
    /// unreachable NATS is an error.
    pub async fn connect(
        url: &str,
        settings: NatsSettings,
        outbox: Arc<dyn Outbox>,
        app: App,
        wait: bool,
    ) -> Result<Self, NatsError> {
        settings.validate().map_err(NatsError::Config)?;
        let mut opts = async_nats::ConnectOptions::new()
            .name("playhead")
            .connection_timeout(Duration::from_secs(5))
            // Reconnect for ever, at most 2 s apart: a NATS restart is routine.
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((100 * 2u64.saturating_pow(attempt.min(5) as u32)).min(2_000))
            });
        if !wait {
            opts = opts.retry_on_initial_connect();
        }
        // The message names the key, never the URL (it may hold credentials).
        let client =
            opts.connect(url).await.map_err(|e| NatsError::Broker(format!("connecting (nats_url): {e}")))?;
        let js = jetstream::new(client.clone());
        Ok(Self { client, js, settings: Arc::new(settings), outbox, app, problem: Arc::default() })
    }

    /// The settings in effect.
    pub fn settings(&self) -> &NatsSettings {
        &self.settings
    }

    /// Create or update both streams. Idempotent; the relay calls it until it succeeds, and again
    /// after any publish failure (a NATS that lost its store has lost the streams too).
    pub async fn ensure_streams(&self) -> Result<(), NatsError> {
        let s = &self.settings;
        let events = stream::Config {
            name: s.stream.clone(),
            subjects: vec![s.subject()],
            storage: stream::StorageType::File,
            // Limits, not work-queue, retention: applied messages stay for `max_age` so the
            // stream can be replayed (which must change nothing).
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            max_bytes: s.max_bytes,
            max_messages: s.max_msgs,
            max_age: Duration::from_secs(s.max_age_secs),
            duplicate_window: Duration::from_secs(s.duplicate_window_secs),
            ..Default::default()
        };
        let dead = stream::Config {
            name: s.dlq_stream(),
            subjects: vec![s.dlq_subject()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            // Old dead letters make room for new ones: losing the oldest poison beats refusing to
            // park a new one (which would leave it redelivered for ever). No size limits but age
            // (-1 is how the server stores "unlimited").
            discard: stream::DiscardPolicy::Old,
            max_bytes: -1,
            max_messages: -1,
            max_age: Duration::from_secs(s.dlq_max_age_secs),
            duplicate_window: Duration::from_secs(s.duplicate_window_secs),
            ..Default::default()
        };
        for wanted in [events, dead] {
            let name = wanted.name.clone();
            match self.js.get_stream(&name).await {
                Ok(mut existing) => {
                    // Bring the limits in line with the config, starting from the server's own
                    // copy: fields left at the client's defaults (max_consumers 0 where the
                    // server stored -1, ...) would otherwise read as changes it refuses.
                    let mut config = existing.info().await.map_err(broker)?.config.clone();
                    // The fields the configuration owns; everything else keeps the server's value.
                    let limits = |c: &stream::Config| {
                        (
                            c.subjects.clone(),
                            c.discard,
                            c.max_bytes,
                            c.max_messages,
                            c.max_age,
                            c.duplicate_window,
                        )
                    };
                    let before = limits(&config);
                    config.subjects = wanted.subjects;
                    config.discard = wanted.discard;
                    config.max_bytes = wanted.max_bytes;
                    config.max_messages = wanted.max_messages;
                    config.max_age = wanted.max_age;
                    config.duplicate_window = wanted.duplicate_window;
                    if before != limits(&config) {
                        tracing::info!(stream = %name, "updating the stream's limits to the configuration");
                        self.js.update_stream(config).await.map_err(broker)?;
                    }
                }
                Err(_) => {
                    let max_bytes = wanted.max_bytes;
                    self.js.create_stream(wanted).await.map_err(|e| explain_create(&name, max_bytes, e))?;
                }
            }
        }
        Ok(())
    }

    /// Start the relay, the sweeper, this replica's consumer and the live change feed (installed
    /// on the application: see `changes`); they stop (the consumer after its
    /// batch in hand) once `shutdown` turns true.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let relay = tokio::spawn(relay::run(self.clone(), shutdown.clone()));
        let sweeper = tokio::spawn(relay::sweeper(self.clone(), shutdown.clone()));
        // Live resume-point changes for subscribers on every replica (GraphQL subscriptions).
        let changes = changes::spawn(self.js.client(), &self.settings.stream, &self.app, shutdown.clone());
        let consumer = tokio::spawn(consumer::run(self.clone(), shutdown));
        tokio::spawn(async move {
            let _ = tokio::join!(relay, sweeper, consumer, changes);
            tracing::info!("event pipeline stopped");
        })
    }

    /// The connection state and the relay's latest failure (`/healthz`).
    pub fn health(&self) -> PipelineHealth {
        PipelineHealth {
            connected: self.client.connection_state() == async_nats::connection::State::Connected,
            problem: self.problem.lock().map(|p| p.clone()).unwrap_or_default(),
        }
    }

    /// Record (or, with `None`, clear) the relay's failure; the first occurrence of a new failure
    /// is logged at error level, repeats at debug (the relay retries every few seconds).
    pub(crate) fn set_problem(&self, problem: Option<String>) {
        let Ok(mut slot) = self.problem.lock() else { return };
        if *slot == problem {
            if let Some(p) = &problem {
                tracing::debug!(error = %p, "event pipeline still failing");
            }
            return;
        }
        match &problem {
            Some(p) => {
                tracing::error!(error = %p, "event pipeline cannot hand events to NATS; they wait in the outbox")
            }
            None if slot.is_some() => tracing::info!("event pipeline recovered"),
            None => {}
        }
        *slot = problem;
    }

    /// Messages the shared durable consumer has not delivered yet (its lag), when NATS answers.
    pub async fn consumer_pending(&self) -> Result<u64, NatsError> {
        Ok(self.consumer_counts().await?.0)
    }

    /// The durable consumer's `(pending, ack_pending)`: not delivered yet, and delivered but not
    /// acknowledged yet.
    pub async fn consumer_counts(&self) -> Result<(u64, u64), NatsError> {
        let stream = self.js.get_stream(&self.settings.stream).await.map_err(broker)?;
        let mut consumer: jetstream::consumer::PullConsumer =
            stream.get_consumer(CONSUMER).await.map_err(broker)?;
        let info = consumer.info().await.map_err(broker)?;
        Ok((info.num_pending, info.num_ack_pending as u64))
    }
}

/// Whether the events stream of `settings` exists on the NATS at `url`, or could be created
/// with the configured limits (`playhead doctor`). When it does not exist, a probe stream of the
/// same size is created and deleted again, so JetStream's storage reservation is tested without
/// creating the real stream. Errors are explained as the relay's are.
pub async fn probe_stream(url: &str, settings: &NatsSettings) -> Result<StreamStorage, NatsError> {
    settings.validate().map_err(NatsError::Config)?;
    let client = async_nats::ConnectOptions::new()
        .name("playhead-doctor")
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| NatsError::Broker(format!("connecting (nats_url): {e}")))?;
    let js = jetstream::new(client);
    if let Ok(mut existing) = js.get_stream(&settings.stream).await {
        let info = existing.info().await.map_err(broker)?;
        return Ok(StreamStorage::Exists { max_bytes: info.config.max_bytes });
    }
    let name = format!("{}_DOCTOR_PROBE", settings.stream);
    let probe = stream::Config {
        name: name.clone(),
        subjects: vec![format!("{}.doctor-probe", settings.stream)],
        storage: stream::StorageType::File,
        max_bytes: settings.max_bytes,
        max_messages: settings.max_msgs,
        max_age: Duration::from_secs(settings.max_age_secs),
        ..Default::default()
    };
    js.create_stream(probe).await.map_err(|e| explain_create(&settings.stream, settings.max_bytes, e))?;
    js.delete_stream(&name).await.map_err(broker)?;
    Ok(StreamStorage::Creatable)
}

/// Wait for `d`, or less if `shutdown` turns true.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}
