"""Monitoring, the pure part: the `monitoring:` section of hearthdb.yml, what Debian's Prometheus exporters
are told (their /etc/default files and the PostgreSQL exporter's queries), the Prometheus scrape
configuration and alert rules for the declared hosts, and pg_stat_statements' sizing.

The PostgreSQL exporter connects as `monitoring.role` (member of pg_monitor, no password) over the local
socket by peer, through an ident map from OS user prometheus: no secret at rest. It connects to the
`postgres` database: the cluster-wide views cover every database (pg_stat_database, pg_locks,
pg_stat_activity) and pg_stat_statements shows every database's statements, so one connection serves
200 AI databases at the cost of one. Nothing here imports pyinfra; `deploy.py` installs the files.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_RE = r"^[a-z_][a-z0-9_]{0,62}$"
Port = Annotated[int, Field(ge=1, le=65535)]

MONITOR_DATABASE = "postgres"  # where the exporter connects (and pg_stat_statements is created for it)
IDENT_MAP = "hearthdb_monitor"
EXPORTER_USER = "prometheus"  # the OS user Debian's prometheus-postgres-exporter unit runs as
POSTGRES_EXPORTER_QUERIES = "/etc/prometheus/hearthdb-postgres-queries.yml"


@dataclass(frozen=True)
class Exporter:
    """One of Debian's exporters: its package (also the name of its unit and /etc/default file) and the
    metric that says it reaches what it watches."""

    package: str
    up_metric: str

    @property
    def unit(self) -> str:
        return f"{self.package}.service"

    @property
    def defaults(self) -> str:
        return f"/etc/default/{self.package}"


EXPORTERS = {
    "postgres": Exporter("prometheus-postgres-exporter", "pg_up"),
    "pgbouncer": Exporter("prometheus-pgbouncer-exporter", "pgbouncer_up"),
    "pgbackrest": Exporter("prometheus-pgbackrest-exporter", "pgbackrest_exporter_status"),
}
# The latest validation verdict of each host, written by every validation (in `postgres`, readable by
# pg_monitor): what the `hearthdb_validation_failed` metric and its alert read.
VALIDATION_LATEST = "hearthdb.validation_latest"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Alerts(_Strict):
    replication_lag_seconds: Annotated[int, Field(ge=1, le=86400)] = 30  # a replica further behind alerts
    connections_ratio: Annotated[float, Field(gt=0, le=1)] = 0.8  # connections / max_connections
    backup_age_hours: Annotated[int, Field(ge=1, le=10000)] = 36  # newest completed backup older: alert
    for_minutes: Annotated[int, Field(ge=0, le=1440)] = 5  # how long a condition holds before it fires


class Monitoring(_Strict):
    enabled: bool = False  # Debian's Prometheus exporters on every database host
    listen_address: str = "127.0.0.1"  # where the exporters listen; "0.0.0.0" for a Prometheus elsewhere
    postgres_port: Port = 9187  # prometheus-postgres-exporter
    pgbouncer_port: Port = 9127  # prometheus-pgbouncer-exporter (with the pooler section)
    pgbackrest_port: Port = 9854  # prometheus-pgbackrest-exporter (with the backup section)
    role: Annotated[str, Field(pattern=NAME_RE)] = "hearthdb_monitor"  # pg_monitor member, peer only
    size_interval: Annotated[int, Field(ge=0, le=86400)] = 60  # seconds database sizes are reused
    backup_interval: Annotated[int, Field(ge=60, le=86400)] = 600  # seconds between pgBackRest readings
    scrape_interval: Annotated[int, Field(ge=1, le=3600)] = 30  # seconds, in the generated prometheus.yml
    alerts: Alerts = Field(default_factory=Alerts)

    def port(self, kind: str) -> int:
        """The port of exporter `kind` (a key of EXPORTERS)."""
        return {"postgres": self.postgres_port, "pgbouncer": self.pgbouncer_port, "pgbackrest": self.pgbackrest_port}[
            kind
        ]

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::)") from None
        return value


def _listen(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# One statement per query: pg_database_size of every database stats every file of the cluster
# (~225 ms at 200 AI databases), so its answer is reused for `size_interval` seconds; the exporter's own
# database collector, which asks database by database, is off.
def queries_yaml(mon: Monitoring) -> str:
    queries: dict[str, Any] = {
        "pg_database": {
            "query": "SELECT datname, pg_catalog.pg_database_size(datname) AS size_bytes "
            "FROM pg_catalog.pg_database WHERE datallowconn",
            "cache_seconds": mon.size_interval,
            "metrics": [
                {"datname": {"usage": "LABEL", "description": "Name of the database"}},
                {"size_bytes": {"usage": "GAUGE", "description": "Disk space used by the database"}},
            ],
        },
        "hearthdb_validation": {
            # a label of its own: Prometheus's `host` is the scraped target, this the host validated
            "query": "SELECT host AS validated_host, checks, failed, extract(epoch FROM checked_at) AS checked_at "
            f"FROM {VALIDATION_LATEST}",
            "metrics": [
                {"validated_host": {"usage": "LABEL", "description": "Inventory name of the validated host"}},
                {"checks": {"usage": "GAUGE", "description": "Checks in the host's latest validation"}},
                {"failed": {"usage": "GAUGE", "description": "Checks that were false in it"}},
                {"checked_at": {"usage": "GAUGE", "description": "When it ran (Unix time)"}},
            ],
        },
    }
    return "# Managed by hearthdb (monitoring): do not edit.\n" + yaml.safe_dump(queries, sort_keys=False)


def postgres_exporter_environment(mon: Monitoring, stat_statements: bool, queries: str) -> str:
    """/etc/default/prometheus-postgres-exporter. The queries file's digest is written in it, so a new
    queries file restarts the exporter like a new environment does."""
    args = [
        f"--web.listen-address={_listen(mon.listen_address, mon.port('postgres'))}",
        "--no-collector.database",
        f"--extend.query-path={POSTGRES_EXPORTER_QUERIES}",
    ]
    if stat_statements:
        args.append("--collector.stat_statements")
    dsn = f"user={mon.role} host=/run/postgresql dbname={MONITOR_DATABASE}"
    digest = hashlib.sha256(queries.encode()).hexdigest()[:16]
    return (
        "# Managed by hearthdb (monitoring): do not edit.\n"
        f"# queries: {POSTGRES_EXPORTER_QUERIES} sha256 {digest}\n"
        f"DATA_SOURCE_NAME='{dsn}'\n"
        f"ARGS='{' '.join(args)}'\n"
    )


def pgbouncer_exporter_environment(mon: Monitoring, pooler_port: int) -> str:
    """The PgBouncer exporter runs as postgres, like PgBouncer: its admin console takes the `pgbouncer`
    user over the socket from that OS user without a password."""
    dsn = f"postgres://pgbouncer@/pgbouncer?host=/var/run/postgresql&port={pooler_port}&sslmode=disable"
    args = [
        f"--web.listen-address={_listen(mon.listen_address, mon.port('pgbouncer'))}",
        f"--pgBouncer.connectionString={dsn}",
    ]
    return "# Managed by hearthdb (monitoring): do not edit.\nPGBOUNCER_EXPORTER_CONNECTION_STRING=''\n" + (
        f"ARGS='{' '.join(args)}'\n"
    )


def pgbackrest_exporter_environment(mon: Monitoring, config: str, stanza: str) -> str:
    args = [
        f"--web.listen-address={_listen(mon.listen_address, mon.port('pgbackrest'))}",
        f"--backrest.config={config}",
        f"--backrest.stanza-include={stanza}",
        f"--collect.interval={mon.backup_interval}",
    ]
    return f"# Managed by hearthdb (monitoring): do not edit.\nARGS='{' '.join(args)}'\n"


def ident_lines(mon: Monitoring) -> tuple[str, ...]:
    """pg_ident.conf: OS user prometheus may log in as the monitoring role (and as nothing else)."""
    return (f"{IDENT_MAP} {EXPORTER_USER} {mon.role}",) if mon.enabled else ()


def hba_lines(mon: Monitoring) -> list[str]:
    """pg_hba.conf, before the user's rules: the monitoring role by peer through that map, to the one
    database the exporter connects to."""
    return [f"local {MONITOR_DATABASE} {mon.role} peer map={IDENT_MAP}"] if mon.enabled else []


# What validation reads of each exporter: the lines that prove it reaches what it watches.
PROOF = {
    "postgres": ("pg_up", "pg_stat_database_xact_commit", "pg_stat_statements_calls_total", "pg_database_size_bytes"),
    "pgbouncer": ("pgbouncer_up", "pgbouncer_databases"),
    "pgbackrest": ("pgbackrest_exporter_status", "pgbackrest_stanza_status"),
}


def exporter_url(mon: Monitoring, kind: str) -> str:
    """Where the exporter answers, as seen from its own host."""
    address = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(mon.listen_address, mon.listen_address)
    return f"http://{_listen(address, mon.port(kind))}/metrics"


def _samples(lines: list[str], name: str) -> list[tuple[dict[str, str], str]]:
    """(labels, value) of every sample of metric `name` in exposition-format lines."""
    out = []
    for line in lines:
        if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
            continue
        head, _, value = line.rpartition(" ")
        labels: dict[str, str] = {}
        if "{" in head:
            for part in head[head.index("{") + 1 : head.rindex("}")].split('",'):
                key, _, val = part.partition("=")
                labels[key.strip(", ")] = val.strip('"')
        out.append((labels, value))
    return out


# Run on the host (python3): each exporter's PROOF lines as JSON, null for one that does not answer.
FETCH = r"""
import json, sys, time, urllib.request
out = {}
for kind, url, names in json.loads(sys.argv[1]):
    for attempt in range(4):  # a restarted PostgreSQL fails the exporter's next scrape only
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
            out[kind] = [ln for ln in text.splitlines() if ln.startswith(tuple(names))]
        except Exception:
            out[kind] = None
        if out[kind] is not None and (names[0] + " 0") not in out[kind]:
            break
        time.sleep(1)
