"""Operations for the host side: PostgreSQL packages and the cluster."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand

from .drift import note, operation
from .errors import ClusterMismatch
from .facts import DebPackageStatus, PgClusters, read_cluster
from .target import Cluster

APT_INSTALL = (
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
    "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
)


@operation()
def packages(names: list[str]):
    """
    Install Debian packages that are missing; `apt-get update` runs only when something is.

    + names: Debian package names

    **Example:**

    .. code:: python

        packages(name="PostgreSQL packages", names=["postgresql-17", "postgresql-17-pgvector"])
    """
    installed = host.get_fact(DebPackageStatus, packages=names)
    missing = [n for n in names if n not in installed]
    if not missing:
        host.noop(f"packages {', '.join(names)} are installed")
        return
    for n in missing:
        note(f"package {n}", "installed", "yes", "no")
    yield f"apt-get update -q && {APT_INSTALL} {' '.join(shlex.quote(n) for n in missing)}"


@operation()
def cluster(target: Cluster, locale: str, encoding: str, data_checksums: bool, create: bool = True):
    """
    Ensure a Debian postgresql-common cluster exists (created stopped, so that its settings are in
    place before its first start: `running` starts it). An existing cluster is never re-initialised:
    a differing fixed property (port aside) stops the run with an error.

    + target: the cluster (version, name, port; the port is set at creation, a different one on an
      existing cluster is an error)
    + locale, encoding: set at creation for template databases
    + data_checksums: initdb --data-checksums
    + create: False on a Patroni member that does not bootstrap: Patroni copies the leader instead

    **Example:**

    .. code:: python

        cluster(name="cluster 17/main", target=Cluster(17, "main", 5432), locale="C.UTF-8",
                encoding="UTF8", data_checksums=True)
    """
    have = read_cluster(target)
    key = target.key
    if have.get("status") == "missing" and not create:
        host.noop(f"cluster {key}: Patroni copies it from the leader")
        return
    if have.get("status") == "missing":
        note(f"cluster {key}", "exists", "yes", "no")
        checksums = " -- --data-checksums" if data_checksums else ""
        yield StringCommand(
            f"pg_createcluster --port {int(target.port)} --locale {shlex.quote(locale)} "
            f"--encoding {shlex.quote(encoding)} {target.shell_args}{checksums}"
        )
        return
    if have["port"] != target.port:
        raise ClusterMismatch(
            f"cluster {key}: runs on port {have['port']}, declared {target.port}; "
            "change cluster.port or move the cluster by hand"
        )
    if have["status"] != "online":
        host.noop(f"cluster {key} exists (stopped; checked once it runs)")
        return
    server = have.get("server") or {}
    problems = []
    if server.get("data_checksums") != data_checksums:
        problems.append(f"data_checksums is {server.get('data_checksums')}, declared {data_checksums}")
    if server.get("encoding") != encoding:
        problems.append(f"encoding is {server.get('encoding')}, declared {encoding}")
    if server.get("collate") != locale:
        problems.append(f"locale is {server.get('collate')}, declared {locale}")
    if problems:
        raise ClusterMismatch(
            f"cluster {key}: " + "; ".join(problems) + " (fixed at initdb; hearthdb never re-initialises a cluster)"
        )
    host.noop(f"cluster {key} is running")


@operation()
def running(target: Cluster):
    """
    Start the cluster unless it runs.

    + target: the cluster
    """
    have = host.get_fact(PgClusters).get(target.key)
    if have and have["online"]:
        host.noop(f"cluster {target.key} is running")
        return
    note(f"cluster {target.key}", "running", "yes", "no")
    yield f"pg_ctlcluster {target.shell_args} start"
