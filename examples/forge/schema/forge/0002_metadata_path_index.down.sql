-- hearthdb: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS idx_memory_objects_metadata_path;
