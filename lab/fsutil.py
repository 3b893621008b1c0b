"""Mounts and file writes used by image builds and hosts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .shell import LabError, run


def _unescape(field: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first (the order to unmount them)."""
    root = str(path.resolve())
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mnt = _unescape(line.split()[1])
        if mnt == root or mnt.startswith(root + "/"):
            found.append(Path(mnt))
    return sorted(set(found), key=lambda p: len(str(p)), reverse=True)


def used_by_overlay(path: Path) -> bool:
    """True while a mounted overlay lists `path` among its layers (deleting it would break a host)."""
    needle = str(path.resolve())
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "overlay":
            for opt in _unescape(fields[3]).split(","):
                if opt.startswith(("lowerdir=", "upperdir=")) and needle in opt.split("=", 1)[1].split(":"):
                    return True
    return False


def is_mounted(path: Path) -> bool:
    return path.resolve() in mounts_under(path)


def umount_all(path: Path) -> None:
    for mnt in mounts_under(path):
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode != 0:
            # Busy (a process still inside): detach it, the kernel frees it when the last user leaves.
            run(["umount", "-l", str(mnt)])


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts anything below and never crosses into another filesystem."""
    if not path.exists() and not path.is_symlink():
        return
    umount_all(path)
    if mounts_under(path):
        raise LabError(f"refusing to remove {path}: still has mounts below it")
    run(["rm", "-rf", "--one-file-system", str(path)])


def mount_overlay(lowers: list[Path], upper: Path, work: Path, merged: Path) -> None:
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    # lowerdir lists the topmost layer first.
    lower = ":".join(str(p) for p in lowers)
    run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)])


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.hdb-tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
