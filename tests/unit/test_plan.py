"""The pure planners: the statements are exactly the difference between desired and actual."""

from __future__ import annotations

import pytest

from operations.config import Extension, parse_config
from operations.desired import DatabaseSpec, RoleSpec, desired_databases, desired_roles
from operations.errors import PlanError
from operations.plan import plan_databases, plan_extensions, plan_roles


def sqls(stmts) -> list[str]:
    return [s.sql for s in stmts]


def test_desired_state_from_defaults() -> None:
    cfg = parse_config({})
    assert list(desired_roles(cfg)) == ["hearthminds", "logos", "aletheia"]
    dbs = desired_databases(cfg)
    assert {n: d.owner for n, d in dbs.items()} == {
        "hearthminds_db": "hearthminds",
        "logos_db": "logos",
        "aletheia_db": "aletheia",
    }
    assert all(d.extensions == (Extension(name="vector"),) for d in dbs.values())


def test_missing_role_is_created_with_every_attribute_explicit() -> None:
    assert sqls(plan_roles({"logos": RoleSpec("logos")}, {})) == [
        'CREATE ROLE "logos" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1'
    ]


def test_converged_role_plans_nothing() -> None:
    actual = {
        "logos": {
            "login": True,
            "superuser": False,
            "createdb": False,
            "createrole": False,
            "replication": False,
            "bypassrls": False,
            "connection_limit": -1,
        }
    }
    assert plan_roles({"logos": RoleSpec("logos")}, actual) == []


def test_role_attribute_drift_is_fixed_alone() -> None:
    actual = {
        "logos": {
            "login": True,
            "superuser": True,
            "createdb": False,
            "createrole": False,
            "replication": False,
            "bypassrls": False,
            "connection_limit": 5,
        }
    }
    assert sqls(plan_roles({"logos": RoleSpec("logos")}, actual)) == [
        'ALTER ROLE "logos" NOSUPERUSER',
        'ALTER ROLE "logos" CONNECTION LIMIT -1',
    ]


def test_quotes_in_names_are_escaped() -> None:
    # Names are validated in config; the planner still never formats identifiers by hand.
    assert sqls(plan_roles({'a"b': RoleSpec('a"b')}, {}))[0].startswith('CREATE ROLE "a""b" ')


def test_database_created_from_template0_with_owner_locale_and_closed_to_public() -> None:
    spec = DatabaseSpec("logos_db", "logos", "UTF8", "C.UTF-8", connect=("hearthminds",))
    assert sqls(plan_databases({"logos_db": spec}, {})) == [
        "CREATE DATABASE \"logos_db\" OWNER \"logos\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'",
        'REVOKE CONNECT, TEMPORARY ON DATABASE "logos_db" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "logos_db" TO "hearthminds"',
    ]
    converged = {"owner": "logos", "acl": ["logos=CTc/logos", "hearthminds=c/logos"]}
    assert plan_databases({"logos_db": spec}, {"logos_db": converged}) == []
    assert sqls(plan_databases({"logos_db": spec}, {"logos_db": {**converged, "owner": "postgres"}})) == [
        'ALTER DATABASE "logos_db" OWNER TO "logos"'
    ]


def test_database_acl_drift_is_closed() -> None:
    spec = DatabaseSpec("logos_db", "logos", "UTF8", "C.UTF-8", connect=("hearthminds",))
    drifted = {"owner": "logos", "acl": ["=Tc/logos", "logos=CTc/logos", "aletheia=c/logos"]}
    assert sqls(plan_databases({"logos_db": spec}, {"logos_db": drifted})) == [
        'REVOKE CONNECT, TEMPORARY ON DATABASE "logos_db" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "logos_db" TO "hearthminds"',
        'REVOKE CONNECT ON DATABASE "logos_db" FROM "aletheia"',
    ]


def test_absent_database_dropped_only_with_allow_drop() -> None:
    spec = DatabaseSpec("old_db", "old", "UTF8", "C", present=False)
    with pytest.raises(PlanError, match="declared absent, but allow_drop is false"):
        plan_databases({"old_db": spec}, {"old_db": {"owner": "old"}})
    assert sqls(plan_databases({"old_db": spec}, {"old_db": {"owner": "old"}}, allow_drop=True)) == [
        'DROP DATABASE "old_db"'
    ]
    assert plan_databases({"old_db": spec}, {}, allow_drop=True) == []


def test_extensions_only_where_missing_or_at_another_version() -> None:
    desired = {
        "a_db": DatabaseSpec("a_db", "a", "UTF8", "C", (Extension(name="vector"),)),
        "b_db": DatabaseSpec("b_db", "b", "UTF8", "C", (Extension(name="vector", version="0.8.0"),)),
        "c_db": DatabaseSpec("c_db", "c", "UTF8", "C", (Extension(name="vector"),)),
    }
    actual = {
        "a_db": {"extensions": {"plpgsql": "1.0"}},
        "b_db": {"extensions": {"vector": "0.7.4"}},
        "c_db": {"extensions": {"vector": "0.8.0"}},
    }
    assert sqls(plan_extensions(desired, actual)) == [
        '\\connect "a_db"',
        'CREATE EXTENSION IF NOT EXISTS "vector"',
        '\\connect "b_db"',
        "ALTER EXTENSION \"vector\" UPDATE TO '0.8.0'",
    ]
