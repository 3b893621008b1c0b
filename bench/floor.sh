#!/bin/bash
# The floor: the same end state as a hearthdb deploy, as one plain shell script run over one SSH session.
# No planning, no facts beyond what psql answers inline; idempotent through IF NOT EXISTS and guards.
# Inputs (environment): AIS (space-separated AI names), PASSWORD_<name> per role, SCHEMA_HM / SCHEMA_PP
# (the bundles' up files, concatenated, as text).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(dpkg-query -W -f '${db:Status-Abbrev}\n' postgresql-17 postgresql-17-pgvector 2>/dev/null | grep -c '^ii')" != 2 ]; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/50-floor.conf
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends postgresql-17 postgresql-17-pgvector >/dev/null
fi
pg_lsclusters -h 17 main 2>/dev/null | grep -q . || pg_createcluster --locale C.UTF-8 --start 17 main -- --data-checksums >/dev/null
pg_lsclusters -h 17 main | grep -q online || pg_ctlcluster 17 main start
psql() { runuser -u postgres -- /usr/bin/psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
# roles (passwords on stdin), databases, grants
{
  for r in hearthminds $AIS; do
    v="PASSWORD_$r"
    echo "SELECT format('CREATE ROLE %I LOGIN', '$r') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$r') \\gexec"
    echo "SET log_statement = 'none'; ALTER ROLE \"$r\" PASSWORD '${!v}';"
  done
  for d in hearthminds $AIS; do
    o=$d; db="${d}_db"
    echo "SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0', '$db', '$o') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db') \\gexec"
    echo "REVOKE CONNECT, TEMPORARY ON DATABASE \"$db\" FROM PUBLIC;"
  done
  for a in $AIS; do
    echo "GRANT CONNECT ON DATABASE hearthminds_db TO \"$a\"; GRANT CONNECT ON DATABASE \"${a}_db\" TO hearthminds;"
  done
} | psql -d postgres
# extensions and schemas, one psql for all databases
{
  for d in hearthminds $AIS; do
    echo "\\connect ${d}_db"
    echo "CREATE EXTENSION IF NOT EXISTS vector;"
    echo "SELECT to_regclass('public.eng_patterns') IS NULL AND to_regclass('public.memory_shards') IS NULL AS todo \\gset"
    echo "\\if :todo"
    echo "SET ROLE \"$d\";"
    if [ "$d" = hearthminds ]; then printf '%s\n' "$SCHEMA_HM"; else printf '%s\n' "$SCHEMA_PP"; fi
    echo "RESET ROLE;"
    echo "\\endif"
  done
} | psql -d postgres -v embedding_dim=1536
