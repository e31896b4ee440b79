-- What an integration keeps about a group between sends (a Slack message's channel and ts, a Jira issue key),
-- written with the outcome of the delivery that produced it.
CREATE TABLE integration_state (
    receiver        TEXT    NOT NULL,
    integration_key TEXT    NOT NULL,
    group_key       TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (receiver, integration_key, group_key)
) WITHOUT ROWID;
CREATE INDEX integration_state_by_update ON integration_state (updated_at);
