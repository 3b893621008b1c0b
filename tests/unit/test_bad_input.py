"""Issue 6, the bad-input matrix: bad hearthdb.yml, passwords and inventories must stop the run with one
line naming the key path and the reason, before any host is contacted.

Cases with cli=True (the default) run the real CLI (`pyinfra -y inventory.py deploy.py`, a subprocess
from the repo root): non-zero exit, exactly one error line, and no connection. The inventory points at a local TCP
listener standing in for sshd (the sentinel) that records every connection; the matrix passes only if
it recorded none, while a valid input run the same way does reach it (test_the_sentinel_sees_a_valid_run).
Each CLI run costs about a second of CPU (pyinfra's imports), so the other cases call the loaders the
CLI runs (inventory.py's inventory_hosts, group_data/all.py's load_config and resolve_passwords) in
process, with the same files and environment.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from operations.config import load_config
from operations.errors import ConfigError
from operations.inventory import inventory_hosts
from operations.secrets import resolve_passwords

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).with_name("pyinfra")
WORKERS = 4
SENTINEL = "@sentinel"  # in a case's inventory: the sentinel host entry
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# pyinfra prints a PyinfraError as `--> pyinfra error[ in <file> line <n>]: <message>`.
ERROR_LINE = re.compile(r"^--> pyinfra error(?: in \S+ line \d+)?: (?P<message>.+)$")
PROGRESS = ("--> Loading config...", "--> Loading inventory...")


@dataclass(frozen=True)
class Case:
    id: str
    expected: str  # "<key path>: <reason>", a substring of the one-line error
    config: dict[str, Any] | str = field(default_factory=dict)  # hearthdb.yml; a str is written verbatim
    inventory: dict[str, Any] | str | None = None  # hosts.yml; default: the sentinel alone
    env: dict[str, str] = field(default_factory=dict)  # "{dir}" is the case's own directory
    cli: bool = True  # through the pyinfra CLI; else through the same loaders, in process


def Cfg(
    id: str, config: dict[str, Any] | str, expected: str, env: dict[str, str] | None = None, cli: bool = True
) -> Case:
    """A hearthdb.yml (or password) case, run against the sentinel-only inventory."""
    return Case(id, expected, config=config, env=env or {}, cli=cli)


def Inv(
    id: str, inventory: dict[str, Any] | str, expected: str, env: dict[str, str] | None = None, cli: bool = True
) -> Case:
    """An inventory case, with the default hearthdb.yml."""
    return Case(id, expected, inventory=inventory, env=env or {}, cli=cli)


INJECT = "x'; DROP ROLE postgres; --"
LOCAL_HBA = {"type": "local", "database": "all", "user": "all"}


def hba(**rule: Any) -> dict[str, Any]:
    return {"hba": [{"type": "host", "address": "10.0.0.0/8", **rule}]}


CASES = [
    # ---- identifiers: invalid, reserved, system, too long, look-alike, quoted, injected
    Cfg("ai-upper-case", {"ai_names": ["Logos"]}, "ai_names[0]: 'Logos' is not a valid name"),
    Cfg("ai-leading-digit", {"ai_names": ["1logos"]}, "ai_names[0]: '1logos' is not a valid name", cli=False),
    Cfg("ai-empty", {"ai_names": [""]}, "ai_names[0]: must be a non-empty name"),
    Cfg("ai-space", {"ai_names": ["lo gos"]}, "ai_names[0]: 'lo gos' is not a valid name", cli=False),
    Cfg("ai-reserved-word", {"ai_names": ["select"]}, "ai_names[0]: 'select' is a reserved SQL key word"),
    Cfg("ai-too-long", {"ai_names": ["a" * 64]}, f"ai_names[0]: {'a' * 64!r} is longer than 63 bytes"),
    Cfg("ai-database-too-long", {"ai_names": ["a" * 61]}, "ai_names[0]: its database name 'aaaa"),
    Cfg(
        "ai-accented", {"ai_names": ["sophié"]}, "non-ASCII character 'é' (LATIN SMALL LETTER E WITH ACUTE)", cli=False
    ),
    Cfg(
        "ai-cyrillic-o",
        {"ai_names": ["l\u043egos"]},
        "ai_names[0]: 'l\u043egos' contains the non-ASCII character '\u043e' (CYRILLIC SMALL LETTER O)",
    ),
    Cfg(
        "ai-greek-alpha",
        {"ai_names": ["\u03b1letheia"]},
        "non-ASCII character '\u03b1' (GREEK SMALL LETTER ALPHA)",
        cli=False,
    ),
    Cfg("ai-zero-width-space", {"ai_names": ["lo\u200bgos"]}, "ai_names[0]: 'lo\\u200bgos' contains the non-ASCII"),
    Cfg("ai-single-quote", {"ai_names": ["lo'gos"]}, 'ai_names[0]: "lo\'gos" is not a valid name'),
    Cfg("ai-double-quote", {"ai_names": ['"logos"']}, "ai_names[0]: '\"logos\"' is not a valid name", cli=False),
    Cfg("ai-injection", {"ai_names": [INJECT]}, f"ai_names[0]: {INJECT!r} is not a valid name"),
    Cfg("ai-duplicate", {"ai_names": ["logos", "nous", "logos"]}, "ai_names[2]: 'logos' is listed twice"),
    Cfg("ai-postgres", {"ai_names": ["postgres"]}, "ai_names[0]: 'postgres' is a PostgreSQL system name"),
    Cfg("ai-pg-prefix", {"ai_names": ["pg_signal_backend"]}, "ai_names[0]: 'pg_signal_backend' is a PostgreSQL system"),
    Cfg("ai-template1", {"ai_names": ["template1"]}, "ai_names[0]: 'template1' is a PostgreSQL system name", cli=False),
    Cfg("ai-is-shared-owner", {"ai_names": ["hearthminds"]}, "ai_names[0]: 'hearthminds' clashes with the shared"),
    Cfg("ai-is-shared-db", {"ai_names": ["hearthminds_db"]}, "ai_names[0]: 'hearthminds_db' clashes with the shared"),
    Cfg("shared-db-injection", {"shared_db": {"name": INJECT}}, f"shared_db.name: {INJECT!r} is not a valid name"),
    Cfg(
        "shared-owner-postgres",
        {"shared_db": {"owner": "postgres"}},
        "shared_db.owner: 'postgres' is a PostgreSQL",
        cli=False,
    ),
    Cfg("cluster-name-quote", {"cluster": {"name": "ma'in"}}, 'cluster.name: "ma\'in" is not a valid name', cli=False),
    Cfg("cluster-name-dash", {"cluster": {"name": "my-db"}}, "cluster.name: 'my-db' has a dash", cli=False),
    Cfg("role-key-injection", {"roles": {INJECT: {}}}, f"roles.{INJECT}: {INJECT!r} is not a valid name"),
    Cfg(
        "role-key-pg-role",
        {"roles": {"pg_read_all_data": {}}},
        "roles.pg_read_all_data: 'pg_read_all_data' is a",
        cli=False,
    ),
    Cfg(
        "database-key-quote",
        {"databases": {'notes"db': {"owner": "hearthminds"}}},
        "databases.notes\"db: 'notes\"db' is not a valid name",
    ),
    Cfg(
        "member-of-injection",
        {"roles": {"reporting": {"member_of": ["pg_read_all_data; DROP ROLE x"]}}},
        "roles.reporting.member_of[0]: role 'pg_read_all_data; DROP ROLE x' is not declared",
    ),
    Cfg(
        "connect-injection",
        {"databases": {"hearthminds_db": {"connect": ["x' OR '1'='1"]}}},
        "databases.hearthminds_db.connect[0]: \"x' OR '1'='1\" is not a valid name",
    ),
    Cfg(
        "owner-undeclared",
        {"databases": {"notes_db": {"owner": "nobody"}}},
        "databases.notes_db.owner: role 'nobody' is not declared in roles",
        cli=False,
    ),
    # ---- pg_hba rules
    Cfg("hba-database-injection", hba(database="all; DROP"), "hba[0].database: 'all; DROP' is not valid here; use all"),
    Cfg(
        "hba-user-quoted",
        {"hba": [{**LOCAL_HBA, "user": '"postgres"'}]},
        "hba[0].user: '\"postgres\"' is not valid",
        cli=False,
    ),
    Cfg("hba-cidr-prefix", hba(address="10.0.0.0/33"), "hba[0].address: '10.0.0.0/33' is not a CIDR network"),
    Cfg("hba-cidr-host-bits", hba(address="10.0.0.1/8"), "hba[0].address: '10.0.0.1/8' is not a CIDR network"),
    Cfg(
        "hba-cidr-name",
        hba(address="db.example.org"),
        "hba[0].address: 'db.example.org' is not a CIDR network",
        cli=False,
    ),
    Cfg(
        "hba-no-address", {"hba": [{"type": "host"}]}, "hba[0].address: a host rule needs an address (CIDR)", cli=False
    ),
    Cfg(
        "hba-local-address",
        {"hba": [{**LOCAL_HBA, "address": "10.0.0.0/8"}]},
        "hba[0].address: a local rule takes",
        cli=False,
    ),
    Cfg("hba-method-unknown", hba(method="ident"), "hba[0].method: Input should be 'scram-sha-256'"),
    Cfg("hba-method-trust", hba(method="trust"), "hba[0].method: 'trust' is refused (use scram-sha-256)"),
    Cfg("hba-peer-over-tcp", hba(method="peer"), "hba[0].method: peer works only for local rules"),
    Cfg("hba-type-unknown", hba(type="hostgssenc"), "hba[0].type: Input should be 'local', 'host'", cli=False),
    # ---- extensions and schema bundles
    Cfg(
        "extension-typo",
        {"default_extensions": ["vectr"]},
        "default_extensions[0].name: unknown extension 'vectr'; did you mean 'vector'?",
    ),
    Cfg(
        "extension-unknown",
        {"default_extensions": ["vector", "zombodb"]},
        "default_extensions[1].name: unknown",
        cli=False,
    ),
    Cfg(
        "extension-removed-in-17",
        {"default_extensions": ["adminpack"]},
        "'adminpack' was removed in PostgreSQL 17",
        cli=False,
    ),
    Cfg(
        "extension-injection",
        {"default_extensions": ["vector; DROP EXTENSION plpgsql"]},
        "default_extensions[0].name: 'vector; DROP EXTENSION plpgsql' is not a valid extension name",
    ),
    Cfg("template1-extension-typo", {"template1_extensions": ["pg_trgmm"]}, "did you mean 'pg_trgm'?", cli=False),
    Cfg(
        "database-extension-typo",
        {"databases": {"hearthminds_db": {"extensions": ["timescale"]}}},
        "databases.hearthminds_db.extensions[0].name: unknown extension 'timescale'; did you mean 'timescaledb'?",
    ),
    Cfg(
        "extension-version-injection",
        {"default_extensions": [{"name": "vector", "version": "0.8'; DROP"}]},
        'default_extensions[0].version: "0.8\'; DROP" is not valid here',
    ),
    Cfg(
        "extra-extension-package-injection",
        {"extra_extensions": {"pgrouting": "pgrouting; curl x | sh"}},
        "extra_extensions.pgrouting: 'pgrouting; curl x | sh' is not a Debian package name",
    ),
    Cfg(
        "extra-extension-bad-name",
        {"extra_extensions": {"Pg Routing": None}},
        "extra_extensions.Pg Routing: 'Pg",
        cli=False,
    ),
    Cfg("bundle-injection", {"schema": {"ai": ["pp; rm -rf /"]}}, "schema.ai[0]: 'pp; rm -rf /' is not valid here"),
    Cfg(
        "bundle-missing",
        {"schema": {"shared": ["nope"]}},
        "schema.shared: bundle 'nope' has no folder in",
        cli=False,
    ),
    # ---- privileges and pg_cron jobs (issue 14's keys)
    Cfg(
        "grant-undeclared-role",
        {"databases": {"hearthminds_db": {"grants": {"ghost": {"public": {"tables": ["SELECT"]}}}}}},
        "databases.hearthminds_db.grants.ghost: role 'ghost' is not declared in roles",
    ),
    Cfg(
        "grant-unknown-privilege",
        {"roles": {"ro": {}}, "databases": {"hearthminds_db": {"grants": {"ro": {"public": {"tables": ["READ"]}}}}}},
        "unknown privilege 'READ'; tables take SELECT",
    ),
    Cfg(
        "grant-wrong-kind",
        {
            "roles": {"ro": {}},
            "databases": {"hearthminds_db": {"grants": {"ro": {"public": {"sequences": ["EXECUTE"]}}}}},
        },
        "EXECUTE does not apply to sequences (it applies to functions)",
    ),
    Cfg(
        "job-bad-schedule",
        {"databases": {"logos_db": {"jobs": {"sweep": {"schedule": "daily", "command": "VACUUM"}}}}},
        "databases.logos_db.jobs.sweep.schedule: 'daily' is not a pg_cron schedule",
    ),
    Cfg(
        "job-pg-cron-elsewhere",
        {
            "databases": {
                "logos_db": {"jobs": {"sweep": {"schedule": "0 3 * * *", "command": "VACUUM"}}},
                "aletheia_db": {"extensions": ["vector", "pg_cron"]},
            }
        },
        "databases.aletheia_db.extensions[1].name: pg_cron can only be created in the database "
        "cron.database_name names (hearthminds_db)",
        cli=False,
    ),
    Cfg("shared-db-typo", {"shared_db": {"enabld": False}}, "shared_db.enabld: unknown key; did you mean 'enabled'?"),
    # ---- settings: names, injected values, types, negative and absurd sizes
    Cfg("setting-name-injection", {"settings": {"work_mem = 1; x": 1}}, "settings.work_mem = 1; x: not a parameter"),
    Cfg("setting-value-injection", {"settings": {"application_name": INJECT}}, "settings.application_name: "),
    Cfg(
        "setting-value-backslash",
        {"settings": {"search_path": "public\\x27"}},
        "contains '\\\\': quotes, backslash",
        cli=False,
    ),
    Cfg("setting-value-newline", {"settings": {"log_line_prefix": "%m\nfsync = off"}}, "control characters", cli=False),
    Cfg(
        "role-setting-injection",
        {"roles": {"logos": {"settings": {"search_path": "public; DROP SCHEMA public"}}}},
        "roles.logos.settings.search_path: 'public; DROP SCHEMA public' contains ';'",
    ),
    Cfg(
        "setting-managed", {"settings": {"port": 5433}}, "settings.port: not settable here: set cluster.port", cli=False
    ),
    Cfg("setting-not-scalar", {"settings": {"work_mem": [64]}}, "settings.work_mem: must be a boolean, number or"),
    Cfg("memory-negative", {"settings": {"work_mem": "-64MB"}}, "settings.work_mem: '-64MB' is negative"),
    Cfg("memory-absurd", {"settings": {"shared_buffers": "10TB"}}, "'10TB' is above PostgreSQL's maximum for shared"),
    Cfg(
        "memory-absurd-bare",
        {"settings": {"maintenance_work_mem": 99999999999}},
        "is above PostgreSQL's maximum",
        cli=False,
    ),
    Cfg(
        "memory-too-small", {"settings": {"shared_buffers": "64kB"}}, "'64kB' is below PostgreSQL's minimum", cli=False
    ),
    Cfg(
        "memory-unit-case",
        {"settings": {"work_mem": "64mb"}},
        "'64mb' is not a size (a number with B, kB, MB",
        cli=False,
    ),
    Cfg(
        "memory-bool",
        {"settings": {"effective_cache_size": True}},
        "settings.effective_cache_size: True is not",
        cli=False,
    ),
    Cfg("time-negative", {"settings": {"statement_timeout": "-1s"}}, "settings.statement_timeout: '-1s' is negative"),
    Cfg("time-absurd", {"settings": {"lock_timeout": "100d"}}, "settings.lock_timeout: '100d' is above", cli=False),
    Cfg(
        "int-out-of-range",
        {"settings": {"max_connections": 0}},
        "settings.max_connections: 0 is out of range",
        cli=False,
    ),
    Cfg(
        "enum-unknown", {"settings": {"wal_level": "archive"}}, "settings.wal_level: 'archive' is not one of", cli=False
    ),
    # ---- paths and locale
    Cfg("locale-injection", {"cluster": {"locale": "C'; DROP"}}, 'cluster.locale: "C\'; DROP" is not valid here'),
    Cfg(
        "secrets-file-injection", {"secrets_file": "/tmp/s; rm -rf ~"}, "secrets_file: '/tmp/s; rm -rf ~' contains ';'"
    ),
    Cfg("secrets-file-subshell", {"secrets_file": "$(id).yml"}, "secrets_file: '$(id).yml' contains '$'", cli=False),
    Cfg("backup-dir-injection", {"backup_dir": "/var/b; rm -rf /"}, "backup_dir: '/var/b; rm -rf /' is not valid here"),
    Cfg(
        "backup-dir-relative",
        {"backup_dir": "backups"},
        "backup_dir: 'backups' is not valid here; use an absolute",
        cli=False,
    ),
    # ---- unknown keys (with the key meant)
    Cfg("typo-top-level", {"ai_name": ["nous"]}, "ai_name: unknown key; did you mean 'ai_names'?"),
    Cfg("typo-cluster", {"cluster": {"prot": 5433}}, "cluster.prot: unknown key; did you mean 'port'?"),
    Cfg(
        "typo-role",
        {"roles": {"ops": {"superusr": False}}},
        "roles.ops.superusr: unknown key; did you mean 'superuser'",
    ),
    Cfg(
        "typo-hba",
        {"hba": [{"type": "host", "adress": "10/8"}]},
        "hba[0].adress: unknown key; did you mean 'address'",
        cli=False,
    ),
    Cfg("typo-database", {"databases": {"hearthminds_db": {"conect": []}}}, "did you mean 'connect'?", cli=False),
    Cfg("typo-tls", {"tls": {"enabeld": True}}, "tls.enabeld: unknown key; did you mean 'enabled'?", cli=False),
    Cfg("unknown-key", {"tags": {"team": "x"}}, "hearthdb.yml: tags: unknown key"),
    # ---- wrong types and out-of-range values
    Cfg("port-not-int", {"cluster": {"port": "high"}}, "cluster.port: Input should be a valid integer"),
    Cfg(
        "port-privileged",
        {"cluster": {"port": 80}},
        "cluster.port: Input should be greater than or equal to 1024",
        cli=False,
    ),
    Cfg("bool-not-bool", {"allow_drop": "maybe"}, "allow_drop: Input should be a valid boolean"),
    Cfg("ai-names-not-list", {"ai_names": "logos"}, "ai_names: Input should be a valid list (got 'logos')", cli=False),
    Cfg("ai-name-not-string", {"ai_names": [42]}, "ai_names[0]: Input should be a valid string (got 42)", cli=False),
    Cfg("roles-not-mapping", {"roles": ["logos"]}, "roles: Input should be a valid dictionary"),
    Cfg(
        "cluster-null",
        {"cluster": None},
        "cluster: Input should be a valid dictionary or instance of Cluster",
        cli=False,
    ),
    Cfg(
        "connection-limit",
        {"roles": {"ops": {"connection_limit": -5}}},
        "roles.ops.connection_limit: Input should",
        cli=False,
    ),
    Cfg(
        "min-length-too-low",
        {"password_min_length": 8},
        "password_min_length: Input should be greater than or",
        cli=False,
    ),
    Cfg("not-yaml", "cluster: [unclosed\n", "hearthdb.yml: not valid YAML"),
    Cfg("not-a-mapping", "- logos\n- aletheia\n", "hearthdb.yml: (top level): must be a mapping of keys", cli=False),
    # ---- PostgreSQL version
    Cfg("version-too-old", {"cluster": {"version": 12}}, "cluster: version 12 is not supported; use one of 15, 16"),
    Cfg("version-too-new", {"cluster": {"version": 18}}, "cluster: version 18 is not supported"),
    Cfg(
        "version-word",
        {"cluster": {"version": "seventeen"}},
        "cluster.version: Input should be a valid integer",
        cli=False,
    ),
    # ---- risky choices without their allow flag
    Cfg(
        "superuser-refused",
        {"roles": {"ops": {"superuser": True}}},
        "roles.ops.superuser: refused; set allow_super",
        cli=False,
    ),
    Cfg(
        "drop-refused",
        {"roles": {"old": {"state": "absent"}}},
        "roles.old.state: absent needs allow_drop: true",
        cli=False,
    ),
    # ---- high availability and pooling (ha, pooler)
    Cfg(
        "ha-etcd-two-members",
        {"ha": {"enabled": True, "members": ["db1", "db2", "db3"], "etcd": ["db1", "db2"]}},
        "ha.etcd: 2 members; etcd needs an odd count of at least three",
    ),
    Cfg(
        "ha-ttl-too-short",
        {"ha": {"enabled": True, "members": ["db1", "db2", "db3"], "ttl": 20, "loop_wait": 12}},
        "ha.ttl: loop_wait + 2 * retry_timeout = 22 exceeds ttl 20",
        cli=False,
    ),
    Cfg(
        "ha-ttl-below-patroni-minimum",
        {"ha": {"enabled": True, "members": ["db1", "db2", "db3"], "ttl": 15}},
        "ha.ttl: Input should be greater than or equal to 20",
        cli=False,
    ),
    Cfg(
        "ha-typo",
        {"ha": {"enabled": True, "members": ["db1", "db2", "db3"], "tll": 15}},
        "ha.tll: unknown key; did you mean 'ttl'?",
    ),
    Cfg(
        "pooler-pool-mode",
        {"pooler": {"enabled": True, "pool_mode": "txn"}},
        "pooler.pool_mode: Input should be 'session', 'transaction' or 'statement'",
        cli=False,
    ),
    Cfg(
        "pooler-database-unknown",
        {"pooler": {"enabled": True, "databases": ["ghost_db"]}},
        "pooler.databases[0]: 'ghost_db' is not a database hearthdb manages",
    ),
    # ---- passwords
    Cfg(
        "password-is-role-name",
        {},
        "roles.logos.password (HEARTHDB_PASSWORD_LOGOS): equal to the role name",
        {"HEARTHDB_PASSWORD_LOGOS": "logos"},
    ),
    Cfg(
        "password-is-role-name-upper",
        {},
        "roles.aletheia.password (HEARTHDB_PASSWORD_ALETHEIA): equal to the role name",
        {"HEARTHDB_PASSWORD_ALETHEIA": "ALETHEIA"},
        cli=False,
    ),
    Cfg(
        "password-too-short",
        {},
        "roles.hearthminds.password (HEARTHDB_PASSWORD_HEARTHMINDS): 9 characters, fewer than password_min_length (16)",
        {"HEARTHDB_PASSWORD_HEARTHMINDS": "short-one"},
    ),
    Cfg(
        "password-not-printable",
        {},
        "roles.logos.password (HEARTHDB_PASSWORD_LOGOS): only printable ASCII",
        {"HEARTHDB_PASSWORD_LOGOS": "correct horse battery staple"},
        cli=False,
    ),
    Cfg(
        "password-absent-no-generation",
        {"generate_passwords": False},
        "roles.hearthminds.password: none given; set HEARTHDB_PASSWORD_HEARTHMINDS",
    ),
    # ---- the inventory
    Inv("inventory-empty", {"hosts": []}, "hosts.yml: hosts: no hosts; list at least one"),
    Inv("inventory-empty-file", "", "hosts.yml: hosts: Input should be a valid list (got None)", cli=False),
    Inv(
        "inventory-missing",
        {},
        "absent.yml: cannot read the inventory",
        {"HEARTHDB_INVENTORY": "{dir}/absent.yml"},
        cli=False,
    ),
    Inv(
        "inventory-port-too-high",
        {"hosts": [SENTINEL, {"host": "db2", "port": 70000}]},
        "hosts.yml: hosts[1].port: Input should be less than or equal to 65535 (got 70000)",
    ),
    Inv(
        "inventory-port-zero",
        {"hosts": [{"host": SENTINEL, "port": 0}]},
        "hosts[0].port: Input should be greater",
        cli=False,
    ),
    Inv(
        "inventory-port-word",
        {"hosts": [SENTINEL, {"host": "db2", "port": "ssh"}]},
        "hosts[1].port: Input should be",
        cli=False,
    ),
    Inv(
        "inventory-key-typo",
        {"hosts": [SENTINEL, {"host": "db2", "prot": 22}]},
        "hosts.yml: hosts[1].prot: unknown key; did you mean 'port'?",
    ),
    Inv("inventory-top-typo", {"host": [SENTINEL]}, "hosts.yml: host: unknown key; did you mean 'hosts'?", cli=False),
    Inv(
        "inventory-host-semicolon",
        {"hosts": [SENTINEL, {"host": "db2;reboot"}]},
        "hosts.yml: hosts[1].host: 'db2;reboot' is not a host name or IP address (it contains ';')",
    ),
    Inv(
        "inventory-host-subshell",
        {"hosts": [SENTINEL, {"host": "$(reboot)"}]},
        "hosts[1].host: '$(reboot)' is not",
        cli=False,
    ),
    Inv(
        "inventory-host-option",
        {"hosts": [{"host": "-oProxyCommand"}]},
        "'-oProxyCommand' is not a host name or IP",
        cli=False,
    ),
    Inv("inventory-user-injection", {"hosts": [{"host": SENTINEL, "user": "root; id"}]}, "hosts[0].user: 'root; id'"),
    Inv(
        "inventory-name-quote",
        {"hosts": [{"host": SENTINEL, "name": "db'1"}]},
        'hosts[0].name: "db\'1" is not a',
        cli=False,
    ),
    Inv(
        "inventory-no-host",
        {"hosts": [SENTINEL, {"name": "db2"}]},
        "hosts.yml: hosts[1].host: Field required",
        cli=False,
    ),
    Inv("inventory-duplicate", {"hosts": [SENTINEL, SENTINEL]}, "hosts: 'sentinel' is listed twice"),
    Inv(
        "inventory-key-missing",
        {"hosts": [{"host": SENTINEL, "key": "/nonexistent/id_ed25519"}]},
        "hosts.yml: hosts[0].key: /nonexistent/id_ed25519 is not a file",
        cli=False,
    ),
]


class Sentinel:
    """A TCP listener standing in for sshd: records every connection and closes it at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            self.connections.append(peer)
            conn.close()

    def entry(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "name": "sentinel", "port": self.port}

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass
class Run:
    returncode: int
    stderr: str
    stdout: str


