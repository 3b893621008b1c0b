"""The nuclear reset: back up, stop PostgreSQL, purge packages, configuration and data, so that a
normal deploy rebuilds the host from nothing. Guarded: it refuses unless the user names the host."""

from __future__ import annotations

import shlex
import time

from pyinfra import host

from .drift import operation
from .errors import ConfigError
from .facts import PgClusters
from .pgbackrest import backup_command
from .target import HOST_ROOTS, Cluster


def check_confirmation(confirm: str | None, host_name: str, what: str = "nuclear reset") -> None:
    """`--data confirm=NAME[,NAME]` must name this host exactly."""
    names = [n.strip() for n in (confirm or "").split(",") if n.strip()]
    if host_name not in names:
        raise ConfigError(
            f"{what} of {host_name} refused: confirm with --data confirm={host_name} "
            "(the exact host name; several: comma-separated)"
        )


def backup_script(backup_dir: str, target: Cluster, stamp: str) -> str:
    """pg_dumpall --globals-only plus pg_dump -Fc of every database, into a new folder only root can
    read; any failure stops the script (and with it the reset)."""
    dest = f"{backup_dir.rstrip('/')}/{stamp}"
    as_pg = "runuser -u postgres --"
    return f"""set -eu
pg_lsclusters -h {target.shell_args} | grep -q online || {{
  echo "hearthdb: cluster {target.key} is not running: no backup, no reset" >&2; exit 1; }}
umask 077
d={shlex.quote(dest)}
mkdir -p "$d"
# the dumps stream to files root opens: the postgres user never needs to reach the backup folder
{as_pg} pg_dumpall -p {int(target.port)} --globals-only > "$d/globals.sql"
# an assignment, so that `set -e` stops on a failed listing (a `for` over $(...) would not)
dbs=$({as_pg} psql -X -A -t -v ON_ERROR_STOP=1 -p {int(target.port)} -d postgres -c \\
    "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template1' ORDER BY 1")
for db in $dbs; do
  {as_pg} pg_dump -p {int(target.port)} -Fc "$db" > "$d/$db.dump"
done
ls "$d" > "$d/MANIFEST"
echo "hearthdb: backup written to $d" >&2"""


PURGE_SCRIPT = (
    "set -eu; systemctl stop postgresql || true; "
    "pkgs=$(dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' 'postgresql*' 2>/dev/null | "
    "awk '$2 ~ /^[ih]i/ {print $1}'); "
    'if [ -n "$pkgs" ]; then DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $pkgs; fi; '
    f"rm -rf {' '.join(HOST_ROOTS)}"
)


@operation()
def nuclear_reset(confirm: str | None, backup_dir: str, target: Cluster, stanza: str | None = None):
    """
    Back up every database, then stop PostgreSQL and purge its packages, configuration and data. With
    a backup section, a pgBackRest full backup comes first (its repository is outside what is purged).

    + confirm: the host names the user confirmed (`--data confirm=hdb1`); this host must be among them
    + backup_dir: where on the host the backup folder is written (kept by the purge)
    + target: the cluster to back up
    + stanza: this host's pgBackRest stanza, when backups are declared
    """
    check_confirmation(confirm, host.name)
    clusters = host.get_fact(PgClusters)
    if stanza is not None and (clusters.get(target.key) or {}).get("online"):
        yield f"runuser -u postgres -- {backup_command(shlex.quote(stanza), 'full')}"
    if clusters:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{host.name}"
        yield backup_script(backup_dir, target, stamp)
    yield PURGE_SCRIPT
