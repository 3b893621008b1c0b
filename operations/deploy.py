"""The hearthdb deploy functions, the public API for a user's own pyinfra deploy: `converge(cfg)`,
`validate(cfg)`, `schema_status(cfg)`, `nuclear_reset(cfg, confirm)`, `backup_now(cfg, kind)`,
`restore_cluster(cfg, confirm, spec)`, `drill(cfg, spec)` (README, "Your own deploy"). `cfg` is a
HearthConfig (`operations.config.load_config(path)`)."""

from __future__ import annotations

import getpass
import shlex
import socket
from dataclasses import dataclass

from pyinfra import host, state
from pyinfra.api import HiddenValue, deploy

from . import backups, conffiles, hanodes, lock, monitoring, objects, postdeploy, reset, server, status
from .config import HearthConfig, ai_database, bundle_dirs, cron_database_of, stanza_of
from .desired import (
    derived_settings,
    desired_databases,
    desired_roles,
    monitor_database,
    package_names,
    stat_statements_declared,
    template1,
)
from .errors import ConfigError
from .facts import HostResources, SshHostKeys
from .ha import (
    base_conf,
    dcs_config,
    etcd_environment,
    etcd_hosts,
    haproxy_config,
    hba_lines,
    ident_content,
    leader_condition,
    member_address,
    patroni_config,
    pgbouncer_ini,
    pooled_databases,
    split_settings,
)
from .hanodes import probe_args
from .migrations import load_bundles, parse_targets
from .paths import TEMPLATES
from .pgbackrest import conf_content, dump_script, timer_units
from .plan import ClusterDesired
from .render import effective_settings, hba_content, settings_content
from .reset import check_confirmation
from .secrets import backup_key, backup_passphrase, complete_passwords
from .target import (
    BACKUP_KEY,
    BACKUP_KNOWN_HOSTS,
    CREATECLUSTER_CONF,
    DUMP_SCRIPT,
    ETCD_DEFAULTS,
    HAPROXY_CONF,
    PGBACKREST_CONF,
    PGBOUNCER_INI,
    PGBOUNCER_USERLIST,
    Cluster,
)
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
    ha = ha_context(cfg)
    if ha is not None and host.name not in cfg.ha.members:
        lock.take_lock(name="deploy lock")
        etcd_files(cfg, ha)
        lock.release_lock(name="deploy lock release")
        return
    stanza = stanza_of(cfg, host.name)
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
        monitor_database=monitor_database(cfg, dbs),
        bundles=load_bundles(dbs, bundle_dirs(cfg)),
        cron_database=cron_database_of(cfg),
        targets=parse_targets(migrate_to),
        variables={"embedding_dim": str(cfg.schema_.embedding_dim)},
        applied_by=f"{getpass.getuser()}@{socket.gethostname()}",
        allow_drop=cfg.allow_drop,
        managed_settings=tuple(effective_settings(cfg, dbs, derived, stanza)),
        ha=cfg.ha if ha is not None else None,
        pooler=cfg.pooler if cfg.pooler.enabled else None,
    )

    lock.take_lock(name="deploy lock")
    cluster_files(cfg, target, dbs, derived, stanza, repo_host, ha)
    if ha is None:
        server.running(name=f"cluster {target.key} running", target=target)
    else:
        patroni_files(cfg, ha, target, roles, dbs, derived)
        hanodes.debian_running(
            name=f"cluster {target.key} running (before Patroni)", target=target, probe=ha.probe, bootstrap=ha.bootstrap
        )
    if ha is not None or cfg.pooler.enabled or cfg.monitoring.enabled:
        ident = ident_content(cfg.pooler, monitoring.ident_lines(cfg.monitoring))
        conffiles.installed_file(name="pg_ident", path=target.ident_file, content=ident, mode="640", secret=False)
    extra = monitoring.hba_lines(cfg.monitoring) + hba_lines(
        cfg.ha if ha else None,
        ha.addresses if ha else {},
        cfg.pooler,
        cfg.tls.require,
        endpoint_direct=ha is not None and cfg.ha.endpoint.enabled and not cfg.pooler.enabled,
    )
    conffiles.config_file(
        name="pg_hba",
        content=hba_content(cfg, extra),
        kind="hba",
        target=target,
        restart=ha.restart if ha else None,
    )
    objects.cluster_objects(name=objects.NAME, desired=inside, target=target, replica_copy=ha is not None)
    if ha is not None:
        patroni_cluster(cfg, ha, target, dbs, derived, stanza)
    if cfg.pooler.enabled:
        pooler_files(cfg, target, dbs, ha)
    if ha is not None and cfg.ha.endpoint.enabled:
        backend_port = cfg.pooler.port if cfg.pooler.enabled else target.port
        hanodes.service_file(
            name="HAProxy endpoint",
            path=HAPROXY_CONF,
            content=haproxy_config(cfg.ha, ha.addresses, backend_port),
            unit="haproxy.service",
            probe=ha.probe,
            action="reload",
            check="haproxy -c -q -f {}",
        )
    if stanza is not None:
        backups.stanza(
            name="backup stanza", backup=cfg.backup, stanza=stanza, target=target, probe=ha.probe if ha else None
        )
    if stanza is not None and cfg.backup.dumps.enabled:
        owners = {name: spec.owner for name, spec in dbs.items() if spec.present}
        script = dump_script(owners, target.port, cfg.backup.dumps)
        backups.postgres_directory(name="dumps directory", path=cfg.backup.dumps.dir, mode="700")
        conffiles.installed_file(
            name="dumps script", path=DUMP_SCRIPT, content=script, owner="root", mode="755", secret=False
        )
    # on an HA member each job runs only where Patroni leads: one backup of the shared stanza per schedule
    condition = leader_condition(cfg.ha.rest_port) if ha is not None else None
    backups.timers(name="backup timers", units=timer_units(cfg.backup, stanza or "", DUMP_SCRIPT, condition))
    exporter_files(cfg, target, dbs, stanza)
    lock.release_lock(name="deploy lock release")


