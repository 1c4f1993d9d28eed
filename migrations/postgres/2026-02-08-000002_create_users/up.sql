-- Accounts (seed migration 001). Email uniqueness is case-insensitive and
-- lives in one expression index, which also serves the login lookup
-- `WHERE lower(email) = lower($1)`: no second index on email.
CREATE TABLE users (
    id VARCHAR(255) PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    name VARCHAR(255),
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX idx_users_created_at ON users (created_at);

SELECT diesel_manage_updated_at('users');
