-- The JetStream relay (scale-out with nats_url). The outbox row stays the unit of delivery: it is
-- still deleted only by the transaction that applies its event (claim), never when the broker
-- acknowledges a publish. These columns only say what the relay has done with it.
--
-- published_at: when the relay handed the row to JetStream (milliseconds since the epoch); NULL
--   means "publish me". The relay sets it before publishing and clears it again if the publish
--   fails; the sweeper clears it on rows still unapplied after its horizon, so a broker that lost
--   the message (NATS 2.9 fsyncs periodically) gets it again.
-- dead_at: when the row's message went to the dead-letter stream. The sweeper skips such rows
--   (republishing a poison message forever helps nobody); `playhead admin dlq replay` revives them.
ALTER TABLE event_queue ADD COLUMN published_at bigint;
ALTER TABLE event_queue ADD COLUMN dead_at bigint;

-- The relay's scan: rows to publish, oldest first.
CREATE INDEX event_queue_unpublished ON event_queue (seq) WHERE published_at IS NULL AND dead_at IS NULL;
-- The sweeper's scan: published rows by age.
CREATE INDEX event_queue_published ON event_queue (published_at) WHERE published_at IS NOT NULL AND dead_at IS NULL;
