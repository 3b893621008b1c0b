"""What proves a host is what hearthdb.yml declares, checked read-only over SSH with testinfra: packages,
services, the settings file and its values live, pg_hba, roles and the isolation matrix, extensions, the
migration ledgers, TLS, backups, HA, the pooler and the exporters where declared (README, "Checking your
own hosts"). Each expectation comes from hearthdb's pure model of the config; each reading is the host's
own (its files, units, and PostgreSQL's catalogs), never hearthdb's planners."""

from __future__ import annotations

import json
from typing import Any

import pytest

from operations.config import ROLE_ATTRIBUTES, bundle_dirs
from operations.desired import package_names, stat_statements_declared
from operations.ha import hba_lines as ha_hba_lines
from operations.ha import pgbouncer_ini, pooled_databases
from operations.migrations import load_bundles
from operations.monitoring import EXPORTERS, exporter_checks, exporter_url, exporters
from operations.monitoring import hba_lines as monitoring_hba_lines
from operations.render import hba_content, settings_content
from operations.target import PGBACKREST_CONF, PGBOUNCER_INI

from .conftest import Expected


def _ha_member(e: Expected) -> bool:
    return e.cfg.ha.enabled and e.name in e.cfg.ha.members


def test_packages_installed(expected: Expected) -> None:
    e = expected
    names = package_names(e.cfg, e.databases)
    if e.cfg.pooler.enabled:
        names.append("pgbouncer")
    if e.cfg.ha.enabled:
        names += ["patroni", "etcd-client"]
    names += [EXPORTERS[k].package for k in exporters(e.cfg.monitoring, e.cfg.pooler.enabled, e.cfg.backup.enabled)]
    missing = [n for n in names if not e.host.package(n).is_installed]
    assert not missing, f"not installed: {missing}"


def test_cluster_runs_under_its_manager(expected: Expected) -> None:
    """Debian's unit runs the cluster; with `ha`, Patroni does and Debian's unit is off."""
    e, t = expected, expected.target
    if _ha_member(e):
        assert e.host.service(t.patroni_unit).is_running and e.host.service(t.patroni_unit).is_enabled
        assert not e.host.service(t.postgresql_unit).is_enabled
        assert e.host.file(t.start_conf).content_string.strip() == "manual"
    else:
        assert e.host.service(t.postgresql_unit).is_running, f"{t.postgresql_unit} is not running"
        assert e.host.service(t.postgresql_unit).is_enabled
    assert e.sql("SELECT current_setting('port')") == str(t.port)
    assert e.sql("SELECT current_setting('data_checksums')") == ("on" if e.cfg.cluster.data_checksums else "off")


def test_settings_file_as_declared_and_live(expected: Expected) -> None:
    """The conf.d file is what hearthdb renders for this host, PostgreSQL applied every line of it without
    error, and nothing waits for a restart."""
    e, t = expected, expected.target
    content = settings_content(e.cfg, e.databases, e.derived(), e.stanza, patroni=_ha_member(e))
    file = e.host.file(t.conf_d_file)
    assert file.exists and file.content_string == content, f"{t.conf_d_file} is not as declared"
    bad = e.json(
        "SELECT coalesce(json_agg(json_build_array(name, setting, error)), '[]') FROM pg_file_settings "
        f"WHERE sourcefile = '{t.conf_d_file}' AND (NOT applied OR error IS NOT NULL)"
    )
    assert bad == [], f"not in effect: {bad}"
    pending = e.json("SELECT coalesce(json_agg(name), '[]') FROM pg_settings WHERE pending_restart")
    assert pending == [], f"waiting for a restart: {pending}"


def test_pg_hba_as_declared(expected: Expected) -> None:
    """Every rule hearthdb writes for this config is in pg_hba.conf, in order, and PostgreSQL loaded the file
    without an error. (With `ha`, the rules for the members' addresses come from the inventory and are
    between them.)"""
    e, t = expected, expected.target
    extra = monitoring_hba_lines(e.cfg.monitoring) + ha_hba_lines(None, {}, e.cfg.pooler, e.cfg.tls.require, False)
    want = [ln for ln in hba_content(e.cfg, extra).splitlines() if ln.strip() and not ln.startswith("#")]
    have = [ln for ln in e.host.file(t.hba_file).content_string.splitlines() if ln.strip() and not ln.startswith("#")]
    it = iter(have)
    missing = [ln for ln in want if not any(ln == h for h in it)]
    assert not missing, f"pg_hba.conf lacks (or misorders) {missing}"
    if not e.cfg.ha.enabled:
        assert have == want, "pg_hba.conf has rules hearthdb.yml does not declare"
    errors = e.json("SELECT coalesce(json_agg(error), '[]') FROM pg_hba_file_rules WHERE error IS NOT NULL")
    assert errors == [], errors


ROLES = (
    "SELECT json_object_agg(r.rolname, json_build_object({flags}, 'connection_limit', r.rolconnlimit, "
    "'member_of', (SELECT coalesce(json_agg(b.rolname ORDER BY b.rolname), '[]') FROM pg_auth_members m "
    "JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid))) FROM pg_roles r WHERE r.rolname !~ '^pg_'"
).replace("{flags}", ", ".join(f"'{flag}', r.{column}" for flag, column in ROLE_ATTRIBUTES.items()))


