"""The one operation for everything inside a running cluster: ALTER SYSTEM overrides, roles, databases
and their grants, extensions, dropped roles, schema migrations.

It reads the server once (the PgState fact with its visit of every database), plans every phase with
`plan.plan_cluster`, shows each phase in `--dry`, and runs each as one psql process.
"""

from __future__ import annotations

from pyinfra import host, logger, state
from pyinfra.api import StringCommand

from . import drift
from .conffiles import reload_script
from .drift import operation
from .facts import psql_base, read_cluster
from .plan import ALTER_SYSTEM, ClusterDesired, Phase, plan_cluster
from .psql import SqlCommand
from .report import fail, show_plan
from .scram import prewarm
from .target import Cluster

# The operation's name in pyinfra's output; its phases are named in `plan.PHASES`.
NAME = "SQL objects"
STOPPED = "the cluster is stopped"


def _note_drift(phase: Phase, missing: set[str]) -> None:
    """drift.py's items of a phase: what each statement says differs, else the statement itself, in the
    database it runs in (a migration: its label). An object that does not exist is one item: what it
    gets once created (its grants, extensions, migrations) is not drift of its own."""
    where = phase.name
    for s in phase.statements:
        if s.database is not None:
            where = "database " + s.database
            continue
        if not s.change or not s.display:
            continue
        if s.drift:
            item = s.drift
        else:
            first = s.display.splitlines()[0][:120]
            # a migration's label: "-- apply hm 0001_eng_patterns"
            item = (
                (where, first[3:], "done", "pending")
                if first.startswith("-- ")
                else (where, phase.name, first, "not applied")
            )
        if item[0] in missing:
            continue
        if item[1] == "exists" and item[2] == "yes":
            missing.add(item[0])
        drift.note(*item)


def _command(target: Cluster, phase: Phase) -> StringCommand:
    if phase.name != ALTER_SYSTEM:
        return SqlCommand(target.port, phase.statements)
    # one statement per line: ALTER SYSTEM cannot run inside the implicit transaction of `psql -c "a; b"`
    script = "\n".join(s.script for s in phase.statements)
    return StringCommand(
        f"set -eu\nrunuser -u postgres -- {psql_base(target.port)}\n{reload_script(target)}", _stdin=script + "\n"
    )


@operation()
def cluster_objects(desired: ClusterDesired, target: Cluster, replica_copy: bool = False):
    """
    Converge what lives inside the cluster, phase by phase (`plan.PHASES`): take back ALTER SYSTEM
    overrides of managed parameters; create roles and converge their attributes, password (a SCRAM
    verifier, sent only when it differs), settings and memberships; create databases from template0 and
    converge their owner and who may connect (never PUBLIC); create or update extensions; drop the roles
    declared absent; migrate schema bundles under a per-database advisory lock.

    + desired: the declared roles, databases, bundles and targets (`plan.ClusterDesired`)
    + target: the cluster
    + replica_copy: a Patroni member that gets its cluster as a copy of the leader: nothing to do while
      it has none
    """
    reading = read_cluster(target, visit=True, use_memo=not drift.active())  # drift: read, never recall
    status = reading.get("status")
    if status != "online" or reading.get("port") != target.port:
        if replica_copy:  # Patroni starts it; a member not yet copied has nothing to converge
            host.noop(f"SQL objects: {target.key} does not run here yet (Patroni starts it)")
            return
        if state.is_executing:
            yield fail(f"cluster {target.key} is not running (stopped during the deploy?); run the deploy again")
            return
        if status != "missing":
            logger.info(f"{host.print_prefix}roles, databases, extensions: {STOPPED}; they are read once it runs")
            host.noop(f"SQL objects: {STOPPED}")
            return
        # no cluster yet (a new host): everything is to be created
    if (reading.get("server") or {}).get("in_recovery"):
        host.noop("SQL objects: a replica (they are converged on the leader)")
        return
    have = reading.get("roles") or {}
    prewarm([(r.password.unmask(), (have.get(n) or {}).get("scram")) for n, r in desired.roles.items() if r.password])
    phases = [p for p in plan_cluster(desired, reading) if p.changes]
    if not phases:
        host.noop(f"{len(desired.roles)} roles and {len(desired.databases)} databases are as declared")
        return
    missing: set[str] = set()
    for phase in phases:
        show_plan(phase.name, [s.display for s in phase.statements if s.display])
        _note_drift(phase, missing)
    for phase in phases:
        if state.is_executing:
            logger.info(f"{host.print_prefix}applying {phase.name} ({sum(s.change for s in phase.statements)} changes)")
        yield _command(target, phase)
