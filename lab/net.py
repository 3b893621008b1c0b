"""Bridge, network namespaces and veth pairs. Every MAC is fixed (see config) so ARP never goes stale."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from . import config
from .shell import run


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_bridge() -> None:
    if not link_exists(config.BRIDGE):
        run(
            [
                "ip",
                "link",
                "add",
                config.BRIDGE,
                "address",
                config.BRIDGE_MAC,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
            ]
        )
    # Idempotent: re-asserting the address and MAC repairs a half-made bridge.
    run(["ip", "link", "set", config.BRIDGE, "address", config.BRIDGE_MAC])
    cidr = f"{config.BRIDGE_ADDRESS}/{config.PREFIX_LEN}"
    have = run(["ip", "-o", "-4", "addr", "show", "dev", config.BRIDGE]).stdout
    if f" {cidr} " not in have:
        run(["ip", "addr", "add", cidr, "dev", config.BRIDGE])
    run(["ip", "link", "set", config.BRIDGE, "up"])


def delete_bridge() -> None:
    if link_exists(config.BRIDGE):
        run(["ip", "link", "del", config.BRIDGE])


def create_host_net(name: str) -> None:
    """netns NAME with eth0 inside, its peer vNAME on the bridge."""
    delete_host_net(name)  # a clean namespace every time: a reset must not inherit routes or rules
    run(["ip", "netns", "add", name])
    veth = config.veth_host_side(name)
    run(
        [
            "ip",
            "link",
            "add",
            veth,
            "address",
            config.veth_host_mac(name),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            config.veth_guest_mac(name),
            "netns",
            name,
        ]
    )
    run(["ip", "link", "set", veth, "master", config.BRIDGE, "up"])
    # Address and links set from outside as well (networkd inside re-asserts the same address): the
    # host answers ARP from the first moment, so the SSH wait is not stretched by 1 s ARP retries.
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    run(["ip", "-n", name, "addr", "add", f"{config.host_address(name)}/{config.PREFIX_LEN}", "dev", "eth0"])
    run(["ip", "-n", name, "link", "set", "eth0", "up"])


def attach(name: str) -> None:
    veth = config.veth_host_side(name)
    if link_exists(veth):
        run(["ip", "link", "set", veth, "master", config.BRIDGE, "up"])


def set_isolated(name: str, isolated: bool) -> None:
    """Cut (or restore) a host's link to the bridge: a network partition, the host itself runs on."""
    veth = config.veth_host_side(name)
    if isolated:
        run(["ip", "link", "set", veth, "down"])
    else:
        run(["ip", "link", "set", veth, "master", config.BRIDGE, "up"])


def delete_host_net(name: str) -> None:
    path = config.netns_path(name)
    if path.exists():
        # Deleting the namespace destroys eth0 and with it the host-side veth.
        run(["ip", "netns", "del", name], check=False)
    if path.exists():
        # /run is on disk here: after a crash or reboot the name is a plain file, not a mount.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    veth = config.veth_host_side(name)
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)


def lab_netns_names() -> list[str]:
    d = Path("/run/netns")
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.name.startswith(config.HOST_PREFIX))
