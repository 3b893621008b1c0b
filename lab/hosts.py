"""One lab host: overlay root, network namespace, a booted systemd-nspawn, and SSH readiness."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import config, layers, net, procs, vm
from .fsutil import is_mounted, mount_overlay, remove_tree, umount_all, write
from .procs import ProcRef
from .shell import LabError
from .state import host_dir, key_path, logs_dir, ssh_config_path

SSH_TIMEOUT = 90.0  # first boots on a loaded 2-core machine can be slow; normal is ~1.5 s


def merged(name: str) -> Path:
    return host_dir(name) / "merged"


def log_path(name: str) -> Path:
    return logs_dir() / f"{name}.log"


def hosts_file(name: str, peers: list[str]) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        f"127.0.1.1\t{name}",
        "::1\t\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\t\tip6-allnodes",
        "ff02::2\t\tip6-allrouters",
        "",
        "# hearthdb lab peers",
        *(peer_line(p) for p in peers if p != name),
    ]
    return "\n".join(lines) + "\n"


def peer_line(peer: str) -> str:
    return f"{config.host_address(peer)}\t{peer}"


def network_file(name: str) -> str:
    # Static address only: no gateway and no DNS, the bridge is the hosts' whole world. The address
    # stays through a lost carrier (`isolate`, `power_kill`): a partition heals the moment the link is back.
    return (
        "[Match]\nName=eth0\n\n"
        f"[Network]\nAddress={config.host_address(name)}/{config.PREFIX_LEN}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\nIgnoreCarrierLoss=yes\nConfigureWithoutCarrier=yes\n"
    )


def create(name: str, layer: str | None, peers: list[str]) -> ProcRef:
    """Fresh upper on the cached lowers, per-host files, network, then boot (does not wait for SSH).
    On the `vm` layer: a fresh disk image with the same files, booted by QEMU (lab/vm.py)."""
    stop({name: None})  # whatever a crash or another state dir left under this name
    if layer == vm.LAYER:
        vm.ensure_packages()
        files = {
            "/etc/hostname": (f"{name}\n", 0o644),
            "/etc/hosts": (hosts_file(name, peers), 0o644),
            "/etc/systemd/network/10-eth0.network": (network_file(name), 0o644),
            "/root/.ssh/authorized_keys": (Path(f"{key_path()}.pub").read_text(), 0o600),
        }
        host_dir(name).mkdir(parents=True, exist_ok=True)
        vm.build_disk(name, files)
        log = log_path(name)
        log.unlink(missing_ok=True)
        return vm.boot(name, log)
    d = host_dir(name)
    root = merged(name)
    mount_overlay(layers.lowers(layer), d / "upper", d / "work", root)
    # Written through the mount so overlay semantics (copy-up, dir modes) stay right.
    write(root / "etc/hostname", f"{name}\n")
    write(root / "etc/hosts", hosts_file(name, peers))
    write(root / "etc/systemd/network/10-eth0.network", network_file(name))
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    write(ssh_dir / "authorized_keys", Path(f"{key_path()}.pub").read_text(), 0o600)
    net.create_host_net(name)
    return boot(name)


def boot(name: str) -> ProcRef:
    args = [
        "systemd-nspawn",
        "-D",
        str(merged(name)),
        "-M",
        name,
        "-b",
        # No systemd on the host: nothing to register with, no scope to create.
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path={config.netns_path(name)}",
        "--capability=CAP_NET_ADMIN",
        "--console=read-only",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
    ]
    env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
    log = log_path(name)
    log.unlink(missing_ok=True)
    return procs.spawn(args, log, env=env)


def add_peers(name: str, peers: list[str]) -> None:
    """Append lines for new peers to a running host's /etc/hosts, leaving anything else in it alone."""
    path = merged(name) / "etc/hosts"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    have = {line.split()[1] for line in text.splitlines() if len(line.split()) >= 2}
    new = [peer_line(p) for p in peers if p != name and p not in have]
    if new:
        write(path, text.rstrip("\n") + "\n" + "\n".join(new) + "\n")


def ssh_args(name: str, *extra: str) -> list[str]:
    return ["ssh", "-F", str(ssh_config_path()), *extra, name]


