"""Rendering the managed configuration files from the desired state (Jinja, StrictUndefined)."""

from __future__ import annotations

import jinja2

from .catalog import preload_for
from .config import HearthConfig, Scalar, cron_database_of
from .desired import DatabaseSpec
from .ha import split_settings
from .jobs import cron_settings
from .monitoring import stat_statements_max
from .paths import TEMPLATES
from .pgbackrest import archive_settings
from .target import Cluster
from .tls import tls_settings

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,  # configuration files, not HTML
)


def conf_value(value: Scalar) -> str:
    """A postgresql.conf value: booleans as on/off, numbers bare, strings single-quoted and escaped."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# A security baseline every managed cluster gets (CIS PostgreSQL: SCRAM only, connections and DDL
# logged); the user's `settings` override any of it.
BASELINE: dict[str, Scalar] = {
    "password_encryption": "scram-sha-256",
    "log_connections": True,
    "log_disconnections": True,
    "log_statement": "ddl",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}


def effective_settings(
    cfg: HearthConfig,
    databases: dict[str, DatabaseSpec],
    derived: dict[str, Scalar] | None = None,
    stanza: str | None = None,
) -> dict[str, Scalar]:
    """What the conf.d file sets: listen_addresses, shared_preload_libraries for declared extensions
    that need it (plus any the user lists), settings derived from the host's resources, the security
    baseline, TLS, WAL archiving into the host's backup `stanza` (the config refuses user settings for
    it), then the user's settings, which override all the rest."""
    names = {e.name for db in databases.values() for e in db.extensions}
    names |= {e.name for e in cfg.template1_extensions}
    user_libs = [s.strip() for s in str(cfg.settings.get("shared_preload_libraries", "")).split(",") if s.strip()]
    libs = list(dict.fromkeys([*preload_for(names), *user_libs]))
    out: dict[str, Scalar] = {"listen_addresses": ",".join(cfg.cluster.listen_addresses)}
    if libs:
        out["shared_preload_libraries"] = ",".join(libs)
    out.update(derived or {})
    out.update(BASELINE)
    out.update(cron_settings(cron_database_of(cfg)))
    if "pg_stat_statements" in names:  # one entry per statement and database: sized for many databases
        out["pg_stat_statements.max"] = stat_statements_max(sum(1 for db in databases.values() if db.present))
        out["pg_stat_statements.track"] = "top"
    if "timescaledb" in names:
        out["timescaledb.telemetry_level"] = "off"  # it would phone home otherwise
    out.update(tls_settings(cfg.tls, Cluster.of(cfg.cluster)))
    if stanza is not None:
        out.update(archive_settings(cfg.backup, stanza))
    out.update({k: v for k, v in cfg.settings.items() if k != "shared_preload_libraries"})
    return out


def settings_content(
    cfg: HearthConfig,
    databases: dict[str, DatabaseSpec],
    derived: dict[str, Scalar] | None = None,
    stanza: str | None = None,
    patroni: bool = False,
) -> str:
    """The conf.d file; on a Patroni member without the parameters Patroni owns (they go to its dynamic
    configuration, `ha.split_settings`)."""
    settings = effective_settings(cfg, databases, derived, stanza)
    if patroni:
        settings = split_settings(settings)[0]
    items = [(k, conf_value(v)) for k, v in settings.items()]
    return _env.get_template("postgresql.conf.j2").render(settings=items)


def hba_content(cfg: HearthConfig, extra: list[str] | None = None) -> str:
    """pg_hba.conf: postgres by peer, then `extra` (the rules of ha and pooler, `ha.hba_lines`), then the
    declared rules."""
    # with tls.require, TCP rules only match encrypted connections
    rules = [r.model_copy(update={"type": "hostssl"}) if cfg.tls.require and r.type == "host" else r for r in cfg.hba]
    return _env.get_template("pg_hba.conf.j2").render(rules=rules, extra=extra or [])
