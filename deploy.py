"""Converge every host of the inventory to the state declared in hearthdb.yml, then migrate schemas.

pyinfra inventory.py deploy.py                           # converge, migrate to head
pyinfra inventory.py deploy.py --dry                     # preview: what would change, with the SQL
pyinfra inventory.py deploy.py --data migrate_to=hm:0    # move bundle hm to version 0 (down files)
"""

from pyinfra import host

from operations.deploy import converge

converge(host.data.hearthdb, host.data.hearthdb_passwords, host.data.get("migrate_to"))
