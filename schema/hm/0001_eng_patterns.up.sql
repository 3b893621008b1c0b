-- hm 0001: the shared engineering-pattern store (a superset of the original HearthMinds table).
-- Runs as the shared database's owner; :embedding_dim comes from schema.embedding_dim.
CREATE TABLE eng_patterns (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content         text NOT NULL,
    tags            text[] NOT NULL DEFAULT '{}',
    strategy_type   text,
    target_contexts text[],
    author          text,
    embedding       vector(:embedding_dim),
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_updated    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX eng_patterns_tags_gin ON eng_patterns USING gin (tags);
CREATE INDEX eng_patterns_created_at ON eng_patterns (created_at);
CREATE INDEX eng_patterns_strategy_type ON eng_patterns (strategy_type);

CREATE FUNCTION eng_patterns_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_updated := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER eng_patterns_touch BEFORE UPDATE ON eng_patterns
    FOR EACH ROW EXECUTE FUNCTION eng_patterns_touch();

-- The seed's patterns; the boolean-validation pattern first.
INSERT INTO eng_patterns (content, tags, strategy_type, target_contexts, author, created_at) VALUES
('Boolean-based action validation: every setup action returns a boolean that says whether it reached '
 'its goal; the results are recorded at run time in eng_patterns (tag validation) and the run fails '
 'when any is false.',
 ARRAY['testing', 'validation', 'boolean'], 'testing', ARRAY['deploy', 'setup'], 'hearthminds',
 now() - interval '3 seconds'),
('Separate databases per AI with shared infrastructure in the HearthMinds database: each AI owns its own '
 'database; every AI may connect to the shared one; nobody else may connect to an AI''s.',
 ARRAY['architecture', 'isolation', 'proto-person'], 'architecture', ARRAY['database'], 'hearthminds',
 now() - interval '2 seconds'),
('Vector-enabled schemas: pgvector is created by the superuser in every database, so applications '
 'running CREATE EXTENSION IF NOT EXISTS vector as their own role pass.',
 ARRAY['database', 'pgvector', 'extensions'], 'database', ARRAY['database'], 'hearthminds',
 now() - interval '1 second'),
('Clear schema separation: the hm bundle for shared infrastructure, the pp bundle for each proto-person; '
 'versioned migrations with checksums, applied under an advisory lock.',
 ARRAY['database', 'schema', 'migrations'], 'database', ARRAY['database'], 'hearthminds', now()),
('Nuclear reset only with a confirmation naming the host and after a full logical backup.',
 ARRAY['operations', 'safety', 'backup'], 'operations', ARRAY['deploy'], 'hearthminds', now());

-- Validation results are eng_patterns rows (strategy_type 'validation_result', tags validation + result);
-- this view gives them columns.
CREATE VIEW validation_results AS
SELECT id,
       metadata ->> 'check'                 AS check_name,
       metadata ->> 'host'                  AS host,
       metadata ->> 'run_id'                AS run_id,
       (metadata ->> 'passed')::boolean     AS passed,
       metadata ->> 'detail'                AS detail,
       created_at                           AS checked_at,
       tags
FROM eng_patterns
WHERE strategy_type = 'validation_result';
