-- Redundant with users_email_lower_key; reverting does not bring it back.
SELECT 1;
