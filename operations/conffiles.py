"""postgresql.conf (a conf.d file) and pg_hba.conf: written only when their content differs, checked by
the server before it ever reads them, put back when refused; then reload, or restart only when a
changed parameter needs it (`pg_settings.pending_restart`)."""

from __future__ import annotations

import hashlib
import re
import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand

from .drift import note_file, operation
from .facts import PgClusters
from .report import show_plan
from .target import Cluster

# How the server checks a file before it goes live. Settings: `postgres -C` parses the whole
# configuration as a starting server would (every value, restart-context ones included) and exits 1
# naming the bad one; pg_file_settings cannot tell a bad value from a pending restart. pg_hba:
# pg_hba_file_rules reads the file on disk fresh.
HBA_CHECK = (
    "SELECT string_agg('line ' || line_number || ': ' || error, '; ') FROM pg_hba_file_rules WHERE error IS NOT NULL"
)


class FileDigests(FactBase):
    """sha256 of each named file, None where it does not exist.

    .. code:: python

        {"/etc/postgresql/17/main/pg_hba.conf": "9f86d0...", "/etc/x": None}
    """

    default = dict

    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return f'for f in {quoted}; do if [ -f "$f" ]; then sha256sum "$f"; else echo "- $f"; fi; done'

    def process(self, output: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for line in output:
            digest, _, path = line.partition(" ")
            out[path.strip().lstrip("*")] = None if digest == "-" else digest
        return out


def digest_of(path: str) -> str | None:
    """The sha256 of `path` on the host, read now."""
    return host.get_fact(FileDigests, paths=[path]).get(path)


def install_script(path: str, kind: str, target: Cluster, data_directory: str, restart: str | None = None) -> str:
    """Shell script (run as root) that installs stdin as `path`, or puts the old file back. Before the
    cluster exists (a Patroni member waiting for its copy) or while it is stopped, the server cannot
    check the file: it is checked when the cluster starts."""
    psql = f"runuser -u postgres -- psql -X -q -A -t -p {int(target.port)} -d postgres -c"
    if kind == "settings":
        check = (
            f"[ ! -f {shlex.quote(data_directory)}/PG_VERSION ] || "
            f"out=$(runuser -u postgres -- {target.bindir}/postgres -D {shlex.quote(data_directory)} "
            f"-c config_file={shlex.quote(target.postgresql_conf)} -C server_version_num 2>&1 >/dev/null) "
            "|| {{ err=$(printf '%s\\n' \"$out\" | grep -v FATAL | sed 's/^.*LOG: *//' | tr '\\n' ' '); "
            '[ -n "$err" ] || err="postgres -C failed: $out"; }}'.replace("{{", "{").replace("}}", "}")
        )
    else:
        check = (
            f"! pg_lsclusters -h {target.shell_args} 2>/dev/null | grep -q online || "
            f'err=$({psql} {shlex.quote(HBA_CHECK)}) || err="the server could not check the file"'
        )
    return f"""set -eu
f={shlex.quote(path)}
[ -d "${{f%/*}}" ] || install -d -o postgres -g postgres -m 755 "${{f%/*}}"
umask 077
cat > "$f.hearthdb-new"
chown postgres:postgres "$f.hearthdb-new"
chmod 640 "$f.hearthdb-new"
if [ -e "$f" ]; then cp -p "$f" "$f.hearthdb-prev"; else rm -f "$f.hearthdb-prev"; fi
mv "$f.hearthdb-new" "$f"
err=""
{check}
if [ -n "$err" ]; then
  if [ -e "$f.hearthdb-prev" ]; then mv "$f.hearthdb-prev" "$f"; else rm -f "$f"; fi
  echo "hearthdb: {kind} refused by PostgreSQL, previous file kept: $err" >&2
  exit 1
fi
rm -f "$f.hearthdb-prev"
# a stopped cluster reads the file when it starts
pg_lsclusters -h {target.shell_args} 2>/dev/null | grep -q online || exit 0
{reload_script(target, restart)}"""


def reload_script(target: Cluster, restart: str | None = None) -> str:
    """Shell lines (run as root) that reload the running cluster, wait until it has, and restart it only
    when a changed parameter needs a restart (`pg_settings.pending_restart`): with `restart`, a command
    of its manager (Patroni's), else pg_ctlcluster."""
    psql = f"runuser -u postgres -- psql -X -q -A -t -p {int(target.port)} -d postgres -c"
    return f"""before=$({psql} 'SELECT pg_conf_load_time()')
{psql} 'SELECT pg_reload_conf()' >/dev/null
i=0
while [ $i -lt 100 ] && [ "$({psql} 'SELECT pg_conf_load_time()')" = "$before" ]; do i=$((i+1)); sleep 0.05; done
pending=$({psql} "SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")
if [ -n "$pending" ]; then
  echo "hearthdb: restarting {target.key} for $pending" >&2
  {restart or f"pg_ctlcluster {target.shell_args} restart"}
fi"""


@operation()
def config_file(content: str, kind: str, target: Cluster, restart: str | None = None):
    """
    Install a PostgreSQL configuration file the server validates first.

    + content: the rendered file
    + kind: "settings" (the cluster's conf.d file) or "hba" (its pg_hba.conf): also how it is checked
    + target: the cluster that checks, reloads or restarts
    + restart: how a pending restart is done when pg_ctlcluster must not (a Patroni member)
    """
    path = target.conf_d_file if kind == "settings" else target.hba_file
    digest = hashlib.sha256(content.encode()).hexdigest()
    have = digest_of(path)
    if have == digest:
        host.noop(f"{path} is as declared")
        return
    note_file(path, digest, have, False)
    show_plan(f"{kind}: write {path}", content.rstrip("\n").splitlines())
    data_directory = (host.get_fact(PgClusters).get(target.key) or {}).get("data_directory", target.data_directory)
    yield StringCommand(install_script(path, kind, target, data_directory, restart), _stdin=content)


@operation()
def installed_file(
    path: str,
    content: str,
    owner: str = "postgres",
    mode: str = "600",
    secret: bool = True,
):
    """
    Install a file (and its directory), sent on stdin, written only when its digest differs. A
    secret file (a TLS key) is never shown in any output, not even with `--diff`.

    + path: where on the host
    + content: the file's text
    + owner: owning user (and group)
    + mode: octal file mode
    + secret: whether `--dry` may show the content
    """
    digest = hashlib.sha256(content.encode()).hexdigest()
    have = digest_of(path)
    if have == digest:
        host.noop(f"{path} is as declared")
        return
    if not re.fullmatch(r"[0-7]{3,4}", mode) or not re.fullmatch(r"[a-z_][a-z0-9_-]*", owner):
        raise ValueError(f"installed_file: bad mode {mode!r} or owner {owner!r}")
    note_file(path, digest, have, secret)
    shown = [f"({len(content)} bytes, mode {mode}, owner {owner}; content not shown)"]
    show_plan(f"write {path}", shown if secret else content.rstrip("\n").splitlines())
    yield StringCommand(write_command(path, owner, mode), _stdin=content)


def write_command(path: str, owner: str, mode: str) -> str:
    """Shell (as root) that writes stdin to `path` whole: into a new file only root can read, owner and
    mode set, then renamed over the old one; its directory is made if missing."""
    p, d = shlex.quote(path), shlex.quote(path.rsplit("/", 1)[0] or "/")
    return (
        f"set -eu; (umask 022; mkdir -p {d}); umask 077; cat > {p}.hearthdb-new; "
        f"chown {owner}:{owner} {p}.hearthdb-new; chmod {mode} {p}.hearthdb-new; mv {p}.hearthdb-new {p}"
    )