def exporter_files(cfg: HearthConfig, target: Cluster, dbs: dict, stanza: str | None) -> None:
    """Debian's Prometheus exporters (monitoring): each one's /etc/default file and its unit; the
    PostgreSQL exporter's queries file first (its digest is in the environment file, so a change
    restarts it)."""
    mon = cfg.monitoring
    kinds = monitoring.exporters(mon, cfg.pooler.enabled, stanza is not None)
    if not kinds:
        return
    chosen = [monitoring.EXPORTERS[k] for k in kinds]
    probe = probe_args(target, "", [], 0, [e.unit for e in chosen], [e.defaults for e in chosen])  # units, files
    queries = monitoring.queries_yaml(mon)
    conffiles.installed_file(
        name="PostgreSQL exporter queries",
        path=monitoring.POSTGRES_EXPORTER_QUERIES,
        content=queries,
        owner="root",
        mode="644",
        secret=False,
    )
    content = {
        "postgres": monitoring.postgres_exporter_environment(mon, stat_statements_declared(dbs), queries),
        "pgbouncer": monitoring.pgbouncer_exporter_environment(mon, cfg.pooler.port),
        "pgbackrest": monitoring.pgbackrest_exporter_environment(mon, PGBACKREST_CONF, stanza or ""),
    }
    for kind, exporter in zip(kinds, chosen, strict=True):
        hanodes.service_file(
            name=f"{kind} exporter", path=exporter.defaults, content=content[kind], unit=exporter.unit, probe=probe
        )


