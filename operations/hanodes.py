"""Operations for high availability and pooling: etcd, the hand-over of a Debian cluster to Patroni,
Patroni's dynamic configuration, restarts Patroni performs, and the files of PgBouncer and HAProxy.
What they write and decide is computed in `ha.py` (pure); each operation reads the host once (HaState)."""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand

from .conffiles import write_command
from .drift import note, note_file, operation
from .facts import PgClusters
from .ha import NAMESPACE, dcs_patch
from .report import fail, show_plan
from .target import Cluster

# One python3 process (Patroni's package brings python3) reads everything an HA operation decides on:
# units, file digests, the DCS keys of the cluster and this member's Patroni REST answers.
_PROBE = r"""
import hashlib, json, subprocess, sys, urllib.request
p = json.loads(sys.argv[1])
out = {"units": {}, "digests": {}}
for u in p["units"]:
    r = subprocess.run(["systemctl", "show", "-p", "ActiveState", "-p", "UnitFileState", u],
                       capture_output=True, text=True)
    kv = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    out["units"][u] = {"active": kv.get("ActiveState") == "active", "enabled": kv.get("UnitFileState") == "enabled"}
for f in p["files"]:
    try:
        out["digests"][f] = hashlib.sha256(open(f, "rb").read()).hexdigest()
    except OSError:
        out["digests"][f] = None
out["initialized"] = out["leader"] = None
if p.get("etcd"):
    cmd = ["etcdctl", "--endpoints=" + ",".join(p["etcd"]), "--dial-timeout=2s", "--command-timeout=3s",
           "get", "--prefix", p["prefix"]]
    try:
        env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=8, env=env)
        if r.returncode == 0:
            lines = r.stdout.splitlines()
            keys = dict(zip(lines[0::2], lines[1::2]))
            out["initialized"] = (p["prefix"] + "initialize") in keys
            out["leader"] = keys.get(p["prefix"] + "leader")
    except (OSError, subprocess.TimeoutExpired):
        pass
for what in ("patroni", "config", "cluster"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{p['rest_port']}/{what}", timeout=3) as r:
            out[what] = json.loads(r.read())
    except Exception:
        out[what] = None
print(json.dumps(out))
"""


class HaState(FactBase):
    """Units, file digests, the DCS (initialised? leader?) and Patroni's REST answers, in one command.

    .. code:: python

        {"units": {"patroni@17-main.service": {"active": True, "enabled": True}},
         "digests": {"/etc/patroni/17-main.yml": "9f86..."}, "initialized": True, "leader": "db1",
         "patroni": {"role": "primary", "state": "running", "pending_restart": False, ...},
         "config": {"ttl": 20, ...}, "cluster": {"members": [...]}}
    """

    default = dict

    def command(self, probe: str) -> str:
        return f"python3 -c {shlex.quote(_PROBE)} {shlex.quote(probe)}"

    def process(self, output: list[str]) -> dict[str, Any]:
        return json.loads(output[-1]) if output else {}


def probe_args(target: Cluster, scope: str, etcd: list[str], rest_port: int, units: list[str], files: list[str]) -> str:
    """The fact's argument (one JSON string, so that pyinfra's fact key stays simple)."""
    return json.dumps(
        {
            "units": sorted(set(units)),
            "files": sorted(set(files)),
            "etcd": etcd,
            "prefix": f"{NAMESPACE}{scope}/",
            "rest_port": rest_port,
        },
        sort_keys=True,
    )


