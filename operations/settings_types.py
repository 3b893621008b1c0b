"""Types of the postgresql.conf parameters hearthdb users most often set, checked before any host is
touched. Unknown parameters pass here and are checked by the server itself before they go live."""

from __future__ import annotations

import re

Scalar = bool | int | float | str

MEMORY_RE = re.compile(r"^\d+\s*(B|kB|MB|GB|TB)?$")
TIME_RE = re.compile(r"^-?\d+\s*(us|ms|s|min|h|d)?$")
# Set elsewhere by hearthdb or by postgresql-common: declaring them under `settings` is an error.
MANAGED = {
    "port": "set cluster.port",
    "listen_addresses": "set cluster.listen_addresses",
    "data_directory": "fixed by postgresql-common",
    "hba_file": "fixed by postgresql-common; declare rules under hba",
    "ident_file": "fixed by postgresql-common",
    "config_file": "fixed by postgresql-common",
    "external_pid_file": "fixed by postgresql-common",
    "include": "not a parameter",
    "include_dir": "not a parameter",
    "include_if_exists": "not a parameter",
}
# name -> (kind, min, max) for numbers and sizes; kind "bool"; or a tuple of allowed words.
KNOWN: dict[str, tuple] = {
    "shared_buffers": ("memory", 128 * 1024, 1 << 50),
    "work_mem": ("memory", 64 * 1024, 1 << 41),
    "maintenance_work_mem": ("memory", 1024 * 1024, 1 << 41),
    "effective_cache_size": ("memory", 8 * 1024, 1 << 50),
    "wal_buffers": ("memory", -1, 1 << 31),
    "max_wal_size": ("memory", 2 * 1024 * 1024, 1 << 50),
    "min_wal_size": ("memory", 2 * 1024 * 1024, 1 << 50),
    "temp_buffers": ("memory", 800 * 1024, 1 << 40),
    "max_connections": ("int", 1, 262143),
    "superuser_reserved_connections": ("int", 0, 262143),
    "max_worker_processes": ("int", 0, 262143),
    "max_parallel_workers": ("int", 0, 1024),
    "max_parallel_workers_per_gather": ("int", 0, 1024),
    "max_parallel_maintenance_workers": ("int", 0, 1024),
    "effective_io_concurrency": ("int", 0, 1000),
    "random_page_cost": ("real", 0, 1e10),
    "seq_page_cost": ("real", 0, 1e10),
    "checkpoint_completion_target": ("real", 0, 1),
    "statement_timeout": ("time", 0, 2**31 - 1),
    "idle_in_transaction_session_timeout": ("time", 0, 2**31 - 1),
    "lock_timeout": ("time", 0, 2**31 - 1),
    "log_min_duration_statement": ("time", -1, 2**31 - 1),
    "checkpoint_timeout": ("time", 30, 86400),
    "jit": ("bool",),
    "ssl": ("bool",),
    "fsync": ("bool",),
    "log_connections": ("bool",),
    "log_disconnections": ("bool",),
    "hot_standby": ("bool",),
    "log_statement": ("none", "ddl", "mod", "all"),
    "wal_level": ("minimal", "replica", "logical"),
    "password_encryption": ("scram-sha-256", "md5"),
    "synchronous_commit": ("on", "off", "local", "remote_write", "remote_apply"),
    "ssl_min_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    "hnsw.ef_search": ("int", 1, 1000),
    "ivfflat.probes": ("int", 1, 32768),
}
UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _bytes(text: str, default_unit: int) -> int:
    m = re.match(r"^(\d+)\s*([A-Za-z]*)$", text)
    assert m
    return int(m.group(1)) * (UNITS[m.group(2)] if m.group(2) else default_unit)


def check_setting(name: str, value: Scalar) -> None:
    """Raise ValueError naming what is wrong with `name = value`."""
    if name in MANAGED:
        raise ValueError(f"not settable here: {MANAGED[name]}")
    if isinstance(value, str) and any(ord(c) < 32 for c in value):
        raise ValueError("control characters (newlines, tabs) are not allowed in values")
    spec = KNOWN.get(name)
    if spec is None:
        return
    kind = spec[0]
    if kind == "bool":
        if not isinstance(value, bool) and str(value).lower() not in ("on", "off", "true", "false"):
            raise ValueError(f"{value!r} is not a boolean (true/false, on/off)")
    elif kind == "memory":
        text = str(value)
        if isinstance(value, bool) or not MEMORY_RE.match(text):
            raise ValueError(f"{value!r} is not a size (a number with B, kB, MB, GB or TB)")
        # a bare number is in the parameter's own unit: 8kB pages for buffers and WAL, kB otherwise
        unit = 8192 if name in ("shared_buffers", "effective_cache_size", "wal_buffers", "temp_buffers") else 1024
        if name in ("max_wal_size", "min_wal_size"):
            unit = 1024**2
        size = _bytes(text.replace(" ", ""), unit)
        if not spec[1] <= size <= spec[2]:
            raise ValueError(f"{value!r} is out of range ({spec[1]} to {spec[2]} bytes)")
    elif kind in ("int", "real"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind == "int" and isinstance(value, float))
        ):
            raise ValueError(f"{value!r} is not {'an integer' if kind == 'int' else 'a number'}")
        if not spec[1] <= value <= spec[2]:
            raise ValueError(f"{value!r} is out of range ({spec[1]} to {spec[2]})")
    elif kind == "time":
        text = str(value)
        if isinstance(value, bool) or not TIME_RE.match(text.replace(" ", "")):
            raise ValueError(f"{value!r} is not a duration (a number with us, ms, s, min, h or d)")
        if text.startswith("-") and spec[1] >= 0:
            raise ValueError(f"{value!r} is negative")
    elif str(value) not in spec:
        raise ValueError(f"{value!r} is not one of {', '.join(spec)}")
