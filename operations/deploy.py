"""The hearthdb deploy functions, the public API for a user's own pyinfra deploy: `converge(cfg)`,
`validate(cfg)`, `schema_status(cfg)`, `nuclear_reset(cfg, confirm)`, `backup_now(cfg, kind)`,
`restore_cluster(cfg, confirm, spec)`, `drill(cfg, spec)` (README, "Your own deploy"). `cfg` is a
HearthConfig (`operations.config.load_config(path)`)."""

from __future__ import annotations

import getpass
import socket

from pyinfra import host, state
from pyinfra.api import HiddenValue, deploy

from . import backups, conffiles, lock, objects, postdeploy, reset, server, status
from .config import HearthConfig, ai_database, bundle_dirs, cron_database_of
from .desired import derived_settings, desired_databases, desired_roles, package_names, template1
from .errors import ConfigError
from .facts import HostResources, SshHostKeys
from .migrations import load_bundles, parse_targets
from .paths import TEMPLATES
from .pgbackrest import conf_content, dump_script, stanza_name, timer_units
from .plan import ClusterDesired
from .render import effective_settings, hba_content, settings_content
from .reset import check_confirmation
from .secrets import backup_key, backup_passphrase, complete_passwords
from .target import BACKUP_KEY, BACKUP_KNOWN_HOSTS, CREATECLUSTER_CONF, DUMP_SCRIPT, PGBACKREST_CONF, Cluster
from .tls import server_files


@deploy("hearthdb")
def converge(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None = None, migrate_to: str | None = None) -> None:
    """Converge the host to `cfg` (packages, cluster, files, roles, databases, extensions, migrations).

    `passwords` (role -> HiddenValue) may leave roles out: those are resolved like group_data/all.py does
    (HEARTHDB_PASSWORD_<ROLE>, then the secrets file). `migrate_to` is `"hm:0,pp:1"` as in `--data`.
    Everything is computed and checked before the first operation, so bad input touches no host.
    A host named as `backup.repository.host` is a repository host only (see `repository`)."""
    repo_host = repository_host(cfg)
    if repo_host is not None and host.name == repo_host:
        converge_repository(cfg)
        return
    stanza = stanza_name(cfg.backup, host.name) if cfg.backup.enabled else None
    target = Cluster.of(cfg.cluster)
    if stanza is not None:
        backups.check_cipher(cfg.backup, stanza, target)
    dbs = desired_databases(cfg)
    roles = desired_roles(cfg, complete_passwords(cfg, passwords))
    derived = derived_settings(cfg, host.get_fact(HostResources) if cfg.sizing.enabled else {})
    inside = ClusterDesired(
        roles=roles,
        databases=dbs,
        template1=template1(cfg),
        bundles=load_bundles(dbs, bundle_dirs(cfg)),
        cron_database=cron_database_of(cfg),
        targets=parse_targets(migrate_to),
        variables={"embedding_dim": str(cfg.schema_.embedding_dim)},
        applied_by=f"{getpass.getuser()}@{socket.gethostname()}",
        allow_drop=cfg.allow_drop,
        managed_settings=tuple(effective_settings(cfg, dbs, derived, stanza)),
    )

    lock.take_lock(name="deploy lock")
    cluster_files(cfg, target, dbs, derived, stanza, repo_host)
    server.running(name=f"cluster {target.key} running", target=target)
    conffiles.config_file(name="pg_hba", content=hba_content(cfg), kind="hba", target=target)
    objects.cluster_objects(name=objects.NAME, desired=inside, target=target)
    if stanza is not None:
        backups.stanza(name="backup stanza", backup=cfg.backup, stanza=stanza, target=target)
    if stanza is not None and cfg.backup.dumps.enabled:
        owners = {name: spec.owner for name, spec in dbs.items() if spec.present}
        script = dump_script(owners, target.port, cfg.backup.dumps)
        backups.postgres_directory(name="dumps directory", path=cfg.backup.dumps.dir, mode="700")
        conffiles.installed_file(
            name="dumps script", path=DUMP_SCRIPT, content=script, owner="root", mode="755", secret=False
        )
    backups.timers(name="backup timers", units=timer_units(cfg.backup, stanza or "", DUMP_SCRIPT))
    lock.release_lock(name="deploy lock release")


