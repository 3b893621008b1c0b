"""drift.py: every difference between hearthdb.yml and each host, found by the deploy's own operations
run read-only. Every hearthdb operation is declared with this module's `operation`: under drift.py it
runs its body as in a deploy (facts, the same pure planners) but hands pyinfra no command; what it would
have run becomes items of the report (object, key, declared, actual). So "no drift" and "a rerun
changes nothing" are one fact. Exit status: 0 no drift, 2 drift, 1 an error or a host not reached."""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from pyinfra import host, state
from pyinfra.api import operation as pyinfra_operation

_active = False
_found: dict[str, dict[str, tuple[str, list[Item]]]] = {}  # host -> op hash -> (operation, items)
_noted: list[Item] | None = None  # items an operation notes while its body runs
_completed: set[str] = set()  # hosts whose whole deploy was planned


@dataclass(frozen=True)
class Item:
    """One difference. Secrets never: a password's declared value is "(secret)", its actual "differs"."""

    object: str
    key: str
    declared: str
    actual: str


def active() -> bool:
    """True under drift.py: operations read, plan and report, and run nothing."""
    return _active


def note(obj: str, key: str, declared: str, actual: str) -> None:
    """Under drift.py, say what the running operation found different (else its name is the item)."""
    if _active and _noted is not None:
        _noted.append(Item(obj, key, declared, actual))


def note_file(path: str, digest: str, have: str | None, secret: bool) -> None:
    """A managed file whose digest on the host (`have`, None: missing) is not the declared `digest`."""
    note(path, "content", "(secret)" if secret else f"sha256 {digest[:12]}", "missing" if have is None else "differs")


def operation(*args: Any, **kwargs: Any) -> Callable:
    """pyinfra's `operation`, made read-only under drift.py."""

    def decorator(func: Callable[..., Iterator]) -> Any:
        return pyinfra_operation(*args, **kwargs)(_observed(func))

    return decorator


def _observed(func: Callable[..., Iterator]) -> Callable[..., Iterator]:
    @functools.wraps(func)
    def body(*args: Any, **kwargs: Any) -> Iterator:
        if not _active:
            yield from func(*args, **kwargs)
            return
        if state.is_executing:  # read once, while pyinfra detects changes; nothing to execute
            return
        global _noted
        _noted = []
        try:
            # commands are objects until pyinfra runs them: listing them runs nothing
            commands = list(func(*args, **kwargs))
            noted = _noted
        finally:
            _noted = None
        op = getattr(host, "current_op_hash", None) or func.__name__
        meta = getattr(state, "op_meta", {})
        names = meta[op].names if op in meta else {func.__name__}
        name = ", ".join(n.removeprefix("hearthdb | ") for n in names)
        if commands:
            items = noted or [Item(name, "state", "as declared", "differs")]
            _found.setdefault(host.name, {})[op] = (name, items)
        else:
            _found.setdefault(host.name, {}).pop(op, None)
        host.noop(f"{name}: {'drift' if commands else 'as declared'}")

    return body


def start(fmt: str | None) -> None:
    """Called by drift.py on every host: operations go read-only, the report is printed when pyinfra
    is done (once, for every host)."""
    global _active
    if fmt not in (None, "table", "json"):
        raise SystemExit(f"drift.py: --data format={fmt!r}: use table or json")
    if not _active:
        _active = True
        atexit.register(_finish, fmt or "table")


def planned() -> None:
    """Called by drift.py when a host's deploy is planned through: a host without it had an error."""
    _completed.add(host.name)


def report(found: dict[str, dict[str, tuple[str, list[Item]]]], hosts: list[str]) -> dict[str, Any]:
    """{host: [{operation, object, key, declared, actual}, ...]} for every host, in operation order."""
    return {
        h: [{"operation": name, **asdict(i)} for name, items in (found.get(h) or {}).values() for i in items]
        for h in hosts
    }


def table(data: dict[str, list[dict[str, str]]], errors: dict[str, str]) -> str:
    lines = []
    for h, items in data.items():
        if h in errors:
            lines.append(f"{h}: error: {errors[h]}")
            continue
        lines.append(f"{h}: {len(items)} difference{'s' if len(items) != 1 else ''}" if items else f"{h}: no drift")
        widths = [max([len(c)] + [len(i[c]) for i in items]) for c in ("object", "key", "declared")]
        for i in items:
            cells = [i["object"], i["key"], i["declared"]]
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + i["actual"])
    return "\n".join(lines)


def exit_status(data: dict[str, list], errors: dict[str, str]) -> int:
    """Terraform's -detailed-exitcode: 1 on any error, else 2 on any drift, else 0."""
    if errors:
        return 1
    return 2 if any(data.values()) else 0


def _finish(fmt: str) -> None:
    hosts = [h.name for h in state.inventory]
    reached = {h.name for h in state.activated_hosts}
    failed = {h.name for h in state.failed_hosts}
    errors = {
        h: "failed" if h in failed else "not reached" if h not in reached else "not planned (see the error above)"
        for h in hosts
        if h in failed or h not in reached or h not in _completed
    }
    data = report(_found, hosts)
    if fmt == "json":
        out = {"hosts": {h: {"drift": items, "error": errors.get(h)} for h, items in data.items()}}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        sys.stdout.write(table(data, errors) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_status(data, errors))  # pyinfra's own status is 0 on drift: ours replaces it
