"""Post-deploy validation: named boolean checks per host, recorded in eng_patterns of the shared database.

The checks reuse the planners: a role, database, extension set or schema is as declared exactly when
its planner has nothing left to do. Logins are tried for real, over the local socket, with each AI's
password (passed on stdin in a temporary passfile only the postgres user can read).
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from .config import NAME_RE
from .desired import DatabaseSpec, RoleSpec
from .errors import PlanError
from .jobs import plan_jobs
from .migrations import Migration, plan_migrations
from .monitoring import VALIDATION_LATEST
from .plan import desired_jobs, plan_all_privileges, plan_databases, plan_extensions, plan_roles
from .statements import Stmt, connect


@dataclass(frozen=True)
class Check:
    kind: str
    subject: str
    passed: bool
    detail: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.subject}" if self.subject else self.kind


def _planned(kind: str, subject: str, plan: Callable[[], list[Stmt]]) -> Check:
    try:
        left = [s.display for s in plan() if s.change]
    except PlanError as e:
        return Check(kind, subject, False, str(e))
    return Check(kind, subject, not left, "; ".join(left)[:500])


def state_checks(
    packages: list[str],
    installed: dict[str, str],
    cluster_online: bool,
    roles: dict[str, RoleSpec],
    databases: dict[str, DatabaseSpec],
    state: dict[str, Any],
    bundles: dict[str, list[Migration]],
    targets: dict[str, int],
    cron_database: str | None = None,
) -> list[Check]:
    """Every check that can be read from facts: pure, so unit tests drive it with canned facts."""
    missing = [p for p in packages if p not in installed]
    out = [
        Check("packages", "", not missing, f"missing: {', '.join(missing)}" if missing else ""),
        Check("cluster_running", "", cluster_online),
    ]
    have_roles = state.get("roles") or {}
    have_dbs = state.get("databases") or {}
    server = state.get("server") or {}
    for name, spec in roles.items():
        if spec.present:
            out.append(_planned("role", name, lambda n=name, s=spec: plan_roles({n: s}, have_roles)))
        else:
            out.append(Check("role_absent", name, name not in have_roles))
    for name, spec in databases.items():
        if not spec.present:
            out.append(Check("database_absent", name, name not in have_dbs))
            continue
        out.append(_planned("database", name, lambda n=name, s=spec: plan_databases({n: s}, have_dbs)))
        out.append(
            _planned(
                "extensions",
                name,
                lambda n=name, s=spec: plan_extensions({n: s}, have_dbs, state.get("available_extensions")),
            )
        )
        if spec.grants:
            out.append(_planned("privileges", name, lambda n=name, s=spec: plan_all_privileges({n: s}, have_dbs)))
        if spec.bundles:
            have = have_dbs.get(name) or {}
            out.append(
                _planned(
                    "schema",
                    name,
                    lambda s=spec, h=have: plan_migrations(
                        s, bundles, h.get("ledger"), targets, {}, "", h.get("ledger_owner")
                    ),
                )
            )
    if cron_database is not None:
        jobs = desired_jobs(databases)
        have_jobs = (have_dbs.get(cron_database) or {}).get("cron_jobs")
        out.append(_planned("jobs", cron_database, lambda: plan_jobs(jobs, have_jobs)))
    pending = server.get("pending_restart") or []
    unapplied = server.get("settings_not_applied") or []
    detail = "; ".join(
        [f"pending restart: {', '.join(pending)}"] * bool(pending)
        + [f"not in effect: {', '.join(unapplied)}"] * bool(unapplied)
    )
    out.append(Check("settings_live", "", not pending and not unapplied, detail))
    return out


# AIs whose logins are tried end to end per run. Every AI's role, password verifier and database ACL is
# checked from the catalog on every run; the real logins rotate with the run id so that all AIs are
# covered over successive runs while a run's cost stays flat in the number of AIs.
LOGIN_PROBES = 4


def login_pairs(
    roles: dict[str, RoleSpec],
    ai_dbs: dict[str, str],
    shared: str | None,
    seed: int,
    limit: int = LOGIN_PROBES,
    owners: dict[str, str] | None = None,
) -> list[tuple[str, str, bool]]:
    """(role, database, should_connect) to try: an AI into its own database and the shared one (yes),
    and into the next AI's database (no), for `limit` AIs starting at `seed`; and the owner of each other
    database (`owners`, database -> owner) into it, up to `limit` of them."""
    ais = [a for a in ai_dbs if roles.get(a) is not None and roles[a].password is not None]
    if len(ais) > limit:
        start = seed % len(ais)
        chosen = [*ais[start:], *ais[:start]][:limit]
    else:
        chosen = ais
    pairs = []
    for ai in chosen:
        pairs += [(ai, ai_dbs[ai], True), *([(ai, shared, True)] if shared else [])]
        if len(ais) > 1:
            other = ais[(ais.index(ai) + 1) % len(ais)]
            pairs.append((ai, ai_dbs[other], False))
    ai_names = set(ai_dbs.values())
    others = [
        (o, db, True)
        for db, o in (owners or {}).items()
        if db not in ai_names and roles.get(o) is not None and roles[o].password is not None and roles[o].login
    ]
    return pairs + others[:limit]


def passfile(roles: dict[str, RoleSpec], names: set[str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace(":", "\\:")

    return "".join(f"*:*:*:{esc(n)}:{esc(roles[n].password.unmask())}\n" for n in sorted(names) if roles[n].password)


# Turns the probe chain's output into `role db ok` / `role db fail <message>` lines.
_CHAIN_AWK = (
    '/^hearthdb-probe /{ if (p != "") print p " fail " m; p = $2 " " $3; m = ""; next } '
    '/^hearthdb-result ok/{ print p " ok"; p = ""; next } '
    '{ if (p != "") m = m $0 " " } END { if (p != "") print p " fail " m }'
)


def login_script(port: int, pairs: list[tuple[str, str, bool]], chain: bool = True) -> str:
    r"""Tries each (role, database) over the local socket with the passfile on stdin and prints
    `role db ok` or `role db fail <message>` per pair. Only names are on the command line.

    A psql process start costs more than the login itself, so the logins that should succeed run
    as one psql `\connect` chain; each that should be refused gets its own psql (a failed
    `\connect` ends a script), all at once beside the chain. The pairs a failed chain left untried
    are asked again with `chain=False` (every pair its own psql)."""
    for role, db, _ in pairs:
        if not (NAME_RE.match(role) and NAME_RE.match(db)):
            raise ValueError(f"login probe: unexpected name {role!r}@{db!r}")
    conn = f"host=/var/run/postgresql port={int(port)} connect_timeout=5"
    script = ["\\set ON_ERROR_STOP 0"]
    for r, d, allowed in pairs:
        if allowed and chain:
            script += [
                f"\\warn hearthdb-probe {r} {d}",
                f"\\connect '{conn} dbname={d} user={r}'",
                "\\unset hearthdb_ok",
                f"SELECT 1 AS hearthdb_ok WHERE current_user = '{r}' AND current_database() = '{d}' \\gset",
                "\\if :{?hearthdb_ok}",
                "\\warn hearthdb-result ok",
                "\\endif",
            ]
    single = " ".join(shlex.quote(f"{r}:{d}") for r, d, allowed in pairs if not (allowed and chain))
    return (
        't=$(mktemp); trap \'rm -f "$t" "$t.chain"\' EXIT; chmod 600 "$t"; cat > "$t"; export PGPASSFILE="$t"; '
        f"for p in {single}; do r=${{p%%:*}}; d=${{p#*:}}; "
        f'{{ if out=$(psql -X -A -t -w -c "SELECT 1" "{conn} dbname=$d user=$r" 2>&1); '
        'then echo "$r $d ok"; else echo "$r $d fail $(echo "$out" | tr "\\n" " ")"; fi; } & done; '
        f"psql -X -A -t -q -p {int(port)} -d postgres > \"$t.chain\" 2>&1 <<'HEARTHDB_PROBES'\n"
        + "\n".join(script)
        + "\nHEARTHDB_PROBES\n"
        f'wait; awk {shlex.quote(_CHAIN_AWK)} "$t.chain"'
    )


def untried(pairs: list[tuple[str, str, bool]], output: list[str]) -> list[tuple[str, str, bool]]:
    """The pairs `output` (of login_script) has no answer for."""
    answered = {tuple(line.split(" ", 2)[:2]) for line in output if len(line.split(" ", 2)) >= 3}
    return [p for p in pairs if (p[0], p[1]) not in answered]


def login_checks(pairs: list[tuple[str, str, bool]], output: list[str]) -> list[Check]:
    seen = {}
    for line in output:
        parts = line.split(" ", 3)
        if len(parts) >= 3:
            seen[(parts[0], parts[1])] = (parts[2] == "ok", parts[3] if len(parts) > 3 else "")
    out = []
    for role, db, allowed in pairs:
        ok, message = seen.get((role, db), (None, "not tried"))
        if allowed:
            out.append(Check("login", f"{role}@{db}", ok is True, "" if ok else message))
        else:
            refused = ok is False and "permission denied" in message
            out.append(Check("refused", f"{role}@{db}", refused, "" if refused else message or "connected"))
    return out


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


# Where results go when there is no shared database: in the `postgres` database, same columns as
# eng_patterns but the embedding (created by the validation itself, owned by postgres).
RESULTS_TABLE = "hearthdb.validation_results"
RESULTS_DDL = f"""CREATE SCHEMA IF NOT EXISTS hearthdb;
REVOKE ALL ON SCHEMA hearthdb FROM PUBLIC;
CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  content text NOT NULL, tags text[], strategy_type text, author text, metadata jsonb,
  last_updated timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS validation_results_tags ON {RESULTS_TABLE} USING gin (tags);"""


# The latest verdict of each host, one row per host, in `postgres` whatever else is declared: what the
# monitoring exporter reads (pg_monitor may read it, nobody else but the superuser).
LATEST_DDL = f"""CREATE SCHEMA IF NOT EXISTS hearthdb;
REVOKE ALL ON SCHEMA hearthdb FROM PUBLIC;
GRANT USAGE ON SCHEMA hearthdb TO pg_monitor;
CREATE TABLE IF NOT EXISTS {VALIDATION_LATEST} (
  host text PRIMARY KEY, run_id text NOT NULL, checks int NOT NULL, failed int NOT NULL,
  checked_at timestamptz NOT NULL DEFAULT now());
