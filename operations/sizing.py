"""Settings derived from the host's resources, in the manner of pgtune, plus what pgvector needs: a
maintenance_work_mem large enough for HNSW graphs (and within /dev/shm, which parallel index builds
use), parallel maintenance workers, and query-time recall defaults (hnsw.ef_search, ivfflat.probes).
Declared `settings` override every derived value."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024**2
GB = 1024**3


@dataclass(frozen=True)
class Resources:
    cores: int
    memory: int  # bytes
    shm: int  # bytes of /dev/shm
    rotational: bool | None = None  # None: unknown


def _size(n: int) -> str:
    """Bytes as the largest whole PostgreSQL unit (MB at least)."""
    if n >= GB and n % GB == 0:
        return f"{n // GB}GB"
    return f"{max(1, n // MB)}MB"


def derive(res: Resources, max_connections: int = 100) -> dict[str, str | int | float]:
    memory = max(res.memory, 256 * MB)
    cores = max(res.cores, 1)
    shared_buffers = memory // 4
    gather = max(1, min(4, cores // 2))
    # what remains after shared buffers, shared by the connections' sorts and hashes (pgtune's 3 per
    # connection), per parallel worker
    work_mem = max(4 * MB, (memory - shared_buffers) // (max_connections * 3) // gather)
    # HNSW builds are fast only while the graph fits; parallel builds place it in /dev/shm
    maintenance = min(memory // 4, 16 * GB)
    if res.shm:
        maintenance = min(maintenance, int(res.shm * 0.8))
    maintenance = max(64 * MB, maintenance)
    ssd = res.rotational is not True
    return {
        "max_connections": max_connections,
        "shared_buffers": _size(shared_buffers // MB * MB),
        "effective_cache_size": _size(memory * 3 // 4 // MB * MB),
        "work_mem": _size(work_mem // MB * MB),
        "maintenance_work_mem": _size(maintenance // MB * MB),
        "max_worker_processes": max(8, cores),
        "max_parallel_workers": cores,
        "max_parallel_workers_per_gather": gather,
        "max_parallel_maintenance_workers": max(1, min(4, cores // 2 if cores > 2 else cores)),
        "wal_buffers": "16MB",
        "min_wal_size": "1GB",
        "max_wal_size": "4GB",
        "checkpoint_completion_target": 0.9,
        "random_page_cost": 1.1 if ssd else 4.0,
        "effective_io_concurrency": 200 if ssd else 2,
        # pgvector's query-time defaults favour speed over recall: on 100k clustered 384-d memories
        # (bench/) ef_search 100 finds 0.947 of the true top 10, 128 finds ~0.97 at the same p95
        # latency (~2 ms); sessions may still SET their own
        "hnsw.ef_search": 128,
        "ivfflat.probes": 10,
    }
