"""Combined facts: each is one remote command, whatever the number of roles and databases."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

from pyinfra import host, state
from pyinfra.api import FactBase

from .queries import FINGERPRINT_QUERY, PER_DATABASE_SCRIPT, SERVER_QUERY


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


# Databases visited by one psql process before a second one runs beside it, and the most processes.
VISIT_PER_PART = 25
VISIT_PARALLEL = 4


class PgState(FactBase):
    """The whole server in one remote command: server properties, all roles, all databases, and the
    installed extensions of every database (psql reconnects per database inside one process).

    Returns ``{}`` when psql is missing or the cluster is not running. Otherwise:

    .. code:: python

        {"server": {"version_num": 170006, "data_checksums": True, "encoding": "UTF8", ...},
         "roles": {"logos": {"login": True, "superuser": False, ..., "member_of": []}},
         "databases": {"logos_db": {"owner": "logos", ..., "extensions": {"vector": "0.8.0"}}},
         "available_extensions": {"vector": {"default": "0.8.0", "versions": ["0.8.0", ...]}}}
    """

    default = dict

    def command(self, version: int, cluster: str, port: int, extensions: bool = True) -> str:
        psql = psql_base(port)
        guard = (
            f"if command -v psql >/dev/null && pg_lsclusters -h {int(version)} {shlex.quote(cluster)} "
            "2>/dev/null | grep -q online; then "
        )
        if not extensions:
            return f"{guard}{psql} -c {shlex.quote(SERVER_QUERY)}; fi"
        # The server query; then the fingerprint of every database, compared (awk) with the one the
        # last visit recorded in `memo`: unchanged databases answer from there, the others are visited,
        # `\connect` and the per-database query each, split into up to VISIT_PARALLEL psql processes
        # run side by side (a reconnect costs a backend start, ~6 ms). One SSH round trip, one sudo.
        memo = f"/var/lib/postgresql/.hearthdb-visit-{int(version)}-{shlex.quote(cluster)}"
        gen = (
            f"SELECT format($hdbd${PER_DATABASE_SCRIPT}$hdbd$, quote_ident(datname)) "
            "FROM pg_database WHERE datallowconn AND oid = ANY(string_to_array(:'stale', ',')::oid[]) ORDER BY datname"
        )
        keep = (
            "awk -F'\\t' -v d=\"$t\" 'NR == FNR { fp[$1] = $2; next } "
            '($1 in fp) && fp[$1] != "" && fp[$1] == $2 { print $3 > (d "/kept"); print > (d "/memo"); '
            'seen[$1] = 1 } END { for (o in fp) if (!(o in seen)) printf "%s,", o > (d "/stale") }\''
        )
        split = (
            f'awk -v n={VISIT_PARALLEL} -v per={VISIT_PER_PART} -v d="$t" '
            '\'/^\\\\connect /{k++; i=int((k-1)/per); if (i>=n) i=(k-1)%n} {print > (d "/" i ".sql")}\''
        )
        record = (
            "awk -F'\\t' 'NR == FNR { fp[$1] = $2; next } "
            'match($0, /"oid" : [0-9]+/) { o = substr($0, RSTART + 8, RLENGTH - 8); '
            'if (fp[o] != "") print o "\\t" fp[o] "\\t" $0 }\''
        )
        return (
            f"{guard}set -e; umask 077; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; m={memo}; "
            f"{psql} -c {shlex.quote(SERVER_QUERY)}; "
            f'{psql} -F "$(printf \'\\t\')" -c {shlex.quote(FINGERPRINT_QUERY)} > "$t/fp"; '
            'touch "$t/kept" "$t/memo" "$t/stale"; src="$m"; [ -r "$src" ] || src=/dev/null; '
            f'{keep} "$t/fp" "$src"; stale=$(sed \'s/,$//\' "$t/stale"); '
            f'if [ -n "$stale" ]; then printf \'%s\\n\' {shlex.quote(gen)} | {psql} -v stale="$stale" | {split}; fi; '
            'pids=; for f in "$t"/*.sql; do if [ -e "$f" ]; then '
            f'{psql} -f "$f" > "$f.out" & pids="$pids $!"; fi; done; '
            'for p in $pids; do wait $p; done; cat "$t/kept"; '
            'for f in "$t"/*.out; do if [ -e "$f" ]; then cat "$f"; fi; done; '
            # the memo is an optimisation: a host where it cannot be written is visited in full each time
            f'if {{ cat "$t/memo"; for f in "$t"/*.out; do if [ -e "$f" ]; then {record} "$t/fp" "$f"; fi; done; }} '
            '> "$m.new" 2>/dev/null; then mv -f "$m.new" "$m" 2>/dev/null || true; fi; fi'
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        if not output:
            return {}
        state: dict[str, Any] = json.loads(output[0])
        state["roles"] = state.get("roles") or {}
        state["databases"] = state.get("databases") or {}
        for line in output[1:]:
            row = json.loads(line)
            db = state["databases"].get(row["db"])
            if db is None:
                continue
            if "ledger" in row:
                db["ledger"] = row["ledger"]
                db["ledger_owner"] = row.get("ledger_owner")
            else:
                db["extensions"] = row["extensions"] or {}
                db["public_create"] = bool(row.get("public_create"))
                db["commented"] = row.get("commented") or []
        return state


# Facts about the server are read as the postgres user, over its local socket (peer authentication).
PSQL_USER = {"_sudo": True, "_sudo_user": "postgres"}


# Readings of the server shared by the operations of one host and stage (the visit of every database
# costs one reconnect per database) until one of them changes something: `forget_visit()`.
_visits: dict[tuple[str, int, str], dict[str, Any]] = {}


def pg_state(version: int, cluster: str, port: int, extensions: bool = False) -> dict[str, Any]:
    """The PgState fact; `extensions=True` also visits every database (extensions, public schema
    rights, migration ledger). A reading is reused until `forget_visit()`; a visit serves both kinds."""
    key = (host.name, int(state.current_stage))
    for kind in ("visit",) if extensions else ("visit", "server"):
        if (*key, kind) in _visits:
            return _visits[(*key, kind)]
    reading = host.get_fact(PgState, version=version, cluster=cluster, port=port, extensions=extensions, **PSQL_USER)
    if reading:  # a stopped cluster reads as {}: ask again once it runs
        _visits[(*key, "visit" if extensions else "server")] = reading
    return reading


def stage_reading(kind: str, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`read()` once per host and stage, reused until `forget_visit()`."""
    key = (host.name, int(state.current_stage), kind)
    if key not in _visits:
        _visits[key] = read()
    return _visits[key]


def pg_clusters() -> dict[str, dict[str, Any]]:
    """The PgClusters fact, reused like `pg_state`."""
    return stage_reading("clusters", lambda: host.get_fact(PgClusters))


def forget_visit() -> None:
    """After any change on the host: an object, a file, a restart."""
    for key in [k for k in _visits if k[0] == host.name]:
        del _visits[key]


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
