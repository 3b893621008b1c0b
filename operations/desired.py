"""The desired state of one host, expanded from the config: every role and database by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Extension, HearthConfig, ai_database


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


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    owner: str
    encoding: str
    locale: str
    extensions: tuple[Extension, ...] = field(default_factory=tuple)


def desired_roles(cfg: HearthConfig) -> dict[str, RoleSpec]:
    roles = {cfg.shared_db.owner: RoleSpec(cfg.shared_db.owner)}
    for ai in cfg.ai_names:
        roles[ai] = RoleSpec(ai)
    return roles


def desired_databases(cfg: HearthConfig) -> dict[str, DatabaseSpec]:
    def spec(name: str, owner: str) -> DatabaseSpec:
        return DatabaseSpec(
            name=name,
            owner=owner,
            encoding=cfg.cluster.encoding,
            locale=cfg.cluster.locale,
            extensions=tuple(cfg.default_extensions),
        )

    dbs = {cfg.shared_db.name: spec(cfg.shared_db.name, cfg.shared_db.owner)}
    for ai in cfg.ai_names:
        name = ai_database(cfg, ai)
        dbs[name] = spec(name, ai)
    return dbs
