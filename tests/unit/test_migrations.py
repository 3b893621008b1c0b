"""Bundles load strictly; the plan applies what is pending, refuses tampered files, and goes down to a target."""

from __future__ import annotations

from pathlib import Path

import pytest

from operations.desired import DatabaseSpec
from operations.errors import ConfigError, PlanError
from operations.migrations import NO_TRANSACTION, load_bundle, parse_targets, plan_migrations
from operations.psql import SqlCommand

SPEC = DatabaseSpec(name="logos_db", owner="logos", encoding="UTF8", locale="C", bundles=("b",))


def bundle(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "b").mkdir()
    for name, text in files.items():
        (tmp_path / "b" / name).write_text(text)
    return tmp_path


@pytest.fixture
def two(tmp_path: Path) -> dict:
    root = bundle(
        tmp_path,
        {
            "0001_a.up.sql": "CREATE TABLE a (v vector(:embedding_dim));\n",
            "0001_a.down.sql": "DROP TABLE a;\n",
            "0002_idx.up.sql": f"{NO_TRANSACTION}\nCREATE INDEX CONCURRENTLY ai ON a (v);\n",
            "0002_idx.down.sql": f"{NO_TRANSACTION}\nDROP INDEX CONCURRENTLY ai;\n",
        },
    )
    return {"b": load_bundle("b", root)}


def ledger_of(bundles: dict, *versions: int) -> list[dict]:
    return [
        {"bundle": "b", "version": m.version, "name": m.name, "sha256": m.sha256}
        for m in bundles["b"]
        if m.version in versions
    ]


def script(stmts) -> str:
    return SqlCommand(5432, stmts).connector_arguments["_stdin"]


def test_shipped_bundles_load() -> None:
    for name in ("hm", "pp"):
        migrations = load_bundle(name)
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


def test_fresh_database_gets_everything_under_the_lock_as_the_owner(two: dict) -> None:
    plan = plan_migrations(SPEC, two, None, {}, {"embedding_dim": "1536"}, "me@here")
    text = script(plan)
    assert text.startswith('\\connect "logos_db"\nSELECT pg_advisory_lock(')
    assert "CREATE TABLE IF NOT EXISTS hearthdb.schema_migrations" in text
    assert "\\set embedding_dim 1536" in text
    # 0001 in a transaction, as the owner, with its ledger row; 0002 outside one.
    first = text.index("CREATE TABLE a")
    assert text.rindex("BEGIN;", 0, first) < text.rindex('SET ROLE "logos";', 0, first)
    assert text.index("INSERT INTO hearthdb.schema_migrations", first) < text.index("COMMIT;", first)
    second = text.index("CREATE INDEX CONCURRENTLY")
    assert "BEGIN;" not in text[text.index("COMMIT;", first) : second]
    # each is re-checked against the ledger after the lock is taken
    assert text.count("AS hearthdb_todo \\gset") == 2
    assert text.rstrip().endswith("SELECT pg_advisory_unlock(448377483892);")
    assert [s.display for s in plan if s.display] == [
        '\\connect "logos_db"',
        "-- apply b 0001_a",
        "-- apply b 0002_idx",
    ]


def test_at_head_nothing(two: dict) -> None:
    assert plan_migrations(SPEC, two, ledger_of(two, 1, 2), {}, {}, "me") == []


def test_tampered_applied_file_stops_the_run(two: dict) -> None:
    ledger = ledger_of(two, 1)
    ledger[0]["sha256"] = "0" * 64
    with pytest.raises(PlanError, match=r"logos_db: schema/b/0001_a.up.sql changed after it was applied"):
        plan_migrations(SPEC, two, ledger, {}, {}, "me")


def test_down_to_a_target_in_reverse_order(two: dict) -> None:
    plan = plan_migrations(SPEC, two, ledger_of(two, 1, 2), {"b": 0}, {}, "me")
    assert [s.display for s in plan if s.display] == [
        '\\connect "logos_db"',
        "-- revert b 0002_idx",
        "-- revert b 0001_a",
    ]
    assert "DELETE FROM hearthdb.schema_migrations" in script(plan)
    with pytest.raises(PlanError, match="has no migration 0003"):
        plan_migrations(SPEC, two, [], {"b": 3}, {}, "me")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.up.sql": "x"}, "the down file is missing"),
        ({"0002_a.up.sql": "x", "0002_a.down.sql": "x"}, "migration 0002 found where 0001 was expected"),
        ({"1_a.up.sql": "x"}, "not NNNN_name.up.sql"),
    ],
)
def test_bad_bundles_refused(tmp_path: Path, files: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_bundle("b", bundle(tmp_path, files))


def test_targets_parse() -> None:
    assert parse_targets("hm:0, pp:2") == {"hm": 0, "pp": 2}
    assert parse_targets(None) == {}
    with pytest.raises(ConfigError, match="not BUNDLE:VERSION"):
        parse_targets("hm=0")


def test_ledger_belongs_to_the_owner_and_is_given_back() -> None:
    """The owner dumps and restores its whole database: the ledger is created as the owner's, and one
    found with another owner (an older hearthdb, or by hand) is given back without touching its rows."""
    two = {"b": []}
    assert plan_migrations(SPEC, two, [], {}, {}, "me", ["logos", "logos"]) == []
    fix = plan_migrations(SPEC, two, [], {}, {}, "me", ["postgres", "logos"])
    assert [s.sql for s in fix] == [
        '\\connect "logos_db"',
        'ALTER SCHEMA "hearthdb" OWNER TO "logos"',
        'ALTER TABLE "hearthdb"."schema_migrations" OWNER TO "logos"',
    ]
    assert plan_migrations(SPEC, two, None, {}, {}, "me", None) == []  # no ledger yet: nothing to give


def test_new_ledger_is_created_as_the_owners(two: dict) -> None:
    plan = plan_migrations(SPEC, two, None, {}, {"embedding_dim": "1536"}, "me@here")
    sqls = [s.sql for s in plan]
    created = next(i for i, q in enumerate(sqls) if "CREATE TABLE IF NOT EXISTS hearthdb.schema_migrations" in q)
    assert sqls[created + 1 : created + 3] == [
        'ALTER SCHEMA "hearthdb" OWNER TO "logos"',
        'ALTER TABLE "hearthdb"."schema_migrations" OWNER TO "logos"',
    ]
