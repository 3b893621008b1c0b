"""The deploy lock: one deploy at a time per host (a directory in /run, which a reboot clears)."""

from __future__ import annotations

import os
import shlex
import socket
import time

from pyinfra import host, state
from pyinfra.api import StringCommand

from .drift import active, operation
from .report import fail

LOCK_DIR = "/run/hearthdb.lock"  # /run: a reboot clears it
STALE_AFTER = 3600  # seconds: a lock this old is from a run that died


def _root_args() -> dict:
    return {"_sudo": True} if host.data.get("_sudo") else {}


def lock_owner() -> str:
    return f"{socket.gethostname()} {os.getpid()} {int(time.time())}"


def stale(owner: str, now: float, controller: str) -> bool:
    """A lock is stale when its run is known dead (same controller, pid gone) or it is over an hour old."""
    parts = owner.split()
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return True
    name, pid, started = parts[0], int(parts[1]), int(parts[2])
    if now - started > STALE_AFTER:
        return True
    if name == controller:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


@operation()
def take_lock():
    """
    Take the host's deploy lock (a directory in /run) for this run, so that a second deploy started
    meanwhile stops with a clear message instead of racing. Taken when the run executes, not in `--dry`;
    a stale lock (its run died) is taken over.
    """
    yield from ()
    if active():
        host.noop("drift.py takes no lock")
        return
    if not state.is_executing:
        host.noop("the deploy lock is taken when the run starts")
        return
    me = lock_owner()
    script = (
        f"if mkdir {LOCK_DIR} 2>/dev/null; then echo {shlex.quote(me)} > {LOCK_DIR}/owner; echo taken; "
        f"else echo held $(cat {LOCK_DIR}/owner 2>/dev/null); fi"
    )
    _, out = host.run_shell_command(StringCommand(script), **_root_args())
    line = " ".join(out.stdout_lines).strip()
    if line == "taken":
        host.noop("deploy lock taken")
        return
    owner = line.removeprefix("held").strip()
    if stale(owner, time.time(), socket.gethostname()):
        host.run_shell_command(StringCommand(f"echo {shlex.quote(me)} > {LOCK_DIR}/owner"), **_root_args())
        host.noop(f"deploy lock taken over from a run that died ({owner or 'unknown'})")
        return
    name, pid, started = [*owner.split(), "?", "?", "0"][:3]
    since = time.strftime("%H:%M:%S UTC", time.gmtime(int(started))) if started.isdigit() else "?"
    message = (
        f"another deploy holds the lock on {host.name} (controller {name}, pid {pid}, since {since}); "
        f"wait for it to finish, or remove {LOCK_DIR} on the host if it died"
    )
    yield fail(message)


@operation()
def release_lock():
    """
    Release the deploy lock this run took (only if it is still ours).
    """
    yield from ()
    if active():
        return
    if not state.is_executing:
        host.noop("the deploy lock is released when the run ends")
        return
    mine = lock_owner().rsplit(" ", 1)[0]  # controller and pid; the start time may differ
    script = (
        f'o=$(cat {LOCK_DIR}/owner 2>/dev/null || true); case "$o" in {shlex.quote(mine)}\\ *) rm -rf {LOCK_DIR};; esac'
    )
    host.run_shell_command(StringCommand(script), **_root_args())
    host.noop("deploy lock released")
