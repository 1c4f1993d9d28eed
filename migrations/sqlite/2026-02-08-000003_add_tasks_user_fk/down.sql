-- Back to the tasks table without the foreign key, every row kept.
CREATE TABLE tasks_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id VARCHAR(255) NOT NULL,
    title VARCHAR(255) NOT NULL,
    description TEXT,
    completed BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO tasks_old (id, user_id, title, description, completed, created_at, updated_at)
    SELECT id, user_id, title, description, completed, created_at, updated_at FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_old RENAME TO tasks;