def _with_sentinel(data: Any, entry: dict[str, Any]) -> Any:
    """The inventory with SENTINEL (or `{host: SENTINEL, ...}`) replaced by the sentinel's entry."""
    if data == SENTINEL:
        return entry
    if isinstance(data, dict) and data.get("host") == SENTINEL:
        return {**entry, **{k: v for k, v in data.items() if k != "host"}}
    if isinstance(data, dict):
        return {k: _with_sentinel(v, entry) for k, v in data.items()}
    if isinstance(data, list):
        return [_with_sentinel(v, entry) for v in data]
    return data


def _write(path: Path, data: dict[str, Any] | str) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def case_env(case: Case, where: Path, sentinel_entry: dict[str, Any]) -> dict[str, str]:
    """Write the case's hearthdb.yml and hosts.yml under `where`; the HEARTHDB_* variables that name them."""
    where.mkdir()
    inventory = case.inventory if case.inventory is not None else {"hosts": [SENTINEL]}
    env = {
        "HEARTHDB_CONFIG": str(_write(where / "hearthdb.yml", case.config)),
        "HEARTHDB_INVENTORY": str(_write(where / "hosts.yml", _with_sentinel(inventory, sentinel_entry))),
        "HEARTHDB_SECRETS": str(where / "secrets.yml"),
        "HEARTHDB_LAB_DIR": str(where / "no-lab"),
    }
    env.update({k: v.format(dir=where) for k, v in case.env.items()})
    return env


