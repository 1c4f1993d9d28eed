-- The tasks table as the app had it before user accounts. IF NOT EXISTS
-- adopts an existing table, and every row in it, unchanged.
CREATE TABLE IF NOT EXISTS tasks (
    id SERIAL PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    title VARCHAR(255) NOT NULL,
    description TEXT,
    completed BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

DROP TRIGGER IF EXISTS set_updated_at ON tasks;
SELECT diesel_manage_updated_at('tasks');
