-- taskdb stores timestamps in UTC. An adopted database had CURRENT_TIMESTAMP
-- (the server's zone) on users and no default on tasks (SQLModel filled
-- them in the app). SET DEFAULT only changes the catalog: no row is
-- rewritten. On a database taskdb created the defaults are already these.
--
-- tasks before users: an insert into tasks locks tasks, then (for the
-- foreign key check) users. Locking in that same order means a busy
-- writer and this migration never wait on each other in a cycle.
ALTER TABLE tasks
    ALTER COLUMN created_at SET DEFAULT (now() AT TIME ZONE 'UTC'),
    ALTER COLUMN updated_at SET DEFAULT (now() AT TIME ZONE 'UTC');
ALTER TABLE users
    ALTER COLUMN created_at SET DEFAULT (now() AT TIME ZONE 'UTC'),
    ALTER COLUMN updated_at SET DEFAULT (now() AT TIME ZONE 'UTC');
