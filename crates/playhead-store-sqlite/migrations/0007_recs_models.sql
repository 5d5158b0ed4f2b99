-- Trained recommendation models and the training lease (issue #11, decision 0106): replicas
-- load the newest model from here (never an older one), and one replica trains per schedule.
CREATE TABLE recs_models (
    version    TEXT    NOT NULL PRIMARY KEY,
    trained_at INTEGER NOT NULL,
    body       BLOB    NOT NULL
) STRICT;
CREATE INDEX recs_models_newest ON recs_models (trained_at DESC, version DESC);

CREATE TABLE recs_training_lease (
    name   TEXT    NOT NULL PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
) STRICT;
