CREATE INDEX IF NOT EXISTS idx_tasks_user_completed ON tasks (user_id, completed);
