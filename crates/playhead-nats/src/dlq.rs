//! The dead-letter stream, for operators: list what is parked there and replay it.
//!
//! Replaying a dead letter prefers the outbox: when its outbox row still exists (the event was
//! never applied), the row is queued again under a new seq and the relay publishes a fresh copy
//! encoded from PostgreSQL, the source of truth. Without a row (a message from elsewhere, or an
//! event applied since), the stored payload is republished if this build can decode it. A dead
//! letter that can be neither is kept and reported, never dropped.

use serde::Serialize;

use crate::{NatsError, Pipeline, broker, wire};

/// One parked message.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream: the id `dlq replay` takes.
    pub id: u64,
    /// Why it was parked.
    pub reason: String,
    /// The event, when the message named it.
    pub event_id: Option<String>,
    /// Its outbox row, when the message named it.
    pub outbox_seq: Option<i64>,
    /// Its sequence in the events stream.
    pub stream_seq: Option<u64>,
    /// When it was parked (RFC 3339).
    pub dead_lettered_at: String,
    /// The payload as text (lossy, at most 512 characters), for diagnosis.
    pub payload: String,
}

/// What a replay did with one dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayOutcome {
    /// The dead letter's id.
    pub id: u64,
    /// `requeued` (from the outbox), `republished` (its payload), or `kept`.
    pub outcome: &'static str,
    /// For `kept`: why it cannot be replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Pipeline {
    /// Messages in the dead-letter stream.
    pub async fn dlq_size(&self) -> Result<u64, NatsError> {
        let mut s = self.js.get_stream(self.settings.dlq_stream()).await.map_err(broker)?;
        Ok(s.info().await.map_err(broker)?.state.messages)
    }

    /// Every dead letter, oldest first.
    pub async fn dlq_list(&self) -> Result<Vec<DeadLetter>, NatsError> {
        let mut stream = self.js.get_stream(self.settings.dlq_stream()).await.map_err(broker)?;
        let state = stream.info().await.map_err(broker)?.state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            // Gaps are replayed (deleted) letters.
            let Ok(m) = stream.get_raw_message(seq).await else { continue };
            let h = Some(&m.headers);
            let text = String::from_utf8_lossy(&m.payload);
            out.push(DeadLetter {
                id: m.sequence,
                reason: wire::header(h, wire::REASON).unwrap_or_default(),
                event_id: wire::header(h, wire::EVENT_ID),
                outbox_seq: wire::seq_of(h),
                stream_seq: wire::header(h, wire::ORIGINAL).and_then(|s| s.parse().ok()),
                dead_lettered_at: m
                    .time
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                payload: text.chars().take(512).collect(),
            });
        }
        Ok(out)
    }

    /// Replay one dead letter (`Some(id)`) or all of them (`None`).
    pub async fn dlq_replay(&self, id: Option<u64>) -> Result<Vec<ReplayOutcome>, NatsError> {
        let letters = self.dlq_list().await?;
        if let Some(id) = id
            && !letters.iter().any(|l| l.id == id)
        {
            return Err(NatsError::Broker(format!("no dead letter {id} (see `playhead admin dlq list`)")));
        }
        let stream = self.js.get_stream(self.settings.dlq_stream()).await.map_err(broker)?;
        let mut out = Vec::new();
        for l in letters.into_iter().filter(|l| id.is_none_or(|id| id == l.id)) {
            let outcome = self.replay_one(&stream, &l).await?;
            out.push(outcome);
        }
        Ok(out)
    }

    async fn replay_one(
        &self,
        stream: &async_nats::jetstream::stream::Stream,
        l: &DeadLetter,
    ) -> Result<ReplayOutcome, NatsError> {
        let done = |outcome| ReplayOutcome { id: l.id, outcome, reason: None };
        if let Some(seq) = l.outbox_seq
            && self.outbox.revive(seq).await?.is_some()
        {
            stream.delete_message(l.id).await.map_err(broker)?;
            self.app.appended().notify_one();
            return Ok(done("requeued"));
        }
        // No outbox row: the stored payload is all there is.
        let m = stream.get_raw_message(l.id).await.map_err(broker)?;
        if let Err(reason) = wire::decode(None, &m.payload) {
            return Ok(ReplayOutcome { id: l.id, outcome: "kept", reason: Some(reason) });
        }
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("replay:{}:{}", self.settings.stream, l.id).as_str(),
        );
        for name in [wire::SEQ, wire::EVENT_ID] {
            if let Some(v) = m.headers.get(name) {
                h.insert(name, v.as_str());
            }
        }
        self.js
            .publish_with_headers(self.settings.subject(), h, m.payload.clone())
            .await
            .map_err(broker)?
            .await
            .map_err(broker)?;
        stream.delete_message(l.id).await.map_err(broker)?;
        Ok(done("republished"))
    }
}
