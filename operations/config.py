"""The typed model of `hearthdb.yml` and its loader.

Pure Python (no pyinfra imports): the same model is used by group_data, the deploy and the tests.
Every key, its default and its rule is documented in `group_data/defaults.yml` and the README.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import typing
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .catalog import known_extensions
from .errors import ConfigError
from .ha import Ha, Pooler
from .jobs import Job, JobName, cron_database
from .monitoring import Monitoring
from .paths import ROOT, SCHEMA, extra_schema_dirs
from .pgbackrest import Backup, check_backup, stanza_name
from .privileges import Privileges, SchemaName
from .settings_types import Scalar, check_setting
from .target import Cluster as ClusterTarget
from .tls import Tls

DEFAULTS_FILE = ROOT / "group_data" / "defaults.yml"
CONFIG_ENV = "HEARTHDB_CONFIG"

SUPPORTED_VERSIONS = (15, 16, 17)
# Names PostgreSQL or Debian already use; a managed role or database must not take them.
SYSTEM_NAMES = frozenset({"postgres", "template0", "template1", "public", "information_schema"})
# SQL key words that are reserved in PostgreSQL: legal only when quoted, a trap for every client.
RESERVED_WORDS = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization binary both case cast check
    collate collation column concurrently constraint create cross current_catalog current_date
    current_role current_schema current_time current_timestamp current_user default deferrable desc
    distinct do else end except false fetch for foreign freeze from full grant group having ilike in
    initially inner intersect into is isnull join lateral leading left like limit localtime
    localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
    references returning right select session_user similar some symmetric system_user table tablesample
    then to trailing true union unique user using variadic verbose when where window with""".split()
)
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*(-[a-z0-9_]+)*$")
MAX_NAME = 63  # NAMEDATALEN - 1


def check_name(value: str) -> str:
    """A role or database name hearthdb will create: lower-case ASCII, safe in every client."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty name")
    if not value.isascii():
        c = next(c for c in value if not c.isascii())
        what = unicodedata.name(c, f"U+{ord(c):04X}")
        raise ValueError(
            f"{value!r} contains the non-ASCII character {c!r} ({what}); names are lower-case ASCII "
            "letters, digits and '_' (look-alike and invisible characters are refused)"
        )
    if len(value.encode()) > MAX_NAME:
        raise ValueError(f"{value!r} is longer than {MAX_NAME} bytes (PostgreSQL would truncate it)")
    if not NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lower-case ASCII letters, digits, '_' "
            "(and '-' between them), starting with a letter or '_'"
        )
    if value in SYSTEM_NAMES or value.startswith("pg_"):
        raise ValueError(f"{value!r} is a PostgreSQL system name; choose another")
    if value in RESERVED_WORDS:
        raise ValueError(f"{value!r} is a reserved SQL key word; choose another")
    return value


Name = Annotated[str, AfterValidator(check_name)]


def _scalar(value: Any) -> Any:
    if not isinstance(value, bool | int | float | str):
        raise ValueError(f"must be a boolean, number or string (got {value!r})")
    return value


SettingValue = Annotated[Scalar, BeforeValidator(_scalar)]
EXTENSION_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z._-]{0,31}$")


PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.{}-]{1,100}$")
LOCALE_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
PATH_UNSAFE = set("'\"`$;|&<>*?\\")


def check_local_path(value: str) -> str:
    """A path on the controller (secrets_file): no control characters, quotes or shell metacharacters."""
    if not value:
        raise ValueError("must be a non-empty path")
    bad = [c for c in value if ord(c) < 32 or ord(c) == 127 or c in PATH_UNSAFE]
    if bad:
        raise ValueError(f"{value!r} contains {bad[0]!r}: quotes, control and shell characters are refused in paths")
    return value


def check_package(value: str | None) -> str | None:
    if value is not None and (not PACKAGE_RE.match(value) or value.replace("{version}", "").count("{")):
        raise ValueError(f"{value!r} is not a Debian package name (e.g. postgresql-{{version}}-pgrouting)")
    return value


def check_extension(value: str) -> str:
    if not EXTENSION_RE.match(value):
        raise ValueError(f"{value!r} is not a valid extension name")
    return value


ExtName = Annotated[str, AfterValidator(check_extension)]
LocalPath = Annotated[str, AfterValidator(check_local_path)]
PackageName = Annotated[str | None, AfterValidator(check_package)]


class Strict(BaseModel):
    """Unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


