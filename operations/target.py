"""The cluster a deploy acts on, and every host path that follows from it (Debian's layout).

Operations take a `Cluster` instead of loose version/name/port arguments; no path or file name of the
host is spelled anywhere else.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

# hearthdb's own files in Debian's drop-in directories
CONF_D_NAME = "50-hearthdb.conf"
CREATECLUSTER_CONF = f"/etc/postgresql-common/createcluster.d/{CONF_D_NAME}"
PATRONI_BASE_NAME = "hearthdb-base.conf"
TLS_CERT_NAME = "hearthdb-server.crt"
TLS_KEY_NAME = "hearthdb-server.key"
# pgBackRest (backup section): hearthdb owns the first configuration file pgBackRest reads
PGBACKREST_CONF = "/etc/pgbackrest/pgbackrest.conf"
# the HA stack (ha, pooler): the tools' own files, owned by hearthdb
ETCD_DEFAULTS = "/etc/default/etcd"
HAPROXY_CONF = "/etc/haproxy/haproxy.cfg"
PGBOUNCER_INI = "/etc/pgbouncer/pgbouncer.ini"
PGBOUNCER_USERLIST = "/etc/pgbouncer/userlist.txt"
PGBACKREST_SPOOL = "/var/spool/pgbackrest"
PGBACKREST_LOG = "/var/log/pgbackrest"
SYSTEMD_UNITS = "/etc/systemd/system"
DUMP_SCRIPT = "/usr/local/lib/hearthdb/hearthdb-dumps"  # the scheduled logical dumps (backup.dumps)
# a database host's SFTP key for its repository host, and that host's public key (postgres's files)
BACKUP_KEY = "/var/lib/postgresql/.ssh/hearthdb-backup"
BACKUP_KNOWN_HOSTS = "/var/lib/postgresql/.ssh/hearthdb-backup-known-hosts"
# on a repository host: the SFTP account's sshd rules and authorized keys
SSHD_BACKUP_CONF = "/etc/ssh/sshd_config.d/hearthdb-backup.conf"
SSHD_BACKUP_KEYS = "/etc/ssh/hearthdb-backup-keys"
SSH_HOST_KEYS = "/etc/ssh/ssh_host_*_key.pub"  # a glob: every key type sshd offers
# Where postgresql-common and PostgreSQL keep everything (what a nuclear reset purges).
HOST_ROOTS = ("/var/lib/postgresql", "/etc/postgresql", "/etc/postgresql-common", "/var/log/postgresql")


@dataclass(frozen=True)
class Cluster:
    version: int
    name: str
    port: int

    @classmethod
    def of(cls, declared: Any) -> Cluster:
        """The target of a declared `cluster:` section (`config.Cluster`)."""
        return cls(declared.version, declared.name, declared.port)

    @property
    def key(self) -> str:
        """As postgresql-common names it: "17/main"."""
        return f"{self.version}/{self.name}"

    @property
    def etc(self) -> str:
        return f"/etc/postgresql/{self.version}/{self.name}"

    @property
    def conf_d_file(self) -> str:
        return f"{self.etc}/conf.d/{CONF_D_NAME}"

    @property
    def postgresql_conf(self) -> str:
        return f"{self.etc}/postgresql.conf"

    @property
    def hba_file(self) -> str:
        return f"{self.etc}/pg_hba.conf"

    @property
    def ident_file(self) -> str:
        return f"{self.etc}/pg_ident.conf"

    @property
    def start_conf(self) -> str:
        return f"{self.etc}/start.conf"

    @property
    def patroni_base_conf(self) -> str:
        """Patroni's `custom_conf`: the base file its postgresql.conf includes (ha)."""
        return f"{self.etc}/{PATRONI_BASE_NAME}"

    @property
    def patroni_instance(self) -> str:
        """Debian's instance name, `17-main`: unit patroni@17-main, file /etc/patroni/17-main.yml."""
        return f"{self.version}-{self.name}"

    @property
    def patroni_config(self) -> str:
        return f"/etc/patroni/{self.patroni_instance}.yml"

    @property
    def patroni_unit(self) -> str:
        return f"patroni@{self.patroni_instance}.service"

    @property
    def postgresql_unit(self) -> str:
        return f"postgresql@{self.patroni_instance}.service"

    @property
    def patroni_pgpass(self) -> str:
        return f"/var/lib/postgresql/.hearthdb-patroni-{self.patroni_instance}.pgpass"

    @property
    def tls_cert(self) -> str:
        return f"{self.etc}/{TLS_CERT_NAME}"

    @property
    def tls_key(self) -> str:
        return f"{self.etc}/{TLS_KEY_NAME}"

    @property
    def data_directory(self) -> str:
        """Debian's default; `pg_lsclusters` (the PgClusters fact) reports where an existing one is."""
        return f"/var/lib/postgresql/{self.version}/{self.name}"

    def drill_directory(self, stanza: str) -> str:
        """The scratch data directory of a restore drill (removed when the drill ends)."""
        return f"/var/lib/postgresql/hearthdb-drill-{self.version}-{stanza}"

    @property
    def bindir(self) -> str:
        return f"/usr/lib/postgresql/{self.version}/bin"

    @property
    def visit_memo(self) -> str:
        """The rows of the last visit of every database (see `visitmemo`)."""
        return f"/var/lib/postgresql/.hearthdb-visit-{self.version}-{self.name}"

    @property
    def shell_args(self) -> str:
        """`17 main`, as pg_ctlcluster and pg_lsclusters take them."""
        return f"{int(self.version)} {shlex.quote(self.name)}"

    def managed_files(self, tls: bool) -> list[str]:
        """Every file a deploy writes for this cluster, in the order it writes them."""
        return [CREATECLUSTER_CONF, *([self.tls_cert, self.tls_key] if tls else []), self.conf_d_file, self.hba_file]
