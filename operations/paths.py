"""Where the project's own files are, wherever it is installed from."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
SCHEMA = ROOT / "schema"
