"""This project's hearthdb configuration, loaded from its own hearthdb.yml (checked before any host is
touched). Passwords need no code here: the deploy functions resolve the ones not passed to them from
HEARTHDB_PASSWORD_<ROLE> or the secrets file beside hearthdb.yml (.hearthdb/secrets.yml)."""

from pathlib import Path

from operations.config import load_config

hearthdb = load_config(Path(__file__).resolve().parent.parent / "hearthdb.yml")
