"""The VM scenario: a Debian 13 VM booting Debian's own kernel under QEMU (KVM where the machine runs it,
software emulation otherwise; lab/vm.py), deployed to by hearthdb over real SSH like any host, then proved
by the user's host suite. The smallest deploy, once: its cost is printed (README, "A real VM")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import api
from lab.state import host_dir

from .conftest import Run, host_suite, ssh, suite_counts

VM = "hdb20"
CONFIG: dict[str, Any] = {"ai_names": ["logos"]}


def test_vm_deploy_and_host_suite(lab_hosts: list[dict[str, Any]], deploy: Callable[..., Run], tmp_path: Path) -> None:
    started = time.monotonic()
    api.add(VM, layer="vm")
    try:
        booted = time.monotonic()
        accelerator = (host_dir(VM) / "accelerator").read_text().strip()
        kernel, virt = ssh(VM, "uname -r; systemd-detect-virt").stdout.split()
        assert kernel.endswith("+deb13-amd64") and virt in ("qemu", "kvm"), (kernel, virt)
        assert ssh(VM, "cat /proc/1/comm").stdout.strip() == "systemd"
        first = deploy([VM], CONFIG, "-y")
        assert "validation failed" not in first.stderr
        deployed = time.monotonic()
        run = host_suite([VM], CONFIG, tmp_path)
        assert run.code == 0, run.stdout[-4000:]
        assert suite_counts(run) == {"passed": 9, "deselected": 5}
        # (a rerun changing nothing is proven on the containers; here it would cost ~22 s of CI)
        print(
            f"vm ({accelerator}, kernel {kernel}): up {booted - started:.1f} s, first deploy "
            f"{deployed - booted:.1f} s, host suite {time.monotonic() - deployed:.1f} s"
        )
    finally:
        api.remove(VM)
