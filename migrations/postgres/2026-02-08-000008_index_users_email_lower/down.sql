-- Deliberately a no-op: on a database taskdb created, this index belongs to
-- create_users, and dropping it here would leave emails without their
-- unique rule.
SELECT 1;
