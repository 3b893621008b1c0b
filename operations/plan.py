"""Pure planning: desired state + facts -> the statements that close the difference.

No pyinfra here: `--dry`, the real run and the unit tests all call these same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from .desired import ROLE_FLAGS, DatabaseSpec, RoleSpec
from .errors import PlanError
from .ha import Ha, Pooler, plan_access_functions
from .jobs import plan_jobs
from .migrations import Migration, plan_migrations
from .privileges import new_database_privileges, plan_privileges
from .scram import matches, verifier
from .statements import Stmt, connect, stmt

# Run before a statement that carries a verifier, in the same session: keep it out of the server log,
# pg_stat_statements and pgaudit (patroni does the same).
QUIET = [
    Stmt(s, shown="", change=False)
    for s in (
        "SET log_statement = 'none'",
        "SET log_min_duration_statement = -1",
        "SET log_min_error_statement = 'panic'",
        "SET pg_stat_statements.track_utility = off",
        "SET pgaudit.log = 'none'",
    )
]


def _flag_sql(spec: RoleSpec, only: tuple[str, ...] = ROLE_FLAGS) -> str:
    return " ".join(("" if getattr(spec, f) else "NO") + f.upper() for f in only)


def _password(name: str, spec: RoleSpec) -> Stmt:
    assert spec.password is not None
    v = verifier(spec.password.unmask())
    raw = stmt("ALTER ROLE {} PASSWORD {}", name, sql.Literal(v)).sql
    return Stmt(raw, stmt("ALTER ROLE {} PASSWORD '***'", name).sql).about(
        f"role {name}", "password", "(secret)", "differs"
    )


def _settings(name: str, spec: RoleSpec, have: list[str] | None) -> list[Stmt]:
    current = dict(item.split("=", 1) for item in have or [])
    desired = dict(spec.settings)
    out = [
        stmt("ALTER ROLE {} SET {} = {}", name, key, sql.Literal(value)).about(
            f"role {name}", f"setting {key}", value, current.get(key)
        )
        for key, value in desired.items()
        if current.get(key) != value
    ]
    out += [
        stmt("ALTER ROLE {} RESET {}", name, key).about(f"role {name}", f"setting {key}", None, current[key])
        for key in sorted(set(current) - set(desired))
    ]
    return out


def _memberships(name: str, spec: RoleSpec, have: list[str]) -> list[Stmt]:
    out = [
        stmt("GRANT {} TO {}", group, name).about(f"role {name}", f"member of {group}", True, False)
        for group in spec.member_of
        if group not in have
    ]
    out += [
        stmt("REVOKE {} FROM {}", group, name).about(f"role {name}", f"member of {group}", False, True)
        for group in have
        if group not in spec.member_of
    ]
    return out


def plan_role_drops(
    desired: dict[str, RoleSpec], actual: dict[str, dict[str, Any]], allow_drop: bool = False
) -> list[Stmt]:
    """DROP ROLE for roles declared absent that exist (run after databases are dropped)."""
    out = []
    for name, spec in desired.items():
        if not spec.present and name in actual:
            if not allow_drop:
                raise PlanError(f"roles.{name}: declared absent, but allow_drop is false")
            out.append(stmt("DROP ROLE {}", name).about(f"role {name}", "exists", False, True))
    return out


def plan_roles(desired: dict[str, RoleSpec], actual: dict[str, dict[str, Any]]) -> list[Stmt]:
    out: list[Stmt] = []
    secret = False
    for name, spec in desired.items():
        have = actual.get(name)
        if not spec.present:
            continue  # dropped by plan_role_drops, after the databases they may own
        if have is None:
            limit = int(spec.connection_limit)
            out.append(
                stmt(f"CREATE ROLE {{}} {_flag_sql(spec)} CONNECTION LIMIT {limit}", name).about(
                    f"role {name}", "exists", True, False
                )
            )
            have = {"member_of": [], "settings": None, "scram": None}
        else:
            changed = tuple(f for f in ROLE_FLAGS if bool(have.get(f)) != getattr(spec, f))
            for flag in changed:  # one statement per attribute: each is one item of drift
                out.append(
                    stmt(f"ALTER ROLE {{}} {_flag_sql(spec, (flag,))}", name).about(
                        f"role {name}", flag, getattr(spec, flag), bool(have.get(flag))
                    )
                )
            if have.get("connection_limit", -1) != spec.connection_limit:
                out.append(
                    stmt(f"ALTER ROLE {{}} CONNECTION LIMIT {int(spec.connection_limit)}", name).about(
                        f"role {name}", "connection_limit", spec.connection_limit, have.get("connection_limit")
                    )
                )
        if spec.password is not None and not matches(spec.password.unmask(), have.get("scram")):
            out.append(_password(name, spec))
            secret = True
        elif spec.no_password and have.get("has_password"):
            out.append(stmt("ALTER ROLE {} PASSWORD NULL", name).about(f"role {name}", "password", "none", "set"))
        out += _settings(name, spec, have.get("settings"))
        out += _memberships(name, spec, have.get("member_of") or [])
    return (QUIET + out) if secret else out


def _acl_item(item: str) -> tuple[str, str, str]:
    """`"hearthminds=c/logos"` -> ("hearthminds", "c", "logos"); PUBLIC's grantee is ""."""
    grantee, _, rest = item.partition("=")
    privs, _, grantor = rest.partition("/")
    return grantee.strip('"'), privs, grantor.strip('"')


