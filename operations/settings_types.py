"""Types of the postgresql.conf parameters hearthdb users most often set, checked before any host is
touched. Unknown parameters pass here and are checked by the server itself before they go live."""

from __future__ import annotations

import re

Scalar = bool | int | float | str

MEMORY_RE = re.compile(r"^(-?\d+)\s*(B|kB|MB|GB|TB)?$")
TIME_RE = re.compile(r"^(-?\d+)\s*(us|ms|s|min|h|d)?$")
# Characters refused in string values: the value is quoted by hearthdb, so a quote, backslash or ';' in
# it is an injection attempt or a mistake. Shell commands (*_command parameters) may hold ';'.
UNSAFE_CHARS = ("'", "\\", ";")
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
INT_MAX = 2**31 - 1
PAGE = 8192
# name -> (kind, min, max) for numbers and sizes; kind "bool"; or a tuple of allowed words.
# Bounds are PostgreSQL's own (guc_tables.c): sizes in bytes, durations in the parameter's unit
# (milliseconds, or seconds for checkpoint_timeout). Anything outside would be refused by the server.
KNOWN: dict[str, tuple] = {
    "shared_buffers": ("memory", 16 * PAGE, INT_MAX // 2 * PAGE),  # 128kB .. 8TB
    "work_mem": ("memory", 64 * 1024, INT_MAX * 1024),  # 64kB .. 2TB
    "maintenance_work_mem": ("memory", 1024 * 1024, INT_MAX * 1024),  # 1MB .. 2TB
    "effective_cache_size": ("memory", PAGE, INT_MAX * PAGE),  # 8kB .. 16TB
    "wal_buffers": ("memory", -1, INT_MAX // PAGE * PAGE),  # -1 (automatic), else .. 2GB
    "max_wal_size": ("memory", 2 * 1024**2, INT_MAX * 1024**2),  # 2MB .. 2PB
    "min_wal_size": ("memory", 2 * 1024**2, INT_MAX * 1024**2),
    "temp_buffers": ("memory", 100 * PAGE, INT_MAX // 2 * PAGE),  # 800kB .. 8TB
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
    "statement_timeout": ("time", 0, INT_MAX),
    "idle_in_transaction_session_timeout": ("time", 0, INT_MAX),
    "lock_timeout": ("time", 0, INT_MAX),
    "log_min_duration_statement": ("time", -1, INT_MAX),
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
TIME_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}  # in ms
TIME_BASE = {"checkpoint_timeout": 1000}  # the parameter's unit in ms when not milliseconds


def _size_text(n: int) -> str:
    """Bytes for a message: 8796093014016 -> '8TB', 131072 -> '128kB'."""
    for unit in ("TB", "GB", "MB", "kB"):
        if abs(n) >= UNITS[unit]:
            return f"{n / UNITS[unit]:.4g}{unit}"
    return f"{n}B"


def _check_string(name: str, value: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters (newlines, tabs) are not allowed in values")
    allowed = (";",) if name.endswith("_command") else ()
    bad = [c for c in UNSAFE_CHARS if c in value and c not in allowed]
    if bad:
        raise ValueError(f"{value!r} contains {bad[0]!r}: quotes, backslashes and ';' are refused in values")


def _check_memory(name: str, value: Scalar, low: int, high: int) -> None:
    text = str(value).replace(" ", "")
    m = MEMORY_RE.match(text)
    if isinstance(value, bool) or not m:
        hint = "; units are case-sensitive" if re.match(r"^-?\d+(b|kb|mb|gb|tb)$", text, re.I) else ""
        raise ValueError(f"{value!r} is not a size (a number with B, kB, MB, GB or TB{hint})")
    number, unit = int(m.group(1)), m.group(2)
    if number == -1 and low == -1 and not unit:
        return  # -1: the server chooses (wal_buffers)
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    # a bare number is in the parameter's own unit: 8kB pages for buffers, MB for WAL sizes, kB otherwise
    base = PAGE if name in ("shared_buffers", "effective_cache_size", "wal_buffers", "temp_buffers") else 1024
    if name in ("max_wal_size", "min_wal_size"):
        base = 1024**2
    size = number * (UNITS[unit] if unit else base)
    if size < max(low, 0):
        raise ValueError(f"{value!r} is below PostgreSQL's minimum for {name} ({_size_text(low)})")
    if size > high:
        raise ValueError(f"{value!r} is above PostgreSQL's maximum for {name} ({_size_text(high)})")


def _check_time(name: str, value: Scalar, low: int, high: int) -> None:
    text = str(value).replace(" ", "")
    m = TIME_RE.match(text)
    if isinstance(value, bool | float) or not m:
        raise ValueError(f"{value!r} is not a duration (a number with us, ms, s, min, h or d)")
    number, unit = int(m.group(1)), m.group(2)
    base = TIME_BASE.get(name, 1)
    amount = number * TIME_UNITS[unit] / base if unit else number  # in the parameter's unit
    if amount < 0 and not (low == -1 and number == -1 and not unit):
        raise ValueError(f"{value!r} is negative" + (" (only -1, meaning off, is allowed)" if low == -1 else ""))
    unit_name = "s" if base == 1000 else "ms"
    if amount > high:
        raise ValueError(f"{value!r} is above PostgreSQL's maximum for {name} ({high}{unit_name})")
    if amount < low:
        raise ValueError(f"{value!r} is below PostgreSQL's minimum for {name} ({low}{unit_name})")


def check_setting(name: str, value: Scalar) -> None:
    """Raise ValueError naming what is wrong with `name = value`."""
    if name in MANAGED:
        raise ValueError(f"not settable here: {MANAGED[name]}")
    if isinstance(value, str):
        _check_string(name, value)
    spec = KNOWN.get(name)
    if spec is None:
        return
    kind = spec[0]
    if kind == "bool":
        if not isinstance(value, bool) and str(value).lower() not in ("on", "off", "true", "false"):
            raise ValueError(f"{value!r} is not a boolean (true/false, on/off)")
    elif kind == "memory":
        _check_memory(name, value, spec[1], spec[2])
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
        _check_time(name, value, spec[1], spec[2])
    elif str(value) not in spec:
        raise ValueError(f"{value!r} is not one of {', '.join(spec)}")
