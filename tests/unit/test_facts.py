"""Facts against JSON fixtures, the way pyinfra tests its own facts.

Fixture format: tests/unit/facts/<Fact>/<case>.json holds "args" (keyword arguments of command()),
"command" (the exact command it must produce), "output" (stdout lines as pyinfra hands them to
process(), without newlines) and "fact" (the expected value), plus an optional "note" (where the output
comes from) and "xfail" (a known bug, the reason: the case fails strictly once the bug is fixed, then
drop the key). To record a case: run the command on a lab host (`hearthdb-lab ssh hdb3 'CMD'`), paste
its lines into "output", and write "fact" by hand from reading them, never by calling process().
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import FactBase

from operations.conffiles import FileDigests
from operations.facts import (
    BackupState,
    DebPackageStatus,
    HostResources,
    PgClusters,
    PgState,
    RepositoryAccount,
    SshHostKeys,
    SystemdUnits,
)
from operations.hanodes import HaState

FIXTURES = Path(__file__).parent / "facts"
FACTS: dict[str, type[FactBase]] = {
    f.__name__: f
    for f in (
        DebPackageStatus,
        PgClusters,
        PgState,
        HostResources,
        FileDigests,
        BackupState,
        SshHostKeys,
        SystemdUnits,
        RepositoryAccount,
        HaState,
    )
}


def cases() -> list[Any]:
    params = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        case = json.loads(path.read_text())
        marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if "xfail" in case else []
        params.append(pytest.param(path.parent.name, case, id=f"{path.parent.name}/{path.stem}", marks=marks))
    return params


def test_every_fact_has_fixtures() -> None:
    assert {p.name for p in FIXTURES.iterdir() if p.is_dir()} == set(FACTS)


@pytest.mark.parametrize(("name", "case"), cases())
def test_fact(name: str, case: dict[str, Any]) -> None:
    fact = FACTS[name]()
    assert fact.command(**case["args"]) == case["command"]
    assert fact.process(case["output"]) == case["fact"]


def test_pg_state_without_any_output_reads_as_no_cluster() -> None:
    assert PgState().process([]) == {"status": "missing"}
