"""Catalog queries behind the combined facts. Each returns one JSON value per row (`json_build_object`),
so parsing never splits psql output on separators."""

from .config import DATABASE_ATTRIBUTES, ROLE_ATTRIBUTES
from .ha import AUTH_FUNCTION, AUTH_SCHEMA, REWIND_FUNCTIONS
from .target import CONF_D_NAME

# Each role attribute under its model name, from its pg_authid column.
_ROLE_FLAGS = ", ".join(f"'{name}', a.{column}" for name, column in ROLE_ATTRIBUTES.items())
# Each database attribute read from pg_database, under its model name.
_DATABASE_FIELDS = ", ".join(f"'{name}', {expr}" for name, expr in DATABASE_ATTRIBUTES.items())

# Server-wide state: properties fixed at initdb, every role, every database, available extensions.
# The role password is never returned: only the SCRAM salt and iteration count (to recompute the
# verifier on the controller) and a digest of the stored verifier to compare with.
SERVER_QUERY = r"""
SELECT json_build_object(
  'server', json_build_object(
    'version_num', current_setting('server_version_num')::int,
    'data_checksums', current_setting('data_checksums') = 'on',
    'encoding', (SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'template1'),
    'collate', (SELECT datcollate FROM pg_database WHERE datname = 'template1'),
    'ctype', (SELECT datctype FROM pg_database WHERE datname = 'template1'),
    'start_time', pg_postmaster_start_time(),
    'ssl', current_setting('ssl') = 'on',
    'pending_restart', (SELECT json_agg(name ORDER BY name) FROM pg_settings WHERE pending_restart),
    'settings_not_applied', (SELECT json_agg(name ORDER BY name) FROM pg_file_settings
                             WHERE NOT applied AND sourcefile LIKE '%/conf.d/{conf_d}'),
    'alter_system', (SELECT json_agg(DISTINCT name) FROM pg_file_settings
                     WHERE sourcefile LIKE '%/postgresql.auto.conf'),
    'in_recovery', pg_is_in_recovery()),
  'functions', (SELECT json_object_agg(replace(p.oid::regprocedure::text, ' ', ''), json_build_object(
    'src', p.prosrc, 'secdef', p.prosecdef, 'config', p.proconfig, 'acl', p.proacl::text[],
    'schema_acl', n.nspacl::text[]))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE replace(p.oid::regprocedure::text, ' ', '') IN ({access_functions})),
  'roles', (SELECT json_object_agg(a.rolname, json_build_object(
    {role_flags}, 'connection_limit', a.rolconnlimit,
    'scram', CASE WHEN a.rolpassword ~ '^SCRAM-SHA-256\$[0-9]+:' THEN json_build_object(
        'iterations', split_part(split_part(a.rolpassword, '$', 2), ':', 1)::int,
        'salt', split_part(split_part(a.rolpassword, '$', 2), ':', 2),
        'digest', encode(sha256(convert_to(a.rolpassword, 'UTF8')), 'hex')) END,
    'has_password', a.rolpassword IS NOT NULL,
    'settings', (SELECT s.setconfig FROM pg_db_role_setting s
                 WHERE s.setrole = a.oid AND s.setdatabase = 0),
    'member_of', (SELECT coalesce(json_agg(b.rolname ORDER BY b.rolname), '[]'::json)
                  FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = a.oid))
    ORDER BY a.rolname)
    FROM pg_authid a WHERE a.rolname !~ '^pg_'),
  'databases', (SELECT json_object_agg(d.datname, json_build_object(
    {database_fields}, 'encoding', pg_encoding_to_char(d.encoding),
    'collate', d.datcollate, 'ctype', d.datctype, 'acl', d.datacl::text[],
    'allow_connections', d.datallowconn, 'extensions', NULL) ORDER BY d.datname)
    FROM pg_database d WHERE NOT d.datistemplate OR d.datname = 'template1'),
  'available_extensions', (SELECT json_object_agg(e.name, json_build_object(
    'default', e.default_version,
    'versions', (SELECT json_agg(v.version ORDER BY v.version) FROM pg_available_extension_versions v
                 WHERE v.name = e.name)) ORDER BY e.name)
    FROM pg_available_extensions e)
)
""".strip()
SERVER_QUERY = SERVER_QUERY.replace("{conf_d}", CONF_D_NAME).replace("{role_flags}", _ROLE_FLAGS)
SERVER_QUERY = SERVER_QUERY.replace("{database_fields}", _DATABASE_FIELDS)
# pg_rewind's functions and the pooler's lookup function, as regprocedure prints them
_ACCESS = [*REWIND_FUNCTIONS, f"{AUTH_SCHEMA}.{AUTH_FUNCTION}(text)"]
SERVER_QUERY = SERVER_QUERY.replace("{access_functions}", ", ".join(f"'{f}'" for f in _ACCESS))

# Every object initdb made has an oid below this (FirstNormalObjectId), user objects never do (pg_upgrade
# keeps their oids). The range lets the object scan skip pg_proc's ~3300 built-in functions by index: a
# fresh backend's catalog scan is most of what a visit of one database costs.
FIRST_NORMAL_OID = 16384

