"""Numbers the README states about behaviour are the code's own constants."""

from __future__ import annotations

import re
from pathlib import Path

from operations.validation import LOGIN_PROBES
from operations.visitmemo import VISIT_PARALLEL

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
DRIFT_TEST = Path(__file__).resolve().parents[1] / "integration" / "test_drift.py"


def stated(pattern: str) -> set[int]:
    found = {int(n) for n in re.findall(pattern, README)}
    assert found, f"the README no longer says {pattern!r}"
    return found


def test_login_probes_per_run() -> None:
    assert stated(r"up to (\d+) AIs per run") | stated(r"probed for (\d+) AIs per run") == {LOGIN_PROBES}


def test_parallel_visits() -> None:
    assert stated(r"in up to (\d+) parallel `psql`") == {VISIT_PARALLEL}


def test_drift_catalog_size_and_default_examples() -> None:
    text = DRIFT_TEST.read_text()
    kinds = re.findall(r'^    "(\w+)": Drift\(', text, re.M)
    default = re.search(r'HEARTHDB_DRIFT_EXAMPLES", "(\d+)"', text)
    assert default
    assert stated(r"from (\d+) kinds of hand-made drift") == {len(kinds)}
    assert stated(r"`HEARTHDB_DRIFT_EXAMPLES` \(default (\d+)\)") == {int(default.group(1))}
