DROP VIEW validation_results;
DROP TABLE eng_patterns;
DROP FUNCTION eng_patterns_touch();