def cluster_files(
    cfg: HearthConfig,
    target: Cluster,
    dbs: dict,
    derived: dict,
    stanza: str | None,
    repo_host: str | None,
    ha: HaContext | None = None,
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
    server.packages(name="PostgreSQL packages", names=package_names(cfg, dbs) + ha_packages(cfg))
    if ha is not None:
        etcd_files(cfg, ha)
    server.cluster(
        name=f"cluster {target.key}",
        target=target,
        locale=c.locale,
        encoding=c.encoding,
        data_checksums=c.data_checksums,
        create=ha is None or ha.bootstrap,
    )
    if ha is not None:  # a member Patroni copies the cluster to has no Debian configuration directory yet
        backups.postgres_directory(name="cluster configuration directory", path=target.etc, mode="755")
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
        name="settings",
        content=settings_content(cfg, dbs, derived, stanza, patroni=ha is not None),
        kind="settings",
        target=target,
        restart=ha.restart if ha else None,
    )


@dataclass(frozen=True)
class HaContext:
    """What every HA operation of one host needs: the members' addresses, its probe (the HaState fact's
    argument), whether it bootstraps, and how Patroni restarts it."""

    addresses: dict[str, str]
    probe: str
    bootstrap: bool
    restart: str
    etcd: list[str]


def ha_context(cfg: HearthConfig) -> HaContext | None:
    """None without `ha`; every named host must be in the inventory, and every inventory host in the
    cluster (as a member or an etcd member), before anything runs."""
    if not cfg.ha.enabled:
        return None
    ha = cfg.ha
    names = [h.name for h in state.inventory]
    for key, listed in (("members", ha.members), ("etcd", ha.etcd_members)):
        for i, name in enumerate(listed):
            if name not in names:
                raise ConfigError(f"ha.{key}[{i}]: {name!r} is not in the inventory (hosts: {', '.join(names)})")
    repo = cfg.backup.repository.host if cfg.backup.enabled else None
    outside = [n for n in names if n not in ha.members and n not in ha.etcd_members and n != repo]
    if outside:
        raise ConfigError(f"ha.members: inventory host {outside[0]!r} is neither a member nor an etcd member")
    addresses = {
        n: member_address(ha, n, state.inventory.get_host(n).data.get("ssh_hostname"))
        for n in dict.fromkeys([*ha.members, *ha.etcd_members])
    }
    target = Cluster.of(cfg.cluster)
    etcd = [f"http://{a}" for a in etcd_hosts(ha, addresses)]
    units = [target.patroni_unit, target.postgresql_unit, "etcd.service", "haproxy.service", "pgbouncer.service"]
    files = [ETCD_DEFAULTS, HAPROXY_CONF, PGBOUNCER_INI, PGBOUNCER_USERLIST]
    # before Patroni takes over (a host being converted) Debian's tools still restart it
    restart = (
        f"if systemctl is-active -q {shlex.quote(target.patroni_unit)}; then "
        f"patronictl -c {shlex.quote(target.patroni_config)} restart {shlex.quote(ha.scope)} "
        f"{shlex.quote(host.name)} --pending --force; else pg_ctlcluster {target.shell_args} restart; fi"
    )
    return HaContext(
        addresses=addresses,
        probe=probe_args(target, ha.scope, etcd, ha.rest_port, units, files),
        bootstrap=host.name == ha.members[0],
        restart=restart,
        etcd=etcd,
    )


def ha_packages(cfg: HearthConfig) -> list[str]:
    out = []
    if cfg.ha.enabled:
        # python3-etcd: Patroni's etcd3 client (its dependency may be met by the Consul one instead)
        out += ["patroni", "python3-etcd", "etcd-client"]
        if host.name in cfg.ha.etcd_members:
            out.append("etcd-server")
        if cfg.ha.endpoint.enabled:
            out.append("haproxy")
    if cfg.pooler.enabled:
        out.append("pgbouncer")
    backup = cfg.backup.enabled and host.name != cfg.backup.repository.host
    out += [monitoring.EXPORTERS[k].package for k in monitoring.exporters(cfg.monitoring, cfg.pooler.enabled, backup)]
    return out


