-- A validated constraint cannot be made NOT VALID again; reverting the
-- previous migration drops it.
SELECT 1;
