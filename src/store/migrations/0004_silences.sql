-- Silences, as the v2 API describes them: matchers as a JSON array of {name, value, isRegex, isEqual}, times in
-- microseconds since the epoch. Expired silences stay until retention, so the API can still list them.
CREATE TABLE silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT    NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX silences_by_end ON silences (ends_at);