# Per database, run after `\connect`: its installed extensions and their versions, and the privileges
# `privileges.plan_privileges` reads: every schema's owner and ACL; per schema and kind (tables, sequences,
# functions; an extension's own objects left out) the object count and, per grantee other than the
# object's owner and privilege, on how many objects it is held; the default privileges (an entry that
# grants nothing is one row with null grantee and privilege). PUBLIC is 'PUBLIC'.
DATABASE_QUERY = r"""
WITH ns AS (SELECT oid, nspname, nspowner, nspacl FROM pg_namespace
            WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'),
obj AS (
  SELECT ns.nspname AS nsp, CASE WHEN c.relkind = 'S' THEN 'sequences' ELSE 'tables' END AS kind, c.relowner AS owner,
         coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
  WHERE c.oid >= {first_normal} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    AND NOT EXISTS (SELECT 1 FROM pg_depend e
                    WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
  UNION ALL
  SELECT ns.nspname, 'functions', p.proowner, coalesce(p.proacl, acldefault('f'::"char", p.proowner))
  FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
  WHERE p.oid >= {first_normal} AND p.prokind IN ('f', 'a', 'w')
    AND NOT EXISTS (SELECT 1 FROM pg_depend e
                    WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e'))
SELECT json_build_object('db', current_database(),
  'oid', (SELECT oid::bigint FROM pg_database WHERE datname = current_database()),
  'extensions', (SELECT json_object_agg(extname, extversion ORDER BY extname) FROM pg_extension),
  'commented', (SELECT json_agg(e.extname ORDER BY e.extname) FROM pg_extension e JOIN pg_description d
                ON d.objoid = e.oid AND d.classoid = 'pg_extension'::regclass),
  'public_create', (SELECT has_schema_privilege('public', oid, 'CREATE') FROM pg_namespace
                    WHERE nspname = 'public'),
  'schemas', (SELECT coalesce(json_object_agg(ns.nspname, json_build_object(
      'owner', pg_get_userbyid(ns.nspowner),
      'acl', (SELECT coalesce(json_agg(json_build_array(
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type)
                ), '[]'::json)
              FROM aclexplode(coalesce(ns.nspacl, acldefault('n'::"char", ns.nspowner))) a
              WHERE a.grantee <> ns.nspowner))), '{}'::json) FROM ns),
  'objects', (SELECT coalesce(json_agg(json_build_array(nsp, kind, n) ORDER BY nsp, kind), '[]'::json)
              FROM (SELECT nsp, kind, count(*) AS n FROM obj GROUP BY nsp, kind) x),
  'object_grants', (SELECT coalesce(json_agg(json_build_array(nsp, kind, grantee, priv, n)
                                             ORDER BY nsp, kind, grantee, priv), '[]'::json)
                    FROM (SELECT o.nsp, o.kind, CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                 ELSE pg_get_userbyid(a.grantee) END AS grantee,
                                 a.privilege_type AS priv, count(*) AS n
                          FROM obj o, aclexplode(o.acl) a WHERE a.grantee <> o.owner
                          GROUP BY 1, 2, 3, 4) x),
  'default_acl', (SELECT coalesce(json_agg(json_build_array(pg_get_userbyid(d.defaclrole), coalesce(n.nspname, ''),
                    d.defaclobjtype, CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                              WHEN a.grantee IS NOT NULL THEN pg_get_userbyid(a.grantee) END,
                    a.privilege_type)), '[]'::json)
                  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
                  LEFT JOIN LATERAL aclexplode(d.defaclacl) a ON true))
""".strip().replace("{first_normal}", str(FIRST_NORMAL_OID))

# In the cron database, only where pg_cron's table exists: the jobs there, by name.
CRON_QUERY = r"""
SELECT json_build_object('db', current_database(),
  'oid', (SELECT oid::bigint FROM pg_database WHERE datname = current_database()),
  'cron_jobs', (SELECT coalesce(json_object_agg(jobname, json_build_object('id', jobid, 'schedule', schedule,
                  'command', command, 'database', database, 'username', username, 'active', active)
                  ORDER BY jobname), '{}'::json)
                FROM cron.job WHERE jobname IS NOT NULL))
""".strip()

# Per database, only where the ledger table exists: the migrations applied there.
LEDGER_QUERY = r"""
SELECT json_build_object('db', current_database(),
  'oid', (SELECT oid::bigint FROM pg_database WHERE datname = current_database()),
  'ledger', (SELECT coalesce(json_agg(json_build_object('bundle', bundle, 'version', version, 'name', name,
                                                         'sha256', sha256) ORDER BY bundle, version), '[]'::json)
             FROM hearthdb.schema_migrations),
  'ledger_owner', (SELECT json_build_array(pg_get_userbyid(n.nspowner), pg_get_userbyid(c.relowner))
                   FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
                   WHERE n.nspname = 'hearthdb' AND c.relname = 'schema_migrations'))
""".strip()

# The psql script run in every database (`%1$s` is the quoted database name, filled in by format()).
PER_DATABASE_SCRIPT = (
    "\\connect %1$s\n"
    + DATABASE_QUERY
    + ";\nSELECT to_regclass('hearthdb.schema_migrations') IS NOT NULL AS hearthdb_ledger,"
    + " to_regclass('cron.job') IS NOT NULL AS hearthdb_cron \\gset\n"
    + "\\if :hearthdb_ledger\n"
    + LEDGER_QUERY
    + ";\n\\endif"
    + "\n\\if :hearthdb_cron\n"
    + CRON_QUERY
    + ";\n\\endif"
)
assert "%" not in DATABASE_QUERY + LEDGER_QUERY + CRON_QUERY  # format() would read it as a placeholder
