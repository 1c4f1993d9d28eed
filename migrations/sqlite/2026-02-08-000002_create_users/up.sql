-- Accounts. Email uniqueness is case-insensitive and lives in one expression
-- index, which also serves the login lookup `WHERE lower(email) = lower(?)`.
-- CURRENT_TIMESTAMP is UTC in SQLite.
CREATE TABLE users (
    id VARCHAR(255) PRIMARY KEY NOT NULL,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    name VARCHAR(255),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX idx_users_created_at ON users (created_at);

-- Keeps updated_at current unless the UPDATE set it itself (the rule of
-- diesel_set_updated_at on PostgreSQL).
CREATE TRIGGER users_set_updated_at AFTER UPDATE ON users
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE users SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
