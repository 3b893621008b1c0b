"""Operations driven with canned facts: the commands they yield, or the no-op they report."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import pytest
from pyinfra.api.state import StateStage

from operations import backups, conffiles, objects, server
from operations.conffiles import FileDigests
from operations.desired import DatabaseSpec, RoleSpec
from operations.errors import ClusterMismatch
from operations.facts import BackupState, DebPackageStatus, PgClusters, PgState
from operations.hanodes import HaState
from operations.pgbackrest import Backup
from operations.plan import ClusterDesired
from operations.psql import SqlCommand
from operations.target import Cluster

from .fakehost import FakeHost, FakeState, run_op, using

TARGET = Cluster(17, "main", 5432)
WHERE = {"target": TARGET}
UP = {"status": "online", "port": 5432}
ONLINE = {
    "17/main": {
        "version": 17,
        "name": "main",
        "port": 5432,
        "online": True,
        "owner": "postgres",
        "data_directory": "/var/lib/postgresql/17/main",
    }
}
SERVER = {"data_checksums": True, "encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8"}
CLUSTER_ARGS = {
    "target": TARGET,
    "locale": "C.UTF-8",
    "encoding": "UTF8",
    "data_checksums": True,
}


def test_packages_installs_only_missing_ones() -> None:
    cmds, _ = run_op(
        server.packages,
        {DebPackageStatus: {"postgresql-17": "17.6"}},
        names=["postgresql-17", "postgresql-17-pgvector"],
    )
    assert len(cmds) == 1
    assert cmds[0].startswith("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install")
    assert cmds[0].endswith(" postgresql-17-pgvector")


def test_packages_noop_when_all_installed() -> None:
    cmds, host = run_op(server.packages, {DebPackageStatus: {"a": "1", "b": "2"}}, names=["a", "b"])
    assert cmds == []
    assert host.noops == ["packages a, b are installed"]


def test_cluster_created_with_declared_fixed_properties() -> None:
    cmds, _ = run_op(server.cluster, {PgState: {"status": "missing"}}, **CLUSTER_ARGS)
    assert [str(c) for c in cmds] == [
        "pg_createcluster --port 5432 --locale C.UTF-8 --encoding UTF8 17 main -- --data-checksums"
    ]


def test_stopped_or_new_cluster_is_started_after_its_settings() -> None:
    stopped = {PgClusters: {"17/main": {**ONLINE["17/main"], "online": False}}}
    cmds, _ = run_op(server.cluster, {PgState: {"status": "stopped", "port": 5432}}, **CLUSTER_ARGS)
    assert cmds == []  # the cluster operation never starts it: `running` does, once settings are written
    for facts in (stopped, {PgClusters: {}}):
        cmds, _ = run_op(server.running, facts, target=TARGET)
        assert cmds == ["pg_ctlcluster 17 main start"]
    cmds, host = run_op(server.running, {PgClusters: ONLINE}, target=TARGET)
    assert cmds == [] and host.noops == ["cluster 17/main is running"]


def test_running_cluster_is_a_noop() -> None:
    cmds, host = run_op(server.cluster, {PgState: {**UP, "server": SERVER}}, **CLUSTER_ARGS)
    assert cmds == []
    assert host.noops == ["cluster 17/main is running"]


@pytest.mark.parametrize(
    ("server_facts", "message"),
    [
        ({**SERVER, "data_checksums": False}, "data_checksums is False, declared True"),
        ({**SERVER, "collate": "en_US.UTF-8"}, "locale is en_US.UTF-8, declared C.UTF-8"),
    ],
)
def test_fixed_property_mismatch_is_an_error_never_a_reinit(server_facts: dict, message: str) -> None:
    with pytest.raises(ClusterMismatch, match=message):
        run_op(server.cluster, {PgState: {**UP, "server": server_facts}}, **CLUSTER_ARGS)


def test_port_mismatch_is_an_error() -> None:
    with pytest.raises(ClusterMismatch, match="runs on port 5432, declared 5433"):
        run_op(server.cluster, {PgState: UP}, **{**CLUSTER_ARGS, "target": Cluster(17, "main", 5433)})


def objects_of(roles: dict | None = None, databases: dict | None = None, **kw) -> dict:
    return {"desired": ClusterDesired(roles=roles or {}, databases=databases or {}, **kw), "target": TARGET}


def test_roles_phase_sends_one_psql_with_sql_on_stdin() -> None:
    cmds, host = run_op(
        objects.cluster_objects, {PgState: {**UP, "roles": {}}}, **objects_of({"logos": RoleSpec("logos")})
    )
    assert len(cmds) == 1
    cmd = cmds[0]
    assert isinstance(cmd, SqlCommand)
    # Executed: psql alone; the SQL travels on stdin, as the postgres user.
    assert cmd.get_raw_value() == "psql -X -q -A -t -v ON_ERROR_STOP=1 -p 5432 -d postgres"
    assert cmd.connector_arguments["_stdin"].startswith('CREATE ROLE "logos" LOGIN')
    assert cmd.connector_arguments["_sudo_user"] == "postgres"
    # Shown (pyinfra output, --dry): the statements too.
    assert 'CREATE ROLE "logos" LOGIN' in str(cmd)
    # One combined fact read, whatever the number of roles, visiting the databases through the memo.
    assert host.fact_calls == [
        (
            "PgState",
            {
                "version": 17,
                "cluster": "main",
                "port": 5432,
                "visit": True,
                "use_memo": True,
                "_sudo": True,
                "_sudo_user": "postgres",
            },
        )
    ]


def test_converged_databases_and_extensions_are_noops() -> None:
    spec = DatabaseSpec(name="logos_db", owner="logos", encoding="UTF8", locale="C.UTF-8")
    have = {"owner": "logos", "acl": ["logos=CTc/logos"], "extensions": {}}
    cmds, host = run_op(
        objects.cluster_objects,
        {PgState: {**UP, "databases": {"logos_db": have}}},
        **objects_of(databases={"logos_db": spec}),
    )
    assert cmds == []
    assert host.noops == ["0 roles and 1 databases are as declared"]


def test_each_phase_is_one_command_in_order_from_one_reading() -> None:
    """A new role owning a new database with an extension and a bundle: four phases, each planned from
    the one reading (the database does not exist yet, so it has no extensions and no ledger)."""
    from operations.config import Extension
    from operations.migrations import load_bundle

    spec = DatabaseSpec(
        name="logos_db",
        owner="logos",
        encoding="UTF8",
        locale="C.UTF-8",
        extensions=(Extension(name="vector"),),
        bundles=("pp",),
    )
    desired = objects_of({"logos": RoleSpec("logos")}, {"logos_db": spec}, bundles={"pp": load_bundle("pp")})
    cmds, host = run_op(objects.cluster_objects, {PgState: {**UP, "roles": {}, "databases": {}}}, **desired)
    scripts = [c.connector_arguments["_stdin"] for c in cmds]
    assert [s.split(None, 2)[:2] for s in scripts[:3]] == [
        ["CREATE", "ROLE"],
        ["CREATE", "DATABASE"],
        ["\\connect", '"logos_db"'],
    ]
    assert 'CREATE EXTENSION IF NOT EXISTS "vector"' in scripts[2]
    assert "hearthdb.schema_migrations" in scripts[3]
    assert len(host.fact_calls) == 1


def test_managed_files_each_read_their_own_digest_and_only_the_differing_one_is_written() -> None:
    paths = ["/etc/x/a.conf", "/etc/y/b.conf"]
    content = "create_main_cluster = false\n"
    host = FakeHost({FileDigests: {paths[0]: hashlib.sha256(content.encode()).hexdigest(), paths[1]: None}})
    with using(host):
        assert list(conffiles.installed_file._inner(path=paths[0], content=content)) == []
        cmds = list(
            conffiles.installed_file._inner(path=paths[1], content=content, owner="root", mode="644", secret=False)
        )
    assert host.fact_calls == [("FileDigests", {"paths": [paths[0]]}), ("FileDigests", {"paths": [paths[1]]})]
    assert len(cmds) == 1 and "mkdir -p /etc/y" in str(cmds[0])
    assert cmds[0].connector_arguments["_stdin"] == content


def test_alter_system_overrides_of_managed_parameters_are_reset_and_reloaded() -> None:
    facts = {PgState: {**UP, "server": {**SERVER, "alter_system": ["work_mem", "wal_level"]}}}
    cmds, _ = run_op(objects.cluster_objects, facts, **objects_of(managed_settings=("work_mem", "shared_buffers")))
    assert len(cmds) == 1
    assert (
        cmds[0].connector_arguments["_stdin"] == 'ALTER SYSTEM RESET "work_mem";\n'
    )  # wal_level is not hearthdb's: left alone
    assert "pg_reload_conf()" in str(cmds[0]) and "pending_restart" in str(cmds[0])
    cmds, host = run_op(objects.cluster_objects, facts, **objects_of(managed_settings=("shared_buffers",)))
    assert cmds == [] and host.noops == ["0 roles and 0 databases are as declared"]


def test_objects_of_a_stopped_cluster_are_not_guessed_while_detecting_changes() -> None:
    """In `--dry` a stopped cluster cannot be read: the operation says so instead of planning every
    role anew; while the run executes (after `running` started it) it fails clearly."""
    facts = {PgState: {"status": "stopped", "port": 5432}}
    desired = objects_of({"logos": RoleSpec("logos")})
    host = FakeHost(facts)
    with using(host), _stage_prepare():
        cmds = list(objects.cluster_objects._inner(**desired))
    assert cmds == [] and host.noops == ["SQL objects: the cluster is stopped"]
    cmds, _ = run_op(objects.cluster_objects, facts, **desired)
    assert "is not running" in cmds[0].args[0]
    # a new host (no cluster at all yet): everything is planned from nothing
    with using(FakeHost({PgState: {"status": "missing"}})), _stage_prepare():
        cmds = list(objects.cluster_objects._inner(**desired))
    assert 'CREATE ROLE "logos"' in cmds[0].shown


@contextlib.contextmanager
def _stage_prepare() -> Iterator[None]:
    old = (FakeState.current_stage, FakeState.is_executing)
    FakeState.current_stage, FakeState.is_executing = StateStage.Prepare, False
    try:
        yield
    finally:
        FakeState.current_stage, FakeState.is_executing = old


def test_only_the_leader_of_an_ha_cluster_creates_and_backs_up_its_stanza() -> None:
    """The members share one stanza: a replica yields nothing (and reads no backup state); the leader
    creates the stanza and takes the first full; without HA the host does it itself."""
    missing = {"info": [], "archiver": None, "timers": {}, "running": []}
    backup = Backup(enabled=True, repository={"host": "repo"})
    args = {"backup": backup, "stanza": "hearthdb", "target": TARGET, "probe": "{}"}
    replica = {HaState: {"patroni": {"role": "replica"}}, BackupState: missing}
    commands, host = run_op(backups.stanza, replica, **args)
    assert commands == [] and host.noops == ["backup: the leader creates stanza hearthdb and takes its backups"]
    assert [name for name, _ in host.fact_calls] == ["HaState"]
    for facts, kwargs in (({HaState: {"patroni": {"role": "primary"}}}, args), ({}, {**args, "probe": None})):
        commands, host = run_op(backups.stanza, {**facts, BackupState: missing}, **kwargs)
        (command,) = commands
        assert "stanza-create" in str(command) and "--type=full backup" in str(command)
        # a leader Patroni has just promoted is waited for until it is out of recovery
        assert ("pg_is_in_recovery()" in str(command)) == (kwargs["probe"] is not None)
    commands, host = run_op(backups.take_backup, replica, stanza="hearthdb", kind="incr", target=TARGET, probe="{}")
    assert commands == [] and host.noops == ["not the leader: the leader backs up stanza hearthdb"]