def _flat(patch: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """{"a": {"b": 1}} -> [("a.b", 1)]: one drift item per changed key."""
    out: list[tuple[str, Any]] = []
    for k, v in patch.items():
        if isinstance(v, dict) and v:
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _at(config: Any, dotted: str) -> Any:
    for k in dotted.split("."):
        config = config.get(k) if isinstance(config, dict) else None
    return config


def _digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


@operation()
def service_file(
    path: str,
    content: str,
    unit: str,
    probe: str,
    owner: str = "root",
    mode: str = "644",
    secret: bool = False,
    action: str = "restart",
    check: str | None = None,
):
    """
    A tool's configuration file and its service: the file written when its digest differs (checked first
    with `check`, `{}` standing for the new file, and kept out if refused), then the unit enabled and
    restarted (or reloaded); an unchanged file with its unit down: the unit started.

    + path, content, owner, mode, secret: the file (a secret one is never shown)
    + unit: the systemd unit that reads it
    + probe: `probe_args(...)` naming the unit and the file
    + action: "restart" or "reload" after a change
    + check: shell command validating the new file before it goes live
    """
    st = host.get_fact(HaState, probe=probe)
    unit_state = st.get("units", {}).get(unit) or {}
    digest, have = _digest(content), st.get("digests", {}).get(path)
    if have == digest:
        if unit_state.get("active") and unit_state.get("enabled"):
            host.noop(f"{path} is as declared, {unit} runs")
            return
        actual = ", ".join(f"{k} {'yes' if unit_state.get(k) else 'no'}" for k in ("active", "enabled"))
        note(unit, "active and enabled", "yes", actual)
        yield f"systemctl enable --now {shlex.quote(unit)}"
        return
    note_file(path, digest, have, secret)
    shown = [f"({len(content)} bytes, mode {mode}, owner {owner}; content not shown)"]
    show_plan(f"write {path}", shown if secret else content.rstrip("\n").splitlines())
    new = f"{path}.hearthdb-check"
    script = write_command(new, owner, mode)
    if check:
        script += f"; if ! {check.format(shlex.quote(new))} >&2; then rm -f {shlex.quote(new)}; "
        script += f"echo 'hearthdb: {path} refused by its check, previous file kept' >&2; exit 1; fi"
    script += f"; mv {shlex.quote(new)} {shlex.quote(path)}; systemctl enable {shlex.quote(unit)}"
    verb = "reload-or-restart" if action == "reload" else "restart"
    script += f"; systemctl {verb} {shlex.quote(unit)}"
    yield StringCommand(script, _stdin=content)


def leading(st: dict[str, Any]) -> bool:
    """Whether the HaState reading is of the member that leads (Patroni's role; "master" before 3.0)."""
    return (st.get("patroni") or {}).get("role") in ("primary", "master")


def wait_until(condition: str, seconds: int, what: str, unit: str | None = None) -> str:
    """Shell: poll `condition` every half second until it holds, or fail naming `what` (at once, with
    the end of its journal, when `unit` has failed)."""
    n = seconds * 2
    failed = ""
    if unit:
        u = shlex.quote(unit)
        failed = (
            f"if systemctl is-failed -q {u}; then journalctl -u {u} -n 15 --no-pager >&2; "
            f"echo 'hearthdb: {unit} failed' >&2; exit 1; fi; "
        )
    return (
        f"i=0; until {condition}; do {failed}i=$((i+1)); if [ $i -ge {n} ]; then "
        f"echo 'hearthdb: {what} not within {seconds} s' >&2; exit 1; fi; sleep 0.5; done"
    )


def _rest_ok(port: int, path: str) -> str:
    code = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    urllib.request.urlopen('http://127.0.0.1:{port}/{path}', timeout=2)\n"
        "except Exception:\n"
        "    sys.exit(1)\n"
    )
    return f"python3 -c {shlex.quote(code)}"


@operation()
def patroni_member(target: Cluster, probe: str, bootstrap: bool, rest_port: int, etcd: list[str], scope: str):
    """
    Patroni manages this member. On the bootstrapping member of a cluster the DCS does not know yet, the
    Debian cluster hearthdb created (or the single host being converted) is stopped and handed over:
    Patroni takes over its data directory and becomes the leader. Every other member waits until the
    cluster is initialised, then starts Patroni, which copies the leader (pg_basebackup) and streams.
    Debian's postgresql@ unit is disabled either way: one manager per data directory.

    + target: the cluster
    + probe: `probe_args(...)` with the Patroni and postgresql@ units
    + bootstrap: whether this is the member that bootstraps (ha.members[0])
    + rest_port: Patroni's REST port (readiness)
    + etcd, scope: where the cluster's keys are (a new member waits for `initialize`)
    """
    st = host.get_fact(HaState, probe=probe)
    patroni = st.get("units", {}).get(target.patroni_unit) or {}
    debian = st.get("units", {}).get(target.postgresql_unit) or {}
    if patroni.get("active") and patroni.get("enabled") and not debian.get("enabled"):
        host.noop(f"Patroni manages {target.key}")
        return
    unit, pg_unit = shlex.quote(target.patroni_unit), shlex.quote(target.postgresql_unit)
    stop_debian = f"systemctl disable --now {pg_unit} 2>/dev/null || true"
    if patroni.get("active"):
        yield f"{stop_debian}; systemctl enable {unit}"
        return
    if bootstrap and not st.get("initialized"):
        show_plan(
            "hand over to Patroni", [f"stop {target.postgresql_unit}; Patroni takes over {target.data_directory}"]
        )
        yield StringCommand(
            f"set -eu; pg_ctlcluster {target.shell_args} stop 2>/dev/null || true; {stop_debian}; "
            f"systemctl enable --now {unit}; "
            + wait_until(_rest_ok(rest_port, "primary"), 90, "Patroni leading", target.patroni_unit)
        )
        return
    key = f"{NAMESPACE}{scope}/initialize"
    initialized = (
        f"ETCDCTL_API=3 etcdctl --endpoints={shlex.quote(','.join(etcd))} --dial-timeout=2s get "
        f"--print-value-only {shlex.quote(key)} 2>/dev/null | grep -q ."
    )
    show_plan("join the Patroni cluster", [f"copy the leader into {target.data_directory}, then stream"])
    yield StringCommand(
        "set -eu; "
        + wait_until(initialized, 180, "the cluster initialised by its first member")
        + f"; {stop_debian}; systemctl enable --now {unit}; "
        + wait_until(
            _rest_ok(rest_port, "health"), 600, "this member running (copied from the leader)", target.patroni_unit
        )
    )