def etcd_files(cfg: HearthConfig, ha: HaContext) -> None:
    """etcd on its members: hearthdb's environment file, then the unit (re)started; a host that is only
    an etcd member gets its packages here."""
    if host.name not in cfg.ha.etcd_members:
        return
    if host.name not in cfg.ha.members:
        server.packages(name="etcd packages", names=["etcd-server", "etcd-client"])
    hanodes.service_file(
        name="etcd member",
        path=ETCD_DEFAULTS,
        content=etcd_environment(cfg.ha, host.name, ha.addresses),
        unit="etcd.service",
        probe=ha.probe,
    )


def patroni_files(cfg: HearthConfig, ha: HaContext, target: Cluster, roles: dict, dbs: dict, derived: dict) -> None:
    """start.conf (Debian never starts the cluster itself), the base file Patroni includes, and
    Patroni's own configuration (with the replication password: mode 600, never shown)."""
    conffiles.installed_file(
        name="start.conf: manual", path=target.start_conf, content="manual\n", mode="644", secret=False
    )
    conffiles.installed_file(
        name="Patroni base configuration",
        path=target.patroni_base_conf,
        content=base_conf(target),
        mode="644",
        secret=False,
    )
    password = roles[cfg.ha.replication_user].password
    dcs = split_settings(effective_settings(cfg, dbs, derived))[1]
    content = patroni_config(
        cfg.ha, host.name, ha.addresses, target, cfg.cluster.listen_addresses, password.unmask(), dcs
    )
    conffiles.installed_file(name="Patroni configuration", path=target.patroni_config, content=content)


def patroni_cluster(
    cfg: HearthConfig, ha: HaContext, target: Cluster, dbs: dict, derived: dict, stanza: str | None
) -> None:
    """Patroni takes over (or copies) the cluster, its dynamic configuration is converged from the
    leader, and pending restarts are done by Patroni: replicas first, then the leader."""
    hanodes.patroni_member(
        name="Patroni member",
        target=target,
        probe=ha.probe,
        bootstrap=ha.bootstrap,
        rest_port=cfg.ha.rest_port,
        etcd=ha.etcd,
        scope=cfg.ha.scope,
    )
    dcs = split_settings(effective_settings(cfg, dbs, derived, stanza))[1]
    hanodes.dcs_config(
        name="Patroni dynamic configuration",
        desired=dcs_config(cfg.ha, dcs),
        probe=ha.probe,
        rest_port=cfg.ha.rest_port,
    )
    for leader in (False, True):
        hanodes.pending_restart(
            name=f"restart pending ({'leader' if leader else 'replicas'})",
            target=target,
            probe=ha.probe,
            scope=cfg.ha.scope,
            leader=leader,
        )


