"""Take one pgBackRest backup now on every database host, and report its label, size and time.

pyinfra inventory.py backup.py                      # full
pyinfra inventory.py backup.py --data type=incr     # or diff
"""

from pyinfra import host

from operations.deploy import backup_now

backup_now(host.data.hearthdb, host.data.get("type"))
