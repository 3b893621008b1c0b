"""Operations for physical backups with pgBackRest (the pure part is `pgbackrest.py`): the stanza and the
first full backup, the backup timers, and the SFTP account on a repository host."""

from __future__ import annotations

import hashlib
import json
import shlex
import time

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, StringCommand

from .conffiles import FileDigests, write_command
from .drift import operation
from .errors import ConfigError
from .facts import PSQL_USER, BackupState, RepositoryAccount, SystemdUnits
from .hanodes import HaState, leading, wait_until
from .pgbackrest import (
    ALL_UNITS,
    BACKUP_TYPES,
    Backup,
    backup_command,
    checksum_script,
    compare_checksums,
    describe,
    dropped_since_backup,
    newest,
    parse_checksums,
    repository_problem,
    restore_options,
    stanza_cipher,
    stanza_code,
    stanza_info,
)
from .psql import SqlCommand
from .report import show_plan
from .reset import check_confirmation
from .target import PGBACKREST_LOG, SSHD_BACKUP_CONF, SSHD_BACKUP_KEYS, SYSTEMD_UNITS, Cluster
from .validation import Check, new_run_id, record_statements

# pgBackRest's status codes for a stanza it cannot use yet: "missing stanza path", "missing stanza data"
STANZA_MISSING = (1, 3)


def read_backup_state(stanza: str, target: Cluster) -> dict:
    return host.get_fact(BackupState, stanza=stanza, port=target.port, log=PGBACKREST_LOG, **PSQL_USER)


def check_cipher(backup: Backup, stanza: str, target: Cluster) -> None:
    """Refuse a declared cipher that differs from the existing stanza's: called by the deploy function,
    while pyinfra loads the deploy, so that no host is touched."""
    have = stanza_cipher(stanza_info(read_backup_state(stanza, target).get("info"), stanza))
    want = "aes-256-cbc" if backup.encryption else "none"
    if have is not None and have != want:
        raise ConfigError(
            f"backup.encryption: the repository's stanza {stanza!r} on {host.name} is {have}, declared {want}; "
            "a repository's cipher is fixed once its stanza exists (use a new repository path or stanza)"
        )


def as_postgres(command: str) -> StringCommand:
    return StringCommand(command, **PSQL_USER)


def leads(probe: str | None) -> bool:
    """Whether this host backs up its stanza: always without HA; in a Patroni cluster only the leader
    (the members share one stanza, and pgBackRest backs up a primary)."""
    if probe is None:
        return True
    return leading(host.get_fact(HaState, probe=probe))


@operation()
def stanza(backup: Backup, stanza: str, target: Cluster, probe: str | None = None):
    """
    Create the host's stanza once (`stanza-create` is idempotent, but it is run only when the
    repository has none), prove archiving with `pgbackrest check`, and take the first full backup; a
    stanza that exists but holds no full backup gets one, and so does one whose WAL was dropped at the
    queue bound since its newest backup (an incremental closes the gap in point-in-time recovery). A
    cipher change is refused earlier, by `check_cipher`, while the deploy loads.

    + backup: the declared backup section
    + stanza: this host's stanza
    + target: the cluster (it must be running)
    + probe: on an HA member, the HaState argument: only the leader creates and backs up the stanza
    """
    if not leads(probe):
        host.noop(f"backup: the leader creates stanza {stanza} and takes its backups")
        return
    st = read_backup_state(stanza, target)
    entry = stanza_info(st.get("info"), stanza)
    s = shlex.quote(stanza)
    code = stanza_code(entry)
    problem = repository_problem(st, entry)
    if problem is not None and (st.get("info") is not None or st.get("info_error")):
        # the repository cannot be read: nothing is created blind; validation reports why
        host.noop(f"backup: repository not readable: {problem[:200]}")
        return
    if entry is None or code in STANZA_MISSING:  # (also: pgBackRest not installed yet)
        show_plan("backup", [f"pgbackrest --stanza={stanza} stanza-create", "check", "first full backup"])
        # a leader Patroni has just promoted may still be ending recovery: pgBackRest wants a primary
        query = shlex.quote("SELECT pg_is_in_recovery()")
        primary = f'[ "$(psql -X -A -t -p {int(target.port)} -d postgres -c {query} 2>/dev/null)" = f ]'
        ready = "" if probe is None else wait_until(primary, 60, "the leader out of recovery") + "; "
        yield as_postgres(
            f"set -e; {ready}pgbackrest --stanza={s} stanza-create; pgbackrest --stanza={s} check; "
            + backup_command(s, "full")
        )
        return
    if newest(entry, "full") is None:
        show_plan("backup", [f"first full backup of stanza {stanza}"])
        yield as_postgres(backup_command(s, "full"))
        return
    if dropped_since_backup(st, entry):
        show_plan("backup", ["incremental backup: WAL was dropped at the queue bound since the newest backup"])
        yield as_postgres(backup_command(s, "incr"))
        return
    host.noop(f"backup: stanza {stanza} exists with a full backup")