class Extension(Strict):
    name: ExtName
    version: Annotated[str, Field(pattern=VERSION_RE.pattern)] | None = None


def _extension_list(value: Any) -> Any:
    # `[vector, {name: pg_trgm, version: "1.6"}]`: a bare string is an extension at its default version.
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class Cluster(Strict):
    version: int = 17
    name: Name = "main"
    port: Annotated[int, Field(ge=1024, le=65535)] = 5432
    listen_addresses: list[str] = Field(default_factory=lambda: ["localhost"])
    locale: Annotated[str, Field(pattern=LOCALE_RE.pattern)] = "C.UTF-8"
    encoding: Literal["UTF8", "SQL_ASCII", "LATIN1"] = "UTF8"
    data_checksums: bool = True

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        if self.version not in SUPPORTED_VERSIONS:
            versions = ", ".join(map(str, SUPPORTED_VERSIONS))
            raise ValueError(f"version {self.version} is not supported; use one of {versions}")
        if "-" in self.name:
            # postgresql-common's postgresql@ unit reads its instance with %I, so 17-my-db becomes 17/my/db,
            # and pg_ctlcluster hands every start to that unit: such a cluster cannot be started at all
            raise ValueError(
                f"name: {self.name!r} has a dash, which Debian's postgresql@ unit reads as a path separator "
                f"(the cluster would never start); use {self.name.replace('-', '_')!r}"
            )
        for addr in self.listen_addresses:
            if addr in ("*", "localhost", "::", "0.0.0.0"):
                continue
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise ValueError(f"listen_addresses: {addr!r} is not an IP address, 'localhost' or '*'") from None
        return self


class SharedDatabase(Strict):
    enabled: bool = True  # false: no shared database and no owner role (single-database systems)
    name: Name = "hearthminds_db"
    owner: Name = "hearthminds"
    monitor: bool = True  # owner gets pg_monitor and CONNECT on every AI database
    read_ai_data: bool = False  # owner gets pg_read_all_data (read-only access to AI data)


PREDEFINED_ROLES = frozenset(
    """pg_monitor pg_read_all_settings pg_read_all_stats pg_stat_scan_tables pg_read_all_data
    pg_write_all_data pg_signal_backend pg_checkpoint pg_maintain pg_use_reserved_connections
    pg_create_subscription pg_read_server_files pg_write_server_files pg_execute_server_program
    pg_database_owner""".split()
)
SETTING_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def check_settings(settings: dict[str, Scalar]) -> None:
    """Names and values of `settings` (the server's or a role's), the error naming `settings.<name>`."""
    for key, value in settings.items():
        if not SETTING_NAME_RE.match(key):
            raise ValueError(f"settings.{key}: not a parameter name")
        try:
            check_setting(key, value)
        except ValueError as e:
            raise ValueError(f"settings.{key}: {e}") from None


def _attribute(default: bool, column: str) -> Any:
    """A role attribute: a flag of CREATE / ALTER ROLE, read from `pg_authid.<column>`."""
    return Field(default, json_schema_extra={"catalog": column})


class Role(Strict):
    login: bool = _attribute(True, "rolcanlogin")
    superuser: bool = _attribute(False, "rolsuper")
    createdb: bool = _attribute(False, "rolcreatedb")
    createrole: bool = _attribute(False, "rolcreaterole")
    replication: bool = _attribute(False, "rolreplication")
    bypassrls: bool = _attribute(False, "rolbypassrls")
    connection_limit: Annotated[int, Field(ge=-1, le=10000)] = -1
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    member_of: list[str] = Field(default_factory=list)
    password: bool | None = None  # default: login roles have one
    state: Literal["present", "absent"] = "present"

    @model_validator(mode="after")
    def _check(self) -> Role:
        check_settings(self.settings)
        return self


