"""Schema bundles on a real host: migrated to head with a ledger, round trip down and up, tampered
and failing migrations stopped cleanly, concurrent runs applied once, validation recorded in
eng_patterns, and the guarded nuclear reset."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import api
from operations.desired import DatabaseSpec
from operations.migrations import Migration, load_bundle, plan_migrations
from operations.psql import SqlCommand

from .conftest import Run, psql_json, ssh

DBS = {"hearthminds_db": "hm", "logos_db": "pp", "aletheia_db": "pp"}


@pytest.fixture(scope="module")
def host(lab_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return api.reset(lab_hosts[1]["name"], layer="postgresql")


@pytest.fixture(scope="module")
def run(deploy: Callable[..., Run], host: dict[str, Any], schema_copy: Path) -> Callable[..., Run]:
    def go(*args: str, entry: str = "deploy.py", check: bool = True, env: dict | None = None) -> Run:
        return deploy(
            [host["name"]],
            {},
            *args,
            check=check,
            env={"HEARTHDB_SCHEMA_DIR": str(schema_copy), **(env or {})},
            entry=entry,
        )

    go("-y")
    return go


def ledger(host: str, db: str) -> list[list]:
    return psql_json(
        host,
        "SELECT coalesce(json_agg(json_build_array(bundle, version, sha256) ORDER BY bundle, version), '[]') "
        "FROM hearthdb.schema_migrations",
        database=db,
    )


def schema_dump(host: str, db: str) -> str:
    dump = ssh(host, f"sudo -u postgres pg_dump --schema-only --exclude-schema=hearthdb -d {db}").stdout
    # pg_dump's \restrict lines carry a random key per run
    return "\n".join(ln for ln in dump.splitlines() if not ln.startswith(("\\restrict", "\\unrestrict")))


def test_every_database_at_head_owned_by_its_role(run: Callable[..., Run], host: dict[str, Any]) -> None:
    for db, bundle in DBS.items():
        head = load_bundle(bundle)
        assert ledger(host["name"], db) == [[bundle, m.version, m.sha256] for m in head]
    owners = psql_json(
        host["name"],
        "SELECT json_object_agg(tablename, tableowner) FROM pg_tables WHERE schemaname = 'public'",
        database="logos_db",
    )
    assert set(owners) >= {"memory_shards", "raw_conversations", "bond_history", "bonds", "identity_profile"}
    assert set(owners.values()) == {"logos"}
    first = psql_json(
        host["name"],
        "SELECT json_agg(content) FROM eng_patterns WHERE tags @> ARRAY['testing','validation']",
        database="hearthminds_db",
    )
    assert len(first) == 1 and first[0].startswith("Boolean-based action validation")


def test_validation_recorded_all_true(run: Callable[..., Run], host: dict[str, Any]) -> None:
    out = run("-y").stderr
    run_id = out.split("validation run ", 1)[1].split(":", 1)[0]
    rows = psql_json(
        host["name"],
        f"SELECT json_agg(json_build_array(check_name, passed)) FROM validation_results WHERE run_id = '{run_id}'",
        database="hearthminds_db",
    )
    names = {name for name, _ in rows}
    assert all(passed for _, passed in rows)
    assert {
        "packages",
        "cluster_running",
        "role:logos",
        "database:logos_db",
        "extensions:logos_db",
        "schema:logos_db",
        "settings_live",
        "login:logos@logos_db",
        "refused:logos@aletheia_db",
    } <= names
    tagged = psql_json(
        host["name"],
        f"SELECT to_json(count(*)) FROM eng_patterns WHERE tags @> ARRAY['validation', 'run:{run_id}']",
        database="hearthminds_db",
    )
    assert tagged == len(rows)


def test_round_trip_down_to_zero_and_up_leaves_the_same_schema(run: Callable[..., Run], host: dict[str, Any]) -> None:
    before = {db: schema_dump(host["name"], db) for db in DBS}
    dry = run("--dry", "--data", "migrate_to=hm:0,pp:0").stderr
    assert "-- revert pp 0002_vector_indexes" in dry and "-- revert hm 0001_eng_patterns" in dry
    run("-y", "--data", "migrate_to=hm:0,pp:0")
    for db in DBS:
        assert ledger(host["name"], db) == []
        assert "CREATE TABLE" not in schema_dump(host["name"], db)
    run("-y")
    assert {db: schema_dump(host["name"], db) for db in DBS} == before


def test_status_shows_applied_and_pending(run: Callable[..., Run], host: dict[str, Any]) -> None:
    out = run("-y", entry="status.py").stderr
    assert re.search(r"logos_db\s+pp\s+applied 2/2\s+at target", out)
    assert re.search(r"hearthminds_db\s+hm\s+applied 2/2\s+at target", out)
    behind = run("-y", "--data", "migrate_to=pp:1", entry="status.py").stderr
    assert re.search(r"logos_db\s+pp\s+applied 2/2\s+behind; to revert: 0002_vector_indexes", behind)
    assert re.search(r"Grand total\s+1\s+-\s+-\s+1", behind)  # it changed nothing


def test_tampered_applied_file_stops_the_run(run: Callable[..., Run], host: dict[str, Any], schema_copy: Path) -> None:
    path = schema_copy / "pp" / "0001_proto_person.up.sql"
    original = path.read_text()
    before = ledger(host["name"], "logos_db")
    try:
        path.write_text(original + "\n-- an innocent-looking edit\n")
        result = run("-y", check=False)
        assert result.code != 0
        assert "schema/pp/0001_proto_person.up.sql changed after it was applied" in result.stderr
        assert ledger(host["name"], "logos_db") == before
    finally:
        path.write_text(original)


@pytest.fixture
def extra_migration(schema_copy: Path) -> Iterator[Callable[[str, str], None]]:
    added: list[Path] = []

    def add(name: str, up: str) -> None:
        for kind, text in (("up", up), ("down", "SELECT 1;\n")):
            p = schema_copy / "pp" / f"0003_{name}.{kind}.sql"
            p.write_text(text)
            added.append(p)

    yield add
    for p in added:
        p.unlink()


def test_failing_migration_rolls_back(run: Callable[..., Run], host: dict[str, Any], extra_migration: Callable) -> None:
    before = ledger(host["name"], "logos_db")
    extra_migration("broken", "CREATE TABLE half_done (id int);\nSELECT 1 / 0;\n")
    result = run("-y", check=False)
    assert result.code != 0
    assert "division by zero" in result.stderr
    assert ledger(host["name"], "logos_db") == before
    assert psql_json(host["name"], "SELECT to_json(to_regclass('half_done') IS NULL)", database="logos_db") is True


def test_concurrent_migrations_wait_for_the_lock_and_apply_once(host: dict[str, Any], schema_copy: Path) -> None:
    """Two runs of the engine's own script for one database at once (two deploys at once stop at the
    deploy lock first; this is the layer below): one waits for the advisory lock, the migration is
    applied once."""
    name = host["name"]
    slow = Migration(
        "pp",
        3,
        "slow",
        "SELECT pg_sleep(3);\nCREATE TABLE slow_marker (id int);\nINSERT INTO slow_marker VALUES (1);\n",
        "DROP TABLE slow_marker;\n",
    )
    bundles = {"pp": [*load_bundle("pp", schema_copy), slow]}
    spec = DatabaseSpec(name="logos_db", owner="logos", encoding="UTF8", locale="C.UTF-8", bundles=("pp",))
    rows = [{"bundle": b, "version": v, "sha256": sha} for b, v, sha in ledger(name, "logos_db")]
    script = SqlCommand(5432, plan_migrations(spec, bundles, rows, {}, {"embedding_dim": "1536"}, "test"))
    stdin = script.connector_arguments["_stdin"]
    procs = []
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    "ssh",
                    "-F",
                    str(api.ssh_config_path()),
                    name,
                    script.get_raw_value().replace("psql", "sudo -u postgres psql", 1),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        procs[-1].stdin.write(stdin)  # type: ignore[union-attr]
        procs[-1].stdin.close()  # type: ignore[union-attr]
        time.sleep(0.5)
    waited = False
    while any(p.poll() is None for p in procs):
        waiting = psql_json(
            name,
            "SELECT to_json(count(*)) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            database="logos_db",
        )
        waited = waited or waiting > 0
        time.sleep(0.2)
    assert [p.returncode for p in procs] == [0, 0], [p.stderr.read() for p in procs]  # type: ignore[union-attr]
    assert waited, "the second run never waited for the advisory lock"
    assert psql_json(name, "SELECT to_json(count(*)) FROM slow_marker", database="logos_db") == 1
    assert [row[1] for row in ledger(name, "logos_db") if row[0] == "pp"] == [1, 2, 3]
    # take it out again, as the engine would going down to pp:2
    down = plan_migrations(
        spec,
        bundles,
        [{"bundle": b, "version": v, "sha256": sha} for b, v, sha in ledger(name, "logos_db")],
        {"pp": 2},
        {},
        "test",
    )
    ssh(
        name,
        "sudo -u postgres psql -X -q -v ON_ERROR_STOP=1",
        stdin=SqlCommand(5432, down).connector_arguments["_stdin"],
    )
    assert [row[1] for row in ledger(name, "logos_db") if row[0] == "pp"] == [1, 2]


def test_broken_state_is_recorded_false_and_exits_non_zero(run: Callable[..., Run], host: dict[str, Any]) -> None:
    name = host["name"]
    ssh(name, "sudo -u postgres psql -X -q -d aletheia_db -c 'DROP EXTENSION vector CASCADE'")
    result = run("-y", entry="validate.py", check=False)
    assert result.code != 0
    assert "FAIL extensions:aletheia_db" in result.stderr
    run_id = result.stderr.split("validation run ", 1)[1].split(":", 1)[0]
    failed = psql_json(
        name,
        f"SELECT json_agg(check_name) FROM validation_results WHERE run_id = '{run_id}' AND NOT passed",
        database="hearthminds_db",
    )
    assert failed == ["extensions:aletheia_db"]
    run("-y")  # the deploy restores it; its validation passes
    assert run("-y", entry="validate.py").code == 0


def test_a_broken_login_is_reported_and_the_other_logins_still_tried(
    run: Callable[..., Run], host: dict[str, Any]
) -> None:
    name = host["name"]
    # logos's first probe fails; the probes after it are asked again one by one
    ssh(name, "sudo -u postgres psql -X -q -c \"SET log_statement = 'none'; ALTER ROLE logos PASSWORD 'not-declared'\"")
    # and a refusal that no longer holds
    ssh(name, "sudo -u postgres psql -X -q -c 'GRANT CONNECT ON DATABASE aletheia_db TO logos'")
    result = run("-y", entry="validate.py", check=False)
    assert result.code != 0
    assert re.search(r"FAIL login:logos@logos_db: .*password authentication failed", result.stderr)
    run_id = result.stderr.split("validation run ", 1)[1].split(":", 1)[0]
    rows = dict(
        psql_json(
            name,
            "SELECT json_agg(json_build_array(check_name, passed)) FROM validation_results "
            f"WHERE run_id = '{run_id}' AND check_name ~ '^(login|refused):'",
            database="hearthminds_db",
        )
    )
    assert rows == {
        "login:logos@logos_db": False,
        "login:logos@hearthminds_db": False,
        "refused:logos@aletheia_db": False,
        "login:aletheia@aletheia_db": True,
        "login:aletheia@hearthminds_db": True,
        "refused:aletheia@logos_db": True,
    }
    run("-y")  # the deploy puts the declared password and the database's grants back
    assert run("-y", entry="validate.py").code == 0


def test_nuclear_reset_refused_without_confirmation(run: Callable[..., Run], host: dict[str, Any]) -> None:
    for confirm in ([], ["--data", "confirm=hdb9"]):
        result = run("-y", *confirm, entry="reset.py", check=False)
        assert result.code != 0
        assert f"nuclear reset of {host['name']} refused" in result.stderr
    assert ssh(host["name"], "pg_lsclusters -h").stdout.split()[3] == "online"
    assert ssh(host["name"], "ls /var/backups/hearthdb 2>/dev/null | wc -l").stdout.strip() == "0"


def test_nuclear_reset_backs_up_purges_and_deploy_rebuilds(run: Callable[..., Run], host: dict[str, Any]) -> None:
    name = host["name"]
    ssh(name, "sudo -u postgres psql -X -q -d logos_db -c \"INSERT INTO memory_shards (content) VALUES ('keep me')\"")
    run("-y", "--data", f"confirm={name}", entry="reset.py")
    assert ssh(name, "test -e /var/lib/postgresql || test -e /etc/postgresql; echo $?").stdout.strip() == "1"
    assert ssh(name, "dpkg -l 'postgresql*' 2>/dev/null | grep -c '^ii' || true").stdout.strip() == "0"
    backups = ssh(name, "ls /var/backups/hearthdb").stdout.split()
    assert len(backups) == 1
    files = ssh(name, f"cat /var/backups/hearthdb/{backups[0]}/MANIFEST").stdout.split()
    assert {"globals.sql", "hearthminds_db.dump", "logos_db.dump", "aletheia_db.dump"} <= set(files)
    assert ssh(name, f"stat -c %a /var/backups/hearthdb/{backups[0]}").stdout.strip() == "700"
    run("-y")  # rebuilds everything from nothing, validation included
    assert ledger(name, "logos_db")[-1][:2] == ["pp", 2]
    restored = ssh(
        name,
        f"cp /var/backups/hearthdb/{backups[0]}/logos_db.dump /tmp/l.dump && chmod 644 /tmp/l.dump && "
        "sudo -u postgres createdb restored && sudo -u postgres pg_restore -d restored /tmp/l.dump && "
        "sudo -u postgres psql -XAt -d restored -c 'SELECT content FROM memory_shards'",
        check=False,
    )
    assert restored.stdout.strip() == "keep me", restored.stderr
