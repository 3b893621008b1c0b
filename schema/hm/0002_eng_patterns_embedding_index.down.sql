-- hearthdb: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS eng_patterns_embedding_ivfflat;
