"""Running SQL on a host: psql as the postgres user, the script on stdin, never on a command line."""

from __future__ import annotations

from pyinfra.api import StringCommand

from .facts import PSQL_USER, psql_base
from .statements import Stmt


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