def acl_after_owner_change(acl: list[str] | None, old: str, new: str) -> list[str] | None:
    """The ACL PostgreSQL leaves after `ALTER ... OWNER TO new` (aclnewowner): the old owner is replaced
    by the new one as grantee and as grantor, and entries that then coincide are merged. So the old
    owner's rights go to the new owner, and grants the new owner held collapse into its ownership."""
    if acl is None:
        return None  # the default ACL: it follows the owner by itself
    merged: dict[tuple[str, str], str] = {}
    for item in acl:
        grantee, privs, grantor = _acl_item(item)
        key = (new if grantee == old else grantee, new if grantor == old else grantor)
        merged[key] = merged.get(key, "") + "".join(p for p in privs if p not in merged.get(key, ""))
    return [f"{g}={p}/{by}" for (g, by), p in merged.items()]  # names unquoted: parse_acl reads either


def parse_acl(acl: list[str] | None) -> dict[str, str] | None:
    """`["=Tc/owner", "logos=CTc/logos"]` -> {"PUBLIC": "Tc", "logos": "CTc"}; None for the default ACL."""
    if acl is None:
        return None
    out: dict[str, str] = {}
    for item in acl:
        grantee, _, rest = item.partition("=")
        out[grantee.strip('"') or "PUBLIC"] = rest.split("/", 1)[0]
    return out


def _database_acl(name: str, spec: DatabaseSpec, acl: list[str] | None) -> list[Stmt]:
    """PUBLIC may neither connect nor create temporary tables; CONNECT exactly for the declared roles."""
    entries = parse_acl(acl)
    public = "Tc" if entries is None else entries.get("PUBLIC", "")
    out = []
    if "c" in public or "T" in public:
        out.append(
            stmt("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC", name).about(
                f"database {name}", "PUBLIC may connect", False, True
            )
        )
    entries = entries or {}
    for role in spec.connect:
        if "c" not in entries.get(role, ""):
            out.append(
                stmt("GRANT CONNECT ON DATABASE {} TO {}", name, role).about(
                    f"database {name}", f"{role} may connect", True, False
                )
            )
    for role, privs in sorted(entries.items()):
        if role not in ("PUBLIC", spec.owner, "postgres") and role not in spec.connect and "c" in privs:
            out.append(
                stmt("REVOKE CONNECT ON DATABASE {} FROM {}", name, role).about(
                    f"database {name}", f"{role} may connect", False, True
                )
            )
    return out


def plan_databases(
    desired: dict[str, DatabaseSpec], actual: dict[str, dict[str, Any]], allow_drop: bool = False
) -> list[Stmt]:
    out: list[Stmt] = []
    for name, spec in desired.items():
        have = actual.get(name)
        if not spec.present:
            if have is not None:
                if not allow_drop:
                    raise PlanError(f"databases.{name}: declared absent, but allow_drop is false")
                out.append(stmt("DROP DATABASE {}", name).about(f"database {name}", "exists", False, True))
            continue
        if have is None:
            out.append(
                stmt(
                    "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LOCALE {}",
                    name,
                    spec.owner,
                    sql.Literal(spec.encoding),
                    sql.Literal(spec.locale),
                ).about(f"database {name}", "exists", True, False)
            )
            have = {"acl": None, "owner": spec.owner}
        elif have.get("owner") != spec.owner:
            out.append(
                stmt("ALTER DATABASE {} OWNER TO {}", name, spec.owner).about(
                    f"database {name}", "owner", spec.owner, have.get("owner")
                )
            )
            # the grants below are planned from the ACL the owner change leaves, not the one read before
            have = {**have, "acl": acl_after_owner_change(have.get("acl"), have.get("owner") or "", spec.owner)}
        out += _database_acl(name, spec, have.get("acl"))
    return out