# Role attributes (the flags of CREATE ROLE) -> their pg_authid column: each field declared with one.
ROLE_ATTRIBUTES: dict[str, str] = {
    name: f.json_schema_extra["catalog"]  # type: ignore[index]
    for name, f in Role.model_fields.items()
    if isinstance(f.json_schema_extra, dict) and "catalog" in f.json_schema_extra
}


BUNDLE_RE = r"^[a-z0-9_]{1,32}$"
BACKUP_DIR_RE = r"^/[A-Za-z0-9._/-]{1,200}$"
Bundle = Annotated[str, Field(pattern=BUNDLE_RE)]


class Sizing(Strict):
    enabled: bool = True  # derive memory, parallelism and WAL settings from the host's resources
    max_connections: Annotated[int, Field(ge=5, le=10000)] = 100  # what the derivation plans for


class Schema(Strict):
    shared: list[Bundle] = Field(default_factory=lambda: ["hm"])  # bundles for the shared database
    ai: list[Bundle] = Field(default_factory=lambda: ["pp"])  # bundles for every AI database
    embedding_dim: Annotated[int, Field(ge=1, le=16000)] = 1536  # psql variable :embedding_dim


class Database(Strict):
    # required for a database that is not derived (shared or AI); `catalog`: how the server query reads it
    owner: Name | None = Field(None, json_schema_extra={"catalog": "pg_get_userbyid(d.datdba)"})
    extensions: list[Extension] | None = None  # default: default_extensions
    bundles: list[Bundle] | None = None  # default: schema.shared / schema.ai for derived ones, else none
    connect: list[Name] = Field(default_factory=list)  # roles granted CONNECT besides the owner
    grants: dict[Name, dict[SchemaName, Privileges]] = Field(default_factory=dict)  # role -> schema -> privileges
    jobs: dict[JobName, Job] = Field(default_factory=dict)  # pg_cron jobs run in this database, by name
    state: Literal["present", "absent"] = "present"

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict) and "extensions" in data:
            data = {**data, "extensions": _extension_list(data["extensions"])}
        return data


# Database attributes read from pg_database -> their expression over `pg_database d`.
DATABASE_ATTRIBUTES: dict[str, str] = {
    name: f.json_schema_extra["catalog"]  # type: ignore[index]
    for name, f in Database.model_fields.items()
    if isinstance(f.json_schema_extra, dict) and "catalog" in f.json_schema_extra
}


HBA_TYPES = ("local", "host", "hostssl", "hostnossl")
SAFE_METHODS = ("scram-sha-256", "peer", "reject", "cert")
INSECURE_METHODS = ("trust", "password", "md5")
HBA_WORD_RE = re.compile(r"^(all|sameuser|samerole|replication|\+?[a-z_][a-z0-9_-]*)(,[+a-z_][a-z0-9_-]*)*$")


class HbaRule(Strict):
    type: Literal["local", "host", "hostssl", "hostnossl"]
    database: Annotated[str, Field(pattern=HBA_WORD_RE.pattern)] = "all"
    user: Annotated[str, Field(pattern=HBA_WORD_RE.pattern)] = "all"
    address: str | None = None
    method: Literal["scram-sha-256", "peer", "reject", "cert", "trust", "password", "md5"] = "scram-sha-256"

    @model_validator(mode="after")
    def _check(self) -> HbaRule:
        if self.type == "local":
            if self.address is not None:
                raise ValueError("address: a local rule takes no address")
        else:
            if self.address is None:
                raise ValueError(f"address: a {self.type} rule needs an address (CIDR)")
            try:
                ipaddress.ip_network(self.address, strict=True)
            except ValueError as e:
                raise ValueError(f"address: {self.address!r} is not a CIDR network ({e})") from None
        if self.method == "peer" and self.type != "local":
            raise ValueError("method: peer works only for local rules")
        return self


