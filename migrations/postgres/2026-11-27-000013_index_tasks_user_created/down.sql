DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_user_created;
