"""SQL statements as the planners build them: composed only with psycopg.sql, each with the text
shown to the user (secrets masked). Pure: no pyinfra, so the planners that use it are pure too."""

from __future__ import annotations

from dataclasses import dataclass, replace

from psycopg import sql


@dataclass(frozen=True)
class Stmt:
    """One SQL statement (or psql meta-command) as run, and as shown to the user (secrets masked)."""

    sql: str
    shown: str | None = None  # None: shown as run; "": not shown (plumbing such as locks and guards)
    raw: bool = False  # emitted exactly as written (a file's statements, a `\gset` query): no `;` added
    change: bool = True  # False for session plumbing that alone is no change (SET, locks, guards)
    # what differs, for drift.py: (object, key, declared, actual), secrets never in it; None: the statement
    drift: tuple[str, str, str, str] | None = None
    database: str | None = None  # a `\connect`'s database: where the statements after it run

    def about(self, obj: str, key: str, declared: object, actual: object) -> Stmt:
        return replace(self, drift=(obj, key, _text(declared), _text(actual)))

    @property
    def display(self) -> str:
        return self.sql if self.shown is None else self.shown

    @property
    def script(self) -> str:
        return self.sql if self.raw or self.sql.startswith("\\") else self.sql + ";"


def _text(v: object) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v)) or "none"
    return str(v)


def stmt(template: str, *args: sql.Composable | str, **kwargs: sql.Composable | str) -> Stmt:
    """Compose with psycopg.sql: plain `str` arguments become identifiers."""

    def wrap(v: sql.Composable | str) -> sql.Composable:
        return sql.Identifier(v) if isinstance(v, str) else v

    composed = sql.SQL(template).format(*map(wrap, args), **{k: wrap(v) for k, v in kwargs.items()})
    return Stmt(composed.as_string(None))


def connect(database: str) -> Stmt:
    # psql treats a double-quoted meta-command argument like an identifier.
    return Stmt("\\connect " + sql.Identifier(database).as_string(None), change=False, database=database)
