-- A database of the app from before taskdb carries idx_tasks_user_id on tasks (user_id);
-- idx_tasks_user_completed (user_id, completed) covers every query it served,
-- and each extra index slows every write to tasks.
DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_user_id;
