"""The post-deploy validation operation: the checks of `validation` on one fresh reading of the host,
recorded in eng_patterns.

It runs in pyinfra's execution stage only (in `--dry` and during change detection it reports that it
will run), and writes nothing but its result rows, so a converged host still reports no change.
"""

from __future__ import annotations

import json
import shlex
import time

from pyinfra import host, logger, state
from pyinfra.api import StringCommand

from . import monitoring
from .backups import read_backup_state
from .desired import DatabaseSpec, RoleSpec, stat_statements_declared
from .drift import operation
from .facts import PSQL_USER, DebPackageStatus, read_cluster
from .ha import Ha, replica_checks
from .hanodes import HaState
from .migrations import Migration
from .monitoring import Monitoring
from .pgbackrest import Backup, archive_checks
from .psql import SqlCommand
from .report import fail
from .target import Cluster
from .validation import (
    RESULTS_TABLE,
    Check,
    login_checks,
    login_pairs,
    login_script,
    new_run_id,
    passfile,
    record_statements,
    state_checks,
    summary,
    untried,
)


@operation()
def validate(
    packages: list[str],
    roles: dict[str, RoleSpec],
    databases: dict[str, DatabaseSpec],
    ai_databases: dict[str, str],
    shared_database: str | None,
    bundles: dict[str, list[Migration]],
    targets: dict[str, int],
    tls: bool,
    target: Cluster,
    cron_database: str | None = None,
    backup: Backup | None = None,
    stanza: str | None = None,
    ha: Ha | None = None,
    probe: str | None = None,
    exporters: Monitoring | None = None,
    kinds: tuple[str, ...] = (),
):
    """
    Run the named boolean checks, record each in eng_patterns, print a compact table, and fail the
    host if any check is false (after recording).

    + packages: Debian packages that must be installed
    + roles, databases: the desired state
    + ai_databases: AI role -> its database (for the login and isolation checks)
    + shared_database: where results are recorded (eng_patterns); None: in `postgres`, table
      hearthdb.validation_results
    + bundles: the declared bundles' migrations, by name
    + targets: bundle versions the schemas should be at
    + tls: whether TLS is declared (then `ssl` must be on)
    + target: the cluster
    + cron_database: where pg_cron keeps the declared jobs (None: no jobs)
    + backup, stanza: the declared backup section and this host's stanza (when backups are declared)
    + ha, probe: the declared ha section and the HaState argument: each member checks that Patroni runs
      it; the leader checks the replicas (`ha.replica_checks`) and records, a replica records nothing
      (it is read-only; the leader's record covers the cluster)
    + exporters, kinds: the monitoring section and which exporters this host runs (`monitoring.exporters`):
      each must answer and show what it watches
    """
    yield from ()  # an operation is a generator, even one that never yields a command
    if not state.is_executing:
        host.noop("validation runs after the deploy")
        return
    run_id = new_run_id()
    # one fresh reading, every database visited (never the memo): what the checks see is the server
    st = read_cluster(target, visit=True, use_memo=False)
    online = st.get("status") == "online" and st.get("port") == target.port
    checks = state_checks(
        packages,
        host.get_fact(DebPackageStatus, packages=packages),
        online,
        roles,
        databases,
        st,
        bundles,
        targets,
        cron_database,
    )
    if tls:
        checks.append(Check("tls", "", bool((st.get("server") or {}).get("ssl")), "ssl is off"))
    # an HA member in recovery: it archives nothing and records nothing (the leader does both)
    replica = ha is not None and probe is not None and (st.get("server") or {}).get("in_recovery") is True
    if backup is not None and stanza is not None:
        reading = read_backup_state(stanza, target)
        checks += [
            Check(kind, stanza, ok, detail)
            for kind, ok, detail in archive_checks(reading, backup, stanza, time.time(), replica=replica)
        ]
    owners = {n: d.owner for n, d in databases.items() if d.present and n != shared_database}
    pairs = login_pairs(roles, ai_databases, shared_database, int(run_id, 16), owners=owners)
    if online and pairs:
        names = {r for r, _, _ in pairs}
        _, output = host.run_shell_command(
            StringCommand(login_script(target.port, pairs)), _stdin=passfile(roles, names), **PSQL_USER
        )
        lines = list(output.stdout_lines)
        if rest := untried(pairs, lines):  # a failed login ended the chain: ask the rest one by one
            _, output = host.run_shell_command(
                StringCommand(login_script(target.port, rest, chain=False)), _stdin=passfile(roles, names), **PSQL_USER
            )
            lines += output.stdout_lines
        checks += login_checks(pairs, lines)
    if exporters and online:
        _, output = host.run_shell_command(
            StringCommand(
                f"python3 -c {shlex.quote(monitoring.FETCH)} {shlex.quote(monitoring.fetch_argument(exporters, kinds))}"
            )
        )
        answers = json.loads(output.stdout_lines[-1]) if output.stdout_lines else {}
        managed = [n for n, d in databases.items() if d.present]
        statements = stat_statements_declared(databases)
        for kind in kinds:
            checks += [
                Check(name, kind, ok, detail)
                for name, ok, detail in monitoring.exporter_checks(kind, answers.get(kind), managed, statements, stanza)
            ]
    if ha is not None and probe is not None:
        hs = host.get_fact(HaState, probe=probe)
        units = hs.get("units") or {}
        runs = bool((units.get(target.patroni_unit) or {}).get("active"))
        runs = runs and not (units.get(target.postgresql_unit) or {}).get("enabled")
        checks.append(Check("ha_patroni", host.name, runs, "Patroni does not manage the cluster alone"))
        if not replica:
            checks += [
                Check(kind, ha.scope, ok, f"GET /cluster: {kind} false")
                for kind, ok in replica_checks(ha, hs.get("cluster")).items()
            ]
    if online and replica:
        where = "not recorded here: a replica (the leader records)"
    elif online:
        statements = record_statements(checks, host.name, run_id, shared=shared_database is not None)
        record = SqlCommand(target.port, statements, database=shared_database or "postgres")
        ok, output = host.run_shell_command(record, **record.connector_arguments)
        recorded = "recorded" in output.stdout_lines
        table = f"{shared_database}.eng_patterns" if shared_database else f"postgres.{RESULTS_TABLE}"
        where = f"recorded in {table}" if recorded else "not recorded: no eng_patterns table"
        if not ok:
            where = f"not recorded: {' '.join(output.stderr_lines)[:300]}"
    else:
        where = "not recorded: the cluster is not running"
    failed = [c for c in checks if not c.passed]
    logger.info(
        f"{host.print_prefix}validation run {run_id}: {len(checks) - len(failed)}/{len(checks)} checks passed, "
        f"{where}\n" + "\n".join(f"        {line}" for line in summary(checks))
    )
    if failed:
        # Fail the host the way a failing command does (no traceback); recorded above already.
        names = ", ".join(c.name for c in failed[:10]) + (" …" if len(failed) > 10 else "")
        yield fail(f"validation failed: {names}")
        return
    host.noop(f"validation run {run_id}: all {len(checks)} checks passed")
