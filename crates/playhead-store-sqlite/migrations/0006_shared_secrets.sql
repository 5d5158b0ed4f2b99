-- Secrets every process of a deployment must share (issue #5): the pagination cursor key, which
-- was a file in each data dir. Stored once by the first process; replicas read it.
CREATE TABLE shared_secrets (
    name   TEXT NOT NULL PRIMARY KEY,
    value  BLOB NOT NULL CHECK (length(value) = 32)
) STRICT;
