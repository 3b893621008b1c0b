"""Show, per host and database, each schema bundle's applied and pending migrations. Changes nothing.

pyinfra -y inventory.py status.py
pyinfra -y inventory.py status.py --data migrate_to=pp:1    # pending relative to a target
"""

from pyinfra import host

from operations.deploy import schema_status

schema_status(host.data.hearthdb, host.data.get("migrate_to"))
