-- hearthdb: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS identity_profile_embedding_hnsw;
DROP INDEX CONCURRENTLY IF EXISTS raw_conversations_embedding_hnsw;
DROP INDEX CONCURRENTLY IF EXISTS memory_shards_embedding_hnsw;
