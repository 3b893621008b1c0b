"""The desired state of one host, expanded from the config: every role and database by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import (
    Database,
    Extension,
    HearthConfig,
    Role,
    Scalar,
    ai_database,
    declared_role_names,
)

if TYPE_CHECKING:  # only a type here: the desired state stays free of pyinfra
    from pyinfra.api import HiddenValue


def setting_text(value: Scalar) -> str:
    """A parameter value as PostgreSQL stores it in pg_db_role_setting / reads it from a file."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@dataclass(frozen=True)
class RoleSpec:
    name: str
    login: bool = True
    superuser: bool = False
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    settings: tuple[tuple[str, str], ...] = ()
    member_of: tuple[str, ...] = ()
    # The password to hold (None: not managed here, whatever the role has stays); `no_password` is set
    # only by an explicit `password: false`, the one way a stored password is ever removed.
    password: HiddenValue | None = field(default=None, repr=False, compare=False)
    no_password: bool = False
    present: bool = True


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    owner: str
    encoding: str
    locale: str
    extensions: tuple[Extension, ...] = ()
    connect: tuple[str, ...] = ()  # roles granted CONNECT besides the owner; PUBLIC never
    present: bool = True
    bundles: tuple[str, ...] = ()  # schema bundles migrated in this database, in order


def _role_defaults(cfg: HearthConfig, name: str) -> dict:
    if name == cfg.shared_db.owner:
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
            login=role.login,
            superuser=role.superuser,
            createdb=role.createdb,
            createrole=role.createrole,
            replication=role.replication,
            bypassrls=role.bypassrls,
            connection_limit=role.connection_limit,
            settings=tuple(sorted((k, setting_text(v)) for k, v in role.settings.items())),
            member_of=tuple(sorted(set(role.member_of))),
            password=passwords.get(name),
            no_password=role.password is False,
            present=role.state == "present",
        )
    return out


def desired_databases(cfg: HearthConfig) -> dict[str, DatabaseSpec]:
    monitor = [cfg.shared_db.owner] if cfg.shared_db.monitor else []
    derived: dict[str, Database] = {
        cfg.shared_db.name: Database(owner=cfg.shared_db.owner, connect=cfg.ai_names, bundles=cfg.schema_.shared)
    }
    for ai in cfg.ai_names:
        derived[ai_database(cfg, ai)] = Database(owner=ai, connect=monitor, bundles=cfg.schema_.ai)
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
        exts = db.extensions if db.extensions is not None else cfg.default_extensions
        out[name] = DatabaseSpec(
            name=name,
            owner=db.owner or "",
            encoding=cfg.cluster.encoding,
            locale=cfg.cluster.locale,
            extensions=tuple(exts),
            connect=tuple(sorted(set(db.connect) - {db.owner})),
            present=db.state == "present",
            bundles=tuple(db.bundles or ()),
        )
    return out
