"""Any combination of hand-made drift is repaired in one run (property-based, on a real host).

From a catalog of drift kinds (role attributes, passwords, memberships, database owners and ACLs,
extensions, schema rights, the ledger's owner, grants and default privileges, pg_cron jobs, ALTER
SYSTEM, edited configuration files, a dropped database or role, a stopped cluster), hypothesis draws
a combination, applies all of it by hand on a
converged lab host, then asserts:

- `--dry` reports every drifted object (the statement or file that repairs it);
- one run repairs everything: exit 0, validation all true, and the catalog equal to the state the
  first converge left (read by its own queries here, not through hearthdb's planners);
- the next run reports no change.

Seeded, `HEARTHDB_DRIFT_EXAMPLES` generated combinations per run (default 6), no shrinking (each
example costs a few deploys). Combinations that ever failed are kept below as explicit examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

from lab import api
from operations.scram import matches

from .conftest import Run, changed_ops, psql_json, secrets, ssh

AIS = ["logos", "aletheia", "nous"]
CONFIG: dict[str, Any] = {
    "ai_names": AIS,
    "default_extensions": ["vector", "pg_trgm"],
    "settings": {"work_mem": "8MB"},
    "roles": {
        "hearthminds": {"settings": {"statement_timeout": "30s"}, "connection_limit": 20},
        "outsider": {},
        "scribe": {},
        "reader": {},
    },
    "databases": {
        "notes_db": {"owner": "scribe"},
        "hearthminds_db": {
            "connect": ["reader"],
            "grants": {"reader": {"public": {"schema": ["USAGE"], "tables": ["SELECT"]}}},
            "jobs": {
                "patterns-analyze": {"schedule": "0 3 * * *", "command": "ANALYZE eng_patterns"},
                "patterns-vacuum": {"schedule": "30 3 * * 0", "command": "VACUUM eng_patterns"},
            },
        },
    },
}
CONF = "/etc/postgresql/17/main/conf.d/50-hearthdb.conf"
HBA = "/etc/postgresql/17/main/pg_hba.conf"
RELOAD = "sudo -u postgres psql -X -q -c 'SELECT pg_reload_conf()'"


@dataclass(frozen=True)
class Drift:
    """One kind of hand-made drift: SQL run as postgres (in `database`), or a shell command; and the
    lines `--dry` must show for it (regular expressions, searched in its plan output)."""

    sql: str = ""
    database: str = "postgres"
    shell: str = ""
    dry: tuple[str, ...] = ()


def q(name: str) -> str:
    return re.escape(f'"{name}"')


def in_db(database: str, line: str) -> str:
    """`line` among the statements planned after `\\connect database` (and before the next one)."""
    return rf"\\connect {q(database)}\n(?:[ \t]+(?!\\connect)\S.*\n)*?[ \t]+{line}"


DRIFTS: dict[str, Drift] = {
    "role_attributes": Drift("ALTER ROLE nous CREATEDB CREATEROLE", dry=(rf"ALTER ROLE {q('nous')} .*NOCREATEDB",)),
    "role_superuser": Drift("ALTER ROLE scribe SUPERUSER", dry=(rf"ALTER ROLE {q('scribe')} NOSUPERUSER",)),
    "role_nologin": Drift("ALTER ROLE aletheia NOLOGIN", dry=(rf"ALTER ROLE {q('aletheia')} LOGIN",)),
    "role_password": Drift(
        "ALTER ROLE logos PASSWORD 'changed-by-hand-0123456789'", dry=(rf"ALTER ROLE {q('logos')} PASSWORD '\*\*\*'",)
    ),
    "role_connection_limit": Drift(
        "ALTER ROLE hearthminds CONNECTION LIMIT 3", dry=(rf"ALTER ROLE {q('hearthminds')} CONNECTION LIMIT 20",)
    ),
    "role_settings": Drift(
        "ALTER ROLE hearthminds SET statement_timeout = '1s'; ALTER ROLE nous SET work_mem = '1MB'",
        dry=(rf"ALTER ROLE {q('hearthminds')} SET {q('statement_timeout')}", rf"ALTER ROLE {q('nous')} RESET"),
    ),
    "membership_extra": Drift("GRANT aletheia TO logos", dry=(rf"REVOKE {q('aletheia')} FROM {q('logos')}",)),
    "membership_missing": Drift(
        "REVOKE pg_monitor FROM hearthminds", dry=(rf"GRANT {q('pg_monitor')} TO {q('hearthminds')}",)
    ),
    "role_dropped": Drift("DROP ROLE outsider", dry=(rf"CREATE ROLE {q('outsider')}",)),
    # hearthminds may connect to logos_db: as its owner its grant collapses into ownership, and
    # giving the database back to logos moves the owner's rights to logos, not back to hearthminds.
    "database_owner": Drift(
        "ALTER DATABASE logos_db OWNER TO hearthminds", dry=(rf"ALTER DATABASE {q('logos_db')} OWNER TO {q('logos')}",)
    ),
    "shared_database_owner": Drift(
        "ALTER DATABASE hearthminds_db OWNER TO nous",
        dry=(rf"ALTER DATABASE {q('hearthminds_db')} OWNER TO {q('hearthminds')}",),
    ),
    "public_connect": Drift(
        "GRANT CONNECT, TEMPORARY ON DATABASE aletheia_db TO PUBLIC",
        dry=(rf"REVOKE CONNECT, TEMPORARY ON DATABASE {q('aletheia_db')} FROM PUBLIC",),
    ),
    "connect_revoked": Drift(
        "REVOKE CONNECT ON DATABASE hearthminds_db FROM aletheia",
        dry=(rf"GRANT CONNECT ON DATABASE {q('hearthminds_db')} TO {q('aletheia')}",),
    ),
    "connect_extra": Drift(
        "GRANT CONNECT ON DATABASE nous_db TO logos",
        dry=(rf"REVOKE CONNECT ON DATABASE {q('nous_db')} FROM {q('logos')}",),
    ),
    "extension_dropped": Drift(
        "DROP EXTENSION pg_trgm",
        "nous_db",
        dry=(in_db("nous_db", rf"CREATE EXTENSION IF NOT EXISTS {q('pg_trgm')}"),),
    ),
    "extension_old": Drift(
        "DROP EXTENSION pg_trgm; CREATE EXTENSION pg_trgm VERSION '1.3'",
        "logos_db",
        dry=(in_db("logos_db", rf"ALTER EXTENSION {q('pg_trgm')} UPDATE TO"),),
    ),
    "public_create": Drift(
        "GRANT CREATE ON SCHEMA public TO PUBLIC",
        "aletheia_db",
        dry=(in_db("aletheia_db", "REVOKE CREATE ON SCHEMA public FROM PUBLIC"),),
    ),
    "ledger_owner": Drift(
        "ALTER TABLE hearthdb.schema_migrations OWNER TO postgres; ALTER SCHEMA hearthdb OWNER TO postgres",
        "nous_db",
        dry=(in_db("nous_db", rf"ALTER SCHEMA {q('hearthdb')} OWNER TO {q('nous')}"),),
    ),
    "database_dropped": Drift("DROP DATABASE notes_db", dry=(rf"CREATE DATABASE {q('notes_db')} OWNER {q('scribe')}",)),
    "alter_system": Drift(
        "ALTER SYSTEM SET work_mem = '1MB'; SELECT pg_reload_conf()", dry=(rf"ALTER SYSTEM RESET {q('work_mem')}",)
    ),
    "conf_edited": Drift(
        shell=f"echo \"work_mem = '2MB'\" >> {CONF} && {RELOAD}",
        dry=(re.escape(f"settings: write {CONF} would run"),),
    ),
    "hba_edited": Drift(
        shell=f"echo 'host all all 0.0.0.0/0 scram-sha-256' >> {HBA} && {RELOAD}",
        dry=(re.escape(f"hba: write {HBA} would run"),),
    ),
    "grant_revoked": Drift(
        "REVOKE SELECT ON eng_patterns FROM reader",
        "hearthminds_db",
        dry=(in_db("hearthminds_db", rf"GRANT SELECT ON ALL TABLES IN SCHEMA {q('public')} TO {q('reader')}"),),
    ),
    "grant_public": Drift(
        "GRANT SELECT, UPDATE ON eng_patterns TO PUBLIC",
        "hearthminds_db",
        dry=(in_db("hearthminds_db", rf"REVOKE SELECT, UPDATE ON ALL TABLES IN SCHEMA {q('public')} FROM PUBLIC"),),
    ),
    "default_privileges": Drift(
        "ALTER DEFAULT PRIVILEGES FOR ROLE hearthminds IN SCHEMA public REVOKE SELECT ON TABLES FROM reader",
        "hearthminds_db",
        dry=(rf"ALTER DEFAULT PRIVILEGES FOR ROLE {q('hearthminds')} IN SCHEMA {q('public')} GRANT SELECT ON TABLES",),
    ),
    "job_altered": Drift(
        "SELECT cron.alter_job(jobid, schedule := '0 0 * * *') FROM cron.job WHERE jobname = 'patterns-analyze'",
        "hearthminds_db",
        dry=(r"cron\.alter_job\('patterns-analyze', \.\.\.\) -- schedule: '0 0 \* \* \*' -> '0 3 \* \* \*'",),
    ),
    "job_unscheduled": Drift(
        "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'patterns-vacuum'",
        "hearthminds_db",
        dry=(r"cron\.schedule_in_database\('patterns-vacuum'",),
    ),
    "cluster_stopped": Drift(shell="pg_ctlcluster 17 main stop"),
}
# What drift.py must report for each kind, exactly: (object, key) of every item.
ITEMS: dict[str, set[tuple[str, str]]] = {
    "role_attributes": {("role nous", "createdb"), ("role nous", "createrole")},
    "role_superuser": {("role scribe", "superuser")},
    "role_nologin": {("role aletheia", "login")},
    "role_password": {("role logos", "password")},
    "role_connection_limit": {("role hearthminds", "connection_limit")},
    "role_settings": {("role hearthminds", "setting statement_timeout"), ("role nous", "setting work_mem")},
    "membership_extra": {("role logos", "member of aletheia")},
    "membership_missing": {("role hearthminds", "member of pg_monitor")},
    "role_dropped": {("role outsider", "exists")},
    # the owner change collapsed hearthminds's CONNECT into ownership: giving it back takes a grant
    "database_owner": {("database logos_db", "owner"), ("database logos_db", "hearthminds may connect")},
    "shared_database_owner": {("database hearthminds_db", "owner"), ("database hearthminds_db", "nous may connect")},
    "public_connect": {("database aletheia_db", "PUBLIC may connect")},
    "connect_revoked": {("database hearthminds_db", "aletheia may connect")},
    "connect_extra": {("database nous_db", "logos may connect")},
    "extension_dropped": {("database nous_db", "extension pg_trgm"), ("database nous_db", "extension pg_trgm comment")},
    "extension_old": {("database logos_db", "extension pg_trgm"), ("database logos_db", "extension pg_trgm comment")},
    "public_create": {("database aletheia_db", "PUBLIC may create in schema public")},
    "ledger_owner": {("database nous_db", "schema migrations")},
    "database_dropped": {("database notes_db", "exists")},
    "alter_system": {("postgresql.auto.conf", "work_mem")},
    "conf_edited": {(CONF, "content")},
    "hba_edited": {(HBA, "content")},
    "grant_revoked": {("database hearthminds_db", "privileges")},
    "grant_public": {("database hearthminds_db", "privileges")},
    "default_privileges": {("database hearthminds_db", "privileges")},
    "job_altered": {("database hearthminds_db", "scheduled jobs")},
    "job_unscheduled": {("database hearthminds_db", "scheduled jobs")},
    "cluster_stopped": {("cluster 17/main", "running")},
}
# While the cluster is stopped nothing inside it can be read: `--dry` says so instead of guessing.
STOPPED_NOTE = "the cluster is stopped"
SQL_KINDS = {k for k, d in DRIFTS.items() if d.sql}


def drift_report(deploy: Callable[..., Run], host: str) -> tuple[int, set[tuple[str, str]], list[dict[str, str]]]:
    """drift.py's exit status, its items' (object, key), and the items, from its JSON on stdout."""
    run = deploy([host], CONFIG, "--data", "format=json", entry="drift.py", check=False)
    assert run.code in (0, 2), f"drift.py failed ({run.code}):\n{run.stdout}\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout)["hosts"][host]
    assert report["error"] is None, report
    items = report["drift"]
    return run.code, {(i["object"], i["key"]) for i in items}, items


def apply(host: str, kinds: set[str]) -> None:
    """Every chosen drift, by hand: SQL first (each statement on its own), files next, a stop last."""
    for kind in sorted(kinds, key=lambda k: (DRIFTS[k].shell != "", k == "cluster_stopped", k)):
        d = DRIFTS[kind]
        if d.sql:
            statements = "".join(f"{s.strip()};\n" for s in d.sql.split(";") if s.strip())
            out = ssh(
                host, f"sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -d {d.database}", stdin=statements, check=False
            )
            assert out.returncode == 0, f"{kind}: {out.stderr}"
        if d.shell:
            ssh(host, d.shell)


# The converged state, read by the test's own queries: what one repairing run must give back.
SNAPSHOT_SERVER = r"""
SELECT json_build_object(
  'roles', (SELECT json_object_agg(rolname, json_build_array(rolsuper, rolcanlogin, rolcreatedb, rolcreaterole,
              rolreplication, rolbypassrls, rolconnlimit, rolconfig,
              (SELECT json_agg(b.rolname ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
               WHERE m.member = a.oid)) ORDER BY rolname)
            FROM pg_roles a WHERE rolname !~ '^pg_'),
  'passwords', (SELECT json_object_agg(rolname, rolpassword) FROM pg_authid WHERE rolpassword IS NOT NULL),
  'databases', (SELECT json_object_agg(datname, json_build_array(pg_get_userbyid(datdba),
              (SELECT json_agg(a ORDER BY a) FROM unnest(datacl::text[]) a)) ORDER BY datname)
            FROM pg_database WHERE datname IN ('hearthminds_db', 'logos_db', 'aletheia_db', 'nous_db', 'notes_db')),
  'alter_system', (SELECT json_agg(name ORDER BY name) FROM pg_file_settings
                   WHERE sourcefile LIKE '%postgresql.auto.conf'),
  'work_mem', current_setting('work_mem'),
  'hba', (SELECT count(*) FROM pg_hba_file_rules))
"""
SNAPSHOT_DATABASE = r"""
SELECT json_build_object(
  'tables', (SELECT json_object_agg(relname, relacl::text[] ORDER BY relname) FROM pg_class
             WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'),
  'default_acl', (SELECT json_agg(defaclacl::text[] ORDER BY defaclrole, defaclnamespace, defaclobjtype)
                  FROM pg_default_acl),
  'extensions', (SELECT json_object_agg(extname, extversion ORDER BY extname) FROM pg_extension),
  'public', (SELECT nspacl::text[] FROM pg_namespace WHERE nspname = 'public'),
  'ledger', (SELECT json_build_array(pg_get_userbyid(n.nspowner), pg_get_userbyid(c.relowner),
              (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM hearthdb.schema_migrations',
                                                   false, true, '')))[1]::text::int)
             FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
             WHERE n.nspname = 'hearthdb' AND c.relname = 'schema_migrations'))