def _default_hba() -> list[HbaRule]:
    return [
        HbaRule(type="local", database="all", user="all", method="scram-sha-256"),
        HbaRule(type="host", database="all", user="all", address="127.0.0.1/32"),
        HbaRule(type="host", database="all", user="all", address="::1/128"),
    ]


class HearthConfig(Strict):
    cluster: Cluster = Field(default_factory=Cluster)
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    hba: list[HbaRule] = Field(default_factory=_default_hba)
    allow_insecure_auth: bool = False
    allow_superuser: bool = False
    allow_drop: bool = False
    password_min_length: Annotated[int, Field(ge=12, le=256)] = 16
    generate_passwords: bool = True
    secrets_file: LocalPath = ".hearthdb/secrets.yml"
    backup_dir: Annotated[str, Field(pattern=BACKUP_DIR_RE)] = "/var/backups/hearthdb"
    schema_dirs: list[LocalPath] = Field(default_factory=list)  # folders of bundles searched before schema/
    cron_database: Name | None = None  # where pg_cron keeps the jobs; null: derived from where they are
    shared_db: SharedDatabase = Field(default_factory=SharedDatabase)
    ai_names: list[Name] = Field(default_factory=lambda: ["logos", "aletheia"])
    ai_db_suffix: Annotated[str, Field(pattern=r"^[a-z0-9_]{0,16}$")] = "_db"
    default_extensions: list[Extension] = Field(default_factory=lambda: [Extension(name="vector")])
    template1_extensions: list[Extension] = Field(default_factory=list)
    extra_extensions: dict[ExtName, PackageName] = Field(default_factory=dict)  # name -> Debian package or None
    schema_: Schema = Field(default_factory=Schema, alias="schema")
    tls: Tls = Field(default_factory=Tls)
    sizing: Sizing = Field(default_factory=Sizing)
    roles: dict[Name, Role] = Field(default_factory=dict)
    databases: dict[Name, Database] = Field(default_factory=dict)
    backup: Backup = Field(default_factory=Backup)
    ha: Ha = Field(default_factory=Ha)
    pooler: Pooler = Field(default_factory=Pooler)
    monitoring: Monitoring = Field(default_factory=Monitoring)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("default_extensions", "template1_extensions"):
                if key in data:
                    data[key] = _extension_list(data[key])
        return data

    @model_validator(mode="after")
    def _check(self) -> HearthConfig:
        seen: set[str] = set()
        for i, ai in enumerate(self.ai_names):
            if ai in seen:
                raise ValueError(f"ai_names[{i}]: {ai!r} is listed twice")
            seen.add(ai)
            db = ai_database(self, ai)
            try:
                check_name(db)
            except ValueError as e:
                raise ValueError(f"ai_names[{i}]: its database name {e}") from None
            if self.shared_db.enabled and (
                ai == self.shared_db.owner or db == self.shared_db.name or ai == self.shared_db.name
            ):
                raise ValueError(f"ai_names[{i}]: {ai!r} clashes with the shared database or its owner")
        for key in ("default_extensions", "template1_extensions"):
            names = [e.name for e in getattr(self, key)]
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"{key}: {sorted(dup)[0]!r} is listed twice")
        _check_extensions(self)
        check_settings(self.settings)
        _check_references(self)
        _check_ha(self)
        target = ClusterTarget.of(self.cluster)
        check_backup(self.backup, self.settings, target.data_directory, target.etc)
        return self


def _check_extensions(cfg: HearthConfig) -> None:
    """Every declared extension is one hearthdb knows for the cluster's version, or is declared under
    extra_extensions: a typo must not reach apt or CREATE EXTENSION."""
    known = known_extensions(cfg.cluster.version, cfg.extra_extensions)
    where: list[tuple[str, list[Extension]]] = [
        ("default_extensions", cfg.default_extensions),
        ("template1_extensions", cfg.template1_extensions),
    ]
    where += [(f"databases.{n}.extensions", db.extensions or []) for n, db in cfg.databases.items()]
    for key, extensions in where:
        for i, ext in enumerate(extensions):
            if ext.name in known:
                continue
            if ext.name in known_extensions(16):
                reason = f"{ext.name!r} was removed in PostgreSQL 17"
            else:
                close = difflib.get_close_matches(ext.name, sorted(known), n=1, cutoff=0.6)
                reason = f"unknown extension {ext.name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            raise ValueError(f"{key}[{i}].name: {reason} (declare others under extra_extensions)")


