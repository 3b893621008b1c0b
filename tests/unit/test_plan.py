"""The pure planners: the statements are exactly the difference between desired and actual."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyinfra.api import HiddenValue

from operations.config import Extension, parse_config
from operations.desired import DatabaseSpec, RoleSpec, desired_databases, desired_roles
from operations.errors import PlanError
from operations.plan import acl_after_owner_change, plan_databases, plan_extensions, plan_role_drops, plan_roles
from operations.scram import verifier


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


def _have(**kw) -> dict:
    base = {
        "login": True,
        "superuser": False,
        "createdb": False,
        "createrole": False,
        "replication": False,
        "bypassrls": False,
        "connection_limit": -1,
        "settings": None,
        "member_of": [],
        "scram": None,
        "has_password": False,
    }
    return {**base, **kw}


def test_converged_role_plans_nothing() -> None:
    assert plan_roles({"logos": RoleSpec("logos")}, {"logos": _have()}) == []


def test_role_attribute_drift_is_fixed_alone() -> None:
    actual = {"logos": _have(superuser=True, connection_limit=5)}
    assert sqls(plan_roles({"logos": RoleSpec("logos")}, actual)) == [
        'ALTER ROLE "logos" NOSUPERUSER',
        'ALTER ROLE "logos" CONNECTION LIMIT -1',
    ]


def test_quotes_in_names_are_escaped() -> None:
    # Names are validated in config; the planner still never formats identifiers by hand.
    assert sqls(plan_roles({'a"b': RoleSpec('a"b')}, {}))[0].startswith('CREATE ROLE "a""b" ')


def test_database_created_from_template0_with_owner_locale_and_closed_to_public() -> None:
    spec = DatabaseSpec(name="logos_db", owner="logos", encoding="UTF8", locale="C.UTF-8", connect=("hearthminds",))
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
    spec = DatabaseSpec(name="logos_db", owner="logos", encoding="UTF8", locale="C.UTF-8", connect=("hearthminds",))
    drifted = {"owner": "logos", "acl": ["=Tc/logos", "logos=CTc/logos", "aletheia=c/logos"]}
    assert sqls(plan_databases({"logos_db": spec}, {"logos_db": drifted})) == [
        'REVOKE CONNECT, TEMPORARY ON DATABASE "logos_db" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "logos_db" TO "hearthminds"',
        'REVOKE CONNECT ON DATABASE "logos_db" FROM "aletheia"',
    ]


def test_absent_database_dropped_only_with_allow_drop() -> None:
    spec = DatabaseSpec(name="old_db", owner="old", encoding="UTF8", locale="C", state="absent")
    with pytest.raises(PlanError, match="declared absent, but allow_drop is false"):
        plan_databases({"old_db": spec}, {"old_db": {"owner": "old"}})
    assert sqls(plan_databases({"old_db": spec}, {"old_db": {"owner": "old"}}, allow_drop=True)) == [
        'DROP DATABASE "old_db"'
    ]
    assert plan_databases({"old_db": spec}, {}, allow_drop=True) == []


def test_extensions_only_where_missing_or_at_another_version() -> None:
    desired = {
        "a_db": DatabaseSpec(
            name="a_db", owner="a", encoding="UTF8", locale="C", extensions=(Extension(name="vector"),)
        ),
        "b_db": DatabaseSpec(
            name="b_db", owner="b", encoding="UTF8", locale="C", extensions=(Extension(name="vector", version="0.8.0"),)
        ),
        "c_db": DatabaseSpec(
            name="c_db", owner="c", encoding="UTF8", locale="C", extensions=(Extension(name="vector"),)
        ),
    }
    actual = {
        "a_db": {"extensions": {"plpgsql": "1.0"}},
        "b_db": {"extensions": {"vector": "0.7.4"}},
        "c_db": {"extensions": {"vector": "0.8.0"}},
    }
    assert sqls(plan_extensions(desired, actual)) == [
        '\\connect "a_db"',
        'CREATE EXTENSION IF NOT EXISTS "vector"',
        'COMMENT ON EXTENSION "vector" IS NULL',
        '\\connect "b_db"',
        "ALTER EXTENSION \"vector\" UPDATE TO '0.8.0'",
        'COMMENT ON EXTENSION "vector" IS NULL',
    ]
    # A comment put back (by hand, or by an update script) is cleared again; none left means no change.
    actual["c_db"]["commented"] = ["vector"]
    assert sqls(plan_extensions({"c_db": desired["c_db"]}, actual)) == [
        '\\connect "c_db"',
        'COMMENT ON EXTENSION "vector" IS NULL',
    ]


def _scram_fact(v: str) -> dict:
    iterations, salt = v.split("$")[1].split(":")
    return {"iterations": int(iterations), "salt": salt, "digest": hashlib.sha256(v.encode()).hexdigest()}


def test_new_password_sent_as_verifier_and_masked_in_display() -> None:
    spec = RoleSpec("logos", password=HiddenValue("correct-horse-battery"))
    plan = plan_roles({"logos": spec}, {"logos": _have()})
    assert [s.sql for s in plan[:2]] == ["SET log_statement = 'none'", "SET log_min_duration_statement = -1"]
    pw = plan[-1]
    assert pw.sql.startswith('ALTER ROLE "logos" PASSWORD \'SCRAM-SHA-256$4096:')
    assert "correct-horse-battery" not in pw.sql
    assert pw.display == "ALTER ROLE \"logos\" PASSWORD '***'"


def test_unchanged_password_sends_nothing() -> None:
    stored = verifier("correct-horse-battery")
    spec = RoleSpec("logos", password=HiddenValue("correct-horse-battery"))
    assert plan_roles({"logos": spec}, {"logos": _have(scram=_scram_fact(stored), has_password=True)}) == []


def test_changed_password_changes_only_that_role() -> None:
    have = {
        "logos": _have(scram=_scram_fact(verifier("old-password-logos")), has_password=True),
        "aletheia": _have(scram=_scram_fact(verifier("aletheia-password")), has_password=True),
    }
    desired = {
        "logos": RoleSpec("logos", password=HiddenValue("new-password-logos")),
        "aletheia": RoleSpec("aletheia", password=HiddenValue("aletheia-password")),
    }
    changes = [s.display for s in plan_roles(desired, have) if not s.sql.startswith("SET ")]
    assert changes == ["ALTER ROLE \"logos\" PASSWORD '***'"]


def test_role_settings_and_memberships_converge() -> None:
    spec = RoleSpec("hearthminds", settings=(("statement_timeout", "5s"),), member_of=("pg_monitor",))
    have = _have(settings=["statement_timeout=1s", "work_mem=4MB"], member_of=["pg_read_all_data"])
    assert sqls(plan_roles({"hearthminds": spec}, {"hearthminds": have})) == [
        'ALTER ROLE "hearthminds" SET "statement_timeout" = \'5s\'',
        'ALTER ROLE "hearthminds" RESET "work_mem"',
        'GRANT "pg_monitor" TO "hearthminds"',
        'REVOKE "pg_read_all_data" FROM "hearthminds"',
    ]


def test_absent_role_dropped_only_with_allow_drop() -> None:
    spec = RoleSpec("old", present=False)
    assert plan_roles({"old": spec}, {"old": _have()}) == []
    with pytest.raises(PlanError, match="allow_drop"):
        plan_role_drops({"old": spec}, {"old": _have()})
    assert sqls(plan_role_drops({"old": spec}, {"old": _have()}, allow_drop=True)) == ['DROP ROLE "old"']
    assert plan_role_drops({"old": spec}, {}, allow_drop=True) == []


def test_extension_updated_to_newest_when_unpinned_and_unknown_one_refused() -> None:
    spec = {
        "a_db": DatabaseSpec(
            name="a_db", owner="a", encoding="UTF8", locale="C", extensions=(Extension(name="vector"),)
        )
    }
    have = {"a_db": {"extensions": {"vector": "0.7.0"}}}
    avail = {"vector": {"default": "0.8.0", "versions": ["0.7.0", "0.8.0"]}}
    assert sqls(plan_extensions(spec, have, avail)) == [
        '\\connect "a_db"',
        "ALTER EXTENSION \"vector\" UPDATE TO '0.8.0'",
        'COMMENT ON EXTENSION "vector" IS NULL',
    ]
    with pytest.raises(PlanError, match="'vector' is not available on this host"):
        plan_extensions(spec, have, {"plpgsql": {"default": "1.0", "versions": ["1.0"]}})


def test_public_schema_create_taken_from_public() -> None:
    spec = {"a_db": DatabaseSpec(name="a_db", owner="a", encoding="UTF8", locale="C", extensions=())}
    assert sqls(plan_extensions(spec, {"a_db": {"extensions": {}, "public_create": True}})) == [
        '\\connect "a_db"',
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ]


def test_isolation_topology_from_config() -> None:
    cfg = parse_config({"ai_names": ["logos", "aletheia", "nous"]})
    dbs = desired_databases(cfg)
    assert dbs["hearthminds_db"].connect == ("aletheia", "logos", "nous")
    assert dbs["logos_db"].connect == ("hearthminds",)
    roles = desired_roles(cfg)
    assert roles["hearthminds"].member_of == ("pg_monitor",)
    assert not roles["hearthminds"].superuser


def test_owner_change_moves_the_old_owners_rights_and_merges() -> None:
    # What PostgreSQL leaves (aclnewowner), as seen on a lab host: logos_db given to hearthminds by hand.
    acl = ["logos=CTc/logos", "hearthminds=c/logos", "aletheia=c/hearthminds"]
    assert acl_after_owner_change(acl, "logos", "hearthminds") == [
        "hearthminds=CTc/hearthminds",
        "aletheia=c/hearthminds",
    ]
    assert acl_after_owner_change(None, "logos", "hearthminds") is None


def test_owner_repaired_and_the_grant_it_collapsed_given_back() -> None:
    """Before the model, the grant to hearthminds (merged into its ownership by the drift) was planned
    from the reading taken before the owner change, found present, and lost: two runs were needed."""
    spec = DatabaseSpec(name="logos_db", owner="logos", encoding="UTF8", locale="C.UTF-8", connect=("hearthminds",))
    drifted = {"owner": "hearthminds", "acl": ["hearthminds=CTc/hearthminds"]}
    assert sqls(plan_databases({"logos_db": spec}, {"logos_db": drifted})) == [
        'ALTER DATABASE "logos_db" OWNER TO "logos"',
        'GRANT CONNECT ON DATABASE "logos_db" TO "hearthminds"',
    ]


ROLES = ["logos", "hearthminds", "aletheia", "nous"]


def _run_acl(acl: list[str] | None, owner: str, statements: list[str]) -> tuple[str, dict[str, set[str]]]:
    """A small interpreter of what the planner may send for a database (ALTER OWNER, GRANT, REVOKE),
    to check the plan's end state for any starting ACL. None is the default ACL (PUBLIC Tc, owner CTc)."""
    entries = {("", "Tc"), (owner, "CTc")} if acl is None else {(g.strip('"'), p) for g, p, _ in map(_split, acl)}
    rights: dict[str, set[str]] = {}
    for grantee, privs in entries:
        rights.setdefault(grantee, set()).update(privs)
    for s in statements:
        if m := re.fullmatch(r'ALTER DATABASE "\w+" OWNER TO "(\w+)"', s):
            new = m.group(1)
            rights.setdefault(new, set()).update(rights.pop(owner, set()))
            owner = new
        elif m := re.fullmatch(r'GRANT CONNECT ON DATABASE "\w+" TO "(\w+)"', s):
            rights.setdefault(m.group(1), set()).add("c")
        elif m := re.fullmatch(r'REVOKE CONNECT ON DATABASE "\w+" FROM "(\w+)"', s):
            rights.get(m.group(1), set()).discard("c")
        elif s == 'REVOKE CONNECT, TEMPORARY ON DATABASE "x_db" FROM PUBLIC':
            rights.get("", set()).difference_update("cT")
        else:
            raise AssertionError(f"unexpected statement {s}")
    return owner, rights


