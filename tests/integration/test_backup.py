"""Backups proven by restoring them, on real hosts: a database host (hdb1) backing up over SFTP to a
repository host (hdb3, no PostgreSQL), with encryption, a small archive queue bound and a short
archive_timeout. Point-in-time drills, in-place restores, a full + diff + incr chain, the repository
host power-killed and back, a backup killed halfway."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab import api

from .conftest import Run, changed_ops, secrets, ssh

DB, REPO = "hdb1", "hdb3"
HOSTS = [DB, REPO]
CONFIG: dict[str, Any] = {
    "ai_names": ["logos"],
    "backup": {
        "enabled": True,
        "encryption": True,
        "repository": {"host": REPO},
        "archive": {"timeout": 10, "queue_max": "64MiB"},
        "schedule": {"incr": "hourly"},
        "dumps": {"enabled": True, "keep": 2},
    },
}
MARKER = "hearthdb-row-marker-7f3a9c"  # a row value that must never be readable in the repository


@pytest.fixture(scope="module")
def hosts(lab_hosts: list[dict[str, Any]]) -> Iterator[None]:
    api.up(3)
    api.reset(DB, layer="backup")
    api.reset(REPO, layer=None)
    yield
    api.reset(DB, layer="postgresql")  # as the other modules expect their first host
    api.reset(REPO, layer=None)


def sql(query: str, db: str = "logos_db") -> str:
    return ssh(DB, f"sudo -u postgres psql -X -q -A -t -v ON_ERROR_STOP=1 -d {db}", stdin=query).stdout.strip()


def table_digest(table: str, db: str = "logos_db") -> list[Any]:
    """Rows and digest of a table, computed as the drill computes them."""
    out = sql(
        "SELECT count(*) || chr(9) || md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
        f"FROM (SELECT md5(t::text) AS h FROM {table} t) s",
        db,
    )
    rows, digest = out.split("\t")
    return [int(rows), digest]


def drill_report(run: Run) -> dict[str, Any]:
    found = re.search(r"drill json: (\{.*\})", run.stderr)
    assert found, run.stderr[-3000:]
    return json.loads(found.group(1))


def info() -> dict[str, Any]:
    out = ssh(DB, f"sudo -u postgres pgbackrest --stanza={DB} --output=json info").stdout
    return json.loads(out)[0]


def checks(run: Run) -> dict[str, str]:
    """Validation's summary lines: kind -> ok / FAIL."""
    return {kind: verdict for verdict, kind in re.findall(r"^\s+(ok|FAIL)\s+(\S+)\s+\d+/\d+$", run.stderr, re.M)}


def test_converges_with_a_repository_host(hosts: None, deploy: Callable[..., Run]) -> None:
    run = deploy(HOSTS, CONFIG, "-y")
    verdicts = checks(run)
    for kind in ("backup_archiving", "backup_wal_bound", "backup_full", "backup_recent"):
        assert verdicts.get(kind) == "ok", run.stderr[-3000:]
    entry = info()
    assert entry["status"]["code"] == 0 and entry["cipher"] == "aes-256-cbc"
    assert [b["type"] for b in entry["backup"]] == ["full"]
    # the repository host holds the backup and runs no PostgreSQL
    assert ssh(REPO, f"test -f /var/lib/pgbackrest/backup/{DB}/backup.info && echo yes").stdout.strip() == "yes"
    assert (
        ssh(REPO, "dpkg-query -W -f '${db:Status-Abbrev}' postgresql-common 2>/dev/null", check=False).stdout[:2]
        != "ii"
    )
    assert ssh(REPO, "stat -c '%U %a' /var/lib/pgbackrest").stdout.split() == ["pgbackrest", "750"]
    # SFTP and nothing else for the repository account
    key = "/var/lib/postgresql/.ssh/hearthdb-backup"
    shell = ssh(
        DB,
        f"sudo -u postgres ssh -i {key} -o UserKnownHostsFile={key}-known-hosts -o BatchMode=yes pgbackrest@{REPO} id",
        check=False,
    )
    assert "uid=" not in shell.stdout
    # timers for full, diff and incr, enabled
    active = ssh(
        DB, "systemctl is-active hearthdb-backup-full.timer hearthdb-backup-diff.timer hearthdb-backup-incr.timer"
    ).stdout.split()
    assert active == ["active"] * 3
    assert changed_ops(deploy(HOSTS, CONFIG, "-y", "--json")) == []
    assert changed_ops(deploy(HOSTS, CONFIG, "--dry", "--json").json) == []