def _check_references(cfg: HearthConfig) -> None:
    """Cross-key rules: owners and memberships name declared roles; risky choices need their allow flag."""
    roles = declared_role_names(cfg)
    present = {n for n in roles if cfg.roles.get(n, Role()).state == "present"}
    for i, rule in enumerate(cfg.hba):
        if rule.method in INSECURE_METHODS and not cfg.allow_insecure_auth:
            raise ValueError(
                f"hba[{i}].method: {rule.method!r} is refused (use scram-sha-256), or set allow_insecure_auth: true"
            )
    for name, role in cfg.roles.items():
        if role.superuser and not cfg.allow_superuser:
            raise ValueError(f"roles.{name}.superuser: refused; set allow_superuser: true to permit it")
        for i, group in enumerate(role.member_of):
            if group not in roles and group not in PREDEFINED_ROLES:
                raise ValueError(
                    f"roles.{name}.member_of[{i}]: role {group!r} is not declared in roles; add it under roles"
                )
        if role.state == "absent" and not cfg.allow_drop:
            raise ValueError(f"roles.{name}.state: absent needs allow_drop: true (the role will be dropped)")
        if role.state == "absent" and name in derived_role_names(cfg):
            raise ValueError(f"roles.{name}.state: {name!r} is required by shared_db or ai_names")
    dirs = bundle_dirs(cfg)
    where = ", ".join(str(d) for d in dirs)
    for key, bundles in (("schema.shared", cfg.schema_.shared), ("schema.ai", cfg.schema_.ai)):
        for b in bundles:
            if find_bundle(b, dirs) is None:
                raise ValueError(f"{key}: bundle {b!r} has no folder in {where}")
    derived = derived_database_names(cfg)
    for name, db in cfg.databases.items():
        for b in db.bundles or []:
            if find_bundle(b, dirs) is None:
                raise ValueError(f"databases.{name}.bundles: bundle {b!r} has no folder in {where}")
        if db.owner is None and name not in derived and db.state == "present":
            raise ValueError(f"databases.{name}.owner: required for a database hearthdb does not derive")
        if db.owner is not None and db.owner not in present:
            raise ValueError(f"databases.{name}.owner: role {db.owner!r} is not declared in roles; add it under roles")
        for role in db.connect:
            if role not in present:
                raise ValueError(
                    f"databases.{name}.connect: role {role!r} is not declared in roles; add it under roles"
                )
        if db.state == "absent" and not cfg.allow_drop:
            raise ValueError(f"databases.{name}.state: absent needs allow_drop: true (the database will be dropped)")
        if db.state == "absent" and name in derived:
            raise ValueError(f"databases.{name}.state: {name!r} is required by shared_db or ai_names")
        _check_grants(cfg, name, db, present)
    _check_jobs(cfg, present)


def _check_ha(cfg: HearthConfig) -> None:
    """The roles HA and the pooler add must not be declared again; pooled databases must be managed."""
    for key, name in system_role_keys(cfg).items():
        if name in cfg.roles or name in derived_role_names(cfg):
            raise ValueError(
                f"{key}: {name!r} is also a declared role; hearthdb creates it itself, choose another name"
            )
    if cfg.pooler.enabled and cfg.pooler.databases is not None:
        managed = set(derived_database_names(cfg)) | {n for n, d in cfg.databases.items() if d.state == "present"}
        for i, db in enumerate(cfg.pooler.databases):
            if db not in managed:
                raise ValueError(f"pooler.databases[{i}]: {db!r} is not a database hearthdb manages")
    if cfg.ha.enabled and cfg.backup.enabled:
        repo = cfg.backup.repository.host
        if repo is None:
            raise ValueError(
                "backup.repository.host: required with ha: the members share one stanza, and a repository on "
                "each member would split the cluster's backups at every failover; name a host outside the cluster"
            )
        if repo in cfg.ha.members or repo in cfg.ha.etcd_members:
            raise ValueError(
                f"backup.repository.host: {repo!r} is a member of the ha cluster; the repository must outlive "
                "any member, name a host outside ha.members and ha.etcd"
            )