def plan_extensions(
    desired: dict[str, DatabaseSpec],
    actual: dict[str, dict[str, Any]],
    available: dict[str, dict[str, Any]] | None = None,
) -> list[Stmt]:
    """CREATE (as the superuser, since `vector` is not trusted), or ALTER ... UPDATE to the declared
    version, or to the newest available when none is declared; each database's statements follow a
    `\\connect` to it. Also takes CREATE on schema public away from PUBLIC where it was granted, and
    clears the comments of declared extensions (so the database's owner can restore its own dump)."""
    available = available or {}
    out: list[Stmt] = []
    for name, spec in desired.items():
        if not spec.present:
            continue
        have_db = actual.get(name) or {}
        installed = have_db.get("extensions") or {}
        commented = set(have_db.get("commented") or ())
        todo: list[Stmt] = []
        for ext in spec.extensions:
            offer = available.get(ext.name)
            if available and offer is None:
                raise PlanError(
                    f"databases.{name}.extensions: {ext.name!r} is not available on this host "
                    "(is its package installed?)"
                )
            if ext.version and offer and ext.version not in (offer.get("versions") or []):
                raise PlanError(
                    f"databases.{name}.extensions: {ext.name} version {ext.version!r} is not available "
                    f"(available: {', '.join(offer.get('versions') or [])})"
                )
            target = ext.version or (offer or {}).get("default")
            have = installed.get(ext.name)
            if have is None:
                version = sql.SQL(" VERSION {}").format(sql.Literal(ext.version)) if ext.version else sql.SQL("")
                todo.append(
                    stmt("CREATE EXTENSION IF NOT EXISTS {}{}", ext.name, version).about(
                        f"database {name}", f"extension {ext.name}", ext.version or "installed", "missing"
                    )
                )
            elif target and have != target:
                todo.append(
                    stmt("ALTER EXTENSION {} UPDATE TO {}", ext.name, sql.Literal(target)).about(
                        f"database {name}", f"extension {ext.name}", target, have
                    )
                )
            elif ext.name not in commented:
                continue
            # CREATE (and an update script) sets the extension's comment, which only its owner (the
            # superuser) may set: a pg_dump by the database's owner would carry a COMMENT ON EXTENSION
            # that the owner's pg_restore cannot run. Without a comment the dump has none.
            todo.append(
                stmt("COMMENT ON EXTENSION {} IS NULL", ext.name).about(
                    f"database {name}", f"extension {ext.name} comment", "none", "set"
                )
            )
        if have_db.get("public_create"):
            todo.append(
                Stmt("REVOKE CREATE ON SCHEMA public FROM PUBLIC").about(
                    f"database {name}", "PUBLIC may create in schema public", False, True
                )
            )
        if todo:
            out += [connect(name), *todo]
    return out


@dataclass(frozen=True)
class ClusterDesired:
    """Everything declared inside one cluster, as `plan_cluster` takes it."""

    roles: dict[str, RoleSpec]
    databases: dict[str, DatabaseSpec]
    template1: DatabaseSpec | None = None  # its declared extensions (nothing else of it is managed)
    # `postgres` when the exporter connects there and pg_stat_statements is declared: the extension alone
    monitor_database: DatabaseSpec | None = None
    bundles: dict[str, list[Migration]] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)  # bundle -> version (head when absent)
    variables: dict[str, str] = field(default_factory=dict)  # psql variables of the bundles
    applied_by: str = ""
    allow_drop: bool = False
    managed_settings: tuple[str, ...] = ()  # parameters the conf.d file sets
    cron_database: str | None = None  # where pg_cron keeps the jobs (config.cron_database_of)
    ha: Ha | None = None  # pg_rewind's grants for the replication role
    pooler: Pooler | None = None  # PgBouncer's lookup function


