-- The W3C trace context (`traceparent`) of the request that queued each event (issue #15,
-- decision 0075): the consumer's apply step continues that trace. NULL for events queued by a
-- release of held events or a replay, which belong to no request.
ALTER TABLE event_queue ADD COLUMN traceparent TEXT;
