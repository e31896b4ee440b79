-- Alerts keyed by fingerprint (Prometheus's u64 label-set hash, stored as its two's-complement i64).
-- Times are microseconds since the Unix epoch; ends_at NULL means open-ended.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('probe', '');

CREATE TABLE alerts (
    fingerprint       INTEGER PRIMARY KEY,
    labels            TEXT    NOT NULL,
    annotations       TEXT    NOT NULL,
    starts_at         INTEGER NOT NULL,
    ends_at           INTEGER,
    ends_at_defaulted INTEGER NOT NULL DEFAULT 0,
    generator_url     TEXT    NOT NULL,
    source            TEXT    NOT NULL,
    extra             TEXT    NOT NULL DEFAULT '{}',
    -- The status last announced for this alert: 0 firing, 1 resolved.
    state             INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE INDEX alerts_by_state_end ON alerts (state, ends_at);
