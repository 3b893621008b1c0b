"""A lab host that is a real VM: Debian 13 booting Debian's own kernel under QEMU (KVM when the machine
runs it, software emulation otherwise), on the same bridge, addresses and SSH key as the containers.

Built from Debian packages only: its disk is an ext4 image made with `mkfs.ext4 -d` from the lab's
debootstrap'd base and the `vm` layer (PostgreSQL, linux-image-amd64, udev), with the host's own files
written over it; the kernel and initramfs that package installed boot it directly (no boot loader).
Nothing is downloaded but Debian packages through the lab's apt proxy.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from . import config, layers, procs
from .fsutil import mount_overlay, remove_tree, umount_all
from .procs import ProcRef
from .shell import LabError, run
from .state import host_dir

LAYER = "vm"
DISK_SIZE = "6G"  # sparse: the image holds what the root holds (~1 GB) plus what a deploy adds
MEMORY_MB = 1536
CPUS = 2
KVM_PROOF_SECONDS = 10.0  # the kernel prints its banner well within this under KVM
SSH_TIMEOUT = 600.0  # a first boot under software emulation on a loaded 2-core machine
REQUIRED = {"qemu-system-x86_64": "qemu-system-x86", "mkfs.ext4": "e2fsprogs"}


def disk(name: str) -> Path:
    return host_dir(name) / "disk.raw"


def ensure_packages() -> None:
    where = "/usr/bin:/usr/sbin:/sbin:/bin"
    missing = sorted({pkg for cmd, pkg in REQUIRED.items() if shutil.which(cmd, path=where) is None})
    if missing:  # ./dev setup installs them; a lab used on its own installs them here
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def kvm_usable() -> bool:
    """Whether QEMU can use KVM here: /dev/kvm may exist and still refuse the VM's CPU. A paused QEMU
    with the boot's machine and CPU that is still up after 2 s got its VM; one that cannot exits at once."""
    if not Path("/dev/kvm").exists():
        return False
    flags = {w for line in _text(Path("/proc/cpuinfo")).splitlines() if line.startswith("flags") for w in line.split()}
    if not flags & {"vmx", "svm"}:  # a CPU without virtualisation extensions: KVM cannot run a guest
        return False
    probe = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "q35", *accel_args(True), "-display", "none", "-nodefaults", "-S"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        probe.wait(timeout=2)
        return False
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.wait()
        return True


def build_disk(name: str, files: dict[str, tuple[str, int]]) -> None:
    """The VM's disk: the base and the vm layer, with `files` (path -> (text, mode)) written over them,
    copied into a fresh ext4 image (`mkfs.ext4 -d`: no loop device, no mount of the image)."""
    d = host_dir(name)
    build = d / "build"
    remove_tree(build)
    merged = build / "merged"
    mount_overlay(layers.lowers(LAYER), build / "upper", build / "work", merged)
    try:
        for path, (text, mode) in files.items():
            target = merged / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(mode)
        (merged / "root/.ssh").chmod(0o700)
        # the kernel mounts the root read-write (`rw`); fsck and remount by systemd as on any VM
        (merged / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
        image = disk(name)
        image.unlink(missing_ok=True)
        run(["mkfs.ext4", "-q", "-F", "-L", name, "-d", str(merged), str(image), DISK_SIZE])
    finally:
        umount_all(merged)
        remove_tree(build)


def kernel_files() -> tuple[str, str]:
    root = layers.layer_dir(LAYER)
    kernels = sorted(glob.glob(str(root / "boot/vmlinuz-*")))
    initrds = sorted(glob.glob(str(root / "boot/initrd.img-*")))
    if not kernels or not initrds:
        raise LabError(f"layer {LAYER}: no kernel or initramfs in {root}/boot")
    return kernels[-1], initrds[-1]


def create_tap(name: str) -> None:
    """The VM's NIC on the bridge: a tap named like a container's veth (so teardown removes it alike)."""
    tap = config.veth_host_side(name)
    if Path("/sys/class/net", tap).exists():
        run(["ip", "link", "del", tap], check=False)
    run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
    run(["ip", "link", "set", tap, "address", config.veth_host_mac(name)])
    run(["ip", "link", "set", tap, "master", config.BRIDGE, "up"])


def accel_args(kvm: bool) -> list[str]:
    # IA32_ARCH_CAPABILITIES hidden: some hypervisors that nest KVM refuse that MSR and QEMU aborts
    return (
        ["-accel", "kvm", "-cpu", "host,-arch-capabilities"] if kvm else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    )


def qemu_args(name: str, kvm: bool, serial_log: Path) -> list[str]:
    kernel, initrd = kernel_files()
    accel = accel_args(kvm)
    return [
        "qemu-system-x86_64",
        "-name",
        name,
        "-machine",
        "q35",
        *accel,
        "-smp",
        str(CPUS),
        "-m",
        str(MEMORY_MB),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        f"file:{serial_log}",
        "-kernel",
        kernel,
        "-initrd",
        initrd,
        "-append",
        "root=/dev/vda rw console=ttyS0 net.ifnames=0",  # not quiet: "Linux version" proves the CPU runs
        "-drive",
        f"file={disk(name)},format=raw,if=virtio,cache=unsafe",  # a disposable disk: no flushes
        "-netdev",
        f"tap,id=n0,ifname={config.veth_host_side(name)},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={config.veth_guest_mac(name)}",
        "-device",
        "virtio-rng-pci",  # entropy for sshd and TLS from the first second
    ]


def boot(name: str, log: Path) -> ProcRef:
    """QEMU in the background. With KVM first where it seems usable: a KVM nested in another hypervisor
    can accept a VM and still fail on the kernel's first instructions (an emulation failure, the vCPU
    stuck); that shows within seconds, and the VM is started again under software emulation. Which one
    runs is written to the host's `accelerator` file."""
    create_tap(name)
    serial = host_dir(name) / "console.log"
    if kvm_usable():
        ref = procs.spawn(qemu_args(name, True, serial), log)
        deadline = time.monotonic() + KVM_PROOF_SECONDS
        while time.monotonic() < deadline and procs.alive(ref):
            if "Linux version" in _text(serial):
                (host_dir(name) / "accelerator").write_text("kvm\n")
                return ref
            if "KVM internal error" in _text(log):
                break
            time.sleep(0.2)
        procs.terminate([ref], timeout=5)
        create_tap(name)
    (host_dir(name) / "accelerator").write_text("tcg\n")
    return procs.spawn(qemu_args(name, False, serial), log)


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
