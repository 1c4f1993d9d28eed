-- The Python runner's idx_users_email duplicated the UNIQUE constraint on
-- users (email); users_email_lower_key now enforces the rule ignoring case
-- and serves the login lookup. No-op on a database taskdb created.
DROP INDEX CONCURRENTLY IF EXISTS idx_users_email;
