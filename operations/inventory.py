"""Which hosts to converge: the YAML file in HEARTHDB_INVENTORY, or else the running lab hosts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import format_errors, load_yaml
from .errors import ConfigError

INVENTORY_ENV = "HEARTHDB_INVENTORY"
LAB_DIR_ENV = "HEARTHDB_LAB_DIR"
DEFAULT_LAB_DIR = "/var/lib/hearthdb-lab"


HOST_RE = re.compile(r"^[A-Za-z0-9:\[][A-Za-z0-9:.\[\]_-]{0,252}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _refuse(value: str, pattern: re.Pattern[str], what: str, allowed: str) -> str:
    """`value` if it matches; else a reason naming the first character that is not allowed."""
    if not pattern.match(value):
        bad = next((c for c in value if not (c.isascii() and c.isalnum()) and c not in allowed), None)
        why = f" (it contains {bad!r})" if bad else f" (it starts with {value[:1]!r})" if value else ""
        raise ValueError(f"{value!r} is not {what}{why}; use {_words(allowed)}")
    return value


def _words(allowed: str) -> str:
    return "letters, digits and " + ", ".join(repr(c) for c in allowed)


class HostEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None  # shown by pyinfra; default: host
    host: str
    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    key: str | None = None
    # known: the host key must already be in known_hosts; accept-new: learn it the first time, refuse a
    # changed one; ignore: no check at all (only for disposable hosts such as the lab's)
    host_key: Literal["known", "accept-new", "ignore"] = "accept-new"

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _refuse(value, HOST_RE, "a host name or IP address", ".-:[]_")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return _refuse(value, NAME_RE, "a host name", "._-")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return _refuse(value, USER_RE, "a Unix user name", "_-")

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(ord(c) < 32 or ord(c) == 127 for c in value)):
            raise ValueError(f"{value!r} is not a file path")
        return value


class InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[HostEntry]

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[HostEntry]) -> list[HostEntry]:
        if not value:
            raise ValueError("no hosts; list at least one")
        return value


def lab_dir() -> Path:
    return Path(os.environ.get(LAB_DIR_ENV) or DEFAULT_LAB_DIR)


def _lab_entries() -> list[HostEntry]:
    path = lab_dir() / "hosts.json"
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        rows = []
    # lab hosts are rebuilt often, each time with new host keys
    return [
        HostEntry(name=r["name"], host=r["address"], user=r["user"], port=r["port"], key=r["key"], host_key="ignore")
        for r in rows
    ]


def _file_entries(path: Path) -> list[HostEntry]:
    data = load_yaml(path, " the inventory")
    try:
        entries = InventoryFile.model_validate(data if isinstance(data, dict) else {"hosts": data}).hosts
    except ValidationError as e:
        raise ConfigError(format_errors(e, path.name, InventoryFile).replace("(top level): ", "")) from None
    for i, entry in enumerate(entries):
        if entry.key and not Path(entry.key).expanduser().is_file():
            raise ConfigError(f"{path.name}: hosts[{i}].key: {entry.key} is not a file")
    return entries


def host_data(entry: HostEntry) -> dict[str, Any]:
    data: dict[str, Any] = {"ssh_hostname": entry.host, "ssh_user": entry.user, "ssh_port": entry.port}
    if entry.key:
        data["ssh_key"] = os.path.expanduser(entry.key)
    if entry.user != "root":
        data["_sudo"] = True  # root-only steps (apt, files) go through sudo for other users
    if entry.host_key == "ignore":
        data.update(ssh_known_hosts_file="/dev/null", ssh_strict_host_key_checking="no")
    else:
        data["ssh_strict_host_key_checking"] = "yes" if entry.host_key == "known" else "accept-new"
    return data


def inventory_hosts(path: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(name, pyinfra host data) for every target host of the YAML file `path` (default: the one
    HEARTHDB_INVENTORY names, else the lab's running hosts); an empty inventory is an error."""
    path = path or os.environ.get(INVENTORY_ENV)
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
    return [(name, host_data(entry)) for name, entry in zip(names, entries, strict=True)]
