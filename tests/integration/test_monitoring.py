"""Day two on a real host: Debian's exporters as hearthdb deploys them, scraped over the lab network by a
real Prometheus (Debian's package) on the second host, with the configuration and alert rules
`hearthdb-prometheus` writes, checked by promtool; drift.py reports an exporter that drifted; and the
user's host suite (tests/host) passes on the host, fails on drift naming it, and passes once a deploy
repaired it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import api

from .conftest import Run, changed_ops, host_suite, ssh, suite_counts

DB, PROM = "hdb1", "hdb2"
CONFIG: dict[str, Any] = {
    "ai_names": ["logos", "aletheia"],
    "cluster": {"listen_addresses": ["*"]},
    "databases": {"logos_db": {"extensions": ["vector", "pg_stat_statements"]}},
    "backup": {"enabled": True, "archive": {"timeout": 10}},
    "pooler": {"enabled": True},
    "tls": {"enabled": True},
    "monitoring": {"enabled": True, "listen_address": "0.0.0.0", "scrape_interval": 2},
}
MANAGED = ["hearthminds_db", "logos_db", "aletheia_db"]
PROMTOOL_TESTS = """
rule_files: [hearthdb-rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'hearthdb_validation_failed{host="hdb1", validated_host="hdb1"}'
        values: '0 0 2 2 2 2 2 2 2 2'
      - series: 'pg_stat_activity_count{host="hdb1", datname="logos_db", state="active"}'
        values: '50+10x9'
      - series: 'pg_settings_max_connections{host="hdb1"}'
        values: '100x9'
    alert_rule_test:
      - eval_time: 9m
        alertname: HearthdbValidationFailed
        exp_alerts:
          - exp_labels: {severity: critical, host: hdb1, validated_host: hdb1}
            exp_annotations: {summary: "2 validation checks were false in the latest run on hdb1"}
      - eval_time: 9m
        alertname: HearthdbConnectionsNearLimit
        exp_alerts:
          - exp_labels: {severity: warning, host: hdb1}
            exp_annotations: {summary: "hdb1 uses more than 80% of max_connections"}
      - eval_time: 3m
        alertname: HearthdbConnectionsNearLimit
        exp_alerts: []
"""


@pytest.fixture(scope="module")
def hosts(lab_hosts: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if len(lab_hosts) < 2:
        pytest.skip("needs two lab hosts (HEARTHDB_TEST_HOSTS=2)")
    # one CA and certificate for every run of the module (a relative dir would be each run's own)
    CONFIG["tls"]["dir"] = str(tmp_path_factory.mktemp("tls"))
    db = api.reset(DB, layer="backup")
    prom = api.reset(PROM, layer=None)
    yield {"db": db, "prom": prom}
    api.reset(DB, layer="postgresql")  # as the other modules expect their first host
    api.reset(PROM, layer=None)


def metrics(address: str, port: int) -> list[str]:
    """The exporter's answer, fetched like Prometheus does: over the network, from the controller."""
    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=10) as r:
        return r.read().decode().splitlines()


def value(lines: list[str], prefix: str) -> str | None:
    found = [ln.rsplit(" ", 1)[1] for ln in lines if ln.startswith(prefix)]
    return found[0] if found else None


def drift(deploy: Callable[..., Run]) -> tuple[int, set[tuple[str, str]]]:
    run = deploy([DB], CONFIG, "--data", "format=json", entry="drift.py", check=False)
    assert run.code in (0, 2), run.stderr[-3000:]
    items = json.loads(run.stdout)["hosts"][DB]["drift"]
    return run.code, {(i["object"], i["key"]) for i in items}


