"""The same end state through pyinfra's built-in operations only (for benchmarks): apt, server.shell,
postgres.role / postgres.database / postgres.sql. As those are written, roles re-set their passwords on
every run and schema files go through a guarded shell step."""

import os
import shlex

from pyinfra import host
from pyinfra.operations import apt, files, postgres, server

AIS = os.environ["BENCH_AIS"].split()
SCHEMA = {"hm": os.environ["BENCH_SCHEMA_HM"], "pp": os.environ["BENCH_SCHEMA_PP"]}
PG = {"_sudo": True, "_sudo_user": "postgres"}

files.put(
    name="no automatic cluster",
    src=__import__("io").StringIO("create_main_cluster = false\n"),
    dest="/etc/postgresql-common/createcluster.d/50-builtin.conf",
    create_remote_dir=True,
)
apt.packages(name="packages", packages=["postgresql-17", "postgresql-17-pgvector"], update=True, cache_time=86400)
server.shell(
    name="cluster",
    commands=["pg_lsclusters -h 17 main | grep -q . || pg_createcluster --start 17 main -- --data-checksums"],
)
for role in ["hearthminds", *AIS]:
    postgres.role(name=f"role {role}", role=role, password=os.environ[f"PASSWORD_{role}"], login=True, **PG)
for owner in ["hearthminds", *AIS]:
    db = f"{owner}_db"
    postgres.database(name=f"database {db}", database=db, owner=owner, template="template0", **PG)
    postgres.sql(name=f"vector in {db}", sql="CREATE EXTENSION IF NOT EXISTS vector", psql_database=db, **PG)
    bundle = SCHEMA["hm" if owner == "hearthminds" else "pp"]
    check = shlex.quote(
        "SELECT to_regclass('public.eng_patterns') IS NULL AND to_regclass('public.memory_shards') IS NULL"
    )
    server.shell(
        name=f"schema {db}",
        commands=[
            f"psql -X -tAc {check} -d {db} | grep -q t && "
            f"printf '%s\\n' {shlex.quote('SET ROLE ' + owner + ';' + chr(10) + bundle)} | "
            f"psql -X -q -v ON_ERROR_STOP=1 -v embedding_dim=1536 -d {db} || true"
        ],
        **PG,
    )
_ = host
