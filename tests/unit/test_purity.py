"""The planners are pure: importing them (and what they import) loads nothing of pyinfra, so `--dry`,
the run, validation and these tests all reach the same answer from the same inputs."""

from __future__ import annotations

import subprocess
import sys

PURE = [
    "operations.config",
    "operations.desired",
    "operations.statements",
    "operations.plan",
    "operations.migrations",
    "operations.validation",
    "operations.sizing",
    "operations.render",
    "operations.scram",
    "operations.catalog",
    "operations.target",
    "operations.queries",
    "operations.visitmemo",
    "operations.tls",
]


def test_planner_modules_import_no_pyinfra() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in PURE)
        + "print(sorted(m for m in sys.modules if m == 'pyinfra' or m.startswith('pyinfra.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
