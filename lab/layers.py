"""Optional read-only layers stacked between the base and a host's upper, e.g. PostgreSQL pre-installed.

Built once by a non-boot nspawn running apt into an overlay upper; that upper becomes the layer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import base, config, proxy
from .fsutil import mount_overlay, remove_tree, umount_all, used_by_overlay, write
from .shell import LabError, say
from .state import logs_dir


@dataclass(frozen=True)
class Layer:
    version: int  # bump when packages or script change: the layer is rebuilt
    packages: tuple[str, ...]
    after: str  # shell run after the install
    on: str | None = None  # the layer it is built on (None: the base)


LAYERS: dict[str, Layer] = {
    # postgresql-common creates cluster 17/main on install; hosts must start with packages but no
    # cluster, since the deploy creates its own.
    "postgresql": Layer(
        version=1,
        packages=("postgresql-17", "postgresql-17-pgvector"),
        after="pg_dropcluster --stop 17 main; rm -rf /var/lib/postgresql/17/main /var/log/postgresql/*",
    ),
    # the same with pgBackRest, for the backup tests' database host
    "backup": Layer(
        version=1,
        packages=("postgresql-17", "postgresql-17-pgvector", "pgbackrest"),
        after="pg_dropcluster --stop 17 main; rm -rf /var/lib/postgresql/17/main /var/log/postgresql/*",
    ),
    # every extension the seed profiles declare (examples/), for the profile tests' host
    "profiles": Layer(
        version=1,
        packages=(
            "postgresql-17",
            "postgresql-17-pgvector",
            "postgresql-17-cron",
            "postgresql-17-timescaledb",
            "postgresql-17-postgis-3",
        ),
        after="pg_dropcluster --stop 17 main; rm -rf /var/lib/postgresql/17/main /var/log/postgresql/*",
    ),
    # the HA stack (issue 15): Patroni, etcd, PgBouncer and HAProxy as Debian installs them. etcd's
    # package enables its single-node cluster at boot: left so, since the deploy must handle it.
    "ha": Layer(
        version=2,
        packages=(
            "postgresql-17",
            "postgresql-17-pgvector",
            "patroni",
            "python3-etcd",
            "etcd-server",
            "etcd-client",
            "pgbouncer",
            "haproxy",
        ),
        after="pg_dropcluster --stop 17 main; rm -rf /var/lib/postgresql/17/main /var/log/postgresql/*",
    ),
    # a VM's root (lab/vm.py), on the postgresql layer: Debian's kernel, its initramfs, and udev (which
    # networkd waits for, and which loads virtio's modules); booted by QEMU, not nspawn
    "vm": Layer(version=2, packages=("linux-image-amd64", "udev", "kmod"), after="true", on="postgresql"),
}


def layer_dir(name: str) -> Path:
    layer = _get(name)
    parent = f"-on-{layer.on}-v{_get(layer.on).version}" if layer.on else ""
    return config.cache_dir() / f"layer-{name}-v{layer.version}{parent}-on-base-v{base.BASE_VERSION}"


def _get(name: str) -> Layer:
    try:
        return LAYERS[name]
    except KeyError:
        raise LabError(f"unknown layer {name!r}; known: {', '.join(sorted(LAYERS))}") from None


def lowers(layer: str | None) -> list[Path]:
    """Overlay lower dirs, topmost first."""
    if not layer:
        return [base.base_dir()]
    return [layer_dir(layer), *lowers(_get(layer).on)]


def ensure_layer(name: str) -> Path:
    layer = _get(name)
    target = layer_dir(name)
    if target.is_dir():
        return target
    if layer.on:
        ensure_layer(layer.on)
    started = time.monotonic()
    say(f"building layer {name}: {' '.join(layer.packages)}")
    build = target.with_name(target.name + ".build")
    remove_tree(build)
    upper, work, merged = build / "upper", build / "work", build / "merged"
    log = logs_dir() / f"layer-{name}-build.log"
    log.unlink(missing_ok=True)
    try:
        mount_overlay(lowers(layer.on), upper, work, merged)
        write(merged / base.POLICY_RC_D, "#!/bin/sh\nexit 101\n", 0o755)
        script = "; ".join(
            [
                "set -e",
                base.APT_FN,
                "aget update",
                f"aget install -y {' '.join(layer.packages)}",
                layer.after,
                "aget clean",
                f"rm -f /{base.POLICY_RC_D}",
            ]
        )
        base.nspawn_run(merged, script, log, proxy_url=proxy.local_url())
        umount_all(merged)
        os.replace(upper, target)
    finally:
        remove_tree(build)
    say(f"layer {name} built in {time.monotonic() - started:.1f} s")
    return target


def drop_stale() -> None:
    """Remove bases and layers of other recipe versions (and half-built ones): never used again.

    One a running host still stands on is kept; a later `up` or `down` removes it.
    """
    keep = {base.base_dir(), *(layer_dir(n) for n in LAYERS)}
    cache = config.cache_dir()
    if not cache.is_dir():
        return
    for p in cache.iterdir():
        if p.name.startswith(("base-v", "layer-")) and p not in keep and not used_by_overlay(p):
            say(f"removing stale image {p}")
            remove_tree(p)
