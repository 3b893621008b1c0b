"""The schema status report: applied and pending migrations per database (changes nothing)."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import operation

from .desired import DatabaseSpec
from .facts import read_cluster
from .migrations import load_bundle
from .target import Cluster

_status_shown: set[str] = set()


@operation()
def schema_status(databases: dict[str, DatabaseSpec], targets: dict[str, int], target: Cluster):
    """
    Print, per database, each bundle's applied and pending migrations (changes nothing).

    + databases: the desired databases (their `bundles`)
    + targets: bundle versions to reach (default head)
    + target: the cluster
    """
    yield from ()
    if host.name in _status_shown:  # the body runs in detection and again in execution: print once
        host.noop("schema status shown")
        return
    _status_shown.add(host.name)
    have = read_cluster(target, visit=True, use_memo=False).get("databases") or {}
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