def stanza_of(cfg: HearthConfig, host_name: str) -> str | None:
    """A database host's pgBackRest stanza, None without backups: the members of an HA cluster share
    one, named for its scope, so that a failover hands the same stanza to the new leader."""
    if not cfg.backup.enabled:
        return None
    return stanza_name(cfg.backup, cfg.ha.scope if cfg.ha.enabled else host_name)


def system_role_keys(cfg: HearthConfig) -> dict[str, str]:
    """The roles the ha, pooler and monitoring sections add, by the key that names them."""
    out = {}
    if cfg.ha.enabled:
        out["ha.replication_user"] = cfg.ha.replication_user
    if cfg.pooler.enabled:
        out["pooler.auth_user"] = cfg.pooler.auth_user
    if cfg.monitoring.enabled:
        out["monitoring.role"] = cfg.monitoring.role
    return out


def system_roles(cfg: HearthConfig) -> dict[str, Role]:
    """Those roles as declared: the replication role logs in with a generated password; the pooler's
    lookup role logs in by peer only (no password)."""
    out = {}
    if cfg.ha.enabled:
        out[cfg.ha.replication_user] = Role(replication=True)
    if cfg.pooler.enabled:
        out[cfg.pooler.auth_user] = Role(password=False)
    if cfg.monitoring.enabled:  # the exporter's role: statistics only, by peer
        out[cfg.monitoring.role] = Role(password=False, member_of=["pg_monitor"])
    return out


def _database_owner(cfg: HearthConfig, name: str) -> str | None:
    db = cfg.databases.get(name)
    if db is not None and db.owner:
        return db.owner
    if cfg.shared_db.enabled and name == cfg.shared_db.name:
        return cfg.shared_db.owner
    return next((ai for ai in cfg.ai_names if ai_database(cfg, ai) == name), None)


def _check_grants(cfg: HearthConfig, name: str, db: Database, present: set[str]) -> None:
    for role in db.grants:
        key = f"databases.{name}.grants.{role}"
        if db.state == "absent":
            raise ValueError(f"{key}: the database is declared absent")
        if role not in present:
            raise ValueError(f"{key}: role {role!r} is not declared in roles; add it under roles")
        if role == _database_owner(cfg, name):
            raise ValueError(f"{key}: {role!r} owns the database and holds every privilege on what it owns")