def test_drill_to_a_point_in_time_and_latest(hosts: None, deploy: Callable[..., Run]) -> None:
    # the AI's own table (the dumps run with its owner's rights)
    sql(
        f"SET ROLE logos; CREATE TABLE drill_rows (i int, note text); INSERT INTO drill_rows SELECT i, '{MARKER}' "
        "FROM generate_series(1, 100) i"
    )
    time.sleep(1.1)
    at_t = sql("SELECT now()")
    expected = table_digest("drill_rows")
    time.sleep(1.1)
    sql("INSERT INTO drill_rows SELECT i, 'later' FROM generate_series(101, 150) i")
    report = drill_report(deploy(HOSTS, CONFIG, "-y", "--data", f"target={at_t}", entry="drill.py"))
    assert report["checksums"]["logos_db.public.drill_rows"] == expected == [100, expected[1]]
    latest = drill_report(deploy(HOSTS, CONFIG, "-y", entry="drill.py"))
    assert latest["differences"] == [] and latest["compared"] >= 9
    assert latest["checksums"]["logos_db.public.drill_rows"] == table_digest("drill_rows")
    assert latest["recovery_seconds"] > 0
    # the drill left no scratch cluster and the live one serves; its verdict is recorded
    assert ssh(DB, "ls /var/lib/postgresql").stdout.split() == ["17"]
    recorded = sql(
        "SELECT count(*) FROM eng_patterns WHERE metadata->>'check' LIKE 'drill:%' AND (metadata->>'passed')::bool",
        "hearthminds_db",
    )
    assert int(recorded) >= 2
    # the copy's WAL fetches held no lock of the live stanza: its WAL reaches the repository at once again
    check = f"sudo -u postgres pgbackrest --stanza={DB} --archive-timeout=15 check"
    assert ssh(DB, check, check=False).returncode == 0


def test_encrypted_repository_holds_no_row_value_or_passphrase(hosts: None, deploy: Callable[..., Run]) -> None:
    deploy(HOSTS, CONFIG, "-y", "--data", "type=incr", entry="backup.py")
    passphrase = secrets(deploy)["backup.cipher_pass"]
    for needle in (MARKER, passphrase):
        found = ssh(REPO, f"grep -rlF {needle!r} /var/lib/pgbackrest | head -3", check=False).stdout.strip()
        assert found == "", f"{needle[:6]}… readable in {found}"
    # the same marker is plainly in the database's own files: the search would find it unencrypted
    assert ssh(DB, f"grep -rlF {MARKER!r} /var/lib/postgresql/17/main/base | head -1", check=False).stdout.strip()


def test_restore_a_dropped_database_and_a_backup_chain(hosts: None, deploy: Callable[..., Run]) -> None:
    rows = table_digest("drill_rows")
    time.sleep(1.1)
    before_drop = sql("SELECT now()", "postgres")
    time.sleep(1.1)
    # other work commits meanwhile: recovery stops before it, and so before DROP DATABASE marks logos_db
    # invalid in place (a time target with no commit in between restores the database invalid)
    sql("CREATE TABLE IF NOT EXISTS activity (at timestamptz); INSERT INTO activity VALUES (now())", "postgres")
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'logos_db'", "postgres")
    sql("DROP DATABASE logos_db", "postgres")
    refused = deploy(HOSTS, CONFIG, "-y", "--data", f"target={before_drop}", entry="restore.py", check=False)
    assert refused.code != 0 and f"confirm with --data confirm={DB}" in refused.stderr
    assert sql("SELECT count(*) FROM pg_database WHERE datname = 'logos_db'", "postgres") == "0"  # untouched
    typo = deploy(
        HOSTS, CONFIG, "-y", "--data", f"confirm={DB}", "--data", "from=nosuch", entry="restore.py", check=False
    )
    assert (
        typo.code != 0
        and "stanza nosuch has no backup in the repository to restore; nothing was changed" in typo.stderr
    )
    assert ssh(DB, "pg_lsclusters -h 17 main").stdout.split()[3] == "online"  # the cluster was left alone
    deploy(HOSTS, CONFIG, "-y", "--data", f"confirm={DB}", "--data", f"target={before_drop}", entry="restore.py")
    assert table_digest("drill_rows") == rows
    assert changed_ops(deploy(HOSTS, CONFIG, "-y", "--json")) == []  # what the restore rebuilt is the declared state
    # full + diff + incr, then the latest restore has every row
    deploy(HOSTS, CONFIG, "-y", "--data", "type=diff", entry="backup.py")
    sql("INSERT INTO drill_rows SELECT i, 'after diff' FROM generate_series(151, 160) i")
    deploy(HOSTS, CONFIG, "-y", "--data", "type=incr", entry="backup.py")
    sql("INSERT INTO drill_rows SELECT i, 'after incr' FROM generate_series(161, 170) i")
    want = table_digest("drill_rows")
    assert [b["type"] for b in info()["backup"]][-2:] == ["diff", "incr"]
    deploy(HOSTS, CONFIG, "-y", "--data", f"confirm={DB}", entry="restore.py")
    assert table_digest("drill_rows") == want == [170, want[1]]
    assert changed_ops(deploy(HOSTS, CONFIG, "-y", "--json")) == []