def cluster_files(
    cfg: HearthConfig,
    target: Cluster,
    dbs: dict,
    derived: dict,
    stanza: str | None,
    repo_host: str | None,
) -> None:
    """Packages, the cluster (created stopped) and every file it reads before it starts: TLS, pgBackRest's
    configuration, the settings. Shared by the deploy and by restore.py (which rebuilds what Debian keeps
    outside the data directory before restoring into it)."""
    c = cfg.cluster
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
    if stanza is not None:
        backup_files(cfg, stanza, target, repo_host)
    conffiles.config_file(
        name="settings", content=settings_content(cfg, dbs, derived, stanza), kind="settings", target=target
    )


def shared_database(cfg: HearthConfig) -> str | None:
    """Where validation results are recorded: the shared database's eng_patterns; None without one."""
    return cfg.shared_db.name if cfg.shared_db.enabled else None


def repository_host(cfg: HearthConfig) -> str | None:
    """The inventory name of the repository host, None when backups stay on each database host; a
    name that is not in the inventory is an error before anything runs."""
    name = cfg.backup.repository.host if cfg.backup.enabled else None
    if name is not None and state.inventory.get_host(name, None) is None:
        known = ", ".join(h.name for h in state.inventory) or "none"
        raise ConfigError(f"backup.repository.host: {name!r} is not in the inventory (hosts: {known})")
    return name


def database_hosts(cfg: HearthConfig) -> list[str]:
    """Every inventory host but the repository host."""
    return [h.name for h in state.inventory if h.name != cfg.backup.repository.host]


def converge_repository(cfg: HearthConfig) -> None:
    """A repository host: the SFTP account every database host's key may log in to, and nothing else."""
    repo = cfg.backup.repository
    keys = [backup_key(cfg, name)[1] for name in database_hosts(cfg)]
    lock.take_lock(name="deploy lock")
    backups.repository_host(name="backup repository account", user=repo.user, path=repo.path, keys=keys)
    lock.release_lock(name="deploy lock release")


def backup_files(cfg: HearthConfig, stanza: str, target: Cluster, repo_host: str | None) -> None:
    """pgBackRest's configuration (with the passphrase: mode 600, never shown) and, for a repository
    host, this host's SFTP key and the repository host's pinned host key."""
    address = None
    if repo_host is not None:
        other = state.inventory.get_host(repo_host)
        address = cfg.backup.repository.address or other.data.get("ssh_hostname") or other.name
        host_keys = other.get_fact(SshHostKeys)
        if not host_keys:
            raise ConfigError(f"backup.repository.host: {repo_host} has no SSH host key to pin")
        private, public = backup_key(cfg, host.name)
        conffiles.installed_file(name="backup SFTP key", path=BACKUP_KEY, content=private.unmask())
        conffiles.installed_file(
            name="backup SFTP public key", path=f"{BACKUP_KEY}.pub", content=public + "\n", mode="644", secret=False
        )
        conffiles.installed_file(
            name="backup repository host key",
            path=BACKUP_KNOWN_HOSTS,
            content="".join(f"{address} {k}\n" for k in host_keys),
            mode="644",
            secret=False,
        )
    passphrase = backup_passphrase(cfg)
    content = conf_content(cfg.backup, stanza, target, address, passphrase.unmask() if passphrase else None)
    conffiles.installed_file(name="pgBackRest configuration", path=PGBACKREST_CONF, content=content)
    if repo_host is None:
        backups.postgres_directory(name="backup repository directory", path=cfg.backup.repository.path)


@deploy("hearthdb validation")
def validate(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None = None, migrate_to: str | None = None) -> None:
    """The boolean checks alone (also run at the end of every deploy): `pyinfra inventory.py validate.py`.
    Arguments as for `converge`; passwords left out are resolved the same way."""
    repo_host = repository_host(cfg)
    if repo_host is not None and host.name == repo_host:
        host.noop("repository host: its backups are validated on the database hosts")
        return
    dbs = desired_databases(cfg)
    roles = desired_roles(cfg, complete_passwords(cfg, passwords))
    postdeploy.validate(
        name="validation",
        packages=package_names(cfg, dbs),
        roles=roles,
        databases=dbs,
        ai_databases={ai: ai_database(cfg, ai) for ai in cfg.ai_names},
        shared_database=shared_database(cfg),
        bundles=load_bundles(dbs, bundle_dirs(cfg)),
        targets=parse_targets(migrate_to),
        tls=cfg.tls.enabled,
        target=Cluster.of(cfg.cluster),
        cron_database=cron_database_of(cfg),
        backup=cfg.backup if cfg.backup.enabled else None,
        stanza=stanza_name(cfg.backup, host.name) if cfg.backup.enabled else None,
    )