print(json.dumps(out))
"""


def fetch_argument(mon: Monitoring, kinds: list[str]) -> str:
    return json.dumps([[k, exporter_url(mon, k), list(PROOF[k])] for k in kinds])


def exporter_checks(
    kind: str, lines: list[str] | None, databases: list[str], stat_statements: bool, stanza: str | None = None
) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) of one exporter from its `PROOF` lines (None: it did not answer): it is up,
    PostgreSQL's exporter sees every managed database and (when declared) pg_stat_statements, PgBouncer's
    its pools, pgBackRest's the host's stanza."""
    if lines is None:
        return [(f"exporter_{kind}", False, "does not answer")]
    up = EXPORTERS[kind].up_metric
    values = [v for _, v in _samples(lines, up)]
    ok = bool(values) and all(v == "1" for v in values)
    out = [(f"exporter_{kind}", ok, "" if ok else f"{up} is not 1")]
    if kind == "postgres":
        seen = {labels.get("datname") for labels, _ in _samples(lines, "pg_stat_database_xact_commit")}
        sized = {labels.get("datname") for labels, _ in _samples(lines, "pg_database_size_bytes")}
        missing = [d for d in databases if d not in seen or d not in sized]
        out.append(("exporter_databases", not missing, f"no statistics of {', '.join(missing[:5])}" if missing else ""))
        if stat_statements:
            has = bool(_samples(lines, "pg_stat_statements_calls_total"))
            out.append(("exporter_statements", has, "" if has else "no pg_stat_statements metrics"))
    if kind == "pgbouncer":
        has = bool(_samples(lines, "pgbouncer_databases"))
        out.append(("exporter_pools", has, "" if has else "no PgBouncer databases"))
    if kind == "pgbackrest" and stanza:
        has = any(labels.get("stanza") == stanza for labels, _ in _samples(lines, "pgbackrest_stanza_status"))
        out.append(("exporter_stanza", has, "" if has else f"no metrics of stanza {stanza}"))
    return out


