"""The first converge on a fresh Debian 13 host: install, cluster, shared database with vector;
a rerun and `--dry` report no change."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import Run, changed_ops, infra_host, psql_json


@pytest.fixture(scope="module")
def converged(fresh_host: str) -> str:
    return fresh_host


@pytest.fixture(scope="module")
def first_run(deploy: Callable[..., Run], converged: str) -> Run:
    return deploy([converged], {}, "-y", "--json")


def test_first_deploy_changes_and_succeeds(first_run: Run) -> None:
    out = first_run.json
    assert out["results"]["failed_hosts"] == []
    changed = changed_ops(first_run)
    assert "PostgreSQL packages" in changed
    assert "cluster 17/main" in changed
    assert {"roles", "databases", "extensions"} <= set(changed)


def test_service_active_and_listening(first_run: Run, converged: str) -> None:
    host = infra_host(converged)
    assert host.package("postgresql-17").is_installed
    assert host.package("postgresql-17-pgvector").is_installed
    service = host.service("postgresql@17-main")
    assert service.is_running
    assert service.is_enabled
    assert host.socket("tcp://127.0.0.1:5432").is_listening


def test_databases_owned_as_declared_with_vector(first_run: Run, converged: str) -> None:
    dbs = psql_json(
        converged,
        "SELECT json_object_agg(datname, json_build_object('owner', pg_get_userbyid(datdba), "
        "'encoding', pg_encoding_to_char(encoding), 'collate', datcollate)) FROM pg_database "
        "WHERE NOT datistemplate AND datname <> 'postgres'",
    )
    assert dbs == {
        "hearthminds_db": {"owner": "hearthminds", "encoding": "UTF8", "collate": "C.UTF-8"},
        "logos_db": {"owner": "logos", "encoding": "UTF8", "collate": "C.UTF-8"},
        "aletheia_db": {"owner": "aletheia", "encoding": "UTF8", "collate": "C.UTF-8"},
    }
    for db in dbs:
        ext = psql_json(converged, "SELECT json_object_agg(extname, extversion) FROM pg_extension", database=db)
        assert "vector" in ext, db
    assert psql_json(converged, "SELECT to_json(current_setting('data_checksums'))") == "on"


def test_no_cluster_was_created_by_the_package(first_run: Run, converged: str) -> None:
    host = infra_host(converged)
    clusters = host.check_output("pg_lsclusters -h").splitlines()
    assert len(clusters) == 1
    assert clusters[0].split()[:4] == ["17", "main", "5432", "online"]


def test_rerun_and_dry_report_no_change(first_run: Run, converged: str, deploy: Callable[..., Run]) -> None:
    dry = deploy([converged], {}, "--dry", "--json").json
    assert changed_ops(dry) == []
    again = deploy([converged], {}, "-y", "--json").json
    assert again["results"]["failed_hosts"] == []
    assert changed_ops(again) == []
    assert again["results"]["totals"]["no_change"] == again["results"]["totals"]["hosts"] > 0
