"""Integration fixtures: real lab hosts (systemd-nspawn Debian 13), real SSH, real PostgreSQL.

The lab is brought up once per session (`hearthdb-lab up`); `.ci/run` brings it up beforehand so
every test shares the same hosts. Nothing here mocks PostgreSQL or the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from lab import api

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
    hosts = api.hosts()
    if len(hosts) < LAB_HOSTS:
        api.up(LAB_HOSTS)
        hosts = api.hosts()
    return hosts


def testinfra_host(name: str) -> Any:
    return testinfra.get_host(f"ssh://{name}", ssh_config=str(api.ssh_config_path()))


def ssh(name: str, command: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-F", str(api.ssh_config_path()), name, command],
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


def psql_json(name: str, query: str, database: str = "postgres", port: int = 5432) -> Any:
    """Run a query that returns one JSON value, as postgres over the local socket; SQL on stdin."""
    out = ssh(name, f"sudo -u postgres psql -X -q -A -t -v ON_ERROR_STOP=1 -p {port} -d {database}", stdin=query)
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def deploy(tmp_path_factory: pytest.TempPathFactory, lab_hosts: list[dict[str, Any]]) -> Callable[..., Run]:
    """Run `pyinfra inventory.py deploy.py` against the named lab hosts with a given hearthdb.yml."""

    def run(hosts: list[str], config: dict[str, Any] | None = None, *args: str, check: bool = True) -> Run:
        tmp_path = tmp_path_factory.mktemp("deploy")
        by_name = {h["name"]: h for h in lab_hosts}
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(
            yaml.safe_dump(
                {
                    "hosts": [
                        {"name": n, "host": by_name[n]["address"], "user": "root", "key": by_name[n]["key"]}
                        for n in hosts
                    ]
                }
            )
        )
        cfg = tmp_path / "hearthdb.yml"
        cfg.write_text(yaml.safe_dump(config or {}))
        env = {**os.environ, "HEARTHDB_INVENTORY": str(inventory), "HEARTHDB_CONFIG": str(cfg)}
        proc = subprocess.run(
            [PYINFRA, "inventory.py", "deploy.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        result = Run(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"deploy failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
        return result

    return run


def changed_ops(plan_or_results: dict[str, Any]) -> list[str]:
    """Names of operations pyinfra reports as changing, from its `--json` output."""
    if plan_or_results.get("results"):
        return [op["name"] for op in plan_or_results["results"]["operations"] if op["success"]]
    return [op["name"] for op in plan_or_results["plan"] if op["hosts_with_change"]]


@pytest.fixture(scope="session")
def fresh_host(lab_hosts: list[dict[str, Any]]) -> Iterator[str]:
    """The last lab host, reset to the plain base (no PostgreSQL) for tests of the install path."""
    name = lab_hosts[-1]["name"]
    api.reset(name)
    yield name
