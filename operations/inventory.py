"""Which hosts to converge: the YAML file in HEARTHDB_INVENTORY, or else the running lab hosts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import format_errors
from .errors import ConfigError

INVENTORY_ENV = "HEARTHDB_INVENTORY"
LAB_DIR_ENV = "HEARTHDB_LAB_DIR"
DEFAULT_LAB_DIR = "/var/lib/hearthdb-lab"


class HostEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    host: str = Field(pattern=r"^[A-Za-z0-9:.\[\]_-]{1,253}$")
    user: str = Field(default="root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    port: int = Field(default=22, ge=1, le=65535)
    key: str | None = None


class InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[HostEntry] = Field(min_length=1)


def lab_dir() -> Path:
    return Path(os.environ.get(LAB_DIR_ENV) or DEFAULT_LAB_DIR)


def _lab_entries() -> list[HostEntry]:
    path = lab_dir() / "hosts.json"
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        rows = []
    return [HostEntry(name=r["name"], host=r["address"], user=r["user"], port=r["port"], key=r["key"]) for r in rows]


def _file_entries(path: Path) -> list[HostEntry]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the inventory: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None
    try:
        return InventoryFile.model_validate(data if isinstance(data, dict) else {"hosts": data}).hosts
    except ValidationError as e:
        raise ConfigError(format_errors(e, path.name).replace("(top level): ", "")) from None


def host_data(entry: HostEntry) -> dict[str, Any]:
    data: dict[str, Any] = {"ssh_hostname": entry.host, "ssh_user": entry.user, "ssh_port": entry.port}
    if entry.key:
        data["ssh_key"] = os.path.expanduser(entry.key)
    if entry.user != "root":
        data["_sudo"] = True  # root-only steps (apt, files) go through sudo for other users
    return data


def inventory_hosts() -> list[tuple[str, dict[str, Any]]]:
    """(name, pyinfra host data) for every target host; an empty inventory is an error."""
    path = os.environ.get(INVENTORY_ENV)
    if path:
        entries = _file_entries(Path(path))
        source = path
    else:
        entries = _lab_entries()
        source = f"the lab ({lab_dir() / 'hosts.json'})"
        if not entries:
            raise ConfigError(
                f"inventory: no hosts: {INVENTORY_ENV} is not set and {source} has no running hosts; "
                "run `hearthdb-lab up` or set HEARTHDB_INVENTORY"
            )
    names = [e.name or e.host for e in entries]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{source}: hosts: {sorted(dup)[0]!r} is listed twice")
    lab = not path
    out = []
    for name, entry in zip(names, entries, strict=True):
        data = host_data(entry)
        if lab:
            # Lab hosts are rebuilt often; their host keys are new each time.
            data.update(ssh_known_hosts_file="/dev/null", ssh_strict_host_key_checking="no")
        out.append((name, data))
    return out
