"""The post-deploy hook: validation of the converged host, recorded in eng_patterns.

It runs in pyinfra's execution stage only (in `--dry` and during change detection it reports that it
will run), and writes nothing but its result rows, so a converged host still reports no change.
"""

from __future__ import annotations

import os
import shlex
import socket
import time

from pyinfra import host, logger, state
from pyinfra.api import StringCommand, operation

from .desired import DatabaseSpec, RoleSpec
from .facts import PSQL_USER, DebPackageStatus, pg_clusters, pg_state
from .migrations import load_bundle
from .objects import fail
from .psql import SqlCommand
from .validation import (
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
    shared_database: str,
    targets: dict[str, int],
    tls: bool,
    version: int,
    cluster: str,
    port: int,
):
    """
    Run the named boolean checks, record each in eng_patterns, print a compact table, and fail the
    host if any check is false (after recording).

    + packages: Debian packages that must be installed
    + roles, databases: the desired state
    + ai_databases: AI role -> its database (for the login and isolation checks)
    + shared_database: where results are recorded
    + targets: bundle versions the schemas should be at
    + tls: whether TLS is declared (then `ssl` must be on)
    + version, cluster, port: the cluster
    """
    yield from ()  # an operation is a generator, even one that never yields a command
    if not state.is_executing:
        host.noop("validation runs after the deploy")
        return
    run_id = new_run_id()
    online = bool((pg_clusters().get(f"{version}/{cluster}") or {}).get("online"))
    st = pg_state(version, cluster, port, extensions=True) if online else {}
    bundles = {b: load_bundle(b) for b in sorted({b for d in databases.values() for b in d.bundles})}
    checks = state_checks(
        packages, host.get_fact(DebPackageStatus, packages=packages), online, roles, databases, st, bundles, targets
    )
    if tls:
        checks.append(Check("tls", "", bool((st.get("server") or {}).get("ssl")), "ssl is off"))
    pairs = login_pairs(roles, ai_databases, shared_database, int(run_id, 16))
    if online and pairs:
        names = {r for r, _, _ in pairs}
        _, output = host.run_shell_command(
            StringCommand(login_script(port, pairs)), _stdin=passfile(roles, names), **PSQL_USER
        )
        lines = list(output.stdout_lines)
        if rest := untried(pairs, lines):  # a failed login ended the chain: ask the rest one by one
            _, output = host.run_shell_command(
                StringCommand(login_script(port, rest, chain=False)), _stdin=passfile(roles, names), **PSQL_USER
            )
            lines += output.stdout_lines
        checks += login_checks(pairs, lines)
    if online:
        record = SqlCommand(port, record_statements(checks, host.name, run_id), database=shared_database)
        ok, output = host.run_shell_command(record, **record.connector_arguments)
        recorded = "recorded" in output.stdout_lines
        where = f"recorded in {shared_database}.eng_patterns" if recorded else "not recorded: no eng_patterns table"
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


LOCK_DIR = "/run/hearthdb.lock"  # /run: a reboot clears it
STALE_AFTER = 3600  # seconds: a lock this old is from a run that died


def _root_args() -> dict:
    return {"_sudo": True} if host.data.get("_sudo") else {}


def lock_owner() -> str:
    return f"{socket.gethostname()} {os.getpid()} {int(time.time())}"


def stale(owner: str, now: float, controller: str) -> bool:
    """A lock is stale when its run is known dead (same controller, pid gone) or it is over an hour old."""
    parts = owner.split()
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return True
    name, pid, started = parts[0], int(parts[1]), int(parts[2])
    if now - started > STALE_AFTER:
        return True
    if name == controller:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


@operation()
def take_lock():
    """
    Take the host's deploy lock (a directory in /run) for this run, so that a second deploy started
    meanwhile stops with a clear message instead of racing. Taken when the run executes, not in `--dry`;
    a stale lock (its run died) is taken over.
    """
    yield from ()
    if not state.is_executing:
        host.noop("the deploy lock is taken when the run starts")
        return
    me = lock_owner()
    script = (
        f"if mkdir {LOCK_DIR} 2>/dev/null; then echo {shlex.quote(me)} > {LOCK_DIR}/owner; echo taken; "
        f"else echo held $(cat {LOCK_DIR}/owner 2>/dev/null); fi"
    )
    _, out = host.run_shell_command(StringCommand(script), **_root_args())
    line = " ".join(out.stdout_lines).strip()
    if line == "taken":
        host.noop("deploy lock taken")
        return
    owner = line.removeprefix("held").strip()
    if stale(owner, time.time(), socket.gethostname()):
        host.run_shell_command(StringCommand(f"echo {shlex.quote(me)} > {LOCK_DIR}/owner"), **_root_args())
        host.noop(f"deploy lock taken over from a run that died ({owner or 'unknown'})")
        return
    name, pid, started = [*owner.split(), "?", "?", "0"][:3]
    since = time.strftime("%H:%M:%S UTC", time.gmtime(int(started))) if started.isdigit() else "?"
    message = (
        f"another deploy holds the lock on {host.name} (controller {name}, pid {pid}, since {since}); "
        f"wait for it to finish, or remove {LOCK_DIR} on the host if it died"
    )
    yield fail(message)


@operation()
def release_lock():
    """
    Release the deploy lock this run took (only if it is still ours).
    """
    yield from ()
    if not state.is_executing:
        host.noop("the deploy lock is released when the run ends")
        return
    mine = lock_owner().rsplit(" ", 1)[0]  # controller and pid; the start time may differ
    script = (
        f'o=$(cat {LOCK_DIR}/owner 2>/dev/null || true); case "$o" in {shlex.quote(mine)}\\ *) rm -rf {LOCK_DIR};; esac'
    )
    host.run_shell_command(StringCommand(script), **_root_args())
    host.noop("deploy lock released")


_status_shown: set[str] = set()


@operation()
def schema_status(databases: dict[str, DatabaseSpec], targets: dict[str, int], version: int, cluster: str, port: int):
    """
    Print, per database, each bundle's applied and pending migrations (changes nothing).

    + databases: the desired databases (their `bundles`)
    + targets: bundle versions to reach (default head)
    + version, cluster, port: the cluster
    """
    yield from ()
    if host.name in _status_shown:  # the body runs in detection and again in execution: print once
        host.noop("schema status shown")
        return
    _status_shown.add(host.name)
    have = pg_state(version, cluster, port, extensions=True).get("databases") or {}
    lines = []
    for name, spec in databases.items():
        if not spec.present or not spec.bundles:
            continue
        applied = {(r["bundle"], r["version"]) for r in (have.get(name) or {}).get("ledger") or []}
        for bundle in spec.bundles:
            migrations = load_bundle(bundle)
            target = targets.get(bundle, len(migrations))
            done = [m for m in migrations if (bundle, m.version) in applied]
            pending = [m.label.split(" ", 1)[1] for m in migrations if m.version <= target and m not in done]
            extra = [m.label.split(" ", 1)[1] for m in done if m.version > target]
            state_word = "missing" if name not in have else ("at target" if not pending and not extra else "behind")
            lines.append(
                f"{name:<24} {bundle:<6} applied {len(done)}/{len(migrations)}  {state_word}"
                + (f"; pending: {', '.join(pending)}" if pending else "")
                + (f"; to revert: {', '.join(extra)}" if extra else "")
            )
    logger.info(f"{host.print_prefix}schema status:\n" + "\n".join(f"        {ln}" for ln in lines))
    host.noop("schema status shown")
