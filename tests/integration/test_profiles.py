"""The seed profiles (examples/<name>/hearthdb.yml), each deployed on a fresh lab host exactly as a user
would (`HEARTHDB_CONFIG=examples/<name>/hearthdb.yml`): validation all true, a second run and `--dry`
report no change; then the seed's own SQL runs as the application's role, over TCP with its password."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import api

from .conftest import ROOT, Run, changed_ops, secrets, ssh

HOST = "hdb2"
EXAMPLES = ROOT / "examples"
TIMES: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module")
def host(lab_hosts: list[dict[str, Any]]) -> Iterator[str]:
    yield HOST
    api.reset(HOST, layer=None)  # as the other modules expect their last host: the plain base


def checks(run: Run) -> dict[str, str]:
    return {kind: verdict for verdict, kind in re.findall(r"^\s+(ok|FAIL)\s+(\S+)\s+\d+/\d+$", run.stderr, re.M)}


def deploy_profile(deploy: Callable[..., Run], name: str, config: Path | None = None) -> Run:
    """Fresh host, the profile deployed, a second run and --dry without change."""
    api.reset(HOST, layer="profiles")
    env = {"HEARTHDB_CONFIG": str(config or EXAMPLES / name / "hearthdb.yml")}
    t = time.monotonic()
    first = deploy([HOST], None, "-y", env=env)
    t_first = time.monotonic() - t
    verdicts = checks(first)
    assert verdicts and all(v == "ok" for v in verdicts.values()), first.stderr[-3000:]
    t = time.monotonic()
    again = deploy([HOST], None, "-y", "--json", env=env)
    TIMES[name] = {"deploy_s": round(t_first, 1), "rerun_s": round(time.monotonic() - t, 1)}
    assert changed_ops(again) == [], again.stderr[-3000:]
    dry = deploy([HOST], None, "--dry", "--json", env=env)
    assert changed_ops(dry) == [], dry.stderr[-3000:]
    print(f"profile {name}: {TIMES[name]}")
    return first


def as_role(deploy: Callable[..., Run], role: str, db: str, query: str, check: bool = True) -> Any:
    """The query run by `role` into `db` over TCP (localhost) with its generated password."""
    password = secrets(deploy)[role]
    ssh(HOST, "umask 077; cat > /root/.pgpass", stdin=f"127.0.0.1:5432:*:{role}:{password}\n")
    out = ssh(
        HOST,
        f"psql -X -q -A -t -v ON_ERROR_STOP=1 'host=127.0.0.1 sslmode=require user={role} dbname={db}'",
        stdin=query,
        check=False,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"{role} in {db}: {out.stderr}")
    return out


def test_hearthminds(host: str, deploy: Callable[..., Run]) -> None:
    deploy_profile(deploy, "hearthminds")
    out = as_role(deploy, "logos", "logos_db", "SELECT count(*) FROM memory_shards;").stdout
    assert out.strip() == "0"
    out = as_role(deploy, "hearthminds", "hearthminds_db", "SELECT count(*) > 0 FROM eng_patterns;").stdout
    assert out.strip() == "t"


FORGE_SQL = """
INSERT INTO memory_objects (tier, content, metadata, retention_until)
VALUES ('WORKING', 'first', '{"k": 1}', now() - interval '1 day'), ('SEMANTIC', 'kept', '{}', NULL)
RETURNING id;
INSERT INTO memory_relationships (source_id, target_id, relationship_type)
SELECT a.id, b.id, 'related' FROM memory_objects a, memory_objects b WHERE a.content = 'first' AND b.content = 'kept';
INSERT INTO context_analysis_cache (content_hash, analysis_result, confidence, engine_version, expires_at)
VALUES (repeat('a', 64), '{}', 0.5, 'v1', now() - interval '1 minute');
INSERT INTO policy_audit_log (policy_type, action, rule_id, decision) VALUES ('retention', 'keep', 'r1', '{}');
SELECT count(*) FROM memory_objects WHERE tier = 'WORKING' AND metadata @> '{"k": 1}';
DELETE FROM context_analysis_cache WHERE expires_at < now();
"""


def test_forge(host: str, deploy: Callable[..., Run]) -> None:
    deploy_profile(deploy, "forge")
    out = as_role(deploy, "forge_app", "prompted_forge", FORGE_SQL).stdout.split()
    assert out[-1] == "1"  # the tier + metadata query found the row
    refused = as_role(deploy, "forge_app", "prompted_forge", "DROP TABLE policy_audit_log;", check=False)
    assert refused.returncode != 0 and "must be owner" in refused.stderr
    jobs = ssh(HOST, "sudo -u postgres psql -X -A -t -d prompted_forge -c 'SELECT jobname FROM cron.job ORDER BY 1'")
    assert jobs.stdout.split() == ["forge-cache-cleanup", "forge-memory-retention"]
    # 0002 built the search's path index outside a transaction (CONCURRENTLY): valid, not left half-built;
    # and raised the metadata column's statistics target
    index = (
        "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_memory_objects_metadata_path'::regclass), "
        "(SELECT attstattarget FROM pg_attribute WHERE attrelid = 'memory_objects'::regclass AND attname = 'metadata')"
    )
    valid = ssh(HOST, f'sudo -u postgres psql -X -A -t -d prompted_forge -c "{index}"')
    assert valid.stdout.strip() == "t|1000"


THOUGHTMCP_SQL = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE memories (id TEXT PRIMARY KEY, content TEXT NOT NULL, created_at TIMESTAMP DEFAULT now(),
  user_id TEXT NOT NULL, session_id TEXT, salience REAL, strength REAL, primary_sector TEXT);
CREATE TABLE memory_embeddings (memory_id TEXT REFERENCES memories(id) ON DELETE CASCADE, sector TEXT NOT NULL,
  embedding vector(768), dimension INTEGER DEFAULT 768, model TEXT, PRIMARY KEY (memory_id, sector));
CREATE INDEX idx_embeddings_semantic_vector ON memory_embeddings USING ivfflat (embedding vector_cosine_ops)
  WITH (lists = 10) WHERE sector = 'semantic';
CREATE INDEX idx_embeddings_episodic_vector ON memory_embeddings USING ivfflat (embedding vector_cosine_ops)
  WITH (lists = 10) WHERE sector = 'episodic';
INSERT INTO memories (id, content, user_id) SELECT 'm' || i, 'memory ' || i, 'user123' FROM generate_series(1, 50) i;
INSERT INTO memory_embeddings (memory_id, sector, embedding)
SELECT 'm' || i, 'semantic', (SELECT array_agg(sin(i * j)::real) FROM generate_series(1, 768) j)::vector(768)
FROM generate_series(1, 50) i;
SELECT m.id FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id WHERE e.sector = 'semantic'
ORDER BY e.embedding <=> (SELECT embedding FROM memory_embeddings WHERE memory_id = 'm7') LIMIT 1;
SELECT count(*) > 0 FROM pg_stat_statements;
"""