def test_repository_host_unreachable_then_back(hosts: None, deploy: Callable[..., Run]) -> None:
    api.isolate(REPO)  # cut off the network: from the database host it is down
    try:
        for i in range(10):  # ten 16 MiB segments: past the 64 MiB bound
            sql(f"INSERT INTO drill_rows VALUES ({1000 + i}, 'while down'); SELECT pg_switch_wal();")
        assert sql("SELECT count(*) FROM drill_rows WHERE note = 'while down'") == "10"  # it keeps serving
        # a server that keeps writing completes segments; once the first push's connection has timed out
        # (about a minute), the next push finds the queue past the bound and drops it
        deadline, i = time.monotonic() + 150, 0
        while True:
            i += 1
            sql(f"INSERT INTO drill_rows VALUES ({1100 + i}, 'still down'); SELECT pg_switch_wal();")
            ready = sql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'", "postgres")
            if int(ready) * 16 <= 64 + 16 or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert int(ready) * 16 <= 64 + 16, f"{ready} segments queued past the 64 MiB bound"
        down = deploy(HOSTS, CONFIG, "-y", entry="validate.py", check=False)
        assert down.code != 0
        assert checks(down)["backup_archiving"] == "FAIL"
        failed = [line for line in down.stderr.splitlines() if "FAIL backup_archiving:" in line]
        assert failed and "repository not readable" in failed[0], down.stderr[-3000:]
    finally:
        api.isolate(REPO, False)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # the archiver catches up by itself
        sql("SELECT pg_switch_wal()", "postgres")
        if sql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'", "postgres") == "0":
            break
        time.sleep(3)
    healed = deploy(HOSTS, CONFIG, "-y", "--json")  # the WAL dropped at the bound left a gap: the deploy backs up
    assert "backup stanza" in changed_ops(healed)
    assert all(v == "ok" for v in checks(healed).values()), healed.stderr[-3000:]
    assert changed_ops(deploy(HOSTS, CONFIG, "-y", "--json")) == []


