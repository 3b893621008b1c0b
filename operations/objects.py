"""Operations for the objects inside a cluster: roles, databases, extensions.

Each reads the combined PgState fact once, plans with the pure functions of `plan`, and sends all
of its statements in one psql process.
"""

from __future__ import annotations

import shlex

from pyinfra import host, logger, state
from pyinfra.api import StringCommand, operation
from pyinfra.api.state import StateStage

from .desired import DatabaseSpec, RoleSpec
from .facts import forget_visit, pg_clusters, pg_state
from .migrations import load_bundle, plan_migrations
from .plan import plan_databases, plan_extensions, plan_role_drops, plan_roles
from .psql import SqlCommand
from .scram import prewarm
from .statements import Stmt


def show_plan(what: str, lines: list[str]) -> None:
    """While pyinfra detects changes (and in `--dry`), print what would run, secrets masked."""
    if state.current_stage == StateStage.Prepare and lines:
        logger.info(f"{host.print_prefix}{what} would run:\n" + "\n".join(f"        {ln}" for ln in lines))


def fail(message: str) -> StringCommand:
    """A command that fails the host with `message` (a clean pyinfra error, no traceback)."""
    return StringCommand(f"echo {shlex.quote('hearthdb: ' + message)} >&2; exit 1")


STOPPED = "the cluster is stopped"


def _server(version: int, cluster: str, port: int, extensions: bool = False) -> dict | None:
    """The PgState fact; None when the cluster exists but does not run. While this run executes that
    means it stopped after the `running` operation started it (the caller fails clearly); while changes
    are detected (and in `--dry`) the objects cannot be read until it runs, which is said, not guessed."""
    st = pg_state(version, cluster, port, extensions=extensions)
    if st or state.is_executing:
        return st or None
    if pg_clusters().get(f"{version}/{cluster}") is None:
        return st  # no cluster yet (a new host): everything is to be created
    return None


def _stopped(what: str, version: int, cluster: str):
    if state.is_executing:
        yield fail(f"cluster {version}/{cluster} is not running (stopped during the deploy?); run the deploy again")
        return
    logger.info(f"{host.print_prefix}{what}: {STOPPED}; they are read and converged once it runs")
    host.noop(f"{what}: {STOPPED}")


def _apply(kind: str, port: int, statements: list[Stmt], count: int):
    changes = [s for s in statements if s.change]
    if not changes:
        host.noop(f"{count} {kind} are as declared")
        return
    show_plan(kind, [s.display for s in statements if s.display])
    forget_visit()
    yield SqlCommand(port, statements)


@operation()
def roles(desired: dict[str, RoleSpec], version: int, cluster: str, port: int):
    """
    Create roles and converge their attributes, connection limit, password (as a SCRAM verifier,
    sent only when it differs), per-role settings and memberships.

    + desired: role name -> RoleSpec
    + version, cluster, port: the cluster to act on
    """
    st = _server(version, cluster, port)
    if st is None:
        yield from _stopped("roles", version, cluster)
        return
    have = st.get("roles") or {}
    prewarm([(r.password.unmask(), (have.get(n) or {}).get("scram")) for n, r in desired.items() if r.password])
    yield from _apply("roles", port, plan_roles(desired, have), len(desired))


@operation()
def dropped_roles(desired: dict[str, RoleSpec], version: int, cluster: str, port: int, allow_drop: bool = False):
    """
    Drop the roles declared absent (after their databases are gone).

    + desired: role name -> RoleSpec
    + version, cluster, port: the cluster to act on
    + allow_drop: must be true for any role to be dropped
    """
    st = _server(version, cluster, port)
    if st is None:
        yield from _stopped("absent roles", version, cluster)
        return
    absent = sum(1 for r in desired.values() if not r.present)
    yield from _apply("absent roles", port, plan_role_drops(desired, st.get("roles") or {}, allow_drop), absent)


@operation()
def databases(desired: dict[str, DatabaseSpec], version: int, cluster: str, port: int, allow_drop: bool = False):
    """
    Create databases owned by their role from template0 with the declared encoding and locale, and
    converge who may connect (never PUBLIC); drop databases declared absent.

    + desired: database name -> DatabaseSpec
    + version, cluster, port: the cluster to act on
    + allow_drop: permit DROP DATABASE for databases declared absent
    """
    st = _server(version, cluster, port)
    if st is None:
        yield from _stopped("databases", version, cluster)
        return
    plan = plan_databases(desired, st.get("databases") or {}, allow_drop)
    yield from _apply("databases", port, plan, len(desired))


@operation()
def extensions(desired: dict[str, DatabaseSpec], version: int, cluster: str, port: int):
    """
    Create each database's declared extensions as the superuser, or update them to the declared (or
    newest available) version; take CREATE on schema public away from PUBLIC.

    + desired: database name -> DatabaseSpec (its `extensions`)
    + version, cluster, port: the cluster to act on
    """
    st = _server(version, cluster, port, extensions=True)
    if st is None:
        yield from _stopped("databases' extensions", version, cluster)
        return
    plan = plan_extensions(desired, st.get("databases") or {}, st.get("available_extensions") or {})
    yield from _apply("databases' extensions", port, plan, len(desired))


@operation()
def migrations(
    desired: dict[str, DatabaseSpec],
    targets: dict[str, int],
    variables: dict[str, str],
    applied_by: str,
    version: int,
    cluster: str,
    port: int,
):
    """
    Bring every database's schema bundles to their target versions (head unless `targets` says
    otherwise), up or down, under a per-database advisory lock, each migration with its ledger row.

    + desired: database name -> DatabaseSpec (its `bundles` and `owner`)
    + targets: bundle -> version to reach (from `--data migrate_to=hm:0`); others go to head
    + variables: psql variables the bundles use (e.g. embedding_dim)
    + applied_by: recorded in the ledger
    + version, cluster, port: the cluster to act on
    """
    st = _server(version, cluster, port, extensions=True)
    if st is None:
        yield from _stopped("databases' schemas", version, cluster)
        return
    dbs = st.get("databases") or {}
    names = {b for spec in desired.values() for b in spec.bundles}
    bundles = {b: load_bundle(b) for b in sorted(names)}
    plan: list[Stmt] = []
    for name, spec in desired.items():
        if spec.present and spec.bundles:
            have = dbs.get(name) or {}
            plan += plan_migrations(
                spec, bundles, have.get("ledger"), targets, variables, applied_by, have.get("ledger_owner")
            )
    yield from _apply("databases' schemas", port, plan, sum(1 for s in desired.values() if s.bundles))
