"""The pure part of monitoring (operations/monitoring.py): the `monitoring` model and its cross-key rules,
the exporters' files, pg_stat_statements' sizing, what validation concludes from an exporter's answer,
and the Prometheus files (shapes here; promtool checks them in tests/integration/test_monitoring.py)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from operations.config import parse_config
from operations.desired import desired_databases, desired_roles, monitor_database
from operations.errors import ConfigError
from operations.monitoring import (
    MONITOR_DATABASE,
    Monitoring,
    alert_rules,
    exporter_checks,
    exporter_url,
    exporters,
    hba_lines,
    ident_lines,
    pgbouncer_exporter_environment,
    postgres_exporter_environment,
    queries_yaml,
    scrape_config,
    stat_statements_max,
)
from operations.render import effective_settings

ON = {"monitoring": {"enabled": True}}


def test_role_is_a_pg_monitor_member_without_password() -> None:
    cfg = parse_config(ON)
    spec = desired_roles(cfg)["hearthdb_monitor"]
    assert spec.member_of == ("pg_monitor",) and spec.login and spec.no_password
    assert not spec.superuser
    assert "hearthdb_monitor" not in desired_roles(parse_config({}))


def test_role_name_may_not_be_declared_again() -> None:
    with pytest.raises(ConfigError, match=r"monitoring.role: 'watch' is also a declared role"):
        parse_config({"monitoring": {"enabled": True, "role": "watch"}, "roles": {"watch": {}}})


@pytest.mark.parametrize("address", ["localhost", "10.0.0.300", "*", ""])
def test_listen_address_must_be_an_ip(address: str) -> None:
    with pytest.raises(ConfigError, match=r"monitoring.listen_address"):
        parse_config({"monitoring": {"enabled": True, "listen_address": address}})


def test_peer_through_the_map_to_postgres_only() -> None:
    mon = Monitoring(enabled=True, role="watch")
    assert ident_lines(mon) == ("hearthdb_monitor prometheus watch",)
    assert hba_lines(mon) == ["local postgres watch peer map=hearthdb_monitor"]
    assert ident_lines(Monitoring()) == () and hba_lines(Monitoring()) == []


def test_exporters_follow_the_sections() -> None:
    mon = Monitoring(enabled=True)
    assert exporters(mon, pooler=False, backup=False) == ["postgres"]
    assert exporters(mon, pooler=True, backup=True) == ["postgres", "pgbouncer", "pgbackrest"]
    assert exporters(Monitoring(), pooler=True, backup=True) == []


def test_postgres_exporter_environment() -> None:
    mon = Monitoring(enabled=True, listen_address="::", postgres_port=9999)
    queries = queries_yaml(mon)
    env = postgres_exporter_environment(mon, stat_statements=True, queries=queries)
    assert "DATA_SOURCE_NAME='user=hearthdb_monitor host=/run/postgresql dbname=postgres'" in env
    assert "--web.listen-address=[::]:9999" in env and "--collector.stat_statements" in env
    assert "--no-collector.database" in env  # sizes come from the one cached query instead
    other = postgres_exporter_environment(mon, stat_statements=False, queries=queries.replace("60", "61"))
    assert "--collector.stat_statements" not in other
    assert env.splitlines()[1] != other.splitlines()[1]  # a new queries file changes (restarts) the unit's file
    assert "password" not in env.lower()


def test_queries_file_reuses_sizes_for_size_interval() -> None:
    doc = yaml.safe_load(queries_yaml(Monitoring(size_interval=120)))
    assert doc["pg_database"]["cache_seconds"] == 120
    assert "pg_database_size(datname)" in doc["pg_database"]["query"]
    assert "hearthdb.validation_latest" in doc["hearthdb_validation"]["query"]
    assert {next(iter(m)) for m in doc["hearthdb_validation"]["metrics"]} == {
        "validated_host",
        "checks",
        "failed",
        "checked_at",
    }


def test_pgbouncer_exporter_uses_the_admin_console_by_socket() -> None:
    env = pgbouncer_exporter_environment(Monitoring(enabled=True), 6543)
    assert "postgres://pgbouncer@/pgbouncer?host=/var/run/postgresql&port=6543&sslmode=disable" in env
    assert "--web.listen-address=127.0.0.1:9127" in env


def test_exporter_url_from_its_own_host() -> None:
    assert exporter_url(Monitoring(listen_address="0.0.0.0"), "postgres") == "http://127.0.0.1:9187/metrics"
    assert exporter_url(Monitoring(listen_address="::"), "pgbouncer") == "http://[::1]:9127/metrics"
    assert exporter_url(Monitoring(listen_address="10.1.2.3"), "pgbackrest") == "http://10.1.2.3:9854/metrics"


@given(st.integers(min_value=0, max_value=5000))
def test_stat_statements_max_room_for_every_database_and_stable(n: int) -> None:
    size = stat_statements_max(n)
    assert 5000 <= size <= 80000 and size % 5000 == 0
    assert size >= min(100 * n, 80000)
    assert stat_statements_max(n + 1) >= size  # never shrinks as databases are added
    assert size in (5000, 10000, 20000, 40000, 80000)  # doublings: a restart only when the count doubles


def test_stat_statements_settings_only_when_declared() -> None:
    cfg = parse_config(
        {"ai_names": [f"ai{i}" for i in range(200)], "default_extensions": ["vector", "pg_stat_statements"]}
    )
    settings = effective_settings(cfg, desired_databases(cfg))
    assert settings["pg_stat_statements.max"] == 40000 and settings["pg_stat_statements.track"] == "top"
    assert "pg_stat_statements" in str(settings["shared_preload_libraries"])
    plain = parse_config({})
    assert "pg_stat_statements.max" not in effective_settings(plain, desired_databases(plain))
    user = parse_config({"default_extensions": ["pg_stat_statements"], "settings": {"pg_stat_statements.max": 7000}})
    assert effective_settings(user, desired_databases(user))["pg_stat_statements.max"] == 7000


def test_monitor_database_gets_pg_stat_statements_when_declared() -> None:
    declared = parse_config({**ON, "databases": {"logos_db": {"extensions": ["pg_stat_statements"]}}})
    spec = monitor_database(declared, desired_databases(declared))
    assert spec is not None and spec.name == MONITOR_DATABASE
    assert [e.name for e in spec.extensions] == ["pg_stat_statements"]
    plain = parse_config(ON)
    assert monitor_database(plain, desired_databases(plain)) is None
    off = parse_config({"databases": {"logos_db": {"extensions": ["pg_stat_statements"]}}})
    assert monitor_database(off, desired_databases(off)) is None


ANSWER = [
    "pg_up 1",
    'pg_stat_database_xact_commit{datid="5",datname="a_db",server="/run/postgresql:5432"} 10',
    'pg_stat_database_xact_commit{datid="6",datname="b_db",server="/run/postgresql:5432"} 3',
    'pg_database_size_bytes{datname="a_db",server="/run/postgresql:5432"} 7.6e+06',
    'pg_database_size_bytes{datname="b_db",server="/run/postgresql:5432"} 7.6e+06',
    'pg_stat_statements_calls_total{datname="a_db",queryid="1",user="a"} 1',
]


def test_exporter_checks_pass_on_a_full_answer() -> None:
    checks = exporter_checks("postgres", ANSWER, ["a_db", "b_db"], stat_statements=True)
    assert [(n, ok) for n, ok, _ in checks] == [
        ("exporter_postgres", True),
        ("exporter_databases", True),
        ("exporter_statements", True),
    ]


@pytest.mark.parametrize(
    ("lines", "failed"),
    [
        (None, "exporter_postgres"),
        (["pg_up 0", *ANSWER[1:]], "exporter_postgres"),
        ([ln for ln in ANSWER if 'datname="b_db"' not in ln or "size" in ln], "exporter_databases"),
        ([ln for ln in ANSWER if "size" not in ln or "a_db" in ln], "exporter_databases"),
        (ANSWER[:-1], "exporter_statements"),
        ([ln for ln in ANSWER if ln != "pg_up 1"], "exporter_postgres"),
    ],
)
def test_exporter_checks_fail_on_what_is_missing(lines: list[str] | None, failed: str) -> None:
    checks = exporter_checks("postgres", lines, ["a_db", "b_db"], stat_statements=True)
    assert [n for n, ok, _ in checks if not ok] == [failed]


def test_exporter_checks_of_pgbouncer_and_pgbackrest() -> None:
    assert all(ok for _, ok, _ in exporter_checks("pgbouncer", ["pgbouncer_up 1", "pgbouncer_databases 3"], [], False))
    stanza = ['pgbackrest_exporter_status{stanza="db1"} 1', 'pgbackrest_stanza_status{stanza="db1"} 0']
    assert all(ok for _, ok, _ in exporter_checks("pgbackrest", stanza, [], False, "db1"))
    other = exporter_checks("pgbackrest", stanza, [], False, "db2")
    assert [n for n, ok, _ in other if not ok] == ["exporter_stanza"]


def test_scrape_config_targets_each_host_by_address_or_listen_address() -> None:
    hosts = {"db1": "10.0.0.1", "db2": "10.0.0.2"}
    doc = yaml.safe_load(scrape_config(Monitoring(listen_address="0.0.0.0"), hosts, ["postgres", "pgbouncer"]))
    assert doc["rule_files"] == ["hearthdb-rules.yml"]
    jobs = {j["job_name"]: j["static_configs"] for j in doc["scrape_configs"]}
    assert jobs["hearthdb-postgres"] == [
        {"targets": ["10.0.0.1:9187"], "labels": {"host": "db1"}},
        {"targets": ["10.0.0.2:9187"], "labels": {"host": "db2"}},
    ]
    assert jobs["hearthdb-pgbouncer"][0]["targets"] == ["10.0.0.1:9127"]
    bound = yaml.safe_load(scrape_config(Monitoring(listen_address="10.9.9.9"), {"db1": "x"}, ["postgres"]))
    assert bound["scrape_configs"][0]["static_configs"][0]["targets"] == ["10.9.9.9:9187"]


def test_alert_rules_follow_the_sections() -> None:
    def names(text: str) -> list[str]:
        return [r["alert"] for r in yaml.safe_load(text)["groups"][0]["rules"]]

    base = names(alert_rules(Monitoring(), ["postgres"], ha=False))
    assert base == [
        "HearthdbExporterDown",
        "HearthdbPostgresDown",
        "HearthdbConnectionsNearLimit",
        "HearthdbValidationFailed",
        "HearthdbArchivingFailing",
    ]
    full = names(alert_rules(Monitoring(), ["postgres", "pgbackrest"], ha=True))
    assert full == [*base, "HearthdbReplicationLag", "HearthdbBackupTooOld"]
    rules = yaml.safe_load(
        alert_rules(Monitoring.model_validate({"alerts": {"backup_age_hours": 2}}), ["pgbackrest"], False)
    )
    backup = rules["groups"][0]["rules"][-1]
    assert backup["expr"].endswith("> 7200") and backup["for"] == "5m"