def pooler_files(cfg: HearthConfig, target: Cluster, dbs: dict, ha: HaContext | None) -> None:
    """PgBouncer: an empty userlist (every user is looked up), its configuration, the service."""
    managed = [name for name, spec in dbs.items() if spec.present]
    tls = None
    if cfg.tls.enabled:
        tls = ("require" if cfg.tls.require else "prefer", target.tls_cert, target.tls_key)
    ini = pgbouncer_ini(cfg.pooler, pooled_databases(cfg.pooler, managed), target, tls)
    probe = (
        ha.probe if ha else probe_args(target, "", [], 0, ["pgbouncer.service"], [PGBOUNCER_INI, PGBOUNCER_USERLIST])
    )
    conffiles.installed_file(
        name="PgBouncer userlist (empty: users are looked up)", path=PGBOUNCER_USERLIST, content="", mode="600"
    )
    hanodes.service_file(
        name="PgBouncer",
        path=PGBOUNCER_INI,
        content=ini,
        unit="pgbouncer.service",
        probe=probe,
        owner="postgres",
        mode="640",
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
    """The hosts that back up into the repository: every inventory host but the repository host (with
    ha, the members: an etcd member alone has no cluster)."""
    names = [h.name for h in state.inventory if h.name != cfg.backup.repository.host]
    return [n for n in names if n in cfg.ha.members] if cfg.ha.enabled else names


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
    ha = ha_context(cfg)
    if ha is not None and host.name not in cfg.ha.members:
        host.noop("an etcd member only: validated through the members' Patroni")
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
        stanza=stanza_of(cfg, host.name),
        ha=cfg.ha if ha is not None else None,
        probe=ha.probe if ha is not None else None,
        exporters=cfg.monitoring if cfg.monitoring.enabled else None,
        kinds=tuple(monitoring.exporters(cfg.monitoring, cfg.pooler.enabled, cfg.backup.enabled)),
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
        # an HA member may be a replica, which pgBackRest cannot back up: it is dumped (pg_dumpall) instead
        stanza=stanza_of(cfg, host.name) if not cfg.ha.enabled else None,
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
        stanza = stanza_of(cfg, host.name) or ""
        status.backup_status(name="backup status", stanza=stanza, target=Cluster.of(cfg.cluster))


def _backup_host(cfg: HearthConfig, what: str) -> str | None:
    """This host's stanza for a backup command; None on the repository host (nothing to do there)."""
    if not cfg.backup.enabled:
        raise ConfigError(f"backup.enabled: false; {what} needs the backup section (backup.enabled: true)")
    repo_host = repository_host(cfg)
    if repo_host is not None and host.name == repo_host:
        host.noop(f"repository host: no {what} here")
        return None
    if cfg.ha.enabled and host.name not in cfg.ha.members:
        host.noop(f"an etcd member only: no {what} here")
        return None
    return stanza_of(cfg, host.name)


@deploy("hearthdb backup")
def backup_now(cfg: HearthConfig, kind: str | None = None) -> None:
    """Take one backup now: `pyinfra inventory.py backup.py [--data type=full|diff|incr]` (default full)."""
    stanza = _backup_host(cfg, "backup")
    if stanza is not None:
        kind = kind or "full"
        ha = ha_context(cfg)
        backups.take_backup(
            name=f"{kind} backup",
            stanza=stanza,
            kind=kind,
            target=Cluster.of(cfg.cluster),
            probe=ha.probe if ha else None,
        )


@deploy("hearthdb restore")
def restore_cluster(cfg: HearthConfig, confirm: str | None, spec: str | None = None, source: str | None = None) -> None:
    """Restore in place: `pyinfra inventory.py restore.py --data confirm=HOST [--data target=...]`.
    The cluster's files outside the data directory are rebuilt from the declared state first (a host
    rebuilt from nothing gets its packages and cluster); then run deploy.py to converge the rest.
    `source` (`--data from=STANZA`) restores another host's stanza onto this one: a replacement host."""
    if cfg.ha.enabled:
        raise ConfigError(
            "restore: an in-place restore of an HA cluster is not supported yet (Patroni and every replica "
            "would have to be rebuilt around the restored leader); drill.py proves the cluster's backups"
        )
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
        ha = ha_context(cfg)
        backups.drill(
            name="restore drill",
            stanza=stanza,
            spec=spec,
            target=Cluster.of(cfg.cluster),
            shared_database=shared_database(cfg),
            probe=ha.probe if ha else None,
        )


@deploy("hearthdb switchover")
def switchover(cfg: HearthConfig, to: str | None) -> None:
    """Hand the leadership to member `to` (`pyinfra inventory.py switchover.py --data to=HOST`): run
    by the current leader through Patroni; every other host has nothing to do."""
    ha = ha_context(cfg)
    if ha is None:
        raise ConfigError("switchover: the ha section is not enabled")
    if not to or to not in cfg.ha.members:
        raise ConfigError(f"switchover: --data to=HOST must name a member ({', '.join(cfg.ha.members)}); got {to!r}")
    if host.name not in cfg.ha.members:
        host.noop("an etcd member only")
        return
    hanodes.switchover(
        name=f"switchover to {to}", target=Cluster.of(cfg.cluster), probe=ha.probe, scope=cfg.ha.scope, to=to
    )
