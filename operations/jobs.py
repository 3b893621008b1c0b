"""Scheduled jobs with pg_cron (Debian's postgresql-NN-cron): declared per database, converged by name.

Pure: the model of `databases.<db>.jobs`, the choice of `cron.database_name`, the settings pg_cron needs,
and the planner over the cron database's reading (`queries.CRON_QUERY`).

pg_cron keeps every job of the cluster in `cron.job` of one database (`cron.database_name`) and is
created there only; a job runs in its own database through `cron.schedule_in_database`. Jobs run in
background workers (`cron.use_background_workers`), so no job needs a password or an hba rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from psycopg import sql
from pydantic import AfterValidator, BaseModel, ConfigDict

from .statements import Stmt

JOB_NAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,62}$")
_FIELD = r"(\*|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]+)?"  # *, 5, 1-5, */10, mon-fri
CRON_FIELD_RE = re.compile(rf"^{_FIELD}(,{_FIELD})*$")
SECONDS_RE = re.compile(r"^([1-9]|[1-5][0-9]) seconds?$")
# pg_cron's own background workers, besides the jobs they run (cron.max_running_jobs)
RUNNING_JOBS = 4


def check_schedule(value: str) -> str:
    """A pg_cron schedule: five cron fields (min hour day-of-month month day-of-week; `$` is the last day
    of the month) or `N seconds` (1-59)."""
    text = " ".join(str(value).split())
    if SECONDS_RE.match(text):
        return text
    fields = text.split(" ")
    if len(fields) != 5 or not all(CRON_FIELD_RE.match(f) or (i == 2 and f == "$") for i, f in enumerate(fields)):
        raise ValueError(
            f"{value!r} is not a pg_cron schedule: five cron fields (minute hour day month weekday, e.g. "
            "'30 3 * * *') or 'N seconds' (1-59)"
        )
    return text


def check_command(value: str) -> str:
    if not value.strip() or "\x00" in value:
        raise ValueError("must be a non-empty SQL command")
    return value


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: Annotated[str, AfterValidator(check_schedule)]
    command: Annotated[str, AfterValidator(check_command)]
    role: str | None = None  # who the job runs as; default: the database's owner
    active: bool = True
    state: Literal["present", "absent"] = "present"


def check_job_name(value: str) -> str:
    if not JOB_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a job name: lower-case letters, digits, '_', '.', '-'; at most 63")
    return value


JobName = Annotated[str, AfterValidator(check_job_name)]
Jobs = dict[JobName, Job]


def cron_database(explicit: str | None, with_cron: list[str], shared: str | None) -> str | None:
    """The database pg_cron keeps its jobs in: `cron_database` when set; else the one database that
    declares jobs or pg_cron; with several, the shared database. None when nothing needs pg_cron."""
    if explicit:
        return explicit
    if len(with_cron) == 1:
        return with_cron[0]
    if with_cron and shared:
        return shared
    if with_cron:
        raise ValueError(
            f"cron_database: jobs or pg_cron are declared in {', '.join(with_cron)}; pg_cron keeps the jobs of "
            "the whole cluster in one database: name it here"
        )
    return None


def cron_settings(database: str | None) -> dict[str, Any]:
    """postgresql.conf settings for pg_cron in `database` (its library is preloaded with the extension)."""
    if database is None:
        return {}
    return {
        "cron.database_name": database,
        "cron.use_background_workers": True,
        "cron.max_running_jobs": RUNNING_JOBS,
    }


def _literal(value: Any) -> sql.Composable:
    return sql.Literal(value)


def plan_jobs(desired: Mapping[str, tuple[str, str, Job]], have: Mapping[str, dict[str, Any]] | None) -> list[Stmt]:
    """cron.schedule_in_database / cron.alter_job / cron.unschedule so that each declared job (name ->
    (database, role, job)) is in `cron.job` as declared. Jobs not declared are the application's: left
    alone. `have`: name -> the job's row in cron.job (None: pg_cron is not created yet, so no job is)."""
    have = have or {}
    out: list[Stmt] = []
    for name, (database, role, job) in sorted(desired.items()):
        row = have.get(name)
        if job.state == "absent":
            if row is not None:
                q = sql.SQL("SELECT cron.unschedule({})").format(_literal(int(row["id"])))
                out.append(Stmt(q.as_string(None), f"SELECT cron.unschedule({name!r})"))
            continue
        want = {
            "schedule": job.schedule,
            "command": job.command,
            "database": database,
            "username": role,
            "active": job.active,
        }
        if row is None:
            q = sql.SQL("SELECT cron.schedule_in_database({}, {}, {}, {}, {}, {})").format(
                *map(_literal, (name, job.schedule, job.command, database, role, job.active))
            )
            out.append(Stmt(q.as_string(None)))
        elif any(row.get(k) != v for k, v in want.items()):
            q = sql.SQL("SELECT cron.alter_job({}, {}, {}, {}, {}, {})").format(
                _literal(int(row["id"])), *map(_literal, (job.schedule, job.command, database, role, job.active))
            )
            out.append(Stmt(q.as_string(None), f"SELECT cron.alter_job({name!r}, ...) -- {_changed(row, want)}"))
    return out


def _changed(row: Mapping[str, Any], want: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {row.get(k)!r} -> {v!r}" for k, v in want.items() if row.get(k) != v)