@dataclass(frozen=True)
class Phase:
    """One step of the plan, run as one psql process (ALTER SYSTEM: then a reload)."""

    name: str
    statements: list[Stmt]

    @property
    def changes(self) -> bool:
        return any(s.change for s in self.statements)


# The phases in the order they run: each is planned from the state the phases before it leave.
ALTER_SYSTEM = "settings overridden by ALTER SYSTEM"  # run with a reload after it, not in psql alone
PHASES = (
    ALTER_SYSTEM,
    "roles",
    "databases",
    "extensions",
    "privileges",
    "access functions",
    "scheduled jobs",
    "absent roles",
    "schema migrations",
)


def plan_all_privileges(desired: dict[str, DatabaseSpec], dbs: dict[str, dict[str, Any]]) -> list[Stmt]:
    """Each database's declared grants (`privileges.plan_privileges`), after a `\\connect` to it; a
    database this run creates is planned from what template0 gives it. Planned before the migrations:
    what they create as the owner gets the owner's default privileges."""
    out: list[Stmt] = []
    for name, spec in desired.items():
        if not spec.present or not spec.grants:
            continue
        have = dbs.get(name)
        reading = have if have is not None and have.get("schemas") is not None else new_database_privileges()
        todo = plan_privileges(name, spec.owner, spec.grants, reading)
        if todo:
            out += [connect(name), *todo]
    return out


def desired_jobs(desired: dict[str, DatabaseSpec]) -> dict[str, tuple[str, str, Any]]:
    """job name -> (database, role, job) for every declared job."""
    return {
        job_name: (name, job.role or spec.owner, job)
        for name, spec in desired.items()
        if spec.present
        for job_name, job in spec.jobs.items()
    }


def plan_cron(desired: ClusterDesired, dbs: dict[str, dict[str, Any]]) -> list[Stmt]:
    """The jobs' statements, run in the cron database (pg_cron is created there by the extensions phase)."""
    if desired.cron_database is None:
        return []
    jobs = desired_jobs(desired.databases)
    todo = plan_jobs(jobs, (dbs.get(desired.cron_database) or {}).get("cron_jobs"))
    return [connect(desired.cron_database), *todo] if todo else []


def plan_cluster(desired: ClusterDesired, reading: dict[str, Any]) -> list[Phase]:
    """The statements, phase by phase, that take the cluster from one reading (the PgState fact, with its
    visit of every database) to the declared state.

    Each phase is planned from the state the phases before it leave, which the reading already is: roles
    and databases are created before anything in them is planned as missing (a database that does not
    exist yet has no extensions and no ledger, as the reading says), an owner change is modelled by
    `plan_databases` itself (`acl_after_owner_change`), and no later phase depends on what an earlier one
    changes beyond that."""
    roles = reading.get("roles") or {}
    dbs = reading.get("databases") or {}
    server = reading.get("server") or {}
    overridden = sorted(set(server.get("alter_system") or []) & set(desired.managed_settings))
    with_extensions = {**desired.databases}
    for extra in (desired.template1, desired.monitor_database):
        if extra is not None:
            with_extensions[extra.name] = extra
    migrations: list[Stmt] = []
    for name, spec in desired.databases.items():
        if spec.present and spec.bundles:
            have = dbs.get(name) or {}
            migrations += plan_migrations(
                spec,
                desired.bundles,
                have.get("ledger"),
                desired.targets,
                desired.variables,
                desired.applied_by,
                have.get("ledger_owner"),
            )
    statements = [
        [
            stmt("ALTER SYSTEM RESET {}", name).about("postgresql.auto.conf", name, "not set", "set by ALTER SYSTEM")
            for name in overridden
        ],
        plan_roles(desired.roles, roles),
        plan_databases(desired.databases, dbs, desired.allow_drop),
        plan_extensions(with_extensions, dbs, reading.get("available_extensions")),
        plan_all_privileges(desired.databases, dbs),
        plan_access_functions(desired.ha, desired.pooler, reading.get("functions")),
        plan_cron(desired, dbs),
        plan_role_drops(desired.roles, roles, desired.allow_drop),
        migrations,
    ]
    return [Phase(name, stmts) for name, stmts in zip(PHASES, statements, strict=True)]
