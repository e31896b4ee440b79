-- The outbox: one row per notification and integration config, from queued to delivered or dead.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver        TEXT    NOT NULL,
    integration     TEXT    NOT NULL,  -- the integration's kind: webhook, log, ...
    integration_key TEXT    NOT NULL,  -- which config of the receiver: webhook/0
    destination     TEXT    NOT NULL,  -- rate-limit key, secrets hashed
    group_key       TEXT    NOT NULL,
    status          TEXT    NOT NULL,  -- firing or resolved: the notification's status
    alert_count     INTEGER NOT NULL,
    payload         TEXT    NOT NULL,  -- the notification, JSON
    state           TEXT    NOT NULL,  -- pending, in_flight, delivered, dead
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    queued_at       INTEGER NOT NULL,  -- max_age counts from here; a replay resets it
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT
);
-- Work to resume at start, and listings by state.
CREATE INDEX deliveries_by_state ON deliveries (state, id);
CREATE INDEX deliveries_by_receiver ON deliveries (receiver, state, id);
CREATE INDEX deliveries_by_update ON deliveries (updated_at) WHERE state IN ('delivered', 'dead');

-- The audit trail: every attempt of every delivery.
CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    started_at  INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,  -- delivered, retryable, rate_limited, permanent
    status_code INTEGER,
    error       TEXT,
    response    TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

-- Destinations told to wait (429, Retry-After), so a restart keeps waiting.
CREATE TABLE destination_pauses (
    destination TEXT PRIMARY KEY,
    until       INTEGER NOT NULL
) WITHOUT ROWID;