@operation()
def timers(units: dict[str, str]):
    """
    The backup schedule as systemd units: write the declared service and timer files, remove the
    undeclared ones hearthdb wrote before, reload systemd only when a file changed, and enable and start
    every declared timer.

    + units: unit file name -> content (`pgbackrest.timer_units`)
    """
    have = host.get_fact(SystemdUnits, names=list(ALL_UNITS))
    commands, shown = [], []
    for name, content in units.items():
        digest = hashlib.sha256(content.encode()).hexdigest()
        if (have.get(name) or {}).get("digest") != digest:
            path = f"{SYSTEMD_UNITS}/{name}"
            shown += [f"write {path}", *(f"  {line}" for line in content.rstrip("\n").splitlines())]
            commands.append(StringCommand(write_command(path, "root", "644"), _stdin=content))
    stale = [n for n in ALL_UNITS if n not in units and (have.get(n) or {}).get("digest")]
    for name in stale:
        shown.append(f"remove {SYSTEMD_UNITS}/{name}")
        if name.endswith(".timer"):
            commands.append(StringCommand(f"systemctl disable --now {name}"))
        commands.append(StringCommand(f"rm -f {SYSTEMD_UNITS}/{name}"))
    changed = bool(commands)
    if changed:
        commands.append(StringCommand("systemctl daemon-reload"))
    for name in units:
        if not name.endswith(".timer"):
            continue
        state = have.get(name) or {}
        if changed and state.get("active"):
            commands.append(StringCommand(f"systemctl restart {name}"))  # a changed calendar takes effect now
        if not (state.get("enabled") and state.get("active")):
            shown.append(f"enable and start {name}")
            commands.append(StringCommand(f"systemctl enable --now {name}"))
    if not commands:
        host.noop("backup timers are as declared")
        return
    show_plan("backup timers", shown)
    yield from commands


def sshd_rules(user: str) -> str:
    """The sshd rules of the repository account: SFTP only, keys only from hearthdb's file, no shell,
    forwarding or tty; `Match all` ends the block so that nothing after the Include is caught by it."""
    return (
        "# hearthdb: the backup repository's SFTP account (managed)\n"
        f"Match User {user}\n"
        f"    AuthorizedKeysFile {SSHD_BACKUP_KEYS}/%u\n"
        "    PasswordAuthentication no\n"
        "    ForceCommand internal-sftp\n"
        "    AllowTcpForwarding no\n"
        "    AllowAgentForwarding no\n"
        "    X11Forwarding no\n"
        "    PermitTTY no\n"
        "Match all\n"
    )


