"""Derived settings: proportional to memory and cores, within /dev/shm, and accepted by our own checks."""

from __future__ import annotations

from operations.settings_types import check_setting
from operations.sizing import GB, MB, Resources, derive


def test_a_24gb_two_core_ssd_host() -> None:
    s = derive(Resources(cores=2, memory=24 * GB, shm=12 * GB, rotational=False))
    assert s["shared_buffers"] == "6GB"
    assert s["effective_cache_size"] == "18GB"
    assert s["maintenance_work_mem"] == "6GB"
    assert s["max_parallel_maintenance_workers"] == 2
    assert s["max_parallel_workers_per_gather"] == 1
    assert s["random_page_cost"] == 1.1
    assert s["hnsw.ef_search"] == 128 and s["ivfflat.probes"] == 10
    for name, value in s.items():
        check_setting(name, value)


def test_maintenance_work_mem_stays_within_dev_shm() -> None:
    s = derive(Resources(cores=8, memory=64 * GB, shm=2 * GB))
    assert s["maintenance_work_mem"] == f"{int(2 * GB * 0.8) // MB}MB"


def test_small_host_gets_floors_and_rotational_disk_costs() -> None:
    s = derive(Resources(cores=1, memory=512 * MB, shm=0, rotational=True))
    assert s["shared_buffers"] == "128MB"
    assert s["work_mem"] == "4MB"
    assert s["maintenance_work_mem"] == "128MB"
    assert s["random_page_cost"] == 4.0
    assert s["effective_io_concurrency"] == 2
