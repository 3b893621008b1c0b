"""Physical backups with pgBackRest, the pure part: the `backup:` section of hearthdb.yml, what pgBackRest
is told (its configuration file, the archive settings, the systemd timers), and the checks that read its
state. Nothing here imports pyinfra; `backups.py` holds the operations."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .target import BACKUP_KEY, BACKUP_KNOWN_HOSTS, PGBACKREST_LOG, PGBACKREST_SPOOL, Cluster

# ------------------------------------------------------------------------------------------------ the model

_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_DAYS = rf"{_DAY}(?:\.\.{_DAY})?(?:,{_DAY}(?:\.\.{_DAY})?)*"
_PART = r"(?:\*|\d{1,4}(?:\.\.\d{1,4})?(?:,\d{1,4}(?:\.\.\d{1,4})?)*)(?:/\d{1,4})?"
_DATE = rf"{_PART}-{_PART}-{_PART}"
_TIME = rf"{_PART}:{_PART}(?::{_PART})?"
CALENDAR_RE = re.compile(rf"^(?:{_DAYS} )?(?:{_DATE} {_TIME}|{_DATE}|{_TIME})$|^{_DAYS}$", re.IGNORECASE)
CALENDAR_WORDS = ("minutely", "hourly", "daily", "weekly", "monthly", "quarterly", "semiannually", "yearly", "annually")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def check_calendar(value: str) -> str:
    """A systemd OnCalendar expression (systemd.time(7)): a shorthand (daily, weekly, ...) or
    `[weekdays] [Y-M-D] [h:m[:s]]` with `*`, lists (`,`), ranges (`..`) and repetitions (`/`)."""
    text = " ".join(value.split())
    if text.lower() in CALENDAR_WORDS:
        return text
    if not CALENDAR_RE.match(text):
        raise ValueError(
            f"{value!r} is not a systemd calendar expression; use e.g. 'daily', 'Sun *-*-* 01:00:00' "
            "or 'Mon..Sat *-*-* 01:00'"
        )
    for word in re.findall(r"[a-z]+", text.lower()):
        if word not in DAY_NAMES and word not in FULL_DAYS:
            raise ValueError(f"{value!r}: {word!r} is not a weekday (Mon..Sun)")
    for hms in re.findall(r"(?:^| )([\d*,./]+:[\d*,./:]+)", text):
        for part, top in zip(hms.split(":"), (23, 59, 59), strict=False):
            if any(int(n) > top for n in re.findall(r"\d+", part.split("/")[0])):
                raise ValueError(f"{value!r}: {part!r} is out of range in the time {hms!r}")
    return text


Calendar = Annotated[str, AfterValidator(check_calendar)]
SIZE_RE = r"^[1-9][0-9]{0,5}(KiB|MiB|GiB|TiB)$"
PATH_RE = r"^/[A-Za-z0-9._/-]{1,200}$"
_UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def size_bytes(size: str) -> int:
    """'4GiB' -> 4294967296."""
    return int(size[:-3]) * _UNITS[size[-3:]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Repository(_Strict):
    host: str | None = None  # inventory name of the repository host (reached over SFTP); null: this host
    address: str | None = None  # how database hosts reach it; default: its inventory address
    path: Annotated[str, Field(pattern=PATH_RE)] = "/var/lib/pgbackrest"  # on the repository's disk
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = "pgbackrest"  # SFTP account there


class Retention(_Strict):
    full: Annotated[int, Field(ge=1, le=1000)] = 2  # full backups kept (with the WAL they need)
    diff: Annotated[int, Field(ge=1, le=1000)] = 6  # differential backups kept


class Archive(_Strict):
    async_: bool = Field(True, alias="async")  # archive-async: pgBackRest pushes WAL in parallel, from a spool
    timeout: Annotated[int, Field(ge=1, le=86400)] = 60  # archive_timeout, seconds: the most data a crash loses
    queue_max: Annotated[str, Field(pattern=SIZE_RE)] = "4GiB"  # archive-push-queue-max: bound on pg_wal
    # archive-push's archive-timeout, seconds: a primary's shutdown (a restart, a demotion) waits this long
    # for its last WAL when the repository cannot be reached; pgBackRest's 60 held a partitioned leader's
    # demotion for a minute
    push_timeout: Annotated[int, Field(ge=1, le=3600)] = 10


class Schedule(_Strict):
    full: Calendar | None = "Sun *-*-* 01:00:00"
    diff: Calendar | None = "Mon..Sat *-*-* 01:00:00"
    incr: Calendar | None = None


class Dumps(_Strict):
    enabled: bool = False  # also pg_dump -Fc every managed database, as its owner
    schedule: Calendar = "*-*-* 03:30:00"
    keep: Annotated[int, Field(ge=1, le=1000)] = 7  # dumps kept per database
    dir: Annotated[str, Field(pattern=PATH_RE)] = "/var/backups/hearthdb/dumps"


class Backup(_Strict):
    enabled: bool = False
    stanza: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")] | None = None  # default: host name
    repository: Repository = Field(default_factory=Repository)
    retention: Retention = Field(default_factory=Retention)
    # lz4: a full backup of 2 GB of embeddings in 0.76x the time of zst level 3, for a repository 1.14x
    # as large (README, "Backups: what the defaults cost")
    compression: Literal["zst", "lz4", "gz", "bz2", "none"] = "lz4"
    compression_level: Annotated[int, Field(ge=0, le=19)] | None = None  # default: pgBackRest's for the type
    process_max: Annotated[int, Field(ge=1, le=64)] = 2
    encryption: bool = False  # aes-256-cbc; the passphrase is generated once on the controller
    archive: Archive = Field(default_factory=Archive)
    schedule: Schedule = Field(default_factory=Schedule)
    dumps: Dumps = Field(default_factory=Dumps)

    @model_validator(mode="after")
    def _check(self) -> Backup:
        if self.enabled and not (self.schedule.full or self.schedule.diff or self.schedule.incr):
            raise ValueError("schedule: at least one of full, diff, incr needs a calendar expression")
        if self.compression == "none" and self.compression_level is not None:
            raise ValueError("compression_level: compression is none")
        return self


def check_backup(backup: Backup, settings: dict[str, Any], data_directory: str, etc: str) -> None:
    """Rules across keys, raised as `<key path>: reason` (the config model's `_check`)."""
    if not backup.enabled:
        return
    path = backup.repository.path.rstrip("/") + "/"
    for inside in (data_directory, etc):
        if backup.repository.host is None and (path.startswith(inside + "/") or inside.startswith(path)):
            raise ValueError(
                f"backup.repository.path: {backup.repository.path} overlaps {inside}; a backup must not live in "
                "(or contain) what it backs up"
            )
    for key in ARCHIVE_SETTINGS:
        if key in settings:
            raise ValueError(f"settings.{key}: set by the backup section (backup.enabled); remove it here")
    if str(settings.get("wal_level", "replica")) == "minimal":
        raise ValueError("settings.wal_level: minimal cannot be archived; backups need replica or logical")


def stanza_name(backup: Backup, host_name: str) -> str:
    """The stanza of a host: declared, else its inventory name (characters pgBackRest refuses as '-');
    the members of an HA cluster pass its scope instead: they share one stanza."""
    return backup.stanza or re.sub(r"[^A-Za-z0-9_.-]", "-", host_name).strip("-.") or "hearthdb"


# ---------------------------------------------------------------------------------- what pgBackRest is told

ARCHIVE_SETTINGS = ("archive_mode", "archive_command", "archive_timeout", "archive_library")


def archive_settings(backup: Backup, stanza: str) -> dict[str, Any]:
    """The server settings archiving needs (written with the other managed settings; archive_mode needs
    a restart, the others a reload)."""
    if not backup.enabled:
        return {}
    return {
        "archive_mode": "on",
        "archive_command": f"pgbackrest --stanza={stanza} archive-push %p",
        "archive_timeout": backup.archive.timeout,
    }


def conf_content(
    backup: Backup, stanza: str, target: Cluster, repo_address: str | None, cipher_pass: str | None
) -> str:
    """/etc/pgbackrest/pgbackrest.conf. `cipher_pass` is the repository passphrase (encryption only)."""
    repo = backup.repository
    g = [
        f"repo1-path={repo.path}",
        f"repo1-retention-full={backup.retention.full}",
        f"repo1-retention-diff={backup.retention.diff}",
        # bundles of small files and block-level incrementals: a 1% change copies about 1% of the data
        "repo1-bundle=y",
        "repo1-block=y",
        f"compress-type={backup.compression}",
        *([f"compress-level={backup.compression_level}"] if backup.compression_level is not None else []),
        f"process-max={backup.process_max}",
        "start-fast=y",
        # no delta: pgBackRest's default finds changed files by size and time (it waits out the clock's
        # second at backup start), so an incremental does not re-read every file; restores go to empty
        # directories, where delta has nothing to reuse
        f"archive-async={'y' if backup.archive.async_ else 'n'}",
        f"spool-path={PGBACKREST_SPOOL}",
        f"archive-push-queue-max={backup.archive.queue_max}",
        "log-level-console=warn",
        "log-level-file=info",
        f"log-path={PGBACKREST_LOG}",
    ]
    if repo.host is not None:
        g = [
            "repo1-type=sftp",
            f"repo1-sftp-host={repo_address}",
            f"repo1-sftp-host-user={repo.user}",
            f"repo1-sftp-private-key-file={BACKUP_KEY}",
            f"repo1-sftp-public-key-file={BACKUP_KEY}.pub",
            "repo1-sftp-host-key-hash-type=sha256",
            "repo1-sftp-host-key-check-type=strict",
            f"repo1-sftp-known-host={BACKUP_KNOWN_HOSTS}",
            *g,
        ]
    if backup.encryption:
        g += ["repo1-cipher-type=aes-256-cbc", f"repo1-cipher-pass={cipher_pass}"]
    s = [f"pg1-path={target.data_directory}", f"pg1-port={target.port}", "pg1-socket-path=/var/run/postgresql"]
    lines = ["# hearthdb: pgBackRest configuration (managed; edits are overwritten)", "[global]", *g, ""]
    # archive_command's own wait; backups and `check` keep the global 60 s for their last segment
    push = ["[global:archive-push]", f"archive-timeout={backup.archive.push_timeout}", ""]
    return "\n".join([*lines, *push, f"[{stanza}]", *s, ""])


BACKUP_TYPES = ("full", "diff", "incr")


def backup_command(stanza: str, kind: str) -> str:
    """The command that takes a backup (run as postgres), by a timer or by backup.py."""
    return f"/usr/bin/pgbackrest --stanza={stanza} --type={kind} backup"


def unit_name(kind: str) -> str:
    """The systemd unit of a scheduled job: hearthdb-backup-full, -diff, -incr, hearthdb-dumps."""
    return "hearthdb-dumps" if kind == "dumps" else f"hearthdb-backup-{kind}"


def timer_units(
    backup: Backup, stanza: str, dump_script: str | None = None, condition: str | None = None
) -> dict[str, str]:
    """The systemd service and timer files of every scheduled job (unit file name -> content); only
    the declared ones: a job whose calendar is null has none (and its old files are removed).
    `condition` is an `ExecCondition=` command: on an HA member, that it leads (a job on a replica is
    skipped, not failed; the leader's timer takes the cluster's backups)."""
    if not backup.enabled:
        return {}
    out: dict[str, str] = {}
    jobs = [(t, getattr(backup.schedule, t), backup_command(stanza, t)) for t in BACKUP_TYPES]
    if backup.dumps.enabled and dump_script:
        jobs.append(("dumps", backup.dumps.schedule, dump_script))
    for kind, calendar, command in jobs:
        if not calendar:
            continue
        name = unit_name(kind)
        out[f"{name}.service"] = (
            f"# hearthdb: scheduled {kind} backup (managed)\n[Unit]\nDescription=hearthdb {kind} backup\n"
            "After=postgresql.service\n\n[Service]\nType=oneshot\nUser=postgres\nGroup=postgres\n"
            + (f"ExecCondition={condition}\n" if condition else "")
            + f"ExecStart={command}\n"
        )
        out[f"{name}.timer"] = (
            f"# hearthdb: when the {kind} backup runs (managed)\n"
            f"[Unit]\nDescription=hearthdb {kind} backup schedule\n\n"
            f"[Timer]\nOnCalendar={calendar}\nPersistent=true\nRandomizedDelaySec=60\n\n"
            "[Install]\nWantedBy=timers.target\n"
        )
    return out


ALL_UNITS = tuple(f"{unit_name(k)}.{s}" for k in (*BACKUP_TYPES, "dumps") for s in ("service", "timer"))


# ------------------------------------------------------------------------------------------------ reading


def stanza_info(info: Any, stanza: str) -> dict[str, Any] | None:
    """The stanza's entry of `pgbackrest info --output=json`, None if the repository has none."""
    if not isinstance(info, list):
        return None
    for entry in info:
        if isinstance(entry, dict) and entry.get("name") == stanza:
            return entry
    return None


def stanza_code(entry: dict[str, Any] | None) -> int | None:
    """pgBackRest's status code of the stanza: 0 ok, 1 missing stanza path, 2 no valid backups, 3 missing
    stanza data, 99 other (an unreachable repository among them); None without an entry."""
    return ((entry or {}).get("status") or {}).get("code") if entry else None


def repository_problem(reading: dict[str, Any], entry: dict[str, Any] | None) -> str | None:
    """Why the repository cannot be read (pgBackRest's own message), or None when it can."""
    if reading.get("info") is None:
        return reading.get("info_error") or "pgBackRest is not installed"
    if stanza_code(entry) in (None, 0, 1, 2, 3):
        return None
    repos = [r.get("status", {}).get("message", "") for r in (entry or {}).get("repo") or []]
    message = "; ".join(m for m in repos if m) or (entry or {}).get("status", {}).get("message", "")
    return " ".join(str(message).split())[:300] or "unknown"


def dropped_since_backup(reading: dict[str, Any], entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The WAL pgBackRest dropped at the queue bound after the newest backup began: point-in-time
    recovery has a gap there until another backup is taken."""
    dropped = reading.get("dropped")
    b = newest(entry)
    start = ((b or {}).get("timestamp") or {}).get("start", 0)
    return dropped if dropped and dropped.get("time", 0) >= start else None


def stanza_ok(entry: dict[str, Any] | None) -> bool:
    """The stanza exists (status 0 "ok", or 2 "no valid backups": created, not yet backed up)."""
    return bool(entry) and (entry.get("status") or {}).get("code") in (0, 2)


def stanza_cipher(entry: dict[str, Any] | None) -> str | None:
    """'none' or 'aes-256-cbc' for an existing stanza; None when there is none."""
    if not entry or not stanza_ok(entry):
        return None
    return entry.get("cipher") or "none"


def backups_of(entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((entry or {}).get("backup") or [])


def newest(entry: dict[str, Any] | None, kind: str | None = None) -> dict[str, Any] | None:
    items = [b for b in backups_of(entry) if kind is None or b.get("type") == kind]
    return max(items, key=lambda b: (b.get("timestamp") or {}).get("stop", 0), default=None)


def describe(b: dict[str, Any] | None, now: float) -> str:
    """'20261202-140102F, 12 MiB in the repository, 3.1 s, 2 h ago' (or 'none')."""
    if not b:
        return "none"
    ts = b.get("timestamp") or {}
    repo = ((b.get("info") or {}).get("repository") or {}).get("delta", 0)
    took = max(0, ts.get("stop", 0) - ts.get("start", 0))
    age = human_age(now - ts.get("stop", now))
    return f"{b.get('label')}, {human_size(repo)} in the repository, {took:.0f} s, {age} ago"


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def archive_checks(
    reading: dict[str, Any], backup: Backup, stanza: str, now: float, replica: bool = False
) -> list[tuple[str, bool, str]]:
    """The backup checks of validation, (name, passed, detail), from the BackupState reading:

    - backup_archiving: the repository can be read, no WAL segment has waited for the archive longer
      than 2 x archive_timeout (+ 30 s), and the last attempt did not fail; on an HA `replica` the
      repository alone (a standby archives nothing: the leader does, and its own validation says so);
    - backup_wal_bound: the WAL waiting for the archive is within archive-push-queue-max, and none was
      dropped since the newest backup began. Past the bound pgBackRest drops WAL rather than fill the
      disk: the database keeps serving, point-in-time recovery has a gap until the next backup (which
      the next deploy takes);
    - backup_full: the stanza exists and holds a full backup;
    - backup_recent: every scheduled job that has run since its timer last fired left a backup at least
      that new (or is running now).
    """
    out: list[tuple[str, bool, str]] = []
    arch = reading.get("archiver") or {}
    wait = 2 * backup.archive.timeout + 30
    oldest = arch.get("oldest_ready_age")
    failing = bool(arch.get("last_failed_time")) and (arch.get("last_failed_time") or 0) >= (
        arch.get("last_archived_time") or 0
    )
    entry = stanza_info(reading.get("info"), stanza)
    problem = repository_problem(reading, entry)
    ok = not failing and (oldest is None or oldest <= wait) and problem is None
    detail = ""
    if replica:
        ok, detail = problem is None, f"repository not readable: {problem}" if problem else ""
    elif not ok:
        detail = f"{arch.get('ready', 0)} WAL segments waiting"
        if oldest is not None:
            detail += f", the oldest for {human_age(oldest)} (bound {wait} s)"
        if failing:
            detail += f"; last attempt failed ({arch.get('last_failed_wal')})"
        if problem:
            detail += f"; repository not readable: {problem}"
        elif reading.get("archive_error"):
            detail += f": {reading['archive_error']}"
    out.append(("backup_archiving", ok, detail))
    bound = size_bytes(backup.archive.queue_max)
    queue = int(arch.get("ready") or 0) * int(arch.get("wal_segment_bytes") or 16 << 20)
    wal = int(arch.get("pg_wal_bytes") or 0)
    dropped = dropped_since_backup(reading, entry)
    detail = ""
    if queue > bound:
        detail = (
            f"{human_size(queue)} of WAL wait for the archive (pg_wal holds {human_size(wal)}), past "
            f"{backup.archive.queue_max}: pgBackRest drops WAL now (the database keeps serving; point-in-time "
            "recovery has a gap until the next backup)"
        )
    elif dropped:
        when = datetime.fromtimestamp(dropped["time"], UTC).isoformat(timespec="seconds")
        detail = (
            f"WAL up to {dropped.get('wal')} was dropped at {when} (the archive queue passed "
            f"{backup.archive.queue_max}): point-in-time recovery has a gap there; the next deploy takes a backup"
        )
    out.append(("backup_wal_bound", queue <= bound and not dropped, detail))
    full = newest(entry, "full")
    detail = "" if full else ("no stanza " + stanza if not stanza_ok(entry) else "no full backup yet")
    if not full and problem:
        detail = f"repository not readable: {problem}"
    out.append(("backup_full", full is not None, detail))
    late = []
    for kind in BACKUP_TYPES:
        fired = (reading.get("timers") or {}).get(kind)
        if not getattr(backup.schedule, kind) or not fired or kind in (reading.get("running") or []):
            continue
        # a diff or incr timer is satisfied by any backup at least as large (a full after it counts)
        kinds = BACKUP_TYPES[: BACKUP_TYPES.index(kind) + 1]
        best = max(
            ((b.get("timestamp") or {}).get("start", 0) for b in backups_of(entry) if b.get("type") in kinds), default=0
        )
        if best < fired - 120:  # the timer's own jitter (RandomizedDelaySec) is within the slack
            late.append(
                f"{kind}: timer fired {datetime.fromtimestamp(fired).isoformat(timespec='seconds')}, no backup since"
            )
    out.append(("backup_recent", not late, "; ".join(late)))
    return out


# ------------------------------------------------------------------------------------ restores and drills

LABEL_RE = re.compile(r"^\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?$")


def restore_options(spec: str | None) -> tuple[str, list[str]]:
    """`--data target=...` of restore.py and drill.py -> (what it means, pgBackRest restore options).
    latest (the default): the newest backup and every archived WAL after it; a backup label: that
    backup, consistent and no further; a timestamp (ISO 8601; UTC when it names no zone): the newest
    backup before it, replayed up to it. A recovered cluster is promoted (read-write) at its target."""
    text = (spec or "latest").strip()
    if text == "latest":
        return "latest", []
    if LABEL_RE.match(text):
        return f"backup {text}", [f"--set={text}", "--type=immediate", "--target-action=promote"]
    try:
        when = datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text else text)
    except ValueError:
        raise ValueError(
            f"target: {text!r} is not latest, a backup label (20261202-010000F) or a timestamp "
            "(2026-12-02T14:30:00+00:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    return f"time {stamp}", ["--type=time", f"--target={stamp}", "--target-action=promote"]


# Every user table of the connected database: its row count and a digest of its rows (each row's text,
# hashed, sorted, hashed again: independent of physical order), as `db TAB table TAB rows TAB md5`.
CHECKSUM_SQL = r"""
SELECT format('SELECT %L || chr(9) || %L || chr(9) || count(*) || chr(9) || '
              'md5(coalesce(string_agg(h, '''' ORDER BY h), '''')) FROM (SELECT md5(t::text) AS h FROM %I.%I t) s',
              current_database(), n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
ORDER BY n.nspname, c.relname
\gexec
""".strip()


def checksum_script(psql: str) -> str:
    """Shell lines that print the checksum rows of every database `psql` (a command without -d) reaches."""
    return (
        f'for db in $({psql} -d postgres -c "SELECT datname FROM pg_database WHERE datallowconn '
        "AND datname <> 'template1' ORDER BY 1\"); do "
        f'printf "%s\\n" {shell_quote(CHECKSUM_SQL)} | {psql} -d "$db"; done'
    )


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def parse_checksums(lines: list[str]) -> dict[tuple[str, str], tuple[int, str]]:
    """(db, table) -> (rows, digest) from checksum rows."""
    out = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 4 and parts[2].isdigit():
            out[(parts[0], parts[1])] = (int(parts[2]), parts[3])
    return out


def compare_checksums(
    source: dict[tuple[str, str], tuple[int, str]], copy: dict[tuple[str, str], tuple[int, str]]
) -> list[str]:
    """Differences between the source's tables and the restored copy's, in words (empty: identical)."""
    out = []
    for key in sorted(set(source) | set(copy)):
        a, b = source.get(key), copy.get(key)
        name = f"{key[0]}.{key[1]}"
        if a is None:
            out.append(f"{name}: only in the copy")
        elif b is None:
            out.append(f"{name}: missing from the copy")
        elif a[0] != b[0]:
            out.append(f"{name}: {a[0]} rows, the copy {b[0]}")
        elif a[1] != b[1]:
            out.append(f"{name}: same {a[0]} rows, different content")
    return out


def status_lines(reading: dict[str, Any], stanza: str, now: float) -> list[str]:
    """What status.py shows of a stanza: the newest full, diff and incr backup (label, size, age), the
    WAL waiting for the archive, and what the repository holds for the stanza."""
    entry = stanza_info(reading.get("info"), stanza)
    problem = repository_problem(reading, entry)
    if problem is not None and not backups_of(entry):
        return [f"backups of stanza {stanza}: repository not readable: {problem}"]
    lines = [f"{kind:<5} {describe(newest(entry, kind), now)}" for kind in BACKUP_TYPES]
    arch = reading.get("archiver") or {}
    oldest = arch.get("oldest_ready_age")
    lag = f", the oldest for {human_age(oldest)}" if oldest is not None else ""
    lines.append(
        f"archive: {arch.get('ready', 0)} WAL segments waiting{lag}; last archived {arch.get('last_archived_wal')}"
    )
    held = sum(((b.get("info") or {}).get("repository") or {}).get("delta", 0) for b in backups_of(entry))
    lines.append(f"repository: {len(backups_of(entry))} backups, {human_size(held)} of backup data (WAL not counted)")
    return lines


def dump_script(databases: dict[str, str], port: int, dumps: Dumps) -> str:
    """The scheduled logical dumps (run as postgres): `pg_dump -Fc` of each database with the rights of
    its owner (`--role`), into `<dir>/<db>/<db>-<UTC stamp>.dump` (written as .part, renamed when
    complete), keeping the newest `keep`; a failed dump fails the unit, the others still run."""
    lines = [
        "#!/bin/sh",
        "# hearthdb: logical dumps of the managed databases, each as its owner (managed; edits are overwritten)",
        "set -u",
        "umask 077",
        f"d={shell_quote(dumps.dir)}",
        "stamp=$(date -u +%Y%m%dT%H%M%SZ)",
        "failed=0",
        "dump() {",
        '  mkdir -p "$d/$1" || { failed=1; return; }',
        '  f="$d/$1/$1-$stamp.dump"',
        f'  if pg_dump -p {int(port)} --role="$2" -Fc -f "$f.part" "$1"; then mv "$f.part" "$f"; '
        'else rm -f "$f.part"; echo "hearthdb: dump of $1 failed" >&2; failed=1; fi',
        f'  ls -1t "$d/$1"/*.dump 2>/dev/null | tail -n +{dumps.keep + 1} | while read -r old; do rm -f "$old"; done',
        "}",
        *(f"dump {shell_quote(db)} {shell_quote(owner)}" for db, owner in sorted(databases.items())),
        'exit "$failed"',
    ]
    return "\n".join(lines) + "\n"