@deploy("hearthdb nuclear reset")
def nuclear_reset(cfg: HearthConfig, confirm: str | None) -> None:
    """Back up, then purge PostgreSQL from the host: `pyinfra inventory.py reset.py --data confirm=HOST`."""
    repo_host = repository_host(cfg)
    if repo_host is not None and host.name == repo_host:
        host.noop("repository host: nothing of PostgreSQL to reset")
        return
    reset.nuclear_reset(
        name="nuclear reset (backup first)",
        confirm=confirm,
        backup_dir=cfg.backup_dir,
        target=Cluster.of(cfg.cluster),
        stanza=stanza_name(cfg.backup, host.name) if cfg.backup.enabled else None,
    )


@deploy("hearthdb schema status")
def schema_status(cfg: HearthConfig, migrate_to: str | None = None) -> None:
    """Applied and pending migrations per database, and the backups when declared:
    `pyinfra inventory.py status.py`."""
    repo_host = repository_host(cfg)
    if repo_host is not None and host.name == repo_host:
        host.noop("repository host: its backups are shown by the database hosts")
        return
    dbs = desired_databases(cfg)
    status.schema_status(
        name="schema status",
        databases=dbs,
        bundles=load_bundles(dbs, bundle_dirs(cfg)),
        targets=parse_targets(migrate_to),
        target=Cluster.of(cfg.cluster),
    )
    if cfg.backup.enabled:
        status.backup_status(
            name="backup status", stanza=stanza_name(cfg.backup, host.name), target=Cluster.of(cfg.cluster)
        )


def _backup_host(cfg: HearthConfig, what: str) -> str | None:
    """This host's stanza for a backup command; None on the repository host (nothing to do there)."""
    if not cfg.backup.enabled:
        raise ConfigError(f"backup.enabled: false; {what} needs the backup section (backup.enabled: true)")
    repo_host = repository_host(cfg)
    if repo_host is not None and host.name == repo_host:
        host.noop(f"repository host: no {what} here")
        return None
    return stanza_name(cfg.backup, host.name)


@deploy("hearthdb backup")
def backup_now(cfg: HearthConfig, kind: str | None = None) -> None:
    """Take one backup now: `pyinfra inventory.py backup.py [--data type=full|diff|incr]` (default full)."""
    stanza = _backup_host(cfg, "backup")
    if stanza is not None:
        kind = kind or "full"
        backups.take_backup(name=f"{kind} backup", stanza=stanza, kind=kind, target=Cluster.of(cfg.cluster))


@deploy("hearthdb restore")
def restore_cluster(cfg: HearthConfig, confirm: str | None, spec: str | None = None, source: str | None = None) -> None:
    """Restore in place: `pyinfra inventory.py restore.py --data confirm=HOST [--data target=...]`.
    The cluster's files outside the data directory are rebuilt from the declared state first (a host
    rebuilt from nothing gets its packages and cluster); then run deploy.py to converge the rest.
    `source` (`--data from=STANZA`) restores another host's stanza onto this one: a replacement host."""
    stanza = _backup_host(cfg, "restore")
    if stanza is None:
        return
    check_confirmation(confirm, host.name, what="restore")  # before any operation: a refusal touches nothing
    target = Cluster.of(cfg.cluster)
    dbs = desired_databases(cfg)
    derived = derived_settings(cfg, host.get_fact(HostResources) if cfg.sizing.enabled else {})
    lock.take_lock(name="deploy lock")
    cluster_files(cfg, target, dbs, derived, stanza, repository_host(cfg))
    conffiles.config_file(name="pg_hba", content=hba_content(cfg), kind="hba", target=target)
    backups.restore(
        name=f"restore {target.key}",
        stanza=source or stanza,
        spec=spec,
        confirm=confirm,
        target=target,
        own=source in (None, stanza),
    )
    lock.release_lock(name="deploy lock release")


@deploy("hearthdb drill")
def drill(cfg: HearthConfig, spec: str | None = None) -> None:
    """A restore drill onto a scratch cluster: `pyinfra inventory.py drill.py [--data target=...]`."""
    stanza = _backup_host(cfg, "drill")
    if stanza is not None:
        backups.drill(
            name="restore drill",
            stanza=stanza,
            spec=spec,
            target=Cluster.of(cfg.cluster),
            shared_database=shared_database(cfg),
        )
