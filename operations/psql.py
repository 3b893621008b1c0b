"""Running SQL on a host: psql as the postgres user, the script on stdin, never on a command line."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql
from pyinfra.api import StringCommand

from .facts import PSQL_USER, psql_base


@dataclass(frozen=True)
class Stmt:
    """One SQL statement (or psql meta-command) as run, and as shown to the user (secrets masked)."""

    sql: str
    shown: str | None = None  # None: shown as run; "": not shown (plumbing such as locks and guards)
    raw: bool = False  # emitted exactly as written (a file's statements, a `\gset` query): no `;` added
    change: bool = True  # False for session plumbing that alone is no change (SET, locks, guards)

    @property
    def display(self) -> str:
        return self.sql if self.shown is None else self.shown

    @property
    def script(self) -> str:
        return self.sql if self.raw or self.sql.startswith("\\") else self.sql + ";"


def stmt(template: str, *args: sql.Composable | str, **kwargs: sql.Composable | str) -> Stmt:
    """Compose with psycopg.sql: plain `str` arguments become identifiers."""

    def wrap(v: sql.Composable | str) -> sql.Composable:
        return sql.Identifier(v) if isinstance(v, str) else v

    composed = sql.SQL(template).format(*map(wrap, args), **{k: wrap(v) for k, v in kwargs.items()})
    return Stmt(composed.as_string(None))


def connect(database: str) -> Stmt:
    # psql treats a double-quoted meta-command argument like an identifier.
    return Stmt("\\connect " + sql.Identifier(database).as_string(None), change=False)


class SqlCommand(StringCommand):
    """A psql command whose script travels on stdin. Its displayed form (pyinfra output at any
    verbosity, `--dry`, errors) appends the masked script; the executed form is psql alone, so
    neither sudo's log, `ps` nor the journal ever sees the SQL."""

    def __init__(self, port: int, statements: list[Stmt], database: str = "postgres") -> None:
        script = "\n".join(s.script for s in statements)
        super().__init__(psql_base(port, database), _stdin=script + "\n", **PSQL_USER)
        self.shown = "\n".join(s.display for s in statements if s.display)

    def get_masked_value(self) -> str:
        return f"{super().get_masked_value()} <<'SQL'\n{self.shown}\nSQL"
