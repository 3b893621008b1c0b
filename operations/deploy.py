"""The hearthdb deploy functions, the public API for a user's own pyinfra deploy:
`converge(cfg)`, `validate(cfg)`, `schema_status(cfg)`, `nuclear_reset(cfg, confirm)` (README, "Your own
deploy"). `cfg` is a HearthConfig (`operations.config.load_config(path)`)."""

from __future__ import annotations

import getpass
import socket

from pyinfra import host
from pyinfra.api import HiddenValue, deploy

from . import conffiles, hooks, objects, reset, server
from .catalog import packages_for
from .config import HearthConfig, ai_database
from .desired import DatabaseSpec, desired_databases, desired_roles
from .facts import HostResources
from .migrations import parse_targets
from .paths import TEMPLATES
from .render import effective_settings, hba_content, settings_content
from .secrets import complete_passwords
from .sizing import Resources, derive
from .tls import server_files


def package_names(cfg: HearthConfig, databases: dict[str, DatabaseSpec]) -> list[str]:
    v = cfg.cluster.version
    names = {e.name for db in databases.values() for e in db.extensions} | {e.name for e in cfg.template1_extensions}
    return ["postgresql-common", f"postgresql-{v}", *packages_for(v, names, cfg.extra_extensions)]


def with_template1(cfg: HearthConfig, dbs: dict[str, DatabaseSpec]) -> dict[str, DatabaseSpec]:
    """Extensions declared for template1 (so databases that applications create get them too)."""
    if not cfg.template1_extensions:
        return dbs
    t1 = DatabaseSpec(
        "template1", "postgres", cfg.cluster.encoding, cfg.cluster.locale, tuple(cfg.template1_extensions)
    )
    return {**dbs, "template1": t1}


def derived_settings(cfg: HearthConfig) -> dict:
    """Settings sized from the host's resources (one fact), unless sizing is off."""
    if not cfg.sizing.enabled:
        return {}
    res = host.get_fact(HostResources)
    if not res.get("memory"):
        return {}
    return derive(Resources(**res), cfg.sizing.max_connections)


@deploy("hearthdb")
def converge(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None = None, migrate_to: str | None = None) -> None:
    """Converge the host to `cfg` (packages, cluster, files, roles, databases, extensions, migrations).

    `passwords` (role -> HiddenValue) may leave roles out: those are resolved like group_data/all.py does
    (HEARTHDB_PASSWORD_<ROLE>, then the secrets file). `migrate_to` is `"hm:0,pp:1"` as in `--data`.
    Everything is computed and checked before the first operation, so bad input touches no host."""
    c = cfg.cluster
    etc = f"/etc/postgresql/{c.version}/{c.name}"
    dbs = desired_databases(cfg)
    roles = desired_roles(cfg, complete_passwords(cfg, passwords))
    targets = parse_targets(migrate_to)
    where = {"version": c.version, "cluster": c.name, "port": c.port}
    tls = [f"{etc}/hearthdb-server.crt", f"{etc}/hearthdb-server.key"] if cfg.tls.enabled else []
    # every file the deploy writes: their digests are read in one command
    managed = [
        "/etc/postgresql-common/createcluster.d/50-hearthdb.conf",
        *tls,
        f"{etc}/conf.d/50-hearthdb.conf",
        f"{etc}/pg_hba.conf",
    ]

    hooks.take_lock(name="deploy lock")
    conffiles.installed_file(
        name="no automatic cluster on package install",
        path=managed[0],
        content=(TEMPLATES / "createcluster.conf.j2").read_text(),
        owner="root",
        mode="644",
        secret=False,
        managed=managed,
    )
    server.packages(name="PostgreSQL packages", names=package_names(cfg, dbs))
    server.cluster(
        name=f"cluster {c.version}/{c.name}",
        version=c.version,
        cluster_name=c.name,
        port=c.port,
        locale=c.locale,
        encoding=c.encoding,
        data_checksums=c.data_checksums,
    )
    if cfg.tls.enabled:
        names = [host.data.get("ssh_hostname") or host.name]
        names += [a for a in c.listen_addresses if a not in ("*", "localhost", "::", "0.0.0.0")]
        crt, key = server_files(cfg.tls, host.name, names)
        conffiles.installed_file(
            name="TLS certificate", path=tls[0], content=crt.decode(), mode="644", secret=False, managed=managed
        )
        conffiles.installed_file(name="TLS key", path=tls[1], content=key.decode(), mode="600", managed=managed)
    derived = derived_settings(cfg)
    conffiles.config_file(
        name="settings",
        path=f"{etc}/conf.d/50-hearthdb.conf",
        content=settings_content(cfg, dbs, derived),
        kind="settings",
        managed=managed,
        **where,
    )
    server.running(name=f"cluster {c.version}/{c.name} running", version=c.version, cluster_name=c.name)
    conffiles.system_overrides(
        name="settings overridden by ALTER SYSTEM", managed=list(effective_settings(cfg, dbs, derived)), **where
    )
    conffiles.config_file(
        name="pg_hba", path=f"{etc}/pg_hba.conf", content=hba_content(cfg), kind="hba", managed=managed, **where
    )
    objects.roles(name="roles", desired=roles, **where)
    objects.databases(name="databases", desired=dbs, allow_drop=cfg.allow_drop, **where)
    objects.extensions(name="extensions", desired=with_template1(cfg, dbs), **where)
    if any(not r.present for r in roles.values()):
        objects.dropped_roles(name="absent roles", desired=roles, allow_drop=cfg.allow_drop, **where)
    objects.migrations(
        name="schema migrations",
        desired=dbs,
        targets=targets,
        variables={"embedding_dim": str(cfg.schema_.embedding_dim)},
        applied_by=f"{getpass.getuser()}@{socket.gethostname()}",
        **where,
    )
    hooks.release_lock(name="deploy lock release")


@deploy("hearthdb validation")
def validate(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None = None, migrate_to: str | None = None) -> None:
    """The boolean checks alone (also run at the end of every deploy): `pyinfra inventory.py validate.py`.
    Arguments as for `converge`; passwords left out are resolved the same way."""
    c = cfg.cluster
    dbs = desired_databases(cfg)
    roles = desired_roles(cfg, complete_passwords(cfg, passwords))
    hooks.validate(
        name="validation",
        packages=package_names(cfg, dbs),
        roles=roles,
        databases=dbs,
        ai_databases={ai: ai_database(cfg, ai) for ai in cfg.ai_names},
        shared_database=cfg.shared_db.name,
        targets=parse_targets(migrate_to),
        tls=cfg.tls.enabled,
        version=c.version,
        cluster=c.name,
        port=c.port,
    )


@deploy("hearthdb nuclear reset")
def nuclear_reset(cfg: HearthConfig, confirm: str | None) -> None:
    """Back up, then purge PostgreSQL from the host: `pyinfra inventory.py reset.py --data confirm=HOST`."""
    c = cfg.cluster
    reset.nuclear_reset(
        name="nuclear reset (backup first)",
        confirm=confirm,
        backup_dir=cfg.backup_dir,
        version=c.version,
        cluster=c.name,
        port=c.port,
    )


@deploy("hearthdb schema status")
def schema_status(cfg: HearthConfig, migrate_to: str | None = None) -> None:
    """Applied and pending migrations per database: `pyinfra inventory.py status.py`."""
    c = cfg.cluster
    hooks.schema_status(
        name="schema status",
        databases=desired_databases(cfg),
        targets=parse_targets(migrate_to),
        version=c.version,
        cluster=c.name,
        port=c.port,
    )
