"""Faults under real conditions: the deploy killed at a random operation, an unreachable host, two
deploys at once, PostgreSQL stopped mid-run. Data survives; the next run converges."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lab import api

from .conftest import PYINFRA, ROOT, Run, psql_json, ssh

SEEDS = [11, 23, 47]
CHECKSUM = "SELECT to_json(md5(coalesce(string_agg(t::text, ',' ORDER BY t.content), ''))) FROM memory_shards t"


@pytest.fixture(scope="module")
def host(lab_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return api.reset(lab_hosts[1]["name"], layer="postgresql")


def wait_for_slow_migration(name: str, timeout: float = 60) -> None:
    """Until a slow migration runs (its pg_sleep is in pg_stat_activity): a fault then hits the migration."""
    query = "SELECT to_json(count(*)) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%'"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = ssh(name, "sudo -u postgres psql -X -q -A -t -d postgres", stdin=query, check=False)
        if out.returncode == 0 and out.stdout.strip() not in ("", "0"):
            return
        time.sleep(0.1)
    raise AssertionError(f"no slow migration started on {name} within {timeout} s")


def add_slow(root: Path, version: int, seconds: float) -> None:
    (root / "pp" / f"{version:04d}_slow{version}.up.sql").write_text(
        f"SELECT pg_sleep({seconds});\nCREATE TABLE slow{version} (id int);\n"
    )
    (root / "pp" / f"{version:04d}_slow{version}.down.sql").write_text(f"DROP TABLE slow{version};\n")


@pytest.fixture(scope="module")
def data(deploy: Callable[..., Run], host: dict[str, Any]) -> dict[str, str]:
    """A converged host holding memories; per-table checksums to compare after every fault."""
    deploy([host["name"]], {}, "-y")
    for db in ("logos_db", "aletheia_db"):
        ssh(
            host["name"],
            f"sudo -u postgres psql -X -q -d {db} -c "
            "\"INSERT INTO memory_shards (content, tags) SELECT 'memory ' || i, ARRAY['t' || (i % 7)] "
            'FROM generate_series(1, 500) i"',
        )
    return {db: psql_json(host["name"], CHECKSUM, database=db) for db in ("logos_db", "aletheia_db")}


def checksums(name: str) -> dict[str, str]:
    return {db: psql_json(name, CHECKSUM, database=db) for db in ("logos_db", "aletheia_db")}


def start(deploy: Callable[..., Run], hosts: list[str], config: dict, env: dict | None = None) -> subprocess.Popen:
    """A deploy as a process of its own (so it can be killed), with the session's inventory and secrets."""
    where = Path(tempfile.mkdtemp(prefix="fault-", dir=Path(deploy.secrets_file).parent))  # type: ignore[attr-defined]
    environ = {**api.deploy_env(where, api.inventory(hosts), config, deploy.secrets_file), **(env or {})}  # type: ignore[attr-defined]
    return subprocess.Popen(
        [PYINFRA, "-y", "inventory.py", "deploy.py"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


# Operations of a deploy followed by its validation (deploy lock … validation), as pyinfra starts them.
OPERATIONS = 11


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_at_a_random_operation_then_rerun_converges(
    seed: int, deploy: Callable[..., Run], host: dict[str, Any], data: dict[str, str]
) -> None:
    rng = random.Random(seed)
    # a change that gives most operations work: new AIs and a setting
    config = {
        "ai_names": ["logos", "aletheia", f"kill{seed}a", f"kill{seed}b"],
        "settings": {"work_mem": f"{rng.randint(5, 60)}MB"},
    }
    target = rng.randint(3, OPERATIONS)  # kill when the target-th operation starts
    proc = start(deploy, [host["name"]], config)
    started = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if "--> Starting operation:" in line:
            started += 1
            if started == target:
                time.sleep(rng.uniform(0, 0.3))
                os.killpg(proc.pid, signal.SIGKILL)
                break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the deploy ended before operation {target}"
    rerun = deploy([host["name"]], config, "-y")  # takes over the dead run's lock, converges, validates
    assert "validation run" in rerun.stderr
    assert checksums(host["name"]) == data


def test_one_host_unreachable(
    deploy: Callable[..., Run], lab_hosts: list[dict[str, Any]], host: dict[str, Any], tmp_path: Path
) -> None:
    inventory = {
        "hosts": [
            {"name": host["name"], "host": host["address"], "key": host["key"], "host_key": "ignore"},
            {
                "name": "ghost",
                "host": "10.213.7.99",
                "key": host["key"],
                "host_key": "ignore",
            },  # on the lab bridge, nobody there
        ]
    }
    env = api.deploy_env(tmp_path, inventory, {}, deploy.secrets_file)  # type: ignore[attr-defined]
    proc = subprocess.run(
        [PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0
    assert "ghost" in proc.stderr and "Could not connect" in proc.stderr
    # the reachable host converged to the end (pyinfra pads the host prefixes to one width)
    assert re.search(rf"\[{host['name']}\]\s+validation run \w+: (\d+)/\1 checks passed", proc.stderr)


def test_two_deploys_at_once_second_stops_nothing_twice(
    deploy: Callable[..., Run], host: dict[str, Any], schema_copy: Path, data: dict[str, str]
) -> None:
    add_slow(schema_copy, 3, 4)
    env = {"HEARTHDB_SCHEMA_DIR": str(schema_copy)}
    first = start(deploy, [host["name"]], {}, env)
    wait_for_slow_migration(host["name"])  # the first holds the lock, inside its slow migration
    second = deploy([host["name"]], {}, "-y", check=False, env=env)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    assert second.code != 0
    assert "another deploy holds the lock" in second.stderr
    applied = psql_json(
        host["name"],
        "SELECT json_agg(version) FROM hearthdb.schema_migrations WHERE bundle = 'pp'",
        database="logos_db",
    )
    assert sorted(applied) == [1, 2, 3]
    deploy([host["name"]], {}, "-y", env=env)  # and the next one runs normally


def test_postgresql_stopped_mid_run_clear_error_then_recovers(
    deploy: Callable[..., Run], host: dict[str, Any], schema_copy: Path, data: dict[str, str]
) -> None:
    add_slow(schema_copy, 4, 4)
    env = {"HEARTHDB_SCHEMA_DIR": str(schema_copy)}
    result: list[Run] = []
    t = threading.Thread(target=lambda: result.append(deploy([host["name"]], {}, "-y", check=False, env=env)))
    t.start()
    wait_for_slow_migration(host["name"])
    ssh(host["name"], "pg_ctlcluster 17 main stop -m fast")
    t.join()
    assert result[0].code != 0
    assert re.search(r"terminating connection|server closed the connection|is not running", result[0].stderr)
    deploy([host["name"]], {}, "-y", env=env)  # starts the cluster again, applies 0004, validates
    assert ssh(host["name"], "pg_lsclusters -h").stdout.split()[3] == "online"
    assert checksums(host["name"]) == data
