"""Operations for the objects inside a cluster: roles, databases, extensions.

Each reads the combined PgState fact once, plans with the pure functions of `plan`, and sends all
of its statements in one psql process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyinfra import host
from pyinfra.api import operation

from .desired import DatabaseSpec, RoleSpec
from .facts import pg_state
from .plan import plan_databases, plan_extensions, plan_roles
from .psql import SqlCommand, Stmt


def _apply(kind: str, port: int, statements: list[Stmt], count: int):
    if not statements:
        host.noop(f"{count} {kind} are as declared")
        return
    yield SqlCommand(port, statements)


def _converge(
    kind: str,
    key: str,
    planner: Callable[[Any, Any], list[Stmt]],
    desired: dict,
    version: int,
    cluster: str,
    port: int,
):
    state = pg_state(version, cluster, port)
    yield from _apply(kind, port, planner(desired, state.get(key, {})), len(desired))


@operation()
def roles(desired: dict[str, RoleSpec], version: int, cluster: str, port: int):
    """
    Create roles and fix their attributes and connection limits.

    + desired: role name -> RoleSpec
    + version, cluster, port: the cluster to act on
    """
    yield from _converge("roles", "roles", plan_roles, desired, version, cluster, port)


@operation()
def databases(desired: dict[str, DatabaseSpec], version: int, cluster: str, port: int):
    """
    Create databases owned by their role from template0 with the declared encoding and locale.

    + desired: database name -> DatabaseSpec
    + version, cluster, port: the cluster to act on
    """
    yield from _converge("databases", "databases", plan_databases, desired, version, cluster, port)


@operation()
def extensions(desired: dict[str, DatabaseSpec], version: int, cluster: str, port: int):
    """
    Create each database's declared extensions as the superuser, or update them to a declared version.

    + desired: database name -> DatabaseSpec (its `extensions`)
    + version, cluster, port: the cluster to act on
    """
    yield from _converge("databases' extensions", "databases", plan_extensions, desired, version, cluster, port)
