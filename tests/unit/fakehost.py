"""A stand-in pyinfra host that answers facts from canned data, to drive `op._inner(...)`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state


class FakeState:
    current_stage = StateStage.Execute
    is_executing = True


class FakeHost:
    name = "fakehost"
    print_prefix = "[fakehost] "

    def __init__(self, facts: dict[type, Any]) -> None:
        self.facts = facts
        self.fact_calls: list[tuple[str, dict[str, Any]]] = []
        self.noops: list[str] = []
        self.data: dict[str, Any] = {}

    def get_fact(self, fact: type, *args: Any, **kwargs: Any) -> Any:
        self.fact_calls.append((fact.__name__, kwargs))
        return self.facts[fact]

    def noop(self, message: str) -> None:
        self.noops.append(message)


@contextmanager
def using(host: FakeHost) -> Iterator[FakeHost]:
    with ctx_state.use(FakeState()), ctx_host.use(host):
        yield host


def run_op(op: Any, facts: dict[type, Any], **kwargs: Any) -> tuple[list[Any], FakeHost]:
    """Run an operation's body against canned facts; return the commands it yields and the host."""
    host = FakeHost(facts)
    with using(host):
        commands = list(op._inner(**kwargs))
    return commands, host
