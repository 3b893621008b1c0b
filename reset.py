"""Nuclear reset: back up every database on the host, then stop PostgreSQL and purge its packages,
configuration and data. Refused unless the exact host name is confirmed. Afterwards a normal deploy
(`pyinfra inventory.py deploy.py`) rebuilds everything.

    pyinfra inventory.py reset.py --data confirm=db1          # one host
    pyinfra inventory.py reset.py --data confirm=db1,db2      # several
"""

from pyinfra import host

from operations.deploy import nuclear_reset

nuclear_reset(host.data.hearthdb, host.data.get("confirm"))
