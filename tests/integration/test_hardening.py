"""Hardening on a real host: TLS with verify-full and refusal without it, secrets searched for in every
channel a deploy touches, and the security baseline (CIS PostgreSQL items that apply to us)."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lab import api
from operations.tls import ensure_ca

from .conftest import ROOT, Run, changed_ops, connect, psql_json, secrets, ssh

LAB_NET = "10.213.7.0/24"


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def config(tls_dir: Path) -> dict[str, Any]:
    return {
        "cluster": {"listen_addresses": ["*"]},
        "hba": [
            {"type": "local", "database": "all", "user": "all"},
            {"type": "host", "database": "all", "user": "all", "address": "127.0.0.1/32"},
            {"type": "host", "database": "all", "user": "all", "address": LAB_NET},
        ],
        "tls": {"enabled": True, "require": True, "dir": str(tls_dir), "min_protocol": "TLSv1.2"},
        # every statement logged: a secret that reached the server in SQL would be in the log
        "settings": {"log_statement": "all", "log_min_duration_statement": 0},
        # an encrypted pgBackRest repository: its passphrase is one more secret to look for
        "backup": {"enabled": True, "encryption": True},
    }


@pytest.fixture(scope="module")
def host(lab_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return api.reset(lab_hosts[1]["name"], layer="backup")


class ProcessSampler:
    """Samples the host's full process list (`ps -eo args`) while a deploy runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = ssh(self.name, "ps -eo args --no-headers", check=False)
            self.samples.append(out.stdout)
            time.sleep(0.05)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def runs(deploy: Callable[..., Run], host: dict[str, Any], config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Deploys at every verbosity with passwords rotating between them, the process list sampled."""
    name = host["name"]
    outputs: list[str] = []
    passwords: list[str] = []
    samplers: list[ProcessSampler] = []
    variants = [
        ("-y", "-vvv"),
        ("-y", "--debug"),
        ("--dry", "--diff", "-vvv"),
        ("-y", "--diff", "-vvv"),
    ]
    for i, args in enumerate(variants):
        pw = f"Rotating-Secret-{i}-{os.urandom(6).hex()}"
        passwords.append(pw)
        with ProcessSampler(name) as sampler:
            run = deploy([name], config, *args, env={"HEARTHDB_PASSWORD_LOGOS": pw})
        samplers.append(sampler)
        outputs.append(run.stdout + run.stderr)
    yield {"outputs": outputs, "passwords": passwords, "samples": samplers}


def all_secrets(deploy: Callable[..., Run], runs: dict[str, Any], tls_dir: Path) -> list[str]:
    values = list(secrets(deploy).values()) + runs["passwords"]
    # the TLS private keys' bodies (PEM without the armour lines)
    for key in tls_dir.glob("*.key"):
        body = "".join(ln for ln in key.read_text().splitlines() if not ln.startswith("-----"))
        values += [body[i : i + 40] for i in range(0, len(body) - 40, 40)]
    return values


def leaks(text: str, values: list[str]) -> list[str]:
    return [v[:6] + "…" for v in values if v and v in text]


def test_tls_verify_full_and_refused_without_tls(
    runs: dict[str, Any], host: dict[str, Any], tls_dir: Path, deploy: Callable[..., Run]
) -> None:
    pw = runs["passwords"][3]
    with connect(host, "logos", pw, "logos_db", sslmode="verify-full", sslrootcert=str(tls_dir / "ca.crt")) as conn:
        version = conn.execute("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert version is not None and version[0] in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(host, "logos", pw, "logos_db", sslmode="disable")
    other_ca = tls_dir / "other"
    ensure_ca(other_ca)  # a CA that did not sign the server's certificate
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect(host, "logos", pw, "logos_db", sslmode="verify-full", sslrootcert=str(other_ca / "ca.crt"))


def test_secrets_never_appear_in_any_channel(
    runs: dict[str, Any], host: dict[str, Any], tls_dir: Path, deploy: Callable[..., Run]
) -> None:
    name = host["name"]
    values = all_secrets(deploy, runs, tls_dir)
    assert len(values) > 8
    host_files = ssh(
        name,
        "find /etc/postgresql /etc/postgresql-common /etc/pgbackrest /etc/systemd/system /run/hearthdb.lock /tmp "
        "/var/tmp -type f ! -name 'hearthdb-server.key' ! -path /etc/pgbackrest/pgbackrest.conf -exec cat {} + "
        "2>/dev/null",
        check=False,
    ).stdout
    channels = {
        "pyinfra output (-vvv, --debug, --dry --diff, --diff)": "\n".join(runs["outputs"]),
        "PostgreSQL logs": ssh(name, "cat /var/log/postgresql/*.log").stdout,
        "pgBackRest logs": ssh(name, "cat /var/log/pgbackrest/*.log").stdout,
        "remote process lists": "\n".join(s for sampler in runs["samples"] for s in sampler.samples),
        "remote journal": ssh(name, "journalctl --no-pager -o cat").stdout,
        "auth log": ssh(name, "cat /var/log/auth.log 2>/dev/null; journalctl --no-pager -o cat _COMM=sudo").stdout,
        "shell histories": ssh(
            name, "cat /root/.bash_history /root/.psql_history /var/lib/postgresql/.*history 2>/dev/null", check=False
        ).stdout,
        "files hearthdb wrote on the host": host_files,
        "files on the controller besides the stores": "\n".join(
            p.read_text(errors="replace") for p in ROOT.glob("*.log") if p.is_file()
        ),
    }
    found = {channel: leaks(text, values) for channel, text in channels.items()}
    assert found == {channel: [] for channel in channels}
    # the sampler really saw processes, the log really logged statements
    assert sum(len(s.samples) for s in runs["samples"]) > 10
    assert "statement: " in channels["PostgreSQL logs"]
    assert "SCRAM-SHA-256$" not in channels["PostgreSQL logs"]  # nor the verifiers
    assert "backup.cipher_pass" in secrets(deploy)  # the passphrase was among the values searched for
    assert "repo1-cipher-pass=<redacted>" in channels["pgBackRest logs"]  # pgBackRest logged its options


def test_secret_stores_are_private(
    runs: dict[str, Any], host: dict[str, Any], tls_dir: Path, deploy: Callable[..., Run]
) -> None:
    stores = [deploy.secrets_file, tls_dir / "ca.key", tls_dir / f"{host['name']}.key"]  # type: ignore[attr-defined]
    for path in stores:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    remote = ssh(host["name"], "stat -c '%a %U' /etc/postgresql/17/main/hearthdb-server.key").stdout.split()
    assert remote == ["600", "postgres"]
    conf = ssh(host["name"], "stat -c '%a %U' /etc/pgbackrest/pgbackrest.conf").stdout.split()
    assert conf == ["600", "postgres"]  # the one file on the host that holds the repository passphrase


def test_rerun_with_tls_changes_nothing(
    runs: dict[str, Any], host: dict[str, Any], config: dict[str, Any], deploy: Callable[..., Run]
) -> None:
    env = {"HEARTHDB_PASSWORD_LOGOS": runs["passwords"][3]}
    assert changed_ops(deploy([host["name"]], config, "--dry", "--json", env=env).json) == []


BASELINE = {
    "password_encryption is scram-sha-256": (
        "SELECT to_json(current_setting('password_encryption') = 'scram-sha-256')"
    ),
    "no role has an md5 or plain password": (
        "SELECT to_json(count(*) = 0) FROM pg_authid WHERE rolpassword IS NOT NULL "
        "AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'"
    ),
    "no trust, password or md5 rule in pg_hba": (
        "SELECT to_json(count(*) = 0) FROM pg_hba_file_rules WHERE auth_method IN ('trust', 'password', 'md5')"
    ),
    "TCP rules require TLS when declared": ("SELECT to_json(count(*) = 0) FROM pg_hba_file_rules WHERE type = 'host'"),
    "ssl is on": "SELECT to_json(current_setting('ssl') = 'on')",
    "TLS protocol floor is 1.2 or higher": (
        "SELECT to_json(current_setting('ssl_min_protocol_version') IN ('TLSv1.2', 'TLSv1.3'))"
    ),
    "connections and disconnections are logged": (
        "SELECT to_json(current_setting('log_connections') = 'on' AND current_setting('log_disconnections') = 'on')"
    ),
    "DDL is logged": "SELECT to_json(current_setting('log_statement') IN ('ddl', 'mod', 'all'))",
    "data checksums are on": "SELECT to_json(current_setting('data_checksums') = 'on')",
    "only postgres is a superuser": (
        "SELECT to_json(array_agg(rolname) = ARRAY['postgres']::name[]) FROM pg_roles WHERE rolsuper"
    ),
    "application roles hold no createrole, createdb, replication or bypassrls": (
        "SELECT to_json(count(*) = 0) FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> 'postgres' "
        "AND (rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)"
    ),
    "PUBLIC cannot connect to any managed database": (
        "SELECT to_json(bool_and(NOT has_database_privilege('public', datname, 'CONNECT'))) FROM pg_database "
        "WHERE datname LIKE '%\\_db'"
    ),
}


@pytest.mark.parametrize("item", list(BASELINE))
def test_security_baseline(runs: dict[str, Any], host: dict[str, Any], item: str) -> None:
    assert psql_json(host["name"], BASELINE[item]) is True, item


def test_no_public_create_on_schema_public_anywhere(runs: dict[str, Any], host: dict[str, Any]) -> None:
    dbs = psql_json(host["name"], "SELECT json_agg(datname) FROM pg_database WHERE datname LIKE '%\\_db'")
    for db in dbs:
        assert (
            psql_json(host["name"], "SELECT to_json(has_schema_privilege('public', 'public', 'CREATE'))", database=db)
            is False
        ), db


@pytest.mark.parametrize(
    ("path", "mode", "owner"),
    [
        ("/var/lib/postgresql/17/main", "700", "postgres"),
        ("/etc/postgresql/17/main/pg_hba.conf", "640", "postgres"),
        ("/etc/postgresql/17/main/conf.d/50-hearthdb.conf", "640", "postgres"),
        ("/etc/postgresql/17/main/hearthdb-server.key", "600", "postgres"),
    ],
)
def test_file_modes(runs: dict[str, Any], host: dict[str, Any], path: str, mode: str, owner: str) -> None:
    assert ssh(host["name"], f"stat -c '%a %U' {path}").stdout.split() == [mode, owner]
    config_mode = ssh(host["name"], "stat -c %a /etc/postgresql/17/main/postgresql.conf").stdout.strip()
    assert not int(config_mode, 8) & 0o002  # not world-writable
