"""The hearthdb deploy functions, the public API for a user's own pyinfra deploy:
`converge(cfg)`, `validate(cfg)`, `schema_status(cfg)`, `nuclear_reset(cfg, confirm)` (README, "Your own
deploy"). `cfg` is a HearthConfig (`operations.config.load_config(path)`)."""

from __future__ import annotations

import getpass
import socket

from pyinfra import host
from pyinfra.api import HiddenValue, deploy

from . import conffiles, lock, objects, postdeploy, reset, server, status
from .config import HearthConfig, ai_database
from .desired import derived_settings, desired_databases, desired_roles, package_names, template1
from .facts import HostResources
from .migrations import load_bundles, parse_targets
from .paths import TEMPLATES
from .plan import ClusterDesired
from .render import effective_settings, hba_content, settings_content
from .secrets import complete_passwords
from .target import CREATECLUSTER_CONF, Cluster
from .tls import server_files


@deploy("hearthdb")
def converge(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None = None, migrate_to: str | None = None) -> None:
    """Converge the host to `cfg` (packages, cluster, files, roles, databases, extensions, migrations).

    `passwords` (role -> HiddenValue) may leave roles out: those are resolved like group_data/all.py does
    (HEARTHDB_PASSWORD_<ROLE>, then the secrets file). `migrate_to` is `"hm:0,pp:1"` as in `--data`.
    Everything is computed and checked before the first operation, so bad input touches no host."""
    c = cfg.cluster
    target = Cluster.of(cfg.cluster)
    dbs = desired_databases(cfg)
    roles = desired_roles(cfg, complete_passwords(cfg, passwords))
    derived = derived_settings(cfg, host.get_fact(HostResources) if cfg.sizing.enabled else {})
    inside = ClusterDesired(
        roles=roles,
        databases=dbs,
        template1=template1(cfg),
        bundles=load_bundles(dbs),
        targets=parse_targets(migrate_to),
        variables={"embedding_dim": str(cfg.schema_.embedding_dim)},
        applied_by=f"{getpass.getuser()}@{socket.gethostname()}",
        allow_drop=cfg.allow_drop,
        managed_settings=tuple(effective_settings(cfg, dbs, derived)),
    )

    lock.take_lock(name="deploy lock")
    conffiles.installed_file(
        name="no automatic cluster on package install",
        path=CREATECLUSTER_CONF,
        content=(TEMPLATES / "createcluster.conf.j2").read_text(),
        owner="root",
        mode="644",
        secret=False,
    )
    server.packages(name="PostgreSQL packages", names=package_names(cfg, dbs))
    server.cluster(
        name=f"cluster {target.key}",
        target=target,
        locale=c.locale,
        encoding=c.encoding,
        data_checksums=c.data_checksums,
    )
    if cfg.tls.enabled:
        names = [host.data.get("ssh_hostname") or host.name]
        names += [a for a in c.listen_addresses if a not in ("*", "localhost", "::", "0.0.0.0")]
        crt, key = server_files(cfg.tls, host.name, names)
        conffiles.installed_file(
            name="TLS certificate", path=target.tls_cert, content=crt.decode(), mode="644", secret=False
        )
        conffiles.installed_file(name="TLS key", path=target.tls_key, content=key.decode(), mode="600")
    conffiles.config_file(name="settings", content=settings_content(cfg, dbs, derived), kind="settings", target=target)
    server.running(name=f"cluster {target.key} running", target=target)
    conffiles.config_file(name="pg_hba", content=hba_content(cfg), kind="hba", target=target)
    objects.cluster_objects(name=objects.NAME, desired=inside, target=target)
    lock.release_lock(name="deploy lock release")


@deploy("hearthdb validation")
def validate(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None = None, migrate_to: str | None = None) -> None:
    """The boolean checks alone (also run at the end of every deploy): `pyinfra inventory.py validate.py`.
    Arguments as for `converge`; passwords left out are resolved the same way."""
    dbs = desired_databases(cfg)
    roles = desired_roles(cfg, complete_passwords(cfg, passwords))
    postdeploy.validate(
        name="validation",
        packages=package_names(cfg, dbs),
        roles=roles,
        databases=dbs,
        ai_databases={ai: ai_database(cfg, ai) for ai in cfg.ai_names},
        shared_database=cfg.shared_db.name,
        targets=parse_targets(migrate_to),
        tls=cfg.tls.enabled,
        target=Cluster.of(cfg.cluster),
    )


@deploy("hearthdb nuclear reset")
def nuclear_reset(cfg: HearthConfig, confirm: str | None) -> None:
    """Back up, then purge PostgreSQL from the host: `pyinfra inventory.py reset.py --data confirm=HOST`."""
    reset.nuclear_reset(
        name="nuclear reset (backup first)", confirm=confirm, backup_dir=cfg.backup_dir, target=Cluster.of(cfg.cluster)
    )


@deploy("hearthdb schema status")
def schema_status(cfg: HearthConfig, migrate_to: str | None = None) -> None:
    """Applied and pending migrations per database: `pyinfra inventory.py status.py`."""
    status.schema_status(
        name="schema status",
        databases=desired_databases(cfg),
        targets=parse_targets(migrate_to),
        target=Cluster.of(cfg.cluster),
    )
