"""Where the project's own files are, wherever it is installed from."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
# Schema bundles: the project's own, or a folder of yours (HEARTHDB_SCHEMA_DIR) holding bundle folders.
SCHEMA = Path(os.environ.get("HEARTHDB_SCHEMA_DIR") or ROOT / "schema")
