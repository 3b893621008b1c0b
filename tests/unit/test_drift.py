"""drift.py's machinery: operations run read-only and turn what they would run into items; the report,
its table and its exit status; the planners' statements saying what differs, secrets never."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyinfra.api import HiddenValue
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state

from operations import drift, lock, objects, server
from operations.desired import ROLE_FLAGS, RoleSpec
from operations.drift import Item, exit_status, report, table
from operations.facts import DebPackageStatus
from operations.hanodes import HaState, _digest, service_file
from operations.plan import Phase, plan_roles
from operations.statements import Stmt, connect

from .fakehost import FakeHost


class DetectingState:
    """pyinfra while it detects changes: when drift.py's operations read and plan."""

    current_stage = StateStage.Prepare
    is_executing = False


@pytest.fixture
def drifting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(drift, "_active", True)
    monkeypatch.setattr(drift, "_found", {})
    yield


def run(op, facts, state=None, **kwargs) -> tuple[list, FakeHost]:
    host = FakeHost(facts)
    with ctx_state.use(state or DetectingState()), ctx_host.use(host):
        return list(op._inner(**kwargs)), host


def test_an_operation_under_drift_yields_nothing_and_reports_what_it_would_run(drifting: None) -> None:
    cmds, host = run(server.packages, {DebPackageStatus: {"a": "1"}}, names=["a", "b", "c"])
    assert cmds == []
    [(name, items)] = drift._found["fakehost"].values()
    assert items == [Item("package b", "installed", "yes", "no"), Item("package c", "installed", "yes", "no")]
    assert host.noops == [f"{name}: drift"]


def test_an_operation_with_nothing_to_do_reports_no_item(drifting: None) -> None:
    cmds, _ = run(server.packages, {DebPackageStatus: {"a": "1"}}, names=["a"])
    assert cmds == [] and drift._found["fakehost"] == {}


def test_while_pyinfra_executes_drift_reads_nothing_again(drifting: None) -> None:
    class Executing(DetectingState):
        current_stage = StateStage.Execute
        is_executing = True

    cmds, host = run(server.packages, {}, state=Executing(), names=["a"])
    assert cmds == [] and host.fact_calls == []


def test_without_drift_the_operation_is_unchanged() -> None:
    cmds, _ = run(server.packages, {DebPackageStatus: {}}, names=["a"])
    assert len(cmds) == 1 and cmds[0].endswith(" a")


def test_drift_takes_no_lock(drifting: None) -> None:
    # the lock's body runs shell commands itself (FakeHost has no run_shell_command): not under drift
    cmds, host = run(lock.take_lock, {})
    assert cmds == [] and host.noops[0] == "drift.py takes no lock"


ITEMS = {
    "db1": [
        {
            "operation": "SQL objects",
            "object": "role ai1",
            "key": "password",
            "declared": "(secret)",
            "actual": "differs",
        }
    ],
    "db2": [],
}


def test_exit_status_follows_terraforms_detailed_exitcode() -> None:
    assert exit_status({"db1": [], "db2": []}, {}) == 0
    assert exit_status(ITEMS, {}) == 2
    assert exit_status({"db1": [], "db2": []}, {"db2": "not reached"}) == 1
    assert exit_status(ITEMS, {"db2": "failed"}) == 1


def test_report_lists_every_host_in_inventory_order() -> None:
    found = {"db2": {"h1": ("pg_hba", [Item("/etc/x", "content", "sha256 ab", "differs")])}}
    assert report(found, ["db1", "db2"]) == {
        "db1": [],
        "db2": [
            {"operation": "pg_hba", "object": "/etc/x", "key": "content", "declared": "sha256 ab", "actual": "differs"}
        ],
    }


def test_table_names_each_host_and_item() -> None:
    out = table(ITEMS, {})
    assert out.splitlines() == ["db1: 1 difference", "  role ai1  password  (secret)  differs", "db2: no drift"]
    assert table({"db1": []}, {"db1": "not reached"}) == "db1: error: not reached"


def as_read(spec: RoleSpec, **flags: bool) -> dict:
    """The server's reading of a role exactly as `spec` declares it, but for `flags`."""
    return (
        {f: f in spec.flags for f in ROLE_FLAGS} | flags | {"connection_limit": -1, "member_of": [], "settings": None}
    )


def test_each_role_attribute_that_differs_is_its_own_statement_and_item() -> None:
    spec = RoleSpec(name="r")
    assert spec.login and not spec.createdb
    stmts = plan_roles({"r": spec}, {"r": as_read(spec, login=False, createdb=True)})
    assert {s.drift for s in stmts} == {("role r", "login", "yes", "no"), ("role r", "createdb", "no", "yes")}


def test_a_password_that_differs_is_reported_without_it() -> None:
    secret = "s3cret-password-0123456789"
    spec = RoleSpec(name="r", password=HiddenValue(secret))
    stmts = plan_roles({"r": spec}, {"r": as_read(spec)})
    items = [s.drift for s in stmts if s.drift]
    assert items == [("role r", "password", "(secret)", "differs")]
    assert all(secret not in s.display for s in stmts)


def test_a_service_file_reports_its_content_and_a_stopped_unit_its_state(drifting: None) -> None:
    content = "ETCD_NAME=db1\n"
    kw = {"path": "/etc/default/etcd", "content": content, "unit": "etcd.service", "probe": "p"}
    run(service_file, {HaState: {"digests": {}, "units": {}}}, **kw)
    [(_, items)] = drift._found["fakehost"].values()
    assert items == [Item("/etc/default/etcd", "content", f"sha256 {_digest(content)[:12]}", "missing")]
    drift._found.clear()
    units = {"etcd.service": {"active": False, "enabled": True}}
    run(service_file, {HaState: {"digests": {"/etc/default/etcd": _digest(content)}, "units": units}}, **kw)
    [(_, items)] = drift._found["fakehost"].values()
    assert items == [Item("etcd.service", "active and enabled", "yes", "active no, enabled yes")]


def test_a_statement_after_a_connect_is_reported_in_that_database_whatever_its_name(
    drifting: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the name as declared, not as psql's quoting spells it (a quote inside is doubled there)
    name = 'Memory "Store"'
    phase = Phase("extensions", [connect(name), Stmt("CREATE EXTENSION vector")])
    assert phase.statements[0].sql == '\\connect "Memory ""Store"""'
    noted: list[Item] = []
    monkeypatch.setattr(drift, "_noted", noted)
    objects._note_drift(phase, set())
    assert noted == [Item(f"database {name}", "extensions", "CREATE EXTENSION vector", "not applied")]