@operation()
def repository_host(user: str, path: str, keys: list[str]):
    """
    A repository host for database hosts that reach it over SFTP: a system account with no shell that
    owns the repository path (mode 750), the database hosts' public keys as its only authorized keys,
    and sshd rules that allow it SFTP and nothing else (checked by `sshd -t` before the reload; a
    refused file is removed again).

    + user: the account
    + path: the repository directory (its home)
    + keys: the public key lines of every database host that backs up here
    """
    keys_file = f"{SSHD_BACKUP_KEYS}/{user}"
    keys_text = "".join(f"{k}\n" for k in sorted(keys))
    rules = sshd_rules(user)
    digests = host.get_fact(FileDigests, paths=[keys_file, SSHD_BACKUP_CONF])
    account = host.get_fact(RepositoryAccount, user=user, path=path)
    u, p = shlex.quote(user), shlex.quote(path)
    if not account.get("user"):
        show_plan("backup repository", [f"create system user {user} (no shell), home {path}"])
        yield f"useradd --system --user-group --home-dir {p} --shell /usr/sbin/nologin {u}"
    if account.get("dir") != f"{user}:{user}:750":
        show_plan("backup repository", [f"directory {path} owned by {user}, mode 750"])
        yield f"install -d -o {u} -g {u} -m 750 {p}"
    if digests.get(keys_file) != hashlib.sha256(keys_text.encode()).hexdigest():
        show_plan("backup repository", [f"authorized keys {keys_file}: {len(keys)} database host(s)"])
        yield StringCommand(write_command(keys_file, "root", "644"), _stdin=keys_text)
    if digests.get(SSHD_BACKUP_CONF) != hashlib.sha256(rules.encode()).hexdigest():
        show_plan("backup repository", [f"write {SSHD_BACKUP_CONF}", *rules.splitlines(), "sshd -t, then reload ssh"])
        c = SSHD_BACKUP_CONF
        yield StringCommand(
            f"{write_command(c, 'root', '644')}; "
            f'if ! err=$(sshd -t 2>&1); then rm -f {c}; echo "hearthdb: sshd refused {c}: $err" >&2; exit 1; fi; '
            "systemctl try-reload-or-restart ssh",
            _stdin=rules,
        )


@operation()
def postgres_directory(path: str, mode: str = "750"):
    """
    A directory of postgres's on the database host (a local repository, the dumps): owned by postgres,
    with `mode`.

    + path: the directory
    + mode: its octal mode
    """
    have = host.get_fact(RepositoryAccount, user="postgres", path=path)
    if have.get("dir") == f"postgres:postgres:{mode}":
        host.noop(f"{path} exists")
        return
    show_plan("backup directory", [f"directory {path} owned by postgres, mode {mode}"])
    yield f"install -d -o postgres -g postgres -m {shlex.quote(mode)} {shlex.quote(path)}"


def _log_newest(state, host, stanza: str, kind: str, target: Cluster, started: list[float]) -> bool:
    st = host.get_fact(BackupState, stanza=stanza, port=target.port, log=PGBACKREST_LOG, **PSQL_USER)
    entry = stanza_info(st.get("info"), stanza)
    b = newest(entry)
    took = time.monotonic() - started[0] if started else 0.0
    logger.info(f"{host.print_prefix}{kind} backup taken in {took:.1f} s: {describe(b, time.time())}")
    return b is not None


def _mark(state, host, started: list[float]) -> bool:
    started[:] = [time.monotonic()]
    return True


@operation(is_idempotent=False)
def take_backup(stanza: str, kind: str, target: Cluster, probe: str | None = None):
    """
    Take one backup now (`backup.py`) and report its label, size and time.

    + stanza: this host's stanza
    + kind: full, diff or incr
    + target: the cluster
    + probe: on an HA member, the HaState argument: the leader takes it, the other members nothing
    """
    if kind not in BACKUP_TYPES:
        raise ConfigError(f"type: {kind!r} is not one of {', '.join(BACKUP_TYPES)}")
    if not leads(probe):
        host.noop(f"not the leader: the leader backs up stanza {stanza}")
        return
    started: list[float] = []
    yield FunctionCommand(_mark, (started,), {})
    yield as_postgres(backup_command(shlex.quote(stanza), kind))
    yield FunctionCommand(_log_newest, (stanza, kind, target, started), {})


