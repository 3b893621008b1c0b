"""Restore drill: restore the latest backup (or a point in time, or one backup) onto a scratch cluster on
each database host, never pushing WAL into the live repository; compare every table with the source
(latest), report recovery time and unarchived WAL, and record the verdict in eng_patterns.

    pyinfra inventory.py drill.py
    pyinfra inventory.py drill.py --data target=2026-12-02T14:30:00+00:00
"""

from pyinfra import host

from operations.deploy import drill

drill(host.data.hearthdb, host.data.get("target"))
