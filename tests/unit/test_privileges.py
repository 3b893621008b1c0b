"""Privileges as desired state: the planner against generated readings, applied by a model of what
PostgreSQL does with each statement it emits; and the declared keys' checks."""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operations.config import parse_config
from operations.errors import ConfigError
from operations.privileges import KINDS, OBJTYPE, PUBLIC, Privileges, new_database_privileges, plan_privileges

OWNER = "app_owner"
ROLES = ["app_rw", "app_ro", "other", PUBLIC]
SCHEMAS = ["public", "extra"]
OBJECT_KINDS = ("tables", "sequences", "functions")


def _name(text: str) -> str:
    return "PUBLIC" if text == "PUBLIC" else text.strip('"')


STMT = re.compile(
    r"^(?:ALTER DEFAULT PRIVILEGES FOR ROLE (?P<for>\S+)(?: IN SCHEMA (?P<dschema>\S+))? )?"
    r"(?P<verb>GRANT|REVOKE) (?P<privs>[A-Z, ]+?) ON "
    r"(?:SCHEMA (?P<schema>\S+)|ALL (?P<all>\w+) IN SCHEMA (?P<aschema>\S+)"
    r"|(?P<dkind>TABLES|SEQUENCES|FUNCTIONS)) (?:TO|FROM) (?P<role>\S+)$"
)


def apply(reading: dict, statements: list[str]) -> dict:
    """What PostgreSQL leaves after the statements, in the reading's own shape. Objects are modelled one by
    one: (schema, kind) -> list of {grantee: privileges}."""
    r = copy.deepcopy(reading)
    objects = r.pop("_objects")
    for text in statements:
        m = re.match(r'^CREATE SCHEMA IF NOT EXISTS "(\w+)" AUTHORIZATION "(\w+)"$', text)
        if m:
            r["schemas"].setdefault(m.group(1), {"owner": m.group(2), "acl": []})
            continue
        m = STMT.match(text)
        assert m, text
        privs = set(m["privs"].split(", "))
        role = _name(m["role"])
        grant = m["verb"] == "GRANT"
        if m["schema"]:
            s = r["schemas"][_name(m["schema"])]
            acl = {(g, p) for g, p in s["acl"]}
            acl = acl | {(role, p) for p in privs} if grant else {(g, p) for g, p in acl if g != role or p not in privs}
            s["acl"] = sorted(acl)
        elif m["all"]:
            kind = m["all"].lower()
            for acl in objects.get((_name(m["aschema"]), kind), []):
                held = acl.setdefault(role, set())
                acl[role] = held | privs if grant else held - privs
        else:
            kind = m["dkind"].lower()
            schema = _name(m["dschema"]) if m["dschema"] else ""
            key = (_name(m["for"]), schema, OBJTYPE[kind])
            had = [d for d in r["default_acl"] if tuple(d[:3]) == key]
            rows = {(g, p) for o, s, t, g, p in had if g is not None}
            if schema == "" and not had and kind == "functions":  # the built-in default, made explicit
                rows = {(key[0], "EXECUTE"), (PUBLIC, "EXECUTE")}
            kept = {(g, p) for g, p in rows if g != role or p not in privs}
            rows = rows | {(role, p) for p in privs} if grant else kept
            r["default_acl"] = [d for d in r["default_acl"] if tuple(d[:3]) != key]
            r["default_acl"] += [[*key, g, p] for g, p in sorted(rows)]
            if not rows and schema == "":  # a global entry stays, granting nothing (a schema's goes)
                r["default_acl"].append([*key, None, None])
    return summarise(r, objects)


def summarise(r: dict, objects: dict) -> dict:
    out = {k: v for k, v in r.items() if k != "_objects"}
    out["objects"] = [[s, k, len(objs)] for (s, k), objs in objects.items() if objs]
    counts: dict[tuple, int] = {}
    for (s, k), objs in objects.items():
        for acl in objs:
            for g, ps in acl.items():
                for p in ps:
                    counts[(s, k, g, p)] = counts.get((s, k, g, p), 0) + 1
    out["object_grants"] = [[*key, n] for key, n in sorted(counts.items())]
    out["_objects"] = objects
    return out


privilege_sets = {kind: st.sets(st.sampled_from(KINDS[kind])) for kind in KINDS}


