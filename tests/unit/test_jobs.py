"""pg_cron jobs: the planner by name, the choice of cron.database_name, and the checks of the keys."""

from __future__ import annotations

import pytest

from operations.config import cron_database_of, parse_config
from operations.desired import desired_databases
from operations.errors import ConfigError
from operations.jobs import Job, plan_jobs
from operations.render import effective_settings

JOB = Job(schedule="15 4 * * *", command="VACUUM ANALYZE")
ROW = {
    "id": 7,
    "schedule": "15 4 * * *",
    "command": "VACUUM ANALYZE",
    "database": "d",
    "username": "own",
    "active": True,
}


def test_missing_job_is_scheduled_in_its_database() -> None:
    got = [s.sql for s in plan_jobs({"nightly": ("d", "own", JOB)}, None)]
    assert got == ["SELECT cron.schedule_in_database('nightly', '15 4 * * *', 'VACUUM ANALYZE', 'd', 'own', true)"]


def test_a_job_as_declared_plans_nothing_and_a_changed_one_is_altered() -> None:
    assert plan_jobs({"nightly": ("d", "own", JOB)}, {"nightly": ROW}) == []
    got = plan_jobs({"nightly": ("d", "own", JOB)}, {"nightly": {**ROW, "schedule": "0 0 * * *", "active": False}})
    assert [s.sql for s in got] == ["SELECT cron.alter_job(7, '15 4 * * *', 'VACUUM ANALYZE', 'd', 'own', true)"]
    assert "schedule: '0 0 * * *' -> '15 4 * * *'" in got[0].display


def test_absent_job_is_unscheduled_and_undeclared_ones_stay() -> None:
    gone = Job(schedule="15 4 * * *", command="x", state="absent")
    got = plan_jobs({"nightly": ("d", "own", gone)}, {"nightly": ROW, "apps-own": {**ROW, "id": 8}})
    assert [s.sql for s in got] == ["SELECT cron.unschedule(7)"]
    assert plan_jobs({"nightly": ("d", "own", gone)}, {}) == []


BASE = {"shared_db": {"enabled": False}, "ai_names": [], "roles": {"own": {}, "grp": {"login": False}}}


def cfg(**dbs: dict) -> dict:
    return {**BASE, "databases": {n: {"owner": "own", **d} for n, d in dbs.items()}}


def test_the_cron_database_gets_pg_cron_its_settings_and_preload() -> None:
    c = parse_config(cfg(a={"jobs": {"j": {"schedule": "5 seconds", "command": "SELECT 1"}}}, b={}))
    assert cron_database_of(c) == "a"
    dbs = desired_databases(c)
    assert "pg_cron" in [e.name for e in dbs["a"].extensions] and "pg_cron" not in [e.name for e in dbs["b"].extensions]
    settings = effective_settings(c, dbs)
    assert settings["cron.database_name"] == "a" and settings["cron.use_background_workers"] is True
    assert "pg_cron" in str(settings["shared_preload_libraries"])


def test_no_job_no_pg_cron() -> None:
    c = parse_config(cfg(a={}))
    assert cron_database_of(c) is None and "cron.database_name" not in effective_settings(c, desired_databases(c))


JOB_CFG = {"schedule": "0 3 * * *", "command": "VACUUM"}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            cfg(a={"jobs": {"j": {**JOB_CFG, "schedule": "every day"}}}),
            "databases.a.jobs.j.schedule: 'every day' is not",
        ),
        (cfg(a={"jobs": {"j": {**JOB_CFG, "schedule": "61 seconds"}}}), "is not a pg_cron schedule"),
        (
            cfg(a={"jobs": {"j": {**JOB_CFG, "role": "nobody"}}}),
            "databases.a.jobs.j.role: role 'nobody' is not declared",
        ),
        (cfg(a={"jobs": {"j": {**JOB_CFG, "role": "grp"}}}), "databases.a.jobs.j.role: 'grp' may not connect to a"),
        (
            cfg(a={"jobs": {"j": JOB_CFG}}, b={"jobs": {"j": JOB_CFG}}),
            "databases.b.jobs.j: a job of that name is declared in a",
        ),
        (
            cfg(a={"jobs": {"j": JOB_CFG}}, b={"jobs": {"k": JOB_CFG}}),
            "cron_database: jobs or pg_cron are declared in a, b",
        ),
        (
            cfg(a={"jobs": {"j": JOB_CFG}}, b={"extensions": ["vector", "pg_cron"]}),
            "cron_database: jobs or pg_cron are declared in a, b",
        ),
        (
            {**cfg(a={"jobs": {"j": JOB_CFG}}, b={"extensions": ["pg_cron"]}), "cron_database": "a"},
            "databases.b.extensions[0].name: pg_cron can only be created in the database cron.database_name names (a)",
        ),
        (
            {**cfg(a={"jobs": {"j": JOB_CFG}}), "cron_database": "zzz"},
            "cron_database: 'zzz' is not a declared database",
        ),
        (
            {
                **cfg(a={"jobs": {"j": JOB_CFG}}),
                "allow_drop": True,
                "databases": {"a": {"owner": "own", "state": "absent", "jobs": {"j": JOB_CFG}}},
            },
            "databases.a.jobs.j: the database is declared absent",
        ),
        (cfg(a={"jobs": {"Bad Name": JOB_CFG}}), "is not a job name"),
    ],
)
def test_bad_jobs_are_refused_naming_the_key(config: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config)
    assert expected in str(err.value)
