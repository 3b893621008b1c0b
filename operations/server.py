"""Operations for the host side: PostgreSQL packages and the cluster."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from .errors import ClusterMismatch
from .facts import DebPackageStatus, forget_visit, pg_clusters, pg_state

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
    forget_visit()  # new packages bring new available extensions
    yield f"apt-get update -q && {APT_INSTALL} {' '.join(shlex.quote(n) for n in missing)}"


@operation()
def cluster(version: int, cluster_name: str, port: int, locale: str, encoding: str, data_checksums: bool):
    """
    Ensure a Debian postgresql-common cluster exists (created stopped, so that its settings are in
    place before its first start: `running` starts it). An existing cluster is never re-initialised:
    a differing fixed property (port aside) stops the run with an error.

    + version: PostgreSQL major version
    + cluster_name: cluster name
    + port: port (set at creation; a different port on an existing cluster is an error)
    + locale, encoding: set at creation for template databases
    + data_checksums: initdb --data-checksums

    **Example:**

    .. code:: python

        cluster(name="cluster 17/main", version=17, cluster_name="main", port=5432, locale="C.UTF-8",
                encoding="UTF8", data_checksums=True)
    """
    name = cluster_name
    key = f"{version}/{name}"
    have = pg_clusters().get(key)
    if have is None:
        checksums = " -- --data-checksums" if data_checksums else ""
        forget_visit()
        yield StringCommand(
            f"pg_createcluster --port {int(port)} --locale {shlex.quote(locale)} "
            f"--encoding {shlex.quote(encoding)} {int(version)} {shlex.quote(name)}{checksums}"
        )
        return
    if have["port"] != port:
        raise ClusterMismatch(
            f"cluster {key}: runs on port {have['port']}, declared {port}; "
            "change cluster.port or move the cluster by hand"
        )
    if not have["online"]:
        host.noop(f"cluster {key} exists (stopped; checked once it runs)")
        return
    server = pg_state(version, name, port).get("server") or {}
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
def running(version: int, cluster_name: str):
    """
    Start the cluster unless it runs.

    + version: PostgreSQL major version
    + cluster_name: cluster name
    """
    have = pg_clusters().get(f"{version}/{cluster_name}")
    if have and have["online"]:
        host.noop(f"cluster {version}/{cluster_name} is running")
        return
    forget_visit()
    yield f"pg_ctlcluster {int(version)} {shlex.quote(cluster_name)} start"
