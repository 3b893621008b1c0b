"""Restore a database host in place from its pgBackRest repository. Refused unless the exact host name is
confirmed. The data directory before the restore is moved aside (kept), the cluster's configuration is
rebuilt from hearthdb.yml; run deploy.py afterwards to converge the rest.

    pyinfra inventory.py restore.py --data confirm=db1                                   # latest
    pyinfra inventory.py restore.py --data confirm=db1 --data target=2026-12-02T14:30:00+00:00
    pyinfra inventory.py restore.py --data confirm=db1 --data target=20261202-010000F    # one backup
    pyinfra inventory.py restore.py --data confirm=db2 --data from=db1     # db1's backups onto db2
"""

from pyinfra import host

from operations.deploy import restore_cluster

restore_cluster(host.data.hearthdb, host.data.get("confirm"), host.data.get("target"), host.data.get("from"))
