-- hearthdb: no-transaction
-- hm 0002: cosine ivfflat index on the pattern embeddings, built without blocking writers.
CREATE INDEX CONCURRENTLY IF NOT EXISTS eng_patterns_embedding_ivfflat
    ON eng_patterns USING ivfflat (embedding vector_cosine_ops) WITH (lists = 100);
