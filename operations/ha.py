"""High availability and pooling, the pure part: the `ha:` and `pooler:` sections of hearthdb.yml, what
etcd, Patroni, HAProxy and PgBouncer are told (their files), which parameters Patroni owns, the
difference of its dynamic configuration, the lookup function PgBouncer uses and the replicas' checks.
Nothing here imports pyinfra; `hanodes.py` holds the operations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .statements import Stmt, connect, stmt
from .target import Cluster

NAME_RE = r"^[a-z_][a-z0-9_]{0,62}$"
SCOPE_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
Port = Annotated[int, Field(ge=1, le=65535)]

# Parameters Patroni passes on postgres's command line: a value in a file is ignored, so hearthdb puts
# them in Patroni's dynamic configuration (the DCS), the same for every member (a replica needs at
# least the primary's values). listen_addresses, port and cluster_name Patroni sets from its own keys.
PATRONI_OWNED = (
    "max_connections",
    "max_locks_per_transaction",
    "max_worker_processes",
    "max_prepared_transactions",
    "wal_level",
    "track_commit_timestamp",
    "max_wal_senders",
    "max_replication_slots",
    "wal_log_hints",
    "hot_standby",
    "wal_keep_size",
)
PATRONI_LOCAL = ("listen_addresses", "port", "cluster_name")
ETCD_PEER_PORT = 2380
ETCD_CLIENT_PORT = 2379
NAMESPACE = "/hearthdb/"
AUTH_SCHEMA = "pgbouncer"
AUTH_DBNAME = "postgres"  # PgBouncer's auth_dbname: the lookup function lives there, once per cluster
AUTH_FUNCTION = "get_auth"
# What pg_rewind needs of a non-superuser (PostgreSQL's documentation of pg_rewind)
# (pg_catalog's, as regprocedure prints them without spaces)
REWIND_FUNCTIONS = (
    "pg_ls_dir(text,boolean,boolean)",
    "pg_stat_file(text,boolean)",
    "pg_read_binary_file(text)",
    "pg_read_binary_file(text,bigint,bigint,boolean)",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Endpoint(_Strict):
    enabled: bool = True  # HAProxy on every member: one address for writes, one for reads
    port: Port = 5000  # reaches the leader (Patroni's REST check /primary)
    read_only_port: Port = 5001  # reaches the replicas (/replica), the leader when none is up


class Ha(_Strict):
    enabled: bool = False
    scope: Annotated[str, Field(pattern=SCOPE_RE)] = "hearthdb"  # Patroni's cluster name (the DCS key)
    members: list[str] = Field(default_factory=list)  # inventory names; the first bootstraps the cluster
    etcd: list[str] | None = None  # inventory names of the etcd members (3 or 5); null: the members
    addresses: dict[str, str] = Field(default_factory=dict)  # name -> address peers reach it at
    # Patroni raises a ttl below 20 and a retry_timeout below 3 to those values without a word: refused here
    ttl: Annotated[int, Field(ge=20, le=3600)] = 20  # leader lease, seconds
    loop_wait: Annotated[int, Field(ge=1, le=600)] = 3  # seconds between Patroni's loops
    retry_timeout: Annotated[int, Field(ge=3, le=600)] = 5  # DCS and PostgreSQL operation retries
    maximum_lag_on_failover: Annotated[int, Field(ge=0)] = 1048576  # bytes a replica may lag and be promoted
    synchronous_mode: bool = True  # one synchronous standby: an acknowledged commit is on two hosts
    synchronous_mode_strict: bool = False  # no standby up: writes stop (true) or go on unprotected (false)
    failsafe_mode: bool = False  # keep the leader while the DCS is down, if every member still sees it
    use_pg_rewind: bool = True  # a former leader rejoins by pg_rewind instead of a new copy
    replication_user: Annotated[str, Field(pattern=NAME_RE)] = "replicator"  # password generated
    rest_port: Port = 8008  # Patroni's REST API (health checks, switchover)
    endpoint: Endpoint = Field(default_factory=Endpoint)

    @model_validator(mode="after")
    def _check(self) -> Ha:
        if not self.enabled:
            return self
        if not self.members:
            raise ValueError("members: name the inventory hosts of the cluster")
        for key, names in (("members", self.members), ("etcd", self.etcd or [])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{key}: {dup[0]!r} is listed twice")
        etcd = self.etcd_members
        if len(etcd) < 3 or len(etcd) % 2 == 0:
            raise ValueError(
                f"etcd: {len(etcd)} member{'s' if len(etcd) != 1 else ''}; etcd needs an odd count of at least "
                "three (3 or 5): a majority must survive the loss of one, and an even count adds no tolerance"
            )
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(
                f"ttl: loop_wait + 2 * retry_timeout = {self.loop_wait + 2 * self.retry_timeout} exceeds ttl "
                f"{self.ttl}; Patroni needs loop_wait + 2 * retry_timeout ≤ ttl"
            )
        unknown = sorted(set(self.addresses) - set(self.members) - set(etcd))
        if unknown:
            raise ValueError(f"addresses: {unknown[0]!r} is neither a member nor an etcd member")
        ports = [self.rest_port, self.endpoint.port, self.endpoint.read_only_port, ETCD_PEER_PORT, ETCD_CLIENT_PORT]
        if self.endpoint.enabled and len(set(ports)) < len(ports):
            raise ValueError("endpoint: its ports must differ from each other, rest_port and etcd's 2379/2380")
        return self

    @property
    def etcd_members(self) -> list[str]:
        return list(self.etcd if self.etcd is not None else self.members)


class Pooler(_Strict):
    enabled: bool = False  # PgBouncer on every database host (behind the endpoint with ha)
    listen_address: str = "*"  # listen_addr
    port: Port = 6432
    pool_mode: Literal["session", "transaction", "statement"] = "transaction"
    default_pool_size: Annotated[int, Field(ge=1, le=10000)] = 20  # server connections per database and user
    min_pool_size: Annotated[int, Field(ge=0, le=10000)] = 0
    reserve_pool_size: Annotated[int, Field(ge=0, le=10000)] = 0
    max_client_conn: Annotated[int, Field(ge=1, le=100000)] = 2000
    max_db_connections: Annotated[int, Field(ge=0, le=10000)] = 0  # per database; 0: no limit
    server_idle_timeout: Annotated[int, Field(ge=0, le=86400)] = 30  # seconds before an idle server link closes
    max_prepared_statements: Annotated[int, Field(ge=0, le=100000)] = 200  # protocol-level prepared statements
    databases: list[str] | None = None  # pooled databases; null: every managed database
    auth_user: Annotated[str, Field(pattern=NAME_RE)] = "pgbouncer_auth"  # looks up verifiers (peer, no password)

    @model_validator(mode="after")
    def _check(self) -> Pooler:
        if self.enabled and self.min_pool_size > self.default_pool_size:
            raise ValueError("min_pool_size: exceeds default_pool_size")
        return self


# ------------------------------------------------------------------------------------------- addresses


def member_address(ha: Ha, name: str, inventory_address: str | None) -> str:
    """How peers reach `name`: `ha.addresses`, else its inventory address, else its name."""
    return ha.addresses.get(name) or inventory_address or name


# ------------------------------------------------------------------------------------------------ etcd


def etcd_environment(ha: Ha, me: str, addresses: dict[str, str]) -> str:
    """/etc/default/etcd for member `me`. The data directory is hearthdb's own: the single-node cluster
    Debian's package starts on install lives in /var/lib/etcd/default and is never joined."""
    mine = addresses[me]
    cluster = ",".join(f"{n}=http://{addresses[n]}:{ETCD_PEER_PORT}" for n in ha.etcd_members)
    lines = {
        "ETCD_NAME": me,
        "ETCD_DATA_DIR": etcd_data_dir(ha),
        "ETCD_LISTEN_PEER_URLS": f"http://0.0.0.0:{ETCD_PEER_PORT}",
        "ETCD_LISTEN_CLIENT_URLS": f"http://0.0.0.0:{ETCD_CLIENT_PORT}",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"http://{mine}:{ETCD_PEER_PORT}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://{mine}:{ETCD_CLIENT_PORT}",
        "ETCD_INITIAL_CLUSTER": cluster,
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_CLUSTER_TOKEN": f"hearthdb-{ha.scope}",
        # a lab or LAN: heartbeats every 100 ms, an election after 1 s of silence (etcd's defaults)
        "ETCD_HEARTBEAT_INTERVAL": "100",
        "ETCD_ELECTION_TIMEOUT": "1000",
    }
    head = "# Managed by hearthdb (ha.etcd): do not edit.\n"
    return head + "".join(f'{k}="{v}"\n' for k, v in lines.items())


