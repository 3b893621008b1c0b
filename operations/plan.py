"""Pure planning: desired state + facts -> the statements that close the difference.

No pyinfra here: `--dry`, the real run and the unit tests all call these same functions.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from .desired import DatabaseSpec, RoleSpec
from .psql import Stmt, connect, stmt

ROLE_FLAGS = ("login", "superuser", "createdb", "createrole", "replication", "bypassrls")


def _flag_sql(spec: RoleSpec, only: tuple[str, ...] = ROLE_FLAGS) -> str:
    return " ".join(("" if getattr(spec, f) else "NO") + f.upper() for f in only)


def plan_roles(desired: dict[str, RoleSpec], actual: dict[str, dict[str, Any]]) -> list[Stmt]:
    out: list[Stmt] = []
    for name, spec in desired.items():
        have = actual.get(name)
        if have is None:
            out.append(stmt(f"CREATE ROLE {{}} {_flag_sql(spec)} CONNECTION LIMIT {int(spec.connection_limit)}", name))
            continue
        changed = tuple(f for f in ROLE_FLAGS if bool(have.get(f)) != getattr(spec, f))
        if changed:
            out.append(stmt(f"ALTER ROLE {{}} {_flag_sql(spec, changed)}", name))
        if have.get("connection_limit", -1) != spec.connection_limit:
            out.append(stmt(f"ALTER ROLE {{}} CONNECTION LIMIT {int(spec.connection_limit)}", name))
    return out


def plan_databases(desired: dict[str, DatabaseSpec], actual: dict[str, dict[str, Any]]) -> list[Stmt]:
    out: list[Stmt] = []
    for name, spec in desired.items():
        have = actual.get(name)
        if have is None:
            out.append(
                stmt(
                    "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LOCALE {}",
                    name,
                    spec.owner,
                    sql.Literal(spec.encoding),
                    sql.Literal(spec.locale),
                )
            )
        elif have.get("owner") != spec.owner:
            out.append(stmt("ALTER DATABASE {} OWNER TO {}", name, spec.owner))
    return out


def plan_extensions(desired: dict[str, DatabaseSpec], actual: dict[str, dict[str, Any]]) -> list[Stmt]:
    """CREATE (as the superuser, since `vector` is not trusted) or ALTER ... UPDATE where versions
    differ; statements for each database follow a `\\connect` to it."""
    out: list[Stmt] = []
    for name, spec in desired.items():
        installed = (actual.get(name) or {}).get("extensions") or {}
        todo: list[Stmt] = []
        for ext in spec.extensions:
            have = installed.get(ext.name)
            version = sql.SQL(" VERSION {}").format(sql.Literal(ext.version)) if ext.version else sql.SQL("")
            if have is None:
                todo.append(stmt("CREATE EXTENSION IF NOT EXISTS {}{}", ext.name, version))
            elif ext.version and have != ext.version:
                todo.append(stmt("ALTER EXTENSION {} UPDATE TO {}", ext.name, sql.Literal(ext.version)))
        if todo:
            out += [connect(name), *todo]
    return out
