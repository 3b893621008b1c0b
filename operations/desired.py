"""The desired state of one host, computed from the config: every role and database by name, the Debian
packages, the extensions of template1, and the settings derived from the host's resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .catalog import packages_for
from .config import (
    ROLE_ATTRIBUTES,
    Database,
    Extension,
    HearthConfig,
    Role,
    Scalar,
    ai_database,
    cron_database_of,
    declared_role_names,
    system_roles,
)
from .monitoring import MONITOR_DATABASE
from .sizing import Resources, derive

if TYPE_CHECKING:  # only a type here: the desired state stays free of pyinfra
    from pyinfra.api import HiddenValue


def setting_text(value: Scalar) -> str:
    """A parameter value as PostgreSQL stores it in pg_db_role_setting / reads it from a file."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


# The role attributes, in the model's order; a new one is a field of `config.Role` and nothing else.
ROLE_FLAGS = tuple(ROLE_ATTRIBUTES)
_FLAGS_ON = frozenset(f for f in ROLE_FLAGS if Role.model_fields[f].default)


@dataclass(frozen=True)
class RoleSpec:
    name: str
    flags: frozenset[str] = _FLAGS_ON  # the attributes (ROLE_FLAGS) that are on; the others are off
    connection_limit: int = -1
    settings: tuple[tuple[str, str], ...] = ()
    member_of: tuple[str, ...] = ()
    # The password to hold (None: not managed here, whatever the role has stays); `no_password` is set
    # only by an explicit `password: false`, the one way a stored password is ever removed.
    password: HiddenValue | None = field(default=None, repr=False, compare=False)
    no_password: bool = False
    present: bool = True

    def __getattr__(self, attr: str) -> bool:  # spec.login, spec.superuser, ...
        if attr in ROLE_FLAGS:
            return attr in self.flags
        raise AttributeError(attr)


class DatabaseSpec(Database):
    """A database as the planners see it: the declared `config.Database` with every default resolved, and
    the cluster's encoding and locale. Every field of the model is inherited, so a new database attribute
    is one field there (and its planner line)."""

    name: str
    owner: str
    encoding: str
    locale: str
    extensions: tuple[Extension, ...] = ()
    connect: tuple[str, ...] = ()  # roles granted CONNECT besides the owner; PUBLIC never
    bundles: tuple[str, ...] = ()  # schema bundles migrated in this database, in order

    @property
    def present(self) -> bool:
        return self.state == "present"


def _role_defaults(cfg: HearthConfig, name: str) -> dict:
    system = system_roles(cfg).get(name)
    if system is not None:
        return {k: getattr(system, k) for k in system.model_fields_set}
    if cfg.shared_db.enabled and name == cfg.shared_db.owner:
        groups = (["pg_monitor"] if cfg.shared_db.monitor else []) + (
            ["pg_read_all_data"] if cfg.shared_db.read_ai_data else []
        )
        return {"member_of": groups}
    return {}


def desired_roles(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None = None) -> dict[str, RoleSpec]:
    passwords = passwords or {}
    out = {}
    for name in declared_role_names(cfg):
        declared = cfg.roles.get(name)
        values = _role_defaults(cfg, name)
        if declared is not None:
            values.update({k: getattr(declared, k) for k in declared.model_fields_set})
        role = Role(**values)
        out[name] = RoleSpec(
            name=name,
            flags=frozenset(f for f in ROLE_FLAGS if getattr(role, f)),
            connection_limit=role.connection_limit,
            settings=tuple(sorted((k, setting_text(v)) for k, v in role.settings.items())),
            member_of=tuple(sorted(set(role.member_of))),
            password=passwords.get(name),
            no_password=role.password is False,
            present=role.state == "present",
        )
    return out


def desired_databases(cfg: HearthConfig) -> dict[str, DatabaseSpec]:
    shared = cfg.shared_db
    monitor = [shared.owner] if shared.enabled and shared.monitor else []
    derived: dict[str, Database] = {}
    if shared.enabled:
        derived[shared.name] = Database(owner=shared.owner, connect=cfg.ai_names, bundles=cfg.schema_.shared)
    for ai in cfg.ai_names:
        derived[ai_database(cfg, ai)] = Database(owner=ai, connect=monitor, bundles=cfg.schema_.ai)
    cron = cron_database_of(cfg)
    out = {}
    for name in dict.fromkeys([*derived, *cfg.databases]):
        base = derived.get(name)
        declared = cfg.databases.get(name)
        values = base.model_dump(exclude_unset=True) if base else {}
        if declared is not None:
            values.update({k: getattr(declared, k) for k in declared.model_fields_set})
            if base and "connect" in declared.model_fields_set:
                values["connect"] = [*base.connect, *declared.connect]
        db = Database(**values)
        exts = list(db.extensions if db.extensions is not None else cfg.default_extensions)
        if name == cron and not any(e.name == "pg_cron" for e in exts):
            exts.append(Extension(name="pg_cron"))  # the jobs' home: pg_cron is created here
        out[name] = DatabaseSpec(
            **{
                **dict(db),
                "name": name,
                "owner": db.owner or "",
                "encoding": cfg.cluster.encoding,
                "locale": cfg.cluster.locale,
                "extensions": tuple(exts),
                "connect": tuple(sorted(set(db.connect) - {db.owner})),
                "bundles": tuple(db.bundles or ()),
            }
        )
    return out


def package_names(cfg: HearthConfig, databases: dict[str, DatabaseSpec]) -> list[str]:
    """The Debian packages the declared extensions need, with PostgreSQL itself (and pgBackRest when
    backups are declared)."""
    v = cfg.cluster.version
    names = {e.name for db in databases.values() for e in db.extensions} | {e.name for e in cfg.template1_extensions}
    backup = ["pgbackrest"] if cfg.backup.enabled else []
    return ["postgresql-common", f"postgresql-{v}", *packages_for(v, names, cfg.extra_extensions), *backup]


def template1(cfg: HearthConfig) -> DatabaseSpec | None:
    """Extensions declared for template1 (so databases that applications create get them too)."""
    if not cfg.template1_extensions:
        return None
    return DatabaseSpec(
        name="template1",
        owner="postgres",
        encoding=cfg.cluster.encoding,
        locale=cfg.cluster.locale,
        extensions=tuple(cfg.template1_extensions),
    )


def stat_statements_declared(databases: dict[str, DatabaseSpec]) -> bool:
    return any(e.name == "pg_stat_statements" for db in databases.values() if db.present for e in db.extensions)


def monitor_database(cfg: HearthConfig, databases: dict[str, DatabaseSpec]) -> DatabaseSpec | None:
    """`postgres`, where the exporter connects, with pg_stat_statements when monitoring is on and some
    managed database declares it (its view there shows every database's statements)."""
    if not cfg.monitoring.enabled or not stat_statements_declared(databases):
        return None
    return DatabaseSpec(
        name=MONITOR_DATABASE,
        owner="postgres",
        encoding=cfg.cluster.encoding,
        locale=cfg.cluster.locale,
        extensions=(Extension(name="pg_stat_statements"),),
    )


def derived_settings(cfg: HearthConfig, resources: dict) -> dict[str, Scalar]:
    """Settings sized from the host's resources (the HostResources fact), unless sizing is off."""
    if not cfg.sizing.enabled or not resources.get("memory"):
        return {}
    return derive(Resources(**resources), cfg.sizing.max_connections)