def etcd_data_dir(ha: Ha) -> str:
    return f"/var/lib/etcd/hearthdb-{ha.scope}"


def etcd_hosts(ha: Ha, addresses: dict[str, str]) -> list[str]:
    return [f"{addresses[n]}:{ETCD_CLIENT_PORT}" for n in ha.etcd_members]


# --------------------------------------------------------------------------------------------- Patroni


def leader_condition(rest_port: int) -> str:
    """A command that succeeds only on the member that leads (Patroni's `GET /primary` answers 200 there
    alone): the `ExecCondition=` of the backup timers' services, so only the leader takes backups."""
    return (
        '/usr/bin/python3 -c "import urllib.request; '
        f"urllib.request.urlopen('http://127.0.0.1:{rest_port}/primary', timeout=5)\""
    )


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(for the conf.d file, for Patroni's dynamic configuration): Patroni ignores a file's value for
    the parameters it owns; the ones it sets from its own keys are left out of both."""
    local = {k: v for k, v in settings.items() if k not in PATRONI_OWNED and k not in PATRONI_LOCAL}
    dcs = {k: v for k, v in settings.items() if k in PATRONI_OWNED}
    return local, dcs


def dcs_config(ha: Ha, parameters: dict[str, Any]) -> dict[str, Any]:
    """Patroni's dynamic configuration as hearthdb declares it (what `GET /config` answers)."""
    return {
        "ttl": ha.ttl,
        "loop_wait": ha.loop_wait,
        "retry_timeout": ha.retry_timeout,
        "maximum_lag_on_failover": ha.maximum_lag_on_failover,
        "synchronous_mode": ha.synchronous_mode,
        "synchronous_mode_strict": ha.synchronous_mode_strict,
        "failsafe_mode": ha.failsafe_mode,
        "check_timeline": True,
        "postgresql": {
            "use_pg_rewind": ha.use_pg_rewind,
            "use_slots": True,
            # a former leader that cannot be rewound is copied anew rather than left out
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
            "parameters": {k: _dcs_value(v) for k, v in sorted(parameters.items())},
        },
    }


def _dcs_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def _same(a: Any, b: Any) -> bool:
    """Patroni keeps what it was given; compare numbers and words by their text (100 == "100")."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return str(a) == str(b)


def dcs_patch(desired: dict[str, Any], have: dict[str, Any] | None) -> dict[str, Any]:
    """The `PATCH /config` body taking `have` to `desired`: only what differs; a parameter hearthdb once
    set and no longer declares is not removed (Patroni's defaults would be silently swapped in)."""
    have = have or {}
    out: dict[str, Any] = {}
    for key, value in desired.items():
        if isinstance(value, dict):
            sub = dcs_patch(value, have.get(key) if isinstance(have.get(key), dict) else {})
            if sub:
                out[key] = sub
        elif key not in have or not _same(have[key], value):
            out[key] = value
    return out


def patroni_config(
    ha: Ha,
    me: str,
    addresses: dict[str, str],
    target: Cluster,
    listen: list[str],
    replication_password: str,
    parameters: dict[str, Any],
) -> str:
    """/etc/patroni/V-C.yml (Debian's patroni@V-C unit reads it). It holds the replication password:
    written mode 600 for postgres, never shown. Patroni writes postgresql.conf, which includes hearthdb's
    base file (`custom_conf`), which includes conf.d; pg_hba.conf and pg_ident.conf stay hearthdb's
    (no `pg_hba` key here, so Patroni never rewrites them)."""
    mine = addresses[me]
    listen_host = ",".join("0.0.0.0" if a == "*" else a for a in listen) or "localhost"
    repl = {"username": ha.replication_user, "password": replication_password}
    doc = {
        "scope": ha.scope,
        "namespace": NAMESPACE,
        "name": me,
        # health checks (GET) answer anyone; the calls that change something (switchover, restart,
        # PATCH /config) only this host and the members
        "restapi": {
            "listen": f"0.0.0.0:{ha.rest_port}",
            "connect_address": f"{mine}:{ha.rest_port}",
            "allowlist": ["127.0.0.1/32", "::1/128"],
            "allowlist_include_members": True,
        },
        "etcd3": {"hosts": etcd_hosts(ha, addresses)},
        "bootstrap": {"dcs": dcs_config(ha, parameters)},
        "postgresql": {
            "listen": f"{listen_host}:{target.port}",
            "connect_address": f"{mine}:{target.port}",
            "use_unix_socket": True,
            "use_unix_socket_repl": True,  # its own replication checks over the socket
            "data_dir": target.data_directory,
            "bin_dir": target.bindir,
            "config_dir": target.etc,
            "custom_conf": target.patroni_base_conf,
            "pgpass": target.patroni_pgpass,
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": repl,
                **({"rewind": dict(repl)} if ha.use_pg_rewind else {}),  # a copy: no YAML anchor
            },
            "parameters": {"unix_socket_directories": "/var/run/postgresql"},
            "create_replica_methods": ["basebackup"],
            "basebackup": [{"checkpoint": "fast"}],
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
    head = "# Managed by hearthdb (ha): do not edit. Holds the replication password: mode 600.\n"
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def base_conf(target: Cluster) -> str:
    """Patroni's `custom_conf`: what Debian's postgresql.conf gives a cluster that the parameters do not
    (data directory, hba and ident files, socket, logging as Debian does), then hearthdb's conf.d."""
    lines = [
        f"data_directory = '{target.data_directory}'",
        f"hba_file = '{target.hba_file}'",
        f"ident_file = '{target.ident_file}'",
        f"external_pid_file = '/var/run/postgresql/{target.version}-{target.name}.pid'",
        "unix_socket_directories = '/var/run/postgresql'",
        "logging_collector = on",
        "log_directory = '/var/log/postgresql'",
        f"log_filename = 'postgresql-{target.version}-{target.name}.log'",
        "log_file_mode = 0640",
        "include_dir = 'conf.d'",
    ]
    head = "# Managed by hearthdb (ha): the base configuration Patroni includes. Do not edit.\n"
    return head + "".join(line + "\n" for line in lines)


# ------------------------------------------------------------------------------------------------- hba


def hba_lines(
    ha: Ha | None, addresses: dict[str, str], pooler: Pooler | None, tls_require: bool, endpoint_direct: bool
) -> list[str]:
    """The rules HA and the pooler need, placed before the user's: replication (and pg_rewind's
    connection to `postgres`) from every member, the pooler's lookup role by peer through an ident map,
    and, when HAProxy sends clients straight to PostgreSQL, clients arriving from the members."""
    kind = "hostssl" if tls_require else "host"
    out: list[str] = []
    if pooler is not None and pooler.enabled:
        out.append(f"local {AUTH_DBNAME} {pooler.auth_user} peer map={IDENT_MAP}")
    if ha is not None and ha.enabled:
        out.append(f"local replication {ha.replication_user} scram-sha-256")
        for name in ha.members:
            cidr = _cidr(addresses[name])
            out.append(f"{kind} replication {ha.replication_user} {cidr} scram-sha-256")
            if ha.use_pg_rewind:
                out.append(f"{kind} postgres {ha.replication_user} {cidr} scram-sha-256")
        if endpoint_direct:
            out += [f"{kind} all all {_cidr(addresses[n])} scram-sha-256" for n in ha.members]
    return out


def _cidr(address: str) -> str:
    if ":" in address:
        return f"{address}/128"
    if address.replace(".", "").isdigit():
        return f"{address}/32"
    return address  # a host name: pg_hba resolves it


IDENT_MAP = "hearthdb_pooler"


def ident_content(pooler: Pooler | None, extra: tuple[str, ...] = ()) -> str:
    """pg_ident.conf: PgBouncer runs as OS user postgres; its lookup role logs in as itself by peer.
    `extra`: the maps of other sections (monitoring's)."""
    head = "# Managed by hearthdb: do not edit.\n# MAPNAME  SYSTEM-USERNAME  PG-USERNAME\n"
    lines = [f"{IDENT_MAP} postgres {pooler.auth_user}"] if pooler is not None and pooler.enabled else []
    return head + "".join(f"{line}\n" for line in [*lines, *extra])


# --------------------------------------------------------------------------------------------- HAProxy


def haproxy_config(ha: Ha, addresses: dict[str, str], backend_port: int) -> str:
    """/etc/haproxy/haproxy.cfg: the write port sends to the member whose Patroni answers /primary, the
    read port to those answering /replica (the leader as a backup server). A member marked down has its
    sessions shut, so clients reconnect to the new leader at once."""
    check = f"check port {ha.rest_port} inter 1s fastinter 500ms downinter 1s fall 2 rise 1"
    servers = [(n, addresses[n]) for n in ha.members]

    def backend(name: str, port: int, path: str) -> str:
        lines = [
            f"listen {name}",
            f"    bind *:{port}",
            "    mode tcp",
            "    option httpchk",
            f"    http-check send meth GET uri {path}",
            "    http-check expect status 200",
            "    default-server on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions",
        ]
        lines += [f"    server {n} {a}:{backend_port} {check}" for n, a in servers]
        return "\n".join(lines) + "\n"

    head = """# Managed by hearthdb (ha.endpoint): do not edit.
global
    log /dev/log local0
    # clients at once per member (each takes two descriptors; systemd's limit for the unit is far above)
    maxconn 4000
    user haproxy
    group haproxy

defaults
    log global
    mode tcp
    retries 2
    timeout connect 3s
    timeout client 30m
    timeout server 30m
    timeout check 2s

"""
    rw = backend("hearthdb_primary", ha.endpoint.port, "/primary")
    ro = backend("hearthdb_replicas", ha.endpoint.read_only_port, "/replica")
    return head + rw + "\n" + ro


# ------------------------------------------------------------------------------------------- PgBouncer


def pooled_databases(pooler: Pooler, managed: list[str]) -> list[str]:
    return list(pooler.databases) if pooler.databases is not None else list(managed)


def pgbouncer_ini(pooler: Pooler, databases: list[str], target: Cluster, tls: tuple[str, str, str] | None) -> str:
    """/etc/pgbouncer/pgbouncer.ini. Every pool reaches the local server over its socket with no fixed
    user, so the client's own SCRAM exchange is passed through; users are looked up with `auth_query`
    as `auth_user` (peer: no password anywhere). `tls`: (sslmode, cert, key) for clients, or None."""
    sock = "/var/run/postgresql"
    entries = [f"{db} = host={sock} port={target.port} dbname={db}" for db in databases]
    if AUTH_DBNAME not in databases:
        entries.append(f"{AUTH_DBNAME} = host={sock} port={target.port} dbname={AUTH_DBNAME}")
    settings = {
        "listen_addr": pooler.listen_address,
        "listen_port": pooler.port,
        "unix_socket_dir": sock,
        "auth_type": "scram-sha-256",
        "auth_file": "/etc/pgbouncer/userlist.txt",
        "auth_user": pooler.auth_user,
        "auth_dbname": AUTH_DBNAME,
        "auth_query": f"SELECT usename, passwd FROM {AUTH_SCHEMA}.{AUTH_FUNCTION}($1)",
        "pool_mode": pooler.pool_mode,
        "max_client_conn": pooler.max_client_conn,
        "default_pool_size": pooler.default_pool_size,
        "min_pool_size": pooler.min_pool_size,
        "reserve_pool_size": pooler.reserve_pool_size,
        "max_db_connections": pooler.max_db_connections,
        "server_idle_timeout": pooler.server_idle_timeout,
        "max_prepared_statements": pooler.max_prepared_statements,
        "ignore_startup_parameters": "extra_float_digits,options",
        "logfile": "/var/log/postgresql/pgbouncer.log",
        "pidfile": "/var/run/postgresql/pgbouncer.pid",
        "log_connections": 0,
        "log_disconnections": 0,
    }
    if tls is not None:
        settings.update({"client_tls_sslmode": tls[0], "client_tls_cert_file": tls[1], "client_tls_key_file": tls[2]})
    head = "; Managed by hearthdb (pooler): do not edit.\n"
    return (
        head
        + "[databases]\n"
        + "".join(e + "\n" for e in entries)
        + "\n[pgbouncer]\n"
        + "".join(f"{k} = {v}\n" for k, v in settings.items())
    )


AUTH_BODY = (
    "SELECT a.rolname, a.rolpassword FROM pg_catalog.pg_authid a WHERE a.rolname = p_usename "
    "AND a.rolcanlogin AND NOT a.rolsuper AND NOT a.rolreplication "
    "AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now())"
)
AUTH_CONFIG = ["search_path=pg_catalog, pg_temp"]


def auth_function_statements(pooler: Pooler) -> list[Stmt]:
    """PgBouncer's documented lookup: SECURITY DEFINER with a pinned search_path, the verifier only of a
    login role that is not a superuser, not the replication role, and whose VALID UNTIL has not passed;
    EXECUTE for the lookup role alone."""
    fn = sql.Identifier(AUTH_SCHEMA, AUTH_FUNCTION)
    return [
        stmt("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION postgres", AUTH_SCHEMA),
        stmt("REVOKE ALL ON SCHEMA {} FROM PUBLIC", AUTH_SCHEMA),
        stmt("GRANT USAGE ON SCHEMA {} TO {}", AUTH_SCHEMA, pooler.auth_user),
        Stmt(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {}(p_usename text) RETURNS TABLE (usename name, passwd text) "
                "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {}"
            )
            .format(fn, sql.Literal(AUTH_BODY))
            .as_string(None)
        ),
        stmt("REVOKE ALL ON FUNCTION {}(text) FROM PUBLIC", fn),
        stmt("GRANT EXECUTE ON FUNCTION {}(text) TO {}", fn, pooler.auth_user),
    ]


def _acl_grantees(acl: list[str] | None, privilege: str) -> set[str]:
    """Who holds `privilege` (a letter) in an ACL; '' is PUBLIC."""
    out = set()
    for item in acl or []:
        grantee, _, rest = item.partition("=")
        if privilege in rest.split("/")[0]:
            out.add(grantee.strip('"'))
    return out


def plan_access_functions(ha: Ha | None, pooler: Pooler | None, functions: dict[str, Any] | None) -> list[Stmt]:
    """In the `postgres` database: pg_rewind's functions for the replication role, and the pooler's
    lookup function, each only where the reading differs. `functions`: the reading's `functions`
    (regprocedure -> {src, secdef, config, acl, schema_acl}; missing ones absent)."""
    have = functions or {}
    out: list[Stmt] = []
    if ha is not None and ha.enabled and ha.use_pg_rewind:
        for sig in REWIND_FUNCTIONS:
            if ha.replication_user not in _acl_grantees((have.get(sig) or {}).get("acl"), "X"):
                name, args = sig.split("(")
                out.append(
                    Stmt(
                        sql.SQL("GRANT EXECUTE ON FUNCTION {}({} TO {}")
                        .format(sql.Identifier("pg_catalog", name), sql.SQL(args), sql.Identifier(ha.replication_user))
                        .as_string(None)
                    )
                )
    if pooler is not None and pooler.enabled:
        fn = have.get(f"{AUTH_SCHEMA}.{AUTH_FUNCTION}(text)")
        ok = (
            fn is not None
            and fn.get("src") == AUTH_BODY
            and fn.get("secdef") is True
            and fn.get("config") == AUTH_CONFIG
            and _acl_grantees(fn.get("acl"), "X") == {pooler.auth_user, "postgres"}
            and _acl_grantees(fn.get("schema_acl"), "U") == {pooler.auth_user, "postgres"}
        )
        if not ok:
            out += auth_function_statements(pooler)
    return [connect(AUTH_DBNAME), *out] if out else []


# -------------------------------------------------------------------------------------------- checking


def replica_checks(ha: Ha, cluster: dict[str, Any] | None) -> dict[str, bool]:
    """From Patroni's `GET /cluster` on any member: every declared member is there and exactly one leads;
    every other one streams, within `maximum_lag_on_failover`, on the leader's timeline."""
    members = (cluster or {}).get("members") or []
    by_name = {m.get("name"): m for m in members}
    leaders = [m for m in members if m.get("role") in ("leader", "standby_leader")]
    replicas = [m for m in members if m not in leaders]
    timeline = leaders[0].get("timeline") if len(leaders) == 1 else None

    def lag(m: dict[str, Any]) -> int | None:
        value = m.get("lag")
        return value if isinstance(value, int) else None

    return {
        "ha_members": set(by_name) == set(ha.members) and len(leaders) == 1,
        "ha_streaming": bool(replicas) and all(m.get("state") == "streaming" for m in replicas),
        "ha_lag": bool(replicas)
        and all((lag(m) is not None and lag(m) <= ha.maximum_lag_on_failover) for m in replicas),
        "ha_timeline": timeline is not None and all(m.get("timeline") == timeline for m in replicas),
    }
