"""Names, addresses, MACs and paths of the lab: pure derivations, no side effects."""

from __future__ import annotations

import os
import re
from pathlib import Path

BRIDGE = "hdbbr0"
SUBNET_PREFIX = "10.213.7"
BRIDGE_ADDRESS = f"{SUBNET_PREFIX}.1"
PREFIX_LEN = 24
PROXY_PORT = 3142
HOST_PREFIX = "hdb"
# Address 10+i must stay below the broadcast address.
MAX_HOSTS = 99
SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# Locally administered MACs (02:...) built from "hd" so they are recognisable in `ip link`.
# Fixed MACs matter: random ones leave peers' ARP caches stale for ~35 s after a reset.
_MAC_BASE = "02:68:64"
BRIDGE_MAC = f"{_MAC_BASE}:00:00:01"

_NAME_RE = re.compile(rf"^{HOST_PREFIX}([1-9][0-9]?)$")


def state_dir() -> Path:
    return Path(os.environ.get("HEARTHDB_LAB_DIR", "/var/lib/hearthdb-lab"))


def cache_dir() -> Path:
    return Path(os.environ.get("HEARTHDB_LAB_CACHE", "/var/cache/hearthdb-lab"))


def host_name(index: int) -> str:
    check_index(index)
    return f"{HOST_PREFIX}{index}"


def host_index(name: str) -> int:
    m = _NAME_RE.match(name)
    if not m:
        raise ValueError(f"not a lab host name: {name!r} (expected {HOST_PREFIX}1..{HOST_PREFIX}{MAX_HOSTS})")
    return int(m.group(1))


def check_index(index: int) -> None:
    if not 1 <= index <= MAX_HOSTS:
        raise ValueError(f"host index {index} out of range 1..{MAX_HOSTS}")


def host_address(name: str) -> str:
    return f"{SUBNET_PREFIX}.{10 + host_index(name)}"


def veth_host_side(name: str) -> str:
    # Interface names are limited to 15 characters: "v" + "hdb99" fits easily.
    return f"v{name}"


def veth_host_mac(name: str) -> str:
    return f"{_MAC_BASE}:01:00:{host_index(name):02x}"


def veth_guest_mac(name: str) -> str:
    return f"{_MAC_BASE}:02:00:{host_index(name):02x}"


def netns_path(name: str) -> Path:
    return Path("/run/netns") / name
