-- hearthdb: no-transaction
-- pp 0002: HNSW cosine indexes for similarity search, built without blocking writers.
CREATE INDEX CONCURRENTLY IF NOT EXISTS memory_shards_embedding_hnsw
    ON memory_shards USING hnsw (embedding vector_cosine_ops);
CREATE INDEX CONCURRENTLY IF NOT EXISTS raw_conversations_embedding_hnsw
    ON raw_conversations USING hnsw (embedding vector_cosine_ops);
CREATE INDEX CONCURRENTLY IF NOT EXISTS identity_profile_embedding_hnsw
    ON identity_profile USING hnsw (embedding vector_cosine_ops);
