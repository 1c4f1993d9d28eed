-- Deliberately a no-op: on a database taskdb created these were the
-- defaults from the start, and the earlier ones of an adopted database are
-- not worth restoring.
SELECT 1;
