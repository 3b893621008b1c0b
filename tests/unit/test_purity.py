"""The planners are pure: importing them (and what they import) loads nothing of pyinfra, so `--dry`,
the run, validation and these tests all reach the same answer from the same inputs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
    "operations.pgbackrest",
    "operations.privileges",
    "operations.ha",
    "operations.jobs",
    "operations.monitoring",
]


def test_planner_modules_import_no_pyinfra() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in PURE)
        + "print(sorted(m for m in sys.modules if m == 'pyinfra' or m.startswith('pyinfra.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _strings(path: Path) -> list[str]:
    """The string constants of a module's code (docstrings are examples, not code)."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
    ]


def test_host_paths_are_spelled_only_by_the_cluster_target() -> None:
    """Every host path and file name of PostgreSQL's layout comes from `operations.target`."""
    spelled = ("/etc/postgresql", "/var/lib/postgresql", "/usr/lib/postgresql", "50-hearthdb", "hearthdb-server.")
    root = Path(__file__).resolve().parents[2] / "operations"
    found = [
        f"{path.name}: {needle}"
        for path in sorted(root.glob("*.py"))
        if path.name != "target.py"
        for needle in spelled
        if any(needle in text for text in _strings(path))
    ]
    assert found == []
