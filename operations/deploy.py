"""The hearthdb deploy: reusable from any pyinfra deploy as `converge(host.data.hearthdb)`."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files

from . import objects, server
from .config import HearthConfig
from .desired import desired_databases, desired_roles
from .paths import TEMPLATES


def package_names(cfg: HearthConfig) -> list[str]:
    v = cfg.cluster.version
    return [f"postgresql-{v}", f"postgresql-{v}-pgvector", "postgresql-common"]


@deploy("hearthdb")
def converge(cfg: HearthConfig) -> None:
    c = cfg.cluster
    files.directory(name="postgresql-common createcluster.d", path="/etc/postgresql-common/createcluster.d")
    files.template(
        name="no automatic cluster on package install",
        src=str(TEMPLATES / "createcluster.conf.j2"),
        dest="/etc/postgresql-common/createcluster.d/50-hearthdb.conf",
        mode="644",
    )
    server.packages(name="PostgreSQL packages", names=package_names(cfg))
    server.cluster(
        name=f"cluster {c.version}/{c.name}",
        version=c.version,
        cluster_name=c.name,
        port=c.port,
        locale=c.locale,
        encoding=c.encoding,
        data_checksums=c.data_checksums,
    )
    where = {"version": c.version, "cluster": c.name, "port": c.port}
    objects.roles(name="roles", desired=desired_roles(cfg), **where)
    dbs = desired_databases(cfg)
    objects.databases(name="databases", desired=dbs, **where)
    objects.extensions(name="extensions", desired=dbs, **where)
