"""Planned switchover of a Patroni cluster (the `ha` section): the leader hands over to the named member,
which must be a healthy replica; the old leader follows it as a streaming replica. Clients on the
endpoint reconnect to the new leader with no change of their own.

    pyinfra inventory.py switchover.py --data to=db2
"""

from pyinfra import host

from operations.deploy import switchover

switchover(host.data.hearthdb, host.data.get("to"))
