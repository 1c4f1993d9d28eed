-- The case-sensitive UNIQUE (email) constraint of an adopted database:
-- users_email_lower_key is stricter and already in place. Dropping a
-- constraint is a catalog change (brief lock, bounded by the lock timeout).
-- No-op on a database taskdb created.
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key;
