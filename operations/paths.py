"""Where the project's own files are, wherever it is installed from."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
# The project's own schema bundles; HEARTHDB_SCHEMA_DIR and a profile's `schema/` are searched first
# (config.bundle_dirs).
SCHEMA = ROOT / "schema"
SCHEMA_DIR_ENV = "HEARTHDB_SCHEMA_DIR"


def extra_schema_dirs() -> list[Path]:
    """The folders HEARTHDB_SCHEMA_DIR names (several separated by ':'), in order."""
    return [Path(p) for p in os.environ.get(SCHEMA_DIR_ENV, "").split(os.pathsep) if p]