def test_roles_as_declared(expected: Expected) -> None:
    e = expected
    have = e.json(ROLES)
    wrong = {}
    for name, spec in e.roles.items():
        if not spec.present:
            if name in have:
                wrong[name] = "exists (declared absent)"
            continue
        role = have.get(name)
        if role is None:
            wrong[name] = "missing"
            continue
        flags = {f for f in ROLE_ATTRIBUTES if role[f]}
        if flags != set(spec.flags):
            wrong[name] = f"attributes {sorted(flags)}, declared {sorted(spec.flags)}"
        elif role["connection_limit"] != spec.connection_limit:
            wrong[name] = f"connection limit {role['connection_limit']}, declared {spec.connection_limit}"
        elif set(role["member_of"]) != set(spec.member_of):
            wrong[name] = f"member of {role['member_of']}, declared {list(spec.member_of)}"
    supers = sorted(n for n, r in have.items() if r["superuser"] and n != "postgres" and n not in e.roles)
    assert not wrong and not supers, {**wrong, **{n: "an undeclared superuser" for n in supers}}


def _closure(e: Expected, role: str) -> set[str]:
    """The role and every declared role it is a member of, transitively."""
    out, todo = set(), [role]
    while todo:
        r = todo.pop()
        if r not in out:
            out.add(r)
            spec = e.roles.get(r)
            todo += list(spec.member_of) if spec else []
    return out


def test_databases_and_isolation_matrix(expected: Expected) -> None:
    """Each managed database has its declared owner; no database is open to PUBLIC; and for every login role
    and every managed database, CONNECT is held exactly when the role (or a role it is a member of) owns
    the database or is declared under its `connect`: one AI can never reach another's memories."""
    e = expected
    dbs = [n for n, d in e.databases.items() if d.present]
    logins = [n for n, r in e.roles.items() if r.present and r.login and not r.superuser]
    have = e.json(
        "SELECT json_build_object("
        "'owners', (SELECT json_object_agg(d.datname, pg_get_userbyid(d.datdba)) FROM pg_database d), "
        "'public', (SELECT coalesce(json_agg(d.datname), '[]') FROM pg_database d WHERE EXISTS ("
        "SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
        "WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') AND d.datname = ANY(%(dbs)s)), "
        "'matrix', (SELECT json_agg(json_build_array(r.rolname, d.datname, "
        "has_database_privilege(r.rolname, d.datname, 'CONNECT'))) FROM pg_roles r, pg_database d "
        "WHERE r.rolname = ANY(%(roles)s) AND d.datname = ANY(%(dbs)s)))".replace(
            "%(dbs)s", "ARRAY[" + ",".join(f"'{d}'" for d in dbs) + "]::name[]"
        ).replace("%(roles)s", "ARRAY[" + ",".join(f"'{r}'" for r in logins) + "]::name[]")
    )
    owners = {d: have["owners"].get(d) for d in dbs}
    assert owners == {d: e.databases[d].owner for d in dbs}, "database owners differ"
    absent = [n for n, d in e.databases.items() if not d.present and n in have["owners"]]
    assert not absent, f"declared absent, still there: {absent}"
    assert have["public"] == [], f"PUBLIC may connect to {have['public']}"
    wrong = []
    for role, db, connect in have["matrix"] or []:
        spec = e.databases[db]
        allowed = bool(_closure(e, role) & {spec.owner, *spec.connect})
        if connect != allowed:
            wrong.append(f"{role} {'may' if connect else 'may not'} connect to {db}")
    assert not wrong, wrong


def test_extensions_as_declared(expected: Expected) -> None:
    e = expected
    dbs = [n for n, d in e.databases.items() if d.present]
    have = e.each_database("SELECT json_object_agg(extname, extversion) FROM pg_extension", dbs)
    wrong = []
    for name in dbs:
        for ext in e.databases[name].extensions:
            version = (have[name] or {}).get(ext.name)
            if version is None or (ext.version and version != ext.version):
                wrong.append(f"{name}: {ext.name} {version or 'missing'}")
    assert not wrong, wrong


def test_migration_ledgers_at_head(expected: Expected) -> None:
    """Each database's ledger lists every migration of its bundles, with the checksum of the file."""
    e = expected
    dbs = {n: d for n, d in e.databases.items() if d.present and d.bundles}
    if not dbs:
        return
    bundles = load_bundles(dbs, bundle_dirs(e.cfg))
    have = e.each_database(
        "SELECT coalesce(json_agg(json_build_array(bundle, version, sha256) ORDER BY bundle, version), '[]') "
        "FROM hearthdb.schema_migrations",
        list(dbs),
    )
    for name, spec in dbs.items():
        want = [[m.bundle, m.version, m.sha256] for b in sorted(spec.bundles) for m in bundles[b]]
        assert sorted(have[name]) == sorted(want), f"{name}: ledger is not at the bundles' head"


