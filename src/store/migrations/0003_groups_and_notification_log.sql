-- Aggregation groups' timers, so a restart keeps group_wait and group_interval where they were. Members are not
-- stored: they are the stored alerts that route to the group.
CREATE TABLE groups (
    id         TEXT PRIMARY KEY,
    group_key  TEXT    NOT NULL,
    route_id   TEXT    NOT NULL,
    receiver   TEXT    NOT NULL,
    labels     TEXT    NOT NULL,
    next_flush INTEGER NOT NULL,
    flushed    INTEGER NOT NULL
) WITHOUT ROWID;

-- What each receiver was last told about each group (the notification log), so nothing is sent twice.
CREATE TABLE notification_log (
    receiver  TEXT    NOT NULL,
    group_key TEXT    NOT NULL,
    firing    TEXT    NOT NULL,
    resolved  TEXT    NOT NULL,
    sent_at   INTEGER NOT NULL,
    PRIMARY KEY (receiver, group_key)
) WITHOUT ROWID;
