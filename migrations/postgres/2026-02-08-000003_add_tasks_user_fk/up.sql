-- Seed migration 002, made online-safe: NOT VALID skips the full-table scan,
-- so the ALTER holds its write-blocking lock only for a catalog update. New
-- and updated rows are checked from now on; old rows are checked by
-- VALIDATE CONSTRAINT in a later migration, under a weaker lock.
ALTER TABLE tasks
    ADD CONSTRAINT fk_tasks_user_id
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
    NOT VALID;
