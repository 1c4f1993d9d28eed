-- Deliberately a no-op: on a database taskdb created, the trigger belongs
-- to create_users.
SELECT 1;