@operation()
def dcs_config(desired: dict[str, Any], probe: str, rest_port: int):
    """
    Patroni's dynamic configuration (`PATCH /config`) by difference, from the leader only: every member
    reads it from the DCS. Parameters that need a restart are then pending on each member (`restarts`).

    + desired: `ha.dcs_config(...)`
    + probe: `probe_args(...)`
    + rest_port: Patroni's REST port
    """
    st = host.get_fact(HaState, probe=probe)
    if not leading(st):
        host.noop("dynamic configuration: set from the leader")
        return
    patch = dcs_patch(desired, st.get("config"))
    if not patch:
        host.noop("Patroni's dynamic configuration is as declared")
        return
    for key, value in _flat(patch):
        note("Patroni dynamic configuration", key, json.dumps(value), json.dumps(_at(st.get("config"), key)))
    body = json.dumps(patch, sort_keys=True)
    show_plan("Patroni dynamic configuration", [body])
    code = (
        "import sys, urllib.request\n"
        f"r = urllib.request.Request('http://127.0.0.1:{rest_port}/config', data=sys.stdin.buffer.read(), "
        "method='PATCH', headers={'Content-Type': 'application/json'})\n"
        "urllib.request.urlopen(r, timeout=10).read()\n"
    )
    # members apply it on their next loop; wait for it to be this member's before later operations read
    yield StringCommand(f"python3 -c {shlex.quote(code)} && sleep 1", _stdin=body)


@operation()
def pending_restart(target: Cluster, probe: str, scope: str, leader: bool):
    """
    Restart this member through Patroni when a changed parameter needs it (`pending_restart`): replicas
    in one operation, the leader in the next, so the cluster is never down as a whole.

    + target, probe, scope: the cluster and its member
    + leader: this operation's turn (False: replicas, True: the leader)
    """
    st = host.get_fact(HaState, probe=probe)
    me = st.get("patroni") or {}
    is_leader = leading(st)
    if not me.get("pending_restart") or is_leader != leader:
        host.noop("no restart pending")
        return
    note(f"member {host.name}", "restart pending", "no", "yes")
    yield (
        f"patronictl -c {shlex.quote(target.patroni_config)} restart {shlex.quote(scope)} "
        f"{shlex.quote(host.name)} --pending --force"
    )


@operation()
def debian_running(target: Cluster, probe: str, bootstrap: bool):
    """
    Before Patroni takes over, the bootstrapping member's cluster runs as Debian runs it, so that its
    roles (the replication role among them) are in place when the other members copy it.

    + target, probe: the cluster and the HaState argument
    + bootstrap: whether this member bootstraps
    """
    st = host.get_fact(HaState, probe=probe)
    patroni = (st.get("units") or {}).get(target.patroni_unit) or {}
    if not bootstrap or st.get("initialized") or patroni.get("active"):
        host.noop(f"cluster {target.key}: run by Patroni")
        return
    clusters = host.get_fact(PgClusters)
    if (clusters.get(target.key) or {}).get("online"):
        host.noop(f"cluster {target.key} is running")
        return
    note(f"cluster {target.key}", "running", "yes", "no")
    yield f"pg_ctlcluster {target.shell_args} start"


@operation()
def switchover(target: Cluster, probe: str, scope: str, to: str):
    """
    A planned switchover through Patroni, from the leader (other members: nothing to do); it waits until
    `to` leads. Refused when `to` already leads or is not a streaming member.

    + target, probe, scope: the cluster
    + to: the member that takes over
    """
    st = host.get_fact(HaState, probe=probe)
    if not leading(st):
        host.noop("not the leader: the leader hands over")
        return
    if host.name == to:
        host.noop(f"{to} leads already")
        return
    members = {m.get("name"): m for m in (st.get("cluster") or {}).get("members") or []}
    if (members.get(to) or {}).get("state") != "streaming":
        state_of = (members.get(to) or {}).get("state", "not a member")
        yield fail(f"switchover: {to} is {state_of}, not a streaming replica; nothing was changed")
        return
    sync = [n for n, m in members.items() if m.get("role") == "sync_standby"]
    if sync and to not in sync:
        yield fail(
            f"switchover: in synchronous mode only the synchronous standby ({', '.join(sync)}) can take over "
            f"without losing a commit, not {to}; nothing was changed"
        )
        return
    show_plan("switchover", [f"{host.name} hands the leadership of {scope} to {to}"])
    # patronictl exits 0 even when Patroni refuses: success is the leader key naming `to`
    leader_is = (
        f"patronictl -c {shlex.quote(target.patroni_config)} list {shlex.quote(scope)} -f json | "
        f"python3 -c {shlex.quote(_LEADS)} {shlex.quote(to)}"
    )
    yield StringCommand(
        f"set -eu; patronictl -c {shlex.quote(target.patroni_config)} switchover {shlex.quote(scope)} "
        f"--leader {shlex.quote(host.name)} --candidate {shlex.quote(to)} --force >&2; "
        + wait_until(leader_is, 60, f"{to} leading and running")
    )


_LEADS = (
    "import json, sys\n"
    "m = {x['Member']: x for x in json.load(sys.stdin)}\n"
    "me = m.get(sys.argv[1], {})\n"
    "sys.exit(0 if me.get('Role') == 'Leader' and me.get('State') == 'running' else 1)\n"
)
