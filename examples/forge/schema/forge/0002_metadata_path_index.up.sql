-- hearthdb: no-transaction
-- forge 0002: the application's search (a tier, a metadata containment such as {"topic": 7}, newest
-- first) through an index of each metadata path with its value. The document's GIN(metadata) indexes
-- keys and values apart, so that containment walks every row that has a "topic" key; it stays for the
-- key-existence operators (?, ?|, ?&) that only it serves. Built without blocking writers.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_memory_objects_metadata_path
    ON memory_objects USING GIN (metadata jsonb_path_ops);