def _check_jobs(cfg: HearthConfig, present: set[str]) -> None:
    """pg_cron serves one database per cluster (`cron_database`), jobs anywhere through it."""
    derived = derived_database_names(cfg)
    seen: dict[str, str] = {}
    for name, db in cfg.databases.items():
        for job_name, job in db.jobs.items():
            key = f"databases.{name}.jobs.{job_name}"
            if db.state == "absent":
                raise ValueError(f"{key}: the database is declared absent; pg_cron cannot run a job in it")
            if job_name in seen:
                raise ValueError(
                    f"{key}: a job of that name is declared in {seen[job_name]} too (job names are cluster-wide)"
                )
            seen[job_name] = name
            role = job.role or _database_owner(cfg, name)
            if job.role is not None and job.role not in present:
                raise ValueError(f"{key}.role: role {job.role!r} is not declared in roles; add it under roles")
            allowed = {_database_owner(cfg, name), *db.connect}
            if role not in allowed:
                raise ValueError(f"{key}.role: {role!r} may not connect to {name} (its owner or a connect role)")
            if job.role is not None and not cfg.roles.get(job.role, Role()).login:
                raise ValueError(f"{key}.role: {job.role!r} cannot log in (login: false); pg_cron runs jobs as a login")
    try:
        where = cron_database_of(cfg)
    except ValueError as e:
        raise ValueError(str(e)) from None
    if cfg.cron_database is not None:
        db = cfg.databases.get(cfg.cron_database)
        if cfg.cron_database not in derived and (db is None or db.state == "absent"):
            raise ValueError(f"cron_database: {cfg.cron_database!r} is not a declared database")
    for name, db in cfg.databases.items():
        for i, ext in enumerate(db.extensions or []):
            if ext.name == "pg_cron" and name != where:
                raise ValueError(
                    f"databases.{name}.extensions[{i}].name: pg_cron can only be created in the database "
                    f"cron.database_name names ({where}); its jobs run in any database"
                )
    everywhere = (("default_extensions", cfg.default_extensions), ("template1_extensions", cfg.template1_extensions))
    for key, extensions in everywhere:
        for i, ext in enumerate(extensions):
            if ext.name == "pg_cron" and len([*derived, *cfg.databases]) > 1:
                raise ValueError(
                    f"{key}[{i}].name: pg_cron can only be created in one database (cron.database_name); "
                    "declare it under that database's extensions, or declare jobs"
                )


def cron_database_of(cfg: HearthConfig) -> str | None:
    """The database pg_cron keeps its jobs in, or None when no job or pg_cron is declared."""
    with_cron = [
        n
        for n, db in cfg.databases.items()
        if db.state == "present" and (db.jobs or any(e.name == "pg_cron" for e in db.extensions or []))
    ]
    return cron_database(cfg.cron_database, with_cron, cfg.shared_db.name if cfg.shared_db.enabled else None)


def bundle_dirs(cfg: HearthConfig) -> list[Path]:
    """Where bundles are looked up, first match wins: `schema_dirs` (with the profile's own `schema/`
    and HEARTHDB_SCHEMA_DIR put there by `load_config`), then hearthdb's `schema/`."""
    return [*(Path(d) for d in cfg.schema_dirs), SCHEMA]


def find_bundle(name: str, dirs: list[Path]) -> Path | None:
    return next((d / name for d in dirs if (d / name).is_dir()), None)


def derived_role_names(cfg: HearthConfig) -> list[str]:
    return [*([cfg.shared_db.owner] if cfg.shared_db.enabled else []), *cfg.ai_names]


def declared_role_names(cfg: HearthConfig) -> list[str]:
    return list(dict.fromkeys([*derived_role_names(cfg), *cfg.roles, *system_roles(cfg)]))


def derived_database_names(cfg: HearthConfig) -> list[str]:
    shared = [cfg.shared_db.name] if cfg.shared_db.enabled else []
    return [*shared, *(ai_database(cfg, ai) for ai in cfg.ai_names)]


def ai_database(cfg: HearthConfig, ai: str) -> str:
    return f"{ai}{cfg.ai_db_suffix}"


# ---------------------------------------------------------------------------------------------- loading


