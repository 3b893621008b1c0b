DROP TABLE context_analysis_cache;
DROP TABLE policy_audit_log;
DROP TABLE memory_relationships;
DROP TABLE memory_objects;
