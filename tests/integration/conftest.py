"""Integration fixtures: real lab hosts (systemd-nspawn Debian 13), real SSH, real PostgreSQL.

The lab is brought up once per session (`hearthdb-lab up`); `.ci/run` brings it up beforehand so
every test shares the same hosts. Nothing here mocks PostgreSQL or the host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import testinfra
import yaml

from lab import api
from operations.plan import PHASES

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
LAB_HOSTS = int(os.environ.get("HEARTHDB_TEST_HOSTS", "2"))


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab_hosts() -> list[dict[str, Any]]:
    """hdb1..hdbN (N = HEARTHDB_TEST_HOSTS, default 2); more hosts running (a benchmark's) are left alone."""
    api.up(LAB_HOSTS)
    return api.hosts()[:LAB_HOSTS]


def infra_host(name: str) -> Any:
    return testinfra.get_host(f"ssh://{name}", ssh_config=str(api.ssh_config_path()))


def ssh(
    name: str, command: str, stdin: str | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess:
    return api.ssh(name, command, stdin=stdin, check=check, timeout=timeout)


def psql_json(name: str, query: str, database: str = "postgres", port: int = 5432) -> Any:
    """Run a query that returns one JSON value, as postgres over the local socket; SQL on stdin."""
    out = ssh(
        name, f"sudo -u postgres psql -X -q -A -t -v ON_ERROR_STOP=1 -p {port} -d {database}", stdin=query, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"psql on {name} failed: {out.stderr}")
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def deploy(tmp_path_factory: pytest.TempPathFactory, lab_hosts: list[dict[str, Any]]) -> Callable[..., Run]:
    """Run `pyinfra inventory.py deploy.py` against the named lab hosts with a given hearthdb.yml.
    Generated passwords are kept in one secrets file for the whole session."""
    secrets_file = tmp_path_factory.mktemp("secrets") / "secrets.yml"

    def run(
        hosts: list[str],
        config: dict[str, Any] | None = None,
        *args: str,
        check: bool = True,
        env: dict | None = None,
        entry: str = "deploy.py",
    ) -> Run:
        where = tmp_path_factory.mktemp("deploy")
        env = {**api.deploy_env(where, api.inventory(hosts), config or {}, secrets_file), **(env or {})}
        proc = subprocess.run(
            [PYINFRA, "inventory.py", entry, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        result = Run(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            # the errors first (a long run's tail may have lost them), then the end of the output
            errors = [ln for ln in proc.stderr.splitlines() if "rror" in ln or "hearthdb:" in ln][:40]
            raise AssertionError(
                f"deploy failed ({proc.returncode}):\n" + "\n".join(errors) + f"\n...\n{proc.stderr[-6000:]}"
            )
        return result

    run.secrets_file = secrets_file  # type: ignore[attr-defined]
    return run


def host_suite(hosts: list[str], config: dict[str, Any], where: Path, *args: str) -> Run:
    """The user's host suite (tests/host) against lab hosts, as a user runs it: its own pytest process,
    testinfra's --hosts and --ssh-config, the hearthdb.yml and hosts.yml of the deploy."""
    api.deploy_env(where, api.inventory(hosts), config, where / "unused-secrets.yml")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/host",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hosts=" + ",".join(f"ssh://{h}" for h in hosts),
            f"--ssh-config={api.ssh_config_path()}",
            f"--hearthdb-config={where / 'hearthdb.yml'}",
            f"--hearthdb-inventory={where / 'hosts.yml'}",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def suite_counts(run: Run) -> dict[str, int]:
    """passed / failed / deselected counts of the suite's summary line."""
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|deselected|skipped|error)", run.stdout)}


def secrets(deploy: Callable[..., Run]) -> dict[str, str]:
    """The generated passwords the session's deploys use (controller side)."""
    return yaml.safe_load(deploy.secrets_file.read_text())  # type: ignore[attr-defined]


# The operation that converges everything inside the cluster reports its phases in its own lines.
OBJECTS_OP = "SQL objects"
PHASE_LINE = re.compile(r"^\s+\[[^]]+\] (?:applying (.+?) \(\d+ changes?\)|(.+?) would run:)$", re.M)


def phases(stderr: str) -> list[str]:
    """The phases of the SQL objects operation that change (`applying …` when a run executes them,
    `… would run:` in `--dry`), in order, each once."""
    found = [a or b for a, b in PHASE_LINE.findall(stderr)]
    return list(dict.fromkeys(p for p in found if p in PHASES))


def changed_ops(run: Run | dict[str, Any]) -> list[str]:
    """Names of operations pyinfra reports as changing, from its `--json` output (without the
    "hearthdb | " prefix of the deploy). Given the whole Run, the SQL objects operation is replaced by the
    names of its phases that change (roles, databases, …), read from the run's output."""
    out = run.json if isinstance(run, Run) else run
    if out.get("results"):
        names = [op["name"] for op in out["results"]["operations"] if op["success"]]
    else:
        names = [op["name"] for op in out["plan"] if op["hosts_with_change"]]
    names = [n.removeprefix("hearthdb | ") for n in names]
    if isinstance(run, Run) and OBJECTS_OP in names:
        i = names.index(OBJECTS_OP)
        names[i : i + 1] = phases(run.stderr)
    return names


@pytest.fixture(scope="session")
def fresh_host(lab_hosts: list[dict[str, Any]]) -> Iterator[str]:
    """The last lab host, reset to the plain base (no PostgreSQL) for tests of the install path."""
    name = lab_hosts[-1]["name"]
    api.reset(name, layer=None)
    yield name


@pytest.fixture(scope="session")
def pg_host(lab_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """The first lab host, reset onto the cached layer with PostgreSQL packages (no cluster yet)."""
    return api.reset(lab_hosts[0]["name"], layer="postgresql")


def connect(host: dict[str, Any], user: str, password: str, dbname: str, **kwargs: Any) -> psycopg.Connection:
    """A real client connection from the controller over the lab network (TCP, SCRAM)."""
    return psycopg.connect(
        host=host["address"], port=5432, user=user, password=password, dbname=dbname, connect_timeout=5, **kwargs
    )


@pytest.fixture(scope="module")
def schema_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's bundles that a test module may add migrations to (HEARTHDB_SCHEMA_DIR)."""
    root = tmp_path_factory.mktemp("schema")
    for bundle in ("hm", "pp"):
        shutil.copytree(ROOT / "schema" / bundle, root / bundle)
    return root
