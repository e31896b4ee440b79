-- A group's record is no longer rewritten at every flush: it keeps when the group flushes first, or, once it has
-- flushed, when it first did, and the schedule of later flushes (every group_interval from there) is derived from it.
-- A stored next flush of a group that has flushed is a tick of the same schedule, so existing rows keep their meaning.
ALTER TABLE groups RENAME COLUMN next_flush TO first_flush;
