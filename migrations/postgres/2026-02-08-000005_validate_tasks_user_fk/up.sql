-- Checks the rows that existed before the FK was added. Takes SHARE UPDATE
-- EXCLUSIVE, which does not block inserts, updates or deletes. Fails if any
-- task belongs to no user: `taskdb orphans` lists and fixes them.
ALTER TABLE tasks VALIDATE CONSTRAINT fk_tasks_user_id;
