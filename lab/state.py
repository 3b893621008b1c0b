"""The lab's state file, its lock, and the files the rest of the project reads (hosts.json, ssh_config)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .procs import ProcRef


@dataclass
class HostState:
    proc: ProcRef
    layer: str | None = None


@dataclass
class LabState:
    proxy: ProcRef | None = None
    hosts: dict[str, HostState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "proxy": self.proxy,
            "hosts": {n: {"proc": h.proc, "layer": h.layer} for n, h in sorted(self.hosts.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        hosts = {n: HostState(proc=h["proc"], layer=h.get("layer")) for n, h in data.get("hosts", {}).items()}
        return cls(proxy=data.get("proxy"), hosts=hosts)


def state_file() -> Path:
    return config.state_dir() / "state.json"


def key_path() -> Path:
    return config.state_dir() / "id_ed25519"


def ssh_config_path() -> Path:
    return config.state_dir() / "ssh_config"


def hosts_json_path() -> Path:
    return config.state_dir() / "hosts.json"


def logs_dir() -> Path:
    return config.state_dir() / "logs"


def host_dir(name: str) -> Path:
    return config.state_dir() / "hosts" / name


def load() -> LabState:
    try:
        return LabState.from_json(json.loads(state_file().read_text()))
    except FileNotFoundError:
        return LabState()


def save(st: LabState) -> None:
    _write_atomic(state_file(), json.dumps(st.to_json(), indent=2) + "\n")
    publish(sorted(st.hosts, key=config.host_index))


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialise up/down/reset across processes (two test sessions, a shell and a fixture...)."""
    config.state_dir().mkdir(parents=True, exist_ok=True)
    with open(config.state_dir() / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def host_entry(name: str) -> dict[str, Any]:
    return {"name": name, "address": config.host_address(name), "user": "root", "port": 22, "key": str(key_path())}


def render_ssh_config(names: list[str], state: Path, key: Path) -> str:
    lines = ["# Written by hearthdb-lab for the hosts that are up; regenerated on every up/down/reset.\n"]
    for name in names:
        lines.append(
            f"Host {name}\n"
            f"    HostName {config.host_address(name)}\n"
            "    User root\n"
            f"    IdentityFile {key}\n"
            "    IdentitiesOnly yes\n"
            "    StrictHostKeyChecking no\n"
            "    UserKnownHostsFile /dev/null\n"
            "    LogLevel ERROR\n"
            "    ControlMaster auto\n"
            # %h is the HostName (address): short enough for the 108-byte socket path limit.
            f"    ControlPath {state}/cm-%h\n"
            "    ControlPersist 60s\n"
        )
    return "\n".join(lines)


def publish(names: list[str]) -> None:
    _write_atomic(ssh_config_path(), render_ssh_config(names, config.state_dir(), key_path()))
    _write_atomic(hosts_json_path(), json.dumps([host_entry(n) for n in names], indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
