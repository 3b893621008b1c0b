"""How operations speak to the user: what would run (in `--dry` and while pyinfra detects changes), and
failing a host with a clear message."""

from __future__ import annotations

from collections.abc import Callable

from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand
from pyinfra.api.state import StateStage


def show_plan(what: str, lines: list[str]) -> None:
    """While pyinfra detects changes (and in `--dry`), print what would run, secrets masked."""
    if state.current_stage == StateStage.Prepare and lines:
        logger.info(f"{host.print_prefix}{what} would run:\n" + "\n".join(f"        {ln}" for ln in lines))


def _fail(state, host, message: str) -> bool:
    host.log_styled(f"hearthdb: {message}", fg="red", log_func=logger.error)
    return False


# pyinfra passes `state` and `host` by these names to a function command that takes them
def fail(message: str) -> FunctionCommand:
    """A command that fails the host with `message`: no remote command, no traceback; the other hosts
    go on, as when one of their commands fails."""
    return FunctionCommand(_fail, (message,), {})


_reported: set[tuple[str, str]] = set()


def report_once(what: str, lines: Callable[[], list[str]]) -> None:
    """Print a report (status.py) once per host: an operation's body runs in change detection and again
    in execution. It changes nothing."""
    if (host.name, what) not in _reported:
        _reported.add((host.name, what))
        logger.info(f"{host.print_prefix}{what}:\n" + "\n".join(f"        {ln}" for ln in lines()))
    host.noop(f"{what} shown")