def test_killed_backup_then_next_backup_and_verify(hosts: None, deploy: Callable[..., Run]) -> None:
    sql("INSERT INTO drill_rows SELECT i, repeat(md5(i::text), 60) FROM generate_series(2000, 60000) i")
    fulls = sum(b["type"] == "full" for b in info()["backup"])
    ssh(DB, f"sudo -u postgres setsid pgbackrest --stanza={DB} --type=full backup >/dev/null 2>&1 &")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ssh(DB, "pgrep -u postgres -f 'pgbackrest.*backup'", check=False).returncode:
        time.sleep(0.1)
    time.sleep(0.5)
    assert ssh(DB, "pkill -9 -u postgres -f 'pgbackrest.*backup'", check=False).returncode == 0  # it was running
    assert sum(b["type"] == "full" for b in info()["backup"]) == fulls  # and did not finish
    run = deploy(HOSTS, CONFIG, "-y", entry="backup.py")
    assert "full backup taken" in run.stderr
    assert sum(b["type"] == "full" for b in info()["backup"]) == fulls + 1
    verify = ssh(DB, f"sudo -u postgres pgbackrest --stanza={DB} verify --log-level-console=info", check=False)
    output = verify.stdout + verify.stderr
    assert verify.returncode == 0 and "verify command end: completed successfully" in output, output
    assert "ERROR" not in output and "invalid" not in output
    shown = deploy(HOSTS, CONFIG, "-y", entry="status.py").stderr
    assert f"backups (stanza {DB}):" in shown
    for kind in ("full ", "diff ", "incr "):
        line = rf"^\s+{kind} \d{{8}}-\d{{6}}F\S*, [\d.]+ \S+ in the repository, \d+ s, .* ago$"
        assert re.search(line, shown, re.M), shown
    assert re.search(r"^\s+archive: \d+ WAL segments waiting", shown, re.M)


def test_logical_dumps_as_the_owner_with_retention(hosts: None, deploy: Callable[..., Run]) -> None:
    for _ in range(3):
        ssh(DB, "systemctl start hearthdb-dumps.service")  # oneshot: returns when the dumps are done
        time.sleep(1.1)  # a new stamp each time
    listing = ssh(DB, "ls /var/backups/hearthdb/dumps/logos_db").stdout.split()
    assert len(listing) == 2 and all(n.startswith("logos_db-") and n.endswith(".dump") for n in listing)
    toc = ssh(DB, f"pg_restore -l /var/backups/hearthdb/dumps/logos_db/{listing[-1]}").stdout
    assert "TABLE DATA public drill_rows logos" in toc  # the owner's table, dumped with the owner's rights
    assert ssh(DB, "stat -c '%U %a' /var/backups/hearthdb/dumps").stdout.split() == ["postgres", "700"]


def test_backup_drift_seen_by_dry_and_repaired_in_one_run(hosts: None, deploy: Callable[..., Run]) -> None:
    ssh(DB, "echo 'repo1-retention-full=99' >> /etc/pgbackrest/pgbackrest.conf")
    ssh(DB, "systemctl disable --now hearthdb-backup-diff.timer; rm /etc/systemd/system/hearthdb-backup-incr.timer")
    ssh(DB, "echo '# edited' >> /usr/local/lib/hearthdb/hearthdb-dumps")
    ssh(REPO, "rm /etc/ssh/sshd_config.d/hearthdb-backup.conf; : > /etc/ssh/hearthdb-backup-keys/pgbackrest")
    planned = changed_ops(deploy(HOSTS, CONFIG, "--dry", "--json").json)
    for op in ("pgBackRest configuration", "dumps script", "backup timers", "backup repository account"):
        assert op in planned, planned
    deploy(HOSTS, CONFIG, "-y")
    assert changed_ops(deploy(HOSTS, CONFIG, "-y", "--json")) == []
    assert "repo1-retention-full=99" not in ssh(DB, "cat /etc/pgbackrest/pgbackrest.conf").stdout
    active = ssh(DB, "systemctl is-active hearthdb-backup-diff.timer hearthdb-backup-incr.timer").stdout.split()
    assert active == ["active", "active"]
    assert "ForceCommand internal-sftp" in ssh(REPO, "cat /etc/ssh/sshd_config.d/hearthdb-backup.conf").stdout
    deploy(HOSTS, CONFIG, "-y", "--data", "type=incr", entry="backup.py")  # the repository answers the key again


def test_cipher_change_and_unknown_repository_host_are_refused(hosts: None, deploy: Callable[..., Run]) -> None:
    plain = {**CONFIG, "backup": {**CONFIG["backup"], "encryption": False}}
    run = deploy(HOSTS, plain, "-y", check=False)
    assert run.code != 0 and "backup.encryption" in run.stderr and "fixed once its stanza exists" in run.stderr
    assert "Success" not in run.stderr  # nothing ran anywhere
    ghost = {**CONFIG, "backup": {**CONFIG["backup"], "repository": {"host": "ghost"}}}
    run = deploy(HOSTS, ghost, "-y", check=False)
    assert run.code != 0 and "backup.repository.host: 'ghost' is not in the inventory" in run.stderr
