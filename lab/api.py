"""In-process API of the lab (pytest fixtures call these; the CLI is a thin shell around them)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from . import base, config, layers, net, preflight, procs, proxy, state
from . import hosts as hostmod
from .fsutil import remove_tree
from .shell import LabError, run, say, warn
from .state import HostState, LabState


def up(n: int = 1, layer: str | None = None) -> list[dict[str, Any]]:
    """Make hosts hdb1..hdbN run (only the missing ones are created). Returns hosts()."""
    _preflight()
    config.check_index(n)
    if layer is not None:
        layers.layer_dir(layer)  # raises LabError for an unknown name, before anything is touched
    with state.locked():
        preflight.ensure_packages()
        _ensure_key()
        st = state.load()
        _forget_dead(st)
        wanted = [config.host_name(i) for i in range(1, n + 1)]
        missing = [w for w in wanted if w not in st.hosts]
        if not missing and procs.alive(st.proxy) and net.link_exists(config.BRIDGE):
            say(f"all {n} host(s) already up; nothing to do")
            state.save(st)
            return hosts()
        started = time.monotonic()
        net.ensure_bridge()
        for name in st.hosts:
            net.attach(name)  # in case the bridge was deleted and made again under running hosts
        proxy.ensure(st)
        state.save(st)
        base.ensure_base()
        if layer:
            layers.ensure_layer(layer)
        layers.drop_stale()
        peers = sorted(set(st.hosts) | set(wanted), key=config.host_index)
        for name in st.hosts:
            hostmod.add_peers(name, peers)
        refs = {}
        for name in missing:
            refs[name] = hostmod.create(name, layer, peers)
            st.hosts[name] = HostState(proc=refs[name], layer=layer)
            state.save(st)  # recorded at once, so `down` can clean up even if the boot wait fails
        boot_started = time.monotonic()
        waits = hostmod.wait_all(refs)
        say(
            f"booted {', '.join(f'{n} ({t:.1f} s)' for n, t in waits.items())}; "
            f"boot {time.monotonic() - boot_started:.1f} s, up {time.monotonic() - started:.1f} s"
            + (f"; layer {layer}" if layer else "")
        )
        return hosts()


def add(name: str, layer: str | None = None) -> dict[str, Any]:
    """Make host NAME run on `layer` beside the others (kept if it runs already); the `vm` layer makes it
    a QEMU VM with its own kernel (lab/vm.py). Waits for SSH."""
    _preflight()
    config.host_index(name)
    if layer is not None:
        layers.layer_dir(layer)
    with state.locked():
        preflight.ensure_packages()
        _ensure_key()
        st = state.load()
        _forget_dead(st)
        if name in st.hosts:
            return state.host_entry(name)
        started = time.monotonic()
        net.ensure_bridge()
        proxy.ensure(st)
        state.save(st)
        base.ensure_base()
        if layer:
            layers.ensure_layer(layer)
        peers = sorted({*st.hosts, name}, key=config.host_index)
        for other in st.hosts:
            hostmod.add_peers(other, peers)
        boot = _create_and_wait(st, name, layer, peers)
        say(f"{name} up in {time.monotonic() - started:.1f} s (SSH {boot:.1f} s after start); layer {layer or '-'}")
        return state.host_entry(name)


def _create_and_wait(st: LabState, name: str, layer: str | None, peers: list[str]) -> float:
    """Create and boot NAME, recorded at once (so `down` can clean up if the wait fails); seconds to SSH."""
    ref = hostmod.create(name, layer, peers)
    st.hosts[name] = HostState(proc=ref, layer=layer)
    state.save(st)
    return hostmod.wait_ssh(name, ref)


def remove(name: str) -> None:
    """Stop NAME and forget it (the other hosts keep running)."""
    _preflight()
    with state.locked():
        st = state.load()
        hostmod.stop({name: st.hosts[name].proc if name in st.hosts else None})
        st.hosts.pop(name, None)
        state.save(st)
        say(f"{name} removed")


def down() -> None:
    """Stop every host, remove namespaces, mounts, veths and bridge, stop the proxy. Idempotent."""
    _preflight()
    with state.locked():
        st = state.load()
        names = set(st.hosts) | set(net.lab_netns_names()) | _host_dirs()
        if not names and not procs.alive(st.proxy) and not net.link_exists(config.BRIDGE):
            state.save(LabState())
            say("lab is down; nothing to do")
            return
        started = time.monotonic()
        hostmod.stop({n: st.hosts[n].proc if n in st.hosts else None for n in sorted(names, key=config.host_index)})
        st.hosts = {}
        state.save(st)
        net.delete_bridge()
        proxy.stop(st)
        state.save(st)
        _clean_nspawn_run()
        layers.drop_stale()
        say(f"lab down ({len(names)} host(s)) in {time.monotonic() - started:.1f} s")


_KEEP = "<keep>"


def reset(name: str, layer: str | None = _KEEP) -> dict[str, Any]:
    """Stop NAME, discard its upper, create and boot it again; wait for SSH.

    By default on the layer it had; `layer=` (None = plain base) switches it.
    """
    _preflight()
    config.host_index(name)
    if layer not in (_KEEP, None):
        layers.layer_dir(layer)  # unknown name: fail before stopping anything
    with state.locked():
        st = state.load()
        if name not in st.hosts:
            raise LabError(f"{name} is not up (see `hearthdb-lab status`)")
        started = time.monotonic()
        if layer == _KEEP:
            layer = st.hosts[name].layer
        hostmod.stop({name: st.hosts[name].proc})
        net.ensure_bridge()
        proxy.ensure(st)
        if layer:
            layers.ensure_layer(layer)
        _create_and_wait(st, name, layer, sorted(st.hosts, key=config.host_index))
        say(f"{name} reset in {time.monotonic() - started:.1f} s")
        return state.host_entry(name)


def power_kill(name: str) -> None:
    """Power-kill NAME (no shutdown inside; its disk survives): `power_on` boots it again."""
    _preflight()
    with state.locked():
        st = state.load()
        if name not in st.hosts:
            raise LabError(f"{name} is not up (see `hearthdb-lab status`)")
        hostmod.power_kill(name, st.hosts[name].proc)
        say(f"{name} power-killed")


def power_on(name: str) -> dict[str, Any]:
    """Boot a power-killed NAME on the disk it had; wait for SSH."""
    _preflight()
    with state.locked():
        st = state.load()
        if name not in st.hosts:
            raise LabError(f"{name} was never up (see `hearthdb-lab status`)")
        if procs.alive(st.hosts[name].proc):
            raise LabError(f"{name} is running; power_kill it first")
        if st.hosts[name].layer == "vm":
            raise LabError(f"{name} is a VM: power_kill and power_on are for containers; reset it instead")
        started = time.monotonic()
        net.set_isolated(name, False)
        ref = hostmod.boot(name)
        st.hosts[name] = HostState(proc=ref, layer=st.hosts[name].layer)
        state.save(st)
        hostmod.wait_ssh(name, ref)
        say(f"{name} powered on in {time.monotonic() - started:.1f} s")
        return state.host_entry(name)


def isolate(name: str, isolated: bool = True) -> None:
    """Partition NAME from the lab network (True) or join it again (False); it keeps running."""
    _preflight()
    with state.locked():
        if name not in state.load().hosts:
            raise LabError(f"{name} is not up (see `hearthdb-lab status`)")
        hostmod.close_master(name)
        net.set_isolated(name, isolated)
        if not isolated:  # back when SSH answers again
            deadline = time.monotonic() + 20
            while not hostmod.ssh_ok(name, timeout=1) and time.monotonic() < deadline:
                time.sleep(0.2)
        say(f"{name} {'isolated' if isolated else 'joined the lab network again'}")


def hosts() -> list[dict[str, Any]]:
    """The running hosts, as in hosts.json."""
    st = state.load()
    return [state.host_entry(n) for n in sorted(st.hosts, key=config.host_index) if procs.alive(st.hosts[n].proc)]


def ssh_config_path() -> Path:
    return state.ssh_config_path()


def status() -> dict[str, Any]:
    st = state.load()
    rows = []
    for n in sorted(st.hosts, key=config.host_index):
        h = st.hosts[n]
        alive = procs.alive(h.proc)
        rows.append(
            {
                "name": n,
                "address": config.host_address(n),
                "pid": h.proc["pid"],
                "alive": alive,
                "ssh": alive and hostmod.ssh_ok(n),
                "layer": h.layer,
                "mem_mib": procs.pss_mib(h.proc["pid"]) if alive else 0.0,
            }
        )
    proxy_ref = st.proxy if procs.alive(st.proxy) else proxy.from_pid_file()
    return {
        "hosts": rows,
        "proxy": proxy_ref,
        "proxy_alive": procs.alive(proxy_ref),
        "bridge": net.link_exists(config.BRIDGE),
        "base": base.base_dir().is_dir(),
        "layers": {n: layers.layer_dir(n).is_dir() for n in sorted(layers.LAYERS)},
    }


def _preflight() -> None:
    preflight.require_root()
    preflight.require_kernel()


def _ensure_key() -> None:
    key = state.key_path()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hearthdb-lab", "-f", key])


def _forget_dead(st: LabState) -> None:
    for name, h in list(st.hosts.items()):
        if not procs.alive(h.proc):
            warn(f"{name} was not running any more (see {hostmod.log_path(name)}); cleaning it up")
            hostmod.stop({name: None})  # also stops a container whose nspawn pid we lost track of
            del st.hosts[name]


def _host_dirs() -> set[str]:
    d = config.state_dir() / "hosts"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def _clean_nspawn_run() -> None:
    # /run is on disk on these machines: nspawn's lock and propagation dirs would outlive a reboot.
    # Left alone while any other machine (not ours: ours are gone by now) still has entries there.
    root = Path("/run/systemd/nspawn")
    per_machine = [root / sub for sub in ("propagate", "unix-export", "incoming")]
    if not any(d.is_dir() and any(d.iterdir()) for d in per_machine):
        remove_tree(root)


def inventory(names: list[str]) -> dict[str, Any]:
    """A hearthdb inventory (HEARTHDB_INVENTORY) for the named running hosts; their host keys change
    with every base rebuild, so they are not checked."""
    by_name = {h["name"]: h for h in hosts()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise LabError(f"{', '.join(missing)} not up (see `hearthdb-lab status`)")
    return {
        "hosts": [
            {"name": n, "host": by_name[n]["address"], "user": "root", "key": by_name[n]["key"], "host_key": "ignore"}
            for n in names
        ]
    }


def ssh(
    name: str, command: str, stdin: str | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `command` on a lab host over SSH (stdin empty unless given)."""
    return subprocess.run(
        ["ssh", "-F", str(ssh_config_path()), name, command],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def deploy_env(where: Path, inventory: dict[str, Any], config: dict[str, Any], secrets: Path) -> dict[str, str]:
    """The environment of a hearthdb run (`pyinfra inventory.py deploy.py`) against `inventory` with
    `config` as its hearthdb.yml, both written into the directory `where`."""
    (where / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (where / "hearthdb.yml").write_text(yaml.safe_dump(config))
    return {
        **os.environ,
        "HEARTHDB_INVENTORY": str(where / "hosts.yml"),
        "HEARTHDB_CONFIG": str(where / "hearthdb.yml"),
        "HEARTHDB_SECRETS": str(secrets),
    }
