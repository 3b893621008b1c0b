"""apt-cacher-ng on 127.0.0.1 and the bridge address, run as its own user and tracked by pid.

Never run the binary as root, not even with --help: it ignores the flag, starts a root daemon on all
interfaces and leaves root-owned logs that break the next proper start.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from . import config, procs
from .fsutil import write
from .preflight import which
from .procs import ProcRef
from .shell import LabError, say
from .state import LabState, logs_dir

USER = "apt-cacher-ng"


def cache_path() -> Path:
    # Under the lab cache so it survives `down` and keeps rebuilds of the base warm.
    return config.cache_dir() / "apt-cacher-ng"


def run_dir() -> Path:
    return config.state_dir() / "run"


def url() -> str:
    """Proxy URL as the test hosts see it."""
    return f"http://{config.BRIDGE_ADDRESS}:{config.PROXY_PORT}"


def local_url() -> str:
    """Proxy URL for builds that share the host's network (debootstrap, layer builds)."""
    return f"http://127.0.0.1:{config.PROXY_PORT}"


def ensure(st: LabState) -> None:
    if not procs.alive(st.proxy):
        st.proxy = from_pid_file()  # ours, though the state file forgot it
    if procs.alive(st.proxy):
        return
    binary = which("apt-cacher-ng")
    if binary is None:
        raise LabError("apt-cacher-ng is not installed")
    if _port_open("127.0.0.1"):
        raise LabError(
            f"port {config.PROXY_PORT} on 127.0.0.1 is taken by a process the lab did not start "
            "(a system apt-cacher-ng?); stop it first"
        )
    log_dir = logs_dir() / "apt-cacher-ng"
    for d in (cache_path(), log_dir, run_dir()):
        d.mkdir(parents=True, exist_ok=True)
        shutil.chown(d, USER, USER)
    pid_file = run_dir() / "apt-cacher-ng.pid"
    pid_file.unlink(missing_ok=True)
    conf = run_dir() / "apt-cacher-ng-conf"
    # Our own config, not /etc/apt-cacher-ng: the packaged one remaps Debian URLs to a default backend
    # (ftp.debian.org) that may not resolve where deb.debian.org does. With no Remap rules it is a plain
    # caching proxy for exactly the URLs the hosts' sources name.
    write(
        conf / "acng.conf",
        "\n".join(
            [
                f"CacheDir: {cache_path()}",
                f"LogDir: {log_dir}",
                "SupportDir: /usr/lib/apt-cacher-ng",
                f"Port: {config.PROXY_PORT}",
                f"BindAddress: 127.0.0.1 {config.BRIDGE_ADDRESS}",
                f"PidFile: {pid_file}",
                f"SocketPath: {run_dir() / 'apt-cacher-ng.socket'}",
                "ForeGround: 1",
                "ExThreshold: 4",
                "",
            ]
        ),
    )
    args = [binary, "-c", str(conf)]
    started = time.monotonic()
    # Popen(user=...) drops to the proxy's user before exec, like runuser, but the pid we keep is the
    # daemon's own.
    ref: ProcRef = procs.spawn(
        args,
        log_dir / "stdout.log",
        user=USER,
        group=USER,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(cache_path())},
    )
    st.proxy = ref
    while not (_port_open("127.0.0.1") and _port_open(config.BRIDGE_ADDRESS)):
        if not procs.alive(ref):
            raise LabError(f"apt-cacher-ng exited at start; see {log_dir}")
        if time.monotonic() - started > 15:
            raise LabError(f"apt-cacher-ng did not listen on port {config.PROXY_PORT} within 15 s; see {log_dir}")
        time.sleep(0.05)
    say(f"apt proxy: pid {ref['pid']} on 127.0.0.1 and {config.BRIDGE_ADDRESS}:{config.PROXY_PORT}")


def stop(st: LabState) -> None:
    if not procs.alive(st.proxy):
        st.proxy = from_pid_file()
    if st.proxy and procs.alive(st.proxy):
        procs.terminate([st.proxy], timeout=10)
        say(f"apt proxy: stopped pid {st.proxy['pid']}")
    st.proxy = None
    (run_dir() / "apt-cacher-ng.pid").unlink(missing_ok=True)


def from_pid_file() -> ProcRef | None:
    """The daemon named by the pid file it wrote in our run dir, if that pid is still apt-cacher-ng."""
    try:
        pid = int((run_dir() / "apt-cacher-ng.pid").read_text().split()[0])
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError, IndexError):
        return None
    return procs.ref_of(pid) if os.path.basename(exe) == "apt-cacher-ng" else None


def _port_open(addr: str) -> bool:
    try:
        with socket.create_connection((addr, config.PROXY_PORT), timeout=0.5):
            return True
    except OSError:
        return False