def _split(item: str) -> tuple[str, str, str]:
    grantee, _, rest = item.partition("=")
    privs, _, grantor = rest.partition("/")
    return grantee, privs, grantor


@given(
    owner=st.sampled_from(ROLES),
    grants=st.dictionaries(st.sampled_from(["", *ROLES]), st.sampled_from(["c", "T", "Tc", "CTc", "C"])),
    default=st.booleans(),
    connect=st.sets(st.sampled_from(ROLES[1:])),
)
@settings(max_examples=300, deadline=None)
def test_any_database_acl_and_owner_reach_the_declared_rights_in_one_plan(
    owner: str, grants: dict[str, str], default: bool, connect: set[str]
) -> None:
    acl = None if default else [f"{g}={p}/{owner}" for g, p in grants.items()] + [f"{owner}=CTc/{owner}"]
    spec = DatabaseSpec(name="x_db", owner="logos", encoding="UTF8", locale="C", connect=tuple(sorted(connect)))
    plan = sqls(plan_databases({"x_db": spec}, {"x_db": {"owner": owner, "acl": acl}}))
    final_owner, rights = _run_acl(acl, owner, plan)
    assert final_owner == "logos"
    assert not rights.get("", set()) & {"c", "T"}
    may_connect = {r for r, p in rights.items() if "c" in p and r not in ("", "logos")}
    assert may_connect == connect


def test_password_removed_only_when_declared_false() -> None:
    stored = _have(scram=_scram_fact(verifier("some-password-123")), has_password=True)
    # No password passed (a deploy function called without them): the stored one stays.
    assert plan_roles({"logos": RoleSpec("logos")}, {"logos": stored}) == []
    assert sqls(plan_roles({"logos": RoleSpec("logos", no_password=True)}, {"logos": stored})) == [
        'ALTER ROLE "logos" PASSWORD NULL'
    ]
    cfg = parse_config({"roles": {"reporting": {"password": False}, "batch": {"login": False}}})
    roles = desired_roles(cfg)
    assert roles["reporting"].no_password and not roles["logos"].no_password and not roles["batch"].no_password
