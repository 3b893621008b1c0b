"""High availability on three lab hosts (hdb3..hdb5, the `ha` layer: Debian's patroni, etcd, pgbouncer,
haproxy packages) backing up to a fourth (hdb2, the repository host): a populated single hearthdb host
converted into the leader of a Patroni cluster, replicas, the endpoint and the pooler, a rerun without
change, a switchover, the leader's host power-killed under a steady writer, the leader cut off from the
network, and the cluster's backups taken by whichever member leads. Real processes throughout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lab import api
from lab.writer import Writer, endpoint_dsn
from operations.ha import Ha

from .conftest import Run, changed_ops, host_suite, psql_json, secrets, ssh, suite_counts

MEMBERS = ["hdb3", "hdb4", "hdb5"]
REPO = "hdb2"  # the backup repository, outside the cluster: losing any member loses no backup
HOSTS = [*MEMBERS, REPO]
PATRONI = "patronictl -c /etc/patroni/17-main.yml"
BASE: dict[str, Any] = {
    "ai_names": ["logos", "aletheia"],
    "cluster": {"listen_addresses": ["*"]},
    "hba": [
        {"type": "local", "database": "all", "user": "all", "method": "scram-sha-256"},
        {"type": "host", "database": "all", "user": "all", "address": "10.213.7.0/24"},
    ],
}
HA = {
    **BASE,
    "ha": {"enabled": True, "members": MEMBERS},
    "pooler": {"enabled": True},
    "monitoring": {"enabled": True},  # the exporters on every member, replicas included (validated)
    # one stanza for the cluster (named for its scope), created and backed up by the leader
    "backup": {"enabled": True, "repository": {"host": REPO}, "archive": {"timeout": 10}},
}
CHECKSUM = "SELECT json_build_object('n', count(*), 'sum', md5(string_agg(id::text || v, ',' ORDER BY id))) FROM kept"


@pytest.fixture(scope="module")
def cluster(lab_hosts: list[dict[str, Any]], deploy: Callable[..., Run]) -> Iterator[dict[str, str]]:
    """hdb3 deployed alone and populated, then the three hosts deployed with `ha`: the conversion."""
    api.up(len(MEMBERS) + 2, layer="ha")
    # the first member from the layer with the packages; the others plain Debian: the install path too
    for name in MEMBERS:
        api.reset(name, layer="ha" if name == MEMBERS[0] else None)
    api.reset(REPO, layer=None)
    addresses = {h["name"]: h["address"] for h in api.hosts()}
    deploy(MEMBERS[:1], BASE, "-y")
    ssh(
        MEMBERS[0],
        "sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -d logos_db",
        stdin="CREATE TABLE kept (id int PRIMARY KEY, v text); "
        "INSERT INTO kept SELECT g, md5(g::text) FROM generate_series(1, 5000) g; ALTER TABLE kept OWNER TO logos;",
    )
    before = psql_json(MEMBERS[0], CHECKSUM, "logos_db")
    t = time.monotonic()
    converted = deploy(HOSTS, HA, "-y")
    print(f"ha: conversion of a populated host into a 3-member cluster: {time.monotonic() - t:.1f} s")
    yield {"before": json.dumps(before), "stderr": converted.stderr, **addresses}
    if not os.environ.get("HEARTHDB_KEEP_HA"):
        for name in HOSTS:
            api.reset(name, layer=None)  # hdb2: as the other modules expect their last host, the plain base


def members() -> dict[str, dict[str, Any]]:
    """Patroni's view (patronictl list) from the first member that answers."""
    for name in MEMBERS:
        try:
            out = ssh(name, f"{PATRONI} list -f json", check=False, timeout=8)
        except subprocess.TimeoutExpired:  # a host without power
            continue
        if out.returncode == 0:
            return {m["Member"]: m for m in json.loads(out.stdout)}
    raise AssertionError("no member answers patronictl")


def leader() -> str:
    return next(n for n, m in members().items() if m["Role"] == "Leader")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    t = time.monotonic()
    while not condition():
        if time.monotonic() - t > timeout:
            raise AssertionError(f"{what} not within {timeout} s: {members()}")
        time.sleep(0.5)
    return time.monotonic() - t


