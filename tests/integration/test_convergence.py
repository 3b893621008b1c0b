"""Core convergence on a real host: every declared item holds, changes are minimal, settings and
pg_hba go live only when the server accepts them, passwords are sent only when they change, and the
isolation between AI databases holds for real client connections."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from .conftest import OBJECTS_OP, Run, changed_ops, connect, phases, psql_json, secrets, ssh

LAB_NET = "10.213.7.0/24"
AIS = ["logos", "aletheia", "nous", "sophia"]
BASE: dict[str, Any] = {
    "cluster": {"listen_addresses": ["*"]},
    "hba": [
        {"type": "local", "database": "all", "user": "all"},
        {"type": "host", "database": "all", "user": "all", "address": "127.0.0.1/32"},
        {"type": "host", "database": "all", "user": "all", "address": LAB_NET},
    ],
    "ai_names": AIS,
    "settings": {"work_mem": "8MB", "log_connections": True},
    "roles": {
        "outsider": {"login": True},
        "hearthminds": {"settings": {"statement_timeout": "30s"}, "connection_limit": 20},
    },
    "default_extensions": ["vector", "pg_trgm"],
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def postmaster_pid(host: str) -> str:
    return ssh(host, "head -1 /var/lib/postgresql/17/main/postmaster.pid").stdout.strip()


def show(host: str, name: str) -> str:
    return psql_json(host, f"SELECT to_json(current_setting('{name}'))")


@pytest.fixture(scope="module")
def host(pg_host: dict[str, Any], deploy: Callable[..., Run]) -> dict[str, Any]:
    deploy([pg_host["name"]], BASE, "-y")
    return pg_host


def test_declared_state_holds(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    name = host["name"]
    roles = psql_json(
        name,
        "SELECT json_object_agg(rolname, json_build_object('super', rolsuper, 'login', rolcanlogin, "
        "'limit', rolconnlimit, 'config', (SELECT rolconfig FROM pg_roles r WHERE r.oid = a.oid), "
        "'scram', rolpassword LIKE 'SCRAM-SHA-256$%')) FROM pg_authid a "
        "WHERE rolname !~ '^pg_' AND rolname <> 'postgres'",
    )
    assert set(roles) == {"hearthminds", "outsider", *AIS}
    assert all(r["login"] and not r["super"] and r["scram"] for r in roles.values())
    assert roles["hearthminds"]["limit"] == 20
    assert roles["hearthminds"]["config"] == ["statement_timeout=30s"]
    dbs = psql_json(
        name,
        "SELECT json_object_agg(datname, pg_get_userbyid(datdba)) FROM pg_database WHERE NOT datistemplate "
        "AND datname <> 'postgres'",
    )
    assert dbs == {"hearthminds_db": "hearthminds", **{f"{ai}_db": ai for ai in AIS}}
    for db in dbs:
        ext = psql_json(name, "SELECT json_object_agg(extname, extversion) FROM pg_extension", database=db)
        assert {"vector", "pg_trgm"} <= set(ext), db
    assert show(name, "work_mem") == "8MB"
    assert show(name, "log_connections") == "on"
    rules = psql_json(
        name,
        "SELECT json_agg(json_build_array(type, database, user_name, address, auth_method) ORDER BY line_number) "
        "FROM pg_hba_file_rules",
    )
    assert rules[0] == ["local", ["all"], ["postgres"], None, "peer"]
    assert ["host", ["all"], ["all"], "10.213.7.0", "scram-sha-256"] in rules
    assert all(r[4] in ("peer", "scram-sha-256") for r in rules)


def test_rerun_and_dry_report_no_change(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    assert changed_ops(deploy([host["name"]], BASE, "--dry", "--json").json) == []
    again = deploy([host["name"]], BASE, "-y", "--json").json
    assert changed_ops(again) == []
    assert again["results"]["failed_hosts"] == []


def test_dry_shows_the_sql_that_would_run(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    out = deploy([host["name"]], with_(ai_names=[*AIS, "kairos"]), "--dry").stderr
    assert 'CREATE ROLE "kairos" LOGIN' in out
    assert "ALTER ROLE \"kairos\" PASSWORD '***'" in out
    assert 'CREATE DATABASE "kairos_db" OWNER "kairos"' in out
    assert psql_json(host["name"], "SELECT to_json(count(*)) FROM pg_roles WHERE rolname = 'kairos'") == 0


def test_reload_setting_reloads_without_restart(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    before = postmaster_pid(host["name"])
    run = deploy([host["name"]], with_(settings={**BASE["settings"], "work_mem": "16MB"}), "-y", "--json")
    assert changed_ops(run.json) == ["settings"]
    assert show(host["name"], "work_mem") == "16MB"
    assert postmaster_pid(host["name"]) == before


def test_restart_setting_restarts(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    before = postmaster_pid(host["name"])
    settings = {**BASE["settings"], "work_mem": "16MB", "shared_buffers": "192MB"}
    run = deploy([host["name"]], with_(settings=settings), "-y", "-vvv")  # -vvv: remote output shown
    assert "restarting 17/main for shared_buffers" in run.stderr
    assert show(host["name"], "shared_buffers") == "192MB"
    assert postmaster_pid(host["name"]) != before


def test_invalid_setting_refused_server_keeps_running_old_value(
    host: dict[str, Any], deploy: Callable[..., Run]
) -> None:
    name = host["name"]
    conf = "/etc/postgresql/17/main/conf.d/50-hearthdb.conf"
    before_file = ssh(name, f"cat {conf}").stdout
    before_pid = postmaster_pid(name)
    # Passes hearthdb's own checks (an unknown-to-us parameter), refused by the server.
    bad = with_(settings={**BASE["settings"], "work_mem": "16MB", "shared_buffers": "192MB", "max_wal_senders": -5})
    run = deploy([name], bad, "-y", check=False)
    assert run.code != 0
    assert '-5 is outside the valid range for parameter "max_wal_senders"' in run.stderr
    assert ssh(name, f"cat {conf}").stdout == before_file
    assert postmaster_pid(name) == before_pid
    assert show(name, "max_wal_senders") == "10"
    assert ssh(name, "systemctl is-active postgresql@17-main").stdout.strip() == "active"


def test_broken_hba_refused_old_file_kept(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    name = host["name"]
    before = ssh(name, "cat /etc/postgresql/17/main/pg_hba.conf").stdout
    # cert on a non-SSL host rule: passes hearthdb's checks, refused by pg_hba_file_rules.
    hba = [
        *BASE["hba"],
        {"type": "host", "database": "all", "user": "all", "address": "10.99.0.0/16", "method": "cert"},
    ]
    run = deploy([name], with_(hba=hba), "-y", check=False)
    assert run.code != 0
    assert "hba refused by PostgreSQL, previous file kept" in run.stderr
    assert "cert authentication is only supported on hostssl connections" in run.stderr
    assert ssh(name, "cat /etc/postgresql/17/main/pg_hba.conf").stdout == before


def test_password_change_touches_only_that_role(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    name = host["name"]
    deploy([name], BASE, "-y")  # back to the declared state after the previous tests
    old = secrets(deploy)["logos"]
    with connect(host, "logos", old, "logos_db"):
        pass
    new = "rotated-logos-password-1"
    env = {"HEARTHDB_PASSWORD_LOGOS": new}
    plan = deploy([name], BASE, "--dry", env=env).stderr
    assert "ALTER ROLE \"logos\" PASSWORD '***'" in plan
    assert re.findall(r'ALTER ROLE "([^"]+)" PASSWORD', plan) == ["logos"]
    run = deploy([name], BASE, "-y", "-vvv", env=env)
    assert changed_ops_text(run.stderr) == ["roles"]
    assert new not in plan + run.stderr and old not in plan + run.stderr
    with connect(host, "logos", new, "logos_db"):
        pass
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(host, "logos", old, "logos_db")
    # Unchanged password: no SQL at all for roles.
    again = deploy([name], BASE, "-y", "--json", env=env)
    assert changed_ops(again.json) == []
    deploy([name], BASE, "-y")  # the stored password again, for the tests that follow


def changed_ops_text(stderr: str) -> list[str]:
    """Operation names in the results table with a success count (pyinfra's text output); the SQL
    objects operation by the phases it applied."""
    out = []
    for line in stderr.splitlines():
        m = re.match(r"\s+hearthdb \| (.+?)\s{2,}(\d+)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s*$", line)
        if m and m.group(3) != "-":
            out += phases(stderr) if m.group(1) == OBJECTS_OP else [m.group(1)]
    return out


def test_isolation_matrix(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    pw = secrets(deploy)
    dbs = ["hearthminds_db", *(f"{ai}_db" for ai in AIS)]
    for ai in AIS:
        for db in dbs:
            allowed = db in (f"{ai}_db", "hearthminds_db")
            if allowed:
                with connect(host, ai, pw[ai], db) as conn:
                    assert conn.execute("SELECT current_user").fetchone() == (ai,)
            else:
                with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                    connect(host, ai, pw[ai], db)
    # PUBLIC (a login role with no grants) reaches no AI database and not the shared one.
    for db in dbs:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(host, "outsider", pw["outsider"], db)
    # hearthminds monitors: connects to every AI database and reads pg_stat views of all of them.
    for db in dbs:
        with connect(host, "hearthminds", pw["hearthminds"], db) as conn:
            assert conn.execute("SELECT count(*) FROM pg_stat_user_tables").fetchone() is not None
    with connect(host, "hearthminds", pw["hearthminds"], "hearthminds_db") as conn:
        seen = conn.execute("SELECT count(*) FROM pg_stat_database WHERE datname LIKE '%\\_db'").fetchone()
        assert seen == (len(dbs),)
        is_super = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        assert is_super == (False,)
        # pg_monitor: other sessions' queries are visible
        assert conn.execute("SELECT bool_and(query IS NOT NULL) FROM pg_stat_activity").fetchone() == (True,)
    # The owner writes to public; PUBLIC may not create there; vector already exists for the app.
    with connect(host, "logos", pw["logos"], "logos_db") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE IF NOT EXISTS mem (id int, e vector(3))")
    with (
        connect(host, "hearthminds", pw["hearthminds"], "logos_db") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE TABLE intruder (id int)")


def test_drift_behind_the_visit_memo_is_seen(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    """The visit answers unchanged databases from what it recorded last time; any write in a database
    (DDL included) changes its fingerprint, so drift there is read afresh and corrected."""
    name = host["name"]
    deploy([name], BASE, "-y")
    memo = ssh(name, "cut -f1 /var/lib/postgresql/.hearthdb-visit-17-main | sort -u | wc -l").stdout.strip()
    assert int(memo) >= len(AIS) + 3  # every database, postgres and template1 included
    ssh(name, "sudo -u postgres psql -X -q -d nous_db -c 'GRANT CREATE ON SCHEMA public TO PUBLIC'")
    ssh(name, "sudo -u postgres psql -X -q -d sophia_db -c 'DROP EXTENSION pg_trgm'")
    dry = deploy([name], BASE, "--dry")
    assert re.search(r'\\connect "?nous_db"?\n\s*REVOKE CREATE ON SCHEMA public FROM PUBLIC', dry.stderr)
    assert re.search(r'\\connect "?sophia_db"?\n\s*CREATE EXTENSION IF NOT EXISTS "?pg_trgm"?', dry.stderr)
    deploy([name], BASE, "-y")
    again = deploy([name], BASE, "-y", "--json")
    assert changed_ops(again.json) == []


def count_remote_commands(stderr: str) -> int:
    return sum(1 for line in stderr.splitlines() if ">>> " in line)


def test_noop_remote_commands_flat_in_number_of_ais(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    name = host["name"]
    small = with_(ai_names=["logos", "aletheia"])
    large = with_(ai_names=[f"ai{i:02d}" for i in range(50)])
    counts = {}
    for label, cfg in (("2", small), ("50", large)):
        deploy([name], cfg, "-y")  # converge (AIs no longer listed are kept: nothing is dropped)
        run = deploy([name], cfg, "-y", "-vv", "--json")
        assert changed_ops(run.json) == []
        counts[label] = count_remote_commands(run.stderr)
    assert counts["2"] == counts["50"] > 0
    # Removing AIs from ai_names dropped nothing.
    left = psql_json(name, "SELECT json_agg(datname ORDER BY datname) FROM pg_database WHERE datname LIKE '%\\_db'")
    assert {"logos_db", "nous_db", "sophia_db", "ai00_db", "ai49_db"} <= set(left)


def test_absent_is_dropped_only_with_allow_drop(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    name = host["name"]
    declared = with_(roles={**BASE["roles"], "scratch": {}}, databases={"scratch_db": {"owner": "scratch"}})
    deploy([name], declared, "-y")
    absent = with_(
        roles={**BASE["roles"], "scratch": {"state": "absent"}}, databases={"scratch_db": {"state": "absent"}}
    )
    refused = deploy([name], absent, "--dry", check=False)
    assert refused.code != 0
    assert "absent needs allow_drop: true" in refused.stderr
    assert psql_json(name, "SELECT to_json(count(*)) FROM pg_database WHERE datname = 'scratch_db'") == 1
    deploy([name], {**absent, "allow_drop": True}, "-y")
    assert psql_json(name, "SELECT to_json(count(*)) FROM pg_database WHERE datname = 'scratch_db'") == 0
    assert psql_json(name, "SELECT to_json(count(*)) FROM pg_roles WHERE rolname = 'scratch'") == 0
    assert changed_ops(deploy([name], {**absent, "allow_drop": True}, "--dry", "--json").json) == []
