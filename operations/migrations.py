"""Schema bundles and the migration plan.

A bundle is a folder `schema/<bundle>/` of `NNNN_<name>.up.sql` / `.down.sql` pairs numbered from 1
without gaps. A file whose first line is `-- hearthdb: no-transaction` runs outside a transaction (for
`CREATE INDEX CONCURRENTLY`); every other one runs in its own transaction together with its ledger row,
so a failing migration leaves schema and ledger as they were. Each database keeps its ledger in
`hearthdb.schema_migrations`; all of a database's work happens under one advisory lock, and each
migration is re-checked against the ledger after the lock is taken, so two concurrent runs apply it once.
Migrations run as the database's owner (`SET ROLE`), so the application owns what they create.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from .desired import DatabaseSpec
from .errors import ConfigError, PlanError
from .paths import SCHEMA
from .statements import Stmt, connect, stmt

NO_TRANSACTION = "-- hearthdb: no-transaction"
FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")
LOCK_KEY = 0x6865617274  # "heart": per database, advisory locks do not cross databases
# The ledger belongs to the database's owner, like everything its migrations create, so that the owner
# can dump and restore the whole database with pg_dump / pg_restore (ledger included, no superuser).
LEDGER = """CREATE SCHEMA IF NOT EXISTS hearthdb;
REVOKE ALL ON SCHEMA hearthdb FROM PUBLIC;
CREATE TABLE IF NOT EXISTS hearthdb.schema_migrations (
    bundle     text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    sha256     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration   interval    NOT NULL,
    applied_by text        NOT NULL,
    PRIMARY KEY (bundle, version)
);"""


def _ledger_to(owner: str) -> list[Stmt]:
    """The ledger given to the database's owner (a new one, or one found with another owner)."""
    return [
        stmt("ALTER SCHEMA {} OWNER TO {}", "hearthdb", owner),
        stmt("ALTER TABLE {}.{} OWNER TO {}", "hearthdb", "schema_migrations", owner),
    ]


@dataclass(frozen=True)
class Migration:
    bundle: str
    version: int
    name: str
    up: str
    down: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.up.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.bundle} {self.version:04d}_{self.name}"

    @staticmethod
    def transactional(text: str) -> bool:
        return not text.lstrip().startswith(NO_TRANSACTION)


def load_bundles(databases: dict[str, DatabaseSpec], dirs: list[Path] | None = None) -> dict[str, list[Migration]]:
    """Every bundle the databases declare, by name, each from the first of `dirs` that holds it
    (`config.bundle_dirs`; default: hearthdb's own schema/)."""
    dirs = dirs or [SCHEMA]
    names = sorted({b for d in databases.values() for b in d.bundles})
    return {b: load_bundle(b, next((d for d in dirs if (d / b).is_dir()), dirs[-1])) for b in names}


def load_bundle(bundle: str, root: Path = SCHEMA) -> list[Migration]:
    folder = root / bundle
    if not folder.is_dir():
        raise ConfigError(f"schema bundle {bundle!r}: no folder {folder}")
    files: dict[tuple[int, str], dict[str, str]] = {}
    for path in sorted(folder.iterdir()):
        m = FILE_RE.match(path.name)
        if not m:
            raise ConfigError(f"schema/{bundle}/{path.name}: not NNNN_name.up.sql or NNNN_name.down.sql")
        files.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = path.read_text(encoding="utf-8")
    out = []
    for i, ((version, name), pair) in enumerate(sorted(files.items()), start=1):
        if version != i:
            raise ConfigError(f"schema/{bundle}: migration {version:04d} found where {i:04d} was expected")
        if set(pair) != {"up", "down"}:
            missing = ({"up", "down"} - set(pair)).pop()
            raise ConfigError(f"schema/{bundle}/{version:04d}_{name}: the {missing} file is missing")
        out.append(Migration(bundle, version, name, pair["up"], pair["down"]))
    return out


def parse_targets(text: str | None) -> dict[str, int]:
    """`"hm:0,pp:1"` (from `--data migrate_to=...`) -> {"hm": 0, "pp": 1}."""
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        bundle, _, version = item.strip().partition(":")
        if not re.fullmatch(r"[a-z0-9_]+", bundle) or not version.isdigit():
            raise ConfigError(f"migrate_to: {item.strip()!r} is not BUNDLE:VERSION (e.g. hm:0)")
        out[bundle] = int(version)
    return out


def _guard(condition: sql.Composable) -> list[Stmt]:
    query = sql.SQL("SELECT {} AS hearthdb_todo \\gset").format(condition).as_string(None)
    return [Stmt(query, shown="", raw=True, change=False), Stmt("\\if :hearthdb_todo", shown="", change=False)]


END_GUARD = Stmt("\\endif", shown="", change=False)


