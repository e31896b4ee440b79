-- A delivery's notification is written once and read when it is claimed, while its row changes state several
-- times (queued, claimed, settled): kept apart, those changes rewrite small rows instead of pages full of payload.
CREATE TABLE delivery_payloads (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    payload     TEXT NOT NULL  -- the notification, JSON
);
INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, payload FROM deliveries;
ALTER TABLE deliveries DROP COLUMN payload;

-- Deliveries are listed by receiver rarely (operators), but change state often: filtering the state index by
-- receiver is cheaper overall than keeping a second index in step with every change.
DROP INDEX IF EXISTS deliveries_by_receiver;
