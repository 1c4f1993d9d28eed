-- idx_tasks_user_created (the previous migration) serves every query the
-- (user_id, completed) index served, and the lists' order too: one index
-- less to update on every write. Dropped CONCURRENTLY (no write lock); it
-- cannot run in a transaction, so this file holds this one statement.
DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_user_completed;
