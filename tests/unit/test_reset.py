"""The nuclear reset refuses without the exact host name, and backs up before it purges."""

from __future__ import annotations

import pytest

from operations import reset
from operations.errors import ConfigError
from operations.facts import PgClusters
from operations.target import Cluster

from .fakehost import run_op

ARGS = {"backup_dir": "/var/backups/hearthdb", "target": Cluster(17, "main", 5432)}
ONLINE = {"17/main": {"online": True}}


@pytest.mark.parametrize("confirm", [None, "", "hdb", "fakehost2", "FAKEHOST", "all"])
def test_refused_without_the_exact_host_name(confirm: str | None) -> None:
    with pytest.raises(ConfigError, match="nuclear reset of fakehost refused: confirm with --data confirm=fakehost"):
        run_op(reset.nuclear_reset, {PgClusters: ONLINE}, confirm=confirm, **ARGS)


def test_backup_first_then_purge() -> None:
    cmds, _ = run_op(reset.nuclear_reset, {PgClusters: ONLINE}, confirm="other,fakehost", **ARGS)
    assert len(cmds) == 2
    backup, purge = cmds
    assert backup.startswith("set -eu\n")
    assert "pg_dumpall -p 5432 --globals-only" in backup
    assert "pg_dump -p 5432 -Fc" in backup
    assert "/var/backups/hearthdb/" in backup
    assert "apt-get purge" in purge and "rm -rf /var/lib/postgresql" in purge


def test_no_cluster_means_nothing_to_back_up() -> None:
    cmds, _ = run_op(reset.nuclear_reset, {PgClusters: {}}, confirm="fakehost", **ARGS)
    assert cmds == [reset.PURGE_SCRIPT]


def test_with_backups_a_pgbackrest_full_backup_comes_first() -> None:
    cmds, _ = run_op(reset.nuclear_reset, {PgClusters: ONLINE}, confirm="fakehost", stanza="db1", **ARGS)
    assert len(cmds) == 3
    assert cmds[0] == "runuser -u postgres -- /usr/bin/pgbackrest --stanza=db1 --type=full backup"
    assert "pg_dumpall" in cmds[1] and "apt-get purge" in cmds[2]
    # the repository is not among what the purge removes
    assert "pgbackrest" not in reset.PURGE_SCRIPT.split("rm -rf", 1)[1]
    stopped = {"17/main": {"online": False}}
    cmds, _ = run_op(reset.nuclear_reset, {PgClusters: stopped}, confirm="fakehost", stanza="db1", **ARGS)
    assert not any("pgbackrest" in str(c) for c in cmds)  # a stopped cluster cannot be backed up online