GRANT SELECT ON {VALIDATION_LATEST} TO pg_monitor;"""


def latest_statements(checks: list[Check], host: str, run_id: str) -> list[Stmt]:
    """The host's row of VALIDATION_LATEST (run in `postgres`)."""
    upsert = sql.SQL(
        "INSERT INTO {} (host, run_id, checks, failed) VALUES ({}, {}, {}, {}) ON CONFLICT (host) DO UPDATE "
        "SET run_id = EXCLUDED.run_id, checks = EXCLUDED.checks, failed = EXCLUDED.failed, checked_at = now()"
    ).format(
        sql.SQL(VALIDATION_LATEST),
        sql.Literal(host),
        sql.Literal(run_id),
        sql.Literal(len(checks)),
        sql.Literal(sum(not c.passed for c in checks)),
    )
    return [Stmt(LATEST_DDL, raw=True), Stmt(upsert.as_string(None))]


def record_statements(checks: list[Check], host: str, run_id: str, shared: bool = True) -> list[Stmt]:
    """INSERT of every result into eng_patterns (strategy_type validation_result), if the table exists;
    without a shared database (`shared` false), into RESULTS_TABLE, made if missing. Then, in `postgres`,
    the host's latest verdict (`latest_statements`)."""
    rows = []
    for c in checks:
        verdict = "passed" if c.passed else "failed"
        meta = {"check": c.name, "host": host, "run_id": run_id, "passed": c.passed, "detail": c.detail}
        rows.append(
            sql.SQL("({}, {}, 'validation_result', 'hearthdb', {}::jsonb)").format(
                sql.Literal(f"{c.name} {verdict} on {host}" + (f": {c.detail}" if c.detail else "")),
                sql.Literal(["validation", "result", verdict, f"check:{c.name}", f"host:{host}", f"run:{run_id}"]),
                sql.Literal(json.dumps(meta)),
            )
        )
    table = sql.SQL("eng_patterns" if shared else RESULTS_TABLE)
    insert = sql.SQL("INSERT INTO {} (content, tags, strategy_type, author, metadata) VALUES {}").format(
        table, sql.SQL(", ").join(rows)
    )
    latest = latest_statements(checks, host, run_id)
    if not shared:
        return [Stmt(RESULTS_DDL, raw=True), Stmt(insert.as_string(None)), Stmt("\\echo recorded"), *latest]
    return [
        Stmt("SELECT to_regclass('public.eng_patterns') IS NOT NULL AS hearthdb_has_patterns \\gset", raw=True),
        Stmt("\\if :hearthdb_has_patterns"),
        Stmt(insert.as_string(None)),
        Stmt("\\echo recorded"),
        Stmt("\\endif"),
        connect("postgres"),
        *latest,
    ]


def summary(checks: list[Check]) -> list[str]:
    """A compact table: one line per kind with its pass count, then one line per failure."""
    kinds: dict[str, list[Check]] = {}
    for c in checks:
        kinds.setdefault(c.kind, []).append(c)
    lines = [
        f"{'ok' if all(c.passed for c in cs) else 'FAIL':<4} {kind:<16} {sum(c.passed for c in cs)}/{len(cs)}"
        for kind, cs in kinds.items()
    ]
    lines += [f"FAIL {c.name}: {c.detail}" for c in checks if not c.passed]
    return lines
