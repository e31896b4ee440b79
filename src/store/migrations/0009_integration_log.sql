-- The notification log per integration: what each integration config of a receiver was told about each group, so a
-- receiver that gains an integration tells it what it has not had, and a delivery that dies does not count as told.
CREATE TABLE integration_log (
    receiver        TEXT    NOT NULL,
    group_key       TEXT    NOT NULL,
    integration_key TEXT    NOT NULL,  -- webhook/0; '' for an entry of the whole receiver (below)
    firing          TEXT    NOT NULL,  -- what its last notification told
    resolved        TEXT    NOT NULL,
    sent_at         INTEGER NOT NULL,
    delivery_id     INTEGER,           -- the delivery carrying that notification, if one does
    dead            INTEGER NOT NULL DEFAULT 0,  -- that delivery died: the integration was not told
    had_firing      TEXT,              -- what it was told before (what it has while dead); NULL: nothing
    had_resolved    TEXT,
    had_at          INTEGER,
    PRIMARY KEY (receiver, group_key, integration_key)
) WITHOUT ROWID;

-- Entries of whole receivers stay as they were; at start herald copies each to every integration the receiver has
-- then, so an upgrade notifies nothing again.
INSERT INTO integration_log (receiver, group_key, integration_key, firing, resolved, sent_at)
    SELECT receiver, group_key, '', firing, resolved, sent_at FROM notification_log;
DROP TABLE notification_log;
