-- Case-insensitive email uniqueness for a database adopted from the Python
-- runner, whose users table had only a case-sensitive UNIQUE (email). A
-- database taskdb created already has this index (create_users): IF NOT
-- EXISTS makes this a no-op there. Built before the case-sensitive rules
-- are dropped, so emails are never without a unique rule. Fails if two
-- emails differ only in case (`taskdb adopt` lists them beforehand).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_lower_key ON users (lower(email));
