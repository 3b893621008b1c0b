"""The host suite's options and what it expects of a host, computed from hearthdb.yml by hearthdb's own
pure model (the same desired state a deploy converges to).

    pytest tests/host --hosts=ssh://admin@db1.example.org --sudo \
        --hearthdb-config=prod.yml [--hearthdb-inventory=hosts.yml]

`--hosts`, `--ssh-config`, `--ssh-identity-file`, `--sudo` are testinfra's own options. The two of hearthdb
default to HEARTHDB_CONFIG and HEARTHDB_INVENTORY, as for a deploy. The inventory gives each host its
inventory name (what backups' stanzas and HA's members are named by), matched by address or name; without
one a host is known by the name `--hosts` gives it. Read-only: nothing is written on any host.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from operations.config import HearthConfig, load_config, stanza_of
from operations.desired import DatabaseSpec, RoleSpec, derived_settings, desired_databases, desired_roles
from operations.facts import HostResources
from operations.inventory import INVENTORY_ENV, inventory_hosts
from operations.target import Cluster

# Sections a test needs declared: others are deselected (not skipped) for hosts without them.
SECTIONS = ("tls", "backup", "ha", "pooler", "monitoring")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hearthdb")
    group.addoption(
        "--hearthdb-config",
        default=os.environ.get("HEARTHDB_CONFIG", "hearthdb.yml"),
        help="the hearthdb.yml the hosts were deployed with (default: $HEARTHDB_CONFIG, else hearthdb.yml)",
    )
    group.addoption(
        "--hearthdb-inventory",
        default=os.environ.get(INVENTORY_ENV),
        help="the deploy's hosts.yml, for the hosts' inventory names (default: $HEARTHDB_INVENTORY)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "section(name): runs only when that section of hearthdb.yml is enabled")
    config.addinivalue_line("markers", "any_host: also runs on a backup repository host and an etcd-only member")


def _config(config: pytest.Config) -> HearthConfig:
    return load_config(Path(config.getoption("--hearthdb-config")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cfg = _config(config)
    keep, drop = [], []
    for item in items:
        marks = [m.args[0] for m in item.iter_markers("section")]
        (keep if all(getattr(cfg, s).enabled for s in marks) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def cfg(pytestconfig: pytest.Config) -> HearthConfig:
    return _config(pytestconfig)


@dataclass
class Expected:
    """What one host must be: hearthdb's desired state for it, and how to ask its PostgreSQL."""

    host: Any  # testinfra's host
    name: str  # its inventory name
    cfg: HearthConfig
    target: Cluster
    databases: dict[str, DatabaseSpec]
    roles: dict[str, RoleSpec]
    stanza: str | None

    @property
    def kind(self) -> str:
        """ "database", or "repository" (backup.repository.host) or "etcd" (an etcd member only): those
        run no PostgreSQL."""
        if self.cfg.backup.enabled and self.name == self.cfg.backup.repository.host:
            return "repository"
        if self.cfg.ha.enabled and self.name not in self.cfg.ha.members:
            return "etcd"
        return "database"

    def sql(self, query: str, database: str = "postgres") -> str:
        """One query as OS user postgres over the local socket; its single value (psql -At)."""
        cmd = f"psql -XAtq -v ON_ERROR_STOP=1 -p {self.target.port} -d {shlex.quote(database)} -c {shlex.quote(query)}"
        with self.host.sudo("postgres"):
            out = self.host.run(cmd)
        assert out.rc == 0, f"{query[:80]}…: {out.stderr}"
        return out.stdout.strip()

    def json(self, query: str, database: str = "postgres") -> Any:
        return json.loads(self.sql(query, database) or "null")

    def each_database(self, query: str, names: list[str]) -> dict[str, Any]:
        """`query` (one JSON value) in each named database, all in one psql: database -> value."""
        parts = [f"-c {shlex.quote(chr(92) + 'connect ' + name)} -c {shlex.quote(query)}" for name in names]
        cmd = f"psql -XAtq -v ON_ERROR_STOP=1 -p {self.target.port} -d postgres " + " ".join(parts)
        with self.host.sudo("postgres"):
            out = self.host.run(cmd)
        assert out.rc == 0, out.stderr
        return dict(zip(names, (json.loads(line) for line in out.stdout.splitlines()), strict=True))

    def derived(self) -> dict[str, Any]:
        """The settings a deploy derives from this host's resources (the same fact, run here)."""
        if not self.cfg.sizing.enabled:
            return {}
        fact = HostResources()
        out = self.host.run(fact.command())
        return derived_settings(self.cfg, fact.process(out.stdout.splitlines()))


def _inventory_name(host: Any, inventory: str | None) -> str:
    address = host.backend.get_hostname()
    if inventory:
        for name, data in inventory_hosts(inventory):
            if address in (name, data["ssh_hostname"]):
                return name
        raise pytest.UsageError(f"--hearthdb-inventory: no host {address!r} in {inventory}")
    return address


@pytest.fixture(scope="module")
def expected(host: Any, cfg: HearthConfig, pytestconfig: pytest.Config) -> Expected:
    name = _inventory_name(host, pytestconfig.getoption("--hearthdb-inventory"))
    return Expected(
        host=host,
        name=name,
        cfg=cfg,
        target=Cluster.of(cfg.cluster),
        databases=desired_databases(cfg),
        roles=desired_roles(cfg),
        stanza=stanza_of(cfg, name),
    )


@pytest.fixture(autouse=True)
def _database_hosts_only(request: pytest.FixtureRequest) -> None:
    """A check of PostgreSQL on a host that runs none is skipped, saying why (not failed)."""
    if "expected" not in request.fixturenames or request.node.get_closest_marker("any_host"):
        return
    e: Expected = request.getfixturevalue("expected")
    if e.kind != "database":
        pytest.skip(f"{e.name} is {'the backup repository host' if e.kind == 'repository' else 'an etcd member only'}")
