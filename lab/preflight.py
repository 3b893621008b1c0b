"""Checks and installs that must pass before the lab touches anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .shell import LabError, run, say

# Command the lab calls -> Debian package that ships it.
REQUIRED_COMMANDS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "apt-cacher-ng": "apt-cacher-ng",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("must run as root (it mounts overlays, creates network namespaces and boots containers)")


def require_kernel() -> None:
    if not _has_overlay():
        raise LabError("kernel has no overlay filesystem (modprobe overlay failed); the lab cannot run here")
    if not Path("/proc/self/ns/net").exists():
        raise LabError("kernel has no network namespaces (/proc/self/ns/net missing); the lab cannot run here")


def _has_overlay() -> bool:
    if "overlay" in Path("/proc/filesystems").read_text():
        return True
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
    return "overlay" in Path("/proc/filesystems").read_text()


def which(cmd: str) -> str | None:
    # Non-login root shells may lack sbin in PATH; apt-cacher-ng and debootstrap live there.
    return shutil.which(cmd) or shutil.which(cmd, path=os.pathsep.join(_SBIN))


def missing_packages() -> list[str]:
    return sorted({pkg for cmd, pkg in REQUIRED_COMMANDS.items() if which(cmd) is None})


def ensure_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    say(f"installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update"], env=env)
    # A fresh apt-cacher-ng install would start a root-wide daemon on port 3142 (no systemd here means
    # its init script runs): forbid service starts for the duration unless a policy already exists.
    policy = Path("/usr/sbin/policy-rc.d")
    added = not policy.exists()
    if added:
        policy.write_text("#!/bin/sh\n# hearthdb-lab: no service starts during its package install\nexit 101\n")
        policy.chmod(0o755)
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)
    finally:
        if added:
            policy.unlink(missing_ok=True)
    still = missing_packages()
    if still:
        raise LabError(f"packages installed but commands still missing: {' '.join(still)}")
