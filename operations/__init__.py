"""hearthdb: pyinfra operations, facts and deploy functions for PostgreSQL + pgvector memory stores."""
