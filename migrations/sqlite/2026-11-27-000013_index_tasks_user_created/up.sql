-- Task lists read one owner's tasks newest first (created_at, id): this
-- index serves both the filter and the order (see the PostgreSQL side).
CREATE INDEX idx_tasks_user_created ON tasks (user_id, created_at, id);
