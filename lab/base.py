"""The cached Debian 13 base root: debootstrap'd once through the apt proxy, shared read-only as the
lowest overlay layer of every host."""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import config, proxy
from .fsutil import remove_tree, write
from .preflight import which
from .shell import LabError, run, say
from .state import logs_dir

# Bump when the configure recipe below changes: the next `up` rebuilds the base (and its layers).
BASE_VERSION = 2

INCLUDE = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "python3",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "gnupg",
]

# Units that only cost boot time or fail in a container with no console.
MASK = [
    "systemd-firstboot.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "getty@tty1.service",
    "console-getty.service",
]

POLICY_RC_D = "usr/sbin/policy-rc.d"

# Builds share the host's network and so use the proxy at 127.0.0.1, whatever the image's apt.conf says.
APT_FN = 'aget() { apt-get -o Acquire::http::Proxy="$http_proxy" "$@"; }'


def base_dir() -> Path:
    return config.cache_dir() / f"base-v{BASE_VERSION}"


def ensure_base() -> Path:
    target = base_dir()
    if target.is_dir():
        return target
    started = time.monotonic()
    say(f"building base image {target} (debootstrap {config.SUITE} through the apt proxy, ~1-2 min)")
    build = target.with_name(target.name + ".build")
    remove_tree(build)
    log = logs_dir() / "base-build.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, http_proxy=proxy.local_url(), DEBIAN_FRONTEND="noninteractive")
    debootstrap = which("debootstrap")
    if debootstrap is None:
        raise LabError("debootstrap is not installed")
    try:
        run(
            [debootstrap, "--variant=minbase", f"--include={','.join(INCLUDE)}", config.SUITE, build, config.MIRROR],
            env=env,
            log=log,
        )
        configure(build, log)
    except BaseException:
        remove_tree(build)  # debootstrap may leave /proc and /sys mounted inside: never rm across them
        raise
    os.replace(build, target)
    say(f"base image built in {time.monotonic() - started:.1f} s")
    return target


def configure(root: Path, log: Path) -> None:
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    signed = (
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        if (root / "usr/share/keyrings/debian-archive-keyring.gpg").exists()
        else ""
    )
    s = config.SUITE
    write(
        root / "etc/apt/sources.list.d/debian.sources",
        f"Types: deb\nURIs: {config.MIRROR}\nSuites: {s} {s}-updates\nComponents: main\n{signed}\n"
        f"Types: deb\nURIs: {config.SECURITY_MIRROR}\nSuites: {s}-security\nComponents: main\n{signed}",
    )
    # Hosts have no route off the bridge: every package comes through the proxy on the bridge address.
    write(root / "etc/apt/apt.conf.d/01hearthdb-lab-proxy", f'Acquire::http::Proxy "{proxy.url()}";\n')
    write(root / "etc/fstab", "")
    # Empty machine-id: systemd fills in a fresh one at each host's first boot and keeps it in the upper.
    write(root / "etc/machine-id", "", 0o444)
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # No nameserver at all: an unanswered one costs 5 s per sudo/ssh lookup. Names come from /etc/hosts.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    write(resolv, "# hearthdb lab: no DNS; lab host names are in /etc/hosts\n")
    write(root / "etc/hostname", "localhost\n")
    write(root / POLICY_RC_D, "#!/bin/sh\nexit 101\n", 0o755)
    script = "; ".join(
        [
            "set -e",
            APT_FN,
            "aget update",
            "aget -y -o Dpkg::Options::=--force-confold upgrade",
            "systemctl enable systemd-networkd",
            f"systemctl mask {' '.join(MASK)}",
            "apt-get clean",
        ]
    )
    nspawn_run(root, script, log, proxy_url=proxy.local_url())
    (root / POLICY_RC_D).unlink(missing_ok=True)
    for p in (root / "var/log").rglob("*"):
        if p.is_file():
            p.unlink()


def nspawn_run(root: Path, script: str, log: Path, proxy_url: str) -> None:
    """Run a shell script in `root` without booting it, on the host's network (to reach 127.0.0.1)."""
    run(
        [
            "systemd-nspawn",
            "-q",
            "-D",
            root,
            "--register=no",
            "--keep-unit",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            f"--setenv=http_proxy={proxy_url}",
            "--setenv=DEBIAN_FRONTEND=noninteractive",
            "/bin/sh",
            "-c",
            script,
        ],
        env=dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1"),
        log=log,
    )