def _suggest(key: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation: `Role`, `dict[str, Role]`, `list[HbaRule] | None` ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class that holds the key at `loc` (for typo suggestions)."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if model is None:
            return None
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is not None:
            model = _model_in(field.annotation)
        # dict keys and list indexes stay inside the model found for their field
    return model


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for an invalid dict key: the key itself is the path
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# What a pattern-checked value must look like, in words.
PATTERN_HELP = {
    HBA_WORD_RE.pattern: "use all, sameuser, samerole, replication, or names separated by ',' ('+' marks a group)",
    LOCALE_RE.pattern: "use a locale name such as C.UTF-8 or en_US.UTF-8 (letters, digits, '_', '.', '@', '-')",
    VERSION_RE.pattern: "use a version such as 1.6 or 0.8.0",
    BUNDLE_RE: "use a bundle folder name: lower-case letters, digits and '_', at most 32",
    BACKUP_DIR_RE: "use an absolute path of letters, digits, '.', '_', '-' and '/'",
}
# Errors whose message does not show the offending value by itself.
_SHOW_INPUT = ("missing", "extra_forbidden", "value_error", "assertion_error", "string_pattern_mismatch")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_errors(err: ValidationError, source: str, root: type[BaseModel] = HearthConfig) -> str:
    """One line per problem: `<source>: <key path>: <reason>`."""
    lines = []
    errors = err.errors()
    # A misspelt required key is one problem, not two: keep the suggestion, drop "Field required".
    suggested = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            close = _suggest(str(e["loc"][-1]), _model_at(e["loc"], root))
            if close:
                suggested.add((*e["loc"][:-1], close.split("'")[1]))
    for e in errors:
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if e["type"] == "missing" and loc in suggested:
            continue
        msg = e["msg"].removeprefix("Value error, ")
        # A model's own rule names its field first ("address: ..."): make that part of the key path.
        model = _model_at((*loc, ""), root) if loc else None
        head, sep, rest = msg.partition(": ")
        if model is not None and sep and " " not in head and re.split(r"[.\[]", head)[0] in model.model_fields:
            loc, msg = (*loc, head), rest
        if e["type"] == "extra_forbidden":
            msg = f"unknown key{_suggest(str(loc[-1]), _model_at(loc, root))}"
        elif e["type"] == "string_pattern_mismatch":
            pattern = str((e.get("ctx") or {}).get("pattern", ""))
            msg = f"{_short(e.get('input'))} is not valid here; {PATTERN_HELP.get(pattern, f'it must match {pattern}')}"
        elif e["type"] not in _SHOW_INPUT:
            msg = f"{msg} (got {_short(e.get('input'))})"
        # Cross-key rules raised at the top level name their own key path.
        lines.append(f"{source}: {_loc(loc)}: {msg}" if loc else f"{source}: {msg}")
    return "\n".join(lines)


def load_yaml(path: Path, what: str = "") -> Any:
    """A YAML file's data; unreadable or invalid YAML is a one-line error naming the file."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read{what}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): must be a mapping of keys, got {type(data).__name__}")
    return data


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or ROOT / "hearthdb.yml")


def parse_config(data: dict[str, Any], source: str = "hearthdb.yml") -> HearthConfig:
    try:
        return HearthConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source)) from None


def load_config(path: Path | None = None) -> HearthConfig:
    """Defaults (group_data/defaults.yml) overlaid by the user's hearthdb.yml, validated. Relative
    controller paths in the file (`secrets_file`, `tls.dir`) are relative to the file's folder, so a
    project of your own keeps its secrets beside its hearthdb.yml; with no file, to hearthdb's folder."""
    path = path or config_path()
    data = _read_yaml(DEFAULTS_FILE)
    if path.exists():
        data.update(_read_yaml(path))
    elif os.environ.get(CONFIG_ENV):
        raise ConfigError(f"{path}: {CONFIG_ENV} names a file that does not exist")
    base = path.resolve().parent if path.exists() else ROOT
    # bundles: the file's own schema_dirs (relative to it), HEARTHDB_SCHEMA_DIR, a profile's schema/ folder
    dirs = [str(d if Path(d).is_absolute() else base / d) for d in data.get("schema_dirs") or [] if isinstance(d, str)]
    dirs += [str(d) for d in extra_schema_dirs()]
    if path.exists() and (base / "schema").is_dir() and base != ROOT:
        dirs.append(str(base / "schema"))
    if dirs:
        data["schema_dirs"] = list(dict.fromkeys(dirs))
    cfg = parse_config(data, path.name)
    if not path.exists():
        return cfg
    secrets = Path(cfg.secrets_file).expanduser()
    tls = Path(cfg.tls.dir).expanduser()
    return cfg.model_copy(
        update={
            "secrets_file": str(secrets if secrets.is_absolute() else base / secrets),
            "tls": cfg.tls.model_copy(update={"dir": str(tls if tls.is_absolute() else base / tls)}),
        }
    )