@st.composite
def readings(draw) -> dict:
    schemas = {}
    for s in draw(st.sets(st.sampled_from(SCHEMAS))):
        acl = sorted({(g, p) for g in draw(st.sets(st.sampled_from(ROLES))) for p in draw(privilege_sets["schema"])})
        schemas[s] = {"owner": "pg_database_owner" if s == "public" else OWNER, "acl": [list(a) for a in acl]}
    objects: dict[tuple[str, str], list[dict[str, set[str]]]] = {}
    for s in schemas:
        for kind in OBJECT_KINDS:
            n = draw(st.integers(0, 3))
            objects[(s, kind)] = [
                {g: set(draw(privilege_sets[kind])) for g in draw(st.sets(st.sampled_from(ROLES)))} for _ in range(n)
            ]
    default_acl = []
    for s in [*schemas, ""]:
        for kind in OBJECT_KINDS:
            for g in draw(st.sets(st.sampled_from(ROLES))):
                default_acl += [[OWNER, s, OBJTYPE[kind], g, p] for p in sorted(draw(privilege_sets[kind]))]
    return summarise({"schemas": schemas, "default_acl": default_acl}, objects)


@st.composite
def declared(draw) -> dict[str, dict[str, Privileges]]:
    out = {}
    for role in draw(st.sets(st.sampled_from(ROLES[:3]), min_size=1)):
        out[role] = {
            s: Privileges(**{("schema" if k == "schema" else k): sorted(draw(privilege_sets[k])) for k in KINDS})
            for s in draw(st.sets(st.sampled_from(SCHEMAS), min_size=1))
        }
    return out


@settings(max_examples=300, deadline=None)
@given(readings(), declared())
def test_one_run_converges_from_any_state(reading: dict, grants: dict) -> None:
    first = plan_privileges("db", OWNER, grants, reading)
    after = apply(reading, [s.sql for s in first])
    assert plan_privileges("db", OWNER, grants, after) == []
    # and what is declared is what is held
    for role, schemas in grants.items():
        for schema, privs in schemas.items():
            for kind in OBJECT_KINDS:
                for acl in after["_objects"].get((schema, kind), []):
                    managed = any(p.of(kind) for sc in grants.values() for s, p in sc.items() if s == schema)
                    if managed:
                        assert acl.get(role, set()) == set(privs.of(kind))
                        assert not acl.get(PUBLIC)


def test_a_new_database_gets_its_grants_and_defaults() -> None:
    grants = {"app_ro": {"public": Privileges(schema=["USAGE"], tables=["SELECT"])}}
    got = [s.sql for s in plan_privileges("db", OWNER, grants, new_database_privileges())]
    assert got == [
        'GRANT USAGE ON SCHEMA "public" TO "app_ro"',
        'REVOKE USAGE ON SCHEMA "public" FROM PUBLIC',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "app_owner" IN SCHEMA "public" GRANT SELECT ON TABLES TO "app_ro"',
    ]


def test_nothing_declared_plans_nothing() -> None:
    assert plan_privileges("db", OWNER, {}, new_database_privileges()) == []


BASE = {"shared_db": {"enabled": False}, "ai_names": [], "roles": {"own": {}, "ro": {"login": False}}}


def config(grants: dict, **db) -> dict:
    return {**BASE, "databases": {"d": {"owner": "own", "grants": grants, **db}}}


@pytest.mark.parametrize(
    ("grants", "expected"),
    [
        ({"nobody": {"public": {"tables": ["SELECT"]}}}, "databases.d.grants.nobody: role 'nobody' is not declared"),
        ({"ro": {"public": {"tables": ["EXECUTE"]}}}, "EXECUTE does not apply to tables (it applies to functions)"),
        ({"ro": {"public": {"tables": ["SELEKT"]}}}, "unknown privilege 'SELEKT'; tables take SELECT"),
        ({"ro": {"public": {"schema": ["SELECT"]}}}, "SELECT does not apply to schema"),
        ({"ro": {"public": {"views": ["SELECT"]}}}, "views: unknown key"),
        ({"ro": {"pg_catalog": {"tables": ["SELECT"]}}}, "'pg_catalog' is not a schema hearthdb manages"),
        ({"own": {"public": {"tables": ["SELECT"]}}}, "'own' owns the database"),
    ],
)
def test_bad_grants_are_refused_naming_the_key(grants: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config(grants))
    assert expected in str(err.value)
    assert "databases.d.grants" in str(err.value)


def test_a_string_is_a_one_item_list_and_case_does_not_matter() -> None:
    cfg = parse_config(config({"ro": {"public": {"tables": "select", "schema": ["usage", "USAGE"]}}}))
    p = cfg.databases["d"].grants["ro"]["public"]
    assert p.tables == ["SELECT"] and p.schema_ == ["USAGE"]