def exporters(mon: Monitoring, pooler: bool, backup: bool) -> list[str]:
    """Which exporters a database host runs: "postgres", then "pgbouncer" and "pgbackrest" with their
    sections."""
    if not mon.enabled:
        return []
    return ["postgres", *(["pgbouncer"] if pooler else []), *(["pgbackrest"] if backup else [])]


def stat_statements_max(databases: int) -> int:
    """pg_stat_statements keeps one entry per statement *and database*: 5000 (its default) is filled by
    fifty databases of an agent's hundred statements, and each eviction costs a sort of every entry. Plan
    for 100 statements per database, in doublings of 5000 up to 80000 (a few hundred bytes of shared
    memory each): the setting needs a restart, so a few more databases must not change it."""
    size = 5000
    while size < 100 * databases and size < 80000:
        size *= 2
    return size


# ---------------------------------------------------------------------------------- Prometheus's files


RULES_FILE = "hearthdb-rules.yml"


def scrape_config(mon: Monitoring, hosts: dict[str, str], jobs: list[str]) -> str:
    """A prometheus.yml for the declared hosts (inventory name -> address): the rules file, one scrape job
    per exporter, each target labelled with its inventory name (`host`) so alerts name it. Complete as
    it is; its `scrape_configs` and `rule_files` also merge into an existing one."""
    wildcard = mon.listen_address in ("0.0.0.0", "::")
    configs = []
    for job in jobs:
        targets = [
            {
                "targets": [_listen(address if wildcard else mon.listen_address, mon.port(job))],
                "labels": {"host": name},
            }
            for name, address in hosts.items()
        ]
        interval = f"{mon.scrape_interval}s"
        configs.append({"job_name": f"hearthdb-{job}", "scrape_interval": interval, "static_configs": targets})
    head = "# Generated by hearthdb-prometheus for the declared hosts.\n"
    doc = {"rule_files": [RULES_FILE], "scrape_configs": configs}
    return head + yaml.safe_dump(doc, sort_keys=False)


