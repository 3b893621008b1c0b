"""Combined facts: each is one remote command, whatever the number of roles and databases."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase

from .pgbackrest import BACKUP_TYPES, unit_name
from .queries import SERVER_QUERY
from .target import SSH_HOST_KEYS, SYSTEMD_UNITS, Cluster
from .visitmemo import visit_script


class DebPackageStatus(FactBase):
    """Installed versions of the named Debian packages (absent ones are left out).

    .. code:: python

        {"postgresql-17": "17.6-0+deb13u1", "postgresql-17-pgvector": "0.8.0-1"}
    """

    default = dict

    def command(self, packages: list[str]) -> str:
        names = " ".join(shlex.quote(p) for p in packages)
        # dpkg-query exits 1 when a package is unknown; that is an answer, not a failure.
        fmt = "'${Package} ${db:Status-Abbrev} ${Version}\\n'"
        return f"dpkg-query -W -f {fmt} {names} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, str]:
        installed = {}
        for line in output:
            parts = line.split()
            # the second status letter is the package's state: installed whether wanted, held or not
            if len(parts) == 3 and parts[1][1:2] == "i":
                installed[parts[0]] = parts[2]
        return installed


class PgClusters(FactBase):
    """Clusters known to postgresql-common (`pg_lsclusters`), keyed by "version/name".

    .. code:: python

        {"17/main": {"version": 17, "name": "main", "port": 5432, "online": True,
                     "owner": "postgres", "data_directory": "/var/lib/postgresql/17/main"}}
    """

    default = dict

    def command(self) -> str:
        return "if command -v pg_lsclusters >/dev/null; then pg_lsclusters -h; fi"

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        clusters = {}
        for line in output:
            parts = line.split()
            if len(parts) < 6 or not parts[0].isdigit():
                continue
            clusters[f"{parts[0]}/{parts[1]}"] = {
                "version": int(parts[0]),
                "name": parts[1],
                "port": int(parts[2]),
                "online": parts[3].startswith("online"),
                "owner": parts[4],
                "data_directory": parts[5],
            }
        return clusters


def psql_base(port: int, database: str = "postgres") -> str:
    return f"psql -X -q -A -t -v ON_ERROR_STOP=1 -p {int(port)} -d {shlex.quote(database)}"


class PgState(FactBase):
    """The whole server in one remote command: whether the cluster exists and runs, server properties,
    all roles, all databases, and (`visit=True`) what only a connection to each database can read: its
    extensions, public schema rights and migration ledger (see `visitmemo`; `use_memo=False` visits
    every database, as validation does).

    .. code:: python

        {"status": "online", "port": 5432,
         "server": {"version_num": 170006, "data_checksums": True, "encoding": "UTF8", ...},
         "roles": {"logos": {"login": True, "superuser": False, ..., "member_of": []}},
         "databases": {"logos_db": {"owner": "logos", ..., "extensions": {"vector": "0.8.0"}}},
         "available_extensions": {"vector": {"default": "0.8.0", "versions": ["0.8.0", ...]}}}

    ``{"status": "missing"}`` without the cluster (or without postgresql-common), ``{"status":
    "stopped", "port": 5432}`` while it does not run, and no server reading when it runs on another
    port than `port` (the cluster operation says so).
    """

    default = dict

    def command(self, version: int, cluster: str, port: int, visit: bool = True, use_memo: bool = True) -> str:
        psql = psql_base(port)
        if visit:  # the server query and the fingerprints in one psql process
            read = visit_script(psql, Cluster(int(version), cluster, int(port)).visit_memo, use_memo, SERVER_QUERY)
        else:
            read = f"{psql} -c {shlex.quote(SERVER_QUERY)}"
        return (
            f"l=$(pg_lsclusters -h {int(version)} {shlex.quote(cluster)} 2>/dev/null || true); "
            'set -- $l; case "$4" in '
            f'online*) echo "status online $3"; if [ "$3" = {int(port)} ]; then (set -e; {read}); fi;; '
            '"") echo "status missing";; *) echo "status stopped $3";; esac'
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        status = output[0].split() if output else ["status", "missing"]
        head: dict[str, Any] = {"status": status[1]}
        if status[1] != "missing":
            head["port"] = int(status[2])
        if len(output) < 2:
            return head
        state: dict[str, Any] = {**head, **json.loads(output[1])}
        state["roles"] = state.get("roles") or {}
        state["databases"] = state.get("databases") or {}
        for line in output[2:]:
            row = json.loads(line)
            db = state["databases"].get(row["db"])
            if db is None:
                continue
            # every field is read as it is (a row without one is a bug, not a "false")
            if "ledger" in row:
                db["ledger"] = row["ledger"]
                db["ledger_owner"] = row["ledger_owner"]
            elif "cron_jobs" in row:
                db["cron_jobs"] = row["cron_jobs"]
            else:
                db["extensions"] = row["extensions"] or {}
                db["public_create"] = bool(row["public_create"])
                db["commented"] = row["commented"] or []
                for key in ("schemas", "objects", "object_grants", "default_acl"):
                    db[key] = row[key]
        return state


# Facts about the server are read as the postgres user, over its local socket (peer authentication).
PSQL_USER = {"_sudo": True, "_sudo_user": "postgres"}


def read_cluster(target: Cluster, visit: bool = False, use_memo: bool = True) -> dict[str, Any]:
    """The PgState fact of `target`: each call is one fresh remote read (nothing is kept between
    operations, so nothing read before a change can answer after it)."""
    have = host.get_fact(
        PgState,
        version=target.version,
        cluster=target.name,
        port=target.port,
        visit=visit,
        use_memo=use_memo,
        **PSQL_USER,
    )
    # no status at all: no OS user postgres to read as (PostgreSQL not installed yet), so no cluster
    return have if have.get("status") else {"status": "missing"}


class HostResources(FactBase):
    """Cores, memory, /dev/shm size and whether the disks rotate, in one command.

    .. code:: python

        {"cores": 2, "memory": 25165824000, "shm": 12582912000, "rotational": False}
    """

    default = dict

    def command(self) -> str:
        return (
            "nproc; awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo; "
            # always a line, 0 without /dev/shm: the lines after it keep their place
            "s=$(df -k --output=size /dev/shm 2>/dev/null | tail -1 | awk '{print $1 * 1024}'); echo \"${s:-0}\"; "
            "cat /sys/block/*/queue/rotational 2>/dev/null | sort -u | tr '\\n' ' '; echo"
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        lines = [*output, "", "", "", ""]
        flags = set(lines[3].split())
        return {
            "cores": int(lines[0] or 1),
            "memory": int(lines[1] or 0),
            "shm": int(lines[2] or 0) if lines[2].strip().isdigit() else 0,
            "rotational": None if not flags else flags == {"1"},
        }


# What the archiver and pg_wal say (one row, as JSON): failures since the last success, the segments
# waiting for the archive (archive_status/*.ready) and how long the oldest has waited, pg_wal's size.
ARCHIVER_QUERY = r"""
SELECT json_build_object(
  'last_archived_wal', last_archived_wal, 'last_failed_wal', last_failed_wal, 'failed_count', failed_count,
  'last_archived_time', extract(epoch FROM last_archived_time),
  'last_failed_time', extract(epoch FROM last_failed_time),
  'ready', (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
  'oldest_ready_age', (SELECT extract(epoch FROM now() - min(modification)) FROM pg_ls_archive_statusdir()
                       WHERE name LIKE '%.ready'),
  'pg_wal_bytes', (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()),
  'wal_segment_bytes', (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
  'current_wal', pg_walfile_name(pg_current_wal_lsn()))
FROM pg_stat_archiver
""".strip()


class BackupState(FactBase):
    """pgBackRest's view of a host's stanza and the server's archiving, in one command (as postgres):
    `pgbackrest info --output=json` (or why it failed), the archiver row, the last error of the
    asynchronous archiver, and when each backup timer last fired and whether its job runs now.

    .. code:: python

        {"info": [{"name": "db1", "status": {"code": 0}, "cipher": "none", "backup": [...]}],
         "archiver": {"ready": 0, "oldest_ready_age": None, "pg_wal_bytes": 50331648, ...},
         "timers": {"full": 1796219873.0}, "running": [], "archive_error": None, "info_error": None}
    """

    default = dict

    def command(self, stanza: str, port: int, log: str) -> str:
        s = shlex.quote(stanza)
        timers = " ".join(unit_name(k) for k in BACKUP_TYPES)
        return (
            "t=$(mktemp); trap 'rm -f \"$t\"' EXIT; "
            "if command -v pgbackrest >/dev/null; then "
            # a short io-timeout: an unreachable repository answers in seconds, not after a minute of retries
            f'if out=$(pgbackrest --stanza={s} --io-timeout=5 --output=json info 2>"$t"); then '
            "printf 'info\\t%s\\n' \"$(printf '%s' \"$out\" | tr -d '\\n')\"; "
            "else printf 'info_error\\t%s\\n' \"$(tail -c 400 \"$t\" | tr '\\n' ' ')\"; fi; "
            f"a={shlex.quote(log)}/{s}-archive-push-async.log; "
            'e=$(grep -h ERROR "$a" 2>/dev/null | tail -n 1); '
            '[ -z "$e" ] || printf \'archive_error\\t%s\\n\' "$e"; '
            # WAL dropped at archive-push-queue-max: when (the log's local time, read by date) and which
            "w=$(grep -h 'dropped WAL file' \"$a\" 2>/dev/null | tail -n 1); "
            'if [ -n "$w" ]; then printf \'dropped\\t%s\\t%s\\n\' "$(date -d "$(printf %s "$w" | cut -c1-19)" +%s)" '
            '"$(printf %s "$w" | sed -n "s/.*dropped WAL file .\\([0-9A-F]*\\).*/\\1/p")"; fi; fi; '
            f"{psql_base(port)} -c {shlex.quote(ARCHIVER_QUERY)} 2>/dev/null | sed 's/^/archiver\\t/' || true; "
            f"for u in {timers}; do "
            'v=$(systemctl show --timestamp=unix -p LastTriggerUSec --value "$u.timer" 2>/dev/null || true); '
            'a=$(systemctl is-active "$u.service" 2>/dev/null || true); '
            'printf \'timer\\t%s\\t%s\\t%s\\n\' "${u##*-}" "$v" "$a"; done'
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "info": None,
            "info_error": None,
            "archive_error": None,
            "dropped": None,
            "archiver": None,
            "timers": {},
            "running": [],
        }
        for line in output:
            key, _, value = line.partition("\t")
            if key == "info":
                out["info"] = json.loads(value)
            elif key in ("info_error", "archive_error"):
                out[key] = value.strip() or None
            elif key == "dropped":
                when, _, wal = value.partition("\t")
                if when.isdigit():
                    out["dropped"] = {"time": float(when), "wal": wal.strip()}
            elif key == "archiver" and value.strip():
                out["archiver"] = json.loads(value)
            elif key == "timer":
                kind, fired, active = [*value.split("\t"), "", ""][:3]
                if fired.startswith("@") and fired[1:].replace(".", "").isdigit() and float(fired[1:]) > 0:
                    out["timers"][kind] = float(fired[1:])
                if active in ("activating", "active"):
                    out["running"].append(kind)
        return out


class SshHostKeys(FactBase):
    """The host's SSH host public keys (`type base64` each): what another host pins for it.

    .. code:: python

        ["ssh-ed25519 AAAAC3Nz...", "ecdsa-sha2-nistp256 AAAAE2Vj...", "ssh-rsa AAAAB3Nz..."]
    """

    default = list

    def command(self) -> str:
        return f"cat {SSH_HOST_KEYS} 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        return [" ".join(line.split()[:2]) for line in output if len(line.split()) >= 2]


class SystemdUnits(FactBase):
    """For each named unit file under /etc/systemd/system that exists: its sha256, and for timers
    whether they are enabled and active. One `systemctl show` for every timer there is, none when there
    is none (a host without backups pays one shell loop).

    .. code:: python

        {"hearthdb-backup-full.timer": {"digest": "9f86...", "enabled": True, "active": True}}
    """

    default = dict

    def command(self, names: list[str]) -> str:
        quoted = " ".join(shlex.quote(n) for n in names)
        return (
            f'cd {SYSTEMD_UNITS} && t=; for u in {quoted}; do if [ -f "$u" ]; then '
            'echo "file $(sha256sum "$u")"; case "$u" in *.timer) t="$t $u";; esac; fi; done; '
            'if [ -n "$t" ]; then systemctl show -p Id -p UnitFileState -p ActiveState $t; fi'
        )

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        unit: dict[str, str] = {}
        for line in [*output, ""]:
            if line.startswith("file "):
                parts = line.split()
                if len(parts) == 3:
                    out[parts[2]] = {"digest": parts[1], "enabled": False, "active": False}
            elif "=" in line:
                key, _, value = line.partition("=")
                unit[key] = value
            elif unit:  # a blank line ends one unit's properties
                if unit.get("Id") in out:
                    out[unit["Id"]]["enabled"] = unit.get("UnitFileState") == "enabled"
                    out[unit["Id"]]["active"] = unit.get("ActiveState") == "active"
                unit = {}
        return out


class RepositoryAccount(FactBase):
    """Whether the repository account exists, and its directory's owner:group:mode.

    .. code:: python

        {"user": True, "dir": "pgbackrest:pgbackrest:750"}
    """

    default = dict

    def command(self, user: str, path: str) -> str:
        return (
            f"id -u {shlex.quote(user)} >/dev/null 2>&1 && echo user; "
            f"stat -c 'dir %U:%G:%a' {shlex.quote(path)} 2>/dev/null || true"
        )

    def process(self, output: list[str]) -> dict:
        out: dict = {"user": False, "dir": None}
        for line in output:
            if line == "user":
                out["user"] = True
            elif line.startswith("dir "):
                out["dir"] = line[4:]
        return out