def healthy(count: int = 3) -> bool:
    try:
        m = members()
    except (AssertionError, subprocess.TimeoutExpired):
        return False
    leaders = [x for x in m.values() if x["Role"] == "Leader" and x["State"] == "running"]
    replicas = [x for x in m.values() if x["Role"] != "Leader"]
    # in synchronous mode Patroni fails over only to the synchronous standby: without one, none would
    sync = not HA["ha"].get("synchronous_mode", Ha().synchronous_mode) or any(
        x["Role"] == "Sync Standby" for x in replicas
    )
    return len(m) == count and len(leaders) == 1 and all(x["State"] == "streaming" for x in replicas) and sync


def dsn(cluster: dict[str, str], deploy: Callable[..., Run], port: int = 5000, db: str = "logos_db") -> str:
    return endpoint_dsn([cluster[n] for n in MEMBERS], port, db, "logos", secrets(deploy)["logos"])


def test_conversion_keeps_every_row(cluster: dict[str, str]) -> None:
    assert "validation failed" not in cluster["stderr"]
    for name in MEMBERS:
        assert psql_json(name, CHECKSUM, "logos_db") == json.loads(cluster["before"]), name
    m = members()
    assert m[MEMBERS[0]]["Role"] == "Leader"
    assert {m[n]["State"] for n in MEMBERS[1:]} == {"streaming"}
    # Debian's unit no longer manages the cluster, and would not start it at boot
    for name in MEMBERS:
        out = ssh(name, "systemctl is-enabled postgresql@17-main; cat /etc/postgresql/17/main/start.conf", check=False)
        assert "enabled" not in out.stdout.split()[0:1] and out.stdout.strip().endswith("manual"), out.stdout


def test_rerun_and_dry_change_nothing(cluster: dict[str, str], deploy: Callable[..., Run]) -> None:
    t = time.monotonic()
    again = deploy(HOSTS, HA, "-y", "--json")
    print(f"ha: no-op rerun on 3 members: {time.monotonic() - t:.1f} s")
    assert changed_ops(again) == [], again.stderr[-3000:]
    for verdict in ("ha_members", "ha_streaming", "ha_lag", "ha_timeline", "ha_patroni", "exporter_databases"):
        assert f"ok   {verdict}" in again.stderr
    for verdict in ("backup_archiving", "backup_full", "exporter_pgbackrest", "exporter_stanza"):  # replicas too
        assert len(re.findall(rf"^\s+ok\s+{verdict}\s", again.stderr, re.M)) == len(MEMBERS), verdict
    dry = deploy(HOSTS, HA, "--dry", "--json")
    assert changed_ops(dry) == [], dry.stderr[-3000:]


def test_host_suite_passes_on_every_member(cluster: dict[str, str], tmp_path: Path) -> None:
    """The user's host suite against the three members at once: Patroni's view, each member's files."""
    run = host_suite(MEMBERS, HA, tmp_path)
    assert run.code == 0, run.stdout[-4000:]
    # per member: every test but TLS (not declared)
    assert suite_counts(run) == {"passed": 13 * len(MEMBERS), "deselected": len(MEMBERS)}, run.stdout[-2000:]


def test_endpoint_writes_reach_the_replicas(cluster: dict[str, str], deploy: Callable[..., Run]) -> None:
    pw = secrets(deploy)["logos"]
    for name in MEMBERS:  # the write port of every member reaches the leader
        with psycopg.connect(host=cluster[name], port=5000, dbname="logos_db", user="logos", password=pw) as c:
            assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            c.execute("INSERT INTO kept VALUES (%s, 'through the endpoint')", (10_000 + MEMBERS.index(name),))
    time.sleep(1)
    for name in MEMBERS:  # the read port reaches a replica, which has the rows
        with psycopg.connect(host=cluster[name], port=5001, dbname="logos_db", user="logos", password=pw) as c:
            assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert c.execute("SELECT count(*) FROM kept WHERE id >= 10000").fetchone() == (3,)


