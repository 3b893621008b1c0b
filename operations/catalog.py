"""What hearthdb knows of extensions: the Debian package that ships each, and the ones whose library
must be in shared_preload_libraries."""

from __future__ import annotations

from collections.abc import Iterable

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
# Extensions that only work when their library is loaded at server start.
PRELOAD = {
    "pg_stat_statements": "pg_stat_statements",
    "timescaledb": "timescaledb",
    "pg_cron": "pg_cron",
    "pgaudit": "pgaudit",
    "pg_prewarm": "pg_prewarm",
}


def packages_for(version: int, extensions: Iterable[str]) -> list[str]:
    return sorted({f"postgresql-{version}-{PACKAGES[e]}" for e in extensions if e in PACKAGES})


def preload_for(extensions: Iterable[str]) -> list[str]:
    # timescaledb must come first when present (its docs); the rest sorted for a stable file.
    libs = sorted({PRELOAD[e] for e in extensions if e in PRELOAD})
    if "timescaledb" in libs:
        libs.remove("timescaledb")
        libs.insert(0, "timescaledb")
    return libs
