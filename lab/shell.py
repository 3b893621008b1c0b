"""Subprocess helper and the lab's error type."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


class LabError(Exception):
    """A failure the CLI reports as one clear line."""


class CommandError(LabError):
    def __init__(self, cmd: Sequence[str], returncode: int, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr = stderr
        # Keep only the tail: apt and debootstrap print pages before the line that matters.
        tail = " | ".join(line for line in stderr.strip().splitlines()[-5:] if line.strip())
        super().__init__(f"command failed (exit {returncode}): {shlex.join(self.cmd)}: {tail or 'no stderr'}")


def run(
    cmd: Sequence[str | Path],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with stdin closed (or fed `input`); capture its output, or append it to `log`.

    Output never reaches the caller's stdout: a caller capturing our output must not wait on children.
    """
    args = [str(c) for c in cmd]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            fh.write(f"\n$ {shlex.join(args)}\n")
            fh.flush()
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL if input is None else None,
                input=input,
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
                env=None if env is None else dict(env),
                timeout=timeout,
                check=False,
            )
        if check and proc.returncode != 0:
            raise CommandError(args, proc.returncode, _tail_of(log) + f"\n(see {log})")
        return proc
    proc = subprocess.run(
        args,
        stdin=subprocess.DEVNULL if input is None else None,
        input=input,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stderr or proc.stdout)
    return proc


def _tail_of(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def say(msg: str) -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"hearthdb-lab: warning: {msg}", file=sys.stderr, flush=True)