@pytest.mark.section("tls")
def test_tls(expected: Expected) -> None:
    e, t = expected, expected.target
    assert e.sql("SHOW ssl") == "on"
    key = e.host.file(t.tls_key)
    assert key.exists and key.user == "postgres" and key.mode == 0o600
    assert e.host.file(t.tls_cert).exists
    if e.cfg.tls.require:
        rules = e.host.file(t.hba_file).content_string.splitlines()
        assert not [r for r in rules if r.startswith("host ")], "plain `host` rules with tls.require"


def test_secret_files_are_private(expected: Expected) -> None:
    """Files that hold a secret are mode 600 or narrower (principle 4)."""
    e, t = expected, expected.target
    paths = [PGBACKREST_CONF] if e.stanza else []
    paths += [t.patroni_config] if _ha_member(e) else []
    paths += [t.tls_key] if e.cfg.tls.enabled else []
    wide = [p for p in paths if e.host.file(p).mode & 0o077]
    assert not wide, f"readable by others: {wide}"


@pytest.mark.section("backup")
@pytest.mark.any_host
def test_backups(expected: Expected) -> None:
    """WAL is archived into this host's stanza, which holds a full backup, and the archiver's last attempt
    did not fail; a repository host holds the repository."""
    e = expected
    if e.kind == "repository":
        assert e.host.file(e.cfg.backup.repository.path).is_directory
        return
    assert e.sql("SHOW archive_mode") == "on"
    with e.host.sudo("postgres"):
        out = e.host.run(f"pgbackrest --stanza={e.stanza} --output=json info")
    assert out.rc == 0, out.stderr
    (info,) = json.loads(out.stdout)
    assert info["status"]["code"] == 0, info["status"]
    assert any(b["type"] == "full" for b in info["backup"]), "no full backup"
    failing = e.sql(
        "SELECT coalesce(last_failed_time > coalesce(last_archived_time, 'epoch'), false) FROM pg_stat_archiver"
    )
    assert failing == "f", "the archiver's last attempt failed"


def _rest(e: Expected, path: str) -> Any:
    code = (
        f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{e.cfg.ha.rest_port}/{path}').read().decode())"
    )
    out = e.host.run(f"python3 -c {json.dumps(code)}")
    assert out.rc == 0, f"Patroni's REST API: {out.stderr}"
    return json.loads(out.stdout)


@pytest.mark.section("ha")
@pytest.mark.any_host
def test_ha_cluster(expected: Expected) -> None:
    """Patroni sees every declared member, one leader, every replica streaming on the leader's timeline."""
    e = expected
    if not _ha_member(e):
        assert e.host.service("etcd.service").is_running
        return
    members = _rest(e, "cluster")["members"]
    assert sorted(m["name"] for m in members) == sorted(e.cfg.ha.members)
    leaders = [m for m in members if m["role"] == "leader"]
    assert len(leaders) == 1, members
    timeline = leaders[0]["timeline"]
    for m in members:
        if m is not leaders[0]:
            assert m["state"] == "streaming" and m["timeline"] == timeline, m
    assert e.sql("SELECT pg_is_in_recovery()") == ("f" if _rest(e, "patroni")["role"] == "primary" else "t")


@pytest.mark.section("pooler")
def test_pooler(expected: Expected) -> None:
    e, t = expected, expected.target
    managed = [n for n, d in e.databases.items() if d.present]
    tls = ("require" if e.cfg.tls.require else "prefer", t.tls_cert, t.tls_key) if e.cfg.tls.enabled else None
    ini = pgbouncer_ini(e.cfg.pooler, pooled_databases(e.cfg.pooler, managed), t, tls)
    assert e.host.file(PGBOUNCER_INI).content_string == ini, f"{PGBOUNCER_INI} is not as declared"
    assert e.host.service("pgbouncer.service").is_running
    listening = e.host.run("ss -Hltn").stdout.split()
    assert any(a.endswith(f":{e.cfg.pooler.port}") for a in listening), f"nothing listens on {e.cfg.pooler.port}"


@pytest.mark.section("monitoring")
def test_exporters(expected: Expected) -> None:
    """Each declared exporter runs and answers with what it watches: PostgreSQL up, every managed database,
    pg_stat_statements when declared; PgBouncer's databases; this host's stanza."""
    e = expected
    mon = e.cfg.monitoring
    managed = [n for n, d in e.databases.items() if d.present]
    failed = []
    for kind in exporters(mon, e.cfg.pooler.enabled, e.stanza is not None):
        unit = EXPORTERS[kind].unit
        assert e.host.service(unit).is_running, f"{unit} is not running"
        code = f"import urllib.request as u; print(u.urlopen({exporter_url(mon, kind)!r}, timeout=10).read().decode())"
        out = e.host.run(f"python3 -c {json.dumps(code)}")
        lines = out.stdout.splitlines() if out.rc == 0 else None
        checks = exporter_checks(kind, lines, managed, stat_statements_declared(e.databases), e.stanza)
        failed += [f"{name}: {detail}" for name, ok, detail in checks if not ok]
    assert not failed, failed
