"""A steady writer for failover drills: one client committing numbered rows through an endpoint, as an
application would (reconnecting after an error), recording which commits were acknowledged and when."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass, field

import psycopg


@dataclass
class Writer:
    dsn: str  # a libpq connection string (multi-host with target_session_attrs, or one endpoint)
    table: str = "drill_writes"
    pause: float = 0.02  # seconds between commits
    acked: list[tuple[int, float]] = field(default_factory=list)  # (id, monotonic time of the ack)
    errors: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def create(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        n = int(time.time() * 1000) * 1000  # ids of this run, above those of earlier runs
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, connect_timeout=2)
                n += 1
                conn.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (n,))
                conn.commit()
                self.acked.append((n, time.monotonic()))
            except psycopg.Error as e:
                self.errors.append((time.monotonic(), str(e).splitlines()[0][:200]))
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
                time.sleep(0.1)
                continue
            time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def first_ack_after(self, t: float) -> float | None:
        """Seconds from `t` to the first acknowledged commit after it."""
        return next((at - t for _, at in self.acked if at > t), None)

    def outage_after(self, t: float, gap: float = 1.0) -> float | None:
        """Seconds from `t` to the first commit acknowledged after the first pause longer than `gap`
        that ends after `t` (commits in flight when the leader went are acknowledged just after it)."""
        times = [at for _, at in self.acked]
        for a, b in itertools.pairwise(times):
            if b > t and b - a > gap:
                return b - t
        return None

    def wait_acks(self, count: int, timeout: float = 60) -> None:
        """Until `count` more commits are acknowledged."""
        want = len(self.acked) + count
        deadline = time.monotonic() + timeout
        while len(self.acked) < want:
            if time.monotonic() > deadline:
                last = self.errors[-1][1] if self.errors else "none"
                raise TimeoutError(f"writer: {count} commits not acknowledged within {timeout} s (last error: {last})")
            time.sleep(0.05)


def endpoint_dsn(
    addresses: list[str], port: int, dbname: str, user: str, password: str, attrs: str | None = None
) -> str:
    """Every member's endpoint in one libpq string: a client goes on to the next HAProxy when the host it
    used is gone. The endpoint routes to the leader itself; `attrs` (target_session_attrs, e.g.
    read-write) is for strings that list the servers themselves (port 5432), not for the pooler: PgBouncer
    reports the hot-standby state its pooled connection had when it was opened."""
    hosts = ",".join(addresses)
    ports = ",".join(str(port) for _ in addresses)
    return psycopg.conninfo.make_conninfo(
        host=hosts,
        port=ports,
        dbname=dbname,
        user=user,
        password=password,
        connect_timeout="2",
        # a host that loses power sends no reset: without these a client waits on its socket for minutes
        keepalives="1",
        keepalives_idle="1",
        keepalives_interval="1",
        keepalives_count="2",
        tcp_user_timeout="2000",
        **({"target_session_attrs": attrs} if attrs else {}),
    )