def restore_script(stanza: str, options: list[str], target: Cluster, stamp: str, own: bool = True) -> str:
    """Shell (as root): push the WAL written so far (`check`), stop the cluster, move its data directory
    aside (kept: the state before the restore), restore into a new one, start it, wait until recovery
    has ended, and fail if a database came back invalid (a DROP DATABASE half replayed)."""
    opts = " ".join(shlex.quote(o) for o in options)
    psql = f"runuser -u postgres -- psql -X -q -A -t -p {int(target.port)} -d postgres -c"
    return f"""set -eu
d=$(pg_lsclusters -h {target.shell_args} | awk '{{print $6}}')
[ -n "$d" ] || {{ echo "hearthdb: no cluster {target.key} to restore into" >&2; exit 1; }}
# nothing is stopped or moved unless the stanza has a backup to restore
runuser -u postgres -- pgbackrest --stanza={shlex.quote(stanza)} --output=json info | grep -q '"backup":\\[{{' || {{
  echo "hearthdb: stanza {stanza} has no backup in the repository to restore; nothing was changed" >&2; exit 1; }}
if pg_lsclusters -h {target.shell_args} | grep -q online; then
  # the WAL written up to now goes to the repository first: a target in the current segment is reachable
  {f"runuser -u postgres -- pgbackrest --stanza={shlex.quote(stanza)} check >&2" if own else ":"}
  pg_ctlcluster {target.shell_args} stop
fi
aside="$d.before-restore-{stamp}"
if [ -d "$d" ]; then mv "$d" "$aside"; echo "hearthdb: the data directory before the restore is kept in $aside" >&2; fi
install -d -o postgres -g postgres -m 700 "$d"
start=$(date +%s.%N)
runuser -u postgres -- pgbackrest --stanza={shlex.quote(stanza)} --pg1-path="$d" restore {opts}
pg_ctlcluster {target.shell_args} start
i=0
while [ "$({psql} 'SELECT pg_is_in_recovery()' 2>/dev/null || echo t)" != f ]; do
  i=$((i+1)); [ $i -lt 1200 ] || {{ echo "hearthdb: recovery did not end within 10 minutes" >&2; exit 1; }}
  sleep 0.5
done
# PostgreSQL marks a database invalid in place before DROP DATABASE commits: a target between the two
bad=$({psql} "SELECT string_agg(datname, ', ') FROM pg_database WHERE datconnlimit = -2")
if [ -n "$bad" ]; then
  echo "hearthdb: restored, but $bad is invalid: a DROP DATABASE was under way at the target; restore again \
with a target before the last commit that preceded it" >&2
  exit 1
fi
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {{ printf "%.1f", b - a }}')
echo "hearthdb: restored {target.key} from stanza {stanza} in $took s" >&2"""


@operation(is_idempotent=False)
def restore(stanza: str, spec: str | None, confirm: str | None, target: Cluster, own: bool = True):
    """
    Restore the cluster in place from the repository (`restore.py`): refused unless `confirm` names the
    host. The data directory before the restore is moved aside, not deleted. Debian keeps the cluster's
    configuration outside the data directory: restore.py rewrites it from the declared state first; a
    deploy afterwards converges everything else.

    + stanza: this host's stanza
    + spec: latest, a backup label, or a timestamp (`pgbackrest.restore_options`)
    + confirm: the host names the user confirmed
    + target: the cluster
    + own: whether `stanza` is this host's own (then the WAL written so far is pushed first)
    """
    check_confirmation(confirm, host.name, what="restore")
    try:
        what, options = restore_options(spec)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    show_plan(f"restore {target.key} ({what})", [f"pgbackrest --stanza={stanza} restore {' '.join(options)}"])
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    yield restore_script(stanza, options, target, stamp, own)


# WAL segments not yet in the repository and how long the oldest has waited: what a crash now would lose
WAITING_QUERY = (
    "SELECT 'waiting' || chr(9) || count(*) || chr(9) "
    "|| coalesce(extract(epoch FROM now() - min(modification))::int, 0) "
    "FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
)
DRILL_PORT_OFFSET = 10000  # the scratch cluster listens on the cluster's port + this, on the socket only


