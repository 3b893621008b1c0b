"""Pytest fixtures for tests that need lab hosts (hearthdb-lab, see lab/).

Load them from tests/conftest.py with `pytest_plugins = ["conftest_lab"]` and mark such tests
`@pytest.mark.lab`. Needs root; hosts are hdb1..hdbN at 10.213.7.(10+i), reachable with the ssh config
from `lab_ssh_config` (testinfra: `--ssh-config`, or `testinfra.get_host("ssh://hdb1", ssh_config=...)`).

Env: HEARTHDB_LAB_HOSTS (default 3) hosts; HEARTHDB_LAB_KEEP=1 leaves a lab this session started running.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import api


def _wanted() -> int:
    return int(os.environ.get("HEARTHDB_LAB_HOSTS", "3"))


@pytest.fixture(scope="session")
def _lab_session() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    was_up = bool(api.hosts())
    yield
    # A lab someone had running before the session is theirs: leave it.
    if not was_up and os.environ.get("HEARTHDB_LAB_KEEP") != "1":
        api.down()


@pytest.fixture
def lab_hosts(_lab_session: None) -> list[dict[str, Any]]:
    """hdb1..hdbN running (plain base); a no-op costing ~0.1 s when they already are.

    Function-scoped on purpose: another module may have taken the lab down in between.
    """
    return api.up(_wanted())[: _wanted()]


@pytest.fixture
def lab_ssh_config(lab_hosts: list[dict[str, Any]]) -> Path:
    return api.ssh_config_path()


@pytest.fixture
def fresh_host(lab_hosts: list[dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    """Factory: reset a host to its cached layers (~1-2 s) and return its hosts.json entry."""
    return api.reset


@pytest.fixture
def lab_pg_host(_lab_session: None) -> dict[str, Any]:
    """A host with postgresql-17 + pgvector installed but no cluster (the cached postgresql layer),
    freshly reset: the host after hdb1..hdbN."""
    name = f"hdb{_wanted() + 1}"
    api.up(_wanted() + 1, layer="postgresql")
    return api.reset(name, layer="postgresql")
