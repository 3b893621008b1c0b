"""The backup section's rules, what pgBackRest is told, and the checks that read its state."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operations.config import parse_config
from operations.desired import desired_databases
from operations.errors import ConfigError
from operations.pgbackrest import (
    ALL_UNITS,
    Backup,
    archive_checks,
    check_calendar,
    compare_checksums,
    conf_content,
    dump_script,
    parse_checksums,
    restore_options,
    stanza_name,
    status_lines,
    timer_units,
)
from operations.render import effective_settings
from operations.target import Cluster

TARGET = Cluster(17, "main", 5432)
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "text",
    [
        "daily",
        "weekly",
        "Sun *-*-* 01:00:00",
        "Mon..Sat *-*-* 01:00",
        "Mon,Wed,Fri *-*-* 04:30:00",
        "*-*-* 03:30:00",
        "*-*-01 02:00:00",
        "2026-12-* 00:00:00",
        "*:0/15",
        "Sat,Sun",
        "*-*-* 00/6:00:00",
    ],
)
def test_calendar_expressions_accepted(text: str) -> None:
    assert check_calendar(text) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("every day", "not a systemd calendar"),
        ("Sun 25:00", "out of range"),
        ("*-*-* 12:61:00", "out of range"),
        ("Sunnyday *-*-* 01:00", "not a weekday"),
        ("0 1 * * *", "not a systemd calendar"),  # cron syntax
        ("", "not a systemd calendar"),
    ],
)
def test_calendar_expressions_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_calendar(text)


@given(
    day=st.sampled_from(["", "Mon ", "Mon..Fri ", "Sat,Sun "]),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    second=st.one_of(st.none(), st.integers(0, 59)),
)
def test_generated_times_are_accepted(day: str, hour: int, minute: int, second: int | None) -> None:
    text = f"{day}*-*-* {hour:02d}:{minute:02d}" + (f":{second:02d}" if second is not None else "")
    assert check_calendar(text) == text


BAD_INPUT = [
    ({"retention": {"full": 0}}, "backup.retention.full"),
    ({"retention": {"diff": 0}}, "backup.retention.diff"),
    ({"schedule": {"full": "every sunday"}}, "backup.schedule.full"),
    ({"schedule": {"full": None, "diff": None, "incr": None}}, "backup.schedule"),
    ({"repository": {"path": "/var/lib/postgresql/17/main/backups"}}, "backup.repository.path"),
    ({"repository": {"path": "/var/lib"}}, "backup.repository.path"),
    ({"repository": {"path": "relative/path"}}, "backup.repository.path"),
    ({"compression": "xz"}, "backup.compression"),
    ({"compression": "none", "compression_level": 3}, "backup.compression_level"),
    ({"archive": {"queue_max": "4G"}}, "backup.archive.queue_max"),
    ({"archive": {"timeout": 0}}, "backup.archive.timeout"),
    ({"process_max": 0}, "backup.process_max"),
    ({"stanza": "bad stanza"}, "backup.stanza"),
    ({"encrypt": True}, "backup.encrypt"),
]


@pytest.mark.parametrize(("section", "key"), BAD_INPUT)
def test_bad_backup_input_names_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"backup": {"enabled": True, **section}})
    assert f": {key}" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"archive_command": "cp %p /x"}, "settings.archive_command"),
        ({"archive_mode": "off"}, "settings.archive_mode"),
        ({"wal_level": "minimal"}, "settings.wal_level"),
    ],
)
def test_archive_settings_belong_to_the_backup_section(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_config({"backup": {"enabled": True}, "settings": settings})
    parse_config({"backup": {"enabled": False}, "settings": settings})  # without backups they are the user's


def test_archive_settings_in_the_managed_settings() -> None:
    cfg = parse_config({"backup": {"enabled": True, "archive": {"timeout": 30}}})
    out = effective_settings(cfg, desired_databases(cfg), {}, stanza="db1")
    assert out["archive_mode"] == "on"
    assert out["archive_command"] == "pgbackrest --stanza=db1 archive-push %p"
    assert out["archive_timeout"] == 30
    assert "archive_mode" not in effective_settings(cfg, desired_databases(cfg), {})  # no stanza: not this host


def test_stanza_is_the_host_name_unless_declared() -> None:
    assert stanza_name(Backup(), "db1.example.org") == "db1.example.org"
    assert stanza_name(Backup(), "[::1]") == "1"
    assert stanza_name(Backup(stanza="memory"), "db1") == "memory"


def test_configuration_file() -> None:
    local = conf_content(Backup(enabled=True), "db1", TARGET, None, None)
    assert "repo1-type" not in local and "cipher" not in local
    assert "[db1]\npg1-path=/var/lib/postgresql/17/main\npg1-port=5432" in local
    # archive_command's wait is bounded in its own section; backups and check keep the global default
    assert "\n[global:archive-push]\narchive-timeout=10\n" in local and local.count("archive-timeout") == 1
    bounded = Backup.model_validate({"enabled": True, "archive": {"push_timeout": 30}})
    assert "[global:archive-push]\narchive-timeout=30\n" in conf_content(bounded, "db1", TARGET, None, None)
    sftp = Backup.model_validate({"enabled": True, "encryption": True, "repository": {"host": "repo"}})
    text = conf_content(sftp, "db1", TARGET, "10.0.0.9", "s3cret-passphrase")
    assert "repo1-type=sftp\nrepo1-sftp-host=10.0.0.9\nrepo1-sftp-host-user=pgbackrest" in text
    assert "repo1-sftp-host-key-check-type=strict" in text
    assert "repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=s3cret-passphrase" in text


def test_timers_only_for_declared_schedules() -> None:
    units = timer_units(Backup.model_validate({"enabled": True, "schedule": {"incr": "hourly"}}), "db1")
    assert sorted(units) == sorted(
        f"hearthdb-backup-{k}.{s}" for k in ("full", "diff", "incr") for s in ("service", "timer")
    )
    assert "OnCalendar=hourly" in units["hearthdb-backup-incr.timer"]
    assert "ExecStart=/usr/bin/pgbackrest --stanza=db1 --type=incr backup" in units["hearthdb-backup-incr.service"]
    assert "User=postgres" in units["hearthdb-backup-full.service"]
    assert set(units) <= set(ALL_UNITS)
    only_full = timer_units(Backup.model_validate({"enabled": True, "schedule": {"diff": None}}), "db1")
    assert sorted(only_full) == ["hearthdb-backup-full.service", "hearthdb-backup-full.timer"]
    assert timer_units(Backup(), "db1") == {}  # off: every unit hearthdb wrote is removed


def test_restore_targets() -> None:
    assert restore_options(None) == ("latest", [])
    assert restore_options("20261202-010000F_20261202-020000I") == (
        "backup 20261202-010000F_20261202-020000I",
        ["--set=20261202-010000F_20261202-020000I", "--type=immediate", "--target-action=promote"],
    )
    what, opts = restore_options("2026-12-02T14:30:00+01:00")
    assert what == "time 2026-12-02 13:30:00.000000+00"
    assert opts == ["--type=time", "--target=2026-12-02 13:30:00.000000+00", "--target-action=promote"]
    assert restore_options("2026-12-02 14:30:00")[0] == "time 2026-12-02 14:30:00.000000+00"  # no zone: UTC
    for bad in ("yesterday", "20261202-010000X", "2026-13-02 00:00:00"):
        with pytest.raises(ValueError, match="target"):
            restore_options(bad)


def _reading(**over: Any) -> dict[str, Any]:
    full = {"type": "full", "label": "20261202-010000F", "timestamp": {"start": NOW - 7200, "stop": NOW - 7100}}
    base = {
        "info": [{"name": "db1", "status": {"code": 0}, "cipher": "none", "backup": [full]}],
        "archiver": {
            "ready": 0,
            "oldest_ready_age": None,
            "pg_wal_bytes": 64 << 20,
            "last_failed_time": None,
            "last_archived_time": NOW - 5,
        },
        "timers": {},
        "running": [],
    }
    return {**base, **over}


def _verdicts(reading: dict[str, Any], backup: Backup | None = None) -> dict[str, tuple[bool, str]]:
    return {n: (ok, d) for n, ok, d in archive_checks(reading, backup or Backup(enabled=True), "db1", NOW)}


def test_healthy_reading_passes_every_check() -> None:
    assert all(ok for ok, _ in _verdicts(_reading()).values())


def test_archiving_stuck_or_failing() -> None:
    stuck = _reading(
        archiver={
            "ready": 7,
            "oldest_ready_age": 600,
            "pg_wal_bytes": 1,
            "last_failed_time": NOW - 1,
            "last_archived_time": NOW - 700,
            "last_failed_wal": "00000001000000000000000A",
        },
        archive_error="ERROR: [104]: archive-push command encountered error(s): unable to connect",
    )
    ok, detail = _verdicts(stuck)["backup_archiving"]
    assert not ok
    assert "7 WAL segments waiting" in detail and "00000001000000000000000A" in detail and "unable to connect" in detail
    recovered = _reading(
        archiver={
            "ready": 0,
            "oldest_ready_age": None,
            "pg_wal_bytes": 1,
            "last_failed_time": NOW - 100,
            "last_archived_time": NOW - 5,
        }
    )
    assert _verdicts(recovered)["backup_archiving"][0]  # a failure before the last success is over

    # an HA replica archives nothing (the leader does): its old queue is not its verdict, the repository is
    def on_replica(reading: dict[str, Any]) -> tuple[bool, str]:
        checks = archive_checks(reading, Backup(enabled=True), "db1", NOW, replica=True)
        return next((ok, d) for n, ok, d in checks if n == "backup_archiving")

    assert on_replica(stuck) == (True, "")
    ok, detail = on_replica(_reading(info=None, info_error="unable to connect to repository host"))
    assert not ok and "repository not readable" in detail and "unable to connect" in detail


def test_wal_bound() -> None:
    backup = Backup.model_validate({"enabled": True, "archive": {"queue_max": "128MiB"}})
    waiting = {"ready": 9, "oldest_ready_age": 30, "pg_wal_bytes": 2 << 30, "wal_segment_bytes": 16 << 20}
    ok, detail = _verdicts(_reading(archiver=waiting), backup)["backup_wal_bound"]
    assert not ok and "144.0 MiB of WAL wait" in detail and "pg_wal holds 2.0 GiB" in detail and "drops WAL" in detail
    # a large pg_wal of recycled segments is max_wal_size's business, not the archive queue's
    idle = {"ready": 8, "oldest_ready_age": 30, "pg_wal_bytes": 2 << 30, "wal_segment_bytes": 16 << 20}
    assert _verdicts(_reading(archiver=idle), backup)["backup_wal_bound"][0]


def test_no_stanza_or_no_full_backup() -> None:
    assert _verdicts(_reading(info=[]))["backup_full"] == (False, "no stanza db1")
    empty = [{"name": "db1", "status": {"code": 2}, "backup": []}]
    assert _verdicts(_reading(info=empty))["backup_full"] == (False, "no full backup yet")
    unreadable = _verdicts(_reading(info=None, info_error="unable to connect"))["backup_full"]
    assert not unreadable[0] and "unable to connect" in unreadable[1]


def test_recent_backup_against_the_timers() -> None:
    assert _verdicts(_reading(timers={"full": NOW - 7300}))["backup_recent"][0]  # the full started after it fired
    late = _verdicts(_reading(timers={"full": NOW - 60}))["backup_recent"]
    assert not late[0] and late[1].startswith("full: timer fired")
    assert _verdicts(_reading(timers={"full": NOW - 60}, running=["full"]))["backup_recent"][0]  # running now
    assert _verdicts(_reading(timers={"diff": NOW - 7300}))["backup_recent"][0]  # a newer full serves a diff
    not_declared = Backup.model_validate({"enabled": True, "schedule": {"diff": None}})
    assert _verdicts(_reading(timers={"diff": NOW - 60}), not_declared)["backup_recent"][0]


def test_checksum_comparison() -> None:
    source = parse_checksums(["a_db\tpublic.t\t3\tabc", "a_db\tpublic.u\t0\td41d", "garbage"])
    assert source == {("a_db", "public.t"): (3, "abc"), ("a_db", "public.u"): (0, "d41d")}
    assert compare_checksums(source, dict(source)) == []
    copy = {("a_db", "public.t"): (2, "abd"), ("a_db", "public.v"): (1, "x")}
    assert compare_checksums(source, copy) == [
        "a_db.public.t: 3 rows, the copy 2",
        "a_db.public.u: missing from the copy",
        "a_db.public.v: only in the copy",
    ]
    assert compare_checksums({("d", "t"): (1, "a")}, {("d", "t"): (1, "b")}) == ["d.t: same 1 rows, different content"]


def _recorded(case: str) -> dict[str, Any]:
    path = Path(__file__).parent / "facts" / "BackupState" / f"{case}.json"
    return json.loads(path.read_text())["fact"]


def test_checks_on_recorded_readings() -> None:
    backup = Backup.model_validate({"enabled": True, "archive": {"timeout": 10, "queue_max": "64MiB"}})
    recorded_at = 1796221950.0  # seconds after the recording
    back = {
        n: (ok, d) for n, ok, d in archive_checks(_recorded("wal-dropped-repository-back"), backup, "hdb1", recorded_at)
    }
    assert (
        not back["backup_archiving"][0] and "4 WAL segments waiting, the oldest for 53 s" in back["backup_archiving"][1]
    )
    assert not back["backup_wal_bound"][0] and "00000001000000000000000E was dropped" in back["backup_wal_bound"][1]
    assert back["backup_full"] == (True, "") and back["backup_recent"] == (True, "")
    healed = {n: ok for n, ok, _ in archive_checks(_recorded("healed"), backup, "hdb1", NOW)}
    assert healed == dict.fromkeys(healed, True) and len(healed) == 4
    assert archive_checks(_recorded("not-installed"), backup, "hdb2", NOW)[0][1] is False


def test_status_lines_from_a_recorded_reading() -> None:
    lines = status_lines(_recorded("healed"), "hdb1", 1796222000.0)
    assert lines[0].startswith("full  2026") and "in the repository" in lines[0] and lines[0].endswith("ago")
    assert lines[2].startswith("incr  2026")
    assert lines[3].startswith("archive: 0 WAL segments waiting; last archived ")
    assert re.match(r"repository: \d+ backups, [\d.]+ MiB of backup data", lines[4])
    unread = status_lines({"info": None, "info_error": "unable to connect"}, "hdb1", NOW)
    assert unread == ["backups of stanza hdb1: repository not readable: unable to connect"]


def test_dump_script(tmp_path: Path) -> None:
    dumps = Backup.model_validate({"dumps": {"enabled": True, "keep": 3, "dir": "/srv/dumps"}}).dumps
    script = dump_script({"logos_db": "logos", "hearthminds_db": "hearthminds"}, 5432, dumps)
    assert "dump 'hearthminds_db' 'hearthminds'\ndump 'logos_db' 'logos'\n" in script  # every database, its owner
    assert 'pg_dump -p 5432 --role="$2" -Fc -f "$f.part" "$1"' in script
    assert "tail -n +4" in script  # the newest three stay
    # the script is valid shell
    path = tmp_path / "dumps.sh"
    path.write_text(script)
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0
    assert (
        "ExecStart=/usr/local/lib/hearthdb/hearthdb-dumps"
        in timer_units(
            Backup.model_validate({"enabled": True, "dumps": {"enabled": True}}),
            "db1",
            "/usr/local/lib/hearthdb/hearthdb-dumps",
        )["hearthdb-dumps.service"]
    )
