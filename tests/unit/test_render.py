"""Rendered configuration files: values quoted safely, preload libraries derived from extensions."""

from __future__ import annotations

from operations.catalog import packages_for, preload_for
from operations.config import parse_config
from operations.desired import desired_databases
from operations.render import conf_value, hba_content, settings_content


def test_conf_values_are_quoted_and_escaped() -> None:
    assert conf_value(True) == "on"
    assert conf_value(200) == "200"
    assert conf_value("64MB") == "'64MB'"
    assert conf_value("it's \\ odd") == "'it''s \\\\ odd'"


def test_settings_file_derives_preload_and_keeps_user_settings() -> None:
    cfg = parse_config(
        {
            "cluster": {"listen_addresses": ["localhost", "10.0.0.5"]},
            "default_extensions": ["vector", "pg_stat_statements"],
            "settings": {"work_mem": "64MB", "shared_preload_libraries": "auto_explain"},
        }
    )
    lines = settings_content(cfg, desired_databases(cfg)).splitlines()
    assert lines[0].startswith("# Managed by hearthdb")
    assert "listen_addresses = 'localhost,10.0.0.5'" in lines
    assert "shared_preload_libraries = 'pg_stat_statements,auto_explain'" in lines
    assert "work_mem = '64MB'" in lines


def test_hba_keeps_postgres_peer_first_then_declared_rules() -> None:
    cfg = parse_config(
        {"hba": [{"type": "hostssl", "database": "logos_db", "user": "logos", "address": "10.1.0.0/16"}]}
    )
    rules = [ln for ln in hba_content(cfg).splitlines() if ln and not ln.startswith("#")]
    assert rules == ["local all postgres peer", "hostssl logos_db logos 10.1.0.0/16 scram-sha-256"]


def test_catalog() -> None:
    assert packages_for(17, ["vector", "pg_trgm", "pg_cron"]) == ["postgresql-17-cron", "postgresql-17-pgvector"]
    assert preload_for(["pg_stat_statements", "timescaledb", "vector"]) == ["timescaledb", "pg_stat_statements"]
