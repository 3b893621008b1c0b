"""The status reports of status.py (they change nothing): applied and pending migrations per database,
and the host's backups."""

from __future__ import annotations

import time

from .backups import read_backup_state
from .desired import DatabaseSpec
from .drift import operation
from .facts import read_cluster
from .migrations import Migration
from .pgbackrest import status_lines
from .report import report_once
from .target import Cluster


@operation()
def schema_status(
    databases: dict[str, DatabaseSpec], bundles: dict[str, list[Migration]], targets: dict[str, int], target: Cluster
):
    """
    Print, per database, each bundle's applied and pending migrations (changes nothing).

    + databases: the desired databases (their `bundles`)
    + bundles: the bundles' migrations, by name
    + targets: bundle versions to reach (default head)
    + target: the cluster
    """
    yield from ()
    report_once("schema status", lambda: _schema_lines(databases, bundles, targets, target))


def _schema_lines(
    databases: dict[str, DatabaseSpec], bundles: dict[str, list[Migration]], targets: dict[str, int], target: Cluster
) -> list[str]:
    have = read_cluster(target, visit=True, use_memo=False).get("databases") or {}
    lines = []
    for name, spec in databases.items():
        if not spec.present or not spec.bundles:
            continue
        applied = {(r["bundle"], r["version"]) for r in (have.get(name) or {}).get("ledger") or []}
        for bundle in spec.bundles:
            migrations = bundles[bundle]
            target_version = targets.get(bundle, len(migrations))
            done = [m for m in migrations if (bundle, m.version) in applied]
            pending = [m.label.split(" ", 1)[1] for m in migrations if m.version <= target_version and m not in done]
            extra = [m.label.split(" ", 1)[1] for m in done if m.version > target_version]
            state_word = "missing" if name not in have else ("at target" if not pending and not extra else "behind")
            lines.append(
                f"{name:<24} {bundle:<6} applied {len(done)}/{len(migrations)}  {state_word}"
                + (f"; pending: {', '.join(pending)}" if pending else "")
                + (f"; to revert: {', '.join(extra)}" if extra else "")
            )
    return lines


@operation()
def backup_status(stanza: str, target: Cluster):
    """
    Print the host's backups: the newest of each type (label, size, age), the archive queue, the
    repository's backup data.

    + stanza: this host's stanza
    + target: the cluster
    """
    yield from ()
    report_once(
        f"backups (stanza {stanza})", lambda: status_lines(read_backup_state(stanza, target), stanza, time.time())
    )