def drill_script(stanza: str, options: list[str], target: Cluster, restore_point: str | None) -> str:
    """Shell (as root) of a drill: restore into a scratch data directory with archive-mode=off (the copy
    never pushes WAL into the live repository), start it on its own port with a minimal configuration,
    wait for recovery to end, print the checksum rows of the source ('source' lines, at the restore
    point when there is one) and of the copy ('copy' lines), then stop and remove the copy."""
    port = int(target.port) + DRILL_PORT_OFFSET
    src = f"runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -p {int(target.port)}"
    cp = f"runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -p {port}"
    pg_ctl = f"runuser -u postgres -- {target.bindir}/pg_ctl"
    opts = " ".join(shlex.quote(o) for o in options)
    s = shlex.quote(stanza)
    mark = ""
    if restore_point is not None:
        rp = shlex.quote(f"SELECT pg_create_restore_point('{restore_point}')")
        mark = (
            f"{src} -d postgres -c {rp} >/dev/null\n"
            f"{checksum_script(src)} | sed 's/^/source\\t/'\n"
            # check switches WAL and waits until the segment holding the restore point is archived
            f"runuser -u postgres -- pgbackrest --stanza={s} check\n"
        )
    else:
        mark = f"runuser -u postgres -- pgbackrest --stanza={s} check\n"
    return f"""set -eu
d={shlex.quote(target.drill_directory(stanza))}
if [ -f "$d/postmaster.pid" ]; then {pg_ctl} -D "$d" stop -m immediate >/dev/null 2>&1 || true; fi
rm -rf "$d"
trap '{pg_ctl} -D "$d" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$d"' EXIT
{src} -d postgres -c {shlex.quote(WAITING_QUERY)}
{mark}libs=$({src} -d postgres -c 'SHOW shared_preload_libraries')
conns=$({src} -d postgres -c 'SHOW max_connections')
start=$(date +%s.%N)
install -d -o postgres -g postgres -m 700 "$d"
# the copy fetches WAL synchronously: an asynchronous archive-get would hold the stanza's archive lock,
# which the live cluster's asynchronous archive-push needs (its WAL would wait up to archive-timeout)
rc="pgbackrest --stanza={s} --pg1-path=$d --no-archive-async archive-get %f \\"%p\\""
runuser -u postgres -- pgbackrest --stanza={s} --pg1-path="$d" --archive-mode=off \\
  --recovery-option="restore_command=$rc" restore {opts} >&2
cat > "$d/hearthdb-drill.conf" <<EOF
port = {port}
listen_addresses = ''
unix_socket_directories = '/var/run/postgresql'
hba_file = '$d/hearthdb-drill-hba.conf'
ident_file = '$d/pg_ident.conf'
shared_preload_libraries = '$libs'
max_connections = $conns
hot_standby = off
archive_mode = off
shared_buffers = '128MB'
EOF
echo 'local all postgres peer' > "$d/hearthdb-drill-hba.conf"
chown postgres:postgres "$d/hearthdb-drill.conf" "$d/hearthdb-drill-hba.conf"
{pg_ctl} -D "$d" -o "-c config_file=$d/hearthdb-drill.conf" -l "$d/hearthdb-drill.log" -w -t 600 start >&2
i=0
while [ "$({cp} -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null || echo t)" != f ]; do
  i=$((i+1)); [ $i -lt 1200 ] || {{ echo "hearthdb: the copy's recovery did not end within 10 minutes" >&2; exit 1; }}
  sleep 0.5
done
printf 'recovered\\t%s\\n' "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {{ printf "%.2f", b - a }}')"
{checksum_script(cp)} | sed 's/^/copy\\t/'"""


