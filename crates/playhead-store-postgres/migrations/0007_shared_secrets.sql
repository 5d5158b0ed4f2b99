-- Secrets every replica must share (issue #5): the pagination cursor key, which was a file in each
-- replica's data dir (copied by hand). Stored once by the first replica to start; others read it.
CREATE TABLE shared_secrets (
    name   text  NOT NULL,
    value  bytea NOT NULL CHECK (octet_length(value) = 32),
    CONSTRAINT shared_secrets_pkey PRIMARY KEY (name)
);