def ssh_ok(name: str, timeout: float = 3.0) -> bool:
    # No control master here: a probe must leave no process behind and must not reuse a stale socket.
    cmd = ssh_args(
        name,
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={max(1, int(timeout))}",
    )
    try:
        return (
            subprocess.run(
                [*cmd, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 2, check=False
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def wait_ssh(name: str, ref: ProcRef, timeout: float = SSH_TIMEOUT) -> float:
    """Seconds until a real `ssh NAME true` succeeds; raises if nspawn (or QEMU) dies or time runs out."""
    if vm.disk(name).exists():
        timeout = max(timeout, vm.SSH_TIMEOUT)
    started = time.monotonic()
    while True:
        # A bare TCP connect every 20 ms is far cheaper than an ssh process per try; ssh proper
        # only once sshd listens.
        if _port_open(config.host_address(name), 22) and ssh_ok(name, timeout=5):
            return time.monotonic() - started
        if not procs.alive(ref):
            raise LabError(f"{name}: systemd-nspawn (or QEMU) exited during boot; see {log_path(name)}")
        if time.monotonic() - started > timeout:
            raise LabError(f"{name}: no SSH after {timeout:.0f} s; see {log_path(name)}")
        time.sleep(0.02)


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_all(refs: dict[str, ProcRef]) -> dict[str, float]:
    with ThreadPoolExecutor(max_workers=max(1, len(refs))) as pool:
        futures = {n: pool.submit(wait_ssh, n, r) for n, r in refs.items()}
        return {n: f.result() for n, f in futures.items()}


def close_master(name: str) -> None:
    # ControlPath given explicitly: the host may already be gone from ssh_config (leftover cleanup).
    sock = config.state_dir() / f"cm-{config.host_address(name)}"
    if sock.exists():
        subprocess.run(
            ssh_args(name, "-o", f"ControlPath={sock}", "-O", "exit"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
        sock.unlink(missing_ok=True)


def stop(names_refs: dict[str, ProcRef | None]) -> None:
    """Orderly shutdown of several hosts at once (SIGTERM to nspawn), then remove all they left.

    A host with no recorded pid (state file lost, another HEARTHDB_LAB_DIR) is found through its
    network namespace: the nspawn is the parent of the processes inside it.
    """
    refs = []
    for name, ref in names_refs.items():
        close_master(name)
        refs.append(ref if procs.alive(ref) else nspawn_in_netns(name))
    procs.terminate([r for r in refs if r], timeout=20)
    for name in names_refs:
        _kill_orphaned_container(name)
        destroy_leftovers(name)


def power_kill(name: str, ref: ProcRef | None) -> None:
    """Pull the plug: SIGKILL the nspawn and the container's init, no shutdown inside. The upper dir,
    its mount and the network namespace stay, so `boot` brings the same host (and its data) back."""
    close_master(name)
    net.set_isolated(name, True)  # a dead host's NIC is gone too; its namespace alone would still answer
    procs.terminate([r for r in (ref,) if r], timeout=0, first=signal.SIGKILL)
    _kill_orphaned_container(name)
    _clean_nspawn_run(name)


def _kill_orphaned_container(name: str) -> None:
    # An nspawn killed with SIGKILL leaves its container running (systemd and all, re-parented to
    # pid 1). Killing the container's init ends its whole pid namespace.
    inside = set(procs.in_netns(config.netns_path(name)))
    roots = [procs.ref_of(p) for p in inside if procs.parent(p) not in inside]
    procs.terminate([r for r in roots if r], timeout=0, first=signal.SIGKILL)


def nspawn_in_netns(name: str) -> ProcRef | None:
    inside = set(procs.in_netns(config.netns_path(name)))
    for pid in inside:
        ppid = procs.parent(pid)
        if ppid and ppid not in inside and ppid != 1:
            return procs.ref_of(ppid)
    return None


def destroy_leftovers(name: str) -> None:
    d = host_dir(name)
    if is_mounted(merged(name)):
        umount_all(merged(name))
    net.delete_host_net(name)
    remove_tree(d)
    _clean_nspawn_run(name)


def _clean_nspawn_run(name: str) -> None:
    # nspawn leaves per-machine dirs in /run/systemd/nspawn, and /run is on disk here.
    for sub in ("propagate", "unix-export", "incoming"):
        p = Path("/run/systemd/nspawn") / sub / name
        if p.exists():
            remove_tree(p)
