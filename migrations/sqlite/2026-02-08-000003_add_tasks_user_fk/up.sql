-- SQLite cannot add a foreign key to an existing table: rebuild tasks with
-- it (the documented 12-step way, inside this migration's transaction). A
-- task whose user_id matches no user makes the copy fail, so nothing is lost
-- silently: `taskdb orphans` lists and fixes them.
CREATE TABLE tasks_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id VARCHAR(255) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title VARCHAR(255) NOT NULL,
    description TEXT,
    completed BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO tasks_new (id, user_id, title, description, completed, created_at, updated_at)
    SELECT id, user_id, title, description, completed, created_at, updated_at FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;

CREATE INDEX idx_tasks_user_completed ON tasks (user_id, completed);

CREATE TRIGGER tasks_set_updated_at AFTER UPDATE ON tasks
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
