"""Combined facts: each is one remote command, whatever the number of roles and databases."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase

from .queries import SERVER_QUERY
from .target import Cluster
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
            else:
                db["extensions"] = row["extensions"] or {}
                db["public_create"] = bool(row["public_create"])
                db["commented"] = row["commented"] or []
        return state


# Facts about the server are read as the postgres user, over its local socket (peer authentication).
PSQL_USER = {"_sudo": True, "_sudo_user": "postgres"}


def read_cluster(target: Cluster, visit: bool = False, use_memo: bool = True) -> dict[str, Any]:
    """The PgState fact of `target`: each call is one fresh remote read (nothing is kept between
    operations, so nothing read before a change can answer after it)."""
    return host.get_fact(
        PgState,
        version=target.version,
        cluster=target.name,
        port=target.port,
        visit=visit,
        use_memo=use_memo,
        **PSQL_USER,
    )


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
