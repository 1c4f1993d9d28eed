-- The index was redundant; reverting does not bring it back.
SELECT 1;
