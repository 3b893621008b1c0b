"""Privileges as desired state: what a role may do in a schema of a database, on the schema itself and on
all its tables, sequences and functions, now and (as default privileges of the database's owner) on what
the owner creates later.

Pure: the model of `databases.<db>.grants`, its checks, and the planner over the database's reading
(`queries.DATABASE_QUERY`: `schemas`, `objects`, `object_grants`, `default_acl`).

What is managed: in a schema named under some role's grants, every object kind (`schema`, `tables`,
`sequences`, `functions`) that any grant there names. For a managed kind, the declared roles hold exactly
their declared privileges on every object of the kind, and no other role (PUBLIC included) holds any,
except an object's owner and the database's owner. Objects that belong to an extension are not managed
(the extension decides). A declared schema that does not exist is created, owned by the database's owner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from psycopg import sql
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .statements import Stmt, stmt

# Privileges each object kind takes (PostgreSQL's names, as aclexplode() returns them).
KINDS: dict[str, tuple[str, ...]] = {
    "schema": ("USAGE", "CREATE"),
    "tables": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
    "sequences": ("USAGE", "SELECT", "UPDATE"),
    "functions": ("EXECUTE",),
}
# The keyword of each kind in GRANT ... ON ALL <x> IN SCHEMA and ALTER DEFAULT PRIVILEGES ... ON <x>.
KEYWORD = {"tables": "TABLES", "sequences": "SEQUENCES", "functions": "FUNCTIONS"}
# pg_default_acl.defaclobjtype of each kind.
OBJTYPE = {"tables": "r", "sequences": "S", "functions": "f"}
SCHEMA_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PUBLIC = "PUBLIC"


def check_schema_name(value: str) -> str:
    if not SCHEMA_NAME_RE.match(value) or value.startswith("pg_") or value == "information_schema":
        raise ValueError(
            f"{value!r} is not a schema hearthdb manages: lower-case letters, digits and '_', not pg_* "
            "or information_schema"
        )
    return value


SchemaName = Annotated[str, AfterValidator(check_schema_name)]


def _privilege_list(kind: str):
    def check(values: list[str]) -> list[str]:
        out = []
        for v in values:
            p = str(v).upper()
            if p not in KINDS[kind]:
                applies = [k for k, ps in KINDS.items() if p in ps]
                if applies:
                    raise ValueError(f"{p} does not apply to {kind} (it applies to {' and '.join(applies)})")
                raise ValueError(f"unknown privilege {v!r}; {kind} take {', '.join(KINDS[kind])}")
            if p not in out:
                out.append(p)
        return out

    return Annotated[list[str], AfterValidator(check)]


class Privileges(BaseModel):
    """What one role may do in one schema: `{schema: [USAGE], tables: [SELECT], ...}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: _privilege_list("schema") = Field(default_factory=list, alias="schema")  # type: ignore[valid-type]
    tables: _privilege_list("tables") = Field(default_factory=list)  # type: ignore[valid-type]
    sequences: _privilege_list("sequences") = Field(default_factory=list)  # type: ignore[valid-type]
    functions: _privilege_list("functions") = Field(default_factory=list)  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):  # `tables: SELECT` is a one-item list
            return {k: [v] if isinstance(v, str) else v for k, v in data.items()}
        return data

    def of(self, kind: str) -> tuple[str, ...]:
        return tuple(getattr(self, "schema_" if kind == "schema" else kind))


# role -> schema -> privileges
Grants = dict[str, dict[SchemaName, Privileges]]


def desired_grants(grants: Mapping[str, Mapping[str, Privileges]]) -> dict[str, dict[str, dict[str, tuple[str, ...]]]]:
    """schema -> kind -> role -> privileges, for the managed kinds of each schema only."""
    out: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {}
    for schemas in grants.values():
        for schema, privs in schemas.items():
            kinds = out.setdefault(schema, {})
            for kind in KINDS:
                if privs.of(kind):
                    kinds.setdefault(kind, {})
    for role, schemas in grants.items():
        for schema, privs in schemas.items():
            for kind, roles in out[schema].items():
                roles[role] = tuple(p for p in KINDS[kind] if p in privs.of(kind))
    return out


def new_database_privileges() -> dict[str, Any]:
    """The reading of a database created from template0 (PostgreSQL 15+): schema public, owned by
    pg_database_owner, usable by PUBLIC; no objects, no default privileges."""
    return {
        "schemas": {"public": {"owner": "pg_database_owner", "acl": [[PUBLIC, "USAGE"]]}},
        "objects": [],
        "object_grants": [],
        "default_acl": [],
    }


def _join(privs: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(p) for p in privs)


def _grantee(role: str) -> sql.Composable:
    return sql.SQL(PUBLIC) if role == PUBLIC else sql.Identifier(role)


def plan_privileges(
    database: str, owner: str, grants: Mapping[str, Mapping[str, Privileges]], have: dict
) -> list[Stmt]:
    """GRANT / REVOKE (on the schema, on ALL <kind> IN SCHEMA, and as the owner's default privileges)
    that take the database's managed schemas to the declared privileges. `have` is the database's
    reading (or `new_database_privileges()` for one this run creates)."""
    want = desired_grants(grants)
    if not want:
        return []
    schemas = have.get("schemas") or {}
    counts = {(s, k): n for s, k, n in have.get("objects") or []}
    held: dict[tuple[str, str, str], dict[str, int]] = {}
    for s, k, role, priv, n in have.get("object_grants") or []:
        held.setdefault((s, k, role), {})[priv] = n
    defaults: dict[tuple[str, str, str], set[str]] = {}
    rows: set[tuple[str, str]] = set()  # (schema or "", objtype) of the owner's pg_default_acl rows
    for role, s, objtype, grantee, priv in have.get("default_acl") or []:
        if role == owner:
            rows.add((s, objtype))
            if grantee is not None:  # a row that grants nothing reads as one null entry
                defaults.setdefault((s, objtype, grantee), set()).add(priv)
    out: list[Stmt] = []
    for schema, kinds in sorted(want.items()):
        if schema not in schemas:
            out.append(stmt("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}", schema, owner))
            info: dict[str, Any] = {"owner": owner, "acl": []}
        else:
            info = schemas[schema]
        skip = {owner, info.get("owner"), "pg_database_owner"}
        if "schema" in kinds:
            acl: dict[str, set[str]] = {}
            for role, priv in info.get("acl") or []:
                if role not in skip and not (schema == "public" and role == PUBLIC and priv == "CREATE"):
                    acl.setdefault(role, set()).add(priv)  # PUBLIC's CREATE on public: the extensions phase
            out += _converge(kinds["schema"], acl, lambda verb, ps, r, s=schema: _on_schema(verb, ps, s, r))
        for kind in ("tables", "sequences", "functions"):
            if kind not in kinds:
                continue
            n = counts.get((schema, kind), 0)
            have_all = {
                role: {p for p, c in privs.items() if c >= n}
                for (s, k, role), privs in held.items()
                if s == schema and k == kind and role not in skip
            }
            have_any = {
                role: set(privs)
                for (s, k, role), privs in held.items()
                if s == schema and k == kind and role not in skip
            }
            if n:
                for role, privs in sorted(kinds[kind].items()):
                    missing = [p for p in privs if p not in have_all.get(role, set())]
                    if missing:
                        out.append(_on_all("GRANT", missing, kind, schema, role))
                for role, privs in sorted(have_any.items()):
                    extra = [p for p in KINDS[kind] if p in privs and p not in kinds[kind].get(role, ())]
                    if extra:
                        out.append(_on_all("REVOKE", extra, kind, schema, role))
            held_defaults = {
                g: ps for (s, t, g), ps in defaults.items() if s == schema and t == OBJTYPE[kind] and g not in skip
            }
            out += _converge(
                kinds[kind], held_defaults, lambda verb, ps, r, k=kind, s=schema: _default(verb, ps, k, owner, s, r)
            )
    # functions are executable by PUBLIC by default: take that from what the owner creates later (one
    # global default for the owner, whichever schemas manage functions)
    managed = any("functions" in kinds and PUBLIC not in kinds["functions"] for kinds in want.values())
    if managed and (defaults.get(("", "f", PUBLIC)) or ("", "f") not in rows):
        out.append(_default("REVOKE", ["EXECUTE"], "functions", owner, None, PUBLIC))
    return out


def _converge(want: Mapping[str, tuple[str, ...]], have: Mapping[str, set[str]], make) -> list[Stmt]:
    out = []
    for role, privs in sorted(want.items()):
        missing = [p for p in privs if p not in have.get(role, set())]
        if missing:
            out.append(make("GRANT", missing, role))
    for role, privs in sorted(have.items()):
        extra = sorted(p for p in privs if p not in want.get(role, ()))
        if extra:
            out.append(make("REVOKE", extra, role))
    return out


def _on_schema(verb: str, privs: list[str], schema: str, role: str) -> Stmt:
    to = "TO" if verb == "GRANT" else "FROM"
    return stmt(f"{verb} {{}} ON SCHEMA {{}} {to} {{}}", _join(privs), schema, _grantee(role))


def _on_all(verb: str, privs: list[str], kind: str, schema: str, role: str) -> Stmt:
    to = "TO" if verb == "GRANT" else "FROM"
    return stmt(f"{verb} {{}} ON ALL {KEYWORD[kind]} IN SCHEMA {{}} {to} {{}}", _join(privs), schema, _grantee(role))


def _default(verb: str, privs: list[str], kind: str, owner: str, schema: str | None, role: str) -> Stmt:
    to = "TO" if verb == "GRANT" else "FROM"
    where = " IN SCHEMA {}" if schema else ""
    args = [owner, *([schema] if schema else []), _join(privs), _grantee(role)]
    return stmt(f"ALTER DEFAULT PRIVILEGES FOR ROLE {{}}{where} {verb} {{}} ON {KEYWORD[kind]} {to} {{}}", *args)
