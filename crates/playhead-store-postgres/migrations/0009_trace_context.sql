-- The W3C trace context (`traceparent`) of the request that queued each event (issue #15,
-- decision 0075): the relay puts it in the NATS message headers and the consumer's apply step
-- continues that trace. NULL for events queued by a release of held events or a replay.
ALTER TABLE event_queue ADD COLUMN traceparent text;
