"""The deploy lock: a lock whose run died is recognised as stale; a live one is not."""

from __future__ import annotations

import os
import time

from operations.lock import stale


def test_deploy_lock_staleness() -> None:
    now = time.time()
    assert not stale(f"ctl {os.getpid()} {int(now)}", now, "ctl")  # this very run: alive
    assert stale(f"ctl 999999999 {int(now)}", now, "ctl")  # same controller, pid gone
    assert not stale(f"other 999999999 {int(now)}", now, "ctl")  # another controller: cannot tell
    assert stale(f"other 1 {int(now) - 7200}", now, "ctl")  # older than an hour
    assert stale("garbage", now, "ctl")
