-- hearthdb: no-transaction
ALTER TABLE memory_objects ALTER COLUMN metadata SET STATISTICS -1;
DROP INDEX CONCURRENTLY IF EXISTS idx_memory_objects_metadata_path;