def test_thoughtmcp(host: str, deploy: Callable[..., Run]) -> None:
    deploy_profile(deploy, "thoughtmcp")
    for db in ("thoughtmcp_dev", "thoughtmcp_test"):
        out = as_role(deploy, "thoughtmcp_dev", db, THOUGHTMCP_SQL).stdout.split()
        assert out[-2:] == ["m7", "t"]
    slow = ssh(HOST, "sudo -u postgres psql -X -A -t -c 'SHOW log_min_duration_statement'").stdout.strip()
    assert slow == "1s"


HEARTWOOD_DDL = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE users (id SERIAL PRIMARY KEY, username TEXT UNIQUE, password_hash TEXT,
  created_at TIMESTAMPTZ DEFAULT now());
CREATE TABLE agents (id TEXT PRIMARY KEY, name TEXT NOT NULL, current_location TEXT);
CREATE TABLE agent_memories (id SERIAL PRIMARY KEY, agent_id TEXT REFERENCES agents(id), memory_type TEXT,
  content TEXT, importance_score INTEGER CHECK (importance_score >= 0 AND importance_score <= 10),
  timestamp TIMESTAMPTZ DEFAULT now(), embedding vector(3));
CREATE INDEX idx_agent_memories_agent_id ON agent_memories(agent_id);
CREATE INDEX ON agent_memories USING ivfflat (embedding vector_cosine_ops) WITH (lists = 1);
"""


def heartwood_config(tmp_path: Path) -> Path:
    """The profile with two logins in its group roles, as an operator would add them."""
    cfg = yaml.safe_load((EXAMPLES / "heartwood" / "hearthdb.yml").read_text())
    cfg["roles"]["hw_writer"] = {"member_of": ["heartwood_app"]}
    cfg["roles"]["hw_reader"] = {"member_of": ["heartwood_readonly"]}
    cfg["databases"]["heartwood_db"]["connect"] = ["hw_writer", "hw_reader"]
    path = tmp_path / "hearthdb.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_heartwood(host: str, deploy: Callable[..., Run], tmp_path: Path) -> None:
    config = heartwood_config(tmp_path)
    deploy_profile(deploy, "heartwood", config)
    # the application's own DDL, after the deploy, as the owner
    as_role(deploy, "heartwood_user", "heartwood_db", HEARTWOOD_DDL)
    write = """INSERT INTO users (username, password_hash) VALUES ('player1', crypt('password123', gen_salt('bf')));
    INSERT INTO agents VALUES ('elara_blacksmith', 'Elara', 'forge');
    INSERT INTO agent_memories (agent_id, memory_type, content, importance_score, embedding)
    VALUES ('elara_blacksmith', 'observation', 'saw a player', 5, '[1,0,0]');
    SELECT content FROM agent_memories WHERE agent_id = 'elara_blacksmith' ORDER BY embedding <-> '[1,0,0]' LIMIT 1;"""
    assert as_role(deploy, "hw_writer", "heartwood_db", write).stdout.split()[-3:] == ["saw", "a", "player"]
    read = "SELECT count(*) FROM users WHERE password_hash = crypt('password123', password_hash);"
    assert as_role(deploy, "hw_reader", "heartwood_db", read).stdout.strip() == "1"
    refused = as_role(deploy, "hw_reader", "heartwood_db", "INSERT INTO agents VALUES ('x', 'x', 'x');", check=False)
    assert refused.returncode != 0 and "permission denied for table agents" in refused.stderr

    # drift: a revoked SELECT, an extra grant to PUBLIC, a job rescheduled and another's removal
    env = {"HEARTHDB_CONFIG": str(config)}
    ssh(
        HOST,
        "sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -d heartwood_db",
        stdin="REVOKE SELECT ON agents FROM heartwood_readonly; GRANT SELECT ON users TO PUBLIC;\n"
        "SELECT cron.alter_job(jobid, schedule := '0 0 * * *') FROM cron.job "
        "WHERE jobname = 'nightly-vacuum-analyze';\n",
    )
    dry = deploy([HOST], None, "--dry", env=env)
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "heartwood_readonly"' in dry.stderr
    assert 'REVOKE SELECT ON ALL TABLES IN SCHEMA "public" FROM PUBLIC' in dry.stderr
    assert "schedule: '0 0 * * *' -> '15 4 * * *'" in dry.stderr
    validation = deploy([HOST], None, "-y", entry="validate.py", env=env, check=False)
    assert checks(validation).get("privileges") == "FAIL" and checks(validation).get("jobs") == "FAIL"
    repaired = deploy([HOST], None, "-y", env=env)
    assert all(v == "ok" for v in checks(repaired).values()), repaired.stderr[-3000:]
    assert changed_ops(deploy([HOST], None, "-y", "--json", env=env)) == []
    assert as_role(deploy, "hw_reader", "heartwood_db", "SELECT count(*) FROM agents;").stdout.strip() == "1"


SINGULARITY_SQL = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE knowledge_artifacts (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), artifact_type TEXT,
  artifact_id TEXT, content_raw TEXT, content JSONB, embedding vector(3));
CREATE TABLE usage_events (at TIMESTAMPTZ NOT NULL, artifact UUID, place geography(Point, 4326));
SELECT create_hypertable('usage_events', 'at');
INSERT INTO usage_events SELECT now() - i * interval '1 hour', gen_random_uuid(),
  ST_SetSRID(ST_MakePoint(13.4 + i * 0.01, 52.5), 4326)::geography FROM generate_series(1, 48) i;
SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'usage_events';
SELECT count(*) FROM usage_events
WHERE ST_DWithin(place, ST_SetSRID(ST_MakePoint(13.4, 52.5), 4326)::geography, 2000);
"""


def test_singularity(host: str, deploy: Callable[..., Run]) -> None:
    deploy_profile(deploy, "singularity")
    out = as_role(deploy, "mhugo", "singularity", SINGULARITY_SQL).stdout.split()
    assert int(out[-2]) >= 1  # chunks of the hypertable
    assert int(out[-1]) == 2  # points within 2 km: 0.01 degree of longitude is about 680 m here