def test_pooler_scram_isolation_and_lookup(cluster: dict[str, str], deploy: Callable[..., Run]) -> None:
    pw = secrets(deploy)
    lead = cluster[leader()]

    def login(db: str, user: str, password: str, port: int = 6432) -> str:
        try:
            with psycopg.connect(host=lead, port=port, dbname=db, user=user, password=password, connect_timeout=3) as c:
                c.execute("SELECT 1")
            return "ok"
        except psycopg.OperationalError as e:
            return str(e)

    assert login("logos_db", "logos", pw["logos"]) == "ok"
    assert login("hearthminds_db", "logos", pw["logos"]) == "ok"
    assert "permission denied" in login("aletheia_db", "logos", pw["logos"])
    assert "authentication failed" in login("logos_db", "logos", "not-the-password-at-all")
    assert "no such user" in login("postgres", "postgres", "whatever-it-is-12345")  # superusers are never looked up
    fn = psql_json(
        leader(),
        "SELECT json_build_object('public', has_function_privilege('public', 'pgbouncer.get_auth(text)', 'EXECUTE'),"
        " 'logos', has_function_privilege('logos', 'pgbouncer.get_auth(text)', 'EXECUTE'),"
        " 'config', (SELECT proconfig FROM pg_proc WHERE oid = 'pgbouncer.get_auth(text)'::regprocedure),"
        " 'definer', (SELECT prosecdef FROM pg_proc WHERE oid = 'pgbouncer.get_auth(text)'::regprocedure))",
    )
    assert fn == {"public": False, "logos": False, "config": ["search_path=pg_catalog, pg_temp"], "definer": True}
    # no plaintext secret at rest for the pooler: its userlist is empty, its config names no password
    out = ssh(leader(), "wc -c < /etc/pgbouncer/userlist.txt; grep -ci password /etc/pgbouncer/pgbouncer.ini || true")
    assert out.stdout.split() == ["0", "0"]


def test_switchover(cluster: dict[str, str], deploy: Callable[..., Run]) -> None:
    old = leader()
    to = next(n for n, m in members().items() if m["Role"] == "Sync Standby")
    writer = Writer(dsn(cluster, deploy))
    writer.create()
    writer.start()
    try:
        writer.wait_acks(20)
        t = time.monotonic()
        run = deploy(HOSTS, HA, "-y", "--data", f"to={to}", entry="switchover.py")
        print(f"ha: switchover command {time.monotonic() - t:.1f} s")
        assert "Error" not in run.stderr.split("Results")[0], run.stderr[-2000:]
        writer.wait_acks(20)
    finally:
        writer.stop()
    assert leader() == to
    wait_for(lambda: members()[old]["State"] == "streaming", 60, f"{old} streaming from {to}")


def test_power_loss_of_the_leader(cluster: dict[str, str], deploy: Callable[..., Run]) -> None:
    wait_for(healthy, 90, "three healthy members")
    old = leader()
    writer = Writer(dsn(cluster, deploy))
    writer.start()
    try:
        writer.wait_acks(30)
        killed = time.monotonic()
        api.power_kill(old)
        writer.wait_acks(20, timeout=90)
        took = writer.outage_after(killed)
    finally:
        writer.stop()
    new = leader()
    assert new != old
    print(f"ha: leader power loss to first acknowledged write through the endpoint: {took:.1f} s")
    # synchronous mode: every commit the writer saw acknowledged is on the new leader
    acked = [i for i, _ in writer.acked]
    have = psql_json(
        new,
        f"SELECT json_agg(id) FROM drill_writes WHERE id = ANY('{{{','.join(map(str, acked))}}}'::bigint[])",
        "logos_db",
    )
    assert len(have or []) == len(acked), f"{len(acked) - len(have or [])} acknowledged commits lost"
    api.power_on(old)
    rejoin = wait_for(lambda: members().get(old, {}).get("State") == "streaming", 180, f"{old} rejoining")
    print(f"ha: the old leader streaming again {rejoin:.1f} s after it booted")