def test_exporters_deployed_scraped_and_alerting(
    hosts: dict[str, Any], deploy: Callable[..., Run], tmp_path: Path
) -> None:
    first = deploy([DB], CONFIG, "-y")
    for check in ("exporter_postgres", "exporter_databases", "exporter_statements", "exporter_pgbouncer"):
        assert f"ok   {check}" in first.stderr, check
    address = hosts["db"]["address"]

    pg = metrics(address, 9187)
    assert value(pg, "pg_up") == "1"
    for db in MANAGED:
        for metric in ("pg_stat_database_xact_commit", "pg_database_size_bytes"):
            assert any(ln.startswith(metric + "{") and f'datname="{db}"' in ln for ln in pg), (metric, db)
    assert any(ln.startswith("pg_stat_statements_calls_total{") for ln in pg)
    assert value(pg, 'hearthdb_validation_failed{server="/run/postgresql:5432",validated_host="hdb1"}') == "0"
    assert value(metrics(address, 9127), "pgbouncer_up") == "1"
    assert value(metrics(address, 9854), 'pgbackrest_exporter_status{stanza="hdb1"}') == "1"

    # no secret: the role has no password, the exporter's files hold none, it reads statistics only
    query = "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'hearthdb_monitor'"
    assert ssh(DB, "sudo -u postgres psql -XAt", stdin=query).stdout.strip() == "t"
    env = ssh(DB, "cat /etc/default/prometheus-postgres-exporter").stdout
    assert "password" not in env.lower() and "user=hearthdb_monitor host=/run/postgresql dbname=postgres" in env
    # peer only to `postgres`; elsewhere the user's rules ask a password it does not have
    as_exporter = "sudo -u prometheus psql -wXAt -h /run/postgresql -U hearthdb_monitor"
    other_db = ssh(DB, f"{as_exporter} -d logos_db -c 'SELECT 1'", check=False)
    assert other_db.returncode != 0 and "no password supplied" in other_db.stderr
    data = ssh(DB, f"{as_exporter} -d postgres -c 'SELECT count(*) FROM pg_authid'", check=False)
    assert data.returncode != 0 and "permission denied" in data.stderr

    # the generated Prometheus files: promtool accepts them, the rules fire as intended, and a real
    # Prometheus on the other host scrapes every exporter with them
    out = tmp_path / "prometheus"
    env_vars = api.deploy_env(tmp_path, api.inventory([DB]), CONFIG, deploy.secrets_file)  # type: ignore[attr-defined]
    gen = subprocess.run(
        [str(Path(sys.executable).with_name("hearthdb-prometheus")), "--out", str(out)],
        env=env_vars,
        capture_output=True,
        text=True,
        check=True,
    )
    assert gen.stdout.split() == [str(out / "prometheus.yml"), str(out / "hearthdb-rules.yml")]
    scrape = yaml.safe_load((out / "prometheus.yml").read_text())
    assert [j["job_name"] for j in scrape["scrape_configs"]] == [
        "hearthdb-postgres",
        "hearthdb-pgbouncer",
        "hearthdb-pgbackrest",
    ]
    ssh(PROM, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null")
    for name in ("prometheus.yml", "hearthdb-rules.yml"):
        ssh(PROM, f"cat > /etc/prometheus/{name}", stdin=(out / name).read_text())
    ssh(PROM, "cat > /etc/prometheus/hearthdb-tests.yml", stdin=PROMTOOL_TESTS)
    checked = ssh(PROM, "cd /etc/prometheus && promtool check config prometheus.yml", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    tested = ssh(PROM, "cd /etc/prometheus && promtool test rules hearthdb-tests.yml", check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    ssh(PROM, "systemctl restart prometheus")
    api_url = f"http://{hosts['prom']['address']}:9090/api/v1/query?query="
    deadline, up = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(api_url + urllib.parse.quote('up{job=~"hearthdb-.*"}'), timeout=5) as r:
                up = {s["metric"]["job"]: s["value"][1] for s in json.load(r)["data"]["result"]}
        except OSError:
            up = {}
        if len(up) == 3 and set(up.values()) == {"1"}:
            break
        time.sleep(1)
    assert up == {"hearthdb-postgres": "1", "hearthdb-pgbouncer": "1", "hearthdb-pgbackrest": "1"}
    with urllib.request.urlopen(api_url + urllib.parse.quote("hearthdb_validation_failed"), timeout=5) as r:
        series = json.load(r)["data"]["result"]
    assert [(s["metric"]["host"], s["metric"]["validated_host"], s["value"][1]) for s in series] == [
        ("hdb1", "hdb1", "0")
    ]

    # drift: an edited exporter file and a stopped exporter are reported, one run repairs both
    code, items = drift(deploy)
    assert (code, items) == (0, set()), items
    ssh(DB, "sed -i 's/--collector.stat_statements//' /etc/default/prometheus-postgres-exporter")
    ssh(DB, "systemctl stop prometheus-pgbouncer-exporter")
    code, items = drift(deploy)
    assert code == 2
    assert items == {
        ("/etc/default/prometheus-postgres-exporter", "content"),
        ("prometheus-pgbouncer-exporter.service", "active and enabled"),
    }
    assert "pgbouncer exporter" in changed_ops(deploy([DB], CONFIG, "-y", "--json"))
    # no drift is "a rerun changes nothing" (drift.py is the deploy, read-only; tests/integration/test_drift.py)
    assert drift(deploy) == (0, set())


def test_host_suite_passes_fails_on_drift_and_passes_again(
    hosts: dict[str, Any], deploy: Callable[..., Run], tmp_path: Path
) -> None:
    """Runs after the test above left the host converged (backups, pooler, TLS, monitoring declared)."""
    run = host_suite([DB], CONFIG, tmp_path)
    assert run.code == 0, run.stdout[-4000:]
    assert suite_counts(run) == {"passed": 13, "deselected": 1}  # all but the ha section's test
    ssh(
        DB,
        "sudo -u postgres psql -X -q",
        stdin="ALTER ROLE logos CREATEDB;\nGRANT CONNECT ON DATABASE aletheia_db TO logos;\n",
    )
    failed = host_suite([DB], CONFIG, tmp_path)
    assert failed.code == 1
    names = sorted(set(re.findall(r"^FAILED tests/host/test_host.py::(\w+)", failed.stdout, re.M)))
    assert names == ["test_databases_and_isolation_matrix", "test_roles_as_declared"], failed.stdout[-3000:]
    assert "logos may connect to aletheia_db" in failed.stdout
    deploy([DB], CONFIG, "-y")
    assert host_suite([DB], CONFIG, tmp_path).code == 0
