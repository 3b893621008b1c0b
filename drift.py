"""Report every difference between hearthdb.yml and each host (read-only; takes no lock). The deploy's
own operations plan it, so no drift here means a deploy would change nothing.

    pyinfra inventory.py drift.py                      # a table per host
    pyinfra inventory.py drift.py --data format=json   # JSON on stdout

Exit status: 0 no drift, 2 drift, 1 an error or a host not reached.
"""

from pyinfra import host

from operations import drift
from operations.deploy import converge

drift.start(host.data.get("format"))
converge(host.data.hearthdb, host.data.hearthdb_passwords)
drift.planned()
