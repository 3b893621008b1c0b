"""What hearthdb knows of extensions: which exist, the Debian package that ships each, and the ones whose
library must be in shared_preload_libraries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Extensions outside postgresql-NN itself (contrib ships with it): name -> package suffix.
PACKAGES = {
    "vector": "pgvector",
    "timescaledb": "timescaledb",
    "postgis": "postgis-3",
    "postgis_topology": "postgis-3",
    "postgis_raster": "postgis-3",
    "pg_cron": "cron",
    "pgaudit": "pgaudit",
}
# Extensions postgresql-NN ships itself on Debian 13 (PostgreSQL 17): plpgsql and the contrib modules.
CONTRIB = frozenset(
    """amcheck autoinc bloom btree_gin btree_gist citext cube dblink dict_int dict_xsyn earthdistance
    file_fdw fuzzystrmatch hstore insert_username intagg intarray isn lo ltree moddatetime pageinspect
    pg_buffercache pg_freespacemap pg_prewarm pg_stat_statements pg_surgery pg_trgm pg_visibility
    pg_walinspect pgcrypto pgrowlocks pgstattuple plpgsql postgres_fdw refint seg sslinfo tablefunc tcn
    tsm_system_rows tsm_system_time unaccent uuid-ossp xml2""".split()
)
# Contrib modules removed in PostgreSQL 17 (still shipped by postgresql-15 and -16).
REMOVED_IN_17 = frozenset({"adminpack", "old_snapshot"})
# Extensions config validation accepts without extra_extensions.
KNOWN_EXTENSIONS = CONTRIB | REMOVED_IN_17 | frozenset(PACKAGES)

# Extensions that only work when their library is loaded at server start.
PRELOAD = {
    "pg_stat_statements": "pg_stat_statements",
    "timescaledb": "timescaledb",
    "pg_cron": "pg_cron",
    "pgaudit": "pgaudit",
    "pg_prewarm": "pg_prewarm",
}


def known_extensions(version: int, extra: Mapping[str, str | None] | None = None) -> frozenset[str]:
    """Extension names a cluster of this version can have: hearthdb's catalog plus the user's
    `extra_extensions`."""
    known = KNOWN_EXTENSIONS - REMOVED_IN_17 if version >= 17 else KNOWN_EXTENSIONS
    return known | frozenset(extra or ())


def packages_for(version: int, extensions: Iterable[str], extra: Mapping[str, str | None] | None = None) -> list[str]:
    """Debian packages to install for these extensions; `extra` (the `extra_extensions` key) maps a
    name to its package (`{version}` replaced by the major version) or to None (already installed)."""
    extra = extra or {}
    out = set()
    for e in extensions:
        if e in extra:
            if extra[e]:
                out.add(extra[e].replace("{version}", str(version)))
        elif e in PACKAGES:
            out.add(f"postgresql-{version}-{PACKAGES[e]}")
    return sorted(out)


def preload_for(extensions: Iterable[str]) -> list[str]:
    # timescaledb must come first when present (its docs); the rest sorted for a stable file.
    libs = sorted({PRELOAD[e] for e in extensions if e in PRELOAD})
    if "timescaledb" in libs:
        libs.remove("timescaledb")
        libs.insert(0, "timescaledb")
    return libs