"""


SNAPSHOT_JOBS = (
    "SELECT json_agg(json_build_array(jobname, schedule, command, database, username, active) ORDER BY jobname) "
    "FROM cron.job"
)


def acl_set(acl: list[str] | None) -> list[str] | None:
    return None if acl is None else sorted(acl)


def snapshot(host: str, passwords: dict[str, str]) -> dict[str, Any]:
    server = psql_json(host, SNAPSHOT_SERVER)
    # A repaired password gets a new salt: what must hold is that the declared password matches.
    stored = server.pop("passwords")
    server["password_ok"] = {r: _verifies(passwords[r], stored.get(r)) for r in sorted(passwords)}
    for db, (owner, acl) in server["databases"].items():
        server["databases"][db] = [owner, acl_set(acl)]
    server["in"] = {db: psql_json(host, SNAPSHOT_DATABASE, database=db) for db in sorted(server["databases"])}
    for facts in server["in"].values():
        facts["public"] = acl_set(facts["public"])
    for facts in server["in"].values():
        facts["tables"] = {t: acl_set(a) for t, a in (facts["tables"] or {}).items()}
        facts["default_acl"] = [acl_set(a) for a in facts["default_acl"] or []]
    server["jobs"] = psql_json(host, SNAPSHOT_JOBS, database="hearthminds_db")
    server["files"] = ssh(host, f"sha256sum {CONF} {HBA}").stdout
    return server


def _verifies(password: str, rolpassword: str | None) -> bool:
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$.*", rolpassword or "")
    if not m:
        return False
    stored = {
        "iterations": int(m.group(1)),
        "salt": m.group(2),
        "digest": hashlib.sha256(rolpassword.encode()).hexdigest(),
    }
    return matches(password, stored)


def passed(stderr: str) -> tuple[int, int]:
    m = re.search(r"validation run \w+: (\d+)/(\d+) checks passed", stderr)
    assert m, stderr[-3000:]
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def drift_host(lab_hosts: list[dict[str, Any]], deploy: Callable[..., Run]) -> dict[str, Any]:
    host = api.reset(lab_hosts[0]["name"], layer="postgresql")
    deploy([host["name"]], CONFIG, "-y")
    pw = secrets(deploy)
    host["baseline"] = snapshot(host["name"], {r: pw[r] for r in ["hearthminds", *AIS, "outsider", "scribe", "reader"]})
    return host


EXAMPLES = int(os.environ.get("HEARTHDB_DRIFT_EXAMPLES", "6"))


@seed(20261202)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(kinds=st.sets(st.sampled_from(sorted(DRIFTS)), min_size=3, max_size=8))
# Combinations that failed before the planner modelled what an owner change does to the ACL.
@example(kinds={"database_owner"})
@example(kinds={"shared_database_owner", "connect_revoked", "role_password"})
# Every kind at once.
@example(kinds=set(DRIFTS))
def test_any_drift_repaired_in_one_run(drift_host: dict[str, Any], deploy: Callable[..., Run], kinds: set[str]) -> None:
    name = drift_host["name"]
    pw = secrets(deploy)
    apply(name, kinds)

    code, found, _ = drift_report(deploy, name)
    assert code == 2, sorted(kinds)
    stopped = "cluster_stopped" in kinds
    want = set().union(*(ITEMS[k] for k in kinds if not (stopped and k in SQL_KINDS)))
    assert want <= found, f"drift.py does not report {sorted(want - found)} for {sorted(kinds)}"

    dry = deploy([name], CONFIG, "--dry", "--json")
    plan = dry.stderr  # the `would run` blocks: statements and files per operation
    missing = []
    for kind in sorted(kinds):
        if stopped and kind in SQL_KINDS:
            continue  # unreadable until the cluster runs: the note below is what --dry can say
        missing += [f"{kind}: {p}" for p in DRIFTS[kind].dry if not re.search(p, plan)]
    if stopped:
        assert "cluster 17/main running" in changed_ops(dry)
        if kinds & SQL_KINDS:
            assert STOPPED_NOTE in plan
    assert not missing, f"--dry does not report: {missing}\n{plan[-4000:]}"

    run = deploy([name], CONFIG, "-y", check=False)
    assert run.code == 0, f"{sorted(kinds)}: one run did not repair:\n{run.stderr[-5000:]}"
    ok, total = passed(run.stderr)
    assert ok == total, run.stderr[-3000:]
    after = snapshot(name, {r: pw[r] for r in drift_host["baseline"]["password_ok"]})
    assert after == drift_host["baseline"], sorted(kinds)

    again = deploy([name], CONFIG, "-y", "--json")
    assert changed_ops(again.json) == [], sorted(kinds)
    # a rerun that changes nothing and no drift are one fact
    assert drift_report(deploy, name)[:2] == (0, set()), sorted(kinds)


def test_every_kind_is_in_the_catalog_of_drift_items() -> None:
    assert set(ITEMS) == set(DRIFTS)


@pytest.mark.parametrize("kind", sorted(DRIFTS))
def test_drift_report_names_exactly_each_kind(
    drift_host: dict[str, Any], deploy: Callable[..., Run], kind: str
) -> None:
    """One kind of drift: drift.py exits 2 with exactly its items, no secret in them (that it exits 0
    once a deploy repaired it is asserted with the combinations above)."""
    name = drift_host["name"]
    apply(name, {kind})
    code, found, items = drift_report(deploy, name)
    deploy([name], CONFIG, "-y")  # repaired before asserting: the next kind starts from no drift
    assert (code, found) == (2, ITEMS[kind]), items
    pw = secrets(deploy)
    assert not [i for i in items if any(p in json.dumps(i) for p in pw.values())], "a secret in the report"
