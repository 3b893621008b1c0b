"""End-to-end lab tests: three real hosts brought up and torn down by this module (needs root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import api, base, config, procs, state

pytestmark = pytest.mark.lab

N = 3
CLI = [sys.executable, "-m", "lab.cli"]


def ssh(name: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return api.ssh(name, command, check=check, timeout=60)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # Output captured through pipes: if a daemon inherited them, this would hang until the timeout.
    return subprocess.run(
        [*CLI, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[list[dict]]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root")
    # Through the CLI with captured output: hangs (until the timeout) if a daemon kept our pipes.
    result = cli("up", str(N))
    assert result.returncode == 0, result.stderr
    yield api.hosts()
    api.down()


def test_hosts_json_and_ssh_config_list_running_hosts(lab: list[dict]) -> None:
    names = [f"hdb{i}" for i in range(1, N + 1)]
    assert [h["name"] for h in lab][:N] == names
    on_disk = json.loads(state.hosts_json_path().read_text())
    assert on_disk == api.hosts()
    assert {
        "name": "hdb1",
        "address": "10.213.7.11",
        "user": "root",
        "port": 22,
        "key": str(state.key_path()),
    } in on_disk
    cfg = api.ssh_config_path().read_text()
    for name in names:
        assert f"Host {name}\n" in cfg


def test_hosts_boot_systemd_with_their_own_names(lab: list[dict]) -> None:
    for h in lab:
        out = ssh(h["name"], "hostname; systemctl is-system-running").stdout.split()
        assert out == [h["name"], "running"]


def test_hosts_reach_each_other_by_name_and_address(lab: list[dict]) -> None:
    out = ssh("hdb1", "getent hosts hdb2 hdb3").stdout
    assert "10.213.7.12" in out and "10.213.7.13" in out
    ssh("hdb1", "ping -c1 -W2 hdb2 && ping -c1 -W2 10.213.7.13")
    ssh("hdb3", "ping -c1 -W2 hdb1")
    # A TCP connection to a peer's sshd, by name.
    ssh("hdb1", "timeout 5 bash -c 'exec 3<>/dev/tcp/hdb2/22 && head -c 7 <&3' | grep -q SSH-2.0")


def test_hosts_fetch_packages_through_the_proxy(lab: list[dict]) -> None:
    # The hosts have no route off the bridge: the apt proxy on the bridge address is their only way out.
    ssh("hdb2", "apt-config dump | grep -q 'Acquire::http::Proxy \"http://10.213.7.1:3142\"'")
    probe = (
        'python3 -c "import urllib.request as u; o=u.build_opener(u.ProxyHandler('
        "{'http': 'http://10.213.7.1:3142'})); "
        "print(o.open('http://deb.debian.org/debian/dists/trixie/InRelease', timeout=30).status)\""
    )
    assert ssh("hdb2", probe).stdout.strip() == "200"
    assert ssh("hdb2", "ip route").stdout.count("default") == 0


def test_up_again_is_a_noop(lab: list[dict]) -> None:
    before = state.load().hosts
    result = cli("up", str(N))
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    after = state.load().hosts
    assert {n: h.proc for n, h in after.items()} == {n: h.proc for n, h in before.items()}


def test_reset_gives_a_fresh_upper(lab: list[dict]) -> None:
    ssh("hdb2", "echo dirty > /root/marker")
    old_pid = state.load().hosts["hdb2"].proc["pid"]
    entry = api.reset("hdb2")
    assert entry["name"] == "hdb2"
    assert state.load().hosts["hdb2"].proc["pid"] != old_pid
    assert ssh("hdb2", "test -e /root/marker", check=False).returncode == 1
    assert ssh("hdb2", "systemctl is-system-running").stdout.strip() == "running"
    # Fixed MACs: a peer reaches the new incarnation at once, no stale ARP entry.
    ssh("hdb1", "ping -c1 -W2 hdb2")


def test_postgresql_layer_has_packages_but_no_cluster(lab: list[dict]) -> None:
    name = f"hdb{N + 1}"
    if name in {h["name"] for h in api.hosts()}:  # left up by an earlier module (test_ha's members)
        api.reset(name, layer="postgresql")
    else:
        api.up(N + 1, layer="postgresql")
    ssh(name, "dpkg-query -W postgresql-17 postgresql-17-pgvector")
    assert ssh(name, "pg_lsclusters --no-header").stdout.strip() == ""
    api.reset(name)  # the layer is remembered per host
    ssh(name, "test -x /usr/lib/postgresql/17/bin/postgres")


def test_up_recovers_a_host_whose_nspawn_was_killed(lab: list[dict]) -> None:
    ref = state.load().hosts["hdb3"].proc
    netns = config.netns_path("hdb3")
    # The container's own processes outlive a SIGKILLed nspawn: up must find and end them too.
    orphans = [r for r in map(procs.ref_of, procs.in_netns(netns)) if r]
    assert orphans
    os.kill(ref["pid"], signal.SIGKILL)
    # kill() returns before the process has gone; up is run once it is dead, as after a real crash
    deadline = time.monotonic() + 10
    while procs.alive(ref) and time.monotonic() < deadline:
        time.sleep(0.05)
    api.up(N)
    assert not procs.alive(ref)
    assert not any(procs.alive(r) for r in orphans)
    assert ssh("hdb3", "systemctl is-system-running").stdout.strip() == "running"
    ssh("hdb1", "ping -c1 -W2 hdb3")


def test_power_kill_then_power_on_keeps_the_disk(lab: list[dict]) -> None:
    ssh("hdb3", "echo kept > /root/marker; sync")
    api.power_kill("hdb3")
    assert not procs.alive(state.load().hosts["hdb3"].proc)
    assert ssh("hdb1", "ping -c1 -W1 hdb3", check=False).returncode != 0
    api.power_on("hdb3")
    assert ssh("hdb3", "cat /root/marker").stdout.strip() == "kept"
    assert ssh("hdb3", "systemctl is-system-running --wait").stdout.strip() == "running"
    ssh("hdb1", "ping -c1 -W2 hdb3")


def test_isolate_cuts_a_host_off_and_rejoin_brings_it_back(lab: list[dict]) -> None:
    api.isolate("hdb2")
    assert ssh("hdb1", "ping -c1 -W1 hdb2", check=False).returncode != 0
    pid = state.load().hosts["hdb2"].proc
    assert procs.alive(pid)  # partitioned, still running
    api.isolate("hdb2", False)
    ssh("hdb1", "ping -c1 -W2 hdb2")
    assert ssh("hdb2", "uptime").returncode == 0


def test_status_exits_zero(lab: list[dict]) -> None:
    result = cli("status")
    assert result.returncode == 0, result.stderr
    assert "hdb1" in result.stdout and "10.213.7.11" in result.stdout


def _lab_overlay_mounts() -> list[str]:
    root = str(config.state_dir())
    return [line for line in Path("/proc/self/mounts").read_text().splitlines() if line.split()[1].startswith(root)]


def test_down_leaves_nothing_behind_and_is_idempotent(lab: list[dict]) -> None:
    st = state.load()
    refs = [h.proc for h in st.hosts.values()] + ([st.proxy] if st.proxy else [])
    assert refs and all(procs.alive(r) for r in refs)
    result = cli("down")
    assert result.returncode == 0, result.stderr
    assert not any(procs.alive(r) for r in refs)
    run_netns = Path("/run/netns")
    assert not (run_netns.is_dir() and [p for p in run_netns.iterdir() if p.name.startswith("hdb")])
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "hdb" not in netns
    assert _lab_overlay_mounts() == []
    assert not Path("/sys/class/net", config.BRIDGE).exists()
    assert not [p for p in Path("/sys/class/net").iterdir() if p.name.startswith("vhdb")]
    assert not Path("/run/systemd/nspawn").exists()
    assert not list(config.state_dir().glob("cm-*"))
    assert json.loads(state.hosts_json_path().read_text()) == []
    assert api.hosts() == []
    again = cli("down")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    # The caches stay, so the next `up` is fast.
    assert base.base_dir().is_dir()
