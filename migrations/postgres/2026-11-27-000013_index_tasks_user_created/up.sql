-- Task lists read one owner's tasks newest first (created_at, id): this
-- index serves both the filter and the order, so a page is an index scan
-- that stops at its LIMIT instead of sorting all of the owner's tasks. It
-- is also led by user_id, as the cascade from users and the orphan check
-- need. CONCURRENTLY builds it without blocking writes to tasks; it cannot
-- run in a transaction, so this file holds this one statement
-- (metadata.toml). A build that fails or is cut off leaves an INVALID
-- index: the next `taskdb migrate` drops and rebuilds it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_user_created ON tasks (user_id, created_at, id);