def _ledger_has(m: Migration) -> sql.Composable:
    return sql.SQL("EXISTS (SELECT 1 FROM hearthdb.schema_migrations WHERE bundle = {} AND version = {})").format(
        sql.Literal(m.bundle), sql.Literal(m.version)
    )


def _run_file(m: Migration, text: str, owner: str, ledger: Stmt, direction: str) -> list[Stmt]:
    body = Stmt(text.rstrip() + "\n", shown=f"-- {direction} {m.label}", raw=True)
    as_owner = stmt("SET ROLE {}", owner)
    as_owner = Stmt(as_owner.sql, shown="", change=False)
    reset = Stmt("RESET ROLE", shown="", change=False)
    if Migration.transactional(text):
        return [Stmt("BEGIN", shown=""), as_owner, body, reset, ledger, Stmt("COMMIT", shown="")]
    t0 = Stmt("SELECT clock_timestamp() AS hearthdb_t0 \\gset", shown="", raw=True, change=False)
    return [t0, as_owner, body, reset, ledger]


def _apply(m: Migration, owner: str, applied_by: str) -> list[Stmt]:
    duration = "clock_timestamp() - now()" if Migration.transactional(m.up) else "clock_timestamp() - :'hearthdb_t0'"
    ledger = sql.SQL(
        "INSERT INTO hearthdb.schema_migrations (bundle, version, name, sha256, duration, applied_by) "
        "VALUES ({}, {}, {}, {}, " + duration + ", {})"
    ).format(*(sql.Literal(v) for v in (m.bundle, m.version, m.name, m.sha256, applied_by)))
    row = Stmt(ledger.as_string(None), shown="")
    return [*_guard(sql.SQL("NOT ") + _ledger_has(m)), *_run_file(m, m.up, owner, row, "apply"), END_GUARD]


def _revert(m: Migration, owner: str) -> list[Stmt]:
    delete = stmt(
        "DELETE FROM hearthdb.schema_migrations WHERE bundle = {} AND version = {}",
        sql.Literal(m.bundle),
        sql.Literal(m.version),
    )
    row = Stmt(delete.sql, shown="")
    return [*_guard(_ledger_has(m)), *_run_file(m, m.down, owner, row, "revert"), END_GUARD]


def plan_migrations(
    spec: DatabaseSpec,
    bundles: dict[str, list[Migration]],
    ledger: list[dict[str, Any]] | None,
    targets: dict[str, int],
    variables: dict[str, str],
    applied_by: str,
    ledger_owner: list[str] | None = None,
) -> list[Stmt]:
    """The psql script that brings one database's bundles to their targets (head by default), and gives
    the ledger back to the database's owner where it belongs to another role (`ledger_owner`: the owners
    of schema `hearthdb` and of its table, as read; None when not read)."""
    applied = {(r["bundle"], r["version"]): r for r in ledger or []}
    work: list[Stmt] = []
    for bundle in spec.bundles:
        migrations = bundles[bundle]
        by_version = {m.version: m for m in migrations}
        for (b, version), row in sorted(applied.items()):
            if b != bundle:
                continue
            m = by_version.get(version)
            if m is None:
                raise PlanError(f"{spec.name}: {bundle} {version:04d} is applied but schema/{bundle} has no such file")
            if m.sha256 != row["sha256"]:
                raise PlanError(
                    f"{spec.name}: schema/{bundle}/{version:04d}_{m.name}.up.sql changed after it was applied "
                    f"(ledger sha256 {row['sha256'][:12]}, file {m.sha256[:12]}); restore it and add a new "
                    "migration instead"
                )
        target = targets.get(bundle, len(migrations))
        if target > len(migrations):
            raise PlanError(f"migrate_to: {bundle} has no migration {target:04d} (head is {len(migrations):04d})")
        for m in migrations:
            if m.version <= target and (bundle, m.version) not in applied:
                work += _apply(m, spec.owner, applied_by)
        for m in reversed(migrations):
            if m.version > target and (bundle, m.version) in applied:
                work += _revert(m, spec.owner)
    if not work:
        if ledger is None or ledger_owner is None or set(ledger_owner) == {spec.owner}:
            return []
        return [connect(spec.name), *_ledger_to(spec.owner)]
    setup = [
        connect(spec.name),
        Stmt(f"SELECT pg_advisory_lock({LOCK_KEY})", shown="", change=False),
        Stmt(LEDGER, shown="", raw=True, change=False),
        *(Stmt(s.sql, shown="", change=False) for s in _ledger_to(spec.owner)),
        *(Stmt(f"\\set {k} {v}", shown="", change=False) for k, v in sorted(variables.items())),
    ]
    return [*setup, *work, Stmt(f"SELECT pg_advisory_unlock({LOCK_KEY})", shown="", change=False)]