def _drill(state, host, stanza: str, spec: str | None, target: Cluster, shared_database: str | None) -> bool:
    what, options = restore_options(spec)
    run_id = new_run_id()
    point = f"hearthdb-drill-{run_id}" if what == "latest" else None
    if point is not None:
        options = ["--type=name", f"--target={point}", "--target-action=promote"]
    ok, output = host.run_shell_command(StringCommand(drill_script(stanza, options, target, point)))
    lines = list(output.stdout_lines)
    if not ok:
        detail = " ".join(output.stderr_lines)[-400:]
        logger.error(f"{host.print_prefix}hearthdb: drill failed: {detail}")
        _record(
            host, [Check("drill", stanza, False, f"restore failed: {detail[:300]}")], run_id, target, shared_database
        )
        return False
    source = parse_checksums([ln.split("\t", 1)[1] for ln in lines if ln.startswith("source\t")])
    copy = parse_checksums([ln.split("\t", 1)[1] for ln in lines if ln.startswith("copy\t")])
    recovered = next((float(ln.split("\t")[1]) for ln in lines if ln.startswith("recovered\t")), 0.0)
    waiting = next((ln.split("\t")[1:] for ln in lines if ln.startswith("waiting\t")), ["0", "0"])
    rows = sum(n for n, _ in copy.values())
    report = {
        "stanza": stanza,
        "target": what,
        "recovery_seconds": recovered,
        "tables": len(copy),
        "rows": rows,
        # what a crash at the drill's start would have lost: WAL not yet in the repository
        "wal_waiting_segments": int(waiting[0]),
        "wal_waiting_seconds": int(waiting[1]),
        "checksums": {f"{db}.{t}": [n, h] for (db, t), (n, h) in sorted(copy.items())},
    }
    if point is not None:
        diffs = compare_checksums(source, copy)
        report["compared"] = len(source)
        report["differences"] = diffs
        passed, detail = not diffs, "; ".join(diffs)[:400]
        verdict = f"{len(source)} tables compared with the source: " + ("identical" if passed else detail)
    else:  # the source as of an earlier time cannot be read back: the copy is reported
        passed, detail = bool(copy), "" if copy else "the copy has no tables"
        verdict = "not compared (the source as of that time cannot be read back)"
    logger.info(
        f"{host.print_prefix}drill of stanza {stanza} ({what}): recovered in {recovered:.1f} s, "
        f"{len(copy)} tables, {rows} rows; {verdict}; WAL not yet archived at the start: "
        f"{report['wal_waiting_segments']} segments\n    drill json: {json.dumps(report, sort_keys=True)}"
    )
    _record(host, [Check("drill", stanza, passed, detail)], run_id, target, shared_database)
    return passed


def _record(host, checks: list[Check], run_id: str, target: Cluster, shared_database: str | None) -> None:
    statements = record_statements(checks, host.name, run_id, shared=shared_database is not None)
    record = SqlCommand(target.port, statements, database=shared_database or "postgres")
    host.run_shell_command(record, **record.connector_arguments)


@operation(is_idempotent=False)
def drill(stanza: str, spec: str | None, target: Cluster, shared_database: str | None, probe: str | None = None):
    """
    A restore drill (`drill.py`): restore onto a scratch cluster on this host without touching the live
    one or its repository, and prove the copy. With target latest, a restore point is made first and
    every table of the copy is compared (row count and a digest of its rows) with the source at that
    point; with a time or a label the copy's tables are reported. Recovery time, the WAL not yet archived
    when the drill began, and the verdict (a `drill` check in eng_patterns) are reported.

    + stanza: this host's stanza
    + spec: latest, a backup label, or a timestamp
    + target: the cluster
    + shared_database: where the verdict is recorded (None: postgres, hearthdb.validation_results)
    + probe: on an HA member, the HaState argument: the leader drills (it records the verdict)
    """
    try:
        what, _ = restore_options(spec)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not leads(probe):
        host.noop(f"not the leader: the leader drills stanza {stanza}")
        return
    show_plan(f"drill of stanza {stanza} ({what})", ["restore onto a scratch cluster, compare, remove it"])
    yield FunctionCommand(_drill, (stanza, spec, target, shared_database), {})