def alert_rules(mon: Monitoring, jobs: list[str], ha: bool) -> str:
    """Prometheus alert rules: an exporter or PostgreSQL down, WAL archiving failing, replication lag,
    connections near max_connections, a false validation check, the newest backup too old."""
    a = mon.alerts
    hold = f"{a.for_minutes}m"

    def rule(name: str, expr: str, summary: str, severity: str = "warning") -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": hold,
            "labels": {"severity": severity},
            "annotations": {"summary": summary},
        }

    rules = [
        rule(
            "HearthdbExporterDown",
            'up{job=~"hearthdb-.*"} == 0',
            "{{ $labels.job }} on {{ $labels.host }} is not answering",
            "critical",
        ),
        rule("HearthdbPostgresDown", "pg_up == 0", "PostgreSQL on {{ $labels.host }} does not answer", "critical"),
        rule(
            "HearthdbConnectionsNearLimit",
            "sum by (host) (pg_stat_activity_count) / on (host) max by (host) (pg_settings_max_connections)"
            f" > {a.connections_ratio}",
            f"{{{{ $labels.host }}}} uses more than {a.connections_ratio:.0%} of max_connections",
        ),
        rule(
            "HearthdbValidationFailed",
            "hearthdb_validation_failed > 0",
            "{{ $value }} validation checks were false in the latest run on {{ $labels.validated_host }}",
            "critical",
        ),
        rule(
            "HearthdbArchivingFailing",
            "increase(pg_stat_archiver_failed_count[15m]) > 0",
            "WAL archiving fails on {{ $labels.host }}",
            "critical",
        ),
    ]
    if ha:
        rules.append(
            rule(
                "HearthdbReplicationLag",
                f"pg_replication_lag_seconds > {a.replication_lag_seconds}",
                f"the replica {{{{ $labels.host }}}} is more than {a.replication_lag_seconds} s behind",
            )
        )
    if "pgbackrest" in jobs:
        rules.append(
            rule(
                "HearthdbBackupTooOld",
                "min by (host, stanza) (pgbackrest_backup_since_last_completion_seconds)"
                f" > {a.backup_age_hours * 3600}",
                f"the newest backup of {{{{ $labels.stanza }}}} is older than {a.backup_age_hours} h",
                "critical",
            )
        )
    head = "# Generated by hearthdb-prometheus; list under rule_files in prometheus.yml.\n"
    return head + yaml.safe_dump({"groups": [{"name": "hearthdb", "rules": rules}]}, sort_keys=False)