def run_cli(case: Case, base: Path, sentinel: Sentinel) -> Run:
    """`pyinfra -y inventory.py deploy.py` from the repository root, with only this case's input."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTHDB_", "PYINFRA_"))}
    env.update(case_env(case, base / case.id, sentinel.entry()), PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [str(PYINFRA), "-y", "inventory.py", "deploy.py"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    return Run(proc.returncode, ANSI.sub("", proc.stderr), ANSI.sub("", proc.stdout))


@dataclass
class Matrix:
    runs: dict[str, Run]
    connections: list[tuple[str, int]]


CLI_CASES = [c for c in CASES if c.cli]
IN_PROCESS_CASES = [c for c in CASES if not c.cli]
# `<file>: <key path>: <reason>`; password errors give their source after the key path instead
MESSAGE = re.compile(r"^((hearthdb|hosts|absent)\.yml: )?[^ ]+( \([^)]+\))?: \S")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """Every CLI case, run concurrently against one sentinel."""
    base = tmp_path_factory.mktemp("bad-input")
    sentinel = Sentinel()
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            runs = list(pool.map(lambda c: run_cli(c, base, sentinel), CLI_CASES))
    finally:
        sentinel.close()
    return Matrix({c.id: r for c, r in zip(CLI_CASES, runs, strict=True)}, list(sentinel.connections))


def test_the_matrix_is_large_and_distinct() -> None:
    assert len(CLI_CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)
    inputs = [repr((c.config, c.inventory, sorted(c.env.items()))) for c in CASES]
    assert len(set(inputs)) == len(CASES), "two cases feed the same input"


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_bad_input_via_cli(case: Case, matrix: Matrix) -> None:
    run = matrix.runs[case.id]
    assert matrix.connections == [], "a host was contacted"  # the sentinel saw no SSH connection, for any case
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("-->") and line not in PROGRESS]
    assert len(errors) == 1, run.stderr  # one line, and nothing else but pyinfra's progress lines
    assert set(lines) - set(PROGRESS) == set(errors), run.stderr
    found = ERROR_LINE.match(errors[0])
    assert found, errors[0]
    assert case.expected in found["message"], run.stderr
    assert MESSAGE.match(found["message"]), found["message"]
    assert "Traceback" not in run.stderr
    assert "Connecting to hosts" not in run.stdout + run.stderr


@pytest.mark.parametrize("case", IN_PROCESS_CASES, ids=[c.id for c in IN_PROCESS_CASES])
def test_bad_input_in_process(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("HEARTHDB_")]:
        monkeypatch.delenv(key)
    for key, value in case_env(case, tmp_path / case.id, {"host": "127.0.0.1", "name": "sentinel", "port": 9}).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        inventory_hosts()  # what inventory.py runs, then group_data/all.py
        resolve_passwords(load_config())
    message = str(err.value)
    assert case.expected in message
    assert "\n" not in message
    assert MESSAGE.match(message), message


def test_the_sentinel_sees_a_valid_run(tmp_path: Path) -> None:
    """The control: the same CLI with valid input does connect, so a silent sentinel proves no attempt."""
    sentinel = Sentinel()
    try:
        run = run_cli(Case("valid", expected=""), tmp_path, sentinel)
    finally:
        sentinel.close()
    assert "--> Connecting to hosts..." in run.stderr
    assert sentinel.connections, run.stderr
    assert run.returncode != 0  # the sentinel is not sshd
