-- Keeps users.updated_at current. An adopted database has no trigger (the
-- Python app set the column itself); on a database taskdb created this
-- replaces the trigger with an identical one.
DROP TRIGGER IF EXISTS set_updated_at ON users;
SELECT diesel_manage_updated_at('users');