def test_partitioned_leader_stops_writes(cluster: dict[str, str], deploy: Callable[..., Run]) -> None:
    wait_for(healthy, 120, "three healthy members")
    old = leader()
    others = [n for n in MEMBERS if n != old]
    ssh_cfg = str(api.ssh_config_path())
    probe = "sudo -u postgres psql -X -A -t -c 'SELECT pg_is_in_recovery()' 2>/dev/null || echo down"

    def writable_inside() -> bool:
        # the isolated host is reached from inside its own network namespace (its link to the bridge is cut)
        out = subprocess.run(
            ["ip", "netns", "exec", old, "ssh", "-F", ssh_cfg, old, probe], capture_output=True, text=True, timeout=20
        )
        return out.stdout.strip() == "f"

    def writable_outside() -> list[str]:
        out = []
        for name in others:
            r = ssh(name, probe, check=False, timeout=20)
            if r.stdout.strip() == "f":
                out.append(name)
        return out

    assert writable_inside()
    api.isolate(old)
    try:
        t = time.monotonic()
        demoted_after = None
        both = []
        while time.monotonic() - t < 60:
            inside, outside = writable_inside(), writable_outside()
            if inside and outside:
                both.append(round(time.monotonic() - t, 1))
            if not inside and demoted_after is None:
                demoted_after = time.monotonic() - t
            if demoted_after is not None and outside:
                break
            time.sleep(0.5)
        ttl = HA["ha"].get("ttl", Ha().ttl)
        assert demoted_after is not None and demoted_after <= ttl, f"isolated leader still writable after {ttl} s"
        assert not both, f"two writable leaders at {both} s"
        assert len(writable_outside()) == 1
        print(f"ha: isolated leader read-only after {demoted_after:.1f} s (ttl {ttl})")
    finally:
        api.isolate(old, isolated=False)
    wait_for(lambda: members().get(old, {}).get("State") == "streaming", 120, f"{old} rejoining after the partition")


def stanza() -> dict[str, Any]:
    """The cluster's stanza as pgBackRest shows it (from the leader)."""
    out = ssh(leader(), "sudo -u postgres pgbackrest --stanza=hearthdb --output=json info").stdout
    return json.loads(out)[0]


def timeline(backup: dict[str, Any]) -> int:
    return int(backup["archive"]["start"][:8], 16)


def test_backups_follow_the_leader(cluster: dict[str, str], deploy: Callable[..., Run]) -> None:
    """After the switchover and two failovers, the member that leads now backs up the cluster's stanza
    (backup.py and the scheduled job alike) on its new timeline; a replica's job is skipped, not failed;
    every member validates its backups."""
    wait_for(healthy, 120, "three healthy members")
    lead = leader()
    before = stanza()["backup"]
    assert before[0]["type"] == "full"  # the conversion's, taken by the first member
    run = deploy(HOSTS, HA, "-y", "--data", "type=incr", entry="backup.py")
    assert re.findall(r"\[(hdb\d)\]\S*\s+incr backup taken", run.stderr) == [lead], run.stderr[-2000:]
    after = stanza()["backup"]
    assert [b["type"] for b in after[len(before) :]] == ["incr"]
    assert timeline(after[-1]) >= timeline(before[0]) + 3  # past the switchover's timeline and the failovers'
    replica = next(n for n in MEMBERS if n != lead)
    ssh(replica, "systemctl start hearthdb-backup-diff.service", check=False)
    assert ssh(replica, "systemctl is-failed hearthdb-backup-diff.service", check=False).stdout.strip() != "failed"
    assert len(stanza()["backup"]) == len(after)  # the replica took none
    ssh(lead, "systemctl start hearthdb-backup-diff.service")
    assert [b["type"] for b in stanza()["backup"][len(after) :]] == ["diff"]
    check = deploy(HOSTS, HA, "-y", entry="validate.py")
    for verdict in ("backup_archiving", "backup_wal_bound", "backup_full", "backup_recent"):
        assert len(re.findall(rf"^\s+ok\s+{verdict}\s", check.stderr, re.M)) == len(MEMBERS), check.stderr[-3000:]
    # and they restore: the leader's drill compares every table of a copy with itself at a restore point
    drill = deploy(HOSTS, HA, "-y", entry="drill.py")
    reports = re.findall(r"\[(hdb\d)\]\S*\s+drill of stanza hearthdb .*\n\s+drill json: (\{.*\})", drill.stderr)
    assert [name for name, _ in reports] == [lead], drill.stderr[-2000:]
    report = json.loads(reports[0][1])
    assert report["differences"] == [] and report["compared"] >= 10, report
    assert report["checksums"]["logos_db.public.kept"][0] == 5003  # the converted rows and the endpoint's
