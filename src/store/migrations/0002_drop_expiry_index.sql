-- Expiry is found through the writer's in-memory timing cache (rebuilt from this table at start), so the index on
-- (state, ends_at), which every re-send had to rewrite, is no longer needed.
DROP INDEX IF EXISTS alerts_by_state_end;
