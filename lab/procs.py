"""Processes the lab starts, tracked by pid plus start time so a recycled pid is never signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypedDict


class ProcRef(TypedDict):
    pid: int
    start: int  # /proc/<pid>/stat starttime, in clock ticks since boot


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def spawn(
    args: Sequence[str | Path],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    group: str | None = None,
) -> ProcRef:
    """Start a daemon in its own session, stdin from /dev/null and all output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        proc = subprocess.Popen(
            [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
            user=user,
            group=group,
            extra_groups=[] if group else None,
            close_fds=True,
        )
    st = start_time(proc.pid)
    return ProcRef(pid=proc.pid, start=st if st is not None else -1)


def _reap(pid: int) -> None:
    # In-process callers (pytest) are the parent of what they spawned: collect zombies here.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(ref: ProcRef | None) -> bool:
    if not ref:
        return False
    _reap(ref["pid"])
    fields = _stat_fields(ref["pid"])
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == ref["start"]


def terminate(refs: Iterable[ProcRef], timeout: float = 20.0, first: signal.Signals = signal.SIGTERM) -> None:
    """Send `first` to every live process, wait for all; SIGKILL what is still there after `timeout`."""
    live = [r for r in refs if alive(r)]
    for r in live:
        _signal(r, first)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [r for r in live if alive(r)]
    for r in live:
        _signal(r, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [r for r in live if alive(r)]


def _signal(ref: ProcRef, sig: signal.Signals) -> None:
    if alive(ref):
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref["pid"], sig)


def _all_pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def in_netns(ns_file: Path) -> list[int]:
    """Pids whose network namespace is the one bind-mounted at `ns_file` (e.g. /run/netns/hdb1)."""
    try:
        ns = os.stat(ns_file)
    except OSError:
        return []
    found = []
    for pid in _all_pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino):
            found.append(pid)
    return found


def ref_of(pid: int) -> ProcRef | None:
    st = start_time(pid)
    return ProcRef(pid=pid, start=st) if st is not None else None


def descendants(pid: int) -> list[int]:
    """pid and every process below it (one pass over /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_mib(pid: int) -> float:
    """Proportional set size of a process tree: shared pages are split, so hosts add up honestly."""
    total_kib = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kib / 1024
