-- idx_tasks_user_created (the previous migration) serves every query this
-- index served, and the lists' order too.
DROP INDEX IF EXISTS idx_tasks_user_completed;
